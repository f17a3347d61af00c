/*
 * bench/bench_flow.c — flow end to end, through the public API (macula/flow.h).
 *
 *   bench_flow [N]
 *
 * Prints one line per result, "name value". Wall time from clock_gettime(CLOCK_MONOTONIC)
 * around the measured part only.
 *
 *   builtin_tasks_per_s   N echo tasks (default 20,000) submitted one by one with
 *                         flow_task_submit to a star swarm of 8 builtin agents on a virtual
 *                         runtime, from the first submit to the last completion.
 *   exec_tasks_per_s      N/10 tasks on 8 exec agents running /bin/cat (one process per task)
 *                         on a real libuv loop: all submitted, then every result awaited.
 *   dispatch_latency_{idle,burst}_{mean,p50_le,p99_le}_us
 *                         The observer's dispatch latency histogram (flow_metrics "observer"):
 *                         from the task_submit request entering the flow (the task queue
 *                         stamps it, uv_hrtime) to the task's first assignment to an agent
 *                         (the registry applying it), on a real libuv loop with 8 builtin
 *                         agents. idle: 2,000 echo tasks submitted one at a time, each awaited
 *                         before the next, so an agent is always idle: the path's own cost.
 *                         burst: 2,000 tasks of 1 ms each (builtin sleep) submitted back to
 *                         back, then all awaited: the queue builds up (8 agents, ~250 ms of
 *                         work) and the wait for a free agent counts. mean = the histogram's sum /
 * count (exact); p50 / p99 as the upper bound of the bucket holding the quantile.
 *   crash_requeue_us_median / _p99 / _max
 *                         1,000 times: a task runs (builtin sleep, 1 h) on one of 2 agents; the
 *                         agent is killed (chaos_kill); the time from the kill request to the
 *                         task's assignment to the other agent. Measured as the whole
 *                         chaos_kill request (the call, the kill, the DOWN, agent_crashed,
 *                         the requeue and the new assignment, and also the replacement agent's
 *                         start, all run before the call returns): an upper bound.
 */
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <uv.h>

#include "macula/flow.h"
#include "macula/sup_supervisor.h"

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void die(const char *what, int rc, json_t *out)
{
    char *t = out ? json_dumps(out, 0) : NULL;
    fprintf(stderr, "bench_flow: %s: %d %s\n", what, rc, t ? t : "");
    exit(1);
}

static char *swarm(sup_rt *rt, const char *spec)
{
    json_t *s = json_loads(spec, 0, NULL), *out = NULL;
    int rc = flow_swarm_create(rt, s, &out);
    if (rc != 0) {
        die("swarm_create", rc, out);
    }
    char *id = strdup(json_string_value(json_object_get(out, "id")));
    json_decref(s);
    json_decref(out);
    return id;
}

static char *submit(sup_rt *rt, const char *sw, json_t *spec)
{
    json_t *out = NULL;
    int rc = flow_task_submit(rt, sw, spec, &out);
    if (rc != 0) {
        die("task_submit", rc, out);
    }
    char *id = strdup(json_string_value(json_object_get(out, "id")));
    json_decref(out);
    return id;
}

static void await_done(sup_rt *rt, const char *task)
{
    json_t *out = NULL;
    int rc = flow_task_result(rt, task, 600000, &out);
    if (rc != 0 || strcmp(json_string_value(json_object_get(out, "state")), "completed") != 0) {
        die("task_result", rc, out);
    }
    json_decref(out);
}

static void run_tasks(sup_rt *rt, const char *sw, int n, const char *label)
{
    json_t *spec = json_pack("{s:{s:i}}", "input", "n", 1);
    char **ids = calloc((size_t)n, sizeof *ids);
    double t0 = now_s();
    for (int i = 0; i < n; i++) {
        ids[i] = submit(rt, sw, spec);
    }
    for (int i = 0; i < n; i++) {
        await_done(rt, ids[i]);
        free(ids[i]);
    }
    double t1 = now_s();
    printf("%s %.0f\n", label, (double)n / (t1 - t0));
    free(ids);
    json_decref(spec);
}

/* A snapshot of the observer's dispatch histogram: cumulative counts per bucket, sum. */
enum { HIST_MAX = 32 };
typedef struct hist {
    size_t n;
    double le[HIST_MAX]; /* -1: +Inf */
    double cum[HIST_MAX];
    double sum;
} hist;

static hist hist_read(sup_rt *rt)
{
    json_t *m = NULL;
    if (flow_metrics(rt, &m) != 0) {
        die("metrics", -1, m);
    }
    const json_t *d = json_object_get(json_object_get(m, "observer"), "dispatch_latency_seconds");
    const json_t *b = json_object_get(d, "buckets");
    hist h = {.sum = json_number_value(json_object_get(d, "sum"))};
    for (size_t i = 0; i < json_array_size(b) && i < HIST_MAX; i++) {
        const json_t *le = json_object_get(json_array_get(b, i), "le");
        h.le[i] = json_is_number(le) ? json_number_value(le) : -1.0;
        h.cum[i] = (double)json_integer_value(json_object_get(json_array_get(b, i), "count"));
        h.n = i + 1;
    }
    json_decref(m);
    return h;
}

/* Prints mean and the p50 / p99 bucket bounds (µs) of what was observed between a and b. */
static void hist_print(const char *label, const hist *a, const hist *b)
{
    double total = b->cum[b->n - 1] - a->cum[a->n - 1];
    if (total <= 0) {
        die("no dispatch observed", 0, NULL);
    }
    printf("dispatch_latency_%s_mean_us %.1f\n", label, (b->sum - a->sum) / total * 1e6);
    static const double qs[] = {0.50, 0.99};
    static const char *const qn[] = {"p50", "p99"};
    for (int q = 0; q < 2; q++) {
        for (size_t i = 0; i < b->n; i++) {
            if (b->cum[i] - a->cum[i] >= qs[q] * total) {
                if (b->le[i] < 0) {
                    printf("dispatch_latency_%s_%s_le_us inf\n", label, qn[q]);
                } else {
                    printf("dispatch_latency_%s_%s_le_us %.0f\n", label, qn[q], b->le[i] * 1e6);
                }
                break;
            }
        }
    }
}

/* Waits until the swarm has `want` idle agents (its pool started). */
static void wait_idle_agents(sup_rt *rt, const char *sw, size_t want)
{
    for (int tries = 0; tries < 10000; tries++) {
        json_t *agents = NULL;
        if (flow_agent_list(rt, sw, &agents) != 0) {
            die("agent_list", -1, agents);
        }
        size_t idle = 0;
        for (size_t i = 0; i < json_array_size(agents); i++) {
            const char *s = json_string_value(json_object_get(json_array_get(agents, i), "state"));
            idle += s && strcmp(s, "idle") == 0;
        }
        json_decref(agents);
        if (idle >= want) {
            return;
        }
        uv_sleep(1);
    }
    die("the pool did not start", (int)want, NULL);
}

/* Dispatch latency, read from the observer's histogram (see the top of the file). */
static void dispatch_latency(sup_rt *rt, const char *sw, int n)
{
    wait_idle_agents(rt, sw, 8);
    json_t *spec = json_pack("{s:{s:i}}", "input", "n", 1);
    hist h0 = hist_read(rt);
    for (int i = 0; i < n; i++) { /* idle: each awaited before the next */
        char *id = submit(rt, sw, spec);
        await_done(rt, id);
        free(id);
    }
    hist h1 = hist_read(rt);
    hist_print("idle", &h0, &h1);
    json_t *sleep = json_pack("{s:{s:s, s:i}}", "input", "op", "sleep", "ms", 1);
    char **ids = calloc((size_t)n, sizeof *ids);
    for (int i = 0; i < n; i++) { /* burst: all submitted, then awaited */
        ids[i] = submit(rt, sw, sleep);
    }
    for (int i = 0; i < n; i++) {
        await_done(rt, ids[i]);
        free(ids[i]);
    }
    free(ids);
    hist h2 = hist_read(rt);
    hist_print("burst", &h1, &h2);
    json_decref(sleep);
    json_decref(spec);
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static void crash_requeue(sup_rt *rt)
{
    char *sw = swarm(rt, "{\"topology\":\"star\",\"config\":{\"pool_min\":{\"worker\":2,"
                         "\"specialist\":0,\"scout\":0},\"max_retries\":100,"
                         "\"cb_threshold\":1000}}");
    json_t *spec =
        json_pack("{s:{s:s, s:i}, s:i}", "input", "op", "sleep", "ms", 3600000, "max_retries", 100);
    enum { ROUNDS = 1000 };
    static double us[ROUNDS];
    char *task = NULL;
    for (int i = 0; i < ROUNDS; i++) {
        if (i % 50 == 0) { /* max_retries is at most 100: a fresh task now and then */
            json_t *out = NULL;
            if (task) {
                flow_task_cancel(rt, task, &out);
                json_decref(out);
                free(task);
            }
            /* a success resets the breaker's failure count (every kill is a failure) */
            json_t *echo = json_pack("{s:{}}", "input");
            char *e = submit(rt, sw, echo);
            await_done(rt, e);
            free(e);
            json_decref(echo);
            task = submit(rt, sw, spec);
        }
        json_t *st = NULL;
        flow_task_status(rt, task, &st);
        char *agent = strdup(json_string_value(json_object_get(st, "agent")));
        json_decref(st);
        json_t *args = json_pack("{s:s}", "agent", agent), *out = NULL;
        double t0 = now_s();
        int rc = flow_request(rt, "chaos_kill", args, 0, &out);
        double t1 = now_s();
        json_decref(args);
        json_decref(out);
        if (rc != 0) {
            die("chaos_kill", rc, NULL);
        }
        flow_task_status(rt, task, &st);
        const char *now_agent = json_string_value(json_object_get(st, "agent"));
        if (now_agent == NULL || strcmp(now_agent, agent) == 0) {
            json_t *ss = NULL;
            flow_swarm_status(rt, sw, &ss);
            die("the task was not reassigned", i, ss);
        }
        json_decref(st);
        free(agent);
        us[i] = (t1 - t0) * 1e6;
    }
    qsort(us, ROUNDS, sizeof us[0], cmp_double);
    printf("crash_requeue_us_median %.1f\ncrash_requeue_us_p99 %.1f\ncrash_requeue_us_max %.1f\n",
           us[ROUNDS / 2], us[ROUNDS * 99 / 100], us[ROUNDS - 1]);
    free(task);
    free(sw);
    json_decref(spec);
}

static void stop(sup_rt *rt, sup_pid flow)
{
    sup_reason r = sup_reason_shutdown();
    sup_stop_sync(rt, flow, &r);
    sup_rt_free(rt);
}

int main(int argc, char **argv)
{
    long n = argc > 1 ? strtol(argv[1], NULL, 10) : 20000;
    n = n > 0 && n <= 10000000 ? n : 20000;
    signal(SIGPIPE, SIG_IGN);
    setenv("MACULA_FLOW_CHAOS", "1", 1);
    sup_pid flow;
    sup_reason why;
    /* every result is awaited after all were submitted: keep every ended task */
    static const flow_options opts = {.task_retention = FLOW_TASK_RETENTION_ALL};
    /* builtin, virtual runtime */
    sup_rt *rt = sup_rt_new_virtual();
    if (flow_start(rt, SUP_NOPID, (void *)&opts, NULL, &flow, &why) != 0) {
        die("flow_start", -1, NULL);
    }
    char *sw = swarm(rt, "{\"topology\":\"star\",\"config\":{\"pool_min\":{\"worker\":8,"
                         "\"specialist\":0,\"scout\":0}}}");
    run_tasks(rt, sw, (int)n, "builtin_tasks_per_s");
    free(sw);
    crash_requeue(rt);
    stop(rt, flow);
    /* exec /bin/cat, real loop */
    uv_loop_t loop;
    uv_loop_init(&loop);
    rt = sup_rt_new(&loop);
    if (flow_start(rt, SUP_NOPID, (void *)&opts, NULL, &flow, &why) != 0) {
        die("flow_start", -1, NULL);
    }
    /* builtin agents on the real loop: the dispatch latency (uv_hrtime, not the virtual clock) */
    sw = swarm(rt, "{\"topology\":\"star\",\"config\":{\"pool_min\":{\"worker\":8,"
                   "\"specialist\":0,\"scout\":0}}}");
    dispatch_latency(rt, sw, 2000);
    free(sw);
    sw = swarm(rt, "{\"topology\":\"star\",\"config\":{\"pool_min\":{\"worker\":8,"
                   "\"specialist\":0,\"scout\":0},\"executor\":"
                   "{\"type\":\"exec\",\"argv\":[\"/bin/cat\"]}}}");
    run_tasks(rt, sw, n / 10 > 0 ? (int)(n / 10) : 1, "exec_tasks_per_s");
    free(sw);
    stop(rt, flow);
    for (int i = 0; i < 1000 && uv_loop_alive(&loop); i++) {
        uv_run(&loop, UV_RUN_NOWAIT);
        uv_sleep(1);
    }
    uv_loop_close(&loop);
    return 0;
}
