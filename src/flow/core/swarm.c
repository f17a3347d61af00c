/*
 * flow/core/swarm.c — erlmcp_flow_swarm (simple_one_for_one under swarm_sup, transient): the
 * coordinator of one swarm's agent pool. The registry tells it how many agents of which role
 * the pool lacks (the state machine's agent_needed events); it mints their ids and starts
 * them under agent_sup. A start that fails is reported (agent_spawn_failed) so the next tick
 * asks again. Which task goes to which agent is decided by the replicated state machine
 * (flow_state.c), not here, so every replica decides the same.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "flow/flow_int.h"

#define SW_PENDING_MAX 512

typedef struct sw_state {
    char id[FLOW_ID_MAX];
    uint64_t refs[SW_PENDING_MAX]; /* start_child calls in flight */
    int roles[SW_PENDING_MAX];
    flow_agent_arg *args[SW_PENDING_MAX]; /* owned by the agent once its init runs */
    size_t npending;
    uint64_t started, failed;
} sw_state;

static int sw_init(sup_actor *self, void *state, void *arg)
{
    sw_state *st = state;
    const flow_swarm_arg *a = arg;
    snprintf(st->id, sizeof st->id, "%s", a->id);
    sup_set_label(self, "erlmcp_flow_swarm");
    sup_rt *rt = sup_self_rt(self);
    sup_cast(rt, sup_self(self), sup_whereis(rt, FLOW_N_REGISTRY), FLOW_TAG_SWARM_UP, st->id,
             strlen(st->id));
    return 0;
}

static void sw__spawn_failed(sup_actor *self, sw_state *st, int role, const char *why)
{
    sup_rt *rt = sup_self_rt(self);
    json_t *cmd = json_pack("{s:s, s:i, s:s, s:s, s:s}", "cmd", "agent_spawn_failed", "now", 0,
                            "swarm", st->id, "role", flow_role_name(role), "text", why);
    flow__cast_json(rt, sup_self(self), sup_whereis(rt, FLOW_N_REGISTRY), FLOW_TAG_CMD, cmd);
    st->failed++;
}

static void sw_cast(sup_actor *self, void *state, const sup_msg *m)
{
    sw_state *st = state;
    if (m->tag != FLOW_TAG_NEEDED) {
        return;
    }
    json_t *j = flow__msg_json(m);
    int role = flow_role_parse(json_string_value(json_object_get(j, "role")));
    json_int_t count = json_integer_value(json_object_get(j, "count"));
    const json_t *ex = json_object_get(j, "executor");
    sup_pid agent_sup = sup_whereis(sup_self_rt(self), FLOW_N_AGENT_SUP);
    for (json_int_t i = 0; role >= 0 && i < count && i < 100; i++) {
        if (st->npending == SW_PENDING_MAX) {
            sw__spawn_failed(self, st, role, "too many starts in flight");
            continue;
        }
        flow_agent_arg *a = calloc(1, sizeof *a);
        if (a == NULL) {
            sw__spawn_failed(self, st, role, "out of memory");
            continue;
        }
        flow__agent_id(a->id);
        snprintf(a->swarm, sizeof a->swarm, "%s", st->id);
        a->role = role;
        a->weight = a->capacity = 1;
        a->pool = true;
        a->executor = json_is_object(ex) ? json_dumps(ex, JSON_COMPACT) : NULL;
        /* the agent's init owns `a` */
        st->refs[st->npending] = sup_sv_start_child(self, agent_sup, NULL, a, 0);
        st->args[st->npending] = a;
        st->roles[st->npending++] = role;
    }
    json_decref(j);
}

static void sw_info(sup_actor *self, void *state, const sup_msg *m)
{
    sw_state *st = state;
    if (m->kind != SUP_MSG_REPLY) {
        return;
    }
    for (size_t i = 0; i < st->npending; i++) {
        if (st->refs[i] != m->ref) {
            continue;
        }
        int role = st->roles[i];
        flow_agent_arg *a = st->args[i];
        st->npending--;
        st->refs[i] = st->refs[st->npending];
        st->roles[i] = st->roles[st->npending];
        st->args[i] = st->args[st->npending];
        sup_reason why;
        int rc = sup_sv_start_reply(m, NULL, &why);
        if (rc == SUP_ENOPROC || rc == SUP_ETIMEDOUT) {
            flow_agent_arg_free(a); /* agent_sup never ran the agent's init */
        }
        if (rc != 0) {
            char r[80];
            sw__spawn_failed(self, st, role, sup_reason_str(&why, r, sizeof r));
        } else {
            st->started++;
        }
        return;
    }
}

static const sup_behaviour sw_behaviour = {
    .name = "erlmcp_flow_swarm",
    .state_size = sizeof(sw_state),
    .init = sw_init,
    .handle_cast = sw_cast,
    .handle_info = sw_info,
};

int flow_swarm_start(sup_rt *rt, sup_pid parent, void *arg, void *extra, sup_pid *out,
                     sup_reason *why)
{
    (void)arg;
    if (extra == NULL) {
        if (why) {
            *why = sup_reason_error("swarm needs an id");
        }
        return SUP_EINVAL;
    }
    return sup_spawn(rt, parent, &sw_behaviour, extra, SUP_SPAWN_LINK, out, why);
}
