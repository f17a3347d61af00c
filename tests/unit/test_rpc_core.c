/* tests/unit/test_rpc_core.c — the caller's side of mesh RPC (src/mesh/rpc_core.h) on a
 * virtual clock. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "mesh/rpc_core.h"

static uint8_t P[4][RPCC_NODE_ID_LEN]; /* providers 0..3: id bytes all = index + 1 */

static void cid(uint8_t out[RPCC_CALL_ID_LEN], int n)
{
    memset(out, 0, RPCC_CALL_ID_LEN);
    out[0] = (uint8_t)n;
    out[1] = (uint8_t)(n >> 8);
}

static int setup(void **state)
{
    (void)state;
    for (int i = 0; i < 4; i++) {
        memset(P[i], i + 1, RPCC_NODE_ID_LEN);
    }
    return 0;
}

static int provider_index(const uint8_t id[RPCC_NODE_ID_LEN])
{
    for (int i = 0; i < 4; i++) {
        if (memcmp(P[i], id, RPCC_NODE_ID_LEN) == 0) {
            return i;
        }
    }
    return -1;
}

/* Pops the next action and checks its kind. */
static rpcc_action expect(rpcc *r, rpcc_action_kind kind)
{
    rpcc_action a;
    assert_true(rpcc_next_action(r, &a));
    if (a.kind != kind) {
        fail_msg("action %d, wanted %d", a.kind, kind);
    }
    return a;
}

static void expect_none(rpcc *r)
{
    rpcc_action a;
    assert_false(rpcc_next_action(r, &a));
}

static void test_lookup_send_reply(void **state)
{
    (void)state;
    rpcc_config cfg = {.strategy = RPCC_FIRST};
    rpcc *r = rpcc_new(&cfg);
    uint8_t id[RPCC_CALL_ID_LEN];
    cid(id, 1);
    assert_int_equal(rpcc_call(r, id, 77, "svc.add", "[1,2]", 5, 1000), RPCC_OK);
    assert_int_equal(rpcc_call(r, id, 77, "svc.add", "[1,2]", 5, 1000), RPCC_EEXIST);
    rpcc_action a = expect(r, RPCC_ACT_LOOKUP);
    assert_string_equal(a.procedure, "svc.add");
    rpcc_action_clear(&a);
    expect_none(r);
    /* a second call for the same procedure waits for the same lookup: no second LOOKUP */
    uint8_t id2[RPCC_CALL_ID_LEN];
    cid(id2, 2);
    assert_int_equal(rpcc_call(r, id2, 78, "svc.add", "[3]", 3, 1001), RPCC_OK);
    expect_none(r);

    assert_int_equal(rpcc_providers(r, "svc.add", (const uint8_t(*)[32])P, 2, 1010), RPCC_OK);
    for (int k = 0; k < 2; k++) {
        a = expect(r, RPCC_ACT_SEND);
        assert_int_equal(provider_index(a.provider), 0);
        assert_int_equal(a.attempt, 1);
        assert_int_equal(a.timeout_ms, 5000);
        assert_string_equal(a.procedure, "svc.add");
        bool first = memcmp(a.call_id, id, sizeof id) == 0;
        assert_memory_equal(a.args, first ? "[1,2]" : "[3]", first ? 5 : 3);
        assert_int_equal(a.caller, first ? 77 : 78);
        rpcc_action_clear(&a);
    }
    /* a reply from the wrong provider is dropped; the right one ends the call */
    assert_int_equal(rpcc_reply(r, id, P[1], false, NULL, "3", 1, 1020), RPCC_ENOENT);
    assert_int_equal(rpcc_reply(r, id, P[0], false, NULL, "3", 1, 1020), RPCC_OK);
    a = expect(r, RPCC_ACT_DONE);
    assert_int_equal(a.status, RPCC_R_OK);
    assert_int_equal(a.caller, 77);
    assert_memory_equal(a.result, "3", 1);
    assert_int_equal(provider_index(a.provider), 0);
    rpcc_action_clear(&a);
    /* the same reply again is late */
    assert_int_equal(rpcc_reply(r, id, P[0], false, NULL, "3", 1, 1021), RPCC_ENOENT);
    /* a remote error ends the call with its code */
    assert_int_equal(rpcc_reply(r, id2, P[0], true, "handler_error", "boom", 4, 1030), RPCC_OK);
    a = expect(r, RPCC_ACT_DONE);
    assert_int_equal(a.status, RPCC_R_ERROR);
    assert_string_equal(a.error_code, "handler_error");
    assert_memory_equal(a.result, "boom", 4);
    rpcc_action_clear(&a);

    /* within the cache TTL a new call goes straight to SEND */
    uint8_t id3[RPCC_CALL_ID_LEN];
    cid(id3, 3);
    assert_int_equal(rpcc_call(r, id3, 79, "svc.add", NULL, 0, 50000), RPCC_OK);
    a = expect(r, RPCC_ACT_SEND);
    rpcc_action_clear(&a);
    assert_int_equal(rpcc_cancel(r, id3), RPCC_OK);
    a = expect(r, RPCC_ACT_DONE);
    assert_int_equal(a.status, RPCC_R_CANCELLED);
    rpcc_action_clear(&a);
    /* after the TTL (60 s from 1010) it looks up again */
    assert_int_equal(rpcc_call(r, id3, 79, "svc.add", NULL, 0, 61011), RPCC_OK);
    a = expect(r, RPCC_ACT_LOOKUP);
    rpcc_action_clear(&a);

    rpcc_stats st;
    rpcc_get_stats(r, &st);
    assert_int_equal(st.calls, 4);
    assert_int_equal(st.lookups, 2);
    assert_int_equal(st.cache_hits, 1);
    assert_int_equal(st.late_replies, 2);
    assert_int_equal(st.pending, 1);
    rpcc_free(r);
}

/* Attempt timeouts fail over to the next provider, up to max_attempts; then `timeout`. */
static void test_failover(void **state)
{
    (void)state;
    rpcc_config cfg = {.strategy = RPCC_FIRST, .max_attempts = 3};
    rpcc *r = rpcc_new(&cfg);
    uint8_t id[RPCC_CALL_ID_LEN];
    cid(id, 1);
    assert_int_equal(rpcc_providers(r, "p", (const uint8_t(*)[32])P, 4, 0), RPCC_OK);
    assert_int_equal(rpcc_call(r, id, 1, "p", "{}", 2, 0), RPCC_OK);
    for (int attempt = 1; attempt <= 3; attempt++) {
        rpcc_action a = expect(r, RPCC_ACT_SEND);
        assert_int_equal(a.attempt, attempt);
        assert_int_equal(provider_index(a.provider), attempt - 1);
        rpcc_action_clear(&a);
        uint64_t at = rpcc_next_deadline(r);
        assert_int_equal(at, (uint64_t)attempt * 5000);
        rpcc_tick(r, at - 1);
        expect_none(r);
        rpcc_tick(r, at);
    }
    rpcc_action a = expect(r, RPCC_ACT_DONE);
    assert_int_equal(a.status, RPCC_R_TIMEOUT);
    assert_string_equal(rpcc_status_name(a.status), "timeout");
    rpcc_action_clear(&a);
    /* a reply from the first provider, long after, is dropped */
    assert_int_equal(rpcc_reply(r, id, P[0], false, NULL, "1", 1, 16000), RPCC_ENOENT);

    /* a success on the second attempt */
    cid(id, 2);
    assert_int_equal(rpcc_call(r, id, 1, "p", "{}", 2, 20000), RPCC_OK);
    a = expect(r, RPCC_ACT_SEND);
    rpcc_action_clear(&a);
    rpcc_tick(r, 25000);
    a = expect(r, RPCC_ACT_SEND);
    assert_int_equal(a.attempt, 2);
    int second = provider_index(a.provider);
    rpcc_action_clear(&a);
    assert_int_equal(rpcc_reply(r, id, P[second], false, NULL, "ok", 2, 26000), RPCC_OK);
    a = expect(r, RPCC_ACT_DONE);
    assert_int_equal(a.status, RPCC_R_OK);
    rpcc_action_clear(&a);
    rpcc_stats st;
    rpcc_get_stats(r, &st);
    assert_int_equal(st.failovers, 3);
    assert_int_equal(st.pending, 0);
    rpcc_free(r);
}

/* The overall timeout cuts an attempt short, and bounds the last attempt's timeout field. */
static void test_overall_timeout(void **state)
{
    (void)state;
    rpcc_config cfg = {.strategy = RPCC_FIRST, .overall_timeout_ms = 7000, .max_attempts = 5};
    rpcc *r = rpcc_new(&cfg);
    uint8_t id[RPCC_CALL_ID_LEN];
    cid(id, 1);
    assert_int_equal(rpcc_providers(r, "p", (const uint8_t(*)[32])P, 4, 0), RPCC_OK);
    assert_int_equal(rpcc_call(r, id, 1, "p", "{}", 2, 0), RPCC_OK);
    rpcc_action a = expect(r, RPCC_ACT_SEND);
    rpcc_action_clear(&a);
    rpcc_tick(r, 5000);
    a = expect(r, RPCC_ACT_SEND);
    assert_int_equal(a.timeout_ms, 2000); /* 7000 - 5000 */
    rpcc_action_clear(&a);
    rpcc_tick(r, 7000);
    a = expect(r, RPCC_ACT_DONE);
    assert_int_equal(a.status, RPCC_R_TIMEOUT);
    rpcc_action_clear(&a);
    expect_none(r);
    /* a lookup that never answers also ends at the overall timeout */
    cid(id, 2);
    assert_int_equal(rpcc_call(r, id, 1, "never.answered", NULL, 0, 10000), RPCC_OK);
    a = expect(r, RPCC_ACT_LOOKUP);
    rpcc_action_clear(&a);
    rpcc_tick(r, 17000);
    a = expect(r, RPCC_ACT_DONE);
    assert_int_equal(a.status, RPCC_R_TIMEOUT);
    rpcc_action_clear(&a);
    rpcc_free(r);
}

/* No providers: no_handler. A stale provider answering no_handler: next one, no attempt used. */
static void test_no_handler(void **state)
{
    (void)state;
    rpcc_config cfg = {.strategy = RPCC_FIRST, .max_attempts = 1};
    rpcc *r = rpcc_new(&cfg);
    uint8_t id[RPCC_CALL_ID_LEN];
    cid(id, 1);
    assert_int_equal(rpcc_call(r, id, 1, "gone", NULL, 0, 0), RPCC_OK);
    rpcc_action a = expect(r, RPCC_ACT_LOOKUP);
    rpcc_action_clear(&a);
    assert_int_equal(rpcc_providers(r, "gone", NULL, 0, 10), RPCC_OK);
    a = expect(r, RPCC_ACT_DONE);
    assert_int_equal(a.status, RPCC_R_NO_HANDLER);
    assert_string_equal(rpcc_status_name(a.status), "no_handler");
    rpcc_action_clear(&a);
    /* an empty answer is not cached: the next call looks up again */
    cid(id, 2);
    assert_int_equal(rpcc_call(r, id, 1, "gone", NULL, 0, 20), RPCC_OK);
    a = expect(r, RPCC_ACT_LOOKUP);
    rpcc_action_clear(&a);
    assert_int_equal(rpcc_providers(r, "gone", (const uint8_t(*)[32])P, 2, 30), RPCC_OK);
    a = expect(r, RPCC_ACT_SEND);
    assert_int_equal(provider_index(a.provider), 0);
    rpcc_action_clear(&a);
    assert_int_equal(rpcc_reply(r, id, P[0], true, "no_handler", "", 0, 40), RPCC_OK);
    a = expect(r, RPCC_ACT_SEND); /* max_attempts 1, yet the stale one did not count */
    assert_int_equal(provider_index(a.provider), 1);
    rpcc_action_clear(&a);
    assert_int_equal(rpcc_reply(r, id, P[1], false, NULL, "1", 1, 50), RPCC_OK);
    a = expect(r, RPCC_ACT_DONE);
    assert_int_equal(a.status, RPCC_R_OK);
    rpcc_action_clear(&a);
    /* the stale provider left the cache: the next call goes to provider 1 directly */
    cid(id, 3);
    assert_int_equal(rpcc_call(r, id, 1, "gone", NULL, 0, 60), RPCC_OK);
    a = expect(r, RPCC_ACT_SEND);
    assert_int_equal(provider_index(a.provider), 1);
    rpcc_action_clear(&a);
    /* forgetting the last provider: the running attempt's timeout leads to `timeout` */
    rpcc_forget_provider(r, P[1]);
    rpcc_tick(r, 60 + 5000);
    a = expect(r, RPCC_ACT_DONE);
    assert_int_equal(a.status, RPCC_R_TIMEOUT);
    rpcc_action_clear(&a);
    rpcc_free(r);
}

static void test_strategies(void **state)
{
    (void)state;
    /* round robin spreads calls over all providers in turn */
    rpcc_config cfg = {.strategy = RPCC_ROUND_ROBIN};
    rpcc *r = rpcc_new(&cfg);
    assert_int_equal(rpcc_providers(r, "p", (const uint8_t(*)[32])P, 3, 0), RPCC_OK);
    for (int k = 0; k < 9; k++) {
        uint8_t id[RPCC_CALL_ID_LEN];
        cid(id, k);
        assert_int_equal(rpcc_call(r, id, 1, "p", NULL, 0, 1), RPCC_OK);
        rpcc_action a = expect(r, RPCC_ACT_SEND);
        assert_int_equal(provider_index(a.provider), k % 3);
        rpcc_action_clear(&a);
    }
    rpcc_free(r);

    /* random reaches every provider, reproducibly for a seed */
    int first_pick[2] = {-1, -1};
    for (int run = 0; run < 2; run++) {
        rpcc_config rc = {.strategy = RPCC_RANDOM, .seed = 12345};
        r = rpcc_new(&rc);
        assert_int_equal(rpcc_providers(r, "p", (const uint8_t(*)[32])P, 4, 0), RPCC_OK);
        int seen[4] = {0};
        for (int k = 0; k < 200; k++) {
            uint8_t id[RPCC_CALL_ID_LEN];
            cid(id, k);
            assert_int_equal(rpcc_call(r, id, 1, "p", NULL, 0, 1), RPCC_OK);
            rpcc_action a = expect(r, RPCC_ACT_SEND);
            int pi = provider_index(a.provider);
            seen[pi]++;
            if (k == 0) {
                first_pick[run] = pi;
            }
            rpcc_action_clear(&a);
        }
        for (int i = 0; i < 4; i++) {
            assert_true(seen[i] > 0);
        }
        rpcc_free(r);
    }
    assert_int_equal(first_pick[0], first_pick[1]);
}

/* A caller that dies has its calls removed at once, with no DONE; replies are then late. */
static void test_caller_down_and_limits(void **state)
{
    (void)state;
    rpcc_config cfg = {.max_pending = 3};
    rpcc *r = rpcc_new(&cfg);
    assert_int_equal(rpcc_providers(r, "p", (const uint8_t(*)[32])P, 1, 0), RPCC_OK);
    uint8_t id[RPCC_CALL_ID_LEN];
    for (int k = 0; k < 3; k++) {
        cid(id, k);
        assert_int_equal(rpcc_call(r, id, k == 2 ? 9 : 8, "p", NULL, 0, 1), RPCC_OK);
        rpcc_action a = expect(r, RPCC_ACT_SEND);
        rpcc_action_clear(&a);
    }
    cid(id, 3);
    assert_int_equal(rpcc_call(r, id, 8, "p", NULL, 0, 1), RPCC_ELIMIT);
    assert_int_equal(rpcc_caller_down(r, 8), 2);
    assert_int_equal(rpcc_caller_down(r, 8), 0);
    expect_none(r);
    cid(id, 0);
    assert_int_equal(rpcc_reply(r, id, P[0], false, NULL, "x", 1, 2), RPCC_ENOENT);
    cid(id, 2);
    assert_int_equal(rpcc_reply(r, id, P[0], false, NULL, "x", 1, 2), RPCC_OK);
    rpcc_action a = expect(r, RPCC_ACT_DONE);
    assert_int_equal(a.caller, 9);
    rpcc_action_clear(&a);
    /* bad arguments */
    char big[RPCC_MAX_PROC + 2];
    memset(big, 'a', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    assert_int_equal(rpcc_call(r, id, 1, big, NULL, 0, 3), RPCC_EINVAL);
    assert_int_equal(rpcc_call(r, id, 1, "", NULL, 0, 3), RPCC_EINVAL);
    assert_int_equal(rpcc_call(r, id, 1, "p", NULL, 4, 3), RPCC_EINVAL);
    assert_int_equal(rpcc_cancel(r, id), RPCC_ENOENT);
    assert_string_equal(rpcc_strerror(RPCC_ELIMIT), "too many pending calls");
    rpcc_stats st;
    rpcc_get_stats(r, &st);
    assert_int_equal(st.pending, 0);
    assert_int_equal(st.dropped_callers, 2);
    /* the cache entry is released once stale and unused */
    rpcc_tick(r, 120000);
    rpcc_free(r);
    rpcc_config bad = {.strategy = (rpcc_strategy)7};
    assert_null(rpcc_new(&bad));
}

/* Everything still pending at rpcc_free is released (LSan checks). */
static void test_free_with_pending(void **state)
{
    (void)state;
    rpcc *r = rpcc_new(NULL);
    for (int k = 0; k < 1000; k++) {
        uint8_t id[RPCC_CALL_ID_LEN];
        cid(id, k);
        char proc[16];
        snprintf(proc, sizeof proc, "p%d", k % 10);
        assert_int_equal(rpcc_call(r, id, (uint64_t)k % 7, proc, "[]", 2, 0), RPCC_OK);
    }
    assert_int_equal(rpcc_providers(r, "p3", (const uint8_t(*)[32])P, 2, 5), RPCC_OK);
    rpcc_free(r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_lookup_send_reply, setup),
        cmocka_unit_test_setup(test_failover, setup),
        cmocka_unit_test_setup(test_overall_timeout, setup),
        cmocka_unit_test_setup(test_no_handler, setup),
        cmocka_unit_test_setup(test_strategies, setup),
        cmocka_unit_test_setup(test_caller_down_and_limits, setup),
        cmocka_unit_test_setup(test_free_with_pending, setup),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
