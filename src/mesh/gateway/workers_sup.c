/* src/mesh/gateway/workers_sup.c — macula_gateway_workers_sup (see workers_sup.h). */
#include "workers_sup.h"

#include <stddef.h>

#include "clients.h"
#include "rpc.h"
#include "macula/sup_supervisor.h"

int gw_workers_sup_start(sup_rt *rt, sup_pid parent, void *arg, void *extra, sup_pid *out,
                         sup_reason *why)
{
    (void)extra;
    gw_workers_config *cfg = arg;
    sup_flags flags = {SUP_REST_FOR_ONE, 10, 60, SUP_AUTO_NEVER};
    sup_child_spec children[] = {
        {.id = "macula_gateway_clients",
         .start = gw_clients_start,
         .arg = NULL,
         .restart = SUP_PERMANENT,
         .shutdown_ms = 5000,
         .type = SUP_WORKER},
        {.id = "macula_gateway_pubsub",
         .start = gw_pubsub_start,
         .arg = cfg ? &cfg->pubsub : NULL,
         .restart = SUP_PERMANENT,
         .shutdown_ms = 5000,
         .type = SUP_WORKER},
        {.id = "macula_gateway_rpc",
         .start = gw_rpc_start,
         .arg = cfg ? &cfg->rpc : NULL,
         .restart = SUP_PERMANENT,
         .shutdown_ms = 5000,
         .type = SUP_WORKER},
        {.id = "macula_gateway_mesh",
         .start = gw_mesh_start,
         .arg = cfg ? &cfg->mesh : NULL,
         .restart = SUP_PERMANENT,
         .shutdown_ms = 5000,
         .type = SUP_WORKER},
    };
    sup_sv_opts opts = {.name = "macula_gateway_workers_sup"};
    return sup_supervisor_start(rt, parent, &flags, children, sizeof children / sizeof *children,
                                &opts, out, why);
}
