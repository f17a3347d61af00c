/* flow/observer/sup.c — erlmcp_flow_observer_sup: one_for_one, 10 restarts in 60 s (seed 002),
 * children otel_tracer, metrics, health, chaos, circuit_breaker (permanent, 5000 ms). */
#include "flow/flow_int.h"

static sup_child_spec ob_children[] = {
    {.id = FLOW_N_OTEL, .start = flow_otel_start, .restart = SUP_PERMANENT, .shutdown_ms = 5000},
    {.id = FLOW_N_METRICS,
     .start = flow_metrics_start,
     .restart = SUP_PERMANENT,
     .shutdown_ms = 5000},
    {.id = FLOW_N_HEALTH,
     .start = flow_health_start,
     .restart = SUP_PERMANENT,
     .shutdown_ms = 5000},
    {.id = FLOW_N_CHAOS, .start = flow_chaos_start, .restart = SUP_PERMANENT, .shutdown_ms = 5000},
    {.id = FLOW_N_BREAKER,
     .start = flow_breaker_start,
     .restart = SUP_PERMANENT,
     .shutdown_ms = 5000},
};

int flow_observer_sup_start(sup_rt *rt, sup_pid parent, void *arg, void *extra, sup_pid *out,
                            sup_reason *why)
{
    (void)arg;
    (void)extra;
    sup_flags f = {SUP_ONE_FOR_ONE, 10, 60, SUP_AUTO_NEVER};
    sup_sv_opts o = {.name = FLOW_N_OBSERVER_SUP};
    int rc = sup_supervisor_start(rt, parent, &f, ob_children,
                                  sizeof ob_children / sizeof ob_children[0], &o, out, why);
    if (rc == 0) {
        sup_register(rt, FLOW_N_OBSERVER_SUP, *out);
    }
    return rc;
}
