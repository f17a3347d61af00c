/* flow/api.c — the flow API (macula/flow.h): requests into the flow actors, and the helpers
 * the actors share for answering them (flow_int.h). */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "flow/flow_int.h"

/* ---- helpers shared by the actors -------------------------------------------------------- */

static void flow__reply_json(sup_rt *rt, sup_from to, json_t *j)
{
    char *text = json_dumps(j, JSON_COMPACT | JSON_ENCODE_ANY);
    json_decref(j);
    if (text) {
        sup_reply(rt, to, text, strlen(text));
        free(text);
    }
}

void flow__reply_ok(sup_rt *rt, sup_from to, json_t *result)
{
    json_t *o = json_object();
    json_object_set_new(o, "ok", result ? result : json_null());
    flow__reply_json(rt, to, o);
}

void flow__reply_err(sup_rt *rt, sup_from to, int code, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    flow__reply_json(rt, to,
                     json_pack("{s:s, s:i, s:s}", "error", flow_strerror(code), "code", code,
                               "message", msg[0] ? msg : flow_strerror(code)));
}

int flow__cast_json(sup_rt *rt, sup_pid from, sup_pid to, int tag, json_t *j)
{
    char *text = json_dumps(j, JSON_COMPACT | JSON_ENCODE_ANY);
    json_decref(j);
    if (text == NULL) {
        return SUP_ENOMEM;
    }
    int rc = sup_cast(rt, from, to, tag, text, strlen(text));
    free(text);
    return rc;
}

json_t *flow__msg_json(const sup_msg *m)
{
    if (m->data == NULL || m->len == 0) {
        return NULL;
    }
    return json_loadb(m->data, m->len, JSON_DECODE_ANY | JSON_REJECT_DUPLICATES, NULL);
}

void flow__forward(sup_actor *self, sup_from from, const char *op, json_t *args)
{
    json_t *req = json_pack("{s:s, s:o}", "op", op, "args", args ? args : json_object());
    char *text = json_dumps(req, JSON_COMPACT);
    json_decref(req);
    sup_rt *rt = sup_self_rt(self);
    sup_pid reg = sup_whereis(rt, FLOW_N_REGISTRY);
    size_t len = text ? strlen(text) : 0;
    char *buf = malloc(sizeof from + len);
    if (buf == NULL || text == NULL || sup_pid_is_null(reg)) {
        flow__reply_err(rt, from, FLOW_ENOPROC, "registry not running");
    } else {
        memcpy(buf, &from, sizeof from);
        memcpy(buf + sizeof from, text, len);
        if (sup_cast(rt, sup_self(self), reg, FLOW_TAG_FWD, buf, sizeof from + len) != 0) {
            flow__reply_err(rt, from, FLOW_ENOPROC, "registry not running");
        }
    }
    free(buf);
    free(text);
}

void flow__front_door(sup_actor *self, void *state, const sup_msg *m, const char *op,
                      flow_door_fn handle)
{
    if (m->tag != FLOW_TAG_REQ) {
        return;
    }
    sup_from from = sup_msg_from(m);
    json_t *req = flow__msg_json(m);
    const char *name = json_string_value(json_object_get(req, "op"));
    json_t *args = json_object_get(req, "args");
    if (name == NULL || !json_is_object(args)) {
        flow__reply_err(sup_self_rt(self), from, FLOW_EINVAL, "request needs an op and args");
    } else if (strcmp(name, op) == 0) {
        handle(self, state, from, args);
    } else {
        flow__forward(self, from, name, json_incref(args));
    }
    json_decref(req);
}

void flow__hmap_free_values(hmap *m, void (*fr)(void *))
{
    size_t it = 0;
    for (const hmap_slot *e; (e = hmap_next(m, &it)) != NULL;) {
        fr(e->val);
    }
    hmap_free(m);
}

uint64_t flow__now_ns(sup_rt *rt)
{
    return sup_rt_loop(rt) != NULL ? uv_hrtime() : sup_rt_now(rt) * 1000000u;
}

static void flow__hex(char *out, const unsigned char *b, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = hex[b[i] >> 4];
        out[2 * i + 1] = hex[b[i] & 15];
    }
    out[2 * n] = '\0';
}

static void flow__random(unsigned char *b, size_t n)
{
    if (uv_random(NULL, NULL, b, n, 0, NULL) != 0) {
        /* no entropy source: a counter keeps ids unique within the process */
        static uint64_t ctr;
        ctr++;
        for (size_t i = 0; i < n; i++) {
            b[i] = (unsigned char)(ctr >> (8 * (i % 8)));
        }
    }
}

void flow__uuid(char out[37])
{
    unsigned char b[16];
    char h[33];
    flow__random(b, sizeof b);
    b[6] = (unsigned char)((b[6] & 0x0f) | 0x40);
    b[8] = (unsigned char)((b[8] & 0x3f) | 0x80);
    flow__hex(h, b, 16);
    snprintf(out, 37, "%.8s-%.4s-%.4s-%.4s-%.12s", h, h + 8, h + 12, h + 16, h + 20);
}

void flow__agent_id(char out[FLOW_ID_MAX])
{
    char u[37];
    flow__uuid(u);
    snprintf(out, FLOW_ID_MAX, "agent-%.8s%.4s", u, u + 9);
}

void flow__trace_id(char out[33])
{
    unsigned char b[16];
    flow__random(b, sizeof b);
    flow__hex(out, b, 16);
}

void flow__span_id(char out[17])
{
    unsigned char b[8];
    flow__random(b, sizeof b);
    flow__hex(out, b, 8);
}

int flow__start_named(sup_rt *rt, sup_pid parent, const sup_behaviour *b, void *arg,
                      const char *name, sup_pid *out, sup_reason *why)
{
    int rc = sup_spawn(rt, parent, b, arg, SUP_SPAWN_LINK, out, why);
    if (rc == 0 && sup_register(rt, name, *out) != 0) {
        /* a previous incarnation's name is released when it ends; here it must be free */
        sup_reason r = sup_reason_error("name_taken");
        sup_exit(rt, SUP_NOPID, *out, &r);
        if (why) {
            *why = r;
        }
        return SUP_EINIT;
    }
    return rc;
}

/* ---- requests ---------------------------------------------------------------------------- */

static const char *flow__route(const char *op)
{
    if (strncmp(op, "task_", 5) == 0) {
        return FLOW_N_TASK_QUEUE;
    }
    if (strncmp(op, "agent_", 6) == 0) {
        return FLOW_N_LB;
    }
    if (strncmp(op, "chaos_", 6) == 0) {
        return FLOW_N_CHAOS;
    }
    if (strcmp(op, "observer_metrics") == 0) {
        return FLOW_N_METRICS;
    }
    if (strcmp(op, "traces") == 0 || strcmp(op, "otlp_status") == 0) {
        return FLOW_N_OTEL;
    }
    if (strcmp(op, "health") == 0) {
        return FLOW_N_HEALTH;
    }
    if (strcmp(op, "breakers") == 0) {
        return FLOW_N_BREAKER;
    }
    return FLOW_N_REGISTRY;
}

static char *flow__req_text(const char *op, const json_t *args)
{
    json_t *req = json_object();
    json_object_set_new(req, "op", json_string(op));
    json_object_set_new(req, "args", args ? json_deep_copy(args) : json_object());
    char *text = json_dumps(req, JSON_COMPACT);
    json_decref(req);
    return text;
}

uint64_t flow_request_async(sup_actor *self, const char *op, const json_t *args,
                            uint64_t timeout_ms)
{
    sup_pid to = sup_whereis(sup_self_rt(self), flow__route(op));
    char *text = flow__req_text(op, args);
    uint64_t ref = sup_call(self, to, FLOW_TAG_REQ, text, text ? strlen(text) : 0,
                            timeout_ms ? timeout_ms : 30000);
    free(text);
    return ref;
}

static int flow__decode(const char *data, size_t len, json_t **out)
{
    json_t *j = json_loadb(data, len, JSON_DECODE_ANY, NULL);
    json_t *ok = json_object_get(j, "ok");
    int rc = 0;
    if (ok) {
        if (out) {
            *out = json_incref(ok);
        }
    } else {
        json_t *code = json_object_get(j, "code");
        rc = json_is_integer(code) ? (int)json_integer_value(code) : FLOW_EINVAL;
        if (out) {
            *out = j ? json_incref(j) : json_pack("{s:s}", "error", "bad_reply");
        }
    }
    json_decref(j);
    return rc;
}

static json_t *flow__errobj(int code, const char *msg)
{
    return json_pack("{s:s, s:i, s:s}", "error", flow_strerror(code), "code", code, "message", msg);
}

int flow_reply_decode(const sup_msg *m, json_t **out)
{
    if (m->status != 0) {
        int code = m->status == SUP_ETIMEDOUT ? FLOW_ETIMEOUT : FLOW_ENOPROC;
        if (out) {
            *out = flow__errobj(code, code == FLOW_ETIMEOUT ? "request timed out"
                                                            : "flow is not running");
        }
        return code;
    }
    return flow__decode(m->data, m->len, out);
}

/* A synchronous call capturing a reply of any size. */
typedef struct flow_sync {
    sup_pid to;
    const char *text;
    uint64_t timeout;
    uint64_t ref;
    bool done;
    int status;
    char *reply;
    size_t rlen;
} flow_sync;

static int flow__sync_init(sup_actor *self, void *state, void *arg)
{
    flow_sync *s = arg;
    *(flow_sync **)state = s;
    s->ref = sup_call(self, s->to, FLOW_TAG_REQ, s->text, strlen(s->text), s->timeout);
    return 0;
}

static void flow__sync_info(sup_actor *self, void *state, const sup_msg *m)
{
    flow_sync *s = *(flow_sync **)state;
    if (m->kind != SUP_MSG_REPLY || m->ref != s->ref) {
        return;
    }
    s->done = true;
    s->status = m->status;
    if (m->status == 0 && m->len > 0) {
        s->reply = malloc(m->len);
        if (s->reply) {
            memcpy(s->reply, m->data, m->len);
            s->rlen = m->len;
        }
    }
    sup_reason n = sup_reason_normal();
    sup_stop(self, &n);
}

static const sup_behaviour flow__sync_behaviour = {
    .name = "flow_request",
    .state_size = sizeof(flow_sync *),
    .init = flow__sync_init,
    .handle_info = flow__sync_info,
};

int flow_request(sup_rt *rt, const char *op, const json_t *args, uint64_t timeout_ms, json_t **out)
{
    if (out) {
        *out = NULL;
    }
    sup_pid to = sup_whereis(rt, flow__route(op));
    if (sup_pid_is_null(to)) {
        if (out) {
            *out = flow__errobj(FLOW_ENOPROC, "flow is not running");
        }
        return FLOW_ENOPROC;
    }
    char *text = flow__req_text(op, args);
    if (text == NULL) {
        return FLOW_ENOMEM;
    }
    flow_sync s = {.to = to, .text = text, .timeout = timeout_ms ? timeout_ms : 30000};
    sup_pid caller;
    if (sup_spawn(rt, SUP_NOPID, &flow__sync_behaviour, &s, 0, &caller, NULL) != 0) {
        free(text);
        return FLOW_ENOMEM;
    }
    uv_loop_t *loop = sup_rt_loop(rt);
    while (!s.done) {
        sup_rt_run(rt);
        if (s.done) {
            break;
        }
        if (loop == NULL) {
            uint64_t next = sup_rt_next_deadline(rt);
            if (next == UINT64_MAX) {
                break;
            }
            sup_rt_advance(rt, next);
        } else {
            uv_run(loop, UV_RUN_ONCE);
        }
    }
    sup_rt_run(rt);
    free(text);
    if (!s.done) {
        sup_exit(rt, SUP_NOPID, caller, &(sup_reason){.kind = SUP_R_KILL});
        if (out) {
            *out = flow__errobj(FLOW_ETIMEOUT, "no answer");
        }
        return FLOW_ETIMEOUT;
    }
    int rc;
    if (s.status != 0) {
        rc = s.status == SUP_ETIMEDOUT ? FLOW_ETIMEOUT : FLOW_ENOPROC;
        if (out) {
            *out =
                flow__errobj(rc, rc == FLOW_ETIMEOUT ? "request timed out" : "flow is not running");
        }
    } else {
        rc = flow__decode(s.reply, s.rlen, out);
    }
    free(s.reply);
    return rc;
}

/* ---- wrappers ----------------------------------------------------------------------------- */

static int flow__req1(sup_rt *rt, const char *op, json_t *args, json_t **out)
{
    int rc = flow_request(rt, op, args, 0, out);
    json_decref(args);
    return rc;
}

/* A request whose only argument is one id. */
static int flow__req_id(sup_rt *rt, const char *op, const char *key, const char *id, json_t **out)
{
    return flow__req1(rt, op, json_pack("{s:s?}", key, id), out);
}

/* A request with a spec object completed by the swarm's id. */
static int flow__req_spec(sup_rt *rt, const char *op, const char *swarm, const json_t *spec,
                          json_t **out)
{
    json_t *a = spec ? json_deep_copy(spec) : json_object();
    if (swarm) {
        json_object_set_new(a, "swarm", json_string(swarm));
    }
    return flow__req1(rt, op, a, out);
}

int flow_swarm_create(sup_rt *rt, const json_t *spec, json_t **out)
{
    return flow_request(rt, "swarm_create", spec, 0, out);
}
int flow_swarm_list(sup_rt *rt, json_t **out)
{
    return flow_request(rt, "swarm_list", NULL, 0, out);
}
int flow_swarm_status(sup_rt *rt, const char *swarm, json_t **out)
{
    return flow__req_id(rt, "swarm_status", "swarm", swarm, out);
}
int flow_swarm_destroy(sup_rt *rt, const char *swarm, json_t **out)
{
    return flow__req_id(rt, "swarm_destroy", "swarm", swarm, out);
}
int flow_swarm_scale(sup_rt *rt, const char *swarm, const char *role, int min, json_t **out)
{
    return flow__req1(rt, "swarm_scale",
                      json_pack("{s:s?, s:s?, s:i}", "swarm", swarm, "role", role, "count", min),
                      out);
}
int flow_agent_spawn(sup_rt *rt, const char *swarm, const json_t *spec, json_t **out)
{
    return flow__req_spec(rt, "agent_spawn", swarm, spec, out);
}
int flow_agent_list(sup_rt *rt, const char *swarm, json_t **out)
{
    return flow__req_id(rt, "agent_list", "swarm", swarm, out);
}
int flow_agent_stop(sup_rt *rt, const char *agent, json_t **out)
{
    return flow__req_id(rt, "agent_stop", "agent", agent, out);
}
int flow_task_submit(sup_rt *rt, const char *swarm, const json_t *spec, json_t **out)
{
    return flow__req_spec(rt, "task_submit", swarm, spec, out);
}
int flow_task_status(sup_rt *rt, const char *task, json_t **out)
{
    return flow__req_id(rt, "task_status", "task", task, out);
}
int flow_task_result(sup_rt *rt, const char *task, uint64_t wait_ms, json_t **out)
{
    json_t *a = json_pack("{s:s?, s:I}", "task", task, "wait_ms", (json_int_t)wait_ms);
    int rc = flow_request(rt, "task_result", a, wait_ms + 30000, out);
    json_decref(a);
    return rc;
}
int flow_task_list(sup_rt *rt, const char *swarm, const char *state, json_t **out)
{
    return flow__req1(rt, "task_list", json_pack("{s:s?, s:s?}", "swarm", swarm, "state", state),
                      out);
}
int flow_task_cancel(sup_rt *rt, const char *task, json_t **out)
{
    return flow__req_id(rt, "task_cancel", "task", task, out);
}
int flow_metrics(sup_rt *rt, json_t **out)
{
    int rc = flow_request(rt, "metrics", NULL, 0, out);
    json_t *obs = NULL;
    if (rc == 0 && flow_request(rt, "observer_metrics", NULL, 0, &obs) == 0) {
        json_object_set_new(*out, "observer", obs);
    } else {
        json_decref(obs);
    }
    return rc;
}
