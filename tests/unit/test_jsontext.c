/*
 * tests/unit/test_jsontext.c — src/base/jsontext.c against jansson: jsontext_valid accepts
 * exactly what json_loadb(JSON_DECODE_ANY) accepts, on hand-picked texts (json_cases.h), at
 * the nesting bound, and on a deterministic mutation run; and it allocates nothing for them.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <jansson.h>

#include "base/jsontext.h"
#include "json_cases.h"

/* Both on (p, n): the same verdict. Returns 1 when accepted. */
static int same(const char *p, size_t n)
{
    json_error_t e;
    json_t *ref = json_loadb(p, n, JSON_DECODE_ANY, &e);
    bool got = jsontext_valid(p, n, JSONTEXT_MAX_DEPTH);
    if ((ref != NULL) != got) {
        fprintf(stderr, "verdict differs (jansson %s: %s; jsontext %s) on %zu bytes: %.*s\n",
                ref ? "accepts" : "rejects", ref ? "" : e.text, got ? "accepts" : "rejects", n,
                (int)(n > 200 ? 200 : n), p);
        fail();
    }
    json_decref(ref);
    return got;
}

static int same_s(const char *s)
{
    return same(s, strlen(s));
}

static void test_edge_cases(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof json_cases_accepted / sizeof *json_cases_accepted; i++) {
        assert_int_equal(same_s(json_cases_accepted[i]), 1);
    }
    for (size_t i = 0; i < sizeof json_cases_rejected / sizeof *json_cases_rejected; i++) {
        assert_int_equal(same_s(json_cases_rejected[i]), 0);
    }
    /* duplicate keys are fine without JSON_REJECT_DUPLICATES */
    for (size_t i = 0; i < sizeof json_cases_dup_keys / sizeof *json_cases_dup_keys; i++) {
        assert_int_equal(same_s(json_cases_dup_keys[i]), 1);
    }
    /* NUL bytes: in a string, between tokens, after the value */
    assert_int_equal(same("\"a\0b\"", 5), 0);
    assert_int_equal(same("[1,\0 2]", 7), 0);
    assert_int_equal(same("{}\0", 3), 0);
    /* the text stops at len */
    assert_int_equal(same("1234", 2), 1);
    assert_int_equal(same("[1]]", 3), 1);
    assert_int_equal(same("\"ab\"", 3), 0);
    /* a real longer than the 64-byte stack copy, and one that overflows only when read whole */
    char big[400];
    memset(big, '9', sizeof big);
    big[0] = '1';
    big[1] = '.';
    assert_int_equal(same(big, sizeof big), 1);
    memcpy(big, "1e30", 4);
    memset(big + 4, '9', 4); /* 1e309999 */
    assert_int_equal(same(big, 8), 0);
    assert_false(jsontext_valid(NULL, 0, 8));
}

/* jansson counts every value as a level, so at its bound of 2048 an empty container may sit
 * 2048 deep and a scalar 2047 containers deep; the same with a smaller max_depth. */
static void test_depth_bound(void **state)
{
    (void)state;
    static char t[8 * 2100];
    for (int n = 2046; n <= 2050; n++) {
        for (int with_scalar = 0; with_scalar < 2; with_scalar++) {
            size_t len = 0;
            for (int i = 0; i < n; i++) {
                t[len++] = i % 2 ? '[' : '{';
                if (i % 2 == 0) {
                    memcpy(t + len, "\"k\":", 4);
                    len += 4;
                }
            }
            if (with_scalar) {
                t[len++] = '7';
            }
            for (int i = n - 1; i >= 0; i--) {
                t[len++] = i % 2 ? ']' : '}';
            }
            if (n % 2 == 1 && !with_scalar) {
                /* the innermost is an object with a key and no value: not JSON; skip */
                continue;
            }
            same(t, len);
        }
    }
    assert_true(jsontext_valid("[[[]]]", 6, 3));
    assert_false(jsontext_valid("[[[]]]", 6, 2));
    assert_true(jsontext_valid("[[1]]", 5, 3));
    assert_false(jsontext_valid("[[1]]", 5, 2));
    assert_true(jsontext_valid("1", 1, 1));
    assert_true(jsontext_valid("{\"a\":{}}", 8, 2));
    assert_false(jsontext_valid("{\"a\":{}}", 8, 1));
}

static void test_mutations(void **state)
{
    (void)state;
    int ok = json_cases_mutations(200000, same);
    assert_true(ok > 200000 / 50);
    assert_true(ok < 200000);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_edge_cases),
        cmocka_unit_test(test_depth_bound),
        cmocka_unit_test(test_mutations),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
