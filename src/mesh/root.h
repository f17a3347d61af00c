/*
 * src/mesh/root.h — macula_root (seed 000): the node's root supervisor, one_for_one with
 * 10 restarts in 5 s. Its children are the node's subsystems as they are built: today the
 * gateway system (with the health endpoints); the routing server, bootstrap system and peers
 * supervisor join in the seed's order. The root registers itself as "macula_root".
 */
#ifndef MACULA_MESH_ROOT_H
#define MACULA_MESH_ROOT_H

#include "gateway/system.h"
#include "macula/sup.h"

typedef struct mesh_root_config {
    int intensity; /* 10 */
    int period_s;  /* 5 */
    gw_system_config gateway;
} mesh_root_config;

void mesh_root_config_defaults(mesh_root_config *cfg);
/* Reads the environment (HEALTH_PORT, MACULA_HEALTH_ADDR). Returns 0, or -1 after writing a
 * message naming the variable, its value and what is allowed into err. */
int mesh_root_config_env(mesh_root_config *cfg, char *err, size_t errsize);
int mesh_root_start(sup_rt *rt, mesh_root_config *cfg, sup_pid *out, sup_reason *why);

#endif
