/* tests/unit/test_dht.c — contracts of the Kademlia core (src/mesh/dht/dht.h): the XOR
 * metric and bucket index, realm-scoped keys, LRS ordering, full-bucket probe/evict/keep and
 * replacement slots, removal, TTL expiry, republish, refresh, bounded lookups, timeouts, reply
 * matching, the wire mapping, and lookups/puts/gets over a small hand-driven network. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "mesh/dht/dht.h"

/* ---- helpers ---------------------------------------------------------------------------- */

/* An id with the given first and last bytes, zero elsewhere. */
static dht_id mkid(uint8_t first, uint8_t last)
{
    dht_id id;
    memset(&id, 0, sizeof id);
    id.b[0] = first;
    id.b[DHT_ID_LEN - 1] = last;
    return id;
}

static bool id_eq(const dht_id *a, const dht_id *b)
{
    return memcmp(a->b, b->b, DHT_ID_LEN) == 0;
}

static dht *mk(const dht_config *cfg, dht_id self, uint64_t now)
{
    dht *d;
    assert_int_equal(dht_create(cfg, &self, "10.0.0.1:4433", now, &d), 0);
    return d;
}

/* Values handed out by the core live until the next pop: the helpers copy them here. */
static uint8_t g_vals[DHT_VALUES_MAX + 1][256];

static void keep_values(dht_value *v, uint32_t n, dht_value *single)
{
    for (uint32_t i = 0; i < n && i < DHT_VALUES_MAX; i++) {
        assert_true(v[i].len <= sizeof g_vals[i]);
        if (v[i].len > 0) {
            memcpy(g_vals[i], v[i].p, v[i].len);
        }
        v[i].p = g_vals[i];
    }
    if (single != NULL && single->p != NULL) {
        assert_true(single->len <= sizeof g_vals[DHT_VALUES_MAX]);
        memcpy(g_vals[DHT_VALUES_MAX], single->p, single->len);
        single->p = g_vals[DHT_VALUES_MAX];
    }
}

/* Pops every output; returns how many, keeps the first `keep` in out[] (values of the first
 * one stay readable). */
static int drain(dht *d, dht_out *out, int keep)
{
    int n = 0;
    const dht_out *o;
    memset(out, 0, (size_t)keep * sizeof *out);
    while ((o = dht_next_output(d)) != NULL) {
        if (n < keep) {
            out[n] = *o;
            if (n == 0) {
                keep_values(out[0].msg.values, out[0].msg.nvalues, &out[0].msg.value);
            }
        }
        n++;
    }
    return n;
}

/* Pops every event; returns how many, keeps the last in *last (with its values). */
static int count_events(dht *d, dht_event *last)
{
    int n = 0;
    const dht_event *e;
    if (last != NULL) {
        memset(last, 0, sizeof *last);
    }
    while ((e = dht_next_event(d)) != NULL) {
        if (last != NULL) {
            *last = *e;
            keep_values(last->values, last->nvalues, NULL);
        }
        n++;
    }
    return n;
}

static dht_msg reply_to(const dht_out *req)
{
    dht_msg r;
    memset(&r, 0, sizeof r);
    r.type = req->msg.type == WIRE_FIND_VALUE ? WIRE_FIND_VALUE_REPLY
             : req->msg.type == WIRE_STORE    ? WIRE_STORE_ACK
                                              : WIRE_FIND_NODE_REPLY;
    r.request_id = req->msg.request_id;
    r.key = req->msg.key;
    r.stored = true;
    return r;
}

/* ---- the metric ------------------------------------------------------------------------- */

static void test_distance_and_bucket_index(void **state)
{
    dht_id zero = mkid(0, 0), a = mkid(0x80, 0), b = mkid(0, 1), c = mkid(0x40, 0x01);
    assert_int_equal(dht_bucket_index(&zero, &zero), -1);
    assert_int_equal(dht_bucket_index(&zero, &a), 255);
    assert_int_equal(dht_bucket_index(&zero, &b), 0);
    assert_int_equal(dht_bucket_index(&zero, &c), 254);
    dht_id x = mkid(0, 0);
    x.b[30] = 0x10; /* bit 12 */
    assert_int_equal(dht_bucket_index(&zero, &x), 12);
    assert_int_equal(dht_bucket_index(&a, &x), 255); /* symmetric in the XOR */
    dht_id dist;
    dht_distance(&a, &c, &dist);
    assert_int_equal(dist.b[0], 0xc0);
    assert_int_equal(dist.b[31], 0x01);
    /* closer / farther to a target */
    assert_true(dht_cmp_distance(&zero, &b, &a) < 0);
    assert_true(dht_cmp_distance(&zero, &a, &b) > 0);
    assert_int_equal(dht_cmp_distance(&zero, &c, &c), 0);
    assert_true(dht_cmp_distance(&a, &b, &c) < 0); /* a^b = 80..01 < a^c = c0..01 */
    assert_true(dht_cmp_distance(&a, &c, &b) > 0);
    char hex[65];
    dht_id_hex(&c, hex);
    assert_string_equal(hex, "4000000000000000000000000000000000000000000000000000000000000001");
}

static void test_realm_scoped_keys(void **state)
{
    dht_id k1, k2, k3, k4, empty;
    assert_int_equal(dht_key("realm.one", 9, "com.example.svc", 15, &k1), 0);
    char hex[65];
    dht_id_hex(&k1, hex); /* SHA-256("realm.one\0com.example.svc"), computed by Python */
    assert_string_equal(hex, "7e0b7d5e973bacf9cc36f58af78b158a037018e0315240bd425ea5158d2038fa");
    assert_int_equal(dht_key("realm.two", 9, "com.example.svc", 15, &k2), 0);
    assert_false(id_eq(&k1, &k2));
    /* the separator keeps ("ab", "c") and ("a", "bc") apart */
    assert_int_equal(dht_key("ab", 2, "c", 1, &k3), 0);
    assert_int_equal(dht_key("a", 1, "bc", 2, &k4), 0);
    assert_false(id_eq(&k3, &k4));
    assert_int_equal(dht_key("", 0, NULL, 0, &empty), 0);
    dht_id_hex(&empty, hex); /* SHA-256("\0") */
    assert_string_equal(hex, "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d");
    assert_int_equal(dht_key("a\0b", 3, "x", 1, &k1), DHT_EINVAL);
    assert_int_equal(dht_key(NULL, 0, "x", 1, &k1), DHT_EINVAL);
    /* a long name goes through the heap path and is still SHA-256 of the whole input */
    char big[2000];
    memset(big, 'x', sizeof big);
    assert_int_equal(dht_key("r", 1, big, sizeof big, &k1), 0);
    assert_int_equal(dht_key("r", 1, big, sizeof big - 1, &k2), 0);
    assert_false(id_eq(&k1, &k2));
}

static void test_create_validates(void **state)
{
    dht_config c;
    dht *d;
    dht_id self = mkid(0, 0);
    dht_config_default(&c);
    assert_int_equal(c.k, 20);
    assert_int_equal(c.alpha, 3);
    assert_int_equal(c.query_timeout_ms, 5000);
    assert_int_equal(c.value_ttl_ms, 300000);
    assert_int_equal(c.republish_ms, 240000);
    c.k = DHT_K_MAX + 1;
    assert_int_equal(dht_create(&c, &self, "a:1", 0, &d), DHT_EINVAL);
    dht_config_default(&c);
    c.alpha = 0;
    assert_int_equal(dht_create(&c, &self, "a:1", 0, &d), DHT_EINVAL);
    dht_config_default(&c);
    c.max_values_per_key = DHT_VALUES_MAX + 1;
    assert_int_equal(dht_create(&c, &self, "a:1", 0, &d), DHT_EINVAL);
    char longaddr[DHT_ADDR_MAX + 2];
    memset(longaddr, 'a', sizeof longaddr - 1);
    longaddr[sizeof longaddr - 1] = 0;
    assert_int_equal(dht_create(NULL, &self, longaddr, 0, &d), DHT_EINVAL);
    assert_int_equal(dht_create(NULL, &self, "a:1", 0, &d), 0);
    /* contacts: our own id and over-long addresses are refused */
    assert_int_equal(dht_add_contact(d, &self, "b:1", 0), DHT_ESELF);
    dht_id o = mkid(1, 0);
    assert_int_equal(dht_add_contact(d, &o, longaddr, 0), DHT_EINVAL);
    assert_int_equal(dht_add_contact(d, &o, "", 0), DHT_EINVAL);
    assert_int_equal(dht_table_size(d), 0);
    dht_msg m;
    memset(&m, 0, sizeof m);
    m.type = WIRE_PING;
    assert_int_equal(dht_receive(d, &o, "b:1", &m, 0), DHT_EPROTO);
    m.type = WIRE_FIND_NODE;
    assert_int_equal(dht_receive(d, &self, "b:1", &m, 0), DHT_ESELF);
    assert_int_equal(dht_table_size(d), 0);
    assert_string_equal(dht_strerror(DHT_ETIMEDOUT), "timeout");
    assert_string_equal(dht_strerror(12345), "unknown_error");
    dht_destroy(d);
    dht_destroy(NULL);
}

/* ---- buckets ---------------------------------------------------------------------------- */

static void test_lrs_ordering(void **state)
{
    dht *d = mk(NULL, mkid(0, 0), 0);
    dht_id a = mkid(0x80, 1), b = mkid(0x80, 2), c = mkid(0x81, 3);
    assert_int_equal(dht_add_contact(d, &a, "a:1", 1), 0);
    assert_int_equal(dht_add_contact(d, &b, "b:1", 2), 0);
    assert_int_equal(dht_add_contact(d, &c, "c:1", 3), 0);
    assert_int_equal(dht_bucket_size(d, 255), 3);
    assert_int_equal(dht_table_size(d), 3);
    dht_contact e;
    assert_true(dht_bucket_entry(d, 255, 0, &e) && id_eq(&e.id, &a)); /* LRS first */
    /* a message from a makes it the most recently seen; its new address is kept */
    dht_msg m;
    memset(&m, 0, sizeof m);
    m.type = WIRE_FIND_NODE;
    m.key = a;
    assert_int_equal(dht_receive(d, &a, "a:2", &m, 10), 0);
    assert_true(dht_bucket_entry(d, 255, 0, &e) && id_eq(&e.id, &b));
    assert_true(dht_bucket_entry(d, 255, 1, &e) && id_eq(&e.id, &c));
    assert_true(dht_bucket_entry(d, 255, 2, &e) && id_eq(&e.id, &a));
    assert_string_equal(e.addr, "a:2");
    assert_false(dht_bucket_entry(d, 255, 3, &e));
    /* it was answered: a FIND_NODE_REPLY to a with the others (not a itself) */
    dht_out o[2];
    assert_int_equal(drain(d, o, 2), 1);
    assert_int_equal(o[0].msg.type, WIRE_FIND_NODE_REPLY);
    assert_true(id_eq(&o[0].to.id, &a));
    assert_string_equal(o[0].to.addr, "a:2");
    assert_int_equal(o[0].msg.ncontacts, 2);
    dht_destroy(d);
}

/* k = 2: a, b fill bucket 255; c arrives. */
static dht *full_bucket(uint64_t probe_after, dht_out *probe)
{
    dht_config cfg;
    dht_config_default(&cfg);
    cfg.k = 2;
    cfg.replacements = 2;
    cfg.probe_after_ms = probe_after;
    dht *d = mk(&cfg, mkid(0, 0), 0);
    dht_id a = mkid(0x80, 1), b = mkid(0x80, 2), c = mkid(0x80, 3);
    assert_int_equal(dht_add_contact(d, &a, "a:1", 0), 0);
    assert_int_equal(dht_add_contact(d, &b, "b:1", 100), 0);
    assert_int_equal(dht_add_contact(d, &c, "c:1", 1000), 0);
    assert_int_equal(dht_bucket_size(d, 255), 2);
    assert_int_equal(dht_bucket_replacements(d, 255), 1);
    assert_false(dht_has_contact(d, &c));
    int n = drain(d, probe, 1);
    if (probe_after == 0) {
        assert_int_equal(n, 1); /* the LRS entry a is probed */
        assert_int_equal(probe->msg.type, WIRE_FIND_NODE);
        assert_true(id_eq(&probe->to.id, &a));
    } else {
        assert_int_equal(n, 0);
    }
    return d;
}

static void test_full_bucket_evicts_unanswering_lrs(void **state)
{
    dht_out probe;
    dht *d = full_bucket(0, &probe);
    dht_id a = mkid(0x80, 1), b = mkid(0x80, 2), c = mkid(0x80, 3);
    assert_int_equal(dht_next_deadline(d), 1000 + 5000);
    dht_tick(d, 5999);
    assert_true(dht_has_contact(d, &a)); /* not yet */
    dht_tick(d, 6000);
    assert_false(dht_has_contact(d, &a)); /* evicted */
    assert_true(dht_has_contact(d, &b));
    assert_true(dht_has_contact(d, &c)); /* promoted from its replacement slot */
    assert_int_equal(dht_bucket_replacements(d, 255), 0);
    dht_contact e;
    assert_true(dht_bucket_entry(d, 255, 0, &e) && id_eq(&e.id, &b));
    dht_stats st;
    dht_get_stats(d, &st);
    assert_int_equal(st.evictions, 1);
    assert_int_equal(st.probes, 1);
    assert_int_equal(count_events(d, NULL), 0); /* probes are internal */
    dht_destroy(d);
}

static void test_full_bucket_keeps_answering_lrs(void **state)
{
    dht_out probe;
    dht *d = full_bucket(0, &probe);
    dht_id a = mkid(0x80, 1), b = mkid(0x80, 2), c = mkid(0x80, 3);
    dht_msg r = reply_to(&probe);
    assert_int_equal(dht_receive(d, &a, "a:1", &r, 2000), 0);
    dht_tick(d, 100000);
    assert_true(dht_has_contact(d, &a)); /* it answered: kept, now most recently seen */
    assert_true(dht_has_contact(d, &b));
    assert_false(dht_has_contact(d, &c)); /* still waiting in its slot */
    assert_int_equal(dht_bucket_replacements(d, 255), 1);
    dht_contact e;
    assert_true(dht_bucket_entry(d, 255, 1, &e) && id_eq(&e.id, &a));
    /* the connection to b is lost: c takes its place */
    assert_int_equal(dht_remove_contact(d, &b), 0);
    assert_true(dht_has_contact(d, &c));
    assert_int_equal(dht_remove_contact(d, &b), DHT_ENOTFOUND);
    dht_stats st;
    dht_get_stats(d, &st);
    assert_int_equal(st.evictions, 1);
    dht_destroy(d);
}

static void test_recently_seen_lrs_is_not_probed(void **state)
{
    dht_out probe;
    dht *d = full_bucket(30000, &probe); /* asserts no probe went out */
    /* replacement slots are bounded: the oldest newcomer is dropped */
    dht_id x = mkid(0x80, 4), y = mkid(0x80, 5);
    assert_int_equal(dht_add_contact(d, &x, "x:1", 1001), 0);
    assert_int_equal(dht_add_contact(d, &y, "y:1", 1002), 0);
    assert_int_equal(dht_bucket_replacements(d, 255), 2);
    /* a is now 40 s old: the next newcomer triggers a probe */
    dht_id z = mkid(0x80, 6);
    assert_int_equal(dht_add_contact(d, &z, "z:1", 40000), 0);
    dht_out o;
    assert_int_equal(drain(d, &o, 1), 1);
    dht_id a = mkid(0x80, 1);
    assert_true(id_eq(&o.to.id, &a));
    dht_destroy(d);
}

/* ---- timeouts and matching -------------------------------------------------------------- */

static void test_ping_timeout_and_reply_matching(void **state)
{
    dht *d = mk(NULL, mkid(0, 0), 0);
    dht_id a = mkid(0x80, 1), b = mkid(0x40, 1);
    uint32_t h1, h2;
    assert_int_equal(dht_ping(d, &a, "a:1", 0, &h1), 0);
    assert_int_equal(dht_ping(d, &b, "b:1", 0, &h2), 0);
    dht_out o[2];
    assert_int_equal(drain(d, o, 2), 2);
    assert_int_not_equal(o[0].msg.request_id, o[1].msg.request_id);
    /* a reply with a's request id from b does not count, nor a wrong id from a */
    dht_msg r = reply_to(&o[0]);
    assert_int_equal(dht_receive(d, &b, "b:1", &r, 10), 0);
    r.request_id = 999;
    assert_int_equal(dht_receive(d, &a, "a:1", &r, 10), 0);
    assert_int_equal(count_events(d, NULL), 0);
    /* the right one does */
    r = reply_to(&o[0]);
    assert_int_equal(dht_receive(d, &a, "a:1", &r, 20), 0);
    dht_event ev;
    assert_int_equal(count_events(d, &ev), 1);
    assert_int_equal(ev.kind, DHT_EV_PING);
    assert_int_equal(ev.handle, h1);
    assert_int_equal(ev.status, 0);
    assert_true(ev.found);
    /* b's ping times out at exactly the query timeout */
    assert_int_equal(dht_next_deadline(d), 5000);
    dht_tick(d, 4999);
    assert_int_equal(count_events(d, NULL), 0);
    dht_tick(d, 5000);
    assert_int_equal(count_events(d, &ev), 1);
    assert_int_equal(ev.handle, h2);
    assert_int_equal(ev.status, DHT_ETIMEDOUT);
    assert_false(ev.found);
    /* a duplicate of the answered reply is ignored */
    r = reply_to(&o[0]);
    assert_int_equal(dht_receive(d, &a, "a:1", &r, 6000), 0);
    assert_int_equal(count_events(d, NULL), 0);
    dht_destroy(d);
}

static void test_lookup_is_bounded(void **state)
{
    dht_config cfg;
    dht_config_default(&cfg);
    cfg.max_lookup_queries = 7;
    cfg.max_fails = 100; /* keep the silent contacts in the table */
    dht *d = mk(&cfg, mkid(0, 0), 0);
    for (int i = 0; i < 20; i++) {
        dht_id x = mkid((uint8_t)(0x80 | i), (uint8_t)i);
        char addr[16];
        snprintf(addr, sizeof addr, "n%d:1", i);
        assert_int_equal(dht_add_contact(d, &x, addr, 0), 0);
    }
    dht_id target = mkid(0x80, 0xff);
    uint32_t h;
    assert_int_equal(dht_lookup_node(d, &target, 0, &h), 0);
    dht_out o[8];
    assert_int_equal(drain(d, o, 8), 3); /* alpha in flight */
    for (int i = 0; i < 3; i++) {
        assert_int_equal(o[i].msg.type, WIRE_FIND_NODE);
        assert_true(id_eq(&o[i].msg.key, &target));
    }
    /* nobody answers: each timeout frees a slot for the next, up to 7 requests */
    uint64_t t = 0;
    int total = 3;
    while (total < 100) {
        uint64_t dl = dht_next_deadline(d);
        if (dl == UINT64_MAX || dl > 60000) {
            break;
        }
        t = dl;
        dht_tick(d, t);
        total += drain(d, o, 8);
        if (count_events(d, NULL) > 0) {
            break;
        }
    }
    assert_int_equal(total, 7);
    assert_int_equal(t, 15000); /* 3 rounds of the 5 s query timeout */
    dht_stats st;
    dht_get_stats(d, &st);
    assert_int_equal(st.timeouts, 7);
    assert_int_equal(st.lookups, 0);
    dht_destroy(d);
}

static void test_lookup_timeout_bounds_time(void **state)
{
    dht_config cfg;
    dht_config_default(&cfg);
    cfg.lookup_timeout_ms = 2000; /* shorter than one query timeout */
    dht *d = mk(&cfg, mkid(0, 0), 0);
    dht_id a = mkid(0x80, 1);
    assert_int_equal(dht_add_contact(d, &a, "a:1", 0), 0);
    uint32_t h;
    assert_int_equal(dht_lookup_node(d, &a, 0, &h), 0);
    dht_out o;
    assert_int_equal(drain(d, &o, 1), 1);
    assert_int_equal(dht_next_deadline(d), 2000);
    dht_tick(d, 2000);
    dht_event ev;
    assert_int_equal(count_events(d, &ev), 1);
    assert_int_equal(ev.kind, DHT_EV_LOOKUP);
    assert_int_equal(ev.handle, h);
    assert_int_equal(ev.status, DHT_ETIMEDOUT);
    assert_false(ev.found);
    assert_int_equal(ev.elapsed_ms, 2000);
    /* the late answer is harmless */
    dht_msg r = reply_to(&o);
    assert_int_equal(dht_receive(d, &a, "a:1", &r, 2500), 0);
    assert_int_equal(count_events(d, NULL), 0);
    dht_destroy(d);
}

static void test_unanswered_contact_is_removed_after_max_fails(void **state)
{
    dht *d = mk(NULL, mkid(0, 0), 0); /* max_fails 2 */
    dht_id a = mkid(0x80, 1);
    assert_int_equal(dht_add_contact(d, &a, "a:1", 0), 0);
    uint32_t h1, h2;
    assert_int_equal(dht_ping(d, &a, "a:1", 0, &h1), 0);
    dht_tick(d, 5000);
    assert_true(dht_has_contact(d, &a));
    assert_int_equal(dht_ping(d, &a, "a:1", 5000, &h2), 0);
    dht_tick(d, 10000);
    assert_false(dht_has_contact(d, &a));
    dht_destroy(d);
}

/* ---- values ----------------------------------------------------------------------------- */

static dht_msg store_msg(dht_id key, dht_id publisher, const char *v, uint64_t ttl)
{
    dht_msg m;
    memset(&m, 0, sizeof m);
    m.type = WIRE_STORE;
    m.request_id = 77;
    m.key = key;
    m.publisher = publisher;
    m.ttl_ms = ttl;
    m.value.p = (const uint8_t *)v;
    m.value.len = (uint32_t)strlen(v);
    return m;
}

static void test_store_ttl_and_bounds(void **state)
{
    dht_config cfg;
    dht_config_default(&cfg);
    cfg.max_values_per_key = 2;
    cfg.max_value_bytes = 8;
    cfg.max_keys = 2;
    cfg.max_ttl_ms = 100000;
    dht *d = mk(&cfg, mkid(0, 0), 0);
    dht_id a = mkid(0x80, 1), key = mkid(0x11, 0x22), p1 = mkid(1, 1), p2 = mkid(2, 2),
           p3 = mkid(3, 3);
    dht_msg m = store_msg(key, p1, "one", 1000);
    assert_int_equal(dht_receive(d, &a, "a:1", &m, 0), 0);
    dht_out o;
    assert_int_equal(drain(d, &o, 1), 1);
    assert_int_equal(o.msg.type, WIRE_STORE_ACK);
    assert_int_equal(o.msg.request_id, 77);
    assert_true(o.msg.stored);
    m = store_msg(key, p2, "two", 5000);
    assert_int_equal(dht_receive(d, &a, "a:1", &m, 0), 0);
    (void)drain(d, &o, 1);
    /* a third publisher is refused; the first may replace its own value */
    m = store_msg(key, p3, "three", 1000);
    assert_int_equal(dht_receive(d, &a, "a:1", &m, 0), 0);
    assert_int_equal(drain(d, &o, 1), 1);
    assert_false(o.msg.stored);
    m = store_msg(key, p1, "uno", 1000);
    assert_int_equal(dht_receive(d, &a, "a:1", &m, 0), 0);
    (void)drain(d, &o, 1);
    assert_true(o.msg.stored);
    /* too big is refused */
    m = store_msg(mkid(0x12, 0), p1, "123456789", 1000);
    assert_int_equal(dht_receive(d, &a, "a:1", &m, 0), 0);
    (void)drain(d, &o, 1);
    assert_false(o.msg.stored);
    /* max_keys: a second key fits, a third does not */
    m = store_msg(mkid(0x13, 0), p1, "k2", 1000000); /* ttl capped at max_ttl */
    assert_int_equal(dht_receive(d, &a, "a:1", &m, 0), 0);
    (void)drain(d, &o, 1);
    assert_true(o.msg.stored);
    m = store_msg(mkid(0x14, 0), p1, "k3", 1000);
    assert_int_equal(dht_receive(d, &a, "a:1", &m, 0), 0);
    (void)drain(d, &o, 1);
    assert_false(o.msg.stored);
    dht_stats st;
    dht_get_stats(d, &st);
    assert_int_equal(st.refused, 3);
    assert_int_equal(st.stored_keys, 2);
    assert_int_equal(st.stored_values, 3);

    dht_value v[4];
    assert_int_equal(dht_stored_values(d, &key, v, 4), 2);
    assert_int_equal(v[0].len, 3);
    assert_memory_equal(v[0].p, "uno", 3);
    /* expiry exactly at the TTL */
    assert_int_equal(dht_next_deadline(d), 1000);
    dht_tick(d, 999);
    assert_int_equal(dht_stored_values(d, &key, v, 4), 2);
    dht_tick(d, 1000);
    assert_int_equal(dht_stored_values(d, &key, v, 4), 1);
    assert_memory_equal(v[0].p, "two", 3);
    dht_tick(d, 5000);
    assert_int_equal(dht_stored_values(d, &key, v, 4), 0);
    dht_id k2 = mkid(0x13, 0);
    dht_tick(d, 99999);
    assert_int_equal(dht_stored_values(d, &k2, v, 4), 1);
    dht_tick(d, 100000);
    assert_int_equal(dht_stored_values(d, &k2, v, 4), 0);
    dht_get_stats(d, &st);
    assert_int_equal(st.expired, 3);
    assert_int_equal(st.stored_keys, 0);

    /* a FIND_VALUE for a key it holds answers with the values, else with contacts */
    m = store_msg(key, p1, "abc", 1000);
    assert_int_equal(dht_receive(d, &a, "a:1", &m, 200000), 0);
    (void)drain(d, &o, 1);
    dht_msg fv;
    memset(&fv, 0, sizeof fv);
    fv.type = WIRE_FIND_VALUE;
    fv.request_id = 5;
    fv.key = key;
    assert_int_equal(dht_receive(d, &a, "a:1", &fv, 200000), 0);
    assert_int_equal(drain(d, &o, 1), 1);
    assert_int_equal(o.msg.type, WIRE_FIND_VALUE_REPLY);
    assert_true(o.msg.has_values);
    assert_int_equal(o.msg.nvalues, 1);
    assert_memory_equal(o.msg.values[0].p, "abc", 3);
    fv.key = mkid(0x55, 0);
    assert_int_equal(dht_receive(d, &a, "a:1", &fv, 200000), 0);
    assert_int_equal(drain(d, &o, 1), 1);
    assert_int_equal(o.msg.type, WIRE_FIND_VALUE_REPLY);
    assert_false(o.msg.has_values);
    dht_destroy(d);
}

/* ---- a hand-driven network: every output delivered at once, in order -------------------- */

#define NET_MAX 64

typedef struct net {
    dht *n[NET_MAX];
    dht_contact c[NET_MAX];
    int count;
    bool down[NET_MAX];
    uint64_t now;
    uint64_t delivered;
} net;

static int net_find(net *nw, const char *addr)
{
    for (int i = 0; i < nw->count; i++) {
        if (strcmp(nw->c[i].addr, addr) == 0) {
            return i;
        }
    }
    return -1;
}

/* Delivers until quiet; events are left queued. */
static void net_pump(net *nw)
{
    bool any = true;
    while (any) {
        any = false;
        for (int i = 0; i < nw->count; i++) {
            const dht_out *o;
            while (nw->n[i] != NULL && (o = dht_next_output(nw->n[i])) != NULL) {
                int to = net_find(nw, o->to.addr);
                any = true;
                if (to < 0 || nw->down[to]) {
                    continue;
                }
                /* through the codec, as over QUIC */
                uint8_t *frame;
                size_t len, used;
                assert_int_equal(dht_msg_encode(&o->msg, &nw->c[i], &frame, &len), 0);
                wire_msg w;
                dht_msg m;
                assert_int_equal(wire_decode(frame, len, NULL, &w, &used), 0);
                assert_int_equal(dht_msg_from_wire(&w, &m), 0);
                assert_true(m.has_sender);
                assert_true(id_eq(&m.sender.id, &nw->c[i].id));
                assert_int_equal(dht_receive(nw->n[to], &m.sender.id, m.sender.addr, &m, nw->now),
                                 0);
                nw->delivered++;
                free(frame);
            }
        }
    }
}

static void net_tick(net *nw, uint64_t now)
{
    nw->now = now;
    for (int i = 0; i < nw->count; i++) {
        if (!nw->down[i]) {
            dht_tick(nw->n[i], now);
        }
    }
    net_pump(nw);
}

static void net_init(net *nw, int count, const dht_config *cfg)
{
    memset(nw, 0, sizeof *nw);
    nw->count = count;
    uint64_t x = 12345;
    for (int i = 0; i < count; i++) {
        for (int j = 0; j < DHT_ID_LEN; j++) {
            x = x * 6364136223846793005ull + 1442695040888963407ull;
            nw->c[i].id.b[j] = (uint8_t)(x >> 56);
        }
        snprintf(nw->c[i].addr, sizeof nw->c[i].addr, "10.0.0.%d:4433", i);
        assert_int_equal(dht_create(cfg, &nw->c[i].id, nw->c[i].addr, 0, &nw->n[i]), 0);
    }
    /* node 0 is the first of the mesh; the others bootstrap through it, one by one */
    for (int i = 1; i < count; i++) {
        uint32_t h;
        assert_int_equal(dht_bootstrap(nw->n[i], &nw->c[0], 1, 0, &h), 0);
        assert_int_not_equal(h, 0);
        net_pump(nw);
        dht_event ev;
        assert_true(count_events(nw->n[i], &ev) >= 1);
    }
    uint32_t h;
    assert_int_equal(dht_bootstrap(nw->n[0], NULL, 0, 0, &h), 0);
    assert_int_equal(h, 0);
}

static void net_free(net *nw)
{
    for (int i = 0; i < nw->count; i++) {
        dht_destroy(nw->n[i]);
    }
}

static void test_network_lookup_finds_every_node(void **state)
{
    net nw;
    net_init(&nw, 40, NULL);
    for (int i = 0; i < nw.count; i++) {
        assert_true(dht_table_size(nw.n[i]) > 0);
    }
    for (int i = 0; i < nw.count; i++) {
        int j = (i * 7 + 3) % nw.count;
        uint32_t h;
        assert_int_equal(dht_lookup_node(nw.n[i], &nw.c[j].id, 0, &h), 0);
        net_pump(&nw);
        dht_event ev;
        assert_int_equal(count_events(nw.n[i], &ev), 1);
        assert_int_equal(ev.handle, h);
        assert_int_equal(ev.status, 0);
        assert_true(ev.found);
        assert_true(ev.ncontacts > 0 && ev.ncontacts <= 20);
        if (i != j) {
            assert_true(id_eq(&ev.contacts[0].id, &nw.c[j].id)); /* the closest is itself */
            assert_true(ev.hops >= 1);
        }
        assert_true(ev.queries <= 80);
        /* contacts come nearest first */
        for (uint32_t k = 1; k < ev.ncontacts; k++) {
            assert_true(dht_cmp_distance(&nw.c[j].id, &ev.contacts[k - 1].id, &ev.contacts[k].id) <
                        0);
        }
    }
    net_free(&nw);
}

static void test_network_put_get_and_realms(void **state)
{
    net nw;
    net_init(&nw, 40, NULL);
    dht_id k1, k2;
    assert_int_equal(dht_key("realm.one", 9, "svc", 3, &k1), 0);
    assert_int_equal(dht_key("realm.two", 9, "svc", 3, &k2), 0);
    uint32_t h;
    assert_int_equal(dht_put(nw.n[3], &k1, "provider-3", 10, 0, 0, &h), 0);
    net_pump(&nw);
    dht_event ev;
    assert_int_equal(count_events(nw.n[3], &ev), 1);
    assert_int_equal(ev.kind, DHT_EV_PUT);
    assert_int_equal(ev.status, 0);
    assert_true(ev.stored >= 20); /* the k closest acknowledged */
    /* a second provider of the same service */
    assert_int_equal(dht_put(nw.n[9], &k1, "provider-9", 10, 0, 0, &h), 0);
    net_pump(&nw);
    (void)count_events(nw.n[9], NULL);
    /* any other node finds both */
    assert_int_equal(dht_get(nw.n[20], &k1, 0, &h), 0);
    net_pump(&nw);
    assert_int_equal(count_events(nw.n[20], &ev), 1);
    assert_int_equal(ev.kind, DHT_EV_GET);
    assert_int_equal(ev.status, 0);
    assert_true(ev.found);
    assert_int_equal(ev.nvalues, 2);
    bool saw3 = false, saw9 = false;
    for (uint32_t i = 0; i < ev.nvalues; i++) {
        saw3 = saw3 || (ev.values[i].len == 10 && memcmp(ev.values[i].p, "provider-3", 10) == 0);
        saw9 = saw9 || (ev.values[i].len == 10 && memcmp(ev.values[i].p, "provider-9", 10) == 0);
    }
    assert_true(saw3 && saw9);
    /* the other realm's key holds nothing */
    assert_int_equal(dht_get(nw.n[20], &k2, 0, &h), 0);
    net_pump(&nw);
    assert_int_equal(count_events(nw.n[20], &ev), 1);
    assert_int_equal(ev.status, DHT_ENOTFOUND);
    assert_int_equal(ev.nvalues, 0);
    /* too big is refused up front */
    char big[2000] = {0};
    assert_int_equal(dht_put(nw.n[3], &k1, big, sizeof big, 0, 0, &h), DHT_ETOOBIG);
    net_free(&nw);
}

/* Owner republishes every 240 s, holders expire at 300 s unless republished. */
static void test_republish_and_expiry_at_holders(void **state)
{
    net nw;
    net_init(&nw, 30, NULL);
    dht_id key;
    assert_int_equal(dht_key("r", 1, "svc", 3, &key), 0);
    uint32_t h;
    assert_int_equal(dht_put(nw.n[1], &key, "v", 1, 0, 0, &h), 0);
    net_pump(&nw);
    (void)count_events(nw.n[1], NULL);
    int holders0 = 0;
    for (int i = 0; i < nw.count; i++) {
        dht_value v;
        holders0 += (int)dht_stored_values(nw.n[i], &key, &v, 1);
    }
    assert_true(holders0 >= 20);
    assert_int_equal(dht_next_deadline(nw.n[1]) <= 240000, true);
    /* just before 240 s nothing was republished */
    net_tick(&nw, 239999);
    dht_stats st;
    dht_get_stats(nw.n[1], &st);
    assert_int_equal(st.republished, 0);
    net_tick(&nw, 240000);
    dht_get_stats(nw.n[1], &st);
    assert_int_equal(st.republished, 1);
    /* at 300 s the first copies would expire, but the republish refreshed them */
    net_tick(&nw, 300000);
    int holders = 0;
    for (int i = 0; i < nw.count; i++) {
        dht_value v;
        holders += (int)dht_stored_values(nw.n[i], &key, &v, 1);
    }
    assert_true(holders >= 20);
    /* the owner stops: no republish at 480 s, the copies die at 540 s (240 + 300) */
    assert_int_equal(dht_unput(nw.n[1], &key), 0);
    assert_int_equal(dht_unput(nw.n[1], &key), DHT_ENOTFOUND);
    net_tick(&nw, 480000);
    dht_get_stats(nw.n[1], &st);
    assert_int_equal(st.republished, 1);
    net_tick(&nw, 539999);
    holders = 0;
    for (int i = 0; i < nw.count; i++) {
        dht_value v;
        holders += (int)dht_stored_values(nw.n[i], &key, &v, 1);
    }
    assert_true(holders >= 20);
    net_tick(&nw, 540000);
    for (int i = 0; i < nw.count; i++) {
        dht_value v;
        assert_int_equal(dht_stored_values(nw.n[i], &key, &v, 1), 0);
    }
    assert_int_equal(dht_get(nw.n[7], &key, 540000, &h), 0);
    net_pump(&nw);
    dht_event ev;
    assert_int_equal(count_events(nw.n[7], &ev), 1);
    assert_int_equal(ev.status, DHT_ENOTFOUND);
    net_free(&nw);
}

static void test_bucket_refresh_when_idle(void **state)
{
    dht_config cfg;
    dht_config_default(&cfg);
    cfg.refresh_ms = 10000;
    cfg.max_fails = 100; /* the silent contacts stay */
    dht *d = mk(&cfg, mkid(0, 0), 0);
    dht_id a = mkid(0x80, 1), b = mkid(0x01, 0); /* buckets 255 and 248 */
    assert_int_equal(dht_add_contact(d, &a, "a:1", 0), 0);
    assert_int_equal(dht_add_contact(d, &b, "b:1", 0), 0);
    assert_int_equal(dht_next_deadline(d), 10000);
    /* a lookup into bucket 255's range at 5 s postpones that bucket's refresh */
    dht_id t = mkid(0xc0, 0);
    uint32_t h;
    dht_out o[16];
    assert_int_equal(dht_lookup_node(d, &t, 5000, &h), 0);
    assert_int_equal(drain(d, o, 16), 2);
    dht_tick(d, 9999);
    assert_int_equal(drain(d, o, 16), 0);
    dht_tick(d, 10000); /* buckets 248..254 are due: lookups of random ids in their ranges */
    int n = drain(d, o, 16);
    assert_true(n >= 1);
    for (int i = 0; i < n && i < 16; i++) {
        assert_int_equal(o[i].msg.type, WIRE_FIND_NODE);
        dht_id self = mkid(0, 0);
        int bi = dht_bucket_index(&self, &o[i].msg.key);
        assert_true(bi >= 248 && bi <= 254);
    }
    dht_stats st;
    dht_get_stats(d, &st);
    assert_int_equal(st.refreshes, 7); /* 248..254 */
    dht_tick(d, 15000);                /* bucket 255 now (its lookup at 5 s + 10 s) */
    dht_get_stats(d, &st);
    assert_int_equal(st.refreshes, 8);
    dht_destroy(d);
}

/* ---- the wire mapping ------------------------------------------------------------------- */

static void test_msg_wire_roundtrip(void **state)
{
    dht_contact me = {mkid(9, 9), "10.0.0.9:4433"};
    static const uint8_t types[] = {WIRE_FIND_NODE,  WIRE_FIND_NODE_REPLY,  WIRE_STORE,
                                    WIRE_FIND_VALUE, WIRE_FIND_VALUE_REPLY, WIRE_STORE_ACK};
    for (size_t t = 0; t < sizeof types + 1; t++) {
        dht_msg m;
        memset(&m, 0, sizeof m);
        m.type = t < sizeof types ? types[t] : WIRE_FIND_VALUE_REPLY;
        m.request_id = 0x1234567890ull + t;
        m.key = mkid(0xab, (uint8_t)t);
        m.publisher = mkid(0xcd, 1);
        m.ttl_ms = 300000;
        m.value.p = (const uint8_t *)"hello";
        m.value.len = 5;
        m.stored = true;
        m.ncontacts = 3;
        for (int i = 0; i < 3; i++) {
            m.contacts[i].id = mkid((uint8_t)i, 7);
            snprintf(m.contacts[i].addr, sizeof m.contacts[i].addr, "h%d:1", i);
        }
        if (t == sizeof types) { /* FIND_VALUE_REPLY with values */
            m.has_values = true;
            m.nvalues = 2;
            m.values[0] = (dht_value){(const uint8_t *)"a", 1};
            m.values[1] = (dht_value){(const uint8_t *)"", 0};
        }
        uint8_t *frame;
        size_t len, used;
        assert_int_equal(dht_msg_encode(&m, &me, &frame, &len), 0);
        wire_msg w;
        dht_msg d;
        assert_int_equal(wire_decode(frame, len, NULL, &w, &used), 0);
        assert_int_equal(w.type, m.type);
        assert_int_equal(dht_msg_from_wire(&w, &d), 0);
        assert_int_equal(d.type, m.type);
        assert_true(d.request_id == m.request_id);
        assert_true(d.has_sender);
        assert_true(id_eq(&d.sender.id, &me.id));
        assert_string_equal(d.sender.addr, me.addr);
        switch (m.type) {
        case WIRE_FIND_NODE:
        case WIRE_FIND_VALUE: assert_true(id_eq(&d.key, &m.key)); break;
        case WIRE_STORE:
            assert_true(id_eq(&d.key, &m.key));
            assert_true(id_eq(&d.publisher, &m.publisher));
            assert_int_equal(d.ttl_ms, 300000);
            assert_int_equal(d.value.len, 5);
            assert_memory_equal(d.value.p, "hello", 5);
            break;
        case WIRE_STORE_ACK:
            assert_true(id_eq(&d.key, &m.key));
            assert_true(d.stored);
            break;
        default:
            if (m.has_values) {
                assert_true(d.has_values);
                assert_int_equal(d.nvalues, 2);
                assert_int_equal(d.values[0].len, 1);
                assert_int_equal(d.values[1].len, 0);
            } else {
                assert_false(d.has_values);
                assert_int_equal(d.ncontacts, 3);
                assert_string_equal(d.contacts[2].addr, "h2:1");
                assert_true(id_eq(&d.contacts[1].id, &m.contacts[1].id));
            }
        }
        free(frame);
    }
}

static void test_msg_from_wire_refusals(void **state)
{
    wire_msg w;
    dht_msg d;
    memset(&w, 0, sizeof w);
    w.type = WIRE_PING;
    assert_int_equal(dht_msg_from_wire(&w, &d), DHT_EPROTO);
    /* a target that is not 32 bytes */
    memset(&w, 0, sizeof w);
    w.type = WIRE_FIND_NODE;
    w.find_node.target = (wire_bytes){(const uint8_t *)"short", 5};
    assert_int_equal(dht_msg_from_wire(&w, &d), DHT_EPROTO);
    /* a v0.8 FIND_NODE (no request_id, no sender) is still a request */
    uint8_t id[32] = {1};
    w.find_node.target = (wire_bytes){id, 32};
    assert_int_equal(dht_msg_from_wire(&w, &d), 0);
    assert_false(d.has_sender);
    assert_int_equal(d.request_id, 0);
    /* a reply without request_id cannot be matched */
    memset(&w, 0, sizeof w);
    w.type = WIRE_FIND_NODE_REPLY;
    assert_int_equal(dht_msg_from_wire(&w, &d), DHT_EPROTO);
    /* bad contacts are skipped, good ones kept */
    wire_node nodes[3] = {
        {{id, 32}, {(const uint8_t *)"ok:1", 4}, false, 0},
        {{id, 31}, {(const uint8_t *)"bad-id:1", 8}, false, 0},
        {{id, 32}, {(const uint8_t *)"", 0}, false, 0},
    };
    w.find_node_reply.nodes = (wire_node_list){3, nodes, NULL};
    w.find_node_reply.hdr.has_request_id = true;
    assert_int_equal(dht_msg_from_wire(&w, &d), 0);
    assert_int_equal(d.ncontacts, 1);
    assert_string_equal(d.contacts[0].addr, "ok:1");
    /* a STORE whose value is not a bin */
    static const uint8_t not_bin[] = {0x07};
    memset(&w, 0, sizeof w);
    w.type = WIRE_STORE;
    w.store.key = (wire_bytes){id, 32};
    w.store.value = (wire_bytes){not_bin, 1};
    assert_int_equal(dht_msg_from_wire(&w, &d), DHT_EPROTO);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_distance_and_bucket_index),
        cmocka_unit_test(test_realm_scoped_keys),
        cmocka_unit_test(test_create_validates),
        cmocka_unit_test(test_lrs_ordering),
        cmocka_unit_test(test_full_bucket_evicts_unanswering_lrs),
        cmocka_unit_test(test_full_bucket_keeps_answering_lrs),
        cmocka_unit_test(test_recently_seen_lrs_is_not_probed),
        cmocka_unit_test(test_ping_timeout_and_reply_matching),
        cmocka_unit_test(test_lookup_is_bounded),
        cmocka_unit_test(test_lookup_timeout_bounds_time),
        cmocka_unit_test(test_unanswered_contact_is_removed_after_max_fails),
        cmocka_unit_test(test_store_ttl_and_bounds),
        cmocka_unit_test(test_network_lookup_finds_every_node),
        cmocka_unit_test(test_network_put_get_and_realms),
        cmocka_unit_test(test_republish_and_expiry_at_holders),
        cmocka_unit_test(test_bucket_refresh_when_idle),
        cmocka_unit_test(test_msg_wire_roundtrip),
        cmocka_unit_test(test_msg_from_wire_refusals),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
