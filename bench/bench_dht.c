/* bench/bench_dht.c — the DHT at 10,000 simulated nodes (QUALITY.md "DHT": lookup hops and
 * success at 10,000 simulated nodes, 10% churn, against the Kademlia bound).
 *
 *   bench_dht [nodes] [seed]     (defaults 10000, 1)
 *
 * Every node joins through node 0 (dht_bootstrap: self lookup + refresh), then:
 *   phase "no churn": `nodes` lookups of random live nodes from random live nodes;
 *   phase "10% churn": over 100 s of simulated time, nodes/10 crash (no notice) and nodes/10
 *     new ones join (Poisson), while `nodes` lookups run; a lookup whose origin or target
 *     crashed before it completed is excluded (counted separately);
 *   phase "values": nodes/50 puts, then nodes/10 gets from random nodes (no churn);
 *   phase "1% loss": `nodes` lookups while 1% of all messages are lost (after the churn).
 * Goals: success >= 99.9% without churn, >= 99% with churn, p99 hops <= log2(N)/2.
 * Hops = sequential requests from the origin to the target (1 = it was in the origin's table).
 * Everything runs through the wire codec over netsim (5 ms + Exp(20 ms) latency). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "mesh/dht/dht_sim.h"

typedef struct rec {
    uint32_t origin, handle, target;
    dht_id origin_id, target_id;
    uint8_t kind;
    bool done, found, target_alive, value_ok;
    uint32_t hops, queries;
    char expect[24];
} rec;

typedef struct bench {
    dhtsim *s;
    rec *r;
    uint32_t n, cap;
    uint32_t *open; /* per slot: records in flight from that slot */
} bench;

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void on_event(void *p, dhtsim *s, uint32_t node, const dht_event *ev)
{
    bench *b = p;
    if (b->open[node] == 0) {
        return;
    }
    for (uint32_t i = b->n; i-- > 0;) {
        rec *r = &b->r[i];
        if (r->done || r->origin != node || r->handle != ev->handle ||
            memcmp(r->origin_id.b, dhtsim_id(s, node)->b, DHT_ID_LEN) != 0) {
            continue;
        }
        r->done = true;
        b->open[node]--;
        r->found = ev->found;
        r->hops = ev->hops;
        r->queries = ev->queries;
        r->target_alive = dhtsim_node(s, r->target) != NULL &&
                          memcmp(dhtsim_id(s, r->target)->b, r->target_id.b, DHT_ID_LEN) == 0;
        size_t el = strlen(r->expect);
        for (uint32_t v = 0; v < ev->nvalues; v++) {
            r->value_ok |= ev->values[v].len == el && memcmp(ev->values[v].p, r->expect, el) == 0;
        }
        return;
    }
}

static rec *add(bench *b, uint32_t origin, uint8_t kind)
{
    if (b->n == b->cap) {
        b->cap = b->cap == 0 ? 4096 : b->cap * 2;
        b->r = realloc(b->r, b->cap * sizeof *b->r);
        if (b->r == NULL) {
            abort();
        }
    }
    rec *r = &b->r[b->n++];
    memset(r, 0, sizeof *r);
    r->origin = origin;
    r->origin_id = *dhtsim_id(b->s, origin);
    r->kind = kind;
    b->open[origin]++;
    return r;
}

static uint32_t other(dhtsim *s, uint32_t not )
{
    for (;;) {
        uint32_t x = dhtsim_random_up(s);
        if (x != not ) {
            return x;
        }
    }
}

static void lookup(bench *b)
{
    uint32_t a = dhtsim_random_up(b->s);
    uint32_t t = other(b->s, a);
    rec *r = add(b, a, DHT_EV_LOOKUP);
    r->target = t;
    r->target_id = *dhtsim_id(b->s, t);
    if (dht_lookup_node(dhtsim_node(b->s, a), &r->target_id, dhtsim_now_ms(b->s), &r->handle) !=
        0) {
        r->done = true; /* busy: counted as a failure */
        b->open[a]--;
    }
    dhtsim_flush(b->s, a);
}

/* log2 without libm: integer part by halving, fraction bit by bit by squaring. */
static double bench_log2(double x)
{
    double r = 0, bit = 0.5;
    while (x >= 2.0) {
        x /= 2.0;
        r += 1.0;
    }
    for (int i = 0; i < 30; i++, bit /= 2) {
        x *= x;
        if (x >= 2.0) {
            x /= 2.0;
            r += bit;
        }
    }
    return r;
}

static uint32_t pct(const uint32_t *hist, uint32_t total, double p)
{
    double w = p * total;
    uint64_t want = (uint64_t)w, acc = 0;
    if ((double)want < w) {
        want++;
    }
    for (uint32_t h = 0; h < 64; h++) {
        acc += hist[h];
        if (acc >= want && want > 0) {
            return h;
        }
    }
    return 63;
}

static void report(const char *name, bench *b, uint32_t first, uint32_t nodes, double wall)
{
    uint32_t hist[64] = {0}, counted = 0, ok = 0, excluded = 0, maxh = 0;
    uint64_t queries = 0;
    for (uint32_t i = first; i < b->n; i++) {
        rec *r = &b->r[i];
        if (r->done && !r->target_alive && r->kind == DHT_EV_LOOKUP) {
            excluded++;
            continue;
        }
        if (!r->done) {
            excluded++; /* its origin crashed */
            continue;
        }
        counted++;
        bool good = r->kind == DHT_EV_GET ? r->value_ok : r->found;
        if (good) {
            ok++;
            uint32_t h = r->hops < 63 ? r->hops : 63;
            hist[h]++;
            maxh = h > maxh ? h : maxh;
        }
        queries += r->queries;
    }
    double l2 = bench_log2((double)nodes);
    printf("| %-10s | %6u | %6u | %8.3f%% | %3u | %3u | %3u | %5.2f | %5.1f | %6.1f | %5.1f s |\n",
           name, counted, excluded, counted ? 100.0 * ok / counted : 0.0, pct(hist, ok, 0.5),
           pct(hist, ok, 0.99), maxh, l2, l2 / 2, counted ? (double)queries / counted : 0.0, wall);
    printf("|            | hops histogram:");
    for (uint32_t h = 0; h <= maxh; h++) {
        printf(" %u:%u", h, hist[h]);
    }
    printf(" |\n");
    fflush(stdout);
}

int main(int argc, char **argv)
{
    uint32_t nodes = argc > 1 ? (uint32_t)strtoul(argv[1], NULL, 10) : 10000;
    uint64_t seed = argc > 2 ? strtoull(argv[2], NULL, 10) : 1;
    if (nodes < 10) {
        fprintf(stderr, "bench_dht: need at least 10 nodes\n");
        return 2;
    }
    uint32_t spare = nodes / 10 + 1;
    bench b;
    memset(&b, 0, sizeof b);
    b.open = calloc(nodes + spare, sizeof *b.open);
    dhtsim_config cfg;
    memset(&cfg, 0, sizeof cfg);
    netsim_config_default(&cfg.net);
    cfg.net.seed = seed;
    cfg.net.nodes = nodes + spare;
    dht_config_default(&cfg.dht);
    cfg.dht.seed = seed;
    cfg.initial = nodes;
    cfg.join_interval_us = 10000;
    if (b.open == NULL || dhtsim_create(&cfg, on_event, &b, &b.s) != 0) {
        fprintf(stderr, "bench_dht: cannot create the simulation\n");
        return 1;
    }
    dhtsim *s = b.s;
    netsim *ns = dhtsim_net(s);

    double t0 = now_s();
    dhtsim_run_ms(s, (uint64_t)nodes * 10 + 60000);
    double join_wall = now_s() - t0;
    uint64_t tables = 0;
    for (uint32_t i = 0; i < nodes; i++) {
        tables += dhtsim_node(s, i) != NULL ? dht_table_size(dhtsim_node(s, i)) : 0;
    }
    dhtsim_stats st;
    dhtsim_get_stats(s, &st);
    printf("# bench_dht: %u nodes, seed %llu, k=20 alpha=3, latency 5 ms + Exp(20 ms)\n", nodes,
           (unsigned long long)seed);
    printf("# join: %u/%u joined, mean table %.1f contacts, %llu frames, %.1f s wall\n",
           dhtsim_joined(s), nodes, (double)tables / nodes, (unsigned long long)st.frames,
           join_wall);
    printf("\n| phase      | counted | excluded | success | p50 | p99 | max | log2N | goal p99 | "
           "queries/lookup | wall |\n");
    printf("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |\n");

    /* no churn */
    uint32_t first = b.n;
    t0 = now_s();
    uint64_t t = dhtsim_now_ms(s);
    for (uint32_t i = 0; i < nodes; i++) {
        lookup(&b);
        t += 2;
        dhtsim_run_ms(s, t);
    }
    dhtsim_run_ms(s, t + 60000);
    report("no churn", &b, first, nodes, now_s() - t0);

    /* values, no churn */
    first = b.n;
    t0 = now_s();
    uint32_t nputs = nodes / 50;
    dht_id *keys = calloc(nputs, sizeof *keys);
    char(*vals)[24] = calloc(nputs, sizeof *vals);
    for (uint32_t k = 0; k < nputs; k++) {
        uint32_t a = dhtsim_random_up(s);
        char name[24];
        snprintf(name, sizeof name, "svc-%u", k);
        (void)dht_key("realm.bench", 11, name, strlen(name), &keys[k]);
        snprintf(vals[k], sizeof vals[k], "provider-%u", a);
        rec *r = add(&b, a, DHT_EV_PUT);
        r->target = a;
        r->target_id = r->origin_id;
        (void)dht_put(dhtsim_node(s, a), &keys[k], vals[k], strlen(vals[k]), 0, dhtsim_now_ms(s),
                      &r->handle);
        dhtsim_flush(s, a);
        t = dhtsim_now_ms(s) + 5;
        dhtsim_run_ms(s, t);
    }
    dhtsim_run_ms(s, dhtsim_now_ms(s) + 40000);
    uint32_t gets_first = b.n;
    for (uint32_t i = 0; i < nodes / 10; i++) {
        uint32_t k = (uint32_t)netsim_rand_below(ns, nputs);
        uint32_t a = dhtsim_random_up(s);
        rec *r = add(&b, a, DHT_EV_GET);
        r->target = a;
        r->target_id = r->origin_id;
        snprintf(r->expect, sizeof r->expect, "%s", vals[k]);
        (void)dht_get(dhtsim_node(s, a), &keys[k], dhtsim_now_ms(s), &r->handle);
        dhtsim_flush(s, a);
        t = dhtsim_now_ms(s) + 5;
        dhtsim_run_ms(s, t);
    }
    dhtsim_run_ms(s, dhtsim_now_ms(s) + 40000);
    (void)first;
    report("get", &b, gets_first, nodes, now_s() - t0);
    free(keys);
    free(vals);

    /* 10% churn over 100 s */
    first = b.n;
    t0 = now_s();
    t = dhtsim_now_ms(s);
    double rate = (double)nodes / 10.0 / 100.0;
    (void)netsim_churn(ns, rate, rate, t * 1000, (t + 100000) * 1000);
    uint64_t gap_us = 100000000ull / nodes; /* nodes lookups over the 100 s */
    uint64_t tu = t * 1000;
    for (uint32_t i = 0; i < nodes; i++) {
        lookup(&b);
        tu += gap_us;
        (void)netsim_run(ns, tu);
    }
    dhtsim_run_ms(s, dhtsim_now_ms(s) + 60000);
    netsim_stats nst;
    netsim_get_stats(ns, &nst);
    report("10% churn", &b, first, nodes, now_s() - t0);

    /* 1% message loss, no churn: every lost request costs a query timeout */
    (void)netsim_set_loss(ns, 0.01);
    first = b.n;
    t0 = now_s();
    t = dhtsim_now_ms(s);
    for (uint32_t i = 0; i < nodes; i++) {
        lookup(&b);
        t += 2;
        dhtsim_run_ms(s, t);
    }
    dhtsim_run_ms(s, t + 60000);
    report("1% loss", &b, first, nodes, now_s() - t0);
    (void)netsim_set_loss(ns, 0.0);
    dhtsim_get_stats(s, &st);
    printf("\n# churn: %llu nodes crashed, %llu joined during the phase; %llu frames in all, "
           "%llu undecodable\n",
           (unsigned long long)nst.leaves, (unsigned long long)nst.joins,
           (unsigned long long)st.frames, (unsigned long long)st.bad_frames);
    printf("# net: %llu messages delivered, %llu dropped at crashed nodes; trace %016llx\n",
           (unsigned long long)nst.delivered, (unsigned long long)nst.to_down,
           (unsigned long long)netsim_trace_hash(ns));
    dhtsim_destroy(s);
    free(b.r);
    free(b.open);
    return 0;
}
