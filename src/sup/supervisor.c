/*
 * src/sup/supervisor.c — OTP's supervisor as an actor (macula/sup_supervisor.h).
 *
 * This is a port of OTP 25 stdlib supervisor.erl. Where OTP blocks in a receive while it
 * terminates a child (shutdown/1, terminate_dynamic_children/1), this actor runs a "job": it
 * sets a selective-receive filter that lets only the awaited DOWN and the kill timer through,
 * so every other message waits in the mailbox in order, exactly as in OTP. When the job is
 * done a continuation runs (restart the rest, answer terminate_child, or exit).
 *
 * Children of a static supervisor are kept like OTP's {Ids, Db}: `ids` is in termination
 * order (most recently started first). which_children lists them in that order.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "macula/sup_supervisor.h"

enum {
    SV_START_CHILD = 0x5f000001,
    SV_TERMINATE_CHILD,
    SV_RESTART_CHILD,
    SV_DELETE_CHILD,
    SV_WHICH_CHILDREN,
    SV_COUNT_CHILDREN,
    SV_STOP,
    SV_TRY_AGAIN, /* cast to self */
    SV_KILL_TIMER,
};

typedef struct sv_child {
    char *id;
    sup_child_spec spec; /* spec.id points to id */
    sup_pid pid;         /* the running pid; when restarting: the old pid (may be null) */
    bool restarting;
    long instance; /* simple_one_for_one */
    void *extra;   /* simple_one_for_one start argument */
    unsigned restarts;
    struct sv_child *dnext, *dprev; /* simple_one_for_one, in start order */
} sv_child;

typedef enum { K_NONE, K_RESTART_MULTI, K_API_TERMINATE, K_SHUTDOWN } sv_cont;

typedef struct sv_job {
    bool active;
    sv_cont cont;
    sv_child **list; /* children to terminate, in order */
    size_t n, i;
    sv_child **before; /* rest_for_one: the untouched part of ids */
    size_t nbefore;
    sv_child *target; /* restart_multi: the child that caused it */
    sup_pid wait_pid; /* child being waited for (static) */
    uint64_t wait_mon;
    uint64_t wait_timer;
    sup_from from;     /* K_API_TERMINATE */
    sup_reason reason; /* K_SHUTDOWN */
    bool dynamic;      /* waiting for all dynamic children at once */
    size_t dyn_waiting;
    bool reply_stop; /* K_SHUTDOWN: answer an SV_STOP caller first */
} sv_job;

/* Restarts that happened in one whole second (OTP counts in erlang:monotonic_time(second)). */
typedef struct sv_rs {
    int64_t sec;
    size_t count;
} sv_rs;

typedef struct sv {
    sup_flags f;
    char *name;
    sup_event_hook hook;
    void *hook_user;
    sv_child **ids; /* static children, termination order */
    size_t n, cap;
    sv_child *tmpl; /* simple_one_for_one template */
    sv_child *dhead, *dtail;
    size_t ndyn;
    long next_instance;
    int dyn_restarts;
    sv_rs *rs;      /* restart window: (second, count) runs, oldest first from rs_head */
    size_t rs_head; /* first live run in rs */
    size_t rs_len;  /* end of the live runs in rs */
    size_t rs_cap;  /* allocated runs */
    size_t nrs;     /* restarts inside the window: the sum of the live runs' counts */
    unsigned total_restarts;
    sv_job job;
    bool in_init;
    bool init_failed;
    sup_reason init_reason;
} sv;

typedef struct sv_req {
    const sup_child_spec *spec;
    void *extra;
    const char *id;
    sup_pid pid;
    sup_child_info *out;
    size_t cap;
    sup_reason reason;
} sv_req;

typedef struct sv_rep {
    int rc;
    sup_pid pid;
    long instance;
    sup_reason why;
    int total;
    sup_counts counts;
} sv_rep;

static bool is_simple(const sv *s)
{
    return s->f.strategy == SUP_SIMPLE_ONE_FOR_ONE;
}

const char *sup_strategy_name(sup_strategy st)
{
    static const char *const names[] = {"one_for_one", "one_for_all", "rest_for_one",
                                        "simple_one_for_one"};
    return (unsigned)st < 4 ? names[st] : "?";
}

const char *sup_restart_name(sup_restart r)
{
    static const char *const names[] = {"permanent", "transient", "temporary"};
    return (unsigned)r < 3 ? names[r] : "?";
}

/* ---- events ----------------------------------------------------------------------------- */

static void emit(sv *s, sup_actor *self, sup_event ev, const sv_child *c, sup_pid pid,
                 const sup_reason *r)
{
    if (s->hook == NULL) {
        return;
    }
    sup_event_info info = {
        .event = ev,
        .sup = sup_self(self),
        .child_id = c ? c->id : NULL,
        .instance = c ? c->instance : 0,
        .child = pid,
        .type = c ? c->spec.type : SUP_SUPERVISOR,
        .reason = r,
        .user = s->hook_user,
    };
    s->hook(&info);
}

/* ---- child records ---------------------------------------------------------------------- */

static int shutdown_of(const sup_child_spec *sp)
{
    if (sp->shutdown_ms == SUP_SHUTDOWN_DEFAULT) {
        return sp->type == SUP_SUPERVISOR ? SUP_SHUTDOWN_INFINITY : 5000;
    }
    return sp->shutdown_ms;
}

static sv_child *child_new(const sup_child_spec *sp)
{
    sv_child *c = calloc(1, sizeof *c);
    if (c == NULL) {
        abort();
    }
    c->id = strdup(sp->id ? sp->id : "");
    c->spec = *sp;
    c->spec.id = c->id;
    c->spec.shutdown_ms = shutdown_of(sp);
    return c;
}

static void child_free(sv_child *c)
{
    if (c->spec.arg_free) {
        c->spec.arg_free(c->spec.arg);
    }
    free(c->id);
    free(c);
}

static bool has_pid(const sv_child *c)
{
    return !c->restarting && !sup_pid_is_null(c->pid);
}

static void ids_remove(sv *s, sv_child *c)
{
    for (size_t i = 0; i < s->n; i++) {
        if (s->ids[i] == c) {
            memmove(&s->ids[i], &s->ids[i + 1], (s->n - i - 1) * sizeof *s->ids);
            s->n--;
            return;
        }
    }
}

static void ids_prepend(sv *s, sv_child *c)
{
    if (s->n == s->cap) {
        s->cap = s->cap ? s->cap * 2 : 8;
        s->ids = realloc(s->ids, s->cap * sizeof *s->ids);
        if (s->ids == NULL) {
            abort();
        }
    }
    memmove(&s->ids[1], &s->ids[0], s->n * sizeof *s->ids);
    s->ids[0] = c;
    s->n++;
}

static sv_child *find_id(const sv *s, const char *id)
{
    for (size_t i = 0; i < s->n; i++) {
        if (strcmp(s->ids[i]->id, id) == 0) {
            return s->ids[i];
        }
    }
    return NULL;
}

static sv_child *find_pid(const sv *s, sup_pid pid)
{
    if (is_simple(s)) {
        for (sv_child *c = s->dhead; c; c = c->dnext) {
            if (!c->restarting && sup_pid_eq(c->pid, pid)) {
                return c;
            }
        }
        return NULL;
    }
    for (size_t i = 0; i < s->n; i++) {
        if (has_pid(s->ids[i]) && sup_pid_eq(s->ids[i]->pid, pid)) {
            return s->ids[i];
        }
    }
    return NULL;
}

static void dyn_append(sv *s, sv_child *c)
{
    c->dnext = NULL;
    c->dprev = s->dtail;
    if (s->dtail) {
        s->dtail->dnext = c;
    } else {
        s->dhead = c;
    }
    s->dtail = c;
}

static void dyn_unlink(sv *s, sv_child *c)
{
    if (c->dprev) {
        c->dprev->dnext = c->dnext;
    } else {
        s->dhead = c->dnext;
    }
    if (c->dnext) {
        c->dnext->dprev = c->dprev;
    } else {
        s->dtail = c->dprev;
    }
}

static void dyn_erase(sv *s, sv_child *c)
{
    dyn_unlink(s, c);
    s->ndyn--;
    if (c->restarting) {
        s->dyn_restarts--;
    }
    free(c->id);
    free(c);
}

/* del_child: dynamic → erased; temporary → removed; else pid = undefined. `announce` emits
 * SUP_EV_REMOVE (only while the supervisor lives on). */
static void del_child(sv *s, sup_actor *self, sv_child *c, bool announce)
{
    if (is_simple(s)) {
        if (announce) {
            emit(s, self, SUP_EV_REMOVE, c, c->pid, NULL);
        }
        dyn_erase(s, c);
        return;
    }
    if (c->spec.restart == SUP_TEMPORARY) {
        if (announce) {
            emit(s, self, SUP_EV_REMOVE, c, c->pid, NULL);
        }
        ids_remove(s, c);
        child_free(c);
        return;
    }
    c->pid = SUP_NOPID;
    c->restarting = false;
}

/* ---- starting --------------------------------------------------------------------------- */

static int do_start(sv *s, sup_actor *self, sv_child *c, sup_pid *out, sup_reason *why)
{
    sup_reason w = sup_reason_error("start_failed");
    sup_pid pid = SUP_NOPID;
    void *extra = is_simple(s) ? c->extra : NULL;
    int rc = c->spec.start(sup_self_rt(self), sup_self(self), c->spec.arg, extra, &pid, &w);
    if (rc < 0 || sup_pid_is_null(pid)) {
        if (why) {
            *why = w;
        }
        emit(s, self, SUP_EV_START_FAILED, c, SUP_NOPID, &w);
        return rc < 0 ? rc : SUP_EINIT;
    }
    *out = pid;
    return 0;
}

/* ---- restart intensity ------------------------------------------------------------------ */

/* add_restart/1: true if the supervisor may go on, false if it must give up.
 *
 * OTP keeps a list of restart times (whole seconds, newest first), drops those older than
 * now - period and compares its length with the intensity. The same count is kept here as runs
 * of (second, count), oldest first: the window holds at most period + 1 distinct seconds, so a
 * restart costs O(1) amortised and memory stays bounded whatever the intensity (OTP's list
 * grows to `intensity` elements and is walked at every restart). */
static bool add_restart(sv *s, sup_actor *self)
{
    int64_t now = (int64_t)(sup_rt_now(sup_self_rt(self)) / 1000);
    int64_t threshold = now - s->f.period_s;
    while (s->rs_head < s->rs_len && s->rs[s->rs_head].sec < threshold) {
        s->nrs -= s->rs[s->rs_head].count;
        s->rs_head++;
    }
    if (s->rs_head < s->rs_len && s->rs[s->rs_len - 1].sec == now) {
        s->rs[s->rs_len - 1].count++;
    } else {
        if (s->rs_head > 0 && s->rs_len == s->rs_cap) {
            memmove(s->rs, s->rs + s->rs_head, (s->rs_len - s->rs_head) * sizeof *s->rs);
            s->rs_len -= s->rs_head;
            s->rs_head = 0;
        }
        if (s->rs_len == s->rs_cap) {
            s->rs_cap = s->rs_cap ? s->rs_cap * 2 : 4;
            s->rs = realloc(s->rs, s->rs_cap * sizeof *s->rs);
            if (s->rs == NULL) {
                abort();
            }
        }
        s->rs[s->rs_len++] = (sv_rs){.sec = now, .count = 1};
    }
    s->nrs++;
    s->total_restarts++;
    return s->nrs <= (size_t)s->f.intensity;
}

/* ---- jobs (blocking parts of OTP, as selective receive) --------------------------------- */

static bool job_filter(void *state, const sup_env *e)
{
    const sv *s = state;
    if (s->job.dynamic) {
        if (e->kind == SUP_MSG_DOWN) {
            for (sv_child *c = s->dhead; c; c = c->dnext) {
                if (c->restarting == false && sup_pid_eq(c->pid, e->from)) {
                    return true;
                }
            }
            return false;
        }
        return e->kind == SUP_MSG_TIMER && e->ref == s->job.wait_timer && s->job.wait_timer;
    }
    if (e->kind == SUP_MSG_DOWN) {
        return e->ref == s->job.wait_mon;
    }
    return e->kind == SUP_MSG_TIMER && s->job.wait_timer != 0 && e->ref == s->job.wait_timer;
}

static void job_step(sv *s, sup_actor *self);
static void job_done(sv *s, sup_actor *self);
static void begin_shutdown(sv *s, sup_actor *self, const sup_reason *r, bool reply_stop,
                           sup_from from);

/* Starts the shutdown of one child (shutdown/1): monitor, signal, maybe a kill timer. */
static void shutdown_child(sv *s, sup_actor *self, sv_child *c)
{
    sup_rt *rt = sup_self_rt(self);
    s->job.wait_pid = c->pid;
    s->job.wait_mon = sup_monitor(self, c->pid);
    s->job.wait_timer = 0;
    if (c->spec.shutdown_ms == SUP_SHUTDOWN_BRUTAL_KILL) {
        sup_reason k = sup_reason_make(SUP_R_KILL, NULL);
        sup_exit(rt, sup_self(self), c->pid, &k);
    } else {
        sup_reason sd = sup_reason_shutdown();
        sup_exit(rt, sup_self(self), c->pid, &sd);
        if (c->spec.shutdown_ms >= 0) {
            s->job.wait_timer =
                sup_send_after(self, (uint64_t)c->spec.shutdown_ms, SV_KILL_TIMER, NULL, 0);
        }
    }
}

static void job_begin(sv *s, sup_actor *self, sv_cont cont, sv_child **list, size_t n)
{
    s->job.active = true;
    s->job.cont = cont;
    s->job.list = list;
    s->job.n = n;
    s->job.i = 0;
    s->job.dynamic = false;
    sup__set_filter(self, job_filter);
    job_step(s, self);
}

/* Terminates the next child with a pid, or finishes the job. */
static void job_step(sv *s, sup_actor *self)
{
    while (s->job.i < s->job.n) {
        sv_child *c = s->job.list[s->job.i];
        if (has_pid(c)) {
            shutdown_child(s, self, c);
            return; /* wait for DOWN */
        }
        /* Not running: nothing to stop; temporary children are dropped all the same. */
        if (c->spec.restart == SUP_TEMPORARY && s->job.cont == K_RESTART_MULTI) {
            s->job.list[s->job.i] = NULL;
            emit(s, self, SUP_EV_REMOVE, c, c->pid, NULL);
            ids_remove(s, c);
            child_free(c);
        } else if (s->job.cont != K_API_TERMINATE) {
            c->pid = SUP_NOPID;
            c->restarting = false;
        }
        s->job.i++;
    }
    job_done(s, self);
}

/* A DOWN for the awaited child (static jobs). */
static void job_child_down(sv *s, sup_actor *self, const sup_msg *m)
{
    sv_child *c = s->job.list[s->job.i];
    if (s->job.wait_timer) {
        sup_cancel_timer(self, s->job.wait_timer);
        s->job.wait_timer = 0;
    }
    s->job.wait_mon = 0;
    sup_unlink(self, c->pid); /* unlink_flush: the EXIT, if queued, is dropped */
    emit(s, self, SUP_EV_CHILD_EXIT, c, c->pid, &m->reason);
    switch (s->job.cont) {
    case K_RESTART_MULTI:
        if (c->spec.restart == SUP_TEMPORARY) {
            s->job.list[s->job.i] = NULL;
            emit(s, self, SUP_EV_REMOVE, c, c->pid, NULL);
            ids_remove(s, c);
            child_free(c);
        } else {
            c->pid = SUP_NOPID;
        }
        break;
    case K_SHUTDOWN: c->pid = SUP_NOPID; break;
    case K_API_TERMINATE:
    case K_NONE: break;
    }
    s->job.i++;
    job_step(s, self);
}

static void try_again(sv *s, sup_actor *self, sv_child *c)
{
    /* Identify by id (static) or by instance (dynamic); checked again when it arrives. */
    char buf[72];
    int len;
    if (is_simple(s)) {
        len = snprintf(buf, sizeof buf, "#%ld", c->instance);
    } else {
        len = snprintf(buf, sizeof buf, "%s", c->id);
    }
    sup_cast(sup_self_rt(self), sup_self(self), sup_self(self), SV_TRY_AGAIN, buf, (size_t)len + 1);
}

/* start_children for a restart: survivors in termination order, started in reverse. */
static void restart_multi_start(sv *s, sup_actor *self)
{
    sv_child **list = s->job.list;
    size_t n = s->job.n;
    /* Rebuild ids: survivors (termination order) then the untouched part. */
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        if (list[i]) {
            list[k++] = list[i];
        }
    }
    s->n = 0;
    for (size_t i = 0; i < k; i++) {
        s->ids[s->n++] = list[i];
    }
    for (size_t i = 0; i < s->job.nbefore; i++) {
        s->ids[s->n++] = s->job.before[i];
    }
    sv_child *target = s->job.target;
    free(s->job.before);
    s->job.before = NULL;
    s->job.nbefore = 0;
    for (size_t j = k; j-- > 0;) {
        sv_child *c = list[j];
        sup_pid pid;
        if (do_start(s, self, c, &pid, NULL) == 0) {
            c->pid = pid;
            c->restarting = false;
            c->restarts++;
            emit(s, self, SUP_EV_RESTART, c, pid, NULL);
        } else {
            if (c == target) {
                c->restarting = true; /* {restarting, OldPid}: pid holds the old one */
            } else {
                c->pid = SUP_NOPID;
                c->restarting = true;
            }
            free(list);
            try_again(s, self, c);
            return;
        }
    }
    free(list);
}

static void job_done(sv *s, sup_actor *self)
{
    sv_cont cont = s->job.cont;
    s->job.active = false;
    s->job.cont = K_NONE;
    s->job.dynamic = false;
    sup__set_filter(self, NULL);
    switch (cont) {
    case K_RESTART_MULTI: restart_multi_start(s, self); break;
    case K_API_TERMINATE: {
        sv_child *c = s->job.list[0];
        free(s->job.list);
        s->job.list = NULL;
        del_child(s, self, c, true);
        sv_rep rep = {.rc = 0};
        sup_reply(sup_self_rt(self), s->job.from, &rep, sizeof rep);
        break;
    }
    case K_SHUTDOWN:
        free(s->job.list);
        s->job.list = NULL;
        sup_stop(self, &s->job.reason);
        break;
    case K_NONE: break;
    }
}

/* restart_multiple_children: terminate `list` (termination order), then start survivors. */
static void restart_multi(sv *s, sup_actor *self, sv_child *target, sv_child **list, size_t n,
                          sv_child **before, size_t nbefore)
{
    s->job.target = target;
    s->job.before = before;
    s->job.nbefore = nbefore;
    job_begin(s, self, K_RESTART_MULTI, list, n);
}

static sv_child **copy_ids(const sv *s, size_t from, size_t to)
{
    size_t n = to - from;
    sv_child **v = calloc(n ? n : 1, sizeof *v);
    if (v == NULL) {
        abort();
    }
    if (n > 0) {
        memcpy(v, s->ids + from, n * sizeof *v);
    }
    return v;
}

/* restart/2. */
static void restart(sv *s, sup_actor *self, sv_child *c)
{
    if (!add_restart(s, self)) {
        /* reached_max_restart_intensity: {shutdown, del_child(Child)}, then terminate. */
        del_child(s, self, c, false);
        sup_reason sd = sup_reason_shutdown();
        begin_shutdown(s, self, &sd, false, (sup_from){SUP_NOPID, 0});
        return;
    }
    switch (s->f.strategy) {
    case SUP_SIMPLE_ONE_FOR_ONE: {
        if (c->restarting) {
            c->restarting = false;
            s->dyn_restarts--;
        }
        sup_pid pid;
        if (do_start(s, self, c, &pid, NULL) == 0) {
            dyn_unlink(s, c);
            dyn_append(s, c); /* the new pid is the newest */
            c->pid = pid;
            c->restarts++;
            emit(s, self, SUP_EV_RESTART, c, pid, NULL);
        } else {
            c->restarting = true;
            s->dyn_restarts++;
            try_again(s, self, c);
        }
        break;
    }
    case SUP_ONE_FOR_ONE: {
        sup_pid pid;
        if (do_start(s, self, c, &pid, NULL) == 0) {
            c->pid = pid;
            c->restarting = false;
            c->restarts++;
            emit(s, self, SUP_EV_RESTART, c, pid, NULL);
        } else {
            c->restarting = true;
            try_again(s, self, c);
        }
        break;
    }
    case SUP_REST_FOR_ONE: {
        size_t k = 0;
        while (k < s->n && s->ids[k] != c) {
            k++;
        }
        c->pid = c->restarting ? c->pid : SUP_NOPID;
        c->restarting = false;
        c->pid = SUP_NOPID;
        sv_child **after = copy_ids(s, 0, k + 1);
        sv_child **before = copy_ids(s, k + 1, s->n);
        restart_multi(s, self, c, after, k + 1, before, s->n - k - 1);
        break;
    }
    case SUP_ONE_FOR_ALL: {
        c->pid = SUP_NOPID;
        c->restarting = false;
        sv_child **all = copy_ids(s, 0, s->n);
        restart_multi(s, self, c, all, s->n, NULL, 0);
        break;
    }
    }
}

/* do_auto_shutdown: true if the supervisor shuts itself down. */
static bool auto_shutdown(sv *s, const sv_child *c_significant)
{
    if (s->f.auto_shutdown == SUP_AUTO_NEVER || !c_significant) {
        return false;
    }
    if (s->f.auto_shutdown == SUP_AUTO_ANY_SIGNIFICANT) {
        return true;
    }
    if (is_simple(s)) {
        return s->ndyn == 0;
    }
    for (size_t i = 0; i < s->n; i++) {
        const sv_child *o = s->ids[i];
        if (o->spec.significant && (o->restarting || !sup_pid_is_null(o->pid))) {
            return false;
        }
    }
    return true;
}

/* A child ended (EXIT). do_restart/3. */
static void child_exited(sv *s, sup_actor *self, sv_child *c, const sup_reason *r)
{
    emit(s, self, SUP_EV_CHILD_EXIT, c, c->pid, r);
    if (c->spec.restart == SUP_PERMANENT ||
        (c->spec.restart == SUP_TRANSIENT && !sup_reason_is_normal(r))) {
        restart(s, self, c);
        return;
    }
    bool significant = c->spec.significant;
    /* Decide before announcing: a supervisor that shuts down announces no removals. */
    bool will_remove = is_simple(s) || c->spec.restart == SUP_TEMPORARY;
    if (will_remove) {
        if (is_simple(s)) {
            dyn_unlink(s, c);
            s->ndyn--;
        } else {
            ids_remove(s, c);
        }
    } else {
        c->pid = SUP_NOPID;
        c->restarting = false;
    }
    bool down = auto_shutdown(s, significant ? c : NULL);
    if (will_remove) {
        if (!down) {
            emit(s, self, SUP_EV_REMOVE, c, c->pid, NULL);
        }
        if (is_simple(s)) {
            free(c->id);
            free(c);
        } else {
            child_free(c);
        }
    }
    if (down) {
        sup_reason sd = sup_reason_shutdown();
        begin_shutdown(s, self, &sd, false, (sup_from){SUP_NOPID, 0});
    }
}

/* ---- supervisor termination ------------------------------------------------------------- */

static void begin_shutdown(sv *s, sup_actor *self, const sup_reason *r, bool reply_stop,
                           sup_from from)
{
    s->job.reason = *r;
    s->job.reply_stop = reply_stop;
    s->job.from = from;
    if (is_simple(s)) {
        /* terminate_dynamic_children: all at once, one timer. */
        sup_rt *rt = sup_self_rt(self);
        s->job.active = true;
        s->job.cont = K_SHUTDOWN;
        s->job.dynamic = true;
        s->job.dyn_waiting = 0;
        s->job.list = NULL;
        s->job.wait_timer = 0;
        bool brutal = s->tmpl->spec.shutdown_ms == SUP_SHUTDOWN_BRUTAL_KILL;
        for (sv_child *c = s->dhead; c; c = c->dnext) {
            if (!has_pid(c)) {
                continue;
            }
            sup_monitor(self, c->pid);
            sup_reason sig = brutal ? sup_reason_make(SUP_R_KILL, NULL) : sup_reason_shutdown();
            sup_exit(rt, sup_self(self), c->pid, &sig);
            s->job.dyn_waiting++;
        }
        if (s->job.dyn_waiting == 0) {
            s->job.active = false;
            s->job.dynamic = false;
            sup_stop(self, r);
            return;
        }
        if (!brutal && s->tmpl->spec.shutdown_ms >= 0) {
            s->job.wait_timer =
                sup_send_after(self, (uint64_t)s->tmpl->spec.shutdown_ms, SV_KILL_TIMER, NULL, 0);
        }
        sup__set_filter(self, job_filter);
        return;
    }
    job_begin(s, self, K_SHUTDOWN, copy_ids(s, 0, s->n), s->n);
}

static void dyn_child_down(sv *s, sup_actor *self, const sup_msg *m)
{
    sv_child *c = find_pid(s, m->from);
    if (c == NULL) {
        return;
    }
    sup_unlink(self, c->pid);
    emit(s, self, SUP_EV_CHILD_EXIT, c, c->pid, &m->reason);
    c->pid = SUP_NOPID;
    if (--s->job.dyn_waiting == 0) {
        if (s->job.wait_timer) {
            sup_cancel_timer(self, s->job.wait_timer);
            s->job.wait_timer = 0;
        }
        job_done(s, self);
    }
}

/* ---- init ------------------------------------------------------------------------------- */

typedef struct sv_init_arg {
    const sup_flags *flags;
    const sup_child_spec *specs;
    size_t n;
    const sup_sv_opts *opts;
} sv_init_arg;

int sup_check_specs(const sup_flags *f, const sup_child_spec *specs, size_t n, char *err,
                    size_t errsize)
{
#define BAD(...)                                                                                   \
    do {                                                                                           \
        if (err) {                                                                                 \
            snprintf(err, errsize, __VA_ARGS__);                                                   \
        }                                                                                          \
        return SUP_EBADSPEC;                                                                       \
    } while (0)
    if ((unsigned)f->strategy > SUP_SIMPLE_ONE_FOR_ONE) {
        BAD("invalid strategy");
    }
    if (f->intensity < 0) {
        BAD("intensity must be >= 0");
    }
    if (f->period_s < 1) {
        BAD("period must be >= 1 s");
    }
    if ((unsigned)f->auto_shutdown > SUP_AUTO_ALL_SIGNIFICANT) {
        BAD("invalid auto_shutdown");
    }
    if (f->strategy == SUP_SIMPLE_ONE_FOR_ONE && n != 1) {
        BAD("simple_one_for_one needs exactly one child spec");
    }
    for (size_t i = 0; i < n; i++) {
        const sup_child_spec *c = &specs[i];
        if (c->id == NULL || c->id[0] == '\0') {
            BAD("child %zu has no id", i);
        }
        if (c->start == NULL) {
            BAD("child %s has no start function", c->id);
        }
        if ((unsigned)c->restart > SUP_TEMPORARY) {
            BAD("child %s: invalid restart type", c->id);
        }
        if (c->shutdown_ms < SUP_SHUTDOWN_DEFAULT) {
            BAD("child %s: invalid shutdown", c->id);
        }
        if (c->significant && (f->auto_shutdown == SUP_AUTO_NEVER || c->restart == SUP_PERMANENT)) {
            BAD("child %s: significant needs auto_shutdown and a transient or temporary child",
                c->id);
        }
        for (size_t j = 0; j < i; j++) {
            if (strcmp(specs[j].id, c->id) == 0) {
                BAD("duplicate child id %s", c->id);
            }
        }
    }
    return 0;
#undef BAD
}

/* Synchronous teardown after a failed init: children in termination order; nested
 * supervisors tear down their own children first. */
static void teardown_sync(sv *s, sup_actor *self);

static void teardown_child_sync(sup_rt *rt, sv_child *c)
{
    sup_actor *a = sup__lookup(rt, c->pid);
    if (a != NULL && c->spec.type == SUP_SUPERVISOR && sup_is_supervisor(rt, c->pid)) {
        teardown_sync(sup_self_state(a), a);
    }
    sup_reason r = c->spec.shutdown_ms == SUP_SHUTDOWN_BRUTAL_KILL
                       ? sup_reason_make(SUP_R_KILL, NULL)
                       : sup_reason_shutdown();
    sup__kill_now(rt, c->pid, &r);
}

static void teardown_sync(sv *s, sup_actor *self)
{
    sup_rt *rt = sup_self_rt(self);
    for (size_t i = 0; i < s->n; i++) {
        sv_child *c = s->ids[i];
        if (has_pid(c)) {
            sup_unlink(self, c->pid);
            teardown_child_sync(rt, c);
            c->pid = SUP_NOPID;
        }
    }
    for (sv_child *c = s->dhead; c; c = c->dnext) {
        if (has_pid(c)) {
            sup_unlink(self, c->pid);
            teardown_child_sync(rt, c);
            c->pid = SUP_NOPID;
        }
    }
}

static int sv_init(sup_actor *self, void *state, void *argp)
{
    sv *s = state;
    sv_init_arg *arg = argp;
    s->f = *arg->flags;
    s->name = strdup(arg->opts && arg->opts->name ? arg->opts->name : "supervisor");
    s->hook = arg->opts ? arg->opts->hook : NULL;
    s->hook_user = arg->opts ? arg->opts->hook_user : NULL;
    s->next_instance = 1;
    sup_set_label(self, s->name);
    sup_set_flags(self, SUP_FLAG_TRAP_EXIT | SUP_FLAG_OWN_SHUTDOWN);
    if (is_simple(s)) {
        s->tmpl = child_new(&arg->specs[0]);
        return 0;
    }
    s->in_init = true;
    for (size_t i = 0; i < arg->n; i++) {
        sv_child *c = child_new(&arg->specs[i]);
        sup_pid pid;
        sup_reason why;
        if (do_start(s, self, c, &pid, &why) != 0) {
            child_free(c);
            s->init_failed = true;
            s->init_reason = sup_reason_make(SUP_R_SHUTDOWN_TERM, "failed_to_start_child");
            break;
        }
        c->pid = pid;
        ids_prepend(s, c);
        emit(s, self, SUP_EV_START, c, pid, NULL);
    }
    s->in_init = false;
    return 0;
}

static void sv_free_children(sv *s)
{
    for (size_t i = 0; i < s->n; i++) {
        child_free(s->ids[i]);
    }
    free(s->ids);
    s->ids = NULL;
    s->n = 0;
    while (s->dhead) {
        sv_child *c = s->dhead;
        s->dhead = c->dnext;
        free(c->id);
        free(c);
    }
    if (s->tmpl) {
        child_free(s->tmpl);
        s->tmpl = NULL;
    }
}

static void sv_terminate(sup_actor *self, void *state, const sup_reason *reason)
{
    sv *s = state;
    emit(s, self, SUP_EV_SUP_EXIT, NULL, SUP_NOPID, reason);
    free(s->job.list);
    free(s->job.before);
    sv_free_children(s);
    free(s->rs);
    free(s->name);
}

/* ---- messages --------------------------------------------------------------------------- */

static void reply(sup_actor *self, const sup_msg *m, const sv_rep *rep)
{
    sup_reply(sup_self_rt(self), sup_msg_from(m), rep, sizeof *rep);
}

static void fill_info(const sv *s, const sv_child *c, sup_child_info *ci)
{
    memset(ci, 0, sizeof *ci);
    snprintf(ci->id, sizeof ci->id, "%s", c->id);
    ci->instance = c->instance;
    ci->pid = c->restarting ? SUP_NOPID : c->pid;
    ci->state = c->restarting             ? SUP_CHILD_RESTARTING
                : sup_pid_is_null(c->pid) ? SUP_CHILD_UNDEFINED
                                          : SUP_CHILD_RUNNING;
    const sv_child *t = is_simple(s) ? s->tmpl : c;
    ci->type = t->spec.type;
    ci->restart = t->spec.restart;
    ci->restarts = c->restarts;
}

static void api_start_child(sv *s, sup_actor *self, const sup_msg *m, const sv_req *rq)
{
    sv_rep rep = {0};
    if (is_simple(s)) {
        sv_child *c = calloc(1, sizeof *c);
        if (c == NULL) {
            abort();
        }
        c->id = strdup(s->tmpl->id);
        c->spec = s->tmpl->spec;
        c->spec.id = c->id;
        c->spec.arg_free = NULL;
        c->extra = rq->extra;
        c->instance = s->next_instance++;
        rep.instance = c->instance;
        sup_pid pid;
        if (do_start(s, self, c, &pid, &rep.why) == 0) {
            c->pid = pid;
            dyn_append(s, c);
            s->ndyn++;
            rep.pid = pid;
            emit(s, self, SUP_EV_START, c, pid, NULL);
        } else {
            rep.rc = SUP_EINIT;
            free(c->id);
            free(c);
        }
        reply(self, m, &rep);
        return;
    }
    char err[128];
    if (sup_check_specs(&s->f, rq->spec, 1, err, sizeof err) != 0) {
        rep.rc = SUP_EBADSPEC;
        rep.why = sup_reason_error(err);
        reply(self, m, &rep);
        return;
    }
    sv_child *old = find_id(s, rq->spec->id);
    if (old != NULL) {
        rep.rc = has_pid(old) ? SUP_ESTARTED : SUP_EPRESENT;
        reply(self, m, &rep);
        return;
    }
    sv_child *c = child_new(rq->spec);
    sup_pid pid;
    if (do_start(s, self, c, &pid, &rep.why) == 0) {
        c->pid = pid;
        ids_prepend(s, c);
        rep.pid = pid;
        emit(s, self, SUP_EV_START, c, pid, NULL);
    } else {
        rep.rc = SUP_EINIT;
        c->spec.arg_free = NULL; /* the caller keeps its arg when the start fails */
        child_free(c);
    }
    reply(self, m, &rep);
}

static void api_terminate_child(sv *s, sup_actor *self, const sup_msg *m, const sv_req *rq)
{
    sv_rep rep = {0};
    sv_child *c;
    if (is_simple(s)) {
        if (rq->id != NULL) {
            rep.rc = SUP_ESIMPLE;
            reply(self, m, &rep);
            return;
        }
        c = find_pid(s, rq->pid);
        if (c == NULL) {
            for (sv_child *d = s->dhead; d; d = d->dnext) {
                if (d->restarting && sup_pid_eq(d->pid, rq->pid)) {
                    c = d;
                }
            }
        }
        if (c == NULL) {
            /* OTP: a dead pid is "terminated" already: ok; a live stranger: not_found. */
            rep.rc = sup_is_alive(sup_self_rt(self), rq->pid) ? SUP_ENOTFOUND : 0;
            reply(self, m, &rep);
            return;
        }
    } else {
        c = rq->id ? find_id(s, rq->id) : NULL;
        if (c == NULL) {
            rep.rc = SUP_ENOTFOUND;
            reply(self, m, &rep);
            return;
        }
    }
    sv_child **list = calloc(1, sizeof *list);
    if (list == NULL) {
        abort();
    }
    list[0] = c;
    s->job.from = sup_msg_from(m);
    job_begin(s, self, K_API_TERMINATE, list, 1);
}

/* restart_child / delete_child act on a static child that is not running: that child, or
 * NULL with rep->rc saying why not (OTP's {error, simple_one_for_one | not_found |
 * restarting | running}). */
static sv_child *api_stopped_child(sv *s, const sv_req *rq, sv_rep *rep)
{
    if (is_simple(s)) {
        rep->rc = SUP_ESIMPLE;
        return NULL;
    }
    sv_child *c = find_id(s, rq->id);
    if (c == NULL) {
        rep->rc = SUP_ENOTFOUND;
    } else if (c->restarting) {
        rep->rc = SUP_ERESTARTING;
    } else if (!sup_pid_is_null(c->pid)) {
        rep->rc = SUP_ERUNNING;
    } else {
        return c;
    }
    return NULL;
}

static void api_restart_child(sv *s, sup_actor *self, const sup_msg *m, const sv_req *rq)
{
    sv_rep rep = {0};
    sv_child *c = api_stopped_child(s, rq, &rep);
    if (c != NULL) {
        sup_pid pid;
        if (do_start(s, self, c, &pid, &rep.why) == 0) {
            c->pid = pid;
            rep.pid = pid;
            emit(s, self, SUP_EV_START, c, pid, NULL);
        } else {
            rep.rc = SUP_EINIT;
        }
    }
    reply(self, m, &rep);
}

static void api_delete_child(sv *s, sup_actor *self, const sup_msg *m, const sv_req *rq)
{
    sv_rep rep = {0};
    sv_child *c = api_stopped_child(s, rq, &rep);
    if (c != NULL) {
        ids_remove(s, c);
        child_free(c);
    }
    reply(self, m, &rep);
}

static int collect_children(const sv *s, sup_child_info *out, size_t cap)
{
    size_t k = 0;
    if (is_simple(s)) {
        /* ascending instance number */
        long last = 0;
        for (size_t done = 0; done < s->ndyn; done++) {
            const sv_child *best = NULL;
            for (const sv_child *c = s->dhead; c; c = c->dnext) {
                if (c->instance > last && (best == NULL || c->instance < best->instance)) {
                    best = c;
                }
            }
            if (best == NULL) {
                break;
            }
            if (k < cap) {
                fill_info(s, best, &out[k]);
            }
            k++;
            last = best->instance;
        }
        return (int)k;
    }
    for (size_t i = 0; i < s->n; i++) {
        if (k < cap) {
            fill_info(s, s->ids[i], &out[k]);
        }
        k++;
    }
    return (int)k;
}

static sup_counts count_children(const sv *s, sup_rt *rt)
{
    sup_counts n = {0};
    if (is_simple(s)) {
        int sz = (int)s->ndyn;
        n.specs = 1;
        n.active = sz - s->dyn_restarts;
        if (s->tmpl->spec.type == SUP_SUPERVISOR) {
            n.supervisors = sz;
        } else {
            n.workers = sz;
        }
        return n;
    }
    for (size_t i = 0; i < s->n; i++) {
        const sv_child *c = s->ids[i];
        n.specs++;
        if (has_pid(c) && sup_is_alive(rt, c->pid)) {
            n.active++;
        }
        if (c->spec.type == SUP_SUPERVISOR) {
            n.supervisors++;
        } else {
            n.workers++;
        }
    }
    return n;
}

static void sv_call(sup_actor *self, void *state, const sup_msg *m)
{
    sv *s = state;
    sv_req rq;
    if (m->len != sizeof rq) {
        return;
    }
    memcpy(&rq, m->data, sizeof rq);
    sv_rep rep = {0};
    switch (m->tag) {
    case SV_START_CHILD: api_start_child(s, self, m, &rq); break;
    case SV_TERMINATE_CHILD: api_terminate_child(s, self, m, &rq); break;
    case SV_RESTART_CHILD: api_restart_child(s, self, m, &rq); break;
    case SV_DELETE_CHILD: api_delete_child(s, self, m, &rq); break;
    case SV_WHICH_CHILDREN:
        rep.total = collect_children(s, rq.out, rq.cap);
        reply(self, m, &rep);
        break;
    case SV_COUNT_CHILDREN:
        rep.counts = count_children(s, sup_self_rt(self));
        reply(self, m, &rep);
        break;
    case SV_STOP: begin_shutdown(s, self, &rq.reason, true, sup_msg_from(m)); break;
    default: break;
    }
}

static void sv_cast(sup_actor *self, void *state, const sup_msg *m)
{
    sv *s = state;
    if (m->tag != SV_TRY_AGAIN || m->len == 0) {
        return;
    }
    const char *key = m->data;
    sv_child *c = NULL;
    if (is_simple(s)) {
        long inst = strtol(key + 1, NULL, 10);
        for (sv_child *d = s->dhead; d; d = d->dnext) {
            if (d->instance == inst) {
                c = d;
            }
        }
    } else {
        c = find_id(s, key);
    }
    if (c != NULL && c->restarting) {
        restart(s, self, c);
    }
}

static void sv_info(sup_actor *self, void *state, const sup_msg *m)
{
    sv *s = state;
    if (s->job.active) {
        if (m->kind == SUP_MSG_TIMER && m->ref == s->job.wait_timer) {
            /* shutdown timeout: kill, and keep waiting for DOWN */
            s->job.wait_timer = 0;
            sup_reason k = sup_reason_make(SUP_R_KILL, NULL);
            if (s->job.dynamic) {
                for (sv_child *c = s->dhead; c; c = c->dnext) {
                    if (has_pid(c)) {
                        sup_exit(sup_self_rt(self), sup_self(self), c->pid, &k);
                    }
                }
            } else {
                sup_exit(sup_self_rt(self), sup_self(self), s->job.wait_pid, &k);
            }
            return;
        }
        if (m->kind == SUP_MSG_DOWN) {
            if (s->job.dynamic) {
                dyn_child_down(s, self, m);
            } else {
                job_child_down(s, self, m);
            }
        }
        return;
    }
    if (m->kind == SUP_MSG_EXIT) {
        if (sup_pid_eq(m->from, sup_self_parent(self))) {
            begin_shutdown(s, self, &m->reason, false, (sup_from){SUP_NOPID, 0});
            return;
        }
        sv_child *c = find_pid(s, m->from);
        if (c != NULL) {
            child_exited(s, self, c, &m->reason);
        }
    }
}

const sup_behaviour sup__supervisor_behaviour = {
    .name = "supervisor",
    .state_size = sizeof(sv),
    .init = sv_init,
    .handle_call = sv_call,
    .handle_cast = sv_cast,
    .handle_info = sv_info,
    .terminate = sv_terminate,
};

/* ---- public API ------------------------------------------------------------------------- */

bool sup_is_supervisor(const sup_rt *rt, sup_pid pid)
{
    sup_actor_info info;
    return sup_actor_info_get(rt, pid, &info) == 0 && info.behaviour == &sup__supervisor_behaviour;
}

int sup_supervisor_start(sup_rt *rt, sup_pid parent, const sup_flags *flags,
                         const sup_child_spec *specs, size_t n, const sup_sv_opts *opts,
                         sup_pid *out, sup_reason *why)
{
    char err[160];
    if (sup_check_specs(flags, specs, n, err, sizeof err) != 0) {
        if (why) {
            *why = sup_reason_error(err);
        }
        return SUP_EBADSPEC;
    }
    sv_init_arg arg = {flags, specs, n, opts};
    sup_pid pid;
    int rc = sup_spawn(rt, parent, &sup__supervisor_behaviour, &arg,
                       sup_pid_is_null(parent) ? 0 : SUP_SPAWN_LINK, &pid, why);
    if (rc != 0) {
        return rc;
    }
    sup_actor *self = sup__lookup(rt, pid);
    sv *s = sup_self_state(self);
    if (s->init_failed) {
        /* init_children failed: terminate what started (reverse order), then end. */
        sup_reason r = s->init_reason;
        teardown_sync(s, self);
        emit(s, self, SUP_EV_SUP_EXIT, NULL, SUP_NOPID, &r);
        s->hook = NULL; /* the exit was announced; terminate must not repeat it */
        if (why) {
            *why = r;
        }
        sup_unlink(self, parent);
        sup__kill_now(rt, pid, &r);
        return SUP_EINIT;
    }
    if (out) {
        *out = pid;
    }
    return 0;
}

int sup_sv_start_nested(sup_rt *rt, sup_pid parent, void *arg, void *extra, sup_pid *out,
                        sup_reason *why)
{
    (void)extra;
    const sup_sv_nested *nd = arg;
    return sup_supervisor_start(rt, parent, &nd->flags, nd->specs, nd->n, &nd->opts, out, why);
}

static int sv_call_sync(sup_rt *rt, sup_pid sup, int tag, const sv_req *rq, sv_rep *rep)
{
    size_t len = 0;
    sup_reason why;
    memset(rep, 0, sizeof *rep);
    int rc = sup_call_sync(rt, sup, tag, rq, sizeof *rq, 0, rep, sizeof *rep, &len, &why);
    if (rc != 0) {
        rep->why = why;
        return rc == SUP_ECALLEE ? SUP_ENOPROC : rc;
    }
    return rep->rc;
}

int sup_start_child_sync(sup_rt *rt, sup_pid sup, const sup_child_spec *spec, void *extra,
                         sup_pid *out, long *instance, sup_reason *why)
{
    sv_req rq = {.spec = spec, .extra = extra};
    sv_rep rep;
    int rc = sv_call_sync(rt, sup, SV_START_CHILD, &rq, &rep);
    if (out) {
        *out = rep.pid;
    }
    if (instance) {
        *instance = rep.instance;
    }
    if (why) {
        *why = rep.why;
    }
    return rc;
}

int sup_terminate_child_sync(sup_rt *rt, sup_pid sup, const char *id, sup_pid child_pid)
{
    sv_req rq = {.id = id, .pid = child_pid};
    sv_rep rep;
    return sv_call_sync(rt, sup, SV_TERMINATE_CHILD, &rq, &rep);
}

int sup_restart_child_sync(sup_rt *rt, sup_pid sup, const char *id, sup_pid *out, sup_reason *why)
{
    sv_req rq = {.id = id};
    sv_rep rep;
    int rc = sv_call_sync(rt, sup, SV_RESTART_CHILD, &rq, &rep);
    if (out) {
        *out = rep.pid;
    }
    if (why) {
        *why = rep.why;
    }
    return rc;
}

int sup_delete_child_sync(sup_rt *rt, sup_pid sup, const char *id)
{
    sv_req rq = {.id = id};
    sv_rep rep;
    return sv_call_sync(rt, sup, SV_DELETE_CHILD, &rq, &rep);
}

int sup_which_children_sync(sup_rt *rt, sup_pid sup, sup_child_info *out, size_t cap)
{
    sv_req rq = {.out = out, .cap = cap};
    sv_rep rep;
    int rc = sv_call_sync(rt, sup, SV_WHICH_CHILDREN, &rq, &rep);
    return rc < 0 ? rc : rep.total;
}

int sup_count_children_sync(sup_rt *rt, sup_pid sup, sup_counts *out)
{
    sv_req rq = {0};
    sv_rep rep;
    int rc = sv_call_sync(rt, sup, SV_COUNT_CHILDREN, &rq, &rep);
    if (rc == 0 && out) {
        *out = rep.counts;
    }
    return rc;
}

int sup_stop_sync(sup_rt *rt, sup_pid pid, const sup_reason *reason)
{
    if (!sup_is_alive(rt, pid)) {
        return SUP_ENOPROC;
    }
    if (sup_is_supervisor(rt, pid)) {
        sv_req rq = {.reason = *reason};
        sv_rep rep;
        int rc = sv_call_sync(rt, pid, SV_STOP, &rq, &rep);
        /* The supervisor ends instead of answering: the call sees it go. */
        return rc == SUP_ENOPROC ? 0 : rc;
    }
    return sup_exit(rt, SUP_NOPID, pid, reason);
}

int sup_sv_inspect(const sup_rt *rt, sup_pid sup, sup_sv_summary *summary,
                   void (*fn)(const sup_child_info *ci, void *user), void *user)
{
    if (!sup_is_supervisor(rt, sup)) {
        return SUP_ENOPROC;
    }
    const sv *s = sup_self_state(sup__lookup(rt, sup));
    if (summary) {
        summary->name = s->name;
        summary->strategy = s->f.strategy;
        summary->intensity = s->f.intensity;
        summary->period_s = s->f.period_s;
        summary->auto_shutdown = s->f.auto_shutdown;
        summary->total_restarts = s->total_restarts;
    }
    if (fn) {
        sup_child_info ci;
        if (is_simple(s)) {
            for (const sv_child *c = s->dhead; c; c = c->dnext) {
                fill_info(s, c, &ci);
                fn(&ci, user);
            }
        } else {
            /* start order is friendlier to read: walk ids backwards */
            for (size_t i = s->n; i-- > 0;) {
                fill_info(s, s->ids[i], &ci);
                fn(&ci, user);
            }
        }
    }
    return 0;
}

/* ---- API from inside an actor (asynchronous) --------------------------------------------- */

uint64_t sup_sv_start_child(sup_actor *self, sup_pid sup, const sup_child_spec *spec, void *extra,
                            uint64_t timeout_ms)
{
    sv_req rq = {.spec = spec, .extra = extra};
    return sup_call(self, sup, SV_START_CHILD, &rq, sizeof rq, timeout_ms);
}

int sup_sv_start_reply(const sup_msg *m, sup_pid *out, sup_reason *why)
{
    if (m->status != 0) {
        if (why) {
            *why = m->reason;
        }
        return m->status == SUP_ECALLEE ? SUP_ENOPROC : m->status;
    }
    sv_rep rep;
    if (m->len != sizeof rep) {
        return SUP_EINVAL;
    }
    memcpy(&rep, m->data, sizeof rep);
    if (out) {
        *out = rep.pid;
    }
    if (why) {
        *why = rep.why;
    }
    return rep.rc;
}
