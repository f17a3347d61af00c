/*
 * flow/observer/health.c — erlmcp_flow_health: health per swarm for the node's /health,
 * from the registry's events: a swarm is "ok" with agents and a closed breaker, "degraded"
 * without agents or with a half-open breaker, "paused" with an open breaker (dispatch stops).
 */
#include <string.h>

#include "flow/flow_int.h"

typedef struct hl_state {
    json_t *swarms; /* id → {"agents": n, "breaker": state} */
} hl_state;

static void hl_cast(sup_actor *self, void *state, const sup_msg *m)
{
    (void)self;
    hl_state *st = state;
    if (m->tag != FLOW_TAG_OBS) {
        return;
    }
    json_t *e = flow__msg_json(m);
    const char *name = json_string_value(json_object_get(e, "event"));
    const char *swarm = json_string_value(json_object_get(e, "swarm"));
    if (name && swarm) {
        json_t *s = json_object_get(st->swarms, swarm);
        if (strcmp(name, "swarm_created") == 0) {
            json_object_set_new(st->swarms, swarm,
                                json_pack("{s:i, s:s}", "agents", 0, "breaker", "closed"));
        } else if (strcmp(name, "swarm_destroyed") == 0) {
            json_object_del(st->swarms, swarm);
        } else if (s && (strcmp(name, "agent_added") == 0 || strcmp(name, "agent_removed") == 0)) {
            json_int_t n = json_integer_value(json_object_get(s, "agents"));
            n += strcmp(name, "agent_added") == 0 ? 1 : -1;
            json_object_set_new(s, "agents", json_integer(n));
        } else if (s && strcmp(name, "breaker") == 0) {
            int c = (int)json_integer_value(json_object_get(e, "count"));
            json_object_set_new(s, "breaker", json_string(flow_breaker_state_name(c)));
        }
    }
    json_decref(e);
}

static void hl_call(sup_actor *self, void *state, const sup_msg *m)
{
    hl_state *st = state;
    json_t *out = json_object();
    const char *worst = "ok";
    const char *key;
    json_t *s;
    json_object_foreach(st->swarms, key, s)
    {
        const char *b = json_string_value(json_object_get(s, "breaker"));
        const char *status =
            strcmp(b, "open") == 0 ? "paused"
            : strcmp(b, "half_open") == 0 || json_integer_value(json_object_get(s, "agents")) == 0
                ? "degraded"
                : "ok";
        if (strcmp(status, "ok") != 0) {
            worst = "degraded";
        }
        json_t *v = json_deep_copy(s);
        json_object_set_new(v, "status", json_string(status));
        json_object_set_new(out, key, v);
    }
    flow__reply_ok(sup_self_rt(self), sup_msg_from(m),
                   json_pack("{s:s, s:o}", "status", worst, "swarms", out));
}

static int hl_init(sup_actor *self, void *state, void *arg)
{
    (void)arg;
    ((hl_state *)state)->swarms = json_object();
    sup_set_label(self, FLOW_N_HEALTH);
    return 0;
}

static void hl_terminate(sup_actor *self, void *state, const sup_reason *reason)
{
    (void)self;
    (void)reason;
    json_decref(((hl_state *)state)->swarms);
}

static const sup_behaviour hl_behaviour = {
    .name = FLOW_N_HEALTH,
    .state_size = sizeof(hl_state),
    .init = hl_init,
    .handle_call = hl_call,
    .handle_cast = hl_cast,
    .terminate = hl_terminate,
};

FLOW_NAMED_START(flow_health_start, hl_behaviour, FLOW_N_HEALTH)
