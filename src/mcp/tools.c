/* src/mcp/tools.c — the flow tools and their gateway actor (see tools.h). */
#include "tools.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "macula/flow.h"
#include "operator.h"

/* ---- schemas ------------------------------------------------------------------------------ */

#define J_ID "{\"type\":\"string\",\"minLength\":1,\"maxLength\":63}"
#define J_STR "{\"type\":\"string\"}"
#define J_INT "{\"type\":\"integer\"}"
#define J_OBJ "{\"type\":\"object\"}"
#define J_ARR "{\"type\":\"array\"}"
#define J_ROLE "{\"type\":\"string\",\"enum\":[\"worker\",\"specialist\",\"scout\"]}"
#define J_STATE                                                                                    \
    "{\"type\":\"string\",\"enum\":[\"pending\",\"assigned\",\"running\",\"completed\","           \
    "\"failed\",\"cancelled\"]}"
#define J_EXECUTOR                                                                                 \
    "{\"type\":\"object\",\"description\":\"{type: builtin, op?} or {type: exec, argv: [...], "    \
    "timeout_ms?, max_output?}\",\"properties\":{\"type\":{\"type\":\"string\",\"enum\":["         \
    "\"builtin\",\"exec\",\"mcp\"]}},\"required\":[\"type\"]}"

#define J_SWARM                                                                                    \
    "{\"type\":\"object\",\"properties\":{\"id\":" J_STR ",\"topology\":" J_STR                    \
    ",\"config\":" J_OBJ ",\"agents\":" J_ARR ",\"tasks\":" J_OBJ ",\"queue\":" J_OBJ              \
    ",\"breaker\":" J_OBJ "},\"required\":[\"id\",\"topology\",\"agents\",\"tasks\"]}"
#define J_AGENT                                                                                    \
    "{\"type\":\"object\",\"properties\":{\"id\":" J_STR ",\"swarm\":" J_STR ",\"role\":" J_STR    \
    ",\"state\":" J_STR ",\"weight\":" J_INT ",\"capacity\":" J_INT ",\"tasks\":" J_ARR            \
    ",\"completed\":" J_INT ",\"failed\":" J_INT "},\"required\":[\"id\",\"swarm\",\"role\","      \
    "\"state\"]}"
#define J_TASK                                                                                     \
    "{\"type\":\"object\",\"properties\":{\"id\":" J_STR ",\"swarm\":" J_STR ",\"state\":" J_STATE \
    ",\"priority\":" J_STR ",\"role\":" J_STR ",\"input\":{},\"result\":{},\"error\":" J_STR       \
    ",\"agent\":" J_STR ",\"retries\":" J_INT ",\"reasons\":" J_ARR                                \
    "},\"required\":[\"id\",\"swarm\",\"state\"]}"

#define IN_SWARM                                                                                   \
    "{\"type\":\"object\",\"properties\":{\"swarm\":" J_ID "},\"required\":[\"swarm\"],"           \
    "\"additionalProperties\":false}"
#define IN_TASK                                                                                    \
    "{\"type\":\"object\",\"properties\":{\"task\":" J_ID "},\"required\":[\"task\"],"             \
    "\"additionalProperties\":false}"
#define IN_AGENT                                                                                   \
    "{\"type\":\"object\",\"properties\":{\"agent\":" J_ID "},\"required\":[\"agent\"],"           \
    "\"additionalProperties\":false}"
#define IN_NONE "{\"type\":\"object\",\"additionalProperties\":false}"

/* ---- the tool table ----------------------------------------------------------------------- */

typedef enum mf_kind {
    MF_PLAIN,   /* one flow request; its answer is the result */
    MF_LIST,    /* one flow request answering an array, wrapped as {wrap: [...]} */
    MF_SUBMIT,  /* task_submit, with an optional wait */
    MF_METRICS, /* metrics, then observer_metrics */
    MF_RESULT,  /* task_result: the flow timeout covers wait_ms */
} mf_kind;

enum { A_RO = 1, A_DESTRUCTIVE = 2, A_IDEMPOTENT = 4 };

typedef struct mf_tool {
    const char *name, *title, *desc, *flow_op;
    const char *in, *out;
    const char *wrap;
    mf_kind kind;
    unsigned annot;
    bool chaos;
} mf_tool;

static const mf_tool mf_tools[] = {
    {"swarm_init", "Create a swarm",
     "Creates a swarm with a topology (star, hierarchical, ring, mesh) and an optional config "
     "(pool_min/pool_max per role, queue_limit, max_retries, lb, cb_threshold, executor, ...); "
     "its pool agents start at once.",
     "swarm_create",
     "{\"type\":\"object\",\"properties\":{\"id\":" J_ID ",\"topology\":{\"type\":\"string\","
     "\"enum\":[\"star\",\"hierarchical\",\"ring\",\"mesh\"],\"default\":\"star\"},\"config\":"
     "{\"type\":\"object\",\"description\":\"flow_swarm_config keys (docs/flow.md)\"}},"
     "\"additionalProperties\":false}",
     J_SWARM, NULL, MF_PLAIN, 0, false},
    {"swarm_status", "Swarm status",
     "A swarm: topology, config, agents, tasks by state, queue depth, breaker.", "swarm_status",
     IN_SWARM, J_SWARM, NULL, MF_PLAIN, A_RO, false},
    {"swarm_list", "List swarms", "Every swarm with its status.", "swarm_list", IN_NONE,
     "{\"type\":\"object\",\"properties\":{\"swarms\":{\"type\":\"array\",\"items\":" J_SWARM
     "}},\"required\":[\"swarms\"]}",
     "swarms", MF_LIST, A_RO, false},
    {"swarm_scale", "Scale a swarm",
     "Sets the pool minimum of a role: agents start, or the excess drains.", "swarm_scale",
     "{\"type\":\"object\",\"properties\":{\"swarm\":" J_ID ",\"role\":" J_ROLE
     ",\"count\":{\"type\":\"integer\",\"minimum\":0,\"maximum\":100000}},\"required\":["
     "\"swarm\",\"role\",\"count\"],\"additionalProperties\":false}",
     J_SWARM, NULL, MF_PLAIN, A_IDEMPOTENT, false},
    {"swarm_destroy", "Destroy a swarm",
     "Destroys a swarm: its agents stop and its unfinished tasks are cancelled.", "swarm_destroy",
     IN_SWARM,
     "{\"type\":\"object\",\"properties\":{\"id\":" J_STR ",\"destroyed\":{\"type\":\"boolean\"}"
     "},\"required\":[\"id\",\"destroyed\"]}",
     NULL, MF_PLAIN, A_DESTRUCTIVE, false},
    {"agent_spawn", "Spawn an agent",
     "Starts an agent of a role in a swarm, with an executor (builtin or exec), a weight and a "
     "capacity.",
     "agent_spawn",
     "{\"type\":\"object\",\"properties\":{\"swarm\":" J_ID ",\"role\":" J_ROLE ",\"id\":" J_ID
     ",\"executor\":" J_EXECUTOR ",\"weight\":{\"type\":\"integer\",\"minimum\":1,\"maximum\":"
     "1000000},\"capacity\":{\"type\":\"integer\",\"minimum\":1,\"maximum\":1024}},\"required\":"
     "[\"swarm\",\"role\"],\"additionalProperties\":false}",
     J_AGENT, NULL, MF_PLAIN, 0, false},
    {"agent_list", "List agents", "The agents of a swarm, or of every swarm.", "agent_list",
     "{\"type\":\"object\",\"properties\":{\"swarm\":" J_ID ",\"role\":" J_ROLE
     "},\"additionalProperties\":false}",
     "{\"type\":\"object\",\"properties\":{\"agents\":{\"type\":\"array\",\"items\":" J_AGENT
     "}},\"required\":[\"agents\"]}",
     "agents", MF_LIST, A_RO, false},
    {"agent_terminate", "Terminate an agent",
     "Stops an agent: it takes no new task and retires once idle (its queued work is requeued).",
     "agent_stop", IN_AGENT, J_AGENT, NULL, MF_PLAIN, A_DESTRUCTIVE, false},
    {"task_submit", "Submit a task",
     "Queues a task in a swarm. With wait (ms) the call completes when the task ends (or the "
     "wait passes, answering its current state), sending progress on its transitions when the "
     "request has a progressToken; cancelling the request cancels the task.",
     "task_submit",
     "{\"type\":\"object\",\"properties\":{\"swarm\":" J_ID ",\"input\":{\"description\":\"any "
     "JSON; builtin executors read op (echo, append, sleep {ms}, fail {error}, crash)\"},"
     "\"priority\":{\"type\":\"string\",\"enum\":[\"high\",\"normal\",\"low\"]},\"role\":" J_ROLE
     ",\"dependencies\":{\"type\":\"array\",\"items\":" J_ID ",\"maxItems\":64},\"deadline_ms\":"
     "{\"type\":\"integer\",\"minimum\":1},\"max_retries\":{\"type\":\"integer\",\"minimum\":0,"
     "\"maximum\":1000},\"trace_id\":{\"type\":\"string\",\"minLength\":32,\"maxLength\":32},"
     "\"wait\":{\"type\":\"integer\",\"minimum\":0,\"maximum\":3600000}},\"required\":[\"swarm\","
     "\"input\"],\"additionalProperties\":false}",
     J_TASK, NULL, MF_SUBMIT, 0, false},
    {"task_status", "Task status", "A task's state, agent, retries, result or error.",
     "task_status", IN_TASK, J_TASK, NULL, MF_PLAIN, A_RO, false},
    {"task_result", "Task result",
     "Waits up to wait_ms (0: answers at once) for a task to end and returns it; a task still "
     "running then is a tool error (timeout).",
     "task_result",
     "{\"type\":\"object\",\"properties\":{\"task\":" J_ID ",\"wait_ms\":{\"type\":\"integer\","
     "\"minimum\":0,\"maximum\":3600000}},\"required\":[\"task\"],\"additionalProperties\":false}",
     J_TASK, NULL, MF_RESULT, A_RO, false},
    {"task_list", "List tasks", "Tasks, by swarm and state, in submission order.", "task_list",
     "{\"type\":\"object\",\"properties\":{\"swarm\":" J_ID ",\"state\":" J_STATE
     ",\"limit\":{\"type\":\"integer\",\"minimum\":1,\"maximum\":100000}},"
     "\"additionalProperties\":false}",
     "{\"type\":\"object\",\"properties\":{\"tasks\":{\"type\":\"array\",\"items\":" J_TASK
     "}},\"required\":[\"tasks\"]}",
     "tasks", MF_LIST, A_RO, false},
    {"task_cancel", "Cancel a task",
     "Cancels a task: a pending one leaves the queue, a running one is aborted on its agent.",
     "task_cancel", IN_TASK, J_TASK, NULL, MF_PLAIN, A_DESTRUCTIVE, false},
    {"metrics", "Flow metrics",
     "Tasks by state, queue depth per priority, agents by state, breakers by state, and the "
     "observer's event counts and dispatch latency histogram.",
     "metrics", IN_NONE,
     "{\"type\":\"object\",\"properties\":{\"tasks\":" J_OBJ ",\"agents\":" J_OBJ
     ",\"queue_depth\":" J_OBJ ",\"breakers\":" J_OBJ ",\"observer\":" J_OBJ
     "},\"required\":[\"tasks\",\"agents\"]}",
     NULL, MF_METRICS, A_RO, false},
    {"chaos_kill_agent", "Chaos: kill an agent",
     "Kills an agent (reason chaos_kill): its tasks are requeued and the pool replaces it.",
     "chaos_kill", IN_AGENT,
     "{\"type\":\"object\",\"properties\":{\"injected\":{\"type\":\"boolean\"}},\"required\":["
     "\"injected\"]}",
     NULL, MF_PLAIN, A_DESTRUCTIVE, true},
    {"chaos_inject_latency", "Chaos: inject latency",
     "Makes an agent wait ms before each task it runs.", "chaos_latency",
     "{\"type\":\"object\",\"properties\":{\"agent\":" J_ID ",\"ms\":{\"type\":\"integer\","
     "\"minimum\":0,\"maximum\":600000}},\"required\":[\"agent\",\"ms\"],"
     "\"additionalProperties\":false}",
     "{\"type\":\"object\",\"properties\":{\"injected\":{\"type\":\"boolean\"}},\"required\":["
     "\"injected\"]}",
     NULL, MF_PLAIN, 0, true},
    {"chaos_kill_process", "Chaos: kill a process",
     "Kills a registered actor by name (e.g. erlmcp_flow_task_queue); its supervisor restarts "
     "it.",
     "chaos_kill_process",
     "{\"type\":\"object\",\"properties\":{\"name\":{\"type\":\"string\",\"minLength\":1,"
     "\"maxLength\":128}},\"required\":[\"name\"],\"additionalProperties\":false}",
     "{\"type\":\"object\",\"properties\":{\"killed\":{\"type\":\"boolean\"}},\"required\":["
     "\"killed\"]}",
     NULL, MF_PLAIN, A_DESTRUCTIVE, true},
};
#define MF_NTOOLS (sizeof mf_tools / sizeof mf_tools[0])

/* ---- operations --------------------------------------------------------------------------- */

enum {
    MF_TAG_START = 0x0f1c001, /* info to the actor: operation id */
    MF_TAG_CANCEL,            /* info to the actor: operation id whose call was cancelled */
};

typedef enum mf_phase {
    PH_QUEUED,  /* handed to the actor, not started */
    PH_REQUEST, /* the tool's flow request */
    PH_OBS,     /* metrics: observer_metrics */
    PH_WAIT,    /* task_submit: task_result with a short wait */
    PH_STATUS,  /* task_submit: task_status after a wait timed out */
    PH_CANCEL,  /* task_cancel after the client cancelled */
} mf_phase;

typedef struct mf_binding {
    mcp_flow *f;
    const mf_tool *tool;
} mf_binding;

typedef struct mf_op {
    mcp_flow *f;
    uint64_t id;
    const mf_tool *tool;
    mcp_call *call; /* NULL once the client cancelled (the call is gone) */
    json_t *args;   /* the flow request's arguments */
    mf_phase phase;
    uint64_t ref;      /* flow request in flight (0: none) */
    uint64_t wait_ms;  /* task_submit: how long to wait for the end */
    uint64_t deadline; /* task_submit: runtime clock */
    char task[64];     /* task_submit: the task id once known */
    int stage;         /* progress stage last sent */
    bool cancel;       /* the call was cancelled while the submit was in flight */
    json_t *acc;       /* metrics: the first answer */
    struct mf_op *next, *prev;
} mf_op;

struct mcp_flow {
    sup_rt *rt;
    mcp_server *srv;
    mcp_flow_config cfg;
    bool chaos;
    mf_binding bind[MF_NTOOLS];
    mf_op *ops;
    size_t nops;
    uint64_t next_id;
};

void mcp_flow_config_defaults(mcp_flow_config *c)
{
    memset(c, 0, sizeof *c);
    c->request_ms = 30000;
    c->poll_ms = 200;
    c->max_wait_ms = 3600000;
}

static void mf__link(mcp_flow *f, mf_op *op)
{
    op->next = f->ops;
    if (f->ops != NULL) {
        f->ops->prev = op;
    }
    f->ops = op;
    f->nops++;
}

static void mf__free_op(mcp_flow *f, mf_op *op)
{
    if (op == f->ops) {
        f->ops = op->next;
    } else if (op->prev != NULL) {
        op->prev->next = op->next;
    }
    if (op->next != NULL) {
        op->next->prev = op->prev;
    }
    f->nops--;
    json_decref(op->args);
    json_decref(op->acc);
    free(op);
}

static mf_op *mf__find_id(const mcp_flow *f, uint64_t id)
{
    for (mf_op *op = f->ops; op != NULL; op = op->next) {
        if (op->id == id) {
            return op;
        }
    }
    return NULL;
}

static mf_op *mf__find_ref(const mcp_flow *f, uint64_t ref)
{
    for (mf_op *op = f->ops; op != NULL && ref != 0; op = op->next) {
        if (op->ref == ref) {
            return op;
        }
    }
    return NULL;
}

/* The client cancelled the call (notifications/cancelled or its session ended): the call is
 * freed after this returns. Runs outside the actor; the actor finishes the operation. */
static void mf__cancel_hook(mcp_call *call, void *arg)
{
    (void)call;
    mf_op *op = arg;
    mcp_flow *f = op->f;
    op->call = NULL;
    sup_pid gw = sup_whereis(f->rt, MCP_FLOW_ACTOR);
    if (sup_send(f->rt, SUP_NOPID, gw, MF_TAG_CANCEL, &op->id, sizeof op->id) != 0) {
        mf__free_op(f, op); /* no gateway to finish it */
    }
}

static int mf__tool_fn(mcp_call *call, const json_t *args, void *user)
{
    mf_binding *b = user;
    mcp_flow *f = b->f;
    sup_pid gw = sup_whereis(f->rt, MCP_FLOW_ACTOR);
    if (sup_pid_is_null(gw)) {
        mcp_call_fail(call, "no_proc: flow is not running (the MCP gateway is down)");
        return 0;
    }
    mf_op *op = calloc(1, sizeof *op);
    json_t *a = json_deep_copy(args);
    if (op == NULL || a == NULL) {
        free(op);
        json_decref(a);
        return MCP_ENOMEM;
    }
    op->f = f;
    op->id = ++f->next_id;
    op->tool = b->tool;
    op->call = call;
    op->args = a;
    if (b->tool->kind == MF_SUBMIT) {
        json_t *w = json_object_get(a, "wait");
        op->wait_ms = w != NULL ? (uint64_t)json_integer_value(w) : 0;
        if (op->wait_ms > f->cfg.max_wait_ms) {
            op->wait_ms = f->cfg.max_wait_ms;
        }
        json_object_del(a, "wait");
    }
    mf__link(f, op);
    if (sup_send(f->rt, SUP_NOPID, gw, MF_TAG_START, &op->id, sizeof op->id) != 0) {
        mf__free_op(f, op);
        mcp_call_fail(call, "no_proc: flow is not running (the MCP gateway is down)");
        return 0;
    }
    mcp_call_on_cancel(call, mf__cancel_hook, op);
    return 0;
}

/* ---- the gateway actor -------------------------------------------------------------------- */

typedef struct mf_actor {
    mcp_flow *f;
} mf_actor;

static void mf__request(sup_actor *self, mcp_flow *f, mf_op *op, mf_phase phase,
                        const char *flow_op, const json_t *args, uint64_t extra_ms)
{
    op->phase = phase;
    op->ref = flow_request_async(self, flow_op, args, f->cfg.request_ms + extra_ms);
}

static void mf__request_task(sup_actor *self, mcp_flow *f, mf_op *op, mf_phase phase,
                             const char *flow_op, uint64_t wait_ms)
{
    json_t *a = json_pack("{s:s}", "task", op->task);
    if (wait_ms > 0) {
        json_object_set_new(a, "wait_ms", json_integer((json_int_t)wait_ms));
    }
    mf__request(self, f, op, phase, flow_op, a, wait_ms);
    json_decref(a);
}

static int mf__stage(const char *state)
{
    if (state == NULL) {
        return 0;
    }
    if (strcmp(state, "pending") == 0) {
        return 1;
    }
    if (strcmp(state, "assigned") == 0) {
        return 2;
    }
    if (strcmp(state, "running") == 0) {
        return 3;
    }
    return 4; /* completed, failed, cancelled */
}

/* Progress for a waiting task_submit when the task reached a later stage. */
static void mf__progress(mf_op *op, const json_t *task)
{
    const char *state = json_string_value(json_object_get(task, "state"));
    int stage = mf__stage(state);
    if (stage <= op->stage || op->call == NULL) {
        return;
    }
    op->stage = stage;
    char msg[128];
    snprintf(msg, sizeof msg, "task %s %s", op->task, state);
    mcp_call_progress(op->call, stage, 4, msg);
}

static void mf__fail(mf_op *op, const json_t *err)
{
    const char *name = json_string_value(json_object_get(err, "error"));
    const char *msg = json_string_value(json_object_get(err, "message"));
    mcp_call_fail(op->call, "%s: %s", name ? name : "error", msg ? msg : "flow request failed");
}

/* The next wait of a waiting task_submit, or the final status when the wait is over. */
static void mf__poll(sup_actor *self, mcp_flow *f, mf_op *op)
{
    uint64_t now = sup_rt_now(f->rt);
    uint64_t left = op->deadline > now ? op->deadline - now : 0;
    if (left == 0) {
        mf__request_task(self, f, op, PH_STATUS, "task_status", 0);
    } else {
        mf__request_task(self, f, op, PH_WAIT, "task_result",
                         left < f->cfg.poll_ms ? left : f->cfg.poll_ms);
    }
}

/* Handles a flow answer. Returns true when the operation is finished (to be freed). */
static bool mf__answer(sup_actor *self, mcp_flow *f, mf_op *op, int rc, json_t *out)
{
    if (op->phase == PH_CANCEL) {
        return true;
    }
    const mf_tool *t = op->tool;
    if (t->kind == MF_SUBMIT && op->phase == PH_REQUEST && rc == 0 && op->call == NULL) {
        /* cancelled while the submit was in flight: the client never learnt the id */
        snprintf(op->task, sizeof op->task, "%s", json_string_value(json_object_get(out, "id")));
        mf__request_task(self, f, op, PH_CANCEL, "task_cancel", 0);
        return false;
    }
    if (op->call == NULL) {
        return true;
    }
    switch (op->phase) {
    case PH_REQUEST:
        if (rc != 0) {
            mf__fail(op, out);
            return true;
        }
        if (t->kind == MF_LIST) {
            mcp_call_return(op->call, json_pack("{s:O}", t->wrap, out));
        } else if (t->kind == MF_METRICS) {
            op->acc = json_incref(out);
            mf__request(self, f, op, PH_OBS, "observer_metrics", NULL, 0);
            return false;
        } else if (t->kind == MF_SUBMIT && op->wait_ms > 0) {
            snprintf(op->task, sizeof op->task, "%s",
                     json_string_value(json_object_get(out, "id")));
            op->deadline = sup_rt_now(f->rt) + op->wait_ms;
            mf__progress(op, out);
            if (mf__stage(json_string_value(json_object_get(out, "state"))) == 4) {
                mcp_call_return(op->call, json_incref(out));
                return true;
            }
            mf__poll(self, f, op);
            return false;
        } else {
            mcp_call_return(op->call, json_incref(out));
        }
        return true;
    case PH_OBS:
        if (rc == 0) {
            json_object_set(op->acc, "observer", out);
        }
        mcp_call_return(op->call, json_incref(op->acc));
        return true;
    case PH_WAIT:
        if (rc == 0) {
            mf__progress(op, out);
            mcp_call_return(op->call, json_incref(out));
            return true;
        }
        if (rc == FLOW_ETIMEOUT) {
            mf__request_task(self, f, op, PH_STATUS, "task_status", 0);
            return false;
        }
        mf__fail(op, out);
        return true;
    case PH_STATUS:
        if (rc != 0) {
            mf__fail(op, out);
            return true;
        }
        mf__progress(op, out);
        if (mf__stage(json_string_value(json_object_get(out, "state"))) == 4 ||
            sup_rt_now(f->rt) >= op->deadline) {
            mcp_call_return(op->call, json_incref(out));
            return true;
        }
        mf__poll(self, f, op);
        return false;
    default: return true;
    }
}

static void mf__start(sup_actor *self, mcp_flow *f, mf_op *op)
{
    const mf_tool *t = op->tool;
    uint64_t extra = 0;
    if (t->kind == MF_RESULT) {
        json_t *w = json_object_get(op->args, "wait_ms");
        extra = w != NULL ? (uint64_t)json_integer_value(w) : 0;
    }
    mf__request(self, f, op, PH_REQUEST, t->flow_op, op->args, extra);
}

static void mf_info(sup_actor *self, void *state, const sup_msg *m)
{
    mcp_flow *f = ((mf_actor *)state)->f;
    if (m->kind == SUP_MSG_REPLY) {
        mf_op *op = mf__find_ref(f, m->ref);
        if (op == NULL) {
            return; /* the answer to a request the operation no longer waits for */
        }
        op->ref = 0;
        json_t *out = NULL;
        int rc = flow_reply_decode(m, &out);
        if (mf__answer(self, f, op, rc, out)) {
            mf__free_op(f, op);
        }
        json_decref(out);
        return;
    }
    uint64_t id;
    if (m->kind != SUP_MSG_INFO || m->len != sizeof id) {
        return;
    }
    memcpy(&id, m->data, sizeof id);
    mf_op *op = mf__find_id(f, id);
    if (op == NULL) {
        return;
    }
    if (m->tag == MF_TAG_START && op->phase == PH_QUEUED) {
        if (op->call == NULL) {
            mf__free_op(f, op); /* cancelled before it started */
        } else {
            mf__start(self, f, op);
        }
    } else if (m->tag == MF_TAG_CANCEL && op->call == NULL) {
        if (op->tool->kind == MF_SUBMIT && op->task[0] != '\0' && op->phase != PH_CANCEL) {
            mf__request_task(self, f, op, PH_CANCEL, "task_cancel", 0);
        }
        /* otherwise the answer in flight finishes the operation (mf__answer) */
    }
}

static int mf_init(sup_actor *self, void *state, void *arg)
{
    ((mf_actor *)state)->f = arg;
    sup_set_label(self, MCP_FLOW_ACTOR);
    return 0;
}

static void mf_terminate(sup_actor *self, void *state, const sup_reason *reason)
{
    (void)self;
    (void)reason;
    mcp_flow *f = ((mf_actor *)state)->f;
    /* the flow requests in flight die with this actor: their operations end here */
    mf_op *op;
    while ((op = f->ops) != NULL) {
        mcp_call *c = op->call;
        op->call = NULL;
        mf__free_op(f, op);
        if (c != NULL) {
            mcp_call_fail(c, "no_proc: the flow MCP gateway stopped");
        }
    }
}

static const sup_behaviour mf_behaviour = {
    .name = MCP_FLOW_ACTOR,
    .state_size = sizeof(mf_actor),
    .init = mf_init,
    .handle_info = mf_info,
    .terminate = mf_terminate,
};

int mcp_flow_actor_start(sup_rt *rt, sup_pid parent, void *arg, void *extra, sup_pid *out,
                         sup_reason *why)
{
    (void)extra;
    int rc = sup_spawn(rt, parent, &mf_behaviour, arg, SUP_SPAWN_LINK, out, why);
    if (rc == 0 && sup_register(rt, MCP_FLOW_ACTOR, *out) != 0) {
        sup_reason r = sup_reason_error("name_taken");
        sup_exit(rt, SUP_NOPID, *out, &r);
        if (why != NULL) {
            *why = r;
        }
        return SUP_EINIT;
    }
    return rc;
}

/* ---- registration ------------------------------------------------------------------------- */

static json_t *mf__annotations(const mf_tool *t)
{
    json_t *a = json_pack("{s:s, s:b, s:b}", "title", t->title, "readOnlyHint",
                          (t->annot & A_RO) != 0, "openWorldHint", 0);
    if (a != NULL && !(t->annot & A_RO)) {
        json_object_set_new(a, "destructiveHint", json_boolean(t->annot & A_DESTRUCTIVE));
        json_object_set_new(a, "idempotentHint", json_boolean(t->annot & A_IDEMPOTENT));
    }
    return a;
}

int mcp_flow_new(sup_rt *rt, mcp_server *srv, const mcp_flow_config *c, mcp_flow **out)
{
    *out = NULL;
    mcp_flow *f = calloc(1, sizeof *f);
    if (f == NULL) {
        return MCP_ENOMEM;
    }
    f->rt = rt;
    f->srv = srv;
    mcp_flow_config_defaults(&f->cfg);
    if (c != NULL) {
        f->cfg.chaos = c->chaos;
        f->cfg.chaos_allowed = c->chaos_allowed || c->chaos;
        f->cfg.request_ms = c->request_ms ? c->request_ms : f->cfg.request_ms;
        f->cfg.poll_ms = c->poll_ms ? c->poll_ms : f->cfg.poll_ms;
        f->cfg.max_wait_ms = c->max_wait_ms ? c->max_wait_ms : f->cfg.max_wait_ms;
    }
    int rc = 0;
    for (size_t i = 0; i < MF_NTOOLS && rc == 0; i++) {
        const mf_tool *t = &mf_tools[i];
        f->bind[i] = (mf_binding){f, t};
        json_error_t e;
        mcp_tool_def d = {
            .name = t->name,
            .title = t->title,
            .description = t->desc,
            .input_schema = json_loads(t->in, 0, &e),
            .output_schema = json_loads(t->out, 0, &e),
            .annotations = mf__annotations(t),
            .call = mf__tool_fn,
            .user = &f->bind[i],
        };
        if (d.input_schema == NULL || d.output_schema == NULL || d.annotations == NULL) {
            rc = MCP_ENOMEM;
        } else {
            rc = mcp_server_add_tool(srv, &d, !t->chaos || f->cfg.chaos);
        }
        json_decref(d.input_schema);
        json_decref(d.output_schema);
        json_decref(d.annotations);
    }
    if (rc != 0) {
        for (size_t i = 0; i < MF_NTOOLS; i++) {
            mcp_server_remove_tool(srv, mf_tools[i].name);
        }
        free(f);
        return rc;
    }
    f->chaos = f->cfg.chaos;
    *out = f;
    return 0;
}

/* Switches the chaos tools together (one list_changed); sessions notified or MCP_E*. */
static int mf__set_chaos(mcp_flow *f, bool on)
{
    const char *names[MF_NTOOLS];
    size_t n = 0;
    for (size_t i = 0; i < MF_NTOOLS; i++) {
        if (mf_tools[i].chaos) {
            names[n++] = mf_tools[i].name;
        }
    }
    int rc = mcp_server_set_tools_enabled(f->srv, names, n, on);
    if (rc >= 0) {
        f->chaos = on;
    }
    return rc;
}

int mcp_flow_set_chaos(mcp_flow *f, bool on)
{
    int rc = mf__set_chaos(f, on);
    return rc < 0 ? rc : 0;
}

bool mcp_flow_chaos(const mcp_flow *f)
{
    return f->chaos;
}

bool mcp_flow_chaos_allowed(const mcp_flow *f)
{
    return f->cfg.chaos_allowed;
}

int mcp_flow_operator_chaos(mcp_flow *f, bool on)
{
    if (on && !f->cfg.chaos_allowed) {
        return MCP_ESTATE;
    }
    return mf__set_chaos(f, on);
}

static char *mf__dump(json_t *v)
{
    char *t = v != NULL ? json_dumps(v, JSON_COMPACT) : NULL;
    json_decref(v);
    return t;
}

int mcp_flow_admin_chaos(void *user, const char *method, const char *body, size_t len, char **reply)
{
    mcp_flow *f = user;
    *reply = NULL;
    if (f == NULL) {
        *reply = mf__dump(
            json_pack("{s:s, s:s}", "error", "unavailable", "message", "flow has not started"));
        return 503;
    }
    if (strcmp(method, "GET") == 0) {
        *reply =
            mf__dump(json_pack("{s:b, s:b}", "chaos", f->chaos, "allowed", f->cfg.chaos_allowed));
        return 200;
    }
    if (strcmp(method, "POST") != 0) {
        *reply = mf__dump(
            json_pack("{s:s, s:s}", "error", "method_not_allowed", "message", "use GET or POST"));
        return 405;
    }
    json_t *req = len <= 4096 ? json_loadb(body, len, JSON_REJECT_DUPLICATES, NULL) : NULL;
    json_t *v = json_object_get(req, "chaos");
    if (!json_is_object(req) || json_object_size(req) != 1 || !json_is_boolean(v)) {
        json_decref(req);
        *reply = mf__dump(json_pack("{s:s, s:s}", "error", "invalid_argument", "message",
                                    "the body must be {\"chaos\": true} or {\"chaos\": false}"));
        return 400;
    }
    bool on = json_is_true(v), was = f->chaos;
    json_decref(req);
    int rc = mcp_flow_operator_chaos(f, on);
    if (rc == MCP_ESTATE) {
        *reply = mf__dump(json_pack(
            "{s:s, s:s}", "error", "chaos_not_allowed", "message",
            "chaos is not allowed on this node (start it with --chaos or --allow-chaos)"));
        return 403;
    }
    if (rc < 0) {
        *reply =
            mf__dump(json_pack("{s:s, s:s}", "error", "internal", "message", mcp_strerror(rc)));
        return 500;
    }
    *reply = mf__dump(json_pack("{s:b, s:b, s:b, s:i}", "chaos", f->chaos, "allowed",
                                f->cfg.chaos_allowed, "changed", was != on, "notified", rc));
    return 200;
}

size_t mcp_flow_pending(const mcp_flow *f)
{
    return f->nops;
}

void mcp_flow_free(mcp_flow *f)
{
    if (f == NULL) {
        return;
    }
    while (f->ops != NULL) {
        mf__free_op(f, f->ops);
    }
    for (size_t i = 0; i < MF_NTOOLS; i++) {
        mcp_server_remove_tool(f->srv, mf_tools[i].name);
    }
    free(f);
}
