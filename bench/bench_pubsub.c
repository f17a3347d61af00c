/*
 * bench/bench_pubsub.c — pub/sub and RPC through macula nodes beside nats-server, mosquitto and
 * redis-server (issue 5). bench/pubsub.sh starts the servers and calls this once per cell.
 *
 *   bench_pubsub pubsub SYS PUB_ADDR SUB_ADDR NSUBS SIZE COUNT LATCOUNT
 *   bench_pubsub rpc    SYS CALL_ADDR SERVE_ADDR INFLIGHT DURATION_MS
 *
 * SYS: macula (ADDR = https://HOST:PORT of a `macula node`, realm from $BENCH_REALM), nats,
 * redis, mqtt (ADDR = HOST:PORT, plain TCP) and natss, rediss, mqtts (the same over TLS 1.3,
 * GnuTLS, server certificate not verified: a benchmark).
 *
 * pubsub: one publisher connection at PUB_ADDR and NSUBS subscriber connections at SUB_ADDR,
 * each subscriber a thread of its own (the macula client API's model: one thread per
 * connection; the peers get the same). Subscribers use a one-level wildcard pattern (macula
 * and NATS `bench.*`, redis PSUBSCRIBE `bench.*`, MQTT `bench/+`, QoS 0); the publisher
 * publishes to `bench.t` (`bench/t`). Payloads of SIZE bytes start with a phase, a sequence
 * number and the send time (CLOCK_MONOTONIC, same process, so no clock skew).
 *   warm-up   a message every 20 ms until every subscriber has received one (at most 90 s:
 *             a macula subscriber on another node must first be found through the DHT index)
 *   throughput COUNT messages, the publisher held to a window of W messages ahead of the
 *             slowest subscriber (W = min(1000, 256 KiB / SIZE)): the same end-to-end flow
 *             control for every system; without it a subscriber that falls behind is cut off
 *             (macula: send queue full, redis: output buffer limit, NATS: slow consumer).
 *             A waiting publisher is woken by the subscriber whose progress makes what it
 *             waits for hold (once per wait, not once per delivery): the peers' through a
 *             condition variable, macula's (which keeps its connection running in
 *             macula_mesh_run meanwhile) through macula_mesh_wake.
 *             The peers' publisher buffers writes (flushed at 16 KiB or when it must wait), as
 *             their own client libraries do; macula's publisher calls macula_mesh_publish
 *             (QoS 0 queues; the API sends at 16 KiB) and macula_mesh_flush when it must wait.
 *             -> deliveries_per_s (messages received by all subscribers / time from the first
 *                publish to the last delivery), publishes_per_s, lost (both of the messages
 *                actually published: the run stops early when the window's wait times out)
 *   latency   LATCOUNT messages, one in flight: publish, wait until every subscriber has it.
 *             -> lat_p50_us, lat_p99_us (send -> callback/parse in the subscriber, every
 *                delivery a sample)
 *
 * rpc: an echo of a 16-byte argument. A server thread connected at SERVE_ADDR answers; the
 * caller at CALL_ADDR keeps INFLIGHT calls outstanding for DURATION_MS after a warm-up.
 *   macula  macula_rpc_advertise("bench.echo") / macula_rpc_call (mesh_rpc.h)
 *   nats    request/reply: the server subscribes `bench.echo`, the caller publishes with a
 *           reply subject `_INBOX.<id>.<n>` under its one `_INBOX.<id>.*` subscription
 *   redis   pub/sub echo: the server PSUBSCRIBEs `bench.echo`, the caller PUBLISHes a request
 *           that names its reply channel; the answer is PUBLISHed there (one subscribed and one
 *           command connection each, since a subscribed RESP2 connection cannot PUBLISH)
 *   mqtt    the same pair of topics over MQTT 3.1.1 QoS 0 (`bench/echo`, `bench/reply/<id>`)
 *   -> calls_per_s, call_p50_us, call_p99_us, call_errors
 *
 * Output: one "name value" line per result.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <gnutls/gnutls.h>
#include <uv.h>

#include "macula/mesh.h"
#include "macula/mesh_rpc.h"

#define BP_MAX_SUBS 64
#define BP_MAX_FRAME (1u << 20) /* bound on one incoming protocol frame */
#define BP_WBUF_FLUSH 16384u
#define BP_MAGIC 0x42505342u

enum { PH_WARM = 1, PH_TPUT = 2, PH_LAT = 3 };

static void die(const char *what, const char *why)
{
    fprintf(stderr, "bench_pubsub: %s: %s\n", what, why);
    exit(1);
}

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void sleep_us(unsigned us)
{
    struct timespec ts = {.tv_sec = us / 1000000u, .tv_nsec = (long)(us % 1000000u) * 1000};
    nanosleep(&ts, NULL);
}

static int cmp_u32(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return x < y ? -1 : x > y;
}

static uint32_t pct(uint32_t *v, size_t n, double p)
{
    if (n == 0) {
        return 0;
    }
    qsort(v, n, sizeof *v, cmp_u32);
    size_t i = (size_t)(p * (double)(n - 1) + 0.5);
    return v[i < n ? i : n - 1];
}

/* ---- the message header every payload starts with (16 bytes) ----------------------------- */

typedef struct bp_hdr {
    uint32_t phase; /* BP_MAGIC ^ phase */
    uint32_t seq;
    uint64_t t_ns;
} bp_hdr;

static bool hdr_get(const uint8_t *p, size_t n, bp_hdr *h)
{
    if (n < sizeof *h) {
        return false;
    }
    memcpy(h, p, sizeof *h);
    h->phase ^= BP_MAGIC;
    return h->phase >= PH_WARM && h->phase <= PH_LAT;
}

/* ---- a TCP (or TLS) connection to a peer server ------------------------------------------ */

typedef struct tconn {
    int fd;
    gnutls_session_t tls;
    uint8_t *rbuf;
    size_t rlen, rcap;
    uint8_t *wbuf;
    size_t wlen, wcap;
} tconn;

static gnutls_certificate_credentials_t g_cred;

static void t_split(const char *addr, char *host, size_t hs, int *port)
{
    const char *c = strrchr(addr, ':');
    if (c == NULL || (size_t)(c - addr) >= hs) {
        die("address", addr);
    }
    memcpy(host, addr, (size_t)(c - addr));
    host[c - addr] = '\0';
    *port = (int)strtol(c + 1, NULL, 10);
}

static void t_open(tconn *t, const char *addr)
{
    char host[128];
    int port;
    t_split(addr, host, sizeof host, &port);
    memset(t, 0, sizeof *t);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    if (inet_pton(AF_INET, host, &sa.sin_addr) != 1) {
        die("address (numeric IPv4 expected)", host);
    }
    t->fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (t->fd < 0 || connect(t->fd, (struct sockaddr *)&sa, sizeof sa) != 0) {
        die(addr, strerror(errno));
    }
    int one = 1;
    setsockopt(t->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    t->rcap = 65536;
    t->rbuf = malloc(t->rcap);
    t->wcap = 65536;
    t->wbuf = malloc(t->wcap);
    if (t->rbuf == NULL || t->wbuf == NULL) {
        die("malloc", "tconn");
    }
}

static void t_tls(tconn *t)
{
    if (gnutls_init(&t->tls, GNUTLS_CLIENT) != 0 ||
        gnutls_priority_set_direct(t->tls, "NORMAL:-VERS-ALL:+VERS-TLS1.3", NULL) != 0 ||
        gnutls_credentials_set(t->tls, GNUTLS_CRD_CERTIFICATE, g_cred) != 0) {
        die("gnutls", "session");
    }
    gnutls_transport_set_int(t->tls, t->fd);
    int rc;
    do {
        rc = gnutls_handshake(t->tls);
    } while (rc < 0 && !gnutls_error_is_fatal(rc));
    if (rc < 0) {
        die("TLS handshake", gnutls_strerror(rc));
    }
}

static void t_close(tconn *t)
{
    if (t->tls) {
        gnutls_deinit(t->tls);
    }
    if (t->fd >= 0) {
        close(t->fd);
    }
    free(t->rbuf);
    free(t->wbuf);
    t->fd = -1;
}

static void t_flush(tconn *t)
{
    size_t off = 0;
    while (off < t->wlen) {
        ssize_t n = t->tls ? gnutls_record_send(t->tls, t->wbuf + off, t->wlen - off)
                           : send(t->fd, t->wbuf + off, t->wlen - off, MSG_NOSIGNAL);
        if (n < 0 && (t->tls ? !gnutls_error_is_fatal((int)n) : errno == EINTR)) {
            continue;
        }
        if (n <= 0) {
            die("write", t->tls ? gnutls_strerror((int)n) : strerror(errno));
        }
        off += (size_t)n;
    }
    t->wlen = 0;
}

static void t_put(tconn *t, const void *p, size_t n)
{
    if (n == 0) {
        return;
    }
    if (t->wlen + n > t->wcap) {
        while (t->wlen + n > t->wcap) {
            t->wcap *= 2;
        }
        uint8_t *nb = realloc(t->wbuf, t->wcap);
        if (nb == NULL) {
            die("realloc", "wbuf");
        }
        t->wbuf = nb;
    }
    memcpy(t->wbuf + t->wlen, p, n);
    t->wlen += n;
}

/* Waits up to timeout_ms for input and reads what is there. 1: bytes read, 0: nothing. */
static int t_fill(tconn *t, int timeout_ms)
{
    if (!(t->tls && gnutls_record_check_pending(t->tls) > 0)) {
        struct pollfd pf = {.fd = t->fd, .events = POLLIN};
        int r = poll(&pf, 1, timeout_ms);
        if (r <= 0) {
            return 0;
        }
    }
    if (t->rlen == t->rcap) {
        if (t->rcap == 0 || t->rcap >= 2 * (size_t)BP_MAX_FRAME) {
            die("read", "frame larger than the bound");
        }
        t->rcap *= 2;
        uint8_t *nb = realloc(t->rbuf, t->rcap);
        if (nb == NULL) {
            die("realloc", "rbuf");
        }
        t->rbuf = nb;
    }
    ssize_t n;
    do {
        n = t->tls ? gnutls_record_recv(t->tls, t->rbuf + t->rlen, t->rcap - t->rlen)
                   : recv(t->fd, t->rbuf + t->rlen, t->rcap - t->rlen, 0);
    } while (n < 0 && (t->tls ? !gnutls_error_is_fatal((int)n) : errno == EINTR));
    if (n <= 0) {
        die("read", n == 0 ? "connection closed by the server"
                           : (t->tls ? gnutls_strerror((int)n) : strerror(errno)));
    }
    t->rlen += (size_t)n;
    return 1;
}

static void t_consume(tconn *t, size_t n)
{
    memmove(t->rbuf, t->rbuf + n, t->rlen - n);
    t->rlen -= n;
}

/* ---- one client connection of any system -------------------------------------------------- */

typedef enum { SYS_MACULA, SYS_NATS, SYS_REDIS, SYS_MQTT } sys_kind;

typedef void (*bus_msg_fn)(void *ctx, const char *topic, size_t tlen, const char *reply,
                           size_t rlen, const uint8_t *p, size_t n);

typedef struct bus {
    sys_kind kind;
    bool tls;
    tconn c;         /* nats, mqtt: the connection; redis: the subscribed one */
    tconn cmd;       /* redis: the command connection (PUBLISH) */
    bool has_cmd;    /* redis: cmd is open */
    size_t cmd_owed; /* redis: PUBLISH replies not read yet */
    macula_mesh *m;
    bus_msg_fn fn;
    void *ctx;
    unsigned nats_sid;
    uint16_t mqtt_pid;
} bus;

static const char *g_realm;

static bool sys_parse(const char *s, sys_kind *k, bool *tls)
{
    static const struct {
        const char *name;
        sys_kind k;
        bool tls;
    } t[] = {{"macula", SYS_MACULA, true}, {"nats", SYS_NATS, false},   {"natss", SYS_NATS, true},
             {"redis", SYS_REDIS, false},  {"rediss", SYS_REDIS, true}, {"mqtt", SYS_MQTT, false},
             {"mqtts", SYS_MQTT, true}};
    for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
        if (strcmp(s, t[i].name) == 0) {
            *k = t[i].k;
            *tls = t[i].tls;
            return true;
        }
    }
    return false;
}

/* The system's spelling of a dotted topic (MQTT uses '/'). */
static void topic_of(const bus *b, const char *dotted, char *out, size_t n)
{
    snprintf(out, n, "%s", dotted);
    if (b->kind == SYS_MQTT) {
        for (char *p = out; *p; p++) {
            if (*p == '.') {
                *p = '/';
            }
        }
    }
}

/* ---- NATS text protocol ------------------------------------------------------------------- */

/* Parses what is buffered: MSG deliveries to fn, PING answered. Returns frames handled. */
static int nats_parse(bus *b)
{
    tconn *t = &b->c;
    int handled = 0;
    size_t off = 0;
    for (;;) {
        uint8_t *s = t->rbuf + off;
        size_t avail = t->rlen - off;
        uint8_t *eol = memmem(s, avail, "\r\n", 2);
        if (eol == NULL) {
            if (avail > 4096) {
                die("nats", "control line too long");
            }
            break;
        }
        size_t ll = (size_t)(eol - s);
        if (ll >= 4 && memcmp(s, "MSG ", 4) == 0) {
            /* MSG <subject> <sid> [reply-to] <#bytes> */
            char line[1024];
            if (ll >= sizeof line) {
                die("nats", "MSG line too long");
            }
            memcpy(line, s, ll);
            line[ll] = '\0';
            char *tok[6];
            int nt = 0;
            char *save = NULL;
            for (char *p = strtok_r(line, " ", &save); p && nt < 6;
                 p = strtok_r(NULL, " ", &save)) {
                tok[nt++] = p;
            }
            if (nt != 4 && nt != 5) {
                die("nats", "bad MSG line");
            }
            long nb = strtol(tok[nt - 1], NULL, 10);
            if (nb < 0 || (size_t)nb > BP_MAX_FRAME) {
                die("nats", "bad MSG size");
            }
            size_t need = ll + 2 + (size_t)nb + 2;
            if (avail < need) {
                break;
            }
            const char *reply = nt == 5 ? tok[3] : "";
            if (b->fn) {
                b->fn(b->ctx, tok[1], strlen(tok[1]), reply, strlen(reply), s + ll + 2, (size_t)nb);
            }
            off += need;
            handled++;
            continue;
        }
        if (ll == 4 && memcmp(s, "PING", 4) == 0) {
            t_put(t, "PONG\r\n", 6);
            t_flush(t);
        } else if (ll >= 4 && memcmp(s, "-ERR", 4) == 0) {
            die("nats server", (char *)s);
        }
        off += ll + 2; /* PONG, +OK, INFO */
        handled++;
    }
    t_consume(t, off);
    return handled;
}

/* Sends PING and reads until the PONG (everything before it is parsed). */
static void nats_sync(bus *b)
{
    t_put(&b->c, "PING\r\n", 6);
    t_flush(&b->c);
    for (;;) {
        uint8_t *e = memmem(b->c.rbuf, b->c.rlen, "PONG\r\n", 6);
        if (e != NULL && (e == b->c.rbuf || e[-1] == '\n')) {
            nats_parse(b);
            return;
        }
        if (!t_fill(&b->c, 10000)) {
            die("nats", "no PONG in 10 s");
        }
    }
}

static void nats_open(bus *b, const char *addr)
{
    t_open(&b->c, addr);
    while (memmem(b->c.rbuf, b->c.rlen, "\r\n", 2) == NULL) {
        if (!t_fill(&b->c, 10000)) {
            die("nats", "no INFO");
        }
    }
    t_consume(&b->c, b->c.rlen);
    if (b->tls) {
        t_tls(&b->c);
    }
    char m[160];
    int n = snprintf(m, sizeof m,
                     "CONNECT {\"verbose\":false,\"pedantic\":false,\"tls_required\":%s,"
                     "\"name\":\"bench\",\"lang\":\"c\",\"version\":\"0\",\"protocol\":1}\r\n",
                     b->tls ? "true" : "false");
    t_put(&b->c, m, (size_t)n);
    nats_sync(b);
}

/* ---- RESP (redis) ------------------------------------------------------------------------- */

/* One RESP value at p: an array of bulk strings / integers (items to v[], up to 4), or an
 * integer / simple string / error. Returns its length, 0 if incomplete. */
typedef struct resp_item {
    const uint8_t *p;
    size_t n;
} resp_item;

static size_t resp_line(const uint8_t *p, size_t n, long *val)
{
    const uint8_t *e = memmem(p, n, "\r\n", 2);
    if (e == NULL) {
        if (n > 64) {
            die("redis", "bad RESP line");
        }
        return 0;
    }
    *val = strtol((const char *)p + 1, NULL, 10);
    return (size_t)(e - p) + 2;
}

static size_t resp_value(const uint8_t *p, size_t n, resp_item *v, int *nv, bool *err)
{
    *nv = 0;
    *err = false;
    if (n == 0) {
        return 0;
    }
    long val;
    size_t l = resp_line(p, n, &val);
    if (l == 0) {
        return 0;
    }
    if (p[0] == ':' || p[0] == '+' || p[0] == '-') {
        *err = p[0] == '-';
        return l;
    }
    if (p[0] != '*' || val < 0 || val > 4) {
        die("redis", "unexpected RESP value");
    }
    size_t off = l;
    for (long i = 0; i < val; i++) {
        long len;
        size_t hl = resp_line(p + off, n - off, &len);
        if (hl == 0) {
            return 0;
        }
        if (p[off] == ':') {
            v[*nv] = (resp_item){p + off + 1, hl - 3};
            (*nv)++;
            off += hl;
            continue;
        }
        if (p[off] != '$' || len < 0 || (size_t)len > BP_MAX_FRAME) {
            die("redis", "unexpected RESP item");
        }
        if (n - off < hl + (size_t)len + 2) {
            return 0;
        }
        v[*nv] = (resp_item){p + off + hl, (size_t)len};
        (*nv)++;
        off += hl + (size_t)len + 2;
    }
    return off;
}

static void resp_cmd(tconn *t, int argc, const char **argv, const size_t *lens)
{
    char h[32];
    int n = snprintf(h, sizeof h, "*%d\r\n", argc);
    t_put(t, h, (size_t)n);
    for (int i = 0; i < argc; i++) {
        n = snprintf(h, sizeof h, "$%zu\r\n", lens[i]);
        t_put(t, h, (size_t)n);
        t_put(t, argv[i], lens[i]);
        t_put(t, "\r\n", 2);
    }
}

static int redis_parse(bus *b)
{
    tconn *t = &b->c;
    int handled = 0;
    size_t off = 0;
    for (;;) {
        resp_item v[4];
        int nv;
        bool err;
        size_t used = resp_value(t->rbuf + off, t->rlen - off, v, &nv, &err);
        if (used == 0) {
            break;
        }
        if (err) {
            die("redis server", "error reply");
        }
        if (nv == 4 && v[0].n == 8 && memcmp(v[0].p, "pmessage", 8) == 0 && b->fn) {
            b->fn(b->ctx, (const char *)v[2].p, v[2].n, "", 0, v[3].p, v[3].n);
        }
        off += used;
        handled++;
    }
    t_consume(t, off);
    return handled;
}

/* Reads the PUBLISH replies owed on the command connection (wait: block for all). */
static void redis_drain(bus *b, bool wait)
{
    tconn *t = &b->cmd;
    while (b->cmd_owed > 0) {
        size_t off = 0;
        for (;;) {
            resp_item v[4];
            int nv;
            bool err;
            size_t used = resp_value(t->rbuf + off, t->rlen - off, v, &nv, &err);
            if (used == 0) {
                break;
            }
            if (err) {
                die("redis server", "error reply to PUBLISH");
            }
            off += used;
            b->cmd_owed--;
        }
        t_consume(t, off);
        if (b->cmd_owed == 0 || !t_fill(t, wait ? 10000 : 0)) {
            if (wait && b->cmd_owed > 0) {
                die("redis", "no reply in 10 s");
            }
            return;
        }
    }
}

/* ---- MQTT 3.1.1 --------------------------------------------------------------------------- */

static void mqtt_packet(tconn *t, uint8_t type, const uint8_t *a, size_t an, const uint8_t *b,
                        size_t bn)
{
    uint8_t h[5];
    size_t hl = 0, rem = an + bn;
    h[hl++] = type;
    do {
        uint8_t d = rem % 128;
        rem /= 128;
        h[hl++] = (uint8_t)(d | (rem ? 0x80 : 0));
    } while (rem);
    t_put(t, h, hl);
    t_put(t, a, an);
    if (bn) {
        t_put(t, b, bn);
    }
}

/* One packet at p: type byte, body view. Returns its length, 0 if incomplete. */
static size_t mqtt_frame(const uint8_t *p, size_t n, uint8_t *type, const uint8_t **body,
                         size_t *blen)
{
    size_t rem = 0, i = 1;
    unsigned shift = 0;
    for (;;) {
        if (i >= n) {
            return 0;
        }
        if (i > 4) {
            die("mqtt", "bad remaining length");
        }
        rem |= (size_t)(p[i] & 0x7f) << shift;
        shift += 7;
        if (!(p[i++] & 0x80)) {
            break;
        }
    }
    if (rem > BP_MAX_FRAME) {
        die("mqtt", "packet larger than the bound");
    }
    if (n - i < rem) {
        return 0;
    }
    *type = p[0];
    *body = p + i;
    *blen = rem;
    return i + rem;
}

static int mqtt_parse(bus *b, uint8_t *last_type)
{
    tconn *t = &b->c;
    int handled = 0;
    size_t off = 0;
    for (;;) {
        uint8_t type;
        const uint8_t *body;
        size_t blen;
        size_t used = mqtt_frame(t->rbuf + off, t->rlen - off, &type, &body, &blen);
        if (used == 0) {
            break;
        }
        if ((type >> 4) == 3) { /* PUBLISH, QoS 0 */
            if (blen < 2) {
                die("mqtt", "short PUBLISH");
            }
            size_t tl = ((size_t)body[0] << 8) | body[1];
            if (tl + 2 > blen) {
                die("mqtt", "bad PUBLISH");
            }
            if (b->fn) {
                b->fn(b->ctx, (const char *)body + 2, tl, "", 0, body + 2 + tl, blen - 2 - tl);
            }
        }
        if (last_type) {
            *last_type = type;
        }
        off += used;
        handled++;
    }
    t_consume(t, off);
    return handled;
}

static void mqtt_wait(bus *b, uint8_t want)
{
    for (;;) {
        uint8_t last = 0;
        mqtt_parse(b, &last);
        if ((last >> 4) == want) {
            return;
        }
        if (!t_fill(&b->c, 10000)) {
            die("mqtt", "no answer in 10 s");
        }
    }
}

static void mqtt_open(bus *b, const char *addr)
{
    t_open(&b->c, addr);
    if (b->tls) {
        t_tls(&b->c);
    }
    static _Atomic unsigned cid;
    char id[32];
    int idl = snprintf(id, sizeof id, "bench-%d-%u", (int)getpid(), atomic_fetch_add(&cid, 1));
    uint8_t v[64] = {0, 4, 'M', 'Q', 'T', 'T', 4, 0x02, 0, 0, 0, (uint8_t)idl};
    memcpy(v + 12, id, (size_t)idl);
    mqtt_packet(&b->c, 0x10, v, 12 + (size_t)idl, NULL, 0);
    t_flush(&b->c);
    mqtt_wait(b, 2);
}

/* ---- macula ------------------------------------------------------------------------------- */

static void macula_on_msg(void *ctx, const char *topic, size_t topic_len, const char *pattern,
                          const uint8_t *payload, size_t payload_len)
{
    (void)pattern;
    bus *b = ctx;
    if (b->fn) {
        b->fn(b->ctx, topic, topic_len, "", 0, payload, payload_len);
    }
}

/* ---- the common interface ----------------------------------------------------------------- */

static void bus_open(bus *b, sys_kind k, bool tls, const char *addr, bus_msg_fn fn, void *ctx)
{
    memset(b, 0, sizeof *b);
    b->kind = k;
    b->tls = tls;
    b->fn = fn;
    b->ctx = ctx;
    b->c.fd = b->cmd.fd = -1;
    switch (k) {
    case SYS_MACULA: {
        macula_mesh_options o = {.realm = g_realm};
        int rc = macula_mesh_connect(addr, &o, &b->m);
        if (rc != MACULA_MESH_OK) {
            die("macula_mesh_connect", macula_mesh_strerror(rc));
        }
        break;
    }
    case SYS_NATS: nats_open(b, addr); break;
    case SYS_REDIS:
        t_open(&b->c, addr);
        if (tls) {
            t_tls(&b->c);
        }
        t_open(&b->cmd, addr);
        if (tls) {
            t_tls(&b->cmd);
        }
        b->has_cmd = true;
        break;
    case SYS_MQTT: mqtt_open(b, addr); break;
    }
}

static void bus_close(bus *b)
{
    if (b->m) {
        macula_mesh_disconnect(b->m);
    }
    if (b->c.fd >= 0) {
        t_close(&b->c);
    }
    if (b->has_cmd) {
        t_close(&b->cmd);
    }
}

/* Subscribes to a pattern given with dots and `*`; returns once the server confirmed (macula:
 * once sent; the warm-up waits for deliveries). */
static void bus_sub(bus *b, const char *pattern)
{
    char p[256];
    topic_of(b, pattern, p, sizeof p);
    switch (b->kind) {
    case SYS_MACULA: {
        int rc = macula_mesh_subscribe(b->m, p, 0, macula_on_msg, b);
        if (rc != MACULA_MESH_OK) {
            die("macula_mesh_subscribe", macula_mesh_strerror(rc));
        }
        break;
    }
    case SYS_NATS: {
        char m[320];
        int n = snprintf(m, sizeof m, "SUB %s %u\r\n", p, ++b->nats_sid);
        t_put(&b->c, m, (size_t)n);
        nats_sync(b);
        break;
    }
    case SYS_REDIS: {
        const char *argv[] = {"PSUBSCRIBE", p};
        size_t lens[] = {10, strlen(p)};
        resp_cmd(&b->c, 2, argv, lens);
        t_flush(&b->c);
        for (;;) {
            resp_item v[4];
            int nv;
            bool err;
            size_t used = resp_value(b->c.rbuf, b->c.rlen, v, &nv, &err);
            if (used > 0) {
                if (err || nv != 3) {
                    die("redis", "PSUBSCRIBE refused");
                }
                t_consume(&b->c, used);
                break;
            }
            if (!t_fill(&b->c, 10000)) {
                die("redis", "no PSUBSCRIBE answer");
            }
        }
        break;
    }
    case SYS_MQTT: {
        /* `*` -> `+` */
        for (char *q = p; *q; q++) {
            if (*q == '*') {
                *q = '+';
            }
        }
        size_t pl = strlen(p);
        uint8_t v[300];
        b->mqtt_pid++;
        v[0] = (uint8_t)(b->mqtt_pid >> 8);
        v[1] = (uint8_t)b->mqtt_pid;
        v[2] = (uint8_t)(pl >> 8);
        v[3] = (uint8_t)pl;
        memcpy(v + 4, p, pl);
        v[4 + pl] = 0; /* QoS 0 */
        mqtt_packet(&b->c, 0x82, v, 5 + pl, NULL, 0);
        t_flush(&b->c);
        mqtt_wait(b, 9);
        break;
    }
    }
}

/* Publishes (buffered for the peers: bus_flush sends). reply: NATS reply subject or NULL. */
static void bus_pub(bus *b, const char *topic, const char *reply, const void *p, size_t n)
{
    switch (b->kind) {
    case SYS_MACULA: {
        int rc = macula_mesh_publish(b->m, topic, p, n, 0);
        if (rc != MACULA_MESH_OK) {
            die("macula_mesh_publish", macula_mesh_last_error(b->m)[0]
                                           ? macula_mesh_last_error(b->m)
                                           : macula_mesh_strerror(rc));
        }
        break;
    }
    case SYS_NATS: {
        char h[320];
        int hl = reply ? snprintf(h, sizeof h, "PUB %s %s %zu\r\n", topic, reply, n)
                       : snprintf(h, sizeof h, "PUB %s %zu\r\n", topic, n);
        t_put(&b->c, h, (size_t)hl);
        t_put(&b->c, p, n);
        t_put(&b->c, "\r\n", 2);
        break;
    }
    case SYS_REDIS: {
        const char *argv[] = {"PUBLISH", topic, p};
        size_t lens[] = {7, strlen(topic), n};
        resp_cmd(&b->cmd, 3, argv, lens);
        b->cmd_owed++;
        break;
    }
    case SYS_MQTT: {
        char t[256];
        topic_of(b, topic, t, sizeof t);
        size_t tl = strlen(t);
        uint8_t v[260] = {(uint8_t)(tl >> 8), (uint8_t)tl};
        memcpy(v + 2, t, tl + 1); /* tl < 256 */
        mqtt_packet(&b->c, 0x30, v, 2 + tl, p, n);
        break;
    }
    }
}

static void bus_flush(bus *b)
{
    switch (b->kind) {
    case SYS_MACULA:
        if (macula_mesh_flush(b->m) != MACULA_MESH_OK) {
            die("macula_mesh_flush", macula_mesh_last_error(b->m));
        }
        break;
    case SYS_REDIS:
        t_flush(&b->cmd);
        redis_drain(b, false);
        break;
    default: t_flush(&b->c); break;
    }
}

/* Delivers what arrives for up to timeout_ms (returns earlier once something was handled). */
static void bus_poll(bus *b, int timeout_ms)
{
    switch (b->kind) {
    case SYS_MACULA:
        if (macula_mesh_run(b->m, (uint32_t)(timeout_ms > 0 ? timeout_ms : 1)) != MACULA_MESH_OK) {
            die("macula", macula_mesh_last_error(b->m));
        }
        return;
    case SYS_NATS:
        if (nats_parse(b) == 0 && t_fill(&b->c, timeout_ms)) {
            nats_parse(b);
        }
        return;
    case SYS_REDIS:
        if (redis_parse(b) == 0 && t_fill(&b->c, timeout_ms)) {
            redis_parse(b);
        }
        return;
    case SYS_MQTT:
        if (mqtt_parse(b, NULL) == 0 && t_fill(&b->c, timeout_ms)) {
            mqtt_parse(b, NULL);
        }
        return;
    }
}

/* ---- pub/sub ------------------------------------------------------------------------------ */

typedef struct sub_state sub_state;
struct sub_state {
    pthread_t th;
    bus b;
    const char *addr;
    sys_kind k;
    bool tls;
    _Atomic uint32_t warm;     /* warm-up messages seen */
    _Atomic uint32_t tput;     /* throughput messages seen */
    _Atomic uint32_t lat_last; /* seq + 1 of the last latency message */
    _Atomic uint64_t t_last;   /* time of the last throughput delivery */
    uint32_t *lat;             /* latency samples (ns / 1000) by seq */
    uint32_t latcount;
    _Atomic int ready;
};

static _Atomic int g_stop;
static pthread_mutex_t g_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t g_cv = PTHREAD_COND_INITIALIZER;
static _Atomic int g_waiting;
static macula_mesh *_Atomic g_pub_mesh; /* a macula publisher waits in macula_mesh_run */

/* What the publisher waits for (wait_until). A subscriber wakes it only once that holds, so a
 * wait costs one wake-up whatever the number of subscribers, for every system alike: the
 * harness's own wake-ups (a futex, or an eventfd and libuv's async spin) compete for the
 * machine's CPUs with the systems being measured, and ten per latency message were most of
 * the harness's kernel time. */
typedef bool (*pred_fn)(struct sub_state *subs, int n, uint32_t arg);
static _Atomic(pred_fn) g_pred;
static _Atomic uint32_t g_pred_arg;
static struct sub_state *g_subs; /* set before the subscriber threads start */
static int g_nsubs;

/* A subscriber made progress: if the publisher waits and what it waits for now holds, it is
 * woken, whichever way it waits (a condition variable, or a macula publisher's
 * macula_mesh_run through macula_mesh_wake). The fence pairs with wait_until's: either the
 * publisher's own check sees this progress, or this sees the publisher waiting. */
static void wake_publisher(void)
{
    atomic_thread_fence(memory_order_seq_cst);
    if (!atomic_load_explicit(&g_waiting, memory_order_relaxed)) {
        return;
    }
    pred_fn pred = atomic_load_explicit(&g_pred, memory_order_acquire);
    if (pred == NULL || !pred(g_subs, g_nsubs, atomic_load(&g_pred_arg))) {
        return;
    }
    macula_mesh *pm = atomic_load_explicit(&g_pub_mesh, memory_order_acquire);
    if (pm != NULL) {
        macula_mesh_wake(pm);
        return;
    }
    pthread_mutex_lock(&g_mu);
    pthread_cond_signal(&g_cv);
    pthread_mutex_unlock(&g_mu);
}

static void sub_on_msg(void *ctx, const char *topic, size_t tlen, const char *reply, size_t rlen,
                       const uint8_t *p, size_t n)
{
    (void)topic;
    (void)tlen;
    (void)reply;
    (void)rlen;
    sub_state *s = ctx;
    bp_hdr h;
    if (!hdr_get(p, n, &h)) {
        return;
    }
    uint64_t t = now_ns();
    if (h.phase == PH_WARM) {
        atomic_fetch_add(&s->warm, 1);
    } else if (h.phase == PH_TPUT) {
        atomic_store_explicit(&s->t_last, t, memory_order_relaxed);
        atomic_fetch_add_explicit(&s->tput, 1, memory_order_release);
    } else {
        if (h.seq < s->latcount) {
            s->lat[h.seq] = (uint32_t)((t - h.t_ns) / 1000u);
        }
        atomic_store_explicit(&s->lat_last, h.seq + 1, memory_order_release);
    }
    wake_publisher();
}

static void *sub_main(void *arg)
{
    sub_state *s = arg;
    bus_open(&s->b, s->k, s->tls, s->addr, sub_on_msg, s);
    bus_sub(&s->b, "bench.*");
    atomic_store(&s->ready, 1);
    while (!atomic_load(&g_stop)) {
        bus_poll(&s->b, 50);
    }
    bus_close(&s->b);
    return NULL;
}

/* Waits (bounded) until pred holds; the publisher's own connection keeps running. */
static bool wait_until(bus *pub, sub_state *subs, int n, pred_fn pred, uint32_t arg,
                       uint64_t timeout_ns)
{
    uint64_t until = now_ns() + timeout_ns;
    atomic_store(&g_pred_arg, arg);
    atomic_store(&g_pred, pred);
    while (!pred(subs, n, arg)) {
        if (now_ns() > until) {
            return false;
        }
        if (pub->kind == SYS_MACULA) {
            /* its own connection keeps running meanwhile; a subscriber's progress wakes it */
            atomic_store(&g_pub_mesh, pub->m);
            atomic_store(&g_waiting, 1);
            atomic_thread_fence(memory_order_seq_cst);
            if (!pred(subs, n, arg)) {
                macula_mesh_run(pub->m, 1);
            }
            atomic_store(&g_waiting, 0);
            continue;
        }
        if (pub->kind == SYS_REDIS) {
            redis_drain(pub, false);
        }
        pthread_mutex_lock(&g_mu);
        atomic_store(&g_waiting, 1);
        atomic_thread_fence(memory_order_seq_cst);
        if (!pred(subs, n, arg)) {
            struct timespec ts;
            clock_gettime(CLOCK_REALTIME, &ts);
            ts.tv_nsec += 1000000;
            if (ts.tv_nsec >= 1000000000) {
                ts.tv_sec++;
                ts.tv_nsec -= 1000000000;
            }
            pthread_cond_timedwait(&g_cv, &g_mu, &ts);
        }
        atomic_store(&g_waiting, 0);
        pthread_mutex_unlock(&g_mu);
    }
    return true;
}

static bool all_warm(sub_state *s, int n, uint32_t arg)
{
    (void)arg;
    for (int i = 0; i < n; i++) {
        if (atomic_load(&s[i].warm) == 0) {
            return false;
        }
    }
    return true;
}

static uint32_t min_tput(sub_state *s, int n)
{
    uint32_t m = UINT32_MAX;
    for (int i = 0; i < n; i++) {
        uint32_t v = atomic_load_explicit(&s[i].tput, memory_order_acquire);
        m = v < m ? v : m;
    }
    return m;
}

static bool tput_at_least(sub_state *s, int n, uint32_t arg)
{
    return min_tput(s, n) >= arg;
}

static bool lat_at_least(sub_state *s, int n, uint32_t arg)
{
    for (int i = 0; i < n; i++) {
        if (atomic_load_explicit(&s[i].lat_last, memory_order_acquire) < arg) {
            return false;
        }
    }
    return true;
}

static void fill_msg(uint8_t *buf, uint32_t phase, uint32_t seq)
{
    bp_hdr h = {.phase = BP_MAGIC ^ phase, .seq = seq, .t_ns = now_ns()};
    memcpy(buf, &h, sizeof h);
}

static int run_pubsub(int argc, char **argv)
{
    if (argc != 9) {
        die("usage", "pubsub SYS PUB_ADDR SUB_ADDR NSUBS SIZE COUNT LATCOUNT");
    }
    sys_kind k;
    bool tls;
    if (!sys_parse(argv[2], &k, &tls)) {
        die("unknown system", argv[2]);
    }
    int nsubs = (int)strtol(argv[5], NULL, 10);
    size_t size = strtoul(argv[6], NULL, 10);
    uint32_t count = (uint32_t)strtoul(argv[7], NULL, 10);
    uint32_t latcount = (uint32_t)strtoul(argv[8], NULL, 10);
    if (nsubs < 1 || nsubs > BP_MAX_SUBS || size < sizeof(bp_hdr) || size > 65536 || count < 1) {
        die("usage", "NSUBS 1..64, SIZE 16..65536, COUNT >= 1");
    }
    uint32_t window = (uint32_t)(262144u / size);
    window = window > 1000 ? 1000 : window;

    sub_state *subs = calloc((size_t)nsubs, sizeof *subs);
    if (subs == NULL) {
        die("calloc", "subs");
    }
    g_subs = subs;
    g_nsubs = nsubs;
    for (int i = 0; i < nsubs; i++) {
        subs[i].addr = argv[4];
        subs[i].k = k;
        subs[i].tls = tls;
        subs[i].latcount = latcount;
        subs[i].lat = calloc(latcount ? latcount : 1, sizeof *subs[i].lat);
        if (subs[i].lat == NULL || pthread_create(&subs[i].th, NULL, sub_main, &subs[i]) != 0) {
            die("subscriber", "thread");
        }
    }
    bus pub;
    bus_open(&pub, k, tls, argv[3], NULL, NULL);
    for (int i = 0; i < nsubs; i++) {
        while (!atomic_load(&subs[i].ready)) {
            sleep_us(1000);
        }
    }
    uint8_t *buf = calloc(1, size);
    if (buf == NULL) {
        die("calloc", "payload");
    }
    memset(buf, 'x', size);

    /* warm-up */
    uint64_t warm_until = now_ns() + 90000000000ull;
    uint32_t wseq = 0;
    while (!all_warm(subs, nsubs, 0)) {
        if (now_ns() > warm_until) {
            die("warm-up", "a subscriber received nothing in 90 s");
        }
        fill_msg(buf, PH_WARM, wseq++);
        bus_pub(&pub, "bench.t", NULL, buf, size);
        bus_flush(&pub);
        wait_until(&pub, subs, nsubs, all_warm, 0, 20000000ull);
    }
    wait_until(&pub, subs, nsubs, all_warm, 0, 200000000ull); /* let stragglers land */

    /* throughput */
    uint64_t t0 = now_ns();
    uint32_t published = 0; /* count, or fewer when messages were lost */
    for (uint32_t seq = 0; seq < count; seq++) {
        if (seq >= window && min_tput(subs, nsubs) < seq - window + 1) {
            bus_flush(&pub);
            if (!wait_until(&pub, subs, nsubs, tput_at_least, seq - window + 1, 2000000000ull)) {
                break; /* messages were lost (QoS 0): stop, count what arrived */
            }
        }
        fill_msg(buf, PH_TPUT, seq);
        bus_pub(&pub, "bench.t", NULL, buf, size);
        published = seq + 1;
        if (pub.kind != SYS_MACULA &&
            (pub.c.wlen >= BP_WBUF_FLUSH || pub.cmd.wlen >= BP_WBUF_FLUSH)) {
            bus_flush(&pub);
        }
    }
    uint64_t t_pub = now_ns() - t0;
    bus_flush(&pub);
    wait_until(&pub, subs, nsubs, tput_at_least, published, 2000000000ull);
    uint64_t delivered = 0, t_end = t0;
    for (int i = 0; i < nsubs; i++) {
        delivered += atomic_load(&subs[i].tput);
        uint64_t t = atomic_load(&subs[i].t_last);
        t_end = t > t_end ? t : t_end;
    }
    double secs = (double)(t_end - t0) / 1e9;
    printf("deliveries_per_s %.0f\n", secs > 0 ? (double)delivered / secs : 0.0);
    printf("publishes_per_s %.0f\n", (double)published / ((double)t_pub / 1e9));
    printf("lost %llu\n", (unsigned long long)((uint64_t)published * (uint64_t)nsubs - delivered));

    /* latency, one in flight */
    uint32_t lat_ok = 0;
    for (uint32_t seq = 0; seq < latcount; seq++) {
        fill_msg(buf, PH_LAT, seq);
        bus_pub(&pub, "bench.t", NULL, buf, size);
        bus_flush(&pub);
        if (wait_until(&pub, subs, nsubs, lat_at_least, seq + 1, 1000000000ull)) {
            lat_ok++;
        }
    }
    atomic_store(&g_stop, 1);
    for (int i = 0; i < nsubs; i++) {
        pthread_join(subs[i].th, NULL);
    }
    size_t ns = 0;
    uint32_t *all = calloc((size_t)nsubs * (latcount ? latcount : 1), sizeof *all);
    if (all == NULL) {
        die("calloc", "samples");
    }
    for (int i = 0; i < nsubs; i++) {
        for (uint32_t j = 0; j < latcount; j++) {
            if (subs[i].lat[j] != 0) {
                all[ns++] = subs[i].lat[j];
            }
        }
        free(subs[i].lat);
    }
    printf("lat_p50_us %u\n", pct(all, ns, 0.50));
    printf("lat_p99_us %u\n", pct(all, ns, 0.99));
    printf("lat_lost %u\n", latcount - lat_ok);
    free(all);
    free(buf);
    free(subs);
    if (pub.kind == SYS_REDIS) {
        redis_drain(&pub, true);
    }
    bus_close(&pub);
    return 0;
}

/* ---- RPC: the peers (request/reply over the broker) --------------------------------------- */

#define RPC_ARG 16
#define RPC_MAX_INFLIGHT 1024

typedef struct rpc_stats {
    uint32_t *lat;
    size_t nlat, caplat;
    uint64_t errors;
    uint64_t t_end;
    uint32_t inflight, outstanding;
    int phase; /* 0 warm-up, 1 measuring, 2 draining */
    uint64_t issued;
} rpc_stats;

static void stats_add(rpc_stats *s, uint64_t us)
{
    if (s->nlat == s->caplat) {
        s->caplat = s->caplat ? s->caplat * 2 : 65536;
        uint32_t *n = realloc(s->lat, s->caplat * sizeof *n);
        if (n == NULL) {
            die("realloc", "samples");
        }
        s->lat = n;
    }
    s->lat[s->nlat++] = (uint32_t)us;
}

typedef struct server_state {
    pthread_t th;
    bus b;
    const char *addr;
    sys_kind k;
    bool tls;
    _Atomic int ready;
} server_state;

static void server_on_msg(void *ctx, const char *topic, size_t tlen, const char *reply, size_t rlen,
                          const uint8_t *p, size_t n)
{
    (void)topic;
    (void)tlen;
    bus *b = ctx;
    char to[256];
    if (b->kind == SYS_NATS) {
        if (rlen == 0 || rlen >= sizeof to) {
            return;
        }
        memcpy(to, reply, rlen);
        to[rlen] = '\0';
        bus_pub(b, to, NULL, p, n);
    } else {
        /* [u8 len][reply topic][arg] */
        if (n < 1 || (size_t)p[0] + 1 > n) {
            return;
        }
        memcpy(to, p + 1, p[0]);
        to[p[0]] = '\0';
        bus_pub(b, to, NULL, p + 1 + p[0], n - 1 - p[0]);
    }
}

static void *server_main(void *arg)
{
    server_state *s = arg;
    bus_open(&s->b, s->k, s->tls, s->addr, server_on_msg, &s->b);
    bus_sub(&s->b, "bench.echo");
    atomic_store(&s->ready, 1);
    while (!atomic_load(&g_stop)) {
        bus_poll(&s->b, 50);
        bus_flush(&s->b);
    }
    if (s->k == SYS_REDIS) {
        redis_drain(&s->b, true);
    }
    bus_close(&s->b);
    return NULL;
}

typedef struct caller {
    bus b;
    rpc_stats st;
    char inbox[64];
    uint64_t seq;
    uint64_t sent_at[RPC_MAX_INFLIGHT];
    uint64_t sent_seq[RPC_MAX_INFLIGHT];
} caller;

static void caller_send(caller *c, uint32_t slot)
{
    uint8_t arg[RPC_ARG];
    uint64_t s = ++c->seq;
    memcpy(arg, &slot, 4);
    uint32_t tag = BP_MAGIC;
    memcpy(arg + 4, &tag, 4);
    memcpy(arg + 8, &s, 8);
    c->sent_at[slot] = now_ns();
    c->sent_seq[slot] = s;
    if (c->b.kind == SYS_NATS) {
        char reply[96];
        snprintf(reply, sizeof reply, "%s.%u", c->inbox, slot);
        bus_pub(&c->b, "bench.echo", reply, arg, sizeof arg);
    } else {
        uint8_t req[1 + 64 + RPC_ARG];
        size_t il = strlen(c->inbox);
        req[0] = (uint8_t)il;
        memcpy(req + 1, c->inbox, il);
        memcpy(req + 1 + il, arg, sizeof arg);
        bus_pub(&c->b, "bench.echo", NULL, req, 1 + il + sizeof arg);
    }
    c->st.outstanding++;
    c->st.issued++;
}

static void caller_on_msg(void *ctx, const char *topic, size_t tlen, const char *reply, size_t rlen,
                          const uint8_t *p, size_t n)
{
    (void)topic;
    (void)tlen;
    (void)reply;
    (void)rlen;
    caller *c = ctx;
    uint32_t slot;
    uint64_t s;
    if (n != RPC_ARG) {
        c->st.errors++;
        return;
    }
    memcpy(&slot, p, 4);
    memcpy(&s, p + 8, 8);
    if (slot >= c->st.inflight || c->sent_seq[slot] != s) {
        c->st.errors++;
        return;
    }
    c->sent_seq[slot] = 0;
    c->st.outstanding--;
    uint64_t t = now_ns();
    if (c->st.phase == 1) {
        stats_add(&c->st, (t - c->sent_at[slot]) / 1000u);
        c->st.t_end = t;
    }
    if (c->st.phase < 2) {
        caller_send(c, slot);
    }
}

static void print_rpc(rpc_stats *st, uint64_t t0)
{
    double secs = (double)(st->t_end - t0) / 1e9;
    printf("calls_per_s %.0f\n", secs > 0 ? (double)st->nlat / secs : 0.0);
    printf("call_p50_us %u\n", pct(st->lat, st->nlat, 0.50));
    printf("call_p99_us %u\n", pct(st->lat, st->nlat, 0.99));
    printf("call_errors %llu\n", (unsigned long long)st->errors);
    free(st->lat);
}

static void run_rpc_peer(sys_kind k, bool tls, const char *call_addr, const char *serve_addr,
                         uint32_t inflight, uint32_t dur_ms)
{
    server_state srv = {.addr = serve_addr, .k = k, .tls = tls};
    if (pthread_create(&srv.th, NULL, server_main, &srv) != 0) {
        die("server", "thread");
    }
    while (!atomic_load(&srv.ready)) {
        sleep_us(1000);
    }
    caller *c = calloc(1, sizeof *c);
    if (c == NULL) {
        die("calloc", "caller");
    }
    snprintf(c->inbox, sizeof c->inbox, k == SYS_NATS ? "_INBOX.b%d" : "bench.reply.%d",
             (int)getpid());
    bus_open(&c->b, k, tls, call_addr, caller_on_msg, c);
    char pat[80];
    snprintf(pat, sizeof pat, k == SYS_NATS ? "%s.*" : "%s", c->inbox);
    bus_sub(&c->b, pat);
    c->st.inflight = inflight;
    /* warm-up: 1 s */
    uint64_t t0 = now_ns();
    for (uint32_t i = 0; i < inflight; i++) {
        caller_send(c, i);
    }
    bus_flush(&c->b);
    while (now_ns() - t0 < 1000000000ull) {
        bus_poll(&c->b, 10);
        bus_flush(&c->b);
    }
    c->st.phase = 1;
    t0 = now_ns();
    c->st.t_end = t0;
    uint64_t until = t0 + (uint64_t)dur_ms * 1000000u;
    while (now_ns() < until) {
        bus_poll(&c->b, 10);
        bus_flush(&c->b);
    }
    c->st.phase = 2;
    uint64_t drain = now_ns() + 2000000000ull;
    while (c->st.outstanding > 0 && now_ns() < drain) {
        bus_poll(&c->b, 10);
    }
    c->st.errors += c->st.outstanding; /* unanswered */
    print_rpc(&c->st, t0);
    atomic_store(&g_stop, 1);
    pthread_join(srv.th, NULL);
    if (k == SYS_REDIS) {
        redis_drain(&c->b, true);
    }
    bus_close(&c->b);
    free(c);
}

/* ---- RPC: macula ------------------------------------------------------------------------- */

typedef struct mprov {
    pthread_t th;
    const char *url;
    uv_loop_t loop;
    uv_async_t stop;
    macula_rpc *r;
    _Atomic int ready; /* 1 advertised, -1 failed */
} mprov;

static void mprov_handler(macula_rpc *r, uint64_t request, const char *procedure, const char *args,
                          size_t len, void *ctx)
{
    (void)procedure;
    (void)ctx;
    if (request != 0) {
        macula_rpc_respond(r, request, args, len);
    }
}

static void mprov_advertised(macula_rpc *r, const char *error_code, const char *text, size_t len,
                             void *ctx)
{
    (void)r;
    mprov *p = ctx;
    if (error_code != NULL) {
        fprintf(stderr, "bench_pubsub: advertise: %s: %.*s\n", error_code, (int)len, text);
        atomic_store(&p->ready, -1);
        return;
    }
    atomic_store(&p->ready, 1);
}

static void mprov_on_ready(macula_rpc *r, void *ctx)
{
    if (macula_rpc_advertise(r, "bench.echo", mprov_handler, NULL, mprov_advertised, ctx) !=
        MACULA_RPC_OK) {
        atomic_store(&((mprov *)ctx)->ready, -1);
    }
}

static void mprov_on_closed(macula_rpc *r, const char *reason, void *ctx)
{
    mprov *p = ctx;
    if (!atomic_load(&g_stop)) {
        fprintf(stderr, "bench_pubsub: provider connection closed: %s\n", reason);
        atomic_store(&p->ready, -1);
    }
    macula_rpc_free(r);
    p->r = NULL;
    uv_close((uv_handle_t *)&p->stop, NULL);
}

static void mprov_stop(uv_async_t *a)
{
    mprov *p = a->data;
    if (p->r != NULL) {
        macula_rpc_close(p->r);
    }
}

static void *mprov_main(void *arg)
{
    mprov *p = arg;
    uv_loop_init(&p->loop);
    uv_async_init(&p->loop, &p->stop, mprov_stop);
    p->stop.data = p;
    macula_rpc_callbacks cb = {.on_ready = mprov_on_ready, .on_closed = mprov_on_closed};
    int rc = macula_rpc_open(&p->loop, p->url, g_realm, &cb, p, &p->r);
    if (rc != MACULA_RPC_OK) {
        die("macula_rpc_open (provider)", macula_rpc_strerror(rc));
    }
    uv_run(&p->loop, UV_RUN_DEFAULT);
    uv_loop_close(&p->loop);
    return NULL;
}

typedef struct mcaller mcaller;
typedef struct mslot {
    mcaller *c;
    uint32_t i;
} mslot;

struct mcaller {
    uv_loop_t loop;
    uv_timer_t timer;
    macula_rpc *r;
    rpc_stats st;
    uint64_t sent_at[RPC_MAX_INFLIGHT];
    mslot slot[RPC_MAX_INFLIGHT];
    bool warmed;
    uint64_t t0, until;
};

static void mc_call(mcaller *c, uint32_t slot);

static void mc_done(macula_rpc *r, const char *error_code, const char *text, size_t len, void *ctx)
{
    (void)r;
    (void)text;
    (void)len;
    mslot *ms = ctx;
    mcaller *c = ms->c;
    uint32_t slot = ms->i;
    uint64_t t = now_ns();
    c->st.outstanding--;
    if (error_code != NULL) {
        if (c->st.phase == 1) {
            c->st.errors++;
        }
        if (c->st.phase == 0 && !c->warmed && c->st.errors++ == 0) {
            /* the provider may not be found yet (another node: the DHT); retried */
            fprintf(stderr, "bench_pubsub: warm-up call: %s (retrying)\n", error_code);
        }
    } else {
        c->warmed = true;
        if (c->st.phase == 1) {
            stats_add(&c->st, (t - c->sent_at[slot]) / 1000u);
            c->st.t_end = t;
        }
    }
    if (c->st.phase < 2) {
        mc_call(c, slot);
    }
}

static void mc_call(mcaller *c, uint32_t slot)
{
    static const char arg[] = "\"0123456789abcd\""; /* 16 bytes of JSON */
    c->sent_at[slot] = now_ns();
    int rc = macula_rpc_call(c->r, "bench.echo", arg, 5000, mc_done, &c->slot[slot]);
    if (rc != MACULA_RPC_OK) {
        die("macula_rpc_call", macula_rpc_strerror(rc));
    }
    c->st.outstanding++;
    c->st.issued++;
}

static void mc_tick(uv_timer_t *t)
{
    mcaller *c = t->data;
    uint64_t now = now_ns();
    if (c->st.phase == 0) {
        if (c->warmed && now - c->t0 > 1000000000ull) {
            /* widen to the full window, then measure */
            c->st.phase = 1;
            c->st.errors = 0;
            c->t0 = now;
            c->st.t_end = now;
            c->until = now + c->until;
            for (uint32_t i = 1; i < c->st.inflight; i++) {
                mc_call(c, i);
            }
        } else if (now - c->t0 > 90000000000ull) {
            die("macula rpc warm-up", "no answer in 90 s");
        }
        return;
    }
    if (c->st.phase == 1 && now >= c->until) {
        c->st.phase = 2;
    }
    if (c->st.phase == 2 && c->st.outstanding == 0) {
        uv_timer_stop(t);
        macula_rpc_close(c->r);
    }
}

static void mc_on_ready(macula_rpc *r, void *ctx)
{
    (void)r;
    mcaller *c = ctx;
    c->t0 = now_ns();
    mc_call(c, 0); /* warm-up: one in flight until answered, for 1 s */
    uv_timer_start(&c->timer, mc_tick, 5, 5);
}

static void mc_on_closed(macula_rpc *r, const char *reason, void *ctx)
{
    mcaller *c = ctx;
    if (c->st.phase != 2) {
        die("macula caller connection closed", reason);
    }
    macula_rpc_free(r);
    uv_close((uv_handle_t *)&c->timer, NULL);
}

static void run_rpc_macula(const char *call_url, const char *serve_url, uint32_t inflight,
                           uint32_t dur_ms)
{
    mprov p = {.url = serve_url};
    if (pthread_create(&p.th, NULL, mprov_main, &p) != 0) {
        die("provider", "thread");
    }
    uint64_t t = now_ns();
    while (atomic_load(&p.ready) == 0) {
        if (now_ns() - t > 30000000000ull) {
            die("provider", "not advertised in 30 s");
        }
        sleep_us(1000);
    }
    if (atomic_load(&p.ready) < 0) {
        die("provider", "advertise failed");
    }
    mcaller *c = calloc(1, sizeof *c);
    if (c == NULL) {
        die("calloc", "caller");
    }
    for (uint32_t i = 0; i < RPC_MAX_INFLIGHT; i++) {
        c->slot[i] = (mslot){c, i};
    }
    c->st.inflight = inflight;
    c->until = (uint64_t)dur_ms * 1000000u;
    uv_loop_init(&c->loop);
    uv_timer_init(&c->loop, &c->timer);
    c->timer.data = c;
    macula_rpc_callbacks cb = {.on_ready = mc_on_ready, .on_closed = mc_on_closed};
    int rc = macula_rpc_open(&c->loop, call_url, g_realm, &cb, c, &c->r);
    if (rc != MACULA_RPC_OK) {
        die("macula_rpc_open (caller)", macula_rpc_strerror(rc));
    }
    uv_run(&c->loop, UV_RUN_DEFAULT);
    uv_loop_close(&c->loop);
    print_rpc(&c->st, c->t0);
    atomic_store(&g_stop, 1);
    uv_async_send(&p.stop);
    pthread_join(p.th, NULL);
    free(c);
}

static int run_rpc(int argc, char **argv)
{
    if (argc != 7) {
        die("usage", "rpc SYS CALL_ADDR SERVE_ADDR INFLIGHT DURATION_MS");
    }
    sys_kind k;
    bool tls;
    if (!sys_parse(argv[2], &k, &tls)) {
        die("unknown system", argv[2]);
    }
    uint32_t inflight = (uint32_t)strtoul(argv[5], NULL, 10);
    uint32_t dur = (uint32_t)strtoul(argv[6], NULL, 10);
    if (inflight < 1 || inflight > RPC_MAX_INFLIGHT || dur < 1) {
        die("usage", "INFLIGHT 1..1024, DURATION_MS >= 1");
    }
    if (k == SYS_MACULA) {
        run_rpc_macula(argv[3], argv[4], inflight, dur);
    } else {
        run_rpc_peer(k, tls, argv[3], argv[4], inflight, dur);
    }
    return 0;
}

int main(int argc, char **argv)
{
    setvbuf(stdout, NULL, _IOLBF, 0);
    g_realm = getenv("BENCH_REALM");
    if (gnutls_global_init() != 0 || gnutls_certificate_allocate_credentials(&g_cred) != 0) {
        die("gnutls", "init");
    }
    int rc;
    if (argc >= 2 && strcmp(argv[1], "pubsub") == 0) {
        rc = run_pubsub(argc, argv);
    } else if (argc >= 2 && strcmp(argv[1], "rpc") == 0) {
        rc = run_rpc(argc, argv);
    } else {
        fprintf(stderr, "usage: bench_pubsub pubsub SYS PUB_ADDR SUB_ADDR NSUBS SIZE COUNT "
                        "LATCOUNT\n       bench_pubsub rpc SYS CALL_ADDR SERVE_ADDR INFLIGHT "
                        "DURATION_MS\n");
        return 2;
    }
    gnutls_certificate_free_credentials(g_cred);
    gnutls_global_deinit();
    return rc;
}
