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
    t->deadline = deadline;
    t->ref = ref;
    t->owner = owner;
    t->kind = kind;
    t->tag = tag;
    t->len = len;
    t->heap_idx = SUP_TIMER_NOT_IN_HEAP;
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
    memset(h, 0, sizeof *h);
}

void sup_timer_heap_free(sup_timer_heap *h)
{
    free(h->v);
    memset(h, 0, sizeof *h);
}

static int before(const sup_timer *a, const sup_timer *b)
{
    return a->deadline < b->deadline || (a->deadline == b->deadline && a->seq < b->seq);
}

static void place(sup_timer_heap *h, size_t i, sup_timer *t)
{
    h->v[i] = t;
    t->heap_idx = i;
}

static void sift_up(sup_timer_heap *h, size_t i)
{
    sup_timer *t = h->v[i];
    while (i > 0) {
        size_t p = (i - 1) / 2;
        if (!before(t, h->v[p])) {
            break;
        }
        place(h, i, h->v[p]);
        i = p;
    }
    place(h, i, t);
}

static void sift_down(sup_timer_heap *h, size_t i)
{
    sup_timer *t = h->v[i];
    for (;;) {
        size_t l = 2 * i + 1, r = l + 1, m = i;
        const sup_timer *best = t;
        if (l < h->n && before(h->v[l], best)) {
            m = l;
            best = h->v[l];
        }
        if (r < h->n && before(h->v[r], best)) {
            m = r;
        }
        if (m == i) {
            break;
        }
        place(h, i, h->v[m]);
        i = m;
    }
    place(h, i, t);
}

void sup_timer_heap_push(sup_timer_heap *h, sup_timer *t)
{
    if (h->n == h->cap) {
        h->cap = h->cap ? h->cap * 2 : 16;
        sup_timer **v = realloc(h->v, h->cap * sizeof *v);
        if (v == NULL) {
            fprintf(stderr, "macula: out of memory\n");
            abort();
        }
        h->v = v;
    }
    t->seq = ++h->seq;
    place(h, h->n++, t);
    sift_up(h, h->n - 1);
}

void sup_timer_heap_remove(sup_timer_heap *h, sup_timer *t)
{
    size_t i = t->heap_idx;
    if (i == SUP_TIMER_NOT_IN_HEAP || i >= h->n || h->v[i] != t) {
        return;
    }
    t->heap_idx = SUP_TIMER_NOT_IN_HEAP;
    h->n--;
    if (i == h->n) {
        return;
    }
    place(h, i, h->v[h->n]);
    sift_down(h, i);
    sift_up(h, h->v[i] == NULL ? i : h->v[i]->heap_idx);
}

sup_timer *sup_timer_heap_pop_due(sup_timer_heap *h, uint64_t now)
{
    if (h->n == 0 || h->v[0]->deadline > now) {
        return NULL;
    }
    sup_timer *t = h->v[0];
    sup_timer_heap_remove(h, t);
    return t;
}

uint64_t sup_timer_heap_min(const sup_timer_heap *h)
{
    return h->n ? h->v[0]->deadline : UINT64_MAX;
}
