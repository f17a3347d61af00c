/*
 * src/base/dheap.h — an intrusive binary min-heap of deadlines, for every layer's timers.
 *
 * Ordered by (deadline, insertion sequence): entries with the same deadline come out in the
 * order they were pushed. The node lives inside the caller's struct (recover it with
 * container_of-style arithmetic); the heap stores pointers only, so push, remove and pop are
 * O(log n) and removing an entry that is not in the heap is a harmless no-op.
 */
#ifndef MACULA_BASE_DHEAP_H
#define MACULA_BASE_DHEAP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define DHEAP_NOT_IN ((size_t)-1)

typedef struct dheap_node {
    uint64_t deadline; /* when it is due (the caller's time unit) */
    uint64_t seq;      /* insertion order, breaks ties */
    size_t idx;        /* position in the heap, DHEAP_NOT_IN when not in one */
} dheap_node;

typedef struct dheap {
    dheap_node **v; /* the heap array */
    size_t n;       /* entries */
    size_t cap;     /* allocated entries */
    uint64_t seq;   /* last sequence number handed out */
} dheap;

enum {
    DHEAP_OK = 0,
    DHEAP_ENOMEM = -1, /* the array could not grow; nothing changed */
};

/* A zeroed heap is empty. */
void dheap_init(dheap *h);
/* Frees the array (not the nodes, which belong to their owners). */
void dheap_free(dheap *h);

/* Marks a node as in no heap; call before its first push. */
void dheap_node_init(dheap_node *n);
static inline bool dheap_node_queued(const dheap_node *n)
{
    return n->idx != DHEAP_NOT_IN;
}

/* Queues n (which must not be queued) at `deadline`. */
int dheap_push(dheap *h, dheap_node *n, uint64_t deadline);
/* Dequeues n; a no-op when it is not queued in h. */
void dheap_remove(dheap *h, dheap_node *n);
/* Dequeues and returns the earliest node when its deadline <= now, else NULL. */
dheap_node *dheap_pop_due(dheap *h, uint64_t now);
/* The earliest node, or NULL. */
dheap_node *dheap_peek(const dheap *h);
/* The earliest deadline, or UINT64_MAX when empty. */
uint64_t dheap_min(const dheap *h);

#endif
