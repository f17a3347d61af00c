/*
 * src/mesh/peer/peer.h — macula_peers_sup and the per-connection peer systems (seed 000):
 *
 *   macula_peers_sup               simple_one_for_one, temporary children (peers_sup.c)
 *   └── macula_peer_system         rest_for_one 10 / 60 s, auto-shutdown when its connection
 *       │                          worker ends normally (peer_system.c), one per mesh connection
 *       ├── macula_connection          the connection's record (peer id, address, since,
 *       │                              frames each way); significant, transient: stopping it
 *       │                              (PEER_STOP) ends the whole peer system (connection.c)
 *       ├── macula_pubsub_handler      pub/sub traffic with this peer: routes sent, PUBACKs
 *       │                              received (pubsub_handler.c)
 *       ├── macula_rpc_handler         RPC traffic with this peer: RPC_ROUTE calls sent to /
 *       │                              received from it, in flight by call id (procedure,
 *       │                              direction, age), results / errors each way, casts
 *       │                              (rpc_handler.c; fed by macula_gateway_rpc, PEER_RPC_NOTE)
 *       └── macula_advertisement_manager  the procedures this peer is known to provide: named
 *                                      by a provider lookup, or it answered a call; forgotten
 *                                      at the advertisement TTL or when it answers no_handler
 *                                      (advertisement_manager.c; PEER_ADV_NOTE)
 *
 * macula_gateway_mesh keeps one peer system per peer that a ready connection of the node's one
 * mesh pool proves (DHT, pub/sub or RPC alike): it starts it on MESH_POOL_MSG_UP
 * (mesh_peers_start), adopts running ones after its own restart, and stops it on DOWN and in
 * its 5 s reconcile (also orphans); it does not stop them when it ends. Each worker
 * registers "NAME:PEERHEX16" (the first 16 hex digits of the peer's node id), so tests and
 * the chaos procedure can find one peer's worker.
 *
 * Each worker owns its state alone: a crash of macula_rpc_handler loses that peer's RPC
 * accounting (and, rest_for_one, its advertisement manager's list) and nothing else; the
 * node's RPC state (pending calls, served calls, the provider cache) lives in
 * macula_gateway_rpc. Notes to a worker that is not there (no peer system for that node, or
 * a worker restarting) are dropped: they are accounting, never needed for a call to work.
 *
 * Every worker answers PEER_JSON with its state as one JSON object (text, NUL-terminated);
 * com.macula.diagnostics.peers (gateway/diagnostics.c) gathers them for `macula peers`.
 */
#ifndef MACULA_MESH_PEER_H
#define MACULA_MESH_PEER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "macula/sup.h"

#define PEER_ADDR_MAX 64

typedef struct peer_info {
    uint8_t id[32];
    char addr[PEER_ADDR_MAX];
    uint64_t since_ms; /* runtime clock when the connection became ready */
} peer_info;

/* A sup_start_fn for macula_root's child "macula_peers_sup" (arg unused). Registers the
 * name "macula_peers_sup". */
int mesh_peers_sup_start(sup_rt *rt, sup_pid parent, void *arg, void *extra, sup_pid *out,
                         sup_reason *why);
/* The peer system's start function (the peers_sup template); extra is a peer_info that must
 * stay valid until the start call was handled (it is copied). */
int peer_system_start(sup_rt *rt, sup_pid parent, void *arg, void *extra, sup_pid *out,
                      sup_reason *why);

/* Worker start functions; arg is a peer_info owned by the child spec. */
int peer_connection_start(sup_rt *rt, sup_pid parent, void *arg, void *extra, sup_pid *out,
                          sup_reason *why);
int peer_pubsub_handler_start(sup_rt *rt, sup_pid parent, void *arg, void *extra, sup_pid *out,
                              sup_reason *why);
int peer_rpc_handler_start(sup_rt *rt, sup_pid parent, void *arg, void *extra, sup_pid *out,
                           sup_reason *why);
int peer_advertisement_manager_start(sup_rt *rt, sup_pid parent, void *arg, void *extra,
                                     sup_pid *out, sup_reason *why);

enum {
    PEER_STOP = 0x5501, /* info to macula_connection:HEX: end this peer system */
    PEER_FRAME_OUT,     /* info to connection / handlers: uint8_t frame type, sent */
    PEER_FRAME_IN,      /* info: uint8_t frame type, received */
    PEER_INFO,          /* call to any peer worker: replies peer_stats */
    PEER_JSON,          /* call to any peer worker: replies its state as JSON text */
    PEER_RPC_NOTE,      /* info to macula_rpc_handler:HEX: one peer_rpc_note */
    PEER_ADV_NOTE,      /* info to macula_advertisement_manager:HEX: one peer_adv_note */
};

/* ---- RPC accounting (macula_rpc_handler) ------------------------------------------------ */

#define PEER_CALL_ID_MAX 16       /* call id bytes kept (longer ids: the first 16) */
#define PEER_PROC_MAX 48          /* procedure bytes kept per call (longer: cut) */
#define PEER_RPC_INFLIGHT_MAX 64  /* calls in flight kept per peer; the oldest goes first */
#define PEER_RPC_EXPIRE_MS 60000u /* a call with no word for this long is dropped (expired) */
#define PEER_RPC_JSON_INFLIGHT 16 /* in-flight calls listed by PEER_JSON */

typedef enum peer_rpc_kind {
    PEER_RPC_CALL_OUT = 1, /* an RPC_ROUTE call sent to this peer (destination or next hop) */
    PEER_RPC_CALL_IN,      /* an RPC_ROUTE call received from this peer */
    PEER_RPC_REPLY_OUT,    /* a reply sent to this peer (is_error: an error reply) */
    PEER_RPC_REPLY_IN,     /* a reply received from this peer */
    PEER_RPC_CAST_OUT,     /* a cast (a call without call id) sent to this peer */
    PEER_RPC_CAST_IN,      /* ... received from it */
    PEER_RPC_GONE,         /* a call of ours sent to this peer ended without its reply coming
                              back through it (answered via another peer: is_error 0; timed
                              out, failed over or failed: is_error 1) */
} peer_rpc_kind;

typedef struct peer_rpc_note {
    uint8_t kind; /* peer_rpc_kind */
    uint8_t is_error;
    uint8_t call_id_len; /* <= PEER_CALL_ID_MAX */
    uint8_t proc_len;    /* <= PEER_PROC_MAX; 0 for replies */
    uint8_t call_id[PEER_CALL_ID_MAX];
    char procedure[PEER_PROC_MAX];
} peer_rpc_note;

/* Sends a note to macula_rpc_handler of peer `id` (no copy of the frame: a fixed 68-byte
 * message). Returns false when that worker is not running (the note is dropped). */
bool peer_rpc_note_send(sup_rt *rt, sup_pid from, const uint8_t id[32], peer_rpc_kind kind,
                        const uint8_t *call_id, size_t call_id_len, const char *procedure,
                        size_t proc_len, bool is_error);
/* Fills a note (cut to the limits above) without sending it. */
void peer_rpc_note_make(peer_rpc_note *n, peer_rpc_kind kind, const uint8_t *call_id,
                        size_t call_id_len, const char *procedure, size_t proc_len, bool is_error);
/* Sends a note made earlier (peer_rpc_note_make); false when the worker is not running. */
bool peer_rpc_note_post(sup_rt *rt, sup_pid from, const uint8_t id[32], const peer_rpc_note *n);

/* ---- advertisements (macula_advertisement_manager) -------------------------------------- */

#define PEER_ADV_MAX 32         /* procedures kept per peer; the least recently seen goes */
#define PEER_ADV_NAME_MAX 127   /* procedure bytes (longer names are not kept) */
#define PEER_ADV_TTL_MS 300000u /* the advertisement TTL (docs/rpc.md): unseen for this long */

typedef enum peer_adv_kind {
    PEER_ADV_LOOKUP = 1, /* a DHT lookup of "rpc:P" named this peer a provider of P */
    PEER_ADV_ANSWERED,   /* this peer answered a call to P (a result or a handler's error) */
    PEER_ADV_NO_HANDLER, /* this peer answered no_handler for P: it provides P no more */
} peer_adv_kind;

typedef struct peer_adv_note {
    uint8_t kind; /* peer_adv_kind */
    uint8_t name_len;
    char name[PEER_ADV_NAME_MAX];
} peer_adv_note;

/* Sends a note to macula_advertisement_manager of peer `id`; false when it is not running or
 * the name is empty or longer than PEER_ADV_NAME_MAX. */
bool peer_adv_note_send(sup_rt *rt, sup_pid from, const uint8_t id[32], peer_adv_kind kind,
                        const char *procedure, size_t len);

typedef struct peer_stats {
    peer_info info;
    uint64_t frames_out, frames_in; /* this worker's share (connection: all) */
} peer_stats;

/* "NAME:HEX16" into out (at least 64 bytes). */
void peer_name(const char *base, const uint8_t id[32], char *out, size_t cap);
/* The registered pid of one peer's worker, or SUP_NOPID. */
sup_pid peer_whereis(const sup_rt *rt, const char *base, const uint8_t id[32]);

#endif
