/*
 * flow/consensus/gossip_node.c — erlmcp_flow_gossip: the gossip membership core (gossip.h)
 * carried over QUIC between node identities (docs/consensus.md "Gossip membership").
 *
 * The actor owns one gossip core, the node identity (mesh/identity.h: key.pem and cert.pem in
 * the flow node's data_dir; node id = SHA-256 of the SPKI) and one peer_link (peer_link.h: a
 * QUIC endpoint of the mesh's transport between node identities) listening on the configured
 * gossip address. Gossip member id = Raft id.
 *
 * Peers come from the raft actor (FLOW_TAG_PEERS): the voters of the Raft configuration with
 * the gossip endpoint the replicated member directory records for each (address + node id).
 * The members with an endpoint are the link's members: a message to one goes on one stream of
 * this node's connection to it, opened with its node id pinned (only the latest message waits
 * for a handshake); a message is accepted only from a connection whose TLS-proven node id is a
 * member's, and it is handed to the core as coming from that member (the core refuses a
 * message whose sender field names anyone else), so a member cannot speak for another;
 * anything else is counted as rejected.
 *
 * The actor ticks the core from a timer at its next deadline (rounds of 1 s), reports its view
 * to the raft actor (FLOW_TAG_GOSSIP, shown by cluster_status) and its quorum flag to the
 * registry (FLOW_TAG_QUORUM: the registry pauses dispatch while paused) every round and on
 * every change. Fault switch (FLOW_TAG_FAULT, tests only): while isolated nothing is sent and
 * everything received is dropped.
 *
 * Link callbacks run on the loop outside the actor's callbacks; they use only the actor's
 * state and casts. terminate closes the link, after which no callback runs.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "flow/consensus/fsm.h"
#include "flow/consensus/gossip.h"
#include "flow/consensus/peer_link.h"
#include "flow/flow_int.h"
#include "mesh/identity.h"

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
    bool has_ep; /* address and node id known: a member of the link */
} gn_peer;

typedef struct gn_state {
    const flow_raft_config *cfg;
    sup_rt *rt;
    sup_pid self;
    identity *id;
    peer_link *link; /* NULL until opened */
    gossip *g;
    char node_hex[IDENTITY_ID_HEX_LEN + 1];
    gn_peer *peers;
    size_t npeers;
    bool isolated;
    bool dirty; /* a member's status changed since the last report */
    int sent_paused;
    int attempts;
    uint64_t dropped; /* sent before the link opened */
} gn_state;

/* ---- peers ------------------------------------------------------------------------------- */

static gn_peer *gn__peer(gn_state *st, uint32_t id)
{
    for (size_t i = 0; i < st->npeers; i++) {
        if (st->peers[i].id == id) {
            return &st->peers[i];
        }
    }
    return NULL;
}

/* The link's members are the peers with an endpoint. */
static void gn__link_member(gn_state *st, const gn_peer *p)
{
    if (st->link == NULL) {
        return;
    }
    if (p->has_ep) {
        (void)peer_link_set(st->link, p->id, p->addr, p->node);
    } else {
        peer_link_remove(st->link, p->id);
    }
}

/* ---- reports ----------------------------------------------------------------------------- */

static json_t *gn__view(const gn_state *st)
{
    json_t *members = json_object();
    for (size_t i = 0; i < st->npeers; i++) {
        char key[16];
        snprintf(key, sizeof key, "%u", st->peers[i].id);
        int s = gossip_member_status(st->g, st->peers[i].id);
        json_object_set_new(members, key,
                            json_string(s < 0 ? "unknown" : gossip_status_name((gossip_status)s)));
    }
    char self[16];
    snprintf(self, sizeof self, "%u", (unsigned)st->cfg->id);
    json_object_set_new(members, self, json_string("alive"));
    peer_link_stats ls = {0};
    if (st->link) {
        peer_link_get_stats(st->link, &ls);
    }
    return json_pack("{s:s, s:s, s:b, s:b, s:I, s:o, s:I, s:I, s:I, s:I, s:I}", "address",
                     st->cfg->gossip, "node", st->node_hex, "paused", gossip_paused(st->g),
                     "isolated", st->isolated, "incarnation", (json_int_t)gossip_incarnation(st->g),
                     "members", members, "sent", (json_int_t)ls.sent, "received",
                     (json_int_t)ls.received, "unknown", (json_int_t)ls.unknown, "rejected",
                     (json_int_t)ls.rejected, "dropped",
                     (json_int_t)ls.dropped + (json_int_t)st->dropped);
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

/* ---- messages ---------------------------------------------------------------------------- */

static void gn__flush(gn_state *st)
{
    gossip_outbox *ob = gossip_get_outbox(st->g);
    for (size_t i = 0; i < ob->n; i++) {
        if (st->link) {
            (void)peer_link_send(st->link, ob->v[i].to, ob->v[i].data, ob->v[i].len);
        } else {
            st->dropped++;
        }
    }
    gossip_outbox_clear(ob);
}

/* A message the link proved comes from member `from`. */
static int gn__recv(void *user, uint32_t from, const uint8_t *data, size_t len)
{
    gn_state *st = user;
    if (gossip_receive(st->g, sup_rt_now(st->rt), from, data, len) != 0) {
        return -1;
    }
    gn__flush(st);
    gn__report(st, false);
    return 0;
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
            keep =
                keep || json_integer_value(json_object_get(m, "id")) == (json_int_t)st->peers[i].id;
        }
        if (keep) {
            st->peers[kept++] = st->peers[i];
        } else {
            gossip_remove(st->g, st->peers[i].id);
            if (st->link) {
                peer_link_remove(st->link, st->peers[i].id);
            }
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
            gn_peer *v = realloc(st->peers, (st->npeers + 1) * sizeof *v);
            if (v == NULL) {
                continue;
            }
            st->peers = v;
            if (gossip_add(st->g, now, (uint32_t)id) != 0) {
                continue;
            }
            p = &st->peers[st->npeers++];
            memset(p, 0, sizeof *p);
            p->id = (uint32_t)id;
            st->dirty = true;
        }
        uint8_t raw[IDENTITY_ID_LEN];
        bool has = addr && node && strlen(addr) < sizeof p->addr &&
                   identity_hex_to_id(node, raw) == IDENTITY_OK;
        if (has != p->has_ep ||
            (has && (strcmp(addr, p->addr) != 0 || memcmp(raw, p->node, sizeof raw) != 0))) {
            p->has_ep = has;
            snprintf(p->addr, sizeof p->addr, "%s", has ? addr : "");
            if (has) {
                memcpy(p->node, raw, sizeof raw);
            }
            gn__link_member(st, p);
        }
    }
    gn__report(st, false);
}

/* ---- behaviour --------------------------------------------------------------------------- */

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
    peer_link_config lc = {
        .id = st->id,
        .listen = st->cfg->gossip,
        .msg_max = GN_MSG_MAX,
        .pending_max = 1,       /* only the latest table is worth sending */
        .pending_ttl_ms = 2000, /* a table older than two rounds is superseded anyway */
        .idle_timeout_ms = GN_IDLE_MS,
        .handshake_timeout_ms = GN_HANDSHAKE_MS,
        .recv = gn__recv,
        .user = st,
        .name = "flow gossip",
    };
    int rc = peer_link_open(sup_rt_loop(st->rt), &lc, &st->link, err, errsize);
    if (rc == 0) {
        peer_link_isolate(st->link, st->isolated);
        for (size_t i = 0; i < st->npeers; i++) {
            gn__link_member(st, &st->peers[i]);
        }
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
        if (st->link) {
            peer_link_isolate(st->link, st->isolated);
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
    peer_link_close(st->link); /* no link callback runs afterwards */
    st->link = NULL;
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
