/*
 * flow/consensus/gossip_node.c — erlmcp_flow_gossip: the gossip membership core (gossip.h)
 * carried over QUIC between node identities (docs/consensus.md "Gossip membership").
 *
 * The actor owns one gossip core, the node identity (mesh/identity.h: key.pem and cert.pem in
 * the flow node's data_dir; node id = SHA-256 of the SPKI) and one QUIC endpoint (mesh/quic.h,
 * the mesh's ngtcp2 + GnuTLS transport, ALPN "macula", certificates both ways) listening on
 * the configured gossip address. Gossip member id = Raft id.
 *
 * Peers come from the raft actor (FLOW_TAG_PEERS): the voters of the Raft configuration with
 * the gossip endpoint the replicated member directory records for each (address + node id).
 * A message to a member goes on one stream (written with FIN) of this node's outgoing
 * connection to it, opened with that member's node id pinned (quic_connect's expected id: a
 * server proving another key is refused). A message is accepted only from a connection whose
 * TLS-proven node id is the directory's node id of some member, and it is handed to the core
 * as coming from that member (the core refuses a message whose sender field names anyone
 * else), so a member cannot speak for another; anything else is counted as rejected.
 *
 * The actor ticks the core from a timer at its next deadline (rounds of 1 s), reports its view
 * to the raft actor (FLOW_TAG_GOSSIP, shown by cluster_status) and its quorum flag to the
 * registry (FLOW_TAG_QUORUM: the registry pauses dispatch while paused) every round and on
 * every change. Fault switch (FLOW_TAG_FAULT, tests only): while isolated nothing is sent and
 * everything received is dropped.
 *
 * QUIC callbacks run on the loop outside the actor's callbacks; they use only the actor's
 * state and casts. terminate closes the endpoint, after which no callback runs.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "flow/consensus/fsm.h"
#include "flow/consensus/gossip.h"
#include "flow/flow_int.h"
#include "mesh/identity.h"
#include "mesh/quic.h"

#define GN_MSG_MAX (12u + (size_t)GOSSIP_MAX_MEMBERS * 17u)
#define GN_START_RETRIES 50
#define GN_RETRY_MS 100
#define GN_IDLE_MS 10000
#define GN_HANDSHAKE_MS 2000

enum { GN_T_START = 1, GN_T_TICK };

typedef struct gn_peer {
    uint32_t id;
    char addr[FLOW_FSM_GOSSIP_MAX];
    uint8_t node[IDENTITY_ID_LEN];
    bool has_ep;      /* address and node id known */
    quic_conn *out;   /* this node's connection to it, NULL if none */
    bool connected;   /* out's handshake completed */
    uint8_t *pending; /* the last message waiting for out's handshake */
    size_t pending_len;
} gn_peer;

typedef struct gn_rx { /* a message being received on one stream */
    quic_conn *c;
    int64_t sid;
    uint8_t *buf;
    size_t len;
    struct gn_rx *next;
} gn_rx;

typedef struct gn_state {
    const flow_raft_config *cfg;
    sup_rt *rt;
    sup_pid self;
    identity *id;
    quic_endpoint *ep;
    gossip *g;
    char node_hex[IDENTITY_ID_HEX_LEN + 1];
    gn_peer **peers; /* each malloc'd: connections name them by id, the array moves */
    size_t npeers;
    gn_rx *rx;
    bool isolated;
    bool dirty; /* a member's status changed since the last report */
    int sent_paused;
    int attempts;
    uint64_t sent, received, rejected, dropped;
} gn_state;

/* ---- peers ------------------------------------------------------------------------------- */

static gn_peer *gn__peer(gn_state *st, uint32_t id)
{
    for (size_t i = 0; i < st->npeers; i++) {
        if (st->peers[i]->id == id) {
            return st->peers[i];
        }
    }
    return NULL;
}

/* The member whose directory node id is the connection's TLS-proven one (0: none). */
static uint32_t gn__member_of(const gn_state *st, const quic_conn *c)
{
    const uint8_t *pid = quic_conn_peer_id(c);
    for (size_t i = 0; pid && i < st->npeers; i++) {
        if (st->peers[i]->has_ep && memcmp(st->peers[i]->node, pid, IDENTITY_ID_LEN) == 0) {
            return st->peers[i]->id;
        }
    }
    return 0;
}

static void gn__peer_disconnect(gn_peer *p)
{
    if (p->out) {
        quic_conn_set_user(p->out, (void *)(uintptr_t)0);
        quic_conn_close(p->out, 0, "member changed");
    }
    p->out = NULL;
    p->connected = false;
    free(p->pending);
    p->pending = NULL;
    p->pending_len = 0;
}

/* ---- reports ----------------------------------------------------------------------------- */

static json_t *gn__view(const gn_state *st)
{
    json_t *members = json_object();
    for (size_t i = 0; i < st->npeers; i++) {
        char key[16];
        snprintf(key, sizeof key, "%u", st->peers[i]->id);
        int s = gossip_member_status(st->g, st->peers[i]->id);
        json_object_set_new(members, key,
                            json_string(s < 0 ? "unknown" : gossip_status_name((gossip_status)s)));
    }
    char self[16];
    snprintf(self, sizeof self, "%u", (unsigned)st->cfg->id);
    json_object_set_new(members, self, json_string("alive"));
    return json_pack("{s:s, s:s, s:b, s:b, s:I, s:o, s:I, s:I, s:I, s:I}", "address",
                     st->cfg->gossip, "node", st->node_hex, "paused", gossip_paused(st->g),
                     "isolated", st->isolated, "incarnation", (json_int_t)gossip_incarnation(st->g),
                     "members", members, "sent", (json_int_t)st->sent, "received",
                     (json_int_t)st->received, "rejected", (json_int_t)st->rejected, "dropped",
                     (json_int_t)st->dropped);
}

static void gn__report(gn_state *st, bool always)
{
    bool paused = gossip_paused(st->g);
    if (!always && !st->dirty && (int)paused == st->sent_paused) {
        return;
    }
    st->dirty = false;
    st->sent_paused = paused;
    flow__cast_json(st->rt, st->self, sup_whereis(st->rt, FLOW_N_RAFT), FLOW_TAG_GOSSIP,
                    gn__view(st));
    flow__cast_json(st->rt, st->self, sup_whereis(st->rt, FLOW_N_REGISTRY), FLOW_TAG_QUORUM,
                    json_pack("{s:b}", "paused", paused));
}

static void gn__changed(void *user, uint32_t id, int old, gossip_status now)
{
    (void)id;
    (void)old;
    (void)now;
    ((gn_state *)user)->dirty = true;
}

/* ---- sending ----------------------------------------------------------------------------- */

static void gn__write(gn_state *st, gn_peer *p, const uint8_t *data, size_t len)
{
    int64_t sid;
    if (quic_stream_open(p->out, &sid) != 0 ||
        quic_stream_write(p->out, sid, data, len, true) != 0) {
        st->dropped++;
        return;
    }
    st->sent++;
}

static void gn__connect(gn_state *st, gn_peer *p)
{
    char host[FLOW_FSM_GOSSIP_MAX];
    snprintf(host, sizeof host, "%s", p->addr);
    char *colon = strrchr(host, ':');
    long port = colon ? strtol(colon + 1, NULL, 10) : 0;
    if (colon == NULL || port <= 0 || port > 65535) {
        return;
    }
    *colon = '\0';
    /* the connection names its member by id: the peers array moves when it grows */
    if (quic_connect(st->ep, host, (uint16_t)port, p->node, (void *)(uintptr_t)p->id, &p->out) !=
        0) {
        p->out = NULL;
    }
}

static void gn__send(gn_state *st, uint32_t to, const uint8_t *data, size_t len)
{
    gn_peer *p = gn__peer(st, to);
    if (p == NULL || !p->has_ep || st->isolated || st->ep == NULL) {
        st->dropped++;
        return;
    }
    if (p->out && p->connected) {
        gn__write(st, p, data, len);
        return;
    }
    /* keep the latest message for when the handshake completes (older ones are stale) */
    uint8_t *copy = malloc(len);
    if (copy == NULL) {
        st->dropped++;
        return;
    }
    memcpy(copy, data, len);
    if (p->pending) {
        st->dropped++;
    }
    free(p->pending);
    p->pending = copy;
    p->pending_len = len;
    if (p->out == NULL) {
        gn__connect(st, p);
    }
}

static void gn__flush(gn_state *st)
{
    gossip_outbox *ob = gossip_get_outbox(st->g);
    for (size_t i = 0; i < ob->n; i++) {
        gn__send(st, ob->v[i].to, ob->v[i].data, ob->v[i].len);
    }
    gossip_outbox_clear(ob);
}

/* ---- QUIC callbacks ---------------------------------------------------------------------- */

static void gn__on_connected(quic_conn *c, void *ctx)
{
    gn_state *st = ctx;
    gn_peer *p =
        quic_conn_is_server(c) ? NULL : gn__peer(st, (uint32_t)(uintptr_t)quic_conn_user(c));
    if (p == NULL || p->out != c) {
        return;
    }
    p->connected = true;
    if (p->pending && !st->isolated) {
        gn__write(st, p, p->pending, p->pending_len);
    }
    free(p->pending);
    p->pending = NULL;
    p->pending_len = 0;
}

static void gn__rx_drop(gn_state *st, const quic_conn *c, int64_t sid, bool all)
{
    for (gn_rx **pp = &st->rx; *pp;) {
        gn_rx *r = *pp;
        if (r->c == c && (all || r->sid == sid)) {
            *pp = r->next;
            free(r->buf);
            free(r);
        } else {
            pp = &r->next;
        }
    }
}

static void gn__on_closed(quic_conn *c, const quic_close_info *info, void *ctx)
{
    (void)info;
    gn_state *st = ctx;
    gn__rx_drop(st, c, 0, true);
    for (size_t i = 0; i < st->npeers; i++) {
        gn_peer *p = st->peers[i];
        if (p->out == c) {
            p->out = NULL;
            p->connected = false;
            free(p->pending);
            p->pending = NULL;
        }
    }
}

static void gn__deliver(gn_state *st, quic_conn *c, const uint8_t *data, size_t len)
{
    uint32_t from = gn__member_of(st, c);
    if (st->isolated) {
        st->dropped++;
        return;
    }
    if (from == 0 || gossip_receive(st->g, sup_rt_now(st->rt), from, data, len) != 0) {
        st->rejected++;
        return;
    }
    st->received++;
    gn__flush(st);
    gn__report(st, false);
}

static void gn__on_stream_data(quic_conn *c, int64_t sid, const uint8_t *data, size_t len, bool fin,
                               void *ctx)
{
    gn_state *st = ctx;
    bool mine = (sid & 1) == (quic_conn_is_server(c) ? 1 : 0);
    if (mine) { /* the peer's FIN on a stream this node opened: nothing to read */
        return;
    }
    gn_rx *r = st->rx;
    while (r && !(r->c == c && r->sid == sid)) {
        r = r->next;
    }
    if (r == NULL) {
        r = calloc(1, sizeof *r);
        if (r == NULL) {
            quic_stream_reset(c, sid, 1);
            return;
        }
        r->c = c;
        r->sid = sid;
        r->next = st->rx;
        st->rx = r;
    }
    if (r->len + len > GN_MSG_MAX) {
        st->rejected++;
        gn__rx_drop(st, c, sid, false);
        quic_stream_reset(c, sid, 2);
        return;
    }
    if (len > 0) {
        uint8_t *b = realloc(r->buf, r->len + len);
        if (b == NULL) {
            gn__rx_drop(st, c, sid, false);
            quic_stream_reset(c, sid, 1);
            return;
        }
        memcpy(b + r->len, data, len);
        r->buf = b;
        r->len += len;
    }
    if (fin) {
        uint8_t *buf = r->buf;
        size_t n = r->len;
        r->buf = NULL;
        gn__rx_drop(st, c, sid, false);
        quic_stream_write(c, sid, NULL, 0, true); /* close our direction: the stream ends */
        gn__deliver(st, c, buf, n);
        free(buf);
    }
}

static void gn__on_stream_gone(quic_conn *c, int64_t sid, void *ctx)
{
    gn__rx_drop(ctx, c, sid, false);
}

static void gn__on_stream_reset(quic_conn *c, int64_t sid, uint64_t code, void *ctx)
{
    (void)code;
    gn__rx_drop(ctx, c, sid, false);
}

/* ---- directory --------------------------------------------------------------------------- */

static void gn__peers(gn_state *st, const json_t *members)
{
    uint64_t now = sup_rt_now(st->rt);
    /* forget the members that left */
    size_t kept = 0;
    for (size_t i = 0; i < st->npeers; i++) {
        bool keep = false;
        size_t k;
        const json_t *m;
        json_array_foreach(members, k, m)
        {
            keep = keep ||
                   json_integer_value(json_object_get(m, "id")) == (json_int_t)st->peers[i]->id;
        }
        if (keep) {
            st->peers[kept++] = st->peers[i];
        } else {
            gossip_remove(st->g, st->peers[i]->id);
            gn__peer_disconnect(st->peers[i]);
            free(st->peers[i]);
            st->dirty = true;
        }
    }
    st->npeers = kept;
    size_t k;
    const json_t *m;
    json_array_foreach(members, k, m)
    {
        json_int_t id = json_integer_value(json_object_get(m, "id"));
        const char *addr = json_string_value(json_object_get(m, "address"));
        const char *node = json_string_value(json_object_get(m, "node"));
        if (id <= 0 || id > UINT32_MAX || (uint64_t)id == st->cfg->id) {
            continue;
        }
        gn_peer *p = gn__peer(st, (uint32_t)id);
        if (p == NULL) {
            gn_peer **v = realloc(st->peers, (st->npeers + 1) * sizeof *v);
            if (v == NULL) {
                continue;
            }
            st->peers = v;
            p = calloc(1, sizeof *p);
            if (p == NULL || gossip_add(st->g, now, (uint32_t)id) != 0) {
                free(p);
                continue;
            }
            p->id = (uint32_t)id;
            st->peers[st->npeers++] = p;
            st->dirty = true;
        }
        uint8_t raw[IDENTITY_ID_LEN];
        bool has = addr && node && strlen(addr) < sizeof p->addr &&
                   identity_hex_to_id(node, raw) == IDENTITY_OK;
        if (has != p->has_ep ||
            (has && (strcmp(addr, p->addr) != 0 || memcmp(raw, p->node, sizeof raw) != 0))) {
            gn__peer_disconnect(p);
            p->has_ep = has;
            snprintf(p->addr, sizeof p->addr, "%s", has ? addr : "");
            if (has) {
                memcpy(p->node, raw, sizeof raw);
            }
        }
    }
    gn__report(st, false);
}

/* ---- behaviour --------------------------------------------------------------------------- */

static void gn__log(void *ctx, int level, const char *msg)
{
    (void)ctx;
    if (level <= QUIC_LOG_WARN) {
        fprintf(stderr, "macula: flow gossip: %s\n", msg);
    }
}

static int gn__open(gn_state *st, char *err, size_t errsize)
{
    if (st->id == NULL) {
        identity_config ic = {.data_dir = st->cfg->data_dir};
        int rc = identity_load_or_create(&ic, &st->id, err, errsize);
        if (rc != IDENTITY_OK) {
            return rc;
        }
        identity_node_id_hex(st->id, st->node_hex);
    }
    char host[FLOW_FSM_GOSSIP_MAX];
    snprintf(host, sizeof host, "%s", st->cfg->gossip);
    char *colon = strrchr(host, ':');
    long port = colon ? strtol(colon + 1, NULL, 10) : 0;
    if (colon == NULL || port <= 0 || port > 65535) {
        snprintf(err, errsize, "gossip address %s: expected HOST:PORT", st->cfg->gossip);
        return QUIC_EINVAL;
    }
    *colon = '\0';
    quic_config qc = {
        .id = st->id,
        .listen = true,
        .bind_host = host,
        .bind_port = (uint16_t)port,
        .idle_timeout_ms = GN_IDLE_MS,
        .handshake_timeout_ms = GN_HANDSHAKE_MS,
        .cb = {.on_connected = gn__on_connected,
               .on_closed = gn__on_closed,
               .on_stream_data = gn__on_stream_data,
               .on_stream_reset = gn__on_stream_reset,
               .on_stream_closed = gn__on_stream_gone},
        .ctx = st,
        .log = gn__log,
        .log_level = QUIC_LOG_WARN,
    };
    int rc = quic_endpoint_new(sup_rt_loop(st->rt), &qc, &st->ep);
    if (rc != QUIC_OK) {
        snprintf(err, errsize, "gossip QUIC endpoint %s: %s", st->cfg->gossip, quic_strerror(rc));
    }
    return rc;
}

static void gn__arm(sup_actor *self, gn_state *st)
{
    uint64_t now = sup_rt_now(st->rt), next = gossip_next_deadline(st->g);
    int t = GN_T_TICK;
    sup_send_after(self, next > now ? next - now : 0, FLOW_TAG_INTERNAL, &t, sizeof t);
}

static int gn_init(sup_actor *self, void *state, void *arg)
{
    gn_state *st = state;
    st->cfg = arg;
    st->rt = sup_self_rt(self);
    st->self = sup_self(self);
    st->sent_paused = -1;
    sup_set_label(self, FLOW_N_GOSSIP);
    if (st->cfg == NULL || st->cfg->gossip == NULL || st->cfg->data_dir == NULL ||
        st->cfg->id == 0 || st->cfg->id > UINT32_MAX || sup_rt_loop(st->rt) == NULL) {
        sup_reason r = sup_reason_error("gossip needs an address, a data_dir, a Raft id below "
                                        "2^32 and a libuv runtime");
        sup_stop(self, &r);
        return SUP_EINVAL;
    }
    gossip_config gc = {.id = (uint32_t)st->cfg->id,
                        .seed = st->cfg->id * 0x9e3779b97f4a7c15ull ^ sup_rt_now(st->rt),
                        .changed = gn__changed,
                        .user = st};
    int err = 0;
    st->g = gossip_new(&gc, sup_rt_now(st->rt), &err);
    if (st->g == NULL) {
        sup_reason r = sup_reason_error(gossip_strerror(err));
        sup_stop(self, &r);
        return SUP_ENOMEM;
    }
    sup_register(st->rt, FLOW_N_GOSSIP, st->self);
    int t = GN_T_START;
    sup_send_after(self, 0, FLOW_TAG_INTERNAL, &t, sizeof t);
    return 0;
}

static void gn_info(sup_actor *self, void *state, const sup_msg *m)
{
    gn_state *st = state;
    if (m->kind != SUP_MSG_TIMER || m->tag != FLOW_TAG_INTERNAL || m->len != sizeof(int)) {
        return;
    }
    int t;
    memcpy(&t, m->data, sizeof t);
    if (t == GN_T_START) {
        char err[512] = "";
        if (gn__open(st, err, sizeof err) == 0) {
            gn__report(st, true); /* the raft actor learns the node id */
            gn__arm(self, st);
        } else if (++st->attempts < GN_START_RETRIES) { /* the port may still be closing */
            sup_send_after(self, GN_RETRY_MS, FLOW_TAG_INTERNAL, &t, sizeof t);
        } else {
            sup_crash(self, "gossip did not start: %s", err);
        }
    } else if (t == GN_T_TICK) {
        gossip_tick(st->g, sup_rt_now(st->rt));
        gn__flush(st);
        gn__report(st, true);
        gn__arm(self, st);
    }
}

static void gn_cast(sup_actor *self, void *state, const sup_msg *m)
{
    (void)self;
    gn_state *st = state;
    json_t *j = flow__msg_json(m);
    if (m->tag == FLOW_TAG_PEERS) {
        const json_t *members = json_object_get(j, "members");
        if (json_is_array(members)) {
            gn__peers(st, members);
        }
    } else if (m->tag == FLOW_TAG_FAULT) {
        st->isolated = json_is_true(json_object_get(j, "isolate"));
        for (size_t i = 0; st->isolated && i < st->npeers; i++) {
            free(st->peers[i]->pending);
            st->peers[i]->pending = NULL;
        }
        gn__report(st, true);
    }
    json_decref(j);
}

static void gn_terminate(sup_actor *self, void *state, const sup_reason *reason)
{
    (void)self;
    (void)reason;
    gn_state *st = state;
    quic_endpoint_close(st->ep); /* every connection's on_closed runs here */
    st->ep = NULL;
    while (st->rx) { /* on_closed dropped them; this is for safety */
        gn_rx *n = st->rx->next;
        free(st->rx->buf);
        free(st->rx);
        st->rx = n;
    }
    for (size_t i = 0; i < st->npeers; i++) {
        free(st->peers[i]->pending);
        free(st->peers[i]);
    }
    free(st->peers);
    gossip_free(st->g);
    identity_free(st->id);
}

static const sup_behaviour gn_behaviour = {
    .name = FLOW_N_GOSSIP,
    .state_size = sizeof(gn_state),
    .init = gn_init,
    .handle_cast = gn_cast,
    .handle_info = gn_info,
    .terminate = gn_terminate,
};

int flow_gossip_start(sup_rt *rt, sup_pid parent, void *arg, void *extra, sup_pid *out,
                      sup_reason *why)
{
    (void)extra;
    return sup_spawn(rt, parent, &gn_behaviour, arg, SUP_SPAWN_LINK, out, why);
}
