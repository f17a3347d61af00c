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
 * SEAM — the QUIC binding. This actor does not open a UDP socket yet: the QUIC endpoint
 * (src/mesh/quic.c/h, ngtcp2 + GnuTLS, ALPN "macula", written separately) plugs in here, in
 * gw_quic__init / gw_quic__terminate:
 *   1. create the endpoint on the runtime's loop from cfg->addr:cfg->port and the node's
 *      identity (TLS 1.3, the peer's node id derived from its certificate);
 *   2. fill this actor's gw_transport with functions that queue bytes on the connection's
 *      bidirectional stream and close a connection with an application error code;
 *   3. route the endpoint's callbacks to the attached gateway: new connection ->
 *      gw_gateway_conn_opened(conn id, peer node id, "host:port"), stream data ->
 *      gw_gateway_conn_data, connection gone -> gw_gateway_conn_closed;
 *   4. close the endpoint in terminate (connections then end with the transport).
 * Until then cfg->transport is the only transport: the test harness injects one; a node
 * started without it has a gateway that no connection can reach (and /metrics shows 0).
 */
#ifndef MACULA_MESH_GATEWAY_QUIC_SERVER_H
#define MACULA_MESH_GATEWAY_QUIC_SERVER_H

#include <stdint.h>

#include "gateway.h"
#include "macula/sup.h"

typedef struct gw_quic_config {
    const char *addr; /* listen address for the QUIC binding ("0.0.0.0") */
    uint16_t port;    /* MACULA_QUIC_PORT, for the QUIC binding */
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
};

#endif
