/* src/mesh/root.c — macula_root (see root.h). */
#include "root.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
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

int mesh_root_config_env(mesh_root_config *cfg, char *err, size_t errsize)
{
    const char *v = getenv("HEALTH_PORT");
    if (v != NULL) {
        char *end = NULL;
        long port = strtol(v, &end, 10);
        if (*v == '\0' || *end != '\0' || port < 0 || port > 65535) {
            snprintf(err, errsize,
                     "HEALTH_PORT=\"%s\" is not valid: allowed is an integer from 0 to 65535", v);
            return -1;
        }
        cfg->gateway.health.port = (uint16_t)port;
    }
    v = getenv("MACULA_HEALTH_ADDR");
    if (v != NULL) {
        struct in_addr addr;
        if (inet_pton(AF_INET, v, &addr) != 1) {
            snprintf(err, errsize,
                     "MACULA_HEALTH_ADDR=\"%s\" is not valid: allowed is an IPv4 address", v);
            return -1;
        }
        cfg->gateway.health.addr = v;
    }
    return 0;
}

int mesh_root_start(sup_rt *rt, mesh_root_config *cfg, sup_pid *out, sup_reason *why)
{
    sup_flags flags = {SUP_ONE_FOR_ONE, cfg->intensity, cfg->period_s, SUP_AUTO_NEVER};
    sup_sv_opts opts = {.name = "macula_root"};
    sup_child_spec children[] = {
        {.id = "macula_gateway_system",
         .start = gw_system_start,
         .arg = &cfg->gateway,
         .restart = SUP_PERMANENT,
         .shutdown_ms = SUP_SHUTDOWN_INFINITY,
         .type = SUP_SUPERVISOR},
    };
    int rc = sup_supervisor_start(rt, SUP_NOPID, &flags, children, 1, &opts, out, why);
    if (rc == 0) {
        sup_register(rt, "macula_root", *out);
    }
    return rc;
}
