/*
 * src/mesh/dht/dht_internal.h — the dht's internal state, shared by its files (not public):
 * dht.c (core: inputs, outputs, events, timers), dht_table.c (k-buckets), dht_lookup.c
 * (iterative lookups, puts), dht_store.c (values held and published), dht_id.c, dht_wire.c.
 */
#ifndef MACULA_MESH_DHT_INTERNAL_H
#define MACULA_MESH_DHT_INTERNAL_H

#include "dht.h"

#define DHT__BUCKETS 256

/* A routing table entry. */
typedef struct dht__entry {
    dht_contact c;      /* id + listen address */
    uint64_t last_seen; /* ms of the last message from it */
    uint32_t fails;     /* requests in a row it left unanswered */
} dht__entry;

/* One k-bucket: entries LRS first, replacement slots oldest first. Arrays grow on demand. */
typedef struct dht__bucket {
    dht__entry *e;         /* entries [0..n), e[0] least recently seen */
    dht__entry *repl;      /* replacement slots [0..nrepl), newest last */
    uint8_t n, cap;        /* entries held, allocated */
    uint8_t nrepl, rcap;   /* replacements held, allocated */
    uint64_t probe_req;    /* request id of the LRS probe in flight, 0 if none */
    uint64_t last_touched; /* ms of the last lookup into this bucket's range */
} dht__bucket;

/* What a request in flight is for. */
enum { DHT__REQ_PROBE = 1, DHT__REQ_PING, DHT__REQ_LOOKUP, DHT__REQ_STORE };

typedef struct dht__pending {
    uint64_t req_id;   /* request_id sent */
    dht_id to;         /* who must answer */
    uint64_t deadline; /* ms: query timeout */
    uint32_t handle;   /* lookup / ping handle */
    uint8_t kind;      /* DHT__REQ_* */
    uint8_t depth;     /* LOOKUP: depth of the queried candidate */
    int16_t bucket;    /* PROBE: the bucket probed */
} dht__pending;

/* A lookup candidate. */
enum { DHT__C_NEW = 0, DHT__C_ASKED, DHT__C_DONE, DHT__C_FAILED };

typedef struct dht__cand {
    dht_contact c;
    uint8_t state; /* DHT__C_* */
    uint8_t depth; /* 1 = from our table, d+1 = named by an answer of depth d */
} dht__cand;

/* What a lookup is for. */
enum {
    DHT__L_NODE = 1,  /* dht_lookup_node, dht_bootstrap */
    DHT__L_GET,       /* dht_get */
    DHT__L_PUT,       /* dht_put: lookup, then STORE */
    DHT__L_REPUBLISH, /* as PUT, no event */
    DHT__L_REFRESH,   /* bucket refresh, no event */
};

typedef struct dht__lookup {
    uint32_t handle;
    uint8_t kind;       /* DHT__L_* */
    bool storing;       /* PUT/REPUBLISH: the STORE phase */
    bool found;         /* the target answered / values came */
    bool bootstrap;     /* dht_bootstrap's self lookup: refresh every bucket when done */
    uint8_t found_hops; /* depth at which the target was named / the first value came */
    uint8_t max_depth;  /* deepest answer */
    dht_id target;
    uint64_t started, deadline;
    uint32_t queries, inflight, replies, value_replies;
    uint32_t stores_sent, stores_done, stored;
    dht__cand *cands; /* sorted by distance to target, at most cand_cap */
    uint32_t ncands, cand_cap;
    dht_value *values; /* GET: distinct values collected (owned copies) */
    uint32_t nvalues;
} dht__lookup;

/* A value held for others. */
typedef struct dht__sval {
    dht_id publisher;
    uint64_t expires; /* ms */
    uint8_t *p;       /* owned */
    uint32_t len;
} dht__sval;

typedef struct dht__skey {
    dht_id key;
    dht__sval *v; /* [0..n), at most max_values_per_key */
    uint32_t n, cap;
    struct dht__skey *next; /* hash chain */
} dht__skey;

/* A value we publish (and republish). */
typedef struct dht__pub {
    dht_id key;
    uint8_t *p; /* owned */
    uint32_t len;
    uint64_t ttl_ms;
    uint64_t next_republish;
} dht__pub;

/* A queued output or event with the bytes its views point to. */
typedef struct dht__qout {
    dht_out out;
    uint8_t *blob; /* owned: values the message points into */
} dht__qout;

typedef struct dht__qev {
    dht_event ev;
    uint8_t *blob; /* owned */
} dht__qev;

/* A FIFO of pointers. */
typedef struct dht__queue {
    void **items;
    uint32_t head, len, cap;
} dht__queue;

struct dht {
    dht_config cfg;
    dht_contact self;
    uint64_t now;
    uint64_t rng; /* splitmix64 state */
    uint64_t next_req;
    uint32_t next_handle;

    dht__bucket buckets[DHT__BUCKETS];
    uint32_t table_size;

    dht__pending *pending;
    uint32_t npending;

    dht__lookup **lookups;
    uint32_t nlookups, lookup_cap;

    dht__skey **skeys; /* hash table by the key's first bytes */
    uint32_t skey_slots, nkeys, nvalues;
    uint64_t next_expiry; /* ms: earliest stored value expiry (may be early, never late) */

    dht__pub *pubs;
    uint32_t npubs, pub_cap;

    dht__queue outq, evq;
    dht__qout *cur_out; /* handed out by dht_next_output */
    dht__qev *cur_ev;   /* handed out by dht_next_event */

    dht_stats st;
};

/* ---- dht.c ------------------------------------------------------------------------------ */
uint64_t dht__rand(dht *d);
/* Queues a message; the blob (may be NULL) becomes the queue's. DHT_ENOMEM (blob freed). */
int dht__send(dht *d, const dht_contact *to, dht_msg *m, uint8_t *blob);
/* Queues a request and records it as pending. DHT_EBUSY if max_pending are in flight. */
int dht__request(dht *d, const dht_contact *to, dht_msg *m, uint8_t *blob, uint8_t kind,
                 uint32_t handle, uint8_t depth, int16_t bucket);
/* Queues an event (q becomes the queue's; freed with its blob on failure). */
int dht__emit(dht *d, dht__qev *q);

/* ---- dht_table.c ------------------------------------------------------------------------ */
/* Marks id seen at addr (NULL/"" keeps the known address): moves it to its bucket's tail or
 * offers it (replacement slot + LRS probe when the bucket is full). */
void dht__table_seen(dht *d, const dht_id *id, const char *addr);
/* A request to id went unanswered: counts a failure, removes it at max_fails. */
void dht__table_failed(dht *d, const dht_id *id);
/* A probe of bucket b's LRS timed out: evict it, promote a replacement. */
void dht__table_probe_timeout(dht *d, int b, const dht_id *id);
int dht__table_remove(dht *d, const dht_id *id);
void dht__table_free(dht *d);
/* The earliest bucket refresh due, UINT64_MAX if none. */
uint64_t dht__table_refresh_deadline(const dht *d);
/* Starts refresh lookups of the buckets due (all of them from our closest neighbour's bucket
 * up when force: the end of a bootstrap, Kademlia paper §2.3). */
void dht__table_refresh(dht *d, bool force);
/* Records a lookup into target's range. */
void dht__table_touch(dht *d, const dht_id *target);

/* ---- dht_lookup.c ----------------------------------------------------------------------- */
int dht__lookup_start(dht *d, uint8_t kind, const dht_id *target, uint32_t *handle);
void dht__lookup_reply(dht *d, const dht__pending *p, const dht_id *from, const dht_msg *m);
void dht__lookup_timeout(dht *d, const dht__pending *p);
void dht__lookup_tick(dht *d);
uint64_t dht__lookup_deadline(const dht *d);
void dht__lookup_free_all(dht *d);
dht__lookup *dht__lookup_find(dht *d, uint32_t handle);

/* ---- dht_store.c ------------------------------------------------------------------------ */
/* Stores a value for publisher under key; returns 0, DHT_ETOOBIG or DHT_EBUSY (bounds). */
int dht__store_put(dht *d, const dht_id *key, const dht_id *publisher, const uint8_t *p,
                   uint32_t len, uint64_t ttl_ms);
const dht__skey *dht__store_find(const dht *d, const dht_id *key);
void dht__store_expire(dht *d);
void dht__store_free(dht *d);
dht__pub *dht__pub_find(dht *d, const dht_id *key);
void dht__pub_tick(dht *d);
uint64_t dht__pub_deadline(const dht *d);

#endif
