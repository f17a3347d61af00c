/*
 * src/sup/timer.h — timers of the runtime: a binary min-heap ordered by (deadline, sequence),
 * so timers with the same deadline fire in the order they were set. Each timer also sits in
 * its owner's list, so an actor's timers are released with it.
 */
#ifndef MACULA_SUP_TIMER_H
#define MACULA_SUP_TIMER_H

#include <stddef.h>
#include <stdint.h>

#include "base/dheap.h"
#include "macula/sup.h"

typedef enum sup_timer_kind {
    SUP_TIMER_USER = 0, /* sup_send_after: delivers SUP_MSG_TIMER */
    SUP_TIMER_CALL,     /* a call's timeout: delivers a SUP_ETIMEDOUT reply */
} sup_timer_kind;

typedef struct sup_timer {
    dheap_node hn; /* first member: the heap node (deadline, sequence, position) */
    uint64_t ref;
    sup_pid owner;
    sup_timer_kind kind;
    int tag;
    struct sup_timer *onext, *oprev; /* owner's list */
    size_t len;
    unsigned char data[]; /* payload copy */
} sup_timer;

typedef struct sup_timer_heap {
    dheap h;
} sup_timer_heap;

sup_timer *sup_timer_new(uint64_t deadline, uint64_t ref, sup_pid owner, sup_timer_kind kind,
                         int tag, const void *data, size_t len);
void sup_timer_free(sup_timer *t);
size_t sup_timer_size(const sup_timer *t);

void sup_timer_heap_init(sup_timer_heap *h);
void sup_timer_heap_free(sup_timer_heap *h); /* frees the array, not the timers */
void sup_timer_heap_push(sup_timer_heap *h, sup_timer *t);
void sup_timer_heap_remove(sup_timer_heap *h, sup_timer *t); /* no-op when not queued */
static inline bool sup_timer_queued(const sup_timer *t)
{
    return dheap_node_queued(&t->hn);
}
/* Pops the earliest timer if its deadline <= now, else NULL. */
sup_timer *sup_timer_heap_pop_due(sup_timer_heap *h, uint64_t now);
uint64_t sup_timer_heap_min(const sup_timer_heap *h); /* UINT64_MAX if empty */

#endif
