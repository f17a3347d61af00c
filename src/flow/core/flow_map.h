/*
 * flow/core/flow_map.h — a string-keyed hash map (chaining, FNV-1a), the registry index of the
 * flow state: lookups, inserts and removals are O(1) on average.
 *
 * Keys are copied; values are borrowed pointers. Iteration order is NOT part of the contract:
 * nothing that decides behaviour may depend on it (the flow state keeps ordered lists for
 * that), so determinism never rests on hash layout.
 */
#ifndef MACULA_FLOW_MAP_H
#define MACULA_FLOW_MAP_H

#include <stddef.h>

typedef struct flow_map_entry {
    struct flow_map_entry *next;
    void *value;
    char key[]; /* NUL-terminated copy */
} flow_map_entry;

typedef struct flow_map {
    flow_map_entry **buckets;
    size_t nbuckets; /* power of two, 0 until the first insert */
    size_t count;
} flow_map;

void flow_map_init(flow_map *m);
/* Frees the entries (not the values). */
void flow_map_free(flow_map *m);
/* Returns the value or NULL. */
void *flow_map_get(const flow_map *m, const char *key);
/* Inserts or replaces. Returns 0, or -1 on allocation failure. */
int flow_map_put(flow_map *m, const char *key, void *value);
/* Removes and returns the value, or NULL if absent. */
void *flow_map_del(flow_map *m, const char *key);

#endif
