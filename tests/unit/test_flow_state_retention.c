/* tests/unit/test_flow_state_retention.c — retention of ended tasks in the flow state
 * machine (flow_state_set_retention, docs/flow.md "Retention"): the oldest ended (by finish
 * order, not submission order) are evicted at apply time; tasks ended by the command being
 * applied stay until the next one; ended totals are unaffected; evicted tasks are not found;
 * two states fed the same commands evict the same tasks; snapshots carry only the kept tasks
 * and a restored state keeps evicting in the same order; 0 keeps everything.
 * Commands go through flow_cmd_from_json, as a replicated log would. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "flow/core/flow_state.h"

static char ERR[256];

static int apply_on(flow_state *s, flow_events *ev, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int apply_on(flow_state *s, flow_events *ev, const char *fmt, ...)
{
    char buf[4096];
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

/* A swarm without pool minimum and n worker agents SW-a0..; tasks go pending when n is 0. */
static void swarm(flow_state *s, const char *sw, int n)
{
    assert_int_equal(apply_on(s, NULL,
                              "{\"cmd\":\"swarm_create\",\"now\":0,\"swarm\":\"%s\",\"topology\":"
                              "\"star\",\"config\":{\"pool_min\":{\"worker\":0,\"specialist\":0,"
                              "\"scout\":0}}}",
                              sw),
                     0);
    for (int i = 0; i < n; i++) {
        assert_int_equal(apply_on(s, NULL,
                                  "{\"cmd\":\"agent_add\",\"now\":0,\"swarm\":\"%s\",\"agent\":"
                                  "\"%s-a%d\",\"role\":\"worker\"}",
                                  sw, sw, i),
                         0);
    }
}

static int submit(flow_state *s, const char *sw, const char *task, uint64_t now, const char *dep)
{
    char deps[128] = "";
    if (dep != NULL) {
        snprintf(deps, sizeof deps, ",\"dependencies\":[\"%s\"]", dep);
    }
    return apply_on(s, NULL,
                    "{\"cmd\":\"task_submit\",\"now\":%llu,\"swarm\":\"%s\",\"task\":\"%s\","
                    "\"priority\":\"normal\",\"input\":{\"t\":\"%s\"}%s}",
                    (unsigned long long)now, sw, task, task, deps);
}

static int cancel(flow_state *s, const char *task, uint64_t now)
{
    return apply_on(s, NULL, "{\"cmd\":\"task_cancel\",\"now\":%llu,\"task\":\"%s\"}",
                    (unsigned long long)now, task);
}

static bool kept(const flow_state *s, const char *task)
{
    return flow_state_task(s, task) != NULL;
}

typedef struct totals {
    const char *swarm;
    size_t kept[6];
    uint64_t ended[3];
} totals;

static void totals_fn(const flow_swarm_stats *st, void *user)
{
    totals *t = user;
    if (strcmp(st->id, t->swarm) == 0) {
        memcpy(t->kept, st->tasks, sizeof t->kept);
        memcpy(t->ended, st->ended_total, sizeof t->ended);
    }
}

static totals swarm_totals(const flow_state *s, const char *sw)
{
    totals t = {.swarm = sw};
    flow_state_each_swarm(s, totals_fn, &t);
    return t;
}

static char *dump(const flow_state *s)
{
    json_t *j = flow_state_snapshot(s);
    char *t = json_dumps(j, JSON_SORT_KEYS | JSON_COMPACT);
    json_decref(j);
    return t;
}

/* ---- tests ------------------------------------------------------------------------------- */

static void default_and_zero(void **st)
{
    (void)st;
    flow_state *s = flow_state_new();
    assert_int_equal(flow_state_retention(s), FLOW_TASK_RETENTION_DEFAULT);
    flow_state_set_retention(s, 0); /* keep all */
    swarm(s, "s", 0);
    char id[16];
    for (int i = 0; i < 50; i++) {
        snprintf(id, sizeof id, "t%d", i);
        assert_int_equal(submit(s, "s", id, 1, NULL), 0);
        assert_int_equal(cancel(s, id, 2), 0);
    }
    assert_int_equal(apply_on(s, NULL, "{\"cmd\":\"tick\",\"now\":3}"), 0);
    assert_int_equal(flow_state_finished_count(s), 50);
    assert_true(kept(s, "t0"));
    flow_state_free(s);
}

/* Cancels in an order unlike submission: eviction follows the finish order. */
static void evicts_oldest_finished(void **st)
{
    (void)st;
    flow_state *s = flow_state_new();
    flow_state_set_retention(s, 3);
    swarm(s, "s", 0);
    char id[16];
    for (int i = 0; i < 10; i++) {
        snprintf(id, sizeof id, "t%d", i);
        assert_int_equal(submit(s, "s", id, 1, NULL), 0);
    }
    static const char *const order[] = {"t5", "t2", "t8", "t0", "t9"};
    for (int i = 0; i < 3; i++) {
        assert_int_equal(cancel(s, order[i], 10 + (uint64_t)i), 0);
    }
    assert_int_equal(flow_state_finished_count(s), 3);
    assert_true(kept(s, "t5") && kept(s, "t2") && kept(s, "t8"));
    assert_int_equal(cancel(s, "t0", 20), 0); /* 4 ended: the first to end goes */
    assert_false(kept(s, "t5"));
    assert_true(kept(s, "t2") && kept(s, "t8") && kept(s, "t0"));
    assert_int_equal(cancel(s, "t9", 21), 0);
    assert_false(kept(s, "t2"));
    assert_true(kept(s, "t8") && kept(s, "t0") && kept(s, "t9"));
    assert_int_equal(flow_state_finished_count(s), 3);
    /* pending tasks are never evicted */
    for (int i = 0; i < 10; i++) {
        snprintf(id, sizeof id, "t%d", i);
        if (strstr("t1 t3 t4 t6 t7", id) != NULL) {
            assert_int_equal(flow_task_get_state(flow_state_task(s, id)), FLOW_TASK_PENDING);
        }
    }
    /* counters: kept tasks by state drop, ended totals do not */
    totals t = swarm_totals(s, "s");
    assert_int_equal(t.kept[FLOW_TASK_CANCELLED], 3);
    assert_int_equal(t.ended[FLOW_TASK_CANCELLED - FLOW_TASK_COMPLETED], 5);
    assert_int_equal(t.kept[FLOW_TASK_PENDING], 5);
    /* an evicted task is not found */
    assert_null(flow_state_task_json(s, "t5"));
    assert_int_equal(cancel(s, "t5", 22), FLOW_ENOTFOUND);
    assert_int_equal(submit(s, "s", "late", 23, "t2"), FLOW_EDEPS);
    /* a kept one is a known dependency: "late" fails at once (dependency cancelled), a 4th
     * ended task, so the oldest kept one (t8) goes */
    assert_int_equal(submit(s, "s", "late", 23, "t8"), 0);
    assert_int_equal(flow_task_get_state(flow_state_task(s, "late")), FLOW_TASK_FAILED);
    assert_false(kept(s, "t8"));
    assert_true(kept(s, "t0") && kept(s, "t9") && kept(s, "late"));
    t = swarm_totals(s, "s");
    assert_int_equal(t.kept[FLOW_TASK_CANCELLED], 2);
    assert_int_equal(t.ended[FLOW_TASK_FAILED - FLOW_TASK_COMPLETED], 1);
    flow_state_free(s);
}

/* Completed tasks count like the others; a command that ends many tasks keeps them all until
 * the next command (its events name them), which evicts down to the retention. */
static void same_command_kept_until_next(void **st)
{
    (void)st;
    flow_state *s = flow_state_new();
    flow_state_set_retention(s, 2);
    swarm(s, "w", 1);
    assert_int_equal(submit(s, "w", "c1", 1, NULL), 0);
    assert_int_equal(apply_on(s, NULL,
                              "{\"cmd\":\"task_start\",\"now\":2,\"task\":\"c1\",\"agent\":"
                              "\"w-a0\"}"),
                     0);
    assert_int_equal(apply_on(s, NULL,
                              "{\"cmd\":\"task_complete\",\"now\":3,\"task\":\"c1\",\"agent\":"
                              "\"w-a0\",\"result\":{\"ok\":1}}"),
                     0);
    assert_int_equal(flow_task_get_state(flow_state_task(s, "c1")), FLOW_TASK_COMPLETED);
    swarm(s, "p", 0);
    assert_int_equal(submit(s, "p", "root", 4, NULL), 0);
    char id[16], prev[16] = "root";
    for (int i = 0; i < 6; i++) { /* a chain: root <- d0 <- d1 ... */
        snprintf(id, sizeof id, "d%d", i);
        assert_int_equal(submit(s, "p", id, 5, prev), 0);
        snprintf(prev, sizeof prev, "%s", id);
    }
    flow_events ev = {0};
    assert_int_equal(apply_on(s, &ev, "{\"cmd\":\"task_cancel\",\"now\":6,\"task\":\"root\"}"), 0);
    /* 7 ended by this command: all still there, as the events say */
    size_t ended = 0;
    for (size_t i = 0; i < ev.n; i++) {
        if (ev.v[i].type == FLOW_EV_TASK_FAILED || ev.v[i].type == FLOW_EV_TASK_CANCELLED) {
            ended++;
            assert_non_null(flow_state_task(s, ev.v[i].task));
        }
    }
    flow_events_clear(&ev);
    assert_int_equal(ended, 7);
    assert_false(kept(s, "c1")); /* ended before: evicted */
    assert_int_equal(flow_state_finished_count(s), 7);
    /* the next command evicts down to 2: the last two to end (the end of the chain) */
    assert_int_equal(apply_on(s, NULL, "{\"cmd\":\"tick\",\"now\":7}"), 0);
    assert_int_equal(flow_state_finished_count(s), 2);
    assert_true(kept(s, "d4") && kept(s, "d5"));
    assert_false(kept(s, "root") || kept(s, "d0") || kept(s, "d3"));
    totals t = swarm_totals(s, "w");
    assert_int_equal(t.kept[FLOW_TASK_COMPLETED], 0);
    assert_int_equal(t.ended[0], 1); /* completed total */
    /* a refused command evicts nothing */
    flow_state_set_retention(s, 1);
    assert_int_equal(cancel(s, "nope", 8), FLOW_ENOTFOUND);
    assert_int_equal(flow_state_finished_count(s), 2);
    assert_int_equal(apply_on(s, NULL, "{\"cmd\":\"tick\",\"now\":9}"), 0);
    assert_int_equal(flow_state_finished_count(s), 1);
    assert_true(kept(s, "d5"));
    flow_state_free(s);
}

/* A mixed workload: tasks complete, fail, get cancelled, agents crash; ids and times in the
 * commands only. */
static void workload(flow_state *s, int from, int to)
{
    for (int i = from; i < to; i++) {
        char id[16];
        snprintf(id, sizeof id, "k%d", i);
        uint64_t now = 100 + (uint64_t)i * 3;
        const char *sw = i % 3 == 0 ? "p" : "w";
        if (submit(s, sw, id, now, i % 7 == 6 ? "k0" : NULL) != 0) {
            continue;
        }
        const flow_task *t = flow_state_task(s, id);
        if (t != NULL && flow_task_get_state(t) == FLOW_TASK_ASSIGNED) {
            char agent[FLOW_ID_MAX];
            snprintf(agent, sizeof agent, "%s", flow_task_get_agent(t));
            apply_on(s, NULL,
                     "{\"cmd\":\"task_start\",\"now\":%llu,\"task\":\"%s\",\"agent\":\"%s\"}",
                     (unsigned long long)now + 1, id, agent);
            if (i % 5 == 4) {
                apply_on(s, NULL,
                         "{\"cmd\":\"task_fail\",\"now\":%llu,\"task\":\"%s\",\"agent\":\"%s\","
                         "\"text\":\"boom\"}",
                         (unsigned long long)now + 2, id, agent);
            } else {
                apply_on(s, NULL,
                         "{\"cmd\":\"task_complete\",\"now\":%llu,\"task\":\"%s\",\"agent\":"
                         "\"%s\",\"result\":%d}",
                         (unsigned long long)now + 2, id, agent, i);
            }
        } else if (i % 2 == 0) {
            cancel(s, id, now + 2);
        }
        if (i % 11 == 10) {
            char k[16];
            snprintf(k, sizeof k, "k%d", i - 4);
            cancel(s, k, now + 2); /* sometimes ended already: refused */
        }
    }
}

static void determinism(void **st)
{
    (void)st;
    flow_state *a = flow_state_new(), *b = flow_state_new();
    flow_state_set_retention(a, 7);
    flow_state_set_retention(b, 7);
    swarm(a, "w", 3);
    swarm(b, "w", 3);
    swarm(a, "p", 0);
    swarm(b, "p", 0);
    workload(a, 0, 120);
    workload(b, 0, 120);
    assert_int_equal(apply_on(a, NULL, "{\"cmd\":\"tick\",\"now\":100000}"), 0);
    assert_int_equal(apply_on(b, NULL, "{\"cmd\":\"tick\",\"now\":100000}"), 0);
    assert_int_equal(flow_state_finished_count(a), 7);
    char *x = dump(a), *y = dump(b);
    assert_string_equal(x, y); /* same tasks kept, same everything */
    free(x);
    free(y);
    /* the kept ended tasks are the last 7 to end (listed via the views) */
    json_t *la = flow_state_task_list(a, NULL, -1, 0), *lb = flow_state_task_list(b, NULL, -1, 0);
    assert_true(json_equal(la, lb));
    json_decref(la);
    json_decref(lb);
    /* another retention gives another state: the value matters */
    flow_state *c = flow_state_new();
    flow_state_set_retention(c, 8);
    swarm(c, "w", 3);
    swarm(c, "p", 0);
    workload(c, 0, 120);
    assert_int_equal(apply_on(c, NULL, "{\"cmd\":\"tick\",\"now\":100000}"), 0);
    assert_int_equal(flow_state_finished_count(c), 8);
    flow_state_free(a);
    flow_state_free(b);
    flow_state_free(c);
}

static void snapshot_after_eviction(void **st)
{
    (void)st;
    flow_state *s = flow_state_new();
    flow_state_set_retention(s, 5);
    swarm(s, "w", 2);
    swarm(s, "p", 0);
    workload(s, 0, 60);
    assert_int_equal(apply_on(s, NULL, "{\"cmd\":\"tick\",\"now\":5000}"), 0);
    json_t *snap = flow_state_snapshot(s);
    /* only kept tasks are in it, and the retention */
    size_t ntasks = json_array_size(json_object_get(snap, "tasks")), ended = 0;
    for (size_t i = 0; i < ntasks; i++) {
        const char *state = json_string_value(
            json_object_get(json_array_get(json_object_get(snap, "tasks"), i), "state"));
        ended += strcmp(state, "completed") == 0 || strcmp(state, "failed") == 0 ||
                 strcmp(state, "cancelled") == 0;
    }
    assert_int_equal(ended, 5);
    assert_int_equal(json_integer_value(json_object_get(snap, "task_retention")), 5);
    char err[256];
    flow_state *r = flow_state_restore(snap, err, sizeof err);
    assert_non_null(r);
    assert_int_equal(flow_state_retention(r), 5);
    assert_int_equal(flow_state_finished_count(r), 5);
    char *x = dump(s), *y = dump(r);
    assert_string_equal(x, y);
    free(x);
    free(y);
    /* both go on alike: the restored state evicts in the original's finish order */
    workload(s, 60, 100);
    workload(r, 60, 100);
    assert_int_equal(apply_on(s, NULL, "{\"cmd\":\"tick\",\"now\":90000}"), 0);
    assert_int_equal(apply_on(r, NULL, "{\"cmd\":\"tick\",\"now\":90000}"), 0);
    x = dump(s);
    y = dump(r);
    assert_string_equal(x, y);
    free(x);
    free(y);
    flow_state_free(r);
    /* a snapshot whose finish order is inconsistent is refused */
    json_t *tasks = json_object_get(snap, "tasks");
    json_t *first = NULL, *second = NULL;
    for (size_t i = 0; i < json_array_size(tasks); i++) {
        json_t *t = json_array_get(tasks, i);
        if (json_object_get(t, "fin") != NULL) {
            if (first == NULL) {
                first = t;
            } else if (second == NULL) {
                second = t;
            }
        }
    }
    assert_non_null(second);
    json_t *bad = json_deep_copy(snap);
    json_t *bt = json_object_get(bad, "tasks");
    for (size_t i = 0; i < json_array_size(bt); i++) { /* every ended task gets one fin */
        if (json_object_get(json_array_get(bt, i), "fin") != NULL) {
            json_object_set_new(json_array_get(bt, i), "fin", json_integer(1));
        }
    }
    assert_null(flow_state_restore(bad, err, sizeof err));
    assert_non_null(strstr(err, "finish order"));
    json_decref(bad);
    bad = json_deep_copy(snap);
    json_object_set_new(bad, "fin_seq", json_integer(1)); /* below the tasks' fin */
    assert_null(flow_state_restore(bad, err, sizeof err));
    json_decref(bad);
    /* a snapshot from before retention (no fin, fin_seq, task_retention) still restores:
     * ended tasks get their submission order, the retention is the default */
    bad = json_deep_copy(snap);
    json_object_del(bad, "fin_seq");
    json_object_del(bad, "task_retention");
    bt = json_object_get(bad, "tasks");
    for (size_t i = 0; i < json_array_size(bt); i++) {
        json_object_del(json_array_get(bt, i), "fin");
    }
    r = flow_state_restore(bad, err, sizeof err);
    assert_non_null(r);
    assert_int_equal(flow_state_retention(r), FLOW_TASK_RETENTION_DEFAULT);
    assert_int_equal(flow_state_finished_count(r), 5);
    flow_state_set_retention(r, 1);
    assert_int_equal(apply_on(r, NULL, "{\"cmd\":\"tick\",\"now\":90001}"), 0);
    assert_int_equal(flow_state_finished_count(r), 1);
    /* the one kept is the last ended task in submission order */
    const json_t *last = NULL;
    for (size_t i = 0; i < json_array_size(bt); i++) {
        const char *state = json_string_value(json_object_get(json_array_get(bt, i), "state"));
        if (strcmp(state, "completed") == 0 || strcmp(state, "failed") == 0 ||
            strcmp(state, "cancelled") == 0) {
            last = json_array_get(bt, i);
        }
    }
    assert_true(kept(r, json_string_value(json_object_get(last, "id"))));
    flow_state_free(r);
    json_decref(bad);
    json_decref(snap);
    flow_state_free(s);
}

/* Destroying a swarm drops its ended tasks from the retention count too. */
static void destroy_keeps_count_right(void **st)
{
    (void)st;
    flow_state *s = flow_state_new();
    flow_state_set_retention(s, 4);
    swarm(s, "a", 0);
    swarm(s, "b", 0);
    assert_int_equal(submit(s, "a", "a1", 1, NULL), 0);
    assert_int_equal(submit(s, "a", "a2", 1, NULL), 0);
    assert_int_equal(submit(s, "b", "b1", 1, NULL), 0);
    assert_int_equal(submit(s, "b", "b2", 1, NULL), 0);
    assert_int_equal(submit(s, "b", "b3", 1, NULL), 0);
    assert_int_equal(cancel(s, "a1", 2), 0);
    assert_int_equal(cancel(s, "b1", 3), 0);
    assert_int_equal(apply_on(s, NULL, "{\"cmd\":\"swarm_destroy\",\"now\":4,\"swarm\":\"a\"}"), 0);
    assert_int_equal(flow_state_finished_count(s), 1); /* b1 */
    assert_int_equal(cancel(s, "b2", 5), 0);
    assert_int_equal(cancel(s, "b3", 6), 0);
    assert_int_equal(apply_on(s, NULL, "{\"cmd\":\"tick\",\"now\":7}"), 0);
    assert_int_equal(flow_state_finished_count(s), 3);
    assert_true(kept(s, "b1") && kept(s, "b2") && kept(s, "b3"));
    flow_state_free(s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(default_and_zero),
        cmocka_unit_test(evicts_oldest_finished),
        cmocka_unit_test(same_command_kept_until_next),
        cmocka_unit_test(determinism),
        cmocka_unit_test(snapshot_after_eviction),
        cmocka_unit_test(destroy_keeps_count_right),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
