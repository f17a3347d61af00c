/*
 * src/mesh/gateway/rpc.h — macula_gateway_rpc (seed 000, third child of
 * macula_gateway_workers_sup): the node's RPC router (prefix gw_rpc_). It owns the caller's
 * core (mesh/rpc_core.h: provider cache, strategies, failover, timeouts) and the serving core
 * (mesh/rpc_serve.h: local handlers, served calls, advertisements), and carries their actions
 * out. Everything it does is described in docs/rpc.md; in short:
 *
 *  - A client advertises a procedure with CALL com.macula.rpc.advertise {"procedure": P}
 *    (com.macula.rpc.unadvertise the same). The first local handler of P puts "rpc:P" in the
 *    DHT (through macula_bootstrap_registry, TTL 5 min, re-advertised every 4 min); the last
 *    one leaving (unadvertise or disconnect) withdraws it and takes the value out of the DHT.
 *  - A client's CALL: a local handler if there is one (it gets a CALL with an id of the
 *    node's, its REPLY goes back to the caller), else the caller's core: cached providers or a
 *    DHT lookup of "rpc:P", a provider by strategy, an RPC_ROUTE to it, failover on attempt
 *    timeout. CAST: the same without reply.
 *  - Between nodes everything travels as RPC_ROUTE {destination, source, hop_count, max_hops,
 *    payload_type call|reply, payload}: sent on the gateway connection of the destination when
 *    it is connected to us, else handed to macula_routing_server (RS_FORWARD), which sends it
 *    on the mesh pool to the destination or, greedily, to the routing-table contact closest to
 *    it by XOR distance. A node that is not the destination forwards with hop_count + 1; at
 *    max_hops (10) a call is answered max_hops_exceeded. A cast travels as a call with an
 *    empty call_id.
 *  - A client that disconnects: its pending calls are dropped at once (rpcc_caller_down), its
 *    procedures unadvertised, and calls its handlers were serving are answered no_handler (the
 *    caller's node then fails over).
 *
 * Messages (tags below): GW_RPC_FRAME (info: gw_rpc_frame_hdr + one encoded frame) from the
 * gateway (CALL through its call hook; CAST, REPLY, RPC_ROUTE through its frame hook) and from
 * the mesh pool (RPC_ROUTE arriving on our outgoing connections); GW_RPC_CLIENT_DOWN (info:
 * uint64_t conn) from the gateway; GW_RPC_STATS (call) -> gw_rpc_view.
 */
#ifndef MACULA_MESH_GATEWAY_RPC_H
#define MACULA_MESH_GATEWAY_RPC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "macula/config.h"
#include "macula/sup.h"
#include "mesh/rpc_core.h"
#include "mesh/rpc_serve.h"
#include "mesh/wire.h"

#define GW_RPC_ADVERTISE_PROC "com.macula.rpc.advertise"
#define GW_RPC_UNADVERTISE_PROC "com.macula.rpc.unadvertise"
#define GW_RPC_NO_DIRECT_MAX MACULA_CONFIG_MAX_NO_DIRECT

typedef struct gw_rpc_config {
    rpcc_config caller;      /* attempt 5 s, overall 30 s, max_attempts 3, cache 60 s, random */
    uint32_t ttl_ms;         /* advertisement TTL in the DHT [300000] */
    uint32_t readvertise_ms; /* [240000]; must be below ttl_ms */
    uint32_t max_hops;       /* RPC_ROUTE max_hops [10] */
    /* Nodes this node never sends RPC traffic to directly (it routes through another node
     * instead): the node setting rpc_no_direct (gw_rpc_config_apply), for tests of multi-hop
     * routing and networks that forbid the direct path. 0: none. */
    size_t n_no_direct;
    uint8_t no_direct[GW_RPC_NO_DIRECT_MAX][WIRE_NODE_ID_LEN];
} gw_rpc_config;

/* Copies the node settings that belong to the rpc worker (rpc_no_direct) from conf. */
void gw_rpc_config_apply(gw_rpc_config *cfg, const macula_config *conf);

/* A sup_start_fn; arg is a gw_rpc_config that outlives the child spec, or NULL (defaults).
 * The realm and node id are the gateway's (macula_gateway must run). Registers as
 * "macula_gateway_rpc". */
int gw_rpc_start(sup_rt *rt, sup_pid parent, void *arg, void *extra, sup_pid *out, sup_reason *why);

enum {
    GW_RPC_FRAME = 0x5501, /* info: gw_rpc_frame_hdr + one encoded frame */
    GW_RPC_CLIENT_DOWN,    /* info: uint64_t conn */
    GW_RPC_STATS,          /* call: -> gw_rpc_view */
};

enum { GW_RPC_VIA_GATEWAY = 1, GW_RPC_VIA_POOL = 2 };

typedef struct gw_rpc_frame_hdr {
    uint64_t conn;                     /* VIA_GATEWAY: the client's connection */
    uint8_t node_id[WIRE_NODE_ID_LEN]; /* the sender's (proven) node id */
    uint32_t via;                      /* GW_RPC_VIA_* */
} gw_rpc_frame_hdr;

/* Sends a frame to the running rpc worker of rt (from = the sender or SUP_NOPID). Returns what
 * sup_send returns, SUP_ENOPROC when no rpc worker runs, or SUP_ENOMEM. */
int gw_rpc_deliver(sup_rt *rt, sup_pid from, uint32_t via, uint64_t conn,
                   const uint8_t node_id[WIRE_NODE_ID_LEN], const uint8_t *frame, size_t len);

/* Counters for /metrics. */
typedef struct gw_rpc_view {
    rpcc_stats caller;
    rpcs_stats server;
    uint64_t calls_in;          /* CALLs from clients */
    uint64_t casts_in;          /* CASTs from clients */
    uint64_t local_calls;       /* served by a local handler without the DHT */
    uint64_t routes_in;         /* RPC_ROUTE frames received */
    uint64_t routes_forwarded;  /* ... passed on toward another node */
    uint64_t routes_delivered;  /* ... for this node */
    uint64_t routes_sent;       /* RPC_ROUTE frames this node originated */
    uint64_t max_hops_exceeded; /* routes stopped at max_hops */
    uint64_t no_route;          /* routes with no next hop */
    uint64_t realm_mismatch;    /* routed calls of another realm */
    uint64_t lookups_failed;    /* DHT lookups with no answer */
} gw_rpc_view;

/* The running rpc worker's counters (copied); false when none runs. Runtime thread only. */
bool gw_rpc_view_get(const sup_rt *rt, gw_rpc_view *out);

#endif
