/*
 * src/mcp/server.c — the sans-I/O MCP server: registry, sessions, lifecycle, tools/list,
 * tools/call with progress and cancellation, logging (see macula/mcp.h).
 *
 * Ownership: the server owns tools; a session owns its in-flight calls and its open inputs
 * (one record per mcp_session_input call, alive until every request in it is answered or
 * cancelled, then `done` is called and the record freed). A call is freed when it completes,
 * or when it is cancelled and its cancel hook has run; a cancelled call without a hook is
 * detached from its session and freed when the tool completes it.
 */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "json.h"
#include "jsonrpc.h"
#include "macula/mcp.h"
#include "macula/version.h"
#include "operator.h"
#include "schema.h"

const char *const mcp_protocol_versions[] = {"2024-11-05", "2025-03-26", "2025-06-18", "2025-11-25",
                                             NULL};
enum { V2024_11_05, V2025_03_26, V2025_06_18, V2025_11_25, VLATEST = V2025_11_25 };

static const char *const log_names[] = {"debug", "info",     "notice", "warning",
                                        "error", "critical", "alert",  "emergency"};

const char *mcp_strerror(int err)
{
    switch (err) {
    case MCP_OK: return "success";
    case MCP_EINVAL: return "invalid argument";
    case MCP_ENOMEM: return "out of memory";
    case MCP_EEXIST: return "a tool of that name exists";
    case MCP_ENOENT: return "no such tool";
    case MCP_ESTATE: return "not allowed in the current state";
    case MCP_ELIMIT: return "limit reached";
    case MCP_EIO: return "I/O error";
    case MCP_ESCHEMA: return "unsupported JSON Schema";
    default: return "unknown error";
    }
}

int mcp_protocol_index(const char *v)
{
    for (int i = 0; v != NULL && mcp_protocol_versions[i] != NULL; i++) {
        if (strcmp(v, mcp_protocol_versions[i]) == 0) {
            return i;
        }
    }
    return -1;
}

const char *mcp_log_level_name(mcp_log_level l)
{
    return (unsigned)l <= MCP_LOG_EMERGENCY ? log_names[l] : "unknown";
}

int mcp_log_level_parse(const char *name, mcp_log_level *out)
{
    for (int i = 0; name != NULL && i <= MCP_LOG_EMERGENCY; i++) {
        if (strcmp(name, log_names[i]) == 0) {
            *out = (mcp_log_level)i;
            return 0;
        }
    }
    return MCP_EINVAL;
}

/* ---- types ------------------------------------------------------------------------------ */

typedef struct tool {
    char *name, *title, *description;
    json_t *input_schema, *output_schema, *annotations;
    mcp_tool_fn fn;
    void *user;
    bool enabled;
} tool;

struct mcp_server {
    mcp_server_config cfg;
    char *name, *title, *version, *instructions;
    tool **tools;
    size_t ntools, cap;
    uint64_t gen; /* bumped on every registry change; part of the pagination cursor */
    mcp_session *sessions;
};

typedef struct input_rec {
    mcp_session *ss;
    void *origin;
    unsigned pending; /* requests still to answer, +1 while the input is being handled */
    bool batch;       /* a batch input: responses are collected in `out`, sent together */
    size_t nbatch;    /* responses in `out` */
    mcp_buf out;      /* "[resp,resp,..." while nbatch > 0 */
    struct input_rec *next, *prev;
} input_rec;

struct mcp_call {
    mcp_session *ss; /* NULL once detached */
    input_rec *rec;  /* NULL once detached */
    json_t *id;
    json_t *progress_token;
    double last_progress;
    bool any_progress;
    json_t *output_schema;
    mcp_cancel_fn cancel;
    void *cancel_arg;
    bool in_fn;     /* inside the tool function or the cancel hook: freeing is deferred */
    bool completed; /* the tool gave its answer */
    bool detached;  /* cancelled: the answer is discarded */
    char *response; /* the response text, built at completion, sent when the tool function
                     * returns; NULL until then */
    size_t response_len;
    mcp_call *next, *prev;
    char tool_name[]; /* its tool's name (the tool may be removed meanwhile) */
};

struct mcp_session {
    mcp_server *srv;
    mcp_transport t;
    void *user;
    mcp_session_state state;
    int version; /* index into mcp_protocol_versions; -1 before initialize */
    mcp_log_level level;
    mcp_call *calls;
    size_t ncalls;
    input_rec *inputs;
    bool in_input;
    bool closing;
    mcp_session *next, *prev;
};

/* ---- server and registry ---------------------------------------------------------------- */

void mcp_server_config_defaults(mcp_server_config *c)
{
    memset(c, 0, sizeof *c);
    c->name = "macula";
    c->version = MACULA_VERSION;
    c->page_size = 100;
    c->max_message = 4u << 20;
    c->max_depth = 64;
    c->max_inflight = 1024;
    c->max_batch = 256;
    c->log_level = MCP_LOG_INFO;
}

static char *server__dup(const char *s, bool *ok)
{
    if (s == NULL) {
        return NULL;
    }
    char *d = strdup(s);
    if (d == NULL) {
        *ok = false;
    }
    return d;
}

mcp_server *mcp_server_new(const mcp_server_config *c)
{
    mcp_server_config def;
    if (c == NULL) {
        mcp_server_config_defaults(&def);
        c = &def;
    }
    mcp_server *s = calloc(1, sizeof *s);
    if (s == NULL) {
        return NULL;
    }
    s->cfg = *c;
    bool ok = true;
    s->name = server__dup(c->name != NULL ? c->name : "macula", &ok);
    s->title = server__dup(c->title, &ok);
    s->version = server__dup(c->version != NULL ? c->version : MACULA_VERSION, &ok);
    s->instructions = server__dup(c->instructions, &ok);
    if (s->cfg.page_size == 0) {
        s->cfg.page_size = 100;
    }
    if (s->cfg.max_message == 0) {
        s->cfg.max_message = 4u << 20;
    }
    if (s->cfg.max_depth <= 0) {
        s->cfg.max_depth = 64;
    }
    if (s->cfg.max_inflight == 0) {
        s->cfg.max_inflight = 1024;
    }
    if (s->cfg.max_batch == 0) {
        s->cfg.max_batch = 256;
    }
    if (!ok) {
        mcp_server_free(s);
        return NULL;
    }
    return s;
}

static void tool__free(tool *t)
{
    free(t->name);
    free(t->title);
    free(t->description);
    json_decref(t->input_schema);
    json_decref(t->output_schema);
    json_decref(t->annotations);
    free(t);
}

void mcp_server_free(mcp_server *s)
{
    if (s == NULL) {
        return;
    }
    for (size_t i = 0; i < s->ntools; i++) {
        tool__free(s->tools[i]);
    }
    free(s->tools);
    free(s->name);
    free(s->title);
    free(s->version);
    free(s->instructions);
    free(s);
}

static bool tool__name_ok(const char *n)
{
    size_t len = n != NULL ? strlen(n) : 0;
    if (len == 0 || len > 128) {
        return false;
    }
    for (size_t i = 0; i < len; i++) {
        char c = n[i];
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                  c == '_' || c == '-' || c == '.';
        if (!ok) {
            return false;
        }
    }
    return true;
}

static tool *server__find(const mcp_server *s, const char *name, size_t *idx)
{
    for (size_t i = 0; i < s->ntools; i++) {
        if (strcmp(s->tools[i]->name, name) == 0) {
            if (idx != NULL) {
                *idx = i;
            }
            return s->tools[i];
        }
    }
    return NULL;
}

static void session__send(mcp_session *ss, void *origin, json_t *msg, bool response);

/* notifications/tools/list_changed to every initialized session; returns how many. */
static int server__list_changed(mcp_server *s)
{
    int n = 0;
    for (mcp_session *ss = s->sessions; ss != NULL; ss = ss->next) {
        if (ss->state == MCP_SESSION_READY && !ss->closing) {
            session__send(ss, NULL, mcp_rpc_notification("notifications/tools/list_changed", NULL),
                          false);
            n++;
        }
    }
    return n;
}

static bool schema__is_object_schema(const json_t *s)
{
    json_t *t = json_object_get(s, "type");
    return json_is_string(t) && strcmp(json_string_value(t), "object") == 0;
}

int mcp_server_add_tool(mcp_server *s, const mcp_tool_def *def, bool enabled)
{
    const char *why;
    if (def == NULL || def->call == NULL || !tool__name_ok(def->name) ||
        !json_is_object(def->input_schema) ||
        (def->annotations != NULL && !json_is_object(def->annotations))) {
        return MCP_EINVAL;
    }
    if (!schema__is_object_schema(def->input_schema) ||
        mcp_schema_check(def->input_schema, &why) != 0) {
        return MCP_ESCHEMA;
    }
    if (def->output_schema != NULL && (!schema__is_object_schema(def->output_schema) ||
                                       mcp_schema_check(def->output_schema, &why) != 0)) {
        return MCP_ESCHEMA;
    }
    if (server__find(s, def->name, NULL) != NULL) {
        return MCP_EEXIST;
    }
    if (s->ntools == s->cap) {
        size_t cap = s->cap ? s->cap * 2 : 16;
        tool **nt = realloc(s->tools, cap * sizeof *nt);
        if (nt == NULL) {
            return MCP_ENOMEM;
        }
        s->tools = nt;
        s->cap = cap;
    }
    tool *t = calloc(1, sizeof *t);
    if (t == NULL) {
        return MCP_ENOMEM;
    }
    bool ok = true;
    t->name = server__dup(def->name, &ok);
    t->title = server__dup(def->title, &ok);
    t->description = server__dup(def->description, &ok);
    if (!ok) {
        tool__free(t);
        return MCP_ENOMEM;
    }
    t->input_schema = json_incref(def->input_schema);
    t->output_schema = json_incref(def->output_schema);
    t->annotations = json_incref(def->annotations);
    t->fn = def->call;
    t->user = def->user;
    t->enabled = enabled;
    s->tools[s->ntools++] = t;
    s->gen++;
    if (enabled) {
        server__list_changed(s);
    }
    return 0;
}

int mcp_server_remove_tool(mcp_server *s, const char *name)
{
    size_t i;
    tool *t = name != NULL ? server__find(s, name, &i) : NULL;
    if (t == NULL) {
        return MCP_ENOENT;
    }
    bool was = t->enabled;
    memmove(&s->tools[i], &s->tools[i + 1], (s->ntools - i - 1) * sizeof *s->tools);
    s->ntools--;
    tool__free(t);
    s->gen++;
    if (was) {
        server__list_changed(s);
    }
    return 0;
}

int mcp_server_set_tool_enabled(mcp_server *s, const char *name, bool enabled)
{
    tool *t = name != NULL ? server__find(s, name, NULL) : NULL;
    if (t == NULL) {
        return MCP_ENOENT;
    }
    if (t->enabled != enabled) {
        t->enabled = enabled;
        s->gen++;
        server__list_changed(s);
    }
    return 0;
}

int mcp_server_set_tools_enabled(mcp_server *s, const char *const *names, size_t n, bool enabled)
{
    if (s == NULL || (names == NULL && n > 0)) {
        return MCP_EINVAL;
    }
    for (size_t i = 0; i < n; i++) {
        if (names[i] == NULL || server__find(s, names[i], NULL) == NULL) {
            return MCP_ENOENT;
        }
    }
    bool changed = false;
    for (size_t i = 0; i < n; i++) {
        tool *t = server__find(s, names[i], NULL);
        changed = changed || t->enabled != enabled;
        t->enabled = enabled;
    }
    if (!changed) {
        return 0;
    }
    s->gen++;
    return server__list_changed(s);
}

size_t mcp_server_tool_count(const mcp_server *s)
{
    size_t n = 0;
    for (size_t i = 0; i < s->ntools; i++) {
        n += s->tools[i]->enabled;
    }
    return n;
}

/* ---- sending ---------------------------------------------------------------------------- */

static void session__send(mcp_session *ss, void *origin, json_t *msg, bool response)
{
    if (msg == NULL) {
        return; /* ENOMEM while building: nothing can be sent */
    }
    mcp_buf b = {0};
    int rc = mcp_json_write(&b, msg);
    json_decref(msg);
    if (rc == 0) {
        ss->t.send(ss->user, origin, b.p, b.len, response);
    }
    mcp_buf_free(&b);
}

static json_t *log__message(mcp_log_level level, const char *logger, json_t *data)
{
    json_t *p = json_pack("{s:s}", "level", mcp_log_level_name(level));
    if (p != NULL && logger != NULL) {
        json_object_set_new(p, "logger", json_string(logger));
    }
    if (p == NULL || json_object_set(p, "data", data != NULL ? data : json_null()) != 0) {
        json_decref(p);
        return NULL;
    }
    return mcp_rpc_notification("notifications/message", p);
}

static void session__log(mcp_session *ss, void *origin, mcp_log_level level, const char *logger,
                         json_t *data)
{
    if (ss->state != MCP_SESSION_NEW && !ss->closing && level >= ss->level) {
        session__send(ss, origin, log__message(level, logger, data), false);
    }
}

void mcp_server_log(mcp_server *s, mcp_log_level level, const char *logger, json_t *data)
{
    for (mcp_session *ss = s->sessions; ss != NULL; ss = ss->next) {
        if (ss->state == MCP_SESSION_READY) {
            session__log(ss, NULL, level, logger, data);
        }
    }
    json_decref(data);
}

void mcp_session_log(mcp_session *ss, mcp_log_level level, const char *logger, json_t *data)
{
    session__log(ss, NULL, level, logger, data);
    json_decref(data);
}

/* ---- input records ---------------------------------------------------------------------- */

static void rec__release(input_rec *r)
{
    if (--r->pending > 0) {
        return;
    }
    mcp_session *ss = r->ss;
    if (r->nbatch > 0 && !ss->closing && mcp_buf_reserve(&r->out, 1) == 0) {
        r->out.p[r->out.len++] = ']';
        ss->t.send(ss->user, r->origin, r->out.p, r->out.len, true);
    }
    mcp_buf_free(&r->out);
    if (r->prev != NULL) {
        r->prev->next = r->next;
    } else {
        ss->inputs = r->next;
    }
    if (r->next != NULL) {
        r->next->prev = r->prev;
    }
    void *origin = r->origin;
    free(r);
    if (ss->t.done != NULL) {
        ss->t.done(ss->user, origin);
    }
}

/* Answers within the input `r` with a response text: appended to the batch, or sent at
 * once. */
static void rec__respond_text(input_rec *r, const char *text, size_t len)
{
    if (r->ss->closing) {
        return;
    }
    if (!r->batch) {
        r->ss->t.send(r->ss->user, r->origin, text, len, true);
        return;
    }
    if (mcp_buf_reserve(&r->out, len + 1) != 0) {
        return; /* ENOMEM: this response is lost, as when it could not be built */
    }
    r->out.p[r->out.len++] = r->nbatch++ == 0 ? '[' : ',';
    memcpy(r->out.p + r->out.len, text, len);
    r->out.len += len;
}

/* Answers within the input `r` (msg stolen; NULL after ENOMEM: nothing is sent). */
static void rec__respond(input_rec *r, json_t *msg)
{
    if (msg == NULL) {
        return;
    }
    mcp_buf b = {0};
    if (!r->ss->closing && mcp_json_write(&b, msg) == 0) {
        rec__respond_text(r, b.p, b.len);
    }
    mcp_buf_free(&b);
    json_decref(msg);
}

static void rec__error(input_rec *r, const json_t *id, int code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static void rec__error(input_rec *r, const json_t *id, int code, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    json_t *e = mcp_rpc_error(id, code, msg, NULL);
    if (e == NULL) { /* the message was not UTF-8 (it quoted client text) */
        e = mcp_rpc_error(id, code, "invalid request content", NULL);
    }
    rec__respond(r, e);
}

/* ---- calls ------------------------------------------------------------------------------ */

static void call__unlink(mcp_call *c)
{
    mcp_session *ss = c->ss;
    if (c->prev != NULL) {
        c->prev->next = c->next;
    } else {
        ss->calls = c->next;
    }
    if (c->next != NULL) {
        c->next->prev = c->prev;
    }
    ss->ncalls--;
    c->next = c->prev = NULL;
}

static void call__free(mcp_call *c)
{
    json_decref(c->id);
    json_decref(c->progress_token);
    json_decref(c->output_schema);
    free(c->response);
    free(c);
}

/* Sends the completed call's response, frees it, releases its input. */
static void call__finish(mcp_call *c)
{
    input_rec *r = c->rec;
    call__unlink(c);
    if (c->response != NULL) {
        rec__respond_text(r, c->response, c->response_len);
    }
    call__free(c);
    rec__release(r);
}

/* Cancels a call already taken off its session's list. */
static void call__cancel_unlinked(mcp_call *c)
{
    input_rec *r = c->rec;
    c->ss = NULL;
    c->rec = NULL;
    c->detached = true;
    if (c->cancel != NULL) {
        c->in_fn = true;
        c->cancel(c, c->cancel_arg);
        call__free(c);
    } else if (c->completed) {
        call__free(c);
    }
    rec__release(r);
}

static void call__cancel(mcp_call *c)
{
    call__unlink(c);
    call__cancel_unlinked(c);
}

/* Takes the final response text of the call (b->p stolen; NULL after ENOMEM). */
static void call__complete_text(mcp_call *c, mcp_buf *b)
{
    if (c->completed || c->detached) {
        mcp_buf_free(b); /* a second completion is ignored; a detached call answers nothing */
        if (!c->completed) {
            c->completed = true;
            if (!c->in_fn) {
                call__free(c);
            }
        }
        return;
    }
    c->completed = true;
    if (b->p == NULL) {
        json_t *e = mcp_rpc_error(c->id, MCP_RPC_INTERNAL_ERROR, "out of memory", NULL);
        if (e != NULL && mcp_json_write(b, e) != 0) {
            mcp_buf_free(b);
        }
        json_decref(e);
    }
    c->response = b->p;
    c->response_len = b->len;
    b->p = NULL;
    if (!c->in_fn) {
        call__finish(c);
    }
}

/* Takes the final JSON-RPC response of the call (stolen; NULL after ENOMEM). */
static void call__complete(mcp_call *c, json_t *response)
{
    mcp_buf b = {0};
    if (response != NULL && !c->completed && !c->detached && mcp_json_write(&b, response) != 0) {
        mcp_buf_free(&b);
    }
    json_decref(response);
    call__complete_text(c, &b);
}

/* {"jsonrpc":"2.0","id":ID,"result":{"content": — the head of a call's result text. */
static int call__result_head(const mcp_call *c, mcp_buf *b)
{
    static const char head[] = "{\"jsonrpc\":\"2.0\",\"id\":";
    static const char content[] = ",\"result\":{\"content\":";
    return mcp_buf_put(b, head, sizeof head - 1) != 0 || mcp_json_write(b, c->id) != 0 ||
                   mcp_buf_put(b, content, sizeof content - 1) != 0
               ? -1
               : 0;
}

/* [,"structuredContent":S][,"isError":true]}} — the rest of it. */
static int call__result_tail(const mcp_call *c, mcp_buf *b, const json_t *structured, bool error)
{
    static const char sc[] = ",\"structuredContent\":";
    static const char err[] = ",\"isError\":true";
    if (structured != NULL && c->ss->version >= V2025_06_18 &&
        (mcp_buf_put(b, sc, sizeof sc - 1) != 0 || mcp_json_write(b, structured) != 0)) {
        return -1;
    }
    if (error && mcp_buf_put(b, err, sizeof err - 1) != 0) {
        return -1;
    }
    return mcp_buf_put(b, "}}", 2);
}

/* [{"type":"text","text":TEXT}] — text that is not UTF-8 is replaced by a notice. */
static int call__text_content(mcp_buf *b, const char *text, size_t len)
{
    static const char head[] = "[{\"type\":\"text\",\"text\":";
    static const char bad[] = "(text was not valid UTF-8)";
    if (mcp_buf_put(b, head, sizeof head - 1) != 0) {
        return -1;
    }
    if (mcp_json_write_string(b, text, len) != 0 &&
        mcp_json_write_string(b, bad, sizeof bad - 1) != 0) {
        return -1;
    }
    return mcp_buf_put(b, "}]", 2);
}

static json_t *text__content(const char *text)
{
    json_t *s = json_string(text);
    if (s == NULL) {
        s = json_string("(text was not valid UTF-8)");
    }
    return s != NULL ? json_pack("[{s:s,s:o}]", "type", "text", "text", s) : NULL;
}

/*
 * A success: content (stolen; NULL: one text block holding the serialised structured
 * output) and structured (stolen, may be NULL), checked against the tool's outputSchema,
 * answered as result text written directly (no envelope objects are built).
 */
static void call__succeed(mcp_call *c, json_t *content, json_t *structured)
{
    const char *problem = NULL;
    char msg[400];
    if (c->output_schema != NULL) {
        char err[256];
        if (structured == NULL) {
            problem = "tool returned no structured content";
        } else if (mcp_schema_validate(c->output_schema, structured, err, sizeof err) != 0) {
            snprintf(msg, sizeof msg, "tool output does not match its outputSchema: %s", err);
            problem = msg;
        }
    }
    mcp_buf b = {0}, text = {0};
    if (problem == NULL) {
        int rc = call__result_head(c, &b);
        if (rc == 0 && content != NULL) {
            rc = mcp_json_write(&b, content);
        } else if (rc == 0) {
            rc = mcp_json_write(&text, structured) != 0 ||
                         call__text_content(&b, text.p, text.len) != 0
                     ? -1
                     : 0;
        }
        if (rc != 0 || call__result_tail(c, &b, structured, false) != 0) {
            mcp_buf_free(&b);
            problem = "tool result could not be serialised (not UTF-8, or out of memory)";
        }
    }
    mcp_buf_free(&text);
    json_decref(content);
    json_decref(structured);
    if (problem != NULL) {
        call__complete(c, mcp_rpc_error(c->id, MCP_RPC_INTERNAL_ERROR, problem, NULL));
        return;
    }
    call__complete_text(c, &b);
}

void mcp_call_return_content(mcp_call *c, json_t *content, json_t *structured)
{
    if (c->detached || c->completed) {
        json_decref(content);
        json_decref(structured);
        call__complete(c, NULL);
        return;
    }
    if (!json_is_array(content) || (structured != NULL && !json_is_object(structured))) {
        json_decref(content);
        json_decref(structured);
        call__complete(c, mcp_rpc_error(c->id, MCP_RPC_INTERNAL_ERROR,
                                        "tool returned a malformed result", NULL));
        return;
    }
    call__succeed(c, content, structured);
}

void mcp_call_return(mcp_call *c, json_t *structured)
{
    if (!json_is_object(structured) || c->detached || c->completed) {
        mcp_call_return_content(c, json_array(), structured);
        return;
    }
    call__succeed(c, NULL, structured);
}

void mcp_call_fail(mcp_call *c, const char *fmt, ...)
{
    if (c->detached || c->completed) {
        call__complete(c, NULL);
        return;
    }
    char msg[4096];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    mcp_buf b = {0};
    if (call__result_head(c, &b) != 0 || call__text_content(&b, msg, strlen(msg)) != 0 ||
        call__result_tail(c, &b, NULL, true) != 0) {
        mcp_buf_free(&b);
    }
    call__complete_text(c, &b);
}

void mcp_call_on_cancel(mcp_call *c, mcp_cancel_fn fn, void *arg)
{
    c->cancel = fn;
    c->cancel_arg = arg;
}

bool mcp_call_cancelled(const mcp_call *c)
{
    return c->detached;
}

bool mcp_call_has_progress(const mcp_call *c)
{
    return c->progress_token != NULL && !c->detached;
}

const char *mcp_call_tool(const mcp_call *c)
{
    return c->tool_name;
}

const json_t *mcp_call_request_id(const mcp_call *c)
{
    return c->id;
}

int mcp_call_progress(mcp_call *c, double progress, double total, const char *message)
{
    if (c->detached || c->completed) {
        return MCP_ESTATE;
    }
    if (!isfinite(progress) || (c->any_progress && progress <= c->last_progress)) {
        return MCP_EINVAL;
    }
    if (c->progress_token == NULL) {
        return 0;
    }
    c->any_progress = true;
    c->last_progress = progress;
    json_t *p = json_object();
    if (p == NULL) {
        return MCP_ENOMEM;
    }
    json_object_set(p, "progressToken", c->progress_token);
    json_object_set_new(p, "progress", json_real(progress));
    if (total >= 0 && isfinite(total)) {
        json_object_set_new(p, "total", json_real(total));
    }
    if (message != NULL && c->ss->version >= V2025_03_26) {
        json_t *m = json_string(message);
        if (m != NULL) {
            json_object_set_new(p, "message", m);
        }
    }
    session__send(c->ss, c->rec->origin, mcp_rpc_notification("notifications/progress", p), false);
    return 0;
}

void mcp_call_log(mcp_call *c, mcp_log_level level, const char *logger, json_t *data)
{
    if (!c->detached && !c->completed) {
        session__log(c->ss, c->rec->origin, level, logger, data);
    }
    json_decref(data);
}

/* ---- methods ---------------------------------------------------------------------------- */

static void method__initialize(mcp_session *ss, input_rec *r, const mcp_msg *m)
{
    if (ss->state != MCP_SESSION_NEW) {
        rec__error(r, m->id, MCP_RPC_INVALID_REQUEST, "session already initialized");
        return;
    }
    json_t *p = m->params;
    json_t *pv = json_object_get(p, "protocolVersion");
    if (!json_is_object(p) || !json_is_string(pv)) {
        rec__error(r, m->id, MCP_RPC_INVALID_PARAMS, "initialize needs a protocolVersion string");
        return;
    }
    json_t *caps = json_object_get(p, "capabilities");
    json_t *ci = json_object_get(p, "clientInfo");
    if ((caps != NULL && !json_is_object(caps)) || (ci != NULL && !json_is_object(ci))) {
        rec__error(r, m->id, MCP_RPC_INVALID_PARAMS, "capabilities and clientInfo must be objects");
        return;
    }
    int v = mcp_protocol_index(json_string_value(pv));
    if (v < 0) {
        v = VLATEST;
    }
    mcp_server *s = ss->srv;
    json_t *info = json_pack("{s:s,s:s}", "name", s->name, "version", s->version);
    if (info != NULL && s->title != NULL && v >= V2025_06_18) {
        json_object_set_new(info, "title", json_string(s->title));
    }
    json_t *res =
        json_pack("{s:s,s:{s:{s:b},s:{}},s:o}", "protocolVersion", mcp_protocol_versions[v],
                  "capabilities", "tools", "listChanged", 1, "logging", "serverInfo", info);
    if (res != NULL && s->instructions != NULL) {
        json_object_set_new(res, "instructions", json_string(s->instructions));
    }
    if (res == NULL) {
        rec__error(r, m->id, MCP_RPC_INTERNAL_ERROR, "out of memory");
        return;
    }
    ss->version = v;
    ss->state = MCP_SESSION_INITIALIZING;
    rec__respond(r, mcp_rpc_result(m->id, res));
}

static json_t *tool__json(const mcp_session *ss, const tool *t)
{
    json_t *o = json_pack("{s:s,s:O}", "name", t->name, "inputSchema", t->input_schema);
    if (o == NULL) {
        return NULL;
    }
    if (t->title != NULL && ss->version >= V2025_06_18) {
        json_object_set_new(o, "title", json_string(t->title));
    }
    if (t->description != NULL) {
        json_object_set_new(o, "description", json_string(t->description));
    }
    if (t->output_schema != NULL && ss->version >= V2025_06_18) {
        json_object_set(o, "outputSchema", t->output_schema);
    }
    if (t->annotations != NULL && ss->version >= V2025_03_26) {
        json_object_set(o, "annotations", t->annotations);
    }
    return o;
}

/* A cursor is 16 hex digits of the registry generation and 8 of the offset. */
static void cursor__make(char out[25], uint64_t gen, size_t off)
{
    snprintf(out, 25, "%016llx%08x", (unsigned long long)gen, (unsigned)off);
}

static int cursor__parse(const char *c, uint64_t gen, size_t *off)
{
    if (strlen(c) != 24) {
        return -1;
    }
    for (int i = 0; i < 24; i++) {
        char ch = c[i];
        if (!((ch >= '0' && ch <= '9') || (ch >= 'a' && ch <= 'f'))) {
            return -1;
        }
    }
    char g[17], o[9];
    memcpy(g, c, 16);
    g[16] = '\0';
    memcpy(o, c + 16, 8);
    o[8] = '\0';
    if (strtoull(g, NULL, 16) != gen) {
        return -1;
    }
    *off = (size_t)strtoul(o, NULL, 16);
    return 0;
}

static void method__tools_list(mcp_session *ss, input_rec *r, const mcp_msg *m)
{
    mcp_server *s = ss->srv;
    if (m->params != NULL && !json_is_object(m->params)) {
        rec__error(r, m->id, MCP_RPC_INVALID_PARAMS, "params must be an object");
        return;
    }
    json_t *cur = json_object_get(m->params, "cursor");
    size_t off = 0;
    if (cur != NULL) {
        size_t total = mcp_server_tool_count(s);
        if (!json_is_string(cur) || cursor__parse(json_string_value(cur), s->gen, &off) != 0 ||
            off == 0 || off >= total) {
            rec__error(r, m->id, MCP_RPC_INVALID_PARAMS, "invalid cursor");
            return;
        }
    }
    json_t *arr = json_array();
    json_t *res = json_object();
    if (arr == NULL || res == NULL) {
        json_decref(arr);
        json_decref(res);
        rec__error(r, m->id, MCP_RPC_INTERNAL_ERROR, "out of memory");
        return;
    }
    size_t seen = 0, i = 0;
    for (; i < s->ntools && json_array_size(arr) < s->cfg.page_size; i++) {
        if (!s->tools[i]->enabled) {
            continue;
        }
        if (seen++ >= off) {
            json_array_append_new(arr, tool__json(ss, s->tools[i]));
        }
    }
    json_object_set_new(res, "tools", arr);
    size_t next = off + json_array_size(arr);
    if (next < mcp_server_tool_count(s)) {
        char c[25];
        cursor__make(c, s->gen, next);
        json_object_set_new(res, "nextCursor", json_string(c));
    }
    rec__respond(r, mcp_rpc_result(m->id, res));
}

static void method__tools_call(mcp_session *ss, input_rec *r, const mcp_msg *m)
{
    mcp_server *s = ss->srv;
    json_t *p = m->params;
    json_t *name = json_object_get(p, "name");
    if (!json_is_object(p) || !json_is_string(name)) {
        rec__error(r, m->id, MCP_RPC_INVALID_PARAMS, "tools/call needs a tool name");
        return;
    }
    tool *t = server__find(s, json_string_value(name), NULL);
    if (t == NULL || !t->enabled) {
        rec__error(r, m->id, MCP_RPC_INVALID_PARAMS, "unknown tool: %.128s",
                   json_string_value(name));
        return;
    }
    json_t *args = json_object_get(p, "arguments");
    if (args != NULL && !json_is_object(args)) {
        rec__error(r, m->id, MCP_RPC_INVALID_PARAMS, "arguments must be an object");
        return;
    }
    json_t *meta = json_object_get(p, "_meta");
    json_t *token = json_object_get(meta, "progressToken");
    if ((meta != NULL && !json_is_object(meta)) || (token != NULL && !mcp_rpc_id_valid(token))) {
        rec__error(r, m->id, MCP_RPC_INVALID_PARAMS,
                   "_meta.progressToken must be a string or an integer");
        return;
    }
    for (mcp_call *c = ss->calls; c != NULL; c = c->next) {
        if (mcp_rpc_id_equal(c->id, m->id)) {
            rec__error(r, m->id, MCP_RPC_INVALID_REQUEST, "request id already in use");
            return;
        }
    }
    if (ss->ncalls >= s->cfg.max_inflight) {
        rec__error(r, m->id, MCP_RPC_INTERNAL_ERROR, "too many tool calls in flight");
        return;
    }
    json_t *own_args = args != NULL ? json_incref(args) : json_object();
    char err[300];
    if (own_args == NULL) {
        rec__error(r, m->id, MCP_RPC_INTERNAL_ERROR, "out of memory");
        return;
    }
    if (mcp_schema_validate(t->input_schema, own_args, err, sizeof err) != 0) {
        json_decref(own_args);
        if (ss->version >= V2025_11_25) { /* SEP-1303: a tool error the model can act on */
            char msg[400];
            snprintf(msg, sizeof msg, "invalid arguments for tool %s: %s", t->name, err);
            json_t *res = json_pack("{s:o,s:b}", "content", text__content(msg), "isError", 1);
            rec__respond(r, res != NULL ? mcp_rpc_result(m->id, res) : NULL);
        } else {
            rec__error(r, m->id, MCP_RPC_INVALID_PARAMS, "invalid arguments for tool %s: %s",
                       t->name, err);
        }
        return;
    }
    size_t nlen = strlen(t->name);
    mcp_call *c = calloc(1, sizeof *c + nlen + 1);
    if (c == NULL) {
        json_decref(own_args);
        rec__error(r, m->id, MCP_RPC_INTERNAL_ERROR, "out of memory");
        return;
    }
    memcpy(c->tool_name, t->name, nlen + 1);
    c->ss = ss;
    c->rec = r;
    /* ids are immutable scalars: a reference outlives the request tree it came from */
    c->id = json_incref(m->id);
    c->progress_token = json_incref(token);
    c->output_schema = json_incref(t->output_schema);
    c->next = ss->calls;
    if (ss->calls != NULL) {
        ss->calls->prev = c;
    }
    ss->calls = c;
    ss->ncalls++;
    r->pending++;
    c->in_fn = true;
    int rc = t->fn(c, own_args, t->user);
    c->in_fn = false;
    json_decref(own_args);
    if (c->completed) {
        call__finish(c);
    } else if (rc != 0) {
        char msg[160];
        snprintf(msg, sizeof msg, "tool %s could not run: %s", c->tool_name, mcp_strerror(rc));
        c->in_fn = true; /* completes without finishing: done just below */
        call__complete(c, mcp_rpc_error(c->id, MCP_RPC_INTERNAL_ERROR, msg, NULL));
        c->in_fn = false;
        call__finish(c);
    }
}

static void method__set_level(mcp_session *ss, input_rec *r, const mcp_msg *m)
{
    json_t *lv = json_object_get(m->params, "level");
    mcp_log_level l;
    if (!json_is_object(m->params) || !json_is_string(lv) ||
        mcp_log_level_parse(json_string_value(lv), &l) != 0) {
        rec__error(r, m->id, MCP_RPC_INVALID_PARAMS, "level must be one of the eight log levels");
        return;
    }
    ss->level = l;
    rec__respond(r, mcp_rpc_result(m->id, json_object()));
}

static void session__request(mcp_session *ss, input_rec *r, const mcp_msg *m)
{
    const char *me = m->method;
    if (strcmp(me, "initialize") == 0) {
        method__initialize(ss, r, m);
    } else if (strcmp(me, "ping") == 0) {
        rec__respond(r, mcp_rpc_result(m->id, json_object()));
    } else if (ss->state != MCP_SESSION_READY) {
        rec__error(r, m->id, MCP_RPC_INVALID_REQUEST,
                   ss->state == MCP_SESSION_NEW
                       ? "session not initialized: send initialize first"
                       : "session not initialized: send notifications/initialized first");
    } else if (strcmp(me, "tools/list") == 0) {
        method__tools_list(ss, r, m);
    } else if (strcmp(me, "tools/call") == 0) {
        method__tools_call(ss, r, m);
    } else if (strcmp(me, "logging/setLevel") == 0) {
        method__set_level(ss, r, m);
    } else {
        rec__error(r, m->id, MCP_RPC_METHOD_NOT_FOUND, "method not found: %.128s", me);
    }
}

static void session__notification(mcp_session *ss, const mcp_msg *m)
{
    if (strcmp(m->method, "notifications/initialized") == 0) {
        if (ss->state == MCP_SESSION_INITIALIZING) {
            ss->state = MCP_SESSION_READY;
        }
    } else if (strcmp(m->method, "notifications/cancelled") == 0) {
        json_t *id = json_object_get(m->params, "requestId");
        for (mcp_call *c = ss->calls; c != NULL && id != NULL; c = c->next) {
            if (mcp_rpc_id_equal(c->id, id)) {
                call__cancel(c);
                break;
            }
        }
    }
    /* other notifications (roots/list_changed, progress, ...) need nothing from a server
     * that sends no requests */
}

static void session__one(mcp_session *ss, input_rec *r, json_t *v, mcp_input_info *info)
{
    mcp_msg m;
    const char *why = NULL;
    json_t *bad_id = NULL;
    if (mcp_rpc_classify(v, &m, &why, &bad_id) != 0) {
        info->invalid = info->invalid || bad_id == NULL;
        rec__error(r, bad_id, MCP_RPC_INVALID_REQUEST, "invalid request: %s", why);
        return;
    }
    switch (m.kind) {
    case MCP_MSG_RESPONSE: info->responses++; return;
    case MCP_MSG_NOTIFICATION:
        info->notifications++;
        session__notification(ss, &m);
        return;
    case MCP_MSG_REQUEST:
        info->requests++;
        if (strcmp(m.method, "initialize") == 0) {
            info->initialize = true;
            if (r->batch) {
                rec__error(r, m.id, MCP_RPC_INVALID_REQUEST,
                           "initialize must not be part of a batch");
                return;
            }
        }
        session__request(ss, r, &m);
        return;
    }
}

/* ---- sessions --------------------------------------------------------------------------- */

mcp_session *mcp_session_new(mcp_server *s, const mcp_transport *t, void *user)
{
    mcp_session *ss = calloc(1, sizeof *ss);
    if (ss == NULL) {
        return NULL;
    }
    ss->srv = s;
    ss->t = *t;
    ss->user = user;
    ss->version = -1;
    ss->level = s->cfg.log_level;
    ss->next = s->sessions;
    if (s->sessions != NULL) {
        s->sessions->prev = ss;
    }
    s->sessions = ss;
    return ss;
}

int mcp_session_input(mcp_session *ss, const char *data, size_t len, void *origin,
                      mcp_input_info *info)
{
    mcp_input_info dummy;
    if (info == NULL) {
        info = &dummy;
    }
    memset(info, 0, sizeof *info);
    if (ss->in_input || ss->closing) {
        return MCP_ESTATE;
    }
    input_rec *r = calloc(1, sizeof *r);
    if (r == NULL) {
        return MCP_ENOMEM;
    }
    r->ss = ss;
    r->origin = origin;
    r->pending = 1;
    r->next = ss->inputs;
    if (ss->inputs != NULL) {
        ss->inputs->prev = r;
    }
    ss->inputs = r;
    ss->in_input = true;
    const mcp_server_config *cfg = &ss->srv->cfg;
    const char *why = NULL;
    json_t *v = mcp_rpc_parse(data, len, cfg->max_message, cfg->max_depth, &why);
    if (v == NULL) {
        info->invalid = true;
        rec__error(r, NULL, MCP_RPC_PARSE_ERROR, "parse error: %s", why);
    } else if (json_is_array(v)) {
        if (ss->version != V2025_03_26) {
            info->invalid = true;
            rec__error(r, NULL, MCP_RPC_INVALID_REQUEST,
                       "invalid request: JSON-RPC batches are not supported by %s",
                       ss->version < 0 ? "an uninitialized session"
                                       : mcp_protocol_versions[ss->version]);
        } else if (json_array_size(v) == 0 || json_array_size(v) > cfg->max_batch) {
            info->invalid = true;
            rec__error(r, NULL, MCP_RPC_INVALID_REQUEST,
                       "invalid request: a batch holds 1 to %zu messages", cfg->max_batch);
        } else {
            r->batch = true;
            size_t i;
            json_t *e;
            json_array_foreach(v, i, e)
            {
                session__one(ss, r, e, info);
            }
        }
    } else {
        session__one(ss, r, v, info);
    }
    json_decref(v);
    ss->in_input = false;
    rec__release(r);
    return 0;
}

void mcp_session_free(mcp_session *ss)
{
    if (ss == NULL) {
        return;
    }
    ss->closing = true;
    mcp_call *c;
    while ((c = ss->calls) != NULL) {
        ss->calls = c->next;
        if (c->next != NULL) {
            c->next->prev = NULL;
        }
        c->next = NULL;
        ss->ncalls--;
        call__cancel_unlinked(c);
    }
    /* every input is done now: its requests were answered or just cancelled */
    mcp_server *s = ss->srv;
    if (ss->prev != NULL) {
        ss->prev->next = ss->next;
    } else {
        s->sessions = ss->next;
    }
    if (ss->next != NULL) {
        ss->next->prev = ss->prev;
    }
    free(ss);
}

mcp_session_state mcp_session_get_state(const mcp_session *ss)
{
    return ss->state;
}

const char *mcp_session_protocol(const mcp_session *ss)
{
    return ss->version >= 0 ? mcp_protocol_versions[ss->version] : NULL;
}

size_t mcp_session_inflight(const mcp_session *ss)
{
    return ss->ncalls;
}
