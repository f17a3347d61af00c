/* src/mesh/gateway/diagnostics.c — macula_gateway_diagnostics (see diagnostics.h). */
#include "diagnostics.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "macula/sup_supervisor.h"
#include "macula/version.h"
#include "mesh/peer/peer.h"

const char *gw_diag_strerror(int err)
{
    switch (err) {
    case GW_DIAG_OK: return "ok";
    case GW_DIAG_ENOPROC: return "no_handler";
    case GW_DIAG_EARGS: return "invalid_args";
    case GW_DIAG_ENOMEM: return "no_memory";
    case GW_DIAG_EBUSY: return "busy";
    default: return "handler_error";
    }
}

bool gw_diag_is_procedure(const uint8_t *proc, size_t len)
{
    size_t n = strlen(GW_DIAG_PREFIX);
    return proc != NULL && len >= n && memcmp(proc, GW_DIAG_PREFIX, n) == 0;
}

static bool gw_diag__is(const uint8_t *proc, size_t len, const char *name)
{
    size_t n = strlen(GW_DIAG_PREFIX), m = strlen(name);
    return len == n + m && gw_diag_is_procedure(proc, len) && memcmp(proc + n, name, m) == 0;
}

static void gw_diag__hex(const uint8_t *id, char out[65])
{
    static const char digits[] = "0123456789abcdef";
    for (size_t i = 0; i < 32; i++) {
        out[2 * i] = digits[id[i] >> 4];
        out[2 * i + 1] = digits[id[i] & 15];
    }
    out[64] = '\0';
}

static int gw_diag__dump(json_t *j, char **result, size_t *result_len)
{
    if (j == NULL) {
        return GW_DIAG_ENOMEM;
    }
    char *text = json_dumps(j, JSON_COMPACT | JSON_ENCODE_ANY);
    json_decref(j);
    if (text == NULL) {
        return GW_DIAG_ENOMEM;
    }
    *result = text;
    *result_len = strlen(text);
    return GW_DIAG_OK;
}

int gw_diag_call(const uint8_t *proc, size_t proc_len, const uint8_t *args, size_t args_len,
                 const gw_diag_info *info, char **result, size_t *result_len)
{
    *result = NULL;
    *result_len = 0;
    char hex[65];
    gw_diag__hex(info->node_id, hex);
    if (gw_diag__is(proc, proc_len, "hello")) {
        char msg[96];
        snprintf(msg, sizeof msg, "hello from %s", hex);
        return gw_diag__dump(json_pack("{s:s, s:s}", "message", msg, "node_id", hex), result,
                             result_len);
    }
    if (gw_diag__is(proc, proc_len, "info")) {
        return gw_diag__dump(json_pack("{s:s, s:s%, s:s, s:f, s:I}", "node_id", hex, "realm",
                                       info->realm, strlen(info->realm), "version",
                                       info->version ? info->version : MACULA_VERSION, "uptime",
                                       info->uptime_s, "clients", (json_int_t)info->clients),
                             result, result_len);
    }
    if (gw_diag__is(proc, proc_len, "echo")) {
        if (args == NULL || args_len == 0) {
            return gw_diag__dump(json_null(), result, result_len);
        }
        json_error_t jerr;
        json_t *j = json_loadb((const char *)args, args_len, JSON_DECODE_ANY, &jerr);
        if (j == NULL) {
            return GW_DIAG_EARGS;
        }
        json_decref(j);
        char *copy = malloc(args_len + 1);
        if (copy == NULL) {
            return GW_DIAG_ENOMEM;
        }
        memcpy(copy, args, args_len);
        copy[args_len] = '\0';
        *result = copy;
        *result_len = args_len;
        return GW_DIAG_OK;
    }
    return GW_DIAG_ENOPROC;
}

void *gw_diag_request(uint32_t clients, const uint8_t *proc, size_t proc_len, const uint8_t *args,
                      size_t args_len, size_t *len)
{
    gw_diag_req h = {clients, (uint32_t)proc_len, (uint32_t)args_len};
    uint8_t *p = malloc(sizeof h + proc_len + args_len);
    if (p == NULL) {
        return NULL;
    }
    memcpy(p, &h, sizeof h);
    if (proc_len > 0) {
        memcpy(p + sizeof h, proc, proc_len);
    }
    if (args_len > 0) {
        memcpy(p + sizeof h + proc_len, args, args_len);
    }
    *len = sizeof h + proc_len + args_len;
    return p;
}

/* ---- the actor ---------------------------------------------------------------------------- */

/* com.macula.diagnostics.peers: one walk per request; the answer goes out when every worker
 * asked has answered (or its call ended: timeout, worker gone). */
#define GW_DIAG_WALKS_MAX 4
#define GW_DIAG_WORKER_TIMEOUT 2000 /* ms; the gateway waits GW_DIAG_TIMEOUT (5 s) */

static const char *const gw_diag__workers[4] = {"connection", "pubsub_handler", "rpc_handler",
                                                "advertisement_manager"};

typedef struct gw_diag_ask {
    uint64_t ref;
    uint32_t peer;
    uint32_t worker;
} gw_diag_ask;

typedef struct gw_diag_walk {
    sup_from from;
    uint32_t npeers, total; /* listed, running peer systems */
    uint32_t nasks, pending;
    sup_pid sys[GW_DIAG_PEERS_MAX];      /* the peer systems listed */
    json_t *peers[GW_DIAG_PEERS_MAX][4]; /* each worker's answer, or NULL */
    gw_diag_ask asks[GW_DIAG_PEERS_MAX * 4];
} gw_diag_walk;

typedef struct gw_diag {
    const gw_diag_config *cfg;
    uint64_t started_ms;
    uint64_t served;
    gw_diag_walk *walks[GW_DIAG_WALKS_MAX];
} gw_diag;

static void gw_diag__reply(sup_actor *self, sup_from to, int rc, const char *text)
{
    sup_rt *rt = sup_self_rt(self);
    gw_diag_rep rep = {rc};
    size_t rlen = text != NULL && rc == GW_DIAG_OK ? strlen(text) : 0;
    uint8_t *out = sup_alloc(self, sizeof rep + rlen + 1);
    if (out == NULL) {
        rep.rc = GW_DIAG_ENOMEM;
        sup_reply(rt, to, &rep, sizeof rep);
        return;
    }
    memcpy(out, &rep, sizeof rep);
    if (rlen > 0) {
        memcpy(out + sizeof rep, text, rlen + 1); /* the NUL is not sent (length below) */
    }
    sup_reply(rt, to, out, sizeof rep + rlen);
    sup_free(self, out);
}

static void gw_diag__walk_free(gw_diag_walk *w)
{
    for (uint32_t i = 0; i < w->npeers; i++) {
        for (size_t k = 0; k < 4; k++) {
            json_decref(w->peers[i][k]);
        }
    }
    free(w);
}

/* Every answer is in: {"node_id", "count", "truncated", "peers": [...]}, each peer the
 * connection's record (node_id, addr, since_ms, uptime_s, frames_in, frames_out) with each
 * worker's object (null when it did not answer: restarting, say). */
static void gw_diag__walk_done(gw_diag *d, sup_actor *self, gw_diag_walk *w)
{
    char hex[65];
    gw_diag__hex(d->cfg->node_id, hex);
    json_t *list = json_array();
    for (uint32_t i = 0; i < w->npeers && list != NULL; i++) {
        json_t *p = json_object();
        json_t *conn = w->peers[i][0];
        static const char *const hoist[] = {"node_id",  "addr",      "since_ms",
                                            "uptime_s", "frames_in", "frames_out"};
        for (size_t k = 0; k < sizeof hoist / sizeof hoist[0] && conn != NULL; k++) {
            json_t *v = json_object_get(conn, hoist[k]);
            if (v != NULL) {
                json_object_set(p, hoist[k], v);
            }
        }
        for (size_t k = 0; k < 4; k++) {
            json_object_set(p, gw_diag__workers[k], w->peers[i][k] ? w->peers[i][k] : json_null());
        }
        json_array_append_new(list, p);
    }
    json_t *o = json_pack("{s:s, s:I, s:b, s:o*}", "node_id", hex, "count", (json_int_t)w->total,
                          "truncated", w->total > w->npeers, "peers", list);
    char *text = o ? json_dumps(o, JSON_COMPACT) : NULL;
    json_decref(o);
    gw_diag__reply(self, w->from, text ? GW_DIAG_OK : GW_DIAG_ENOMEM, text);
    free(text);
    d->served++;
}

static void gw_diag__peer_sys(const sup_child_info *ci, void *user)
{
    gw_diag_walk *w = user;
    if (ci->state != SUP_CHILD_RUNNING || sup_pid_is_null(ci->pid)) {
        return;
    }
    w->total++;
    if (w->npeers < GW_DIAG_PEERS_MAX) {
        w->sys[w->npeers++] = ci->pid;
    }
}

typedef struct gw_diag_kids {
    sup_pid pid[4];
} gw_diag_kids;

static void gw_diag__peer_worker(const sup_child_info *ci, void *user)
{
    gw_diag_kids *k = user;
    for (size_t i = 0; i < 4; i++) {
        char id[64];
        snprintf(id, sizeof id, "macula_%s", gw_diag__workers[i]);
        if (strcmp(ci->id, id) == 0 && ci->state == SUP_CHILD_RUNNING) {
            k->pid[i] = ci->pid;
        }
    }
}

/* Starts a walk over macula_peers_sup's peer systems: each worker is asked PEER_JSON. */
static void gw_diag__peers(gw_diag *d, sup_actor *self, const sup_msg *m)
{
    sup_rt *rt = sup_self_rt(self);
    size_t slot = GW_DIAG_WALKS_MAX;
    for (size_t i = 0; i < GW_DIAG_WALKS_MAX && slot == GW_DIAG_WALKS_MAX; i++) {
        slot = d->walks[i] == NULL ? i : slot;
    }
    gw_diag_walk *w = slot < GW_DIAG_WALKS_MAX ? calloc(1, sizeof *w) : NULL;
    if (w == NULL) {
        gw_diag__reply(self, sup_msg_from(m),
                       slot < GW_DIAG_WALKS_MAX ? GW_DIAG_ENOMEM : GW_DIAG_EBUSY, NULL);
        return;
    }
    w->from = sup_msg_from(m);
    sup_pid ps = sup_whereis(rt, "macula_peers_sup");
    if (!sup_pid_is_null(ps)) {
        (void)sup_sv_inspect(rt, ps, NULL, gw_diag__peer_sys, w);
    }
    for (uint32_t i = 0; i < w->npeers; i++) {
        gw_diag_kids k;
        memset(&k, 0, sizeof k);
        (void)sup_sv_inspect(rt, w->sys[i], NULL, gw_diag__peer_worker, &k);
        for (uint32_t j = 0; j < 4; j++) {
            if (sup_pid_is_null(k.pid[j])) {
                continue;
            }
            uint64_t ref = sup_call(self, k.pid[j], PEER_JSON, NULL, 0, GW_DIAG_WORKER_TIMEOUT);
            w->asks[w->nasks++] = (gw_diag_ask){.ref = ref, .peer = i, .worker = j};
            w->pending++;
        }
    }
    if (w->pending == 0) {
        gw_diag__walk_done(d, self, w);
        gw_diag__walk_free(w);
        return;
    }
    d->walks[slot] = w;
}

/* A worker's answer (or its call's end). */
static void gw_diag__info(sup_actor *self, void *state, const sup_msg *m)
{
    gw_diag *d = state;
    if (m->kind != SUP_MSG_REPLY) {
        return;
    }
    for (size_t i = 0; i < GW_DIAG_WALKS_MAX; i++) {
        gw_diag_walk *w = d->walks[i];
        for (uint32_t a = 0; w != NULL && a < w->nasks; a++) {
            gw_diag_ask *q = &w->asks[a];
            if (q->ref == 0 || q->ref != m->ref) {
                continue;
            }
            q->ref = 0;
            const char *text = m->data;
            if (m->status == 0 && m->len > 1 && text[m->len - 1] == '\0') {
                json_error_t jerr;
                w->peers[q->peer][q->worker] = json_loads(text, 0, &jerr);
            }
            if (--w->pending == 0) {
                gw_diag__walk_done(d, self, w);
                gw_diag__walk_free(w);
                d->walks[i] = NULL;
            }
            return;
        }
    }
}

static void gw_diag__terminate(sup_actor *self, void *state, const sup_reason *reason)
{
    (void)self;
    (void)reason;
    gw_diag *d = state;
    for (size_t i = 0; i < GW_DIAG_WALKS_MAX; i++) {
        if (d->walks[i] != NULL) {
            gw_diag__walk_free(d->walks[i]);
            d->walks[i] = NULL;
        }
    }
}

static int gw_diag__init(sup_actor *self, void *state, void *arg)
{
    gw_diag *d = state;
    d->cfg = arg;
    d->started_ms = sup_rt_now(sup_self_rt(self));
    sup_register(sup_self_rt(self), "macula_gateway_diagnostics", sup_self(self));
    return 0;
}

static void gw_diag__call(sup_actor *self, void *state, const sup_msg *m)
{
    gw_diag *d = state;
    sup_rt *rt = sup_self_rt(self);
    if (m->tag == GW_DIAG_SERVED) {
        sup_reply(rt, sup_msg_from(m), &d->served, sizeof d->served);
        return;
    }
    gw_diag_rep rep = {GW_DIAG_ENOPROC};
    gw_diag_req h;
    if (m->tag != GW_DIAG_CALL || m->len < sizeof h) {
        sup_reply(rt, sup_msg_from(m), &rep, sizeof rep);
        return;
    }
    memcpy(&h, m->data, sizeof h);
    if ((size_t)h.proc_len + h.args_len != m->len - sizeof h) {
        sup_reply(rt, sup_msg_from(m), &rep, sizeof rep);
        return;
    }
    const uint8_t *proc = (const uint8_t *)m->data + sizeof h;
    if (gw_diag__is(proc, h.proc_len, "peers")) {
        gw_diag__peers(d, self, m);
        return;
    }
    gw_diag_info info = {.node_id = d->cfg->node_id,
                         .realm = d->cfg->realm ? d->cfg->realm : "",
                         .version = MACULA_VERSION,
                         .uptime_s = (double)(sup_rt_now(rt) - d->started_ms) / 1000.0,
                         .clients = h.clients};
    char *result = NULL;
    size_t rlen = 0;
    rep.rc = gw_diag_call(proc, h.proc_len, proc + h.proc_len, h.args_len, &info, &result, &rlen);
    d->served++;
    uint8_t *out = sup_alloc(self, sizeof rep + rlen);
    if (out == NULL) {
        free(result);
        rep.rc = GW_DIAG_ENOMEM;
        sup_reply(rt, sup_msg_from(m), &rep, sizeof rep);
        return;
    }
    memcpy(out, &rep, sizeof rep);
    if (rlen > 0) {
        memcpy(out + sizeof rep, result, rlen);
    }
    free(result);
    sup_reply(rt, sup_msg_from(m), out, sizeof rep + rlen);
    sup_free(self, out);
}

static const sup_behaviour gw_diag_behaviour = {
    .name = "gateway_diagnostics",
    .state_size = sizeof(gw_diag),
    .init = gw_diag__init,
    .handle_call = gw_diag__call,
    .handle_info = gw_diag__info,
    .terminate = gw_diag__terminate,
};

int gw_diag_start(sup_rt *rt, sup_pid parent, void *arg, void *extra, sup_pid *out, sup_reason *why)
{
    (void)extra;
    return sup_spawn(rt, parent, &gw_diag_behaviour, arg, SUP_SPAWN_LINK, out, why);
}
