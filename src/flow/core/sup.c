/*
 * flow/core/sup.c — erlmcp_flow_core_sup: one_for_one, 5 restarts in 60 s (seed 002), with
 *   swarm_sup (simple_one_for_one, 5/60; swarms transient, 5000 ms),
 *   agent_sup (simple_one_for_one, 10/60; agents temporary, 2000 ms),
 *   request_tracker, task_queue, load_balancer (permanent, 5000 ms),
 *   observer_sup (one_for_one, 10/60).
 */
#include "flow/flow_int.h"

static sup_child_spec swarm_tmpl[] = {
    {.id = "erlmcp_flow_swarm",
     .start = flow_swarm_start,
     .restart = SUP_TRANSIENT,
     .shutdown_ms = 5000},
};
static sup_child_spec agent_tmpl[] = {
    {.id = "erlmcp_flow_agent",
     .start = flow_agent_start,
     .restart = SUP_TEMPORARY,
     .shutdown_ms = 2000},
};

static int flow__simple_sup(sup_rt *rt, sup_pid parent, sup_child_spec *tmpl, int intensity,
                            const char *name, sup_pid *out, sup_reason *why)
{
    sup_flags f = {SUP_SIMPLE_ONE_FOR_ONE, intensity, 60, SUP_AUTO_NEVER};
    sup_sv_opts o = {.name = name};
    int rc = sup_supervisor_start(rt, parent, &f, tmpl, 1, &o, out, why);
    if (rc == 0) {
        sup_register(rt, name, *out);
    }
    return rc;
}

static int flow__swarm_sup_start(sup_rt *rt, sup_pid parent, void *arg, void *extra, sup_pid *out,
                                 sup_reason *why)
{
    (void)arg;
    (void)extra;
    return flow__simple_sup(rt, parent, swarm_tmpl, 5, FLOW_N_SWARM_SUP, out, why);
}

static int flow__agent_sup_start(sup_rt *rt, sup_pid parent, void *arg, void *extra, sup_pid *out,
                                 sup_reason *why)
{
    (void)arg;
    (void)extra;
    return flow__simple_sup(rt, parent, agent_tmpl, 10, FLOW_N_AGENT_SUP, out, why);
}

static sup_child_spec core_children[] = {
    {.id = FLOW_N_SWARM_SUP,
     .start = flow__swarm_sup_start,
     .restart = SUP_PERMANENT,
     .shutdown_ms = SUP_SHUTDOWN_INFINITY,
     .type = SUP_SUPERVISOR},
    {.id = FLOW_N_AGENT_SUP,
     .start = flow__agent_sup_start,
     .restart = SUP_PERMANENT,
     .shutdown_ms = SUP_SHUTDOWN_INFINITY,
     .type = SUP_SUPERVISOR},
    {.id = FLOW_N_TRACKER,
     .start = flow_tracker_start,
     .restart = SUP_PERMANENT,
     .shutdown_ms = 5000},
    {.id = FLOW_N_TASK_QUEUE,
     .start = flow_task_queue_start,
     .restart = SUP_PERMANENT,
     .shutdown_ms = 5000},
    {.id = FLOW_N_LB, .start = flow_lb_start, .restart = SUP_PERMANENT, .shutdown_ms = 5000},
    {.id = FLOW_N_OBSERVER_SUP,
     .start = flow_observer_sup_start,
     .restart = SUP_PERMANENT,
     .shutdown_ms = SUP_SHUTDOWN_INFINITY,
     .type = SUP_SUPERVISOR},
};

int flow_core_sup_start(sup_rt *rt, sup_pid parent, void *arg, void *extra, sup_pid *out,
                        sup_reason *why)
{
    (void)arg;
    (void)extra;
    sup_flags f = {SUP_ONE_FOR_ONE, 5, 60, SUP_AUTO_NEVER};
    sup_sv_opts o = {.name = FLOW_N_CORE_SUP};
    int rc = sup_supervisor_start(rt, parent, &f, core_children,
                                  sizeof core_children / sizeof core_children[0], &o, out, why);
    if (rc == 0) {
        sup_register(rt, FLOW_N_CORE_SUP, *out);
    }
    return rc;
}
