/*
 * flow/consensus/peer_link.c — messages between cluster members over QUIC between node
 * identities (peer_link.h). Extracted from the gossip actor so that PBFT uses the same links.
 */
#include "flow/consensus/peer_link.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mesh/quic.h"

typedef struct pl_msg {
    uint8_t *data;
    size_t len;
    uint64_t at; /* loop time (ms) it was handed to peer_link_send */
} pl_msg;

typedef struct pl_fly { /* a message written on a stream the peer has not closed yet */
    int64_t sid;
    pl_msg m;
} pl_fly;

typedef struct pl_peer {
    uint32_t id;
    char addr[PEER_LINK_ADDR_MAX];
    uint8_t node[IDENTITY_ID_LEN];
    quic_conn *out; /* this node's connection to it, NULL if none */
    bool connected; /* out's handshake completed */
    pl_msg *q;      /* waiting messages, oldest first (room for pending_max) */
    size_t nq;
    pl_fly *fly; /* streams of `out` not closed yet, in write order */
    size_t nfly, capfly;
    uint64_t retry_at; /* loop time of the next connection attempt; 0: none scheduled */
    uint32_t backoff;  /* ms waited before retry_at; 0 after a handshake completed */
} pl_peer;

typedef struct pl_rx { /* a message being received on one stream */
    quic_conn *c;
    int64_t sid;
    uint8_t *buf;
    size_t len;
    struct pl_rx *next;
} pl_rx;

struct peer_link {
    peer_link_config cfg;
    char name[32];
    quic_endpoint *ep;
    uv_loop_t *loop;
    uv_timer_t *timer; /* retries; malloc'd, freed by its close callback */
    pl_peer **peers;   /* each malloc'd: connections name them by id, the array moves */
    size_t npeers;
    pl_rx *rx;
    bool isolated;
    peer_link_stats st;
};

/* ---- members ----------------------------------------------------------------------------- */

static pl_peer *pl__peer(const peer_link *l, uint32_t id)
{
    for (size_t i = 0; i < l->npeers; i++) {
        if (l->peers[i]->id == id) {
            return l->peers[i];
        }
    }
    return NULL;
}
/* The member whose node id is the connection's TLS-proven one. */
static pl_peer *pl__member_of(const peer_link *l, const quic_conn *c)
{
    const uint8_t *pid = quic_conn_peer_id(c);
    for (size_t i = 0; pid && i < l->npeers; i++) {
        if (memcmp(l->peers[i]->node, pid, IDENTITY_ID_LEN) == 0) {
            return l->peers[i];
        }
    }
    return NULL;
}

static uint64_t pl__now(const peer_link *l)
{
    return uv_now(l->loop);
}

static void pl__drop_queue(peer_link *l, pl_peer *p)
{
    for (size_t i = 0; i < p->nq; i++) {
        free(p->q[i].data);
    }
    l->st.dropped += p->nq;
    free(p->q);
    p->q = NULL;
    p->nq = 0;
    p->retry_at = 0;
    p->backoff = 0;
}

/* Forgets the streams in flight (their messages are in QUIC's hands or lost: not counted). */
static void pl__drop_fly(pl_peer *p)
{
    for (size_t i = 0; i < p->nfly; i++) {
        free(p->fly[i].m.data);
    }
    free(p->fly);
    p->fly = NULL;
    p->nfly = p->capfly = 0;
}

static void pl__disconnect(peer_link *l, pl_peer *p, const char *why)
{
    if (p->out) {
        quic_conn_set_user(p->out, (void *)(uintptr_t)0);
        quic_conn_close(p->out, 0, why);
    }
    p->out = NULL;
    p->connected = false;
    pl__drop_fly(p);
    pl__drop_queue(l, p);
}

static int pl__split(const char *hp, char *host, size_t hs, uint16_t *port)
{
    const char *colon = strrchr(hp, ':');
    if (colon == NULL || (size_t)(colon - hp) >= hs || colon == hp) {
        return -1;
    }
    memcpy(host, hp, (size_t)(colon - hp));
    host[colon - hp] = '\0';
    char *end;
    long v = strtol(colon + 1, &end, 10);
    if (*end != '\0' || v <= 0 || v > 65535) {
        return -1;
    }
    *port = (uint16_t)v;
    return 0;
}

/* ---- the waiting queue ------------------------------------------------------------------- */

/* Drops the waiting messages older than pending_ttl_ms (counted). */
static void pl__expire(peer_link *l, pl_peer *p, uint64_t now)
{
    size_t keep = 0;
    for (size_t i = 0; i < p->nq; i++) {
        if (now - p->q[i].at >= l->cfg.pending_ttl_ms) {
            free(p->q[i].data);
            l->st.dropped++;
        } else {
            p->q[keep++] = p->q[i];
        }
    }
    p->nq = keep;
}

/* Appends m (owned) to the queue; beyond pending_max the oldest goes (counted). */
static int pl__enqueue(peer_link *l, pl_peer *p, uint8_t *data, size_t len, uint64_t at)
{
    if (p->q == NULL) { /* room for pending_max messages, made when first needed */
        p->q = calloc(l->cfg.pending_max, sizeof *p->q);
        if (p->q == NULL) {
            free(data);
            l->st.dropped++;
            return QUIC_ENOMEM;
        }
    }
    if (p->nq >= l->cfg.pending_max) {
        free(p->q[0].data);
        memmove(p->q, p->q + 1, (p->nq - 1) * sizeof *p->q);
        p->nq--;
        l->st.dropped++;
    }
    p->q[p->nq++] = (pl_msg){data, len, at};
    return 0;
}

/* The connection ended with streams the peer had not closed: their messages may not have
 * arrived, so they go back to the front of the queue (oldest first; the bound still holds). */
static void pl__requeue_fly(peer_link *l, pl_peer *p)
{
    if (p->nfly == 0) {
        return;
    }
    size_t total = p->nfly + p->nq;
    pl_msg *all = malloc(total * sizeof *all);
    if (all == NULL) {
        l->st.dropped += p->nfly;
        pl__drop_fly(p);
        return;
    }
    for (size_t i = 0; i < p->nfly; i++) {
        all[i] = p->fly[i].m;
    }
    for (size_t i = 0; i < p->nq; i++) {
        all[p->nfly + i] = p->q[i];
    }
    l->st.requeued += p->nfly;
    free(p->fly);
    p->fly = NULL;
    p->nfly = p->capfly = 0;
    p->nq = 0;
    for (size_t i = 0; i < total; i++) {
        (void)pl__enqueue(l, p, all[i].data, all[i].len,
                          all[i].at); /* keeps the newest pending_max */
    }
    free(all);
}

/* ---- retries ----------------------------------------------------------------------------- */

static void pl__on_timer(uv_timer_t *t);

/* Sets the timer at the earliest scheduled retry (stops it when there is none). */
static void pl__arm(peer_link *l)
{
    uint64_t due = 0;
    for (size_t i = 0; i < l->npeers; i++) {
        const pl_peer *p = l->peers[i];
        if (p->retry_at && (due == 0 || p->retry_at < due)) {
            due = p->retry_at;
        }
    }
    if (due == 0) {
        uv_timer_stop(l->timer);
        return;
    }
    uint64_t now = pl__now(l);
    uv_timer_start(l->timer, pl__on_timer, due > now ? due - now : 0, 0);
}

/* No connection and messages waiting: try again after the next backoff step (the first step
 * after a connection that worked, else the previous one doubled, capped). */
static void pl__schedule(peer_link *l, pl_peer *p, bool fresh)
{
    if (p->nq == 0 || l->isolated) {
        p->retry_at = 0;
        p->backoff = 0;
        return;
    }
    uint32_t b = fresh || p->backoff == 0 ? l->cfg.retry_min_ms : p->backoff * 2;
    p->backoff = b < l->cfg.retry_max_ms ? b : l->cfg.retry_max_ms;
    p->retry_at = pl__now(l) + p->backoff;
}

/* ---- sending ----------------------------------------------------------------------------- */

/* One message on a new stream: 0, QUIC_ESTREAMLIMIT (try again later) or another error. The
 * stream id goes to *sid. */
static int pl__write(pl_peer *p, const uint8_t *data, size_t len, int64_t *sid)
{
    int rc = quic_stream_open(p->out, sid);
    if (rc != 0) {
        return rc;
    }
    rc = quic_stream_write(p->out, *sid, data, len, true);
    if (rc != 0) {
        quic_stream_reset(p->out, *sid, 1);
    }
    return rc;
}

/* Keeps m (owned) until stream sid closes; without memory it is just not kept. */
static void pl__fly_add(pl_peer *p, int64_t sid, uint8_t *data, size_t len, uint64_t at)
{
    pl_msg m = {data, len, at};
    if (p->nfly == p->capfly) {
        size_t cap = p->capfly ? 2 * p->capfly : 8;
        pl_fly *v = realloc(p->fly, cap * sizeof *v);
        if (v == NULL) {
            free(data);
            return;
        }
        p->fly = v;
        p->capfly = cap;
    }
    p->fly[p->nfly++] = (pl_fly){sid, m};
}

/* Stream sid of p's connection is over (acknowledged or reset): its message is done. */
static void pl__fly_done(pl_peer *p, int64_t sid)
{
    for (size_t i = 0; i < p->nfly; i++) {
        if (p->fly[i].sid == sid) {
            free(p->fly[i].m.data);
            memmove(p->fly + i, p->fly + i + 1, (p->nfly - i - 1) * sizeof *p->fly);
            p->nfly--;
            return;
        }
    }
}

/* Writes the waiting messages while the connection takes them (too old ones are dropped). */
static void pl__flush(peer_link *l, pl_peer *p)
{
    if (!(p->out && p->connected && !l->isolated)) {
        return;
    }
    pl__expire(l, p, pl__now(l));
    size_t done = 0;
    while (done < p->nq && p->out && p->connected) {
        int64_t sid;
        int rc = pl__write(p, p->q[done].data, p->q[done].len, &sid);
        if (rc == QUIC_ESTREAMLIMIT) {
            break;
        }
        if (rc == 0) {
            l->st.sent++;
            pl__fly_add(p, sid, p->q[done].data, p->q[done].len, p->q[done].at);
        } else {
            l->st.dropped++;
            free(p->q[done].data);
        }
        done++;
    }
    if (done) {
        memmove(p->q, p->q + done, (p->nq - done) * sizeof *p->q);
        p->nq -= done;
    }
}

static void pl__connect(peer_link *l, pl_peer *p)
{
    char host[PEER_LINK_ADDR_MAX];
    uint16_t port;
    p->retry_at = 0;
    if (pl__split(p->addr, host, sizeof host, &port) != 0) {
        return;
    }
    /* the connection names its member by id: the peers array moves when it grows */
    if (quic_connect(l->ep, host, port, p->node, (void *)(uintptr_t)p->id, &p->out) != 0) {
        p->out = NULL;
        pl__schedule(l, p, false);
    }
}

static void pl__on_timer(uv_timer_t *t)
{
    peer_link *l = t->data;
    uint64_t now = pl__now(l);
    for (size_t i = 0; i < l->npeers; i++) {
        pl_peer *p = l->peers[i];
        if (p->retry_at == 0 || p->retry_at > now) {
            continue;
        }
        pl__expire(l, p, now);
        if (p->nq == 0) {
            p->retry_at = 0;
            p->backoff = 0;
        } else if (p->out == NULL) {
            l->st.retries++;
            pl__connect(l, p);
        } else {
            p->retry_at = 0;
        }
    }
    pl__arm(l);
}

int peer_link_send(peer_link *l, uint32_t to, const uint8_t *data, size_t len)
{
    pl_peer *p = pl__peer(l, to);
    if (p == NULL || l->ep == NULL || len > l->cfg.msg_max) {
        l->st.dropped++;
        return QUIC_EINVAL;
    }
    if (l->isolated) {
        l->st.dropped++;
        return QUIC_ECLOSED;
    }
    uint8_t *copy = malloc(len ? len : 1);
    if (copy == NULL) {
        l->st.dropped++;
        return QUIC_ENOMEM;
    }
    memcpy(copy, data, len);
    uint64_t at = pl__now(l);
    if (p->out && p->connected && p->nq == 0) {
        int64_t sid;
        int rc = pl__write(p, data, len, &sid);
        if (rc == 0) {
            l->st.sent++;
            pl__fly_add(p, sid, copy, len, at); /* kept until the stream closes */
            return 0;
        }
        if (rc != QUIC_ESTREAMLIMIT) {
            free(copy);
            l->st.dropped++;
            return 0;
        }
    }
    /* wait for the handshake, for stream credit or for the next connection attempt */
    int rc = pl__enqueue(l, p, copy, len, at);
    if (rc != 0) {
        return rc;
    }
    if (p->out == NULL && p->retry_at == 0) {
        pl__connect(l, p);
        pl__arm(l);
    }
    return 0;
}

/* ---- QUIC callbacks ---------------------------------------------------------------------- */

static pl_peer *pl__out_peer(peer_link *l, const quic_conn *c)
{
    if (quic_conn_is_server(c)) {
        return NULL;
    }
    pl_peer *p = pl__peer(l, (uint32_t)(uintptr_t)quic_conn_user(c));
    return p && p->out == c ? p : NULL;
}

static void pl__on_connected(quic_conn *c, void *ctx)
{
    peer_link *l = ctx;
    pl_peer *p = pl__out_peer(l, c);
    if (p == NULL) {
        return;
    }
    p->connected = true;
    p->backoff = 0;
    p->retry_at = 0;
    if (l->isolated) {
        pl__drop_queue(l, p);
    } else {
        pl__flush(l, p);
    }
}

static void pl__rx_drop(peer_link *l, const quic_conn *c, int64_t sid, bool all)
{
    for (pl_rx **pp = &l->rx; *pp;) {
        pl_rx *r = *pp;
        if (r->c == c && (all || r->sid == sid)) {
            *pp = r->next;
            free(r->buf);
            free(r);
        } else {
            pp = &r->next;
        }
    }
}

static void pl__on_closed(quic_conn *c, const quic_close_info *info, void *ctx)
{
    (void)info;
    peer_link *l = ctx;
    pl__rx_drop(l, c, 0, true);
    bool armed = false;
    for (size_t i = 0; i < l->npeers; i++) {
        pl_peer *p = l->peers[i];
        if (p->out != c) {
            continue;
        }
        bool was_connected = p->connected;
        p->out = NULL;
        p->connected = false;
        if (l->isolated || l->ep == NULL) { /* isolated, or the link is closing */
            l->st.dropped += p->nfly;
            pl__drop_fly(p);
            pl__drop_queue(l, p);
            continue;
        }
        pl__requeue_fly(l, p);
        pl__expire(l, p, pl__now(l));
        pl__schedule(l, p, was_connected);
        armed = true;
    }
    if (armed) {
        pl__arm(l);
    }
}

static void pl__deliver(peer_link *l, const quic_conn *c, const uint8_t *data, size_t len)
{
    if (l->isolated) {
        l->st.dropped++;
        return;
    }
    const pl_peer *p = pl__member_of(l, c);
    if (p == NULL) {
        l->st.unknown++;
        return;
    }
    if (l->cfg.recv(l->cfg.user, p->id, data, len) != 0) {
        l->st.rejected++;
        return;
    }
    l->st.received++;
}

static void pl__on_stream_data(quic_conn *c, int64_t sid, const uint8_t *data, size_t len, bool fin,
                               void *ctx)
{
    peer_link *l = ctx;
    bool mine = (sid & 1) == (quic_conn_is_server(c) ? 1 : 0);
    if (mine) { /* the peer's FIN on a stream this node opened: nothing to read */
        return;
    }
    pl_rx *r = l->rx;
    while (r && !(r->c == c && r->sid == sid)) {
        r = r->next;
    }
    if (r == NULL) {
        r = calloc(1, sizeof *r);
        if (r == NULL) {
            quic_stream_reset(c, sid, 1);
            return;
        }
        r->c = c;
        r->sid = sid;
        r->next = l->rx;
        l->rx = r;
    }
    if (len > l->cfg.msg_max - r->len) {
        l->st.rejected++;
        pl__rx_drop(l, c, sid, false);
        quic_stream_reset(c, sid, 2);
        return;
    }
    if (len > 0) {
        uint8_t *b = realloc(r->buf, r->len + len);
        if (b == NULL) {
            pl__rx_drop(l, c, sid, false);
            quic_stream_reset(c, sid, 1);
            return;
        }
        memcpy(b + r->len, data, len);
        r->buf = b;
        r->len += len;
    }
    if (fin) {
        uint8_t *buf = r->buf;
        size_t n = r->len;
        r->buf = NULL;
        pl__rx_drop(l, c, sid, false);
        quic_stream_write(c, sid, NULL, 0, true); /* close our direction: the stream ends */
        pl__deliver(l, c, buf, n);
        free(buf);
    }
}

static void pl__on_stream_closed(quic_conn *c, int64_t sid, void *ctx)
{
    peer_link *l = ctx;
    pl__rx_drop(l, c, sid, false);
    pl_peer *p = pl__out_peer(l, c);
    if (p == NULL) {
        return;
    }
    pl__fly_done(p, sid); /* the peer has it */
    if (p->nq) {          /* stream credit may be back */
        pl__flush(l, p);
    }
}

static void pl__on_stream_reset(quic_conn *c, int64_t sid, uint64_t code, void *ctx)
{
    (void)code;
    peer_link *l = ctx;
    pl__rx_drop(l, c, sid, false);
    pl_peer *p = pl__out_peer(l, c);
    if (p) {
        pl__fly_done(p, sid); /* refused by the peer (too long): not sent again */
    }
}

static void pl__log(void *ctx, int level, const char *msg)
{
    const peer_link *l = ctx;
    if (level <= QUIC_LOG_WARN) {
        fprintf(stderr, "macula: %s: %s\n", l->name, msg);
    }
}

/* ---- the link ---------------------------------------------------------------------------- */

static void pl__timer_closed(uv_handle_t *h)
{
    free(h);
}

int peer_link_open(uv_loop_t *loop, const peer_link_config *cfg, peer_link **out, char *err,
                   size_t errsize)
{
    *out = NULL;
    char host[PEER_LINK_ADDR_MAX];
    uint16_t port;
    if (cfg == NULL || cfg->id == NULL || cfg->recv == NULL || cfg->msg_max == 0 ||
        cfg->listen == NULL || pl__split(cfg->listen, host, sizeof host, &port) != 0) {
        snprintf(err, errsize, "link address %s: expected HOST:PORT",
                 cfg && cfg->listen ? cfg->listen : "(none)");
        return QUIC_EINVAL;
    }
    peer_link *l = calloc(1, sizeof *l);
    uv_timer_t *t = malloc(sizeof *t);
    if (l == NULL || t == NULL) {
        free(l);
        free(t);
        snprintf(err, errsize, "out of memory");
        return QUIC_ENOMEM;
    }
    l->cfg = *cfg;
    l->cfg.listen = NULL; /* not kept */
    l->cfg.pending_max = cfg->pending_max ? cfg->pending_max : 1;
    l->cfg.pending_ttl_ms = cfg->pending_ttl_ms ? cfg->pending_ttl_ms : PEER_LINK_DEFAULT_TTL_MS;
    l->cfg.retry_min_ms = cfg->retry_min_ms ? cfg->retry_min_ms : PEER_LINK_DEFAULT_RETRY_MIN_MS;
    l->cfg.retry_max_ms = cfg->retry_max_ms ? cfg->retry_max_ms : PEER_LINK_DEFAULT_RETRY_MAX_MS;
    if (l->cfg.retry_max_ms < l->cfg.retry_min_ms) {
        l->cfg.retry_max_ms = l->cfg.retry_min_ms;
    }
    l->loop = loop;
    snprintf(l->name, sizeof l->name, "%s", cfg->name ? cfg->name : "flow link");
    quic_config qc = {
        .id = cfg->id,
        .listen = true,
        .bind_host = host,
        .bind_port = port,
        .idle_timeout_ms = cfg->idle_timeout_ms,
        .handshake_timeout_ms = cfg->handshake_timeout_ms,
        .max_streams = cfg->max_streams,
        .cb = {.on_connected = pl__on_connected,
               .on_closed = pl__on_closed,
               .on_stream_data = pl__on_stream_data,
               .on_stream_reset = pl__on_stream_reset,
               .on_stream_closed = pl__on_stream_closed},
        .ctx = l,
        .log = pl__log,
        .log_level = QUIC_LOG_WARN,
    };
    int rc = quic_endpoint_new(loop, &qc, &l->ep);
    if (rc != QUIC_OK) {
        snprintf(err, errsize, "%s QUIC endpoint %s: %s", l->name, cfg->listen, quic_strerror(rc));
        free(t);
        free(l);
        return rc;
    }
    uv_timer_init(loop, t);
    t->data = l;
    l->timer = t;
    *out = l;
    return 0;
}

void peer_link_close(peer_link *l)
{
    if (l == NULL) {
        return;
    }
    quic_endpoint *ep = l->ep;
    l->ep = NULL;            /* on_closed below drops instead of requeueing */
    quic_endpoint_close(ep); /* every connection's on_closed runs here */
    uv_close((uv_handle_t *)l->timer, pl__timer_closed);
    l->timer = NULL;
    while (l->rx) { /* on_closed dropped them; this is for safety */
        pl_rx *n = l->rx->next;
        free(l->rx->buf);
        free(l->rx);
        l->rx = n;
    }
    for (size_t i = 0; i < l->npeers; i++) {
        pl__drop_fly(l->peers[i]);
        pl__drop_queue(l, l->peers[i]);
        free(l->peers[i]);
    }
    free(l->peers);
    free(l);
}

int peer_link_set(peer_link *l, uint32_t id, const char *addr, const uint8_t node[IDENTITY_ID_LEN])
{
    char host[PEER_LINK_ADDR_MAX];
    uint16_t port;
    if (addr == NULL || strlen(addr) >= PEER_LINK_ADDR_MAX ||
        pl__split(addr, host, sizeof host, &port) != 0) {
        return QUIC_EINVAL;
    }
    pl_peer *p = pl__peer(l, id);
    if (p == NULL) {
        pl_peer **v = realloc(l->peers, (l->npeers + 1) * sizeof *v);
        if (v == NULL) {
            return QUIC_ENOMEM;
        }
        l->peers = v;
        p = calloc(1, sizeof *p);
        if (p == NULL) {
            return QUIC_ENOMEM;
        }
        p->id = id;
        l->peers[l->npeers++] = p;
    } else if (strcmp(p->addr, addr) == 0 && memcmp(p->node, node, IDENTITY_ID_LEN) == 0) {
        return 0;
    } else {
        pl__disconnect(l, p, "member changed");
    }
    snprintf(p->addr, sizeof p->addr, "%s", addr);
    memcpy(p->node, node, IDENTITY_ID_LEN);
    return 0;
}

void peer_link_remove(peer_link *l, uint32_t id)
{
    for (size_t i = 0; i < l->npeers; i++) {
        if (l->peers[i]->id == id) {
            pl__disconnect(l, l->peers[i], "member left");
            free(l->peers[i]);
            l->peers[i] = l->peers[--l->npeers];
            pl__arm(l);
            return;
        }
    }
}

void peer_link_isolate(peer_link *l, bool on)
{
    l->isolated = on;
    for (size_t i = 0; on && i < l->npeers; i++) {
        pl__drop_queue(l, l->peers[i]);
    }
    if (on) {
        pl__arm(l);
    }
}

bool peer_link_isolated(const peer_link *l)
{
    return l->isolated;
}

void peer_link_get_stats(const peer_link *l, peer_link_stats *st)
{
    *st = l->st;
}
