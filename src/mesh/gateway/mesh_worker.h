/*
 * src/mesh/gateway/mesh_worker.h — macula_gateway_mesh (seed 000, last child of
 * macula_gateway_workers_sup): the mesh connection pool (mesh.h) for the gateway's business
 * traffic to other nodes — pub/sub routes now, RPC routes next — with one peer system under
 * macula_peers_sup per ready connection (mesh/peer/peer.h).
 *
 *  - GW_MESH_SEND (info, gw_mesh_send builds it): one encoded frame for node `id` at `addr`;
 *    the pool connects (the peer must prove `id`), CONNECTs in the realm and sends.
 *  - Frames that come back on pool connections: PUBACK → macula_gateway_pubsub
 *    (GW_PS_NODE_FRAME); REPLY / RPC_ROUTE / CALL / CAST → macula_gateway_rpc (GW_MESH_RPC_FRAME,
 *    same layout), when it runs. Each frame is also counted at the peer's workers.
 *  - A connection that becomes ready starts a peer system; one that is lost, evicted or
 *    closed for idleness stops it (the pool does not report closes it made itself, so the
 *    worker checks its peers every GW_MESH_REAP_MS). When this worker ends, its pool closes
 *    every connection and every peer system it started is stopped.
 *
 * The DHT keeps its own pool in macula_routing_server (its connections carry only DHT
 * frames, and the routing server must not restart with the gateway's workers); both pools
 * apply the seed's bound (1,000, LRU) each. Registers "macula_gateway_mesh".
 */
#ifndef MACULA_MESH_GATEWAY_MESH_WORKER_H
#define MACULA_MESH_GATEWAY_MESH_WORKER_H

#include <stdbool.h>
#include <stdint.h>

#include "macula/sup.h"
#include "mesh.h"

#define GW_MESH_REAP_MS 5000
#define GW_MESH_PEERS_MAX 1024

typedef struct gw_mesh_config {
    const identity *id; /* NULL: no pool (tests without identity): sends fail */
    const char *realm;
    uint32_t max_conns, keepalive_ms, idle_ms; /* 0: mesh.h defaults */
} gw_mesh_config;

int gw_mesh_start(sup_rt *rt, sup_pid parent, void *arg, void *extra, sup_pid *out,
                  sup_reason *why);

enum {
    GW_MESH_SEND = 0x5401, /* info: gw_mesh_hdr + frame */
    GW_MESH_STATS,         /* call: replies mesh_pool_stats */
    GW_MESH_RPC_FRAME,     /* info to macula_gateway_rpc: gw_mesh_hdr + frame */
};

typedef struct gw_mesh_hdr {
    uint8_t id[32];
    bool has_id;
    char addr[MESH_POOL_ADDR_MAX];
} gw_mesh_hdr;

/* Sends GW_MESH_SEND to macula_gateway_mesh. 0, SUP_ENOPROC (not running), SUP_ENOMEM,
 * SUP_EINVAL (address too long). */
int gw_mesh_send(sup_rt *rt, sup_pid from, const uint8_t *id, const char *addr,
                 const uint8_t *frame, size_t len);
/* The running worker's pool counters; false when none runs (runtime thread). */
bool gw_mesh_stats(const sup_rt *rt, mesh_pool_stats *out, uint32_t *peers);

#endif
