/* src/mesh/dht/dht_lookup.c — iterative lookups (Kademlia paper §2.3): FIND_NODE and
 * FIND_VALUE with alpha requests in flight, convergence on the k closest, bounded in requests
 * and time; a put's STORE phase to the k closest. */
#include "mesh/dht/dht_internal.h"

#include <stdlib.h>
#include <string.h>

dht__lookup *dht__lookup_find(dht *d, uint32_t handle)
{
    for (uint32_t i = 0; i < d->nlookups; i++) {
        if (d->lookups[i]->handle == handle) {
            return d->lookups[i];
        }
    }
    return NULL;
}

static bool dht__id_eq(const dht_id *a, const dht_id *b)
{
    return memcmp(a->b, b->b, DHT_ID_LEN) == 0;
}

static dht__cand *dht__cand_find(dht__lookup *l, const dht_id *id)
{
    for (uint32_t i = 0; i < l->ncands; i++) {
        if (dht__id_eq(&l->cands[i].c.id, id)) {
            return &l->cands[i];
        }
    }
    return NULL;
}

/* Adds a candidate in distance order; the farthest falls off a full list. */
static void dht__cand_add(dht *d, dht__lookup *l, const dht_contact *c, uint32_t depth)
{
    if (dht__id_eq(&c->id, &d->self.id) || c->addr[0] == 0) {
        return;
    }
    if (depth > 255) {
        depth = 255;
    }
    dht__cand *old = dht__cand_find(l, &c->id);
    if (old != NULL) {
        if (depth < old->depth) {
            old->depth = (uint8_t)depth;
        }
        return;
    }
    uint32_t pos = l->ncands;
    while (pos > 0 && dht_cmp_distance(&l->target, &c->id, &l->cands[pos - 1].c.id) < 0) {
        pos--;
    }
    if (pos >= l->cand_cap) {
        return;
    }
    uint32_t keep = l->ncands < l->cand_cap ? l->ncands : l->cand_cap - 1;
    memmove(&l->cands[pos + 1], &l->cands[pos], (keep - pos) * sizeof *l->cands);
    l->cands[pos].c = *c;
    l->cands[pos].state = DHT__C_NEW;
    l->cands[pos].depth = (uint8_t)depth;
    if (l->ncands < l->cand_cap) {
        l->ncands++;
    }
}

/* Adds a value to a get's result unless an equal one is there (bounded by the per-key
 * limit). */
static void dht__value_add(dht *d, dht__lookup *l, const uint8_t *p, uint32_t len)
{
    for (uint32_t i = 0; i < l->nvalues; i++) {
        if (l->values[i].len == len && (len == 0 || memcmp(l->values[i].p, p, len) == 0)) {
            return;
        }
    }
    if (l->nvalues >= d->cfg.max_values_per_key || len > d->cfg.max_value_bytes) {
        return;
    }
    uint8_t *copy = malloc(len > 0 ? len : 1);
    if (copy == NULL) {
        return;
    }
    if (len > 0) {
        memcpy(copy, p, len);
    }
    l->values[l->nvalues].p = copy;
    l->values[l->nvalues].len = len;
    l->nvalues++;
}

static void dht__lookup_free(dht__lookup *l)
{
    for (uint32_t i = 0; i < l->nvalues; i++) {
        free((void *)l->values[i].p);
    }
    free(l->values);
    free(l->cands);
    free(l);
}

void dht__lookup_free_all(dht *d)
{
    for (uint32_t i = 0; i < d->nlookups; i++) {
        dht__lookup_free(d->lookups[i]);
    }
    free(d->lookups);
    d->lookups = NULL;
    d->nlookups = 0;
    d->lookup_cap = 0;
}

static void dht__lookup_remove(dht *d, dht__lookup *l)
{
    for (uint32_t i = 0; i < d->nlookups; i++) {
        if (d->lookups[i] == l) {
            d->lookups[i] = d->lookups[--d->nlookups];
            break;
        }
    }
    dht__lookup_free(l);
}

/* Emits the lookup's event (API lookups only) and frees it. */
static void dht__lookup_complete(dht *d, dht__lookup *l)
{
    if (l->kind == DHT__L_REPUBLISH || l->kind == DHT__L_REFRESH) {
        dht__lookup_remove(d, l);
        return;
    }
    dht__qev *q = calloc(1, sizeof *q);
    if (q == NULL) {
        dht__lookup_remove(d, l);
        return;
    }
    dht_event *ev = &q->ev;
    ev->kind = l->kind == DHT__L_NODE  ? DHT_EV_LOOKUP
               : l->kind == DHT__L_GET ? DHT_EV_GET
                                       : DHT_EV_PUT;
    ev->handle = l->handle;
    ev->target = l->target;
    ev->queries = l->queries;
    ev->replies = l->replies;
    ev->stored = l->stored;
    ev->elapsed_ms = d->now - l->started;
    for (uint32_t i = 0; i < l->ncands && ev->ncontacts < d->cfg.k; i++) {
        if (l->cands[i].state == DHT__C_DONE) {
            ev->contacts[ev->ncontacts++] = l->cands[i].c;
        }
    }
    bool bootstrap = l->bootstrap;
    if (l->kind == DHT__L_NODE) {
        const dht__cand *t = dht__cand_find(l, &l->target);
        ev->found = (t != NULL && t->state == DHT__C_DONE) || dht__id_eq(&l->target, &d->self.id);
        ev->hops = t != NULL ? t->depth : l->max_depth;
        ev->status = l->replies > 0 || ev->found ? 0 : DHT_ETIMEDOUT;
    } else if (l->kind == DHT__L_GET) {
        ev->found = l->nvalues > 0;
        ev->hops = l->found ? l->found_hops : l->max_depth;
        ev->status = ev->found ? 0 : l->replies > 0 ? DHT_ENOTFOUND : DHT_ETIMEDOUT;
        size_t total = 0;
        for (uint32_t i = 0; i < l->nvalues; i++) {
            total += l->values[i].len;
        }
        q->blob = malloc(total > 0 ? total : 1);
        if (q->blob != NULL) {
            size_t off = 0;
            for (uint32_t i = 0; i < l->nvalues; i++) {
                if (l->values[i].len > 0) {
                    memcpy(q->blob + off, l->values[i].p, l->values[i].len);
                }
                ev->values[i].p = q->blob + off;
                ev->values[i].len = l->values[i].len;
                off += l->values[i].len;
            }
            ev->nvalues = l->nvalues;
        }
    } else {
        ev->found = l->stored > 0;
        ev->hops = l->max_depth;
        ev->status = l->stored > 0 ? 0 : DHT_ETIMEDOUT;
    }
    dht__lookup_remove(d, l);
    dht__emit(d, q);
    if (bootstrap) {
        dht__table_refresh(d, true);
    }
}

/* The lookup phase of a put is over: STORE to the k closest that answered (and keep the
 * value here if we are among the k closest). */
static void dht__lookup_store_phase(dht *d, dht__lookup *l)
{
    const dht__pub *pub = dht__pub_find(d, &l->target);
    l->storing = true;
    if (pub == NULL) { /* unput meanwhile */
        dht__lookup_complete(d, l);
        return;
    }
    uint32_t ndone = 0;
    const dht__cand *kth = NULL;
    for (uint32_t i = 0; i < l->ncands && ndone < d->cfg.k; i++) {
        if (l->cands[i].state == DHT__C_DONE) {
            ndone++;
            kth = &l->cands[i];
        }
    }
    if (ndone < d->cfg.k || dht_cmp_distance(&l->target, &d->self.id, &kth->c.id) < 0) {
        if (dht__store_put(d, &l->target, &d->self.id, pub->p, pub->len, pub->ttl_ms) == 0) {
            l->stored++;
        }
    }
    uint32_t sent = 0;
    for (uint32_t i = 0; i < l->ncands && sent < d->cfg.k; i++) {
        if (l->cands[i].state != DHT__C_DONE) {
            continue;
        }
        sent++;
        uint8_t *blob = malloc(pub->len > 0 ? pub->len : 1);
        if (blob == NULL) {
            continue;
        }
        if (pub->len > 0) {
            memcpy(blob, pub->p, pub->len);
        }
        dht_msg m;
        memset(&m, 0, sizeof m);
        m.type = WIRE_STORE;
        m.key = l->target;
        m.publisher = d->self.id;
        m.ttl_ms = pub->ttl_ms;
        m.value.p = blob;
        m.value.len = pub->len;
        if (dht__request(d, &l->cands[i].c, &m, blob, DHT__REQ_STORE, l->handle, l->cands[i].depth,
                         -1) == 0) {
            l->stores_sent++;
        }
    }
    /* the STOREs get a query timeout of their own, whatever is left of the lookup's time */
    l->deadline = d->now + d->cfg.query_timeout_ms + 1;
    if (l->stores_sent == 0) {
        dht__lookup_complete(d, l);
    }
}

static void dht__lookup_finish(dht *d, dht__lookup *l)
{
    if ((l->kind == DHT__L_PUT || l->kind == DHT__L_REPUBLISH) && !l->storing) {
        dht__lookup_store_phase(d, l);
        return;
    }
    dht__lookup_complete(d, l);
}

/* Sends requests while fewer than alpha are in flight to the k closest candidates not yet
 * asked; finishes the lookup when it has converged or can do nothing more. May free l. */
static void dht__lookup_advance(dht *d, dht__lookup *l)
{
    if (l->storing) {
        return;
    }
    bool open = false; /* a top-k candidate not answered yet */
    bool blocked = false;
    uint32_t count = 0;
    for (uint32_t i = 0; i < l->ncands && count < d->cfg.k; i++) {
        dht__cand *c = &l->cands[i];
        if (c->state == DHT__C_FAILED) {
            continue;
        }
        count++;
        if (c->state == DHT__C_DONE) {
            continue;
        }
        open = true;
        if (c->state == DHT__C_ASKED || l->inflight >= d->cfg.alpha) {
            continue;
        }
        if (l->queries >= d->cfg.max_lookup_queries) {
            blocked = true;
            continue;
        }
        dht_msg m;
        memset(&m, 0, sizeof m);
        m.type = l->kind == DHT__L_GET ? WIRE_FIND_VALUE : WIRE_FIND_NODE;
        m.key = l->target;
        if (dht__request(d, &c->c, &m, NULL, DHT__REQ_LOOKUP, l->handle, c->depth, -1) != 0) {
            blocked = true;
            continue;
        }
        c->state = DHT__C_ASKED;
        l->queries++;
        l->inflight++;
    }
    bool done = !open;
    if (l->kind == DHT__L_GET && l->value_replies >= d->cfg.get_quorum) {
        done = true;
    }
    if (!done && l->inflight == 0 && blocked) {
        done = true; /* out of request budget (or pending slots): what we have is the answer */
    }
    if (done) {
        dht__lookup_finish(d, l);
    }
}

int dht__lookup_start(dht *d, uint8_t kind, const dht_id *target, uint32_t *handle)
{
    if (d->nlookups >= d->cfg.max_lookups) {
        return DHT_EBUSY;
    }
    if (d->nlookups == d->lookup_cap) {
        uint32_t nc = d->lookup_cap == 0 ? 4 : d->lookup_cap * 2;
        dht__lookup **nl = realloc(d->lookups, nc * sizeof *nl);
        if (nl == NULL) {
            return DHT_ENOMEM;
        }
        d->lookups = nl;
        d->lookup_cap = nc;
    }
    dht__lookup *l = calloc(1, sizeof *l);
    if (l == NULL) {
        return DHT_ENOMEM;
    }
    l->cand_cap = 4 * d->cfg.k;
    l->cands = malloc(l->cand_cap * sizeof *l->cands);
    if (kind == DHT__L_GET) {
        l->values = calloc(d->cfg.max_values_per_key, sizeof *l->values);
    }
    if (l->cands == NULL || (kind == DHT__L_GET && l->values == NULL)) {
        dht__lookup_free(l);
        return DHT_ENOMEM;
    }
    if (++d->next_handle == 0) {
        d->next_handle = 1;
    }
    l->handle = d->next_handle;
    l->kind = kind;
    l->target = *target;
    l->started = d->now;
    l->deadline = d->now + d->cfg.lookup_timeout_ms;
    d->lookups[d->nlookups++] = l;
    *handle = l->handle;
    dht__table_touch(d, target);

    dht_contact seed[DHT_K_MAX];
    uint32_t n = dht_closest(d, target, seed, d->cfg.k);
    for (uint32_t i = 0; i < n; i++) {
        dht__cand_add(d, l, &seed[i], 1);
    }
    if (kind == DHT__L_GET) { /* what this node holds or publishes itself counts, at 0 hops */
        const dht__skey *sk = dht__store_find(d, target);
        for (uint32_t i = 0; sk != NULL && i < sk->n; i++) {
            dht__value_add(d, l, sk->v[i].p, sk->v[i].len);
        }
        const dht__pub *pub = dht__pub_find(d, target);
        if (pub != NULL) {
            dht__value_add(d, l, pub->p, pub->len);
        }
        if (l->nvalues > 0) {
            l->found = true;
            l->found_hops = 0;
        }
    }
    dht__lookup_advance(d, l);
    return 0;
}

void dht__lookup_reply(dht *d, const dht__pending *p, const dht_id *from, const dht_msg *m)
{
    dht__lookup *l = dht__lookup_find(d, p->handle);
    if (l == NULL) {
        return; /* the lookup is over: the answer still refreshed the table */
    }
    if (p->kind == DHT__REQ_STORE) {
        if (m->type == WIRE_STORE_ACK) {
            l->stores_done++;
            l->stored += m->stored ? 1 : 0;
            if (l->stores_done >= l->stores_sent) {
                dht__lookup_complete(d, l);
            }
        }
        return;
    }
    if (m->type != WIRE_FIND_NODE_REPLY && m->type != WIRE_FIND_VALUE_REPLY) {
        return;
    }
    if (l->inflight > 0) {
        l->inflight--;
    }
    l->replies++;
    if (p->depth > l->max_depth) {
        l->max_depth = p->depth;
    }
    dht__cand *c = dht__cand_find(l, from);
    if (c != NULL) {
        c->state = DHT__C_DONE;
    }
    if (m->type == WIRE_FIND_VALUE_REPLY && m->has_values) {
        l->value_replies++;
        for (uint32_t i = 0; i < m->nvalues; i++) {
            dht__value_add(d, l, m->values[i].p, m->values[i].len);
        }
        if (!l->found && m->nvalues > 0) {
            l->found = true;
            l->found_hops = p->depth;
        }
    } else {
        for (uint32_t i = 0; i < m->ncontacts; i++) {
            dht__cand_add(d, l, &m->contacts[i], (uint32_t)p->depth + 1);
        }
    }
    dht__lookup_advance(d, l);
}

void dht__lookup_timeout(dht *d, const dht__pending *p)
{
    dht__lookup *l = dht__lookup_find(d, p->handle);
    if (l == NULL) {
        return;
    }
    if (p->kind == DHT__REQ_STORE) {
        l->stores_done++;
        if (l->stores_done >= l->stores_sent) {
            dht__lookup_complete(d, l);
        }
        return;
    }
    if (l->inflight > 0) {
        l->inflight--;
    }
    dht__cand *c = dht__cand_find(l, &p->to);
    if (c != NULL) {
        c->state = DHT__C_FAILED;
    }
    dht__lookup_advance(d, l);
}

void dht__lookup_tick(dht *d)
{
    uint32_t i = 0;
    while (i < d->nlookups) {
        dht__lookup *l = d->lookups[i];
        if (l->deadline > d->now) {
            i++;
            continue;
        }
        /* over time: a lookup answers with what it has (a put still stores); a put whose
         * STOREs are over time completes */
        if (l->storing) {
            dht__lookup_complete(d, l);
        } else {
            dht__lookup_finish(d, l);
        }
        i = 0; /* the array changed */
    }
}

uint64_t dht__lookup_deadline(const dht *d)
{
    uint64_t best = UINT64_MAX;
    for (uint32_t i = 0; i < d->nlookups; i++) {
        if (d->lookups[i]->deadline < best) {
            best = d->lookups[i]->deadline;
        }
    }
    return best;
}
