/*
 * src/mesh/dht/dht.h — the Kademlia routing core (MESH.md "DHT"), sans I/O.
 *
 * A dht is a pure state machine. It never touches a socket or a clock:
 *
 *   in   dht_receive      a DHT message arrived from node X at address A (the caller has
 *                         authenticated X: over QUIC it is the hash of the peer's key)
 *        dht_tick         the time is now T (milliseconds on any monotonic clock, the same
 *                         clock for every call)
 *        API calls        dht_lookup_node, dht_get, dht_put, dht_unput, dht_ping,
 *                         dht_add_contact, dht_remove_contact (connection lost), dht_bootstrap
 *   out  dht_next_output  messages to send: destination (id + address) and a typed dht_msg
 *        dht_next_event   completions: lookups (closest nodes, found or not), gets (values),
 *                         puts (how many holders acknowledged), pings
 *        dht_next_deadline  when to call dht_tick next
 *
 * An actor drives it with real time and the QUIC transport (dht_msg_encode /
 * dht_msg_from_wire turn messages into wire frames and back); the simulator (dht_sim.h) drives
 * thousands of them over netsim with simulated time. Both run the same code.
 *
 * Kademlia as in Maymounkov & Mazières, "Kademlia: A Peer-to-peer Information System Based on
 * the XOR Metric" (2002), with the choices below (docs/dht.md has the whole design):
 *
 *  - 256-bit ids, distance = XOR. Bucket i (0..255) holds contacts whose distance to us has
 *    its highest set bit at position i (bucket 255: the far half of the id space). Each bucket
 *    holds at most k contacts ordered least-recently-seen (LRS) first (paper §2.2).
 *  - Any message from a node counts as "seen": it moves to the tail of its bucket. A newcomer
 *    to a full bucket waits in the bucket's replacement slots; the LRS entry is probed (a
 *    FIND_NODE) unless it was seen within probe_after_ms, and is evicted only if the probe
 *    times out, the newest replacement taking its place (§2.2, §4.1).
 *  - A contact that leaves max_fails requests in a row unanswered, or whose connection is lost
 *    (dht_remove_contact), is removed and replaced from the replacement slots.
 *  - Lookups are iterative (§2.3): alpha requests in flight, each with a query timeout; the
 *    lookup converges when the k closest contacts it knows of (failed ones skipped) have all
 *    answered. It is bounded: at most max_lookup_queries requests and lookup_timeout_ms.
 *  - FIND_VALUE lookups stop once get_quorum holders returned values (or at convergence); the
 *    result is the union of the values returned (a key holds a set: one value per publisher).
 *  - dht_put looks the key up, then STOREs to the k closest that answered (and keeps it
 *    locally if this node is among the k closest). The owner republishes every
 *    republish_ms (240 s) until dht_unput; holders drop a value at its TTL (300 s default).
 *  - Buckets from our closest neighbour's bucket up that saw no lookup for refresh_ms are
 *    refreshed by a lookup of a random id in their range (§2.3).
 *  - Keys are SHA-256(realm || 0x00 || name) (dht_key): two realms never share a key.
 *
 * Every table is bounded: k per bucket, replacement slots per bucket, max_lookups concurrent
 * lookups, max_pending requests in flight, max_keys stored keys, max_values_per_key values per
 * key, max_value_bytes per value. A message that would exceed a bound is refused or dropped,
 * never grows memory. Errors are negative DHT_E* codes (dht_strerror).
 *
 * Not thread-safe: one dht belongs to one actor.
 */
#ifndef MACULA_MESH_DHT_H
#define MACULA_MESH_DHT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "mesh/wire.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- errors ----------------------------------------------------------------------------- */
enum {
    DHT_OK = 0,
    DHT_EINVAL = -1,    /* bad argument */
    DHT_ENOMEM = -2,    /* allocation failed */
    DHT_EBUSY = -3,     /* a bound is reached (lookups, pending requests) */
    DHT_ETIMEDOUT = -4, /* nobody answered in time */
    DHT_ENOTFOUND = -5, /* get: no value under the key */
    DHT_EPROTO = -6,    /* a message that is not a valid DHT message */
    DHT_ETOOBIG = -7,   /* a value above max_value_bytes */
    DHT_ESELF = -8,     /* a message or contact claiming our own id */
};

/* "ok", "invalid_argument", "no_memory", "busy", "timeout", "not_found", "protocol_error",
 * "too_big", "self"; "unknown_error" for anything else. */
const char *dht_strerror(int err);

/* ---- ids and contacts ------------------------------------------------------------------- */
#define DHT_ID_LEN 32
#define DHT_ADDR_MAX 63    /* "host:port"; longer addresses are refused */
#define DHT_K_MAX 32       /* upper bound for k */
#define DHT_VALUES_MAX 64  /* upper bound for max_values_per_key */
#define DHT_VALUE_MAX 8192 /* upper bound for max_value_bytes */

typedef struct dht_id {
    uint8_t b[DHT_ID_LEN]; /* big-endian: b[0] holds the most significant bits */
} dht_id;

typedef struct dht_contact {
    dht_id id;
    char addr[DHT_ADDR_MAX + 1]; /* NUL-terminated */
} dht_contact;

/* d = a XOR b. */
void dht_distance(const dht_id *a, const dht_id *b, dht_id *d);
/* <0, 0, >0 as a is closer to target than b, as close, farther (XOR metric). */
int dht_cmp_distance(const dht_id *target, const dht_id *a, const dht_id *b);
/* The bucket of `other` seen from `self`: the position (0..255) of the highest set bit of
 * self XOR other, bit 0 being the least significant; -1 when other == self. */
int dht_bucket_index(const dht_id *self, const dht_id *other);
/* The key of `name` in `realm`: SHA-256(realm || 0x00 || name) (GnuTLS). DHT_EINVAL if realm
 * contains a NUL within realm_len, DHT_EPROTO if hashing fails. */
int dht_key(const char *realm, size_t realm_len, const void *name, size_t name_len, dht_id *key);
/* 64 lowercase hex characters + NUL. */
void dht_id_hex(const dht_id *id, char out[2 * DHT_ID_LEN + 1]);

/* ---- configuration ---------------------------------------------------------------------- */
typedef struct dht_config {
    uint32_t k;                  /* bucket size and replication, 20 (MESH.md dht_k) */
    uint32_t alpha;              /* parallel requests per lookup, 3 (dht_alpha) */
    uint64_t query_timeout_ms;   /* one request, 5000 */
    uint64_t lookup_timeout_ms;  /* a whole lookup (incl. its STOREs), 30000 */
    uint32_t max_lookup_queries; /* requests one lookup may send, 80 */
    uint64_t value_ttl_ms;       /* TTL of a dht_put with ttl 0, 300000 */
    uint64_t max_ttl_ms;         /* holders cap a STORE's ttl here, 3600000 */
    uint64_t republish_ms;       /* owner republishes every, 240000 */
    uint64_t refresh_ms;         /* bucket refresh when idle, 3600000 */
    uint64_t probe_after_ms;     /* a full bucket's LRS seen this recently is kept unprobed,
                                    30000 (0: always probe) */
    uint32_t max_fails;          /* unanswered requests in a row before removal, 2 */
    uint32_t replacements;       /* replacement slots per bucket, 8 */
    uint32_t get_quorum;         /* value holders a get waits for, 3 */
    uint32_t max_lookups;        /* concurrent lookups (API and internal), 64 */
    uint32_t max_pending;        /* requests in flight, 1024 */
    uint32_t max_keys;           /* keys stored for others, 4096 */
    uint32_t max_values_per_key; /* values (publishers) per key, 32 */
    uint32_t max_value_bytes;    /* bytes per value, 1024 */
    uint64_t seed;               /* randomness for refresh ids (mixed with the node id) */
} dht_config;

/* Fills the defaults above. */
void dht_config_default(dht_config *cfg);

/* ---- messages --------------------------------------------------------------------------- */

/* A value: a view (decoded messages, events, outputs; lifetime stated where it is handed out)
 * or the caller's bytes. On the wire a value is a msgpack bin. */
typedef struct dht_value {
    const uint8_t *p;
    uint32_t len;
} dht_value;

/* A DHT message, typed. type is a wire_type: WIRE_FIND_NODE, WIRE_FIND_NODE_REPLY,
 * WIRE_STORE, WIRE_FIND_VALUE, WIRE_FIND_VALUE_REPLY or WIRE_STORE_ACK. */
typedef struct dht_msg {
    uint8_t type;
    uint64_t request_id; /* requests set it, replies echo it */
    dht_id key;          /* FIND_NODE target; STORE / FIND_VALUE / STORE_ACK key */
    dht_id publisher;    /* STORE: the value's owner */
    uint64_t ttl_ms;     /* STORE */
    dht_value value;     /* STORE */
    bool stored;         /* STORE_ACK */
    bool has_values;     /* FIND_VALUE_REPLY: result "value" (else "nodes") */
    uint32_t nvalues;    /* FIND_VALUE_REPLY with values */
    dht_value values[DHT_VALUES_MAX];
    uint32_t ncontacts; /* FIND_NODE_REPLY, FIND_VALUE_REPLY without values */
    dht_contact contacts[DHT_K_MAX];
    bool has_sender; /* decoded: the frame named its sender (id + listen address) */
    dht_contact sender;
} dht_msg;

/* Converts a decoded wire message (wire_decode) into *out. Values are views into the frame
 * (valid while it is). Contacts whose id is not 32 bytes or whose address is empty or longer
 * than DHT_ADDR_MAX are skipped; lists beyond DHT_K_MAX / DHT_VALUES_MAX are cut; a value that
 * is not a msgpack bin/str is skipped (STORE: DHT_EPROTO). DHT_EPROTO for a type that is not a
 * DHT type, a key/target that is not 32 bytes, a missing request_id. */
int dht_msg_from_wire(const wire_msg *w, dht_msg *out);

/* Encodes m as one wire frame into a malloc'd buffer (the caller frees it), naming `sender`
 * (our id and listen address; NULL leaves sender_id/sender_address out). DHT_EINVAL for a
 * bad message, DHT_ENOMEM. */
int dht_msg_encode(const dht_msg *m, const dht_contact *sender, uint8_t **frame, size_t *len);

/* ---- the core --------------------------------------------------------------------------- */
typedef struct dht dht;

/* Creates a node with id `self` listening at `self_addr` (may be "" if unknown). cfg NULL
 * means defaults. DHT_EINVAL for k outside 1..DHT_K_MAX, alpha 0, max_values_per_key outside
 * 1..DHT_VALUES_MAX, max_value_bytes outside 1..DHT_VALUE_MAX, a zero timeout, an address
 * over DHT_ADDR_MAX. */
int dht_create(const dht_config *cfg, const dht_id *self, const char *self_addr, uint64_t now,
               dht **out);
/* Frees everything: tables, stored values, queued outputs and events. NULL is fine. */
void dht_destroy(dht *d);

const dht_id *dht_self(const dht *d);

/* A message from node `from` at address `from_addr` (where it listens; NULL or "" keeps what
 * the table knows). The sender is marked seen (moved to its bucket's tail, or offered to the
 * table). Requests are answered (outputs); replies are matched to our pending request by
 * (request_id, from) and drive lookups; unmatched replies are ignored. DHT_ESELF if from is
 * our id, DHT_EPROTO for a bad message. */
int dht_receive(dht *d, const dht_id *from, const char *from_addr, const dht_msg *m, uint64_t now);

/* The time is now: expires requests (query timeout), lookups (lookup timeout) and stored
 * values (TTL), republishes our values, refreshes idle buckets. */
void dht_tick(dht *d, uint64_t now);

/* When dht_tick must be called next (ms on the caller's clock); UINT64_MAX if never. */
uint64_t dht_next_deadline(const dht *d);

/* Offers a contact learned out of band (a bootstrap peer) to the table, as if seen now. */
int dht_add_contact(dht *d, const dht_id *id, const char *addr, uint64_t now);
/* Forgets a contact (its connection was lost): removed from its bucket, the newest
 * replacement takes its place. DHT_ENOTFOUND if it was not in the table. */
int dht_remove_contact(dht *d, const dht_id *id);
/* True if id is in the table (not counting replacement slots). */
bool dht_has_contact(const dht *d, const dht_id *id);
/* Contacts in the table. */
uint32_t dht_table_size(const dht *d);
/* Contacts in bucket i (0..255), and its replacement slots. */
uint32_t dht_bucket_size(const dht *d, int i);
uint32_t dht_bucket_replacements(const dht *d, int i);
/* The contact at position pos of bucket i, LRS first. false if out of range. */
bool dht_bucket_entry(const dht *d, int i, uint32_t pos, dht_contact *out);
/* Up to max contacts of the table closest to target, nearest first. */
uint32_t dht_closest(const dht *d, const dht_id *target, dht_contact *out, uint32_t max);

/* Lookups. Each returns a handle (> 0) in *handle; exactly one event with that handle follows
 * (possibly already queued on return). DHT_EBUSY if max_lookups are running. */
int dht_lookup_node(dht *d, const dht_id *target, uint64_t now, uint32_t *handle);
int dht_get(dht *d, const dht_id *key, uint64_t now, uint32_t *handle);
/* Publishes value under key (one value per key per publisher: ours replaces ours) with ttl_ms
 * (0: value_ttl_ms) and keeps republishing it every republish_ms until dht_unput. The value
 * is copied. DHT_ETOOBIG above max_value_bytes. On DHT_EBUSY (no lookup slot) the value is
 * recorded all the same and goes out at the next republish. */
int dht_put(dht *d, const dht_id *key, const void *value, size_t len, uint64_t ttl_ms, uint64_t now,
            uint32_t *handle);
/* Stops republishing our value under key (holders drop it at its TTL). DHT_ENOTFOUND if we
 * publish nothing there. */
int dht_unput(dht *d, const dht_id *key);
/* Bootstrap: adds the seeds to the table and looks up our own id (MESH.md "Bootstrap"); when
 * that lookup completes (its DHT_EV_LOOKUP has *handle) every bucket from our closest
 * neighbour's up is refreshed (paper §2.3), which fills the far buckets. With no seeds the
 * node is the first of its mesh: nothing to do, *handle = 0. */
int dht_bootstrap(dht *d, const dht_contact *seeds, uint32_t n, uint64_t now, uint32_t *handle);
/* Asks a node for a sign of life (a FIND_NODE). Event DHT_EV_PING: status 0 or DHT_ETIMEDOUT. */
int dht_ping(dht *d, const dht_id *id, const char *addr, uint64_t now, uint32_t *handle);

/* ---- outputs ---------------------------------------------------------------------------- */
typedef struct dht_out {
    dht_contact to;
    dht_msg msg;
} dht_out;

/* The next message to send, or NULL. Valid (values included) until the next call of
 * dht_next_output or dht_destroy. A reply's to.addr is empty when the requester's address is
 * unknown (it named none and is not in the table): answer on the connection it came from. */
const dht_out *dht_next_output(dht *d);

enum { DHT_EV_LOOKUP = 1, DHT_EV_GET = 2, DHT_EV_PUT = 3, DHT_EV_PING = 4 };

typedef struct dht_event {
    uint8_t kind;     /* DHT_EV_* */
    uint32_t handle;  /* as returned by the call */
    int status;       /* 0; DHT_ETIMEDOUT: nobody answered; DHT_ENOTFOUND: get found nothing */
    dht_id target;    /* target / key / pinged id */
    bool found;       /* LOOKUP: target answered (or is us); GET: values; PING: answered */
    uint32_t hops;    /* sequential requests from us to the answer: LOOKUP: to the target
                         (1 = it was in our table; for an unknown target, the deepest answer);
                         GET: to the first holder that returned values (0 = held locally);
                         PUT: the deepest answer of its lookup */
    uint32_t queries; /* requests the lookup sent */
    uint32_t replies; /* answers it got */
    uint32_t stored;  /* PUT: holders that acknowledged (this node counts if it holds it) */
    uint64_t elapsed_ms;
    uint32_t ncontacts; /* the closest contacts that answered, nearest first (<= k) */
    dht_contact contacts[DHT_K_MAX];
    uint32_t nvalues; /* GET: distinct values, views valid until the next dht_next_event */
    dht_value values[DHT_VALUES_MAX];
} dht_event;

/* The next completion, or NULL. Valid until the next call of dht_next_event or dht_destroy. */
const dht_event *dht_next_event(dht *d);

/* Counters for /metrics and tests. */
typedef struct dht_stats {
    uint64_t sent;          /* messages queued */
    uint64_t received;      /* messages accepted by dht_receive */
    uint64_t timeouts;      /* requests that timed out */
    uint64_t probes;        /* LRS probes sent */
    uint64_t evictions;     /* contacts removed (probe timeout, max_fails, connection loss) */
    uint64_t refused;       /* STOREs refused (bounds) */
    uint64_t expired;       /* stored values dropped at their TTL */
    uint64_t republished;   /* republish rounds started */
    uint64_t refreshes;     /* bucket refresh lookups started */
    uint32_t stored_keys;   /* keys held for others */
    uint32_t stored_values; /* values held for others */
    uint32_t lookups;       /* lookups running */
    uint32_t pending;       /* requests in flight */
} dht_stats;

void dht_get_stats(const dht *d, dht_stats *st);

/* Values held for others under key (views valid until the next call that can change the
 * store: dht_receive, dht_tick, dht_destroy). Returns the count, at most max. */
uint32_t dht_stored_values(const dht *d, const dht_id *key, dht_value *out, uint32_t max);

#ifdef __cplusplus
}
#endif
#endif
