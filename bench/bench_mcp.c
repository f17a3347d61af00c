/*
 * bench/bench_mcp.c — tools/call load for an MCP server: requests per second and latency
 * percentiles of a trivial tool (`echo {text}`), over Streamable HTTP or stdio. Closed loop:
 * every client keeps a fixed number of requests in flight.
 *
 *   bench_mcp http URL [--conns C] [--seconds S] [--tool NAME] [--server-pid PID]
 *       C keep-alive HTTP/1.1 connections, one thread each, one session each, one request in
 *       flight per connection. With --server-pid, the server process's CPU time is measured
 *       too (over the whole run, warm-up included).
 *   bench_mcp stdio [--window W] [--seconds S] [--tool NAME] [--pin C:S] -- COMMAND [ARGS...]
 *       one server process on pipes, W requests in flight (pipelined; the requests of one
 *       refill of the window go out in one write). --pin C:S runs the client on CPU C and the
 *       server (all its threads) on CPU S: C == S makes every wake-up a local context switch,
 *       C != S a cross-CPU one (in a VM, an IPI through the hypervisor).
 *   bench_mcp echo-server
 *       the floor for stdio: a C process answering each line with a fixed result (no JSON
 *       parsing), to run under `bench_mcp stdio`.
 *
 *   bench_mcp core [--seconds S] [--tool NAME]
 *       no I/O: the fixture server's session fed tools/call lines in process; the CPU cost
 *       of the protocol work per call.
 *
 * Prints one line: transport, clients, requests, seconds, rps, p50_us, p99_us, max_us, and
 * client_cpu_us / server_cpu_us: CPU time (user + system, all threads) per request of the
 * load generator and of the server (from /proc/PID/task/TID/schedstat).
 * Common options: --warmup S (default 1): the first S seconds of load are not counted.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <sched.h>
#include <dirent.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <uv.h>

#include "macula/mcp.h"
#include "mcp/fixture.h"

/* Not counted: the first warmup_s seconds of load after the session is set up (--warmup). A
 * JIT-compiled server needs more than a few hundred requests to reach its steady state. */
static double warmup_s = 1.0;

/* A fatal error: the message, exit status 1. */
static void die(const char *msg) __attribute__((noreturn));
static void die(const char *msg)
{
    fprintf(stderr, "bench_mcp: %s\n", msg);
    exit(1);
}

/* A decimal or floating-point option value; exits on garbage. */
static long opt_long(const char *s)
{
    char *end;
    long v = strtol(s, &end, 10);
    if (end == s || *end != '\0') {
        die("bad numeric option");
    }
    return v;
}

static double opt_double(const char *s)
{
    char *end;
    double v = strtod(s, &end);
    if (end == s || *end != '\0') {
        die("bad numeric option");
    }
    return v;
}

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

typedef struct lat {
    uint64_t *v;
    size_t n, cap;
} lat;

static void lat_add(lat *l, uint64_t ns)
{
    if (l->n == l->cap) {
        l->cap = l->cap ? l->cap * 2 : 65536;
        l->v = realloc(l->v, l->cap * sizeof *l->v);
        if (l->v == NULL) {
            fprintf(stderr, "bench_mcp: out of memory\n");
            exit(1);
        }
    }
    l->v[l->n++] = ns;
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* cpu_client/cpu_server: CPU µs per counted request, < 0 when not measured. */
static void report(const char *transport, int clients, lat *all, double seconds, double cpu_client,
                   double cpu_server)
{
    size_t n = all->n;
    if (n > 1) {
        qsort(all->v, n, sizeof *all->v, cmp_u64);
    }
    size_t i50 = n / 2, i99 = n * 99 / 100;
    double p50 = n ? (double)all->v[i50] / 1000.0 : 0;
    double p99 = n ? (double)all->v[i99] / 1000.0 : 0;
    double mx = n ? (double)all->v[n - 1] / 1000.0 : 0;
    printf("transport=%s clients=%d requests=%zu seconds=%.2f rps=%.0f p50_us=%.1f p99_us=%.1f "
           "max_us=%.1f",
           transport, clients, n, seconds, (double)n / seconds, p50, p99, mx);
    if (cpu_client >= 0) {
        printf(" client_cpu_us=%.2f", cpu_client);
    }
    if (cpu_server >= 0) {
        printf(" server_cpu_us=%.2f", cpu_server);
    }
    printf("\n");
}

static char *call_body(const char *tool, long id, size_t *len)
{
    char *b = NULL;
    int n = asprintf(&b,
                     "{\"jsonrpc\":\"2.0\",\"id\":%ld,\"method\":\"tools/call\",\"params\":{"
                     "\"name\":\"%s\",\"arguments\":{\"text\":\"hello\"}}}",
                     id, tool);
    if (n < 0) {
        exit(1);
    }
    *len = (size_t)n;
    return b;
}

/* ---- CPU accounting --------------------------------------------------------------------- */

/* The calling process's CPU time (all threads), ns. */
static uint64_t cpu_self_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* Another process's CPU time, ns: the sum of its live threads' schedstat run times (exact,
 * unlike the tick-granular /proc/PID/stat). 0 when unknown. */
static uint64_t cpu_pid_ns(pid_t pid)
{
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/task", (int)pid);
    uint64_t sum = 0;
    DIR *d = opendir(path);
    if (d == NULL) {
        return 0;
    }
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.') {
            continue;
        }
        char f[512];
        snprintf(f, sizeof f, "%s/%s/schedstat", path, e->d_name);
        FILE *fp = fopen(f, "r");
        char line[128];
        if (fp != NULL) {
            if (fgets(line, sizeof line, fp) != NULL) {
                sum += strtoull(line, NULL, 10); /* the first field: ns on the CPU */
            }
            fclose(fp);
        }
    }
    closedir(d);
    return sum;
}

/* ---- HTTP ------------------------------------------------------------------------------- */

typedef struct hconn {
    const char *host, *port, *path, *tool;
    double seconds;
    int fd;
    char sid[128], proto[32];
    char *buf;
    size_t cap, len;
    lat l;
    size_t total; /* requests, warm-up included */
    int error;
} hconn;

static int h_connect(hconn *c)
{
    struct addrinfo hints = {.ai_family = AF_INET, .ai_socktype = SOCK_STREAM}, *res;
    if (getaddrinfo(c->host, c->port, &hints, &res) != 0) {
        return -1;
    }
    c->fd = socket(res->ai_family, res->ai_socktype, 0);
    int one = 1;
    if (c->fd >= 0) {
        setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    }
    int rc = c->fd >= 0 ? connect(c->fd, res->ai_addr, res->ai_addrlen) : -1;
    freeaddrinfo(res);
    return rc;
}

static int h_write(int fd, const char *p, size_t n)
{
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w < 0 && errno == EINTR) {
            continue;
        }
        if (w <= 0) {
            return -1;
        }
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

static const char *h_header(const char *head, size_t hlen, const char *name, char *out, size_t cap)
{
    size_t nl = strlen(name);
    const char *end = head + hlen;
    for (const char *l = head; l < end;) {
        const char *e = memmem(l, (size_t)(end - l), "\r\n", 2);
        if (e == NULL) {
            e = end;
        }
        if ((size_t)(e - l) > nl && strncasecmp(l, name, nl) == 0 && l[nl] == ':') {
            const char *v = l + nl + 1;
            while (*v == ' ') {
                v++;
            }
            snprintf(out, cap, "%.*s", (int)(e - v), v);
            return out;
        }
        l = e + 2;
    }
    return NULL;
}

/* Reads one response; returns the status, body at c->buf[*boff.. *boff+*blen]. */
static int h_read(hconn *c, size_t *boff, size_t *blen, size_t *consumed)
{
    for (;;) {
        char *sep = c->len ? memmem(c->buf, c->len, "\r\n\r\n", 4) : NULL;
        if (sep != NULL) {
            size_t hlen = (size_t)(sep - c->buf);
            char v[64];
            size_t body = hlen + 4;
            if (h_header(c->buf, hlen, "Content-Length", v, sizeof v) != NULL) {
                size_t cl = strtoul(v, NULL, 10);
                if (c->len >= body + cl) {
                    *boff = body;
                    *blen = cl;
                    *consumed = body + cl;
                    return (int)strtol(c->buf + 9, NULL, 10);
                }
            } else if (h_header(c->buf, hlen, "Transfer-Encoding", v, sizeof v) != NULL) {
                char *term = memmem(c->buf + body, c->len - body, "\r\n0\r\n\r\n", 7);
                if (term == NULL && c->len - body >= 5 &&
                    memcmp(c->buf + body, "0\r\n\r\n", 5) == 0) {
                    term = c->buf + body - 2;
                }
                if (term != NULL) {
                    *boff = body;
                    *blen = (size_t)(term - (c->buf + body)) + 2;
                    *consumed = (size_t)(term - c->buf) + 7;
                    return (int)strtol(c->buf + 9, NULL, 10);
                }
            } else {
                *boff = body;
                *blen = 0;
                *consumed = body;
                return (int)strtol(c->buf + 9, NULL, 10);
            }
        }
        if (c->len == c->cap) {
            c->cap = c->cap ? c->cap * 2 : 65536;
            c->buf = realloc(c->buf, c->cap);
            if (c->buf == NULL) {
                return -1;
            }
        }
        ssize_t n = read(c->fd, c->buf + c->len, c->cap - c->len);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n <= 0) {
            return -1;
        }
        c->len += (size_t)n;
    }
}

static int h_post(hconn *c, const char *body, size_t blen, int *status)
{
    char head[4096];
    int hl = snprintf(head, sizeof head,
                      "POST %s HTTP/1.1\r\nHost: %s:%s\r\nAccept: application/json, "
                      "text/event-stream\r\nContent-Type: application/json\r\n"
                      "Content-Length: %zu\r\n%s%s%s%s%s%s\r\n",
                      c->path, c->host, c->port, blen, c->sid[0] ? "Mcp-Session-Id: " : "", c->sid,
                      c->sid[0] ? "\r\n" : "", c->proto[0] ? "MCP-Protocol-Version: " : "",
                      c->proto, c->proto[0] ? "\r\n" : "");
    /* one write: header and body in the same segment (no Nagle / delayed-ACK stall) */
    if ((size_t)hl + blen >= sizeof head) {
        return -1;
    }
    memcpy(head + hl, body, blen);
    if (h_write(c->fd, head, (size_t)hl + blen) != 0) {
        return -1;
    }
    size_t boff, bl, used;
    *status = h_read(c, &boff, &bl, &used);
    if (*status < 0) {
        return -1;
    }
    if (!c->sid[0]) {
        char *sep = memmem(c->buf, c->len, "\r\n\r\n", 4);
        h_header(c->buf, (size_t)(sep - c->buf), "Mcp-Session-Id", c->sid, sizeof c->sid);
    }
    bool ok = *status == 202 || memmem(c->buf + boff, bl, "\"result\"", 8) != NULL;
    memmove(c->buf, c->buf + used, c->len - used);
    c->len -= used;
    return ok ? 0 : -1;
}

static void *h_thread(void *arg)
{
    hconn *c = arg;
    c->cap = 65536;
    c->buf = malloc(c->cap);
    int st;
    const char *init = "{\"jsonrpc\":\"2.0\",\"id\":0,\"method\":\"initialize\",\"params\":{"
                       "\"protocolVersion\":\"2025-06-18\",\"capabilities\":{},\"clientInfo\":{"
                       "\"name\":\"bench\",\"version\":\"1\"}}}";
    const char *inited = "{\"jsonrpc\":\"2.0\",\"method\":\"notifications/initialized\"}";
    if (h_connect(c) != 0 || h_post(c, init, strlen(init), &st) != 0 || st != 200) {
        c->error = 1;
        return NULL;
    }
    snprintf(c->proto, sizeof c->proto, "2025-06-18");
    if (h_post(c, inited, strlen(inited), &st) != 0) {
        c->error = 2;
        return NULL;
    }
    long id = 1;
    uint64_t warm_end = now_ns() + (uint64_t)(warmup_s * 1e9), end = 0;
    bool measuring = false;
    for (;;) {
        size_t bl;
        char *body = call_body(c->tool, id, &bl);
        uint64_t t0 = now_ns();
        int rc = h_post(c, body, bl, &st);
        uint64_t t1 = now_ns();
        free(body);
        if (rc != 0 || st != 200) {
            c->error = 3;
            break;
        }
        c->total++;
        if (!measuring) {
            measuring = t1 >= warm_end;
            end = t1 + (uint64_t)(c->seconds * 1e9);
        } else {
            lat_add(&c->l, t1 - t0);
            if (t1 >= end) {
                break;
            }
        }
        id++;
    }
    close(c->fd);
    free(c->buf);
    return NULL;
}

static int bench_http(const char *url, int conns, double seconds, const char *tool, pid_t srv)
{
    static char host[256], port[16], path[256];
    if (sscanf(url, "http://%255[^:/]:%15[0-9]%255s", host, port, path) != 3) {
        fprintf(stderr, "bench_mcp: URL must be http://HOST:PORT/PATH\n");
        return 2;
    }
    hconn *c = calloc((size_t)conns, sizeof *c);
    pthread_t *th = calloc((size_t)conns, sizeof *th);
    for (int i = 0; i < conns; i++) {
        c[i] = (hconn){.host = host, .port = port, .path = path, .tool = tool, .seconds = seconds};
    }
    /* CPU per request here covers the whole run, warm-up and session set-up included */
    uint64_t self0 = cpu_self_ns(), srv0 = srv > 0 ? cpu_pid_ns(srv) : 0;
    for (int i = 0; i < conns; i++) {
        pthread_create(&th[i], NULL, h_thread, &c[i]);
    }
    lat all = {0};
    int err = 0;
    for (int i = 0; i < conns; i++) {
        pthread_join(th[i], NULL);
        err = err ? err : c[i].error;
        for (size_t j = 0; j < c[i].l.n; j++) {
            lat_add(&all, c[i].l.v[j]);
        }
        free(c[i].l.v);
    }
    uint64_t self1 = cpu_self_ns(), srv1 = srv > 0 ? cpu_pid_ns(srv) : 0;
    size_t total = 0;
    for (int i = 0; i < conns; i++) {
        total += c[i].total + 2; /* + initialize and initialized */
    }
    double per = 1.0 / (double)total / 1000.0;
    if (err) {
        fprintf(stderr, "bench_mcp: a connection failed (%d)\n", err);
        exit(1);
    }
    /* the measured window: the threads' own windows (warm-up excluded) */
    report("http", conns, &all, seconds, (double)(self1 - self0) * per,
           srv1 > srv0 ? (double)(srv1 - srv0) * per : -1);
    free(all.v);
    free(c);
    free(th);
    return 0;
}

/* ---- stdio ------------------------------------------------------------------------------ */

/* The request line for `id`, written at p (room for 256 bytes past the tool name). */
static size_t stdio_request(char *p, const char *tool, long id)
{
    return (size_t)sprintf(p,
                           "{\"jsonrpc\":\"2.0\",\"id\":%ld,\"method\":\"tools/call\",\"params\":{"
                           "\"name\":\"%s\",\"arguments\":{\"text\":\"hello\"}}}\n",
                           id, tool);
}

/*
 * The client side is kept cheap so that it measures the server: the requests of one window
 * refill go out in one write, responses are read in large chunks and not parsed (the line's
 * "id": and "result": are located, nothing else).
 */
/* Pins the calling process (and what it execs) to one CPU; cpu < 0: no pinning. */
static int pin_cpu(int cpu)
{
    if (cpu < 0) {
        return 0;
    }
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(cpu, &set);
    return sched_setaffinity(0, sizeof set, &set);
}

static int bench_stdio(char **cmd, int window, double seconds, const char *tool, int cpu_client,
                       int cpu_server)
{
    int in[2], out[2];
    if (pipe(in) != 0 || pipe(out) != 0 || pin_cpu(cpu_client) != 0) {
        return 1;
    }
    pid_t pid = fork();
    if (pid == 0) {
        if (pin_cpu(cpu_server) != 0) {
            _exit(126);
        }
        dup2(in[0], 0);
        dup2(out[1], 1);
        close(in[1]);
        close(out[0]);
        execvp(cmd[0], cmd);
        _exit(127);
    }
    close(in[0]);
    close(out[1]);
    const char *hello =
        "{\"jsonrpc\":\"2.0\",\"id\":0,\"method\":\"initialize\",\"params\":{\"protocolVersion\":"
        "\"2025-06-18\",\"capabilities\":{},\"clientInfo\":{\"name\":\"bench\",\"version\":\"1\"}}}"
        "\n{\"jsonrpc\":\"2.0\",\"method\":\"notifications/initialized\"}\n";
    h_write(in[1], hello, strlen(hello));
    size_t rcap = 1u << 18, rlen = 0;
    char *rbuf = malloc(rcap);
    char *wbuf = malloc((size_t)window * (strlen(tool) + 256));
    size_t cap = 1u << 22;
    uint64_t *sent = calloc(cap, sizeof *sent);
    if (rbuf == NULL || wbuf == NULL || sent == NULL) {
        die("out of memory");
    }
    lat all = {0};
    long next = 1;
    int inflight = 0;
    uint64_t end = UINT64_MAX, warm_end = UINT64_MAX, t_start = 0, t_stop = 0;
    uint64_t self0 = 0, self1 = 0, srv0 = 0, srv1 = 0;
    bool stop = false, initialized = false, measuring = false;
    while (!stop || inflight > 0) {
        if (initialized) {
            size_t wl = 0;
            uint64_t t = now_ns();
            while (!stop && inflight < window && (size_t)next < cap) {
                wl += stdio_request(wbuf + wl, tool, next);
                sent[next++] = t;
                inflight++;
            }
            if (wl > 0 && h_write(in[1], wbuf, wl) != 0) {
                die("the server closed its input");
            }
        }
        if (rlen == rcap) {
            die("response line too long");
        }
        ssize_t n = read(out[0], rbuf + rlen, rcap - rlen);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n <= 0) {
            die("the server closed its output");
        }
        rlen += (size_t)n;
        uint64_t t1 = now_ns();
        char *line = rbuf, *stop_at = rbuf + rlen, *nl;
        while ((nl = memchr(line, '\n', (size_t)(stop_at - line))) != NULL) {
            size_t ll = (size_t)(nl - line);
            char *idp = memmem(line, ll, "\"id\":", 5);
            if (!initialized) {
                initialized = idp != NULL; /* the initialize response */
                warm_end = t1 + (uint64_t)(warmup_s * 1e9);
            } else if (idp != NULL && memmem(line, ll, "\"result\":", 9) != NULL) {
                long id = strtol(idp + 5, NULL, 10);
                inflight--;
                if (!measuring && t1 >= warm_end) {
                    measuring = true;
                    end = t1 + (uint64_t)(seconds * 1e9);
                    t_start = t1;
                    self0 = cpu_self_ns();
                    srv0 = cpu_pid_ns(pid);
                } else if (measuring && id > 0 && (size_t)id < cap) {
                    lat_add(&all, t1 - sent[id]);
                }
                if (!stop && (t1 >= end || (size_t)next >= cap)) {
                    stop = true;
                    t_stop = t1;
                    self1 = cpu_self_ns();
                    srv1 = cpu_pid_ns(pid);
                }
            } /* else a notification, or an error (counted as missing) */
            line = nl + 1;
        }
        rlen = (size_t)(stop_at - line);
        memmove(rbuf, line, rlen);
    }
    close(in[1]);
    close(out[0]);
    int status;
    waitpid(pid, &status, 0);
    free(rbuf);
    free(wbuf);
    free(sent);
    double el = (double)(t_stop - t_start) / 1e9;
    double per = all.n ? 1.0 / (double)all.n / 1000.0 : 0;
    report("stdio", window, &all, el > 0 ? el : seconds, (double)(self1 - self0) * per,
           srv1 > srv0 ? (double)(srv1 - srv0) * per : -1);
    free(all.v);
    return 0;
}

/* `bench_mcp echo-server`: the floor. A C process that answers every line on stdin with
 * {"jsonrpc":"2.0","id":ID,"result":{}} (the line's first "id": copied), all answers to one
 * read in one write: no JSON, no MCP, only the pipe round trips the real servers also pay. */
static int echo_server(void)
{
    size_t cap = 1u << 18, len = 0, ocap = 1u << 20;
    char *buf = malloc(cap), *obuf = malloc(ocap);
    if (buf == NULL || obuf == NULL) {
        die("out of memory");
    }
    for (;;) {
        ssize_t n = read(0, buf + len, cap - len);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n <= 0) {
            break;
        }
        len += (size_t)n;
        size_t ol = 0;
        char *line = buf, *end = buf + len, *nl;
        while ((nl = memchr(line, '\n', (size_t)(end - line))) != NULL) {
            char *idp = memmem(line, (size_t)(nl - line), "\"id\":", 5);
            if (idp != NULL && ol + 64 < ocap) {
                ol += (size_t)snprintf(obuf + ol, ocap - ol,
                                       "{\"jsonrpc\":\"2.0\",\"id\":%ld,\"result\":{}}\n",
                                       strtol(idp + 5, NULL, 10));
            }
            line = nl + 1;
        }
        len = (size_t)(end - line);
        memmove(buf, line, len);
        if (len == cap || (ol > 0 && h_write(1, obuf, ol) != 0)) {
            break;
        }
    }
    free(buf);
    free(obuf);
    return 0;
}

/* ---- in process ------------------------------------------------------------------------- */

typedef struct core_sink {
    size_t messages, bytes, results;
} core_sink;

static void core_send(void *user, void *origin, const char *json, size_t len, bool response)
{
    (void)origin;
    core_sink *k = user;
    k->messages++;
    k->bytes += len;
    k->results += response && memmem(json, len, "\"result\":", 9) != NULL;
}

static void core_done(void *user, void *origin)
{
    (void)user;
    (void)origin;
}

/* `bench_mcp core`: the protocol cost alone. One session of the fixture server fed the same
 * tools/call lines through mcp_session_input, answered through a transport that only counts:
 * no pipes, no event loop, the CPU time per call of parse, dispatch, validation, the tool and
 * serialisation. */
static int bench_core(double seconds, const char *tool)
{
    uv_loop_t loop;
    uv_loop_init(&loop);
    mcp_server *srv = mcp_server_new(NULL);
    if (srv == NULL || mcp_fixture_register(srv, &loop) != 0) {
        return 1;
    }
    core_sink k = {0};
    const mcp_transport t = {core_send, core_done};
    mcp_session *ss = mcp_session_new(srv, &t, &k);
    const char *init =
        "{\"jsonrpc\":\"2.0\",\"id\":0,\"method\":\"initialize\",\"params\":{\"protocolVersion\":"
        "\"2025-06-18\",\"capabilities\":{},\"clientInfo\":{\"name\":\"bench\",\"version\":\"1\"}}"
        "}";
    const char *inited = "{\"jsonrpc\":\"2.0\",\"method\":\"notifications/initialized\"}";
    mcp_session_input(ss, init, strlen(init), NULL, NULL);
    mcp_session_input(ss, inited, strlen(inited), NULL, NULL);
    char line[512];
    long id = 1, n = 0;
    uint64_t t0 = 0, c0 = 0, end = 0;
    for (;;) {
        int len = snprintf(line, sizeof line,
                           "{\"jsonrpc\":\"2.0\",\"id\":%ld,\"method\":\"tools/call\",\"params\":{"
                           "\"name\":\"%s\",\"arguments\":{\"text\":\"hello\"}}}",
                           id, tool);
        mcp_session_input(ss, line, (size_t)len, NULL, NULL);
        if (id == 2000) {
            t0 = now_ns();
            c0 = cpu_self_ns();
            end = t0 + (uint64_t)(seconds * 1e9);
            k.results = 0;
        } else if (id > 2000 && (++n & 1023) == 0 && now_ns() >= end) {
            break;
        }
        id++;
    }
    double el = (double)(now_ns() - t0) / 1e9, cpu = (double)(cpu_self_ns() - c0) / 1e3;
    printf("transport=core clients=1 requests=%ld seconds=%.2f rps=%.0f server_cpu_us=%.3f "
           "results=%zu\n",
           n, el, (double)n / el, cpu / (double)n, k.results);
    mcp_session_free(ss);
    mcp_server_free(srv);
    uv_run(&loop, UV_RUN_NOWAIT);
    uv_loop_close(&loop);
    return k.results == (size_t)n ? 0 : 1;
}

int main(int argc, char **argv)
{
    signal(SIGPIPE, SIG_IGN);
    if (argc < 2) {
        fprintf(stderr, "usage: bench_mcp http URL [--conns C] [--seconds S] [--tool T] "
                        "[--server-pid PID]\n"
                        "       bench_mcp stdio [--window W] [--seconds S] [--tool T] [--pin C:S] "
                        "-- CMD...\n"
                        "       bench_mcp echo-server\n"
                        "       bench_mcp core [--seconds S] [--tool T]\n");
        return 2;
    }
    int n = 1;
    double seconds = 3;
    const char *tool = "echo";
    char **cmd = NULL;
    const char *url = NULL;
    pid_t srv = 0;
    int cpu_client = -1, cpu_server = -1;
    if (strcmp(argv[1], "echo-server") == 0) {
        return echo_server();
    }
    for (int i = 2; i < argc; i++) {
        if ((strcmp(argv[i], "--conns") == 0 || strcmp(argv[i], "--window") == 0) && i + 1 < argc) {
            n = (int)opt_long(argv[++i]);
        } else if (strcmp(argv[i], "--warmup") == 0 && i + 1 < argc) {
            warmup_s = opt_double(argv[++i]);
        } else if (strcmp(argv[i], "--seconds") == 0 && i + 1 < argc) {
            seconds = opt_double(argv[++i]);
        } else if (strcmp(argv[i], "--pin") == 0 && i + 1 < argc) {
            char *colon = strchr(argv[++i], ':');
            if (colon == NULL) {
                die("--pin takes CLIENT_CPU:SERVER_CPU");
            }
            *colon = '\0';
            cpu_client = (int)opt_long(argv[i]);
            cpu_server = (int)opt_long(colon + 1);
        } else if (strcmp(argv[i], "--server-pid") == 0 && i + 1 < argc) {
            srv = (pid_t)opt_long(argv[++i]);
        } else if (strcmp(argv[i], "--tool") == 0 && i + 1 < argc) {
            tool = argv[++i];
        } else if (strcmp(argv[i], "--") == 0) {
            cmd = argv + i + 1;
            break;
        } else {
            url = argv[i];
        }
    }
    if (n < 1 || seconds <= 0) {
        return 2;
    }
    if (strcmp(argv[1], "http") == 0 && url != NULL) {
        return bench_http(url, n, seconds, tool, srv);
    }
    if (strcmp(argv[1], "core") == 0) {
        return bench_core(seconds, tool);
    }
    if (strcmp(argv[1], "stdio") == 0 && cmd != NULL && cmd[0] != NULL) {
        return bench_stdio(cmd, n, seconds, tool, cpu_client, cpu_server);
    }
    fprintf(stderr, "bench_mcp: bad arguments\n");
    return 2;
}
