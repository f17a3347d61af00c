/* src/mesh/gateway/gateway_core.c — the gateway's protocol logic (see gateway_core.h). */
#include "gateway_core.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "diagnostics.h"
#include "base/hmap.h"
#include "macula/version.h"

/* ---- types ------------------------------------------------------------------------------- */

typedef struct gwc__conn {
    uint64_t id;
    bool connected;
    bool has_peer_id;
    uint8_t peer_id[WIRE_NODE_ID_LEN];
    uint8_t node_id[WIRE_NODE_ID_LEN];
    uint64_t opened_ms, connected_ms, last_seen_ms;
    char remote[GWC_REMOTE_MAX];
    uint8_t *endpoint; /* NULL: absent */
    size_t endpoint_len;
    uint8_t *caps;
    size_t caps_len;
    uint32_t caps_count;
    wire_reader reader;
    struct gwc__conn *prev, *next; /* keepalive order: least recently active first */
} gwc__conn;

/* A queued action; byte fields are offsets into the arena. */
typedef struct gwc__act {
    gwc_action_kind kind;
    uint64_t conn;
    size_t data_off, data_len;
    uint64_t code;
    const char *reason;
    uint8_t node_id[WIRE_NODE_ID_LEN];
    uint64_t time_ms;
    size_t caps_off, caps_len;
    uint32_t caps_count;
    size_t remote_off; /* CLIENT_UP: NUL-terminated text in the arena */
} gwc__act;

struct gwc {
    gwc_config cfg;
    char *realm;
    char *version;
    uint64_t started_ms;
    uint64_t timeout_ms; /* ping_misses * ping_interval_ms */
    hmap_u64 by_conn;    /* conn id -> gwc__conn (ids are ours: hmap_u64) */
    hmap by_node;        /* node id -> connected gwc__conn (key: its node_id) */
    gwc__conn *lru_head, *lru_tail;
    gwc__act *acts;
    size_t nacts, acts_head, acts_cap;
    uint8_t *arena;
    size_t arena_len, arena_cap;
    gwc_stats stats;
    gwc_call_hook hook;
    void *hook_user;
    gwc_frame_hook frame_hook;
    void *frame_hook_user;
};

const char *gwc_strerror(int err)
{
    switch (err) {
    case GWC_OK: return "ok";
    case GWC_EINVAL: return "invalid_argument";
    case GWC_ENOMEM: return "no_memory";
    case GWC_EEXIST: return "already_open";
    case GWC_ENOTFOUND: return "not_found";
    default: return "unknown_error";
    }
}

const char *gwc_refusal_name(gwc_refusal r)
{
    static const char *const names[GWC_REFUSE_COUNT] = {
        "realm_mismatch",   "max_clients_reached", "max_pending_reached",
        "node_id_mismatch", "unsupported_version", "already_connected",
    };
    return (unsigned)r < GWC_REFUSE_COUNT ? names[r] : "unknown";
}

void gwc_config_default(gwc_config *cfg)
{
    memset(cfg, 0, sizeof *cfg);
    cfg->max_clients = GWC_DEFAULT_MAX_CLIENTS;
    cfg->max_pending = GWC_DEFAULT_MAX_PENDING;
    cfg->ping_interval_ms = GWC_DEFAULT_PING_INTERVAL_MS;
    cfg->ping_misses = GWC_DEFAULT_PING_MISSES;
    wire_limits_default(&cfg->limits);
}

bool gwc_caps_next(const uint8_t *caps, size_t caps_len, size_t *pos, wire_bytes *item)
{
    if (caps == NULL || *pos + 4 > caps_len) {
        return false;
    }
    const uint8_t *p = caps + *pos;
    size_t n = ((size_t)p[0] << 24) | ((size_t)p[1] << 16) | ((size_t)p[2] << 8) | p[3];
    if (n > caps_len - *pos - 4) {
        return false;
    }
    item->p = p + 4;
    item->len = n;
    *pos += 4 + n;
    return true;
}

/* ---- lookup ------------------------------------------------------------------------------ */

static gwc__conn *gwc__find(const gwc *g, uint64_t conn)
{
    return hmap_u64_get(&g->by_conn, conn);
}

/* ---- keepalive order --------------------------------------------------------------------- */

static void gwc__lru_unlink(gwc *g, gwc__conn *c)
{
    if (c->prev) {
        c->prev->next = c->next;
    } else {
        g->lru_head = c->next;
    }
    if (c->next) {
        c->next->prev = c->prev;
    } else {
        g->lru_tail = c->prev;
    }
    c->prev = c->next = NULL;
}

static void gwc__lru_append(gwc *g, gwc__conn *c)
{
    c->prev = g->lru_tail;
    c->next = NULL;
    if (g->lru_tail) {
        g->lru_tail->next = c;
    } else {
        g->lru_head = c;
    }
    g->lru_tail = c;
}

/* Activity: times only move forward, so appending keeps the list sorted by last_seen. */
static void gwc__touch(gwc *g, gwc__conn *c, uint64_t now)
{
    if (now > c->last_seen_ms) {
        c->last_seen_ms = now;
    }
    if (g->lru_tail != c) {
        gwc__lru_unlink(g, c);
        gwc__lru_append(g, c);
    }
}

/* ---- action queue ------------------------------------------------------------------------ */

/* Called at the start of every mutating entry point: once everything was popped, the queue
 * and its arena start over (this is what bounds the lifetime of action views). */
#define GWC_QUEUE_KEEP ((size_t)256 * 1024) /* bytes of queue kept between bursts */

static void gwc__queue_reset_if_drained(gwc *g)
{
    if (g->acts_head == g->nacts) {
        g->acts_head = g->nacts = 0;
        g->arena_len = 0;
        /* A burst (a shutdown of 10,000 clients) must not pin its peak for ever. */
        if (g->arena_cap > GWC_QUEUE_KEEP) {
            free(g->arena);
            g->arena = NULL;
            g->arena_cap = 0;
        }
        if (g->acts_cap * sizeof(gwc__act) > GWC_QUEUE_KEEP) {
            free(g->acts);
            g->acts = NULL;
            g->acts_cap = 0;
        }
    }
}

static gwc__act *gwc__push(gwc *g, gwc_action_kind kind, uint64_t conn)
{
    if (g->nacts == g->acts_cap) {
        size_t ncap = g->acts_cap ? g->acts_cap * 2 : 16;
        gwc__act *na = realloc(g->acts, ncap * sizeof *na);
        if (na == NULL) {
            return NULL;
        }
        g->acts = na;
        g->acts_cap = ncap;
    }
    gwc__act *a = &g->acts[g->nacts++];
    memset(a, 0, sizeof *a);
    a->kind = kind;
    a->conn = conn;
    return a;
}

/* Reserves n bytes in the arena; returns the offset or SIZE_MAX. */
static size_t gwc__arena(gwc *g, size_t n)
{
    if (n > g->arena_cap - g->arena_len) {
        size_t ncap = g->arena_cap ? g->arena_cap : 1024;
        while (ncap - g->arena_len < n) {
            if (ncap > SIZE_MAX / 2) {
                return SIZE_MAX;
            }
            ncap *= 2;
        }
        uint8_t *na = realloc(g->arena, ncap);
        if (na == NULL) {
            return SIZE_MAX;
        }
        g->arena = na;
        g->arena_cap = ncap;
    }
    size_t off = g->arena_len;
    g->arena_len += n;
    return off;
}

static int gwc__send(gwc *g, uint64_t conn, const wire_msg *m)
{
    size_t need = wire_encoded_size(m);
    if (need == 0) {
        return GWC_EINVAL;
    }
    size_t off = gwc__arena(g, need);
    if (off == SIZE_MAX) {
        return GWC_ENOMEM;
    }
    size_t len = 0;
    if (wire_encode(m, g->arena + off, need, &len) != 0) {
        g->arena_len = off;
        return GWC_EINVAL;
    }
    gwc__act *a = gwc__push(g, GWC_ACT_SEND, conn);
    if (a == NULL) {
        g->arena_len = off;
        return GWC_ENOMEM;
    }
    a->data_off = off;
    a->data_len = len;
    g->stats.frames_out[m->type]++;
    return GWC_OK;
}

static wire_bytes gwc__str(const char *s)
{
    return (wire_bytes){(const uint8_t *)s, strlen(s)};
}

static int gwc__send_pong(gwc *g, uint64_t conn, int64_t timestamp, uint64_t now)
{
    wire_msg m = {.type = WIRE_PONG};
    m.pong.timestamp = timestamp;
    m.pong.server_time = (int64_t)now + g->cfg.wall_offset_ms;
    return gwc__send(g, conn, &m);
}

static int gwc__send_disconnect(gwc *g, uint64_t conn, const char *reason, const char *message)
{
    wire_msg m = {.type = WIRE_DISCONNECT};
    m.disconnect.reason = gwc__str(reason);
    m.disconnect.message = gwc__str(message);
    return gwc__send(g, conn, &m);
}

static int gwc__push_client(gwc *g, gwc_action_kind kind, const gwc__conn *c, uint64_t now)
{
    gwc__act *a = gwc__push(g, kind, c->id);
    if (a == NULL) {
        return GWC_ENOMEM;
    }
    memcpy(a->node_id, c->node_id, WIRE_NODE_ID_LEN);
    a->time_ms = now;
    if (kind != GWC_ACT_CLIENT_UP) {
        return GWC_OK;
    }
    size_t rlen = strlen(c->remote) + 1;
    size_t off = gwc__arena(g, c->endpoint_len + c->caps_len + rlen);
    if (off == SIZE_MAX) {
        g->nacts--;
        return GWC_ENOMEM;
    }
    if (c->endpoint_len) {
        memcpy(g->arena + off, c->endpoint, c->endpoint_len);
    }
    if (c->caps_len) {
        memcpy(g->arena + off + c->endpoint_len, c->caps, c->caps_len);
    }
    a->data_off = off;
    a->data_len = c->endpoint_len;
    a->caps_off = off + c->endpoint_len;
    a->caps_len = c->caps_len;
    a->caps_count = c->caps_count;
    a->remote_off = off + c->endpoint_len + c->caps_len;
    memcpy(g->arena + a->remote_off, c->remote, rlen);
    return GWC_OK;
}

bool gwc_next_action(gwc *g, gwc_action *out)
{
    if (g->acts_head == g->nacts) {
        return false;
    }
    const gwc__act *a = &g->acts[g->acts_head++];
    memset(out, 0, sizeof *out);
    out->kind = a->kind;
    out->conn = a->conn;
    out->data = a->data_len ? g->arena + a->data_off : NULL;
    out->len = a->data_len;
    out->code = a->code;
    out->reason = a->reason;
    memcpy(out->node_id, a->node_id, WIRE_NODE_ID_LEN);
    out->time_ms = a->time_ms;
    out->caps = a->caps_len ? g->arena + a->caps_off : NULL;
    out->caps_len = a->caps_len;
    out->caps_count = a->caps_count;
    out->remote = a->kind == GWC_ACT_CLIENT_UP ? (const char *)g->arena + a->remote_off : NULL;
    return true;
}

/* ---- connection lifetime ----------------------------------------------------------------- */

static void gwc__conn_free(gwc__conn *c)
{
    wire_reader_free(&c->reader);
    free(c->endpoint);
    free(c->caps);
    free(c);
}

/* Forgets c: out of the tables and the keepalive list, CLIENT_DOWN if it was a client. */
static void gwc__forget(gwc *g, gwc__conn *c, uint64_t now)
{
    hmap_u64_del(&g->by_conn, c->id);
    gwc__lru_unlink(g, c);
    if (c->connected) {
        if (hmap_get(&g->by_node, c->node_id, WIRE_NODE_ID_LEN) == c) {
            hmap_del(&g->by_node, c->node_id, WIRE_NODE_ID_LEN);
        }
        g->stats.clients--;
        (void)gwc__push_client(g, GWC_ACT_CLIENT_DOWN, c, now);
    } else {
        g->stats.pending--;
    }
    gwc__conn_free(c);
}

static void gwc__close(gwc *g, gwc__conn *c, uint64_t code, const char *reason, uint64_t now)
{
    gwc__act *a = gwc__push(g, GWC_ACT_CLOSE, c->id);
    if (a != NULL) {
        a->code = code;
        a->reason = reason;
    }
    gwc__forget(g, c, now);
}

/* DISCONNECT(reason, message), then close. reason must be static text. */
static void gwc__drop(gwc *g, gwc__conn *c, const char *reason, const char *message, uint64_t code,
                      uint64_t now)
{
    (void)gwc__send_disconnect(g, c->id, reason, message);
    gwc__close(g, c, code, reason, now);
}

static void gwc__refuse(gwc *g, gwc__conn *c, gwc_refusal r, const char *message, uint64_t now)
{
    g->stats.connects_refused[r]++;
    gwc__drop(g, c, gwc_refusal_name(r), message,
              r == GWC_REFUSE_ALREADY_CONNECTED ? GWC_CLOSE_PROTOCOL : GWC_CLOSE_REFUSED, now);
}

static void gwc__decode_error(gwc *g, gwc__conn *c, int err, uint64_t now)
{
    if (err < 0 && -err < GWC_DECODE_ERR_COUNT) {
        g->stats.decode_errors[-err]++;
    }
    char msg[80];
    snprintf(msg, sizeof msg, "frame rejected: %s", wire_strerror(err));
    gwc__drop(g, c, wire_strerror(err), msg, GWC_CLOSE_PROTOCOL, now);
}

/* ---- construction ------------------------------------------------------------------------ */

static char *gwc__strdup(const char *s)
{
    size_t n = strlen(s) + 1;
    char *p = malloc(n);
    if (p != NULL) {
        memcpy(p, s, n);
    }
    return p;
}

int gwc_new(const gwc_config *cfg, uint64_t now, gwc **out)
{
    *out = NULL;
    if (cfg == NULL || cfg->realm == NULL || cfg->max_clients == 0 || cfg->max_pending == 0 ||
        cfg->ping_interval_ms == 0 || cfg->ping_misses == 0) {
        return GWC_EINVAL;
    }
    wire_reader probe;
    if (wire_reader_init(&probe, &cfg->limits) != 0) {
        return GWC_EINVAL;
    }
    wire_reader_free(&probe);
    gwc *g = calloc(1, sizeof *g);
    if (g == NULL) {
        return GWC_ENOMEM;
    }
    g->cfg = *cfg;
    g->realm = gwc__strdup(cfg->realm);
    g->version = gwc__strdup(cfg->version ? cfg->version : MACULA_VERSION);
    if (g->realm == NULL || g->version == NULL) {
        gwc_free(g);
        return GWC_ENOMEM;
    }
    g->cfg.realm = g->realm;
    g->cfg.version = g->version;
    g->timeout_ms = cfg->ping_interval_ms > UINT64_MAX / cfg->ping_misses
                        ? UINT64_MAX
                        : cfg->ping_interval_ms * cfg->ping_misses;
    g->started_ms = now;
    *out = g;
    return GWC_OK;
}

void gwc_free(gwc *g)
{
    if (g == NULL) {
        return;
    }
    for (gwc__conn *c = g->lru_head, *n; c; c = n) {
        n = c->next;
        gwc__conn_free(c);
    }
    hmap_u64_free(&g->by_conn);
    hmap_free(&g->by_node);
    free(g->acts);
    free(g->arena);
    free(g->realm);
    free(g->version);
    free(g);
}

void gwc_set_call_hook(gwc *g, gwc_call_hook hook, void *user)
{
    g->hook = hook;
    g->hook_user = user;
}

/* ---- events ------------------------------------------------------------------------------ */

int gwc_conn_open(gwc *g, uint64_t conn, const uint8_t *peer_id, size_t peer_id_len,
                  const char *remote, uint64_t now)
{
    if (peer_id_len != 0 && (peer_id == NULL || peer_id_len != WIRE_NODE_ID_LEN)) {
        return GWC_EINVAL;
    }
    gwc__queue_reset_if_drained(g);
    if (gwc__find(g, conn) != NULL) {
        return GWC_EEXIST;
    }
    if (g->stats.pending >= g->cfg.max_pending) {
        /* Refused before any state is kept: one DISCONNECT and a close. */
        g->stats.connects_refused[GWC_REFUSE_MAX_PENDING]++;
        (void)gwc__send_disconnect(g, conn, "max_pending_reached",
                                   "too many connections are waiting for CONNECT");
        gwc__act *a = gwc__push(g, GWC_ACT_CLOSE, conn);
        if (a == NULL) {
            return GWC_ENOMEM;
        }
        a->code = GWC_CLOSE_REFUSED;
        a->reason = "max_pending_reached";
        return GWC_OK;
    }
    gwc__conn *c = calloc(1, sizeof *c);
    if (c == NULL) {
        return GWC_ENOMEM;
    }
    c->id = conn;
    (void)wire_reader_init(&c->reader, &g->cfg.limits); /* limits checked in gwc_new */
    if (peer_id_len == WIRE_NODE_ID_LEN) {
        c->has_peer_id = true;
        memcpy(c->peer_id, peer_id, WIRE_NODE_ID_LEN);
    }
    snprintf(c->remote, sizeof c->remote, "%s", remote ? remote : "");
    c->opened_ms = c->last_seen_ms = now;
    if (hmap_u64_put(&g->by_conn, c->id, c, NULL) != HMAP_OK) {
        gwc__conn_free(c);
        return GWC_ENOMEM;
    }
    gwc__lru_append(g, c);
    g->stats.pending++;
    return GWC_OK;
}

static bool gwc__version_ok(wire_bytes v)
{
    return (v.len == 1 && v.p[0] == '1') || (v.len >= 2 && v.p[0] == '1' && v.p[1] == '.');
}

static bool gwc__bytes_eq_str(wire_bytes b, const char *s)
{
    size_t n = strlen(s);
    return b.len == n && (n == 0 || memcmp(b.p, s, n) == 0);
}

static int gwc__copy_caps(gwc__conn *c, const wire_bytes_list *l)
{
    size_t total = 0;
    wire_bytes it;
    wire_list_iter i = wire_bytes_list_iter(l);
    while (wire_bytes_list_next(&i, &it)) {
        total += 4 + it.len;
    }
    if (total == 0) {
        return GWC_OK;
    }
    uint8_t *p = malloc(total);
    if (p == NULL) {
        return GWC_ENOMEM;
    }
    size_t pos = 0;
    uint32_t count = 0;
    i = wire_bytes_list_iter(l);
    while (wire_bytes_list_next(&i, &it)) {
        p[pos] = (uint8_t)(it.len >> 24);
        p[pos + 1] = (uint8_t)(it.len >> 16);
        p[pos + 2] = (uint8_t)(it.len >> 8);
        p[pos + 3] = (uint8_t)it.len;
        if (it.len) {
            memcpy(p + pos + 4, it.p, it.len);
        }
        pos += 4 + it.len;
        count++;
    }
    c->caps = p;
    c->caps_len = total;
    c->caps_count = count;
    return GWC_OK;
}

/* Returns false when c was closed. */
static bool gwc__on_connect(gwc *g, gwc__conn *c, const wire_connect *m, uint64_t now)
{
    char msg[160];
    if (c->connected) {
        gwc__refuse(g, c, GWC_REFUSE_ALREADY_CONNECTED, "CONNECT was already accepted", now);
        return false;
    }
    if (!gwc__version_ok(m->version)) {
        gwc__refuse(g, c, GWC_REFUSE_UNSUPPORTED_VERSION, "protocol version 1.x is required", now);
        return false;
    }
    if (m->node_id.len != WIRE_NODE_ID_LEN) {
        gwc__decode_error(g, c, WIRE_EMALFORMED, now);
        return false;
    }
    if (!gwc__bytes_eq_str(m->realm_id, g->realm)) {
        snprintf(msg, sizeof msg, "this node serves realm \"%.100s\"", g->realm);
        gwc__refuse(g, c, GWC_REFUSE_REALM_MISMATCH, msg, now);
        return false;
    }
    if (c->has_peer_id && memcmp(c->peer_id, m->node_id.p, WIRE_NODE_ID_LEN) != 0) {
        gwc__refuse(g, c, GWC_REFUSE_NODE_ID_MISMATCH,
                    "node_id is not the one the TLS certificate proves", now);
        return false;
    }
    gwc__conn *old = hmap_get(&g->by_node, m->node_id.p, WIRE_NODE_ID_LEN);
    if (old == NULL && g->stats.clients >= g->cfg.max_clients) {
        snprintf(msg, sizeof msg, "this node serves at most %u clients", g->cfg.max_clients);
        gwc__refuse(g, c, GWC_REFUSE_MAX_CLIENTS, msg, now);
        return false;
    }
    if (m->endpoint.p != NULL) {
        c->endpoint = malloc(m->endpoint.len ? m->endpoint.len : 1);
        if (c->endpoint == NULL) {
            gwc__decode_error(g, c, WIRE_ENOMEM, now);
            return false;
        }
        if (m->endpoint.len) {
            memcpy(c->endpoint, m->endpoint.p, m->endpoint.len);
        }
        c->endpoint_len = m->endpoint.len;
    }
    if (gwc__copy_caps(c, &m->capabilities) != GWC_OK) {
        gwc__decode_error(g, c, WIRE_ENOMEM, now);
        return false;
    }
    if (old != NULL) {
        g->stats.replaced++;
        gwc__drop(g, old, "replaced", "the same node id connected on a newer connection",
                  GWC_CLOSE_REPLACED, now);
    }
    memcpy(c->node_id, m->node_id.p, WIRE_NODE_ID_LEN);
    if (hmap_put(&g->by_node, c->node_id, WIRE_NODE_ID_LEN, c, NULL) != HMAP_OK) {
        gwc__decode_error(g, c, WIRE_ENOMEM, now);
        return false;
    }
    c->connected = true;
    c->connected_ms = now;
    g->stats.pending--;
    g->stats.clients++;
    g->stats.connects_accepted++;
    (void)gwc__send_pong(g, c->id, (int64_t)now + g->cfg.wall_offset_ms, now);
    (void)gwc__push_client(g, GWC_ACT_CLIENT_UP, c, now);
    return true;
}

static void gwc__on_call(gwc *g, gwc__conn *c, const wire_call *call, const wire_frame *f,
                         uint64_t now)
{
    g->stats.calls++;
    if (!gwc__bytes_eq_str(call->realm, g->realm)) {
        (void)gwc_reply_error(g, c->id, call->call_id, "realm_mismatch",
                              "the call's realm is not this node's");
        return;
    }
    if (g->hook != NULL && g->hook(g->hook_user, g, c->id, call, f, now) == GWC_HOOK_TAKEN) {
        return;
    }
    gw_diag_info info = {.node_id = g->cfg.node_id,
                         .realm = g->realm,
                         .version = g->version,
                         .uptime_s = (double)(now - g->started_ms) / 1000.0,
                         .clients = g->stats.clients};
    char *result = NULL;
    size_t rlen = 0;
    int rc = gw_diag_call(call->procedure.p, call->procedure.len, call->args.p, call->args.len,
                          &info, &result, &rlen);
    if (rc == GW_DIAG_OK) {
        (void)gwc_reply(g, c->id, call->call_id, (const uint8_t *)result, rlen);
        free(result);
        return;
    }
    char msg[200];
    if (rc == GW_DIAG_ENOPROC) {
        g->stats.calls_no_handler++;
        snprintf(msg, sizeof msg, "no handler for procedure %.*s",
                 (int)(call->procedure.len > 150 ? 150 : call->procedure.len),
                 (const char *)call->procedure.p);
    } else {
        snprintf(msg, sizeof msg, "diagnostics: %s", gw_diag_strerror(rc));
    }
    (void)gwc_reply_error(g, c->id, call->call_id, gw_diag_strerror(rc), msg);
}

/* Handles one complete frame. Returns false when c was closed. */
static bool gwc__on_frame(gwc *g, gwc__conn *c, const wire_frame *f, uint64_t now)
{
    wire_msg m;
    int rc = wire_decode_payload(f->type, f->payload, f->payload_len, &g->cfg.limits, &m);
    if (rc != 0) {
        gwc__decode_error(g, c, rc, now);
        return false;
    }
    g->stats.frames_in[f->type]++;
    gwc__touch(g, c, now);
    switch (m.type) {
    case WIRE_CONNECT: return gwc__on_connect(g, c, &m.connect, now);
    case WIRE_PING:
        (void)gwc__send_pong(g, c->id, m.ping.timestamp, now);
        if (c->connected) {
            (void)gwc__push_client(g, GWC_ACT_CLIENT_SEEN, c, now);
        }
        return true;
    case WIRE_DISCONNECT:
        g->stats.disconnects_in++;
        gwc__close(g, c, GWC_CLOSE_NORMAL, "disconnect", now);
        return false;
    default: break;
    }
    if (!c->connected) {
        g->stats.not_connected++;
        gwc__drop(g, c, "not_connected", "send CONNECT first", GWC_CLOSE_PROTOCOL, now);
        return false;
    }
    if (m.type == WIRE_CALL) {
        gwc__on_call(g, c, &m.call, f, now);
        return true;
    }
    gwc_peer peer = {c->id, c->node_id, c->has_peer_id, c->remote};
    if (g->frame_hook != NULL &&
        g->frame_hook(g->frame_hook_user, g, &peer, f, &m, now) == GWC_HOOK_TAKEN) {
        g->stats.frames_hooked++;
    } else {
        g->stats.frames_unhandled++;
    }
    return true;
}

int gwc_conn_data(gwc *g, uint64_t conn, const uint8_t *data, size_t len, uint64_t now)
{
    gwc__queue_reset_if_drained(g);
    gwc__conn *c = gwc__find(g, conn);
    if (c == NULL || (data == NULL && len > 0)) {
        return c == NULL ? GWC_OK : GWC_EINVAL;
    }
    while (len > 0) {
        size_t used = 0;
        wire_frame f;
        int rc = wire_reader_feed(&c->reader, data, len, &used, &f);
        data += used;
        len -= used;
        if (rc == WIRE_EAGAIN) {
            break;
        }
        if (rc < 0) {
            gwc__decode_error(g, c, rc, now);
            return rc == WIRE_ENOMEM ? GWC_ENOMEM : GWC_OK;
        }
        if (!gwc__on_frame(g, c, &f, now)) {
            return GWC_OK; /* closed; the rest of the bytes belong to nobody */
        }
    }
    return GWC_OK;
}

int gwc_conn_closed(gwc *g, uint64_t conn, uint64_t now)
{
    gwc__queue_reset_if_drained(g);
    gwc__conn *c = gwc__find(g, conn);
    if (c != NULL) {
        gwc__forget(g, c, now);
    }
    return GWC_OK;
}

uint64_t gwc_next_deadline(const gwc *g)
{
    if (g->lru_head == NULL) {
        return UINT64_MAX;
    }
    uint64_t t = g->lru_head->last_seen_ms;
    return t > UINT64_MAX - g->timeout_ms ? UINT64_MAX : t + g->timeout_ms;
}

int gwc_tick(gwc *g, uint64_t now)
{
    gwc__queue_reset_if_drained(g);
    char msg[96];
    while (g->lru_head != NULL && gwc_next_deadline(g) <= now) {
        g->stats.ping_timeouts++;
        snprintf(msg, sizeof msg, "no frame for %llu ms",
                 (unsigned long long)(now - g->lru_head->last_seen_ms));
        gwc__drop(g, g->lru_head, "ping_timeout", msg, GWC_CLOSE_TIMEOUT, now);
    }
    return GWC_OK;
}

int gwc_shutdown(gwc *g, uint64_t now)
{
    gwc__queue_reset_if_drained(g);
    while (g->lru_head != NULL) {
        gwc__drop(g, g->lru_head, "shutdown", "the gateway is stopping", GWC_CLOSE_SHUTDOWN, now);
    }
    return GWC_OK;
}

/* ---- replies ----------------------------------------------------------------------------- */

static gwc__conn *gwc__client(const gwc *g, uint64_t conn)
{
    gwc__conn *c = gwc__find(g, conn);
    return c != NULL && c->connected ? c : NULL;
}

void gwc_set_frame_hook(gwc *g, gwc_frame_hook hook, void *user)
{
    g->frame_hook = hook;
    g->frame_hook_user = user;
}

int gwc_send_frame(gwc *g, uint64_t conn, const uint8_t *frame, size_t len)
{
    gwc__queue_reset_if_drained(g);
    wire_header h;
    if (frame == NULL || wire_decode_header(frame, len, &g->cfg.limits, &h) != WIRE_OK ||
        (size_t)h.payload_len + WIRE_HEADER_LEN != len) {
        return GWC_EINVAL;
    }
    if (gwc__client(g, conn) == NULL) {
        return GWC_ENOTFOUND;
    }
    size_t off = gwc__arena(g, len);
    if (off == SIZE_MAX) {
        return GWC_ENOMEM;
    }
    memcpy(g->arena + off, frame, len);
    gwc__act *a = gwc__push(g, GWC_ACT_SEND, conn);
    if (a == NULL) {
        g->arena_len = off;
        return GWC_ENOMEM;
    }
    a->data_off = off;
    a->data_len = len;
    g->stats.frames_out[h.type]++;
    return GWC_OK;
}

void gwc_count_unhandled(gwc *g, uint64_t n)
{
    g->stats.frames_hooked -= n < g->stats.frames_hooked ? n : g->stats.frames_hooked;
    g->stats.frames_unhandled += n;
}

int gwc_send_frame_many(gwc *g, const uint8_t *conns, size_t n, const uint8_t *frame, size_t len)
{
    gwc__queue_reset_if_drained(g);
    wire_header h;
    if (frame == NULL || wire_decode_header(frame, len, &g->cfg.limits, &h) != WIRE_OK ||
        (size_t)h.payload_len + WIRE_HEADER_LEN != len) {
        return GWC_EINVAL;
    }
    size_t off = gwc__arena(g, len);
    if (off == SIZE_MAX) {
        return GWC_ENOMEM;
    }
    memcpy(g->arena + off, frame, len);
    int queued = 0;
    for (size_t i = 0; i < n; i++) {
        uint64_t conn;
        memcpy(&conn, conns + i * sizeof conn, sizeof conn);
        if (gwc__client(g, conn) == NULL) {
            continue;
        }
        gwc__act *a = gwc__push(g, GWC_ACT_SEND, conn);
        if (a == NULL) {
            if (queued == 0) {
                g->arena_len = off;
                return GWC_ENOMEM;
            }
            break; /* the ones queued so far stay queued */
        }
        a->data_off = off;
        a->data_len = len;
        g->stats.frames_out[h.type]++;
        queued++;
    }
    if (queued == 0) {
        g->arena_len = off;
    }
    return queued;
}

int gwc_reply(gwc *g, uint64_t conn, wire_bytes call_id, const uint8_t *result, size_t len)
{
    gwc__queue_reset_if_drained(g);
    if (gwc__client(g, conn) == NULL) {
        return GWC_ENOTFOUND;
    }
    wire_msg m = {.type = WIRE_REPLY};
    m.reply.call_id = call_id;
    m.reply.is_error = false;
    m.reply.result = (wire_bytes){result ? result : (const uint8_t *)"", result ? len : 0};
    return gwc__send(g, conn, &m);
}

int gwc_reply_error(gwc *g, uint64_t conn, wire_bytes call_id, const char *code,
                    const char *message)
{
    gwc__queue_reset_if_drained(g);
    if (gwc__client(g, conn) == NULL) {
        return GWC_ENOTFOUND;
    }
    wire_msg m = {.type = WIRE_REPLY};
    m.reply.call_id = call_id;
    m.reply.is_error = true;
    m.reply.error.code = gwc__str(code);
    m.reply.error.message = gwc__str(message ? message : "");
    return gwc__send(g, conn, &m);
}

/* ---- inspection -------------------------------------------------------------------------- */

const gwc_stats *gwc_stats_get(const gwc *g)
{
    return &g->stats;
}

const gwc_config *gwc_config_get(const gwc *g)
{
    return &g->cfg;
}

uint64_t gwc_started_ms(const gwc *g)
{
    return g->started_ms;
}

static void gwc__info(const gwc__conn *c, gwc_client_info *out)
{
    memset(out, 0, sizeof *out);
    out->conn = c->id;
    out->connected = c->connected;
    memcpy(out->node_id, c->node_id, WIRE_NODE_ID_LEN);
    out->opened_ms = c->opened_ms;
    out->connected_ms = c->connected_ms;
    out->last_seen_ms = c->last_seen_ms;
    out->remote = c->remote;
    out->endpoint = (wire_bytes){c->endpoint, c->endpoint_len};
    out->caps = c->caps;
    out->caps_len = c->caps_len;
    out->caps_count = c->caps_count;
}

int gwc_conn_info(const gwc *g, uint64_t conn, gwc_client_info *out)
{
    const gwc__conn *c = gwc__find(g, conn);
    if (c == NULL) {
        return GWC_ENOTFOUND;
    }
    gwc__info(c, out);
    return GWC_OK;
}

void gwc_foreach_client(const gwc *g, void (*fn)(const gwc_client_info *ci, void *user), void *user)
{
    for (const gwc__conn *c = g->lru_head; c; c = c->next) {
        if (c->connected) {
            gwc_client_info ci;
            gwc__info(c, &ci);
            fn(&ci, user);
        }
    }
}

int gwc_client_conn(const gwc *g, const uint8_t node_id[WIRE_NODE_ID_LEN], uint64_t *conn)
{
    const gwc__conn *c = hmap_get(&g->by_node, node_id, WIRE_NODE_ID_LEN);
    if (c == NULL) {
        return GWC_ENOTFOUND;
    }
    *conn = c->id;
    return GWC_OK;
}

size_t gwc_memory(const gwc *g)
{
    size_t n = sizeof *g + strlen(g->realm) + strlen(g->version) + 2;
    n += g->by_conn.cap * sizeof(hmap_u64_slot) + g->by_node.cap * sizeof(hmap_slot);
    n += g->acts_cap * sizeof(gwc__act) + g->arena_cap;
    for (const gwc__conn *c = g->lru_head; c; c = c->next) {
        n += sizeof *c + c->endpoint_len + c->caps_len + wire_reader_memory(&c->reader);
    }
    return n;
}
