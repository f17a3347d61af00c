/* src/mesh/rpc_client.c — the RPC client API (include/macula/mesh_rpc.h). */
#include "macula/mesh_rpc.h"

#include <jansson.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <uv.h>

#include "base/jsontext.h"
#include "mesh/client.h"
#include "mesh/identity.h"

#define MRPC_ID_LEN 16
#define MRPC_TICK_MS 100
#define MRPC_PING_MS 20000 /* gateways drop clients silent for 3 x 30 s */
#define MRPC_DEFAULT_TIMEOUT 30000u

typedef struct mrpc_pending {
    struct mrpc_pending *next;
    uint8_t id[MRPC_ID_LEN];
    uint64_t deadline;
    macula_rpc_result_fn fn;
    void *ctx;
} mrpc_pending;

typedef struct mrpc_handler {
    struct mrpc_handler *next;
    char *procedure;
    macula_rpc_handler_fn fn;
    void *ctx;
} mrpc_handler;

typedef struct mrpc_request {
    struct mrpc_request *next;
    uint64_t handle;
    uint8_t call_id[64];
    size_t call_id_len;
} mrpc_request;

struct macula_rpc {
    uv_loop_t *loop;
    mesh_client *client;
    identity *id;
    char dir[512];
    char realm[256];
    uv_timer_t timer;
    bool ready, closed;
    uint64_t last_ping;
    macula_rpc_callbacks cb;
    void *ctx;
    mrpc_pending *pending;
    mrpc_handler *handlers;
    mrpc_request *requests;
    uint64_t next_request;
    uint8_t id_prefix[8]; /* call ids: this random prefix and id_seq (no syscall per call) */
    uint64_t id_seq;
};

/* A call id unique to this client (its random prefix) and within it (a counter). */
static void mrpc__new_id(macula_rpc *r, uint8_t id[MRPC_ID_LEN])
{
    uint64_t n = ++r->id_seq;
    memcpy(id, r->id_prefix, sizeof r->id_prefix);
    memcpy(id + sizeof r->id_prefix, &n, sizeof n);
}

const char *macula_rpc_strerror(int err)
{
    switch (err) {
    case MACULA_RPC_OK: return "ok";
    case MACULA_RPC_EINVAL: return "invalid argument";
    case MACULA_RPC_ENOMEM: return "out of memory";
    case MACULA_RPC_ENOTREADY: return "not connected";
    case MACULA_RPC_EIDENTITY: return "no identity";
    case MACULA_RPC_ECONNECT: return "could not connect";
    default: return "unknown error";
    }
}

static void mrpc__fail_all(macula_rpc *r, const char *code, const char *msg)
{
    while (r->pending != NULL) {
        mrpc_pending *p = r->pending;
        r->pending = p->next;
        if (p->fn != NULL) {
            p->fn(r, code, msg, strlen(msg), p->ctx);
        }
        free(p);
    }
}

static mrpc_pending *mrpc__take(macula_rpc *r, const uint8_t *id, size_t len)
{
    for (mrpc_pending **pp = &r->pending; *pp != NULL; pp = &(*pp)->next) {
        if (len == MRPC_ID_LEN && memcmp((*pp)->id, id, MRPC_ID_LEN) == 0) {
            mrpc_pending *p = *pp;
            *pp = p->next;
            return p;
        }
    }
    return NULL;
}

static void mrpc__on_ready(mesh_client *c, const uint8_t server_id[IDENTITY_ID_LEN], void *ctx)
{
    (void)c;
    (void)server_id;
    macula_rpc *r = ctx;
    r->ready = true;
    r->last_ping = uv_now(r->loop);
    if (r->cb.on_ready != NULL) {
        r->cb.on_ready(r, r->ctx);
    }
}

static void mrpc__incoming(macula_rpc *r, const wire_call *c, bool cast)
{
    for (mrpc_handler *h = r->handlers; h != NULL; h = h->next) {
        if (strlen(h->procedure) != c->procedure.len ||
            memcmp(h->procedure, c->procedure.p, c->procedure.len) != 0) {
            continue;
        }
        uint64_t handle = 0;
        if (!cast && c->call_id.len > 0 && c->call_id.len <= 64) {
            mrpc_request *q = calloc(1, sizeof *q);
            if (q == NULL) {
                return;
            }
            q->handle = ++r->next_request;
            memcpy(q->call_id, c->call_id.p, c->call_id.len);
            q->call_id_len = c->call_id.len;
            q->next = r->requests;
            r->requests = q;
            handle = q->handle;
        }
        h->fn(r, handle, h->procedure, (const char *)c->args.p, c->args.len, h->ctx);
        return;
    }
    if (!cast && c->call_id.len > 0) { /* not (or no longer) ours */
        wire_msg m = {.type = WIRE_REPLY};
        m.reply.call_id = c->call_id;
        m.reply.is_error = true;
        m.reply.error.code = (wire_bytes){(const uint8_t *)"no_handler", 10};
        m.reply.error.message = (wire_bytes){(const uint8_t *)"not served here", 15};
        (void)mesh_client_send(r->client, &m);
    }
}

static void mrpc__on_frame(mesh_client *c, const wire_msg *m, void *ctx)
{
    (void)c;
    macula_rpc *r = ctx;
    if (m->type == WIRE_CALL || m->type == WIRE_CAST) {
        mrpc__incoming(r, m->type == WIRE_CALL ? &m->call : &m->cast, m->type == WIRE_CAST);
        return;
    }
    if (m->type != WIRE_REPLY) {
        return;
    }
    mrpc_pending *p = mrpc__take(r, m->reply.call_id.p, m->reply.call_id.len);
    if (p == NULL) {
        return;
    }
    if (m->reply.is_error) {
        char code[64];
        snprintf(code, sizeof code, "%.*s",
                 (int)(m->reply.error.code.len < 63 ? m->reply.error.code.len : 63),
                 (const char *)m->reply.error.code.p);
        p->fn(r, code, (const char *)m->reply.error.message.p, m->reply.error.message.len, p->ctx);
    } else {
        p->fn(r, NULL, (const char *)m->reply.result.p, m->reply.result.len, p->ctx);
    }
    free(p);
}

static void mrpc__on_closed(mesh_client *c, int err, const char *reason, void *ctx)
{
    (void)c;
    (void)err;
    macula_rpc *r = ctx;
    r->ready = false;
    r->closed = true;
    uv_timer_stop(&r->timer);
    mrpc__fail_all(r, "closed", reason ? reason : "closed");
    if (r->cb.on_closed != NULL) {
        r->cb.on_closed(r, reason ? reason : "closed", r->ctx);
    }
}

static void mrpc__tick(uv_timer_t *t)
{
    macula_rpc *r = t->data;
    uint64_t now = uv_now(r->loop);
    for (mrpc_pending **pp = &r->pending; *pp != NULL;) {
        mrpc_pending *p = *pp;
        if (p->deadline <= now) {
            *pp = p->next;
            static const char msg[] = "no answer in time";
            p->fn(r, "timeout", msg, sizeof msg - 1, p->ctx);
            free(p);
        } else {
            pp = &p->next;
        }
    }
    if (r->ready && now - r->last_ping >= MRPC_PING_MS) {
        wire_msg m = {.type = WIRE_PING};
        m.ping.timestamp = (int64_t)now;
        (void)mesh_client_send(r->client, &m);
        r->last_ping = now;
    }
}

int macula_rpc_open(void *loop, const char *url, const char *realm, const macula_rpc_callbacks *cb,
                    void *ctx, macula_rpc **out)
{
    if (loop == NULL || url == NULL || out == NULL) {
        return MACULA_RPC_EINVAL;
    }
    macula_rpc *r = calloc(1, sizeof *r);
    if (r == NULL) {
        return MACULA_RPC_ENOMEM;
    }
    r->loop = loop;
    snprintf(r->realm, sizeof r->realm, "%s", realm && realm[0] ? realm : "macula.default");
    if (cb != NULL) {
        r->cb = *cb;
    }
    r->ctx = ctx;
    const char *tmp = getenv("TMPDIR");
    snprintf(r->dir, sizeof r->dir, "%s/macula-rpc-XXXXXX", tmp && tmp[0] ? tmp : "/tmp");
    identity_config ic = {.data_dir = r->dir, .cert_validity_days = 1};
    char err[256];
    if (uv_random(NULL, NULL, r->id_prefix, sizeof r->id_prefix, 0, NULL) != 0) {
        free(r);
        return MACULA_RPC_EIDENTITY;
    }
    if (mkdtemp(r->dir) == NULL) {
        free(r);
        return MACULA_RPC_EIDENTITY;
    }
    if (identity_load_or_create(&ic, &r->id, err, sizeof err) != IDENTITY_OK) {
        rmdir(r->dir);
        free(r);
        return MACULA_RPC_EIDENTITY;
    }
    uv_timer_init(r->loop, &r->timer);
    r->timer.data = r;
    mesh_client_callbacks mcb = {
        .on_ready = mrpc__on_ready, .on_frame = mrpc__on_frame, .on_closed = mrpc__on_closed};
    int rc = mesh_client_open(r->loop, r->id, url, r->realm, NULL, &mcb, r, &r->client);
    if (rc != MESH_CLIENT_OK) {
        r->client = NULL;
        r->closed = true;
        macula_rpc_free(r);
        return rc == MESH_CLIENT_EINVAL ? MACULA_RPC_EINVAL : MACULA_RPC_ECONNECT;
    }
    uv_timer_start(&r->timer, mrpc__tick, MRPC_TICK_MS, MRPC_TICK_MS);
    *out = r;
    return MACULA_RPC_OK;
}

static int mrpc__send_call(macula_rpc *r, int type, const char *procedure, const char *args,
                           uint32_t timeout_ms, macula_rpc_result_fn done, void *ctx)
{
    if (procedure == NULL || procedure[0] == '\0') {
        return MACULA_RPC_EINVAL;
    }
    if (!r->ready) {
        return MACULA_RPC_ENOTREADY;
    }
    const char *a = args ? args : "null";
    /* what a jansson-based provider would refuse is refused here (no value is built) */
    if (!jsontext_valid(a, strlen(a), JSONTEXT_MAX_DEPTH)) {
        return MACULA_RPC_EINVAL;
    }
    wire_msg m = {.type = (uint8_t)type};
    wire_call *c = type == WIRE_CAST ? &m.cast : &m.call;
    c->procedure = (wire_bytes){(const uint8_t *)procedure, strlen(procedure)};
    c->args = (wire_bytes){(const uint8_t *)a, strlen(a)};
    c->realm = (wire_bytes){(const uint8_t *)r->realm, strlen(r->realm)};
    mrpc_pending *p = NULL;
    uint8_t cast_id[MRPC_ID_LEN];
    if (type == WIRE_CALL) {
        p = calloc(1, sizeof *p);
        if (p == NULL) {
            return MACULA_RPC_ENOMEM;
        }
        mrpc__new_id(r, p->id);
        uint32_t t = timeout_ms ? timeout_ms : MRPC_DEFAULT_TIMEOUT;
        p->deadline = uv_now(r->loop) + t;
        p->fn = done;
        p->ctx = ctx;
        c->call_id = (wire_bytes){p->id, MRPC_ID_LEN};
        c->has_timeout = true;
        c->timeout_ms = t;
    } else {
        mrpc__new_id(r, cast_id);
        c->call_id = (wire_bytes){cast_id, MRPC_ID_LEN};
    }
    if (mesh_client_send(r->client, &m) != MESH_CLIENT_OK) {
        free(p);
        return MACULA_RPC_ENOTREADY;
    }
    if (p != NULL) {
        p->next = r->pending;
        r->pending = p;
    }
    return MACULA_RPC_OK;
}

int macula_rpc_call(macula_rpc *r, const char *procedure, const char *args_json,
                    uint32_t timeout_ms, macula_rpc_result_fn done, void *ctx)
{
    if (r == NULL || done == NULL) {
        return MACULA_RPC_EINVAL;
    }
    return mrpc__send_call(r, WIRE_CALL, procedure, args_json, timeout_ms, done, ctx);
}

int macula_rpc_cast(macula_rpc *r, const char *procedure, const char *args_json)
{
    if (r == NULL) {
        return MACULA_RPC_EINVAL;
    }
    return mrpc__send_call(r, WIRE_CAST, procedure, args_json, 0, NULL, NULL);
}

static void mrpc__ignore(macula_rpc *r, const char *code, const char *text, size_t len, void *ctx)
{
    (void)r;
    (void)code;
    (void)text;
    (void)len;
    (void)ctx;
}

static int mrpc__advert(macula_rpc *r, const char *proc, bool on, macula_rpc_result_fn done,
                        void *ctx)
{
    json_t *o = json_pack("{s:s}", "procedure", proc);
    char *args = o ? json_dumps(o, JSON_COMPACT) : NULL;
    json_decref(o);
    if (args == NULL) {
        return MACULA_RPC_EINVAL;
    }
    int rc = mrpc__send_call(r, WIRE_CALL,
                             on ? "com.macula.rpc.advertise" : "com.macula.rpc.unadvertise", args,
                             0, done ? done : mrpc__ignore, ctx);
    free(args);
    return rc;
}

int macula_rpc_advertise(macula_rpc *r, const char *procedure, macula_rpc_handler_fn fn,
                         void *fn_ctx, macula_rpc_result_fn done, void *done_ctx)
{
    if (r == NULL || procedure == NULL || procedure[0] == '\0' || fn == NULL) {
        return MACULA_RPC_EINVAL;
    }
    mrpc_handler *h = calloc(1, sizeof *h);
    if (h == NULL || (h->procedure = strdup(procedure)) == NULL) {
        free(h);
        return MACULA_RPC_ENOMEM;
    }
    int rc = mrpc__advert(r, procedure, true, done, done_ctx);
    if (rc != MACULA_RPC_OK) {
        free(h->procedure);
        free(h);
        return rc;
    }
    h->fn = fn;
    h->ctx = fn_ctx;
    h->next = r->handlers;
    r->handlers = h;
    return MACULA_RPC_OK;
}

int macula_rpc_unadvertise(macula_rpc *r, const char *procedure, macula_rpc_result_fn done,
                           void *ctx)
{
    if (r == NULL || procedure == NULL) {
        return MACULA_RPC_EINVAL;
    }
    for (mrpc_handler **hp = &r->handlers; *hp != NULL; hp = &(*hp)->next) {
        if (strcmp((*hp)->procedure, procedure) == 0) {
            mrpc_handler *h = *hp;
            *hp = h->next;
            free(h->procedure);
            free(h);
            return mrpc__advert(r, procedure, false, done, ctx);
        }
    }
    return MACULA_RPC_EINVAL;
}

static int mrpc__respond(macula_rpc *r, uint64_t request, bool is_error, const char *code,
                         const char *text, size_t len)
{
    if (r == NULL || request == 0) {
        return MACULA_RPC_EINVAL;
    }
    for (mrpc_request **qp = &r->requests; *qp != NULL; qp = &(*qp)->next) {
        if ((*qp)->handle != request) {
            continue;
        }
        mrpc_request *q = *qp;
        *qp = q->next;
        int rc = MACULA_RPC_ENOTREADY;
        if (r->ready) {
            wire_msg m = {.type = WIRE_REPLY};
            m.reply.call_id = (wire_bytes){q->call_id, q->call_id_len};
            m.reply.is_error = is_error;
            if (is_error) {
                m.reply.error.code = (wire_bytes){(const uint8_t *)code, strlen(code)};
                m.reply.error.message = (wire_bytes){(const uint8_t *)text, len};
            } else {
                m.reply.result = (wire_bytes){(const uint8_t *)text, len};
            }
            rc = mesh_client_send(r->client, &m) == MESH_CLIENT_OK ? MACULA_RPC_OK
                                                                   : MACULA_RPC_ENOTREADY;
        }
        free(q);
        return rc;
    }
    return MACULA_RPC_EINVAL;
}

int macula_rpc_respond(macula_rpc *r, uint64_t request, const char *result_json, size_t len)
{
    return mrpc__respond(r, request, false, NULL, result_json ? result_json : "null",
                         result_json ? len : 4);
}

int macula_rpc_respond_error(macula_rpc *r, uint64_t request, const char *code, const char *message)
{
    const char *m = message ? message : "";
    return mrpc__respond(r, request, true, code && code[0] ? code : "handler_error", m, strlen(m));
}

void macula_rpc_close(macula_rpc *r)
{
    if (r != NULL && !r->closed && r->client != NULL) {
        mesh_client_close(r->client, "bye");
    }
}

static void mrpc__freed(uv_handle_t *h)
{
    macula_rpc *r = h->data;
    identity_free(r->id);
    char path[600];
    snprintf(path, sizeof path, "%s/%s", r->dir, IDENTITY_CERT_FILE);
    unlink(path);
    snprintf(path, sizeof path, "%s/%s", r->dir, IDENTITY_KEY_FILE);
    unlink(path);
    rmdir(r->dir);
    free(r);
}

void macula_rpc_free(macula_rpc *r)
{
    if (r == NULL) {
        return;
    }
    mrpc__fail_all(r, "closed", "freed");
    while (r->handlers != NULL) {
        mrpc_handler *h = r->handlers;
        r->handlers = h->next;
        free(h->procedure);
        free(h);
    }
    while (r->requests != NULL) {
        mrpc_request *q = r->requests;
        r->requests = q->next;
        free(q);
    }
    mesh_client_free(r->client);
    r->client = NULL;
    uv_timer_stop(&r->timer);
    uv_close((uv_handle_t *)&r->timer, mrpc__freed);
}
