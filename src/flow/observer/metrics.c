/*
 * flow/observer/metrics.c — erlmcp_flow_metrics: counts the flow's events by kind and keeps
 * the dispatch latency histogram (from the registry applying an assignment to the agent
 * reporting the start, in microseconds). State gauges (tasks by state, queue depth, agents,
 * breakers) come from the registry's "metrics"; flow_metrics() returns both.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "flow/flow_int.h"

static const uint64_t mt_bounds[] = {50, 100, 250, 500, 1000, 2500, 5000, 10000, 50000};
#define MT_NB (sizeof mt_bounds / sizeof mt_bounds[0])

typedef struct mt_assigned {
    char task[FLOW_ID_MAX]; /* the key */
    uint64_t ns;            /* hrtime of the assignment */
} mt_assigned;

typedef struct mt_state {
    hmap assigned;  /* task → mt_assigned */
    json_t *events; /* name → count */
    uint64_t bucket[MT_NB + 1];
    uint64_t count, sum_us;
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
    if (name && task && strcmp(name, "task_assigned") == 0) {
        mt_assigned *t = flow_hget(&st->assigned, task);
        if (t == NULL && (t = calloc(1, sizeof *t)) != NULL) {
            snprintf(t->task, sizeof t->task, "%s", task);
            flow_hput(&st->assigned, t->task, t);
        }
        if (t) {
            t->ns = uv_hrtime();
        }
    } else if (name && task &&
               (strcmp(name, "task_started") == 0 || strcmp(name, "task_completed") == 0 ||
                strcmp(name, "task_failed") == 0 || strcmp(name, "task_cancelled") == 0)) {
        mt_assigned *t = flow_hdel(&st->assigned, task);
        if (t && strcmp(name, "task_started") == 0) {
            uint64_t us = (uv_hrtime() - t->ns) / 1000;
            size_t b = 0;
            while (b < MT_NB && us > mt_bounds[b]) {
                b++;
            }
            st->bucket[b]++;
            st->count++;
            st->sum_us += us;
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
    for (size_t b = 0; b <= MT_NB; b++) {
        cum += st->bucket[b];
        json_array_append_new(
            h, json_pack("{s:o, s:I}", "le",
                         b < MT_NB ? json_integer((json_int_t)mt_bounds[b]) : json_string("+Inf"),
                         "count", (json_int_t)cum));
    }
    json_t *o =
        json_pack("{s:O, s:{s:o, s:I, s:I}}", "events", st->events, "dispatch_latency_us",
                  "buckets", h, "count", (json_int_t)st->count, "sum", (json_int_t)st->sum_us);
    flow__reply_ok(sup_self_rt(self), sup_msg_from(m), o);
}

static int mt_init(sup_actor *self, void *state, void *arg)
{
    (void)arg;
    mt_state *st = state;
    hmap_init(&st->assigned);
    st->events = json_object();
    sup_set_label(self, FLOW_N_METRICS);
    return 0;
}

static void mt_terminate(sup_actor *self, void *state, const sup_reason *reason)
{
    (void)self;
    (void)reason;
    mt_state *st = state;
    size_t it = 0;
    for (const hmap_slot *e; (e = hmap_next(&st->assigned, &it)) != NULL;) {
        free(e->val);
    }
    hmap_free(&st->assigned);
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
