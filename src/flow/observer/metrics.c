/*
 * flow/observer/metrics.c — erlmcp_flow_metrics: counts the flow's events by kind and keeps
 * the dispatch latency histogram: from the registry applying a task's submission to applying
 * its first assignment, measured on the monotonic clock when the events arrive (both come
 * from the registry in apply order, so the delay of the casts cancels out). The histogram is
 * published for /metrics (flow_metrics_prometheus); gauges (tasks by state, queue depth,
 * agents, breakers) come from the registry's state. flow_metrics() returns both as JSON.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

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

typedef struct mt_submitted {
    char task[FLOW_ID_MAX]; /* the key */
    uint64_t ns;            /* hrtime of the submission */
} mt_submitted;

typedef struct mt_state {
    hmap submitted; /* task → mt_submitted, until its first assignment or end */
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
    const char *task = json_string_value(json_object_get(e, "task"));
    if (name) {
        json_int_t n = json_integer_value(json_object_get(st->events, name));
        json_object_set_new(st->events, name, json_integer(n + 1));
    }
    if (name && task && strcmp(name, "task_accepted") == 0) {
        mt_submitted *t = calloc(1, sizeof *t);
        if (t) {
            snprintf(t->task, sizeof t->task, "%s", task);
            t->ns = uv_hrtime();
            void *old = NULL;
            if (hmap_put(&st->submitted, t->task, strlen(t->task), t, &old) != 0) {
                free(t);
            }
            free(old); /* the same task accepted twice: the newer submission counts */
        }
    } else if (name && task &&
               (strcmp(name, "task_assigned") == 0 || strcmp(name, "task_completed") == 0 ||
                strcmp(name, "task_failed") == 0 || strcmp(name, "task_cancelled") == 0)) {
        mt_submitted *t = flow_hdel(&st->submitted, task);
        if (t && strcmp(name, "task_assigned") == 0) {
            flow_latency_observe(&st->lat, (double)(uv_hrtime() - t->ns) / 1e9);
        }
        free(t);
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
    hmap_init(&st->submitted);
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
    flow__hmap_free_values(&st->submitted, free);
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
