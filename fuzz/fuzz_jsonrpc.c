/*
 * fuzz/fuzz_jsonrpc.c — libFuzzer target for the JSON-RPC layer and the MCP server's message
 * path. Each input is split at newlines into messages fed to one session in order (so a corpus
 * entry can initialize, then call tools, cancel, batch ...). Fixture tools run synchronously or
 * stay in flight (the "hold" tool) until a later message cancels them or the session ends.
 * Every output must be one JSON text without a newline.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "macula/mcp.h"
#include "mcp/jsonrpc.h"

static void f_send(void *user, void *origin, const char *json, size_t len, bool response)
{
    (void)user;
    (void)origin;
    (void)response;
    if (memchr(json, '\n', len) != NULL) {
        abort();
    }
    json_error_t e;
    json_t *v = json_loadb(json, len, JSON_DECODE_ANY, &e);
    if (v == NULL) {
        abort(); /* the server emitted invalid JSON */
    }
    json_decref(v);
}

static void f_done(void *user, void *origin)
{
    (void)user;
    (void)origin;
}

static int t_echo(mcp_call *c, const json_t *args, void *user)
{
    (void)user;
    mcp_call_return(c, json_pack("{s:O}", "text", json_object_get(args, "text")));
    return 0;
}

static void t_hold_cancel(mcp_call *c, void *arg)
{
    (void)c;
    (void)arg;
}

static int t_hold(mcp_call *c, const json_t *args, void *user)
{
    (void)args;
    (void)user;
    mcp_call_on_cancel(c, t_hold_cancel, NULL);
    mcp_call_progress(c, 1, 2, "held");
    return 0; /* stays in flight: cancelled by the input or by the session's end */
}

static int t_fail(mcp_call *c, const json_t *args, void *user)
{
    (void)args;
    (void)user;
    mcp_call_fail(c, "failed");
    return 0;
}

static mcp_server *server(void)
{
    static mcp_server *s;
    if (s != NULL) {
        return s;
    }
    mcp_server_config c;
    mcp_server_config_defaults(&c);
    c.page_size = 2;
    c.max_message = 1 << 16;
    s = mcp_server_new(&c);
    json_error_t e;
    json_t *in = json_loads("{\"type\":\"object\",\"properties\":{\"text\":{\"type\":\"string\","
                            "\"maxLength\":64},\"n\":{\"type\":\"integer\",\"minimum\":0},"
                            "\"tags\":{\"type\":\"array\",\"items\":{\"enum\":[\"a\",\"b\"]}}},"
                            "\"required\":[\"text\"]}",
                            0, &e);
    json_t *any = json_loads("{\"type\":\"object\"}", 0, &e);
    mcp_tool_def d = {.name = "echo", .input_schema = in, .call = t_echo};
    mcp_server_add_tool(s, &d, true);
    d = (mcp_tool_def){.name = "hold", .input_schema = any, .call = t_hold};
    mcp_server_add_tool(s, &d, true);
    d = (mcp_tool_def){.name = "fail", .input_schema = any, .call = t_fail};
    mcp_server_add_tool(s, &d, true);
    d = (mcp_tool_def){.name = "off", .input_schema = any, .call = t_fail};
    mcp_server_add_tool(s, &d, false);
    json_decref(in);
    json_decref(any);
    return s;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const mcp_transport t = {f_send, f_done};
    mcp_session *ss = mcp_session_new(server(), &t, NULL);
    const char *p = (const char *)data;
    size_t left = size;
    while (left > 0) {
        const char *nl = memchr(p, '\n', left);
        size_t n = nl != NULL ? (size_t)(nl - p) : left;
        mcp_session_input(ss, p, n, NULL, NULL);
        /* the JSON-RPC layer on its own, too */
        const char *why;
        json_t *v = mcp_rpc_parse(p, n, 1 << 16, 32, &why);
        if (v != NULL) {
            mcp_msg m;
            json_t *bad;
            mcp_rpc_classify(v, &m, &why, &bad);
            json_decref(v);
        }
        if (nl == NULL) {
            break;
        }
        p = nl + 1;
        left -= n + 1;
    }
    mcp_session_free(ss);
    return 0;
}
