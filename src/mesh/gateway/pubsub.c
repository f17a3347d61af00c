/* src/mesh/gateway/pubsub.c — macula_gateway_pubsub (see pubsub.h). */
#include "pubsub.h"

#include <jansson.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/hmap.h"
#include "gateway.h"
#include "gateway_core.h"
#include "mesh/dht/dht.h"
#include "mesh/routing_server.h"
#include "mesh/topic.h"
#include "mesh_worker.h"
#include "quic_server.h"
#include "registry.h"

#define PS_CALLS_MAX 256        /* RS calls in flight */
#define PS_GET_TIMEOUT 40000    /* ms: a DHT lookup is bounded by 30 s */
#define PS_PEERS_TIMEOUT 10000  /* ms */
#define PS_HOSTS_FRESH_MS 30000 /* contacts' hosts are asked again after this */
#define PS_DEFERRED_MAX 64
#define PS_FAN_MAX 4096 /* connections per GW_PS_FANOUT */
/* A batch of publishes has its deliveries carried out every this many publishes: the core's
 * action records and frames are then reused while still in the cache, instead of ~1,000 of
 * each per gateway batch. */
#define PS_ACTIONS_EVERY 64

enum { PS_TICK = 1 };

typedef enum ps_call_kind { PS_C_FREE = 0, PS_C_GET, PS_C_PUT, PS_C_PEERS } ps_call_kind;

typedef struct ps_call {
    ps_call_kind kind;
    uint64_t ref;
    char *key; /* PS_C_GET: the index key name (malloc'd) */
    size_t key_len;
} ps_call;

/* A lookup answer waiting for the contacts' hosts. */
typedef struct ps_deferred {
    char *key;
    size_t key_len;
    uint8_t *reply; /* the RS_GET reply as it came */
    size_t len;
} ps_deferred;

typedef struct ps_host {
    uint8_t id[WIRE_NODE_ID_LEN]; /* key */
    char host[PSC_ADDR_MAX];
} ps_host;

typedef struct ps {
    sup_rt *rt;
    sup_actor *self;
    const gw_pubsub_config *cfg;
    char realm[256];
    psc *core;
    sup_deadline timer; /* the core's next deadline (psc_next_deadline) */
    gw_pubsub_view view;
    ps_call calls[PS_CALLS_MAX];
    ps_deferred deferred[PS_DEFERRED_MAX];
    size_t ndeferred;
    uint64_t peers_ref; /* a com.macula.dht.peers call in flight */
    uint64_t hosts_at;  /* when the hosts were last learned */
    hmap hosts;         /* node id -> ps_host */
    sup_pid gw;         /* macula_gateway as last looked up (a dead pid: looked up again) */
    sup_msgbuf ob;      /* GW_PS_FANOUT message built in place; ob.len: bytes of finished records
                         * (the record being built follows them) */
    uint32_t fan_n;     /* connections in the record being built (0: none) */
    uint64_t fan_id;    /* the psc_action.frame_id it copied (the same id: the same bytes) */
    size_t fan_len;
} ps;

/* ---- the published view ------------------------------------------------------------------ */

static pthread_mutex_t ps__views_mu = PTHREAD_MUTEX_INITIALIZER;
static struct {
    const void *rt;
    const gw_pubsub_view *v;
} ps__views[64];

static void ps__view_set(const void *rt, const gw_pubsub_view *v)
{
    pthread_mutex_lock(&ps__views_mu);
    for (size_t i = 0; i < 64; i++) {
        if (ps__views[i].rt == NULL || ps__views[i].rt == rt) {
            ps__views[i].rt = rt;
            ps__views[i].v = v;
            break;
        }
    }
    pthread_mutex_unlock(&ps__views_mu);
}

static void ps__view_clear(const void *rt, const gw_pubsub_view *v)
{
    pthread_mutex_lock(&ps__views_mu);
    for (size_t i = 0; i < 64; i++) {
        if (ps__views[i].rt == rt && ps__views[i].v == v) {
            ps__views[i].rt = NULL;
            ps__views[i].v = NULL;
        }
    }
    pthread_mutex_unlock(&ps__views_mu);
}

bool gw_pubsub_stats(const sup_rt *rt, gw_pubsub_view *out)
{
    bool ok = false;
    pthread_mutex_lock(&ps__views_mu);
    for (size_t i = 0; i < 64 && !ok; i++) {
        if (ps__views[i].rt == rt && ps__views[i].v != NULL) {
            *out = *ps__views[i].v;
            ok = true;
        }
    }
    pthread_mutex_unlock(&ps__views_mu);
    return ok;
}

/* ---- outbound ---------------------------------------------------------------------------- */

static bool ps__obuf_grow(ps *s, size_t need)
{
    return sup_msgbuf_reserve(s->rt, &s->ob, need) == SUP_OK;
}

/* Sends the batch built in place to macula_gateway through the cached pid, without a copy (ob
 * is emptied); a dead pid (the gateway restarted) is looked up again and the send retried
 * once. On failure ob keeps its bytes. */
static int ps__gw_send_ob(ps *s, int tag)
{
    int rc = SUP_ENOPROC;
    if (!sup_pid_is_null(s->gw)) {
        rc = sup_msgbuf_send(s->rt, sup_self(s->self), s->gw, tag, &s->ob);
        if (rc != SUP_ENOPROC) {
            return rc;
        }
    }
    s->gw = sup_whereis(s->rt, "macula_gateway");
    if (sup_pid_is_null(s->gw)) {
        return SUP_ENOPROC;
    }
    return sup_msgbuf_send(s->rt, sup_self(s->self), s->gw, tag, &s->ob);
}

/* Closes the record being built (writes its header) into the batch. */
static void ps__fanout_close(ps *s)
{
    if (s->fan_n == 0) {
        return;
    }
    gw_ps_fanout_hdr h = {.n = s->fan_n, .frame_len = (uint32_t)s->fan_len};
    memcpy(s->ob.data + s->ob.len, &h, sizeof h);
    s->ob.len += sizeof h + s->fan_len + (size_t)s->fan_n * sizeof(uint64_t);
    s->fan_n = 0;
    s->fan_id = 0;
    s->fan_len = 0;
}

/* Sends the GW_PS_FANOUT batch being built in obuf (if any). */
static void ps__fanout_flush(ps *s)
{
    ps__fanout_close(s);
    if (s->ob.len == 0) {
        return;
    }
    if (ps__gw_send_ob(s, GW_PS_FANOUT) != 0) {
        /* count the deliveries lost with it */
        gw_ps_fanout_hdr h;
        for (size_t off = 0; off + sizeof h <= s->ob.len;) {
            memcpy(&h, s->ob.data + off, sizeof h);
            s->view.send_failed += h.n;
            off += sizeof h + h.frame_len + (size_t)h.n * sizeof(uint64_t);
        }
    }
    s->ob.len = 0; /* sent (and emptied), or dropped */
}

/* Adds conn to the fan-out of `frame` (the same frame_id as the previous call: appended to
 * its record; another: a new record in the batch, which is sent once it reaches
 * GW_PS_BATCH_MAX). The frame is copied at once, so it need not outlive the call. */
static void ps__send_conn(ps *s, uint64_t conn, const uint8_t *frame, size_t len, uint64_t id)
{
    size_t base = sizeof(gw_ps_fanout_hdr);
    if (s->fan_n > 0 && (id != s->fan_id || len != s->fan_len || s->fan_n == PS_FAN_MAX)) {
        ps__fanout_close(s);
        if (s->ob.len >= GW_PS_BATCH_MAX) {
            ps__fanout_flush(s);
        }
    }
    if (len > UINT32_MAX - base ||
        !ps__obuf_grow(s, s->ob.len + base + len + ((size_t)s->fan_n + 1) * sizeof conn)) {
        s->view.send_failed++;
        return;
    }
    uint8_t *rec = s->ob.data + s->ob.len;
    if (s->fan_n == 0) {
        memcpy(rec + base, frame, len);
        s->fan_id = id;
        s->fan_len = len;
    }
    memcpy(rec + base + len + (size_t)s->fan_n * sizeof conn, &conn, sizeof conn);
    s->fan_n++;
}

static void ps__send_node(ps *s, const uint8_t *id, const char *addr, const uint8_t *frame,
                          size_t len)
{
    if (gw_mesh_send(s->rt, sup_self(s->self), id, addr, frame, len) != 0) {
        s->view.send_failed++;
    }
}

static ps_call *ps__call_slot(ps *s)
{
    for (size_t i = 0; i < PS_CALLS_MAX; i++) {
        if (s->calls[i].kind == PS_C_FREE) {
            return &s->calls[i];
        }
    }
    return NULL;
}

static void ps__lookup(ps *s, const char *key, size_t klen)
{
    sup_pid rs = sup_whereis(s->rt, "macula_routing_server");
    ps_call *c = ps__call_slot(s);
    dht_id id;
    if (sup_pid_is_null(rs) || c == NULL ||
        dht_key(s->realm, strlen(s->realm), key, klen, &id) != DHT_OK) {
        s->view.lookups_failed++;
        (void)psc_lookup_done(s->core, key, klen, NULL, 0, false, sup_rt_now(s->rt));
        return;
    }
    c->key = malloc(klen);
    if (c->key == NULL) {
        (void)psc_lookup_done(s->core, key, klen, NULL, 0, false, sup_rt_now(s->rt));
        return;
    }
    memcpy(c->key, key, klen);
    c->key_len = klen;
    c->kind = PS_C_GET;
    c->ref = sup_call(s->self, rs, RS_GET, &id, sizeof id, PS_GET_TIMEOUT);
}

static void ps__advertise(ps *s, const char *key, size_t klen, const uint8_t *val, size_t vlen)
{
    sup_pid rs = sup_whereis(s->rt, "macula_routing_server");
    ps_call *c = ps__call_slot(s);
    rs_put_req req;
    memset(&req, 0, sizeof req);
    req.ttl_ms = s->cfg && s->cfg->index_ttl_ms ? s->cfg->index_ttl_ms : 300000u;
    uint8_t *buf = malloc(sizeof req + vlen);
    if (sup_pid_is_null(rs) || c == NULL || buf == NULL ||
        dht_key(s->realm, strlen(s->realm), key, klen, &req.key) != DHT_OK) {
        free(buf);
        s->view.advertise_failed++;
        return;
    }
    memcpy(buf, &req, sizeof req);
    memcpy(buf + sizeof req, val, vlen);
    c->kind = PS_C_PUT;
    c->ref = sup_call(s->self, rs, RS_PUT, buf, sizeof req + vlen, PS_GET_TIMEOUT);
    free(buf);
}

static void ps__rearm(ps *s)
{
    sup_deadline_set(s->self, &s->timer, psc_next_deadline(s->core), PS_TICK);
}

/* Carries out the core's queued actions (their frames go into the fan-out batch). */
static void ps__run_actions(ps *s)
{
    psc_action a;
    while (psc_next_action(s->core, &a)) {
        if (a.kind != PSC_ACT_SEND_CONN) {
            ps__fanout_flush(s);
        }
        switch (a.kind) {
        case PSC_ACT_SEND_CONN: ps__send_conn(s, a.conn, a.data, a.len, a.frame_id); break;
        case PSC_ACT_SEND_NODE: ps__send_node(s, a.node_id, a.addr, a.data, a.len); break;
        case PSC_ACT_LOOKUP: {
            /* psc_lookup_done may be called from inside (a failure): copy the key first. */
            char key[PSC_INDEX_VALUE_MAX + 8];
            size_t kl = a.key_len < sizeof key ? a.key_len : sizeof key;
            memcpy(key, a.key, kl);
            ps__lookup(s, key, kl);
            break;
        }
        case PSC_ACT_ADVERTISE: ps__advertise(s, a.key, a.key_len, a.data, a.len); break;
        }
    }
}

/* Carries out the core's actions, re-arms the timer, publishes the counters. */
static void ps__flush(ps *s)
{
    ps__run_actions(s);
    ps__fanout_flush(s);
    ps__rearm(s);
    psc_get_stats(s->core, &s->view.core);
}

/* ---- index answers ------------------------------------------------------------------------ */

/* Fills an unspecified host from the DHT contacts or the gateway's clients; false when
 * unknown. */
static bool ps__resolve(ps *s, psc_index_entry *e)
{
    char out[DHT_ADDR_MAX + 1];
    if (rs_fix_addr(e->addr, NULL, out)) {
        return true; /* a host is given */
    }
    const ps_host *h = hmap_get(&s->hosts, e->node_id, WIRE_NODE_ID_LEN);
    char seen[PSC_ADDR_MAX + 8];
    bool have = false;
    if (h != NULL) {
        snprintf(seen, sizeof seen, "%s:0", h->host);
        have = true;
    } else {
        const gwc *core = gw_reg_get(s->rt, GW_REG_GATEWAY);
        uint64_t conn;
        gwc_client_info ci;
        if (core != NULL && gwc_client_conn(core, e->node_id, &conn) == GWC_OK &&
            gwc_conn_info(core, conn, &ci) == GWC_OK && ci.remote && ci.remote[0]) {
            snprintf(seen, sizeof seen, "%s", ci.remote);
            have = true;
        }
    }
    if (!have || !rs_fix_addr(e->addr, seen, out) || strlen(out) >= PSC_ADDR_MAX) {
        return false;
    }
    snprintf(e->addr, sizeof e->addr, "%s", out);
    return true;
}

/* Parses an RS_GET reply into entries and hands them to the core. With `may_defer`, entries
 * whose host cannot be resolved yet keep the answer until the contacts are known. Returns
 * false when it was deferred. */
static bool ps__get_answer(ps *s, const char *key, size_t klen, const uint8_t *data, size_t len,
                           int status, bool may_defer)
{
    uint64_t now = sup_rt_now(s->rt);
    rs_get_rep rep;
    if (status != 0 || len < sizeof rep) {
        s->view.lookups_failed++;
        (void)psc_lookup_done(s->core, key, klen, NULL, 0, false, now);
        return true;
    }
    memcpy(&rep, data, sizeof rep);
    if (rep.status != 0) {
        if (rep.status != DHT_ENOTFOUND) {
            s->view.lookups_failed++;
        }
        (void)psc_lookup_done(s->core, key, klen, NULL, 0, rep.status == DHT_ENOTFOUND, now);
        return true;
    }
    psc_index_entry *es = calloc(rep.nvalues ? rep.nvalues : 1, sizeof *es);
    if (es == NULL) {
        (void)psc_lookup_done(s->core, key, klen, NULL, 0, false, now);
        return true;
    }
    size_t off = sizeof rep, n = 0;
    bool unresolved = false;
    for (uint32_t i = 0; i < rep.nvalues && off + sizeof(uint32_t) <= len; i++) {
        uint32_t l;
        memcpy(&l, data + off, sizeof l);
        off += sizeof l;
        if (l > len - off) {
            break;
        }
        if (psc_index_parse(data + off, l, &es[n]) == PSC_OK &&
            !(s->cfg && s->cfg->node_id &&
              memcmp(es[n].node_id, s->cfg->node_id, WIRE_NODE_ID_LEN) == 0)) {
            if (es[n].patterns_len == 0 || ps__resolve(s, &es[n])) {
                n++;
            } else if (!may_defer) {
                s->view.unresolved++;
            } else {
                unresolved = true;
            }
        }
        off += l;
    }
    if (unresolved && s->ndeferred < PS_DEFERRED_MAX) {
        ps_deferred *d = &s->deferred[s->ndeferred];
        d->key = malloc(klen);
        d->reply = malloc(len);
        if (d->key != NULL && d->reply != NULL) {
            memcpy(d->key, key, klen);
            memcpy(d->reply, data, len);
            d->key_len = klen;
            d->len = len;
            s->ndeferred++;
            free(es);
            sup_pid rs = sup_whereis(s->rt, "macula_routing_server");
            if (s->peers_ref == 0 && !sup_pid_is_null(rs)) {
                static const char req[] = "com.macula.dht.peers\0{}";
                s->peers_ref =
                    sup_call(s->self, rs, RS_JSON, req, sizeof req - 1, PS_PEERS_TIMEOUT);
            }
            return false;
        }
        free(d->key);
        free(d->reply);
    }
    (void)psc_lookup_done(s->core, key, klen, es, n, true, now);
    free(es);
    return true;
}

/* The contacts' addresses: node id -> host. Then the deferred answers go through. */
static void ps__peers_answer(ps *s, const sup_msg *m)
{
    s->peers_ref = 0;
    s->hosts_at = sup_rt_now(s->rt);
    rs_json_rep rep;
    if (m->status == 0 && m->len > sizeof rep) {
        memcpy(&rep, m->data, sizeof rep);
        json_error_t jerr;
        json_t *o = rep.rc == 0 ? json_loadb((const char *)m->data + sizeof rep,
                                             m->len - sizeof rep, 0, &jerr)
                                : NULL;
        size_t i;
        json_t *c;
        json_array_foreach(json_object_get(o, "contacts"), i, c)
        {
            const char *hex = json_string_value(json_object_get(c, "id"));
            const char *addr = json_string_value(json_object_get(c, "address"));
            uint8_t id[WIRE_NODE_ID_LEN];
            char host[DHT_ADDR_MAX + 1];
            if (hex == NULL || addr == NULL || strlen(hex) != (size_t)2 * WIRE_NODE_ID_LEN ||
                !rs_fix_addr(addr, NULL, host)) {
                continue;
            }
            bool ok = true;
            for (size_t b = 0; b < WIRE_NODE_ID_LEN && ok; b++) {
                char two[3] = {hex[2 * b], hex[2 * b + 1], '\0'};
                char *end = NULL;
                unsigned long v = strtoul(two, &end, 16);
                ok = end == two + 2;
                id[b] = (uint8_t)v;
            }
            if (!ok) {
                continue;
            }
            /* keep the host part only */
            char *colon = strrchr(host, ':');
            if (colon != NULL) {
                *colon = '\0';
            }
            ps_host *h = hmap_get(&s->hosts, id, sizeof id);
            if (h == NULL && s->hosts.count < 65536 && (h = calloc(1, sizeof *h)) != NULL) {
                memcpy(h->id, id, sizeof id);
                if (hmap_put(&s->hosts, h->id, sizeof h->id, h, NULL) != HMAP_OK) {
                    free(h);
                    h = NULL;
                }
            }
            if (h != NULL) {
                snprintf(h->host, sizeof h->host, "%s", host);
            }
        }
        json_decref(o);
    }
    size_t n = s->ndeferred;
    s->ndeferred = 0;
    for (size_t i = 0; i < n; i++) {
        ps_deferred d = s->deferred[i];
        (void)ps__get_answer(s, d.key, d.key_len, d.reply, d.len, 0, false);
        free(d.key);
        free(d.reply);
    }
}

static void ps__reply(ps *s, const sup_msg *m)
{
    if (m->ref == s->peers_ref && s->peers_ref != 0) {
        ps__peers_answer(s, m);
        return;
    }
    for (size_t i = 0; i < PS_CALLS_MAX; i++) {
        ps_call *c = &s->calls[i];
        if (c->kind == PS_C_FREE || c->ref != m->ref) {
            continue;
        }
        if (c->kind == PS_C_GET) {
            char *key = c->key;
            size_t kl = c->key_len;
            c->kind = PS_C_FREE;
            c->key = NULL;
            (void)ps__get_answer(s, key, kl, m->data, m->len, m->status, true);
            free(key);
        } else {
            rs_put_rep rep;
            if (m->status != 0 || m->len < sizeof rep ||
                (memcpy(&rep, m->data, sizeof rep), rep.status != 0 && rep.stored == 0)) {
                s->view.advertise_failed++;
            }
            c->kind = PS_C_FREE;
        }
        return;
    }
}

/* ---- inbound frames ----------------------------------------------------------------------- */

static void ps__ledger(ps *s, uint64_t conn, bool add, uint8_t qos, const uint8_t *pat, size_t len)
{
    sup_pid gw = sup_whereis(s->rt, "macula_gateway");
    uint8_t buf[sizeof(gw_ps_ledger) + TOPIC_MAX_LEN];
    if (sup_pid_is_null(gw) || len > TOPIC_MAX_LEN) {
        return;
    }
    gw_ps_ledger l = {.conn = conn, .add = add ? 1 : 0, .qos = qos};
    memcpy(buf, &l, sizeof l);
    memcpy(buf + sizeof l, pat, len);
    (void)sup_cast(s->rt, sup_self(s->self), gw, GW_PS_LEDGER, buf, sizeof l + len);
}

static void ps__frame(ps *s, const sup_msg *m)
{
    gw_ps_frame_hdr h;
    if (m->len <= sizeof h) {
        return;
    }
    memcpy(&h, m->data, sizeof h);
    wire_msg w;
    size_t used = 0;
    if (wire_decode((const uint8_t *)m->data + sizeof h, m->len - sizeof h, NULL, &w, &used) !=
        WIRE_OK) {
        s->view.frames_invalid++;
        return;
    }
    uint64_t now = sup_rt_now(s->rt);
    switch (w.type) {
    case WIRE_SUBSCRIBE:
    case WIRE_UNSUBSCRIBE: {
        bool sub = w.type == WIRE_SUBSCRIBE;
        wire_list_iter it = wire_bytes_list_iter(sub ? &w.subscribe.topics : &w.unsubscribe.topics);
        wire_bytes t;
        uint8_t qos = sub && w.subscribe.qos > 0 ? 1 : 0;
        while (wire_bytes_list_next(&it, &t)) {
            int rc = sub ? psc_subscribe(s->core, h.conn, (const char *)t.p, t.len, qos, now)
                         : psc_unsubscribe(s->core, h.conn, (const char *)t.p, t.len, now);
            if (rc == PSC_OK || (sub && rc == PSC_EEXIST)) {
                ps__ledger(s, h.conn, sub, qos, t.p, t.len);
            }
        }
        break;
    }
    case WIRE_PUBLISH: (void)psc_publish(s->core, h.conn, &w.publish, now); break;
    case WIRE_PUBACK:
        (void)psc_puback(s->core, h.conn, w.puback.message_id.p, w.puback.message_id.len);
        break;
    case WIRE_PUBSUB_ROUTE:
        (void)psc_route_in(s->core, h.conn, h.node_id, &w.pubsub_route, now);
        break;
    default: s->view.frames_invalid++; break;
    }
}

/* Rebuilds a wire_bytes from GW_PS_PUBLISH's place in the payload; false when out of range. */
static bool ps__pub_field(const uint8_t *pl, size_t plen, uint32_t off, uint32_t len,
                          wire_bytes *out)
{
    if (off == GW_PS_ABSENT) {
        *out = (wire_bytes){NULL, 0};
        return len == 0;
    }
    if (off > plen || len > plen - off) {
        return false;
    }
    *out = (wire_bytes){pl + off, len};
    return true;
}

static void ps__publish(ps *s, const sup_msg *m)
{
    const uint8_t *p = m->data;
    uint64_t now = sup_rt_now(s->rt);
    gw_ps_pub pp;
    size_t n = 0;
    for (size_t off = 0; off < m->len;) {
        if (m->len - off < sizeof pp) {
            s->view.frames_invalid++;
            return;
        }
        memcpy(&pp, p + off, sizeof pp);
        off += sizeof pp;
        if (pp.len > m->len - off) {
            s->view.frames_invalid++;
            return;
        }
        const uint8_t *pl = p + off;
        off += pp.len;
        wire_publish pub = {.qos = pp.qos, .retain = pp.retain != 0};
        if (!ps__pub_field(pl, pp.len, pp.topic_off, pp.topic_len, &pub.topic) ||
            !ps__pub_field(pl, pp.len, pp.payload_off, pp.payload_len, &pub.payload) ||
            !ps__pub_field(pl, pp.len, pp.mid_off, pp.mid_len, &pub.message_id)) {
            s->view.frames_invalid++;
            continue;
        }
        (void)psc_publish(s->core, pp.conn, &pub, now);
        if (++n % PS_ACTIONS_EVERY == 0) {
            ps__run_actions(s);
        }
    }
}

static void ps__node_frame(ps *s, const sup_msg *m)
{
    gw_ps_node_hdr h;
    if (m->len <= sizeof h) {
        return;
    }
    memcpy(&h, m->data, sizeof h);
    wire_msg w;
    size_t used = 0;
    if (wire_decode((const uint8_t *)m->data + sizeof h, m->len - sizeof h, NULL, &w, &used) !=
            WIRE_OK ||
        w.type != WIRE_PUBACK) {
        s->view.frames_invalid++;
        return;
    }
    (void)psc_node_puback(s->core, h.node_id, w.puback.message_id.p, w.puback.message_id.len);
}

static void ps__resub(ps *s, const sup_msg *m)
{
    gw_ps_ledger l;
    if (m->len <= sizeof l) {
        return;
    }
    memcpy(&l, m->data, sizeof l);
    (void)psc_subscribe(s->core, l.conn, (const char *)m->data + sizeof l, m->len - sizeof l, l.qos,
                        sup_rt_now(s->rt));
}

/* ---- the actor ---------------------------------------------------------------------------- */

static int ps__init(sup_actor *self, void *state, void *arg)
{
    ps *s = state;
    s->rt = sup_self_rt(self);
    s->self = self;
    s->cfg = arg;
    const gw_pubsub_config *cfg = s->cfg;
    snprintf(s->realm, sizeof s->realm, "%s", cfg && cfg->realm ? cfg->realm : "macula.default");
    psc_config pc;
    psc_config_default(&pc);
    if (cfg != NULL) {
        if (cfg->node_id != NULL) {
            memcpy(pc.node_id, cfg->node_id, PSC_ID_LEN);
        }
        if (cfg->max_subs_per_client) {
            pc.max_subs_per_conn = cfg->max_subs_per_client;
        }
        if (cfg->cache_ms) {
            pc.cache_ms = cfg->cache_ms;
        }
        if (cfg->outbox != NULL) {
            pc.outbox = *cfg->outbox;
        }
    }
    uint16_t port = cfg ? cfg->port : 0;
    gw_quic_stats qs;
    if (port == 0 && gw_quic_server_stats(s->rt, &qs)) {
        port = qs.port;
    }
    const char *host = cfg && cfg->advertise_host ? cfg->advertise_host : "0.0.0.0";
    snprintf(pc.addr, sizeof pc.addr, strchr(host, ':') ? "[%s]:%u" : "%s:%u", host,
             (unsigned)port);
    int rc = psc_new(&pc, sup_rt_now(s->rt), &s->core);
    if (rc != PSC_OK) {
        char text[SUP_REASON_TEXT_MAX];
        snprintf(text, sizeof text, "{pubsub_config,%s}", psc_strerror(rc));
        sup_reason r = sup_reason_error(text);
        sup_stop(self, &r);
        return -1;
    }
    sup_register(s->rt, "macula_gateway_pubsub", sup_self(self));
    psc_get_stats(s->core, &s->view.core);
    ps__view_set(s->rt, &s->view);
    /* A restart: the gateway's ledger gives the subscriptions back. */
    sup_pid gw = sup_whereis(s->rt, "macula_gateway");
    if (!sup_pid_is_null(gw)) {
        (void)sup_cast(s->rt, sup_self(self), gw, GW_PS_SYNC, NULL, 0);
    }
    return 0;
}

static void ps__terminate(sup_actor *self, void *state, const sup_reason *reason)
{
    (void)self;
    (void)reason;
    ps *s = state;
    ps__view_clear(s->rt, &s->view);
    psc_free(s->core);
    s->core = NULL;
    for (size_t i = 0; i < PS_CALLS_MAX; i++) {
        free(s->calls[i].key);
        s->calls[i].key = NULL;
    }
    for (size_t i = 0; i < s->ndeferred; i++) {
        free(s->deferred[i].key);
        free(s->deferred[i].reply);
    }
    size_t it = 0;
    const hmap_slot *sl;
    while ((sl = hmap_next(&s->hosts, &it)) != NULL) {
        free(sl->val);
    }
    hmap_free(&s->hosts);
    sup_msgbuf_free(s->rt, &s->ob);
}

static void ps__info(sup_actor *self, void *state, const sup_msg *m)
{
    ps *s = state;
    s->self = self;
    uint64_t now = sup_rt_now(s->rt);
    switch (m->kind) {
    case SUP_MSG_INFO:
        if (m->tag == GW_PS_PUBLISH) {
            ps__publish(s, m);
        } else if (m->tag == GW_PS_FRAME) {
            ps__frame(s, m);
        } else if (m->tag == GW_PS_CONN_DOWN && m->len == sizeof(uint64_t)) {
            uint64_t conn;
            memcpy(&conn, m->data, sizeof conn);
            psc_conn_down(s->core, conn, now);
        } else if (m->tag == GW_PS_RESUB) {
            ps__resub(s, m);
        } else if (m->tag == GW_PS_NODE_FRAME) {
            ps__node_frame(s, m);
        }
        break;
    case SUP_MSG_TIMER:
        if (sup_deadline_fired(&s->timer, m)) {
            (void)psc_tick(s->core, now);
        }
        break;
    case SUP_MSG_REPLY: ps__reply(s, m); break;
    default: break;
    }
    ps__flush(s);
}

static void ps__call(sup_actor *self, void *state, const sup_msg *m)
{
    ps *s = state;
    s->self = self;
    if (m->tag == GW_PS_STATS) {
        psc_get_stats(s->core, &s->view.core);
        sup_reply(s->rt, sup_msg_from(m), &s->view, sizeof s->view);
    } else {
        sup_reply(s->rt, sup_msg_from(m), NULL, 0);
    }
}

static const sup_behaviour ps_behaviour = {
    .name = "gateway_pubsub",
    .state_size = sizeof(ps),
    .init = ps__init,
    .handle_call = ps__call,
    .handle_info = ps__info,
    .terminate = ps__terminate,
};

int gw_pubsub_start(sup_rt *rt, sup_pid parent, void *arg, void *extra, sup_pid *out,
                    sup_reason *why)
{
    (void)extra;
    return sup_spawn(rt, parent, &ps_behaviour, arg, SUP_SPAWN_LINK, out, why);
}
