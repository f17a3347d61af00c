/*
 * macula/mcp.h — a Model Context Protocol server: protocol core, tool registry, transports.
 *
 * The core is sans-I/O. An mcp_server holds the configuration and the tool registry; an
 * mcp_session is one client's protocol state (lifecycle, negotiated version, log level,
 * in-flight calls). A transport feeds each received message text to mcp_session_input() and
 * gets every outgoing message through its mcp_transport callbacks. Two transports are built
 * on it: newline-delimited stdio (mcp_stdio_*) and Streamable HTTP (mcp_http_*), both on a
 * libuv loop. Everything runs on one thread; no function here is thread-safe.
 *
 * Protocol versions 2024-11-05, 2025-03-26, 2025-06-18 and 2025-11-25 are negotiated at
 * initialize: the client's version when supported, else the latest. What the negotiated
 * version changes is described in docs/mcp.md (batches only in 2025-03-26; title,
 * outputSchema and structuredContent from 2025-06-18; input validation failures as tool
 * errors from 2025-11-25).
 *
 * Errors are negative MCP_E* codes; mcp_strerror() names them.
 */
#ifndef MACULA_MCP_H
#define MACULA_MCP_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ---- errors ----------------------------------------------------------------------------- */

enum {
    MCP_OK = 0,
    MCP_EINVAL = -1,  /* invalid argument */
    MCP_ENOMEM = -2,  /* out of memory */
    MCP_EEXIST = -3,  /* a tool of that name exists */
    MCP_ENOENT = -4,  /* no such tool */
    MCP_ESTATE = -5,  /* not allowed in the current state */
    MCP_ELIMIT = -6,  /* a configured limit was reached */
    MCP_EIO = -7,     /* transport I/O failure */
    MCP_ESCHEMA = -8, /* a JSON Schema the validator does not accept */
};
const char *mcp_strerror(int err);

/* JSON-RPC 2.0 error codes. */
#define MCP_RPC_PARSE_ERROR (-32700)
#define MCP_RPC_INVALID_REQUEST (-32600)
#define MCP_RPC_METHOD_NOT_FOUND (-32601)
#define MCP_RPC_INVALID_PARAMS (-32602)
#define MCP_RPC_INTERNAL_ERROR (-32603)

/* Protocol versions, oldest first; NULL-terminated. */
extern const char *const mcp_protocol_versions[];
#define MCP_PROTOCOL_LATEST "2025-11-25"
/* Index of `v` in mcp_protocol_versions, or -1 when unsupported (v may be NULL). */
int mcp_protocol_index(const char *v);

typedef enum mcp_log_level {
    MCP_LOG_DEBUG,
    MCP_LOG_INFO,
    MCP_LOG_NOTICE,
    MCP_LOG_WARNING,
    MCP_LOG_ERROR,
    MCP_LOG_CRITICAL,
    MCP_LOG_ALERT,
    MCP_LOG_EMERGENCY,
} mcp_log_level;
const char *mcp_log_level_name(mcp_log_level l);
/* Returns 0 and sets *out, or MCP_EINVAL for a name that is not one of the eight levels. */
int mcp_log_level_parse(const char *name, mcp_log_level *out);

typedef struct mcp_server mcp_server;
typedef struct mcp_session mcp_session;
typedef struct mcp_call mcp_call;

/* ---- server and tool registry ----------------------------------------------------------- */

typedef struct mcp_server_config {
    const char *name;         /* serverInfo.name; default "macula" */
    const char *title;        /* serverInfo.title (2025-06-18+); NULL: none */
    const char *version;      /* serverInfo.version; default MACULA_VERSION */
    const char *instructions; /* InitializeResult.instructions; NULL: none */
    size_t page_size;         /* tools per tools/list page; default 100 */
    size_t max_message;       /* bytes per received message; default 4 MiB */
    int max_depth;            /* JSON nesting depth per message; default 64 */
    size_t max_inflight;      /* concurrent tools/call per session; default 1024 */
    size_t max_batch;         /* messages per batch (2025-03-26); default 256 */
    mcp_log_level log_level;  /* a session's level until logging/setLevel; default info */
} mcp_server_config;

void mcp_server_config_defaults(mcp_server_config *c);
/* Copies the configuration (strings included). NULL config: the defaults. NULL on ENOMEM. */
mcp_server *mcp_server_new(const mcp_server_config *c);
/* Frees the registry. Every session of this server must have been freed first. */
void mcp_server_free(mcp_server *s);

/*
 * A tool's call function. `args` is the request's `arguments` (an object, {} when absent),
 * already validated against the tool's inputSchema; it is borrowed for the duration of the
 * function (json_incref to keep it). The tool completes the call with exactly one of
 * mcp_call_return / mcp_call_return_content / mcp_call_fail, either before returning or
 * later (asynchronously). A non-zero return without completing answers -32603.
 */
typedef int (*mcp_tool_fn)(mcp_call *call, const json_t *args, void *user);

typedef struct mcp_tool_def {
    const char *name;        /* 1-128 of [A-Za-z0-9_.-]; unique per server */
    const char *title;       /* optional, shown from 2025-06-18 */
    const char *description; /* optional */
    json_t *input_schema;    /* required: {"type":"object",...}; the server takes a reference */
    json_t *output_schema;   /* optional ({"type":"object",...}); results must conform */
    json_t *annotations;     /* optional ToolAnnotations object (2025-03-26+) */
    mcp_tool_fn call;
    void *user;
} mcp_tool_def;

/*
 * Registers a tool (MCP_EEXIST, MCP_EINVAL for a bad name or a schema outside the supported
 * subset: MCP_ESCHEMA). Registering an enabled tool, removing one, or switching one on or off
 * sends notifications/tools/list_changed to every initialized session.
 */
int mcp_server_add_tool(mcp_server *s, const mcp_tool_def *def, bool enabled);
int mcp_server_remove_tool(mcp_server *s, const char *name);
int mcp_server_set_tool_enabled(mcp_server *s, const char *name, bool enabled);
/* Number of enabled tools. */
size_t mcp_server_tool_count(const mcp_server *s);
/* Sends notifications/message to every initialized session whose level admits `level`.
 * `data` is stolen (any JSON value). */
void mcp_server_log(mcp_server *s, mcp_log_level level, const char *logger, json_t *data);

/* ---- sessions (the transport side) ------------------------------------------------------ */

typedef struct mcp_transport {
    /*
     * One serialised JSON-RPC message (an object, or an array answering a batch), without a
     * trailing newline. `origin` is the value given to mcp_session_input() for the input this
     * message answers or belongs to (a response, or progress/log of a request), NULL for
     * messages unrelated to any request (list_changed, server-wide log). `response` is true
     * for responses (an object with result/error, or a batch of them).
     */
    void (*send)(void *user, void *origin, const char *json, size_t len, bool response);
    /*
     * Called exactly once per mcp_session_input() call, after the last message of that input
     * (possibly from inside mcp_session_input when everything was answered synchronously,
     * possibly later, possibly from mcp_session_free). No message names `origin` afterwards.
     */
    void (*done)(void *user, void *origin);
} mcp_transport;

typedef enum mcp_session_state {
    MCP_SESSION_NEW,          /* waiting for initialize */
    MCP_SESSION_INITIALIZING, /* initialize answered, waiting for notifications/initialized */
    MCP_SESSION_READY,        /* operating */
} mcp_session_state;

/* What one input contained (filled by mcp_session_input). */
typedef struct mcp_input_info {
    unsigned requests;      /* well-formed requests (each is answered, unless cancelled) */
    unsigned notifications; /* well-formed notifications */
    unsigned responses;     /* responses from the client (accepted and ignored) */
    bool initialize;        /* an initialize request was among them */
    bool invalid;           /* a parse error or invalid message was answered with a null id */
} mcp_input_info;

/* A session of `s`. `t` is copied; `user` is passed to its callbacks. NULL on ENOMEM. */
mcp_session *mcp_session_new(mcp_server *s, const mcp_transport *t, void *user);
/*
 * Handles one received message text (a JSON object, or an array when batches are allowed).
 * Responses, notifications and finally `done(origin)` go through the transport; `info` may
 * be NULL. Returns 0, or MCP_ESTATE when called re-entrantly from a transport callback.
 */
int mcp_session_input(mcp_session *ss, const char *data, size_t len, void *origin,
                      mcp_input_info *info);
/* Cancels every in-flight call (their cancel hooks run, no responses are sent), calls `done`
 * for every input still open, and frees the session. Not from inside a transport callback. */
void mcp_session_free(mcp_session *ss);
mcp_session_state mcp_session_get_state(const mcp_session *ss);
/* The negotiated protocol version, NULL before initialize. */
const char *mcp_session_protocol(const mcp_session *ss);
/* Number of tools/call in flight. */
size_t mcp_session_inflight(const mcp_session *ss);
/* Sends notifications/message on this session alone (if its level admits it); data stolen. */
void mcp_session_log(mcp_session *ss, mcp_log_level level, const char *logger, json_t *data);

/* ---- a call in flight (the tool side) --------------------------------------------------- */

typedef void (*mcp_cancel_fn)(mcp_call *call, void *arg);

/*
 * Sets the hook run when the client cancels the call (notifications/cancelled) or its session
 * ends. After the hook returns the call is freed: the tool must not use it again. A call that
 * is cancelled without a hook is detached: no response is sent, and it is freed when the tool
 * completes it (so such a tool must complete every call eventually).
 */
void mcp_call_on_cancel(mcp_call *call, mcp_cancel_fn fn, void *arg);
bool mcp_call_cancelled(const mcp_call *call);
/* True when the request carried _meta.progressToken (progress will be sent). */
bool mcp_call_has_progress(const mcp_call *call);
/*
 * notifications/progress for this call (nothing when the request had no progressToken).
 * `progress` must increase from one notification to the next (MCP_EINVAL otherwise);
 * total < 0 means unknown; message may be NULL (sent from 2025-03-26).
 */
int mcp_call_progress(mcp_call *call, double progress, double total, const char *message);
/* notifications/message on the call's session, related to this call's request. */
void mcp_call_log(mcp_call *call, mcp_log_level level, const char *logger, json_t *data);
/* The tool's name and the request id (borrowed; valid while the call is). */
const char *mcp_call_tool(const mcp_call *call);
const json_t *mcp_call_request_id(const mcp_call *call);

/* Success with structured output: `structured` (an object, stolen) is sent as
 * structuredContent (2025-06-18+) and, serialised, as the text content. */
void mcp_call_return(mcp_call *call, json_t *structured);
/* Success with explicit content (an array of content blocks, stolen) and optional
 * structured output (stolen, may be NULL). */
void mcp_call_return_content(mcp_call *call, json_t *content, json_t *structured);
/* Tool failure: a result with isError true and the formatted text. */
void mcp_call_fail(mcp_call *call, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* ---- transports ------------------------------------------------------------------------- */

struct uv_loop_s;

typedef struct mcp_stdio mcp_stdio;
/*
 * Newline-delimited JSON-RPC on in_fd/out_fd (pipes, ttys or files). One session. On EOF of
 * the input (or mcp_stdio_stop) the session is freed (pending calls cancelled), output is
 * flushed, the handles are closed and on_exit(user, status) runs once (status 0, or an
 * MCP_E* code after an I/O error); the mcp_stdio is freed after on_exit returns.
 */
int mcp_stdio_start(struct uv_loop_s *loop, mcp_server *s, int in_fd, int out_fd,
                    void (*on_exit)(void *user, int status), void *user, mcp_stdio **out);
void mcp_stdio_stop(mcp_stdio *io);

typedef struct mcp_http mcp_http;
typedef struct mcp_http_config {
    const char *addr;                   /* IPv4 address; default "127.0.0.1" */
    uint16_t port;                      /* 0: any free port */
    const char *path;                   /* the MCP endpoint; default "/mcp" */
    const char *bearer_token;           /* non-NULL: "Authorization: Bearer T" required */
    const char *const *allowed_origins; /* NULL-terminated extra origins (exact match) */
    bool allow_any_origin;              /* skip the Origin check */
    size_t max_body;                    /* bytes per POST body; default 4 MiB */
    unsigned max_sessions;              /* default 64 */
    unsigned idle_timeout_s;            /* session expiry without activity; default 600 */
    unsigned keepalive_s;               /* SSE comment on idle GET streams; default 15 */
} mcp_http_config;

void mcp_http_config_defaults(mcp_http_config *c);
/* Streamable HTTP on addr:port. *errmsg (static text) says why on failure. */
int mcp_http_start(struct uv_loop_s *loop, mcp_server *s, const mcp_http_config *c, mcp_http **out,
                   const char **errmsg);
uint16_t mcp_http_port(const mcp_http *h);
size_t mcp_http_session_count(const mcp_http *h);
/* Ends every session and stops listening; memory is released once the loop has run the
 * handle close callbacks. */
void mcp_http_stop(mcp_http *h);

#ifdef __cplusplus
}
#endif

#endif
