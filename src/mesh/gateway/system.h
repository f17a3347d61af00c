/*
 * src/mesh/gateway/system.h — macula_gateway_system (seed 000): rest_for_one, 10 restarts in
 * 60 s, children in dependency order: health, diagnostics, quic_server, gateway, workers_sup.
 * Today it carries health; the others join as they are built, in that order.
 */
#ifndef MACULA_MESH_GATEWAY_SYSTEM_H
#define MACULA_MESH_GATEWAY_SYSTEM_H

#include "health.h"
#include "macula/sup.h"

typedef struct gw_system_config {
    gw_health_config health;
} gw_system_config;

/* A sup_start_fn; arg is a gw_system_config that outlives the child spec. */
int gw_system_start(sup_rt *rt, sup_pid parent, void *arg, void *extra, sup_pid *out,
                    sup_reason *why);

#endif
