/* tests/unit/test_qos.c — QoS 1 outbox and de-duplication (src/mesh/qos.h), virtual time. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "mesh/qos.h"

static void mid(uint8_t id[QOS_ID_LEN], int n)
{
    memset(id, 0xab, QOS_ID_LEN);
    memcpy(id, &n, sizeof n);
}

/* Resends back off 1, 2, 4, 8 s ... capped; after max_tries the message is given up. */
static void test_backoff_and_give_up(void **state)
{
    (void)state;
    qos_outbox_config cfg = {.retry_ms = 1000, .max_retry_ms = 4000, .max_tries = 5};
    qos_outbox *o = qos_outbox_new(&cfg);
    uint8_t id[QOS_ID_LEN];
    mid(id, 1);
    assert_int_equal(qos_outbox_add(o, id, 7, "frame", 5, 0), QOS_OK);
    assert_int_equal(qos_outbox_add(o, id, 7, "frame", 5, 0), QOS_EEXIST);
    qos_event ev;
    assert_false(qos_outbox_poll(o, 999, &ev));
    const uint64_t at[] = {1000, 3000, 7000, 11000}; /* waits 1, 2, 4, 4 (cap) */
    for (int k = 0; k < 4; k++) {
        assert_int_equal(qos_outbox_next_deadline(o), at[k]);
        assert_true(qos_outbox_poll(o, at[k], &ev));
        assert_int_equal(ev.kind, QOS_RESEND);
        assert_int_equal(ev.dest, 7);
        assert_int_equal(ev.tries, k + 2);
        assert_memory_equal(ev.frame, "frame", 5);
        assert_memory_equal(ev.id, id, QOS_ID_LEN);
        assert_false(qos_outbox_poll(o, at[k], &ev));
    }
    assert_true(qos_outbox_poll(o, 15000, &ev));
    assert_int_equal(ev.kind, QOS_GAVE_UP);
    assert_int_equal(ev.tries, 5);
    assert_int_equal(qos_outbox_next_deadline(o), UINT64_MAX);
    qos_outbox_stats st;
    qos_outbox_get_stats(o, &st);
    assert_int_equal(st.pending, 0);
    assert_int_equal(st.bytes, 0);
    assert_int_equal(st.resent, 4);
    assert_int_equal(st.gave_up, 1);
    qos_outbox_free(o);
}

static void test_ack_drop_limits(void **state)
{
    (void)state;
    qos_outbox_config cfg = {.max_pending = 3, .max_bytes = 100};
    qos_outbox *o = qos_outbox_new(&cfg);
    uint8_t id[QOS_ID_LEN];
    mid(id, 1);
    /* the same message to two destinations: two entries, acked separately */
    assert_int_equal(qos_outbox_add(o, id, 1, "a", 1, 0), QOS_OK);
    assert_int_equal(qos_outbox_add(o, id, 2, "a", 1, 0), QOS_OK);
    mid(id, 2);
    assert_int_equal(qos_outbox_add(o, id, 2, "b", 1, 0), QOS_OK);
    mid(id, 3);
    assert_int_equal(qos_outbox_add(o, id, 3, "c", 1, 0), QOS_ELIMIT);
    mid(id, 1);
    assert_int_equal(qos_outbox_ack(o, id, 1), QOS_OK);
    assert_int_equal(qos_outbox_ack(o, id, 1), QOS_ENOENT); /* repeated ack */
    assert_int_equal(qos_outbox_ack(o, id, 9), QOS_ENOENT); /* wrong destination */
    assert_int_equal(qos_outbox_drop_dest(o, 2), 2);
    assert_int_equal(qos_outbox_drop_dest(o, 2), 0);
    qos_event ev;
    assert_false(qos_outbox_poll(o, 1u << 30, &ev)); /* nothing left to resend */
    /* bytes limit */
    uint8_t big[101] = {0};
    assert_int_equal(qos_outbox_add(o, id, 1, big, 101, 0), QOS_ELIMIT);
    assert_int_equal(qos_outbox_add(o, id, 1, big, 100, 0), QOS_OK);
    assert_int_equal(qos_outbox_add(o, id, 1, NULL, 0, 0), QOS_EINVAL);
    qos_outbox_stats st;
    qos_outbox_get_stats(o, &st);
    assert_int_equal(st.pending, 1);
    assert_int_equal(st.bytes, 100);
    assert_int_equal(st.refused, 2);
    assert_int_equal(st.dropped, 2);
    assert_int_equal(st.acked, 1);
    assert_string_equal(qos_strerror(QOS_ELIMIT), "too many unacknowledged messages");
    qos_outbox_free(o); /* frees the pending one (LSan) */
    qos_outbox_config bad = {.retry_ms = 5000, .max_retry_ms = 1000};
    assert_null(qos_outbox_new(&bad));
}

static void test_dedup(void **state)
{
    (void)state;
    qos_dedup *d = qos_dedup_new(1000, 0);
    uint8_t id[QOS_ID_LEN];
    mid(id, 1);
    assert_false(qos_dedup_check(d, id, 0));
    assert_true(qos_dedup_check(d, id, 500));
    assert_true(qos_dedup_check(d, id, 999));
    assert_false(qos_dedup_check(d, id, 1000)); /* the window ended: new again */
    assert_true(qos_dedup_check(d, id, 1001));
    /* many ids: all remembered (the ring grows), duplicates found */
    for (int i = 2; i < 5000; i++) {
        mid(id, i);
        assert_false(qos_dedup_check(d, id, 1500));
    }
    for (int i = 2; i < 5000; i += 7) {
        mid(id, i);
        assert_true(qos_dedup_check(d, id, 1600));
    }
    qos_dedup_stats st;
    qos_dedup_get_stats(d, &st);
    assert_int_equal(st.held, 4999);
    assert_int_equal(st.evicted, 0);
    /* after the window everything has expired */
    mid(id, 3);
    assert_false(qos_dedup_check(d, id, 2600));
    qos_dedup_get_stats(d, &st);
    assert_int_equal(st.held, 1);
    qos_dedup_free(d);

    /* a full table forgets its oldest id first */
    d = qos_dedup_new(0, 100);
    for (int i = 0; i < 150; i++) {
        mid(id, i);
        assert_false(qos_dedup_check(d, id, (uint64_t)i));
    }
    qos_dedup_get_stats(d, &st);
    assert_int_equal(st.held, 100);
    assert_int_equal(st.evicted, 50);
    mid(id, 149);
    assert_true(qos_dedup_check(d, id, 200));
    mid(id, 50);
    assert_true(qos_dedup_check(d, id, 200));
    mid(id, 49);
    assert_false(qos_dedup_check(d, id, 200)); /* forgotten */
    qos_dedup_free(d);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_backoff_and_give_up),
        cmocka_unit_test(test_ack_drop_limits),
        cmocka_unit_test(test_dedup),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
