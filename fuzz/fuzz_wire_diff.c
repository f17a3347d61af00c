/* fuzz/fuzz_wire_diff.c — differential target: the frame codec (src/mesh/wire.c) against the
 * codec it replaced, kept here verbatim as the reference.
 *
 * The reference is wire.c as of commit 61d8081 (before the one-pass decoder and the
 * exact-size encoder), renamed ref_* / ref__*: a bounds-checked validator walks the whole
 * payload, then the table-driven decoder reads it; the encoder writes through a checked output
 * buffer. The new codec must agree with it exactly:
 *  1. wire_decode_payload and ref_decode_payload return the same code and the same message
 *     (byte for byte: both zero the struct and fill it field by field) for every input, type
 *     and limits;
 *  2. on success both encoders give the same result (same code, same size, same bytes), and
 *     wire_encoded_size gives that size.
 * Input: byte 0 picks the type, byte 1 the limits (see diff_limits), the rest is the payload.
 * tests/unit/test_wire_diff.c includes this file and runs wire_diff_one on generated inputs;
 * seeds: fuzz/corpus/wire_diff/ (the payloads of fuzz/corpus/wire, with a type and limits byte). */
#include <msgpuck.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "mesh/wire.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* clang-format off */
/* NOLINTBEGIN */
/* Resolves NULL to the defaults and checks the ranges wire.h documents. */
static int ref__limits(const wire_limits *in, wire_limits *out)
{
    if (in == NULL) {
        wire_limits_default(out);
        return 0;
    }
    if (in->max_frame_size < WIRE_HEADER_LEN + 1 || in->max_depth < 1 ||
        in->max_depth > WIRE_MAX_DEPTH_CAP || in->max_elems < 1) {
        return WIRE_EINVAL;
    }
    *out = *in;
    return 0;
}

/* ---- reference: validation: one bounds-checked walk before anything is read ------------------------ */

typedef struct ref__vctx {
    const uint8_t *end;
    uint32_t max_depth;
    uint32_t max_elems;
} ref__vctx;

static uint64_t ref__load_be(const uint8_t *p, size_t n)
{
    uint64_t v = 0;
    for (size_t i = 0; i < n; i++) {
        v = (v << 8) | p[i];
    }
    return v;
}

/* Checks the msgpack value at *pp (whose enclosing container is at nesting `depth`, 0 for
 * none) and advances *pp past it. Every length is checked against the bytes that remain
 * before it is used; containers are checked against the limits before their elements. */
static int ref__check_value(const ref__vctx *v, const uint8_t **pp, uint32_t depth)
{
    enum { SCALAR, ARRAY, MAP } kind = SCALAR;
    const uint8_t *p = *pp;
    if (p >= v->end) {
        return WIRE_EMALFORMED;
    }
    uint8_t c = *p++;
    size_t avail = (size_t)(v->end - p);
    uint64_t n = 0;  /* scalar: bytes that follow; container: element count */
    size_t hlen = 0; /* bytes of a big-endian length/count that follow the type byte */
    bool ext = false;

    if (c <= 0x7f || c >= 0xe0) {
        n = 0; /* fixint */
    } else if (c <= 0x8f) {
        kind = MAP;
        n = c & 0x0f;
    } else if (c <= 0x9f) {
        kind = ARRAY;
        n = c & 0x0f;
    } else if (c <= 0xbf) {
        n = c & 0x1f; /* fixstr */
    } else {
        switch (c) {
        case 0xc0: /* nil */
        case 0xc2: /* false */
        case 0xc3: n = 0; break;
        case 0xc4:                  /* bin 8 */
        case 0xd9: hlen = 1; break; /* str 8 */
        case 0xc5:
        case 0xda: hlen = 2; break;
        case 0xc6:
        case 0xdb: hlen = 4; break;
        case 0xc7: hlen = 1, ext = true; break; /* ext 8/16/32: length, then a type byte */
        case 0xc8: hlen = 2, ext = true; break;
        case 0xc9: hlen = 4, ext = true; break;
        case 0xca: n = 4; break; /* float 32 */
        case 0xcb: n = 8; break; /* float 64 */
        case 0xcc:
        case 0xd0: n = 1; break;
        case 0xcd:
        case 0xd1: n = 2; break;
        case 0xce:
        case 0xd2: n = 4; break;
        case 0xcf:
        case 0xd3: n = 8; break;
        case 0xd4: n = 2; break; /* fixext 1..16: type byte + data */
        case 0xd5: n = 3; break;
        case 0xd6: n = 5; break;
        case 0xd7: n = 9; break;
        case 0xd8: n = 17; break;
        case 0xdc: kind = ARRAY, hlen = 2; break;
        case 0xdd: kind = ARRAY, hlen = 4; break;
        case 0xde: kind = MAP, hlen = 2; break;
        case 0xdf: kind = MAP, hlen = 4; break;
        default: return WIRE_EMALFORMED; /* 0xc1: never used */
        }
    }
    if (hlen > 0) {
        if (avail < hlen) {
            return WIRE_EMALFORMED;
        }
        n = ref__load_be(p, hlen) + (ext ? 1 : 0);
        p += hlen;
        avail -= hlen;
    }
    if (kind == SCALAR) {
        if (n > avail) {
            return WIRE_EMALFORMED;
        }
        *pp = p + n;
        return 0;
    }
    if (depth + 1 > v->max_depth || n > v->max_elems) {
        return WIRE_ELIMIT;
    }
    uint64_t items = kind == MAP ? 2 * n : n;
    if (items > avail) { /* every element takes at least one byte */
        return WIRE_EMALFORMED;
    }
    for (uint64_t i = 0; i < items; i++) {
        int rv = ref__check_value(v, &p, depth + 1);
        if (rv != 0) {
            return rv;
        }
    }
    *pp = p;
    return 0;
}

/* True if buf[0..len) is exactly one well-formed msgpack value within the limits. */
static int ref__check_exact(const uint8_t *buf, size_t len, uint32_t max_depth, uint32_t max_elems)
{
    ref__vctx v = {buf + len, max_depth, max_elems};
    const uint8_t *p = buf;
    int rv = ref__check_value(&v, &p, 0);
    if (rv == 0 && p != v.end) {
        rv = WIRE_EMALFORMED; /* trailing bytes */
    }
    return rv;
}

/* ---- reference: field tables: one per map shape, shared by the decoder and the encoder -------------- */

enum ref__kind {
    K_BYTES,      /* wire_bytes; str or bin */
    K_QOS,        /* uint8_t 0..2 */
    K_BOOL,       /* bool */
    K_I64,        /* int64_t */
    K_U64,        /* uint64_t */
    K_U32,        /* uint32_t */
    K_BLIST,      /* wire_bytes_list */
    K_NLIST,      /* wire_node_list */
    K_RAW,        /* wire_bytes holding one msgpack value verbatim */
    K_MAP,        /* nested struct described by sub */
    K_PTYPE,      /* uint8_t WIRE_RPC_PAYLOAD_*, "call" / "reply" on the wire */
    K_FVRESULT,   /* uint8_t WIRE_FV_*, "value" / "nodes" on the wire */
    K_RPCPAYLOAD, /* RPC_ROUTE's payload: decoded after payload_type is known */
};

typedef struct ref__table ref__table;

typedef struct ref__field {
    const char *name;
    uint8_t kind;
    bool req;                          /* required on decode, always written on encode */
    uint16_t off;                      /* offset of the value in the struct */
    int16_t has_off;                   /* offset of the bool "present" flag, or -1 */
    const ref__table *sub;            /* K_MAP */
    bool (*present)(const void *base); /* encode: is this optional field written? */
} ref__field;

struct ref__table {
    const ref__field *f;
    uint32_t n;
};

/* clang-format off */
#define REQ(s, fld, k) {#fld, k, true, offsetof(s, fld), -1, NULL, NULL}
#define OPT(s, fld, k) {#fld, k, false, offsetof(s, fld), -1, NULL, NULL}
#define TABLE(a) {(a), sizeof(a) / sizeof((a)[0])}
/* clang-format on */

static const ref__field ref__node_f[] = {
    REQ(wire_node, node_id, K_BYTES),
    REQ(wire_node, address, K_BYTES),
    {"last_seen", K_I64, false, offsetof(wire_node, last_seen), offsetof(wire_node, has_last_seen),
     NULL, NULL},
};
static const ref__table ref__node_t = TABLE(ref__node_f);

static const ref__field ref__connect_f[] = {
    REQ(wire_connect, version, K_BYTES),  REQ(wire_connect, node_id, K_BYTES),
    REQ(wire_connect, realm_id, K_BYTES), REQ(wire_connect, capabilities, K_BLIST),
    OPT(wire_connect, endpoint, K_BYTES),
};
static const ref__field ref__disconnect_f[] = {
    REQ(wire_disconnect, reason, K_BYTES),
    REQ(wire_disconnect, message, K_BYTES),
};
static const ref__field ref__ping_f[] = {
    REQ(wire_ping, timestamp, K_I64),
};
static const ref__field ref__pong_f[] = {
    REQ(wire_pong, timestamp, K_I64),
    REQ(wire_pong, server_time, K_I64),
};
static const ref__field ref__publish_f[] = {
    REQ(wire_publish, topic, K_BYTES),      REQ(wire_publish, payload, K_BYTES),
    REQ(wire_publish, qos, K_QOS),          REQ(wire_publish, retain, K_BOOL),
    REQ(wire_publish, message_id, K_BYTES),
};
static const ref__table ref__publish_t = TABLE(ref__publish_f);
static const ref__field ref__subscribe_f[] = {
    REQ(wire_subscribe, topics, K_BLIST),
    REQ(wire_subscribe, qos, K_QOS),
};
static const ref__field ref__unsubscribe_f[] = {
    REQ(wire_unsubscribe, topics, K_BLIST),
};
static const ref__field ref__puback_f[] = {
    REQ(wire_puback, message_id, K_BYTES),
};
static const ref__field ref__pubsub_route_f[] = {
    REQ(wire_pubsub_route, destination_node_id, K_BYTES),
    REQ(wire_pubsub_route, source_node_id, K_BYTES),
    REQ(wire_pubsub_route, hop_count, K_U32),
    REQ(wire_pubsub_route, max_hops, K_U32),
    REQ(wire_pubsub_route, topic, K_BYTES),
    {"payload", K_MAP, true, offsetof(wire_pubsub_route, payload), -1, &ref__publish_t, NULL},
};
/* clang-format off */
#define CALL_TIMEOUT                                                                            \
    {"timeout", K_U32, false, offsetof(wire_call, timeout_ms), offsetof(wire_call, has_timeout), \
     NULL, NULL}
/* clang-format on */
static const ref__field ref__call_f[] = {
    REQ(wire_call, call_id, K_BYTES),
    REQ(wire_call, procedure, K_BYTES),
    REQ(wire_call, args, K_BYTES),
    REQ(wire_call, realm, K_BYTES),
    CALL_TIMEOUT,
};
static const ref__table ref__call_t = TABLE(ref__call_f);
static const ref__field ref__cast_f[] = {
    OPT(wire_call, call_id, K_BYTES),
    REQ(wire_call, procedure, K_BYTES),
    REQ(wire_call, args, K_BYTES),
    REQ(wire_call, realm, K_BYTES),
    CALL_TIMEOUT,
};

static bool ref__reply_is_result(const void *base)
{
    return !((const wire_reply *)base)->is_error;
}
static bool ref__reply_is_error(const void *base)
{
    return ((const wire_reply *)base)->is_error;
}
static const ref__field ref__rpc_error_f[] = {
    REQ(wire_rpc_error, code, K_BYTES),
    REQ(wire_rpc_error, message, K_BYTES),
};
static const ref__table ref__rpc_error_t = TABLE(ref__rpc_error_f);
enum { REPLY_F_RESULT = 1, REPLY_F_ERROR = 2 };
static const ref__field ref__reply_f[] = {
    REQ(wire_reply, call_id, K_BYTES),
    {"result", K_BYTES, false, offsetof(wire_reply, result), -1, NULL, ref__reply_is_result},
    {"error", K_MAP, false, offsetof(wire_reply, error), -1, &ref__rpc_error_t,
     ref__reply_is_error},
};
static const ref__table ref__reply_t = TABLE(ref__reply_f);

static const ref__field ref__rpc_route_f[] = {
    REQ(wire_rpc_route, destination_node_id, K_BYTES),
    REQ(wire_rpc_route, source_node_id, K_BYTES),
    REQ(wire_rpc_route, hop_count, K_U32),
    REQ(wire_rpc_route, max_hops, K_U32),
    REQ(wire_rpc_route, payload_type, K_PTYPE),
    {"payload", K_RPCPAYLOAD, true, 0, -1, NULL, NULL},
};
/* The optional DHT keys (wire_dht_hdr) of struct s, whose member is named hdr. */
/* clang-format off */
#define DHT_HDR(s)                                                                              \
    {"request_id", K_U64, false, offsetof(s, hdr.request_id), offsetof(s, hdr.has_request_id),  \
     NULL, NULL},                                                                               \
    {"sender_id", K_BYTES, false, offsetof(s, hdr.sender_id), -1, NULL, NULL},                  \
    {"sender_address", K_BYTES, false, offsetof(s, hdr.sender_address), -1, NULL, NULL}
/* clang-format on */
static const ref__field ref__find_node_f[] = {
    REQ(wire_find_node, target, K_BYTES),
    DHT_HDR(wire_find_node),
};
static const ref__field ref__find_node_reply_f[] = {
    REQ(wire_find_node_reply, nodes, K_NLIST),
    DHT_HDR(wire_find_node_reply),
};
static const ref__field ref__store_f[] = {
    REQ(wire_store, key, K_BYTES),
    REQ(wire_store, value, K_RAW),
    DHT_HDR(wire_store),
    {"ttl", K_U32, false, offsetof(wire_store, ttl_ms), offsetof(wire_store, has_ttl), NULL, NULL},
    OPT(wire_store, publisher, K_BYTES),
};
static const ref__field ref__find_value_f[] = {
    REQ(wire_find_value, key, K_BYTES),
    DHT_HDR(wire_find_value),
};
static const ref__field ref__store_ack_f[] = {
    REQ(wire_store_ack, key, K_BYTES),
    REQ(wire_store_ack, stored, K_BOOL),
    {"request_id", K_U64, true, offsetof(wire_store_ack, hdr.request_id),
     offsetof(wire_store_ack, hdr.has_request_id), NULL, NULL},
    {"sender_id", K_BYTES, false, offsetof(wire_store_ack, hdr.sender_id), -1, NULL, NULL},
    {"sender_address", K_BYTES, false, offsetof(wire_store_ack, hdr.sender_address), -1, NULL,
     NULL},
};
static bool ref__fv_is_value(const void *base)
{
    return ((const wire_find_value_reply *)base)->result == WIRE_FV_VALUE;
}
static bool ref__fv_is_nodes(const void *base)
{
    return ((const wire_find_value_reply *)base)->result == WIRE_FV_NODES;
}
enum { FV_F_VALUE = 1, FV_F_NODES = 2 };
static const ref__field ref__find_value_reply_f[] = {
    REQ(wire_find_value_reply, result, K_FVRESULT),
    {"value", K_RAW, false, offsetof(wire_find_value_reply, value), -1, NULL, ref__fv_is_value},
    {"nodes", K_NLIST, false, offsetof(wire_find_value_reply, nodes), -1, NULL, ref__fv_is_nodes},
    DHT_HDR(wire_find_value_reply),
};

/* The table of a top-level message type and where its struct lives in wire_msg. */
static const ref__table *ref__table_of(unsigned type)
{
    static const ref__table connect = TABLE(ref__connect_f);
    static const ref__table disconnect = TABLE(ref__disconnect_f);
    static const ref__table ping = TABLE(ref__ping_f);
    static const ref__table pong = TABLE(ref__pong_f);
    static const ref__table subscribe = TABLE(ref__subscribe_f);
    static const ref__table unsubscribe = TABLE(ref__unsubscribe_f);
    static const ref__table puback = TABLE(ref__puback_f);
    static const ref__table pubsub_route = TABLE(ref__pubsub_route_f);
    static const ref__table cast = TABLE(ref__cast_f);
    static const ref__table rpc_route = TABLE(ref__rpc_route_f);
    static const ref__table find_node = TABLE(ref__find_node_f);
    static const ref__table find_node_reply = TABLE(ref__find_node_reply_f);
    static const ref__table store = TABLE(ref__store_f);
    static const ref__table find_value = TABLE(ref__find_value_f);
    static const ref__table find_value_reply = TABLE(ref__find_value_reply_f);
    static const ref__table store_ack = TABLE(ref__store_ack_f);
    switch (type) {
    case WIRE_CONNECT: return &connect;
    case WIRE_DISCONNECT: return &disconnect;
    case WIRE_PING: return &ping;
    case WIRE_PONG: return &pong;
    case WIRE_PUBLISH: return &ref__publish_t;
    case WIRE_SUBSCRIBE: return &subscribe;
    case WIRE_UNSUBSCRIBE: return &unsubscribe;
    case WIRE_PUBSUB_ROUTE: return &pubsub_route;
    case WIRE_PUBACK: return &puback;
    case WIRE_CALL: return &ref__call_t;
    case WIRE_REPLY: return &ref__reply_t;
    case WIRE_CAST: return &cast;
    case WIRE_RPC_ROUTE: return &rpc_route;
    case WIRE_FIND_NODE: return &find_node;
    case WIRE_FIND_NODE_REPLY: return &find_node_reply;
    case WIRE_STORE: return &store;
    case WIRE_FIND_VALUE: return &find_value;
    case WIRE_FIND_VALUE_REPLY: return &find_value_reply;
    case WIRE_STORE_ACK: return &store_ack;
    default: return NULL;
    }
}

/* ---- reference: typed decoding (only ever runs on validated msgpack)
 * ------------------------------- */

static bool ref__is_strbin(const char *p)
{
    enum mp_type t = mp_typeof(*p);
    return t == MP_STR || t == MP_BIN;
}

static bool ref__eq(const char *s, uint32_t len, const char *lit)
{
    /* no strlen: most comparisons fail on the first byte (field look-up by name) */
    for (uint32_t i = 0; i < len; i++) {
        if (lit[i] != s[i] || lit[i] == '\0') {
            return false;
        }
    }
    return lit[len] == '\0';
}

/* An integer of either msgpack family: *neg says whether *v is negative (then *iv is it). */
static int ref__read_int(const char **p, bool *neg, uint64_t *uv, int64_t *iv)
{
    enum mp_type t = mp_typeof(**p);
    if (t == MP_UINT) {
        *uv = mp_decode_uint(p);
        *neg = false;
        return 0;
    }
    if (t == MP_INT) {
        *iv = mp_decode_int(p);
        *neg = *iv < 0;
        *uv = *neg ? 0 : (uint64_t)*iv;
        return 0;
    }
    return WIRE_EMALFORMED;
}

static int ref__decode_map(const ref__table *t, const char **pp, void *base, uint32_t *mask,
                           const char **deferred);

static int ref__decode_field(const ref__field *f, const char **pp, void *base,
                             const char **deferred)
{
    char *at = (char *)base + f->off;
    const char *p = *pp;
    bool neg;
    uint64_t u;
    int64_t i;
    uint32_t n, len;
    const char *s;

    switch (f->kind) {
    case K_BYTES:
        if (!ref__is_strbin(p)) {
            return WIRE_EMALFORMED;
        }
        s = mp_decode_strbin(&p, &len);
        ((wire_bytes *)at)->p = (const uint8_t *)s;
        ((wire_bytes *)at)->len = len;
        break;
    case K_QOS:
        if (ref__read_int(&p, &neg, &u, &i) != 0 || neg || u > 2) {
            return WIRE_EMALFORMED;
        }
        *(uint8_t *)at = (uint8_t)u;
        break;
    case K_BOOL:
        if (mp_typeof(*p) != MP_BOOL) {
            return WIRE_EMALFORMED;
        }
        *(bool *)at = mp_decode_bool(&p);
        break;
    case K_I64:
        if (ref__read_int(&p, &neg, &u, &i) != 0) {
            return WIRE_EMALFORMED;
        }
        if (!neg) {
            if (u > (uint64_t)INT64_MAX) {
                return WIRE_EMALFORMED;
            }
            i = (int64_t)u;
        }
        *(int64_t *)at = i;
        break;
    case K_U64:
        if (ref__read_int(&p, &neg, &u, &i) != 0 || neg) {
            return WIRE_EMALFORMED;
        }
        *(uint64_t *)at = u;
        break;
    case K_U32:
        if (ref__read_int(&p, &neg, &u, &i) != 0 || neg || u > UINT32_MAX) {
            return WIRE_EMALFORMED;
        }
        *(uint32_t *)at = (uint32_t)u;
        break;
    case K_BLIST: {
        if (mp_typeof(*p) != MP_ARRAY) {
            return WIRE_EMALFORMED;
        }
        n = mp_decode_array(&p);
        wire_bytes_list *l = (wire_bytes_list *)at;
        l->count = n;
        l->items = NULL;
        l->raw = (const uint8_t *)p;
        for (uint32_t k = 0; k < n; k++) {
            if (!ref__is_strbin(p)) {
                return WIRE_EMALFORMED;
            }
            mp_next(&p);
        }
        break;
    }
    case K_NLIST: {
        if (mp_typeof(*p) != MP_ARRAY) {
            return WIRE_EMALFORMED;
        }
        n = mp_decode_array(&p);
        wire_node_list *l = (wire_node_list *)at;
        l->count = n;
        l->items = NULL;
        l->raw = (const uint8_t *)p;
        for (uint32_t k = 0; k < n; k++) {
            wire_node node;
            uint32_t m;
            memset(&node, 0, sizeof node);
            int rv = ref__decode_map(&ref__node_t, &p, &node, &m, NULL);
            if (rv != 0) {
                return rv;
            }
        }
        break;
    }
    case K_RAW:
        s = p;
        mp_next(&p);
        ((wire_bytes *)at)->p = (const uint8_t *)s;
        ((wire_bytes *)at)->len = (size_t)(p - s);
        break;
    case K_MAP: {
        uint32_t m;
        int rv = ref__decode_map(f->sub, &p, at, &m, NULL);
        if (rv != 0) {
            return rv;
        }
        break;
    }
    case K_PTYPE:
    case K_FVRESULT:
        if (!ref__is_strbin(p)) {
            return WIRE_EMALFORMED;
        }
        s = mp_decode_strbin(&p, &len);
        if (ref__eq(s, len, f->kind == K_PTYPE ? "call" : "value")) {
            *(uint8_t *)at = 1; /* WIRE_RPC_PAYLOAD_CALL / WIRE_FV_VALUE */
        } else if (ref__eq(s, len, f->kind == K_PTYPE ? "reply" : "nodes")) {
            *(uint8_t *)at = 2; /* WIRE_RPC_PAYLOAD_REPLY / WIRE_FV_NODES */
        } else {
            return WIRE_EMALFORMED;
        }
        break;
    case K_RPCPAYLOAD:
        if (mp_typeof(*p) != MP_MAP || deferred == NULL) {
            return WIRE_EMALFORMED;
        }
        *deferred = p;
        mp_next(&p);
        break;
    default: return WIRE_EMALFORMED;
    }
    if (f->has_off >= 0) {
        *((bool *)((char *)base + f->has_off)) = true;
    }
    *pp = p;
    return 0;
}

/* Decodes the map at *pp into base by table t; *mask gets a bit per field present. */
static int ref__decode_map(const ref__table *t, const char **pp, void *base, uint32_t *mask,
                           const char **deferred)
{
    const char *p = *pp;
    if (mp_typeof(*p) != MP_MAP) {
        return WIRE_EMALFORMED;
    }
    uint32_t n = mp_decode_map(&p);
    uint32_t seen = 0, present = 0;
    uint32_t hint = 0; /* encoders write the fields in table order: look there first */
    for (uint32_t k = 0; k < n; k++) {
        if (!ref__is_strbin(p)) { /* a key that is no string: not ours, skip the pair */
            mp_next(&p);
            mp_next(&p);
            continue;
        }
        uint32_t klen;
        const char *key = mp_decode_strbin(&p, &klen);
        uint32_t fi = hint, tries = 0;
        while (tries < t->n && !ref__eq(key, klen, t->f[fi].name)) {
            fi = fi + 1 == t->n ? 0 : fi + 1;
            tries++;
        }
        if (tries == t->n) { /* unknown key: forward compatibility */
            mp_next(&p);
            continue;
        }
        hint = fi + 1 == t->n ? 0 : fi + 1;
        if (seen & (1u << fi)) {
            return WIRE_EMALFORMED; /* duplicate key: ambiguous, refuse */
        }
        seen |= 1u << fi;
        if (!t->f[fi].req && mp_typeof(*p) == MP_NIL) { /* optional nil = absent */
            mp_next(&p);
            continue;
        }
        int rv = ref__decode_field(&t->f[fi], &p, base, deferred);
        if (rv != 0) {
            return rv;
        }
        present |= 1u << fi;
    }
    for (uint32_t fi = 0; fi < t->n; fi++) {
        if (t->f[fi].req && !(present & (1u << fi))) {
            return WIRE_EMALFORMED;
        }
    }
    *mask = present;
    *pp = p;
    return 0;
}

/* REPLY: exactly one of result and error. */
static int ref__reply_fix(wire_reply *r, uint32_t mask)
{
    bool res = mask & (1u << REPLY_F_RESULT), err = mask & (1u << REPLY_F_ERROR);
    if (res == err) {
        return WIRE_EMALFORMED;
    }
    r->is_error = err;
    return 0;
}

static int ref__decode_body(unsigned type, const char *p, wire_msg *m)
{
    const ref__table *t = ref__table_of(type);
    const char *deferred = NULL;
    uint32_t mask = 0;
    int rv = ref__decode_map(t, &p, &m->connect, &mask, &deferred);
    if (rv != 0) {
        return rv;
    }
    switch (type) {
    case WIRE_REPLY: return ref__reply_fix(&m->reply, mask);
    case WIRE_RPC_ROUTE: {
        wire_rpc_route *r = &m->rpc_route;
        if (r->payload_type == WIRE_RPC_PAYLOAD_CALL) {
            return ref__decode_map(&ref__call_t, &deferred, &r->call, &mask, NULL);
        }
        rv = ref__decode_map(&ref__reply_t, &deferred, &r->reply, &mask, NULL);
        return rv != 0 ? rv : ref__reply_fix(&r->reply, mask);
    }
    case WIRE_FIND_VALUE_REPLY: {
        wire_find_value_reply *r = &m->find_value_reply;
        if (r->result == WIRE_FV_VALUE) {
            memset(&r->nodes, 0, sizeof r->nodes);
            return (mask & (1u << FV_F_VALUE)) ? 0 : WIRE_EMALFORMED;
        }
        memset(&r->value, 0, sizeof r->value);
        return (mask & (1u << FV_F_NODES)) ? 0 : WIRE_EMALFORMED;
    }
    default: return 0;
    }
}

static int ref_decode_payload(unsigned type, const uint8_t *payload, size_t len,
                              const wire_limits *lim, wire_msg *out)
{
    wire_limits l;
    memset(out, 0, sizeof *out);
    out->type = (uint8_t)type;
    int rv = ref__limits(lim, &l);
    if (rv != 0) {
        return rv;
    }
    if (!wire_type_known(type)) {
        return WIRE_EUNKNOWN_TYPE;
    }
    if (len > (size_t)l.max_frame_size - WIRE_HEADER_LEN) {
        return WIRE_EFRAME_TOO_LARGE;
    }
    if (len == 0 || payload == NULL) {
        return WIRE_EMALFORMED;
    }
    rv = ref__check_exact(payload, len, l.max_depth, l.max_elems);
    if (rv == 0) {
        rv = ref__decode_body(type, (const char *)payload, out);
    }
    if (rv != 0) {
        memset(out, 0, sizeof *out);
        out->type = (uint8_t)type;
    }
    return rv;
}

/* ---- reference: lists
 * ------------------------------------------------------------------------------ */

static wire_list_iter ref_bytes_list_iter(const wire_bytes_list *l)
{
    wire_list_iter it = {l->raw, l->items, 0, l->count};
    return it;
}

static bool ref_bytes_list_next(wire_list_iter *it, wire_bytes *out)
{
    if (it->next >= it->count) {
        return false;
    }
    if (it->items != NULL) {
        *out = ((const wire_bytes *)it->items)[it->next++];
        return true;
    }
    const char *p = (const char *)it->pos;
    if (p == NULL || !ref__is_strbin(p)) {
        return false;
    }
    uint32_t len;
    out->p = (const uint8_t *)mp_decode_strbin(&p, &len);
    out->len = len;
    it->pos = (const uint8_t *)p;
    it->next++;
    return true;
}

static wire_list_iter ref_node_list_iter(const wire_node_list *l)
{
    wire_list_iter it = {l->raw, l->items, 0, l->count};
    return it;
}

static bool ref_node_list_next(wire_list_iter *it, wire_node *out)
{
    if (it->next >= it->count) {
        return false;
    }
    if (it->items != NULL) {
        *out = ((const wire_node *)it->items)[it->next++];
        return true;
    }
    const char *p = (const char *)it->pos;
    uint32_t mask;
    memset(out, 0, sizeof *out);
    if (p == NULL || ref__decode_map(&ref__node_t, &p, out, &mask, NULL) != 0) {
        return false;
    }
    it->pos = (const uint8_t *)p;
    it->next++;
    return true;
}

/* ---- reference: encoding
 * --------------------------------------------------------------------------- */

/* An output buffer that counts what would be written even past its capacity, so one pass
 * both encodes and sizes. */
typedef struct ref__out {
    uint8_t *buf;
    size_t cap;
    size_t len; /* bytes produced so far (may exceed cap) */
    int err;    /* first WIRE_EINVAL */
} ref__out;

static char *ref__take(ref__out *w, size_t n)
{
    size_t at = w->len;
    if (n > SIZE_MAX - at) {
        w->err = WIRE_EINVAL;
        w->len = SIZE_MAX;
        return NULL;
    }
    w->len = at + n;
    if (w->buf == NULL || at > w->cap || n > w->cap - at) {
        return NULL;
    }
    return (char *)w->buf + at;
}

static void ref__put_map(ref__out *w, uint32_t n)
{
    char *d = ref__take(w, mp_sizeof_map(n));
    if (d != NULL) {
        mp_encode_map(d, n);
    }
}

static void ref__put_array(ref__out *w, uint32_t n)
{
    char *d = ref__take(w, mp_sizeof_array(n));
    if (d != NULL) {
        mp_encode_array(d, n);
    }
}

static void ref__put_bin(ref__out *w, const void *p, size_t len)
{
    if ((p == NULL && len > 0) || len > UINT32_MAX) {
        w->err = WIRE_EINVAL;
        return;
    }
    char *d = ref__take(w, mp_sizeof_binl((uint32_t)len));
    if (d != NULL) {
        mp_encode_binl(d, (uint32_t)len);
    }
    d = ref__take(w, len);
    if (d != NULL && len > 0) {
        memcpy(d, p, len);
    }
}

static void ref__put_uint(ref__out *w, uint64_t v)
{
    char *d = ref__take(w, mp_sizeof_uint(v));
    if (d != NULL) {
        mp_encode_uint(d, v);
    }
}

static void ref__put_int(ref__out *w, int64_t v)
{
    if (v >= 0) {
        ref__put_uint(w, (uint64_t)v);
        return;
    }
    char *d = ref__take(w, mp_sizeof_int(v));
    if (d != NULL) {
        mp_encode_int(d, v);
    }
}

static void ref__put_bool(ref__out *w, bool v)
{
    char *d = ref__take(w, mp_sizeof_bool(v));
    if (d != NULL) {
        mp_encode_bool(d, v);
    }
}

static void ref__put_raw(ref__out *w, const wire_bytes *v)
{
    /* Well-formed and one value only; the encoder's own bound on nesting is the stack cap. */
    if (v->p == NULL || ref__check_exact(v->p, v->len, WIRE_MAX_DEPTH_CAP, UINT32_MAX) != 0) {
        w->err = WIRE_EINVAL;
        return;
    }
    char *d = ref__take(w, v->len);
    if (d != NULL) {
        memcpy(d, v->p, v->len);
    }
}

static void ref__encode_map(ref__out *w, const ref__table *t, const void *base);

static bool ref__field_present(const ref__field *f, const void *base)
{
    if (f->present != NULL) {
        return f->present(base);
    }
    if (f->req) {
        return true;
    }
    if (f->has_off >= 0) {
        return *(const bool *)((const char *)base + f->has_off);
    }
    if (f->kind == K_BYTES || f->kind == K_RAW) {
        return ((const wire_bytes *)((const char *)base + f->off))->p != NULL;
    }
    return true;
}

static void ref__encode_field(ref__out *w, const ref__field *f, const void *base)
{
    const char *at = (const char *)base + f->off;
    switch (f->kind) {
    case K_BYTES: {
        const wire_bytes *b = (const wire_bytes *)at;
        ref__put_bin(w, b->p, b->len);
        break;
    }
    case K_QOS:
        if (*(const uint8_t *)at > 2) {
            w->err = WIRE_EINVAL;
        }
        ref__put_uint(w, *(const uint8_t *)at);
        break;
    case K_BOOL: ref__put_bool(w, *(const bool *)at); break;
    case K_I64: ref__put_int(w, *(const int64_t *)at); break;
    case K_U32: ref__put_uint(w, *(const uint32_t *)at); break;
    case K_U64: ref__put_uint(w, *(const uint64_t *)at); break;
    case K_BLIST: {
        const wire_bytes_list *l = (const wire_bytes_list *)at;
        wire_list_iter it = ref_bytes_list_iter(l);
        wire_bytes b;
        uint32_t got = 0;
        ref__put_array(w, l->count);
        while (ref_bytes_list_next(&it, &b)) {
            ref__put_bin(w, b.p, b.len);
            got++;
        }
        if (got != l->count) {
            w->err = WIRE_EINVAL;
        }
        break;
    }
    case K_NLIST: {
        const wire_node_list *l = (const wire_node_list *)at;
        wire_list_iter it = ref_node_list_iter(l);
        wire_node node;
        uint32_t got = 0;
        ref__put_array(w, l->count);
        while (ref_node_list_next(&it, &node)) {
            ref__encode_map(w, &ref__node_t, &node);
            got++;
        }
        if (got != l->count) {
            w->err = WIRE_EINVAL;
        }
        break;
    }
    case K_RAW: ref__put_raw(w, (const wire_bytes *)at); break;
    case K_MAP: ref__encode_map(w, f->sub, at); break;
    case K_PTYPE:
    case K_FVRESULT: {
        uint8_t v = *(const uint8_t *)at;
        const char *s = NULL;
        if (v == 1) {
            s = f->kind == K_PTYPE ? "call" : "value";
        } else if (v == 2) {
            s = f->kind == K_PTYPE ? "reply" : "nodes";
        }
        if (s == NULL) {
            w->err = WIRE_EINVAL;
            break;
        }
        ref__put_bin(w, s, strlen(s));
        break;
    }
    case K_RPCPAYLOAD: {
        const wire_rpc_route *r = (const wire_rpc_route *)base;
        if (r->payload_type == WIRE_RPC_PAYLOAD_CALL) {
            ref__encode_map(w, &ref__call_t, &r->call);
        } else {
            ref__encode_map(w, &ref__reply_t, &r->reply); /* a bad type fails at K_PTYPE */
        }
        break;
    }
    default: w->err = WIRE_EINVAL; break;
    }
}

static void ref__encode_map(ref__out *w, const ref__table *t, const void *base)
{
    uint32_t n = 0;
    for (uint32_t i = 0; i < t->n; i++) {
        n += ref__field_present(&t->f[i], base) ? 1 : 0;
    }
    ref__put_map(w, n);
    for (uint32_t i = 0; i < t->n; i++) {
        if (ref__field_present(&t->f[i], base)) {
            ref__put_bin(w, t->f[i].name, strlen(t->f[i].name));
            ref__encode_field(w, &t->f[i], base);
        }
    }
}

static int ref_encode(const wire_msg *m, uint8_t *buf, size_t cap, size_t *len)
{
    const ref__table *t = ref__table_of(m->type);
    *len = 0;
    if (t == NULL) {
        return WIRE_EINVAL;
    }
    ref__out w = {buf, cap, 0, 0};
    (void)ref__take(&w, WIRE_HEADER_LEN);
    ref__encode_map(&w, t, &m->connect);
    if (w.err != 0) {
        return w.err;
    }
    size_t plen = w.len - WIRE_HEADER_LEN;
    if (plen > UINT32_MAX) {
        return WIRE_EINVAL;
    }
    *len = w.len;
    if (buf == NULL || w.len > cap) {
        return WIRE_ENOBUF;
    }
    buf[0] = WIRE_VERSION;
    buf[1] = m->type;
    buf[2] = 0;
    buf[3] = 0;
    buf[4] = (uint8_t)(plen >> 24);
    buf[5] = (uint8_t)(plen >> 16);
    buf[6] = (uint8_t)(plen >> 8);
    buf[7] = (uint8_t)plen;
    return 0;
}

/* NOLINTEND */
/* clang-format on */

/* ---- the comparison --------------------------------------------------------------------- */

static const uint8_t WIRE_DIFF_TYPES[] = {0x01, 0x02, 0x03, 0x04, 0x10, 0x11, 0x12,
                                          0x13, 0x14, 0x20, 0x21, 0x22, 0x23, 0x40,
                                          0x41, 0x42, 0x43, 0x44, 0x45};

/* sel < 0x80: small depth (1..4) and element (1..8) limits, so the limit paths are reached;
 * sel >= 0xc0: the default limits with a small frame limit; else the defaults. */
static void diff_limits(uint8_t sel, wire_limits *lim)
{
    wire_limits_default(lim);
    if (sel < 0x80) {
        lim->max_depth = 1 + (sel & 3u);
        lim->max_elems = 1 + ((sel >> 2) & 7u);
    } else if (sel >= 0xc0) {
        lim->max_frame_size = WIRE_HEADER_LEN + 1 + (sel & 0x3fu) * 4;
    }
}

/* Both encoders on one message: 0 if they agree. */
static int wire_diff_encode(const wire_msg *m)
{
    size_t la = 0, lb = 0;
    int ea = wire_encode(m, NULL, 0, &la);
    int eb = ref_encode(m, NULL, 0, &lb);
    if (ea != eb || la != lb) {
        return 10;
    }
    if (wire_encoded_size(m) != (ea == WIRE_ENOBUF ? la : 0)) {
        return 11;
    }
    if (ea != WIRE_ENOBUF) {
        return 0;
    }
    uint8_t *a = malloc(la + 1), *b = malloc(lb + 1);
    int rv = 0;
    if (a == NULL || b == NULL) {
        rv = 12;
    } else if (wire_encode(m, a, la - 1, &la) != WIRE_ENOBUF || la != lb) {
        rv = 13; /* one byte short */
    } else if (wire_encode(m, a, la, &la) != 0 || ref_encode(m, b, lb + 1, &lb) != 0 || la != lb ||
               memcmp(a, b, la) != 0) {
        rv = 14;
    }
    free(a);
    free(b);
    return rv;
}

/* 0 if the codec agrees with the reference on this input, else where it differs. */
static int wire_diff_one(const uint8_t *data, size_t size)
{
    if (size < 2) {
        return 0;
    }
    unsigned type = WIRE_DIFF_TYPES[data[0] % sizeof WIRE_DIFF_TYPES];
    wire_limits lim;
    diff_limits(data[1], &lim);
    const uint8_t *p = size > 2 ? data + 2 : NULL;
    wire_msg a, b;
    int ra = wire_decode_payload(type, p, size - 2, &lim, &a);
    int rb = ref_decode_payload(type, p, size - 2, &lim, &b);
    if (ra != rb) {
        return 1;
    }
    /* Both zero the whole struct first and then store members one by one, so the padding is
     * zero in both and a byte compare compares every field (views included: the same
     * pointers into the same input). */
    if (memcmp(&a, &b, sizeof a) != 0) { /* NOLINT(bugprone-suspicious-memory-comparison) */
        return 2;
    }
    return ra == 0 ? wire_diff_encode(&a) : 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (wire_diff_one(data, size) != 0) {
        abort();
    }
    return 0;
}
