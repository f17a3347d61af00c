/* tests/unit/test_runtime.c — contracts of the actor runtime (macula/sup.h). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "macula/sup.h"

/* ---- a probe actor that records what happens to it -------------------------------------- */

enum {
    T_PING = 1,
    T_ECHO,
    T_CALL_ME,
    T_STOP,
    T_CRASH,
    T_TIMER,
    T_DEFER,
    T_ANSWER_LATER,
    T_LINK,
    T_MONITOR,
    T_TRAP,
    T_ALLOC,
    T_CALL_SLOW
};

typedef struct probe_log {
    char lines[64][96];
    int n;
    int terminates;
    int inits;
} probe_log;

static probe_log g;

static void logf_(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void logf_(const char *fmt, ...)
{
    if (g.n >= 64) {
        return;
    }
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(g.lines[g.n++], sizeof g.lines[0], fmt, ap);
    va_end(ap);
}

static bool logged(const char *line)
{
    for (int i = 0; i < g.n; i++) {
        if (strcmp(g.lines[i], line) == 0) {
            return true;
        }
    }
    return false;
}

typedef struct probe {
    int id;
    sup_from deferred;
    uint64_t last_call;
    uint64_t timer;
    void *mem;
    sup_pid target;
} probe;

static int probe_init(sup_actor *self, void *state, void *arg)
{
    probe *p = state;
    p->id = (int)(intptr_t)arg;
    g.inits++;
    if (p->id < 0) {
        sup_reason r = sup_reason_error("refused");
        sup_stop(self, &r);
        return -1;
    }
    return 0;
}

static void probe_call(sup_actor *self, void *state, const sup_msg *m)
{
    probe *p = state;
    if (m->tag == T_ECHO) {
        sup_reply(sup_self_rt(self), sup_msg_from(m), m->data, m->len);
    } else if (m->tag == T_ANSWER_LATER) {
        p->deferred = sup_msg_from(m);
    } else if (m->tag == T_CRASH) {
        sup_crash(self, "boom_in_call");
    }
}

static void probe_cast(sup_actor *self, void *state, const sup_msg *m)
{
    probe *p = state;
    char r[80];
    switch (m->tag) {
    case T_PING: logf_("%d cast %.*s", p->id, (int)m->len, (const char *)m->data); break;
    case T_STOP: {
        sup_reason reason;
        char text[64];
        snprintf(text, sizeof text, "%.*s", (int)m->len, (const char *)m->data);
        sup_reason_parse(text, &reason);
        sup_stop(self, &reason);
        break;
    }
    case T_CRASH:
        p->mem = sup_alloc(self, 1000); /* released with the actor, though the crash unwinds */
        sup_crash(self, "crashed_%d", p->id);
        break;
    case T_TIMER: {
        uint64_t ms;
        memcpy(&ms, m->data, sizeof ms);
        p->timer = sup_send_after(self, ms, T_TIMER, m->data, m->len);
        break;
    }
    case T_DEFER: sup_reply(sup_self_rt(self), p->deferred, "late", 4); break;
    case T_CALL_ME: {
        sup_pid to;
        uint64_t timeout;
        memcpy(&to, m->data, sizeof to);
        memcpy(&timeout, (const char *)m->data + sizeof to, sizeof timeout);
        p->last_call = sup_call(self, to, T_ECHO, "hi", 2, timeout);
        break;
    }
    case T_CALL_SLOW: {
        sup_pid to;
        uint64_t timeout;
        memcpy(&to, m->data, sizeof to);
        memcpy(&timeout, (const char *)m->data + sizeof to, sizeof timeout);
        p->last_call = sup_call(self, to, T_ANSWER_LATER, NULL, 0, timeout);
        break;
    }
    case T_LINK: {
        sup_pid to;
        memcpy(&to, m->data, sizeof to);
        sup_link(self, to);
        break;
    }
    case T_MONITOR: {
        sup_pid to;
        memcpy(&to, m->data, sizeof to);
        p->target = to;
        sup_monitor(self, to);
        break;
    }
    case T_TRAP: sup_set_flags(self, SUP_FLAG_TRAP_EXIT); break;
    case T_ALLOC: p->mem = sup_alloc(self, 4096); break;
    default: (void)r; break;
    }
}

static void probe_info(sup_actor *self, void *state, const sup_msg *m)
{
    (void)self;
    probe *p = state;
    char r[80];
    switch (m->kind) {
    case SUP_MSG_REPLY:
        if (m->status == 0) {
            logf_("%d reply %.*s", p->id, (int)m->len, (const char *)m->data);
        } else {
            logf_("%d reply_error %s %s", p->id, sup_strerror(m->status),
                  sup_reason_str(&m->reason, r, sizeof r));
        }
        break;
    case SUP_MSG_TIMER: {
        uint64_t ms;
        memcpy(&ms, m->data, sizeof ms);
        logf_("%d timer %llu at %llu", p->id, (unsigned long long)ms,
              (unsigned long long)sup_rt_now(sup_self_rt(self)));
        break;
    }
    case SUP_MSG_EXIT: logf_("%d EXIT %s", p->id, sup_reason_str(&m->reason, r, sizeof r)); break;
    case SUP_MSG_DOWN: logf_("%d DOWN %s", p->id, sup_reason_str(&m->reason, r, sizeof r)); break;
    case SUP_MSG_INFO: logf_("%d info %d", p->id, m->tag); break;
    default: break;
    }
}

static void probe_terminate(sup_actor *self, void *state, const sup_reason *reason)
{
    (void)self;
    probe *p = state;
    char r[80];
    g.terminates++;
    logf_("%d terminate %s", p->id, sup_reason_str(reason, r, sizeof r));
}

static const sup_behaviour probe_b = {
    .name = "probe",
    .state_size = sizeof(probe),
    .init = probe_init,
    .handle_call = probe_call,
    .handle_cast = probe_cast,
    .handle_info = probe_info,
    .terminate = probe_terminate,
};

static sup_pid spawn(sup_rt *rt, int id)
{
    sup_pid p;
    assert_int_equal(sup_spawn(rt, SUP_NOPID, &probe_b, (void *)(intptr_t)id, 0, &p, NULL), 0);
    return p;
}

static void cast(sup_rt *rt, sup_pid to, int tag, const void *d, size_t n)
{
    sup_cast(rt, SUP_NOPID, to, tag, d, n);
}

static void cast_str(sup_rt *rt, sup_pid to, int tag, const char *s)
{
    cast(rt, to, tag, s, strlen(s));
}

static int setup(void **state)
{
    (void)state;
    memset(&g, 0, sizeof g);
    return 0;
}

/* ---- tests ------------------------------------------------------------------------------ */

static void test_spawn_init_terminate_once(void **state)
{
    (void)state;
    sup_rt *rt = sup_rt_new_virtual();
    size_t base = sup_rt_memory(rt);
    sup_pid a = spawn(rt, 1);
    assert_true(sup_is_alive(rt, a));
    assert_int_equal(sup_rt_actor_count(rt), 1);
    cast_str(rt, a, T_STOP, "normal");
    sup_rt_run(rt);
    assert_false(sup_is_alive(rt, a));
    assert_int_equal(g.terminates, 1);
    assert_true(logged("1 terminate normal"));
    assert_int_equal(sup_rt_actor_count(rt), 0);
    assert_int_equal(sup_rt_memory(rt), base);
    sup_rt_free(rt);
}

static void test_init_failure_returns_reason(void **state)
{
    (void)state;
    sup_rt *rt = sup_rt_new_virtual();
    sup_pid p;
    sup_reason why;
    assert_int_equal(sup_spawn(rt, SUP_NOPID, &probe_b, (void *)(intptr_t)-1, 0, &p, &why),
                     SUP_EINIT);
    char r[80];
    assert_string_equal(sup_reason_str(&why, r, sizeof r), "refused");
    assert_int_equal(g.terminates, 0); /* terminate only for actors that passed init */
    assert_int_equal(sup_rt_actor_count(rt), 0);
    sup_rt_free(rt);
}

static void test_dead_and_recycled_pids_are_safe(void **state)
{
    (void)state;
    sup_rt *rt = sup_rt_new_virtual();
    sup_pid a = spawn(rt, 1);
    cast_str(rt, a, T_STOP, "normal");
    sup_rt_run(rt);
    sup_pid b = spawn(rt, 2); /* reuses the slot */
    assert_int_equal(a.idx, b.idx);
    assert_int_not_equal(a.gen, b.gen);
    assert_int_equal(sup_cast(rt, SUP_NOPID, a, T_PING, "x", 1), SUP_ENOPROC);
    assert_int_equal(sup_send(rt, SUP_NOPID, a, 7, NULL, 0), SUP_ENOPROC);
    sup_reason k = sup_reason_make(SUP_R_KILL, NULL);
    assert_int_equal(sup_exit(rt, SUP_NOPID, a, &k), SUP_ENOPROC);
    sup_rt_run(rt);
    assert_true(sup_is_alive(rt, b));
    assert_false(logged("2 cast x"));
    sup_rt_free(rt);
}

static void test_mailbox_is_fifo_and_copies(void **state)
{
    (void)state;
    sup_rt *rt = sup_rt_new_virtual();
    sup_pid a = spawn(rt, 1);
    char buf[8] = "one";
    cast(rt, a, T_PING, buf, 3);
    strcpy(buf, "two"); /* the sender's buffer may change: the message was copied */
    cast(rt, a, T_PING, buf, 3);
    char big[200];
    memset(big, 'z', sizeof big);
    cast(rt, a, T_PING, big, sizeof big); /* larger than the inline payload */
    sup_actor_info info;
    assert_int_equal(sup_actor_info_get(rt, a, &info), 0);
    assert_int_equal(info.mailbox_len, 3);
    sup_rt_run(rt);
    assert_string_equal(g.lines[0], "1 cast one");
    assert_string_equal(g.lines[1], "1 cast two");
    assert_int_equal(strncmp(g.lines[2], "1 cast zzz", 10), 0);
    sup_rt_free(rt);
}

static void call_from(sup_rt *rt, sup_pid caller, int tag, sup_pid callee, uint64_t timeout)
{
    char d[sizeof(sup_pid) + sizeof(uint64_t)];
    memcpy(d, &callee, sizeof callee);
    memcpy(d + sizeof callee, &timeout, sizeof timeout);
    cast(rt, caller, tag, d, sizeof d);
}

static void test_call_reply(void **state)
{
    (void)state;
    sup_rt *rt = sup_rt_new_virtual();
    sup_pid a = spawn(rt, 1), b = spawn(rt, 2);
    call_from(rt, a, T_CALL_ME, b, 1000);
    sup_rt_run(rt);
    assert_true(logged("1 reply hi"));
    /* the timer of the answered call is gone: advancing past it delivers nothing */
    int before = g.n;
    sup_rt_advance(rt, 5000);
    assert_int_equal(g.n, before);
    sup_rt_free(rt);
}

static void test_call_timeout_then_late_reply_dropped(void **state)
{
    (void)state;
    sup_rt *rt = sup_rt_new_virtual();
    sup_pid a = spawn(rt, 1), b = spawn(rt, 2);
    call_from(rt, a, T_CALL_SLOW, b, 100);
    sup_rt_run(rt);
    assert_int_equal(g.n, 0);
    sup_rt_advance(rt, 99);
    assert_int_equal(g.n, 0);
    sup_rt_advance(rt, 100);
    assert_true(logged("1 reply_error timeout timeout"));
    cast(rt, b, T_DEFER, NULL, 0); /* b answers now: too late */
    sup_rt_run(rt);
    assert_false(logged("1 reply late"));
    sup_rt_free(rt);
}

static void test_deferred_reply(void **state)
{
    (void)state;
    sup_rt *rt = sup_rt_new_virtual();
    sup_pid a = spawn(rt, 1), b = spawn(rt, 2);
    call_from(rt, a, T_CALL_SLOW, b, 0 /* infinity */);
    sup_rt_run(rt);
    sup_rt_advance(rt, 1000000);
    assert_int_equal(g.n, 0);
    cast(rt, b, T_DEFER, NULL, 0);
    sup_rt_run(rt);
    assert_true(logged("1 reply late"));
    sup_rt_free(rt);
}

static void test_call_dead_or_dying_callee(void **state)
{
    (void)state;
    sup_rt *rt = sup_rt_new_virtual();
    sup_pid a = spawn(rt, 1), b = spawn(rt, 2);
    cast_str(rt, b, T_STOP, "normal");
    sup_rt_run(rt);
    call_from(rt, a, T_CALL_ME, b, 1000); /* b is dead */
    sup_rt_run(rt);
    assert_true(logged("1 reply_error callee exited noproc"));
    sup_pid c = spawn(rt, 3);
    call_from(rt, a, T_CALL_SLOW, c, 1000);
    sup_rt_run(rt);
    cast_str(rt, c, T_STOP, "went_away"); /* dies without answering */
    sup_rt_run(rt);
    assert_true(logged("1 reply_error callee exited went_away"));
    sup_rt_free(rt);
}

static void test_caller_dies_pending_call_released(void **state)
{
    (void)state;
    sup_rt *rt = sup_rt_new_virtual();
    sup_pid b = spawn(rt, 2);
    size_t base = sup_rt_memory(rt);
    sup_pid a = spawn(rt, 1);
    call_from(rt, a, T_CALL_SLOW, b, 5000);
    sup_rt_run(rt);
    cast_str(rt, a, T_STOP, "bye");
    sup_rt_run(rt);
    cast(rt, b, T_DEFER, NULL, 0); /* answering a dead caller is a no-op */
    sup_rt_run(rt);
    sup_rt_advance(rt, 10000); /* its call timer is gone with it */
    assert_false(logged("1 reply late"));
    assert_int_equal(sup_rt_memory(rt), base);
    sup_rt_free(rt);
}

static void test_timers_order_cancel_and_owner_exit(void **state)
{
    (void)state;
    sup_rt *rt = sup_rt_new_virtual();
    sup_pid a = spawn(rt, 1);
    uint64_t t1 = 300, t2 = 100, t3 = 100;
    cast(rt, a, T_TIMER, &t1, sizeof t1);
    cast(rt, a, T_TIMER, &t2, sizeof t2);
    cast(rt, a, T_TIMER, &t3, sizeof t3);
    sup_rt_run(rt);
    assert_int_equal(sup_rt_next_deadline(rt), 100);
    sup_rt_advance(rt, 1000);
    assert_string_equal(g.lines[0], "1 timer 100 at 100");
    assert_string_equal(g.lines[1], "1 timer 100 at 100");
    assert_string_equal(g.lines[2], "1 timer 300 at 300");
    /* a timer whose owner ends never fires and its memory is released */
    size_t base = sup_rt_memory(rt);
    cast(rt, a, T_TIMER, &t1, sizeof t1);
    sup_rt_run(rt);
    assert_true(sup_rt_memory(rt) > base);
    cast_str(rt, a, T_STOP, "normal");
    sup_rt_run(rt);
    assert_int_equal(sup_rt_next_deadline(rt), UINT64_MAX);
    sup_rt_advance(rt, 5000);
    assert_int_equal(g.n, 4); /* only the terminate line was added */
    sup_rt_free(rt);
}

static void test_links_and_exit_signals(void **state)
{
    (void)state;
    sup_rt *rt = sup_rt_new_virtual();
    sup_pid a = spawn(rt, 1), b = spawn(rt, 2), c = spawn(rt, 3);
    cast(rt, a, T_LINK, &b, sizeof b);
    cast(rt, b, T_LINK, &c, sizeof c);
    cast(rt, c, T_TRAP, NULL, 0);
    sup_rt_run(rt);
    /* a normal exit does not kill linked actors */
    sup_reason n = sup_reason_normal();
    sup_exit(rt, SUP_NOPID, a, &n); /* a normal exit signal from outside: ignored */
    sup_rt_run(rt);
    assert_true(sup_is_alive(rt, a));
    /* an abnormal one propagates: a dies, b (not trapping) dies, c traps and gets EXIT */
    cast_str(rt, a, T_STOP, "bad");
    sup_rt_run(rt);
    assert_false(sup_is_alive(rt, a));
    assert_false(sup_is_alive(rt, b));
    assert_true(sup_is_alive(rt, c));
    assert_true(logged("2 terminate bad"));
    assert_true(logged("3 EXIT bad"));
    /* kill is untrappable and becomes killed */
    sup_reason k = sup_reason_make(SUP_R_KILL, NULL);
    sup_exit(rt, SUP_NOPID, c, &k);
    assert_false(sup_is_alive(rt, c));
    assert_true(logged("3 terminate killed"));
    sup_rt_free(rt);
}

static void test_killed_propagates_trappable(void **state)
{
    (void)state;
    sup_rt *rt = sup_rt_new_virtual();
    sup_pid a = spawn(rt, 1), b = spawn(rt, 2);
    cast(rt, b, T_TRAP, NULL, 0);
    cast(rt, b, T_LINK, &a, sizeof a);
    sup_rt_run(rt);
    sup_reason k = sup_reason_make(SUP_R_KILL, NULL);
    sup_exit(rt, SUP_NOPID, a, &k);
    sup_rt_run(rt);
    assert_true(logged("2 EXIT killed"));
    assert_true(sup_is_alive(rt, b));
    sup_rt_free(rt);
}

static void test_monitors(void **state)
{
    (void)state;
    sup_rt *rt = sup_rt_new_virtual();
    sup_pid a = spawn(rt, 1), b = spawn(rt, 2);
    cast(rt, a, T_MONITOR, &b, sizeof b);
    sup_rt_run(rt);
    cast_str(rt, b, T_STOP, "{shutdown,done}");
    sup_rt_run(rt);
    assert_true(logged("1 DOWN {shutdown,done}"));
    assert_true(sup_is_alive(rt, a));     /* monitors never kill */
    cast(rt, a, T_MONITOR, &b, sizeof b); /* b is dead: DOWN noproc */
    sup_rt_run(rt);
    assert_true(logged("1 DOWN noproc"));
    sup_rt_free(rt);
}

static void test_crash_unwinds_and_releases(void **state)
{
    (void)state;
    sup_rt *rt = sup_rt_new_virtual();
    size_t base = sup_rt_memory(rt);
    sup_pid a = spawn(rt, 7), w = spawn(rt, 8);
    size_t with_w = sup_rt_memory(rt);
    cast(rt, w, T_MONITOR, &a, sizeof a);
    cast(rt, a, T_ALLOC, NULL, 0);
    uint64_t t = 1000;
    cast(rt, a, T_TIMER, &t, sizeof t);
    cast(rt, a, T_CRASH, NULL, 0);
    cast(rt, a, T_PING, "never", 5); /* queued behind the crash: dropped with the mailbox */
    sup_rt_run(rt);
    assert_false(sup_is_alive(rt, a));
    assert_true(logged("7 terminate crashed_7"));
    assert_true(logged("8 DOWN crashed_7"));
    assert_false(logged("7 cast never"));
    (void)with_w;
    cast_str(rt, w, T_STOP, "normal");
    sup_rt_run(rt);
    assert_int_equal(sup_rt_memory(rt), base);
    assert_int_equal(sup_rt_next_deadline(rt), UINT64_MAX);
    sup_rt_free(rt);
}

static void test_crash_in_call_answers_caller(void **state)
{
    (void)state;
    sup_rt *rt = sup_rt_new_virtual();
    sup_pid b = spawn(rt, 2);
    char buf[8];
    size_t len;
    sup_reason why;
    int rc = sup_call_sync(rt, b, T_CRASH, NULL, 0, 1000, buf, sizeof buf, &len, &why);
    assert_int_equal(rc, SUP_ECALLEE);
    char r[80];
    assert_string_equal(sup_reason_str(&why, r, sizeof r), "boom_in_call");
    sup_rt_free(rt);
}

static void test_call_sync_echo_and_timeout(void **state)
{
    (void)state;
    sup_rt *rt = sup_rt_new_virtual();
    sup_pid b = spawn(rt, 2);
    char buf[8] = {0};
    size_t len = 0;
    assert_int_equal(sup_call_sync(rt, b, T_ECHO, "abc", 3, 1000, buf, sizeof buf, &len, NULL), 0);
    assert_int_equal(len, 3);
    assert_memory_equal(buf, "abc", 3);
    assert_int_equal(
        sup_call_sync(rt, b, T_ANSWER_LATER, NULL, 0, 250, buf, sizeof buf, &len, NULL),
        SUP_ETIMEDOUT);
    assert_int_equal(sup_rt_now(rt), 250);
    sup_rt_free(rt);
}

/* A long chain of links dies without recursion (the death queue is iterative). */
static void test_long_link_chain(void **state)
{
    (void)state;
    sup_rt *rt = sup_rt_new_virtual();
    enum { N = 100000 };
    sup_pid first = spawn(rt, 0), prev = first;
    for (int i = 1; i < N; i++) {
        sup_pid p;
        assert_int_equal(
            sup_spawn(rt, prev, &probe_b, (void *)(intptr_t)i, SUP_SPAWN_LINK, &p, NULL), 0);
        prev = p;
    }
    assert_int_equal(sup_rt_actor_count(rt), N);
    sup_reason r = sup_reason_error("cascade");
    sup_exit(rt, SUP_NOPID, first, &r);
    sup_rt_run(rt);
    assert_int_equal(sup_rt_actor_count(rt), 0);
    assert_int_equal(g.terminates, N);
    sup_rt_free(rt);
}

static void test_names(void **state)
{
    (void)state;
    sup_rt *rt = sup_rt_new_virtual();
    sup_pid a = spawn(rt, 1);
    assert_int_equal(sup_register(rt, "alpha", a), 0);
    assert_int_equal(sup_register(rt, "alpha", a), SUP_EPRESENT);
    assert_true(sup_pid_eq(sup_whereis(rt, "alpha"), a));
    cast_str(rt, a, T_STOP, "normal");
    sup_rt_run(rt);
    assert_true(sup_pid_is_null(sup_whereis(rt, "alpha"))); /* released on exit */
    sup_rt_free(rt);
}

static void test_reason_format_parse(void **state)
{
    (void)state;
    const char *cases[] = {"normal", "shutdown", "{shutdown,x}", "killed", "boom"};
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        sup_reason r;
        char buf[80];
        assert_int_equal(sup_reason_parse(cases[i], &r), 0);
        assert_string_equal(sup_reason_str(&r, buf, sizeof buf), cases[i]);
    }
    sup_reason r;
    assert_int_equal(sup_reason_parse("", &r), -1);
    char longs[200];
    memset(longs, 'a', sizeof longs - 1);
    longs[sizeof longs - 1] = '\0';
    assert_int_equal(sup_reason_parse(longs, &r), -1);
    sup_reason_parse("{shutdown,x}", &r);
    assert_true(sup_reason_is_normal(&r));
    sup_reason_parse("boom", &r);
    assert_false(sup_reason_is_normal(&r));
}

/* ---- sup_deadline: a lazily armed next timeout -------------------------------------------- */

enum { DL_SET = 700, DL_TICK };

typedef struct dl_state {
    sup_deadline d;
    uint64_t want; /* the actor's real next deadline; UINT64_MAX: none */
    uint64_t fired[8];
    int nfired;
} dl_state;

static dl_state *dl_seen;

static void dl_info(sup_actor *self, void *state, const sup_msg *m)
{
    dl_state *st = state;
    dl_seen = st;
    uint64_t now = sup_rt_now(sup_self_rt(self));
    if (m->kind == SUP_MSG_INFO && m->tag == DL_SET) {
        memcpy(&st->want, m->data, sizeof st->want);
    } else if (sup_deadline_fired(&st->d, m)) {
        assert_true(st->nfired < 8);
        st->fired[st->nfired++] = now;
        if (st->want <= now) {
            st->want = UINT64_MAX; /* done */
        }
    }
    sup_deadline_set(self, &st->d, st->want, DL_TICK); /* as an actor does after each message */
}

static const sup_behaviour dl_behaviour = {
    .name = "deadline", .state_size = sizeof(dl_state), .handle_info = dl_info};

static void dl_want(sup_rt *rt, sup_pid a, uint64_t at)
{
    assert_int_equal(sup_send(rt, SUP_NOPID, a, DL_SET, &at, sizeof at), 0);
    sup_rt_run(rt);
}

/* Later deadlines keep the earlier timer (which fires, finds nothing due, and arms the real
 * one); an earlier deadline re-arms at once and the cancelled timer never arrives. */
static void test_deadline_lazy_rearm(void **state)
{
    (void)state;
    sup_rt *rt = sup_rt_new_virtual();
    sup_pid a;
    assert_int_equal(sup_spawn(rt, SUP_NOPID, &dl_behaviour, NULL, 0, &a, NULL), 0);
    dl_want(rt, a, 100);
    assert_int_equal(sup_rt_next_deadline(rt), 100);
    dl_want(rt, a, 300); /* later: the timer for 100 stays */
    assert_int_equal(sup_rt_next_deadline(rt), 100);
    sup_rt_advance(rt, 1000);
    assert_int_equal(dl_seen->nfired, 2);
    assert_int_equal(dl_seen->fired[0], 100); /* early: nothing due, 300 armed */
    assert_int_equal(dl_seen->fired[1], 300);
    assert_int_equal(sup_rt_next_deadline(rt), UINT64_MAX);
    dl_want(rt, a, 1500);
    dl_want(rt, a, 1200); /* earlier: re-armed at once */
    assert_int_equal(sup_rt_next_deadline(rt), 1200);
    sup_rt_advance(rt, 3000);
    assert_int_equal(dl_seen->nfired, 3); /* the cancelled 1500 never arrived */
    assert_int_equal(dl_seen->fired[2], 1200);
    assert_int_equal(sup_rt_next_deadline(rt), UINT64_MAX);
    sup_rt_free(rt);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_spawn_init_terminate_once, setup),
        cmocka_unit_test_setup(test_init_failure_returns_reason, setup),
        cmocka_unit_test_setup(test_dead_and_recycled_pids_are_safe, setup),
        cmocka_unit_test_setup(test_mailbox_is_fifo_and_copies, setup),
        cmocka_unit_test_setup(test_call_reply, setup),
        cmocka_unit_test_setup(test_call_timeout_then_late_reply_dropped, setup),
        cmocka_unit_test_setup(test_deferred_reply, setup),
        cmocka_unit_test_setup(test_call_dead_or_dying_callee, setup),
        cmocka_unit_test_setup(test_caller_dies_pending_call_released, setup),
        cmocka_unit_test_setup(test_timers_order_cancel_and_owner_exit, setup),
        cmocka_unit_test_setup(test_deadline_lazy_rearm, setup),
        cmocka_unit_test_setup(test_links_and_exit_signals, setup),
        cmocka_unit_test_setup(test_killed_propagates_trappable, setup),
        cmocka_unit_test_setup(test_monitors, setup),
        cmocka_unit_test_setup(test_crash_unwinds_and_releases, setup),
        cmocka_unit_test_setup(test_crash_in_call_answers_caller, setup),
        cmocka_unit_test_setup(test_call_sync_echo_and_timeout, setup),
        cmocka_unit_test_setup(test_long_link_chain, setup),
        cmocka_unit_test_setup(test_names, setup),
        cmocka_unit_test_setup(test_reason_format_parse, setup),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
