/* src/mesh/root.c — macula_root (see root.h). */
#include "root.h"

#include "macula/sup_supervisor.h"

void mesh_root_config_defaults(mesh_root_config *cfg)
{
    cfg->intensity = 10;
    cfg->period_s = 5;
}

int mesh_root_start(sup_rt *rt, const mesh_root_config *cfg, sup_pid *out, sup_reason *why)
{
    sup_flags flags = {SUP_ONE_FOR_ONE, cfg->intensity, cfg->period_s, SUP_AUTO_NEVER};
    sup_sv_opts opts = {.name = "macula_root"};
    /* The subsystems join this list as they are built (routing_server, bootstrap_system,
     * gateway_system, peers_sup). */
    return sup_supervisor_start(rt, SUP_NOPID, &flags, NULL, 0, &opts, out, why);
}
