/*
 * flow/sup.c — erlmcp_flow_sup: the root of flow (seed 002), one_for_all, 3 restarts in 60 s:
 * registry (permanent, 5000 ms), consensus_sup and core_sup (supervisors, infinity). The
 * registry and consensus restart together because the registry is the replica of the state
 * consensus replicates.
 */
#include <string.h>

#include "flow/flow_int.h"

static sup_child_spec flow_children[] = {
    FLOW_WORKER(FLOW_N_REGISTRY, flow_registry_start),
    FLOW_SUPERVISOR(FLOW_N_CONSENSUS_SUP, flow_consensus_sup_start),
    FLOW_SUPERVISOR(FLOW_N_CORE_SUP, flow_core_sup_start),
};

int flow__sup_start(sup_rt *rt, sup_pid parent, sup_strategy strategy, int intensity,
                    sup_child_spec *children, size_t n, const char *name, sup_pid *out,
                    sup_reason *why)
{
    sup_flags f = {strategy, intensity, 60, SUP_AUTO_NEVER};
    sup_sv_opts o = {.name = name};
    int rc = sup_supervisor_start(rt, parent, &f, children, n, &o, out, why);
    if (rc == 0) {
        sup_register(rt, name, *out);
    }
    return rc;
}

int flow_start(sup_rt *rt, sup_pid parent, void *arg, void *extra, sup_pid *out, sup_reason *why)
{
    (void)extra;
    /* the options (flow_options, may be NULL) go to the registry and to consensus_sup */
    sup_child_spec children[sizeof flow_children / sizeof flow_children[0]];
    memcpy(children, flow_children, sizeof children);
    children[0].arg = arg;
    children[1].arg = arg;
    return flow__sup_start(rt, parent, SUP_ONE_FOR_ALL, 3, children,
                           sizeof children / sizeof children[0], FLOW_N_SUP, out, why);
}
