/*
 * macula/flow.h — erlmcp-flow: swarms of agents that execute tasks (seed 002, FLOW.md,
 * docs/flow.md). This is the API the MCP tools and the CLI call.
 *
 * flow_start starts the tree erlmcp_flow_sup (registry, consensus_sup, core_sup with swarm_sup,
 * agent_sup, request_tracker, task_queue, load_balancer, observer_sup) under `parent`; it is a
 * sup_start_fn, so a node puts it in its own tree as a supervisor child spec.
 *
 * Every API operation is a call into the flow actors and answers JSON. Two forms:
 *  - synchronous (flow_request and the wrappers below) for code outside the scheduler (tests,
 *    CLI, benchmarks): runs the runtime until the answer arrives, like sup_call_sync;
 *  - asynchronous for actors (flow_request_async + flow_reply_decode): the answer arrives as a
 *    SUP_MSG_REPLY to the calling actor.
 * On success *out is the answer (caller json_decref's it). On failure the return value is a
 * negative FLOW_E* code and *out (when out is not NULL) is {"error": name, "message": text}.
 */
#ifndef MACULA_FLOW_H
#define MACULA_FLOW_H

#include <jansson.h>
#include <stdint.h>

#include "macula/sup.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- errors ----------------------------------------------------------------------------- */
enum {
    FLOW_OK = 0,
    FLOW_EINVAL = -1,      /* bad argument (the message names it) */
    FLOW_ENOTFOUND = -2,   /* no such swarm, agent or task */
    FLOW_EEXIST = -3,      /* the id is taken */
    FLOW_EQUEUE_FULL = -4, /* "queue_full": the swarm holds its queue limit of pending tasks */
    FLOW_EPOOL_FULL = -5,  /* the role's pool or the swarm is at its maximum of agents */
    FLOW_ESTATE = -6,      /* the transition is not allowed in the current state */
    FLOW_ENOMEM = -7,
    FLOW_EDEPS = -8,       /* a dependency is unknown or the task itself */
    FLOW_ETIMEOUT = -9,    /* "timeout": a request's deadline passed */
    FLOW_ENOPROC = -10,    /* flow is not running */
    FLOW_ESPAWN = -11,     /* an agent could not be started */
    FLOW_ENOTLEADER = -12, /* "not_leader": this node is a Raft follower; the error object
                              carries "leader": {"id", "address", "api"} (null if unknown) */
    FLOW_ECONSENSUS = -13, /* the replicated log did not take the command (leadership lost,
                              shutdown): it may or may not be committed later */
};
/* Short name ("queue_full", "not_found", ...). */
const char *flow_strerror(int err);

/* ---- consensus (docs/consensus.md) ------------------------------------------------------- */
/* Raft replication of the flow state machine (libraft, libuv storage, TCP transport). */
typedef struct flow_raft_config {
    uint64_t id;                 /* this node's Raft id, >= 1, unique in the cluster */
    const char *address;         /* Raft TCP address "host:port" (listened on, told to peers) */
    const char *api;             /* URL of this node's flow HTTP endpoint (flow_admin_start), for
                                    redirects to the leader; may be NULL */
    const char *data_dir;        /* the log and snapshots go to <data_dir>/raft (created) */
    bool join;                   /* false: bootstrap a one-member cluster on first start;
                                    true: start empty and wait to be added by a leader */
    unsigned election_ms;        /* base election timeout; randomised in [t, 2t]; 0 = 150 */
    unsigned heartbeat_ms;       /* 0 = election_ms / 3 */
    unsigned snapshot_threshold; /* entries between snapshots; 0 = 10000 */
    unsigned snapshot_trailing;  /* entries kept after a snapshot; 0 = 1000 */
    const char *gossip;          /* gossip membership over QUIC: "host:port" (numeric) to listen
                                    on; the node identity (key.pem, cert.pem) lives in data_dir.
                                    NULL: no gossip (no quorum pause) */
    bool faults;                 /* test-only fault switch (op cluster_fault); set by
                                    `macula flow-node` when MACULA_FLOW_FAULTS=1 */
} flow_raft_config;

/* Byzantine replication (PBFT, n = 3f+1 >= 4 replicas) of the flow state machine: a static
 * member list; messages signed with each node's Ed25519 identity key, carried over QUIC
 * between node identities (docs/consensus.md "Byzantine mode"). */
#define FLOW_PBFT_MAX_MEMBERS 16
typedef struct flow_pbft_member {
    uint32_t id;       /* 1..n (replica index id - 1); every id once */
    char address[128]; /* its QUIC address "host:port" (numeric) */
    char key[128];     /* its public key: the SubjectPublicKeyInfo DER in hex (Ed25519: 88
                          digits); its node id is the SHA-256 of those bytes */
    char api[256];     /* URL of its flow HTTP endpoint, "" if unknown (for not_leader) */
} flow_pbft_member;

typedef struct flow_pbft_config {
    uint32_t id;          /* this node's member id */
    const char *data_dir; /* the node identity (key.pem, cert.pem) lives here (created) */
    const flow_pbft_member *members; /* n entries (borrowed) */
    size_t n;                        /* 4..FLOW_PBFT_MAX_MEMBERS */
    unsigned checkpoint;             /* sequence numbers between checkpoints; 0 = 64 */
    unsigned view_change_ms;         /* 0 = 500 */
    unsigned retry_ms;               /* client: resend to all replicas after; 0 = 300 */
} flow_pbft_config;

/* Parses a member list: one member per line (or per comma-separated entry), fields separated
 * by blanks: `ID HOST:PORT KEY_HEX [API_URL]`; '#' starts a comment. The ids must be 1..n,
 * each once, n = 4..FLOW_PBFT_MAX_MEMBERS. *out is malloc'd (free it), sorted by id. Returns 0
 * or FLOW_EINVAL / FLOW_ENOMEM with a message in err. */
int flow_pbft_members_parse(const char *text, flow_pbft_member **out, size_t *n, char *err,
                            size_t errsize);
/* The public key (SPKI DER hex, for a members line) and the node id (hex) of the identity in
 * data_dir, created if absent. 0 or a negative code with a message in err. */
int flow_pbft_identity(const char *data_dir, char *key_hex, size_t key_size, char node_hex[65],
                       char *err, size_t errsize);

/* Ended tasks (completed, failed, cancelled) the flow state keeps by default; older ones are
 * evicted, oldest ended first (docs/flow.md "Retention"). */
#define FLOW_TASK_RETENTION_DEFAULT 10000
#define FLOW_TASK_RETENTION_ALL (-1) /* flow_options.task_retention: keep every ended task */

/* Options of flow_start (its `arg`). Both the options and what they point to must outlive the
 * flow tree. */
typedef struct flow_options {
    const flow_raft_config *raft; /* NULL: commands are applied locally (no durability) */
    const flow_pbft_config *pbft; /* PBFT instead (raft must be NULL): see docs/consensus.md */
    /* Ended tasks kept: 0 = FLOW_TASK_RETENTION_DEFAULT, FLOW_TASK_RETENTION_ALL (or any
     * negative) = all, else that many. Every replica of a cluster must use the same value. */
    int64_t task_retention;
} flow_options;

/* ---- the tree --------------------------------------------------------------------------- */
/* A sup_start_fn for erlmcp_flow_sup; arg is NULL or a const flow_options *. Registers the name
 * "erlmcp_flow_sup". With options->raft, consensus_sup runs the raft actor and the registry
 * applies only commands committed by the Raft log (see docs/consensus.md).
 * exec agents write to programs' stdin: the process must ignore SIGPIPE (macula node does). */
int flow_start(sup_rt *rt, sup_pid parent, void *arg, void *extra, sup_pid *out, sup_reason *why);

/* ---- requests --------------------------------------------------------------------------- */
/* op is one of: swarm_create swarm_list swarm_status swarm_destroy swarm_scale agent_spawn
 * agent_list agent_stop task_submit task_status task_result task_list task_cancel metrics.
 * args is an object (see docs/flow.md "API"); timeout_ms 0 = 30 s. */
int flow_request(sup_rt *rt, const char *op, const json_t *args, uint64_t timeout_ms, json_t **out);
/* From an actor: returns the call ref (0 if flow is not running: then a failed REPLY still
 * arrives). */
uint64_t flow_request_async(sup_actor *self, const char *op, const json_t *args,
                            uint64_t timeout_ms);
/* Decodes the SUP_MSG_REPLY of flow_request_async: returns 0 or FLOW_E*, sets *out as above. */
int flow_reply_decode(const sup_msg *m, json_t **out);

/* Wrappers (the JSON arguments are documented in docs/flow.md). */
/* spec: {"id"?, "topology": "star"|"hierarchical"|"ring"|"mesh", "config"?: {...}} */
int flow_swarm_create(sup_rt *rt, const json_t *spec, json_t **out);
int flow_swarm_list(sup_rt *rt, json_t **out);
int flow_swarm_status(sup_rt *rt, const char *swarm, json_t **out);
int flow_swarm_destroy(sup_rt *rt, const char *swarm, json_t **out);
/* Sets the pool minimum of a role (starting agents as needed). */
int flow_swarm_scale(sup_rt *rt, const char *swarm, const char *role, int min, json_t **out);
/* spec: {"role": ..., "executor"?: {...}, "weight"?: n, "capacity"?: n} */
int flow_agent_spawn(sup_rt *rt, const char *swarm, const json_t *spec, json_t **out);
int flow_agent_list(sup_rt *rt, const char *swarm, json_t **out); /* swarm NULL: all */
int flow_agent_stop(sup_rt *rt, const char *agent, json_t **out);
/* spec: {"input": any, "priority"?: "high"|"normal"|"low", "role"?, "dependencies"?: [ids],
 *        "deadline_ms"?: relative ms, "max_retries"?: n, "trace_id"?: hex} → {"id": uuid} */
int flow_task_submit(sup_rt *rt, const char *swarm, const json_t *spec, json_t **out);
int flow_task_status(sup_rt *rt, const char *task, json_t **out);
/* Waits up to wait_ms (0: answer at once) for the task to end; FLOW_ETIMEOUT if it has not. */
int flow_task_result(sup_rt *rt, const char *task, uint64_t wait_ms, json_t **out);
int flow_task_list(sup_rt *rt, const char *swarm, const char *state, json_t **out);
int flow_task_cancel(sup_rt *rt, const char *task, json_t **out);
int flow_metrics(sup_rt *rt, json_t **out);
/* Cluster operations (flow_request ops): cluster_status {} → {"mode": "local"}, the PBFT
 * view {"mode": "pbft", "id", "n", "f", "view", "primary", "view_changing", "acting",
 * "last_executed", "stable_checkpoint", "rejected", "rejected_by", "stats", "link", ...} or
 * {"mode": "raft", "id", "address", "state", "term", "leader", "commit_index",
 * "last_applied", "last_index", "members": [{"id", "address", "role", "api", "gossip"?,
 * "node"?}], "paused", "gossip": null | {"address", "node", "paused", "isolated",
 * "members": {"id": "alive"|"suspect"|"dead"}, ...}};
 * cluster_join {"id", "address", "api"?, "gossip"?, "node"?} (leader only: adds the node as a
 * voter and records its API URL and gossip endpoint);
 * cluster_leave {"id"} (leader only);
 * cluster_fault {"isolate": bool} (test only, needs flow_raft_config.faults: drops all of this
 * node's Raft and gossip traffic while isolated; see docs/consensus.md). */

/* ---- HTTP endpoint ---------------------------------------------------------------------- */
/* A small HTTP/1.1 endpoint on the runtime's libuv loop for the flow API: POST /flow/OP with
 * the JSON args as body (GET: no args) answers 200 with the answer JSON, or an error object
 * with 400 (invalid_argument), 404 (not_found), 409 (other refusals), 503 (not running,
 * consensus), 504 (timeout), and 307 with Location on the leader's endpoint for not_leader
 * when the leader's URL is known. The CLI (`macula flow cluster`) and tests use it. */
typedef struct flow_admin flow_admin;
int flow_admin_start(sup_rt *rt, const char *addr, uint16_t port, flow_admin **out,
                     const char **errmsg);
uint16_t flow_admin_port(const flow_admin *a);
/* Stops listening and closes the connections (requests in flight get no answer). */
void flow_admin_stop(flow_admin *a);

/* ---- observer output for the node's HTTP endpoints --------------------------------------- */
/* Both read what the flow actors publish (no actor call), so the HTTP server's callbacks may
 * call them on the runtime's thread between actor callbacks. */

/* Prometheus text exposition (format 0.0.4) of the flow on rt, to append to /metrics:
 * macula_flow_tasks{swarm,state}, macula_flow_queue_depth{swarm,priority},
 * macula_flow_agents{swarm,state}, macula_flow_breaker_state{swarm,state} (1 for the current
 * state), macula_flow_tasks_{completed,failed,cancelled}_total{swarm},
 * macula_flow_dispatch_latency_seconds (histogram, submit -> assign), macula_flow_swarms,
 * macula_flow_commands_applied_total. Returns malloc'd text ("" when flow is not running), or
 * NULL without memory. */
char *flow_metrics_prometheus(sup_rt *rt);

/* Health per swarm for /health: {"status": "ok"|"degraded", "swarms": {id: {"status":
 * "ok"|"degraded"|"paused", "agents", "breaker", "pending", "running"}}}. A swarm is paused
 * with an open breaker, degraded with a half-open one or without agents; the whole is degraded
 * when any swarm is not ok. NULL when flow is not running. */
json_t *flow_health_json(sup_rt *rt);

#ifdef __cplusplus
}
#endif
#endif
