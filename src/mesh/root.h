/*
 * src/mesh/root.h — macula_root (seed 000): the node's root supervisor, one_for_one with
 * 10 restarts in 5 s. Its children are the node's subsystems in the seed's order:
 *   macula_routing_server    the DHT (routing_server.h)
 *   macula_bootstrap_system  bootstrap server, registry, health (bootstrap/bootstrap.h)
 *   macula_gateway_system    the gateway with the health endpoints (gateway/system.h)
 *   macula_peers_sup         one peer system per mesh connection (peer/peer.h)
 * The root registers itself as "macula_root".
 *
 * The node's one mesh connection pool (gateway/mesh.h) belongs to the root's lifetime:
 * mesh_root_start creates it (when there is an identity and the runtime has a loop) before
 * the children start and hands it to the two actors that use it (cfg->routing.pool,
 * cfg->gateway.workers.mesh.pool); it is freed when macula_root ends, after every child has
 * (or when the start fails). Its events are dispatched by frame type to the registered names
 * (DHT frames to macula_routing_server, the rest to macula_gateway_mesh, up/down to both), so
 * a restarted actor receives them again without re-attaching anything.
 *
 * The node's settings come from include/macula/config.h (flags, environment, INI file) and
 * its identity from mesh/identity.h; mesh_root_config_apply copies what the tree needs.
 */
#ifndef MACULA_MESH_ROOT_H
#define MACULA_MESH_ROOT_H

#include "bootstrap/bootstrap.h"
#include "gateway/system.h"
#include "macula/config.h"
#include "macula/sup.h"
#include "macula/sup_supervisor.h"
#include "mesh/identity.h"
#include "mesh/routing_server.h"

typedef struct mesh_root_config {
    int intensity; /* 10 */
    int period_s;  /* 5 */
    rs_config routing;
    bs_config bootstrap;
    gw_system_config gateway;
    /* Storage the children's configurations point into (the struct must outlive the tree). */
    char node_id_hex[IDENTITY_ID_HEX_LEN + 1];
    char realm[MACULA_CONFIG_REALM_MAX + 1];
    char health_addr[16];
    uint8_t node_id[IDENTITY_ID_LEN];
    char peers[MACULA_CONFIG_MAX_PEERS][BS_URL_MAX];
    /* The mesh pool's limits (0: gateway/mesh.h defaults: 1,000 connections, LRU). */
    uint32_t pool_max_conns, pool_keepalive_ms, pool_idle_ms;
    /* The running tree's pool (set by mesh_root_start, NULL again once the root ended). */
    mesh_pool *pool;
    /* Extra children started after the gateway system, in order (e.g. flow and its MCP
     * gateway for `macula flow serve`); at most MESH_ROOT_MAX_EXTRA; the specs are copied. */
    const sup_child_spec *extra;
    size_t nextra;
} mesh_root_config;
#define MESH_ROOT_MAX_EXTRA 8

/* Defaults: health on 0.0.0.0:8080, no node ID or realm (tests set what they need). */
void mesh_root_config_defaults(mesh_root_config *cfg);
/* Takes the health address and port, the realm, the QUIC port and the gateway's limits
 * (max_clients, ping interval, frame size), dht_k (capped at DHT_K_MAX) and dht_alpha, the
 * bootstrap peers and bootstrap_health_interval from conf, MACULA_CHAOS (=1: the
 * com.macula.admin.crash procedure), and the identity (NULL: no node id and
 * no QUIC listener; otherwise it must outlive the tree: the QUIC endpoint presents it). */
void mesh_root_config_apply(mesh_root_config *cfg, const macula_config *conf, const identity *id);
int mesh_root_start(sup_rt *rt, mesh_root_config *cfg, sup_pid *out, sup_reason *why);

#endif
