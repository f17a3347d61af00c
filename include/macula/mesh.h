/*
 * macula/mesh.h — the client API, the one header a program includes: a C program connects to
 * a Macula node and publishes, subscribes, calls and serves procedures.
 *
 *   connect / disconnect / node_id      macula_mesh_connect, _disconnect, _node_id (below)
 *   publish / subscribe / unsubscribe   macula_mesh_publish, _subscribe, _unsubscribe, _run
 *   call / cast / advertise /           macula_rpc_call, _cast, _advertise, _unadvertise,
 *   unadvertise                         _respond (macula/mesh_rpc.h, included here), on a
 *                                       macula_rpc connection (macula_rpc_open / _close)
 *
 * examples/mesh.c uses both halves; docs/pubsub.md and docs/rpc.md describe the protocols.
 * The pub/sub half below:
 *
 * A connection runs its own event loop, driven inside the API's calls: macula_mesh_connect
 * returns once the node accepted CONNECT; macula_mesh_publish with QoS 1 returns once the
 * node acknowledged (retrying meanwhile); deliveries to subscription callbacks happen inside
 * macula_mesh_run (or any other call that runs the loop). Keep calling macula_mesh_run: the
 * connection sends its keep-alive PING from there (a node drops a client silent for 90 s).
 * One thread per connection; callbacks run on the caller's thread.
 *
 * Identity: each connection presents a throw-away certificate made in a private temporary
 * directory (a client is not a member of the mesh), removed at disconnect.
 *
 * Delivery guarantees: QoS 0 at most once; QoS 1 at least once on the wire, and exactly once
 * to the callbacks for messages seen within the de-duplication window (5 min, by message_id).
 * A message matching several of this connection's subscriptions reaches each one's callback
 * with that subscription's pattern.
 */
#ifndef MACULA_MESH_API_H
#define MACULA_MESH_API_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

enum {
    MACULA_MESH_OK = 0,
    MACULA_MESH_EINVAL = -1, /* bad URL, topic, pattern or argument */
    MACULA_MESH_ENOMEM = -2,
    MACULA_MESH_ECONNECT = -3,  /* could not connect, or the node refused (see last_error) */
    MACULA_MESH_ECLOSED = -4,   /* the connection is gone */
    MACULA_MESH_ETIMEDOUT = -5, /* no answer in time (QoS 1 PUBACK, connect) */
    MACULA_MESH_EEXIST = -6,    /* subscribe: this pattern is subscribed already */
    MACULA_MESH_ENOENT = -7,    /* unsubscribe: not subscribed */
};
const char *macula_mesh_strerror(int err);

typedef struct macula_mesh macula_mesh;

typedef struct macula_mesh_options {
    const char *realm;   /* NULL: "macula.default" */
    uint32_t timeout_ms; /* connect and QoS 1 publish bound; 0: 10,000 */
    uint32_t drop_acks;  /* testing aid: withhold the first N PUBACKs for deliveries (the
                            node then retries; the duplicates must not reach callbacks) */
} macula_mesh_options;

/* Connects to url ("https://HOST:PORT") and waits for the node's acceptance. */
int macula_mesh_connect(const char *url, const macula_mesh_options *opts, macula_mesh **out);
/* Sends DISCONNECT, closes, frees. NULL is a no-op. */
void macula_mesh_disconnect(macula_mesh *m);
/* The node's id (32 bytes, proven by its certificate). */
const uint8_t *macula_mesh_node_id(const macula_mesh *m);
/* The reason of the last failure (a DISCONNECT reason or a transport error), or "". */
const char *macula_mesh_last_error(const macula_mesh *m);

/* ---- pub/sub ------------------------------------------------------------------------------ */

/* A delivery: the topic, the pattern of the subscription it matched, the payload. Views are
 * valid during the call. */
typedef void (*macula_mesh_message_fn)(void *ctx, const char *topic, size_t topic_len,
                                       const char *pattern, const uint8_t *payload,
                                       size_t payload_len);

/* Publishes. qos 1 returns once the node acknowledged (MACULA_MESH_ETIMEDOUT after
 * timeout_ms). qos 0 returns once the message is queued on the connection: it is sent when the
 * loop next turns (macula_mesh_flush, macula_mesh_run, any call that waits), and the call
 * itself turns the loop once 16 KiB have piled up, so a burst of publishes shares packets.
 * Call macula_mesh_flush after the last publish of a burst when nothing else runs the loop
 * soon; macula_mesh_disconnect first waits (at most 2 s) until the node has acknowledged what
 * is queued. Backpressure: when 1 MiB is queued and not yet acknowledged by the node, the call
 * runs the loop (deliveries go on) until the queue drains; MACULA_MESH_ETIMEDOUT if it stays
 * full for timeout_ms (nothing is dropped silently on this side). */
int macula_mesh_publish(macula_mesh *m, const char *topic, const void *payload, size_t len,
                        int qos);
/* Sends what is queued now (one turn of the loop, without blocking; congestion control may
 * hold back part of a large backlog, which then leaves as the loop runs). */
int macula_mesh_flush(macula_mesh *m);
/* Subscribes to a pattern (`*` one segment, `**` any number); qos 0 or 1. */
int macula_mesh_subscribe(macula_mesh *m, const char *pattern, int qos, macula_mesh_message_fn fn,
                          void *ctx);
int macula_mesh_unsubscribe(macula_mesh *m, const char *pattern);
/* Runs the connection (deliveries, retries, keep-alive) for up to timeout_ms (0: until
 * macula_mesh_stop or the connection ends). Returns MACULA_MESH_OK, or MACULA_MESH_ECLOSED
 * when the connection ended. */
int macula_mesh_run(macula_mesh *m, uint32_t timeout_ms);
/* From a callback: make macula_mesh_run return. */
void macula_mesh_stop(macula_mesh *m);
/* From any thread (the only call that may be made from another thread): make the
 * macula_mesh_run that is running return soon, or the next one at once if none runs; wakes
 * that come together may return it once. For a program whose other threads learn what the
 * thread in macula_mesh_run waits for. Not after macula_mesh_disconnect. */
void macula_mesh_wake(macula_mesh *m);

/* ---- RPC: call / cast / advertise / unadvertise --------------------------------------------
 * macula/mesh_rpc.h (prefix macula_rpc_): a macula_rpc is its own connection to a node, driven
 * by the caller's libuv loop (uv_run) rather than by macula_mesh_run; a program may hold both
 * (examples/mesh.c). Included here so that this header is the whole client API. */

#ifdef __cplusplus
}
#endif

#include "macula/mesh_rpc.h"

#endif
