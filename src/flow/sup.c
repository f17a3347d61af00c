/*
 * flow/sup.c — erlmcp_flow_sup: the root of flow (seed 002), one_for_all, 3 restarts in 60 s:
 * registry (permanent, 5000 ms), consensus_sup and core_sup (supervisors, infinity). The
 * registry and consensus restart together because the registry is the replica of the state
 * consensus replicates.
 */
#include "flow/flow_int.h"

static sup_child_spec flow_children[] = {
    {.id = FLOW_N_REGISTRY,
     .start = flow_registry_start,
     .restart = SUP_PERMANENT,
     .shutdown_ms = 5000},
    {.id = FLOW_N_CONSENSUS_SUP,
     .start = flow_consensus_sup_start,
     .restart = SUP_PERMANENT,
     .shutdown_ms = SUP_SHUTDOWN_INFINITY,
     .type = SUP_SUPERVISOR},
    {.id = FLOW_N_CORE_SUP,
     .start = flow_core_sup_start,
     .restart = SUP_PERMANENT,
     .shutdown_ms = SUP_SHUTDOWN_INFINITY,
     .type = SUP_SUPERVISOR},
};

int flow_start(sup_rt *rt, sup_pid parent, void *arg, void *extra, sup_pid *out, sup_reason *why)
{
    (void)arg;
    (void)extra;
    sup_flags f = {SUP_ONE_FOR_ALL, 3, 60, SUP_AUTO_NEVER};
    sup_sv_opts o = {.name = FLOW_N_SUP};
    int rc = sup_supervisor_start(rt, parent, &f, flow_children,
                                  sizeof flow_children / sizeof flow_children[0], &o, out, why);
    if (rc == 0) {
        sup_register(rt, FLOW_N_SUP, *out);
    }
    return rc;
}
