/* src/mesh/gateway/health.c — macula_gateway_health (see health.h). */
#include "mesh_worker.h"
#include "pubsub.h"
#include "health.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/textbuf.h"
#include "clients.h"
#include "gateway.h"
#include "http/server.h"
#include "quic_server.h"
#include "rpc.h"
#include "macula/flow.h"
#include "macula/sup_supervisor.h"
#include "macula/version.h"
#include "mesh/bootstrap/bootstrap.h"
#include "mesh/routing_server.h"

typedef struct health {
    sup_rt *rt;
    http_server *srv;
    uint64_t started_ms;
    const gw_health_config *cfg;
} health;

static long rss_bytes(void)
{
    char text[128] = "";
    FILE *f = fopen("/proc/self/statm", "r");
    if (f == NULL) {
        return 0;
    }
    size_t n = fread(text, 1, sizeof text - 1, f);
    fclose(f);
    text[n] = '\0';
    char *end = NULL;
    (void)strtol(text, &end, 10); /* total pages, then resident pages */
    long rss = strtol(end, NULL, 10);
    return rss * sysconf(_SC_PAGESIZE);
}

typedef struct restarts_walk {
    textbuf *b;
    sup_rt *rt;
} restarts_walk;

static void walk_sup(sup_rt *rt, sup_pid pid, textbuf *b);

static void walk_child(const sup_child_info *ci, void *user)
{
    restarts_walk *w = user;
    if (ci->type == SUP_SUPERVISOR && !sup_pid_is_null(ci->pid)) {
        walk_sup(w->rt, ci->pid, w->b);
    }
}

static void walk_sup(sup_rt *rt, sup_pid pid, textbuf *b)
{
    sup_sv_summary s;
    restarts_walk w = {b, rt};
    if (sup_sv_inspect(rt, pid, &s, NULL, NULL) != 0) {
        return;
    }
    textbuf_printf(b, "macula_supervisor_restarts_total{supervisor=\"%s\"} %u\n", s.name,
                   s.total_restarts);
    sup_sv_inspect(rt, pid, NULL, walk_child, &w);
}

/* ---- gateway metrics (macula_gateway_*) --------------------------------------------------- */

static void metric_counter(textbuf *b, const char *name, const char *help, uint64_t v)
{
    textbuf_printf(b, "# HELP %s %s\n# TYPE %s counter\n%s %llu\n", name, help, name, name,
                   (unsigned long long)v);
}

/* The event loop's poll-before-sleep (src/base/evloop.h): what it costs and what it catches. */
static void metrics_loop(const evloop_stats *l, textbuf *b)
{
    textbuf_printf(b,
                   "# HELP macula_loop_poll_seconds_total Time the node's loop spent polling "
                   "for the next event instead of sleeping.\n"
                   "# TYPE macula_loop_poll_seconds_total counter\n"
                   "macula_loop_poll_seconds_total %.6f\n",
                   (double)l->poll_ns / 1e9);
    metric_counter(b, "macula_loop_polls_total", "Poll windows the node's loop started.", l->polls);
    metric_counter(b, "macula_loop_poll_hits_total",
                   "Poll windows that ended with work (an event, or a timer due) instead of a "
                   "sleep.",
                   l->hits);
    metric_counter(b, "macula_loop_sleeps_total",
                   "Times the node's loop blocked in the kernel waiting for an event.", l->sleeps);
}

static void metrics_quic(sup_rt *rt, textbuf *b)
{
    gw_quic_stats q;
    if (!gw_quic_server_stats(rt, &q)) {
        return;
    }
    textbuf_printf(b,
                   "# HELP macula_quic_connections QUIC connections held (any state).\n"
                   "# TYPE macula_quic_connections gauge\n"
                   "macula_quic_connections %zu\n"
                   "# HELP macula_quic_handshakes_total Completed QUIC handshakes.\n"
                   "# TYPE macula_quic_handshakes_total counter\n"
                   "macula_quic_handshakes_total %llu\n"
                   "# HELP macula_quic_handshakes_failed_total QUIC handshakes that failed.\n"
                   "# TYPE macula_quic_handshakes_failed_total counter\n"
                   "macula_quic_handshakes_failed_total %llu\n"
                   "# HELP macula_quic_packets_total UDP packets by direction.\n"
                   "# TYPE macula_quic_packets_total counter\n"
                   "macula_quic_packets_total{direction=\"in\"} %llu\n"
                   "macula_quic_packets_total{direction=\"out\"} %llu\n"
                   "# HELP macula_quic_packets_dropped_total Packets dropped (unparseable, unknown "
                   "connection, refused).\n"
                   "# TYPE macula_quic_packets_dropped_total counter\n"
                   "macula_quic_packets_dropped_total %llu\n"
                   "# HELP macula_quic_ngtcp2_bytes Heap held by ngtcp2 for the connections.\n"
                   "# TYPE macula_quic_ngtcp2_bytes gauge\n"
                   "macula_quic_ngtcp2_bytes %zu\n",
                   q.connections, (unsigned long long)q.handshakes_ok,
                   (unsigned long long)q.handshakes_failed, (unsigned long long)q.packets_in,
                   (unsigned long long)q.packets_out, (unsigned long long)q.packets_dropped,
                   q.ngtcp2_bytes);
}

static void metrics_rpc(sup_rt *rt, textbuf *b)
{
    gw_rpc_view v;
    if (!gw_rpc_view_get(rt, &v)) {
        return;
    }
    textbuf_printf(b,
                   "# HELP macula_rpc_procedures Procedures with a local handler.\n"
                   "# TYPE macula_rpc_procedures gauge\nmacula_rpc_procedures %u\n"
                   "# HELP macula_rpc_handlers Local handlers (procedure, client).\n"
                   "# TYPE macula_rpc_handlers gauge\nmacula_rpc_handlers %u\n"
                   "# HELP macula_rpc_calls_pending Calls of this node's clients in flight.\n"
                   "# TYPE macula_rpc_calls_pending gauge\nmacula_rpc_calls_pending %zu\n"
                   "# HELP macula_rpc_served_pending Calls in local handlers now.\n"
                   "# TYPE macula_rpc_served_pending gauge\nmacula_rpc_served_pending %zu\n"
                   "# HELP macula_rpc_calls_done_total Calls of this node's clients by outcome.\n"
                   "# TYPE macula_rpc_calls_done_total counter\n",
                   v.server.procedures, v.server.handlers, v.caller.pending,
                   v.server.served_pending);
    for (int i = 0; i < 5; i++) {
        textbuf_printf(b, "macula_rpc_calls_done_total{status=\"%s\"} %llu\n",
                       rpcc_status_name((rpcc_status)i), (unsigned long long)v.caller.done[i]);
    }
    metric_counter(b, "macula_rpc_calls_total", "CALLs from clients.", v.calls_in);
    metric_counter(b, "macula_rpc_casts_total", "CASTs from clients.", v.casts_in);
    metric_counter(b, "macula_rpc_local_calls_total", "Calls served by a local handler at once.",
                   v.local_calls);
    metric_counter(b, "macula_rpc_attempts_total", "Attempts sent to providers.", v.caller.sends);
    metric_counter(b, "macula_rpc_failovers_total", "Attempts after the first.",
                   v.caller.failovers);
    metric_counter(b, "macula_rpc_lookups_total", "DHT lookups of providers.", v.caller.lookups);
    metric_counter(b, "macula_rpc_cache_hits_total", "Calls served from the provider cache.",
                   v.caller.cache_hits);
    metric_counter(b, "macula_rpc_dropped_callers_total", "Calls dropped because the caller left.",
                   v.caller.dropped_callers);
    metric_counter(b, "macula_rpc_served_total", "Calls handed to local handlers.",
                   v.server.served);
    metric_counter(b, "macula_rpc_served_timeouts_total", "Local handlers that did not answer.",
                   v.server.timeouts);
    metric_counter(b, "macula_rpc_advertisements_total", "Advertisements put in the DHT.",
                   v.server.advertisements);
    metric_counter(b, "macula_rpc_routes_in_total", "RPC_ROUTE frames received.", v.routes_in);
    metric_counter(b, "macula_rpc_routes_forwarded_total", "RPC_ROUTE frames passed on.",
                   v.routes_forwarded);
    metric_counter(b, "macula_rpc_routes_delivered_total", "RPC_ROUTE frames for this node.",
                   v.routes_delivered);
    metric_counter(b, "macula_rpc_routes_sent_total", "RPC_ROUTE calls this node originated.",
                   v.routes_sent);
    metric_counter(b, "macula_rpc_max_hops_exceeded_total", "Routes stopped at max_hops.",
                   v.max_hops_exceeded);
    metric_counter(b, "macula_rpc_no_route_total", "Routes without a next hop.", v.no_route);
}

static void metrics_gateway(sup_rt *rt, textbuf *b)
{
    gwc_stats s;
    long tracked = gw_clients_count(rt);
    if (!gw_gateway_stats(rt, &s)) {
        return;
    }
    textbuf_printf(b,
                   "# HELP macula_gateway_clients Connected clients (CONNECT accepted).\n"
                   "# TYPE macula_gateway_clients gauge\n"
                   "macula_gateway_clients %u\n"
                   "# HELP macula_gateway_connections_pending Connections waiting for CONNECT.\n"
                   "# TYPE macula_gateway_connections_pending gauge\n"
                   "macula_gateway_connections_pending %u\n",
                   s.clients, s.pending);
    if (tracked >= 0) {
        textbuf_printf(b,
                       "# HELP macula_gateway_clients_tracked Entries in the clients table.\n"
                       "# TYPE macula_gateway_clients_tracked gauge\n"
                       "macula_gateway_clients_tracked %ld\n",
                       tracked);
    }
    metric_counter(b, "macula_gateway_connects_accepted_total", "CONNECTs accepted.",
                   s.connects_accepted);
    textbuf_printf(b,
                   "# HELP macula_gateway_connects_refused_total Connections refused, by reason.\n"
                   "# TYPE macula_gateway_connects_refused_total counter\n");
    for (int r = 0; r < GWC_REFUSE_COUNT; r++) {
        textbuf_printf(b, "macula_gateway_connects_refused_total{reason=\"%s\"} %llu\n",
                       gwc_refusal_name((gwc_refusal)r), (unsigned long long)s.connects_refused[r]);
    }
    static const char *const dirs[2] = {"in", "out"};
    for (int d = 0; d < 2; d++) {
        const uint64_t *v = d == 0 ? s.frames_in : s.frames_out;
        textbuf_printf(b,
                       "# HELP macula_gateway_frames_%s_total Frames %s, by message type.\n"
                       "# TYPE macula_gateway_frames_%s_total counter\n",
                       dirs[d], d == 0 ? "received and decoded" : "sent", dirs[d]);
        for (unsigned t = 0; t < 256; t++) {
            if (wire_type_known(t)) {
                textbuf_printf(b, "macula_gateway_frames_%s_total{type=\"%s\"} %llu\n", dirs[d],
                               wire_type_name(t), (unsigned long long)v[t]);
            }
        }
    }
    textbuf_printf(b, "# HELP macula_gateway_decode_errors_total Frames refused by the decoder, by "
                      "kind.\n"
                      "# TYPE macula_gateway_decode_errors_total counter\n");
    static const int kinds[] = {
        WIRE_EUNSUPPORTED_VERSION, WIRE_EUNKNOWN_TYPE, WIRE_EFRAME_TOO_LARGE,
        WIRE_EMALFORMED,           WIRE_ELIMIT,        WIRE_ENOMEM};
    for (size_t k = 0; k < sizeof kinds / sizeof *kinds; k++) {
        textbuf_printf(b, "macula_gateway_decode_errors_total{kind=\"%s\"} %llu\n",
                       wire_strerror(kinds[k]), (unsigned long long)s.decode_errors[-kinds[k]]);
    }
    metric_counter(b, "macula_gateway_not_connected_total",
                   "Connections closed for a frame sent before CONNECT.", s.not_connected);
    metric_counter(b, "macula_gateway_ping_timeouts_total",
                   "Connections dropped after 3 silent ping intervals.", s.ping_timeouts);
    metric_counter(b, "macula_gateway_disconnects_received_total", "DISCONNECTs from peers.",
                   s.disconnects_in);
    metric_counter(b, "macula_gateway_replaced_total",
                   "Connections replaced by a newer one of the same node.", s.replaced);
    metric_counter(b, "macula_gateway_frames_unhandled_total", "Valid frames no layer handles yet.",
                   s.frames_unhandled);
    metric_counter(b, "macula_gateway_calls_total", "CALLs from connected clients.", s.calls);
    metric_counter(b, "macula_gateway_calls_no_handler_total", "CALLs answered no_handler.",
                   s.calls_no_handler);
}

/* ---- pub/sub and the node's mesh pool (macula_pubsub_*, macula_gateway_mesh_*) ----------- */

static void metric_gauge(textbuf *b, const char *name, const char *help, uint64_t v)
{
    textbuf_printf(b, "# HELP %s %s\n# TYPE %s gauge\n%s %llu\n", name, help, name, name,
                   (unsigned long long)v);
}

static void metrics_pubsub(sup_rt *rt, textbuf *b)
{
    gw_pubsub_view v;
    if (gw_pubsub_stats(rt, &v)) {
        const psc_stats *c = &v.core;
        metric_gauge(b, "macula_pubsub_subscriptions", "Local (pattern, client) subscriptions.",
                     c->subscriptions);
        metric_gauge(b, "macula_pubsub_patterns", "Distinct local patterns (advertised).",
                     c->patterns);
        textbuf_printf(b,
                       "# HELP macula_pubsub_subscriptions_refused_total Subscriptions refused.\n"
                       "# TYPE macula_pubsub_subscriptions_refused_total counter\n"
                       "macula_pubsub_subscriptions_refused_total{reason=\"limit\"} %llu\n"
                       "macula_pubsub_subscriptions_refused_total{reason=\"invalid\"} %llu\n",
                       (unsigned long long)c->refused_limit,
                       (unsigned long long)c->refused_invalid);
        metric_counter(b, "macula_pubsub_published_total", "PUBLISH accepted from clients.",
                       c->published);
        metric_counter(b, "macula_pubsub_delivered_total", "PUBLISH sent to local subscribers.",
                       c->delivered);
        metric_counter(b, "macula_pubsub_duplicates_total",
                       "QoS 1 message ids seen again (acknowledged, not delivered).",
                       c->duplicates);
        metric_counter(b, "macula_pubsub_routes_out_total", "PUBSUB_ROUTE sent to nodes.",
                       c->routes_out);
        metric_counter(b, "macula_pubsub_routes_in_total", "PUBSUB_ROUTE accepted.", c->routes_in);
        metric_counter(b, "macula_pubsub_routes_refused_total",
                       "PUBSUB_ROUTE refused (misrouted, max_hops, invalid).", c->routes_refused);
        metric_counter(b, "macula_pubsub_pubacks_total", "PUBACKs that completed a message.",
                       c->pubacks_in);
        metric_counter(b, "macula_pubsub_qos_resent_total", "QoS 1 retransmissions.", c->resent);
        metric_counter(b, "macula_pubsub_qos_gave_up_total", "QoS 1 messages given up.",
                       c->gave_up);
        metric_counter(b, "macula_pubsub_lookups_total", "Subscriber index lookups.", c->lookups);
        metric_counter(b, "macula_pubsub_lookups_failed_total", "Index lookups that failed.",
                       v.lookups_failed);
        metric_counter(b, "macula_pubsub_index_unresolved_total",
                       "Index entries whose address could not be resolved.", v.unresolved);
        metric_counter(b, "macula_pubsub_advertised_total", "Index values put.", c->advertised);
        metric_counter(b, "macula_pubsub_waiting_dropped_total",
                       "Publishes dropped: too many waiting for lookups.", c->waiting_dropped);
        metric_counter(b, "macula_pubsub_outbox_refused_total", "QoS 1 sends refused (full).",
                       c->outbox_refused);
    }
    mesh_pool_stats ms;
    uint32_t peers = 0;
    if (gw_mesh_stats(rt, &ms, &peers)) {
        metric_gauge(b, "macula_gateway_mesh_connections",
                     "The node's mesh pool connections (open or opening).", ms.conns);
        metric_gauge(b, "macula_gateway_mesh_ready", "The node's mesh pool connections ready.",
                     ms.ready);
        metric_gauge(b, "macula_peer_systems",
                     "Peer systems kept by macula_gateway_mesh (one per peer a ready pool "
                     "connection proves).",
                     peers);
        metric_counter(b, "macula_gateway_mesh_evicted_total", "Connections evicted (LRU).",
                       ms.evicted);
    }
}

/* The actors a node serves with (the QUIC listener's actor lives only while its socket is
 * bound). The bootstrap system is not among them: the seed's fault isolation keeps the
 * gateway and routing serving while it restarts. */
static const char *const health_serving[] = {
    "macula_routing_server",  "macula_gateway_quic_server", "macula_gateway",
    "macula_gateway_clients", "macula_gateway_pubsub",      "macula_gateway_rpc",
    "macula_gateway_mesh",    "macula_peers_sup",
};

/* Appends `,"waiting":[names]` for the serving actors that are not running (none: nothing)
 * and returns whether the node is ready: its root and every serving actor alive. */
static bool health_ready(const health *h, bool root_alive, textbuf *waiting)
{
    bool ready = root_alive;
    size_t n = 0;
    for (size_t i = 0; i < sizeof health_serving / sizeof *health_serving; i++) {
        if (!sup_is_alive(h->rt, sup_whereis(h->rt, health_serving[i]))) {
            textbuf_printf(waiting, "%s\"%s\"", n++ ? "," : ",\"waiting\":[", health_serving[i]);
            ready = false;
        }
    }
    if (n > 0) {
        textbuf_printf(waiting, "]");
    }
    return ready;
}

static int handle(void *user, const char *path, http_response *res)
{
    health *h = user;
    sup_pid root = sup_whereis(h->rt, "macula_root");
    bool root_alive = sup_is_alive(h->rt, root);
    textbuf waiting = {0};
    bool ready = health_ready(h, root_alive, &waiting);
    const char *wait_json = waiting.p ? waiting.p : "";
    double uptime = (double)(sup_rt_now(h->rt) - h->started_ms) / 1000.0;
    textbuf b = {0};
    res->status = 200;
    res->content_type = "application/json";
    if (strcmp(path, "/health") == 0) {
        /* node_id is hex and realm is limited to [A-Za-z0-9._-] by the config: no escaping. */
        const char *q_id = h->cfg->node_id ? "\"" : "";
        const char *q_realm = h->cfg->realm ? "\"" : "";
        json_t *fh = flow_health_json(h->rt); /* NULL when flow does not run here */
        char *fs = fh ? json_dumps(fh, JSON_COMPACT) : NULL;
        json_decref(fh);
        json_t *dh = bootstrap_health_json(h->rt); /* NULL when the DHT does not run here */
        char *ds = dh ? json_dumps(dh, JSON_COMPACT) : NULL;
        json_decref(dh);
        rs_view rv;
        /* peers: other nodes this one holds a ready mesh connection to */
        unsigned peers = rs_view_get(h->rt, &rv) ? rv.pool.ready : 0;
        textbuf_printf(&b,
                       "{\"status\":\"%s\",\"ready\":%s,\"uptime\":%.3f,\"version\":\"%s\","
                       "\"node_id\":%s%s%s,\"realm\":%s%s%s,\"clients\":%ld,\"peers\":%u,"
                       "\"actors\":%zu,\"memory\":%zu%s%s%s%s%s}\n",
                       ready ? "healthy" : "unhealthy", ready ? "true" : "false", uptime,
                       MACULA_VERSION, q_id, h->cfg->node_id ? h->cfg->node_id : "null", q_id,
                       q_realm, h->cfg->realm ? h->cfg->realm : "null", q_realm,
                       gw_clients_count(h->rt) < 0 ? 0 : gw_clients_count(h->rt), peers,
                       sup_rt_actor_count(h->rt), sup_rt_memory(h->rt), fs ? ",\"flow\":" : "",
                       fs ? fs : "", ds ? ",\"dht\":" : "", ds ? ds : "", wait_json);
        free(fs);
        free(ds);
        res->status = ready ? 200 : 503;
    } else if (strcmp(path, "/ready") == 0) {
        textbuf_printf(&b, "{\"ready\":%s%s}\n", ready ? "true" : "false", wait_json);
        res->status = ready ? 200 : 503;
    } else if (strcmp(path, "/live") == 0) {
        textbuf_printf(&b, "{\"live\":true}\n");
    } else if (strcmp(path, "/tree") == 0) {
        char *json = root_alive ? sup_tree_json(h->rt, root) : NULL;
        if (json == NULL) {
            textbuf_printf(&b, "{\"error\":\"no tree\"}\n");
            res->status = 503;
        } else {
            textbuf_printf(&b, "%s\n", json);
            free(json);
        }
    } else if (strcmp(path, "/metrics") == 0) {
        res->content_type = "text/plain; version=0.0.4; charset=utf-8";
        textbuf_printf(&b,
                       "# HELP macula_uptime_seconds Seconds since the health worker started.\n"
                       "# TYPE macula_uptime_seconds gauge\n"
                       "macula_uptime_seconds %.3f\n",
                       uptime);
        textbuf_printf(&b,
                       "# HELP macula_actors Live actors in the runtime.\n"
                       "# TYPE macula_actors gauge\n"
                       "macula_actors %zu\n",
                       sup_rt_actor_count(h->rt));
        textbuf_printf(
            &b,
            "# HELP macula_runtime_memory_bytes Bytes owned by actors (state, mailboxes, "
            "timers, sup_alloc).\n"
            "# TYPE macula_runtime_memory_bytes gauge\n"
            "macula_runtime_memory_bytes %zu\n",
            sup_rt_memory(h->rt));
        textbuf_printf(&b,
                       "# HELP macula_process_resident_memory_bytes Resident set size.\n"
                       "# TYPE macula_process_resident_memory_bytes gauge\n"
                       "macula_process_resident_memory_bytes %ld\n",
                       rss_bytes());
        textbuf_printf(&b, "# HELP macula_supervisor_restarts_total Automatic restarts per "
                           "supervisor.\n"
                           "# TYPE macula_supervisor_restarts_total counter\n");
        if (root_alive) {
            walk_sup(h->rt, root, &b);
        }
        if (h->cfg->loop != NULL) {
            metrics_loop(h->cfg->loop, &b);
        }
        metrics_gateway(h->rt, &b);
        metrics_quic(h->rt, &b);
        metrics_rpc(h->rt, &b);
        metrics_pubsub(h->rt, &b);
        char *dt = bootstrap_metrics_prometheus(h->rt); /* NULL when the DHT does not run */
        if (dt != NULL) {
            textbuf_printf(&b, "%s", dt);
            free(dt);
        }
        char *ft = flow_metrics_prometheus(h->rt); /* NULL when flow does not run here */
        if (ft != NULL) {
            textbuf_printf(&b, "%s", ft);
            free(ft);
        }
    } else {
        textbuf_printf(&b, "{\"error\":\"not found\"}\n");
        res->status = 404;
    }
    free(waiting.p);
    res->body = b.p;
    res->len = b.len;
    return b.p ? 0 : -1;
}

static int health_init(sup_actor *self, void *state, void *arg)
{
    health *h = state;
    const gw_health_config *cfg = arg;
    h->rt = sup_self_rt(self);
    h->started_ms = sup_rt_now(h->rt);
    h->cfg = cfg;
    if (sup_rt_loop(h->rt) == NULL) {
        sup_reason r = sup_reason_error("health_needs_a_loop");
        sup_stop(self, &r);
        return -1;
    }
    const char *err = NULL;
    if (http_server_start(sup_rt_loop(h->rt), cfg->addr, cfg->port, handle, h, &h->srv, &err) !=
        0) {
        char text[SUP_REASON_TEXT_MAX];
        snprintf(text, sizeof text, "{listen_failed,%u}", cfg->port);
        fprintf(stderr, "macula: health endpoint on %s:%u: %s\n", cfg->addr, cfg->port, err);
        sup_reason r = sup_reason_error(text);
        sup_stop(self, &r);
        return -1;
    }
    sup_register(h->rt, "macula_gateway_health", sup_self(self));
    return 0;
}

static void health_terminate(sup_actor *self, void *state, const sup_reason *reason)
{
    (void)self;
    (void)reason;
    health *h = state;
    http_server_stop(h->srv);
    h->srv = NULL;
}

enum { HEALTH_PORT_CALL = 1 };

static void health_call(sup_actor *self, void *state, const sup_msg *m)
{
    health *h = state;
    if (m->tag == HEALTH_PORT_CALL) {
        uint16_t port = http_server_port(h->srv);
        sup_reply(sup_self_rt(self), sup_msg_from(m), &port, sizeof port);
    }
}

static const sup_behaviour health_behaviour = {
    .name = "gateway_health",
    .state_size = sizeof(health),
    .init = health_init,
    .handle_call = health_call,
    .terminate = health_terminate,
};

int gw_health_start(sup_rt *rt, sup_pid parent, void *arg, void *extra, sup_pid *out,
                    sup_reason *why)
{
    (void)extra;
    return sup_spawn(rt, parent, &health_behaviour, arg, SUP_SPAWN_LINK, out, why);
}

uint16_t gw_health_port(sup_rt *rt)
{
    uint16_t port = 0;
    size_t len = 0;
    sup_pid p = sup_whereis(rt, "macula_gateway_health");
    if (sup_call_sync(rt, p, HEALTH_PORT_CALL, NULL, 0, 1000, &port, sizeof port, &len, NULL) !=
            0 ||
        len != sizeof port) {
        return 0;
    }
    return port;
}
