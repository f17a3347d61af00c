/* src/base/hmap.c — open-addressing hash map; the contract is in hmap.h. */
#include "base/hmap.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

static uint64_t hmap__seed;
static pthread_once_t hmap__seed_once = PTHREAD_ONCE_INIT;

static void hmap__seed_init(void)
{
    uint64_t s = 0;
    if (getrandom(&s, sizeof s, GRND_NONBLOCK) != (ssize_t)sizeof s) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        s = (uint64_t)ts.tv_nsec * 0x9e3779b97f4a7c15u ^ (uint64_t)ts.tv_sec;
    }
    hmap__seed = s | 1;
}

static uint64_t mix(uint64_t z)
{
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9u;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebu;
    return z ^ (z >> 31);
}

uint64_t hmap_hash(const void *key, size_t klen)
{
    pthread_once(&hmap__seed_once, hmap__seed_init);
    const unsigned char *p = key;
    uint64_t h = hmap__seed ^ ((uint64_t)klen * 0x9e3779b97f4a7c15u);
    while (klen >= 8) {
        uint64_t w;
        memcpy(&w, p, 8);
        h = mix(h ^ w);
        p += 8;
        klen -= 8;
    }
    uint64_t w = 0;
    memcpy(&w, p, klen);
    h = mix(h ^ w ^ ((uint64_t)klen << 56));
    return h ? h : 1;
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
        int between = (i <= j) ? (i < home && home <= j) : (i < home || home <= j);
        if (!between) {
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
