/*
 * flow/observer/circuit_breaker.c — erlmcp_flow_circuit_breaker: the breakers' observer. The
 * breaker of each swarm is part of the replicated state machine (flow_breaker.c), so every
 * replica opens and closes it at the same command; this actor keeps each swarm's current state
 * and its last 16 transitions (with times) for the "breakers" request and the dashboard.
 */
#include <string.h>

#include "flow/flow_int.h"

typedef struct cb_state {
    json_t *swarms; /* id → {"state", "transitions": [{"state", "at"}]} */
} cb_state;

static void cb_cast(sup_actor *self, void *state, const sup_msg *m)
{
    (void)self;
    cb_state *st = state;
    if (m->tag != FLOW_TAG_OBS) {
        return;
    }
    json_t *e = flow__msg_json(m);
    const char *name = json_string_value(json_object_get(e, "event"));
    const char *swarm = json_string_value(json_object_get(e, "swarm"));
    if (name && swarm) {
        if (strcmp(name, "swarm_created") == 0) {
            json_object_set_new(st->swarms, swarm,
                                json_pack("{s:s, s:[]}", "state", "closed", "transitions"));
        } else if (strcmp(name, "swarm_destroyed") == 0) {
            json_object_del(st->swarms, swarm);
        } else if (strcmp(name, "breaker") == 0) {
            json_t *s = json_object_get(st->swarms, swarm);
            const char *b = flow_breaker_state_name(
                (flow_cb_state)json_integer_value(json_object_get(e, "count")));
            if (s) {
                json_object_set_new(s, "state", json_string(b));
                json_t *tr = json_object_get(s, "transitions");
                if (json_array_size(tr) >= 16) {
                    json_array_remove(tr, 0);
                }
                json_array_append_new(
                    tr, json_pack("{s:s, s:O}", "state", b, "at", json_object_get(e, "at")));
            }
        }
    }
    json_decref(e);
}

static void cb_call(sup_actor *self, void *state, const sup_msg *m)
{
    flow__reply_ok(sup_self_rt(self), sup_msg_from(m), json_deep_copy(((cb_state *)state)->swarms));
}

static int cb_init(sup_actor *self, void *state, void *arg)
{
    (void)arg;
    ((cb_state *)state)->swarms = json_object();
    sup_set_label(self, FLOW_N_BREAKER);
    return 0;
}

static void cb_terminate(sup_actor *self, void *state, const sup_reason *reason)
{
    (void)self;
    (void)reason;
    json_decref(((cb_state *)state)->swarms);
}

static const sup_behaviour cb_behaviour = {
    .name = FLOW_N_BREAKER,
    .state_size = sizeof(cb_state),
    .init = cb_init,
    .handle_call = cb_call,
    .handle_cast = cb_cast,
    .terminate = cb_terminate,
};

FLOW_NAMED_START(flow_breaker_start, cb_behaviour, FLOW_N_BREAKER)
