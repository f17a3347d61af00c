/*
 * src/mesh/quic.c — QUIC endpoint: ngtcp2 0.12 + GnuTLS on a libuv UDP socket.
 *
 * The contract is in quic.h; the design (CID table, timer heap, servicing, pacing work-around,
 * memory per connection) is in docs/quic.md. In short:
 *
 *   - one non-blocking UDP socket per endpoint, watched by a uv_poll_t; it is read with
 *     recvmmsg(2) and, where the kernel has it, UDP GRO (one buffer holds several datagrams of
 *     one size, split again before anything else sees them); every datagram is routed by its
 *     destination connection ID through a keyed hash table (SipHash, random key per endpoint)
 *     of cid_entry objects;
 *   - one uv_timer_t per endpoint over a binary min-heap of connections ordered by
 *     ngtcp2_conn_get_expiry (or the end of the closing/draining period);
 *   - one uv_idle_t and one uv_check_t per endpoint, active only while connections are
 *     "dirty" (writes queued, packets read, close requested, new client connection): the idle
 *     handle services them before the loop polls (and keeps the poll from blocking), the
 *     check handle right after the poll, so every packet read in one poll and every write made
 *     in one loop turn is answered by one write pass per connection;
 *   - packets written in one pass leave in batches: one sendmmsg(2) per QUIC__TX_BATCH
 *     datagrams;
 *   - ngtcp2 never sees application calls made from inside its callbacks: those only queue.
 */
#define _GNU_SOURCE /* sendmmsg, recvmmsg */
#include "mesh/quic.h"

#include <errno.h>
#include <malloc.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <netinet/in.h>
#include <netinet/udp.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <gnutls/crypto.h>
#include <gnutls/gnutls.h>
#include <gnutls/x509.h>
#include <ngtcp2/ngtcp2.h>
#include <ngtcp2/ngtcp2_crypto.h>
#include <ngtcp2/ngtcp2_crypto_gnutls.h>

#include "base/hmap.h"
#include "mesh/aesgcm.h"

/* ---- constants --------------------------------------------------------------------------- */

#define QUIC__CID_LEN 16             /* our source connection IDs */
#define QUIC__MAX_PKT 1452           /* largest UDP payload we write (ngtcp2's PMTUD ceiling) */
#define QUIC__LOOP_PKT QUIC__UDP_MAX /* largest UDP payload to a loopback peer (docs/quic.md) */
#define QUIC__UDP_MAX 65507          /* largest UDP payload (IPv4), also a GSO message's limit */
#define QUIC__RECV_BUF 65536      /* one recvmmsg(2) entry: a datagram or a GRO batch (<= 64 KiB) */
#define QUIC__RECV_CHUNKS 8       /* entries per recvmmsg(2) (a receive buffer of 512 KiB) */
#define QUIC__RECV_BUDGET 32      /* datagrams one readable event reads before the write pass */
#define QUIC__MAX_PKTS_PER_RUN 64 /* packets one service run writes before yielding */
#define QUIC__MAX_VECS 16         /* chunks gathered into one STREAM frame */
#define QUIC__TX_BATCH 32         /* datagrams per sendmmsg(2) */
#define QUIC__TX_BYTES (QUIC__TX_BATCH * QUIC__MAX_PKT + QUIC__LOOP_PKT) /* their buffer */
#define QUIC__GSO_MAX 16      /* datagrams per UDP GSO message (the kernel allows 64) */
#define QUIC__CHUNK_MIN 4096  /* the smallest chunk, shared by small writes (header included) */
#define QUIC__CHUNK_CLASSES 5 /* chunks of 4, 8, 16, 32, 64 KiB; larger writes: their own size */
#define QUIC__CHUNK_POOL_CLASS ((size_t)256 * 1024) /* bytes of spent chunks kept per class */
#define QUIC__INITIAL_BUCKETS 1024
#define QUIC__SOCKBUF (4 * 1024 * 1024) /* requested SO_RCVBUF/SO_SNDBUF (kernel may cap) */
#define QUIC__PRIORITY                                                                             \
    "NORMAL:-VERS-ALL:+VERS-TLS1.3:-CIPHER-ALL:+AES-128-GCM:+AES-256-GCM:+CHACHA20-POLY1305:"      \
    "+AES-128-CCM:-GROUP-ALL:+GROUP-X25519:+GROUP-SECP256R1:+GROUP-SECP384R1:"                     \
    "%DISABLE_TLS13_COMPAT_MODE"
#define QUIC__ALERT_BAD_CERTIFICATE 42
#define QUIC__ALERT_CERTIFICATE_EXPIRED 45
#define QUIC__ALERT_INTERNAL_ERROR 80
#define QUIC__ALERT_NO_APPLICATION_PROTOCOL 120
#define QUIC__PEERID_PREFIX "node ID mismatch"
#define QUIC__RETRY_TOKEN_TTL (10 * NGTCP2_SECONDS)
#define QUIC__MAX_RESETS_PER_S 1000
#define QUIC__RESET_LEN 43 /* stateless reset size when the trigger is larger */

enum { ST_HANDSHAKE, ST_OPEN, ST_CLOSING, ST_DRAINING, ST_DEAD };

/* ---- types ------------------------------------------------------------------------------- */

/* One connection ID (or reset token) mapped to a connection: in the endpoint's bucket chain and
 * in the connection's own list (so freeing the connection removes exactly its entries). */
typedef struct cid_entry {
    struct cid_entry *bnext;
    struct cid_entry *cnext;
    quic_conn *conn;
    uint8_t len;
    uint8_t data[NGTCP2_MAX_CIDLEN]; /* a CID, or a 16-byte stateless reset token */
} cid_entry;

/* A chained hash table of cid_entry, keyed by SipHash with the endpoint's key. */
typedef struct qtable {
    cid_entry **buckets;
    size_t nbuckets, n;
} qtable;

/* Queued send data, kept until acknowledged. Small writes are appended to the tail chunk while
 * it has room (bytes already handed to ngtcp2 never move: a chunk is never reallocated), so a
 * stream of small messages needs a chunk per QUIC__CHUNK_MIN bytes, not one per write. A chunk
 * has one of QUIC__CHUNK_CLASSES sizes, header included (a write of up to 64 KiB less the header
 * takes the smallest that holds it, so a chunk may be up to twice the write) and spent ones are
 * kept by the endpoint for reuse, up to QUIC__CHUNK_POOL_CLASS bytes per class, so large chunks
 * never crowd out small ones (quic__chunk_new): a node fanning batches of several KiB out to
 * many connections allocates nothing in the steady state. */
typedef struct qchunk {
    struct qchunk *next;
    uint64_t off; /* stream offset of data[0] */
    size_t len;
    size_t cap; /* bytes data[] can hold */
    uint8_t data[];
} qchunk;

typedef struct quic_stream {
    int64_t id;
    struct quic_stream *next;  /* conn->streams */
    struct quic_stream *snext; /* conn->send list */
    qchunk *head, *tail, *cur; /* cur: chunk holding the first unsent byte */
    uint64_t acked;            /* prefix acknowledged by the peer */
    uint64_t sent;             /* prefix handed to ngtcp2 */
    uint64_t written;          /* total queued by the application */
    uint64_t blocked_round;    /* flow-control blocked in this write round */
    bool in_send, fin_queued, fin_sent, reset, reset_notified, want_writable;
} quic_stream;

struct quic_conn {
    quic_endpoint *ep;
    ngtcp2_conn *conn;
    gnutls_session_t tls;
    ngtcp2_crypto_conn_ref ref;
    cid_entry *cids;   /* our CIDs routed to this connection */
    cid_entry *tokens; /* the peer's stateless reset tokens for the CIDs we send to */
    quic_stream *streams;
    quic_stream *send_head, *send_tail;
    quic_conn *dnext, *dprev; /* dirty list */
    quic_conn *anext, *aprev; /* all connections */
    size_t heap_idx;          /* SIZE_MAX when not in the heap */
    uint64_t expiry;
    uint64_t close_deadline;
    uint64_t round;
    size_t max_pkt; /* largest datagram written for it: QUIC__MAX_PKT, more to loopback */
    void *user;
    uint8_t *close_pkt; /* CONNECTION_CLOSE packet, resent in the closing period */
    size_t close_pktlen;
    uint32_t close_rx;
    char *close_reason; /* requested by quic_conn_close */
    char *fail_reason;  /* why this side failed the handshake/connection */
    uint64_t close_code;
    int fail_err;
    uint8_t fail_alert;
    uint8_t state;
    bool server, visible, connected_pending, close_req, dirty, has_expected, peer_id_set;
    bool got_packet;
    bool half_open;   /* counted in ep->half_open */
    bool got_reset;   /* the peer answered with a stateless reset */
    bool tls_done;    /* handshake confirmed: the GnuTLS session can go */
    bool own_aead;    /* 1-RTT packets are protected by aesgcm.c (quic__install_1rtt) */
    bool aead_chosen; /* own_aead is decided (at the first 1-RTT secret, for both directions) */
    bool expiry_pass; /* being serviced after ngtcp2_conn_handle_expiry (quic__on_timer) */
    int busy;         /* inside ngtcp2 or an application callback of conn_service */
    uint8_t expected[IDENTITY_ID_LEN];
    uint8_t peer_id[IDENTITY_ID_LEN];
};

/* A datagram the socket did not take (EAGAIN): sent, in order, when it drains. */
typedef struct send_req {
    struct send_req *next;
    struct sockaddr_storage to;
    size_t len;
    uint8_t data[];
} send_req;

struct quic_endpoint {
    uv_loop_t *loop;
    uv_poll_t poll; /* the socket: readable always, writable while txq holds datagrams */
    int fd;         /* the UDP socket (ours; closed right after the poll handle) */
    int poll_events;
    uv_timer_t timer;
    uv_idle_t idle;
    uv_check_t check; /* services the dirty list after the poll (packets just read) */
    quic_config cfg;
    char *bind_host;
    char *alpn;
    size_t alpnlen;
    gnutls_certificate_credentials_t cred;
    gnutls_priority_t prio;
    struct sockaddr_storage local;
    ngtcp2_socklen locallen;
    uint64_t hash_k0, hash_k1;
    uint8_t reset_secret[32]; /* derived from the identity key: stable across restarts */
    uint8_t token_secret[32]; /* random: Retry tokens outlive no endpoint */
    uint64_t reset_window;    /* start (ms) of the current stateless-reset budget */
    uint32_t reset_count;
    qtable cidt; /* our connection IDs -> connection */
    qtable tokt; /* peers' stateless reset tokens -> connection */
    quic_conn **heap;
    size_t heap_len, heap_cap;
    uint64_t timer_at; /* expiry the uv timer is armed for, UINT64_MAX: stopped */
    quic_conn *dhead, *dtail;
    quic_conn *all;
    size_t nconns;
    size_t half_open;     /* incoming connections still in their handshake */
    size_t sends_pending; /* datagrams in txq */
    send_req *txq_head, *txq_tail;
    int handles;
    bool closing, idle_on;
    bool no_gso; /* the kernel refused UDP_SEGMENT once: plain datagrams from then on */
    bool gro;    /* the socket has UDP_GRO: a received buffer may hold several datagrams */
    quic_endpoint_stats stats;
    struct qchunk *chunk_free[QUIC__CHUNK_CLASSES]; /* spent chunks by class, for any stream */
    size_t chunk_pool[QUIC__CHUNK_CLASSES];         /* bytes held in each chunk_free list */
    ngtcp2_callbacks cb_client, cb_server;
    ngtcp2_mem mem; /* counts what ngtcp2 holds (stats.ngtcp2_bytes) */
    uint8_t sendbuf[QUIC__MAX_PKT];
    uint8_t *recvbuf; /* QUIC__RECV_CHUNKS * QUIC__RECV_BUF, one recvmmsg(2) */
    /* datagrams written and not yet handed to the kernel (quic__tx_flush) */
    size_t ntx;
    size_t txused;                /* bytes of txbuf the batch holds */
    size_t txoff[QUIC__TX_BATCH]; /* where each datagram starts in txbuf */
    size_t txlen[QUIC__TX_BATCH];
    struct sockaddr_storage txaddr[QUIC__TX_BATCH];
    uint8_t txbuf[QUIC__TX_BYTES];
};

/* ---- errors and logging ------------------------------------------------------------------ */

const char *quic_strerror(int err)
{
    switch (err) {
    case QUIC_OK: return "ok";
    case QUIC_EINVAL: return "invalid argument";
    case QUIC_ENOMEM: return "out of memory";
    case QUIC_EIO: return "UDP socket error";
    case QUIC_ETLS: return "TLS handshake failed";
    case QUIC_EPEERID: return "peer node ID mismatch";
    case QUIC_EALPN: return "ALPN mismatch";
    case QUIC_ETIMEDOUT: return "handshake timed out";
    case QUIC_EIDLE: return "idle timeout";
    case QUIC_EAGAIN: return "stream send queue full";
    case QUIC_ESTREAM: return "no such stream or stream closed";
    case QUIC_ESTREAMLIMIT: return "stream limit reached";
    case QUIC_ECLOSED: return "connection closing";
    case QUIC_EPROTO: return "QUIC protocol error";
    case QUIC_ELIMIT: return "too many connections";
    case QUIC_EADDR: return "bad address";
    case QUIC_EREFUSED: return "connection refused by peer";
    default: return "unknown error";
    }
}

__attribute__((format(printf, 3, 4))) static void quic__log(const quic_endpoint *ep, int level,
                                                            const char *fmt, ...)
{
    if (!ep->cfg.log || level > ep->cfg.log_level)
        return;
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    ep->cfg.log(ep->cfg.ctx, level, msg);
}

static uint64_t quic__now(void)
{
    return uv_hrtime();
}

static void quic__addr_str(const struct sockaddr *sa, char *buf, size_t size)
{
    char host[64] = "?";
    unsigned port = 0;
    if (sa && sa->sa_family == AF_INET) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)sa;
        uv_ip4_name(in, host, sizeof host);
        port = ntohs(in->sin_port);
        snprintf(buf, size, "%s:%u", host, port);
    } else if (sa && sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)sa;
        uv_ip6_name(in6, host, sizeof host);
        port = ntohs(in6->sin6_port);
        snprintf(buf, size, "[%s]:%u", host, port);
    } else {
        snprintf(buf, size, "?");
    }
}

/* Copies at most QUIC_MAX_REASON bytes, replacing anything not printable ASCII. */
static char *quic__reason_dup(const uint8_t *r, size_t len)
{
    if (len > QUIC_MAX_REASON)
        len = QUIC_MAX_REASON;
    char *s = malloc(len + 1);
    if (!s)
        return NULL;
    for (size_t i = 0; i < len; i++)
        s[i] = (r[i] >= 0x20 && r[i] < 0x7f) ? (char)r[i] : '?';
    s[len] = '\0';
    return s;
}

/* Records why this side fails the connection (first reason wins). */
__attribute__((format(printf, 4, 5))) static void quic__fail(quic_conn *c, int err, uint8_t alert,
                                                             const char *fmt, ...)
{
    if (c->fail_err)
        return;
    char msg[QUIC_MAX_REASON + 1];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    c->fail_err = err;
    c->fail_alert = alert;
    free(c->fail_reason);
    c->fail_reason = strdup(msg);
}

/* ---- keyed tables: connection IDs and peers' stateless reset tokens --------------------- */

static size_t quic__bucket(const quic_endpoint *ep, const qtable *t, const uint8_t *key, size_t len)
{
    /* keyed (SipHash-1-3 under the endpoint's own key): a client chooses the connection IDs of
     * its Initials, so it must not be able to aim them at one bucket */
    return (size_t)(hmap_siphash13(ep->hash_k0, ep->hash_k1, key, len) & (t->nbuckets - 1));
}

static quic_conn *quic__tbl_find(const quic_endpoint *ep, const qtable *t, const uint8_t *key,
                                 size_t len)
{
    for (cid_entry *e = t->buckets[quic__bucket(ep, t, key, len)]; e; e = e->bnext)
        if (e->len == len && memcmp(e->data, key, len) == 0)
            return e->conn;
    return NULL;
}

static void quic__tbl_grow(const quic_endpoint *ep, qtable *t)
{
    size_t n = t->nbuckets * 2;
    cid_entry **nb = calloc(n, sizeof *nb);
    if (!nb)
        return; /* keep the old table: longer chains, still correct */
    cid_entry **old = t->buckets;
    size_t oldn = t->nbuckets;
    t->buckets = nb;
    t->nbuckets = n;
    for (size_t i = 0; i < oldn; i++) {
        cid_entry *e = old[i];
        while (e) {
            cid_entry *next = e->bnext;
            size_t b = quic__bucket(ep, t, e->data, e->len);
            e->bnext = nb[b];
            nb[b] = e;
            e = next;
        }
    }
    free(old);
}

/* Maps key to c (and lists the entry on *list, c's own). QUIC_EINVAL when the key is already
 * mapped (to anyone). */
static int quic__tbl_add(const quic_endpoint *ep, qtable *t, cid_entry **list, quic_conn *c,
                         const uint8_t *key, size_t len)
{
    if (len == 0 || len > NGTCP2_MAX_CIDLEN || quic__tbl_find(ep, t, key, len))
        return QUIC_EINVAL;
    cid_entry *e = malloc(sizeof *e);
    if (!e)
        return QUIC_ENOMEM;
    e->conn = c;
    e->len = (uint8_t)len;
    memcpy(e->data, key, len);
    size_t b = quic__bucket(ep, t, key, len);
    e->bnext = t->buckets[b];
    t->buckets[b] = e;
    e->cnext = *list;
    *list = e;
    t->n++;
    if (t->n > t->nbuckets)
        quic__tbl_grow(ep, t);
    return QUIC_OK;
}

static void quic__tbl_unlink(const quic_endpoint *ep, qtable *t, cid_entry *e)
{
    cid_entry **pp = &t->buckets[quic__bucket(ep, t, e->data, e->len)];
    while (*pp && *pp != e)
        pp = &(*pp)->bnext;
    if (*pp)
        *pp = e->bnext;
    t->n--;
}

static void quic__tbl_remove(const quic_endpoint *ep, qtable *t, cid_entry **list,
                             const uint8_t *key, size_t len)
{
    for (cid_entry **pp = list; *pp; pp = &(*pp)->cnext) {
        cid_entry *e = *pp;
        if (e->len == len && memcmp(e->data, key, len) == 0) {
            *pp = e->cnext;
            quic__tbl_unlink(ep, t, e);
            free(e);
            return;
        }
    }
}

static void quic__tbl_remove_all(const quic_endpoint *ep, qtable *t, cid_entry **list)
{
    while (*list) {
        cid_entry *e = *list;
        *list = e->cnext;
        quic__tbl_unlink(ep, t, e);
        free(e);
    }
}

static quic_conn *quic__cid_find(const quic_endpoint *ep, const uint8_t *cid, size_t len)
{
    return quic__tbl_find(ep, &ep->cidt, cid, len);
}

static int quic__cid_add(quic_conn *c, const uint8_t *cid, size_t len)
{
    return quic__tbl_add(c->ep, &c->ep->cidt, &c->cids, c, cid, len);
}

static void quic__cid_remove(quic_conn *c, const uint8_t *cid, size_t len)
{
    quic__tbl_remove(c->ep, &c->ep->cidt, &c->cids, cid, len);
}

/* ---- timer heap -------------------------------------------------------------------------- */

static void quic__heap_swap(quic_endpoint *ep, size_t a, size_t b)
{
    quic_conn *t = ep->heap[a];
    ep->heap[a] = ep->heap[b];
    ep->heap[b] = t;
    ep->heap[a]->heap_idx = a;
    ep->heap[b]->heap_idx = b;
}

static void quic__heap_up(quic_endpoint *ep, size_t i)
{
    while (i > 0) {
        size_t p = (i - 1) / 2;
        if (ep->heap[p]->expiry <= ep->heap[i]->expiry)
            break;
        quic__heap_swap(ep, i, p);
        i = p;
    }
}

static void quic__heap_down(quic_endpoint *ep, size_t i)
{
    for (;;) {
        size_t l = 2 * i + 1, r = l + 1, m = i;
        if (l < ep->heap_len && ep->heap[l]->expiry < ep->heap[m]->expiry)
            m = l;
        if (r < ep->heap_len && ep->heap[r]->expiry < ep->heap[m]->expiry)
            m = r;
        if (m == i)
            return;
        quic__heap_swap(ep, i, m);
        i = m;
    }
}

static void quic__heap_remove(quic_endpoint *ep, quic_conn *c)
{
    size_t i = c->heap_idx;
    if (i == SIZE_MAX)
        return;
    c->heap_idx = SIZE_MAX;
    ep->heap_len--;
    if (i == ep->heap_len)
        return;
    ep->heap[i] = ep->heap[ep->heap_len];
    ep->heap[i]->heap_idx = i;
    quic__heap_up(ep, i);
    quic__heap_down(ep, ep->heap[i]->heap_idx);
}

/* Sets c's deadline (UINT64_MAX: none). On allocation failure the connection keeps no timer
 * and is failed by the caller's next service run (see quic__conn_schedule). */
static int quic__heap_set(quic_endpoint *ep, quic_conn *c, uint64_t at)
{
    if (at == UINT64_MAX) {
        quic__heap_remove(ep, c);
        return QUIC_OK;
    }
    if (c->heap_idx == SIZE_MAX) {
        if (ep->heap_len == ep->heap_cap) {
            size_t n = ep->heap_cap ? ep->heap_cap * 2 : 64;
            quic_conn **h = realloc(ep->heap, n * sizeof *h);
            if (!h)
                return QUIC_ENOMEM;
            ep->heap = h;
            ep->heap_cap = n;
        }
        c->expiry = at;
        c->heap_idx = ep->heap_len;
        ep->heap[ep->heap_len++] = c;
        quic__heap_up(ep, c->heap_idx);
        return QUIC_OK;
    }
    c->expiry = at;
    quic__heap_up(ep, c->heap_idx);
    quic__heap_down(ep, c->heap_idx);
    return QUIC_OK;
}

static void quic__on_timer(uv_timer_t *t);

static void quic__timer_rearm(quic_endpoint *ep)
{
    if (ep->closing)
        return;
    uint64_t at = ep->heap_len ? ep->heap[0]->expiry : UINT64_MAX;
    if (at == ep->timer_at)
        return;
    ep->timer_at = at;
    if (at == UINT64_MAX) {
        uv_timer_stop(&ep->timer);
        return;
    }
    uint64_t now = quic__now();
    uint64_t ms = at > now ? (at - now + 999999u) / 1000000u : 0;
    uv_timer_start(&ep->timer, quic__on_timer, ms, 0);
}

/* ---- dirty list (serviced by the idle handle) -------------------------------------------- */

static void quic__on_idle(uv_idle_t *h);
static void quic__on_check(uv_check_t *h);

static void quic__idle_kick(quic_endpoint *ep)
{
    if (!ep->idle_on && ep->dhead && ep->sends_pending == 0 && !ep->closing) {
        uv_idle_start(&ep->idle, quic__on_idle);
        uv_check_start(&ep->check, quic__on_check);
        ep->idle_on = true;
    }
}

static void quic__mark_dirty(quic_conn *c)
{
    quic_endpoint *ep = c->ep;
    if (!c->dirty) {
        c->dirty = true;
        c->dnext = NULL;
        c->dprev = ep->dtail;
        if (ep->dtail)
            ep->dtail->dnext = c;
        else
            ep->dhead = c;
        ep->dtail = c;
    }
    quic__idle_kick(ep);
}

static void quic__unmark_dirty(quic_conn *c)
{
    quic_endpoint *ep = c->ep;
    if (!c->dirty)
        return;
    if (c->dprev)
        c->dprev->dnext = c->dnext;
    else
        ep->dhead = c->dnext;
    if (c->dnext)
        c->dnext->dprev = c->dprev;
    else
        ep->dtail = c->dprev;
    c->dirty = false;
    c->dnext = c->dprev = NULL;
}

/* ---- UDP output -------------------------------------------------------------------------- */

static socklen_t quic__sa_len(const struct sockaddr *sa);
static void quic__on_poll(uv_poll_t *h, int status, int events);

/* Watches the socket for reading, and for writing while datagrams wait in txq. */
static void quic__poll_update(quic_endpoint *ep)
{
    if (ep->closing)
        return;
    int ev = UV_READABLE | (ep->txq_head ? UV_WRITABLE : 0);
    if (ev != ep->poll_events && uv_poll_start(&ep->poll, ev, quic__on_poll) == 0)
        ep->poll_events = ev;
}

/* Queues one datagram (a copy) behind earlier ones: the socket is full. The endpoint writes
 * nothing new until the queue is empty again (sends_pending). */
static void quic__send_queued(quic_endpoint *ep, const struct sockaddr *to, const uint8_t *buf,
                              size_t len)
{
    if (ep->closing)
        return; /* the socket is gone: dropped */
    send_req *r = malloc(sizeof *r + len);
    if (!r)
        return; /* dropped: QUIC retransmits */
    r->next = NULL;
    memcpy(&r->to, to, quic__sa_len(to));
    r->len = len;
    memcpy(r->data, buf, len);
    if (ep->txq_tail)
        ep->txq_tail->next = r;
    else
        ep->txq_head = r;
    ep->txq_tail = r;
    ep->sends_pending++;
    quic__poll_update(ep);
}

/* The socket is writable: sends the queued datagrams in order until it is full again. Once
 * the queue is empty the endpoint writes again (the dirty list is serviced). */
static void quic__txq_drain(quic_endpoint *ep)
{
    while (ep->txq_head) {
        send_req *r = ep->txq_head;
        ssize_t n = sendto(ep->fd, r->data, r->len, 0, (const struct sockaddr *)&r->to,
                           quic__sa_len((const struct sockaddr *)&r->to));
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            break;
        if (n < 0)
            quic__log(ep, QUIC_LOG_DEBUG, "quic: send: %s", strerror(errno)); /* lost */
        ep->txq_head = r->next;
        if (!ep->txq_head)
            ep->txq_tail = NULL;
        ep->sends_pending--;
        free(r);
    }
    quic__poll_update(ep);
    quic__idle_kick(ep);
}

static void quic__txq_free(quic_endpoint *ep)
{
    while (ep->txq_head) {
        send_req *r = ep->txq_head;
        ep->txq_head = r->next;
        free(r);
    }
    ep->txq_tail = NULL;
    ep->sends_pending = 0;
}

static socklen_t quic__sa_len(const struct sockaddr *sa)
{
    return sa->sa_family == AF_INET6 ? sizeof(struct sockaddr_in6) : sizeof(struct sockaddr_in);
}

/* Whether `sa` is a loopback address (127.0.0.0/8, ::1, ::ffff:127.0.0.0/104). */
static bool quic__is_loopback(const struct sockaddr *sa)
{
    if (sa->sa_family == AF_INET)
        return (ntohl(((const struct sockaddr_in *)sa)->sin_addr.s_addr) >> 24) == 127;
    if (sa->sa_family != AF_INET6)
        return false;
    const struct in6_addr *a = &((const struct sockaddr_in6 *)sa)->sin6_addr;
    return IN6_IS_ADDR_LOOPBACK(a) || (IN6_IS_ADDR_V4MAPPED(a) && a->s6_addr[12] == 127);
}

/* Whether datagram j may join the UDP GSO message that starts at datagram `first`: same
 * destination, every segment but the last exactly as long as the first, and the message
 * within UDP's 64 KiB. */
static bool quic__gso_joins(const quic_endpoint *ep, size_t first, size_t j)
{
    return j - first < QUIC__GSO_MAX && ep->txlen[j - 1] == ep->txlen[first] &&
           ep->txlen[j] <= ep->txlen[first] &&
           (j - first + 1) * ep->txlen[first] <= QUIC__UDP_MAX &&
           memcmp(&ep->txaddr[j], &ep->txaddr[first],
                  quic__sa_len((const struct sockaddr *)&ep->txaddr[first])) == 0;
}

/* Hands the batched datagrams to the kernel: one sendmmsg(2) for the batch, where runs of
 * equal-sized datagrams to one peer go as one UDP GSO message (UDP_SEGMENT: the kernel cuts
 * it into the same datagrams, at a fraction of the per-datagram cost). What the socket does
 * not take (EAGAIN) is queued (txq) and sent when the socket drains (the endpoint stops
 * writing until then). Any other error drops that message (QUIC retransmits); a GSO
 * message the kernel refuses turns GSO off for the endpoint and is sent again without. */
static void quic__tx_flush(quic_endpoint *ep)
{
    size_t n = ep->ntx, i = 0; /* i: first datagram not yet sent */
    ep->ntx = 0;
    ep->txused = 0;
    int fd = ep->fd;
    if (n > 0 && ep->sends_pending == 0 && fd >= 0) {
        struct mmsghdr mm[QUIC__TX_BATCH];
        struct iovec iov[QUIC__TX_BATCH];
        size_t first[QUIC__TX_BATCH]; /* message -> its first datagram */
        union {
            char buf[CMSG_SPACE(sizeof(uint16_t))];
            struct cmsghdr align;
        } ctl[QUIC__TX_BATCH];
        for (;;) {
            size_t nm = 0;
            for (size_t j = i; j < n;) {
                size_t k = j + 1;
                while (!ep->no_gso && k < n && quic__gso_joins(ep, j, k))
                    k++;
                memset(&mm[nm], 0, sizeof mm[nm]); /* only the messages used: a batch of one is
                                                      the common case */
                struct msghdr *h = &mm[nm].msg_hdr;
                for (size_t x = j; x < k; x++) {
                    iov[x].iov_base = ep->txbuf + ep->txoff[x];
                    iov[x].iov_len = ep->txlen[x];
                }
                h->msg_name = &ep->txaddr[j];
                h->msg_namelen = quic__sa_len((const struct sockaddr *)&ep->txaddr[j]);
                h->msg_iov = &iov[j];
                h->msg_iovlen = k - j;
                if (k - j > 1) {
                    memset(&ctl[nm], 0, sizeof ctl[nm]);
                    h->msg_control = ctl[nm].buf;
                    h->msg_controllen = sizeof ctl[nm].buf;
                    struct cmsghdr *cm = CMSG_FIRSTHDR(h);
                    cm->cmsg_level = SOL_UDP;
                    cm->cmsg_type = UDP_SEGMENT;
                    cm->cmsg_len = CMSG_LEN(sizeof(uint16_t));
                    uint16_t seg = (uint16_t)ep->txlen[j];
                    memcpy(CMSG_DATA(cm), &seg, sizeof seg);
                }
                first[nm++] = j;
                j = k;
            }
            size_t m = 0; /* messages sent */
            bool again = false;
            while (m < nm) {
                int r = sendmmsg(fd, mm + m, (unsigned)(nm - m), 0);
                if (r > 0) {
                    for (int x = 0; x < r; x++)
                        if (mm[m + (size_t)x].msg_hdr.msg_iovlen > 1)
                            ep->stats.gso_batches++;
                    m += (size_t)r;
                    continue;
                }
                if (r < 0 && errno == EINTR)
                    continue;
                if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
                    break;
                if (mm[m].msg_hdr.msg_iovlen > 1 &&
                    (errno == EINVAL || errno == EIO || errno == EOPNOTSUPP)) {
                    quic__log(ep, QUIC_LOG_DEBUG, "quic: UDP GSO refused (%s): turned off",
                              strerror(errno));
                    ep->no_gso = true;
                    again = true; /* the rest again, one datagram per message */
                    break;
                }
                quic__log(ep, QUIC_LOG_DEBUG, "quic: send: %s", strerror(errno));
                m++; /* lost; QUIC retransmits */
            }
            i = m < nm ? first[m] : n;
            if (!again)
                break;
        }
    }
    for (; i < n; i++)
        quic__send_queued(ep, (const struct sockaddr *)&ep->txaddr[i], ep->txbuf + ep->txoff[i],
                          ep->txlen[i]);
}

/* The slot the next datagram, at most `room` bytes (<= QUIC__LOOP_PKT), is written into
 * (flushes a full batch first). */
static uint8_t *quic__tx_slot(quic_endpoint *ep, size_t room)
{
    if (ep->ntx == QUIC__TX_BATCH || ep->txused + room > sizeof ep->txbuf)
        quic__tx_flush(ep);
    return ep->txbuf + ep->txused;
}

/* Commits the datagram written into quic__tx_slot. */
static void quic__tx_commit(quic_endpoint *ep, const struct sockaddr *to, size_t len)
{
    ep->stats.packets_out++;
    memcpy(&ep->txaddr[ep->ntx], to, quic__sa_len(to));
    if (len > ep->stats.max_datagram_out)
        ep->stats.max_datagram_out = len;
    ep->txoff[ep->ntx] = ep->txused;
    ep->txlen[ep->ntx] = len;
    ep->txused += len;
    ep->ntx++;
}

/* Sends one datagram: into the batch, which the callback that caused it flushes before it
 * returns to the loop. */
static void quic__send(quic_endpoint *ep, const struct sockaddr *to, const uint8_t *buf, size_t len)
{
    uint8_t *slot = quic__tx_slot(ep, len);
    memcpy(slot, buf, len);
    quic__tx_commit(ep, to, len);
}

/* ---- streams ----------------------------------------------------------------------------- */

static quic_stream *quic__stream_find(const quic_conn *c, int64_t sid)
{
    for (quic_stream *s = c->streams; s; s = s->next)
        if (s->id == sid)
            return s;
    return NULL;
}

static quic_stream *quic__stream_new(quic_conn *c, int64_t sid)
{
    quic_stream *s = calloc(1, sizeof *s);
    if (!s)
        return NULL;
    s->id = sid;
    s->next = c->streams;
    c->streams = s;
    return s;
}

static bool quic__stream_has_output(const quic_stream *s)
{
    return !s->reset && (s->sent < s->written || (s->fin_queued && !s->fin_sent));
}

static void quic__send_list_add(quic_conn *c, quic_stream *s)
{
    if (s->in_send)
        return;
    s->in_send = true;
    s->snext = NULL;
    if (c->send_tail)
        c->send_tail->snext = s;
    else
        c->send_head = s;
    c->send_tail = s;
}

static void quic__send_list_remove(quic_conn *c, quic_stream *s)
{
    if (!s->in_send)
        return;
    quic_stream *prev = NULL;
    for (quic_stream *x = c->send_head; x; prev = x, x = x->snext) {
        if (x != s)
            continue;
        if (prev)
            prev->snext = s->snext;
        else
            c->send_head = s->snext;
        if (c->send_tail == s)
            c->send_tail = prev;
        break;
    }
    s->in_send = false;
    s->snext = NULL;
}

/* The payload room of a chunk of class cls (its size, QUIC__CHUNK_MIN << cls, includes the
 * header). */
static size_t quic__chunk_room(int cls)
{
    return ((size_t)QUIC__CHUNK_MIN << cls) - sizeof(qchunk);
}

/* The smallest class whose chunk holds len bytes; -1: larger than every class. */
static int quic__chunk_class(size_t len)
{
    for (int cls = 0; cls < QUIC__CHUNK_CLASSES; cls++) {
        if (len <= quic__chunk_room(cls))
            return cls;
    }
    return -1;
}

/* A chunk that holds at least len bytes: a spent one of the class when there is one (writes
 * up to the largest class allocate nothing in the steady state), else from the heap (a write
 * larger than every class gets a chunk of its own size). NULL: no memory. */
static qchunk *quic__chunk_new(quic_endpoint *ep, size_t len)
{
    int cls = quic__chunk_class(len);
    qchunk *k;
    if (cls >= 0 && ep->chunk_free[cls]) {
        k = ep->chunk_free[cls];
        ep->chunk_free[cls] = k->next;
        ep->chunk_pool[cls] -= (size_t)QUIC__CHUNK_MIN << cls;
        return k;
    }
    size_t cap = cls >= 0 ? quic__chunk_room(cls) : len;
    k = malloc(sizeof *k + cap);
    if (k)
        k->cap = cap;
    return k;
}

/* Gives a chunk back: a class chunk is kept for reuse while its class holds at most
 * QUIC__CHUNK_POOL_CLASS bytes; the rest are freed. */
static void quic__chunk_release(quic_endpoint *ep, qchunk *k)
{
    int cls = quic__chunk_class(k->cap);
    size_t size = (size_t)QUIC__CHUNK_MIN << (cls >= 0 ? cls : 0);
    if (cls >= 0 && k->cap == quic__chunk_room(cls) &&
        ep->chunk_pool[cls] + size <= QUIC__CHUNK_POOL_CLASS) {
        k->next = ep->chunk_free[cls];
        ep->chunk_free[cls] = k;
        ep->chunk_pool[cls] += size;
        return;
    }
    free(k);
}

static void quic__stream_free(quic_conn *c, quic_stream *s)
{
    quic__send_list_remove(c, s);
    for (quic_stream **pp = &c->streams; *pp; pp = &(*pp)->next) {
        if (*pp == s) {
            *pp = s->next;
            break;
        }
    }
    qchunk *k = s->head;
    while (k) {
        qchunk *next = k->next;
        quic__chunk_release(c->ep, k);
        k = next;
    }
    free(s);
}

static void quic__streams_free_all(quic_conn *c)
{
    while (c->streams)
        quic__stream_free(c, c->streams);
}

/* Fills vecs from the first unsent byte; returns the count and the total in *total. */
static size_t quic__stream_vecs(const quic_stream *s, ngtcp2_vec *v, size_t *total)
{
    size_t n = 0;
    *total = 0;
    uint64_t pos = s->sent;
    for (const qchunk *k = s->cur; k && n < QUIC__MAX_VECS; k = k->next) {
        size_t skip = pos > k->off ? (size_t)(pos - k->off) : 0;
        if (skip >= k->len)
            continue;
        v[n].base = (uint8_t *)k->data + skip;
        v[n].len = k->len - skip;
        *total += v[n].len;
        n++;
    }
    return n;
}

static void quic__stream_advance(quic_stream *s, size_t n)
{
    s->sent += n;
    while (s->cur && s->sent >= s->cur->off + s->cur->len)
        s->cur = s->cur->next;
}

/* ---- connection lifecycle ---------------------------------------------------------------- */

/* Every state change goes through here: it keeps the count of incoming handshakes in progress
 * (what decides whether new clients must first prove their address with a Retry). */
static void quic__set_state(quic_conn *c, uint8_t st)
{
    if (c->half_open && st != ST_HANDSHAKE) {
        c->half_open = false;
        c->ep->half_open--;
    }
    c->state = st;
}

static void quic__conn_free(quic_conn *c)
{
    quic_endpoint *ep = c->ep;
    quic__set_state(c, ST_DEAD);
    quic__heap_remove(ep, c);
    quic__unmark_dirty(c);
    if (c->aprev)
        c->aprev->anext = c->anext;
    else
        ep->all = c->anext;
    if (c->anext)
        c->anext->aprev = c->aprev;
    ep->nconns--;
    quic__tbl_remove_all(ep, &ep->cidt, &c->cids);
    quic__tbl_remove_all(ep, &ep->tokt, &c->tokens);
    quic__streams_free_all(c);
    if (c->conn)
        ngtcp2_conn_del(c->conn);
    if (c->tls)
        gnutls_deinit(c->tls);
    free(c->close_pkt);
    free(c->close_reason);
    free(c->fail_reason);
    free(c);
}

/* Tells the application the connection is over (once, and only if it ever saw it). */
static void quic__report_closed(quic_conn *c, int err, bool remote, bool app, uint64_t code,
                                const char *reason)
{
    quic_endpoint *ep = c->ep;
    char addr[80];
    quic__addr_str(quic_conn_peer_addr(c), addr, sizeof addr);
    if (!c->visible) {
        /* an incoming connection the application never saw: its handshake failed */
        ep->stats.handshakes_failed++;
        quic__log(ep, QUIC_LOG_WARN, "quic: %s handshake with %s failed: %s%s%s (code 0x%llx)",
                  c->server ? "incoming" : "outgoing", addr, quic_strerror(err),
                  reason && *reason ? ": " : "", reason ? reason : "", (unsigned long long)code);
        return;
    }
    c->visible = false;
    quic__log(ep, err ? QUIC_LOG_INFO : QUIC_LOG_DEBUG,
              "quic: connection with %s closed by %s: %s, %s code 0x%llx%s%s", addr,
              remote ? "peer" : "us", quic_strerror(err), app ? "application" : "transport",
              (unsigned long long)code, reason && *reason ? ", reason: " : "",
              reason ? reason : "");
    if (ep->cfg.cb.on_closed) {
        quic_close_info info = {.error = err,
                                .remote = remote,
                                .app = app,
                                .code = code,
                                .reason = reason ? reason : ""};
        c->busy++;
        ep->cfg.cb.on_closed(c, &info, ep->cfg.ctx);
        c->busy--;
    }
}

/* A handshake failure that the client saw before the server announced the connection, or
 * any failure, on the client side: a connection created by quic_connect is visible. */

/* Writes CONNECTION_CLOSE, keeps it for the closing period (3 PTO) and drops the streams. */
static void quic__conn_enter_closing(quic_conn *c, const ngtcp2_connection_close_error *ccerr)
{
    quic_endpoint *ep = c->ep;
    uint64_t now = quic__now();
    ngtcp2_path_storage ps;
    ngtcp2_path_storage_zero(&ps);
    ngtcp2_ssize n = ngtcp2_conn_write_connection_close(c->conn, &ps.path, NULL, ep->sendbuf,
                                                        sizeof ep->sendbuf, ccerr, now);
    if (n > 0) {
        quic__send(ep, (const struct sockaddr *)ps.path.remote.addr, ep->sendbuf, (size_t)n);
        c->close_pkt = malloc((size_t)n);
        if (c->close_pkt) {
            memcpy(c->close_pkt, ep->sendbuf, (size_t)n);
            c->close_pktlen = (size_t)n;
        }
    }
    quic__set_state(c, ST_CLOSING);
    c->close_deadline = now + 3 * ngtcp2_conn_get_pto(c->conn);
    quic__streams_free_all(c);
}

static int quic__alert_err(uint8_t alert, const char *reason)
{
    if (alert == QUIC__ALERT_NO_APPLICATION_PROTOCOL)
        return QUIC_EALPN;
    if (reason && strncmp(reason, QUIC__PEERID_PREFIX, strlen(QUIC__PEERID_PREFIX)) == 0)
        return QUIC_EPEERID;
    return QUIC_ETLS;
}

/* The peer closed (we are now draining). */
static void quic__conn_remote_closed(quic_conn *c)
{
    ngtcp2_connection_close_error ccerr;
    ngtcp2_conn_get_connection_close_error(c->conn, &ccerr);
    char *reason = quic__reason_dup(ccerr.reason ? ccerr.reason : (const uint8_t *)"",
                                    ccerr.reason ? ccerr.reasonlen : 0);
    int err = QUIC_OK;
    bool app = ccerr.type == NGTCP2_CONNECTION_CLOSE_ERROR_CODE_TYPE_APPLICATION;
    if (c->got_reset) {
        free(reason);
        reason = strdup("stateless reset: the peer no longer knows this connection");
        err = QUIC_EREFUSED;
        app = false;
    } else if (!app && ccerr.error_code != NGTCP2_NO_ERROR) {
        if (ccerr.error_code >= NGTCP2_CRYPTO_ERROR &&
            ccerr.error_code <= NGTCP2_CRYPTO_ERROR + 0xff)
            err = quic__alert_err((uint8_t)(ccerr.error_code & 0xff), reason);
        else
            err = QUIC_EREFUSED;
    } else if (!app && c->state == ST_HANDSHAKE) {
        err = QUIC_EREFUSED;
    }
    quic__set_state(c, ST_DRAINING);
    c->close_deadline = quic__now() + 3 * ngtcp2_conn_get_pto(c->conn);
    quic__streams_free_all(c);
    quic__report_closed(c, err, true, app, ccerr.error_code, reason);
    free(reason);
}

/* This side fails the connection because of ngtcp2 error rv (from read or expiry). */
static void quic__conn_fail(quic_conn *c, int rv)
{
    quic_endpoint *ep = c->ep;
    switch (rv) {
    case NGTCP2_ERR_DRAINING: quic__conn_remote_closed(c); return;
    case NGTCP2_ERR_IDLE_CLOSE:
        quic__set_state(c, ST_DEAD);
        quic__report_closed(c, QUIC_EIDLE, false, false, 0, "idle timeout");
        return;
    case NGTCP2_ERR_HANDSHAKE_TIMEOUT:
        quic__set_state(c, ST_DEAD);
        quic__report_closed(c, QUIC_ETIMEDOUT, false, false, 0, "handshake timeout");
        return;
    case NGTCP2_ERR_DROP_CONN:
    case NGTCP2_ERR_RETRY:
        quic__set_state(c, ST_DEAD);
        quic__report_closed(c, QUIC_EPROTO, false, false, 0, ngtcp2_strerror(rv));
        return;
    default: break;
    }
    if (c->server && !c->got_packet && rv != NGTCP2_ERR_CRYPTO && !c->fail_err) {
        /* The very first packet of an incoming connection was not even a readable Initial:
         * nobody is talking to us, so say nothing (no CONNECTION_CLOSE to a possibly spoofed
         * address). A ClientHello that TLS refuses does get its answer. */
        ep->stats.packets_dropped++;
        quic__set_state(c, ST_DEAD);
        return;
    }
    ngtcp2_connection_close_error ccerr;
    uint8_t alert = c->fail_alert;
    if (rv == NGTCP2_ERR_CRYPTO && !alert)
        alert = ngtcp2_conn_get_tls_alert(c->conn);
    if (!c->fail_err)
        quic__fail(c, rv == NGTCP2_ERR_CRYPTO ? QUIC_ETLS : QUIC_EPROTO,
                   rv == NGTCP2_ERR_CRYPTO ? alert : 0, "%s", ngtcp2_strerror(rv));
    const char *reason = c->fail_reason ? c->fail_reason : "";
    if (rv == NGTCP2_ERR_CRYPTO || c->fail_alert) {
        if (!alert)
            alert = QUIC__ALERT_INTERNAL_ERROR;
        ngtcp2_connection_close_error_set_transport_error_tls_alert(
            &ccerr, alert, (const uint8_t *)reason, strlen(reason));
    } else {
        ngtcp2_connection_close_error_set_transport_error_liberr(
            &ccerr, rv, (const uint8_t *)reason, strlen(reason));
    }
    quic__conn_enter_closing(c, &ccerr);
    quic__report_closed(c, c->fail_err, false, false, ccerr.error_code, reason);
}

/* ---- writing ----------------------------------------------------------------------------- */

/* Writes as many packets as ngtcp2, congestion control and the socket allow. */
/* The first stream from s on (in send-list order) with data or FIN to write and not blocked
 * by flow control in this round; NULL when there is none. */
static quic_stream *quic__next_sender(const quic_conn *c, quic_stream *s)
{
    while (s && (s->blocked_round == c->round || !quic__stream_has_output(s)))
        s = s->snext;
    return s;
}

static void quic__conn_write(quic_conn *c)
{
    quic_endpoint *ep = c->ep;
    uint64_t now = quic__now();
    ngtcp2_path_storage ps;
    ngtcp2_path_storage_zero(&ps);
    ngtcp2_pkt_info pi;
    c->round++;
    size_t pkts = 0;
    /* Without shaping ngtcp2 pads every datagram that holds an Initial packet to the room it
     * is given, so larger packets (c->max_pkt) wait until the handshake is confirmed; and
     * they go only while the path is still a loopback one (a migrated path is not). */
    size_t room = QUIC__MAX_PKT;
    if (c->max_pkt > QUIC__MAX_PKT && c->tls_done &&
        quic__is_loopback((const struct sockaddr *)ngtcp2_conn_get_path(c->conn)->remote.addr))
        room = c->max_pkt;
    for (;;) {
        if (ep->sends_pending > 0) {
            quic__mark_dirty(c); /* resumes when the socket drains */
            break;
        }
        if (pkts >= QUIC__MAX_PKTS_PER_RUN) {
            quic__mark_dirty(c);
            break;
        }
        quic_stream *s = quic__next_sender(c, c->send_head);
        ngtcp2_vec vec[QUIC__MAX_VECS];
        size_t nvec = 0, total = 0;
        /* MORE asks ngtcp2 to leave the packet open for another stream's frame; with no
         * other stream waiting it would only cost one more call to close the packet. */
        uint32_t flags = s && quic__next_sender(c, s->snext) ? NGTCP2_WRITE_STREAM_FLAG_MORE : 0;
        int64_t sid = -1;
        if (s) {
            sid = s->id;
            nvec = quic__stream_vecs(s, vec, &total);
            if (s->fin_queued && s->sent + total == s->written)
                flags |= NGTCP2_WRITE_STREAM_FLAG_FIN;
        }
        ngtcp2_ssize ndatalen = -1;
        uint8_t *slot = quic__tx_slot(ep, room);
        c->busy++;
        ngtcp2_ssize n = ngtcp2_conn_writev_stream(c->conn, &ps.path, &pi, slot, room, &ndatalen,
                                                   flags, sid, nvec ? vec : NULL, nvec, now);
        c->busy--;
        bool wrote_data = s && ndatalen >= 0;
        if (wrote_data) {
            quic__stream_advance(s, (size_t)ndatalen);
            if ((flags & NGTCP2_WRITE_STREAM_FLAG_FIN) && (size_t)ndatalen == total)
                s->fin_sent = true;
            /* round robin: the stream goes to the back of the line */
            quic__send_list_remove(c, s);
            if (quic__stream_has_output(s))
                quic__send_list_add(c, s);
        }
        if (n < 0) {
            if (n == NGTCP2_ERR_WRITE_MORE)
                continue;
            if (s && (n == NGTCP2_ERR_STREAM_DATA_BLOCKED)) {
                s->blocked_round = c->round;
                continue;
            }
            if (s && (n == NGTCP2_ERR_STREAM_SHUT_WR || n == NGTCP2_ERR_STREAM_NOT_FOUND)) {
                s->reset = true;
                quic__send_list_remove(c, s);
                continue;
            }
            quic__conn_fail(c, (int)n);
            return;
        }
        if (n == 0)
            break;
        quic__tx_commit(ep, (const struct sockaddr *)ps.path.remote.addr, (size_t)n);
        pkts++;
        /* ngtcp2 puts our stream data into a packet only after every pending control frame
         * (ACK, flow control credit, resets, new connection IDs) has gone in. So when this
         * packet took stream data and no stream has more, the next call would write nothing:
         * it is skipped (about 2,000 instructions, 8% of a node's work per RPC leg). Not
         * during the handshake (other packet number spaces) nor in a timer's pass, where
         * ngtcp2 may want a second probe packet. One case can leave frames behind: a
         * retransmission or crypto frame too big for the room left while a few bytes of our
         * data still fit; they go with the next pass, which the peer's ACK of this
         * ack-eliciting packet or our own loss timer makes. */
        if (wrote_data && c->tls_done && !c->expiry_pass &&
            quic__next_sender(c, c->send_head) == NULL)
            break;
    }
    quic__tx_flush(ep);
    /* Pacing work-around (docs/quic.md): ngtcp2 0.12 paces from cwnd / initial RTT (333 ms)
     * until the first RTT sample, which holds back the first application data by ~20 ms.
     * Skip the pacing update while there is no RTT sample yet. */
#ifndef MACULA_QUIC_PACE_BEFORE_RTT /* defined: ngtcp2's own behaviour, to measure the gap */
    /* read every pass: ngtcp2 sets latest_rtt back to 0 when a migration resets the congestion
     * state, and the work-around must hold again until the new path's first sample */
    ngtcp2_conn_stat st;
    ngtcp2_conn_get_conn_stat(c->conn, &st);
    if (st.latest_rtt != 0)
        ngtcp2_conn_update_pkt_tx_time(c->conn, now);
#else
    ngtcp2_conn_update_pkt_tx_time(c->conn, now);
#endif
}

/* Re-arms c's deadline; frees it when dead. Returns false when c was freed. */
static bool quic__conn_schedule(quic_conn *c)
{
    quic_endpoint *ep = c->ep;
    uint64_t at;
    switch (c->state) {
    case ST_DEAD: quic__conn_free(c); return false;
    case ST_CLOSING:
    case ST_DRAINING: at = c->close_deadline; break;
    default: at = ngtcp2_conn_get_expiry(c->conn); break;
    }
    if (at != UINT64_MAX) {
        uint64_t now = quic__now();
        if (at < now)
            at = now + 1000000u; /* never spin on a past deadline */
    }
    if (quic__heap_set(ep, c, at) != QUIC_OK) {
        /* no timer: we could never time out; fail now rather than leak */
        quic__set_state(c, ST_DEAD);
        quic__report_closed(c, QUIC_ENOMEM, false, false, 0, "out of memory");
        quic__conn_free(c);
        return false;
    }
    return true;
}

/* Makes a connection whose handshake completed visible (on_connected), once. Called from the
 * service pass, and from the stream callbacks: a server may receive the client's first stream
 * data in the same flight that completes the handshake, and the application must see the
 * connection before any of its streams. */
static void quic__conn_announce(quic_conn *c)
{
    quic_endpoint *ep = c->ep;
    if (!c->connected_pending) {
        return;
    }
    c->connected_pending = false;
    quic__set_state(c, ST_OPEN);
    c->visible = true;
    char addr[80];
    quic__addr_str(quic_conn_peer_addr(c), addr, sizeof addr);
    char hex[IDENTITY_ID_HEX_LEN + 1];
    identity_id_to_hex(c->peer_id, hex);
    quic__log(ep, QUIC_LOG_DEBUG, "quic: %s connection with %s established, node %s",
              c->server ? "incoming" : "outgoing", addr, hex);
    if (ep->cfg.cb.on_connected) {
        c->busy++;
        ep->cfg.cb.on_connected(c, ep->cfg.ctx);
        c->busy--;
    }
}

/* Everything a connection needs after an event: announce the handshake, perform a requested
 * close, write packets, re-arm the timer, free when dead. Returns false when c was freed. */
static bool quic__conn_service(quic_conn *c)
{
    quic_endpoint *ep = c->ep;
    quic__unmark_dirty(c);
    if (c->state == ST_HANDSHAKE || c->state == ST_OPEN) {
        quic__conn_announce(c);
        if (c->tls_done && c->tls && !c->connected_pending) {
            /* Handshake confirmed: 1-RTT keys are installed and key updates need only
             * ngtcp2's crypto context, so the TLS session (~15 KiB) is released. */
            ngtcp2_conn_set_tls_native_handle(c->conn, NULL);
            gnutls_deinit(c->tls);
            c->tls = NULL;
        }
        if (c->close_req && c->send_head != NULL) {
            /* what the application queued before closing goes first (as far as congestion
             * control allows now), then CONNECTION_CLOSE */
            quic__conn_write(c);
        }
        if (c->close_req && (c->state == ST_HANDSHAKE || c->state == ST_OPEN)) {
            ngtcp2_connection_close_error ccerr;
            const char *r = c->close_reason ? c->close_reason : "";
            ngtcp2_connection_close_error_set_application_error(&ccerr, c->close_code,
                                                                (const uint8_t *)r, strlen(r));
            bool was_open = c->state == ST_OPEN;
            quic__conn_enter_closing(c, &ccerr);
            quic__report_closed(c, QUIC_OK, false, was_open, c->close_code, r);
        } else if (!c->close_req) {
            quic__conn_write(c);
        }
    }
    bool alive = quic__conn_schedule(c);
    quic__timer_rearm(ep);
    return alive;
}

/* ---- ngtcp2 callbacks -------------------------------------------------------------------- */

static ngtcp2_conn *quic__get_conn(ngtcp2_crypto_conn_ref *ref)
{
    return ((quic_conn *)ref->user_data)->conn;
}

static void quic__cb_rand(uint8_t *dest, size_t len, const ngtcp2_rand_ctx *ctx)
{
    (void)ctx;
    if (gnutls_rnd(GNUTLS_RND_NONCE, dest, len) != 0)
        abort(); /* no randomness: nothing in QUIC or TLS is safe any more */
}

static int quic__cb_get_new_cid(ngtcp2_conn *conn, ngtcp2_cid *cid, uint8_t *token, size_t cidlen,
                                void *user)
{
    quic_conn *c = user;
    quic_endpoint *ep = c->ep;
    (void)conn;
    for (int tries = 0; tries < 4; tries++) {
        if (gnutls_rnd(GNUTLS_RND_NONCE, cid->data, cidlen) != 0)
            return NGTCP2_ERR_CALLBACK_FAILURE;
        cid->datalen = cidlen;
        int rc = quic__cid_add(c, cid->data, cidlen);
        if (rc == QUIC_ENOMEM)
            return NGTCP2_ERR_CALLBACK_FAILURE;
        if (rc == QUIC_OK) {
            if (ngtcp2_crypto_generate_stateless_reset_token(token, ep->reset_secret,
                                                             sizeof ep->reset_secret, cid) != 0)
                return NGTCP2_ERR_CALLBACK_FAILURE;
            return 0;
        }
    }
    return NGTCP2_ERR_CALLBACK_FAILURE;
}

static int quic__cb_remove_cid(ngtcp2_conn *conn, const ngtcp2_cid *cid, void *user)
{
    (void)conn;
    quic__cid_remove(user, cid->data, cid->datalen);
    return 0;
}

/* recv_crypto_data: feed GnuTLS and drive its handshake, keeping its error for the reason. */
static int quic__cb_recv_crypto(ngtcp2_conn *conn, ngtcp2_crypto_level level, uint64_t offset,
                                const uint8_t *data, size_t len, void *user)
{
    quic_conn *c = user;
    (void)offset;
    if (!c->tls)
        return 0; /* post-handshake CRYPTO data after we released TLS: nothing we use */
    if (len > 0) {
        int rv = gnutls_handshake_write(c->tls, ngtcp2_crypto_gnutls_from_ngtcp2_level(level), data,
                                        len);
        if (rv != 0) {
            quic__fail(c, QUIC_ETLS, QUIC__ALERT_INTERNAL_ERROR, "TLS: %s", gnutls_strerror(rv));
            return NGTCP2_ERR_CRYPTO;
        }
    }
    if (ngtcp2_conn_get_handshake_completed(conn))
        return 0;
    int rv = gnutls_handshake(c->tls);
    if (rv < 0) {
        if (!gnutls_error_is_fatal(rv))
            return 0;
        gnutls_alert_send_appropriate(c->tls, rv);
        if (rv == GNUTLS_E_NO_APPLICATION_PROTOCOL)
            quic__fail(c, QUIC_EALPN, QUIC__ALERT_NO_APPLICATION_PROTOCOL,
                       "ALPN: the peer does not offer \"%s\"", c->ep->alpn);
        else
            quic__fail(c, QUIC_ETLS, ngtcp2_conn_get_tls_alert(conn), "TLS: %s",
                       gnutls_strerror(rv));
        return NGTCP2_ERR_CRYPTO;
    }
    ngtcp2_conn_handshake_completed(conn);
    return 0;
}

static int quic__cb_handshake_completed(ngtcp2_conn *conn, void *user)
{
    quic_conn *c = user;
    (void)conn;
    gnutls_datum_t p = {0};
    if (gnutls_alpn_get_selected_protocol(c->tls, &p) != 0 || p.size != c->ep->alpnlen ||
        memcmp(p.data, c->ep->alpn, p.size) != 0) {
        quic__fail(c, QUIC_EALPN, QUIC__ALERT_NO_APPLICATION_PROTOCOL,
                   "ALPN: the peer did not select \"%s\"", c->ep->alpn);
        return NGTCP2_ERR_CALLBACK_FAILURE;
    }
    if (!c->peer_id_set) {
        quic__fail(c, QUIC_ETLS, QUIC__ALERT_BAD_CERTIFICATE,
                   "TLS: the peer presented no certificate");
        return NGTCP2_ERR_CALLBACK_FAILURE;
    }
    c->connected_pending = true;
    if (c->server)
        c->tls_done = true; /* a server's handshake is confirmed when it completes (RFC 9001
                               4.1.2); ngtcp2 0.12 calls handshake_confirmed only on clients */
    c->ep->stats.handshakes_ok++;
    return 0;
}

static int quic__cb_handshake_confirmed(ngtcp2_conn *conn, void *user)
{
    quic_conn *c = user;
    (void)conn;
    c->tls_done = true;
    return 0;
}

/* The peer's reset tokens for the CIDs we address it with: a stateless reset carries no CID of
 * ours, so it is recognised (and routed) by its last 16 bytes. */
static int quic__cb_dcid_status(ngtcp2_conn *conn, int type, uint64_t seq, const ngtcp2_cid *cid,
                                const uint8_t *token, void *user)
{
    quic_conn *c = user;
    quic_endpoint *ep = c->ep;
    (void)conn;
    (void)seq;
    (void)cid;
    if (!token)
        return 0;
    if (type == NGTCP2_CONNECTION_ID_STATUS_TYPE_ACTIVATE) {
        /* a token already known (a peer repeating one) stays with its first owner */
        if (quic__tbl_add(ep, &ep->tokt, &c->tokens, c, token, NGTCP2_STATELESS_RESET_TOKENLEN) ==
            QUIC_ENOMEM)
            return NGTCP2_ERR_CALLBACK_FAILURE;
    } else {
        quic__tbl_remove(ep, &ep->tokt, &c->tokens, token, NGTCP2_STATELESS_RESET_TOKENLEN);
    }
    return 0;
}

static int quic__cb_recv_stateless_reset(ngtcp2_conn *conn, const ngtcp2_pkt_stateless_reset *sr,
                                         void *user)
{
    quic_conn *c = user;
    (void)conn;
    (void)sr;
    c->got_reset = true;
    return 0;
}

static int quic__cb_stream_open(ngtcp2_conn *conn, int64_t sid, void *user)
{
    quic_conn *c = user;
    if (!ngtcp2_is_bidi_stream(sid)) {
        return 0; /* we allow no uni streams; ngtcp2 refuses them before this */
    }
    quic_stream *s = quic__stream_new(c, sid);
    if (!s)
        return NGTCP2_ERR_CALLBACK_FAILURE;
    ngtcp2_conn_set_stream_user_data(conn, sid, s);
    quic__conn_announce(c);
    if (c->ep->cfg.cb.on_stream_open)
        c->ep->cfg.cb.on_stream_open(c, sid, c->ep->cfg.ctx);
    return 0;
}

static int quic__cb_recv_stream_data(ngtcp2_conn *conn, uint32_t flags, int64_t sid,
                                     uint64_t offset, const uint8_t *data, size_t len, void *user,
                                     void *sud)
{
    quic_conn *c = user;
    quic_endpoint *ep = c->ep;
    (void)offset;
    (void)sud;
    quic__conn_announce(c);
    if (ep->cfg.cb.on_stream_data)
        ep->cfg.cb.on_stream_data(c, sid, data, len, (flags & NGTCP2_STREAM_DATA_FLAG_FIN) != 0,
                                  ep->cfg.ctx);
    if (!ep->cfg.manual_consume && len > 0) {
        ngtcp2_conn_extend_max_stream_offset(conn, sid, len);
        ngtcp2_conn_extend_max_offset(conn, len);
    }
    return 0;
}

static int quic__cb_acked(ngtcp2_conn *conn, int64_t sid, uint64_t offset, uint64_t len, void *user,
                          void *sud)
{
    quic_conn *c = user;
    quic_stream *s = sud;
    (void)conn;
    (void)sid;
    if (!s)
        return 0;
    if (offset <= s->acked && offset + len > s->acked)
        s->acked = offset + len;
    while (s->head && s->head != s->cur && s->head->off + s->head->len <= s->acked) {
        qchunk *k = s->head;
        s->head = k->next;
        if (s->tail == k)
            s->tail = NULL;
        quic__chunk_release(c->ep, k);
    }
    quic_endpoint *ep = c->ep;
    if (s->want_writable && s->written - s->acked <= ep->cfg.stream_send_buffer / 2) {
        s->want_writable = false;
        if (ep->cfg.cb.on_stream_writable)
            ep->cfg.cb.on_stream_writable(c, s->id, ep->cfg.ctx);
    }
    return 0;
}

static void quic__stream_peer_abort(quic_conn *c, quic_stream *s, int64_t sid, uint64_t code)
{
    if (s) {
        s->reset = true;
        quic__send_list_remove(c, s);
        if (s->reset_notified)
            return;
        s->reset_notified = true;
    }
    if (c->ep->cfg.cb.on_stream_reset)
        c->ep->cfg.cb.on_stream_reset(c, sid, code, c->ep->cfg.ctx);
}

static int quic__cb_stream_reset(ngtcp2_conn *conn, int64_t sid, uint64_t final_size, uint64_t code,
                                 void *user, void *sud)
{
    (void)conn;
    (void)final_size;
    quic__stream_peer_abort(user, sud, sid, code);
    return 0;
}

static int quic__cb_stop_sending(ngtcp2_conn *conn, int64_t sid, uint64_t code, void *user,
                                 void *sud)
{
    ngtcp2_conn_shutdown_stream_write(conn, sid, code);
    quic__stream_peer_abort(user, sud, sid, code);
    return 0;
}

static int quic__cb_stream_close(ngtcp2_conn *conn, uint32_t flags, int64_t sid, uint64_t code,
                                 void *user, void *sud)
{
    quic_conn *c = user;
    quic_stream *s = sud;
    (void)flags;
    (void)code;
    if (s)
        quic__stream_free(c, s);
    if (!ngtcp2_conn_is_local_stream(conn, sid) && ngtcp2_is_bidi_stream(sid))
        ngtcp2_conn_extend_max_streams_bidi(conn, 1);
    if (c->ep->cfg.cb.on_stream_closed)
        c->ep->cfg.cb.on_stream_closed(c, sid, c->ep->cfg.ctx);
    return 0;
}

static int quic__cb_extend_max_stream_data(ngtcp2_conn *conn, int64_t sid, uint64_t max_data,
                                           void *user, void *sud)
{
    quic_conn *c = user;
    quic_stream *s = sud;
    (void)conn;
    (void)sid;
    (void)max_data;
    if (s && quic__stream_has_output(s)) {
        quic__send_list_add(c, s);
        quic__mark_dirty(c);
    }
    return 0;
}

/* ---- 1-RTT packet protection on aesgcm.c --------------------------------------------------
 *
 * When TLS negotiated AES-128-GCM (QUIC v1) and the CPU runs aesgcm.c, the 1-RTT keys are
 * derived here (RFC 9001 5.1: HKDF-Expand-Label "quic key", "quic iv", "quic hp"; key updates
 * "quic ku", 6) and the packets sealed, opened and header-protected by aesgcm.c; GnuTLS keeps
 * the handshake and the Initial and Handshake packets (ngtcp2_crypto_gnutls installs those).
 * The two kinds of context live side by side in ngtcp2, which hands ours back to the callbacks
 * below: our native_handle is tagged with the low bit (GnuTLS's handles are malloc'd, so
 * even), and the callbacks pass untagged ones on to ngtcp2_crypto_gnutls. */

#define QUIC__OWN_TAG ((uintptr_t)1)

static bool quic__is_own(const void *handle)
{
    return ((uintptr_t)handle & QUIC__OWN_TAG) != 0;
}

static void *quic__own_ptr(const void *handle)
{
    return (void *)((uintptr_t)handle & ~QUIC__OWN_TAG);
}

static void *quic__own_tag(void *p)
{
    return (void *)((uintptr_t)p | QUIC__OWN_TAG);
}

static void quic__own_aead_free(void *handle)
{
    aesgcm_key *k = quic__own_ptr(handle);
    aesgcm_wipe(k);
    free(k);
}

static void quic__own_hp_free(void *handle)
{
    aes128_key *k = quic__own_ptr(handle);
    aes128_wipe(k);
    free(k);
}

static int quic__cb_encrypt(uint8_t *dest, const ngtcp2_crypto_aead *aead,
                            const ngtcp2_crypto_aead_ctx *aead_ctx, const uint8_t *plaintext,
                            size_t plaintextlen, const uint8_t *nonce, size_t noncelen,
                            const uint8_t *aad, size_t aadlen)
{
    if (!quic__is_own(aead_ctx->native_handle))
        return ngtcp2_crypto_encrypt_cb(dest, aead, aead_ctx, plaintext, plaintextlen, nonce,
                                        noncelen, aad, aadlen);
    if (noncelen != AESGCM_NONCE_LEN)
        return NGTCP2_ERR_CALLBACK_FAILURE;
    aesgcm_seal(quic__own_ptr(aead_ctx->native_handle), nonce, aad, aadlen, plaintext, plaintextlen,
                dest);
    return 0;
}

static int quic__cb_decrypt(uint8_t *dest, const ngtcp2_crypto_aead *aead,
                            const ngtcp2_crypto_aead_ctx *aead_ctx, const uint8_t *ciphertext,
                            size_t ciphertextlen, const uint8_t *nonce, size_t noncelen,
                            const uint8_t *aad, size_t aadlen)
{
    if (!quic__is_own(aead_ctx->native_handle))
        return ngtcp2_crypto_decrypt_cb(dest, aead, aead_ctx, ciphertext, ciphertextlen, nonce,
                                        noncelen, aad, aadlen);
    if (noncelen != AESGCM_NONCE_LEN)
        return NGTCP2_ERR_CALLBACK_FAILURE;
    if (aesgcm_open(quic__own_ptr(aead_ctx->native_handle), nonce, aad, aadlen, ciphertext,
                    ciphertextlen, dest) != 0)
        return NGTCP2_ERR_DECRYPT;
    return 0;
}

/* RFC 9001 5.4.3: the mask is AES-ECB of the 16-byte sample (dest has room for 16). */
static int quic__cb_hp_mask(uint8_t *dest, const ngtcp2_crypto_cipher *hp,
                            const ngtcp2_crypto_cipher_ctx *hp_ctx, const uint8_t *sample)
{
    if (!quic__is_own(hp_ctx->native_handle))
        return ngtcp2_crypto_hp_mask_cb(dest, hp, hp_ctx, sample);
    aes128_encrypt_block(quic__own_ptr(hp_ctx->native_handle), sample, dest);
    return 0;
}

static void quic__cb_delete_aead(ngtcp2_conn *conn, ngtcp2_crypto_aead_ctx *aead_ctx, void *user)
{
    if (!quic__is_own(aead_ctx->native_handle)) {
        ngtcp2_crypto_delete_crypto_aead_ctx_cb(conn, aead_ctx, user);
        return;
    }
    quic__own_aead_free(aead_ctx->native_handle);
    aead_ctx->native_handle = NULL;
}

static void quic__cb_delete_hp(ngtcp2_conn *conn, ngtcp2_crypto_cipher_ctx *hp_ctx, void *user)
{
    if (!quic__is_own(hp_ctx->native_handle)) {
        ngtcp2_crypto_delete_crypto_cipher_ctx_cb(conn, hp_ctx, user);
        return;
    }
    quic__own_hp_free(hp_ctx->native_handle);
    hp_ctx->native_handle = NULL;
}

static int quic__label(uint8_t *dest, size_t destlen, const ngtcp2_crypto_ctx *cx,
                       const uint8_t *secret, size_t secretlen, const char *label)
{
    return ngtcp2_crypto_hkdf_expand_label(dest, destlen, &cx->md, secret, secretlen,
                                           (const uint8_t *)label, strlen(label));
}

/* A packet-protection key and IV from a traffic secret, as a context of ours. */
static int quic__own_aead_new(const ngtcp2_crypto_ctx *cx, const uint8_t *secret, size_t secretlen,
                              ngtcp2_crypto_aead_ctx *out, uint8_t iv[AESGCM_NONCE_LEN])
{
    uint8_t key[AESGCM_KEY_LEN];
    void *mem = NULL;
    int rv = -1;
    if (quic__label(key, sizeof key, cx, secret, secretlen, "quic key") == 0 &&
        quic__label(iv, AESGCM_NONCE_LEN, cx, secret, secretlen, "quic iv") == 0 &&
        posix_memalign(&mem, 64, sizeof(aesgcm_key)) == 0) {
        aesgcm_init(mem, key);
        out->native_handle = quic__own_tag(mem);
        rv = 0;
    }
    explicit_bzero(key, sizeof key);
    return rv;
}

static int quic__own_hp_new(const ngtcp2_crypto_ctx *cx, const uint8_t *secret, size_t secretlen,
                            ngtcp2_crypto_cipher_ctx *out)
{
    uint8_t key[AESGCM_KEY_LEN];
    void *mem = NULL;
    int rv = -1;
    if (quic__label(key, sizeof key, cx, secret, secretlen, "quic hp") == 0 &&
        posix_memalign(&mem, 64, sizeof(aes128_key)) == 0) {
        aes128_init(mem, key);
        out->native_handle = quic__own_tag(mem);
        rv = 0;
    }
    explicit_bzero(key, sizeof key);
    return rv;
}

/* Whether this connection's 1-RTT packets go to aesgcm.c. */
static bool quic__own_1rtt(const quic_conn *c, gnutls_session_t session, ngtcp2_conn *conn)
{
    return !c->ep->cfg.gnutls_aead && aesgcm_impl_get() != AESGCM_IMPL_NONE &&
           gnutls_cipher_get(session) == GNUTLS_CIPHER_AES_128_GCM &&
           ngtcp2_conn_get_negotiated_version(conn) == NGTCP2_PROTO_VER_V1;
}

/* Derives the 1-RTT keys of one direction from its secret and installs them as ours (what
 * ngtcp2_crypto_derive_and_install_{rx,tx}_key do with GnuTLS contexts). */
static int quic__install_1rtt(quic_conn *c, ngtcp2_conn *conn, gnutls_session_t session, bool rx,
                              const uint8_t *secret, size_t secretlen)
{
    const ngtcp2_crypto_ctx *cx = ngtcp2_conn_get_crypto_ctx(conn);
    if (!cx->aead.native_handle) {
        ngtcp2_crypto_ctx tls;
        ngtcp2_crypto_ctx_tls(&tls, session);
        ngtcp2_conn_set_crypto_ctx(conn, &tls);
        cx = ngtcp2_conn_get_crypto_ctx(conn);
    }
    ngtcp2_crypto_aead_ctx aead = {0};
    ngtcp2_crypto_cipher_ctx hp = {0};
    uint8_t iv[AESGCM_NONCE_LEN];
    int rv = -1;
    if (quic__own_aead_new(cx, secret, secretlen, &aead, iv) == 0 &&
        quic__own_hp_new(cx, secret, secretlen, &hp) == 0) {
        /* (the peer's transport parameters reach ngtcp2 through the TLS extension that
         * ngtcp2_crypto_gnutls registers, so the client has nothing to add here) */
        if (rx)
            rv = ngtcp2_conn_install_rx_key(conn, secret, secretlen, &aead, iv, sizeof iv, &hp);
        else
            rv = ngtcp2_conn_install_tx_key(conn, secret, secretlen, &aead, iv, sizeof iv, &hp);
    }
    if (rv != 0) {
        if (aead.native_handle)
            quic__own_aead_free(aead.native_handle);
        if (hp.native_handle)
            quic__own_hp_free(hp.native_handle);
        return -1;
    }
    c->ep->stats.keys_aesgcm++;
    return 0;
}

/* GnuTLS hands over each traffic secret: 1-RTT ones as above, the rest as
 * ngtcp2_crypto_gnutls would (its own secret function, which this one replaces). */
static int quic__tls_secret(gnutls_session_t session, gnutls_record_encryption_level_t glevel,
                            const void *rx_secret, const void *tx_secret, size_t secretlen)
{
    ngtcp2_crypto_conn_ref *ref = gnutls_session_get_ptr(session);
    quic_conn *c = ref->user_data;
    ngtcp2_conn *conn = ref->get_conn(ref);
    ngtcp2_crypto_level level = ngtcp2_crypto_gnutls_from_gnutls_record_encryption_level(glevel);
    bool own = false;
    if (level == NGTCP2_CRYPTO_LEVEL_APPLICATION) {
        if (!c->aead_chosen) { /* one choice for both directions, whatever changes later */
            c->own_aead = quic__own_1rtt(c, session, conn);
            c->aead_chosen = true;
        }
        own = c->own_aead;
    }
    if (rx_secret && (own ? quic__install_1rtt(c, conn, session, true, rx_secret, secretlen)
                          : ngtcp2_crypto_derive_and_install_rx_key(conn, NULL, NULL, NULL, level,
                                                                    rx_secret, secretlen)) != 0)
        return -1;
    if (tx_secret && (own ? quic__install_1rtt(c, conn, session, false, tx_secret, secretlen)
                          : ngtcp2_crypto_derive_and_install_tx_key(conn, NULL, NULL, NULL, level,
                                                                    tx_secret, secretlen)) != 0)
        return -1;
    return 0;
}

/* A key update (RFC 9001 6): the next secrets are HKDF-Expand-Label(secret, "quic ku"); the
 * header-protection keys stay. */
static int quic__cb_update_key(ngtcp2_conn *conn, uint8_t *rx_secret, uint8_t *tx_secret,
                               ngtcp2_crypto_aead_ctx *rx_aead_ctx, uint8_t *rx_iv,
                               ngtcp2_crypto_aead_ctx *tx_aead_ctx, uint8_t *tx_iv,
                               const uint8_t *current_rx_secret, const uint8_t *current_tx_secret,
                               size_t secretlen, void *user)
{
    quic_conn *c = user;
    if (!c->own_aead) {
        int rv = ngtcp2_crypto_update_key_cb(conn, rx_secret, tx_secret, rx_aead_ctx, rx_iv,
                                             tx_aead_ctx, tx_iv, current_rx_secret,
                                             current_tx_secret, secretlen, user);
        if (rv == 0)
            c->ep->stats.key_updates++;
        return rv;
    }
    const ngtcp2_crypto_ctx *cx = ngtcp2_conn_get_crypto_ctx(conn);
    if (quic__label(rx_secret, secretlen, cx, current_rx_secret, secretlen, "quic ku") != 0 ||
        quic__label(tx_secret, secretlen, cx, current_tx_secret, secretlen, "quic ku") != 0)
        return NGTCP2_ERR_CALLBACK_FAILURE;
    ngtcp2_crypto_aead_ctx rx = {0}, tx = {0};
    if (quic__own_aead_new(cx, rx_secret, secretlen, &rx, rx_iv) != 0 ||
        quic__own_aead_new(cx, tx_secret, secretlen, &tx, tx_iv) != 0) {
        if (rx.native_handle)
            quic__own_aead_free(rx.native_handle);
        return NGTCP2_ERR_CALLBACK_FAILURE;
    }
    *rx_aead_ctx = rx;
    *tx_aead_ctx = tx;
    c->ep->stats.key_updates++;
    return 0;
}

static void quic__callbacks_init(ngtcp2_callbacks *cb, bool server)
{
    memset(cb, 0, sizeof *cb);
    if (server) {
        cb->recv_client_initial = ngtcp2_crypto_recv_client_initial_cb;
    } else {
        cb->client_initial = ngtcp2_crypto_client_initial_cb;
        cb->recv_retry = ngtcp2_crypto_recv_retry_cb;
    }
    cb->recv_crypto_data = quic__cb_recv_crypto;
    cb->handshake_completed = quic__cb_handshake_completed;
    cb->handshake_confirmed = quic__cb_handshake_confirmed;
    cb->recv_stateless_reset = quic__cb_recv_stateless_reset;
    cb->dcid_status = quic__cb_dcid_status;
    cb->encrypt = quic__cb_encrypt;
    cb->decrypt = quic__cb_decrypt;
    cb->hp_mask = quic__cb_hp_mask;
    cb->recv_stream_data = quic__cb_recv_stream_data;
    cb->acked_stream_data_offset = quic__cb_acked;
    cb->stream_open = quic__cb_stream_open;
    cb->stream_close = quic__cb_stream_close;
    cb->stream_reset = quic__cb_stream_reset;
    cb->stream_stop_sending = quic__cb_stop_sending;
    cb->extend_max_stream_data = quic__cb_extend_max_stream_data;
    cb->rand = quic__cb_rand;
    cb->get_new_connection_id = quic__cb_get_new_cid;
    cb->remove_connection_id = quic__cb_remove_cid;
    cb->update_key = quic__cb_update_key;
    cb->delete_crypto_aead_ctx = quic__cb_delete_aead;
    cb->delete_crypto_cipher_ctx = quic__cb_delete_hp;
    cb->get_path_challenge_data = ngtcp2_crypto_get_path_challenge_data_cb;
    cb->version_negotiation = ngtcp2_crypto_version_negotiation_cb;
}

/* ---- TLS --------------------------------------------------------------------------------- */

/* Called by GnuTLS when the peer's certificate arrives (both roles): derive its node ID,
 * refuse expired certificates and, on a client, a node other than the expected one. */
static int quic__tls_verify(gnutls_session_t session)
{
    ngtcp2_crypto_conn_ref *ref = gnutls_session_get_ptr(session);
    quic_conn *c = ref->user_data;
    unsigned int n = 0;
    const gnutls_datum_t *certs = gnutls_certificate_get_peers(session, &n);
    if (!certs || n == 0) {
        quic__fail(c, QUIC_ETLS, QUIC__ALERT_BAD_CERTIFICATE,
                   "TLS: the peer presented no certificate");
        return GNUTLS_E_CERTIFICATE_ERROR;
    }
    uint8_t id[IDENTITY_ID_LEN];
    if (identity_node_id_from_cert_der(certs[0].data, certs[0].size, id) != IDENTITY_OK) {
        quic__fail(c, QUIC_ETLS, QUIC__ALERT_BAD_CERTIFICATE,
                   "TLS: the peer's certificate cannot be parsed");
        return GNUTLS_E_CERTIFICATE_ERROR;
    }
    gnutls_x509_crt_t crt;
    if (gnutls_x509_crt_init(&crt) == 0) {
        if (gnutls_x509_crt_import(crt, &certs[0], GNUTLS_X509_FMT_DER) == 0) {
            time_t until = gnutls_x509_crt_get_expiration_time(crt);
            if (until != (time_t)-1 && until < time(NULL)) {
                gnutls_x509_crt_deinit(crt);
                quic__fail(c, QUIC_ETLS, QUIC__ALERT_CERTIFICATE_EXPIRED,
                           "TLS: the peer's certificate expired at %lld (unix time)",
                           (long long)until);
                return GNUTLS_E_CERTIFICATE_ERROR;
            }
        }
        gnutls_x509_crt_deinit(crt);
    }
    if (!c->server && c->has_expected && memcmp(id, c->expected, IDENTITY_ID_LEN) != 0) {
        char want[IDENTITY_ID_HEX_LEN + 1], got[IDENTITY_ID_HEX_LEN + 1];
        identity_id_to_hex(c->expected, want);
        identity_id_to_hex(id, got);
        quic__fail(c, QUIC_EPEERID, QUIC__ALERT_BAD_CERTIFICATE,
                   QUIC__PEERID_PREFIX ": expected node %s, the server's key is node %s", want,
                   got);
        return GNUTLS_E_CERTIFICATE_ERROR;
    }
    memcpy(c->peer_id, id, IDENTITY_ID_LEN);
    c->peer_id_set = true;
    return 0;
}

static int quic__tls_init(quic_conn *c)
{
    quic_endpoint *ep = c->ep;
    /* no session tickets: nodes do not resume, and tickets would cost a CRYPTO round */
    unsigned flags = (c->server ? GNUTLS_SERVER : GNUTLS_CLIENT) | GNUTLS_NO_END_OF_EARLY_DATA |
                     GNUTLS_NO_TICKETS;
    if (gnutls_init(&c->tls, flags) != 0) {
        c->tls = NULL;
        return QUIC_ENOMEM;
    }
    if (gnutls_priority_set(c->tls, ep->prio) != 0)
        return QUIC_ETLS;
    int rv = c->server ? ngtcp2_crypto_gnutls_configure_server_session(c->tls)
                       : ngtcp2_crypto_gnutls_configure_client_session(c->tls);
    if (rv != 0)
        return QUIC_ETLS;
    gnutls_handshake_set_secret_function(c->tls, quic__tls_secret); /* 1-RTT keys: aesgcm.c */
    if (gnutls_credentials_set(c->tls, GNUTLS_CRD_CERTIFICATE, ep->cred) != 0)
        return QUIC_ETLS;
    if (c->server)
        gnutls_certificate_server_set_request(c->tls, GNUTLS_CERT_REQUIRE);
    gnutls_datum_t alpn = {.data = (unsigned char *)ep->alpn, .size = (unsigned)ep->alpnlen};
    if (gnutls_alpn_set_protocols(c->tls, &alpn, 1, GNUTLS_ALPN_MANDATORY) != 0)
        return QUIC_ETLS;
    c->ref.get_conn = quic__get_conn;
    c->ref.user_data = c;
    gnutls_session_set_ptr(c->tls, &c->ref);
    ngtcp2_conn_set_tls_native_handle(c->conn, c->tls);
    return QUIC_OK;
}

/* ---- connection creation ----------------------------------------------------------------- */

/* The largest datagram we write to `remote`. A path to a loopback address never leaves this
 * host: its MTU is the loopback device's, which the kernel reports for a UDP socket connected
 * to it (IP_MTU / IPV6_MTU), so packets up to QUIC__LOOP_PKT go there without path MTU
 * discovery. Every other path keeps QUIC__MAX_PKT, as does loopback when the kernel does not
 * answer or cfg.no_loopback_jumbo is set. ngtcp2 further bounds it by the peer's
 * max_udp_payload_size transport parameter (RFC 9000 18.2: what the peer can receive; ours
 * is the default 65,527, matching our 64 KiB receive buffers): a peer that cannot take large
 * datagrams says so there. */
static size_t quic__path_max_pkt(const quic_endpoint *ep, const struct sockaddr *remote)
{
    if (ep->cfg.no_loopback_jumbo || !quic__is_loopback(remote))
        return QUIC__MAX_PKT;
    int fd = socket(remote->sa_family, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return QUIC__MAX_PKT;
    int mtu = 0;
    socklen_t len = sizeof mtu;
    bool v6 = remote->sa_family == AF_INET6;
    int ok =
        connect(fd, remote, quic__sa_len(remote)) == 0 &&
        getsockopt(fd, v6 ? IPPROTO_IPV6 : IPPROTO_IP, v6 ? IPV6_MTU : IP_MTU, &mtu, &len) == 0;
    close(fd);
    size_t hdr = (v6 ? 40 : 20) + 8; /* IP + UDP headers */
    if (!ok || mtu <= 0 || (size_t)mtu < hdr + QUIC__MAX_PKT)
        return QUIC__MAX_PKT;
    size_t max = (size_t)mtu - hdr;
    return max < QUIC__LOOP_PKT ? max : QUIC__LOOP_PKT;
}

static void quic__settings(const quic_endpoint *ep, ngtcp2_settings *s, ngtcp2_transport_params *p,
                           uint64_t now, size_t max_pkt)
{
    ngtcp2_settings_default(s);
    s->initial_ts = now;
    s->handshake_timeout = (uint64_t)ep->cfg.handshake_timeout_ms * NGTCP2_MILLISECONDS;
    s->max_tx_udp_payload_size = max_pkt;
    if (max_pkt > QUIC__MAX_PKT) {
        /* the path's MTU is known (loopback): write packets of that size from the start */
        s->no_tx_udp_payload_size_shaping = 1;
        s->no_pmtud = 1;
    }
    s->max_stream_window = QUIC_DEFAULT_MAX_STREAM_WINDOW > ep->cfg.stream_window
                               ? QUIC_DEFAULT_MAX_STREAM_WINDOW
                               : ep->cfg.stream_window;
    s->max_window = QUIC_DEFAULT_MAX_CONN_WINDOW > ep->cfg.conn_window
                        ? QUIC_DEFAULT_MAX_CONN_WINDOW
                        : ep->cfg.conn_window;
    ngtcp2_transport_params_default(p);
    p->initial_max_stream_data_bidi_local = ep->cfg.stream_window;
    p->initial_max_stream_data_bidi_remote = ep->cfg.stream_window;
    p->initial_max_stream_data_uni = 0;
    p->initial_max_data = ep->cfg.conn_window;
    p->initial_max_streams_bidi = ep->cfg.max_streams;
    p->initial_max_streams_uni = 0;
    p->max_idle_timeout = (uint64_t)ep->cfg.idle_timeout_ms * NGTCP2_MILLISECONDS;
}

static quic_conn *quic__conn_alloc(quic_endpoint *ep, bool server)
{
    quic_conn *c = calloc(1, sizeof *c);
    if (!c)
        return NULL;
    c->ep = ep;
    c->server = server;
    c->heap_idx = SIZE_MAX;
    c->state = ST_HANDSHAKE;
    c->anext = ep->all;
    if (ep->all)
        ep->all->aprev = c;
    ep->all = c;
    ep->nconns++;
    return c;
}

static int quic__random_cid(ngtcp2_cid *cid, size_t len)
{
    cid->datalen = len;
    return gnutls_rnd(GNUTLS_RND_NONCE, cid->data, len) == 0 ? QUIC_OK : QUIC_ETLS;
}

/* A new incoming connection for an acceptable Initial packet. */
static quic_conn *quic__server_conn_new(quic_endpoint *ep, const ngtcp2_pkt_hd *hd,
                                        const ngtcp2_path *path, const ngtcp2_cid *odcid)
{
    quic_conn *c = quic__conn_alloc(ep, true);
    if (!c)
        return NULL;
    c->half_open = true;
    ep->half_open++;
    uint64_t now = quic__now();
    ngtcp2_settings s;
    ngtcp2_transport_params p;
    c->max_pkt = quic__path_max_pkt(ep, (const struct sockaddr *)path->remote.addr);
    quic__settings(ep, &s, &p, now, c->max_pkt);
    if (odcid) {
        /* the client echoed our Retry token: hd->dcid is the SCID we put in the Retry */
        p.original_dcid = *odcid;
        p.retry_scid = hd->dcid;
        p.retry_scid_present = 1;
        s.token = hd->token;
    } else {
        p.original_dcid = hd->dcid;
    }
    ngtcp2_cid scid;
    int rc = QUIC_ETLS;
    for (int tries = 0; tries < 4 && rc != QUIC_OK; tries++) {
        if (quic__random_cid(&scid, QUIC__CID_LEN) != QUIC_OK)
            goto fail;
        rc = quic__cid_add(c, scid.data, scid.datalen);
        if (rc == QUIC_ENOMEM)
            goto fail;
    }
    if (rc != QUIC_OK)
        goto fail;
    /* the client's DCID (its first, or our Retry SCID) routes its retransmitted Initials here */
    if (quic__cid_add(c, hd->dcid.data, hd->dcid.datalen) != QUIC_OK)
        goto fail;
    p.stateless_reset_token_present = 1;
    if (ngtcp2_crypto_generate_stateless_reset_token(p.stateless_reset_token, ep->reset_secret,
                                                     sizeof ep->reset_secret, &scid) != 0)
        goto fail;
    if (ngtcp2_conn_server_new(&c->conn, &hd->scid, &scid, path, hd->version, &ep->cb_server, &s,
                               &p, &ep->mem, c) != 0) {
        c->conn = NULL;
        goto fail;
    }
    if (quic__tls_init(c) != QUIC_OK)
        goto fail;
    return c;
fail:
    quic__conn_free(c);
    return NULL;
}

static int quic__parse_addr(const char *host, uint16_t port, struct sockaddr_storage *ss)
{
    memset(ss, 0, sizeof *ss);
    if (uv_ip4_addr(host, port, (struct sockaddr_in *)ss) == 0)
        return QUIC_OK;
    if (uv_ip6_addr(host, port, (struct sockaddr_in6 *)ss) == 0)
        return QUIC_OK;
    return QUIC_EADDR;
}

static ngtcp2_socklen quic__addr_len(const struct sockaddr *sa)
{
    return sa->sa_family == AF_INET6 ? sizeof(struct sockaddr_in6) : sizeof(struct sockaddr_in);
}

int quic_connect(quic_endpoint *ep, const char *host, uint16_t port, const uint8_t *expected_id,
                 void *user, quic_conn **out)
{
    if (out)
        *out = NULL;
    if (!ep || !host || !out || port == 0)
        return QUIC_EINVAL;
    if (ep->closing)
        return QUIC_ECLOSED;
    struct sockaddr_storage remote;
    if (quic__parse_addr(host, port, &remote) != QUIC_OK || remote.ss_family != ep->local.ss_family)
        return QUIC_EADDR;
    if (ep->nconns >= ep->cfg.max_connections)
        return QUIC_ELIMIT;
    quic_conn *c = quic__conn_alloc(ep, false);
    if (!c)
        return QUIC_ENOMEM;
    c->user = user;
    if (expected_id) {
        c->has_expected = true;
        memcpy(c->expected, expected_id, IDENTITY_ID_LEN);
    }
    uint64_t now = quic__now();
    ngtcp2_settings s;
    ngtcp2_transport_params p;
    c->max_pkt = quic__path_max_pkt(ep, (const struct sockaddr *)&remote);
    quic__settings(ep, &s, &p, now, c->max_pkt);
    ngtcp2_cid dcid, scid;
    int rc = quic__random_cid(&dcid, QUIC__CID_LEN);
    for (int tries = 0; rc == QUIC_OK && tries < 4; tries++) {
        rc = quic__random_cid(&scid, QUIC__CID_LEN);
        if (rc == QUIC_OK)
            rc = quic__cid_add(c, scid.data, scid.datalen);
        if (rc != QUIC_EINVAL)
            break;
    }
    if (rc != QUIC_OK)
        goto fail;
    ngtcp2_path path = {.local = {.addr = (ngtcp2_sockaddr *)&ep->local, .addrlen = ep->locallen},
                        .remote = {.addr = (ngtcp2_sockaddr *)&remote,
                                   .addrlen = quic__addr_len((struct sockaddr *)&remote)},
                        .user_data = NULL};
    if (ngtcp2_conn_client_new(&c->conn, &dcid, &scid, &path, NGTCP2_PROTO_VER_V1, &ep->cb_client,
                               &s, &p, &ep->mem, c) != 0) {
        c->conn = NULL;
        rc = QUIC_ENOMEM;
        goto fail;
    }
    rc = quic__tls_init(c);
    if (rc != QUIC_OK)
        goto fail;
    c->visible = true; /* the caller holds it from now on */
    quic__mark_dirty(c);
    *out = c;
    return QUIC_OK;
fail:
    quic__conn_free(c);
    return rc;
}

/* ---- UDP input --------------------------------------------------------------------------- */

static void quic__conn_recv(quic_conn *c, const struct sockaddr *from, const uint8_t *pkt,
                            size_t len)
{
    quic_endpoint *ep = c->ep;
    if (c->state == ST_CLOSING) {
        /* answer with our CONNECTION_CLOSE again, at exponentially spaced packets */
        c->close_rx++;
        if (c->close_pkt && (c->close_rx & (c->close_rx - 1)) == 0)
            quic__send(ep, from, c->close_pkt, c->close_pktlen);
        return;
    }
    if (c->state != ST_HANDSHAKE && c->state != ST_OPEN)
        return;
    ngtcp2_path path = {
        .local = {.addr = (ngtcp2_sockaddr *)&ep->local, .addrlen = ep->locallen},
        .remote = {.addr = (ngtcp2_sockaddr *)from, .addrlen = quic__addr_len(from)},
        .user_data = NULL};
    c->busy++;
    int rv = ngtcp2_conn_read_pkt(c->conn, &path, NULL, pkt, len, quic__now());
    c->busy--;
    if (rv != 0) {
        if (rv == NGTCP2_ERR_DISCARD_PKT) {
            ep->stats.packets_dropped++;
        } else {
            quic__conn_fail(c, rv);
        }
    } else {
        c->got_packet = true;
    }
    if (c->state != ST_HANDSHAKE && c->state != ST_OPEN) {
        quic__conn_service(c); /* failed, closing or draining: settled (or freed) now */
        return;
    }
    /* Serviced after the poll (quic__on_check) with every other packet read in this loop
     * turn: one write pass (ACKs, replies) for all of them instead of one per datagram. */
    quic__mark_dirty(c);
}

static void quic__send_version_negotiation(quic_endpoint *ep, const struct sockaddr *to,
                                           const ngtcp2_version_cid *vc)
{
    uint32_t sv[] = {NGTCP2_PROTO_VER_V1};
    uint8_t unused;
    gnutls_rnd(GNUTLS_RND_NONCE, &unused, 1);
    ngtcp2_ssize n = ngtcp2_pkt_write_version_negotiation(
        ep->sendbuf, sizeof ep->sendbuf, unused, vc->scid, vc->scidlen, vc->dcid, vc->dcidlen, sv,
        sizeof sv / sizeof sv[0]);
    if (n > 0)
        quic__send(ep, to, ep->sendbuf, (size_t)n);
}

/* Address validation: a Retry carrying a token that binds the client's address and first DCID
 * (ngtcp2_crypto's AEAD-protected format, valid QUIC__RETRY_TOKEN_TTL). No state is kept. */
static void quic__send_retry(quic_endpoint *ep, const struct sockaddr *to, const ngtcp2_pkt_hd *hd)
{
    ngtcp2_cid scid;
    if (quic__random_cid(&scid, QUIC__CID_LEN) != QUIC_OK)
        return;
    uint8_t token[NGTCP2_CRYPTO_MAX_RETRY_TOKENLEN];
    ngtcp2_ssize tl = ngtcp2_crypto_generate_retry_token(
        token, ep->token_secret, sizeof ep->token_secret, hd->version, (const ngtcp2_sockaddr *)to,
        quic__addr_len(to), &scid, &hd->dcid, quic__now());
    if (tl < 0)
        return;
    ngtcp2_ssize n = ngtcp2_crypto_write_retry(ep->sendbuf, sizeof ep->sendbuf, hd->version,
                                               &hd->scid, &scid, &hd->dcid, token, (size_t)tl);
    if (n <= 0)
        return;
    ep->stats.retries_sent++;
    quic__send(ep, to, ep->sendbuf, (size_t)n);
}

/* RFC 9000 10.3: tell the sender of a short-header packet for a connection we do not know
 * (e.g. from before a restart) that it is gone. The reset is smaller than the packet that
 * triggered it (no loops, no amplification) and at most QUIC__MAX_RESETS_PER_S go out. */
static void quic__send_stateless_reset(quic_endpoint *ep, const struct sockaddr *to,
                                       const uint8_t *dcid, size_t dcidlen, size_t pktlen)
{
    size_t total = pktlen - 1 < QUIC__RESET_LEN ? pktlen - 1 : QUIC__RESET_LEN;
    if (dcidlen != QUIC__CID_LEN ||
        total < 1 + NGTCP2_MIN_STATELESS_RESET_RANDLEN + NGTCP2_STATELESS_RESET_TOKENLEN)
        return;
    uint64_t now_ms = uv_now(ep->loop);
    if (now_ms - ep->reset_window >= 1000) {
        ep->reset_window = now_ms;
        ep->reset_count = 0;
    }
    if (ep->reset_count >= QUIC__MAX_RESETS_PER_S)
        return;
    ngtcp2_cid cid;
    ngtcp2_cid_init(&cid, dcid, dcidlen);
    uint8_t token[NGTCP2_STATELESS_RESET_TOKENLEN];
    if (ngtcp2_crypto_generate_stateless_reset_token(token, ep->reset_secret,
                                                     sizeof ep->reset_secret, &cid) != 0)
        return;
    uint8_t rnd[QUIC__RESET_LEN];
    size_t randlen = total - 1 - NGTCP2_STATELESS_RESET_TOKENLEN;
    if (gnutls_rnd(GNUTLS_RND_NONCE, rnd, randlen) != 0)
        return;
    ngtcp2_ssize n =
        ngtcp2_pkt_write_stateless_reset(ep->sendbuf, sizeof ep->sendbuf, token, rnd, randlen);
    if (n <= 0)
        return;
    ep->reset_count++;
    ep->stats.resets_sent++;
    quic__send(ep, to, ep->sendbuf, (size_t)n);
}

/* One datagram, as the peer sent it. */
static void quic__recv_one(quic_endpoint *ep, const uint8_t *pkt, size_t len,
                           const struct sockaddr *from)
{
    ngtcp2_version_cid vc;
    int rv = ngtcp2_pkt_decode_version_cid(&vc, pkt, len, QUIC__CID_LEN);
    if (rv == NGTCP2_ERR_VERSION_NEGOTIATION) {
        if (ep->cfg.listen && len >= NGTCP2_MAX_UDP_PAYLOAD_SIZE)
            quic__send_version_negotiation(ep, from, &vc);
        ep->stats.packets_dropped++;
        return;
    }
    if (rv != 0 || vc.dcidlen > NGTCP2_MAX_CIDLEN || vc.dcidlen == 0) {
        ep->stats.packets_dropped++;
        return;
    }
    quic_conn *c = quic__cid_find(ep, vc.dcid, vc.dcidlen);
    if (c) {
        quic__conn_recv(c, from, pkt, len);
        return;
    }
    /* unknown connection ID: only an acceptable client Initial may create a connection */
    if ((pkt[0] & 0x80) == 0) {
        /* a stateless reset from a peer that lost one of our connections? */
        if (len >= 1 + NGTCP2_MIN_STATELESS_RESET_RANDLEN + NGTCP2_STATELESS_RESET_TOKENLEN) {
            c = quic__tbl_find(ep, &ep->tokt, pkt + len - NGTCP2_STATELESS_RESET_TOKENLEN,
                               NGTCP2_STATELESS_RESET_TOKENLEN);
            if (c) {
                quic__conn_recv(c, from, pkt, len);
                return;
            }
        }
        quic__send_stateless_reset(ep, from, vc.dcid, vc.dcidlen, len);
        ep->stats.packets_dropped++;
        return;
    }
    ngtcp2_pkt_hd hd;
    if (!ep->cfg.listen || ngtcp2_accept(&hd, pkt, len) != 0) {
        ep->stats.packets_dropped++;
        return;
    }
    if (ep->nconns >= ep->cfg.max_connections) {
        ep->stats.packets_dropped++;
        quic__log(ep, QUIC_LOG_WARN, "quic: refusing a connection: %zu connections (limit)",
                  ep->nconns);
        return;
    }
    ngtcp2_cid odcid;
    bool validated = false;
    if (hd.token.len > 0 && hd.token.base[0] == NGTCP2_CRYPTO_TOKEN_MAGIC_RETRY) {
        if (ngtcp2_crypto_verify_retry_token(&odcid, hd.token.base, hd.token.len, ep->token_secret,
                                             sizeof ep->token_secret, hd.version,
                                             (const ngtcp2_sockaddr *)from, quic__addr_len(from),
                                             &hd.dcid, QUIC__RETRY_TOKEN_TTL, quic__now()) != 0) {
            ep->stats.packets_dropped++; /* forged, replayed elsewhere or expired */
            return;
        }
        validated = true;
    }
    if (!validated && (ep->cfg.retry_always || ep->half_open >= ep->cfg.retry_half_open)) {
        quic__send_retry(ep, from, &hd);
        return;
    }
    ngtcp2_path path = {
        .local = {.addr = (ngtcp2_sockaddr *)&ep->local, .addrlen = ep->locallen},
        .remote = {.addr = (ngtcp2_sockaddr *)from, .addrlen = quic__addr_len(from)},
        .user_data = NULL};
    c = quic__server_conn_new(ep, &hd, &path, validated ? &odcid : NULL);
    if (!c) {
        ep->stats.packets_dropped++;
        return;
    }
    quic__conn_recv(c, from, pkt, len);
}

/* The UDP_GRO segment size of a received buffer: 0 when it holds one datagram. */
static size_t quic__gro_size(struct msghdr *h)
{
    for (struct cmsghdr *cm = CMSG_FIRSTHDR(h); cm; cm = CMSG_NXTHDR(h, cm)) {
        if (cm->cmsg_level == SOL_UDP && cm->cmsg_type == UDP_GRO &&
            cm->cmsg_len >= CMSG_LEN(sizeof(int))) {
            int seg;
            memcpy(&seg, CMSG_DATA(cm), sizeof seg);
            return seg > 0 ? (size_t)seg : 0;
        }
    }
    return 0;
}

/* One received buffer: a datagram, or (UDP GRO) datagrams of `seg` bytes back to back, the
 * last possibly shorter. Each goes on exactly as if it had arrived alone. Returns how many. */
static size_t quic__recv_buffer(quic_endpoint *ep, const uint8_t *buf, size_t len, size_t seg,
                                const struct sockaddr *from, bool truncated)
{
    if (truncated) { /* cannot happen with 64 KiB entries; never guess where datagrams end */
        ep->stats.packets_in++;
        ep->stats.packets_dropped++;
        return 1;
    }
    if (seg == 0 || seg >= len)
        seg = len;
    else
        ep->stats.gro_batches++;
    size_t n = 0;
    for (size_t off = 0; off < len && !ep->closing; off += seg, n++) {
        ep->stats.packets_in++;
        quic__recv_one(ep, buf + off, len - off < seg ? len - off : seg, from);
    }
    return n;
}

/* Reads what the socket holds, QUIC__RECV_CHUNKS buffers per recvmmsg(2), until it is empty or
 * QUIC__RECV_BUDGET datagrams came in (level-triggered: the rest wakes the next loop turn).
 * The connections they touched are serviced once, after the poll (quic__on_check). */
static void quic__recv_burst(quic_endpoint *ep)
{
    struct mmsghdr mm[QUIC__RECV_CHUNKS];
    struct iovec iov[QUIC__RECV_CHUNKS];
    struct sockaddr_storage from[QUIC__RECV_CHUNKS];
    union {
        char buf[CMSG_SPACE(sizeof(int)) + 64];
        struct cmsghdr align;
    } ctl[QUIC__RECV_CHUNKS];
    memset(ctl, 0, sizeof ctl); /* the kernel writes them; zeroed once for the checkers */
    size_t got = 0;
    while (got < QUIC__RECV_BUDGET && !ep->closing) {
        memset(mm, 0, sizeof mm);
        for (size_t k = 0; k < QUIC__RECV_CHUNKS; k++) {
            iov[k].iov_base = ep->recvbuf + k * QUIC__RECV_BUF;
            iov[k].iov_len = QUIC__RECV_BUF;
            struct msghdr *h = &mm[k].msg_hdr;
            h->msg_name = &from[k];
            h->msg_namelen = sizeof from[k];
            h->msg_iov = &iov[k];
            h->msg_iovlen = 1;
            if (ep->gro) {
                h->msg_control = ctl[k].buf;
                h->msg_controllen = sizeof ctl[k].buf;
            }
        }
        int n = recvmmsg(ep->fd, mm, QUIC__RECV_CHUNKS, 0, NULL);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            if (errno != EAGAIN && errno != EWOULDBLOCK)
                quic__log(ep, QUIC_LOG_DEBUG, "quic: receive: %s", strerror(errno));
            break;
        }
        for (int k = 0; k < n && !ep->closing; k++) {
            struct msghdr *h = &mm[k].msg_hdr;
            if (mm[k].msg_len == 0 || h->msg_namelen == 0)
                continue;
            got += quic__recv_buffer(
                ep, iov[k].iov_base, mm[k].msg_len, ep->gro ? quic__gro_size(h) : 0,
                (const struct sockaddr *)&from[k], (h->msg_flags & MSG_TRUNC) != 0);
        }
        if (n < QUIC__RECV_CHUNKS)
            break; /* the socket is empty */
    }
    quic__tx_flush(ep); /* replies that need no service pass (resets, Retry, close) */
}

static void quic__on_poll(uv_poll_t *h, int status, int events)
{
    quic_endpoint *ep = h->data;
    if (ep->closing)
        return;
    if (status < 0) {
        /* libuv stops the handle on POLLERR: clear the socket error and watch again */
        int err = 0;
        socklen_t elen = sizeof err;
        getsockopt(ep->fd, SOL_SOCKET, SO_ERROR, &err, &elen);
        quic__log(ep, QUIC_LOG_DEBUG, "quic: socket: %s", strerror(err ? err : EIO));
        ep->poll_events = 0;
        quic__poll_update(ep);
        return;
    }
    if (events & UV_WRITABLE)
        quic__txq_drain(ep);
    if (events & UV_READABLE)
        quic__recv_burst(ep);
}

/* ---- ngtcp2 allocator: the system's, counted per endpoint ------------------------------- */

static void quic__mem_count(void *user, void *p, bool add)
{
    quic_endpoint *ep = user;
    if (!p)
        return;
    size_t n = malloc_usable_size(p);
    if (add)
        ep->stats.ngtcp2_bytes += n;
    else
        ep->stats.ngtcp2_bytes -= n;
}

static void *quic__mem_malloc(size_t size, void *user)
{
    void *p = malloc(size);
    quic__mem_count(user, p, true);
    return p;
}

static void quic__mem_free(void *ptr, void *user)
{
    quic__mem_count(user, ptr, false);
    free(ptr);
}

static void *quic__mem_calloc(size_t n, size_t size, void *user)
{
    void *p = calloc(n, size);
    quic__mem_count(user, p, true);
    return p;
}

static void *quic__mem_realloc(void *ptr, size_t size, void *user)
{
    size_t old = ptr ? malloc_usable_size(ptr) : 0;
    void *p = realloc(ptr, size);
    if (!p && size)
        return NULL; /* ptr untouched */
    quic_endpoint *ep = user;
    ep->stats.ngtcp2_bytes -= old;
    quic__mem_count(user, p, true);
    return p;
}

/* ---- loop handles ------------------------------------------------------------------------ */

static void quic__on_timer(uv_timer_t *t)
{
    quic_endpoint *ep = t->data;
    ep->timer_at = UINT64_MAX;
    uint64_t now = quic__now();
    while (ep->heap_len && ep->heap[0]->expiry <= now && !ep->closing) {
        quic_conn *c = ep->heap[0];
        quic__heap_remove(ep, c);
        if (c->state == ST_CLOSING || c->state == ST_DRAINING) {
            quic__set_state(c, ST_DEAD);
        } else if (c->state == ST_HANDSHAKE || c->state == ST_OPEN) {
            c->busy++;
            int rv = ngtcp2_conn_handle_expiry(c->conn, now);
            c->busy--;
            if (rv != 0)
                quic__conn_fail(c, rv);
        }
        c->expiry_pass = true;
        bool alive = quic__conn_service(c);
        if (alive)
            c->expiry_pass = false;
    }
    quic__tx_flush(ep);
    quic__timer_rearm(ep);
}

/* One pass over the connections dirty now; one that re-marks itself (packet budget) waits for
 * the next pass, so a bulk sender cannot starve the loop. Runs before the poll (idle) and after
 * it (check). */
static void quic__service_dirty(quic_endpoint *ep)
{
    quic_conn *last = ep->dtail;
    while (ep->dhead && ep->sends_pending == 0 && !ep->closing) {
        quic_conn *c = ep->dhead; /* pop the head */
        ep->dhead = c->dnext;
        if (ep->dhead)
            ep->dhead->dprev = NULL;
        else
            ep->dtail = NULL;
        c->dirty = false;
        c->dnext = NULL;
        bool end = c == last;
        quic__conn_service(c);
        if (end)
            break;
    }
    quic__tx_flush(ep);
    if (!ep->dhead || ep->sends_pending > 0 || ep->closing) {
        uv_idle_stop(&ep->idle);
        uv_check_stop(&ep->check);
        ep->idle_on = false;
    }
}

static void quic__on_idle(uv_idle_t *h)
{
    quic__service_dirty(h->data);
}

static void quic__on_check(uv_check_t *h)
{
    quic__service_dirty(h->data);
}

/* ---- endpoint ---------------------------------------------------------------------------- */

static void quic__on_handle_closed(uv_handle_t *h)
{
    quic_endpoint *ep = h->data;
    if (--ep->handles == 0) {
        free(ep->cidt.buckets);
        free(ep->tokt.buckets);
        free(ep->heap);
        free(ep->alpn);
        free(ep->bind_host);
        free(ep->recvbuf);
        for (int cls = 0; cls < QUIC__CHUNK_CLASSES; cls++) {
            while (ep->chunk_free[cls]) {
                qchunk *k = ep->chunk_free[cls];
                ep->chunk_free[cls] = k->next;
                free(k);
            }
        }
        free(ep);
    }
}

static void quic__endpoint_release(quic_endpoint *ep)
{
    if (ep->cred)
        gnutls_certificate_free_credentials(ep->cred);
    if (ep->prio)
        gnutls_priority_deinit(ep->prio);
    ep->cred = NULL;
    ep->prio = NULL;
}

/* SHA-256 over a label and the private key: the same key gives the same stateless reset
 * tokens after a restart, and the secret reveals nothing about the key. */
static int quic__derive_reset_secret(const identity *id, uint8_t out[32])
{
    static const char label[] = "macula quic stateless reset v1";
    size_t len = 0;
    const char *pem = identity_key_pem(id, &len);
    gnutls_hash_hd_t h;
    if (!pem || gnutls_hash_init(&h, GNUTLS_DIG_SHA256) != 0)
        return QUIC_ETLS;
    int rc = gnutls_hash(h, label, sizeof label);
    rc |= gnutls_hash(h, pem, len);
    gnutls_hash_deinit(h, out);
    return rc == 0 ? QUIC_OK : QUIC_ETLS;
}

/* Opens the endpoint's non-blocking UDP socket bound to addr (dual-stack for "::" where the
 * system's default allows it), with large buffers and, where the kernel has it, UDP GRO.
 * Fills ep->local; returns the descriptor, or -1 (logged). */
static int quic__socket_open(quic_endpoint *ep, const struct sockaddr *addr)
{
    int fd = socket(addr->sa_family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    socklen_t namelen = sizeof ep->local;
    if (fd < 0 || bind(fd, addr, quic__sa_len(addr)) != 0 ||
        getsockname(fd, (struct sockaddr *)&ep->local, &namelen) != 0) {
        quic__log(ep, QUIC_LOG_ERROR, "quic: cannot bind UDP %s:%u: %s", ep->bind_host,
                  ep->cfg.bind_port, strerror(errno));
        if (fd >= 0)
            close(fd);
        return -1;
    }
    ep->locallen = (ngtcp2_socklen)namelen;
    int sz = QUIC__SOCKBUF;
    (void)setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &sz, sizeof sz); /* the kernel may cap it */
    (void)setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &sz, sizeof sz);
#ifdef UDP_GRO
    int on = 1;
    ep->gro = !ep->cfg.no_udp_gro && setsockopt(fd, SOL_UDP, UDP_GRO, &on, sizeof on) == 0;
#endif
    if (!ep->gro)
        quic__log(ep, QUIC_LOG_DEBUG, "quic: no UDP GRO: one datagram per receive buffer");
    return fd;
}

int quic_endpoint_new(uv_loop_t *loop, const quic_config *cfg, quic_endpoint **out)
{
    if (out)
        *out = NULL;
    if (!loop || !cfg || !cfg->id || !out)
        return QUIC_EINVAL;
    const char *alpn = cfg->alpn ? cfg->alpn : QUIC_DEFAULT_ALPN;
    if (strlen(alpn) == 0 || strlen(alpn) > 255)
        return QUIC_EINVAL;
    quic_endpoint *ep = calloc(1, sizeof *ep);
    uint8_t *rbuf = ep ? malloc((size_t)QUIC__RECV_CHUNKS * QUIC__RECV_BUF) : NULL;
    if (!rbuf) {
        free(ep);
        return QUIC_ENOMEM;
    }
    ep->recvbuf = rbuf;
    ep->fd = -1;
    ep->loop = loop;
    ep->cfg = *cfg;
    quic_config *c = &ep->cfg;
    if (!c->idle_timeout_ms)
        c->idle_timeout_ms = QUIC_DEFAULT_IDLE_TIMEOUT_MS;
    if (!c->handshake_timeout_ms)
        c->handshake_timeout_ms = QUIC_DEFAULT_HANDSHAKE_TIMEOUT_MS;
    if (!c->stream_window)
        c->stream_window = QUIC_DEFAULT_STREAM_WINDOW;
    if (!c->conn_window)
        c->conn_window = QUIC_DEFAULT_CONN_WINDOW;
    if (!c->max_streams)
        c->max_streams = QUIC_DEFAULT_MAX_STREAMS;
    if (!c->stream_send_buffer)
        c->stream_send_buffer = QUIC_DEFAULT_STREAM_SEND_BUFFER;
    if (!c->max_connections)
        c->max_connections = QUIC_DEFAULT_MAX_CONNECTIONS;
    if (!c->retry_half_open)
        c->retry_half_open = QUIC_DEFAULT_RETRY_HALF_OPEN;
    if (!c->log_level)
        c->log_level = QUIC_LOG_INFO;
    ep->alpn = strdup(alpn);
    ep->alpnlen = strlen(alpn);
    ep->bind_host = strdup(cfg->bind_host ? cfg->bind_host : "0.0.0.0");
    c->alpn = ep->alpn;
    c->bind_host = ep->bind_host;
    ep->timer_at = UINT64_MAX;
    ep->cidt.nbuckets = ep->tokt.nbuckets = QUIC__INITIAL_BUCKETS;
    ep->cidt.buckets = calloc(QUIC__INITIAL_BUCKETS, sizeof *ep->cidt.buckets);
    ep->tokt.buckets = calloc(QUIC__INITIAL_BUCKETS, sizeof *ep->tokt.buckets);
    int rc = QUIC_ENOMEM;
    uint8_t key[16];
    if (!ep->alpn || !ep->bind_host || !ep->cidt.buckets || !ep->tokt.buckets)
        goto fail_mem;
    if (gnutls_rnd(GNUTLS_RND_KEY, key, sizeof key) != 0 ||
        gnutls_rnd(GNUTLS_RND_KEY, ep->token_secret, sizeof ep->token_secret) != 0 ||
        quic__derive_reset_secret(cfg->id, ep->reset_secret) != QUIC_OK) {
        rc = QUIC_ETLS;
        goto fail_mem;
    }
    memcpy(&ep->hash_k0, key, 8);
    memcpy(&ep->hash_k1, key + 8, 8);
    if (identity_credentials(cfg->id, &ep->cred) != IDENTITY_OK) {
        ep->cred = NULL;
        quic__log(ep, QUIC_LOG_ERROR, "quic: cannot make TLS credentials from the identity");
        rc = QUIC_ETLS;
        goto fail_mem;
    }
    gnutls_certificate_set_verify_function(ep->cred, quic__tls_verify);
    if (gnutls_priority_init(&ep->prio, QUIC__PRIORITY, NULL) != 0) {
        ep->prio = NULL;
        rc = QUIC_ETLS;
        goto fail_mem;
    }
    struct sockaddr_storage bind_addr;
    if (quic__parse_addr(ep->bind_host, cfg->bind_port, &bind_addr) != QUIC_OK) {
        quic__log(ep, QUIC_LOG_ERROR, "quic: bind address \"%s\" is not a numeric IP address",
                  ep->bind_host);
        rc = QUIC_EADDR;
        goto fail_mem;
    }
    ep->mem = (ngtcp2_mem){.user_data = ep,
                           .malloc = quic__mem_malloc,
                           .free = quic__mem_free,
                           .calloc = quic__mem_calloc,
                           .realloc = quic__mem_realloc};
    quic__callbacks_init(&ep->cb_client, false);
    quic__callbacks_init(&ep->cb_server, true);

    ep->fd = quic__socket_open(ep, (const struct sockaddr *)&bind_addr);
    if (ep->fd < 0) {
        rc = QUIC_EIO;
        goto fail_mem;
    }
    /* from here on the handles exist and the memory goes through quic__on_handle_closed */
    uv_timer_init(loop, &ep->timer);
    uv_idle_init(loop, &ep->idle);
    uv_check_init(loop, &ep->check);
    ep->poll.data = ep->timer.data = ep->idle.data = ep->check.data = ep;
    ep->handles = 3;
    int r = uv_poll_init_socket(loop, &ep->poll, ep->fd);
    if (r == 0) {
        ep->handles++;
        r = uv_poll_start(&ep->poll, UV_READABLE, quic__on_poll);
    }
    if (r != 0) {
        quic__log(ep, QUIC_LOG_ERROR, "quic: cannot watch the UDP socket: %s", uv_strerror(r));
        quic__endpoint_release(ep);
        ep->closing = true;
        if (ep->handles == 4)
            uv_close((uv_handle_t *)&ep->poll, quic__on_handle_closed);
        close(ep->fd);
        ep->fd = -1;
        uv_close((uv_handle_t *)&ep->timer, quic__on_handle_closed);
        uv_close((uv_handle_t *)&ep->idle, quic__on_handle_closed);
        uv_close((uv_handle_t *)&ep->check, quic__on_handle_closed);
        return QUIC_EIO;
    }
    ep->poll_events = UV_READABLE;
    *out = ep;
    return QUIC_OK;
fail_mem:
    quic__endpoint_release(ep);
    free(ep->cidt.buckets);
    free(ep->tokt.buckets);
    free(ep->alpn);
    free(ep->bind_host);
    free(ep->recvbuf);
    free(ep);
    return rc;
}

uint16_t quic_endpoint_port(const quic_endpoint *ep)
{
    if (ep->local.ss_family == AF_INET6)
        return ntohs(((const struct sockaddr_in6 *)&ep->local)->sin6_port);
    return ntohs(((const struct sockaddr_in *)&ep->local)->sin_port);
}

void quic_endpoint_stats_get(const quic_endpoint *ep, quic_endpoint_stats *out)
{
    *out = ep->stats;
    out->connections = ep->nconns;
    out->cids = ep->cidt.n;
    out->reset_tokens = ep->tokt.n;
    out->half_open = ep->half_open;
    out->chunk_pool = 0;
    for (int cls = 0; cls < QUIC__CHUNK_CLASSES; cls++)
        out->chunk_pool += ep->chunk_pool[cls];
    out->gro = ep->gro;
}

void quic_endpoint_close(quic_endpoint *ep)
{
    if (!ep || ep->closing)
        return;
    ep->closing = true; /* no new connections from here on, not even from on_closed */
    quic_conn *c = ep->all;
    while (c) {
        quic_conn *next = c->anext;
        if (c->state == ST_HANDSHAKE || c->state == ST_OPEN) {
            ngtcp2_connection_close_error ccerr;
            static const char r[] = "endpoint closing";
            ngtcp2_connection_close_error_set_application_error(&ccerr, 0, (const uint8_t *)r,
                                                                sizeof r - 1);
            bool was_open = c->state == ST_OPEN;
            quic__conn_enter_closing(c, &ccerr);
            quic__report_closed(c, QUIC_OK, false, was_open, 0, r);
        }
        quic__conn_free(c);
        c = next;
    }
    quic__tx_flush(ep); /* the CONNECTION_CLOSEs */
    quic__txq_free(ep); /* what the socket did not take is dropped, as a datagram may be */
    quic__endpoint_release(ep);
    uv_close((uv_handle_t *)&ep->poll, quic__on_handle_closed); /* before the socket goes */
    close(ep->fd);
    ep->fd = -1;
    uv_close((uv_handle_t *)&ep->timer, quic__on_handle_closed);
    uv_close((uv_handle_t *)&ep->idle, quic__on_handle_closed);
    uv_close((uv_handle_t *)&ep->check, quic__on_handle_closed);
}

/* ---- connection API ---------------------------------------------------------------------- */

void quic_conn_close(quic_conn *c, uint64_t app_code, const char *reason)
{
    if (!c || c->close_req || (c->state != ST_HANDSHAKE && c->state != ST_OPEN))
        return;
    c->close_req = true;
    c->close_code = app_code;
    if (reason)
        c->close_reason = quic__reason_dup((const uint8_t *)reason, strlen(reason));
    quic__mark_dirty(c);
}

int quic_conn_update_key(quic_conn *c)
{
    if (!c || !c->conn || c->state != ST_OPEN || c->close_req)
        return QUIC_EINVAL;
    /* inside ngtcp2 (a callback of c) the keys must not turn under its feet */
    if (c->busy > 0 || ngtcp2_conn_initiate_key_update(c->conn, quic__now()) != 0)
        return QUIC_EAGAIN;
    quic__mark_dirty(c);
    return QUIC_OK;
}

const uint8_t *quic_conn_peer_id(const quic_conn *c)
{
    return c && c->peer_id_set ? c->peer_id : NULL;
}

bool quic_conn_is_server(const quic_conn *c)
{
    return c->server;
}

const struct sockaddr *quic_conn_peer_addr(const quic_conn *c)
{
    if (!c->conn)
        return NULL;
    return (const struct sockaddr *)ngtcp2_conn_get_path(c->conn)->remote.addr;
}

void quic_conn_set_user(quic_conn *c, void *user)
{
    c->user = user;
}
void *quic_conn_user(const quic_conn *c)
{
    return c->user;
}
quic_endpoint *quic_conn_endpoint(const quic_conn *c)
{
    return c->ep;
}

/* ---- stream API -------------------------------------------------------------------------- */

static bool quic__conn_usable(const quic_conn *c)
{
    return c && c->state == ST_OPEN && !c->close_req;
}

int quic_stream_open(quic_conn *c, int64_t *sid)
{
    if (!c || !sid)
        return QUIC_EINVAL;
    if (!quic__conn_usable(c))
        return QUIC_ECLOSED;
    quic_stream *s = quic__stream_new(c, -1);
    if (!s)
        return QUIC_ENOMEM;
    int64_t id;
    int rv = ngtcp2_conn_open_bidi_stream(c->conn, &id, s);
    if (rv != 0) {
        quic__stream_free(c, s);
        return rv == NGTCP2_ERR_STREAM_ID_BLOCKED ? QUIC_ESTREAMLIMIT : QUIC_ENOMEM;
    }
    s->id = id;
    *sid = id;
    return QUIC_OK;
}

/* The stream a write may go to, or an error (QUIC_EAGAIN: the send queue is full). */
static int quic__stream_writable(quic_conn *c, int64_t sid, quic_stream **out)
{
    if (!quic__conn_usable(c))
        return QUIC_ECLOSED;
    quic_stream *s = c->streams && c->streams->id == sid ? c->streams : quic__stream_find(c, sid);
    if (!s || s->fin_queued || s->reset)
        return QUIC_ESTREAM;
    *out = s;
    return QUIC_OK;
}

/* Where the next len bytes of s go: the tail chunk when it has room (the bytes before
 * k->len may be in ngtcp2's hands, they do not move), else a new chunk. NULL: no memory. */
static qchunk *quic__stream_room(quic_endpoint *ep, quic_stream *s, size_t len)
{
    qchunk *k = s->tail;
    if (k && k->cap - k->len >= len)
        return k;
    k = quic__chunk_new(ep, len);
    if (!k)
        return NULL;
    k->next = NULL;
    k->off = s->written;
    k->len = 0;
    if (s->tail)
        s->tail->next = k;
    else
        s->head = k;
    s->tail = k;
    return k;
}

/* len bytes were appended to s's tail chunk: they go out when the connection is serviced. */
static void quic__stream_queued(quic_conn *c, quic_stream *s, size_t len)
{
    if (len > 0) {
        s->tail->len += len;
        s->written += len;
        if (!s->cur)
            s->cur = s->tail;
    }
    quic__send_list_add(c, s);
    quic__mark_dirty(c);
}

int quic_stream_write(quic_conn *c, int64_t sid, const uint8_t *data, size_t len, bool fin)
{
    if (!c || (len > 0 && !data))
        return QUIC_EINVAL;
    quic_stream *s;
    int rc = quic__stream_writable(c, sid, &s);
    if (rc != QUIC_OK)
        return rc;
    if (len > 0) {
        if (s->written - s->acked >= c->ep->cfg.stream_send_buffer) {
            s->want_writable = true;
            return QUIC_EAGAIN;
        }
        qchunk *k = quic__stream_room(c->ep, s, len);
        if (!k)
            return QUIC_ENOMEM;
        memcpy(k->data + k->len, data, len);
    }
    if (fin)
        s->fin_queued = true;
    quic__stream_queued(c, s, len);
    return QUIC_OK;
}

int quic_stream_reserve(quic_conn *c, int64_t sid, size_t min, uint8_t **buf, size_t *room)
{
    if (!c || !buf || !room || min == 0)
        return QUIC_EINVAL;
    quic_stream *s;
    int rc = quic__stream_writable(c, sid, &s);
    if (rc != QUIC_OK)
        return rc;
    if (s->written - s->acked >= c->ep->cfg.stream_send_buffer) {
        s->want_writable = true;
        return QUIC_EAGAIN;
    }
    qchunk *k = quic__stream_room(c->ep, s, min);
    if (!k)
        return QUIC_ENOMEM;
    *buf = k->data + k->len;
    *room = k->cap - k->len;
    return QUIC_OK;
}

int quic_stream_commit(quic_conn *c, int64_t sid, size_t len)
{
    if (!c)
        return QUIC_EINVAL;
    quic_stream *s;
    int rc = quic__stream_writable(c, sid, &s);
    if (rc != QUIC_OK)
        return rc;
    if (!s->tail || len > s->tail->cap - s->tail->len)
        return QUIC_EINVAL;
    if (len > 0)
        quic__stream_queued(c, s, len);
    return QUIC_OK;
}

size_t quic_stream_queued(const quic_conn *c, int64_t sid)
{
    const quic_stream *s = c ? quic__stream_find(c, sid) : NULL;
    return s ? (size_t)(s->written - s->acked) : 0;
}

int quic_stream_reset(quic_conn *c, int64_t sid, uint64_t app_code)
{
    if (!c)
        return QUIC_EINVAL;
    if (!quic__conn_usable(c))
        return QUIC_ECLOSED;
    quic_stream *s = quic__stream_find(c, sid);
    if (!s)
        return QUIC_ESTREAM;
    s->reset = true;
    quic__send_list_remove(c, s);
    if (ngtcp2_conn_shutdown_stream(c->conn, sid, app_code) != 0)
        return QUIC_ESTREAM;
    quic__mark_dirty(c);
    return QUIC_OK;
}

int quic_stream_consume(quic_conn *c, int64_t sid, size_t n)
{
    if (!c)
        return QUIC_EINVAL;
    if (!quic__conn_usable(c))
        return QUIC_ECLOSED;
    if (!quic__stream_find(c, sid))
        return QUIC_ESTREAM;
    ngtcp2_conn_extend_max_stream_offset(c->conn, sid, n);
    ngtcp2_conn_extend_max_offset(c->conn, n);
    quic__mark_dirty(c);
    return QUIC_OK;
}
