/*
 * flow/core/task_queue.c — erlmcp_flow_task_queue: the front door of the task_* API.
 *
 * The queue itself (priorities, weights, limit, dependencies) is part of the replicated state
 * machine (flow_queue.c inside flow_state.c) so that every replica orders tasks the same way.
 * This actor does what the deterministic machine must not: it mints the task's UUID and trace
 * id, turns a relative deadline into an absolute time, checks the request's shape, and
 * forwards the resulting task_submit command to the registry, which answers the caller.
 * The request is stamped here, where it enters the flow, with this node's monotonic clock
 * (flow__now_ns): the stamp travels beside the command ("entered_ns" of the apply request),
 * never in it, and the registry measures the dispatch latency from it.
 */
#include <stdio.h>
#include <string.h>

#include "flow/flow_int.h"

typedef struct tq_state {
    uint64_t submitted, refused;
} tq_state;

static void tq__submit(sup_actor *self, void *state, sup_from from, json_t *args)
{
    tq_state *st = state;
    sup_rt *rt = sup_self_rt(self);
    uint64_t entered = flow__now_ns(rt);
    const json_t *input = json_object_get(args, "input");
    const char *swarm = json_string_value(json_object_get(args, "swarm"));
    json_int_t dl = json_integer_value(json_object_get(args, "deadline_ms"));
    if (input == NULL || swarm == NULL || dl < 0) {
        st->refused++;
        flow__reply_err(rt, from, FLOW_EINVAL, "task_submit needs a swarm and an input");
        return;
    }
    char id[37], trace[33];
    flow__uuid(id);
    flow__trace_id(trace);
    const char *given = json_string_value(json_object_get(args, "trace_id"));
    json_t *cmd =
        json_pack("{s:s, s:i, s:s, s:s, s:O, s:s}", "cmd", "task_submit", "now", 0, "swarm", swarm,
                  "task", id, "input", input, "trace_id", given ? given : trace);
    static const char *const copy[] = {"priority", "role", "dependencies", "max_retries"};
    for (size_t i = 0; i < sizeof copy / sizeof copy[0]; i++) {
        json_t *v = json_object_get(args, copy[i]);
        if (v) {
            json_object_set(cmd, copy[i], v);
        }
    }
    if (dl > 0) {
        json_object_set_new(cmd, "deadline", json_integer((json_int_t)sup_rt_now(rt) + dl));
    }
    st->submitted++;
    flow__forward(self, from, "apply",
                  json_pack("{s:o, s:I}", "cmd", cmd, "entered_ns", (json_int_t)entered));
}

static void tq_call(sup_actor *self, void *state, const sup_msg *m)
{
    flow__front_door(self, state, m, "task_submit", tq__submit);
}

static int tq_init(sup_actor *self, void *state, void *arg)
{
    (void)state;
    (void)arg;
    sup_set_label(self, FLOW_N_TASK_QUEUE);
    return 0;
}

static const sup_behaviour tq_behaviour = {
    .name = FLOW_N_TASK_QUEUE,
    .state_size = sizeof(tq_state),
    .init = tq_init,
    .handle_call = tq_call,
};

FLOW_NAMED_START(flow_task_queue_start, tq_behaviour, FLOW_N_TASK_QUEUE)
