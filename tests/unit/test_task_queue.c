/* tests/unit/test_task_queue.c — the weighted priority queue and the load balancer. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "flow/core/flow_lb.h"
#include "flow/core/flow_queue.h"

static flow_qnode g_nodes[3][2000];

static void fill(flow_queue *q, int per_class)
{
    uint64_t seq = 1;
    for (int i = 0; i < per_class; i++) {
        for (int c = 0; c < 3; c++) {
            flow_queue_push(q, &g_nodes[c][i], c, 0, seq++);
        }
    }
}

/* With all three classes non-empty, 160 picks serve exactly 100 high, 50 normal, 10 low. */
static void weights_ratio(void **st)
{
    (void)st;
    flow_queue q;
    flow_queue_init(&q, NULL);
    fill(&q, 1000);
    for (int round = 0; round < 5; round++) {
        int served[3] = {0};
        for (int i = 0; i < 160; i++) {
            flow_qnode *n = flow_queue_pick(&q, NULL, NULL);
            assert_non_null(n);
            served[n->prio]++;
        }
        assert_int_equal(served[0], 100);
        assert_int_equal(served[1], 50);
        assert_int_equal(served[2], 10);
    }
    assert_int_equal(q.total, 3000 - 800);
}

/* Low priority is never starved: among any 16 consecutive picks there is a low one. */
static void no_starvation(void **st)
{
    (void)st;
    flow_queue q;
    flow_queue_init(&q, NULL);
    fill(&q, 1000);
    int since_low = 0, worst = 0;
    for (int i = 0; i < 1600; i++) {
        flow_qnode *n = flow_queue_pick(&q, NULL, NULL);
        since_low = n->prio == 2 ? 0 : since_low + 1;
        worst = since_low > worst ? since_low : worst;
    }
    assert_true(worst < 16);
}

/* FIFO inside a class; a node requeued with its old seq returns to its place. */
static void fifo_and_requeue(void **st)
{
    (void)st;
    flow_queue q;
    flow_queue_init(&q, NULL);
    for (int i = 0; i < 5; i++) {
        flow_queue_push(&q, &g_nodes[1][i], 1, 0, (uint64_t)(10 + i));
    }
    flow_qnode *a = flow_queue_pick(&q, NULL, NULL);
    flow_qnode *b = flow_queue_pick(&q, NULL, NULL);
    assert_ptr_equal(a, &g_nodes[1][0]);
    assert_ptr_equal(b, &g_nodes[1][1]);
    flow_queue_push(&q, b, 1, 0, 11); /* back in front of 12 */
    flow_queue_push(&q, a, 1, 0, 10);
    for (int i = 0; i < 5; i++) {
        assert_ptr_equal(flow_queue_pick(&q, NULL, NULL), &g_nodes[1][i]);
    }
    assert_null(flow_queue_pick(&q, NULL, NULL));
    assert_int_equal(q.total, 0);
}

static void remove_and_empty(void **st)
{
    (void)st;
    flow_queue q;
    flow_queue_init(&q, NULL);
    flow_queue_push(&q, &g_nodes[0][0], 0, 0, 1);
    flow_queue_push(&q, &g_nodes[0][1], 0, 0, 2);
    flow_queue_push(&q, &g_nodes[0][2], 0, 0, 3);
    flow_queue_remove(&q, &g_nodes[0][1]);
    flow_queue_remove(&q, &g_nodes[0][1]); /* not queued: no-op */
    assert_int_equal(q.total, 2);
    assert_ptr_equal(flow_queue_pick(&q, NULL, NULL), &g_nodes[0][0]);
    assert_ptr_equal(flow_queue_pick(&q, NULL, NULL), &g_nodes[0][2]);
    assert_null(flow_queue_pick(&q, NULL, NULL));
}

static bool only_lane2(int lane, void *user)
{
    (void)user;
    return lane == 2;
}

/* A lane the caller cannot serve does not block the others, and is not charged. */
static void lanes(void **st)
{
    (void)st;
    flow_queue q;
    flow_queue_init(&q, NULL);
    flow_queue_push(&q, &g_nodes[0][0], 0, 1, 1); /* high, lane 1 */
    flow_queue_push(&q, &g_nodes[2][0], 2, 2, 2); /* low, lane 2 */
    assert_ptr_equal(flow_queue_pick(&q, only_lane2, NULL), &g_nodes[2][0]);
    assert_null(flow_queue_pick(&q, only_lane2, NULL));
    assert_ptr_equal(flow_queue_pick(&q, NULL, NULL), &g_nodes[0][0]);
}

static void custom_weights(void **st)
{
    (void)st;
    flow_queue q;
    int w[3] = {1, 1, 1};
    flow_queue_init(&q, w);
    fill(&q, 100);
    int served[3] = {0};
    for (int i = 0; i < 30; i++) {
        served[flow_queue_pick(&q, NULL, NULL)->prio]++;
    }
    assert_int_equal(served[0], 10);
    assert_int_equal(served[1], 10);
    assert_int_equal(served[2], 10);
}

/* ---- load balancer ----------------------------------------------------------------------- */

static void lb_round_robin(void **st)
{
    (void)st;
    flow_lb lb = {FLOW_LB_ROUND_ROBIN, 0};
    int64_t cur[3] = {0};
    flow_lb_cand c[3] = {{10, 0, 1, &cur[0]}, {20, 0, 1, &cur[1]}, {30, 0, 1, &cur[2]}};
    int seq[7];
    for (int i = 0; i < 7; i++) {
        seq[i] = flow_lb_pick(&lb, c, 3);
    }
    int want[7] = {0, 1, 2, 0, 1, 2, 0};
    assert_memory_equal(seq, want, sizeof want);
    /* the previous choice left the set: continue after it */
    lb.last_seq = 20;
    flow_lb_cand two[2] = {{10, 0, 1, &cur[0]}, {30, 0, 1, &cur[2]}};
    assert_int_equal(flow_lb_pick(&lb, two, 2), 1);
    assert_int_equal(flow_lb_pick(&lb, c, 0), -1);
}

static void lb_least_conn(void **st)
{
    (void)st;
    flow_lb lb = {FLOW_LB_LEAST_CONN, 0};
    int64_t cur[3] = {0};
    flow_lb_cand c[3] = {{10, 3, 1, &cur[0]}, {20, 1, 1, &cur[1]}, {30, 2, 1, &cur[2]}};
    assert_int_equal(flow_lb_pick(&lb, c, 3), 1);
    c[1].active = 5;
    assert_int_equal(flow_lb_pick(&lb, c, 3), 2);
    /* ties rotate */
    c[0].active = c[1].active = c[2].active = 0;
    int a = flow_lb_pick(&lb, c, 3), b = flow_lb_pick(&lb, c, 3), d = flow_lb_pick(&lb, c, 3);
    assert_true(a != b && b != d && a != d);
}

static void lb_weighted(void **st)
{
    (void)st;
    flow_lb lb = {FLOW_LB_WEIGHTED, 0};
    int64_t cur[3] = {0};
    flow_lb_cand c[3] = {{10, 0, 5, &cur[0]}, {20, 0, 1, &cur[1]}, {30, 0, 1, &cur[2]}};
    int n[3] = {0};
    for (int i = 0; i < 70; i++) {
        n[flow_lb_pick(&lb, c, 3)]++;
    }
    assert_int_equal(n[0], 50);
    assert_int_equal(n[1], 10);
    assert_int_equal(n[2], 10);
    assert_int_equal(flow_lb_parse("least_conn"), FLOW_LB_LEAST_CONN);
    assert_int_equal(flow_lb_parse("nope"), -1);
    assert_string_equal(flow_lb_name(FLOW_LB_WEIGHTED), "weighted");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(weights_ratio),
        cmocka_unit_test(no_starvation),
        cmocka_unit_test(fifo_and_requeue),
        cmocka_unit_test(remove_and_empty),
        cmocka_unit_test(lanes),
        cmocka_unit_test(custom_weights),
        cmocka_unit_test(lb_round_robin),
        cmocka_unit_test(lb_least_conn),
        cmocka_unit_test(lb_weighted),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
