/*
 * src/sup/actor.c — the scheduler: actor table, mailboxes, calls, links, monitors, exits.
 *
 * Everything runs on one thread. Deaths are never processed inside a callback: a callback that
 * stops, crashes or kills marks actors as dying and queues them; the death queue is drained
 * when the callback depth returns to zero, iteratively, so a chain of links of any length does
 * not grow the C stack. See docs/runtime.md for the model.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "internal.h"
#include "timer.h"

enum { ST_FREE = 0, ST_ALIVE, ST_DYING, ST_DEAD };

typedef struct sup_link_set {
    sup_pid *v;
    uint32_t n, cap;
} sup_link_set;

typedef struct sup_mon {
    uint64_t ref;
    sup_pid other;
    bool is_call; /* the monitor of a pending call (its DOWN becomes a failed REPLY) */
} sup_mon;

typedef struct sup_mon_set {
    sup_mon *v;
    uint32_t n, cap;
} sup_mon_set;

typedef struct sup_pcall { /* a call this actor made that has not been answered */
    struct sup_pcall *next;
    uint64_t ref;
    sup_pid callee;
    sup_timer *timer;
} sup_pcall;

typedef struct sup_allochdr { /* header of sup_alloc memory */
    struct sup_allochdr *prev, *next;
    size_t size;
    max_align_t align[]; /* payload */
} sup_allochdr;

struct sup_actor {
    sup_rt *rt;
    const sup_behaviour *b;
    void *state;
    sup_pid pid;
    sup_pid parent;
    unsigned flags;
    unsigned char status;
    bool in_runq;
    bool stop_requested;
    bool in_init;
    int running;            /* callback nesting on this actor */
    sup_reason stop_reason; /* set by sup_stop / sup_crash */
    sup_reason exit_reason; /* why it is dying */
    sup_env *mhead, *mtail; /* mailbox */
    size_t mlen;
    sup_filter_fn filter;      /* selective receive, or NULL */
    struct sup_actor *rq_next; /* run queue link */
    struct sup_actor *dq_next; /* death queue link */
    sup_link_set links;
    sup_mon_set mons_out; /* monitors this actor holds */
    sup_mon_set mons_in;  /* monitors on this actor */
    sup_timer *timers;    /* owned timers (list) */
    sup_pcall *pcalls;    /* pending calls */
    sup_allochdr *allocs; /* sup_alloc memory */
    size_t mem;           /* bytes owned */
    char *label;
    jmp_buf *jb; /* crash landing pad while in a callback */
};

typedef struct sup_slot {
    sup_actor *a;
    uint32_t gen;
    uint32_t next_free;
} sup_slot;

typedef struct sup_name {
    struct sup_name *next;
    sup_pid pid;
    char name[];
} sup_name;

struct sup_rt {
    uv_loop_t *loop; /* NULL: virtual clock */
    uint64_t vnow;   /* virtual clock, ms */
    sup_slot *slots;
    uint32_t nslots, capslots, free_head;
    size_t nactors;
    size_t mem;
    sup_actor *rq_head, *rq_tail;
    sup_actor *dq_head, *dq_tail;
    int depth;  /* callbacks on the stack */
    int in_run; /* sup_rt_run calls on the stack */
    bool draining;
    uint64_t next_ref;
    sup_env *env_free[SUP_ENV_NCLASS];     /* envelope pools, one free list per size class */
    size_t env_free_bytes[SUP_ENV_NCLASS]; /* bytes held by each pool */
    size_t env_pool_bytes;                 /* ... and by all of them */
    sup_timer_heap timers;
    sup_name *names;
    uv_timer_t uvtimer;
    uv_idle_t uvidle;
    uint64_t armed; /* deadline the uv timer is set for, or UINT64_MAX */
    bool freeing;
    uint64_t deaths; /* actors finished so far */
};

static void rt_drain_deaths(sup_rt *rt);
static void rt_fire_timers(sup_rt *rt, uint64_t now);
static void rt_kick(sup_rt *rt);

/* ---- small helpers ---------------------------------------------------------------------- */

const char *sup_strerror(int err)
{
    switch (err) {
    case SUP_OK: return "ok";
    case SUP_ENOPROC: return "noproc";
    case SUP_ETIMEDOUT: return "timeout";
    case SUP_ENOMEM: return "out of memory";
    case SUP_EINVAL: return "invalid argument";
    case SUP_EINIT: return "init failed";
    case SUP_ECALLEE: return "callee exited";
    case SUP_ENOTFOUND: return "not_found";
    case SUP_ERUNNING: return "running";
    case SUP_ERESTARTING: return "restarting";
    case SUP_ESIMPLE: return "simple_one_for_one";
    case SUP_EPRESENT: return "already_present";
    case SUP_ESTARTED: return "already_started";
    case SUP_ESPAWN: return "spawn failed";
    case SUP_EBADSPEC: return "bad child spec";
    case SUP_EBUSY: return "busy";
    default: return "unknown error";
    }
}

static void *xcalloc(size_t n, size_t size)
{
    void *p = calloc(n, size);
    if (p == NULL) {
        fprintf(stderr, "macula: out of memory\n");
        abort();
    }
    return p;
}

static void *xmalloc(size_t size)
{
    void *p = malloc(size);
    if (p == NULL) {
        fprintf(stderr, "macula: out of memory\n");
        abort();
    }
    return p;
}

static void *xrealloc(void *p, size_t size)
{
    void *q = realloc(p, size);
    if (q == NULL) {
        fprintf(stderr, "macula: out of memory\n");
        abort();
    }
    return q;
}

const char *sup_pid_str(sup_pid pid, char *buf, size_t size)
{
    snprintf(buf, size, "<%u.%u>", pid.idx, pid.gen);
    return buf;
}

sup_actor *sup__lookup(const sup_rt *rt, sup_pid pid)
{
    if (pid.idx == 0 || pid.idx >= rt->nslots) {
        return NULL;
    }
    const sup_slot *s = &rt->slots[pid.idx];
    if (s->a == NULL || s->gen != pid.gen) {
        return NULL;
    }
    return s->a;
}

static sup_actor *lookup_alive(const sup_rt *rt, sup_pid pid)
{
    sup_actor *a = sup__lookup(rt, pid);
    return (a != NULL && a->status == ST_ALIVE) ? a : NULL;
}

bool sup_is_alive(const sup_rt *rt, sup_pid pid)
{
    return lookup_alive(rt, pid) != NULL;
}

uint64_t sup_rt_now(const sup_rt *rt)
{
    return rt->loop ? uv_now(rt->loop) : rt->vnow;
}

static uint64_t new_ref(sup_rt *rt)
{
    return ++rt->next_ref;
}

/* ---- envelopes -------------------------------------------------------------------------- */

/* Envelope size classes: the payload capacity of each class. A message is copied into a block
 * of the smallest class that holds it; freed blocks go back to their class's pool, within the
 * bounds of internal.h (SUP_ENV_POOL_CLASS_BYTES, SUP_ENV_POOL_BYTES); what does not fit is
 * freed, and the pools are freed with the runtime. The classes sit close where messages are
 * common (a few hundred bytes), so a block is rarely much bigger than its message. */
static const size_t env_class_cap[SUP_ENV_NCLASS] = {SUP_ENV_INLINE,  192, 320, 448, 960, 1984,
                                                     SUP_ENV_POOL_MAX};
_Static_assert(sizeof(sup_env) % 16 == 0, "an envelope payload is 16-byte aligned");

static inline unsigned env_class(size_t len)
{
    unsigned c = 0;
    while (c < SUP_ENV_NCLASS && len > env_class_cap[c]) {
        c++;
    }
    return c;
}

/* A block whose payload holds at least len bytes: from its class's pool, else allocated.
 * Only cls and cap are set. */
static sup_env *env_alloc(sup_rt *rt, size_t len)
{
    unsigned cls = env_class(len);
    sup_env *e = cls < SUP_ENV_NCLASS ? rt->env_free[cls] : NULL;
    if (e != NULL) {
        rt->env_free[cls] = e->next;
        rt->env_free_bytes[cls] -= sizeof *e + e->cap;
        rt->env_pool_bytes -= sizeof *e + e->cap;
    } else {
        size_t cap = cls < SUP_ENV_NCLASS ? env_class_cap[cls] : len;
        if (cap > SIZE_MAX - sizeof *e) {
            fprintf(stderr, "macula: out of memory\n");
            abort();
        }
        e = xmalloc(sizeof *e + cap); /* the caller sets every other field */
        e->cls = cls;
        e->cap = cap;
    }
    return e;
}

/* Sets every header field of a block about to be queued; the payload is the caller's. */
static void env_head(sup_env *e, sup_msg_kind kind, int tag, sup_pid from, uint64_t ref, size_t len)
{
    e->next = NULL;
    e->kind = kind;
    e->tag = tag;
    e->from = from;
    e->ref = ref;
    e->status = 0;
    e->reason = NULL;
    e->len = len;
}

static sup_env *env_new(sup_rt *rt, sup_msg_kind kind, int tag, sup_pid from, uint64_t ref,
                        const void *data, size_t len)
{
    sup_env *e = env_alloc(rt, len);
    env_head(e, kind, tag, from, ref, len);
    if (len > 0) {
        memcpy(e->data, data, len);
    }
    return e;
}

/* The bytes a queued envelope holds: its block and its reason. */
static size_t env_size(const sup_env *e)
{
    return sizeof *e + e->cap + (e->reason ? sizeof *e->reason : 0);
}

/* Pops and frees one block of the pool holding the most bytes, other than class `keep`.
 * Returns false when the other pools are empty. */
static bool env_pool_evict(sup_rt *rt, unsigned keep)
{
    unsigned big = SUP_ENV_NCLASS;
    for (unsigned c = 0; c < SUP_ENV_NCLASS; c++) {
        if (c != keep && rt->env_free[c] != NULL &&
            (big == SUP_ENV_NCLASS || rt->env_free_bytes[c] > rt->env_free_bytes[big])) {
            big = c;
        }
    }
    if (big == SUP_ENV_NCLASS) {
        return false;
    }
    sup_env *e = rt->env_free[big];
    rt->env_free[big] = e->next;
    rt->env_free_bytes[big] -= sizeof *e + e->cap;
    rt->env_pool_bytes -= sizeof *e + e->cap;
    free(e);
    return true;
}

/* Releases an envelope: its block goes back to its class's pool while the bounds allow. When
 * only the runtime-wide bound is in the way, blocks of the fullest other pool make room, so the
 * pools follow the sizes in use now rather than those of an old burst. */
static void env_free(sup_rt *rt, sup_env *e)
{
    free(e->reason);
    e->reason = NULL;
    unsigned cls = e->cls;
    size_t sz = sizeof *e + e->cap;
    if (cls >= SUP_ENV_NCLASS || rt->freeing ||
        rt->env_free_bytes[cls] + sz > SUP_ENV_POOL_CLASS_BYTES) {
        free(e);
        return;
    }
    while (rt->env_pool_bytes + sz > SUP_ENV_POOL_BYTES) {
        if (!env_pool_evict(rt, cls)) {
            free(e);
            return;
        }
    }
    e->next = rt->env_free[cls];
    rt->env_free[cls] = e;
    rt->env_free_bytes[cls] += sz;
    rt->env_pool_bytes += sz;
}

size_t sup__env_pool_bytes(const sup_rt *rt)
{
    return rt->env_pool_bytes;
}

size_t sup__env_pool_class_bytes(const sup_rt *rt, size_t len)
{
    unsigned c = env_class(len);
    return c < SUP_ENV_NCLASS ? rt->env_free_bytes[c] : 0;
}

static void set_reason(sup_env *e, const sup_reason *r)
{
    e->reason = xmalloc(sizeof *e->reason);
    *e->reason = *r;
}

static bool filter_accepts(sup_actor *a, const sup_env *e)
{
    return a->filter == NULL || a->filter(a->state, e);
}

static void runq_push(sup_rt *rt, sup_actor *a)
{
    if (a->in_runq) {
        return;
    }
    a->in_runq = true;
    a->rq_next = NULL;
    if (rt->rq_tail) {
        rt->rq_tail->rq_next = a;
    } else {
        rt->rq_head = a;
    }
    rt->rq_tail = a;
    if (rt->in_run == 0) {
        rt_kick(rt); /* inside sup_rt_run the queue is drained before it returns (and kicks) */
    }
}

/* Appends to a mailbox (or drops if the actor is not alive). */
static void deliver(sup_rt *rt, sup_actor *a, sup_env *e)
{
    if (a == NULL || a->status != ST_ALIVE) {
        env_free(rt, e);
        return;
    }
    if (a->mtail) {
        a->mtail->next = e;
    } else {
        a->mhead = e;
    }
    a->mtail = e;
    a->mlen++;
    size_t sz = env_size(e);
    a->mem += sz;
    rt->mem += sz;
    if (filter_accepts(a, e)) {
        runq_push(rt, a);
    }
}

static void mailbox_unlink(sup_actor *a, sup_env *prev, sup_env *e)
{
    if (prev) {
        prev->next = e->next;
    } else {
        a->mhead = e->next;
    }
    if (a->mtail == e) {
        a->mtail = prev;
    }
    a->mlen--;
    size_t sz = env_size(e);
    a->mem -= sz;
    a->rt->mem -= sz;
}

void sup__flush(sup_actor *self, sup_msg_kind kind, sup_pid from, uint64_t ref)
{
    sup_env *prev = NULL, *e = self->mhead;
    while (e) {
        sup_env *next = e->next;
        if (e->kind == kind && sup_pid_eq(e->from, from) && (ref == 0 || e->ref == ref)) {
            mailbox_unlink(self, prev, e);
            env_free(self->rt, e);
        } else {
            prev = e;
        }
        e = next;
    }
}

void sup__set_filter(sup_actor *self, sup_filter_fn fn)
{
    self->filter = fn;
    if (fn == NULL && self->mhead) {
        runq_push(self->rt, self);
    } else if (fn != NULL) {
        for (sup_env *e = self->mhead; e; e = e->next) {
            if (fn(self->state, e)) {
                runq_push(self->rt, self);
                break;
            }
        }
    }
}

/* ---- sets ------------------------------------------------------------------------------- */

static void links_add(sup_link_set *s, sup_pid p)
{
    for (uint32_t i = 0; i < s->n; i++) {
        if (sup_pid_eq(s->v[i], p)) {
            return;
        }
    }
    if (s->n == s->cap) {
        s->cap = s->cap ? s->cap * 2 : 4;
        s->v = xrealloc(s->v, s->cap * sizeof *s->v);
    }
    s->v[s->n++] = p;
}

/* Keeps creation order: exit signals to links go out in the order the links were made, the
 * way BEAM visits a process's links in pid order. */
static bool links_del(sup_link_set *s, sup_pid p)
{
    for (uint32_t i = 0; i < s->n; i++) {
        if (sup_pid_eq(s->v[i], p)) {
            memmove(&s->v[i], &s->v[i + 1], (s->n - i - 1) * sizeof *s->v);
            s->n--;
            return true;
        }
    }
    return false;
}

static void mons_add(sup_mon_set *s, uint64_t ref, sup_pid other, bool is_call)
{
    if (s->n == s->cap) {
        s->cap = s->cap ? s->cap * 2 : 4;
        s->v = xrealloc(s->v, s->cap * sizeof *s->v);
    }
    s->v[s->n++] = (sup_mon){ref, other, is_call};
}

static bool mons_del(sup_mon_set *s, uint64_t ref, sup_mon *out)
{
    for (uint32_t i = 0; i < s->n; i++) {
        if (s->v[i].ref == ref) {
            if (out) {
                *out = s->v[i];
            }
            s->v[i] = s->v[--s->n];
            return true;
        }
    }
    return false;
}

/* ---- runtime lifecycle ------------------------------------------------------------------ */

static void on_uv_timer(uv_timer_t *t)
{
    sup_rt *rt = t->data;
    rt->armed = UINT64_MAX;
    rt_fire_timers(rt, uv_now(rt->loop));
    sup_rt_run(rt);
    rt_kick(rt);
}

static void on_uv_idle(uv_idle_t *h)
{
    sup_rt *rt = h->data;
    sup_rt_run(rt);
    if (rt->rq_head == NULL && rt->dq_head == NULL) {
        uv_idle_stop(h);
    }
}

/* Real runtimes: make sure the loop will run the queue and fire the next timer. */
static void rt_kick(sup_rt *rt)
{
    if (rt->loop == NULL || rt->freeing) {
        return;
    }
    if (rt->rq_head != NULL || rt->dq_head != NULL) {
        uv_idle_start(&rt->uvidle, on_uv_idle);
    }
    uint64_t next = sup_timer_heap_min(&rt->timers);
    if (next != rt->armed) {
        if (next == UINT64_MAX) {
            uv_timer_stop(&rt->uvtimer);
        } else {
            uint64_t now = uv_now(rt->loop);
            uv_timer_start(&rt->uvtimer, on_uv_timer, next > now ? next - now : 0, 0);
        }
        rt->armed = next;
    }
}

static sup_rt *rt_alloc(void)
{
    sup_rt *rt = xcalloc(1, sizeof *rt);
    rt->capslots = 64;
    rt->slots = xcalloc(rt->capslots, sizeof *rt->slots);
    rt->nslots = 1; /* slot 0 is the null pid */
    rt->armed = UINT64_MAX;
    sup_timer_heap_init(&rt->timers);
    return rt;
}

sup_rt *sup_rt_new(uv_loop_t *loop)
{
    sup_rt *rt = rt_alloc();
    rt->loop = loop;
    uv_timer_init(loop, &rt->uvtimer);
    uv_idle_init(loop, &rt->uvidle);
    rt->uvtimer.data = rt;
    rt->uvidle.data = rt;
    /* Both handles are active only while there is work (queued messages, pending timers),
     * and then they keep the loop alive, as they should. */
    return rt;
}

sup_rt *sup_rt_new_virtual(void)
{
    return rt_alloc();
}

uv_loop_t *sup_rt_loop(sup_rt *rt)
{
    return rt->loop;
}

size_t sup_rt_actor_count(const sup_rt *rt)
{
    return rt->nactors;
}
size_t sup_rt_memory(const sup_rt *rt)
{
    return rt->mem;
}

static void doom(sup_rt *rt, sup_actor *a, const sup_reason *r);

void sup_rt_free(sup_rt *rt)
{
    if (rt == NULL) {
        return;
    }
    /* Kill what is left; terminate callbacks still run so resources are released. */
    sup_reason sd = sup_reason_shutdown();
    for (uint32_t i = 1; i < rt->nslots; i++) {
        sup_actor *a = rt->slots[i].a;
        if (a && a->status == ST_ALIVE) {
            doom(rt, a, &sd);
        }
    }
    rt_drain_deaths(rt);
    rt->freeing = true;
    for (unsigned c = 0; c < SUP_ENV_NCLASS; c++) {
        while (rt->env_free[c]) {
            sup_env *e = rt->env_free[c];
            rt->env_free[c] = e->next;
            free(e);
        }
        rt->env_free_bytes[c] = 0;
    }
    rt->env_pool_bytes = 0;
    sup_timer_heap_free(&rt->timers);
    while (rt->names) {
        sup_name *n = rt->names;
        rt->names = n->next;
        free(n);
    }
    free(rt->slots);
    if (rt->loop) {
        /* The handles belong to the loop until closed; the caller runs the loop to finish. */
        uv_timer_stop(&rt->uvtimer);
        uv_idle_stop(&rt->uvidle);
        uv_close((uv_handle_t *)&rt->uvtimer, NULL);
        uv_close((uv_handle_t *)&rt->uvidle, NULL);
        /* Memory of the handles lives in rt: run the loop once so the closes complete. */
        uv_run(rt->loop, UV_RUN_NOWAIT);
    }
    free(rt);
}

/* ---- dispatch --------------------------------------------------------------------------- */

typedef enum { CB_INIT, CB_CALL, CB_CAST, CB_INFO, CB_TERMINATE } cb_kind;

/* Runs one callback with a crash landing pad. Returns true if it crashed. */
static bool run_callback(sup_actor *a, cb_kind k, const sup_msg *m, void *init_arg, int *init_rc,
                         const sup_reason *term_reason)
{
    sup_rt *rt = a->rt;
    jmp_buf jb;
    jmp_buf *saved = a->jb;
    volatile bool crashed = false;
    rt->depth++;
    a->running++;
    a->jb = &jb; /* cppcheck-suppress autoVariables ; restored before returning */
    if (setjmp(jb) == 0) {
        switch (k) {
        case CB_INIT: *init_rc = a->b->init ? a->b->init(a, a->state, init_arg) : 0; break;
        case CB_CALL:
            if (a->b->handle_call) {
                a->b->handle_call(a, a->state, m);
            }
            break;
        case CB_CAST:
            if (a->b->handle_cast) {
                a->b->handle_cast(a, a->state, m);
            }
            break;
        case CB_INFO:
            if (a->b->handle_info) {
                a->b->handle_info(a, a->state, m);
            }
            break;
        case CB_TERMINATE:
            if (a->b->terminate) {
                a->b->terminate(a, a->state, term_reason);
            }
            break;
        }
    } else {
        crashed = true;
    }
    a->jb = saved;
    a->running--;
    rt->depth--;
    return crashed;
}

static void msg_from_env(sup_msg *m, const sup_env *e)
{
    m->kind = e->kind;
    m->tag = e->tag;
    m->from = e->from;
    m->ref = e->ref;
    m->status = e->status;
    if (e->reason) {
        m->reason = *e->reason;
    } else {
        memset(&m->reason, 0, sizeof m->reason);
    }
    m->data = e->data;
    m->len = e->len;
}

static sup_pcall *pcall_take(sup_actor *a, uint64_t ref)
{
    for (sup_pcall **pp = &a->pcalls; *pp; pp = &(*pp)->next) {
        if ((*pp)->ref == ref) {
            sup_pcall *p = *pp;
            *pp = p->next;
            return p;
        }
    }
    return NULL;
}

static void timer_release(sup_rt *rt, sup_actor *owner, sup_timer *t);
static void demonitor_internal(sup_actor *a, uint64_t ref);

/* Delivers one envelope to its actor (already removed from the mailbox). */
static void dispatch(sup_actor *a, sup_env *e)
{
    sup_rt *rt = a->rt;
    if (e->kind == SUP_MSG_REPLY) {
        sup_pcall *p = pcall_take(a, e->ref);
        if (p == NULL) { /* late reply, or a second answer: dropped */
            env_free(rt, e);
            return;
        }
        if (p->timer) {
            timer_release(rt, a, p->timer);
        }
        demonitor_internal(a, p->ref);
        free(p);
    }
    sup_msg m;
    msg_from_env(&m, e);
    cb_kind k = e->kind == SUP_MSG_CALL ? CB_CALL : e->kind == SUP_MSG_CAST ? CB_CAST : CB_INFO;
    bool crashed = run_callback(a, k, &m, NULL, NULL, NULL);
    env_free(rt, e);
    if ((crashed || a->stop_requested) && a->status == ST_ALIVE) {
        doom(rt, a, &a->stop_reason);
    }
    if (rt->depth == 0) {
        rt_drain_deaths(rt);
    }
}

/* Takes the next deliverable envelope of an actor, or NULL. */
static sup_env *mailbox_take(sup_actor *a)
{
    sup_env *prev = NULL;
    for (sup_env *e = a->mhead; e; prev = e, e = e->next) {
        if (filter_accepts(a, e)) {
            mailbox_unlink(a, prev, e);
            return e;
        }
        if (a->filter == NULL) {
            break;
        }
    }
    return NULL;
}

size_t sup_rt_run(sup_rt *rt)
{
    size_t n = 0;
    rt->in_run++;
    rt_drain_deaths(rt);
    while (rt->rq_head) {
        sup_actor *a = rt->rq_head;
        rt->rq_head = a->rq_next;
        if (rt->rq_head == NULL) {
            rt->rq_tail = NULL;
        }
        a->in_runq = false;
        sup_pid pid = a->pid;
        /* A batch per turn keeps ping-pong cheap and still shares the loop fairly. */
        for (int i = 0; i < 64; i++) {
            if (a->status != ST_ALIVE) {
                break;
            }
            sup_env *e = mailbox_take(a);
            if (e == NULL) {
                break;
            }
            uint64_t deaths = rt->deaths;
            dispatch(a, e);
            n++;
            a = sup__lookup(rt, pid);
            if (a == NULL || rt->deaths != deaths) {
                /* Someone died: everyone affected gets a turn before this actor goes on,
                 * as on BEAM, where each death is its own scheduling of the dying process. */
                break;
            }
        }
        if (a != NULL && a->status == ST_ALIVE && a->mhead) {
            for (sup_env *e = a->mhead; e; e = e->next) {
                if (filter_accepts(a, e)) {
                    runq_push(rt, a);
                    break;
                }
                if (a->filter == NULL) {
                    break;
                }
            }
        }
        rt_drain_deaths(rt);
    }
    if (--rt->in_run == 0) {
        rt_kick(rt);
    }
    return n;
}

void sup_rt_advance(sup_rt *rt, uint64_t until_ms)
{
    sup_rt_run(rt);
    for (;;) {
        uint64_t next = sup_timer_heap_min(&rt->timers);
        if (next == UINT64_MAX || next > until_ms) {
            break;
        }
        if (next > rt->vnow) {
            rt->vnow = next;
        }
        rt_fire_timers(rt, rt->vnow);
        sup_rt_run(rt);
    }
    if (until_ms > rt->vnow) {
        rt->vnow = until_ms;
    }
    sup_rt_run(rt);
}

uint64_t sup_rt_next_deadline(const sup_rt *rt)
{
    return sup_timer_heap_min(&rt->timers);
}

/* ---- spawning --------------------------------------------------------------------------- */

static uint32_t slot_alloc(sup_rt *rt)
{
    if (rt->free_head != 0) {
        uint32_t idx = rt->free_head;
        rt->free_head = rt->slots[idx].next_free;
        return idx;
    }
    if (rt->nslots == rt->capslots) {
        rt->capslots *= 2;
        rt->slots = xrealloc(rt->slots, rt->capslots * sizeof *rt->slots);
        memset(rt->slots + rt->nslots, 0, (rt->capslots - rt->nslots) * sizeof *rt->slots);
    }
    return rt->nslots++;
}

static void finish(sup_rt *rt, sup_actor *a, bool run_terminate, bool signal_parent);

int sup_spawn(sup_rt *rt, sup_pid parent, const sup_behaviour *b, void *arg, unsigned flags,
              sup_pid *out, sup_reason *why)
{
    size_t ssz = (b->state_size + 15) & ~(size_t)15;
    size_t asz = (sizeof(sup_actor) + 15) & ~(size_t)15;
    sup_actor *a = xcalloc(1, asz + ssz);
    a->rt = rt;
    a->b = b;
    a->state = b->state_size ? (char *)a + asz : NULL;
    a->status = ST_ALIVE;
    a->mem = asz + ssz;
    rt->mem += a->mem;
    uint32_t idx = slot_alloc(rt);
    rt->slots[idx].a = a;
    rt->slots[idx].gen++;
    if (rt->slots[idx].gen == 0) {
        rt->slots[idx].gen = 1;
    }
    a->pid = (sup_pid){idx, rt->slots[idx].gen};
    rt->nactors++;
    if ((flags & SUP_SPAWN_LINK) && !sup_pid_is_null(parent)) {
        sup_actor *p = lookup_alive(rt, parent);
        if (p != NULL) {
            a->parent = parent;
            links_add(&a->links, parent);
            links_add(&p->links, a->pid);
        }
    } else {
        a->parent = parent;
    }
    a->in_init = true;
    int rc = 0;
    bool crashed = run_callback(a, CB_INIT, NULL, arg, &rc, NULL);
    a->in_init = false;
    if (crashed || rc < 0 || a->stop_requested) {
        if (why) {
            *why =
                (a->stop_requested || crashed) ? a->stop_reason : sup_reason_error("init_failed");
        }
        a->exit_reason =
            a->stop_requested || crashed ? a->stop_reason : sup_reason_error("init_failed");
        finish(rt, a, false, false);
        if (rt->depth == 0) {
            rt_drain_deaths(rt);
        }
        return SUP_EINIT;
    }
    if (out) {
        *out = a->pid;
    }
    if (rt->depth == 0) {
        rt_drain_deaths(rt);
    }
    return SUP_OK;
}

/* ---- the running actor ------------------------------------------------------------------ */

sup_rt *sup_self_rt(const sup_actor *self)
{
    return self->rt;
}
sup_pid sup_self(const sup_actor *self)
{
    return self->pid;
}
sup_pid sup_self_parent(const sup_actor *self)
{
    return self->parent;
}
void *sup_self_state(const sup_actor *self)
{
    return self->state;
}
void sup_set_flags(sup_actor *self, unsigned flags)
{
    self->flags = flags;
}
unsigned sup_get_flags(const sup_actor *self)
{
    return self->flags;
}

void sup_set_label(sup_actor *self, const char *label)
{
    free(self->label);
    self->label = label ? strdup(label) : NULL;
}

void sup_stop(sup_actor *self, const sup_reason *reason)
{
    if (!self->stop_requested) {
        self->stop_requested = true;
        self->stop_reason = *reason;
    }
}

void sup_crash(sup_actor *self, const char *fmt, ...)
{
    char text[SUP_REASON_TEXT_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(text, sizeof text, fmt, ap); // NOLINT(clang-analyzer-valist.Uninitialized)
    va_end(ap);
    self->stop_requested = true;
    self->stop_reason = sup_reason_error(text);
    if (self->jb == NULL) {
        fprintf(stderr, "macula: sup_crash outside a callback: %s\n", text);
        abort();
    }
    longjmp(*self->jb, 1);
}

void *sup_alloc(sup_actor *self, size_t size)
{
    sup_allochdr *h = xcalloc(1, sizeof *h + size);
    h->size = size;
    h->next = self->allocs;
    if (self->allocs) {
        self->allocs->prev = h;
    }
    self->allocs = h;
    self->mem += sizeof *h + size;
    self->rt->mem += sizeof *h + size;
    return h->align;
}

void sup_free(sup_actor *self, void *p)
{
    if (p == NULL) {
        return;
    }
    sup_allochdr *h = (sup_allochdr *)((char *)p - offsetof(sup_allochdr, align));
    if (h->prev) {
        h->prev->next = h->next;
    } else {
        self->allocs = h->next;
    }
    if (h->next) {
        h->next->prev = h->prev;
    }
    self->mem -= sizeof *h + h->size;
    self->rt->mem -= sizeof *h + h->size;
    free(h);
}

/* ---- sending ---------------------------------------------------------------------------- */

static int send_kind(sup_rt *rt, sup_msg_kind kind, sup_pid from, sup_pid to, int tag,
                     const void *data, size_t len)
{
    sup_actor *a = lookup_alive(rt, to);
    if (a == NULL) {
        return SUP_ENOPROC;
    }
    deliver(rt, a, env_new(rt, kind, tag, from, 0, data, len));
    return SUP_OK;
}

int sup_send(sup_rt *rt, sup_pid from, sup_pid to, int tag, const void *data, size_t len)
{
    return send_kind(rt, SUP_MSG_INFO, from, to, tag, data, len);
}

/* ---- messages built in place ------------------------------------------------------------ */

/* The largest block a buffer's hint asks for: an outsized message does not make later batches
 * that large (each queued block counts its whole size). */
#define SUP_MSGBUF_HINT_MAX ((size_t)256 * 1024)

/* env_alloc that reports running out of memory instead of aborting: NULL. */
static sup_env *env_try_alloc(sup_rt *rt, size_t len)
{
    unsigned cls = env_class(len);
    if (cls < SUP_ENV_NCLASS && rt->env_free[cls] != NULL) {
        return env_alloc(rt, len); /* a pooled block: no allocation */
    }
    size_t cap = cls < SUP_ENV_NCLASS ? env_class_cap[cls] : len;
    if (cap > SIZE_MAX - sizeof(sup_env)) {
        return NULL;
    }
    sup_env *e = malloc(sizeof *e + cap);
    if (e != NULL) {
        e->cls = cls;
        e->cap = cap;
    }
    return e;
}

int sup_msgbuf_reserve(sup_rt *rt, sup_msgbuf *b, size_t need)
{
    if (need <= b->cap) {
        return SUP_OK;
    }
    sup_env *e = b->env_;
    size_t want;
    if (e == NULL) { /* a fresh block: at least as large as the hint (bounded) */
        size_t hint = b->hint < SUP_MSGBUF_HINT_MAX ? b->hint : SUP_MSGBUF_HINT_MAX;
        want = need > hint ? need : hint;
    } else {
        want = b->cap * 2 > need ? b->cap * 2 : need;
    }
    sup_env *n;
    if (e != NULL && e->cls >= SUP_ENV_NCLASS) {
        /* a block of its own grows in place when it can */
        if (want > SIZE_MAX - sizeof *n || (n = realloc(e, sizeof *n + want)) == NULL) {
            return SUP_ENOMEM; /* b is unchanged: its block is still e */
        }
        n->cap = want;
    } else {
        /* a class block (from the pools when one is there), or a block of its own once the
         * classes are outgrown; what was written moves over and the old block goes back */
        if ((n = env_try_alloc(rt, want)) == NULL) {
            return SUP_ENOMEM;
        }
        if (e != NULL) {
            memcpy(n->data, e->data, e->cap);
            env_free(rt, e);
        }
    }
    n->reason = NULL;
    b->env_ = n;
    b->data = n->data;
    b->cap = n->cap;
    return SUP_OK;
}

int sup_msgbuf_send(sup_rt *rt, sup_pid from, sup_pid to, int tag, sup_msgbuf *b)
{
    sup_actor *a = lookup_alive(rt, to);
    if (a == NULL) {
        return SUP_ENOPROC;
    }
    sup_env *e = b->env_;
    if (e == NULL) {
        e = env_new(rt, SUP_MSG_INFO, tag, from, 0, NULL, 0);
    } else {
        env_head(e, SUP_MSG_INFO, tag, from, 0, b->len <= e->cap ? b->len : e->cap);
    }
    /* the hint: the last message, or half the previous hint when that is larger, so a batch a
     * little smaller than the one before does not make the next one start (and move) small,
     * while a spike is forgotten within a few messages (each queued block counts whole) */
    size_t decayed = b->hint / 2;
    *b = (sup_msgbuf){.hint = e->len > decayed ? e->len : decayed};
    deliver(rt, a, e);
    return SUP_OK;
}

void sup_msgbuf_free(sup_rt *rt, sup_msgbuf *b)
{
    if (b->env_ != NULL) {
        env_free(rt, b->env_);
    }
    *b = (sup_msgbuf){0};
}

int sup_cast(sup_rt *rt, sup_pid from, sup_pid to, int tag, const void *data, size_t len)
{
    return send_kind(rt, SUP_MSG_CAST, from, to, tag, data, len);
}

/* ---- monitors --------------------------------------------------------------------------- */

static void queue_down(sup_rt *rt, sup_actor *watcher, uint64_t ref, bool is_call, sup_pid target,
                       const sup_reason *r)
{
    sup_env *e;
    if (is_call) {
        e = env_new(rt, SUP_MSG_REPLY, 0, target, ref, NULL, 0);
        e->status = SUP_ECALLEE;
    } else {
        e = env_new(rt, SUP_MSG_DOWN, 0, target, ref, NULL, 0);
    }
    set_reason(e, r);
    deliver(rt, watcher, e);
}

static uint64_t monitor_impl(sup_rt *rt, sup_actor *w, sup_pid target, bool is_call, uint64_t ref)
{
    sup_actor *t = lookup_alive(rt, target);
    if (t == NULL) {
        sup_reason np = sup_reason_make(SUP_R_NOPROC, NULL);
        queue_down(rt, w, ref, is_call, target, &np);
        return ref;
    }
    mons_add(&w->mons_out, ref, target, is_call);
    mons_add(&t->mons_in, ref, w->pid, is_call);
    return ref;
}

uint64_t sup_monitor(sup_actor *self, sup_pid other)
{
    return monitor_impl(self->rt, self, other, false, new_ref(self->rt));
}

uint64_t sup__monitor_as(sup_rt *rt, sup_pid watcher, sup_pid target)
{
    sup_actor *w = lookup_alive(rt, watcher);
    if (w == NULL) {
        return 0;
    }
    return monitor_impl(rt, w, target, false, new_ref(rt));
}

static void demonitor_internal(sup_actor *a, uint64_t ref)
{
    sup_mon m;
    if (mons_del(&a->mons_out, ref, &m)) {
        sup_actor *t = sup__lookup(a->rt, m.other);
        if (t) {
            mons_del(&t->mons_in, ref, NULL);
        }
    }
}

void sup_demonitor(sup_actor *self, uint64_t ref, bool flush)
{
    demonitor_internal(self, ref);
    if (flush) {
        sup_env *prev = NULL;
        for (sup_env *e = self->mhead; e; prev = e, e = e->next) {
            if (e->kind == SUP_MSG_DOWN && e->ref == ref) {
                mailbox_unlink(self, prev, e);
                env_free(self->rt, e);
                break;
            }
        }
    }
}

/* ---- calls ------------------------------------------------------------------------------ */

static sup_timer *timer_add(sup_rt *rt, sup_actor *owner, uint64_t ms, sup_timer_kind kind,
                            uint64_t ref, int tag, const void *data, size_t len)
{
    sup_timer *t = sup_timer_new(sup_rt_now(rt) + ms, ref, owner->pid, kind, tag, data, len);
    t->onext = owner->timers;
    t->oprev = NULL;
    if (owner->timers) {
        owner->timers->oprev = t;
    }
    owner->timers = t;
    sup_timer_heap_push(&rt->timers, t);
    owner->mem += sup_timer_size(t);
    rt->mem += sup_timer_size(t);
    rt_kick(rt);
    return t;
}

static void timer_release(sup_rt *rt, sup_actor *owner, sup_timer *t)
{
    if (t->oprev) {
        t->oprev->onext = t->onext;
    } else {
        owner->timers = t->onext;
    }
    if (t->onext) {
        t->onext->oprev = t->oprev;
    }
    if (sup_timer_queued(t)) {
        sup_timer_heap_remove(&rt->timers, t);
    }
    owner->mem -= sup_timer_size(t);
    rt->mem -= sup_timer_size(t);
    sup_timer_free(t);
}

uint64_t sup_call(sup_actor *self, sup_pid to, int tag, const void *data, size_t len,
                  uint64_t timeout_ms)
{
    sup_rt *rt = self->rt;
    uint64_t ref = new_ref(rt);
    sup_pcall *p = xcalloc(1, sizeof *p);
    p->ref = ref;
    p->callee = to;
    p->next = self->pcalls;
    self->pcalls = p;
    monitor_impl(rt, self, to, true, ref);
    sup_actor *callee = lookup_alive(rt, to);
    if (callee == NULL) {
        return ref; /* the noproc REPLY is already queued */
    }
    if (timeout_ms > 0) {
        p->timer = timer_add(rt, self, timeout_ms, SUP_TIMER_CALL, ref, 0, NULL, 0);
    }
    sup_env *e = env_new(rt, SUP_MSG_CALL, tag, self->pid, ref, data, len);
    deliver(rt, callee, e);
    return ref;
}

void sup_reply(sup_rt *rt, sup_from to, const void *data, size_t len)
{
    sup_actor *a = lookup_alive(rt, to.pid);
    if (a == NULL) {
        return;
    }
    bool pending = false;
    for (sup_pcall *p = a->pcalls; p; p = p->next) {
        if (p->ref == to.ref) {
            pending = true;
            break;
        }
    }
    if (!pending) {
        return; /* timed out or already answered */
    }
    sup_actor *cur = NULL;
    (void)cur;
    deliver(rt, a, env_new(rt, SUP_MSG_REPLY, 0, SUP_NOPID, to.ref, data, len));
}

/* ---- timers ----------------------------------------------------------------------------- */

uint64_t sup_send_after(sup_actor *self, uint64_t ms, int tag, const void *data, size_t len)
{
    uint64_t ref = new_ref(self->rt);
    timer_add(self->rt, self, ms, SUP_TIMER_USER, ref, tag, data, len);
    return ref;
}

bool sup_cancel_timer(sup_actor *self, uint64_t ref)
{
    for (sup_timer *t = self->timers; t; t = t->onext) {
        if (t->ref == ref && t->kind == SUP_TIMER_USER) {
            timer_release(self->rt, self, t);
            return true;
        }
    }
    return false;
}

void sup_deadline_set(sup_actor *self, sup_deadline *d, uint64_t at, int tag)
{
    if (d->ref != 0 && at >= d->at) {
        return; /* armed for an earlier (or the same) time */
    }
    if (d->ref != 0) {
        (void)sup_cancel_timer(self, d->ref);
        d->ref = 0;
    }
    if (at == UINT64_MAX) {
        return;
    }
    uint64_t now = sup_rt_now(self->rt);
    d->ref = sup_send_after(self, at > now ? at - now : 0, tag, NULL, 0);
    d->at = at;
}

bool sup_deadline_fired(sup_deadline *d, const sup_msg *m)
{
    if (m->kind != SUP_MSG_TIMER || d->ref == 0 || m->ref != d->ref) {
        return false;
    }
    d->ref = 0;
    return true;
}

static void rt_fire_timers(sup_rt *rt, uint64_t now)
{
    sup_timer *t;
    while ((t = sup_timer_heap_pop_due(&rt->timers, now)) != NULL) {
        sup_actor *owner = sup__lookup(rt, t->owner);
        if (owner == NULL || owner->status != ST_ALIVE) {
            /* Cannot happen: timers are released with their owner. Kept safe anyway. */
            sup_timer_free(t);
            continue;
        }
        sup_env *e;
        if (t->kind == SUP_TIMER_CALL) {
            bool answered = false;
            for (sup_env *q = owner->mhead; q; q = q->next) {
                if (q->kind == SUP_MSG_REPLY && q->ref == t->ref) {
                    answered = true;
                    break;
                }
            }
            /* Detach the timer from the pending call before releasing it. */
            for (sup_pcall *p = owner->pcalls; p; p = p->next) {
                if (p->ref == t->ref) {
                    p->timer = NULL;
                }
            }
            uint64_t ref = t->ref;
            timer_release(rt, owner, t);
            if (answered) {
                continue;
            }
            e = env_new(rt, SUP_MSG_REPLY, 0, SUP_NOPID, ref, NULL, 0);
            e->status = SUP_ETIMEDOUT;
            sup_reason to = sup_reason_error("timeout");
            set_reason(e, &to);
        } else {
            e = env_new(rt, SUP_MSG_TIMER, t->tag, owner->pid, t->ref, t->data, t->len);
            timer_release(rt, owner, t);
        }
        deliver(rt, owner, e);
    }
}

/* ---- links and exits -------------------------------------------------------------------- */

static void doom(sup_rt *rt, sup_actor *a, const sup_reason *r)
{
    if (a->status != ST_ALIVE) {
        return;
    }
    a->status = ST_DYING;
    a->exit_reason = *r;
    if (a->exit_reason.kind == SUP_R_KILL) {
        a->exit_reason = sup_reason_make(SUP_R_KILLED, NULL);
    }
    a->dq_next = NULL;
    if (rt->dq_tail) {
        rt->dq_tail->dq_next = a;
    } else {
        rt->dq_head = a;
    }
    rt->dq_tail = a;
    rt_kick(rt);
}

/* An exit signal from `from` with reason r arrives at `a` (erlang:exit/2 semantics). */
static void exit_signal(sup_rt *rt, sup_actor *a, sup_pid from, const sup_reason *r)
{
    if (a == NULL || a->status != ST_ALIVE) {
        return;
    }
    if (r->kind == SUP_R_KILL) {
        doom(rt, a, r);
        return;
    }
    if (a->flags & SUP_FLAG_TRAP_EXIT) {
        if (sup_pid_eq(from, a->parent) && !(a->flags & SUP_FLAG_OWN_SHUTDOWN) &&
            !sup_pid_is_null(from)) {
            doom(rt, a, r); /* gen_server: the parent's exit ends it with that reason */
            return;
        }
        sup_env *e = env_new(rt, SUP_MSG_EXIT, 0, from, 0, NULL, 0);
        set_reason(e, r);
        deliver(rt, a, e);
        return;
    }
    if (r->kind == SUP_R_NORMAL && !sup_pid_eq(from, a->pid)) {
        return;
    }
    doom(rt, a, r);
}

int sup_exit(sup_rt *rt, sup_pid from, sup_pid to, const sup_reason *reason)
{
    sup_actor *a = lookup_alive(rt, to);
    if (a == NULL) {
        return SUP_ENOPROC;
    }
    exit_signal(rt, a, from, reason);
    if (rt->depth == 0) {
        rt_drain_deaths(rt);
    }
    return SUP_OK;
}

int sup_link(sup_actor *self, sup_pid other)
{
    sup_actor *o = lookup_alive(self->rt, other);
    if (o == NULL) {
        sup_reason np = sup_reason_make(SUP_R_NOPROC, NULL);
        exit_signal(self->rt, self, other, &np);
        return SUP_ENOPROC;
    }
    links_add(&self->links, other);
    links_add(&o->links, self->pid);
    return SUP_OK;
}

void sup_unlink(sup_actor *self, sup_pid other)
{
    links_del(&self->links, other);
    sup_actor *o = sup__lookup(self->rt, other);
    if (o) {
        links_del(&o->links, self->pid);
    }
    sup__flush(self, SUP_MSG_EXIT, other, 0);
}

/* Tears an actor down: terminate (optional), timers, calls, monitors, links, memory. */
static void finish(sup_rt *rt, sup_actor *a, bool run_terminate, bool signal_parent)
{
    a->status = ST_DEAD;
    if (run_terminate) {
        a->status = ST_DYING; /* terminate may still use its own resources */
        a->filter = NULL;
        (void)run_callback(a, CB_TERMINATE, NULL, NULL, NULL, &a->exit_reason);
        a->status = ST_DEAD;
    }
    while (a->timers) {
        timer_release(rt, a, a->timers);
    }
    while (a->pcalls) {
        sup_pcall *p = a->pcalls;
        a->pcalls = p->next;
        free(p);
    }
    /* Monitors I hold. */
    for (uint32_t i = 0; i < a->mons_out.n; i++) {
        sup_actor *t = sup__lookup(rt, a->mons_out.v[i].other);
        if (t) {
            mons_del(&t->mons_in, a->mons_out.v[i].ref, NULL);
        }
    }
    free(a->mons_out.v);
    a->mons_out = (sup_mon_set){0};
    /* Monitors on me: DOWN (or a failed REPLY for calls). */
    sup_mon_set in = a->mons_in;
    a->mons_in = (sup_mon_set){0};
    for (uint32_t i = 0; i < in.n; i++) {
        sup_actor *w = sup__lookup(rt, in.v[i].other);
        if (w) {
            mons_del(&w->mons_out, in.v[i].ref, NULL);
            queue_down(rt, w, in.v[i].ref, in.v[i].is_call, a->pid, &a->exit_reason);
        }
    }
    free(in.v);
    /* Links: exit signals (killed propagates as killed, which is trappable). */
    sup_link_set ls = a->links;
    a->links = (sup_link_set){0};
    for (uint32_t i = 0; i < ls.n; i++) {
        sup_actor *o = sup__lookup(rt, ls.v[i]);
        if (o == NULL) {
            continue;
        }
        links_del(&o->links, a->pid);
        if (!signal_parent && sup_pid_eq(ls.v[i], a->parent)) {
            continue;
        }
        exit_signal(rt, o, a->pid, &a->exit_reason);
    }
    free(ls.v);
    /* Mailbox and owned memory. */
    while (a->mhead) {
        sup_env *e = a->mhead;
        mailbox_unlink(a, NULL, e);
        env_free(rt, e);
    }
    while (a->allocs) {
        sup_allochdr *h = a->allocs;
        a->allocs = h->next;
        a->mem -= sizeof *h + h->size;
        rt->mem -= sizeof *h + h->size;
        free(h);
    }
    for (sup_name **pp = &rt->names; *pp;) {
        if (sup_pid_eq((*pp)->pid, a->pid)) {
            sup_name *n = *pp;
            *pp = n->next;
            free(n);
        } else {
            pp = &(*pp)->next;
        }
    }
    if (a->in_runq) {
        sup_actor *prev = NULL;
        for (sup_actor *q = rt->rq_head; q; prev = q, q = q->rq_next) {
            if (q == a) {
                if (prev) {
                    prev->rq_next = q->rq_next;
                } else {
                    rt->rq_head = q->rq_next;
                }
                if (rt->rq_tail == q) {
                    rt->rq_tail = prev;
                }
                break;
            }
        }
    }
    free(a->label);
    rt->deaths++;
    uint32_t idx = a->pid.idx;
    rt->slots[idx].a = NULL;
    rt->slots[idx].next_free = rt->free_head;
    rt->free_head = idx;
    rt->nactors--;
    rt->mem -= a->mem;
    free(a);
}

static void rt_drain_deaths(sup_rt *rt)
{
    if (rt->draining || rt->depth > 0) {
        return;
    }
    rt->draining = true;
    while (rt->dq_head) {
        sup_actor *a = rt->dq_head;
        rt->dq_head = a->dq_next;
        if (rt->dq_head == NULL) {
            rt->dq_tail = NULL;
        }
        finish(rt, a, true, true);
    }
    rt->draining = false;
}

/* ---- names and info --------------------------------------------------------------------- */

int sup_register(sup_rt *rt, const char *name, sup_pid pid)
{
    for (sup_name *n = rt->names; n; n = n->next) {
        if (strcmp(n->name, name) == 0) {
            return SUP_EPRESENT;
        }
    }
    if (!sup_is_alive(rt, pid)) {
        return SUP_ENOPROC;
    }
    size_t len = strlen(name);
    sup_name *n = xcalloc(1, sizeof *n + len + 1);
    memcpy(n->name, name, len + 1);
    n->pid = pid;
    n->next = rt->names;
    rt->names = n;
    return SUP_OK;
}

sup_pid sup_whereis(const sup_rt *rt, const char *name)
{
    for (sup_name *n = rt->names; n; n = n->next) {
        if (strcmp(n->name, name) == 0) {
            return n->pid;
        }
    }
    return SUP_NOPID;
}

int sup_actor_info_get(const sup_rt *rt, sup_pid pid, sup_actor_info *out)
{
    sup_actor *a = lookup_alive(rt, pid);
    if (a == NULL) {
        return SUP_ENOPROC;
    }
    out->label = a->label ? a->label : a->b->name;
    out->mailbox_len = a->mlen;
    out->memory = a->mem;
    out->parent = a->parent;
    out->behaviour = a->b;
    return SUP_OK;
}

/* ---- synchronous calls from outside ----------------------------------------------------- */

typedef struct sync_state {
    bool done;
    int status;
    sup_reason why;
    void *buf;
    size_t cap;
    size_t len;
    uint64_t ref;
    sup_pid to;
    int tag;
    const void *data;
    size_t dlen;
    uint64_t timeout;
} sync_state;

static int sync_init(sup_actor *self, void *state, void *arg)
{
    (void)state;
    sync_state *s = arg;
    sup_set_label(self, "sync_caller");
    *(sync_state **)sup_self_state(self) = s;
    s->ref = sup_call(self, s->to, s->tag, s->data, s->dlen, s->timeout);
    return 0;
}

static void sync_info(sup_actor *self, void *state, const sup_msg *m)
{
    sync_state *s = *(sync_state **)state;
    if (m->kind != SUP_MSG_REPLY || m->ref != s->ref) {
        return;
    }
    s->done = true;
    s->status = m->status;
    s->why = m->reason;
    s->len = m->len;
    if (m->status == 0 && s->buf && m->len) {
        memcpy(s->buf, m->data, m->len < s->cap ? m->len : s->cap);
    }
    sup_reason n = sup_reason_normal();
    sup_stop(self, &n);
}

static const sup_behaviour sync_behaviour = {
    .name = "sync_caller",
    .state_size = sizeof(sync_state *),
    .init = sync_init,
    .handle_info = sync_info,
};

int sup_call_sync(sup_rt *rt, sup_pid to, int tag, const void *data, size_t len,
                  uint64_t timeout_ms, void *buf, size_t cap, size_t *out_len, sup_reason *why)
{
    if (rt->depth > 0) {
        return SUP_EINVAL;
    }
    sync_state s = {.buf = buf,
                    .cap = cap,
                    .to = to,
                    .tag = tag,
                    .data = data,
                    .dlen = len,
                    .timeout = timeout_ms};
    sup_pid caller;
    if (sup_spawn(rt, SUP_NOPID, &sync_behaviour, &s, 0, &caller, NULL) != 0) {
        return SUP_ENOMEM;
    }
    while (!s.done) {
        sup_rt_run(rt);
        if (s.done) {
            break;
        }
        if (rt->loop == NULL) {
            uint64_t next = sup_timer_heap_min(&rt->timers);
            if (next == UINT64_MAX) {
                break; /* nothing can ever answer */
            }
            sup_rt_advance(rt, next);
        } else {
            uv_run(rt->loop, UV_RUN_ONCE);
        }
    }
    sup_rt_run(rt);
    if (!s.done) {
        sup_reason sd = sup_reason_shutdown();
        sup_exit(rt, SUP_NOPID, caller, &(sup_reason){.kind = SUP_R_KILL});
        (void)sd;
        return SUP_ETIMEDOUT;
    }
    if (out_len) {
        *out_len = s.len;
    }
    if (why) {
        *why = s.why;
    }
    return s.status;
}

int sup__kill_now(sup_rt *rt, sup_pid pid, const sup_reason *reason)
{
    sup_actor *a = lookup_alive(rt, pid);
    if (a == NULL) {
        return SUP_ENOPROC;
    }
    if (a->running > 0) {
        return SUP_EBUSY;
    }
    a->status = ST_DYING;
    a->exit_reason = *reason;
    if (a->exit_reason.kind == SUP_R_KILL) {
        a->exit_reason = sup_reason_make(SUP_R_KILLED, NULL);
    }
    finish(rt, a, true, true);
    return SUP_OK;
}
