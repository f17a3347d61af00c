/* tests/unit/test_flow_state.c — the flow state machine: every command, its errors, the
 * topologies, retries, dependencies, deadlines, the breaker, determinism and snapshots.
 * Commands are written as JSON and go through flow_cmd_from_json, as a replicated log would. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "flow/core/flow_state.h"

static flow_state *S;
static flow_events EV;
static char ERR[256];

static int apply_on(flow_state *s, flow_events *ev, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int apply_on(flow_state *s, flow_events *ev, const char *fmt, ...)
{
    char buf[8192];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    json_error_t je;
    json_t *j = json_loads(buf, 0, &je);
    if (j == NULL) {
        fail_msg("bad test JSON %s: %s", buf, je.text);
    }
    flow_cmd c;
    int rc = flow_cmd_from_json(&c, j, ERR, sizeof ERR);
    json_decref(j);
    if (rc != 0) {
        return rc;
    }
    rc = flow_state_apply(s, &c, ev, ERR, sizeof ERR);
    flow_cmd_clear(&c);
    return rc;
}
#define apply(...) apply_on(S, &EV, __VA_ARGS__)

static int setup(void **st)
{
    (void)st;
    S = flow_state_new();
    memset(&EV, 0, sizeof EV);
    return 0;
}

static int teardown(void **st)
{
    (void)st;
    flow_state_free(S);
    flow_events_clear(&EV);
    return 0;
}

static void reset_ev(void)
{
    flow_events_clear(&EV);
}

static int count_ev(flow_event_type t, const char *task)
{
    int n = 0;
    for (size_t i = 0; i < EV.n; i++) {
        n += EV.v[i].type == t && (task == NULL || strcmp(EV.v[i].task, task) == 0);
    }
    return n;
}

static const flow_event *find_ev(flow_event_type t, const char *task)
{
    for (size_t i = 0; i < EV.n; i++) {
        if (EV.v[i].type == t && (task == NULL || strcmp(EV.v[i].task, task) == 0)) {
            return &EV.v[i];
        }
    }
    return NULL;
}

static const char *task_agent(const char *task)
{
    return flow_task_get_agent(flow_state_task(S, task));
}

static flow_task_state tstate(const char *task)
{
    return flow_task_get_state(flow_state_task(S, task));
}

/* A swarm with no pool minimum and n agents a0..a(n-1) of a role. */
static void swarm_with(const char *topo, const char *extra_cfg, int n, const char *role)
{
    assert_int_equal(apply("{\"cmd\":\"swarm_create\",\"now\":0,\"swarm\":\"s\",\"topology\":"
                           "\"%s\",\"config\":{\"pool_min\":{\"worker\":0,\"specialist\":0,"
                           "\"scout\":0}%s}}",
                           topo, extra_cfg),
                     0);
    for (int i = 0; i < n; i++) {
        assert_int_equal(apply("{\"cmd\":\"agent_add\",\"now\":0,\"swarm\":\"s\",\"agent\":"
                               "\"a%d\",\"role\":\"%s\"}",
                               i, role),
                         0);
    }
}

static int submit(const char *id, const char *prio, uint64_t now)
{
    return apply("{\"cmd\":\"task_submit\",\"now\":%llu,\"swarm\":\"s\",\"task\":\"%s\","
                 "\"priority\":\"%s\",\"input\":{\"n\":1}}",
                 (unsigned long long)now, id, prio);
}

static int complete(const char *task, const char *agent)
{
    return apply("{\"cmd\":\"task_complete\",\"now\":1,\"task\":\"%s\",\"agent\":\"%s\","
                 "\"result\":{\"ok\":\"%s\"}}",
                 task, agent, task);
}

/* ---- swarms and agents ------------------------------------------------------------------- */

static void swarm_lifecycle(void **st)
{
    (void)st;
    assert_int_equal(
        apply("{\"cmd\":\"swarm_create\",\"now\":5,\"swarm\":\"s1\",\"topology\":\"star\"}"), 0);
    assert_int_equal(count_ev(FLOW_EV_SWARM_CREATED, NULL), 1);
    /* pool minimum 5 per role by default: one agent_needed per role */
    assert_int_equal(count_ev(FLOW_EV_AGENT_NEEDED, NULL), 3);
    assert_int_equal(find_ev(FLOW_EV_AGENT_NEEDED, NULL)->count, 5);
    assert_int_equal(
        apply("{\"cmd\":\"swarm_create\",\"now\":5,\"swarm\":\"s1\",\"topology\":\"star\"}"),
        FLOW_EEXIST);
    assert_int_equal(
        apply("{\"cmd\":\"swarm_create\",\"now\":5,\"swarm\":\"s2\",\"topology\":\"blob\"}"),
        FLOW_EINVAL);
    assert_int_equal(apply("{\"cmd\":\"swarm_create\",\"now\":5,\"swarm\":\"bad id\","
                           "\"topology\":\"star\"}"),
                     FLOW_EINVAL);
    assert_int_equal(apply("{\"cmd\":\"swarm_create\",\"now\":5,\"swarm\":\"s3\",\"topology\":"
                           "\"star\",\"config\":{\"queue_limit\":20000}}"),
                     FLOW_EINVAL);
    assert_int_equal(apply("{\"cmd\":\"swarm_create\",\"now\":5,\"swarm\":\"s3\",\"topology\":"
                           "\"star\",\"config\":{\"bogus\":1}}"),
                     FLOW_EINVAL);
    assert_true(flow_state_has_swarm(S, "s1"));
    /* a pool spawn answers the need */
    reset_ev();
    assert_int_equal(apply("{\"cmd\":\"agent_add\",\"now\":6,\"swarm\":\"s1\",\"agent\":\"w1\","
                           "\"role\":\"worker\",\"pool\":true}"),
                     0);
    assert_int_equal(count_ev(FLOW_EV_AGENT_ADDED, NULL), 1);
    /* the state remembers 4 more are coming: a tick asks for nothing */
    assert_int_equal(apply("{\"cmd\":\"tick\",\"now\":7}"), 0);
    assert_int_equal(count_ev(FLOW_EV_AGENT_NEEDED, NULL), 0);
    /* a failed spawn is forgotten, the next tick asks again */
    assert_int_equal(apply("{\"cmd\":\"agent_spawn_failed\",\"now\":8,\"swarm\":\"s1\",\"role\":"
                           "\"worker\",\"text\":\"enoent\"}"),
                     0);
    assert_int_equal(apply("{\"cmd\":\"tick\",\"now\":9}"), 0);
    assert_int_equal(count_ev(FLOW_EV_AGENT_NEEDED, NULL), 1);
    assert_int_equal(EV.v[EV.n - 1].count, 1);
    reset_ev();
    assert_int_equal(apply("{\"cmd\":\"swarm_destroy\",\"now\":10,\"swarm\":\"s1\"}"), 0);
    assert_int_equal(count_ev(FLOW_EV_SWARM_DESTROYED, NULL), 1);
    assert_int_equal(count_ev(FLOW_EV_AGENT_REMOVED, NULL), 1);
    assert_false(flow_state_has_swarm(S, "s1"));
    assert_null(flow_state_agent(S, "w1"));
    assert_int_equal(apply("{\"cmd\":\"swarm_destroy\",\"now\":10,\"swarm\":\"s1\"}"),
                     FLOW_ENOTFOUND);
}

static void agent_errors(void **st)
{
    (void)st;
    swarm_with("star", ",\"pool_max\":{\"worker\":2},\"max_agents\":3", 2, "worker");
    assert_int_equal(apply("{\"cmd\":\"agent_add\",\"now\":0,\"swarm\":\"s\",\"agent\":\"a9\","
                           "\"role\":\"worker\"}"),
                     FLOW_EPOOL_FULL);
    assert_int_equal(apply("{\"cmd\":\"agent_add\",\"now\":0,\"swarm\":\"s\",\"agent\":\"a0\","
                           "\"role\":\"scout\"}"),
                     FLOW_EEXIST);
    assert_int_equal(apply("{\"cmd\":\"agent_add\",\"now\":0,\"swarm\":\"x\",\"agent\":\"b\","
                           "\"role\":\"scout\"}"),
                     FLOW_ENOTFOUND);
    assert_int_equal(apply("{\"cmd\":\"agent_add\",\"now\":0,\"swarm\":\"s\",\"agent\":\"b\","
                           "\"role\":\"chef\"}"),
                     FLOW_EINVAL);
    assert_int_equal(apply("{\"cmd\":\"agent_add\",\"now\":0,\"swarm\":\"s\",\"agent\":\"b\","
                           "\"role\":\"scout\",\"capacity\":0}"),
                     FLOW_EINVAL);
    assert_int_equal(apply("{\"cmd\":\"agent_add\",\"now\":0,\"swarm\":\"s\",\"agent\":\"b\","
                           "\"role\":\"scout\"}"),
                     0);
    assert_int_equal(apply("{\"cmd\":\"agent_add\",\"now\":0,\"swarm\":\"s\",\"agent\":\"c\","
                           "\"role\":\"scout\"}"),
                     FLOW_EPOOL_FULL); /* max_agents 3 */
    assert_int_equal(apply("{\"cmd\":\"agent_remove\",\"now\":0,\"agent\":\"zz\"}"),
                     FLOW_ENOTFOUND);
    assert_int_equal(apply("{\"cmd\":\"agent_crashed\",\"now\":0,\"agent\":\"zz\"}"),
                     FLOW_ENOTFOUND);
    assert_int_equal(apply("{\"cmd\":\"agent_drain\",\"now\":0,\"agent\":\"zz\"}"), FLOW_ENOTFOUND);
    /* drain an idle agent: retire at once */
    reset_ev();
    assert_int_equal(apply("{\"cmd\":\"agent_drain\",\"now\":0,\"agent\":\"b\"}"), 0);
    assert_int_equal(count_ev(FLOW_EV_AGENT_RETIRE, NULL), 1);
    assert_int_equal(flow_agent_get_state(flow_state_agent(S, "b")), FLOW_AGENT_DRAINING);
    /* a draining agent gets no work */
    assert_int_equal(submit("t1", "normal", 1), 0);
    assert_string_not_equal(task_agent("t1"), "b");
    assert_int_equal(apply("{\"cmd\":\"agent_remove\",\"now\":0,\"agent\":\"b\"}"), 0);
    assert_null(flow_state_agent(S, "b"));
}

/* ---- task transitions --------------------------------------------------------------------- */

static void task_happy_path_and_errors(void **st)
{
    (void)st;
    swarm_with("star", "", 1, "worker");
    assert_int_equal(submit("t1", "normal", 10), 0);
    const flow_event *run = find_ev(FLOW_EV_TASK_RUN, "t1");
    assert_non_null(run);
    assert_string_equal(run->agent, "a0");
    assert_int_equal(json_integer_value(json_object_get(run->data, "n")), 1);
    assert_int_equal(tstate("t1"), FLOW_TASK_ASSIGNED);
    assert_int_equal(flow_agent_get_state(flow_state_agent(S, "a0")), FLOW_AGENT_BUSY);
    /* errors */
    assert_int_equal(submit("t1", "normal", 10), FLOW_EEXIST);
    assert_int_equal(submit("t2", "urgent", 10), FLOW_EINVAL);
    assert_int_equal(apply("{\"cmd\":\"task_submit\",\"now\":1,\"swarm\":\"nope\",\"task\":\"x\","
                           "\"input\":1}"),
                     FLOW_ENOTFOUND);
    assert_int_equal(apply("{\"cmd\":\"task_submit\",\"now\":1,\"swarm\":\"s\",\"task\":\"x\"}"),
                     FLOW_EINVAL); /* no input */
    assert_int_equal(apply("{\"cmd\":\"task_complete\",\"now\":1,\"task\":\"t1\","
                           "\"agent\":\"zz\"}"),
                     FLOW_ESTATE);
    assert_int_equal(apply("{\"cmd\":\"task_start\",\"now\":1,\"task\":\"nope\","
                           "\"agent\":\"a0\"}"),
                     FLOW_ENOTFOUND);
    assert_int_equal(apply("{\"cmd\":\"task_start\",\"now\":11,\"task\":\"t1\",\"agent\":\"a0\"}"),
                     0);
    assert_int_equal(tstate("t1"), FLOW_TASK_RUNNING);
    assert_int_equal(apply("{\"cmd\":\"task_start\",\"now\":11,\"task\":\"t1\",\"agent\":\"a0\"}"),
                     FLOW_ESTATE);
    assert_int_equal(complete("t1", "a0"), 0);
    assert_int_equal(tstate("t1"), FLOW_TASK_COMPLETED);
    assert_int_equal(complete("t1", "a0"), FLOW_ESTATE); /* no double completion */
    assert_int_equal(apply("{\"cmd\":\"task_cancel\",\"now\":12,\"task\":\"t1\"}"), FLOW_ESTATE);
    json_t *v = flow_state_task_json(S, "t1");
    assert_string_equal(json_string_value(json_object_get(v, "state")), "completed");
    assert_string_equal(json_string_value(json_object_get(json_object_get(v, "result"), "ok")),
                        "t1");
    assert_int_equal(json_integer_value(json_object_get(v, "created")), 10);
    assert_int_equal(json_integer_value(json_object_get(v, "started")), 11);
    json_decref(v);
    assert_int_equal(flow_agent_get_state(flow_state_agent(S, "a0")), FLOW_AGENT_IDLE);
    /* a failing task without retry_on_error fails at once */
    assert_int_equal(submit("t2", "normal", 20), 0);
    assert_int_equal(apply("{\"cmd\":\"task_fail\",\"now\":21,\"task\":\"t2\",\"agent\":\"a0\","
                           "\"text\":\"boom\"}"),
                     0);
    assert_int_equal(tstate("t2"), FLOW_TASK_FAILED);
    v = flow_state_task_json(S, "t2");
    assert_string_equal(json_string_value(json_object_get(v, "error")), "boom");
    json_decref(v);
    /* an unknown command and a malformed one */
    assert_int_equal(apply("{\"cmd\":\"explode\",\"now\":1}"), FLOW_EINVAL);
    assert_int_equal(apply("{\"cmd\":\"tick\"}"), FLOW_EINVAL);
}

/* Refused commands change nothing (the state stays byte-identical). */
static void refusal_changes_nothing(void **st)
{
    (void)st;
    swarm_with("star", ",\"queue_limit\":1", 0, "worker");
    assert_int_equal(submit("t1", "normal", 5), 0);
    json_t *a = flow_state_snapshot(S);
    assert_int_equal(submit("t2", "normal", 99), FLOW_EQUEUE_FULL);
    assert_int_equal(complete("t1", "a0"), FLOW_ESTATE);
    json_t *b = flow_state_snapshot(S);
    assert_true(json_equal(a, b));
    json_decref(a);
    json_decref(b);
}

static void explicit_assign(void **st)
{
    (void)st;
    swarm_with("star", "", 0, "worker");
    assert_int_equal(submit("t1", "normal", 1), 0);
    assert_int_equal(submit("t2", "normal", 1), 0);
    assert_int_equal(apply("{\"cmd\":\"agent_add\",\"now\":0,\"swarm\":\"s\",\"agent\":\"a0\","
                           "\"role\":\"worker\",\"capacity\":2}"),
                     0);
    /* dispatch gave both to a0 (capacity 2); a new agent can take an explicit assignment */
    assert_string_equal(task_agent("t1"), "a0");
    assert_int_equal(submit("t3", "normal", 1), 0);
    assert_int_equal(apply("{\"cmd\":\"task_assign\",\"now\":1,\"task\":\"t3\",\"agent\":\"a0\"}"),
                     FLOW_ESTATE); /* full */
    assert_int_equal(apply("{\"cmd\":\"agent_drain\",\"now\":0,\"agent\":\"a0\"}"), 0);
    assert_int_equal(apply("{\"cmd\":\"agent_add\",\"now\":0,\"swarm\":\"s\",\"agent\":\"a1\","
                           "\"role\":\"worker\"}"),
                     0);
    assert_string_equal(task_agent("t3"), "a1"); /* dispatched on add */
    assert_int_equal(complete("t3", "a1"), 0);
    assert_int_equal(submit("t4", "normal", 1), 0);
    assert_string_equal(task_agent("t4"), "a1");
    assert_int_equal(apply("{\"cmd\":\"task_assign\",\"now\":1,\"task\":\"t4\",\"agent\":\"a1\"}"),
                     FLOW_ESTATE); /* not pending */
}

/* ---- queue --------------------------------------------------------------------------------- */

/* One agent, 1,000 tasks of each priority: over 160 dispatches 100 high, 50 normal, 10 low. */
static void weights_through_dispatch(void **st)
{
    (void)st;
    swarm_with("star", "", 0, "worker");
    char id[32];
    for (int i = 0; i < 1000; i++) {
        static const char *const p[] = {"high", "normal", "low"};
        for (int c = 0; c < 3; c++) {
            snprintf(id, sizeof id, "%s-%d", p[c], i);
            assert_int_equal(submit(id, p[c], 1), 0);
        }
    }
    assert_int_equal(apply("{\"cmd\":\"agent_add\",\"now\":0,\"swarm\":\"s\",\"agent\":\"a0\","
                           "\"role\":\"worker\"}"),
                     0);
    int served[3] = {0};
    for (int i = 0; i < 160; i++) {
        const flow_event *run = NULL;
        for (size_t k = EV.n; k-- > 0;) {
            if (EV.v[k].type == FLOW_EV_TASK_RUN) {
                run = &EV.v[k];
                break;
            }
        }
        assert_non_null(run);
        char task[64];
        snprintf(task, sizeof task, "%s", run->task);
        served[task[0] == 'h' ? 0 : task[0] == 'n' ? 1 : 2]++;
        reset_ev();
        assert_int_equal(complete(task, "a0"), 0);
    }
    assert_int_equal(served[0], 100);
    assert_int_equal(served[1], 50);
    assert_int_equal(served[2], 10);
}

static void queue_full(void **st)
{
    (void)st;
    swarm_with("star", "", 0, "worker");
    char id[32];
    for (int i = 0; i < 10000; i++) {
        snprintf(id, sizeof id, "t%d", i);
        assert_int_equal(submit(id, "low", 1), 0);
    }
    assert_int_equal(submit("one-more", "high", 1), FLOW_EQUEUE_FULL);
    assert_null(flow_state_task(S, "one-more"));
    json_t *m = flow_state_metrics(S);
    assert_int_equal(json_integer_value(json_object_get(json_object_get(m, "queue_depth"), "low")),
                     10000);
    json_decref(m);
    /* nothing accepted is dropped: an agent drains them all in order */
    assert_int_equal(apply("{\"cmd\":\"agent_add\",\"now\":0,\"swarm\":\"s\",\"agent\":\"a0\","
                           "\"role\":\"worker\"}"),
                     0);
    assert_string_equal(task_agent("t0"), "a0");
    assert_int_equal(complete("t0", "a0"), 0);
    assert_string_equal(task_agent("t1"), "a0");
    /* room again: the next submit is accepted */
    assert_int_equal(submit("one-more", "high", 1), 0);
}

static void dependencies(void **st)
{
    (void)st;
    swarm_with("star", "", 1, "worker");
    assert_int_equal(submit("a", "normal", 1), 0);
    assert_int_equal(apply("{\"cmd\":\"task_submit\",\"now\":1,\"swarm\":\"s\",\"task\":\"b\","
                           "\"input\":2,\"dependencies\":[\"a\"]}"),
                     0);
    assert_int_equal(apply("{\"cmd\":\"task_submit\",\"now\":1,\"swarm\":\"s\",\"task\":\"c\","
                           "\"input\":2,\"dependencies\":[\"b\"]}"),
                     0);
    assert_int_equal(apply("{\"cmd\":\"task_submit\",\"now\":1,\"swarm\":\"s\",\"task\":\"d\","
                           "\"input\":2,\"dependencies\":[\"zzz\"]}"),
                     FLOW_EDEPS);
    assert_int_equal(apply("{\"cmd\":\"task_submit\",\"now\":1,\"swarm\":\"s\",\"task\":\"d\","
                           "\"input\":2,\"dependencies\":[\"d\"]}"),
                     FLOW_EDEPS);
    assert_int_equal(submit("free", "low", 1), 0);
    /* a runs; b and c wait; free runs after a although submitted later */
    assert_int_equal(tstate("b"), FLOW_TASK_PENDING);
    assert_int_equal(count_ev(FLOW_EV_TASK_RUN, "b"), 0);
    assert_int_equal(complete("a", "a0"), 0);
    assert_string_equal(task_agent("b"), "a0"); /* ready now, and normal beats low */
    assert_int_equal(complete("b", "a0"), 0);
    assert_string_equal(task_agent("c"), "a0"); /* c: submitted before free, higher class */
    assert_int_equal(tstate("free"), FLOW_TASK_PENDING);
    assert_int_equal(complete("c", "a0"), 0);
    assert_string_equal(task_agent("free"), "a0");
    assert_int_equal(complete("free", "a0"), 0);
    /* a failed dependency fails the chain, with the reason */
    assert_int_equal(submit("x", "normal", 1), 0);
    assert_int_equal(apply("{\"cmd\":\"task_submit\",\"now\":1,\"swarm\":\"s\",\"task\":\"y\","
                           "\"input\":2,\"dependencies\":[\"x\"]}"),
                     0);
    assert_int_equal(apply("{\"cmd\":\"task_submit\",\"now\":1,\"swarm\":\"s\",\"task\":\"z\","
                           "\"input\":2,\"dependencies\":[\"y\",\"c\"]}"),
                     0);
    assert_int_equal(apply("{\"cmd\":\"task_fail\",\"now\":2,\"task\":\"x\",\"agent\":\"a0\","
                           "\"text\":\"nope\"}"),
                     0);
    assert_int_equal(tstate("y"), FLOW_TASK_FAILED);
    assert_int_equal(tstate("z"), FLOW_TASK_FAILED);
    json_t *v = flow_state_task_json(S, "z");
    assert_string_equal(json_string_value(json_object_get(v, "error")), "dependency_failed: y");
    json_decref(v);
    /* submitting against a failed task fails at once */
    assert_int_equal(apply("{\"cmd\":\"task_submit\",\"now\":1,\"swarm\":\"s\",\"task\":\"w\","
                           "\"input\":2,\"dependencies\":[\"x\"]}"),
                     0);
    assert_int_equal(tstate("w"), FLOW_TASK_FAILED);
    /* cancelling a dependency fails its dependents */
    assert_int_equal(apply("{\"cmd\":\"agent_drain\",\"now\":0,\"agent\":\"a0\"}"), 0);
    assert_int_equal(submit("p", "normal", 1), 0);
    assert_int_equal(apply("{\"cmd\":\"task_submit\",\"now\":1,\"swarm\":\"s\",\"task\":\"q\","
                           "\"input\":2,\"dependencies\":[\"p\"]}"),
                     0);
    assert_int_equal(apply("{\"cmd\":\"task_cancel\",\"now\":3,\"task\":\"p\"}"), 0);
    v = flow_state_task_json(S, "q");
    assert_string_equal(json_string_value(json_object_get(v, "error")), "dependency_cancelled: p");
    json_decref(v);
}

static void retries_after_crash(void **st)
{
    (void)st;
    swarm_with("star", ",\"max_retries\":2,\"pool_min\":{\"worker\":1}", 0, "worker");
    assert_int_equal(apply("{\"cmd\":\"agent_add\",\"now\":0,\"swarm\":\"s\",\"agent\":\"a0\","
                           "\"role\":\"worker\",\"pool\":true}"),
                     0);
    assert_int_equal(submit("t", "normal", 1), 0);
    for (int i = 0; i < 3; i++) {
        char agent[16];
        snprintf(agent, sizeof agent, "a%d", i);
        assert_string_equal(task_agent("t"), agent);
        reset_ev();
        assert_int_equal(apply("{\"cmd\":\"agent_crashed\",\"now\":%d,\"agent\":\"%s\","
                               "\"text\":\"segv %d\"}",
                               10 + i, agent, i),
                         0);
        /* a replacement is asked for to keep the pool at its minimum */
        const flow_event *need = find_ev(FLOW_EV_AGENT_NEEDED, NULL);
        assert_non_null(need);
        assert_int_equal(need->count, 1);
        if (i < 2) {
            const flow_event *rq = find_ev(FLOW_EV_TASK_REQUEUED, "t");
            assert_non_null(rq);
            assert_int_equal(rq->count, i + 1);
            assert_int_equal(flow_task_get_retries(flow_state_task(S, "t")), i + 1);
            assert_int_equal(tstate("t"), FLOW_TASK_PENDING);
        }
        assert_int_equal(apply("{\"cmd\":\"agent_add\",\"now\":0,\"swarm\":\"s\",\"agent\":"
                               "\"a%d\",\"role\":\"worker\",\"pool\":true}",
                               i + 1),
                         0);
    }
    assert_int_equal(tstate("t"), FLOW_TASK_FAILED);
    json_t *v = flow_state_task_json(S, "t");
    json_t *reasons = json_object_get(v, "reasons");
    assert_int_equal(json_array_size(reasons), 3);
    assert_string_equal(json_string_value(json_array_get(reasons, 0)), "agent a0 crashed: segv 0");
    assert_non_null(strstr(json_string_value(json_object_get(v, "error")), "max_retries"));
    json_decref(v);
    /* removal on purpose requeues without counting a retry */
    assert_int_equal(submit("u", "normal", 1), 0);
    assert_string_equal(task_agent("u"), "a3");
    assert_int_equal(apply("{\"cmd\":\"agent_remove\",\"now\":20,\"agent\":\"a3\"}"), 0);
    assert_int_equal(flow_task_get_retries(flow_state_task(S, "u")), 0);
    assert_int_equal(tstate("u"), FLOW_TASK_PENDING);
}

static void retry_on_error_policy(void **st)
{
    (void)st;
    swarm_with("star", ",\"retry_on_error\":true,\"max_retries\":1", 1, "worker");
    assert_int_equal(submit("t", "normal", 1), 0);
    assert_int_equal(apply("{\"cmd\":\"task_fail\",\"now\":2,\"task\":\"t\",\"agent\":\"a0\","
                           "\"text\":\"e1\"}"),
                     0);
    assert_int_equal(flow_task_get_retries(flow_state_task(S, "t")), 1);
    assert_string_equal(task_agent("t"), "a0"); /* dispatched again */
    assert_int_equal(apply("{\"cmd\":\"task_fail\",\"now\":3,\"task\":\"t\",\"agent\":\"a0\","
                           "\"text\":\"e2\"}"),
                     0);
    assert_int_equal(tstate("t"), FLOW_TASK_FAILED);
}

static void deadlines_and_cancel(void **st)
{
    (void)st;
    swarm_with("star", "", 1, "worker");
    assert_int_equal(apply("{\"cmd\":\"task_submit\",\"now\":0,\"swarm\":\"s\",\"task\":\"r\","
                           "\"input\":1,\"deadline\":500}"),
                     0);
    assert_int_equal(apply("{\"cmd\":\"task_submit\",\"now\":0,\"swarm\":\"s\",\"task\":\"p\","
                           "\"input\":1,\"deadline\":1000}"),
                     0);
    assert_int_equal(flow_state_next_deadline(S), 500);
    assert_int_equal(apply("{\"cmd\":\"tick\",\"now\":499}"), 0);
    assert_int_equal(tstate("r"), FLOW_TASK_ASSIGNED);
    reset_ev();
    assert_int_equal(apply("{\"cmd\":\"tick\",\"now\":500}"), 0);
    assert_int_equal(tstate("r"), FLOW_TASK_FAILED);
    assert_int_equal(count_ev(FLOW_EV_TASK_ABORT, "r"), 1); /* the agent must stop it */
    assert_string_equal(find_ev(FLOW_EV_TASK_FAILED, "r")->text, "deadline_exceeded");
    assert_string_equal(task_agent("p"), "a0"); /* the agent moved on */
    /* cancel a running task: abort + cancelled; a pending one: just cancelled */
    assert_int_equal(submit("q", "normal", 600), 0);
    reset_ev();
    assert_int_equal(apply("{\"cmd\":\"task_cancel\",\"now\":600,\"task\":\"p\"}"), 0);
    assert_int_equal(count_ev(FLOW_EV_TASK_ABORT, "p"), 1);
    assert_int_equal(tstate("p"), FLOW_TASK_CANCELLED);
    assert_string_equal(task_agent("q"), "a0");
    assert_int_equal(apply("{\"cmd\":\"agent_drain\",\"now\":0,\"agent\":\"a0\"}"), 0);
    assert_int_equal(submit("z", "normal", 600), 0);
    reset_ev();
    assert_int_equal(apply("{\"cmd\":\"task_cancel\",\"now\":600,\"task\":\"z\"}"), 0);
    assert_int_equal(count_ev(FLOW_EV_TASK_ABORT, "z"), 0);
    assert_int_equal(count_ev(FLOW_EV_TASK_CANCELLED, "z"), 1);
    assert_int_equal(apply("{\"cmd\":\"task_cancel\",\"now\":600,\"task\":\"nope\"}"),
                     FLOW_ENOTFOUND);
}

/* ---- breaker inside the swarm ---------------------------------------------------------------- */

static void breaker_pauses_dispatch(void **st)
{
    (void)st;
    swarm_with("star", ",\"idle_timeout_ms\":86400000", 1, "worker");
    char id[16];
    for (int i = 0; i < 5; i++) {
        snprintf(id, sizeof id, "f%d", i);
        assert_int_equal(submit(id, "normal", 100), 0);
        reset_ev();
        assert_int_equal(apply("{\"cmd\":\"task_fail\",\"now\":100,\"task\":\"%s\",\"agent\":"
                               "\"a0\",\"text\":\"x\"}",
                               id),
                         0);
    }
    const flow_event *b = find_ev(FLOW_EV_BREAKER, NULL);
    assert_non_null(b);
    assert_int_equal(b->count, FLOW_CB_OPEN);
    /* open: accepted but not dispatched */
    assert_int_equal(submit("t1", "normal", 101), 0);
    assert_int_equal(submit("t2", "normal", 101), 0);
    assert_int_equal(tstate("t1"), FLOW_TASK_PENDING);
    assert_int_equal(flow_state_next_deadline(S), 60100);
    assert_int_equal(apply("{\"cmd\":\"tick\",\"now\":60099}"), 0);
    assert_int_equal(tstate("t1"), FLOW_TASK_PENDING);
    reset_ev();
    assert_int_equal(apply("{\"cmd\":\"tick\",\"now\":60100}"), 0);
    assert_int_equal(find_ev(FLOW_EV_BREAKER, NULL)->count, FLOW_CB_HALF_OPEN);
    /* half-open: exactly one trial */
    assert_int_equal(count_ev(FLOW_EV_TASK_RUN, NULL), 1);
    assert_int_equal(tstate("t2"), FLOW_TASK_PENDING);
    reset_ev();
    assert_int_equal(complete("t1", "a0"), 0);
    assert_int_equal(find_ev(FLOW_EV_BREAKER, NULL)->count, FLOW_CB_CLOSED);
    assert_string_equal(task_agent("t2"), "a0");
    json_t *m = flow_state_metrics(S);
    assert_int_equal(json_integer_value(json_object_get(json_object_get(m, "breakers"), "closed")),
                     1);
    json_decref(m);
}

/* ---- topologies ---------------------------------------------------------------------------- */

static void star_round_robin(void **st)
{
    (void)st;
    swarm_with("star", ",\"lb\":\"round_robin\"", 3, "worker");
    char id[16];
    const char *want[] = {"a0", "a1", "a2"};
    for (int i = 0; i < 3; i++) {
        snprintf(id, sizeof id, "t%d", i);
        assert_int_equal(submit(id, "normal", 1), 0);
        assert_string_equal(task_agent(id), want[i]);
    }
    for (int i = 0; i < 3; i++) {
        snprintf(id, sizeof id, "t%d", i);
        assert_int_equal(complete(id, want[i]), 0);
    }
    /* round robin continues after a2 */
    assert_int_equal(submit("t3", "normal", 1), 0);
    assert_string_equal(task_agent("t3"), "a0");
    assert_int_equal(submit("t4", "normal", 1), 0);
    assert_string_equal(task_agent("t4"), "a1");
    /* roles: a scout task waits for a scout */
    assert_int_equal(apply("{\"cmd\":\"task_submit\",\"now\":1,\"swarm\":\"s\",\"task\":\"sc\","
                           "\"input\":1,\"role\":\"scout\"}"),
                     0);
    assert_int_equal(tstate("sc"), FLOW_TASK_PENDING);
    assert_int_equal(apply("{\"cmd\":\"agent_add\",\"now\":0,\"swarm\":\"s\",\"agent\":\"sx\","
                           "\"role\":\"scout\"}"),
                     0);
    assert_string_equal(task_agent("sc"), "sx");
}

static void star_least_conn_and_weighted(void **st)
{
    (void)st;
    swarm_with("star", ",\"lb\":\"least_conn\"", 0, "worker");
    for (int i = 0; i < 2; i++) {
        assert_int_equal(apply("{\"cmd\":\"agent_add\",\"now\":0,\"swarm\":\"s\",\"agent\":"
                               "\"a%d\",\"role\":\"worker\",\"capacity\":4}",
                               i),
                         0);
    }
    /* least_conn alternates while loads are equal and fills the emptier one */
    const char *seq[4];
    char id[4][8];
    for (int i = 0; i < 4; i++) {
        snprintf(id[i], sizeof id[i], "t%d", i);
        assert_int_equal(submit(id[i], "normal", 1), 0);
        seq[i] = task_agent(id[i]);
    }
    assert_string_equal(seq[0], "a0");
    assert_string_equal(seq[1], "a1");
    assert_int_equal(complete("t0", "a0"), 0);
    assert_int_equal(complete("t2", "a0"), 0); /* a0 now holds 0, a1 holds 2 */
    assert_int_equal(submit("t5", "normal", 1), 0);
    assert_string_equal(task_agent("t5"), "a0");
    assert_int_equal(submit("t6", "normal", 1), 0);
    assert_string_equal(task_agent("t6"), "a0");
    teardown(NULL);
    setup(NULL);
    swarm_with("star", ",\"lb\":\"weighted\"", 0, "worker");
    assert_int_equal(apply("{\"cmd\":\"agent_add\",\"now\":0,\"swarm\":\"s\",\"agent\":\"big\","
                           "\"role\":\"worker\",\"weight\":3,\"capacity\":64}"),
                     0);
    assert_int_equal(apply("{\"cmd\":\"agent_add\",\"now\":0,\"swarm\":\"s\",\"agent\":"
                           "\"small\",\"role\":\"worker\",\"weight\":1,\"capacity\":64}"),
                     0);
    int big = 0;
    char tid[16];
    for (int i = 0; i < 40; i++) {
        snprintf(tid, sizeof tid, "w%d", i);
        assert_int_equal(submit(tid, "normal", 1), 0);
        big += strcmp(task_agent(tid), "big") == 0;
    }
    assert_int_equal(big, 30);
}

static void hierarchical_teams(void **st)
{
    (void)st;
    swarm_with("hierarchical", "", 3, "worker"); /* a0 is the worker team's lead */
    assert_int_equal(apply("{\"cmd\":\"agent_add\",\"now\":0,\"swarm\":\"s\",\"agent\":\"sp0\","
                           "\"role\":\"specialist\"}"),
                     0);
    json_t *sj = flow_state_swarm_json(S, "s");
    json_t *leads = json_object_get(sj, "team_leads");
    assert_string_equal(json_string_value(json_object_get(leads, "worker")), "a0");
    assert_string_equal(json_string_value(json_object_get(leads, "specialist")), "sp0");
    assert_true(json_is_null(json_object_get(leads, "scout")));
    json_decref(sj);
    /* the lead works last: a1, a2 first */
    assert_int_equal(apply("{\"cmd\":\"task_submit\",\"now\":1,\"swarm\":\"s\",\"task\":\"w1\","
                           "\"input\":1,\"role\":\"worker\"}"),
                     0);
    assert_int_equal(apply("{\"cmd\":\"task_submit\",\"now\":1,\"swarm\":\"s\",\"task\":\"w2\","
                           "\"input\":1,\"role\":\"worker\"}"),
                     0);
    assert_int_equal(apply("{\"cmd\":\"task_submit\",\"now\":1,\"swarm\":\"s\",\"task\":\"w3\","
                           "\"input\":1,\"role\":\"worker\"}"),
                     0);
    assert_string_equal(task_agent("w1"), "a1");
    assert_string_equal(task_agent("w2"), "a2");
    assert_string_equal(task_agent("w3"), "a0");
    /* a roleless task goes to the least loaded team: specialists (0) over workers (3) */
    assert_int_equal(submit("free1", "normal", 1), 0);
    assert_string_equal(task_agent("free1"), "sp0");
    /* the next one: specialists 1, workers 3 → still specialists, and it waits in their
     * team queue even though no specialist is free (teams own their queues) */
    assert_int_equal(submit("free2", "normal", 1), 0);
    assert_int_equal(tstate("free2"), FLOW_TASK_PENDING);
    assert_int_equal(complete("w1", "a1"), 0);
    assert_int_equal(tstate("free2"), FLOW_TASK_PENDING); /* a1 is free but in another team */
    assert_int_equal(complete("free1", "sp0"), 0);
    assert_string_equal(task_agent("free2"), "sp0");
    /* the lead leaves: the next oldest member leads */
    assert_int_equal(complete("w3", "a0"), 0);
    assert_int_equal(apply("{\"cmd\":\"agent_remove\",\"now\":0,\"agent\":\"a0\"}"), 0);
    sj = flow_state_swarm_json(S, "s");
    assert_string_equal(
        json_string_value(json_object_get(json_object_get(sj, "team_leads"), "worker")), "a1");
    json_decref(sj);
}

static void ring_pipeline(void **st)
{
    (void)st;
    swarm_with("ring", "", 3, "worker");
    assert_int_equal(submit("t", "normal", 1), 0);
    const char *order[3] = {"a0", "a1", "a2"};
    for (int stage = 0; stage < 3; stage++) {
        const flow_event *run = NULL;
        for (size_t k = 0; k < EV.n; k++) {
            if (EV.v[k].type == FLOW_EV_TASK_RUN) {
                run = &EV.v[k];
            }
        }
        assert_non_null(run);
        assert_string_equal(run->agent, order[stage]);
        assert_int_equal(run->count, stage);
        /* stage input is the previous stage's output */
        if (stage > 0) {
            assert_int_equal(json_integer_value(json_object_get(run->data, "stage")), stage - 1);
        }
        reset_ev();
        assert_int_equal(apply("{\"cmd\":\"task_complete\",\"now\":1,\"task\":\"t\",\"agent\":"
                               "\"%s\",\"result\":{\"stage\":%d}}",
                               order[stage], stage),
                         0);
        if (stage < 2) {
            assert_int_equal(count_ev(FLOW_EV_TASK_STAGE, "t"), 1);
            assert_int_equal(tstate("t"), FLOW_TASK_ASSIGNED);
        }
    }
    assert_int_equal(tstate("t"), FLOW_TASK_COMPLETED);
    json_t *v = flow_state_task_json(S, "t");
    assert_int_equal(json_integer_value(json_object_get(json_object_get(v, "result"), "stage")), 2);
    assert_int_equal(json_integer_value(json_object_get(v, "stages")), 3);
    json_decref(v);
    /* pipelining: while t2 is in stage 1, t3 enters stage 0 */
    assert_int_equal(submit("t2", "normal", 1), 0);
    assert_int_equal(complete("t2", "a0"), 0);
    assert_string_equal(task_agent("t2"), "a1");
    assert_int_equal(submit("t3", "normal", 1), 0);
    assert_string_equal(task_agent("t3"), "a0");
    /* a crash in stage 1 retries stage 1 (not from the start) */
    assert_int_equal(apply("{\"cmd\":\"agent_crashed\",\"now\":2,\"agent\":\"a1\"}"), 0);
    /* the ring is now a0, a2: stage 1 runs on position 1 = a2 */
    assert_string_equal(task_agent("t2"), "a2");
    v = flow_state_task_json(S, "t2");
    assert_int_equal(json_integer_value(json_object_get(v, "stage")), 1);
    assert_int_equal(json_integer_value(json_object_get(v, "retries")), 1);
    json_decref(v);
}

static void mesh_pull_and_steal(void **st)
{
    (void)st;
    swarm_with("mesh", ",\"mesh_prefetch\":1", 2, "worker");
    for (int i = 1; i <= 4; i++) {
        char id[8];
        snprintf(id, sizeof id, "t%d", i);
        assert_int_equal(submit(id, "normal", 1), 0);
    }
    /* each agent pulls: one to run, one in its local queue */
    assert_string_equal(task_agent("t1"), "a0");
    assert_string_equal(task_agent("t2"), "a1");
    assert_string_equal(task_agent("t3"), "a0");
    assert_string_equal(task_agent("t4"), "a1");
    assert_int_equal(count_ev(FLOW_EV_TASK_RUN, "t3"), 0); /* waiting locally */
    reset_ev();
    /* a1 finishes t2: runs its local t4 */
    assert_int_equal(complete("t2", "a1"), 0);
    assert_int_equal(count_ev(FLOW_EV_TASK_RUN, "t4"), 1);
    reset_ev();
    assert_int_equal(complete("t4", "a1"), 0);
    /* a1 is idle, the shared queue is empty, a0 is busy with t1 and holds t3: a1 steals it */
    const flow_event *steal = find_ev(FLOW_EV_TASK_STOLEN, "t3");
    assert_non_null(steal);
    assert_string_equal(steal->agent, "a1");
    assert_string_equal(steal->text, "a0");
    assert_string_equal(task_agent("t3"), "a1");
    assert_int_equal(count_ev(FLOW_EV_TASK_RUN, "t3"), 1);
}

static void idle_retire_and_scale(void **st)
{
    (void)st;
    swarm_with("star",
               ",\"pool_min\":{\"worker\":1,\"specialist\":0,\"scout\":0},"
               "\"idle_timeout_ms\":30000",
               3, "worker");
    assert_int_equal(submit("t", "normal", 0), 0); /* a0 busy */
    assert_int_equal(flow_state_next_deadline(S), 30000);
    reset_ev();
    assert_int_equal(apply("{\"cmd\":\"tick\",\"now\":29999}"), 0);
    assert_int_equal(count_ev(FLOW_EV_AGENT_RETIRE, NULL), 0);
    assert_int_equal(apply("{\"cmd\":\"tick\",\"now\":30000}"), 0);
    /* three workers, minimum one: the two idle ones retire, the busy one stays */
    assert_int_equal(count_ev(FLOW_EV_AGENT_RETIRE, NULL), 2);
    assert_int_equal(flow_agent_get_state(flow_state_agent(S, "a0")), FLOW_AGENT_BUSY);
    /* scale up: agents are asked for */
    reset_ev();
    assert_int_equal(apply("{\"cmd\":\"swarm_scale\",\"now\":30001,\"swarm\":\"s\",\"role\":"
                           "\"scout\",\"count\":2}"),
                     0);
    assert_int_equal(find_ev(FLOW_EV_AGENT_NEEDED, NULL)->count, 2);
    assert_int_equal(apply("{\"cmd\":\"swarm_scale\",\"now\":30001,\"swarm\":\"s\",\"role\":"
                           "\"scout\",\"count\":500}"),
                     FLOW_EINVAL);
}

/* The state's timers (deadlines, idle agents, the breaker) are a heap: the next deadline is
 * always the earliest live one, cancelled or ended tasks leave it, an idle agent's timeout
 * starts only when its role is above the minimum, and a restored state has the same timers. */
static void timers_follow_the_records(void **st)
{
    (void)st;
    swarm_with("star",
               ",\"pool_min\":{\"worker\":1,\"specialist\":0,\"scout\":0},"
               "\"idle_timeout_ms\":1000,\"cb_threshold\":1,\"cb_timeout_ms\":5000",
               1, "worker");
    assert_int_equal(flow_state_next_deadline(S), UINT64_MAX); /* one worker: at the minimum */
    for (int i = 0; i < 3; i++) {
        assert_int_equal(apply("{\"cmd\":\"task_submit\",\"now\":0,\"swarm\":\"s\",\"task\":"
                               "\"d%d\",\"input\":1,\"deadline\":%d}",
                               i, 300 - 100 * i),
                         0);
    }
    assert_int_equal(flow_state_next_deadline(S), 100);
    assert_int_equal(apply("{\"cmd\":\"task_cancel\",\"now\":1,\"task\":\"d2\"}"), 0);
    assert_int_equal(flow_state_next_deadline(S), 200);
    /* a second worker puts the role above its minimum: both idle ones get a timeout */
    assert_int_equal(apply("{\"cmd\":\"agent_add\",\"now\":10,\"swarm\":\"s\",\"agent\":"
                           "\"b\",\"role\":\"worker\"}"),
                     0);
    assert_string_equal(task_agent("d0"), "a0");
    assert_string_equal(task_agent("d1"), "b");
    assert_int_equal(flow_state_next_deadline(S), 200);
    reset_ev();
    assert_int_equal(apply("{\"cmd\":\"tick\",\"now\":250}"), 0);
    assert_int_equal(tstate("d1"), FLOW_TASK_FAILED);
    assert_int_equal(count_ev(FLOW_EV_TASK_ABORT, "d1"), 1);
    /* b is idle since 250 and above the minimum: its timeout is at 1250, d0's deadline 300 */
    assert_int_equal(flow_state_next_deadline(S), 300);
    assert_int_equal(apply("{\"cmd\":\"task_complete\",\"now\":260,\"task\":\"d0\","
                           "\"agent\":\"a0\",\"result\":1}"),
                     0);
    assert_int_equal(flow_state_next_deadline(S), 1250);
    /* restored: the same next deadline */
    json_t *snap = flow_state_snapshot(S);
    flow_state *r = flow_state_restore(snap, ERR, sizeof ERR);
    json_decref(snap);
    assert_non_null(r);
    assert_int_equal(flow_state_next_deadline(r), 1250);
    flow_state_free(r);
    reset_ev();
    assert_int_equal(apply("{\"cmd\":\"tick\",\"now\":1250}"), 0);
    const flow_event *ret = find_ev(FLOW_EV_AGENT_RETIRE, NULL);
    assert_non_null(ret);
    assert_string_equal(ret->agent, "b"); /* idle the longest */
    assert_int_equal(count_ev(FLOW_EV_AGENT_RETIRE, NULL), 1);
    /* a0 stays: at the minimum its timer is gone */
    assert_int_equal(flow_state_next_deadline(S), UINT64_MAX);
    /* a failure opens the breaker (threshold 1): its half-open time is the next deadline */
    assert_int_equal(apply("{\"cmd\":\"task_submit\",\"now\":1300,\"swarm\":\"s\",\"task\":"
                           "\"f\",\"input\":1}"),
                     0);
    assert_int_equal(apply("{\"cmd\":\"task_fail\",\"now\":1400,\"task\":\"f\",\"agent\":"
                           "\"a0\",\"text\":\"x\"}"),
                     0);
    assert_int_equal(flow_state_next_deadline(S), 6400);
    reset_ev();
    assert_int_equal(apply("{\"cmd\":\"tick\",\"now\":6400}"), 0);
    assert_int_equal(count_ev(FLOW_EV_BREAKER, NULL), 1);
    assert_int_equal(flow_state_next_deadline(S), UINT64_MAX);
}

/* ---- determinism, snapshots, codec --------------------------------------------------------- */

static void scenario(flow_state *s, flow_events *ev)
{
    apply_on(s, ev,
             "{\"cmd\":\"swarm_create\",\"now\":0,\"swarm\":\"m\",\"topology\":\"mesh\","
             "\"config\":{\"pool_min\":{\"worker\":2,\"specialist\":0,\"scout\":0}}}");
    apply_on(s, ev,
             "{\"cmd\":\"swarm_create\",\"now\":0,\"swarm\":\"h\",\"topology\":"
             "\"hierarchical\",\"config\":{\"lb\":\"weighted\"}}");
    for (int i = 0; i < 6; i++) {
        apply_on(s, ev,
                 "{\"cmd\":\"agent_add\",\"now\":%d,\"swarm\":\"%s\",\"agent\":\"g%d\","
                 "\"role\":\"%s\",\"weight\":%d,\"pool\":true}",
                 i, i % 2 ? "m" : "h", i, i % 3 == 0 ? "worker" : "scout", 1 + i);
    }
    for (int i = 0; i < 60; i++) {
        apply_on(s, ev,
                 "{\"cmd\":\"task_submit\",\"now\":%d,\"swarm\":\"%s\",\"task\":\"k%d\","
                 "\"priority\":\"%s\",\"input\":{\"i\":%d}%s}",
                 10 + i, i % 2 ? "m" : "h", i, i % 3 == 0 ? "high" : "low", i,
                 i > 2 && i % 5 == 0 ? ",\"dependencies\":[\"k1\"]" : "");
    }
    apply_on(s, ev, "{\"cmd\":\"agent_crashed\",\"now\":100,\"agent\":\"g1\",\"text\":\"x\"}");
    apply_on(s, ev, "{\"cmd\":\"task_cancel\",\"now\":101,\"task\":\"k7\"}");
}

static char *dump(const flow_state *s)
{
    json_t *j = flow_state_snapshot(s);
    char *t = json_dumps(j, JSON_SORT_KEYS | JSON_COMPACT);
    json_decref(j);
    return t;
}

static void determinism(void **st)
{
    (void)st;
    flow_state *b = flow_state_new();
    flow_events eb = {0};
    scenario(S, &EV);
    scenario(b, &eb);
    char *x = dump(S), *y = dump(b);
    assert_string_equal(x, y);
    assert_int_equal(EV.n, eb.n);
    for (size_t i = 0; i < EV.n; i++) {
        json_t *p = flow_event_to_json(&EV.v[i]), *q = flow_event_to_json(&eb.v[i]);
        assert_true(json_equal(p, q));
        json_decref(p);
        json_decref(q);
    }
    free(x);
    free(y);
    flow_events_clear(&eb);
    flow_state_free(b);
}

static void snapshot_round_trip(void **st)
{
    (void)st;
    scenario(S, &EV);
    json_t *snap = flow_state_snapshot(S);
    char err[256];
    flow_state *r = flow_state_restore(snap, err, sizeof err);
    assert_non_null(r);
    json_decref(snap);
    char *x = dump(S), *y = dump(r);
    assert_string_equal(x, y);
    free(x);
    free(y);
    /* the restored state behaves the same from here on */
    flow_events e1 = {0}, e2 = {0};
    const char *more[] = {
        ("{\"cmd\":\"agent_add\",\"now\":200,\"swarm\":\"m\",\"agent\":\"late\",\"role\":"
         "\"worker\"}"),
        "{\"cmd\":\"task_complete\",\"now\":201,\"task\":\"k1\",\"agent\":\"g3\",\"result\":1}",
        "{\"cmd\":\"tick\",\"now\":90000}",
        "{\"cmd\":\"agent_crashed\",\"now\":90001,\"agent\":\"g0\",\"text\":\"y\"}",
    };
    for (size_t i = 0; i < sizeof more / sizeof more[0]; i++) {
        int a = apply_on(S, &e1, "%s", more[i]);
        int b = apply_on(r, &e2, "%s", more[i]);
        assert_int_equal(a, b);
    }
    assert_int_equal(e1.n, e2.n);
    x = dump(S);
    y = dump(r);
    assert_string_equal(x, y);
    free(x);
    free(y);
    flow_events_clear(&e1);
    flow_events_clear(&e2);
    flow_state_free(r);
    /* bad snapshots are refused with a message */
    json_t *bad = json_pack("{s:i}", "version", 2);
    assert_null(flow_state_restore(bad, err, sizeof err));
    assert_true(strlen(err) > 0);
    json_decref(bad);
    snap = flow_state_snapshot(S);
    json_object_set_new(json_array_get(json_object_get(snap, "tasks"), 0), "state",
                        json_string("weird"));
    assert_null(flow_state_restore(snap, err, sizeof err));
    json_decref(snap);
}

static void command_codec(void **st)
{
    (void)st;
    const char *cmds[] = {
        "{\"cmd\":\"swarm_create\",\"now\":1,\"swarm\":\"s\",\"topology\":\"ring\",\"config\":"
        "{\"lb\":\"least_conn\",\"executor\":{\"type\":\"exec\",\"argv\":[\"/bin/cat\"]}}}",
        "{\"cmd\":\"swarm_destroy\",\"now\":1,\"swarm\":\"s\"}",
        "{\"cmd\":\"swarm_scale\",\"now\":1,\"swarm\":\"s\",\"role\":\"scout\",\"count\":3}",
        "{\"cmd\":\"agent_add\",\"now\":1,\"swarm\":\"s\",\"agent\":\"a\",\"role\":\"worker\","
        "\"weight\":2,\"capacity\":3,\"pool\":true,\"executor\":{\"type\":\"builtin\"}}",
        "{\"cmd\":\"agent_spawn_failed\",\"now\":1,\"swarm\":\"s\",\"role\":\"worker\","
        "\"text\":\"x\"}",
        "{\"cmd\":\"agent_drain\",\"now\":1,\"agent\":\"a\"}",
        "{\"cmd\":\"agent_remove\",\"now\":1,\"agent\":\"a\"}",
        "{\"cmd\":\"agent_crashed\",\"now\":1,\"agent\":\"a\",\"text\":\"oom\"}",
        "{\"cmd\":\"task_submit\",\"now\":1,\"swarm\":\"s\",\"task\":\"t\",\"priority\":"
        "\"low\",\"role\":\"scout\",\"input\":[1,2],\"dependencies\":[\"u\"],\"deadline\":9,"
        "\"max_retries\":4,\"trace_id\":\"abc\"}",
        "{\"cmd\":\"task_assign\",\"now\":1,\"task\":\"t\",\"agent\":\"a\"}",
        "{\"cmd\":\"task_start\",\"now\":1,\"task\":\"t\",\"agent\":\"a\"}",
        "{\"cmd\":\"task_complete\",\"now\":1,\"task\":\"t\",\"agent\":\"a\",\"result\":{}}",
        "{\"cmd\":\"task_fail\",\"now\":1,\"task\":\"t\",\"agent\":\"a\",\"text\":\"e\"}",
        "{\"cmd\":\"task_cancel\",\"now\":1,\"task\":\"t\"}",
        "{\"cmd\":\"tick\",\"now\":1}",
    };
    for (size_t i = 0; i < sizeof cmds / sizeof cmds[0]; i++) {
        json_t *j = json_loads(cmds[i], 0, NULL);
        flow_cmd c, d;
        assert_int_equal(flow_cmd_from_json(&c, j, ERR, sizeof ERR), 0);
        json_t *out = flow_cmd_to_json(&c);
        assert_int_equal(flow_cmd_from_json(&d, out, ERR, sizeof ERR), 0);
        json_t *out2 = flow_cmd_to_json(&d);
        assert_true(json_equal(out, out2));
        assert_int_equal(c.type, (flow_cmd_type)(i + 1));
        json_decref(j);
        json_decref(out);
        json_decref(out2);
        flow_cmd_clear(&c);
        flow_cmd_clear(&d);
    }
    /* refused: bounded and clear */
    const char *bad[] = {
        "[]",
        "{\"cmd\":\"tick\",\"now\":-1}",
        "{\"cmd\":\"agent_drain\",\"now\":1}",
        "{\"cmd\":\"agent_drain\",\"now\":1,\"agent\":\"" /* 64-byte id */
        "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\"}",
        "{\"cmd\":\"task_submit\",\"now\":1,\"swarm\":\"s\",\"task\":\"t\",\"input\":1,"
        "\"dependencies\":\"x\"}",
        "{\"cmd\":\"task_submit\",\"now\":1,\"swarm\":\"s\",\"task\":\"t\",\"input\":1,"
        "\"role\":\"boss\"}",
        "{\"cmd\":\"swarm_scale\",\"now\":1,\"swarm\":\"s\",\"role\":\"scout\"}",
        "{\"cmd\":\"agent_add\",\"now\":1,\"swarm\":\"s\",\"agent\":\"a\",\"role\":\"worker\","
        "\"executor\":[1]}",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        json_t *j = json_loads(bad[i], JSON_DECODE_ANY, NULL);
        flow_cmd c;
        ERR[0] = '\0';
        assert_int_equal(flow_cmd_from_json(&c, j, ERR, sizeof ERR), FLOW_EINVAL);
        assert_true(strlen(ERR) > 0);
        json_decref(j);
    }
    /* 65 dependencies */
    json_t *deps = json_array();
    for (int i = 0; i < 65; i++) {
        json_array_append_new(deps, json_string("d"));
    }
    json_t *j = json_pack("{s:s, s:i, s:s, s:s, s:i, s:o}", "cmd", "task_submit", "now", 1, "swarm",
                          "s", "task", "t", "input", 1, "dependencies", deps);
    flow_cmd c;
    assert_int_equal(flow_cmd_from_json(&c, j, ERR, sizeof ERR), FLOW_EINVAL);
    json_decref(j);
    assert_string_equal(flow_strerror(FLOW_EQUEUE_FULL), "queue_full");
}

static void views(void **st)
{
    (void)st;
    swarm_with("star", "", 2, "scout");
    assert_int_equal(submit("t1", "high", 1), 0);
    json_t *l = flow_state_agent_list(S, "s", FLOW_ROLE_SCOUT);
    assert_int_equal(json_array_size(l), 2);
    json_decref(l);
    l = flow_state_agent_list(S, NULL, FLOW_ROLE_WORKER);
    assert_int_equal(json_array_size(l), 0);
    json_decref(l);
    l = flow_state_task_list(S, "s", FLOW_TASK_ASSIGNED, 0);
    assert_int_equal(json_array_size(l), 1);
    json_decref(l);
    l = flow_state_swarm_list(S);
    assert_int_equal(json_array_size(l), 1);
    json_decref(l);
    json_t *a = flow_state_agent_json(S, "a0");
    assert_string_equal(json_string_value(json_object_get(a, "state")), "busy");
    json_decref(a);
    assert_null(flow_state_agent_json(S, "nope"));
    assert_null(flow_state_task_json(S, "nope"));
    assert_null(flow_state_swarm_json(S, "nope"));
    assert_int_equal(flow_state_applied(S), 4);
    const char *ids[4];
    assert_int_equal(flow_state_swarm_agents(S, "s", ids, 4), 2);
    assert_string_equal(ids[1], "a1");
}

int main(void)
{
#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)
    const struct CMUnitTest tests[] = {
        T(swarm_lifecycle),
        T(agent_errors),
        T(task_happy_path_and_errors),
        T(refusal_changes_nothing),
        T(explicit_assign),
        T(weights_through_dispatch),
        T(queue_full),
        T(dependencies),
        T(retries_after_crash),
        T(retry_on_error_policy),
        T(deadlines_and_cancel),
        T(breaker_pauses_dispatch),
        T(star_round_robin),
        T(star_least_conn_and_weighted),
        T(hierarchical_teams),
        T(ring_pipeline),
        T(mesh_pull_and_steal),
        T(idle_retire_and_scale),
        T(timers_follow_the_records),
        T(determinism),
        T(snapshot_round_trip),
        T(command_codec),
        T(views),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
