/*
 * src/mesh/gateway/gateway.h — macula_gateway (seed 000): the actor around the gateway core
 * (gateway_core.h). Transport-agnostic:
 *
 *  - inbound, the transport side (quic_server, or a test harness) sends it messages:
 *    GW_CONN_OPENED, GW_CONN_DATA, GW_CONN_CLOSED (build them with gw_gateway_conn_*);
 *  - outbound, it carries out the core's actions through a gw_transport (function pointers:
 *    send bytes on a connection, close a connection) that it obtains from
 *    macula_gateway_quic_server at init (quic_server.h, GW_QS_ATTACH); CLIENT_UP / SEEN /
 *    DOWN go to macula_gateway_clients (clients.h) as casts.
 *
 * It runs the core's keepalive with one runtime timer armed at gwc_next_deadline, hands
 * com.macula.diagnostics.* CALLs to macula_gateway_diagnostics (an asynchronous call through
 * the core's RPC hook; when that actor is not there the core answers itself) and
 * com.macula.dht.* CALLs to macula_routing_server (RS_JSON; no_handler when it is not
 * running), forwards DHT frames (FIND_NODE .. STORE_ACK) from connected clients through the
 * core's frame hook to macula_bootstrap_server (or macula_routing_server when that is not
 * running) as RS_FRAME messages, sends the frames GW_SEND_FRAME gives it, and publishes
 * its counters for /metrics (registry.h). When it ends (any reason) it sends DISCONNECT
 * shutdown to every connection and closes it through the transport, so a restarted gateway
 * never inherits connections it does not know.
 *
 * The transport functions are called on the runtime's thread from the gateway's callbacks;
 * they must not call back into the runtime synchronously (queue, then report through
 * messages).
 */
#ifndef MACULA_MESH_GATEWAY_GATEWAY_H
#define MACULA_MESH_GATEWAY_GATEWAY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "gateway_core.h"
#include "macula/sup.h"

/* The transport interface: what the gateway needs from whatever carries the bytes. */
typedef struct gw_transport {
    void *ctx;
    /* Queue `len` bytes (whole frames) on connection `conn`. Returns 0 or a negative value
     * (the connection is gone: the transport will report GW_CONN_CLOSED). */
    int (*send)(void *ctx, uint64_t conn, const uint8_t *data, size_t len);
    /* Close `conn` with an application error code (GWC_CLOSE_*) and reason text, after the
     * bytes already queued. The transport does not report GW_CONN_CLOSED for it afterwards
     * (if it does, the gateway ignores it). */
    int (*close)(void *ctx, uint64_t conn, uint64_t code, const char *reason);
} gw_transport;

typedef struct gw_gateway_config {
    gwc_config core; /* realm, node_id, max_clients, ping interval, limits */
    /* MACULA_CHAOS=1 at start-up: the CALL com.macula.admin.crash {"actor": NAME} kills the
     * named actor with reason {chaos,crash} (fault-isolation tests); refused otherwise. */
    bool chaos;
} gw_gateway_config;

/* A sup_start_fn; arg is a gw_gateway_config that outlives the child spec. Registers as
 * "macula_gateway". Fails to start if the core's configuration is invalid. */
int gw_gateway_start(sup_rt *rt, sup_pid parent, void *arg, void *extra, sup_pid *out,
                     sup_reason *why);

/* Message tags (SUP_MSG_INFO) the gateway understands. */
enum {
    GW_CONN_OPENED = 0x4701, /* gw_conn_opened_msg */
    GW_CONN_DATA,            /* uint64_t conn, then the bytes */
    GW_CONN_CLOSED,          /* uint64_t conn */
    GW_CLIENTS_SYNC,         /* cast from macula_gateway_clients: resend every CLIENT_UP */
    GW_GATEWAY_STATS,        /* call: replies a gwc_stats */
    GW_SEND_FRAME,           /* info: uint64_t conn, then one encoded frame for that client
                                (the routing server's replies to DHT requests) */
    /* ---- pub/sub (macula_gateway_pubsub, gateway/pubsub.h) ---- */
    GW_PS_LEDGER, /* cast: gw_ps_ledger + pattern: a subscription the pubsub worker accepted
                     (add) or removed; the gateway keeps them per connection so that a
                     restarted pubsub worker gets them back */
    GW_PS_SYNC,   /* cast from macula_gateway_pubsub: replay every ledger entry (GW_PS_RESUB) */
    GW_CONN_DATA_BATCH, /* records of gw_conn_data_rec + the bytes: every connection's stream
                           data of one loop turn, in the order it arrived (a message whose
                           records do not tile it is dropped whole) */
    /* ---- RPC (macula_gateway_rpc): tags after this line belong to the RPC layer ---- */
};
typedef struct gw_ps_ledger {
    uint64_t conn;
    uint8_t add; /* 1 add, 0 remove */
    uint8_t qos;
} gw_ps_ledger;
typedef struct gw_conn_opened_msg {
    uint64_t conn;
    uint32_t peer_id_len; /* 0 or 32 */
    uint8_t peer_id[WIRE_NODE_ID_LEN];
    char remote[GWC_REMOTE_MAX];
} gw_conn_opened_msg;

/* GW_CONN_DATA_BATCH record: `len` bytes of conn's stream follow. */
typedef struct gw_conn_data_rec {
    uint64_t conn;
    uint32_t len;
    uint32_t pad; /* 0 */
} gw_conn_data_rec;

/* Send the transport's events to the gateway `gw` (from = the sending actor or SUP_NOPID).
 * Return what sup_send returns (SUP_ENOPROC when gw is gone), or SUP_ENOMEM. */
int gw_gateway_conn_opened(sup_rt *rt, sup_pid from, sup_pid gw, uint64_t conn,
                           const uint8_t *peer_id, size_t peer_id_len, const char *remote);
int gw_gateway_conn_data(sup_rt *rt, sup_pid from, sup_pid gw, uint64_t conn, const uint8_t *data,
                         size_t len);
int gw_gateway_conn_closed(sup_rt *rt, sup_pid from, sup_pid gw, uint64_t conn);

/* The running gateway's counters (for /metrics). Read on the runtime's thread, outside
 * actor callbacks or inside them. Returns false when no gateway runs. */
bool gw_gateway_stats(const sup_rt *rt, gwc_stats *out);

#endif
