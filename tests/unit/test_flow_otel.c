/* tests/unit/test_flow_otel.c — the tracer's task spans (the "traces" request: the ring of
 * finished spans) on the virtual clock, where span times are the virtual ms × 10^6: a task
 * submitted on this node starts (root "flow.task" and its first "flow.queued") when its
 * task_submit request entered the node, so waiting for a busy agent and waiting before the
 * command is applied both count; a requeued task's next "flow.queued" starts at the requeue; an
 * accepted event without the node's stamp (a task submitted elsewhere, known by replication)
 * starts when it arrives. */
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

#include "flow/flow_int.h"
#include "macula/flow.h"
#include "macula/sup.h"

#define MS_NS UINT64_C(1000000) /* ns per ms */

static void cancel(const char *task)
{
    json_t *out = NULL;
    ok(flow_task_cancel(RT, task, &out), out);
    json_decref(out);
}

/* The virtual clock now, in the spans' ns. */
static uint64_t now_ns(void)
{
    return sup_rt_now(RT) * MS_NS;
}

static const char *span_attr(const json_t *span, const char *key)
{
    size_t i;
    json_t *a;
    json_array_foreach(json_object_get(span, "attributes"), i, a)
    {
        if (strcmp(sget(a, "key"), key) == 0) {
            const json_t *v = json_object_get(a, "value");
            const char *s = sget(v, "stringValue");
            return s ? s : sget(v, "intValue");
        }
    }
    return "";
}

typedef struct span_times {
    uint64_t start, end;
} span_times;

/* The finished span `name` of task (its attempt `attempt`), from the tracer's ring. */
static span_times span_of(const char *task, const char *name, int attempt)
{
    json_t *spans = NULL;
    ok(flow_request(RT, "traces", NULL, 0, &spans), spans);
    char att[16];
    snprintf(att, sizeof att, "%d", attempt);
    span_times t = {0, 0};
    int found = 0;
    size_t i;
    json_t *sp;
    json_array_foreach(spans, i, sp)
    {
        if (strcmp(span_attr(sp, "flow.task.id"), task) == 0 &&
            strcmp(sget(sp, "name"), name) == 0 &&
            strcmp(span_attr(sp, "flow.attempt"), att) == 0) {
            t.start = strtoull(sget(sp, "startTimeUnixNano"), NULL, 10);
            t.end = strtoull(sget(sp, "endTimeUnixNano"), NULL, 10);
            found++;
        }
    }
    json_decref(spans);
    if (found != 1) {
        fail_msg("%d spans %s (attempt %d) of %s", found, name, attempt, task);
    }
    return t;
}

/* A task submitted while the only agent is busy, the agent freed 300 ms later: its
 * "flow.queued" span starts at the submission and lasts those 300 ms, and the root starts with
 * it. (Stamped when the events arrived on the wall clock, as before, it lasted ~0.) */
static void queued_span_starts_at_submit(void **st)
{
    (void)st;
    advance(250); /* the submissions are not at 0 */
    one_worker_swarm("w");
    char *busy = submit("w", "{\"input\":{\"op\":\"sleep\",\"ms\":3600000}}");
    assert_string_equal(state_of(busy), "running");
    uint64_t submitted = now_ns();
    char *queued = submit("w", "{\"input\":{\"n\":1}}");
    assert_string_equal(state_of(queued), "pending");
    advance(300);
    assert_string_equal(state_of(queued), "pending");
    cancel(busy); /* the agent is free: the waiting task goes */
    json_t *r = NULL;
    ok(flow_task_result(RT, queued, 10000, &r), r);
    assert_string_equal(sget(r, "state"), "completed");
    json_decref(r);

    span_times q = span_of(queued, "flow.queued", 1);
    assert_true(q.start == submitted);
    assert_true(q.end - q.start >= 300 * MS_NS);
    assert_true(q.end == submitted + 300 * MS_NS); /* the virtual clock stood still since */
    span_times root = span_of(queued, "flow.task", 1);
    assert_true(root.start == submitted);
    assert_true(root.end >= q.end);
    /* the busy task was assigned in the apply that accepted it: queued for 0 */
    span_times b = span_of(busy, "flow.queued", 1);
    assert_true(b.start == submitted && b.end == submitted);
    free(busy);
    free(queued);
}

/* The stamp is taken where the request enters the node, not where the command is applied: a
 * task_submit command applied 200 ms after its request entered (a bare apply request carrying
 * the front door's stamp, as the task queue sends it, held up like a command waiting for its
 * Raft commit) with an idle agent is accepted and assigned in one apply, and its "flow.queued"
 * still lasts the 200 ms. (Started at the accepted event, it lasted 0.) */
static void queued_span_counts_wait_before_apply(void **st)
{
    (void)st;
    advance(1000);
    one_worker_swarm("i");
    uint64_t entered = now_ns();
    advance(200);
    static const char task[] = "0b7f6c1e-5d2a-4c3b-9a8e-000000000001";
    json_t *args =
        json_pack("{s:{s:s, s:i, s:s, s:s, s:{s:i}}, s:I}", "cmd", "cmd", "task_submit", "now", 0,
                  "swarm", "i", "task", task, "input", "n", 1, "entered_ns", (json_int_t)entered);
    json_t *out = NULL;
    ok(flow_request(RT, "apply", args, 0, &out), out);
    json_decref(out);
    json_decref(args);
    ok(flow_task_result(RT, task, 10000, &out), out);
    assert_string_equal(sget(out, "state"), "completed");
    json_decref(out);
    span_times q = span_of(task, "flow.queued", 1);
    assert_true(q.start == entered);
    assert_true(q.end - q.start >= 200 * MS_NS);
    assert_true(span_of(task, "flow.task", 1).start == entered);
    /* the dispatch latency histogram measures the same wait */
    json_t *m = NULL;
    ok(flow_metrics(RT, &m), m);
    const json_t *d = json_object_get(json_object_get(m, "observer"), "dispatch_latency_seconds");
    assert_true(json_number_value(json_object_get(d, "sum")) >= 0.200 - 1e-9);
    json_decref(m);
}

/* A running task whose agent is killed is requeued: its second "flow.queued" (attempt 2)
 * starts at the requeue, not at the submission; the first still starts at the submission. */
static void requeued_phase_starts_at_requeue(void **st)
{
    (void)st;
    advance(500);
    one_worker_swarm("c");
    uint64_t submitted = now_ns();
    char *slow = submit("c", "{\"input\":{\"op\":\"sleep\",\"ms\":3600000},\"max_retries\":3}");
    assert_string_equal(state_of(slow), "running");
    advance(50);
    uint64_t killed = now_ns();
    kill_agent_until_rerun(slow);
    span_times q1 = span_of(slow, "flow.queued", 1);
    assert_true(q1.start == submitted && q1.end == submitted);
    span_times run1 = span_of(slow, "flow.run", 1);
    assert_true(run1.end == killed);
    span_times q2 = span_of(slow, "flow.queued", 2);
    assert_true(q2.start == killed);
    assert_true(q2.end >= killed);
    cancel(slow);
    assert_true(span_of(slow, "flow.task", 2).start == submitted);
    free(slow);
}

/* The tracer fed the events directly: an accepted event without "entered_ns" (a task this node
 * only knows by replication) starts at the event's arrival; one with it starts at the stamp,
 * converted from the monotonic clock (here the same virtual clock). */
static void unstamped_task_starts_at_accepted_event(void **st)
{
    (void)st;
    sup_pid tracer = sup_whereis(RT, FLOW_N_OTEL);
    assert_false(sup_pid_is_null(tracer));
    advance(700);
    uint64_t stamp = now_ns();
    advance(40);
    uint64_t arrived = now_ns();
    char ev[256];
    snprintf(ev, sizeof ev, "{\"event\":\"task_accepted\",\"task\":\"r1\",\"swarm\":\"x\"}");
    assert_int_equal(sup_cast(RT, SUP_NOPID, tracer, FLOW_TAG_OBS, ev, strlen(ev)), 0);
    snprintf(ev, sizeof ev,
             "{\"event\":\"task_accepted\",\"task\":\"r2\",\"swarm\":\"x\",\"entered_ns\":%llu}",
             (unsigned long long)stamp);
    assert_int_equal(sup_cast(RT, SUP_NOPID, tracer, FLOW_TAG_OBS, ev, strlen(ev)), 0);
    advance(60);
    for (int k = 1; k <= 2; k++) {
        snprintf(ev, sizeof ev, "{\"event\":\"task_assigned\",\"task\":\"r%d\",\"agent\":\"a\"}",
                 k);
        assert_int_equal(sup_cast(RT, SUP_NOPID, tracer, FLOW_TAG_OBS, ev, strlen(ev)), 0);
        snprintf(ev, sizeof ev, "{\"event\":\"task_cancelled\",\"task\":\"r%d\"}", k);
        assert_int_equal(sup_cast(RT, SUP_NOPID, tracer, FLOW_TAG_OBS, ev, strlen(ev)), 0);
    }
    sup_rt_run(RT);
    span_times r1 = span_of("r1", "flow.queued", 1);
    assert_true(r1.start == arrived && r1.end == arrived + 60 * MS_NS);
    span_times r2 = span_of("r2", "flow.queued", 1);
    assert_true(r2.start == stamp && r2.end == r1.end);
    assert_true(span_of("r2", "flow.task", 1).start == stamp);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(queued_span_starts_at_submit, up, down),
        cmocka_unit_test_setup_teardown(queued_span_counts_wait_before_apply, up, down),
        cmocka_unit_test_setup_teardown(requeued_phase_starts_at_requeue, up, down),
        cmocka_unit_test_setup_teardown(unstamped_task_starts_at_accepted_event, up, down),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
