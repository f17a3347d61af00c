/* src/mesh/root.c — macula_root (see root.h). */
#include "root.h"

#include <stdio.h>
#include <string.h>

#include <stdlib.h>

#include "macula/sup_supervisor.h"
#include "mesh/peer/peer.h"

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
    /* Pub/sub and the mesh pool of the gateway's workers. */
    cfg->gateway.workers.pubsub.realm = cfg->realm;
    cfg->gateway.workers.pubsub.node_id = cfg->node_id;
    cfg->gateway.workers.pubsub.port = conf->quic_port;
    cfg->gateway.workers.mesh.id = id;
    cfg->gateway.workers.mesh.realm = cfg->realm;
    gw_rpc_config_apply(&cfg->gateway.workers.rpc, conf);
    /* Start-up is the one moment the environment is read (docs/layers.md). */
    const char *chaos = getenv("MACULA_CHAOS");
    cfg->gateway.gateway.chaos = chaos != NULL && strcmp(chaos, "1") == 0;
}

int mesh_root_start(sup_rt *rt, mesh_root_config *cfg, sup_pid *out, sup_reason *why)
{
    sup_flags flags = {SUP_ONE_FOR_ONE, cfg->intensity, cfg->period_s, SUP_AUTO_NEVER};
    sup_sv_opts opts = {.name = "macula_root"};
    if (cfg->nextra > MESH_ROOT_MAX_EXTRA) {
        if (why != NULL) {
            *why = sup_reason_error("too_many_children");
        }
        return SUP_EINVAL;
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
    }
    return rc;
}
