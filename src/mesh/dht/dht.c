/* src/mesh/dht/dht.c — the core: creation, inputs (messages, time, API), outputs, events,
 * deadlines (see dht.h). */
#include "mesh/dht/dht_internal.h"

#include <stdlib.h>
#include <string.h>

/* ---- queues ----------------------------------------------------------------------------- */

static int dht__q_push(dht__queue *q, void *item)
{
    if (q->len == q->cap) {
        uint32_t nc = q->cap == 0 ? 8 : q->cap * 2;
        void **ni = malloc(nc * sizeof *ni);
        if (ni == NULL) {
            return DHT_ENOMEM;
        }
        for (uint32_t i = 0; i < q->len; i++) {
            ni[i] = q->items[(q->head + i) % q->cap];
        }
        free(q->items);
        q->items = ni;
        q->cap = nc;
        q->head = 0;
    }
    q->items[(q->head + q->len) % q->cap] = item;
    q->len++;
    return 0;
}

static void *dht__q_pop(dht__queue *q)
{
    if (q->len == 0) {
        return NULL;
    }
    void *item = q->items[q->head];
    q->head = (q->head + 1) % q->cap;
    q->len--;
    if (q->len == 0 && q->cap > 64) { /* a burst is over: give the memory back */
        free(q->items);
        q->items = NULL;
        q->cap = 0;
        q->head = 0;
    }
    return item;
}

static void dht__qout_free(dht__qout *q)
{
    if (q != NULL) {
        free(q->blob);
        free(q);
    }
}

static void dht__qev_free(dht__qev *q)
{
    if (q != NULL) {
        free(q->blob);
        free(q);
    }
}

/* ---- internal helpers ------------------------------------------------------------------- */

uint64_t dht__rand(dht *d)
{
    uint64_t z = (d->rng += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

int dht__send(dht *d, const dht_contact *to, dht_msg *m, uint8_t *blob)
{
    dht__qout *q = malloc(sizeof *q);
    if (q == NULL) {
        free(blob);
        return DHT_ENOMEM;
    }
    q->out.to = *to;
    q->out.msg = *m;
    q->blob = blob;
    if (dht__q_push(&d->outq, q) != 0) {
        dht__qout_free(q);
        return DHT_ENOMEM;
    }
    d->st.sent++;
    return 0;
}

int dht__request(dht *d, const dht_contact *to, dht_msg *m, uint8_t *blob, uint8_t kind,
                 uint32_t handle, uint8_t depth, int16_t bucket)
{
    if (d->npending >= d->cfg.max_pending) {
        free(blob);
        return DHT_EBUSY;
    }
    if (d->npending % 16 == 0) { /* grow in steps of 16 */
        dht__pending *np = realloc(d->pending, (d->npending + 16) * sizeof *np);
        if (np == NULL) {
            free(blob);
            return DHT_ENOMEM;
        }
        d->pending = np;
    }
    m->request_id = ++d->next_req;
    int rv = dht__send(d, to, m, blob);
    if (rv != 0) {
        return rv;
    }
    dht__pending *p = &d->pending[d->npending++];
    memset(p, 0, sizeof *p);
    p->req_id = m->request_id;
    p->to = to->id;
    p->deadline = d->now + d->cfg.query_timeout_ms;
    p->handle = handle;
    p->kind = kind;
    p->depth = depth;
    p->bucket = bucket;
    return 0;
}

int dht__emit(dht *d, dht__qev *q)
{
    if (dht__q_push(&d->evq, q) != 0) {
        dht__qev_free(q);
        return DHT_ENOMEM;
    }
    return 0;
}

static void dht__advance_clock(dht *d, uint64_t now)
{
    if (now > d->now) {
        d->now = now;
    }
}

static bool dht__addr_ok(const char *addr)
{
    return addr == NULL || strnlen(addr, DHT_ADDR_MAX + 1) <= DHT_ADDR_MAX;
}

/* ---- lifecycle -------------------------------------------------------------------------- */

int dht_create(const dht_config *cfg, const dht_id *self, const char *self_addr, uint64_t now,
               dht **out)
{
    dht_config c;
    if (out == NULL || self == NULL || !dht__addr_ok(self_addr)) {
        return DHT_EINVAL;
    }
    *out = NULL;
    if (cfg == NULL) {
        dht_config_default(&c);
    } else {
        c = *cfg;
    }
    if (c.k < 1 || c.k > DHT_K_MAX || c.alpha < 1 || c.max_values_per_key < 1 ||
        c.max_values_per_key > DHT_VALUES_MAX || c.max_value_bytes < 1 ||
        c.max_value_bytes > DHT_VALUE_MAX || c.query_timeout_ms == 0 || c.lookup_timeout_ms == 0 ||
        c.republish_ms == 0 || c.refresh_ms == 0 || c.value_ttl_ms == 0 || c.max_ttl_ms == 0 ||
        c.max_lookup_queries == 0 || c.max_fails == 0 || c.get_quorum == 0 || c.max_lookups == 0 ||
        c.max_pending == 0 || c.max_keys == 0 || c.replacements > 255) {
        return DHT_EINVAL;
    }
    dht *d = calloc(1, sizeof *d);
    if (d == NULL) {
        return DHT_ENOMEM;
    }
    d->cfg = c;
    d->self.id = *self;
    if (self_addr != NULL) {
        memcpy(d->self.addr, self_addr, strlen(self_addr) + 1);
    }
    d->now = now;
    uint64_t mix;
    memcpy(&mix, self->b, sizeof mix);
    d->rng = c.seed ^ mix;
    d->next_expiry = UINT64_MAX;
    for (int b = 0; b < DHT__BUCKETS; b++) {
        d->buckets[b].last_touched = now;
    }
    *out = d;
    return 0;
}

void dht_destroy(dht *d)
{
    if (d == NULL) {
        return;
    }
    dht__table_free(d);
    dht__lookup_free_all(d);
    dht__store_free(d);
    free(d->pending);
    void *q;
    while ((q = dht__q_pop(&d->outq)) != NULL) {
        dht__qout_free(q);
    }
    while ((q = dht__q_pop(&d->evq)) != NULL) {
        dht__qev_free(q);
    }
    free(d->outq.items);
    free(d->evq.items);
    dht__qout_free(d->cur_out);
    dht__qev_free(d->cur_ev);
    free(d);
}

const dht_id *dht_self(const dht *d)
{
    return &d->self.id;
}

/* ---- receiving -------------------------------------------------------------------------- */

static bool dht__is_zero(const dht_id *id)
{
    for (int i = 0; i < DHT_ID_LEN; i++) {
        if (id->b[i] != 0) {
            return false;
        }
    }
    return true;
}

/* Answers with the k contacts closest to m->key (FIND_NODE_REPLY, or FIND_VALUE_REPLY with
 * result "nodes"). */
static void dht__answer_contacts(dht *d, const dht_contact *to, const dht_msg *m, uint8_t type)
{
    dht_contact best[DHT_K_MAX + 1];
    uint32_t n = dht_closest(d, &m->key, best, d->cfg.k + 1);
    dht_msg r;
    memset(&r, 0, sizeof r);
    r.type = type;
    r.request_id = m->request_id;
    r.key = m->key;
    for (uint32_t i = 0; i < n && r.ncontacts < d->cfg.k; i++) {
        if (memcmp(best[i].id.b, to->id.b, DHT_ID_LEN) != 0) { /* it knows itself */
            r.contacts[r.ncontacts++] = best[i];
        }
    }
    (void)dht__send(d, to, &r, NULL);
}

static void dht__answer_find_value(dht *d, const dht_contact *to, const dht_msg *m)
{
    const dht__skey *sk = dht__store_find(d, &m->key);
    const dht__pub *pub = dht__pub_find(d, &m->key);
    uint32_t n = (sk != NULL ? sk->n : 0) + (pub != NULL ? 1 : 0);
    if (n == 0) {
        dht__answer_contacts(d, to, m, WIRE_FIND_VALUE_REPLY);
        return;
    }
    size_t total = pub != NULL ? pub->len : 0;
    for (uint32_t i = 0; sk != NULL && i < sk->n; i++) {
        total += sk->v[i].len;
    }
    uint8_t *blob = malloc(total > 0 ? total : 1);
    if (blob == NULL) {
        return;
    }
    dht_msg r;
    memset(&r, 0, sizeof r);
    r.type = WIRE_FIND_VALUE_REPLY;
    r.request_id = m->request_id;
    r.key = m->key;
    r.has_values = true;
    size_t off = 0;
    for (uint32_t i = 0; i < n && r.nvalues < d->cfg.max_values_per_key; i++) {
        const uint8_t *p;
        uint32_t len;
        if (sk != NULL && i < sk->n) {
            p = sk->v[i].p;
            len = sk->v[i].len;
        } else {
            p = pub->p;
            len = pub->len;
            bool dup = false; /* our own value may also be held here */
            for (uint32_t j = 0; j < r.nvalues; j++) {
                dup = dup || (r.values[j].len == len && memcmp(r.values[j].p, p, len) == 0);
            }
            if (dup) {
                continue;
            }
        }
        if (len > 0) {
            memcpy(blob + off, p, len);
        }
        r.values[r.nvalues].p = blob + off;
        r.values[r.nvalues].len = len;
        r.nvalues++;
        off += len;
    }
    (void)dht__send(d, to, &r, blob);
}

static void dht__answer_store(dht *d, const dht_contact *to, const dht_msg *m)
{
    const dht_id *publisher = dht__is_zero(&m->publisher) ? &to->id : &m->publisher;
    int rv = dht__store_put(d, &m->key, publisher, m->value.p, m->value.len, m->ttl_ms);
    if (rv != 0) {
        d->st.refused++;
    }
    dht_msg r;
    memset(&r, 0, sizeof r);
    r.type = WIRE_STORE_ACK;
    r.request_id = m->request_id;
    r.key = m->key;
    r.stored = rv == 0;
    (void)dht__send(d, to, &r, NULL);
}

static int dht__pending_take(dht *d, uint64_t req_id, const dht_id *from, dht__pending *out)
{
    for (uint32_t i = 0; i < d->npending; i++) {
        if (d->pending[i].req_id == req_id &&
            memcmp(d->pending[i].to.b, from->b, DHT_ID_LEN) == 0) {
            *out = d->pending[i];
            d->pending[i] = d->pending[--d->npending];
            return 0;
        }
    }
    return DHT_ENOTFOUND;
}

static void dht__emit_ping(dht *d, uint32_t handle, const dht_id *id, int status)
{
    dht__qev *q = calloc(1, sizeof *q);
    if (q == NULL) {
        return;
    }
    q->ev.kind = DHT_EV_PING;
    q->ev.handle = handle;
    q->ev.target = *id;
    q->ev.status = status;
    q->ev.found = status == 0;
    q->ev.queries = 1;
    q->ev.replies = status == 0 ? 1 : 0;
    (void)dht__emit(d, q);
}

int dht_receive(dht *d, const dht_id *from, const char *from_addr, const dht_msg *m, uint64_t now)
{
    if (d == NULL || from == NULL || m == NULL || !dht__addr_ok(from_addr)) {
        return DHT_EINVAL;
    }
    if (memcmp(from->b, d->self.id.b, DHT_ID_LEN) == 0) {
        return DHT_ESELF;
    }
    if (m->ncontacts > DHT_K_MAX || m->nvalues > DHT_VALUES_MAX ||
        (m->type < WIRE_FIND_NODE || m->type > WIRE_STORE_ACK)) {
        return DHT_EPROTO;
    }
    dht__advance_clock(d, now);
    dht__table_seen(d, from, from_addr);
    d->st.received++;

    dht_contact to;
    memset(&to, 0, sizeof to);
    to.id = *from;
    if (from_addr != NULL && from_addr[0] != 0) {
        memcpy(to.addr, from_addr, strlen(from_addr) + 1);
    } else {
        int b = dht_bucket_index(&d->self.id, from);
        for (uint32_t i = 0; i < d->buckets[b].n; i++) {
            if (memcmp(d->buckets[b].e[i].c.id.b, from->b, DHT_ID_LEN) == 0) {
                to = d->buckets[b].e[i].c;
            }
        }
    }

    dht__pending p;
    switch (m->type) {
    case WIRE_FIND_NODE: dht__answer_contacts(d, &to, m, WIRE_FIND_NODE_REPLY); return 0;
    case WIRE_FIND_VALUE: dht__answer_find_value(d, &to, m); return 0;
    case WIRE_STORE: dht__answer_store(d, &to, m); return 0;
    case WIRE_FIND_NODE_REPLY:
    case WIRE_FIND_VALUE_REPLY:
    case WIRE_STORE_ACK:
        if (dht__pending_take(d, m->request_id, from, &p) != 0) {
            return 0; /* late or unsolicited: the sender was still marked seen */
        }
        switch (p.kind) {
        case DHT__REQ_PROBE:
            if (p.bucket >= 0 && d->buckets[p.bucket].probe_req == p.req_id) {
                d->buckets[p.bucket].probe_req = 0; /* it lives: seen above moved it */
            }
            break;
        case DHT__REQ_PING: dht__emit_ping(d, p.handle, from, 0); break;
        default: dht__lookup_reply(d, &p, from, m); break;
        }
        return 0;
    default: return DHT_EPROTO; /* not reached: checked above */
    }
}

/* ---- time ------------------------------------------------------------------------------- */

void dht_tick(dht *d, uint64_t now)
{
    dht__advance_clock(d, now);
    uint32_t i = 0;
    while (i < d->npending) {
        if (d->pending[i].deadline > d->now) {
            i++;
            continue;
        }
        dht__pending p = d->pending[i];
        d->pending[i] = d->pending[--d->npending];
        d->st.timeouts++;
        switch (p.kind) {
        case DHT__REQ_PROBE: dht__table_probe_timeout(d, p.bucket, &p.to); break;
        case DHT__REQ_PING:
            dht__table_failed(d, &p.to);
            dht__emit_ping(d, p.handle, &p.to, DHT_ETIMEDOUT);
            break;
        default:
            dht__table_failed(d, &p.to);
            dht__lookup_timeout(d, &p); /* may add requests (later deadlines) */
            break;
        }
    }
    dht__lookup_tick(d);
    dht__store_expire(d);
    dht__pub_tick(d);
    if (dht__table_refresh_deadline(d) <= d->now) {
        dht__table_refresh(d, false);
    }
}

uint64_t dht_next_deadline(const dht *d)
{
    uint64_t best = d->next_expiry;
    for (uint32_t i = 0; i < d->npending; i++) {
        if (d->pending[i].deadline < best) {
            best = d->pending[i].deadline;
        }
    }
    uint64_t t = dht__lookup_deadline(d);
    best = t < best ? t : best;
    t = dht__pub_deadline(d);
    best = t < best ? t : best;
    t = dht__table_refresh_deadline(d);
    return t < best ? t : best;
}

/* ---- API -------------------------------------------------------------------------------- */

int dht_add_contact(dht *d, const dht_id *id, const char *addr, uint64_t now)
{
    if (d == NULL || id == NULL || addr == NULL || addr[0] == 0 || !dht__addr_ok(addr)) {
        return DHT_EINVAL;
    }
    if (memcmp(id->b, d->self.id.b, DHT_ID_LEN) == 0) {
        return DHT_ESELF;
    }
    dht__advance_clock(d, now);
    dht__table_seen(d, id, addr);
    return 0;
}

int dht_lookup_node(dht *d, const dht_id *target, uint64_t now, uint32_t *handle)
{
    if (d == NULL || target == NULL || handle == NULL) {
        return DHT_EINVAL;
    }
    dht__advance_clock(d, now);
    return dht__lookup_start(d, DHT__L_NODE, target, handle);
}

int dht_get(dht *d, const dht_id *key, uint64_t now, uint32_t *handle)
{
    if (d == NULL || key == NULL || handle == NULL) {
        return DHT_EINVAL;
    }
    dht__advance_clock(d, now);
    return dht__lookup_start(d, DHT__L_GET, key, handle);
}

int dht_bootstrap(dht *d, const dht_contact *seeds, uint32_t n, uint64_t now, uint32_t *handle)
{
    if (d == NULL || handle == NULL || (seeds == NULL && n > 0)) {
        return DHT_EINVAL;
    }
    *handle = 0;
    dht__advance_clock(d, now);
    for (uint32_t i = 0; i < n; i++) {
        if (strnlen(seeds[i].addr, sizeof seeds[i].addr) > DHT_ADDR_MAX) {
            return DHT_EINVAL;
        }
        (void)dht_add_contact(d, &seeds[i].id, seeds[i].addr, now);
    }
    if (n == 0) {
        return 0;
    }
    int rv = dht__lookup_start(d, DHT__L_NODE, &d->self.id, handle);
    dht__lookup *l = rv == 0 ? dht__lookup_find(d, *handle) : NULL;
    if (l != NULL) {
        l->bootstrap = true;
    }
    return rv;
}

int dht_ping(dht *d, const dht_id *id, const char *addr, uint64_t now, uint32_t *handle)
{
    if (d == NULL || id == NULL || addr == NULL || addr[0] == 0 || handle == NULL ||
        !dht__addr_ok(addr)) {
        return DHT_EINVAL;
    }
    if (memcmp(id->b, d->self.id.b, DHT_ID_LEN) == 0) {
        return DHT_ESELF;
    }
    dht__advance_clock(d, now);
    dht_contact to;
    memset(&to, 0, sizeof to);
    to.id = *id;
    memcpy(to.addr, addr, strlen(addr) + 1);
    dht_msg m;
    memset(&m, 0, sizeof m);
    m.type = WIRE_FIND_NODE;
    m.key = d->self.id;
    if (++d->next_handle == 0) {
        d->next_handle = 1;
    }
    int rv = dht__request(d, &to, &m, NULL, DHT__REQ_PING, d->next_handle, 0, -1);
    if (rv == 0) {
        *handle = d->next_handle;
    }
    return rv;
}

/* ---- outputs ---------------------------------------------------------------------------- */

const dht_out *dht_next_output(dht *d)
{
    dht__qout_free(d->cur_out);
    d->cur_out = dht__q_pop(&d->outq);
    return d->cur_out != NULL ? &d->cur_out->out : NULL;
}

const dht_event *dht_next_event(dht *d)
{
    dht__qev_free(d->cur_ev);
    d->cur_ev = dht__q_pop(&d->evq);
    return d->cur_ev != NULL ? &d->cur_ev->ev : NULL;
}

void dht_get_stats(const dht *d, dht_stats *st)
{
    *st = d->st;
    st->stored_keys = d->nkeys;
    st->stored_values = d->nvalues;
    st->lookups = d->nlookups;
    st->pending = d->npending;
}
