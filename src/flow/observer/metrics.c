/*
 * flow/observer/metrics.c — erlmcp_flow_metrics: counts the flow's events by kind and keeps
 * the dispatch latency histogram: from a task_submit request entering the node (the task
 * queue stamps it) to the task's first assignment to an agent. The registry measures it on
 * the runtime's monotonic clock (flow__now_ns) when it applies the assignment and sends it as
 * the task_assigned event's "dispatch_ns"; this actor only files it, so the delay of the
 * event's delivery to it does not count. The histogram is published for /metrics
 * (flow_metrics_prometheus); gauges (tasks by state, queue depth, agents, breakers) come from
 * the registry's state. flow_metrics() returns both as JSON.
 */
#include <string.h>

#include "flow/flow_int.h"

const double flow_latency_bounds[FLOW_LAT_BUCKETS] = {
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10,
};

void flow_latency_observe(flow_latency *h, double seconds)
{
    int b = 0;
    while (b < FLOW_LAT_BUCKETS && seconds > flow_latency_bounds[b]) {
        b++;
    }
    h->bucket[b]++;
    h->count++;
    h->sum += seconds;
}

typedef struct mt_state {
    json_t *events; /* name → count */
    flow_latency lat;
} mt_state;

static void mt_cast(sup_actor *self, void *state, const sup_msg *m)
{
    (void)self;
    mt_state *st = state;
    if (m->tag != FLOW_TAG_OBS) {
        return;
    }
    json_t *e = flow__msg_json(m);
    const char *name = json_string_value(json_object_get(e, "event"));
    if (name) {
        json_int_t n = json_integer_value(json_object_get(st->events, name));
        json_object_set_new(st->events, name, json_integer(n + 1));
    }
    const json_t *d = json_object_get(e, "dispatch_ns");
    if (name && strcmp(name, "task_assigned") == 0 && json_is_integer(d) &&
        json_integer_value(d) >= 0) {
        flow_latency_observe(&st->lat, (double)json_integer_value(d) / 1e9);
    }
    json_decref(e);
}

static void mt_call(sup_actor *self, void *state, const sup_msg *m)
{
    mt_state *st = state;
    json_t *h = json_array();
    uint64_t cum = 0;
    for (int b = 0; b <= FLOW_LAT_BUCKETS; b++) {
        cum += st->lat.bucket[b];
        json_array_append_new(h, json_pack("{s:o, s:I}", "le",
                                           b < FLOW_LAT_BUCKETS ? json_real(flow_latency_bounds[b])
                                                                : json_string("+Inf"),
                                           "count", (json_int_t)cum));
    }
    json_t *o =
        json_pack("{s:O, s:{s:o, s:I, s:f}}", "events", st->events, "dispatch_latency_seconds",
                  "buckets", h, "count", (json_int_t)st->lat.count, "sum", st->lat.sum);
    flow__reply_ok(sup_self_rt(self), sup_msg_from(m), o);
}

static int mt_init(sup_actor *self, void *state, void *arg)
{
    (void)arg;
    mt_state *st = state;
    st->events = json_object();
    sup_set_label(self, FLOW_N_METRICS);
    flow_view_set(sup_self_rt(self), FLOW_VIEW_LATENCY, &st->lat);
    return 0;
}

static void mt_terminate(sup_actor *self, void *state, const sup_reason *reason)
{
    (void)reason;
    mt_state *st = state;
    flow_view_clear(sup_self_rt(self), FLOW_VIEW_LATENCY, &st->lat);
    json_decref(st->events);
}

static const sup_behaviour mt_behaviour = {
    .name = FLOW_N_METRICS,
    .state_size = sizeof(mt_state),
    .init = mt_init,
    .handle_call = mt_call,
    .handle_cast = mt_cast,
    .terminate = mt_terminate,
};

FLOW_NAMED_START(flow_metrics_start, mt_behaviour, FLOW_N_METRICS)
