/* src/mesh/dht/dht_table.c — the routing table: 256 k-buckets with LRS ordering, replacement
 * slots, LRS probing and eviction, removal, closest-k selection, bucket refresh (Kademlia
 * paper §2.2, §2.3, §4.1; see dht.h). */
#include "mesh/dht/dht_internal.h"

#include <stdlib.h>
#include <string.h>

static int dht__find(const dht__entry *e, uint32_t n, const dht_id *id)
{
    for (uint32_t i = 0; i < n; i++) {
        if (memcmp(e[i].c.id.b, id->b, DHT_ID_LEN) == 0) {
            return (int)i;
        }
    }
    return -1;
}

/* Grows an entry array to hold one more (capacity bounded by `limit`). */
static int dht__grow(dht__entry **arr, uint8_t *cap, uint32_t n, uint32_t limit)
{
    if (n < *cap) {
        return 0;
    }
    uint32_t nc = *cap == 0 ? 4 : (uint32_t)*cap * 2;
    if (nc > limit) {
        nc = limit;
    }
    if (nc <= n) {
        return DHT_EBUSY;
    }
    dht__entry *na = realloc(*arr, nc * sizeof *na);
    if (na == NULL) {
        return DHT_ENOMEM;
    }
    *arr = na;
    *cap = (uint8_t)nc;
    return 0;
}

static void dht__set_addr(dht__entry *e, const char *addr)
{
    if (addr != NULL && addr[0] != 0) {
        size_t n = strnlen(addr, DHT_ADDR_MAX);
        memcpy(e->c.addr, addr, n);
        e->c.addr[n] = 0;
    }
}

/* Moves entry i of a run of n to the end (it is now the most recently seen). */
static void dht__to_tail(dht__entry *e, uint32_t n, uint32_t i)
{
    if (i + 1 < n) {
        dht__entry tmp = e[i];
        memmove(&e[i], &e[i + 1], (n - i - 1) * sizeof *e);
        e[n - 1] = tmp;
    }
}

static void dht__remove_at(dht__entry *e, uint8_t *n, uint32_t i)
{
    memmove(&e[i], &e[i + 1], (*n - i - 1) * sizeof *e);
    (*n)--;
}

/* Fills a hole in bucket bk with its newest replacement, keeping LRS order. */
static void dht__promote(dht *d, dht__bucket *bk)
{
    if (bk->nrepl == 0 || dht__grow(&bk->e, &bk->cap, bk->n, d->cfg.k) != 0) {
        return;
    }
    dht__entry r = bk->repl[bk->nrepl - 1];
    bk->nrepl--;
    uint32_t pos = bk->n;
    while (pos > 0 && bk->e[pos - 1].last_seen > r.last_seen) {
        pos--;
    }
    memmove(&bk->e[pos + 1], &bk->e[pos], (bk->n - pos) * sizeof r);
    bk->e[pos] = r;
    bk->n++;
    d->table_size++;
}

static void dht__evict_at(dht *d, dht__bucket *bk, uint32_t i)
{
    dht__remove_at(bk->e, &bk->n, i);
    d->table_size--;
    d->st.evictions++;
    dht__promote(d, bk);
}

static void dht__probe(dht *d, dht__bucket *bk, int b)
{
    dht_msg m;
    memset(&m, 0, sizeof m);
    m.type = WIRE_FIND_NODE;
    m.key = d->self.id;
    if (dht__request(d, &bk->e[0].c, &m, NULL, DHT__REQ_PROBE, 0, 0, (int16_t)b) == 0) {
        bk->probe_req = m.request_id;
        d->st.probes++;
    }
}

void dht__table_seen(dht *d, const dht_id *id, const char *addr)
{
    int b = dht_bucket_index(&d->self.id, id);
    if (b < 0) {
        return;
    }
    dht__bucket *bk = &d->buckets[b];
    int i = dht__find(bk->e, bk->n, id);
    if (i >= 0) {
        dht__set_addr(&bk->e[i], addr);
        bk->e[i].last_seen = d->now;
        bk->e[i].fails = 0;
        dht__to_tail(bk->e, bk->n, (uint32_t)i);
        return;
    }
    int r = dht__find(bk->repl, bk->nrepl, id);
    dht__entry ne;
    memset(&ne, 0, sizeof ne);
    if (r >= 0) {
        ne = bk->repl[r];
        dht__remove_at(bk->repl, &bk->nrepl, (uint32_t)r);
    } else {
        ne.c.id = *id;
    }
    dht__set_addr(&ne, addr);
    ne.last_seen = d->now;
    ne.fails = 0;
    if (ne.c.addr[0] == 0) {
        return; /* no way to reach it: not routable */
    }
    if (bk->n < d->cfg.k && dht__grow(&bk->e, &bk->cap, bk->n, d->cfg.k) == 0) {
        bk->e[bk->n++] = ne;
        d->table_size++;
        return;
    }
    if (bk->n < d->cfg.k) {
        return; /* out of memory: drop the newcomer */
    }
    /* Full: the newcomer waits in a replacement slot (newest last, oldest dropped). */
    if (d->cfg.replacements > 0) {
        if (bk->nrepl >= d->cfg.replacements) {
            dht__remove_at(bk->repl, &bk->nrepl, 0);
        }
        if (dht__grow(&bk->repl, &bk->rcap, bk->nrepl, d->cfg.replacements) == 0) {
            bk->repl[bk->nrepl++] = ne;
        }
    }
    if (bk->probe_req == 0 &&
        (d->cfg.probe_after_ms == 0 || d->now - bk->e[0].last_seen >= d->cfg.probe_after_ms)) {
        dht__probe(d, bk, b);
    }
}

void dht__table_failed(dht *d, const dht_id *id)
{
    int b = dht_bucket_index(&d->self.id, id);
    if (b < 0) {
        return;
    }
    dht__bucket *bk = &d->buckets[b];
    int i = dht__find(bk->e, bk->n, id);
    if (i >= 0) {
        if (++bk->e[i].fails >= d->cfg.max_fails) {
            dht__evict_at(d, bk, (uint32_t)i);
        }
        return;
    }
    int r = dht__find(bk->repl, bk->nrepl, id);
    if (r >= 0) {
        dht__remove_at(bk->repl, &bk->nrepl, (uint32_t)r);
    }
}

void dht__table_probe_timeout(dht *d, int b, const dht_id *id)
{
    if (b < 0 || b >= DHT__BUCKETS) {
        return;
    }
    dht__bucket *bk = &d->buckets[b];
    bk->probe_req = 0;
    int i = dht__find(bk->e, bk->n, id);
    if (i >= 0) {
        dht__evict_at(d, bk, (uint32_t)i);
    }
}

int dht__table_remove(dht *d, const dht_id *id)
{
    int b = dht_bucket_index(&d->self.id, id);
    if (b < 0) {
        return DHT_ENOTFOUND;
    }
    dht__bucket *bk = &d->buckets[b];
    int i = dht__find(bk->e, bk->n, id);
    if (i >= 0) {
        dht__evict_at(d, bk, (uint32_t)i);
        return 0;
    }
    int r = dht__find(bk->repl, bk->nrepl, id);
    if (r >= 0) {
        dht__remove_at(bk->repl, &bk->nrepl, (uint32_t)r);
        return 0;
    }
    return DHT_ENOTFOUND;
}

void dht__table_free(dht *d)
{
    for (int b = 0; b < DHT__BUCKETS; b++) {
        free(d->buckets[b].e);
        free(d->buckets[b].repl);
        d->buckets[b].e = NULL;
        d->buckets[b].repl = NULL;
    }
}

bool dht_has_contact(const dht *d, const dht_id *id)
{
    int b = dht_bucket_index(&d->self.id, id);
    return b >= 0 && dht__find(d->buckets[b].e, d->buckets[b].n, id) >= 0;
}

uint32_t dht_table_size(const dht *d)
{
    return d->table_size;
}

uint32_t dht_bucket_size(const dht *d, int i)
{
    return i >= 0 && i < DHT__BUCKETS ? d->buckets[i].n : 0;
}

uint32_t dht_bucket_replacements(const dht *d, int i)
{
    return i >= 0 && i < DHT__BUCKETS ? d->buckets[i].nrepl : 0;
}

bool dht_bucket_entry(const dht *d, int i, uint32_t pos, dht_contact *out)
{
    if (i < 0 || i >= DHT__BUCKETS || pos >= d->buckets[i].n) {
        return false;
    }
    *out = d->buckets[i].e[pos].c;
    return true;
}

int dht_remove_contact(dht *d, const dht_id *id)
{
    return dht__table_remove(d, id);
}

/* ---- closest k -------------------------------------------------------------------------- */

#define DHT__CLOSEST_MAX 128

/* Inserts e into best[0..*n) sorted by distance to target, keeping at most max. */
static void dht__consider(const dht_id *target, const dht__entry **best, uint32_t *n, uint32_t max,
                          const dht__entry *e)
{
    uint32_t pos = *n;
    while (pos > 0 && dht_cmp_distance(target, &e->c.id, &best[pos - 1]->c.id) < 0) {
        pos--;
    }
    if (pos >= max) {
        return;
    }
    uint32_t last = *n < max ? *n : max - 1;
    memmove(&best[pos + 1], &best[pos], (last - pos) * sizeof *best);
    best[pos] = e;
    if (*n < max) {
        (*n)++;
    }
}

static void dht__consider_bucket(const dht__bucket *bk, const dht_id *target,
                                 const dht__entry **best, uint32_t *n, uint32_t max)
{
    for (uint32_t i = 0; i < bk->n; i++) {
        dht__consider(target, best, n, max, &bk->e[i]);
    }
}

/* Buckets are visited in groups of increasing distance to target: with b the bucket of the
 * target, everything in bucket b is closer than 2^b, everything in buckets below b is at
 * distance [2^b, 2^(b+1)), and bucket j > b is at [2^j, 2^(j+1)). A group is considered whole
 * before stopping, so the result is exact. */
uint32_t dht_closest(const dht *d, const dht_id *target, dht_contact *out, uint32_t max)
{
    const dht__entry *best[DHT__CLOSEST_MAX];
    uint32_t n = 0;
    if (max > DHT__CLOSEST_MAX) {
        max = DHT__CLOSEST_MAX;
    }
    if (max == 0) {
        return 0;
    }
    int b = dht_bucket_index(&d->self.id, target);
    int j = 0;
    if (b >= 0) {
        dht__consider_bucket(&d->buckets[b], target, best, &n, max);
        if (n < max) {
            for (int i = b - 1; i >= 0; i--) {
                dht__consider_bucket(&d->buckets[i], target, best, &n, max);
            }
        }
        j = b + 1;
    }
    for (; j < DHT__BUCKETS && n < max; j++) {
        dht__consider_bucket(&d->buckets[j], target, best, &n, max);
    }
    for (uint32_t i = 0; i < n; i++) {
        out[i] = best[i]->c;
    }
    return n;
}

/* ---- refresh ---------------------------------------------------------------------------- */

static int dht__lowest_bucket(const dht *d)
{
    for (int b = 0; b < DHT__BUCKETS; b++) {
        if (d->buckets[b].n > 0) {
            return b;
        }
    }
    return -1;
}

uint64_t dht__table_refresh_deadline(const dht *d)
{
    int lo = dht__lowest_bucket(d);
    uint64_t best = UINT64_MAX;
    if (lo < 0) {
        return best;
    }
    for (int b = lo; b < DHT__BUCKETS; b++) {
        uint64_t t = d->buckets[b].last_touched + d->cfg.refresh_ms;
        if (t < best) {
            best = t;
        }
    }
    return best;
}

void dht__table_touch(dht *d, const dht_id *target)
{
    int b = dht_bucket_index(&d->self.id, target);
    if (b >= 0) {
        d->buckets[b].last_touched = d->now;
    }
}

void dht__table_refresh(dht *d, bool force)
{
    int lo = dht__lowest_bucket(d);
    if (lo < 0) {
        return;
    }
    for (int b = lo; b < DHT__BUCKETS; b++) {
        if (!force && d->buckets[b].last_touched + d->cfg.refresh_ms > d->now) {
            continue;
        }
        /* a random id whose distance to us has its top bit at b */
        dht_id dist, target;
        for (int i = 0; i < DHT_ID_LEN; i += 8) {
            uint64_t r = dht__rand(d);
            memcpy(&dist.b[i], &r, 8);
        }
        int byte = DHT_ID_LEN - 1 - b / 8, bit = b % 8;
        memset(dist.b, 0, (size_t)byte);
        dist.b[byte] = (uint8_t)((dist.b[byte] & ((1u << bit) - 1)) | (1u << bit));
        dht_distance(&d->self.id, &dist, &target);
        uint32_t h;
        d->buckets[b].last_touched = d->now; /* also when no lookup slot is free: no spin */
        if (dht__lookup_start(d, DHT__L_REFRESH, &target, &h) == 0) {
            d->st.refreshes++;
        }
    }
}
