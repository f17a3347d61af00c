/*
 * bench/bench_pbft.c — PBFT (src/flow/consensus/byzantine.c) with n = 4.
 *
 *   bench_pbft [OPS] [CLIENTS]
 *
 * pbft_ops_per_s_cN, pbft_latency_us_p50_cN / _p99_cN
 *     In process, one thread: 4 replicas and N clients (1 and CLIENTS, default 16), messages
 *     delivered at once through a FIFO queue (no network), every message Ed25519-signed and
 *     verified (GnuTLS), flow task_submit commands with a 128-byte input applied by every
 *     replica, checkpoints every 64. OPS operations in all (default 4,000); each client keeps
 *     one outstanding (PBFT's rule). Wall time (CLOCK_MONOTONIC) from the first submit to the
 *     last accepted reply: the CPU cost of the protocol, signatures included.
 * pbft_view_change_ms_*
 *     On the network simulator (netsim; 1-5 ms uniform latency), simulated time: the primary
 *     crashes while clients are busy (client retry 100 ms, view change timeout 500 ms).
 *     _protocol: from the first backup's view-change timer firing to the last live replica
 *     installing the new view; _crash_to_commit: from the crash to the first reply a client
 *     accepts from the new view (requests in flight at the crash may still commit in the old
 *     one: they do not count). Median over 20 seeds.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <gnutls/abstract.h>
#include <gnutls/gnutls.h>

#include "flow/consensus/byzantine.h"
#include "mesh/sim/netsim.h"

#define N 4
#define MAXC 64

static gnutls_privkey_t rkey[N], ckey[MAXC];
static gnutls_pubkey_t rpub[N], cpub[MAXC];

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

static void make_key(gnutls_privkey_t *k, gnutls_pubkey_t *p)
{
    if (gnutls_privkey_init(k) < 0 ||
        gnutls_privkey_generate2(*k, GNUTLS_PK_EDDSA_ED25519, 256, 0, NULL, 0) < 0 ||
        gnutls_pubkey_init(p) < 0 || gnutls_pubkey_import_privkey(*p, *k, 0, 0) < 0) {
        fprintf(stderr, "bench_pbft: key generation failed\n");
        exit(1);
    }
}

static json_t *command(int c, int i, uint64_t now)
{
    flow_cmd cmd;
    if (i == 0) {
        flow_cmd_init(&cmd, FLOW_CMD_SWARM_CREATE, now);
        snprintf(cmd.swarm, sizeof cmd.swarm, "s%d", c);
        cmd.config.pool_min[0] = cmd.config.pool_min[1] = cmd.config.pool_min[2] = 0;
        cmd.config.queue_limit = 1000000;
    } else {
        flow_cmd_init(&cmd, FLOW_CMD_TASK_SUBMIT, now);
        snprintf(cmd.swarm, sizeof cmd.swarm, "s%d", c);
        snprintf(cmd.task, sizeof cmd.task, "t%d-%d", c, i);
        char v[129];
        memset(v, 'x', 128);
        v[128] = '\0';
        cmd.input = json_pack("{s:s}", "v", v);
    }
    json_t *j = flow_cmd_to_json(&cmd);
    flow_cmd_clear(&cmd);
    return j;
}

/* ---- in process, FIFO delivery ------------------------------------------------------------- */

typedef struct qmsg {
    uint32_t to, from;
    uint8_t *data;
    size_t len;
} qmsg;

typedef struct fifo {
    qmsg *v;
    size_t head, n, cap;
} fifo;

static void fifo_push(fifo *q, uint32_t to, uint32_t from, const uint8_t *d, size_t len)
{
    if (q->n == q->cap) {
        size_t cap = q->cap ? q->cap * 2 : 1024;
        qmsg *v = malloc(cap * sizeof *v);
        if (v == NULL) {
            exit(1);
        }
        for (size_t i = 0; i < q->n; i++) {
            v[i] = q->v[(q->head + i) % q->cap];
        }
        free(q->v);
        q->v = v;
        q->head = 0;
        q->cap = cap;
    }
    qmsg *m = &q->v[(q->head + q->n++) % q->cap];
    m->to = to;
    m->from = from;
    m->len = len;
    m->data = malloc(len); /* freed by the consumer */
    if (m->data == NULL) {
        exit(1);
    }
    memcpy(m->data, d, len);
}

typedef struct inproc {
    pbft_replica *r[N];
    pbft_client *c[MAXC];
    int nc;
    fifo q;
    int todo[MAXC], sent[MAXC];
    uint64_t start[MAXC];
    uint64_t *lat;
    size_t nlat;
} inproc;

static uint64_t ms(void)
{
    return now_ns() / 1000000;
}

static void drain(inproc *p, uint32_t node)
{
    pbft_outbox *ob =
        node < N ? pbft_replica_outbox(p->r[node]) : pbft_client_outbox(p->c[node - N]);
    for (size_t i = 0; i < ob->n; i++) {
        const pbft_out *o = &ob->v[i];
        if (o->dest == PBFT_TO_CLIENT) {
            fifo_push(&p->q, N + o->to, node, o->data, o->len);
        } else if (o->dest == PBFT_TO_REPLICA) {
            fifo_push(&p->q, o->to, node, o->data, o->len);
        } else {
            for (uint32_t t = 0; t < N; t++) {
                if (t != node) {
                    fifo_push(&p->q, t, node, o->data, o->len);
                }
            }
        }
    }
    pbft_outbox_clear(ob);
}

static void next(inproc *p, int c)
{
    if (p->todo[c] == 0) {
        return;
    }
    json_t *cmd = command(c, p->sent[c], ms());
    p->start[c] = now_ns();
    if (pbft_client_submit_cmd(p->c[c], ms(), cmd) != 0) {
        fprintf(stderr, "bench_pbft: submit failed\n");
        exit(1);
    }
    json_decref(cmd);
    p->sent[c]++;
    p->todo[c]--;
    drain(p, N + (uint32_t)c);
}

static void bench_inproc(int nclients, int ops)
{
    inproc *p = calloc(1, sizeof *p);
    p->nc = nclients;
    p->lat = calloc((size_t)ops + (size_t)nclients, sizeof *p->lat);
    for (uint32_t i = 0; i < N; i++) {
        pbft_config cfg = {.n = N, .id = i, .key = rkey[i], .replicas = rpub, .clients = cpub};
        cfg.nclients = (uint32_t)nclients;
        p->r[i] = pbft_replica_new(&cfg, NULL);
    }
    for (int i = 0; i < nclients; i++) {
        pbft_client_config cc = {.n = N, .id = (uint32_t)i, .key = ckey[i], .replicas = rpub};
        p->c[i] = pbft_client_new(&cc, NULL);
        p->todo[i] = ops / nclients + (i < ops % nclients);
    }
    uint64_t t0 = now_ns();
    for (int i = 0; i < nclients; i++) {
        next(p, i);
    }
    while (p->q.n > 0) {
        qmsg m = p->q.v[p->q.head];
        p->q.head = (p->q.head + 1) % p->q.cap;
        p->q.n--;
        if (m.to < N) {
            pbft_replica_receive(p->r[m.to], ms(), m.from < N ? m.from : PBFT_FROM_CLIENT, m.data,
                                 m.len);
        } else {
            int c = (int)(m.to - N);
            bool busy = pbft_client_busy(p->c[c]);
            pbft_client_receive(p->c[c], ms(), m.data, m.len);
            if (busy && pbft_client_done(p->c[c], NULL, NULL)) {
                p->lat[p->nlat++] = now_ns() - p->start[c];
                next(p, c);
            }
        }
        free(m.data);
        drain(p, m.to);
    }
    uint64_t t1 = now_ns();
    qsort(p->lat, p->nlat, sizeof *p->lat, cmp_u64);
    size_t p50 = p->nlat / 2, p99 = p->nlat * 99 / 100;
    printf("pbft_ops_per_s_c%d %.0f\n", nclients, (double)p->nlat / ((double)(t1 - t0) / 1e9));
    printf("pbft_latency_us_p50_c%d %.0f\n", nclients, (double)p->lat[p50] / 1e3);
    printf("pbft_latency_us_p99_c%d %.0f\n", nclients, (double)p->lat[p99] / 1e3);
    char *a = pbft_replica_state_text(p->r[0]), *b = pbft_replica_state_text(p->r[3]);
    if (p->nlat != (size_t)ops || strcmp(a, b) != 0) {
        fprintf(stderr, "bench_pbft: %zu of %d done, replicas %s\n", p->nlat, ops,
                strcmp(a, b) ? "differ" : "agree");
        exit(1);
    }
    free(a);
    free(b);
    for (int i = 0; i < N; i++) {
        pbft_replica_free(p->r[i]);
    }
    for (int i = 0; i < nclients; i++) {
        pbft_client_free(p->c[i]);
    }
    free(p->q.v);
    free(p->lat);
    free(p);
}

/* ---- view change on the simulator --------------------------------------------------------- */

#define VC_CLIENTS 4

typedef struct vsim {
    netsim *ns;
    pbft_replica *r[N];
    pbft_client *c[VC_CLIENTS];
    uint64_t sched[N + VC_CLIENTS];
    uint64_t crash_at, first_vc, last_nv, first_commit_after;
    uint64_t executed_at_crash;
    int sent[VC_CLIENTS];
} vsim;

static uint64_t vnow(vsim *s)
{
    return netsim_now(s->ns) / 1000;
}

static void vflush(vsim *s, uint32_t node)
{
    pbft_outbox *ob =
        node < N ? pbft_replica_outbox(s->r[node]) : pbft_client_outbox(s->c[node - N]);
    for (size_t i = 0; i < ob->n; i++) {
        const pbft_out *o = &ob->v[i];
        if (o->dest == PBFT_TO_CLIENT) {
            netsim_send(s->ns, node, N + o->to, o->data, o->len);
        } else if (o->dest == PBFT_TO_REPLICA) {
            netsim_send(s->ns, node, o->to, o->data, o->len);
        } else {
            for (uint32_t t = 0; t < N; t++) {
                if (t != node) {
                    netsim_send(s->ns, node, t, o->data, o->len);
                }
            }
        }
    }
    pbft_outbox_clear(ob);
    uint64_t d = node < N ? pbft_replica_next_deadline(s->r[node])
                          : pbft_client_next_deadline(s->c[node - N]);
    if (d != UINT64_MAX &&
        (s->sched[node] == UINT64_MAX || d < s->sched[node] || s->sched[node] < vnow(s))) {
        s->sched[node] = d;
        netsim_timer(s->ns, node, d * 1000, d);
    }
}

static void vobserve(vsim *s)
{
    if (s->crash_at == 0) {
        return;
    }
    bool all_nv = true;
    for (uint32_t i = 1; i < N; i++) {
        if (s->first_vc == 0 && pbft_replica_view(s->r[i]) > 0) {
            s->first_vc = netsim_now(s->ns);
        }
        all_nv = all_nv && pbft_replica_view(s->r[i]) > 0 && !pbft_replica_view_changing(s->r[i]);
    }
    if (all_nv && s->last_nv == 0) {
        s->last_nv = netsim_now(s->ns);
    }
}

static void vsubmit(vsim *s, int c)
{
    json_t *cmd = command(c, s->sent[c]++, vnow(s));
    if (pbft_client_submit_cmd(s->c[c], vnow(s), cmd) == 0) {
        vflush(s, N + (uint32_t)c);
    }
    json_decref(cmd);
}

static void vdeliver(void *ctx, netsim *ns, uint32_t to, uint32_t from, const uint8_t *data,
                     size_t len)
{
    (void)ns;
    vsim *s = ctx;
    if (to < N) {
        pbft_replica_receive(s->r[to], vnow(s), from < N ? from : PBFT_FROM_CLIENT, data, len);
    } else {
        int c = (int)(to - N);
        bool busy = pbft_client_busy(s->c[c]);
        pbft_client_receive(s->c[c], vnow(s), data, len);
        if (busy && pbft_client_done(s->c[c], NULL, NULL)) {
            if (s->crash_at && s->first_commit_after == 0 && pbft_client_view(s->c[c]) > 0) {
                s->first_commit_after = netsim_now(s->ns); /* answered in the new view */
            }
            vsubmit(s, c);
        }
    }
    vflush(s, to);
    vobserve(s);
}

static void vtimer(void *ctx, netsim *ns, uint32_t node, uint64_t tag)
{
    (void)ns;
    vsim *s = ctx;
    if (s->sched[node] == tag) {
        s->sched[node] = UINT64_MAX;
    }
    if (node < N) {
        pbft_replica_tick(s->r[node], vnow(s));
    } else {
        pbft_client_tick(s->c[node - N], vnow(s));
    }
    vflush(s, node);
    vobserve(s);
}

static void bench_view_change(double *protocol_ms, double *crash_ms)
{
    enum { SEEDS = 20 };
    double proto[SEEDS], crash[SEEDS];
    for (int seed = 0; seed < SEEDS; seed++) {
        vsim *s = calloc(1, sizeof *s);
        netsim_config cfg;
        netsim_config_default(&cfg);
        cfg.seed = 1000 + (uint64_t)seed;
        cfg.nodes = N + VC_CLIENTS;
        cfg.latency = NETSIM_LAT_UNIFORM;
        cfg.lat_min_us = 1000;
        cfg.lat_spread_us = 4000;
        netsim_ops ops = {vdeliver, vtimer, NULL, NULL};
        netsim_create(&cfg, &ops, s, &s->ns);
        for (uint32_t i = 0; i < N; i++) {
            pbft_config pc = {.n = N, .id = i, .key = rkey[i], .replicas = rpub, .clients = cpub};
            pc.nclients = VC_CLIENTS;
            s->r[i] = pbft_replica_new(&pc, NULL);
        }
        for (uint32_t i = 0; i < N + VC_CLIENTS; i++) {
            s->sched[i] = UINT64_MAX;
        }
        for (int i = 0; i < VC_CLIENTS; i++) {
            pbft_client_config cc = {.n = N, .id = (uint32_t)i, .key = ckey[i], .replicas = rpub};
            cc.retry_ms = 100;
            s->c[i] = pbft_client_new(&cc, NULL);
            vsubmit(s, i);
        }
        netsim_run(s->ns, 300000 + netsim_rand_below(s->ns, 100000));
        s->executed_at_crash = pbft_replica_last_executed(s->r[1]);
        netsim_set_up(s->ns, 0, false);
        s->crash_at = netsim_now(s->ns);
        netsim_run(s->ns, s->crash_at + 2000000);
        proto[seed] = (double)(s->last_nv - s->first_vc) / 1e3;
        crash[seed] = (double)(s->first_commit_after - s->crash_at) / 1e3;
        if (s->last_nv == 0 || s->first_commit_after == 0) {
            fprintf(stderr, "bench_pbft: seed %d: no new view\n", seed);
            exit(1);
        }
        for (int i = 0; i < N; i++) {
            pbft_replica_free(s->r[i]);
        }
        for (int i = 0; i < VC_CLIENTS; i++) {
            pbft_client_free(s->c[i]);
        }
        netsim_destroy(s->ns);
        free(s);
    }
    for (int i = 0; i < SEEDS; i++) { /* insertion sort, 20 values */
        for (int j = i; j > 0 && proto[j] < proto[j - 1]; j--) {
            double t = proto[j];
            proto[j] = proto[j - 1];
            proto[j - 1] = t;
        }
        for (int j = i; j > 0 && crash[j] < crash[j - 1]; j--) {
            double t = crash[j];
            crash[j] = crash[j - 1];
            crash[j - 1] = t;
        }
    }
    *protocol_ms = proto[SEEDS / 2];
    *crash_ms = crash[SEEDS / 2];
}

int main(int argc, char **argv)
{
    int ops = argc > 1 ? (int)strtol(argv[1], NULL, 10) : 4000;
    int clients = argc > 2 ? (int)strtol(argv[2], NULL, 10) : 16;
    if (ops < 1 || clients < 1 || clients > MAXC) {
        fprintf(stderr, "usage: bench_pbft [OPS] [CLIENTS <= %d]\n", MAXC);
        return 2;
    }
    for (int i = 0; i < N; i++) {
        make_key(&rkey[i], &rpub[i]);
    }
    for (int i = 0; i < MAXC; i++) {
        make_key(&ckey[i], &cpub[i]);
    }
    bench_inproc(1, ops / 4 > 0 ? ops / 4 : 1);
    bench_inproc(clients, ops);
    double proto, crash;
    bench_view_change(&proto, &crash);
    printf("pbft_view_change_ms_protocol %.1f\n", proto);
    printf("pbft_view_change_ms_crash_to_commit %.1f\n", crash);
    for (int i = 0; i < N; i++) {
        gnutls_privkey_deinit(rkey[i]);
        gnutls_pubkey_deinit(rpub[i]);
    }
    for (int i = 0; i < MAXC; i++) {
        gnutls_privkey_deinit(ckey[i]);
        gnutls_pubkey_deinit(cpub[i]);
    }
    return 0;
}
