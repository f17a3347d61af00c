/*
 * flow/core/agent.c — erlmcp_flow_agent (simple_one_for_one under agent_sup, temporary): one
 * agent that really executes tasks (FLOW.md "Executor").
 *
 * On start it registers with the registry by sending its agent_add command. For each RUN it
 * reports task_start, executes, and reports task_complete (with the result) or task_fail
 * (with the error). Executors:
 *  - builtin: by the input's "op" (default: the executor's "op", else echo): echo (result =
 *    input), append (result = input with this agent's id appended to "trail"), sleep
 *    ({"ms": n}, then echo), fail ({"error": text}), crash (the agent actor really crashes,
 *    through sup_crash);
 *  - exec: one OS process per task (uv_spawn): argv from the spec, the task input as JSON text
 *    on stdin, stdout as the result (parsed as JSON when it is JSON, else a string), exit
 *    status 0 = success, otherwise failure; time limit ("timeout_ms", default 30000: SIGKILL
 *    and "timeout") and output limit ("max_output" bytes, default 1 MiB: SIGKILL and
 *    "output_limit");
 *  - mcp: a connection to an external MCP server over stdio (mcp_client.h), opened when the
 *    agent starts and kept across its tasks: each task is tools/call of the spec's "tool" with
 *    the task input (an object) as arguments; the result is the tool's structuredContent, else
 *    its text content; isError, a JSON-RPC error, the server's exit or the time limit
 *    ("timeout_ms", default 30000) fail the task. A server that exited is started again for
 *    the next task; the agent's end closes it.
 * ABORT stops a task's execution without a report. Processes are killed and reaped also when
 * the agent ends (terminate), whatever ended it.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "flow/core/mcp_client.h"
#include "flow/flow_int.h"

enum { AG_BUILTIN = 0, AG_EXEC, AG_MCP };
enum {
    AG_T_SLEEP = FLOW_TAG_INTERNAL + 100, /* timer: a sleep task is done (slot) */
    AG_T_LIMIT,                           /* timer: an exec task hit its time limit (slot) */
    AG_T_LATENCY,                         /* timer: injected latency over, start (slot) */
    AG_PROC_DONE,                         /* from a process: ag_done + output */
    AG_MCP_DONE,                          /* from the MCP connection: flow_mcp_done + text */
};

#define AG_MAX_ARGV 64

typedef struct ag_proc ag_proc;

typedef struct ag_slot {
    bool used;
    char task[FLOW_ID_MAX];
    uint64_t timer;
    ag_proc *proc;
    uint64_t mcp_call; /* the MCP call in flight, 0 when none */
    json_t *input;
} ag_slot;

typedef struct ag_state {
    char id[FLOW_ID_MAX];
    char swarm[FLOW_ID_MAX];
    int type;
    json_t *executor;
    char *argv[AG_MAX_ARGV + 1];
    uint64_t timeout_ms;
    size_t max_output;
    uint64_t latency_ms; /* chaos */
    flow_mcp *mcp;       /* mcp: the connection (NULL until opened) */
    char *tool;          /* mcp: the tool to call */
    uint64_t mcp_seq;    /* mcp: last call id */
    json_t *cur;         /* the message being handled (freed by terminate after a crash) */
    ag_slot slot[FLOW_MAX_CAPACITY];
} ag_state;

/* ---- executor specs ---------------------------------------------------------------------- */

/* argv, timeout_ms and max_output of an exec or mcp spec. */
static int ag__check_process(const json_t *spec, const char *type, char *err, size_t errsize)
{
    const json_t *argv = json_object_get(spec, "argv");
    if (!json_is_array(argv) || json_array_size(argv) == 0 || json_array_size(argv) > AG_MAX_ARGV) {
        snprintf(err, errsize, "%s executor needs \"argv\": 1..%d strings", type, AG_MAX_ARGV);
        return FLOW_EINVAL;
    }
    for (size_t i = 0; i < json_array_size(argv); i++) {
        if (!json_is_string(json_array_get(argv, i))) {
            snprintf(err, errsize, "argv[%zu] is not a string", i);
            return FLOW_EINVAL;
        }
    }
    const json_t *t = json_object_get(spec, "timeout_ms"), *o = json_object_get(spec, "max_output");
    if ((t &&
         (!json_is_integer(t) || json_integer_value(t) < 1 || json_integer_value(t) > 86400000)) ||
        (o && (!json_is_integer(o) || json_integer_value(o) < 1 ||
               json_integer_value(o) > 16LL * 1024 * 1024))) {
        snprintf(err, errsize, "timeout_ms must be 1..86400000, max_output 1..16777216");
        return FLOW_EINVAL;
    }
    return 0;
}

int flow_executor_check(const json_t *spec, char *err, size_t errsize)
{
    const char *type = json_string_value(json_object_get(spec, "type"));
    if (!json_is_object(spec) || type == NULL) {
        snprintf(err, errsize, "executor needs a \"type\": builtin, exec or mcp");
        return FLOW_EINVAL;
    }
    if (strcmp(type, "builtin") == 0) {
        return 0;
    }
    if (strcmp(type, "exec") == 0) {
        return ag__check_process(spec, type, err, errsize);
    }
    if (strcmp(type, "mcp") == 0) {
        const char *tool = json_string_value(json_object_get(spec, "tool"));
        if (tool == NULL || tool[0] == '\0' || strlen(tool) > 128) {
            snprintf(err, errsize, "mcp executor needs a \"tool\" name of 1..128 characters");
            return FLOW_EINVAL;
        }
        return ag__check_process(spec, type, err, errsize);
    }
    snprintf(err, errsize, "unknown executor type %.32s", type);
    return FLOW_EINVAL;
}

void flow_agent_arg_free(flow_agent_arg *a)
{
    if (a) {
        free(a->executor);
        free(a);
    }
}

/* ---- reports ------------------------------------------------------------------------------ */

static void ag__report(sup_actor *self, ag_state *st, const char *cmd, const char *task,
                       json_t *result, const char *text)
{
    sup_rt *rt = sup_self_rt(self);
    json_t *j =
        json_pack("{s:s, s:i, s:s, s:s}", "cmd", cmd, "now", 0, "task", task, "agent", st->id);
    if (result) {
        json_object_set_new(j, "result", result);
    }
    if (text) {
        char t[FLOW_ERROR_MAX];
        snprintf(t, sizeof t, "%s", text);
        json_object_set_new(j, "text", json_string(t));
    }
    flow__cast_json(rt, sup_self(self), sup_whereis(rt, FLOW_N_REGISTRY), FLOW_TAG_CMD, j);
}

static void ag__free_slot(sup_actor *self, ag_slot *s)
{
    if (s->timer) {
        sup_cancel_timer(self, s->timer);
    }
    json_decref(s->input);
    memset(s, 0, sizeof *s);
}

/* ---- exec: one OS process per task -------------------------------------------------------- */

typedef struct ag_done {
    int slot;
    char task[FLOW_ID_MAX];
    int64_t status;
    int term_signal;
    bool overflow, timed_out;
} ag_done;

struct ag_proc {
    uv_process_t proc;
    uv_pipe_t in, out;
    uv_write_t wreq;
    sup_rt *rt;
    sup_pid owner; /* null once the agent is gone or the task aborted */
    ag_done done;
    char *input; /* stdin text */
    char *buf;
    size_t len, max;
    int open_handles;
    bool exited, eof, reported;
};

static void ag__proc_closed(uv_handle_t *h)
{
    ag_proc *p = h->data;
    if (--p->open_handles == 0) {
        free(p->input);
        free(p->buf);
        free(p);
    }
}

static void ag__proc_maybe_done(ag_proc *p)
{
    if (!p->exited || !p->eof || p->reported) {
        return;
    }
    p->reported = true;
    if (!sup_pid_is_null(p->owner)) {
        size_t n = sizeof p->done + p->len;
        char *msg = malloc(n);
        if (msg) {
            memcpy(msg, &p->done, sizeof p->done);
            if (p->len > 0) {
                memcpy(msg + sizeof p->done, p->buf, p->len);
            }
            sup_send(p->rt, SUP_NOPID, p->owner, AG_PROC_DONE, msg, n);
            free(msg);
        }
    }
    uv_close((uv_handle_t *)&p->proc, ag__proc_closed);
}

static void ag__proc_exit(uv_process_t *h, int64_t status, int term_signal)
{
    ag_proc *p = h->data;
    p->exited = true;
    p->done.status = status;
    p->done.term_signal = term_signal;
    ag__proc_maybe_done(p);
}

static void ag__alloc(uv_handle_t *h, size_t suggested, uv_buf_t *b)
{
    (void)h;
    static char scratch[65536];
    (void)suggested;
    *b = uv_buf_init(scratch, sizeof scratch);
}

static void ag__read(uv_stream_t *s, ssize_t n, const uv_buf_t *b)
{
    ag_proc *p = s->data;
    if (n > 0) {
        if (p->len + (size_t)n > p->max) {
            if (!p->done.overflow) {
                p->done.overflow = true;
                uv_process_kill(&p->proc, SIGKILL);
            }
        } else {
            char *nb = realloc(p->buf, p->len + (size_t)n);
            if (nb) {
                memcpy(nb + p->len, b->base, (size_t)n);
                p->buf = nb;
                p->len += (size_t)n;
            }
        }
    } else if (n < 0) {
        p->eof = true;
        uv_close((uv_handle_t *)s, ag__proc_closed);
        ag__proc_maybe_done(p);
    }
}

static void ag__written(uv_write_t *w, int status)
{
    (void)status;
    ag_proc *p = w->data;
    uv_close((uv_handle_t *)&p->in, ag__proc_closed); /* EOF on the child's stdin */
}

static void ag__proc_kill(ag_proc *p)
{
    p->owner = SUP_NOPID;
    if (!p->exited) {
        uv_process_kill(&p->proc, SIGKILL);
    }
}

static int ag__exec_start(sup_actor *self, ag_state *st, int slot, const json_t *input, char *err,
                          size_t errsize)
{
    uv_loop_t *loop = sup_rt_loop(sup_self_rt(self));
    if (loop == NULL) {
        snprintf(err, errsize, "exec executor needs a runtime on a libuv loop");
        return -1;
    }
    ag_proc *p = calloc(1, sizeof *p);
    if (p == NULL) {
        snprintf(err, errsize, "out of memory");
        return -1;
    }
    p->rt = sup_self_rt(self);
    p->owner = sup_self(self);
    p->max = st->max_output;
    p->done.slot = slot;
    snprintf(p->done.task, sizeof p->done.task, "%s", st->slot[slot].task);
    p->input = json_dumps(input, JSON_COMPACT | JSON_ENCODE_ANY);
    p->proc.data = p->in.data = p->out.data = p->wreq.data = p;
    uv_pipe_init(loop, &p->in, 0);
    uv_pipe_init(loop, &p->out, 0);
    uv_stdio_container_t stdio[3] = {
        {.flags = UV_CREATE_PIPE | UV_READABLE_PIPE, .data.stream = (uv_stream_t *)&p->in},
        {.flags = UV_CREATE_PIPE | UV_WRITABLE_PIPE, .data.stream = (uv_stream_t *)&p->out},
        {.flags = UV_IGNORE},
    };
    uv_process_options_t o = {
        .exit_cb = ag__proc_exit,
        .file = st->argv[0],
        .args = st->argv,
        .stdio_count = 3,
        .stdio = stdio,
    };
    int rc = uv_spawn(loop, &p->proc, &o);
    p->open_handles = 3;
    if (rc != 0) {
        snprintf(err, errsize, "spawn %s: %s", st->argv[0], uv_strerror(rc));
        uv_close((uv_handle_t *)&p->in, ag__proc_closed);
        uv_close((uv_handle_t *)&p->out, ag__proc_closed);
        uv_close((uv_handle_t *)&p->proc, ag__proc_closed);
        return -1;
    }
    uv_buf_t b = uv_buf_init(p->input ? p->input : (char *)"null",
                             p->input ? (unsigned)strlen(p->input) : 4);
    if (uv_write(&p->wreq, (uv_stream_t *)&p->in, &b, 1, ag__written) != 0) {
        uv_close((uv_handle_t *)&p->in, ag__proc_closed);
    }
    uv_read_start((uv_stream_t *)&p->out, ag__alloc, ag__read);
    st->slot[slot].proc = p;
    st->slot[slot].timer = sup_send_after(self, st->timeout_ms, AG_T_LIMIT, &slot, sizeof slot);
    return 0;
}

static void ag__exec_done(sup_actor *self, ag_state *st, const sup_msg *m)
{
    ag_done d;
    if (m->len < sizeof d) {
        return;
    }
    memcpy(&d, m->data, sizeof d);
    ag_slot *s = &st->slot[d.slot];
    if (!s->used || strcmp(s->task, d.task) != 0) {
        return; /* aborted meanwhile */
    }
    s->proc = NULL; /* closes itself */
    const char *out = (const char *)m->data + sizeof d;
    size_t len = m->len - sizeof d;
    char err[128];
    if (d.timed_out) {
        snprintf(err, sizeof err, "timeout after %llu ms", (unsigned long long)st->timeout_ms);
        ag__report(self, st, "task_fail", d.task, NULL, err);
    } else if (d.overflow) {
        snprintf(err, sizeof err, "output_limit: more than %zu bytes", st->max_output);
        ag__report(self, st, "task_fail", d.task, NULL, err);
    } else if (d.term_signal != 0) {
        snprintf(err, sizeof err, "signal %d", d.term_signal);
        ag__report(self, st, "task_fail", d.task, NULL, err);
    } else if (d.status != 0) {
        snprintf(err, sizeof err, "exit_status %lld", (long long)d.status);
        ag__report(self, st, "task_fail", d.task, NULL, err);
    } else {
        json_t *r = json_loadb(out, len, JSON_DECODE_ANY, NULL);
        if (r == NULL) {
            r = json_stringn(out, len);
        }
        if (r == NULL) {
            ag__report(self, st, "task_fail", d.task, NULL, "output is not UTF-8 text");
        } else {
            ag__report(self, st, "task_complete", d.task, r, NULL);
        }
    }
    ag__free_slot(self, s);
}

/* ---- mcp: one tools/call per task on the agent's connection ------------------------------- */

static int ag__mcp_start(sup_actor *self, ag_state *st, int slot, const json_t *input, char *err,
                         size_t errsize)
{
    if (!json_is_object(input)) {
        snprintf(err, errsize, "mcp tool arguments (the task input) must be an object");
        return -1;
    }
    if (!flow_mcp_alive(st->mcp)) { /* never opened, or the server exited: (re)start it */
        flow_mcp_close(st->mcp);
        st->mcp = flow_mcp_open(sup_rt_loop(sup_self_rt(self)), sup_self_rt(self), sup_self(self),
                                AG_MCP_DONE, st->argv, err, errsize);
        if (st->mcp == NULL) {
            return -1;
        }
    }
    uint64_t call = ++st->mcp_seq;
    if (flow_mcp_call(st->mcp, call, st->tool, input) != 0) {
        snprintf(err, errsize, "mcp call could not be sent");
        return -1;
    }
    st->slot[slot].mcp_call = call;
    st->slot[slot].timer = sup_send_after(self, st->timeout_ms, AG_T_LIMIT, &slot, sizeof slot);
    return 0;
}

static void ag__mcp_done(sup_actor *self, ag_state *st, const sup_msg *m)
{
    flow_mcp_done d;
    if (m->len < sizeof d) {
        return;
    }
    memcpy(&d, m->data, sizeof d);
    const char *text = (const char *)m->data + sizeof d;
    size_t len = m->len - sizeof d;
    for (int i = 0; i < FLOW_MAX_CAPACITY; i++) {
        ag_slot *s = &st->slot[i];
        if (!s->used || s->mcp_call != d.call) {
            continue;
        }
        if (d.ok) {
            json_t *r = json_loadb(text, len, JSON_DECODE_ANY, NULL);
            ag__report(self, st, r ? "task_complete" : "task_fail", s->task, r,
                       r ? NULL : "mcp result is not JSON");
        } else {
            char err[FLOW_ERROR_MAX];
            snprintf(err, sizeof err, "%.*s", (int)(len < sizeof err ? len : sizeof err - 1), text);
            ag__report(self, st, "task_fail", s->task, NULL, err);
        }
        ag__free_slot(self, s);
        return;
    }
}

/* ---- builtin ------------------------------------------------------------------------------- */

static void ag__builtin(sup_actor *self, ag_state *st, int slot, json_t *input)
{
    ag_slot *s = &st->slot[slot];
    const char *op = json_string_value(json_object_get(input, "op"));
    if (op == NULL) {
        op = json_string_value(json_object_get(st->executor, "op"));
    }
    if (op == NULL || strcmp(op, "echo") == 0) {
        ag__report(self, st, "task_complete", s->task, json_incref(input), NULL);
    } else if (strcmp(op, "append") == 0) {
        json_t *r = json_is_object(input) ? json_deep_copy(input) : json_object();
        json_t *trail = json_object_get(r, "trail");
        if (!json_is_array(trail)) {
            trail = json_array();
            json_object_set_new(r, "trail", trail);
        }
        json_array_append_new(trail, json_string(st->id));
        ag__report(self, st, "task_complete", s->task, r, NULL);
    } else if (strcmp(op, "sleep") == 0) {
        json_int_t ms = json_integer_value(json_object_get(input, "ms"));
        s->input = json_incref(input);
        s->timer = sup_send_after(self, ms > 0 ? (uint64_t)ms : 0, AG_T_SLEEP, &slot, sizeof slot);
        return;
    } else if (strcmp(op, "fail") == 0) {
        const char *e = json_string_value(json_object_get(input, "error"));
        ag__report(self, st, "task_fail", s->task, NULL, e ? e : "failed");
    } else if (strcmp(op, "crash") == 0) {
        sup_crash(self, "crash requested by task %.40s", s->task);
    } else {
        char err[96];
        snprintf(err, sizeof err, "unknown builtin op %.40s", op);
        ag__report(self, st, "task_fail", s->task, NULL, err);
    }
    ag__free_slot(self, s);
}

static void ag__execute(sup_actor *self, ag_state *st, int slot, json_t *input)
{
    if (st->type == AG_BUILTIN) {
        ag__builtin(self, st, slot, input);
        return;
    }
    char err[160];
    int rc = st->type == AG_MCP ? ag__mcp_start(self, st, slot, input, err, sizeof err)
                                : ag__exec_start(self, st, slot, input, err, sizeof err);
    if (rc != 0) {
        ag__report(self, st, "task_fail", st->slot[slot].task, NULL, err);
        ag__free_slot(self, &st->slot[slot]);
    }
}

/* ---- behaviour ----------------------------------------------------------------------------- */

static int ag_init(sup_actor *self, void *state, void *arg)
{
    ag_state *st = state;
    flow_agent_arg *a = arg;
    snprintf(st->id, sizeof st->id, "%s", a->id);
    snprintf(st->swarm, sizeof st->swarm, "%s", a->swarm);
    st->executor = a->executor ? json_loads(a->executor, 0, NULL) : NULL;
    st->timeout_ms = 30000;
    st->max_output = (size_t)1024 * 1024;
    char err[160];
    if (st->executor && flow_executor_check(st->executor, err, sizeof err) != 0) {
        json_decref(st->executor);
        flow_agent_arg_free(a);
        sup_reason r = sup_reason_error("bad_executor");
        sup_stop(self, &r);
        return SUP_EINIT;
    }
    const char *type = json_string_value(json_object_get(st->executor, "type"));
    if (type && (strcmp(type, "exec") == 0 || strcmp(type, "mcp") == 0)) {
        st->type = strcmp(type, "exec") == 0 ? AG_EXEC : AG_MCP;
        const json_t *argv = json_object_get(st->executor, "argv");
        for (size_t i = 0; i < json_array_size(argv); i++) {
            st->argv[i] = strdup(json_string_value(json_array_get(argv, i)));
        }
        json_int_t t = json_integer_value(json_object_get(st->executor, "timeout_ms"));
        json_int_t o = json_integer_value(json_object_get(st->executor, "max_output"));
        st->timeout_ms = t > 0 ? (uint64_t)t : st->timeout_ms;
        st->max_output = o > 0 ? (size_t)o : st->max_output;
    }
    if (st->type == AG_MCP) { /* connect now; a failure is retried at the first task */
        st->tool = strdup(json_string_value(json_object_get(st->executor, "tool")));
        char e[160];
        st->mcp = flow_mcp_open(sup_rt_loop(sup_self_rt(self)), sup_self_rt(self), sup_self(self),
                                AG_MCP_DONE, st->argv, e, sizeof e);
    }
    sup_set_label(self, "erlmcp_flow_agent");
    /* register: the registry applies our agent_add and monitors us */
    json_t *cmd = json_pack("{s:s, s:i, s:s, s:s, s:s, s:i, s:i, s:b}", "cmd", "agent_add", "now",
                            0, "swarm", a->swarm, "agent", a->id, "role", flow_role_name(a->role),
                            "weight", a->weight, "capacity", a->capacity, "pool", a->pool);
    if (st->executor) {
        json_object_set(cmd, "executor", st->executor);
    }
    sup_rt *rt = sup_self_rt(self);
    flow__cast_json(rt, sup_self(self), sup_whereis(rt, FLOW_N_REGISTRY), FLOW_TAG_AGENT_UP, cmd);
    flow_agent_arg_free(a);
    return 0;
}

static void ag_cast(sup_actor *self, void *state, const sup_msg *m)
{
    ag_state *st = state;
    if (m->tag == FLOW_TAG_RUN) {
        json_decref(st->cur);
        st->cur = flow__msg_json(m);
        const char *task = json_string_value(json_object_get(st->cur, "task"));
        json_t *input = json_object_get(st->cur, "input");
        int slot = -1;
        for (int i = 0; i < FLOW_MAX_CAPACITY && slot < 0; i++) {
            slot = st->slot[i].used ? -1 : i;
        }
        if (task == NULL || slot < 0) {
            if (task) {
                ag__report(self, st, "task_fail", task, NULL, "agent over capacity");
            }
            return;
        }
        ag_slot *s = &st->slot[slot];
        s->used = true;
        snprintf(s->task, sizeof s->task, "%s", task);
        ag__report(self, st, "task_start", task, NULL, NULL);
        if (st->latency_ms > 0) {
            s->input = json_incref(input);
            s->timer = sup_send_after(self, st->latency_ms, AG_T_LATENCY, &slot, sizeof slot);
        } else {
            ag__execute(self, st, slot, input);
        }
        json_decref(st->cur);
        st->cur = NULL;
    } else if (m->tag == FLOW_TAG_ABORT) {
        for (int i = 0; i < FLOW_MAX_CAPACITY; i++) {
            ag_slot *s = &st->slot[i];
            if (s->used && strlen(s->task) == m->len && memcmp(s->task, m->data, m->len) == 0) {
                if (s->proc) {
                    ag__proc_kill(s->proc);
                }
                if (s->mcp_call) {
                    flow_mcp_cancel(st->mcp, s->mcp_call);
                }
                ag__free_slot(self, s);
            }
        }
    } else if (m->tag == FLOW_TAG_LATENCY && m->len == sizeof(uint64_t)) {
        memcpy(&st->latency_ms, m->data, sizeof st->latency_ms);
    }
}

static void ag_info(sup_actor *self, void *state, const sup_msg *m)
{
    ag_state *st = state;
    if (m->kind == SUP_MSG_INFO && m->tag == AG_PROC_DONE) {
        ag__exec_done(self, st, m);
        return;
    }
    if (m->kind == SUP_MSG_INFO && m->tag == AG_MCP_DONE) {
        ag__mcp_done(self, st, m);
        return;
    }
    if (m->kind != SUP_MSG_TIMER || m->len != sizeof(int)) {
        return;
    }
    int slot;
    memcpy(&slot, m->data, sizeof slot);
    if (slot < 0 || slot >= FLOW_MAX_CAPACITY || !st->slot[slot].used) {
        return;
    }
    ag_slot *s = &st->slot[slot];
    s->timer = 0;
    if (m->tag == AG_T_SLEEP) {
        ag__report(self, st, "task_complete", s->task, json_incref(s->input), NULL);
        ag__free_slot(self, s);
    } else if (m->tag == AG_T_LATENCY) {
        json_t *in = s->input;
        s->input = NULL;
        st->cur = in; /* freed by terminate if the task crashes us */
        ag__execute(self, st, slot, in);
        st->cur = NULL;
        json_decref(in);
    } else if (m->tag == AG_T_LIMIT && s->proc) {
        s->proc->done.timed_out = true;
        uv_process_kill(&s->proc->proc, SIGKILL);
    } else if (m->tag == AG_T_LIMIT && s->mcp_call) {
        flow_mcp_cancel(st->mcp, s->mcp_call);
        char err[64];
        snprintf(err, sizeof err, "timeout after %llu ms", (unsigned long long)st->timeout_ms);
        ag__report(self, st, "task_fail", s->task, NULL, err);
        ag__free_slot(self, s);
    }
}

static void ag_terminate(sup_actor *self, void *state, const sup_reason *reason)
{
    (void)self;
    (void)reason;
    ag_state *st = state;
    for (int i = 0; i < FLOW_MAX_CAPACITY; i++) {
        if (st->slot[i].proc) {
            ag__proc_kill(st->slot[i].proc);
        }
        json_decref(st->slot[i].input);
    }
    for (int i = 0; st->argv[i]; i++) {
        free(st->argv[i]);
    }
    flow_mcp_close(st->mcp);
    free(st->tool);
    json_decref(st->cur);
    json_decref(st->executor);
}

static const sup_behaviour ag_behaviour = {
    .name = "erlmcp_flow_agent",
    .state_size = sizeof(ag_state),
    .init = ag_init,
    .handle_cast = ag_cast,
    .handle_info = ag_info,
    .terminate = ag_terminate,
};

int flow_agent_start(sup_rt *rt, sup_pid parent, void *arg, void *extra, sup_pid *out,
                     sup_reason *why)
{
    (void)arg;
    if (extra == NULL) {
        if (why) {
            *why = sup_reason_error("agent needs a start argument");
        }
        return SUP_EINVAL;
    }
    return sup_spawn(rt, parent, &ag_behaviour, extra, SUP_SPAWN_LINK, out, why);
}
