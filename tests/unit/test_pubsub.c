/* tests/unit/test_pubsub.c — the pub/sub core (src/mesh/pubsub_core.h), virtual time: local
 * delivery, limits, QoS 1, the subscriber index (advertise, lookup, cache), routes between two
 * cores, clean-up on disconnect. */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "mesh/pubsub_core.h"

/* A copy of one action (its views die with the next call into the core). */
typedef struct act {
    psc_action_kind kind;
    uint64_t conn;
    uint8_t node[PSC_ID_LEN];
    char addr[PSC_ADDR_MAX];
    uint8_t data[2048];
    size_t len;
    uint64_t frame_id;
    const uint8_t *ptr; /* where the core kept the bytes (compared, never read) */
    char key[256];
} act;

typedef struct acts {
    act a[128];
    size_t n;
} acts;

static void drain(psc *p, acts *out)
{
    out->n = 0;
    psc_action a;
    while (psc_next_action(p, &a)) {
        assert_true(out->n < 128);
        act *c = &out->a[out->n++];
        memset(c, 0, sizeof *c);
        c->kind = a.kind;
        c->conn = a.conn;
        memcpy(c->node, a.node_id, PSC_ID_LEN);
        if (a.addr) {
            snprintf(c->addr, sizeof c->addr, "%s", a.addr);
        }
        assert_true(a.len <= sizeof c->data);
        if (a.len) {
            memcpy(c->data, a.data, a.len);
        }
        c->len = a.len;
        c->frame_id = a.frame_id;
        c->ptr = a.data;
        if (a.key) {
            assert_true(a.key_len < sizeof c->key);
            memcpy(c->key, a.key, a.key_len);
        }
    }
}

static size_t count_kind(const acts *as, psc_action_kind k)
{
    size_t n = 0;
    for (size_t i = 0; i < as->n; i++) {
        n += as->a[i].kind == k;
    }
    return n;
}

/* The i-th action of kind k decoded as a frame. */
static const act *nth(const acts *as, psc_action_kind k, size_t i)
{
    for (size_t j = 0; j < as->n; j++) {
        if (as->a[j].kind == k && i-- == 0) {
            return &as->a[j];
        }
    }
    return NULL;
}

static void decode(const act *a, wire_msg *m)
{
    size_t used = 0;
    assert_non_null(a);
    assert_int_equal(wire_decode(a->data, a->len, NULL, m, &used), WIRE_OK);
    assert_int_equal(used, a->len);
}

static psc *mk(uint8_t idbyte, uint32_t max_subs)
{
    psc_config cfg;
    psc_config_default(&cfg);
    memset(cfg.node_id, idbyte, PSC_ID_LEN);
    snprintf(cfg.addr, sizeof cfg.addr, "127.0.0.1:%u", 9000u + idbyte);
    if (max_subs) {
        cfg.max_subs_per_conn = max_subs;
    }
    cfg.outbox.retry_ms = 1000;
    cfg.outbox.max_retry_ms = 4000;
    cfg.outbox.max_tries = 4;
    psc *p = NULL;
    assert_int_equal(psc_new(&cfg, 0, &p), PSC_OK);
    return p;
}

static wire_publish pubmsg(const char *topic, const char *payload, uint8_t qos, const uint8_t *id)
{
    wire_publish w = {.topic = {(const uint8_t *)topic, strlen(topic)},
                      .payload = {(const uint8_t *)payload, strlen(payload)},
                      .qos = qos,
                      .message_id = {id, id ? 16 : 0}};
    return w;
}

/* Answers every pending LOOKUP with nothing (no remote subscribers). */
static void answer_empty(psc *p, const acts *as, uint64_t now)
{
    for (size_t i = 0; i < as->n; i++) {
        if (as->a[i].kind == PSC_ACT_LOOKUP) {
            assert_int_equal(
                psc_lookup_done(p, as->a[i].key, strlen(as->a[i].key), NULL, 0, true, now), PSC_OK);
        }
    }
}

#define S(x) x, strlen(x)

/* Wildcards deliver to the right connections, once per connection, with the highest QoS. */
static void test_local_delivery(void **state)
{
    (void)state;
    psc *p = mk(1, 0);
    acts as;
    assert_int_equal(psc_subscribe(p, 10, S("sensor.*.temp"), 0, 0), PSC_OK);
    assert_int_equal(psc_subscribe(p, 10, S("sensor.**"), 1, 0), PSC_OK);
    assert_int_equal(psc_subscribe(p, 11, S("sensor.kitchen.humidity"), 0, 0), PSC_OK);
    assert_int_equal(psc_subscribe(p, 12, S("**.temp"), 0, 0), PSC_OK);
    drain(p, &as); /* advertisements */
    uint8_t id[16];
    memset(id, 7, sizeof id);
    wire_publish w = pubmsg("sensor.kitchen.temp", "21.5", 1, id);
    assert_int_equal(psc_publish(p, 99, &w, 0), PSC_OK);
    drain(p, &as);
    /* Local: conn 10 (qos 1, once), conn 12 (qos 0); 2 lookups; no PUBACK yet (waiting). */
    assert_int_equal(count_kind(&as, PSC_ACT_SEND_CONN), 2);
    assert_int_equal(count_kind(&as, PSC_ACT_LOOKUP), 2);
    for (size_t i = 0; i < 2; i++) {
        const act *a = nth(&as, PSC_ACT_SEND_CONN, i);
        wire_msg m;
        decode(a, &m);
        assert_int_equal(m.type, WIRE_PUBLISH);
        assert_memory_equal(m.publish.topic.p, "sensor.kitchen.temp", 19);
        assert_memory_equal(m.publish.payload.p, "21.5", 4);
        assert_true(a->conn == 10 || a->conn == 12);
        assert_int_equal(m.publish.qos, a->conn == 10 ? 1 : 0);
    }
    answer_empty(p, &as, 0);
    drain(p, &as);
    assert_int_equal(as.n, 1); /* the publisher's PUBACK, now that the remote part is done */
    wire_msg m;
    decode(&as.a[0], &m);
    assert_int_equal(m.type, WIRE_PUBACK);
    assert_int_equal(as.a[0].conn, 99);
    /* Nothing matches: nothing delivered. */
    w = pubmsg("kitchen.light", "on", 0, NULL);
    assert_int_equal(psc_publish(p, 99, &w, 0), PSC_OK);
    drain(p, &as);
    assert_int_equal(count_kind(&as, PSC_ACT_SEND_CONN), 0);
    psc_free(p);
}

/* Many subscribers (past the short list that is de-duplicated as it grows): every connection
 * gets one delivery, at the highest QoS of its matching patterns. */
static void test_many_subscribers_once(void **state)
{
    (void)state;
    psc *p = mk(1, 0);
    acts as;
    const uint64_t n = 50;
    for (uint64_t c = 100; c < 100 + n; c++) {
        assert_int_equal(psc_subscribe(p, c, S("room.*"), 0, 0), PSC_OK);
        assert_int_equal(psc_subscribe(p, c, S("room.**"), c % 2 ? 1 : 0, 0), PSC_OK);
        assert_int_equal(psc_subscribe(p, c, S("**"), 0, 0), PSC_OK);
        drain(p, &as);
    }
    uint8_t id[16];
    memset(id, 9, sizeof id);
    wire_publish w = pubmsg("room.a", "x", 1, id);
    assert_int_equal(psc_publish(p, 7, &w, 0), PSC_OK);
    drain(p, &as);
    assert_int_equal(count_kind(&as, PSC_ACT_SEND_CONN), n);
    int seen[50] = {0};
    for (size_t i = 0; i < n; i++) {
        const act *a = nth(&as, PSC_ACT_SEND_CONN, i);
        assert_true(a->conn >= 100 && a->conn < 100 + n);
        seen[a->conn - 100]++;
        wire_msg m;
        decode(a, &m);
        assert_int_equal(m.publish.qos, a->conn % 2 ? 1 : 0);
    }
    for (size_t i = 0; i < n; i++) {
        assert_int_equal(seen[i], 1);
    }
    psc_free(p);
}

/* Delivery frames come from a pool up to 2 KiB and from the heap above: payloads on both sides
 * of that line, many times over (frames reused), arrive intact to two subscribers each. */
static void test_delivery_frames_reused(void **state)
{
    (void)state;
    psc *p = mk(1, 0);
    acts as;
    assert_int_equal(psc_subscribe(p, 1, S("t.*"), 0, 0), PSC_OK);
    assert_int_equal(psc_subscribe(p, 2, S("t.x"), 0, 0), PSC_OK);
    drain(p, &as);
    static const size_t sizes[] = {5, 1900, 2100, 5000};
    static char payload[5000];
    for (int i = 0; i < 400; i++) {
        size_t len = sizes[i % 4];
        memset(payload, 'a' + i % 26, len);
        wire_publish w = {.topic = {(const uint8_t *)"t.x", 3},
                          .payload = {(uint8_t *)payload, len}};
        assert_int_equal(psc_publish(p, 9, &w, 0), PSC_OK);
        int got = 0;
        psc_action a;
        while (psc_next_action(p, &a)) {
            if (a.kind != PSC_ACT_SEND_CONN) {
                continue;
            }
            wire_msg m;
            size_t used = 0;
            assert_int_equal(wire_decode(a.data, a.len, NULL, &m, &used), WIRE_OK);
            assert_int_equal(used, a.len);
            assert_int_equal(m.publish.payload.len, len);
            assert_memory_equal(m.publish.payload.p, payload, len);
            got++;
        }
        assert_int_equal(got, 2);
    }
    psc_free(p);
}

/* frame_id names an encoding: the subscribers that share one get the same id and the same
 * bytes, another QoS is another encoding with another id, and every message gets new ids even
 * when its frame reuses a pooled block at the same address (what a consumer batching by id
 * relies on; tests/unit/test_mesh_api.c test_qos0_burst sends same-length messages through a
 * node and fails if the gateway joined two of them). */
static void test_frame_ids(void **state)
{
    (void)state;
    psc *p = mk(1, 0);
    acts as;
    for (uint64_t c = 1; c <= 3; c++) {
        assert_int_equal(psc_subscribe(p, c, S("f.*"), 0, 0), PSC_OK);
    }
    assert_int_equal(psc_subscribe(p, 4, S("f.**"), 1, 0), PSC_OK);
    drain(p, &as);
    uint8_t id[16];
    memset(id, 3, sizeof id);
    uint64_t prev[2] = {0, 0};
    bool reused = false;
    const uint8_t *prev_ptr[2] = {NULL, NULL};
    for (int i = 0; i < 64; i++) {
        char payload[16];
        snprintf(payload, sizeof payload, "m%02d", i); /* same length every time */
        id[0] = (uint8_t)i;
        wire_publish w = pubmsg("f.x", payload, 1, id);
        assert_int_equal(psc_publish(p, 99, &w, (uint64_t)i), PSC_OK);
        drain(p, &as);
        const act *q0 = NULL;
        const act *q1 = NULL;
        size_t deliveries = 0;
        for (size_t k = 0; k < count_kind(&as, PSC_ACT_SEND_CONN); k++) {
            const act *a = nth(&as, PSC_ACT_SEND_CONN, k);
            if (a->conn == 99) {
                continue; /* the publisher's PUBACK */
            }
            deliveries++;
            assert_true(a->frame_id != 0);
            wire_msg m;
            decode(a, &m);
            assert_memory_equal(m.publish.payload.p, payload, 3);
            if (a->conn == 4) {
                q1 = a;
                continue;
            }
            if (q0 == NULL) {
                q0 = a;
            }
            assert_int_equal(a->frame_id, q0->frame_id); /* one encoding for conns 1-3 */
            assert_int_equal(a->len, q0->len);
            assert_memory_equal(a->data, q0->data, a->len);
        }
        assert_int_equal(deliveries, 4);
        answer_empty(p, &as, (uint64_t)i);
        assert_non_null(q0);
        assert_non_null(q1);
        assert_true(q1->frame_id != q0->frame_id); /* QoS 1 is another encoding */
        assert_true(q0->frame_id != prev[0] && q0->frame_id != prev[1]);
        assert_true(q1->frame_id != prev[0] && q1->frame_id != prev[1]);
        reused = reused || q0->ptr == prev_ptr[0] || q0->ptr == prev_ptr[1] ||
                 q1->ptr == prev_ptr[0] || q1->ptr == prev_ptr[1];
        prev[0] = q0->frame_id;
        prev[1] = q1->frame_id;
        prev_ptr[0] = q0->ptr;
        prev_ptr[1] = q1->ptr;
    }
    assert_true(reused); /* the pool gave a frame's address to a later message */
    psc_free(p);
}

/* Limits, repeated and invalid subscriptions, unsubscribe, disconnect. */
static void test_limits_and_cleanup(void **state)
{
    (void)state;
    psc *p = mk(1, 3);
    size_t base = psc_memory(p);
    assert_int_equal(psc_subscribe(p, 5, S("a.b"), 0, 0), PSC_OK);
    assert_int_equal(psc_subscribe(p, 5, S("a.b"), 1, 0), PSC_EEXIST);
    assert_int_equal(psc_subscribe(p, 5, S("a.*"), 0, 0), PSC_OK);
    assert_int_equal(psc_subscribe(p, 5, S("b.**"), 0, 0), PSC_OK);
    assert_int_equal(psc_subscribe(p, 5, S("c"), 0, 0), PSC_ELIMIT);
    assert_int_equal(psc_subscribe(p, 6, S("c"), 0, 0), PSC_OK); /* per connection */
    assert_int_equal(psc_subscribe(p, 6, S("bad..pattern"), 0, 0), PSC_EINVAL);
    assert_int_equal(psc_subscribe(p, 6, S("x*"), 0, 0), PSC_EINVAL);
    psc_stats st;
    psc_get_stats(p, &st);
    assert_int_equal(st.subscriptions, 4);
    assert_int_equal(st.refused_limit, 1);
    assert_int_equal(st.refused_invalid, 2);
    assert_int_equal(psc_conn_subs(p, 5), 3);
    assert_int_equal(psc_unsubscribe(p, 5, S("a.b"), 0), PSC_OK);
    assert_int_equal(psc_unsubscribe(p, 5, S("a.b"), 0), PSC_ENOENT);
    assert_int_equal(psc_subscribe(p, 5, S("c"), 0, 0), PSC_OK); /* room again */
    psc_conn_down(p, 5, 0);
    psc_conn_down(p, 6, 0);
    assert_int_equal(psc_conn_subs(p, 5), 0);
    psc_get_stats(p, &st);
    assert_int_equal(st.subscriptions, 0);
    assert_int_equal(st.patterns, 0);
    acts as;
    drain(p, &as);
    assert_int_equal(psc_memory(p), base);
    /* Churn: memory comes back every time. */
    char pat[64];
    for (int round = 0; round < 3; round++) {
        for (uint64_t c = 0; c < 200; c++) {
            for (int k = 0; k < 3; k++) {
                snprintf(pat, sizeof pat, "t%d.%d.*", k, (int)(c % 17));
                int rc = psc_subscribe(p, 1000 + c, S(pat), (uint8_t)(k & 1), 0);
                assert_true(rc == PSC_OK);
            }
        }
        for (uint64_t c = 0; c < 200; c++) {
            psc_conn_down(p, 1000 + c, 0);
        }
        drain(p, &as);
        assert_int_equal(psc_memory(p), base);
    }
    psc_free(p);
}

/* QoS 1 to a local subscriber: resent until PUBACK, duplicates acknowledged only, given up
 * after max_tries; a disconnect drops what is pending. */
static void test_qos1_local(void **state)
{
    (void)state;
    psc *p = mk(1, 0);
    acts as;
    assert_int_equal(psc_subscribe(p, 10, S("q.*"), 1, 0), PSC_OK);
    drain(p, &as);
    uint8_t id[16];
    memset(id, 1, sizeof id);
    wire_publish w = pubmsg("q.a", "x", 1, id);
    assert_int_equal(psc_publish(p, 20, &w, 0), PSC_OK);
    drain(p, &as);
    answer_empty(p, &as, 0);
    drain(p, &as);
    assert_int_equal(psc_next_deadline(p), 1000);
    assert_int_equal(psc_tick(p, 1000), PSC_OK);
    drain(p, &as);
    assert_int_equal(as.n, 1);
    assert_int_equal(as.a[0].conn, 10);
    wire_msg m;
    decode(&as.a[0], &m);
    assert_int_equal(m.type, WIRE_PUBLISH);
    assert_int_equal(m.publish.qos, 1);
    assert_memory_equal(m.publish.message_id.p, id, 16);
    assert_int_equal(psc_puback(p, 10, id, 16), PSC_OK);
    assert_int_equal(psc_puback(p, 10, id, 16), PSC_ENOENT);
    assert_int_equal(psc_next_deadline(p), UINT64_MAX);
    /* The publisher retries the same id: acknowledged, not delivered again. */
    assert_int_equal(psc_publish(p, 20, &w, 2000), PSC_OK);
    drain(p, &as);
    assert_int_equal(as.n, 1);
    decode(&as.a[0], &m);
    assert_int_equal(m.type, WIRE_PUBACK);
    assert_int_equal(as.a[0].conn, 20);
    /* Never acknowledged: 4 sends in all, then given up. */
    memset(id, 2, sizeof id);
    w = pubmsg("q.b", "y", 1, id);
    assert_int_equal(psc_publish(p, 20, &w, 3000), PSC_OK);
    drain(p, &as);
    size_t sends = count_kind(&as, PSC_ACT_SEND_CONN) - 1; /* minus the PUBACK to 20 */
    for (uint64_t t = 3000; t < 60000; t += 500) {
        psc_tick(p, t);
        drain(p, &as);
        sends += count_kind(&as, PSC_ACT_SEND_CONN);
    }
    assert_int_equal(sends, 4);
    psc_stats st;
    psc_get_stats(p, &st);
    assert_int_equal(st.gave_up, 1);
    assert_int_equal(st.resent, 4); /* 1 for the first message, 3 for this one */
    assert_int_equal(st.duplicates, 1);
    /* Pending for a connection that leaves: dropped at once. */
    memset(id, 3, sizeof id);
    w = pubmsg("q.c", "z", 1, id);
    assert_int_equal(psc_publish(p, 20, &w, 70000), PSC_OK);
    drain(p, &as);
    assert_true(psc_next_deadline(p) != UINT64_MAX);
    psc_conn_down(p, 10, 70000);
    drain(p, &as); /* the index value, now empty */
    assert_int_equal(count_kind(&as, PSC_ACT_ADVERTISE), 1);
    assert_int_equal(psc_next_deadline(p), UINT64_MAX);
    psc_free(p);
}

/* The index: values per first segment and for wildcard-first patterns; updates on unsubscribe;
 * the catch-all when the patterns do not fit. */
static void test_advertise(void **state)
{
    (void)state;
    psc *p = mk(1, 0);
    acts as;
    assert_int_equal(psc_subscribe(p, 10, S("sensor.*.temp"), 0, 0), PSC_OK);
    assert_int_equal(psc_subscribe(p, 11, S("sensor.*.temp"), 0, 0), PSC_OK);
    assert_int_equal(psc_subscribe(p, 11, S("**.alarm"), 0, 0), PSC_OK);
    assert_int_equal(psc_subscribe(p, 11, S("*.x"), 0, 0), PSC_OK);
    drain(p, &as);
    assert_int_equal(count_kind(&as, PSC_ACT_ADVERTISE), 2);
    bool seen_sensor = false, seen_wild = false;
    for (size_t i = 0; i < as.n; i++) {
        psc_index_entry e;
        assert_int_equal(psc_index_parse(as.a[i].data, as.a[i].len, &e), PSC_OK);
        assert_string_equal(e.addr, "127.0.0.1:9001");
        uint8_t me[PSC_ID_LEN];
        memset(me, 1, sizeof me);
        assert_memory_equal(e.node_id, me, PSC_ID_LEN);
        char pats[512];
        snprintf(pats, sizeof pats, "%.*s", (int)e.patterns_len, e.patterns);
        if (strcmp(as.a[i].key, "psub:sensor") == 0) {
            seen_sensor = true;
            assert_string_equal(pats, "sensor.*.temp");
        } else {
            assert_string_equal(as.a[i].key, "psub:*");
            seen_wild = true;
            assert_true(strstr(pats, "**.alarm") != NULL && strstr(pats, "*.x") != NULL);
        }
    }
    assert_true(seen_sensor && seen_wild);
    /* One of two subscribers leaves: the pattern stays, nothing to advertise. */
    psc_conn_down(p, 10, 0);
    drain(p, &as);
    assert_int_equal(count_kind(&as, PSC_ACT_ADVERTISE), 0);
    /* The last one leaves: both keys are put again, empty. */
    psc_conn_down(p, 11, 0);
    drain(p, &as);
    assert_int_equal(count_kind(&as, PSC_ACT_ADVERTISE), 2);
    for (size_t i = 0; i < as.n; i++) {
        psc_index_entry e;
        assert_int_equal(psc_index_parse(as.a[i].data, as.a[i].len, &e), PSC_OK);
        assert_int_equal(e.patterns_len, 0);
    }
    /* 60 patterns of 40 bytes do not fit in one value: the catch-all goes out. */
    char pat[64];
    for (int i = 0; i < 60; i++) {
        snprintf(pat, sizeof pat, "big.%036d", i);
        assert_int_equal(psc_subscribe(p, 12, S(pat), 0, 0), PSC_OK);
    }
    drain(p, &as);
    assert_int_equal(as.n, 1);
    psc_index_entry e;
    assert_int_equal(psc_index_parse(as.a[0].data, as.a[0].len, &e), PSC_OK);
    assert_int_equal(e.patterns_len, 6);
    assert_memory_equal(e.patterns, "big.**", 6);
    assert_true(as.a[0].len <= PSC_INDEX_VALUE_MAX);
    /* Parsing refuses garbage. */
    assert_int_equal(psc_index_parse((const uint8_t *)"psub1 zz 1:2", 12, &e), PSC_EINVAL);
    assert_int_equal(psc_index_parse((const uint8_t *)"hello", 5, &e), PSC_EINVAL);
    char k[64];
    assert_int_equal(psc_index_key(S("**"), k, sizeof k), 6);
    assert_memory_equal(k, "psub:*", 6);
    assert_int_equal(psc_index_key(S("a*"), k, sizeof k), PSC_EINVAL);
    psc_free(p);
}

/* Builds an index value the way a node does. */
static size_t value_of(uint8_t idbyte, const char *addr, const char *pats, char *out, size_t cap)
{
    char hex[65];
    for (int i = 0; i < 32; i++) {
        snprintf(hex + (size_t)2 * i, 3, "%02x", idbyte);
    }
    return (size_t)snprintf(out, cap, "psub1 %s %s%s%s", hex, addr, pats[0] ? "\n" : "", pats);
}

/* Remote: a publish with no answer looks the two keys up and waits; the answers route one
 * PUBSUB_ROUTE per matching node; answers are cached for cache_ms. */
static void test_remote_lookup_and_cache(void **state)
{
    (void)state;
    psc *p = mk(1, 0);
    acts as;
    wire_publish w = pubmsg("sensor.kitchen.temp", "21", 0, NULL);
    assert_int_equal(psc_publish(p, 50, &w, 0), PSC_OK);
    drain(p, &as);
    assert_int_equal(count_kind(&as, PSC_ACT_LOOKUP), 2);
    assert_string_equal(nth(&as, PSC_ACT_LOOKUP, 0)->key, "psub:sensor");
    assert_string_equal(nth(&as, PSC_ACT_LOOKUP, 1)->key, "psub:*");
    /* A second publish while the lookups run: no new lookups, waits too. */
    w = pubmsg("sensor.hall.temp", "19", 0, NULL);
    assert_int_equal(psc_publish(p, 50, &w, 1), PSC_OK);
    drain(p, &as);
    assert_int_equal(as.n, 0);
    char v[4][256];
    psc_index_entry es[4];
    value_of(5, "127.0.0.1:9005", "sensor.*.temp", v[0], 256);
    value_of(6, "127.0.0.1:9006", "sensor.garage.*", v[1], 256);
    value_of(1, "127.0.0.1:9001", "sensor.**", v[2], 256); /* ourselves: ignored */
    for (int i = 0; i < 3; i++) {
        assert_int_equal(psc_index_parse((const uint8_t *)v[i], strlen(v[i]), &es[i]), PSC_OK);
    }
    assert_int_equal(psc_lookup_done(p, S("psub:sensor"), es, 3, true, 10), PSC_OK);
    drain(p, &as);
    assert_int_equal(as.n, 0); /* psub:* still pending */
    value_of(7, "127.0.0.1:9007", "**.temp\nfoo.bar", v[3], 256);
    assert_int_equal(psc_index_parse((const uint8_t *)v[3], strlen(v[3]), &es[3]), PSC_OK);
    assert_int_equal(psc_lookup_done(p, S("psub:*"), &es[3], 1, true, 20), PSC_OK);
    drain(p, &as);
    /* Two publishes x nodes 5 and 7. */
    assert_int_equal(count_kind(&as, PSC_ACT_SEND_NODE), 4);
    for (size_t i = 0; i < 4; i++) {
        const act *a = nth(&as, PSC_ACT_SEND_NODE, i);
        assert_true(a->node[0] == 5 || a->node[0] == 7);
        assert_string_equal(a->addr, a->node[0] == 5 ? "127.0.0.1:9005" : "127.0.0.1:9007");
        wire_msg m;
        decode(a, &m);
        assert_int_equal(m.type, WIRE_PUBSUB_ROUTE);
        assert_int_equal(m.pubsub_route.max_hops, 10);
        assert_int_equal(m.pubsub_route.destination_node_id.p[0], a->node[0]);
        assert_int_equal(m.pubsub_route.source_node_id.p[0], 1);
    }
    /* Cached: the next publish routes at once (garage matches node 6 too). */
    w = pubmsg("sensor.garage.temp", "5", 0, NULL);
    assert_int_equal(psc_publish(p, 50, &w, 30000), PSC_OK);
    drain(p, &as);
    assert_int_equal(count_kind(&as, PSC_ACT_LOOKUP), 0);
    assert_int_equal(count_kind(&as, PSC_ACT_SEND_NODE), 3);
    psc_stats st;
    psc_get_stats(p, &st);
    assert_int_equal(st.cache_hits, 1);
    assert_int_equal(st.routes_out, 7);
    /* After cache_ms the keys are looked up again. */
    assert_int_equal(psc_publish(p, 50, &w, 60011), PSC_OK);
    drain(p, &as);
    assert_int_equal(count_kind(&as, PSC_ACT_LOOKUP), 1); /* psub:sensor, answered at 10 */
    answer_empty(p, &as, 60015);
    drain(p, &as);
    assert_int_equal(count_kind(&as, PSC_ACT_SEND_NODE), 1); /* node 7, from psub:* */
    assert_int_equal(psc_publish(p, 50, &w, 60021), PSC_OK);
    drain(p, &as);
    assert_int_equal(count_kind(&as, PSC_ACT_LOOKUP), 1); /* psub:* now */
    answer_empty(p, &as, 60022);
    drain(p, &as);
    assert_int_equal(count_kind(&as, PSC_ACT_SEND_NODE), 0);
    psc_free(p);
}

static bool has_lookup(const acts *as, const char *key)
{
    for (size_t i = 0; i < as->n; i++) {
        if (as->a[i].kind == PSC_ACT_LOOKUP && strcmp(as->a[i].key, key) == 0) {
            return true;
        }
    }
    return false;
}

/* The index keys of the last topic are remembered between publishes; when the cache is full
 * and an entry is evicted, the remembered keys are not used (they may be freed: ASan) and the
 * evicted key is looked up again. */
static void test_cache_eviction_memo(void **state)
{
    (void)state;
    psc_config cfg;
    psc_config_default(&cfg);
    memset(cfg.node_id, 1, PSC_ID_LEN);
    cfg.max_cache_keys = 2;
    psc *p = NULL;
    assert_int_equal(psc_new(&cfg, 0, &p), PSC_OK);
    acts as;
    wire_publish a = pubmsg("a.x", "1", 0, NULL), b = pubmsg("b.x", "2", 0, NULL);
    assert_int_equal(psc_publish(p, 50, &a, 0), PSC_OK);
    drain(p, &as);
    assert_int_equal(count_kind(&as, PSC_ACT_LOOKUP), 2);
    answer_empty(p, &as, 1);
    drain(p, &as);
    for (int i = 0; i < 3; i++) { /* remembered: no look-up */
        assert_int_equal(psc_publish(p, 50, &a, 2), PSC_OK);
        drain(p, &as);
        assert_int_equal(count_kind(&as, PSC_ACT_LOOKUP), 0);
    }
    psc_stats st;
    psc_get_stats(p, &st);
    assert_int_equal(st.cache_hits, 3);
    /* b.x needs psub:b: a non-pending entry is evicted to make room, and psub:a goes in either
     * order of eviction (if psub:* goes first, psub:a goes to bring psub:* back) */
    assert_int_equal(psc_publish(p, 50, &b, 3), PSC_OK);
    drain(p, &as);
    assert_true(has_lookup(&as, "psub:b"));
    assert_false(has_lookup(&as, "psub:a"));
    /* a.x while psub:b is still pending: the remembered keys of a were freed, so they are not
     * used (no cache hit); psub:a is looked up again when there is room (when psub:* went
     * first, both entries are pending and there is none: the publish waits) */
    assert_int_equal(psc_publish(p, 50, &a, 4), PSC_OK);
    acts as2;
    drain(p, &as2);
    assert_true(has_lookup(&as2, "psub:a") || count_kind(&as2, PSC_ACT_LOOKUP) == 0);
    psc_get_stats(p, &st);
    assert_int_equal(st.cache_hits, 3);
    answer_empty(p, &as, 5);
    answer_empty(p, &as2, 5);
    drain(p, &as);
    psc_get_stats(p, &st);
    assert_int_equal(st.published, 6);
    psc_free(p);
}

/* Pass every frame between two cores: A's routes into B (over the gateway conn 77), B's
 * PUBACKs back to A (over the pool). */
static void shuttle(psc *a, psc *b, acts *as_a, acts *as_b, uint64_t now, bool drop_b_acks,
                    size_t *delivered_b)
{
    drain(a, as_a);
    for (size_t i = 0; i < as_a->n; i++) {
        if (as_a->a[i].kind != PSC_ACT_SEND_NODE) {
            continue;
        }
        wire_msg m;
        decode(&as_a->a[i], &m);
        uint8_t from[PSC_ID_LEN];
        memset(from, 1, sizeof from);
        assert_int_equal(psc_route_in(b, 77, from, &m.pubsub_route, now), PSC_OK);
    }
    drain(b, as_b);
    for (size_t i = 0; i < as_b->n; i++) {
        const act *x = &as_b->a[i];
        if (x->kind != PSC_ACT_SEND_CONN) {
            continue;
        }
        wire_msg m;
        decode(x, &m);
        if (x->conn == 77 && m.type == WIRE_PUBACK && !drop_b_acks) {
            uint8_t from[PSC_ID_LEN];
            memset(from, 2, sizeof from);
            (void)psc_node_puback(a, from, m.puback.message_id.p, m.puback.message_id.len);
        } else if (m.type == WIRE_PUBLISH) {
            (*delivered_b)++;
        }
    }
}

/* Two nodes: QoS 1 over PUBSUB_ROUTE, the receiver acknowledging upstream only after its
 * local subscriber acknowledged; a lost upstream ack brings a resend that is not delivered
 * twice; misrouted and hop-exhausted routes are refused. */
static void test_two_nodes_qos1(void **state)
{
    (void)state;
    psc *a = mk(1, 0), *b = mk(2, 0);
    acts as_a, as_b;
    assert_int_equal(psc_subscribe(b, 30, S("room.*"), 1, 0), PSC_OK);
    drain(b, &as_b);
    psc_index_entry e;
    assert_int_equal(psc_index_parse(as_b.a[0].data, as_b.a[0].len, &e), PSC_OK);
    uint8_t id[16];
    memset(id, 9, sizeof id);
    wire_publish w = pubmsg("room.a", "hello", 1, id);
    assert_int_equal(psc_publish(a, 40, &w, 0), PSC_OK);
    drain(a, &as_a);
    assert_int_equal(psc_lookup_done(a, S("psub:room"), &e, 1, true, 0), PSC_OK);
    assert_int_equal(psc_lookup_done(a, S("psub:*"), NULL, 0, true, 0), PSC_OK);
    size_t delivered = 0;
    shuttle(a, b, &as_a, &as_b, 0, false, &delivered);
    assert_int_equal(delivered, 1);
    /* B owes A an ack but waits for its subscriber; A's outbox still holds the route. */
    assert_int_equal(count_kind(&as_b, PSC_ACT_SEND_CONN), 1);
    assert_true(psc_next_deadline(a) != UINT64_MAX);
    /* A resends (no ack yet): B does not deliver again and does not ack yet. */
    psc_tick(a, 1000);
    shuttle(a, b, &as_a, &as_b, 1000, false, &delivered);
    assert_int_equal(delivered, 1);
    assert_int_equal(as_b.n, 0);
    /* The subscriber acknowledges: B acknowledges upstream; A's outbox empties. */
    assert_int_equal(psc_puback(b, 30, id, 16), PSC_OK);
    drain(b, &as_b);
    assert_int_equal(as_b.n, 1);
    assert_int_equal(as_b.a[0].conn, 77);
    uint8_t from[PSC_ID_LEN];
    memset(from, 2, sizeof from);
    wire_msg m;
    decode(&as_b.a[0], &m);
    assert_int_equal(psc_node_puback(a, from, m.puback.message_id.p, 16), PSC_OK);
    assert_int_equal(psc_next_deadline(a), UINT64_MAX);
    /* Later resend of the same id (say the ack was lost): acknowledged, not delivered. */
    wire_msg r;
    decode(nth(&as_a, PSC_ACT_SEND_NODE, 0), &r);
    memset(from, 1, sizeof from);
    assert_int_equal(psc_route_in(b, 77, from, &r.pubsub_route, 2000), PSC_OK);
    drain(b, &as_b);
    assert_int_equal(as_b.n, 1);
    decode(&as_b.a[0], &m);
    assert_int_equal(m.type, WIRE_PUBACK);
    /* Refusals. */
    r.pubsub_route.hop_count = 11;
    assert_int_equal(psc_route_in(b, 77, from, &r.pubsub_route, 2000), PSC_EHOPS);
    r.pubsub_route.hop_count = 1;
    uint8_t other[PSC_ID_LEN];
    memset(other, 3, sizeof other);
    r.pubsub_route.destination_node_id.p = other;
    assert_int_equal(psc_route_in(b, 77, from, &r.pubsub_route, 2000), PSC_EMISROUTE);
    psc_stats st;
    psc_get_stats(b, &st);
    assert_int_equal(st.routes_refused, 2);
    assert_int_equal(st.duplicates, 2);
    /* The subscriber disconnects while B waits for it: B acknowledges upstream then. */
    memset(id, 10, sizeof id);
    w = pubmsg("room.b", "bye", 1, id);
    assert_int_equal(psc_publish(a, 40, &w, 3000), PSC_OK);
    delivered = 0;
    shuttle(a, b, &as_a, &as_b, 3000, false, &delivered);
    assert_int_equal(delivered, 1);
    assert_true(psc_next_deadline(a) != UINT64_MAX);
    psc_conn_down(b, 30, 3001);
    drain(b, &as_b);
    bool acked = false;
    for (size_t i = 0; i < as_b.n; i++) {
        if (as_b.a[i].kind == PSC_ACT_SEND_CONN && as_b.a[i].conn == 77) {
            decode(&as_b.a[i], &m);
            memset(from, 2, sizeof from);
            acked = psc_node_puback(a, from, m.puback.message_id.p, 16) == PSC_OK;
        }
    }
    assert_true(acked);
    assert_int_equal(psc_next_deadline(a), UINT64_MAX);
    psc_free(a);
    psc_free(b);
}

/* QoS 0 over a route, and a route for a topic nobody here wants (stale index) is dropped
 * quietly. */
static void test_route_qos0_and_stale(void **state)
{
    (void)state;
    psc *b = mk(2, 0);
    static acts as;
    memset(&as, 0, sizeof as);
    assert_int_equal(psc_subscribe(b, 30, S("x.**"), 0, 0), PSC_OK);
    drain(b, &as);
    uint8_t me[PSC_ID_LEN], src[PSC_ID_LEN];
    memset(me, 2, sizeof me);
    memset(src, 1, sizeof src);
    wire_msg m = {.type = WIRE_PUBSUB_ROUTE};
    m.pubsub_route.destination_node_id = (wire_bytes){me, 32};
    m.pubsub_route.source_node_id = (wire_bytes){src, 32};
    m.pubsub_route.hop_count = 1;
    m.pubsub_route.max_hops = 10;
    m.pubsub_route.topic = (wire_bytes){(const uint8_t *)"x", 1};
    m.pubsub_route.payload = pubmsg("x", "p", 0, NULL);
    assert_int_equal(psc_route_in(b, 77, src, &m.pubsub_route, 0), PSC_OK);
    drain(b, &as);
    assert_int_equal(as.n, 1);
    assert_int_equal(as.a[0].conn, 30);
    m.pubsub_route.payload = pubmsg("y.z", "p", 0, NULL);
    assert_int_equal(psc_route_in(b, 77, src, &m.pubsub_route, 0), PSC_OK);
    drain(b, &as);
    assert_int_equal(as.n, 0);
    psc_free(b);
}

/* Publishes topic at QoS qos and returns the local deliveries: to[i] got a frame of QoS q[i]
 * (lookups for remote subscribers are answered with nobody). */
static size_t deliver_to(psc *p, const char *topic, uint8_t qos, uint64_t to[], uint8_t q[])
{
    static uint8_t seq;
    uint8_t id[16];
    memset(id, ++seq, sizeof id);
    wire_publish w = pubmsg(topic, "x", qos, qos ? id : NULL);
    acts as;
    if (psc_publish(p, 99, &w, 0) != PSC_OK) {
        return SIZE_MAX;
    }
    drain(p, &as);
    size_t n = 0;
    for (size_t i = 0; i < as.n; i++) {
        if (as.a[i].kind == PSC_ACT_SEND_CONN) {
            wire_msg m;
            decode(&as.a[i], &m);
            if (m.type != WIRE_PUBLISH) {
                assert_int_equal(as.a[i].conn, 99); /* the publisher's PUBACK */
                continue;
            }
            to[n] = as.a[i].conn;
            q[n++] = m.publish.qos;
        }
    }
    answer_empty(p, &as, 0);
    drain(p, &as);
    return n;
}

/* The local match of a topic is remembered, and forgotten at every change of the
 * subscriptions: a subscriber added after a topic was published gets the next publish, one
 * removed (unsubscribe, disconnect) does not; QoS stays per subscription; topics too long or
 * with too many subscribers to remember are matched every time; an invalid topic is refused
 * every time. */
static void test_local_match_cache(void **state)
{
    (void)state;
    psc *p = mk(1, 0);
    acts as;
    uint64_t to[64];
    uint8_t q[64];
    assert_int_equal(psc_subscribe(p, 10, S("a.*"), 0, 0), PSC_OK);
    drain(p, &as);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(deliver_to(p, "a.b", 0, to, q), 1);
        assert_int_equal(to[0], 10);
    }
    assert_int_equal(psc_subscribe(p, 11, S("a.b"), 1, 0), PSC_OK);
    drain(p, &as);
    assert_int_equal(deliver_to(p, "a.b", 1, to, q), 2); /* 11 is new: the match is redone */
    for (int k = 0; k < 2; k++) {
        assert_int_equal(q[k], to[k] == 11 ? 1 : 0); /* 10 subscribed at QoS 0 */
    }
    assert_int_equal(deliver_to(p, "a.b", 0, to, q), 2); /* QoS 0 message: QoS 0 for all */
    assert_int_equal(q[0] + q[1], 0);
    assert_int_equal(deliver_to(p, "a.b", 1, to, q), 2); /* cached, QoS still per subscriber */
    assert_int_equal(q[0] + q[1], 1);
    /* a repeated SUBSCRIBE that changes the QoS is seen by the next publish */
    assert_int_equal(psc_subscribe(p, 10, S("a.*"), 1, 0), PSC_EEXIST);
    assert_int_equal(deliver_to(p, "a.b", 1, to, q), 2);
    assert_int_equal(q[0] + q[1], 2);
    assert_int_equal(psc_subscribe(p, 10, S("a.*"), 0, 0), PSC_EEXIST);
    assert_int_equal(deliver_to(p, "a.b", 1, to, q), 2);
    assert_int_equal(q[0] + q[1], 1);
    assert_int_equal(psc_unsubscribe(p, 10, S("a.*"), 0), PSC_OK);
    drain(p, &as);
    assert_int_equal(deliver_to(p, "a.b", 0, to, q), 1);
    assert_int_equal(to[0], 11);
    psc_conn_down(p, 11, 0);
    drain(p, &as);
    assert_int_equal(deliver_to(p, "a.b", 0, to, q), 0);
    /* not remembered: a 120-byte topic; 20 subscribers of one topic */
    char longt[121];
    for (int i = 0; i < 120; i++) {
        longt[i] = i % 2 ? '.' : 'x';
    }
    longt[119] = 'y';
    longt[120] = '\0';
    assert_int_equal(psc_subscribe(p, 12, S("**"), 0, 0), PSC_OK);
    for (uint64_t c = 20; c < 40; c++) {
        assert_int_equal(psc_subscribe(p, c, S("m.n"), 0, 0), PSC_OK);
    }
    drain(p, &as);
    for (int i = 0; i < 2; i++) {
        assert_int_equal(deliver_to(p, longt, 0, to, q), 1);
        assert_int_equal(deliver_to(p, "m.n", 0, to, q), 21);
    }
    assert_int_equal(psc_unsubscribe(p, 25, S("m.n"), 0), PSC_OK);
    drain(p, &as);
    assert_int_equal(deliver_to(p, "m.n", 0, to, q), 20);
    /* refused every time, never remembered */
    for (int i = 0; i < 2; i++) {
        assert_int_equal(deliver_to(p, "a..b", 0, to, q), SIZE_MAX);
        assert_int_equal(deliver_to(p, "a.*", 0, to, q), SIZE_MAX);
    }
    psc_free(p);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_local_delivery),
        cmocka_unit_test(test_limits_and_cleanup),
        cmocka_unit_test(test_qos1_local),
        cmocka_unit_test(test_advertise),
        cmocka_unit_test(test_remote_lookup_and_cache),
        cmocka_unit_test(test_cache_eviction_memo),
        cmocka_unit_test(test_many_subscribers_once),
        cmocka_unit_test(test_delivery_frames_reused),
        cmocka_unit_test(test_frame_ids),
        cmocka_unit_test(test_local_match_cache),
        cmocka_unit_test(test_two_nodes_qos1),
        cmocka_unit_test(test_route_qos0_and_stale),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
