/* src/base/dheap.c — the deadline heap (see dheap.h). */
#include "base/dheap.h"

#include <stdlib.h>
#include <string.h>

void dheap_init(dheap *h)
{
    memset(h, 0, sizeof *h);
}

void dheap_free(dheap *h)
{
    free(h->v);
    dheap_init(h);
}

void dheap_node_init(dheap_node *n)
{
    n->idx = DHEAP_NOT_IN;
}

static bool before(const dheap_node *a, const dheap_node *b)
{
    return a->deadline < b->deadline || (a->deadline == b->deadline && a->seq < b->seq);
}

static void place(dheap *h, size_t i, dheap_node *n)
{
    h->v[i] = n;
    n->idx = i;
}

static void sift_up(dheap *h, size_t i)
{
    dheap_node *n = h->v[i];
    while (i > 0) {
        size_t p = (i - 1) / 2;
        if (!before(n, h->v[p])) {
            break;
        }
        place(h, i, h->v[p]);
        i = p;
    }
    place(h, i, n);
}

static void sift_down(dheap *h, size_t i)
{
    dheap_node *n = h->v[i];
    for (;;) {
        size_t l = 2 * i + 1, r = l + 1, m = i;
        const dheap_node *best = n;
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
    place(h, i, n);
}

int dheap_push(dheap *h, dheap_node *n, uint64_t deadline)
{
    if (h->n == h->cap) {
        size_t cap = h->cap ? h->cap * 2 : 16;
        dheap_node **v = realloc(h->v, cap * sizeof *v);
        if (v == NULL) {
            return DHEAP_ENOMEM;
        }
        h->v = v;
        h->cap = cap;
    }
    n->deadline = deadline;
    n->seq = ++h->seq;
    place(h, h->n++, n);
    sift_up(h, h->n - 1);
    return DHEAP_OK;
}

void dheap_remove(dheap *h, dheap_node *n)
{
    size_t i = n->idx;
    if (i == DHEAP_NOT_IN || i >= h->n || h->v[i] != n) {
        return;
    }
    n->idx = DHEAP_NOT_IN;
    h->n--;
    if (i == h->n) {
        return;
    }
    dheap_node *last = h->v[h->n];
    place(h, i, last);
    sift_down(h, i);
    sift_up(h, last->idx);
}

dheap_node *dheap_pop_due(dheap *h, uint64_t now)
{
    if (h->n == 0 || h->v[0]->deadline > now) {
        return NULL;
    }
    dheap_node *n = h->v[0];
    dheap_remove(h, n);
    return n;
}

dheap_node *dheap_peek(const dheap *h)
{
    return h->n ? h->v[0] : NULL;
}

uint64_t dheap_min(const dheap *h)
{
    return h->n ? h->v[0]->deadline : UINT64_MAX;
}
