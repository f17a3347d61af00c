/*
 * flow/core/flow_state.h — the flow state machine: swarms, agents, tasks and their
 * transitions (FLOW.md "Objects", docs/flow.md), deterministic and free of I/O.
 *
 * The state changes only through flow_state_apply(state, cmd): a pure function of the state
 * and the command. No clock, no randomness, no I/O inside: task ids, agent ids and the time
 * (`now`, ms) come in the command. The same commands applied to the same state give the same
 * events and the same snapshot, so the consensus layer can put commands in a replicated log
 * (commands serialise to and from JSON: flow_cmd_to_json / flow_cmd_from_json) and every
 * replica computes identical assignments. Dispatch (which task goes to which agent) happens
 * inside apply, by the swarm's topology, queue weights, load balancer and circuit breaker.
 *
 * apply returns events: what the surrounding runtime must do (run a task on an agent, abort
 * one, start or retire agents) and what observers record (state changes for metrics, spans,
 * request waiters). A command that is refused returns a negative FLOW_E* code and changes
 * nothing.
 *
 * Ownership: the state owns every record; commands and events own their JSON values and
 * strings (flow_cmd_clear, flow_events_clear). Lookups return borrowed pointers valid until
 * the next apply.
 */
#ifndef MACULA_FLOW_STATE_H
#define MACULA_FLOW_STATE_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "base/hmap.h"
#include "flow/core/flow_breaker.h"
#include "flow/core/flow_lb.h"
#include "flow/core/flow_queue.h"
#include "macula/flow.h"

#define FLOW_ID_MAX 64         /* ids: 1..63 bytes of [A-Za-z0-9._:-] */
#define FLOW_MAX_DEPS 64       /* dependencies per task */
#define FLOW_MAX_REASONS 16    /* failure reasons kept per task */
#define FLOW_ERROR_MAX 256     /* error text */
#define FLOW_MAX_CAPACITY 64   /* concurrent tasks per agent */
#define FLOW_MAX_PREFETCH 16   /* mesh local queue per agent */
#define FLOW_MAX_INPUT 1048576 /* bytes of a task's input or result as JSON text */

typedef enum flow_topology {
    FLOW_TOPO_STAR = 0,
    FLOW_TOPO_HIERARCHICAL,
    FLOW_TOPO_RING,
    FLOW_TOPO_MESH,
} flow_topology;

typedef enum flow_role {
    FLOW_ROLE_NONE = -1, /* a task that any agent may run */
    FLOW_ROLE_WORKER = 0,
    FLOW_ROLE_SPECIALIST,
    FLOW_ROLE_SCOUT,
} flow_role;
#define FLOW_ROLES 3

typedef enum flow_prio { FLOW_PRIO_HIGH = 0, FLOW_PRIO_NORMAL, FLOW_PRIO_LOW } flow_prio;

typedef enum flow_agent_state {
    FLOW_AGENT_IDLE = 0,
    FLOW_AGENT_BUSY,
    FLOW_AGENT_DRAINING,
} flow_agent_state;

typedef enum flow_task_state {
    FLOW_TASK_PENDING = 0,
    FLOW_TASK_ASSIGNED,
    FLOW_TASK_RUNNING,
    FLOW_TASK_COMPLETED,
    FLOW_TASK_FAILED,
    FLOW_TASK_CANCELLED,
} flow_task_state;

typedef struct flow_swarm_config {
    int max_agents;                  /* all roles together; default 300 */
    int pool_min[FLOW_ROLES];        /* default 5 each */
    int pool_max[FLOW_ROLES];        /* default 100 each */
    int queue_limit;                 /* pending tasks; default 10000 */
    int max_retries;                 /* default 3 */
    bool retry_on_error;             /* retry executor errors too (crashes always retry) */
    flow_lb_strategy lb;             /* default round_robin */
    int cb_threshold;                /* default 5 */
    uint64_t cb_timeout_ms;          /* default 60000 */
    uint64_t idle_timeout_ms;        /* default 30000 */
    int mesh_prefetch;               /* mesh: tasks an agent may hold beyond its capacity; 2 */
    int weights[FLOW_QUEUE_CLASSES]; /* 100 / 50 / 10 */
    json_t *executor;                /* executor spec for pool agents; owned; NULL = builtin */
} flow_swarm_config;

void flow_swarm_config_defaults(flow_swarm_config *c);
/* Reads the config from JSON (missing keys keep their value). Returns 0 or FLOW_EINVAL with a
 * message naming the key. */
int flow_swarm_config_from_json(flow_swarm_config *c, const json_t *j, char *err, size_t errsize);
json_t *flow_swarm_config_to_json(const flow_swarm_config *c);
void flow_swarm_config_clear(flow_swarm_config *c);

/* ---- commands --------------------------------------------------------------------------- */
typedef enum flow_cmd_type {
    FLOW_CMD_SWARM_CREATE = 1,   /* swarm, topology, config */
    FLOW_CMD_SWARM_DESTROY,      /* swarm */
    FLOW_CMD_SWARM_SCALE,        /* swarm, role, count: new pool minimum (and max if lower) */
    FLOW_CMD_AGENT_ADD,          /* swarm, agent, role, executor, weight, capacity, pool */
    FLOW_CMD_AGENT_SPAWN_FAILED, /* swarm, role, text: a pool spawn could not start */
    FLOW_CMD_AGENT_DRAIN,        /* agent: no new tasks; retire when idle */
    FLOW_CMD_AGENT_REMOVE,       /* agent: gone on purpose; its tasks requeue without retry+1 */
    FLOW_CMD_AGENT_CRASHED,      /* agent, text: died; tasks requeue with retry+1 */
    FLOW_CMD_TASK_SUBMIT,   /* swarm, task, prio, input, role, deps, deadline, max_retries, trace */
    FLOW_CMD_TASK_ASSIGN,   /* task, agent: explicit assignment of a pending task */
    FLOW_CMD_TASK_START,    /* task, agent */
    FLOW_CMD_TASK_COMPLETE, /* task, agent, result */
    FLOW_CMD_TASK_FAIL,     /* task, agent, text */
    FLOW_CMD_TASK_CANCEL,   /* task */
    FLOW_CMD_TICK,          /* now: deadlines, breaker timeouts, idle agents, pool deficits */
    FLOW_CMD_SWARM_LEASE,   /* swarm, node, token: node coordinates swarm (election.h) */
} flow_cmd_type;
#define FLOW_CMD_LAST FLOW_CMD_SWARM_LEASE

typedef struct flow_cmd {
    flow_cmd_type type;
    uint64_t now; /* ms, the caller's clock; the state's clock never goes back */
    char swarm[FLOW_ID_MAX];
    char agent[FLOW_ID_MAX];
    char task[FLOW_ID_MAX];
    flow_topology topology;
    flow_swarm_config config;  /* swarm_create (owned) */
    int role;                  /* flow_role; FLOW_ROLE_NONE for tasks without role */
    int count;                 /* swarm_scale */
    json_t *executor;          /* agent_add (owned, may be NULL) */
    int weight, capacity;      /* agent_add: >= 1 */
    bool pool;                 /* agent_add answers an agent_needed event */
    int prio;                  /* flow_prio */
    json_t *input;             /* task_submit (owned) */
    json_t *result;            /* task_complete (owned) */
    char (*deps)[FLOW_ID_MAX]; /* task_submit (owned, malloc) */
    size_t ndeps;
    uint64_t deadline; /* absolute ms, 0 = none */
    int max_retries;   /* -1 = swarm default */
    char trace_id[40];
    char text[FLOW_ERROR_MAX]; /* task_fail error, agent_crashed reason */
    char node[FLOW_ID_MAX];    /* swarm_lease: the coordinator */
    /* Fencing token (0 = none). swarm_lease: the new token, which must exceed the swarm's
     * current one. Any other command with a token is refused (FLOW_ESTATE, "stale fencing
     * token") unless the token is its swarm's current one (the swarm named by the command, or
     * of its task, or of its agent): a coordinator that lost its lease cannot act any more. */
    uint64_t token;
} flow_cmd;

/* A zeroed command of a type (role none, max_retries -1, weight/capacity 1, config defaults). */
void flow_cmd_init(flow_cmd *c, flow_cmd_type type, uint64_t now);
void flow_cmd_clear(flow_cmd *c);
json_t *flow_cmd_to_json(const flow_cmd *c);
/* Strict and bounded: unknown types, missing or oversized fields are FLOW_EINVAL with a
 * message. On success *c must be cleared with flow_cmd_clear. */
int flow_cmd_from_json(flow_cmd *c, const json_t *j, char *err, size_t errsize);
const char *flow_cmd_name(flow_cmd_type t);

/* ---- events ----------------------------------------------------------------------------- */
typedef enum flow_event_type {
    FLOW_EV_SWARM_CREATED = 1,
    FLOW_EV_SWARM_DESTROYED, /* the runtime stops the swarm's agents */
    FLOW_EV_AGENT_ADDED,
    FLOW_EV_AGENT_REMOVED,
    FLOW_EV_AGENT_NEEDED, /* start `count` agents of `role` for swarm (pool minimum) */
    FLOW_EV_AGENT_RETIRE, /* stop agent (idle above minimum, or drained) */
    FLOW_EV_TASK_ACCEPTED,
    FLOW_EV_TASK_ASSIGNED, /* task given to agent (mesh: maybe into its local queue) */
    FLOW_EV_TASK_RUN,      /* agent must execute task with `data` as input (stage) */
    FLOW_EV_TASK_STARTED,
    FLOW_EV_TASK_ABORT,     /* agent must stop executing task (cancel, deadline, removal) */
    FLOW_EV_TASK_STAGE,     /* ring: task moved to stage `count` with `data` as input */
    FLOW_EV_TASK_STOLEN,    /* mesh: task moved from agent `text` to agent */
    FLOW_EV_TASK_REQUEUED,  /* back to the queue; count = retries, text = reason */
    FLOW_EV_TASK_COMPLETED, /* data = result */
    FLOW_EV_TASK_FAILED,    /* text = error */
    FLOW_EV_TASK_CANCELLED,
    FLOW_EV_BREAKER, /* swarm's breaker changed; count = flow_cb_state */
} flow_event_type;

typedef struct flow_event {
    flow_event_type type;
    char swarm[FLOW_ID_MAX];
    char agent[FLOW_ID_MAX];
    char task[FLOW_ID_MAX];
    int role;
    int count;
    json_t *data; /* owned reference (may be NULL) */
    char text[FLOW_ERROR_MAX];
    uint64_t at; /* the state's clock */
} flow_event;

typedef struct flow_events {
    flow_event *v;
    size_t n, cap;
} flow_events;

void flow_events_clear(flow_events *e); /* frees the events, keeps the struct reusable */
const char *flow_event_name(flow_event_type t);
json_t *flow_event_to_json(const flow_event *e);

/* ---- records (read-only to callers) ----------------------------------------------------- */
typedef struct flow_swarm flow_swarm;
typedef struct flow_agent flow_agent;
typedef struct flow_task flow_task;
typedef struct flow_state flow_state;

/* A new state keeps FLOW_TASK_RETENTION_DEFAULT ended tasks (see flow_state_set_retention). */
flow_state *flow_state_new(void);
void flow_state_free(flow_state *s);
/*
 * Retention of ended tasks (completed, failed, cancelled): at most `n` are kept (0 = all).
 * When an applied command leaves more, the oldest ended (by the order in which they ended)
 * are evicted at the end of that apply — except those that ended in that very command, which
 * stay until the next applied command, so the runtime can still read what the command's
 * events name. Eviction depends only on the commands, so replicas fed the same commands with
 * the same retention evict the same tasks. An evicted task is gone (lookups answer not found,
 * a new dependency on it is refused); the swarm's ended totals keep counting it. Setting a
 * lower value evicts at the next apply. Snapshots carry the value (and only the tasks kept).
 */
void flow_state_set_retention(flow_state *s, uint64_t n);
uint64_t flow_state_retention(const flow_state *s);
/* Ended tasks the state keeps now. */
size_t flow_state_finished_count(const flow_state *s);
/* Applies one command. Returns 0 or a negative FLOW_E* (then the state is unchanged and no
 * event is added). Events are appended to ev (may be NULL to drop them). err (may be NULL)
 * receives a message on refusal. */
int flow_state_apply(flow_state *s, const flow_cmd *c, flow_events *ev, char *err, size_t errsize);

/* Snapshot: everything that determines future behaviour, canonical (equal states give equal
 * text with JSON_SORT_KEYS). Restore validates fully and returns NULL with a message on bad
 * input. */
json_t *flow_state_snapshot(const flow_state *s);
flow_state *flow_state_restore(const json_t *snap, char *err, size_t errsize);

/* The earliest time a tick would change something (deadline, breaker, idle agent), or
 * UINT64_MAX. */
uint64_t flow_state_next_deadline(const flow_state *s);
uint64_t flow_state_now(const flow_state *s);
/* Commands applied so far (the log index the state reflects). */
uint64_t flow_state_applied(const flow_state *s);

/* ---- statistics (for the observers' /metrics and /health) -------------------------------- */
typedef struct flow_swarm_stats {
    const char *id;
    flow_topology topology;
    size_t tasks[6];         /* tasks by flow_task_state (those the state still keeps) */
    size_t queued[3];        /* pending tasks in the queues, by priority */
    size_t agents[3];        /* agents by flow_agent_state */
    flow_cb_state breaker;   /* the breaker's state */
    uint64_t ended_total[3]; /* completed / failed / cancelled since creation (monotonic) */
} flow_swarm_stats;
/* Calls fn for each swarm, in creation order. */
void flow_state_each_swarm(const flow_state *s, void (*fn)(const flow_swarm_stats *st, void *user),
                           void *user);

/* ---- queries (JSON views for the API; NULL if not found) -------------------------------- */
json_t *flow_state_swarm_json(const flow_state *s, const char *swarm);
json_t *flow_state_swarm_list(const flow_state *s);
json_t *flow_state_agent_json(const flow_state *s, const char *agent);
/* swarm and role may be NULL / FLOW_ROLE_NONE for all */
json_t *flow_state_agent_list(const flow_state *s, const char *swarm, int role);
json_t *flow_state_task_json(const flow_state *s, const char *task);
/* state < 0 for all; at most limit entries (0 = no limit), oldest first */
json_t *flow_state_task_list(const flow_state *s, const char *swarm, int state, size_t limit);
/* counts: tasks by state, queue depth per priority, agents by state, breakers by state */
json_t *flow_state_metrics(const flow_state *s);

/* Structured lookups for the runtime. */
const flow_task *flow_state_task(const flow_state *s, const char *task);
const flow_agent *flow_state_agent(const flow_state *s, const char *agent);
bool flow_state_has_swarm(const flow_state *s, const char *swarm);
flow_task_state flow_task_get_state(const flow_task *t);
const char *flow_task_get_swarm(const flow_task *t);
const char *flow_task_get_agent(const flow_task *t);
const char *flow_task_get_trace_id(const flow_task *t);
int flow_task_get_retries(const flow_task *t);
const char *flow_agent_get_swarm(const flow_agent *a);
int flow_agent_get_role(const flow_agent *a);
const json_t *flow_agent_get_executor(const flow_agent *a); /* may be NULL */
int flow_agent_get_capacity(const flow_agent *a);
flow_agent_state flow_agent_get_state(const flow_agent *a);
/* Ids of a swarm's agents in join order; returns the count (fills up to cap). */
size_t flow_state_swarm_agents(const flow_state *s, const char *swarm, const char **ids,
                               size_t cap);
const flow_swarm_config *flow_state_swarm_config(const flow_state *s, const char *swarm);
/* The swarm's coordinator lease: the node (NULL if none or no such swarm) and its token. */
const char *flow_state_swarm_lease(const flow_state *s, const char *swarm, uint64_t *token);
/* Agents of `role` requested by agent_needed and neither added nor reported failed (0 for an
 * unknown swarm). A new Raft leader reports those of the old leader as failed. */
int flow_state_swarm_spawning(const flow_state *s, const char *swarm, int role);

/* ---- names ------------------------------------------------------------------------------ */
const char *flow_topology_name(flow_topology t);
int flow_topology_parse(const char *s);
const char *flow_role_name(int r);  /* "none" for FLOW_ROLE_NONE */
int flow_role_parse(const char *s); /* FLOW_ROLE_NONE-1 (-2) if unknown */
const char *flow_prio_name(int p);
int flow_prio_parse(const char *s);
const char *flow_task_state_name(flow_task_state s);
int flow_task_state_parse(const char *s);
const char *flow_agent_state_name(flow_agent_state s);
/* true for a valid id: 1..63 bytes of [A-Za-z0-9._:-] */
bool flow_id_valid(const char *s);

/* String-keyed use of an hmap (the key is a NUL-terminated id that lives in the value). */
static inline void *flow_hget(const hmap *m, const char *id)
{
    return id ? hmap_get(m, id, strlen(id)) : NULL;
}
static inline int flow_hput(hmap *m, const char *id, void *val)
{
    return hmap_put(m, id, strlen(id), val, NULL);
}
static inline void *flow_hdel(hmap *m, const char *id)
{
    return hmap_del(m, id, strlen(id));
}

#endif
