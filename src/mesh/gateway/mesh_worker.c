/* src/mesh/gateway/mesh_worker.c — macula_gateway_mesh (see mesh_worker.h). */
#include "mesh_worker.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "macula/sup_supervisor.h"
#include "mesh/peer/peer.h"
#include "pubsub.h"

enum { GM_REAP = 1, GM__UP = 0x54f1, GM__FRAME, GM__DOWN };

typedef struct gm_peer {
    bool used;
    peer_info info;
    uint64_t start_ref; /* the start_child call in flight */
    sup_pid sys;        /* the peer system */
} gm_peer;

typedef struct gm {
    sup_rt *rt;
    sup_actor *self;
    sup_pid pid;
    const gw_mesh_config *cfg;
    mesh_pool *pool;
    mesh_pool_stats stats;
    uint32_t npeers;
    gm_peer peers[GW_MESH_PEERS_MAX];
} gm;

/* ---- the published view ------------------------------------------------------------------ */

static pthread_mutex_t gm__mu = PTHREAD_MUTEX_INITIALIZER;
static struct {
    const void *rt;
    gm *g;
} gm__views[64];

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

static gm_peer *gm__peer(gm *g, const char *addr)
{
    for (size_t i = 0; i < GW_MESH_PEERS_MAX; i++) {
        if (g->peers[i].used && strcmp(g->peers[i].info.addr, addr) == 0) {
            return &g->peers[i];
        }
    }
    return NULL;
}

static void gm__peer_tell(gm *g, const gm_peer *p, const char *worker, int tag, uint8_t type)
{
    sup_pid to = peer_whereis(g->rt, worker, p->info.id);
    if (!sup_pid_is_null(to)) {
        (void)sup_send(g->rt, g->pid, to, tag, &type, sizeof type);
    }
}

static void gm__peer_stop(gm *g, gm_peer *p)
{
    gm__peer_tell(g, p, "macula_connection", PEER_STOP, 0);
    p->used = false;
    g->npeers--;
}

static void gm__peer_up(gm *g, const uint8_t id[32], const char *addr)
{
    gm_peer *p = gm__peer(g, addr);
    if (p != NULL && memcmp(p->info.id, id, 32) == 0) {
        return;
    }
    if (p != NULL) {
        gm__peer_stop(g, p);
    }
    sup_pid ps = sup_whereis(g->rt, "macula_peers_sup");
    for (size_t i = 0; i < GW_MESH_PEERS_MAX && !sup_pid_is_null(ps); i++) {
        if (!g->peers[i].used) {
            p = &g->peers[i];
            memset(p, 0, sizeof *p);
            p->used = true;
            memcpy(p->info.id, id, 32);
            snprintf(p->info.addr, sizeof p->info.addr, "%s", addr);
            p->info.since_ms = sup_rt_now(g->rt);
            p->start_ref = sup_sv_start_child(g->self, ps, NULL, &p->info, 5000);
            g->npeers++;
            return;
        }
    }
}

/* Peers whose connection is no longer ready (closed by us: idle, LRU) are stopped. */
static void gm__reap(gm *g)
{
    for (size_t i = 0; i < GW_MESH_PEERS_MAX; i++) {
        gm_peer *p = &g->peers[i];
        if (p->used && p->start_ref == 0 &&
            (g->pool == NULL || !mesh_pool_is_ready(g->pool, p->info.addr, NULL))) {
            gm__peer_stop(g, p);
        }
    }
}

/* ---- pool callbacks (outside the actor: back as messages) --------------------------------- */

static void gm__post(gm *g, int tag, const uint8_t *id, const char *addr, const uint8_t *frame,
                     size_t len)
{
    gw_mesh_hdr h;
    memset(&h, 0, sizeof h);
    if (id != NULL) {
        memcpy(h.id, id, 32);
        h.has_id = true;
    }
    snprintf(h.addr, sizeof h.addr, "%s", addr);
    uint8_t *buf = malloc(sizeof h + len);
    if (buf == NULL) {
        return;
    }
    memcpy(buf, &h, sizeof h);
    if (len > 0) {
        memcpy(buf + sizeof h, frame, len);
    }
    (void)sup_send(g->rt, SUP_NOPID, g->pid, tag, buf, sizeof h + len);
    free(buf);
}

static void gm__up_cb(mesh_pool *p, const uint8_t id[IDENTITY_ID_LEN], const char *addr, void *ctx)
{
    (void)p;
    gm__post(ctx, GM__UP, id, addr, NULL, 0);
}

static void gm__frame_cb(mesh_pool *p, const uint8_t id[IDENTITY_ID_LEN], const char *addr,
                         const wire_msg *m, void *ctx)
{
    (void)p;
    uint8_t *frame = NULL;
    size_t len = 0;
    if (wire_encode_alloc(m, &frame, &len) == WIRE_OK) {
        gm__post(ctx, GM__FRAME, id, addr, frame, len);
    }
    free(frame);
}

static void gm__down_cb(mesh_pool *p, const uint8_t *id, const char *addr, bool was_up, int err,
                        const char *reason, void *ctx)
{
    (void)p;
    (void)was_up;
    (void)err;
    (void)reason;
    gm__post(ctx, GM__DOWN, id, addr, NULL, 0);
}

/* ---- the actor ---------------------------------------------------------------------------- */

static void gm__frame(gm *g, const gw_mesh_hdr *h, const uint8_t *frame, size_t len)
{
    if (len < WIRE_HEADER_LEN) {
        return;
    }
    uint8_t type = frame[1];
    gm_peer *p = gm__peer(g, h->addr);
    if (p != NULL) {
        gm__peer_tell(g, p, "macula_connection", PEER_FRAME_IN, type);
    }
    const char *to = NULL;
    int tag = 0;
    if (type == WIRE_PUBACK) {
        to = "macula_gateway_pubsub";
        tag = GW_PS_NODE_FRAME;
        if (p != NULL) {
            gm__peer_tell(g, p, "macula_pubsub_handler", PEER_FRAME_IN, type);
        }
    } else if (type == WIRE_REPLY || type == WIRE_RPC_ROUTE || type == WIRE_CALL ||
               type == WIRE_CAST) {
        /* ---- RPC: frames for macula_gateway_rpc (the RPC layer) ---- */
        to = "macula_gateway_rpc";
        tag = GW_MESH_RPC_FRAME;
        if (p != NULL) {
            gm__peer_tell(g, p, "macula_rpc_handler", PEER_FRAME_IN, type);
        }
    }
    sup_pid dst = to ? sup_whereis(g->rt, to) : SUP_NOPID;
    if (sup_pid_is_null(dst)) {
        return;
    }
    /* gw_ps_node_hdr and gw_mesh_hdr both start with the id; rebuild the pubsub header. */
    if (tag == GW_PS_NODE_FRAME) {
        gw_ps_node_hdr nh;
        memset(&nh, 0, sizeof nh);
        memcpy(nh.node_id, h->id, 32);
        snprintf(nh.addr, sizeof nh.addr, "%s", h->addr);
        uint8_t *buf = malloc(sizeof nh + len);
        if (buf != NULL) {
            memcpy(buf, &nh, sizeof nh);
            memcpy(buf + sizeof nh, frame, len);
            (void)sup_send(g->rt, g->pid, dst, tag, buf, sizeof nh + len);
            free(buf);
        }
        return;
    }
    uint8_t *buf = malloc(sizeof *h + len);
    if (buf != NULL) {
        memcpy(buf, h, sizeof *h);
        memcpy(buf + sizeof *h, frame, len);
        (void)sup_send(g->rt, g->pid, dst, tag, buf, sizeof *h + len);
        free(buf);
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
    if (mesh_pool_send(g->pool, h.has_id ? h.id : NULL, h.addr, frame, len) != MESH_POOL_OK) {
        return;
    }
    gm_peer *p = gm__peer(g, h.addr);
    if (p != NULL && len >= WIRE_HEADER_LEN) {
        gm__peer_tell(g, p, "macula_connection", PEER_FRAME_OUT, frame[1]);
        if (frame[1] == WIRE_PUBSUB_ROUTE) {
            gm__peer_tell(g, p, "macula_pubsub_handler", PEER_FRAME_OUT, frame[1]);
        } else if (frame[1] == WIRE_RPC_ROUTE || frame[1] == WIRE_CALL || frame[1] == WIRE_REPLY) {
            gm__peer_tell(g, p, "macula_rpc_handler", PEER_FRAME_OUT, frame[1]);
        }
    }
}

static int gm__init(sup_actor *self, void *state, void *arg)
{
    gm *g = state;
    g->rt = sup_self_rt(self);
    g->self = self;
    g->pid = sup_self(self);
    g->cfg = arg;
    if (g->cfg != NULL && g->cfg->id != NULL && sup_rt_loop(g->rt) != NULL) {
        mesh_pool_config pc = {
            .id = g->cfg->id,
            .realm = g->cfg->realm ? g->cfg->realm : "macula.default",
            .max_conns = g->cfg->max_conns,
            .keepalive_ms = g->cfg->keepalive_ms,
            .idle_ms = g->cfg->idle_ms,
            .cb = {.on_up = gm__up_cb, .on_frame = gm__frame_cb, .on_down = gm__down_cb},
            .ctx = g};
        int rc = mesh_pool_new(sup_rt_loop(g->rt), &pc, &g->pool);
        if (rc != MESH_POOL_OK) {
            char text[SUP_REASON_TEXT_MAX];
            snprintf(text, sizeof text, "{mesh_pool,%s}", mesh_pool_strerror(rc));
            sup_reason r = sup_reason_error(text);
            sup_stop(self, &r);
            return -1;
        }
    }
    sup_register(g->rt, "macula_gateway_mesh", g->pid);
    gm__view(g->rt, g, true);
    (void)sup_send_after(self, GW_MESH_REAP_MS, GM_REAP, NULL, 0);
    return 0;
}

static void gm__terminate(sup_actor *self, void *state, const sup_reason *reason)
{
    (void)reason;
    gm *g = state;
    g->self = self;
    gm__view(g->rt, g, false);
    for (size_t i = 0; i < GW_MESH_PEERS_MAX; i++) {
        if (g->peers[i].used) {
            gm__peer_stop(g, &g->peers[i]);
        }
    }
    mesh_pool_free(g->pool);
    g->pool = NULL;
}

static void gm__info(sup_actor *self, void *state, const sup_msg *m)
{
    gm *g = state;
    g->self = self;
    if (m->kind == SUP_MSG_TIMER && m->tag == GM_REAP) {
        gm__reap(g);
        (void)sup_send_after(self, GW_MESH_REAP_MS, GM_REAP, NULL, 0);
        return;
    }
    if (m->kind == SUP_MSG_REPLY) {
        for (size_t i = 0; i < GW_MESH_PEERS_MAX; i++) {
            gm_peer *p = &g->peers[i];
            if (p->used && p->start_ref == m->ref) {
                p->start_ref = 0;
                sup_reason why;
                if (sup_sv_start_reply(m, &p->sys, &why) != 0) {
                    p->used = false;
                    g->npeers--;
                }
                break;
            }
        }
        return;
    }
    if (m->kind != SUP_MSG_INFO) {
        return;
    }
    if (m->tag == GW_MESH_SEND) {
        gm__send(g, m);
        return;
    }
    gw_mesh_hdr h;
    if (m->len < sizeof h) {
        return;
    }
    memcpy(&h, m->data, sizeof h);
    h.addr[sizeof h.addr - 1] = '\0';
    if (m->tag == GM__UP) {
        gm__peer_up(g, h.id, h.addr);
    } else if (m->tag == GM__DOWN) {
        gm_peer *p = gm__peer(g, h.addr);
        if (p != NULL && p->start_ref == 0) {
            gm__peer_stop(g, p);
        }
    } else if (m->tag == GM__FRAME) {
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
