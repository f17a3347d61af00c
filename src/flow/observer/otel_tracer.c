/*
 * flow/observer/otel_tracer.c — erlmcp_flow_otel_tracer: spans for every task, exported as
 * OTLP/HTTP JSON when OTEL_EXPORTER_OTLP_ENDPOINT is set.
 *
 * Per task, in the task's trace (its trace_id): a root span "flow.task" from submission to its
 * end, and children for each phase: "flow.queued" (submitted or requeued -> assigned),
 * "flow.assigned" (assigned -> started by the agent), "flow.run" (started -> completed, failed,
 * requeued or the next ring stage). Times are wall-clock ns (CLOCK_REALTIME; on a virtual
 * runtime the virtual clock, sup_rt_now × 10^6) taken when the registry's events arrive, but
 * for the start of the root span and the first "flow.queued": a task submitted on this node
 * starts when its task_submit request entered the node (the task_accepted event's
 * "entered_ns", the registry's stamp on flow__now_ns, converted to wall-clock as
 * wall_now - (mono_now - entered_ns)), so the wait before the command was applied (the
 * registry's mailbox, a Raft commit) counts. A task known only through replication (submitted
 * on another node: no stamp here) starts when its task_accepted event arrives. A requeued
 * task's next "flow.queued" starts when its task_requeued event arrives.
 * Attributes: flow.task.id, flow.swarm, flow.agent, flow.attempt; status OK or ERROR with the
 * error text.
 *
 * Finished spans are kept in a ring of the last 1,024 (the "traces" request) and, with an
 * endpoint, queued for export (the OpenTelemetry batch span processor's settings):
 * OTEL_EXPORTER_OTLP_ENDPOINT (base URL, "/v1/traces" appended) or
 * OTEL_EXPORTER_OTLP_TRACES_ENDPOINT (as is), plain http:// only; OTEL_BSP_SCHEDULE_DELAY (ms,
 * 5000), OTEL_BSP_MAX_EXPORT_BATCH_SIZE (512), OTEL_BSP_MAX_QUEUE_SIZE (2048; spans beyond it
 * are dropped and counted), OTEL_EXPORTER_OTLP_TIMEOUT (ms, 10000), OTEL_SERVICE_NAME
 * ("macula"). A batch goes out when it is full or the delay passes, one POST at a time, on the
 * loop (flow/observer/http_post.c): the actor never waits. Spans still queued when the actor
 * ends go out in a last POST nobody waits for. A virtual runtime (no loop) exports nothing.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "flow/flow_int.h"
#include "flow/observer/http_post.h"
#include "macula/version.h"

#define OT_RING 1024

enum { OT_T_FLUSH = FLOW_TAG_INTERNAL + 200, OT_POSTED };
enum { OT_QUEUED = 0, OT_ASSIGNED, OT_RUNNING };
static const char *const ot_phase_names[] = {"flow.queued", "flow.assigned", "flow.run"};

typedef struct ot_task {
    char task[FLOW_ID_MAX]; /* the key */
    char swarm[FLOW_ID_MAX];
    char agent[FLOW_ID_MAX];
    char trace[33];
    char root[17]; /* the root span's id */
    uint64_t t0, phase_start;
    int phase, attempt;
} ot_task;

typedef struct ot_state {
    hmap open; /* task → ot_task */
    json_t *ring[OT_RING];
    size_t head, n;
    /* export */
    bool exporting;
    flow_http_url url;
    char service[128];
    uint64_t delay_ms, timeout_ms;
    size_t max_batch, max_queue;
    json_t *pending; /* spans waiting for export */
    bool in_flight;
    flow_http_req *req; /* the export in flight (released on its answer or at the end) */
    size_t in_flight_n;
    uint64_t flush_timer;
    uint64_t exported, dropped, failed_posts;
    int last_status;
    char last_error[128];
} ot_state;

/* The spans' clock: wall-clock ns, or the virtual clock on a virtual runtime. */
static uint64_t ot__now_ns(sup_rt *rt)
{
    if (sup_rt_loop(rt) == NULL) {
        return sup_rt_now(rt) * 1000000u;
    }
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

/* When a task accepted at `now` (ot__now_ns) started: its submit request's arrival on this
 * node if the event carries it ("entered_ns", on flow__now_ns's clock), else now. */
static uint64_t ot__submitted_at(sup_rt *rt, const json_t *e, uint64_t now)
{
    const json_t *at = json_object_get(e, "entered_ns");
    if (!json_is_integer(at) || json_integer_value(at) < 0) {
        return now;
    }
    uint64_t mono = flow__now_ns(rt), entered = (uint64_t)json_integer_value(at);
    uint64_t waited = mono > entered ? mono - entered : 0;
    return waited < now ? now - waited : 0;
}

static json_t *ot__attr(const char *key, json_t *value)
{
    return json_pack("{s:s, s:o}", "key", key, "value", value);
}

static json_t *ot__str_attr(const char *key, const char *v)
{
    return ot__attr(key, json_pack("{s:s}", "stringValue", v));
}

/* An OTLP/JSON span (64-bit times as decimal strings, as the encoding allows). */
static json_t *ot__span(const ot_task *t, const char *name, const char *span_id, const char *parent,
                        uint64_t start, uint64_t end, const char *error)
{
    char s[24], e[24];
    snprintf(s, sizeof s, "%llu", (unsigned long long)start);
    snprintf(e, sizeof e, "%llu", (unsigned long long)end);
    json_t *attrs = json_array();
    json_array_append_new(attrs, ot__str_attr("flow.task.id", t->task));
    json_array_append_new(attrs, ot__str_attr("flow.swarm", t->swarm));
    if (t->agent[0] && parent) {
        json_array_append_new(attrs, ot__str_attr("flow.agent", t->agent));
    }
    char attempt[24];
    snprintf(attempt, sizeof attempt, "%d", t->attempt);
    json_array_append_new(attrs, ot__attr("flow.attempt", json_pack("{s:s}", "intValue", attempt)));
    json_t *span = json_pack("{s:s, s:s, s:s, s:i, s:s, s:s, s:o}", "traceId", t->trace, "spanId",
                             span_id, "name", name, "kind", 1, "startTimeUnixNano", s,
                             "endTimeUnixNano", e, "attributes", attrs);
    if (parent) {
        json_object_set_new(span, "parentSpanId", json_string(parent));
    }
    json_object_set_new(span, "status",
                        error ? json_pack("{s:i, s:s}", "code", 2, "message", error)
                              : json_pack("{s:i}", "code", 1));
    return span;
}

static void ot__flush(sup_actor *self, ot_state *st);

/* A finished span: into the ring and, when exporting, the export queue. Takes span. */
static void ot__finished(sup_actor *self, ot_state *st, json_t *span)
{
    if (st->exporting) {
        if (json_array_size(st->pending) >= st->max_queue) {
            st->dropped++;
        } else {
            json_array_append(st->pending, span);
            if (json_array_size(st->pending) >= st->max_batch) {
                ot__flush(self, st);
            } else if (st->flush_timer == 0) {
                st->flush_timer = sup_send_after(self, st->delay_ms, OT_T_FLUSH, NULL, 0);
            }
        }
    }
    if (st->n == OT_RING) { /* full: the oldest goes */
        json_decref(st->ring[st->head]);
        st->ring[st->head] = span;
        st->head = (st->head + 1) % OT_RING;
    } else {
        st->ring[(st->head + st->n++) % OT_RING] = span;
    }
}

/* Ends the task's current phase span at now. */
static void ot__end_phase(sup_actor *self, ot_state *st, ot_task *t, uint64_t now,
                          const char *error)
{
    char id[17];
    flow__span_id(id);
    ot__finished(self, st,
                 ot__span(t, ot_phase_names[t->phase], id, t->root, t->phase_start, now, error));
    t->phase_start = now;
}

static void ot__event(sup_actor *self, ot_state *st, const json_t *e)
{
    const char *name = json_string_value(json_object_get(e, "event"));
    const char *task = json_string_value(json_object_get(e, "task"));
    const char *agent = json_string_value(json_object_get(e, "agent"));
    const char *text = json_string_value(json_object_get(e, "text"));
    if (name == NULL || task == NULL) {
        return;
    }
    uint64_t now = ot__now_ns(sup_self_rt(self));
    ot_task *t = flow_hget(&st->open, task);
    if (t == NULL) {
        if (strcmp(name, "task_accepted") != 0 || (t = calloc(1, sizeof *t)) == NULL) {
            return;
        }
        snprintf(t->task, sizeof t->task, "%s", task);
        snprintf(t->swarm, sizeof t->swarm, "%s",
                 json_string_value(json_object_get(e, "swarm")) ?: "");
        const char *trace = json_string_value(json_object_get(e, "trace_id"));
        bool hex = trace && strlen(trace) == 32 && strspn(trace, "0123456789abcdef") == 32;
        if (hex) {
            snprintf(t->trace, sizeof t->trace, "%s", trace);
        } else {
            flow__trace_id(t->trace);
        }
        flow__span_id(t->root);
        t->t0 = t->phase_start = ot__submitted_at(sup_self_rt(self), e, now);
        t->attempt = 1;
        if (flow_hput(&st->open, t->task, t) != 0) {
            free(t);
        }
        return;
    }
    if (strcmp(name, "task_assigned") == 0) {
        ot__end_phase(self, st, t, now, NULL);
        t->phase = OT_ASSIGNED;
        snprintf(t->agent, sizeof t->agent, "%s", agent ? agent : "");
    } else if (strcmp(name, "task_started") == 0 && t->phase == OT_ASSIGNED) {
        ot__end_phase(self, st, t, now, NULL);
        t->phase = OT_RUNNING;
    } else if (strcmp(name, "task_requeued") == 0) {
        ot__end_phase(self, st, t, now, text ? text : "requeued");
        t->phase = OT_QUEUED;
        t->attempt++;
    } else if (strcmp(name, "task_completed") == 0 || strcmp(name, "task_failed") == 0 ||
               strcmp(name, "task_cancelled") == 0) {
        const char *err = strcmp(name, "task_completed") == 0 ? NULL : text ? text : name + 5;
        ot__end_phase(self, st, t, now, t->phase == OT_RUNNING ? err : NULL);
        flow_hdel(&st->open, t->task);
        ot__finished(self, st, ot__span(t, "flow.task", t->root, NULL, t->t0, now, err));
        free(t);
    }
}

/* ---- export ------------------------------------------------------------------------------- */

/* The OTLP/JSON request body for spans. */
static char *ot__body(const ot_state *st, json_t *spans)
{
    json_t *res = json_pack("{s:[o, o]}", "attributes", ot__str_attr("service.name", st->service),
                            ot__str_attr("service.version", MACULA_VERSION));
    json_t *req = json_pack("{s:[{s:o, s:[{s:{s:s, s:s}, s:o}]}]}", "resourceSpans", "resource",
                            res, "scopeSpans", "scope", "name", "macula.flow", "version",
                            MACULA_VERSION, "spans", spans);
    char *text = json_dumps(req, JSON_COMPACT);
    json_decref(req);
    return text;
}

/* Posts up to max_batch queued spans (owner NOPID: nobody waits for the answer). */
static void ot__post(sup_rt *rt, sup_pid owner, ot_state *st)
{
    json_t *batch = json_array();
    size_t n = json_array_size(st->pending);
    n = n < st->max_batch ? n : st->max_batch;
    for (size_t i = 0; i < n; i++) {
        json_array_append(batch, json_array_get(st->pending, i));
    }
    for (size_t i = 0; i < n; i++) {
        json_array_remove(st->pending, 0);
    }
    char *body = ot__body(st, batch);
    bool owned = !sup_pid_is_null(owner);
    if (body == NULL ||
        flow_http_post(sup_rt_loop(rt), rt, owner, OT_POSTED, n, &st->url, "application/json", body,
                       strlen(body), st->timeout_ms, owned ? &st->req : NULL) != 0) {
        st->failed_posts++;
        return;
    }
    st->in_flight = owned;
    st->in_flight_n = n;
}

static void ot__flush(sup_actor *self, ot_state *st)
{
    if (st->flush_timer) {
        sup_cancel_timer(self, st->flush_timer);
        st->flush_timer = 0;
    }
    if (!st->in_flight && json_array_size(st->pending) > 0) {
        ot__post(sup_self_rt(self), sup_self(self), st);
    }
}

static void ot__posted(sup_actor *self, ot_state *st, const sup_msg *m)
{
    flow_http_result r;
    if (m->len != sizeof r) {
        return;
    }
    memcpy(&r, m->data, sizeof r);
    flow_http_release(st->req);
    st->req = NULL;
    st->in_flight = false;
    st->last_status = r.status;
    if (r.status >= 200 && r.status < 300) {
        st->exported += r.id;
    } else {
        st->failed_posts++;
        snprintf(st->last_error, sizeof st->last_error, "%s",
                 r.error[0] ? r.error : "HTTP status not 2xx");
    }
    if (json_array_size(st->pending) >= st->max_batch) {
        ot__flush(self, st);
    } else if (json_array_size(st->pending) > 0 && st->flush_timer == 0) {
        st->flush_timer = sup_send_after(self, st->delay_ms, OT_T_FLUSH, NULL, 0);
    }
}

static uint64_t ot__env_u64(const char *name, uint64_t def, uint64_t lo, uint64_t hi)
{
    const char *v = getenv(name);
    char *end = NULL;
    unsigned long long n = v ? strtoull(v, &end, 10) : 0;
    return v && end != v && *end == '\0' && n >= lo && n <= hi ? (uint64_t)n : def;
}

static void ot__configure(ot_state *st, sup_rt *rt)
{
    const char *base = getenv("OTEL_EXPORTER_OTLP_ENDPOINT");
    const char *traces = getenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT");
    char url[FLOW_HTTP_URL_MAX], err[128];
    if (traces && traces[0]) {
        snprintf(url, sizeof url, "%s", traces);
    } else if (base && base[0]) {
        size_t l = strlen(base);
        snprintf(url, sizeof url, "%.*s/v1/traces", (int)(base[l - 1] == '/' ? l - 1 : l), base);
    } else {
        return;
    }
    if (sup_rt_loop(rt) == NULL) {
        return; /* a virtual runtime has no network */
    }
    if (flow_http_url_parse(url, &st->url, err, sizeof err) != 0) {
        fprintf(stderr, "flow: OTLP export off: %s\n", err);
        return;
    }
    st->exporting = true;
    st->delay_ms = ot__env_u64("OTEL_BSP_SCHEDULE_DELAY", 5000, 1, 3600000);
    st->max_queue = ot__env_u64("OTEL_BSP_MAX_QUEUE_SIZE", 2048, 1, 1000000);
    st->max_batch = ot__env_u64("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", 512, 1, st->max_queue);
    st->timeout_ms = ot__env_u64("OTEL_EXPORTER_OTLP_TIMEOUT", 10000, 1, 600000);
    const char *svc = getenv("OTEL_SERVICE_NAME");
    snprintf(st->service, sizeof st->service, "%s", svc && svc[0] ? svc : "macula");
}

/* ---- behaviour ---------------------------------------------------------------------------- */

static void ot_cast(sup_actor *self, void *state, const sup_msg *m)
{
    if (m->tag == FLOW_TAG_OBS) {
        json_t *e = flow__msg_json(m);
        ot__event(self, state, e);
        json_decref(e);
    }
}

static void ot_info(sup_actor *self, void *state, const sup_msg *m)
{
    ot_state *st = state;
    if (m->kind == SUP_MSG_TIMER && m->tag == OT_T_FLUSH) {
        st->flush_timer = 0;
        ot__flush(self, st);
    } else if (m->kind == SUP_MSG_INFO && m->tag == OT_POSTED) {
        ot__posted(self, st, m);
    }
}

static void ot_call(sup_actor *self, void *state, const sup_msg *m)
{
    ot_state *st = state;
    json_t *req = flow__msg_json(m);
    const char *op = json_string_value(json_object_get(req, "op"));
    json_t *out;
    if (op && strcmp(op, "otlp_status") == 0) {
        out = json_pack("{s:b, s:I, s:I, s:I, s:I, s:i, s:s}", "exporting", st->exporting,
                        "exported", (json_int_t)st->exported, "queued",
                        (json_int_t)json_array_size(st->pending), "dropped",
                        (json_int_t)st->dropped, "failed_posts", (json_int_t)st->failed_posts,
                        "last_status", st->last_status, "last_error", st->last_error);
    } else {
        out = json_array();
        for (size_t i = 0; i < st->n; i++) {
            json_array_append(out, st->ring[(st->head + i) % OT_RING]);
        }
    }
    json_decref(req);
    flow__reply_ok(sup_self_rt(self), sup_msg_from(m), out);
}

static int ot_init(sup_actor *self, void *state, void *arg)
{
    (void)arg;
    ot_state *st = state;
    hmap_init(&st->open);
    st->pending = json_array();
    ot__configure(st, sup_self_rt(self));
    sup_set_label(self, FLOW_N_OTEL);
    return 0;
}

static void ot_terminate(sup_actor *self, void *state, const sup_reason *reason)
{
    (void)reason;
    ot_state *st = state;
    /* an export in flight is abandoned (it could only answer into a runtime that is going
     * away); the spans still queued are posted once more without an owner */
    flow_http_release(st->req);
    st->req = NULL;
    while (st->exporting && json_array_size(st->pending) > 0) {
        ot__post(sup_self_rt(self), SUP_NOPID, st); /* the last spans: nobody waits */
    }
    flow__hmap_free_values(&st->open, free);
    for (size_t i = 0; i < st->n; i++) {
        json_decref(st->ring[(st->head + i) % OT_RING]);
    }
    json_decref(st->pending);
}

static const sup_behaviour ot_behaviour = {
    .name = FLOW_N_OTEL,
    .state_size = sizeof(ot_state),
    .init = ot_init,
    .handle_call = ot_call,
    .handle_cast = ot_cast,
    .handle_info = ot_info,
    .terminate = ot_terminate,
};

FLOW_NAMED_START(flow_otel_start, ot_behaviour, FLOW_N_OTEL)
