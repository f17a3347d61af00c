/*
 * src/mesh/gateway/mesh_worker.h — macula_gateway_mesh (seed 000, last child of
 * macula_gateway_workers_sup): the gateway's user of the node's one mesh connection pool
 * (mesh.h; owned by macula_root, shared with macula_routing_server), and the keeper of the
 * peer systems under macula_peers_sup (mesh/peer/peer.h): one per peer that a ready pool
 * connection proves, whoever opened it (DHT, pub/sub or RPC).
 *
 *  - GW_MESH_SEND (info, gw_mesh_send builds it): one encoded frame for node `id` at `addr`;
 *    the pool connects (the peer must prove `id`), CONNECTs in the realm and sends. Sent
 *    frames are counted at the peer's workers.
 *  - MESH_POOL_MSG_FRAME (from root's dispatcher: every frame arriving on a pool connection
 *    that is not a DHT frame): PUBACK → macula_gateway_pubsub (GW_PS_NODE_FRAME); CALL / REPLY
 *    / CAST / RPC_ROUTE → macula_gateway_rpc (gw_rpc_deliver, GW_RPC_VIA_POOL). Each frame is
 *    also counted at the peer's workers.
 *  - Peer systems follow the pool: MESH_POOL_MSG_UP starts one for the proven id (or adopts
 *    the running one: a peer system outlives a restart of this worker, as its connection
 *    does); MESH_POOL_MSG_DOWN stops it when no ready connection proves that id any more.
 *    Closes the pool made itself (LRU eviction, idleness) are not reported, so every
 *    GW_MESH_REAP_MS, and once at start, the worker reconciles: ready connections without a
 *    peer system get one, peer systems without a ready connection (or not known to this
 *    worker: left by a predecessor) are stopped.
 *  - When this worker ends, the peer systems stay (their connections do); the next worker
 *    adopts them.
 * Registers "macula_gateway_mesh".
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
    /* The node's mesh pool, borrowed (macula_root's, outlives this worker). NULL: no pool
     * (a gateway without identity): sends fail, no peer systems. */
    mesh_pool *pool;
} gw_mesh_config;

int gw_mesh_start(sup_rt *rt, sup_pid parent, void *arg, void *extra, sup_pid *out,
                  sup_reason *why);

enum {
    GW_MESH_SEND = 0x5401, /* info: gw_mesh_hdr + frame */
    GW_MESH_STATS,         /* call: replies mesh_pool_stats */
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
/* The node's pool counters and the peer systems this worker keeps; false when the worker
 * does not run (runtime thread). */
bool gw_mesh_stats(const sup_rt *rt, mesh_pool_stats *out, uint32_t *peers);

/* Frees the start arguments of peer-system starts that were still in flight when a worker
 * using `pool` ended (macula_peers_sup may read them until it has handled the call). Called
 * by macula_root when it ends (after macula_peers_sup), before it frees the pool. */
void gw_mesh_release_parked(const mesh_pool *pool);

#endif
