/*
 * flow/registry.c — erlmcp_flow_registry: the replica of the flow state machine and the
 * routing table of the flow (seed 002: "gproc-based routing").
 *
 * It owns the flow_state and is the only actor that applies commands to it; everything that
 * changes flow state arrives here as a command (from the API front ends, the agents, the
 * agents' monitors, the tick timer) and every event apply returns is carried out from here:
 * RUN/ABORT go to the agent's pid, pool needs to the swarm actor, finished tasks to the
 * request tracker, state changes to the observers. Agents register on start (id → pid) and
 * the registry monitors them: an abnormal DOWN becomes agent_crashed, a normal one
 * agent_remove. The seed puts the registry with consensus under one_for_all because the two
 * restart together.
 *
 * The apply path (reg__submit): every command goes one of two ways, chosen at start by the
 * flow options.
 *  - local (no Raft configuration: tests, the virtual runtime): the command is applied at
 *    once and its outcome answered;
 *  - raft: the leader proposes the command to the raft actor (consensus/raft.c) and applies
 *    it only when it comes back committed (FLOW_TAG_COMMITTED), in log order; the outcome is
 *    answered then, so an acknowledged command is committed. Every node applies every
 *    committed command to its copy of the state (the same state: the machine is
 *    deterministic and the time comes in the command), but only the leader acts on the
 *    events (agents, swarm actors, timers); followers answer reads from their copy and
 *    refuse changes with not_leader and the leader's address. A node that becomes leader
 *    (after a barrier: its copy has every committed entry) starts the swarm actors and
 *    removes the agents it does not run (they ran on the previous leader): their tasks are
 *    requeued and the pools refilled here. A node that stops leading stops its agents.
 *    With gossip (consensus/gossip_node.c), a leader whose gossip view has lost quorum
 *    (FLOW_TAG_QUORUM "paused") stops acting the same way (agents, swarm actors, timers: no
 *    TASK_RUN, no pool refill) and takes over again, as above, once quorum is back.
 *    Per swarm (the reg__coord_* functions, election.c): a node acts on a swarm only while
 *    it holds the swarm's lease, claimed through the log, and stamps every command it issues
 *    for the swarm with the lease's fencing token. Without gossip the acting leader holds
 *    every lease (claimed at each take-over, the take-over work done per swarm when its claim
 *    commits); with gossip the swarms are spread over the live members by rendezvous hashing
 *    and a follower's coordinator commands are forwarded to the leader by the raft actor.
 *  - pbft (consensus/pbft_node.c): every node submits its commands to its PBFT actor
 *    (reg__pbft_submit), whose client gets them ordered; every node applies the executed
 *    requests in sequence order (FLOW_TAG_COMMITTED, as above) and answers its own callers
 *    then. The acting node is the primary of the current view once settled (FLOW_TAG_ROLE, as
 *    the Raft leader); an agent another node added is removed by it (reg__pbft_foreign_agent).
 * All paths end in reg__done, which answers the request that caused the command.
 *
 * Dispatch latency (the metrics observer's histogram): a task_submit request is stamped with
 * this node's monotonic clock where it enters (the task queue, flow__now_ns; a bare "apply"
 * request here). The stamp is kept in this actor only (`entered`, task → time), never in the
 * command, so replicas stay identical. When this node applies the task's first assignment,
 * the elapsed time goes to the observers as the task_assigned event's "dispatch_ns"; with
 * Raft or PBFT that is the node that took the request (it applies every command). The entry
 * goes at that assignment, at the task's end, when its submission is refused (the task is not
 * in the state) and when the state is replaced, so it lives only while the task is pending.
 * The task_accepted event carries the stamp itself ("entered_ns"): the tracer starts the
 * task's root and "flow.queued" spans there (observer/otel_tracer.c).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "flow/consensus/election.h"
#include "flow/flow_int.h"

typedef struct reg_agent {
    char id[FLOW_ID_MAX];
    sup_pid pid;
    uint64_t mref;
} reg_agent;

typedef struct reg_swarm {
    flow_swarm_arg arg; /* the swarm actor's start argument: lives while this does */
    sup_pid pid;
    uint64_t start_ref; /* pending start_child call, 0 when answered */
    bool destroyed;     /* destroyed while its start was pending */
    int needs[FLOW_ROLES];
    json_t *executor;
    struct reg_swarm *znext; /* destroyed while starting: kept until agent_sup answers */
} reg_swarm;

typedef struct reg_spawn { /* an API agent_spawn waiting for agent_sup and its agent_add */
    uint64_t ref;
    flow_agent_arg *arg; /* owned by the agent once its init runs */
    sup_from from;
    char id[FLOW_ID_MAX];
    char err[256];
    bool started;   /* agent_sup answered: the agent runs */
    bool add_known; /* the agent_add command's outcome is known */
    int add_rc;
    struct reg_spawn *next;
} reg_spawn;

/* What to answer when a command's outcome is known. */
typedef enum reg_kind {
    REG_K_NONE = 0, /* an internal command (agent reports, ticks, monitors) */
    REG_K_SWARM,    /* swarm_create: the swarm */
    REG_K_VIEW,     /* the task, agent or swarm the command names */
    REG_K_AGENT_UP, /* an agent's agent_add: drop the agent if refused */
    REG_K_CLAIM,    /* raft: this node's swarm_lease claim (election.c) */
} reg_kind;

typedef struct reg_wait { /* raft: a proposed command waiting to be committed */
    uint64_t cookie;
    sup_from from;
    reg_kind kind;
    char agent[FLOW_ID_MAX]; /* REG_K_AGENT_UP */
    char swarm[FLOW_ID_MAX]; /* REG_K_CLAIM */
    char task[FLOW_ID_MAX];  /* a refused task_submit: its dispatch stamp goes */
} reg_wait;

typedef struct reg_entered { /* a task_submit request's arrival on this node */
    char task[FLOW_ID_MAX];  /* the key */
    uint64_t ns;             /* flow__now_ns when it entered */
} reg_entered;

typedef struct reg_state {
    flow_state *fs;
    hmap agents; /* id → reg_agent (key: its id) */
    hmap mrefs;  /* monitor ref → reg_agent (key: its mref) */
    hmap swarms; /* id → reg_swarm (key: its arg.id) */
    reg_spawn *spawns;
    reg_swarm *zombies;
    uint64_t tick_ref, tick_at;
    uint64_t refused_queue_full, commands_refused;
    hmap entered; /* task → reg_entered, until its first assignment (dispatch latency) */
    /* the apply path */
    bool raft;           /* commands go through the Raft log */
    bool pbft;           /* commands go through PBFT (reg__pbft_*; leader = acting primary) */
    bool leader;         /* raft: this node leads with every committed entry applied */
    bool paused;         /* raft + gossip: this node's gossip view has no quorum */
    json_t *leader_info; /* raft: the known leader {"id", "address", "api"}, or NULL */
    uint64_t my_id, next_cookie;
    hmap waits; /* cookie → reg_wait (raft) */
    uint64_t committed;
    uint64_t retention; /* ended tasks the state keeps (flow_options.task_retention; 0 = all) */
    /* swarm coordination (raft; election.c, the reg__coord_* functions) */
    char me[FLOW_ID_MAX]; /* this node's lease name (its Raft id) */
    json_t *claiming;     /* swarm → token of this node's claim not yet committed */
    json_t *alive;        /* with gossip: the live members' lease names (FLOW_TAG_MEMBERS) */
    bool coordinating;    /* reg__coordinates when last looked at (reg__acting) */
    uint64_t reclaim_ref; /* timer: claim again after a claim failed without an answer */
    bool synced;          /* raft: a leader was known since the replica started over */
} reg_state;

static void reg__drop_agent(sup_actor *self, reg_state *st, reg_agent *ra, bool stop)
{
    hmap_del(&st->mrefs, &ra->mref, sizeof ra->mref);
    flow_hdel(&st->agents, ra->id);
    sup_demonitor(self, ra->mref, true);
    if (stop) {
        sup_reason r = sup_reason_shutdown();
        sup_exit(sup_self_rt(self), sup_self(self), ra->pid, &r);
    }
    free(ra);
}

static void reg__swarm_free(reg_swarm *rs)
{
    json_decref(rs->executor);
    free(rs);
}

static void reg__swarm_free_v(void *rs)
{
    reg__swarm_free(rs);
}

static void reg__send_needs(sup_actor *self, reg_swarm *rs)
{
    for (int r = 0; r < FLOW_ROLES; r++) {
        if (rs->needs[r] > 0 && !sup_pid_is_null(rs->pid)) {
            json_t *j = json_pack("{s:s, s:i, s:O?}", "role", flow_role_name(r), "count",
                                  rs->needs[r], "executor", rs->executor);
            flow__cast_json(sup_self_rt(self), sup_self(self), rs->pid, FLOW_TAG_NEEDED, j);
            rs->needs[r] = 0;
        }
    }
}

/* Casts an event to the observers `names`, with the integer field `key` = ns unless key is
 * NULL or ns is UINT64_MAX: a first assignment's "dispatch_ns" (its dispatch latency), an
 * acceptance's "entered_ns" (when the submit request entered this node, flow__now_ns). */
static void reg__observe_ns(sup_actor *self, const reg_state *st, const flow_event *e,
                            const char *const *names, size_t n, const char *key, uint64_t ns)
{
    sup_rt *rt = sup_self_rt(self);
    const flow_task *t = e->task[0] ? flow_state_task(st->fs, e->task) : NULL;
    json_t *j = flow_event_to_json(e);
    json_object_del(j, "data"); /* observers need no payloads */
    if (t && flow_task_get_trace_id(t)[0]) {
        json_object_set_new(j, "trace_id", json_string(flow_task_get_trace_id(t)));
    }
    if (key != NULL && ns != UINT64_MAX) {
        json_object_set_new(j, key, json_integer((json_int_t)ns));
    }
    char *text = json_dumps(j, JSON_COMPACT);
    json_decref(j);
    for (size_t i = 0; text && i < n; i++) {
        sup_pid p = sup_whereis(rt, names[i]);
        if (!sup_pid_is_null(p)) {
            sup_cast(rt, sup_self(self), p, FLOW_TAG_OBS, text, strlen(text));
        }
    }
    free(text);
}

static void reg__observe(sup_actor *self, const reg_state *st, const flow_event *e,
                         const char *const *names, size_t n)
{
    reg__observe_ns(self, st, e, names, n, NULL, UINT64_MAX);
}

/* ---- dispatch latency (see the top of the file) -------------------------------------------- */

/* Records when task's submit request entered this node. Not for a task the state or this map
 * already has: the state machine refuses that submission, and the stamp, if any, stays the
 * first one's. */
static void reg__entered_put(reg_state *st, const char *task, uint64_t ns)
{
    if (!flow_id_valid(task) || flow_hget(&st->entered, task) != NULL ||
        flow_state_task(st->fs, task) != NULL) {
        return;
    }
    reg_entered *en = calloc(1, sizeof *en);
    if (en == NULL) {
        return; /* not timed */
    }
    snprintf(en->task, sizeof en->task, "%s", task);
    en->ns = ns;
    if (flow_hput(&st->entered, en->task, en) != 0) {
        free(en);
    }
}

/* Task's stamp (flow__now_ns when its submit request entered this node), UINT64_MAX if none. */
static uint64_t reg__entered_peek(const reg_state *st, const char *task)
{
    const reg_entered *en = task[0] ? flow_hget(&st->entered, task) : NULL;
    return en ? en->ns : UINT64_MAX;
}

/* Forgets task's stamp; returns the time since it entered (ns), UINT64_MAX if none. */
static uint64_t reg__entered_take(sup_actor *self, reg_state *st, const char *task)
{
    reg_entered *en = task[0] ? flow_hdel(&st->entered, task) : NULL;
    if (en == NULL) {
        return UINT64_MAX;
    }
    uint64_t now = flow__now_ns(sup_self_rt(self));
    uint64_t d = now > en->ns ? now - en->ns : 0;
    free(en);
    return d;
}

static void reg__entered_clear(reg_state *st)
{
    flow__hmap_free_values(&st->entered, free);
    hmap_init(&st->entered);
}

/* Whether this node acts on events (runs swarm actors, agents, timers): the ready Raft
 * leader, unless its gossip view lost quorum. */
static bool reg__acts(const reg_state *st)
{
    return (!st->raft && !st->pbft) || (st->leader && !st->paused);
}

/* The local record of a swarm of the state, its actor not started yet (it collects the pool
 * needs meanwhile). */
static reg_swarm *reg__swarm_new(reg_state *st, const char *swarm)
{
    reg_swarm *rs = calloc(1, sizeof *rs);
    if (rs == NULL) {
        return NULL;
    }
    snprintf(rs->arg.id, sizeof rs->arg.id, "%s", swarm);
    const flow_swarm_config *cfg = flow_state_swarm_config(st->fs, swarm);
    rs->executor = cfg && cfg->executor ? json_deep_copy(cfg->executor) : NULL;
    flow_hput(&st->swarms, rs->arg.id, rs);
    return rs;
}

static void reg__swarm_start(sup_actor *self, reg_swarm *rs)
{
    rs->start_ref = sup_sv_start_child(self, sup_whereis(sup_self_rt(self), FLOW_N_SWARM_SUP), NULL,
                                       &rs->arg, 0);
}

static bool reg__coordinates(const reg_state *st);

/* Raft or PBFT: commands go through a replicated log, swarms are coordinated under leases
 * (without gossip the acting leader / settled primary holds every lease). */
static bool reg__replicated(const reg_state *st)
{
    return st->raft || st->pbft;
}

/* Starts the swarm actor of a swarm of the state. */
static void reg__swarm_add(sup_actor *self, reg_state *st, const char *swarm)
{
    reg_swarm *rs = reg__swarm_new(st, swarm);
    if (rs) {
        reg__swarm_start(self, rs);
    }
}

static void reg__coord_created(sup_actor *self, reg_state *st, const char *swarm);

/* Stops a swarm actor and forgets it (freed now, or when its start is answered). */
static void reg__swarm_drop(sup_actor *self, reg_state *st, reg_swarm *rs)
{
    flow_hdel(&st->swarms, rs->arg.id);
    if (!sup_pid_is_null(rs->pid)) {
        sup_reason r = sup_reason_shutdown();
        sup_exit(sup_self_rt(self), sup_self(self), rs->pid, &r);
    }
    if (rs->start_ref) {
        rs->destroyed = true; /* freed when swarm_sup answers */
        rs->znext = st->zombies;
        st->zombies = rs;
    } else {
        reg__swarm_free(rs);
    }
}

/* Carries out what the state machine asked for. */
static void reg__route(sup_actor *self, reg_state *st, const flow_events *ev)
{
    sup_rt *rt = sup_self_rt(self);
    sup_pid me = sup_self(self);
    static const char *const task_obs[] = {FLOW_N_METRICS, FLOW_N_OTEL};
    static const char *const swarm_obs[] = {FLOW_N_METRICS, FLOW_N_BREAKER};
    for (size_t i = 0; i < ev->n; i++) {
        const flow_event *e = &ev->v[i];
        reg_agent *ra = e->agent[0] ? flow_hget(&st->agents, e->agent) : NULL;
        reg_swarm *rs = e->swarm[0] ? flow_hget(&st->swarms, e->swarm) : NULL;
        switch (e->type) {
        case FLOW_EV_SWARM_CREATED:
            if (reg__coordinates(st) && rs == NULL) {
                reg__coord_created(self, st, e->swarm);
            }
            reg__observe(self, st, e, swarm_obs, 2);
            break;
        case FLOW_EV_SWARM_DESTROYED:
            if (rs) {
                reg__swarm_drop(self, st, rs);
            }
            reg__observe(self, st, e, swarm_obs, 2);
            break;
        case FLOW_EV_AGENT_ADDED: reg__observe(self, st, e, swarm_obs, 2); break;
        case FLOW_EV_AGENT_REMOVED:
            if (ra) { /* removed while alive (swarm destroyed): stop it */
                reg__drop_agent(self, st, ra, true);
            }
            reg__observe(self, st, e, swarm_obs, 2);
            break;
        case FLOW_EV_AGENT_NEEDED:
            if (rs && e->role >= 0) {
                rs->needs[e->role] += e->count;
                reg__send_needs(self, rs);
            }
            break;
        case FLOW_EV_AGENT_RETIRE:
            if (ra) {
                sup_reason r = sup_reason_shutdown();
                sup_exit(rt, me, ra->pid, &r); /* its DOWN becomes agent_remove */
            }
            break;
        case FLOW_EV_TASK_RUN:
            if (ra) {
                json_t *j = json_pack("{s:s, s:O, s:i}", "task", e->task, "input", e->data, "stage",
                                      e->count);
                flow__cast_json(rt, me, ra->pid, FLOW_TAG_RUN, j);
            }
            break;
        case FLOW_EV_TASK_ABORT:
            if (ra) {
                sup_cast(rt, me, ra->pid, FLOW_TAG_ABORT, e->task, strlen(e->task));
            }
            break;
        case FLOW_EV_TASK_COMPLETED:
        case FLOW_EV_TASK_FAILED:
        case FLOW_EV_TASK_CANCELLED: {
            (void)reg__entered_take(self, st, e->task); /* ended before any assignment */
            json_t *view = flow_state_task_json(st->fs, e->task);
            if (view) {
                flow__cast_json(rt, me, sup_whereis(rt, FLOW_N_TRACKER), FLOW_TAG_DONE, view);
            }
            reg__observe(self, st, e, task_obs, 2);
            break;
        }
        case FLOW_EV_TASK_ASSIGNED:
            reg__observe_ns(self, st, e, task_obs, 2, "dispatch_ns",
                            reg__entered_take(self, st, e->task));
            break;
        case FLOW_EV_TASK_ACCEPTED: /* the tracer starts the task's spans at the stamp */
            reg__observe_ns(self, st, e, task_obs, 2, "entered_ns", reg__entered_peek(st, e->task));
            break;
        case FLOW_EV_TASK_STARTED:
        case FLOW_EV_TASK_REQUEUED: reg__observe(self, st, e, task_obs, 2); break;
        case FLOW_EV_BREAKER: reg__observe(self, st, e, swarm_obs, 2); break;
        default: break;
        }
    }
}

/* Keeps one timer at the state's next deadline (the earliest of its deadline heap); only on
 * a node that acts (a follower's ticks come from the leader's log). */
static void reg__rearm(sup_actor *self, reg_state *st)
{
    uint64_t next = reg__acts(st) ? flow_state_next_deadline(st->fs) : UINT64_MAX;
    if (next == st->tick_at && st->tick_ref) {
        return;
    }
    if (st->tick_ref) {
        sup_cancel_timer(self, st->tick_ref);
        st->tick_ref = 0;
    }
    st->tick_at = next;
    if (next != UINT64_MAX) {
        uint64_t now = sup_rt_now(sup_self_rt(self));
        st->tick_ref = sup_send_after(self, next > now ? next - now : 0, FLOW_TAG_TICK, NULL, 0);
    }
}

/* Applies a command (its time is in it) and carries out its events. */
static int reg__apply(sup_actor *self, reg_state *st, flow_cmd *c, char *err, size_t errsize)
{
    flow_events ev = {0};
    int rc = flow_state_apply(st->fs, c, &ev, err, errsize);
    if (rc == 0) {
        reg__route(self, st, &ev);
        reg__rearm(self, st);
    } else {
        st->commands_refused++;
        st->refused_queue_full += rc == FLOW_EQUEUE_FULL;
    }
    flow_events_clear(&ev);
    return rc;
}

static int reg__apply_json(sup_actor *self, reg_state *st, const json_t *j, char *err,
                           size_t errsize)
{
    flow_cmd c;
    int rc = flow_cmd_from_json(&c, j, err, errsize);
    if (rc == 0) {
        rc = reg__apply(self, st, &c, err, errsize);
        flow_cmd_clear(&c);
    }
    return rc;
}

static const char *reg__str(const json_t *args, const char *key)
{
    return json_string_value(json_object_get(args, key));
}

/* ---- the apply path ----------------------------------------------------------------------- */

static void reg__spawn_answer(sup_actor *self, reg_state *st, reg_spawn *p);

/* An agent's agent_add is known: refused → the agent goes; a waiting agent_spawn is
 * answered once agent_sup has answered too. */
static void reg__agent_added(sup_actor *self, reg_state *st, const char *id, int rc,
                             const char *err)
{
    if (rc != 0) {
        reg_agent *ra = flow_hget(&st->agents, id);
        if (ra) {
            reg__drop_agent(self, st, ra, true);
        }
    }
    for (reg_spawn **pp = &st->spawns; *pp; pp = &(*pp)->next) {
        reg_spawn *p = *pp;
        if (strcmp(p->id, id) != 0 || p->add_known) {
            continue;
        }
        p->add_known = true;
        p->add_rc = rc;
        if (rc != 0) {
            snprintf(p->err, sizeof p->err, "%s: %.200s", flow_strerror(rc), err);
        }
        if (p->started) {
            *pp = p->next;
            reg__spawn_answer(self, st, p);
        }
        return;
    }
}

static void reg__coord_claim_done(sup_actor *self, reg_state *st, const char *swarm, int rc);

enum { REG_T_RECLAIM = FLOW_TAG_INTERNAL + 300 }; /* timer: reg__coord_claim_done */
#define REG_RECLAIM_MS 1000

/* The outcome of a command is known: answer whoever waits for it. */
static void reg__done(sup_actor *self, reg_state *st, const json_t *cmd, int rc, const char *err,
                      sup_from from, reg_kind kind)
{
    sup_rt *rt = sup_self_rt(self);
    const char *task = reg__str(cmd, "task"), *agent = reg__str(cmd, "agent");
    const char *swarm = reg__str(cmd, "swarm");
    const char *op = reg__str(cmd, "cmd");
    if (rc != 0 && task && op && strcmp(op, "task_submit") == 0 &&
        flow_state_task(st->fs, task) == NULL) {
        (void)reg__entered_take(self, st, task); /* a refused submission: never dispatched */
    }
    switch (kind) {
    case REG_K_NONE: break;
    case REG_K_AGENT_UP: reg__agent_added(self, st, agent ? agent : "", rc, err); break;
    case REG_K_CLAIM: reg__coord_claim_done(self, st, swarm ? swarm : "", rc); break;
    case REG_K_SWARM:
        if (rc == 0) {
            flow__reply_ok(rt, from, flow_state_swarm_json(st->fs, swarm ? swarm : ""));
        } else if (rc == FLOW_ENOTLEADER) {
            flow__reply_not_leader(rt, from, st->leader_info);
        } else {
            flow__reply_err(rt, from, rc, "%s", err);
        }
        break;
    case REG_K_VIEW:
        if (rc == FLOW_ENOTLEADER) {
            flow__reply_not_leader(rt, from, st->leader_info);
        } else if (rc != 0) {
            flow__reply_err(rt, from, rc, "%s", err);
        } else {
            json_t *v = task    ? flow_state_task_json(st->fs, task)
                        : agent ? flow_state_agent_json(st->fs, agent)
                        : swarm ? flow_state_swarm_json(st->fs, swarm)
                                : NULL;
            if (v == NULL && swarm) {
                v = json_pack("{s:s, s:b}", "id", swarm, "destroyed", 1);
            }
            flow__reply_ok(rt, from, v);
        }
        break;
    }
}

/* PBFT: every node submits its commands (borrowed) to its PBFT actor, whose client orders them;
 * the outcome is answered when this node's replica executed the command (reg__committed). */
static void reg__pbft_submit(sup_actor *self, reg_state *st, const json_t *cmd, sup_from from,
                             reg_kind kind)
{
    sup_rt *rt = sup_self_rt(self);
    reg_wait *w = calloc(1, sizeof *w);
    if (w == NULL) {
        reg__done(self, st, cmd, FLOW_ENOMEM, "out of memory", from, kind);
        return;
    }
    w->cookie = ++st->next_cookie;
    w->from = from;
    w->kind = kind;
    snprintf(w->agent, sizeof w->agent, "%s", reg__str(cmd, "agent") ?: "");
    snprintf(w->task, sizeof w->task, "%s", reg__str(cmd, "task") ?: "");
    hmap_put(&st->waits, &w->cookie, sizeof w->cookie, w, NULL);
    json_t *p = json_pack("{s:I, s:O}", "c", (json_int_t)w->cookie, "cmd", cmd);
    if (flow__cast_json(rt, sup_self(self), sup_whereis(rt, FLOW_N_PBFT), FLOW_TAG_PROPOSE, p) !=
        0) {
        hmap_del(&st->waits, &w->cookie, sizeof w->cookie);
        free(w);
        reg__done(self, st, cmd, FLOW_ECONSENSUS, "pbft is not running", from, kind);
    }
}

static void reg__coord_committed(sup_actor *self, reg_state *st, const json_t *cmd, int rc);
static bool reg__coord_forwards(const reg_state *st, reg_kind kind);

/* Submits a command (stolen) through the apply path; its outcome goes to reg__done. */
static void reg__submit(sup_actor *self, reg_state *st, json_t *cmd, sup_from from, reg_kind kind)
{
    char err[256] = "";
    if (!json_is_object(cmd)) {
        json_decref(cmd);
        return;
    }
    json_object_set_new(cmd, "now", json_integer((json_int_t)sup_rt_now(sup_self_rt(self))));
    if (st->pbft) {
        reg__pbft_submit(self, st, cmd, from, kind);
    } else if (!st->raft) {
        int rc = reg__apply_json(self, st, cmd, err, sizeof err);
        reg__done(self, st, cmd, rc, err, from, kind);
    } else if (!st->leader && !reg__coord_forwards(st, kind)) {
        reg__done(self, st, cmd, FLOW_ENOTLEADER, "not the leader", from, kind);
    } else {
        reg_wait *w = calloc(1, sizeof *w);
        sup_rt *rt = sup_self_rt(self);
        if (w == NULL) {
            reg__done(self, st, cmd, FLOW_ENOMEM, "out of memory", from, kind);
            json_decref(cmd);
            return;
        }
        w->cookie = ++st->next_cookie;
        w->from = from;
        w->kind = kind;
        snprintf(w->agent, sizeof w->agent, "%s", reg__str(cmd, "agent") ?: "");
        snprintf(w->swarm, sizeof w->swarm, "%s", reg__str(cmd, "swarm") ?: "");
        snprintf(w->task, sizeof w->task, "%s", reg__str(cmd, "task") ?: "");
        hmap_put(&st->waits, &w->cookie, sizeof w->cookie, w, NULL);
        json_t *p = json_pack("{s:I, s:O}", "c", (json_int_t)w->cookie, "cmd", cmd);
        if (flow__cast_json(rt, sup_self(self), sup_whereis(rt, FLOW_N_RAFT), FLOW_TAG_PROPOSE,
                            p) != 0) {
            hmap_del(&st->waits, &w->cookie, sizeof w->cookie);
            free(w);
            reg__done(self, st, cmd, FLOW_ECONSENSUS, "raft is not running", from, kind);
        }
    }
    json_decref(cmd);
}

/* PBFT: an agent added by another node (an old primary's agent_add executed after this node
 * took over) runs nowhere this node knows: the acting primary removes it (its tasks requeue). */
static void reg__pbft_foreign_agent(sup_actor *self, reg_state *st, const json_t *cmd, int rc)
{
    const char *c = reg__str(cmd, "cmd"), *agent = reg__str(cmd, "agent");
    if (st->pbft && rc == 0 && reg__acts(st) && c && strcmp(c, "agent_add") == 0 && agent &&
        flow_hget(&st->agents, agent) == NULL) {
        reg__submit(self, st,
                    json_pack("{s:s, s:s, s:s}", "cmd", "agent_remove", "agent", agent, "text",
                              "added by a node that is not the primary"),
                    (sup_from){SUP_NOPID, 0}, REG_K_NONE);
    }
}

/* Raft: a committed command, in log order (PBFT: an executed one, in sequence order). */
static void reg__committed(sup_actor *self, reg_state *st, const sup_msg *m)
{
    json_t *e = flow__msg_json(m);
    const json_t *cmd = json_object_get(e, "cmd");
    char err[256] = "";
    int rc = cmd ? reg__apply_json(self, st, cmd, err, sizeof err) : FLOW_EINVAL;
    reg__pbft_foreign_agent(self, st, cmd, rc);
    st->committed++;
    uint64_t origin = (uint64_t)json_integer_value(json_object_get(e, "o"));
    uint64_t cookie = (uint64_t)json_integer_value(json_object_get(e, "c"));
    reg_wait *w = origin == st->my_id ? hmap_del(&st->waits, &cookie, sizeof cookie) : NULL;
    if (w) {
        reg__done(self, st, cmd, rc, err, w->from, w->kind);
        free(w);
    }
    reg__coord_committed(self, st, cmd, rc);
    json_decref(e);
}

/* Raft: a proposal the log did not take. */
static void reg__refused(sup_actor *self, reg_state *st, const sup_msg *m)
{
    json_t *j = flow__msg_json(m);
    uint64_t cookie = (uint64_t)json_integer_value(json_object_get(j, "c"));
    reg_wait *w = hmap_del(&st->waits, &cookie, sizeof cookie);
    if (w) {
        int code = (int)json_integer_value(json_object_get(j, "code"));
        json_t *cmd =
            json_pack("{s:s, s:s, s:s}", "agent", w->agent, "swarm", w->swarm, "task", w->task);
        reg__done(self, st, cmd, code ? code : FLOW_ECONSENSUS, reg__str(j, "message") ?: "",
                  w->from, w->kind);
        json_decref(cmd);
        free(w);
    }
    json_decref(j);
}

/* Stops every local agent and swarm actor (the node stops acting on events). */
static void reg__teardown(sup_actor *self, reg_state *st)
{
    size_t it = 0;
    const hmap_slot *e;
    while ((it = 0, e = hmap_next(&st->agents, &it)) != NULL) {
        reg__drop_agent(self, st, e->val, true);
    }
    while ((it = 0, e = hmap_next(&st->swarms, &it)) != NULL) {
        reg__swarm_drop(self, st, e->val);
    }
    if (st->tick_ref) {
        sup_cancel_timer(self, st->tick_ref);
        st->tick_ref = 0;
        st->tick_at = 0;
    }
    json_object_clear(st->claiming); /* their outcomes may still come: they find nothing */
}

/* Replaces the state (RESET: empty; RESTORE: a snapshot's). */
static void reg__replace(sup_actor *self, reg_state *st, flow_state *fs)
{
    if (fs == NULL) {
        return;
    }
    reg__teardown(self, st);
    reg__entered_clear(st);
    flow_view_clear(sup_self_rt(self), FLOW_VIEW_STATE, st->fs);
    flow_state_free(st->fs);
    st->fs = fs;
    flow_state_set_retention(st->fs, st->retention); /* this node's setting */
    flow_view_set(sup_self_rt(self), FLOW_VIEW_STATE, st->fs);
    st->leader = false;
    st->coordinating = false;
}

/* ---- swarm coordination (election.c) -------------------------------------------------------
 * With Raft, a node acts on a swarm (runs its swarm actor and agents, carries out RUN/ABORT)
 * only while it holds the swarm's lease, and only once its claim (swarm_lease, token + 1) is
 * committed. Every command it issues as the swarm's coordinator (its agents' agent_add and
 * reports, their monitors' agent_remove / agent_crashed, pool spawn failures, the take-over's
 * removals) carries its token, so a command of a deposed coordinator that commits after the
 * next claim is refused by every replica.
 * Who coordinates (reg__coord_alive): with gossip, each swarm's rendezvous choice among the
 * live members (gossip view ∩ Raft voters, FLOW_TAG_MEMBERS), so swarms are spread over the
 * nodes and a follower proposes its commands too (the raft actor forwards them to the
 * leader); without gossip (no liveness view), the acting leader coordinates every swarm. */

/* Whether this node coordinates swarms at all: without Raft always; with gossip any replica
 * not paused that has known a leader since it started over (an election in between does not
 * stop it); without gossip the acting leader. */
static bool reg__coordinates(const reg_state *st)
{
    if (!reg__replicated(st)) {
        return true;
    }
    if (st->alive) {
        return !st->paused && st->synced;
    }
    return reg__acts(st);
}

/* Whether a command of this kind goes to the log from a follower (forwarded to the leader by
 * the raft actor): the coordinator's own commands, when coordinators are spread (gossip).
 * Client requests are redirected instead. */
static bool reg__coord_forwards(const reg_state *st, reg_kind kind)
{
    return st->alive && reg__coordinates(st) && kind != REG_K_SWARM && kind != REG_K_VIEW;
}

/* Whether this node acts on swarm (without Raft: always). */
static bool reg__coord_acts(const reg_state *st, const char *swarm)
{
    return !reg__replicated(st) ||
           (reg__coordinates(st) && election_holds(st->fs, swarm, st->me, NULL));
}

/* The candidates for coordinating a swarm, as this node sees them (malloc'd array of *n
 * borrowed names, or NULL): nobody when this node does not coordinate; with gossip the live
 * members; without, this node (the acting leader coordinates every swarm). */
static const char **reg__coord_alive(const reg_state *st, size_t *n)
{
    *n = 0;
    if (!reg__coordinates(st)) {
        return NULL;
    }
    size_t k = st->alive ? json_array_size(st->alive) : 1;
    const char **v = calloc(k ? k : 1, sizeof *v);
    if (v == NULL) {
        return NULL;
    }
    if (st->alive == NULL) {
        v[(*n)++] = st->me;
    }
    for (size_t i = 0; st->alive && i < k; i++) {
        const char *name = json_string_value(json_array_get(st->alive, i));
        if (name) {
            v[(*n)++] = name;
        }
    }
    return v;
}

/* Submits a command this node issues as its swarm's coordinator, stamped with its token
 * (election_stamp); refused at once (FLOW_ESTATE) when the node does not hold the lease. */
static void reg__submit_fenced(sup_actor *self, reg_state *st, json_t *cmd, sup_from from,
                               reg_kind kind)
{
    if (reg__replicated(st) && json_is_object(cmd) &&
        election_stamp(st->fs, cmd, st->me) == FLOW_ESTATE) {
        char err[160];
        snprintf(err, sizeof err, "this node does not coordinate swarm %s",
                 election_cmd_swarm(st->fs, cmd));
        reg__done(self, st, cmd, FLOW_ESTATE, err, from, kind);
        json_decref(cmd);
        return;
    }
    reg__submit(self, st, cmd, from, kind);
}

/* Proposes the claims this node should make (renew: a take-over claims anew every swarm it
 * coordinates, so that its earlier commands are fenced off); one pending claim per swarm. */
static void reg__coord_claim(sup_actor *self, reg_state *st, bool renew)
{
    size_t n = 0;
    const char **alive = reg__replicated(st) ? reg__coord_alive(st, &n) : NULL;
    if (alive == NULL || n == 0) {
        free(alive);
        return;
    }
    json_t *claims = election_claims(st->fs, st->me, alive, n, renew, 0);
    free(alive);
    size_t i;
    json_t *c;
    json_array_foreach(claims, i, c)
    {
        const char *swarm = reg__str(c, "swarm");
        if (swarm == NULL || json_object_get(st->claiming, swarm)) {
            continue;
        }
        json_object_set(st->claiming, swarm, json_object_get(c, "token"));
        reg__submit(self, st, json_incref(c), (sup_from){SUP_NOPID, 0}, REG_K_CLAIM);
    }
    json_decref(claims);
}

/* A claim's outcome: refused as stale (another claim came first) → claim again from the
 * state as it is now. */
static void reg__coord_claim_done(sup_actor *self, reg_state *st, const char *swarm, int rc)
{
    json_object_del(st->claiming, swarm);
    if (rc == FLOW_ESTATE) {
        reg__coord_claim(self, st, false);
    } else if (rc != 0 && st->reclaim_ref == 0) {
        /* not taken (no leader in time, raft restarting, no memory): try again in a second,
         * or the swarm would stay without a coordinator while the membership is stable */
        st->reclaim_ref = sup_send_after(self, REG_RECLAIM_MS, REG_T_RECLAIM, NULL, 0);
    }
}

/* A swarm was created: its coordinator-to-be keeps the pool needs until its claim commits. */
static void reg__coord_created(sup_actor *self, reg_state *st, const char *swarm)
{
    if (!reg__replicated(st)) {
        reg__swarm_add(self, st, swarm);
        return;
    }
    size_t n;
    const char **alive = reg__coord_alive(st, &n);
    bool wants = alive && election_wants(swarm, st->me, alive, n);
    free(alive);
    if (wants) {
        (void)reg__swarm_new(st, swarm);
        reg__coord_claim(self, st, false);
    }
}

/* This node's claim of swarm is committed: start its swarm actor, remove the agents it does
 * not run (they ran under the previous coordinator: their tasks are requeued without counting
 * a retry), report the previous coordinator's in-flight agent starts as failed, tick (the
 * pools refill here). The removals carry the new token. */
static void reg__coord_takeover(sup_actor *self, reg_state *st, const char *swarm)
{
    reg_swarm *rs = flow_hget(&st->swarms, swarm);
    bool running = rs && (rs->start_ref || !sup_pid_is_null(rs->pid));
    size_t n = flow_state_swarm_agents(st->fs, swarm, NULL, 0);
    const char **agents = n ? calloc(n, sizeof *agents) : NULL;
    n = agents ? flow_state_swarm_agents(st->fs, swarm, agents, n) : 0;
    json_t *gone = json_array();
    for (size_t k = 0; k < n; k++) {
        if (flow_hget(&st->agents, agents[k]) == NULL) {
            json_array_append_new(gone, json_string(agents[k]));
        }
    }
    free(agents);
    size_t i;
    json_t *a;
    json_array_foreach(gone, i, a)
    {
        reg__submit_fenced(self, st,
                           json_pack("{s:s, s:O, s:s}", "cmd", "agent_remove", "agent", a, "text",
                                     "its node no longer coordinates the swarm"),
                           (sup_from){SUP_NOPID, 0}, REG_K_NONE);
    }
    json_decref(gone);
    for (int r = 0; r < FLOW_ROLES && !running; r++) {
        /* needs this node collected are its own starts-to-be, the rest were the previous
         * coordinator's */
        int k = flow_state_swarm_spawning(st->fs, swarm, r) - (rs ? rs->needs[r] : 0);
        for (; k > 0; k--) {
            reg__submit_fenced(self, st,
                               json_pack("{s:s, s:s, s:s, s:s}", "cmd", "agent_spawn_failed",
                                         "swarm", swarm, "role", flow_role_name(r), "text",
                                         "started by a previous coordinator"),
                               (sup_from){SUP_NOPID, 0}, REG_K_NONE);
        }
    }
    if (rs == NULL) {
        reg__swarm_add(self, st, swarm);
    } else if (!running) {
        reg__swarm_start(self, rs);
    }
    reg__submit(self, st, json_pack("{s:s}", "cmd", "tick"), (sup_from){SUP_NOPID, 0}, REG_K_NONE);
}

/* Another node holds swarm now: stop its swarm actor and the local agents (no commands: the
 * new coordinator removes them under its token). */
static void reg__coord_release(sup_actor *self, reg_state *st, const char *swarm)
{
    json_t *mine = json_array();
    size_t it = 0;
    for (const hmap_slot *e; (e = hmap_next(&st->agents, &it)) != NULL;) {
        const reg_agent *ra = e->val;
        const flow_agent *a = flow_state_agent(st->fs, ra->id);
        if (a && strcmp(flow_agent_get_swarm(a), swarm) == 0) {
            json_array_append_new(mine, json_string(ra->id));
        }
    }
    size_t i;
    json_t *id;
    json_array_foreach(mine, i, id)
    {
        reg_agent *ra = flow_hget(&st->agents, json_string_value(id));
        if (ra) {
            reg__drop_agent(self, st, ra, true);
        }
    }
    json_decref(mine);
    reg_swarm *rs = flow_hget(&st->swarms, swarm);
    if (rs) {
        reg__swarm_drop(self, st, rs);
    }
}

/* A committed command: a lease that names this node (acting) → take over the swarm; one that
 * names another node → let go of it. */
static void reg__coord_committed(sup_actor *self, reg_state *st, const json_t *cmd, int rc)
{
    const char *type = reg__str(cmd, "cmd"), *swarm = reg__str(cmd, "swarm");
    const char *node = reg__str(cmd, "node");
    if (!reg__replicated(st) || rc != 0 || type == NULL || strcmp(type, "swarm_lease") != 0 ||
        !swarm || !node) {
        return;
    }
    if (strcmp(node, st->me) == 0 && reg__coordinates(st)) {
        reg__coord_takeover(self, st, swarm);
    } else {
        reg__coord_release(self, st, swarm);
    }
}

/* Raft: this node leads now (with quorum): the cluster's timers run here. */
static void reg__lead(sup_actor *self, reg_state *st)
{
    reg__submit(self, st, json_pack("{s:s}", "cmd", "tick"), (sup_from){SUP_NOPID, 0}, REG_K_NONE);
}

/* Starts or stops coordinating and leading after leadership, quorum or the live members
 * changed (acted: reg__acts before the change). A node that starts coordinating claims anew
 * every swarm it is preferred for (their take-overs run when the claims commit, in
 * reg__coord_takeover); one that stops lets all its swarms go. */
static void reg__acting(sup_actor *self, reg_state *st, bool acted)
{
    bool coord = reg__coordinates(st);
    if (coord && !st->coordinating) {
        st->coordinating = true;
        reg__coord_claim(self, st, true);
    } else if (!coord && st->coordinating) {
        st->coordinating = false;
        reg__teardown(self, st);
    }
    if (reg__acts(st) && !acted) {
        reg__lead(self, st);
    } else if (!reg__acts(st) && acted) {
        reg__rearm(self, st); /* the cluster's timers stop here */
    }
}

/* The live members changed (gossip): claim the swarms this node is now preferred for. */
static void reg__coord_members(sup_actor *self, reg_state *st, const sup_msg *m)
{
    json_t *j = flow__msg_json(m);
    json_t *alive = json_object_get(j, "alive");
    if (st->raft && json_is_array(alive)) {
        bool acted = reg__acts(st);
        json_decref(st->alive);
        st->alive = json_incref(alive);
        reg__acting(self, st, acted);
        reg__coord_claim(self, st, false);
    }
    json_decref(j);
}

static void reg__role(sup_actor *self, reg_state *st, const sup_msg *m)
{
    json_t *j = flow__msg_json(m);
    json_t *known = json_object_get(j, "known");
    json_decref(st->leader_info);
    st->leader_info = json_is_object(known) ? json_incref(known) : NULL;
    bool acted = reg__acts(st);
    st->leader = json_is_true(json_object_get(j, "leader"));
    st->synced = st->synced || st->leader || st->leader_info != NULL;
    reg__acting(self, st, acted);
    json_decref(j);
}

/* Forwards a cluster_* request to the raft actor. */
static void reg__cluster(sup_actor *self, reg_state *st, sup_from from, const char *op,
                         const json_t *args)
{
    sup_rt *rt = sup_self_rt(self);
    if (!st->raft && !st->pbft) {
        if (strcmp(op, "cluster_status") == 0) {
            flow__reply_ok(rt, from, json_pack("{s:s}", "mode", "local"));
        } else {
            flow__reply_err(rt, from, FLOW_ESTATE, "flow runs without consensus (no raft)");
        }
        return;
    }
    json_t *req = json_pack("{s:s, s:O?}", "op", op, "args", args);
    char *text = json_dumps(req, JSON_COMPACT);
    json_decref(req);
    size_t len = text ? strlen(text) : 0;
    char *buf = text ? malloc(sizeof from + len) : NULL;
    if (buf) {
        memcpy(buf, &from, sizeof from);
        memcpy(buf + sizeof from, text, len);
    }
    if (buf == NULL ||
        sup_cast(rt, sup_self(self), sup_whereis(rt, st->pbft ? FLOW_N_PBFT : FLOW_N_RAFT),
                 FLOW_TAG_FWD, buf, sizeof from + len) != 0) {
        flow__reply_err(rt, from, FLOW_ECONSENSUS, "consensus is not running");
    }
    free(buf);
    free(text);
}

/* ---- API operations ----------------------------------------------------------------------- */

static void reg__agent_spawn(sup_actor *self, reg_state *st, sup_from from, const json_t *args)
{
    sup_rt *rt = sup_self_rt(self);
    const char *swarm = reg__str(args, "swarm"), *id = reg__str(args, "id");
    int role = flow_role_parse(reg__str(args, "role"));
    if (swarm == NULL || !flow_state_has_swarm(st->fs, swarm)) {
        flow__reply_err(rt, from, FLOW_ENOTFOUND, "no swarm %s", swarm ? swarm : "(none)");
        return;
    }
    if (id == NULL || !flow_id_valid(id) || role < 0) {
        flow__reply_err(rt, from, FLOW_EINVAL, "agent_spawn needs an id and a role");
        return;
    }
    flow_agent_arg *a = calloc(1, sizeof *a);
    reg_spawn *p = calloc(1, sizeof *p);
    if (a == NULL || p == NULL) {
        free(a);
        free(p);
        flow__reply_err(rt, from, FLOW_ENOMEM, "out of memory");
        return;
    }
    snprintf(a->id, sizeof a->id, "%s", id);
    snprintf(a->swarm, sizeof a->swarm, "%s", swarm);
    a->role = role;
    json_int_t w = json_integer_value(json_object_get(args, "weight"));
    json_int_t cap = json_integer_value(json_object_get(args, "capacity"));
    a->weight = w > 0 ? (int)w : 1;
    a->capacity = cap > 0 ? (int)cap : 1;
    const json_t *ex = json_object_get(args, "executor");
    a->executor = ex ? json_dumps(ex, JSON_COMPACT) : NULL;
    p->from = from;
    snprintf(p->id, sizeof p->id, "%s", id);
    /* the agent owns `a` from its init on */
    p->arg = a;
    p->ref = sup_sv_start_child(self, sup_whereis(rt, FLOW_N_AGENT_SUP), NULL, a, 0);
    p->next = st->spawns;
    st->spawns = p;
}

/* Sums the swarms' monotonic ended counters (a task completed twice would count twice). */
static void reg__sum_ended(const flow_swarm_stats *sst, void *user)
{
    uint64_t *ended = user;
    for (int k = 0; k < 3; k++) {
        ended[k] += sst->ended_total[k];
    }
}

static void reg__op(sup_actor *self, reg_state *st, sup_from from, const char *op,
                    const json_t *args)
{
    sup_rt *rt = sup_self_rt(self);
    char err[256] = "";
    int rc;
    if (strcmp(op, "swarm_create") == 0) {
        flow_cmd c;
        flow_cmd_init(&c, FLOW_CMD_SWARM_CREATE, 0);
        const char *id = reg__str(args, "id");
        const char *topo = reg__str(args, "topology");
        int t = flow_topology_parse(topo ? topo : "star");
        if (id) {
            snprintf(c.swarm, sizeof c.swarm, "%.63s", id);
        } else {
            char u[37];
            flow__uuid(u);
            snprintf(c.swarm, sizeof c.swarm, "swarm-%.8s", u);
        }
        rc = t < 0 ? FLOW_EINVAL
                   : flow_swarm_config_from_json(&c.config, json_object_get(args, "config"), err,
                                                 sizeof err);
        if (rc == 0 && c.config.executor &&
            flow_executor_check(c.config.executor, err, sizeof err) != 0) {
            rc = FLOW_EINVAL;
        }
        if (t < 0) {
            snprintf(err, sizeof err, "topology must be star, hierarchical, ring or mesh");
        }
        c.topology = (flow_topology)(t < 0 ? 0 : t);
        if (rc == 0) {
            reg__submit(self, st, flow_cmd_to_json(&c), from, REG_K_SWARM);
        } else {
            flow__reply_err(rt, from, rc, "%s", err);
        }
        flow_cmd_clear(&c);
        return;
    }
    if (strcmp(op, "swarm_list") == 0) {
        flow__reply_ok(rt, from, flow_state_swarm_list(st->fs));
        return;
    }
    if (strcmp(op, "swarm_status") == 0) {
        json_t *v = flow_state_swarm_json(st->fs, reg__str(args, "swarm") ?: "");
        if (v) {
            flow__reply_ok(rt, from, v);
        } else {
            flow__reply_err(rt, from, FLOW_ENOTFOUND, "no such swarm");
        }
        return;
    }
    if (strcmp(op, "swarm_destroy") == 0 || strcmp(op, "swarm_scale") == 0 ||
        strcmp(op, "agent_stop") == 0 || strcmp(op, "task_cancel") == 0 ||
        strcmp(op, "apply") == 0) {
        json_t *cmd;
        if (strcmp(op, "apply") == 0) {
            cmd = json_incref(json_object_get(args, "cmd"));
        } else {
            cmd = json_deep_copy(args);
            const char *name = strcmp(op, "agent_stop") == 0 ? "agent_drain" : op;
            json_object_set_new(cmd, "cmd", json_string(name));
            json_object_set_new(cmd, "now", json_integer(0));
        }
        if (!json_is_object(cmd)) {
            flow__reply_err(rt, from, FLOW_EINVAL, "%s needs a command object", op);
            json_decref(cmd);
            return;
        }
        const char *type = reg__str(cmd, "cmd"), *task = reg__str(cmd, "task");
        if (type && task && strcmp(type, "task_submit") == 0) {
            /* stamped by the task queue, or (a bare apply request) on arrival here */
            const json_t *at = json_object_get(args, "entered_ns");
            reg__entered_put(st, task,
                             json_is_integer(at) && json_integer_value(at) > 0
                                 ? (uint64_t)json_integer_value(at)
                                 : flow__now_ns(rt));
        }
        reg__submit(self, st, cmd, from, REG_K_VIEW);
        return;
    }
    if (strncmp(op, "cluster_", 8) == 0) {
        reg__cluster(self, st, from, op, args);
        return;
    }
    if (strcmp(op, "metrics") == 0) {
        json_t *m = flow_state_metrics(st->fs);
        json_object_set_new(m, "refused_queue_full",
                            json_integer((json_int_t)st->refused_queue_full));
        json_object_set_new(m, "commands_refused", json_integer((json_int_t)st->commands_refused));
        uint64_t ended[3] = {0, 0, 0};
        flow_state_each_swarm(st->fs, reg__sum_ended, ended);
        json_object_set_new(m, "ended_total",
                            json_pack("{s:I, s:I, s:I}", "completed", (json_int_t)ended[0],
                                      "failed", (json_int_t)ended[1], "cancelled",
                                      (json_int_t)ended[2]));
        json_object_set_new(m, "mode",
                            json_string(st->raft   ? "raft"
                                        : st->pbft ? "pbft"
                                                   : "local"));
        if (st->raft || st->pbft) {
            json_object_set_new(m, "leader", json_boolean(st->leader));
            json_object_set_new(m, "paused", json_boolean(st->paused));
            json_object_set_new(m, "commands_committed", json_integer((json_int_t)st->committed));
        }
        flow__reply_ok(rt, from, m);
        return;
    }
    if (strcmp(op, "agent_list") == 0) {
        const json_t *r = json_object_get(args, "role");
        flow__reply_ok(
            rt, from,
            flow_state_agent_list(st->fs, reg__str(args, "swarm"),
                                  r ? flow_role_parse(json_string_value(r)) : FLOW_ROLE_NONE));
        return;
    }
    if (strcmp(op, "agent_spawn") == 0) {
        const char *sw = reg__str(args, "swarm");
        if (st->alive && sw && flow_state_has_swarm(st->fs, sw) && !reg__coord_acts(st, sw)) {
            const char *holder = flow_state_swarm_lease(st->fs, sw, NULL);
            flow__reply_err(rt, from, FLOW_ESTATE, "swarm %s is coordinated by node %s", sw,
                            holder ? holder : "(none yet)");
        } else if (!reg__coordinates(st) ||
                   (sw && flow_state_has_swarm(st->fs, sw) && !reg__coord_acts(st, sw))) {
            flow__reply_not_leader(rt, from, st->leader_info);
        } else {
            reg__agent_spawn(self, st, from, args);
        }
        return;
    }
    if (strcmp(op, "task_status") == 0 || strcmp(op, "task_result") == 0) {
        const char *task = reg__str(args, "task");
        const flow_task *t = task ? flow_state_task(st->fs, task) : NULL;
        if (t == NULL) {
            flow__reply_err(rt, from, FLOW_ENOTFOUND,
                            "no task %s (unknown, or ended and evicted by task_retention)",
                            task ? task : "(none)");
            return;
        }
        flow_task_state s = flow_task_get_state(t);
        bool done = s == FLOW_TASK_COMPLETED || s == FLOW_TASK_FAILED || s == FLOW_TASK_CANCELLED;
        if (strcmp(op, "task_status") == 0 || done) {
            flow__reply_ok(rt, from, flow_state_task_json(st->fs, task));
            return;
        }
        json_int_t wait = json_integer_value(json_object_get(args, "wait_ms"));
        if (wait <= 0) {
            flow__reply_err(rt, from, FLOW_ETIMEOUT, "task %s is %s", task,
                            flow_task_state_name(s));
            return;
        }
        size_t len = strlen(task);
        char buf[sizeof(flow_wait) + FLOW_ID_MAX];
        flow_wait w = {from, sup_rt_now(rt) + (uint64_t)wait};
        memcpy(buf, &w, sizeof w);
        memcpy(buf + sizeof w, task, len);
        if (sup_cast(rt, sup_self(self), sup_whereis(rt, FLOW_N_TRACKER), FLOW_TAG_WAIT, buf,
                     sizeof w + len) != 0) {
            flow__reply_err(rt, from, FLOW_ENOPROC, "request tracker not running");
        }
        return;
    }
    if (strcmp(op, "task_list") == 0) {
        const char *state = reg__str(args, "state");
        int s = state ? flow_task_state_parse(state) : -1;
        if (state && s < 0) {
            flow__reply_err(rt, from, FLOW_EINVAL, "unknown state %s", state);
            return;
        }
        json_int_t limit = json_integer_value(json_object_get(args, "limit"));
        flow__reply_ok(rt, from,
                       flow_state_task_list(st->fs, reg__str(args, "swarm"), s,
                                            limit > 0 ? (size_t)limit : 1000));
        return;
    }
    flow__reply_err(rt, from, FLOW_EINVAL, "unknown operation %.64s", op);
}

static void reg__request(sup_actor *self, reg_state *st, sup_from from, const char *data,
                         size_t len)
{
    json_t *j = json_loadb(data, len, JSON_REJECT_DUPLICATES, NULL);
    const char *op = reg__str(j, "op");
    if (op == NULL) {
        flow__reply_err(sup_self_rt(self), from, FLOW_EINVAL, "request needs an op");
    } else {
        reg__op(self, st, from, op, json_object_get(j, "args"));
    }
    json_decref(j);
}

/* ---- behaviour ---------------------------------------------------------------------------- */

/* PBFT: commands of this node carry origin = its member id and cookies that differ from any of
 * an earlier life's (requests of a previous run may still execute). */
static void reg__pbft_init(sup_actor *self, reg_state *st, const flow_options *o)
{
    st->pbft = o && !o->raft && o->pbft;
    if (st->pbft) {
        st->my_id = o->pbft->id;
        st->next_cookie = sup_rt_now(sup_self_rt(self)) << 20;
    }
}

static int reg_init(sup_actor *self, void *state, void *arg)
{
    const flow_options *o = arg;
    reg_state *st = state;
    st->raft = o && o->raft;
    st->my_id = st->raft ? o->raft->id : 0;
    reg__pbft_init(self, st, o);
    election_node_name(st->my_id, st->me);
    st->claiming = json_object();
    hmap_init(&st->waits);
    hmap_init(&st->entered);
    st->fs = flow_state_new();
    st->retention = flow__retention(o);
    if (st->fs != NULL) {
        flow_state_set_retention(st->fs, st->retention);
    }
    hmap_init(&st->agents);
    hmap_init(&st->mrefs);
    hmap_init(&st->swarms);
    sup_set_label(self, FLOW_N_REGISTRY);
    if (st->fs == NULL) {
        return SUP_ENOMEM;
    }
    flow_view_set(sup_self_rt(self), FLOW_VIEW_STATE, st->fs);
    return 0;
}

static void reg_call(sup_actor *self, void *state, const sup_msg *m)
{
    if (m->tag == FLOW_TAG_REQ) {
        reg__request(self, state, sup_msg_from(m), m->data, m->len);
    }
}

static void reg__agent_up(sup_actor *self, reg_state *st, const sup_msg *m)
{
    json_t *j = flow__msg_json(m);
    const char *id = reg__str(j, "agent");
    if (id && flow_id_valid(id) && flow_hget(&st->agents, id) == NULL && reg__coordinates(st)) {
        reg_agent *ra = calloc(1, sizeof *ra);
        if (ra) {
            snprintf(ra->id, sizeof ra->id, "%s", id);
            ra->pid = m->from;
            ra->mref = sup_monitor(self, m->from);
            flow_hput(&st->agents, ra->id, ra);
            hmap_put(&st->mrefs, &ra->mref, sizeof ra->mref, ra, NULL);
            reg__submit_fenced(self, st, json_incref(j), (sup_from){SUP_NOPID, 0}, REG_K_AGENT_UP);
        } else {
            reg__agent_added(self, st, id, FLOW_ENOMEM, "out of memory");
        }
    } else {
        sup_reason r = sup_reason_shutdown();
        sup_exit(sup_self_rt(self), sup_self(self), m->from, &r);
        if (id) {
            reg__agent_added(self, st, id, reg__coordinates(st) ? FLOW_EINVAL : FLOW_ENOTLEADER,
                             reg__coordinates(st) ? "agent id taken" : "not the leader");
        }
    }
    json_decref(j);
}

static void reg__spawn_answer(sup_actor *self, reg_state *st, reg_spawn *p)
{
    sup_rt *rt = sup_self_rt(self);
    if (p->add_rc == FLOW_ENOTLEADER) {
        flow__reply_not_leader(rt, p->from, st->leader_info);
    } else if (p->add_rc != 0 || flow_state_agent(st->fs, p->id) == NULL) {
        flow__reply_err(rt, p->from, p->add_rc ? p->add_rc : FLOW_EPOOL_FULL, "agent refused: %s",
                        p->err);
    } else {
        flow__reply_ok(rt, p->from, flow_state_agent_json(st->fs, p->id));
    }
    free(p);
}

static void reg__start_reply(sup_actor *self, reg_state *st, const sup_msg *m)
{
    sup_rt *rt = sup_self_rt(self);
    sup_pid pid = SUP_NOPID;
    sup_reason why;
    int rc = sup_sv_start_reply(m, &pid, &why);
    for (reg_spawn **pp = &st->spawns; *pp; pp = &(*pp)->next) {
        reg_spawn *p = *pp;
        if (p->ref != m->ref) {
            continue;
        }
        *pp = p->next;
        if (rc == SUP_ENOPROC || rc == SUP_ETIMEDOUT) {
            flow_agent_arg_free(p->arg); /* agent_sup never ran the agent's init */
        }
        if (rc != 0) {
            char r[80];
            flow__reply_err(rt, p->from, FLOW_ESPAWN, "agent did not start: %s",
                            sup_reason_str(&why, r, sizeof r));
            free(p);
        } else if (p->add_known) {
            reg__spawn_answer(self, st, p);
        } else { /* raft: its agent_add is not committed yet */
            p->started = true;
            p->next = st->spawns;
            st->spawns = p;
        }
        return;
    }
    /* a swarm actor's start */
    reg_swarm *found = NULL;
    size_t it = 0;
    for (const hmap_slot *e; found == NULL && (e = hmap_next(&st->swarms, &it)) != NULL;) {
        if (((reg_swarm *)e->val)->start_ref == m->ref) {
            found = e->val;
        }
    }
    if (found) {
        reg_swarm *rs = found;
        rs->start_ref = 0;
        if (rc != 0) {
            char r[80];
            fprintf(stderr, "flow: swarm %s actor did not start: %s\n", rs->arg.id,
                    sup_reason_str(&why, r, sizeof r));
        }
        return;
    }
    /* destroyed before its start was answered: end it now and free the argument */
    for (reg_swarm **zp = &st->zombies; *zp; zp = &(*zp)->znext) {
        reg_swarm *z = *zp;
        if (z->start_ref == m->ref) {
            *zp = z->znext;
            if (rc == 0) {
                sup_reason r = sup_reason_shutdown();
                sup_exit(rt, sup_self(self), pid, &r);
            }
            reg__swarm_free(z);
            return;
        }
    }
}

static void reg_cast(sup_actor *self, void *state, const sup_msg *m)
{
    reg_state *st = state;
    sup_rt *rt = sup_self_rt(self);
    char err[256];
    switch (m->tag) {
    case FLOW_TAG_FWD:
        if (m->len > sizeof(sup_from)) {
            sup_from from;
            memcpy(&from, m->data, sizeof from);
            reg__request(self, st, from, (const char *)m->data + sizeof from, m->len - sizeof from);
        }
        break;
    case FLOW_TAG_CMD: /* stale reports are refused by the state machine */
        reg__submit_fenced(self, st, flow__msg_json(m), (sup_from){SUP_NOPID, 0}, REG_K_NONE);
        break;
    case FLOW_TAG_COMMITTED: reg__committed(self, st, m); break;
    case FLOW_TAG_REFUSED: reg__refused(self, st, m); break;
    case FLOW_TAG_ROLE: reg__role(self, st, m); break;
    case FLOW_TAG_QUORUM: {
        json_t *j = flow__msg_json(m);
        bool acted = reg__acts(st);
        st->paused = st->raft && json_is_true(json_object_get(j, "paused"));
        reg__acting(self, st, acted);
        json_decref(j);
        break;
    }
    case FLOW_TAG_RESET:
        reg__replace(self, st, flow_state_new());
        st->synced = false;
        break;
    case FLOW_TAG_RESTORE: {
        json_t *j = flow__msg_json(m);
        flow_state *fs = j ? flow_state_restore(j, err, sizeof err) : NULL;
        if (fs == NULL) { /* the raft actor validated it: this cannot be */
            sup_crash(self, "snapshot from raft does not restore");
        }
        reg__replace(self, st, fs);
        json_decref(j);
        break;
    }
    case FLOW_TAG_AGENT_UP: reg__agent_up(self, st, m); break;
    case FLOW_TAG_MEMBERS: reg__coord_members(self, st, m); break;
    case FLOW_TAG_SWARM_UP: {
        char id[FLOW_ID_MAX];
        snprintf(id, sizeof id, "%.*s", (int)(m->len < FLOW_ID_MAX ? m->len : FLOW_ID_MAX - 1),
                 (const char *)m->data);
        reg_swarm *rs = flow_hget(&st->swarms, id);
        if (rs == NULL) {
            sup_reason r = sup_reason_shutdown();
            sup_exit(rt, sup_self(self), m->from, &r);
            break;
        }
        rs->pid = m->from;
        reg__send_needs(self, rs);
        break;
    }
    case FLOW_TAG_CHAOS: {
        json_t *j = flow__msg_json(m);
        const char *agent = reg__str(j, "agent"), *action = reg__str(j, "action");
        reg_agent *ra = agent ? flow_hget(&st->agents, agent) : NULL;
        if (ra && action && strcmp(action, "kill") == 0) {
            sup_reason r = sup_reason_error("chaos_kill");
            sup_exit(rt, sup_self(self), ra->pid, &r);
        } else if (ra && action && strcmp(action, "latency") == 0) {
            uint64_t ms = (uint64_t)json_integer_value(json_object_get(j, "ms"));
            sup_cast(rt, sup_self(self), ra->pid, FLOW_TAG_LATENCY, &ms, sizeof ms);
        }
        json_decref(j);
        break;
    }
    default: break;
    }
}

static void reg_info(sup_actor *self, void *state, const sup_msg *m)
{
    reg_state *st = state;
    if (m->kind == SUP_MSG_TIMER && m->tag == REG_T_RECLAIM) {
        st->reclaim_ref = 0;
        reg__coord_claim(self, st, false);
    } else if (m->kind == SUP_MSG_TIMER && m->tag == FLOW_TAG_TICK) {
        st->tick_ref = 0;
        st->tick_at = 0;
        reg__submit(self, st, json_pack("{s:s}", "cmd", "tick"), (sup_from){SUP_NOPID, 0},
                    REG_K_NONE);
    } else if (m->kind == SUP_MSG_DOWN) {
        reg_agent *ra = hmap_get(&st->mrefs, &m->ref, sizeof m->ref);
        if (ra == NULL) {
            return;
        }
        bool crashed = !sup_reason_is_normal(&m->reason);
        flow_cmd c;
        flow_cmd_init(&c, crashed ? FLOW_CMD_AGENT_CRASHED : FLOW_CMD_AGENT_REMOVE, 0);
        snprintf(c.agent, sizeof c.agent, "%s", ra->id);
        sup_reason_str(&m->reason, c.text, sizeof c.text);
        reg__drop_agent(self, st, ra, false);
        reg__submit_fenced(self, st, flow_cmd_to_json(&c), (sup_from){SUP_NOPID, 0}, REG_K_NONE);
        flow_cmd_clear(&c);
    } else if (m->kind == SUP_MSG_REPLY) {
        reg__start_reply(self, st, m);
    }
}

static void reg_terminate(sup_actor *self, void *state, const sup_reason *reason)
{
    (void)reason;
    reg_state *st = state;
    flow_view_clear(sup_self_rt(self), FLOW_VIEW_STATE, st->fs);
    flow__hmap_free_values(&st->agents, free);
    flow__hmap_free_values(&st->swarms, reg__swarm_free_v);
    while (st->zombies) {
        reg_swarm *n = st->zombies->znext;
        reg__swarm_free(st->zombies);
        st->zombies = n;
    }
    while (st->spawns) {
        reg_spawn *n = st->spawns->next;
        free(st->spawns);
        st->spawns = n;
    }
    hmap_free(&st->mrefs);
    flow__hmap_free_values(&st->waits, free);
    flow__hmap_free_values(&st->entered, free);
    json_decref(st->leader_info);
    json_decref(st->claiming);
    json_decref(st->alive);
    flow_state_free(st->fs);
}

static const sup_behaviour reg_behaviour = {
    .name = FLOW_N_REGISTRY,
    .state_size = sizeof(reg_state),
    .init = reg_init,
    .handle_call = reg_call,
    .handle_cast = reg_cast,
    .handle_info = reg_info,
    .terminate = reg_terminate,
};

int flow_registry_start(sup_rt *rt, sup_pid parent, void *arg, void *extra, sup_pid *out,
                        sup_reason *why)
{
    (void)extra;
    return flow__start_named(rt, parent, &reg_behaviour, arg, FLOW_N_REGISTRY, out, why);
}
