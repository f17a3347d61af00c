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
#include <sys/wait.h>
#include <unistd.h>
#include <uv.h>

#include <cmocka.h>

#include "flow/observer/http_post.h"
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
    assert_non_null(strstr(sget(out, "message"), "needs a \"tool\""));
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
    /* a program that crashes (SIGSEGV): the task fails with the signal, the agent lives on */
    char *segv = exec_swarm("[\"/bin/sh\",\"-c\",\"kill -SEGV $$\"]", "");
    t = submit(segv, "{\"input\":1}");
    r = result(t, 20000);
    assert_string_equal(sget(r, "state"), "failed");
    assert_string_equal(sget(r, "error"), "signal 11");
    json_decref(r);
    free(t);
    free(segv);
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

/* ---- observer output: Prometheus text, health, OTLP spans ----------------------------------- */

/* /metrics text after real work: every family is there with per-swarm series, and promtool
 * (where installed) accepts it. */
static void prometheus_and_health(void **st)
{
    (void)st;
    char *sw = make_swarm("{\"id\":\"pm\",\"topology\":\"star\",\"config\":{\"pool_min\":"
                          "{\"worker\":2,\"specialist\":0,\"scout\":0},\"cb_threshold\":2}}");
    for (int i = 0; i < 3; i++) {
        char *t = submit(sw, i == 2 ? "{\"input\":{\"op\":\"fail\"}}" : "{\"input\":{\"n\":1}}");
        json_decref(result(t, 10000));
        free(t);
    }
    char *text = flow_metrics_prometheus(RT);
    assert_non_null(text);
    static const char *const want[] = {
        "# TYPE macula_flow_tasks gauge\n",
        "macula_flow_tasks{swarm=\"pm\",state=\"completed\"} 2\n",
        "macula_flow_tasks{swarm=\"pm\",state=\"failed\"} 1\n",
        "macula_flow_queue_depth{swarm=\"pm\",priority=\"high\"} 0\n",
        "macula_flow_agents{swarm=\"pm\",state=\"idle\"} 2\n",
        "macula_flow_breaker_state{swarm=\"pm\",state=\"closed\"} 1\n",
        "macula_flow_breaker_state{swarm=\"pm\",state=\"open\"} 0\n",
        "# TYPE macula_flow_tasks_completed_total counter\n",
        "macula_flow_tasks_completed_total{swarm=\"pm\"} 2\n",
        "macula_flow_tasks_failed_total{swarm=\"pm\"} 1\n",
        "# TYPE macula_flow_dispatch_latency_seconds histogram\n",
        "macula_flow_dispatch_latency_seconds_bucket{le=\"+Inf\"} 3\n",
        "macula_flow_dispatch_latency_seconds_count 3\n",
        "macula_flow_swarms 1\n",
    };
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
        if (strstr(text, want[i]) == NULL) {
            fail_msg("missing %s in\n%s", want[i], text);
        }
    }
    if (system("command -v promtool >/dev/null 2>&1") == 0) {
        char path[] = "/tmp/macula-flow-metrics-XXXXXX";
        int fd = mkstemp(path);
        assert_true(fd >= 0);
        assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
        close(fd);
        char cmd[256];
        snprintf(cmd, sizeof cmd, "promtool check metrics < %s", path);
        int rc = system(cmd);
        unlink(path);
        assert_int_equal(rc, 0);
    }
    free(text);
    /* health: ok, then paused when the breaker opens (threshold 2: two failures) */
    json_t *h = flow_health_json(RT);
    assert_string_equal(sget(h, "status"), "ok");
    json_t *pm = json_object_get(json_object_get(h, "swarms"), "pm");
    assert_string_equal(sget(pm, "status"), "ok");
    assert_int_equal(json_integer_value(json_object_get(pm, "agents")), 2);
    json_decref(h);
    char *t = submit(sw, "{\"input\":{\"op\":\"fail\"}}");
    json_decref(result(t, 10000));
    free(t);
    h = flow_health_json(RT);
    assert_string_equal(sget(h, "status"), "degraded");
    assert_string_equal(sget(json_object_get(json_object_get(h, "swarms"), "pm"), "status"),
                        "paused");
    json_decref(h);
    ok(flow_request(RT, "health", NULL, 0, &h), h); /* the health actor answers the same */
    assert_string_equal(sget(json_object_get(json_object_get(h, "swarms"), "pm"), "breaker"),
                        "open");
    json_decref(h);
    free(sw);
}

/* A test-side OTLP/HTTP collector: a libuv TCP listener that answers 200 to every POST and
 * keeps the request heads and bodies. */
typedef struct coll_conn {
    uv_tcp_t tcp;
    char *buf;
    size_t len;
    bool answered;
} coll_conn;

static uv_tcp_t COLL;
static json_t *BODIES; /* parsed request bodies */
static int POSTS_TO_TRACES;

static void coll_closed(uv_handle_t *h)
{
    coll_conn *c = h->data;
    free(c->buf);
    free(c);
}

static void coll_alloc(uv_handle_t *h, size_t n, uv_buf_t *b)
{
    coll_conn *c = h->data;
    c->buf = realloc(c->buf, c->len + n);
    *b = uv_buf_init(c->buf + c->len, (unsigned)n);
}

static void coll_written(uv_write_t *w, int status)
{
    (void)status;
    uv_close((uv_handle_t *)w->data, coll_closed);
    free(w);
}

static void coll_read(uv_stream_t *s, ssize_t n, const uv_buf_t *b)
{
    (void)b;
    coll_conn *c = s->data;
    if (n < 0) {
        if (!c->answered) {
            uv_close((uv_handle_t *)s, coll_closed);
        }
        return;
    }
    c->len += (size_t)n;
    const char *eoh = NULL;
    for (size_t i = 0; i + 3 < c->len && !eoh; i++) {
        eoh = memcmp(c->buf + i, "\r\n\r\n", 4) == 0 ? c->buf + i + 4 : NULL;
    }
    const char *cl = eoh ? strstr(c->buf, "Content-Length: ") : NULL;
    if (c->answered || cl == NULL || cl > eoh) {
        return;
    }
    size_t want = strtoul(cl + 16, NULL, 10);
    size_t head = (size_t)(eoh - c->buf);
    if (c->len < head + want) {
        return;
    }
    c->answered = true;
    if (strncmp(c->buf, "POST /v1/traces HTTP/1.1\r\n", 26) == 0 &&
        strstr(c->buf, "Content-Type: application/json\r\n") != NULL) {
        POSTS_TO_TRACES++;
    }
    json_t *j = json_loadb(eoh, want, 0, NULL);
    assert_non_null(j);
    json_array_append_new(BODIES, j);
    static const char ans[] = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                              "Content-Length: 2\r\n\r\n{}";
    uv_write_t *w = malloc(sizeof *w);
    w->data = s;
    uv_buf_t out = uv_buf_init((char *)ans, sizeof ans - 1);
    uv_write(w, s, &out, 1, coll_written);
}

static void coll_accept(uv_stream_t *srv, int status)
{
    assert_int_equal(status, 0);
    coll_conn *c = calloc(1, sizeof *c);
    uv_tcp_init(srv->loop, &c->tcp);
    c->tcp.data = c;
    assert_int_equal(uv_accept(srv, (uv_stream_t *)&c->tcp), 0);
    uv_read_start((uv_stream_t *)&c->tcp, coll_alloc, coll_read);
}

static int up_otlp(void **st)
{
    uv_loop_init(&LOOP);
    uv_tcp_init(&LOOP, &COLL);
    struct sockaddr_in a;
    uv_ip4_addr("127.0.0.1", 0, &a);
    assert_int_equal(uv_tcp_bind(&COLL, (const struct sockaddr *)&a, 0), 0);
    assert_int_equal(uv_listen((uv_stream_t *)&COLL, 16, coll_accept), 0);
    struct sockaddr_storage ss;
    int len = sizeof ss;
    uv_tcp_getsockname(&COLL, (struct sockaddr *)&ss, &len);
    char url[64];
    snprintf(url, sizeof url, "http://127.0.0.1:%d/", ntohs(((struct sockaddr_in *)&ss)->sin_port));
    setenv("OTEL_EXPORTER_OTLP_ENDPOINT", url, 1);
    setenv("OTEL_BSP_SCHEDULE_DELAY", "20", 1);
    setenv("OTEL_SERVICE_NAME", "flow-test", 1);
    BODIES = json_array();
    POSTS_TO_TRACES = 0;
    REAL = true;
    RT = sup_rt_new(&LOOP);
    sup_reason why;
    assert_int_equal(flow_start(RT, SUP_NOPID, NULL, NULL, &FLOW, &why), 0);
    (void)st;
    return 0;
}

static int down_otlp(void **st)
{
    unsetenv("OTEL_EXPORTER_OTLP_ENDPOINT");
    unsetenv("OTEL_BSP_SCHEDULE_DELAY");
    unsetenv("OTEL_SERVICE_NAME");
    uv_close((uv_handle_t *)&COLL, NULL);
    json_decref(BODIES);
    return down(st);
}

/* Endpoint URLs: http:// only, host, [ipv6], port, path. */
static void otlp_endpoint_urls(void **st)
{
    (void)st;
    flow_http_url u;
    char err[128];
    assert_int_equal(flow_http_url_parse("http://collector:4318/v1/traces", &u, err, sizeof err),
                     0);
    assert_string_equal(u.host, "collector");
    assert_string_equal(u.port, "4318");
    assert_string_equal(u.path, "/v1/traces");
    assert_int_equal(flow_http_url_parse("http://[::1]/x", &u, err, sizeof err), 0);
    assert_string_equal(u.host, "::1");
    assert_string_equal(u.port, "80");
    assert_int_equal(flow_http_url_parse("http://h", &u, err, sizeof err), 0);
    assert_string_equal(u.path, "/");
    static const char *const bad[] = {"https://h/",   "h:80",         "http://", "http://h:/",
                                      "http://h:8x/", "http://[::1/", NULL};
    for (int i = 0; bad[i]; i++) {
        assert_int_equal(flow_http_url_parse(bad[i], &u, err, sizeof err), -1);
    }
}

/* Every span the collector received, with the resource's service name checked. */
static json_t *received_spans(void)
{
    json_t *all = json_array();
    size_t i;
    json_t *body;
    json_array_foreach(BODIES, i, body)
    {
        json_t *rs = json_array_get(json_object_get(body, "resourceSpans"), 0);
        json_t *attr =
            json_array_get(json_object_get(json_object_get(rs, "resource"), "attributes"), 0);
        assert_string_equal(sget(attr, "key"), "service.name");
        assert_string_equal(sget(json_object_get(attr, "value"), "stringValue"), "flow-test");
        json_t *ss = json_array_get(json_object_get(rs, "scopeSpans"), 0);
        assert_string_equal(sget(json_object_get(ss, "scope"), "name"), "macula.flow");
        json_array_extend(all, json_object_get(ss, "spans"));
    }
    return all;
}

static bool is_hex(const char *s, size_t n)
{
    return s && strlen(s) == n && strspn(s, "0123456789abcdef") == n;
}

static const char *span_attr(const json_t *span, const char *key)
{
    size_t i;
    json_t *a;
    json_array_foreach(json_object_get(span, "attributes"), i, a)
    {
        if (strcmp(sget(a, "key"), key) == 0) {
            return sget(json_object_get(a, "value"), "stringValue");
        }
    }
    return NULL;
}

/* Tasks' spans reach a local collector as OTLP/HTTP JSON: a root per task in the task's trace,
 * children queued -> assigned -> run under it, in time order, with ids and attributes. */
static void otlp_spans_exported(void **st)
{
    (void)st;
    char *sw = make_swarm("{\"id\":\"ot\",\"topology\":\"star\",\"config\":{\"pool_min\":"
                          "{\"worker\":1,\"specialist\":0,\"scout\":0}}}");
    char *t1 =
        submit(sw, "{\"input\":{\"n\":1},\"trace_id\":\"0123456789abcdef0123456789abcdef\"}");
    char *t2 = submit(sw, "{\"input\":{\"op\":\"fail\",\"error\":\"nope\"}}");
    json_decref(result(t1, 20000));
    json_decref(result(t2, 20000));
    /* 2 tasks x (root + queued + assigned + run) = 8 spans, sent within the schedule delay */
    json_t *spans = NULL;
    for (int i = 0; i < 5000; i++) {
        json_decref(spans);
        spans = received_spans();
        if (json_array_size(spans) >= 8) {
            break;
        }
        sup_rt_run(RT);
        uv_run(&LOOP, UV_RUN_NOWAIT);
        uv_sleep(1);
    }
    if (json_array_size(spans) != 8) {
        json_t *s = NULL;
        flow_request(RT, "otlp_status", NULL, 0, &s);
        fail_msg("%zu spans received; exporter: %s", json_array_size(spans), json_dumps(s, 0));
    }
    assert_true(POSTS_TO_TRACES >= 1);
    for (int k = 0; k < 2; k++) {
        const char *task = k == 0 ? t1 : t2;
        const json_t *root = NULL;
        size_t i;
        json_t *sp;
        json_array_foreach(spans, i, sp)
        {
            if (strcmp(span_attr(sp, "flow.task.id"), task) == 0 &&
                strcmp(sget(sp, "name"), "flow.task") == 0) {
                root = sp;
            }
        }
        assert_non_null(root);
        assert_null(json_object_get(root, "parentSpanId"));
        assert_true(is_hex(sget(root, "traceId"), 32));
        assert_true(is_hex(sget(root, "spanId"), 16));
        if (k == 0) {
            assert_string_equal(sget(root, "traceId"), "0123456789abcdef0123456789abcdef");
            assert_int_equal(
                json_integer_value(json_object_get(json_object_get(root, "status"), "code")), 1);
        } else {
            json_t *status = json_object_get(root, "status");
            assert_int_equal(json_integer_value(json_object_get(status, "code")), 2);
            assert_string_equal(sget(status, "message"), "nope");
        }
        unsigned long long t0 = strtoull(sget(root, "startTimeUnixNano"), NULL, 10);
        unsigned long long t9 = strtoull(sget(root, "endTimeUnixNano"), NULL, 10);
        assert_true(t0 > 1600000000ULL * 1000000000ULL && t0 <= t9);
        /* the children, in phase order, tile the root's time */
        static const char *const phases[] = {"flow.queued", "flow.assigned", "flow.run"};
        unsigned long long at = t0;
        for (int p = 0; p < 3; p++) {
            const json_t *child = NULL;
            json_array_foreach(spans, i, sp)
            {
                if (strcmp(span_attr(sp, "flow.task.id"), task) == 0 &&
                    strcmp(sget(sp, "name"), phases[p]) == 0) {
                    child = sp;
                }
            }
            assert_non_null(child);
            assert_string_equal(sget(child, "parentSpanId"), sget(root, "spanId"));
            assert_string_equal(sget(child, "traceId"), sget(root, "traceId"));
            assert_true(is_hex(sget(child, "spanId"), 16));
            assert_true(strcmp(sget(child, "spanId"), sget(root, "spanId")) != 0);
            assert_string_equal(span_attr(child, "flow.swarm"), "ot");
            if (p > 0) {
                assert_non_null(span_attr(child, "flow.agent"));
            }
            assert_true(strtoull(sget(child, "startTimeUnixNano"), NULL, 10) == at);
            at = strtoull(sget(child, "endTimeUnixNano"), NULL, 10);
        }
        assert_true(at == t9);
    }
    json_decref(spans);
    /* the exporter counts them once the collector's answers are read */
    json_t *s = NULL;
    for (int i = 0; i < 5000; i++) {
        json_decref(s);
        ok(flow_request(RT, "otlp_status", NULL, 0, &s), s);
        if (json_integer_value(json_object_get(s, "exported")) == 8) {
            break;
        }
        uv_run(&LOOP, UV_RUN_NOWAIT);
        uv_sleep(1);
    }
    assert_true(json_is_true(json_object_get(s, "exporting")));
    assert_int_equal(json_integer_value(json_object_get(s, "exported")), 8);
    assert_int_equal(json_integer_value(json_object_get(s, "last_status")), 200);
    json_decref(s);
    free(t1);
    free(t2);
    free(sw);
}

/* ---- the mcp executor against `macula mcp-fixture` ------------------------------------------ */

static char *mcp_swarm(const char *tool, const char *extra)
{
    const char *bin = getenv("MACULA_BIN");
    char spec[1024];
    snprintf(spec, sizeof spec,
             "{\"topology\":\"star\",\"config\":{\"pool_min\":{\"worker\":1,\"specialist\":0,"
             "\"scout\":0},\"executor\":{\"type\":\"mcp\",\"argv\":[\"%s\",\"mcp-fixture\"],"
             "\"tool\":\"%s\"%s}}}",
             bin, tool, extra);
    return make_swarm(spec);
}

static int child_count(void)
{
    char cmd[96];
    snprintf(cmd, sizeof cmd, "exit $(pgrep -P %d -x macula | wc -l)", (int)getpid());
    int rc = system(cmd);
    return WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
}

static void mcp_executor_calls_tools(void **st)
{
    (void)st;
    if (getenv("MACULA_BIN") == NULL) {
        skip();
    }
    char *add = mcp_swarm("add", "");
    /* several tasks on one agent: one server process, kept across them */
    for (int i = 0; i < 3; i++) {
        char in[64];
        snprintf(in, sizeof in, "{\"input\":{\"a\":%d,\"b\":40}}", i);
        char *t = submit(add, in);
        json_t *r = result(t, 20000);
        assert_string_equal(sget(r, "state"), "completed");
        assert_int_equal(json_integer_value(json_object_get(json_object_get(r, "result"), "sum")),
                         40 + i);
        json_decref(r);
        free(t);
    }
    if (system("command -v pgrep >/dev/null 2>&1") == 0) {
        assert_int_equal(child_count(), 1);
    }
    /* arguments the tool's schema refuses, and an input that is not an object */
    char *t = submit(add, "{\"input\":{\"a\":\"x\"}}");
    json_t *r = result(t, 20000);
    assert_string_equal(sget(r, "state"), "failed");
    json_decref(r);
    free(t);
    t = submit(add, "{\"input\":[1]}");
    r = result(t, 20000);
    assert_string_equal(sget(r, "state"), "failed");
    assert_non_null(strstr(sget(r, "error"), "must be an object"));
    json_decref(r);
    free(t);
    /* a tool error (isError) fails the task with its text */
    char *fail = mcp_swarm("fail", "");
    t = submit(fail, "{\"input\":{}}");
    r = result(t, 20000);
    assert_string_equal(sget(r, "state"), "failed");
    assert_string_equal(sget(r, "error"), "the fail tool always fails");
    json_decref(r);
    free(t);
    /* past its time limit the call fails; the connection stays usable */
    char *slow = mcp_swarm("slow", ",\"timeout_ms\":300");
    t = submit(slow, "{\"input\":{\"steps\":50,\"interval_ms\":100}}");
    r = result(t, 20000);
    assert_string_equal(sget(r, "state"), "failed");
    assert_string_equal(sget(r, "error"), "timeout after 300 ms");
    json_decref(r);
    free(t);
    t = submit(slow, "{\"input\":{\"steps\":1,\"interval_ms\":1}}");
    r = result(t, 20000);
    assert_string_equal(sget(r, "state"), "completed");
    assert_int_equal(json_integer_value(json_object_get(json_object_get(r, "result"), "steps")), 1);
    json_decref(r);
    free(t);
    free(add);
    free(fail);
    free(slow);
}

/* A server that exits fails the task; a server that cannot start too. */
static void mcp_executor_server_gone(void **st)
{
    (void)st;
    char *gone =
        make_swarm("{\"topology\":\"star\",\"config\":{\"pool_min\":{\"worker\":1,\"specialist\":0,"
                   "\"scout\":0},\"executor\":{\"type\":\"mcp\",\"argv\":[\"/bin/sh\",\"-c\","
                   "\"read line; exit 7\"],\"tool\":\"x\"}}}");
    char *t = submit(gone, "{\"input\":{}}");
    json_t *r = result(t, 20000);
    assert_string_equal(sget(r, "state"), "failed");
    assert_string_equal(sget(r, "error"), "mcp server exited: status 7");
    json_decref(r);
    free(t);
    char *missing =
        make_swarm("{\"topology\":\"star\",\"config\":{\"pool_min\":{\"worker\":1,\"specialist\":0,"
                   "\"scout\":0},\"executor\":{\"type\":\"mcp\",\"argv\":[\"/nonexistent/mcp\"],"
                   "\"tool\":\"x\"}}}");
    t = submit(missing, "{\"input\":{}}");
    r = result(t, 20000);
    assert_string_equal(sget(r, "state"), "failed");
    assert_non_null(strstr(sget(r, "error"), "spawn /nonexistent/mcp"));
    json_decref(r);
    free(t);
    /* a spec without a tool is refused */
    json_t *spec = json_loads("{\"topology\":\"star\",\"config\":{\"executor\":{\"type\":\"mcp\","
                              "\"argv\":[\"/bin/true\"]}}}",
                              0, NULL);
    json_t *out = NULL;
    assert_int_equal(flow_swarm_create(RT, spec, &out), FLOW_EINVAL);
    json_decref(out);
    json_decref(spec);
    free(gone);
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
        cmocka_unit_test_setup_teardown(prometheus_and_health, up_virtual, down),
        cmocka_unit_test_setup_teardown(otlp_spans_exported, up_otlp, down_otlp),
        cmocka_unit_test(otlp_endpoint_urls),
        cmocka_unit_test_setup_teardown(mcp_executor_calls_tools, up_real, down),
        cmocka_unit_test_setup_teardown(mcp_executor_server_gone, up_real, down),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
