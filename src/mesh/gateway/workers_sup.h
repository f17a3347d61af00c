/*
 * src/mesh/gateway/workers_sup.h — macula_gateway_workers_sup (seed 000): rest_for_one,
 * 10 restarts in 60 s, the gateway's business workers in dependency order:
 *
 *   macula_gateway_clients   the tracked-clients table (clients.h)
 *   macula_gateway_pubsub    pub/sub: local trie, subscriber index, QoS 1 (pubsub.h)
 *   macula_gateway_rpc       (the RPC layer adds it here)
 *   macula_gateway_mesh      gateway traffic on the node's mesh pool, peer systems (mesh_worker.h)
 *
 * A crash of pubsub restarts pubsub, rpc and mesh; clients stay connected (the gateway keeps
 * the connections and the subscription ledger).
 */
#ifndef MACULA_MESH_GATEWAY_WORKERS_SUP_H
#define MACULA_MESH_GATEWAY_WORKERS_SUP_H

#include "macula/sup.h"
#include "mesh_worker.h"
#include "pubsub.h"
#include "rpc.h"

typedef struct gw_workers_config {
    gw_pubsub_config pubsub;
    gw_mesh_config mesh;
    gw_rpc_config rpc; /* macula_gateway_rpc: timeouts, strategy (zero fields: defaults) */
} gw_workers_config;

/* A sup_start_fn; arg is a gw_workers_config that outlives the child spec (NULL: defaults,
 * no mesh pool). */
int gw_workers_sup_start(sup_rt *rt, sup_pid parent, void *arg, void *extra, sup_pid *out,
                         sup_reason *why);

#endif
