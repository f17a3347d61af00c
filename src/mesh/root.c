/* src/mesh/root.c — macula_root (see root.h). */
#include "root.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "macula/sup_supervisor.h"
#include "mesh/peer/peer.h"

/* ---- the node's mesh pool: dispatch of its events to the actors that use it ---------------
 * The pool calls back from the loop, outside any actor; each event becomes a message to a
 * registered name (looked up at delivery, so restarts are transparent). Nobody registered:
 * the event is dropped (the actor syncs from the pool when it starts). */

static void root__post(sup_rt *rt, const char *name, int tag, const mesh_pool_msg *pm,
                       const uint8_t *frame, size_t len)
{
    sup_pid to = sup_whereis(rt, name);
    if (sup_pid_is_null(to)) {
        return;
    }
    if (len == 0) {
        (void)sup_send(rt, SUP_NOPID, to, tag, pm, sizeof *pm);
        return;
    }
    uint8_t *buf = malloc(sizeof *pm + len);
    if (buf != NULL) {
        memcpy(buf, pm, sizeof *pm);
        memcpy(buf + sizeof *pm, frame, len);
        (void)sup_send(rt, SUP_NOPID, to, tag, buf, sizeof *pm + len);
        free(buf);
    }
}

static void root__pool_up(mesh_pool *p, const uint8_t id[IDENTITY_ID_LEN], const char *addr,
                          void *ctx)
{
    (void)p;
    mesh_pool_msg pm = {.has_id = true, .was_up = true};
    memcpy(pm.id, id, IDENTITY_ID_LEN);
    snprintf(pm.addr, sizeof pm.addr, "%s", addr);
    root__post(ctx, "macula_routing_server", MESH_POOL_MSG_UP, &pm, NULL, 0);
    root__post(ctx, "macula_gateway_mesh", MESH_POOL_MSG_UP, &pm, NULL, 0);
}

static void root__pool_frame(mesh_pool *p, const uint8_t id[IDENTITY_ID_LEN], const char *addr,
                             const wire_msg *m, void *ctx)
{
    (void)p;
    bool is_dht = m->type >= WIRE_FIND_NODE && m->type <= WIRE_STORE_ACK;
    uint8_t *frame = NULL;
    size_t len = 0;
    if (wire_encode_alloc(m, &frame, &len) != WIRE_OK) {
        return;
    }
    mesh_pool_msg pm = {.has_id = true, .was_up = true};
    memcpy(pm.id, id, IDENTITY_ID_LEN);
    snprintf(pm.addr, sizeof pm.addr, "%s", addr);
    root__post(ctx, is_dht ? "macula_routing_server" : "macula_gateway_mesh", MESH_POOL_MSG_FRAME,
               &pm, frame, len);
    free(frame);
}

static void root__pool_down(mesh_pool *p, const uint8_t *id, const char *addr, bool was_up, int err,
                            const char *reason, void *ctx)
{
    (void)p;
    mesh_pool_msg pm = {.has_id = id != NULL, .was_up = was_up, .err = err};
    if (id != NULL) {
        memcpy(pm.id, id, IDENTITY_ID_LEN);
    }
    snprintf(pm.addr, sizeof pm.addr, "%s", addr);
    snprintf(pm.reason, sizeof pm.reason, "%s", reason ? reason : "");
    root__post(ctx, "macula_routing_server", MESH_POOL_MSG_DOWN, &pm, NULL, 0);
    root__post(ctx, "macula_gateway_mesh", MESH_POOL_MSG_DOWN, &pm, NULL, 0);
}

/* The pool's one release path: macula_root ends (after all its children), or its start
 * failed after the pool was made. */
static void root__pool_release(mesh_root_config *cfg)
{
    gw_mesh_release_parked(cfg->pool);
    mesh_pool_free(cfg->pool);
    cfg->pool = NULL;
    cfg->routing.pool = NULL;
    cfg->gateway.workers.mesh.pool = NULL;
}

static void root__hook(const sup_event_info *ev)
{
    if (ev->event == SUP_EV_SUP_EXIT) {
        root__pool_release(ev->user);
    }
}

static int root__pool_new(sup_rt *rt, mesh_root_config *cfg)
{
    cfg->pool = NULL;
    if (cfg->routing.id == NULL || sup_rt_loop(rt) == NULL) {
        return 0; /* no identity (tests of the tree alone): no transport between nodes */
    }
    mesh_pool_config pc = {
        .id = cfg->routing.id,
        .realm = cfg->routing.realm ? cfg->routing.realm : GW_DEFAULT_REALM,
        .max_conns = cfg->pool_max_conns,
        .keepalive_ms = cfg->pool_keepalive_ms,
        .idle_ms = cfg->pool_idle_ms,
        .cb = {.on_up = root__pool_up, .on_frame = root__pool_frame, .on_down = root__pool_down},
        .ctx = rt};
    int rc = mesh_pool_new(sup_rt_loop(rt), &pc, &cfg->pool);
    cfg->routing.pool = cfg->pool;
    cfg->gateway.workers.mesh.pool = cfg->pool;
    return rc;
}

void mesh_root_config_defaults(mesh_root_config *cfg)
{
    memset(cfg, 0, sizeof *cfg);
    cfg->intensity = 10;
    cfg->period_s = 5;
    cfg->gateway.health.addr = "0.0.0.0";
    cfg->gateway.health.port = 8080;
    rs_config_default(&cfg->routing);
    cfg->routing.realm = GW_DEFAULT_REALM;
    cfg->bootstrap.realm = GW_DEFAULT_REALM;
    cfg->bootstrap.node_id = cfg->node_id;
    cfg->bootstrap.peers = (const char(*)[BS_URL_MAX])cfg->peers;
    cfg->gateway.workers.pubsub.node_id = cfg->node_id;
}

void mesh_root_config_apply(mesh_root_config *cfg, const macula_config *conf, const identity *id)
{
    char hexbuf[IDENTITY_ID_HEX_LEN + 1];
    const char *node_id_hex = NULL;
    if (id != NULL) {
        identity_node_id_hex(id, hexbuf);
        node_id_hex = hexbuf;
        memcpy(cfg->gateway.node_id, identity_node_id(id), IDENTITY_ID_LEN);
    }
    snprintf(cfg->health_addr, sizeof cfg->health_addr, "%s", conf->health_addr);
    snprintf(cfg->realm, sizeof cfg->realm, "%s", conf->realm);
    snprintf(cfg->node_id_hex, sizeof cfg->node_id_hex, "%s", node_id_hex ? node_id_hex : "");
    cfg->gateway.health.addr = cfg->health_addr;
    cfg->gateway.health.port = conf->health_port;
    cfg->gateway.health.realm = cfg->realm;
    cfg->gateway.health.node_id = node_id_hex ? cfg->node_id_hex : NULL;
    cfg->gateway.realm = cfg->realm;
    cfg->gateway.quic.port = conf->quic_port;
    cfg->gateway.quic.id = id;
    /* QUIC's idle timeout: three ping intervals, as the gateway's own keep-alive. */
    cfg->gateway.quic.idle_timeout_ms = conf->ping_interval_ms * 3u;
    gwc_config *core = &cfg->gateway.gateway.core;
    core->max_clients = conf->max_clients;
    core->ping_interval_ms = conf->ping_interval_ms;
    wire_limits_default(&core->limits);
    core->limits.max_frame_size = conf->max_frame_size;

    if (id != NULL) {
        memcpy(cfg->node_id, identity_node_id(id), IDENTITY_ID_LEN);
    }
    cfg->routing.id = id;
    cfg->routing.realm = cfg->realm;
    cfg->routing.dht.k = conf->dht_k < DHT_K_MAX ? conf->dht_k : DHT_K_MAX;
    cfg->routing.dht.alpha =
        conf->dht_alpha < cfg->routing.dht.k ? conf->dht_alpha : cfg->routing.dht.k;
    cfg->routing.port = conf->quic_port;
    cfg->bootstrap.realm = cfg->realm;
    cfg->bootstrap.node_id = cfg->node_id;
    cfg->bootstrap.health_interval_ms = conf->bootstrap_health_interval_ms;
    size_t n = conf->bootstrap_peer_count < MACULA_CONFIG_MAX_PEERS ? conf->bootstrap_peer_count
                                                                    : MACULA_CONFIG_MAX_PEERS;
    for (size_t i = 0; i < n; i++) {
        snprintf(cfg->peers[i], sizeof cfg->peers[i], "%s", conf->bootstrap_peers[i]);
    }
    cfg->bootstrap.npeers = n;
    cfg->bootstrap.peers = (const char(*)[BS_URL_MAX])cfg->peers;
    /* Pub/sub of the gateway's workers (the mesh worker gets the pool in mesh_root_start). */
    cfg->gateway.workers.pubsub.realm = cfg->realm;
    cfg->gateway.workers.pubsub.node_id = cfg->node_id;
    cfg->gateway.workers.pubsub.port = conf->quic_port;
    gw_rpc_config_apply(&cfg->gateway.workers.rpc, conf);
    cfg->pool_max_conns = conf->mesh_pool_max;
    /* Start-up is the one moment the environment is read (docs/layers.md). */
    const char *chaos = getenv("MACULA_CHAOS");
    cfg->gateway.gateway.chaos = chaos != NULL && strcmp(chaos, "1") == 0;
}

int mesh_root_start(sup_rt *rt, mesh_root_config *cfg, sup_pid *out, sup_reason *why)
{
    sup_flags flags = {SUP_ONE_FOR_ONE, cfg->intensity, cfg->period_s, SUP_AUTO_NEVER};
    sup_sv_opts opts = {.name = "macula_root", .hook = root__hook, .hook_user = cfg};
    if (cfg->nextra > MESH_ROOT_MAX_EXTRA) {
        if (why != NULL) {
            *why = sup_reason_error("too_many_children");
        }
        return SUP_EINVAL;
    }
    int prc = root__pool_new(rt, cfg);
    if (prc != MESH_POOL_OK) {
        if (why != NULL) {
            char text[SUP_REASON_TEXT_MAX];
            snprintf(text, sizeof text, "{mesh_pool,%s}", mesh_pool_strerror(prc));
            *why = sup_reason_error(text);
        }
        root__pool_release(cfg);
        return SUP_EINIT;
    }
    enum { NBASE = 4 }; /* routing_server, bootstrap_system, gateway_system, peers_sup */
    sup_child_spec children[NBASE + MESH_ROOT_MAX_EXTRA] = {
        {.id = "macula_routing_server",
         .start = rs_start,
         .arg = &cfg->routing,
         .restart = SUP_PERMANENT,
         .shutdown_ms = 5000,
         .type = SUP_WORKER},
        {.id = "macula_bootstrap_system",
         .start = bs_system_start,
         .arg = &cfg->bootstrap,
         .restart = SUP_PERMANENT,
         .shutdown_ms = SUP_SHUTDOWN_INFINITY,
         .type = SUP_SUPERVISOR},
        {.id = "macula_gateway_system",
         .start = gw_system_start,
         .arg = &cfg->gateway,
         .restart = SUP_PERMANENT,
         .shutdown_ms = SUP_SHUTDOWN_INFINITY,
         .type = SUP_SUPERVISOR},
        {.id = "macula_peers_sup",
         .start = mesh_peers_sup_start,
         .arg = NULL,
         .restart = SUP_PERMANENT,
         .shutdown_ms = SUP_SHUTDOWN_INFINITY,
         .type = SUP_SUPERVISOR},
    };
    for (size_t i = 0; i < cfg->nextra; i++) {
        children[NBASE + i] = cfg->extra[i];
    }
    int rc =
        sup_supervisor_start(rt, SUP_NOPID, &flags, children, NBASE + cfg->nextra, &opts, out, why);
    if (rc == 0) {
        sup_register(rt, "macula_root", *out);
    } else {
        root__pool_release(cfg); /* a no-op when the root's exit already released it */
    }
    return rc;
}
