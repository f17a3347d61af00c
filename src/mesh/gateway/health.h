/*
 * src/mesh/gateway/health.h — macula_gateway_health (seed 000): the node's HTTP endpoints on
 * HEALTH_PORT: /health, /ready, /live, /metrics (Prometheus text), /tree (the live
 * supervision tree as JSON). Anything else is 404; methods other than GET/HEAD are 405.
 */
#ifndef MACULA_MESH_GATEWAY_HEALTH_H
#define MACULA_MESH_GATEWAY_HEALTH_H

#include <stdint.h>

#include "base/evloop.h"
#include "macula/sup.h"

typedef struct gw_health_config {
    const char *addr;         /* listen address, "0.0.0.0" */
    uint16_t port;            /* 8080; 0 picks a free port (tests) */
    const char *node_id;      /* 64 hex digits for /health, or NULL (null) */
    const char *realm;        /* the realm for /health, or NULL (null); JSON-safe characters */
    const evloop_stats *loop; /* the node loop's polling counters for /metrics, or NULL; owned
                               * by whoever runs the loop and valid while the worker runs */
} gw_health_config;

/* A sup_start_fn; arg is a gw_health_config that outlives the child spec. */
int gw_health_start(sup_rt *rt, sup_pid parent, void *arg, void *extra, sup_pid *out,
                    sup_reason *why);
/* The port the running health worker listens on (useful with port 0), or 0. A call: use it
 * from outside the scheduler only (tests, CLI). */
uint16_t gw_health_port(sup_rt *rt);

#endif
