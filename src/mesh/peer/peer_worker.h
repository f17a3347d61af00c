/*
 * src/mesh/peer/peer_worker.h — what the four workers of a peer system share (internal):
 * the peer's record (peer_info, a copy owned by the child spec), the registered name
 * "NAME:HEX16", frame counters, PEER_INFO answers. Each worker file adds its own behaviour
 * on top: peer_worker_init / peer_worker_info / peer_worker_call are its callbacks' common
 * part.
 */
#ifndef MACULA_MESH_PEER_WORKER_H
#define MACULA_MESH_PEER_WORKER_H

#include <stdbool.h>

#include "peer.h"

typedef struct peer_worker {
    sup_rt *rt;
    peer_info info;
    peer_stats stats;
    char name[64];
} peer_worker;

/* Copies the info, registers "base:HEX16". Returns 0. */
int peer_worker_init(sup_actor *self, peer_worker *w, const char *base, const peer_info *info);
/* Counts PEER_FRAME_IN / PEER_FRAME_OUT; returns true when it handled m. */
bool peer_worker_info(sup_actor *self, peer_worker *w, const sup_msg *m);
/* Adds a worker's own fields to its PEER_JSON object (o is a jansson object). */
struct json_t;
typedef void (*peer_worker_json_fn)(struct json_t *o, void *state, uint64_t now_ms);
/* Answers PEER_INFO (peer_stats) and PEER_JSON ({"worker","pid","frames_in","frames_out"} and
 * what more() adds; more may be NULL); anything else with an empty reply. */
void peer_worker_call(sup_actor *self, peer_worker *w, const sup_msg *m, peer_worker_json_fn more,
                      void *state);
/* sup_spawn with SUP_SPAWN_LINK. */
int peer_worker_spawn(sup_rt *rt, sup_pid parent, const sup_behaviour *b, void *arg, sup_pid *out,
                      sup_reason *why);

#endif
