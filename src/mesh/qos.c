/* src/mesh/qos.c — QoS 1 outbox and de-duplication window; the contract is in qos.h. */
#include "mesh/qos.h"

#include <stdlib.h>
#include <string.h>

#include "base/dheap.h"
#include "base/hmap.h"

const char *qos_strerror(int err)
{
    switch (err) {
    case QOS_OK: return "ok";
    case QOS_EINVAL: return "invalid argument";
    case QOS_ENOMEM: return "out of memory";
    case QOS_EEXIST: return "already pending";
    case QOS_ELIMIT: return "too many unacknowledged messages";
    case QOS_ENOENT: return "no such pending message";
    default: return "unknown error";
    }
}

/* ---- sender ------------------------------------------------------------------------------ */

typedef struct qmsg qmsg;

/* The messages pending for one destination. */
typedef struct qdest {
    uint64_t dest; /* key */
    qmsg *head;    /* list through qmsg.dnext / dprev */
} qdest;

struct qmsg {
    dheap_node hn;               /* first member: next resend */
    uint8_t key[QOS_ID_LEN + 8]; /* message id, then dest (host order): the map key */
    uint64_t dest;               /* where it goes */
    uint32_t tries;              /* sends so far */
    uint32_t backoff_ms;         /* wait before the next resend */
    qmsg *dnext, *dprev;         /* qdest list */
    size_t len;                  /* frame length */
    uint8_t frame[];             /* the encoded PUBLISH */
};

struct qos_outbox {
    qos_outbox_config cfg;
    hmap msgs;  /* key -> qmsg */
    hmap dests; /* dest -> qdest */
    dheap due;  /* resend deadlines */
    qos_outbox_stats st;
};

qos_outbox *qos_outbox_new(const qos_outbox_config *cfg)
{
    qos_outbox *o = calloc(1, sizeof *o);
    if (o == NULL) {
        return NULL;
    }
    if (cfg != NULL) {
        o->cfg = *cfg;
    }
    o->cfg.retry_ms = o->cfg.retry_ms ? o->cfg.retry_ms : 1000;
    o->cfg.max_retry_ms = o->cfg.max_retry_ms ? o->cfg.max_retry_ms : 30000;
    o->cfg.max_tries = o->cfg.max_tries ? o->cfg.max_tries : 8;
    o->cfg.max_pending = o->cfg.max_pending ? o->cfg.max_pending : 100000;
    o->cfg.max_bytes = o->cfg.max_bytes ? o->cfg.max_bytes : (size_t)64 << 20;
    if (o->cfg.max_retry_ms < o->cfg.retry_ms) {
        free(o);
        return NULL;
    }
    return o;
}

static void qmsg__unlink(qos_outbox *o, qmsg *m)
{
    dheap_remove(&o->due, &m->hn);
    hmap_del(&o->msgs, m->key, sizeof m->key);
    qdest *d = hmap_get(&o->dests, &m->dest, sizeof m->dest);
    if (d != NULL) {
        if (m->dprev != NULL) {
            m->dprev->dnext = m->dnext;
        } else {
            d->head = m->dnext;
        }
        if (m->dnext != NULL) {
            m->dnext->dprev = m->dprev;
        }
        if (d->head == NULL) {
            hmap_del(&o->dests, &d->dest, sizeof d->dest);
            free(d);
        }
    }
    o->st.pending--;
    o->st.bytes -= m->len;
    free(m);
}

void qos_outbox_free(qos_outbox *o)
{
    if (o == NULL) {
        return;
    }
    size_t it = 0;
    const hmap_slot *s;
    while ((s = hmap_next(&o->msgs, &it)) != NULL) {
        free(s->val);
    }
    it = 0;
    while ((s = hmap_next(&o->dests, &it)) != NULL) {
        free(s->val);
    }
    hmap_free(&o->msgs);
    hmap_free(&o->dests);
    dheap_free(&o->due);
    free(o);
}

static void make_key(uint8_t key[QOS_ID_LEN + 8], const uint8_t id[QOS_ID_LEN], uint64_t dest)
{
    memcpy(key, id, QOS_ID_LEN);
    memcpy(key + QOS_ID_LEN, &dest, 8);
}

int qos_outbox_add(qos_outbox *o, const uint8_t id[QOS_ID_LEN], uint64_t dest, const void *frame,
                   size_t len, uint64_t now_ms)
{
    if (id == NULL || frame == NULL || len == 0) {
        return QOS_EINVAL;
    }
    uint8_t key[QOS_ID_LEN + 8];
    make_key(key, id, dest);
    if (hmap_get(&o->msgs, key, sizeof key) != NULL) {
        return QOS_EEXIST;
    }
    if (o->st.pending >= o->cfg.max_pending || len > o->cfg.max_bytes - o->st.bytes) {
        o->st.refused++;
        return QOS_ELIMIT;
    }
    qmsg *m = malloc(sizeof *m + len);
    if (m == NULL) {
        return QOS_ENOMEM;
    }
    memset(m, 0, sizeof *m);
    memcpy(m->key, key, sizeof key);
    m->dest = dest;
    m->tries = 1;
    m->backoff_ms = o->cfg.retry_ms;
    m->len = len;
    memcpy(m->frame, frame, len);
    dheap_node_init(&m->hn);
    qdest *d = hmap_get(&o->dests, &dest, sizeof dest);
    bool new_d = d == NULL;
    if (new_d) {
        d = calloc(1, sizeof *d);
        if (d == NULL) {
            free(m);
            return QOS_ENOMEM;
        }
        d->dest = dest;
        if (hmap_put(&o->dests, &d->dest, sizeof d->dest, d, NULL) != HMAP_OK) {
            free(d);
            free(m);
            return QOS_ENOMEM;
        }
    }
    if (hmap_put(&o->msgs, m->key, sizeof m->key, m, NULL) != HMAP_OK ||
        dheap_push(&o->due, &m->hn, now_ms + m->backoff_ms) != DHEAP_OK) {
        hmap_del(&o->msgs, m->key, sizeof m->key);
        if (new_d) {
            hmap_del(&o->dests, &d->dest, sizeof d->dest);
            free(d);
        }
        free(m);
        return QOS_ENOMEM;
    }
    m->dnext = d->head;
    if (d->head != NULL) {
        d->head->dprev = m;
    }
    d->head = m;
    o->st.pending++;
    o->st.bytes += len;
    o->st.added++;
    return QOS_OK;
}

int qos_outbox_ack(qos_outbox *o, const uint8_t id[QOS_ID_LEN], uint64_t dest)
{
    uint8_t key[QOS_ID_LEN + 8];
    make_key(key, id, dest);
    qmsg *m = hmap_get(&o->msgs, key, sizeof key);
    if (m == NULL) {
        return QOS_ENOENT;
    }
    qmsg__unlink(o, m);
    o->st.acked++;
    return QOS_OK;
}

size_t qos_outbox_drop_dest(qos_outbox *o, uint64_t dest)
{
    size_t n = 0;
    qdest *d;
    while ((d = hmap_get(&o->dests, &dest, sizeof dest)) != NULL) {
        qmsg__unlink(o, d->head); /* frees d with its last message */
        n++;
    }
    o->st.dropped += n;
    return n;
}

bool qos_outbox_poll(qos_outbox *o, uint64_t now_ms, qos_event *ev)
{
    dheap_node *n = dheap_pop_due(&o->due, now_ms);
    if (n == NULL) {
        return false;
    }
    qmsg *m = (qmsg *)(void *)n;
    memset(ev, 0, sizeof *ev);
    memcpy(ev->id, m->key, QOS_ID_LEN);
    ev->dest = m->dest;
    if (m->tries >= o->cfg.max_tries) {
        ev->kind = QOS_GAVE_UP;
        ev->tries = m->tries;
        o->st.gave_up++;
        qmsg__unlink(o, m);
        return true;
    }
    m->tries++;
    m->backoff_ms =
        m->backoff_ms > o->cfg.max_retry_ms / 2 ? o->cfg.max_retry_ms : m->backoff_ms * 2;
    /* The heap had room for this node a moment ago, so the push cannot need to grow. */
    (void)dheap_push(&o->due, &m->hn, now_ms + m->backoff_ms);
    ev->kind = QOS_RESEND;
    ev->frame = m->frame;
    ev->frame_len = m->len;
    ev->tries = m->tries;
    o->st.resent++;
    return true;
}

uint64_t qos_outbox_next_deadline(const qos_outbox *o)
{
    return dheap_min(&o->due);
}

void qos_outbox_get_stats(const qos_outbox *o, qos_outbox_stats *out)
{
    *out = o->st;
}

/* ---- receiver ---------------------------------------------------------------------------- */

typedef struct dslot {
    uint8_t id[QOS_ID_LEN];
    uint64_t at; /* when it was first seen */
} dslot;

struct qos_dedup {
    uint32_t window_ms;
    uint32_t max_ids;
    dslot *ring; /* ids in arrival order, a circular buffer */
    size_t cap;  /* slots in ring */
    size_t head; /* oldest */
    size_t n;    /* held */
    hmap index;  /* id -> its slot (key inside the ring) */
    qos_dedup_stats st;
};

qos_dedup *qos_dedup_new(uint32_t window_ms, uint32_t max_ids)
{
    qos_dedup *d = calloc(1, sizeof *d);
    if (d == NULL) {
        return NULL;
    }
    d->window_ms = window_ms ? window_ms : 300000;
    d->max_ids = max_ids ? max_ids : 100000;
    return d;
}

void qos_dedup_free(qos_dedup *d)
{
    if (d == NULL) {
        return;
    }
    free(d->ring);
    hmap_free(&d->index);
    free(d);
}

static void dedup__pop_oldest(qos_dedup *d)
{
    hmap_del(&d->index, d->ring[d->head].id, QOS_ID_LEN);
    d->head = (d->head + 1) % d->cap;
    d->n--;
}

/* Doubles the ring (up to max_ids) and re-indexes, since the keys live in the ring. */
static bool dedup__grow(qos_dedup *d)
{
    size_t ncap = d->cap ? d->cap * 2 : 64;
    if (ncap > d->max_ids) {
        ncap = d->max_ids;
    }
    dslot *nr = malloc(ncap * sizeof *nr);
    if (nr == NULL) {
        return false;
    }
    for (size_t i = 0; i < d->n; i++) {
        nr[i] = d->ring[(d->head + i) % d->cap];
    }
    hmap idx;
    hmap_init(&idx);
    for (size_t i = 0; i < d->n; i++) {
        if (hmap_put(&idx, nr[i].id, QOS_ID_LEN, &nr[i], NULL) != HMAP_OK) {
            hmap_free(&idx);
            free(nr);
            return false;
        }
    }
    free(d->ring);
    hmap_free(&d->index);
    d->ring = nr;
    d->index = idx;
    d->cap = ncap;
    d->head = 0;
    return true;
}

bool qos_dedup_check(qos_dedup *d, const uint8_t id[QOS_ID_LEN], uint64_t now_ms)
{
    while (d->n > 0 && d->ring[d->head].at + d->window_ms <= now_ms) {
        dedup__pop_oldest(d);
    }
    if (d->n > 0 && hmap_get(&d->index, id, QOS_ID_LEN) != NULL) {
        d->st.duplicates++;
        return true;
    }
    if (d->n == d->cap && d->cap < d->max_ids && !dedup__grow(d)) {
        return false;
    }
    if (d->n == d->cap) {
        dedup__pop_oldest(d);
        d->st.evicted++;
    }
    dslot *s = &d->ring[(d->head + d->n) % d->cap];
    memcpy(s->id, id, QOS_ID_LEN);
    s->at = now_ms;
    if (hmap_put(&d->index, s->id, QOS_ID_LEN, s, NULL) != HMAP_OK) {
        return false;
    }
    d->n++;
    return false;
}

void qos_dedup_get_stats(const qos_dedup *d, qos_dedup_stats *out)
{
    *out = d->st;
    out->held = d->n;
}
