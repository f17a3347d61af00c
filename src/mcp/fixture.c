/* src/mcp/fixture.c — test fixture tools (see fixture.h). */
#include "fixture.h"

#include <stdio.h>
#include <stdlib.h>

typedef struct slow_run {
    uv_timer_t timer;
    mcp_call *call; /* NULL once completed or cancelled */
    int step, steps;
} slow_run;

static int slow_running;
static mcp_server *fixture_server;

int mcp_fixture_slow_running(void)
{
    return slow_running;
}

static int fx_echo(mcp_call *c, const json_t *args, void *user)
{
    (void)user;
    mcp_call_return(c, json_pack("{s:O}", "text", json_object_get(args, "text")));
    return 0;
}

static int fx_add(mcp_call *c, const json_t *args, void *user)
{
    (void)user;
    json_int_t a = json_integer_value(json_object_get(args, "a"));
    json_int_t b = json_integer_value(json_object_get(args, "b"));
    mcp_call_return(c, json_pack("{s:I}", "sum", a + b));
    return 0;
}

static int fx_fail(mcp_call *c, const json_t *args, void *user)
{
    (void)args;
    (void)user;
    mcp_call_fail(c, "the fail tool always fails");
    return 0;
}

static void slow_closed(uv_handle_t *h)
{
    free(h->data);
}

static void slow_stop(slow_run *r)
{
    r->call = NULL;
    slow_running--;
    uv_timer_stop(&r->timer);
    uv_close((uv_handle_t *)&r->timer, slow_closed);
}

static void slow_tick(uv_timer_t *t)
{
    slow_run *r = t->data;
    r->step++;
    char msg[64];
    snprintf(msg, sizeof msg, "step %d of %d", r->step, r->steps);
    mcp_call_progress(r->call, r->step, r->steps, msg);
    if (r->step == r->steps) {
        mcp_call *c = r->call;
        slow_stop(r);
        mcp_call_return(c, json_pack("{s:i}", "steps", r->steps));
    }
}

static void slow_cancel(mcp_call *c, void *arg)
{
    (void)c;
    slow_stop(arg);
}

static int fx_slow(mcp_call *c, const json_t *args, void *user)
{
    uv_loop_t *loop = user;
    json_t *st = json_object_get(args, "steps");
    json_t *iv = json_object_get(args, "interval_ms");
    slow_run *r = calloc(1, sizeof *r);
    if (r == NULL) {
        return MCP_ENOMEM;
    }
    r->call = c;
    r->steps = st != NULL ? (int)json_integer_value(st) : 3;
    uint64_t ms = iv != NULL ? (uint64_t)json_integer_value(iv) : 50;
    uv_timer_init(loop, &r->timer);
    r->timer.data = r;
    uv_timer_start(&r->timer, slow_tick, ms, ms);
    slow_running++;
    mcp_call_on_cancel(c, slow_cancel, r);
    return 0;
}

static int fx_toggle(mcp_call *c, const json_t *args, void *user)
{
    (void)user;
    bool on = json_is_true(json_object_get(args, "enabled"));
    int rc = mcp_server_set_tool_enabled(fixture_server, "extra", on);
    if (rc != 0) {
        mcp_call_fail(c, "cannot switch extra: %s", mcp_strerror(rc));
    } else {
        mcp_call_return(c, json_pack("{s:b}", "enabled", on));
    }
    return 0;
}

static int fx_extra(mcp_call *c, const json_t *args, void *user)
{
    (void)args;
    (void)user;
    mcp_call_return(c, json_pack("{s:b}", "ok", 1));
    return 0;
}

static int add(mcp_server *s, const char *name, const char *desc, const char *in, const char *out,
               mcp_tool_fn fn, void *user, bool enabled)
{
    json_error_t e;
    json_t *is = json_loads(in, 0, &e);
    json_t *os = out != NULL ? json_loads(out, 0, &e) : NULL;
    mcp_tool_def d = {.name = name,
                      .title = name,
                      .description = desc,
                      .input_schema = is,
                      .output_schema = os,
                      .call = fn,
                      .user = user};
    int rc = is != NULL ? mcp_server_add_tool(s, &d, enabled) : MCP_ENOMEM;
    json_decref(is);
    json_decref(os);
    return rc;
}

int mcp_fixture_register(mcp_server *s, uv_loop_t *loop)
{
    fixture_server = s;
    int rc = add(s, "echo", "Echoes its text",
                 "{\"type\":\"object\",\"properties\":{\"text\":{\"type\":\"string\"}},"
                 "\"required\":[\"text\"]}",
                 "{\"type\":\"object\",\"properties\":{\"text\":{\"type\":\"string\"}},"
                 "\"required\":[\"text\"]}",
                 fx_echo, NULL, true);
    if (rc == 0) {
        rc = add(s, "add", "Adds two integers",
                 "{\"type\":\"object\",\"properties\":{\"a\":{\"type\":\"integer\"},\"b\":{"
                 "\"type\":\"integer\"}},\"required\":[\"a\",\"b\"],"
                 "\"additionalProperties\":false}",
                 "{\"type\":\"object\",\"properties\":{\"sum\":{\"type\":\"integer\"}},"
                 "\"required\":[\"sum\"]}",
                 fx_add, NULL, true);
    }
    if (rc == 0) {
        rc = add(s, "slow", "Counts steps on a timer, reporting progress",
                 "{\"type\":\"object\",\"properties\":{\"steps\":{\"type\":\"integer\","
                 "\"minimum\":1,\"maximum\":1000},\"interval_ms\":{\"type\":\"integer\","
                 "\"minimum\":1,\"maximum\":60000}}}",
                 "{\"type\":\"object\",\"properties\":{\"steps\":{\"type\":\"integer\"}}}", fx_slow,
                 loop, true);
    }
    if (rc == 0) {
        rc = add(s, "fail", "Always fails", "{\"type\":\"object\"}", NULL, fx_fail, NULL, true);
    }
    if (rc == 0) {
        rc = add(s, "toggle_extra", "Switches the tool extra on or off",
                 "{\"type\":\"object\",\"properties\":{\"enabled\":{\"type\":\"boolean\"}},"
                 "\"required\":[\"enabled\"]}",
                 NULL, fx_toggle, NULL, true);
    }
    if (rc == 0) {
        rc = add(s, "extra", "Exists while switched on", "{\"type\":\"object\"}", NULL, fx_extra,
                 NULL, false);
    }
    return rc;
}
