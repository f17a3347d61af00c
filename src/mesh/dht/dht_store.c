/* src/mesh/dht/dht_store.c — values: those held for others (a set per key, one value per
 * publisher, each with its TTL) and those we publish (republished every republish_ms). */
#include "mesh/dht/dht_internal.h"

#include <stdlib.h>
#include <string.h>

/* ---- held for others -------------------------------------------------------------------- */

static uint32_t dht__slot(const dht *d, const dht_id *key)
{
    uint64_t h;
    memcpy(&h, key->b, sizeof h);
    h = (h ^ d->cfg.seed ^ 0x9e3779b97f4a7c15ull) * 0xbf58476d1ce4e5b9ull;
    return (uint32_t)(h >> 32) & (d->skey_slots - 1);
}

const dht__skey *dht__store_find(const dht *d, const dht_id *key)
{
    if (d->skey_slots == 0) {
        return NULL;
    }
    for (const dht__skey *k = d->skeys[dht__slot(d, key)]; k != NULL; k = k->next) {
        if (memcmp(k->key.b, key->b, DHT_ID_LEN) == 0) {
            return k;
        }
    }
    return NULL;
}

static int dht__store_rehash(dht *d, uint32_t slots)
{
    dht__skey **ns = calloc(slots, sizeof *ns);
    if (ns == NULL) {
        return DHT_ENOMEM;
    }
    dht__skey **old = d->skeys;
    uint32_t oslots = d->skey_slots;
    d->skeys = ns;
    d->skey_slots = slots;
    for (uint32_t i = 0; i < oslots; i++) {
        dht__skey *k = old[i];
        while (k != NULL) {
            dht__skey *next = k->next;
            uint32_t s = dht__slot(d, &k->key);
            k->next = ns[s];
            ns[s] = k;
            k = next;
        }
    }
    free(old);
    return 0;
}

int dht__store_put(dht *d, const dht_id *key, const dht_id *publisher, const uint8_t *p,
                   uint32_t len, uint64_t ttl_ms)
{
    if (len > d->cfg.max_value_bytes) {
        return DHT_ETOOBIG;
    }
    if (ttl_ms == 0) {
        ttl_ms = d->cfg.value_ttl_ms;
    }
    if (ttl_ms > d->cfg.max_ttl_ms) {
        ttl_ms = d->cfg.max_ttl_ms;
    }
    if (d->skey_slots == 0 || d->nkeys >= d->skey_slots * 2) {
        int rv = dht__store_rehash(d, d->skey_slots == 0 ? 64 : d->skey_slots * 2);
        if (rv != 0) {
            return rv;
        }
    }
    dht__skey *k = (dht__skey *)dht__store_find(d, key);
    if (k == NULL) {
        if (d->nkeys >= d->cfg.max_keys) {
            return DHT_EBUSY;
        }
        k = calloc(1, sizeof *k);
        if (k == NULL) {
            return DHT_ENOMEM;
        }
        k->key = *key;
        uint32_t s = dht__slot(d, key);
        k->next = d->skeys[s];
        d->skeys[s] = k;
        d->nkeys++;
    }
    uint32_t i = 0;
    while (i < k->n && memcmp(k->v[i].publisher.b, publisher->b, DHT_ID_LEN) != 0) {
        i++;
    }
    if (i == k->n) {
        if (k->n >= d->cfg.max_values_per_key) {
            return DHT_EBUSY;
        }
        if (k->n == k->cap) {
            uint32_t nc = k->cap == 0 ? 2 : k->cap * 2;
            if (nc > d->cfg.max_values_per_key) {
                nc = d->cfg.max_values_per_key;
            }
            dht__sval *nv = realloc(k->v, nc * sizeof *nv);
            if (nv == NULL) {
                return DHT_ENOMEM;
            }
            k->v = nv;
            k->cap = nc;
        }
        memset(&k->v[i], 0, sizeof k->v[i]);
        k->v[i].publisher = *publisher;
        k->n++;
        d->nvalues++;
    }
    dht__sval *v = &k->v[i];
    uint8_t *np = malloc(len > 0 ? len : 1);
    if (np == NULL) {
        return DHT_ENOMEM; /* the old bytes (or an empty value) stay */
    }
    if (len > 0) {
        memcpy(np, p, len);
    }
    free(v->p);
    v->p = np;
    v->len = len;
    v->expires = d->now + ttl_ms;
    if (v->expires < d->next_expiry) {
        d->next_expiry = v->expires;
    }
    return 0;
}

void dht__store_expire(dht *d)
{
    if (d->now < d->next_expiry) {
        return;
    }
    uint64_t next = UINT64_MAX;
    for (uint32_t s = 0; s < d->skey_slots; s++) {
        dht__skey **pk = &d->skeys[s];
        while (*pk != NULL) {
            dht__skey *k = *pk;
            uint32_t w = 0;
            for (uint32_t i = 0; i < k->n; i++) {
                if (k->v[i].expires <= d->now) {
                    free(k->v[i].p);
                    d->nvalues--;
                    d->st.expired++;
                    continue;
                }
                if (k->v[i].expires < next) {
                    next = k->v[i].expires;
                }
                k->v[w++] = k->v[i];
            }
            k->n = w;
            if (w == 0) {
                *pk = k->next;
                free(k->v);
                free(k);
                d->nkeys--;
            } else {
                pk = &k->next;
            }
        }
    }
    d->next_expiry = next;
}

void dht__store_free(dht *d)
{
    for (uint32_t s = 0; s < d->skey_slots; s++) {
        dht__skey *k = d->skeys[s];
        while (k != NULL) {
            dht__skey *next = k->next;
            for (uint32_t i = 0; i < k->n; i++) {
                free(k->v[i].p);
            }
            free(k->v);
            free(k);
            k = next;
        }
    }
    free(d->skeys);
    d->skeys = NULL;
    d->skey_slots = 0;
    d->nkeys = 0;
    d->nvalues = 0;
    for (uint32_t i = 0; i < d->npubs; i++) {
        free(d->pubs[i].p);
    }
    free(d->pubs);
    d->pubs = NULL;
    d->npubs = 0;
}

uint32_t dht_stored_values(const dht *d, const dht_id *key, dht_value *out, uint32_t max)
{
    const dht__skey *k = dht__store_find(d, key);
    uint32_t n = 0;
    for (uint32_t i = 0; k != NULL && i < k->n && n < max; i++) {
        out[n].p = k->v[i].p;
        out[n].len = k->v[i].len;
        n++;
    }
    return n;
}

/* ---- published by us -------------------------------------------------------------------- */

dht__pub *dht__pub_find(dht *d, const dht_id *key)
{
    for (uint32_t i = 0; i < d->npubs; i++) {
        if (memcmp(d->pubs[i].key.b, key->b, DHT_ID_LEN) == 0) {
            return &d->pubs[i];
        }
    }
    return NULL;
}

int dht_put(dht *d, const dht_id *key, const void *value, size_t len, uint64_t ttl_ms, uint64_t now,
            uint32_t *handle)
{
    if (d == NULL || key == NULL || handle == NULL || (value == NULL && len > 0)) {
        return DHT_EINVAL;
    }
    if (len > d->cfg.max_value_bytes) {
        return DHT_ETOOBIG;
    }
    if (now > d->now) {
        d->now = now;
    }
    if (ttl_ms == 0) {
        ttl_ms = d->cfg.value_ttl_ms;
    }
    uint8_t *copy = malloc(len > 0 ? len : 1);
    if (copy == NULL) {
        return DHT_ENOMEM;
    }
    if (len > 0) {
        memcpy(copy, value, len);
    }
    dht__pub *p = dht__pub_find(d, key);
    if (p == NULL) {
        if (d->npubs == d->pub_cap) {
            uint32_t nc = d->pub_cap == 0 ? 4 : d->pub_cap * 2;
            dht__pub *np = realloc(d->pubs, nc * sizeof *np);
            if (np == NULL) {
                free(copy);
                return DHT_ENOMEM;
            }
            d->pubs = np;
            d->pub_cap = nc;
        }
        p = &d->pubs[d->npubs++];
        memset(p, 0, sizeof *p);
        p->key = *key;
    }
    free(p->p);
    p->p = copy;
    p->len = (uint32_t)len;
    p->ttl_ms = ttl_ms;
    p->next_republish = d->now + d->cfg.republish_ms;
    return dht__lookup_start(d, DHT__L_PUT, key, handle);
}

int dht_unput(dht *d, const dht_id *key)
{
    dht__pub *p = d == NULL || key == NULL ? NULL : dht__pub_find(d, key);
    if (p == NULL) {
        return DHT_ENOTFOUND;
    }
    free(p->p);
    *p = d->pubs[--d->npubs];
    return 0;
}

void dht__pub_tick(dht *d)
{
    for (uint32_t i = 0; i < d->npubs; i++) {
        dht__pub *p = &d->pubs[i];
        if (p->next_republish > d->now) {
            continue;
        }
        p->next_republish = d->now + d->cfg.republish_ms;
        uint32_t h;
        if (dht__lookup_start(d, DHT__L_REPUBLISH, &p->key, &h) == 0) {
            d->st.republished++;
        }
    }
}

uint64_t dht__pub_deadline(const dht *d)
{
    uint64_t best = UINT64_MAX;
    for (uint32_t i = 0; i < d->npubs; i++) {
        if (d->pubs[i].next_republish < best) {
            best = d->pubs[i].next_republish;
        }
    }
    return best;
}
