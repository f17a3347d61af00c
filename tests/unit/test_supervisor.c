/* tests/unit/test_supervisor.c — supervisor contracts, misuse, leaks, OS-process children. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <uv.h>

#include <cmocka.h>

#include "macula/sup.h"
#include "macula/sup_osproc.h"
#include "macula/sup_supervisor.h"

/* ---- event log through the supervisor hook ---------------------------------------------- */

static char g_ev[256][160];
static int g_nev;

static void hook(const sup_event_info *ev)
{
    static const char *const names[] = {"start", "restart", "start_failed",
                                        "exit",  "remove",  "sup_exit"};
    char r[80] = "";
    if (ev->reason) {
        sup_reason_str(ev->reason, r, sizeof r);
    }
    if (g_nev < 256) {
        snprintf(g_ev[g_nev++], sizeof g_ev[0], "%s %s%s%s", names[ev->event],
                 ev->child_id ? ev->child_id : (const char *)ev->user, r[0] ? " " : "", r);
    }
}

static int count_ev(const char *line)
{
    int n = 0;
    for (int i = 0; i < g_nev; i++) {
        n += strcmp(g_ev[i], line) == 0;
    }
    return n;
}

/* ---- a worker ---------------------------------------------------------------------------- */

enum { W_STOP = 1 };
static int g_fail_next;
static const char *g_fail_id;

static void worker_cast(sup_actor *self, void *state, const sup_msg *m)
{
    (void)state;
    if (m->tag == W_STOP) {
        char text[64];
        snprintf(text, sizeof text, "%.*s", (int)m->len, (const char *)m->data);
        sup_reason r;
        sup_reason_parse(text, &r);
        sup_stop(self, &r);
    }
}

static const sup_behaviour worker_b = {.name = "w", .handle_cast = worker_cast};

static int start_worker(sup_rt *rt, sup_pid parent, void *arg, void *extra, sup_pid *out,
                        sup_reason *why)
{
    (void)extra;
    if ((g_fail_id && arg && strcmp(arg, g_fail_id) == 0) || g_fail_next > 0) {
        if (g_fail_next > 0) {
            g_fail_next--;
        }
        *why = sup_reason_error("nope");
        return SUP_EINIT;
    }
    if (0) {
        g_fail_next--;
        *why = sup_reason_error("nope");
        return SUP_EINIT;
    }
    return sup_spawn(rt, parent, &worker_b, NULL, SUP_SPAWN_LINK, out, why);
}

static sup_child_spec W(const char *id, sup_restart r)
{
    return (sup_child_spec){.id = id,
                            .start = start_worker,
                            .arg = (void *)id,
                            .restart = r,
                            .shutdown_ms = SUP_SHUTDOWN_DEFAULT};
}

static sup_pid child_pid(sup_rt *rt, sup_pid sup, const char *id)
{
    sup_child_info ci[32];
    int n = sup_which_children_sync(rt, sup, ci, 32);
    for (int i = 0; i < n; i++) {
        if (strcmp(ci[i].id, id) == 0) {
            return ci[i].pid;
        }
    }
    return SUP_NOPID;
}

static void stop_child(sup_rt *rt, sup_pid pid, const char *reason)
{
    sup_cast(rt, SUP_NOPID, pid, W_STOP, reason, strlen(reason));
    sup_rt_run(rt);
}

static int setup(void **state)
{
    (void)state;
    g_nev = 0;
    g_fail_next = 0;
    g_fail_id = NULL;
    return 0;
}

static sup_pid start_sup(sup_rt *rt, sup_strategy st, int intensity, int period,
                         sup_child_spec *specs, size_t n)
{
    sup_flags f = {st, intensity, period, SUP_AUTO_NEVER};
    sup_sv_opts o = {.name = "sup", .hook = hook, .hook_user = "sup"};
    sup_pid p;
    assert_int_equal(sup_supervisor_start(rt, SUP_NOPID, &f, specs, n, &o, &p, NULL), 0);
    return p;
}

/* ---- tests ------------------------------------------------------------------------------ */

static void test_one_for_one_restarts_only_dead(void **state)
{
    (void)state;
    sup_rt *rt = sup_rt_new_virtual();
    sup_child_spec specs[] = {W("a", SUP_PERMANENT), W("b", SUP_PERMANENT)};
    sup_pid s = start_sup(rt, SUP_ONE_FOR_ONE, 3, 5, specs, 2);
    sup_pid a = child_pid(rt, s, "a"), b = child_pid(rt, s, "b");
    stop_child(rt, a, "boom");
    assert_int_equal(count_ev("restart a"), 1);
    assert_int_equal(count_ev("restart b"), 0);
    assert_true(sup_pid_eq(child_pid(rt, s, "b"), b));
    assert_false(sup_pid_eq(child_pid(rt, s, "a"), a));
    sup_reason sd = sup_reason_shutdown();
    assert_int_equal(sup_stop_sync(rt, s, &sd), 0);
    assert_int_equal(sup_rt_actor_count(rt), 0);
    sup_rt_free(rt);
}

static void test_one_for_all_and_rest_for_one(void **state)
{
    (void)state;
    sup_rt *rt = sup_rt_new_virtual();
    sup_child_spec specs[] = {W("a", SUP_PERMANENT), W("b", SUP_PERMANENT), W("c", SUP_PERMANENT)};
    sup_pid s = start_sup(rt, SUP_REST_FOR_ONE, 3, 5, specs, 3);
    sup_pid a = child_pid(rt, s, "a");
    g_nev = 0;
    stop_child(rt, child_pid(rt, s, "b"), "boom");
    /* b and c (started after b) restart in start order; a is untouched */
    assert_string_equal(g_ev[0], "exit b boom");
    assert_string_equal(g_ev[1], "exit c shutdown");
    assert_string_equal(g_ev[2], "restart b");
    assert_string_equal(g_ev[3], "restart c");
    assert_true(sup_pid_eq(child_pid(rt, s, "a"), a));
    sup_reason sd = sup_reason_shutdown();
    sup_stop_sync(rt, s, &sd);

    s = start_sup(rt, SUP_ONE_FOR_ALL, 3, 5, specs, 3);
    g_nev = 0;
    stop_child(rt, child_pid(rt, s, "b"), "boom");
    assert_string_equal(g_ev[0], "exit b boom");
    assert_string_equal(g_ev[1], "exit c shutdown"); /* reverse start order */
    assert_string_equal(g_ev[2], "exit a shutdown");
    assert_string_equal(g_ev[3], "restart a");
    assert_string_equal(g_ev[4], "restart b");
    assert_string_equal(g_ev[5], "restart c");
    sup_stop_sync(rt, s, &sd);
    sup_rt_free(rt);
}

static void test_restart_types(void **state)
{
    (void)state;
    sup_rt *rt = sup_rt_new_virtual();
    sup_child_spec specs[] = {W("p", SUP_PERMANENT), W("t", SUP_TRANSIENT), W("m", SUP_TEMPORARY)};
    sup_pid s = start_sup(rt, SUP_ONE_FOR_ONE, 10, 5, specs, 3);
    stop_child(rt, child_pid(rt, s, "p"), "normal");
    assert_int_equal(count_ev("restart p"), 1); /* permanent: even after normal */
    stop_child(rt, child_pid(rt, s, "t"), "{shutdown,x}");
    assert_int_equal(count_ev("restart t"), 0); /* transient: normal reasons end it */
    sup_restart_child_sync(rt, s, "t", NULL, NULL);
    stop_child(rt, child_pid(rt, s, "t"), "bad");
    assert_int_equal(count_ev("restart t"), 1);
    stop_child(rt, child_pid(rt, s, "m"), "bad");
    assert_int_equal(count_ev("restart m"), 0); /* temporary: never, and removed */
    assert_int_equal(count_ev("remove m"), 1);
    sup_counts c;
    assert_int_equal(sup_count_children_sync(rt, s, &c), 0);
    assert_int_equal(c.specs, 2);
    assert_int_equal(c.active, 2);
    sup_reason sd = sup_reason_shutdown();
    sup_stop_sync(rt, s, &sd);
    sup_rt_free(rt);
}

static void test_intensity_at_and_over_limit(void **state)
{
    (void)state;
    sup_rt *rt = sup_rt_new_virtual();
    sup_child_spec specs[] = {W("a", SUP_PERMANENT)};
    sup_pid s = start_sup(rt, SUP_ONE_FOR_ONE, 2, 5, specs, 1);
    stop_child(rt, child_pid(rt, s, "a"), "x");
    stop_child(rt, child_pid(rt, s, "a"), "x");
    assert_true(sup_is_alive(rt, s)); /* 2 restarts in 5 s: at the limit */
    sup_rt_advance(rt, 6000);         /* the window slides: both fall out */
    stop_child(rt, child_pid(rt, s, "a"), "x");
    stop_child(rt, child_pid(rt, s, "a"), "x");
    assert_true(sup_is_alive(rt, s));
    stop_child(rt, child_pid(rt, s, "a"), "x"); /* third in the window: gives up */
    assert_false(sup_is_alive(rt, s));
    assert_int_equal(count_ev("sup_exit sup shutdown"), 1);
    assert_int_equal(sup_rt_actor_count(rt), 0);
    sup_rt_free(rt);
}

static void test_intensity_zero(void **state)
{
    (void)state;
    sup_rt *rt = sup_rt_new_virtual();
    sup_child_spec specs[] = {W("a", SUP_PERMANENT)};
    sup_pid s = start_sup(rt, SUP_ONE_FOR_ONE, 0, 5, specs, 1);
    stop_child(rt, child_pid(rt, s, "a"), "x");
    assert_false(sup_is_alive(rt, s));
    sup_rt_free(rt);
}

static void test_start_failure_rolls_back(void **state)
{
    (void)state;
    sup_rt *rt = sup_rt_new_virtual();
    sup_child_spec specs[] = {W("a", SUP_PERMANENT), W("b", SUP_PERMANENT), W("c", SUP_PERMANENT)};
    sup_flags f = {SUP_ONE_FOR_ONE, 1, 5, SUP_AUTO_NEVER};
    sup_sv_opts o = {.name = "sup", .hook = hook, .hook_user = "sup"};
    sup_pid p;
    sup_reason why;
    g_fail_id = "b"; /* a starts, b fails: a is terminated, c never starts */
    assert_int_equal(sup_supervisor_start(rt, SUP_NOPID, &f, specs, 3, &o, &p, &why), SUP_EINIT);
    char r[80];
    assert_string_equal(sup_reason_str(&why, r, sizeof r), "{shutdown,failed_to_start_child}");
    assert_string_equal(g_ev[0], "start a");
    assert_string_equal(g_ev[1], "start_failed b nope");
    assert_string_equal(g_ev[2], "sup_exit sup {shutdown,failed_to_start_child}");
    assert_int_equal(count_ev("start c"), 0);
    assert_int_equal(sup_rt_actor_count(rt), 0);
    sup_rt_free(rt);
}

static void test_api_misuse(void **state)
{
    (void)state;
    sup_rt *rt = sup_rt_new_virtual();
    sup_child_spec specs[] = {W("a", SUP_PERMANENT)};
    sup_pid s = start_sup(rt, SUP_ONE_FOR_ONE, 3, 5, specs, 1);
    assert_int_equal(sup_delete_child_sync(rt, s, "a"), SUP_ERUNNING);
    assert_int_equal(sup_restart_child_sync(rt, s, "a", NULL, NULL), SUP_ERUNNING);
    assert_int_equal(sup_terminate_child_sync(rt, s, "zz", SUP_NOPID), SUP_ENOTFOUND);
    assert_int_equal(sup_delete_child_sync(rt, s, "zz"), SUP_ENOTFOUND);
    sup_child_spec dup = W("a", SUP_PERMANENT);
    assert_int_equal(sup_start_child_sync(rt, s, &dup, NULL, NULL, NULL, NULL), SUP_ESTARTED);
    assert_int_equal(sup_terminate_child_sync(rt, s, "a", SUP_NOPID), 0);
    assert_int_equal(sup_start_child_sync(rt, s, &dup, NULL, NULL, NULL, NULL), SUP_EPRESENT);
    assert_int_equal(sup_delete_child_sync(rt, s, "a"), 0);
    assert_int_equal(sup_start_child_sync(rt, s, &dup, NULL, NULL, NULL, NULL), 0);
    sup_child_spec bad = W("s", SUP_PERMANENT);
    bad.significant = true; /* needs auto_shutdown and a non-permanent child */
    assert_int_equal(sup_start_child_sync(rt, s, &bad, NULL, NULL, NULL, NULL), SUP_EBADSPEC);
    /* calls on a dead supervisor */
    sup_reason sd = sup_reason_shutdown();
    sup_stop_sync(rt, s, &sd);
    assert_int_equal(sup_delete_child_sync(rt, s, "a"), SUP_ENOPROC);
    sup_rt_free(rt);
}

static void test_check_specs(void **state)
{
    (void)state;
    char err[128];
    sup_flags f = {SUP_ONE_FOR_ONE, 1, 5, SUP_AUTO_NEVER};
    sup_child_spec two[] = {W("a", SUP_PERMANENT), W("a", SUP_PERMANENT)};
    assert_int_equal(sup_check_specs(&f, two, 2, err, sizeof err), SUP_EBADSPEC);
    assert_non_null(strstr(err, "duplicate"));
    f.strategy = SUP_SIMPLE_ONE_FOR_ONE;
    two[1].id = "b";
    assert_int_equal(sup_check_specs(&f, two, 2, err, sizeof err), SUP_EBADSPEC);
    f.strategy = SUP_ONE_FOR_ONE;
    f.period_s = 0;
    assert_int_equal(sup_check_specs(&f, two, 2, err, sizeof err), SUP_EBADSPEC);
    f.period_s = 5;
    f.auto_shutdown = SUP_AUTO_ANY_SIGNIFICANT;
    two[1].restart = SUP_TRANSIENT;
    two[1].significant = true;
    assert_int_equal(sup_check_specs(&f, two, 2, err, sizeof err), 0);
}

static void test_simple_one_for_one(void **state)
{
    (void)state;
    sup_rt *rt = sup_rt_new_virtual();
    sup_child_spec t = W("w", SUP_TRANSIENT);
    sup_pid s = start_sup(rt, SUP_SIMPLE_ONE_FOR_ONE, 5, 5, &t, 1);
    sup_pid kids[3];
    long inst;
    for (int i = 0; i < 3; i++) {
        assert_int_equal(sup_start_child_sync(rt, s, NULL, NULL, &kids[i], &inst, NULL), 0);
        assert_int_equal(inst, i + 1);
    }
    assert_int_equal(sup_restart_child_sync(rt, s, "w", NULL, NULL), SUP_ESIMPLE);
    assert_int_equal(sup_delete_child_sync(rt, s, "w"), SUP_ESIMPLE);
    assert_int_equal(sup_terminate_child_sync(rt, s, "w", SUP_NOPID), SUP_ESIMPLE);
    stop_child(rt, kids[0], "boom");   /* transient, abnormal: restarted */
    stop_child(rt, kids[1], "normal"); /* transient, normal: removed */
    assert_int_equal(sup_terminate_child_sync(rt, s, NULL, kids[2]), 0);
    sup_child_info ci[8];
    int n = sup_which_children_sync(rt, s, ci, 8);
    assert_int_equal(n, 1);
    assert_int_equal(ci[0].instance, 1);
    assert_int_equal(ci[0].restarts, 1);
    sup_counts c;
    sup_count_children_sync(rt, s, &c);
    assert_int_equal(c.specs, 1);
    assert_int_equal(c.workers, 1);
    sup_reason sd = sup_reason_shutdown();
    sup_stop_sync(rt, s, &sd);
    assert_int_equal(sup_rt_actor_count(rt), 0);
    sup_rt_free(rt);
}

static void test_auto_shutdown_any_significant(void **state)
{
    (void)state;
    sup_rt *rt = sup_rt_new_virtual();
    sup_child_spec specs[] = {W("a", SUP_PERMANENT), W("s", SUP_TRANSIENT)};
    specs[1].significant = true;
    sup_flags f = {SUP_ONE_FOR_ONE, 3, 5, SUP_AUTO_ANY_SIGNIFICANT};
    sup_sv_opts o = {.name = "sup", .hook = hook, .hook_user = "sup"};
    sup_pid s;
    assert_int_equal(sup_supervisor_start(rt, SUP_NOPID, &f, specs, 2, &o, &s, NULL), 0);
    stop_child(rt, child_pid(rt, s, "s"), "boom"); /* abnormal: restarted, no shutdown */
    assert_true(sup_is_alive(rt, s));
    stop_child(rt, child_pid(rt, s, "s"), "normal"); /* significant ends normally */
    assert_false(sup_is_alive(rt, s));
    assert_int_equal(count_ev("exit a shutdown"), 1);
    sup_rt_free(rt);
}

/* Restart loops leak nothing: memory returns to where it was (LSan checks the rest). */
static void test_restart_loop_no_leak(void **state)
{
    (void)state;
    sup_rt *rt = sup_rt_new_virtual();
    sup_child_spec specs[] = {W("a", SUP_PERMANENT), W("b", SUP_PERMANENT)};
    sup_pid s = start_sup(rt, SUP_ONE_FOR_ALL, 1000000, 1, specs, 2);
    sup_rt_run(rt);
    size_t base = 0;
    for (int i = 0; i < 5000; i++) {
        stop_child(rt, child_pid(rt, s, i % 2 ? "a" : "b"), "crash");
        if (i == 10) {
            base = sup_rt_memory(rt);
        }
    }
    assert_true(sup_rt_memory(rt) <= base + 64);
    assert_int_equal(sup_rt_actor_count(rt), 3);
    sup_reason sd = sup_reason_shutdown();
    sup_stop_sync(rt, s, &sd);
    sup_rt_free(rt);
}

static void test_tree_json(void **state)
{
    (void)state;
    sup_rt *rt = sup_rt_new_virtual();
    sup_child_spec inner[] = {W("x", SUP_PERMANENT)};
    sup_sv_nested nested = {{SUP_REST_FOR_ONE, 10, 60, SUP_AUTO_NEVER}, inner, 1, {.name = "gw"}};
    sup_child_spec specs[] = {W("a", SUP_PERMANENT),
                              {.id = "gw",
                               .start = sup_sv_start_nested,
                               .arg = &nested,
                               .type = SUP_SUPERVISOR,
                               .shutdown_ms = SUP_SHUTDOWN_DEFAULT}};
    sup_pid s = start_sup(rt, SUP_ONE_FOR_ONE, 10, 5, specs, 2);
    char *json = sup_tree_json(rt, s);
    assert_non_null(json);
    assert_non_null(strstr(json, "\"strategy\":\"one_for_one\""));
    assert_non_null(strstr(json, "\"strategy\":\"rest_for_one\""));
    assert_non_null(strstr(json, "\"id\":\"x\""));
    assert_non_null(strstr(json, "\"mailbox\":0"));
    free(json);
    sup_reason sd = sup_reason_shutdown();
    sup_stop_sync(rt, s, &sd);
    sup_rt_free(rt);
}

/* ---- OS-process children (real loop) ----------------------------------------------------- */

typedef struct run_ctx {
    uv_loop_t loop;
    sup_rt *rt;
} run_ctx;

static void run_until(run_ctx *c, bool (*done)(run_ctx *), uint64_t max_ms)
{
    uint64_t start = uv_now(&c->loop);
    while (!done(c) && uv_now(&c->loop) - start < max_ms) {
        uv_run(&c->loop, UV_RUN_ONCE);
        uv_update_time(&c->loop);
    }
}

static int g_target_events;
static bool enough_events(run_ctx *c)
{
    (void)c;
    return g_nev >= g_target_events;
}

static void test_osproc_exit_status_and_restart(void **state)
{
    (void)state;
    run_ctx c;
    uv_loop_init(&c.loop);
    c.rt = sup_rt_new(&c.loop);
    char *argv[] = {"sh", "-c", "exit 3", NULL};
    sup_osproc_spec ps = {.argv = argv};
    sup_child_spec specs[] = {{.id = "prog",
                               .start = sup_osproc_start,
                               .arg = &ps,
                               .restart = SUP_TRANSIENT,
                               .shutdown_ms = 1000}};
    sup_pid s = start_sup(c.rt, SUP_ONE_FOR_ONE, 1, 60, specs, 1);
    /* exit 3 → {exit_status,3} → restart; again → over intensity 1 → supervisor exits */
    g_target_events = 4;
    run_until(&c, enough_events, 10000);
    assert_int_equal(count_ev("exit prog {exit_status,3}"), 2);
    assert_int_equal(count_ev("restart prog"), 1);
    assert_false(sup_is_alive(c.rt, s));
    sup_rt_free(c.rt);
    uv_run(&c.loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&c.loop), 0);
}

static void test_osproc_status_zero_is_normal(void **state)
{
    (void)state;
    run_ctx c;
    uv_loop_init(&c.loop);
    c.rt = sup_rt_new(&c.loop);
    char *argv[] = {"true", NULL};
    sup_osproc_spec ps = {.argv = argv};
    sup_child_spec specs[] = {{.id = "ok",
                               .start = sup_osproc_start,
                               .arg = &ps,
                               .restart = SUP_TRANSIENT,
                               .shutdown_ms = 1000}};
    sup_pid s = start_sup(c.rt, SUP_ONE_FOR_ONE, 1, 60, specs, 1);
    g_target_events = 2;
    run_until(&c, enough_events, 10000);
    assert_int_equal(count_ev("exit ok normal"), 1);
    assert_true(sup_is_alive(c.rt, s)); /* transient + normal: not restarted */
    sup_reason sd = sup_reason_shutdown();
    sup_exit(c.rt, SUP_NOPID, s, &sd);
    sup_rt_run(c.rt);
    sup_rt_free(c.rt);
    uv_run(&c.loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&c.loop), 0);
}

static bool sup_gone(run_ctx *c)
{
    return sup_rt_actor_count(c->rt) == 0;
}

/* Polls (bounded, 30 s) until `path` exists. */
static bool file_appears(const char *path)
{
    uint64_t start = uv_hrtime();
    while (access(path, F_OK) != 0) {
        if (uv_hrtime() - start > 30000000000ull) {
            return false;
        }
        uv_sleep(5);
    }
    return true;
}

static void test_osproc_shutdown_term_then_kill(void **state)
{
    (void)state;
    run_ctx c;
    uv_loop_init(&c.loop);
    c.rt = sup_rt_new(&c.loop);
    /* sh creates the ready file once its trap is installed */
    char ready[] = "/tmp/macula-sup-trap-XXXXXX";
    int fd = mkstemp(ready);
    assert_true(fd >= 0);
    close(fd);
    assert_int_equal(unlink(ready), 0);
    char script[128];
    snprintf(script, sizeof script, "trap '' TERM; : > '%s'; sleep 30 & wait; sleep 30", ready);
    char *polite[] = {"sleep", "30", NULL};
    char *stubborn[] = {"sh", "-c", script, NULL};
    sup_osproc_spec p1 = {.argv = polite}, p2 = {.argv = stubborn};
    sup_child_spec specs[] = {
        {.id = "polite", .start = sup_osproc_start, .arg = &p1, .shutdown_ms = 2000},
        {.id = "stubborn", .start = sup_osproc_start, .arg = &p2, .shutdown_ms = 300}};
    sup_pid s = start_sup(c.rt, SUP_ONE_FOR_ONE, 1, 60, specs, 2);
    int os_pid = sup_osproc_os_pid(c.rt, child_pid(c.rt, s, "stubborn"));
    assert_true(os_pid > 0);
    bool trapped = file_appears(ready); /* sh ignores SIGTERM from now on */
    unlink(ready);
    assert_true(trapped);
    sup_reason sd = sup_reason_shutdown();
    sup_exit(c.rt, SUP_NOPID, s, &sd);
    run_until(&c, sup_gone, 10000);
    assert_int_equal(count_ev("exit stubborn killed"), 1); /* ignored SIGTERM: SIGKILL */
    assert_int_equal(count_ev("exit polite shutdown"), 1); /* SIGTERM, exited */
    sup_rt_free(c.rt);
    uv_run(&c.loop, UV_RUN_DEFAULT); /* the killed program is reaped */
    assert_int_equal(uv_loop_close(&c.loop), 0);
}

static void test_osproc_spawn_failure(void **state)
{
    (void)state;
    run_ctx c;
    uv_loop_init(&c.loop);
    c.rt = sup_rt_new(&c.loop);
    char *argv[] = {"/nonexistent/program", NULL};
    sup_osproc_spec ps = {.argv = argv};
    sup_child_spec specs[] = {{.id = "x", .start = sup_osproc_start, .arg = &ps}};
    sup_flags f = {SUP_ONE_FOR_ONE, 1, 5, SUP_AUTO_NEVER};
    sup_pid p;
    sup_reason why;
    assert_int_equal(sup_supervisor_start(c.rt, SUP_NOPID, &f, specs, 1, NULL, &p, &why),
                     SUP_EINIT);
    sup_rt_free(c.rt);
    uv_run(&c.loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&c.loop), 0);
    /* on a virtual runtime there is no loop to run programs on */
    sup_rt *v = sup_rt_new_virtual();
    sup_pid q;
    assert_int_equal(sup_osproc_start(v, SUP_NOPID, &ps, NULL, &q, &why), SUP_EINIT);
    sup_rt_free(v);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_one_for_one_restarts_only_dead, setup),
        cmocka_unit_test_setup(test_one_for_all_and_rest_for_one, setup),
        cmocka_unit_test_setup(test_restart_types, setup),
        cmocka_unit_test_setup(test_intensity_at_and_over_limit, setup),
        cmocka_unit_test_setup(test_intensity_zero, setup),
        cmocka_unit_test_setup(test_start_failure_rolls_back, setup),
        cmocka_unit_test_setup(test_api_misuse, setup),
        cmocka_unit_test_setup(test_check_specs, setup),
        cmocka_unit_test_setup(test_simple_one_for_one, setup),
        cmocka_unit_test_setup(test_auto_shutdown_any_significant, setup),
        cmocka_unit_test_setup(test_restart_loop_no_leak, setup),
        cmocka_unit_test_setup(test_tree_json, setup),
        cmocka_unit_test_setup(test_osproc_exit_status_and_restart, setup),
        cmocka_unit_test_setup(test_osproc_status_zero_is_normal, setup),
        cmocka_unit_test_setup(test_osproc_shutdown_term_then_kill, setup),
        cmocka_unit_test_setup(test_osproc_spawn_failure, setup),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
