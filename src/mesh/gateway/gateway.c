/* src/mesh/gateway/gateway.c — macula_gateway (see gateway.h). */
#include "gateway.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "clients.h"
#include "base/bytebuf.h"
#include "base/hmap.h"
#include "diagnostics.h"
#include "pubsub.h"
#include "quic_server.h"
#include "mesh/routing_server.h"
#include "registry.h"
#include "rpc.h"

#define GW_PENDING_MAX 64    /* diagnostics calls in flight; beyond, the core answers inline */
#define GW_CALL_ID_MAX 64    /* longer call ids are answered inline too */
#define GW_DIAG_TIMEOUT 5000 /* ms */
#define GW_DHT_TIMEOUT 40000 /* ms: a DHT lookup is bounded by 30 s, its STOREs by 5 s more */
#define GW_DHT_PREFIX "com.macula.dht."

enum { GW_TICK = 1 };

typedef struct gw_pending {
    uint64_t ref; /* 0: free */
    bool dht;     /* a com.macula.dht.* call to the routing server */
    uint64_t conn;
    size_t call_id_len;
    uint8_t call_id[GW_CALL_ID_MAX];
} gw_pending;

/* Pub/sub: the subscriptions macula_gateway_pubsub accepted, per connection (the ledger that
 * survives a restart of that worker). */
typedef struct gw_ps_sub {
    uint8_t qos;
    uint16_t len;
    char *pattern;
} gw_ps_sub;
typedef struct gw_ps_conn {
    uint64_t conn; /* key */
    size_t n, cap;
    gw_ps_sub *subs;
} gw_ps_conn;

typedef struct gw_gateway {
    sup_rt *rt;
    sup_actor *self; /* the running actor, set at the start of every callback */
    gwc *core;
    gw_transport transport;
    bool attached;
    uint64_t attach_ref;
    sup_deadline timer; /* the core's next deadline (gwc_next_deadline) */
    gw_pending pending[GW_PENDING_MAX];
    hmap ps_ledger;  /* conn -> gw_ps_conn */
    sup_pid ps;      /* macula_gateway_pubsub as last looked up (a dead pid: looked up again) */
    uint8_t *ps_buf; /* GW_PS_FRAME message being built (grows, reused) */
    size_t ps_cap;
    sup_msgbuf pb; /* GW_PS_PUBLISH batch being built in place: records (pubsub.h), sent by
                    * gw__ps_pub_flush; pb.len 0: none pending */
    uint64_t pb_n; /* records in it */
    bool chaos;
} gw_gateway;

/* ---- pub/sub routing (macula_gateway_pubsub) ------------------------------------------------ */

static void gw__ps_conn_free(gw_ps_conn *c)
{
    for (size_t i = 0; i < c->n; i++) {
        free(c->subs[i].pattern);
    }
    free(c->subs);
    free(c);
}

static void gw__ps_ledger_drop(gw_gateway *g, uint64_t conn)
{
    gw_ps_conn *c = hmap_del(&g->ps_ledger, &conn, sizeof conn);
    if (c != NULL) {
        gw__ps_conn_free(c);
    }
}

static void gw__ps_ledger_free(gw_gateway *g)
{
    size_t it = 0;
    const hmap_slot *s;
    while ((s = hmap_next(&g->ps_ledger, &it)) != NULL) {
        gw__ps_conn_free(s->val);
    }
    hmap_free(&g->ps_ledger);
}

static void gw__ps_ledger(gw_gateway *g, const sup_msg *m)
{
    gw_ps_ledger l;
    if (m->len <= sizeof l || m->len - sizeof l > UINT16_MAX) {
        return;
    }
    memcpy(&l, m->data, sizeof l);
    const char *pat = (const char *)m->data + sizeof l;
    size_t len = m->len - sizeof l;
    gw_ps_conn *c = hmap_get(&g->ps_ledger, &l.conn, sizeof l.conn);
    for (size_t i = 0; c != NULL && i < c->n; i++) {
        if (c->subs[i].len == len && memcmp(c->subs[i].pattern, pat, len) == 0) {
            if (l.add) {
                c->subs[i].qos = l.qos;
            } else {
                free(c->subs[i].pattern);
                c->subs[i] = c->subs[--c->n];
            }
            return;
        }
    }
    /* Only connections the core knows as clients get entries (a late message for a closed
     * connection must not leave one behind). */
    gwc_client_info ci;
    if (!l.add || gwc_conn_info(g->core, l.conn, &ci) != GWC_OK || !ci.connected) {
        return;
    }
    if (c == NULL) {
        c = calloc(1, sizeof *c);
        if (c == NULL) {
            return;
        }
        c->conn = l.conn;
        if (hmap_put(&g->ps_ledger, &c->conn, sizeof c->conn, c, NULL) != HMAP_OK) {
            free(c);
            return;
        }
    }
    if (c->n == c->cap) {
        size_t nc = c->cap ? c->cap * 2 : 4;
        gw_ps_sub *ns = realloc(c->subs, nc * sizeof *ns);
        if (ns == NULL) {
            return;
        }
        c->subs = ns;
        c->cap = nc;
    }
    char *p = malloc(len);
    if (p == NULL) {
        return;
    }
    memcpy(p, pat, len);
    c->subs[c->n++] = (gw_ps_sub){.qos = l.qos, .len = (uint16_t)len, .pattern = p};
}

/* A restarted pubsub worker asks for the ledger: every entry goes back as GW_PS_RESUB. */
static void gw__ps_sync(gw_gateway *g, sup_pid to)
{
    size_t it = 0;
    const hmap_slot *s;
    uint8_t buf[sizeof(gw_ps_ledger) + UINT16_MAX];
    while ((s = hmap_next(&g->ps_ledger, &it)) != NULL) {
        const gw_ps_conn *c = s->val;
        for (size_t i = 0; i < c->n; i++) {
            gw_ps_ledger l = {.conn = c->conn, .add = 1, .qos = c->subs[i].qos};
            memcpy(buf, &l, sizeof l);
            memcpy(buf + sizeof l, c->subs[i].pattern, c->subs[i].len);
            (void)sup_send(g->rt, sup_self(g->self), to, GW_PS_RESUB, buf,
                           sizeof l + c->subs[i].len);
        }
    }
}

/* Sends to macula_gateway_pubsub through the cached pid; a send to a dead pid (the worker
 * restarted) looks the name up again and retries once. SUP_ENOPROC when none runs. With b, the
 * message is b's bytes, sent without a copy (b is emptied; on failure it keeps them). */
static int gw__ps_send_now(gw_gateway *g, int tag, const void *data, size_t len, sup_msgbuf *b)
{
    for (int attempt = 0; attempt < 2; attempt++) {
        if (attempt > 0 || sup_pid_is_null(g->ps)) {
            g->ps = sup_whereis(g->rt, "macula_gateway_pubsub");
            if (sup_pid_is_null(g->ps)) {
                return SUP_ENOPROC;
            }
        }
        int rc = b != NULL ? sup_msgbuf_send(g->rt, sup_self(g->self), g->ps, tag, b)
                           : sup_send(g->rt, sup_self(g->self), g->ps, tag, data, len);
        if (rc != SUP_ENOPROC) {
            return rc;
        }
    }
    return SUP_ENOPROC;
}

/* Sends the GW_PS_PUBLISH batch being built, if any. When no worker runs after all (the cached
 * pid died and none was restarted yet), its frames are lost and counted in frames_unhandled,
 * as a frame is when no worker runs at the hook. */
static void gw__ps_pub_flush(gw_gateway *g)
{
    if (g->pb.len == 0) {
        return;
    }
    if (gw__ps_send_now(g, GW_PS_PUBLISH, NULL, 0, &g->pb) != SUP_OK && g->core != NULL) {
        gwc_count_unhandled(g->core, g->pb_n); /* no worker ran after all: counted as before */
    }
    g->pb.len = 0; /* sent (and emptied), or dropped */
    g->pb_n = 0;
}

/* Every other message to the worker goes after the publishes taken before it (the worker sees
 * frames in the order they arrived). */
static int gw__ps_send(gw_gateway *g, int tag, const void *data, size_t len)
{
    gw__ps_pub_flush(g);
    return gw__ps_send_now(g, tag, data, len, NULL);
}

/* PUBLISH .. PUBACK (0x10-0x14) go to macula_gateway_pubsub; PASS when it is not running
 * (counted as unhandled). The message is built in a buffer the gateway keeps (sup_send copies
 * it). */
static bool gw__ps_buf(gw_gateway *g, size_t len)
{
    return bytebuf_reserve(&g->ps_buf, &g->ps_cap, len, 4096);
}

/* The frame f as it came (header and payload, already decoded once by the core), built in
 * ps_buf at offset `at` (bytes before it are the caller's): passed on without being encoded
 * again. Returns where the frame starts, NULL when the buffer cannot grow. */
static const uint8_t *gw__frame_bytes(gw_gateway *g, const wire_frame *f, size_t at, size_t *len)
{
    *len = WIRE_HEADER_LEN + f->payload_len;
    if (!gw__ps_buf(g, at + *len)) {
        return NULL;
    }
    uint8_t *hdr = g->ps_buf + at;
    wire_encode_header(hdr, (uint8_t)f->type, f->payload_len);
    if (f->payload_len > 0) {
        memcpy(hdr + WIRE_HEADER_LEN, f->payload, f->payload_len);
    }
    return hdr;
}

static void gw__ps_hdr(gw_ps_frame_hdr *h, const gwc_peer *peer)
{
    memset(h, 0, sizeof *h);
    h->conn = peer->conn;
    memcpy(h->node_id, peer->node_id, WIRE_NODE_ID_LEN);
    snprintf(h->remote, sizeof h->remote, "%s", peer->remote ? peer->remote : "");
}

static int gw__ps_frame(gw_gateway *g, const gwc_peer *peer, const wire_frame *f)
{
    gw_ps_frame_hdr h;
    size_t flen = 0;
    if (gw__frame_bytes(g, f, sizeof h, &flen) == NULL) { /* the frame after the header */
        return GWC_HOOK_PASS;
    }
    gw__ps_hdr(&h, peer);
    memcpy(g->ps_buf, &h, sizeof h);
    return gw__ps_send(g, GW_PS_FRAME, g->ps_buf, sizeof h + flen) == 0 ? GWC_HOOK_TAKEN
                                                                        : GWC_HOOK_PASS;
}

/* GW_PS_FANOUT from the pubsub worker: records of one frame and the connections it goes to,
 * each frame queued to each listed connection in order. The records are checked first: a
 * message they do not tile exactly is dropped whole. */
static void gw__ps_fanout(gw_gateway *g, const sup_msg *m)
{
    const uint8_t *p = m->data;
    gw_ps_fanout_hdr h;
    for (size_t off = 0; off < m->len;) {
        size_t rest = m->len - off;
        if (rest < sizeof h) {
            return;
        }
        memcpy(&h, p + off, sizeof h);
        rest -= sizeof h;
        if (h.n == 0 || h.frame_len == 0 || h.frame_len > rest ||
            (rest - h.frame_len) / sizeof(uint64_t) < h.n) {
            return;
        }
        off += sizeof h + h.frame_len + (size_t)h.n * sizeof(uint64_t);
    }
    for (size_t off = 0; off < m->len;) {
        memcpy(&h, p + off, sizeof h);
        const uint8_t *frame = p + off + sizeof h;
        (void)gwc_send_frame_many(g->core, frame + h.frame_len, h.n, frame, h.frame_len);
        off += sizeof h + h.frame_len + (size_t)h.n * sizeof(uint64_t);
    }
}

static uint32_t gw__ps_off(const wire_frame *f, wire_bytes b)
{
    return b.p == NULL ? GW_PS_ABSENT : (uint32_t)(b.p - f->payload);
}

/* A PUBLISH the core decoded: its payload and the fields' places in it, appended to the
 * GW_PS_PUBLISH batch (so that the worker does not decode it again, and gets every frame of one
 * read in one message). PASS when no worker runs. */
static int gw__ps_publish(gw_gateway *g, const gwc_peer *peer, const wire_frame *f,
                          const wire_publish *pub)
{
    if (sup_pid_is_null(g->ps)) {
        g->ps = sup_whereis(g->rt, "macula_gateway_pubsub");
        if (sup_pid_is_null(g->ps)) {
            return GWC_HOOK_PASS;
        }
    }
    size_t need = g->pb.len + sizeof(gw_ps_pub) + f->payload_len;
    if (sup_msgbuf_reserve(g->rt, &g->pb, need) != SUP_OK) {
        return GWC_HOOK_PASS;
    }
    gw_ps_pub pp;
    memset(&pp, 0, sizeof pp);
    pp.conn = peer->conn;
    pp.len = f->payload_len;
    pp.topic_off = gw__ps_off(f, pub->topic);
    pp.topic_len = (uint32_t)pub->topic.len;
    pp.payload_off = gw__ps_off(f, pub->payload);
    pp.payload_len = (uint32_t)pub->payload.len;
    pp.mid_off = gw__ps_off(f, pub->message_id);
    pp.mid_len = (uint32_t)pub->message_id.len;
    pp.qos = pub->qos;
    pp.retain = pub->retain ? 1 : 0;
    memcpy(g->pb.data + g->pb.len, &pp, sizeof pp);
    if (f->payload_len > 0) {
        memcpy(g->pb.data + g->pb.len + sizeof pp, f->payload, f->payload_len);
    }
    g->pb.len = need;
    g->pb_n++;
    if (g->pb.len >= GW_PS_BATCH_MAX) {
        gw__ps_pub_flush(g);
    }
    return GWC_HOOK_TAKEN;
}

static void gw__ps_conn_down(gw_gateway *g, uint64_t conn)
{
    gw__ps_ledger_drop(g, conn);
    (void)gw__ps_send(g, GW_PS_CONN_DOWN, &conn, sizeof conn);
}

/* ---- chaos (MACULA_CHAOS=1 only) ------------------------------------------------------------ */

#define GW_CHAOS_PROC "com.macula.admin.crash"

/* com.macula.admin.crash {"actor": NAME}: kills the named actor (reason {chaos,crash}) so that
 * the fault-isolation scenarios can be tested on a running node. */
static int gw__chaos_call(gw_gateway *g, uint64_t conn, const wire_call *call)
{
    if (!g->chaos) {
        (void)gwc_reply_error(g->core, conn, call->call_id, "no_handler",
                              "chaos procedures need MACULA_CHAOS=1 at node start");
        return GWC_HOOK_TAKEN;
    }
    char name[128] = "";
    json_error_t jerr;
    json_t *args = json_loadb((const char *)call->args.p, call->args.len, 0, &jerr);
    const char *actor = json_string_value(json_object_get(args, "actor"));
    if (actor != NULL && strlen(actor) < sizeof name) {
        snprintf(name, sizeof name, "%s", actor);
    }
    json_decref(args);
    sup_pid victim = name[0] ? sup_whereis(g->rt, name) : SUP_NOPID;
    if (sup_pid_is_null(victim)) {
        (void)gwc_reply_error(g->core, conn, call->call_id, "invalid_args",
                              "args must be {\"actor\": \"REGISTERED_NAME\"} of a running actor");
        return GWC_HOOK_TAKEN;
    }
    sup_reason r = sup_reason_error("{chaos,crash}");
    (void)sup_exit(g->rt, sup_self(g->self), victim, &r);
    char res[200], pid[24];
    snprintf(res, sizeof res, "{\"crashed\":\"%s\",\"pid\":\"%s\"}", name,
             sup_pid_str(victim, pid, sizeof pid));
    (void)gwc_reply(g->core, conn, call->call_id, (const uint8_t *)res, strlen(res));
    return GWC_HOOK_TAKEN;
}

static void gw__flush(gw_gateway *g)
{
    gw__ps_pub_flush(g);
    sup_pid clients = SUP_NOPID; /* looked up at the first client event of this flush */
    bool clients_known = false;
    gwc_action a;
    while (gwc_next_action(g->core, &a)) {
        switch (a.kind) {
        case GWC_ACT_SEND:
            if (g->transport.send != NULL) {
                (void)g->transport.send(g->transport.ctx, a.conn, a.data, a.len);
            }
            break;
        case GWC_ACT_CLOSE:
            if (g->transport.close != NULL) {
                (void)g->transport.close(g->transport.ctx, a.conn, a.code, a.reason);
            }
            break;
        case GWC_ACT_CLIENT_UP:
        case GWC_ACT_CLIENT_SEEN:
        case GWC_ACT_CLIENT_DOWN:
            if (a.kind == GWC_ACT_CLIENT_DOWN) { /* its calls and handlers go at once */
                sup_pid rpc = sup_whereis(g->rt, "macula_gateway_rpc");
                if (!sup_pid_is_null(rpc)) {
                    (void)sup_send(g->rt, sup_self(g->self), rpc, GW_RPC_CLIENT_DOWN, &a.conn,
                                   sizeof a.conn);
                }
            }
            if (!clients_known) {
                clients = sup_whereis(g->rt, "macula_gateway_clients");
                clients_known = true;
            }
            if (!sup_pid_is_null(clients)) {
                (void)gw_clients_notify(g->rt, sup_self(g->self), clients, &a);
            }
            if (a.kind == GWC_ACT_CLIENT_DOWN) {
                gw__ps_conn_down(g, a.conn);
            }
            break;
        }
    }
}

static void gw__rearm(gw_gateway *g)
{
    sup_deadline_set(g->self, &g->timer, gwc_next_deadline(g->core), GW_TICK);
}

static gw_pending *gw__pending_slot(gw_gateway *g)
{
    for (size_t i = 0; i < GW_PENDING_MAX; i++) {
        if (g->pending[i].ref == 0) {
            return &g->pending[i];
        }
    }
    return NULL;
}

static void gw__pending_fill(gw_pending *slot, uint64_t ref, uint64_t conn, bool is_dht,
                             const wire_call *call)
{
    slot->ref = ref;
    slot->conn = conn;
    slot->dht = is_dht;
    slot->call_id_len = call->call_id.len;
    if (call->call_id.len > 0) {
        memcpy(slot->call_id, call->call_id.p, call->call_id.len);
    }
}

/* com.macula.dht.* go to the routing server as "procedure\0args". */
static int gw__dht_call(gw_gateway *g, uint64_t conn, const wire_call *call)
{
    sup_pid rs = sup_whereis(g->rt, "macula_routing_server");
    gw_pending *slot = gw__pending_slot(g);
    if (sup_pid_is_null(rs) || slot == NULL || call->procedure.len > 256) {
        (void)gwc_reply_error(g->core, conn, call->call_id, slot == NULL ? "busy" : "no_handler",
                              slot == NULL ? "too many calls in flight"
                                           : "the routing server is not running");
        return GWC_HOOK_TAKEN;
    }
    size_t len = call->procedure.len + 1 + call->args.len;
    uint8_t *req = malloc(len);
    if (req == NULL) {
        return GWC_HOOK_PASS;
    }
    memcpy(req, call->procedure.p, call->procedure.len);
    req[call->procedure.len] = '\0';
    if (call->args.len > 0) {
        memcpy(req + call->procedure.len + 1, call->args.p, call->args.len);
    }
    uint64_t ref = sup_call(g->self, rs, RS_JSON, req, len, GW_DHT_TIMEOUT);
    free(req);
    gw__pending_fill(slot, ref, conn, true, call);
    return GWC_HOOK_TAKEN;
}

/* Every other CALL goes to macula_gateway_rpc (local handlers, providers across the mesh);
 * without it the core answers no_handler. */
static int gw__rpc_call(gw_gateway *g, gwc *core, uint64_t conn, const wire_frame *f)
{
    gwc_client_info ci;
    size_t len = 0;
    const uint8_t *frame = gw__frame_bytes(g, f, 0, &len);
    if (frame == NULL || gwc_conn_info(core, conn, &ci) != GWC_OK) {
        return GWC_HOOK_PASS;
    }
    int rc =
        gw_rpc_deliver(g->rt, sup_self(g->self), GW_RPC_VIA_GATEWAY, conn, ci.node_id, frame, len);
    return rc == 0 ? GWC_HOOK_TAKEN : GWC_HOOK_PASS;
}

/* The core's RPC hook: diagnostics go to the diagnostics actor when it runs, the DHT's
 * procedures to the routing server. */
static int gw__call_hook(void *user, gwc *core, uint64_t conn, const wire_call *call,
                         const wire_frame *f, uint64_t now)
{
    (void)now;
    gw_gateway *g = user;
    if (call->call_id.len > GW_CALL_ID_MAX) {
        return GWC_HOOK_PASS;
    }
    size_t plen = strlen(GW_DHT_PREFIX);
    if (call->procedure.len > plen && memcmp(call->procedure.p, GW_DHT_PREFIX, plen) == 0) {
        return gw__dht_call(g, conn, call);
    }
    if (call->procedure.len == strlen(GW_CHAOS_PROC) &&
        memcmp(call->procedure.p, GW_CHAOS_PROC, call->procedure.len) == 0) {
        return gw__chaos_call(g, conn, call);
    }
    if (!gw_diag_is_procedure(call->procedure.p, call->procedure.len)) {
        return gw__rpc_call(g, core, conn, f);
    }
    sup_pid diag = sup_whereis(g->rt, "macula_gateway_diagnostics");
    gw_pending *slot = gw__pending_slot(g);
    if (sup_pid_is_null(diag) || slot == NULL) {
        return GWC_HOOK_PASS;
    }
    size_t len = 0;
    void *req = gw_diag_request(gwc_stats_get(core)->clients, call->procedure.p,
                                call->procedure.len, call->args.p, call->args.len, &len);
    if (req == NULL) {
        return GWC_HOOK_PASS;
    }
    uint64_t ref = sup_call(g->self, diag, GW_DIAG_CALL, req, len, GW_DIAG_TIMEOUT);
    free(req);
    gw__pending_fill(slot, ref, conn, false, call);
    return GWC_HOOK_TAKEN;
}

/* The core's frame hook: DHT frames go to the bootstrap server (which counts and checks them
 * for the routing server), or straight to the routing server when it is not running. */
static int gw__frame_hook(void *user, gwc *core, const gwc_peer *peer, const wire_frame *f,
                          const wire_msg *m, uint64_t now)
{
    (void)core;
    (void)now;
    gw_gateway *g = user;
    if (f->type == WIRE_CAST || f->type == WIRE_REPLY || f->type == WIRE_RPC_ROUTE) {
        size_t rl = 0;
        const uint8_t *rf = gw__frame_bytes(g, f, 0, &rl);
        if (rf == NULL) {
            return GWC_HOOK_PASS;
        }
        int rc = gw_rpc_deliver(g->rt, sup_self(g->self), GW_RPC_VIA_GATEWAY, peer->conn,
                                peer->node_id, rf, rl);
        return rc == 0 ? GWC_HOOK_TAKEN : GWC_HOOK_PASS;
    }
    if (f->type == WIRE_PUBLISH && m->type == WIRE_PUBLISH) {
        return gw__ps_publish(g, peer, f, &m->publish);
    }
    if (f->type >= WIRE_PUBLISH && f->type <= WIRE_PUBACK) {
        return gw__ps_frame(g, peer, f);
    }
    if (f->type < WIRE_FIND_NODE || f->type > WIRE_STORE_ACK) {
        return GWC_HOOK_PASS;
    }
    sup_pid to = sup_whereis(g->rt, "macula_bootstrap_server");
    if (sup_pid_is_null(to)) {
        to = sup_whereis(g->rt, "macula_routing_server");
    }
    uint8_t *frame = NULL;
    size_t len = 0;
    if (sup_pid_is_null(to) || wire_encode_alloc(m, &frame, &len) != WIRE_OK) {
        return GWC_HOOK_PASS;
    }
    rs_frame_hdr h;
    memset(&h, 0, sizeof h);
    h.conn = peer->conn;
    memcpy(h.node_id, peer->node_id, WIRE_NODE_ID_LEN);
    snprintf(h.remote, sizeof h.remote, "%s", peer->remote ? peer->remote : "");
    uint8_t *buf = malloc(sizeof h + len);
    int rc = -1;
    if (buf != NULL) {
        memcpy(buf, &h, sizeof h);
        memcpy(buf + sizeof h, frame, len);
        rc = sup_send(g->rt, sup_self(g->self), to, RS_FRAME, buf, sizeof h + len);
        free(buf);
    }
    free(frame);
    return rc == 0 ? GWC_HOOK_TAKEN : GWC_HOOK_PASS;
}

static void gw__dht_reply(gw_gateway *g, gw_pending *p, const sup_msg *m)
{
    wire_bytes id = {p->call_id, p->call_id_len};
    rs_json_rep rep;
    if (m->status != 0 || m->len < sizeof rep) {
        (void)gwc_reply_error(g->core, p->conn, id,
                              m->status == SUP_ETIMEDOUT ? "timeout" : "handler_error",
                              "the routing server did not answer");
    } else {
        memcpy(&rep, m->data, sizeof rep);
        rep.code[sizeof rep.code - 1] = '\0';
        const uint8_t *text = (const uint8_t *)m->data + sizeof rep;
        size_t tl = m->len - sizeof rep;
        if (rep.rc == 0) {
            (void)gwc_reply(g->core, p->conn, id, text, tl);
        } else {
            char msg[200];
            snprintf(msg, sizeof msg, "%.*s", (int)(tl < 199 ? tl : 199), (const char *)text);
            (void)gwc_reply_error(g->core, p->conn, id, rep.code, msg);
        }
    }
    p->ref = 0;
}

static void gw__diag_reply(gw_gateway *g, gw_pending *p, const sup_msg *m)
{
    wire_bytes id = {p->call_id, p->call_id_len};
    gw_diag_rep rep;
    if (m->status != 0 || m->len < sizeof rep) {
        (void)gwc_reply_error(g->core, p->conn, id, "handler_error",
                              "the diagnostics service did not answer");
    } else {
        memcpy(&rep, m->data, sizeof rep);
        if (rep.rc == GW_DIAG_OK) {
            (void)gwc_reply(g->core, p->conn, id, (const uint8_t *)m->data + sizeof rep,
                            m->len - sizeof rep);
        } else {
            char msg[160];
            snprintf(msg, sizeof msg, "diagnostics: %s", gw_diag_strerror(rep.rc));
            (void)gwc_reply_error(g->core, p->conn, id, gw_diag_strerror(rep.rc), msg);
        }
    }
    p->ref = 0;
}

static int gw__init(sup_actor *self, void *state, void *arg)
{
    gw_gateway *g = state;
    const gw_gateway_config *cfg = arg;
    g->rt = sup_self_rt(self);
    g->self = self;
    gwc_config cc = cfg->core;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    int64_t wall = (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
    cc.wall_offset_ms = wall - (int64_t)sup_rt_now(g->rt);
    int rc = gwc_new(&cc, sup_rt_now(g->rt), &g->core);
    if (rc != GWC_OK) {
        char text[SUP_REASON_TEXT_MAX];
        snprintf(text, sizeof text, "{gateway_config,%s}", gwc_strerror(rc));
        sup_reason r = sup_reason_error(text);
        sup_stop(self, &r);
        return -1;
    }
    g->chaos = cfg->chaos;
    gwc_set_call_hook(g->core, gw__call_hook, g);
    gwc_set_frame_hook(g->core, gw__frame_hook, g);
    sup_register(g->rt, "macula_gateway", sup_self(self));
    gw_reg_set(g->rt, GW_REG_GATEWAY, g->core);
    sup_pid qs = sup_whereis(g->rt, "macula_gateway_quic_server");
    if (!sup_pid_is_null(qs)) {
        g->attach_ref = sup_call(self, qs, GW_QS_ATTACH, NULL, 0, 0);
    }
    return 0;
}

static void gw__terminate(sup_actor *self, void *state, const sup_reason *reason)
{
    (void)reason;
    gw_gateway *g = state;
    g->self = self;
    if (g->core == NULL) {
        return;
    }
    gw_reg_clear(g->rt, GW_REG_GATEWAY, g->core);
    gwc_shutdown(g->core, sup_rt_now(g->rt));
    gw__flush(g);
    gwc_free(g->core);
    g->core = NULL;
    gw__ps_ledger_free(g);
    free(g->ps_buf);
    g->ps_buf = NULL;
    g->ps_cap = 0;
    sup_msgbuf_free(g->rt, &g->pb);
}

/* GW_CONN_DATA_BATCH: the records are checked first (a message they do not tile is dropped
 * whole), then each is handled as one GW_CONN_DATA. */
static void gw__conn_data_batch(gw_gateway *g, const sup_msg *m, uint64_t now)
{
    const uint8_t *p = m->data;
    gw_conn_data_rec r;
    for (size_t off = 0; off < m->len;) {
        if (m->len - off < sizeof r) {
            return;
        }
        memcpy(&r, p + off, sizeof r);
        off += sizeof r;
        if (r.len > m->len - off) {
            return;
        }
        off += r.len;
    }
    for (size_t off = 0; off < m->len;) {
        memcpy(&r, p + off, sizeof r);
        off += sizeof r;
        (void)gwc_conn_data(g->core, r.conn, p + off, r.len, now);
        off += r.len;
    }
}

static void gw__info(sup_actor *self, void *state, const sup_msg *m)
{
    gw_gateway *g = state;
    g->self = self;
    uint64_t now = sup_rt_now(g->rt);
    switch (m->kind) {
    case SUP_MSG_INFO:
        if (m->tag == GW_CONN_OPENED && m->len == sizeof(gw_conn_opened_msg)) {
            gw_conn_opened_msg o;
            memcpy(&o, m->data, sizeof o);
            o.remote[sizeof o.remote - 1] = '\0';
            (void)gwc_conn_open(g->core, o.conn, o.peer_id_len ? o.peer_id : NULL,
                                o.peer_id_len == WIRE_NODE_ID_LEN ? WIRE_NODE_ID_LEN : 0, o.remote,
                                now);
        } else if (m->tag == GW_CONN_DATA && m->len >= sizeof(uint64_t)) {
            uint64_t conn;
            memcpy(&conn, m->data, sizeof conn);
            (void)gwc_conn_data(g->core, conn, (const uint8_t *)m->data + sizeof conn,
                                m->len - sizeof conn, now);
        } else if (m->tag == GW_CONN_DATA_BATCH) {
            gw__conn_data_batch(g, m, now);
        } else if (m->tag == GW_SEND_FRAME && m->len > sizeof(uint64_t)) {
            uint64_t conn;
            memcpy(&conn, m->data, sizeof conn);
            (void)gwc_send_frame(g->core, conn, (const uint8_t *)m->data + sizeof conn,
                                 m->len - sizeof conn);
        } else if (m->tag == GW_PS_FANOUT) {
            gw__ps_fanout(g, m);
        } else if (m->tag == GW_CONN_CLOSED && m->len == sizeof(uint64_t)) {
            uint64_t conn;
            memcpy(&conn, m->data, sizeof conn);
            (void)gwc_conn_closed(g->core, conn, now);
        }
        break;
    case SUP_MSG_TIMER:
        if (sup_deadline_fired(&g->timer, m)) {
            (void)gwc_tick(g->core, now);
        }
        break;
    case SUP_MSG_REPLY:
        if (m->ref == g->attach_ref) {
            g->attach_ref = 0;
            if (m->status == 0 && m->len == sizeof(gw_transport)) {
                memcpy(&g->transport, m->data, sizeof g->transport);
                g->attached = true;
            }
            break;
        }
        for (size_t i = 0; i < GW_PENDING_MAX; i++) {
            if (g->pending[i].ref == m->ref) {
                if (g->pending[i].dht) {
                    gw__dht_reply(g, &g->pending[i], m);
                } else {
                    gw__diag_reply(g, &g->pending[i], m);
                }
                break;
            }
        }
        break;
    default: break;
    }
    gw__flush(g);
    gw__rearm(g);
}

typedef struct gw_sync {
    gw_gateway *g;
    sup_pid to;
} gw_sync;

static void gw__sync_one(const gwc_client_info *ci, void *user)
{
    gw_sync *s = user;
    gwc_action a = {.kind = GWC_ACT_CLIENT_UP,
                    .conn = ci->conn,
                    .data = ci->endpoint.p,
                    .len = ci->endpoint.len,
                    .time_ms = ci->connected_ms,
                    .caps = ci->caps,
                    .caps_len = ci->caps_len,
                    .caps_count = ci->caps_count,
                    .remote = ci->remote};
    memcpy(a.node_id, ci->node_id, WIRE_NODE_ID_LEN);
    (void)gw_clients_notify(s->g->rt, sup_self(s->g->self), s->to, &a);
}

static void gw__cast(sup_actor *self, void *state, const sup_msg *m)
{
    gw_gateway *g = state;
    g->self = self;
    if (m->tag == GW_CLIENTS_SYNC) {
        gw_sync s = {g, m->from};
        gwc_foreach_client(g->core, gw__sync_one, &s);
    } else if (m->tag == GW_PS_LEDGER) {
        gw__ps_ledger(g, m);
    } else if (m->tag == GW_PS_SYNC) {
        gw__ps_sync(g, m->from);
    }
}

static void gw__call(sup_actor *self, void *state, const sup_msg *m)
{
    gw_gateway *g = state;
    g->self = self;
    if (m->tag == GW_GATEWAY_STATS) {
        sup_reply(g->rt, sup_msg_from(m), gwc_stats_get(g->core), sizeof(gwc_stats));
    } else {
        sup_reply(g->rt, sup_msg_from(m), NULL, 0);
    }
}

static const sup_behaviour gw_gateway_behaviour = {
    .name = "gateway",
    .state_size = sizeof(gw_gateway),
    .init = gw__init,
    .handle_call = gw__call,
    .handle_cast = gw__cast,
    .handle_info = gw__info,
    .terminate = gw__terminate,
};

int gw_gateway_start(sup_rt *rt, sup_pid parent, void *arg, void *extra, sup_pid *out,
                     sup_reason *why)
{
    (void)extra;
    return sup_spawn(rt, parent, &gw_gateway_behaviour, arg, SUP_SPAWN_LINK, out, why);
}

int gw_gateway_conn_opened(sup_rt *rt, sup_pid from, sup_pid gw, uint64_t conn,
                           const uint8_t *peer_id, size_t peer_id_len, const char *remote)
{
    gw_conn_opened_msg o;
    memset(&o, 0, sizeof o);
    o.conn = conn;
    if (peer_id != NULL && peer_id_len == WIRE_NODE_ID_LEN) {
        o.peer_id_len = WIRE_NODE_ID_LEN;
        memcpy(o.peer_id, peer_id, WIRE_NODE_ID_LEN);
    }
    snprintf(o.remote, sizeof o.remote, "%s", remote ? remote : "");
    return sup_send(rt, from, gw, GW_CONN_OPENED, &o, sizeof o);
}

int gw_gateway_conn_data(sup_rt *rt, sup_pid from, sup_pid gw, uint64_t conn, const uint8_t *data,
                         size_t len)
{
    uint8_t *p = malloc(sizeof conn + len);
    if (p == NULL) {
        return SUP_ENOMEM;
    }
    memcpy(p, &conn, sizeof conn);
    if (len > 0) {
        memcpy(p + sizeof conn, data, len);
    }
    int rc = sup_send(rt, from, gw, GW_CONN_DATA, p, sizeof conn + len);
    free(p);
    return rc;
}

int gw_gateway_conn_closed(sup_rt *rt, sup_pid from, sup_pid gw, uint64_t conn)
{
    return sup_send(rt, from, gw, GW_CONN_CLOSED, &conn, sizeof conn);
}

bool gw_gateway_stats(const sup_rt *rt, gwc_stats *out)
{
    const gwc *core = gw_reg_get(rt, GW_REG_GATEWAY);
    if (core == NULL) {
        return false;
    }
    *out = *gwc_stats_get(core);
    return true;
}
