/* src/mesh/bootstrap/server.c — macula_bootstrap_server (see bootstrap.h). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bootstrap.h"
#include "mesh/routing_server.h"

#define BS_JOIN_TIMEOUT 20000 /* ms: a QUIC handshake (10 s) plus the self-lookup */

enum { BS_TICK = 1 };

typedef struct bs_server {
    sup_rt *rt;
    sup_actor *self;
    const bs_config *cfg;
    bs_server_view view;
    uint64_t refs[BS_PEERS_MAX]; /* RS_JOIN calls in flight */
    uint64_t timer_ref, timer_at;
    uint64_t next_rejoin;
    uint32_t retry_min, retry_max, rejoin_ms;
} bs_server;

const char *bs_peer_state_name(bs_peer_state s)
{
    switch (s) {
    case BS_PEER_PENDING: return "pending";
    case BS_PEER_JOINING: return "joining";
    case BS_PEER_JOINED: return "joined";
    case BS_PEER_UNREACHABLE: return "unreachable";
    default: return "unknown";
    }
}

static void bs_server__rearm(bs_server *b)
{
    uint64_t d = UINT64_MAX;
    for (uint32_t i = 0; i < b->view.npeers; i++) {
        const bs_peer_view *p = &b->view.peers[i];
        if ((p->state == BS_PEER_PENDING || p->state == BS_PEER_UNREACHABLE) &&
            p->next_try_ms < d) {
            d = p->next_try_ms;
        }
    }
    if (b->view.npeers > 0 && b->next_rejoin < d) {
        d = b->next_rejoin;
    }
    if (d == b->timer_at) {
        return;
    }
    if (b->timer_ref != 0) {
        (void)sup_cancel_timer(b->self, b->timer_ref);
        b->timer_ref = 0;
    }
    b->timer_at = d;
    if (d != UINT64_MAX) {
        uint64_t now = sup_rt_now(b->rt);
        b->timer_ref = sup_send_after(b->self, d > now ? d - now : 0, BS_TICK, NULL, 0);
    }
}

static void bs_server__joined(bs_server *b, uint32_t i, const sup_msg *m);

static void bs_server__try(bs_server *b, uint32_t i)
{
    bs_peer_view *p = &b->view.peers[i];
    sup_pid rs = sup_whereis(b->rt, "macula_routing_server");
    p->state = BS_PEER_JOINING;
    b->refs[i] = sup_pid_is_null(rs)
                     ? 0
                     : sup_call(b->self, rs, RS_JOIN, p->url, strlen(p->url), BS_JOIN_TIMEOUT);
    if (b->refs[i] == 0) {
        sup_msg failed = {.kind = SUP_MSG_REPLY, .status = SUP_ECALLEE};
        bs_server__joined(b, i, &failed);
    }
}

static void bs_server__tick(bs_server *b)
{
    uint64_t now = sup_rt_now(b->rt);
    if (b->view.npeers > 0 && now >= b->next_rejoin) {
        b->next_rejoin = now + b->rejoin_ms;
        rs_view rv;
        bool joining = false;
        for (uint32_t i = 0; i < b->view.npeers; i++) {
            joining = joining || b->view.peers[i].state == BS_PEER_JOINING;
        }
        if (!joining && rs_view_get(b->rt, &rv) && rv.contacts == 0) {
            for (uint32_t i = 0; i < b->view.npeers; i++) {
                if (b->view.peers[i].state == BS_PEER_JOINED) {
                    fprintf(stderr,
                            "macula: bootstrap: the routing table is empty, joining "
                            "again through %s\n",
                            b->view.peers[i].url);
                    b->view.peers[i].state = BS_PEER_PENDING;
                    b->view.peers[i].next_try_ms = now;
                }
            }
        }
    }
    for (uint32_t i = 0; i < b->view.npeers; i++) {
        bs_peer_view *p = &b->view.peers[i];
        if ((p->state == BS_PEER_PENDING || p->state == BS_PEER_UNREACHABLE) &&
            p->next_try_ms <= now) {
            bs_server__try(b, i);
        }
    }
}

static void bs_server__joined(bs_server *b, uint32_t i, const sup_msg *m)
{
    bs_peer_view *p = &b->view.peers[i];
    uint64_t now = sup_rt_now(b->rt);
    b->refs[i] = 0;
    rs_join_rep rep;
    memset(&rep, 0, sizeof rep);
    if (m->status == 0 && m->len == sizeof rep) {
        memcpy(&rep, m->data, sizeof rep);
        rep.reason[sizeof rep.reason - 1] = '\0';
    } else {
        rep.status = DHT_ETIMEDOUT;
        snprintf(rep.reason, sizeof rep.reason, "%s",
                 m->status == SUP_ETIMEDOUT ? "no answer in time"
                                            : "the routing server is not running");
    }
    if (rep.status == 0) {
        p->state = BS_PEER_JOINED;
        p->joins++;
        p->attempts = 0;
        p->error[0] = '\0';
        dht_id_hex(&rep.id, p->node_id);
        fprintf(stderr, "macula: joined the mesh through %s (node %.16s..., %u contacts)\n", p->url,
                p->node_id, rep.contacts);
        return;
    }
    p->attempts++;
    uint64_t backoff = b->retry_min;
    for (uint32_t k = 1; k < p->attempts && backoff < b->retry_max; k++) {
        backoff *= 2;
    }
    if (backoff > b->retry_max) {
        backoff = b->retry_max;
    }
    p->state = BS_PEER_UNREACHABLE;
    p->next_try_ms = now + backoff;
    snprintf(p->error, sizeof p->error, "%s", rep.reason);
    fprintf(stderr, "macula: bootstrap peer %s unreachable: %s (attempt %u, retry in %.1f s)\n",
            p->url, p->error, p->attempts, (double)backoff / 1000.0);
}

/* A DHT frame from a connected node: check, count, hand to the routing server. */
static void bs_server__frame(bs_server *b, const sup_msg *m)
{
    rs_frame_hdr h;
    if (m->len <= sizeof h) {
        b->view.refused_decode++;
        return;
    }
    memcpy(&h, m->data, sizeof h);
    wire_msg w;
    dht_msg dm;
    size_t used = 0;
    if (wire_decode((const uint8_t *)m->data + sizeof h, m->len - sizeof h, NULL, &w, &used) !=
            WIRE_OK ||
        dht_msg_from_wire(&w, &dm) != DHT_OK) {
        b->view.refused_decode++;
        return;
    }
    if (dm.type >= WIRE_FIND_NODE && dm.type <= WIRE_STORE_ACK) {
        b->view.queries[dm.type - WIRE_FIND_NODE]++;
    }
    if (dm.has_sender && memcmp(dm.sender.id.b, h.node_id, DHT_ID_LEN) != 0) {
        b->view.refused_sender++;
        return;
    }
    sup_pid rs = sup_whereis(b->rt, "macula_routing_server");
    if (sup_send(b->rt, sup_self(b->self), rs, RS_FRAME, m->data, m->len) != 0) {
        b->view.dropped_no_routing++;
        return;
    }
    b->view.forwarded++;
}

static int bs_server__init(sup_actor *self, void *state, void *arg)
{
    bs_server *b = state;
    b->rt = sup_self_rt(self);
    b->self = self;
    b->cfg = arg;
    b->timer_at = UINT64_MAX;
    b->retry_min = b->cfg->retry_min_ms ? b->cfg->retry_min_ms : 1000;
    b->retry_max = b->cfg->retry_max_ms ? b->cfg->retry_max_ms : 60000;
    b->rejoin_ms = b->cfg->rejoin_check_ms ? b->cfg->rejoin_check_ms : 30000;
    uint64_t now = sup_rt_now(b->rt);
    b->view.npeers = (uint32_t)(b->cfg->npeers < BS_PEERS_MAX ? b->cfg->npeers : BS_PEERS_MAX);
    for (uint32_t i = 0; i < b->view.npeers; i++) {
        snprintf(b->view.peers[i].url, sizeof b->view.peers[i].url, "%s", b->cfg->peers[i]);
        b->view.peers[i].next_try_ms = now;
    }
    b->next_rejoin = now + b->rejoin_ms;
    sup_register(b->rt, "macula_bootstrap_server", sup_self(self));
    rs_slot_set(b->rt, RS_SLOT_BS_SERVER, &b->view);
    bs_server__rearm(b);
    return 0;
}

static void bs_server__terminate(sup_actor *self, void *state, const sup_reason *reason)
{
    (void)self;
    (void)reason;
    bs_server *b = state;
    rs_slot_clear(b->rt, RS_SLOT_BS_SERVER, &b->view);
}

static void bs_server__info(sup_actor *self, void *state, const sup_msg *m)
{
    bs_server *b = state;
    b->self = self;
    if (m->kind == SUP_MSG_INFO && m->tag == RS_FRAME) {
        bs_server__frame(b, m);
        return;
    }
    if (m->kind == SUP_MSG_TIMER && m->ref == b->timer_ref) {
        b->timer_ref = 0;
        b->timer_at = UINT64_MAX;
        bs_server__tick(b);
    } else if (m->kind == SUP_MSG_REPLY) {
        for (uint32_t i = 0; i < b->view.npeers; i++) {
            if (b->refs[i] != 0 && b->refs[i] == m->ref) {
                bs_server__joined(b, i, m);
            }
        }
    }
    bs_server__rearm(b);
}

static void bs_server__call(sup_actor *self, void *state, const sup_msg *m)
{
    bs_server *b = state;
    b->self = self;
    if (m->tag == BS_SERVER_VIEW) {
        sup_reply(b->rt, sup_msg_from(m), &b->view, sizeof b->view);
    } else {
        sup_reply(b->rt, sup_msg_from(m), NULL, 0);
    }
}

static const sup_behaviour bs_server_behaviour = {
    .name = "bootstrap_server",
    .state_size = sizeof(bs_server),
    .init = bs_server__init,
    .handle_call = bs_server__call,
    .handle_info = bs_server__info,
    .terminate = bs_server__terminate,
};

int bs_server_start(sup_rt *rt, sup_pid parent, void *arg, void *extra, sup_pid *out,
                    sup_reason *why)
{
    (void)extra;
    return sup_spawn(rt, parent, &bs_server_behaviour, arg, SUP_SPAWN_LINK, out, why);
}
