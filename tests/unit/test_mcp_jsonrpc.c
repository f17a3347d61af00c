/* tests/unit/test_mcp_jsonrpc.c — JSON-RPC 2.0 parse, classify, build (src/mcp/jsonrpc.c). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "mcp/jsonrpc.h"

static json_t *parse(const char *s, const char **why)
{
    return mcp_rpc_parse(s, strlen(s), 1 << 20, 64, why);
}

static int classify(const char *s, mcp_msg *m, json_t **v, json_t **bad)
{
    const char *why = NULL;
    *v = parse(s, &why);
    assert_non_null(*v);
    return mcp_rpc_classify(*v, m, &why, bad);
}

static void test_parse_limits(void **state)
{
    (void)state;
    const char *why = NULL;
    assert_null(mcp_rpc_parse("{}", 2, 1, 64, &why));
    assert_string_equal(why, "message too large");
    assert_null(mcp_rpc_parse("", 0, 100, 64, &why));
    assert_string_equal(why, "empty message");
    char deep[200];
    memset(deep, '[', 100);
    memset(deep + 100, ']', 100);
    assert_null(mcp_rpc_parse(deep, 200, 1000, 64, &why));
    assert_string_equal(why, "nesting too deep");
    json_t *ok = mcp_rpc_parse(deep, 200, 1000, 100, &why);
    assert_non_null(ok); /* exactly at the bound */
    json_decref(ok);
    /* brackets inside strings do not count */
    char s[300];
    snprintf(s, sizeof s, "{\"a\":\"%.*s\\\"[[[\"}", 100, deep);
    ok = mcp_rpc_parse(s, strlen(s), 1000, 2, &why);
    assert_non_null(ok);
    json_decref(ok);
    assert_null(parse("{\"a\":1,\"a\":2}", &why)); /* duplicate keys */
    assert_string_equal(why, "invalid JSON");
    assert_null(parse("{\"a\":\"\\u0000\"}", &why)); /* NUL in a string */
    assert_null(parse("{\"a\":1", &why));
    assert_null(parse("{\"id\":99999999999999999999}", &why)); /* beyond int64 */
    ok = parse("42", &why); /* any JSON value parses; classify rejects it */
    assert_non_null(ok);
    json_decref(ok);
}

static void test_classify_request_notification(void **state)
{
    (void)state;
    mcp_msg m;
    json_t *v, *bad;
    assert_int_equal(classify("{\"jsonrpc\":\"2.0\",\"id\":7,\"method\":\"ping\"}", &m, &v, &bad),
                     0);
    assert_int_equal(m.kind, MCP_MSG_REQUEST);
    assert_int_equal(json_integer_value(m.id), 7);
    assert_string_equal(m.method, "ping");
    assert_null(m.params);
    json_decref(v);
    assert_int_equal(
        classify("{\"jsonrpc\":\"2.0\",\"id\":\"a\",\"method\":\"x\",\"params\":{}}", &m, &v, &bad),
        0);
    assert_true(json_is_string(m.id));
    assert_true(json_is_object(m.params));
    json_decref(v);
    assert_int_equal(
        classify("{\"jsonrpc\":\"2.0\",\"id\":9223372036854775807,\"method\":\"x\"}", &m, &v, &bad),
        0);
    assert_true(json_integer_value(m.id) == INT64_MAX);
    json_decref(v);
    assert_int_equal(classify("{\"jsonrpc\":\"2.0\",\"method\":\"n\"}", &m, &v, &bad), 0);
    assert_int_equal(m.kind, MCP_MSG_NOTIFICATION);
    assert_null(m.id);
    json_decref(v);
    assert_int_equal(
        classify("{\"jsonrpc\":\"2.0\",\"method\":\"n\",\"params\":[1]}", &m, &v, &bad),
        0); /* arrays pass here; MCP methods reject them with -32602 */
    json_decref(v);
}

static void test_classify_invalid(void **state)
{
    (void)state;
    static const struct {
        const char *text;
        int has_id; /* the error response can carry the id */
    } cases[] = {
        {"[]", 0},
        {"42", 0},
        {"\"x\"", 0},
        {"null", 0},
        {"{\"id\":1,\"method\":\"x\"}", 1},                        /* no jsonrpc */
        {"{\"jsonrpc\":\"1.0\",\"id\":1,\"method\":\"x\"}", 1},    /* wrong version */
        {"{\"jsonrpc\":2.0,\"id\":1,\"method\":\"x\"}", 1},        /* version not a string */
        {"{\"jsonrpc\":\"2.0\",\"id\":null,\"method\":\"x\"}", 0}, /* null id */
        {"{\"jsonrpc\":\"2.0\",\"id\":1.5,\"method\":\"x\"}", 0},  /* fractional id */
        {"{\"jsonrpc\":\"2.0\",\"id\":1.0,\"method\":\"x\"}", 0},  /* float id */
        {"{\"jsonrpc\":\"2.0\",\"id\":true,\"method\":\"x\"}", 0},
        {"{\"jsonrpc\":\"2.0\",\"id\":[1],\"method\":\"x\"}", 0},
        {"{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":5}", 1},
        {"{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"\"}", 1},
        {"{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"x\",\"params\":3}", 1},
        {"{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"x\",\"result\":{}}", 1},
        {"{\"jsonrpc\":\"2.0\",\"id\":1}", 1},                            /* neither */
        {"{\"jsonrpc\":\"2.0\",\"id\":1,\"result\":{},\"error\":{}}", 1}, /* both */
        {"{\"jsonrpc\":\"2.0\",\"id\":1,\"error\":{\"code\":\"x\",\"message\":\"m\"}}", 1},
        {"{\"jsonrpc\":\"2.0\",\"result\":{}}", 0}, /* result without id */
        {"{\"jsonrpc\":\"2.0\",\"id\":1.5,\"result\":{}}", 0},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        mcp_msg m;
        json_t *v, *bad;
        int rc = classify(cases[i].text, &m, &v, &bad);
        if (rc != -32600) {
            fail_msg("case %zu (%s) classified %d", i, cases[i].text, rc);
        }
        if ((bad != NULL) != (cases[i].has_id != 0)) {
            fail_msg("case %zu (%s): id %s", i, cases[i].text, bad ? "kept" : "lost");
        }
        json_decref(v);
    }
}

static void test_classify_response(void **state)
{
    (void)state;
    mcp_msg m;
    json_t *v, *bad;
    assert_int_equal(classify("{\"jsonrpc\":\"2.0\",\"id\":1,\"result\":{}}", &m, &v, &bad), 0);
    assert_int_equal(m.kind, MCP_MSG_RESPONSE);
    assert_non_null(m.result);
    json_decref(v);
    assert_int_equal(
        classify("{\"jsonrpc\":\"2.0\",\"id\":null,\"error\":{\"code\":-1,\"message\":\"m\"}}", &m,
                 &v, &bad),
        0);
    assert_non_null(m.error);
    json_decref(v);
}

static void test_ids(void **state)
{
    (void)state;
    json_t *a = json_integer(5), *b = json_integer(5), *c = json_string("5");
    json_t *d = json_string("5"), *r = json_real(5.0);
    assert_true(mcp_rpc_id_equal(a, b));
    assert_false(mcp_rpc_id_equal(a, c));
    assert_true(mcp_rpc_id_equal(c, d));
    assert_false(mcp_rpc_id_equal(a, NULL));
    assert_false(mcp_rpc_id_valid(r));
    assert_false(mcp_rpc_id_valid(json_null()));
    assert_true(mcp_rpc_id_valid(a) && mcp_rpc_id_valid(c));
    json_decref(a);
    json_decref(b);
    json_decref(c);
    json_decref(d);
    json_decref(r);
}

static void test_build_and_dump(void **state)
{
    (void)state;
    json_t *id = json_integer(3);
    json_t *res = mcp_rpc_result(id, json_pack("{s:i}", "x", 1));
    size_t len = 0;
    char *s = mcp_rpc_dump(res, &len);
    assert_string_equal(s, "{\"jsonrpc\":\"2.0\",\"id\":3,\"result\":{\"x\":1}}");
    assert_int_equal(len, strlen(s));
    free(s);
    json_decref(res);
    json_t *err = mcp_rpc_error(NULL, -32700, "parse error", NULL);
    s = mcp_rpc_dump(err, NULL);
    assert_string_equal(s, "{\"jsonrpc\":\"2.0\",\"id\":null,\"error\":{\"code\":-32700,"
                           "\"message\":\"parse error\"}}");
    free(s);
    json_decref(err);
    err = mcp_rpc_error(id, -32602, "bad", json_string("detail"));
    assert_string_equal(json_string_value(json_object_get(json_object_get(err, "error"), "data")),
                        "detail");
    json_decref(err);
    assert_null(mcp_rpc_error(id, -1, "\xff", NULL)); /* invalid UTF-8 message */
    json_t *n = mcp_rpc_notification("notifications/x", NULL);
    s = mcp_rpc_dump(n, NULL);
    assert_string_equal(s, "{\"jsonrpc\":\"2.0\",\"method\":\"notifications/x\"}");
    free(s);
    json_decref(n);
    n = mcp_rpc_notification("m", json_pack("{s:s}", "a", "line\nbreak"));
    s = mcp_rpc_dump(n, NULL);
    assert_null(strchr(s, '\n')); /* stdio framing relies on this */
    free(s);
    json_decref(n);
    json_decref(id);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_limits),
        cmocka_unit_test(test_classify_request_notification),
        cmocka_unit_test(test_classify_invalid),
        cmocka_unit_test(test_classify_response),
        cmocka_unit_test(test_ids),
        cmocka_unit_test(test_build_and_dump),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
