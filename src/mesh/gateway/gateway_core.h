/*
 * src/mesh/gateway/gateway_core.h — the gateway's protocol logic, sans I/O (prefix gwc_).
 *
 * The core knows nothing of sockets, QUIC, actors or clocks. It is fed events
 *   gwc_conn_open    a connection was opened (conn id, peer node id from TLS, remote address)
 *   gwc_conn_data    bytes arrived on a connection (cut and coalesced anyhow)
 *   gwc_conn_closed  the transport lost or closed the connection
 *   gwc_tick         time passed (call it at gwc_next_deadline)
 * each with the current time in ms (one monotonic clock; PONG's server_time is that clock
 * plus cfg.wall_offset_ms), and it queues actions the caller carries out in order:
 *   GWC_ACT_SEND         write these bytes (whole frames) on conn
 *   GWC_ACT_CLOSE        close conn with an application code and a reason; the core has
 *                        already forgotten the connection (any later event for it is ignored)
 *   GWC_ACT_CLIENT_UP    a client completed CONNECT (for the clients table)
 *   GWC_ACT_CLIENT_SEEN  a connected client sent PING (last-seen update for the table)
 *   GWC_ACT_CLIENT_DOWN  a client is gone (any reason)
 * Drain them with gwc_next_action after every event.
 *
 * Protocol (MESH.md "Wire format", v0.8 compatible):
 *  - Every connection has its own wire_reader; frames are reassembled across any cuts.
 *  - CONNECT: the realm must equal cfg.realm (else DISCONNECT realm_mismatch + close); the
 *    version must be "1" or start with "1." (else DISCONNECT unsupported_version); node_id
 *    must be 32 bytes (else malformed); when the transport gave a peer node id (from the TLS
 *    certificate), CONNECT's must equal it (else node_id_mismatch). With cfg.max_clients
 *    clients connected, DISCONNECT max_clients_reached. Accepted: PONG {timestamp: now,
 *    server_time} and the client is tracked (node id -> conn, last seen, capabilities,
 *    endpoint, remote address). A node id already connected on another connection is
 *    replaced: the older connection gets DISCONNECT replaced + close (newest wins, so a
 *    client that reconnects after a network change is not locked out until the timeout).
 *    A second CONNECT on one connection is DISCONNECT already_connected.
 *  - Before CONNECT only CONNECT, PING and DISCONNECT are allowed; anything else is
 *    DISCONNECT not_connected + close. At most cfg.max_pending connections may wait for
 *    their CONNECT; one more is DISCONNECT max_pending_reached + close at open.
 *  - PING -> PONG {timestamp: the PING's, server_time}.
 *  - DISCONNECT from the peer: the connection is closed (code GWC_CLOSE_NORMAL) and forgotten.
 *  - Keepalive: a connection with no complete frame for cfg.ping_misses * cfg.ping_interval_ms
 *    (3 x 30 s) is dropped with DISCONNECT ping_timeout.
 *  - A decode error (wire_reader or wire_decode_payload: unsupported_version, unknown_type,
 *    frame_too_large, malformed, limit_exceeded) is DISCONNECT with wire_strerror(err) as
 *    reason, then close (GWC_CLOSE_PROTOCOL); nothing else is affected.
 *  - CALL (connected clients): a call whose realm is not cfg.realm gets REPLY error
 *    realm_mismatch. Otherwise the call hook, if set, may take it (and answer later with
 *    gwc_reply / gwc_reply_error); if it passes, the core answers com.macula.diagnostics.*
 *    itself (gw_diag_call) and anything else with REPLY error no_handler.
 *  - Other frame types after CONNECT (pub/sub, DHT, CAST, REPLY, routes) are offered to the
 *    frame hook (gwc_set_frame_hook) when one is set; frames it passes (or all of them, when
 *    none is set) are counted in stats.frames_unhandled and dropped. gwc_send_frame lets the
 *    layer that took a frame answer on the same connection.
 *
 * Ownership: the core owns everything it allocates (connections, readers, the action queue)
 * and releases it in gwc_free. Bytes of an action are valid until the next event call, the
 * next gwc_reply*, or gwc_free.
 */
#ifndef MACULA_MESH_GATEWAY_CORE_H
#define MACULA_MESH_GATEWAY_CORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "mesh/wire.h"

/* ---- errors ------------------------------------------------------------------------------ */
enum {
    GWC_OK = 0,
    GWC_EINVAL = -1,    /* bad argument or configuration */
    GWC_ENOMEM = -2,    /* allocation failed */
    GWC_EEXIST = -3,    /* gwc_conn_open: this conn id is open already */
    GWC_ENOTFOUND = -4, /* no such connection (or it is not a connected client) */
};
const char *gwc_strerror(int err);

/* ---- configuration ----------------------------------------------------------------------- */
#define GWC_DEFAULT_MAX_CLIENTS 10000u
#define GWC_DEFAULT_MAX_PENDING 1024u
#define GWC_DEFAULT_PING_INTERVAL_MS 30000u
#define GWC_DEFAULT_PING_MISSES 3u
#define GWC_REMOTE_MAX 64 /* remote address text kept per connection, NUL included */

typedef struct gwc_config {
    const char *realm;                 /* required, copied */
    uint8_t node_id[WIRE_NODE_ID_LEN]; /* this node's id */
    const char *version;               /* for .info; NULL = MACULA_VERSION; copied */
    uint32_t max_clients;              /* connected clients; >= 1 */
    uint32_t max_pending;              /* connections waiting for CONNECT; >= 1 */
    uint64_t ping_interval_ms;         /* >= 1 */
    uint32_t ping_misses;              /* >= 1 */
    int64_t wall_offset_ms;            /* server_time = now + this */
    wire_limits limits;                /* per-frame limits */
} gwc_config;

/* Fills the defaults (realm NULL: set it). */
void gwc_config_default(gwc_config *cfg);

/* ---- actions ----------------------------------------------------------------------------- */
typedef enum gwc_action_kind {
    GWC_ACT_SEND = 1,
    GWC_ACT_CLOSE,
    GWC_ACT_CLIENT_UP,
    GWC_ACT_CLIENT_SEEN,
    GWC_ACT_CLIENT_DOWN,
} gwc_action_kind;

/* Application close codes (the QUIC CONNECTION_CLOSE error code). */
enum {
    GWC_CLOSE_NORMAL = 0,   /* the peer said DISCONNECT */
    GWC_CLOSE_PROTOCOL = 1, /* decode error, not_connected, already_connected */
    GWC_CLOSE_REFUSED = 2,  /* realm_mismatch, max_*_reached, node_id_mismatch, version */
    GWC_CLOSE_TIMEOUT = 3,  /* ping_timeout */
    GWC_CLOSE_SHUTDOWN = 4, /* the gateway is stopping */
    GWC_CLOSE_REPLACED = 5, /* the same node id connected again elsewhere */
};

typedef struct gwc_action {
    gwc_action_kind kind;
    uint64_t conn;
    /* SEND: the frame bytes. CLIENT_UP: the endpoint (may be empty). */
    const uint8_t *data;
    size_t len;
    /* CLOSE */
    uint64_t code;
    const char *reason; /* static text: the DISCONNECT reason sent before, or "disconnect" */
    /* CLIENT_UP / CLIENT_SEEN / CLIENT_DOWN */
    uint8_t node_id[WIRE_NODE_ID_LEN];
    uint64_t time_ms;    /* when (the event's now) */
    const uint8_t *caps; /* CLIENT_UP: capabilities, gwc_caps format */
    size_t caps_len;
    uint32_t caps_count;
    const char *remote; /* CLIENT_UP: the remote address given at open ("" if none) */
} gwc_action;

/* Capabilities are carried as a packed list: for each, a u32 big-endian length then bytes.
 * gwc_caps_next walks it: returns true and the next item, or false at the end. */
bool gwc_caps_next(const uint8_t *caps, size_t caps_len, size_t *pos, wire_bytes *item);

/* ---- counters ---------------------------------------------------------------------------- */
typedef enum gwc_refusal {
    GWC_REFUSE_REALM_MISMATCH = 0,
    GWC_REFUSE_MAX_CLIENTS,
    GWC_REFUSE_MAX_PENDING,
    GWC_REFUSE_NODE_ID_MISMATCH,
    GWC_REFUSE_UNSUPPORTED_VERSION,
    GWC_REFUSE_ALREADY_CONNECTED,
    GWC_REFUSE_COUNT
} gwc_refusal;
/* The DISCONNECT reason of a refusal ("realm_mismatch", ...). */
const char *gwc_refusal_name(gwc_refusal r);

#define GWC_DECODE_ERR_COUNT 10 /* indexed by -err for wire errors -1..-9 */

typedef struct gwc_stats {
    uint64_t connects_accepted;
    uint64_t connects_refused[GWC_REFUSE_COUNT];
    uint64_t frames_in[256];                      /* by wire type code (decoded frames) */
    uint64_t frames_out[256];                     /* by wire type code (frames the core sent) */
    uint64_t decode_errors[GWC_DECODE_ERR_COUNT]; /* [-err], e.g. [-WIRE_EMALFORMED] */
    uint64_t not_connected;                       /* frames refused before CONNECT */
    uint64_t ping_timeouts;                       /* connections dropped by the keepalive */
    uint64_t disconnects_in;                      /* DISCONNECTs received */
    uint64_t replaced;         /* connections replaced by a newer one of the same node */
    uint64_t frames_unhandled; /* valid frames no layer handles yet */
    uint64_t frames_hooked;    /* frames the frame hook took */
    uint64_t calls;            /* CALLs received from connected clients */
    uint64_t calls_no_handler; /* answered no_handler */
    uint32_t clients;          /* gauge: connected clients */
    uint32_t pending;          /* gauge: connections waiting for CONNECT */
} gwc_stats;

/* ---- the core ---------------------------------------------------------------------------- */
typedef struct gwc gwc;

/* Creates a core; `now` is its start (uptime for .info). GWC_EINVAL for a bad config. */
int gwc_new(const gwc_config *cfg, uint64_t now, gwc **out);
/* Frees everything. Queued actions are dropped: call gwc_shutdown first to close peers. */
void gwc_free(gwc *g);

/* peer_id: the node id the transport authenticated (32 bytes), or NULL / len 0 when the peer
 * presented none. remote: "host:port" text or NULL (truncated to GWC_REMOTE_MAX - 1).
 * Returns GWC_OK (possibly with a refusal queued), GWC_EEXIST, GWC_EINVAL or GWC_ENOMEM. */
int gwc_conn_open(gwc *g, uint64_t conn, const uint8_t *peer_id, size_t peer_id_len,
                  const char *remote, uint64_t now);
/* Returns GWC_OK (unknown conns are ignored: the core may have closed it), GWC_ENOMEM. */
int gwc_conn_data(gwc *g, uint64_t conn, const uint8_t *data, size_t len, uint64_t now);
/* The transport's close: forgets the connection (CLIENT_DOWN if it was a client). */
int gwc_conn_closed(gwc *g, uint64_t conn, uint64_t now);
/* Runs the keepalive for `now`. */
int gwc_tick(gwc *g, uint64_t now);
/* The earliest time gwc_tick has work, or UINT64_MAX. */
uint64_t gwc_next_deadline(const gwc *g);
/* DISCONNECT shutdown + close to every connection; the core is then empty. */
int gwc_shutdown(gwc *g, uint64_t now);

/* Pops the oldest queued action into *out; false when none is left. */
bool gwc_next_action(gwc *g, gwc_action *out);

/* ---- RPC hook ---------------------------------------------------------------------------- */
enum { GWC_HOOK_PASS = 0, GWC_HOOK_TAKEN = 1 };
/* Offered every CALL of a connected client in the node's realm, decoded (*call) and as it came
 * (*f: its type and payload, so that it can be passed on without encoding it again). Return
 * GWC_HOOK_TAKEN to own the answer (reply now or later with gwc_reply*; views in *call and *f
 * die when the hook returns), GWC_HOOK_PASS to let the core answer. The hook must not call
 * event functions. */
typedef int (*gwc_call_hook)(void *user, gwc *g, uint64_t conn, const wire_call *call,
                             const wire_frame *f, uint64_t now);
void gwc_set_call_hook(gwc *g, gwc_call_hook hook, void *user);

/* Queues REPLY {call_id, result} (JSON text) to conn. GWC_ENOTFOUND if conn is no longer a
 * connected client (the answer is dropped), GWC_ENOMEM. */
int gwc_reply(gwc *g, uint64_t conn, wire_bytes call_id, const uint8_t *result, size_t len);
/* Queues REPLY {call_id, error {code, message}}. */
int gwc_reply_error(gwc *g, uint64_t conn, wire_bytes call_id, const char *code,
                    const char *message);

/* ---- frame hook ------------------------------------------------------------------------- */
/* The sender of a hooked frame: its connection, the node id it connected with and whether the
 * transport proved that id (TLS certificate; CONNECT's node_id must then equal it), and the
 * remote address given at open ("" if none). */
typedef struct gwc_peer {
    uint64_t conn;
    const uint8_t *node_id; /* WIRE_NODE_ID_LEN bytes */
    bool proven;
    const char *remote;
} gwc_peer;
/* Offered every frame of a connected client whose type the core does not own (anything but
 * CONNECT, PING, PONG, DISCONNECT and CALL), after it decoded. `f` is the raw frame (type,
 * payload), `m` its decoding; both die when the hook returns. Return GWC_HOOK_TAKEN when a
 * layer took the frame, GWC_HOOK_PASS to have it counted as unhandled. The hook must not call
 * event functions (gwc_send_frame is fine). */
typedef int (*gwc_frame_hook)(void *user, gwc *g, const gwc_peer *peer, const wire_frame *f,
                              const wire_msg *m, uint64_t now);
void gwc_set_frame_hook(gwc *g, gwc_frame_hook hook, void *user);

/* Queues one whole encoded frame (header + payload, as wire_encode writes it) to conn, counted
 * in frames_out by its type. GWC_ENOTFOUND if conn is not a connected client, GWC_EINVAL if
 * the bytes are not one frame with a known type, GWC_ENOMEM. */
int gwc_send_frame(gwc *g, uint64_t conn, const uint8_t *frame, size_t len);
/* Frames the frame hook took but could not hand on after all (the layer that was to get them
 * was gone when they were sent): moved from frames_hooked to frames_unhandled. */
void gwc_count_unhandled(gwc *g, uint64_t n);
/* The same frame to each of n connections (conns: n ids, unaligned bytes are fine), checked
 * and stored once. Connections that are not connected clients are skipped. Returns how many
 * it was queued to, or GWC_EINVAL / GWC_ENOMEM (nothing queued). */
int gwc_send_frame_many(gwc *g, const uint8_t *conns, size_t n, const uint8_t *frame, size_t len);

/* ---- inspection -------------------------------------------------------------------------- */
const gwc_stats *gwc_stats_get(const gwc *g);
const gwc_config *gwc_config_get(const gwc *g);
uint64_t gwc_started_ms(const gwc *g);

typedef struct gwc_client_info {
    uint64_t conn;
    bool connected; /* CONNECT accepted */
    uint8_t node_id[WIRE_NODE_ID_LEN];
    uint64_t opened_ms, connected_ms, last_seen_ms;
    const char *remote;
    wire_bytes endpoint;
    const uint8_t *caps; /* gwc_caps format */
    size_t caps_len;
    uint32_t caps_count;
} gwc_client_info;
/* Fills *out for an open connection; views live until the next event. */
int gwc_conn_info(const gwc *g, uint64_t conn, gwc_client_info *out);
/* The connection of a connected client, by node id; GWC_ENOTFOUND. */
int gwc_client_conn(const gwc *g, const uint8_t node_id[WIRE_NODE_ID_LEN], uint64_t *conn);
/* Calls fn for every connected client (in keepalive order). fn must not call into g. */
void gwc_foreach_client(const gwc *g, void (*fn)(const gwc_client_info *ci, void *user),
                        void *user);
/* Bytes the core holds on the heap (connections, readers, tables, queue). */
size_t gwc_memory(const gwc *g);

#endif
