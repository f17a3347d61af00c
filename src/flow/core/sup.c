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

static int flow__swarm_sup_start(sup_rt *rt, sup_pid parent, void *arg, void *extra, sup_pid *out,
                                 sup_reason *why)
{
    (void)arg;
    (void)extra;
    return flow__sup_start(rt, parent, SUP_SIMPLE_ONE_FOR_ONE, 5, swarm_tmpl, 1, FLOW_N_SWARM_SUP,
                           out, why);
}

static int flow__agent_sup_start(sup_rt *rt, sup_pid parent, void *arg, void *extra, sup_pid *out,
                                 sup_reason *why)
{
    (void)arg;
    (void)extra;
    return flow__sup_start(rt, parent, SUP_SIMPLE_ONE_FOR_ONE, 10, agent_tmpl, 1, FLOW_N_AGENT_SUP,
                           out, why);
}

static sup_child_spec core_children[] = {
    FLOW_SUPERVISOR(FLOW_N_SWARM_SUP, flow__swarm_sup_start),
    FLOW_SUPERVISOR(FLOW_N_AGENT_SUP, flow__agent_sup_start),
    FLOW_WORKER(FLOW_N_TRACKER, flow_tracker_start),
    FLOW_WORKER(FLOW_N_TASK_QUEUE, flow_task_queue_start),
    FLOW_WORKER(FLOW_N_LB, flow_lb_start),
    FLOW_SUPERVISOR(FLOW_N_OBSERVER_SUP, flow_observer_sup_start),
};

int flow_core_sup_start(sup_rt *rt, sup_pid parent, void *arg, void *extra, sup_pid *out,
                        sup_reason *why)
{
    (void)arg;
    (void)extra;
    return flow__sup_start(rt, parent, SUP_ONE_FOR_ONE, 5, core_children,
                           sizeof core_children / sizeof core_children[0], FLOW_N_CORE_SUP, out,
                           why);
}
