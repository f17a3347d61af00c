/*
 * bench/bench_runtime.c — the supervision runtime's basic costs, to set beside
 * bench/erlang/bench_runtime.erl (same programs, same output format).
 *
 *   bench_runtime MODE [N]     MODE: spawn pingpong ring restart memory all
 *
 * Prints one machine-readable line per result, "name value". Wall time is measured with
 * clock_gettime(CLOCK_MONOTONIC) around the measured part only (set-up is excluded). Every
 * mode runs on a virtual runtime (sup_rt_new_virtual), which is the same scheduler as a real
 * one minus the libuv loop: nothing here uses timers.
 *
 *   spawn     N spawn+exit cycles (default 1,000,000). The actor's init returns 0 after
 *             sending itself a message; its handle_info then stops it (reason normal). Done in
 *             batches of 1,000 spawns followed by sup_rt_run, so at most 1,000 are alive.
 *             -> spawn_exit_per_s
 *             Also: spawn, then stopped from outside with sup_exit(shutdown), no message.
 *             -> spawn_kill_per_s
 *   pingpong  N messages between two actors (default 2,000,000) -> pingpong_msgs_per_s
 *   ring      a token passed N hops around a ring of 10,000 actors (default 2,000,000)
 *             -> ring_msgs_per_s (ring_setup_s: the time to spawn and link up the ring)
 *   restart   a one_for_one supervisor (intensity 1000000, period 1) with one permanent
 *             worker, N crashes (default 10,000). Each sample is the time from just before
 *             the crash message is sent to the worker (which then calls sup_crash) to the
 *             first instruction of the replacement's init.
 *             -> restart_latency_median_us, restart_latency_p99_us (and mean, first/last
 *             1,000 medians, to show drift over the run)
 *   memory    N idle actors (default 100,000), each with 16 bytes of state.
 *             -> bytes_per_actor_runtime (sup_rt_memory delta / N),
 *                bytes_per_actor_rss (/proc/self/statm resident delta / N)
 *
 * C-only (no Erlang twin, so not part of `all`):
 *   send      the cost of one sup_send + its dispatch for payloads of 16, 200 and 1500 bytes
 *             (default N = 2,000,000 messages per size). Two actors play ping-pong with the
 *             payload (one message in flight) -> send_pingpong_SIZE_ns_per_msg; and an
 *             outside sender queues bursts of 256 messages at one actor and runs the queue
 *             (256 in flight) -> send_burst_SIZE_ns_per_msg.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "macula/sup.h"
#include "macula/sup_supervisor.h"

/* ---- helpers ---------------------------------------------------------------------------- */

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static double per_s(uint64_t count, uint64_t ns)
{
    return ns ? (double)count * 1e9 / (double)ns : 0.0;
}

static void die(const char *what, int rc)
{
    fprintf(stderr, "bench_runtime: %s: %s\n", what, sup_strerror(rc));
    exit(1);
}

/* Resident set size in bytes (second field of /proc/self/statm, in pages). */
static size_t rss_bytes(void)
{
    FILE *f = fopen("/proc/self/statm", "r");
    if (f == NULL) {
        return 0;
    }
    unsigned long size = 0, resident = 0;
    if (fscanf(f, "%lu %lu", &size, &resident) != 2) {
        resident = 0;
    }
    fclose(f);
    return (size_t)resident * (size_t)sysconf(_SC_PAGESIZE);
}

enum { TAG_STOP = 1, TAG_TOKEN, TAG_PEER, TAG_CRASH };

/* ---- spawn + exit ----------------------------------------------------------------------- */

static int selfstop_init(sup_actor *self, void *state, void *arg)
{
    (void)state;
    (void)arg;
    sup_send(sup_self_rt(self), sup_self(self), sup_self(self), TAG_STOP, NULL, 0);
    return 0;
}

static void selfstop_info(sup_actor *self, void *state, const sup_msg *m)
{
    (void)state;
    if (m->tag == TAG_STOP) {
        sup_reason r = sup_reason_normal();
        sup_stop(self, &r);
    }
}

static const sup_behaviour selfstop_b = {
    .name = "selfstop", .init = selfstop_init, .handle_info = selfstop_info};

static int noop_init(sup_actor *self, void *state, void *arg)
{
    (void)self;
    (void)state;
    (void)arg;
    return 0;
}

static const sup_behaviour noop_b = {.name = "noop", .init = noop_init};

static void bench_spawn(long n)
{
    enum { BATCH = 1000 };
    sup_rt *rt = sup_rt_new_virtual();
    /* warm-up: grow the slot table and the envelope free list once */
    for (int i = 0; i < BATCH; i++) {
        sup_spawn(rt, SUP_NOPID, &selfstop_b, NULL, 0, NULL, NULL);
    }
    sup_rt_run(rt);

    uint64_t t0 = now_ns();
    long done = 0;
    while (done < n) {
        long k = n - done < BATCH ? n - done : BATCH;
        for (long i = 0; i < k; i++) {
            int rc = sup_spawn(rt, SUP_NOPID, &selfstop_b, NULL, 0, NULL, NULL);
            if (rc != 0) {
                die("spawn", rc);
            }
        }
        sup_rt_run(rt);
        done += k;
    }
    uint64_t t1 = now_ns();
    if (sup_rt_actor_count(rt) != 0) {
        fprintf(stderr, "bench_runtime: %zu actors left\n", sup_rt_actor_count(rt));
        exit(1);
    }
    printf("spawn_exit_per_s %.0f\n", per_s((uint64_t)n, t1 - t0));

    sup_reason sd = sup_reason_shutdown();
    t0 = now_ns();
    for (long i = 0; i < n; i++) {
        sup_pid p;
        int rc = sup_spawn(rt, SUP_NOPID, &noop_b, NULL, 0, &p, NULL);
        if (rc != 0) {
            die("spawn", rc);
        }
        sup_exit(rt, SUP_NOPID, p, &sd);
    }
    t1 = now_ns();
    if (sup_rt_actor_count(rt) != 0) {
        fprintf(stderr, "bench_runtime: %zu actors left\n", sup_rt_actor_count(rt));
        exit(1);
    }
    printf("spawn_kill_per_s %.0f\n", per_s((uint64_t)n, t1 - t0));
    sup_rt_free(rt);
}

/* ---- ping-pong and ring: actors that pass a counter to their peer ---------------------- */

typedef struct relay_state {
    sup_pid next;
} relay_state;

static bool g_token_done;

static void relay_info(sup_actor *self, void *state, const sup_msg *m)
{
    relay_state *s = state;
    if (m->tag == TAG_PEER) {
        memcpy(&s->next, m->data, sizeof s->next);
        return;
    }
    int64_t left;
    memcpy(&left, m->data, sizeof left);
    if (left == 0) {
        g_token_done = true;
        return;
    }
    left--;
    sup_send(sup_self_rt(self), sup_self(self), s->next, TAG_TOKEN, &left, sizeof left);
}

static int relay_init(sup_actor *self, void *state, void *arg)
{
    (void)self;
    relay_state *s = state;
    if (arg != NULL) {
        s->next = *(const sup_pid *)arg;
    }
    return 0;
}

static const sup_behaviour relay_b = {.name = "relay",
                                      .state_size = sizeof(relay_state),
                                      .init = relay_init,
                                      .handle_info = relay_info};

/* Sends the token (n hops left) to `first` and runs until it is used up. Returns ns. */
static uint64_t run_token(sup_rt *rt, sup_pid first, int64_t n)
{
    g_token_done = false;
    uint64_t t0 = now_ns();
    sup_send(rt, SUP_NOPID, first, TAG_TOKEN, &n, sizeof n);
    size_t delivered = sup_rt_run(rt);
    uint64_t t1 = now_ns();
    if (!g_token_done || delivered != (size_t)n + 1) {
        fprintf(stderr, "bench_runtime: token lost (%zu delivered)\n", delivered);
        exit(1);
    }
    return t1 - t0;
}

static void bench_pingpong(long n)
{
    sup_rt *rt = sup_rt_new_virtual();
    sup_pid a = SUP_NOPID, b = SUP_NOPID;
    int rc = sup_spawn(rt, SUP_NOPID, &relay_b, NULL, 0, &b, NULL);
    if (rc == 0) {
        rc = sup_spawn(rt, SUP_NOPID, &relay_b, &b, 0, &a, NULL);
    }
    if (rc != 0) {
        die("spawn", rc);
    }
    sup_send(rt, SUP_NOPID, b, TAG_PEER, &a, sizeof a);
    sup_rt_run(rt);
    run_token(rt, a, 10000); /* warm-up */
    uint64_t ns = run_token(rt, a, n);
    printf("pingpong_msgs_per_s %.0f\n", per_s((uint64_t)n, ns));
    sup_rt_free(rt);
}

static void bench_ring(long n)
{
    enum { RING = 10000 };
    sup_rt *rt = sup_rt_new_virtual();
    uint64_t t0 = now_ns();
    /* spawned last to first, each told its successor; the last is told the first at the end */
    sup_pid last = SUP_NOPID, next;
    int rc = sup_spawn(rt, SUP_NOPID, &relay_b, NULL, 0, &last, NULL);
    next = last;
    for (int i = 1; i < RING && rc == 0; i++) {
        sup_pid p;
        rc = sup_spawn(rt, SUP_NOPID, &relay_b, &next, 0, &p, NULL);
        next = p;
    }
    if (rc != 0) {
        die("spawn", rc);
    }
    sup_send(rt, SUP_NOPID, last, TAG_PEER, &next, sizeof next);
    sup_rt_run(rt);
    uint64_t t1 = now_ns();
    run_token(rt, next, RING); /* warm-up: one lap */
    uint64_t ns = run_token(rt, next, n);
    printf("ring_msgs_per_s %.0f\n", per_s((uint64_t)n, ns));
    printf("ring_setup_s %.4f\n", (double)(t1 - t0) / 1e9);
    sup_rt_free(rt);
}

/* ---- restart latency -------------------------------------------------------------------- */

static uint64_t g_started_ns; /* when the latest worker's init ran */
static sup_pid g_worker;

static int crasher_init(sup_actor *self, void *state, void *arg)
{
    (void)state;
    (void)arg;
    g_started_ns = now_ns();
    g_worker = sup_self(self);
    return 0;
}

static void crasher_info(sup_actor *self, void *state, const sup_msg *m)
{
    (void)state;
    if (m->tag == TAG_CRASH) {
        sup_crash(self, "boom");
    }
}

static const sup_behaviour crasher_b = {
    .name = "crasher", .init = crasher_init, .handle_info = crasher_info};

static int start_crasher(sup_rt *rt, sup_pid parent, void *arg, void *extra, sup_pid *out,
                         sup_reason *why)
{
    (void)arg;
    (void)extra;
    return sup_spawn(rt, parent, &crasher_b, NULL, SUP_SPAWN_LINK, out, why);
}

static int cmp_u64(const void *x, const void *y)
{
    uint64_t a = *(const uint64_t *)x, b = *(const uint64_t *)y;
    return a < b ? -1 : a > b;
}

/* Median of v[from..to) (copied, v untouched), in µs. */
static double median_us(const uint64_t *v, size_t from, size_t to)
{
    size_t n = to - from;
    uint64_t *c = malloc(n * sizeof *c);
    if (c == NULL) {
        abort();
    }
    memcpy(c, v + from, n * sizeof *c);
    qsort(c, n, sizeof *c, cmp_u64);
    double m = (double)c[n / 2] / 1000.0;
    free(c);
    return m;
}

static void bench_restart(long n)
{
    sup_rt *rt = sup_rt_new_virtual();
    sup_flags f = {SUP_ONE_FOR_ONE, 1000000, 1, SUP_AUTO_NEVER};
    sup_child_spec spec = {.id = "w",
                           .start = start_crasher,
                           .restart = SUP_PERMANENT,
                           .shutdown_ms = SUP_SHUTDOWN_BRUTAL_KILL,
                           .type = SUP_WORKER};
    sup_reason why;
    sup_pid sv;
    int rc = sup_supervisor_start(rt, SUP_NOPID, &f, &spec, 1, NULL, &sv, &why);
    if (rc != 0) {
        die("supervisor", rc);
    }
    uint64_t *lat = calloc((size_t)n, sizeof *lat);
    if (lat == NULL) {
        abort();
    }
    for (long i = 0; i < n; i++) {
        sup_pid old = g_worker;
        uint64_t t0 = now_ns();
        sup_send(rt, SUP_NOPID, old, TAG_CRASH, NULL, 0);
        sup_rt_run(rt);
        if (sup_pid_eq(g_worker, old) || !sup_is_alive(rt, sv)) {
            fprintf(stderr, "bench_runtime: no restart at crash %ld\n", i);
            exit(1);
        }
        lat[i] = g_started_ns - t0;
    }
    double sum = 0;
    for (long i = 0; i < n; i++) {
        sum += (double)lat[i];
    }
    size_t k = n >= 2000 ? 1000 : (size_t)n / 2;
    double first = median_us(lat, 0, k), last = median_us(lat, (size_t)n - k, (size_t)n);
    qsort(lat, (size_t)n, sizeof *lat, cmp_u64);
    size_t p99 = (size_t)((double)n * 0.99);
    if (p99 >= (size_t)n) {
        p99 = (size_t)n - 1;
    }
    printf("restart_latency_median_us %.2f\n", (double)lat[n / 2] / 1000.0);
    printf("restart_latency_p99_us %.2f\n", (double)lat[p99] / 1000.0);
    printf("restart_latency_mean_us %.2f\n", sum / (double)n / 1000.0);
    printf("restart_latency_first1000_median_us %.2f\n", first);
    printf("restart_latency_last1000_median_us %.2f\n", last);
    free(lat);
    sup_reason sd = sup_reason_shutdown();
    sup_stop_sync(rt, sv, &sd);
    sup_rt_free(rt);
}

/* ---- memory per idle actor -------------------------------------------------------------- */

typedef struct idle_state {
    uint64_t counter;
    sup_pid peer;
} idle_state;

static const sup_behaviour idle_b = {
    .name = "idle", .state_size = sizeof(idle_state), .init = noop_init};

static void bench_memory(long n)
{
    sup_rt *rt = sup_rt_new_virtual();
    size_t m0 = sup_rt_memory(rt), r0 = rss_bytes();
    for (long i = 0; i < n; i++) {
        int rc = sup_spawn(rt, SUP_NOPID, &idle_b, NULL, 0, NULL, NULL);
        if (rc != 0) {
            die("spawn", rc);
        }
    }
    sup_rt_run(rt);
    size_t m1 = sup_rt_memory(rt), r1 = rss_bytes();
    printf("bytes_per_actor_runtime %.0f\n", (double)(m1 - m0) / (double)n);
    printf("bytes_per_actor_rss %.0f\n", (double)((long)r1 - (long)r0) / (double)n);
    sup_rt_free(rt);
}

/* ---- main ------------------------------------------------------------------------------- */

/* ---- send + dispatch by payload size (C only) ------------------------------------------- */

typedef struct pp_state {
    sup_pid peer;
} pp_state;

static size_t g_pp_size;   /* payload bytes */
static int64_t g_pp_left;  /* hops still to make */
static uint64_t g_pp_sink; /* keeps the payload read */

static void pp_info(sup_actor *self, void *state, const sup_msg *m)
{
    pp_state *s = state;
    if (m->tag == TAG_PEER) {
        memcpy(&s->peer, m->data, sizeof s->peer);
        return;
    }
    g_pp_sink += ((const unsigned char *)m->data)[m->len - 1];
    if (--g_pp_left <= 0) {
        return;
    }
    sup_send(sup_self_rt(self), sup_self(self), s->peer, TAG_TOKEN, m->data, m->len);
}

static const sup_behaviour pp_b = {
    .name = "pp", .state_size = sizeof(pp_state), .handle_info = pp_info};

static uint64_t pp_run(sup_rt *rt, sup_pid first, const unsigned char *buf, int64_t n)
{
    g_pp_left = n;
    uint64_t t0 = now_ns();
    sup_send(rt, SUP_NOPID, first, TAG_TOKEN, buf, g_pp_size);
    size_t delivered = sup_rt_run(rt);
    uint64_t t1 = now_ns();
    if (delivered != (size_t)n) {
        fprintf(stderr, "bench_runtime: send: %zu of %lld delivered\n", delivered, (long long)n);
        exit(1);
    }
    return t1 - t0;
}

static void sink_info(sup_actor *self, void *state, const sup_msg *m)
{
    (void)self;
    (void)state;
    g_pp_sink += ((const unsigned char *)m->data)[m->len - 1];
}

static const sup_behaviour sink_b = {.name = "sink", .handle_info = sink_info};

static uint64_t burst_run(sup_rt *rt, sup_pid to, const unsigned char *buf, long n)
{
    enum { BURST = 256 };
    uint64_t t0 = now_ns();
    for (long done = 0; done < n; done += BURST) {
        for (int i = 0; i < BURST; i++) {
            sup_send(rt, SUP_NOPID, to, TAG_TOKEN, buf, g_pp_size);
        }
        if (sup_rt_run(rt) != BURST) {
            fprintf(stderr, "bench_runtime: send: burst lost\n");
            exit(1);
        }
    }
    return now_ns() - t0;
}

static void bench_send(long n)
{
    static const size_t sizes[] = {16, 200, 1500};
    static unsigned char buf[1500];
    for (size_t i = 0; i < sizeof buf; i++) {
        buf[i] = (unsigned char)i;
    }
    n = (n / 256 + 1) * 256;
    for (size_t k = 0; k < sizeof sizes / sizeof sizes[0]; k++) {
        g_pp_size = sizes[k];
        sup_rt *rt = sup_rt_new_virtual();
        sup_pid a = SUP_NOPID, b = SUP_NOPID, c = SUP_NOPID;
        int rc = sup_spawn(rt, SUP_NOPID, &pp_b, NULL, 0, &a, NULL);
        if (rc == 0) {
            rc = sup_spawn(rt, SUP_NOPID, &pp_b, NULL, 0, &b, NULL);
        }
        if (rc == 0) {
            rc = sup_spawn(rt, SUP_NOPID, &sink_b, NULL, 0, &c, NULL);
        }
        if (rc != 0) {
            die("spawn", rc);
        }
        sup_send(rt, SUP_NOPID, a, TAG_PEER, &b, sizeof b);
        sup_send(rt, SUP_NOPID, b, TAG_PEER, &a, sizeof a);
        sup_rt_run(rt);
        pp_run(rt, a, buf, 10000); /* warm-up */
        uint64_t ns = pp_run(rt, a, buf, n);
        printf("send_pingpong_%zu_ns_per_msg %.1f\n", sizes[k], (double)ns / (double)n);
        burst_run(rt, c, buf, 10240); /* warm-up */
        ns = burst_run(rt, c, buf, n);
        printf("send_burst_%zu_ns_per_msg %.1f\n", sizes[k], (double)ns / (double)n);
        sup_rt_free(rt);
    }
    if (g_pp_sink == 42) {
        printf("\n");
    }
}

typedef struct mode {
    const char *name;
    void (*fn)(long n);
    long n;
    bool in_all; /* run by `all` (the modes with an Erlang twin) */
} mode;

static const mode g_modes[] = {
    /* memory first, so `all` measures it in a fresh heap */
    {"memory", bench_memory, 100000, true},      {"spawn", bench_spawn, 1000000, true},
    {"pingpong", bench_pingpong, 2000000, true}, {"ring", bench_ring, 2000000, true},
    {"restart", bench_restart, 10000, true},     {"send", bench_send, 2000000, false},
};

int main(int argc, char **argv)
{
    const char *which = argc > 1 ? argv[1] : "all";
    long n = argc > 2 ? strtol(argv[2], NULL, 10) : 0;
    bool any = false;
    for (size_t i = 0; i < sizeof g_modes / sizeof g_modes[0]; i++) {
        if ((strcmp(which, "all") == 0 && g_modes[i].in_all) ||
            strcmp(which, g_modes[i].name) == 0) {
            g_modes[i].fn(n > 0 ? n : g_modes[i].n);
            fflush(stdout);
            any = true;
        }
    }
    if (!any) {
        fprintf(stderr, "usage: %s [memory|spawn|pingpong|ring|restart|all|send] [N]\n", argv[0]);
        return 2;
    }
    return 0;
}
