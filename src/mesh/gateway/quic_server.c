/* src/mesh/gateway/quic_server.c — macula_gateway_quic_server (see quic_server.h). */
#include "quic_server.h"

#include <string.h>

typedef struct gw_quic {
    const gw_quic_config *cfg;
    gw_transport transport;
    sup_pid gateway;
    uint64_t gateway_mon;
} gw_quic;

static int gw_quic__init(sup_actor *self, void *state, void *arg)
{
    gw_quic *q = state;
    q->cfg = arg;
    if (q->cfg->transport != NULL) {
        q->transport = *q->cfg->transport;
    }
    /* SEAM (QUIC binding): create the endpoint here and fill q->transport (quic_server.h). */
    sup_register(sup_self_rt(self), "macula_gateway_quic_server", sup_self(self));
    return 0;
}

static void gw_quic__call(sup_actor *self, void *state, const sup_msg *m)
{
    gw_quic *q = state;
    sup_rt *rt = sup_self_rt(self);
    if (m->tag == GW_QS_ATTACH) {
        if (q->gateway_mon != 0) {
            sup_demonitor(self, q->gateway_mon, true);
        }
        q->gateway = m->from;
        q->gateway_mon = sup_monitor(self, m->from);
        sup_reply(rt, sup_msg_from(m), &q->transport, sizeof q->transport);
    } else if (m->tag == GW_QS_GATEWAY) {
        sup_reply(rt, sup_msg_from(m), &q->gateway, sizeof q->gateway);
    } else {
        sup_reply(rt, sup_msg_from(m), NULL, 0);
    }
}

static void gw_quic__info(sup_actor *self, void *state, const sup_msg *m)
{
    (void)self;
    gw_quic *q = state;
    if (m->kind == SUP_MSG_DOWN && m->ref == q->gateway_mon) {
        /* The gateway ended (it closed its connections on the way out); events wait for
         * the next one to attach. */
        q->gateway = SUP_NOPID;
        q->gateway_mon = 0;
    }
}

static const sup_behaviour gw_quic_behaviour = {
    .name = "gateway_quic_server",
    .state_size = sizeof(gw_quic),
    .init = gw_quic__init,
    .handle_call = gw_quic__call,
    .handle_info = gw_quic__info,
};

int gw_quic_server_start(sup_rt *rt, sup_pid parent, void *arg, void *extra, sup_pid *out,
                         sup_reason *why)
{
    (void)extra;
    return sup_spawn(rt, parent, &gw_quic_behaviour, arg, SUP_SPAWN_LINK, out, why);
}
