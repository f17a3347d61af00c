/* src/mesh/wire.c — the Macula v0.8 frame codec (see wire.h and MESH.md "Wire format"). */

/* This translation unit carries msgpuck's out-of-line definitions and tables (its header is
 * the whole library; see the note in msgpuck.h), so nothing else needs libmsgpuck.a. Other
 * files of macula_core may include <msgpuck.h> without MP_SOURCE and link against these. */
#define MP_SOURCE 1
#include <msgpuck.h>

#include "wire.h"

#include <assert.h>
#include <stdlib.h>
#include <string.h>

/* ---- errors, types, limits -------------------------------------------------------------- */

const char *wire_strerror(int err)
{
    switch (err) {
    case WIRE_OK: return "ok";
    case WIRE_EAGAIN: return "need_more_data";
    case WIRE_EUNSUPPORTED_VERSION: return "unsupported_version";
    case WIRE_EUNKNOWN_TYPE: return "unknown_type";
    case WIRE_EFRAME_TOO_LARGE: return "frame_too_large";
    case WIRE_EMALFORMED: return "malformed";
    case WIRE_ELIMIT: return "limit_exceeded";
    case WIRE_ENOMEM: return "no_memory";
    case WIRE_ENOBUF: return "buffer_too_small";
    case WIRE_EINVAL: return "invalid_argument";
    default: return "unknown_error";
    }
}

const char *wire_type_name(unsigned type)
{
    switch (type) {
    case WIRE_CONNECT: return "connect";
    case WIRE_DISCONNECT: return "disconnect";
    case WIRE_PING: return "ping";
    case WIRE_PONG: return "pong";
    case WIRE_PUBLISH: return "publish";
    case WIRE_SUBSCRIBE: return "subscribe";
    case WIRE_UNSUBSCRIBE: return "unsubscribe";
    case WIRE_PUBSUB_ROUTE: return "pubsub_route";
    case WIRE_PUBACK: return "puback";
    case WIRE_CALL: return "call";
    case WIRE_REPLY: return "reply";
    case WIRE_CAST: return "cast";
    case WIRE_RPC_ROUTE: return "rpc_route";
    case WIRE_FIND_NODE: return "find_node";
    case WIRE_FIND_NODE_REPLY: return "find_node_reply";
    case WIRE_STORE: return "store";
    case WIRE_FIND_VALUE: return "find_value";
    case WIRE_FIND_VALUE_REPLY: return "find_value_reply";
    case WIRE_STORE_ACK: return "store_ack";
    default: return NULL;
    }
}

bool wire_type_known(unsigned type)
{
    return wire_type_name(type) != NULL;
}

void wire_limits_default(wire_limits *lim)
{
    lim->max_frame_size = WIRE_DEFAULT_MAX_FRAME;
    lim->max_depth = WIRE_DEFAULT_MAX_DEPTH;
    lim->max_elems = WIRE_DEFAULT_MAX_ELEMS;
}

/* Resolves NULL to the defaults and checks the ranges wire.h documents. */
static int wire__limits(const wire_limits *in, wire_limits *out)
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

/* ---- validation: a bounds-checked walk --------------------------------------------------- */

/* The decoder checks what it skips with it (unknown keys, raw values), and runs it over the
 * whole payload only when it refuses one, to say which error the payload earns; the encoder
 * checks raw values with it. */

typedef struct wire__vctx {
    const uint8_t *end;
    uint32_t max_depth;
    uint32_t max_elems;
} wire__vctx;

static uint64_t wire__load_be(const uint8_t *p, size_t n)
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
static int wire__check_value(const wire__vctx *v, const uint8_t **pp, uint32_t depth)
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
        n = wire__load_be(p, hlen) + (ext ? 1 : 0);
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
        int rv = wire__check_value(v, &p, depth + 1);
        if (rv != 0) {
            return rv;
        }
    }
    *pp = p;
    return 0;
}

/* True if buf[0..len) is exactly one well-formed msgpack value within the limits. */
static int wire__check_exact(const uint8_t *buf, size_t len, uint32_t max_depth, uint32_t max_elems)
{
    wire__vctx v = {buf + len, max_depth, max_elems};
    const uint8_t *p = buf;
    int rv = wire__check_value(&v, &p, 0);
    if (rv == 0 && p != v.end) {
        rv = WIRE_EMALFORMED; /* trailing bytes */
    }
    return rv;
}

/* ---- field tables: one per map shape, shared by the decoder and the encoder -------------- */

enum wire__kind {
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

typedef struct wire__table wire__table;

typedef struct wire__field {
    const char *name;
    uint8_t nlen; /* strlen(name): keys are matched and written without strlen */
    uint8_t kind;
    bool req;                          /* required on decode, always written on encode */
    uint16_t off;                      /* offset of the value in the struct */
    int16_t has_off;                   /* offset of the bool "present" flag, or -1 */
    const wire__table *sub;            /* K_MAP */
    bool (*present)(const void *base); /* encode: is this optional field written? */
} wire__field;

struct wire__table {
    const wire__field *f;
    uint32_t n;
};

/* clang-format off */
#define NAME(lit) lit, sizeof(lit) - 1
#define REQ(s, fld, k) {NAME(#fld), k, true, offsetof(s, fld), -1, NULL, NULL}
#define OPT(s, fld, k) {NAME(#fld), k, false, offsetof(s, fld), -1, NULL, NULL}
#define TABLE(a) {(a), sizeof(a) / sizeof((a)[0])}
/* clang-format on */

static const wire__field wire__node_f[] = {
    REQ(wire_node, node_id, K_BYTES),
    REQ(wire_node, address, K_BYTES),
    {NAME("last_seen"), K_I64, false, offsetof(wire_node, last_seen),
     offsetof(wire_node, has_last_seen), NULL, NULL},
};
static const wire__table wire__node_t = TABLE(wire__node_f);

static const wire__field wire__connect_f[] = {
    REQ(wire_connect, version, K_BYTES),  REQ(wire_connect, node_id, K_BYTES),
    REQ(wire_connect, realm_id, K_BYTES), REQ(wire_connect, capabilities, K_BLIST),
    OPT(wire_connect, endpoint, K_BYTES),
};
static const wire__field wire__disconnect_f[] = {
    REQ(wire_disconnect, reason, K_BYTES),
    REQ(wire_disconnect, message, K_BYTES),
};
static const wire__field wire__ping_f[] = {
    REQ(wire_ping, timestamp, K_I64),
};
static const wire__field wire__pong_f[] = {
    REQ(wire_pong, timestamp, K_I64),
    REQ(wire_pong, server_time, K_I64),
};
static const wire__field wire__publish_f[] = {
    REQ(wire_publish, topic, K_BYTES),      REQ(wire_publish, payload, K_BYTES),
    REQ(wire_publish, qos, K_QOS),          REQ(wire_publish, retain, K_BOOL),
    REQ(wire_publish, message_id, K_BYTES),
};
static const wire__table wire__publish_t = TABLE(wire__publish_f);
static const wire__field wire__subscribe_f[] = {
    REQ(wire_subscribe, topics, K_BLIST),
    REQ(wire_subscribe, qos, K_QOS),
};
static const wire__field wire__unsubscribe_f[] = {
    REQ(wire_unsubscribe, topics, K_BLIST),
};
static const wire__field wire__puback_f[] = {
    REQ(wire_puback, message_id, K_BYTES),
};
static const wire__field wire__pubsub_route_f[] = {
    REQ(wire_pubsub_route, destination_node_id, K_BYTES),
    REQ(wire_pubsub_route, source_node_id, K_BYTES),
    REQ(wire_pubsub_route, hop_count, K_U32),
    REQ(wire_pubsub_route, max_hops, K_U32),
    REQ(wire_pubsub_route, topic, K_BYTES),
    {NAME("payload"), K_MAP, true, offsetof(wire_pubsub_route, payload), -1, &wire__publish_t,
     NULL},
};
/* clang-format off */
#define CALL_TIMEOUT                                                                            \
    {NAME("timeout"), K_U32, false, offsetof(wire_call, timeout_ms), offsetof(wire_call, has_timeout), \
     NULL, NULL}
/* clang-format on */
static const wire__field wire__call_f[] = {
    REQ(wire_call, call_id, K_BYTES),
    REQ(wire_call, procedure, K_BYTES),
    REQ(wire_call, args, K_BYTES),
    REQ(wire_call, realm, K_BYTES),
    CALL_TIMEOUT,
};
static const wire__table wire__call_t = TABLE(wire__call_f);
static const wire__field wire__cast_f[] = {
    OPT(wire_call, call_id, K_BYTES),
    REQ(wire_call, procedure, K_BYTES),
    REQ(wire_call, args, K_BYTES),
    REQ(wire_call, realm, K_BYTES),
    CALL_TIMEOUT,
};

static bool wire__reply_is_result(const void *base)
{
    return !((const wire_reply *)base)->is_error;
}
static bool wire__reply_is_error(const void *base)
{
    return ((const wire_reply *)base)->is_error;
}
static const wire__field wire__rpc_error_f[] = {
    REQ(wire_rpc_error, code, K_BYTES),
    REQ(wire_rpc_error, message, K_BYTES),
};
static const wire__table wire__rpc_error_t = TABLE(wire__rpc_error_f);
enum { REPLY_F_RESULT = 1, REPLY_F_ERROR = 2 };
static const wire__field wire__reply_f[] = {
    REQ(wire_reply, call_id, K_BYTES),
    {NAME("result"), K_BYTES, false, offsetof(wire_reply, result), -1, NULL, wire__reply_is_result},
    {NAME("error"), K_MAP, false, offsetof(wire_reply, error), -1, &wire__rpc_error_t,
     wire__reply_is_error},
};
static const wire__table wire__reply_t = TABLE(wire__reply_f);

static const wire__field wire__rpc_route_f[] = {
    REQ(wire_rpc_route, destination_node_id, K_BYTES),
    REQ(wire_rpc_route, source_node_id, K_BYTES),
    REQ(wire_rpc_route, hop_count, K_U32),
    REQ(wire_rpc_route, max_hops, K_U32),
    REQ(wire_rpc_route, payload_type, K_PTYPE),
    {NAME("payload"), K_RPCPAYLOAD, true, 0, -1, NULL, NULL},
};
/* The optional DHT keys (wire_dht_hdr) of struct s, whose member is named hdr. */
/* clang-format off */
#define DHT_HDR(s)                                                                              \
    {NAME("request_id"), K_U64, false, offsetof(s, hdr.request_id), offsetof(s, hdr.has_request_id),  \
     NULL, NULL},                                                                               \
    {NAME("sender_id"), K_BYTES, false, offsetof(s, hdr.sender_id), -1, NULL, NULL},                  \
    {NAME("sender_address"), K_BYTES, false, offsetof(s, hdr.sender_address), -1, NULL, NULL}
/* clang-format on */
static const wire__field wire__find_node_f[] = {
    REQ(wire_find_node, target, K_BYTES),
    DHT_HDR(wire_find_node),
};
static const wire__field wire__find_node_reply_f[] = {
    REQ(wire_find_node_reply, nodes, K_NLIST),
    DHT_HDR(wire_find_node_reply),
};
static const wire__field wire__store_f[] = {
    REQ(wire_store, key, K_BYTES),
    REQ(wire_store, value, K_RAW),
    DHT_HDR(wire_store),
    {NAME("ttl"), K_U32, false, offsetof(wire_store, ttl_ms), offsetof(wire_store, has_ttl), NULL,
     NULL},
    OPT(wire_store, publisher, K_BYTES),
};
static const wire__field wire__find_value_f[] = {
    REQ(wire_find_value, key, K_BYTES),
    DHT_HDR(wire_find_value),
};
static const wire__field wire__store_ack_f[] = {
    REQ(wire_store_ack, key, K_BYTES),
    REQ(wire_store_ack, stored, K_BOOL),
    {NAME("request_id"), K_U64, true, offsetof(wire_store_ack, hdr.request_id),
     offsetof(wire_store_ack, hdr.has_request_id), NULL, NULL},
    {NAME("sender_id"), K_BYTES, false, offsetof(wire_store_ack, hdr.sender_id), -1, NULL, NULL},
    {NAME("sender_address"), K_BYTES, false, offsetof(wire_store_ack, hdr.sender_address), -1, NULL,
     NULL},
};
static bool wire__fv_is_value(const void *base)
{
    return ((const wire_find_value_reply *)base)->result == WIRE_FV_VALUE;
}
static bool wire__fv_is_nodes(const void *base)
{
    return ((const wire_find_value_reply *)base)->result == WIRE_FV_NODES;
}
enum { FV_F_VALUE = 1, FV_F_NODES = 2 };
static const wire__field wire__find_value_reply_f[] = {
    REQ(wire_find_value_reply, result, K_FVRESULT),
    {NAME("value"), K_RAW, false, offsetof(wire_find_value_reply, value), -1, NULL,
     wire__fv_is_value},
    {NAME("nodes"), K_NLIST, false, offsetof(wire_find_value_reply, nodes), -1, NULL,
     wire__fv_is_nodes},
    DHT_HDR(wire_find_value_reply),
};

/* The table of a top-level message type and where its struct lives in wire_msg. */
static const wire__table *wire__table_of(unsigned type)
{
    static const wire__table connect = TABLE(wire__connect_f);
    static const wire__table disconnect = TABLE(wire__disconnect_f);
    static const wire__table ping = TABLE(wire__ping_f);
    static const wire__table pong = TABLE(wire__pong_f);
    static const wire__table subscribe = TABLE(wire__subscribe_f);
    static const wire__table unsubscribe = TABLE(wire__unsubscribe_f);
    static const wire__table puback = TABLE(wire__puback_f);
    static const wire__table pubsub_route = TABLE(wire__pubsub_route_f);
    static const wire__table cast = TABLE(wire__cast_f);
    static const wire__table rpc_route = TABLE(wire__rpc_route_f);
    static const wire__table find_node = TABLE(wire__find_node_f);
    static const wire__table find_node_reply = TABLE(wire__find_node_reply_f);
    static const wire__table store = TABLE(wire__store_f);
    static const wire__table find_value = TABLE(wire__find_value_f);
    static const wire__table find_value_reply = TABLE(wire__find_value_reply_f);
    static const wire__table store_ack = TABLE(wire__store_ack_f);
    switch (type) {
    case WIRE_CONNECT: return &connect;
    case WIRE_DISCONNECT: return &disconnect;
    case WIRE_PING: return &ping;
    case WIRE_PONG: return &pong;
    case WIRE_PUBLISH: return &wire__publish_t;
    case WIRE_SUBSCRIBE: return &subscribe;
    case WIRE_UNSUBSCRIBE: return &unsubscribe;
    case WIRE_PUBSUB_ROUTE: return &pubsub_route;
    case WIRE_PUBACK: return &puback;
    case WIRE_CALL: return &wire__call_t;
    case WIRE_REPLY: return &wire__reply_t;
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

/* ---- typed decoding: one bounded pass --------------------------------------------------- */

/* The decoder reads and checks in the same walk over the payload: every length against the
 * bytes that remain, every container against the limits exactly as wire__check_value applies
 * them, and every value it does not read (unknown keys, keys that are no strings, raw values)
 * through wire__check_value itself. So a payload it accepts is one the validator accepts, and
 * its result is that of "validate everything, then decode". When it refuses a payload,
 * wire_decode_payload asks the validator which error the whole payload earns (the first
 * problem in byte order decides between WIRE_ELIMIT and WIRE_EMALFORMED); if the validator
 * finds none, the problem was a typed one, and every typed problem is WIRE_EMALFORMED. */

static bool wire__is_strbin(const char *p)
{
    enum mp_type t = mp_typeof(*p);
    return t == MP_STR || t == MP_BIN;
}

/* fixstr, str 8/16/32, bin 8/16/32 */
static inline bool wire__strbin_byte(uint8_t c)
{
    return (c & 0xe0) == 0xa0 || (c >= 0xc4 && c <= 0xc6) || (c >= 0xd9 && c <= 0xdb);
}

/* fixmap, map 16/32 */
static inline bool wire__map_byte(uint8_t c)
{
    return (c & 0xf0) == 0x80 || c == 0xde || c == 0xdf;
}

/* The str or bin at *pp, inside [*pp, end): its bytes in *s, *len; advances *pp past it. */
static inline bool wire__rd_strbin(const uint8_t *end, const uint8_t **pp, const uint8_t **s,
                                   uint32_t *len)
{
    const uint8_t *p = *pp;
    if (p >= end) {
        return false;
    }
    uint8_t c = *p++;
    size_t avail = (size_t)(end - p);
    uint32_t n;
    if ((c & 0xe0) == 0xa0) {
        n = c & 0x1f;
    } else {
        size_t h;
        switch (c) {
        case 0xc4:
        case 0xd9: h = 1; break;
        case 0xc5:
        case 0xda: h = 2; break;
        case 0xc6:
        case 0xdb: h = 4; break;
        default: return false;
        }
        if (avail < h) {
            return false;
        }
        n = (uint32_t)wire__load_be(p, h);
        p += h;
        avail -= h;
    }
    if (n > avail) {
        return false;
    }
    *s = p;
    *len = n;
    *pp = p + n;
    return true;
}

/* An integer of either msgpack family: *neg says whether it is negative (then *iv is it),
 * else *uv is it. */
static inline bool wire__rd_int(const uint8_t *end, const uint8_t **pp, bool *neg, uint64_t *uv,
                                int64_t *iv)
{
    const uint8_t *p = *pp;
    if (p >= end) {
        return false;
    }
    uint8_t c = *p++;
    if (c <= 0x7f) { /* positive fixint */
        *uv = c;
        *neg = false;
        *pp = p;
        return true;
    }
    if (c >= 0xe0) {              /* negative fixint */
        *iv = (int64_t)c - 0x100; /* -32..-1 */
        *neg = true;
        *uv = 0;
        *pp = p;
        return true;
    }
    if (c < 0xcc || c > 0xd3) {
        return false;
    }
    bool sgn = c >= 0xd0;
    size_t h = (size_t)1 << ((c - 0xcc) & 3); /* 0xcc..0xcf, 0xd0..0xd3: 1, 2, 4, 8 bytes */
    if ((size_t)(end - p) < h) {
        return false;
    }
    uint64_t v = wire__load_be(p, h);
    if (!sgn) {
        *uv = v;
        *neg = false;
    } else {
        int64_t i = h == 1 ? (int8_t)v : h == 2 ? (int16_t)v : h == 4 ? (int32_t)v : (int64_t)v;
        *iv = i;
        *neg = i < 0;
        *uv = *neg ? 0 : (uint64_t)i;
    }
    *pp = p + h;
    return true;
}

/* The header of a map (map) or array (!map) at *pp, a container at nesting `depth`: the
 * limits as wire__check_value applies them, then "every element takes at least one byte". */
static inline bool wire__rd_count(const wire__vctx *v, const uint8_t **pp, bool map, uint32_t depth,
                                  uint32_t *n)
{
    const uint8_t *p = *pp;
    if (p >= v->end) {
        return false;
    }
    uint8_t c = *p++;
    uint64_t cnt;
    if ((c & 0xf0) == (map ? 0x80 : 0x90)) {
        cnt = c & 0x0f;
    } else {
        size_t h;
        if (c == (map ? 0xde : 0xdc)) {
            h = 2;
        } else if (c == (map ? 0xdf : 0xdd)) {
            h = 4;
        } else {
            return false;
        }
        if ((size_t)(v->end - p) < h) {
            return false;
        }
        cnt = wire__load_be(p, h);
        p += h;
    }
    if (depth > v->max_depth || cnt > v->max_elems) {
        return false;
    }
    if ((map ? 2 * cnt : cnt) > (uint64_t)(v->end - p)) {
        return false;
    }
    *n = (uint32_t)cnt;
    *pp = p;
    return true;
}

/* a[0..n) == b[0..n), compared a word at a time (keys are short: 2 to 19 bytes). */
static inline bool wire__same(const uint8_t *a, const char *b, uint32_t n)
{
    if (n >= 8) {
        uint64_t x, y;
        for (uint32_t i = 0; i + 8 < n; i += 8) {
            memcpy(&x, a + i, 8);
            memcpy(&y, b + i, 8);
            if (x != y) {
                return false;
            }
        }
        memcpy(&x, a + n - 8, 8); /* the last 8 bytes, overlapping what was compared */
        memcpy(&y, b + n - 8, 8);
        return x == y;
    }
    if (n >= 4) {
        uint32_t x0, y0, x1, y1;
        memcpy(&x0, a, 4);
        memcpy(&y0, b, 4);
        memcpy(&x1, a + n - 4, 4);
        memcpy(&y1, b + n - 4, 4);
        return x0 == y0 && x1 == y1;
    }
    for (uint32_t i = 0; i < n; i++) {
        if (a[i] != (uint8_t)b[i]) {
            return false;
        }
    }
    return true;
}

/* The index of the field named key[0..klen) in t, or t->n. Encoders write the fields in table
 * order, so the one after the previous match (hint) is tried first. */
static inline uint32_t wire__lookup(const wire__table *t, const uint8_t *key, uint32_t klen,
                                    uint32_t hint)
{
    const wire__field *f = &t->f[hint];
    if (f->nlen == klen && wire__same(key, f->name, klen)) {
        return hint;
    }
    for (uint32_t i = 0; i < t->n; i++) {
        f = &t->f[i];
        if (f->nlen == klen && wire__same(key, f->name, klen)) {
            return i;
        }
    }
    return t->n;
}

/* ---- fast paths: the hot messages as encoders write them --------------------------------- */

/* PUBLISH, CALL / CAST and REPLY (with a result) laid out the way this encoder and v0.8's
 * write them: the keys in table order, every one present, no other key, nothing nested. Such
 * a map is read straight through, without the table walk, at the top of a payload or nested
 * (a PUBSUB_ROUTE's PUBLISH, an RPC_ROUTE's CALL or REPLY). Each returns the end of the map
 * at *p (a map at nesting `depth`), or NULL for anything else (another order, an unknown key,
 * a nil, a duplicate, a limit, any problem at all): that map then goes through the table
 * decoder, which decides; so on what they accept, these give what it gives. */

static inline bool wire__key_is(const uint8_t *end, const uint8_t **pp, const char *name,
                                uint32_t nlen)
{
    const uint8_t *s;
    uint32_t len;
    return wire__rd_strbin(end, pp, &s, &len) && len == nlen && wire__same(s, name, nlen);
}
#define WIRE__KEY_IS(end, pp, lit) wire__key_is((end), (pp), (lit), sizeof(lit) - 1)

static inline bool wire__rd_bytes(const uint8_t *end, const uint8_t **pp, wire_bytes *b)
{
    const uint8_t *s;
    uint32_t len;
    if (!wire__rd_strbin(end, pp, &s, &len)) {
        return false;
    }
    b->p = s;
    b->len = len;
    return true;
}

static const uint8_t *wire__publish_fast(const wire__vctx *v, const uint8_t *p, uint32_t depth,
                                         wire_publish *o)
{
    const uint8_t *end = v->end;
    bool neg;
    uint64_t u = 0;
    int64_t i = 0;
    if (p >= end || *p != 0x85 || v->max_elems < 5 || depth > v->max_depth) {
        return NULL;
    }
    p++;
    if (!WIRE__KEY_IS(end, &p, "topic") || !wire__rd_bytes(end, &p, &o->topic) ||
        !WIRE__KEY_IS(end, &p, "payload") || !wire__rd_bytes(end, &p, &o->payload) ||
        !WIRE__KEY_IS(end, &p, "qos") || !wire__rd_int(end, &p, &neg, &u, &i) || neg || u > 2 ||
        !WIRE__KEY_IS(end, &p, "retain") || p >= end || (*p != 0xc2 && *p != 0xc3)) {
        return NULL;
    }
    o->qos = (uint8_t)u;
    o->retain = *p++ == 0xc3;
    if (!WIRE__KEY_IS(end, &p, "message_id") || !wire__rd_bytes(end, &p, &o->message_id)) {
        return NULL;
    }
    return p;
}

/* CALL, and CAST with a call_id (the same struct and keys); the timeout may be left out. */
static const uint8_t *wire__call_fast(const wire__vctx *v, const uint8_t *p, uint32_t depth,
                                      wire_call *o)
{
    const uint8_t *end = v->end;
    if (p >= end || (*p != 0x84 && *p != 0x85) || v->max_elems < (uint32_t)(*p & 0x0f) ||
        depth > v->max_depth) {
        return NULL;
    }
    bool timeout = *p++ == 0x85;
    if (!WIRE__KEY_IS(end, &p, "call_id") || !wire__rd_bytes(end, &p, &o->call_id) ||
        !WIRE__KEY_IS(end, &p, "procedure") || !wire__rd_bytes(end, &p, &o->procedure) ||
        !WIRE__KEY_IS(end, &p, "args") || !wire__rd_bytes(end, &p, &o->args) ||
        !WIRE__KEY_IS(end, &p, "realm") || !wire__rd_bytes(end, &p, &o->realm)) {
        return NULL;
    }
    if (timeout) {
        bool neg;
        uint64_t u = 0;
        int64_t i = 0;
        if (!WIRE__KEY_IS(end, &p, "timeout") || !wire__rd_int(end, &p, &neg, &u, &i) || neg ||
            u > UINT32_MAX) {
            return NULL;
        }
        o->has_timeout = true;
        o->timeout_ms = (uint32_t)u;
    }
    return p;
}

/* REPLY with a result (an error map takes the table walk). */
static const uint8_t *wire__reply_fast(const wire__vctx *v, const uint8_t *p, uint32_t depth,
                                       wire_reply *o)
{
    const uint8_t *end = v->end;
    if (p >= end || *p != 0x82 || v->max_elems < 2 || depth > v->max_depth) {
        return NULL;
    }
    p++;
    if (!WIRE__KEY_IS(end, &p, "call_id") || !wire__rd_bytes(end, &p, &o->call_id) ||
        !WIRE__KEY_IS(end, &p, "result") || !wire__rd_bytes(end, &p, &o->result)) {
        return NULL;
    }
    o->is_error = false;
    return p;
}

static int wire__dmap(const wire__vctx *v, const wire__table *t, const uint8_t **pp, uint32_t depth,
                      void *base, uint32_t *mask, const uint8_t **deferred);

/* Decodes the value of field f at *pp; depth is the nesting of the map holding it. */
static int wire__dfield(const wire__vctx *v, const wire__field *f, const uint8_t **pp,
                        uint32_t depth, void *base, const uint8_t **deferred)
{
    char *at = (char *)base + f->off;
    const uint8_t *p = *pp;
    const uint8_t *s;
    bool neg;
    uint64_t u;
    int64_t i;
    uint32_t n, len;

    switch (f->kind) {
    case K_BYTES:
        if (!wire__rd_strbin(v->end, &p, &s, &len)) {
            return WIRE_EMALFORMED;
        }
        ((wire_bytes *)at)->p = s;
        ((wire_bytes *)at)->len = len;
        break;
    case K_QOS:
        if (!wire__rd_int(v->end, &p, &neg, &u, &i) || neg || u > 2) {
            return WIRE_EMALFORMED;
        }
        *(uint8_t *)at = (uint8_t)u;
        break;
    case K_BOOL:
        if (p >= v->end || (*p != 0xc2 && *p != 0xc3)) {
            return WIRE_EMALFORMED;
        }
        *(bool *)at = *p++ == 0xc3;
        break;
    case K_I64:
        if (!wire__rd_int(v->end, &p, &neg, &u, &i)) {
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
        if (!wire__rd_int(v->end, &p, &neg, &u, &i) || neg) {
            return WIRE_EMALFORMED;
        }
        *(uint64_t *)at = u;
        break;
    case K_U32:
        if (!wire__rd_int(v->end, &p, &neg, &u, &i) || neg || u > UINT32_MAX) {
            return WIRE_EMALFORMED;
        }
        *(uint32_t *)at = (uint32_t)u;
        break;
    case K_BLIST: {
        if (!wire__rd_count(v, &p, false, depth + 1, &n)) {
            return WIRE_EMALFORMED;
        }
        wire_bytes_list *l = (wire_bytes_list *)at;
        l->count = n;
        l->items = NULL;
        l->raw = p;
        for (uint32_t k = 0; k < n; k++) {
            if (!wire__rd_strbin(v->end, &p, &s, &len)) {
                return WIRE_EMALFORMED;
            }
        }
        break;
    }
    case K_NLIST: {
        if (!wire__rd_count(v, &p, false, depth + 1, &n)) {
            return WIRE_EMALFORMED;
        }
        wire_node_list *l = (wire_node_list *)at;
        l->count = n;
        l->items = NULL;
        l->raw = p;
        for (uint32_t k = 0; k < n; k++) {
            wire_node node;
            uint32_t m;
            memset(&node, 0, sizeof node);
            int rv = wire__dmap(v, &wire__node_t, &p, depth + 2, &node, &m, NULL);
            if (rv != 0) {
                return rv;
            }
        }
        break;
    }
    case K_RAW:
        s = p;
        if (wire__check_value(v, &p, depth) != 0) {
            return WIRE_EMALFORMED;
        }
        ((wire_bytes *)at)->p = s;
        ((wire_bytes *)at)->len = (size_t)(p - s);
        break;
    case K_MAP: {
        if (f->sub == &wire__publish_t) {
            const uint8_t *e = wire__publish_fast(v, p, depth + 1, (wire_publish *)at);
            if (e != NULL) {
                p = e;
                break;
            }
            memset(at, 0, sizeof(wire_publish));
        }
        uint32_t m;
        int rv = wire__dmap(v, f->sub, &p, depth + 1, at, &m, NULL);
        if (rv != 0) {
            return rv;
        }
        break;
    }
    case K_PTYPE:
    case K_FVRESULT: {
        if (!wire__rd_strbin(v->end, &p, &s, &len)) {
            return WIRE_EMALFORMED;
        }
        const char *one = f->kind == K_PTYPE ? "call" : "value";
        const char *two = f->kind == K_PTYPE ? "reply" : "nodes";
        if (len == strlen(one) && wire__same(s, one, len)) {
            *(uint8_t *)at = 1; /* WIRE_RPC_PAYLOAD_CALL / WIRE_FV_VALUE */
        } else if (len == strlen(two) && wire__same(s, two, len)) {
            *(uint8_t *)at = 2; /* WIRE_RPC_PAYLOAD_REPLY / WIRE_FV_NODES */
        } else {
            return WIRE_EMALFORMED;
        }
        break;
    }
    case K_RPCPAYLOAD:
        /* checked now, decoded once payload_type is known (wire__decode_body) */
        if (p >= v->end || !wire__map_byte(*p) || deferred == NULL) {
            return WIRE_EMALFORMED;
        }
        *deferred = p;
        if (wire__check_value(v, &p, depth) != 0) {
            return WIRE_EMALFORMED;
        }
        break;
    default: return WIRE_EMALFORMED;
    }
    if (f->has_off >= 0) {
        *((bool *)((char *)base + f->has_off)) = true;
    }
    *pp = p;
    return 0;
}

/* Decodes the map at *pp (at nesting depth) into base by table t; *mask gets a bit per field
 * present. A key that is present twice, a required key that is missing or a value of the
 * wrong type is refused; unknown and non-string keys are checked and skipped; an optional key
 * whose value is nil counts as absent. */
static int wire__dmap(const wire__vctx *v, const wire__table *t, const uint8_t **pp, uint32_t depth,
                      void *base, uint32_t *mask, const uint8_t **deferred)
{
    const uint8_t *p = *pp;
    uint32_t n;
    if (!wire__rd_count(v, &p, true, depth, &n)) {
        return WIRE_EMALFORMED;
    }
    uint32_t seen = 0, present = 0, hint = 0;
    for (uint32_t k = 0; k < n; k++) {
        if (p >= v->end) {
            return WIRE_EMALFORMED;
        }
        if (!wire__strbin_byte(*p)) { /* a key that is no string: not ours, skip the pair */
            if (wire__check_value(v, &p, depth) != 0) { /* the key */
                return WIRE_EMALFORMED;
            }
            if (wire__check_value(v, &p, depth) != 0) { /* its value */
                return WIRE_EMALFORMED;
            }
            continue;
        }
        const uint8_t *key;
        uint32_t klen;
        if (!wire__rd_strbin(v->end, &p, &key, &klen)) {
            return WIRE_EMALFORMED;
        }
        uint32_t fi = wire__lookup(t, key, klen, hint);
        if (fi == t->n) { /* unknown key: forward compatibility */
            if (wire__check_value(v, &p, depth) != 0) {
                return WIRE_EMALFORMED;
            }
            continue;
        }
        hint = fi + 1 == t->n ? 0 : fi + 1;
        if (seen & (1u << fi)) {
            return WIRE_EMALFORMED; /* duplicate key: ambiguous, refuse */
        }
        seen |= 1u << fi;
        if (p >= v->end) {
            return WIRE_EMALFORMED;
        }
        const wire__field *f = &t->f[fi];
        if (!f->req && *p == 0xc0) { /* optional nil = absent */
            p++;
            continue;
        }
        int rv = wire__dfield(v, f, &p, depth, base, deferred);
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
static int wire__reply_fix(wire_reply *r, uint32_t mask)
{
    bool res = mask & (1u << REPLY_F_RESULT), err = mask & (1u << REPLY_F_ERROR);
    if (res == err) {
        return WIRE_EMALFORMED;
    }
    r->is_error = err;
    return 0;
}

/* The payload map (depth 1) must span [p, v->end) exactly. */
static int wire__decode_body(const wire__vctx *v, unsigned type, const uint8_t *p, wire_msg *m)
{
    switch (type) { /* a whole payload must end where the map does */
    case WIRE_PUBLISH:
        if (wire__publish_fast(v, p, 1, &m->publish) == v->end) {
            return 0;
        }
        memset(&m->publish, 0, sizeof m->publish);
        break;
    case WIRE_CALL:
    case WIRE_CAST:
        if (wire__call_fast(v, p, 1, &m->call) == v->end) {
            return 0;
        }
        memset(&m->call, 0, sizeof m->call);
        break;
    case WIRE_REPLY:
        if (wire__reply_fast(v, p, 1, &m->reply) == v->end) {
            return 0;
        }
        memset(&m->reply, 0, sizeof m->reply);
        break;
    default: break;
    }
    const wire__table *t = wire__table_of(type);
    const uint8_t *deferred = NULL;
    uint32_t mask = 0;
    int rv = wire__dmap(v, t, &p, 1, &m->connect, &mask, &deferred);
    if (rv != 0) {
        return rv;
    }
    if (p != v->end) {
        return WIRE_EMALFORMED; /* trailing bytes */
    }
    switch (type) {
    case WIRE_REPLY: return wire__reply_fix(&m->reply, mask);
    case WIRE_RPC_ROUTE: {
        wire_rpc_route *r = &m->rpc_route;
        if (r->payload_type == WIRE_RPC_PAYLOAD_CALL) {
            if (wire__call_fast(v, deferred, 2, &r->call) != NULL) {
                return 0;
            }
            memset(&r->call, 0, sizeof r->call);
            return wire__dmap(v, &wire__call_t, &deferred, 2, &r->call, &mask, NULL);
        }
        if (wire__reply_fast(v, deferred, 2, &r->reply) != NULL) {
            return 0;
        }
        memset(&r->reply, 0, sizeof r->reply);
        rv = wire__dmap(v, &wire__reply_t, &deferred, 2, &r->reply, &mask, NULL);
        return rv != 0 ? rv : wire__reply_fix(&r->reply, mask);
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

int wire_decode_payload(unsigned type, const uint8_t *payload, size_t len, const wire_limits *lim,
                        wire_msg *out)
{
    wire_limits l;
    memset(out, 0, sizeof *out);
    out->type = (uint8_t)type;
    int rv = wire__limits(lim, &l);
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
    wire__vctx v = {payload + len, l.max_depth, l.max_elems};
    rv = wire__decode_body(&v, type, payload, out);
    if (rv != 0) {
        /* Which error: the validator's verdict on the whole payload, else a typed problem. */
        rv = wire__check_exact(payload, len, l.max_depth, l.max_elems);
        if (rv == 0) {
            rv = WIRE_EMALFORMED;
        }
        memset(out, 0, sizeof *out);
        out->type = (uint8_t)type;
    }
    return rv;
}

int wire_decode_header(const uint8_t *buf, size_t len, const wire_limits *lim, wire_header *h)
{
    wire_limits l;
    int rv = wire__limits(lim, &l);
    if (rv != 0) {
        return rv;
    }
    if (len < WIRE_HEADER_LEN) {
        return WIRE_EAGAIN;
    }
    if (buf[0] != WIRE_VERSION) {
        return WIRE_EUNSUPPORTED_VERSION;
    }
    if (!wire_type_known(buf[1])) {
        return WIRE_EUNKNOWN_TYPE;
    }
    uint32_t plen = (uint32_t)wire__load_be(buf + 4, 4);
    if (plen > l.max_frame_size - WIRE_HEADER_LEN) {
        return WIRE_EFRAME_TOO_LARGE;
    }
    h->version = buf[0];
    h->type = buf[1];
    h->flags = buf[2];
    h->payload_len = plen;
    return 0;
}

int wire_decode(const uint8_t *buf, size_t len, const wire_limits *lim, wire_msg *out,
                size_t *consumed)
{
    wire_header h;
    *consumed = 0;
    int rv = wire_decode_header(buf, len, lim, &h);
    if (rv != 0) {
        memset(out, 0, sizeof *out);
        return rv;
    }
    if (len - WIRE_HEADER_LEN < h.payload_len) {
        memset(out, 0, sizeof *out);
        return WIRE_EAGAIN;
    }
    rv = wire_decode_payload(h.type, buf + WIRE_HEADER_LEN, h.payload_len, lim, out);
    if (rv == 0) {
        *consumed = WIRE_HEADER_LEN + (size_t)h.payload_len;
    }
    return rv;
}

/* ---- lists ------------------------------------------------------------------------------ */

wire_list_iter wire_bytes_list_iter(const wire_bytes_list *l)
{
    wire_list_iter it = {l->raw, l->items, 0, l->count};
    return it;
}

bool wire_bytes_list_next(wire_list_iter *it, wire_bytes *out)
{
    if (it->next >= it->count) {
        return false;
    }
    if (it->items != NULL) {
        *out = ((const wire_bytes *)it->items)[it->next++];
        return true;
    }
    const char *p = (const char *)it->pos;
    if (p == NULL || !wire__is_strbin(p)) {
        return false;
    }
    uint32_t len;
    out->p = (const uint8_t *)mp_decode_strbin(&p, &len);
    out->len = len;
    it->pos = (const uint8_t *)p;
    it->next++;
    return true;
}

wire_list_iter wire_node_list_iter(const wire_node_list *l)
{
    wire_list_iter it = {l->raw, l->items, 0, l->count};
    return it;
}

bool wire_node_list_next(wire_list_iter *it, wire_node *out)
{
    if (it->next >= it->count) {
        return false;
    }
    if (it->items != NULL) {
        *out = ((const wire_node *)it->items)[it->next++];
        return true;
    }
    const uint8_t *p = it->pos;
    uint32_t mask;
    memset(out, 0, sizeof *out);
    if (p == NULL) {
        return false;
    }
    /* The list was checked when it was decoded: a plain walk finds the element's extent. */
    const char *q = (const char *)p;
    mp_next(&q);
    wire__vctx v = {(const uint8_t *)q, UINT32_MAX, UINT32_MAX};
    if (wire__dmap(&v, &wire__node_t, &p, 1, out, &mask, NULL) != 0) {
        return false;
    }
    it->pos = p;
    it->next++;
    return true;
}

/* ---- encoding: the exact size first, then one write pass -------------------------------- */

/* Sizing checks everything wire_encode can refuse (all of it WIRE_EINVAL) and computes the
 * exact frame size; writing then needs no checks. Sizes are summed in 64 bits and refused as
 * soon as they pass the largest frame (a u32 payload), so the sum cannot wrap. */
#define WIRE__FRAME_MAX ((uint64_t)UINT32_MAX + WIRE_HEADER_LEN)

static inline uint64_t wire__bin_size(uint64_t len)
{
    return len + (len <= 0xff ? 2 : len <= 0xffff ? 3 : 5);
}

static inline uint64_t wire__uint_size(uint64_t v)
{
    return v <= 0x7f ? 1 : v <= 0xff ? 2 : v <= 0xffff ? 3 : v <= 0xffffffff ? 5 : 9;
}

static inline uint64_t wire__int_size(int64_t v)
{
    if (v >= 0) {
        return wire__uint_size((uint64_t)v);
    }
    return v >= -0x20 ? 1 : v >= INT8_MIN ? 2 : v >= INT16_MIN ? 3 : v >= INT32_MIN ? 5 : 9;
}

/* A map or array header for n pairs / elements. */
static inline uint64_t wire__count_size(uint64_t n)
{
    return n <= 15 ? 1 : n <= 0xffff ? 3 : 5;
}

static inline bool wire__bytes_ok(const wire_bytes *b)
{
    return (b->p != NULL || b->len == 0) && b->len <= UINT32_MAX;
}

/* Sizes are returned as values, WIRE__BAD for "cannot be encoded". */
#define WIRE__BAD UINT64_MAX

static inline uint64_t wire__size_bytes(const wire_bytes *b)
{
    return wire__bytes_ok(b) ? wire__bin_size(b->len) : WIRE__BAD;
}

static inline uint8_t *wire__w_be(uint8_t *d, uint64_t v, unsigned n)
{
    for (unsigned i = n; i-- > 0;) {
        d[i] = (uint8_t)v;
        v >>= 8;
    }
    return d + n;
}

static inline uint8_t *wire__w_bin(uint8_t *d, const void *p, size_t len)
{
    if (len <= 0xff) {
        *d++ = 0xc4;
        *d++ = (uint8_t)len;
    } else if (len <= 0xffff) {
        *d++ = 0xc5;
        d = wire__w_be(d, len, 2);
    } else {
        *d++ = 0xc6;
        d = wire__w_be(d, len, 4);
    }
    if (len > 0) {
        memcpy(d, p, len);
    }
    return d + len;
}

static inline uint8_t *wire__w_uint(uint8_t *d, uint64_t v)
{
    if (v <= 0x7f) {
        *d++ = (uint8_t)v;
        return d;
    }
    if (v <= 0xff) {
        *d++ = 0xcc;
        return wire__w_be(d, v, 1);
    }
    if (v <= 0xffff) {
        *d++ = 0xcd;
        return wire__w_be(d, v, 2);
    }
    if (v <= 0xffffffff) {
        *d++ = 0xce;
        return wire__w_be(d, v, 4);
    }
    *d++ = 0xcf;
    return wire__w_be(d, v, 8);
}

static inline uint8_t *wire__w_int(uint8_t *d, int64_t v)
{
    if (v >= 0) {
        return wire__w_uint(d, (uint64_t)v);
    }
    if (v >= -0x20) {
        *d++ = (uint8_t)(0xe0 | ((uint64_t)v & 0x1f));
        return d;
    }
    if (v >= INT8_MIN) {
        *d++ = 0xd0;
        return wire__w_be(d, (uint64_t)v, 1);
    }
    if (v >= INT16_MIN) {
        *d++ = 0xd1;
        return wire__w_be(d, (uint64_t)v, 2);
    }
    if (v >= INT32_MIN) {
        *d++ = 0xd2;
        return wire__w_be(d, (uint64_t)v, 4);
    }
    *d++ = 0xd3;
    return wire__w_be(d, (uint64_t)v, 8);
}

static inline uint8_t *wire__w_count(uint8_t *d, uint32_t n, bool map)
{
    if (n <= 15) {
        *d++ = (uint8_t)((map ? 0x80 : 0x90) | n);
        return d;
    }
    if (n <= 0xffff) {
        *d++ = map ? 0xde : 0xdc;
        return wire__w_be(d, n, 2);
    }
    *d++ = map ? 0xdf : 0xdd;
    return wire__w_be(d, n, 4);
}

static bool wire__field_present(const wire__field *f, const void *base)
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

/* K_PTYPE / K_FVRESULT: the string a selector is written as, or NULL for a bad selector. */
static const char *wire__selector(const wire__field *f, uint8_t v)
{
    if (v == 1) {
        return f->kind == K_PTYPE ? "call" : "value";
    }
    if (v == 2) {
        return f->kind == K_PTYPE ? "reply" : "nodes";
    }
    return NULL;
}

/* PUBLISH, the message of the pub/sub hot path, written straight from its struct (at the top
 * of a frame and inside a PUBSUB_ROUTE): the bytes wire__publish_t gives (its five keys in
 * table order, all required), without the walk. tests/unit/test_wire_fast.c checks it against
 * msgpuck, tests/unit/test_wire_diff.c against the table encoder it replaced. */
static const uint8_t wire__k_topic[] = {0xc4, 5, 't', 'o', 'p', 'i', 'c'};
static const uint8_t wire__k_payload[] = {0xc4, 7, 'p', 'a', 'y', 'l', 'o', 'a', 'd'};
static const uint8_t wire__k_qos[] = {0xc4, 3, 'q', 'o', 's'};
static const uint8_t wire__k_retain[] = {0xc4, 6, 'r', 'e', 't', 'a', 'i', 'n'};
static const uint8_t wire__k_message_id[] = {0xc4, 10,  'm', 'e', 's', 's',
                                             'a',  'g', 'e', '_', 'i', 'd'};
enum { /* map header, the five keys, qos (0..2: fixint) and retain (bool) */
       WIRE__PUB_FIXED = 1 + sizeof wire__k_topic + sizeof wire__k_payload + sizeof wire__k_qos +
                         1 + sizeof wire__k_retain + 1 + sizeof wire__k_message_id
};

static inline uint64_t wire__publish_size(const wire_publish *p)
{
    if (p->qos > 2 || !wire__bytes_ok(&p->topic) || !wire__bytes_ok(&p->payload) ||
        !wire__bytes_ok(&p->message_id)) {
        return WIRE__BAD;
    }
    return WIRE__PUB_FIXED + wire__bin_size(p->topic.len) + wire__bin_size(p->payload.len) +
           wire__bin_size(p->message_id.len);
}

static inline uint8_t *wire__publish_write(const wire_publish *p, uint8_t *d)
{
    *d++ = 0x85;
    memcpy(d, wire__k_topic, sizeof wire__k_topic);
    d = wire__w_bin(d + sizeof wire__k_topic, p->topic.p, p->topic.len);
    memcpy(d, wire__k_payload, sizeof wire__k_payload);
    d = wire__w_bin(d + sizeof wire__k_payload, p->payload.p, p->payload.len);
    memcpy(d, wire__k_qos, sizeof wire__k_qos);
    d += sizeof wire__k_qos;
    *d++ = p->qos;
    memcpy(d, wire__k_retain, sizeof wire__k_retain);
    d += sizeof wire__k_retain;
    *d++ = p->retain ? 0xc3 : 0xc2;
    memcpy(d, wire__k_message_id, sizeof wire__k_message_id);
    d += sizeof wire__k_message_id;
    return wire__w_bin(d, p->message_id.p, p->message_id.len);
}

/* CALL and CAST (whose call_id is optional), and REPLY: the RPC hot path, written straight
 * from their structs like PUBLISH, at the top of a frame and inside an RPC_ROUTE: the bytes of
 * wire__call_t / wire__cast_f / wire__reply_t (tests/unit/test_wire_diff.c checks them against
 * the table encoder it replaced). */
static const uint8_t wire__k_call_id[] = {0xc4, 7, 'c', 'a', 'l', 'l', '_', 'i', 'd'};
static const uint8_t wire__k_procedure[] = {0xc4, 9, 'p', 'r', 'o', 'c', 'e', 'd', 'u', 'r', 'e'};
static const uint8_t wire__k_args[] = {0xc4, 4, 'a', 'r', 'g', 's'};
static const uint8_t wire__k_realm[] = {0xc4, 5, 'r', 'e', 'a', 'l', 'm'};
static const uint8_t wire__k_timeout[] = {0xc4, 7, 't', 'i', 'm', 'e', 'o', 'u', 't'};
static const uint8_t wire__k_result[] = {0xc4, 6, 'r', 'e', 's', 'u', 'l', 't'};
static const uint8_t wire__k_error[] = {0xc4, 5, 'e', 'r', 'r', 'o', 'r'};
static const uint8_t wire__k_code[] = {0xc4, 4, 'c', 'o', 'd', 'e'};
static const uint8_t wire__k_message[] = {0xc4, 7, 'm', 'e', 's', 's', 'a', 'g', 'e'};

#define WIRE__KEY(d, k) (memcpy((d), (k), sizeof(k)), (d) + sizeof(k))

static inline uint64_t wire__call_size(const wire_call *c, bool cast)
{
    bool has_id = !cast || c->call_id.p != NULL;
    if ((has_id && !wire__bytes_ok(&c->call_id)) || !wire__bytes_ok(&c->procedure) ||
        !wire__bytes_ok(&c->args) || !wire__bytes_ok(&c->realm)) {
        return WIRE__BAD;
    }
    uint64_t n = 1 + sizeof wire__k_procedure + wire__bin_size(c->procedure.len) +
                 sizeof wire__k_args + wire__bin_size(c->args.len) + sizeof wire__k_realm +
                 wire__bin_size(c->realm.len);
    if (has_id) {
        n += sizeof wire__k_call_id + wire__bin_size(c->call_id.len);
    }
    if (c->has_timeout) {
        n += sizeof wire__k_timeout + wire__uint_size(c->timeout_ms);
    }
    return n;
}

static inline uint8_t *wire__call_write(const wire_call *c, bool cast, uint8_t *d)
{
    bool has_id = !cast || c->call_id.p != NULL;
    *d++ = (uint8_t)(0x80 | (3 + (has_id ? 1 : 0) + (c->has_timeout ? 1 : 0)));
    if (has_id) {
        d = WIRE__KEY(d, wire__k_call_id);
        d = wire__w_bin(d, c->call_id.p, c->call_id.len);
    }
    d = WIRE__KEY(d, wire__k_procedure);
    d = wire__w_bin(d, c->procedure.p, c->procedure.len);
    d = WIRE__KEY(d, wire__k_args);
    d = wire__w_bin(d, c->args.p, c->args.len);
    d = WIRE__KEY(d, wire__k_realm);
    d = wire__w_bin(d, c->realm.p, c->realm.len);
    if (c->has_timeout) {
        d = WIRE__KEY(d, wire__k_timeout);
        d = wire__w_uint(d, c->timeout_ms);
    }
    return d;
}

static inline uint64_t wire__reply_size(const wire_reply *r)
{
    if (!wire__bytes_ok(&r->call_id)) {
        return WIRE__BAD;
    }
    uint64_t n = 1 + sizeof wire__k_call_id + wire__bin_size(r->call_id.len);
    if (r->is_error) {
        if (!wire__bytes_ok(&r->error.code) || !wire__bytes_ok(&r->error.message)) {
            return WIRE__BAD;
        }
        return n + sizeof wire__k_error + 1 + sizeof wire__k_code +
               wire__bin_size(r->error.code.len) + sizeof wire__k_message +
               wire__bin_size(r->error.message.len);
    }
    if (!wire__bytes_ok(&r->result)) {
        return WIRE__BAD;
    }
    return n + sizeof wire__k_result + wire__bin_size(r->result.len);
}

static inline uint8_t *wire__reply_write(const wire_reply *r, uint8_t *d)
{
    *d++ = 0x82;
    d = WIRE__KEY(d, wire__k_call_id);
    d = wire__w_bin(d, r->call_id.p, r->call_id.len);
    if (r->is_error) {
        d = WIRE__KEY(d, wire__k_error);
        *d++ = 0x82;
        d = WIRE__KEY(d, wire__k_code);
        d = wire__w_bin(d, r->error.code.p, r->error.code.len);
        d = WIRE__KEY(d, wire__k_message);
        return wire__w_bin(d, r->error.message.p, r->error.message.len);
    }
    d = WIRE__KEY(d, wire__k_result);
    return wire__w_bin(d, r->result.p, r->result.len);
}

static uint64_t wire__size_map(const wire__table *t, const void *base);

/* The size of field f's value, or WIRE__BAD if it cannot be encoded. Never more than
 * WIRE__FRAME_MAX + 5 otherwise, so callers may add a few before they compare. */
static uint64_t wire__size_field(const wire__field *f, const void *base)
{
    const char *at = (const char *)base + f->off;
    switch (f->kind) {
    case K_BYTES: return wire__size_bytes((const wire_bytes *)at);
    case K_QOS: return *(const uint8_t *)at > 2 ? WIRE__BAD : 1;
    case K_BOOL: return 1;
    case K_I64: return wire__int_size(*(const int64_t *)at);
    case K_U32: return wire__uint_size(*(const uint32_t *)at);
    case K_U64: return wire__uint_size(*(const uint64_t *)at);
    case K_BLIST: {
        const wire_bytes_list *l = (const wire_bytes_list *)at;
        wire_list_iter it = wire_bytes_list_iter(l);
        wire_bytes b;
        uint32_t got = 0;
        uint64_t n = wire__count_size(l->count);
        while (wire_bytes_list_next(&it, &b)) {
            uint64_t e = wire__size_bytes(&b);
            if (e == WIRE__BAD || (n += e) > WIRE__FRAME_MAX) {
                return WIRE__BAD;
            }
            got++;
        }
        return got == l->count ? n : WIRE__BAD;
    }
    case K_NLIST: {
        const wire_node_list *l = (const wire_node_list *)at;
        wire_list_iter it = wire_node_list_iter(l);
        wire_node node;
        uint32_t got = 0;
        uint64_t n = wire__count_size(l->count);
        while (wire_node_list_next(&it, &node)) {
            uint64_t e = wire__size_map(&wire__node_t, &node);
            if (e == WIRE__BAD || (n += e) > WIRE__FRAME_MAX) {
                return WIRE__BAD;
            }
            got++;
        }
        return got == l->count ? n : WIRE__BAD;
    }
    case K_RAW: {
        /* Well-formed and one value only; the encoder's own bound on nesting is the stack cap. */
        const wire_bytes *b = (const wire_bytes *)at;
        if (b->p == NULL || b->len > WIRE__FRAME_MAX ||
            wire__check_exact(b->p, b->len, WIRE_MAX_DEPTH_CAP, UINT32_MAX) != 0) {
            return WIRE__BAD;
        }
        return b->len;
    }
    case K_MAP:
        return f->sub == &wire__publish_t ? wire__publish_size((const wire_publish *)at)
                                          : wire__size_map(f->sub, at);
    case K_PTYPE:
    case K_FVRESULT: {
        const char *sel = wire__selector(f, *(const uint8_t *)at);
        return sel == NULL ? WIRE__BAD : wire__bin_size(strlen(sel));
    }
    case K_RPCPAYLOAD: {
        const wire_rpc_route *r = (const wire_rpc_route *)base;
        if (r->payload_type == WIRE_RPC_PAYLOAD_CALL) {
            return wire__call_size(&r->call, false);
        }
        return wire__reply_size(&r->reply); /* a bad type fails at K_PTYPE */
    }
    default: return WIRE__BAD;
    }
}

/* The size of the map of base by table t, or WIRE__BAD. */
static uint64_t wire__size_map(const wire__table *t, const void *base)
{
    uint32_t cnt = 0;
    uint64_t n = 0;
    for (uint32_t i = 0; i < t->n; i++) {
        const wire__field *f = &t->f[i];
        if (wire__field_present(f, base)) {
            uint64_t e = wire__size_field(f, base);
            cnt++;
            n += 2 + (uint64_t)f->nlen + e; /* the key is a bin 8 */
            if (e == WIRE__BAD || n > WIRE__FRAME_MAX) {
                return WIRE__BAD;
            }
        }
    }
    n += wire__count_size(cnt);
    return n > WIRE__FRAME_MAX ? WIRE__BAD : n;
}

static uint8_t *wire__write_map(const wire__table *t, const void *base, uint8_t *d);

/* Writes field f's value (sized and checked by wire__size_field). */
static uint8_t *wire__write_field(const wire__field *f, const void *base, uint8_t *d)
{
    const char *at = (const char *)base + f->off;
    switch (f->kind) {
    case K_BYTES: {
        const wire_bytes *b = (const wire_bytes *)at;
        return wire__w_bin(d, b->p, b->len);
    }
    case K_QOS: return wire__w_uint(d, *(const uint8_t *)at);
    case K_BOOL: *d++ = *(const bool *)at ? 0xc3 : 0xc2; return d;
    case K_I64: return wire__w_int(d, *(const int64_t *)at);
    case K_U32: return wire__w_uint(d, *(const uint32_t *)at);
    case K_U64: return wire__w_uint(d, *(const uint64_t *)at);
    case K_BLIST: {
        const wire_bytes_list *l = (const wire_bytes_list *)at;
        wire_list_iter it = wire_bytes_list_iter(l);
        wire_bytes b;
        d = wire__w_count(d, l->count, false);
        while (wire_bytes_list_next(&it, &b)) {
            d = wire__w_bin(d, b.p, b.len);
        }
        return d;
    }
    case K_NLIST: {
        const wire_node_list *l = (const wire_node_list *)at;
        wire_list_iter it = wire_node_list_iter(l);
        wire_node node;
        d = wire__w_count(d, l->count, false);
        while (wire_node_list_next(&it, &node)) {
            d = wire__write_map(&wire__node_t, &node, d);
        }
        return d;
    }
    case K_RAW: {
        const wire_bytes *b = (const wire_bytes *)at;
        memcpy(d, b->p, b->len);
        return d + b->len;
    }
    case K_MAP:
        return f->sub == &wire__publish_t ? wire__publish_write((const wire_publish *)at, d)
                                          : wire__write_map(f->sub, at, d);
    case K_PTYPE:
    case K_FVRESULT: {
        const char *s = wire__selector(f, *(const uint8_t *)at);
        return wire__w_bin(d, s, strlen(s));
    }
    case K_RPCPAYLOAD: {
        const wire_rpc_route *r = (const wire_rpc_route *)base;
        if (r->payload_type == WIRE_RPC_PAYLOAD_CALL) {
            return wire__call_write(&r->call, false, d);
        }
        return wire__reply_write(&r->reply, d);
    }
    default: return d; /* refused by wire__size_field */
    }
}

/* Copies a key name (2 to 19 bytes) a word at a time; a memcpy of a variable length this
 * short costs more than the copy. */
static inline uint8_t *wire__w_name(uint8_t *d, const char *s, uint32_t n)
{
    if (n >= 8) {
        for (uint32_t i = 0; i + 8 < n; i += 8) {
            memcpy(d + i, s + i, 8);
        }
        memcpy(d + n - 8, s + n - 8, 8); /* the last 8, overlapping what was copied */
    } else if (n >= 4) {
        memcpy(d, s, 4);
        memcpy(d + n - 4, s + n - 4, 4);
    } else {
        for (uint32_t i = 0; i < n; i++) {
            d[i] = (uint8_t)s[i];
        }
    }
    return d + n;
}

static uint8_t *wire__write_map(const wire__table *t, const void *base, uint8_t *d)
{
    uint32_t n = 0;
    for (uint32_t i = 0; i < t->n; i++) {
        n += wire__field_present(&t->f[i], base) ? 1 : 0;
    }
    d = wire__w_count(d, n, true);
    for (uint32_t i = 0; i < t->n; i++) {
        const wire__field *f = &t->f[i];
        if (wire__field_present(f, base)) {
            *d++ = 0xc4;
            *d++ = f->nlen;
            d = wire__w_name(d, f->name, f->nlen);
            d = wire__write_field(f, base, d);
        }
    }
    return d;
}

/* The payload size of m, or WIRE__BAD if m cannot be encoded. */
static uint64_t wire__size_msg(const wire_msg *m)
{
    switch (m->type) {
    case WIRE_PUBLISH: return wire__publish_size(&m->publish);
    case WIRE_CALL: return wire__call_size(&m->call, false);
    case WIRE_CAST: return wire__call_size(&m->cast, true);
    case WIRE_REPLY: return wire__reply_size(&m->reply);
    default: {
        const wire__table *t = wire__table_of(m->type);
        return t == NULL ? WIRE__BAD : wire__size_map(t, &m->connect);
    }
    }
}

size_t wire_encoded_size(const wire_msg *m)
{
    uint64_t n = wire__size_msg(m);
    /* every part is at most WIRE__FRAME_MAX + 5 and there are a few: no wrap */
    if (n > WIRE__FRAME_MAX - WIRE_HEADER_LEN || n + WIRE_HEADER_LEN > SIZE_MAX) {
        return 0;
    }
    return (size_t)n + WIRE_HEADER_LEN;
}

void wire_encode_header(uint8_t out[WIRE_HEADER_LEN], uint8_t type, uint32_t payload_len)
{
    out[0] = WIRE_VERSION;
    out[1] = type;
    out[2] = 0;
    out[3] = 0;
    (void)wire__w_be(out + 4, payload_len, 4);
}

/* Writes the frame of m, whose size wire_encoded_size gave, into buf. */
static void wire__write_msg(const wire_msg *m, uint8_t *buf, size_t size)
{
    wire_encode_header(buf, (uint8_t)m->type, (uint32_t)(size - WIRE_HEADER_LEN));
    uint8_t *d = buf + WIRE_HEADER_LEN;
    switch (m->type) {
    case WIRE_PUBLISH: d = wire__publish_write(&m->publish, d); break;
    case WIRE_CALL: d = wire__call_write(&m->call, false, d); break;
    case WIRE_CAST: d = wire__call_write(&m->cast, true, d); break;
    case WIRE_REPLY: d = wire__reply_write(&m->reply, d); break;
    default: d = wire__write_map(wire__table_of(m->type), &m->connect, d); break;
    }
    assert((size_t)(d - buf) == size);
    (void)d;
}

int wire_encode(const wire_msg *m, uint8_t *buf, size_t cap, size_t *len)
{
    size_t need = wire_encoded_size(m);
    *len = need;
    if (need == 0) {
        return WIRE_EINVAL;
    }
    if (buf == NULL || need > cap) {
        return WIRE_ENOBUF;
    }
    wire__write_msg(m, buf, need);
    return 0;
}

int wire_encode_alloc(const wire_msg *m, uint8_t **out, size_t *len)
{
    *out = NULL;
    *len = 0;
    size_t need = wire_encoded_size(m);
    if (need == 0) {
        return WIRE_EINVAL;
    }
    uint8_t *buf = malloc(need);
    if (buf == NULL) {
        return WIRE_ENOMEM;
    }
    wire__write_msg(m, buf, need);
    *out = buf;
    *len = need;
    return 0;
}

/* ---- streaming reassembly --------------------------------------------------------------- */

/* A buffer above this is released between frames, so a connection that once carried a big
 * frame does not keep it: idle connections stay cheap. */
#define WIRE_READER_KEEP 4096
#define WIRE_READER_MIN 1024

int wire_reader_init(wire_reader *r, const wire_limits *lim)
{
    memset(r, 0, sizeof *r);
    return wire__limits(lim, &r->limits);
}

void wire_reader_free(wire_reader *r)
{
    free(r->buf);
    r->buf = NULL;
    r->cap = 0;
    r->have = 0;
    r->hdr_have = 0;
    r->delivered = false;
}

size_t wire_reader_buffered(const wire_reader *r)
{
    return r->delivered ? 0 : (size_t)r->hdr_have + r->have;
}

size_t wire_reader_memory(const wire_reader *r)
{
    return r->cap;
}

/* Makes room for `want` payload bytes (want <= the checked payload length), growing with what
 * has arrived rather than with what the header announced. */
static int wire__reader_reserve(wire_reader *r, size_t want)
{
    if (want <= r->cap) {
        return 0;
    }
    size_t nc = r->cap < WIRE_READER_MIN / 2 ? WIRE_READER_MIN : r->cap * 2;
    if (nc < want) {
        nc = want;
    }
    if (nc > r->cur.payload_len) {
        nc = r->cur.payload_len;
    }
    uint8_t *nb = realloc(r->buf, nc);
    if (nb == NULL) {
        return WIRE_ENOMEM;
    }
    r->buf = nb;
    r->cap = nc;
    return 0;
}

static void wire__frame_out(const wire_reader *r, const uint8_t *payload, wire_frame *out)
{
    out->type = r->cur.type;
    out->flags = r->cur.flags;
    out->payload_len = r->cur.payload_len;
    out->payload = payload;
}

int wire_reader_feed(wire_reader *r, const uint8_t *data, size_t len, size_t *consumed,
                     wire_frame *out)
{
    size_t used = 0;
    *consumed = 0;
    if (r->err != 0) {
        return r->err;
    }
    if (r->delivered) { /* the frame handed out last time is done with */
        r->delivered = false;
        r->hdr_have = 0;
        r->have = 0;
        if (r->cap > WIRE_READER_KEEP) {
            free(r->buf);
            r->buf = NULL;
            r->cap = 0;
        }
    }
    if (r->hdr_have < WIRE_HEADER_LEN) {
        size_t k = WIRE_HEADER_LEN - r->hdr_have;
        if (k > len) {
            k = len;
        }
        if (k > 0) {
            memcpy(r->hdr + r->hdr_have, data, k);
        }
        r->hdr_have += (uint32_t)k;
        used = k;
        if (r->hdr_have < WIRE_HEADER_LEN) {
            *consumed = used;
            return WIRE_EAGAIN;
        }
        /* The length is checked here, before a single payload byte is stored. */
        int rv = wire_decode_header(r->hdr, WIRE_HEADER_LEN, &r->limits, &r->cur);
        if (rv != 0) {
            r->err = rv;
            *consumed = used;
            return rv;
        }
    }
    size_t rem = len - used;
    uint32_t plen = r->cur.payload_len;
    if (r->have == 0 && rem >= plen) { /* the whole payload is in this chunk: no copy */
        wire__frame_out(r, data + used, out);
        r->hdr_have = 0;
        *consumed = used + plen;
        return 0;
    }
    size_t k = plen - r->have;
    if (k > rem) {
        k = rem;
    }
    if (k > 0) {
        int rv = wire__reader_reserve(r, (size_t)r->have + k);
        if (rv != 0) {
            r->err = rv;
            *consumed = used;
            return rv;
        }
        memcpy(r->buf + r->have, data + used, k);
        r->have += (uint32_t)k;
        used += k;
    }
    *consumed = used;
    if (r->have < plen) {
        return WIRE_EAGAIN;
    }
    wire__frame_out(r, r->buf, out);
    r->delivered = true;
    return 0;
}
