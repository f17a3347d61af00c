/* src/mesh/rpc_core.c — the caller's side of mesh RPC; the contract is in rpc_core.h. */
#include "mesh/rpc_core.h"

#include <stdlib.h>
#include <string.h>

#include "base/dheap.h"
#include "base/hmap.h"

typedef enum tmr_kind { T_ATTEMPT, T_OVERALL, T_CACHE } tmr_kind;

/* A deadline in the one heap, knowing what it belongs to. */
typedef struct tmr {
    dheap_node hn; /* first member */
    tmr_kind kind; /* what fires */
    void *owner;   /* the call or the cache entry */
} tmr;

typedef struct call call;

/* Providers of one procedure, and the calls waiting for their lookup. */
typedef struct pcache {
    char *proc;                       /* key, NUL-terminated */
    size_t plen;                      /* strlen(proc) */
    uint8_t (*ids)[RPCC_NODE_ID_LEN]; /* providers, in the order the DHT gave them */
    size_t n;                         /* how many */
    uint64_t expires;                 /* cache validity end; 0 = never filled */
    bool lookup_pending;              /* a LOOKUP is out */
    size_t rr;                        /* round-robin cursor */
    call *waiting;                    /* calls waiting for the lookup (list) */
    tmr expiry;                       /* frees the entry when stale and unused */
} pcache;

/* The calls of one caller, for rpcc_caller_down. */
typedef struct caller_calls {
    uint64_t caller; /* key */
    call *head;      /* list through call.cnext / cprev */
} caller_calls;

struct call {
    uint8_t id[RPCC_CALL_ID_LEN];       /* key */
    uint64_t caller;                    /* who gets DONE */
    pcache *pc;                         /* the procedure's cache entry */
    uint8_t *args;                      /* copy of the arguments */
    size_t args_len;                    /* their length */
    uint8_t (*tried)[RPCC_NODE_ID_LEN]; /* providers already sent to */
    uint32_t ntried;                    /* how many */
    uint32_t sends;                     /* attempts that counted */
    bool in_attempt;                    /* waiting for `current` */
    bool timed_out;                     /* some attempt timed out */
    uint8_t current[RPCC_NODE_ID_LEN];  /* provider of the running attempt */
    tmr attempt;                        /* attempt deadline */
    tmr overall;                        /* overall deadline */
    call *wnext, *wprev;                /* pcache.waiting list */
    bool waiting;                       /* on that list */
    call *cnext, *cprev;                /* caller_calls list */
};

typedef struct qaction {
    struct qaction *next;
    rpcc_action a;
} qaction;

struct rpcc {
    rpcc_config cfg;
    hmap calls;   /* call_id -> call */
    hmap cache;   /* procedure -> pcache */
    hmap callers; /* caller -> caller_calls */
    dheap timers;
    qaction *qhead, *qtail;
    uint64_t rng;
    rpcc_stats st;
};

const char *rpcc_strerror(int err)
{
    switch (err) {
    case RPCC_OK: return "ok";
    case RPCC_EINVAL: return "invalid argument";
    case RPCC_ENOMEM: return "out of memory";
    case RPCC_EEXIST: return "call id already pending";
    case RPCC_ELIMIT: return "too many pending calls";
    case RPCC_ENOENT: return "no such pending call";
    default: return "unknown error";
    }
}

const char *rpcc_status_name(rpcc_status s)
{
    switch (s) {
    case RPCC_R_OK: return "ok";
    case RPCC_R_ERROR: return "handler_error";
    case RPCC_R_NO_HANDLER: return "no_handler";
    case RPCC_R_TIMEOUT: return "timeout";
    case RPCC_R_CANCELLED: return "cancelled";
    }
    return "unknown";
}

/* ---- set-up ------------------------------------------------------------------------------ */

rpcc *rpcc_new(const rpcc_config *cfg)
{
    rpcc *r = calloc(1, sizeof *r);
    if (r == NULL) {
        return NULL;
    }
    if (cfg != NULL) {
        r->cfg = *cfg;
    }
    if (r->cfg.strategy > RPCC_FIRST) {
        free(r);
        return NULL;
    }
    r->cfg.attempt_timeout_ms = r->cfg.attempt_timeout_ms ? r->cfg.attempt_timeout_ms : 5000;
    r->cfg.overall_timeout_ms = r->cfg.overall_timeout_ms ? r->cfg.overall_timeout_ms : 30000;
    r->cfg.max_attempts = r->cfg.max_attempts ? r->cfg.max_attempts : 3;
    r->cfg.cache_ttl_ms = r->cfg.cache_ttl_ms ? r->cfg.cache_ttl_ms : 60000;
    r->cfg.max_pending = r->cfg.max_pending ? r->cfg.max_pending : 100000;
    r->rng = r->cfg.seed ? r->cfg.seed : 0x6a09e667f3bcc909u;
    hmap_init(&r->calls);
    hmap_init(&r->cache);
    hmap_init(&r->callers);
    dheap_init(&r->timers);
    return r;
}

static uint64_t rpcc__rand(rpcc *r)
{
    uint64_t z = (r->rng += 0x9e3779b97f4a7c15u);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9u;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebu;
    return z ^ (z >> 31);
}

void rpcc_action_clear(rpcc_action *a)
{
    free(a->procedure);
    free(a->args);
    free(a->result);
    free(a->error_code);
    memset(a, 0, sizeof *a);
}

static void pcache__free(pcache *pc)
{
    free(pc->ids);
    free(pc->proc);
    free(pc);
}

static void call__free(call *c)
{
    free(c->args);
    free(c->tried);
    free(c);
}

void rpcc_free(rpcc *r)
{
    if (r == NULL) {
        return;
    }
    size_t it = 0;
    const hmap_slot *s;
    while ((s = hmap_next(&r->calls, &it)) != NULL) {
        call__free(s->val);
    }
    it = 0;
    while ((s = hmap_next(&r->cache, &it)) != NULL) {
        pcache__free(s->val);
    }
    it = 0;
    while ((s = hmap_next(&r->callers, &it)) != NULL) {
        free(s->val);
    }
    hmap_free(&r->calls);
    hmap_free(&r->cache);
    hmap_free(&r->callers);
    dheap_free(&r->timers);
    for (qaction *q = r->qhead, *n; q != NULL; q = n) {
        n = q->next;
        rpcc_action_clear(&q->a);
        free(q);
    }
    free(r);
}

/* ---- actions ----------------------------------------------------------------------------- */

static qaction *rpcc__queue(rpcc *r, rpcc_action_kind kind)
{
    qaction *q = calloc(1, sizeof *q);
    if (q == NULL) {
        return NULL;
    }
    q->a.kind = kind;
    if (r->qtail != NULL) {
        r->qtail->next = q;
    } else {
        r->qhead = q;
    }
    r->qtail = q;
    return q;
}

bool rpcc_next_action(rpcc *r, rpcc_action *out)
{
    qaction *q = r->qhead;
    if (q == NULL) {
        return false;
    }
    r->qhead = q->next;
    if (r->qhead == NULL) {
        r->qtail = NULL;
    }
    *out = q->a;
    free(q);
    return true;
}

static void *dup_bytes(const void *p, size_t len)
{
    void *d = malloc(len ? len : 1);
    if (d != NULL && len) {
        memcpy(d, p, len);
    }
    return d;
}

/* ---- call bookkeeping --------------------------------------------------------------------- */

static void wait__unlink(call *c)
{
    if (!c->waiting) {
        return;
    }
    if (c->wprev != NULL) {
        c->wprev->wnext = c->wnext;
    } else {
        c->pc->waiting = c->wnext;
    }
    if (c->wnext != NULL) {
        c->wnext->wprev = c->wprev;
    }
    c->wnext = c->wprev = NULL;
    c->waiting = false;
}

static void pcache__arm_expiry(rpcc *r, pcache *pc, uint64_t at)
{
    dheap_remove(&r->timers, &pc->expiry.hn);
    /* Out of memory here only delays the entry's release to the next lookup of it. */
    (void)dheap_push(&r->timers, &pc->expiry.hn, at);
}

/* Removes c from every index and frees it (no action). */
static void call__drop(rpcc *r, call *c)
{
    wait__unlink(c);
    dheap_remove(&r->timers, &c->attempt.hn);
    dheap_remove(&r->timers, &c->overall.hn);
    hmap_del(&r->calls, c->id, sizeof c->id);
    caller_calls *cc = hmap_get(&r->callers, &c->caller, sizeof c->caller);
    if (cc != NULL) {
        if (c->cprev != NULL) {
            c->cprev->cnext = c->cnext;
        } else {
            cc->head = c->cnext;
        }
        if (c->cnext != NULL) {
            c->cnext->cprev = c->cprev;
        }
        if (cc->head == NULL) {
            hmap_del(&r->callers, &cc->caller, sizeof cc->caller);
            free(cc);
        }
    }
    r->st.pending--;
    call__free(c);
}

/* Ends c with a DONE action. The action takes the reply bytes given (already copied). */
static void call__done(rpcc *r, call *c, rpcc_status status, const uint8_t *from, uint8_t *result,
                       size_t result_len, char *code)
{
    qaction *q = rpcc__queue(r, RPCC_ACT_DONE);
    if (q != NULL) {
        memcpy(q->a.call_id, c->id, sizeof c->id);
        q->a.caller = c->caller;
        q->a.status = status;
        if (from != NULL) {
            memcpy(q->a.provider, from, RPCC_NODE_ID_LEN);
        }
        q->a.result = result;
        q->a.result_len = result_len;
        q->a.error_code = code;
        q->a.procedure = dup_bytes(c->pc->proc, c->pc->plen + 1);
    } else {
        free(result);
        free(code);
    }
    r->st.done[status]++;
    call__drop(r, c);
}

static bool call__tried(const call *c, const uint8_t id[RPCC_NODE_ID_LEN])
{
    for (uint32_t i = 0; i < c->ntried; i++) {
        if (memcmp(c->tried[i], id, RPCC_NODE_ID_LEN) == 0) {
            return true;
        }
    }
    return false;
}

/* Index in pc->ids of the provider the strategy picks among the untried, or -1. */
static long call__choose(rpcc *r, call *c)
{
    pcache *pc = c->pc;
    size_t cand = 0;
    for (size_t i = 0; i < pc->n; i++) {
        cand += !call__tried(c, pc->ids[i]);
    }
    if (cand == 0) {
        return -1;
    }
    switch (r->cfg.strategy) {
    case RPCC_FIRST:
        for (size_t i = 0; i < pc->n; i++) {
            if (!call__tried(c, pc->ids[i])) {
                return (long)i;
            }
        }
        break;
    case RPCC_ROUND_ROBIN:
        for (size_t k = 0; k < pc->n; k++) {
            size_t i = (pc->rr + k) % pc->n;
            if (!call__tried(c, pc->ids[i])) {
                pc->rr = (i + 1) % pc->n;
                return (long)i;
            }
        }
        break;
    case RPCC_RANDOM: {
        size_t pick = (size_t)(rpcc__rand(r) % cand);
        for (size_t i = 0; i < pc->n; i++) {
            if (!call__tried(c, pc->ids[i]) && pick-- == 0) {
                return (long)i;
            }
        }
        break;
    }
    }
    return -1;
}

/* Sends the next attempt, or ends the call when no provider or attempt is left. */
static void call__next_attempt(rpcc *r, call *c, uint64_t now)
{
    c->in_attempt = false;
    dheap_remove(&r->timers, &c->attempt.hn);
    long i = c->sends < r->cfg.max_attempts ? call__choose(r, c) : -1;
    if (i < 0) {
        call__done(r, c, c->timed_out ? RPCC_R_TIMEOUT : RPCC_R_NO_HANDLER, NULL, NULL, 0, NULL);
        return;
    }
    uint8_t *args = dup_bytes(c->args, c->args_len);
    char *proc = dup_bytes(c->pc->proc, c->pc->plen + 1);
    qaction *q = (args != NULL && proc != NULL) ? rpcc__queue(r, RPCC_ACT_SEND) : NULL;
    if (q == NULL) {
        /* Out of memory: end the call rather than leave it hanging. */
        free(args);
        free(proc);
        call__done(r, c, RPCC_R_TIMEOUT, NULL, NULL, 0, NULL);
        return;
    }
    memcpy(c->current, c->pc->ids[i], RPCC_NODE_ID_LEN);
    memcpy(c->tried[c->ntried++], c->current, RPCC_NODE_ID_LEN);
    c->sends++;
    c->in_attempt = true;
    uint64_t attempt_end = now + r->cfg.attempt_timeout_ms;
    if (attempt_end > c->overall.hn.deadline) {
        attempt_end = c->overall.hn.deadline;
    }
    (void)dheap_push(&r->timers, &c->attempt.hn, attempt_end);
    memcpy(q->a.call_id, c->id, sizeof c->id);
    q->a.caller = c->caller;
    memcpy(q->a.provider, c->current, RPCC_NODE_ID_LEN);
    q->a.attempt = c->sends;
    q->a.timeout_ms = (uint32_t)(attempt_end - now);
    q->a.procedure = proc;
    q->a.args = args;
    q->a.args_len = c->args_len;
    r->st.sends++;
    if (c->sends > 1) {
        r->st.failovers++;
    }
}

static void pcache__request(rpcc *r, pcache *pc)
{
    if (pc->lookup_pending) {
        return;
    }
    qaction *q = rpcc__queue(r, RPCC_ACT_LOOKUP);
    if (q == NULL) {
        return; /* the waiting calls time out; the next call asks again */
    }
    q->a.procedure = dup_bytes(pc->proc, pc->plen + 1);
    pc->lookup_pending = true;
    r->st.lookups++;
}

static pcache *pcache__get(rpcc *r, const char *proc, size_t plen)
{
    pcache *pc = hmap_get(&r->cache, proc, plen);
    if (pc != NULL) {
        return pc;
    }
    pc = calloc(1, sizeof *pc);
    if (pc == NULL) {
        return NULL;
    }
    pc->proc = dup_bytes(proc, plen + 1);
    pc->plen = plen;
    pc->expiry.kind = T_CACHE;
    pc->expiry.owner = pc;
    dheap_node_init(&pc->expiry.hn);
    if (pc->proc == NULL || hmap_put(&r->cache, pc->proc, plen, pc, NULL) != HMAP_OK) {
        pcache__free(pc);
        return NULL;
    }
    return pc;
}

int rpcc_call(rpcc *r, const uint8_t call_id[RPCC_CALL_ID_LEN], uint64_t caller,
              const char *procedure, const void *args, size_t args_len, uint64_t now_ms)
{
    size_t plen = procedure ? strnlen(procedure, RPCC_MAX_PROC + 1) : 0;
    if (plen == 0 || plen > RPCC_MAX_PROC || (args == NULL && args_len > 0)) {
        return RPCC_EINVAL;
    }
    if (hmap_get(&r->calls, call_id, RPCC_CALL_ID_LEN) != NULL) {
        return RPCC_EEXIST;
    }
    if (r->st.pending >= r->cfg.max_pending) {
        return RPCC_ELIMIT;
    }
    pcache *pc = pcache__get(r, procedure, plen);
    call *c = calloc(1, sizeof *c);
    caller_calls *cc = hmap_get(&r->callers, &caller, sizeof caller);
    bool new_cc = cc == NULL;
    if (new_cc) {
        cc = calloc(1, sizeof *cc);
    }
    if (pc == NULL || c == NULL || cc == NULL) {
        free(c);
        if (new_cc) {
            free(cc);
        }
        return RPCC_ENOMEM;
    }
    memcpy(c->id, call_id, RPCC_CALL_ID_LEN);
    c->caller = caller;
    c->pc = pc;
    c->args = dup_bytes(args, args_len);
    c->args_len = args_len;
    c->tried = calloc(RPCC_MAX_PROVIDERS, RPCC_NODE_ID_LEN);
    cc->caller = caller;
    if (c->args == NULL || c->tried == NULL ||
        (new_cc && hmap_put(&r->callers, &cc->caller, sizeof cc->caller, cc, NULL) != HMAP_OK)) {
        if (new_cc) {
            free(cc);
        }
        call__free(c);
        return RPCC_ENOMEM;
    }
    if (hmap_put(&r->calls, c->id, sizeof c->id, c, NULL) != HMAP_OK) {
        if (new_cc) {
            hmap_del(&r->callers, &cc->caller, sizeof cc->caller);
            free(cc);
        }
        call__free(c);
        return RPCC_ENOMEM;
    }
    c->cnext = cc->head;
    if (cc->head != NULL) {
        cc->head->cprev = c;
    }
    cc->head = c;
    c->attempt = (tmr){.kind = T_ATTEMPT, .owner = c};
    c->overall = (tmr){.kind = T_OVERALL, .owner = c};
    dheap_node_init(&c->attempt.hn);
    dheap_node_init(&c->overall.hn);
    if (dheap_push(&r->timers, &c->overall.hn, now_ms + r->cfg.overall_timeout_ms) != DHEAP_OK) {
        r->st.pending++;
        call__drop(r, c);
        return RPCC_ENOMEM;
    }
    r->st.pending++;
    r->st.calls++;
    if (pc->expires > now_ms) {
        r->st.cache_hits++;
        call__next_attempt(r, c, now_ms);
        return RPCC_OK;
    }
    c->waiting = true;
    c->wnext = pc->waiting;
    if (pc->waiting != NULL) {
        pc->waiting->wprev = c;
    }
    pc->waiting = c;
    pcache__request(r, pc);
    return RPCC_OK;
}

int rpcc_providers(rpcc *r, const char *procedure, const uint8_t (*providers)[RPCC_NODE_ID_LEN],
                   size_t n, uint64_t now_ms)
{
    size_t plen = procedure ? strnlen(procedure, RPCC_MAX_PROC + 1) : 0;
    if (plen == 0 || plen > RPCC_MAX_PROC || (providers == NULL && n > 0)) {
        return RPCC_EINVAL;
    }
    pcache *pc = pcache__get(r, procedure, plen);
    if (pc == NULL) {
        return RPCC_ENOMEM;
    }
    uint8_t(*ids)[RPCC_NODE_ID_LEN] = calloc(RPCC_MAX_PROVIDERS, RPCC_NODE_ID_LEN);
    if (ids == NULL) {
        return RPCC_ENOMEM;
    }
    size_t k = 0;
    for (size_t i = 0; i < n && k < RPCC_MAX_PROVIDERS; i++) {
        bool dup = false;
        for (size_t j = 0; j < k && !dup; j++) {
            dup = memcmp(ids[j], providers[i], RPCC_NODE_ID_LEN) == 0;
        }
        if (!dup) {
            memcpy(ids[k++], providers[i], RPCC_NODE_ID_LEN);
        }
    }
    free(pc->ids);
    pc->ids = ids;
    pc->n = k;
    pc->rr = 0;
    pc->lookup_pending = false;
    /* An empty answer is not cached: a provider advertised a moment later must be found. */
    pc->expires = k > 0 ? now_ms + r->cfg.cache_ttl_ms : 0;
    pcache__arm_expiry(r, pc, k > 0 ? pc->expires : now_ms);
    call *list = pc->waiting; /* detached first: each call below may end and be freed */
    pc->waiting = NULL;
    while (list != NULL) {
        call *c = list;
        list = c->wnext;
        c->wnext = c->wprev = NULL;
        c->waiting = false;
        call__next_attempt(r, c, now_ms);
    }
    return RPCC_OK;
}

/* Removes a provider from one cache entry. */
static void pcache__remove(pcache *pc, const uint8_t id[RPCC_NODE_ID_LEN])
{
    for (size_t i = 0; i < pc->n; i++) {
        if (memcmp(pc->ids[i], id, RPCC_NODE_ID_LEN) == 0) {
            memmove(&pc->ids[i], &pc->ids[i + 1], (pc->n - i - 1) * RPCC_NODE_ID_LEN);
            pc->n--;
            if (pc->n == 0) {
                pc->expires = 0;
            }
            pc->rr = pc->n ? pc->rr % pc->n : 0;
            return;
        }
    }
}

int rpcc_reply(rpcc *r, const uint8_t call_id[RPCC_CALL_ID_LEN],
               const uint8_t from[RPCC_NODE_ID_LEN], bool is_error, const char *code,
               const void *data, size_t len, uint64_t now_ms)
{
    call *c = hmap_get(&r->calls, call_id, RPCC_CALL_ID_LEN);
    if (c == NULL || !c->in_attempt || memcmp(c->current, from, RPCC_NODE_ID_LEN) != 0) {
        r->st.late_replies++;
        return RPCC_ENOENT;
    }
    if (is_error && code != NULL && strcmp(code, "no_handler") == 0) {
        /* A stale advertisement: forget it and try the next provider at once. */
        pcache__remove(c->pc, from);
        c->sends--; /* does not count against max_attempts */
        call__next_attempt(r, c, now_ms);
        return RPCC_OK;
    }
    uint8_t *res = dup_bytes(data, len);
    char *cd = is_error ? dup_bytes(code ? code : "handler_error",
                                    strlen(code ? code : "handler_error") + 1)
                        : NULL;
    call__done(r, c, is_error ? RPCC_R_ERROR : RPCC_R_OK, from, res, res ? len : 0, cd);
    return RPCC_OK;
}

size_t rpcc_caller_down(rpcc *r, uint64_t caller)
{
    size_t n = 0;
    caller_calls *cc;
    while ((cc = hmap_get(&r->callers, &caller, sizeof caller)) != NULL) {
        call__drop(r, cc->head); /* frees cc with the last call */
        n++;
    }
    r->st.dropped_callers += n;
    return n;
}

int rpcc_cancel(rpcc *r, const uint8_t call_id[RPCC_CALL_ID_LEN])
{
    call *c = hmap_get(&r->calls, call_id, RPCC_CALL_ID_LEN);
    if (c == NULL) {
        return RPCC_ENOENT;
    }
    call__done(r, c, RPCC_R_CANCELLED, NULL, NULL, 0, NULL);
    return RPCC_OK;
}

void rpcc_forget_provider(rpcc *r, const uint8_t provider[RPCC_NODE_ID_LEN])
{
    size_t it = 0;
    const hmap_slot *s;
    while ((s = hmap_next(&r->cache, &it)) != NULL) {
        pcache__remove(s->val, provider);
    }
}

void rpcc_tick(rpcc *r, uint64_t now_ms)
{
    dheap_node *n;
    while ((n = dheap_pop_due(&r->timers, now_ms)) != NULL) {
        tmr *t = (tmr *)(void *)n;
        if (t->kind == T_CACHE) {
            pcache *pc = t->owner;
            if (pc->expires <= now_ms && !pc->lookup_pending && pc->waiting == NULL) {
                bool used = false;
                size_t it = 0;
                const hmap_slot *s;
                while (!used && (s = hmap_next(&r->calls, &it)) != NULL) {
                    used = ((const call *)s->val)->pc == pc;
                }
                if (!used) {
                    hmap_del(&r->cache, pc->proc, pc->plen);
                    pcache__free(pc);
                } else {
                    /* A call still runs against these providers; look again later. */
                    pcache__arm_expiry(r, pc, now_ms + r->cfg.attempt_timeout_ms);
                }
            }
            continue;
        }
        call *c = t->owner;
        if (t->kind == T_OVERALL) {
            call__done(r, c, RPCC_R_TIMEOUT, NULL, NULL, 0, NULL);
        } else {
            c->timed_out = true;
            call__next_attempt(r, c, now_ms);
        }
    }
}

uint64_t rpcc_next_deadline(const rpcc *r)
{
    return dheap_min(&r->timers);
}

void rpcc_get_stats(const rpcc *r, rpcc_stats *out)
{
    *out = r->st;
}
