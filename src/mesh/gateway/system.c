/* src/mesh/gateway/system.c — macula_gateway_system (see system.h). */
#include "system.h"

#include <string.h>

#include "macula/sup_supervisor.h"
#include "workers_sup.h"

/* Zero fields of the gateway's configuration take the defaults; the realm and node id are
 * the node's. */
static void gw_system__fill(gw_system_config *cfg)
{
    gwc_config def;
    gwc_config_default(&def);
    gwc_config *c = &cfg->gateway.core;
    c->realm = cfg->realm ? cfg->realm : GW_DEFAULT_REALM;
    memcpy(c->node_id, cfg->node_id, WIRE_NODE_ID_LEN);
    if (c->max_clients == 0) {
        c->max_clients = def.max_clients;
    }
    if (c->max_pending == 0) {
        c->max_pending = def.max_pending;
    }
    if (c->ping_interval_ms == 0) {
        c->ping_interval_ms = def.ping_interval_ms;
    }
    if (c->ping_misses == 0) {
        c->ping_misses = def.ping_misses;
    }
    if (c->limits.max_frame_size == 0 && c->limits.max_depth == 0 && c->limits.max_elems == 0) {
        c->limits = def.limits;
    }
    cfg->diag.realm = c->realm;
    memcpy(cfg->diag.node_id, cfg->node_id, WIRE_NODE_ID_LEN);
}

int gw_system_start(sup_rt *rt, sup_pid parent, void *arg, void *extra, sup_pid *out,
                    sup_reason *why)
{
    (void)extra;
    gw_system_config *cfg = arg;
    gw_system__fill(cfg);
    sup_flags flags = {SUP_REST_FOR_ONE, 10, 60, SUP_AUTO_NEVER};
    sup_child_spec children[] = {
        {.id = "macula_gateway_health",
         .start = gw_health_start,
         .arg = &cfg->health,
         .restart = SUP_PERMANENT,
         .shutdown_ms = 5000,
         .type = SUP_WORKER},
        {.id = "macula_gateway_diagnostics",
         .start = gw_diag_start,
         .arg = &cfg->diag,
         .restart = SUP_PERMANENT,
         .shutdown_ms = 5000,
         .type = SUP_WORKER},
        {.id = "macula_gateway_quic_server",
         .start = gw_quic_server_start,
         .arg = &cfg->quic,
         .restart = SUP_PERMANENT,
         .shutdown_ms = 5000,
         .type = SUP_WORKER},
        {.id = "macula_gateway",
         .start = gw_gateway_start,
         .arg = &cfg->gateway,
         .restart = SUP_PERMANENT,
         .shutdown_ms = 5000,
         .type = SUP_WORKER},
        {.id = "macula_gateway_workers_sup",
         .start = gw_workers_sup_start,
         .arg = &cfg->workers,
         .restart = SUP_PERMANENT,
         .shutdown_ms = SUP_SHUTDOWN_INFINITY,
         .type = SUP_SUPERVISOR},
    };
    sup_sv_opts opts = {.name = "macula_gateway_system"};
    return sup_supervisor_start(rt, parent, &flags, children, sizeof children / sizeof *children,
                                &opts, out, why);
}
