/*
 * src/mesh/client.h — one client connection to a node's gateway (MESH.md "Wire format"):
 * QUIC + TLS 1.3 (ALPN macula, this side's certificate presented), one bidirectional stream,
 * the CONNECT handshake, then frames both ways. Used by the CLI (`macula ping`, later pub,
 * sub, call) and by the client API.
 *
 * Lifecycle: mesh_client_open starts the QUIC handshake; when it completes, the client opens
 * its stream and sends CONNECT {version "1.0", node_id, realm_id, capabilities [], endpoint};
 * the gateway answers PONG (realm accepted: on_ready) or DISCONNECT(reason) (on_closed with
 * that reason). Every later frame arrives decoded in on_frame. on_closed runs exactly once,
 * whatever ends the client (DISCONNECT from the gateway, a QUIC error, a malformed frame,
 * mesh_client_close), and the client must not be used after it returned; free it with
 * mesh_client_free (from on_closed or later).
 *
 * Runs on a libuv loop through callbacks; not an actor. Not thread-safe.
 */
#ifndef MACULA_MESH_CLIENT_H
#define MACULA_MESH_CLIENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <uv.h>

#include "mesh/identity.h"
#include "mesh/wire.h"

enum {
    MESH_CLIENT_OK = 0,
    MESH_CLIENT_EINVAL = -1,     /* bad URL, realm or argument */
    MESH_CLIENT_ENOMEM = -2,     /* allocation failed */
    MESH_CLIENT_ETRANSPORT = -3, /* QUIC failed (the reason says how) */
    MESH_CLIENT_EREFUSED = -4,   /* the gateway sent DISCONNECT (reason = its reason) */
    MESH_CLIENT_EPROTO = -5,     /* the gateway sent something that is not the protocol */
    MESH_CLIENT_ECLOSED = -6,    /* closed by this side (mesh_client_close) */
    MESH_CLIENT_ENOTREADY = -7,  /* mesh_client_send before on_ready */
    MESH_CLIENT_EAGAIN = -8,     /* the send queue is full (nothing queued): wait for
                                    on_writable, or drop */
};
const char *mesh_client_strerror(int err);

typedef struct mesh_client mesh_client;

typedef struct mesh_client_callbacks {
    /* CONNECT accepted (the gateway's PONG). server_id: the node id its certificate proves. */
    void (*on_ready)(mesh_client *c, const uint8_t server_id[IDENTITY_ID_LEN], void *ctx);
    /* A frame after the handshake; views in m are valid during the call only. */
    void (*on_frame)(mesh_client *c, const wire_msg *m, void *ctx);
    /* The end: err is MESH_CLIENT_E* and reason a short text (the gateway's DISCONNECT
     * reason for MESH_CLIENT_EREFUSED). */
    void (*on_closed)(mesh_client *c, int err, const char *reason, void *ctx);
    /* A send returned MESH_CLIENT_EAGAIN earlier and the queue has drained to half. May be
     * NULL. */
    void (*on_writable)(mesh_client *c, void *ctx);
} mesh_client_callbacks;

/* Splits "https://HOST:PORT" or "quic://HOST:PORT" (HOST a name, IPv4 or [IPv6]; PORT
 * default 9443) and resolves HOST to a numeric address. */
int mesh_client_parse_url(const char *url, char *host, size_t hostsize, uint16_t *port);

/* Starts connecting. id: this side's identity (borrowed; must outlive the client). realm: the
 * realm name for CONNECT. expected: NULL, or the 32-byte node id the server must prove. */
int mesh_client_open(uv_loop_t *loop, const identity *id, const char *url, const char *realm,
                     const uint8_t *expected, const mesh_client_callbacks *cb, void *ctx,
                     mesh_client **out);

/* Sends one frame (after on_ready). Sending queues the bytes on the QUIC stream; they leave
 * when the loop next turns (every frame queued in one turn shares packets). The queue holds up
 * to 1 MiB not yet acknowledged by the node: beyond that MESH_CLIENT_EAGAIN, nothing queued,
 * and on_writable follows once it has drained to half. */
int mesh_client_send(mesh_client *c, const wire_msg *m);
/* As mesh_client_send; *len is the size of the frame queued (0 when nothing was). The frame
 * is encoded straight into the stream's send queue (no copy). */
int mesh_client_send_len(mesh_client *c, const wire_msg *m, size_t *len);

/* Sends one already encoded frame (header + payload, e.g. from dht_msg_encode) after on_ready.
 * MESH_CLIENT_EINVAL if the bytes are not one whole frame of a known type; MESH_CLIENT_EAGAIN
 * as mesh_client_send. */
int mesh_client_send_frame(mesh_client *c, const uint8_t *frame, size_t len);

/* Bytes queued on the stream and not yet acknowledged by the node (0 before on_ready). */
size_t mesh_client_queued(const mesh_client *c);

/* Sends DISCONNECT (when ready) and closes; on_closed follows with MESH_CLIENT_ECLOSED. */
void mesh_client_close(mesh_client *c, const char *reason);

/* Releases the client once on_closed has run (the loop must keep running until its handles
 * have closed). NULL is a no-op. */
void mesh_client_free(mesh_client *c);

/* Microseconds from mesh_client_open to the QUIC handshake's completion, and to the PONG that
 * accepted CONNECT (0 while not reached). */
uint64_t mesh_client_handshake_us(const mesh_client *c);
uint64_t mesh_client_connect_us(const mesh_client *c);

#endif
