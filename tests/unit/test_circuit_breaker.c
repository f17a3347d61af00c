/* tests/unit/test_circuit_breaker.c — breaker transitions on an injected clock. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "flow/core/flow_breaker.h"

static void opens_after_threshold(void **st)
{
    (void)st;
    flow_breaker b;
    flow_breaker_init(&b, 5, 60000);
    for (int i = 0; i < 4; i++) {
        assert_false(flow_breaker_failure(&b, 1000 + (uint64_t)i));
        assert_true(flow_breaker_allows(&b));
    }
    assert_true(flow_breaker_failure(&b, 2000));
    assert_int_equal(b.state, FLOW_CB_OPEN);
    assert_false(flow_breaker_allows(&b));
    assert_int_equal(flow_breaker_deadline(&b), 62000);
}

static void success_resets_count(void **st)
{
    (void)st;
    flow_breaker b;
    flow_breaker_init(&b, 5, 60000);
    for (int i = 0; i < 4; i++) {
        flow_breaker_failure(&b, 0);
    }
    assert_false(flow_breaker_success(&b));
    for (int i = 0; i < 4; i++) {
        assert_false(flow_breaker_failure(&b, 0));
    }
    assert_int_equal(b.state, FLOW_CB_CLOSED);
}

static void half_open_one_trial_then_close(void **st)
{
    (void)st;
    flow_breaker b;
    flow_breaker_init(&b, 2, 60000);
    flow_breaker_failure(&b, 10);
    flow_breaker_failure(&b, 10);
    assert_false(flow_breaker_tick(&b, 60009)); /* not yet */
    assert_int_equal(b.state, FLOW_CB_OPEN);
    assert_true(flow_breaker_tick(&b, 60010));
    assert_int_equal(b.state, FLOW_CB_HALF_OPEN);
    assert_true(flow_breaker_allows(&b));
    flow_breaker_dispatched(&b);
    assert_false(flow_breaker_allows(&b)); /* one trial only */
    flow_breaker_trial_void(&b);           /* trial cancelled: another may go */
    assert_true(flow_breaker_allows(&b));
    flow_breaker_dispatched(&b);
    assert_true(flow_breaker_success(&b));
    assert_int_equal(b.state, FLOW_CB_CLOSED);
    assert_true(flow_breaker_allows(&b));
    assert_int_equal(flow_breaker_deadline(&b), UINT64_MAX);
}

static void half_open_failure_reopens(void **st)
{
    (void)st;
    flow_breaker b;
    flow_breaker_init(&b, 1, 1000);
    assert_true(flow_breaker_failure(&b, 5));
    assert_true(flow_breaker_tick(&b, 1005));
    flow_breaker_dispatched(&b);
    assert_true(flow_breaker_failure(&b, 1500));
    assert_int_equal(b.state, FLOW_CB_OPEN);
    assert_int_equal(b.opened_at, 1500);
    assert_false(flow_breaker_tick(&b, 2499));
    assert_true(flow_breaker_tick(&b, 2500));
}

static void names_and_defaults(void **st)
{
    (void)st;
    flow_breaker b;
    flow_breaker_init(&b, 0, 60000); /* 0 → default 5 */
    assert_int_equal(b.threshold, 5);
    assert_string_equal(flow_breaker_state_name(FLOW_CB_HALF_OPEN), "half_open");
    assert_int_equal(flow_breaker_state_parse("open"), FLOW_CB_OPEN);
    assert_int_equal(flow_breaker_state_parse("x"), -1);
    /* failures while open push the reopen time */
    flow_breaker_init(&b, 1, 100);
    flow_breaker_failure(&b, 0);
    assert_false(flow_breaker_failure(&b, 50));
    assert_int_equal(flow_breaker_deadline(&b), 150);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(opens_after_threshold),
        cmocka_unit_test(success_resets_count),
        cmocka_unit_test(half_open_one_trial_then_close),
        cmocka_unit_test(half_open_failure_reopens),
        cmocka_unit_test(names_and_defaults),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
