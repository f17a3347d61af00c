/*
 * bench/bench_hmap.c — the hash maps of src/base/hmap.h on the look-ups the mesh node does per
 * message: 8-byte connection ids (hmap with SipHash vs hmap_u64) and ~20-byte topic strings.
 *
 *   bench_hmap [N]     N look-ups per measurement (default 20,000,000)
 *
 * Prints one line per result, "name value" (ns per operation). Each map holds ENTRIES live
 * entries (1,000 and 100,000: a node's connection table and a large one); the keys looked up
 * are all present, every entry is among them, and they are visited in a pseudo-random order
 * fixed before the clock starts.
 *
 *   hash_8B_ns, hash_20B_ns           hmap_hash alone (the keyed SipHash)
 *   get_u64key_hmap_ENTRIES_ns        hmap_get on an 8-byte key (a counter, as gwc__find does)
 *   get_u64key_hmap_u64_ENTRIES_ns    hmap_u64_get on the same keys
 *   get_topic20_hmap_ENTRIES_ns       hmap_get on 20-byte topic strings
 *   churn_hmap_ns, churn_hmap_u64_ns  one put + one del of a fresh counter key in a map of
 *                                     1,000 (connections coming and going)
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base/hmap.h"

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void die(const char *what)
{
    fprintf(stderr, "bench_hmap: %s\n", what);
    exit(1);
}

typedef struct conn {
    uint64_t id; /* the key lives in the value, as in gateway_core.c */
    char topic[24];
    size_t tlen;
} conn;

/* A fixed pseudo-random visiting order over n entries (n <= 2^31): *len (a power of two, at
 * least 65,536 and at least n) indices that name every entry at least once (i % n for every
 * slot, then shuffled), so that every entry of the map is looked up. */
static uint32_t *order_new(size_t n, size_t *len)
{
    size_t l = (size_t)1 << 16;
    while (l < n) {
        l <<= 1;
    }
    uint32_t *o = malloc(l * sizeof *o);
    if (o == NULL) {
        die("out of memory");
    }
    for (size_t i = 0; i < l; i++) {
        o[i] = (uint32_t)(i % n);
    }
    uint64_t x = 0x9e3779b97f4a7c15u;
    for (size_t i = l - 1; i > 0; i--) { /* Fisher-Yates */
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        size_t j = (size_t)(x % (i + 1));
        uint32_t t = o[i];
        o[i] = o[j];
        o[j] = t;
    }
    *len = l;
    return o;
}

static volatile uintptr_t g_sink;

static void bench_size(size_t entries, long n)
{
    conn *cs = calloc(entries, sizeof *cs);
    if (cs == NULL) {
        die("out of memory");
    }
    hmap by_id, by_topic;
    hmap_u64 by_u64;
    hmap_init(&by_id);
    hmap_init(&by_topic);
    hmap_u64_init(&by_u64);
    for (size_t i = 0; i < entries; i++) {
        cs[i].id = i + 1; /* connection ids come from a counter */
        cs[i].tlen = (size_t)snprintf(cs[i].topic, sizeof cs[i].topic, "sensors/r%04zu/temp-%03zu",
                                      i % 10000, i / 10000);
        if (hmap_put(&by_id, &cs[i].id, sizeof cs[i].id, &cs[i], NULL) != HMAP_OK ||
            hmap_u64_put(&by_u64, cs[i].id, &cs[i], NULL) != HMAP_OK ||
            hmap_put(&by_topic, cs[i].topic, cs[i].tlen, &cs[i], NULL) != HMAP_OK) {
            die("put failed");
        }
    }
    size_t order_len = 0;
    uint32_t *o = order_new(entries, &order_len);
    const size_t mask = order_len - 1;
    uintptr_t acc = 0;

    uint64_t t0 = now_ns();
    for (long i = 0; i < n; i++) {
        uint64_t key = o[(size_t)i & mask] + 1;
        acc += (uintptr_t)hmap_get(&by_id, &key, sizeof key);
    }
    uint64_t t1 = now_ns();
    printf("get_u64key_hmap_%zu_ns %.2f\n", entries, (double)(t1 - t0) / (double)n);

    t0 = now_ns();
    for (long i = 0; i < n; i++) {
        uint64_t key = o[(size_t)i & mask] + 1;
        acc += (uintptr_t)hmap_u64_get(&by_u64, key);
    }
    t1 = now_ns();
    printf("get_u64key_hmap_u64_%zu_ns %.2f\n", entries, (double)(t1 - t0) / (double)n);

    t0 = now_ns();
    for (long i = 0; i < n; i++) {
        /* a copy of the topic, as a decoded message would carry it */
        const conn *c = &cs[o[(size_t)i & mask]];
        char topic[24];
        memcpy(topic, c->topic, sizeof topic);
        acc += (uintptr_t)hmap_get(&by_topic, topic, c->tlen);
    }
    t1 = now_ns();
    printf("get_topic20_hmap_%zu_ns %.2f\n", entries, (double)(t1 - t0) / (double)n);

    /* every look-up must have found its entry */
    for (size_t i = 0; i < entries; i++) {
        if (hmap_get(&by_id, &cs[i].id, sizeof cs[i].id) != &cs[i] ||
            hmap_u64_get(&by_u64, cs[i].id) != &cs[i] ||
            hmap_get(&by_topic, cs[i].topic, cs[i].tlen) != &cs[i]) {
            die("lookup mismatch");
        }
    }
    g_sink = acc;
    free(o);
    hmap_free(&by_id);
    hmap_free(&by_topic);
    hmap_u64_free(&by_u64);
    free(cs);
}

static void bench_hash(long n)
{
    unsigned char k8[8] = {1, 2, 3, 4, 5, 6, 7, 8};
    unsigned char k20[20] = "sensors/r0042/temp-0";
    uint64_t acc = 0;
    uint64_t t0 = now_ns();
    for (long i = 0; i < n; i++) {
        k8[0] = (unsigned char)i;
        acc += hmap_hash(k8, sizeof k8);
    }
    uint64_t t1 = now_ns();
    printf("hash_8B_ns %.2f\n", (double)(t1 - t0) / (double)n);
    t0 = now_ns();
    for (long i = 0; i < n; i++) {
        k20[19] = (unsigned char)i;
        acc += hmap_hash(k20, sizeof k20);
    }
    t1 = now_ns();
    printf("hash_20B_ns %.2f\n", (double)(t1 - t0) / (double)n);
    g_sink = (uintptr_t)acc;
}

/* Connections come and go: a put of a fresh counter id and a del of the oldest, 1,000 live. */
static void bench_churn(long n)
{
    enum { LIVE = 1000 };
    static conn cs[LIVE];
    hmap m;
    hmap_u64 u;
    hmap_init(&m);
    hmap_u64_init(&u);
    for (uint64_t i = 0; i < LIVE; i++) {
        cs[i].id = i + 1;
        if (hmap_put(&m, &cs[i].id, sizeof cs[i].id, &cs[i], NULL) != HMAP_OK ||
            hmap_u64_put(&u, cs[i].id, &cs[i], NULL) != HMAP_OK) {
            die("put failed");
        }
    }
    uint64_t next = LIVE + 1;
    uint64_t t0 = now_ns();
    for (long i = 0; i < n; i++, next++) {
        conn *c = &cs[next % LIVE];
        if (hmap_del(&m, &c->id, sizeof c->id) != c) {
            die("churn del");
        }
        c->id = next;
        if (hmap_put(&m, &c->id, sizeof c->id, c, NULL) != HMAP_OK) {
            die("churn put");
        }
    }
    uint64_t t1 = now_ns();
    printf("churn_hmap_ns %.2f\n", (double)(t1 - t0) / (double)n);
    for (uint64_t i = 0; i < LIVE; i++) {
        cs[i].id = i + 1;
    }
    next = LIVE + 1;
    t0 = now_ns();
    for (long i = 0; i < n; i++, next++) {
        conn *c = &cs[next % LIVE];
        if (hmap_u64_del(&u, c->id) != c) {
            die("churn del");
        }
        c->id = next;
        if (hmap_u64_put(&u, c->id, c, NULL) != HMAP_OK) {
            die("churn put");
        }
    }
    t1 = now_ns();
    printf("churn_hmap_u64_ns %.2f\n", (double)(t1 - t0) / (double)n);
    hmap_free(&m);
    hmap_u64_free(&u);
}

int main(int argc, char **argv)
{
    long n = argc > 1 ? strtol(argv[1], NULL, 10) : 0;
    if (n <= 0) {
        n = 20000000;
    }
    bench_hash(n);
    bench_size(1000, n);
    bench_size(100000, n);
    bench_churn(n / 4);
    return 0;
}
