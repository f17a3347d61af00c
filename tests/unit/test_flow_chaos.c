/* tests/unit/test_flow_chaos.c — issue 6's chaos check on the virtual clock: 1,000 tasks while
 * agents are killed at random; afterwards every task has ended (completed with its own result,
 * or failed with its reasons), none is lost, none completed twice, and the pools are whole. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <jansson.h>

#include "flow_fixture.h"

#include "macula/flow.h"
#include "macula/sup.h"
#include "macula/sup_supervisor.h"

static uint64_t rng = 0x2545f4914f6cdd1du;
static uint64_t next_rand(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng;
}

/* Kills one busy agent of the swarm, if any; returns whether it did. */
static bool kill_a_busy_agent(const char *swarm)
{
    json_t *agents = NULL;
    ok(flow_agent_list(RT, swarm, &agents), agents);
    size_t n = json_array_size(agents), busy = 0;
    for (size_t i = 0; i < n; i++) {
        busy += strcmp(json_string_value(json_object_get(json_array_get(agents, i), "state")),
                       "busy") == 0;
    }
    bool killed = false;
    if (busy > 0) {
        size_t pick = (size_t)(next_rand() % busy);
        for (size_t i = 0; i < n && !killed; i++) {
            json_t *a = json_array_get(agents, i);
            if (strcmp(json_string_value(json_object_get(a, "state")), "busy") == 0 &&
                pick-- == 0) {
                json_t *args = json_pack("{s:O}", "agent", json_object_get(a, "id"));
                json_t *out = NULL;
                ok(flow_request(RT, "chaos_kill", args, 0, &out), out);
                json_decref(out);
                json_decref(args);
                killed = true;
            }
        }
    }
    json_decref(agents);
    return killed;
}

static json_int_t count_of(const json_t *m, const char *group, const char *key)
{
    return json_integer_value(json_object_get(json_object_get(m, group), key));
}

static void thousand_tasks_under_random_kills(void **st)
{
    (void)st;
    enum { N = 1000 };
    json_t *spec = json_loads("{\"topology\":\"star\",\"config\":{\"pool_min\":{\"worker\":8,"
                              "\"specialist\":0,\"scout\":0},\"max_retries\":1}}",
                              0, NULL);
    json_t *sw = NULL;
    ok(flow_swarm_create(RT, spec, &sw), sw);
    json_decref(spec);
    const char *swarm = json_string_value(json_object_get(sw, "id"));
    static char *ids[N];
    for (int i = 0; i < N; i++) {
        char in[128];
        snprintf(in, sizeof in, "{\"input\":{\"op\":\"sleep\",\"ms\":%d,\"i\":%d}}",
                 (int)(5 + next_rand() % 40), i);
        json_t *t = json_loads(in, 0, NULL), *out = NULL;
        ok(flow_task_submit(RT, swarm, t, &out), out);
        ids[i] = strdup(json_string_value(json_object_get(out, "id")));
        json_decref(out);
        json_decref(t);
    }
    /* Run the virtual clock deadline by deadline, killing a random busy agent now and then,
     * until every task has ended. */
    int kills = 0;
    for (int step = 0;; step++) {
        if (step % 3 == 0 && kill_a_busy_agent(swarm)) {
            kills++;
        }
        {
            json_t *m = NULL;
            ok(flow_metrics(RT, &m), m);
            json_int_t done = count_of(m, "tasks", "completed") + count_of(m, "tasks", "failed");
            json_decref(m);
            if (done == N) {
                break;
            }
        }
        sup_rt_run(RT); /* deliver what is queued before looking for the next timer */
        uint64_t next = sup_rt_next_deadline(RT);
        assert_true(next != UINT64_MAX); /* work remains, so something must be scheduled */
        sup_rt_advance(RT, next);
    }
    assert_true(kills >= 100);

    /* every task ended once: completed with its own input echoed, or failed with reasons */
    int completed = 0, failed = 0;
    for (int i = 0; i < N; i++) {
        json_t *r = NULL;
        ok(flow_task_status(RT, ids[i], &r), r);
        const char *state = json_string_value(json_object_get(r, "state"));
        if (strcmp(state, "completed") == 0) {
            completed++;
            json_t *res = json_object_get(r, "result");
            assert_int_equal(json_integer_value(json_object_get(res, "i")), i);
        } else {
            assert_string_equal(state, "failed");
            json_t *reasons = json_object_get(r, "reasons");
            /* retried once (max_retries 1): both runs' agents were killed */
            assert_int_equal(json_array_size(reasons), 2);
            for (size_t k = 0; k < 2; k++) {
                assert_non_null(
                    strstr(json_string_value(json_array_get(reasons, k)), "crashed: chaos_kill"));
            }
            failed++;
        }
        json_decref(r);
        free(ids[i]);
    }
    assert_int_equal(completed + failed, N);
    assert_true(completed > failed);
    fprintf(stderr, "%d kills: %d completed, %d failed\n", kills, completed, failed);
    /* no task completed twice: the observer saw exactly one completion per completed task */
    json_t *m = NULL;
    ok(flow_metrics(RT, &m), m);
    json_t *events = json_object_get(json_object_get(m, "observer"), "events");
    assert_int_equal(json_integer_value(json_object_get(events, "task_completed")), completed);
    json_decref(m);
    /* the pool is back at its minimum after every replacement */
    json_t *agents = NULL;
    ok(flow_agent_list(RT, swarm, &agents), agents);
    assert_int_equal(json_array_size(agents), 8);
    json_decref(agents);
    json_decref(sw);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(thousand_tasks_under_random_kills, up, down),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
