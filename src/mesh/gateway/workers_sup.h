/*
 * src/mesh/gateway/workers_sup.h — macula_gateway_workers_sup (seed 000): rest_for_one,
 * 10 restarts in 60 s, the gateway's business workers in dependency order. Today it carries
 * macula_gateway_clients; macula_gateway_pubsub, macula_gateway_rpc and macula_gateway_mesh
 * join after it, in that order, as they are built.
 */
#ifndef MACULA_MESH_GATEWAY_WORKERS_SUP_H
#define MACULA_MESH_GATEWAY_WORKERS_SUP_H

#include "macula/sup.h"

/* A sup_start_fn (arg unused). */
int gw_workers_sup_start(sup_rt *rt, sup_pid parent, void *arg, void *extra, sup_pid *out,
                         sup_reason *why);

#endif
