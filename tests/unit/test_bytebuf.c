/* tests/unit/test_bytebuf.c — bytebuf_reserve: growth from the first size, doubling, kept
 * bytes, refusal of an impossible size. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "base/bytebuf.h"

static void test_grow_and_keep(void **state)
{
    (void)state;
    uint8_t *b = NULL;
    size_t cap = 0;
    assert_true(bytebuf_reserve(&b, &cap, 0, 4096));
    assert_null(b); /* nothing needed: nothing allocated */
    assert_true(bytebuf_reserve(&b, &cap, 10, 4096));
    assert_int_equal(cap, 4096);
    memset(b, 0xab, 10);
    assert_true(bytebuf_reserve(&b, &cap, 4096, 4096));
    assert_int_equal(cap, 4096); /* enough already: unchanged */
    assert_true(bytebuf_reserve(&b, &cap, 4097, 4096));
    assert_int_equal(cap, 8192);
    assert_true(bytebuf_reserve(&b, &cap, 100000, 4096));
    assert_int_equal(cap, 131072);
    for (int i = 0; i < 10; i++) {
        assert_int_equal(b[i], 0xab);
    }
    uint8_t *before = b;
    assert_false(bytebuf_reserve(&b, &cap, SIZE_MAX, 4096));
    assert_ptr_equal(b, before);
    assert_int_equal(cap, 131072);
    free(b);
}

static void test_first_zero(void **state)
{
    (void)state;
    uint8_t *b = NULL;
    size_t cap = 0;
    assert_true(bytebuf_reserve(&b, &cap, 65, 0));
    assert_int_equal(cap, 128);
    free(b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_grow_and_keep),
        cmocka_unit_test(test_first_zero),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
