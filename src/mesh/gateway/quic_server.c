/* src/mesh/gateway/quic_server.c — macula_gateway_quic_server (see quic_server.h). */
#include "quic_server.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <uv.h>

#include "base/hmap.h"
#include "gateway_core.h"
#include "mesh/quic.h"
#include "registry.h"

/* One QUIC connection the gateway knows as `id`. */
typedef struct qs_conn {
    uint64_t id;    /* the gateway's connection id (map key) */
    quic_conn *qc;  /* the QUIC connection */
    int64_t sid;    /* the client's stream, -1 until it opens one */
    bool gw_closed; /* the gateway asked for the close: do not report it back */
} qs_conn;

typedef struct gw_quic {
    const gw_quic_config *cfg;
    sup_rt *rt;
    sup_pid self;
    gw_transport transport;
    sup_pid gateway;
    uint64_t gateway_mon;
    quic_endpoint *ep; /* NULL without a binding */
    hmap_u64 conns;    /* id -> qs_conn (ids are ours: hmap_u64) */
    uint64_t next_id;  /* last id handed out */
    sup_msgbuf batch;  /* GW_CONN_DATA_BATCH being built in place: this turn's stream data */
    bool flush_queued; /* a QS_FLUSH to ourselves is on its way */
} gw_quic;

enum { QS_FLUSH = 0x4f01 };               /* self-sent only; a range no other actor uses */
#define QS_BATCH_MAX ((size_t)256 * 1024) /* a batch this large goes at once */

/* Sends the data gathered in this loop turn to the gateway as one GW_CONN_DATA_BATCH (stream
 * data arrives in libuv's read callbacks; the runtime runs after them, so the batch costs no
 * latency). Called before any other event goes to the gateway, so that order is kept. */
static void qs__flush(gw_quic *q)
{
    if (q->batch.len == 0) {
        return;
    }
    if (sup_pid_is_null(q->gateway) ||
        sup_msgbuf_send(q->rt, q->self, q->gateway, GW_CONN_DATA_BATCH, &q->batch) != SUP_OK) {
        q->batch.len = 0; /* no gateway to take it: dropped, as a send to a dead pid is */
    }
}

/* ---- QUIC callbacks (run on the loop, outside actor callbacks) ---------------------------- */

static void qs__log(void *ctx, int level, const char *msg)
{
    (void)ctx;
    static const char *const names[] = {"error", "warn", "info", "debug"};
    fprintf(stderr, "macula: quic %s: %s\n", names[level & 3], msg);
}

static void qs__on_connected(quic_conn *c, void *ctx)
{
    gw_quic *q = ctx;
    if (!quic_conn_is_server(c)) {
        return;
    }
    qs_conn *k = calloc(1, sizeof *k);
    if (k == NULL) {
        quic_conn_close(c, GWC_CLOSE_SHUTDOWN, "out of memory");
        return;
    }
    k->id = ++q->next_id;
    k->qc = c;
    k->sid = -1;
    if (hmap_u64_put(&q->conns, k->id, k, NULL) != HMAP_OK) {
        free(k);
        quic_conn_close(c, GWC_CLOSE_SHUTDOWN, "out of memory");
        return;
    }
    quic_conn_set_user(c, k);
    char host[INET6_ADDRSTRLEN] = "?", remote[INET6_ADDRSTRLEN + 8];
    const struct sockaddr *sa = quic_conn_peer_addr(c);
    unsigned port = 0;
    if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)(const void *)sa;
        inet_ntop(AF_INET, &in->sin_addr, host, sizeof host);
        port = ntohs(in->sin_port);
        snprintf(remote, sizeof remote, "%s:%u", host, port);
    } else {
        const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)(const void *)sa;
        inet_ntop(AF_INET6, &in6->sin6_addr, host, sizeof host);
        port = ntohs(in6->sin6_port);
        snprintf(remote, sizeof remote, "[%s]:%u", host, port);
    }
    qs__flush(q);
    if (sup_pid_is_null(q->gateway) ||
        gw_gateway_conn_opened(q->rt, q->self, q->gateway, k->id, quic_conn_peer_id(c), 32,
                               remote) != 0) {
        k->gw_closed = true;
        quic_conn_close(c, GWC_CLOSE_SHUTDOWN, "the gateway is not running");
    }
}

static void qs__on_stream_open(quic_conn *c, int64_t sid, void *ctx)
{
    (void)ctx;
    qs_conn *k = quic_conn_user(c);
    if (k == NULL) {
        return;
    }
    if (k->sid < 0) {
        k->sid = sid;
    } else if (sid != k->sid) {
        quic_stream_reset(c, sid, 1); /* one stream per client carries the frames */
    }
}

static void qs__on_stream_data(quic_conn *c, int64_t sid, const uint8_t *data, size_t len, bool fin,
                               void *ctx)
{
    (void)fin;
    gw_quic *q = ctx;
    qs_conn *k = quic_conn_user(c);
    if (k == NULL || sid != k->sid || len == 0 || len > UINT32_MAX) {
        return;
    }
    gw_conn_data_rec r = {.conn = k->id, .len = (uint32_t)len};
    size_t need = q->batch.len + sizeof r + len;
    if (sup_msgbuf_reserve(q->rt, &q->batch, need) != SUP_OK) {
        /* no room to batch: this piece goes alone, after what was gathered */
        qs__flush(q);
        (void)gw_gateway_conn_data(q->rt, q->self, q->gateway, k->id, data, len);
        return;
    }
    memcpy(q->batch.data + q->batch.len, &r, sizeof r);
    memcpy(q->batch.data + q->batch.len + sizeof r, data, len);
    q->batch.len = need;
    if (q->batch.len < QS_BATCH_MAX && !q->flush_queued) {
        q->flush_queued = sup_send(q->rt, q->self, q->self, QS_FLUSH, NULL, 0) == SUP_OK;
    }
    if (q->batch.len >= QS_BATCH_MAX || !q->flush_queued) {
        qs__flush(q); /* large enough now, or no flush could be queued */
    }
}

static void qs__on_closed(quic_conn *c, const quic_close_info *info, void *ctx)
{
    (void)info;
    gw_quic *q = ctx;
    qs_conn *k = quic_conn_user(c);
    if (k == NULL) {
        return;
    }
    quic_conn_set_user(c, NULL);
    qs__flush(q);
    hmap_u64_del(&q->conns, k->id);
    if (!k->gw_closed && !sup_pid_is_null(q->gateway)) {
        gw_gateway_conn_closed(q->rt, q->self, q->gateway, k->id);
    }
    free(k);
}

/* ---- the gateway's transport ------------------------------------------------------------- */

static int qs__send(void *ctx, uint64_t conn, const uint8_t *data, size_t len)
{
    gw_quic *q = ctx;
    qs_conn *k = hmap_u64_get(&q->conns, conn);
    if (k == NULL || k->sid < 0) {
        return -1;
    }
    int rc = quic_stream_write(k->qc, k->sid, data, len, false);
    if (rc == QUIC_EAGAIN) {
        /* The client does not read what it asked for: a slow consumer is dropped, not
         * buffered without bound. on_closed reports it to the gateway. */
        quic_conn_close(k->qc, GWC_CLOSE_PROTOCOL, "send_queue_full");
    }
    return rc == QUIC_OK ? 0 : -1;
}

static int qs__close(void *ctx, uint64_t conn, uint64_t code, const char *reason)
{
    gw_quic *q = ctx;
    qs_conn *k = hmap_u64_get(&q->conns, conn);
    if (k == NULL) {
        return -1;
    }
    k->gw_closed = true;
    quic_conn_close(k->qc, code, reason);
    return 0;
}

/* ---- the actor --------------------------------------------------------------------------- */

static int gw_quic__bind(sup_actor *self, gw_quic *q)
{
    uv_loop_t *loop = sup_rt_loop(q->rt);
    if (loop == NULL) {
        return 0; /* a virtual runtime (tests): no sockets */
    }
    quic_config qc = {
        .id = q->cfg->id,
        .listen = true,
        .bind_host = q->cfg->addr ? q->cfg->addr : "0.0.0.0",
        .bind_port = q->cfg->port,
        .idle_timeout_ms = q->cfg->idle_timeout_ms,
        .cb =
            {
                .on_connected = qs__on_connected,
                .on_closed = qs__on_closed,
                .on_stream_open = qs__on_stream_open,
                .on_stream_data = qs__on_stream_data,
            },
        .ctx = q,
        .log = qs__log,
        .log_level = QUIC_LOG_WARN,
    };
    int rc = quic_endpoint_new(loop, &qc, &q->ep);
    if (rc != QUIC_OK) {
        char msg[160];
        snprintf(msg, sizeof msg, "QUIC listener on %s:%u: %s", qc.bind_host,
                 (unsigned)qc.bind_port, quic_strerror(rc));
        sup_reason why = sup_reason_error(msg);
        sup_stop(self, &why);
        return -1;
    }
    q->transport = (gw_transport){.ctx = q, .send = qs__send, .close = qs__close};
    gw_reg_set(q->rt, GW_REG_QUIC, q->ep);
    return 0;
}

static int gw_quic__init(sup_actor *self, void *state, void *arg)
{
    gw_quic *q = state;
    q->cfg = arg;
    q->rt = sup_self_rt(self);
    q->self = sup_self(self);
    q->gateway = SUP_NOPID;
    hmap_u64_init(&q->conns);
    if (q->cfg->transport != NULL) {
        q->transport = *q->cfg->transport;
    } else if (q->cfg->id != NULL && gw_quic__bind(self, q) != 0) {
        hmap_u64_free(&q->conns);
        return -1;
    }
    sup_register(q->rt, "macula_gateway_quic_server", q->self);
    return 0;
}

static void gw_quic__terminate(sup_actor *self, void *state, const sup_reason *reason)
{
    (void)self;
    (void)reason;
    gw_quic *q = state;
    if (q->ep != NULL) {
        gw_reg_clear(q->rt, GW_REG_QUIC, q->ep);
        q->gateway = SUP_NOPID;     /* on_closed below must not talk to a gateway being stopped */
        quic_endpoint_close(q->ep); /* on_closed for every connection, synchronously */
        q->ep = NULL;
    }
    size_t it = 0;
    const hmap_u64_slot *s;
    while ((s = hmap_u64_next(&q->conns, &it)) != NULL) {
        free(s->val);
    }
    hmap_u64_free(&q->conns);
    sup_msgbuf_free(q->rt, &q->batch);
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
    } else if (m->tag == GW_QS_PORT) {
        uint16_t port = q->ep ? quic_endpoint_port(q->ep) : 0;
        sup_reply(rt, sup_msg_from(m), &port, sizeof port);
    } else {
        sup_reply(rt, sup_msg_from(m), NULL, 0);
    }
}

static void gw_quic__info(sup_actor *self, void *state, const sup_msg *m)
{
    (void)self;
    gw_quic *q = state;
    if (m->kind == SUP_MSG_INFO && m->tag == QS_FLUSH) {
        q->flush_queued = false;
        qs__flush(q);
        return;
    }
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
    .terminate = gw_quic__terminate,
};

int gw_quic_server_start(sup_rt *rt, sup_pid parent, void *arg, void *extra, sup_pid *out,
                         sup_reason *why)
{
    (void)extra;
    return sup_spawn(rt, parent, &gw_quic_behaviour, arg, SUP_SPAWN_LINK, out, why);
}

bool gw_quic_server_stats(sup_rt *rt, gw_quic_stats *out)
{
    const quic_endpoint *ep = gw_reg_get(rt, GW_REG_QUIC);
    if (ep == NULL) {
        return false;
    }
    quic_endpoint_stats st;
    quic_endpoint_stats_get(ep, &st);
    *out = (gw_quic_stats){.port = quic_endpoint_port(ep),
                           .connections = st.connections,
                           .handshakes_ok = st.handshakes_ok,
                           .handshakes_failed = st.handshakes_failed,
                           .packets_in = st.packets_in,
                           .packets_out = st.packets_out,
                           .packets_dropped = st.packets_dropped,
                           .ngtcp2_bytes = st.ngtcp2_bytes};
    return true;
}
