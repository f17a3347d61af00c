/* src/base/hmap.c — open-addressing hash map; the contract is in hmap.h. */
#include "base/hmap.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

static uint64_t hmap__k0, hmap__k1; /* SipHash key, per process */
static pthread_once_t hmap__seed_once = PTHREAD_ONCE_INIT;
static int hmap__seeded; /* set (release) once the key is in place: skips pthread_once after */

static void hmap__seed_init(void)
{
    uint64_t k[2];
    if (getrandom(k, sizeof k, 0) != (ssize_t)sizeof k) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        k[0] = (uint64_t)ts.tv_nsec * 0x9e3779b97f4a7c15u ^ (uint64_t)ts.tv_sec;
        k[1] = (uint64_t)(uintptr_t)&ts * 0xbf58476d1ce4e5b9u ^ k[0];
    }
    hmap__k0 = k[0];
    hmap__k1 = k[1];
    __atomic_store_n(&hmap__seeded, 1, __ATOMIC_RELEASE);
}

static inline void hmap__seed(void)
{
    if (__builtin_expect(!__atomic_load_n(&hmap__seeded, __ATOMIC_ACQUIRE), 0)) {
        pthread_once(&hmap__seed_once, hmap__seed_init);
    }
}

static inline uint64_t rotl(uint64_t x, int b)
{
    return (x << b) | (x >> (64 - b));
}

static inline uint64_t le64(const unsigned char *p)
{
    uint64_t v;
    memcpy(&v, p, sizeof v);
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
    v = __builtin_bswap64(v);
#endif
    return v;
}

#define SIPROUND                                                                                   \
    do {                                                                                           \
        v0 += v1;                                                                                  \
        v1 = rotl(v1, 13);                                                                         \
        v1 ^= v0;                                                                                  \
        v0 = rotl(v0, 32);                                                                         \
        v2 += v3;                                                                                  \
        v3 = rotl(v3, 16);                                                                         \
        v3 ^= v2;                                                                                  \
        v0 += v3;                                                                                  \
        v3 = rotl(v3, 21);                                                                         \
        v3 ^= v0;                                                                                  \
        v2 += v1;                                                                                  \
        v1 = rotl(v1, 17);                                                                         \
        v1 ^= v2;                                                                                  \
        v2 = rotl(v2, 32);                                                                         \
    } while (0)

/* SipHash-1-3 under the process key: peers choose keys (node ids, call ids, topics), so the
 * hash must be keyed for them not to aim many keys at one slot. One compression round per
 * 8-byte block and three finalization rounds (Rust's std HashMap default): keyed and
 * flood-resistant, about twice as fast as SipHash-2-4 on the short keys maps see. */
static inline uint64_t hmap__sip13(uint64_t k0, uint64_t k1, const void *key, size_t klen)
{
    const unsigned char *in = key;
    uint64_t v0 = 0x736f6d6570736575u ^ k0, v1 = 0x646f72616e646f6du ^ k1;
    uint64_t v2 = 0x6c7967656e657261u ^ k0, v3 = 0x7465646279746573u ^ k1;
    size_t full = klen - (klen % 8);
    for (size_t off = 0; off < full; off += 8) {
        uint64_t m = le64(in + off);
        v3 ^= m;
        SIPROUND;
        v0 ^= m;
    }
    uint64_t b = ((uint64_t)klen) << 56;
    for (size_t i = 0; i < klen % 8; i++) {
        b |= ((uint64_t)in[full + i]) << (8 * i);
    }
    v3 ^= b;
    SIPROUND;
    v0 ^= b;
    v2 ^= 0xff;
    SIPROUND;
    SIPROUND;
    SIPROUND;
    return v0 ^ v1 ^ v2 ^ v3;
}

uint64_t hmap_siphash13(uint64_t k0, uint64_t k1, const void *key, size_t klen)
{
    return hmap__sip13(k0, k1, key, klen);
}

uint64_t hmap_hash(const void *key, size_t klen)
{
    hmap__seed();
    uint64_t h = hmap__sip13(hmap__k0, hmap__k1, key, klen);
    return h ? h : 1;
}

const char *hmap_strerror(int err)
{
    switch (err) {
    case HMAP_OK: return "ok";
    case HMAP_ENOMEM: return "out of memory";
    case HMAP_EINVAL: return "invalid argument";
    default: return "unknown error";
    }
}

void hmap_init(hmap *m)
{
    memset(m, 0, sizeof *m);
}

void hmap_free(hmap *m)
{
    free(m->slots);
    hmap_init(m);
}

/* Backward-shift deletion: whether the entry at j, whose home slot is `home`, must stay where
 * it is after slot i was emptied (its home lies cyclically in (i, j]); shared by both maps. */
static inline int hmap__stays(size_t i, size_t j, size_t home)
{
    return (i <= j) ? (i < home && home <= j) : (i < home || home <= j);
}

static size_t hmap__find(const hmap *m, uint64_t h, const void *key, size_t klen, int *found)
{
    size_t mask = m->cap - 1, i = (size_t)h & mask;
    for (;;) {
        const hmap_slot *s = &m->slots[i];
        if (s->hash == 0) {
            *found = 0;
            return i;
        }
        if (s->hash == h && s->klen == klen && (klen == 0 || memcmp(s->key, key, klen) == 0)) {
            *found = 1;
            return i;
        }
        i = (i + 1) & mask;
    }
}

static int hmap__grow(hmap *m)
{
    size_t ncap = m->cap ? m->cap * 2 : 16;
    hmap_slot *ns = calloc(ncap, sizeof *ns);
    if (ns == NULL) {
        return HMAP_ENOMEM;
    }
    for (size_t i = 0; i < m->cap; i++) {
        hmap_slot *s = &m->slots[i];
        if (s->hash != 0) {
            size_t j = (size_t)s->hash & (ncap - 1);
            while (ns[j].hash != 0) {
                j = (j + 1) & (ncap - 1);
            }
            ns[j] = *s;
        }
    }
    free(m->slots);
    m->slots = ns;
    m->cap = ncap;
    return HMAP_OK;
}

void *hmap_get(const hmap *m, const void *key, size_t klen)
{
    if (m->count == 0) {
        return NULL;
    }
    int found;
    size_t i = hmap__find(m, hmap_hash(key, klen), key, klen, &found);
    return found ? m->slots[i].val : NULL;
}

int hmap_put(hmap *m, const void *key, size_t klen, void *val, void **old)
{
    if (old != NULL) {
        *old = NULL;
    }
    uint64_t h = hmap_hash(key, klen);
    int found = 0;
    size_t i = 0;
    if (m->cap > 0) {
        i = hmap__find(m, h, key, klen, &found);
    }
    if (found) {
        if (old != NULL) {
            *old = m->slots[i].val;
        }
        m->slots[i].key = key;
        m->slots[i].val = val;
        return HMAP_OK;
    }
    if ((m->count + 1) * 4 > m->cap * 3) {
        if (hmap__grow(m) != HMAP_OK) {
            return HMAP_ENOMEM;
        }
        i = hmap__find(m, h, key, klen, &found);
    }
    m->slots[i] = (hmap_slot){.hash = h, .key = key, .klen = klen, .val = val};
    m->count++;
    return HMAP_OK;
}

void *hmap_del(hmap *m, const void *key, size_t klen)
{
    if (m->count == 0) {
        return NULL;
    }
    int found;
    size_t i = hmap__find(m, hmap_hash(key, klen), key, klen, &found);
    if (!found) {
        return NULL;
    }
    void *val = m->slots[i].val;
    size_t mask = m->cap - 1, j = i;
    /* Backward shift: pull later entries of the cluster into the hole when their home slot
     * does not lie cyclically in (hole, j]. */
    for (;;) {
        j = (j + 1) & mask;
        if (m->slots[j].hash == 0) {
            break;
        }
        size_t home = (size_t)m->slots[j].hash & mask;
        if (!hmap__stays(i, j, home)) {
            m->slots[i] = m->slots[j];
            i = j;
        }
    }
    m->slots[i] = (hmap_slot){0};
    m->count--;
    return val;
}

const hmap_slot *hmap_next(const hmap *m, size_t *it)
{
    while (*it < m->cap) {
        const hmap_slot *s = &m->slots[(*it)++];
        if (s->hash != 0) {
            return s;
        }
    }
    return NULL;
}

/* ---- hmap_u64 ---------------------------------------------------------------------------- */

void hmap_u64_init(hmap_u64 *m)
{
    memset(m, 0, sizeof *m);
}

void hmap_u64_free(hmap_u64 *m)
{
    free(m->slots);
    hmap_u64_init(m);
}

static inline size_t hmap_u64__home(const hmap_u64 *m, uint64_t key)
{
    return (size_t)hmap_u64_mix(key, m->seed) & (m->cap - 1);
}

/* The slot holding key (*found = 1) or the empty slot ending its probe run (*found = 0). The
 * table must exist: at most 3/4 full, so a probe always meets an empty slot. */
static inline size_t hmap_u64__find(const hmap_u64 *m, uint64_t key, int *found)
{
    size_t mask = m->cap - 1, i = hmap_u64__home(m, key);
    for (;;) {
        const hmap_u64_slot *s = &m->slots[i];
        if (s->val == NULL) {
            *found = 0;
            return i;
        }
        if (s->key == key) {
            *found = 1;
            return i;
        }
        i = (i + 1) & mask;
    }
}

static int hmap_u64__grow(hmap_u64 *m)
{
    size_t ncap = m->cap ? m->cap * 2 : 16;
    hmap_u64_slot *ns = calloc(ncap, sizeof *ns);
    if (ns == NULL) {
        return HMAP_ENOMEM;
    }
    if (m->cap == 0) {
        hmap__seed();
        /* A different bijection from the SipHash key; never published. */
        m->seed = hmap_u64_mix(hmap__k0 ^ 0x243f6a8885a308d3u, hmap__k1);
    }
    for (size_t i = 0; i < m->cap; i++) {
        const hmap_u64_slot *s = &m->slots[i];
        if (s->val != NULL) {
            size_t j = (size_t)hmap_u64_mix(s->key, m->seed) & (ncap - 1);
            while (ns[j].val != NULL) {
                j = (j + 1) & (ncap - 1);
            }
            ns[j] = *s;
        }
    }
    free(m->slots);
    m->slots = ns;
    m->cap = ncap;
    return HMAP_OK;
}

void *hmap_u64_get(const hmap_u64 *m, uint64_t key)
{
    if (m->count == 0) {
        return NULL;
    }
    int found;
    size_t i = hmap_u64__find(m, key, &found);
    return found ? m->slots[i].val : NULL;
}

int hmap_u64_put(hmap_u64 *m, uint64_t key, void *val, void **old)
{
    if (old != NULL) {
        *old = NULL;
    }
    if (val == NULL) {
        return HMAP_EINVAL;
    }
    int found = 0;
    size_t i = 0;
    if (m->cap > 0) {
        i = hmap_u64__find(m, key, &found);
    }
    if (found) {
        if (old != NULL) {
            *old = m->slots[i].val;
        }
        m->slots[i].val = val;
        return HMAP_OK;
    }
    if ((m->count + 1) * 4 > m->cap * 3) {
        if (hmap_u64__grow(m) != HMAP_OK) {
            return HMAP_ENOMEM;
        }
        i = hmap_u64__find(m, key, &found);
    }
    m->slots[i] = (hmap_u64_slot){.key = key, .val = val};
    m->count++;
    return HMAP_OK;
}

void *hmap_u64_del(hmap_u64 *m, uint64_t key)
{
    if (m->count == 0) {
        return NULL;
    }
    int found;
    size_t i = hmap_u64__find(m, key, &found);
    if (!found) {
        return NULL;
    }
    void *val = m->slots[i].val;
    size_t mask = m->cap - 1, j = i;
    /* Backward shift, as in hmap_del. */
    for (;;) {
        j = (j + 1) & mask;
        if (m->slots[j].val == NULL) {
            break;
        }
        size_t home = hmap_u64__home(m, m->slots[j].key);
        if (!hmap__stays(i, j, home)) {
            m->slots[i] = m->slots[j];
            i = j;
        }
    }
    m->slots[i] = (hmap_u64_slot){0};
    m->count--;
    return val;
}

const hmap_u64_slot *hmap_u64_next(const hmap_u64 *m, size_t *it)
{
    while (*it < m->cap) {
        const hmap_u64_slot *s = &m->slots[(*it)++];
        if (s->val != NULL) {
            return s;
        }
    }
    return NULL;
}
