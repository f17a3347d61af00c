/*
 * test_election.c — swarm coordinator election with fencing tokens (election.h) on the flow
 * state replicated by libraft (its deterministic in-memory fixture, 3 servers).
 *
 * Two would-be coordinators, A and B, send their commands through the replicated log:
 *  - A claims the swarm (token 1), adds an agent and starts a task under its lease;
 *  - B takes over (token 2) while A still believes it coordinates: every command A sends
 *    afterwards (its token 1) is refused on every replica, and so is A's late claim of
 *    token 2; B's commands under token 2 apply; the task is completed once, by B;
 *  - both claim at once with the same next token: exactly one wins;
 *  - snapshots carry the lease; swarm_lease decodes strictly; rendezvous choice is stable.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <raft.h>
#include <raft/fixture.h>

#include "flow/consensus/election.h"
#include "flow/consensus/fsm.h"

#define N 3
#define MAX_MS 10000
#define MAXC 64

typedef struct cluster cluster;

typedef struct replica {
    cluster *c;
    unsigned i;
} replica;

struct cluster {
    struct raft_fixture f;
    flow_fsm *fsm[N];
    replica rep[N];
    int rc[N][MAXC]; /* outcome of the entry with cookie k on replica i (1 = not applied) */
    uint64_t cookie;
};

static void applied(void *user, uint64_t index, const json_t *entry, int rc)
{
    (void)index;
    replica *r = user;
    json_int_t k = json_integer_value(json_object_get(entry, "c"));
    if (k > 0 && k < MAXC) {
        r->c->rc[r->i][k] = rc;
    }
}

static int setup(void **state)
{
    cluster *c = calloc(1, sizeof *c);
    assert_non_null(c);
    for (unsigned i = 0; i < N; i++) {
        for (int k = 0; k < MAXC; k++) {
            c->rc[i][k] = 1;
        }
    }
    assert_int_equal(raft_fixture_initialize(&c->f), 0);
    for (unsigned i = 0; i < N; i++) {
        c->rep[i] = (replica){c, i};
        flow_fsm_hooks hooks = {.user = &c->rep[i], .applied = applied};
        c->fsm[i] = flow_fsm_new(&hooks);
        assert_non_null(c->fsm[i]);
        assert_int_equal(raft_fixture_grow(&c->f, flow_fsm_raft(c->fsm[i])), 0);
    }
    struct raft_configuration conf;
    assert_int_equal(raft_fixture_configuration(&c->f, N, &conf), 0);
    assert_int_equal(raft_fixture_bootstrap(&c->f, &conf), 0);
    raft_configuration_close(&conf);
    assert_int_equal(raft_fixture_start(&c->f), 0);
    assert_true(raft_fixture_step_until_has_leader(&c->f, MAX_MS));
    *state = c;
    return 0;
}

static int teardown(void **state)
{
    cluster *c = *state;
    raft_fixture_close(&c->f);
    for (unsigned i = 0; i < N; i++) {
        flow_fsm_free(c->fsm[i]);
    }
    free(c);
    return 0;
}

static void apply_cb(struct raft_apply *a, int status, void *result)
{
    (void)status;
    (void)result;
    free(a);
}

/* Proposes cmd (cleared) on the leader; returns its cookie. */
static uint64_t propose(cluster *c, flow_cmd *cmd)
{
    json_t *j = flow_cmd_to_json(cmd);
    flow_cmd_clear(cmd);
    uint64_t k = ++c->cookie;
    assert_true(k < MAXC);
    struct raft_buffer buf;
    assert_int_equal(flow_entry_cmd(j, 1, k, &buf), 0);
    json_decref(j);
    struct raft_apply *a = calloc(1, sizeof *a);
    assert_non_null(a);
    unsigned l = raft_fixture_leader_index(&c->f);
    assert_int_equal(raft_apply(raft_fixture_get(&c->f, l), a, &buf, 1, apply_cb), 0);
    return k;
}

/* Waits until every replica applied everything proposed; returns the outcome of cookie k
 * (the same on every replica). */
static int settle(cluster *c, uint64_t k)
{
    unsigned l = raft_fixture_leader_index(&c->f);
    raft_index last = raft_last_index(raft_fixture_get(&c->f, l));
    for (unsigned i = 0; i < N; i++) {
        assert_true(raft_fixture_step_until_applied(&c->f, i, last, MAX_MS));
    }
    for (unsigned i = 1; i < N; i++) {
        assert_int_equal(c->rc[i][k], c->rc[0][k]);
    }
    return c->rc[0][k];
}

static const flow_state *state_of(cluster *c)
{
    return flow_fsm_state(c->fsm[raft_fixture_leader_index(&c->f)]);
}

/* A would-be coordinator: its name and the token it believes it holds. */
typedef struct coord {
    const char *node;
    uint64_t token;
} coord;

static uint64_t claim(cluster *c, coord *co, uint64_t now)
{
    flow_cmd cmd;
    assert_int_equal(election_claim(state_of(c), "s1", co->node, now, &cmd), 0);
    co->token = cmd.token;
    return propose(c, &cmd);
}

static uint64_t task_cmd(cluster *c, const coord *co, flow_cmd_type type, const char *task,
                         const char *agent, uint64_t now)
{
    flow_cmd cmd;
    flow_cmd_init(&cmd, type, now);
    snprintf(cmd.task, sizeof cmd.task, "%s", task);
    snprintf(cmd.agent, sizeof cmd.agent, "%s", agent);
    if (type == FLOW_CMD_TASK_COMPLETE) {
        cmd.result = json_pack("{s:s}", "by", co->node);
    }
    election_fence(&cmd, co->token);
    return propose(c, &cmd);
}

static void assert_same_snapshots(cluster *c)
{
    char *ref = flow_fsm_snapshot_text(c->fsm[0]);
    assert_non_null(ref);
    for (unsigned i = 1; i < N; i++) {
        char *s = flow_fsm_snapshot_text(c->fsm[i]);
        assert_string_equal(ref, s);
        free(s);
    }
    free(ref);
}

static void two_coordinators_fenced(void **state)
{
    cluster *c = *state;
    flow_cmd cmd;
    flow_cmd_init(&cmd, FLOW_CMD_SWARM_CREATE, 1);
    snprintf(cmd.swarm, sizeof cmd.swarm, "s1");
    cmd.config.pool_min[0] = cmd.config.pool_min[1] = cmd.config.pool_min[2] = 0;
    assert_int_equal(settle(c, propose(c, &cmd)), 0);

    coord a = {"node-a", 0}, b = {"node-b", 0};
    assert_int_equal(settle(c, claim(c, &a, 2)), 0);
    assert_int_equal(a.token, 1);
    assert_true(election_holds(state_of(c), "s1", "node-a", NULL));

    /* A coordinates: adds an agent, a task arrives (API, unfenced), A starts it */
    flow_cmd_init(&cmd, FLOW_CMD_AGENT_ADD, 3);
    snprintf(cmd.swarm, sizeof cmd.swarm, "s1");
    snprintf(cmd.agent, sizeof cmd.agent, "w1");
    cmd.role = FLOW_ROLE_WORKER;
    cmd.capacity = 2;
    election_fence(&cmd, a.token);
    assert_int_equal(settle(c, propose(c, &cmd)), 0);
    for (int t = 1; t <= 2; t++) {
        flow_cmd_init(&cmd, FLOW_CMD_TASK_SUBMIT, 4);
        snprintf(cmd.swarm, sizeof cmd.swarm, "s1");
        snprintf(cmd.task, sizeof cmd.task, "t%d", t);
        assert_int_equal(settle(c, propose(c, &cmd)), 0);
    }
    assert_string_equal(flow_task_get_agent(flow_state_task(state_of(c), "t1")), "w1");
    assert_int_equal(settle(c, task_cmd(c, &a, FLOW_CMD_TASK_START, "t1", "w1", 5)), 0);

    /* B believes A is gone and takes over; A does not know yet */
    assert_int_equal(settle(c, claim(c, &b, 6)), 0);
    assert_int_equal(b.token, 2);
    assert_false(election_holds(state_of(c), "s1", "node-a", NULL));

    /* everything A still sends is fenced off, on every replica */
    uint64_t k1 = task_cmd(c, &a, FLOW_CMD_TASK_COMPLETE, "t1", "w1", 7);
    uint64_t k2 = task_cmd(c, &a, FLOW_CMD_TASK_START, "t2", "w1", 7);
    flow_cmd_init(&cmd, FLOW_CMD_AGENT_ADD, 7);
    snprintf(cmd.swarm, sizeof cmd.swarm, "s1");
    snprintf(cmd.agent, sizeof cmd.agent, "w2");
    cmd.role = FLOW_ROLE_WORKER;
    election_fence(&cmd, a.token);
    uint64_t k3 = propose(c, &cmd);
    flow_cmd_init(&cmd, FLOW_CMD_SWARM_LEASE, 7); /* A's late claim of the token B has */
    snprintf(cmd.swarm, sizeof cmd.swarm, "s1");
    snprintf(cmd.node, sizeof cmd.node, "node-a");
    cmd.token = 2;
    uint64_t k4 = propose(c, &cmd);
    assert_int_equal(settle(c, k1), FLOW_ESTATE);
    assert_int_equal(settle(c, k2), FLOW_ESTATE);
    assert_int_equal(settle(c, k3), FLOW_ESTATE);
    assert_int_equal(settle(c, k4), FLOW_ESTATE);
    const flow_state *s = state_of(c);
    assert_int_equal(flow_task_get_state(flow_state_task(s, "t1")), FLOW_TASK_RUNNING);
    assert_int_equal(flow_task_get_state(flow_state_task(s, "t2")), FLOW_TASK_ASSIGNED);
    assert_null(flow_state_agent(s, "w2"));

    /* B's commands apply: it completes t1 and starts t2 */
    assert_int_equal(settle(c, task_cmd(c, &b, FLOW_CMD_TASK_COMPLETE, "t1", "w1", 8)), 0);
    assert_int_equal(settle(c, task_cmd(c, &b, FLOW_CMD_TASK_START, "t2", "w1", 8)), 0);
    s = state_of(c);
    assert_int_equal(flow_task_get_state(flow_state_task(s, "t1")), FLOW_TASK_COMPLETED);
    assert_int_equal(flow_task_get_state(flow_state_task(s, "t2")), FLOW_TASK_RUNNING);
    uint64_t token;
    assert_string_equal(flow_state_swarm_lease(s, "s1", &token), "node-b");
    assert_int_equal(token, 2);
    assert_same_snapshots(c);

    /* both claim at once from the same state (token 3 each): the first committed wins */
    flow_cmd ca, cb;
    assert_int_equal(election_claim(state_of(c), "s1", "node-a", 9, &ca), 0);
    assert_int_equal(election_claim(state_of(c), "s1", "node-b", 9, &cb), 0);
    assert_int_equal(ca.token, cb.token);
    uint64_t ka = propose(c, &ca), kb = propose(c, &cb);
    assert_int_equal(settle(c, ka), 0);
    assert_int_equal(settle(c, kb), FLOW_ESTATE);
    assert_true(election_holds(state_of(c), "s1", "node-a", &token));
    assert_int_equal(token, 3);
    assert_same_snapshots(c);

    /* the lease survives a snapshot round trip */
    char *snap = flow_fsm_snapshot_text(c->fsm[0]);
    flow_fsm *copy = flow_fsm_new(NULL);
    assert_int_equal(flow_fsm_restore_text(copy, snap, strlen(snap)), 0);
    assert_true(election_holds(flow_fsm_state(copy), "s1", "node-a", &token));
    assert_int_equal(token, 3);
    char *snap2 = flow_fsm_snapshot_text(copy);
    assert_string_equal(snap, snap2);
    free(snap);
    free(snap2);
    flow_fsm_free(copy);
}

static void lease_decoding(void **state)
{
    (void)state;
    flow_cmd c;
    char err[128];
    json_t *j = json_pack("{s:s, s:i, s:s, s:s, s:i}", "cmd", "swarm_lease", "now", 1, "swarm",
                          "s1", "node", "n1", "token", 4);
    assert_int_equal(flow_cmd_from_json(&c, j, err, sizeof err), 0);
    assert_int_equal(c.type, FLOW_CMD_SWARM_LEASE);
    assert_string_equal(c.node, "n1");
    assert_int_equal(c.token, 4);
    json_t *back = flow_cmd_to_json(&c);
    assert_true(json_equal(back, j));
    json_decref(back);
    flow_cmd_clear(&c);
    json_object_set_new(j, "token", json_integer(0));
    assert_int_equal(flow_cmd_from_json(&c, j, err, sizeof err), FLOW_EINVAL);
    json_object_set_new(j, "token", json_integer(-3));
    assert_int_equal(flow_cmd_from_json(&c, j, err, sizeof err), FLOW_EINVAL);
    json_object_set_new(j, "token", json_integer(4));
    json_object_del(j, "node");
    assert_int_equal(flow_cmd_from_json(&c, j, err, sizeof err), FLOW_EINVAL);
    json_decref(j);
    /* a lease on an unknown swarm */
    flow_state *s = flow_state_new();
    flow_cmd_init(&c, FLOW_CMD_SWARM_LEASE, 1);
    snprintf(c.swarm, sizeof c.swarm, "nope");
    snprintf(c.node, sizeof c.node, "n1");
    c.token = 1;
    assert_int_equal(flow_state_apply(s, &c, NULL, NULL, 0), FLOW_ENOTFOUND);
    assert_int_equal(election_claim(s, "nope", "n1", 1, &c), FLOW_ENOTFOUND);
    assert_int_equal(election_claim(s, "nope", "bad id!", 1, &c), FLOW_EINVAL);
    flow_state_free(s);
}

static void rendezvous(void **state)
{
    (void)state;
    const char *nodes[] = {"n1", "n2", "n3", "n4", "n5"};
    char swarm[16];
    int moved = 0, hits[5] = {0};
    for (int i = 0; i < 200; i++) {
        snprintf(swarm, sizeof swarm, "swarm-%d", i);
        int p = election_preferred(swarm, nodes, 5);
        assert_true(p >= 0 && p < 5);
        hits[p]++;
        assert_int_equal(election_preferred(swarm, nodes, 5), p); /* stable */
        /* without n3, only the swarms n3 preferred move */
        const char *without[] = {"n1", "n2", "n4", "n5"};
        int q = election_preferred(swarm, without, 4);
        if (p == 2) {
            moved++;
        } else {
            assert_string_equal(without[q], nodes[p]);
        }
    }
    assert_int_equal(moved, hits[2]);
    for (int k = 0; k < 5; k++) {
        assert_true(hits[k] > 0); /* every node coordinates some swarms */
    }
    assert_int_equal(election_preferred("s", NULL, 0), -1);
    /* should_claim: only the preferred alive node that does not hold the lease */
    flow_state *s = flow_state_new();
    flow_cmd c;
    flow_cmd_init(&c, FLOW_CMD_SWARM_CREATE, 1);
    snprintf(c.swarm, sizeof c.swarm, "s1");
    assert_int_equal(flow_state_apply(s, &c, NULL, NULL, 0), 0);
    flow_cmd_clear(&c);
    int p = election_preferred("s1", nodes, 5);
    for (int k = 0; k < 5; k++) {
        assert_int_equal(election_should_claim(s, "s1", nodes[k], nodes, 5), k == p);
    }
    assert_int_equal(election_claim(s, "s1", nodes[p], 2, &c), 0);
    assert_int_equal(flow_state_apply(s, &c, NULL, NULL, 0), 0);
    assert_false(election_should_claim(s, "s1", nodes[p], nodes, 5));
    flow_state_free(s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(two_coordinators_fenced, setup, teardown),
        cmocka_unit_test(lease_decoding),
        cmocka_unit_test(rendezvous),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
