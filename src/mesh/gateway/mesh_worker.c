/* src/mesh/gateway/mesh_worker.c — macula_gateway_mesh (see mesh_worker.h). */
#include "mesh_worker.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/hmap.h"
#include "macula/sup_supervisor.h"
#include "mesh/peer/peer.h"
#include "pubsub.h"
#include "rpc.h"

enum { GM_REAP = 1, GM_SYNC };

typedef struct gm_peer {
    bool used;
    bool seen;       /* reconcile: a ready connection proves this id */
    bool stop_after; /* the connection went while the start was in flight */
    peer_info info;  /* the map key is info.id */
    uint64_t start_ref;
    peer_info *start_arg; /* extra of the start_child call in flight (peers_sup reads it) */
    sup_pid sys;          /* the peer system */
} gm_peer;

typedef struct gm_kids {
    sup_pid pid[GW_MESH_PEERS_MAX];
    size_t n;
    const char *want; /* child id looked for (NULL: all children) */
} gm_kids;

typedef struct gm {
    sup_rt *rt;
    sup_actor *self;
    sup_pid pid;
    mesh_pool *pool; /* borrowed: macula_root's */
    uint32_t npeers;
    hmap by_id;
    gm_peer peers[GW_MESH_PEERS_MAX];
    gm_kids systems; /* scratch of the orphan sweep */
} gm;

/* ---- the published view and the parked start arguments ----------------------------------- */

static pthread_mutex_t gm__mu = PTHREAD_MUTEX_INITIALIZER;
static struct {
    const void *rt;
    gm *g;
} gm__views[64];

typedef struct gm_parked {
    const mesh_pool *pool;
    peer_info *arg;
    struct gm_parked *next;
} gm_parked;
static gm_parked *gm__parked;

static void gm__view(const void *rt, gm *g, bool set)
{
    pthread_mutex_lock(&gm__mu);
    for (size_t i = 0; i < 64; i++) {
        if (set && (gm__views[i].rt == NULL || gm__views[i].rt == rt)) {
            gm__views[i].rt = rt;
            gm__views[i].g = g;
            break;
        }
        if (!set && gm__views[i].rt == rt && gm__views[i].g == g) {
            gm__views[i].rt = NULL;
            gm__views[i].g = NULL;
        }
    }
    pthread_mutex_unlock(&gm__mu);
}

bool gw_mesh_stats(const sup_rt *rt, mesh_pool_stats *out, uint32_t *peers)
{
    bool ok = false;
    pthread_mutex_lock(&gm__mu);
    for (size_t i = 0; i < 64 && !ok; i++) {
        if (gm__views[i].rt == rt && gm__views[i].g != NULL) {
            gm *g = gm__views[i].g;
            if (g->pool != NULL) {
                mesh_pool_stats_get(g->pool, out);
            } else {
                memset(out, 0, sizeof *out);
            }
            if (peers != NULL) {
                *peers = g->npeers;
            }
            ok = true;
        }
    }
    pthread_mutex_unlock(&gm__mu);
    return ok;
}

/* A start argument peers_sup may still read after this worker ended: kept until root ends. */
static void gm__park(const mesh_pool *pool, peer_info *arg)
{
    gm_parked *e = malloc(sizeof *e);
    if (e == NULL) {
        return; /* leaking the argument is the only safe choice left */
    }
    e->pool = pool;
    e->arg = arg;
    pthread_mutex_lock(&gm__mu);
    e->next = gm__parked;
    gm__parked = e;
    pthread_mutex_unlock(&gm__mu);
}

void gw_mesh_release_parked(const mesh_pool *pool)
{
    pthread_mutex_lock(&gm__mu);
    gm_parked **pp = &gm__parked;
    while (*pp != NULL) {
        gm_parked *e = *pp;
        if (e->pool == pool) {
            *pp = e->next;
            free(e->arg);
            free(e);
        } else {
            pp = &e->next;
        }
    }
    pthread_mutex_unlock(&gm__mu);
}

int gw_mesh_send(sup_rt *rt, sup_pid from, const uint8_t *id, const char *addr,
                 const uint8_t *frame, size_t len)
{
    gw_mesh_hdr h;
    memset(&h, 0, sizeof h);
    if (addr == NULL || strlen(addr) >= sizeof h.addr) {
        return SUP_EINVAL;
    }
    sup_pid to = sup_whereis(rt, "macula_gateway_mesh");
    if (sup_pid_is_null(to)) {
        return SUP_ENOPROC;
    }
    if (id != NULL) {
        memcpy(h.id, id, sizeof h.id);
        h.has_id = true;
    }
    snprintf(h.addr, sizeof h.addr, "%s", addr);
    uint8_t *buf = malloc(sizeof h + len);
    if (buf == NULL) {
        return SUP_ENOMEM;
    }
    memcpy(buf, &h, sizeof h);
    memcpy(buf + sizeof h, frame, len);
    int rc = sup_send(rt, from, to, GW_MESH_SEND, buf, sizeof h + len);
    free(buf);
    return rc;
}

/* ---- peers -------------------------------------------------------------------------------- */

static gm_peer *gm__peer(gm *g, const uint8_t id[32])
{
    return hmap_get(&g->by_id, id, 32);
}

static void gm__peer_tell(gm *g, const uint8_t id[32], const char *worker, int tag, uint8_t type)
{
    sup_pid to = peer_whereis(g->rt, worker, id);
    if (!sup_pid_is_null(to)) {
        (void)sup_send(g->rt, g->pid, to, tag, &type, sizeof type);
    }
}

static void gm__peer_drop(gm *g, gm_peer *p)
{
    (void)hmap_del(&g->by_id, p->info.id, 32);
    p->used = false;
    g->npeers--;
}

/* The connection is gone: the peer system ends (its connection worker is significant). */
static void gm__peer_stop(gm *g, gm_peer *p)
{
    if (p->start_ref != 0) {
        p->stop_after = true; /* handled when the start's answer arrives */
        return;
    }
    gm__peer_tell(g, p->info.id, "macula_connection", PEER_STOP, 0);
    gm__peer_drop(g, p);
}

/* A ready connection proves id: its peer system runs (adopted, or started now). */
static void gm__peer_ensure(gm *g, const uint8_t id[32], const char *addr)
{
    gm_peer *p = gm__peer(g, id);
    if (p != NULL) {
        p->seen = true;
        p->stop_after = false;
        return;
    }
    sup_pid ps = sup_whereis(g->rt, "macula_peers_sup");
    if (sup_pid_is_null(ps)) {
        return; /* peers_sup restarting: the next reconcile starts it */
    }
    for (size_t i = 0; i < GW_MESH_PEERS_MAX; i++) {
        if (g->peers[i].used) {
            continue;
        }
        p = &g->peers[i];
        memset(p, 0, sizeof *p);
        memcpy(p->info.id, id, 32);
        snprintf(p->info.addr, sizeof p->info.addr, "%s", addr);
        p->info.since_ms = sup_rt_now(g->rt);
        sup_pid conn = peer_whereis(g->rt, "macula_connection", id);
        sup_actor_info ai;
        if (!sup_pid_is_null(conn) && sup_actor_info_get(g->rt, conn, &ai) == 0) {
            p->sys = ai.parent; /* adopted: started by a predecessor of this worker */
        } else {
            p->start_arg = malloc(sizeof *p->start_arg);
            if (p->start_arg == NULL) {
                return;
            }
            *p->start_arg = p->info;
            p->start_ref = sup_sv_start_child(g->self, ps, NULL, p->start_arg, 5000);
        }
        if (hmap_put(&g->by_id, p->info.id, 32, p, NULL) != HMAP_OK) {
            if (p->start_ref != 0) {
                gm__park(g->pool, p->start_arg); /* the call is out: peers_sup may read it */
            }
            return;
        }
        p->used = true;
        p->seen = true;
        g->npeers++;
        return;
    }
}

static void gm__ready_cb(const uint8_t id[IDENTITY_ID_LEN], const char *addr, void *ctx)
{
    gm__peer_ensure(ctx, id, addr);
}

static void gm__kid_cb(const sup_child_info *ci, void *user)
{
    gm_kids *k = user;
    if (k->n < GW_MESH_PEERS_MAX && ci->state == SUP_CHILD_RUNNING &&
        (k->want == NULL || strcmp(ci->id, k->want) == 0)) {
        k->pid[k->n++] = ci->pid;
    }
}

/* Peer systems under macula_peers_sup that no entry here accounts for (a predecessor's whose
 * connection went while no worker ran, or a duplicate) are stopped. */
static void gm__sweep_orphans(gm *g)
{
    sup_pid ps = sup_whereis(g->rt, "macula_peers_sup");
    gm_kids *systems = &g->systems;
    systems->n = 0;
    systems->want = NULL;
    if (sup_pid_is_null(ps) || sup_sv_inspect(g->rt, ps, NULL, gm__kid_cb, systems) != 0) {
        return;
    }
    for (size_t i = 0; i < systems->n; i++) {
        bool known = false;
        bool starting = false;
        for (size_t j = 0; j < GW_MESH_PEERS_MAX && !known; j++) {
            const gm_peer *p = &g->peers[j];
            known = p->used && p->start_ref == 0 && sup_pid_eq(p->sys, systems->pid[i]);
            starting = starting || (p->used && p->start_ref != 0);
        }
        gm_kids conn = {.want = "macula_connection"};
        if (known || sup_sv_inspect(g->rt, systems->pid[i], NULL, gm__kid_cb, &conn) != 0 ||
            conn.n != 1) {
            continue; /* ours, or not a running peer system (restarting its connection) */
        }
        /* A start in flight may be this very system (its pid is not known yet): by name. */
        for (size_t j = 0; j < GW_MESH_PEERS_MAX && starting && !known; j++) {
            const gm_peer *p = &g->peers[j];
            known = p->used && p->start_ref != 0 &&
                    sup_pid_eq(peer_whereis(g->rt, "macula_connection", p->info.id), conn.pid[0]);
        }
        if (!known) {
            uint8_t t = 0;
            (void)sup_send(g->rt, g->pid, conn.pid[0], PEER_STOP, &t, sizeof t);
        }
    }
}

/* Peer systems = ready pool connections (by proven id). */
static void gm__reconcile(gm *g)
{
    for (size_t i = 0; i < GW_MESH_PEERS_MAX; i++) {
        gm_peer *p = &g->peers[i];
        p->seen = false;
        if (p->used && p->start_ref == 0 && !sup_is_alive(g->rt, p->sys)) {
            gm__peer_drop(g, p); /* its system ended (peers_sup restarted, ...): start again */
        }
    }
    if (g->pool != NULL) {
        mesh_pool_foreach_ready(g->pool, gm__ready_cb, g);
    }
    for (size_t i = 0; i < GW_MESH_PEERS_MAX; i++) {
        gm_peer *p = &g->peers[i];
        if (p->used && !p->seen) {
            gm__peer_stop(g, p);
        }
    }
    gm__sweep_orphans(g);
}

typedef struct gm_find {
    const uint8_t *id;
    bool found;
} gm_find;

static void gm__find_cb(const uint8_t id[IDENTITY_ID_LEN], const char *addr, void *ctx)
{
    (void)addr;
    gm_find *f = ctx;
    f->found = f->found || memcmp(id, f->id, IDENTITY_ID_LEN) == 0;
}

static void gm__pool_down(gm *g, const mesh_pool_msg *pm)
{
    gm_peer *p = pm->has_id ? gm__peer(g, pm->id) : NULL;
    if (p == NULL) {
        return;
    }
    gm_find f = {.id = pm->id};
    if (g->pool != NULL) {
        mesh_pool_foreach_ready(g->pool, gm__find_cb, &f);
    }
    if (!f.found) {
        gm__peer_stop(g, p);
    }
}

/* ---- frames ------------------------------------------------------------------------------- */

static void gm__frame(gm *g, const mesh_pool_msg *h, const uint8_t *frame, size_t len)
{
    if (len < WIRE_HEADER_LEN) {
        return;
    }
    uint8_t type = frame[1];
    gm__peer_tell(g, h->id, "macula_connection", PEER_FRAME_IN, type);
    if (type == WIRE_PUBACK) {
        gm__peer_tell(g, h->id, "macula_pubsub_handler", PEER_FRAME_IN, type);
        sup_pid dst = sup_whereis(g->rt, "macula_gateway_pubsub");
        gw_ps_node_hdr nh;
        memset(&nh, 0, sizeof nh);
        memcpy(nh.node_id, h->id, 32);
        snprintf(nh.addr, sizeof nh.addr, "%s", h->addr);
        uint8_t *buf = sup_pid_is_null(dst) ? NULL : malloc(sizeof nh + len);
        if (buf != NULL) {
            memcpy(buf, &nh, sizeof nh);
            memcpy(buf + sizeof nh, frame, len);
            (void)sup_send(g->rt, g->pid, dst, GW_PS_NODE_FRAME, buf, sizeof nh + len);
            free(buf);
        }
    } else if (type == WIRE_REPLY || type == WIRE_RPC_ROUTE || type == WIRE_CALL ||
               type == WIRE_CAST) {
        gm__peer_tell(g, h->id, "macula_rpc_handler", PEER_FRAME_IN, type);
        (void)gw_rpc_deliver(g->rt, g->pid, GW_RPC_VIA_POOL, 0, h->id, frame, len);
    }
}

static void gm__send(gm *g, const sup_msg *m)
{
    gw_mesh_hdr h;
    if (m->len <= sizeof h || g->pool == NULL) {
        return;
    }
    memcpy(&h, m->data, sizeof h);
    h.addr[sizeof h.addr - 1] = '\0';
    const uint8_t *frame = (const uint8_t *)m->data + sizeof h;
    size_t len = m->len - sizeof h;
    if (mesh_pool_send(g->pool, h.has_id ? h.id : NULL, h.addr, frame, len) != MESH_POOL_OK ||
        !h.has_id || len < WIRE_HEADER_LEN) {
        return;
    }
    gm__peer_tell(g, h.id, "macula_connection", PEER_FRAME_OUT, frame[1]);
    if (frame[1] == WIRE_PUBSUB_ROUTE) {
        gm__peer_tell(g, h.id, "macula_pubsub_handler", PEER_FRAME_OUT, frame[1]);
    } else if (frame[1] == WIRE_RPC_ROUTE || frame[1] == WIRE_CALL || frame[1] == WIRE_REPLY) {
        gm__peer_tell(g, h.id, "macula_rpc_handler", PEER_FRAME_OUT, frame[1]);
    }
}

/* ---- the actor ---------------------------------------------------------------------------- */

static int gm__init(sup_actor *self, void *state, void *arg)
{
    gm *g = state;
    const gw_mesh_config *cfg = arg;
    g->rt = sup_self_rt(self);
    g->self = self;
    g->pid = sup_self(self);
    g->pool = cfg != NULL ? cfg->pool : NULL;
    hmap_init(&g->by_id);
    sup_register(g->rt, "macula_gateway_mesh", g->pid);
    gm__view(g->rt, g, true);
    /* The first reconcile runs after init: peer systems for connections that are already
     * ready (a restart of this worker), orphans of a predecessor stopped. */
    (void)sup_send(g->rt, g->pid, g->pid, GM_SYNC, NULL, 0);
    (void)sup_send_after(self, GW_MESH_REAP_MS, GM_REAP, NULL, 0);
    return 0;
}

static void gm__terminate(sup_actor *self, void *state, const sup_reason *reason)
{
    (void)reason;
    gm *g = state;
    g->self = self;
    gm__view(g->rt, g, false);
    /* Peer systems stay (their connections do; the next worker adopts them). Starts still in
     * flight: peers_sup may read their argument after this state is gone. */
    for (size_t i = 0; i < GW_MESH_PEERS_MAX; i++) {
        if (g->peers[i].used && g->peers[i].start_ref != 0) {
            gm__park(g->pool, g->peers[i].start_arg);
            g->peers[i].start_arg = NULL;
        }
    }
    hmap_free(&g->by_id);
    g->pool = NULL;
}

static void gm__start_reply(gm *g, const sup_msg *m)
{
    for (size_t i = 0; i < GW_MESH_PEERS_MAX; i++) {
        gm_peer *p = &g->peers[i];
        if (!p->used || p->start_ref != m->ref) {
            continue;
        }
        p->start_ref = 0;
        if (m->status == SUP_ETIMEDOUT) {
            /* the start request may still wait in peers_sup's mailbox: it may read the
             * argument later, so the argument lives on with the pool */
            gm__park(g->pool, p->start_arg);
        } else {
            free(p->start_arg);
        }
        p->start_arg = NULL;
        sup_reason why;
        if (sup_sv_start_reply(m, &p->sys, &why) != 0) {
            gm__peer_drop(g, p); /* the next reconcile tries again */
        } else if (p->stop_after) {
            gm__peer_stop(g, p);
        }
        return;
    }
}

static void gm__info(sup_actor *self, void *state, const sup_msg *m)
{
    gm *g = state;
    g->self = self;
    if (m->kind == SUP_MSG_TIMER && m->tag == GM_REAP) {
        gm__reconcile(g);
        (void)sup_send_after(self, GW_MESH_REAP_MS, GM_REAP, NULL, 0);
        return;
    }
    if (m->kind == SUP_MSG_REPLY) {
        gm__start_reply(g, m);
        return;
    }
    if (m->kind != SUP_MSG_INFO) {
        return;
    }
    if (m->tag == GM_SYNC) {
        gm__reconcile(g);
        return;
    }
    if (m->tag == GW_MESH_SEND) {
        gm__send(g, m);
        return;
    }
    mesh_pool_msg h;
    if (m->len < sizeof h) {
        return;
    }
    memcpy(&h, m->data, sizeof h);
    h.addr[sizeof h.addr - 1] = '\0';
    h.reason[sizeof h.reason - 1] = '\0';
    if (m->tag == MESH_POOL_MSG_UP && h.has_id) {
        gm__peer_ensure(g, h.id, h.addr);
    } else if (m->tag == MESH_POOL_MSG_DOWN) {
        gm__pool_down(g, &h);
    } else if (m->tag == MESH_POOL_MSG_FRAME && h.has_id) {
        gm__frame(g, &h, (const uint8_t *)m->data + sizeof h, m->len - sizeof h);
    }
}

static void gm__call(sup_actor *self, void *state, const sup_msg *m)
{
    gm *g = state;
    g->self = self;
    mesh_pool_stats st;
    memset(&st, 0, sizeof st);
    if (g->pool != NULL) {
        mesh_pool_stats_get(g->pool, &st);
    }
    sup_reply(g->rt, sup_msg_from(m), &st, sizeof st);
}

static const sup_behaviour gm_behaviour = {
    .name = "gateway_mesh",
    .state_size = sizeof(gm),
    .init = gm__init,
    .handle_call = gm__call,
    .handle_info = gm__info,
    .terminate = gm__terminate,
};

int gw_mesh_start(sup_rt *rt, sup_pid parent, void *arg, void *extra, sup_pid *out, sup_reason *why)
{
    (void)extra;
    return sup_spawn(rt, parent, &gm_behaviour, arg, SUP_SPAWN_LINK, out, why);
}
