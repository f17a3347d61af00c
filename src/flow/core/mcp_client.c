/* flow/core/mcp_client.c — the `mcp` executor's connection to an MCP server (mcp_client.h). */
#include "flow/core/mcp_client.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "macula/version.h"
#include "mcp/jsonrpc.h"

typedef struct mc_call {
    uint64_t call;  /* the owner's id */
    json_int_t rpc; /* the JSON-RPC id */
    char *line;     /* the request, kept until the handshake is done (NULL once sent) */
    struct mc_call *next;
} mc_call;

typedef struct mc_write {
    uv_write_t req;
    char *text;
} mc_write;

struct flow_mcp {
    uv_process_t proc;
    uv_pipe_t in, out;
    sup_rt *rt;
    sup_pid owner;
    int tag;
    int open_handles;
    bool exited, ready, closing;
    json_int_t next_rpc;
    mc_call *calls;
    char *buf; /* a partial line from the server */
    size_t len;
};

static void mc__closed(uv_handle_t *h)
{
    flow_mcp *c = h->data;
    if (--c->open_handles == 0) {
        while (c->calls) {
            mc_call *n = c->calls->next;
            free(c->calls->line);
            free(c->calls);
            c->calls = n;
        }
        free(c->buf);
        free(c);
    }
}

static void mc__written(uv_write_t *w, int status)
{
    (void)status;
    mc_write *mw = (mc_write *)w;
    free(mw->text);
    free(mw);
}

/* Sends one message (a line). */
static void mc__send_text(flow_mcp *c, char *text, size_t len)
{
    mc_write *w = malloc(sizeof *w);
    if (w == NULL || c->exited || c->closing) {
        free(w);
        free(text);
        return;
    }
    text[len] = '\n'; /* mcp_rpc_dump leaves room: the NUL */
    w->text = text;
    uv_buf_t b = uv_buf_init(text, (unsigned)len + 1);
    if (uv_write(&w->req, (uv_stream_t *)&c->in, &b, 1, mc__written) != 0) {
        free(text);
        free(w);
    }
}

static void mc__send(flow_mcp *c, json_t *msg)
{
    size_t len;
    char *text = msg ? mcp_rpc_dump(msg, &len) : NULL;
    json_decref(msg);
    if (text) {
        mc__send_text(c, text, len);
    }
}

static json_t *mc__request(json_int_t id, const char *method, json_t *params)
{
    return json_pack("{s:s, s:I, s:s, s:o}", "jsonrpc", "2.0", "id", id, "method", method, "params",
                     params);
}

static void mc__report(flow_mcp *c, uint64_t call, bool ok, const char *text, size_t len)
{
    if (sup_pid_is_null(c->owner)) {
        return;
    }
    flow_mcp_done d = {call, ok};
    char *msg = malloc(sizeof d + len);
    if (msg) {
        memcpy(msg, &d, sizeof d);
        memcpy(msg + sizeof d, text, len);
        sup_send(c->rt, SUP_NOPID, c->owner, c->tag, msg, sizeof d + len);
        free(msg);
    }
}

static void mc__report_json(flow_mcp *c, uint64_t call, bool ok, const json_t *v)
{
    char *t = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
    if (t) {
        mc__report(c, call, ok, t, strlen(t));
        free(t);
    } else {
        mc__report(c, call, false, "out of memory", 13);
    }
}

/* Fails every call in flight (the server is gone). */
static void mc__fail_all(flow_mcp *c, const char *why)
{
    while (c->calls) {
        mc_call *k = c->calls;
        c->calls = k->next;
        mc__report(c, k->call, false, why, strlen(why));
        free(k->line);
        free(k);
    }
}

/* The text content of a tool result, joined by newlines. */
static json_t *mc__text_content(const json_t *result)
{
    const json_t *content = json_object_get(result, "content");
    size_t total = 0, i;
    json_t *item;
    json_array_foreach(content, i, item)
    {
        total += json_string_length(json_object_get(item, "text")) + 1;
    }
    char *s = calloc(1, total + 1);
    if (s == NULL) {
        return NULL;
    }
    size_t at = 0;
    json_array_foreach(content, i, item)
    {
        const json_t *t = json_object_get(item, "text");
        if (json_is_string(t)) {
            if (at > 0) {
                s[at++] = '\n';
            }
            memcpy(s + at, json_string_value(t), json_string_length(t));
            at += json_string_length(t);
        }
    }
    json_t *v = json_stringn(s, at);
    free(s);
    return v;
}

static void mc__response(flow_mcp *c, const mcp_msg *m)
{
    if (!json_is_integer(m->id)) {
        return;
    }
    json_int_t id = json_integer_value(m->id);
    if (id == 0 && !c->ready) { /* initialize answered */
        if (m->error) {
            const char *msg = json_string_value(json_object_get(m->error, "message"));
            char why[256];
            snprintf(why, sizeof why, "mcp initialize refused: %.200s", msg ? msg : "error");
            mc__fail_all(c, why);
            flow_mcp_close(c);
            return;
        }
        c->ready = true;
        mc__send(c, mcp_rpc_notification("notifications/initialized", NULL));
        for (mc_call *k = c->calls; k; k = k->next) {
            if (k->line) {
                char *line = k->line;
                k->line = NULL;
                mc__send_text(c, line, strlen(line));
            }
        }
        return;
    }
    mc_call **pp = &c->calls;
    while (*pp && (*pp)->rpc != id) {
        pp = &(*pp)->next;
    }
    mc_call *k = *pp;
    if (k == NULL) {
        return; /* cancelled, or not ours */
    }
    *pp = k->next;
    if (m->error) {
        char why[512];
        const char *msg = json_string_value(json_object_get(m->error, "message"));
        snprintf(why, sizeof why, "mcp error %lld: %.400s",
                 (long long)json_integer_value(json_object_get(m->error, "code")), msg ? msg : "");
        mc__report(c, k->call, false, why, strlen(why));
    } else if (json_is_true(json_object_get(m->result, "isError"))) {
        json_t *t = mc__text_content(m->result);
        const char *s = json_string_value(t);
        mc__report(c, k->call, false, s && s[0] ? s : "tool error", s && s[0] ? strlen(s) : 10);
        json_decref(t);
    } else {
        const json_t *sc = json_object_get(m->result, "structuredContent");
        json_t *t = sc ? json_incref((json_t *)sc) : mc__text_content(m->result);
        mc__report_json(c, k->call, true, t);
        json_decref(t);
    }
    free(k->line);
    free(k);
}

static void mc__line(flow_mcp *c, const char *line, size_t len)
{
    const char *why = NULL;
    json_t *v = mcp_rpc_parse(line, len, FLOW_MCP_MAX_LINE, 64, &why);
    mcp_msg m;
    json_t *bad = NULL;
    if (v == NULL || json_is_array(v) || mcp_rpc_classify(v, &m, &why, &bad) != 0) {
        json_decref(v);
        return; /* not a message we understand: servers may print noise; ignore it */
    }
    if (m.kind == MCP_MSG_RESPONSE) {
        mc__response(c, &m);
    } else if (m.kind == MCP_MSG_REQUEST) {
        mc__send(c, strcmp(m.method, "ping") == 0
                        ? mcp_rpc_result(m.id, json_object())
                        : mcp_rpc_error(m.id, -32601, "method not found", NULL));
    }
    json_decref(v);
}

static void mc__alloc(uv_handle_t *h, size_t suggested, uv_buf_t *b)
{
    (void)h;
    static char scratch[65536];
    (void)suggested;
    *b = uv_buf_init(scratch, sizeof scratch);
}

static void mc__read(uv_stream_t *s, ssize_t n, const uv_buf_t *b)
{
    flow_mcp *c = s->data;
    if (n < 0) {
        uv_read_stop(s);
        if (!c->exited) {
            uv_process_kill(&c->proc, SIGKILL); /* it closed its stdout: it is done */
        }
        return;
    }
    const char *p = b->base, *end = b->base + n;
    while (p < end && !c->closing) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        size_t take = (size_t)((nl ? nl : end) - p);
        if (c->len + take > FLOW_MCP_MAX_LINE) {
            mc__fail_all(c, "mcp server sent a line longer than 4 MiB");
            flow_mcp_close(c);
            return;
        }
        char *nb = realloc(c->buf, c->len + take + 1);
        if (nb == NULL) {
            return;
        }
        c->buf = nb;
        memcpy(c->buf + c->len, p, take);
        c->len += take;
        p += take;
        if (nl) {
            p++;
            size_t len = c->len;
            c->len = 0;
            mc__line(c, c->buf, len);
        }
    }
}

static void mc__exit(uv_process_t *p, int64_t status, int sig)
{
    flow_mcp *c = p->data;
    c->exited = true;
    char why[96];
    if (sig) {
        snprintf(why, sizeof why, "mcp server exited: signal %d", sig);
    } else {
        snprintf(why, sizeof why, "mcp server exited: status %lld", (long long)status);
    }
    mc__fail_all(c, why);
}

flow_mcp *flow_mcp_open(uv_loop_t *loop, sup_rt *rt, sup_pid owner, int tag, char *const *argv,
                        char *err, size_t errsize)
{
    flow_mcp *c = calloc(1, sizeof *c);
    if (c == NULL || loop == NULL) {
        snprintf(err, errsize, loop ? "out of memory" : "mcp executor needs a libuv loop");
        free(c);
        return NULL;
    }
    c->rt = rt;
    c->owner = owner;
    c->tag = tag;
    c->next_rpc = 1;
    c->proc.data = c->in.data = c->out.data = c;
    uv_pipe_init(loop, &c->in, 0);
    uv_pipe_init(loop, &c->out, 0);
    uv_stdio_container_t stdio[3] = {
        {.flags = UV_CREATE_PIPE | UV_READABLE_PIPE, .data.stream = (uv_stream_t *)&c->in},
        {.flags = UV_CREATE_PIPE | UV_WRITABLE_PIPE, .data.stream = (uv_stream_t *)&c->out},
        {.flags = UV_IGNORE},
    };
    uv_process_options_t o = {
        .exit_cb = mc__exit,
        .file = argv[0],
        .args = (char **)argv,
        .stdio_count = 3,
        .stdio = stdio,
    };
    int rc = uv_spawn(loop, &c->proc, &o);
    c->open_handles = 3;
    if (rc != 0) {
        snprintf(err, errsize, "spawn %s: %s", argv[0], uv_strerror(rc));
        c->exited = c->closing = true;
        uv_close((uv_handle_t *)&c->in, mc__closed);
        uv_close((uv_handle_t *)&c->out, mc__closed);
        uv_close((uv_handle_t *)&c->proc, mc__closed);
        return NULL;
    }
    uv_read_start((uv_stream_t *)&c->out, mc__alloc, mc__read);
    json_t *params =
        json_pack("{s:s, s:{}, s:{s:s, s:s}}", "protocolVersion", FLOW_MCP_PROTOCOL, "capabilities",
                  "clientInfo", "name", "macula-flow", "version", MACULA_VERSION);
    mc__send(c, mc__request(0, "initialize", params));
    return c;
}

int flow_mcp_call(flow_mcp *c, uint64_t call, const char *tool, const json_t *arguments)
{
    if (!flow_mcp_alive(c)) {
        return -1;
    }
    mc_call *k = calloc(1, sizeof *k);
    json_t *args = json_is_object(arguments) ? json_incref((json_t *)arguments) : json_object();
    json_t *req = k ? mc__request(c->next_rpc, "tools/call",
                                  json_pack("{s:s, s:o}", "name", tool, "arguments", args))
                    : (json_decref(args), NULL);
    size_t len;
    char *line = req ? mcp_rpc_dump(req, &len) : NULL;
    json_decref(req);
    if (line == NULL) {
        free(k);
        return -1;
    }
    k->call = call;
    k->rpc = c->next_rpc++;
    k->next = c->calls;
    c->calls = k;
    if (c->ready) {
        mc__send_text(c, line, len);
    } else {
        k->line = line; /* sent when the handshake is done */
    }
    return 0;
}

void flow_mcp_cancel(flow_mcp *c, uint64_t call)
{
    for (mc_call **pp = &c->calls; *pp; pp = &(*pp)->next) {
        mc_call *k = *pp;
        if (k->call == call) {
            *pp = k->next;
            if (k->line == NULL) { /* it was sent: tell the server */
                mc__send(c, mcp_rpc_notification(
                                "notifications/cancelled",
                                json_pack("{s:I, s:s}", "requestId", k->rpc, "reason", "aborted")));
            }
            free(k->line);
            free(k);
            return;
        }
    }
}

bool flow_mcp_alive(const flow_mcp *c)
{
    return c && !c->exited && !c->closing;
}

void flow_mcp_close(flow_mcp *c)
{
    if (c == NULL || c->closing) {
        return;
    }
    c->closing = true;
    c->owner = SUP_NOPID;
    if (!c->exited) {
        uv_process_kill(&c->proc, SIGKILL);
    }
    uv_close((uv_handle_t *)&c->in, mc__closed);
    uv_close((uv_handle_t *)&c->out, mc__closed);
    uv_close((uv_handle_t *)&c->proc, mc__closed);
}
