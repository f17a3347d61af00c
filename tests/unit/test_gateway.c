/* tests/unit/test_gateway.c — the gateway actors (src/mesh/gateway/gateway.c and friends)
 * inside the real macula_gateway_system tree, driven through a test double of the transport
 * interface (gw_transport): the harness plays the QUIC side, injecting connection events as
 * messages and recording what the gateway sends and closes. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include <cmocka.h>

#include "macula/sup.h"
#include "macula/sup_supervisor.h"
#include "mesh/gateway/clients.h"
#include "mesh/gateway/diagnostics.h"
#include "mesh/gateway/gateway.h"
#include "mesh/gateway/pubsub.h"
#include "mesh/gateway/quic_server.h"
#include "mesh/gateway/system.h"
#include "mesh/wire.h"

#define REALM "test.realm"

/* ---- the fake transport ------------------------------------------------------------------ */

typedef struct rec {
    bool is_close;
    uint64_t conn;
    uint8_t *bytes; /* send: one frame */
    size_t len;
    wire_msg msg;
    uint64_t code;
    char reason[64];
} rec;

typedef struct fake {
    rec *v;
    size_t n, cap;
    gw_transport tr;
} fake;

static rec *fake_push(fake *f)
{
    if (f->n == f->cap) {
        f->cap = f->cap ? f->cap * 2 : 64;
        f->v = realloc(f->v, f->cap * sizeof *f->v);
        assert_non_null(f->v);
    }
    rec *r = &f->v[f->n++];
    memset(r, 0, sizeof *r);
    return r;
}

static int fake_send(void *ctx, uint64_t conn, const uint8_t *data, size_t len)
{
    fake *f = ctx;
    rec *r = fake_push(f);
    r->conn = conn;
    r->bytes = malloc(len);
    assert_non_null(r->bytes);
    memcpy(r->bytes, data, len);
    r->len = len;
    size_t used = 0;
    assert_int_equal(wire_decode(r->bytes, len, NULL, &r->msg, &used), 0);
    assert_int_equal(used, len);
    return 0;
}

static int fake_close(void *ctx, uint64_t conn, uint64_t code, const char *reason)
{
    fake *f = ctx;
    rec *r = fake_push(f);
    r->is_close = true;
    r->conn = conn;
    r->code = code;
    snprintf(r->reason, sizeof r->reason, "%s", reason);
    return 0;
}

static void fake_clear(fake *f)
{
    for (size_t i = 0; i < f->n; i++) {
        free(f->v[i].bytes);
    }
    f->n = 0;
}

/* ---- fixture ----------------------------------------------------------------------------- */

typedef struct node {
    uv_loop_t loop;
    sup_rt *rt;
    sup_pid sys;
    gw_system_config cfg;
    fake fk;
} node;

static void config(node *n, uint64_t ping_ms)
{
    memset(&n->cfg, 0, sizeof n->cfg);
    n->cfg.health.addr = "127.0.0.1";
    n->cfg.health.port = 0;
    n->cfg.realm = REALM;
    memset(n->cfg.node_id, 0x5a, sizeof n->cfg.node_id);
    n->cfg.gateway.core.ping_interval_ms = ping_ms;
    n->fk.tr = (gw_transport){&n->fk, fake_send, fake_close};
    n->cfg.quic.transport = &n->fk.tr;
}

static int up_with(void **state, uint64_t ping_ms)
{
    node *n = calloc(1, sizeof *n);
    uv_loop_init(&n->loop);
    n->rt = sup_rt_new(&n->loop);
    config(n, ping_ms);
    sup_reason why;
    if (gw_system_start(n->rt, SUP_NOPID, &n->cfg, NULL, &n->sys, &why) != 0) {
        return -1;
    }
    sup_rt_run(n->rt);
    *state = n;
    return 0;
}

static int up(void **state)
{
    return up_with(state, 0);
}

static int up_fast_ping(void **state)
{
    return up_with(state, 20);
}

static int down(void **state)
{
    node *n = *state;
    sup_reason sd = sup_reason_shutdown();
    sup_stop_sync(n->rt, n->sys, &sd);
    sup_rt_free(n->rt);
    uv_run(&n->loop, UV_RUN_DEFAULT);
    int rc = uv_loop_close(&n->loop);
    fake_clear(&n->fk);
    free(n->fk.v);
    free(n);
    return rc;
}

/* ---- helpers ----------------------------------------------------------------------------- */

static wire_bytes B(const char *s)
{
    return (wire_bytes){(const uint8_t *)s, strlen(s)};
}

static bool is(wire_bytes b, const char *s)
{
    return b.p != NULL && b.len == strlen(s) && memcmp(b.p, s, b.len) == 0;
}

static sup_pid gw(node *n)
{
    return sup_whereis(n->rt, "macula_gateway");
}

static void open_conn(node *n, uint64_t conn)
{
    assert_int_equal(gw_gateway_conn_opened(n->rt, SUP_NOPID, gw(n), conn, NULL, 0, "127.0.0.1:1"),
                     0);
    sup_rt_run(n->rt);
}

static void send_bytes(node *n, uint64_t conn, const uint8_t *p, size_t len)
{
    assert_int_equal(gw_gateway_conn_data(n->rt, SUP_NOPID, gw(n), conn, p, len), 0);
    sup_rt_run(n->rt);
}

static void send_msg(node *n, uint64_t conn, const wire_msg *m)
{
    uint8_t *p = NULL;
    size_t len = 0;
    assert_int_equal(wire_encode_alloc(m, &p, &len), 0);
    send_bytes(n, conn, p, len);
    free(p);
}

static wire_msg connect_msg(uint8_t id[32], uint8_t fill, const char *realm)
{
    static const wire_bytes caps[] = {{(const uint8_t *)"rpc", 3}};
    memset(id, fill, 32);
    wire_msg m = {.type = WIRE_CONNECT};
    m.connect.version = B("1.0");
    m.connect.node_id = (wire_bytes){id, 32};
    m.connect.realm_id = B(realm);
    m.connect.capabilities = (wire_bytes_list){1, caps, NULL};
    m.connect.endpoint = B("https://c.example:4433");
    return m;
}

static void handshake(node *n, uint64_t conn, uint8_t fill)
{
    uint8_t id[32];
    open_conn(n, conn);
    wire_msg m = connect_msg(id, fill, REALM);
    fake_clear(&n->fk);
    send_msg(n, conn, &m);
    assert_int_equal(n->fk.n, 1);
    assert_int_equal(n->fk.v[0].conn, conn);
    assert_int_equal(n->fk.v[0].msg.type, WIRE_PONG);
    fake_clear(&n->fk);
}

static long tracked(node *n)
{
    sup_rt_run(n->rt);
    return gw_clients_count(n->rt);
}

static gwc_stats stats(node *n)
{
    gwc_stats s;
    size_t len = 0;
    assert_int_equal(
        sup_call_sync(n->rt, gw(n), GW_GATEWAY_STATS, NULL, 0, 1000, &s, sizeof s, &len, NULL), 0);
    assert_int_equal(len, sizeof s);
    gwc_stats direct;
    assert_true(gw_gateway_stats(n->rt, &direct)); /* the published view agrees */
    assert_int_equal(direct.clients, s.clients);
    return s;
}

/* ---- tests ------------------------------------------------------------------------------- */

static void test_tree_has_seed_children(void **state)
{
    node *n = *state;
    sup_child_info ci[8];
    int k = sup_which_children_sync(n->rt, n->sys, ci, 8);
    assert_int_equal(k, 5);
    /* OTP order: most recently started first */
    assert_string_equal(ci[0].id, "macula_gateway_workers_sup");
    assert_int_equal(ci[0].type, SUP_SUPERVISOR);
    assert_string_equal(ci[1].id, "macula_gateway");
    assert_string_equal(ci[2].id, "macula_gateway_quic_server");
    assert_string_equal(ci[3].id, "macula_gateway_diagnostics");
    assert_string_equal(ci[4].id, "macula_gateway_health");
    sup_child_info w[4];
    /* clients, pubsub, rpc, mesh (rest_for_one): most recently started first */
    assert_int_equal(sup_which_children_sync(n->rt, ci[0].pid, w, 4), 4);
    assert_string_equal(w[0].id, "macula_gateway_mesh");
    assert_string_equal(w[1].id, "macula_gateway_rpc");
    assert_string_equal(w[2].id, "macula_gateway_pubsub");
    assert_string_equal(w[3].id, "macula_gateway_clients");
    sup_sv_summary s;
    assert_int_equal(sup_sv_inspect(n->rt, n->sys, &s, NULL, NULL), 0);
    assert_int_equal(s.strategy, SUP_REST_FOR_ONE);
    assert_int_equal(s.intensity, 10);
    assert_int_equal(s.period_s, 60);
    assert_int_equal(sup_sv_inspect(n->rt, ci[0].pid, &s, NULL, NULL), 0);
    assert_int_equal(s.strategy, SUP_REST_FOR_ONE);
    /* the gateway attached to the quic_server */
    sup_pid att;
    size_t len = 0;
    assert_int_equal(sup_call_sync(n->rt, sup_whereis(n->rt, "macula_gateway_quic_server"),
                                   GW_QS_GATEWAY, NULL, 0, 1000, &att, sizeof att, &len, NULL),
                     0);
    assert_true(sup_pid_eq(att, gw(n)));
}

static void test_handshake_tracks_client_and_diagnostics(void **state)
{
    node *n = *state;
    assert_int_equal(tracked(n), 0);
    handshake(n, 1, 0x01);
    assert_int_equal(tracked(n), 1);
    /* the clients table has the details */
    uint8_t id[32];
    memset(id, 0x01, 32);
    gw_client_entry_info e;
    size_t len = 0;
    assert_int_equal(sup_call_sync(n->rt, sup_whereis(n->rt, "macula_gateway_clients"),
                                   GW_CLIENTS_GET, id, 32, 1000, &e, sizeof e, &len, NULL),
                     0);
    assert_true(e.found);
    assert_int_equal(e.conn, 1);
    assert_int_equal(e.streams, 1);
    assert_int_equal(e.caps_count, 1);
    assert_string_equal(e.endpoint, "https://c.example:4433");
    assert_string_equal(e.remote, "127.0.0.1:1");
    /* PING is answered with the timestamp echoed and the wall clock */
    wire_msg p = {.type = WIRE_PING};
    p.ping.timestamp = 424242;
    send_msg(n, 1, &p);
    assert_int_equal(n->fk.n, 1);
    assert_int_equal(n->fk.v[0].msg.pong.timestamp, 424242);
    assert_true(n->fk.v[0].msg.pong.server_time > 1600000000000LL); /* epoch ms */
    fake_clear(&n->fk);
    /* a diagnostics CALL travels through the diagnostics actor */
    uint64_t served0 = 0, served1 = 0;
    sup_pid diag = sup_whereis(n->rt, "macula_gateway_diagnostics");
    assert_int_equal(sup_call_sync(n->rt, diag, GW_DIAG_SERVED, NULL, 0, 1000, &served0,
                                   sizeof served0, &len, NULL),
                     0);
    wire_msg c = {.type = WIRE_CALL};
    c.call.call_id = B("0123456789abcdef");
    c.call.procedure = B("com.macula.diagnostics.info");
    c.call.args = B("{}");
    c.call.realm = B(REALM);
    send_msg(n, 1, &c);
    assert_int_equal(n->fk.n, 1);
    assert_int_equal(n->fk.v[0].msg.type, WIRE_REPLY);
    assert_false(n->fk.v[0].msg.reply.is_error);
    assert_true(is(n->fk.v[0].msg.reply.call_id, "0123456789abcdef"));
    const wire_bytes r = n->fk.v[0].msg.reply.result;
    char text[512];
    snprintf(text, sizeof text, "%.*s", (int)r.len, (const char *)r.p);
    assert_non_null(strstr(text, "\"realm\":\"" REALM "\""));
    assert_non_null(strstr(text, "\"clients\":1"));
    assert_non_null(strstr(text, "5a5a5a5a"));
    assert_int_equal(sup_call_sync(n->rt, diag, GW_DIAG_SERVED, NULL, 0, 1000, &served1,
                                   sizeof served1, &len, NULL),
                     0);
    assert_int_equal(served1, served0 + 1);
    fake_clear(&n->fk);
    /* an unknown procedure is no_handler */
    c.call.procedure = B("com.example.nothing");
    send_msg(n, 1, &c);
    assert_true(n->fk.v[0].msg.reply.is_error);
    assert_true(is(n->fk.v[0].msg.reply.error.code, "no_handler"));
    fake_clear(&n->fk);
    /* the client leaves; the table follows */
    wire_msg d = {.type = WIRE_DISCONNECT};
    d.disconnect.reason = B("normal");
    d.disconnect.message = B("");
    send_msg(n, 1, &d);
    assert_int_equal(n->fk.n, 1);
    assert_true(n->fk.v[0].is_close);
    assert_int_equal(n->fk.v[0].code, GWC_CLOSE_NORMAL);
    assert_int_equal(tracked(n), 0);
    gwc_stats s = stats(n);
    assert_int_equal(s.connects_accepted, 1);
    assert_int_equal(s.disconnects_in, 1);
    assert_int_equal(s.clients, 0);
}

static void test_realm_mismatch(void **state)
{
    node *n = *state;
    uint8_t id[32];
    open_conn(n, 7);
    wire_msg m = connect_msg(id, 0x07, "some.other.realm");
    send_msg(n, 7, &m);
    assert_int_equal(n->fk.n, 2);
    assert_int_equal(n->fk.v[0].msg.type, WIRE_DISCONNECT);
    assert_true(is(n->fk.v[0].msg.disconnect.reason, "realm_mismatch"));
    assert_true(n->fk.v[1].is_close);
    assert_int_equal(n->fk.v[1].conn, 7);
    assert_int_equal(n->fk.v[1].code, GWC_CLOSE_REFUSED);
    assert_string_equal(n->fk.v[1].reason, "realm_mismatch");
    assert_int_equal(tracked(n), 0);
    gwc_stats s = stats(n);
    assert_int_equal(s.connects_refused[GWC_REFUSE_REALM_MISMATCH], 1);
    assert_int_equal(s.pending, 0);
}

/* One client sends garbage and is cut off; the other, mid-frame at that moment, is served. */
static void test_garbage_isolated(void **state)
{
    node *n = *state;
    handshake(n, 1, 0x01);
    handshake(n, 2, 0x02);
    wire_msg p = {.type = WIRE_PING};
    p.ping.timestamp = 5;
    uint8_t *pb = NULL;
    size_t plen = 0;
    assert_int_equal(wire_encode_alloc(&p, &pb, &plen), 0);
    send_bytes(n, 1, pb, 3); /* client 1: a partial frame */
    static const uint8_t garbage[] = "GET / HTTP/1.1\r\nHost: x\r\n\r\n";
    send_bytes(n, 2, garbage, sizeof garbage - 1);
    assert_int_equal(n->fk.n, 2);
    assert_int_equal(n->fk.v[0].conn, 2);
    assert_true(is(n->fk.v[0].msg.disconnect.reason, "unsupported_version"));
    assert_true(n->fk.v[1].is_close);
    assert_int_equal(n->fk.v[1].code, GWC_CLOSE_PROTOCOL);
    fake_clear(&n->fk);
    /* later bytes from the dead connection are ignored */
    send_bytes(n, 2, garbage, sizeof garbage - 1);
    assert_int_equal(n->fk.n, 0);
    /* client 1 completes its PING */
    send_bytes(n, 1, pb + 3, plen - 3);
    assert_int_equal(n->fk.n, 1);
    assert_int_equal(n->fk.v[0].conn, 1);
    assert_int_equal(n->fk.v[0].msg.pong.timestamp, 5);
    fake_clear(&n->fk);
    assert_int_equal(tracked(n), 1);
    gwc_stats s = stats(n);
    assert_int_equal(s.decode_errors[-WIRE_EUNSUPPORTED_VERSION], 1);
    assert_int_equal(s.clients, 1);
    /* the transport loses client 1 */
    assert_int_equal(gw_gateway_conn_closed(n->rt, SUP_NOPID, gw(n), 1), 0);
    assert_int_equal(tracked(n), 0);
    assert_int_equal(n->fk.n, 0); /* nothing to send to a closed connection */
    free(pb);
}

/* Counts the PUBLISH frames of topic t.x with payload `pl` the transport got, per conn 1..3. */
static void count_pubs(node *n, const char *pl, int out[4])
{
    memset(out, 0, 4 * sizeof *out);
    for (size_t i = 0; i < n->fk.n; i++) {
        if (!n->fk.v[i].is_close && n->fk.v[i].msg.type == WIRE_PUBLISH &&
            is(n->fk.v[i].msg.publish.topic, "t.x") && is(n->fk.v[i].msg.publish.payload, pl) &&
            n->fk.v[i].conn <= 3) {
            out[n->fk.v[i].conn]++;
        }
    }
}

static void publish_tx(node *n, uint64_t conn, const char *pl)
{
    wire_msg pub = {.type = WIRE_PUBLISH};
    pub.publish.topic = B("t.x");
    pub.publish.payload = B(pl);
    pub.publish.message_id = B("0123456789abcdef");
    send_msg(n, conn, &pub);
}

/* conn subscribes to "t.x". */
static void subscribe_tx(node *n, uint64_t conn)
{
    static const wire_bytes topics[] = {{(const uint8_t *)"t.x", 3}};
    wire_msg sub = {.type = WIRE_SUBSCRIBE};
    sub.subscribe.topics = (wire_bytes_list){1, topics, NULL};
    send_msg(n, conn, &sub);
}

/* Clients 1, 2 and 3 connected; 2 and 3 subscribed to "t.x". */
static void publisher_and_two_subscribers(node *n)
{
    handshake(n, 1, 0x01);
    handshake(n, 2, 0x02);
    handshake(n, 3, 0x03);
    subscribe_tx(n, 2);
    subscribe_tx(n, 3);
}

/* A GW_PS_PUBLISH record from connection 1 with 8 payload bytes: topic "t.x" at 0, the
 * message at [payload_off, payload_off + payload_len), no message id. */
static gw_ps_pub ps_pub_rec(uint32_t payload_off, uint32_t payload_len)
{
    return (gw_ps_pub){.conn = 1,
                       .len = 8,
                       .topic_off = 0,
                       .topic_len = 3,
                       .payload_off = payload_off,
                       .payload_len = payload_len,
                       .mid_off = GW_PS_ABSENT,
                       .mid_len = 0};
}

/* A PUBLISH goes to the pubsub worker already decoded (GW_PS_PUBLISH) and comes back as one
 * GW_PS_FANOUT for both subscribers; a GW_PS_PUBLISH whose places lie outside its payload and a
 * GW_PS_FANOUT whose length disagrees with its header are dropped; after the worker crashes,
 * the gateway finds the new one (its cached pid is dead) and deliveries go on. */
static void test_pubsub_publish_fanout(void **state)
{
    node *n = *state;
    publisher_and_two_subscribers(n);
    fake_clear(&n->fk);
    publish_tx(n, 1, "one");
    int got[4];
    count_pubs(n, "one", got);
    assert_int_equal(got[1], 0);
    assert_int_equal(got[2], 1);
    assert_int_equal(got[3], 1);
    fake_clear(&n->fk);

    sup_pid ps = sup_whereis(n->rt, "macula_gateway_pubsub");
    assert_false(sup_pid_is_null(ps));
    gw_pubsub_view v0;
    assert_true(gw_pubsub_stats(n->rt, &v0));
    uint8_t msg[2 * (sizeof(gw_ps_pub) + 8)];
    memset(msg, 0, sizeof msg);
    gw_ps_pub pp = ps_pub_rec(6, 3);
    memcpy(msg, &pp, sizeof pp);
    memcpy(msg + sizeof pp, "t.xabcdefg", 8);
    /* payload_off + payload_len = 9 > 8 */
    assert_int_equal(sup_send(n->rt, SUP_NOPID, ps, GW_PS_PUBLISH, msg, sizeof pp + 8), 0);
    /* an absent field with a length */
    pp.payload_off = 3;
    pp.mid_len = 16;
    memcpy(msg, &pp, sizeof pp);
    assert_int_equal(sup_send(n->rt, SUP_NOPID, ps, GW_PS_PUBLISH, msg, sizeof pp + 8), 0);
    /* shorter than its header */
    assert_int_equal(sup_send(n->rt, SUP_NOPID, ps, GW_PS_PUBLISH, msg, sizeof pp - 1), 0);
    /* a record longer than the message */
    pp.mid_len = 0;
    memcpy(msg, &pp, sizeof pp);
    assert_int_equal(sup_send(n->rt, SUP_NOPID, ps, GW_PS_PUBLISH, msg, sizeof pp + 7), 0);
    sup_rt_run(n->rt);
    gw_pubsub_view v1;
    assert_true(gw_pubsub_stats(n->rt, &v1));
    assert_int_equal(v1.frames_invalid, v0.frames_invalid + 4);
    assert_int_equal(v1.core.published, v0.core.published);
    assert_int_equal(n->fk.n, 0);
    /* a well-formed one is published */
    assert_int_equal(sup_send(n->rt, SUP_NOPID, ps, GW_PS_PUBLISH, msg, sizeof pp + 8), 0);
    sup_rt_run(n->rt);
    assert_true(gw_pubsub_stats(n->rt, &v1));
    assert_int_equal(v1.frames_invalid, v0.frames_invalid + 4);
    assert_int_equal(v1.core.published, v0.core.published + 1);
    count_pubs(n, "abc", got);
    assert_int_equal(got[2], 1);
    assert_int_equal(got[3], 1);
    fake_clear(&n->fk);
    /* a batch of two records: the first out of range (skipped), the second published */
    gw_ps_pub bad = pp;
    bad.topic_len = 9;
    memcpy(msg, &bad, sizeof bad);
    memcpy(msg + sizeof bad, "t.xabcdefg", 8);
    pp.payload_off = 4;
    memcpy(msg + sizeof pp + 8, &pp, sizeof pp);
    memcpy(msg + 2 * sizeof pp + 8, "t.x-bcd-", 8);
    assert_int_equal(sup_send(n->rt, SUP_NOPID, ps, GW_PS_PUBLISH, msg, sizeof msg), 0);
    sup_rt_run(n->rt);
    assert_true(gw_pubsub_stats(n->rt, &v1));
    assert_int_equal(v1.frames_invalid, v0.frames_invalid + 5);
    assert_int_equal(v1.core.published, v0.core.published + 2);
    count_pubs(n, "bcd", got);
    assert_int_equal(got[2], 1);
    assert_int_equal(got[3], 1);
    fake_clear(&n->fk);

    /* GW_PS_FANOUT: the frame, then 2 connection ids; lengths that disagree send nothing */
    wire_msg pub = {.type = WIRE_PUBLISH};
    pub.publish.topic = B("t.x");
    pub.publish.payload = B("fan");
    uint8_t *frame = NULL;
    size_t flen = 0;
    assert_int_equal(wire_encode_alloc(&pub, &frame, &flen), 0);
    uint8_t fan[sizeof(gw_ps_fanout_hdr) + 256 + 2 * sizeof(uint64_t)];
    assert_true(flen <= 256);
    gw_ps_fanout_hdr fh = {.n = 2, .frame_len = (uint32_t)flen};
    uint64_t conns[2] = {2, 3};
    memcpy(fan, &fh, sizeof fh);
    memcpy(fan + sizeof fh, frame, flen);
    memcpy(fan + sizeof fh + flen, conns, sizeof conns);
    size_t fanlen = sizeof fh + flen + sizeof conns;
    assert_int_equal(sup_send(n->rt, SUP_NOPID, gw(n), GW_PS_FANOUT, fan, fanlen - 1), 0);
    fh.n = 3;
    memcpy(fan, &fh, sizeof fh);
    assert_int_equal(sup_send(n->rt, SUP_NOPID, gw(n), GW_PS_FANOUT, fan, fanlen), 0);
    fh.n = 2;
    fh.frame_len = UINT32_MAX;
    memcpy(fan, &fh, sizeof fh);
    assert_int_equal(sup_send(n->rt, SUP_NOPID, gw(n), GW_PS_FANOUT, fan, fanlen), 0);
    sup_rt_run(n->rt);
    count_pubs(n, "fan", got);
    assert_int_equal(got[2] + got[3], 0);
    fh.frame_len = (uint32_t)flen;
    memcpy(fan, &fh, sizeof fh);
    assert_int_equal(sup_send(n->rt, SUP_NOPID, gw(n), GW_PS_FANOUT, fan, fanlen), 0);
    sup_rt_run(n->rt);
    count_pubs(n, "fan", got);
    assert_int_equal(got[2], 1);
    assert_int_equal(got[3], 1);
    fake_clear(&n->fk);
    /* two records in one message: "fan" to 2 and 3, "fa2" to 3; with 8 bytes of a third record
     * that does not fit, nothing of the message is sent */
    wire_msg pub2 = pub;
    pub2.publish.payload = B("fa2");
    uint8_t *frame2 = NULL;
    size_t flen2 = 0;
    assert_int_equal(wire_encode_alloc(&pub2, &frame2, &flen2), 0);
    uint8_t fan2[2 * sizeof(gw_ps_fanout_hdr) + 512 + 3 * sizeof(uint64_t) + 8];
    assert_true(flen2 <= 256);
    memcpy(fan2, fan, fanlen);
    gw_ps_fanout_hdr fh2 = {.n = 1, .frame_len = (uint32_t)flen2};
    memcpy(fan2 + fanlen, &fh2, sizeof fh2);
    memcpy(fan2 + fanlen + sizeof fh2, frame2, flen2);
    uint64_t three = 3;
    memcpy(fan2 + fanlen + sizeof fh2 + flen2, &three, sizeof three);
    size_t fan2len = fanlen + sizeof fh2 + flen2 + sizeof three;
    gw_ps_fanout_hdr fh3 = {.n = 1, .frame_len = 1};
    memcpy(fan2 + fan2len, &fh3, sizeof fh3);
    assert_int_equal(sup_send(n->rt, SUP_NOPID, gw(n), GW_PS_FANOUT, fan2, fan2len + sizeof fh3),
                     0);
    sup_rt_run(n->rt);
    count_pubs(n, "fan", got);
    assert_int_equal(got[2] + got[3], 0);
    count_pubs(n, "fa2", got);
    assert_int_equal(got[3], 0);
    assert_int_equal(sup_send(n->rt, SUP_NOPID, gw(n), GW_PS_FANOUT, fan2, fan2len), 0);
    sup_rt_run(n->rt);
    count_pubs(n, "fan", got);
    assert_int_equal(got[2], 1);
    assert_int_equal(got[3], 1);
    count_pubs(n, "fa2", got);
    assert_int_equal(got[2], 0);
    assert_int_equal(got[3], 1);
    free(frame2);
    free(frame);
    fake_clear(&n->fk);

    /* Several frames in one piece of stream data from conn 3: PUBLISH b1, PUBLISH b2,
     * UNSUBSCRIBE, PUBLISH b3. The PUBLISHes are batched; the batch reaches the worker before
     * the UNSUBSCRIBE, so conn 3 still gets b1 and b2, and not b3. */
    static const wire_bytes tx[] = {{(const uint8_t *)"t.x", 3}};
    wire_msg unsub = {.type = WIRE_UNSUBSCRIBE};
    unsub.unsubscribe.topics = (wire_bytes_list){1, tx, NULL};
    const char *pls[4] = {"b1", "b2", NULL, "b3"};
    uint8_t data[1024];
    size_t dlen = 0;
    for (int k = 0; k < 4; k++) {
        wire_msg pk = {.type = WIRE_PUBLISH};
        pk.publish.topic = B("t.x");
        pk.publish.payload = k == 2 ? B("") : B(pls[k]);
        uint8_t *fb = NULL;
        size_t fl = 0;
        assert_int_equal(wire_encode_alloc(k == 2 ? &unsub : &pk, &fb, &fl), 0);
        assert_true(dlen + fl <= sizeof data);
        memcpy(data + dlen, fb, fl);
        dlen += fl;
        free(fb);
    }
    send_bytes(n, 3, data, dlen);
    count_pubs(n, "b1", got);
    assert_int_equal(got[2], 1);
    assert_int_equal(got[3], 1);
    count_pubs(n, "b2", got);
    assert_int_equal(got[2], 1);
    assert_int_equal(got[3], 1);
    count_pubs(n, "b3", got);
    assert_int_equal(got[2], 1);
    assert_int_equal(got[3], 0);
    fake_clear(&n->fk);
    /* conn 3 subscribes again (the rest of the test expects it) */
    subscribe_tx(n, 3);
    sup_rt_run(n->rt);
    fake_clear(&n->fk);

    /* the worker crashes and comes back with the ledger's subscriptions */
    sup_reason r = sup_reason_error("{test,crash}");
    assert_int_equal(sup_exit(n->rt, SUP_NOPID, ps, &r), 0);
    sup_rt_run(n->rt);
    sup_pid ps2 = sup_whereis(n->rt, "macula_gateway_pubsub");
    assert_false(sup_pid_is_null(ps2));
    assert_false(sup_pid_eq(ps2, ps));
    fake_clear(&n->fk);
    publish_tx(n, 1, "two");
    count_pubs(n, "two", got);
    assert_int_equal(got[2], 1);
    assert_int_equal(got[3], 1);
    fake_clear(&n->fk);
}

/* The pubsub worker is stopped (terminate_child: it stays down) after the gateway cached its
 * pid: a PUBLISH taken into a batch that then finds no worker is counted as unhandled, not
 * lost silently; once the worker is back, publishes flow again. */
static void test_publish_without_worker(void **state)
{
    node *n = *state;
    handshake(n, 1, 0x01);
    handshake(n, 2, 0x02);
    subscribe_tx(n, 2);
    publish_tx(n, 1, "up"); /* the gateway now holds the worker's pid */
    int got[4];
    count_pubs(n, "up", got);
    assert_int_equal(got[2], 1);
    fake_clear(&n->fk);
    sup_child_info ci[8];
    assert_true(sup_which_children_sync(n->rt, n->sys, ci, 8) > 0);
    sup_pid wsup = ci[0].pid;
    assert_int_equal(sup_terminate_child_sync(n->rt, wsup, "macula_gateway_pubsub", SUP_NOPID), 0);
    sup_rt_run(n->rt);
    gwc_stats before, after;
    assert_true(gw_gateway_stats(n->rt, &before));
    publish_tx(n, 1, "down");
    assert_true(gw_gateway_stats(n->rt, &after));
    assert_int_equal(after.frames_unhandled, before.frames_unhandled + 1);
    count_pubs(n, "down", got);
    assert_int_equal(got[2], 0);
    sup_pid back = SUP_NOPID;
    sup_reason why;
    assert_int_equal(sup_restart_child_sync(n->rt, wsup, "macula_gateway_pubsub", &back, &why), 0);
    sup_rt_run(n->rt);
    publish_tx(n, 1, "again");
    count_pubs(n, "again", got);
    assert_int_equal(got[2], 1);
    fake_clear(&n->fk);
}

/* The gateway is stopped (terminate_child: it stays down) while the pubsub worker runs: the
 * GW_PS_FANOUT batch built in place finds no gateway, and every delivery in it is counted in
 * send_failed (the batch keeps its bytes when the send fails, so they can be counted). */
static void test_fanout_without_gateway(void **state)
{
    node *n = *state;
    publisher_and_two_subscribers(n);
    publish_tx(n, 1, "up"); /* the worker now holds the gateway's pid */
    int got[4];
    count_pubs(n, "up", got);
    assert_int_equal(got[2], 1);
    assert_int_equal(got[3], 1);
    fake_clear(&n->fk);
    sup_pid ps = sup_whereis(n->rt, "macula_gateway_pubsub");
    assert_false(sup_pid_is_null(ps));
    assert_int_equal(sup_terminate_child_sync(n->rt, n->sys, "macula_gateway", SUP_NOPID), 0);
    sup_rt_run(n->rt);
    assert_true(sup_pid_is_null(sup_whereis(n->rt, "macula_gateway")));
    assert_true(sup_pid_eq(sup_whereis(n->rt, "macula_gateway_pubsub"), ps));
    /* the stopped gateway closed its clients (their subscriptions went with them): two
     * subscriptions as the gateway's frame hook would hand them over */
    static const wire_bytes topics[] = {{(const uint8_t *)"t.x", 3}};
    wire_msg sub = {.type = WIRE_SUBSCRIBE};
    sub.subscribe.topics = (wire_bytes_list){1, topics, NULL};
    uint8_t *fb = NULL;
    size_t fl = 0;
    assert_int_equal(wire_encode_alloc(&sub, &fb, &fl), 0);
    for (uint64_t conn = 2; conn <= 3; conn++) {
        uint8_t fm[sizeof(gw_ps_frame_hdr) + 64];
        assert_true(fl <= 64);
        gw_ps_frame_hdr h;
        memset(&h, 0, sizeof h);
        h.conn = conn;
        h.node_id[0] = (uint8_t)conn;
        memcpy(fm, &h, sizeof h);
        memcpy(fm + sizeof h, fb, fl);
        assert_int_equal(sup_send(n->rt, SUP_NOPID, ps, GW_PS_FRAME, fm, sizeof h + fl), 0);
    }
    free(fb);
    sup_rt_run(n->rt);
    fake_clear(&n->fk); /* the closes of the stopped gateway's clients */
    gw_pubsub_view v0, v1;
    assert_true(gw_pubsub_stats(n->rt, &v0));
    assert_int_equal(v0.core.subscriptions, 2);
    uint8_t msg[sizeof(gw_ps_pub) + 8];
    gw_ps_pub pp = ps_pub_rec(3, 5);
    memcpy(msg, &pp, sizeof pp);
    memcpy(msg + sizeof pp, "t.xlost!", 8);
    assert_int_equal(sup_send(n->rt, SUP_NOPID, ps, GW_PS_PUBLISH, msg, sizeof msg), 0);
    sup_rt_run(n->rt);
    assert_true(gw_pubsub_stats(n->rt, &v1));
    assert_int_equal(v1.core.published, v0.core.published + 1);
    assert_int_equal(v1.send_failed, v0.send_failed + 2); /* both subscribers' deliveries */
    assert_int_equal(n->fk.n, 0);                         /* and nothing reached a client */
    sup_pid back = SUP_NOPID;
    sup_reason why;
    assert_int_equal(sup_restart_child_sync(n->rt, n->sys, "macula_gateway", &back, &why), 0);
    sup_rt_run(n->rt);
}

/* GW_CONN_DATA_BATCH (the QUIC server's stream data of one loop turn): records of several
 * connections are handled in order; a batch whose records do not tile it is dropped whole. */
static void test_conn_data_batch(void **state)
{
    node *n = *state;
    handshake(n, 1, 0x01);
    handshake(n, 2, 0x02);
    subscribe_tx(n, 2);
    fake_clear(&n->fk);
    uint8_t batch[2048];
    size_t blen = 0;
    const char *pls[3] = {"c1", "c2", "c3"};
    const uint64_t from[3] = {1, 1, 2};
    for (int k = 0; k < 3; k++) {
        wire_msg pk = {.type = WIRE_PUBLISH};
        pk.publish.topic = B("t.x");
        pk.publish.payload = B(pls[k]);
        uint8_t *fb = NULL;
        size_t fl = 0;
        assert_int_equal(wire_encode_alloc(&pk, &fb, &fl), 0);
        gw_conn_data_rec r = {.conn = from[k], .len = (uint32_t)fl};
        memcpy(batch + blen, &r, sizeof r);
        memcpy(batch + blen + sizeof r, fb, fl);
        blen += sizeof r + fl;
        free(fb);
    }
    int got[4];
    /* one byte short: nothing of it */
    assert_int_equal(sup_send(n->rt, SUP_NOPID, gw(n), GW_CONN_DATA_BATCH, batch, blen - 1), 0);
    sup_rt_run(n->rt);
    for (int k = 0; k < 3; k++) {
        count_pubs(n, pls[k], got);
        assert_int_equal(got[2], 0);
    }
    assert_int_equal(sup_send(n->rt, SUP_NOPID, gw(n), GW_CONN_DATA_BATCH, batch, blen), 0);
    sup_rt_run(n->rt);
    for (int k = 0; k < 3; k++) {
        count_pubs(n, pls[k], got);
        assert_int_equal(got[2], 1);
    }
    fake_clear(&n->fk);
}

/* The gateway crashes: rest_for_one restarts it and workers_sup (with the clients table);
 * health, diagnostics and quic_server stay. Its connections were closed on the way out, the
 * new gateway re-attached to the transport and serves, and nothing leaked. */
static void test_gateway_restart(void **state)
{
    node *n = *state;
    handshake(n, 1, 0x01);
    handshake(n, 2, 0x02);
    assert_int_equal(tracked(n), 2);
    size_t actors = sup_rt_actor_count(n->rt);
    size_t mem_before = sup_rt_memory(n->rt);
    sup_pid g0 = gw(n), c0 = sup_whereis(n->rt, "macula_gateway_clients");
    sup_pid h0 = sup_whereis(n->rt, "macula_gateway_health");
    sup_pid d0 = sup_whereis(n->rt, "macula_gateway_diagnostics");
    sup_pid q0 = sup_whereis(n->rt, "macula_gateway_quic_server");
    sup_child_info ci[8];
    assert_int_equal(sup_which_children_sync(n->rt, n->sys, ci, 8), 5);
    sup_pid w0 = ci[0].pid;

    for (int round = 0; round < 3; round++) {
        sup_reason k = sup_reason_error("boom");
        sup_exit(n->rt, SUP_NOPID, gw(n), &k);
        sup_rt_run(n->rt);
        /* both connections got DISCONNECT shutdown and a close */
        size_t closes = 0, disconnects = 0;
        for (size_t i = 0; i < n->fk.n; i++) {
            if (n->fk.v[i].is_close) {
                assert_int_equal(n->fk.v[i].code, GWC_CLOSE_SHUTDOWN);
                closes++;
            } else if (n->fk.v[i].msg.type == WIRE_DISCONNECT) {
                assert_true(is(n->fk.v[i].msg.disconnect.reason, "shutdown"));
                disconnects++;
            }
        }
        assert_int_equal(closes, 2);
        assert_int_equal(disconnects, 2);
        fake_clear(&n->fk);
        assert_false(sup_pid_eq(gw(n), g0));
        assert_false(sup_pid_is_null(gw(n)));
        assert_false(sup_pid_eq(sup_whereis(n->rt, "macula_gateway_clients"), c0));
        assert_true(sup_pid_eq(sup_whereis(n->rt, "macula_gateway_health"), h0));
        assert_true(sup_pid_eq(sup_whereis(n->rt, "macula_gateway_diagnostics"), d0));
        assert_true(sup_pid_eq(sup_whereis(n->rt, "macula_gateway_quic_server"), q0));
        assert_int_equal(sup_which_children_sync(n->rt, n->sys, ci, 8), 5);
        assert_false(sup_pid_eq(ci[0].pid, w0)); /* workers_sup went down with it */
        assert_int_equal(tracked(n), 0);
        /* the new gateway serves (same connection ids: it starts from nothing) */
        handshake(n, 1, 0x01);
        handshake(n, 2, 0x02);
        assert_int_equal(tracked(n), 2);
        g0 = gw(n);
        c0 = sup_whereis(n->rt, "macula_gateway_clients");
        w0 = ci[0].pid;
    }
    assert_int_equal(sup_rt_actor_count(n->rt), actors);
    assert_int_equal(sup_rt_memory(n->rt), mem_before);
    sup_sv_summary s;
    assert_int_equal(sup_sv_inspect(n->rt, n->sys, &s, NULL, NULL), 0);
    assert_int_equal(s.total_restarts, 3);
}

/* The clients table crashes: only it restarts (it is workers_sup's first child), and it
 * rebuilds itself from the gateway; the connections are untouched. */
static void test_clients_table_restart_resyncs(void **state)
{
    node *n = *state;
    handshake(n, 1, 0x01);
    handshake(n, 2, 0x02);
    handshake(n, 3, 0x03);
    sup_pid g0 = gw(n), c0 = sup_whereis(n->rt, "macula_gateway_clients");
    sup_reason k = sup_reason_make(SUP_R_KILL, NULL);
    sup_exit(n->rt, SUP_NOPID, c0, &k);
    sup_rt_run(n->rt);
    assert_false(sup_pid_eq(sup_whereis(n->rt, "macula_gateway_clients"), c0));
    assert_true(sup_pid_eq(gw(n), g0));
    assert_int_equal(n->fk.n, 0);
    assert_int_equal(tracked(n), 3);
    uint8_t id[32];
    memset(id, 0x02, 32);
    gw_client_entry_info e;
    size_t len = 0;
    assert_int_equal(sup_call_sync(n->rt, sup_whereis(n->rt, "macula_gateway_clients"),
                                   GW_CLIENTS_GET, id, 32, 1000, &e, sizeof e, &len, NULL),
                     0);
    assert_true(e.found);
    assert_int_equal(e.conn, 2);
    assert_string_equal(e.endpoint, "https://c.example:4433");
}

/* The keepalive runs on the runtime's timer: with a 20 ms interval a silent client is
 * dropped (after 3 intervals) while the loop runs. No duration is asserted. */
static void test_keepalive_timer(void **state)
{
    node *n = *state;
    handshake(n, 1, 0x01);
    for (int i = 0; i < 100000 && n->fk.n < 2; i++) {
        uv_run(&n->loop, UV_RUN_ONCE);
    }
    assert_int_equal(n->fk.n, 2);
    assert_true(is(n->fk.v[0].msg.disconnect.reason, "ping_timeout"));
    assert_true(n->fk.v[1].is_close);
    assert_int_equal(n->fk.v[1].code, GWC_CLOSE_TIMEOUT);
    assert_int_equal(tracked(n), 0);
    assert_int_equal(stats(n).ping_timeouts, 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_tree_has_seed_children, up, down),
        cmocka_unit_test_setup_teardown(test_handshake_tracks_client_and_diagnostics, up, down),
        cmocka_unit_test_setup_teardown(test_realm_mismatch, up, down),
        cmocka_unit_test_setup_teardown(test_garbage_isolated, up, down),
        cmocka_unit_test_setup_teardown(test_conn_data_batch, up, down),
        cmocka_unit_test_setup_teardown(test_publish_without_worker, up, down),
        cmocka_unit_test_setup_teardown(test_fanout_without_gateway, up, down),
        cmocka_unit_test_setup_teardown(test_pubsub_publish_fanout, up, down),
        cmocka_unit_test_setup_teardown(test_gateway_restart, up, down),
        cmocka_unit_test_setup_teardown(test_clients_table_restart_resyncs, up, down),
        cmocka_unit_test_setup_teardown(test_keepalive_timer, up_fast_ping, down),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
