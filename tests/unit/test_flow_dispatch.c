/* tests/unit/test_flow_dispatch.c — the dispatch latency (the metrics observer's histogram,
 * flow_metrics() "observer" and /metrics) on the virtual clock: it runs from the task_submit
 * request entering the flow to the task's first assignment, so a task that waits for a busy
 * agent counts its wait; a task cancelled while it waits is never observed; a task that was
 * already assigned is observed once, not again when it is requeued. */
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

/* The observer's histogram: count, sum (s), and the cumulative count at bound `le`. */
typedef struct hist {
    json_int_t count;
    double sum;
    json_t *buckets;
    json_t *all;
} hist;

static hist hist_read(void)
{
    json_t *m = NULL;
    ok(flow_metrics(RT, &m), m);
    json_t *d = json_object_get(json_object_get(m, "observer"), "dispatch_latency_seconds");
    assert_non_null(d);
    hist h = {json_integer_value(json_object_get(d, "count")),
              json_number_value(json_object_get(d, "sum")), json_object_get(d, "buckets"), m};
    return h;
}

static json_int_t hist_le(const hist *h, double le)
{
    size_t i;
    json_t *b;
    json_array_foreach(h->buckets, i, b)
    {
        const json_t *bound = json_object_get(b, "le");
        if (json_is_number(bound) && json_number_value(bound) > le - 1e-12 &&
            json_number_value(bound) < le + 1e-12) {
            return json_integer_value(json_object_get(b, "count"));
        }
    }
    fail_msg("no bucket le=%g", le);
    return -1;
}

/* A task submitted while the only agent is busy, the agent freed 300 ms later: its dispatch
 * latency is those 300 ms (the first task's is 0 on the virtual clock: it was assigned in the
 * same apply that accepted it). Measured from the event arrivals, as before, it was ~0. */
static void waiting_task_counts_its_wait(void **st)
{
    (void)st;
    one_worker_swarm("w");
    char *busy = submit("w", "{\"input\":{\"op\":\"sleep\",\"ms\":3600000}}");
    assert_string_equal(state_of(busy), "running");
    char *queued = submit("w", "{\"input\":{\"n\":1}}");
    assert_string_equal(state_of(queued), "pending");
    hist h = hist_read();
    assert_int_equal(h.count, 1); /* only the first task was assigned */
    assert_true(h.sum < 1e-9);
    json_decref(h.all);

    advance(300);
    assert_string_equal(state_of(queued), "pending");
    json_t *out = NULL;
    ok(flow_task_cancel(RT, busy, &out), out); /* the agent is free: the waiting task goes */
    json_decref(out);
    json_t *r = NULL;
    ok(flow_task_result(RT, queued, 10000, &r), r);
    assert_string_equal(sget(r, "state"), "completed");
    json_decref(r);

    h = hist_read();
    assert_int_equal(h.count, 2);
    assert_true(h.sum >= 0.300 - 1e-9);
    assert_true(h.sum <= 0.300 + 1e-9);
    assert_int_equal(hist_le(&h, 0.0001), 1); /* the first: 0 */
    assert_int_equal(hist_le(&h, 0.25), 1);
    assert_int_equal(hist_le(&h, 0.5), 2); /* the second: 0.3 s */
    json_decref(h.all);
    /* /metrics shows the same histogram */
    char *text = flow_metrics_prometheus(RT);
    assert_non_null(text);
    assert_non_null(strstr(text, "macula_flow_dispatch_latency_seconds_bucket{le=\"0.25\"} 1\n"));
    assert_non_null(strstr(text, "macula_flow_dispatch_latency_seconds_bucket{le=\"0.5\"} 2\n"));
    assert_non_null(strstr(text, "macula_flow_dispatch_latency_seconds_count 2\n"));
    free(text);
    free(busy);
    free(queued);
}

/* A task cancelled while it waits is never observed; one submitted later is measured from its
 * own submission, not from an earlier task's; a requeued task (its agent killed) is not
 * observed a second time. */
static void only_first_assignments_from_their_own_submit(void **st)
{
    (void)st;
    one_worker_swarm("c");
    char *busy = submit("c", "{\"input\":{\"op\":\"sleep\",\"ms\":3600000}}");
    char *gone = submit("c", "{\"input\":{\"n\":1}}");
    advance(1000);
    json_t *out = NULL;
    ok(flow_task_cancel(RT, gone, &out), out);
    assert_string_equal(sget(out, "state"), "cancelled");
    json_decref(out);
    advance(400);
    char *later = submit("c", "{\"input\":{\"n\":2}}"); /* waits 100 ms from here */
    advance(100);
    ok(flow_task_cancel(RT, busy, &out), out);
    json_decref(out);
    ok(flow_task_result(RT, later, 10000, &out), out);
    assert_string_equal(sget(out, "state"), "completed");
    json_decref(out);
    hist h = hist_read();
    assert_int_equal(h.count, 2); /* busy (0) and later (0.1 s); gone never */
    assert_true(h.sum >= 0.100 - 1e-9 && h.sum <= 0.100 + 1e-9);
    assert_int_equal(hist_le(&h, 0.05), 1);
    assert_int_equal(hist_le(&h, 0.1), 2);
    json_decref(h.all);

    /* a running task whose agent is killed is requeued and assigned again: no new sample */
    char *slow = submit("c", "{\"input\":{\"op\":\"sleep\",\"ms\":3600000},\"max_retries\":3}");
    assert_string_equal(state_of(slow), "running");
    advance(50);
    kill_agent_until_rerun(slow);
    ok(flow_task_status(RT, slow, &out), out);
    assert_int_equal(json_integer_value(json_object_get(out, "retries")), 1);
    json_decref(out);
    h = hist_read();
    assert_int_equal(h.count, 3); /* slow's first assignment only */
    assert_int_equal(hist_le(&h, 0.0001), 2);
    json_decref(h.all);
    free(busy);
    free(gone);
    free(later);
    free(slow);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(waiting_task_counts_its_wait, up, down),
        cmocka_unit_test_setup_teardown(only_first_assignments_from_their_own_submit, up, down),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
