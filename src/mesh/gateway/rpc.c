/* src/mesh/gateway/rpc.c — macula_gateway_rpc (see rpc.h and docs/rpc.md). */
#include "rpc.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <uv.h>

#include "base/bytebuf.h"
#include "base/hmap.h"
#include "mesh/bootstrap/bootstrap.h"
#include "mesh/peer/peer.h"
#include "gateway.h"
#include "gateway_core.h"
#include "mesh/routing_server.h"
#include "mesh_worker.h"
#include "quic_server.h"
#include "registry.h"

#define GW_RPC_DEFAULT_TTL 300000u
#define GW_RPC_DEFAULT_READV 240000u
#define GW_RPC_LOOKUP_MAX 256   /* DHT lookups in flight */
#define GW_RPC_FORWARD_MAX 1024 /* RS_FORWARD answers awaited for calls this node started */
#define GW_RPC_API_TIMEOUT 40000
#define GW_RPC_FWD_TIMEOUT 5000

enum { GW_RPC_TICK = 1 };

_Static_assert(MACULA_CONFIG_NODE_ID_LEN == WIRE_NODE_ID_LEN, "node ids: config and wire agree");

/* A call a client of ours made, while the caller's core works on it. */
typedef struct gw_rpc_call {
    uint8_t id[RPCC_CALL_ID_LEN]; /* ours (the core's key) */
    uint64_t conn;                /* the caller's connection */
    bool cast;
    size_t call_id_len;
    uint8_t call_id[RPCS_CALL_ID_MAX]; /* the caller's */
    /* Per-peer accounting (mesh/peer/peer.h): the peer the current attempt went to (its
     * macula_rpc_handler holds the call in flight) and whether the reply came back through
     * it; the procedure for the advertisement managers (names over PEER_ADV_NAME_MAX: none). */
    bool has_hop, hop_answered;
    uint8_t hop[WIRE_NODE_ID_LEN];
    uint8_t proc_len;
    char proc[PEER_ADV_NAME_MAX];
} gw_rpc_call;

typedef struct gw_rpc_lookup {
    uint64_t ref; /* 0: free */
    char procedure[RPCC_MAX_PROC + 1];
} gw_rpc_lookup;

typedef struct gw_rpc_fwd {
    uint64_t ref; /* 0: free */
    bool track;   /* a call this node started: a failed forward fails the attempt */
    uint8_t call_id[RPCC_CALL_ID_LEN];
    uint8_t dest[WIRE_NODE_ID_LEN];
    peer_rpc_note note; /* for the next hop's macula_rpc_handler once it is known */
} gw_rpc_fwd;

typedef struct gw_rpc {
    sup_rt *rt;
    sup_actor *self;
    gw_rpc_config cfg;
    char realm[256];
    uint8_t node_id[WIRE_NODE_ID_LEN];
    rpcc *caller;
    rpcs *server;
    hmap calls; /* id -> gw_rpc_call */
    uint64_t next_id;
    uint64_t salt;
    gw_rpc_lookup lookups[GW_RPC_LOOKUP_MAX];
    gw_rpc_fwd fwds[GW_RPC_FORWARD_MAX];
    sup_deadline timer; /* the cores' next deadline */
    gw_rpc_view view;
    sup_pid gw;    /* macula_gateway as last looked up (a dead pid: looked up again) */
    uint8_t *sbuf; /* GW_SEND_FRAME message being built: conn, then the frame (reused) */
    size_t sbuf_cap;
} gw_rpc;

static void gw_rpc__route_msg(gw_rpc *g, wire_msg *route, const uint8_t *exclude,
                              const uint8_t *track_call_id);
static void gw_rpc__route_in(gw_rpc *g, const wire_rpc_route *r, const uint8_t *prev);

/* ---- helpers ------------------------------------------------------------------------------- */

static bool gw_rpc__is_self(const gw_rpc *g, const uint8_t *id)
{
    return memcmp(id, g->node_id, WIRE_NODE_ID_LEN) == 0;
}

static bool gw_rpc__no_direct(const gw_rpc *g, const uint8_t *id)
{
    for (size_t i = 0; i < g->cfg.n_no_direct && i < GW_RPC_NO_DIRECT_MAX; i++) {
        if (memcmp(g->cfg.no_direct[i], id, WIRE_NODE_ID_LEN) == 0) {
            return true;
        }
    }
    return false;
}

/* The per-peer note for an RPC_ROUTE sent (out) or received: a call, a cast (a call without
 * call id) or a reply. */
static void gw_rpc__note(const wire_rpc_route *r, bool out, peer_rpc_note *n)
{
    if (r->payload_type == WIRE_RPC_PAYLOAD_CALL) {
        bool cast = r->call.call_id.len == 0;
        peer_rpc_kind k = cast ? (out ? PEER_RPC_CAST_OUT : PEER_RPC_CAST_IN)
                               : (out ? PEER_RPC_CALL_OUT : PEER_RPC_CALL_IN);
        peer_rpc_note_make(n, k, r->call.call_id.p, r->call.call_id.len,
                           (const char *)r->call.procedure.p, r->call.procedure.len, false);
    } else {
        peer_rpc_note_make(n, out ? PEER_RPC_REPLY_OUT : PEER_RPC_REPLY_IN, r->reply.call_id.p,
                           r->reply.call_id.len, NULL, 0, r->reply.is_error);
    }
}

/* The call this node started with call id `id` (16 bytes), or NULL. */
static gw_rpc_call *gw_rpc__own_call(gw_rpc *g, const uint8_t *id, size_t len)
{
    return len == RPCC_CALL_ID_LEN ? hmap_get(&g->calls, id, RPCC_CALL_ID_LEN) : NULL;
}

/* The attempt of call e went out through peer `hop`. */
static void gw_rpc__set_hop(gw_rpc_call *e, const uint8_t *hop)
{
    if (e != NULL) {
        memcpy(e->hop, hop, WIRE_NODE_ID_LEN);
        e->has_hop = true;
        e->hop_answered = false;
    }
}

/* Call e ended or moves on: its hop's macula_rpc_handler drops it (unless the reply came back
 * through that peer, which dropped it already). */
static void gw_rpc__hop_gone(gw_rpc *g, gw_rpc_call *e, bool failed)
{
    if (e != NULL && e->has_hop && !e->hop_answered) {
        (void)peer_rpc_note_send(g->rt, sup_self(g->self), e->hop, PEER_RPC_GONE, e->id,
                                 RPCC_CALL_ID_LEN, NULL, 0, failed);
    }
    if (e != NULL) {
        e->has_hop = false;
    }
}

/* Encodes m straight into the reused GW_SEND_FRAME buffer (after the connection id) and sends
 * it to macula_gateway through the cached pid (looked up again once when it died). */
static void gw_rpc__send_conn(gw_rpc *g, uint64_t conn, const wire_msg *m)
{
    size_t len = wire_encoded_size(m);
    if (len == 0 || !bytebuf_reserve(&g->sbuf, &g->sbuf_cap, sizeof conn + len, 4096) ||
        wire_encode(m, g->sbuf + sizeof conn, len, &len) != WIRE_OK) {
        return;
    }
    memcpy(g->sbuf, &conn, sizeof conn);
    int rc = SUP_ENOPROC;
    if (!sup_pid_is_null(g->gw)) {
        rc = sup_send(g->rt, sup_self(g->self), g->gw, GW_SEND_FRAME, g->sbuf, sizeof conn + len);
    }
    if (rc == SUP_ENOPROC) {
        g->gw = sup_whereis(g->rt, "macula_gateway");
        if (!sup_pid_is_null(g->gw)) {
            (void)sup_send(g->rt, sup_self(g->self), g->gw, GW_SEND_FRAME, g->sbuf,
                           sizeof conn + len);
        }
    }
}

static void gw_rpc__reply_client(gw_rpc *g, uint64_t conn, const uint8_t *call_id, size_t cid_len,
                                 bool is_error, const char *code, const char *message,
                                 const uint8_t *result, size_t rlen)
{
    wire_msg m = {.type = WIRE_REPLY};
    m.reply.call_id = (wire_bytes){call_id, cid_len};
    m.reply.is_error = is_error;
    if (is_error) {
        m.reply.error.code = (wire_bytes){(const uint8_t *)code, strlen(code)};
        m.reply.error.message = (wire_bytes){(const uint8_t *)message, strlen(message)};
    } else {
        m.reply.result = (wire_bytes){result, rlen};
    }
    gw_rpc__send_conn(g, conn, &m);
}

/* Sends a REPLY (result or error) as an RPC_ROUTE to node `dest` (this node: straight into the
 * caller's core). */
static void gw_rpc__reply_node(gw_rpc *g, const uint8_t *dest, const uint8_t *call_id,
                               size_t cid_len, bool is_error, const char *code, const char *message,
                               const uint8_t *result, size_t rlen)
{
    if (gw_rpc__is_self(g, dest)) {
        if (cid_len == RPCC_CALL_ID_LEN) {
            (void)rpcc_reply(g->caller, call_id, g->node_id, is_error, code,
                             is_error ? (const void *)message : result,
                             is_error ? strlen(message) : rlen, sup_rt_now(g->rt));
        }
        return;
    }
    wire_msg m = {.type = WIRE_RPC_ROUTE};
    wire_rpc_route *r = &m.rpc_route;
    r->destination_node_id = (wire_bytes){dest, WIRE_NODE_ID_LEN};
    r->source_node_id = (wire_bytes){g->node_id, WIRE_NODE_ID_LEN};
    r->max_hops = g->cfg.max_hops;
    r->payload_type = WIRE_RPC_PAYLOAD_REPLY;
    r->reply.call_id = (wire_bytes){call_id, cid_len};
    r->reply.is_error = is_error;
    if (is_error) {
        r->reply.error.code = (wire_bytes){(const uint8_t *)code, strlen(code)};
        r->reply.error.message = (wire_bytes){(const uint8_t *)message, strlen(message)};
    } else {
        r->reply.result = (wire_bytes){result, rlen};
    }
    gw_rpc__route_msg(g, &m, NULL, NULL);
}

static void gw_rpc__reply_origin(gw_rpc *g, const rpcs_origin *o, bool is_error, const char *code,
                                 const char *message, const uint8_t *result, size_t rlen)
{
    if (o->kind == RPCS_FROM_CLIENT) {
        gw_rpc__reply_client(g, o->conn, o->call_id, o->call_id_len, is_error, code, message,
                             result, rlen);
    } else if (o->call_id_len > 0) {
        gw_rpc__reply_node(g, o->node, o->call_id, o->call_id_len, is_error, code, message, result,
                           rlen);
    }
}

static uint64_t gw_rpc__deadline(const gw_rpc *g, const wire_call *c, uint64_t now)
{
    uint64_t t =
        c->has_timeout && c->timeout_ms > 0 ? c->timeout_ms : g->cfg.caller.attempt_timeout_ms;
    if (t > g->cfg.caller.overall_timeout_ms) {
        t = g->cfg.caller.overall_timeout_ms;
    }
    return now + t;
}

/* Hands a call (or, with cast, a cast) to a local handler. False when there is none. */
static bool gw_rpc__to_local(gw_rpc *g, const wire_call *c, const rpcs_origin *o, bool cast)
{
    uint64_t hconn;
    if (!rpcs_pick(g->server, (const char *)c->procedure.p, c->procedure.len, &hconn)) {
        return false;
    }
    uint64_t now = sup_rt_now(g->rt);
    wire_msg m = {.type = cast ? WIRE_CAST : WIRE_CALL};
    wire_call *out = cast ? &m.cast : &m.call;
    *out = *c;
    uint8_t id[RPCS_ID_LEN];
    if (!cast) {
        int rc = rpcs_serve(g->server, o, hconn, gw_rpc__deadline(g, c, now), id);
        if (rc != RPCS_OK) {
            gw_rpc__reply_origin(g, o, true, "handler_error", rpcs_strerror(rc), NULL, 0);
            return true;
        }
        out->call_id = (wire_bytes){id, RPCS_ID_LEN};
        out->has_timeout = true;
        out->timeout_ms = (uint32_t)(gw_rpc__deadline(g, c, now) - now);
    } else {
        out->call_id = (wire_bytes){NULL, 0};
    }
    gw_rpc__send_conn(g, hconn, &m);
    return true;
}

/* ---- routes --------------------------------------------------------------------------------- */

/* Sends an RPC_ROUTE toward its destination: on the destination's gateway connection when it
 * is a client of ours, else through the routing server's mesh pool (RS_FORWARD). A route to
 * this node is taken in at once. track_call_id: a call this node started (a failed forward
 * then fails the attempt). */
static void gw_rpc__route_msg(gw_rpc *g, wire_msg *route, const uint8_t *exclude,
                              const uint8_t *track_call_id)
{
    const uint8_t *dest = route->rpc_route.destination_node_id.p;
    if (gw_rpc__is_self(g, dest)) {
        gw_rpc__route_in(g, &route->rpc_route, g->node_id);
        return;
    }
    bool direct_ok = !gw_rpc__no_direct(g, dest);
    const gwc *core = gw_reg_get(g->rt, GW_REG_GATEWAY);
    uint64_t conn;
    peer_rpc_note note;
    gw_rpc__note(&route->rpc_route, true, &note);
    if (direct_ok && core != NULL && gwc_client_conn(core, dest, &conn) == GWC_OK) {
        gw_rpc__send_conn(g, conn, route);
        (void)peer_rpc_note_post(g->rt, sup_self(g->self), dest, &note);
        if (track_call_id != NULL) {
            gw_rpc__set_hop(gw_rpc__own_call(g, track_call_id, RPCC_CALL_ID_LEN), dest);
        }
        return;
    }
    sup_pid rs = sup_whereis(g->rt, "macula_routing_server");
    uint8_t *frame = NULL;
    size_t len = 0;
    if (sup_pid_is_null(rs) || wire_encode_alloc(route, &frame, &len) != WIRE_OK) {
        g->view.no_route++;
        return;
    }
    rs_forward_req q;
    memset(&q, 0, sizeof q);
    memcpy(q.dest, dest, WIRE_NODE_ID_LEN);
    if (exclude != NULL) {
        memcpy(q.exclude, exclude, WIRE_NODE_ID_LEN);
        q.has_exclude = true;
    }
    q.no_direct = !direct_ok;
    uint8_t *buf = malloc(sizeof q + len);
    if (buf != NULL) {
        memcpy(buf, &q, sizeof q);
        memcpy(buf + sizeof q, frame, len);
        uint64_t ref = sup_call(g->self, rs, RS_FORWARD, buf, sizeof q + len, GW_RPC_FWD_TIMEOUT);
        free(buf);
        for (size_t i = 0; ref != 0 && i < GW_RPC_FORWARD_MAX; i++) {
            gw_rpc_fwd *f = &g->fwds[i];
            if (f->ref == 0) {
                f->ref = ref;
                f->track = track_call_id != NULL;
                if (f->track) {
                    memcpy(f->call_id, track_call_id, RPCC_CALL_ID_LEN);
                }
                memcpy(f->dest, dest, WIRE_NODE_ID_LEN);
                f->note = note;
                break;
            }
        }
    }
    free(frame);
}

/* An RPC_ROUTE arrived (prev: the node it came from). */
static void gw_rpc__route_in(gw_rpc *g, const wire_rpc_route *r, const uint8_t *prev)
{
    g->view.routes_in++;
    rpcs_route d = rpcs_route_decide(g->node_id, r->destination_node_id.p,
                                     r->destination_node_id.len, r->hop_count, r->max_hops);
    bool is_call = r->payload_type == WIRE_RPC_PAYLOAD_CALL;
    bool src_ok = r->source_node_id.len == WIRE_NODE_ID_LEN;
    if (d == RPCS_ROUTE_INVALID || !src_ok) {
        return;
    }
    if (!gw_rpc__is_self(g, prev)) {
        peer_rpc_note note;
        gw_rpc__note(r, false, &note);
        (void)peer_rpc_note_post(g->rt, sup_self(g->self), prev, &note);
    }
    if (d == RPCS_ROUTE_MAX_HOPS) {
        g->view.max_hops_exceeded++;
        if (is_call && r->call.call_id.len > 0) {
            gw_rpc__reply_node(g, r->source_node_id.p, r->call.call_id.p, r->call.call_id.len, true,
                               "max_hops_exceeded", "the route reached max_hops", NULL, 0);
        }
        return;
    }
    if (d == RPCS_ROUTE_FORWARD) {
        g->view.routes_forwarded++;
        wire_msg m = {.type = WIRE_RPC_ROUTE};
        m.rpc_route = *r;
        m.rpc_route.hop_count = r->hop_count + 1;
        gw_rpc__route_msg(g, &m, prev, NULL);
        return;
    }
    g->view.routes_delivered++;
    if (!is_call) {
        const wire_reply *p = &r->reply;
        if (p->call_id.len == RPCC_CALL_ID_LEN) {
            char code[64];
            snprintf(code, sizeof code, "%.*s",
                     (int)(p->error.code.len < 63 ? p->error.code.len : 63),
                     p->is_error ? (const char *)p->error.code.p : "");
            gw_rpc_call *e = gw_rpc__own_call(g, p->call_id.p, p->call_id.len);
            if (e != NULL && e->has_hop && memcmp(e->hop, prev, WIRE_NODE_ID_LEN) == 0) {
                e->hop_answered = true; /* REPLY_IN above settled it at that peer */
            }
            if (e != NULL && e->proc_len > 0 && strcmp(code, "no_handler") == 0) {
                (void)peer_adv_note_send(g->rt, sup_self(g->self), r->source_node_id.p,
                                         PEER_ADV_NO_HANDLER, e->proc, e->proc_len);
            }
            (void)rpcc_reply(g->caller, p->call_id.p, r->source_node_id.p, p->is_error,
                             p->is_error ? code : NULL,
                             p->is_error ? p->error.message.p : p->result.p,
                             p->is_error ? p->error.message.len : p->result.len, sup_rt_now(g->rt));
        }
        return;
    }
    const wire_call *c = &r->call;
    bool cast = c->call_id.len == 0;
    rpcs_origin o = {.kind = RPCS_FROM_NODE};
    memcpy(o.node, r->source_node_id.p, WIRE_NODE_ID_LEN);
    if (c->call_id.len > RPCS_CALL_ID_MAX) {
        return;
    }
    o.call_id_len = c->call_id.len;
    if (c->call_id.len > 0) {
        memcpy(o.call_id, c->call_id.p, c->call_id.len);
    }
    if (c->realm.len != strlen(g->realm) || memcmp(c->realm.p, g->realm, c->realm.len) != 0) {
        g->view.realm_mismatch++;
        gw_rpc__reply_origin(g, &o, true, "realm_mismatch", "the call is for another realm", NULL,
                             0);
        return;
    }
    if (!gw_rpc__to_local(g, c, &o, cast) && !cast) {
        gw_rpc__reply_origin(g, &o, true, "no_handler", "no handler for the procedure here", NULL,
                             0);
    }
}

/* ---- the cores' actions --------------------------------------------------------------------- */

static void gw_rpc__lookup(gw_rpc *g, const char *procedure)
{
    sup_pid rs = sup_whereis(g->rt, "macula_routing_server");
    gw_rpc_lookup *l = NULL;
    for (size_t i = 0; i < GW_RPC_LOOKUP_MAX && l == NULL; i++) {
        l = g->lookups[i].ref == 0 ? &g->lookups[i] : NULL;
    }
    char name[RPCC_MAX_PROC + 8];
    int n = snprintf(name, sizeof name, "rpc:%s", procedure);
    dht_id key;
    if (sup_pid_is_null(rs) || l == NULL || n < 0 ||
        dht_key(g->realm, strlen(g->realm), name, (size_t)n, &key) != DHT_OK) {
        g->view.lookups_failed++;
        (void)rpcc_providers(g->caller, procedure, NULL, 0, sup_rt_now(g->rt));
        return;
    }
    snprintf(l->procedure, sizeof l->procedure, "%s", procedure);
    l->ref = sup_call(g->self, rs, RS_GET, &key, sizeof key, GW_RPC_API_TIMEOUT);
}

static void gw_rpc__lookup_done(gw_rpc *g, gw_rpc_lookup *l, const sup_msg *m)
{
    uint8_t(*ids)[RPCC_NODE_ID_LEN] = NULL;
    size_t n = 0;
    rs_get_rep rep;
    if (m->status == 0 && m->len >= sizeof rep) {
        memcpy(&rep, m->data, sizeof rep);
        ids = calloc(rep.nvalues ? rep.nvalues : 1, sizeof *ids);
        const uint8_t *p = (const uint8_t *)m->data + sizeof rep;
        size_t left = m->len - sizeof rep;
        for (uint32_t i = 0; ids != NULL && i < rep.nvalues && left >= sizeof(uint32_t); i++) {
            uint32_t vl;
            memcpy(&vl, p, sizeof vl);
            p += sizeof vl;
            left -= sizeof vl;
            if (vl > left) {
                break;
            }
            /* "NODE_ID_HEX ADDRESS" */
            bool ok = vl >= 2 * WIRE_NODE_ID_LEN;
            for (size_t k = 0; ok && k < WIRE_NODE_ID_LEN; k++) {
                char hx[3] = {(char)p[2 * k], (char)p[2 * k + 1], 0};
                char *end = NULL;
                unsigned long b = strtoul(hx, &end, 16);
                ok = end == hx + 2 && hx[0] != '-' && hx[0] != '+' && hx[0] != ' ';
                ids[n][k] = (uint8_t)b;
            }
            n += ok ? 1 : 0;
            p += vl;
            left -= vl;
        }
    } else {
        g->view.lookups_failed++;
    }
    for (size_t i = 0; i < n; i++) {
        (void)peer_adv_note_send(g->rt, sup_self(g->self), ids[i], PEER_ADV_LOOKUP, l->procedure,
                                 strlen(l->procedure));
    }
    (void)rpcc_providers(g->caller, l->procedure, (const uint8_t(*)[RPCC_NODE_ID_LEN])ids, n,
                         sup_rt_now(g->rt));
    free(ids);
    l->ref = 0;
}

static void gw_rpc__send_attempt(gw_rpc *g, const rpcc_action *a)
{
    gw_rpc_call *c = hmap_get(&g->calls, a->call_id, RPCC_CALL_ID_LEN);
    wire_msg m = {.type = WIRE_RPC_ROUTE};
    wire_rpc_route *r = &m.rpc_route;
    r->destination_node_id = (wire_bytes){a->provider, WIRE_NODE_ID_LEN};
    r->source_node_id = (wire_bytes){g->node_id, WIRE_NODE_ID_LEN};
    r->max_hops = g->cfg.max_hops;
    r->payload_type = WIRE_RPC_PAYLOAD_CALL;
    bool cast = c != NULL && c->cast;
    gw_rpc__hop_gone(g, c, true); /* a new attempt: the previous one failed */
    r->call.call_id = cast ? (wire_bytes){NULL, 0} : (wire_bytes){a->call_id, RPCC_CALL_ID_LEN};
    r->call.procedure = (wire_bytes){(const uint8_t *)a->procedure, strlen(a->procedure)};
    r->call.args = (wire_bytes){a->args, a->args_len};
    r->call.realm = (wire_bytes){(const uint8_t *)g->realm, strlen(g->realm)};
    r->call.has_timeout = true;
    r->call.timeout_ms = a->timeout_ms;
    g->view.routes_sent++;
    gw_rpc__route_msg(g, &m, NULL, cast ? NULL : a->call_id);
    if (cast) {
        (void)rpcc_cancel(g->caller, a->call_id); /* a cast waits for nothing */
    }
}

static void gw_rpc__done(gw_rpc *g, const rpcc_action *a)
{
    gw_rpc_call *c = hmap_del(&g->calls, a->call_id, RPCC_CALL_ID_LEN);
    if (c == NULL) {
        return;
    }
    bool answered = a->status == RPCC_R_OK || a->status == RPCC_R_ERROR;
    gw_rpc__hop_gone(g, c, !answered);
    if (answered && c->proc_len > 0) {
        (void)peer_adv_note_send(g->rt, sup_self(g->self), a->provider, PEER_ADV_ANSWERED, c->proc,
                                 c->proc_len);
    }
    if (!c->cast) {
        if (a->status == RPCC_R_OK) {
            gw_rpc__reply_client(g, c->conn, c->call_id, c->call_id_len, false, NULL, NULL,
                                 a->result, a->result_len);
        } else {
            char msg[512];
            const char *code = rpcc_status_name(a->status);
            if (a->status == RPCC_R_ERROR) {
                code = a->error_code ? a->error_code : "handler_error";
                snprintf(msg, sizeof msg, "%.*s", (int)(a->result_len < 511 ? a->result_len : 511),
                         a->result ? (const char *)a->result : "");
            } else if (a->status == RPCC_R_NO_HANDLER) {
                snprintf(msg, sizeof msg, "no provider of %s answered",
                         a->procedure ? a->procedure : "the procedure");
            } else {
                snprintf(msg, sizeof msg, "%s",
                         a->status == RPCC_R_TIMEOUT ? "no provider answered in time" : code);
            }
            gw_rpc__reply_client(g, c->conn, c->call_id, c->call_id_len, true, code, msg, NULL, 0);
        }
    }
    free(c);
}

/* Advertisements: the registry keeps the entry (and puts "rpc:P" in the DHT); a withdrawal
 * also takes the value out of the DHT (RS_UNPUT; copies elsewhere die at their TTL). */
static void gw_rpc__advertise(gw_rpc *g, const char *procedure, bool on)
{
    sup_pid reg = sup_whereis(g->rt, "macula_bootstrap_registry");
    sup_pid rs = sup_whereis(g->rt, "macula_routing_server");
    bs_service s;
    memset(&s, 0, sizeof s);
    snprintf(s.kind, sizeof s.kind, "rpc");
    snprintf(s.name, sizeof s.name, "%s", procedure);
    memcpy(s.node_id, g->node_id, WIRE_NODE_ID_LEN);
    gw_quic_stats qs;
    snprintf(s.addr, sizeof s.addr, "0.0.0.0:%u",
             gw_quic_server_stats(g->rt, &qs) ? (unsigned)qs.port : 0u);
    s.ttl_ms = g->cfg.ttl_ms;
    bool fits = strlen(procedure) < sizeof s.name;
    if (on && fits && !sup_pid_is_null(reg)) {
        (void)sup_call(g->self, reg, BS_REG_ADVERTISE, &s, sizeof s, GW_RPC_API_TIMEOUT);
        return;
    }
    char name[RPCS_MAX_PROC + 8];
    int n = snprintf(name, sizeof name, "rpc:%s", procedure);
    dht_id key;
    if (sup_pid_is_null(rs) || n < 0 ||
        dht_key(g->realm, strlen(g->realm), name, (size_t)n, &key) != DHT_OK) {
        return;
    }
    if (on) { /* too long for the registry, or no registry: straight into the DHT */
        uint8_t buf[sizeof(rs_put_req) + (size_t)2 * WIRE_NODE_ID_LEN + 1 + sizeof s.addr];
        rs_put_req req = {.key = key, .ttl_ms = g->cfg.ttl_ms};
        memcpy(buf, &req, sizeof req);
        char hex[2 * WIRE_NODE_ID_LEN + 1];
        for (size_t i = 0; i < WIRE_NODE_ID_LEN; i++) {
            snprintf(hex + 2 * i, 3, "%02x", g->node_id[i]);
        }
        int vl = snprintf((char *)buf + sizeof req, sizeof buf - sizeof req, "%s %s", hex, s.addr);
        if (vl > 0) {
            (void)sup_call(g->self, rs, RS_PUT, buf, sizeof req + (size_t)vl, GW_RPC_API_TIMEOUT);
        }
        return;
    }
    if (fits && !sup_pid_is_null(reg)) {
        (void)sup_call(g->self, reg, BS_REG_WITHDRAW, &s, sizeof s, GW_RPC_API_TIMEOUT);
    }
    (void)sup_call(g->self, rs, RS_UNPUT, &key, sizeof key, GW_RPC_API_TIMEOUT);
}

static void gw_rpc__drain(gw_rpc *g)
{
    for (;;) {
        bool any = false;
        rpcc_action a;
        while (rpcc_next_action(g->caller, &a)) {
            any = true;
            switch (a.kind) {
            case RPCC_ACT_LOOKUP: gw_rpc__lookup(g, a.procedure); break;
            case RPCC_ACT_SEND: gw_rpc__send_attempt(g, &a); break;
            case RPCC_ACT_DONE: gw_rpc__done(g, &a); break;
            }
            rpcc_action_clear(&a);
        }
        rpcs_action s;
        while (rpcs_next_action(g->server, &s)) {
            any = true;
            switch (s.kind) {
            case RPCS_ACT_ADVERTISE: gw_rpc__advertise(g, s.procedure, true); break;
            case RPCS_ACT_UNADVERTISE: gw_rpc__advertise(g, s.procedure, false); break;
            case RPCS_ACT_FAIL:
                /* A routed call whose handler is slow is not answered: the caller's node
                 * times the attempt out itself and fails over to another provider. */
                if (s.origin.kind == RPCS_FROM_CLIENT || strcmp(s.code, "timeout") != 0) {
                    gw_rpc__reply_origin(g, &s.origin, true, s.code, s.message, NULL, 0);
                }
                break;
            }
        }
        if (!any) {
            break;
        }
    }
    uint64_t a = rpcc_next_deadline(g->caller), b = rpcs_next_deadline(g->server);
    sup_deadline_set(g->self, &g->timer, a < b ? a : b, GW_RPC_TICK);
    rpcc_get_stats(g->caller, &g->view.caller);
    rpcs_get_stats(g->server, &g->view.server);
}

/* ---- frames from clients ------------------------------------------------------------------- */

/* com.macula.rpc.advertise / unadvertise {"procedure": P}. */
static void gw_rpc__advertise_call(gw_rpc *g, uint64_t conn, const wire_call *c, bool on)
{
    json_error_t jerr;
    json_t *args = json_loadb((const char *)c->args.p, c->args.len, 0, &jerr);
    const char *proc = json_string_value(json_object_get(args, "procedure"));
    int rc = proc == NULL ? RPCS_EINVAL
             : on         ? rpcs_advertise(g->server, proc, conn, sup_rt_now(g->rt))
                          : rpcs_unadvertise(g->server, proc, conn, sup_rt_now(g->rt));
    if (rc == RPCS_OK || (on && rc == RPCS_EEXIST)) {
        char out[RPCS_MAX_PROC + 96];
        json_t *o = json_pack("{s:s,s:b,s:i}", "procedure", proc, "advertised", on, "handlers",
                              (json_int_t)rpcs_handlers(g->server, proc, strlen(proc)));
        char *text = o ? json_dumps(o, JSON_COMPACT) : NULL;
        snprintf(out, sizeof out, "%s", text ? text : "{}");
        free(text);
        json_decref(o);
        gw_rpc__reply_client(g, conn, c->call_id.p, c->call_id.len, false, NULL, NULL,
                             (const uint8_t *)out, strlen(out));
    } else {
        gw_rpc__reply_client(g, conn, c->call_id.p, c->call_id.len, true,
                             rc == RPCS_EINVAL   ? "invalid_args"
                             : rc == RPCS_ENOENT ? "no_handler"
                                                 : "handler_error",
                             rc == RPCS_EINVAL
                                 ? "args must be {\"procedure\": \"NAME\"} (1..256 bytes)"
                                 : rpcs_strerror(rc),
                             NULL, 0);
    }
    json_decref(args);
}

static void gw_rpc__client_call(gw_rpc *g, uint64_t conn, const wire_call *c, bool cast)
{
    if (cast) {
        g->view.casts_in++;
    } else {
        g->view.calls_in++;
    }
    size_t al = strlen(GW_RPC_ADVERTISE_PROC), ul = strlen(GW_RPC_UNADVERTISE_PROC);
    if (!cast && c->procedure.len == al && memcmp(c->procedure.p, GW_RPC_ADVERTISE_PROC, al) == 0) {
        gw_rpc__advertise_call(g, conn, c, true);
        return;
    }
    if (!cast && c->procedure.len == ul &&
        memcmp(c->procedure.p, GW_RPC_UNADVERTISE_PROC, ul) == 0) {
        gw_rpc__advertise_call(g, conn, c, false);
        return;
    }
    if (c->call_id.len > RPCS_CALL_ID_MAX || c->procedure.len == 0 ||
        c->procedure.len > RPCC_MAX_PROC || memchr(c->procedure.p, '\0', c->procedure.len)) {
        if (!cast) {
            gw_rpc__reply_client(g, conn, c->call_id.p, c->call_id.len, true, "invalid_args",
                                 "bad procedure name or call_id", NULL, 0);
        }
        return;
    }
    if (cast && c->realm.len > 0 &&
        (c->realm.len != strlen(g->realm) || memcmp(c->realm.p, g->realm, c->realm.len) != 0)) {
        return; /* the core checks CALLs' realms; a cast of another realm is dropped */
    }
    rpcs_origin o = {.kind = RPCS_FROM_CLIENT, .conn = conn, .call_id_len = c->call_id.len};
    if (c->call_id.len > 0) {
        memcpy(o.call_id, c->call_id.p, c->call_id.len);
    }
    if (gw_rpc__to_local(g, c, &o, cast)) {
        g->view.local_calls++;
        return;
    }
    gw_rpc_call *e = calloc(1, sizeof *e);
    char proc[RPCC_MAX_PROC + 1];
    memcpy(proc, c->procedure.p, c->procedure.len);
    proc[c->procedure.len] = '\0';
    uint64_t n = ++g->next_id;
    int rc = RPCC_ENOMEM;
    if (e != NULL) {
        memcpy(e->id, &g->salt, 8);
        memcpy(e->id + 8, &n, 8);
        e->conn = conn;
        e->cast = cast;
        e->call_id_len = o.call_id_len;
        memcpy(e->call_id, o.call_id, o.call_id_len);
        if (c->procedure.len <= PEER_ADV_NAME_MAX) {
            e->proc_len = (uint8_t)c->procedure.len;
            memcpy(e->proc, c->procedure.p, c->procedure.len);
        }
        rc = hmap_put(&g->calls, e->id, RPCC_CALL_ID_LEN, e, NULL) == HMAP_OK ? RPCC_OK
                                                                              : RPCC_ENOMEM;
    }
    if (rc == RPCC_OK) {
        rc = rpcc_call(g->caller, e->id, conn, proc, c->args.p, c->args.len, sup_rt_now(g->rt));
        if (rc != RPCC_OK) {
            hmap_del(&g->calls, e->id, RPCC_CALL_ID_LEN);
        }
    }
    if (rc != RPCC_OK) {
        free(e);
        if (!cast) {
            gw_rpc__reply_client(g, conn, c->call_id.p, c->call_id.len, true, "handler_error",
                                 rpcc_strerror(rc), NULL, 0);
        }
    }
}

static void gw_rpc__client_reply(gw_rpc *g, uint64_t conn, const wire_reply *r)
{
    rpcs_origin o;
    if (rpcs_reply(g->server, r->call_id.p, r->call_id.len, conn, &o) != RPCS_OK) {
        return;
    }
    if (r->is_error) {
        char code[64], msg[512];
        snprintf(code, sizeof code, "%.*s", (int)(r->error.code.len < 63 ? r->error.code.len : 63),
                 (const char *)r->error.code.p);
        snprintf(msg, sizeof msg, "%.*s",
                 (int)(r->error.message.len < 511 ? r->error.message.len : 511),
                 (const char *)r->error.message.p);
        gw_rpc__reply_origin(g, &o, true, code[0] ? code : "handler_error", msg, NULL, 0);
    } else {
        gw_rpc__reply_origin(g, &o, false, NULL, NULL, r->result.p, r->result.len);
    }
}

static void gw_rpc__frame(gw_rpc *g, const sup_msg *m)
{
    gw_rpc_frame_hdr h;
    if (m->len <= sizeof h) {
        return;
    }
    memcpy(&h, m->data, sizeof h);
    wire_msg w;
    size_t used = 0;
    if (wire_decode((const uint8_t *)m->data + sizeof h, m->len - sizeof h, NULL, &w, &used) !=
        WIRE_OK) {
        return;
    }
    if (w.type == WIRE_RPC_ROUTE) {
        gw_rpc__route_in(g, &w.rpc_route, h.node_id);
    } else if (h.via != GW_RPC_VIA_GATEWAY) {
        return; /* nodes talk RPC_ROUTE only */
    } else if (w.type == WIRE_CALL) {
        gw_rpc__client_call(g, h.conn, &w.call, false);
    } else if (w.type == WIRE_CAST) {
        gw_rpc__client_call(g, h.conn, &w.cast, true);
    } else if (w.type == WIRE_REPLY) {
        gw_rpc__client_reply(g, h.conn, &w.reply);
    }
}

static void gw_rpc__client_down(gw_rpc *g, uint64_t conn)
{
    uint64_t now = sup_rt_now(g->rt);
    (void)rpcc_caller_down(g->caller, conn);
    size_t it = 0, n = 0;
    const hmap_slot *e;
    gw_rpc_call **gone = malloc((g->calls.count ? g->calls.count : 1) * sizeof *gone);
    while (gone != NULL && (e = hmap_next(&g->calls, &it)) != NULL) {
        gw_rpc_call *c = e->val;
        if (c->conn == conn) {
            gone[n++] = c;
        }
    }
    for (size_t i = 0; i < n; i++) {
        hmap_del(&g->calls, gone[i]->id, RPCC_CALL_ID_LEN);
        free(gone[i]);
    }
    free(gone);
    (void)rpcs_handler_down(g->server, conn, now);
}

/* ---- the actor ------------------------------------------------------------------------------ */

static int gw_rpc__init(sup_actor *self, void *state, void *arg)
{
    gw_rpc *g = state;
    g->rt = sup_self_rt(self);
    g->self = self;
    if (arg != NULL) {
        g->cfg = *(const gw_rpc_config *)arg;
    }
    rpcc_config *cc = &g->cfg.caller;
    cc->attempt_timeout_ms = cc->attempt_timeout_ms ? cc->attempt_timeout_ms : 5000;
    cc->overall_timeout_ms = cc->overall_timeout_ms ? cc->overall_timeout_ms : 30000;
    g->cfg.ttl_ms = g->cfg.ttl_ms ? g->cfg.ttl_ms : GW_RPC_DEFAULT_TTL;
    g->cfg.readvertise_ms = g->cfg.readvertise_ms ? g->cfg.readvertise_ms : GW_RPC_DEFAULT_READV;
    g->cfg.max_hops = g->cfg.max_hops ? g->cfg.max_hops : RPCS_MAX_HOPS;
    const gwc *core = gw_reg_get(g->rt, GW_REG_GATEWAY);
    if (core != NULL) {
        const gwc_config *gc = gwc_config_get(core);
        snprintf(g->realm, sizeof g->realm, "%s", gc->realm);
        memcpy(g->node_id, gc->node_id, WIRE_NODE_ID_LEN);
    } else {
        snprintf(g->realm, sizeof g->realm, "macula.default");
    }
    uv_random(NULL, NULL, &g->salt, sizeof g->salt, 0, NULL);
    rpcc_config ccfg = *cc;
    if (ccfg.seed == 0) {
        ccfg.seed = g->salt | 1u;
    }
    rpcs_config scfg = {.readvertise_ms = g->cfg.readvertise_ms, .seed = g->salt ^ 0x5a5a5a5aull};
    g->caller = rpcc_new(&ccfg);
    g->server = rpcs_new(&scfg);
    hmap_init(&g->calls);
    if (g->caller == NULL || g->server == NULL) {
        rpcc_free(g->caller);
        rpcs_free(g->server);
        g->caller = NULL;
        g->server = NULL;
        sup_reason r = sup_reason_error("{rpc_config,invalid}");
        sup_stop(self, &r);
        return -1;
    }
    sup_register(g->rt, "macula_gateway_rpc", sup_self(self));
    gw_reg_set(g->rt, GW_REG_RPC, &g->view);
    return 0;
}

static void gw_rpc__terminate(sup_actor *self, void *state, const sup_reason *reason)
{
    (void)self;
    (void)reason;
    gw_rpc *g = state;
    if (g->caller == NULL) {
        return;
    }
    gw_reg_clear(g->rt, GW_REG_RPC, &g->view);
    size_t it = 0;
    const hmap_slot *e;
    while ((e = hmap_next(&g->calls, &it)) != NULL) {
        free(e->val);
    }
    hmap_free(&g->calls);
    rpcc_free(g->caller);
    rpcs_free(g->server);
    g->caller = NULL;
    g->server = NULL;
    free(g->sbuf);
    g->sbuf = NULL;
    g->sbuf_cap = 0;
}

static void gw_rpc__reply_msg(gw_rpc *g, const sup_msg *m)
{
    for (size_t i = 0; i < GW_RPC_LOOKUP_MAX; i++) {
        if (g->lookups[i].ref == m->ref) {
            gw_rpc__lookup_done(g, &g->lookups[i], m);
            return;
        }
    }
    for (size_t i = 0; i < GW_RPC_FORWARD_MAX && m->ref != 0; i++) {
        gw_rpc_fwd *f = &g->fwds[i];
        if (f->ref != m->ref) {
            continue;
        }
        f->ref = 0;
        rs_forward_rep rep;
        bool sent = m->status == 0 && m->len == sizeof rep;
        if (sent) {
            memcpy(&rep, m->data, sizeof rep);
            sent = rep.status == 0;
        }
        if (sent) { /* the next hop is known now: its rpc_handler accounts for the route */
            (void)peer_rpc_note_post(g->rt, sup_self(g->self), rep.next, &f->note);
            if (f->track) {
                gw_rpc__set_hop(gw_rpc__own_call(g, f->call_id, RPCC_CALL_ID_LEN), rep.next);
            }
        }
        if (!sent && f->track) { /* no way toward that provider: try the next one now */
            g->view.no_route++;
            static const char msg[] = "no route to the provider";
            (void)rpcc_reply(g->caller, f->call_id, f->dest, true, "no_handler", msg,
                             sizeof msg - 1, sup_rt_now(g->rt));
        }
        return;
    }
    /* advertisement answers: nothing to do (the next re-advertisement retries) */
}

static void gw_rpc__info(sup_actor *self, void *state, const sup_msg *m)
{
    gw_rpc *g = state;
    g->self = self;
    if (sup_deadline_fired(&g->timer, m)) {
        uint64_t now = sup_rt_now(g->rt);
        rpcc_tick(g->caller, now);
        rpcs_tick(g->server, now);
    } else if (m->kind == SUP_MSG_INFO && m->tag == GW_RPC_FRAME) {
        gw_rpc__frame(g, m);
    } else if (m->kind == SUP_MSG_INFO && m->tag == GW_RPC_CLIENT_DOWN &&
               m->len == sizeof(uint64_t)) {
        uint64_t conn;
        memcpy(&conn, m->data, sizeof conn);
        gw_rpc__client_down(g, conn);
    } else if (m->kind == SUP_MSG_REPLY) {
        gw_rpc__reply_msg(g, m);
    }
    gw_rpc__drain(g);
}

static void gw_rpc__call(sup_actor *self, void *state, const sup_msg *m)
{
    gw_rpc *g = state;
    g->self = self;
    if (m->tag == GW_RPC_STATS) {
        sup_reply(g->rt, sup_msg_from(m), &g->view, sizeof g->view);
    } else {
        sup_reply(g->rt, sup_msg_from(m), NULL, 0);
    }
}

static const sup_behaviour gw_rpc_behaviour = {
    .name = "gateway_rpc",
    .state_size = sizeof(gw_rpc),
    .init = gw_rpc__init,
    .handle_call = gw_rpc__call,
    .handle_info = gw_rpc__info,
    .terminate = gw_rpc__terminate,
};

void gw_rpc_config_apply(gw_rpc_config *cfg, const macula_config *conf)
{
    size_t n = conf->rpc_no_direct_count < GW_RPC_NO_DIRECT_MAX ? conf->rpc_no_direct_count
                                                                : GW_RPC_NO_DIRECT_MAX;
    memcpy(cfg->no_direct, conf->rpc_no_direct, n * sizeof cfg->no_direct[0]);
    cfg->n_no_direct = n;
}

int gw_rpc_start(sup_rt *rt, sup_pid parent, void *arg, void *extra, sup_pid *out, sup_reason *why)
{
    (void)extra;
    return sup_spawn(rt, parent, &gw_rpc_behaviour, arg, SUP_SPAWN_LINK, out, why);
}

int gw_rpc_deliver(sup_rt *rt, sup_pid from, uint32_t via, uint64_t conn,
                   const uint8_t node_id[WIRE_NODE_ID_LEN], const uint8_t *frame, size_t len)
{
    sup_pid to = sup_whereis(rt, "macula_gateway_rpc");
    if (sup_pid_is_null(to)) {
        return SUP_ENOPROC;
    }
    gw_rpc_frame_hdr h;
    memset(&h, 0, sizeof h);
    h.conn = conn;
    h.via = via;
    memcpy(h.node_id, node_id, WIRE_NODE_ID_LEN);
    uint8_t *buf = malloc(sizeof h + len);
    if (buf == NULL) {
        return SUP_ENOMEM;
    }
    memcpy(buf, &h, sizeof h);
    memcpy(buf + sizeof h, frame, len);
    int rc = sup_send(rt, from, to, GW_RPC_FRAME, buf, sizeof h + len);
    free(buf);
    return rc;
}

bool gw_rpc_view_get(const sup_rt *rt, gw_rpc_view *out)
{
    const gw_rpc_view *v = gw_reg_get(rt, GW_REG_RPC);
    if (v == NULL) {
        return false;
    }
    *out = *v;
    return true;
}
