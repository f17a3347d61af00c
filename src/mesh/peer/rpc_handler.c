/*
 * src/mesh/peer/rpc_handler.c — macula_rpc_handler (peer.h): RPC traffic with this peer (RPC_ROUTE,
 * CALL, REPLY frames on the pool connection, as macula_gateway_mesh reports them). The RPC layer
 * adds its per-peer logic here (pending calls by call_id, caller monitoring).
 */
#include <string.h>

#include "peer_worker.h"

typedef struct rpc_handler_state {
    peer_worker w;
} rpc_handler_state;

static int rpc_handler__init(sup_actor *self, void *state, void *arg)
{
    rpc_handler_state *s = state;
    return peer_worker_init(self, &s->w, "macula_rpc_handler", arg);
}

static void rpc_handler__info(sup_actor *self, void *state, const sup_msg *m)
{
    rpc_handler_state *s = state;

    (void)peer_worker_info(self, &s->w, m);
}

static void rpc_handler__call(sup_actor *self, void *state, const sup_msg *m)
{
    rpc_handler_state *s = state;
    peer_worker_call(self, &s->w, m);
}

static const sup_behaviour rpc_handler_behaviour = {
    .name = "macula_rpc_handler",
    .state_size = sizeof(rpc_handler_state),
    .init = rpc_handler__init,
    .handle_call = rpc_handler__call,
    .handle_info = rpc_handler__info,
};

int peer_rpc_handler_start(sup_rt *rt, sup_pid parent, void *arg, void *extra, sup_pid *out,
                           sup_reason *why)
{
    (void)extra;
    return peer_worker_spawn(rt, parent, &rpc_handler_behaviour, arg, out, why);
}
