/*
 * src/mesh/gateway/clients.h — macula_gateway_clients (seed 000, first child of
 * macula_gateway_workers_sup): the table of connected clients, as an actor.
 *
 * Tracks, per connection of a client that completed CONNECT: node id, connection, streams
 * (the v0.8 protocol runs one bidirectional stream per client connection, so 1), connected
 * and last-seen times, capabilities, endpoint and remote address. The gateway is the only
 * writer: it casts GW_CL_UP / GW_CL_SEEN / GW_CL_DOWN (gw_clients_notify) as its core reports
 * clients. When the table (re)starts it asks the gateway for every current client
 * (GW_CLIENTS_SYNC), so after a restart of workers_sup it is complete again; an UP for a
 * connection it already has replaces the entry (the sync may overlap live updates).
 *
 * Readers: the count is published for the HTTP endpoints (gw_clients_count); other actors
 * call GW_CLIENTS_COUNT / GW_CLIENTS_GET.
 */
#ifndef MACULA_MESH_GATEWAY_CLIENTS_H
#define MACULA_MESH_GATEWAY_CLIENTS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "gateway_core.h"
#include "macula/sup.h"

/* A sup_start_fn (arg unused). Registers as "macula_gateway_clients". */
int gw_clients_start(sup_rt *rt, sup_pid parent, void *arg, void *extra, sup_pid *out,
                     sup_reason *why);

enum {
    GW_CL_UP = 0x4801, /* cast: gw_client_up_msg + endpoint + caps */
    GW_CL_SEEN,        /* cast: gw_client_seen_msg */
    GW_CL_DOWN,        /* cast: uint64_t conn */
    GW_CLIENTS_COUNT,  /* call: replies uint64_t */
    GW_CLIENTS_GET,    /* call with a 32-byte node id: replies gw_client_entry_info */
};

typedef struct gw_client_up_msg {
    uint64_t conn;
    uint8_t node_id[WIRE_NODE_ID_LEN];
    uint64_t time_ms;
    uint32_t endpoint_len, caps_len, caps_count;
    char remote[GWC_REMOTE_MAX];
} gw_client_up_msg;

typedef struct gw_client_seen_msg {
    uint64_t conn;
    uint64_t time_ms;
} gw_client_seen_msg;

typedef struct gw_client_entry_info {
    bool found;
    uint64_t conn;
    uint32_t streams;
    uint64_t connected_ms, last_seen_ms;
    uint32_t caps_count;
    char endpoint[128]; /* truncated */
    char remote[GWC_REMOTE_MAX];
} gw_client_entry_info;

/* Casts one CLIENT_UP / CLIENT_SEEN / CLIENT_DOWN action of the core to the table `to`.
 * Returns what sup_cast returns, SUP_EINVAL for another kind, or SUP_ENOMEM. */
int gw_clients_notify(sup_rt *rt, sup_pid from, sup_pid to, const gwc_action *a);

/* The number of clients in the running table, or -1 when none runs (same thread as the
 * runtime; safe from HTTP handlers). */
long gw_clients_count(const sup_rt *rt);

#endif
