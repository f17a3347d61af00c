/*
 * flow/core/flow_state_int.h — the records of the flow state, shared by flow_state.c (the
 * transitions) and flow_state_json.c (commands, snapshots and views as JSON). Not public.
 */
#ifndef MACULA_FLOW_STATE_INT_H
#define MACULA_FLOW_STATE_INT_H

#include "base/dheap.h"
#include "base/errmsg.h"
#include "flow/core/flow_state.h"

#define FLOW_HOLD_MAX (FLOW_MAX_CAPACITY + FLOW_MAX_PREFETCH)
#define FLOW_SWARM_QUEUE 3 /* queue index of the swarm queue; 0..2 are hierarchical teams */

/* A timer of the state (task deadline, idle agent, open breaker) in the state's deadline heap.
 * The heap only indexes what the records already say (no timer is part of a snapshot): a
 * record's timer is queued exactly while its condition holds (see flow__timers_*), so
 * flow_state_next_deadline is the heap's minimum and a tick pops only what is due. */
typedef enum flow_timer_kind {
    FLOW_TM_DEADLINE = 0, /* a task that has not ended has a deadline */
    FLOW_TM_IDLE,         /* an idle agent whose role has more than its pool minimum */
    FLOW_TM_BREAKER,      /* a swarm's open breaker */
} flow_timer_kind;

typedef struct flow_timer {
    dheap_node node;
    flow_timer_kind kind;
    void *owner;  /* the flow_task, flow_agent or flow_swarm */
    uint64_t seq; /* the owner's seq: due timers are handled in (deadline, seq) order */
} flow_timer;

struct flow_task {
    char id[FLOW_ID_MAX];
    char swarm[FLOW_ID_MAX];
    char agent[FLOW_ID_MAX]; /* holder while assigned / running, else "" */
    flow_task_state state;
    int prio;
    int role;            /* FLOW_ROLE_NONE or a role */
    json_t *input;       /* original input */
    json_t *stage_input; /* ring: input of the current stage (NULL = input) */
    json_t *result;      /* completed */
    char (*deps)[FLOW_ID_MAX];
    size_t ndeps;
    size_t deps_waiting; /* dependencies not completed yet; > 0 = blocked */
    char (*dependents)[FLOW_ID_MAX];
    size_t ndependents, capdependents;
    int retries, max_retries;
    uint64_t deadline; /* absolute, 0 = none */
    uint64_t t_created, t_assigned, t_started, t_finished;
    char trace_id[40];
    char error[FLOW_ERROR_MAX];
    json_t *reasons;   /* array of failure reasons (strings), at most FLOW_MAX_REASONS */
    int stage, stages; /* ring: current stage, stage count (0 until first assigned) */
    int team;          /* hierarchical: team (role index) whose queue holds it; else -1 */
    bool ran;          /* a RUN was emitted for the current hold */
    bool ring_wait;    /* ring: waiting for the agent of its next stage */
    uint64_t seq;      /* submission order */
    flow_qnode qn;     /* queue link */
    flow_timer tm;     /* deadline */
    struct flow_task *prev, *next; /* all tasks, submission order */
    uint64_t fin; /* finish order (the state's fin_seq when it ended); 0 while not ended */
    struct flow_task *fin_prev, *fin_next; /* ended tasks, finish order (retention) */
};

struct flow_agent {
    char id[FLOW_ID_MAX];
    char swarm[FLOW_ID_MAX];
    int role;
    bool draining;
    json_t *executor;
    int weight, capacity;
    uint64_t seq;        /* join order */
    uint64_t idle_since; /* when it last held nothing */
    uint64_t ready_seq;  /* mesh: order in which agents became free */
    int64_t wrr_cur;     /* weighted LB running total */
    flow_task *held[FLOW_HOLD_MAX];
    int nheld;
    uint64_t completed, failed;
    flow_timer tm; /* idle timeout */
};

struct flow_swarm {
    char id[FLOW_ID_MAX];
    flow_topology topology;
    flow_swarm_config cfg;
    uint64_t seq;
    flow_queue queue[4]; /* [0..2] hierarchical teams, [3] the swarm queue */
    flow_lb lb[4];
    flow_breaker cb;
    flow_agent **agents; /* join order */
    size_t nagents, capagents;
    int spawning[FLOW_ROLES]; /* agents requested by AGENT_NEEDED, not added yet */
    flow_task **ring_wait;    /* ring: FIFO of tasks between stages */
    size_t nring, capring;
    size_t count[6];                /* tasks by state */
    uint64_t ended_total[3];        /* tasks that reached completed / failed / cancelled */
    flow_timer tm;                  /* breaker half-open time */
    char lease_node[FLOW_ID_MAX];   /* coordinator (swarm_lease), "" = none */
    uint64_t lease_token;           /* its fencing token, 0 = none */
    struct flow_swarm *prev, *next; /* creation order */
};

struct flow_state {
    hmap swarms, agents, tasks; /* id -> record (keys are the records' id fields) */
    dheap timers;               /* flow_timer nodes */
    flow_swarm *swarm_head, *swarm_tail;
    flow_task *task_head, *task_tail;
    flow_task *fin_head, *fin_tail; /* ended tasks, oldest finish first */
    size_t nfin;                    /* their number */
    uint64_t fin_seq;               /* last finish order given */
    uint64_t retention;             /* ended tasks kept (0 = all); see flow_state_set_retention */
    uint64_t now;
    uint64_t applied;
    uint64_t seq;
};

#define FLOW_TASK_OF(node) ((flow_task *)((char *)(node)-offsetof(flow_task, qn)))

/* Fills a refusal message (err may be NULL). */
#define flow__err(err, errsize, ...) ((void)errmsg_fail((err), (errsize), 0, __VA_ARGS__))

/* Shared helpers (flow_state.c) used by restore. */
flow_swarm *flow__swarm_new(const char *id, flow_topology topo, const flow_swarm_config *cfg);
void flow__swarm_link(flow_state *s, flow_swarm *sw);
void flow__task_link(flow_state *s, flow_task *t);
/* Restore: puts the ended tasks into the finish list by (fin, seq); FLOW_EINVAL when an ended
 * task's fin is 0 or repeated, or above fin_seq. */
int flow__fin_rebuild(flow_state *s);
void flow__task_free(flow_task *t);
void flow__agent_free(flow_agent *a);
int flow__swarm_add_agent(flow_swarm *sw, flow_agent *a);
int flow__ring_push(flow_swarm *sw, flow_task *t);
void flow__queue_task(flow_swarm *sw, flow_task *t); /* into its queue by t->team */
int flow__task_add_dependent(flow_task *t, const char *dep);
void flow__swarm_config_copy(flow_swarm_config *dst, const flow_swarm_config *src);
void flow__agent_link(flow_state *s, flow_agent *a); /* into the index; timer initialised */
/* Brings the timers of a record in line with its state (queues, moves or drops them). */
void flow__timers_task(flow_state *s, flow_task *t);
void flow__timers_role(flow_state *s, flow_swarm *sw, int role);
void flow__timers_breaker(flow_state *s, flow_swarm *sw);

#endif
