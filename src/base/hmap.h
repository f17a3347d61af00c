/*
 * src/base/hmap.h — a hash map from byte-string keys to pointers, for every layer.
 *
 * Open addressing with linear probing and backward-shift deletion (no tombstones, so a map
 * under constant insert/delete churn never degrades). The load factor stays at or below 3/4:
 * lookups, inserts and deletes are O(1) on average.
 *
 * Keys are NOT copied: the map stores the key pointer and length the caller passed to
 * hmap_put, so the key bytes must stay valid and unchanged while the entry exists (the usual
 * pattern: the key lives inside the value's struct). Keys may be any length, including 0.
 *
 * The hash is SipHash-1-3 (the variant Rust's standard HashMap uses) keyed per process from
 * the kernel's random source, so an outsider choosing keys (node ids, call ids, topic names)
 * cannot aim them at one slot: without the 128-bit key the slot of a key is unpredictable.
 *
 * hmap_u64 (below) is a second map type for 64-bit integer keys the program assigns itself.
 *
 * Not thread-safe; one owner.
 */
#ifndef MACULA_BASE_HMAP_H
#define MACULA_BASE_HMAP_H

#include <stddef.h>
#include <stdint.h>

typedef struct hmap_slot {
    uint64_t hash;   /* 0 marks an empty slot (real hashes are forced non-zero) */
    const void *key; /* the caller's key bytes */
    size_t klen;     /* their length */
    void *val;       /* the value */
} hmap_slot;

typedef struct hmap {
    hmap_slot *slots; /* cap slots, NULL while the map has never held anything */
    size_t cap;       /* a power of two, or 0 */
    size_t count;     /* live entries */
} hmap;

enum {
    HMAP_OK = 0,
    HMAP_ENOMEM = -1, /* growing the table failed; the map is unchanged */
    HMAP_EINVAL = -2, /* hmap_u64_put with a NULL value */
};

/* "ok", "out of memory", "invalid argument", or "unknown error". */
const char *hmap_strerror(int err);

/* A zeroed hmap is an empty map; hmap_init just zeroes. */
void hmap_init(hmap *m);
/* Frees the table (not keys or values). The map is empty and reusable afterwards. */
void hmap_free(hmap *m);

/* The value stored under key, or NULL. */
void *hmap_get(const hmap *m, const void *key, size_t klen);

/* Stores val under key. When the key is present its value (and stored key pointer) are
 * replaced and the old value is returned through *old (when old is not NULL); otherwise *old
 * is set to NULL. HMAP_ENOMEM when the table could not grow. */
int hmap_put(hmap *m, const void *key, size_t klen, void *val, void **old);

/* Removes key; returns its value, or NULL when absent. */
void *hmap_del(hmap *m, const void *key, size_t klen);

/* Iteration: start with *it = 0; each call returns the next entry's slot or NULL at the end.
 * The map must not be modified during an iteration (collect keys first, then delete). */
const hmap_slot *hmap_next(const hmap *m, size_t *it);

/* The seeded 64-bit hash the map uses (never 0). */
uint64_t hmap_hash(const void *key, size_t klen);

/* SipHash-1-3 of key under the 128-bit key (k0, k1), as the reference defines it (k0 is the
 * key's first 8 bytes read little-endian): for tables that keep their own key (the QUIC
 * endpoint's connection IDs), and for tests against known vectors. */
uint64_t hmap_siphash13(uint64_t k0, uint64_t k1, const void *key, size_t klen);

/*
 * hmap_u64 — a map from uint64_t keys to non-NULL pointers, for keys the program assigns
 * itself: connection ids from a counter, timer refs, sequence numbers, slot indices.
 *
 * Same behaviour as hmap (open addressing, linear probing, backward-shift deletion, load at
 * most 3/4, the same iteration rule), but the key is stored inline in a 16-byte slot (no key
 * pointer to keep alive, no key comparison through memory) and the hash is a fast seeded
 * mixer (the splitmix64/murmur3 finalizer of key ^ a per-process random seed) instead of
 * SipHash. Every key value is allowed, 0 and UINT64_MAX included. Values must not be NULL
 * (an empty slot is one whose value is NULL); hmap_u64_put refuses NULL with HMAP_EINVAL.
 *
 * When to use it: the key is a number this process chose, so nobody outside can pick many
 * keys that share a slot. The mixer is a bijection, not a keyed PRF: a party that can choose
 * keys freely and observe timing could learn enough to build colliding sets. So do NOT use it
 * for anything an outsider chooses or influences (ids read off the wire, node ids, message
 * ids, topic names, hashes of outside data): use hmap, whose SipHash keeps them apart.
 *
 * A zeroed hmap_u64 is an empty map; hmap_u64_init just zeroes. Not thread-safe; one owner.
 */
typedef struct hmap_u64_slot {
    uint64_t key;
    void *val; /* NULL marks an empty slot */
} hmap_u64_slot;

typedef struct hmap_u64 {
    hmap_u64_slot *slots; /* cap slots, NULL while the map has never held anything */
    size_t cap;           /* a power of two, or 0 */
    size_t count;         /* live entries */
    uint64_t seed;        /* the hash seed, taken when the table is first allocated */
} hmap_u64;

void hmap_u64_init(hmap_u64 *m);
/* Frees the table (not the values). The map is empty and reusable afterwards. */
void hmap_u64_free(hmap_u64 *m);

/* The value stored under key, or NULL. */
void *hmap_u64_get(const hmap_u64 *m, uint64_t key);

/* Stores val (not NULL) under key. When the key is present its value is replaced and the old
 * one returned through *old (when old is not NULL); otherwise *old is set to NULL.
 * HMAP_EINVAL when val is NULL, HMAP_ENOMEM when the table could not grow (the map is then
 * unchanged). */
int hmap_u64_put(hmap_u64 *m, uint64_t key, void *val, void **old);

/* Removes key; returns its value, or NULL when absent. */
void *hmap_u64_del(hmap_u64 *m, uint64_t key);

/* Iteration: start with *it = 0; each call returns the next entry's slot or NULL at the end.
 * The map must not be modified during an iteration (collect keys first, then delete). */
const hmap_u64_slot *hmap_u64_next(const hmap_u64 *m, size_t *it);

/* The mixer hmap_u64 uses for a given seed: a bijection of key ^ seed. */
static inline uint64_t hmap_u64_mix(uint64_t key, uint64_t seed)
{
    uint64_t z = key ^ seed;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9u;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebu;
    return z ^ (z >> 31);
}

#endif
