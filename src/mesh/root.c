/* src/mesh/root.c — macula_root (see root.h). */
#include "root.h"

#include <stdio.h>
#include <string.h>

#include "macula/sup_supervisor.h"

void mesh_root_config_defaults(mesh_root_config *cfg)
{
    memset(cfg, 0, sizeof *cfg);
    cfg->intensity = 10;
    cfg->period_s = 5;
    cfg->gateway.health.addr = "0.0.0.0";
    cfg->gateway.health.port = 8080;
}

void mesh_root_config_apply(mesh_root_config *cfg, const macula_config *conf,
                            const uint8_t *node_id)
{
    char hexbuf[IDENTITY_ID_HEX_LEN + 1];
    const char *node_id_hex = NULL;
    if (node_id != NULL) {
        identity_id_to_hex(node_id, hexbuf);
        node_id_hex = hexbuf;
        memcpy(cfg->gateway.node_id, node_id, IDENTITY_ID_LEN);
    }
    snprintf(cfg->health_addr, sizeof cfg->health_addr, "%s", conf->health_addr);
    snprintf(cfg->realm, sizeof cfg->realm, "%s", conf->realm);
    snprintf(cfg->node_id_hex, sizeof cfg->node_id_hex, "%s", node_id_hex ? node_id_hex : "");
    cfg->gateway.health.addr = cfg->health_addr;
    cfg->gateway.health.port = conf->health_port;
    cfg->gateway.health.realm = cfg->realm;
    cfg->gateway.health.node_id = node_id_hex ? cfg->node_id_hex : NULL;
    cfg->gateway.realm = cfg->realm;
    cfg->gateway.quic.port = conf->quic_port;
    gwc_config *core = &cfg->gateway.gateway.core;
    core->max_clients = conf->max_clients;
    core->ping_interval_ms = conf->ping_interval_ms;
    wire_limits_default(&core->limits);
    core->limits.max_frame_size = conf->max_frame_size;
}

int mesh_root_start(sup_rt *rt, mesh_root_config *cfg, sup_pid *out, sup_reason *why)
{
    sup_flags flags = {SUP_ONE_FOR_ONE, cfg->intensity, cfg->period_s, SUP_AUTO_NEVER};
    sup_sv_opts opts = {.name = "macula_root"};
    if (cfg->nextra > MESH_ROOT_MAX_EXTRA) {
        if (why != NULL) {
            *why = sup_reason_error("too_many_children");
        }
        return SUP_EINVAL;
    }
    sup_child_spec children[1 + MESH_ROOT_MAX_EXTRA] = {
        {.id = "macula_gateway_system",
         .start = gw_system_start,
         .arg = &cfg->gateway,
         .restart = SUP_PERMANENT,
         .shutdown_ms = SUP_SHUTDOWN_INFINITY,
         .type = SUP_SUPERVISOR},
    };
    for (size_t i = 0; i < cfg->nextra; i++) {
        children[1 + i] = cfg->extra[i];
    }
    int rc =
        sup_supervisor_start(rt, SUP_NOPID, &flags, children, 1 + cfg->nextra, &opts, out, why);
    if (rc == 0) {
        sup_register(rt, "macula_root", *out);
    }
    return rc;
}
