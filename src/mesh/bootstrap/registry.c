/* src/mesh/bootstrap/registry.c — macula_bootstrap_registry (see bootstrap.h). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bootstrap.h"
#include "mesh/routing_server.h"

#define BS_FWD_MAX 64          /* key/value calls in flight */
#define BS_FWD_TIMEOUT 40000   /* ms, as the gateway's DHT calls */
#define BS_DEFAULT_TTL 300000u /* ms */

enum { BS_SWEEP_TICK = 1 };

typedef struct bs_fwd {
    uint64_t ref; /* 0: free */
    sup_from from;
} bs_fwd;

typedef struct bs_registry {
    sup_rt *rt;
    sup_actor *self;
    const bs_config *cfg;
    bs_service_info *svc; /* malloc'd, nsvc used */
    uint32_t nsvc, cap, max;
    uint32_t sweep_ms;
    bs_fwd fwd[BS_FWD_MAX];
    bs_registry_view view;
} bs_registry;

static bool bs_reg__same(const bs_service *a, const char *kind, const char *name,
                         const uint8_t *node_id)
{
    return strcmp(a->kind, kind) == 0 && strcmp(a->name, name) == 0 &&
           (node_id == NULL || memcmp(a->node_id, node_id, DHT_ID_LEN) == 0);
}

static void bs_reg__count(bs_registry *r)
{
    r->view.services = r->nsvc;
    r->view.unhealthy = 0;
    for (uint32_t i = 0; i < r->nsvc; i++) {
        r->view.unhealthy += r->svc[i].healthy ? 0u : 1u;
    }
}

static void bs_reg__remove(bs_registry *r, uint32_t i)
{
    r->svc[i] = r->svc[--r->nsvc];
}

static uint32_t bs_reg__sweep(bs_registry *r)
{
    uint64_t now = sup_rt_now(r->rt);
    uint32_t removed = 0;
    for (uint32_t i = 0; i < r->nsvc;) {
        if (r->svc[i].expires_ms <= now) {
            bs_reg__remove(r, i);
            removed++;
        } else {
            i++;
        }
    }
    r->view.expired += removed;
    r->view.sweeps++;
    bs_reg__count(r);
    return removed;
}

/* Puts the advertisement in the DHT too ("KIND:NAME" -> "NODE_ID_HEX ADDRESS"); the routing
 * server's answer is not awaited (the registry entry is what this node serves from). */
static void bs_reg__publish(bs_registry *r, const bs_service *s, uint64_t ttl)
{
    sup_pid rs = sup_whereis(r->rt, "macula_routing_server");
    char name[BS_KIND_MAX + BS_NAME_MAX + 2];
    int n = snprintf(name, sizeof name, "%s:%s", s->kind, s->name);
    rs_put_req req = {.ttl_ms = ttl};
    if (sup_pid_is_null(rs) || n < 0 ||
        dht_key(r->cfg->realm, strlen(r->cfg->realm), name, (size_t)n, &req.key) != DHT_OK) {
        return;
    }
    uint8_t buf[sizeof req + (size_t)2 * DHT_ID_LEN + 1 + DHT_ADDR_MAX + 1];
    char hex[2 * DHT_ID_LEN + 1];
    dht_id id;
    memcpy(id.b, s->node_id, DHT_ID_LEN);
    dht_id_hex(&id, hex);
    memcpy(buf, &req, sizeof req);
    int vl = snprintf((char *)buf + sizeof req, sizeof buf - sizeof req, "%s %s", hex, s->addr);
    if (vl > 0) {
        (void)sup_call(r->self, rs, RS_PUT, buf, sizeof req + (size_t)vl, BS_FWD_TIMEOUT);
    }
}

static void bs_reg__advertise(bs_registry *r, const sup_msg *m)
{
    int status = DHT_EINVAL;
    bs_service s;
    if (m->len == sizeof s) {
        memcpy(&s, m->data, sizeof s);
        s.kind[BS_KIND_MAX - 1] = '\0';
        s.name[BS_NAME_MAX - 1] = '\0';
        s.addr[DHT_ADDR_MAX] = '\0';
        uint64_t ttl = s.ttl_ms ? s.ttl_ms : BS_DEFAULT_TTL;
        uint64_t now = sup_rt_now(r->rt);
        bs_service_info *e = NULL;
        for (uint32_t i = 0; i < r->nsvc && e == NULL; i++) {
            e = bs_reg__same(&r->svc[i].svc, s.kind, s.name, s.node_id) ? &r->svc[i] : NULL;
        }
        if (e == NULL && r->nsvc < r->max) {
            if (r->nsvc == r->cap) {
                uint32_t ncap = r->cap ? r->cap * 2 : 16;
                bs_service_info *nv = realloc(r->svc, ncap * sizeof *nv);
                if (nv != NULL) {
                    r->svc = nv;
                    r->cap = ncap;
                }
            }
            if (r->nsvc < r->cap) {
                e = &r->svc[r->nsvc++];
                memset(e, 0, sizeof *e);
            }
        }
        if (s.kind[0] == '\0' || s.name[0] == '\0') {
            e = NULL;
        }
        if (e != NULL) {
            e->svc = s;
            e->expires_ms = now + ttl;
            e->healthy = true;
            e->failed_checks = 0;
            r->view.advertised++;
            bs_reg__publish(r, &s, ttl);
            status = 0;
        } else {
            status = s.kind[0] == '\0' || s.name[0] == '\0' ? DHT_EINVAL : DHT_EBUSY;
        }
    }
    bs_reg__count(r);
    sup_reply(r->rt, sup_msg_from(m), &status, sizeof status);
}

static void bs_reg__withdraw(bs_registry *r, const sup_msg *m)
{
    int status = DHT_ENOTFOUND;
    bs_service s;
    if (m->len == sizeof s) {
        memcpy(&s, m->data, sizeof s);
        s.kind[BS_KIND_MAX - 1] = '\0';
        s.name[BS_NAME_MAX - 1] = '\0';
        for (uint32_t i = 0; i < r->nsvc; i++) {
            if (bs_reg__same(&r->svc[i].svc, s.kind, s.name, s.node_id)) {
                bs_reg__remove(r, i);
                r->view.withdrawn++;
                status = 0;
                break;
            }
        }
    }
    bs_reg__count(r);
    sup_reply(r->rt, sup_msg_from(m), &status, sizeof status);
}

/* LOOKUP (kind + name) or LIST (everything): live entries as an array of bs_service_info. */
static void bs_reg__list(bs_registry *r, const sup_msg *m, bool all)
{
    bs_service q;
    memset(&q, 0, sizeof q);
    if (!all && m->len == sizeof q) {
        memcpy(&q, m->data, sizeof q);
        q.kind[BS_KIND_MAX - 1] = '\0';
        q.name[BS_NAME_MAX - 1] = '\0';
    }
    uint64_t now = sup_rt_now(r->rt);
    bs_service_info *out = malloc((r->nsvc ? r->nsvc : 1) * sizeof *out);
    uint32_t n = 0;
    for (uint32_t i = 0; out != NULL && i < r->nsvc; i++) {
        if (r->svc[i].expires_ms > now &&
            (all || bs_reg__same(&r->svc[i].svc, q.kind, q.name, NULL))) {
            out[n++] = r->svc[i];
        }
    }
    sup_reply(r->rt, sup_msg_from(m), out, n * sizeof *out);
    free(out);
}

static void bs_reg__mark(bs_registry *r, const sup_msg *m)
{
    bs_mark k;
    if (m->len != sizeof k) {
        return;
    }
    memcpy(&k, m->data, sizeof k);
    k.kind[BS_KIND_MAX - 1] = '\0';
    k.name[BS_NAME_MAX - 1] = '\0';
    for (uint32_t i = 0; i < r->nsvc; i++) {
        if (bs_reg__same(&r->svc[i].svc, k.kind, k.name, k.node_id)) {
            r->svc[i].healthy = k.healthy;
            r->svc[i].failed_checks = k.healthy ? 0 : r->svc[i].failed_checks + 1;
        }
    }
    bs_reg__count(r);
}

/* BS_KV_PUT / BS_KV_GET: the name is scoped to the realm, the routing server does the rest and
 * its answer is handed back as it is. */
static void bs_reg__kv(bs_registry *r, const sup_msg *m)
{
    sup_from from = sup_msg_from(m);
    bs_fwd *f = NULL;
    for (size_t i = 0; i < BS_FWD_MAX && f == NULL; i++) {
        f = r->fwd[i].ref == 0 ? &r->fwd[i] : NULL;
    }
    const uint8_t *name = m->data, *value = NULL;
    size_t name_len = m->len, value_len = 0;
    rs_put_req req = {0};
    bool ok = f != NULL && m->data != NULL;
    if (ok && m->tag == BS_KV_PUT) {
        bs_kv_put_req h;
        ok = m->len >= sizeof h;
        if (ok) {
            memcpy(&h, m->data, sizeof h);
            ok = h.name_len > 0 && h.name_len <= m->len - sizeof h;
            name = (const uint8_t *)m->data + sizeof h;
            name_len = h.name_len;
            value = name + name_len;
            value_len = ok ? m->len - sizeof h - name_len : 0;
            req.ttl_ms = h.ttl_ms;
        }
    }
    ok = ok && name_len > 0 &&
         dht_key(r->cfg->realm, strlen(r->cfg->realm), name, name_len, &req.key) == DHT_OK;
    sup_pid rs = sup_whereis(r->rt, "macula_routing_server");
    if (!ok || sup_pid_is_null(rs)) {
        rs_get_rep rep = {.status = !ok ? (f == NULL ? DHT_EBUSY : DHT_EINVAL) : DHT_EPROTO};
        sup_reply(r->rt, from, &rep, sizeof rep); /* rs_put_rep starts the same way */
        return;
    }
    if (m->tag == BS_KV_PUT) {
        uint8_t *buf = malloc(sizeof req + value_len);
        if (buf == NULL) {
            rs_put_rep rep = {.status = DHT_ENOMEM};
            sup_reply(r->rt, from, &rep, sizeof rep);
            return;
        }
        memcpy(buf, &req, sizeof req);
        if (value_len > 0) {
            memcpy(buf + sizeof req, value, value_len);
        }
        f->ref = sup_call(r->self, rs, RS_PUT, buf, sizeof req + value_len, BS_FWD_TIMEOUT);
        free(buf);
        r->view.kv_puts++;
    } else {
        f->ref = sup_call(r->self, rs, RS_GET, &req.key, sizeof req.key, BS_FWD_TIMEOUT);
        r->view.kv_gets++;
    }
    f->from = from;
}

static void bs_reg__arm(bs_registry *r)
{
    (void)sup_send_after(r->self, r->sweep_ms, BS_SWEEP_TICK, NULL, 0);
}

static int bs_reg__init(sup_actor *self, void *state, void *arg)
{
    bs_registry *r = state;
    r->rt = sup_self_rt(self);
    r->self = self;
    r->cfg = arg;
    r->max = r->cfg->max_services ? r->cfg->max_services : 4096;
    r->sweep_ms = r->cfg->sweep_ms ? r->cfg->sweep_ms : 60000;
    sup_register(r->rt, "macula_bootstrap_registry", sup_self(self));
    rs_slot_set(r->rt, RS_SLOT_BS_REGISTRY, &r->view);
    bs_reg__arm(r);
    return 0;
}

static void bs_reg__terminate(sup_actor *self, void *state, const sup_reason *reason)
{
    (void)self;
    (void)reason;
    bs_registry *r = state;
    rs_slot_clear(r->rt, RS_SLOT_BS_REGISTRY, &r->view);
    free(r->svc);
    r->svc = NULL;
}

static void bs_reg__call(sup_actor *self, void *state, const sup_msg *m)
{
    bs_registry *r = state;
    r->self = self;
    switch (m->tag) {
    case BS_REG_ADVERTISE: bs_reg__advertise(r, m); break;
    case BS_REG_WITHDRAW: bs_reg__withdraw(r, m); break;
    case BS_REG_LOOKUP: bs_reg__list(r, m, false); break;
    case BS_REG_LIST: bs_reg__list(r, m, true); break;
    case BS_KV_PUT:
    case BS_KV_GET: bs_reg__kv(r, m); break;
    case BS_REG_SWEEP: {
        uint32_t n = bs_reg__sweep(r);
        sup_reply(r->rt, sup_msg_from(m), &n, sizeof n);
        break;
    }
    default: sup_reply(r->rt, sup_msg_from(m), NULL, 0); break;
    }
}

static void bs_reg__cast(sup_actor *self, void *state, const sup_msg *m)
{
    bs_registry *r = state;
    r->self = self;
    if (m->tag == BS_REG_MARK) {
        bs_reg__mark(r, m);
    }
}

static void bs_reg__info(sup_actor *self, void *state, const sup_msg *m)
{
    bs_registry *r = state;
    r->self = self;
    if (m->kind == SUP_MSG_TIMER && m->tag == BS_SWEEP_TICK) {
        (void)bs_reg__sweep(r);
        bs_reg__arm(r);
    } else if (m->kind == SUP_MSG_REPLY) {
        for (size_t i = 0; i < BS_FWD_MAX; i++) {
            if (r->fwd[i].ref != 0 && r->fwd[i].ref == m->ref) {
                r->fwd[i].ref = 0;
                if (m->status == 0) {
                    sup_reply(r->rt, r->fwd[i].from, m->data, m->len);
                } else {
                    rs_get_rep rep = {.status = DHT_ETIMEDOUT};
                    sup_reply(r->rt, r->fwd[i].from, &rep, sizeof rep);
                }
                break;
            }
        }
    }
}

static const sup_behaviour bs_registry_behaviour = {
    .name = "bootstrap_registry",
    .state_size = sizeof(bs_registry),
    .init = bs_reg__init,
    .handle_call = bs_reg__call,
    .handle_cast = bs_reg__cast,
    .handle_info = bs_reg__info,
    .terminate = bs_reg__terminate,
};

int bs_registry_start(sup_rt *rt, sup_pid parent, void *arg, void *extra, sup_pid *out,
                      sup_reason *why)
{
    (void)extra;
    return sup_spawn(rt, parent, &bs_registry_behaviour, arg, SUP_SPAWN_LINK, out, why);
}
