/*
 * src/mesh/gateway/gw_map.h — a small hash table of pointers for the gateway (connections by
 * id, clients by node id). Open addressing with linear probing and backward-shift deletion
 * (no tombstones), power-of-two capacity, load <= 1/2.
 *
 * The table stores (hash, value) pairs; it never looks inside the values. A lookup passes the
 * hash and an equality callback that compares a stored value with the caller's key, so keys
 * of any shape work and two keys with one hash are told apart. Callers hash untrusted keys
 * with a secret seed (gw_map_hash_bytes) so a peer cannot aim many keys at one slot.
 */
#ifndef MACULA_MESH_GATEWAY_GW_MAP_H
#define MACULA_MESH_GATEWAY_GW_MAP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct gw_map_slot {
    uint64_t hash;
    void *val; /* NULL: empty slot */
} gw_map_slot;

typedef struct gw_map {
    gw_map_slot *slots;
    size_t cap; /* 0 or a power of two */
    size_t len;
} gw_map;

/* True if the stored value `val` has the key `key`. */
typedef bool (*gw_map_eq)(const void *val, const void *key);

/* An empty map needs no allocation: gw_map m = {0}. */
void gw_map_free(gw_map *m);
/* Adds val (not NULL) under hash. Does not check for an existing equal key. Returns 0 or -1
 * when memory runs out (the map is unchanged). */
int gw_map_put(gw_map *m, uint64_t hash, void *val);
/* The value whose key equals `key`, or NULL. */
void *gw_map_get(const gw_map *m, uint64_t hash, gw_map_eq eq, const void *key);
/* Removes exactly this value (pointer identity). Returns true if it was there. */
bool gw_map_del(gw_map *m, uint64_t hash, const void *val);

/* A 64-bit keyed hash (SipHash-2-4 with a 128-bit key). */
uint64_t gw_map_hash_bytes(const uint8_t key[16], const void *data, size_t len);
/* Fills a 128-bit secret key from the OS (getrandom); falls back to clock bits. */
void gw_map_random_key(uint8_t key[16]);

#endif
