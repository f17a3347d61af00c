/*
 * src/mesh/gateway/mesh.h — the mesh connection pool (prefix mesh_pool_): this node's outgoing
 * connections to other nodes, one per address, reused, at most max_conns (1,000, the seed's
 * macula_gateway_mesh bound), the least recently used closed to make room.
 *
 * Each connection is a mesh_client (mesh/client.h): QUIC + TLS with this node's identity, the
 * CONNECT handshake in the node's realm, then frames both ways on one stream. The receiving
 * gateway treats it as a client whose node id is the one our certificate proves.
 *
 *  - mesh_pool_send(id, addr, frame) sends on the connection to addr, opening it when there is
 *    none (id, when given, is the node id the peer must prove: TLS refuses anyone else). Frames
 *    wait in a bounded queue (MESH_POOL_QUEUE_MAX) until CONNECT is accepted; beyond it they
 *    are dropped and counted. An open connection to addr proving another id is replaced.
 *  - cb.on_up: a connection is ready, its peer proved `id`.
 *  - cb.on_frame: a frame arrived (views valid during the call).
 *  - cb.on_down: a connection ended without this side asking (refused, unreachable, lost,
 *    closed by the peer); was_up tells whether it had been ready. Connections this side closes
 *    (LRU eviction, idle, mesh_pool_close, mesh_pool_free) are not reported.
 *  - Keep-alive: every keepalive_ms a PING goes on each ready connection that sent nothing for
 *    that long (gateways drop silent clients after three ping intervals); a connection with no
 *    frame in either direction, other than PING/PONG, for idle_ms is closed.
 *
 * One pool per node (docs/gateway.md "The mesh pool"): macula_root creates it before its
 * children and frees it after they have all ended (mesh/root.h), so no actor's restart closes a
 * connection. Its callbacks go to root's dispatcher, which forwards them as MESH_POOL_MSG_*
 * messages to the registered actors that use the pool: DHT frames to macula_routing_server,
 * every other frame to macula_gateway_mesh, up/down to both. Both send with mesh_pool_send
 * directly (everything runs on the loop's thread; the pool outlives both).
 *
 * Runs on a libuv loop through callbacks (not an actor). The pool outlives mesh_pool_free
 * until its connections and timer have closed (the loop must keep running); no callback is
 * made after mesh_pool_free.
 */
#ifndef MACULA_MESH_GATEWAY_MESH_H
#define MACULA_MESH_GATEWAY_MESH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <uv.h>

#include "mesh/identity.h"
#include "mesh/wire.h"

enum {
    MESH_POOL_OK = 0,
    MESH_POOL_EINVAL = -1, /* bad argument or address */
    MESH_POOL_ENOMEM = -2,
    MESH_POOL_EQUEUE = -3, /* the connection's queue is full: frame dropped */
    MESH_POOL_EOPEN = -4,  /* the connection could not be started */
};
const char *mesh_pool_strerror(int err);

#define MESH_POOL_DEFAULT_MAX 1000u
#define MESH_POOL_DEFAULT_KEEPALIVE_MS 25000u
#define MESH_POOL_DEFAULT_IDLE_MS 300000u
#define MESH_POOL_QUEUE_MAX 64u
#define MESH_POOL_ADDR_MAX 64 /* "host:port" incl. NUL */

/* The pool's events as messages (root's dispatcher -> the actors using the pool). FRAME is a
 * mesh_pool_msg followed by the encoded frame; UP and DOWN are a mesh_pool_msg alone. */
enum { MESH_POOL_MSG_UP = 0x5a01, MESH_POOL_MSG_DOWN, MESH_POOL_MSG_FRAME };
typedef struct mesh_pool_msg {
    bool has_id; /* DOWN: false when no id was expected nor proven */
    uint8_t id[IDENTITY_ID_LEN];
    char addr[MESH_POOL_ADDR_MAX];
    bool was_up;      /* DOWN: the connection had been ready */
    int err;          /* DOWN: MESH_CLIENT_E* (mesh/client.h) */
    char reason[128]; /* DOWN: why */
} mesh_pool_msg;

typedef struct mesh_pool mesh_pool;

typedef struct mesh_pool_callbacks {
    void (*on_up)(mesh_pool *p, const uint8_t id[IDENTITY_ID_LEN], const char *addr, void *ctx);
    void (*on_frame)(mesh_pool *p, const uint8_t id[IDENTITY_ID_LEN], const char *addr,
                     const wire_msg *m, void *ctx);
    /* id: the proven id (was_up) or the expected one, NULL when neither is known. */
    void (*on_down)(mesh_pool *p, const uint8_t *id, const char *addr, bool was_up, int err,
                    const char *reason, void *ctx);
} mesh_pool_callbacks;

typedef struct mesh_pool_config {
    const identity *id; /* required, borrowed (outlives the pool) */
    const char *realm;  /* required, copied */
    uint32_t max_conns; /* 0: MESH_POOL_DEFAULT_MAX */
    uint32_t keepalive_ms;
    uint32_t idle_ms;
    mesh_pool_callbacks cb;
    void *ctx;
} mesh_pool_config;

typedef struct mesh_pool_stats {
    uint32_t conns; /* open or opening */
    uint32_t ready; /* CONNECT accepted */
    uint64_t opened, failed, lost, evicted, idle_closed;
    uint64_t frames_out, frames_in, dropped;
} mesh_pool_stats;

int mesh_pool_new(uv_loop_t *loop, const mesh_pool_config *cfg, mesh_pool **out);
/* Closes every connection; releases the pool once they and its timer are closed. */
void mesh_pool_free(mesh_pool *p);

/* Sends one encoded frame to the node at addr ("host:port"); id NULL or the node id it must
 * prove. MESH_POOL_OK (sent or queued), MESH_POOL_EQUEUE, MESH_POOL_EOPEN, MESH_POOL_EINVAL. */
int mesh_pool_send(mesh_pool *p, const uint8_t *id, const char *addr, const uint8_t *frame,
                   size_t len);
/* Opens (or keeps) the connection to addr without sending (e.g. joining via a bootstrap URL
 * whose node id is not known yet). */
int mesh_pool_connect(mesh_pool *p, const uint8_t *id, const char *addr);
/* Closes the connection to addr, if any (not reported through on_down). */
void mesh_pool_close(mesh_pool *p, const char *addr);
/* True when a ready connection to addr exists; its peer's proven id goes to id (if not NULL). */
bool mesh_pool_is_ready(const mesh_pool *p, const char *addr, uint8_t *id);
void mesh_pool_stats_get(const mesh_pool *p, mesh_pool_stats *out);
/* Calls fn for every ready connection (least recently used first). fn must not open or close
 * connections of this pool. */
void mesh_pool_foreach_ready(const mesh_pool *p,
                             void (*fn)(const uint8_t id[IDENTITY_ID_LEN], const char *addr,
                                        void *ctx),
                             void *ctx);

#endif
