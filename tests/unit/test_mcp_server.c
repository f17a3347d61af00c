/* tests/unit/test_mcp_server.c — the sans-I/O MCP server core (src/mcp/server.c, schema.c):
 * lifecycle and version negotiation, every JSON-RPC error path, batches, tools/list
 * pagination, tools/call results and errors, progress, cancellation, list_changed, logging. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "macula/mcp.h"
#include "macula/version.h"
#include "mcp/schema.h"

#define MAXOUT 512

typedef struct out {
    void *origin;
    bool response;
    json_t *msg;
} out;

typedef struct fx {
    mcp_server *srv;
    mcp_session *ss;
    out outs[MAXOUT];
    int n;
    void *done[MAXOUT];
    int ndone;
} fx;

/* The slow tool's call in flight, driven by the test. */
static mcp_call *slow_call;
static int slow_cancelled;
static mcp_call *nohook_call;

static void t_send(void *user, void *origin, const char *json, size_t len, bool response)
{
    fx *f = user;
    assert_true(f->n < MAXOUT);
    assert_null(memchr(json, '\n', len));
    json_error_t e;
    json_t *m = json_loadb(json, len, 0, &e);
    assert_non_null(m);
    f->outs[f->n++] = (out){origin, response, m};
}

static void t_done(void *user, void *origin)
{
    fx *f = user;
    assert_true(f->ndone < MAXOUT);
    f->done[f->ndone++] = origin;
}

static const mcp_transport transport = {t_send, t_done};

static void clear(fx *f)
{
    for (int i = 0; i < f->n; i++) {
        json_decref(f->outs[i].msg);
    }
    f->n = 0;
    f->ndone = 0;
}

/* ---- fixture tools ---------------------------------------------------------------------- */

static int tool_echo(mcp_call *c, const json_t *args, void *user)
{
    (void)user;
    mcp_call_return(c, json_pack("{s:O}", "text", json_object_get(args, "text")));
    return 0;
}

static int tool_add(mcp_call *c, const json_t *args, void *user)
{
    (void)user;
    json_int_t a = (json_int_t)json_number_value(json_object_get(args, "a"));
    json_int_t b = (json_int_t)json_number_value(json_object_get(args, "b"));
    mcp_call_return(c, json_pack("{s:I}", "sum", a + b));
    return 0;
}

static void slow_cancel(mcp_call *c, void *arg)
{
    (void)arg;
    assert_ptr_equal(c, slow_call);
    slow_cancelled++;
    slow_call = NULL;
}

static int tool_slow(mcp_call *c, const json_t *args, void *user)
{
    (void)args;
    (void)user;
    slow_call = c;
    mcp_call_on_cancel(c, slow_cancel, NULL);
    return 0;
}

static int tool_nohook(mcp_call *c, const json_t *args, void *user)
{
    (void)args;
    (void)user;
    nohook_call = c;
    return 0;
}

static int tool_fail(mcp_call *c, const json_t *args, void *user)
{
    (void)args;
    (void)user;
    mcp_call_fail(c, "it broke: %d", 42);
    return 0;
}

static int tool_bad_output(mcp_call *c, const json_t *args, void *user)
{
    (void)args;
    (void)user;
    mcp_call_return(c, json_pack("{s:s}", "sum", "not a number"));
    return 0;
}

static int tool_rc(mcp_call *c, const json_t *args, void *user)
{
    (void)c;
    (void)args;
    (void)user;
    return MCP_ELIMIT;
}

static void add_tool(mcp_server *s, const char *name, const char *in, const char *outs,
                     mcp_tool_fn fn, bool enabled)
{
    json_error_t e;
    json_t *is = json_loads(in, 0, &e);
    json_t *os = outs ? json_loads(outs, 0, &e) : NULL;
    json_t *ann = json_pack("{s:b}", "readOnlyHint", 1);
    assert_non_null(is);
    mcp_tool_def d = {.name = name,
                      .title = "A title",
                      .description = "desc",
                      .input_schema = is,
                      .output_schema = os,
                      .annotations = ann,
                      .call = fn};
    assert_int_equal(mcp_server_add_tool(s, &d, enabled), 0);
    json_decref(is);
    json_decref(os);
    json_decref(ann);
}

#define ADD_IN                                                                                     \
    "{\"type\":\"object\",\"properties\":{\"a\":{\"type\":\"integer\",\"minimum\":-1000,"          \
    "\"maximum\":1000},\"b\":{\"type\":\"integer\"}},\"required\":[\"a\",\"b\"],"                  \
    "\"additionalProperties\":false}"
#define SUM_OUT "{\"type\":\"object\",\"properties\":{\"sum\":{\"type\":\"integer\"}}}"

static fx *fx_new(size_t page_size)
{
    fx *f = calloc(1, sizeof *f);
    mcp_server_config c;
    mcp_server_config_defaults(&c);
    c.instructions = "use the tools";
    c.title = "Macula";
    c.page_size = page_size;
    c.max_inflight = 4;
    f->srv = mcp_server_new(&c);
    add_tool(f->srv, "echo",
             "{\"type\":\"object\",\"properties\":{\"text\":{\"type\":\"string\"}},"
             "\"required\":[\"text\"]}",
             "{\"type\":\"object\",\"properties\":{\"text\":{\"type\":\"string\"}},"
             "\"required\":[\"text\"]}",
             tool_echo, true);
    add_tool(f->srv, "add", ADD_IN, SUM_OUT, tool_add, true);
    add_tool(f->srv, "slow",
             "{\"type\":\"object\",\"properties\":{\"steps\":{\"type\":\"integer\"}}}", NULL,
             tool_slow, true);
    add_tool(f->srv, "fail", "{\"type\":\"object\"}", NULL, tool_fail, true);
    add_tool(f->srv, "bad_output", "{\"type\":\"object\"}", SUM_OUT, tool_bad_output, true);
    add_tool(f->srv, "rc", "{\"type\":\"object\"}", NULL, tool_rc, true);
    add_tool(f->srv, "nohook", "{\"type\":\"object\"}", NULL, tool_nohook, true);
    add_tool(f->srv, "hidden", "{\"type\":\"object\"}", NULL, tool_echo, false);
    f->ss = mcp_session_new(f->srv, &transport, f);
    slow_call = NULL;
    nohook_call = NULL;
    slow_cancelled = 0;
    return f;
}

static int setup(void **state)
{
    *state = fx_new(100);
    return 0;
}

static int teardown(void **state)
{
    fx *f = *state;
    clear(f);
    mcp_session_free(f->ss);
    clear(f);
    mcp_server_free(f->srv);
    free(f);
    return 0;
}

static mcp_input_info in(fx *f, const char *msg)
{
    mcp_input_info info;
    assert_int_equal(mcp_session_input(f->ss, msg, strlen(msg), f, &info), 0);
    return info;
}

/* Sends msg and returns the single message it produced (borrowed until clear). */
static json_t *rpc(fx *f, const char *msg)
{
    clear(f);
    in(f, msg);
    assert_int_equal(f->n, 1);
    assert_true(f->outs[0].response);
    assert_int_equal(f->ndone, 1);
    return f->outs[0].msg;
}

static json_t *result_of(json_t *m)
{
    json_t *r = json_object_get(m, "result");
    if (r == NULL) {
        fail_msg("not a result: %s", json_dumps(m, 0));
    }
    return r;
}

static int error_code(json_t *m)
{
    json_t *e = json_object_get(m, "error");
    if (e == NULL) {
        fail_msg("not an error: %s", json_dumps(m, 0));
    }
    return (int)json_integer_value(json_object_get(e, "code"));
}

static void init_version(fx *f, const char *version)
{
    char msg[256];
    snprintf(msg, sizeof msg,
             "{\"jsonrpc\":\"2.0\",\"id\":0,\"method\":\"initialize\",\"params\":{"
             "\"protocolVersion\":\"%s\",\"capabilities\":{},\"clientInfo\":{\"name\":\"t\","
             "\"version\":\"1\"}}}",
             version);
    result_of(rpc(f, msg));
    clear(f);
    in(f, "{\"jsonrpc\":\"2.0\",\"method\":\"notifications/initialized\"}");
    assert_int_equal(f->n, 0);
    assert_int_equal(mcp_session_get_state(f->ss), MCP_SESSION_READY);
    clear(f);
}

/* ---- lifecycle -------------------------------------------------------------------------- */

static void test_version_negotiation(void **state)
{
    (void)state;
    static const struct {
        const char *asked, *answered;
        bool title;
    } table[] = {
        {"2024-11-05", "2024-11-05", false}, {"2025-03-26", "2025-03-26", false},
        {"2025-06-18", "2025-06-18", true},  {"2025-11-25", "2025-11-25", true},
        {"2023-01-01", "2025-11-25", true},  {"2099-12-31", "2025-11-25", true},
        {"nonsense", "2025-11-25", true},
    };
    for (size_t i = 0; i < sizeof table / sizeof table[0]; i++) {
        fx *f = fx_new(100);
        char msg[256];
        snprintf(msg, sizeof msg,
                 "{\"jsonrpc\":\"2.0\",\"id\":\"i\",\"method\":\"initialize\",\"params\":{"
                 "\"protocolVersion\":\"%s\",\"capabilities\":{}}}",
                 table[i].asked);
        json_t *m = rpc(f, msg);
        assert_string_equal(json_string_value(json_object_get(m, "id")), "i");
        json_t *r = result_of(m);
        assert_string_equal(json_string_value(json_object_get(r, "protocolVersion")),
                            table[i].answered);
        assert_string_equal(mcp_session_protocol(f->ss), table[i].answered);
        json_t *caps = json_object_get(r, "capabilities");
        assert_true(json_is_true(json_object_get(json_object_get(caps, "tools"), "listChanged")));
        assert_true(json_is_object(json_object_get(caps, "logging")));
        json_t *si = json_object_get(r, "serverInfo");
        assert_string_equal(json_string_value(json_object_get(si, "name")), "macula");
        assert_string_equal(json_string_value(json_object_get(si, "version")), MACULA_VERSION);
        assert_int_equal(json_object_get(si, "title") != NULL, table[i].title);
        assert_string_equal(json_string_value(json_object_get(r, "instructions")), "use the tools");
        assert_int_equal(mcp_session_get_state(f->ss), MCP_SESSION_INITIALIZING);
        teardown((void **)&f);
    }
    assert_int_equal(mcp_protocol_index("2025-06-18"), 2);
    assert_int_equal(mcp_protocol_index(NULL), -1);
}

static void test_initialize_errors(void **state)
{
    fx *f = *state;
    assert_int_equal(error_code(rpc(f, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"initialize\"}")),
                     -32602);
    assert_int_equal(error_code(rpc(f, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"initialize\","
                                       "\"params\":{\"protocolVersion\":5}}")),
                     -32602);
    assert_int_equal(error_code(rpc(f, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"initialize\","
                                       "\"params\":[\"2025-06-18\"]}")),
                     -32602);
    assert_int_equal(error_code(rpc(f, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"initialize\","
                                       "\"params\":{\"protocolVersion\":\"2025-06-18\","
                                       "\"capabilities\":3}}")),
                     -32602);
    assert_int_equal(mcp_session_get_state(f->ss), MCP_SESSION_NEW);
    init_version(f, "2025-06-18");
    assert_int_equal(error_code(rpc(f, "{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":\"initialize\","
                                       "\"params\":{\"protocolVersion\":\"2025-06-18\"}}")),
                     -32600);
    assert_string_equal(mcp_session_protocol(f->ss), "2025-06-18");
}

static void test_only_ping_before_initialized(void **state)
{
    fx *f = *state;
    assert_null(mcp_session_protocol(f->ss));
    json_t *m = rpc(f, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"ping\"}");
    assert_int_equal(json_object_size(result_of(m)), 0);
    assert_int_equal(error_code(rpc(f, "{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":\"tools/list\"}")),
                     -32600);
    assert_int_equal(error_code(rpc(f, "{\"jsonrpc\":\"2.0\",\"id\":3,\"method\":\"tools/call\","
                                       "\"params\":{\"name\":\"echo\"}}")),
                     -32600);
    assert_int_equal(error_code(rpc(f, "{\"jsonrpc\":\"2.0\",\"id\":4,\"method\":"
                                       "\"logging/setLevel\",\"params\":{\"level\":\"info\"}}")),
                     -32600);
    /* initialized before initialize is ignored */
    clear(f);
    in(f, "{\"jsonrpc\":\"2.0\",\"method\":\"notifications/initialized\"}");
    assert_int_equal(mcp_session_get_state(f->ss), MCP_SESSION_NEW);
    result_of(rpc(f, "{\"jsonrpc\":\"2.0\",\"id\":5,\"method\":\"initialize\",\"params\":{"
                     "\"protocolVersion\":\"2025-03-26\"}}"));
    /* initialize answered but notifications/initialized not received: still only ping */
    assert_int_equal(error_code(rpc(f, "{\"jsonrpc\":\"2.0\",\"id\":6,\"method\":\"tools/list\"}")),
                     -32600);
    result_of(rpc(f, "{\"jsonrpc\":\"2.0\",\"id\":7,\"method\":\"ping\"}"));
    clear(f);
    in(f, "{\"jsonrpc\":\"2.0\",\"method\":\"notifications/initialized\"}");
    result_of(rpc(f, "{\"jsonrpc\":\"2.0\",\"id\":8,\"method\":\"tools/list\"}"));
}

static void test_rpc_errors(void **state)
{
    fx *f = *state;
    init_version(f, "2025-06-18");
    clear(f);
    mcp_input_info info = in(f, "{not json");
    assert_int_equal(f->n, 1);
    assert_int_equal(error_code(f->outs[0].msg), -32700);
    assert_true(json_is_null(json_object_get(f->outs[0].msg, "id")));
    assert_true(info.invalid);
    assert_int_equal(info.requests, 0);
    assert_int_equal(f->ndone, 1);
    assert_ptr_equal(f->done[0], f);
    assert_ptr_equal(f->outs[0].origin, f);
    json_t *m = rpc(f, "{\"jsonrpc\":\"2.0\",\"id\":1.5,\"method\":\"ping\"}");
    assert_int_equal(error_code(m), -32600);
    assert_true(json_is_null(json_object_get(m, "id")));
    m = rpc(f, "{\"jsonrpc\":\"2.0\",\"id\":null,\"method\":\"ping\"}");
    assert_int_equal(error_code(m), -32600);
    m = rpc(f, "{\"jsonrpc\":\"1.0\",\"id\":9,\"method\":\"ping\"}");
    assert_int_equal(error_code(m), -32600);
    assert_int_equal(json_integer_value(json_object_get(m, "id")), 9);
    m = rpc(f, "{\"jsonrpc\":\"2.0\",\"id\":\"q\",\"method\":\"resources/list\"}");
    assert_int_equal(error_code(m), -32601);
    assert_string_equal(json_string_value(json_object_get(m, "id")), "q");
    assert_int_equal(error_code(rpc(f, "{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":\"tools/list\","
                                       "\"params\":[]}")),
                     -32602);
    /* a notification, and a client response, produce nothing but done */
    clear(f);
    info = in(f, "{\"jsonrpc\":\"2.0\",\"method\":\"notifications/whatever\",\"params\":{}}");
    assert_int_equal(f->n, 0);
    assert_int_equal(info.notifications, 1);
    assert_int_equal(f->ndone, 1);
    info = in(f, "{\"jsonrpc\":\"2.0\",\"id\":5,\"result\":{}}");
    assert_int_equal(f->n, 0);
    assert_int_equal(info.responses, 1);
    /* oversize and overdeep messages are parse errors */
    char *big = malloc(5u << 20);
    memset(big, ' ', 5u << 20);
    big[0] = '{';
    big[(5u << 20) - 1] = '}';
    clear(f);
    assert_int_equal(mcp_session_input(f->ss, big, 5u << 20, f, &info), 0);
    free(big);
    assert_int_equal(error_code(f->outs[0].msg), -32700);
    char deep[300];
    memset(deep, '[', 150);
    memset(deep + 150, ']', 150);
    clear(f);
    assert_int_equal(mcp_session_input(f->ss, deep, 300, f, &info), 0);
    assert_int_equal(error_code(f->outs[0].msg), -32700);
}

static void test_batches(void **state)
{
    fx *f = *state;
    /* before initialize: no batch */
    assert_int_equal(
        error_code(rpc(f, "[{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"initialize\",\"params\":{"
                          "\"protocolVersion\":\"2025-03-26\"}}]")),
        -32600);
    init_version(f, "2025-03-26");
    mcp_input_info info;
    clear(f);
    info = in(f, "[{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"ping\"},"
                 "{\"jsonrpc\":\"2.0\",\"method\":\"notifications/x\"},"
                 "{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":\"tools/call\",\"params\":{\"name\":"
                 "\"add\",\"arguments\":{\"a\":1,\"b\":2}}},"
                 "{\"jsonrpc\":\"2.0\",\"id\":3,\"method\":\"nope\"},"
                 "5]");
    assert_int_equal(info.requests, 3);
    assert_int_equal(info.notifications, 1);
    assert_true(info.invalid);
    assert_int_equal(f->n, 1);
    assert_true(f->outs[0].response);
    json_t *arr = f->outs[0].msg;
    assert_true(json_is_array(arr));
    assert_int_equal(json_array_size(arr), 4);
    assert_int_equal(json_integer_value(json_object_get(json_array_get(arr, 0), "id")), 1);
    json_t *r2 = result_of(json_array_get(arr, 1));
    assert_string_equal(json_string_value(json_object_get(
                            json_array_get(json_object_get(r2, "content"), 0), "text")),
                        "{\"sum\":3}");
    assert_null(json_object_get(r2, "structuredContent")); /* 2025-03-26 has none */
    assert_int_equal(error_code(json_array_get(arr, 2)), -32601);
    assert_int_equal(error_code(json_array_get(arr, 3)), -32600);
    /* only notifications: no response at all */
    clear(f);
    in(f, "[{\"jsonrpc\":\"2.0\",\"method\":\"notifications/x\"}]");
    assert_int_equal(f->n, 0);
    assert_int_equal(f->ndone, 1);
    assert_int_equal(error_code(rpc(f, "[]")), -32600);
    /* a batch with an async call answers once the call completes */
    clear(f);
    in(f, "[{\"jsonrpc\":\"2.0\",\"id\":10,\"method\":\"tools/call\",\"params\":{\"name\":"
          "\"slow\"}},{\"jsonrpc\":\"2.0\",\"id\":11,\"method\":\"ping\"}]");
    assert_int_equal(f->n, 0);
    assert_int_equal(f->ndone, 0);
    assert_non_null(slow_call);
    mcp_call_return(slow_call, json_pack("{s:b}", "ok", 1));
    assert_int_equal(f->n, 1);
    assert_int_equal(json_array_size(f->outs[0].msg), 2);
    assert_int_equal(f->ndone, 1);
}

static void test_no_batches_after_2025_03_26(void **state)
{
    static const char *const versions[] = {"2024-11-05", "2025-06-18", "2025-11-25"};
    (void)state;
    for (int i = 0; i < 3; i++) {
        fx *f = fx_new(100);
        init_version(f, versions[i]);
        json_t *m = rpc(f, "[{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"ping\"}]");
        assert_int_equal(error_code(m), -32600);
        assert_true(json_is_null(json_object_get(m, "id")));
        teardown((void **)&f);
    }
}

/* ---- tools/list ------------------------------------------------------------------------- */

static void test_tools_list_pagination(void **state)
{
    (void)state;
    fx *f = fx_new(3);
    init_version(f, "2025-06-18");
    char names[16][32];
    size_t count = 0;
    char cursor[64] = "";
    int pages = 0;
    do {
        char msg[256];
        if (cursor[0]) {
            snprintf(msg, sizeof msg,
                     "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/list\",\"params\":{"
                     "\"cursor\":\"%s\"}}",
                     cursor);
        } else {
            snprintf(msg, sizeof msg, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/list\"}");
        }
        json_t *r = result_of(rpc(f, msg));
        json_t *tools = json_object_get(r, "tools");
        assert_true(json_array_size(tools) <= 3);
        size_t i;
        json_t *t;
        json_array_foreach(tools, i, t)
        {
            snprintf(names[count++], sizeof names[0], "%s",
                     json_string_value(json_object_get(t, "name")));
            assert_true(json_is_object(json_object_get(t, "inputSchema")));
            assert_string_equal(json_string_value(json_object_get(t, "title")), "A title");
        }
        json_t *nc = json_object_get(r, "nextCursor");
        snprintf(cursor, sizeof cursor, "%s", nc ? json_string_value(nc) : "");
        pages++;
    } while (cursor[0] && pages < 10);
    assert_int_equal(pages, 3);
    assert_int_equal(count, 7); /* "hidden" is disabled */
    assert_string_equal(names[0], "echo");
    assert_string_equal(names[6], "nohook");
    clear(f);
    /* invalid cursors */
    static const char *const bad[] = {"\"xyz\"", "5", "\"000000000000000000000000\"",
                                      "\"00000000000000ff00000001\"",
                                      "\"0000000000000008000000ff\""};
    for (int i = 0; i < 5; i++) {
        char msg[256];
        snprintf(msg, sizeof msg,
                 "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/list\",\"params\":{"
                 "\"cursor\":%s}}",
                 bad[i]);
        assert_int_equal(error_code(rpc(f, msg)), -32602);
    }
    /* a cursor from before a registry change is stale */
    json_t *r = result_of(rpc(f, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/list\"}"));
    char stale[64];
    snprintf(stale, sizeof stale, "%s", json_string_value(json_object_get(r, "nextCursor")));
    assert_int_equal(mcp_server_set_tool_enabled(f->srv, "hidden", true), 0);
    char msg[256];
    snprintf(msg, sizeof msg,
             "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/list\",\"params\":{"
             "\"cursor\":\"%s\"}}",
             stale);
    assert_int_equal(error_code(rpc(f, msg)), -32602);
    teardown((void **)&f);
}

static void test_tools_list_fields_by_version(void **state)
{
    static const struct {
        const char *v;
        bool title, output, annotations;
    } table[] = {
        {"2024-11-05", false, false, false},
        {"2025-03-26", false, false, true},
        {"2025-06-18", true, true, true},
        {"2025-11-25", true, true, true},
    };
    (void)state;
    for (int i = 0; i < 4; i++) {
        fx *f = fx_new(100);
        init_version(f, table[i].v);
        json_t *r = result_of(rpc(f, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/list\"}"));
        json_t *add = json_array_get(json_object_get(r, "tools"), 1);
        assert_string_equal(json_string_value(json_object_get(add, "name")), "add");
        assert_string_equal(json_string_value(json_object_get(add, "description")), "desc");
        assert_int_equal(json_object_get(add, "title") != NULL, table[i].title);
        assert_int_equal(json_object_get(add, "outputSchema") != NULL, table[i].output);
        assert_int_equal(json_object_get(add, "annotations") != NULL, table[i].annotations);
        assert_null(json_object_get(r, "nextCursor"));
        teardown((void **)&f);
    }
}

/* ---- tools/call ------------------------------------------------------------------------- */

static json_t *call(fx *f, const char *name, const char *args)
{
    char msg[512];
    snprintf(msg, sizeof msg,
             "{\"jsonrpc\":\"2.0\",\"id\":77,\"method\":\"tools/call\",\"params\":{\"name\":"
             "\"%s\"%s%s}}",
             name, args ? ",\"arguments\":" : "", args ? args : "");
    return rpc(f, msg);
}

static void test_tools_call(void **state)
{
    fx *f = *state;
    init_version(f, "2025-06-18");
    json_t *r = result_of(call(f, "echo", "{\"text\":\"héllo\"}"));
    json_t *c0 = json_array_get(json_object_get(r, "content"), 0);
    assert_string_equal(json_string_value(json_object_get(c0, "type")), "text");
    assert_string_equal(json_string_value(json_object_get(c0, "text")), "{\"text\":\"héllo\"}");
    assert_string_equal(
        json_string_value(json_object_get(json_object_get(r, "structuredContent"), "text")),
        "héllo");
    assert_null(json_object_get(r, "isError"));
    r = result_of(call(f, "add", "{\"a\":40,\"b\":2}"));
    assert_int_equal(
        json_integer_value(json_object_get(json_object_get(r, "structuredContent"), "sum")), 42);
    /* protocol errors */
    assert_int_equal(error_code(call(f, "nope", "{}")), -32602);
    assert_int_equal(error_code(call(f, "hidden", "{}")), -32602);
    assert_int_equal(error_code(call(f, "echo", "[1]")), -32602);
    assert_int_equal(error_code(call(f, "add", "{\"a\":1}")), -32602);            /* required */
    assert_int_equal(error_code(call(f, "add", "{\"a\":1.5,\"b\":1}")), -32602);  /* type */
    assert_int_equal(error_code(call(f, "add", "{\"a\":1001,\"b\":1}")), -32602); /* maximum */
    assert_int_equal(error_code(call(f, "add", "{\"a\":1,\"b\":1,\"c\":1}")), -32602); /* addl */
    assert_int_equal(error_code(call(f, "echo", NULL)), -32602); /* no arguments, text required */
    assert_int_equal(error_code(rpc(f, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/call\"}")),
                     -32602);
    assert_int_equal(error_code(rpc(f, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/call\","
                                       "\"params\":{\"name\":\"echo\",\"arguments\":{\"text\":"
                                       "\"x\"},\"_meta\":{\"progressToken\":1.5}}}")),
                     -32602);
    /* integral reals are integers */
    r = result_of(call(f, "add", "{\"a\":3.0,\"b\":4}"));
    assert_int_equal(
        json_integer_value(json_object_get(json_object_get(r, "structuredContent"), "sum")), 7);
    /* tool failure is a result */
    r = result_of(call(f, "fail", "{}"));
    assert_true(json_is_true(json_object_get(r, "isError")));
    assert_string_equal(json_string_value(json_object_get(
                            json_array_get(json_object_get(r, "content"), 0), "text")),
                        "it broke: 42");
    /* server-side faults are internal errors */
    assert_int_equal(error_code(call(f, "bad_output", "{}")), -32603);
    assert_int_equal(error_code(call(f, "rc", "{}")), -32603);
    assert_int_equal(mcp_session_inflight(f->ss), 0);
}

static void test_input_validation_2025_11_25(void **state)
{
    fx *f = *state;
    init_version(f, "2025-11-25");
    json_t *r = result_of(call(f, "add", "{\"a\":\"x\",\"b\":1}"));
    assert_true(json_is_true(json_object_get(r, "isError")));
    const char *text = json_string_value(
        json_object_get(json_array_get(json_object_get(r, "content"), 0), "text"));
    assert_non_null(strstr(text, "/a: expected integer"));
    /* the unknown tool stays a protocol error */
    assert_int_equal(error_code(call(f, "nope", "{}")), -32602);
}

/* ---- progress and cancellation ---------------------------------------------------------- */

static void test_progress(void **state)
{
    fx *f = *state;
    init_version(f, "2025-06-18");
    clear(f);
    int origin_a;
    const char *req = "{\"jsonrpc\":\"2.0\",\"id\":5,\"method\":\"tools/call\",\"params\":{"
                      "\"name\":\"slow\",\"arguments\":{\"steps\":3},\"_meta\":{"
                      "\"progressToken\":\"tok\"}}}";
    assert_int_equal(mcp_session_input(f->ss, req, strlen(req), &origin_a, NULL), 0);
    assert_int_equal(f->n, 0);
    assert_int_equal(f->ndone, 0);
    assert_non_null(slow_call);
    assert_true(mcp_call_has_progress(slow_call));
    assert_string_equal(mcp_call_tool(slow_call), "slow");
    assert_int_equal(json_integer_value(mcp_call_request_id(slow_call)), 5);
    assert_int_equal(mcp_session_inflight(f->ss), 1);
    /* other requests proceed while the call is in flight */
    result_of(rpc(f, "{\"jsonrpc\":\"2.0\",\"id\":6,\"method\":\"ping\"}"));
    clear(f);
    assert_int_equal(mcp_call_progress(slow_call, 1, 3, "step 1"), 0);
    assert_int_equal(mcp_call_progress(slow_call, 2, 3, NULL), 0);
    assert_int_equal(mcp_call_progress(slow_call, 2, 3, NULL), MCP_EINVAL); /* not increasing */
    assert_int_equal(f->n, 2);
    for (int i = 0; i < 2; i++) {
        assert_false(f->outs[i].response);
        assert_ptr_equal(f->outs[i].origin, &origin_a);
        json_t *m = f->outs[i].msg;
        assert_string_equal(json_string_value(json_object_get(m, "method")),
                            "notifications/progress");
        json_t *p = json_object_get(m, "params");
        assert_string_equal(json_string_value(json_object_get(p, "progressToken")), "tok");
        assert_true(json_number_value(json_object_get(p, "progress")) == i + 1);
        assert_true(json_number_value(json_object_get(p, "total")) == 3);
        assert_int_equal(json_object_get(p, "message") != NULL, i == 0);
    }
    mcp_call_log(slow_call, MCP_LOG_INFO, "slow", json_string("working"));
    assert_int_equal(f->n, 3);
    assert_ptr_equal(f->outs[2].origin, &origin_a);
    mcp_call_return(slow_call, json_pack("{s:i}", "steps", 3));
    assert_int_equal(f->n, 4);
    assert_true(f->outs[3].response);
    assert_ptr_equal(f->outs[3].origin, &origin_a);
    assert_int_equal(json_integer_value(json_object_get(f->outs[3].msg, "id")), 5);
    assert_int_equal(f->ndone, 1);
    assert_ptr_equal(f->done[0], &origin_a);
    assert_int_equal(mcp_session_inflight(f->ss), 0);
    /* no token: progress is accepted and sends nothing */
    clear(f);
    in(f, "{\"jsonrpc\":\"2.0\",\"id\":8,\"method\":\"tools/call\",\"params\":{\"name\":"
          "\"slow\"}}");
    assert_false(mcp_call_has_progress(slow_call));
    assert_int_equal(mcp_call_progress(slow_call, 1, -1, "x"), 0);
    assert_int_equal(f->n, 0);
    mcp_call_fail(slow_call, "gave up");
    assert_int_equal(f->n, 1);
    assert_true(json_is_true(json_object_get(result_of(f->outs[0].msg), "isError")));
}

static void test_progress_message_by_version(void **state)
{
    fx *f = *state;
    init_version(f, "2024-11-05");
    clear(f);
    in(f, "{\"jsonrpc\":\"2.0\",\"id\":5,\"method\":\"tools/call\",\"params\":{\"name\":"
          "\"slow\",\"_meta\":{\"progressToken\":12}}}");
    assert_int_equal(mcp_call_progress(slow_call, 0.5, -1, "half"), 0);
    json_t *p = json_object_get(f->outs[0].msg, "params");
    assert_int_equal(json_integer_value(json_object_get(p, "progressToken")), 12);
    assert_null(json_object_get(p, "message")); /* message arrived in 2025-03-26 */
    assert_null(json_object_get(p, "total"));
    mcp_call_return(slow_call, json_object());
}

static void test_cancellation(void **state)
{
    fx *f = *state;
    init_version(f, "2025-06-18");
    clear(f);
    int origin_a;
    const char *req = "{\"jsonrpc\":\"2.0\",\"id\":\"c1\",\"method\":\"tools/call\",\"params\":{"
                      "\"name\":\"slow\",\"_meta\":{\"progressToken\":1}}}";
    mcp_session_input(f->ss, req, strlen(req), &origin_a, NULL);
    assert_non_null(slow_call);
    /* a cancel for another id, or with a bad shape, changes nothing */
    in(f, "{\"jsonrpc\":\"2.0\",\"method\":\"notifications/cancelled\",\"params\":{"
          "\"requestId\":\"other\"}}");
    in(f, "{\"jsonrpc\":\"2.0\",\"method\":\"notifications/cancelled\"}");
    assert_non_null(slow_call);
    assert_int_equal(f->n, 0);
    assert_int_equal(f->ndone, 2);
    clear(f);
    in(f, "{\"jsonrpc\":\"2.0\",\"method\":\"notifications/cancelled\",\"params\":{"
          "\"requestId\":\"c1\",\"reason\":\"user\"}}");
    assert_int_equal(slow_cancelled, 1);
    assert_null(slow_call);
    assert_int_equal(f->n, 0); /* no response, ever */
    assert_int_equal(f->ndone, 2);
    assert_true(f->done[0] == &origin_a || f->done[1] == &origin_a);
    assert_int_equal(mcp_session_inflight(f->ss), 0);
    /* the id is free again */
    clear(f);
    mcp_session_input(f->ss, req, strlen(req), &origin_a, NULL);
    assert_non_null(slow_call);
    mcp_call_return(slow_call, json_object());
    assert_int_equal(f->n, 1);
}

static void test_cancel_without_hook(void **state)
{
    fx *f = *state;
    init_version(f, "2025-06-18");
    clear(f);
    in(f, "{\"jsonrpc\":\"2.0\",\"id\":3,\"method\":\"tools/call\",\"params\":{\"name\":"
          "\"nohook\"}}");
    assert_non_null(nohook_call);
    in(f, "{\"jsonrpc\":\"2.0\",\"method\":\"notifications/cancelled\",\"params\":{"
          "\"requestId\":3}}");
    assert_int_equal(f->ndone, 2);
    assert_true(mcp_call_cancelled(nohook_call));
    assert_false(mcp_call_has_progress(nohook_call));
    assert_int_equal(mcp_call_progress(nohook_call, 1, 1, NULL), MCP_ESTATE);
    mcp_call_return(nohook_call, json_object()); /* discarded, and the call is freed */
    nohook_call = NULL;
    assert_int_equal(f->n, 0);
}

static void test_session_free_cancels(void **state)
{
    fx *f = *state;
    init_version(f, "2025-06-18");
    clear(f);
    int origin_a;
    const char *req = "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/call\",\"params\":{"
                      "\"name\":\"slow\"}}";
    mcp_session_input(f->ss, req, strlen(req), &origin_a, NULL);
    mcp_session_free(f->ss);
    assert_int_equal(slow_cancelled, 1);
    assert_int_equal(f->n, 0);
    assert_int_equal(f->ndone, 1);
    assert_ptr_equal(f->done[0], &origin_a);
    f->ss = mcp_session_new(f->srv, &transport, f);
}

static void test_duplicate_id_and_inflight_limit(void **state)
{
    fx *f = *state;
    init_version(f, "2025-06-18");
    clear(f);
    in(f, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/call\",\"params\":{\"name\":"
          "\"slow\"}}");
    mcp_call *first = slow_call;
    assert_int_equal(error_code(rpc(f, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/call\","
                                       "\"params\":{\"name\":\"echo\",\"arguments\":{\"text\":"
                                       "\"x\"}}}")),
                     -32600);
    mcp_call *calls[3];
    for (int i = 0; i < 3; i++) {
        char msg[160];
        snprintf(msg, sizeof msg,
                 "{\"jsonrpc\":\"2.0\",\"id\":%d,\"method\":\"tools/call\",\"params\":{\"name\":"
                 "\"slow\"}}",
                 10 + i);
        in(f, msg);
        calls[i] = slow_call;
    }
    assert_int_equal(mcp_session_inflight(f->ss), 4);
    assert_int_equal(error_code(rpc(f, "{\"jsonrpc\":\"2.0\",\"id\":20,\"method\":\"tools/call\","
                                       "\"params\":{\"name\":\"slow\"}}")),
                     -32603); /* max_inflight 4 */
    clear(f);
    mcp_call_return(first, json_object());
    for (int i = 0; i < 3; i++) {
        mcp_call_return(calls[i], json_object());
    }
    assert_int_equal(f->n, 4);
    assert_int_equal(mcp_session_inflight(f->ss), 0);
}

/* ---- list_changed and logging ----------------------------------------------------------- */

static int count_method(fx *f, const char *method)
{
    int n = 0;
    for (int i = 0; i < f->n; i++) {
        json_t *m = json_object_get(f->outs[i].msg, "method");
        if (m != NULL && strcmp(json_string_value(m), method) == 0) {
            assert_null(f->outs[i].origin);
            assert_false(f->outs[i].response);
            n++;
        }
    }
    return n;
}

static void test_list_changed(void **state)
{
    fx *f = *state;
    /* a second session that never completes initialization */
    fx g = {0};
    mcp_session *other = mcp_session_new(f->srv, &transport, &g);
    const char *init = "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"initialize\",\"params\":{"
                       "\"protocolVersion\":\"2025-06-18\"}}";
    mcp_session_input(other, init, strlen(init), NULL, NULL);
    init_version(f, "2025-06-18");
    size_t before = mcp_server_tool_count(f->srv);
    assert_int_equal(mcp_server_set_tool_enabled(f->srv, "hidden", true), 0);
    assert_int_equal(count_method(f, "notifications/tools/list_changed"), 1);
    assert_int_equal(mcp_server_tool_count(f->srv), before + 1);
    clear(f);
    assert_int_equal(mcp_server_set_tool_enabled(f->srv, "hidden", true), 0); /* no change */
    assert_int_equal(f->n, 0);
    assert_int_equal(mcp_server_set_tool_enabled(f->srv, "hidden", false), 0);
    assert_int_equal(mcp_server_remove_tool(f->srv, "echo"), 0);
    assert_int_equal(mcp_server_remove_tool(f->srv, "hidden"), 0); /* disabled: silent */
    assert_int_equal(count_method(f, "notifications/tools/list_changed"), 2);
    clear(f);
    add_tool(f->srv, "later", "{\"type\":\"object\"}", NULL, tool_echo, false);
    assert_int_equal(f->n, 0);
    add_tool(f->srv, "now", "{\"type\":\"object\"}", NULL, tool_echo, true);
    assert_int_equal(count_method(f, "notifications/tools/list_changed"), 1);
    assert_int_equal(g.n, 1); /* only its initialize response */
    assert_int_equal(mcp_server_set_tool_enabled(f->srv, "nope", true), MCP_ENOENT);
    assert_int_equal(mcp_server_remove_tool(f->srv, "nope"), MCP_ENOENT);
    mcp_session_free(other);
    clear(&g);
}

static void test_registry_errors(void **state)
{
    fx *f = *state;
    json_error_t e;
    json_t *obj = json_loads("{\"type\":\"object\"}", 0, &e);
    json_t *bad = json_loads("{\"type\":\"object\",\"oneOf\":[]}", 0, &e);
    json_t *str = json_loads("{\"type\":\"string\"}", 0, &e);
    mcp_tool_def d = {.name = "echo", .input_schema = obj, .call = tool_echo};
    assert_int_equal(mcp_server_add_tool(f->srv, &d, true), MCP_EEXIST);
    d.name = "bad name";
    assert_int_equal(mcp_server_add_tool(f->srv, &d, true), MCP_EINVAL);
    d.name = "";
    assert_int_equal(mcp_server_add_tool(f->srv, &d, true), MCP_EINVAL);
    d.name = "ok.name-1_x";
    d.input_schema = bad;
    assert_int_equal(mcp_server_add_tool(f->srv, &d, true), MCP_ESCHEMA);
    d.input_schema = str;
    assert_int_equal(mcp_server_add_tool(f->srv, &d, true), MCP_ESCHEMA);
    d.input_schema = obj;
    d.output_schema = bad;
    assert_int_equal(mcp_server_add_tool(f->srv, &d, true), MCP_ESCHEMA);
    d.output_schema = NULL;
    d.call = NULL;
    assert_int_equal(mcp_server_add_tool(f->srv, &d, true), MCP_EINVAL);
    d.call = tool_echo;
    assert_int_equal(mcp_server_add_tool(f->srv, &d, true), 0);
    json_decref(obj);
    json_decref(bad);
    json_decref(str);
    assert_string_equal(mcp_strerror(MCP_ESCHEMA), "unsupported JSON Schema");
    assert_string_equal(mcp_strerror(12345), "unknown error");
}

static void test_logging(void **state)
{
    fx *f = *state;
    mcp_server_log(f->srv, MCP_LOG_ERROR, "x", json_string("before init")); /* not sent */
    assert_int_equal(f->n, 0);
    init_version(f, "2025-06-18");
    assert_int_equal(error_code(rpc(f, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":"
                                       "\"logging/setLevel\",\"params\":{\"level\":\"loud\"}}")),
                     -32602);
    assert_int_equal(
        error_code(rpc(f, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"logging/setLevel\"}")),
        -32602);
    clear(f);
    mcp_server_log(f->srv, MCP_LOG_INFO, "x", json_string("default level admits info"));
    assert_int_equal(count_method(f, "notifications/message"), 1);
    result_of(rpc(f, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"logging/setLevel\",\"params\":{"
                     "\"level\":\"warning\"}}"));
    clear(f);
    mcp_server_log(f->srv, MCP_LOG_INFO, "x", json_string("filtered"));
    mcp_session_log(f->ss, MCP_LOG_NOTICE, NULL, json_string("filtered"));
    assert_int_equal(f->n, 0);
    mcp_server_log(f->srv, MCP_LOG_ERROR, "db", json_pack("{s:i}", "code", 7));
    mcp_session_log(f->ss, MCP_LOG_EMERGENCY, NULL, json_string("sky"));
    assert_int_equal(count_method(f, "notifications/message"), 2);
    json_t *p = json_object_get(f->outs[0].msg, "params");
    assert_string_equal(json_string_value(json_object_get(p, "level")), "error");
    assert_string_equal(json_string_value(json_object_get(p, "logger")), "db");
    assert_int_equal(json_integer_value(json_object_get(json_object_get(p, "data"), "code")), 7);
    assert_null(json_object_get(json_object_get(f->outs[1].msg, "params"), "logger"));
    mcp_log_level l;
    assert_int_equal(mcp_log_level_parse("critical", &l), 0);
    assert_int_equal(l, MCP_LOG_CRITICAL);
    assert_string_equal(mcp_log_level_name(MCP_LOG_ALERT), "alert");
    assert_int_equal(mcp_log_level_parse(NULL, &l), MCP_EINVAL);
}

static void test_reentrant_input_refused(void **state)
{
    fx *f = *state;
    /* input while another input is being handled (from a tool) is refused */
    (void)f;
    mcp_server *s = mcp_server_new(NULL);
    assert_non_null(s);
    fx g = {0};
    g.srv = s;
    g.ss = mcp_session_new(s, &transport, &g);
    assert_int_equal(mcp_session_get_state(g.ss), MCP_SESSION_NEW);
    mcp_session_free(g.ss);
    mcp_server_free(s);
}

/* ---- schema validator ------------------------------------------------------------------- */

static void test_schema(void **state)
{
    (void)state;
    static const struct {
        const char *schema, *value;
        int ok;
        const char *where;
    } cases[] = {
        {"{\"type\":\"array\",\"items\":{\"type\":\"integer\"},\"maxItems\":3}", "[1,2]", 1, NULL},
        {"{\"type\":\"array\",\"items\":{\"type\":\"integer\"}}", "[1,\"x\"]", 0, "/1"},
        {"{\"type\":\"array\",\"maxItems\":1}", "[1,2]", 0, "/"},
        {"{\"type\":\"array\",\"minItems\":1}", "[]", 0, "/"},
        {"{\"enum\":[\"a\",\"b\"]}", "\"b\"", 1, NULL},
        {"{\"enum\":[\"a\",\"b\"]}", "\"c\"", 0, "/"},
        {"{\"const\":3}", "3", 1, NULL},
        {"{\"type\":[\"string\",\"null\"]}", "null", 1, NULL},
        {"{\"type\":[\"string\",\"null\"]}", "1", 0, "/"},
        {"{\"type\":\"number\",\"exclusiveMinimum\":0}", "0", 0, "/"},
        {"{\"type\":\"number\",\"exclusiveMaximum\":1}", "0.5", 1, NULL},
        {"{\"type\":\"string\",\"minLength\":2,\"maxLength\":2}", "\"éé\"", 1, NULL},
        {"{\"type\":\"string\",\"maxLength\":1}", "\"ab\"", 0, "/"},
        {"{\"type\":\"object\",\"properties\":{\"a/b\":{\"properties\":{\"c~\":{\"type\":"
         "\"boolean\"}}}}}",
         "{\"a/b\":{\"c~\":1}}", 0, "/a~1b/c~0"},
        {"{\"type\":\"object\",\"additionalProperties\":{\"type\":\"string\"}}",
         "{\"x\":\"s\",\"y\":2}", 0, "/y"},
        {"{\"type\":\"object\",\"properties\":{\"n\":false}}", "{\"n\":1}", 0, "/n"},
        {"true", "{}", 1, NULL},
        {"{\"type\":\"integer\"}", "1e400", 0, "/"},
        /* $defs and $ref (JSON Schema 2020-12, local definitions only) */
        {"{\"$schema\":\"https://json-schema.org/draft/2020-12/schema\",\"type\":\"object\","
         "\"$defs\":{\"address\":{\"type\":\"object\",\"properties\":{\"city\":{\"type\":"
         "\"string\"}}}},\"properties\":{\"address\":{\"$ref\":\"#/$defs/address\"}},"
         "\"additionalProperties\":false}",
         "{\"address\":{\"city\":\"Gent\"}}", 1, NULL},
        {"{\"$defs\":{\"a\":{\"type\":\"object\",\"properties\":{\"city\":{\"type\":"
         "\"string\"}}}},\"properties\":{\"address\":{\"$ref\":\"#/$defs/a\"}}}",
         "{\"address\":{\"city\":7}}", 0, "/address/city"},
        /* a recursive definition validates recursive data */
        {"{\"$defs\":{\"n\":{\"type\":\"object\",\"properties\":{\"next\":{\"$ref\":"
         "\"#/$defs/n\"}}}},\"$ref\":\"#/$defs/n\"}",
         "{\"next\":{\"next\":{\"next\":1}}}", 0, "/next/next/next"},
        /* a definition that only refers to itself is cut off, not followed forever */
        {"{\"$defs\":{\"loop\":{\"$ref\":\"#/$defs/loop\"}},\"$ref\":\"#/$defs/loop\"}", "1", 0,
         "/"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        json_error_t e;
        json_t *s = json_loads(cases[i].schema, JSON_DECODE_ANY, &e);
        json_t *v = json_loads(cases[i].value, JSON_DECODE_ANY, &e);
        const char *why = NULL;
        assert_non_null(s);
        if (v == NULL) { /* 1e400 does not parse: jansson refuses the overflow */
            json_decref(s);
            continue;
        }
        assert_int_equal(mcp_schema_check(s, &why), 0);
        char err[200];
        int rc = mcp_schema_validate(s, v, err, sizeof err);
        if ((rc == 0) != cases[i].ok) {
            fail_msg("case %zu: rc %d (%s)", i, rc, rc ? err : "");
        }
        if (!cases[i].ok) {
            char want[64];
            snprintf(want, sizeof want, "%s:", cases[i].where);
            if (strncmp(err, want, strlen(want)) != 0) {
                fail_msg("case %zu: error '%s' does not start with '%s'", i, err, want);
            }
        }
        json_decref(s);
        json_decref(v);
    }
    static const char *const bad[] = {
        "{\"type\":\"thing\"}",
        "{\"type\":[]}",
        "{\"properties\":[]}",
        "{\"required\":[1]}",
        "{\"minimum\":\"1\"}",
        "{\"maxLength\":-1}",
        "{\"enum\":[]}",
        "{\"anyOf\":[]}",
        "{\"items\":3}",
        "{\"additionalProperties\":1}",
        "[1]",
        "{\"$ref\":\"#/$defs/missing\"}",
        "{\"$ref\":\"http://example.com/s\"}",
        "{\"$defs\":{\"a\":{\"type\":\"x\"}}}",
        "{\"properties\":{\"p\":{\"$defs\":{}}}}",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        json_error_t e;
        json_t *s = json_loads(bad[i], JSON_DECODE_ANY, &e);
        const char *why = NULL;
        if (mcp_schema_check(s, &why) != MCP_ESCHEMA) {
            fail_msg("schema %s accepted", bad[i]);
        }
        json_decref(s);
    }
    /* nesting bound */
    json_t *deep = json_pack("{s:s}", "type", "array");
    for (int i = 0; i < MCP_SCHEMA_MAX_DEPTH + 2; i++) {
        deep = json_pack("{s:o}", "items", deep);
    }
    const char *why;
    assert_int_equal(mcp_schema_check(deep, &why), MCP_ESCHEMA);
    json_decref(deep);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_version_negotiation),
        cmocka_unit_test_setup_teardown(test_initialize_errors, setup, teardown),
        cmocka_unit_test_setup_teardown(test_only_ping_before_initialized, setup, teardown),
        cmocka_unit_test_setup_teardown(test_rpc_errors, setup, teardown),
        cmocka_unit_test_setup_teardown(test_batches, setup, teardown),
        cmocka_unit_test(test_no_batches_after_2025_03_26),
        cmocka_unit_test(test_tools_list_pagination),
        cmocka_unit_test(test_tools_list_fields_by_version),
        cmocka_unit_test_setup_teardown(test_tools_call, setup, teardown),
        cmocka_unit_test_setup_teardown(test_input_validation_2025_11_25, setup, teardown),
        cmocka_unit_test_setup_teardown(test_progress, setup, teardown),
        cmocka_unit_test_setup_teardown(test_progress_message_by_version, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cancellation, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cancel_without_hook, setup, teardown),
        cmocka_unit_test_setup_teardown(test_session_free_cancels, setup, teardown),
        cmocka_unit_test_setup_teardown(test_duplicate_id_and_inflight_limit, setup, teardown),
        cmocka_unit_test_setup_teardown(test_list_changed, setup, teardown),
        cmocka_unit_test_setup_teardown(test_registry_errors, setup, teardown),
        cmocka_unit_test_setup_teardown(test_logging, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reentrant_input_refused, setup, teardown),
        cmocka_unit_test(test_schema),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
