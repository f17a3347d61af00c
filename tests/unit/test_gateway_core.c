/* tests/unit/test_gateway_core.c — the sans-I/O gateway core (src/mesh/gateway/gateway_core.h):
 * handshake, refusals, keepalive on an injected clock, decode errors per kind, reassembly of
 * split and coalesced input, diagnostics CALLs, the RPC hook, counters, 10,000 clients. */
#define _GNU_SOURCE /* memmem */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <jansson.h>
#include <msgpuck.h>

#include "mesh/gateway/gateway_core.h"
#include "mesh/wire.h"

#define REALM "test.realm"

/* ---- helpers ----------------------------------------------------------------------------- */

static wire_bytes B(const char *s)
{
    return (wire_bytes){(const uint8_t *)s, strlen(s)};
}

static bool is(wire_bytes b, const char *s)
{
    return b.p != NULL && b.len == strlen(s) && memcmp(b.p, s, b.len) == 0;
}

/* An owned copy of one action. */
typedef struct act {
    gwc_action_kind kind;
    uint64_t conn;
    uint8_t *data;
    size_t len;
    uint64_t code;
    char reason[64];
    uint8_t node_id[32];
    uint32_t caps_count;
    uint8_t *caps;
    size_t caps_len;
    wire_msg msg; /* SEND: decoded (views into data) */
} act;

typedef struct acts {
    act *v;
    size_t n, cap;
} acts;

static void acts_clear(acts *a)
{
    for (size_t i = 0; i < a->n; i++) {
        free(a->v[i].data);
        free(a->v[i].caps);
    }
    a->n = 0;
}

static void acts_free(acts *a)
{
    acts_clear(a);
    free(a->v);
    a->v = NULL;
    a->cap = 0;
}

/* Pops every queued action into a (cleared first). */
static acts *drain(gwc *g, acts *a)
{
    acts_clear(a);
    if (a->v == NULL) {
        a->cap = 64;
        a->v = calloc(a->cap, sizeof *a->v);
        assert_non_null(a->v);
    }
    gwc_action x;
    while (gwc_next_action(g, &x)) {
        if (a->n == a->cap) {
            a->cap = a->cap ? a->cap * 2 : 64;
            a->v = realloc(a->v, a->cap * sizeof *a->v);
            assert_non_null(a->v);
        }
        act *y = &a->v[a->n++];
        memset(y, 0, sizeof *y);
        y->kind = x.kind;
        y->conn = x.conn;
        y->code = x.code;
        snprintf(y->reason, sizeof y->reason, "%s", x.reason ? x.reason : "");
        memcpy(y->node_id, x.node_id, 32);
        y->len = x.len;
        y->data = malloc(x.len + 1);
        if (x.len) {
            memcpy(y->data, x.data, x.len);
        }
        y->caps_count = x.caps_count;
        y->caps_len = x.caps_len;
        y->caps = malloc(x.caps_len + 1);
        if (x.caps_len) {
            memcpy(y->caps, x.caps, x.caps_len);
        }
        if (x.kind == GWC_ACT_SEND) {
            size_t used = 0;
            assert_int_equal(wire_decode(y->data, y->len, NULL, &y->msg, &used), 0);
            assert_int_equal(used, y->len);
        }
    }
    return a;
}

static uint8_t *enc(const wire_msg *m, size_t *len)
{
    uint8_t *p = NULL;
    assert_int_equal(wire_encode_alloc(m, &p, len), 0);
    return p;
}

static void feed_msg(gwc *g, uint64_t conn, const wire_msg *m, uint64_t now)
{
    size_t len;
    uint8_t *p = enc(m, &len);
    assert_int_equal(gwc_conn_data(g, conn, p, len, now), GWC_OK);
    free(p);
}

static void node_id_of(uint64_t n, uint8_t id[32])
{
    memset(id, 0xab, 32);
    memcpy(id, &n, sizeof n);
}

static wire_msg connect_msg(const uint8_t id[32], const char *realm)
{
    static const wire_bytes caps[] = {{(const uint8_t *)"pubsub", 6}, {(const uint8_t *)"rpc", 3}};
    wire_msg m = {.type = WIRE_CONNECT};
    m.connect.version = B("1.0");
    m.connect.node_id = (wire_bytes){id, 32};
    m.connect.realm_id = B(realm);
    m.connect.capabilities = (wire_bytes_list){2, caps, NULL};
    m.connect.endpoint = B("https://client.example:4433");
    return m;
}

static wire_msg ping_msg(int64_t ts)
{
    wire_msg m = {.type = WIRE_PING};
    m.ping.timestamp = ts;
    return m;
}

static wire_msg call_msg(const char *id, const char *proc, const char *args, const char *realm)
{
    wire_msg m = {.type = WIRE_CALL};
    m.call.call_id = B(id);
    m.call.procedure = B(proc);
    m.call.args = B(args);
    m.call.realm = B(realm);
    return m;
}

static gwc *mk(uint32_t max_clients)
{
    gwc_config cfg;
    gwc_config_default(&cfg);
    cfg.realm = REALM;
    memset(cfg.node_id, 0x11, 32);
    cfg.version = "9.9.9";
    cfg.wall_offset_ms = 1000000;
    if (max_clients) {
        cfg.max_clients = max_clients;
    }
    gwc *g = NULL;
    assert_int_equal(gwc_new(&cfg, 0, &g), GWC_OK);
    return g;
}

/* Opens conn and completes CONNECT with node id n; checks PONG + CLIENT_UP. */
static void join(gwc *g, uint64_t conn, uint64_t n, uint64_t now, acts *a)
{
    uint8_t id[32];
    node_id_of(n, id);
    assert_int_equal(gwc_conn_open(g, conn, NULL, 0, "10.0.0.1:5000", now), GWC_OK);
    wire_msg m = connect_msg(id, REALM);
    feed_msg(g, conn, &m, now);
    drain(g, a);
    assert_int_equal(a->n, 2);
    assert_int_equal(a->v[0].kind, GWC_ACT_SEND);
    assert_int_equal(a->v[0].msg.type, WIRE_PONG);
    assert_int_equal(a->v[1].kind, GWC_ACT_CLIENT_UP);
    assert_memory_equal(a->v[1].node_id, id, 32);
}

/* Asserts a holds exactly DISCONNECT(reason) then CLOSE(code) for conn, plus CLIENT_DOWN when
 * down is set. */
static void expect_drop(const acts *a, uint64_t conn, const char *reason, uint64_t code, bool down)
{
    assert_int_equal(a->n, down ? 3 : 2);
    assert_int_equal(a->v[0].kind, GWC_ACT_SEND);
    assert_int_equal(a->v[0].conn, conn);
    assert_int_equal(a->v[0].msg.type, WIRE_DISCONNECT);
    assert_true(is(a->v[0].msg.disconnect.reason, reason));
    assert_true(a->v[0].msg.disconnect.message.len > 0);
    assert_int_equal(a->v[1].kind, GWC_ACT_CLOSE);
    assert_int_equal(a->v[1].conn, conn);
    assert_int_equal(a->v[1].code, code);
    assert_string_equal(a->v[1].reason, reason);
    if (down) {
        assert_int_equal(a->v[2].kind, GWC_ACT_CLIENT_DOWN);
        assert_int_equal(a->v[2].conn, conn);
    }
}

/* A raw frame: header(version, type, len) + payload. */
static size_t raw_frame(uint8_t *out, uint8_t version, uint8_t type, const uint8_t *pl,
                        uint32_t len)
{
    out[0] = version;
    out[1] = type;
    out[2] = out[3] = 0;
    out[4] = (uint8_t)(len >> 24);
    out[5] = (uint8_t)(len >> 16);
    out[6] = (uint8_t)(len >> 8);
    out[7] = (uint8_t)len;
    if (len && pl) {
        memcpy(out + 8, pl, len);
    }
    return 8 + (size_t)len;
}

/* ---- tests ------------------------------------------------------------------------------- */

static void test_config_validation(void **state)
{
    (void)state;
    gwc_config cfg;
    gwc_config_default(&cfg);
    gwc *g = NULL;
    assert_int_equal(gwc_new(&cfg, 0, &g), GWC_EINVAL); /* no realm */
    cfg.realm = REALM;
    cfg.max_clients = 0;
    assert_int_equal(gwc_new(&cfg, 0, &g), GWC_EINVAL);
    gwc_config_default(&cfg);
    cfg.realm = REALM;
    cfg.ping_interval_ms = 0;
    assert_int_equal(gwc_new(&cfg, 0, &g), GWC_EINVAL);
    gwc_config_default(&cfg);
    cfg.realm = REALM;
    cfg.limits.max_depth = 0;
    assert_int_equal(gwc_new(&cfg, 0, &g), GWC_EINVAL);
    assert_null(g);
    gwc_config_default(&cfg);
    assert_int_equal(cfg.max_clients, 10000);
    assert_int_equal(cfg.ping_interval_ms, 30000);
    assert_int_equal(cfg.ping_misses, 3);
    assert_string_equal(gwc_strerror(GWC_EEXIST), "already_open");
}

static void test_handshake_tracks_client(void **state)
{
    (void)state;
    gwc *g = mk(0);
    acts a = {0};
    uint8_t id[32];
    node_id_of(7, id);
    assert_int_equal(gwc_conn_open(g, 1, NULL, 0, "192.0.2.7:6000", 100), GWC_OK);
    assert_int_equal(gwc_conn_open(g, 1, NULL, 0, NULL, 100), GWC_EEXIST);
    assert_int_equal(gwc_stats_get(g)->pending, 1);
    wire_msg m = connect_msg(id, REALM);
    feed_msg(g, 1, &m, 250);
    drain(g, &a);
    assert_int_equal(a.n, 2);
    assert_int_equal(a.v[0].msg.type, WIRE_PONG);
    assert_int_equal(a.v[0].msg.pong.server_time, 250 + 1000000);
    assert_int_equal(a.v[1].kind, GWC_ACT_CLIENT_UP);
    assert_int_equal(a.v[1].len, strlen("https://client.example:4433"));
    assert_memory_equal(a.v[1].data, "https://client.example:4433", a.v[1].len);
    assert_int_equal(a.v[1].caps_count, 2);
    size_t pos = 0;
    wire_bytes cap;
    assert_true(gwc_caps_next(a.v[1].caps, a.v[1].caps_len, &pos, &cap));
    assert_true(is(cap, "pubsub"));
    assert_true(gwc_caps_next(a.v[1].caps, a.v[1].caps_len, &pos, &cap));
    assert_true(is(cap, "rpc"));
    assert_false(gwc_caps_next(a.v[1].caps, a.v[1].caps_len, &pos, &cap));

    gwc_client_info ci;
    assert_int_equal(gwc_conn_info(g, 1, &ci), GWC_OK);
    assert_true(ci.connected);
    assert_memory_equal(ci.node_id, id, 32);
    assert_string_equal(ci.remote, "192.0.2.7:6000");
    assert_true(is(ci.endpoint, "https://client.example:4433"));
    assert_int_equal(ci.caps_count, 2);
    assert_int_equal(ci.opened_ms, 100);
    assert_int_equal(ci.connected_ms, 250);
    assert_int_equal(ci.last_seen_ms, 250);
    uint64_t conn = 0;
    assert_int_equal(gwc_client_conn(g, id, &conn), GWC_OK);
    assert_int_equal(conn, 1);

    const gwc_stats *s = gwc_stats_get(g);
    assert_int_equal(s->connects_accepted, 1);
    assert_int_equal(s->clients, 1);
    assert_int_equal(s->pending, 0);
    assert_int_equal(s->frames_in[WIRE_CONNECT], 1);
    assert_int_equal(s->frames_out[WIRE_PONG], 1);
    /* a second CONNECT on the same connection is a protocol error */
    feed_msg(g, 1, &m, 300);
    expect_drop(drain(g, &a), 1, "already_connected", GWC_CLOSE_PROTOCOL, true);
    assert_int_equal(s->connects_refused[GWC_REFUSE_ALREADY_CONNECTED], 1);
    assert_int_equal(s->clients, 0);
    assert_int_equal(gwc_client_conn(g, id, &conn), GWC_ENOTFOUND);
    acts_free(&a);
    gwc_free(g);
}

static void test_realm_mismatch(void **state)
{
    (void)state;
    gwc *g = mk(0);
    acts a = {0};
    uint8_t id[32];
    node_id_of(1, id);
    join(g, 9, 9, 0, &a); /* a bystander */
    assert_int_equal(gwc_conn_open(g, 1, NULL, 0, NULL, 0), GWC_OK);
    wire_msg m = connect_msg(id, "other.realm");
    feed_msg(g, 1, &m, 5);
    drain(g, &a);
    expect_drop(&a, 1, "realm_mismatch", GWC_CLOSE_REFUSED, false);
    assert_non_null(memmem(a.v[0].msg.disconnect.message.p, a.v[0].msg.disconnect.message.len,
                           REALM, strlen(REALM)));
    const gwc_stats *s = gwc_stats_get(g);
    assert_int_equal(s->connects_refused[GWC_REFUSE_REALM_MISMATCH], 1);
    assert_int_equal(s->frames_out[WIRE_DISCONNECT], 1);
    assert_int_equal(s->pending, 0);
    assert_int_equal(s->clients, 1);
    /* the core forgot the connection: later bytes and the transport's close are ignored */
    wire_msg p = ping_msg(1);
    feed_msg(g, 1, &p, 6);
    assert_int_equal(drain(g, &a)->n, 0);
    assert_int_equal(gwc_conn_closed(g, 1, 7), GWC_OK);
    assert_int_equal(drain(g, &a)->n, 0);
    acts_free(&a);
    gwc_free(g);
}

static void test_connect_refusals(void **state)
{
    (void)state;
    gwc *g = mk(0);
    acts a = {0};
    const gwc_stats *s = gwc_stats_get(g);
    uint8_t id[32], other[32];
    node_id_of(1, id);
    node_id_of(2, other);
    /* bad protocol version */
    assert_int_equal(gwc_conn_open(g, 1, NULL, 0, NULL, 0), GWC_OK);
    wire_msg m = connect_msg(id, REALM);
    m.connect.version = B("2.0");
    feed_msg(g, 1, &m, 0);
    expect_drop(drain(g, &a), 1, "unsupported_version", GWC_CLOSE_REFUSED, false);
    assert_int_equal(s->connects_refused[GWC_REFUSE_UNSUPPORTED_VERSION], 1);
    /* "1" alone is fine, and so is "1.3" */
    m.connect.version = B("1");
    assert_int_equal(gwc_conn_open(g, 2, NULL, 0, NULL, 0), GWC_OK);
    feed_msg(g, 2, &m, 0);
    assert_int_equal(drain(g, &a)->v[0].msg.type, WIRE_PONG);
    /* node id of the wrong length */
    assert_int_equal(gwc_conn_open(g, 3, NULL, 0, NULL, 0), GWC_OK);
    m = connect_msg(id, REALM);
    m.connect.node_id.len = 31;
    feed_msg(g, 3, &m, 0);
    expect_drop(drain(g, &a), 3, "malformed", GWC_CLOSE_PROTOCOL, false);
    assert_int_equal(s->decode_errors[-WIRE_EMALFORMED], 1);
    /* the TLS-proven id differs from the claimed one */
    assert_int_equal(gwc_conn_open(g, 4, other, 32, NULL, 0), GWC_OK);
    m = connect_msg(id, REALM);
    feed_msg(g, 4, &m, 0);
    expect_drop(drain(g, &a), 4, "node_id_mismatch", GWC_CLOSE_REFUSED, false);
    assert_int_equal(s->connects_refused[GWC_REFUSE_NODE_ID_MISMATCH], 1);
    /* ... and equal is accepted */
    assert_int_equal(gwc_conn_open(g, 5, other, 32, NULL, 0), GWC_OK);
    m = connect_msg(other, REALM);
    feed_msg(g, 5, &m, 0);
    assert_int_equal(drain(g, &a)->v[0].msg.type, WIRE_PONG);
    assert_int_equal(gwc_conn_open(g, 6, other, 7, NULL, 0), GWC_EINVAL);
    assert_int_equal(s->clients, 2);
    acts_free(&a);
    gwc_free(g);
}

static void test_same_node_replaces_older_connection(void **state)
{
    (void)state;
    gwc *g = mk(1); /* even at the limit: the replacement takes the old one's place */
    acts a = {0};
    join(g, 1, 42, 0, &a);
    uint8_t id[32];
    node_id_of(42, id);
    assert_int_equal(gwc_conn_open(g, 2, NULL, 0, NULL, 10), GWC_OK);
    wire_msg m = connect_msg(id, REALM);
    feed_msg(g, 2, &m, 10);
    drain(g, &a);
    assert_int_equal(a.n, 5);
    assert_int_equal(a.v[0].msg.type, WIRE_DISCONNECT);
    assert_int_equal(a.v[0].conn, 1);
    assert_true(is(a.v[0].msg.disconnect.reason, "replaced"));
    assert_int_equal(a.v[1].kind, GWC_ACT_CLOSE);
    assert_int_equal(a.v[1].code, GWC_CLOSE_REPLACED);
    assert_int_equal(a.v[2].kind, GWC_ACT_CLIENT_DOWN);
    assert_int_equal(a.v[2].conn, 1);
    assert_int_equal(a.v[3].msg.type, WIRE_PONG);
    assert_int_equal(a.v[3].conn, 2);
    assert_int_equal(a.v[4].kind, GWC_ACT_CLIENT_UP);
    uint64_t conn = 0;
    assert_int_equal(gwc_client_conn(g, id, &conn), GWC_OK);
    assert_int_equal(conn, 2);
    assert_int_equal(gwc_stats_get(g)->replaced, 1);
    assert_int_equal(gwc_stats_get(g)->clients, 1);
    acts_free(&a);
    gwc_free(g);
}

static void test_not_connected(void **state)
{
    (void)state;
    gwc *g = mk(0);
    acts a = {0};
    assert_int_equal(gwc_conn_open(g, 1, NULL, 0, NULL, 0), GWC_OK);
    /* PING is allowed before CONNECT */
    wire_msg p = ping_msg(77);
    feed_msg(g, 1, &p, 3);
    drain(g, &a);
    assert_int_equal(a.n, 1);
    assert_int_equal(a.v[0].msg.type, WIRE_PONG);
    assert_int_equal(a.v[0].msg.pong.timestamp, 77);
    /* a CALL is not */
    wire_msg c = call_msg("0123456789abcdef", "com.macula.diagnostics.hello", "{}", REALM);
    feed_msg(g, 1, &c, 4);
    expect_drop(drain(g, &a), 1, "not_connected", GWC_CLOSE_PROTOCOL, false);
    /* neither is a PUBLISH, on another connection */
    assert_int_equal(gwc_conn_open(g, 2, NULL, 0, NULL, 0), GWC_OK);
    wire_msg pub = {.type = WIRE_PUBLISH};
    pub.publish.topic = B("a.b");
    pub.publish.payload = B("x");
    pub.publish.message_id = B("0123456789abcdef");
    feed_msg(g, 2, &pub, 4);
    expect_drop(drain(g, &a), 2, "not_connected", GWC_CLOSE_PROTOCOL, false);
    assert_int_equal(gwc_stats_get(g)->not_connected, 2);
    /* DISCONNECT before CONNECT just closes */
    assert_int_equal(gwc_conn_open(g, 3, NULL, 0, NULL, 0), GWC_OK);
    wire_msg d = {.type = WIRE_DISCONNECT};
    d.disconnect.reason = B("bye");
    d.disconnect.message = B("");
    feed_msg(g, 3, &d, 5);
    drain(g, &a);
    assert_int_equal(a.n, 1);
    assert_int_equal(a.v[0].kind, GWC_ACT_CLOSE);
    assert_int_equal(a.v[0].code, GWC_CLOSE_NORMAL);
    assert_int_equal(gwc_stats_get(g)->pending, 0);
    acts_free(&a);
    gwc_free(g);
}

static void test_ping_pong_and_disconnect(void **state)
{
    (void)state;
    gwc *g = mk(0);
    acts a = {0};
    join(g, 1, 1, 0, &a);
    wire_msg p = ping_msg(1234567);
    feed_msg(g, 1, &p, 500);
    drain(g, &a);
    assert_int_equal(a.n, 2);
    assert_int_equal(a.v[0].msg.type, WIRE_PONG);
    assert_int_equal(a.v[0].msg.pong.timestamp, 1234567);
    assert_int_equal(a.v[0].msg.pong.server_time, 500 + 1000000);
    assert_int_equal(a.v[1].kind, GWC_ACT_CLIENT_SEEN);
    gwc_client_info ci;
    assert_int_equal(gwc_conn_info(g, 1, &ci), GWC_OK);
    assert_int_equal(ci.last_seen_ms, 500);
    /* the client leaves */
    wire_msg d = {.type = WIRE_DISCONNECT};
    d.disconnect.reason = B("normal");
    d.disconnect.message = B("bye");
    feed_msg(g, 1, &d, 600);
    drain(g, &a);
    assert_int_equal(a.n, 2);
    assert_int_equal(a.v[0].kind, GWC_ACT_CLOSE);
    assert_int_equal(a.v[0].code, GWC_CLOSE_NORMAL);
    assert_int_equal(a.v[1].kind, GWC_ACT_CLIENT_DOWN);
    const gwc_stats *s = gwc_stats_get(g);
    assert_int_equal(s->disconnects_in, 1);
    assert_int_equal(s->clients, 0);
    assert_int_equal(gwc_conn_info(g, 1, &ci), GWC_ENOTFOUND);
    assert_int_equal(gwc_next_deadline(g), UINT64_MAX);
    acts_free(&a);
    gwc_free(g);
}

static void test_transport_close(void **state)
{
    (void)state;
    gwc *g = mk(0);
    acts a = {0};
    join(g, 1, 1, 0, &a);
    assert_int_equal(gwc_conn_open(g, 2, NULL, 0, NULL, 0), GWC_OK);
    assert_int_equal(gwc_conn_closed(g, 1, 10), GWC_OK);
    drain(g, &a);
    assert_int_equal(a.n, 1);
    assert_int_equal(a.v[0].kind, GWC_ACT_CLIENT_DOWN);
    assert_int_equal(gwc_conn_closed(g, 2, 10), GWC_OK);
    assert_int_equal(drain(g, &a)->n, 0);
    assert_int_equal(gwc_stats_get(g)->clients, 0);
    assert_int_equal(gwc_stats_get(g)->pending, 0);
    assert_int_equal(gwc_conn_closed(g, 99, 10), GWC_OK); /* unknown: ignored */
    acts_free(&a);
    gwc_free(g);
}

/* The keepalive, driven by the injected clock: 3 x 30 s of silence drops a connection;
 * a client that pings stays. */
static void test_keepalive_drop(void **state)
{
    (void)state;
    gwc *g = mk(0);
    acts a = {0};
    assert_int_equal(gwc_next_deadline(g), UINT64_MAX);
    join(g, 1, 1, 1000, &a);                                            /* silent */
    join(g, 2, 2, 1000, &a);                                            /* pings every 30 s */
    assert_int_equal(gwc_conn_open(g, 3, NULL, 0, NULL, 2000), GWC_OK); /* never CONNECTs */
    assert_int_equal(gwc_next_deadline(g), 1000 + 90000);
    for (uint64_t t = 31000; t <= 91000; t += 30000) {
        wire_msg p = ping_msg((int64_t)t);
        feed_msg(g, 2, &p, t);
        assert_int_equal(gwc_tick(g, t - 1), GWC_OK);
        drain(g, &a);
        for (size_t i = 0; i < a.n; i++) {
            assert_int_not_equal(a.v[i].kind, GWC_ACT_CLOSE);
        }
    }
    assert_int_equal(gwc_next_deadline(g), 91000);
    assert_int_equal(gwc_tick(g, 90999), GWC_OK);
    assert_int_equal(drain(g, &a)->n, 0);
    assert_int_equal(gwc_tick(g, 91000), GWC_OK);
    expect_drop(drain(g, &a), 1, "ping_timeout", GWC_CLOSE_TIMEOUT, true);
    assert_int_equal(gwc_next_deadline(g), 92000);
    assert_int_equal(gwc_tick(g, 92000), GWC_OK);
    expect_drop(drain(g, &a), 3, "ping_timeout", GWC_CLOSE_TIMEOUT, false);
    /* the pinging client is still there, until it too falls silent */
    assert_int_equal(gwc_stats_get(g)->clients, 1);
    assert_int_equal(gwc_next_deadline(g), 91000 + 90000);
    assert_int_equal(gwc_tick(g, 500000), GWC_OK);
    expect_drop(drain(g, &a), 2, "ping_timeout", GWC_CLOSE_TIMEOUT, true);
    assert_int_equal(gwc_stats_get(g)->ping_timeouts, 3);
    assert_int_equal(gwc_next_deadline(g), UINT64_MAX);
    acts_free(&a);
    gwc_free(g);
}

static void test_keepalive_interval_configurable(void **state)
{
    (void)state;
    gwc_config cfg;
    gwc_config_default(&cfg);
    cfg.realm = REALM;
    cfg.ping_interval_ms = 100;
    cfg.ping_misses = 2;
    gwc *g = NULL;
    assert_int_equal(gwc_new(&cfg, 0, &g), GWC_OK);
    acts a = {0};
    join(g, 1, 1, 0, &a);
    assert_int_equal(gwc_next_deadline(g), 200);
    gwc_tick(g, 200);
    expect_drop(drain(g, &a), 1, "ping_timeout", GWC_CLOSE_TIMEOUT, true);
    acts_free(&a);
    gwc_free(g);
}

/* Every decode error closes only the offending connection, with the error as reason, while a
 * second client, mid-frame, is unaffected. */
static void test_decode_errors(void **state)
{
    (void)state;
    gwc *g = mk(0);
    acts a = {0};
    join(g, 100, 100, 0, &a);
    /* the bystander has half a PING buffered */
    wire_msg p = ping_msg(99);
    size_t plen;
    uint8_t *pb = enc(&p, &plen);
    assert_int_equal(gwc_conn_data(g, 100, pb, 5, 1), GWC_OK);
    assert_int_equal(drain(g, &a)->n, 0);

    static uint8_t buf[64 + (1 << 12)];
    char pl[256];
    char *w;
    uint64_t conn = 1;
    const gwc_stats *s = gwc_stats_get(g);
    /* Runs one hostile input on a fresh connection, pre- or post-CONNECT. */
#define HOSTILE(bytes, blen, reason_, err_, connected_)                                            \
    do {                                                                                           \
        if (connected_) {                                                                          \
            join(g, conn, 1000 + conn, 2, &a);                                                     \
        } else {                                                                                   \
            assert_int_equal(gwc_conn_open(g, conn, NULL, 0, NULL, 2), GWC_OK);                    \
        }                                                                                          \
        uint64_t before = s->decode_errors[-(err_)];                                               \
        assert_int_equal(gwc_conn_data(g, conn, (bytes), (blen), 3), GWC_OK);                      \
        expect_drop(drain(g, &a), conn, (reason_), GWC_CLOSE_PROTOCOL, (connected_));              \
        assert_int_equal(s->decode_errors[-(err_)], before + 1);                                   \
        conn++;                                                                                    \
    } while (0)

    size_t len = raw_frame(buf, 2, WIRE_PING, NULL, 0);
    HOSTILE(buf, len, "unsupported_version", WIRE_EUNSUPPORTED_VERSION, false);
    len = raw_frame(buf, 1, 0x30, NULL, 0);
    HOSTILE(buf, len, "unknown_type", WIRE_EUNKNOWN_TYPE, true);
    /* the header alone announces more than 1 MiB: refused before any payload arrives */
    (void)raw_frame(buf, 1, WIRE_PUBLISH, NULL, 0);
    buf[4] = 0x00;
    buf[5] = 0x10;
    buf[6] = 0x00;
    buf[7] = 0x00;
    HOSTILE(buf, 8, "frame_too_large", WIRE_EFRAME_TOO_LARGE, true);
    /* a payload that is not a map */
    w = mp_encode_array(pl, 1);
    w = mp_encode_uint(w, 1);
    len = raw_frame(buf, 1, WIRE_PING, (const uint8_t *)pl, (uint32_t)(w - pl));
    HOSTILE(buf, len, "malformed", WIRE_EMALFORMED, false);
    /* a PING whose timestamp is a string */
    w = mp_encode_map(pl, 1);
    w = mp_encode_str(w, "timestamp", 9);
    w = mp_encode_str(w, "x", 1);
    len = raw_frame(buf, 1, WIRE_PING, (const uint8_t *)pl, (uint32_t)(w - pl));
    HOSTILE(buf, len, "malformed", WIRE_EMALFORMED, true);
    /* nesting beyond the limit (8): a PING with 9 nested arrays under an unknown key */
    w = mp_encode_map(pl, 2);
    w = mp_encode_str(w, "timestamp", 9);
    w = mp_encode_uint(w, 1);
    w = mp_encode_str(w, "deep", 4);
    for (int i = 0; i < 9; i++) {
        w = mp_encode_array(w, 1);
    }
    w = mp_encode_uint(w, 0);
    len = raw_frame(buf, 1, WIRE_PING, (const uint8_t *)pl, (uint32_t)(w - pl));
    HOSTILE(buf, len, "limit_exceeded", WIRE_ELIMIT, true);
    /* a CONNECT whose capabilities list has more elements than allowed (1024) */
    w = mp_encode_map((char *)buf + 8, 4);
    w = mp_encode_str(w, "version", 7);
    w = mp_encode_str(w, "1.0", 3);
    w = mp_encode_str(w, "node_id", 7);
    w = mp_encode_bin(w, "0123456789abcdef0123456789abcdef", 32);
    w = mp_encode_str(w, "realm_id", 8);
    w = mp_encode_str(w, REALM, strlen(REALM));
    w = mp_encode_str(w, "capabilities", 12);
    w = mp_encode_array(w, 1025);
    for (int i = 0; i < 1025; i++) {
        w = mp_encode_str(w, "c", 1);
    }
    len = (size_t)(w - ((char *)buf + 8));
    raw_frame(buf, 1, WIRE_CONNECT, NULL, (uint32_t)len);
    HOSTILE(buf, len + 8, "limit_exceeded", WIRE_ELIMIT, false);
#undef HOSTILE

    /* the bystander completes its PING and is answered */
    assert_int_equal(gwc_conn_data(g, 100, pb + 5, plen - 5, 4), GWC_OK);
    drain(g, &a);
    assert_int_equal(a.n, 2);
    assert_int_equal(a.v[0].conn, 100);
    assert_int_equal(a.v[0].msg.type, WIRE_PONG);
    assert_int_equal(a.v[0].msg.pong.timestamp, 99);
    assert_int_equal(s->clients, 1);
    assert_int_equal(s->pending, 0);
    free(pb);
    acts_free(&a);
    gwc_free(g);
}

/* Frames cut at every byte, and many frames in one chunk, give the same answers. */
static void test_split_and_coalesced(void **state)
{
    (void)state;
    uint8_t id[32];
    node_id_of(5, id);
    wire_msg msgs[4];
    msgs[0] = connect_msg(id, REALM);
    msgs[1] = ping_msg(1);
    msgs[2] = call_msg("call-0000000001", "com.macula.diagnostics.echo", "[1,2,3]", REALM);
    msgs[3] = ping_msg(2);
    uint8_t stream[4096];
    size_t slen = 0;
    for (int i = 0; i < 4; i++) {
        size_t l;
        uint8_t *p = enc(&msgs[i], &l);
        memcpy(stream + slen, p, l);
        slen += l;
        free(p);
    }
    /* chunk sizes: the whole stream, 1 byte at a time, 7 bytes, 13 bytes */
    size_t chunks[] = {4096, 1, 7, 13};
    for (size_t k = 0; k < 4; k++) {
        gwc *g = mk(0);
        acts a = {0};
        acts all = {0};
        assert_int_equal(gwc_conn_open(g, 1, NULL, 0, NULL, 0), GWC_OK);
        size_t sends = 0;
        int types[8] = {0};
        for (size_t off = 0; off < slen; off += chunks[k]) {
            size_t l = slen - off < chunks[k] ? slen - off : chunks[k];
            assert_int_equal(gwc_conn_data(g, 1, stream + off, l, 10), GWC_OK);
            drain(g, &a);
            for (size_t i = 0; i < a.n; i++) {
                if (a.v[i].kind == GWC_ACT_SEND) {
                    assert_true(sends < 8);
                    types[sends++] = a.v[i].msg.type;
                    if (a.v[i].msg.type == WIRE_REPLY) {
                        assert_false(a.v[i].msg.reply.is_error);
                        assert_true(is(a.v[i].msg.reply.result, "[1,2,3]"));
                        assert_true(is(a.v[i].msg.reply.call_id, "call-0000000001"));
                    }
                }
            }
        }
        assert_int_equal(sends, 4);
        assert_int_equal(types[0], WIRE_PONG);
        assert_int_equal(types[1], WIRE_PONG);
        assert_int_equal(types[2], WIRE_REPLY);
        assert_int_equal(types[3], WIRE_PONG);
        const gwc_stats *s = gwc_stats_get(g);
        assert_int_equal(s->frames_in[WIRE_CONNECT], 1);
        assert_int_equal(s->frames_in[WIRE_PING], 2);
        assert_int_equal(s->frames_in[WIRE_CALL], 1);
        assert_int_equal(s->frames_out[WIRE_PONG], 3);
        assert_int_equal(s->frames_out[WIRE_REPLY], 1);
        acts_free(&a);
        acts_free(&all);
        gwc_free(g);
    }
}

/* Bytes after a frame that closed the connection are not processed. */
static void test_bytes_after_close_ignored(void **state)
{
    (void)state;
    gwc *g = mk(0);
    acts a = {0};
    uint8_t id[32];
    node_id_of(5, id);
    wire_msg m = connect_msg(id, "wrong");
    wire_msg p = ping_msg(1);
    size_t l1, l2;
    uint8_t *b1 = enc(&m, &l1), *b2 = enc(&p, &l2);
    uint8_t both[1024];
    memcpy(both, b1, l1);
    memcpy(both + l1, b2, l2);
    assert_int_equal(gwc_conn_open(g, 1, NULL, 0, NULL, 0), GWC_OK);
    assert_int_equal(gwc_conn_data(g, 1, both, l1 + l2, 0), GWC_OK);
    expect_drop(drain(g, &a), 1, "realm_mismatch", GWC_CLOSE_REFUSED, false);
    assert_int_equal(gwc_stats_get(g)->frames_in[WIRE_PING], 0);
    free(b1);
    free(b2);
    acts_free(&a);
    gwc_free(g);
}

static json_t *reply_json(const act *x)
{
    assert_int_equal(x->msg.type, WIRE_REPLY);
    assert_false(x->msg.reply.is_error);
    json_error_t e;
    json_t *j = json_loadb((const char *)x->msg.reply.result.p, x->msg.reply.result.len,
                           JSON_DECODE_ANY, &e);
    assert_non_null(j);
    return j;
}

static void test_diagnostics(void **state)
{
    (void)state;
    gwc *g = mk(0);
    acts a = {0};
    join(g, 1, 1, 0, &a);
    join(g, 2, 2, 0, &a);
    /* hello */
    wire_msg c = call_msg("c1", "com.macula.diagnostics.hello", "{}", REALM);
    feed_msg(g, 1, &c, 2500);
    drain(g, &a);
    assert_int_equal(a.n, 1);
    assert_true(is(a.v[0].msg.reply.call_id, "c1"));
    json_t *j = reply_json(&a.v[0]);
    const char *hex = json_string_value(json_object_get(j, "node_id"));
    assert_non_null(hex);
    assert_string_equal(hex, "1111111111111111111111111111111111111111111111111111111111111111");
    assert_non_null(strstr(json_string_value(json_object_get(j, "message")), "hello"));
    json_decref(j);
    /* info */
    c = call_msg("c2", "com.macula.diagnostics.info", "", REALM);
    feed_msg(g, 1, &c, 2500);
    j = reply_json(&drain(g, &a)->v[0]);
    assert_string_equal(json_string_value(json_object_get(j, "realm")), REALM);
    assert_string_equal(json_string_value(json_object_get(j, "version")), "9.9.9");
    assert_int_equal(json_integer_value(json_object_get(j, "clients")), 2);
    assert_true(json_real_value(json_object_get(j, "uptime")) == 2.5);
    assert_non_null(json_object_get(j, "node_id"));
    json_decref(j);
    /* echo returns its args verbatim */
    const char *args = "{\"a\":[1,2,{\"b\":null}],\"s\":\"\\u00e9\"}";
    c = call_msg("c3", "com.macula.diagnostics.echo", args, REALM);
    feed_msg(g, 1, &c, 2600);
    drain(g, &a);
    assert_true(is(a.v[0].msg.reply.result, args));
    /* echo of something that is not JSON */
    c = call_msg("c4", "com.macula.diagnostics.echo", "{nope", REALM);
    feed_msg(g, 1, &c, 2600);
    drain(g, &a);
    assert_true(a.v[0].msg.reply.is_error);
    assert_true(is(a.v[0].msg.reply.error.code, "invalid_args"));
    /* unknown procedures, inside and outside the diagnostics prefix */
    const char *unknown[] = {"com.macula.diagnostics.nope", "com.example.add"};
    for (int i = 0; i < 2; i++) {
        c = call_msg("c5", unknown[i], "[]", REALM);
        feed_msg(g, 2, &c, 2600);
        drain(g, &a);
        assert_int_equal(a.n, 1);
        assert_int_equal(a.v[0].conn, 2);
        assert_true(a.v[0].msg.reply.is_error);
        assert_true(is(a.v[0].msg.reply.error.code, "no_handler"));
        assert_non_null(memmem(a.v[0].msg.reply.error.message.p, a.v[0].msg.reply.error.message.len,
                               unknown[i], strlen(unknown[i])));
    }
    /* a call for another realm */
    c = call_msg("c6", "com.macula.diagnostics.hello", "{}", "other");
    feed_msg(g, 2, &c, 2600);
    drain(g, &a);
    assert_true(is(a.v[0].msg.reply.error.code, "realm_mismatch"));
    const gwc_stats *s = gwc_stats_get(g);
    assert_int_equal(s->calls, 7);
    assert_int_equal(s->calls_no_handler, 2);
    assert_int_equal(s->frames_out[WIRE_REPLY], 7);
    acts_free(&a);
    gwc_free(g);
}

typedef struct hook_state {
    int seen;
    uint64_t conn;
    char call_id[32];
    size_t call_id_len;
} hook_state;

static int take_math(void *user, gwc *g, uint64_t conn, const wire_call *call, const wire_frame *f,
                     uint64_t now)
{
    (void)g;
    (void)now;
    hook_state *h = user;
    h->seen++;
    /* the frame as it came: a CALL whose payload decodes to the same call */
    assert_non_null(f);
    assert_int_equal(f->type, WIRE_CALL);
    wire_msg again;
    assert_int_equal(wire_decode_payload(f->type, f->payload, f->payload_len, NULL, &again), 0);
    assert_int_equal(again.call.procedure.len, call->procedure.len);
    assert_memory_equal(again.call.procedure.p, call->procedure.p, call->procedure.len);
    if (!is(call->procedure, "com.example.add")) {
        return GWC_HOOK_PASS;
    }
    h->conn = conn;
    h->call_id_len = call->call_id.len;
    memcpy(h->call_id, call->call_id.p, call->call_id.len);
    return GWC_HOOK_TAKEN;
}

static void test_rpc_hook(void **state)
{
    (void)state;
    gwc *g = mk(0);
    acts a = {0};
    hook_state h = {0};
    gwc_set_call_hook(g, take_math, &h);
    join(g, 1, 1, 0, &a);
    wire_msg c = call_msg("k1", "com.example.add", "[1,2]", REALM);
    feed_msg(g, 1, &c, 1);
    assert_int_equal(drain(g, &a)->n, 0); /* taken: answered later */
    assert_int_equal(h.seen, 1);
    wire_bytes id = {(const uint8_t *)h.call_id, h.call_id_len};
    assert_int_equal(gwc_reply(g, h.conn, id, (const uint8_t *)"3", 1), GWC_OK);
    drain(g, &a);
    assert_int_equal(a.n, 1);
    assert_true(is(a.v[0].msg.reply.call_id, "k1"));
    assert_true(is(a.v[0].msg.reply.result, "3"));
    assert_int_equal(gwc_reply_error(g, 1, id, "handler_error", "boom"), GWC_OK);
    drain(g, &a);
    assert_true(is(a.v[0].msg.reply.error.code, "handler_error"));
    /* passed: the core answers the diagnostics itself */
    c = call_msg("k2", "com.macula.diagnostics.hello", "{}", REALM);
    feed_msg(g, 1, &c, 1);
    drain(g, &a);
    assert_int_equal(h.seen, 2);
    assert_false(a.v[0].msg.reply.is_error);
    /* a late answer for a connection that is gone is dropped */
    assert_int_equal(gwc_conn_closed(g, 1, 2), GWC_OK);
    assert_int_equal(gwc_reply(g, 1, id, (const uint8_t *)"3", 1), GWC_ENOTFOUND);
    assert_int_equal(gwc_reply_error(g, 1, id, "x", "y"), GWC_ENOTFOUND);
    drain(g, &a);
    assert_int_equal(a.n, 1);
    assert_int_equal(a.v[0].kind, GWC_ACT_CLIENT_DOWN);
    acts_free(&a);
    gwc_free(g);
}

static void test_unhandled_frames_counted(void **state)
{
    (void)state;
    gwc *g = mk(0);
    acts a = {0};
    join(g, 1, 1, 0, &a);
    wire_msg sub = {.type = WIRE_SUBSCRIBE};
    static const wire_bytes topics[] = {{(const uint8_t *)"a.*", 3}};
    sub.subscribe.topics = (wire_bytes_list){1, topics, NULL};
    feed_msg(g, 1, &sub, 1);
    assert_int_equal(drain(g, &a)->n, 0);
    assert_int_equal(gwc_stats_get(g)->frames_unhandled, 1);
    assert_int_equal(gwc_stats_get(g)->frames_in[WIRE_SUBSCRIBE], 1);
    assert_int_equal(gwc_stats_get(g)->clients, 1);
    acts_free(&a);
    gwc_free(g);
}

static void test_max_pending(void **state)
{
    (void)state;
    gwc_config cfg;
    gwc_config_default(&cfg);
    cfg.realm = REALM;
    cfg.max_pending = 2;
    gwc *g = NULL;
    assert_int_equal(gwc_new(&cfg, 0, &g), GWC_OK);
    acts a = {0};
    assert_int_equal(gwc_conn_open(g, 1, NULL, 0, NULL, 0), GWC_OK);
    assert_int_equal(gwc_conn_open(g, 2, NULL, 0, NULL, 0), GWC_OK);
    assert_int_equal(gwc_conn_open(g, 3, NULL, 0, NULL, 0), GWC_OK);
    expect_drop(drain(g, &a), 3, "max_pending_reached", GWC_CLOSE_REFUSED, false);
    assert_int_equal(gwc_stats_get(g)->connects_refused[GWC_REFUSE_MAX_PENDING], 1);
    /* once one of them is a client, a new connection may wait again */
    uint8_t id[32];
    node_id_of(1, id);
    wire_msg m = connect_msg(id, REALM);
    feed_msg(g, 1, &m, 0);
    drain(g, &a);
    assert_int_equal(gwc_conn_open(g, 3, NULL, 0, NULL, 0), GWC_OK);
    assert_int_equal(drain(g, &a)->n, 0);
    assert_int_equal(gwc_stats_get(g)->pending, 2);
    acts_free(&a);
    gwc_free(g);
}

/* 10,000 clients are served; the 10,001st is refused with max_clients_reached; the others
 * are unaffected; after one leaves, a newcomer gets in. */
static void test_ten_thousand_clients(void **state)
{
    (void)state;
    gwc *g = mk(0);
    acts a = {0};
    for (uint64_t i = 1; i <= 10000; i++) {
        join(g, i, i, i, &a);
    }
    const gwc_stats *s = gwc_stats_get(g);
    assert_int_equal(s->clients, 10000);
    assert_int_equal(s->connects_accepted, 10000);
    size_t mem = gwc_memory(g);
    uint8_t id[32];
    node_id_of(10001, id);
    wire_msg m = connect_msg(id, REALM);
    assert_int_equal(gwc_conn_open(g, 10001, NULL, 0, NULL, 20000), GWC_OK);
    feed_msg(g, 10001, &m, 20000);
    expect_drop(drain(g, &a), 10001, "max_clients_reached", GWC_CLOSE_REFUSED, false);
    assert_int_equal(s->connects_refused[GWC_REFUSE_MAX_CLIENTS], 1);
    /* a flood of refused connects leaves memory where it was */
    for (uint64_t i = 0; i < 1000; i++) {
        assert_int_equal(gwc_conn_open(g, 20000 + i, NULL, 0, NULL, 20000), GWC_OK);
        feed_msg(g, 20000 + i, &m, 20000);
        drain(g, &a);
        assert_int_equal(a.v[0].msg.type, WIRE_DISCONNECT);
    }
    assert_true(gwc_memory(g) <=
                mem + (size_t)64 * 1024); /* only the action queue may have grown */
    assert_int_equal(s->clients, 10000);
    /* every client is still reachable by id and answered */
    for (uint64_t i = 1; i <= 10000; i += 997) {
        uint8_t cid[32];
        uint64_t conn = 0;
        node_id_of(i, cid);
        assert_int_equal(gwc_client_conn(g, cid, &conn), GWC_OK);
        assert_int_equal(conn, i);
        wire_msg p = ping_msg((int64_t)i);
        feed_msg(g, i, &p, 20001);
        drain(g, &a);
        assert_int_equal(a.v[0].msg.type, WIRE_PONG);
        assert_int_equal(a.v[0].msg.pong.timestamp, (int64_t)i);
    }
    assert_int_equal(gwc_conn_closed(g, 5000, 20002), GWC_OK);
    drain(g, &a);
    assert_int_equal(gwc_conn_open(g, 30000, NULL, 0, NULL, 20003), GWC_OK);
    feed_msg(g, 30000, &m, 20003);
    drain(g, &a);
    assert_int_equal(a.v[0].msg.type, WIRE_PONG);
    assert_int_equal(s->clients, 10000);
    /* a shutdown closes all 10,000; once drained, the burst's queue is given back */
    assert_int_equal(gwc_shutdown(g, 20004), GWC_OK);
    drain(g, &a);
    assert_int_equal(a.n, 3 * 10000);
    assert_int_equal(s->clients, 0);
    assert_int_equal(gwc_tick(g, 20005), GWC_OK);
    assert_true(gwc_memory(g) < mem / 2);
    acts_free(&a);
    gwc_free(g);
}

static void test_shutdown_closes_everyone(void **state)
{
    (void)state;
    gwc *g = mk(0);
    acts a = {0};
    join(g, 1, 1, 0, &a);
    join(g, 2, 2, 0, &a);
    assert_int_equal(gwc_conn_open(g, 3, NULL, 0, NULL, 0), GWC_OK);
    assert_int_equal(gwc_shutdown(g, 5), GWC_OK);
    drain(g, &a);
    size_t disconnects = 0, closes = 0, downs = 0;
    for (size_t i = 0; i < a.n; i++) {
        if (a.v[i].kind == GWC_ACT_SEND) {
            assert_true(is(a.v[i].msg.disconnect.reason, "shutdown"));
            disconnects++;
        } else if (a.v[i].kind == GWC_ACT_CLOSE) {
            assert_int_equal(a.v[i].code, GWC_CLOSE_SHUTDOWN);
            closes++;
        } else if (a.v[i].kind == GWC_ACT_CLIENT_DOWN) {
            downs++;
        }
    }
    assert_int_equal(disconnects, 3);
    assert_int_equal(closes, 3);
    assert_int_equal(downs, 2);
    assert_int_equal(gwc_stats_get(g)->clients, 0);
    assert_int_equal(gwc_stats_get(g)->pending, 0);
    acts_free(&a);
    gwc_free(g);
}

/* One frame to several connections: stored once, queued to each connected client (unknown
 * ids skipped, same bytes for all), counted per delivery; a frame that is not one frame is
 * refused and queues nothing. */
static void test_send_frame_many(void **state)
{
    (void)state;
    gwc *g = mk(0);
    acts a = {0};
    join(g, 1, 1, 0, &a);
    join(g, 2, 2, 0, &a);
    join(g, 3, 3, 0, &a);
    wire_msg pub = {.type = WIRE_PUBLISH};
    pub.publish.topic = B("t.x");
    pub.publish.payload = B("many");
    uint8_t *frame = NULL;
    size_t flen = 0;
    assert_int_equal(wire_encode_alloc(&pub, &frame, &flen), 0);
    uint64_t ids[4] = {1, 99, 3, 2};
    uint8_t conns[sizeof ids + 1];
    memcpy(conns + 1, ids, sizeof ids); /* unaligned on purpose */
    uint64_t out0 = gwc_stats_get(g)->frames_out[WIRE_PUBLISH];
    assert_int_equal(gwc_send_frame_many(g, conns + 1, 4, frame, flen), 3);
    drain(g, &a);
    assert_int_equal(a.n, 3);
    uint64_t want[3] = {1, 3, 2};
    for (size_t i = 0; i < 3; i++) {
        assert_int_equal(a.v[i].kind, GWC_ACT_SEND);
        assert_int_equal(a.v[i].conn, want[i]);
        assert_int_equal(a.v[i].len, flen);
        assert_memory_equal(a.v[i].data, frame, flen);
    }
    assert_int_equal(gwc_stats_get(g)->frames_out[WIRE_PUBLISH], out0 + 3);
    /* not one frame: refused, nothing queued */
    assert_int_equal(gwc_send_frame_many(g, conns + 1, 4, frame, flen - 1), GWC_EINVAL);
    assert_int_equal(gwc_send_frame_many(g, conns + 1, 4, NULL, 0), GWC_EINVAL);
    /* nobody connected among the ids: 0 */
    uint64_t none = 77;
    assert_int_equal(gwc_send_frame_many(g, (const uint8_t *)&none, 1, frame, flen), 0);
    assert_int_equal(drain(g, &a)->n, 0);
    free(frame);
    acts_free(&a);
    gwc_free(g);
}

/* Actions not yet popped survive later events (the queue only restarts once drained). */
static void test_queue_survives_until_drained(void **state)
{
    (void)state;
    gwc *g = mk(0);
    acts a = {0};
    assert_int_equal(gwc_conn_open(g, 1, NULL, 0, NULL, 0), GWC_OK);
    for (int i = 0; i < 100; i++) {
        wire_msg p = ping_msg(i);
        feed_msg(g, 1, &p, 1);
    }
    drain(g, &a);
    assert_int_equal(a.n, 100);
    for (int i = 0; i < 100; i++) {
        assert_int_equal(a.v[i].msg.pong.timestamp, i);
    }
    acts_free(&a);
    gwc_free(g);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_config_validation),
        cmocka_unit_test(test_handshake_tracks_client),
        cmocka_unit_test(test_realm_mismatch),
        cmocka_unit_test(test_connect_refusals),
        cmocka_unit_test(test_same_node_replaces_older_connection),
        cmocka_unit_test(test_not_connected),
        cmocka_unit_test(test_ping_pong_and_disconnect),
        cmocka_unit_test(test_transport_close),
        cmocka_unit_test(test_keepalive_drop),
        cmocka_unit_test(test_keepalive_interval_configurable),
        cmocka_unit_test(test_decode_errors),
        cmocka_unit_test(test_split_and_coalesced),
        cmocka_unit_test(test_bytes_after_close_ignored),
        cmocka_unit_test(test_diagnostics),
        cmocka_unit_test(test_rpc_hook),
        cmocka_unit_test(test_unhandled_frames_counted),
        cmocka_unit_test(test_max_pending),
        cmocka_unit_test(test_ten_thousand_clients),
        cmocka_unit_test(test_shutdown_closes_everyone),
        cmocka_unit_test(test_send_frame_many),
        cmocka_unit_test(test_queue_survives_until_drained),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
