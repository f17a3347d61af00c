/*
 * src/mesh/rpc_serve.h — the serving side of mesh RPC as a state machine (MESH.md "RPC"),
 * sans I/O (prefix rpcs_). The caller's side is rpc_core.h; the gateway's rpc worker
 * (gateway/rpc.c) drives both with real time.
 *
 * It holds:
 *  - the local handler registry: procedure -> the connections (clients of this node's gateway)
 *    that advertised it. The first handler of a procedure queues RPCS_ACT_ADVERTISE (put it in
 *    the DHT), the last one leaving queues RPCS_ACT_UNADVERTISE (take it out). While a
 *    procedure has handlers, RPCS_ACT_ADVERTISE comes again every readvertise_ms (4 min, before
 *    the 5 min TTL of the advertisement runs out). Calls pick a handler round robin.
 *  - the served calls: a call handed to a local handler gets an id of its own (the handler
 *    sees that id, never the caller's, so callers cannot collide) and remembers its origin: a
 *    client of this gateway (its connection and call_id) or another node (the RPC_ROUTE's
 *    source node id and call_id). rpcs_reply matches the handler's REPLY and gives the origin
 *    back. A served call whose handler does not answer by its deadline ends with
 *    RPCS_ACT_FAIL "timeout"; one whose handler disconnects ends with RPCS_ACT_FAIL
 *    "no_handler" at once (so the caller's node fails over to another provider).
 *  - two pure routing helpers for RPC_ROUTE: rpcs_route_decide (deliver here, forward, or
 *    max_hops_exceeded) and rpcs_next_hop (greedy by XOR distance toward the destination).
 *
 * Actions (RPCS_ACT_*) are polled with rpcs_next_action after any input. Limits: max_procs
 * procedures, max_handlers handlers per procedure, max_served calls in flight (RPCS_ELIMIT
 * beyond), procedure names up to RPCS_MAX_PROC bytes, call ids up to RPCS_CALL_ID_MAX bytes.
 */
#ifndef MACULA_MESH_RPC_SERVE_H
#define MACULA_MESH_RPC_SERVE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define RPCS_ID_LEN 16      /* ids of served calls */
#define RPCS_CALL_ID_MAX 64 /* callers' call ids kept per served call */
#define RPCS_MAX_PROC 256   /* procedure name bytes */
#define RPCS_NODE_ID_LEN 32
#define RPCS_MAX_HOPS 10 /* RPC_ROUTE's default max_hops */

enum {
    RPCS_OK = 0,
    RPCS_EINVAL = -1, /* bad argument (empty or oversized procedure or call id) */
    RPCS_ENOMEM = -2,
    RPCS_EEXIST = -3, /* this connection already handles the procedure */
    RPCS_ELIMIT = -4, /* max_procs, max_handlers or max_served reached */
    RPCS_ENOENT = -5, /* no such handler / served call */
};
const char *rpcs_strerror(int err);

typedef struct rpcs_config {
    uint32_t readvertise_ms; /* [240000] */
    uint32_t max_procs;      /* [4096] */
    uint32_t max_handlers;   /* per procedure [64] */
    uint32_t max_served;     /* [100000] */
    uint64_t seed;           /* salt of served-call ids [a fixed constant] */
} rpcs_config;

/* Where a served call came from, and so where its REPLY goes. */
typedef enum rpcs_from { RPCS_FROM_CLIENT = 1, RPCS_FROM_NODE } rpcs_from;
typedef struct rpcs_origin {
    rpcs_from kind;
    uint64_t conn;                  /* CLIENT: the caller's gateway connection */
    uint8_t node[RPCS_NODE_ID_LEN]; /* NODE: the RPC_ROUTE's source node */
    uint8_t call_id[RPCS_CALL_ID_MAX];
    size_t call_id_len;
} rpcs_origin;

typedef enum rpcs_action_kind {
    RPCS_ACT_ADVERTISE = 1, /* put `procedure` in the DHT (TTL 5 min) */
    RPCS_ACT_UNADVERTISE,   /* take it out */
    RPCS_ACT_FAIL,          /* answer `origin` with error `code` ("timeout", "no_handler") */
} rpcs_action_kind;

typedef struct rpcs_action {
    rpcs_action_kind kind;
    char procedure[RPCS_MAX_PROC + 1]; /* ADVERTISE, UNADVERTISE */
    rpcs_origin origin;                /* FAIL */
    const char *code;                  /* FAIL: static text */
    const char *message;               /* FAIL: static text */
} rpcs_action;

typedef struct rpcs rpcs;

/* NULL when out of memory. cfg may be NULL (defaults). */
rpcs *rpcs_new(const rpcs_config *cfg);
void rpcs_free(rpcs *s);

/* `conn` handles `procedure` from now on. RPCS_EEXIST when it already does. */
int rpcs_advertise(rpcs *s, const char *procedure, uint64_t conn, uint64_t now_ms);
/* `conn` no longer handles `procedure`. RPCS_ENOENT when it did not. */
int rpcs_unadvertise(rpcs *s, const char *procedure, uint64_t conn, uint64_t now_ms);
/* The connection is gone: its procedures are unadvertised and its served calls fail with
 * "no_handler". Returns how many served calls failed. */
size_t rpcs_handler_down(rpcs *s, uint64_t conn, uint64_t now_ms);
/* A handler for procedure (round robin), false when none. */
bool rpcs_pick(rpcs *s, const char *procedure, size_t len, uint64_t *conn);
/* How many handlers the procedure has here. */
size_t rpcs_handlers(const rpcs *s, const char *procedure, size_t len);

/* Hands a call from `origin` to handler `conn` until `deadline_ms`; writes the served call's
 * id (what the handler's CALL carries) to id. */
int rpcs_serve(rpcs *s, const rpcs_origin *origin, uint64_t conn, uint64_t deadline_ms,
               uint8_t id[RPCS_ID_LEN]);
/* The handler on `conn` answered `id`: the served call ends and its origin goes to *out.
 * RPCS_ENOENT when no such call is served by that connection (late or foreign: dropped). */
int rpcs_reply(rpcs *s, const uint8_t *id, size_t id_len, uint64_t conn, rpcs_origin *out);

void rpcs_tick(rpcs *s, uint64_t now_ms);
uint64_t rpcs_next_deadline(const rpcs *s);
bool rpcs_next_action(rpcs *s, rpcs_action *out);

typedef struct rpcs_stats {
    uint32_t procedures;   /* with at least one local handler */
    uint32_t handlers;     /* (procedure, connection) pairs */
    size_t served_pending; /* calls in local handlers now */
    uint64_t served, replied, timeouts, handler_lost, advertisements, unadvertisements;
} rpcs_stats;
void rpcs_get_stats(const rpcs *s, rpcs_stats *out);

/* ---- routing helpers (pure) ---------------------------------------------------------------- */
typedef enum rpcs_route {
    RPCS_ROUTE_LOCAL = 0, /* the destination is this node */
    RPCS_ROUTE_FORWARD,   /* pass it on with hop_count + 1 */
    RPCS_ROUTE_MAX_HOPS,  /* hop_count reached max_hops: answer max_hops_exceeded */
    RPCS_ROUTE_INVALID,   /* destination is not a node id */
} rpcs_route;
/* max_hops 0 counts as RPCS_MAX_HOPS; a max_hops above RPCS_MAX_HOPS is capped there. */
rpcs_route rpcs_route_decide(const uint8_t self[RPCS_NODE_ID_LEN], const uint8_t *dest,
                             size_t dest_len, uint32_t hop_count, uint32_t max_hops);
/* The next hop toward dest among n candidate node ids: dest itself when it is a candidate and
 * allow_dest, else the candidate closest to dest by XOR distance, never self nor `exclude`
 * (the node the message came from; NULL: none). Returns its index or -1. */
int rpcs_next_hop(const uint8_t self[RPCS_NODE_ID_LEN], const uint8_t dest[RPCS_NODE_ID_LEN],
                  const uint8_t (*cands)[RPCS_NODE_ID_LEN], size_t n, const uint8_t *exclude,
                  bool allow_dest);

#endif
