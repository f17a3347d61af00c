/* tests/unit/test_mcp_tools.c — the flow tools (src/mcp/tools.c) through an mcp_session on a
 * virtual runtime running the flow tree and the gateway actor: every tool, schemas, tool
 * errors, task_submit with wait (progress, timeout, cancellation), chaos switching with
 * list_changed (the embedder's switch, the operator's switch and its /admin/chaos handler:
 * refused unless allowed, one list_changed per switch to every initialized session), the
 * gateway's restart, and a session ending with a waiting call. */
#define _GNU_SOURCE /* memmem */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "macula/flow.h"
#include "macula/mcp.h"
#include "macula/sup_supervisor.h"
#include "mcp/operator.h"
#include "mcp/tools.h"

#define MAXOUT 256

typedef struct fx {
    sup_rt *rt;
    sup_pid root;
    mcp_server *srv;
    mcp_flow *mf;
    mcp_session *ss;
    json_t *outs[MAXOUT];
    int n;
    long next_id;
} fx;

static void t_send(void *user, void *origin, const char *json, size_t len, bool response)
{
    (void)origin;
    (void)response;
    fx *f = user;
    assert_true(f->n < MAXOUT);
    json_t *m = json_loadb(json, len, 0, NULL);
    assert_non_null(m);
    f->outs[f->n++] = m;
}

static void t_done(void *user, void *origin)
{
    (void)user;
    (void)origin;
}

static const mcp_transport transport = {t_send, t_done};

static void clear(fx *f)
{
    for (int i = 0; i < f->n; i++) {
        json_decref(f->outs[i]);
    }
    f->n = 0;
}

static void input(fx *f, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void input(fx *f, const char *fmt, ...)
{
    char buf[4096];
    va_list ap;
    va_start(ap, fmt);
    int len = vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    assert_true(len > 0 && (size_t)len < sizeof buf);
    assert_int_equal(mcp_session_input(f->ss, buf, (size_t)len, NULL, NULL), 0);
}

static json_t *find_response(fx *f, long id)
{
    for (int i = 0; i < f->n; i++) {
        json_t *mid = json_object_get(f->outs[i], "id");
        if (json_is_integer(mid) && json_integer_value(mid) == id) {
            return f->outs[i];
        }
    }
    return NULL;
}

/* Runs the runtime (virtual time moves to each next timer) until response `id` was sent or
 * `max_ms` of virtual time passed. */
static json_t *pump(fx *f, long id, uint64_t max_ms)
{
    uint64_t until = sup_rt_now(f->rt) + max_ms;
    for (;;) {
        sup_rt_run(f->rt);
        json_t *r = id ? find_response(f, id) : NULL;
        if (r != NULL) {
            return r;
        }
        uint64_t next = sup_rt_next_deadline(f->rt);
        if (next == UINT64_MAX || next > until) {
            sup_rt_advance(f->rt, until);
            sup_rt_run(f->rt);
            return id ? find_response(f, id) : NULL;
        }
        sup_rt_advance(f->rt, next);
    }
}

static int count_method(fx *f, const char *method)
{
    int n = 0;
    for (int i = 0; i < f->n; i++) {
        const char *m = json_string_value(json_object_get(f->outs[i], "method"));
        n += m != NULL && strcmp(m, method) == 0;
    }
    return n;
}

static void handshake(fx *f, const char *version)
{
    input(f,
          "{\"jsonrpc\":\"2.0\",\"id\":0,\"method\":\"initialize\",\"params\":{"
          "\"protocolVersion\":\"%s\",\"capabilities\":{},\"clientInfo\":{\"name\":\"t\","
          "\"version\":\"1\"}}}",
          version);
    input(f, "{\"jsonrpc\":\"2.0\",\"method\":\"notifications/initialized\"}");
    assert_int_equal(mcp_session_get_state(f->ss), MCP_SESSION_READY);
    clear(f);
}

static bool g_chaos_allowed; /* setup_allowed: the operator allowed chaos */

static fx *setup_fx(const char *version)
{
    fx *f = calloc(1, sizeof *f);
    assert_non_null(f);
    f->rt = sup_rt_new_virtual();
    f->srv = mcp_server_new(NULL);
    mcp_flow_config c;
    mcp_flow_config_defaults(&c);
    c.poll_ms = 100;
    c.chaos_allowed = g_chaos_allowed;
    assert_int_equal(mcp_flow_new(f->rt, f->srv, &c, &f->mf), 0);
    sup_child_spec ch[2] = {
        {.id = "erlmcp_flow_sup",
         .start = flow_start,
         .restart = SUP_PERMANENT,
         .shutdown_ms = SUP_SHUTDOWN_INFINITY,
         .type = SUP_SUPERVISOR},
        {.id = MCP_FLOW_ACTOR,
         .start = mcp_flow_actor_start,
         .arg = f->mf,
         .restart = SUP_PERMANENT,
         .shutdown_ms = 5000},
    };
    sup_flags fl = {SUP_ONE_FOR_ONE, 10, 5, SUP_AUTO_NEVER};
    sup_reason why;
    assert_int_equal(sup_supervisor_start(f->rt, SUP_NOPID, &fl, ch, 2, NULL, &f->root, &why), 0);
    f->ss = mcp_session_new(f->srv, &transport, f);
    assert_non_null(f->ss);
    handshake(f, version);
    f->next_id = 100;
    return f;
}

static int setup(void **state)
{
    setenv("MACULA_FLOW_CHAOS", "1", 1); /* the flow chaos actor accepts requests */
    g_chaos_allowed = false;
    *state = setup_fx("2025-06-18");
    return 0;
}

static int setup_allowed(void **state)
{
    setenv("MACULA_FLOW_CHAOS", "1", 1);
    g_chaos_allowed = true;
    *state = setup_fx("2025-06-18");
    g_chaos_allowed = false;
    return 0;
}

static int setup_latest(void **state)
{
    *state = setup_fx("2025-11-25");
    return 0;
}

static int teardown(void **state)
{
    fx *f = *state;
    if (f->ss != NULL) {
        mcp_session_free(f->ss);
    }
    sup_reason sd = sup_reason_shutdown();
    assert_int_equal(sup_stop_sync(f->rt, f->root, &sd), 0);
    assert_int_equal(sup_rt_actor_count(f->rt), 0);
    assert_int_equal(mcp_flow_pending(f->mf), 0);
    sup_rt_free(f->rt);
    mcp_flow_free(f->mf);
    assert_int_equal(mcp_server_tool_count(f->srv), 0);
    mcp_server_free(f->srv);
    clear(f);
    free(f);
    return 0;
}

/* Calls a tool; returns the response (owned by the fixture). meta: "" or ",\"_meta\":{...}". */
static json_t *call_meta(fx *f, const char *tool, const char *args, const char *meta,
                         uint64_t max_ms)
{
    long id = ++f->next_id;
    input(f,
          "{\"jsonrpc\":\"2.0\",\"id\":%ld,\"method\":\"tools/call\",\"params\":{\"name\":\"%s\","
          "\"arguments\":%s%s}}",
          id, tool, args, meta);
    json_t *r = pump(f, id, max_ms);
    assert_non_null(r);
    return r;
}

static json_t *call(fx *f, const char *tool, const char *args)
{
    return call_meta(f, tool, args, "", 60000);
}

/* The structured result of a successful call; checks that the text content says the same. */
static json_t *ok(json_t *resp)
{
    json_t *res = json_object_get(resp, "result");
    if (res == NULL || json_is_true(json_object_get(res, "isError"))) {
        char *t = json_dumps(resp, 0);
        fail_msg("expected a result: %s", t ? t : "?");
    }
    json_t *sc = json_object_get(res, "structuredContent");
    assert_true(json_is_object(sc));
    const char *text = json_string_value(
        json_object_get(json_array_get(json_object_get(res, "content"), 0), "text"));
    assert_non_null(text);
    json_t *parsed = json_loads(text, 0, NULL);
    assert_true(json_equal(parsed, sc));
    json_decref(parsed);
    return sc;
}

/* The text of a tool error; fails if the call succeeded. */
static const char *tool_error(json_t *resp)
{
    json_t *res = json_object_get(resp, "result");
    assert_non_null(res);
    assert_true(json_is_true(json_object_get(res, "isError")));
    const char *text = json_string_value(
        json_object_get(json_array_get(json_object_get(res, "content"), 0), "text"));
    assert_non_null(text);
    return text;
}

static const char *str(const json_t *o, const char *key)
{
    const char *s = json_string_value(json_object_get(o, key));
    assert_non_null(s);
    return s;
}

#define NO_POOL "{\"pool_min\":{\"worker\":0,\"specialist\":0,\"scout\":0}}"

/* ---- tests -------------------------------------------------------------------------------- */

static void test_tools_list(void **state)
{
    fx *f = *state;
    input(f, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/list\"}");
    json_t *tools = json_object_get(json_object_get(find_response(f, 1), "result"), "tools");
    static const char *const names[] = {
        "swarm_init",  "swarm_status", "swarm_list",      "swarm_scale", "swarm_destroy",
        "agent_spawn", "agent_list",   "agent_terminate", "task_submit", "task_status",
        "task_result", "task_list",    "task_cancel",     "metrics"};
    assert_int_equal(json_array_size(tools), sizeof names / sizeof names[0]);
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        json_t *t = json_array_get(tools, i);
        assert_string_equal(str(t, "name"), names[i]);
        assert_true(json_is_object(json_object_get(t, "inputSchema")));
        assert_true(json_is_object(json_object_get(t, "outputSchema")));
        assert_non_null(json_object_get(t, "description"));
        assert_true(json_is_object(json_object_get(t, "annotations")));
    }
    assert_false(mcp_flow_chaos(f->mf));
}

static void test_swarm_and_agent_tools(void **state)
{
    fx *f = *state;
    json_t *sw = ok(call(f, "swarm_init",
                         "{\"id\":\"s1\",\"topology\":\"star\",\"config\":{\"pool_min\":{"
                         "\"worker\":2,\"specialist\":0,\"scout\":0}}}"));
    assert_string_equal(str(sw, "id"), "s1");
    assert_string_equal(str(sw, "topology"), "star");
    pump(f, 0, 100);
    sw = ok(call(f, "swarm_status", "{\"swarm\":\"s1\"}"));
    assert_int_equal(json_array_size(json_object_get(sw, "agents")), 2);
    sw = ok(call(f, "swarm_scale", "{\"swarm\":\"s1\",\"role\":\"worker\",\"count\":3}"));
    assert_string_equal(str(sw, "id"), "s1");
    pump(f, 0, 100);
    json_t *list = ok(call(f, "swarm_list", "{}"));
    assert_int_equal(json_array_size(json_object_get(list, "swarms")), 1);
    assert_int_equal(json_array_size(json_object_get(
                         json_array_get(json_object_get(list, "swarms"), 0), "agents")),
                     3);
    json_t *ag = ok(call(f, "agent_spawn",
                         "{\"swarm\":\"s1\",\"role\":\"specialist\",\"id\":\"sp1\",\"executor\":{"
                         "\"type\":\"builtin\"},\"weight\":2,\"capacity\":2}"));
    assert_string_equal(str(ag, "id"), "sp1");
    assert_string_equal(str(ag, "role"), "specialist");
    ok(call(f, "swarm_init", "{\"id\":\"s2\",\"config\":" NO_POOL "}"));
    ok(call(f, "agent_spawn", "{\"swarm\":\"s2\",\"role\":\"scout\"}"));
    json_t *agents = ok(call(f, "agent_list", "{\"swarm\":\"s1\"}"));
    assert_int_equal(json_array_size(json_object_get(agents, "agents")), 4);
    agents = ok(call(f, "agent_list", "{}"));
    assert_int_equal(json_array_size(json_object_get(agents, "agents")), 5);
    agents = ok(call(f, "agent_list", "{\"swarm\":\"s1\",\"role\":\"specialist\"}"));
    assert_int_equal(json_array_size(json_object_get(agents, "agents")), 1);
    ag = ok(call(f, "agent_terminate", "{\"agent\":\"sp1\"}"));
    assert_string_equal(str(ag, "id"), "sp1");
    pump(f, 0, 100);
    agents = ok(call(f, "agent_list", "{\"swarm\":\"s1\",\"role\":\"specialist\"}"));
    assert_int_equal(json_array_size(json_object_get(agents, "agents")), 0);
    json_t *d = ok(call(f, "swarm_destroy", "{\"swarm\":\"s2\"}"));
    assert_string_equal(str(d, "id"), "s2");
    assert_true(json_is_true(json_object_get(d, "destroyed")));
    list = ok(call(f, "swarm_list", "{}"));
    assert_int_equal(json_array_size(json_object_get(list, "swarms")), 1);
}

static void test_task_tools(void **state)
{
    fx *f = *state;
    ok(call(f, "swarm_init",
            "{\"id\":\"s1\",\"config\":{\"pool_min\":{\"worker\":1,\"specialist\":0,\"scout\":0}"
            "}}"));
    json_t *t = ok(call(f, "task_submit",
                        "{\"swarm\":\"s1\",\"input\":{\"op\":\"echo\",\"v\":7},\"priority\":"
                        "\"high\",\"max_retries\":2,\"deadline_ms\":60000}"));
    char id[64];
    snprintf(id, sizeof id, "%s", str(t, "id"));
    assert_string_equal(str(t, "priority"), "high");
    char args[256];
    snprintf(args, sizeof args, "{\"task\":\"%s\",\"wait_ms\":5000}", id);
    t = ok(call(f, "task_result", args));
    assert_string_equal(str(t, "state"), "completed");
    assert_int_equal(json_integer_value(json_object_get(json_object_get(t, "result"), "v")), 7);
    snprintf(args, sizeof args, "{\"task\":\"%s\"}", id);
    t = ok(call(f, "task_status", args));
    assert_string_equal(str(t, "state"), "completed");
    /* a task waiting on a dependency that never completes stays pending; cancel it */
    ok(call(f, "swarm_init", "{\"id\":\"idle\",\"config\":" NO_POOL "}"));
    t = ok(call(f, "task_submit", "{\"swarm\":\"idle\",\"input\":1}"));
    char dep[64];
    snprintf(dep, sizeof dep, "%s", str(t, "id"));
    snprintf(args, sizeof args, "{\"swarm\":\"idle\",\"input\":2,\"dependencies\":[\"%s\"]}", dep);
    t = ok(call(f, "task_submit", args));
    char child[64];
    snprintf(child, sizeof child, "%s", str(t, "id"));
    json_t *l = ok(call(f, "task_list", "{\"swarm\":\"idle\",\"state\":\"pending\"}"));
    assert_int_equal(json_array_size(json_object_get(l, "tasks")), 2);
    l = ok(call(f, "task_list", "{\"limit\":1}"));
    assert_int_equal(json_array_size(json_object_get(l, "tasks")), 1);
    snprintf(args, sizeof args, "{\"task\":\"%s\"}", dep);
    t = ok(call(f, "task_cancel", args));
    assert_string_equal(str(t, "state"), "cancelled");
    snprintf(args, sizeof args, "{\"task\":\"%s\"}", child);
    t = ok(call(f, "task_status", args));
    assert_string_equal(str(t, "state"), "failed"); /* dependency_cancelled */
    json_t *m = ok(call(f, "metrics", "{}"));
    assert_int_equal(json_integer_value(json_object_get(json_object_get(m, "tasks"), "completed")),
                     1);
    assert_true(json_is_object(json_object_get(m, "observer")));
    assert_true(json_is_object(json_object_get(m, "agents")));
}

static void test_tool_errors(void **state)
{
    fx *f = *state;
    assert_non_null(
        strstr(tool_error(call(f, "swarm_status", "{\"swarm\":\"nope\"}")), "not_found"));
    assert_non_null(strstr(tool_error(call(f, "task_submit", "{\"swarm\":\"nope\",\"input\":{}}")),
                           "not_found"));
    assert_non_null(
        strstr(tool_error(call(f, "agent_terminate", "{\"agent\":\"ghost\"}")), "not_found"));
    ok(call(f, "swarm_init", "{\"id\":\"s1\",\"config\":" NO_POOL "}"));
    assert_non_null(strstr(tool_error(call(f, "swarm_init", "{\"id\":\"s1\"}")), "exist"));
    /* executor checked by flow */
    assert_non_null(tool_error(call(f, "agent_spawn",
                                    "{\"swarm\":\"s1\",\"role\":\"worker\",\"executor\":{"
                                    "\"type\":\"exec\"}}")));
    /* a pending task: task_result without wait is a timeout, cancelling twice is invalid */
    json_t *t = ok(call(f, "task_submit", "{\"swarm\":\"s1\",\"input\":{}}"));
    char args[128];
    snprintf(args, sizeof args, "{\"task\":\"%s\"}", str(t, "id"));
    assert_non_null(strstr(tool_error(call(f, "task_result", args)), "timeout"));
    ok(call(f, "task_cancel", args));
    assert_non_null(tool_error(call(f, "task_cancel", args)));
    /* a dependency that does not exist */
    assert_non_null(tool_error(
        call(f, "task_submit", "{\"swarm\":\"s1\",\"input\":{},\"dependencies\":[\"zz\"]}")));
    /* chaos tools are not registered: unknown tool */
    json_t *r = call(f, "chaos_kill_agent", "{\"agent\":\"a\"}");
    assert_int_equal(json_integer_value(json_object_get(json_object_get(r, "error"), "code")),
                     MCP_RPC_INVALID_PARAMS);
}

static void expect_invalid_params(fx *f, const char *tool, const char *args)
{
    json_t *r = call(f, tool, args);
    json_t *e = json_object_get(r, "error");
    if (e == NULL) {
        char *t = json_dumps(r, 0);
        fail_msg("%s %s: expected -32602, got %s", tool, args, t ? t : "?");
    }
    assert_int_equal(json_integer_value(json_object_get(e, "code")), MCP_RPC_INVALID_PARAMS);
}

static void test_schema_errors(void **state)
{
    fx *f = *state;
    expect_invalid_params(f, "swarm_status", "{}");
    expect_invalid_params(f, "swarm_status", "{\"swarm\":\"s\",\"extra\":1}");
    expect_invalid_params(f, "swarm_init", "{\"topology\":\"donut\"}");
    expect_invalid_params(f, "swarm_scale", "{\"swarm\":\"s\",\"role\":\"boss\",\"count\":1}");
    expect_invalid_params(f, "swarm_scale", "{\"swarm\":\"s\",\"role\":\"worker\",\"count\":-1}");
    expect_invalid_params(f, "agent_spawn", "{\"swarm\":\"s\"}");
    expect_invalid_params(f, "task_submit", "{\"swarm\":\"s\"}");
    expect_invalid_params(f, "task_submit",
                          "{\"swarm\":\"s\",\"input\":1,\"priority\":\"urgent\"}");
    expect_invalid_params(f, "task_submit", "{\"swarm\":\"s\",\"input\":1,\"wait\":-5}");
    expect_invalid_params(f, "task_submit", "{\"swarm\":\"\",\"input\":1}");
    expect_invalid_params(f, "task_list", "{\"state\":\"sleeping\"}");
    expect_invalid_params(f, "task_result", "{\"task\":\"t\",\"wait_ms\":\"soon\"}");
    expect_invalid_params(f, "metrics", "{\"x\":1}");
    expect_invalid_params(f, "no_such_tool", "{}");
    assert_int_equal(mcp_flow_pending(f->mf), 0);
}

static void test_schema_errors_latest(void **state)
{
    fx *f = *state;
    /* 2025-11-25 (SEP-1303): invalid arguments are tool errors; unknown tools stay -32602 */
    assert_non_null(strstr(tool_error(call(f, "swarm_status", "{}")), "swarm"));
    assert_non_null(tool_error(call(f, "task_submit", "{\"swarm\":\"s\",\"input\":1,\"role\":1}")));
    json_t *r = call(f, "swarm_explode", "{}");
    assert_int_equal(json_integer_value(json_object_get(json_object_get(r, "error"), "code")),
                     MCP_RPC_INVALID_PARAMS);
}

/* The progress notifications sent so far, checking they increase. */
static int progress_count(fx *f, const char *token)
{
    int n = 0;
    double last = -1;
    for (int i = 0; i < f->n; i++) {
        json_t *m = f->outs[i];
        const char *me = json_string_value(json_object_get(m, "method"));
        if (me == NULL || strcmp(me, "notifications/progress") != 0) {
            continue;
        }
        json_t *p = json_object_get(m, "params");
        assert_string_equal(str(p, "progressToken"), token);
        double v = json_number_value(json_object_get(p, "progress"));
        assert_true(v > last);
        assert_true(json_number_value(json_object_get(p, "total")) == 4.0);
        last = v;
        n++;
    }
    return n;
}

static void test_submit_wait_progress(void **state)
{
    fx *f = *state;
    ok(call(f, "swarm_init",
            "{\"id\":\"s1\",\"config\":{\"pool_min\":{\"worker\":1,\"specialist\":0,\"scout\":0}"
            "}}"));
    pump(f, 0, 50);
    clear(f);
    json_t *t = ok(call_meta(f, "task_submit",
                             "{\"swarm\":\"s1\",\"input\":{\"op\":\"sleep\",\"ms\":1000},\"wait\":"
                             "60000}",
                             ",\"_meta\":{\"progressToken\":\"tok\"}", 120000));
    assert_string_equal(str(t, "state"), "completed");
    /* pending (at submit), running (a poll during the sleep), completed */
    assert_int_equal(progress_count(f, "tok"), 3);
    json_t *last = NULL;
    for (int i = 0; i < f->n; i++) {
        const char *me = json_string_value(json_object_get(f->outs[i], "method"));
        if (me != NULL && strcmp(me, "notifications/progress") == 0) {
            last = json_object_get(f->outs[i], "params");
        }
    }
    assert_true(json_number_value(json_object_get(last, "progress")) == 4.0);
    assert_non_null(strstr(str(last, "message"), "completed"));
    /* without a token: the same wait, no progress */
    clear(f);
    t = ok(call(f, "task_submit",
                "{\"swarm\":\"s1\",\"input\":{\"op\":\"sleep\",\"ms\":300},\"wait\":60000}"));
    assert_string_equal(str(t, "state"), "completed");
    assert_int_equal(count_method(f, "notifications/progress"), 0);
    /* a failing task ends the wait too, as a result whose state says failed */
    t = ok(call(f, "task_submit",
                "{\"swarm\":\"s1\",\"input\":{\"op\":\"fail\",\"error\":\"boom\"},\"wait\":5000}"));
    assert_string_equal(str(t, "state"), "failed");
    assert_non_null(strstr(str(t, "error"), "boom"));
}

static void test_submit_wait_timeout(void **state)
{
    fx *f = *state;
    ok(call(f, "swarm_init", "{\"id\":\"idle\",\"config\":" NO_POOL "}"));
    uint64_t t0 = sup_rt_now(f->rt);
    json_t *t = ok(call_meta(f, "task_submit", "{\"swarm\":\"idle\",\"input\":1,\"wait\":500}",
                             ",\"_meta\":{\"progressToken\":7}", 60000));
    /* the wait passed: the answer is the task as it is */
    assert_string_equal(str(t, "state"), "pending");
    assert_true(sup_rt_now(f->rt) - t0 >= 500);
    assert_int_equal(count_method(f, "notifications/progress"), 1);
}

static void test_submit_wait_cancel(void **state)
{
    fx *f = *state;
    ok(call(f, "swarm_init",
            "{\"id\":\"s1\",\"config\":{\"pool_min\":{\"worker\":1,\"specialist\":0,\"scout\":0}"
            "}}"));
    pump(f, 0, 50);
    clear(f);
    long id = ++f->next_id;
    input(f,
          "{\"jsonrpc\":\"2.0\",\"id\":%ld,\"method\":\"tools/call\",\"params\":{\"name\":"
          "\"task_submit\",\"arguments\":{\"swarm\":\"s1\",\"input\":{\"op\":\"sleep\",\"ms\":"
          "100000},\"wait\":600000},\"_meta\":{\"progressToken\":\"c\"}}}",
          id);
    assert_null(pump(f, id, 1000));
    assert_int_equal(progress_count(f, "c"), 2); /* pending, running */
    assert_int_equal(mcp_flow_pending(f->mf), 1);
    input(f,
          "{\"jsonrpc\":\"2.0\",\"method\":\"notifications/cancelled\",\"params\":{\"requestId\":"
          "%ld,\"reason\":\"user\"}}",
          id);
    pump(f, 0, 1000);
    assert_null(find_response(f, id)); /* no response after cancellation */
    assert_int_equal(mcp_flow_pending(f->mf), 0);
    json_t *l = ok(call(f, "task_list", "{\"swarm\":\"s1\"}"));
    json_t *task = json_array_get(json_object_get(l, "tasks"), 0);
    assert_string_equal(str(task, "state"), "cancelled");
    /* the agent is free again: a new task runs */
    json_t *t = ok(call(f, "task_submit", "{\"swarm\":\"s1\",\"input\":{\"v\":1},\"wait\":5000}"));
    assert_string_equal(str(t, "state"), "completed");
}

static void test_cancel_before_start(void **state)
{
    fx *f = *state;
    ok(call(f, "swarm_init", "{\"id\":\"idle\",\"config\":" NO_POOL "}"));
    /* cancelled before the gateway took it: no flow request is made at all */
    long id = ++f->next_id;
    input(f,
          "{\"jsonrpc\":\"2.0\",\"id\":%ld,\"method\":\"tools/call\",\"params\":{\"name\":"
          "\"task_submit\",\"arguments\":{\"swarm\":\"idle\",\"input\":1,\"wait\":9000}}}",
          id);
    input(f,
          "{\"jsonrpc\":\"2.0\",\"method\":\"notifications/cancelled\",\"params\":{\"requestId\":"
          "%ld}}",
          id);
    pump(f, 0, 500);
    assert_null(find_response(f, id));
    assert_int_equal(mcp_flow_pending(f->mf), 0);
    json_t *l = ok(call(f, "task_list", "{\"swarm\":\"idle\"}"));
    assert_int_equal(json_array_size(json_object_get(l, "tasks")), 0);
}

static void test_session_end_cancels(void **state)
{
    fx *f = *state;
    ok(call(f, "swarm_init", "{\"id\":\"idle\",\"config\":" NO_POOL "}"));
    long id = ++f->next_id;
    input(f,
          "{\"jsonrpc\":\"2.0\",\"id\":%ld,\"method\":\"tools/call\",\"params\":{\"name\":"
          "\"task_submit\",\"arguments\":{\"swarm\":\"idle\",\"input\":1,\"wait\":600000}}}",
          id);
    pump(f, 0, 300);
    assert_int_equal(mcp_flow_pending(f->mf), 1);
    mcp_session_free(f->ss);
    f->ss = NULL;
    pump(f, 0, 300);
    assert_int_equal(mcp_flow_pending(f->mf), 0);
    json_t *out = NULL;
    assert_int_equal(flow_task_list(f->rt, "idle", "cancelled", &out), 0);
    assert_int_equal(json_array_size(out), 1);
    json_decref(out);
}

static void test_chaos_switch(void **state)
{
    fx *f = *state;
    size_t before = mcp_server_tool_count(f->srv);
    assert_int_equal(mcp_flow_set_chaos(f->mf, true), 0);
    assert_true(mcp_flow_chaos(f->mf));
    /* three tools switched together: one notification */
    assert_int_equal(count_method(f, "notifications/tools/list_changed"), 1);
    assert_int_equal(mcp_server_tool_count(f->srv), before + 3);
    clear(f);
    input(f, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/list\"}");
    json_t *tools = json_object_get(json_object_get(find_response(f, 1), "result"), "tools");
    int chaos = 0;
    size_t i;
    json_t *t;
    json_array_foreach(tools, i, t)
    {
        chaos += strncmp(str(t, "name"), "chaos_", 6) == 0;
    }
    assert_int_equal(chaos, 3);
    /* the tools act (the flow chaos actor was started with MACULA_FLOW_CHAOS=1) */
    ok(call(f, "swarm_init",
            "{\"id\":\"s1\",\"config\":{\"pool_min\":{\"worker\":1,\"specialist\":0,\"scout\":0}"
            "}}"));
    pump(f, 0, 50);
    json_t *agents = ok(call(f, "agent_list", "{\"swarm\":\"s1\"}"));
    char args[160];
    snprintf(args, sizeof args, "{\"agent\":\"%s\",\"ms\":10}",
             str(json_array_get(json_object_get(agents, "agents"), 0), "id"));
    json_t *r = ok(call(f, "chaos_inject_latency", args));
    assert_true(json_is_true(json_object_get(r, "injected")));
    snprintf(args, sizeof args, "{\"agent\":\"%s\"}",
             str(json_array_get(json_object_get(agents, "agents"), 0), "id"));
    r = ok(call(f, "chaos_kill_agent", args));
    assert_true(json_is_true(json_object_get(r, "injected")));
    assert_non_null(
        strstr(tool_error(call(f, "chaos_kill_process", "{\"name\":\"nobody\"}")), "not_found"));
    r = ok(call(f, "chaos_kill_process", "{\"name\":\"erlmcp_flow_task_queue\"}"));
    assert_true(json_is_true(json_object_get(r, "killed")));
    pump(f, 0, 100);
    /* the pool replaced the agent and the task queue restarted: a task still runs */
    json_t *tk = ok(call(f, "task_submit", "{\"swarm\":\"s1\",\"input\":{\"v\":2},\"wait\":5000}"));
    assert_string_equal(str(tk, "state"), "completed");
    clear(f);
    assert_int_equal(mcp_flow_set_chaos(f->mf, false), 0);
    assert_int_equal(count_method(f, "notifications/tools/list_changed"), 1);
    assert_int_equal(mcp_server_tool_count(f->srv), before);
    r = call(f, "chaos_kill_agent", "{\"agent\":\"x\"}");
    assert_int_equal(json_integer_value(json_object_get(json_object_get(r, "error"), "code")),
                     MCP_RPC_INVALID_PARAMS);
    /* switching to the current state sends nothing */
    clear(f);
    assert_int_equal(mcp_flow_set_chaos(f->mf, false), 0);
    assert_int_equal(count_method(f, "notifications/tools/list_changed"), 0);
}

/* The state of a task, read through the task_status tool (no virtual time passes). */
static const char *task_state(fx *f, const char *task)
{
    static char buf[32];
    char args[128];
    snprintf(args, sizeof args, "{\"task\":\"%s\"}", task);
    json_t *r = call_meta(f, "task_status", args, "", 0);
    snprintf(buf, sizeof buf, "%s", str(ok(r), "state"));
    return buf;
}

/* chaos_inject_latency's effect on the virtual clock: before it, a task completes without any
 * time passing; after ms=50 on the swarm's only agent, a task it runs has not completed 49 ms
 * after its submission and has completed once 50 ms passed. */
static void test_chaos_latency_delays_tasks(void **state)
{
    fx *f = *state;
    assert_int_equal(mcp_flow_set_chaos(f->mf, true), 0);
    ok(call(f, "swarm_init",
            "{\"id\":\"lat\",\"config\":{\"max_agents\":1,\"pool_min\":{\"worker\":1,"
            "\"specialist\":0,\"scout\":0},\"pool_max\":{\"worker\":1,\"specialist\":0,"
            "\"scout\":0}}}"));
    pump(f, 0, 50);
    json_t *agents = ok(call(f, "agent_list", "{\"swarm\":\"lat\"}"));
    assert_int_equal(json_array_size(json_object_get(agents, "agents")), 1);
    char agent[64], task[64], args[160];
    snprintf(agent, sizeof agent, "%s",
             str(json_array_get(json_object_get(agents, "agents"), 0), "id"));
    /* no latency yet: done at the time it was submitted */
    uint64_t t0 = sup_rt_now(f->rt);
    json_t *tk = ok(call_meta(f, "task_submit", "{\"swarm\":\"lat\",\"input\":{\"v\":1}}", "", 0));
    snprintf(task, sizeof task, "%s", str(tk, "id"));
    assert_string_equal(task_state(f, task), "completed");
    assert_int_equal(sup_rt_now(f->rt), t0);
    /* 50 ms on the agent */
    snprintf(args, sizeof args, "{\"agent\":\"%s\",\"ms\":50}", agent);
    assert_true(
        json_is_true(json_object_get(ok(call(f, "chaos_inject_latency", args)), "injected")));
    pump(f, 0, 0); /* the registry passes it on to the agent */
    t0 = sup_rt_now(f->rt);
    tk = ok(call_meta(f, "task_submit", "{\"swarm\":\"lat\",\"input\":{\"v\":2}}", "", 0));
    snprintf(task, sizeof task, "%s", str(tk, "id"));
    assert_int_equal(sup_rt_now(f->rt), t0);
    assert_string_equal(task_state(f, task), "running");
    pump(f, 0, 49);
    assert_int_equal(sup_rt_now(f->rt), t0 + 49);
    assert_string_equal(task_state(f, task), "running");
    pump(f, 0, 2);
    assert_string_equal(task_state(f, task), "completed");
    snprintf(args, sizeof args, "{\"task\":\"%s\"}", task);
    json_t *r = ok(call(f, "task_result", args));
    assert_int_equal(json_integer_value(json_object_get(json_object_get(r, "result"), "v")), 2);
}

/* A second client session that counts list_changed. */
typedef struct peer {
    int list_changed, other;
} peer;

static void peer_send(void *user, void *origin, const char *json, size_t len, bool response)
{
    (void)origin;
    (void)response;
    peer *p = user;
    static const char lc[] = "notifications/tools/list_changed";
    if (memmem(json, len, lc, sizeof lc - 1) != NULL) { /* json is not NUL-terminated */
        p->list_changed++;
    } else {
        p->other++;
    }
}

static const mcp_transport peer_transport = {peer_send, t_done};

static mcp_session *peer_open(fx *f, peer *p, bool initialized)
{
    mcp_session *ss = mcp_session_new(f->srv, &peer_transport, p);
    assert_non_null(ss);
    static const char init[] =
        "{\"jsonrpc\":\"2.0\",\"id\":0,\"method\":\"initialize\",\"params\":{"
        "\"protocolVersion\":\"2025-06-18\",\"capabilities\":{},\"clientInfo\":{\"name\":\"p\","
        "\"version\":\"1\"}}}";
    static const char done[] = "{\"jsonrpc\":\"2.0\",\"method\":\"notifications/initialized\"}";
    assert_int_equal(mcp_session_input(ss, init, sizeof init - 1, NULL, NULL), 0);
    if (initialized) {
        assert_int_equal(mcp_session_input(ss, done, sizeof done - 1, NULL, NULL), 0);
    }
    return ss;
}

/* The admin handler's answer: status, and the reply parsed (owned by the caller). */
static int admin(mcp_flow *mf, const char *method, const char *body, json_t **reply)
{
    char *text = NULL;
    int status = mcp_flow_admin_chaos(mf, method, body, strlen(body), &text);
    *reply = text != NULL ? json_loads(text, 0, NULL) : NULL;
    free(text);
    assert_non_null(*reply);
    return status;
}

static void test_operator_refused(void **state)
{
    fx *f = *state;
    size_t before = mcp_server_tool_count(f->srv);
    assert_false(mcp_flow_chaos_allowed(f->mf));
    assert_int_equal(mcp_flow_operator_chaos(f->mf, true), MCP_ESTATE);
    json_t *r;
    assert_int_equal(admin(f->mf, "POST", "{\"chaos\":true}", &r), 403);
    assert_string_equal(str(r, "error"), "chaos_not_allowed");
    json_decref(r);
    assert_false(mcp_flow_chaos(f->mf));
    assert_int_equal(mcp_server_tool_count(f->srv), before);
    assert_int_equal(count_method(f, "notifications/tools/list_changed"), 0);
    /* off is always allowed (and changes nothing here) */
    assert_int_equal(mcp_flow_operator_chaos(f->mf, false), 0);
    assert_int_equal(admin(f->mf, "GET", "", &r), 200);
    assert_false(json_is_true(json_object_get(r, "chaos")));
    assert_false(json_is_true(json_object_get(r, "allowed")));
    json_decref(r);
    /* a client cannot reach the tools */
    r = call(f, "chaos_kill_process", "{\"name\":\"erlmcp_flow_task_queue\"}");
    assert_int_equal(json_integer_value(json_object_get(json_object_get(r, "error"), "code")),
                     MCP_RPC_INVALID_PARAMS);
    /* bad requests */
    static const char *const bad[] = {"",
                                      "{}",
                                      "{\"chaos\":1}",
                                      "[true]",
                                      "{\"chaos\":true,\"x\":1}",
                                      "{\"chaos\":true,\"chaos\":false}"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        assert_int_equal(admin(f->mf, "POST", bad[i], &r), 400);
        assert_string_equal(str(r, "error"), "invalid_argument");
        json_decref(r);
    }
    assert_int_equal(admin(f->mf, "PUT", "{\"chaos\":true}", &r), 405);
    json_decref(r);
    assert_int_equal(admin(NULL, "GET", "", &r), 503);
    json_decref(r);
    assert_int_equal(count_method(f, "notifications/tools/list_changed"), 0);
}

static void test_operator_switch(void **state)
{
    fx *f = *state;
    assert_true(mcp_flow_chaos_allowed(f->mf));
    assert_false(mcp_flow_chaos(f->mf));
    size_t before = mcp_server_tool_count(f->srv);
    peer ready = {0}, pending = {0};
    mcp_session *s2 = peer_open(f, &ready, true);
    mcp_session *s3 = peer_open(f, &pending, false); /* initialize only: not notified */
    /* on: one list_changed to each of the two initialized sessions */
    json_t *r;
    assert_int_equal(admin(f->mf, "POST", "{\"chaos\":true}", &r), 200);
    assert_true(json_is_true(json_object_get(r, "chaos")));
    assert_true(json_is_true(json_object_get(r, "changed")));
    assert_int_equal(json_integer_value(json_object_get(r, "notified")), 2);
    json_decref(r);
    assert_int_equal(count_method(f, "notifications/tools/list_changed"), 1);
    assert_int_equal(ready.list_changed, 1);
    assert_int_equal(pending.list_changed, 0);
    assert_int_equal(mcp_server_tool_count(f->srv), before + 3);
    /* the tools act */
    assert_non_null(
        strstr(tool_error(call(f, "chaos_kill_process", "{\"name\":\"nobody\"}")), "not_found"));
    /* on again: nothing */
    clear(f);
    assert_int_equal(mcp_flow_operator_chaos(f->mf, true), 0);
    assert_int_equal(admin(f->mf, "POST", "{\"chaos\":true}", &r), 200);
    assert_false(json_is_true(json_object_get(r, "changed")));
    json_decref(r);
    assert_int_equal(count_method(f, "notifications/tools/list_changed"), 0);
    assert_int_equal(ready.list_changed, 1);
    /* off through the signal path's function: two sessions notified once each */
    assert_int_equal(mcp_flow_operator_chaos(f->mf, false), 2);
    assert_int_equal(count_method(f, "notifications/tools/list_changed"), 1);
    assert_int_equal(ready.list_changed, 2);
    assert_int_equal(mcp_server_tool_count(f->srv), before);
    /* a session that ended is not notified; the one that finished its handshake now is */
    mcp_session_free(s2);
    static const char done[] = "{\"jsonrpc\":\"2.0\",\"method\":\"notifications/initialized\"}";
    assert_int_equal(mcp_session_input(s3, done, sizeof done - 1, NULL, NULL), 0);
    assert_int_equal(admin(f->mf, "POST", "{\"chaos\":true}", &r), 200);
    assert_int_equal(json_integer_value(json_object_get(r, "notified")), 2);
    json_decref(r);
    assert_int_equal(pending.list_changed, 1);
    assert_int_equal(ready.list_changed, 2);
    mcp_session_free(s3);
    /* the batch switch refuses unknown names and changes nothing */
    const char *names[] = {"chaos_kill_agent", "no_such_tool"};
    assert_int_equal(mcp_server_set_tools_enabled(f->srv, names, 2, false), MCP_ENOENT);
    assert_int_equal(mcp_server_tool_count(f->srv), before + 3);
}

static void test_gateway_restart(void **state)
{
    fx *f = *state;
    ok(call(f, "swarm_init", "{\"id\":\"idle\",\"config\":" NO_POOL "}"));
    long id = ++f->next_id;
    input(f,
          "{\"jsonrpc\":\"2.0\",\"id\":%ld,\"method\":\"tools/call\",\"params\":{\"name\":"
          "\"task_submit\",\"arguments\":{\"swarm\":\"idle\",\"input\":1,\"wait\":600000}}}",
          id);
    pump(f, 0, 300);
    sup_pid gw = sup_whereis(f->rt, MCP_FLOW_ACTOR);
    assert_false(sup_pid_is_null(gw));
    sup_reason k = {.kind = SUP_R_KILL};
    sup_exit(f->rt, SUP_NOPID, gw, &k);
    json_t *r = pump(f, id, 100);
    assert_non_null(r);
    assert_non_null(strstr(tool_error(r), "gateway stopped"));
    assert_int_equal(mcp_flow_pending(f->mf), 0);
    /* restarted by the supervisor under the same name: calls work again */
    assert_false(sup_pid_eq(sup_whereis(f->rt, MCP_FLOW_ACTOR), gw));
    json_t *l = ok(call(f, "swarm_list", "{}"));
    assert_int_equal(json_array_size(json_object_get(l, "swarms")), 1);
}

static void test_flow_down(void **state)
{
    fx *f = *state;
    /* flow's root goes away for good (its supervisor entry is terminated): tool errors */
    sup_pid fs = sup_whereis(f->rt, "erlmcp_flow_sup");
    assert_false(sup_pid_is_null(fs));
    assert_int_equal(sup_terminate_child_sync(f->rt, f->root, "erlmcp_flow_sup", SUP_NOPID), 0);
    assert_non_null(strstr(tool_error(call(f, "swarm_list", "{}")), "not running"));
    assert_int_equal(mcp_flow_pending(f->mf), 0);
    assert_int_equal(sup_restart_child_sync(f->rt, f->root, "erlmcp_flow_sup", NULL, NULL), 0);
    ok(call(f, "swarm_list", "{}"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_tools_list, setup, teardown),
        cmocka_unit_test_setup_teardown(test_swarm_and_agent_tools, setup, teardown),
        cmocka_unit_test_setup_teardown(test_task_tools, setup, teardown),
        cmocka_unit_test_setup_teardown(test_tool_errors, setup, teardown),
        cmocka_unit_test_setup_teardown(test_schema_errors, setup, teardown),
        cmocka_unit_test_setup_teardown(test_schema_errors_latest, setup_latest, teardown),
        cmocka_unit_test_setup_teardown(test_submit_wait_progress, setup, teardown),
        cmocka_unit_test_setup_teardown(test_submit_wait_timeout, setup, teardown),
        cmocka_unit_test_setup_teardown(test_submit_wait_cancel, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cancel_before_start, setup, teardown),
        cmocka_unit_test_setup_teardown(test_session_end_cancels, setup, teardown),
        cmocka_unit_test_setup_teardown(test_chaos_switch, setup, teardown),
        cmocka_unit_test_setup_teardown(test_chaos_latency_delays_tasks, setup, teardown),
        cmocka_unit_test_setup_teardown(test_operator_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_operator_switch, setup_allowed, teardown),
        cmocka_unit_test_setup_teardown(test_gateway_restart, setup, teardown),
        cmocka_unit_test_setup_teardown(test_flow_down, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
