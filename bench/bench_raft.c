/*
 * bench/bench_raft.c — replicated commits: flow's Raft (libraft) beside etcd.
 *
 *   bench_raft raft [N] [DEPTH] [VALUE]
 *       Three libraft servers in this process on one libuv loop, each with flow's log store
 *       (libuv storage, fsync'd segments in a fresh directory under $TMPDIR) and libraft's TCP
 *       transport on 127.0.0.1; the flow state machine applies every entry. N flow commands
 *       (task_submit with a VALUE-byte input; default 20,000 / 128 bytes) are raft_apply'd on
 *       the leader with DEPTH of them outstanding (default 16). Snapshots every 100,000
 *       entries, like etcd's default --snapshot-count.
 *   bench_raft etcd URL [N] [DEPTH] [VALUE]
 *       N puts of VALUE-byte values (default: the size of a Raft entry above, so the bytes
 *       replicated match) through etcd's v3 HTTP gateway (POST URL/v3/kv/put, JSON, base64)
 *       over DEPTH HTTP/1.1 keep-alive connections, one request outstanding on each. URL
 *       should be the leader's client URL (bench/raft.sh finds it).
 *   bench_raft entry-size [VALUE]
 *       Prints the size in bytes of the Raft entry for a VALUE-byte input.
 *   bench_raft reelect [ROUNDS] [ELECTION_MS] [MODE]
 *       Leader re-election after a kill: three libraft servers as for `raft` (election timeout
 *       ELECTION_MS, default 150, randomised by libraft in [t, 2t]; heartbeat t/3). Each round
 *       waits until the cluster is settled (one leader that both others follow, 1 s after the
 *       last restart), then kills the leader in process: raft_close, which closes its log and
 *       its TCP connections at once and sends nothing — what the followers see of a kill -9:
 *       the connections from the leader end (EOF). MODE: "on" (default, what flow's raft actor
 *       does): pre-vote, and each follower whose connection from its leader ends cuts its
 *       election timer (flow_raft_leader_gone, log_store.h); "off": neither (libraft alone:
 *       the followers notice only by their election timeout); "watch": the cut without
 *       pre-vote; "prevote": pre-vote without the cut. Measured from the kill: "elected" = a
 *       survivor is RAFT_LEADER (polled every 1 ms), "ready" = it has applied a barrier of its
 *       term, which is when flow's raft actor reports "leader" to the registry. The killed
 *       server is then restarted from its directory. ROUNDS default 20. Prints
 *       reelect_{elected,ready}_ms_{min,p50,p99,max} and reelect_timer_cuts (followers that
 *       cut their timer, over all rounds).
 *
 * Prints "name value" lines: <kind>_commits_per_s, <kind>_latency_us_p50 / _p99 / _max. A
 * commit's latency is from the apply / the request's first byte sent to the callback / the
 * whole response read. Wall time from CLOCK_MONOTONIC around the measured part only.
 */
#define _GNU_SOURCE /* memmem */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include <uv.h>

#include "flow/consensus/fsm.h"
#include "flow/consensus/log_store.h"

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

static void report(const char *kind, uint64_t *lat, size_t n, uint64_t t0, uint64_t t1)
{
    qsort(lat, n, sizeof *lat, cmp_u64);
    printf("%s_commits_per_s %.0f\n", kind, (double)n / ((double)(t1 - t0) / 1e9));
    size_t p50 = n / 2, p99 = n * 99 / 100;
    printf("%s_latency_us_p50 %.0f\n", kind, (double)lat[p50] / 1e3);
    printf("%s_latency_us_p99 %.0f\n", kind, (double)lat[p99] / 1e3);
    printf("%s_latency_us_max %.0f\n", kind, (double)lat[n - 1] / 1e3);
}

/* A task_submit entry with a value-byte input, as raft_apply takes it. */
static int make_entry(size_t i, size_t value, struct raft_buffer *buf)
{
    flow_cmd cmd;
    flow_cmd_init(&cmd, FLOW_CMD_TASK_SUBMIT, 1000 + i);
    snprintf(cmd.swarm, sizeof cmd.swarm, "bench");
    snprintf(cmd.task, sizeof cmd.task, "t%zu", i);
    char *v = malloc(value + 1);
    if (v == NULL) {
        return -1;
    }
    memset(v, 'x', value);
    v[value] = '\0';
    cmd.input = json_pack("{s:s}", "v", v);
    free(v);
    json_t *j = flow_cmd_to_json(&cmd);
    flow_cmd_clear(&cmd);
    int rc = flow_entry_cmd(j, 1, i, buf);
    json_decref(j);
    return rc;
}

/* ---- libraft, three servers in process ----------------------------------------------------- */

#define NODES 3

typedef struct rnode {
    struct raft raft;
    flow_log_store ls;
    flow_fsm *fsm;
    char addr[32];
    char dir[300];
} rnode;

typedef struct rbench {
    uv_loop_t loop;
    uv_timer_t timer;
    rnode n[NODES];
    int leader;
    size_t total, depth, value, sent, done;
    uint64_t *start, *lat;
    uint64_t t0, t1;
    int closed;
    int failed;
} rbench;

typedef struct rreq {
    struct raft_apply req;
    rbench *b;
    size_t i;
} rreq;

static void r_submit(rbench *b);

static void r_applied(struct raft_apply *a, int status, void *result)
{
    (void)result;
    rreq *r = a->data;
    rbench *b = r->b;
    if (status != 0) {
        fprintf(stderr, "bench_raft: apply: %s\n", raft_strerror(status));
        b->failed = 1;
    }
    b->lat[b->done++] = now_ns() - b->start[r->i];
    free(r);
    if (b->done == b->total) {
        b->t1 = now_ns();
        return;
    }
    r_submit(b);
}

static void r_submit(rbench *b)
{
    while (!b->failed && b->sent < b->total && b->sent - b->done < b->depth) {
        struct raft_buffer buf;
        size_t i = b->sent;
        if (make_entry(i, b->value, &buf) != 0) {
            b->failed = 1;
            return;
        }
        rreq *r = calloc(1, sizeof *r);
        r->req.data = r;
        r->b = b;
        r->i = i;
        b->start[i] = now_ns();
        int rc = raft_apply(&b->n[b->leader].raft, &r->req, &buf, 1, r_applied);
        if (rc != 0) {
            fprintf(stderr, "bench_raft: raft_apply: %s\n", raft_strerror(rc));
            raft_free(buf.base);
            free(r);
            b->failed = 1;
            return;
        }
        b->sent++;
    }
}

static void r_closed(struct raft *r)
{
    rnode *n = r->data;
    flow_log_store_close(&n->ls);
}

static void r_free_apply(struct raft_apply *a, int status, void *result)
{
    (void)status;
    (void)result;
    free(a);
}

static void r_tick(uv_timer_t *t)
{
    rbench *b = t->data;
    if (b->leader < 0) {
        for (int i = 0; i < NODES; i++) {
            if (raft_state(&b->n[i].raft) == RAFT_LEADER) {
                b->leader = i;
            }
        }
        if (b->leader < 0) {
            return;
        }
        /* the swarm, then the measured commands */
        flow_cmd cmd;
        flow_cmd_init(&cmd, FLOW_CMD_SWARM_CREATE, 1);
        snprintf(cmd.swarm, sizeof cmd.swarm, "bench");
        cmd.config.pool_min[0] = cmd.config.pool_min[1] = cmd.config.pool_min[2] = 0;
        cmd.config.queue_limit = 10000000;
        json_t *j = flow_cmd_to_json(&cmd);
        flow_cmd_clear(&cmd);
        struct raft_buffer buf;
        flow_entry_cmd(j, 1, 0, &buf);
        json_decref(j);
        struct raft_apply *a = calloc(1, sizeof *a);
        if (raft_apply(&b->n[b->leader].raft, a, &buf, 1, r_free_apply) != 0) {
            raft_free(buf.base);
            free(a);
            b->failed = 1;
        }
        b->t0 = now_ns();
        r_submit(b);
        return;
    }
    if (b->done == b->total || b->failed) {
        uv_timer_stop(t);
        for (int i = 0; i < NODES; i++) {
            raft_close(&b->n[i].raft, r_closed);
        }
        uv_close((uv_handle_t *)t, NULL);
    }
}

static int bench_libraft(size_t total, size_t depth, size_t value)
{
    rbench *b = calloc(1, sizeof *b);
    b->total = total;
    b->depth = depth;
    b->value = value;
    b->leader = -1;
    b->start = calloc(total, sizeof *b->start);
    b->lat = calloc(total, sizeof *b->lat);
    uv_loop_init(&b->loop);
    const char *tmp = getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";
    char base[256];
    snprintf(base, sizeof base, "%s/bench_raft.XXXXXX", tmp);
    if (mkdtemp(base) == NULL) {
        perror("mkdtemp");
        return 1;
    }
    int port = 24000 + (int)(getpid() % 1000) * 3;
    struct raft_configuration conf;
    raft_configuration_init(&conf);
    for (int i = 0; i < NODES; i++) {
        snprintf(b->n[i].addr, sizeof b->n[i].addr, "127.0.0.1:%d", port + i);
        raft_configuration_add(&conf, (raft_id)i + 1, b->n[i].addr, RAFT_VOTER);
    }
    for (int i = 0; i < NODES; i++) {
        rnode *n = &b->n[i];
        char err[256];
        snprintf(n->dir, sizeof n->dir, "%s/n%d", base, i);
        n->fsm = flow_fsm_new(NULL);
        if (flow_log_store_open(&n->ls, &b->loop, n->dir, false, err, sizeof err) != 0 ||
            raft_init(&n->raft, &n->ls.io, flow_fsm_raft(n->fsm), (raft_id)i + 1, n->addr) != 0) {
            fprintf(stderr, "bench_raft: node %d: %s\n", i, err);
            return 1;
        }
        n->raft.data = n;
        raft_set_election_timeout(&n->raft, 150);
        raft_set_heartbeat_timeout(&n->raft, 50);
        raft_set_snapshot_threshold(&n->raft, 100000);
        raft_set_snapshot_trailing(&n->raft, 1000);
        raft_uv_set_connect_retry_delay(&n->ls.io, 50);
        if (raft_bootstrap(&n->raft, &conf) != 0 || raft_start(&n->raft) != 0) {
            fprintf(stderr, "bench_raft: node %d: start: %s\n", i, raft_errmsg(&n->raft));
            return 1;
        }
    }
    raft_configuration_close(&conf);
    uv_timer_init(&b->loop, &b->timer);
    b->timer.data = b;
    uv_timer_start(&b->timer, r_tick, 10, 10);
    uv_run(&b->loop, UV_RUN_DEFAULT);
    int rc = b->failed || b->done != total;
    if (!rc) {
        report("raft", b->lat, total, b->t0, b->t1);
    }
    uv_loop_close(&b->loop);
    for (int i = 0; i < NODES; i++) {
        flow_fsm_free(b->n[i].fsm);
    }
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", base);
    if (system(cmd) != 0) {
        fprintf(stderr, "bench_raft: could not remove %s\n", base);
    }
    free(b->start);
    free(b->lat);
    free(b);
    return rc;
}

/* ---- leader re-election after a kill ------------------------------------------------------- */

typedef struct ebench ebench;

typedef struct enode {
    struct raft raft;
    flow_log_store ls;
    flow_fsm *fsm;
    ebench *b;
    bool up, closing;
    char addr[32];
    char dir[300];
} enode;

enum { E_MODE_OFF = 0, E_MODE_WATCH = 1, E_MODE_PREVOTE = 2, E_MODE_ON = 3 };

enum { E_SETTLE, E_WAIT, E_RESTART, E_DONE };

struct ebench {
    uv_loop_t loop;
    uv_timer_t timer;
    enode n[NODES];
    unsigned election;
    int mode; /* E_MODE_*: bit 1 the cut, bit 2 pre-vote */
    uint64_t cuts;
    size_t rounds, round;
    int phase, killed, cand;
    uint64_t t_kill, t_phase;
    uint64_t *elected, *ready; /* ns per round */
    bool got_elected, barrier_busy;
    struct raft_barrier barrier;
    int failed;
};

static void e_closed(struct raft *r)
{
    enode *n = r->data;
    flow_log_store_close(&n->ls);
    flow_fsm_free(n->fsm);
    n->fsm = NULL;
    n->closing = false;
}

/* The killed leader's connection to this follower ended (log_store.c's watch). */
static void e_lost(void *user, raft_id id)
{
    enode *n = user;
    if (n->up && flow_raft_leader_gone(&n->raft, id, flow_raft_lost_leader_ms(n->b->election))) {
        n->b->cuts++;
    }
}

static int e_start(enode *n, uv_loop_t *loop, raft_id id, const struct raft_configuration *conf,
                   unsigned election)
{
    char err[256] = "";
    n->fsm = flow_fsm_new(NULL);
    if (n->fsm == NULL || flow_log_store_open(&n->ls, loop, n->dir, false, err, sizeof err) != 0 ||
        raft_init(&n->raft, &n->ls.io, flow_fsm_raft(n->fsm), id, n->addr) != 0) {
        fprintf(stderr, "bench_raft: node %llu: %s\n", (unsigned long long)id, err);
        return -1;
    }
    n->raft.data = n;
    raft_set_election_timeout(&n->raft, election);
    raft_set_heartbeat_timeout(&n->raft, election / 3 ? election / 3 : 1);
    raft_uv_set_connect_retry_delay(&n->ls.io, 50);
    raft_set_pre_vote(&n->raft, (n->b->mode & E_MODE_PREVOTE) != 0);
    if (n->b->mode & E_MODE_WATCH) {
        flow_log_store_on_peer_lost(&n->ls, e_lost, n);
    }
    if ((conf && raft_bootstrap(&n->raft, conf) != 0) || raft_start(&n->raft) != 0) {
        fprintf(stderr, "bench_raft: node %llu: start: %s\n", (unsigned long long)id,
                raft_errmsg(&n->raft));
        return -1;
    }
    n->up = true;
    return 0;
}

static void e_barrier(struct raft_barrier *req, int status)
{
    ebench *b = req->data;
    b->barrier_busy = false;
    if (b->phase != E_WAIT || status != 0 || raft_state(&b->n[b->cand].raft) != RAFT_LEADER) {
        return; /* retried from the tick */
    }
    b->ready[b->round] = now_ns() - b->t_kill;
    b->round++;
    b->phase = E_RESTART;
}

static void e_tick(uv_timer_t *t)
{
    ebench *b = t->data;
    uint64_t now = now_ns();
    if (b->phase == E_SETTLE) {
        int leader = -1, follow = 0;
        for (int i = 0; i < NODES; i++) {
            if (!b->n[i].up) {
                return;
            }
            if (raft_state(&b->n[i].raft) == RAFT_LEADER) {
                leader = i;
            }
        }
        for (int i = 0; leader >= 0 && i < NODES; i++) {
            raft_id id = 0;
            const char *addr = NULL;
            raft_leader(&b->n[i].raft, &id, &addr);
            follow += id == (raft_id)leader + 1;
        }
        if (leader < 0 || follow != NODES || now - b->t_phase < 1000000000ull) {
            return;
        }
        b->killed = leader;
        b->got_elected = false;
        b->t_kill = now_ns();
        b->n[leader].up = false;
        b->n[leader].closing = true;
        raft_close(&b->n[leader].raft, e_closed);
        b->phase = E_WAIT;
    } else if (b->phase == E_WAIT) {
        for (int i = 0; i < NODES; i++) {
            if (i == b->killed || raft_state(&b->n[i].raft) != RAFT_LEADER) {
                continue;
            }
            if (!b->got_elected) {
                b->got_elected = true;
                b->elected[b->round] = now - b->t_kill;
            }
            if (!b->barrier_busy) {
                b->cand = i;
                b->barrier.data = b;
                if (raft_barrier(&b->n[i].raft, &b->barrier, e_barrier) == 0) {
                    b->barrier_busy = true;
                }
            }
        }
        if (now - b->t_kill > 30000000000ull) {
            fprintf(stderr, "bench_raft: no new leader 30 s after the kill\n");
            b->failed = 1;
            b->phase = E_DONE;
        }
    } else if (b->phase == E_RESTART && !b->n[b->killed].closing) {
        if (b->round == b->rounds) {
            b->phase = E_DONE;
        } else if (e_start(&b->n[b->killed], &b->loop, (raft_id)b->killed + 1, NULL, b->election) !=
                   0) {
            b->failed = 1;
            b->phase = E_DONE;
        } else {
            b->t_phase = now_ns();
            b->phase = E_SETTLE;
        }
    }
    if (b->phase == E_DONE && !b->barrier_busy) {
        uv_timer_stop(t);
        for (int i = 0; i < NODES; i++) {
            if (b->n[i].up) {
                b->n[i].up = false;
                raft_close(&b->n[i].raft, e_closed);
            }
        }
        uv_close((uv_handle_t *)t, NULL);
    }
}

static void report_ms(const char *name, uint64_t *v, size_t n)
{
    qsort(v, n, sizeof *v, cmp_u64);
    size_t p99 = n * 99 / 100, mid = n / 2;
    printf("reelect_%s_ms_min %.1f\n", name, (double)v[0] / 1e6);
    printf("reelect_%s_ms_p50 %.1f\n", name, (double)v[mid] / 1e6);
    printf("reelect_%s_ms_p99 %.1f\n", name, (double)v[p99 < n ? p99 : n - 1] / 1e6);
    printf("reelect_%s_ms_max %.1f\n", name, (double)v[n - 1] / 1e6);
}

static int bench_reelect(size_t rounds, unsigned election, int mode)
{
    ebench *b = calloc(1, sizeof *b);
    b->rounds = rounds;
    b->election = election;
    b->mode = mode;
    b->elected = calloc(rounds, sizeof *b->elected);
    b->ready = calloc(rounds, sizeof *b->ready);
    uv_loop_init(&b->loop);
    const char *tmp = getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";
    char base[256];
    snprintf(base, sizeof base, "%s/bench_raft.XXXXXX", tmp);
    if (mkdtemp(base) == NULL) {
        perror("mkdtemp");
        return 1;
    }
    int port = 27000 + (int)(getpid() % 1000) * 3;
    struct raft_configuration conf;
    raft_configuration_init(&conf);
    for (int i = 0; i < NODES; i++) {
        snprintf(b->n[i].addr, sizeof b->n[i].addr, "127.0.0.1:%d", port + i);
        raft_configuration_add(&conf, (raft_id)i + 1, b->n[i].addr, RAFT_VOTER);
    }
    int rc = 0;
    for (int i = 0; i < NODES && rc == 0; i++) {
        b->n[i].b = b;
        snprintf(b->n[i].dir, sizeof b->n[i].dir, "%s/n%d", base, i);
        rc = e_start(&b->n[i], &b->loop, (raft_id)i + 1, &conf, election);
    }
    raft_configuration_close(&conf);
    if (rc != 0) {
        return 1;
    }
    b->t_phase = now_ns();
    uv_timer_init(&b->loop, &b->timer);
    b->timer.data = b;
    uv_timer_start(&b->timer, e_tick, 1, 1);
    uv_run(&b->loop, UV_RUN_DEFAULT);
    rc = b->failed || b->round != rounds;
    if (!rc) {
        static const char *const names[] = {"off", "watch", "prevote", "on"};
        printf("reelect_rounds %zu\nreelect_election_timeout_ms %u\nreelect_mode %s\n", rounds,
               election, names[mode & 3]);
        report_ms("elected", b->elected, rounds);
        report_ms("ready", b->ready, rounds);
        printf("reelect_timer_cuts %llu\n", (unsigned long long)b->cuts);
    }
    uv_loop_close(&b->loop);
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", base);
    if (system(cmd) != 0) {
        fprintf(stderr, "bench_raft: could not remove %s\n", base);
    }
    free(b->elected);
    free(b->ready);
    free(b);
    return rc;
}

/* ---- etcd through its v3 HTTP gateway ------------------------------------------------------ */

static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

static size_t base64(const uint8_t *in, size_t n, char *out)
{
    size_t o = 0;
    for (size_t i = 0; i < n; i += 3) {
        uint32_t v = (uint32_t)in[i] << 16;
        if (i + 1 < n) {
            v |= (uint32_t)in[i + 1] << 8;
        }
        if (i + 2 < n) {
            v |= in[i + 2];
        }
        out[o++] = b64[(v >> 18) & 63];
        out[o++] = b64[(v >> 12) & 63];
        out[o++] = i + 1 < n ? b64[(v >> 6) & 63] : '=';
        out[o++] = i + 2 < n ? b64[v & 63] : '=';
    }
    out[o] = '\0';
    return o;
}

typedef struct econn {
    int fd;
    char *req;
    size_t req_len, sent;
    char resp[65536];
    size_t got;
    size_t i; /* request index */
    int busy;
} econn;

/* Whether resp holds a whole HTTP response (Content-Length or chunked); its status in *status. */
static int http_complete(const char *r, size_t n, int *status)
{
    const char *end = memmem(r, n, "\r\n\r\n", 4);
    if (end == NULL) {
        return 0;
    }
    *status = (int)strtol(r + 9, NULL, 10);
    size_t head = (size_t)(end - r) + 4;
    const char *cl = memmem(r, head, "Content-Length:", 15);
    if (cl == NULL) {
        cl = memmem(r, head, "content-length:", 15);
    }
    if (cl) {
        return n >= head + (size_t)strtoul(cl + 15, NULL, 10);
    }
    return memmem(r + head, n - head, "0\r\n\r\n", 5) != NULL;
}

static int bench_etcd(const char *url, size_t total, size_t depth, size_t value)
{
    char host[64];
    const char *colon = strncmp(url, "http://", 7) == 0 ? strchr(url + 7, ':') : NULL;
    char *end = NULL;
    long port = colon ? strtol(colon + 1, &end, 10) : 0;
    if (colon == NULL || (size_t)(colon - url - 7) >= sizeof host || port <= 0 || port > 65535 ||
        (*end != '\0' && *end != '/')) {
        fprintf(stderr, "bench_raft: URL must be http://HOST:PORT\n");
        return 2;
    }
    snprintf(host, sizeof host, "%.*s", (int)(colon - url - 7), url + 7);
    int rc = 1;
    econn *c = calloc(depth, sizeof *c);
    struct pollfd *pf = calloc(depth, sizeof *pf);
    uint64_t *start = calloc(total, sizeof *start), *lat = calloc(total, sizeof *lat);
    uint8_t *val = malloc(value);
    memset(val, 'x', value);
    char *v64 = malloc(value * 2 + 8), key[64], k64[96];
    base64(val, value, v64);
    for (size_t k = 0; k < depth; k++) {
        struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
        inet_pton(AF_INET, host, &sa.sin_addr);
        c[k].fd = socket(AF_INET, SOCK_STREAM, 0);
        int one = 1;
        setsockopt(c[k].fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        c[k].req = malloc(value * 2 + 512);
        if (connect(c[k].fd, (struct sockaddr *)&sa, sizeof sa) != 0) {
            perror("bench_raft: connect");
            goto out;
        }
    }
    size_t sent = 0, done = 0;
    uint64_t t0 = now_ns();
    while (done < total) {
        for (size_t k = 0; k < depth; k++) {
            if (!c[k].busy && sent < total) {
                snprintf(key, sizeof key, "bench/%zu", sent);
                base64((const uint8_t *)key, strlen(key), k64);
                char body[64];
                int bl = snprintf(body, sizeof body, "{\"key\":\"%s\",\"value\":\"", k64);
                size_t blen = (size_t)bl + strlen(v64) + 2;
                c[k].req_len = (size_t)sprintf(
                    c[k].req,
                    "POST /v3/kv/put HTTP/1.1\r\nHost: %s:%ld\r\nContent-Type: application/json\r\n"
                    "Content-Length: %zu\r\n\r\n%s%s\"}",
                    host, port, blen, body, v64);
                c[k].sent = 0;
                c[k].got = 0;
                c[k].i = sent++;
                c[k].busy = 1;
                start[c[k].i] = now_ns();
            }
            pf[k].fd = c[k].fd;
            pf[k].events = !c[k].busy ? 0 : c[k].sent < c[k].req_len ? POLLOUT : POLLIN;
        }
        if (poll(pf, depth, 10000) <= 0) {
            fprintf(stderr, "bench_raft: etcd does not answer\n");
            goto out;
        }
        for (size_t k = 0; k < depth; k++) {
            if (pf[k].revents & POLLOUT) {
                ssize_t w = send(c[k].fd, c[k].req + c[k].sent, c[k].req_len - c[k].sent, 0);
                if (w > 0) {
                    c[k].sent += (size_t)w;
                }
            } else if (pf[k].revents & (POLLIN | POLLHUP | POLLERR)) {
                ssize_t r = recv(c[k].fd, c[k].resp + c[k].got, sizeof c[k].resp - c[k].got, 0);
                if (r <= 0) {
                    fprintf(stderr, "bench_raft: connection closed by etcd\n");
                    goto out;
                }
                c[k].got += (size_t)r;
                int status = 0;
                if (http_complete(c[k].resp, c[k].got, &status)) {
                    if (status != 200) {
                        fprintf(stderr, "bench_raft: etcd answered %d: %.*s\n", status,
                                (int)c[k].got, c[k].resp);
                        goto out;
                    }
                    lat[done++] = now_ns() - start[c[k].i];
                    c[k].busy = 0;
                }
            }
        }
    }
    uint64_t t1 = now_ns();
    report("etcd", lat, total, t0, t1);
    printf("etcd_value_bytes %zu\n", value);
    rc = 0;
out:
    for (size_t k = 0; k < depth; k++) {
        if (c[k].fd > 0) {
            close(c[k].fd);
        }
        free(c[k].req);
    }
    free(c);
    free(pf);
    free(start);
    free(lat);
    free(val);
    free(v64);
    return rc;
}

static size_t entry_size(size_t value)
{
    struct raft_buffer buf;
    if (make_entry(12345, value, &buf) != 0) {
        return 0;
    }
    size_t n = buf.len;
    raft_free(buf.base);
    return n;
}

int main(int argc, char **argv)
{
    if (argc >= 2 && strcmp(argv[1], "raft") == 0) {
        size_t n = argc > 2 ? strtoul(argv[2], NULL, 10) : 20000;
        size_t depth = argc > 3 ? strtoul(argv[3], NULL, 10) : 16;
        size_t value = argc > 4 ? strtoul(argv[4], NULL, 10) : 128;
        int rc = bench_libraft(n ? n : 1, depth ? depth : 1, value);
        printf("raft_entry_bytes %zu\n", entry_size(value));
        return rc;
    }
    if (argc >= 3 && strcmp(argv[1], "etcd") == 0) {
        size_t n = argc > 3 ? strtoul(argv[3], NULL, 10) : 20000;
        size_t depth = argc > 4 ? strtoul(argv[4], NULL, 10) : 16;
        size_t value = argc > 5 ? strtoul(argv[5], NULL, 10) : entry_size(128);
        return bench_etcd(argv[2], n ? n : 1, depth ? depth : 1, value);
    }
    if (argc >= 2 && strcmp(argv[1], "reelect") == 0) {
        size_t rounds = argc > 2 ? strtoul(argv[2], NULL, 10) : 20;
        unsigned election = argc > 3 ? (unsigned)strtoul(argv[3], NULL, 10) : 150;
        const char *m = argc > 4 ? argv[4] : "on";
        int mode = strcmp(m, "off") == 0       ? E_MODE_OFF
                   : strcmp(m, "watch") == 0   ? E_MODE_WATCH
                   : strcmp(m, "prevote") == 0 ? E_MODE_PREVOTE
                   : strcmp(m, "on") == 0      ? E_MODE_ON
                                               : -1;
        if (mode < 0) {
            fprintf(stderr, "bench_raft reelect: MODE is on, off, watch or prevote\n");
            return 2;
        }
        signal(SIGPIPE, SIG_IGN); /* writes to the killed server's connections */
        return bench_reelect(rounds ? rounds : 1, election ? election : 150, mode);
    }
    if (argc >= 2 && strcmp(argv[1], "entry-size") == 0) {
        printf("%zu\n", entry_size(argc > 2 ? strtoul(argv[2], NULL, 10) : 128));
        return 0;
    }
    fprintf(stderr, "usage: bench_raft raft [N] [DEPTH] [VALUE] | etcd URL [N] [DEPTH] [VALUE] | "
                    "entry-size [VALUE] | reelect [ROUNDS] [ELECTION_MS] [on|off|watch|prevote]\n");
    return 2;
}
