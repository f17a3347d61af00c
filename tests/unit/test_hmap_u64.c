/* tests/unit/test_hmap_u64.c — the integer-key map (hmap_u64 in src/base/hmap.h) against a
 * plain array model: put/get/del/replace, iteration, growth, churn, the extreme keys, and key
 * sets that crowd a linear-probing table (sequential, strided, high bits only). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "base/hmap.h"

static void test_basic(void **state)
{
    (void)state;
    hmap_u64 m;
    hmap_u64_init(&m);
    assert_null(hmap_u64_get(&m, 0));
    assert_null(hmap_u64_del(&m, 0));
    assert_null(hmap_u64_next(&m, &(size_t){0}));
    int zero = 0, max = 1, one = 2, other = 3;
    void *old = &other;
    assert_int_equal(hmap_u64_put(&m, 0, &zero, &old), HMAP_OK); /* 0 is a key like any */
    assert_null(old);
    assert_int_equal(hmap_u64_put(&m, UINT64_MAX, &max, NULL), HMAP_OK);
    assert_int_equal(hmap_u64_put(&m, 1, &one, NULL), HMAP_OK);
    assert_ptr_equal(hmap_u64_get(&m, 0), &zero);
    assert_ptr_equal(hmap_u64_get(&m, UINT64_MAX), &max);
    assert_ptr_equal(hmap_u64_get(&m, 1), &one);
    assert_null(hmap_u64_get(&m, 2));
    assert_null(hmap_u64_get(&m, UINT64_MAX - 1));
    assert_int_equal(m.count, 3);
    /* replace: the old value comes back, the count stays */
    assert_int_equal(hmap_u64_put(&m, 0, &other, &old), HMAP_OK);
    assert_ptr_equal(old, &zero);
    assert_ptr_equal(hmap_u64_get(&m, 0), &other);
    assert_int_equal(m.count, 3);
    /* NULL values are refused and change nothing */
    old = &other;
    assert_int_equal(hmap_u64_put(&m, 7, NULL, &old), HMAP_EINVAL);
    assert_null(old);
    assert_int_equal(hmap_u64_put(&m, 0, NULL, NULL), HMAP_EINVAL);
    assert_ptr_equal(hmap_u64_get(&m, 0), &other);
    assert_int_equal(m.count, 3);
    assert_string_equal(hmap_strerror(HMAP_EINVAL), "invalid argument");
    assert_string_equal(hmap_strerror(HMAP_ENOMEM), "out of memory");
    /* iteration sees each entry once */
    size_t it = 0, seen = 0;
    int mask = 0;
    const hmap_u64_slot *s;
    while ((s = hmap_u64_next(&m, &it)) != NULL) {
        seen++;
        if (s->key == 0) {
            assert_ptr_equal(s->val, &other);
            mask |= 1;
        } else if (s->key == UINT64_MAX) {
            assert_ptr_equal(s->val, &max);
            mask |= 2;
        } else {
            assert_true(s->key == 1);
            assert_ptr_equal(s->val, &one);
            mask |= 4;
        }
    }
    assert_int_equal(seen, 3);
    assert_int_equal(mask, 7);
    assert_ptr_equal(hmap_u64_del(&m, UINT64_MAX), &max);
    assert_null(hmap_u64_del(&m, UINT64_MAX));
    assert_null(hmap_u64_get(&m, UINT64_MAX));
    assert_ptr_equal(hmap_u64_get(&m, 0), &other);
    assert_int_equal(m.count, 2);
    hmap_u64_free(&m);
    assert_int_equal(m.count, 0);
    assert_null(hmap_u64_get(&m, 0));
    /* reusable after free */
    assert_int_equal(hmap_u64_put(&m, 5, &one, NULL), HMAP_OK);
    assert_ptr_equal(hmap_u64_get(&m, 5), &one);
    hmap_u64_free(&m);
}

/* The mixer is a bijection of key ^ seed: distinct keys never share a full hash. */
static void test_mix(void **state)
{
    (void)state;
    for (uint64_t seed = 0; seed < 4; seed++) {
        uint64_t prev = hmap_u64_mix(0, seed * 0x9e3779b97f4a7c15u);
        for (uint64_t k = 1; k < 1000; k++) {
            uint64_t h = hmap_u64_mix(k, seed * 0x9e3779b97f4a7c15u);
            assert_true(h != prev);
            prev = h;
        }
    }
    assert_true(hmap_u64_mix(1, 0) != hmap_u64_mix(1, 1));
}

static uint64_t seed = 7;
static uint64_t rnd(void)
{
    uint64_t z = (seed += 0x9e3779b97f4a7c15u);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9u;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebu;
    return z ^ (z >> 31);
}

enum { NKEYS = 4096 };
static uint64_t g_keys[NKEYS];
static int g_present[NKEYS];
static int g_vals[NKEYS];

/* Every key is where the model says, every absent key is absent, the count and the load bound
 * hold, and iteration yields exactly the live entries. */
static void check_model(const hmap_u64 *m, size_t live)
{
    assert_int_equal(m->count, live);
    assert_true(m->count * 4 <= m->cap * 3);
    for (int i = 0; i < NKEYS; i++) {
        assert_ptr_equal(hmap_u64_get(m, g_keys[i]), g_present[i] ? &g_vals[i] : NULL);
    }
    size_t it = 0, seen = 0;
    const hmap_u64_slot *s;
    while ((s = hmap_u64_next(m, &it)) != NULL) {
        int idx = (int)((const int *)s->val - g_vals);
        assert_true(idx >= 0 && idx < NKEYS && g_present[idx]);
        assert_true(s->key == g_keys[idx]);
        seen++;
    }
    assert_int_equal(seen, live);
}

/* Random operations on a key set, checked against the model; deletes must keep every
 * remaining key reachable (backward shift). */
static void run_model(int ops)
{
    memset(g_present, 0, sizeof g_present);
    hmap_u64 m;
    hmap_u64_init(&m);
    size_t live = 0;
    for (int op = 0; op < ops; op++) {
        int k = (int)(rnd() % NKEYS);
        switch (rnd() % 4) {
        case 0:
        case 1:
            if (g_present[k]) {
                assert_ptr_equal(hmap_u64_del(&m, g_keys[k]), &g_vals[k]);
                g_present[k] = 0;
                live--;
            } else {
                void *old;
                assert_int_equal(hmap_u64_put(&m, g_keys[k], &g_vals[k], &old), HMAP_OK);
                assert_null(old);
                g_present[k] = 1;
                live++;
            }
            break;
        case 2:
            if (g_present[k]) { /* replace with itself */
                void *old;
                assert_int_equal(hmap_u64_put(&m, g_keys[k], &g_vals[k], &old), HMAP_OK);
                assert_ptr_equal(old, &g_vals[k]);
            }
            break;
        default: assert_ptr_equal(hmap_u64_get(&m, g_keys[k]), g_present[k] ? &g_vals[k] : NULL);
        }
        assert_int_equal(m.count, live);
        if (op % 20000 == 0) {
            check_model(&m, live);
        }
    }
    check_model(&m, live);
    /* delete everything: the map ends empty */
    for (int i = 0; i < NKEYS; i++) {
        if (g_present[i]) {
            assert_ptr_equal(hmap_u64_del(&m, g_keys[i]), &g_vals[i]);
            g_present[i] = 0;
        }
    }
    check_model(&m, 0);
    hmap_u64_free(&m);
}

static void test_model_random(void **state)
{
    (void)state;
    for (int i = 0; i < NKEYS; i++) {
        g_keys[i] = rnd();
    }
    g_keys[0] = 0;
    g_keys[1] = UINT64_MAX;
    run_model(200000);
}

/* Keys a counter hands out: 1, 2, 3, ... (connection ids), and the same with a large stride
 * and in the high bits only, where a weak hash (identity, low bits) would pile them up. */
static void test_model_structured(void **state)
{
    (void)state;
    for (int i = 0; i < NKEYS; i++) {
        g_keys[i] = (uint64_t)i + 1;
    }
    run_model(200000);
    for (int i = 0; i < NKEYS; i++) {
        g_keys[i] = (uint64_t)i << 32;
    }
    run_model(200000);
    for (int i = 0; i < NKEYS; i++) {
        g_keys[i] = (uint64_t)i * 4096;
    }
    run_model(200000);
    for (int i = 0; i < NKEYS; i++) {
        g_keys[i] = UINT64_MAX - (uint64_t)i;
    }
    run_model(200000);
}

/* Growth from empty to 100,000 sequential keys, every key still found at every doubling, then
 * churn: connections come and go for a long time with a steady live set, and the table does
 * not grow past what the live set needs (no tombstones). */
static void test_growth_and_churn(void **state)
{
    (void)state;
    enum { N = 100000, LIVE = 1000 };
    static int vals[N];
    hmap_u64 m;
    hmap_u64_init(&m);
    size_t last_cap = 0;
    for (uint64_t k = 0; k < N; k++) {
        assert_int_equal(hmap_u64_put(&m, k, &vals[k], NULL), HMAP_OK);
        if (m.cap != last_cap) {
            last_cap = m.cap;
            assert_true((m.cap & (m.cap - 1)) == 0);
            for (uint64_t j = 0; j <= k; j++) {
                assert_ptr_equal(hmap_u64_get(&m, j), &vals[j]);
            }
        }
    }
    assert_int_equal(m.count, N);
    assert_true(m.count * 4 <= m.cap * 3);
    for (uint64_t k = 0; k < N; k++) {
        assert_ptr_equal(hmap_u64_del(&m, k), &vals[k]);
    }
    assert_int_equal(m.count, 0);
    hmap_u64_free(&m);

    hmap_u64_init(&m);
    for (uint64_t k = 1; k <= LIVE; k++) {
        assert_int_equal(hmap_u64_put(&m, k, &vals[k % N], NULL), HMAP_OK);
    }
    size_t cap = m.cap;
    for (uint64_t k = LIVE + 1; k < 2000000; k++) {
        assert_ptr_equal(hmap_u64_del(&m, k - LIVE), &vals[(k - LIVE) % N]);
        assert_int_equal(hmap_u64_put(&m, k, &vals[k % N], NULL), HMAP_OK);
    }
    assert_int_equal(m.cap, cap);
    assert_int_equal(m.count, LIVE);
    for (uint64_t k = 2000000 - LIVE; k < 2000000; k++) {
        assert_ptr_equal(hmap_u64_get(&m, k), &vals[k % N]);
    }
    assert_null(hmap_u64_get(&m, 2000000 - LIVE - 1));
    hmap_u64_free(&m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_basic),
        cmocka_unit_test(test_mix),
        cmocka_unit_test(test_model_random),
        cmocka_unit_test(test_model_structured),
        cmocka_unit_test(test_growth_and_churn),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
