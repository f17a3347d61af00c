/*
 * src/mesh/routing_server.h — macula_routing_server (seed 000, first child of macula_root): the
 * actor that owns the node's Kademlia core (mesh/dht/dht.h) with real time, and carries its
 * messages between nodes (prefix rs_).
 *
 * Transport (docs/dht.md "The node"):
 *  - Outgoing: requests (and replies to frames that came over pool connections) go through
 *    the node's one mesh connection pool (mesh/gateway/mesh.h, owned by macula_root and shared
 *    with macula_gateway_mesh): a QUIC connection per address with this node's identity,
 *    CONNECTed in the node's realm; the peer's TLS-proven id must be the contact's id.
 *  - Incoming: DHT frames that other nodes send to our gateway reach us as RS_FRAME messages
 *    (from macula_bootstrap_server, which counts them) with the gateway connection, the node
 *    id the connection proved and its remote address; replies go back on that connection
 *    (macula_gateway, GW_SEND_FRAME).
 *  - A frame whose sender_id is not the connection's proven id is refused (counted, dropped).
 *    A sender_address with an unspecified host (0.0.0.0, ::) takes the host the connection
 *    came from: a node need not know the address others reach it at.
 *  - DHT frames arriving on pool connections, and the pool's up/down events, come from root's
 *    dispatcher as MESH_POOL_MSG_* messages (gateway/mesh.h).
 *  - A pool connection that was up and is lost → dht_remove_contact.
 * One runtime timer is armed at dht_next_deadline; after every input the outputs and events
 * are drained.
 *
 * API (sup_call to the registered name "macula_routing_server"):
 *   RS_JOIN  "https://HOST:PORT" → rs_join_rep: connects, learns the peer's id, dht_bootstrap;
 *            answers when the self-lookup completed (status 0) or the connection failed.
 *   RS_PUT   rs_put_req + value → rs_put_rep (DHT_EV_PUT).
 *   RS_GET   dht_id → rs_get_rep, then per value a uint32_t length and the bytes.
 *   RS_PING  rs_ping_req → int status (0 answered, DHT_ETIMEDOUT).
 *   RS_JSON  "procedure\0args-json" → rs_json_rep + text: the CLI's procedures
 *            com.macula.dht.{put,get,peers} (keys are realm-scoped names: dht_key(realm, key)).
 *   RS_FORWARD rs_forward_req + frame → rs_forward_rep: RPC_ROUTE's next hop (see below).
 *   RS_UNPUT dht_id → int: stop publishing a value (copies die at their TTL).
 * Info: RS_FRAME (rs_frame_hdr + frame bytes); MESH_POOL_MSG_UP / DOWN / FRAME.
 *
 * Published for /metrics and /health (rs_view_get): the DHT's and the pool's counters.
 */
#ifndef MACULA_MESH_ROUTING_SERVER_H
#define MACULA_MESH_ROUTING_SERVER_H

#include <stdbool.h>
#include <stdint.h>

#include "macula/sup.h"
#include "mesh/dht/dht.h"
#include "mesh/gateway/mesh.h"
#include "mesh/identity.h"

typedef struct rs_config {
    const identity *id; /* the node's identity (NULL: tests of the core path) */
    const char *realm;  /* the node's realm */
    dht_config dht;     /* k and alpha from the node's configuration */
    /* The node's mesh pool, borrowed (macula_root's; outlives this actor). NULL: no transport
     * to other nodes (RS_JOIN answers "no transport", sends are counted as failed). */
    mesh_pool *pool;
    /* Host written in our sender_address (NULL: "0.0.0.0": peers use the host they see). */
    const char *advertise_host;
    /* Our QUIC port; 0: ask macula_gateway_quic_server for the bound port. */
    uint16_t port;
} rs_config;

/* Defaults: dht_config_default, no identity, no pool. */
void rs_config_default(rs_config *cfg);

/* A sup_start_fn; arg is an rs_config that outlives the child spec. Registers as
 * "macula_routing_server". */
int rs_start(sup_rt *rt, sup_pid parent, void *arg, void *extra, sup_pid *out, sup_reason *why);

enum {
    RS_FRAME = 0x5201, /* info: rs_frame_hdr + the frame */
    RS_JOIN,           /* call */
    RS_PUT,            /* call */
    RS_GET,            /* call */
    RS_PING,           /* call */
    RS_JSON,           /* call */
    RS_STATS,          /* call: replies an rs_view */
    RS_FORWARD,        /* call: rs_forward_req + one frame -> rs_forward_rep */
    RS_UNPUT,          /* call: dht_id -> int status (dht_unput) */
};

/* RS_FORWARD (the RPC layer's routes, gateway/rpc.h): sends the frame on the mesh pool to
 * `dest` when it is in the routing table (and !no_direct), else to the contact closest to dest
 * by XOR distance (rpcs_next_hop), never to `exclude` (the node the frame came from). */
typedef struct rs_forward_req {
    uint8_t dest[DHT_ID_LEN];
    uint8_t exclude[DHT_ID_LEN];
    bool has_exclude;
    bool no_direct;
} rs_forward_req;

typedef struct rs_forward_rep {
    int status;               /* 0 sent (or queued), DHT_ENOTFOUND no next hop, DHT_EPROTO */
    uint8_t next[DHT_ID_LEN]; /* the next hop */
} rs_forward_rep;

#define RS_REMOTE_MAX 64

typedef struct rs_frame_hdr {
    uint64_t conn;               /* the gateway connection */
    uint8_t node_id[DHT_ID_LEN]; /* the id the connection proved (CONNECT's, checked by TLS) */
    char remote[RS_REMOTE_MAX];  /* "host:port" the connection came from */
} rs_frame_hdr;

typedef struct rs_join_rep {
    int status; /* 0, DHT_ETIMEDOUT, or DHT_EPROTO when the connection failed */
    dht_id id;  /* the peer's proven id */
    uint32_t contacts;
    char reason[128];
} rs_join_rep;

typedef struct rs_put_req {
    dht_id key;
    uint64_t ttl_ms; /* 0: the DHT's value_ttl_ms */
} rs_put_req;

typedef struct rs_put_rep {
    int status;
    uint32_t stored, hops;
} rs_put_rep;

typedef struct rs_get_rep {
    int status; /* 0 found, DHT_ENOTFOUND, DHT_ETIMEDOUT, ... */
    uint32_t nvalues, hops, queries;
} rs_get_rep;

typedef struct rs_ping_req {
    dht_id id;
    char addr[DHT_ADDR_MAX + 1];
} rs_ping_req;

typedef struct rs_json_rep {
    int rc;        /* 0: text is the result JSON; else text is the error message */
    char code[32]; /* error code (e.g. "invalid_args", "timeout") */
} rs_json_rep;

/* The published view. */
typedef struct rs_view {
    dht_stats dht;
    uint32_t contacts;
    mesh_pool_stats pool;
    uint64_t frames_in;      /* DHT frames accepted (gateway + pool) */
    uint64_t frames_out;     /* DHT frames sent (gateway + pool) */
    uint64_t refused_sender; /* sender_id not the connection's id */
    uint64_t refused_decode; /* not a valid DHT frame */
    uint64_t send_failed;    /* pool or gateway could not take a frame */
    uint64_t contacts_lost;  /* dht_remove_contact after a lost connection */
    uint64_t api_calls;      /* RS_PUT/GET/JSON/JOIN/PING */
} rs_view;

/* The running routing server's view (copied), false when none runs. Runtime thread only. */
bool rs_view_get(const sup_rt *rt, rs_view *out);

/* Views published by the routing and bootstrap actors for the HTTP endpoints (keyed by runtime,
 * like gateway/registry.h). */
typedef enum rs_slot {
    RS_SLOT_ROUTING = 0,
    RS_SLOT_BS_SERVER,
    RS_SLOT_BS_REGISTRY,
    RS_SLOT_BS_HEALTH,
    RS_SLOT_COUNT
} rs_slot;
void rs_slot_set(const void *rt, rs_slot slot, const void *ptr);
void rs_slot_clear(const void *rt, rs_slot slot, const void *ptr);
const void *rs_slot_get(const void *rt, rs_slot slot);

/* Replaces an unspecified host (empty, 0.0.0.0, ::, [::]) in addr ("host:port") by the host of
 * seen ("host:port" or "[v6]:port"). out has DHT_ADDR_MAX + 1 bytes. False when addr has no
 * port or the result does not fit. */
bool rs_fix_addr(const char *addr, const char *seen, char *out);

#endif
