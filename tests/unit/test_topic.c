/* tests/unit/test_topic.c — topics, patterns and the matching trie (src/mesh/topic.h). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "mesh/topic.h"

#define S(x) (x), strlen(x)

static void test_validate(void **state)
{
    (void)state;
    assert_int_equal(topic_validate_name(S("a")), TOPIC_OK);
    assert_int_equal(topic_validate_name(S("sensor.kitchen.temp")), TOPIC_OK);
    assert_int_equal(topic_validate_name(S("with space.ünïcode")), TOPIC_OK);
    assert_int_equal(topic_validate_name("", 0), TOPIC_EINVAL);
    assert_int_equal(topic_validate_name(NULL, 3), TOPIC_EINVAL);
    assert_int_equal(topic_validate_name(S(".a")), TOPIC_EINVAL);
    assert_int_equal(topic_validate_name(S("a.")), TOPIC_EINVAL);
    assert_int_equal(topic_validate_name(S("a..b")), TOPIC_EINVAL);
    assert_int_equal(topic_validate_name(S("a.*")), TOPIC_EINVAL);
    assert_int_equal(topic_validate_name(S("a.**")), TOPIC_EINVAL);
    assert_int_equal(topic_validate_name("a\0b", 3), TOPIC_EINVAL);
    assert_int_equal(topic_validate_pattern(S("a.*.c")), TOPIC_OK);
    assert_int_equal(topic_validate_pattern(S("**")), TOPIC_OK);
    assert_int_equal(topic_validate_pattern(S("**.**")), TOPIC_OK);
    assert_int_equal(topic_validate_pattern(S("a*")), TOPIC_EINVAL);
    assert_int_equal(topic_validate_pattern(S("a.***")), TOPIC_EINVAL);
    assert_int_equal(topic_validate_pattern(S("a.*b")), TOPIC_EINVAL);
    assert_int_equal(topic_validate_pattern(S("a..*")), TOPIC_EINVAL);

    char big[TOPIC_MAX_LEN + 2];
    memset(big, 'x', sizeof big);
    assert_int_equal(topic_validate_name(big, TOPIC_MAX_LEN), TOPIC_OK);
    assert_int_equal(topic_validate_name(big, TOPIC_MAX_LEN + 1), TOPIC_ELIMIT);
    /* 64 segments pass, 65 do not */
    char segs[2 * (TOPIC_MAX_SEGMENTS + 1)];
    for (int i = 0; i < TOPIC_MAX_SEGMENTS + 1; i++) {
        segs[2 * i] = 'a';
        segs[2 * i + 1] = '.';
    }
    assert_int_equal(topic_validate_name(segs, 2 * TOPIC_MAX_SEGMENTS - 1), TOPIC_OK);
    assert_int_equal(topic_validate_name(segs, 2 * TOPIC_MAX_SEGMENTS + 1), TOPIC_ELIMIT);
    assert_string_equal(topic_strerror(TOPIC_EEXIST), "already subscribed");
    assert_string_equal(topic_strerror(42), "unknown error");
}

static void test_match_single(void **state)
{
    (void)state;
    static const struct {
        const char *pattern, *topic;
        bool match;
    } cases[] = {
        {"sensor.*.temp", "sensor.kitchen.temp", true},
        {"sensor.*.temp", "sensor.temp", false},
        {"sensor.*.temp", "sensor.a.b.temp", false},
        {"sensor.**", "sensor", true},
        {"sensor.**", "sensor.a", true},
        {"sensor.**", "sensor.a.b.c", true},
        {"sensor.**", "sensors.a", false},
        {"**.temp", "temp", true},
        {"**.temp", "a.b.temp", true},
        {"**.temp", "a.b.temp.x", false},
        {"a.**.b", "a.b", true},
        {"a.**.b", "a.x.y.b", true},
        {"a.**.b", "a.x.y.c", false},
        {"**", "anything.at.all", true},
        {"*", "one", true},
        {"*", "one.two", false},
        {"*.**", "one", true},
        {"**.*.**", "x", true},
        {"a.b", "a.b", true},
        {"a.b", "a.c", false},
        {"sensor.*.room1", "sensor.t.room1", true},
        {"a.**.**.b", "a.b", true},
        {"bad*", "bad", false},
        {"a", "*", false},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        bool got = topic_match(S(cases[i].pattern), S(cases[i].topic));
        if (got != cases[i].match) {
            fail_msg("%s ~ %s: got %d", cases[i].pattern, cases[i].topic, got);
        }
    }
}

typedef struct hits {
    uint64_t subs[256];
    char pats[256][64];
    int n;
} hits;

static void collect(void *ctx, uint64_t sub, const char *pattern, size_t plen)
{
    hits *h = ctx;
    assert_true(h->n < 256);
    assert_true(plen < 64);
    h->subs[h->n] = sub;
    memcpy(h->pats[h->n], pattern, plen);
    h->pats[h->n][plen] = '\0';
    h->n++;
}

static bool has(const hits *h, uint64_t sub, const char *pattern)
{
    for (int i = 0; i < h->n; i++) {
        if (h->subs[i] == sub && strcmp(h->pats[i], pattern) == 0) {
            return true;
        }
    }
    return false;
}

static void test_trie_basic(void **state)
{
    (void)state;
    topic_trie *t = topic_trie_new();
    assert_non_null(t);
    assert_int_equal(topic_trie_add(t, S("sensor.*.temp"), 1), TOPIC_OK);
    assert_int_equal(topic_trie_add(t, S("sensor.**"), 2), TOPIC_OK);
    assert_int_equal(topic_trie_add(t, S("sensor.kitchen.temp"), 3), TOPIC_OK);
    assert_int_equal(topic_trie_add(t, S("other"), 4), TOPIC_OK);
    assert_int_equal(topic_trie_add(t, S("sensor.**"), 5), TOPIC_OK);
    assert_int_equal(topic_trie_add(t, S("sensor.**"), 2), TOPIC_EEXIST);
    assert_int_equal(topic_trie_add(t, S("bad*"), 9), TOPIC_EINVAL);
    assert_int_equal(topic_trie_count(t), 5);

    hits h = {0};
    assert_int_equal(topic_trie_match(t, S("sensor.kitchen.temp"), collect, &h), 4);
    assert_true(has(&h, 1, "sensor.*.temp"));
    assert_true(has(&h, 2, "sensor.**"));
    assert_true(has(&h, 3, "sensor.kitchen.temp"));
    assert_true(has(&h, 5, "sensor.**"));

    memset(&h, 0, sizeof h);
    assert_int_equal(topic_trie_match(t, S("sensor"), collect, &h), 2);
    assert_true(has(&h, 2, "sensor.**") && has(&h, 5, "sensor.**"));

    memset(&h, 0, sizeof h);
    assert_int_equal(topic_trie_match(t, S("nothing.here"), collect, &h), 0);
    assert_int_equal(topic_trie_match(t, S("sensor.*"), collect, &h), TOPIC_EINVAL);

    assert_int_equal(topic_trie_remove(t, S("sensor.**"), 2), TOPIC_OK);
    assert_int_equal(topic_trie_remove(t, S("sensor.**"), 2), TOPIC_ENOENT);
    assert_int_equal(topic_trie_remove(t, S("never.added"), 2), TOPIC_ENOENT);
    memset(&h, 0, sizeof h);
    assert_int_equal(topic_trie_match(t, S("sensor.x"), collect, &h), 1);
    assert_true(has(&h, 5, "sensor.**"));

    /* removing everything prunes the trie back to its root */
    assert_int_equal(topic_trie_remove(t, S("sensor.*.temp"), 1), TOPIC_OK);
    assert_int_equal(topic_trie_remove(t, S("sensor.kitchen.temp"), 3), TOPIC_OK);
    assert_int_equal(topic_trie_remove(t, S("other"), 4), TOPIC_OK);
    assert_int_equal(topic_trie_remove(t, S("sensor.**"), 5), TOPIC_OK);
    assert_int_equal(topic_trie_count(t), 0);
    assert_int_equal(topic_trie_nodes(t), 1);
    topic_trie_free(t);
    topic_trie_free(NULL);
}

/* `**` can align with a topic in many ways; each stored pair is still reported once. */
static void test_trie_reports_once(void **state)
{
    (void)state;
    topic_trie *t = topic_trie_new();
    const char *pats[] = {"**", "**.**", "a.**.b", "**.b.**", "**.*.**", "a.**.**.b"};
    for (size_t i = 0; i < sizeof pats / sizeof pats[0]; i++) {
        assert_int_equal(topic_trie_add(t, S(pats[i]), 7), TOPIC_OK);
    }
    hits h = {0};
    assert_int_equal(topic_trie_match(t, S("a.b.b.a.b"), collect, &h), 6);
    for (size_t i = 0; i < sizeof pats / sizeof pats[0]; i++) {
        assert_true(has(&h, 7, pats[i]));
    }
    topic_trie_free(t);
}

/* A pattern of 63 `**` then `x` against 64 segments: the visited set keeps this polynomial
 * (the naive backtracking would not finish); and the answer is right both ways. */
/* ---- the trie agrees with the reference matcher on random patterns and topics ------------ */

static uint64_t rng_state = 0x9e3779b97f4a7c15u;

static uint64_t rng(void)
{
    uint64_t z = (rng_state += 0x9e3779b97f4a7c15u);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9u;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebu;
    return z ^ (z >> 31);
}

static size_t random_topic(char *buf, bool pattern)
{
    static const char *lits[] = {"a", "b", "c"};
    size_t n = 1 + rng() % 5, len = 0;
    for (size_t i = 0; i < n; i++) {
        const char *s;
        uint64_t r = rng() % (pattern ? 5 : 3);
        s = r < 3 ? lits[r] : r == 3 ? "*" : "**";
        if (i > 0) {
            buf[len++] = '.';
        }
        memcpy(buf + len, s, strlen(s));
        len += strlen(s);
    }
    return len;
}

typedef struct counter {
    uint64_t seen[512];
    int n;
} counter;

static void count_hit(void *ctx, uint64_t sub, const char *pattern, size_t plen)
{
    (void)pattern;
    (void)plen;
    counter *c = ctx;
    for (int i = 0; i < c->n; i++) {
        assert_true(c->seen[i] != sub); /* never twice */
    }
    assert_true(c->n < 512);
    c->seen[c->n++] = sub;
}

static void test_trie_vs_reference(void **state)
{
    (void)state;
    enum { NPAT = 400, NTOPIC = 2000 };
    static char pats[NPAT][32];
    static size_t plens[NPAT];
    topic_trie *t = topic_trie_new();
    for (int i = 0; i < NPAT; i++) {
        plens[i] = random_topic(pats[i], true);
        /* subscriber id = index: duplicates of the same pattern text are distinct pairs */
        assert_int_equal(topic_trie_add(t, pats[i], plens[i], (uint64_t)i), TOPIC_OK);
    }
    for (int k = 0; k < NTOPIC; k++) {
        char topic[32];
        size_t tl = random_topic(topic, false);
        counter c = {0};
        int got = topic_trie_match(t, topic, tl, count_hit, &c);
        int want = 0;
        for (int i = 0; i < NPAT; i++) {
            bool m = topic_match(pats[i], plens[i], topic, tl);
            want += m;
            if (m) {
                bool found = false;
                for (int j = 0; j < c.n; j++) {
                    found = found || c.seen[j] == (uint64_t)i;
                }
                if (!found) {
                    fail_msg("%.*s ~ %.*s missed", (int)plens[i], pats[i], (int)tl, topic);
                }
            }
        }
        assert_int_equal(got, want);
    }
    /* remove half, check again, then the rest: the trie shrinks back to its root */
    for (int i = 0; i < NPAT; i += 2) {
        assert_int_equal(topic_trie_remove(t, pats[i], plens[i], (uint64_t)i), TOPIC_OK);
    }
    for (int k = 0; k < 200; k++) {
        char topic[32];
        size_t tl = random_topic(topic, false);
        counter c = {0};
        int want = 0;
        for (int i = 1; i < NPAT; i += 2) {
            want += topic_match(pats[i], plens[i], topic, tl);
        }
        assert_int_equal(topic_trie_match(t, topic, tl, count_hit, &c), want);
    }
    for (int i = 1; i < NPAT; i += 2) {
        assert_int_equal(topic_trie_remove(t, pats[i], plens[i], (uint64_t)i), TOPIC_OK);
    }
    assert_int_equal(topic_trie_count(t), 0);
    assert_int_equal(topic_trie_nodes(t), 1);
    topic_trie_free(t);
}

static void count_only(void *ctx, uint64_t sub, const char *pattern, size_t plen)
{
    (void)sub;
    (void)pattern;
    (void)plen;
    (*(int *)ctx)++;
}

static void test_trie_pathological(void **state)
{
    (void)state;
    char pat[TOPIC_MAX_LEN], topic[TOPIC_MAX_LEN];
    size_t pl = 0, tl = 0;
    for (int i = 0; i < TOPIC_MAX_SEGMENTS - 1; i++) {
        memcpy(pat + pl, "**.", 3);
        pl += 3;
    }
    pat[pl++] = 'x';
    for (int i = 0; i < TOPIC_MAX_SEGMENTS; i++) {
        topic[tl++] = 'y';
        topic[tl++] = '.';
    }
    tl--; /* 64 segments of "y" */
    topic_trie *t = topic_trie_new();
    assert_int_equal(topic_trie_add(t, pat, pl, 1), TOPIC_OK);
    int n = 0;
    assert_int_equal(topic_trie_match(t, topic, tl, count_only, &n), 0);
    assert_false(topic_match(pat, pl, topic, tl));
    topic[tl - 1] = 'x'; /* the last segment becomes "x" */
    assert_int_equal(topic_trie_match(t, topic, tl, count_only, &n), 1);
    assert_int_equal(n, 1);
    assert_true(topic_match(pat, pl, topic, tl));
    topic_trie_free(t);
}

/* Many subscribers on one pattern and many distinct literal siblings. */
static void test_trie_scale(void **state)
{
    (void)state;
    topic_trie *t = topic_trie_new();
    for (uint64_t s = 0; s < 10000; s++) {
        assert_int_equal(topic_trie_add(t, S("fleet.*.status"), s * 7919 % 10007), TOPIC_OK);
    }
    char name[64];
    for (int i = 0; i < 10000; i++) {
        int n = snprintf(name, sizeof name, "device.%d.status", i);
        assert_int_equal(topic_trie_add(t, name, (size_t)n, 1), TOPIC_OK);
    }
    assert_int_equal(topic_trie_count(t), 20000);
    int hitsn = 0;
    assert_int_equal(topic_trie_match(t, S("fleet.truck9.status"), count_only, &hitsn), 10000);
    hitsn = 0;
    assert_int_equal(topic_trie_match(t, S("device.4242.status"), count_only, &hitsn), 1);
    hitsn = 0;
    assert_int_equal(topic_trie_match(t, S("device.10000.status"), count_only, &hitsn), 0);
    topic_trie_free(t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_validate),          cmocka_unit_test(test_match_single),
        cmocka_unit_test(test_trie_basic),        cmocka_unit_test(test_trie_reports_once),
        cmocka_unit_test(test_trie_pathological), cmocka_unit_test(test_trie_vs_reference),
        cmocka_unit_test(test_trie_scale),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
