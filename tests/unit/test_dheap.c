/* tests/unit/test_dheap.c — the deadline heap (src/base/dheap.h). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include <cmocka.h>

#include "base/dheap.h"

typedef struct item {
    dheap_node hn;
    int id;
} item;

static void test_order_and_ties(void **state)
{
    (void)state;
    dheap h;
    dheap_init(&h);
    item it[6];
    const uint64_t dl[6] = {50, 10, 30, 10, 50, 20};
    for (int i = 0; i < 6; i++) {
        it[i].id = i;
        dheap_node_init(&it[i].hn);
        assert_false(dheap_node_queued(&it[i].hn));
        assert_int_equal(dheap_push(&h, &it[i].hn, dl[i]), DHEAP_OK);
        assert_true(dheap_node_queued(&it[i].hn));
    }
    assert_int_equal(dheap_min(&h), 10);
    assert_null(dheap_pop_due(&h, 9));
    /* same deadline: insertion order */
    const int want[6] = {1, 3, 5, 2, 0, 4};
    for (int k = 0; k < 6; k++) {
        dheap_node *n = dheap_pop_due(&h, 100);
        assert_non_null(n);
        assert_int_equal(((item *)(void *)n)->id, want[k]);
        assert_false(dheap_node_queued(n));
    }
    assert_null(dheap_peek(&h));
    assert_int_equal(dheap_min(&h), UINT64_MAX);
    dheap_remove(&h, &it[0].hn); /* not queued: no-op */
    dheap_free(&h);
}

/* Random pushes and removals against a model: pops come out sorted and nothing is lost. */
static void test_model(void **state)
{
    (void)state;
    enum { N = 5000 };
    static item it[N];
    dheap h;
    dheap_init(&h);
    srand(7);
    for (int i = 0; i < N; i++) {
        it[i].id = i;
        dheap_node_init(&it[i].hn);
        assert_int_equal(dheap_push(&h, &it[i].hn, (uint64_t)(rand() % 1000)), DHEAP_OK);
    }
    size_t removed = 0;
    for (int i = 0; i < N; i += 3) {
        dheap_remove(&h, &it[i].hn);
        assert_false(dheap_node_queued(&it[i].hn));
        removed++;
    }
    assert_int_equal(h.n, N - removed);
    uint64_t last = 0, lastseq = 0;
    size_t popped = 0;
    dheap_node *n;
    while ((n = dheap_pop_due(&h, UINT64_MAX)) != NULL) {
        assert_true(n->deadline > last || (n->deadline == last && n->seq > lastseq));
        assert_true(((item *)(void *)n)->id % 3 != 0);
        last = n->deadline;
        lastseq = n->seq;
        popped++;
    }
    assert_int_equal(popped, N - removed);
    dheap_free(&h);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_order_and_ties),
        cmocka_unit_test(test_model),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
