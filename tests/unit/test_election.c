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
 *
 * The node's wiring (registry.c: the Raft leader coordinates every swarm), driven the way the
 * registry drives it (election_claims on its take-over, election_stamp on every command it
 * issues for a swarm):
 *  - after a leader change every swarm's lease is claimed by the new leader with a higher
 *    token, and commands stamped by the old one that commit after that are refused on every
 *    replica (the old leader's included, once it is back);
 *  - an old leader's entry that the new leader commits (it was in the new leader's log) is
 *    ordered before the new claims, so it is applied under the old lease, and the next command
 *    of the old coordinator is refused;
 *  - with gossip (coordinators spread by rendezvous over the live members, followers' claims
 *    forwarded to the leader): 12 swarms are spread over the 3 nodes, each held by its
 *    preferred node; a coordinator's death moves only its swarms (higher tokens), its late
 *    command is refused; back alive, it claims exactly its swarms back.
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

/* Proposes cmd (cleared) on replica i (which must lead) without waiting; returns its cookie. */
static uint64_t propose_on(cluster *c, unsigned i, flow_cmd *cmd)
{
    json_t *j = flow_cmd_to_json(cmd);
    flow_cmd_clear(cmd);
    uint64_t k = ++c->cookie;
    assert_true(k < MAXC);
    struct raft_buffer buf;
    assert_int_equal(flow_entry_cmd(j, i + 1, k, &buf), 0);
    json_decref(j);
    struct raft_apply *a = calloc(1, sizeof *a);
    assert_non_null(a);
    assert_int_equal(raft_apply(raft_fixture_get(&c->f, i), a, &buf, 1, apply_cb), 0);
    return k;
}

/* settle() over the replicas in `alive` (a bit mask). */
static int settle_alive(cluster *c, uint64_t k, unsigned alive)
{
    unsigned l = raft_fixture_leader_index(&c->f);
    raft_index last = raft_last_index(raft_fixture_get(&c->f, l));
    int rc = 2;
    for (unsigned i = 0; i < N; i++) {
        if (alive & (1u << i)) {
            assert_true(raft_fixture_step_until_applied(&c->f, i, last, MAX_MS));
            if (rc == 2) {
                rc = c->rc[i][k];
            }
            assert_int_equal(c->rc[i][k], rc);
        }
    }
    return rc;
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

/* A node of the cluster as the registry runs it: its lease name is its Raft id. */
static void node_name(unsigned i, char out[FLOW_ID_MAX])
{
    election_node_name(i + 1, out);
}

/* The registry's take-over: the leader i claims anew every swarm (it is the only candidate);
 * returns the number of claims proposed. */
static size_t take_over(cluster *c, unsigned i, uint64_t now)
{
    char me[FLOW_ID_MAX];
    node_name(i, me);
    const char *alive[] = {me};
    json_t *claims = election_claims(flow_fsm_state(c->fsm[i]), me, alive, 1, true, now);
    size_t n = json_array_size(claims);
    for (size_t k = 0; k < n; k++) {
        flow_cmd cmd;
        char err[128];
        assert_int_equal(flow_cmd_from_json(&cmd, json_array_get(claims, k), err, sizeof err), 0);
        (void)propose_on(c, i, &cmd);
    }
    json_decref(claims);
    return n;
}

/* A command node i issues as a coordinator: stamped from its own replica's view. */
static int stamped(cluster *c, unsigned i, flow_cmd *cmd)
{
    char me[FLOW_ID_MAX];
    node_name(i, me);
    json_t *j = flow_cmd_to_json(cmd);
    int rc = election_stamp(flow_fsm_state(c->fsm[i]), j, me);
    if (rc == 0) {
        flow_cmd_clear(cmd);
        char err[128];
        assert_int_equal(flow_cmd_from_json(cmd, j, err, sizeof err), 0);
    }
    json_decref(j);
    return rc;
}

static void make_swarms(cluster *c, int n)
{
    for (int k = 1; k <= n; k++) {
        flow_cmd cmd;
        flow_cmd_init(&cmd, FLOW_CMD_SWARM_CREATE, 1);
        snprintf(cmd.swarm, sizeof cmd.swarm, "s%d", k);
        cmd.config.pool_min[0] = cmd.config.pool_min[1] = cmd.config.pool_min[2] = 0;
        assert_int_equal(settle(c, propose(c, &cmd)), 0);
    }
}

static void assert_leases(cluster *c, unsigned on, int swarms, unsigned holder, uint64_t token)
{
    char who[FLOW_ID_MAX], sw[16];
    node_name(holder, who);
    for (int k = 1; k <= swarms; k++) {
        snprintf(sw, sizeof sw, "s%d", k);
        uint64_t t = 0;
        assert_true(election_holds(flow_fsm_state(c->fsm[on]), sw, who, &t));
        assert_int_equal(t, token);
    }
}

static void leader_change_moves_leases(void **state)
{
    cluster *c = *state;
    const int swarms = 4;
    make_swarms(c, swarms);
    unsigned l1 = raft_fixture_leader_index(&c->f);
    assert_int_equal(take_over(c, l1, 2), swarms);
    settle(c, c->cookie);
    for (unsigned i = 0; i < N; i++) {
        assert_leases(c, i, swarms, l1, 1);
    }
    /* a renewed take-over of the same leader claims nothing it holds unless asked to */
    char me[FLOW_ID_MAX];
    node_name(l1, me);
    const char *alive[] = {me};
    json_t *none = election_claims(flow_fsm_state(c->fsm[l1]), me, alive, 1, false, 3);
    assert_int_equal(json_array_size(none), 0);
    json_decref(none);

    /* l1 coordinates: its agent joins s1, a task (API, unfenced) is assigned, l1 starts it */
    flow_cmd cmd;
    flow_cmd_init(&cmd, FLOW_CMD_AGENT_ADD, 3);
    snprintf(cmd.swarm, sizeof cmd.swarm, "s1");
    snprintf(cmd.agent, sizeof cmd.agent, "w1");
    cmd.role = FLOW_ROLE_WORKER;
    assert_int_equal(stamped(c, l1, &cmd), 0);
    assert_int_equal(cmd.token, 1);
    assert_int_equal(settle(c, propose(c, &cmd)), 0);
    flow_cmd_init(&cmd, FLOW_CMD_TASK_SUBMIT, 4);
    snprintf(cmd.swarm, sizeof cmd.swarm, "s1");
    snprintf(cmd.task, sizeof cmd.task, "t1");
    assert_int_equal(settle(c, propose(c, &cmd)), 0);
    flow_cmd_init(&cmd, FLOW_CMD_TASK_START, 5);
    snprintf(cmd.task, sizeof cmd.task, "t1");
    snprintf(cmd.agent, sizeof cmd.agent, "w1");
    assert_int_equal(stamped(c, l1, &cmd), 0);
    assert_int_equal(settle(c, propose(c, &cmd)), 0);
    /* its agent's report is issued (stamped with token 1) but reaches the log only late */
    flow_cmd late;
    flow_cmd_init(&late, FLOW_CMD_TASK_COMPLETE, 6);
    snprintf(late.task, sizeof late.task, "t1");
    snprintf(late.agent, sizeof late.agent, "w1");
    late.result = json_pack("{s:s}", "by", "old");
    assert_int_equal(stamped(c, l1, &late), 0);

    /* the leader dies; the new leader takes every swarm over with token 2 */
    raft_fixture_kill(&c->f, l1);
    assert_true(raft_fixture_step_until_has_no_leader(&c->f, MAX_MS));
    assert_true(raft_fixture_step_until_has_leader(&c->f, MAX_MS));
    unsigned l2 = raft_fixture_leader_index(&c->f);
    assert_int_not_equal(l2, l1);
    unsigned alive_mask = ((1u << N) - 1) & ~(1u << l1);
    assert_int_equal(take_over(c, l2, 7), swarms);
    settle_alive(c, c->cookie, alive_mask);
    for (unsigned i = 0; i < N; i++) {
        if (i != l1) {
            assert_leases(c, i, swarms, l2, 2);
        }
    }
    /* the old coordinator's view is stale: it still believes it holds token 1 */
    assert_true(election_holds(flow_fsm_state(c->fsm[l1]), "s1", me, NULL));

    /* its late report commits now: refused on every replica */
    uint64_t kl = propose_on(c, l2, &late);
    assert_int_equal(settle_alive(c, kl, alive_mask), FLOW_ESTATE);
    const flow_state *s = flow_fsm_state(c->fsm[l2]);
    assert_int_equal(flow_task_get_state(flow_state_task(s, "t1")), FLOW_TASK_RUNNING);

    /* the new coordinator removes the agent it does not run (t1 requeued) under token 2 */
    flow_cmd_init(&cmd, FLOW_CMD_AGENT_REMOVE, 8);
    snprintf(cmd.agent, sizeof cmd.agent, "w1");
    assert_int_equal(stamped(c, l2, &cmd), 0);
    assert_int_equal(cmd.token, 2);
    assert_int_equal(settle_alive(c, propose_on(c, l2, &cmd), alive_mask), 0);
    flow_cmd_init(&cmd, FLOW_CMD_AGENT_ADD, 9);
    snprintf(cmd.swarm, sizeof cmd.swarm, "s1");
    snprintf(cmd.agent, sizeof cmd.agent, "w2");
    cmd.role = FLOW_ROLE_WORKER;
    assert_int_equal(stamped(c, l2, &cmd), 0);
    assert_int_equal(settle_alive(c, propose_on(c, l2, &cmd), alive_mask), 0);
    s = flow_fsm_state(c->fsm[l2]);
    assert_string_equal(flow_task_get_agent(flow_state_task(s, "t1")), "w2");

    /* the old leader comes back: it catches up, the late report is refused there too, and it
     * knows it no longer holds the lease (a command it would issue is not even proposed) */
    raft_fixture_revive(&c->f, l1);
    settle(c, kl);
    assert_int_equal(c->rc[l1][kl], FLOW_ESTATE);
    assert_leases(c, l1, swarms, l2, 2);
    flow_cmd_init(&cmd, FLOW_CMD_TASK_START, 10);
    snprintf(cmd.task, sizeof cmd.task, "t1");
    snprintf(cmd.agent, sizeof cmd.agent, "w2");
    assert_int_equal(stamped(c, l1, &cmd), FLOW_ESTATE);
    flow_cmd_clear(&cmd);
    /* the new coordinator's agent completes t1: once */
    flow_cmd_init(&cmd, FLOW_CMD_TASK_START, 10);
    snprintf(cmd.task, sizeof cmd.task, "t1");
    snprintf(cmd.agent, sizeof cmd.agent, "w2");
    assert_int_equal(stamped(c, l2, &cmd), 0);
    assert_int_equal(settle(c, propose(c, &cmd)), 0);
    flow_cmd_init(&cmd, FLOW_CMD_TASK_COMPLETE, 11);
    snprintf(cmd.task, sizeof cmd.task, "t1");
    snprintf(cmd.agent, sizeof cmd.agent, "w2");
    cmd.result = json_pack("{s:s}", "by", "new");
    assert_int_equal(stamped(c, l2, &cmd), 0);
    assert_int_equal(settle(c, propose(c, &cmd)), 0);
    s = flow_fsm_state(c->fsm[l2]);
    assert_int_equal(flow_task_get_state(flow_state_task(s, "t1")), FLOW_TASK_COMPLETED);
    assert_same_snapshots(c);
}

/* An entry of the old leader that only a follower has: the new leader (that follower) commits
 * it with its first barrier, before it claims anything, so the entry applies under the old
 * lease; the take-over then fences the old coordinator off. */
static void old_entry_before_new_claims(void **state)
{
    cluster *c = *state;
    make_swarms(c, 1);
    unsigned l1 = raft_fixture_leader_index(&c->f);
    (void)take_over(c, l1, 2);
    settle(c, c->cookie);
    unsigned f1 = (l1 + 1) % N, f2 = (l1 + 2) % N;
    /* l1's next entry reaches f1 only, and nobody's acknowledgement reaches l1 */
    raft_fixture_saturate(&c->f, l1, f2);
    raft_fixture_saturate(&c->f, f1, l1);
    raft_fixture_saturate(&c->f, f2, l1);
    flow_cmd cmd;
    flow_cmd_init(&cmd, FLOW_CMD_AGENT_ADD, 3);
    snprintf(cmd.swarm, sizeof cmd.swarm, "s1");
    snprintf(cmd.agent, sizeof cmd.agent, "w1");
    cmd.role = FLOW_ROLE_WORKER;
    assert_int_equal(stamped(c, l1, &cmd), 0);
    uint64_t k = propose_on(c, l1, &cmd);
    raft_index idx = raft_last_index(raft_fixture_get(&c->f, l1));
    for (int step = 0; step < 200 && raft_last_index(raft_fixture_get(&c->f, f1)) < idx; step++) {
        raft_fixture_step(&c->f);
    }
    assert_int_equal(raft_last_index(raft_fixture_get(&c->f, f1)), idx);
    assert_int_equal(c->rc[f1][k], 1); /* not applied: not committed */
    raft_fixture_kill(&c->f, l1);
    raft_fixture_desaturate(&c->f, l1, f2);
    raft_fixture_desaturate(&c->f, f1, l1);
    raft_fixture_desaturate(&c->f, f2, l1);
    assert_true(raft_fixture_step_until_has_no_leader(&c->f, MAX_MS));
    assert_true(raft_fixture_step_until_has_leader(&c->f, MAX_MS));
    assert_int_equal(raft_fixture_leader_index(&c->f), f1); /* the only one with the entry */
    unsigned alive_mask = (1u << f1) | (1u << f2);
    /* the new leader's registry takes over once its barrier is applied: the entry is in */
    assert_true(raft_fixture_step_until_applied(&c->f, f1, idx, MAX_MS));
    assert_int_equal(c->rc[f1][k], 0);
    assert_non_null(flow_state_agent(flow_fsm_state(c->fsm[f1]), "w1"));
    assert_int_equal(take_over(c, f1, 4), 1);
    settle_alive(c, c->cookie, alive_mask);
    assert_int_equal(c->rc[f2][k], 0);
    assert_leases(c, f2, 1, f1, 2);
    /* from here on, whatever the old coordinator issued under token 1 is refused */
    flow_cmd_init(&cmd, FLOW_CMD_AGENT_DRAIN, 5);
    snprintf(cmd.agent, sizeof cmd.agent, "w1");
    assert_int_equal(stamped(c, l1, &cmd), 0);
    assert_int_equal(cmd.token, 1);
    assert_int_equal(settle_alive(c, propose_on(c, f1, &cmd), alive_mask), FLOW_ESTATE);
}

/* Every node claims what it is preferred for among `alive` (a bit mask of nodes), as its
 * registry does on a membership change; proposed through the leader (forwarding). Returns how
 * many claims node i made in claims[i]. */
static void spread_claims(cluster *c, unsigned alive, size_t claims[N])
{
    char names[N][FLOW_ID_MAX];
    const char *live[N];
    size_t n = 0;
    for (unsigned i = 0; i < N; i++) {
        node_name(i, names[i]);
        if (alive & (1u << i)) {
            live[n++] = names[i];
        }
    }
    unsigned l = raft_fixture_leader_index(&c->f);
    for (unsigned i = 0; i < N; i++) {
        claims[i] = 0;
        if (!(alive & (1u << i))) {
            continue;
        }
        json_t *js = election_claims(flow_fsm_state(c->fsm[i]), names[i], live, n, false, 5);
        claims[i] = json_array_size(js);
        for (size_t k = 0; k < claims[i]; k++) {
            flow_cmd cmd;
            char err[128];
            assert_int_equal(flow_cmd_from_json(&cmd, json_array_get(js, k), err, sizeof err), 0);
            (void)propose_on(c, l, &cmd);
        }
        json_decref(js);
    }
    settle_alive(c, c->cookie, alive);
}

static void spread_and_failover(void **state)
{
    cluster *c = *state;
    enum { SW = 12 };
    make_swarms(c, SW);
    char names[N][FLOW_ID_MAX];
    const char *all[N];
    for (unsigned i = 0; i < N; i++) {
        node_name(i, names[i]);
        all[i] = names[i];
    }
    size_t claims[N];
    spread_claims(c, (1u << N) - 1, claims);
    int holder[SW + 1];
    size_t held[N] = {0};
    char sw[16];
    for (int k = 1; k <= SW; k++) {
        snprintf(sw, sizeof sw, "s%d", k);
        holder[k] = election_preferred(sw, all, N);
        held[holder[k]]++;
        for (unsigned i = 0; i < N; i++) {
            uint64_t t = 0;
            assert_true(election_holds(flow_fsm_state(c->fsm[i]), sw, names[holder[k]], &t));
            assert_int_equal(t, 1);
        }
    }
    for (unsigned i = 0; i < N; i++) {
        assert_true(held[i] > 0); /* spread: every node coordinates some swarms */
        assert_int_equal(claims[i], held[i]);
    }

    /* a follower coordinator dies (the leader stays, so no election is involved) */
    unsigned l = raft_fixture_leader_index(&c->f);
    unsigned x = (l + 1) % N;
    int xs = 0; /* one of x's swarms */
    for (int k = SW; k >= 1; k--) {
        xs = holder[k] == (int)x ? k : xs;
    }
    /* x's agent joins its swarm; x's report of it is issued but delayed */
    flow_cmd cmd, late;
    flow_cmd_init(&cmd, FLOW_CMD_AGENT_ADD, 6);
    snprintf(cmd.swarm, sizeof cmd.swarm, "s%d", xs);
    snprintf(cmd.agent, sizeof cmd.agent, "wx");
    cmd.role = FLOW_ROLE_WORKER;
    assert_int_equal(stamped(c, x, &cmd), 0);
    assert_int_equal(settle(c, propose(c, &cmd)), 0);
    flow_cmd_init(&late, FLOW_CMD_AGENT_DRAIN, 7);
    snprintf(late.agent, sizeof late.agent, "wx");
    assert_int_equal(stamped(c, x, &late), 0);
    raft_fixture_kill(&c->f, x);
    unsigned alive = ((1u << N) - 1) & ~(1u << x);
    spread_claims(c, alive, claims);
    assert_int_equal(claims[x], 0);
    assert_int_equal(claims[0] + claims[1] + claims[2], held[x]); /* only x's swarms move */
    const char *live[N - 1];
    size_t nl = 0;
    for (unsigned i = 0; i < N; i++) {
        if (i != x) {
            live[nl++] = names[i];
        }
    }
    for (int k = 1; k <= SW; k++) {
        snprintf(sw, sizeof sw, "s%d", k);
        uint64_t t = 0;
        const char *h = flow_state_swarm_lease(flow_fsm_state(c->fsm[l]), sw, &t);
        if (holder[k] == (int)x) {
            assert_string_equal(h, live[election_preferred(sw, live, nl)]);
            assert_int_equal(t, 2);
        } else {
            assert_string_equal(h, names[holder[k]]);
            assert_int_equal(t, 1);
        }
    }
    uint64_t kl = propose_on(c, l, &late);
    assert_int_equal(settle_alive(c, kl, alive), FLOW_ESTATE);

    /* x is back (alive again in every view): it alone claims, and exactly its swarms */
    raft_fixture_revive(&c->f, x);
    settle(c, kl);
    assert_int_equal(c->rc[x][kl], FLOW_ESTATE);
    spread_claims(c, (1u << N) - 1, claims);
    assert_int_equal(claims[x], held[x]);
    assert_int_equal(claims[0] + claims[1] + claims[2], held[x]);
    for (int k = 1; k <= SW; k++) {
        snprintf(sw, sizeof sw, "s%d", k);
        uint64_t t = 0;
        assert_true(election_holds(flow_fsm_state(c->fsm[x]), sw, names[holder[k]], &t));
        assert_int_equal(t, holder[k] == (int)x ? 3u : 1u);
    }
    assert_same_snapshots(c);
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
        cmocka_unit_test_setup_teardown(leader_change_moves_leases, setup, teardown),
        cmocka_unit_test_setup_teardown(old_entry_before_new_claims, setup, teardown),
        cmocka_unit_test_setup_teardown(spread_and_failover, setup, teardown),
        cmocka_unit_test(lease_decoding),
        cmocka_unit_test(rendezvous),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
