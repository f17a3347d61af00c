/* flow/core/flow_state.c — the flow state machine's transitions (flow_state.h, docs/flow.md). */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "flow/core/flow_state_int.h"

/* ---- small helpers ---------------------------------------------------------------------- */

static void flow__copy_id(char dst[FLOW_ID_MAX], const char *src)
{
    snprintf(dst, FLOW_ID_MAX, "%s", src ? src : "");
}

bool flow_id_valid(const char *s)
{
    size_t n = s ? strlen(s) : 0;
    if (n == 0 || n >= FLOW_ID_MAX) {
        return false;
    }
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                  c == '.' || c == '_' || c == ':' || c == '-';
        if (!ok) {
            return false;
        }
    }
    return true;
}

/* Appends an event; returns it (zeroed but for type, ids and time) or NULL without memory. */
static flow_event *flow__emit(flow_state *s, flow_events *ev, flow_event_type type,
                              const char *swarm, const char *agent, const char *task)
{
    if (ev == NULL) {
        return NULL;
    }
    if (ev->n == ev->cap) {
        size_t cap = ev->cap ? ev->cap * 2 : 16;
        flow_event *v = realloc(ev->v, cap * sizeof *v);
        if (v == NULL) {
            return NULL;
        }
        ev->v = v;
        ev->cap = cap;
    }
    flow_event *e = &ev->v[ev->n++];
    memset(e, 0, sizeof *e);
    e->type = type;
    e->role = FLOW_ROLE_NONE;
    e->at = s->now;
    flow__copy_id(e->swarm, swarm);
    flow__copy_id(e->agent, agent);
    flow__copy_id(e->task, task);
    return e;
}

void flow_events_clear(flow_events *e)
{
    for (size_t i = 0; i < e->n; i++) {
        json_decref(e->v[i].data);
    }
    free(e->v);
    memset(e, 0, sizeof *e);
}

/* ---- records ---------------------------------------------------------------------------- */

void flow__swarm_config_copy(flow_swarm_config *dst, const flow_swarm_config *src)
{
    *dst = *src;
    dst->executor = src->executor ? json_deep_copy(src->executor) : NULL;
}

flow_swarm *flow__swarm_new(const char *id, flow_topology topo, const flow_swarm_config *cfg)
{
    flow_swarm *sw = calloc(1, sizeof *sw);
    if (sw == NULL) {
        return NULL;
    }
    flow__copy_id(sw->id, id);
    sw->topology = topo;
    flow__swarm_config_copy(&sw->cfg, cfg);
    for (int q = 0; q < 4; q++) {
        flow_queue_init(&sw->queue[q], cfg->weights);
        sw->lb[q].strategy = cfg->lb;
    }
    flow_breaker_init(&sw->cb, cfg->cb_threshold, cfg->cb_timeout_ms);
    return sw;
}

/* ---- timers (flow_state_int.h "flow_timer") -------------------------------------------------- */

static void flow__timer_init(flow_timer *tm, flow_timer_kind kind, void *owner)
{
    dheap_node_init(&tm->node);
    tm->kind = kind;
    tm->owner = owner;
}

/* Queues tm at `at` when `on`, else drops it. */
static void flow__timer_set(flow_state *s, flow_timer *tm, bool on, uint64_t at, uint64_t seq)
{
    if (on && dheap_node_queued(&tm->node) && tm->node.deadline == at) {
        return;
    }
    dheap_remove(&s->timers, &tm->node);
    tm->seq = seq;
    if (on) {
        (void)dheap_push(&s->timers, &tm->node, at); /* ENOMEM: the timer is lost */
    }
}

static bool flow__terminal(flow_task_state st);
static int flow__role_count(const flow_swarm *sw, int role);

void flow__timers_task(flow_state *s, flow_task *t)
{
    flow__timer_set(s, &t->tm, t->deadline != 0 && !flow__terminal(t->state), t->deadline, t->seq);
}

static void flow__timers_agent(flow_state *s, const flow_swarm *sw, flow_agent *a, bool above_min)
{
    flow__timer_set(s, &a->tm, above_min && !a->draining && a->nheld == 0,
                    a->idle_since + sw->cfg.idle_timeout_ms, a->seq);
}

void flow__timers_role(flow_state *s, flow_swarm *sw, int role)
{
    bool above = flow__role_count(sw, role) > sw->cfg.pool_min[role];
    for (size_t i = 0; i < sw->nagents; i++) {
        if (sw->agents[i]->role == role) {
            flow__timers_agent(s, sw, sw->agents[i], above);
        }
    }
}

void flow__timers_breaker(flow_state *s, flow_swarm *sw)
{
    uint64_t at = flow_breaker_deadline(&sw->cb);
    flow__timer_set(s, &sw->tm, at != UINT64_MAX, at, sw->seq);
}

static int flow__timer_cmp(const void *pa, const void *pb)
{
    const flow_timer *a = *(flow_timer *const *)pa, *b = *(flow_timer *const *)pb;
    if (a->node.deadline != b->node.deadline) {
        return a->node.deadline < b->node.deadline ? -1 : 1;
    }
    return a->seq < b->seq ? -1 : a->seq > b->seq;
}

/* Pops every due timer, in (deadline, owner seq) order: the order depends on the state only,
 * not on the heap's insertion history (a restored state pushes in another order). Returns
 * the count; *out is malloc'd (NULL when none). */
static size_t flow__timers_due(flow_state *s, flow_timer ***out)
{
    flow_timer **v = NULL;
    size_t n = 0, cap = 0;
    dheap_node *nd;
    while ((nd = dheap_pop_due(&s->timers, s->now)) != NULL) {
        if (n == cap) {
            size_t c = cap ? cap * 2 : 16;
            flow_timer **nv = realloc(v, c * sizeof *nv);
            if (nv == NULL) {
                (void)dheap_push(&s->timers, nd, nd->deadline); /* handled at the next tick */
                break;
            }
            v = nv;
            cap = c;
        }
        v[n++] = (flow_timer *)nd; /* node is the first member */
    }
    if (n > 1) {
        qsort(v, n, sizeof *v, flow__timer_cmp);
    }
    *out = v;
    return n;
}

/* Doubly linked lists with head and tail (swarms and tasks, in creation order). */
#define FLOW_DL_APPEND(head, tail, x)                                                              \
    do {                                                                                           \
        (x)->prev = (tail);                                                                        \
        (x)->next = NULL;                                                                          \
        if (tail) {                                                                                \
            (tail)->next = (x);                                                                    \
        } else {                                                                                   \
            (head) = (x);                                                                          \
        }                                                                                          \
        (tail) = (x);                                                                              \
    } while (0)
#define FLOW_DL_UNLINK(head, tail, x)                                                              \
    do {                                                                                           \
        if ((x)->prev) {                                                                           \
            (x)->prev->next = (x)->next;                                                           \
        } else {                                                                                   \
            (head) = (x)->next;                                                                    \
        }                                                                                          \
        if ((x)->next) {                                                                           \
            (x)->next->prev = (x)->prev;                                                           \
        } else {                                                                                   \
            (tail) = (x)->prev;                                                                    \
        }                                                                                          \
    } while (0)

void flow__swarm_link(flow_state *s, flow_swarm *sw)
{
    FLOW_DL_APPEND(s->swarm_head, s->swarm_tail, sw);
    flow__timer_init(&sw->tm, FLOW_TM_BREAKER, sw);
    flow_hput(&s->swarms, sw->id, sw);
}

void flow__agent_link(flow_state *s, flow_agent *a)
{
    flow__timer_init(&a->tm, FLOW_TM_IDLE, a);
    flow_hput(&s->agents, a->id, a);
}

void flow__task_link(flow_state *s, flow_task *t)
{
    flow__timer_init(&t->tm, FLOW_TM_DEADLINE, t);
    FLOW_DL_APPEND(s->task_head, s->task_tail, t);
    flow_hput(&s->tasks, t->id, t);
}

/* ---- retention of ended tasks -------------------------------------------------------------- */

/* An ended task joins the finish list (newest last). */
static void flow__fin_push(flow_state *s, flow_task *t)
{
    t->fin = ++s->fin_seq;
    t->fin_next = NULL;
    t->fin_prev = s->fin_tail;
    if (s->fin_tail) {
        s->fin_tail->fin_next = t;
    } else {
        s->fin_head = t;
    }
    s->fin_tail = t;
    s->nfin++;
}

static void flow__fin_unlink(flow_state *s, flow_task *t)
{
    if (t->fin == 0) {
        return;
    }
    if (t->fin_prev) {
        t->fin_prev->fin_next = t->fin_next;
    } else {
        s->fin_head = t->fin_next;
    }
    if (t->fin_next) {
        t->fin_next->fin_prev = t->fin_prev;
    } else {
        s->fin_tail = t->fin_prev;
    }
    t->fin_prev = t->fin_next = NULL;
    s->nfin--;
}

static int flow__fin_cmp(const void *pa, const void *pb)
{
    const flow_task *a = *(flow_task *const *)pa, *b = *(flow_task *const *)pb;
    if (a->fin != b->fin) {
        return a->fin < b->fin ? -1 : 1;
    }
    return a->seq < b->seq ? -1 : a->seq > b->seq;
}

int flow__fin_rebuild(flow_state *s)
{
    size_t n = 0;
    for (const flow_task *t = s->task_head; t; t = t->next) {
        n += flow__terminal(t->state);
    }
    if (n == 0) {
        return 0;
    }
    flow_task **v = malloc(n * sizeof *v);
    if (v == NULL) {
        return FLOW_ENOMEM;
    }
    size_t i = 0;
    for (flow_task *t = s->task_head; t; t = t->next) {
        if (flow__terminal(t->state)) {
            v[i++] = t;
        }
    }
    qsort(v, n, sizeof *v, flow__fin_cmp);
    int rc = 0;
    for (i = 0; i < n && rc == 0; i++) {
        if (v[i]->fin == 0 || v[i]->fin > s->fin_seq || (i > 0 && v[i]->fin == v[i - 1]->fin)) {
            rc = FLOW_EINVAL;
        }
    }
    for (i = 0; i < n && rc == 0; i++) {
        uint64_t fin = v[i]->fin, keep = s->fin_seq;
        flow__fin_push(s, v[i]);
        v[i]->fin = fin; /* keeps its order number; the counter is the snapshot's */
        s->fin_seq = keep;
    }
    free(v);
    return rc;
}

void flow_state_set_retention(flow_state *s, uint64_t n)
{
    s->retention = n;
}

uint64_t flow_state_retention(const flow_state *s)
{
    return s->retention;
}

size_t flow_state_finished_count(const flow_state *s)
{
    return s->nfin;
}

static void flow__task_unlink(flow_state *s, flow_task *t);

/* Evicts the oldest ended tasks beyond the retention, except those that ended after finish
 * order `mark` (in the command being applied). */
static void flow__retain(flow_state *s, uint64_t mark)
{
    while (s->retention > 0 && s->nfin > s->retention && s->fin_head->fin <= mark) {
        flow_task *t = s->fin_head;
        flow_swarm *sw = flow_hget(&s->swarms, t->swarm);
        if (sw) {
            sw->count[t->state]--; /* kept tasks by state; ended_total is unaffected */
        }
        flow__task_unlink(s, t);
    }
}

/* Takes a task out of the state and frees it (it must be in no queue and held by no one). */
static void flow__task_unlink(flow_state *s, flow_task *t)
{
    flow__fin_unlink(s, t);
    FLOW_DL_UNLINK(s->task_head, s->task_tail, t);
    dheap_remove(&s->timers, &t->tm.node);
    flow_hdel(&s->tasks, t->id);
    flow__task_free(t);
}

void flow__task_free(flow_task *t)
{
    json_decref(t->input);
    json_decref(t->stage_input);
    json_decref(t->result);
    json_decref(t->reasons);
    free(t->deps);
    free(t->dependents);
    free(t);
}

void flow__agent_free(flow_agent *a)
{
    json_decref(a->executor);
    free(a);
}

static void flow__swarm_free(flow_swarm *sw)
{
    flow_swarm_config_clear(&sw->cfg);
    free(sw->agents);
    free(sw->ring_wait);
    free(sw);
}

int flow__swarm_add_agent(flow_swarm *sw, flow_agent *a)
{
    if (sw->nagents == sw->capagents) {
        size_t cap = sw->capagents ? sw->capagents * 2 : 8;
        flow_agent **v = realloc(sw->agents, cap * sizeof *v);
        if (v == NULL) {
            return FLOW_ENOMEM;
        }
        sw->agents = v;
        sw->capagents = cap;
    }
    sw->agents[sw->nagents++] = a; /* callers add in join order */
    return 0;
}

static void flow__swarm_drop_agent(flow_swarm *sw, const flow_agent *a)
{
    for (size_t i = 0; i < sw->nagents; i++) {
        if (sw->agents[i] == a) {
            memmove(&sw->agents[i], &sw->agents[i + 1], (sw->nagents - i - 1) * sizeof a);
            sw->nagents--;
            return;
        }
    }
}

int flow__ring_push(flow_swarm *sw, flow_task *t)
{
    if (sw->nring == sw->capring) {
        size_t cap = sw->capring ? sw->capring * 2 : 8;
        flow_task **v = realloc(sw->ring_wait, cap * sizeof *v);
        if (v == NULL) {
            return FLOW_ENOMEM;
        }
        sw->ring_wait = v;
        sw->capring = cap;
    }
    sw->ring_wait[sw->nring++] = t;
    t->ring_wait = true;
    return 0;
}

static void flow__ring_drop(flow_swarm *sw, flow_task *t)
{
    for (size_t i = 0; i < sw->nring; i++) {
        if (sw->ring_wait[i] == t) {
            memmove(&sw->ring_wait[i], &sw->ring_wait[i + 1], (sw->nring - i - 1) * sizeof t);
            sw->nring--;
            break;
        }
    }
    t->ring_wait = false;
}

int flow__task_add_dependent(flow_task *t, const char *dep)
{
    if (t->ndependents == t->capdependents) {
        size_t cap = t->capdependents ? t->capdependents * 2 : 4;
        char(*v)[FLOW_ID_MAX] = realloc(t->dependents, cap * sizeof *v);
        if (v == NULL) {
            return FLOW_ENOMEM;
        }
        t->dependents = v;
        t->capdependents = cap;
    }
    flow__copy_id(t->dependents[t->ndependents++], dep);
    return 0;
}

static void flow__set_state(flow_swarm *sw, flow_task *t, flow_task_state st)
{
    if (sw) {
        sw->count[t->state]--;
        sw->count[st]++;
        if (st >= FLOW_TASK_COMPLETED) {
            sw->ended_total[st - FLOW_TASK_COMPLETED]++;
        }
    }
    t->state = st;
}

static bool flow__terminal(flow_task_state st)
{
    return st == FLOW_TASK_COMPLETED || st == FLOW_TASK_FAILED || st == FLOW_TASK_CANCELLED;
}

static flow_agent_state flow__agent_state(const flow_agent *a)
{
    if (a->draining) {
        return FLOW_AGENT_DRAINING;
    }
    return a->nheld > 0 ? FLOW_AGENT_BUSY : FLOW_AGENT_IDLE;
}

/* Agents of a role that count toward its pool (not draining). */
static int flow__role_count(const flow_swarm *sw, int role)
{
    int n = 0;
    for (size_t i = 0; i < sw->nagents; i++) {
        n += sw->agents[i]->role == role && !sw->agents[i]->draining;
    }
    return n;
}

static int flow__live_count(const flow_swarm *sw)
{
    int n = 0;
    for (size_t i = 0; i < sw->nagents; i++) {
        n += !sw->agents[i]->draining;
    }
    return n;
}

/* ---- queueing ---------------------------------------------------------------------------- */

/* Hierarchical: the team a task goes to (docs/flow.md "hierarchical"). */
static int flow__route_team(const flow_swarm *sw, const flow_task *t)
{
    if (t->role >= 0) {
        return t->role;
    }
    int best = -1;
    size_t best_load = 0;
    for (int r = 0; r < FLOW_ROLES; r++) {
        if (flow__role_count(sw, r) == 0) {
            continue;
        }
        size_t load = sw->queue[r].total;
        for (size_t i = 0; i < sw->nagents; i++) {
            if (sw->agents[i]->role == r) {
                load += (size_t)sw->agents[i]->nheld;
            }
        }
        if (best < 0 || load < best_load) {
            best = r;
            best_load = load;
        }
    }
    return best < 0 ? FLOW_ROLE_WORKER : best;
}

void flow__queue_task(flow_swarm *sw, flow_task *t)
{
    int q = t->team >= 0 ? t->team : FLOW_SWARM_QUEUE;
    int lane = sw->topology == FLOW_TOPO_RING || t->role < 0 ? 0 : 1 + t->role;
    flow_queue_push(&sw->queue[q], &t->qn, t->prio, lane, t->seq);
}

/* Puts a task (not held, not terminal) back into the pending set of its swarm. */
static void flow__enqueue(flow_swarm *sw, flow_task *t)
{
    flow__set_state(sw, t, FLOW_TASK_PENDING);
    flow__copy_id(t->agent, "");
    t->ran = false;
    if (t->deps_waiting > 0) {
        return; /* blocked: queued when its dependencies complete */
    }
    if (sw->topology == FLOW_TOPO_RING && t->stage > 0) {
        flow__ring_push(sw, t);
        return;
    }
    t->team = sw->topology == FLOW_TOPO_HIERARCHICAL ? flow__route_team(sw, t) : -1;
    flow__queue_task(sw, t);
}

/* Takes a pending task out of wherever it waits. */
static void flow__dequeue(flow_swarm *sw, flow_task *t)
{
    if (t->qn.queued) {
        flow_queue_remove(&sw->queue[t->team >= 0 ? t->team : FLOW_SWARM_QUEUE], &t->qn);
    }
    if (t->ring_wait) {
        flow__ring_drop(sw, t);
    }
}

/* ---- holding and running ---------------------------------------------------------------- */

static json_t *flow__run_input(const flow_task *t)
{
    return json_incref(t->stage_input ? t->stage_input : t->input);
}

static void flow__run(flow_state *s, flow_events *ev, flow_agent *a, flow_task *t)
{
    t->ran = true;
    flow_event *e = flow__emit(s, ev, FLOW_EV_TASK_RUN, a->swarm, a->id, t->id);
    if (e) {
        e->data = flow__run_input(t);
        e->count = t->stage;
        e->role = a->role;
    }
}

static void flow__assign(flow_state *s, flow_swarm *sw, flow_events *ev, flow_task *t,
                         flow_agent *a)
{
    flow__set_state(sw, t, FLOW_TASK_ASSIGNED);
    flow__copy_id(t->agent, a->id);
    t->t_assigned = s->now;
    a->held[a->nheld++] = t;
    dheap_remove(&s->timers, &a->tm.node); /* busy: no idle timeout */
    flow_breaker_dispatched(&sw->cb);
    flow_event *e = flow__emit(s, ev, FLOW_EV_TASK_ASSIGNED, sw->id, a->id, t->id);
    if (e) {
        e->count = t->stage;
    }
    if (a->nheld <= a->capacity) {
        flow__run(s, ev, a, t);
    }
}

/* Removes t from its holder; starts the next locally queued task (mesh). */
static void flow__release(flow_state *s, flow_events *ev, flow_agent *a, flow_task *t)
{
    for (int i = 0; i < a->nheld; i++) {
        if (a->held[i] == t) {
            memmove(&a->held[i], &a->held[i + 1], (size_t)(a->nheld - i - 1) * sizeof t);
            a->nheld--;
            break;
        }
    }
    for (int i = 0; i < a->nheld && i < a->capacity; i++) {
        if (!a->held[i]->ran) {
            flow__run(s, ev, a, a->held[i]);
        }
    }
    if (a->nheld == 0) {
        a->idle_since = s->now;
        a->ready_seq = ++s->seq;
        if (a->draining) {
            flow__emit(s, ev, FLOW_EV_AGENT_RETIRE, a->swarm, a->id, NULL);
        }
        const flow_swarm *sw = flow_hget(&s->swarms, a->swarm);
        flow__timers_agent(s, sw, a, flow__role_count(sw, a->role) > sw->cfg.pool_min[a->role]);
    }
}

static void flow__add_reason(flow_task *t, const char *reason)
{
    if (t->reasons == NULL) {
        t->reasons = json_array();
    }
    if (json_array_size(t->reasons) >= FLOW_MAX_REASONS) {
        json_array_remove(t->reasons, 0);
    }
    json_array_append_new(t->reasons, json_string(reason));
}

/* ---- dispatch ---------------------------------------------------------------------------- */

static bool flow__agent_free_slot(const flow_agent *a)
{
    return !a->draining && a->nheld < a->capacity;
}

typedef struct flow_lane_ctx {
    bool lane[FLOW_QUEUE_LANES];
} flow_lane_ctx;

static bool flow__lane_ok(int lane, void *user)
{
    return ((flow_lane_ctx *)user)->lane[lane];
}

/* Star and hierarchical: the coordinator (or the team lead of `team`) hands queued tasks to
 * free agents chosen by the load balancer. */
static void flow__dispatch_pool(flow_state *s, flow_swarm *sw, flow_events *ev, int qi, int team)
{
    flow_agent *lead = NULL;
    if (team >= 0) {
        for (size_t i = 0; i < sw->nagents && lead == NULL; i++) {
            if (sw->agents[i]->role == team && !sw->agents[i]->draining) {
                lead = sw->agents[i];
            }
        }
    }
    flow_lb_cand cand[64];
    flow_agent *ca[64];
    while (flow_breaker_allows(&sw->cb) && sw->queue[qi].total > 0) {
        flow_lane_ctx ctx = {{false}};
        for (size_t i = 0; i < sw->nagents; i++) {
            flow_agent *a = sw->agents[i];
            if ((team < 0 || a->role == team) && flow__agent_free_slot(a)) {
                ctx.lane[0] = true;
                ctx.lane[1 + a->role] = true;
            }
        }
        flow_qnode *n = flow_queue_pick(&sw->queue[qi], flow__lane_ok, &ctx);
        if (n == NULL) {
            return;
        }
        flow_task *t = FLOW_TASK_OF(n);
        /* candidates: free agents that may run it, the team lead only when no one else can,
         * at most 64 considered (in join order) */
        size_t nc = 0;
        for (int pass = 0; pass < 2 && nc == 0; pass++) {
            for (size_t i = 0; i < sw->nagents && nc < 64; i++) {
                flow_agent *a = sw->agents[i];
                if ((team >= 0 && a->role != team) || !flow__agent_free_slot(a) ||
                    (t->role >= 0 && a->role != t->role) || (pass == 0 && a == lead)) {
                    continue;
                }
                ca[nc] = a;
                cand[nc] = (flow_lb_cand){a->seq, a->nheld, a->weight, &a->wrr_cur};
                nc++;
            }
        }
        int k = flow_lb_pick(&sw->lb[qi], cand, nc);
        flow__assign(s, sw, ev, t, ca[k]);
    }
}

/* Ring: stage i of a task runs on the agent at position i mod size of the ring (join order,
 * draining agents left out); new tasks enter at position 0. */
static void flow__dispatch_ring(flow_state *s, flow_swarm *sw, flow_events *ev)
{
    flow_agent *ring[1024]; /* max_agents is at most 300 */
    size_t k = 0;
    for (size_t i = 0; i < sw->nagents && k < sizeof ring / sizeof ring[0]; i++) {
        if (!sw->agents[i]->draining) {
            ring[k++] = sw->agents[i];
        }
    }
    if (k == 0) {
        return;
    }
    for (size_t i = 0; i < sw->nring && flow_breaker_allows(&sw->cb);) {
        flow_task *t = sw->ring_wait[i];
        flow_agent *a = ring[(size_t)t->stage % k];
        if (flow__agent_free_slot(a)) {
            flow__ring_drop(sw, t);
            flow__assign(s, sw, ev, t, a);
        } else {
            i++;
        }
    }
    while (flow_breaker_allows(&sw->cb) && flow__agent_free_slot(ring[0])) {
        flow_qnode *n = flow_queue_pick(&sw->queue[FLOW_SWARM_QUEUE], NULL, NULL);
        if (n == NULL) {
            return;
        }
        flow_task *t = FLOW_TASK_OF(n);
        if (t->stages == 0) {
            t->stages = (int)k;
        }
        flow__assign(s, sw, ev, t, ring[0]);
    }
}

/* Mesh: free agents pull from the shared queue (fewest held first, then the one free the
 * longest), holding up to capacity + prefetch; an agent with nothing to do and nothing it can
 * pull steals the newest not-yet-started task of the peer with the longest local queue. */
static void flow__dispatch_mesh(flow_state *s, flow_swarm *sw, flow_events *ev)
{
    for (;;) {
        if (!flow_breaker_allows(&sw->cb)) {
            return;
        }
        bool progressed = false;
        /* pull */
        if (sw->queue[FLOW_SWARM_QUEUE].total > 0) {
            flow_agent *best = NULL;
            flow_qnode *n = NULL;
            /* try agents in pull order until one can take something */
            bool tried[1024] = {false};
            for (;;) {
                best = NULL;
                for (size_t i = 0; i < sw->nagents && i < 1024; i++) {
                    flow_agent *a = sw->agents[i];
                    if (tried[i] || a->draining ||
                        a->nheld >= a->capacity + sw->cfg.mesh_prefetch) {
                        continue;
                    }
                    if (best == NULL || a->nheld < best->nheld ||
                        (a->nheld == best->nheld && a->ready_seq < best->ready_seq)) {
                        best = a;
                    }
                }
                if (best == NULL) {
                    break;
                }
                for (size_t i = 0; i < sw->nagents; i++) {
                    if (sw->agents[i] == best) {
                        tried[i] = true;
                    }
                }
                flow_lane_ctx ctx = {{false}};
                ctx.lane[0] = true;
                ctx.lane[1 + best->role] = true;
                n = flow_queue_pick(&sw->queue[FLOW_SWARM_QUEUE], flow__lane_ok, &ctx);
                if (n) {
                    break;
                }
            }
            if (best && n) {
                flow__assign(s, sw, ev, FLOW_TASK_OF(n), best);
                continue;
            }
        }
        /* steal */
        for (size_t i = 0; i < sw->nagents && !progressed; i++) {
            flow_agent *thief = sw->agents[i];
            if (thief->draining || thief->nheld > 0) {
                continue;
            }
            flow_agent *victim = NULL;
            int vlocal = 0;
            for (size_t j = 0; j < sw->nagents; j++) {
                flow_agent *v = sw->agents[j];
                int local = 0;
                for (int h = 0; h < v->nheld; h++) {
                    const flow_task *t = v->held[h];
                    local += !t->ran && (t->role < 0 || t->role == thief->role);
                }
                if (v != thief && local > vlocal) {
                    victim = v;
                    vlocal = local;
                }
            }
            if (victim == NULL) {
                continue;
            }
            for (int h = victim->nheld - 1; h >= 0; h--) {
                flow_task *t = victim->held[h];
                if (!t->ran && (t->role < 0 || t->role == thief->role)) {
                    flow__release(s, ev, victim, t);
                    flow_event *e =
                        flow__emit(s, ev, FLOW_EV_TASK_STOLEN, sw->id, thief->id, t->id);
                    if (e) {
                        flow__copy_id(e->text, victim->id);
                    }
                    flow__assign(s, sw, ev, t, thief);
                    progressed = true;
                    break;
                }
            }
        }
        if (!progressed) {
            return;
        }
    }
}

static void flow__dispatch(flow_state *s, flow_swarm *sw, flow_events *ev)
{
    switch (sw->topology) {
    case FLOW_TOPO_STAR: flow__dispatch_pool(s, sw, ev, FLOW_SWARM_QUEUE, -1); break;
    case FLOW_TOPO_HIERARCHICAL:
        for (int r = 0; r < FLOW_ROLES; r++) {
            flow__dispatch_pool(s, sw, ev, r, r);
        }
        break;
    case FLOW_TOPO_RING: flow__dispatch_ring(s, sw, ev); break;
    case FLOW_TOPO_MESH: flow__dispatch_mesh(s, sw, ev); break;
    }
}

static void flow__dispatch_all(flow_state *s, flow_events *ev)
{
    for (flow_swarm *sw = s->swarm_head; sw; sw = sw->next) {
        flow__dispatch(s, sw, ev);
    }
}

/* ---- pools ------------------------------------------------------------------------------- */

static void flow__pool_fill(flow_state *s, flow_swarm *sw, flow_events *ev)
{
    for (int r = 0; r < FLOW_ROLES; r++) {
        int have = flow__role_count(sw, r) + sw->spawning[r];
        int want = sw->cfg.pool_min[r] - have;
        int room = sw->cfg.max_agents - flow__live_count(sw) - sw->spawning[0] - sw->spawning[1] -
                   sw->spawning[2];
        if (want > room) {
            want = room;
        }
        if (want > 0) {
            sw->spawning[r] += want;
            flow_event *e = flow__emit(s, ev, FLOW_EV_AGENT_NEEDED, sw->id, NULL, NULL);
            if (e) {
                e->role = r;
                e->count = want;
            }
        }
    }
}

static void flow__breaker_event(flow_state *s, flow_swarm *sw, flow_events *ev)
{
    flow__timers_breaker(s, sw);
    flow_event *e = flow__emit(s, ev, FLOW_EV_BREAKER, sw->id, NULL, NULL);
    if (e) {
        e->count = (int)sw->cb.state;
    }
}

/* ---- task outcomes ----------------------------------------------------------------------- */

static void flow__task_finish(flow_state *s, flow_events *ev, flow_task *t, flow_task_state st,
                              const char *error);

/* Fails or cancels everything that (transitively) waits for t. Iterative: chains may be long. */
static void flow__fail_dependents(flow_state *s, flow_events *ev, flow_task *root)
{
    size_t cap = 16, n = 0;
    flow_task **stack = malloc(cap * sizeof *stack);
    if (stack == NULL) {
        return;
    }
    stack[n++] = root;
    while (n > 0) {
        flow_task *t = stack[--n];
        for (size_t i = 0; i < t->ndependents; i++) {
            flow_task *d = flow_hget(&s->tasks, t->dependents[i]);
            if (d == NULL || flow__terminal(d->state)) {
                continue;
            }
            char why[FLOW_ERROR_MAX];
            snprintf(why, sizeof why, "dependency_%s: %s",
                     t->state == FLOW_TASK_CANCELLED ? "cancelled" : "failed", t->id);
            flow__task_finish(s, ev, d, FLOW_TASK_FAILED, why);
            if (n == cap) {
                flow_task **v = realloc(stack, cap * 2 * sizeof *v);
                if (v == NULL) {
                    break;
                }
                stack = v;
                cap *= 2;
            }
            stack[n++] = d;
        }
    }
    free(stack);
}

/* Ends a task that is not terminal: out of any queue or agent (ABORT if it was running). */
static void flow__task_finish(flow_state *s, flow_events *ev, flow_task *t, flow_task_state st,
                              const char *error)
{
    flow_swarm *sw = flow_hget(&s->swarms, t->swarm);
    if (t->state == FLOW_TASK_PENDING) {
        flow__dequeue(sw, t);
    } else if (t->agent[0]) {
        flow_agent *a = flow_hget(&s->agents, t->agent);
        if (t->ran) {
            flow__emit(s, ev, FLOW_EV_TASK_ABORT, t->swarm, t->agent, t->id);
            if (sw && st == FLOW_TASK_CANCELLED) {
                flow_breaker_trial_void(&sw->cb);
            }
        }
        if (a) {
            flow__release(s, ev, a, t);
        }
    }
    flow__copy_id(t->agent, "");
    t->ran = false;
    flow__set_state(sw, t, st);
    flow__fin_push(s, t);
    flow__timers_task(s, t);
    t->t_finished = s->now;
    if (error) {
        snprintf(t->error, sizeof t->error, "%s", error);
    }
    flow_event *e =
        flow__emit(s, ev, st == FLOW_TASK_CANCELLED ? FLOW_EV_TASK_CANCELLED : FLOW_EV_TASK_FAILED,
                   t->swarm, NULL, t->id);
    if (e && error) {
        snprintf(e->text, sizeof e->text, "%s", error);
    }
    flow__fail_dependents(s, ev, t);
}

/* A held task lost its run (crash, error with retry): back to the queue or failed. */
static void flow__retry_or_fail(flow_state *s, flow_swarm *sw, flow_events *ev, flow_task *t,
                                const char *reason)
{
    flow__add_reason(t, reason);
    t->retries++;
    if (t->retries > t->max_retries) {
        char err[FLOW_ERROR_MAX];
        snprintf(err, sizeof err, "max_retries_exceeded (%d): %s", t->max_retries, reason);
        flow__task_finish(s, ev, t, FLOW_TASK_FAILED, err);
        return;
    }
    flow__enqueue(sw, t);
    flow_event *e = flow__emit(s, ev, FLOW_EV_TASK_REQUEUED, sw->id, NULL, t->id);
    if (e) {
        e->count = t->retries;
        snprintf(e->text, sizeof e->text, "%s", reason);
    }
}

/* ---- command handlers -------------------------------------------------------------------- */

typedef struct flow_ctx {
    flow_state *s;
    flow_events *ev;
    char *err;
    size_t errsize;
} flow_ctx;

/* A lookup that names what is missing in the refusal message. */
static void *flow__find(flow_ctx *x, const hmap *m, const char *what, const char *id)
{
    void *r = flow_hget(m, id);
    if (r == NULL) {
        flow__err(x->err, x->errsize, "no %s %s", what, id);
    }
    return r;
}
/* Checks the id of a record to create: valid and not taken. */
static int flow__new_id(flow_ctx *x, const hmap *m, const char *what, const char *id)
{
    if (!flow_id_valid(id)) {
        flow__err(x->err, x->errsize, "invalid %s id", what);
        return FLOW_EINVAL;
    }
    if (flow_hget(m, id)) {
        flow__err(x->err, x->errsize, "%s %s exists", what, id);
        return FLOW_EEXIST;
    }
    return 0;
}
#define flow__find_swarm(x, id) ((flow_swarm *)flow__find((x), &(x)->s->swarms, "swarm", (id)))
#define flow__find_agent(x, id) ((flow_agent *)flow__find((x), &(x)->s->agents, "agent", (id)))
#define flow__find_task(x, id) ((flow_task *)flow__find((x), &(x)->s->tasks, "task", (id)))

static int flow__swarm_create(flow_ctx *x, const flow_cmd *c)
{
    flow_state *s = x->s;
    int rc = flow__new_id(x, &s->swarms, "swarm", c->swarm);
    if (rc != 0) {
        return rc;
    }
    if ((unsigned)c->topology > FLOW_TOPO_MESH) {
        flow__err(x->err, x->errsize, "invalid topology");
        return FLOW_EINVAL;
    }
    flow_swarm *sw = flow__swarm_new(c->swarm, c->topology, &c->config);
    if (sw == NULL) {
        return FLOW_ENOMEM;
    }
    sw->seq = ++s->seq;
    flow__swarm_link(s, sw);
    flow__emit(s, x->ev, FLOW_EV_SWARM_CREATED, sw->id, NULL, NULL);
    flow__pool_fill(s, sw, x->ev);
    return 0;
}

static void flow__agent_unlink(flow_state *s, flow_swarm *sw, flow_agent *a)
{
    flow__swarm_drop_agent(sw, a);
    dheap_remove(&s->timers, &a->tm.node);
    flow_hdel(&s->agents, a->id);
    flow__agent_free(a);
}

static int flow__swarm_destroy(flow_ctx *x, const flow_cmd *c)
{
    flow_state *s = x->s;
    flow_swarm *sw = flow__find_swarm(x, c->swarm);
    if (sw == NULL) {
        return FLOW_ENOTFOUND;
    }
    for (flow_task *t = s->task_head; t; t = t->next) {
        if (strcmp(t->swarm, sw->id) == 0 && !flow__terminal(t->state)) {
            flow__task_finish(s, x->ev, t, FLOW_TASK_CANCELLED, "swarm_destroyed");
        }
    }
    while (sw->nagents > 0) {
        flow_agent *a = sw->agents[sw->nagents - 1];
        flow__emit(s, x->ev, FLOW_EV_AGENT_REMOVED, sw->id, a->id, NULL);
        flow__agent_unlink(s, sw, a);
    }
    for (flow_task *t = s->task_head; t;) {
        flow_task *next = t->next;
        if (strcmp(t->swarm, sw->id) == 0) {
            flow__task_unlink(s, t);
        }
        t = next;
    }
    flow__emit(s, x->ev, FLOW_EV_SWARM_DESTROYED, sw->id, NULL, NULL);
    FLOW_DL_UNLINK(s->swarm_head, s->swarm_tail, sw);
    dheap_remove(&s->timers, &sw->tm.node);
    flow_hdel(&s->swarms, sw->id);
    flow__swarm_free(sw);
    return 0;
}

static int flow__swarm_scale(flow_ctx *x, const flow_cmd *c)
{
    flow_state *s = x->s;
    flow_swarm *sw = flow__find_swarm(x, c->swarm);
    if (sw == NULL) {
        return FLOW_ENOTFOUND;
    }
    if (c->role < 0 || c->role >= FLOW_ROLES || c->count < 0 ||
        c->count > sw->cfg.pool_max[c->role]) {
        flow__err(x->err, x->errsize, "scale needs a role and a count from 0 to the pool max");
        return FLOW_EINVAL;
    }
    sw->cfg.pool_min[c->role] = c->count;
    /* drain the excess: idle agents first (newest first), then busy ones */
    int excess = flow__role_count(sw, c->role) - c->count;
    for (int pass = 0; pass < 2 && excess > 0; pass++) {
        for (size_t i = sw->nagents; i-- > 0 && excess > 0;) {
            flow_agent *a = sw->agents[i];
            if (a->role != c->role || a->draining || (pass == 0 && a->nheld > 0)) {
                continue;
            }
            a->draining = true;
            excess--;
            if (a->nheld == 0) {
                flow__emit(s, x->ev, FLOW_EV_AGENT_RETIRE, sw->id, a->id, NULL);
            }
        }
    }
    flow__timers_role(s, sw, c->role);
    flow__pool_fill(s, sw, x->ev);
    return 0;
}

static int flow__agent_add(flow_ctx *x, const flow_cmd *c)
{
    flow_state *s = x->s;
    flow_swarm *sw = flow__find_swarm(x, c->swarm);
    if (sw == NULL) {
        return FLOW_ENOTFOUND;
    }
    int rc = flow__new_id(x, &s->agents, "agent", c->agent);
    if (rc != 0) {
        return rc;
    }
    if (c->role < 0 || c->role >= FLOW_ROLES || c->weight < 1 || c->capacity < 1 ||
        c->capacity > FLOW_MAX_CAPACITY) {
        flow__err(x->err, x->errsize, "agent needs a role, weight >= 1, capacity 1..%d",
                  FLOW_MAX_CAPACITY);
        return FLOW_EINVAL;
    }
    if (flow__role_count(sw, c->role) >= sw->cfg.pool_max[c->role] ||
        flow__live_count(sw) >= sw->cfg.max_agents) {
        flow__err(x->err, x->errsize, "pool of %s in swarm %s is full", flow_role_name(c->role),
                  sw->id);
        return FLOW_EPOOL_FULL;
    }
    flow_agent *a = calloc(1, sizeof *a);
    if (a == NULL || flow__swarm_add_agent(sw, a) != 0) {
        free(a);
        return FLOW_ENOMEM;
    }
    flow__copy_id(a->id, c->agent);
    flow__copy_id(a->swarm, sw->id);
    a->role = c->role;
    a->executor = c->executor ? json_deep_copy(c->executor) : NULL;
    a->weight = c->weight;
    a->capacity = c->capacity;
    a->seq = ++s->seq;
    a->ready_seq = a->seq;
    a->idle_since = s->now;
    flow__agent_link(s, a);
    flow__timers_role(s, sw, a->role);
    if (c->pool && sw->spawning[c->role] > 0) {
        sw->spawning[c->role]--;
    }
    flow_event *e = flow__emit(s, x->ev, FLOW_EV_AGENT_ADDED, sw->id, a->id, NULL);
    if (e) {
        e->role = a->role;
    }
    return 0;
}

static int flow__agent_spawn_failed(flow_ctx *x, const flow_cmd *c)
{
    flow_swarm *sw = flow__find_swarm(x, c->swarm);
    if (sw == NULL) {
        return FLOW_ENOTFOUND;
    }
    if (c->role < 0 || c->role >= FLOW_ROLES) {
        return FLOW_EINVAL;
    }
    if (sw->spawning[c->role] > 0) {
        sw->spawning[c->role]--;
    }
    return 0;
}

static int flow__agent_drain(flow_ctx *x, const flow_cmd *c)
{
    flow_agent *a = flow__find_agent(x, c->agent);
    if (a == NULL) {
        return FLOW_ENOTFOUND;
    }
    if (a->draining) {
        return 0;
    }
    a->draining = true;
    if (a->nheld == 0) {
        flow__emit(x->s, x->ev, FLOW_EV_AGENT_RETIRE, a->swarm, a->id, NULL);
    }
    /* its locally queued (not started) tasks go back to the queue */
    flow_swarm *sw = flow_hget(&x->s->swarms, a->swarm);
    for (int i = a->nheld - 1; i >= 0; i--) {
        flow_task *t = a->held[i];
        if (!t->ran) {
            flow__release(x->s, x->ev, a, t);
            flow__enqueue(sw, t);
        }
    }
    flow__timers_role(x->s, sw, a->role);
    flow__pool_fill(x->s, sw, x->ev);
    return 0;
}

static int flow__agent_gone(flow_ctx *x, const flow_cmd *c, bool crashed)
{
    flow_state *s = x->s;
    flow_agent *a = flow__find_agent(x, c->agent);
    if (a == NULL) {
        return FLOW_ENOTFOUND;
    }
    flow_swarm *sw = flow_hget(&s->swarms, a->swarm);
    char reason[FLOW_ERROR_MAX];
    snprintf(reason, sizeof reason, "agent %.63s crashed: %.150s", a->id,
             c->text[0] ? c->text : "unknown");
    a->draining = false; /* it is gone: no retire event for it */
    while (a->nheld > 0) {
        flow_task *t = a->held[a->nheld - 1];
        bool ran = t->ran;
        flow__release(s, x->ev, a, t);
        if (crashed && ran) {
            flow__retry_or_fail(s, sw, x->ev, t, reason);
        } else {
            flow__enqueue(sw, t);
            flow_event *e = flow__emit(s, x->ev, FLOW_EV_TASK_REQUEUED, sw->id, NULL, t->id);
            if (e) {
                e->count = t->retries;
                snprintf(e->text, sizeof e->text, "agent %s removed", a->id);
            }
        }
    }
    flow_event *e = flow__emit(s, x->ev, FLOW_EV_AGENT_REMOVED, sw->id, a->id, NULL);
    if (e) {
        e->role = a->role;
        if (crashed) {
            snprintf(e->text, sizeof e->text, "%s", reason);
        }
    }
    int role = a->role;
    flow__agent_unlink(s, sw, a);
    flow__timers_role(s, sw, role);
    if (crashed && flow_breaker_failure(&sw->cb, s->now)) {
        flow__breaker_event(s, sw, x->ev);
    }
    flow__pool_fill(s, sw, x->ev);
    return 0;
}

static int flow__task_submit(flow_ctx *x, const flow_cmd *c)
{
    flow_state *s = x->s;
    flow_swarm *sw = flow__find_swarm(x, c->swarm);
    if (sw == NULL) {
        return FLOW_ENOTFOUND;
    }
    int rc = flow__new_id(x, &s->tasks, "task", c->task);
    if (rc != 0) {
        return rc;
    }
    if (c->prio < 0 || c->prio > FLOW_PRIO_LOW || c->role < FLOW_ROLE_NONE ||
        c->role >= FLOW_ROLES || c->input == NULL || c->ndeps > FLOW_MAX_DEPS ||
        c->max_retries < -1) {
        flow__err(x->err, x->errsize, "task needs an input, a priority and a valid role");
        return FLOW_EINVAL;
    }
    for (size_t i = 0; i < c->ndeps; i++) {
        if (strcmp(c->deps[i], c->task) == 0 || flow_hget(&s->tasks, c->deps[i]) == NULL) {
            flow__err(x->err, x->errsize, "unknown dependency %s", c->deps[i]);
            return FLOW_EDEPS;
        }
    }
    if (sw->count[FLOW_TASK_PENDING] >= (size_t)sw->cfg.queue_limit) {
        flow__err(x->err, x->errsize, "queue_full: swarm %s holds %d pending tasks", sw->id,
                  sw->cfg.queue_limit);
        return FLOW_EQUEUE_FULL;
    }
    flow_task *t = calloc(1, sizeof *t);
    if (t == NULL) {
        return FLOW_ENOMEM;
    }
    if (c->ndeps > 0) {
        t->deps = malloc(c->ndeps * sizeof *t->deps);
        if (t->deps == NULL) {
            free(t);
            return FLOW_ENOMEM;
        }
        memcpy(t->deps, c->deps, c->ndeps * sizeof *t->deps);
        t->ndeps = c->ndeps;
    }
    flow__copy_id(t->id, c->task);
    flow__copy_id(t->swarm, sw->id);
    t->prio = c->prio;
    t->role = c->role;
    t->input = json_deep_copy(c->input);
    t->max_retries = c->max_retries >= 0 ? c->max_retries : sw->cfg.max_retries;
    t->deadline = c->deadline;
    t->t_created = s->now;
    snprintf(t->trace_id, sizeof t->trace_id, "%s", c->trace_id);
    t->team = -1;
    t->seq = ++s->seq;
    t->state = FLOW_TASK_PENDING;
    sw->count[FLOW_TASK_PENDING]++;
    flow__task_link(s, t);
    flow_event *e = flow__emit(s, x->ev, FLOW_EV_TASK_ACCEPTED, sw->id, NULL, t->id);
    if (e) {
        e->count = t->prio;
        e->role = t->role;
    }
    const flow_task *bad = NULL;
    for (size_t i = 0; i < t->ndeps; i++) {
        flow_task *d = flow_hget(&s->tasks, t->deps[i]);
        if (d->state == FLOW_TASK_FAILED || d->state == FLOW_TASK_CANCELLED) {
            bad = bad ? bad : d;
        } else if (d->state != FLOW_TASK_COMPLETED) {
            t->deps_waiting++;
            flow__task_add_dependent(d, t->id);
        }
    }
    if (bad) {
        char why[FLOW_ERROR_MAX];
        snprintf(why, sizeof why, "dependency_%s: %s",
                 bad->state == FLOW_TASK_CANCELLED ? "cancelled" : "failed", bad->id);
        t->deps_waiting = 0;
        flow__task_finish(s, x->ev, t, FLOW_TASK_FAILED, why);
        return 0;
    }
    flow__enqueue(sw, t);
    flow__timers_task(s, t);
    return 0;
}

/* Validates a report from an agent about a task it holds and runs. */
static int flow__check_held(flow_ctx *x, const flow_cmd *c, flow_task **tp, flow_agent **ap)
{
    flow_task *t = flow__find_task(x, c->task);
    if (t == NULL) {
        return FLOW_ENOTFOUND;
    }
    if ((t->state != FLOW_TASK_ASSIGNED && t->state != FLOW_TASK_RUNNING) || !t->ran ||
        strcmp(t->agent, c->agent) != 0) {
        flow__err(x->err, x->errsize, "task %s is %s and not run by agent %s", t->id,
                  flow_task_state_name(t->state), c->agent);
        return FLOW_ESTATE;
    }
    *tp = t;
    *ap = flow_hget(&x->s->agents, c->agent);
    return *ap ? 0 : FLOW_ENOTFOUND;
}

static int flow__task_assign(flow_ctx *x, const flow_cmd *c)
{
    flow_task *t = flow__find_task(x, c->task);
    if (t == NULL) {
        return FLOW_ENOTFOUND;
    }
    flow_agent *a = flow__find_agent(x, c->agent);
    if (a == NULL) {
        return FLOW_ENOTFOUND;
    }
    flow_swarm *sw = flow_hget(&x->s->swarms, t->swarm);
    if (t->state != FLOW_TASK_PENDING || t->deps_waiting > 0 || strcmp(a->swarm, t->swarm) != 0 ||
        !flow__agent_free_slot(a) || (t->role >= 0 && t->role != a->role) ||
        !flow_breaker_allows(&sw->cb)) {
        flow__err(x->err, x->errsize, "task %s cannot go to agent %s now", t->id, a->id);
        return FLOW_ESTATE;
    }
    if (sw->topology == FLOW_TOPO_RING && t->stages == 0) {
        t->stages = flow__live_count(sw);
    }
    flow__dequeue(sw, t);
    flow__assign(x->s, sw, x->ev, t, a);
    return 0;
}

static int flow__task_start(flow_ctx *x, const flow_cmd *c)
{
    flow_task *t;
    flow_agent *a;
    int rc = flow__check_held(x, c, &t, &a);
    if (rc != 0) {
        return rc;
    }
    if (t->state != FLOW_TASK_ASSIGNED) {
        flow__err(x->err, x->errsize, "task %s already running", t->id);
        return FLOW_ESTATE;
    }
    flow__set_state(flow_hget(&x->s->swarms, t->swarm), t, FLOW_TASK_RUNNING);
    if (t->t_started == 0) {
        t->t_started = x->s->now;
    }
    flow__emit(x->s, x->ev, FLOW_EV_TASK_STARTED, t->swarm, a->id, t->id);
    return 0;
}

/* An agent reports the outcome of a task it runs: checked, the agent's slot freed, the
 * breaker fed. */
static int flow__outcome(flow_ctx *x, const flow_cmd *c, bool ok, flow_task **tp, flow_agent **ap,
                         flow_swarm **swp)
{
    int rc = flow__check_held(x, c, tp, ap);
    if (rc != 0) {
        return rc;
    }
    flow_state *s = x->s;
    flow_task *t = *tp;
    flow_agent *a = *ap;
    flow_swarm *sw = flow_hget(&s->swarms, t->swarm);
    *(ok ? &a->completed : &a->failed) += 1;
    flow__release(s, x->ev, a, t);
    flow__copy_id(t->agent, "");
    t->ran = false;
    if (ok ? flow_breaker_success(&sw->cb) : flow_breaker_failure(&sw->cb, s->now)) {
        flow__breaker_event(s, sw, x->ev);
    }
    *swp = sw;
    return 0;
}

static int flow__task_complete(flow_ctx *x, const flow_cmd *c)
{
    flow_state *s = x->s;
    flow_task *t;
    flow_agent *a;
    flow_swarm *sw;
    int rc = flow__outcome(x, c, true, &t, &a, &sw);
    if (rc != 0) {
        return rc;
    }
    json_t *result = c->result ? json_deep_copy(c->result) : json_null();
    if (sw->topology == FLOW_TOPO_RING && t->stage + 1 < t->stages) {
        t->stage++;
        json_decref(t->stage_input);
        t->stage_input = result;
        flow__enqueue(sw, t);
        flow_event *e = flow__emit(s, x->ev, FLOW_EV_TASK_STAGE, sw->id, a->id, t->id);
        if (e) {
            e->count = t->stage;
            e->data = json_incref(result);
        }
        return 0;
    }
    flow__set_state(sw, t, FLOW_TASK_COMPLETED);
    flow__fin_push(s, t);
    flow__timers_task(s, t);
    t->result = result;
    t->t_finished = s->now;
    flow_event *e = flow__emit(s, x->ev, FLOW_EV_TASK_COMPLETED, sw->id, a->id, t->id);
    if (e) {
        e->data = json_incref(result);
    }
    for (size_t i = 0; i < t->ndependents; i++) {
        flow_task *d = flow_hget(&s->tasks, t->dependents[i]);
        if (d && d->state == FLOW_TASK_PENDING && d->deps_waiting > 0 && --d->deps_waiting == 0) {
            flow_swarm *dsw = flow_hget(&s->swarms, d->swarm);
            flow__enqueue(dsw, d);
        }
    }
    return 0;
}

static int flow__task_fail(flow_ctx *x, const flow_cmd *c)
{
    flow_state *s = x->s;
    flow_task *t;
    flow_agent *a;
    flow_swarm *sw;
    int rc = flow__outcome(x, c, false, &t, &a, &sw);
    if (rc != 0) {
        return rc;
    }
    char reason[FLOW_ERROR_MAX];
    snprintf(reason, sizeof reason, "agent %.63s: %.150s", a->id, c->text[0] ? c->text : "error");
    if (sw->cfg.retry_on_error) {
        flow__retry_or_fail(s, sw, x->ev, t, reason);
    } else {
        flow__add_reason(t, reason);
        /* released already: finish neither dequeues nor aborts it */
        flow__task_finish(s, x->ev, t, FLOW_TASK_FAILED, c->text[0] ? c->text : "error");
    }
    return 0;
}

static int flow__task_cancel(flow_ctx *x, const flow_cmd *c)
{
    flow_task *t = flow__find_task(x, c->task);
    if (t == NULL) {
        return FLOW_ENOTFOUND;
    }
    if (flow__terminal(t->state)) {
        flow__err(x->err, x->errsize, "task %s is already %s", t->id,
                  flow_task_state_name(t->state));
        return FLOW_ESTATE;
    }
    flow__task_finish(x->s, x->ev, t, FLOW_TASK_CANCELLED, "cancelled");
    return 0;
}

/* An idle agent's timeout: retired when it is still idle above its role's minimum. */
static void flow__idle_timeout(flow_state *s, flow_events *ev, flow_agent *a)
{
    flow_swarm *sw = flow_hget(&s->swarms, a->swarm);
    if (a->draining || a->nheld > 0 || s->now < a->idle_since + sw->cfg.idle_timeout_ms ||
        flow__role_count(sw, a->role) <= sw->cfg.pool_min[a->role]) {
        return;
    }
    a->draining = true;
    flow__emit(s, ev, FLOW_EV_AGENT_RETIRE, sw->id, a->id, NULL);
    flow__timers_role(s, sw, a->role); /* at the minimum now: the others' timers stop */
}

/* Handles the due timers in (deadline, owner seq) order: deadlines, breaker timeouts, idle
 * agents (the longest idle first: their timeouts are equal); then pool deficits. */
static int flow__tick(flow_ctx *x)
{
    flow_state *s = x->s;
    flow_timer **due;
    size_t n = flow__timers_due(s, &due);
    for (size_t i = 0; i < n; i++) {
        switch (due[i]->kind) {
        case FLOW_TM_DEADLINE: {
            flow_task *t = due[i]->owner;
            if (!flow__terminal(t->state)) {
                flow__task_finish(s, x->ev, t, FLOW_TASK_FAILED, "deadline_exceeded");
            }
            break;
        }
        case FLOW_TM_IDLE: flow__idle_timeout(s, x->ev, due[i]->owner); break;
        case FLOW_TM_BREAKER: {
            flow_swarm *sw = due[i]->owner;
            if (flow_breaker_tick(&sw->cb, s->now)) {
                flow__breaker_event(s, sw, x->ev);
            }
            break;
        }
        }
    }
    free(due);
    for (flow_swarm *sw = s->swarm_head; sw; sw = sw->next) {
        flow__pool_fill(s, sw, x->ev);
    }
    return 0;
}

/* swarm_lease: a strictly greater token makes node the swarm's coordinator. */
static int flow__swarm_lease(flow_ctx *x, const flow_cmd *c)
{
    flow_swarm *sw = flow_hget(&x->s->swarms, c->swarm);
    if (sw == NULL) {
        flow__err(x->err, x->errsize, "no swarm %s", c->swarm);
        return FLOW_ENOTFOUND;
    }
    if (c->token <= sw->lease_token) {
        flow__err(x->err, x->errsize, "stale fencing token %llu (swarm %s is at %llu)",
                  (unsigned long long)c->token, sw->id, (unsigned long long)sw->lease_token);
        return FLOW_ESTATE;
    }
    snprintf(sw->lease_node, sizeof sw->lease_node, "%s", c->node);
    sw->lease_token = c->token;
    return 0;
}

/* A command with a fencing token acts only under its swarm's current lease. */
static int flow__fence(flow_ctx *x, const flow_cmd *c)
{
    if (c->token == 0) {
        return 0;
    }
    const flow_swarm *sw = c->swarm[0] ? flow_hget(&x->s->swarms, c->swarm) : NULL;
    const flow_task *t = sw == NULL && c->task[0] ? flow_hget(&x->s->tasks, c->task) : NULL;
    const flow_agent *a =
        sw == NULL && t == NULL && c->agent[0] ? flow_hget(&x->s->agents, c->agent) : NULL;
    const char *id = sw ? sw->id : t ? flow_task_get_swarm(t) : a ? flow_agent_get_swarm(a) : NULL;
    sw = id ? flow_hget(&x->s->swarms, id) : NULL;
    if (sw && sw->lease_token != c->token) {
        flow__err(x->err, x->errsize, "stale fencing token %llu (swarm %s is at %llu)",
                  (unsigned long long)c->token, sw->id, (unsigned long long)sw->lease_token);
        return FLOW_ESTATE;
    }
    return 0;
}

const char *flow_state_swarm_lease(const flow_state *s, const char *swarm, uint64_t *token)
{
    const flow_swarm *sw = flow_hget(&s->swarms, swarm);
    if (token) {
        *token = sw ? sw->lease_token : 0;
    }
    return sw && sw->lease_node[0] ? sw->lease_node : NULL;
}

int flow_state_apply(flow_state *s, const flow_cmd *c, flow_events *ev, char *err, size_t errsize)
{
    if (err && errsize) {
        err[0] = '\0';
    }
    size_t mark = ev ? ev->n : 0;
    uint64_t old_now = s->now, fin_mark = s->fin_seq;
    if (c->now > s->now) {
        s->now = c->now;
    }
    flow_ctx x = {s, ev, err, errsize};
    int rc = c->type == FLOW_CMD_SWARM_LEASE ? 0 : flow__fence(&x, c);
    switch (rc != 0 ? FLOW_CMD_LAST + 1 : (int)c->type) {
    case FLOW_CMD_LAST + 1: break; /* fenced off */
    case FLOW_CMD_SWARM_CREATE: rc = flow__swarm_create(&x, c); break;
    case FLOW_CMD_SWARM_DESTROY: rc = flow__swarm_destroy(&x, c); break;
    case FLOW_CMD_SWARM_SCALE: rc = flow__swarm_scale(&x, c); break;
    case FLOW_CMD_AGENT_ADD: rc = flow__agent_add(&x, c); break;
    case FLOW_CMD_AGENT_SPAWN_FAILED: rc = flow__agent_spawn_failed(&x, c); break;
    case FLOW_CMD_AGENT_DRAIN: rc = flow__agent_drain(&x, c); break;
    case FLOW_CMD_AGENT_REMOVE: rc = flow__agent_gone(&x, c, false); break;
    case FLOW_CMD_AGENT_CRASHED: rc = flow__agent_gone(&x, c, true); break;
    case FLOW_CMD_TASK_SUBMIT: rc = flow__task_submit(&x, c); break;
    case FLOW_CMD_TASK_ASSIGN: rc = flow__task_assign(&x, c); break;
    case FLOW_CMD_TASK_START: rc = flow__task_start(&x, c); break;
    case FLOW_CMD_TASK_COMPLETE: rc = flow__task_complete(&x, c); break;
    case FLOW_CMD_TASK_FAIL: rc = flow__task_fail(&x, c); break;
    case FLOW_CMD_TASK_CANCEL: rc = flow__task_cancel(&x, c); break;
    case FLOW_CMD_TICK: rc = flow__tick(&x); break;
    case FLOW_CMD_SWARM_LEASE: rc = flow__swarm_lease(&x, c); break;
    default:
        flow__err(err, errsize, "unknown command %d", (int)c->type);
        rc = FLOW_EINVAL;
        break;
    }
    if (rc != 0) {
        /* handlers validate before they change anything */
        s->now = old_now;
        if (ev) {
            for (size_t i = mark; i < ev->n; i++) {
                json_decref(ev->v[i].data);
            }
            ev->n = mark;
        }
        return rc;
    }
    flow__dispatch_all(s, ev);
    flow__retain(s, fin_mark);
    s->applied++;
    return 0;
}

/* ---- lifecycle and lookups --------------------------------------------------------------- */

flow_state *flow_state_new(void)
{
    flow_state *s = calloc(1, sizeof *s);
    if (s) {
        hmap_init(&s->swarms);
        hmap_init(&s->agents);
        hmap_init(&s->tasks);
        dheap_init(&s->timers);
        s->retention = FLOW_TASK_RETENTION_DEFAULT;
    }
    return s;
}

void flow_state_free(flow_state *s)
{
    if (s == NULL) {
        return;
    }
    for (flow_task *t = s->task_head; t;) {
        flow_task *n = t->next;
        flow__task_free(t);
        t = n;
    }
    for (flow_swarm *sw = s->swarm_head; sw;) {
        flow_swarm *n = sw->next;
        for (size_t i = 0; i < sw->nagents; i++) {
            flow__agent_free(sw->agents[i]);
        }
        flow__swarm_free(sw);
        sw = n;
    }
    hmap_free(&s->swarms);
    hmap_free(&s->agents);
    hmap_free(&s->tasks);
    dheap_free(&s->timers);
    free(s);
}

uint64_t flow_state_next_deadline(const flow_state *s)
{
    return dheap_min(&s->timers);
}

uint64_t flow_state_now(const flow_state *s)
{
    return s->now;
}

uint64_t flow_state_applied(const flow_state *s)
{
    return s->applied;
}

const flow_task *flow_state_task(const flow_state *s, const char *task)
{
    return flow_hget(&s->tasks, task);
}

const flow_agent *flow_state_agent(const flow_state *s, const char *agent)
{
    return flow_hget(&s->agents, agent);
}

bool flow_state_has_swarm(const flow_state *s, const char *swarm)
{
    return flow_hget(&s->swarms, swarm) != NULL;
}

const flow_swarm_config *flow_state_swarm_config(const flow_state *s, const char *swarm)
{
    const flow_swarm *sw = flow_hget(&s->swarms, swarm);
    return sw ? &sw->cfg : NULL;
}

int flow_state_swarm_spawning(const flow_state *s, const char *swarm, int role)
{
    const flow_swarm *sw = flow_hget(&s->swarms, swarm);
    return sw && role >= 0 && role < FLOW_ROLES ? sw->spawning[role] : 0;
}

size_t flow_state_swarm_agents(const flow_state *s, const char *swarm, const char **ids, size_t cap)
{
    const flow_swarm *sw = flow_hget(&s->swarms, swarm);
    if (sw == NULL) {
        return 0;
    }
    for (size_t i = 0; i < sw->nagents && i < cap; i++) {
        ids[i] = sw->agents[i]->id;
    }
    return sw->nagents;
}

flow_task_state flow_task_get_state(const flow_task *t)
{
    return t->state;
}
const char *flow_task_get_swarm(const flow_task *t)
{
    return t->swarm;
}
const char *flow_task_get_agent(const flow_task *t)
{
    return t->agent;
}
const char *flow_task_get_trace_id(const flow_task *t)
{
    return t->trace_id;
}
int flow_task_get_retries(const flow_task *t)
{
    return t->retries;
}
const char *flow_agent_get_swarm(const flow_agent *a)
{
    return a->swarm;
}
int flow_agent_get_role(const flow_agent *a)
{
    return a->role;
}
const json_t *flow_agent_get_executor(const flow_agent *a)
{
    return a->executor;
}
int flow_agent_get_capacity(const flow_agent *a)
{
    return a->capacity;
}
flow_agent_state flow_agent_get_state(const flow_agent *a)
{
    return flow__agent_state(a);
}
