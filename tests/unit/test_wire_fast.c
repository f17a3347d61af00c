/* tests/unit/test_wire_fast.c — the codec's fast paths (src/mesh/wire.c): the one-pass decoder,
 * the exact-size encoder, the direct PUBLISH writer and wire_encoded_size. Each test states a
 * contract the fast path must keep; expected bytes are built with msgpuck, independently of
 * the encoder. (tests/unit/test_wire_diff.c compares the codec with the one it replaced.) */
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

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;

static uint64_t rnd(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return rng_state;
}

static uint8_t pool[70000]; /* random bytes the messages point into */

static void pool_fill(void)
{
    for (size_t i = 0; i < sizeof pool; i++) {
        pool[i] = (uint8_t)rnd();
    }
}

/* A length on either side of every msgpack size class boundary, or a small random one. */
static size_t edge_len(void)
{
    static const size_t edges[] = {0, 1, 15, 16, 31, 32, 255, 256, 65535, 65536};
    uint64_t r = rnd();
    return (r & 3) == 0 ? edges[(r >> 2) % (sizeof edges / sizeof edges[0])] : (r >> 8) % 64;
}

static wire_bytes rbytes(void)
{
    size_t n = edge_len();
    wire_bytes b = {pool + rnd() % (sizeof pool - n), n};
    return b;
}

static wire_bytes B(const char *s)
{
    wire_bytes b = {(const uint8_t *)s, strlen(s)};
    return b;
}

static bool bytes_is(wire_bytes a, const void *p, size_t len)
{
    return a.p != NULL && a.len == len && (len == 0 || memcmp(a.p, p, len) == 0);
}

/* A PUBLISH the way wire.h documents it, built with msgpuck: map of 5, keys in table order,
 * keys and strings as bin, qos as a positive fixint, retain as bool. */
static size_t ref_publish(const wire_publish *p, char *out)
{
    char *d = out;
    d = mp_encode_map(d, 5);
    d = mp_encode_bin(d, "topic", 5);
    d = mp_encode_bin(d, (const char *)p->topic.p, (uint32_t)p->topic.len);
    d = mp_encode_bin(d, "payload", 7);
    /* a NULL payload is an empty one (and memcpy may not be given NULL) */
    d = mp_encode_bin(d, p->payload.p != NULL ? (const char *)p->payload.p : "",
                      (uint32_t)p->payload.len);
    d = mp_encode_bin(d, "qos", 3);
    d = mp_encode_uint(d, p->qos);
    d = mp_encode_bin(d, "retain", 6);
    d = mp_encode_bool(d, p->retain);
    d = mp_encode_bin(d, "message_id", 10);
    d = mp_encode_bin(d, (const char *)p->message_id.p, (uint32_t)p->message_id.len);
    return (size_t)(d - out);
}

static wire_msg a_publish(void)
{
    wire_msg m;
    memset(&m, 0, sizeof m);
    m.type = WIRE_PUBLISH;
    m.publish.topic = B("sensors.room1.temp");
    m.publish.payload = B("0123456789abcdef");
    m.publish.qos = 1;
    m.publish.retain = true;
    m.publish.message_id = B("mmmmmmmmmmmmmmmm");
    return m;
}

/* ---- encoding --------------------------------------------------------------------------- */

/* The PUBLISH writer gives the documented bytes, at the top of a frame and nested in a
 * PUBSUB_ROUTE, for lengths across every size class, and they decode back. */
static void test_publish_writer_matches_reference(void **state)
{
    (void)state;
    static char want[3 * 65600];
    pool_fill();
    for (int i = 0; i < 3000; i++) {
        wire_msg m;
        memset(&m, 0, sizeof m);
        m.type = WIRE_PUBLISH;
        m.publish.topic = rbytes();
        m.publish.payload = rbytes();
        m.publish.qos = (uint8_t)(rnd() % 3);
        m.publish.retain = rnd() & 1;
        m.publish.message_id = rbytes();
        if (rnd() % 8 == 0) {
            m.publish.payload.p = NULL; /* an empty required string may be written from NULL */
            m.publish.payload.len = 0;
        }
        size_t wl = ref_publish(&m.publish, want);

        uint8_t *f;
        size_t len;
        assert_int_equal(wire_encode_alloc(&m, &f, &len), WIRE_OK);
        assert_int_equal(len, WIRE_HEADER_LEN + wl);
        assert_memory_equal(f + WIRE_HEADER_LEN, want, wl);
        assert_int_equal(wire_encoded_size(&m), len);

        wire_msg r;
        memset(&r, 0, sizeof r);
        r.type = WIRE_PUBSUB_ROUTE;
        r.pubsub_route.destination_node_id = B("d");
        r.pubsub_route.source_node_id = B("s");
        r.pubsub_route.topic = m.publish.topic;
        r.pubsub_route.payload = m.publish;
        uint8_t *rf;
        size_t rl;
        assert_int_equal(wire_encode_alloc(&r, &rf, &rl), WIRE_OK);
        /* the nested map is the last value of the route: its bytes end the frame */
        assert_true(rl > wl);
        assert_memory_equal(rf + rl - wl, want, wl);
        free(rf);

        wire_msg d;
        size_t used;
        assert_int_equal(wire_decode(f, len, NULL, &d, &used), WIRE_OK);
        assert_int_equal(used, len);
        assert_true(bytes_is(d.publish.topic, m.publish.topic.p, m.publish.topic.len));
        assert_true(bytes_is(d.publish.payload, m.publish.payload.p, m.publish.payload.len));
        assert_true(
            bytes_is(d.publish.message_id, m.publish.message_id.p, m.publish.message_id.len));
        assert_int_equal(d.publish.qos, m.publish.qos);
        assert_int_equal(d.publish.retain, m.publish.retain);
        free(f);
    }
}

/* wire_encoded_size is the exact size: a buffer of that size takes the frame, one byte less
 * is WIRE_ENOBUF with the size reported; and it is 0 exactly when wire_encode refuses. */
static void test_encoded_size_is_exact(void **state)
{
    (void)state;
    static uint8_t buf[300000];
    pool_fill();
    for (int i = 0; i < 500; i++) {
        wire_msg msgs[4];
        memset(msgs, 0, sizeof msgs);
        msgs[0] = a_publish();
        msgs[0].publish.payload = rbytes();
        msgs[1].type = WIRE_CALL;
        msgs[1].call.call_id = rbytes();
        msgs[1].call.procedure = rbytes();
        msgs[1].call.args = rbytes();
        msgs[1].call.realm = rbytes();
        msgs[1].call.has_timeout = rnd() & 1;
        msgs[1].call.timeout_ms = (uint32_t)rnd();
        msgs[2].type = WIRE_REPLY;
        msgs[2].reply.call_id = rbytes();
        msgs[2].reply.is_error = rnd() & 1;
        msgs[2].reply.result = rbytes();
        msgs[2].reply.error.code = rbytes();
        msgs[2].reply.error.message = rbytes();
        msgs[3].type = WIRE_PING;
        msgs[3].ping.timestamp = (int64_t)rnd() >> (rnd() % 64);
        for (int k = 0; k < 4; k++) {
            size_t need = wire_encoded_size(&msgs[k]), len = 0;
            assert_true(need > WIRE_HEADER_LEN && need <= sizeof buf);
            assert_int_equal(wire_encode(&msgs[k], NULL, 0, &len), WIRE_ENOBUF);
            assert_int_equal(len, need);
            assert_int_equal(wire_encode(&msgs[k], buf, need - 1, &len), WIRE_ENOBUF);
            assert_int_equal(len, need);
            assert_int_equal(wire_encode(&msgs[k], buf, need, &len), WIRE_OK);
            assert_int_equal(len, need);
            /* the header's length is the rest of the frame */
            uint32_t plen =
                (uint32_t)buf[4] << 24 | (uint32_t)buf[5] << 16 | (uint32_t)buf[6] << 8 | buf[7];
            assert_int_equal(plen, need - WIRE_HEADER_LEN);
            wire_msg d;
            size_t used;
            assert_int_equal(wire_decode(buf, len, NULL, &d, &used), WIRE_OK);
            assert_int_equal(used, need);
        }
    }

    /* refusals: size 0, and wire_encode says WIRE_EINVAL with *len 0 */
    wire_msg bad[6];
    for (int k = 0; k < 6; k++) {
        bad[k] = a_publish();
    }
    bad[0].publish.qos = 3;
    bad[1].publish.topic.p = NULL; /* NULL with a length */
    bad[2].type = 0x99;
    memset(&bad[3], 0, sizeof bad[3]);
    bad[3].type = WIRE_STORE;
    bad[3].store.key = B("k");
    bad[3].store.value = B("\x92\x01"); /* an array of 2 with one element */
    memset(&bad[4], 0, sizeof bad[4]);
    bad[4].type = WIRE_RPC_ROUTE;
    bad[4].rpc_route.payload_type = 3;
    memset(&bad[5], 0, sizeof bad[5]);
    bad[5].type = WIRE_SUBSCRIBE;
    bad[5].subscribe.topics.count = 2; /* and no elements */
    for (int k = 0; k < 6; k++) {
        size_t len = 123;
        assert_int_equal(wire_encoded_size(&bad[k]), 0);
        assert_int_equal(wire_encode(&bad[k], buf, sizeof buf, &len), WIRE_EINVAL);
        assert_int_equal(len, 0);
        uint8_t *out = (uint8_t *)1;
        assert_int_equal(wire_encode_alloc(&bad[k], &out, &len), WIRE_EINVAL);
        assert_null(out);
        assert_int_equal(len, 0);
    }
}

/* ---- decoding --------------------------------------------------------------------------- */

static const char *const PUB_KEYS[5] = {"topic", "payload", "qos", "retain", "message_id"};

/* Writes PUBLISH key k (index into PUB_KEYS) and its value; str keys when `str`. */
static char *put_pub_pair(char *d, int k, bool str)
{
    const char *key = PUB_KEYS[k];
    d = str ? mp_encode_str(d, key, (uint32_t)strlen(key))
            : mp_encode_bin(d, key, (uint32_t)strlen(key));
    switch (k) {
    case 0: return mp_encode_str(d, "a.b", 3);
    case 1: return mp_encode_bin(d, "xyz", 3);
    case 2: return mp_encode_uint(d, 2);
    case 3: return mp_encode_bool(d, true);
    default: return mp_encode_bin(d, "0123456789abcdef", 16);
    }
}

static void assert_pub_decoded(const wire_msg *m)
{
    assert_int_equal(m->type, WIRE_PUBLISH);
    assert_true(bytes_is(m->publish.topic, "a.b", 3));
    assert_true(bytes_is(m->publish.payload, "xyz", 3));
    assert_int_equal(m->publish.qos, 2);
    assert_true(m->publish.retain);
    assert_true(bytes_is(m->publish.message_id, "0123456789abcdef", 16));
}

/* Keys in any order (all 120 permutations), as str or bin, decode to the same message. */
static void test_decode_any_key_order(void **state)
{
    (void)state;
    int perm[5] = {0, 1, 2, 3, 4};
    char buf[256];
    for (int n = 0; n < 120; n++) {
        /* the n-th permutation (factorial number system) */
        int avail[5] = {0, 1, 2, 3, 4}, left = 5, x = n;
        for (int i = 0; i < 5; i++) {
            int f = 1;
            for (int j = 2; j < left; j++) {
                f *= j;
            }
            int pick = x / f;
            x %= f;
            perm[i] = avail[pick];
            for (int j = pick; j < left - 1; j++) {
                avail[j] = avail[j + 1];
            }
            left--;
        }
        char *d = mp_encode_map(buf, 5);
        for (int i = 0; i < 5; i++) {
            d = put_pub_pair(d, perm[i], (n + i) % 2 == 0);
        }
        wire_msg m;
        assert_int_equal(
            wire_decode_payload(WIRE_PUBLISH, (const uint8_t *)buf, (size_t)(d - buf), NULL, &m),
            WIRE_OK);
        assert_pub_decoded(&m);
    }
}

/* Three pairs the PUBLISH table does not know: an unknown key whose value nests 3 deep and
 * holds every other kind of value, an integer key, an array key. */
static char *put_extras(char *d)
{
    d = mp_encode_str(d, "future", 6);
    d = mp_encode_map(d, 2);
    d = mp_encode_uint(d, 1);
    d = mp_encode_array(d, 3);
    d = mp_encode_double(d, 1.5);
    d = mp_encode_nil(d);
    static const uint8_t ext8[] = {0xc7, 3, 7, 'a', 'b', 'c'}; /* ext 8: 3 bytes, type 7 */
    memcpy(d, ext8, sizeof ext8);
    d += sizeof ext8;
    d = mp_encode_str(d, "k", 1);
    d = mp_encode_int(d, -100000);
    d = mp_encode_uint(d, 42);
    d = mp_encode_str(d, "topic", 5);
    d = mp_encode_array(d, 1);
    d = mp_encode_bin(d, "topic", 5);
    return mp_encode_bin(d, "x", 1);
}

/* Unknown keys (with nested values of every kind) and keys that are no strings are skipped
 * wherever they are; their values are still checked against the bounds and the limits. */
static void test_decode_skips_unknown_and_nonstring_keys(void **state)
{
    (void)state;
    char buf[512];
    for (int at = 0; at <= 5; at++) {
        char *d = mp_encode_map(buf, 8);
        for (int k = 0; k <= 5; k++) {
            if (k == at) {
                d = put_extras(d);
            }
            if (k < 5) {
                d = put_pub_pair(d, k, false);
            }
        }
        size_t len = (size_t)(d - buf);
        wire_msg m;
        assert_int_equal(wire_decode_payload(WIRE_PUBLISH, (const uint8_t *)buf, len, NULL, &m),
                         WIRE_OK);
        assert_pub_decoded(&m);

        /* the skipped value nests 3 deep: max_depth 2 refuses it */
        wire_limits lim;
        wire_limits_default(&lim);
        lim.max_depth = 2;
        assert_int_equal(wire_decode_payload(WIRE_PUBLISH, (const uint8_t *)buf, len, &lim, &m),
                         WIRE_ELIMIT);
        assert_int_equal(m.type, WIRE_PUBLISH);
        assert_null(m.publish.topic.p);
        /* cut inside the skipped values: malformed, never a read past the end */
        for (size_t cut = 1; cut < len; cut++) {
            assert_int_equal(wire_decode_payload(WIRE_PUBLISH, (const uint8_t *)buf, cut, NULL, &m),
                             WIRE_EMALFORMED);
        }
    }
}

/* A known key twice is refused wherever the two are (the second even if the first was an
 * optional nil); an unknown key twice is not (it is not read). */
static void test_decode_duplicates(void **state)
{
    (void)state;
    char buf[256];
    wire_msg m;
    for (int k = 0; k < 5; k++) {
        for (int at = 0; at <= 5; at++) {
            char *d = mp_encode_map(buf, 6);
            for (int i = 0; i < 5; i++) {
                if (i == at) {
                    d = put_pub_pair(d, k, true);
                }
                d = put_pub_pair(d, i, false);
            }
            if (at == 5) {
                d = put_pub_pair(d, k, true);
            }
            assert_int_equal(wire_decode_payload(WIRE_PUBLISH, (const uint8_t *)buf,
                                                 (size_t)(d - buf), NULL, &m),
                             WIRE_EMALFORMED);
        }
    }
    char *d = mp_encode_map(buf, 7);
    d = mp_encode_str(d, "zz", 2);
    d = mp_encode_uint(d, 1);
    for (int i = 0; i < 5; i++) {
        d = put_pub_pair(d, i, false);
    }
    d = mp_encode_str(d, "zz", 2);
    d = mp_encode_uint(d, 2);
    assert_int_equal(
        wire_decode_payload(WIRE_PUBLISH, (const uint8_t *)buf, (size_t)(d - buf), NULL, &m),
        WIRE_OK);
    assert_pub_decoded(&m);

    /* CALL: timeout nil, then timeout 5 */
    d = mp_encode_map(buf, 6);
    d = mp_encode_bin(d, "call_id", 7);
    d = mp_encode_bin(d, "c", 1);
    d = mp_encode_bin(d, "procedure", 9);
    d = mp_encode_bin(d, "p", 1);
    d = mp_encode_bin(d, "args", 4);
    d = mp_encode_bin(d, "{}", 2);
    d = mp_encode_bin(d, "realm", 5);
    d = mp_encode_bin(d, "r", 1);
    d = mp_encode_bin(d, "timeout", 7);
    d = mp_encode_nil(d);
    char *last = d;
    d = mp_encode_bin(d, "timeout", 7);
    d = mp_encode_uint(d, 5);
    assert_int_equal(
        wire_decode_payload(WIRE_CALL, (const uint8_t *)buf, (size_t)(d - buf), NULL, &m),
        WIRE_EMALFORMED);
    /* without the second one: nil is absent */
    buf[0] = (char)0x85;
    assert_int_equal(
        wire_decode_payload(WIRE_CALL, (const uint8_t *)buf, (size_t)(last - buf), NULL, &m),
        WIRE_OK);
    assert_false(m.call.has_timeout);
}

/* The error is that of "validate the whole payload, then decode": a problem with the bytes or
 * the limits anywhere wins over a typed problem earlier in the payload. */
static void test_decode_error_precedence(void **state)
{
    (void)state;
    char buf[256];
    wire_msg m;
    wire_limits lim;
    wire_limits_default(&lim);
    lim.max_depth = 2;
    lim.max_elems = 6;

    /* qos is a string (typed), then an unknown key nests 3 deep (limit) */
    char *d = mp_encode_map(buf, 6);
    d = mp_encode_bin(d, "qos", 3);
    d = mp_encode_str(d, "one", 3);
    for (int i = 0; i < 5; i++) {
        if (i != 2) {
            d = put_pub_pair(d, i, false);
        }
    }
    d = mp_encode_bin(d, "x", 1);
    d = mp_encode_array(d, 1);
    d = mp_encode_array(d, 0);
    size_t len = (size_t)(d - buf);
    assert_int_equal(wire_decode_payload(WIRE_PUBLISH, (const uint8_t *)buf, len, &lim, &m),
                     WIRE_ELIMIT);
    lim.max_depth = 3; /* now only the typed problem is left */
    assert_int_equal(wire_decode_payload(WIRE_PUBLISH, (const uint8_t *)buf, len, &lim, &m),
                     WIRE_EMALFORMED);
    /* a missing key (typed), then an array over max_elems */
    lim.max_elems = 2;
    d = mp_encode_map(buf, 2);
    d = mp_encode_bin(d, "topic", 5);
    d = mp_encode_bin(d, "t", 1);
    d = mp_encode_bin(d, "y", 1);
    d = mp_encode_array(d, 3);
    d = mp_encode_uint(d, 1);
    d = mp_encode_uint(d, 2);
    d = mp_encode_uint(d, 3);
    assert_int_equal(
        wire_decode_payload(WIRE_PUBLISH, (const uint8_t *)buf, (size_t)(d - buf), &lim, &m),
        WIRE_ELIMIT);
    /* a duplicate key (typed), then a cut string (bytes): malformed either way, and a limit
     * problem after the cut is never reached */
    d = mp_encode_map(buf, 3);
    d = put_pub_pair(d, 0, false);
    d = put_pub_pair(d, 0, false);
    d = mp_encode_bin(d, "z", 1);
    d = mp_encode_strl(d, 40);
    assert_int_equal(
        wire_decode_payload(WIRE_PUBLISH, (const uint8_t *)buf, (size_t)(d - buf), NULL, &m),
        WIRE_EMALFORMED);
}

/* Integers in any msgpack form decode by value; out-of-range and other types are refused. */
static void test_decode_integer_forms(void **state)
{
    (void)state;
    struct {
        const char *qos; /* the qos value's bytes */
        size_t len;
        int rv;
        uint8_t want;
    } cases[] = {
        {"\x02", 1, WIRE_OK, 2},
        {"\xcc\x01", 2, WIRE_OK, 1},
        {"\xcd\x00\x02", 3, WIRE_OK, 2},
        {"\xce\x00\x00\x00\x00", 5, WIRE_OK, 0},
        {"\xcf\x00\x00\x00\x00\x00\x00\x00\x01", 9, WIRE_OK, 1},
        {"\xd0\x02", 2, WIRE_OK, 2},
        {"\xd1\x00\x01", 3, WIRE_OK, 1},
        {"\xd3\x00\x00\x00\x00\x00\x00\x00\x00", 9, WIRE_OK, 0},
        {"\x03", 1, WIRE_EMALFORMED, 0},
        {"\xff", 1, WIRE_EMALFORMED, 0},         /* -1 */
        {"\xd0\xff", 2, WIRE_EMALFORMED, 0},     /* -1 */
        {"\xcd\x01\x00", 3, WIRE_EMALFORMED, 0}, /* 256 */
        {"\xc3", 1, WIRE_EMALFORMED, 0},
        {"\xca\x00\x00\x00\x00", 5, WIRE_EMALFORMED, 0}, /* float 0 */
        {"\xc0", 1, WIRE_EMALFORMED, 0},                 /* nil: qos is required */
    };
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        char buf[128];
        char *d = mp_encode_map(buf, 5);
        for (int i = 0; i < 5; i++) {
            if (i == 2) {
                d = mp_encode_bin(d, "qos", 3);
                memcpy(d, cases[c].qos, cases[c].len);
                d += cases[c].len;
            } else {
                d = put_pub_pair(d, i, false);
            }
        }
        wire_msg m;
        int rv =
            wire_decode_payload(WIRE_PUBLISH, (const uint8_t *)buf, (size_t)(d - buf), NULL, &m);
        assert_int_equal(rv, cases[c].rv);
        assert_int_equal(m.publish.qos, cases[c].want);
    }
}

/* CALL's timeout is a u32 in any integer form; nil is absent; larger or negative is refused.
 * (Exercises the CALL fast path: keys in table order.) */
static void test_decode_call_timeout_range(void **state)
{
    (void)state;
    struct {
        const char *v;
        size_t len;
        int rv;
        bool has;
        uint32_t want;
    } cases[] = {
        {"\x05", 1, WIRE_OK, true, 5},
        {"\xce\xff\xff\xff\xff", 5, WIRE_OK, true, UINT32_MAX},
        {"\xd2\x00\x00\x00\x07", 5, WIRE_OK, true, 7},
        {"\xc0", 1, WIRE_OK, false, 0},
        {"\xcf\x00\x00\x00\x01\x00\x00\x00\x00", 9, WIRE_EMALFORMED, false, 0},
        {"\xd3\x00\x00\x00\x01\x00\x00\x00\x00", 9, WIRE_EMALFORMED, false, 0},
        {"\xff", 1, WIRE_EMALFORMED, false, 0},
        {"\xa1x", 2, WIRE_EMALFORMED, false, 0},
    };
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        for (int type = 0; type < 2; type++) {
            char buf[128];
            char *d = mp_encode_map(buf, 5);
            d = mp_encode_bin(d, "call_id", 7);
            d = mp_encode_bin(d, "0123456789abcdef", 16);
            d = mp_encode_bin(d, "procedure", 9);
            d = mp_encode_str(d, "a.b", 3);
            d = mp_encode_bin(d, "args", 4);
            d = mp_encode_bin(d, "[]", 2);
            d = mp_encode_bin(d, "realm", 5);
            d = mp_encode_bin(d, "r", 1);
            d = mp_encode_bin(d, "timeout", 7);
            memcpy(d, cases[c].v, cases[c].len);
            d += cases[c].len;
            wire_msg m;
            unsigned t = type == 0 ? WIRE_CALL : WIRE_CAST;
            assert_int_equal(
                wire_decode_payload(t, (const uint8_t *)buf, (size_t)(d - buf), NULL, &m),
                cases[c].rv);
            assert_int_equal(m.call.has_timeout, cases[c].has);
            assert_int_equal(m.call.timeout_ms, cases[c].want);
            if (cases[c].rv == WIRE_OK) {
                assert_true(bytes_is(m.call.procedure, "a.b", 3));
                assert_true(bytes_is(m.call.realm, "r", 1));
            }
        }
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_publish_writer_matches_reference),
        cmocka_unit_test(test_encoded_size_is_exact),
        cmocka_unit_test(test_decode_any_key_order),
        cmocka_unit_test(test_decode_skips_unknown_and_nonstring_keys),
        cmocka_unit_test(test_decode_duplicates),
        cmocka_unit_test(test_decode_error_precedence),
        cmocka_unit_test(test_decode_integer_forms),
        cmocka_unit_test(test_decode_call_timeout_range),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
