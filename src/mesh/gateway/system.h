/*
 * src/mesh/gateway/system.h — macula_gateway_system (seed 000): rest_for_one, 10 restarts in
 * 60 s, children in dependency order:
 *
 *   macula_gateway_health       worker      HTTP /health /ready /live /metrics /tree
 *   macula_gateway_diagnostics  worker      com.macula.diagnostics.* procedures
 *   macula_gateway_quic_server  worker      the transport (see quic_server.h: QUIC seam)
 *   macula_gateway              worker      the protocol (gateway_core.h) + transport glue
 *   macula_gateway_workers_sup  supervisor  rest_for_one: macula_gateway_clients, ...
 *
 * A crash restarts that child and every child after it (docs/gateway.md).
 */
#ifndef MACULA_MESH_GATEWAY_SYSTEM_H
#define MACULA_MESH_GATEWAY_SYSTEM_H

#include <stdint.h>

#include "diagnostics.h"
#include "gateway.h"
#include "health.h"
#include "macula/sup.h"
#include "quic_server.h"
#include "workers_sup.h"

#define GW_DEFAULT_REALM "macula.default"

typedef struct gw_system_config {
    gw_health_config health;
    /* The node's realm (NULL: GW_DEFAULT_REALM) and id; gw_system_start copies them into
     * the gateway's and the diagnostics' configuration. */
    const char *realm;
    uint8_t node_id[WIRE_NODE_ID_LEN];
    gw_quic_config quic;
    /* max_clients, ping interval, limits; zero fields take gwc_config_default's values */
    gw_gateway_config gateway;
    gw_diag_config diag;       /* filled by gw_system_start */
    gw_workers_config workers; /* pubsub, rpc, mesh workers */
} gw_system_config;

/* A sup_start_fn; arg is a gw_system_config that outlives the child spec. */
int gw_system_start(sup_rt *rt, sup_pid parent, void *arg, void *extra, sup_pid *out,
                    sup_reason *why);

#endif
