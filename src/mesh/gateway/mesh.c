/* src/mesh/gateway/mesh.c — the mesh connection pool (see mesh.h). */
#include "mesh.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/hmap.h"
#include "mesh/client.h"

typedef struct mp_frame {
    uint8_t *p;
    size_t len;
} mp_frame;

typedef struct mp_conn {
    mesh_pool *pool;
    char addr[MESH_POOL_ADDR_MAX]; /* map key while attached */
    bool has_id;
    uint8_t id[IDENTITY_ID_LEN]; /* expected, then proven */
    mesh_client *mc;
    bool up;
    bool attached; /* in the map and the LRU list; false once this side closed it */
    uint64_t last_used, last_tx;
    mp_frame queue[MESH_POOL_QUEUE_MAX];
    uint32_t nqueue;
    struct mp_conn *prev, *next; /* LRU: least recently used first */
} mp_conn;

struct mesh_pool {
    uv_loop_t *loop;
    mesh_pool_config cfg;
    char realm[256];
    hmap by_addr;
    mp_conn *head, *tail;
    uint32_t live; /* connection objects not yet through on_closed */
    uv_timer_t timer;
    bool timer_open;
    bool dying;
    mesh_pool_stats st;
};

const char *mesh_pool_strerror(int err)
{
    switch (err) {
    case MESH_POOL_OK: return "ok";
    case MESH_POOL_EINVAL: return "invalid argument";
    case MESH_POOL_ENOMEM: return "out of memory";
    case MESH_POOL_EQUEUE: return "queue full";
    case MESH_POOL_EOPEN: return "connection could not be started";
    default: return "unknown error";
    }
}

/* ---- helpers ----------------------------------------------------------------------------- */

static void mp__release_if_done(mesh_pool *p)
{
    if (p->dying && p->live == 0 && !p->timer_open) {
        hmap_free(&p->by_addr);
        free(p);
    }
}

static void mp__queue_clear(mp_conn *c)
{
    for (uint32_t i = 0; i < c->nqueue; i++) {
        free(c->queue[i].p);
    }
    c->nqueue = 0;
}

static void mp__lru_unlink(mesh_pool *p, mp_conn *c)
{
    if (c->prev) {
        c->prev->next = c->next;
    } else {
        p->head = c->next;
    }
    if (c->next) {
        c->next->prev = c->prev;
    } else {
        p->tail = c->prev;
    }
    c->prev = c->next = NULL;
}

static void mp__lru_append(mesh_pool *p, mp_conn *c)
{
    c->prev = p->tail;
    c->next = NULL;
    if (p->tail) {
        p->tail->next = c;
    } else {
        p->head = c;
    }
    p->tail = c;
}

static void mp__touch(mesh_pool *p, mp_conn *c)
{
    c->last_used = uv_now(p->loop);
    if (c->attached && p->tail != c) {
        mp__lru_unlink(p, c);
        mp__lru_append(p, c);
    }
}

/* Detaches c (map, LRU, counters) so the address is free for a new connection. */
static void mp__detach(mesh_pool *p, mp_conn *c)
{
    if (!c->attached) {
        return;
    }
    c->attached = false;
    hmap_del(&p->by_addr, c->addr, strlen(c->addr));
    mp__lru_unlink(p, c);
    p->st.conns--;
    if (c->up) {
        p->st.ready--;
    }
    mp__queue_clear(c);
}

/* This side closes c: not reported. c may be freed before this returns. */
static void mp__close(mesh_pool *p, mp_conn *c, const char *reason)
{
    mp__detach(p, c);
    mesh_client_close(c->mc, reason);
}

static int mp__write(mesh_pool *p, mp_conn *c, const uint8_t *frame, size_t len)
{
    if (mesh_client_send_frame(c->mc, frame, len) != MESH_CLIENT_OK) {
        p->st.dropped++;
        return MESH_POOL_EQUEUE;
    }
    p->st.frames_out++;
    c->last_tx = uv_now(p->loop);
    return MESH_POOL_OK;
}

/* ---- mesh_client callbacks ------------------------------------------------------------- */

static void mp__on_ready(mesh_client *mc, const uint8_t server_id[IDENTITY_ID_LEN], void *ctx)
{
    (void)mc;
    mp_conn *c = ctx;
    mesh_pool *p = c->pool;
    if (!c->attached || p->dying) {
        return;
    }
    c->up = true;
    c->has_id = true;
    memcpy(c->id, server_id, IDENTITY_ID_LEN);
    p->st.ready++;
    for (uint32_t i = 0; i < c->nqueue; i++) {
        (void)mp__write(p, c, c->queue[i].p, c->queue[i].len);
    }
    mp__queue_clear(c);
    if (p->cfg.cb.on_up != NULL) {
        p->cfg.cb.on_up(p, c->id, c->addr, p->cfg.ctx);
    }
}

static void mp__on_frame(mesh_client *mc, const wire_msg *m, void *ctx)
{
    (void)mc;
    mp_conn *c = ctx;
    mesh_pool *p = c->pool;
    if (!c->attached || p->dying || m->type == WIRE_PONG || m->type == WIRE_PING) {
        return;
    }
    p->st.frames_in++;
    mp__touch(p, c);
    if (p->cfg.cb.on_frame != NULL) {
        p->cfg.cb.on_frame(p, c->id, c->addr, m, p->cfg.ctx);
    }
}

static void mp__on_closed(mesh_client *mc, int err, const char *reason, void *ctx)
{
    mp_conn *c = ctx;
    mesh_pool *p = c->pool;
    bool report = c->attached && !p->dying;
    bool was_up = c->up;
    if (c->attached) {
        if (was_up) {
            p->st.lost++;
        } else {
            p->st.failed++;
        }
    }
    mp__detach(p, c);
    if (report && p->cfg.cb.on_down != NULL) {
        p->cfg.cb.on_down(p, c->has_id ? c->id : NULL, c->addr, was_up, err, reason, p->cfg.ctx);
    }
    mesh_client_free(mc);
    free(c);
    p->live--;
    mp__release_if_done(p);
}

/* ---- keep-alive ------------------------------------------------------------------------ */

static void mp__timer(uv_timer_t *t)
{
    mesh_pool *p = t->data;
    uint64_t now = uv_now(p->loop);
    mp_conn *c = p->head;
    while (c != NULL) {
        mp_conn *next = c->next;
        if (now - c->last_used >= p->cfg.idle_ms) {
            p->st.idle_closed++;
            mp__close(p, c, "idle");
        } else if (c->up && now - c->last_tx >= p->cfg.keepalive_ms) {
            wire_msg m = {.type = WIRE_PING};
            m.ping.timestamp = (int64_t)now;
            if (mesh_client_send(c->mc, &m) == MESH_CLIENT_OK) {
                c->last_tx = now;
            }
        }
        c = next;
    }
}

static void mp__timer_closed(uv_handle_t *h)
{
    mesh_pool *p = h->data;
    p->timer_open = false;
    mp__release_if_done(p);
}

/* ---- API -------------------------------------------------------------------------------- */

int mesh_pool_new(uv_loop_t *loop, const mesh_pool_config *cfg, mesh_pool **out)
{
    *out = NULL;
    if (loop == NULL || cfg == NULL || cfg->id == NULL || cfg->realm == NULL ||
        cfg->realm[0] == '\0' || strlen(cfg->realm) > 253) {
        return MESH_POOL_EINVAL;
    }
    mesh_pool *p = calloc(1, sizeof *p);
    if (p == NULL) {
        return MESH_POOL_ENOMEM;
    }
    p->loop = loop;
    p->cfg = *cfg;
    snprintf(p->realm, sizeof p->realm, "%s", cfg->realm);
    p->cfg.realm = p->realm;
    if (p->cfg.max_conns == 0) {
        p->cfg.max_conns = MESH_POOL_DEFAULT_MAX;
    }
    if (p->cfg.keepalive_ms == 0) {
        p->cfg.keepalive_ms = MESH_POOL_DEFAULT_KEEPALIVE_MS;
    }
    if (p->cfg.idle_ms == 0) {
        p->cfg.idle_ms = MESH_POOL_DEFAULT_IDLE_MS;
    }
    hmap_init(&p->by_addr);
    uv_timer_init(loop, &p->timer);
    p->timer.data = p;
    p->timer_open = true;
    uint64_t period = p->cfg.keepalive_ms / 2 ? p->cfg.keepalive_ms / 2 : 1;
    uv_timer_start(&p->timer, mp__timer, period, period);
    uv_unref((uv_handle_t *)&p->timer);
    *out = p;
    return MESH_POOL_OK;
}

void mesh_pool_free(mesh_pool *p)
{
    if (p == NULL || p->dying) {
        return;
    }
    p->dying = true;
    while (p->head != NULL) {
        mp__close(p, p->head, "shutdown");
    }
    uv_timer_stop(&p->timer);
    uv_close((uv_handle_t *)&p->timer, mp__timer_closed);
}

static mp_conn *mp__open(mesh_pool *p, const uint8_t *id, const char *addr)
{
    if (p->st.conns >= p->cfg.max_conns && p->head != NULL) {
        p->st.evicted++;
        mp__close(p, p->head, "evicted");
    }
    mp_conn *c = calloc(1, sizeof *c);
    if (c == NULL) {
        return NULL;
    }
    c->pool = p;
    snprintf(c->addr, sizeof c->addr, "%s", addr);
    if (id != NULL) {
        c->has_id = true;
        memcpy(c->id, id, IDENTITY_ID_LEN);
    }
    char url[MESH_POOL_ADDR_MAX + 16];
    snprintf(url, sizeof url, "quic://%s", addr);
    mesh_client_callbacks cb = {
        .on_ready = mp__on_ready, .on_frame = mp__on_frame, .on_closed = mp__on_closed};
    if (mesh_client_open(p->loop, p->cfg.id, url, p->realm, id, &cb, c, &c->mc) != MESH_CLIENT_OK) {
        free(c);
        p->st.failed++;
        return NULL;
    }
    p->live++;
    if (hmap_put(&p->by_addr, c->addr, strlen(c->addr), c, NULL) != HMAP_OK) {
        mesh_client_close(c->mc, "out of memory"); /* on_closed frees c (not attached) */
        return NULL;
    }
    c->attached = true;
    c->last_used = c->last_tx = uv_now(p->loop);
    mp__lru_append(p, c);
    p->st.conns++;
    p->st.opened++;
    return c;
}

static int mp__get(mesh_pool *p, const uint8_t *id, const char *addr, mp_conn **out)
{
    size_t alen = addr ? strlen(addr) : 0;
    if (p->dying || alen == 0 || alen >= MESH_POOL_ADDR_MAX) {
        return MESH_POOL_EINVAL;
    }
    mp_conn *c = hmap_get(&p->by_addr, addr, alen);
    if (c != NULL && id != NULL && c->has_id && memcmp(c->id, id, IDENTITY_ID_LEN) != 0) {
        mp__close(p, c, "another node at this address");
        c = NULL;
    }
    if (c == NULL) {
        c = mp__open(p, id, addr);
        if (c == NULL) {
            return MESH_POOL_EOPEN;
        }
    }
    mp__touch(p, c);
    *out = c;
    return MESH_POOL_OK;
}

int mesh_pool_connect(mesh_pool *p, const uint8_t *id, const char *addr)
{
    mp_conn *c;
    return mp__get(p, id, addr, &c);
}

int mesh_pool_send(mesh_pool *p, const uint8_t *id, const char *addr, const uint8_t *frame,
                   size_t len)
{
    if (frame == NULL || len == 0) {
        return MESH_POOL_EINVAL;
    }
    mp_conn *c;
    int rc = mp__get(p, id, addr, &c);
    if (rc != MESH_POOL_OK) {
        return rc;
    }
    if (c->up) {
        return mp__write(p, c, frame, len);
    }
    if (c->nqueue >= MESH_POOL_QUEUE_MAX) {
        p->st.dropped++;
        return MESH_POOL_EQUEUE;
    }
    mp_frame *q = &c->queue[c->nqueue];
    q->p = malloc(len);
    if (q->p == NULL) {
        return MESH_POOL_ENOMEM;
    }
    memcpy(q->p, frame, len);
    q->len = len;
    c->nqueue++;
    return MESH_POOL_OK;
}

void mesh_pool_close(mesh_pool *p, const char *addr)
{
    mp_conn *c = addr ? hmap_get(&p->by_addr, addr, strlen(addr)) : NULL;
    if (c != NULL) {
        mp__close(p, c, "closed");
    }
}

bool mesh_pool_is_ready(const mesh_pool *p, const char *addr, uint8_t *id)
{
    const mp_conn *c = addr ? hmap_get(&p->by_addr, addr, strlen(addr)) : NULL;
    if (c == NULL || !c->up) {
        return false;
    }
    if (id != NULL) {
        memcpy(id, c->id, IDENTITY_ID_LEN);
    }
    return true;
}

void mesh_pool_stats_get(const mesh_pool *p, mesh_pool_stats *out)
{
    *out = p->st;
}

void mesh_pool_foreach_ready(const mesh_pool *p,
                             void (*fn)(const uint8_t id[IDENTITY_ID_LEN], const char *addr,
                                        void *ctx),
                             void *ctx)
{
    for (const mp_conn *c = p->head; c != NULL; c = c->next) {
        if (c->up) {
            fn(c->id, c->addr, ctx);
        }
    }
}
