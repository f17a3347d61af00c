/* src/mesh/gateway/gw_map.c — see gw_map.h. */
#include "gw_map.h"

#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

void gw_map_free(gw_map *m)
{
    free(m->slots);
    m->slots = NULL;
    m->cap = 0;
    m->len = 0;
}

static void gw_map__insert(gw_map_slot *slots, size_t cap, uint64_t hash, void *val)
{
    size_t i = (size_t)hash & (cap - 1);
    while (slots[i].val != NULL) {
        i = (i + 1) & (cap - 1);
    }
    slots[i].hash = hash;
    slots[i].val = val;
}

int gw_map_put(gw_map *m, uint64_t hash, void *val)
{
    if ((m->len + 1) * 2 > m->cap) {
        size_t ncap = m->cap ? m->cap * 2 : 16;
        gw_map_slot *ns = calloc(ncap, sizeof *ns);
        if (ns == NULL) {
            return -1;
        }
        for (size_t i = 0; i < m->cap; i++) {
            if (m->slots[i].val != NULL) {
                gw_map__insert(ns, ncap, m->slots[i].hash, m->slots[i].val);
            }
        }
        free(m->slots);
        m->slots = ns;
        m->cap = ncap;
    }
    gw_map__insert(m->slots, m->cap, hash, val);
    m->len++;
    return 0;
}

void *gw_map_get(const gw_map *m, uint64_t hash, gw_map_eq eq, const void *key)
{
    if (m->cap == 0) {
        return NULL;
    }
    for (size_t i = (size_t)hash & (m->cap - 1);; i = (i + 1) & (m->cap - 1)) {
        const gw_map_slot *s = &m->slots[i];
        if (s->val == NULL) {
            return NULL;
        }
        if (s->hash == hash && eq(s->val, key)) {
            return s->val;
        }
    }
}

bool gw_map_del(gw_map *m, uint64_t hash, const void *val)
{
    if (m->cap == 0) {
        return false;
    }
    size_t mask = m->cap - 1;
    size_t i = (size_t)hash & mask;
    for (;; i = (i + 1) & mask) {
        if (m->slots[i].val == NULL) {
            return false;
        }
        if (m->slots[i].val == val) {
            break;
        }
    }
    /* Backward shift: move later entries of the probe run into the hole when their home
     * slot is not cyclically inside (hole, their position]. */
    size_t hole = i;
    for (size_t j = (hole + 1) & mask; m->slots[j].val != NULL; j = (j + 1) & mask) {
        size_t home = (size_t)m->slots[j].hash & mask;
        bool between = hole <= j ? (hole < home && home <= j) : (hole < home || home <= j);
        if (!between) {
            m->slots[hole] = m->slots[j];
            hole = j;
        }
    }
    m->slots[hole].val = NULL;
    m->slots[hole].hash = 0;
    m->len--;
    return true;
}

static inline uint64_t gw_map__rotl(uint64_t x, int b)
{
    return (x << b) | (x >> (64 - b));
}

#define GW_SIPROUND                                                                                \
    do {                                                                                           \
        v0 += v1;                                                                                  \
        v1 = gw_map__rotl(v1, 13);                                                                 \
        v1 ^= v0;                                                                                  \
        v0 = gw_map__rotl(v0, 32);                                                                 \
        v2 += v3;                                                                                  \
        v3 = gw_map__rotl(v3, 16);                                                                 \
        v3 ^= v2;                                                                                  \
        v0 += v3;                                                                                  \
        v3 = gw_map__rotl(v3, 21);                                                                 \
        v3 ^= v0;                                                                                  \
        v2 += v1;                                                                                  \
        v1 = gw_map__rotl(v1, 17);                                                                 \
        v1 ^= v2;                                                                                  \
        v2 = gw_map__rotl(v2, 32);                                                                 \
    } while (0)

static uint64_t gw_map__le64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--) {
        v = (v << 8) | p[i];
    }
    return v;
}

uint64_t gw_map_hash_bytes(const uint8_t key[16], const void *data, size_t len)
{
    const uint8_t *in = data;
    uint64_t k0 = gw_map__le64(key), k1 = gw_map__le64(key + 8);
    uint64_t v0 = 0x736f6d6570736575ULL ^ k0, v1 = 0x646f72616e646f6dULL ^ k1;
    uint64_t v2 = 0x6c7967656e657261ULL ^ k0, v3 = 0x7465646279746573ULL ^ k1;
    size_t full = len - (len % 8);
    for (size_t off = 0; off < full; off += 8) {
        uint64_t mword = gw_map__le64(in + off);
        v3 ^= mword;
        GW_SIPROUND;
        GW_SIPROUND;
        v0 ^= mword;
    }
    uint64_t b = ((uint64_t)len) << 56;
    for (size_t i = 0; i < len % 8; i++) {
        b |= ((uint64_t)in[full + i]) << (8 * i);
    }
    v3 ^= b;
    GW_SIPROUND;
    GW_SIPROUND;
    v0 ^= b;
    v2 ^= 0xff;
    GW_SIPROUND;
    GW_SIPROUND;
    GW_SIPROUND;
    GW_SIPROUND;
    return v0 ^ v1 ^ v2 ^ v3;
}

void gw_map_random_key(uint8_t key[16])
{
    if (getrandom(key, 16, 0) == 16) {
        return;
    }
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    uint64_t a = (uint64_t)ts.tv_nsec * 0x9e3779b97f4a7c15ULL ^ (uint64_t)ts.tv_sec;
    uint64_t b = (uint64_t)(uintptr_t)key * 0xbf58476d1ce4e5b9ULL ^ a;
    memcpy(key, &a, 8);
    memcpy(key + 8, &b, 8);
}
