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
 *       ├── macula_rpc_handler         RPC traffic with this peer (rpc_handler.c; the RPC
 *       │                              layer fills its behaviour)
 *       └── macula_advertisement_manager  advertisements learned from / made to this peer
 *                                      (advertisement_manager.c; the RPC layer fills it)
 *
 * macula_gateway_mesh starts a peer system when one of its pool connections becomes ready
 * (mesh_peers_start) and stops it when the connection goes (peer_stop). Each worker
 * registers "NAME:PEERHEX16" (the first 16 hex digits of the peer's node id), so tests and
 * the chaos procedure can find one peer's worker.
 */
#ifndef MACULA_MESH_PEER_H
#define MACULA_MESH_PEER_H

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
};

typedef struct peer_stats {
    peer_info info;
    uint64_t frames_out, frames_in; /* this worker's share (connection: all) */
} peer_stats;

/* "NAME:HEX16" into out (at least 64 bytes). */
void peer_name(const char *base, const uint8_t id[32], char *out, size_t cap);
/* The registered pid of one peer's worker, or SUP_NOPID. */
sup_pid peer_whereis(const sup_rt *rt, const char *base, const uint8_t id[32]);

#endif
