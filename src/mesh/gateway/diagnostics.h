/*
 * src/mesh/gateway/diagnostics.h — macula_gateway_diagnostics (seed 000): the diagnostics
 * procedures every node answers over the mesh (MESH.md "Health and diagnostics"):
 *
 *   com.macula.diagnostics.hello  {"message":"hello from <node id hex>","node_id":"<hex>"}
 *   com.macula.diagnostics.echo   its args, verbatim (args must be JSON text; empty args
 *                                 echo as null; anything else is GW_DIAG_EARGS)
 *   com.macula.diagnostics.info   {"node_id":"<hex>","realm":...,"version":...,
 *                                  "uptime":<seconds>,"clients":<n>}
 *   com.macula.diagnostics.peers  {"node_id":"<hex>","count":<peer systems>,"truncated":<bool>,
 *                                  "peers":[{"node_id","addr","since_ms","uptime_s",
 *                                  "frames_in","frames_out","connection":{..},
 *                                  "pubsub_handler":{..},"rpc_handler":{..},
 *                                  "advertisement_manager":{..}}]}: the node's peer systems
 *                                  (mesh/peer/peer.h), each worker's PEER_JSON answer (null
 *                                  when it did not answer in 2 s: restarting, say); at most
 *                                  GW_DIAG_PEERS_MAX peers. Actor only (the pure table
 *                                  answers no_handler); at most 4 at once (busy beyond).
 *
 * Two layers. gw_diag_call is the pure procedure table (no I/O, no actor): the gateway core
 * uses it when no RPC hook takes a call. The actor (gw_diag_start) owns the service's state
 * (its start time, so `uptime` is the diagnostics service's, and a served-calls counter);
 * the gateway actor hands it diagnostics CALLs with gw_diag_request and answers the client
 * when the actor's reply comes back.
 */
#ifndef MACULA_MESH_GATEWAY_DIAGNOSTICS_H
#define MACULA_MESH_GATEWAY_DIAGNOSTICS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "macula/sup.h"

#define GW_DIAG_PREFIX "com.macula.diagnostics."

enum {
    GW_DIAG_OK = 0,
    GW_DIAG_ENOPROC = -1, /* not one of the procedures above: answer no_handler */
    GW_DIAG_EARGS = -2,   /* echo's args are not JSON text: answer invalid_args */
    GW_DIAG_ENOMEM = -3,
    GW_DIAG_EBUSY = -4, /* peers: too many walks at once */
};
#define GW_DIAG_PEERS_MAX 256
/* "ok", "no_handler", "invalid_args", "no_memory", "busy"; the REPLY error code for an
 * error. */
const char *gw_diag_strerror(int err);

typedef struct gw_diag_info {
    const uint8_t *node_id; /* 32 bytes */
    const char *realm;
    const char *version;
    double uptime_s;
    uint32_t clients;
} gw_diag_info;

/* True if proc starts with GW_DIAG_PREFIX. */
bool gw_diag_is_procedure(const uint8_t *proc, size_t len);

/* Runs procedure `proc` with JSON `args`. On GW_DIAG_OK *result is a malloc'd JSON text of
 * *result_len bytes (NUL-terminated too) that the caller frees; otherwise *result is NULL. */
int gw_diag_call(const uint8_t *proc, size_t proc_len, const uint8_t *args, size_t args_len,
                 const gw_diag_info *info, char **result, size_t *result_len);

/* ---- the actor ---------------------------------------------------------------------------- */

typedef struct gw_diag_config {
    const char *realm;
    uint8_t node_id[32];
} gw_diag_config;

/* A sup_start_fn; arg is a gw_diag_config that outlives the child spec. The actor registers
 * as "macula_gateway_diagnostics". */
int gw_diag_start(sup_rt *rt, sup_pid parent, void *arg, void *extra, sup_pid *out,
                  sup_reason *why);

/* The call protocol (tag GW_DIAG_CALL): the request is a gw_diag_req followed by proc_len
 * bytes of procedure and args_len bytes of args; the reply is a gw_diag_rep followed by
 * the result JSON (rc == GW_DIAG_OK) or nothing. */
enum { GW_DIAG_CALL = 1, GW_DIAG_SERVED = 2 /* reply: uint64_t calls served */ };
typedef struct gw_diag_req {
    uint32_t clients;
    uint32_t proc_len;
    uint32_t args_len;
} gw_diag_req;
typedef struct gw_diag_rep {
    int32_t rc;
} gw_diag_rep;

/* Packs a request into a malloc'd buffer (caller frees); NULL when out of memory. */
void *gw_diag_request(uint32_t clients, const uint8_t *proc, size_t proc_len, const uint8_t *args,
                      size_t args_len, size_t *len);

#endif
