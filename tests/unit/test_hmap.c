/* tests/unit/test_hmap.c — the hash map (src/base/hmap.h) against a plain array model. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "base/hmap.h"

static void test_basic(void **state)
{
    (void)state;
    hmap m;
    hmap_init(&m);
    assert_null(hmap_get(&m, "a", 1));
    assert_null(hmap_del(&m, "a", 1));
    int one = 1, two = 2, three = 3;
    void *old = &one;
    assert_int_equal(hmap_put(&m, "a", 1, &one, &old), HMAP_OK);
    assert_null(old);
    assert_int_equal(hmap_put(&m, "", 0, &two, NULL), HMAP_OK); /* the empty key is a key */
    assert_ptr_equal(hmap_get(&m, "a", 1), &one);
    assert_ptr_equal(hmap_get(&m, "", 0), &two);
    assert_null(hmap_get(&m, "ab", 2));
    assert_int_equal(hmap_put(&m, "a", 1, &three, &old), HMAP_OK);
    assert_ptr_equal(old, &one);
    assert_ptr_equal(hmap_get(&m, "a", 1), &three);
    assert_int_equal(m.count, 2);
    assert_ptr_equal(hmap_del(&m, "a", 1), &three);
    assert_null(hmap_get(&m, "a", 1));
    assert_int_equal(m.count, 1);
    hmap_free(&m);
    assert_int_equal(m.count, 0);
    assert_null(hmap_get(&m, "", 0));
    assert_true(hmap_hash("x", 1) != 0);
}

static uint64_t seed = 42;
static uint64_t rnd(void)
{
    uint64_t z = (seed += 0x9e3779b97f4a7c15u);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9u;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebu;
    return z ^ (z >> 31);
}

/* 200,000 random operations on 3,000 keys of varying length, checked against a model;
 * backward-shift deletion must keep every remaining key reachable. */
static void test_model(void **state)
{
    (void)state;
    enum { NKEYS = 3000 };
    static char keys[NKEYS][24];
    static size_t klen[NKEYS];
    static int present[NKEYS];
    for (int i = 0; i < NKEYS; i++) {
        klen[i] = (size_t)snprintf(keys[i], sizeof keys[i], "k%d-%llu", i,
                                   (unsigned long long)(rnd() % (i % 7 ? 100 : 100000000)));
    }
    hmap m;
    hmap_init(&m);
    size_t live = 0;
    for (int op = 0; op < 200000; op++) {
        int k = (int)(rnd() % NKEYS);
        switch (rnd() % 3) {
        case 0:
        case 1:
            if (present[k]) {
                assert_ptr_equal(hmap_del(&m, keys[k], klen[k]), keys[k]);
                present[k] = 0;
                live--;
            } else {
                void *old;
                assert_int_equal(hmap_put(&m, keys[k], klen[k], keys[k], &old), HMAP_OK);
                assert_null(old);
                present[k] = 1;
                live++;
            }
            break;
        default: assert_ptr_equal(hmap_get(&m, keys[k], klen[k]), present[k] ? keys[k] : NULL);
        }
        assert_int_equal(m.count, live);
    }
    for (int i = 0; i < NKEYS; i++) {
        assert_ptr_equal(hmap_get(&m, keys[i], klen[i]), present[i] ? keys[i] : NULL);
    }
    size_t it = 0, seen = 0;
    const hmap_slot *s;
    while ((s = hmap_next(&m, &it)) != NULL) {
        int idx = (int)(((const char(*)[24])s->val) - keys);
        assert_true(idx >= 0 && idx < NKEYS && present[idx]);
        seen++;
    }
    assert_int_equal(seen, live);
    hmap_free(&m);
}

/* The hash is SipHash-1-3: reference vectors (all-zero key; the values CPython 3.11, whose
 * str/bytes hash is SipHash-1-3, gives with PYTHONHASHSEED=0), covering the empty key, a
 * partial block, exactly one and two blocks, and several blocks plus a tail. */
static void test_siphash13_vectors(void **state)
{
    (void)state;
    static const struct {
        const char *in;
        uint64_t want;
    } v[] = {
        {"", 0xd1fba762150c532cu},
        {"a", 0x407448d2b89b1813u},
        {"siphash", 0x8264ceeccb16bcbeu},
        {"abcdefgh", 0x3f7b849c0b8e35eau},
        {"0123456789abcde", 0x26f4d862282d8fcbu},
        {"0123456789abcdef", 0x1d42b30f7e060c24u},
        {"sensors/r0042/temp-0", 0xe74d3bb6d91b535eu},
        {"sensors/r0042/temp-0/extra/long/topic/name", 0x4415f6d8129bbafcu},
    };
    for (size_t i = 0; i < sizeof v / sizeof v[0]; i++) {
        assert_true(hmap_siphash13(0, 0, v[i].in, strlen(v[i].in)) == v[i].want);
    }
    /* the process key is not the zero key, and the same bytes hash the same within a process */
    char k[] = "sensors/r0042/temp-0";
    assert_true(hmap_hash(k, sizeof k - 1) == hmap_hash("sensors/r0042/temp-0", sizeof k - 1));
    assert_true(hmap_hash(k, sizeof k - 1) != 0xe74d3bb6d91b535eu);
    /* the length is part of the input: "a" and "a\0" differ */
    assert_true(hmap_hash("a", 1) != hmap_hash("a\0", 2));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_basic),
        cmocka_unit_test(test_model),
        cmocka_unit_test(test_siphash13_vectors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
