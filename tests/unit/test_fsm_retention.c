/* tests/unit/test_fsm_retention.c — the Raft FSM's copy of the flow state follows the node's
 * task_retention (flow_fsm_set_retention), through log entries and across a snapshot restore,
 * so its snapshots hold the same ended tasks as the registry's copy. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <raft.h>

#include "flow/consensus/fsm.h"
#include "flow/core/flow_state.h"

static void apply(flow_fsm *f, const char *text)
{
    json_error_t je;
    json_t *cmd = json_loads(text, 0, &je);
    if (cmd == NULL) {
        fail_msg("bad test JSON %s: %s", text, je.text);
    }
    struct raft_buffer buf;
    assert_int_equal(flow_entry_cmd(cmd, 1, 0, &buf), 0);
    json_decref(cmd);
    assert_int_equal(flow_fsm_apply_entry(f, buf.base, buf.len), 0);
    raft_free(buf.base);
}

/* A swarm without agents, n tasks t0.. submitted and cancelled one by one (each cancel ends a
 * task), then one more command so the last ended task is past its own apply. */
static void feed(flow_fsm *f, int n)
{
    apply(f, "{\"cmd\":\"swarm_create\",\"now\":0,\"swarm\":\"s\",\"topology\":\"star\","
             "\"config\":{\"pool_min\":{\"worker\":0,\"specialist\":0,\"scout\":0}}}");
    char text[256];
    for (int i = 0; i < n; i++) {
        snprintf(text, sizeof text,
                 "{\"cmd\":\"task_submit\",\"now\":1,\"swarm\":\"s\",\"task\":\"t%d\","
                 "\"priority\":\"normal\",\"input\":{}}",
                 i);
        apply(f, text);
    }
    for (int i = 0; i < n; i++) {
        snprintf(text, sizeof text, "{\"cmd\":\"task_cancel\",\"now\":2,\"task\":\"t%d\"}", i);
        apply(f, text);
    }
    apply(f, "{\"cmd\":\"task_submit\",\"now\":3,\"swarm\":\"s\",\"task\":\"last\","
             "\"priority\":\"normal\",\"input\":{}}");
}

static void test_fsm_keeps_node_setting(void **unused)
{
    (void)unused;
    flow_fsm *f = flow_fsm_new(NULL);
    assert_non_null(f);
    flow_fsm_set_retention(f, 3);
    feed(f, 8);
    const flow_state *fs = flow_fsm_state(f);
    assert_int_equal(flow_state_finished_count(fs), 3);
    assert_null(flow_state_task(fs, "t4")); /* oldest ended evicted */
    assert_non_null(flow_state_task(fs, "t5"));
    assert_non_null(flow_state_task(fs, "t7"));

    /* a snapshot restored into a replica with another setting takes that replica's setting */
    char *snap = flow_fsm_snapshot_text(f);
    assert_non_null(snap);
    flow_fsm *g = flow_fsm_new(NULL);
    assert_non_null(g);
    flow_fsm_set_retention(g, 1);
    assert_int_equal(flow_fsm_restore_text(g, snap, strlen(snap)), 0);
    free(snap);
    assert_int_equal(flow_state_retention(flow_fsm_state(g)), 1);
    apply(g, "{\"cmd\":\"task_cancel\",\"now\":4,\"task\":\"last\"}");
    apply(g, "{\"cmd\":\"swarm_create\",\"now\":5,\"swarm\":\"s2\",\"topology\":\"star\","
             "\"config\":{\"pool_min\":{\"worker\":0,\"specialist\":0,\"scout\":0}}}");
    assert_int_equal(flow_state_finished_count(flow_fsm_state(g)), 1);
    assert_non_null(flow_state_task(flow_fsm_state(g), "last"));
    assert_null(flow_state_task(flow_fsm_state(g), "t7"));
    flow_fsm_free(g);
    flow_fsm_free(f);
}

static void test_fsm_zero_keeps_all(void **unused)
{
    (void)unused;
    flow_fsm *f = flow_fsm_new(NULL);
    assert_non_null(f);
    flow_fsm_set_retention(f, 0);
    feed(f, 20);
    assert_int_equal(flow_state_finished_count(flow_fsm_state(f)), 20);
    assert_non_null(flow_state_task(flow_fsm_state(f), "t0"));
    flow_fsm_free(f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fsm_keeps_node_setting),
        cmocka_unit_test(test_fsm_zero_keeps_all),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
