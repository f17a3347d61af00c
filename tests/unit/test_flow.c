/* tests/unit/test_flow.c — the flow actor tree through its API: agents that really execute
 * (builtin on a virtual clock, exec on a real libuv loop), crashes, retries, pools, the
 * breaker, a ring pipeline, errors, and a clean shutdown without leaks. */
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include <cmocka.h>

#include "macula/flow.h"
#include "macula/sup_supervisor.h"

static sup_rt *RT;
static sup_pid FLOW;
static uv_loop_t LOOP;
static bool REAL;

static int up_virtual(void **st)
{
    (void)st;
    setenv("MACULA_FLOW_CHAOS", "1", 1);
    REAL = false;
    RT = sup_rt_new_virtual();
    sup_reason why;
    assert_int_equal(flow_start(RT, SUP_NOPID, NULL, NULL, &FLOW, &why), 0);
    return 0;
}

static int up_real(void **st)
{
    (void)st;
    REAL = true;
    uv_loop_init(&LOOP);
    RT = sup_rt_new(&LOOP);
    sup_reason why;
    assert_int_equal(flow_start(RT, SUP_NOPID, NULL, NULL, &FLOW, &why), 0);
    return 0;
}

static int down(void **st)
{
    (void)st;
    sup_reason r = sup_reason_shutdown();
    assert_int_equal(sup_stop_sync(RT, FLOW, &r), 0);
    assert_int_equal(sup_rt_actor_count(RT), 0);
    sup_rt_free(RT);
    if (REAL) {
        /* killed programs are reaped and their handles closed */
        for (int i = 0; i < 1000 && uv_loop_alive(&LOOP); i++) {
            uv_run(&LOOP, UV_RUN_NOWAIT);
            uv_sleep(1);
        }
        assert_int_equal(uv_loop_close(&LOOP), 0);
    }
    return 0;
}

static json_t *ok(int rc, json_t *out)
{
    if (rc != 0) {
        char *t = json_dumps(out, 0);
        fail_msg("flow error %d: %s", rc, t ? t : "?");
    }
    return out;
}

static char *make_swarm(const char *spec)
{
    json_t *s = json_loads(spec, 0, NULL);
    assert_non_null(s);
    json_t *out = NULL;
    ok(flow_swarm_create(RT, s, &out), out);
    json_decref(s);
    char *id = strdup(json_string_value(json_object_get(out, "id")));
    json_decref(out);
    return id;
}

static char *submit(const char *swarm, const char *spec)
{
    json_t *s = json_loads(spec, 0, NULL);
    json_t *out = NULL;
    ok(flow_task_submit(RT, swarm, s, &out), out);
    json_decref(s);
    char *id = strdup(json_string_value(json_object_get(out, "id")));
    json_decref(out);
    return id;
}

static json_t *result(const char *task, uint64_t wait)
{
    json_t *out = NULL;
    int rc = flow_task_result(RT, task, wait, &out);
    return ok(rc, out);
}

static const char *sget(const json_t *o, const char *k)
{
    return json_string_value(json_object_get(o, k));
}

/* ---- the tree ------------------------------------------------------------------------------ */

static void tree_has_seed_names(void **st)
{
    (void)st;
    char *tree = sup_tree_json(RT, FLOW);
    static const char *const names[] = {
        "erlmcp_flow_sup",
        "erlmcp_flow_registry",
        "erlmcp_flow_consensus_sup",
        "erlmcp_flow_core_sup",
        "erlmcp_flow_swarm_sup",
        "erlmcp_flow_agent_sup",
        "erlmcp_flow_request_tracker",
        "erlmcp_flow_task_queue",
        "erlmcp_flow_load_balancer",
        "erlmcp_flow_observer_sup",
        "erlmcp_flow_otel_tracer",
        "erlmcp_flow_metrics",
        "erlmcp_flow_health",
        "erlmcp_flow_chaos",
        "erlmcp_flow_circuit_breaker",
    };
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        assert_non_null(strstr(tree, names[i]));
    }
    json_t *t = json_loads(tree, 0, NULL);
    assert_string_equal(sget(t, "strategy"), "one_for_all");
    assert_int_equal(json_integer_value(json_object_get(t, "intensity")), 3);
    json_t *kids = json_object_get(t, "children");
    assert_int_equal(json_array_size(kids), 3);
    json_t *cons = json_array_get(kids, 1);
    assert_string_equal(sget(cons, "type"), "supervisor");
    assert_int_equal(json_array_size(json_object_get(cons, "children")), 0);
    json_decref(t);
    free(tree);
    sup_counts c;
    assert_int_equal(sup_count_children_sync(RT, sup_whereis(RT, "erlmcp_flow_core_sup"), &c), 0);
    assert_int_equal(c.specs, 6);
    assert_int_equal(c.supervisors, 3);
}

/* ---- builtin agents ---------------------------------------------------------------------- */

static void thousand_echo_tasks(void **st)
{
    (void)st;
    char *sw = make_swarm("{\"topology\":\"star\",\"config\":{\"pool_min\":{\"worker\":5,"
                          "\"specialist\":0,\"scout\":0},\"lb\":\"least_conn\"}}");
    static char *ids[1000];
    char spec[128];
    for (int i = 0; i < 1000; i++) {
        snprintf(spec, sizeof spec, "{\"input\":{\"op\":\"echo\",\"i\":%d},\"priority\":\"%s\"}", i,
                 i % 3 == 0   ? "high"
                 : i % 3 == 1 ? "normal"
                              : "low");
        ids[i] = submit(sw, spec);
    }
    for (int i = 0; i < 1000; i++) {
        json_t *r = result(ids[i], 60000);
        assert_string_equal(sget(r, "state"), "completed");
        assert_int_equal(json_integer_value(json_object_get(json_object_get(r, "result"), "i")), i);
        json_decref(r);
        free(ids[i]);
    }
    json_t *m = NULL;
    ok(flow_metrics(RT, &m), m);
    assert_int_equal(json_integer_value(json_object_get(json_object_get(m, "tasks"), "completed")),
                     1000);
    json_t *obs = json_object_get(m, "observer");
    assert_int_equal(
        json_integer_value(json_object_get(json_object_get(obs, "events"), "task_completed")),
        1000);
    json_decref(m);
    /* the pool kept its minimum of five workers, all idle now */
    json_t *agents = NULL;
    ok(flow_agent_list(RT, sw, &agents), agents);
    assert_int_equal(json_array_size(agents), 5);
    json_decref(agents);
    free(sw);
}

static void crash_requeues_and_replaces(void **st)
{
    (void)st;
    char *sw = make_swarm("{\"topology\":\"star\",\"config\":{\"pool_min\":{\"worker\":2,"
                          "\"specialist\":0,\"scout\":0},\"max_retries\":2}}");
    json_t *before = NULL;
    ok(flow_agent_list(RT, sw, &before), before);
    assert_int_equal(json_array_size(before), 2);
    char *t = submit(sw, "{\"input\":{\"op\":\"crash\"}}");
    json_t *r = result(t, 60000);
    /* every run crashed its agent: 1 + 2 retries, then failed with the reasons */
    assert_string_equal(sget(r, "state"), "failed");
    json_t *reasons = json_object_get(r, "reasons");
    assert_int_equal(json_array_size(reasons), 3);
    assert_non_null(strstr(json_string_value(json_array_get(reasons, 0)), "crashed"));
    assert_non_null(strstr(json_string_value(json_array_get(reasons, 0)), "crash requested"));
    assert_int_equal(json_integer_value(json_object_get(r, "retries")), 3);
    json_decref(r);
    /* replacements keep the pool at its minimum; the crashed ones are gone */
    json_t *after = NULL;
    ok(flow_agent_list(RT, sw, &after), after);
    assert_int_equal(json_array_size(after), 2);
    json_decref(after);
    json_decref(before);
    /* a task on a killed agent (chaos) is requeued and completes elsewhere, once */
    char *s = submit(sw, "{\"input\":{\"op\":\"sleep\",\"ms\":500}}");
    json_t *status = NULL;
    ok(flow_task_status(RT, s, &status), status);
    const char *victim = sget(status, "agent");
    assert_non_null(victim);
    json_t *args = json_pack("{s:s}", "agent", victim), *out = NULL;
    ok(flow_request(RT, "chaos_kill", args, 0, &out), out);
    json_decref(out);
    json_decref(args);
    json_decref(status);
    r = result(s, 60000);
    assert_string_equal(sget(r, "state"), "completed");
    assert_int_equal(json_integer_value(json_object_get(r, "retries")), 1);
    json_decref(r);
    free(s);
    free(t);
    free(sw);
}

static void breaker_opens_and_recovers(void **st)
{
    (void)st;
    char *sw = make_swarm("{\"topology\":\"star\",\"config\":{\"pool_min\":{\"worker\":1,"
                          "\"specialist\":0,\"scout\":0},\"idle_timeout_ms\":86400000}}");
    for (int i = 0; i < 5; i++) {
        char *t = submit(sw, "{\"input\":{\"op\":\"fail\",\"error\":\"bad\"}}");
        json_t *r = result(t, 10000);
        assert_string_equal(sget(r, "state"), "failed");
        assert_string_equal(sget(r, "error"), "bad");
        json_decref(r);
        free(t);
    }
    json_t *s = NULL;
    ok(flow_swarm_status(RT, sw, &s), s);
    assert_string_equal(sget(json_object_get(s, "breaker"), "state"), "open");
    json_decref(s);
    json_t *h = NULL;
    ok(flow_request(RT, "health", NULL, 0, &h), h);
    assert_string_equal(sget(json_object_get(json_object_get(h, "swarms"), sw), "status"),
                        "paused");
    json_decref(h);
    uint64_t t0 = sup_rt_now(RT);
    char *t = submit(sw, "{\"input\":{\"op\":\"echo\"}}");
    json_t *r = NULL;
    assert_int_equal(flow_task_result(RT, t, 1000, &r), FLOW_ETIMEOUT); /* paused */
    json_decref(r);
    /* 60 s later the breaker lets one trial through, which closes it */
    r = result(t, 120000);
    assert_string_equal(sget(r, "state"), "completed");
    assert_true(sup_rt_now(RT) >= t0 + 60000);
    json_decref(r);
    json_t *b = NULL;
    ok(flow_request(RT, "breakers", NULL, 0, &b), b);
    json_t *tr = json_object_get(json_object_get(b, sw), "transitions");
    assert_int_equal(json_array_size(tr), 3);
    assert_string_equal(sget(json_array_get(tr, 2), "state"), "closed");
    json_decref(b);
    free(t);
    free(sw);
}

static void ring_pipeline_runs_every_stage(void **st)
{
    (void)st;
    char *sw = make_swarm("{\"topology\":\"ring\",\"config\":{\"pool_min\":{\"worker\":3,"
                          "\"specialist\":0,\"scout\":0},\"executor\":{\"type\":\"builtin\","
                          "\"op\":\"append\"}}}");
    json_t *agents = NULL;
    ok(flow_agent_list(RT, sw, &agents), agents);
    assert_int_equal(json_array_size(agents), 3);
    char *t = submit(sw, "{\"input\":{\"trail\":[]}}");
    json_t *r = result(t, 10000);
    json_t *trail = json_object_get(json_object_get(r, "result"), "trail");
    assert_int_equal(json_array_size(trail), 3);
    for (size_t i = 0; i < 3; i++) {
        assert_string_equal(json_string_value(json_array_get(trail, i)),
                            sget(json_array_get(agents, i), "id"));
    }
    json_decref(r);
    json_decref(agents);
    free(t);
    free(sw);
}

static void api_errors_and_limits(void **st)
{
    (void)st;
    json_t *out = NULL;
    json_t *spec = json_pack("{s:{s:i}}", "input", "x", 1);
    assert_int_equal(flow_task_submit(RT, "nope", spec, &out), FLOW_ENOTFOUND);
    assert_string_equal(sget(out, "error"), "not_found");
    json_decref(out);
    char *sw = make_swarm("{\"id\":\"lim\",\"topology\":\"mesh\",\"config\":{\"pool_min\":{"
                          "\"worker\":0,\"specialist\":0,\"scout\":0},\"queue_limit\":2}}");
    assert_string_equal(sw, "lim");
    for (int i = 0; i < 2; i++) {
        assert_int_equal(flow_task_submit(RT, sw, spec, &out), 0);
        json_decref(out);
    }
    assert_int_equal(flow_task_submit(RT, sw, spec, &out), FLOW_EQUEUE_FULL);
    assert_string_equal(sget(out, "error"), "queue_full");
    json_decref(out);
    json_decref(spec);
    assert_int_equal(flow_request(RT, "frobnicate", NULL, 0, &out), FLOW_EINVAL);
    json_decref(out);
    json_t *a = json_pack("{s:s, s:{s:s}}", "role", "worker", "executor", "type", "mcp");
    assert_int_equal(flow_agent_spawn(RT, sw, a, &out), FLOW_EINVAL);
    assert_non_null(strstr(sget(out, "message"), "not built"));
    json_decref(out);
    json_decref(a);
    /* an explicit agent takes the queued tasks (mesh: it pulls them) */
    a = json_pack("{s:s, s:i}", "role", "scout", "capacity", 2);
    ok(flow_agent_spawn(RT, sw, a, &out), out);
    char *agent = strdup(sget(out, "id"));
    json_decref(out);
    json_decref(a);
    json_t *list = NULL;
    ok(flow_task_list(RT, sw, "completed", &list), list);
    assert_int_equal(json_array_size(list), 2);
    json_decref(list);
    ok(flow_agent_stop(RT, agent, &out), out);
    json_decref(out);
    ok(flow_agent_list(RT, sw, &list), list);
    assert_int_equal(json_array_size(list), 0); /* drained and retired */
    json_decref(list);
    ok(flow_swarm_destroy(RT, sw, &out), out);
    json_decref(out);
    assert_int_equal(flow_swarm_status(RT, sw, &out), FLOW_ENOTFOUND);
    json_decref(out);
    ok(flow_swarm_list(RT, &list), list);
    assert_int_equal(json_array_size(list), 0);
    json_decref(list);
    free(agent);
    free(sw);
}

static void destroy_stops_agents(void **st)
{
    (void)st;
    char *sw = make_swarm("{\"topology\":\"hierarchical\",\"config\":{\"pool_min\":{"
                          "\"worker\":3,\"specialist\":2,\"scout\":1}}}");
    sup_counts c;
    assert_int_equal(sup_count_children_sync(RT, sup_whereis(RT, "erlmcp_flow_agent_sup"), &c), 0);
    assert_int_equal(c.active, 6);
    char *t = submit(sw, "{\"input\":{\"op\":\"sleep\",\"ms\":100000}}");
    json_t *out = NULL;
    ok(flow_swarm_destroy(RT, sw, &out), out);
    json_decref(out);
    sup_rt_run(RT);
    assert_int_equal(sup_count_children_sync(RT, sup_whereis(RT, "erlmcp_flow_agent_sup"), &c), 0);
    assert_int_equal(c.active, 0);
    assert_int_equal(sup_count_children_sync(RT, sup_whereis(RT, "erlmcp_flow_swarm_sup"), &c), 0);
    assert_int_equal(c.active, 0);
    free(t);
    free(sw);
}

/* ---- exec agents (real loop) ---------------------------------------------------------------- */

static char *exec_swarm(const char *argv_json, const char *extra)
{
    char spec[512];
    snprintf(spec, sizeof spec,
             "{\"topology\":\"star\",\"config\":{\"pool_min\":{\"worker\":1,\"specialist\":0,"
             "\"scout\":0},\"executor\":{\"type\":\"exec\",\"argv\":%s%s}}}",
             argv_json, extra);
    return make_swarm(spec);
}

static void exec_cat_and_exit_status(void **st)
{
    (void)st;
    char *cat = exec_swarm("[\"/bin/cat\"]", "");
    char *t = submit(cat, "{\"input\":{\"hello\":[1,2,3]}}");
    json_t *r = result(t, 20000);
    assert_string_equal(sget(r, "state"), "completed");
    json_t *res = json_object_get(r, "result");
    assert_int_equal(json_integer_value(json_array_get(json_object_get(res, "hello"), 2)), 3);
    json_decref(r);
    free(t);
    char *three = exec_swarm("[\"/bin/sh\",\"-c\",\"exit 3\"]", "");
    t = submit(three, "{\"input\":1}");
    r = result(t, 20000);
    assert_string_equal(sget(r, "state"), "failed");
    assert_string_equal(sget(r, "error"), "exit_status 3");
    json_decref(r);
    free(t);
    /* a string result: stdout that is not JSON */
    char *echo = exec_swarm("[\"/bin/sh\",\"-c\",\"printf hello\"]", "");
    t = submit(echo, "{\"input\":null}");
    r = result(t, 20000);
    assert_string_equal(sget(r, "result"), "hello");
    json_decref(r);
    free(t);
    free(cat);
    free(three);
    free(echo);
}

static void exec_limits(void **st)
{
    (void)st;
    char *hang = exec_swarm("[\"/bin/sh\",\"-c\",\"exec sleep 30\"]", ",\"timeout_ms\":200");
    char *t = submit(hang, "{\"input\":1}");
    json_t *r = result(t, 20000);
    assert_string_equal(sget(r, "state"), "failed");
    assert_string_equal(sget(r, "error"), "timeout after 200 ms");
    json_decref(r);
    free(t);
    char *flood = exec_swarm("[\"/bin/sh\",\"-c\",\"exec yes\"]", ",\"max_output\":4096");
    t = submit(flood, "{\"input\":1}");
    r = result(t, 20000);
    assert_string_equal(sget(r, "state"), "failed");
    assert_non_null(strstr(sget(r, "error"), "output_limit"));
    json_decref(r);
    free(t);
    char *missing = exec_swarm("[\"/nonexistent/prog\"]", "");
    t = submit(missing, "{\"input\":1}");
    r = result(t, 20000);
    assert_string_equal(sget(r, "state"), "failed");
    assert_non_null(strstr(sget(r, "error"), "spawn"));
    json_decref(r);
    free(t);
    /* cancelling a running exec task kills its process */
    char *t2 = submit(hang, "{\"input\":1}");
    json_t *out = NULL;
    ok(flow_task_cancel(RT, t2, &out), out);
    assert_string_equal(sget(out, "state"), "cancelled");
    json_decref(out);
    free(t2);
    free(hang);
    free(flood);
    free(missing);
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN); /* as the node does: a program may exit without reading stdin */
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(tree_has_seed_names, up_virtual, down),
        cmocka_unit_test_setup_teardown(thousand_echo_tasks, up_virtual, down),
        cmocka_unit_test_setup_teardown(crash_requeues_and_replaces, up_virtual, down),
        cmocka_unit_test_setup_teardown(breaker_opens_and_recovers, up_virtual, down),
        cmocka_unit_test_setup_teardown(ring_pipeline_runs_every_stage, up_virtual, down),
        cmocka_unit_test_setup_teardown(api_errors_and_limits, up_virtual, down),
        cmocka_unit_test_setup_teardown(destroy_stops_agents, up_virtual, down),
        cmocka_unit_test_setup_teardown(exec_cat_and_exit_status, up_real, down),
        cmocka_unit_test_setup_teardown(exec_limits, up_real, down),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
