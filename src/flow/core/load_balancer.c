/*
 * flow/core/load_balancer.c — erlmcp_flow_load_balancer: the front door of the agent_* API.
 *
 * The balancing strategies themselves (round_robin, least_conn, weighted: flow_lb.c) run
 * inside the replicated state machine, where every assignment is decided, so that replicas
 * agree. This actor checks agent requests (role, executor spec, weight, capacity), mints agent
 * ids and forwards them to the registry, which starts the agent under agent_sup and answers.
 */
#include <stdio.h>
#include <string.h>

#include "flow/flow_int.h"

static void lb__spawn(sup_actor *self, void *state, sup_from from, json_t *args)
{
    (void)state;
    sup_rt *rt = sup_self_rt(self);
    char err[160] = "";
    const char *role = json_string_value(json_object_get(args, "role"));
    const json_t *ex = json_object_get(args, "executor");
    const json_t *w = json_object_get(args, "weight"), *c = json_object_get(args, "capacity");
    if (role == NULL || flow_role_parse(role) < 0) {
        flow__reply_err(rt, from, FLOW_EINVAL, "role must be worker, specialist or scout");
    } else if (ex && flow_executor_check(ex, err, sizeof err) != 0) {
        flow__reply_err(rt, from, FLOW_EINVAL, "%s", err);
    } else if ((w && (!json_is_integer(w) || json_integer_value(w) < 1)) ||
               (c && (!json_is_integer(c) || json_integer_value(c) < 1 ||
                      json_integer_value(c) > FLOW_MAX_CAPACITY))) {
        flow__reply_err(rt, from, FLOW_EINVAL, "weight >= 1, capacity 1..%d", FLOW_MAX_CAPACITY);
    } else {
        json_t *a = json_deep_copy(args);
        if (!json_is_string(json_object_get(a, "id"))) {
            char id[FLOW_ID_MAX];
            flow__agent_id(id);
            json_object_set_new(a, "id", json_string(id));
        }
        flow__forward(self, from, "agent_spawn", a);
    }
}

static void lb_call(sup_actor *self, void *state, const sup_msg *m)
{
    flow__front_door(self, state, m, "agent_spawn", lb__spawn);
}

static int lb_init(sup_actor *self, void *state, void *arg)
{
    (void)state;
    (void)arg;
    sup_set_label(self, FLOW_N_LB);
    return 0;
}

static const sup_behaviour lb_behaviour = {
    .name = FLOW_N_LB,
    .init = lb_init,
    .handle_call = lb_call,
};

FLOW_NAMED_START(flow_lb_start, lb_behaviour, FLOW_N_LB)
