/*
 * src/mesh/peer/connection.c — macula_connection (peer.h): the connection's record: the peer's node
 * id and address, when it became ready, the frames sent to and received from the peer on the
 * gateway path (macula_gateway_mesh reports them; DHT frames are not counted here). It is the peer
 * system's significant child: PEER_STOP (the connection is gone) ends it normally, and the peer
 * system shuts down with it.
 */
#include <jansson.h>
#include <string.h>

#include "peer_worker.h"

typedef struct connection_state {
    peer_worker w;
} connection_state;

static int connection__init(sup_actor *self, void *state, void *arg)
{
    connection_state *s = state;
    return peer_worker_init(self, &s->w, "macula_connection", arg);
}

static void connection__info(sup_actor *self, void *state, const sup_msg *m)
{
    connection_state *s = state;
    if (m->kind == SUP_MSG_INFO && m->tag == PEER_STOP) {
        sup_reason r = sup_reason_normal();
        sup_stop(self, &r);
        return;
    }
    (void)peer_worker_info(self, &s->w, m);
}

/* The connection's record: the peer's node id, address, since / uptime. */
static void connection__json(json_t *o, void *state, uint64_t now)
{
    static const char digits[] = "0123456789abcdef";
    connection_state *s = state;
    char hex[65];
    for (size_t i = 0; i < 32; i++) {
        hex[2 * i] = digits[s->w.info.id[i] >> 4];
        hex[2 * i + 1] = digits[s->w.info.id[i] & 15];
    }
    hex[64] = '\0';
    uint64_t since = s->w.info.since_ms;
    json_object_set_new(o, "node_id", json_string(hex));
    json_object_set_new(o, "addr", json_string(s->w.info.addr));
    json_object_set_new(o, "since_ms", json_integer((json_int_t)since));
    json_object_set_new(o, "uptime_s", json_real(now > since ? (double)(now - since) / 1000.0 : 0));
}

static void connection__call(sup_actor *self, void *state, const sup_msg *m)
{
    connection_state *s = state;
    peer_worker_call(self, &s->w, m, connection__json, s);
}

static const sup_behaviour connection_behaviour = {
    .name = "macula_connection",
    .state_size = sizeof(connection_state),
    .init = connection__init,
    .handle_call = connection__call,
    .handle_info = connection__info,
};

int peer_connection_start(sup_rt *rt, sup_pid parent, void *arg, void *extra, sup_pid *out,
                          sup_reason *why)
{
    (void)extra;
    return peer_worker_spawn(rt, parent, &connection_behaviour, arg, out, why);
}
