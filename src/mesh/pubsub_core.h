/*
 * src/mesh/pubsub_core.h — the node's pub/sub logic, sans I/O (prefix psc_; docs/pubsub.md).
 *
 * One core per node, owned by macula_gateway_pubsub. It is fed events with the current time
 * (ms) and queues actions the owner carries out in order (psc_next_action):
 *
 *   events                                      actions
 *   psc_subscribe / psc_unsubscribe (client)    PSC_ACT_SEND_CONN   a frame to a gateway conn
 *   psc_conn_down (client or node conn gone)                        (PUBLISH to a subscriber,
 *   psc_publish (PUBLISH from a client)                              PUBACK to a publisher or
 *   psc_puback (PUBACK from a client conn)                           to an upstream node)
 *   psc_route_in (PUBSUB_ROUTE from a node)     PSC_ACT_SEND_NODE   a frame to a node (id, addr)
 *   psc_node_puback (PUBACK over the pool)                          over the mesh pool
 *   psc_lookup_done (an index lookup answered)  PSC_ACT_LOOKUP      look up an index key
 *   psc_tick (at psc_next_deadline)             PSC_ACT_ADVERTISE   put this node's index value
 *
 * Local subscriptions live in a topic trie (mesh/topic.h), subscriber = gateway connection id;
 * at most max_subs_per_conn patterns per connection (PSC_ELIMIT beyond). A message matching a
 * connection through several patterns is delivered once, with the highest QoS among them.
 *
 * Remote subscribers (the subscriber index): every node puts, under the realm-scoped DHT key
 * named "psub:SEG" for each first segment SEG of its patterns, and "psub:*" for patterns that
 * start with `*` or `**`, one value (a key holds one value per publisher node):
 *
 *     "psub1 NODE_ID_HEX HOST:PORT\nPATTERN\nPATTERN..."
 *
 * A topic `a.b.c` can only be matched by patterns under "psub:a" or "psub:*", so a publisher
 * looks up those two keys, caches the answers cache_ms (60 s; an empty answer neg_cache_ms),
 * matches the cached patterns with topic_match and sends one PUBSUB_ROUTE per subscriber node.
 * A value that would exceed PSC_INDEX_VALUE_MAX advertises the key's catch-all instead
 * (`SEG.**`, or `**`): an over-approximation is safe, the receiving node matches locally. When
 * the last pattern under a key goes, the value is put again with no patterns, which replaces
 * the old one at the holders at once; a node that dies stops being found within the DHT's TTL.
 *
 * QoS 1 is hop by hop, and the message_id travels unchanged end to end:
 *  - a client's QoS 1 PUBLISH is acknowledged (PUBACK) once it has been delivered locally and
 *    handed to the outbox for every remote node (a repeated message_id is only acknowledged);
 *  - node → node: PUBSUB_ROUTE is kept in the outbox (qos.h) until the node's PUBACK, resent
 *    with backoff; the receiving node de-duplicates by message_id and acknowledges once every
 *    local QoS 1 subscriber acknowledged (or gave up / left), so a subscriber node that loses
 *    its pubsub worker before its clients acknowledged gets the message again;
 *  - node → client: PUBLISH qos 1 kept until the client's PUBACK, resent; clients de-dup.
 *
 * Not thread-safe; one owner. Everything allocated is released by psc_free.
 */
#ifndef MACULA_MESH_PUBSUB_CORE_H
#define MACULA_MESH_PUBSUB_CORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "mesh/qos.h"
#include "mesh/wire.h"

enum {
    PSC_OK = 0,
    PSC_EINVAL = -1,   /* bad topic / pattern / message (the text says which) */
    PSC_ENOMEM = -2,   /* allocation failed */
    PSC_ELIMIT = -3,   /* max_subs_per_conn, or a bound of the outbox / waiting list */
    PSC_EEXIST = -4,   /* psc_subscribe: this connection holds this pattern already */
    PSC_ENOENT = -5,   /* psc_unsubscribe / psc_puback: nothing to remove */
    PSC_EHOPS = -6,    /* psc_route_in: hop_count reached max_hops */
    PSC_EMISROUTE = -7 /* psc_route_in: destination is another node */
};
/* "ok", "invalid", "out of memory", "limit reached", "already subscribed", "not found",
 * "max_hops_exceeded", "misrouted"; "unknown error" otherwise. */
const char *psc_strerror(int err);

#define PSC_ID_LEN 32            /* node ids */
#define PSC_ADDR_MAX 64          /* "host:port" incl. NUL */
#define PSC_INDEX_VALUE_MAX 1024 /* the DHT's max_value_bytes */
#define PSC_KEY_PREFIX "psub:"
#define PSC_DEFAULT_MAX_SUBS 1000u

typedef struct psc_config {
    uint8_t node_id[PSC_ID_LEN];
    char addr[PSC_ADDR_MAX];    /* where this node listens, "host:port" (for the index) */
    uint32_t max_subs_per_conn; /* [1000] */
    uint64_t cache_ms;          /* index answers with subscribers [60000] */
    uint64_t neg_cache_ms;      /* empty or failed answers [5000] */
    uint32_t max_hops;          /* PUBSUB_ROUTE [10] */
    uint32_t max_waiting;       /* publishes waiting for index lookups [1024] */
    uint32_t max_cache_keys;    /* cached index keys [4096] */
    uint32_t max_nodes;         /* remote nodes known at once [65536] */
    qos_outbox_config outbox;   /* zero fields: qos.h defaults */
    uint32_t dedup_window_ms;   /* [300000] */
    uint32_t dedup_max_ids;     /* [100000] */
} psc_config;

/* Defaults (node_id and addr zero/empty). */
void psc_config_default(psc_config *cfg);

typedef enum psc_action_kind {
    PSC_ACT_SEND_CONN = 1, /* conn, data/len: one encoded frame */
    PSC_ACT_SEND_NODE,     /* node_id, addr, data/len: one encoded frame */
    PSC_ACT_LOOKUP,        /* key/key_len: the index key name to look up (psc_lookup_done) */
    PSC_ACT_ADVERTISE,     /* key/key_len and data/len: put this value under the key */
} psc_action_kind;

typedef struct psc_action {
    psc_action_kind kind;
    uint64_t conn;
    uint8_t node_id[PSC_ID_LEN];
    const char *addr;
    const uint8_t *data;
    size_t len;
    /* SEND_CONN / SEND_NODE: the frame's identity. Actions with the same frame_id carry the
     * same bytes (one encoding of a message shared by its subscribers); every encoding gets a
     * new id, so a consumer may batch by id without comparing bytes. */
    uint64_t frame_id;
    const char *key; /* not NUL-terminated */
    size_t key_len;
} psc_action;

typedef struct psc_stats {
    uint64_t subscriptions; /* gauge: (pattern, conn) pairs */
    uint64_t patterns;      /* gauge: distinct local patterns (advertised) */
    uint64_t subscribed, unsubscribed;
    uint64_t refused_limit;   /* subscriptions over max_subs_per_conn */
    uint64_t refused_invalid; /* invalid patterns / topics / messages */
    uint64_t published;       /* PUBLISH accepted from clients */
    uint64_t duplicates;      /* QoS 1 message_ids seen before (acknowledged only) */
    uint64_t delivered;       /* PUBLISH frames to local subscribers (first sends) */
    uint64_t routes_out;      /* PUBSUB_ROUTE first sends */
    uint64_t routes_in;       /* PUBSUB_ROUTE accepted */
    uint64_t routes_refused;  /* misrouted, max_hops, invalid */
    uint64_t pubacks_in;      /* PUBACKs that completed a message */
    uint64_t resent, gave_up; /* outbox retries and give-ups */
    uint64_t lookups;         /* index lookups started */
    uint64_t cache_hits;      /* publishes routed from cached answers only */
    uint64_t waiting_dropped; /* publishes dropped: the waiting list was full */
    uint64_t advertised;      /* index values put */
    uint64_t outbox_refused;  /* QoS 1 sends the outbox refused (full) */
} psc_stats;

/* An index entry as found in the DHT. patterns: '\n'-separated, not NUL-terminated. */
typedef struct psc_index_entry {
    uint8_t node_id[PSC_ID_LEN];
    char addr[PSC_ADDR_MAX];
    const char *patterns;
    size_t patterns_len;
} psc_index_entry;

/* Parses one index value; PSC_EINVAL when it is not "psub1 HEX64 ADDR[\n...]". Views point
 * into value. */
int psc_index_parse(const uint8_t *value, size_t len, psc_index_entry *out);
/* The index key name for a pattern or topic's first segment: "psub:SEG" or "psub:*" (for a
 * pattern starting with a wildcard). Writes at most cap bytes; returns the length or
 * PSC_EINVAL (invalid pattern, or cap too small). */
int psc_index_key(const char *pattern, size_t len, char *out, size_t cap);

typedef struct psc psc;

int psc_new(const psc_config *cfg, uint64_t now, psc **out);
void psc_free(psc *p);

/* A client connection's subscription; qos 0 or 1 (2 is treated as 1). */
int psc_subscribe(psc *p, uint64_t conn, const char *pattern, size_t len, uint8_t qos,
                  uint64_t now);
int psc_unsubscribe(psc *p, uint64_t conn, const char *pattern, size_t len, uint64_t now);
/* A gateway connection is gone: its subscriptions, its pending deliveries and the upstream
 * acknowledgements waiting on it. */
void psc_conn_down(psc *p, uint64_t conn, uint64_t now);
/* A PUBLISH from a client connection. QoS 1 needs a 16-byte message_id (PSC_EINVAL). */
int psc_publish(psc *p, uint64_t conn, const wire_publish *pub, uint64_t now);
/* A PUBACK from a gateway connection (a client acknowledging our delivery). */
int psc_puback(psc *p, uint64_t conn, const uint8_t *id, size_t id_len);
/* A PUBSUB_ROUTE that arrived on gateway connection conn from node `from` (the id the
 * connection proved). PSC_EMISROUTE / PSC_EHOPS / PSC_EINVAL refuse it (counted). */
int psc_route_in(psc *p, uint64_t conn, const uint8_t from[PSC_ID_LEN], const wire_pubsub_route *r,
                 uint64_t now);
/* A PUBACK that came back from node `from` over the mesh pool. */
int psc_node_puback(psc *p, const uint8_t from[PSC_ID_LEN], const uint8_t *id, size_t id_len);
/* The answer to a PSC_ACT_LOOKUP: the values found (n may be 0; ok false: the lookup
 * failed). Values that do not parse are skipped; our own entry is ignored. */
int psc_lookup_done(psc *p, const char *key, size_t key_len, const psc_index_entry *entries,
                    size_t n, bool ok, uint64_t now);
/* Re-advertises every key (after a restart of the owner, or when the address changed). */
void psc_readvertise(psc *p);
/* Sets the address put in the index (re-advertises when it changed). */
void psc_set_addr(psc *p, const char *addr);
int psc_tick(psc *p, uint64_t now);
uint64_t psc_next_deadline(const psc *p);
/* Pops the oldest action; its views are valid until the next call into the core. */
bool psc_next_action(psc *p, psc_action *out);

void psc_get_stats(const psc *p, psc_stats *out);
/* Patterns held by one connection. */
size_t psc_conn_subs(const psc *p, uint64_t conn);
/* Bytes held (tests: nothing grows without bound). */
size_t psc_memory(const psc *p);

#endif
