/*
 * src/mesh/root.h — macula_root (seed 000): the node's root supervisor, one_for_one with
 * 10 restarts in 5 s. Its children are the node's subsystems (routing server, bootstrap
 * system, gateway system, peers supervisor) as they are built; see docs/runtime.md.
 */
#ifndef MACULA_MESH_ROOT_H
#define MACULA_MESH_ROOT_H

#include "macula/sup.h"

typedef struct mesh_root_config {
    int intensity; /* 10 */
    int period_s;  /* 5 */
} mesh_root_config;

void mesh_root_config_defaults(mesh_root_config *cfg);
int mesh_root_start(sup_rt *rt, const mesh_root_config *cfg, sup_pid *out, sup_reason *why);

#endif
