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

static void lb_call(sup_actor *self, void *state, const sup_msg *m)
{
    (void)state;
    sup_rt *rt = sup_self_rt(self);
    sup_from from = sup_msg_from(m);
    if (m->tag != FLOW_TAG_REQ) {
        return;
    }
    json_t *req = flow__msg_json(m);
    const char *op = json_string_value(json_object_get(req, "op"));
    json_t *args = json_object_get(req, "args");
    char err[160] = "";
    if (op == NULL || !json_is_object(args)) {
        flow__reply_err(rt, from, FLOW_EINVAL, "request needs an op and args");
    } else if (strcmp(op, "agent_spawn") == 0) {
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
            flow__reply_err(rt, from, FLOW_EINVAL, "weight >= 1, capacity 1..%d",
                            FLOW_MAX_CAPACITY);
        } else {
            json_t *a = json_deep_copy(args);
            if (!json_is_string(json_object_get(a, "id"))) {
                char u[37], id[FLOW_ID_MAX];
                flow__uuid(u);
                snprintf(id, sizeof id, "agent-%.8s%.4s", u, u + 9);
                json_object_set_new(a, "id", json_string(id));
            }
            flow__forward(self, from, op, a);
        }
    } else {
        flow__forward(self, from, op, json_incref(args));
    }
    json_decref(req);
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

int flow_lb_start(sup_rt *rt, sup_pid parent, void *arg, void *extra, sup_pid *out, sup_reason *why)
{
    (void)arg;
    (void)extra;
    return flow__start_named(rt, parent, &lb_behaviour, NULL, FLOW_N_LB, out, why);
}
