/*
 * flow/observer/chaos.c — erlmcp_flow_chaos: fault injection, enabled only by explicit
 * configuration (MACULA_FLOW_CHAOS=1 in the environment when it starts). Requests:
 * chaos_kill {"agent"} (the agent dies with reason chaos_kill: its task is requeued),
 * chaos_latency {"agent", "ms"} (the agent waits ms before each task), chaos_kill_process
 * {"name"} (any registered actor is killed). Disabled, every request is refused.
 */
#include <stdlib.h>
#include <string.h>

#include "flow/flow_int.h"

typedef struct ch_state {
    bool enabled;
    uint64_t injected;
} ch_state;

static void ch_call(sup_actor *self, void *state, const sup_msg *m)
{
    ch_state *st = state;
    sup_rt *rt = sup_self_rt(self);
    sup_from from = sup_msg_from(m);
    json_t *req = flow__msg_json(m);
    const char *op = json_string_value(json_object_get(req, "op"));
    json_t *args = json_object_get(req, "args");
    if (!st->enabled) {
        flow__reply_err(rt, from, FLOW_EINVAL, "chaos is disabled (set MACULA_FLOW_CHAOS=1)");
    } else if (op && (strcmp(op, "chaos_kill") == 0 || strcmp(op, "chaos_latency") == 0) &&
               json_is_string(json_object_get(args, "agent"))) {
        json_t *c = json_pack("{s:s, s:O, s:O?}", "action", op + 6, "agent",
                              json_object_get(args, "agent"), "ms", json_object_get(args, "ms"));
        flow__cast_json(rt, sup_self(self), sup_whereis(rt, FLOW_N_REGISTRY), FLOW_TAG_CHAOS, c);
        st->injected++;
        flow__reply_ok(rt, from, json_pack("{s:b}", "injected", 1));
    } else if (op && strcmp(op, "chaos_kill_process") == 0 &&
               json_is_string(json_object_get(args, "name"))) {
        sup_pid p = sup_whereis(rt, json_string_value(json_object_get(args, "name")));
        if (sup_pid_is_null(p)) {
            flow__reply_err(rt, from, FLOW_ENOTFOUND, "no process of that name");
        } else {
            sup_reason k = {.kind = SUP_R_KILL};
            sup_exit(rt, sup_self(self), p, &k);
            st->injected++;
            flow__reply_ok(rt, from, json_pack("{s:b}", "killed", 1));
        }
    } else {
        flow__reply_err(rt, from, FLOW_EINVAL, "unknown chaos request");
    }
    json_decref(req);
}

static int ch_init(sup_actor *self, void *state, void *arg)
{
    (void)arg;
    const char *v = getenv("MACULA_FLOW_CHAOS");
    ((ch_state *)state)->enabled = v && strcmp(v, "1") == 0;
    sup_set_label(self, FLOW_N_CHAOS);
    return 0;
}

static const sup_behaviour ch_behaviour = {
    .name = FLOW_N_CHAOS,
    .state_size = sizeof(ch_state),
    .init = ch_init,
    .handle_call = ch_call,
};

FLOW_NAMED_START(flow_chaos_start, ch_behaviour, FLOW_N_CHAOS)
