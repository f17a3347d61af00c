/*
 * test_gossip.c — push-pull gossip membership (gossip.h) with 50 nodes on the seeded network
 * simulator (netsim), fixed seeds, every node starting from three seed members:
 *
 *  - the membership converges: every node knows all 50 alive, nobody is suspected;
 *  - a crashed node is suspected, then declared dead, by every other node (suspicion always
 *    before death) and no live node is declared dead; restarted with its old incarnation, it
 *    takes a new one and is alive again;
 *  - a partition 30 | 20: the minority loses quorum and pauses, the majority does not; after
 *    healing everybody converges and resumes;
 *  - malformed messages are refused;
 *  - a member removed (it left) no longer counts for quorum.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "flow/consensus/gossip.h"
#include "mesh/sim/netsim.h"

#define NODES 50
#define WATCHED 7

typedef struct gsim gsim;

typedef struct obs {
    gsim *s;
    uint32_t id;
} obs;

struct gsim {
    netsim *ns;
    gossip *g[NODES];
    obs o[NODES];
    uint64_t sched[NODES];
    /* what observers saw of WATCHED, and of everybody else */
    bool suspected[NODES];
    int dead_before_suspect;
    int deaths;
    int other_suspicions; /* soft: a heartbeat late by 3 rounds; cleared by the next one */
    int other_deaths;     /* a live node declared dead: never */
};

static uint64_t now_ms(gsim *s)
{
    return netsim_now(s->ns) / 1000;
}

static void changed(void *user, uint32_t id, int old, gossip_status st)
{
    obs *o = user;
    gsim *s = o->s;
    (void)old;
    if (id == WATCHED) {
        if (st == GOSSIP_SUSPECT) {
            s->suspected[o->id] = true;
        } else if (st == GOSSIP_DEAD) {
            s->deaths++;
            s->dead_before_suspect += !s->suspected[o->id];
        } else {
            s->suspected[o->id] = false;
        }
    } else if (st == GOSSIP_SUSPECT) {
        s->other_suspicions++;
    } else if (st == GOSSIP_DEAD) {
        s->other_deaths++;
    }
}

static void flush(gsim *s, uint32_t node)
{
    gossip_outbox *ob = gossip_get_outbox(s->g[node]);
    for (size_t i = 0; i < ob->n; i++) {
        netsim_send(s->ns, node, ob->v[i].to, ob->v[i].data, ob->v[i].len);
    }
    gossip_outbox_clear(ob);
    uint64_t d = gossip_next_deadline(s->g[node]);
    if (s->sched[node] != d) {
        s->sched[node] = d;
        netsim_timer(s->ns, node, d * 1000, d);
    }
}

static void on_deliver(void *ctx, netsim *ns, uint32_t to, uint32_t from, const uint8_t *data,
                       size_t len)
{
    (void)ns;
    gsim *s = ctx;
    assert_int_equal(gossip_receive(s->g[to], now_ms(s), from, data, len), 0);
    flush(s, to);
}

static void on_timer(void *ctx, netsim *ns, uint32_t node, uint64_t tag)
{
    (void)ns;
    gsim *s = ctx;
    if (tag != s->sched[node]) {
        return; /* superseded */
    }
    gossip_tick(s->g[node], now_ms(s));
    flush(s, node);
}

static void start_node(gsim *s, uint32_t i, uint32_t incarnation)
{
    gossip_config cfg = {.id = i, .incarnation = incarnation, .seed = netsim_rand(s->ns)};
    cfg.changed = changed;
    cfg.user = &s->o[i];
    int err;
    /* first round at a random offset: nodes are not in lockstep */
    uint64_t first = now_ms(s) + netsim_rand_below(s->ns, 1000);
    s->g[i] = gossip_new(&cfg, now_ms(s), &err);
    assert_non_null(s->g[i]);
    for (uint32_t seed = 0; seed < 3; seed++) {
        if (seed != i) {
            assert_int_equal(gossip_add(s->g[i], now_ms(s), seed), 0);
        }
    }
    s->sched[i] = first;
    netsim_timer(s->ns, i, first * 1000, first);
}

static gsim *gsim_new(uint64_t seed)
{
    gsim *s = calloc(1, sizeof *s);
    assert_non_null(s);
    netsim_config cfg;
    netsim_config_default(&cfg);
    cfg.seed = seed;
    cfg.nodes = NODES;
    netsim_ops ops = {on_deliver, on_timer, NULL, NULL};
    assert_int_equal(netsim_create(&cfg, &ops, s, &s->ns), 0);
    for (uint32_t i = 0; i < NODES; i++) {
        s->o[i] = (obs){s, i};
        start_node(s, i, 0);
    }
    return s;
}

static void gsim_free(gsim *s)
{
    for (int i = 0; i < NODES; i++) {
        gossip_free(s->g[i]);
    }
    netsim_destroy(s->ns);
    free(s);
}

static void run_s(gsim *s, uint64_t seconds)
{
    netsim_run(s->ns, netsim_now(s->ns) + seconds * 1000000ull);
}

static void assert_all_alive(gsim *s)
{
    for (uint32_t i = 0; i < NODES; i++) {
        size_t alive, suspect, dead;
        gossip_counts(s->g[i], &alive, &suspect, &dead);
        assert_int_equal(alive, NODES);
        assert_false(gossip_paused(s->g[i]));
    }
}

static void test_convergence(void **state)
{
    (void)state;
    gsim *s = gsim_new(3);
    run_s(s, 20);
    assert_all_alive(s);
    assert_int_equal(s->other_suspicions, 0);
    assert_int_equal(s->other_deaths, 0);
    assert_int_equal(s->deaths, 0);
    gsim_free(s);
}

static void test_crash_suspect_dead_restart(void **state)
{
    (void)state;
    gsim *s = gsim_new(5);
    run_s(s, 20);
    assert_all_alive(s);
    netsim_set_up(s->ns, WATCHED, false);
    run_s(s, 4); /* past suspect_ms (3 s), before dead_ms (6 s) */
    int suspecting = 0;
    for (uint32_t i = 0; i < NODES; i++) {
        if (i != WATCHED) {
            assert_int_not_equal(gossip_member_status(s->g[i], WATCHED), GOSSIP_DEAD);
            suspecting += gossip_member_status(s->g[i], WATCHED) == GOSSIP_SUSPECT;
        }
    }
    assert_true(suspecting > 0);
    run_s(s, 6);
    for (uint32_t i = 0; i < NODES; i++) {
        if (i != WATCHED) {
            assert_int_equal(gossip_member_status(s->g[i], WATCHED), GOSSIP_DEAD);
            size_t alive, dead;
            gossip_counts(s->g[i], &alive, NULL, &dead);
            assert_int_equal(alive, NODES - 1);
            assert_int_equal(dead, 1);
            assert_false(gossip_paused(s->g[i]));
        }
    }
    assert_int_equal(s->deaths, NODES - 1);
    assert_int_equal(s->dead_before_suspect, 0);
    assert_int_equal(s->other_deaths, 0);
    /* restart with the same (forgotten) incarnation: it learns its past and supersedes it */
    gossip_free(s->g[WATCHED]);
    netsim_set_up(s->ns, WATCHED, true);
    start_node(s, WATCHED, 0);
    run_s(s, 10);
    assert_true(gossip_incarnation(s->g[WATCHED]) >= 1);
    assert_all_alive(s);
    gsim_free(s);
}

static void test_partition_minority_pauses(void **state)
{
    (void)state;
    gsim *s = gsim_new(9);
    run_s(s, 20);
    assert_all_alive(s);
    for (uint32_t i = 30; i < NODES; i++) {
        netsim_set_group(s->ns, i, 1);
    }
    run_s(s, 8);
    for (uint32_t i = 0; i < NODES; i++) {
        if (i < 30) {
            assert_true(gossip_has_quorum(s->g[i]));
            assert_false(gossip_paused(s->g[i]));
        } else {
            assert_false(gossip_has_quorum(s->g[i]));
            assert_true(gossip_paused(s->g[i]));
        }
    }
    netsim_heal(s->ns);
    run_s(s, 15);
    assert_all_alive(s);
    gsim_free(s);
}

static void test_bad_messages(void **state)
{
    (void)state;
    gossip_config cfg = {.id = 1};
    gossip *g = gossip_new(&cfg, 0, NULL);
    assert_non_null(g);
    uint8_t m[12 + 17] = {'G', 'S', 1, 1, 0, 0, 0, 2, 0, 0, 0, 1};
    m[12 + 3] = 5;                                             /* id 5 */
    assert_int_equal(gossip_receive(g, 0, 2, m, sizeof m), 0); /* ok */
    assert_int_equal(gossip_member_status(g, 5), GOSSIP_ALIVE);
    assert_int_equal(gossip_receive(g, 0, 3, m, sizeof m), GOSSIP_EBADMSG); /* sender != peer */
    assert_int_equal(gossip_receive(g, 0, 2, m, sizeof m - 1), GOSSIP_EBADMSG);
    m[11] = 200; /* count does not match the length */
    assert_int_equal(gossip_receive(g, 0, 2, m, sizeof m), GOSSIP_EBADMSG);
    m[11] = 1;
    m[12 + 16] = 7; /* unknown status */
    assert_int_equal(gossip_receive(g, 0, 2, m, sizeof m), GOSSIP_EBADMSG);
    assert_int_equal(gossip_receive(g, 0, 2, NULL, 0), GOSSIP_EBADMSG);
    cfg.suspect_ms = 5000;
    cfg.dead_ms = 4000;
    assert_null(gossip_new(&cfg, 0, NULL));
    gossip_free(g);
}

/* A member that left is forgotten: quorum is counted without it (three members, two of them
 * dead, then the two removed: quorum again); self cannot be removed. */
static void test_remove(void **state)
{
    (void)state;
    gossip_config cfg = {.id = 1};
    gossip *g = gossip_new(&cfg, 0, NULL);
    assert_non_null(g);
    assert_int_equal(gossip_add(g, 0, 2), 0);
    assert_int_equal(gossip_add(g, 0, 3), 0);
    for (uint64_t t = 0; t <= 7000; t += 1000) {
        gossip_tick(g, t);
    }
    assert_int_equal(gossip_member_status(g, 2), GOSSIP_DEAD);
    assert_true(gossip_paused(g));
    assert_int_equal(gossip_remove(g, 2), 0);
    assert_int_equal(gossip_member_status(g, 2), -1);
    assert_int_equal(gossip_member_status(g, 3), GOSSIP_DEAD);
    assert_true(gossip_paused(g)); /* 1 alive of 2 */
    assert_int_equal(gossip_remove(g, 3), 0);
    assert_false(gossip_paused(g));
    assert_int_equal(gossip_remove(g, 1), GOSSIP_EINVAL);
    assert_int_equal(gossip_remove(g, 9), GOSSIP_EINVAL);
    gossip_free(g);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_convergence),
        cmocka_unit_test(test_crash_suspect_dead_restart),
        cmocka_unit_test(test_partition_minority_pauses),
        cmocka_unit_test(test_bad_messages),
        cmocka_unit_test(test_remove),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
