/*
 * flow/observer/otel_tracer.c — erlmcp_flow_otel_tracer: one span per task, from submit to
 * its end, with the assign / start / requeue points as span events (times in ns, monotonic).
 * Finished spans are kept in a ring of the last 1,024 and returned by the "traces" request.
 * Export as OTLP/HTTP JSON to OTEL_EXPORTER_OTLP_ENDPOINT is not built yet.
 */
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "flow/flow_int.h"

#define OT_RING 1024

typedef struct ot_state {
    hmap open; /* task → json span (key: the span's "task" string, which never changes) */
    json_t *ring[OT_RING];
    size_t head, n;
} ot_state;

static void ot_cast(sup_actor *self, void *state, const sup_msg *m)
{
    (void)self;
    ot_state *st = state;
    if (m->tag != FLOW_TAG_OBS) {
        return;
    }
    json_t *e = flow__msg_json(m);
    const char *name = json_string_value(json_object_get(e, "event"));
    const char *task = json_string_value(json_object_get(e, "task"));
    if (name == NULL || task == NULL) {
        json_decref(e);
        return;
    }
    json_int_t now = (json_int_t)uv_hrtime();
    json_t *span = flow_hget(&st->open, task);
    if (span == NULL && strcmp(name, "task_accepted") == 0) {
        span = json_pack("{s:s, s:s, s:s?, s:I, s:[]}", "name", "flow.task", "task", task, "swarm",
                         json_string_value(json_object_get(e, "swarm")), "start_ns", now, "events");
        flow_hput(&st->open, json_string_value(json_object_get(span, "task")), span);
    }
    if (span) {
        json_t *ev = json_pack("{s:s, s:I}", "name", name, "ns", now);
        if (json_object_get(e, "agent")) {
            json_object_set(ev, "agent", json_object_get(e, "agent"));
        }
        json_array_append_new(json_object_get(span, "events"), ev);
        if (strcmp(name, "task_completed") == 0 || strcmp(name, "task_failed") == 0 ||
            strcmp(name, "task_cancelled") == 0) {
            flow_hdel(&st->open, task);
            json_object_set_new(span, "end_ns", json_integer(now));
            json_object_set_new(span, "status", json_string(name + 5));
            if (st->n == OT_RING) { /* full: the oldest goes */
                json_decref(st->ring[st->head]);
                st->ring[st->head] = span;
                st->head = (st->head + 1) % OT_RING;
            } else {
                st->ring[(st->head + st->n++) % OT_RING] = span;
            }
        }
    }
    json_decref(e);
}

static void ot_call(sup_actor *self, void *state, const sup_msg *m)
{
    ot_state *st = state;
    json_t *a = json_array();
    for (size_t i = 0; i < st->n; i++) {
        json_array_append(a, st->ring[(st->head + i) % OT_RING]);
    }
    flow__reply_ok(sup_self_rt(self), sup_msg_from(m), a);
}

static int ot_init(sup_actor *self, void *state, void *arg)
{
    (void)arg;
    hmap_init(&((ot_state *)state)->open);
    sup_set_label(self, FLOW_N_OTEL);
    return 0;
}

static void ot_terminate(sup_actor *self, void *state, const sup_reason *reason)
{
    (void)self;
    (void)reason;
    ot_state *st = state;
    size_t it = 0;
    for (const hmap_slot *e; (e = hmap_next(&st->open, &it)) != NULL;) {
        json_decref(e->val);
    }
    hmap_free(&st->open);
    for (size_t i = 0; i < st->n; i++) {
        json_decref(st->ring[(st->head + i) % OT_RING]);
    }
}

static const sup_behaviour ot_behaviour = {
    .name = FLOW_N_OTEL,
    .state_size = sizeof(ot_state),
    .init = ot_init,
    .handle_call = ot_call,
    .handle_cast = ot_cast,
    .terminate = ot_terminate,
};

FLOW_NAMED_START(flow_otel_start, ot_behaviour, FLOW_N_OTEL)
