/* tests/unit/test_wire.c — contracts of the frame codec (src/mesh/wire.h, MESH.md "Wire
 * format"): round trips of every type, v0.8 str/bin compatibility, reassembly across any split,
 * and every refusal. Hand-written frames are built with msgpuck, independently of the encoder. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <msgpuck.h>

#include "mesh/wire.h"

/* ---- helpers ---------------------------------------------------------------------------- */

static wire_bytes B(const char *s)
{
    wire_bytes b = {(const uint8_t *)s, strlen(s)};
    return b;
}

static bool bytes_eq(wire_bytes a, wire_bytes b)
{
    if ((a.p == NULL) != (b.p == NULL) || a.len != b.len) {
        return false;
    }
    return a.len == 0 || (a.p != NULL && b.p != NULL && memcmp(a.p, b.p, a.len) == 0);
}

static bool bytes_is(wire_bytes a, const char *s)
{
    return a.p != NULL && a.len == strlen(s) && memcmp(a.p, s, a.len) == 0;
}

static bool blist_eq(const wire_bytes_list *a, const wire_bytes_list *b)
{
    if (a->count != b->count) {
        return false;
    }
    wire_list_iter ia = wire_bytes_list_iter(a), ib = wire_bytes_list_iter(b);
    wire_bytes x, y;
    uint32_t n = 0;
    while (wire_bytes_list_next(&ia, &x)) {
        if (!wire_bytes_list_next(&ib, &y) || !bytes_eq(x, y)) {
            return false;
        }
        n++;
    }
    return n == a->count && !wire_bytes_list_next(&ib, &y);
}

static bool node_eq(const wire_node *a, const wire_node *b)
{
    return bytes_eq(a->node_id, b->node_id) && bytes_eq(a->address, b->address) &&
           a->has_last_seen == b->has_last_seen &&
           (!a->has_last_seen || a->last_seen == b->last_seen);
}

static bool nlist_eq(const wire_node_list *a, const wire_node_list *b)
{
    if (a->count != b->count) {
        return false;
    }
    wire_list_iter ia = wire_node_list_iter(a), ib = wire_node_list_iter(b);
    wire_node x, y;
    uint32_t n = 0;
    while (wire_node_list_next(&ia, &x)) {
        if (!wire_node_list_next(&ib, &y) || !node_eq(&x, &y)) {
            return false;
        }
        n++;
    }
    return n == a->count && !wire_node_list_next(&ib, &y);
}

static bool publish_eq(const wire_publish *a, const wire_publish *b)
{
    return bytes_eq(a->topic, b->topic) && bytes_eq(a->payload, b->payload) && a->qos == b->qos &&
           a->retain == b->retain && bytes_eq(a->message_id, b->message_id);
}

static bool call_eq(const wire_call *a, const wire_call *b)
{
    return bytes_eq(a->call_id, b->call_id) && bytes_eq(a->procedure, b->procedure) &&
           bytes_eq(a->args, b->args) && bytes_eq(a->realm, b->realm) &&
           a->has_timeout == b->has_timeout && (!a->has_timeout || a->timeout_ms == b->timeout_ms);
}

static bool reply_eq(const wire_reply *a, const wire_reply *b)
{
    if (!bytes_eq(a->call_id, b->call_id) || a->is_error != b->is_error) {
        return false;
    }
    if (a->is_error) {
        return bytes_eq(a->error.code, b->error.code) &&
               bytes_eq(a->error.message, b->error.message);
    }
    return bytes_eq(a->result, b->result);
}

static bool dht_hdr_eq(const wire_dht_hdr *a, const wire_dht_hdr *b)
{
    return a->has_request_id == b->has_request_id &&
           (!a->has_request_id || a->request_id == b->request_id) &&
           bytes_eq(a->sender_id, b->sender_id) && bytes_eq(a->sender_address, b->sender_address);
}

/* Field-by-field equality, written independently of the codec's tables. */
static bool msg_eq(const wire_msg *a, const wire_msg *b)
{
    if (a->type != b->type) {
        return false;
    }
    switch (a->type) {
    case WIRE_CONNECT:
        return bytes_eq(a->connect.version, b->connect.version) &&
               bytes_eq(a->connect.node_id, b->connect.node_id) &&
               bytes_eq(a->connect.realm_id, b->connect.realm_id) &&
               blist_eq(&a->connect.capabilities, &b->connect.capabilities) &&
               bytes_eq(a->connect.endpoint, b->connect.endpoint);
    case WIRE_DISCONNECT:
        return bytes_eq(a->disconnect.reason, b->disconnect.reason) &&
               bytes_eq(a->disconnect.message, b->disconnect.message);
    case WIRE_PING: return a->ping.timestamp == b->ping.timestamp;
    case WIRE_PONG:
        return a->pong.timestamp == b->pong.timestamp && a->pong.server_time == b->pong.server_time;
    case WIRE_PUBLISH: return publish_eq(&a->publish, &b->publish);
    case WIRE_SUBSCRIBE:
        return blist_eq(&a->subscribe.topics, &b->subscribe.topics) &&
               a->subscribe.qos == b->subscribe.qos;
    case WIRE_UNSUBSCRIBE: return blist_eq(&a->unsubscribe.topics, &b->unsubscribe.topics);
    case WIRE_PUBSUB_ROUTE:
        return bytes_eq(a->pubsub_route.destination_node_id, b->pubsub_route.destination_node_id) &&
               bytes_eq(a->pubsub_route.source_node_id, b->pubsub_route.source_node_id) &&
               a->pubsub_route.hop_count == b->pubsub_route.hop_count &&
               a->pubsub_route.max_hops == b->pubsub_route.max_hops &&
               bytes_eq(a->pubsub_route.topic, b->pubsub_route.topic) &&
               publish_eq(&a->pubsub_route.payload, &b->pubsub_route.payload);
    case WIRE_PUBACK: return bytes_eq(a->puback.message_id, b->puback.message_id);
    case WIRE_CALL:
    case WIRE_CAST: return call_eq(&a->call, &b->call);
    case WIRE_REPLY: return reply_eq(&a->reply, &b->reply);
    case WIRE_RPC_ROUTE:
        return bytes_eq(a->rpc_route.destination_node_id, b->rpc_route.destination_node_id) &&
               bytes_eq(a->rpc_route.source_node_id, b->rpc_route.source_node_id) &&
               a->rpc_route.hop_count == b->rpc_route.hop_count &&
               a->rpc_route.max_hops == b->rpc_route.max_hops &&
               a->rpc_route.payload_type == b->rpc_route.payload_type &&
               (a->rpc_route.payload_type == WIRE_RPC_PAYLOAD_CALL
                    ? call_eq(&a->rpc_route.call, &b->rpc_route.call)
                    : reply_eq(&a->rpc_route.reply, &b->rpc_route.reply));
    case WIRE_FIND_NODE:
        return bytes_eq(a->find_node.target, b->find_node.target) &&
               dht_hdr_eq(&a->find_node.hdr, &b->find_node.hdr);
    case WIRE_FIND_NODE_REPLY:
        return nlist_eq(&a->find_node_reply.nodes, &b->find_node_reply.nodes) &&
               dht_hdr_eq(&a->find_node_reply.hdr, &b->find_node_reply.hdr);
    case WIRE_STORE:
        return bytes_eq(a->store.key, b->store.key) && bytes_eq(a->store.value, b->store.value) &&
               dht_hdr_eq(&a->store.hdr, &b->store.hdr) && a->store.has_ttl == b->store.has_ttl &&
               (!a->store.has_ttl || a->store.ttl_ms == b->store.ttl_ms) &&
               bytes_eq(a->store.publisher, b->store.publisher);
    case WIRE_FIND_VALUE:
        return bytes_eq(a->find_value.key, b->find_value.key) &&
               dht_hdr_eq(&a->find_value.hdr, &b->find_value.hdr);
    case WIRE_FIND_VALUE_REPLY:
        return a->find_value_reply.result == b->find_value_reply.result &&
               dht_hdr_eq(&a->find_value_reply.hdr, &b->find_value_reply.hdr) &&
               (a->find_value_reply.result == WIRE_FV_VALUE
                    ? bytes_eq(a->find_value_reply.value, b->find_value_reply.value)
                    : nlist_eq(&a->find_value_reply.nodes, &b->find_value_reply.nodes));
    case WIRE_STORE_ACK:
        return bytes_eq(a->store_ack.key, b->store_ack.key) &&
               a->store_ack.stored == b->store_ack.stored &&
               dht_hdr_eq(&a->store_ack.hdr, &b->store_ack.hdr);
    default: return false;
    }
}

/* ---- sample messages: every type, and the variants of the ones with choices -------------- */

static const char NODE_A[] = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"; /* 32 bytes */
static const char NODE_B[] = "BBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBB";
static const char MSG_ID[] = "0123456789abcdef"; /* 16 bytes */
static const uint8_t BIN_PAYLOAD[] = {0x00, 0xff, 0xc1, 0x80, 0x7f};
/* A msgpack value for STORE / FIND_VALUE_REPLY: [{"node_id": "x", "endpoint": "h:1"}, 7] */
static const uint8_t RAW_VALUE[] = {0x92, 0x82, 0xa7, 'n',  'o', 'd', 'e', '_', 'i',
                                    'd',  0xa1, 'x',  0xa8, 'e', 'n', 'd', 'p', 'o',
                                    'i',  'n',  't',  0xa3, 'h', ':', '1', 0x07};

static wire_bytes CAPS[3];
static wire_bytes TOPICS[2];
static wire_node NODES[2];

#define N_SAMPLES 24

static void sample(int i, wire_msg *m)
{
    CAPS[0] = B("pubsub");
    CAPS[1] = B("rpc");
    CAPS[2] = B("dht");
    TOPICS[0] = B("sensor.*.room1");
    TOPICS[1] = B("sensor.**");
    NODES[0] = (wire_node){B(NODE_A), B("10.0.0.1:4433"), true, 1700000000123};
    NODES[1] = (wire_node){B(NODE_B), B("[::1]:4433"), false, 0};
    wire_publish pub = {
        B("sensor.t1.room1"), {BIN_PAYLOAD, sizeof BIN_PAYLOAD}, 1, true, B(MSG_ID)};
    wire_call call = {
        B(MSG_ID), B("com.macula.diagnostics.echo"), B("{\"x\":[1,2]}"), B("realm.one"), true,
        5000};
    memset(m, 0, sizeof *m);
    switch (i) {
    case 0:
        m->type = WIRE_CONNECT;
        m->connect = (wire_connect){
            B("1.0"), B(NODE_A), B("realm.one"), {3, CAPS, NULL}, B("https://10.0.0.1:4433")};
        break;
    case 1: /* no endpoint, no capabilities */
        m->type = WIRE_CONNECT;
        m->connect = (wire_connect){B("1.0"), B(NODE_B), B("r"), {0, NULL, NULL}, {NULL, 0}};
        break;
    case 2:
        m->type = WIRE_DISCONNECT;
        m->disconnect = (wire_disconnect){B("realm_mismatch"), B("expected realm.one")};
        break;
    case 3:
        m->type = WIRE_PING;
        m->ping.timestamp = 1700000000000;
        break;
    case 4: /* Erlang monotonic time can be negative */
        m->type = WIRE_PING;
        m->ping.timestamp = -576460752303;
        break;
    case 5:
        m->type = WIRE_PONG;
        m->pong = (wire_pong){42, INT64_MAX};
        break;
    case 6:
        m->type = WIRE_PUBLISH;
        m->publish = pub;
        break;
    case 7: /* QoS 0, empty payload */
        m->type = WIRE_PUBLISH;
        m->publish = pub;
        m->publish.qos = 0;
        m->publish.retain = false;
        m->publish.payload = B("");
        break;
    case 8:
        m->type = WIRE_SUBSCRIBE;
        m->subscribe = (wire_subscribe){{2, TOPICS, NULL}, 1};
        break;
    case 9:
        m->type = WIRE_UNSUBSCRIBE;
        m->unsubscribe = (wire_unsubscribe){{2, TOPICS, NULL}};
        break;
    case 10:
        m->type = WIRE_PUBSUB_ROUTE;
        m->pubsub_route = (wire_pubsub_route){B(NODE_A), B(NODE_B), 3, 10, pub.topic, pub};
        break;
    case 11:
        m->type = WIRE_PUBACK;
        m->puback.message_id = B(MSG_ID);
        break;
    case 12:
        m->type = WIRE_CALL;
        m->call = call;
        break;
    case 13: /* no timeout */
        m->type = WIRE_CALL;
        m->call = call;
        m->call.has_timeout = false;
        m->call.timeout_ms = 0;
        break;
    case 14:
        m->type = WIRE_CAST;
        m->cast = call;
        break;
    case 15: /* v0.8 casts carry no call_id */
        m->type = WIRE_CAST;
        m->cast = call;
        m->cast.call_id = (wire_bytes){NULL, 0};
        m->cast.has_timeout = false;
        m->cast.timeout_ms = 0;
        break;
    case 16:
        m->type = WIRE_REPLY;
        m->reply = (wire_reply){B(MSG_ID), false, B("{\"ok\":true}"), {{NULL, 0}, {NULL, 0}}};
        break;
    case 17:
        m->type = WIRE_REPLY;
        m->reply = (wire_reply){B(MSG_ID), true, {NULL, 0}, {B("no_handler"), B("nobody")}};
        break;
    case 18:
        m->type = WIRE_RPC_ROUTE;
        m->rpc_route = (wire_rpc_route){.destination_node_id = B(NODE_B),
                                        .source_node_id = B(NODE_A),
                                        .hop_count = 0,
                                        .max_hops = 10,
                                        .payload_type = WIRE_RPC_PAYLOAD_CALL,
                                        .call = call};
        break;
    case 19:
        m->type = WIRE_RPC_ROUTE;
        m->rpc_route = (wire_rpc_route){
            .destination_node_id = B(NODE_A),
            .source_node_id = B(NODE_B),
            .hop_count = 9,
            .max_hops = 10,
            .payload_type = WIRE_RPC_PAYLOAD_REPLY,
            .reply = {B(MSG_ID), true, {NULL, 0}, {B("max_hops_exceeded"), B("10 hops")}}};
        break;
    case 20:
        m->type = WIRE_FIND_NODE;
        m->find_node.target = B(NODE_B);
        break;
    case 21:
        m->type = WIRE_FIND_NODE_REPLY;
        m->find_node_reply.nodes = (wire_node_list){2, NODES, NULL};
        break;
    case 22:
        m->type = WIRE_STORE;
        m->store = (wire_store){.key = B(NODE_A), .value = {RAW_VALUE, sizeof RAW_VALUE}};
        break;
    case 23:
        m->type = WIRE_FIND_VALUE;
        m->find_value.key = B(NODE_A);
        break;
    default: fail_msg("no sample %d", i);
    }
}

/* Two more that do not fit the switch's numbering above. */
static void sample_fv(int nodes, wire_msg *m)
{
    sample(21, m); /* fills NODES */
    memset(m, 0, sizeof *m);
    m->type = WIRE_FIND_VALUE_REPLY;
    if (nodes) {
        m->find_value_reply.result = WIRE_FV_NODES;
        m->find_value_reply.nodes = (wire_node_list){2, NODES, NULL};
    } else {
        m->find_value_reply.result = WIRE_FV_VALUE;
        m->find_value_reply.value = (wire_bytes){RAW_VALUE, sizeof RAW_VALUE};
    }
}

/* The DHT messages with this project's optional keys (request_id, sender_id, sender_address,
 * ttl, publisher) and STORE_ACK. */
#define N_DHT 7
static void sample_dht(int i, wire_msg *m)
{
    wire_dht_hdr hdr = {true, UINT64_MAX - 5, B(NODE_A), B("10.0.0.1:4433")};
    if (i == 2 || i == 3) {
        sample_fv(i - 2, m);
        m->find_value_reply.hdr = hdr;
        return;
    }
    sample(21, m); /* fills NODES */
    memset(m, 0, sizeof *m);
    switch (i) {
    case 0:
        m->type = WIRE_FIND_NODE;
        m->find_node = (wire_find_node){B(NODE_B), hdr};
        break;
    case 1:
        m->type = WIRE_FIND_NODE_REPLY;
        m->find_node_reply = (wire_find_node_reply){{2, NODES, NULL}, hdr};
        break;
    case 4:
        m->type = WIRE_STORE;
        m->store =
            (wire_store){B(NODE_B), {RAW_VALUE, sizeof RAW_VALUE}, hdr, true, 300000, B(NODE_A)};
        break;
    case 5:
        m->type = WIRE_FIND_VALUE;
        m->find_value = (wire_find_value){B(NODE_B), {true, 0, {NULL, 0}, {NULL, 0}}};
        break;
    case 6:
        m->type = WIRE_STORE_ACK;
        m->store_ack = (wire_store_ack){B(NODE_B), true, hdr};
        break;
    default: fail_msg("no dht sample %d", i);
    }
}

#define N_ALL (N_SAMPLES + 2 + N_DHT)
static void sample_any(int i, wire_msg *m)
{
    if (i < N_SAMPLES) {
        sample(i, m);
    } else if (i < N_SAMPLES + 2) {
        sample_fv(i - N_SAMPLES, m);
    } else {
        sample_dht(i - N_SAMPLES - 2, m);
    }
}

static uint8_t *encode_or_die(const wire_msg *m, size_t *len)
{
    uint8_t *buf;
    assert_int_equal(wire_encode_alloc(m, &buf, len), 0);
    return buf;
}

/* ---- hand-written frames ---------------------------------------------------------------- */

static uint8_t g_frame[1 << 21];

/* Writes header + payload into g_frame; returns the frame length. */
static size_t frame_of(uint8_t type, const char *payload, size_t plen)
{
    g_frame[0] = 1;
    g_frame[1] = type;
    g_frame[2] = 0;
    g_frame[3] = 0;
    g_frame[4] = (uint8_t)(plen >> 24);
    g_frame[5] = (uint8_t)(plen >> 16);
    g_frame[6] = (uint8_t)(plen >> 8);
    g_frame[7] = (uint8_t)plen;
    memcpy(g_frame + 8, payload, plen);
    return 8 + plen;
}

static char g_pl[1 << 20];

static char *kstr(char *w, const char *s)
{
    return mp_encode_str(w, s, (uint32_t)strlen(s));
}

static int decode_hand(uint8_t type, const char *end, wire_msg *m)
{
    size_t n = frame_of(type, g_pl, (size_t)(end - g_pl)), used;
    return wire_decode(g_frame, n, NULL, m, &used);
}

/* ---- round trips ------------------------------------------------------------------------ */

static void test_roundtrip_every_type(void **state)
{
    bool seen[256] = {false};
    for (int i = 0; i < N_ALL; i++) {
        wire_msg m, d, d2;
        sample_any(i, &m);
        size_t need, len, used;
        assert_int_equal(wire_encode(&m, NULL, 0, &need), WIRE_ENOBUF);
        uint8_t *buf = malloc(need);
        assert_int_equal(wire_encode(&m, buf, need, &len), 0);
        assert_int_equal(len, need);
        /* the header */
        assert_int_equal(buf[0], 1);
        assert_int_equal(buf[1], m.type);
        assert_int_equal(buf[2], 0);
        assert_int_equal(buf[3], 0);
        uint32_t plen = (uint32_t)buf[4] << 24 | (uint32_t)buf[5] << 16 | buf[6] << 8 | buf[7];
        assert_int_equal(plen, len - 8);
        /* decode gives back every field */
        assert_int_equal(wire_decode(buf, len, NULL, &d, &used), 0);
        assert_int_equal(used, len);
        if (!msg_eq(&m, &d)) {
            fail_msg("sample %d (%s) does not round-trip", i, wire_type_name(m.type));
        }
        /* and re-encoding a decoded message (lists from raw views) gives the same bytes */
        size_t len2;
        uint8_t *buf2 = encode_or_die(&d, &len2);
        assert_int_equal(len2, len);
        assert_memory_equal(buf, buf2, len);
        assert_int_equal(wire_decode(buf2, len2, NULL, &d2, &used), 0);
        assert_true(msg_eq(&m, &d2));
        seen[m.type] = true;
        free(buf);
        free(buf2);
    }
    /* every type of MESH.md's table, plus PUBACK and STORE_ACK */
    static const uint8_t types[] = {0x01, 0x02, 0x03, 0x04, 0x10, 0x11, 0x12, 0x13, 0x14, 0x20,
                                    0x21, 0x22, 0x23, 0x40, 0x41, 0x42, 0x43, 0x44, 0x45};
    for (size_t i = 0; i < sizeof types; i++) {
        if (!seen[types[i]]) {
            fail_msg("type 0x%02x has no round trip", types[i]);
        }
    }
}

static void test_decoded_views_point_into_the_frame(void **state)
{
    wire_msg m, d;
    sample(0, &m);
    size_t len, used;
    uint8_t *buf = encode_or_die(&m, &len);
    assert_int_equal(wire_decode(buf, len, NULL, &d, &used), 0);
    assert_true(d.connect.node_id.p > buf && d.connect.node_id.p + 32 <= buf + len);
    assert_memory_equal(d.connect.node_id.p, NODE_A, 32);
    assert_null(d.connect.capabilities.items);
    assert_true(d.connect.capabilities.raw > buf && d.connect.capabilities.raw < buf + len);
    wire_list_iter it = wire_bytes_list_iter(&d.connect.capabilities);
    wire_bytes b;
    assert_true(wire_bytes_list_next(&it, &b) && bytes_is(b, "pubsub"));
    assert_true(wire_bytes_list_next(&it, &b) && bytes_is(b, "rpc"));
    assert_true(wire_bytes_list_next(&it, &b) && bytes_is(b, "dht"));
    assert_false(wire_bytes_list_next(&it, &b));
    free(buf);
}

static void test_encoder_writes_bin_exactly(void **state)
{
    wire_msg m;
    memset(&m, 0, sizeof m);
    m.type = WIRE_PUBACK;
    m.puback.message_id = B("ab");
    uint8_t buf[64];
    size_t len;
    assert_int_equal(wire_encode(&m, buf, sizeof buf, &len), 0);
    static const uint8_t want[] = {1,    0x14, 0,   0,    0,   0,   0,   17,  0x81,
                                   0xc4, 0x0a, 'm', 'e',  's', 's', 'a', 'g', 'e',
                                   '_',  'i',  'd', 0xc4, 2,   'a', 'b'};
    assert_int_equal(len, sizeof want);
    assert_memory_equal(buf, want, sizeof want);

    /* integers: shortest forms, negatives as int */
    memset(&m, 0, sizeof m);
    m.type = WIRE_PONG;
    m.pong.timestamp = -1;
    m.pong.server_time = 300;
    assert_int_equal(wire_encode(&m, buf, sizeof buf, &len), 0);
    static const uint8_t want2[] = {0x82, 0xc4, 9,    't',  'i', 'm', 'e',  's',  't', 'a',
                                    'm',  'p',  0xff, 0xc4, 11,  's', 'e',  'r',  'v', 'e',
                                    'r',  '_',  't',  'i',  'm', 'e', 0xcd, 0x01, 0x2c};
    assert_int_equal(len, 8 + sizeof want2);
    assert_memory_equal(buf + 8, want2, sizeof want2);
}

/* ---- v0.8 compatibility ----------------------------------------------------------------- */

static void test_decode_str_keys_and_values(void **state)
{
    /* CONNECT written the way a str-emitting encoder would: str keys and values, fixstr,
     * str8 and str16 forms */
    char *w = g_pl;
    char longrealm[300];
    memset(longrealm, 'r', sizeof longrealm);
    w = mp_encode_map(w, 5);
    w = kstr(w, "version");
    w = kstr(w, "1.0");
    w = kstr(w, "node_id");
    w = mp_encode_str(w, NODE_A, 32); /* str8 */
    w = kstr(w, "realm_id");
    w = mp_encode_str(w, longrealm, sizeof longrealm); /* str16 */
    w = kstr(w, "capabilities");
    w = mp_encode_array(w, 2);
    w = kstr(w, "pubsub");
    w = mp_encode_bin(w, "rpc", 3); /* mixed in one list */
    w = kstr(w, "endpoint");
    w = kstr(w, "https://h:1");
    wire_msg m;
    assert_int_equal(decode_hand(WIRE_CONNECT, w, &m), 0);
    assert_int_equal(m.type, WIRE_CONNECT);
    assert_true(bytes_is(m.connect.version, "1.0"));
    assert_int_equal(m.connect.node_id.len, 32);
    assert_memory_equal(m.connect.node_id.p, NODE_A, 32);
    assert_int_equal(m.connect.realm_id.len, sizeof longrealm);
    assert_int_equal(m.connect.capabilities.count, 2);
    wire_list_iter it = wire_bytes_list_iter(&m.connect.capabilities);
    wire_bytes b;
    assert_true(wire_bytes_list_next(&it, &b) && bytes_is(b, "pubsub"));
    assert_true(wire_bytes_list_next(&it, &b) && bytes_is(b, "rpc"));
    assert_true(bytes_is(m.connect.endpoint, "https://h:1"));

    /* PUBLISH with str keys and a str payload, ints as signed-family encodings */
    w = g_pl;
    w = mp_encode_map(w, 5);
    w = kstr(w, "message_id");
    w = kstr(w, MSG_ID);
    w = kstr(w, "retain");
    w = mp_encode_bool(w, false);
    w = kstr(w, "qos");
    *w++ = (char)0xd0; /* int8 1 */
    *w++ = 1;
    w = kstr(w, "payload");
    w = kstr(w, "hello");
    w = kstr(w, "topic");
    w = kstr(w, "a.b");
    assert_int_equal(decode_hand(WIRE_PUBLISH, w, &m), 0);
    assert_true(bytes_is(m.publish.topic, "a.b"));
    assert_true(bytes_is(m.publish.payload, "hello"));
    assert_true(bytes_is(m.publish.message_id, MSG_ID));
    assert_int_equal(m.publish.qos, 1);
    assert_false(m.publish.retain);

    /* RPC_ROUTE whose nested reply and error map are str too */
    w = g_pl;
    w = mp_encode_map(w, 6);
    w = kstr(w, "destination_node_id");
    w = kstr(w, "d");
    w = kstr(w, "source_node_id");
    w = kstr(w, "s");
    w = kstr(w, "hop_count");
    w = mp_encode_uint(w, 2);
    w = kstr(w, "max_hops");
    w = mp_encode_uint(w, 10);
    w = kstr(w, "payload"); /* payload before payload_type: order is free */
    w = mp_encode_map(w, 2);
    w = kstr(w, "call_id");
    w = kstr(w, "c1");
    w = kstr(w, "error");
    w = mp_encode_map(w, 2);
    w = kstr(w, "message");
    w = kstr(w, "m");
    w = kstr(w, "code");
    w = kstr(w, "timeout");
    w = kstr(w, "payload_type");
    w = kstr(w, "reply");
    assert_int_equal(decode_hand(WIRE_RPC_ROUTE, w, &m), 0);
    assert_int_equal(m.rpc_route.payload_type, WIRE_RPC_PAYLOAD_REPLY);
    assert_int_equal(m.rpc_route.hop_count, 2);
    assert_true(m.rpc_route.reply.is_error);
    assert_true(bytes_is(m.rpc_route.reply.call_id, "c1"));
    assert_true(bytes_is(m.rpc_route.reply.error.code, "timeout"));
    assert_true(bytes_is(m.rpc_route.reply.error.message, "m"));
}

static void test_unknown_keys_and_nil_optionals(void **state)
{
    char *w = g_pl;
    w = mp_encode_map(w, 6);
    w = kstr(w, "future_field"); /* unknown, with a nested value */
    w = mp_encode_map(w, 1);
    w = kstr(w, "x");
    w = mp_encode_array(w, 2);
    w = mp_encode_double(w, 1.5);
    w = mp_encode_nil(w);
    w = mp_encode_uint(w, 7); /* a key that is no string */
    w = kstr(w, "ignored");
    w = kstr(w, "timestamp");
    w = mp_encode_uint(w, 99);
    w = kstr(w, "type"); /* v0.8's maps sometimes carry their own type: ignored */
    w = kstr(w, "ping");
    w = mp_encode_bin(w, "timestampX", 10);
    w = mp_encode_uint(w, 1);
    w = kstr(w, "times");
    w = mp_encode_uint(w, 2);
    wire_msg m;
    assert_int_equal(decode_hand(WIRE_PING, w, &m), 0);
    assert_int_equal(m.ping.timestamp, 99);

    /* optional endpoint = nil is absent; a CALL's timeout = nil too */
    w = g_pl;
    w = mp_encode_map(w, 5);
    w = kstr(w, "version");
    w = kstr(w, "1.0");
    w = kstr(w, "node_id");
    w = kstr(w, "n");
    w = kstr(w, "realm_id");
    w = kstr(w, "r");
    w = kstr(w, "capabilities");
    w = mp_encode_array(w, 0);
    w = kstr(w, "endpoint");
    w = mp_encode_nil(w);
    assert_int_equal(decode_hand(WIRE_CONNECT, w, &m), 0);
    assert_null(m.connect.endpoint.p);
    assert_int_equal(m.connect.capabilities.count, 0);

    /* a required key = nil is malformed */
    w = g_pl;
    w = mp_encode_map(w, 1);
    w = kstr(w, "timestamp");
    w = mp_encode_nil(w);
    assert_int_equal(decode_hand(WIRE_PING, w, &m), WIRE_EMALFORMED);
}

static void test_flags_and_reserved_are_ignored(void **state)
{
    wire_msg m, d;
    sample(3, &m);
    size_t len, used;
    uint8_t *buf = encode_or_die(&m, &len);
    buf[2] = 0x80;
    buf[3] = 0x01;
    assert_int_equal(wire_decode(buf, len, NULL, &d, &used), 0);
    assert_int_equal(d.ping.timestamp, m.ping.timestamp);
    wire_reader r;
    wire_frame f;
    assert_int_equal(wire_reader_init(&r, NULL), 0);
    assert_int_equal(wire_reader_feed(&r, buf, len, &used, &f), 0);
    assert_int_equal(f.flags, 0x80);
    wire_reader_free(&r);
    free(buf);
}

/* ---- the reader ------------------------------------------------------------------------- */

typedef struct stream {
    uint8_t *bytes;
    size_t len;
    size_t n;              /* frames */
    size_t off[N_ALL + 1]; /* frame boundaries */
    uint8_t type[N_ALL];
} stream;

static void stream_build(stream *s)
{
    s->bytes = NULL;
    s->len = 0;
    s->n = 0;
    for (int i = 0; i < N_ALL; i++) {
        wire_msg m;
        sample_any(i, &m);
        size_t len;
        uint8_t *buf = encode_or_die(&m, &len);
        s->bytes = realloc(s->bytes, s->len + len);
        memcpy(s->bytes + s->len, buf, len);
        s->off[s->n] = s->len;
        s->type[s->n] = m.type;
        s->len += len;
        s->n++;
        free(buf);
    }
    s->off[s->n] = s->len;
}

/* Feeds chunk into r; checks each frame it yields against the next expected one. */
static void feed_check(wire_reader *r, const stream *s, const uint8_t *chunk, size_t len,
                       size_t *next)
{
    while (true) {
        size_t used;
        wire_frame f;
        int rv = wire_reader_feed(r, chunk, len, &used, &f);
        assert_true(used <= len);
        chunk += used;
        len -= used;
        if (rv == WIRE_EAGAIN) {
            assert_int_equal(len, 0);
            return;
        }
        assert_int_equal(rv, 0);
        assert_true(*next < s->n);
        size_t start = s->off[*next] + 8, plen = s->off[*next + 1] - start;
        assert_int_equal(f.type, s->type[*next]);
        assert_int_equal(f.payload_len, plen);
        assert_memory_equal(f.payload, s->bytes + start, plen);
        wire_msg m, want;
        assert_int_equal(wire_decode_payload(f.type, f.payload, f.payload_len, NULL, &m), 0);
        sample_any((int)*next, &want);
        assert_true(msg_eq(&want, &m));
        (*next)++;
        if (len == 0) {
            return;
        }
    }
}

static void test_reader_coalesced_frames_zero_copy(void **state)
{
    stream s;
    stream_build(&s);
    wire_reader r;
    assert_int_equal(wire_reader_init(&r, NULL), 0);
    size_t next = 0, off = 0;
    while (off < s.len) { /* all frames in one chunk: each comes out as a view into it */
        size_t used;
        wire_frame f;
        assert_int_equal(wire_reader_feed(&r, s.bytes + off, s.len - off, &used, &f), 0);
        assert_ptr_equal(f.payload, s.bytes + s.off[next] + 8);
        assert_int_equal(used, s.off[next + 1] - s.off[next]);
        off += used;
        next++;
    }
    assert_int_equal(next, s.n);
    assert_int_equal(wire_reader_memory(&r), 0); /* nothing was copied */
    assert_int_equal(wire_reader_buffered(&r), 0);
    next = 0;
    feed_check(&r, &s, s.bytes, s.len, &next);
    assert_int_equal(next, s.n);
    wire_reader_free(&r);
    free(s.bytes);
}

static void test_reader_split_at_every_offset(void **state)
{
    stream s;
    stream_build(&s);
    for (size_t cut = 0; cut <= s.len; cut++) {
        wire_reader r;
        size_t next = 0;
        assert_int_equal(wire_reader_init(&r, NULL), 0);
        feed_check(&r, &s, s.bytes, cut, &next);
        feed_check(&r, &s, s.bytes + cut, s.len - cut, &next);
        assert_int_equal(next, s.n);
        assert_int_equal(wire_reader_buffered(&r), 0);
        wire_reader_free(&r);
    }
    /* one byte at a time */
    wire_reader r;
    size_t next = 0;
    assert_int_equal(wire_reader_init(&r, NULL), 0);
    for (size_t i = 0; i < s.len; i++) {
        feed_check(&r, &s, s.bytes + i, 1, &next);
    }
    assert_int_equal(next, s.n);
    /* chunks of every size from 2 to 64 */
    for (size_t step = 2; step <= 64; step++) {
        next = 0;
        for (size_t i = 0; i < s.len; i += step) {
            feed_check(&r, &s, s.bytes + i, i + step <= s.len ? step : s.len - i, &next);
        }
        assert_int_equal(next, s.n);
    }
    /* an empty chunk changes nothing */
    size_t used;
    wire_frame f;
    assert_int_equal(wire_reader_feed(&r, NULL, 0, &used, &f), WIRE_EAGAIN);
    assert_int_equal(used, 0);
    wire_reader_free(&r);
    free(s.bytes);
}

static void test_reader_memory_grows_with_bytes_received(void **state)
{
    wire_reader r;
    assert_int_equal(wire_reader_init(&r, NULL), 0);
    static uint8_t big[1 << 20];
    /* a PUBLISH of exactly the maximum frame: 1 MiB including the header */
    uint32_t plen = (1u << 20) - 8;
    char *w = (char *)big + 8;
    w = mp_encode_map(w, 5);
    w = mp_encode_bin(w, "topic", 5);
    w = mp_encode_bin(w, "t", 1);
    w = mp_encode_bin(w, "qos", 3);
    w = mp_encode_uint(w, 0);
    w = mp_encode_bin(w, "retain", 6);
    w = mp_encode_bool(w, false);
    w = mp_encode_bin(w, "message_id", 10);
    w = mp_encode_bin(w, MSG_ID, 16);
    w = mp_encode_bin(w, "payload", 7);
    uint32_t rest = plen - (uint32_t)(w - (char *)big - 8) - 5;
    w = mp_encode_binl(w, rest);
    memset(w, 'x', rest);
    assert_int_equal((size_t)(w + rest - (char *)big), 1u << 20);
    big[0] = 1;
    big[1] = WIRE_PUBLISH;
    big[4] = (uint8_t)(plen >> 24);
    big[5] = (uint8_t)(plen >> 16);
    big[6] = (uint8_t)(plen >> 8);
    big[7] = (uint8_t)plen;

    size_t used;
    wire_frame f;
    /* the header announces ~1 MiB; 10 bytes arrive: the reader holds ~1 KiB, not 1 MiB */
    assert_int_equal(wire_reader_feed(&r, big, 18, &used, &f), WIRE_EAGAIN);
    assert_int_equal(used, 18);
    assert_int_equal(wire_reader_buffered(&r), 18);
    assert_true(wire_reader_memory(&r) > 0 && wire_reader_memory(&r) <= 1024);
    size_t off = 18, prev = wire_reader_memory(&r);
    int rv = WIRE_EAGAIN;
    while (off < sizeof big) {
        size_t k = sizeof big - off < 4000 ? sizeof big - off : 4000;
        rv = wire_reader_feed(&r, big + off, k, &used, &f);
        off += used;
        /* at most twice what has arrived (geometric growth), never above the frame */
        assert_true(wire_reader_memory(&r) <= 2 * (off - 8) + 1024);
        assert_true(wire_reader_memory(&r) <= plen);
        assert_true(wire_reader_memory(&r) >= prev);
        prev = wire_reader_memory(&r);
    }
    assert_int_equal(rv, 0);
    assert_int_equal(f.payload_len, plen);
    wire_msg m;
    assert_int_equal(wire_decode_payload(f.type, f.payload, f.payload_len, NULL, &m), 0);
    assert_int_equal(m.publish.payload.len, rest);
    /* the big buffer is released once the next bytes arrive */
    wire_msg ping;
    sample(3, &ping);
    size_t plen2;
    uint8_t *pbuf = encode_or_die(&ping, &plen2);
    assert_int_equal(wire_reader_feed(&r, pbuf, plen2, &used, &f), 0);
    assert_int_equal(f.type, WIRE_PING);
    assert_int_equal(wire_reader_memory(&r), 0);
    free(pbuf);
    wire_reader_free(&r);
}

static void test_reader_header_errors_are_immediate_and_sticky(void **state)
{
    static const struct {
        uint8_t hdr[8];
        int err;
    } cases[] = {
        {{2, 0x03, 0, 0, 0, 0, 0, 1}, WIRE_EUNSUPPORTED_VERSION},
        {{0, 0x03, 0, 0, 0, 0, 0, 1}, WIRE_EUNSUPPORTED_VERSION},
        {{1, 0x05, 0, 0, 0, 0, 0, 1}, WIRE_EUNKNOWN_TYPE},
        {{1, 0x30, 0, 0, 0, 0, 0, 1}, WIRE_EUNKNOWN_TYPE},
        {{1, 0x00, 0, 0, 0, 0, 0, 1}, WIRE_EUNKNOWN_TYPE},
        {{1, 0xff, 0, 0, 0, 0, 0, 1}, WIRE_EUNKNOWN_TYPE},
        {{1, 0x10, 0, 0, 0xff, 0xff, 0xff, 0xff}, WIRE_EFRAME_TOO_LARGE},
        {{1, 0x10, 0, 0, 0x00, 0x10, 0x00, 0x00}, WIRE_EFRAME_TOO_LARGE}, /* 1 MiB + 8 */
        {{1, 0x10, 0, 0, 0x00, 0x0f, 0xff, 0xf9}, WIRE_EFRAME_TOO_LARGE}, /* 1 MiB + 1 */
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        uint8_t buf[64];
        memset(buf, 0x80, sizeof buf);
        memcpy(buf, cases[i].hdr, 8);
        wire_reader r;
        size_t used;
        wire_frame f;
        assert_int_equal(wire_reader_init(&r, NULL), 0);
        /* 7 bytes: not decided yet */
        assert_int_equal(wire_reader_feed(&r, buf, 7, &used, &f), WIRE_EAGAIN);
        /* the 8th byte decides, before any payload is taken or memory allocated */
        assert_int_equal(wire_reader_feed(&r, buf + 7, sizeof buf - 7, &used, &f), cases[i].err);
        assert_int_equal(used, 1);
        assert_int_equal(wire_reader_memory(&r), 0);
        assert_int_equal(wire_reader_feed(&r, buf + 8, 8, &used, &f), cases[i].err);
        assert_int_equal(used, 0);
        wire_reader_free(&r);
        /* wire_decode reports the same */
        wire_msg m;
        assert_int_equal(wire_decode(buf, sizeof buf, NULL, &m, &used), cases[i].err);
        assert_int_equal(used, 0);
    }
}

static void test_frame_size_limit_is_exact(void **state)
{
    wire_limits lim = {64, 8, 1024};
    /* a PING whose unknown key pads the frame to exactly 64 bytes */
    for (size_t total = 63; total <= 65; total++) {
        char *w = g_pl;
        w = mp_encode_map(w, 2);
        w = mp_encode_bin(w, "timestamp", 9);
        w = mp_encode_uint(w, 1);
        w = mp_encode_bin(w, "pad", 3);
        size_t sofar = 8 + (size_t)(w - g_pl) + 2; /* + bin8 header */
        size_t padlen = total - sofar;
        w = mp_encode_bin(w, "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx",
                          (uint32_t)padlen);
        size_t n = frame_of(WIRE_PING, g_pl, (size_t)(w - g_pl));
        assert_int_equal(n, total);
        wire_msg m;
        size_t used;
        int want = total <= 64 ? 0 : WIRE_EFRAME_TOO_LARGE;
        assert_int_equal(wire_decode(g_frame, n, &lim, &m, &used), want);
        wire_reader r;
        wire_frame f;
        assert_int_equal(wire_reader_init(&r, &lim), 0);
        assert_int_equal(wire_reader_feed(&r, g_frame, n, &used, &f), want);
        wire_reader_free(&r);
        assert_int_equal(wire_decode_payload(WIRE_PING, g_frame + 8, n - 8, &lim, &m), want);
    }
}

/* ---- refusals of the payload ------------------------------------------------------------ */

static void test_truncated_frames_and_payloads(void **state)
{
    wire_msg m, d;
    sample(0, &m);
    size_t len, used;
    uint8_t *buf = encode_or_die(&m, &len);
    /* every proper prefix of a frame is "need more" for wire_decode, never an error */
    for (size_t k = 0; k < len; k++) {
        assert_int_equal(wire_decode(buf, k, NULL, &d, &used), WIRE_EAGAIN);
        assert_int_equal(used, 0);
    }
    /* a frame whose length field is honest but whose msgpack is cut: malformed, at every
     * cut point of the payload */
    for (size_t k = 1; k < len - 8; k++) {
        assert_int_equal(wire_decode_payload(WIRE_CONNECT, buf + 8, k, NULL, &d), WIRE_EMALFORMED);
    }
    free(buf);
    /* lengths that point past the end */
    static const uint8_t hostile[][12] = {
        {0x81, 0xc4, 0x09, 't', 'i', 'm', 'e', 's', 't', 'a', 'm', 'p'},     /* value missing */
        {0x81, 0xdb, 0xff, 0xff, 0xff, 0xff, 'a', 'b', 'c', 'd', 'e', 'f'},  /* str32 4 GiB */
        {0x81, 0xc6, 0x7f, 0xff, 0xff, 0xff, 'a', 'b', 'c', 'd', 'e', 'f'},  /* bin32 2 GiB */
        {0x81, 0xc9, 0xff, 0xff, 0xff, 0xff, 0x01, 'a', 'b', 'c', 'd', 'e'}, /* ext32 */
        {0x81, 0xa1, 'x', 0xd8, 0x01, 'a', 'b', 'c', 'd', 'e', 'f', 'g'},    /* fixext16 short */
        {0x82, 0xa1, 'x', 0xcf, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08}, /* 2nd pair */
    };
    for (size_t i = 0; i < sizeof hostile / sizeof hostile[0]; i++) {
        assert_int_equal(wire_decode_payload(WIRE_PING, hostile[i], sizeof hostile[i], NULL, &d),
                         WIRE_EMALFORMED);
    }
}

static void test_payload_must_be_one_map(void **state)
{
    wire_msg m;
    static const uint8_t array[] = {0x91, 0x01};
    static const uint8_t integer[] = {0x05};
    static const uint8_t str[] = {0xa1, 'x'};
    static const uint8_t nil[] = {0xc0};
    static const uint8_t unused[] = {0xc1};
    static const uint8_t trailing[] = {0x81, 0xa9, 't', 'i', 'm',  'e', 's',
                                       't',  'a',  'm', 'p', 0x01, 0x00};
    static const uint8_t two_maps[] = {0x80, 0x80};
    assert_int_equal(wire_decode_payload(WIRE_PING, array, sizeof array, NULL, &m),
                     WIRE_EMALFORMED);
    assert_int_equal(wire_decode_payload(WIRE_PING, integer, sizeof integer, NULL, &m),
                     WIRE_EMALFORMED);
    assert_int_equal(wire_decode_payload(WIRE_PING, str, sizeof str, NULL, &m), WIRE_EMALFORMED);
    assert_int_equal(wire_decode_payload(WIRE_PING, nil, sizeof nil, NULL, &m), WIRE_EMALFORMED);
    assert_int_equal(wire_decode_payload(WIRE_PING, unused, sizeof unused, NULL, &m),
                     WIRE_EMALFORMED);
    assert_int_equal(wire_decode_payload(WIRE_PING, trailing, sizeof trailing, NULL, &m),
                     WIRE_EMALFORMED);
    assert_int_equal(wire_decode_payload(WIRE_PING, two_maps, sizeof two_maps, NULL, &m),
                     WIRE_EMALFORMED);
    assert_int_equal(wire_decode_payload(WIRE_PING, array, 0, NULL, &m), WIRE_EMALFORMED);
    /* the same map without the trailing byte is fine */
    assert_int_equal(wire_decode_payload(WIRE_PING, trailing, sizeof trailing - 1, NULL, &m), 0);
    assert_int_equal(m.ping.timestamp, 1);
    /* an empty frame through wire_decode */
    static const uint8_t empty[] = {1, WIRE_PING, 0, 0, 0, 0, 0, 0};
    size_t used;
    assert_int_equal(wire_decode(empty, sizeof empty, NULL, &m, &used), WIRE_EMALFORMED);
    /* 0xc1 deep inside an unknown key */
    static const uint8_t c1[] = {0x82, 0xa9, 't', 'i',  'm',  'e', 's',  't',
                                 'a',  'm',  'p', 0x01, 0xa1, 'z', 0x91, 0xc1};
    assert_int_equal(wire_decode_payload(WIRE_PING, c1, sizeof c1, NULL, &m), WIRE_EMALFORMED);
    /* a type the payload decoder does not know */
    assert_int_equal(wire_decode_payload(0x7e, trailing, sizeof trailing - 1, NULL, &m),
                     WIRE_EUNKNOWN_TYPE);
}

/* Builds {key: <value written by fn>} plus the other keys a message needs. */
typedef char *(*val_fn)(char *w);

static char *v_str_x(char *w)
{
    return kstr(w, "x");
}
static char *v_uint3(char *w)
{
    return mp_encode_uint(w, 3);
}
static char *v_int_neg1(char *w)
{
    return mp_encode_int(w, -1);
}
static char *v_uint1(char *w)
{
    return mp_encode_uint(w, 1);
}
static char *v_true(char *w)
{
    return mp_encode_bool(w, true);
}
static char *v_array_of_int(char *w)
{
    return mp_encode_uint(mp_encode_array(w, 1), 1);
}
static char *v_array_of_nil(char *w)
{
    return mp_encode_nil(mp_encode_array(w, 1));
}
static char *v_double(char *w)
{
    return mp_encode_double(w, 1.0);
}
static char *v_big_uint(char *w)
{
    return mp_encode_uint(w, (uint64_t)INT64_MAX + 1);
}
static char *v_u32_plus1(char *w)
{
    return mp_encode_uint(w, (uint64_t)UINT32_MAX + 1);
}
static char *v_empty_map(char *w)
{
    return mp_encode_map(w, 0);
}
static char *v_str_cast(char *w)
{
    return kstr(w, "cast");
}
static char *v_str_other(char *w)
{
    return kstr(w, "other");
}
static char *v_error_map(char *w)
{
    w = mp_encode_map(w, 2);
    w = kstr(w, "code");
    w = kstr(w, "c");
    w = kstr(w, "message");
    return kstr(w, "m");
}
static char *v_nodes_missing_address(char *w)
{
    w = mp_encode_array(w, 1);
    w = mp_encode_map(w, 1);
    w = kstr(w, "node_id");
    return kstr(w, "n");
}
static char *v_nodes_bad_last_seen(char *w)
{
    w = mp_encode_array(w, 1);
    w = mp_encode_map(w, 3);
    w = kstr(w, "node_id");
    w = kstr(w, "n");
    w = kstr(w, "address");
    w = kstr(w, "a");
    w = kstr(w, "last_seen");
    return kstr(w, "yesterday");
}

/* Takes the encoded sample `si`, replaces the value of top-level key `key` with fn's (or
 * drops the key if fn is NULL, or adds it if absent) and decodes the result. */
static int decode_with(int si, const char *key, val_fn fn)
{
    wire_msg m, d;
    sample_any(si, &m);
    size_t len;
    uint8_t *buf = encode_or_die(&m, &len);
    const char *r = (const char *)buf + 8;
    uint32_t n = mp_decode_map(&r);
    char *w = g_pl;
    char *hdr = w;
    w = mp_encode_map(w, 0xffff); /* 3-byte header, patched below */
    uint32_t out = 0;
    bool found = false;
    for (uint32_t i = 0; i < n; i++) {
        const char *k0 = r;
        uint32_t klen;
        const char *k = mp_decode_bin(&r, &klen);
        const char *v0 = r;
        mp_next(&r);
        if (klen == strlen(key) && memcmp(k, key, klen) == 0) {
            found = true;
            if (fn == NULL) {
                continue;
            }
            memcpy(w, k0, (size_t)(v0 - k0));
            w += v0 - k0;
            w = fn(w);
        } else {
            memcpy(w, k0, (size_t)(r - k0));
            w += r - k0;
        }
        out++;
    }
    if (!found && fn != NULL) {
        w = kstr(w, key);
        w = fn(w);
        out++;
    }
    mp_encode_map(hdr, 0xffff);
    hdr[1] = (char)(out >> 8);
    hdr[2] = (char)out;
    free(buf);
    return wire_decode_payload(m.type, (const uint8_t *)g_pl, (size_t)(w - g_pl), NULL, &d);
}

static void test_wrong_value_types(void **state)
{
    static const struct {
        int sample;
        const char *key;
        val_fn fn;
    } cases[] = {
        {3, "timestamp", v_str_x},
        {3, "timestamp", v_double},
        {3, "timestamp", v_big_uint},
        {3, "timestamp", v_true},
        {6, "qos", v_uint3},
        {6, "qos", v_int_neg1},
        {6, "qos", v_str_x},
        {6, "retain", v_uint1},
        {6, "topic", v_uint1},
        {6, "payload", v_array_of_int},
        {6, "message_id", v_empty_map},
        {8, "topics", v_str_x},
        {8, "topics", v_array_of_int},
        {9, "topics", v_array_of_nil},
        {0, "capabilities", v_str_x},
        {0, "endpoint", v_uint1},
        {12, "timeout", v_int_neg1},
        {12, "timeout", v_u32_plus1},
        {12, "timeout", v_str_x},
        {10, "hop_count", v_int_neg1},
        {10, "max_hops", v_u32_plus1},
        {10, "payload", v_str_x},
        {10, "payload", v_empty_map},
        {18, "payload_type", v_str_cast},
        {18, "payload", v_str_x},
        {18, "payload", v_empty_map},
        {19, "payload_type", v_str_other},
        {18, "payload_type", v_uint1},
        {21, "nodes", v_nodes_missing_address},
        {21, "nodes", v_nodes_bad_last_seen},
        {21, "nodes", v_str_x},
        {N_SAMPLES, "result", v_str_other},
        {N_SAMPLES, "result", v_uint1},
        {16, "error", v_error_map}, /* result and error */
        {17, "result", v_str_x},    /* error and result */
        {16, "error", v_str_x},
        {17, "error", v_empty_map},
        {2, "reason", v_uint1},
        {20, "target", v_array_of_int},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        int rv = decode_with(cases[i].sample, cases[i].key, cases[i].fn);
        if (rv != WIRE_EMALFORMED) {
            fail_msg("case %zu (sample %d, key %s): %s", i, cases[i].sample, cases[i].key,
                     wire_strerror(rv));
        }
    }
    /* controls: the same machinery with good values decodes */
    assert_int_equal(decode_with(6, "qos", v_uint1), 0);
    assert_int_equal(decode_with(3, "timestamp", v_int_neg1), 0);
    assert_int_equal(decode_with(12, "timeout", v_uint3), 0);
    /* FIND_VALUE_REPLY: the key of the other variant is still type-checked if present, and
     * ignored when well-formed */
    assert_int_equal(decode_with(N_SAMPLES, "nodes", v_array_of_nil), WIRE_EMALFORMED);
    assert_int_equal(decode_with(N_SAMPLES + 1, "value", v_str_x), 0);
}

static void test_missing_keys(void **state)
{
    /* every key of every sample, removed in turn: only the optional ones may go */
    for (int si = 0; si < N_ALL; si++) {
        wire_msg m;
        sample_any(si, &m);
        size_t len;
        uint8_t *buf = encode_or_die(&m, &len);
        const char *r = (const char *)buf + 8;
        uint32_t n = mp_decode_map(&r);
        assert_true(n > 0);
        for (uint32_t i = 0; i < n; i++) {
            uint32_t klen;
            const char *k = mp_decode_bin(&r, &klen);
            mp_next(&r);
            char key[64];
            snprintf(key, sizeof key, "%.*s", (int)klen, k);
            bool dht_opt = strcmp(key, "sender_id") == 0 || strcmp(key, "sender_address") == 0 ||
                           strcmp(key, "ttl") == 0 || strcmp(key, "publisher") == 0 ||
                           (m.type != WIRE_STORE_ACK && strcmp(key, "request_id") == 0);
            bool optional = strcmp(key, "endpoint") == 0 || strcmp(key, "timeout") == 0 ||
                            (m.type == WIRE_CAST && strcmp(key, "call_id") == 0) || dht_opt;
            int rv = decode_with(si, key, NULL);
            if (rv != (optional ? 0 : WIRE_EMALFORMED)) {
                fail_msg("%s without %s: %s", wire_type_name(m.type), key, wire_strerror(rv));
            }
        }
        free(buf);
    }
    /* nested maps: a PUBSUB_ROUTE's publish without qos, a reply's error without code */
    char *w = g_pl;
    w = mp_encode_map(w, 6);
    w = kstr(w, "destination_node_id");
    w = kstr(w, "d");
    w = kstr(w, "source_node_id");
    w = kstr(w, "s");
    w = kstr(w, "hop_count");
    w = mp_encode_uint(w, 0);
    w = kstr(w, "max_hops");
    w = mp_encode_uint(w, 10);
    w = kstr(w, "topic");
    w = kstr(w, "t");
    w = kstr(w, "payload");
    w = mp_encode_map(w, 4);
    w = kstr(w, "topic");
    w = kstr(w, "t");
    w = kstr(w, "payload");
    w = kstr(w, "p");
    w = kstr(w, "retain");
    w = mp_encode_bool(w, false);
    w = kstr(w, "message_id");
    w = kstr(w, "m");
    wire_msg m;
    assert_int_equal(decode_hand(WIRE_PUBSUB_ROUTE, w, &m), WIRE_EMALFORMED);
    w = g_pl;
    w = mp_encode_map(w, 2);
    w = kstr(w, "call_id");
    w = kstr(w, "c");
    w = kstr(w, "error");
    w = mp_encode_map(w, 1);
    w = kstr(w, "message");
    w = kstr(w, "m");
    assert_int_equal(decode_hand(WIRE_REPLY, w, &m), WIRE_EMALFORMED);
    /* an empty map for every type */
    static const uint8_t empty_map[] = {0x80};
    static const uint8_t types[] = {0x01, 0x02, 0x03, 0x04, 0x10, 0x11, 0x12, 0x13, 0x14, 0x20,
                                    0x21, 0x22, 0x23, 0x40, 0x41, 0x42, 0x43, 0x44, 0x45};
    for (size_t i = 0; i < sizeof types; i++) {
        assert_int_equal(wire_decode_payload(types[i], empty_map, 1, NULL, &m), WIRE_EMALFORMED);
    }
}

static void test_duplicate_keys(void **state)
{
    char *w = g_pl;
    w = mp_encode_map(w, 2);
    w = kstr(w, "timestamp");
    w = mp_encode_uint(w, 1);
    w = mp_encode_bin(w, "timestamp", 9); /* the same key as bin */
    w = mp_encode_uint(w, 2);
    wire_msg m;
    assert_int_equal(decode_hand(WIRE_PING, w, &m), WIRE_EMALFORMED);
}

/* {timestamp: 1, "deep": [[[...]]]} with `arrays` nested arrays: depth = 1 + arrays */
static char *deep_ping(char *w, int arrays)
{
    w = mp_encode_map(w, 2);
    w = kstr(w, "timestamp");
    w = mp_encode_uint(w, 1);
    w = kstr(w, "deep");
    for (int i = 0; i < arrays; i++) {
        w = mp_encode_array(w, 1);
    }
    return mp_encode_uint(w, 0);
}

static void test_nesting_limit(void **state)
{
    wire_msg m;
    char *w = deep_ping(g_pl, 7); /* depth 8: allowed */
    assert_int_equal(decode_hand(WIRE_PING, w, &m), 0);
    w = deep_ping(g_pl, 8); /* depth 9 */
    assert_int_equal(decode_hand(WIRE_PING, w, &m), WIRE_ELIMIT);
    w = deep_ping(g_pl, 100000); /* a deep bomb is refused without recursing into it */
    assert_int_equal(decode_hand(WIRE_PING, w, &m), WIRE_ELIMIT);

    /* a tighter limit: RPC_ROUTE carrying a REPLY with an error map has depth 3 */
    wire_limits lim = {WIRE_DEFAULT_MAX_FRAME, 2, 1024};
    wire_msg s;
    size_t len, used;
    sample(19, &s);
    uint8_t *buf = encode_or_die(&s, &len);
    assert_int_equal(wire_decode(buf, len, &lim, &m, &used), WIRE_ELIMIT);
    lim.max_depth = 3;
    assert_int_equal(wire_decode(buf, len, &lim, &m, &used), 0);
    free(buf);
    /* depth 1 refuses anything nested, even in an unknown key */
    lim.max_depth = 1;
    w = deep_ping(g_pl, 1);
    size_t n = frame_of(WIRE_PING, g_pl, (size_t)(w - g_pl));
    assert_int_equal(wire_decode(g_frame, n, &lim, &m, &used), WIRE_ELIMIT);
}

static void test_element_limit(void **state)
{
    wire_msg m;
    for (uint32_t count = 1023; count <= 1025; count++) {
        char *w = g_pl;
        w = mp_encode_map(w, 2);
        w = kstr(w, "qos");
        w = mp_encode_uint(w, 0);
        w = kstr(w, "topics");
        w = mp_encode_array(w, count);
        for (uint32_t i = 0; i < count; i++) {
            w = kstr(w, "t");
        }
        int rv = decode_hand(WIRE_SUBSCRIBE, w, &m);
        assert_int_equal(rv, count <= 1024 ? 0 : WIRE_ELIMIT);
        if (rv == 0) {
            assert_int_equal(m.subscribe.topics.count, count);
        }
    }
    /* a map with 1025 entries (unknown keys) */
    char *w = g_pl;
    w = mp_encode_map(w, 1025);
    w = kstr(w, "timestamp");
    w = mp_encode_uint(w, 1);
    for (int i = 0; i < 1024; i++) {
        w = mp_encode_uint(w, (uint64_t)i);
        w = mp_encode_nil(w);
    }
    assert_int_equal(decode_hand(WIRE_PING, w, &m), WIRE_ELIMIT);
    /* counts announced far beyond the data: the count is refused before anything else */
    static const uint8_t map32[] = {0xdf, 0x80, 0x00, 0x00, 0x00, 0xa1, 'x', 0x01};
    static const uint8_t arr32[] = {0x81, 0xa1, 'x', 0xdd, 0xff, 0xff, 0xff, 0xff, 0x01};
    assert_int_equal(wire_decode_payload(WIRE_PING, map32, sizeof map32, NULL, &m), WIRE_ELIMIT);
    assert_int_equal(wire_decode_payload(WIRE_PING, arr32, sizeof arr32, NULL, &m), WIRE_ELIMIT);
    /* even with no element limit, a count the bytes cannot hold is malformed; 0x80000000
     * pairs is the count that overflows msgpuck's mp_check counter */
    wire_limits lim = {WIRE_DEFAULT_MAX_FRAME, 8, UINT32_MAX};
    assert_int_equal(wire_decode_payload(WIRE_PING, map32, sizeof map32, &lim, &m),
                     WIRE_EMALFORMED);
    assert_int_equal(wire_decode_payload(WIRE_PING, arr32, sizeof arr32, &lim, &m),
                     WIRE_EMALFORMED);
    /* a tighter element limit applies to node lists too */
    wire_limits lim1 = {WIRE_DEFAULT_MAX_FRAME, 8, 1};
    wire_msg s;
    size_t len, used;
    sample(21, &s);
    uint8_t *buf = encode_or_die(&s, &len);
    assert_int_equal(wire_decode(buf, len, &lim1, &m, &used), WIRE_ELIMIT);
    free(buf);
}

static void test_limits_are_validated(void **state)
{
    wire_reader r;
    wire_msg m;
    size_t used;
    static const uint8_t ping[] = {1, 3, 0, 0, 0, 0, 0, 1, 0x80};
    wire_limits bad[] = {{8, 8, 1024},
                         {WIRE_DEFAULT_MAX_FRAME, 0, 1024},
                         {WIRE_DEFAULT_MAX_FRAME, 65, 1024},
                         {WIRE_DEFAULT_MAX_FRAME, 8, 0}};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        assert_int_equal(wire_reader_init(&r, &bad[i]), WIRE_EINVAL);
        assert_int_equal(wire_decode(ping, sizeof ping, &bad[i], &m, &used), WIRE_EINVAL);
    }
    wire_limits def;
    wire_limits_default(&def);
    assert_int_equal(def.max_frame_size, 1u << 20);
    assert_int_equal(def.max_depth, 8);
    assert_int_equal(def.max_elems, 1024);
}

/* ---- encoding errors -------------------------------------------------------------------- */

static void test_encode_errors(void **state)
{
    wire_msg m;
    uint8_t buf[512];
    size_t len, need;
    sample(6, &m);
    assert_int_equal(wire_encode(&m, NULL, 0, &need), WIRE_ENOBUF);
    assert_true(need > 8);
    assert_int_equal(wire_encode(&m, buf, need - 1, &len), WIRE_ENOBUF);
    assert_int_equal(len, need);
    assert_int_equal(wire_encode(&m, buf, need, &len), 0);
    assert_int_equal(len, need);

    m.publish.qos = 3;
    assert_int_equal(wire_encode(&m, buf, sizeof buf, &len), WIRE_EINVAL);
    sample(6, &m);
    m.publish.topic = (wire_bytes){NULL, 4};
    assert_int_equal(wire_encode(&m, buf, sizeof buf, &len), WIRE_EINVAL);
    m.type = 0x7f;
    assert_int_equal(wire_encode(&m, buf, sizeof buf, &len), WIRE_EINVAL);

    sample(18, &m);
    m.rpc_route.payload_type = 3;
    assert_int_equal(wire_encode(&m, buf, sizeof buf, &len), WIRE_EINVAL);
    sample_fv(0, &m);
    m.find_value_reply.result = 0;
    assert_int_equal(wire_encode(&m, buf, sizeof buf, &len), WIRE_EINVAL);

    sample(8, &m);
    m.subscribe.topics.items = NULL; /* count 2, no elements */
    assert_int_equal(wire_encode(&m, buf, sizeof buf, &len), WIRE_EINVAL);

    /* raw values must be exactly one well-formed msgpack object */
    static const uint8_t truncated[] = {0x92, 0x01};
    static const uint8_t two[] = {0x01, 0x02};
    static const uint8_t c1[] = {0xc1};
    sample(22, &m);
    m.store.value = (wire_bytes){truncated, sizeof truncated};
    assert_int_equal(wire_encode(&m, buf, sizeof buf, &len), WIRE_EINVAL);
    m.store.value = (wire_bytes){two, sizeof two};
    assert_int_equal(wire_encode(&m, buf, sizeof buf, &len), WIRE_EINVAL);
    m.store.value = (wire_bytes){c1, sizeof c1};
    assert_int_equal(wire_encode(&m, buf, sizeof buf, &len), WIRE_EINVAL);
    m.store.value = (wire_bytes){NULL, 0};
    assert_int_equal(wire_encode(&m, buf, sizeof buf, &len), WIRE_EINVAL);
    m.store.value = (wire_bytes){two, 1};
    assert_int_equal(wire_encode(&m, buf, sizeof buf, &len), 0);

    /* a required string left NULL/0 is written as empty */
    memset(&m, 0, sizeof m);
    m.type = WIRE_FIND_NODE;
    assert_int_equal(wire_encode(&m, buf, sizeof buf, &len), 0);
    wire_msg d;
    size_t used;
    assert_int_equal(wire_decode(buf, len, NULL, &d, &used), 0);
    assert_int_equal(d.find_node.target.len, 0);
    assert_non_null(d.find_node.target.p);
}

/* The DHT keys this project adds: v0.8 frames without them still decode (absent), a
 * request_id is a non-negative integer up to 2^64-1, ttl fits u32, STORE_ACK needs its
 * request_id. */
static void test_dht_keys(void **state)
{
    wire_msg m;
    char *w = g_pl;
    w = mp_encode_map(w, 1); /* a v0.8 FIND_NODE */
    w = kstr(w, "target");
    w = kstr(w, "t");
    assert_int_equal(decode_hand(WIRE_FIND_NODE, w, &m), 0);
    assert_false(m.find_node.hdr.has_request_id);
    assert_null(m.find_node.hdr.sender_id.p);
    assert_null(m.find_node.hdr.sender_address.p);
    w = g_pl;
    w = mp_encode_map(w, 2); /* a v0.8 STORE */
    w = kstr(w, "key");
    w = kstr(w, "k");
    w = kstr(w, "value");
    w = mp_encode_array(w, 0);
    assert_int_equal(decode_hand(WIRE_STORE, w, &m), 0);
    assert_false(m.store.has_ttl);
    assert_null(m.store.publisher.p);

    /* request_id: the full u64 range, negative is malformed, a string is malformed */
    for (int variant = 0; variant < 3; variant++) {
        w = g_pl;
        w = mp_encode_map(w, 2);
        w = kstr(w, "key");
        w = kstr(w, "k");
        w = kstr(w, "request_id");
        if (variant == 0) {
            w = mp_encode_uint(w, UINT64_MAX);
        } else if (variant == 1) {
            w = mp_encode_int(w, -1);
        } else {
            w = kstr(w, "1");
        }
        int rv = decode_hand(WIRE_FIND_VALUE, w, &m);
        assert_int_equal(rv, variant == 0 ? 0 : WIRE_EMALFORMED);
        if (variant == 0) {
            assert_true(m.find_value.hdr.has_request_id);
            assert_true(m.find_value.hdr.request_id == UINT64_MAX);
        }
    }
    /* ttl above u32 is malformed */
    w = g_pl;
    w = mp_encode_map(w, 3);
    w = kstr(w, "key");
    w = kstr(w, "k");
    w = kstr(w, "value");
    w = mp_encode_nil(w);
    w = kstr(w, "ttl");
    w = mp_encode_uint(w, (uint64_t)UINT32_MAX + 1);
    assert_int_equal(decode_hand(WIRE_STORE, w, &m), WIRE_EMALFORMED);

    /* STORE_ACK: request_id is required and always written */
    w = g_pl;
    w = mp_encode_map(w, 2);
    w = kstr(w, "key");
    w = kstr(w, "k");
    w = kstr(w, "stored");
    w = mp_encode_bool(w, true);
    assert_int_equal(decode_hand(WIRE_STORE_ACK, w, &m), WIRE_EMALFORMED);
    memset(&m, 0, sizeof m);
    m.type = WIRE_STORE_ACK;
    m.store_ack.key = B("k");
    m.store_ack.hdr.request_id = 7; /* has_request_id false: written anyway */
    size_t len, used;
    uint8_t *buf = encode_or_die(&m, &len);
    wire_msg d;
    assert_int_equal(wire_decode(buf, len, NULL, &d, &used), 0);
    assert_true(d.store_ack.hdr.has_request_id);
    assert_int_equal(d.store_ack.hdr.request_id, 7);
    assert_false(d.store_ack.stored);
    free(buf);
}

static void test_names(void **state)
{
    assert_string_equal(wire_strerror(WIRE_EUNSUPPORTED_VERSION), "unsupported_version");
    assert_string_equal(wire_strerror(WIRE_EUNKNOWN_TYPE), "unknown_type");
    assert_string_equal(wire_strerror(WIRE_EFRAME_TOO_LARGE), "frame_too_large");
    assert_string_equal(wire_strerror(WIRE_EMALFORMED), "malformed");
    assert_string_equal(wire_strerror(WIRE_ELIMIT), "limit_exceeded");
    assert_string_equal(wire_strerror(WIRE_EAGAIN), "need_more_data");
    assert_string_equal(wire_strerror(WIRE_ENOMEM), "no_memory");
    assert_string_equal(wire_strerror(WIRE_ENOBUF), "buffer_too_small");
    assert_string_equal(wire_strerror(WIRE_EINVAL), "invalid_argument");
    assert_string_equal(wire_strerror(0), "ok");
    assert_string_equal(wire_strerror(-1000), "unknown_error");
    /* distinct codes */
    int codes[] = {WIRE_EAGAIN,        WIRE_EUNSUPPORTED_VERSION,
                   WIRE_EUNKNOWN_TYPE, WIRE_EFRAME_TOO_LARGE,
                   WIRE_EMALFORMED,    WIRE_ELIMIT,
                   WIRE_ENOMEM,        WIRE_ENOBUF,
                   WIRE_EINVAL};
    for (size_t i = 0; i < sizeof codes / sizeof codes[0]; i++) {
        assert_true(codes[i] < 0);
        for (size_t j = i + 1; j < sizeof codes / sizeof codes[0]; j++) {
            assert_int_not_equal(codes[i], codes[j]);
        }
    }
    assert_string_equal(wire_type_name(WIRE_PUBSUB_ROUTE), "pubsub_route");
    assert_string_equal(wire_type_name(WIRE_PUBACK), "puback");
    assert_string_equal(wire_type_name(WIRE_FIND_VALUE_REPLY), "find_value_reply");
    assert_string_equal(wire_type_name(WIRE_STORE_ACK), "store_ack");
    assert_null(wire_type_name(0x15));
    assert_null(wire_type_name(0x46));
    int known = 0;
    for (unsigned t = 0; t < 256; t++) {
        known += wire_type_known(t);
    }
    assert_int_equal(known, 19);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_roundtrip_every_type),
        cmocka_unit_test(test_decoded_views_point_into_the_frame),
        cmocka_unit_test(test_encoder_writes_bin_exactly),
        cmocka_unit_test(test_decode_str_keys_and_values),
        cmocka_unit_test(test_unknown_keys_and_nil_optionals),
        cmocka_unit_test(test_flags_and_reserved_are_ignored),
        cmocka_unit_test(test_reader_coalesced_frames_zero_copy),
        cmocka_unit_test(test_reader_split_at_every_offset),
        cmocka_unit_test(test_reader_memory_grows_with_bytes_received),
        cmocka_unit_test(test_reader_header_errors_are_immediate_and_sticky),
        cmocka_unit_test(test_frame_size_limit_is_exact),
        cmocka_unit_test(test_truncated_frames_and_payloads),
        cmocka_unit_test(test_payload_must_be_one_map),
        cmocka_unit_test(test_wrong_value_types),
        cmocka_unit_test(test_missing_keys),
        cmocka_unit_test(test_duplicate_keys),
        cmocka_unit_test(test_nesting_limit),
        cmocka_unit_test(test_element_limit),
        cmocka_unit_test(test_limits_are_validated),
        cmocka_unit_test(test_encode_errors),
        cmocka_unit_test(test_dht_keys),
        cmocka_unit_test(test_names),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
