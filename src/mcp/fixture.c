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

/* ---- the conformance suite's fixture tools ------------------------------------------------ */

#define FX_PNG                                                                                     \
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAIAAACQd1PeAAAADElEQVR4nGP4z8AAAAMBAQDJ/pLvAAAAAElFTkSuQmCC"
#define FX_WAV "UklGRiwAAABXQVZFZm10IBAAAAABAAEAQB8AAEAfAAABAAgAZGF0YQgAAACAgICAgICAgA=="

static int cf_simple_text(mcp_call *c, const json_t *args, void *user)
{
    (void)args;
    (void)user;
    mcp_call_return_content(c,
                            json_pack("[{s:s, s:s}]", "type", "text", "text",
                                      "This is a simple text response for testing."),
                            NULL);
    return 0;
}

static int cf_image(mcp_call *c, const json_t *args, void *user)
{
    (void)args;
    (void)user;
    mcp_call_return_content(
        c, json_pack("[{s:s, s:s, s:s}]", "type", "image", "data", FX_PNG, "mimeType", "image/png"),
        NULL);
    return 0;
}

static int cf_audio(mcp_call *c, const json_t *args, void *user)
{
    (void)args;
    (void)user;
    mcp_call_return_content(
        c, json_pack("[{s:s, s:s, s:s}]", "type", "audio", "data", FX_WAV, "mimeType", "audio/wav"),
        NULL);
    return 0;
}

static int cf_embedded(mcp_call *c, const json_t *args, void *user)
{
    (void)args;
    (void)user;
    mcp_call_return_content(c,
                            json_pack("[{s:s, s:{s:s, s:s, s:s}}]", "type", "resource", "resource",
                                      "uri", "test://embedded-resource", "mimeType", "text/plain",
                                      "text", "This is an embedded resource content."),
                            NULL);
    return 0;
}

static int cf_mixed(mcp_call *c, const json_t *args, void *user)
{
    (void)args;
    (void)user;
    mcp_call_return_content(
        c,
        json_pack("[{s:s, s:s}, {s:s, s:s, s:s}, {s:s, s:{s:s, s:s, s:s}}]", "type", "text", "text",
                  "Multiple content types test:", "type", "image", "data", FX_PNG, "mimeType",
                  "image/png", "type", "resource", "resource", "uri",
                  "test://mixed-content-resource", "mimeType", "application/json", "text",
                  "{\"test\":\"data\",\"value\":123}"),
        NULL);
    return 0;
}

static int cf_error(mcp_call *c, const json_t *args, void *user)
{
    (void)args;
    (void)user;
    mcp_call_fail(c, "This tool intentionally returns an error for testing");
    return 0;
}

static int cf_schema(mcp_call *c, const json_t *args, void *user)
{
    (void)user;
    char *t = json_dumps(args, JSON_COMPACT);
    mcp_call_return_content(c, json_pack("[{s:s, s:s}]", "type", "text", "text", t ? t : "{}"),
                            NULL);
    free(t);
    return 0;
}

/* test_tool_with_logging (3 info logs, 50 ms apart) and test_tool_with_progress (0, 50, 100 of
 * 100, 50 ms apart) on a libuv timer; cancellable. */
typedef struct cf_seq {
    uv_timer_t timer;
    mcp_call *call; /* NULL once completed or cancelled */
    bool progress;
    int step;
} cf_seq;

static void cf_seq_closed(uv_handle_t *h)
{
    free(h->data);
}

static void cf_seq_stop(cf_seq *q)
{
    q->call = NULL;
    uv_timer_stop(&q->timer);
    uv_close((uv_handle_t *)&q->timer, cf_seq_closed);
}

static void cf_seq_step(cf_seq *q)
{
    static const char *const logs[] = {"Tool execution started", "Tool processing data",
                                       "Tool execution completed"};
    if (q->progress) {
        mcp_call_progress(q->call, q->step * 50.0, 100, NULL);
    } else {
        mcp_call_log(q->call, MCP_LOG_INFO, "conformance", json_string(logs[q->step]));
    }
    if (++q->step == 3) {
        mcp_call *c = q->call;
        bool progress = q->progress;
        cf_seq_stop(q);
        mcp_call_return_content(
            c,
            json_pack("[{s:s, s:s}]", "type", "text", "text",
                      progress ? "Tool with progress completed" : "Tool with logging completed"),
            NULL);
    }
}

static void cf_seq_tick(uv_timer_t *t)
{
    cf_seq_step(t->data);
}

static void cf_seq_cancel(mcp_call *c, void *arg)
{
    (void)c;
    cf_seq_stop(arg);
}

static int cf_seq_start(mcp_call *c, uv_loop_t *loop, bool progress)
{
    cf_seq *q = calloc(1, sizeof *q);
    if (q == NULL) {
        return MCP_ENOMEM;
    }
    q->call = c;
    q->progress = progress;
    uv_timer_init(loop, &q->timer);
    q->timer.data = q;
    mcp_call_on_cancel(c, cf_seq_cancel, q);
    cf_seq_step(q); /* the first one at once */
    uv_timer_start(&q->timer, cf_seq_tick, 50, 50);
    return 0;
}

static int cf_logging(mcp_call *c, const json_t *args, void *user)
{
    (void)args;
    return cf_seq_start(c, user, false);
}

static int cf_progress(mcp_call *c, const json_t *args, void *user)
{
    (void)args;
    return cf_seq_start(c, user, true);
}

int mcp_fixture_register_conformance(mcp_server *s, uv_loop_t *loop)
{
    static const struct {
        const char *name, *desc;
        mcp_tool_fn fn;
        bool loop;
    } tools[] = {
        {"test_simple_text", "Returns simple text content", cf_simple_text, false},
        {"test_image_content", "Returns an image (1x1 PNG)", cf_image, false},
        {"test_audio_content", "Returns audio (a short WAV)", cf_audio, false},
        {"test_embedded_resource", "Returns an embedded text resource", cf_embedded, false},
        {"test_multiple_content_types", "Returns text, image and resource content", cf_mixed,
         false},
        {"test_tool_with_logging", "Sends three info logs 50 ms apart", cf_logging, true},
        {"test_error_handling", "Always returns a tool error", cf_error, false},
        {"test_tool_with_progress", "Sends progress 0, 50, 100 of 100, 50 ms apart", cf_progress,
         true},
    };
    int rc = 0;
    for (size_t i = 0; i < sizeof tools / sizeof tools[0] && rc == 0; i++) {
        rc = add(s, tools[i].name, tools[i].desc, "{\"type\":\"object\"}", NULL, tools[i].fn,
                 tools[i].loop ? loop : NULL, true);
    }
    if (rc == 0) {
        rc = add(s, "json_schema_2020_12_tool", "Tool with JSON Schema 2020-12 features",
                 "{\"$schema\":\"https://json-schema.org/draft/2020-12/schema\",\"type\":"
                 "\"object\",\"$defs\":{\"address\":{\"type\":\"object\",\"properties\":{"
                 "\"street\":{\"type\":\"string\"},\"city\":{\"type\":\"string\"}}}},"
                 "\"properties\":{\"name\":{\"type\":\"string\"},\"address\":{\"$ref\":"
                 "\"#/$defs/address\"}},\"additionalProperties\":false}",
                 NULL, cf_schema, NULL, true);
    }
    return rc;
}
