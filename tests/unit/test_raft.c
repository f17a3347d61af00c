/*
 * test_raft.c — the flow state machine replicated by libraft, on libraft's deterministic
 * in-memory fixture (no sockets, no clock: time only moves when the fixture steps).
 *
 *  - three replicas apply the same committed commands and reach identical snapshots;
 *  - after the leader is lost a new leader is elected and no committed command is lost;
 *  - a partitioned minority (the old leader alone) cannot commit, and after healing its
 *    uncommitted entry is discarded and every replica converges;
 *  - a replica that was down catches up through a snapshot (InstallSnapshot → restore);
 *  - log entries and snapshots are decoded strictly: garbage is refused, never applied.
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

#include "flow/consensus/fsm.h"

#define N 3
#define MAX_MS 10000

typedef struct cluster {
    struct raft_fixture f;
    flow_fsm *fsm[N];
} cluster;

typedef struct req {
    struct raft_apply apply;
    int *status; /* where the outcome goes: 1 pending, 0 ok, else the error */
} req;

static int setup(void **state)
{
    cluster *c = calloc(1, sizeof *c);
    assert_non_null(c);
    assert_int_equal(raft_fixture_initialize(&c->f), 0);
    for (unsigned i = 0; i < N; i++) {
        c->fsm[i] = flow_fsm_new(NULL);
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
    (void)result;
    req *r = a->data;
    if (r->status) {
        *r->status = status;
    }
    free(r);
}

/* Proposes a command on server i; returns raft_apply's code. */
static int propose(cluster *c, unsigned i, flow_cmd *cmd, int *status)
{
    json_t *j = flow_cmd_to_json(cmd);
    flow_cmd_clear(cmd);
    struct raft_buffer buf;
    assert_int_equal(flow_entry_cmd(j, 1, 1, &buf), 0);
    json_decref(j);
    req *r = calloc(1, sizeof *r);
    r->apply.data = r;
    r->status = status;
    if (status) {
        *status = 1;
    }
    int rc = raft_apply(raft_fixture_get(&c->f, i), &r->apply, &buf, 1, apply_cb);
    if (rc != 0) {
        raft_free(buf.base);
        free(r);
    }
    return rc;
}

static int submit(cluster *c, unsigned i, const char *task, uint64_t now, int *status)
{
    flow_cmd cmd;
    flow_cmd_init(&cmd, FLOW_CMD_TASK_SUBMIT, now);
    snprintf(cmd.swarm, sizeof cmd.swarm, "s1");
    snprintf(cmd.task, sizeof cmd.task, "%s", task);
    cmd.input = json_pack("{s:s}", "task", task);
    return propose(c, i, &cmd, status);
}

/* A swarm with two workers (no pool), then `ntasks` tasks; waits until all servers applied. */
static raft_index populate(cluster *c, unsigned leader, int ntasks)
{
    flow_cmd cmd;
    flow_cmd_init(&cmd, FLOW_CMD_SWARM_CREATE, 1);
    snprintf(cmd.swarm, sizeof cmd.swarm, "s1");
    cmd.config.pool_min[0] = cmd.config.pool_min[1] = cmd.config.pool_min[2] = 0;
    assert_int_equal(propose(c, leader, &cmd, NULL), 0);
    for (int a = 0; a < 2; a++) {
        flow_cmd_init(&cmd, FLOW_CMD_AGENT_ADD, 2);
        snprintf(cmd.swarm, sizeof cmd.swarm, "s1");
        snprintf(cmd.agent, sizeof cmd.agent, "a%d", a);
        cmd.role = FLOW_ROLE_WORKER;
        assert_int_equal(propose(c, leader, &cmd, NULL), 0);
    }
    for (int t = 0; t < ntasks; t++) {
        char id[16];
        snprintf(id, sizeof id, "t%d", t);
        assert_int_equal(submit(c, leader, id, 3 + (uint64_t)t, NULL), 0);
    }
    raft_index last = raft_last_index(raft_fixture_get(&c->f, leader));
    for (unsigned i = 0; i < N; i++) {
        assert_true(raft_fixture_step_until_applied(&c->f, i, last, MAX_MS));
    }
    return last;
}

/* Completes the task an agent holds (start, complete) on the leader. */
static void complete(cluster *c, unsigned leader, const char *task, uint64_t now)
{
    const flow_task *t = flow_state_task(flow_fsm_state(c->fsm[leader]), task);
    assert_non_null(t);
    const char *agent = flow_task_get_agent(t);
    assert_non_null(agent);
    flow_cmd cmd;
    flow_cmd_init(&cmd, FLOW_CMD_TASK_START, now);
    snprintf(cmd.task, sizeof cmd.task, "%s", task);
    snprintf(cmd.agent, sizeof cmd.agent, "%s", agent);
    assert_int_equal(propose(c, leader, &cmd, NULL), 0);
    flow_cmd_init(&cmd, FLOW_CMD_TASK_COMPLETE, now + 1);
    snprintf(cmd.task, sizeof cmd.task, "%s", task);
    snprintf(cmd.agent, sizeof cmd.agent, "%s", agent);
    cmd.result = json_pack("{s:s}", "done", task);
    assert_int_equal(propose(c, leader, &cmd, NULL), 0);
}

static void assert_same_snapshots(cluster *c, const bool *alive)
{
    char *ref = NULL;
    for (unsigned i = 0; i < N; i++) {
        if (alive && !alive[i]) {
            continue;
        }
        char *s = flow_fsm_snapshot_text(c->fsm[i]);
        assert_non_null(s);
        if (ref == NULL) {
            ref = s;
        } else {
            assert_string_equal(ref, s);
            free(s);
        }
    }
    free(ref);
}

static void replicas_identical(void **state)
{
    cluster *c = *state;
    unsigned l = raft_fixture_leader_index(&c->f);
    populate(c, l, 20);
    complete(c, l, "t0", 100);
    complete(c, l, "t1", 110);
    raft_index last = raft_last_index(raft_fixture_get(&c->f, l));
    for (unsigned i = 0; i < N; i++) {
        assert_true(raft_fixture_step_until_applied(&c->f, i, last, MAX_MS));
        const flow_state *s = flow_fsm_state(c->fsm[i]);
        assert_int_equal(flow_task_get_state(flow_state_task(s, "t0")), FLOW_TASK_COMPLETED);
        assert_int_equal(flow_task_get_state(flow_state_task(s, "t1")), FLOW_TASK_COMPLETED);
        assert_non_null(flow_state_task(s, "t19"));
        assert_int_equal(flow_fsm_refused(c->fsm[i]), 0);
    }
    assert_same_snapshots(c, NULL);
}

static void leader_loss_keeps_committed(void **state)
{
    cluster *c = *state;
    unsigned l = raft_fixture_leader_index(&c->f);
    populate(c, l, 10); /* committed and applied everywhere */
    /* one more, committed (its callback said so) just before the leader dies */
    int st;
    assert_int_equal(submit(c, l, "last", 50, &st), 0);
    raft_index idx = raft_last_index(raft_fixture_get(&c->f, l));
    assert_true(raft_fixture_step_until_applied(&c->f, l, idx, MAX_MS));
    assert_int_equal(st, 0);
    raft_fixture_kill(&c->f, l);
    assert_true(raft_fixture_step_until_has_no_leader(&c->f, MAX_MS));
    assert_true(raft_fixture_step_until_has_leader(&c->f, MAX_MS));
    unsigned l2 = raft_fixture_leader_index(&c->f);
    assert_int_not_equal(l2, l);
    /* the new leader has every committed command and accepts new ones */
    assert_int_equal(submit(c, l2, "after", 60, &st), 0);
    raft_index idx2 = raft_last_index(raft_fixture_get(&c->f, l2));
    bool alive[N] = {true, true, true};
    alive[l] = false;
    for (unsigned i = 0; i < N; i++) {
        if (alive[i]) {
            assert_true(raft_fixture_step_until_applied(&c->f, i, idx2, MAX_MS));
            const flow_state *s = flow_fsm_state(c->fsm[i]);
            for (int t = 0; t < 10; t++) {
                char id[16];
                snprintf(id, sizeof id, "t%d", t);
                assert_non_null(flow_state_task(s, id));
            }
            assert_non_null(flow_state_task(s, "last"));
            assert_non_null(flow_state_task(s, "after"));
        }
    }
    assert_int_equal(st, 0);
    assert_same_snapshots(c, alive);
    /* the old leader comes back and converges */
    raft_fixture_revive(&c->f, l);
    assert_true(raft_fixture_step_until_applied(&c->f, l, idx2, MAX_MS));
    assert_same_snapshots(c, NULL);
}

static void minority_cannot_commit(void **state)
{
    cluster *c = *state;
    unsigned l = raft_fixture_leader_index(&c->f);
    raft_index base = populate(c, l, 3);
    for (unsigned i = 0; i < N; i++) {
        if (i != l) {
            raft_fixture_disconnect(&c->f, l, i);
            raft_fixture_disconnect(&c->f, i, l);
        }
    }
    int lost;
    assert_int_equal(submit(c, l, "minority", 40, &lost), 0);
    raft_index idx = raft_last_index(raft_fixture_get(&c->f, l));
    assert_true(idx > base);
    /* however long it runs, the minority's entry is not committed nor applied */
    raft_fixture_step_until_elapsed(&c->f, 3000);
    for (unsigned i = 0; i < N; i++) {
        assert_null(flow_state_task(flow_fsm_state(c->fsm[i]), "minority"));
    }
    assert_int_not_equal(lost, 0);
    /* the majority elected its own leader and commits */
    unsigned l2 = N;
    for (unsigned i = 0; i < N; i++) {
        if (i != l && raft_state(raft_fixture_get(&c->f, i)) == RAFT_LEADER) {
            l2 = i;
        }
    }
    if (l2 == N) {
        unsigned other = (l + 1) % N;
        assert_true(raft_fixture_step_until_state_is(&c->f, other, RAFT_LEADER, MAX_MS) ||
                    raft_state(raft_fixture_get(&c->f, (l + 2) % N)) == RAFT_LEADER);
        l2 = raft_state(raft_fixture_get(&c->f, other)) == RAFT_LEADER ? other : (l + 2) % N;
    }
    int st;
    assert_int_equal(submit(c, l2, "majority", 50, &st), 0);
    raft_index idx2 = raft_last_index(raft_fixture_get(&c->f, l2));
    for (unsigned i = 0; i < N; i++) {
        if (i != l) {
            assert_true(raft_fixture_step_until_applied(&c->f, i, idx2, MAX_MS));
            assert_non_null(flow_state_task(flow_fsm_state(c->fsm[i]), "majority"));
        }
    }
    /* heal: the old leader's uncommitted entry is discarded, everyone converges */
    for (unsigned i = 0; i < N; i++) {
        if (i != l) {
            raft_fixture_reconnect(&c->f, l, i);
            raft_fixture_reconnect(&c->f, i, l);
        }
    }
    assert_true(raft_fixture_step_until_applied(&c->f, l, idx2, MAX_MS));
    raft_fixture_step_until_elapsed(&c->f, 1000);
    assert_int_not_equal(lost, 1); /* its callback reported the loss */
    assert_int_not_equal(lost, 0);
    for (unsigned i = 0; i < N; i++) {
        assert_null(flow_state_task(flow_fsm_state(c->fsm[i]), "minority"));
        assert_non_null(flow_state_task(flow_fsm_state(c->fsm[i]), "majority"));
    }
    assert_same_snapshots(c, NULL);
}

static void lagging_replica_gets_snapshot(void **state)
{
    cluster *c = *state;
    for (unsigned i = 0; i < N; i++) {
        raft_set_snapshot_threshold(raft_fixture_get(&c->f, i), 8);
        raft_set_snapshot_trailing(raft_fixture_get(&c->f, i), 2);
    }
    unsigned l = raft_fixture_leader_index(&c->f);
    unsigned down = (l + 1) % N;
    raft_fixture_kill(&c->f, down);
    raft_index last = 0;
    flow_cmd cmd;
    flow_cmd_init(&cmd, FLOW_CMD_SWARM_CREATE, 1);
    snprintf(cmd.swarm, sizeof cmd.swarm, "s1");
    cmd.config.pool_min[0] = cmd.config.pool_min[1] = cmd.config.pool_min[2] = 0;
    assert_int_equal(propose(c, l, &cmd, NULL), 0);
    for (int t = 0; t < 40; t++) {
        char id[16];
        snprintf(id, sizeof id, "t%d", t);
        assert_int_equal(submit(c, l, id, 10 + (uint64_t)t, NULL), 0);
        last = raft_last_index(raft_fixture_get(&c->f, l));
        assert_true(raft_fixture_step_until_applied(&c->f, l, last, MAX_MS));
    }
    /* the leader compacted its log past what the dead replica has */
    struct raft *lr = raft_fixture_get(&c->f, l);
    assert_true(lr->log.snapshot.last_index > 0);
    raft_fixture_revive(&c->f, down);
    assert_true(raft_fixture_step_until_applied(&c->f, down, last, MAX_MS));
    assert_non_null(flow_state_task(flow_fsm_state(c->fsm[down]), "t0"));
    assert_non_null(flow_state_task(flow_fsm_state(c->fsm[down]), "t39"));
    assert_same_snapshots(c, NULL);
}

/* ---- decoding, without a cluster ---------------------------------------------------------- */

static void entries_strict(void **state)
{
    (void)state;
    static const char *bad[] = {
        "",
        "{",
        "[]",
        "{\"t\":\"cmd\"}",
        "{\"t\":\"cmd\",\"cmd\":{},\"o\":-1,\"c\":1}",
        "{\"t\":\"member\",\"id\":1}",
        "{\"t\":\"member\",\"id\":1,\"gossip\":\"127.0.0.1:1\"}", /* without node */
        "{\"t\":\"member\",\"id\":1,\"gossip\":\"127.0.0.1:1\",\"node\":\"ab\"}",
        "{\"t\":\"member\",\"id\":1,\"api\":7}",
        "{\"t\":\"nope\",\"id\":1}",
        "{\"t\":\"cmd\",\"cmd\":{},\"o\":1,\"c\":1,\"t\":\"x\"}",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        assert_null(flow_entry_parse(bad[i], strlen(bad[i])));
    }
    assert_null(flow_entry_parse("x", (size_t)FLOW_FSM_ENTRY_MAX + 1));
    /* the FSM refuses garbage and unknown commands deterministically, state unchanged */
    flow_fsm *f = flow_fsm_new(NULL);
    struct raft_fsm *rf = flow_fsm_raft(f);
    char *before = flow_fsm_snapshot_text(f);
    const char *cmd_bad = "{\"t\":\"cmd\",\"cmd\":{\"cmd\":\"launch_missiles\"},\"o\":1,\"c\":1}";
    struct raft_buffer b1 = {(void *)"garbage!", 8}, b2 = {(void *)cmd_bad, strlen(cmd_bad)};
    void *res;
    assert_int_equal(rf->apply(rf, &b1, &res), 0);
    assert_int_equal(rf->apply(rf, &b2, &res), 0);
    assert_int_equal(flow_fsm_refused(f), 2);
    json_t *s1 = json_loads(before, 0, NULL), *s2;
    char *after = flow_fsm_snapshot_text(f);
    s2 = json_loads(after, 0, NULL);
    assert_true(json_equal(json_object_get(s1, "state"), json_object_get(s2, "state")));
    json_decref(s1);
    json_decref(s2);
    free(before);
    free(after);
    /* member entries and padding: a padded entry parses */
    struct raft_buffer m;
    assert_int_equal(flow_entry_member(2, "http://127.0.0.1:1", NULL, NULL, &m), 0);
    assert_int_equal(m.len % 8, 0);
    assert_int_equal(rf->apply(rf, &m, &res), 0);
    raft_free(m.base);
    assert_string_equal(flow_fsm_member_api(f, 2), "http://127.0.0.1:1");
    assert_null(flow_fsm_member_gossip(f, 2, NULL));
    /* the gossip endpoint: its own entry, the API URL kept; bad node ids refused */
    char hex[65];
    memset(hex, 'a', 64);
    hex[64] = '\0';
    assert_int_equal(flow_entry_member(2, NULL, "127.0.0.1:2", "AB", &m), FLOW_EINVAL);
    assert_int_equal(flow_entry_member(2, NULL, NULL, NULL, &m), FLOW_EINVAL);
    assert_int_equal(flow_entry_member(2, NULL, "127.0.0.1:2", hex, &m), 0);
    assert_int_equal(rf->apply(rf, &m, &res), 0);
    raft_free(m.base);
    const char *node = NULL;
    assert_string_equal(flow_fsm_member_gossip(f, 2, &node), "127.0.0.1:2");
    assert_string_equal(node, hex);
    assert_string_equal(flow_fsm_member_api(f, 2), "http://127.0.0.1:1");
    /* an older snapshot (no "gossip") restores; a bad gossip directory is refused */
    flow_fsm *o = flow_fsm_new(NULL);
    char *fresh = flow_fsm_snapshot_text(o);
    json_t *js = json_loads(fresh, 0, NULL);
    free(fresh);
    json_object_del(js, "gossip");
    json_object_set_new(json_object_get(js, "members"), "3", json_string("http://x"));
    char *old = json_dumps(js, JSON_COMPACT);
    assert_int_equal(flow_fsm_restore_text(o, old, strlen(old)), 0);
    assert_string_equal(flow_fsm_member_api(o, 3), "http://x");
    free(old);
    json_object_set_new(js, "gossip",
                        json_pack("{s:{s:s, s:s}}", "3", "address", "h:1", "node", "x"));
    char *badg = json_dumps(js, JSON_COMPACT);
    assert_int_equal(flow_fsm_restore_text(o, badg, strlen(badg)), FLOW_EINVAL);
    free(badg);
    json_decref(js);
    flow_fsm_free(o);
    /* a bad snapshot is refused and the state kept */
    static const char *snaps[] = {"{}", "not json", "{\"v\":1,\"state\":{},\"members\":{}}",
                                  "{\"v\":2,\"state\":{},\"members\":{},\"entries\":0,"
                                  "\"refused\":0}"};
    for (size_t i = 0; i < sizeof snaps / sizeof snaps[0]; i++) {
        struct raft_buffer sb = {(void *)snaps[i], strlen(snaps[i])};
        assert_int_equal(rf->restore(rf, &sb), RAFT_MALFORMED);
    }
    assert_string_equal(flow_fsm_member_api(f, 2), "http://127.0.0.1:1");
    /* a good one round-trips */
    struct raft_buffer *bufs;
    unsigned nb;
    assert_int_equal(rf->snapshot(rf, &bufs, &nb), 0);
    assert_int_equal(nb, 1);
    flow_fsm *g = flow_fsm_new(NULL);
    struct raft_fsm *rg = flow_fsm_raft(g);
    assert_int_equal(rg->restore(rg, &bufs[0]), 0); /* takes bufs[0].base */
    raft_free(bufs);
    char *a = flow_fsm_snapshot_text(f), *b = flow_fsm_snapshot_text(g);
    assert_string_equal(a, b);
    free(a);
    free(b);
    flow_fsm_free(f);
    flow_fsm_free(g);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(replicas_identical, setup, teardown),
        cmocka_unit_test_setup_teardown(leader_loss_keeps_committed, setup, teardown),
        cmocka_unit_test_setup_teardown(minority_cannot_commit, setup, teardown),
        cmocka_unit_test_setup_teardown(lagging_replica_gets_snapshot, setup, teardown),
        cmocka_unit_test(entries_strict),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
