/*
 * src/mesh/peer/pubsub_handler.c — macula_pubsub_handler (peer.h): pub/sub traffic with this peer:
 * PUBSUB_ROUTE frames sent to it and PUBACKs that came back (macula_gateway_mesh reports them; the
 * QoS 1 state itself is the node's, in macula_gateway_pubsub, so that this worker's crash loses
 * nothing).
 */
#include <string.h>

#include "peer_worker.h"

typedef struct pubsub_handler_state {
    peer_worker w;
} pubsub_handler_state;

static int pubsub_handler__init(sup_actor *self, void *state, void *arg)
{
    pubsub_handler_state *s = state;
    return peer_worker_init(self, &s->w, "macula_pubsub_handler", arg);
}

static void pubsub_handler__info(sup_actor *self, void *state, const sup_msg *m)
{
    pubsub_handler_state *s = state;

    (void)peer_worker_info(self, &s->w, m);
}

static void pubsub_handler__call(sup_actor *self, void *state, const sup_msg *m)
{
    pubsub_handler_state *s = state;
    peer_worker_call(self, &s->w, m, NULL, NULL);
}

static const sup_behaviour pubsub_handler_behaviour = {
    .name = "macula_pubsub_handler",
    .state_size = sizeof(pubsub_handler_state),
    .init = pubsub_handler__init,
    .handle_call = pubsub_handler__call,
    .handle_info = pubsub_handler__info,
};

int peer_pubsub_handler_start(sup_rt *rt, sup_pid parent, void *arg, void *extra, sup_pid *out,
                              sup_reason *why)
{
    (void)extra;
    return peer_worker_spawn(rt, parent, &pubsub_handler_behaviour, arg, out, why);
}
