/*
 * flow/flow_int.h — what the flow actors share: registered names, message tags, the reply
 * format of API requests, the executor-spec check. Not public (macula/flow.h is).
 *
 * Messages between flow actors are JSON text (commands exactly as the state machine's log
 * would carry them), except a few fixed binary headers noted below.
 */
#ifndef MACULA_FLOW_INT_H
#define MACULA_FLOW_INT_H

#include <jansson.h>

#include "flow/core/flow_state.h"
#include "macula/flow.h"
#include "macula/sup.h"
#include "macula/sup_supervisor.h"

/* flow_options.task_retention as the state machine takes it (0 = keep all). Both copies of the
 * state (the registry's and, under Raft, the FSM's) use it, so they evict the same tasks. */
static inline uint64_t flow__retention(const flow_options *o)
{
    return o == NULL || o->task_retention == 0 ? FLOW_TASK_RETENTION_DEFAULT
           : o->task_retention < 0             ? 0
                                               : (uint64_t)o->task_retention;
}

#define FLOW_N_SUP "erlmcp_flow_sup"
#define FLOW_N_REGISTRY "erlmcp_flow_registry"
#define FLOW_N_CONSENSUS_SUP "erlmcp_flow_consensus_sup"
#define FLOW_N_CORE_SUP "erlmcp_flow_core_sup"
#define FLOW_N_SWARM_SUP "erlmcp_flow_swarm_sup"
#define FLOW_N_AGENT_SUP "erlmcp_flow_agent_sup"
#define FLOW_N_TRACKER "erlmcp_flow_request_tracker"
#define FLOW_N_TASK_QUEUE "erlmcp_flow_task_queue"
#define FLOW_N_LB "erlmcp_flow_load_balancer"
#define FLOW_N_OBSERVER_SUP "erlmcp_flow_observer_sup"
#define FLOW_N_OTEL "erlmcp_flow_otel_tracer"
#define FLOW_N_METRICS "erlmcp_flow_metrics"
#define FLOW_N_HEALTH "erlmcp_flow_health"
#define FLOW_N_CHAOS "erlmcp_flow_chaos"
#define FLOW_N_BREAKER "erlmcp_flow_circuit_breaker"

enum {
    FLOW_TAG_REQ = 0x0f10001, /* call: {"op", "args"} → reply {"ok": x} | {"error", ...} */
    FLOW_TAG_FWD,      /* cast to registry: sup_from header + {"op", "args"}; it answers from */
    FLOW_TAG_CMD,      /* cast to registry: a command (its "now" is stamped on arrival) */
    FLOW_TAG_AGENT_UP, /* cast to registry from a starting agent: its agent_add command */
    FLOW_TAG_SWARM_UP, /* cast to registry from a starting swarm actor: swarm id */
    FLOW_TAG_NEEDED,   /* cast to swarm: {"role", "count", "executor"} */
    FLOW_TAG_RUN,      /* cast to agent: {"task", "input", "stage"} */
    FLOW_TAG_ABORT,    /* cast to agent: task id */
    FLOW_TAG_LATENCY,  /* cast to agent (chaos): uint64_t ms added before each task */
    FLOW_TAG_WAIT,     /* cast to tracker: flow_wait header + task id */
    FLOW_TAG_DONE,     /* cast to tracker: the finished task's view */
    FLOW_TAG_OBS,      /* cast to observers: an event */
    FLOW_TAG_CHAOS,    /* cast to registry from chaos: {"action", "agent", "ms"} */
    FLOW_TAG_TICK,     /* registry timer */
    FLOW_TAG_INTERNAL, /* actor-private timers */
    /* consensus (raft.c ⇄ registry.c) */
    FLOW_TAG_PROPOSE,   /* cast to raft: {"c": cookie, "cmd": command} */
    FLOW_TAG_REFUSED,   /* cast to registry: {"c": cookie, "code", "message"}: not logged */
    FLOW_TAG_COMMITTED, /* cast to registry: a committed command entry (fsm.h), log order */
    FLOW_TAG_RESET,     /* cast to registry: the replica starts over from an empty state */
    FLOW_TAG_RESTORE,   /* cast to registry: a snapshot replaced the state (fsm.h format) */
    FLOW_TAG_ROLE,      /* cast to registry: {"leader": bool, "id"?, "address"?, "api"?} */
    /* gossip (gossip_node.c ⇄ raft.c, registry.c) */
    FLOW_TAG_PEERS,  /* cast to gossip: {"members": [{"id", "address"?, "node"?}]} (voters) */
    FLOW_TAG_GOSSIP, /* cast to raft: the gossip view (cluster_status "gossip") */
    FLOW_TAG_QUORUM, /* cast to registry: {"paused": bool} */
    FLOW_TAG_FAULT,  /* cast to gossip: {"isolate": bool} (fault switch) */
    /* pbft (pbft_node.c ⇄ registry.c): PROPOSE, COMMITTED (the executed requests, sequence
     * order), REFUSED, RESTORE (after a state transfer), ROLE ("leader": primary and settled)
     * and FWD (cluster_*) as with Raft, sent to / by FLOW_N_PBFT */
    /* swarm coordination (raft.c → registry.c; election.c) */
    FLOW_TAG_MEMBERS,   /* cast to registry: {"alive": [lease names]} (gossip view ∩ voters) */
    FLOW_TAG_FORWARDED, /* to raft from flow_http_post: a flow_http_result (forwarded proposals) */
};

/* ---- views (view.c): what the actors publish for the HTTP endpoints ---------------------- */
typedef enum flow_view_slot {
    FLOW_VIEW_STATE = 0, /* const flow_state * (the registry's) */
    FLOW_VIEW_LATENCY,   /* const flow_latency * (the metrics observer's) */
    FLOW_VIEW_SLOTS
} flow_view_slot;
void flow_view_set(const sup_rt *rt, flow_view_slot slot, const void *ptr);
/* Withdraws ptr if it is the one published for (rt, slot). */
void flow_view_clear(const sup_rt *rt, flow_view_slot slot, const void *ptr);
const void *flow_view_get(const sup_rt *rt, flow_view_slot slot);

/* The dispatch latency histogram, kept by the metrics observer: from a task_submit request
 * entering this node (the task queue's front door, flow__now_ns) to the task's first
 * assignment to an agent, observed by the registry when it applies the assignment and carried
 * to the observer as the task_assigned event's "dispatch_ns". */
#define FLOW_LAT_BUCKETS 16
extern const double flow_latency_bounds[FLOW_LAT_BUCKETS]; /* upper bounds, seconds */
typedef struct flow_latency {
    uint64_t bucket[FLOW_LAT_BUCKETS + 1]; /* per bucket (not cumulative); the last is +Inf */
    uint64_t count;
    double sum; /* seconds */
} flow_latency;
void flow_latency_observe(flow_latency *h, double seconds);

/* Header of FLOW_TAG_WAIT. */
typedef struct flow_wait {
    sup_from from;
    uint64_t deadline; /* absolute ms on the runtime clock */
} flow_wait;

/* Replies to an API request (JSON text). result is stolen. */
void flow__reply_ok(sup_rt *rt, sup_from to, json_t *result);
void flow__reply_err(sup_rt *rt, sup_from to, int code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* Sends JSON as text (cast); j is stolen. Returns SUP_* of the send. */
int flow__cast_json(sup_rt *rt, sup_pid from, sup_pid to, int tag, json_t *j);
/* Parses a message payload as JSON (bounded by its length); NULL if not JSON. */
json_t *flow__msg_json(const sup_msg *m);
/* A front door's handler of its own operation: answers `from` (args is an object). */
typedef void (*flow_door_fn)(sup_actor *self, void *state, sup_from from, json_t *args);
/* The call handler of a front door (task_queue, load_balancer): requests for `op` go to
 * `handle`, every other operation is forwarded to the registry unchanged. */
void flow__front_door(sup_actor *self, void *state, const sup_msg *m, const char *op,
                      flow_door_fn handle);
/* Forwards an API request to the registry on behalf of the original caller. */
void flow__forward(sup_actor *self, sup_from from, const char *op, json_t *args);
/* The runtime's monotonic clock in ns: uv_hrtime() on a real runtime, the virtual clock
 * (sup_rt_now × 10^6) on a virtual one. This node's own clock: it never goes into a command
 * (replicas would disagree); the dispatch latency is measured with it (registry.c). */
uint64_t flow__now_ns(sup_rt *rt);
/* A random UUID v4 text (37 bytes) and a 32-hex trace id (33 bytes). */
void flow__uuid(char out[37]);
void flow__trace_id(char out[33]);
void flow__span_id(char out[17]); /* 16 hex digits */
/* A fresh agent id: "agent-" and 12 random hex digits. */
void flow__agent_id(char out[FLOW_ID_MAX]);

/* The raft actor's start (consensus/raft.c); arg is the const flow_raft_config *. */
#define FLOW_N_RAFT "erlmcp_flow_raft"
int flow_raft_start(sup_rt *rt, sup_pid parent, void *arg, void *extra, sup_pid *out,
                    sup_reason *why);
/* The gossip actor's start (consensus/gossip_node.c); arg is the const flow_raft_config *
 * (its gossip address and data_dir). */
#define FLOW_N_GOSSIP "erlmcp_flow_gossip"
int flow_gossip_start(sup_rt *rt, sup_pid parent, void *arg, void *extra, sup_pid *out,
                      sup_reason *why);
/* The PBFT actor's start (consensus/pbft_node.c); arg is the const flow_options * (its pbft
 * configuration and task_retention). */
#define FLOW_N_PBFT "erlmcp_flow_pbft"
int flow_pbft_start(sup_rt *rt, sup_pid parent, void *arg, void *extra, sup_pid *out,
                    sup_reason *why);
/* Answers `to` with FLOW_ENOTLEADER and "leader" (borrowed; NULL: unknown). */
void flow__reply_not_leader(sup_rt *rt, sup_from to, const json_t *leader);

/* Executors (core/agent.c): checks an executor spec; 0 or FLOW_EINVAL with a message. */
int flow_executor_check(const json_t *spec, char *err, size_t errsize);

/* Start functions of the tree (sup_start_fn). */
int flow_registry_start(sup_rt *rt, sup_pid parent, void *arg, void *extra, sup_pid *out,
                        sup_reason *why);
int flow_consensus_sup_start(sup_rt *rt, sup_pid parent, void *arg, void *extra, sup_pid *out,
                             sup_reason *why);
int flow_core_sup_start(sup_rt *rt, sup_pid parent, void *arg, void *extra, sup_pid *out,
                        sup_reason *why);
int flow_observer_sup_start(sup_rt *rt, sup_pid parent, void *arg, void *extra, sup_pid *out,
                            sup_reason *why);
int flow_swarm_start(sup_rt *rt, sup_pid parent, void *arg, void *extra, sup_pid *out,
                     sup_reason *why);
int flow_agent_start(sup_rt *rt, sup_pid parent, void *arg, void *extra, sup_pid *out,
                     sup_reason *why);
int flow_tracker_start(sup_rt *rt, sup_pid parent, void *arg, void *extra, sup_pid *out,
                       sup_reason *why);
int flow_task_queue_start(sup_rt *rt, sup_pid parent, void *arg, void *extra, sup_pid *out,
                          sup_reason *why);
int flow_lb_start(sup_rt *rt, sup_pid parent, void *arg, void *extra, sup_pid *out,
                  sup_reason *why);
int flow_otel_start(sup_rt *rt, sup_pid parent, void *arg, void *extra, sup_pid *out,
                    sup_reason *why);
int flow_metrics_start(sup_rt *rt, sup_pid parent, void *arg, void *extra, sup_pid *out,
                       sup_reason *why);
int flow_health_start(sup_rt *rt, sup_pid parent, void *arg, void *extra, sup_pid *out,
                      sup_reason *why);
int flow_chaos_start(sup_rt *rt, sup_pid parent, void *arg, void *extra, sup_pid *out,
                     sup_reason *why);
int flow_breaker_start(sup_rt *rt, sup_pid parent, void *arg, void *extra, sup_pid *out,
                       sup_reason *why);

/* The start argument of an agent (simple_one_for_one extra): malloc'd by the swarm or the
 * registry; the agent's init takes ownership and frees it. */
typedef struct flow_agent_arg {
    char id[FLOW_ID_MAX];
    char swarm[FLOW_ID_MAX];
    int role;
    int weight, capacity;
    bool pool;
    char *executor; /* JSON text or NULL (builtin) */
} flow_agent_arg;
void flow_agent_arg_free(flow_agent_arg *a);

/* Start argument of a swarm actor: owned by the registry while the swarm exists. */
typedef struct flow_swarm_arg {
    char id[FLOW_ID_MAX];
} flow_swarm_arg;

/* Child specs of the tree's fixed children: permanent workers (5000 ms) and supervisors. */
#define FLOW_WORKER(name, fn)                                                                      \
    {                                                                                              \
        .id = (name), .start = (fn), .restart = SUP_PERMANENT, .shutdown_ms = 5000                 \
    }
#define FLOW_SUPERVISOR(name, fn)                                                                  \
    {                                                                                              \
        .id = (name), .start = (fn), .restart = SUP_PERMANENT,                                     \
        .shutdown_ms = SUP_SHUTDOWN_INFINITY, .type = SUP_SUPERVISOR                               \
    }

/* A supervisor of the tree: `strategy`, `intensity` restarts in 60 s, registered as `name`. */
int flow__sup_start(sup_rt *rt, sup_pid parent, sup_strategy strategy, int intensity,
                    sup_child_spec *children, size_t n, const char *name, sup_pid *out,
                    sup_reason *why);
/* Defines a sup_start_fn `fn` that starts `behaviour` registered as `name` (no argument). */
#define FLOW_NAMED_START(fn, behaviour, name)                                                      \
    int fn(sup_rt *rt, sup_pid parent, void *arg, void *extra, sup_pid *out, sup_reason *why)      \
    {                                                                                              \
        (void)arg;                                                                                 \
        (void)extra;                                                                               \
        return flow__start_named(rt, parent, &(behaviour), NULL, name, out, why);                  \
    }

/* Frees every value of a map with fr, then the map. */
void flow__hmap_free_values(hmap *m, void (*fr)(void *));

/* A gen_server-like worker that registers its name in init. */
int flow__start_named(sup_rt *rt, sup_pid parent, const sup_behaviour *b, void *arg,
                      const char *name, sup_pid *out, sup_reason *why);

#endif
