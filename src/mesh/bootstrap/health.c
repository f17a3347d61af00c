/* src/mesh/bootstrap/health.c — macula_bootstrap_health, and the /metrics and /health output
 * of the routing server and the bootstrap workers (see bootstrap.h). */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/textbuf.h"
#include "bootstrap.h"
#include "mesh/routing_server.h"

#define BS_PINGS_MAX 64       /* service nodes checked per round */
#define BS_PING_TIMEOUT 15000 /* ms: a QUIC handshake plus the DHT's query timeout */

enum { BS_HEALTH_TICK = 1 };

typedef struct bs_ping {
    uint64_t ref; /* 0: free */
    bs_mark mark;
} bs_ping;

typedef struct bs_health {
    sup_rt *rt;
    sup_actor *self;
    const bs_config *cfg;
    uint32_t interval;
    uint64_t list_ref;
    bs_ping pings[BS_PINGS_MAX];
    bs_health_view view;
} bs_health;

static void bs_health__round(bs_health *h)
{
    rs_view rv;
    h->view.checks++;
    h->view.last_check_ms = sup_rt_now(h->rt);
    h->view.routing_ok = rs_view_get(h->rt, &rv);
    h->view.contacts = h->view.routing_ok ? rv.contacts : 0;
    const bs_server_view *sv = rs_slot_get(h->rt, RS_SLOT_BS_SERVER);
    h->view.peers_joined = h->view.peers_unreachable = 0;
    for (uint32_t i = 0; sv != NULL && i < sv->npeers; i++) {
        h->view.peers_joined += sv->peers[i].state == BS_PEER_JOINED ? 1u : 0u;
        h->view.peers_unreachable += sv->peers[i].state == BS_PEER_UNREACHABLE ? 1u : 0u;
    }
    sup_pid reg = sup_whereis(h->rt, "macula_bootstrap_registry");
    h->view.registry_ok = !sup_pid_is_null(reg);
    if (h->view.registry_ok && h->list_ref == 0) {
        h->list_ref = sup_call(h->self, reg, BS_REG_LIST, NULL, 0, 5000);
    }
}

/* The registry's services: our own follow the routing server; others' nodes are pinged. */
static void bs_health__services(bs_health *h, const sup_msg *m)
{
    h->list_ref = 0;
    if (m->status != 0) {
        return;
    }
    const bs_service_info *v = m->data;
    size_t n = m->len / sizeof *v;
    sup_pid rs = sup_whereis(h->rt, "macula_routing_server");
    sup_pid reg = sup_whereis(h->rt, "macula_bootstrap_registry");
    for (size_t i = 0; i < n; i++) {
        bs_service_info si;
        memcpy(&si, &v[i], sizeof si);
        bs_mark mark;
        memset(&mark, 0, sizeof mark);
        memcpy(mark.kind, si.svc.kind, sizeof mark.kind);
        memcpy(mark.name, si.svc.name, sizeof mark.name);
        memcpy(mark.node_id, si.svc.node_id, DHT_ID_LEN);
        bool own =
            h->cfg->node_id != NULL && memcmp(si.svc.node_id, h->cfg->node_id, DHT_ID_LEN) == 0;
        if (own || si.svc.addr[0] == '\0' || sup_pid_is_null(rs)) {
            mark.healthy = h->view.routing_ok || own;
            (void)sup_cast(h->rt, sup_self(h->self), reg, BS_REG_MARK, &mark, sizeof mark);
            continue;
        }
        bs_ping *slot = NULL;
        for (size_t k = 0; k < BS_PINGS_MAX && slot == NULL; k++) {
            slot = h->pings[k].ref == 0 ? &h->pings[k] : NULL;
        }
        if (slot == NULL) {
            break; /* the rest waits for the next round */
        }
        rs_ping_req req;
        memset(&req, 0, sizeof req);
        memcpy(req.id.b, si.svc.node_id, DHT_ID_LEN);
        memcpy(req.addr, si.svc.addr, sizeof req.addr);
        slot->mark = mark;
        slot->ref = sup_call(h->self, rs, RS_PING, &req, sizeof req, BS_PING_TIMEOUT);
        h->view.pings++;
    }
}

static void bs_health__pinged(bs_health *h, bs_ping *p, const sup_msg *m)
{
    int st = -1;
    if (m->status == 0 && m->len == sizeof st) {
        memcpy(&st, m->data, sizeof st);
    }
    p->mark.healthy = st == 0;
    h->view.pings_failed += st == 0 ? 0u : 1u;
    sup_pid reg = sup_whereis(h->rt, "macula_bootstrap_registry");
    (void)sup_cast(h->rt, sup_self(h->self), reg, BS_REG_MARK, &p->mark, sizeof p->mark);
    p->ref = 0;
}

static int bs_health__init(sup_actor *self, void *state, void *arg)
{
    bs_health *h = state;
    h->rt = sup_self_rt(self);
    h->self = self;
    h->cfg = arg;
    h->interval = h->cfg->health_interval_ms ? h->cfg->health_interval_ms : 60000;
    sup_register(h->rt, "macula_bootstrap_health", sup_self(self));
    rs_slot_set(h->rt, RS_SLOT_BS_HEALTH, &h->view);
    (void)sup_send_after(self, h->interval, BS_HEALTH_TICK, NULL, 0);
    return 0;
}

static void bs_health__terminate(sup_actor *self, void *state, const sup_reason *reason)
{
    (void)self;
    (void)reason;
    bs_health *h = state;
    rs_slot_clear(h->rt, RS_SLOT_BS_HEALTH, &h->view);
}

static void bs_health__info(sup_actor *self, void *state, const sup_msg *m)
{
    bs_health *h = state;
    h->self = self;
    if (m->kind == SUP_MSG_TIMER && m->tag == BS_HEALTH_TICK) {
        bs_health__round(h);
        (void)sup_send_after(self, h->interval, BS_HEALTH_TICK, NULL, 0);
    } else if (m->kind == SUP_MSG_REPLY && m->ref == h->list_ref) {
        bs_health__services(h, m);
    } else if (m->kind == SUP_MSG_REPLY) {
        for (size_t i = 0; i < BS_PINGS_MAX; i++) {
            if (h->pings[i].ref != 0 && h->pings[i].ref == m->ref) {
                bs_health__pinged(h, &h->pings[i], m);
                break;
            }
        }
    }
}

static void bs_health__call(sup_actor *self, void *state, const sup_msg *m)
{
    bs_health *h = state;
    h->self = self;
    if (m->tag == BS_HEALTH_CHECK) {
        bs_health__round(h);
    }
    sup_reply(h->rt, sup_msg_from(m), &h->view, sizeof h->view);
}

static const sup_behaviour bs_health_behaviour = {
    .name = "bootstrap_health",
    .state_size = sizeof(bs_health),
    .init = bs_health__init,
    .handle_call = bs_health__call,
    .handle_info = bs_health__info,
    .terminate = bs_health__terminate,
};

int bs_health_start(sup_rt *rt, sup_pid parent, void *arg, void *extra, sup_pid *out,
                    sup_reason *why)
{
    (void)extra;
    return sup_spawn(rt, parent, &bs_health_behaviour, arg, SUP_SPAWN_LINK, out, why);
}

/* ---- /metrics and /health ------------------------------------------------------------------ */

static void bs_metric(textbuf *b, const char *name, const char *type, const char *help, uint64_t v)
{
    textbuf_printf(b, "# HELP %s %s\n# TYPE %s %s\n%s %llu\n", name, help, name, type, name,
                   (unsigned long long)v);
}

char *bootstrap_metrics_prometheus(sup_rt *rt)
{
    rs_view rv;
    const bs_server_view *sv = rs_slot_get(rt, RS_SLOT_BS_SERVER);
    const bs_registry_view *reg = rs_slot_get(rt, RS_SLOT_BS_REGISTRY);
    const bs_health_view *hv = rs_slot_get(rt, RS_SLOT_BS_HEALTH);
    bool routing = rs_view_get(rt, &rv);
    if (!routing && sv == NULL && reg == NULL && hv == NULL) {
        return NULL;
    }
    textbuf b = {0};
    if (routing) {
        bs_metric(&b, "macula_dht_contacts", "gauge", "Contacts in the routing table.",
                  rv.contacts);
        bs_metric(&b, "macula_dht_stored_keys", "gauge", "Keys held for other nodes.",
                  rv.dht.stored_keys);
        bs_metric(&b, "macula_dht_stored_values", "gauge", "Values held for other nodes.",
                  rv.dht.stored_values);
        bs_metric(&b, "macula_dht_lookups", "gauge", "Lookups running.", rv.dht.lookups);
        bs_metric(&b, "macula_dht_pending_requests", "gauge", "DHT requests in flight.",
                  rv.dht.pending);
        bs_metric(&b, "macula_dht_messages_sent_total", "counter",
                  "DHT messages queued by the core.", rv.dht.sent);
        bs_metric(&b, "macula_dht_messages_received_total", "counter",
                  "DHT messages accepted by the core.", rv.dht.received);
        bs_metric(&b, "macula_dht_timeouts_total", "counter", "DHT requests that timed out.",
                  rv.dht.timeouts);
        bs_metric(&b, "macula_dht_evictions_total", "counter", "Contacts removed from the table.",
                  rv.dht.evictions);
        bs_metric(&b, "macula_dht_store_refused_total", "counter", "STOREs refused (bounds).",
                  rv.dht.refused);
        bs_metric(&b, "macula_dht_expired_total", "counter", "Stored values dropped at their TTL.",
                  rv.dht.expired);
        bs_metric(&b, "macula_dht_republished_total", "counter", "Republish rounds.",
                  rv.dht.republished);
        bs_metric(&b, "macula_dht_refreshes_total", "counter", "Bucket refresh lookups.",
                  rv.dht.refreshes);
        bs_metric(&b, "macula_dht_refused_sender_total", "counter",
                  "DHT frames whose sender_id was not the connection's proven id.",
                  rv.refused_sender);
        bs_metric(&b, "macula_dht_contacts_lost_total", "counter",
                  "Contacts removed because their connection was lost.", rv.contacts_lost);
        bs_metric(&b, "macula_mesh_pool_connections", "gauge",
                  "Outgoing mesh connections (open or opening).", rv.pool.conns);
        bs_metric(&b, "macula_mesh_pool_ready", "gauge", "Outgoing mesh connections ready.",
                  rv.pool.ready);
        bs_metric(&b, "macula_mesh_pool_opened_total", "counter", "Outgoing connections started.",
                  rv.pool.opened);
        bs_metric(&b, "macula_mesh_pool_failed_total", "counter",
                  "Outgoing connections that never became ready.", rv.pool.failed);
        bs_metric(&b, "macula_mesh_pool_lost_total", "counter", "Ready outgoing connections lost.",
                  rv.pool.lost);
        bs_metric(&b, "macula_mesh_pool_evicted_total", "counter",
                  "Connections closed to stay within the pool bound (LRU).", rv.pool.evicted);
        bs_metric(&b, "macula_mesh_pool_dropped_total", "counter",
                  "Frames dropped (queue full or connection gone).", rv.pool.dropped);
    }
    if (sv != NULL) {
        textbuf_printf(&b, "# HELP macula_bootstrap_queries_total DHT frames received from other "
                           "nodes, by type.\n# TYPE macula_bootstrap_queries_total counter\n");
        for (unsigned t = 0; t < 6; t++) {
            textbuf_printf(&b, "macula_bootstrap_queries_total{type=\"%s\"} %llu\n",
                           wire_type_name(WIRE_FIND_NODE + t), (unsigned long long)sv->queries[t]);
        }
        textbuf_printf(&b,
                       "# HELP macula_bootstrap_refused_total DHT frames refused, by reason.\n"
                       "# TYPE macula_bootstrap_refused_total counter\n"
                       "macula_bootstrap_refused_total{reason=\"sender_mismatch\"} %llu\n"
                       "macula_bootstrap_refused_total{reason=\"malformed\"} %llu\n"
                       "macula_bootstrap_refused_total{reason=\"no_routing\"} %llu\n",
                       (unsigned long long)sv->refused_sender,
                       (unsigned long long)sv->refused_decode,
                       (unsigned long long)sv->dropped_no_routing);
        uint32_t joined = 0, unreachable = 0;
        for (uint32_t i = 0; i < sv->npeers; i++) {
            joined += sv->peers[i].state == BS_PEER_JOINED ? 1u : 0u;
            unreachable += sv->peers[i].state == BS_PEER_UNREACHABLE ? 1u : 0u;
        }
        textbuf_printf(&b,
                       "# HELP macula_bootstrap_peers Configured bootstrap peers, by state.\n"
                       "# TYPE macula_bootstrap_peers gauge\n"
                       "macula_bootstrap_peers{state=\"joined\"} %u\n"
                       "macula_bootstrap_peers{state=\"unreachable\"} %u\n"
                       "macula_bootstrap_peers{state=\"other\"} %u\n",
                       joined, unreachable, sv->npeers - joined - unreachable);
    }
    if (reg != NULL) {
        bs_metric(&b, "macula_registry_services", "gauge", "Services in the registry.",
                  reg->services);
        bs_metric(&b, "macula_registry_services_unhealthy", "gauge",
                  "Services marked unhealthy by the last check.", reg->unhealthy);
        bs_metric(&b, "macula_registry_expired_total", "counter",
                  "Services removed by the TTL sweep.", reg->expired);
        bs_metric(&b, "macula_registry_kv_puts_total", "counter", "Key/value puts.", reg->kv_puts);
        bs_metric(&b, "macula_registry_kv_gets_total", "counter", "Key/value gets.", reg->kv_gets);
    }
    if (hv != NULL) {
        bs_metric(&b, "macula_bootstrap_health_checks_total", "counter", "Health check rounds.",
                  hv->checks);
        bs_metric(&b, "macula_bootstrap_health_pings_failed_total", "counter",
                  "Service nodes that did not answer a check.", hv->pings_failed);
    }
    return b.p;
}

json_t *bootstrap_health_json(sup_rt *rt)
{
    rs_view rv;
    if (!rs_view_get(rt, &rv)) {
        return NULL;
    }
    const bs_server_view *sv = rs_slot_get(rt, RS_SLOT_BS_SERVER);
    const bs_registry_view *reg = rs_slot_get(rt, RS_SLOT_BS_REGISTRY);
    const bs_health_view *hv = rs_slot_get(rt, RS_SLOT_BS_HEALTH);
    json_t *o = json_object();
    json_t *peers = json_array();
    bool degraded = false;
    uint32_t joined = 0;
    for (uint32_t i = 0; sv != NULL && i < sv->npeers; i++) {
        const bs_peer_view *p = &sv->peers[i];
        json_t *e = json_object();
        json_object_set_new(e, "url", json_string(p->url));
        json_object_set_new(e, "state", json_string(bs_peer_state_name(p->state)));
        json_object_set_new(e, "attempts", json_integer(p->attempts));
        json_object_set_new(e, "joins", json_integer(p->joins));
        if (p->node_id[0]) {
            json_object_set_new(e, "node_id", json_string(p->node_id));
        }
        if (p->error[0]) {
            json_object_set_new(e, "error", json_string(p->error));
        }
        json_array_append_new(peers, e);
        joined += p->state == BS_PEER_JOINED ? 1u : 0u;
        degraded = degraded || p->state == BS_PEER_UNREACHABLE;
    }
    bool alone = sv != NULL && sv->npeers > 0 && joined == 0;
    degraded = degraded || alone || sv == NULL || reg == NULL || hv == NULL ||
               (reg != NULL && reg->unhealthy > 0);
    json_object_set_new(o, "status", json_string(degraded ? "degraded" : "ok"));
    json_object_set_new(o, "contacts", json_integer(rv.contacts));
    json_object_set_new(o, "connections", json_integer(rv.pool.ready));
    json_object_set_new(o, "stored_values", json_integer(rv.dht.stored_values));
    json_object_set_new(o, "first_node", json_boolean(sv != NULL && sv->npeers == 0));
    json_object_set_new(o, "bootstrap_peers", peers);
    json_object_set_new(o, "bootstrap_server", json_string(sv ? "running" : "down"));
    json_object_set_new(o, "registry", json_string(reg ? "running" : "down"));
    if (reg != NULL) {
        json_object_set_new(o, "services", json_integer(reg->services));
        json_object_set_new(o, "services_unhealthy", json_integer(reg->unhealthy));
    }
    json_object_set_new(o, "health_checks", json_integer(hv ? (json_int_t)hv->checks : 0));
    return o;
}
