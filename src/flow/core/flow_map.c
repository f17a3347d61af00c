/* flow/core/flow_map.c — string hash map (flow_map.h). */
#include "flow/core/flow_map.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static uint64_t flow_map__hash(const char *s)
{
    uint64_t h = 1469598103934665603ULL;
    for (; *s; s++) {
        h ^= (unsigned char)*s;
        h *= 1099511628211ULL;
    }
    return h;
}

void flow_map_init(flow_map *m)
{
    memset(m, 0, sizeof *m);
}

void flow_map_free(flow_map *m)
{
    for (size_t i = 0; i < m->nbuckets; i++) {
        flow_map_entry *e = m->buckets[i];
        while (e) {
            flow_map_entry *n = e->next;
            free(e);
            e = n;
        }
    }
    free(m->buckets);
    flow_map_init(m);
}

static flow_map_entry **flow_map__slot(const flow_map *m, const char *key)
{
    if (m->nbuckets == 0) {
        return NULL;
    }
    flow_map_entry **p = &m->buckets[flow_map__hash(key) & (m->nbuckets - 1)];
    while (*p && strcmp((*p)->key, key) != 0) {
        p = &(*p)->next;
    }
    return p;
}

void *flow_map_get(const flow_map *m, const char *key)
{
    flow_map_entry **p = flow_map__slot(m, key);
    return p && *p ? (*p)->value : NULL;
}

static int flow_map__grow(flow_map *m)
{
    size_t nb = m->nbuckets ? m->nbuckets * 2 : 16;
    flow_map_entry **b = calloc(nb, sizeof *b);
    if (b == NULL) {
        return -1;
    }
    for (size_t i = 0; i < m->nbuckets; i++) {
        flow_map_entry *e = m->buckets[i];
        while (e) {
            flow_map_entry *n = e->next;
            size_t j = flow_map__hash(e->key) & (nb - 1);
            e->next = b[j];
            b[j] = e;
            e = n;
        }
    }
    free(m->buckets);
    m->buckets = b;
    m->nbuckets = nb;
    return 0;
}

int flow_map_put(flow_map *m, const char *key, void *value)
{
    if ((m->count + 1) * 4 > m->nbuckets * 3 && flow_map__grow(m) != 0) {
        return -1;
    }
    flow_map_entry **p = flow_map__slot(m, key);
    if (*p) {
        (*p)->value = value;
        return 0;
    }
    size_t len = strlen(key);
    flow_map_entry *e = malloc(sizeof *e + len + 1);
    if (e == NULL) {
        return -1;
    }
    memcpy(e->key, key, len + 1);
    e->value = value;
    e->next = NULL;
    *p = e;
    m->count++;
    return 0;
}

void *flow_map_del(flow_map *m, const char *key)
{
    flow_map_entry **p = flow_map__slot(m, key);
    if (p == NULL || *p == NULL) {
        return NULL;
    }
    flow_map_entry *e = *p;
    void *v = e->value;
    *p = e->next;
    free(e);
    m->count--;
    return v;
}
