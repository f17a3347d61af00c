/*
 * src/mesh/gateway/quic_server.h — macula_gateway_quic_server (seed 000): the owner of the
 * gateway's transport.
 *
 * Role in the tree: it starts before macula_gateway (rest_for_one), so the gateway, and
 * everything after it, restarts whenever the transport does (clients must reconnect, as the
 * seed's "QUIC server crashes" scenario says). At init the gateway calls it with
 * GW_QS_ATTACH and receives the gw_transport (gateway.h) to carry out its sends and closes;
 * from then on the quic_server knows the gateway's pid and delivers connection events to it
 * with gw_gateway_conn_opened / _data / _closed.
 *
 * The QUIC binding. With cfg->id set (the node's identity) and a real runtime, init creates a
 * QUIC endpoint (mesh/quic.h: ngtcp2 + GnuTLS, TLS 1.3, ALPN "macula", both sides present
 * certificates) listening on cfg->addr:cfg->port, and:
 *   - a connection whose handshake completed becomes a gateway connection: it gets a 64-bit id
 *     and the gateway receives GW_CONN_OPENED with the peer's node id (derived from its
 *     certificate) and "host:port";
 *   - the client's first bidirectional stream carries the frames both ways (GW_CONN_DATA in,
 *     gw_transport.send out); further streams from the client are reset (code 1);
 *   - a connection that ends (the peer closed, idle timeout, ...) is reported with
 *     GW_CONN_CLOSED, except when the gateway itself asked for the close;
 *   - a send that finds the stream's send queue full (the client does not read) closes the
 *     connection with GWC_CLOSE_PROTOCOL and reason "send_queue_full".
 * Init fails when the port cannot be bound (the node then stops with that reason). Terminate
 * closes the endpoint; every connection ends with the transport, and the gateway after it
 * restarts (rest_for_one), as the seed's "QUIC server crashes" scenario says.
 * cfg->transport (tests, or an embedding that carries bytes itself) takes precedence.
 */
#ifndef MACULA_MESH_GATEWAY_QUIC_SERVER_H
#define MACULA_MESH_GATEWAY_QUIC_SERVER_H

#include <stdbool.h>
#include <stdint.h>

#include "gateway.h"
#include "macula/sup.h"
#include "mesh/identity.h"

typedef struct gw_quic_config {
    const char *addr;         /* listen address (NULL: "0.0.0.0") */
    uint16_t port;            /* MACULA_QUIC_PORT (0: any free port) */
    const identity *id;       /* the node's identity; NULL: no QUIC endpoint */
    uint32_t idle_timeout_ms; /* QUIC idle timeout (0: 90 s, three ping intervals) */
    /* An injected transport (tests, or an embedding that carries bytes itself); NULL for
     * none. Must outlive the child spec. */
    const gw_transport *transport;
} gw_quic_config;

/* A sup_start_fn; arg is a gw_quic_config that outlives the child spec. Registers as
 * "macula_gateway_quic_server". */
int gw_quic_server_start(sup_rt *rt, sup_pid parent, void *arg, void *extra, sup_pid *out,
                         sup_reason *why);

enum {
    GW_QS_ATTACH = 0x4901, /* call from the gateway: replies its gw_transport (all NULL when
                              there is none) and delivers connection events to the caller */
    GW_QS_GATEWAY,         /* call: replies the attached gateway's sup_pid (tests) */
    GW_QS_PORT,            /* call: replies the bound UDP port as a uint16_t (0: none) */
};

/* The QUIC endpoint's counters, for /metrics (false when no endpoint runs). */
typedef struct gw_quic_stats {
    uint16_t port;
    size_t connections;
    uint64_t handshakes_ok, handshakes_failed;
    uint64_t packets_in, packets_out, packets_dropped;
    size_t ngtcp2_bytes;
} gw_quic_stats;
bool gw_quic_server_stats(sup_rt *rt, gw_quic_stats *out);

#endif
