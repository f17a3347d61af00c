/*
 * tests/unit/flow_fixture.h — the virtual-clock flow fixture the flow unit tests share: a flow
 * tree on a virtual runtime (chaos allowed), torn down to zero actors, and the few calls the
 * tests make through the public API (include/macula/flow.h). Include after cmocka.h.
 */
#ifndef MACULA_TESTS_FLOW_FIXTURE_H
#define MACULA_TESTS_FLOW_FIXTURE_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "macula/flow.h"
#include "macula/sup.h"
#include "macula/sup_supervisor.h"

static sup_rt *RT;
static sup_pid FLOW;

static inline int up(void **st)
{
    (void)st;
    setenv("MACULA_FLOW_CHAOS", "1", 1);
    RT = sup_rt_new_virtual();
    sup_reason why;
    return flow_start(RT, SUP_NOPID, NULL, NULL, &FLOW, &why);
}

static inline int down(void **st)
{
    (void)st;
    sup_reason r = sup_reason_shutdown();
    int rc = sup_stop_sync(RT, FLOW, &r);
    if (sup_rt_actor_count(RT) != 0) {
        rc = -1;
    }
    sup_rt_free(RT);
    return rc;
}

static inline json_t *ok(int rc, json_t *out)
{
    if (rc != 0) {
        char *t = json_dumps(out, 0);
        fail_msg("flow error %d: %s", rc, t ? t : "?");
    }
    return out;
}

static inline const char *sget(const json_t *o, const char *k)
{
    return json_string_value(json_object_get(o, k));
}

/* One worker, never more: a second task waits until the first lets the agent go. */
static inline void one_worker_swarm(const char *id)
{
    char spec[256];
    snprintf(spec, sizeof spec,
             "{\"id\":\"%s\",\"topology\":\"star\",\"config\":{\"max_agents\":1,"
             "\"pool_min\":{\"worker\":1,\"specialist\":0,\"scout\":0},"
             "\"pool_max\":{\"worker\":1,\"specialist\":0,\"scout\":0}}}",
             id);
    json_t *s = json_loads(spec, 0, NULL), *out = NULL;
    assert_non_null(s);
    ok(flow_swarm_create(RT, s, &out), out);
    json_decref(out);
    json_decref(s);
}

static inline char *submit(const char *swarm, const char *spec)
{
    json_t *s = json_loads(spec, 0, NULL), *out = NULL;
    assert_non_null(s);
    ok(flow_task_submit(RT, swarm, s, &out), out);
    json_decref(s);
    char *id = strdup(sget(out, "id"));
    json_decref(out);
    return id;
}

static inline const char *state_of(const char *task)
{
    static char buf[32];
    json_t *out = NULL;
    ok(flow_task_status(RT, task, &out), out);
    snprintf(buf, sizeof buf, "%s", sget(out, "state"));
    json_decref(out);
    return buf;
}

/* Runs what is queued, moves the virtual clock by ms, and runs what that made due. */
static inline void advance(uint64_t ms)
{
    sup_rt_run(RT);
    sup_rt_advance(RT, sup_rt_now(RT) + ms);
    sup_rt_run(RT);
}

/* Kills the agent running `task` (chaos_kill) and waits, on the virtual clock, until the pool
 * has replaced it and the requeued task runs again. */
static inline void kill_agent_until_rerun(const char *task)
{
    json_t *out = NULL;
    ok(flow_task_status(RT, task, &out), out);
    json_t *args = json_pack("{s:O}", "agent", json_object_get(out, "agent"));
    json_decref(out);
    ok(flow_request(RT, "chaos_kill", args, 0, &out), out);
    json_decref(out);
    json_decref(args);
    for (int i = 0; i < 100 && strcmp(state_of(task), "running") != 0; i++) {
        advance(10); /* the pool replaces the agent; the task runs again */
    }
    assert_string_equal(state_of(task), "running");
}

#endif
