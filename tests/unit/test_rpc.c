/* tests/unit/test_rpc.c — the serving side of mesh RPC (mesh/rpc_serve.h) on a virtual clock:
 * advertise/unadvertise actions and re-advertisement, round robin over handlers, served calls
 * matched by their own ids, timeouts, a handler that disconnects, and the RPC_ROUTE helpers
 * (route decision with max_hops, greedy next hop by XOR distance). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "mesh/rpc_serve.h"

static int next_kind(rpcs *s, rpcs_action *a)
{
    return rpcs_next_action(s, a) ? (int)a->kind : 0;
}

static void test_advertise_actions(void **st)
{
    (void)st;
    rpcs_config cfg = {.readvertise_ms = 240000};
    rpcs *s = rpcs_new(&cfg);
    rpcs_action a;
    assert_int_equal(rpcs_advertise(s, "demo.add", 7, 0), RPCS_OK);
    assert_int_equal(next_kind(s, &a), RPCS_ACT_ADVERTISE);
    assert_string_equal(a.procedure, "demo.add");
    assert_int_equal(rpcs_advertise(s, "demo.add", 7, 0), RPCS_EEXIST);
    assert_int_equal(rpcs_advertise(s, "demo.add", 8, 0), RPCS_OK);
    assert_int_equal(next_kind(s, &a), 0); /* the second handler adds no advertisement */
    assert_int_equal(rpcs_handlers(s, "demo.add", 8), 2);
    /* re-advertised before the 5 min TTL runs out, while handlers remain */
    assert_int_equal(rpcs_next_deadline(s), 240000);
    rpcs_tick(s, 239999);
    assert_int_equal(next_kind(s, &a), 0);
    rpcs_tick(s, 240000);
    assert_int_equal(next_kind(s, &a), RPCS_ACT_ADVERTISE);
    assert_int_equal(rpcs_unadvertise(s, "demo.add", 7, 1), RPCS_OK);
    assert_int_equal(next_kind(s, &a), 0);
    assert_int_equal(rpcs_unadvertise(s, "demo.add", 7, 1), RPCS_ENOENT);
    assert_int_equal(rpcs_unadvertise(s, "demo.add", 8, 1), RPCS_OK);
    assert_int_equal(next_kind(s, &a), RPCS_ACT_UNADVERTISE);
    assert_int_equal(rpcs_next_deadline(s), UINT64_MAX);
    assert_int_equal(rpcs_advertise(s, "", 1, 0), RPCS_EINVAL);
    char big[RPCS_MAX_PROC + 2];
    memset(big, 'x', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    assert_int_equal(rpcs_advertise(s, big, 1, 0), RPCS_EINVAL);
    rpcs_free(s);
}

static void test_round_robin_and_limits(void **st)
{
    (void)st;
    rpcs_config cfg = {.max_procs = 2, .max_handlers = 2};
    rpcs *s = rpcs_new(&cfg);
    uint64_t c;
    assert_false(rpcs_pick(s, "p", 1, &c));
    assert_int_equal(rpcs_advertise(s, "p", 1, 0), RPCS_OK);
    assert_int_equal(rpcs_advertise(s, "p", 2, 0), RPCS_OK);
    assert_int_equal(rpcs_advertise(s, "p", 3, 0), RPCS_ELIMIT);
    uint64_t seen[4];
    for (int i = 0; i < 4; i++) {
        assert_true(rpcs_pick(s, "p", 1, &seen[i]));
    }
    assert_int_not_equal(seen[0], seen[1]);
    assert_int_equal(seen[0], seen[2]);
    assert_int_equal(seen[1], seen[3]);
    assert_int_equal(rpcs_advertise(s, "q", 1, 0), RPCS_OK);
    assert_int_equal(rpcs_advertise(s, "r", 1, 0), RPCS_ELIMIT);
    rpcs_free(s);
}

static void test_served_calls(void **st)
{
    (void)st;
    rpcs *s = rpcs_new(NULL);
    rpcs_action a;
    rpcs_origin o = {.kind = RPCS_FROM_CLIENT, .conn = 42, .call_id_len = 3};
    memcpy(o.call_id, "abc", 3);
    uint8_t id1[RPCS_ID_LEN], id2[RPCS_ID_LEN];
    assert_int_equal(rpcs_serve(s, &o, 9, 5000, id1), RPCS_OK);
    rpcs_origin o2 = {.kind = RPCS_FROM_NODE, .call_id_len = 16};
    memset(o2.node, 0xab, sizeof o2.node);
    memcpy(o2.call_id, "abc", 3); /* same caller call_id, another origin: no collision */
    assert_int_equal(rpcs_serve(s, &o2, 9, 6000, id2), RPCS_OK);
    assert_memory_not_equal(id1, id2, RPCS_ID_LEN);
    rpcs_origin got;
    assert_int_equal(rpcs_reply(s, id1, RPCS_ID_LEN, 10, &got), RPCS_ENOENT); /* wrong conn */
    assert_int_equal(rpcs_reply(s, id1, RPCS_ID_LEN, 9, &got), RPCS_OK);
    assert_int_equal(got.kind, RPCS_FROM_CLIENT);
    assert_int_equal(got.conn, 42);
    assert_memory_equal(got.call_id, "abc", 3);
    assert_int_equal(rpcs_reply(s, id1, RPCS_ID_LEN, 9, &got), RPCS_ENOENT); /* late */
    /* the other one times out at its deadline */
    assert_int_equal(rpcs_next_deadline(s), 6000);
    rpcs_tick(s, 5999);
    assert_int_equal(next_kind(s, &a), 0);
    rpcs_tick(s, 6000);
    assert_int_equal(next_kind(s, &a), RPCS_ACT_FAIL);
    assert_string_equal(a.code, "timeout");
    assert_int_equal(a.origin.kind, RPCS_FROM_NODE);
    assert_int_equal(rpcs_reply(s, id2, RPCS_ID_LEN, 9, &got), RPCS_ENOENT);
    rpcs_stats stt;
    rpcs_get_stats(s, &stt);
    assert_int_equal(stt.served, 2);
    assert_int_equal(stt.replied, 1);
    assert_int_equal(stt.timeouts, 1);
    assert_int_equal(stt.served_pending, 0);
    rpcs_free(s);
}

static void test_handler_down(void **st)
{
    (void)st;
    rpcs *s = rpcs_new(NULL);
    rpcs_action a;
    assert_int_equal(rpcs_advertise(s, "a", 5, 0), RPCS_OK);
    assert_int_equal(rpcs_advertise(s, "b", 5, 0), RPCS_OK);
    assert_int_equal(rpcs_advertise(s, "b", 6, 0), RPCS_OK);
    while (rpcs_next_action(s, &a)) {
    }
    rpcs_origin o = {.kind = RPCS_FROM_CLIENT, .conn = 1};
    uint8_t id[RPCS_ID_LEN];
    assert_int_equal(rpcs_serve(s, &o, 5, 9000, id), RPCS_OK);
    assert_int_equal(rpcs_serve(s, &o, 6, 9000, id), RPCS_OK);
    assert_int_equal(rpcs_handler_down(s, 5, 10), 1);
    int unadv = 0, fails = 0;
    while (rpcs_next_action(s, &a)) {
        if (a.kind == RPCS_ACT_UNADVERTISE) {
            unadv++;
            assert_string_equal(a.procedure, "a"); /* b still has handler 6 */
        } else if (a.kind == RPCS_ACT_FAIL) {
            fails++;
            assert_string_equal(a.code, "no_handler");
        }
    }
    assert_int_equal(unadv, 1);
    assert_int_equal(fails, 1);
    uint64_t c;
    assert_true(rpcs_pick(s, "b", 1, &c));
    assert_int_equal(c, 6);
    assert_false(rpcs_pick(s, "a", 1, &c));
    rpcs_free(s);
}

static void test_route_helpers(void **st)
{
    (void)st;
    uint8_t self[32] = {0}, dest[32], ids[4][32];
    memset(dest, 0xff, sizeof dest);
    assert_int_equal(rpcs_route_decide(self, self, 32, 0, 10), RPCS_ROUTE_LOCAL);
    assert_int_equal(rpcs_route_decide(self, dest, 32, 9, 10), RPCS_ROUTE_FORWARD);
    assert_int_equal(rpcs_route_decide(self, dest, 32, 10, 10), RPCS_ROUTE_MAX_HOPS);
    assert_int_equal(rpcs_route_decide(self, dest, 32, 10, 50), RPCS_ROUTE_MAX_HOPS); /* capped */
    assert_int_equal(rpcs_route_decide(self, dest, 31, 0, 10), RPCS_ROUTE_INVALID);
    memset(ids, 0, sizeof ids);
    ids[0][0] = 0x10; /* far from dest */
    ids[1][0] = 0xf0; /* closest to dest but the previous hop */
    ids[2][0] = 0xe0; /* next closest */
    memcpy(ids[3], dest, 32);
    assert_int_equal(rpcs_next_hop(self, dest, (const uint8_t(*)[32])ids, 4, NULL, true), 3);
    assert_int_equal(rpcs_next_hop(self, dest, (const uint8_t(*)[32])ids, 4, NULL, false), 1);
    assert_int_equal(rpcs_next_hop(self, dest, (const uint8_t(*)[32])ids, 4, ids[1], false), 2);
    assert_int_equal(rpcs_next_hop(self, dest, (const uint8_t(*)[32])ids, 1, ids[0], false), -1);
    memcpy(ids[0], self, 32);
    assert_int_equal(rpcs_next_hop(self, dest, (const uint8_t(*)[32])ids, 1, NULL, true), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_advertise_actions), cmocka_unit_test(test_round_robin_and_limits),
        cmocka_unit_test(test_served_calls),      cmocka_unit_test(test_handler_down),
        cmocka_unit_test(test_route_helpers),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
