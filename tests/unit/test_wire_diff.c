/* tests/unit/test_wire_diff.c — the frame codec against the one it replaced (the reference kept
 * in fuzz/fuzz_wire_diff.c, included here): for random messages of every type, both encoders
 * give the same code and bytes; for their frames and for hundreds of thousands of mutations
 * of them (bit flips, msgpack type bytes, cuts, insertions, deletions, spliced copies) under
 * default and small limits, both decoders give the same code and the same message. The
 * generator is seeded, so a run is reproducible. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <msgpuck.h>

#include "../../fuzz/fuzz_wire_diff.c" /* NOLINT(bugprone-suspicious-include): the reference */

static uint64_t rng_state = 0x2545f4914f6cdd1dull;

static uint64_t rnd(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return rng_state;
}

static uint8_t pool[70000];

/* ---- random messages -------------------------------------------------------------------- */

static size_t edge_len(void)
{
    static const size_t edges[] = {0, 1, 15, 16, 31, 32, 255, 256, 65535, 65536};
    uint64_t r = rnd();
    if ((r & 15) == 0) {
        return edges[(r >> 4) % (sizeof edges / sizeof edges[0])];
    }
    return (r >> 8) % 24;
}

/* Mostly valid bytes; now and then NULL with a length (unencodable) or an absent optional. */
static wire_bytes rb(bool optional)
{
    size_t n = edge_len();
    wire_bytes b = {pool + rnd() % (sizeof pool - n), n};
    uint64_t r = rnd() % 64;
    if (r == 0) {
        b.p = NULL;
        b.len = 1 + n;
    } else if (optional && r < 16) {
        b.p = NULL;
        b.len = 0;
    }
    return b;
}

static int64_t rint64(void)
{
    static const int64_t edges[] = {INT64_MIN, INT32_MIN - 1LL,
                                    INT32_MIN, INT16_MIN - 1,
                                    INT16_MIN, INT8_MIN - 1,
                                    INT8_MIN,  -33,
                                    -32,       -1,
                                    0,         127,
                                    128,       255,
                                    256,       65535,
                                    65536,     UINT32_MAX,
                                    1LL << 32, INT64_MAX};
    uint64_t r = rnd();
    if (r & 1) {
        return edges[(r >> 1) % (sizeof edges / sizeof edges[0])];
    }
    return (int64_t)(rnd() >> (rnd() % 64));
}

/* Raw msgpack values for STORE / FIND_VALUE_REPLY; the last ones are not one valid value. */
static const struct {
    const char *p;
    size_t len;
} RAWS[] = {
    {"\xc0", 1},
    {"\x93\x01\xa1x\xc3", 5},
    {"\x81\xa1k\x92\x01\x02", 6},
    {"\xc4\x00", 2},
    {"\xcb\x3f\xf8\x00\x00\x00\x00\x00\x00", 9},
    {"\xd4\x01\x02", 3},
    {"\x91", 1},     /* cut */
    {"\x01\x02", 2}, /* two values */
    {"\xc1", 1},     /* never used */
};

static wire_bytes rraw(void)
{
    size_t n = sizeof RAWS / sizeof RAWS[0];
    size_t k = rnd() % 32 == 0 ? rnd() % n : rnd() % (n - 3);
    wire_bytes b = {(const uint8_t *)RAWS[k].p, RAWS[k].len};
    return b;
}

static wire_bytes items[4][8];
static wire_node nodes[4][6];

static wire_bytes_list rblist(int slot)
{
    wire_bytes_list l = {(uint32_t)(rnd() % 5), items[slot], NULL};
    for (uint32_t i = 0; i < l.count; i++) {
        items[slot][i] = rb(false);
    }
    if (rnd() % 64 == 0) {
        l.items = NULL; /* a count and no elements */
    }
    return l;
}

static wire_node_list rnlist(int slot)
{
    wire_node_list l = {(uint32_t)(rnd() % 4), nodes[slot], NULL};
    for (uint32_t i = 0; i < l.count; i++) {
        nodes[slot][i].node_id = rb(false);
        nodes[slot][i].address = rb(false);
        nodes[slot][i].has_last_seen = rnd() & 1;
        nodes[slot][i].last_seen = rint64();
    }
    return l;
}

static void rhdr(wire_dht_hdr *h)
{
    h->has_request_id = rnd() & 1;
    h->request_id = (uint64_t)rint64();
    h->sender_id = rb(true);
    h->sender_address = rb(true);
}

static uint8_t rsel(void) /* 1 or 2; now and then a bad selector */
{
    uint64_t r = rnd() % 40;
    return r == 0 ? 0 : r == 1 ? 3 : (uint8_t)(1 + r % 2);
}

static void rcall(wire_call *c, bool cast)
{
    c->call_id = rb(cast);
    c->procedure = rb(false);
    c->args = rb(false);
    c->realm = rb(false);
    c->has_timeout = rnd() & 1;
    c->timeout_ms = (uint32_t)rint64();
}

static void rreply(wire_reply *r)
{
    r->call_id = rb(false);
    r->is_error = rnd() & 1;
    r->result = rb(false);
    r->error.code = rb(false);
    r->error.message = rb(false);
}

static void rpublish(wire_publish *p)
{
    p->topic = rb(false);
    p->payload = rb(false);
    p->qos = (uint8_t)(rnd() % 40 == 0 ? 3 : rnd() % 3);
    p->retain = rnd() & 1;
    p->message_id = rb(false);
}

static void rmsg(wire_msg *m, uint8_t type)
{
    memset(m, 0, sizeof *m);
    m->type = type;
    switch (type) {
    case WIRE_CONNECT:
        m->connect.version = rb(false);
        m->connect.node_id = rb(false);
        m->connect.realm_id = rb(false);
        m->connect.capabilities = rblist(0);
        m->connect.endpoint = rb(true);
        break;
    case WIRE_DISCONNECT:
        m->disconnect.reason = rb(false);
        m->disconnect.message = rb(false);
        break;
    case WIRE_PING: m->ping.timestamp = rint64(); break;
    case WIRE_PONG:
        m->pong.timestamp = rint64();
        m->pong.server_time = rint64();
        break;
    case WIRE_PUBLISH: rpublish(&m->publish); break;
    case WIRE_SUBSCRIBE:
        m->subscribe.topics = rblist(1);
        m->subscribe.qos = (uint8_t)(rnd() % 40 == 0 ? 7 : rnd() % 3);
        break;
    case WIRE_UNSUBSCRIBE: m->unsubscribe.topics = rblist(2); break;
    case WIRE_PUBSUB_ROUTE:
        m->pubsub_route.destination_node_id = rb(false);
        m->pubsub_route.source_node_id = rb(false);
        m->pubsub_route.hop_count = (uint32_t)rint64();
        m->pubsub_route.max_hops = (uint32_t)rint64();
        m->pubsub_route.topic = rb(false);
        rpublish(&m->pubsub_route.payload);
        break;
    case WIRE_PUBACK: m->puback.message_id = rb(false); break;
    case WIRE_CALL: rcall(&m->call, false); break;
    case WIRE_CAST: rcall(&m->cast, true); break;
    case WIRE_REPLY: rreply(&m->reply); break;
    case WIRE_RPC_ROUTE:
        m->rpc_route.destination_node_id = rb(false);
        m->rpc_route.source_node_id = rb(false);
        m->rpc_route.hop_count = (uint32_t)rint64();
        m->rpc_route.max_hops = (uint32_t)rint64();
        m->rpc_route.payload_type = rsel();
        rcall(&m->rpc_route.call, false);
        rreply(&m->rpc_route.reply);
        break;
    case WIRE_FIND_NODE:
        m->find_node.target = rb(false);
        rhdr(&m->find_node.hdr);
        break;
    case WIRE_FIND_NODE_REPLY:
        m->find_node_reply.nodes = rnlist(0);
        rhdr(&m->find_node_reply.hdr);
        break;
    case WIRE_STORE:
        m->store.key = rb(false);
        m->store.value = rraw();
        rhdr(&m->store.hdr);
        m->store.has_ttl = rnd() & 1;
        m->store.ttl_ms = (uint32_t)rint64();
        m->store.publisher = rb(true);
        break;
    case WIRE_FIND_VALUE:
        m->find_value.key = rb(false);
        rhdr(&m->find_value.hdr);
        break;
    case WIRE_FIND_VALUE_REPLY:
        m->find_value_reply.result = rsel();
        m->find_value_reply.value = rraw();
        m->find_value_reply.nodes = rnlist(1);
        rhdr(&m->find_value_reply.hdr);
        break;
    case WIRE_STORE_ACK:
        m->store_ack.key = rb(false);
        m->store_ack.stored = rnd() & 1;
        rhdr(&m->store_ack.hdr);
        break;
    default: break;
    }
}

/* ---- mutations -------------------------------------------------------------------------- */

static const uint8_t INTERESTING[] = {
    0x00, 0x01, 0x02, 0x03, 0x7f, 0x80, 0x81, 0x85, 0x8f, 0x90, 0x91, 0x9f, 0xa0, 0xa5, 0xbf, 0xc0,
    0xc1, 0xc2, 0xc3, 0xc4, 0xc5, 0xc6, 0xc7, 0xc8, 0xc9, 0xca, 0xcb, 0xcc, 0xcd, 0xce, 0xcf, 0xd0,
    0xd1, 0xd2, 0xd3, 0xd4, 0xd8, 0xd9, 0xda, 0xdb, 0xdc, 0xdd, 0xde, 0xdf, 0xe0, 0xff};

/* One random edit of in[0..len) into out; returns the new length (<= cap). */
static size_t mutate(const uint8_t *in, size_t len, uint8_t *out, size_t cap)
{
    memcpy(out, in, len);
    if (len <= 2) {
        return len;
    }
    size_t body = len - 2; /* bytes 0 and 1 pick the type and the limits */
    size_t at = 2 + rnd() % body;
    switch (rnd() % 9) {
    case 8: { /* one byte (a fixint, bool, nil or type byte) becomes an integer of another size */
        static const struct {
            const char *p;
            size_t len;
        } INTS[] = {
            {"\xcf\x00\x00\x00\x01\x00\x00\x00\x00", 9}, /* 2^32 */
            {"\xcf\x80\x00\x00\x00\x00\x00\x00\x00", 9}, /* 2^63 */
            {"\xce\xff\xff\xff\xff", 5},                 /* 2^32 - 1 */
            {"\xd3\x80\x00\x00\x00\x00\x00\x00\x00", 9}, /* INT64_MIN */
            {"\xd3\x7f\xff\xff\xff\xff\xff\xff\xff", 9}, /* INT64_MAX */
            {"\xd2\xff\xff\xff\xff", 5},                 /* -1 */
            {"\xd0\x02", 2},
            {"\xcd\x00\x03", 3},
        };
        size_t k = rnd() % (sizeof INTS / sizeof INTS[0]);
        for (int tries = 0; tries < 16; tries++) { /* prefer a byte that is a whole value */
            uint8_t c = out[at];
            if (c <= 0x7f || (c >= 0xc0 && c <= 0xc3) || c >= 0xe0) {
                break;
            }
            at = 2 + rnd() % body;
        }
        if (len - 1 + INTS[k].len > cap) {
            return len;
        }
        memmove(out + at + INTS[k].len, out + at + 1, len - at - 1);
        memcpy(out + at, INTS[k].p, INTS[k].len);
        return len - 1 + INTS[k].len;
    }
    case 0: out[at] ^= (uint8_t)(1u << (rnd() % 8)); return len;
    case 1: out[at] = INTERESTING[rnd() % sizeof INTERESTING]; return len;
    case 2: return at; /* cut */
    case 3: {          /* insert 1..4 bytes */
        size_t k = 1 + rnd() % 4;
        if (len + k > cap) {
            return len;
        }
        memmove(out + at + k, out + at, len - at);
        for (size_t i = 0; i < k; i++) {
            out[at + i] = (rnd() & 1) ? INTERESTING[rnd() % sizeof INTERESTING] : (uint8_t)rnd();
        }
        return len + k;
    }
    case 4: { /* delete 1..8 bytes */
        size_t k = 1 + rnd() % 8;
        if (k > len - at) {
            k = len - at;
        }
        memmove(out + at, out + at + k, len - at - k);
        return len - k;
    }
    case 5: { /* copy a chunk over another place (duplicated keys, shifted values) */
        size_t from = 2 + rnd() % body, k = 1 + rnd() % 24;
        if (k > len - from) {
            k = len - from;
        }
        if (at + k > cap) {
            return len;
        }
        memmove(out + at + k, out + at, len - at);
        memmove(out + at, in + from, k);
        return len + k;
    }
    case 6: out[1] = (uint8_t)rnd(); return len; /* other limits */
    default:                                     /* a big-endian length or count byte */
        out[at] = (uint8_t)(rnd() % 3 == 0 ? 0xff : rnd() % 8);
        return len;
    }
}

/* One edit of the payload map's pairs (in[2..len) must be a valid payload): a pair copied to
 * another place (a duplicate key), a pair dropped, two pairs swapped, all reversed, an unknown
 * pair added, or the same map under a longer header (map 16 / map 32); the count follows. */
static size_t mutate_pairs(const uint8_t *in, size_t len, uint8_t *out, size_t cap)
{
    enum { MAXP = 16 };
    const char *p = (const char *)in + 2;
    if (len < 3 || mp_typeof(*p) != MP_MAP) {
        memcpy(out, in, len);
        return len;
    }
    uint32_t n = mp_decode_map(&p);
    if (n > MAXP) {
        memcpy(out, in, len);
        return len;
    }
    const char *at[MAXP + 1];
    for (uint32_t i = 0; i < n; i++) {
        at[i] = p;
        mp_next(&p);
        mp_next(&p);
    }
    at[n] = p;
    int order[MAXP + 2];
    int m = 0;
    for (uint32_t i = 0; i < n; i++) {
        order[m++] = (int)i;
    }
    int op = (int)(rnd() % 6);
    bool longhdr = false, extra = false;
    if (op == 0 && n > 0) { /* duplicate */
        int from = (int)(rnd() % n), to = (int)(rnd() % (n + 1));
        memmove(order + to + 1, order + to, (size_t)(m - to) * sizeof order[0]);
        order[to] = from;
        m++;
    } else if (op == 1 && n > 0) { /* drop */
        int k = (int)(rnd() % n);
        memmove(order + k, order + k + 1, (size_t)(m - k - 1) * sizeof order[0]);
        m--;
    } else if (op == 2 && n > 1) { /* swap */
        int a = (int)(rnd() % n), b = (int)(rnd() % n), t = order[a];
        order[a] = order[b];
        order[b] = t;
    } else if (op == 3) { /* reverse */
        for (int i = 0; i < m / 2; i++) {
            int t = order[i];
            order[i] = order[m - 1 - i];
            order[m - 1 - i] = t;
        }
    } else if (op == 4) {
        extra = true;
    } else {
        longhdr = true;
    }
    char *d = (char *)out;
    out[0] = in[0];
    out[1] = in[1];
    d += 2;
    uint32_t cnt = (uint32_t)m + (extra ? 1 : 0);
    if (longhdr) {
        if (rnd() & 1) {
            *d++ = (char)0xde;
            d = mp_store_u16(d, (uint16_t)cnt);
        } else {
            *d++ = (char)0xdf;
            d = mp_store_u32(d, cnt);
        }
    } else {
        d = mp_encode_map(d, cnt);
    }
    int extra_at = extra ? (int)(rnd() % (uint64_t)(m + 1)) : -1;
    for (int i = 0; i <= m; i++) {
        if (i == extra_at) {
            d = mp_encode_str(d, "zz", 2);
            d = mp_encode_array(d, 2);
            d = mp_encode_map(d, 1);
            d = mp_encode_uint(d, 1);
            d = mp_encode_array(d, 0);
            d = mp_encode_nil(d);
        }
        if (i < m) {
            size_t k = (size_t)(at[order[i] + 1] - at[order[i]]);
            if ((size_t)(d - (char *)out) + k + 16 > cap) {
                memcpy(out, in, len);
                return len;
            }
            memcpy(d, at[order[i]], k);
            d += k;
        }
    }
    return (size_t)(d - (char *)out);
}

/* ---- tests ------------------------------------------------------------------------------ */

static uint8_t input[4096 + 2], mutant[sizeof input + 64];

static int type_index(uint8_t type)
{
    for (size_t i = 0; i < sizeof WIRE_DIFF_TYPES; i++) {
        if (WIRE_DIFF_TYPES[i] == type) {
            return (int)i;
        }
    }
    return -1;
}

/* Random messages of every type: both encoders agree (refusals included). */
static void test_encoders_agree(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof pool; i++) {
        pool[i] = (uint8_t)rnd();
    }
    for (int n = 0; n < 40000; n++) {
        wire_msg m;
        rmsg(&m, WIRE_DIFF_TYPES[rnd() % sizeof WIRE_DIFF_TYPES]);
        int rv = wire_diff_encode(&m);
        if (rv != 0) {
            fail_msg("message %d (type 0x%02x): encoders differ (%d)", n, m.type, rv);
        }
    }
}

/* Frames of random messages and their mutations: both decoders agree. */
static void test_decoders_agree(void **state)
{
    (void)state;
    static const uint8_t LIMITS[] = {0x80, 0x00, 0x01, 0x05, 0x0a, 0x1f, 0x3e, 0x7f, 0xc3, 0xff};
    size_t runs = 0, ok = 0;
    for (size_t i = 0; i < sizeof pool; i++) {
        pool[i] = (uint8_t)rnd();
    }
    for (int n = 0; n < 6000; n++) {
        wire_msg m;
        rmsg(&m, WIRE_DIFF_TYPES[rnd() % sizeof WIRE_DIFF_TYPES]);
        size_t flen;
        if (wire_encode(&m, NULL, 0, &flen) != WIRE_ENOBUF || flen > 4096) {
            continue; /* refused, or too big to mutate cheaply */
        }
        uint8_t frame[4096 + WIRE_HEADER_LEN];
        assert_int_equal(wire_encode(&m, frame, sizeof frame, &flen), WIRE_OK);
        size_t len = flen - WIRE_HEADER_LEN + 2;
        input[0] = (uint8_t)type_index(m.type);
        memcpy(input + 2, frame + WIRE_HEADER_LEN, flen - WIRE_HEADER_LEN);
        for (size_t l = 0; l < sizeof LIMITS; l++) {
            input[1] = LIMITS[l];
            int rv = wire_diff_one(input, len);
            runs++;
            if (rv != 0) {
                fail_msg("frame %d limits 0x%02x: decoders differ (%d)", n, input[1], rv);
            }
        }
        input[1] = 0x80;
        if (n % 10 == 0) { /* every cut of some frames */
            for (size_t cut = 2; cut < len; cut++) {
                assert_int_equal(wire_diff_one(input, cut), 0);
                runs++;
            }
        }
        for (int k = 0; k < 30; k++) { /* structure edits, then maybe a byte edit */
            static uint8_t tmp[sizeof mutant];
            size_t ml = mutate_pairs(input, len, tmp, sizeof tmp);
            if (ml + 64 > sizeof mutant) {
                continue;
            }
            for (int r = (int)(rnd() % 3); r > 0; r--) {
                static uint8_t tmp2[sizeof mutant];
                memcpy(tmp2, tmp, ml);
                ml = mutate_pairs(tmp2, ml, tmp, sizeof tmp);
            }
            if (rnd() & 1) {
                memcpy(mutant, tmp, ml);
            } else {
                ml = mutate(tmp, ml, mutant, sizeof mutant);
            }
            input[1] = LIMITS[rnd() % sizeof LIMITS];
            mutant[1] = input[1];
            int rv = wire_diff_one(mutant, ml);
            input[1] = 0x80;
            runs++;
            if (rv != 0) {
                fail_msg("pair edit of frame %d: decoders differ (%d)", n, rv);
            }
        }
        for (int k = 0; k < 60; k++) {
            size_t ml = mutate(input, len, mutant, sizeof mutant);
            for (int more = (int)(rnd() % 3); more > 0; more--) {
                static uint8_t tmp[sizeof mutant];
                memcpy(tmp, mutant, ml);
                ml = mutate(tmp, ml, mutant, sizeof mutant);
            }
            int rv = wire_diff_one(mutant, ml);
            runs++;
            if (rv != 0) {
                fail_msg("mutant of frame %d: decoders differ (%d)", n, rv);
            }
        }
        wire_msg d;
        ok += wire_decode_payload(m.type, input + 2, len - 2, NULL, &d) == WIRE_OK;
    }
    assert_true(ok > 1000); /* the messages were mostly valid, so the mutants start near valid */
    assert_true(runs > 300000);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_encoders_agree),
        cmocka_unit_test(test_decoders_agree),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
