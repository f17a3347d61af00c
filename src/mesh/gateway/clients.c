/* src/mesh/gateway/clients.c — macula_gateway_clients (see clients.h). */
#include "clients.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gateway.h"
#include "base/hmap.h"
#include "registry.h"

typedef struct gw_client {
    uint64_t conn;
    uint8_t node_id[WIRE_NODE_ID_LEN];
    uint32_t streams;
    uint64_t connected_ms, last_seen_ms;
    char remote[GWC_REMOTE_MAX];
    uint8_t *endpoint;
    size_t endpoint_len;
    uint8_t *caps; /* gwc_caps format */
    size_t caps_len;
    uint32_t caps_count;
} gw_client;

typedef struct gw_clients_view {
    size_t count;
} gw_clients_view;

typedef struct gw_clients {
    sup_rt *rt;
    hmap by_conn; /* conn id -> gw_client (key: its conn) */
    gw_clients_view view;
} gw_clients;

static gw_client *gw_clients__find(gw_clients *t, uint64_t conn)
{
    return hmap_get(&t->by_conn, &conn, sizeof conn);
}

static void gw_clients__free_entry(gw_client *c)
{
    free(c->endpoint);
    free(c->caps);
    free(c);
}

static void gw_clients__remove(gw_clients *t, uint64_t conn)
{
    gw_client *c = gw_clients__find(t, conn);
    if (c != NULL) {
        hmap_del(&t->by_conn, &c->conn, sizeof c->conn);
        gw_clients__free_entry(c);
        t->view.count = t->by_conn.count;
    }
}

static void gw_clients__up(gw_clients *t, const sup_msg *m)
{
    gw_client_up_msg h;
    if (m->len < sizeof h) {
        return;
    }
    memcpy(&h, m->data, sizeof h);
    if ((size_t)h.endpoint_len + h.caps_len != m->len - sizeof h) {
        return;
    }
    gw_clients__remove(t, h.conn); /* an UP for a known connection replaces it */
    gw_client *c = calloc(1, sizeof *c);
    if (c == NULL) {
        return;
    }
    const uint8_t *p = (const uint8_t *)m->data + sizeof h;
    c->conn = h.conn;
    memcpy(c->node_id, h.node_id, WIRE_NODE_ID_LEN);
    c->streams = 1;
    c->connected_ms = c->last_seen_ms = h.time_ms;
    memcpy(c->remote, h.remote, sizeof c->remote);
    c->remote[sizeof c->remote - 1] = '\0';
    c->endpoint = malloc(h.endpoint_len + 1u);
    c->caps = malloc(h.caps_len + 1u);
    if (c->endpoint == NULL || c->caps == NULL ||
        hmap_put(&t->by_conn, &c->conn, sizeof c->conn, c, NULL) != HMAP_OK) {
        gw_clients__free_entry(c);
        return;
    }
    memcpy(c->endpoint, p, h.endpoint_len);
    c->endpoint_len = h.endpoint_len;
    memcpy(c->caps, p + h.endpoint_len, h.caps_len);
    c->caps_len = h.caps_len;
    c->caps_count = h.caps_count;
    t->view.count = t->by_conn.count;
}

static int gw_clients__init(sup_actor *self, void *state, void *arg)
{
    (void)arg;
    gw_clients *t = state;
    t->rt = sup_self_rt(self);
    sup_register(t->rt, "macula_gateway_clients", sup_self(self));
    gw_reg_set(t->rt, GW_REG_CLIENTS, &t->view);
    sup_pid gw = sup_whereis(t->rt, "macula_gateway");
    if (!sup_pid_is_null(gw)) {
        sup_cast(t->rt, sup_self(self), gw, GW_CLIENTS_SYNC, NULL, 0);
    }
    return 0;
}

static void gw_clients__terminate(sup_actor *self, void *state, const sup_reason *reason)
{
    (void)self;
    (void)reason;
    gw_clients *t = state;
    gw_reg_clear(t->rt, GW_REG_CLIENTS, &t->view);
    for (size_t i = 0; i < t->by_conn.cap; i++) {
        if (t->by_conn.slots[i].val != NULL) {
            gw_clients__free_entry(t->by_conn.slots[i].val);
        }
    }
    hmap_free(&t->by_conn);
}

static void gw_clients__cast(sup_actor *self, void *state, const sup_msg *m)
{
    (void)self;
    gw_clients *t = state;
    if (m->tag == GW_CL_UP) {
        gw_clients__up(t, m);
    } else if (m->tag == GW_CL_SEEN && m->len == sizeof(gw_client_seen_msg)) {
        gw_client_seen_msg s;
        memcpy(&s, m->data, sizeof s);
        gw_client *c = gw_clients__find(t, s.conn);
        if (c != NULL && s.time_ms > c->last_seen_ms) {
            c->last_seen_ms = s.time_ms;
        }
    } else if (m->tag == GW_CL_DOWN && m->len == sizeof(uint64_t)) {
        uint64_t conn;
        memcpy(&conn, m->data, sizeof conn);
        gw_clients__remove(t, conn);
    }
}

static void gw_clients__call(sup_actor *self, void *state, const sup_msg *m)
{
    gw_clients *t = state;
    sup_rt *rt = sup_self_rt(self);
    if (m->tag == GW_CLIENTS_COUNT) {
        uint64_t n = t->by_conn.count;
        sup_reply(rt, sup_msg_from(m), &n, sizeof n);
        return;
    }
    gw_client_entry_info info;
    memset(&info, 0, sizeof info);
    if (m->tag == GW_CLIENTS_GET && m->len == WIRE_NODE_ID_LEN) {
        /* by node id: a scan (lookups by node id are rare; the gateway core keeps the index
         * the protocol needs) */
        for (size_t i = 0; i < t->by_conn.cap && !info.found; i++) {
            const gw_client *c = t->by_conn.slots[i].val;
            if (c != NULL && memcmp(c->node_id, m->data, WIRE_NODE_ID_LEN) == 0) {
                info.found = true;
                info.conn = c->conn;
                info.streams = c->streams;
                info.connected_ms = c->connected_ms;
                info.last_seen_ms = c->last_seen_ms;
                info.caps_count = c->caps_count;
                size_t n = c->endpoint_len < sizeof info.endpoint - 1 ? c->endpoint_len
                                                                      : sizeof info.endpoint - 1;
                memcpy(info.endpoint, c->endpoint, n);
                memcpy(info.remote, c->remote, sizeof info.remote);
            }
        }
    }
    sup_reply(rt, sup_msg_from(m), &info, sizeof info);
}

static const sup_behaviour gw_clients_behaviour = {
    .name = "gateway_clients",
    .state_size = sizeof(gw_clients),
    .init = gw_clients__init,
    .handle_call = gw_clients__call,
    .handle_cast = gw_clients__cast,
    .terminate = gw_clients__terminate,
};

int gw_clients_start(sup_rt *rt, sup_pid parent, void *arg, void *extra, sup_pid *out,
                     sup_reason *why)
{
    (void)extra;
    return sup_spawn(rt, parent, &gw_clients_behaviour, arg, SUP_SPAWN_LINK, out, why);
}

int gw_clients_notify(sup_rt *rt, sup_pid from, sup_pid to, const gwc_action *a)
{
    if (a->kind == GWC_ACT_CLIENT_DOWN) {
        return sup_cast(rt, from, to, GW_CL_DOWN, &a->conn, sizeof a->conn);
    }
    if (a->kind == GWC_ACT_CLIENT_SEEN) {
        gw_client_seen_msg s = {a->conn, a->time_ms};
        return sup_cast(rt, from, to, GW_CL_SEEN, &s, sizeof s);
    }
    if (a->kind != GWC_ACT_CLIENT_UP) {
        return SUP_EINVAL;
    }
    gw_client_up_msg h;
    memset(&h, 0, sizeof h);
    h.conn = a->conn;
    memcpy(h.node_id, a->node_id, WIRE_NODE_ID_LEN);
    h.time_ms = a->time_ms;
    h.endpoint_len = (uint32_t)a->len;
    h.caps_len = (uint32_t)a->caps_len;
    h.caps_count = a->caps_count;
    snprintf(h.remote, sizeof h.remote, "%s", a->remote ? a->remote : "");
    size_t len = sizeof h + a->len + a->caps_len;
    uint8_t *p = malloc(len);
    if (p == NULL) {
        return SUP_ENOMEM;
    }
    memcpy(p, &h, sizeof h);
    if (a->len > 0) {
        memcpy(p + sizeof h, a->data, a->len);
    }
    if (a->caps_len > 0) {
        memcpy(p + sizeof h + a->len, a->caps, a->caps_len);
    }
    int rc = sup_cast(rt, from, to, GW_CL_UP, p, len);
    free(p);
    return rc;
}

long gw_clients_count(const sup_rt *rt)
{
    const gw_clients_view *v = gw_reg_get(rt, GW_REG_CLIENTS);
    return v != NULL ? (long)v->count : -1;
}
