/* src/mesh/routing_server.c — macula_routing_server (see routing_server.h). */
#include "routing_server.h"

#include <jansson.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mesh/client.h"
#include "mesh/gateway/gateway.h"
#include "mesh/gateway/quic_server.h"
#include "mesh/rpc_serve.h"

#define RS_PEND_MAX 128 /* API lookups in flight */
#define RS_JOIN_MAX 16  /* joins in flight */
#define RS_NAME_MAX 256 /* key names of JSON calls */

enum { RS_TICK = 1 };

typedef enum rs_pend_kind {
    RS_P_FREE = 0,
    RS_P_PUT,
    RS_P_GET,
    RS_P_PING,
    RS_P_JSON_PUT,
    RS_P_JSON_GET,
} rs_pend_kind;

typedef struct rs_pend {
    rs_pend_kind kind;
    uint32_t handle;
    sup_from from;
    char name[RS_NAME_MAX];
} rs_pend;

typedef struct rs_join {
    bool used;
    char addr[MESH_POOL_ADDR_MAX];
    sup_from from;
    uint32_t handle; /* 0 while connecting */
    dht_id id;
} rs_join;

/* Where replies produced by one input go: back on the connection the request came by. */
typedef struct rs_route {
    int kind; /* 0 none, 1 gateway connection, 2 pool connection */
    uint64_t conn;
    dht_id id;
    char addr[MESH_POOL_ADDR_MAX];
} rs_route;

typedef struct rs {
    sup_rt *rt;
    sup_actor *self; /* the running actor, set at the start of every callback */
    sup_pid pid;
    const rs_config *cfg;
    dht *d;
    mesh_pool *pool;
    uint64_t timer_ref, timer_at;
    rs_view view;
    rs_pend pend[RS_PEND_MAX];
    rs_join joins[RS_JOIN_MAX];
    char realm[256];
} rs;

/* ---- published views -------------------------------------------------------------------- */

typedef struct rs_slots {
    const void *rt;
    const void *ptr[RS_SLOT_COUNT];
} rs_slots;

static pthread_mutex_t rs__slots_mu = PTHREAD_MUTEX_INITIALIZER;
static rs_slots rs__slots[64];

void rs_slot_set(const void *rt, rs_slot slot, const void *ptr)
{
    pthread_mutex_lock(&rs__slots_mu);
    rs_slots *free_e = NULL;
    for (size_t i = 0; i < sizeof rs__slots / sizeof *rs__slots; i++) {
        if (rs__slots[i].rt == rt) {
            rs__slots[i].ptr[slot] = ptr;
            pthread_mutex_unlock(&rs__slots_mu);
            return;
        }
        if (free_e == NULL && rs__slots[i].rt == NULL) {
            free_e = &rs__slots[i];
        }
    }
    if (free_e != NULL) {
        memset(free_e, 0, sizeof *free_e);
        free_e->rt = rt;
        free_e->ptr[slot] = ptr;
    }
    pthread_mutex_unlock(&rs__slots_mu);
}

void rs_slot_clear(const void *rt, rs_slot slot, const void *ptr)
{
    pthread_mutex_lock(&rs__slots_mu);
    for (size_t i = 0; i < sizeof rs__slots / sizeof *rs__slots; i++) {
        if (rs__slots[i].rt != rt) {
            continue;
        }
        if (rs__slots[i].ptr[slot] == ptr) {
            rs__slots[i].ptr[slot] = NULL;
        }
        bool empty = true;
        for (int s = 0; s < RS_SLOT_COUNT; s++) {
            empty = empty && rs__slots[i].ptr[s] == NULL;
        }
        if (empty) {
            rs__slots[i].rt = NULL;
        }
    }
    pthread_mutex_unlock(&rs__slots_mu);
}

const void *rs_slot_get(const void *rt, rs_slot slot)
{
    const void *p = NULL;
    pthread_mutex_lock(&rs__slots_mu);
    for (size_t i = 0; i < sizeof rs__slots / sizeof *rs__slots; i++) {
        if (rs__slots[i].rt == rt) {
            p = rs__slots[i].ptr[slot];
        }
    }
    pthread_mutex_unlock(&rs__slots_mu);
    return p;
}

bool rs_view_get(const sup_rt *rt, rs_view *out)
{
    const rs_view *v = rs_slot_get(rt, RS_SLOT_ROUTING);
    if (v == NULL) {
        return false;
    }
    *out = *v;
    return true;
}

/* ---- addresses ----------------------------------------------------------------------------- */

/* Splits "host:port" / "[v6]:port": host (without brackets) and the port text. */
static bool rs__split(const char *addr, char *host, size_t hsize, const char **port)
{
    const char *colon;
    if (addr[0] == '[') {
        const char *end = strchr(addr, ']');
        if (end == NULL || end[1] != ':' || (size_t)(end - addr - 1) >= hsize) {
            return false;
        }
        memcpy(host, addr + 1, (size_t)(end - addr - 1));
        host[end - addr - 1] = '\0';
        colon = end + 1;
    } else {
        colon = strrchr(addr, ':');
        if (colon == NULL || (size_t)(colon - addr) >= hsize) {
            return false;
        }
        memcpy(host, addr, (size_t)(colon - addr));
        host[colon - addr] = '\0';
    }
    *port = colon + 1;
    return (*port)[0] != '\0';
}

/* Writes "host:port" ("[host]:port" for IPv6) into out (DHT_ADDR_MAX + 1 bytes); false when
 * it does not fit. */
static bool rs__join_hostport(const char *host, const char *port, char *out)
{
    if (strlen(host) > DHT_ADDR_MAX || strlen(port) > DHT_ADDR_MAX) {
        return false;
    }
    char tmp[2 * DHT_ADDR_MAX + 8]; /* room for any host and port: no truncation to reason about */
    int n = strchr(host, ':') != NULL ? snprintf(tmp, sizeof tmp, "[%s]:%s", host, port)
                                      : snprintf(tmp, sizeof tmp, "%s:%s", host, port);
    if (n <= 0 || n > DHT_ADDR_MAX) {
        return false;
    }
    memcpy(out, tmp, (size_t)n + 1);
    return true;
}

bool rs_fix_addr(const char *addr, const char *seen, char *out)
{
    char host[DHT_ADDR_MAX + 1], shost[DHT_ADDR_MAX + 1];
    const char *port, *sport;
    if (addr == NULL || !rs__split(addr, host, sizeof host, &port)) {
        return false;
    }
    bool unspecified = host[0] == '\0' || strcmp(host, "0.0.0.0") == 0 || strcmp(host, "::") == 0;
    if (unspecified) {
        if (seen == NULL || !rs__split(seen, shost, sizeof shost, &sport)) {
            return false;
        }
        snprintf(host, sizeof host, "%s", shost);
    }
    return rs__join_hostport(host, port, out);
}

/* ---- configuration ------------------------------------------------------------------------ */

void rs_config_default(rs_config *cfg)
{
    memset(cfg, 0, sizeof *cfg);
    dht_config_default(&cfg->dht);
}

/* ---- helpers ------------------------------------------------------------------------------- */

static bool rs__is_reply(uint8_t type)
{
    return type == WIRE_FIND_NODE_REPLY || type == WIRE_FIND_VALUE_REPLY || type == WIRE_STORE_ACK;
}

static void rs__sender(const rs *s, dht_contact *me)
{
    me->id = *dht_self(s->d);
    uint16_t port = s->cfg->port;
    gw_quic_stats qs;
    if (port == 0 && gw_quic_server_stats(s->rt, &qs)) {
        port = qs.port;
    }
    const char *host = s->cfg->advertise_host ? s->cfg->advertise_host : "0.0.0.0";
    char p[8];
    snprintf(p, sizeof p, "%u", (unsigned)port);
    if (!rs__join_hostport(host, p, me->addr)) {
        me->addr[0] = '\0';
    }
}

static void rs__publish(rs *s)
{
    dht_get_stats(s->d, &s->view.dht);
    s->view.contacts = dht_table_size(s->d);
    if (s->pool != NULL) {
        mesh_pool_stats_get(s->pool, &s->view.pool);
    }
}

static void rs__rearm(rs *s)
{
    uint64_t d = dht_next_deadline(s->d);
    if (d == s->timer_at) {
        return;
    }
    if (s->timer_ref != 0) {
        (void)sup_cancel_timer(s->self, s->timer_ref);
        s->timer_ref = 0;
    }
    s->timer_at = d;
    if (d != UINT64_MAX) {
        uint64_t now = sup_rt_now(s->rt);
        s->timer_ref = sup_send_after(s->self, d > now ? d - now : 0, RS_TICK, NULL, 0);
    }
}

static void rs__send_gateway(rs *s, uint64_t conn, const uint8_t *frame, size_t len)
{
    sup_pid gw = sup_whereis(s->rt, "macula_gateway");
    uint8_t *buf = malloc(sizeof conn + len);
    if (buf == NULL || sup_pid_is_null(gw)) {
        free(buf);
        s->view.send_failed++;
        return;
    }
    memcpy(buf, &conn, sizeof conn);
    memcpy(buf + sizeof conn, frame, len);
    if (sup_send(s->rt, sup_self(s->self), gw, GW_SEND_FRAME, buf, sizeof conn + len) != 0) {
        s->view.send_failed++;
    } else {
        s->view.frames_out++;
    }
    free(buf);
}

static void rs__send_pool(rs *s, const dht_id *id, const char *addr, const uint8_t *frame,
                          size_t len)
{
    if (s->pool == NULL || addr[0] == '\0' ||
        mesh_pool_send(s->pool, id ? id->b : NULL, addr, frame, len) != MESH_POOL_OK) {
        s->view.send_failed++;
        return;
    }
    s->view.frames_out++;
}

static rs_pend *rs__pend_new(rs *s, rs_pend_kind kind, sup_from from)
{
    for (size_t i = 0; i < RS_PEND_MAX; i++) {
        if (s->pend[i].kind == RS_P_FREE) {
            s->pend[i] = (rs_pend){.kind = kind, .from = from};
            return &s->pend[i];
        }
    }
    return NULL;
}

static void rs__json_reply(rs *s, sup_from to, int rc, const char *code, const char *text)
{
    size_t tl = text ? strlen(text) : 0;
    uint8_t *buf = malloc(sizeof(rs_json_rep) + tl + 1);
    if (buf == NULL) {
        sup_reply(s->rt, to, NULL, 0);
        return;
    }
    rs_json_rep rep = {.rc = rc};
    snprintf(rep.code, sizeof rep.code, "%s", code ? code : "");
    memcpy(buf, &rep, sizeof rep);
    if (text != NULL) {
        memcpy(buf + sizeof rep, text, tl + 1);
    }
    sup_reply(s->rt, to, buf, sizeof rep + tl);
    free(buf);
}

static void rs__json_reply_obj(rs *s, sup_from to, json_t *obj)
{
    char *text = json_dumps(obj, JSON_COMPACT);
    json_decref(obj);
    if (text == NULL) {
        rs__json_reply(s, to, -1, "no_memory", "out of memory");
        return;
    }
    rs__json_reply(s, to, 0, "", text);
    free(text);
}

/* ---- events ------------------------------------------------------------------------------- */

static void rs__event_get(rs *s, rs_pend *p, const dht_event *e)
{
    if (p->kind == RS_P_GET) {
        size_t len = sizeof(rs_get_rep);
        for (uint32_t i = 0; i < e->nvalues; i++) {
            len += sizeof(uint32_t) + e->values[i].len;
        }
        uint8_t *buf = malloc(len);
        if (buf == NULL) {
            sup_reply(s->rt, p->from, NULL, 0);
            return;
        }
        rs_get_rep rep = {.status = e->nvalues > 0 ? 0 : (e->status ? e->status : DHT_ENOTFOUND),
                          .nvalues = e->nvalues,
                          .hops = e->hops,
                          .queries = e->queries};
        memcpy(buf, &rep, sizeof rep);
        size_t off = sizeof rep;
        for (uint32_t i = 0; i < e->nvalues; i++) {
            uint32_t l = e->values[i].len;
            memcpy(buf + off, &l, sizeof l);
            memcpy(buf + off + sizeof l, e->values[i].p, l);
            off += sizeof l + l;
        }
        sup_reply(s->rt, p->from, buf, len);
        free(buf);
        return;
    }
    json_t *o = json_object();
    json_t *vals = json_array();
    json_t *hex = json_array();
    for (uint32_t i = 0; i < e->nvalues; i++) {
        json_t *v = json_stringn((const char *)e->values[i].p, e->values[i].len);
        if (v != NULL) {
            json_array_append_new(vals, v);
            continue;
        }
        char *h = malloc(2u * e->values[i].len + 1);
        if (h != NULL) {
            for (uint32_t j = 0; j < e->values[i].len; j++) {
                snprintf(h + (size_t)2 * j, 3, "%02x", e->values[i].p[j]);
            }
            h[(size_t)2 * e->values[i].len] = '\0';
            json_array_append_new(hex, json_string(h));
            free(h);
        }
    }
    json_object_set_new(o, "key", json_string(p->name));
    json_object_set_new(o, "found", json_boolean(e->nvalues > 0));
    json_object_set_new(o, "values", vals);
    if (json_array_size(hex) > 0) {
        json_object_set_new(o, "values_hex", hex);
    } else {
        json_decref(hex);
    }
    json_object_set_new(o, "hops", json_integer(e->hops));
    json_object_set_new(o, "queries", json_integer(e->queries));
    json_object_set_new(o, "replies", json_integer(e->replies));
    rs__json_reply_obj(s, p->from, o);
}

static void rs__event(rs *s, const dht_event *e)
{
    for (size_t i = 0; i < RS_JOIN_MAX; i++) {
        rs_join *j = &s->joins[i];
        if (j->used && j->handle != 0 && j->handle == e->handle && e->kind == DHT_EV_LOOKUP) {
            rs_join_rep rep = {.status = 0, .id = j->id, .contacts = dht_table_size(s->d)};
            snprintf(rep.reason, sizeof rep.reason, "joined");
            sup_reply(s->rt, j->from, &rep, sizeof rep);
            j->used = false;
            return;
        }
    }
    rs_pend *p = NULL;
    for (size_t i = 0; i < RS_PEND_MAX && p == NULL; i++) {
        if (s->pend[i].kind != RS_P_FREE && s->pend[i].handle == e->handle) {
            p = &s->pend[i];
        }
    }
    if (p == NULL) {
        return; /* internal lookups (refresh, republish) */
    }
    switch (p->kind) {
    case RS_P_PUT: {
        rs_put_rep rep = {.status = e->status, .stored = e->stored, .hops = e->hops};
        sup_reply(s->rt, p->from, &rep, sizeof rep);
        break;
    }
    case RS_P_JSON_PUT: {
        json_t *o = json_object();
        char hex[2 * DHT_ID_LEN + 1];
        dht_id_hex(&e->target, hex);
        json_object_set_new(o, "key", json_string(p->name));
        json_object_set_new(o, "id", json_string(hex));
        json_object_set_new(o, "stored", json_integer(e->stored));
        json_object_set_new(o, "hops", json_integer(e->hops));
        json_object_set_new(o, "status", json_string(dht_strerror(e->status)));
        rs__json_reply_obj(s, p->from, o);
        break;
    }
    case RS_P_GET:
    case RS_P_JSON_GET: rs__event_get(s, p, e); break;
    case RS_P_PING: {
        int st = e->found ? 0 : (e->status ? e->status : DHT_ETIMEDOUT);
        sup_reply(s->rt, p->from, &st, sizeof st);
        break;
    }
    default: break;
    }
    p->kind = RS_P_FREE;
}

/* After every input: outputs (replies for `r` go back on its connection), events, timer. */
static void rs__drain(rs *s, const rs_route *r)
{
    dht_contact me;
    rs__sender(s, &me);
    const dht_out *o;
    while ((o = dht_next_output(s->d)) != NULL) {
        uint8_t *frame = NULL;
        size_t len = 0;
        if (dht_msg_encode(&o->msg, &me, &frame, &len) != DHT_OK) {
            s->view.send_failed++;
            continue;
        }
        bool back = r != NULL && r->kind != 0 && rs__is_reply(o->msg.type) &&
                    memcmp(o->to.id.b, r->id.b, DHT_ID_LEN) == 0;
        if (back && r->kind == 1) {
            rs__send_gateway(s, r->conn, frame, len);
        } else if (back) {
            rs__send_pool(s, &o->to.id, r->addr, frame, len);
        } else {
            rs__send_pool(s, &o->to.id, o->to.addr, frame, len);
        }
        free(frame);
    }
    const dht_event *e;
    while ((e = dht_next_event(s->d)) != NULL) {
        rs__event(s, e);
    }
    rs__rearm(s);
    rs__publish(s);
}

/* A DHT message from node `from` (proven by its connection); seen: the connection's remote. */
static void rs__receive(rs *s, const dht_id *from, const char *seen, const wire_msg *w,
                        const rs_route *r)
{
    dht_msg m;
    if (dht_msg_from_wire(w, &m) != DHT_OK) {
        s->view.refused_decode++;
        return;
    }
    if (m.has_sender && memcmp(m.sender.id.b, from->b, DHT_ID_LEN) != 0) {
        s->view.refused_sender++;
        return;
    }
    char addr[DHT_ADDR_MAX + 1];
    const char *from_addr = NULL;
    if (m.has_sender && rs_fix_addr(m.sender.addr, seen, addr)) {
        from_addr = addr;
    }
    if (dht_receive(s->d, from, from_addr, &m, sup_rt_now(s->rt)) != DHT_OK) {
        s->view.refused_decode++;
        return;
    }
    s->view.frames_in++;
    rs__drain(s, r);
}

/* ---- pool events ----------------------------------------------------------------------
 * Root's dispatcher turns the pool's events into MESH_POOL_MSG_* messages (gateway/mesh.h),
 * so the core is only ever touched inside the actor. */

/* A connection came up: joins waiting for this address bootstrap through it. */
static void rs__pool_up(rs *s, const uint8_t id[DHT_ID_LEN], const char *addr)
{
    uint64_t now = sup_rt_now(s->rt);
    for (size_t i = 0; i < RS_JOIN_MAX; i++) {
        rs_join *j = &s->joins[i];
        if (!j->used || j->handle != 0 || strcmp(j->addr, addr) != 0) {
            continue;
        }
        dht_contact seed;
        memcpy(seed.id.b, id, DHT_ID_LEN);
        snprintf(seed.addr, sizeof seed.addr, "%s", addr);
        j->id = seed.id;
        uint32_t h = 0;
        int rc = dht_bootstrap(s->d, &seed, 1, now, &h);
        if (rc != DHT_OK || h == 0) {
            rs_join_rep rep = {.status = rc ? rc : DHT_EINVAL, .id = seed.id};
            snprintf(rep.reason, sizeof rep.reason, "bootstrap: %s", dht_strerror(rc));
            sup_reply(s->rt, j->from, &rep, sizeof rep);
            j->used = false;
        } else {
            j->handle = h;
        }
    }
    rs__drain(s, NULL);
}

static void rs__pool_frame(rs *s, const sup_msg *m)
{
    mesh_pool_msg pm;
    if (m->len <= sizeof pm) {
        return;
    }
    memcpy(&pm, m->data, sizeof pm);
    pm.addr[sizeof pm.addr - 1] = '\0';
    wire_msg w;
    size_t used = 0;
    if (wire_decode((const uint8_t *)m->data + sizeof pm, m->len - sizeof pm, NULL, &w, &used) !=
        WIRE_OK) {
        s->view.refused_decode++;
        return;
    }
    rs_route r = {.kind = 2};
    memcpy(r.id.b, pm.id, DHT_ID_LEN);
    snprintf(r.addr, sizeof r.addr, "%s", pm.addr);
    rs__receive(s, &r.id, pm.addr, &w, &r);
}

/* A connection ended without us asking: waiting joins fail; a known peer leaves the table. */
static void rs__pool_down(rs *s, const mesh_pool_msg *pm)
{
    for (size_t i = 0; i < RS_JOIN_MAX; i++) {
        rs_join *j = &s->joins[i];
        if (j->used && j->handle == 0 && strcmp(j->addr, pm->addr) == 0) {
            rs_join_rep rep = {.status = DHT_EPROTO};
            int n = snprintf(rep.reason, sizeof rep.reason, "%s: %.90s",
                             mesh_client_strerror(pm->err), pm->reason);
            (void)n;
            sup_reply(s->rt, j->from, &rep, sizeof rep);
            j->used = false;
        }
    }
    if (pm->has_id) {
        dht_id did;
        memcpy(did.b, pm->id, DHT_ID_LEN);
        if (dht_remove_contact(s->d, &did) == DHT_OK) {
            s->view.contacts_lost++;
        }
    }
    rs__drain(s, NULL);
}

/* ---- API ----------------------------------------------------------------------------------- */

static void rs__join(rs *s, const sup_msg *m)
{
    char url[300], host[64];
    uint16_t port;
    size_t n = m->len < sizeof url - 1 ? m->len : sizeof url - 1;
    memcpy(url, m->data, n);
    url[n] = '\0';
    rs_join_rep rep = {.status = DHT_EINVAL};
    rs_join *j = NULL;
    for (size_t i = 0; i < RS_JOIN_MAX && j == NULL; i++) {
        j = s->joins[i].used ? NULL : &s->joins[i];
    }
    if (s->pool == NULL || j == NULL ||
        mesh_client_parse_url(url, host, sizeof host, &port) != MESH_CLIENT_OK) {
        snprintf(rep.reason, sizeof rep.reason, "%s",
                 s->pool == NULL ? "no transport"
                 : j == NULL     ? "too many joins in flight"
                                 : "not https://HOST:PORT with a resolvable HOST");
        sup_reply(s->rt, sup_msg_from(m), &rep, sizeof rep);
        return;
    }
    char p[8];
    snprintf(p, sizeof p, "%u", (unsigned)port);
    *j = (rs_join){.used = true, .from = sup_msg_from(m)};
    (void)rs__join_hostport(host, p, j->addr); /* host is at most 63 characters */
    uint8_t id[DHT_ID_LEN];
    if (mesh_pool_is_ready(s->pool, j->addr, id)) {
        rs__pool_up(s, id, j->addr);
        return;
    }
    int rc = mesh_pool_connect(s->pool, NULL, j->addr);
    if (rc != MESH_POOL_OK) {
        snprintf(rep.reason, sizeof rep.reason, "%s", mesh_pool_strerror(rc));
        rep.status = DHT_EPROTO;
        sup_reply(s->rt, j->from, &rep, sizeof rep);
        j->used = false;
    }
}

static void rs__api_lookup(rs *s, const sup_msg *m)
{
    uint64_t now = sup_rt_now(s->rt);
    sup_from from = sup_msg_from(m);
    rs_pend_kind kind = m->tag == RS_PUT ? RS_P_PUT : m->tag == RS_GET ? RS_P_GET : RS_P_PING;
    rs_pend *p = rs__pend_new(s, kind, from);
    int rc = DHT_EINVAL;
    if (p == NULL) {
        rc = DHT_EBUSY;
    } else if (m->tag == RS_PUT && m->len >= sizeof(rs_put_req)) {
        rs_put_req req;
        memcpy(&req, m->data, sizeof req);
        rc = dht_put(s->d, &req.key, (const uint8_t *)m->data + sizeof req, m->len - sizeof req,
                     req.ttl_ms, now, &p->handle);
    } else if (m->tag == RS_GET && m->len == sizeof(dht_id)) {
        dht_id key;
        memcpy(&key, m->data, sizeof key);
        rc = dht_get(s->d, &key, now, &p->handle);
    } else if (m->tag == RS_PING && m->len == sizeof(rs_ping_req)) {
        rs_ping_req req;
        memcpy(&req, m->data, sizeof req);
        req.addr[DHT_ADDR_MAX] = '\0';
        rc = dht_ping(s->d, &req.id, req.addr, now, &p->handle);
    }
    if (rc != DHT_OK) {
        if (p != NULL) {
            p->kind = RS_P_FREE;
        }
        if (m->tag == RS_PUT) {
            rs_put_rep rep = {.status = rc};
            sup_reply(s->rt, from, &rep, sizeof rep);
        } else if (m->tag == RS_GET) {
            rs_get_rep rep = {.status = rc};
            sup_reply(s->rt, from, &rep, sizeof rep);
        } else {
            sup_reply(s->rt, from, &rc, sizeof rc);
        }
    }
    rs__drain(s, NULL);
}

static void rs__json_peers(rs *s, sup_from from)
{
    json_t *o = json_object();
    json_t *list = json_array();
    char hex[2 * DHT_ID_LEN + 1];
    dht_id_hex(dht_self(s->d), hex);
    for (int b = 0; b < 256; b++) {
        dht_contact c;
        for (uint32_t i = 0; dht_bucket_entry(s->d, b, i, &c); i++) {
            json_t *e = json_object();
            char h[2 * DHT_ID_LEN + 1];
            dht_id_hex(&c.id, h);
            json_object_set_new(e, "id", json_string(h));
            json_object_set_new(e, "address", json_string(c.addr));
            json_object_set_new(e, "bucket", json_integer(b));
            json_array_append_new(list, e);
        }
    }
    dht_contact me;
    rs__sender(s, &me);
    json_object_set_new(o, "node_id", json_string(hex));
    json_object_set_new(o, "address", json_string(me.addr));
    json_object_set_new(o, "realm", json_string(s->realm));
    json_object_set_new(o, "contacts", list);
    json_object_set_new(o, "connections", json_integer(s->view.pool.ready));
    rs__json_reply_obj(s, from, o);
}

static void rs__json(rs *s, const sup_msg *m)
{
    sup_from from = sup_msg_from(m);
    const char *data = m->data;
    const char *nul = memchr(data, '\0', m->len);
    if (nul == NULL) {
        rs__json_reply(s, from, -1, "invalid_args", "malformed request");
        return;
    }
    const char *proc = data;
    size_t alen = m->len - (size_t)(nul - data) - 1;
    json_error_t jerr;
    json_t *args = alen ? json_loadb(nul + 1, alen, JSON_DECODE_ANY, &jerr) : json_object();
    if (strcmp(proc, "com.macula.dht.peers") == 0) {
        json_decref(args);
        rs__json_peers(s, from);
        return;
    }
    bool put = strcmp(proc, "com.macula.dht.put") == 0;
    bool get = strcmp(proc, "com.macula.dht.get") == 0;
    const char *key = json_string_value(json_object_get(args, "key"));
    json_t *jv = json_object_get(args, "value");
    json_t *jttl = json_object_get(args, "ttl");
    const char *why = NULL;
    if (!put && !get) {
        why = "no such procedure";
    } else if (!json_is_object(args) || key == NULL || key[0] == '\0' ||
               strlen(key) >= RS_NAME_MAX) {
        why = "args must be {\"key\": \"NAME\" (1..255 bytes), ...}";
    } else if (put && !json_is_string(jv)) {
        why = "put wants {\"key\": ..., \"value\": \"TEXT\", \"ttl\": SECONDS}";
    } else if (put && jttl != NULL &&
               (!json_is_integer(jttl) || json_integer_value(jttl) < 0 ||
                json_integer_value(jttl) > 86400LL * 365)) {
        why = "ttl must be a number of seconds";
    }
    if (why != NULL) {
        rs__json_reply(s, from, -1, put || get ? "invalid_args" : "no_handler", why);
        json_decref(args);
        return;
    }
    dht_id k;
    rs_pend *p = NULL;
    int rc = key != NULL ? dht_key(s->realm, strlen(s->realm), key, strlen(key), &k) : DHT_EINVAL;
    if (rc == DHT_OK) {
        p = rs__pend_new(s, put ? RS_P_JSON_PUT : RS_P_JSON_GET, from);
        rc = p == NULL ? DHT_EBUSY : DHT_OK;
    }
    if (p != NULL) {
        snprintf(p->name, sizeof p->name, "%s", key);
        uint64_t now = sup_rt_now(s->rt);
        if (put) {
            uint64_t ttl_ms = jttl ? (uint64_t)json_integer_value(jttl) * 1000u : 0;
            rc = dht_put(s->d, &k, json_string_value(jv), json_string_length(jv), ttl_ms, now,
                         &p->handle);
        } else {
            rc = dht_get(s->d, &k, now, &p->handle);
        }
        if (rc != DHT_OK) {
            p->kind = RS_P_FREE;
        }
    }
    json_decref(args);
    if (rc != DHT_OK) {
        char msg[96];
        snprintf(msg, sizeof msg, "dht: %s", dht_strerror(rc));
        rs__json_reply(s, from, -1, dht_strerror(rc), msg);
    }
    rs__drain(s, NULL);
}

/* RS_FORWARD: an RPC_ROUTE's next hop by the routing table (rpc_serve.h, rpcs_next_hop). */
static void rs__forward(rs *s, const sup_msg *m)
{
    rs_forward_req q;
    rs_forward_rep rep = {.status = DHT_ENOTFOUND};
    if (m->len <= sizeof q || s->pool == NULL) {
        rep.status = DHT_EPROTO;
        sup_reply(s->rt, sup_msg_from(m), &rep, sizeof rep);
        return;
    }
    memcpy(&q, m->data, sizeof q);
    dht_id dest;
    memcpy(dest.b, q.dest, DHT_ID_LEN);
    dht_contact cs[DHT_K_MAX];
    uint8_t ids[DHT_K_MAX][DHT_ID_LEN];
    uint32_t n = dht_closest(s->d, &dest, cs, DHT_K_MAX);
    for (uint32_t i = 0; i < n; i++) {
        memcpy(ids[i], cs[i].id.b, DHT_ID_LEN);
    }
    int i = rpcs_next_hop(dht_self(s->d)->b, q.dest, (const uint8_t(*)[DHT_ID_LEN])ids, n,
                          q.has_exclude ? q.exclude : NULL, !q.no_direct);
    if (i >= 0) {
        int rc = mesh_pool_send(s->pool, cs[i].id.b, cs[i].addr,
                                (const uint8_t *)m->data + sizeof q, m->len - sizeof q);
        rep.status = rc == MESH_POOL_OK ? 0 : DHT_EPROTO;
        memcpy(rep.next, cs[i].id.b, DHT_ID_LEN);
    }
    sup_reply(s->rt, sup_msg_from(m), &rep, sizeof rep);
}

static void rs__frame(rs *s, const sup_msg *m)
{
    rs_frame_hdr h;
    if (m->len <= sizeof h) {
        return;
    }
    memcpy(&h, m->data, sizeof h);
    h.remote[sizeof h.remote - 1] = '\0';
    wire_msg w;
    size_t used = 0;
    const uint8_t *frame = (const uint8_t *)m->data + sizeof h;
    if (wire_decode(frame, m->len - sizeof h, NULL, &w, &used) != WIRE_OK) {
        s->view.refused_decode++;
        return;
    }
    rs_route r = {.kind = 1, .conn = h.conn};
    memcpy(r.id.b, h.node_id, DHT_ID_LEN);
    rs__receive(s, &r.id, h.remote, &w, &r);
}

/* ---- the actor ----------------------------------------------------------------------------- */

static int rs__init(sup_actor *self, void *state, void *arg)
{
    rs *s = state;
    s->rt = sup_self_rt(self);
    s->self = self;
    s->pid = sup_self(self);
    s->cfg = arg;
    s->timer_at = UINT64_MAX;
    snprintf(s->realm, sizeof s->realm, "%s", s->cfg->realm ? s->cfg->realm : "macula.default");
    dht_id self_id = {{0}};
    if (s->cfg->id != NULL) {
        memcpy(self_id.b, identity_node_id(s->cfg->id), DHT_ID_LEN);
    }
    dht_config dc = s->cfg->dht;
    if (dc.seed == 0) {
        dc.seed = (uint64_t)uv_hrtime();
    }
    int rc = dht_create(&dc, &self_id, "", sup_rt_now(s->rt), &s->d);
    s->pool = s->cfg->pool;
    if (rc != DHT_OK) {
        char text[SUP_REASON_TEXT_MAX];
        snprintf(text, sizeof text, "{routing_config,%s}", dht_strerror(rc));
        dht_destroy(s->d);
        s->d = NULL;
        sup_reason r = sup_reason_error(text);
        sup_stop(self, &r);
        return -1;
    }
    sup_register(s->rt, "macula_routing_server", sup_self(self));
    rs__publish(s);
    rs_slot_set(s->rt, RS_SLOT_ROUTING, &s->view);
    return 0;
}

static void rs__terminate(sup_actor *self, void *state, const sup_reason *reason)
{
    (void)self;
    (void)reason;
    rs *s = state;
    rs_slot_clear(s->rt, RS_SLOT_ROUTING, &s->view);
    s->pool = NULL; /* borrowed: macula_root's */
    dht_destroy(s->d);
    s->d = NULL;
}

static void rs__call(sup_actor *self, void *state, const sup_msg *m)
{
    rs *s = state;
    s->self = self;
    s->view.api_calls++;
    switch (m->tag) {
    case RS_JOIN: rs__join(s, m); break;
    case RS_PUT:
    case RS_GET:
    case RS_PING: rs__api_lookup(s, m); break;
    case RS_JSON: rs__json(s, m); break;
    case RS_FORWARD: rs__forward(s, m); break;
    case RS_UNPUT: {
        int st = DHT_EINVAL;
        if (m->len == sizeof(dht_id)) {
            dht_id key;
            memcpy(&key, m->data, sizeof key);
            st = dht_unput(s->d, &key);
        }
        sup_reply(s->rt, sup_msg_from(m), &st, sizeof st);
        break;
    }
    case RS_STATS:
        rs__publish(s);
        sup_reply(s->rt, sup_msg_from(m), &s->view, sizeof s->view);
        break;
    default: sup_reply(s->rt, sup_msg_from(m), NULL, 0); break;
    }
}

static void rs__info(sup_actor *self, void *state, const sup_msg *m)
{
    rs *s = state;
    s->self = self;
    if (m->kind == SUP_MSG_TIMER && m->ref == s->timer_ref) {
        s->timer_ref = 0;
        s->timer_at = UINT64_MAX;
        dht_tick(s->d, sup_rt_now(s->rt));
        rs__drain(s, NULL);
    } else if (m->kind == SUP_MSG_INFO && m->tag == RS_FRAME) {
        rs__frame(s, m);
    } else if (m->kind == SUP_MSG_INFO && m->tag == MESH_POOL_MSG_FRAME) {
        rs__pool_frame(s, m);
    } else if (m->kind == SUP_MSG_INFO && m->len == sizeof(mesh_pool_msg) &&
               (m->tag == MESH_POOL_MSG_UP || m->tag == MESH_POOL_MSG_DOWN)) {
        mesh_pool_msg pm;
        memcpy(&pm, m->data, sizeof pm);
        pm.addr[sizeof pm.addr - 1] = '\0';
        pm.reason[sizeof pm.reason - 1] = '\0';
        if (m->tag == MESH_POOL_MSG_UP) {
            rs__pool_up(s, pm.id, pm.addr);
        } else {
            rs__pool_down(s, &pm);
        }
    }
}

static const sup_behaviour rs_behaviour = {
    .name = "routing_server",
    .state_size = sizeof(rs),
    .init = rs__init,
    .handle_call = rs__call,
    .handle_info = rs__info,
    .terminate = rs__terminate,
};

int rs_start(sup_rt *rt, sup_pid parent, void *arg, void *extra, sup_pid *out, sup_reason *why)
{
    (void)extra;
    return sup_spawn(rt, parent, &rs_behaviour, arg, SUP_SPAWN_LINK, out, why);
}
