/*
 * src/mesh/peer/advertisement_manager.c — macula_advertisement_manager (peer.h): advertisements
 * exchanged with this peer (counted frames). The RPC layer adds its per-peer advertisement logic
 * here (advertise / unadvertise with TTL).
 */
#include <string.h>

#include "peer_worker.h"

typedef struct advertisement_manager_state {
    peer_worker w;
} advertisement_manager_state;

static int advertisement_manager__init(sup_actor *self, void *state, void *arg)
{
    advertisement_manager_state *s = state;
    return peer_worker_init(self, &s->w, "macula_advertisement_manager", arg);
}

static void advertisement_manager__info(sup_actor *self, void *state, const sup_msg *m)
{
    advertisement_manager_state *s = state;

    (void)peer_worker_info(self, &s->w, m);
}

static void advertisement_manager__call(sup_actor *self, void *state, const sup_msg *m)
{
    advertisement_manager_state *s = state;
    peer_worker_call(self, &s->w, m);
}

static const sup_behaviour advertisement_manager_behaviour = {
    .name = "macula_advertisement_manager",
    .state_size = sizeof(advertisement_manager_state),
    .init = advertisement_manager__init,
    .handle_call = advertisement_manager__call,
    .handle_info = advertisement_manager__info,
};

int peer_advertisement_manager_start(sup_rt *rt, sup_pid parent, void *arg, void *extra,
                                     sup_pid *out, sup_reason *why)
{
    (void)extra;
    return peer_worker_spawn(rt, parent, &advertisement_manager_behaviour, arg, out, why);
}
