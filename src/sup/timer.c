/* src/sup/timer.c — the timer heap (see timer.h). */
#include "timer.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

sup_timer *sup_timer_new(uint64_t deadline, uint64_t ref, sup_pid owner, sup_timer_kind kind,
                         int tag, const void *data, size_t len)
{
    sup_timer *t = calloc(1, sizeof *t + len);
    if (t == NULL) {
        fprintf(stderr, "macula: out of memory\n");
        abort();
    }
    t->hn.deadline = deadline;
    t->ref = ref;
    t->owner = owner;
    t->kind = kind;
    t->tag = tag;
    t->len = len;
    dheap_node_init(&t->hn);
    if (len) {
        memcpy(t->data, data, len);
    }
    return t;
}

void sup_timer_free(sup_timer *t)
{
    free(t);
}

size_t sup_timer_size(const sup_timer *t)
{
    return sizeof *t + t->len;
}

void sup_timer_heap_init(sup_timer_heap *h)
{
    dheap_init(&h->h);
}

void sup_timer_heap_free(sup_timer_heap *h)
{
    dheap_free(&h->h);
}

void sup_timer_heap_push(sup_timer_heap *h, sup_timer *t)
{
    if (dheap_push(&h->h, &t->hn, t->hn.deadline) != DHEAP_OK) {
        fprintf(stderr, "macula: out of memory\n");
        abort();
    }
}

void sup_timer_heap_remove(sup_timer_heap *h, sup_timer *t)
{
    dheap_remove(&h->h, &t->hn);
}

sup_timer *sup_timer_heap_pop_due(sup_timer_heap *h, uint64_t now)
{
    dheap_node *n = dheap_pop_due(&h->h, now);
    return n ? (sup_timer *)(void *)n : NULL; /* hn is the first member */
}

uint64_t sup_timer_heap_min(const sup_timer_heap *h)
{
    return dheap_min(&h->h);
}
