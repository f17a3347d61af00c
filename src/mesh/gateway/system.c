/* src/mesh/gateway/system.c — macula_gateway_system (see system.h). */
#include "system.h"

#include "macula/sup_supervisor.h"

int gw_system_start(sup_rt *rt, sup_pid parent, void *arg, void *extra, sup_pid *out,
                    sup_reason *why)
{
    (void)extra;
    gw_system_config *cfg = arg;
    sup_flags flags = {SUP_REST_FOR_ONE, 10, 60, SUP_AUTO_NEVER};
    sup_child_spec children[] = {
        {.id = "macula_gateway_health",
         .start = gw_health_start,
         .arg = &cfg->health,
         .restart = SUP_PERMANENT,
         .shutdown_ms = 5000,
         .type = SUP_WORKER},
    };
    sup_sv_opts opts = {.name = "macula_gateway_system"};
    return sup_supervisor_start(rt, parent, &flags, children, 1, &opts, out, why);
}
