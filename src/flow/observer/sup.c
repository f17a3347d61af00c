/* flow/observer/sup.c — erlmcp_flow_observer_sup: one_for_one, 10 restarts in 60 s (seed 002),
 * children otel_tracer, metrics, health, chaos, circuit_breaker (permanent, 5000 ms). */
#include "flow/flow_int.h"

static sup_child_spec ob_children[] = {
    FLOW_WORKER(FLOW_N_OTEL, flow_otel_start),
    FLOW_WORKER(FLOW_N_METRICS, flow_metrics_start),
    FLOW_WORKER(FLOW_N_HEALTH, flow_health_start),
    FLOW_WORKER(FLOW_N_CHAOS, flow_chaos_start),
    FLOW_WORKER(FLOW_N_BREAKER, flow_breaker_start),
};

int flow_observer_sup_start(sup_rt *rt, sup_pid parent, void *arg, void *extra, sup_pid *out,
                            sup_reason *why)
{
    (void)arg;
    (void)extra;
    return flow__sup_start(rt, parent, SUP_ONE_FOR_ONE, 10, ob_children,
                           sizeof ob_children / sizeof ob_children[0], FLOW_N_OBSERVER_SUP, out,
                           why);
}
