/* src/mesh/pubsub_core.c — the node's pub/sub logic, sans I/O (see pubsub_core.h). */
#include "pubsub_core.h"

#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/hmap.h"
#include "mesh/topic.h"

#define PSC_NODE_BIT (1ULL << 63) /* outbox destinations that are nodes, not connections */
#define PSC_UP_WAIT_MAX 64        /* local QoS 1 subscribers an upstream ack waits for */

const char *psc_strerror(int err)
{
    switch (err) {
    case PSC_OK: return "ok";
    case PSC_EINVAL: return "invalid";
    case PSC_ENOMEM: return "out of memory";
    case PSC_ELIMIT: return "limit reached";
    case PSC_EEXIST: return "already subscribed";
    case PSC_ENOENT: return "not found";
    case PSC_EHOPS: return "max_hops_exceeded";
    case PSC_EMISROUTE: return "misrouted";
    default: return "unknown error";
    }
}

void psc_config_default(psc_config *cfg)
{
    memset(cfg, 0, sizeof *cfg);
    cfg->max_subs_per_conn = PSC_DEFAULT_MAX_SUBS;
    cfg->cache_ms = 60000;
    cfg->neg_cache_ms = 5000;
    cfg->max_hops = 10;
    cfg->max_waiting = 1024;
    cfg->max_cache_keys = 4096;
    cfg->max_nodes = 65536;
}

/* ---- state -------------------------------------------------------------------------------- */

typedef struct psc_key psc_key;

/* A distinct local pattern (refcounted over connections), listed under its index key. */
typedef struct psc_pat {
    char *text;
    size_t len;
    uint32_t refs;
    psc_key *key;
    struct psc_pat *prev, *next; /* in key->pats */
} psc_pat;

/* An index key this node advertises under. */
struct psc_key {
    char *name;
    size_t len;
    psc_pat *pats;
    bool dirty;
    struct psc_key *next_dirty;
};

/* One subscription of a connection. */
typedef struct psc_sub {
    psc_pat *pat; /* key bytes: pat->text */
    uint8_t qos;
} psc_sub;

typedef struct psc_conn {
    uint64_t conn; /* the map key */
    hmap subs;     /* pattern text -> psc_sub */
} psc_conn;

typedef struct psc_node {
    uint8_t id[PSC_ID_LEN]; /* key of p->nodes */
    uint64_t dest;          /* key of p->node_by_dest: PSC_NODE_BIT | serial */
    char addr[PSC_ADDR_MAX];
} psc_node;

/* An acknowledgement owed upstream (to a node's connection) once local QoS 1 subscribers
 * acknowledged. */
typedef struct psc_up {
    uint8_t id[QOS_ID_LEN]; /* key */
    uint64_t conn;          /* the upstream connection */
    uint32_t nwait;
    uint64_t wait[PSC_UP_WAIT_MAX];
} psc_up;

typedef struct psc_cached {
    uint8_t node[PSC_ID_LEN];
    char addr[PSC_ADDR_MAX];
    char *patterns;
    size_t patterns_len;
} psc_cached;

typedef struct psc_cache {
    char *name; /* key */
    size_t len;
    bool pending;     /* a lookup is in flight */
    uint64_t expires; /* answer valid until (pending false) */
    bool have;        /* an answer is held */
    psc_cached *entries;
    size_t n, cap;
} psc_cache;

/* A publish waiting for index lookups. */
typedef struct psc_wait {
    struct psc_wait *next;
    uint64_t conn; /* publisher (PUBACK when QoS 1), UINT64_MAX: none */
    uint8_t qos;
    uint8_t id[QOS_ID_LEN];
    char *topic;
    size_t topic_len;
    uint8_t *payload;
    size_t payload_len;
} psc_wait;

typedef struct psc_act {
    struct psc_act *next;
    psc_action a;
    void *own1, *own2; /* buffers the action's views point into */
    bool own1_frame;   /* own1 is the data of a psc_frame (psc__frame_free) */
} psc_act;

/* A delivery frame: an encoded PUBLISH that SEND_CONN actions point into. Frames of up to
 * PSC_FRAME_POOL_CAP bytes come from a free list, so a delivery allocates nothing in the
 * steady state (a 1 KiB payload's frame is past the allocator's per-thread cache). */
#define PSC_MCACHE_N 64     /* topics remembered (direct-mapped by hash) */
#define PSC_MCACHE_TOPIC 96 /* the longest topic remembered */
#define PSC_MCACHE_HITS 16  /* the most local subscribers remembered for one topic */

typedef struct psc_hit {
    uint64_t conn;
    uint8_t qos;
} psc_hit;

typedef struct psc_mcache {
    uint64_t gen; /* psc.sub_gen when filled (0: empty; sub_gen starts at 1) */
    uint16_t tlen, n;
    char topic[PSC_MCACHE_TOPIC];
    psc_hit hits[PSC_MCACHE_HITS]; /* merged: one per connection, at its highest QoS */
} psc_mcache;

typedef struct psc_frame {
    struct psc_frame *next;
    size_t cap;
    uint8_t data[];
} psc_frame;

struct psc {
    psc_config cfg;
    topic_trie *trie;
    hmap_u64 conns;        /* conn -> psc_conn (the gateway's counter ids) */
    hmap pats;             /* pattern -> psc_pat */
    hmap keys;             /* key name -> psc_key */
    psc_key *dirty;        /* keys to advertise */
    hmap nodes;            /* node id -> psc_node */
    hmap_u64 node_by_dest; /* dest -> psc_node (ours: PSC_NODE_BIT | serial) */
    uint64_t node_serial;
    hmap ups;   /* message id -> psc_up */
    hmap cache; /* key name -> psc_cache */
    psc_wait *wait_head, *wait_tail;
    uint32_t nwait;
    qos_outbox *outbox;
    qos_dedup *dedup;
    psc_act *head, *tail, *popped;
    psc_act *act_free; /* spent action records kept for reuse (not counted in mem) */
    size_t act_free_n;
    uint64_t frame_seq;       /* the last psc_action.frame_id given */
    psc_frame *frame_free[2]; /* spent pooled frames per size class (not counted in mem) */
    size_t frame_free_n[2];
    /* The index keys of the last published topic's first segment (most publishes repeat a
     * topic): valid while memo_gen == cache_gen; every entry stays checked for freshness. */
    char memo_seg[PSC_INDEX_VALUE_MAX];
    size_t memo_len;
    psc_cache *memo[2];
    uint64_t memo_gen, cache_gen; /* cache_gen moves when a cache entry is freed */
    psc_stats st;
    size_t mem;
    /* The local subscribers of recently published topics (psc__local_hits): a publisher
     * usually repeats its topics, and the match (validation, split, trie walk, QoS look-ups)
     * is most of a small message's cost. Valid while sub_gen, which every change of the trie
     * moves, is what it was when filled. */
    uint64_t sub_gen;
    psc_mcache mcache[PSC_MCACHE_N];
    const char *mc_for; /* psc__topic_ok's topic, whose slot (mc_slot) psc__local_hits uses */
    psc_mcache *mc_slot;
};

#define PSC_ACT_FREE_MAX 1024 /* spent action records kept */
/* Delivery frames up to 2 KiB are pooled in two size classes, so that a batch of small
 * messages (a gateway batch holds up to ~1,000) stays within 256 KiB of frames that the cache
 * keeps, instead of 2 KiB per frame. */
static const size_t psc_frame_cap[2] = {256, 2048};
static const size_t psc_frame_keep[2] = {1024, 256}; /* spent frames kept: 256 + 512 KiB */

/* ---- small helpers ------------------------------------------------------------------------ */

static void *psc__alloc(psc *p, size_t n)
{
    void *m = calloc(1, n);
    if (m != NULL) {
        p->mem += n;
    }
    return m;
}

static void psc__release(psc *p, void *m, size_t n)
{
    if (m != NULL) {
        p->mem -= n;
        free(m);
    }
}

static char *psc__dup(psc *p, const void *s, size_t n)
{
    char *d = psc__alloc(p, n + 1);
    if (d != NULL && n > 0) {
        memcpy(d, s, n);
    }
    return d;
}

static void psc__hex(const uint8_t *b, size_t n, char *out)
{
    static const char hx[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = hx[b[i] >> 4];
        out[2 * i + 1] = hx[b[i] & 15];
    }
    out[2 * n] = '\0';
}

static int psc__unhex(char c)
{
    if (c >= '0' && c <= '9') {
        return c - '0';
    }
    if (c >= 'a' && c <= 'f') {
        return c - 'a' + 10;
    }
    if (c >= 'A' && c <= 'F') {
        return c - 'A' + 10;
    }
    return -1;
}

/* A frame of at least `size` bytes (from a size class's pool when it fits one); NULL: no
 * memory. */
static psc_frame *psc__frame_new(psc *p, size_t size)
{
    psc_frame *f = NULL;
    for (int c = 0; c < 2; c++) {
        if (size <= psc_frame_cap[c]) {
            f = p->frame_free[c];
            if (f != NULL) {
                p->frame_free[c] = f->next;
                p->frame_free_n[c]--;
                return f;
            }
            size = psc_frame_cap[c];
            break;
        }
    }
    f = malloc(sizeof *f + size);
    if (f != NULL) {
        f->cap = size;
    }
    return f;
}

/* Releases the frame whose data is `data` (NULL: no-op). */
static void psc__frame_free(psc *p, void *data)
{
    if (data == NULL) {
        return;
    }
    psc_frame *f = (psc_frame *)((uint8_t *)data - offsetof(psc_frame, data));
    for (int c = 0; c < 2; c++) {
        if (f->cap == psc_frame_cap[c] && p->frame_free_n[c] < psc_frame_keep[c]) {
            f->next = p->frame_free[c];
            p->frame_free[c] = f;
            p->frame_free_n[c]++;
            return;
        }
    }
    free(f);
}

/* Queues an action; takes ownership of own1/own2 (freed after the action was popped). */
static int psc__push(psc *p, const psc_action *a, void *own1, size_t own1_len, void *own2,
                     size_t own2_len)
{
    psc_act *r = p->act_free;
    if (r != NULL) {
        p->act_free = r->next;
        p->act_free_n--;
        p->mem += sizeof *r;
        r->next = NULL;
    } else {
        r = psc__alloc(p, sizeof *r);
    }
    if (r == NULL) {
        free(own1);
        free(own2);
        return PSC_ENOMEM;
    }
    p->mem += own1_len + own2_len;
    r->a = *a;
    r->own1 = own1;
    r->own2 = own2;
    r->own1_frame = false;
    if (p->tail != NULL) {
        p->tail->next = r;
    } else {
        p->head = r;
    }
    p->tail = r;
    return PSC_OK;
}

static void psc__act_free(psc *p, psc_act *r)
{
    if (r == NULL) {
        return;
    }
    size_t extra = 0;
    if (r->own1 != NULL) {
        extra += r->a.kind == PSC_ACT_LOOKUP ? r->a.key_len : r->a.len;
    }
    if (r->own2 != NULL) {
        extra += r->a.key_len;
    }
    p->mem -= extra;
    if (r->own1_frame) {
        psc__frame_free(p, r->own1);
    } else {
        free(r->own1);
    }
    free(r->own2);
    if (p->act_free_n < PSC_ACT_FREE_MAX) {
        p->mem -= sizeof *r;
        r->own1 = NULL;
        r->own2 = NULL;
        r->next = p->act_free;
        p->act_free = r;
        p->act_free_n++;
        return;
    }
    psc__release(p, r, sizeof *r);
}

static int psc__send_frame(psc *p, bool to_node, uint64_t conn, const psc_node *n,
                           const wire_msg *m)
{
    uint8_t *frame = NULL;
    size_t len = 0;
    if (wire_encode_alloc(m, &frame, &len) != WIRE_OK) {
        return PSC_ENOMEM;
    }
    psc_action a = {.kind = to_node ? PSC_ACT_SEND_NODE : PSC_ACT_SEND_CONN,
                    .conn = conn,
                    .data = frame,
                    .len = len,
                    .frame_id = ++p->frame_seq};
    if (n != NULL) {
        memcpy(a.node_id, n->id, PSC_ID_LEN);
        a.addr = n->addr;
    }
    return psc__push(p, &a, frame, len, NULL, 0);
}

static int psc__send_raw(psc *p, bool to_node, uint64_t conn, const psc_node *n,
                         const uint8_t *frame, size_t len)
{
    if (frame == NULL || len == 0) {
        return PSC_EINVAL;
    }
    uint8_t *copy = malloc(len);
    if (copy == NULL) {
        return PSC_ENOMEM;
    }
    memcpy(copy, frame, len);
    psc_action a = {.kind = to_node ? PSC_ACT_SEND_NODE : PSC_ACT_SEND_CONN,
                    .conn = conn,
                    .data = copy,
                    .len = len,
                    .frame_id = ++p->frame_seq};
    if (n != NULL) {
        memcpy(a.node_id, n->id, PSC_ID_LEN);
        a.addr = n->addr;
    }
    return psc__push(p, &a, copy, len, NULL, 0);
}

static int psc__puback(psc *p, uint64_t conn, const uint8_t id[QOS_ID_LEN])
{
    wire_msg m = {.type = WIRE_PUBACK};
    m.puback.message_id = (wire_bytes){id, QOS_ID_LEN};
    return psc__send_frame(p, false, conn, NULL, &m);
}

/* ---- index values ------------------------------------------------------------------------- */

int psc_index_key(const char *pattern, size_t len, char *out, size_t cap)
{
    if (topic_validate_pattern(pattern, len) != TOPIC_OK) {
        return PSC_EINVAL;
    }
    const char *dot = memchr(pattern, '.', len);
    size_t seg = dot ? (size_t)(dot - pattern) : len;
    bool wild = (seg == 1 && pattern[0] == '*') || (seg == 2 && memcmp(pattern, "**", 2) == 0);
    size_t plen = strlen(PSC_KEY_PREFIX);
    size_t need = plen + (wild ? 1 : seg);
    if (need > cap) {
        return PSC_EINVAL;
    }
    for (size_t i = 0; i < plen; i++) {
        out[i] = PSC_KEY_PREFIX[i];
    }
    if (wild) {
        out[plen] = '*';
    } else {
        memcpy(out + plen, pattern, seg);
    }
    return (int)need;
}

int psc_index_parse(const uint8_t *value, size_t len, psc_index_entry *out)
{
    memset(out, 0, sizeof *out);
    const char *v = (const char *)value;
    const char *nl = memchr(v, '\n', len);
    size_t head = nl ? (size_t)(nl - v) : len;
    /* "psub1 " + 64 hex + " " + addr */
    if (head < 6 + 2 * PSC_ID_LEN + 2 || memcmp(v, "psub1 ", 6) != 0 ||
        v[6 + 2 * PSC_ID_LEN] != ' ') {
        return PSC_EINVAL;
    }
    for (size_t i = 0; i < PSC_ID_LEN; i++) {
        int hi = psc__unhex(v[6 + 2 * i]), lo = psc__unhex(v[7 + 2 * i]);
        if (hi < 0 || lo < 0) {
            return PSC_EINVAL;
        }
        out->node_id[i] = (uint8_t)(hi << 4 | lo);
    }
    size_t a0 = 6 + 2 * PSC_ID_LEN + 1;
    size_t alen = head - a0;
    if (alen == 0 || alen >= PSC_ADDR_MAX || memchr(v + a0, '\0', alen) != NULL) {
        return PSC_EINVAL;
    }
    memcpy(out->addr, v + a0, alen);
    out->addr[alen] = '\0';
    if (nl != NULL) {
        out->patterns = nl + 1;
        out->patterns_len = len - head - 1;
    }
    return PSC_OK;
}

/* The value this node puts under key k. */
static int psc__index_value(psc *p, const psc_key *k, char **out, size_t *out_len)
{
    char *buf = malloc(PSC_INDEX_VALUE_MAX);
    if (buf == NULL) {
        return PSC_ENOMEM;
    }
    char hex[2 * PSC_ID_LEN + 1];
    psc__hex(p->cfg.node_id, PSC_ID_LEN, hex);
    int n = snprintf(buf, PSC_INDEX_VALUE_MAX, "psub1 %s %s", hex,
                     p->cfg.addr[0] ? p->cfg.addr : "0.0.0.0:0");
    size_t len = (size_t)n;
    bool overflow = false;
    for (const psc_pat *pt = k->pats; pt != NULL; pt = pt->next) {
        if (memchr(pt->text, '\n', pt->len) != NULL || len + 1 + pt->len > PSC_INDEX_VALUE_MAX) {
            overflow = true;
            break;
        }
        buf[len++] = '\n';
        memcpy(buf + len, pt->text, pt->len);
        len += pt->len;
    }
    if (overflow) { /* the key's catch-all: every topic this key can carry */
        len = (size_t)n;
        size_t plen = strlen(PSC_KEY_PREFIX);
        const char *seg = k->name + plen;
        size_t seglen = k->len - plen;
        bool wild = seglen == 1 && seg[0] == '*';
        buf[len++] = '\n';
        if (!wild) {
            memcpy(buf + len, seg, seglen);
            len += seglen;
            buf[len++] = '.';
        }
        buf[len++] = '*';
        buf[len++] = '*';
    }
    *out = buf;
    *out_len = len;
    return PSC_OK;
}

static void psc__mark_dirty(psc *p, psc_key *k)
{
    if (!k->dirty) {
        k->dirty = true;
        k->next_dirty = p->dirty;
        p->dirty = k;
    }
}

/* Turns dirty keys into ADVERTISE actions. */
static void psc__flush_dirty(psc *p)
{
    while (p->dirty != NULL) {
        psc_key *k = p->dirty;
        p->dirty = k->next_dirty;
        k->dirty = false;
        k->next_dirty = NULL;
        char *val = NULL;
        size_t vlen = 0;
        char *name = malloc(k->len);
        if (name == NULL || psc__index_value(p, k, &val, &vlen) != PSC_OK) {
            free(name);
            continue;
        }
        memcpy(name, k->name, k->len);
        psc_action a = {.kind = PSC_ACT_ADVERTISE,
                        .data = (const uint8_t *)val,
                        .len = vlen,
                        .key = name,
                        .key_len = k->len};
        if (psc__push(p, &a, val, vlen, name, k->len) == PSC_OK) {
            p->st.advertised++;
        }
    }
}

/* ---- patterns ----------------------------------------------------------------------------- */

static psc_pat *psc__pat_ref(psc *p, const char *pattern, size_t len)
{
    psc_pat *pt = hmap_get(&p->pats, pattern, len);
    if (pt != NULL) {
        pt->refs++;
        return pt;
    }
    char kname[PSC_INDEX_VALUE_MAX];
    int kl = psc_index_key(pattern, len, kname, sizeof kname);
    if (kl < 0) {
        return NULL;
    }
    psc_key *k = hmap_get(&p->keys, kname, (size_t)kl);
    bool new_key = k == NULL;
    if (new_key) {
        k = psc__alloc(p, sizeof *k);
        char *nm = k ? psc__dup(p, kname, (size_t)kl) : NULL;
        if (k == NULL || nm == NULL || hmap_put(&p->keys, nm, (size_t)kl, k, NULL) != HMAP_OK) {
            psc__release(p, nm, (size_t)kl + 1);
            psc__release(p, k, sizeof *k);
            return NULL;
        }
        k->name = nm;
        k->len = (size_t)kl;
    }
    pt = psc__alloc(p, sizeof *pt);
    char *text = pt ? psc__dup(p, pattern, len) : NULL;
    if (pt == NULL || text == NULL || hmap_put(&p->pats, text, len, pt, NULL) != HMAP_OK) {
        psc__release(p, text, len + 1);
        psc__release(p, pt, sizeof *pt);
        if (new_key && k->pats == NULL && !k->dirty) {
            hmap_del(&p->keys, k->name, k->len);
            psc__release(p, k->name, k->len + 1);
            psc__release(p, k, sizeof *k);
        }
        return NULL;
    }
    pt->text = text;
    pt->len = len;
    pt->refs = 1;
    pt->key = k;
    pt->next = k->pats;
    if (k->pats != NULL) {
        k->pats->prev = pt;
    }
    k->pats = pt;
    p->st.patterns++;
    psc__mark_dirty(p, k);
    return pt;
}

/* Drops one reference; the last one removes the pattern from its key (which is advertised
 * again, with what is left; a key with no patterns left stays known so that its empty value
 * replaces the old one, and is forgotten after that advertisement). */
static void psc__pat_unref(psc *p, psc_pat *pt)
{
    if (--pt->refs > 0) {
        return;
    }
    psc_key *k = pt->key;
    if (pt->prev != NULL) {
        pt->prev->next = pt->next;
    } else {
        k->pats = pt->next;
    }
    if (pt->next != NULL) {
        pt->next->prev = pt->prev;
    }
    hmap_del(&p->pats, pt->text, pt->len);
    psc__release(p, pt->text, pt->len + 1);
    psc__release(p, pt, sizeof *pt);
    p->st.patterns--;
    psc__mark_dirty(p, k);
}

/* Keys with no patterns whose empty value has been queued are forgotten. */
static void psc__gc_keys(psc *p)
{
    psc_key *gone[64];
    size_t n;
    do {
        n = 0;
        size_t it = 0;
        const hmap_slot *s;
        while (n < 64 && (s = hmap_next(&p->keys, &it)) != NULL) {
            psc_key *k = s->val;
            if (k->pats == NULL && !k->dirty) {
                gone[n++] = k;
            }
        }
        for (size_t i = 0; i < n; i++) {
            hmap_del(&p->keys, gone[i]->name, gone[i]->len);
            psc__release(p, gone[i]->name, gone[i]->len + 1);
            psc__release(p, gone[i], sizeof *gone[i]);
        }
    } while (n == 64);
}

/* ---- lifecycle ---------------------------------------------------------------------------- */

int psc_new(const psc_config *cfg, uint64_t now, psc **out)
{
    (void)now;
    if (cfg == NULL || out == NULL || cfg->max_subs_per_conn == 0 || cfg->max_hops == 0) {
        return PSC_EINVAL;
    }
    psc *p = calloc(1, sizeof *p);
    if (p == NULL) {
        return PSC_ENOMEM;
    }
    p->cfg = *cfg;
    p->cfg.addr[PSC_ADDR_MAX - 1] = '\0';
    if (p->cfg.max_waiting == 0) {
        p->cfg.max_waiting = 1024;
    }
    if (p->cfg.max_cache_keys == 0) {
        p->cfg.max_cache_keys = 4096;
    }
    if (p->cfg.max_nodes == 0) {
        p->cfg.max_nodes = 65536;
    }
    qos_outbox_config oc = cfg->outbox;
    bool deflt = oc.retry_ms == 0 && oc.max_retry_ms == 0 && oc.max_tries == 0 &&
                 oc.max_pending == 0 && oc.max_bytes == 0;
    p->trie = topic_trie_new();
    p->sub_gen = 1;
    p->outbox = qos_outbox_new(deflt ? NULL : &oc);
    p->dedup = qos_dedup_new(cfg->dedup_window_ms, cfg->dedup_max_ids);
    if (p->trie == NULL || p->outbox == NULL || p->dedup == NULL) {
        int rc = p->trie == NULL || p->dedup == NULL ? PSC_ENOMEM : PSC_EINVAL;
        psc_free(p);
        return rc;
    }
    *out = p;
    return PSC_OK;
}

static void psc__conn_free(psc *p, psc_conn *c)
{
    size_t it = 0;
    const hmap_slot *s;
    while ((s = hmap_next(&c->subs, &it)) != NULL) {
        psc__release(p, s->val, sizeof(psc_sub));
    }
    hmap_free(&c->subs);
    psc__release(p, c, sizeof *c);
}

static void psc__cache_clear(psc *p, psc_cache *c)
{
    for (size_t i = 0; i < c->n; i++) {
        psc__release(p, c->entries[i].patterns, c->entries[i].patterns_len + 1);
    }
    psc__release(p, c->entries, c->cap * sizeof *c->entries);
    c->entries = NULL;
    c->n = 0;
    c->cap = 0;
}

static void psc__wait_free(psc *p, psc_wait *w)
{
    psc__release(p, w->topic, w->topic_len + 1);
    psc__release(p, w->payload, w->payload_len + 1);
    psc__release(p, w, sizeof *w);
}

void psc_free(psc *p)
{
    if (p == NULL) {
        return;
    }
    size_t it = 0;
    const hmap_u64_slot *cs;
    while ((cs = hmap_u64_next(&p->conns, &it)) != NULL) {
        psc__conn_free(p, cs->val);
    }
    hmap_u64_free(&p->conns);
    const hmap_slot *s;
    it = 0;
    while ((s = hmap_next(&p->pats, &it)) != NULL) {
        psc_pat *pt = s->val;
        free(pt->text);
        free(pt);
    }
    hmap_free(&p->pats);
    it = 0;
    while ((s = hmap_next(&p->keys, &it)) != NULL) {
        psc_key *k = s->val;
        free(k->name);
        free(k);
    }
    hmap_free(&p->keys);
    it = 0;
    while ((s = hmap_next(&p->nodes, &it)) != NULL) {
        free(s->val);
    }
    hmap_free(&p->nodes);
    hmap_u64_free(&p->node_by_dest);
    it = 0;
    while ((s = hmap_next(&p->ups, &it)) != NULL) {
        free(s->val);
    }
    hmap_free(&p->ups);
    it = 0;
    while ((s = hmap_next(&p->cache, &it)) != NULL) {
        psc_cache *c = s->val;
        psc__cache_clear(p, c);
        free(c->name);
        free(c);
    }
    hmap_free(&p->cache);
    while (p->wait_head != NULL) {
        psc_wait *w = p->wait_head;
        p->wait_head = w->next;
        psc__wait_free(p, w);
    }
    while (p->head != NULL) {
        psc_act *r = p->head;
        p->head = r->next;
        psc__act_free(p, r);
    }
    psc__act_free(p, p->popped);
    while (p->act_free != NULL) {
        psc_act *r = p->act_free;
        p->act_free = r->next;
        free(r);
    }
    for (int c = 0; c < 2; c++) {
        while (p->frame_free[c] != NULL) {
            psc_frame *f = p->frame_free[c];
            p->frame_free[c] = f->next;
            free(f);
        }
    }
    topic_trie_free(p->trie);
    qos_outbox_free(p->outbox);
    qos_dedup_free(p->dedup);
    free(p);
}

/* ---- subscriptions ------------------------------------------------------------------------ */

int psc_subscribe(psc *p, uint64_t conn, const char *pattern, size_t len, uint8_t qos, uint64_t now)
{
    (void)now;
    if (topic_validate_pattern(pattern, len) != TOPIC_OK || (conn & PSC_NODE_BIT) != 0) {
        p->st.refused_invalid++;
        return PSC_EINVAL;
    }
    psc_conn *c = hmap_u64_get(&p->conns, conn);
    if (c != NULL) {
        psc_sub *old = hmap_get(&c->subs, pattern, len);
        if (old != NULL) {
            uint8_t q = qos > 0 ? 1 : 0; /* a repeated SUBSCRIBE updates the QoS */
            if (old->qos != q) {
                old->qos = q;
                p->sub_gen++; /* the match cache holds each subscriber's QoS */
            }
            return PSC_EEXIST;
        }
        if (c->subs.count >= p->cfg.max_subs_per_conn) {
            p->st.refused_limit++;
            return PSC_ELIMIT;
        }
    } else {
        c = psc__alloc(p, sizeof *c);
        if (c == NULL) {
            return PSC_ENOMEM;
        }
        c->conn = conn;
        if (hmap_u64_put(&p->conns, c->conn, c, NULL) != HMAP_OK) {
            psc__release(p, c, sizeof *c);
            return PSC_ENOMEM;
        }
    }
    psc_sub *sub = psc__alloc(p, sizeof *sub);
    psc_pat *pt = sub ? psc__pat_ref(p, pattern, len) : NULL;
    if (pt == NULL || hmap_put(&c->subs, pt->text, pt->len, sub, NULL) != HMAP_OK) {
        if (pt != NULL) {
            psc__pat_unref(p, pt);
        }
        psc__release(p, sub, sizeof *sub);
        if (c->subs.count == 0) {
            hmap_u64_del(&p->conns, conn);
            psc__conn_free(p, c);
        }
        return PSC_ENOMEM;
    }
    if (topic_trie_add(p->trie, pt->text, pt->len, conn) != TOPIC_OK) {
        hmap_del(&c->subs, pt->text, pt->len);
        psc__pat_unref(p, pt);
        psc__release(p, sub, sizeof *sub);
        return PSC_ENOMEM;
    }
    p->sub_gen++;
    sub->pat = pt;
    sub->qos = qos > 0 ? 1 : 0;
    p->st.subscriptions++;
    p->st.subscribed++;
    return PSC_OK;
}

static void psc__unsub_one(psc *p, psc_conn *c, psc_sub *sub)
{
    psc_pat *pt = sub->pat;
    (void)topic_trie_remove(p->trie, pt->text, pt->len, c->conn);
    p->sub_gen++;
    hmap_del(&c->subs, pt->text, pt->len);
    psc__pat_unref(p, pt);
    psc__release(p, sub, sizeof *sub);
    p->st.subscriptions--;
    p->st.unsubscribed++;
}

int psc_unsubscribe(psc *p, uint64_t conn, const char *pattern, size_t len, uint64_t now)
{
    (void)now;
    psc_conn *c = hmap_u64_get(&p->conns, conn);
    psc_sub *sub = c ? hmap_get(&c->subs, pattern, len) : NULL;
    if (sub == NULL) {
        return PSC_ENOENT;
    }
    psc__unsub_one(p, c, sub);
    if (c->subs.count == 0) {
        hmap_u64_del(&p->conns, conn);
        psc__conn_free(p, c);
    }
    return PSC_OK;
}

size_t psc_conn_subs(const psc *p, uint64_t conn)
{
    const psc_conn *c = hmap_u64_get(&p->conns, conn);
    return c ? c->subs.count : 0;
}

/* ---- upstream acknowledgements ------------------------------------------------------------ */

/* Local subscriber `conn` is done with message id (acknowledged, gave up or left). */
static void psc__up_done(psc *p, const uint8_t id[QOS_ID_LEN], uint64_t conn)
{
    psc_up *u = hmap_get(&p->ups, id, QOS_ID_LEN);
    if (u == NULL) {
        return;
    }
    for (uint32_t i = 0; i < u->nwait; i++) {
        if (u->wait[i] == conn) {
            u->wait[i] = u->wait[--u->nwait];
            break;
        }
    }
    if (u->nwait == 0) {
        (void)psc__puback(p, u->conn, u->id);
        hmap_del(&p->ups, u->id, QOS_ID_LEN);
        psc__release(p, u, sizeof *u);
    }
}

void psc_conn_down(psc *p, uint64_t conn, uint64_t now)
{
    (void)now;
    psc_conn *c = hmap_u64_get(&p->conns, conn);
    if (c != NULL) {
        for (;;) {
            size_t it = 0;
            const hmap_slot *s = hmap_next(&c->subs, &it);
            if (s == NULL) {
                break;
            }
            psc__unsub_one(p, c, s->val);
        }
        hmap_u64_del(&p->conns, conn);
        psc__conn_free(p, c);
    }
    (void)qos_outbox_drop_dest(p->outbox, conn);
    /* Upstream acks waiting on this connection; acks owed to it are dropped. */
    uint8_t(*ids)[QOS_ID_LEN] = NULL;
    size_t nids = 0, cap = 0;
    size_t it = 0;
    const hmap_slot *s;
    while ((s = hmap_next(&p->ups, &it)) != NULL) {
        psc_up *u = s->val;
        bool hit = u->conn == conn;
        for (uint32_t i = 0; i < u->nwait && !hit; i++) {
            hit = u->wait[i] == conn;
        }
        if (!hit) {
            continue;
        }
        if (nids == cap) {
            cap = cap ? cap * 2 : 16;
            void *n = realloc(ids, cap * QOS_ID_LEN);
            if (n == NULL) {
                break;
            }
            ids = n;
        }
        memcpy(ids[nids++], u->id, QOS_ID_LEN);
    }
    for (size_t i = 0; i < nids; i++) {
        psc_up *u = hmap_get(&p->ups, ids[i], QOS_ID_LEN);
        if (u != NULL && u->conn == conn) {
            hmap_del(&p->ups, u->id, QOS_ID_LEN);
            psc__release(p, u, sizeof *u);
        } else if (u != NULL) {
            psc__up_done(p, ids[i], conn);
        }
    }
    free(ids);
}

/* ---- delivery ----------------------------------------------------------------------------- */

#define PSC_HITS_SCAN 16 /* hit lists up to this long are de-duplicated as they grow */

static int psc__hit_cmp(const void *a, const void *b)
{
    uint64_t x = ((const psc_hit *)a)->conn, y = ((const psc_hit *)b)->conn;
    return x < y ? -1 : x > y;
}

/* Sorts a long hit list by connection and merges duplicates (highest QoS kept). */
static size_t psc__hits_merge(psc_hit *h, size_t n)
{
    if (n <= PSC_HITS_SCAN) {
        return n;
    }
    qsort(h, n, sizeof *h, psc__hit_cmp);
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        if (k > 0 && h[k - 1].conn == h[i].conn) {
            if (h[i].qos > h[k - 1].qos) {
                h[k - 1].qos = h[i].qos;
            }
        } else {
            h[k++] = h[i];
        }
    }
    return k;
}

typedef struct psc_match_ctx {
    psc *p;
    psc_hit *hits;
    psc_hit *local; /* the caller's initial array (not freed) */
    size_t n, cap;
    uint8_t qos; /* the message's: a QoS 0 message is QoS 0 for every subscriber */
    bool nomem;
} psc_match_ctx;

static void psc__match_cb(void *ctx, uint64_t sub, const char *pattern, size_t plen)
{
    psc_match_ctx *m = ctx;
    uint8_t q = 0;
    if (m->qos > 0) {
        psc_conn *c = hmap_u64_get(&m->p->conns, sub);
        psc_sub *s = c ? hmap_get(&c->subs, pattern, plen) : NULL;
        q = s ? s->qos : 0;
    }
    /* A connection whose patterns match more than once gets one delivery at its highest QoS:
     * a short list is searched here; a long one is sorted and merged after the match
     * (psc__hits_merge), so a topic with many subscribers costs O(n log n), not O(n^2). */
    for (size_t i = 0; i < m->n && m->n <= PSC_HITS_SCAN; i++) {
        if (m->hits[i].conn == sub) {
            if (q > m->hits[i].qos) {
                m->hits[i].qos = q;
            }
            return;
        }
    }
    if (m->n == m->cap) {
        size_t nc = m->cap ? m->cap * 2 : 16;
        bool on_stack = m->hits == m->local;
        psc_hit *nh = on_stack ? malloc(nc * sizeof *nh) : realloc(m->hits, nc * sizeof *nh);
        if (nh == NULL) {
            m->nomem = true;
            return;
        }
        if (on_stack) {
            memcpy(nh, m->local, m->n * sizeof *nh);
        }
        m->hits = nh;
        m->cap = nc;
    }
    m->hits[m->n++] = (psc_hit){sub, q};
}

/* Delivers a message to the local subscribers. With an upstream connection (a route), QoS 1
 * deliveries are recorded so that the upstream PUBACK waits for them; returns how many. */
/* The cache slot of topic, or NULL when the topic is too long to be remembered. */
static psc_mcache *psc__mcache_slot(psc *p, const char *topic, size_t tlen)
{
    if (tlen > PSC_MCACHE_TOPIC) {
        return NULL;
    }
    uint32_t h = 2166136261u; /* FNV-1a */
    for (size_t i = 0; i < tlen; i++) {
        h = (h ^ (uint8_t)topic[i]) * 16777619u;
    }
    return &p->mcache[h % PSC_MCACHE_N];
}

static bool psc__mcache_holds(const psc *p, const psc_mcache *e, const char *topic, size_t tlen)
{
    return e != NULL && e->gen == p->sub_gen && e->tlen == tlen &&
           memcmp(e->topic, topic, tlen) == 0;
}

/* A valid topic name: one remembered in the cache was checked when it was filled. The slot
 * is kept for the psc__local_hits that follows (one hash per message). */
static bool psc__topic_ok(psc *p, const char *topic, size_t tlen)
{
    p->mc_for = topic;
    p->mc_slot = psc__mcache_slot(p, topic, tlen);
    return psc__mcache_holds(p, p->mc_slot, topic, tlen) ||
           topic_validate_name(topic, tlen) == TOPIC_OK;
}

/* The local subscribers of a valid topic into m->hits / m->n (merged: one per connection, at
 * its highest subscription QoS), from the cache or from the trie (then remembered). On
 * PSC_EINVAL nothing is left to free. */
static int psc__local_hits(psc *p, const char *topic, size_t tlen, psc_match_ctx *m)
{
    psc_mcache *e = p->mc_for == topic ? p->mc_slot : psc__mcache_slot(p, topic, tlen);
    p->mc_for = NULL;
    if (psc__mcache_holds(p, e, topic, tlen)) {
        memcpy(m->hits, e->hits, e->n * sizeof *e->hits); /* m->cap >= PSC_MCACHE_HITS */
        m->n = e->n;
        return PSC_OK;
    }
    m->qos = 1; /* each subscription's own QoS; the delivery takes the lower of the two */
    if (topic_trie_match(p->trie, topic, tlen, psc__match_cb, m) < 0) {
        if (m->hits != m->local) {
            free(m->hits);
        }
        return PSC_EINVAL;
    }
    m->n = psc__hits_merge(m->hits, m->n);
    if (e != NULL && tlen <= PSC_MCACHE_TOPIC && !m->nomem && m->n <= PSC_MCACHE_HITS) {
        e->gen = p->sub_gen;
        e->tlen = (uint16_t)tlen;
        e->n = (uint16_t)m->n;
        memcpy(e->topic, topic, tlen);
        memcpy(e->hits, m->hits, m->n * sizeof *m->hits);
    }
    return PSC_OK;
}

static int psc__deliver_local(psc *p, const char *topic, size_t tlen, const uint8_t *payload,
                              size_t plen, uint8_t qos, const uint8_t *id, uint64_t now, psc_up *up)
{
    psc_hit local[16]; /* most messages: no allocation for the hit list */
    psc_match_ctx m = {.p = p, .hits = local, .local = local, .cap = sizeof local / sizeof *local};
    if (psc__local_hits(p, topic, tlen, &m) != PSC_OK) {
        return PSC_EINVAL;
    }
    /* One encoding per delivery QoS, shared by every subscriber's action; the last action
     * that uses it owns it (actions are carried out in order). */
    uint8_t *frames[2] = {NULL, NULL};
    size_t flen[2] = {0, 0};
    uint64_t fid[2] = {0, 0};
    psc_act *owner[2] = {NULL, NULL};
    for (size_t i = 0; i < m.n; i++) {
        uint8_t q = qos < m.hits[i].qos ? qos : m.hits[i].qos;
        if (frames[q] == NULL) {
            wire_msg w = {.type = WIRE_PUBLISH};
            w.publish.topic = (wire_bytes){(const uint8_t *)topic, tlen};
            w.publish.payload = (wire_bytes){payload, plen};
            w.publish.qos = q;
            w.publish.message_id = (wire_bytes){id, id ? QOS_ID_LEN : 0};
            psc_frame *f = psc__frame_new(p, wire_encoded_size(&w));
            if (f == NULL) {
                continue;
            }
            if (wire_encode(&w, f->data, f->cap, &flen[q]) != WIRE_OK) {
                psc__frame_free(p, f->data);
                continue;
            }
            frames[q] = f->data;
            fid[q] = ++p->frame_seq;
        }
        if (q == 1) {
            int orc = qos_outbox_add(p->outbox, id, m.hits[i].conn, frames[q], flen[q], now);
            if (orc == QOS_ELIMIT) {
                p->st.outbox_refused++;
            } else if (orc == QOS_OK && up != NULL && up->nwait < PSC_UP_WAIT_MAX) {
                up->wait[up->nwait++] = m.hits[i].conn;
            }
        }
        psc_action a = {.kind = PSC_ACT_SEND_CONN,
                        .conn = m.hits[i].conn,
                        .data = frames[q],
                        .len = flen[q],
                        .frame_id = fid[q]};
        if (psc__push(p, &a, NULL, 0, NULL, 0) == PSC_OK) {
            owner[q] = p->tail;
            p->st.delivered++;
        }
    }
    for (int q = 0; q < 2; q++) {
        if (owner[q] != NULL) {
            owner[q]->own1 = frames[q];
            owner[q]->own1_frame = true;
            p->mem += flen[q];
        } else {
            psc__frame_free(p, frames[q]);
        }
    }
    if (m.hits != local) {
        free(m.hits);
    }
    return (int)m.n;
}

/* ---- remote nodes ------------------------------------------------------------------------- */

static psc_node *psc__node(psc *p, const uint8_t id[PSC_ID_LEN], const char *addr)
{
    psc_node *n = hmap_get(&p->nodes, id, PSC_ID_LEN);
    if (n == NULL) {
        if (p->nodes.count >= p->cfg.max_nodes) {
            return NULL;
        }
        n = psc__alloc(p, sizeof *n);
        if (n == NULL) {
            return NULL;
        }
        memcpy(n->id, id, PSC_ID_LEN);
        n->dest = PSC_NODE_BIT | ++p->node_serial;
        if (hmap_put(&p->nodes, n->id, PSC_ID_LEN, n, NULL) != HMAP_OK ||
            hmap_u64_put(&p->node_by_dest, n->dest, n, NULL) != HMAP_OK) {
            hmap_del(&p->nodes, n->id, PSC_ID_LEN);
            psc__release(p, n, sizeof *n);
            return NULL;
        }
    }
    if (addr != NULL) {
        snprintf(n->addr, sizeof n->addr, "%s", addr);
    }
    return n;
}

/* Whether any of the '\n'-separated patterns matches the topic. */
static bool psc__any_match(const char *pats, size_t len, const char *topic, size_t tlen)
{
    size_t i = 0;
    while (i < len) {
        const char *nl = memchr(pats + i, '\n', len - i);
        size_t e = nl ? (size_t)(nl - pats) : len;
        if (e > i && topic_match(pats + i, e - i, topic, tlen)) {
            return true;
        }
        i = e + 1;
    }
    return false;
}

/* Sends one PUBSUB_ROUTE per remote node whose cached patterns match. */
static void psc__route_out(psc *p, const psc_cache *const *keys, size_t nkeys, const char *topic,
                           size_t tlen, const uint8_t *payload, size_t plen, uint8_t qos,
                           const uint8_t *id, uint64_t now)
{
    const uint8_t *sent[2 * 32];
    size_t nsent = 0;
    for (size_t k = 0; k < nkeys; k++) {
        for (size_t e = 0; e < keys[k]->n; e++) {
            const psc_cached *c = &keys[k]->entries[e];
            bool dup = false;
            for (size_t i = 0; i < nsent && !dup; i++) {
                dup = memcmp(sent[i], c->node, PSC_ID_LEN) == 0;
            }
            if (dup || !psc__any_match(c->patterns, c->patterns_len, topic, tlen)) {
                continue;
            }
            if (nsent < sizeof sent / sizeof *sent) {
                sent[nsent++] = c->node;
            }
            psc_node *n = psc__node(p, c->node, c->addr);
            if (n == NULL) {
                continue;
            }
            wire_msg w = {.type = WIRE_PUBSUB_ROUTE};
            wire_pubsub_route *r = &w.pubsub_route;
            r->destination_node_id = (wire_bytes){n->id, PSC_ID_LEN};
            r->source_node_id = (wire_bytes){p->cfg.node_id, PSC_ID_LEN};
            r->hop_count = 1;
            r->max_hops = p->cfg.max_hops;
            r->topic = (wire_bytes){(const uint8_t *)topic, tlen};
            r->payload.topic = r->topic;
            r->payload.payload = (wire_bytes){payload, plen};
            r->payload.qos = qos;
            r->payload.message_id = (wire_bytes){id, id ? QOS_ID_LEN : 0};
            uint8_t *frame = NULL;
            size_t flen = 0;
            if (wire_encode_alloc(&w, &frame, &flen) != WIRE_OK) {
                continue;
            }
            if (qos == 1) {
                int orc = qos_outbox_add(p->outbox, id, n->dest, frame, flen, now);
                if (orc == QOS_ELIMIT) {
                    p->st.outbox_refused++;
                }
            }
            psc_action a = {.kind = PSC_ACT_SEND_NODE,
                            .addr = n->addr,
                            .data = frame,
                            .len = flen,
                            .frame_id = ++p->frame_seq};
            memcpy(a.node_id, n->id, PSC_ID_LEN);
            if (psc__push(p, &a, frame, flen, NULL, 0) == PSC_OK) {
                p->st.routes_out++;
            }
        }
    }
}

/* ---- the index cache ---------------------------------------------------------------------- */

static psc_cache *psc__cache_get(psc *p, const char *name, size_t len, bool create)
{
    psc_cache *c = hmap_get(&p->cache, name, len);
    if (c != NULL || !create) {
        return c;
    }
    if (p->cache.count >= p->cfg.max_cache_keys) {
        /* Forget answers that are not in use (not pending), the first found. */
        size_t it = 0;
        const hmap_slot *s;
        psc_cache *victim = NULL;
        while ((s = hmap_next(&p->cache, &it)) != NULL && victim == NULL) {
            psc_cache *v = s->val;
            victim = v->pending ? NULL : v;
        }
        if (victim == NULL) {
            return NULL;
        }
        hmap_del(&p->cache, victim->name, victim->len);
        p->cache_gen++;
        psc__cache_clear(p, victim);
        psc__release(p, victim->name, victim->len + 1);
        psc__release(p, victim, sizeof *victim);
    }
    c = psc__alloc(p, sizeof *c);
    char *nm = c ? psc__dup(p, name, len) : NULL;
    if (c == NULL || nm == NULL || hmap_put(&p->cache, nm, len, c, NULL) != HMAP_OK) {
        psc__release(p, nm, len + 1);
        psc__release(p, c, sizeof *c);
        return NULL;
    }
    c->name = nm;
    c->len = len;
    return c;
}

/* The two index keys a topic can be found under: "psub:FIRST" and "psub:*". */
static int psc__topic_keys(const char *topic, size_t tlen, char k0[PSC_INDEX_VALUE_MAX], size_t *l0)
{
    const char *dot = memchr(topic, '.', tlen);
    size_t seg = dot ? (size_t)(dot - topic) : tlen;
    size_t plen = strlen(PSC_KEY_PREFIX);
    if (plen + seg > PSC_INDEX_VALUE_MAX) {
        return PSC_EINVAL;
    }
    for (size_t i = 0; i < plen; i++) {
        k0[i] = PSC_KEY_PREFIX[i];
    }
    memcpy(k0 + plen, topic, seg);
    *l0 = plen + seg;
    return PSC_OK;
}

static const char psc__wild_key[] = PSC_KEY_PREFIX "*";

/* Starts lookups for keys with no fresh answer; returns true when both are fresh (and fills
 * keys). */
static bool psc__fresh(const psc_cache *c, uint64_t now)
{
    return c != NULL && c->have && !c->pending && c->expires > now;
}

static bool psc__keys_ready(psc *p, const char *topic, size_t tlen, uint64_t now,
                            const psc_cache *keys[2], bool start)
{
    char k0[PSC_INDEX_VALUE_MAX];
    size_t l0 = 0;
    if (psc__topic_keys(topic, tlen, k0, &l0) != PSC_OK) {
        return false;
    }
    if (p->memo_gen == p->cache_gen && p->memo_len == l0 && memcmp(p->memo_seg, k0, l0) == 0 &&
        psc__fresh(p->memo[0], now) && psc__fresh(p->memo[1], now)) {
        keys[0] = p->memo[0];
        keys[1] = p->memo[1];
        return true;
    }
    const char *names[2] = {k0, psc__wild_key};
    size_t lens[2] = {l0, sizeof psc__wild_key - 1};
    bool ready = true;
    psc_cache *got[2] = {NULL, NULL};
    uint64_t gen0 = p->cache_gen;
    for (int i = 0; i < 2; i++) {
        psc_cache *c = psc__cache_get(p, names[i], lens[i], start);
        if (psc__fresh(c, now)) {
            keys[i] = c;
            got[i] = c;
            continue;
        }
        ready = false;
        if (c != NULL && start && !c->pending) {
            char *nm = malloc(lens[i] + 1);
            if (nm == NULL) {
                continue;
            }
            memcpy(nm, names[i], lens[i]);
            psc_action a = {.kind = PSC_ACT_LOOKUP, .key = nm, .key_len = lens[i]};
            if (psc__push(p, &a, nm, lens[i], NULL, 0) == PSC_OK) {
                c->pending = true;
                p->st.lookups++;
            }
        }
    }
    if (ready && p->cache_gen != gen0) {
        /* making room for the second key may have evicted the first: look it up again */
        got[0] = psc__cache_get(p, names[0], lens[0], false);
        ready = psc__fresh(got[0], now);
        keys[0] = got[0];
    }
    if (ready) {
        memcpy(p->memo_seg, k0, l0);
        p->memo_len = l0;
        p->memo[0] = got[0];
        p->memo[1] = got[1];
        p->memo_gen = p->cache_gen;
    }
    return ready;
}

static int psc__wait_add(psc *p, uint64_t conn, const wire_publish *pub, uint8_t qos)
{
    if (p->nwait >= p->cfg.max_waiting) {
        p->st.waiting_dropped++;
        return PSC_ELIMIT;
    }
    psc_wait *w = psc__alloc(p, sizeof *w);
    if (w == NULL) {
        return PSC_ENOMEM;
    }
    w->topic = psc__dup(p, pub->topic.p, pub->topic.len);
    w->payload = (uint8_t *)psc__dup(p, pub->payload.p, pub->payload.len);
    if (w->topic == NULL || w->payload == NULL) {
        psc__wait_free(p, w);
        return PSC_ENOMEM;
    }
    w->topic_len = pub->topic.len;
    w->payload_len = pub->payload.len;
    w->conn = conn;
    w->qos = qos;
    if (qos == 1) {
        memcpy(w->id, pub->message_id.p, QOS_ID_LEN);
    }
    if (p->wait_tail != NULL) {
        p->wait_tail->next = w;
    } else {
        p->wait_head = w;
    }
    p->wait_tail = w;
    p->nwait++;
    return PSC_OK;
}

/* Routes waiting publishes whose keys are answered, in order. A publish whose key lost its
 * answer meanwhile (evicted) starts the lookup again and keeps waiting. */
static void psc__wait_run(psc *p, uint64_t now)
{
    psc_wait **pp = &p->wait_head;
    p->wait_tail = NULL;
    while (*pp != NULL) {
        psc_wait *w = *pp;
        const psc_cache *keys[2] = {NULL, NULL};
        if (!psc__keys_ready(p, w->topic, w->topic_len, now, keys, false)) {
            /* Still missing: restart lookups that are neither fresh nor pending. */
            (void)psc__keys_ready(p, w->topic, w->topic_len, now, keys, true);
            p->wait_tail = w;
            pp = &w->next;
            continue;
        }
        psc__route_out(p, keys, 2, w->topic, w->topic_len, w->payload, w->payload_len, w->qos,
                       w->qos ? w->id : NULL, now);
        if (w->qos == 1 && w->conn != UINT64_MAX) {
            (void)psc__puback(p, w->conn, w->id);
        }
        *pp = w->next;
        p->nwait--;
        psc__wait_free(p, w);
    }
}

int psc_lookup_done(psc *p, const char *key, size_t key_len, const psc_index_entry *entries,
                    size_t n, bool ok, uint64_t now)
{
    psc_cache *c = psc__cache_get(p, key, key_len, false);
    if (c == NULL) {
        return PSC_ENOENT;
    }
    psc__cache_clear(p, c);
    c->pending = false;
    c->have = true;
    size_t keep = 0;
    psc_cached *es = n ? psc__alloc(p, n * sizeof *es) : NULL;
    for (size_t i = 0; es != NULL && i < n; i++) {
        const psc_index_entry *e = &entries[i];
        if (memcmp(e->node_id, p->cfg.node_id, PSC_ID_LEN) == 0 || e->patterns_len == 0) {
            continue;
        }
        char *pats = psc__dup(p, e->patterns, e->patterns_len);
        if (pats == NULL) {
            continue;
        }
        memcpy(es[keep].node, e->node_id, PSC_ID_LEN);
        snprintf(es[keep].addr, sizeof es[keep].addr, "%s", e->addr);
        es[keep].patterns = pats;
        es[keep].patterns_len = e->patterns_len;
        keep++;
    }
    if (keep == 0) {
        psc__release(p, es, n * sizeof *es);
        es = NULL;
    }
    c->entries = es;
    c->n = keep;
    c->cap = keep ? n : 0;
    c->expires = now + (ok && keep > 0 ? p->cfg.cache_ms : p->cfg.neg_cache_ms);
    psc__wait_run(p, now);
    return PSC_OK;
}

/* ---- publishing --------------------------------------------------------------------------- */

int psc_publish(psc *p, uint64_t conn, const wire_publish *pub, uint64_t now)
{
    uint8_t qos = pub->qos > 0 ? 1 : 0;
    if (!psc__topic_ok(p, (const char *)pub->topic.p, pub->topic.len) ||
        (qos == 1 && pub->message_id.len != QOS_ID_LEN)) {
        p->st.refused_invalid++;
        return PSC_EINVAL;
    }
    const uint8_t *id = qos ? pub->message_id.p : NULL;
    if (qos == 1 && qos_dedup_check(p->dedup, id, now)) {
        p->st.duplicates++;
        return conn != UINT64_MAX ? psc__puback(p, conn, id) : PSC_OK;
    }
    p->st.published++;
    const char *topic = (const char *)pub->topic.p;
    (void)psc__deliver_local(p, topic, pub->topic.len, pub->payload.p, pub->payload.len, qos, id,
                             now, NULL);
    const psc_cache *keys[2] = {NULL, NULL};
    if (psc__keys_ready(p, topic, pub->topic.len, now, keys, true)) {
        p->st.cache_hits++;
        psc__route_out(p, keys, 2, topic, pub->topic.len, pub->payload.p, pub->payload.len, qos, id,
                       now);
        return qos == 1 && conn != UINT64_MAX ? psc__puback(p, conn, id) : PSC_OK;
    }
    return psc__wait_add(p, conn, pub, qos);
}

int psc_puback(psc *p, uint64_t conn, const uint8_t *id, size_t id_len)
{
    if (id_len != QOS_ID_LEN) {
        return PSC_EINVAL;
    }
    if (qos_outbox_ack(p->outbox, id, conn) != QOS_OK) {
        return PSC_ENOENT;
    }
    p->st.pubacks_in++;
    psc__up_done(p, id, conn);
    return PSC_OK;
}

int psc_node_puback(psc *p, const uint8_t from[PSC_ID_LEN], const uint8_t *id, size_t id_len)
{
    psc_node *n = hmap_get(&p->nodes, from, PSC_ID_LEN);
    if (n == NULL || id_len != QOS_ID_LEN) {
        return PSC_ENOENT;
    }
    if (qos_outbox_ack(p->outbox, id, n->dest) != QOS_OK) {
        return PSC_ENOENT;
    }
    p->st.pubacks_in++;
    return PSC_OK;
}

int psc_route_in(psc *p, uint64_t conn, const uint8_t from[PSC_ID_LEN], const wire_pubsub_route *r,
                 uint64_t now)
{
    (void)from;
    const wire_publish *pub = &r->payload;
    uint8_t qos = pub->qos > 0 ? 1 : 0;
    if (r->destination_node_id.len != PSC_ID_LEN ||
        memcmp(r->destination_node_id.p, p->cfg.node_id, PSC_ID_LEN) != 0) {
        p->st.routes_refused++;
        return PSC_EMISROUTE;
    }
    if (r->hop_count > r->max_hops || r->hop_count > p->cfg.max_hops) {
        p->st.routes_refused++;
        return PSC_EHOPS;
    }
    if (!psc__topic_ok(p, (const char *)pub->topic.p, pub->topic.len) ||
        (qos == 1 && pub->message_id.len != QOS_ID_LEN)) {
        p->st.routes_refused++;
        return PSC_EINVAL;
    }
    p->st.routes_in++;
    const uint8_t *id = qos ? pub->message_id.p : NULL;
    if (qos == 0) {
        (void)psc__deliver_local(p, (const char *)pub->topic.p, pub->topic.len, pub->payload.p,
                                 pub->payload.len, 0, NULL, now, NULL);
        return PSC_OK;
    }
    if (qos_dedup_check(p->dedup, id, now)) {
        p->st.duplicates++;
        /* Still waiting for local subscribers: the ack will come when they are done. */
        return hmap_get(&p->ups, id, QOS_ID_LEN) != NULL ? PSC_OK : psc__puback(p, conn, id);
    }
    psc_up *u = psc__alloc(p, sizeof *u);
    if (u == NULL) {
        return PSC_ENOMEM;
    }
    memcpy(u->id, id, QOS_ID_LEN);
    u->conn = conn;
    (void)psc__deliver_local(p, (const char *)pub->topic.p, pub->topic.len, pub->payload.p,
                             pub->payload.len, 1, id, now, u);
    if (u->nwait == 0 || hmap_put(&p->ups, u->id, QOS_ID_LEN, u, NULL) != HMAP_OK) {
        psc__release(p, u, sizeof *u);
        return psc__puback(p, conn, id);
    }
    return PSC_OK;
}

/* ---- time and actions --------------------------------------------------------------------- */

int psc_tick(psc *p, uint64_t now)
{
    qos_event ev;
    while (qos_outbox_poll(p->outbox, now, &ev)) {
        bool node = (ev.dest & PSC_NODE_BIT) != 0;
        if (ev.kind == QOS_RESEND) {
            p->st.resent++;
            psc_node *n = node ? hmap_u64_get(&p->node_by_dest, ev.dest) : NULL;
            if (!node || n != NULL) {
                (void)psc__send_raw(p, node, ev.dest, n, ev.frame, ev.frame_len);
            }
        } else {
            p->st.gave_up++;
            if (!node) {
                psc__up_done(p, ev.id, ev.dest);
            }
        }
    }
    return PSC_OK;
}

uint64_t psc_next_deadline(const psc *p)
{
    if (p->dirty != NULL) {
        return 0;
    }
    return qos_outbox_next_deadline(p->outbox);
}

void psc_readvertise(psc *p)
{
    size_t it = 0;
    const hmap_slot *s;
    while ((s = hmap_next(&p->keys, &it)) != NULL) {
        psc__mark_dirty(p, s->val);
    }
}

void psc_set_addr(psc *p, const char *addr)
{
    if (addr == NULL || strcmp(addr, p->cfg.addr) == 0) {
        return;
    }
    snprintf(p->cfg.addr, sizeof p->cfg.addr, "%s", addr);
    psc_readvertise(p);
}

bool psc_next_action(psc *p, psc_action *out)
{
    psc__act_free(p, p->popped);
    p->popped = NULL;
    if (p->head == NULL && p->dirty != NULL) {
        psc__flush_dirty(p);
        psc__gc_keys(p);
    }
    psc_act *r = p->head;
    if (r == NULL) {
        return false;
    }
    p->head = r->next;
    if (p->head == NULL) {
        p->tail = NULL;
    }
    *out = r->a;
    p->popped = r;
    return true;
}

void psc_get_stats(const psc *p, psc_stats *out)
{
    *out = p->st;
}

size_t psc_memory(const psc *p)
{
    qos_outbox_stats os;
    qos_outbox_get_stats(p->outbox, &os);
    return p->mem + topic_trie_nodes(p->trie) * 64 + os.bytes;
}
