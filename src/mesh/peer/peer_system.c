/* src/mesh/peer/peer_system.c — macula_peers_sup and macula_peer_system (see peer.h). */
#include <stdlib.h>
#include <string.h>

#include "macula/sup_supervisor.h"
#include "peer.h"

static void peer__info_free(void *arg)
{
    free(arg);
}

int peer_system_start(sup_rt *rt, sup_pid parent, void *arg, void *extra, sup_pid *out,
                      sup_reason *why)
{
    (void)arg;
    const peer_info *info = extra;
    struct {
        const char *id;
        sup_start_fn start;
    } kids[] = {
        {"macula_connection", peer_connection_start},
        {"macula_pubsub_handler", peer_pubsub_handler_start},
        {"macula_rpc_handler", peer_rpc_handler_start},
        {"macula_advertisement_manager", peer_advertisement_manager_start},
    };
    sup_child_spec specs[4];
    for (size_t i = 0; i < 4; i++) {
        peer_info *copy = malloc(sizeof *copy);
        if (copy == NULL) {
            for (size_t j = 0; j < i; j++) {
                free(specs[j].arg);
            }
            *why = sup_reason_error("{peer_system,no_memory}");
            return SUP_ENOMEM;
        }
        if (info != NULL) {
            *copy = *info;
        } else {
            memset(copy, 0, sizeof *copy);
        }
        /* The connection is the significant child: when it ends normally (its connection is
         * gone) the whole peer system shuts down. */
        specs[i] = (sup_child_spec){.id = kids[i].id,
                                    .start = kids[i].start,
                                    .arg = copy,
                                    .arg_free = peer__info_free,
                                    .restart = i == 0 ? SUP_TRANSIENT : SUP_PERMANENT,
                                    .shutdown_ms = 5000,
                                    .type = SUP_WORKER,
                                    .significant = i == 0};
    }
    sup_flags flags = {SUP_REST_FOR_ONE, 10, 60, SUP_AUTO_ANY_SIGNIFICANT};
    sup_sv_opts opts = {.name = "macula_peer_system"};
    return sup_supervisor_start(rt, parent, &flags, specs, 4, &opts, out, why);
}

int mesh_peers_sup_start(sup_rt *rt, sup_pid parent, void *arg, void *extra, sup_pid *out,
                         sup_reason *why)
{
    (void)arg;
    (void)extra;
    sup_flags flags = {SUP_SIMPLE_ONE_FOR_ONE, 10, 5, SUP_AUTO_NEVER};
    sup_child_spec tmpl = {.id = "macula_peer_system",
                           .start = peer_system_start,
                           .restart = SUP_TEMPORARY,
                           .shutdown_ms = SUP_SHUTDOWN_INFINITY,
                           .type = SUP_SUPERVISOR};
    sup_sv_opts opts = {.name = "macula_peers_sup"};
    int rc = sup_supervisor_start(rt, parent, &flags, &tmpl, 1, &opts, out, why);
    if (rc == 0) {
        (void)sup_register(rt, "macula_peers_sup", *out);
    }
    return rc;
}
