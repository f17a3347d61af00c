/*
 * src/mesh/wire.h — the Macula v0.8 frame codec (MESH.md "Wire format"), sans I/O.
 *
 * A frame is an 8-byte header followed by a msgpack map:
 *
 *   byte 0    version, WIRE_VERSION (1); anything else is WIRE_EUNSUPPORTED_VERSION
 *   byte 1    message type (wire_type); an unknown code is WIRE_EUNKNOWN_TYPE
 *   byte 2    flags, written 0, ignored on decode (reserved for later use)
 *   byte 3    reserved, written 0, ignored on decode
 *   bytes 4-7 payload length, u32 big-endian
 *
 * Nothing here touches a socket or a clock. Bytes go in, frames and typed messages come out
 * (wire_reader, wire_decode*); typed messages go in and bytes come out (wire_encode*).
 *
 * Decoding is zero-copy and allocation-free: every string, binary, list and raw msgpack value
 * of a decoded message is a view into the caller's buffer (the frame's payload), valid for as
 * long as that buffer is. The only allocation in this module is wire_reader's buffer for a
 * frame that arrives in pieces, and it is sized from bytes actually received, after the
 * header's length has been checked against the limit.
 *
 * Compatibility (v0.8): map keys and string values may be msgpack bin or str (the Erlang
 * encoder writes bin); the encoder always writes bin. Keys a message does not know are skipped
 * (forward compatibility), as are keys that are not strings. A key that is present twice, a
 * required key that is missing, or a value of the wrong type is WIRE_EMALFORMED. An optional
 * key whose value is nil counts as absent.
 *
 * Hostile input: the payload is decoded in one bounds-checked pass (it does not rely on
 * msgpuck's mp_check, whose element counter can overflow on map32 counts >= 2^30). Every
 * container's element count is checked against wire_limits.max_elems and its nesting against
 * wire_limits.max_depth (WIRE_ELIMIT), every length against the bytes that remain
 * (WIRE_EMALFORMED), before anything inside is read; values the decoder skips (unknown keys)
 * are checked the same way. The error is that of "validate the whole payload, then decode":
 * if the payload is not well-formed msgpack within the limits, the first such problem in byte
 * order decides between WIRE_ELIMIT and WIRE_EMALFORMED, even when a typed problem (a missing
 * key, a wrong type) comes earlier; otherwise a typed problem is WIRE_EMALFORMED.
 *
 * Built on msgpuck (header-only). wire.c is the one translation unit that defines MP_SOURCE,
 * i.e. holds msgpuck's out-of-line functions and tables: macula_core needs no libmsgpuck.a,
 * other files may include <msgpuck.h> plainly, and no other file may define MP_SOURCE.
 *
 * Types this project adds to v0.8's table (unused codes, MESH.md allows it):
 *   0x14 PUBACK  {message_id}  acknowledges a QoS 1 PUBLISH (same message_id); the publisher
 *                              retries until it arrives and the receiver de-duplicates.
 *   0x45 STORE_ACK {key, stored, request_id, sender_id?, sender_address?}  answers a STORE
 *                              (same request_id): stored is true if the value is held, false
 *                              if the holder refused it (its per-key or size bounds).
 *
 * Keys this project adds to v0.8's DHT messages (all optional, so v0.8 frames still decode;
 * see docs/dht.md):
 *   FIND_NODE, FIND_NODE_REPLY, STORE, FIND_VALUE, FIND_VALUE_REPLY (and STORE_ACK):
 *     request_id      u64; a request carries one, its reply echoes it (replies are matched
 *                     by request_id and the replying node's id)
 *     sender_id       the sender's node id (32 raw bytes); receivers check it against the id
 *                     the connection authenticated
 *     sender_address  "host:port" where the sender listens (for other nodes' routing tables)
 *   STORE also:
 *     ttl             u32, milliseconds the value lives at the holder (default: its own)
 *     publisher       the node id of the value's owner (a key holds one value per publisher)
 */
#ifndef MACULA_MESH_WIRE_H
#define MACULA_MESH_WIRE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ---- errors (negative values; wire_strerror names them) --------------------------------- */
enum {
    WIRE_OK = 0,
    WIRE_EAGAIN = -1,               /* need more bytes: the frame is not complete yet */
    WIRE_EUNSUPPORTED_VERSION = -2, /* header byte 0 is not WIRE_VERSION */
    WIRE_EUNKNOWN_TYPE = -3,        /* header byte 1 is not a wire_type */
    WIRE_EFRAME_TOO_LARGE = -4,     /* header + payload > wire_limits.max_frame_size */
    WIRE_EMALFORMED = -5,           /* bad msgpack, not a map, missing key, wrong value type */
    WIRE_ELIMIT = -6,               /* nesting deeper than max_depth or a container > max_elems */
    WIRE_ENOMEM = -7,               /* allocation failed */
    WIRE_ENOBUF = -8,               /* encode: the output buffer is too small */
    WIRE_EINVAL = -9,               /* bad argument: unencodable message, bad limits */
};

/* The stable name of an error, as sent to peers in DISCONNECT reasons: "ok", "need_more_data",
 * "unsupported_version", "unknown_type", "frame_too_large", "malformed", "limit_exceeded",
 * "no_memory", "buffer_too_small", "invalid_argument"; "unknown_error" for anything else.
 * The strings never change (peers match on them). */
const char *wire_strerror(int err);

/* ---- frame constants and limits --------------------------------------------------------- */
#define WIRE_VERSION 1
#define WIRE_HEADER_LEN 8
#define WIRE_DEFAULT_MAX_FRAME (1u << 20) /* 1 MiB, header included */
#define WIRE_DEFAULT_MAX_DEPTH 8          /* the payload map itself is depth 1 */
#define WIRE_DEFAULT_MAX_ELEMS 1024       /* per map (pairs) or array (elements) */
#define WIRE_MAX_DEPTH_CAP 64             /* max_depth may not exceed this (stack bound) */
#define WIRE_NODE_ID_LEN 32               /* node ids: raw SHA-256 (MESH.md "Identity") */
#define WIRE_MSG_ID_LEN 16                /* message_id and call_id (not enforced here) */

typedef struct wire_limits {
    uint32_t max_frame_size; /* whole frame, header included; >= WIRE_HEADER_LEN + 1 */
    uint32_t max_depth;      /* container nesting, 1..WIRE_MAX_DEPTH_CAP */
    uint32_t max_elems;      /* entries per map / elements per array, >= 1 */
} wire_limits;

/* Fills the defaults above. Every function taking a `const wire_limits *` accepts NULL for
 * the defaults and returns WIRE_EINVAL for limits outside the documented ranges. */
void wire_limits_default(wire_limits *lim);

/* ---- message types ---------------------------------------------------------------------- */
typedef enum wire_type {
    WIRE_CONNECT = 0x01,
    WIRE_DISCONNECT = 0x02,
    WIRE_PING = 0x03,
    WIRE_PONG = 0x04,
    WIRE_PUBLISH = 0x10,
    WIRE_SUBSCRIBE = 0x11,
    WIRE_UNSUBSCRIBE = 0x12,
    WIRE_PUBSUB_ROUTE = 0x13,
    WIRE_PUBACK = 0x14, /* added by this project, see above */
    WIRE_CALL = 0x20,
    WIRE_REPLY = 0x21,
    WIRE_CAST = 0x22,
    WIRE_RPC_ROUTE = 0x23,
    WIRE_FIND_NODE = 0x40,
    WIRE_FIND_NODE_REPLY = 0x41,
    WIRE_STORE = 0x42,
    WIRE_FIND_VALUE = 0x43,
    WIRE_FIND_VALUE_REPLY = 0x44,
    WIRE_STORE_ACK = 0x45, /* added by this project, see above */
} wire_type;

/* True for the codes of wire_type. */
bool wire_type_known(unsigned type);
/* "connect", "disconnect", ..., "find_value_reply" (lowercase, as v0.8 names them), or NULL
 * for an unknown code. */
const char *wire_type_name(unsigned type);

/* ---- values ----------------------------------------------------------------------------- */

/* A byte string: a view (decode) or the caller's bytes (encode). For an optional field p ==
 * NULL means absent; a present empty string has p != NULL and len == 0. For a required field
 * the encoder writes p == NULL, len == 0 as an empty string. */
typedef struct wire_bytes {
    const uint8_t *p;
    size_t len;
} wire_bytes;

/* A list of byte strings (capabilities, topics). Encoding reads items[0..count). Decoding
 * sets count and raw (the first element inside the payload, already validated) and leaves
 * items NULL; walk either form with wire_bytes_list_iter / wire_bytes_list_next. */
typedef struct wire_bytes_list {
    uint32_t count;
    const wire_bytes *items; /* encode side */
    const uint8_t *raw;      /* decode side */
} wire_bytes_list;

/* A DHT contact in FIND_NODE_REPLY / FIND_VALUE_REPLY: {node_id, address, last_seen}. */
typedef struct wire_node {
    wire_bytes node_id; /* required; 32 raw bytes by convention */
    wire_bytes address; /* required; "host:port" */
    bool has_last_seen; /* last_seen is optional */
    int64_t last_seen;  /* ms since the epoch */
} wire_node;

/* A list of contacts; same two representations as wire_bytes_list. */
typedef struct wire_node_list {
    uint32_t count;
    const wire_node *items; /* encode side */
    const uint8_t *raw;     /* decode side */
} wire_node_list;

/* Iterates over either representation of a list. */
typedef struct wire_list_iter {
    const uint8_t *pos; /* next raw element */
    const void *items;  /* items array, if the list has one */
    uint32_t next, count;
} wire_list_iter;

wire_list_iter wire_bytes_list_iter(const wire_bytes_list *l);
/* Stores the next element in *out and returns true, or returns false at the end. */
bool wire_bytes_list_next(wire_list_iter *it, wire_bytes *out);
wire_list_iter wire_node_list_iter(const wire_node_list *l);
bool wire_node_list_next(wire_list_iter *it, wire_node *out);

/* ---- messages (payload keys as in MESH.md; all required unless marked optional) --------- */

typedef struct wire_connect {
    wire_bytes version;           /* "1.0" */
    wire_bytes node_id;           /* 32 raw bytes */
    wire_bytes realm_id;          /* the realm *name* */
    wire_bytes_list capabilities; /* list of strings */
    wire_bytes endpoint;          /* optional: "https://host:port" */
} wire_connect;

typedef struct wire_disconnect {
    wire_bytes reason;  /* a stable name, e.g. "realm_mismatch" or a wire_strerror name */
    wire_bytes message; /* human-readable */
} wire_disconnect;

typedef struct wire_ping {
    int64_t timestamp; /* ms */
} wire_ping;

typedef struct wire_pong {
    int64_t timestamp;   /* the PING's */
    int64_t server_time; /* ms */
} wire_pong;

typedef struct wire_publish {
    wire_bytes topic;
    wire_bytes payload;    /* opaque bytes */
    uint8_t qos;           /* 0, 1 or 2; anything else is malformed */
    bool retain;           /* msgpack bool */
    wire_bytes message_id; /* 16 bytes by convention */
} wire_publish;

typedef struct wire_subscribe {
    wire_bytes_list topics; /* patterns */
    uint8_t qos;
} wire_subscribe;

typedef struct wire_unsubscribe {
    wire_bytes_list topics;
} wire_unsubscribe;

typedef struct wire_puback {
    wire_bytes message_id; /* of the PUBLISH acknowledged */
} wire_puback;

typedef struct wire_pubsub_route {
    wire_bytes destination_node_id;
    wire_bytes source_node_id;
    uint32_t hop_count;
    uint32_t max_hops; /* 10 */
    wire_bytes topic;
    wire_publish payload; /* the PUBLISH map, nested (decoded and encoded as a map) */
} wire_pubsub_route;

/* CALL and CAST. For a CAST, call_id is optional (v0.8 casts have none). */
typedef struct wire_call {
    wire_bytes call_id;   /* 16 bytes */
    wire_bytes procedure; /* "com.example.proc" */
    wire_bytes args;      /* JSON text */
    wire_bytes realm;
    bool has_timeout; /* timeout is optional */
    uint32_t timeout_ms;
} wire_call;

/* REPLY's error map. */
typedef struct wire_rpc_error {
    wire_bytes code; /* e.g. "no_handler", "handler_error", "timeout" */
    wire_bytes message;
} wire_rpc_error;

/* REPLY: call_id and exactly one of result / error (both or neither is malformed). */
typedef struct wire_reply {
    wire_bytes call_id;
    bool is_error;
    wire_bytes result;    /* JSON text, when !is_error */
    wire_rpc_error error; /* the map {code, message}, when is_error */
} wire_reply;

enum { WIRE_RPC_PAYLOAD_CALL = 1, WIRE_RPC_PAYLOAD_REPLY = 2 };

/* RPC_ROUTE: payload_type "call" or "reply" on the wire, payload the nested CALL or REPLY
 * map, decoded into call or reply according to payload_type (the other is zeroed). */
typedef struct wire_rpc_route {
    wire_bytes destination_node_id;
    wire_bytes source_node_id;
    uint32_t hop_count;
    uint32_t max_hops;
    uint8_t payload_type; /* WIRE_RPC_PAYLOAD_* */
    wire_call call;
    wire_reply reply;
} wire_rpc_route;

/* The optional keys every DHT message may carry (this project's addition, see above). */
typedef struct wire_dht_hdr {
    bool has_request_id;       /* request_id is optional */
    uint64_t request_id;       /* set by a request, echoed by its reply */
    wire_bytes sender_id;      /* optional: 32 raw bytes */
    wire_bytes sender_address; /* optional: "host:port" */
} wire_dht_hdr;

typedef struct wire_find_node {
    wire_bytes target; /* 32 bytes */
    wire_dht_hdr hdr;
} wire_find_node;

typedef struct wire_find_node_reply {
    wire_node_list nodes;
    wire_dht_hdr hdr;
} wire_find_node_reply;

/* STORE: value is any msgpack value, kept verbatim (one complete, validated msgpack object;
 * decoding points into the payload, encoding copies it after checking it is well formed). */
typedef struct wire_store {
    wire_bytes key;
    wire_bytes value; /* raw msgpack */
    wire_dht_hdr hdr;
    bool has_ttl;         /* ttl is optional */
    uint32_t ttl_ms;      /* "ttl" on the wire */
    wire_bytes publisher; /* optional: the owner's node id */
} wire_store;

typedef struct wire_find_value {
    wire_bytes key;
    wire_dht_hdr hdr;
} wire_find_value;

/* STORE_ACK (0x45): the answer to a STORE. */
typedef struct wire_store_ack {
    wire_bytes key;
    bool stored;      /* msgpack bool */
    wire_dht_hdr hdr; /* request_id required: always written, has_request_id set on decode */
} wire_store_ack;

enum { WIRE_FV_VALUE = 1, WIRE_FV_NODES = 2 };

/* FIND_VALUE_REPLY: result "value" with value (raw msgpack, v0.8 sends a list), or result
 * "nodes" with nodes. The key the result does not name is ignored on decode and not written
 * on encode. */
typedef struct wire_find_value_reply {
    uint8_t result;       /* WIRE_FV_* */
    wire_bytes value;     /* raw msgpack, when result == WIRE_FV_VALUE */
    wire_node_list nodes; /* when result == WIRE_FV_NODES */
    wire_dht_hdr hdr;
} wire_find_value_reply;

typedef struct wire_msg {
    uint8_t type; /* wire_type: selects the union member */
    union {
        wire_connect connect;
        wire_disconnect disconnect;
        wire_ping ping;
        wire_pong pong;
        wire_publish publish;
        wire_subscribe subscribe;
        wire_unsubscribe unsubscribe;
        wire_pubsub_route pubsub_route;
        wire_puback puback;
        wire_call call; /* WIRE_CALL */
        wire_call cast; /* WIRE_CAST (same layout as call) */
        wire_reply reply;
        wire_rpc_route rpc_route;
        wire_find_node find_node;
        wire_find_node_reply find_node_reply;
        wire_store store;
        wire_find_value find_value;
        wire_find_value_reply find_value_reply;
        wire_store_ack store_ack;
    };
} wire_msg;

/* ---- header ----------------------------------------------------------------------------- */
typedef struct wire_header {
    uint8_t version;
    uint8_t type;
    uint8_t flags;
    uint32_t payload_len;
} wire_header;

/* Parses and checks the 8 header bytes at buf: WIRE_EAGAIN if len < 8, then, in this order,
 * WIRE_EUNSUPPORTED_VERSION, WIRE_EUNKNOWN_TYPE, WIRE_EFRAME_TOO_LARGE (8 + payload_len >
 * lim->max_frame_size). On 0 *h is filled. Reads at most 8 bytes. */
int wire_decode_header(const uint8_t *buf, size_t len, const wire_limits *lim, wire_header *h);
/* Writes the 8 header bytes of a frame of `type` with a payload of payload_len bytes (version
 * WIRE_VERSION, flags 0): for a layer that passes on a payload it already decoded. */
void wire_encode_header(uint8_t out[WIRE_HEADER_LEN], uint8_t type, uint32_t payload_len);

/* ---- decoding --------------------------------------------------------------------------- */

/* Decodes the payload of a frame of the given type (the bytes after the header) into *out.
 * The payload must be exactly one msgpack map. Returns 0, WIRE_EUNKNOWN_TYPE,
 * WIRE_EFRAME_TOO_LARGE, WIRE_EMALFORMED, WIRE_ELIMIT or WIRE_EINVAL. On error *out is zeroed
 * except out->type. Views in *out point into payload. */
int wire_decode_payload(unsigned type, const uint8_t *payload, size_t len, const wire_limits *lim,
                        wire_msg *out);

/* Decodes the frame at the start of buf[0..len). Returns 0 and sets *consumed to the frame's
 * size (later bytes are left alone), WIRE_EAGAIN if buf holds less than one whole frame, or
 * any error of wire_decode_header / wire_decode_payload (*consumed is then 0). */
int wire_decode(const uint8_t *buf, size_t len, const wire_limits *lim, wire_msg *out,
                size_t *consumed);

/* ---- encoding --------------------------------------------------------------------------- */

/* Encodes *m as one frame (header + payload) into buf[0..cap). Keys and strings are written
 * as msgpack bin, integers in their shortest form, absent optional fields are left out.
 * Returns 0 with *len = bytes written; WIRE_ENOBUF with *len = bytes needed (buf may be NULL
 * when cap is 0: that is how to size a buffer); WIRE_EINVAL for an unknown type, qos > 2,
 * a bad payload_type / result selector, a list with count > 0 and no elements, a raw value
 * that is not exactly one well-formed msgpack object, or a payload over 4 GiB.
 * The encoder does not apply a peer's limits; receivers do. */
int wire_encode(const wire_msg *m, uint8_t *buf, size_t cap, size_t *len);

/* The exact size in bytes of the frame wire_encode writes for *m (header included), or 0 if
 * *m cannot be encoded (every case wire_encode refuses with WIRE_EINVAL). Costs a walk of the
 * message without writing or copying anything (a raw STORE / FIND_VALUE_REPLY value is
 * checked, as wire_encode does); use it to size a buffer exactly, then wire_encode into it
 * (which sizes again: it never trusts a size from an earlier call). */
size_t wire_encoded_size(const wire_msg *m);

/* As wire_encode into a malloc'd buffer of exactly the frame's size, which the caller frees.
 * WIRE_ENOMEM if malloc fails. */
int wire_encode_alloc(const wire_msg *m, uint8_t **out, size_t *len);

/* ---- streaming reassembly --------------------------------------------------------------- */

/* A complete frame out of a wire_reader. The header has passed wire_decode_header; the
 * payload has not been decoded (pass it to wire_decode_payload). */
typedef struct wire_frame {
    uint8_t type;
    uint8_t flags;
    uint32_t payload_len;
    const uint8_t *payload;
} wire_frame;

/* Reassembles frames from a byte stream cut anywhere (QUIC reads). Frames may be split
 * across any number of chunks, and one chunk may hold many frames. The reader holds at most
 * one partial frame: its header (8 bytes inline) and the part of its payload received so far,
 * in a buffer that grows with the bytes received (never beyond the header's length, which was
 * checked against max_frame_size first), so a peer that announces 1 MiB and sends 10 bytes
 * costs about 1 KiB. A frame that arrives whole inside one chunk is handed out without a copy.
 * Errors are sticky: after one, every call returns it again; close the stream and send
 * DISCONNECT(wire_strerror(err)). */
typedef struct wire_reader {
    wire_limits limits;           /* checked once at init */
    uint8_t hdr[WIRE_HEADER_LEN]; /* header of the frame being assembled */
    uint32_t hdr_have;            /* header bytes held */
    wire_header cur;              /* parsed header, valid when hdr_have == 8 */
    uint8_t *buf;                 /* payload bytes of a split frame */
    size_t cap;                   /* allocated size of buf */
    uint32_t have;                /* payload bytes held in buf */
    bool delivered;               /* the last frame handed out lives in buf */
    int err;                      /* sticky error, 0 if none */
} wire_reader;

/* Initializes r (no allocation). lim NULL means defaults. WIRE_EINVAL for bad limits. */
int wire_reader_init(wire_reader *r, const wire_limits *lim);
/* Releases the buffer. r may be re-initialized afterwards. */
void wire_reader_free(wire_reader *r);

/* Consumes bytes from data[0..len) and stops right after the first frame it completes.
 * Returns:
 *   0           a frame is in *out; *consumed bytes were used; call again with the rest;
 *   WIRE_EAGAIN all len bytes were consumed (*consumed == len) and no frame is complete;
 *   < 0         WIRE_EUNSUPPORTED_VERSION, WIRE_EUNKNOWN_TYPE or WIRE_EFRAME_TOO_LARGE (found
 *               as soon as the 8 header bytes are in, before any payload is buffered),
 *               or WIRE_ENOMEM; sticky.
 * out->payload points into data or into the reader's buffer; it is valid until the next
 * wire_reader_feed or wire_reader_free (and, if it points into data, while data is). */
int wire_reader_feed(wire_reader *r, const uint8_t *data, size_t len, size_t *consumed,
                     wire_frame *out);

/* Bytes of a partial frame held (0 between frames: a stream that ends with this > 0 ended
 * mid-frame). */
size_t wire_reader_buffered(const wire_reader *r);
/* Bytes of heap the reader holds (for metrics and the memory tests). */
size_t wire_reader_memory(const wire_reader *r);

#ifdef __cplusplus
}
#endif
#endif
