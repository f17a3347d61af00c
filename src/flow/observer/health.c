/*
 * flow/observer/health.c — erlmcp_flow_health: health per swarm (the "health" request). It
 * answers from the registry's published state (flow_health_json, which the node's /health
 * calls directly), so it keeps no copy of its own: a swarm is "ok" with agents and a closed
 * breaker, "degraded" without agents or with a half-open breaker, "paused" with an open
 * breaker (dispatch stops).
 */
#include "flow/flow_int.h"

static void hl_call(sup_actor *self, void *state, const sup_msg *m)
{
    (void)state;
    sup_rt *rt = sup_self_rt(self);
    json_t *h = flow_health_json(rt);
    if (h) {
        flow__reply_ok(rt, sup_msg_from(m), h);
    } else {
        flow__reply_err(rt, sup_msg_from(m), FLOW_ENOPROC, "the registry is not running");
    }
}

static int hl_init(sup_actor *self, void *state, void *arg)
{
    (void)state;
    (void)arg;
    sup_set_label(self, FLOW_N_HEALTH);
    return 0;
}

static const sup_behaviour hl_behaviour = {
    .name = FLOW_N_HEALTH,
    .init = hl_init,
    .handle_call = hl_call,
};

FLOW_NAMED_START(flow_health_start, hl_behaviour, FLOW_N_HEALTH)
