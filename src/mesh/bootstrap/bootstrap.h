/*
 * src/mesh/bootstrap/bootstrap.h — macula_bootstrap_system (seed 000): one_for_one, 10 restarts
 * in 60 s, three independent workers (prefix bs_):
 *
 *   macula_bootstrap_server    the node's DHT front for other nodes: every DHT frame a
 *                              connected node sends to our gateway comes here (RS_FRAME),
 *                              is checked (decodes, sender_id = the connection's TLS-proven
 *                              id), counted by type and handed to macula_routing_server, whose
 *                              core answers it. It also joins the mesh: each bootstrap peer
 *                              URL (MACULA_BOOTSTRAP_PEERS / MACULA_BOOTSTRAP_URL) is joined
 *                              with RS_JOIN; an unreachable peer is retried with exponential
 *                              backoff (retry_min_ms doubling up to retry_max_ms), logged and
 *                              reported in /health, never fatal; no peers: the first node of
 *                              its mesh. When the routing table runs empty later, it joins
 *                              again.
 *   macula_bootstrap_registry  the service registry (advertised RPC endpoints and
 *                              subscriptions: kind, name, node id, address) with a TTL each,
 *                              swept every sweep_ms (60 s); an advertisement is also put in the
 *                              DHT under dht_key(realm, "KIND:NAME"). And the generic key/value
 *                              API over the DHT: BS_KV_PUT / BS_KV_GET with names scoped to
 *                              the node's realm (dht_key(realm, name)).
 *   macula_bootstrap_health    every health_interval_ms (bootstrap_health_interval, 60 s):
 *                              checks the routing server, the bootstrap peers and the
 *                              registry, pings (RS_PING) the nodes of registered services and
 *                              marks those that do not answer unhealthy (BS_REG_MARK);
 *                              reported in /health ("dht") and /metrics.
 */
#ifndef MACULA_MESH_BOOTSTRAP_H
#define MACULA_MESH_BOOTSTRAP_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "macula/sup.h"
#include "mesh/dht/dht.h"

#define BS_PEERS_MAX 32
#define BS_URL_MAX 256

typedef struct bs_config {
    const char *realm;                   /* the node's realm */
    const uint8_t *node_id;              /* this node's id (32 bytes) */
    size_t npeers;                       /* bootstrap peer URLs */
    const char (*peers)[BS_URL_MAX];     /* npeers entries */
    uint32_t health_interval_ms;         /* 0: 60000 */
    uint32_t sweep_ms;                   /* 0: 60000 */
    uint32_t retry_min_ms, retry_max_ms; /* 0: 1000, 60000 */
    uint32_t rejoin_check_ms;            /* 0: 30000 */
    uint32_t max_services;               /* 0: 4096 */
} bs_config;

/* A sup_start_fn; arg is a bs_config that outlives the child specs. */
int bs_system_start(sup_rt *rt, sup_pid parent, void *arg, void *extra, sup_pid *out,
                    sup_reason *why);
int bs_server_start(sup_rt *rt, sup_pid parent, void *arg, void *extra, sup_pid *out,
                    sup_reason *why);
int bs_registry_start(sup_rt *rt, sup_pid parent, void *arg, void *extra, sup_pid *out,
                      sup_reason *why);
int bs_health_start(sup_rt *rt, sup_pid parent, void *arg, void *extra, sup_pid *out,
                    sup_reason *why);

/* ---- macula_bootstrap_server ------------------------------------------------------------- */
typedef enum bs_peer_state {
    BS_PEER_PENDING = 0, /* not tried yet / waiting for its retry */
    BS_PEER_JOINING,
    BS_PEER_JOINED,
    BS_PEER_UNREACHABLE,
} bs_peer_state;
const char *bs_peer_state_name(bs_peer_state s);

typedef struct bs_peer_view {
    char url[BS_URL_MAX];
    bs_peer_state state;
    uint32_t attempts; /* failed attempts since the last success */
    uint32_t joins;    /* successful joins */
    uint64_t next_try_ms;
    char node_id[2 * DHT_ID_LEN + 1]; /* after a join */
    char error[128];                  /* the last failure */
} bs_peer_view;

typedef struct bs_server_view {
    uint64_t queries[6]; /* DHT frames from other nodes, by type FIND_NODE (0x40) .. STORE_ACK */
    uint64_t forwarded;  /* handed to the routing server */
    uint64_t refused_sender;
    uint64_t refused_decode;
    uint64_t dropped_no_routing;
    uint32_t npeers;
    bs_peer_view peers[BS_PEERS_MAX];
} bs_server_view;

enum { BS_SERVER_VIEW = 0x5301 }; /* call: replies a bs_server_view */

/* ---- macula_bootstrap_registry ----------------------------------------------------------- */
#define BS_KIND_MAX 16
#define BS_NAME_MAX 128

typedef struct bs_service {
    char kind[BS_KIND_MAX]; /* "rpc", "sub", ... */
    char name[BS_NAME_MAX]; /* procedure or topic pattern */
    uint8_t node_id[DHT_ID_LEN];
    char addr[DHT_ADDR_MAX + 1]; /* where the node listens */
    uint64_t ttl_ms;             /* 0: 300000 */
} bs_service;

typedef struct bs_service_info {
    bs_service svc;
    uint64_t expires_ms;
    bool healthy;
    uint32_t failed_checks;
} bs_service_info;

typedef struct bs_mark {
    char kind[BS_KIND_MAX];
    char name[BS_NAME_MAX];
    uint8_t node_id[DHT_ID_LEN];
    bool healthy;
} bs_mark;

typedef struct bs_kv_put_req {
    uint64_t ttl_ms;   /* 0: the DHT's default (300 s) */
    uint32_t name_len; /* then the name, then the value */
} bs_kv_put_req;

enum {
    BS_REG_ADVERTISE = 0x5311, /* call: bs_service -> int status (0, DHT_EBUSY when full) */
    BS_REG_WITHDRAW,           /* call: bs_service (kind, name, node_id) -> int status */
    BS_REG_LOOKUP,             /* call: bs_service (kind, name) -> bs_service_info[] */
    BS_REG_LIST,               /* call: -> every bs_service_info */
    BS_REG_MARK,               /* cast: bs_mark */
    BS_KV_PUT,                 /* call: bs_kv_put_req + name + value -> rs_put_rep */
    BS_KV_GET,                 /* call: name -> rs_get_rep + values (routing_server.h) */
    BS_REG_SWEEP,              /* call: sweep now -> uint32_t removed (tests) */
};

typedef struct bs_registry_view {
    uint32_t services, unhealthy;
    uint64_t advertised, withdrawn, expired, sweeps, kv_puts, kv_gets;
} bs_registry_view;

/* ---- macula_bootstrap_health ------------------------------------------------------------- */
typedef struct bs_health_view {
    uint64_t checks;        /* rounds run */
    uint64_t last_check_ms; /* runtime clock */
    bool routing_ok;        /* the routing server runs */
    uint32_t contacts;      /* its table */
    uint32_t peers_joined, peers_unreachable;
    bool registry_ok;
    uint64_t pings, pings_failed; /* service node checks */
} bs_health_view;

enum { BS_HEALTH_CHECK = 0x5321 }; /* call: run a round now -> bs_health_view (tests) */

/* /metrics text for the routing server and the bootstrap workers (malloc'd; NULL when none of
 * them runs on rt). */
char *bootstrap_metrics_prometheus(sup_rt *rt);
/* /health's "dht" object (NULL when the routing server does not run on rt). */
json_t *bootstrap_health_json(sup_rt *rt);

#endif
