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
 * The hash is SipHash-2-4 keyed per process from the kernel's random source, so an outsider
 * choosing keys (node ids, call ids, topic names) cannot aim them at one slot.
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
};

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

#endif
