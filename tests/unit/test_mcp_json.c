/*
 * tests/unit/test_mcp_json.c — src/mcp/json.c against jansson: mcp_json_parse accepts and
 * rejects exactly what json_loadb(JSON_REJECT_DUPLICATES | JSON_DECODE_ANY) does and builds
 * equal values (keys in the same order); mcp_json_write gives the bytes of
 * json_dumps(JSON_COMPACT | JSON_ENCODE_ANY). Hand-picked edge cases, then a deterministic
 * mutation run over seed documents.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "json_cases.h"
#include "mcp/json.h"

#define FLAGS (JSON_COMPACT | JSON_ENCODE_ANY)

/* Both parsers on (p, n): same verdict, and when accepted the same value and the same
 * serialisation from both writers. Returns 1 when accepted. */
static int same(const char *p, size_t n)
{
    json_error_t e;
    json_t *ref = json_loadb(p, n, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, &e);
    json_t *got = mcp_json_parse(p, n, MCP_JSON_MAX_DEPTH);
    if ((ref == NULL) != (got == NULL)) {
        fprintf(stderr, "verdict differs (jansson %s, mcp_json %s) on %zu bytes: %.*s\n",
                ref ? "accepts" : "rejects", got ? "accepts" : "rejects", n, (int)n, p);
        fail();
    }
    if (ref == NULL) {
        return 0;
    }
    assert_true(json_equal(ref, got));
    char *a = json_dumps(ref, FLAGS);
    mcp_buf b = {0};
    assert_int_equal(mcp_json_write(&b, got), 0);
    assert_non_null(a);
    if (strlen(a) != b.len || memcmp(a, b.p, b.len) != 0) {
        fprintf(stderr, "serialisation differs:\n jansson %s\n mcp_json %.*s\n", a, (int)b.len,
                b.p);
        fail();
    }
    free(a);
    mcp_buf_free(&b);
    json_decref(ref);
    json_decref(got);
    return 1;
}

static int same_s(const char *s)
{
    return same(s, strlen(s));
}

static void test_edge_cases(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof json_cases_accepted / sizeof *json_cases_accepted; i++) {
        if (!same_s(json_cases_accepted[i])) {
            fprintf(stderr, "expected to parse: %s\n", json_cases_accepted[i]);
            fail();
        }
    }
    for (size_t i = 0; i < sizeof json_cases_rejected / sizeof *json_cases_rejected; i++) {
        if (same_s(json_cases_rejected[i])) {
            fprintf(stderr, "expected to be rejected: %s\n", json_cases_rejected[i]);
            fail();
        }
    }
    for (size_t i = 0; i < sizeof json_cases_dup_keys / sizeof *json_cases_dup_keys; i++) {
        assert_int_equal(same_s(json_cases_dup_keys[i]), 0);
    }
    /* NUL bytes: in a string, between tokens, after the value */
    assert_int_equal(same("\"a\0b\"", 5), 0);
    assert_int_equal(same("[1,\0 2]", 7), 0);
    assert_int_equal(same("{}\0", 3), 0);
    /* the value stops at len: bytes after it are not read */
    assert_int_equal(same("1234", 2), 1);
    json_t *v = mcp_json_parse("1234", 2, 8);
    assert_int_equal(json_integer_value(v), 12);
    json_decref(v);
    v = mcp_json_parse("1.5e3xyz", 5, 8); /* "1.5e3" */
    assert_true(json_real_value(v) == 1500.0);
    json_decref(v);
}

static void test_depth_bound(void **state)
{
    (void)state;
    char deep[40];
    memset(deep, '[', 20);
    memset(deep + 20, ']', 20);
    json_t *v = mcp_json_parse(deep, 40, 20);
    assert_non_null(v); /* exactly at the bound */
    json_decref(v);
    assert_null(mcp_json_parse(deep, 40, 19));
    char obj[] = "{\"a\":{\"b\":{}}}";
    assert_null(mcp_json_parse(obj, strlen(obj), 2));
    v = mcp_json_parse(obj, strlen(obj), 3);
    assert_non_null(v);
    json_decref(v);
}

static void test_writer(void **state)
{
    (void)state;
    /* values built by hand: every control character, keys with escapes and NUL, reals */
    char ctl[32];
    for (int i = 0; i < 32; i++) {
        ctl[i] = (char)i;
    }
    json_t *o = json_object();
    json_object_set_new(o, "ctl", json_stringn(ctl, sizeof ctl));
    json_object_setn_new(o, "k\"\\\n\0z", 6, json_integer(-42));
    json_object_set_new(o, "reals", json_pack("[f,f,f,f,f]", 0.1, -2.0, 1e300, 5e-324, 3.0));
    json_object_set_new(o, "int",
                        json_pack("[I,I,i]", (json_int_t)INT64_MIN, (json_int_t)INT64_MAX, 0));
    json_object_set_new(o, "u", json_string("\xe2\x80\xa8 \xf0\x9f\x98\x80 /"));
    char *a = json_dumps(o, FLAGS);
    mcp_buf b = {0};
    assert_int_equal(mcp_json_write(&b, o), 0);
    assert_int_equal(b.len, strlen(a));
    assert_memory_equal(b.p, a, b.len);
    free(a);
    /* appending keeps what was there; a failure leaves the buffer as it was */
    size_t len = b.len;
    json_t *bad = json_stringn_nocheck("\xff", 1);
    assert_int_equal(mcp_json_write(&b, bad), -1);
    assert_null(json_dumps(bad, FLAGS)); /* jansson refuses it too */
    assert_int_equal(b.len, len);
    json_decref(bad);
    /* a cycle is refused, not followed forever */
    json_t *x = json_array(), *y = json_array();
    json_array_append(x, y);
    json_array_append(y, x);
    assert_int_equal(mcp_json_write(&b, x), -1);
    assert_int_equal(b.len, len);
    json_array_clear(y);
    json_decref(x);
    json_decref(y);
    mcp_buf_free(&b);
    json_decref(o);
}

static void test_mutations(void **state)
{
    (void)state;
    int ok = json_cases_mutations(60000, same);
    /* both outcomes were exercised */
    assert_true(ok > 60000 / 50);
    assert_true(ok < 60000);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_edge_cases),
        cmocka_unit_test(test_depth_bound),
        cmocka_unit_test(test_writer),
        cmocka_unit_test(test_mutations),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
