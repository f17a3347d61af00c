/* tests/unit/test_dht_sim.c — the DHT core at scale over the deterministic simulator
 * (src/mesh/dht/dht_sim.h, src/mesh/sim/netsim.h): 1,000 nodes join through one bootstrap
 * node, random lookups all succeed, values put at one node are found from others, lookups
 * still succeed (>= 99%) under 10% churn, a partition cuts lookups across it and healing
 * restores them, and a run is a pure function of its seed. Every message goes through the
 * wire codec. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "mesh/dht/dht_sim.h"

#define N_NODES 1000u
#define N_SPARE 100u

/* ---- bookkeeping of the lookups a test issues ------------------------------------------- */

typedef struct rec {
    uint32_t origin;  /* slot */
    dht_id origin_id; /* its node then (a churned slot is another node) */
    uint32_t handle;
    uint32_t target; /* slot */
    dht_id target_id;
    uint8_t kind; /* DHT_EV_* expected */
    bool done, found, target_alive;
    uint32_t hops, nvalues;
    bool value_ok; /* GET: the expected value is among those returned */
    char expect[32];
} rec;

typedef struct ctx {
    dhtsim *s;
    rec *r;
    uint32_t n, cap;
    uint64_t trace; /* folds every completion of a recorded lookup, for determinism */
} ctx;

static void on_event(void *p, dhtsim *s, uint32_t node, const dht_event *ev)
{
    ctx *c = p;
    for (uint32_t i = 0; i < c->n; i++) {
        rec *r = &c->r[i];
        if (r->done || r->origin != node || r->handle != ev->handle ||
            memcmp(r->origin_id.b, dhtsim_id(s, node)->b, DHT_ID_LEN) != 0) {
            continue;
        }
        assert_int_equal(ev->kind, r->kind);
        r->done = true;
        r->found = ev->found;
        r->hops = ev->hops;
        r->nvalues = ev->nvalues;
        r->target_alive = dhtsim_node(s, r->target) != NULL &&
                          memcmp(dhtsim_id(s, r->target)->b, r->target_id.b, DHT_ID_LEN) == 0;
        size_t el = strlen(r->expect);
        for (uint32_t v = 0; v < ev->nvalues; v++) {
            if (ev->values[v].len == el && memcmp(ev->values[v].p, r->expect, el) == 0) {
                r->value_ok = true;
            }
        }
        c->trace = c->trace * 1000003u + (uint64_t)(i + 1) * 31u + (uint64_t)ev->hops * 7u +
                   ev->found + (uint64_t)ev->queries * 131u;
        return;
    }
}

static rec *add_rec(ctx *c)
{
    if (c->n == c->cap) {
        c->cap = c->cap == 0 ? 1024 : c->cap * 2;
        c->r = realloc(c->r, c->cap * sizeof *c->r);
        assert_non_null(c->r);
    }
    rec *r = &c->r[c->n++];
    memset(r, 0, sizeof *r);
    return r;
}

/* Node `from` looks up the node of slot `to`. */
static void issue_lookup(ctx *c, uint32_t from, uint32_t to)
{
    rec *r = add_rec(c);
    r->origin = from;
    r->origin_id = *dhtsim_id(c->s, from);
    r->target = to;
    r->target_id = *dhtsim_id(c->s, to);
    r->kind = DHT_EV_LOOKUP;
    assert_int_equal(
        dht_lookup_node(dhtsim_node(c->s, from), &r->target_id, dhtsim_now_ms(c->s), &r->handle),
        0);
    dhtsim_flush(c->s, from);
}

static uint32_t random_other(dhtsim *s, uint32_t not )
{
    for (;;) {
        uint32_t x = dhtsim_random_up(s);
        if (x != not ) {
            return x;
        }
    }
}

/* Issues `count` lookups between random distinct live nodes, `gap_ms` apart, then lets them
 * finish. Returns the index of the first record. */
static uint32_t random_lookups(ctx *c, uint32_t count, uint64_t gap_ms)
{
    uint32_t first = c->n;
    uint64_t t = dhtsim_now_ms(c->s);
    for (uint32_t i = 0; i < count; i++) {
        uint32_t a = dhtsim_random_up(c->s);
        issue_lookup(c, a, random_other(c->s, a));
        t += gap_ms;
        dhtsim_run_ms(c->s, t);
    }
    dhtsim_run_ms(c->s, t + 60000); /* > lookup timeout: everything has completed */
    return first;
}

static dhtsim_config sim_config(uint64_t seed, uint32_t nodes, uint32_t spare)
{
    dhtsim_config cfg;
    memset(&cfg, 0, sizeof cfg);
    netsim_config_default(&cfg.net); /* 5 ms + Exp(20 ms) latency */
    cfg.net.seed = seed;
    cfg.net.nodes = nodes + spare;
    dht_config_default(&cfg.dht);
    cfg.dht.seed = seed;
    cfg.initial = nodes;
    cfg.join_interval_us = 10000;
    return cfg;
}

/* Creates a network and lets every node join. */
static dhtsim *joined_network(ctx *c, uint64_t seed, uint32_t nodes, uint32_t spare)
{
    dhtsim_config cfg = sim_config(seed, nodes, spare);
    dhtsim *s;
    assert_int_equal(dhtsim_create(&cfg, on_event, c, &s), 0);
    c->s = s;
    dhtsim_run_ms(s, (uint64_t)nodes * 10 + 60000);
    assert_int_equal(dhtsim_joined(s), nodes);
    return s;
}

/* ---- the shared 1,000-node network ------------------------------------------------------ */

static ctx g;

static int setup_big(void **state)
{
    memset(&g, 0, sizeof g);
    (void)joined_network(&g, 0xd47, N_NODES, N_SPARE);
    return 0;
}

static int teardown_big(void **state)
{
    dhtsim_destroy(g.s);
    free(g.r);
    return 0;
}

static void test_every_node_joined(void **state)
{
    dhtsim *s = g.s;
    uint64_t total = 0;
    for (uint32_t i = 0; i < N_NODES; i++) {
        dht *d = dhtsim_node(s, i);
        assert_non_null(d);
        assert_true(dht_table_size(d) >= 20); /* at least a full bucket's worth */
        total += dht_table_size(d);
    }
    for (uint32_t i = N_NODES; i < N_NODES + N_SPARE; i++) {
        assert_null(dhtsim_node(s, i)); /* spares are down */
    }
    dhtsim_stats st;
    dhtsim_get_stats(s, &st);
    assert_int_equal(st.bad_frames, 0);
    assert_int_equal(st.created, N_NODES);
    printf("# %u nodes joined, mean table %.1f contacts, %llu frames\n", N_NODES,
           (double)total / N_NODES, (unsigned long long)st.frames);
}

static void test_random_lookups_all_succeed(void **state)
{
    uint32_t first = random_lookups(&g, 1000, 5);
    uint32_t hist[16] = {0};
    for (uint32_t i = first; i < g.n; i++) {
        assert_true(g.r[i].done);
        if (!g.r[i].found) {
            fail_msg("lookup %u (slot %u -> %u) failed", i - first, g.r[i].origin, g.r[i].target);
        }
        assert_true(g.r[i].hops >= 1 && g.r[i].hops <= 10); /* log2(1000) = 10 */
        hist[g.r[i].hops < 15 ? g.r[i].hops : 15]++;
    }
    printf("# hops:");
    for (int h = 1; h < 8; h++) {
        printf(" %d:%u", h, hist[h]);
    }
    printf("\n");
}

static void test_values_found_from_other_nodes(void **state)
{
    dhtsim *s = g.s;
    uint32_t puts_first = g.n;
    /* 30 services, each advertised by one node */
    for (int k = 0; k < 30; k++) {
        uint32_t a = dhtsim_random_up(s);
        rec *r = add_rec(&g);
        r->origin = a;
        r->origin_id = *dhtsim_id(s, a);
        r->kind = DHT_EV_PUT;
        r->target = a;
        r->target_id = r->origin_id;
        char name[16];
        snprintf(name, sizeof name, "svc-%d", k);
        dht_id key;
        assert_int_equal(dht_key("realm.sim", 9, name, strlen(name), &key), 0);
        snprintf(r->expect, sizeof r->expect, "provider-%u", a);
        assert_int_equal(dht_put(dhtsim_node(s, a), &key, r->expect, strlen(r->expect), 0,
                                 dhtsim_now_ms(s), &r->handle),
                         0);
        dhtsim_flush(s, a);
    }
    dhtsim_run_ms(s, dhtsim_now_ms(s) + 40000);
    for (uint32_t i = puts_first; i < puts_first + 30; i++) {
        assert_true(g.r[i].done);
        assert_true(g.r[i].found); /* stored somewhere */
    }
    /* each is found from 5 other random nodes */
    uint32_t gets_first = g.n;
    for (int k = 0; k < 30; k++) {
        char name[16];
        snprintf(name, sizeof name, "svc-%d", k);
        dht_id key;
        assert_int_equal(dht_key("realm.sim", 9, name, strlen(name), &key), 0);
        for (int j = 0; j < 5; j++) {
            uint32_t b = dhtsim_random_up(s);
            rec *r = add_rec(&g);
            r->origin = b;
            r->origin_id = *dhtsim_id(s, b);
            r->kind = DHT_EV_GET;
            r->target = b;
            r->target_id = r->origin_id;
            memcpy(r->expect, g.r[puts_first + (uint32_t)k].expect, sizeof r->expect);
            assert_int_equal(dht_get(dhtsim_node(s, b), &key, dhtsim_now_ms(s), &r->handle), 0);
            dhtsim_flush(s, b);
        }
        dhtsim_run_ms(s, dhtsim_now_ms(s) + 20);
    }
    dhtsim_run_ms(s, dhtsim_now_ms(s) + 40000);
    for (uint32_t i = gets_first; i < g.n; i++) {
        assert_true(g.r[i].done);
        assert_true(g.r[i].found);
        assert_int_equal(g.r[i].nvalues, 1);
        assert_true(g.r[i].value_ok);
    }
    /* the same name in another realm is another key: nothing there */
    dht_id other;
    assert_int_equal(dht_key("realm.other", 11, "svc-0", 5, &other), 0);
    uint32_t b = dhtsim_random_up(s);
    rec *r = add_rec(&g);
    r->origin = b;
    r->origin_id = *dhtsim_id(s, b);
    r->kind = DHT_EV_GET;
    r->target = b;
    r->target_id = r->origin_id;
    assert_int_equal(dht_get(dhtsim_node(s, b), &other, dhtsim_now_ms(s), &r->handle), 0);
    dhtsim_flush(s, b);
    dhtsim_run_ms(s, dhtsim_now_ms(s) + 40000);
    assert_true(r->done);
    assert_false(r->found);
}

static void test_lookups_under_churn(void **state)
{
    dhtsim *s = g.s;
    netsim *ns = dhtsim_net(s);
    /* 10% churn: over 100 s, 100 nodes crash and 100 new ones join (Poisson, 1/s each) */
    uint64_t t0 = dhtsim_now_ms(s);
    assert_int_equal(netsim_churn(ns, 1.0, 1.0, t0 * 1000, (t0 + 100000) * 1000), 0);
    uint32_t first = g.n;
    for (int round = 0; round < 100; round++) {
        uint64_t t = dhtsim_now_ms(s);
        for (int i = 0; i < 10; i++) {
            uint32_t a = dhtsim_random_up(s);
            issue_lookup(&g, a, random_other(s, a));
        }
        dhtsim_run_ms(s, t + 1000);
    }
    dhtsim_run_ms(s, dhtsim_now_ms(s) + 60000);
    netsim_stats nst;
    netsim_get_stats(ns, &nst);
    assert_true(nst.leaves >= 60 && nst.leaves <= 140);
    assert_true(nst.joins >= 60);
    uint32_t counted = 0, ok = 0, gone = 0;
    for (uint32_t i = first; i < g.n; i++) {
        if (!g.r[i].done || !g.r[i].target_alive) {
            gone++; /* its origin or its target crashed meanwhile */
            continue;
        }
        counted++;
        ok += g.r[i].found;
    }
    printf("# churn: %llu left, %llu joined; %u/%u lookups succeeded (%u excluded)\n",
           (unsigned long long)nst.leaves, (unsigned long long)nst.joins, ok, counted, gone);
    assert_true(counted >= 900);
    assert_true(ok * 100 >= counted * 99);
    dhtsim_stats st;
    dhtsim_get_stats(s, &st);
    assert_int_equal(st.bad_frames, 0);
}

/* ---- partitions ------------------------------------------------------------------------- */

static void test_partition_and_heal(void **state)
{
    ctx c;
    memset(&c, 0, sizeof c);
    dhtsim *s = joined_network(&c, 0x9a97, 200, 0);
    netsim *ns = dhtsim_net(s);
    /* odd slots vs even slots */
    for (uint32_t i = 0; i < 200; i++) {
        assert_int_equal(netsim_set_group(ns, i, i % 2), 0);
    }
    uint32_t first = c.n;
    uint64_t t = dhtsim_now_ms(s);
    for (int i = 0; i < 100; i++) {
        uint32_t a = (uint32_t)netsim_rand_below(ns, 200);
        uint32_t b = (uint32_t)netsim_rand_below(ns, 200);
        if (a == b) {
            continue;
        }
        issue_lookup(&c, a, b);
        t += 10;
        dhtsim_run_ms(s, t);
    }
    dhtsim_run_ms(s, t + 60000);
    uint32_t same = 0, same_ok = 0, cross = 0;
    for (uint32_t i = first; i < c.n; i++) {
        assert_true(c.r[i].done);
        if (c.r[i].origin % 2 == c.r[i].target % 2) {
            same++;
            same_ok += c.r[i].found;
        } else {
            cross++;
            assert_false(c.r[i].found); /* nothing crosses a partition */
        }
    }
    assert_true(same > 20 && cross > 20);
    assert_true(same_ok * 100 >= same * 95);
    netsim_stats nst;
    netsim_get_stats(ns, &nst);
    assert_true(nst.partitioned > 0);
    /* healed: lookups across the former cut succeed again */
    netsim_heal(ns);
    first = c.n;
    t = dhtsim_now_ms(s);
    for (uint32_t i = 0; i < 100; i++) {
        uint32_t a = (2 * i) % 200, b = (2 * i + 7) % 200; /* even -> odd */
        issue_lookup(&c, a, b);
        t += 10;
        dhtsim_run_ms(s, t);
    }
    dhtsim_run_ms(s, t + 60000);
    uint32_t ok = 0;
    for (uint32_t i = first; i < c.n; i++) {
        assert_true(c.r[i].done);
        ok += c.r[i].found;
    }
    printf("# partition: %u/%u same-side ok, %u cross-side all failed; healed %u/100 ok\n", same_ok,
           same, cross, ok);
    assert_true(ok >= 99);
    dhtsim_destroy(s);
    free(c.r);
}

/* ---- determinism ------------------------------------------------------------------------ */

typedef struct run_result {
    uint64_t net_hash, lookups_hash;
    uint64_t frames;
} run_result;

static run_result small_run(uint64_t seed, double loss)
{
    ctx c;
    memset(&c, 0, sizeof c);
    dhtsim_config cfg = sim_config(seed, 150, 15);
    cfg.net.loss = loss;
    dhtsim *s;
    assert_int_equal(dhtsim_create(&cfg, on_event, &c, &s), 0);
    c.s = s;
    dhtsim_run_ms(s, 150 * 10 + 30000);
    uint64_t t0 = dhtsim_now_ms(s);
    assert_int_equal(netsim_churn(dhtsim_net(s), 0.5, 0.5, t0 * 1000, (t0 + 20000) * 1000), 0);
    (void)random_lookups(&c, 100, 200);
    run_result r;
    r.net_hash = netsim_trace_hash(dhtsim_net(s));
    r.lookups_hash = c.trace;
    dhtsim_stats st;
    dhtsim_get_stats(s, &st);
    r.frames = st.frames;
    dhtsim_destroy(s);
    free(c.r);
    return r;
}

static void test_same_seed_same_trace(void **state)
{
    run_result a = small_run(7, 0.01), b = small_run(7, 0.01), c = small_run(8, 0.01);
    printf("# seed 7: trace %016llx (%llu frames); seed 8: %016llx\n",
           (unsigned long long)a.net_hash, (unsigned long long)a.frames,
           (unsigned long long)c.net_hash);
    assert_true(a.net_hash == b.net_hash);
    assert_true(a.lookups_hash == b.lookups_hash);
    assert_true(a.frames == b.frames);
    assert_true(a.net_hash != c.net_hash);
}

/* ---- netsim on its own ------------------------------------------------------------------ */

typedef struct echo {
    uint64_t got[4];
    uint64_t at[4];
    uint32_t timers, downs, ups;
} echo;

static void echo_deliver(void *p, netsim *ns, uint32_t to, uint32_t from, const uint8_t *data,
                         size_t len)
{
    echo *e = p;
    e->got[to]++;
    e->at[to] = netsim_now(ns);
}

static void echo_timer(void *p, netsim *ns, uint32_t node, uint64_t tag)
{
    ((echo *)p)->timers++;
}

static void echo_down(void *p, netsim *ns, uint32_t node)
{
    ((echo *)p)->downs++;
}

static void echo_up(void *p, netsim *ns, uint32_t node)
{
    ((echo *)p)->ups++;
}

static void test_netsim_model(void **state)
{
    echo e;
    memset(&e, 0, sizeof e);
    netsim_ops ops = {echo_deliver, echo_timer, echo_down, echo_up};
    netsim_config cfg;
    netsim_config_default(&cfg);
    cfg.nodes = 4;
    cfg.latency = NETSIM_LAT_UNIFORM;
    cfg.lat_min_us = 1000;
    cfg.lat_spread_us = 0;
    netsim *ns;
    assert_int_equal(netsim_create(&cfg, &ops, &e, &ns), 0);
    /* latency: exactly 1 ms */
    assert_int_equal(netsim_send(ns, 0, 1, "x", 1), 0);
    netsim_run(ns, 999);
    assert_int_equal(e.got[1], 0);
    netsim_run(ns, 1000);
    assert_int_equal(e.got[1], 1);
    assert_int_equal(e.at[1], 1000);
    /* partition: dropped at send and at delivery */
    assert_int_equal(netsim_set_group(ns, 2, 1), 0);
    assert_int_equal(netsim_send(ns, 0, 2, "x", 1), 0);
    assert_int_equal(netsim_send(ns, 0, 3, "x", 1), 0);
    assert_int_equal(netsim_set_group(ns, 3, 1), 0); /* cut while in flight */
    netsim_run(ns, 5000);
    assert_int_equal(e.got[2] + e.got[3], 0);
    netsim_heal(ns);
    /* a node that restarts loses messages and timers meant for its old incarnation */
    assert_int_equal(netsim_send(ns, 0, 2, "x", 1), 0);
    assert_int_equal(netsim_timer(ns, 2, 5500, 9), 0);
    assert_int_equal(netsim_set_up(ns, 2, false), 0);
    assert_int_equal(netsim_set_up(ns, 2, true), 0);
    assert_int_equal(netsim_incarnation(ns, 2), 1);
    netsim_run(ns, 10000);
    assert_int_equal(e.got[2], 0);
    assert_int_equal(e.timers, 0);
    netsim_stats st;
    netsim_get_stats(ns, &st);
    assert_int_equal(st.partitioned, 2);
    assert_int_equal(st.to_down, 1);
    /* loss 1.0 loses everything */
    netsim_destroy(ns);
    cfg.loss = 1.0;
    assert_int_equal(netsim_create(&cfg, &ops, &e, &ns), 0);
    for (int i = 0; i < 10; i++) {
        assert_int_equal(netsim_send(ns, 0, 1, "x", 1), 0);
    }
    netsim_run(ns, 100000);
    netsim_get_stats(ns, &st);
    assert_int_equal(st.lost, 10);
    assert_int_equal(st.delivered, 0);
    assert_int_equal(netsim_set_loss(ns, 2.0), NETSIM_EINVAL);
    assert_int_equal(netsim_set_loss(ns, 0.0), 0);
    assert_int_equal(netsim_send(ns, 0, 1, "x", 1), 0);
    netsim_run(ns, 200000);
    netsim_get_stats(ns, &st);
    assert_int_equal(st.delivered, 1);
    /* churn at 10 leaves/s and 10 joins/s for 10 s, node 0 protected */
    assert_int_equal(netsim_set_churnable(ns, 0, false), 0);
    assert_int_equal(netsim_churn(ns, 10.0, 10.0, 100000, 10100000), 0);
    netsim_run(ns, 20000000);
    netsim_get_stats(ns, &st);
    assert_true(st.leaves > 50 && st.leaves < 150);
    assert_int_equal(e.downs, st.leaves);
    assert_int_equal(e.ups, st.joins);
    assert_true(netsim_is_up(ns, 0));
    /* bad arguments */
    assert_int_equal(netsim_send(ns, 0, 4, "x", 1), NETSIM_EINVAL);
    assert_int_equal(netsim_timer(ns, 9, 0, 0), NETSIM_EINVAL);
    assert_int_equal(netsim_churn(ns, -1.0, 0, 0, 1), NETSIM_EINVAL);
    netsim_destroy(ns);
    cfg.loss = 1.5;
    assert_int_equal(netsim_create(&cfg, &ops, &e, &ns), NETSIM_EINVAL);
}

int main(void)
{
    const struct CMUnitTest big[] = {
        cmocka_unit_test(test_every_node_joined),
        cmocka_unit_test(test_random_lookups_all_succeed),
        cmocka_unit_test(test_values_found_from_other_nodes),
        cmocka_unit_test(test_lookups_under_churn),
    };
    const struct CMUnitTest small[] = {
        cmocka_unit_test(test_netsim_model),
        cmocka_unit_test(test_partition_and_heal),
        cmocka_unit_test(test_same_seed_same_trace),
    };
    int rv = cmocka_run_group_tests_name("dht_sim_small", small, NULL, NULL);
    return rv | cmocka_run_group_tests_name("dht_sim_1000", big, setup_big, teardown_big);
}
