/* src/mesh/bootstrap/system.c — macula_bootstrap_system (see bootstrap.h). */
#include "bootstrap.h"
#include "macula/sup_supervisor.h"

int bs_system_start(sup_rt *rt, sup_pid parent, void *arg, void *extra, sup_pid *out,
                    sup_reason *why)
{
    (void)extra;
    sup_flags flags = {SUP_ONE_FOR_ONE, 10, 60, SUP_AUTO_NEVER};
    sup_child_spec children[] = {
        {.id = "macula_bootstrap_server",
         .start = bs_server_start,
         .arg = arg,
         .restart = SUP_PERMANENT,
         .shutdown_ms = 5000,
         .type = SUP_WORKER},
        {.id = "macula_bootstrap_registry",
         .start = bs_registry_start,
         .arg = arg,
         .restart = SUP_PERMANENT,
         .shutdown_ms = 5000,
         .type = SUP_WORKER},
        {.id = "macula_bootstrap_health",
         .start = bs_health_start,
         .arg = arg,
         .restart = SUP_PERMANENT,
         .shutdown_ms = 5000,
         .type = SUP_WORKER},
    };
    sup_sv_opts opts = {.name = "macula_bootstrap_system"};
    return sup_supervisor_start(rt, parent, &flags, children, sizeof children / sizeof *children,
                                &opts, out, why);
}
