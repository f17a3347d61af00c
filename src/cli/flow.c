/*
 * src/cli/flow.c — `macula flow ...`:
 *   flow mcp [--chaos|--allow-chaos] [--task-retention N]
 *                                 the flow tree and its MCP tools over stdio (stdout carries
 *                                 only protocol messages, logs go to stderr; EOF ends it)
 *   flow serve [--chaos|--allow-chaos] [--task-retention N] [NODE OPTIONS]
 *                                 a node (`macula node`) whose root also runs flow and the MCP
 *                                 gateway, with MCP Streamable HTTP on
 *                                 127.0.0.1:${MACULA_MCP_PORT:-8765}/mcp (--mcp-port N) and the
 *                                 operator endpoint /admin/chaos on the same listener
 *   flow chaos on|off|status [--url URL]
 *                                 the operator switch of a running `flow serve` (not MCP)
 * Chaos: --chaos (MACULA_FLOW_CHAOS=1) allows chaos and starts with the chaos tools on;
 * --allow-chaos (MACULA_FLOW_CHAOS=allow) allows it and starts with them off. When allowed,
 * the operator switches the tools with SIGUSR1 (on) / SIGUSR2 (off) on both transports, or
 * with `flow chaos on|off` for `flow serve`; every switch sends tools/list_changed. Without
 * either, switching on is refused.
 * --task-retention N (MACULA_FLOW_TASK_RETENTION): ended tasks the flow state keeps (default
 * 10000, 0 = all; docs/flow.md "Retention").
 *   flow swarm|agent|task|metrics|tools|call ... [--url URL] [--table]
 *                                 script commands: MCP calls to a running `flow serve`
 *                                 (default URL http://127.0.0.1:${MACULA_MCP_PORT:-8765}/mcp);
 *                                 they print the tool's structured result as JSON (or a table)
 *                                 and exit 0, 1 on a tool error (message on stderr), 2 on a
 *                                 usage error, 3 when the server cannot be reached or answers
 *                                 with a protocol error.
 * The client side is a minimal MCP client over HTTP/1.1 (one connection per request):
 * initialize, notifications/initialized, tools/call, DELETE; JSON and SSE answers.
 */
#define _GNU_SOURCE /* memmem */
#include <errno.h>
#include <netdb.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>
#include <uv.h>

#include "cli.h"
#include "macula/flow.h"
#include "macula/mcp.h"
#include "macula/sup.h"
#include "macula/sup_supervisor.h"
#include "macula/version.h"
#include "mcp/operator.h"
#include "mcp/tools.h"

#define FLOW_INSTRUCTIONS                                                                          \
    "erlmcp-flow: swarms of agents that really execute tasks. Create a swarm (swarm_init), "       \
    "spawn agents (agent_spawn: builtin or exec executors), submit tasks (task_submit, with "      \
    "wait for the result and progress), read them (task_status, task_result, task_list)."

/* ---- the server side ---------------------------------------------------------------------- */

typedef struct flow_app {
    uv_loop_t *loop;
    sup_rt *rt;
    mcp_server *srv;
    mcp_flow *mf;
    bool chaos, chaos_allowed;
    mcp_stdio *io;
    mcp_http *http;
    sup_pid root;
    uv_signal_t sigint, sigterm;
    uv_signal_t sigusr1, sigusr2; /* the operator's chaos switch */
    bool signals, chaos_signals;
    const char *prog;   /* "macula flow mcp" / "macula flow serve", for messages */
    flow_options fopts; /* erlmcp_flow_sup's options (task_retention) */
    bool stopping;
    int status;
} flow_app;

/* Start function of the gateway child: the mcp_flow context is made at its first start (the
 * runtime exists only then for `flow serve`) and kept across restarts. */
static int flow__gateway_start(sup_rt *rt, sup_pid parent, void *arg, void *extra, sup_pid *out,
                               sup_reason *why)
{
    flow_app *app = arg;
    if (app->mf == NULL) {
        mcp_flow_config fc;
        mcp_flow_config_defaults(&fc);
        fc.chaos = app->chaos;
        fc.chaos_allowed = app->chaos_allowed;
        if (mcp_flow_new(rt, app->srv, &fc, &app->mf) != 0) {
            if (why != NULL) {
                *why = sup_reason_error("mcp_tools");
            }
            return SUP_EINIT;
        }
    }
    return mcp_flow_actor_start(rt, parent, app->mf, extra, out, why);
}

static void flow__children(flow_app *app, sup_child_spec out[2])
{
    out[0] = (sup_child_spec){.id = "erlmcp_flow_sup",
                              .start = flow_start,
                              .arg = &app->fopts,
                              .restart = SUP_PERMANENT,
                              .shutdown_ms = SUP_SHUTDOWN_INFINITY,
                              .type = SUP_SUPERVISOR};
    out[1] = (sup_child_spec){.id = MCP_FLOW_ACTOR,
                              .start = flow__gateway_start,
                              .arg = app,
                              .restart = SUP_PERMANENT,
                              .shutdown_ms = 5000,
                              .type = SUP_WORKER};
}

#define FLOW_RETENTION_MAX 100000000 /* largest --task-retention */

/* A task_retention value: 0 (keep all) .. FLOW_RETENTION_MAX; sets app->fopts. */
static int flow__retention(flow_app *app, const char *v, const char *from)
{
    char *end = NULL;
    long long n = v != NULL && *v != '\0' ? strtoll(v, &end, 10) : -1;
    if (end == NULL || *end != '\0' || n < 0 || n > FLOW_RETENTION_MAX) {
        fprintf(stderr,
                "%s: %s: task_retention = \"%s\" is not valid: allowed is an integer from 0 (keep "
                "all) to %d\n",
                app->prog, from, v ? v : "", FLOW_RETENTION_MAX);
        return 2;
    }
    app->fopts.task_retention = n == 0 ? FLOW_TASK_RETENTION_ALL : (int64_t)n;
    return 0;
}

/* The flow options of `flow mcp` and `flow serve`, taken out of argv (the rest are the node's):
 * chaos: --chaos / --allow-chaos, else MACULA_FLOW_CHAOS=1 / allow. Sets app->chaos (tools on
 * at start) and app->chaos_allowed. The flow chaos actor reads MACULA_FLOW_CHAOS=1 when it
 * starts, so an allowed chaos sets it: the actor serves requests and the MCP tools decide
 * what clients reach. A MACULA_FLOW_CHAOS value other than 1, allow, 0 or empty is refused.
 * task_retention: --task-retention N (or =N), else MACULA_FLOW_TASK_RETENTION, else the
 * default (10000). Returns 0, or 2 with a message. */
static int flow__app_flags(int *argc, char **argv, flow_app *app)
{
    bool on = false, allow = false, flag = false;
    const char *retention = NULL;
    int j = 0;
    for (int i = 0; i < *argc; i++) {
        if (i > 0 && strcmp(argv[i], "--chaos") == 0) {
            on = flag = true;
        } else if (i > 0 && strcmp(argv[i], "--allow-chaos") == 0) {
            allow = flag = true;
        } else if (i > 0 && strcmp(argv[i], "--task-retention") == 0) {
            if (i + 1 >= *argc) {
                fprintf(stderr, "%s: --task-retention needs a value\n", app->prog);
                return 2;
            }
            retention = argv[++i];
        } else if (i > 0 && strncmp(argv[i], "--task-retention=", 17) == 0) {
            retention = argv[i] + 17;
        } else {
            argv[j++] = argv[i];
        }
    }
    *argc = j;
    const char *env_ret = getenv("MACULA_FLOW_TASK_RETENTION");
    if (retention != NULL && flow__retention(app, retention, "--task-retention") != 0) {
        return 2;
    }
    if (retention == NULL && env_ret != NULL && *env_ret != '\0' &&
        flow__retention(app, env_ret, "environment MACULA_FLOW_TASK_RETENTION") != 0) {
        return 2;
    }
    const char *v = getenv("MACULA_FLOW_CHAOS");
    if (!flag && v != NULL) {
        if (strcmp(v, "1") == 0) {
            on = true;
        } else if (strcmp(v, "allow") == 0) {
            allow = true;
        } else if (strcmp(v, "0") != 0 && v[0] != '\0') {
            fprintf(stderr, "macula flow: MACULA_FLOW_CHAOS must be 1, allow or 0 (got \"%s\")\n",
                    v);
            return 2;
        }
    }
    app->chaos = on;
    app->chaos_allowed = on || allow;
    if (app->chaos_allowed) {
        setenv("MACULA_FLOW_CHAOS", "1", 1);
    } else {
        unsetenv("MACULA_FLOW_CHAOS");
    }
    return 0;
}

/* SIGUSR1: chaos tools on, SIGUSR2: off (the operator's switch; refused when not allowed). */
static void flow__chaos_signal(uv_signal_t *h, int signum)
{
    flow_app *app = h->data;
    bool on = signum == SIGUSR1;
    if (app->mf == NULL) {
        fprintf(stderr, "%s: chaos switch ignored: flow has not started\n", app->prog);
        return;
    }
    int rc = mcp_flow_operator_chaos(app->mf, on);
    if (rc == MCP_ESTATE) {
        fprintf(stderr, "%s: chaos is not allowed (start with --chaos or --allow-chaos)\n",
                app->prog);
    } else if (rc < 0) {
        fprintf(stderr, "%s: chaos switch: %s\n", app->prog, mcp_strerror(rc));
    } else {
        fprintf(stderr, "%s: chaos tools %s (tools/list_changed sent to %d sessions)\n", app->prog,
                on ? "on" : "off", rc);
    }
}

static void flow__chaos_signals_start(flow_app *app, uv_loop_t *loop)
{
    uv_signal_init(loop, &app->sigusr1);
    uv_signal_init(loop, &app->sigusr2);
    app->sigusr1.data = app->sigusr2.data = app;
    uv_signal_start(&app->sigusr1, flow__chaos_signal, SIGUSR1);
    uv_signal_start(&app->sigusr2, flow__chaos_signal, SIGUSR2);
    /* the switch alone must not keep the loop running */
    uv_unref((uv_handle_t *)&app->sigusr1);
    uv_unref((uv_handle_t *)&app->sigusr2);
    app->chaos_signals = true;
}

static void flow__chaos_signals_close(flow_app *app)
{
    if (app->chaos_signals) {
        app->chaos_signals = false;
        uv_close((uv_handle_t *)&app->sigusr1, NULL);
        uv_close((uv_handle_t *)&app->sigusr2, NULL);
    }
}

static mcp_server *flow__server(void)
{
    mcp_server_config sc;
    mcp_server_config_defaults(&sc);
    sc.title = "macula flow";
    sc.instructions = FLOW_INSTRUCTIONS;
    return mcp_server_new(&sc);
}

/* `flow mcp`: watches the root; when it ends the loop stops. */
static int flow__watch_init(sup_actor *self, void *state, void *arg)
{
    *(flow_app **)state = arg;
    sup_monitor(self, ((flow_app *)arg)->root);
    return 0;
}

static void flow__watch_info(sup_actor *self, void *state, const sup_msg *m)
{
    flow_app *app = *(flow_app **)state;
    if (m->kind == SUP_MSG_DOWN) {
        if (!app->stopping) {
            char r[80];
            fprintf(stderr, "macula flow: root supervisor ended (%s)\n",
                    sup_reason_str(&m->reason, r, sizeof r));
            app->status = 1;
        }
        sup_reason n = sup_reason_normal();
        sup_stop(self, &n);
        uv_stop(app->loop);
    }
}

static const sup_behaviour flow__watch_behaviour = {
    .name = "flow_watcher",
    .state_size = sizeof(flow_app *),
    .init = flow__watch_init,
    .handle_info = flow__watch_info,
};

static void flow__shutdown(flow_app *app)
{
    if (app->stopping) {
        return;
    }
    app->stopping = true;
    if (app->signals) {
        uv_signal_stop(&app->sigint);
        uv_signal_stop(&app->sigterm);
    }
    sup_reason sd = sup_reason_shutdown();
    sup_exit(app->rt, SUP_NOPID, app->root, &sd);
}

static void flow__stdio_exit(void *user, int status)
{
    flow_app *app = user;
    app->io = NULL;
    if (status != 0) {
        fprintf(stderr, "macula flow mcp: stdio: %s\n", mcp_strerror(status));
        app->status = 1;
    }
    flow__shutdown(app);
}

static void flow__mcp_signal(uv_signal_t *h, int signum)
{
    (void)signum;
    flow_app *app = h->data;
    if (app->io != NULL) {
        mcp_stdio_stop(app->io); /* on_exit shuts the tree down */
    } else {
        flow__shutdown(app);
    }
}

static int flow_mcp(int argc, char **argv)
{
    flow_app app = {.prog = "macula flow mcp"};
    if (flow__app_flags(&argc, argv, &app) != 0) {
        return 2;
    }
    bool chaos = app.chaos;
    for (int i = 1; i < argc; i++) {
        fprintf(stderr, "usage: macula flow mcp [--chaos|--allow-chaos] [--task-retention N]\n");
        return 2;
    }
    signal(SIGPIPE, SIG_IGN);
    uv_loop_t loop;
    uv_loop_init(&loop);
    app.loop = &loop;
    app.rt = sup_rt_new(&loop);
    app.srv = flow__server();
    sup_child_spec children[2];
    flow__children(&app, children);
    sup_flags fl = {SUP_ONE_FOR_ONE, 10, 5, SUP_AUTO_NEVER};
    sup_sv_opts o = {.name = "macula_flow_root"};
    sup_reason why;
    if (app.rt == NULL || app.srv == NULL ||
        sup_supervisor_start(app.rt, SUP_NOPID, &fl, children, 2, &o, &app.root, &why) != 0) {
        fprintf(stderr, "macula flow mcp: flow did not start\n");
        if (app.rt != NULL) {
            sup_rt_free(app.rt);
        }
        mcp_flow_free(app.mf);
        mcp_server_free(app.srv);
        uv_loop_close(&loop);
        return 1;
    }
    fprintf(stderr, "macula flow mcp: %zu tools over stdio%s\n", mcp_server_tool_count(app.srv),
            chaos ? " (chaos on)" : "");
    sup_pid watcher;
    sup_spawn(app.rt, SUP_NOPID, &flow__watch_behaviour, &app, 0, &watcher, NULL);
    uv_signal_init(&loop, &app.sigint);
    uv_signal_init(&loop, &app.sigterm);
    app.sigint.data = app.sigterm.data = &app;
    uv_signal_start(&app.sigint, flow__mcp_signal, SIGINT);
    uv_signal_start(&app.sigterm, flow__mcp_signal, SIGTERM);
    app.signals = true;
    flow__chaos_signals_start(&app, &loop);
    int rc = mcp_stdio_start(&loop, app.srv, 0, 1, flow__stdio_exit, &app, &app.io);
    if (rc != 0) {
        fprintf(stderr, "macula flow mcp: stdio: %s\n", mcp_strerror(rc));
        app.status = 1;
        flow__shutdown(&app);
    }
    uv_run(&loop, UV_RUN_DEFAULT);
    if (app.io != NULL) { /* the root ended on its own: end the session too */
        mcp_stdio_stop(app.io);
        uv_run(&loop, UV_RUN_NOWAIT);
    }
    uv_close((uv_handle_t *)&app.sigint, NULL);
    uv_close((uv_handle_t *)&app.sigterm, NULL);
    flow__chaos_signals_close(&app);
    sup_rt_free(app.rt);
    uv_run(&loop, UV_RUN_DEFAULT);
    mcp_flow_free(app.mf);
    mcp_server_free(app.srv);
    uv_loop_close(&loop);
    return app.status;
}

/* The operator endpoint of `flow serve` (the mcp_flow exists once the gateway started). */
static int flow__admin_chaos(void *user, const char *method, const char *body, size_t len,
                             char **reply)
{
    flow_app *app = user;
    int status = mcp_flow_admin_chaos(app->mf, method, body, len, reply);
    if (status == 200 && strcmp(method, "POST") == 0) {
        fprintf(stderr, "%s: chaos tools %s via %s\n", app->prog,
                mcp_flow_chaos(app->mf) ? "on" : "off", MCP_FLOW_ADMIN_CHAOS_PATH);
    }
    return status;
}

/* `flow serve`: the node's hooks. */
static int flow__serve_started(void *user, struct uv_loop_s *loop, struct sup_rt *rt,
                               const macula_config *conf)
{
    (void)rt;
    flow_app *app = user;
    mcp_http_config hc;
    mcp_http_config_defaults(&hc);
    hc.port = conf->mcp_port;
    const char *err = NULL;
    int rc = mcp_http_start(loop, app->srv, &hc, &app->http, &err);
    if (rc != 0) {
        fprintf(stderr, "macula flow serve: MCP on 127.0.0.1:%u: %s\n", (unsigned)conf->mcp_port,
                err ? err : mcp_strerror(rc));
        return 1;
    }
    rc = mcp_http_add_route(app->http, MCP_FLOW_ADMIN_CHAOS_PATH, flow__admin_chaos, app);
    if (rc != 0) {
        fprintf(stderr, "macula flow serve: %s: %s\n", MCP_FLOW_ADMIN_CHAOS_PATH, mcp_strerror(rc));
        return 1;
    }
    flow__chaos_signals_start(app, loop);
    printf("  flow       erlmcp_flow_sup + %s, %zu MCP tools%s\n", MCP_FLOW_ACTOR,
           mcp_server_tool_count(app->srv),
           app->chaos           ? " (chaos on)"
           : app->chaos_allowed ? " (chaos allowed, off)"
                                : "");
    printf("  mcp        http://127.0.0.1:%u/mcp\n", (unsigned)mcp_http_port(app->http));
    return 0;
}

static void flow__serve_stopping(void *user)
{
    flow_app *app = user;
    flow__chaos_signals_close(app);
    if (app->http != NULL) {
        mcp_http_stop(app->http);
        app->http = NULL;
    }
}

static int flow_serve(int argc, char **argv)
{
    flow_app app = {.prog = "macula flow serve"};
    if (flow__app_flags(&argc, argv, &app) != 0) {
        return 2;
    }
    app.srv = flow__server();
    if (app.srv == NULL) {
        fprintf(stderr, "macula flow serve: out of memory\n");
        return 1;
    }
    sup_child_spec children[2];
    flow__children(&app, children);
    cli_node_ext ext = {.children = children,
                        .nchildren = 2,
                        .started = flow__serve_started,
                        .stopping = flow__serve_stopping,
                        .user = &app};
    int rc = cli_node_run(argc, argv, &ext);
    mcp_flow_free(app.mf);
    mcp_server_free(app.srv);
    return rc;
}

/* ---- the client side: MCP over HTTP/1.1 ------------------------------------------------- */

#define MC_MAX_RESPONSE (64u << 20)

typedef struct mc_conn {
    char host[256];
    char port[8];
    char path[512];
    char sid[128];
    char proto[16];
    long next_id;
    int timeout_s;
} mc_conn;

typedef struct mc_resp {
    int status;
    char ctype[128];
    char sid[128];
    char *body;
    size_t len;
} mc_resp;

static int mc__parse_url(const char *url, mc_conn *c)
{
    const char *p = url;
    if (strncmp(p, "http://", 7) != 0) {
        return -1;
    }
    p += 7;
    const char *slash = strchr(p, '/');
    size_t hostlen = slash ? (size_t)(slash - p) : strlen(p);
    char hp[256];
    if (hostlen == 0 || hostlen >= sizeof hp) {
        return -1;
    }
    memcpy(hp, p, hostlen);
    hp[hostlen] = '\0';
    snprintf(c->path, sizeof c->path, "%s", slash ? slash : "/");
    char *colon = strrchr(hp, ':');
    if (colon != NULL) {
        *colon = '\0';
        snprintf(c->port, sizeof c->port, "%.7s", colon + 1);
    } else {
        snprintf(c->port, sizeof c->port, "80");
    }
    snprintf(c->host, sizeof c->host, "%s", hp);
    return c->host[0] ? 0 : -1;
}

static int mc__connect(const mc_conn *c)
{
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM}, *res = NULL;
    if (getaddrinfo(c->host, c->port, &hints, &res) != 0) {
        return -1;
    }
    int fd = -1;
    for (struct addrinfo *a = res; a != NULL && fd < 0; a = a->ai_next) {
        fd = socket(a->ai_family, a->ai_socktype, a->ai_protocol);
        if (fd < 0) {
            continue;
        }
        struct timeval tv = {.tv_sec = c->timeout_s};
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
        if (connect(fd, a->ai_addr, a->ai_addrlen) != 0) {
            close(fd);
            fd = -1;
        }
    }
    freeaddrinfo(res);
    return fd;
}

static int mc__write_all(int fd, const char *p, size_t n)
{
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w < 0 && errno == EINTR) {
            continue;
        }
        if (w <= 0) {
            return -1;
        }
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

/* Decodes a chunked body in place; -1 when malformed. */
static int mc__dechunk(char *b, size_t *len)
{
    size_t in = 0, out = 0, n = *len;
    for (;;) {
        char *end;
        if (in >= n) {
            return -1;
        }
        unsigned long sz = strtoul(b + in, &end, 16);
        char *crlf = memmem(b + in, n - in, "\r\n", 2);
        if (crlf == NULL || end == b + in) {
            return -1;
        }
        in = (size_t)(crlf - b) + 2;
        if (sz == 0) {
            break;
        }
        if (sz > n - in) {
            return -1;
        }
        memmove(b + out, b + in, sz);
        out += sz;
        in += sz + 2;
    }
    *len = out;
    b[out] = '\0';
    return 0;
}

static const char *mc__header(const char *head, const char *name, char *out, size_t cap)
{
    size_t nl = strlen(name);
    for (const char *l = head; l != NULL && *l; l = strstr(l, "\r\n")) {
        while (*l == '\r' || *l == '\n') {
            l++;
        }
        if (strncasecmp(l, name, nl) == 0 && l[nl] == ':') {
            const char *v = l + nl + 1;
            while (*v == ' ') {
                v++;
            }
            const char *e = strstr(v, "\r\n");
            size_t vl = e ? (size_t)(e - v) : strlen(v);
            snprintf(out, cap, "%.*s", (int)(vl < cap ? vl : cap - 1), v);
            return out;
        }
    }
    return NULL;
}

/* One HTTP exchange; the whole answer is read (Connection: close). 0 or -1. */
static int mc__http(const mc_conn *c, const char *method, const char *body, mc_resp *r)
{
    memset(r, 0, sizeof *r);
    int fd = mc__connect(c);
    if (fd < 0) {
        return -1;
    }
    char head[2048];
    int hl =
        snprintf(head, sizeof head,
                 "%s %s HTTP/1.1\r\nHost: %s:%s\r\nConnection: close\r\n"
                 "Accept: application/json, text/event-stream\r\n"
                 "Content-Type: application/json\r\nContent-Length: %zu\r\n%s%s%s%s%s%s\r\n",
                 method, c->path, c->host, c->port, body ? strlen(body) : 0,
                 c->sid[0] ? "Mcp-Session-Id: " : "", c->sid, c->sid[0] ? "\r\n" : "",
                 c->proto[0] ? "MCP-Protocol-Version: " : "", c->proto, c->proto[0] ? "\r\n" : "");
    if (hl <= 0 || (size_t)hl >= sizeof head || mc__write_all(fd, head, (size_t)hl) != 0 ||
        (body && mc__write_all(fd, body, strlen(body)) != 0)) {
        close(fd);
        return -1;
    }
    size_t cap = 65536, len = 0;
    char *buf = malloc(cap + 1);
    for (;;) {
        if (buf == NULL) {
            close(fd);
            return -1;
        }
        if (len == cap) {
            if (cap >= MC_MAX_RESPONSE) {
                break;
            }
            cap *= 2;
            char *nb = realloc(buf, cap + 1);
            if (nb == NULL) {
                free(buf);
                close(fd);
                return -1;
            }
            buf = nb;
        }
        ssize_t n = read(fd, buf + len, cap - len);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n <= 0) {
            break;
        }
        len += (size_t)n;
    }
    close(fd);
    buf[len] = '\0';
    char *sep = strstr(buf, "\r\n\r\n");
    char *stend = NULL;
    r->status = strncmp(buf, "HTTP/1.", 7) == 0 && len > 9 ? (int)strtol(buf + 9, &stend, 10) : 0;
    if (sep == NULL || stend == buf + 9 || r->status < 100) {
        free(buf);
        return -1;
    }
    *sep = '\0';
    char te[64] = "";
    mc__header(buf, "Content-Type", r->ctype, sizeof r->ctype);
    mc__header(buf, "Mcp-Session-Id", r->sid, sizeof r->sid);
    mc__header(buf, "Transfer-Encoding", te, sizeof te);
    size_t off = (size_t)(sep + 4 - buf);
    r->len = len - off;
    memmove(buf, buf + off, r->len + 1);
    r->body = buf;
    if (strcasecmp(te, "chunked") == 0 && mc__dechunk(r->body, &r->len) != 0) {
        free(buf);
        r->body = NULL;
        return -1;
    }
    return 0;
}

/* The JSON-RPC response with `id` in an answer (JSON, or the data of SSE events). */
static json_t *mc__find_response(const mc_resp *r, long id)
{
    if (strstr(r->ctype, "text/event-stream") == NULL) {
        return json_loadb(r->body, r->len, 0, NULL);
    }
    json_t *found = NULL;
    const char *p = r->body;
    while (found == NULL && p != NULL && *p) {
        const char *nl = strchr(p, '\n');
        size_t ll = nl ? (size_t)(nl - p) : strlen(p);
        if (ll > 5 && strncmp(p, "data:", 5) == 0) {
            const char *d = p + 5;
            json_t *m = json_loadb(d, ll - 5, 0, NULL);
            json_t *mid = json_object_get(m, "id");
            if (json_is_integer(mid) && json_integer_value(mid) == id) {
                found = m;
            } else {
                json_decref(m);
            }
        }
        p = nl ? nl + 1 : NULL;
    }
    return found;
}

/* Sends a request; returns the JSON-RPC response (owned) or NULL with a message on stderr. */
static json_t *mc__request(mc_conn *c, const char *method, json_t *params)
{
    long id = ++c->next_id;
    json_t *req = json_pack("{s:s, s:I, s:s, s:o}", "jsonrpc", "2.0", "id", (json_int_t)id,
                            "method", method, "params", params ? params : json_object());
    char *text = json_dumps(req, JSON_COMPACT);
    json_decref(req);
    mc_resp r;
    int rc = text ? mc__http(c, "POST", text, &r) : -1;
    free(text);
    if (rc != 0) {
        fprintf(stderr, "macula flow: cannot reach http://%s:%s%s\n", c->host, c->port, c->path);
        return NULL;
    }
    json_t *resp = NULL;
    if (r.status == 200) {
        resp = mc__find_response(&r, id);
    }
    if (resp == NULL) {
        fprintf(stderr, "macula flow: %s answered HTTP %d: %.300s\n", method, r.status,
                r.body ? r.body : "");
    }
    if (r.sid[0] && !c->sid[0]) {
        snprintf(c->sid, sizeof c->sid, "%s", r.sid);
    }
    free(r.body);
    return resp;
}

static int mc_open(mc_conn *c)
{
    json_t *resp = mc__request(c, "initialize",
                               json_pack("{s:s, s:{}, s:{s:s, s:s}}", "protocolVersion",
                                         MCP_PROTOCOL_LATEST, "capabilities", "clientInfo", "name",
                                         "macula-flow-cli", "version", MACULA_VERSION));
    const char *pv =
        json_string_value(json_object_get(json_object_get(resp, "result"), "protocolVersion"));
    if (pv == NULL) {
        if (resp != NULL) {
            fprintf(stderr, "macula flow: initialize failed\n");
        }
        json_decref(resp);
        return -1;
    }
    snprintf(c->proto, sizeof c->proto, "%s", pv);
    json_decref(resp);
    mc_resp r;
    if (mc__http(c, "POST", "{\"jsonrpc\":\"2.0\",\"method\":\"notifications/initialized\"}", &r) !=
            0 ||
        r.status != 202) {
        fprintf(stderr, "macula flow: notifications/initialized refused (HTTP %d)\n", r.status);
        free(r.body);
        return -1;
    }
    free(r.body);
    return 0;
}

static void mc_close(mc_conn *c)
{
    mc_resp r;
    if (c->sid[0] && mc__http(c, "DELETE", NULL, &r) == 0) {
        free(r.body);
    }
}

/* ---- script commands ---------------------------------------------------------------------- */

typedef struct cmd_opts {
    const char *url;
    bool table;
} cmd_opts;

static void flow__print_cell(const json_t *v, int width)
{
    char buf[128];
    if (json_is_string(v)) {
        snprintf(buf, sizeof buf, "%s", json_string_value(v));
    } else if (json_is_integer(v)) {
        snprintf(buf, sizeof buf, "%lld", (long long)json_integer_value(v));
    } else if (json_is_array(v)) {
        snprintf(buf, sizeof buf, "%zu", json_array_size(v));
    } else if (json_is_true(v) || json_is_false(v)) {
        snprintf(buf, sizeof buf, "%s", json_is_true(v) ? "true" : "false");
    } else if (v == NULL || json_is_null(v)) {
        snprintf(buf, sizeof buf, "-");
    } else {
        char *t = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
        snprintf(buf, sizeof buf, "%s", t ? t : "?");
        free(t);
    }
    printf("%-*s", width, buf);
}

/* A column: a key of the row, or "a.b" one level down. */
static const json_t *flow__col(const json_t *row, const char *key)
{
    const char *dot = strchr(key, '.');
    if (dot == NULL) {
        return json_object_get(row, key);
    }
    char k[64];
    snprintf(k, sizeof k, "%.*s", (int)(dot - key), key);
    return json_object_get(json_object_get(row, k), dot + 1);
}

static void flow__table(const json_t *rows, const char *const *cols, const int *widths)
{
    for (int i = 0; cols[i] != NULL; i++) {
        char h[64];
        snprintf(h, sizeof h, "%s", cols[i]);
        for (char *p = h; *p; p++) {
            *p = (char)(*p >= 'a' && *p <= 'z' ? *p - 32 : *p);
        }
        printf("%-*s", widths[i], h);
    }
    printf("\n");
    size_t i;
    const json_t *row;
    json_array_foreach(rows, i, row)
    {
        for (int c = 0; cols[c] != NULL; c++) {
            flow__print_cell(flow__col(row, cols[c]), widths[c]);
        }
        printf("\n");
    }
}

static void flow__print(const json_t *res, bool table)
{
    static const char *const swarm_cols[] = {
        "id",           "topology", "agents", "tasks.pending", "tasks.running", "tasks.completed",
        "tasks.failed", NULL};
    static const int swarm_w[] = {26, 14, 8, 15, 15, 17, 14};
    static const char *const agent_cols[] = {"id",    "swarm",     "role",   "state",
                                             "tasks", "completed", "failed", NULL};
    static const int agent_w[] = {26, 20, 12, 10, 7, 11, 7};
    static const char *const task_cols[] = {"id",    "swarm",   "state", "priority",
                                            "agent", "retries", NULL};
    static const int task_w[] = {38, 20, 11, 10, 26, 8};
    if (!table) {
        char *t = json_dumps(res, JSON_INDENT(2) | JSON_ENCODE_ANY);
        printf("%s\n", t ? t : "null");
        free(t);
        return;
    }
    const json_t *a;
    if ((a = json_object_get(res, "swarms")) != NULL) {
        flow__table(a, swarm_cols, swarm_w);
    } else if ((a = json_object_get(res, "agents")) != NULL && json_is_array(a)) {
        flow__table(a, agent_cols, agent_w);
    } else if ((a = json_object_get(res, "tasks")) != NULL && json_is_array(a)) {
        flow__table(a, task_cols, task_w);
    } else {
        const char *k;
        const json_t *v;
        json_object_foreach((json_t *)res, k, v)
        {
            printf("%-14s", k);
            if (json_is_object(v) || (json_is_array(v) && json_array_size(v) > 0)) {
                char *t = json_dumps(v, JSON_COMPACT);
                printf("%s", t ? t : "?");
                free(t);
            } else {
                flow__print_cell(v, 0);
            }
            printf("\n");
        }
    }
}

/* Calls a tool and prints the answer. Exit status as the file header says. */
static int flow__call(const cmd_opts *o, const char *tool, json_t *args)
{
    mc_conn c = {.timeout_s = 3600};
    if (mc__parse_url(o->url, &c) != 0) {
        fprintf(stderr, "macula flow: --url must be http://HOST:PORT/PATH\n");
        json_decref(args);
        return 2;
    }
    if (mc_open(&c) != 0) {
        json_decref(args);
        return 3;
    }
    json_t *resp =
        mc__request(&c, "tools/call", json_pack("{s:s, s:o}", "name", tool, "arguments", args));
    mc_close(&c);
    if (resp == NULL) {
        return 3;
    }
    int rc = 0;
    json_t *err = json_object_get(resp, "error");
    json_t *res = json_object_get(resp, "result");
    if (err != NULL) {
        fprintf(stderr, "macula flow: %s: %s (%lld)\n", tool,
                json_string_value(json_object_get(err, "message")),
                (long long)json_integer_value(json_object_get(err, "code")));
        rc = 3;
    } else if (json_is_true(json_object_get(res, "isError"))) {
        const char *text = json_string_value(
            json_object_get(json_array_get(json_object_get(res, "content"), 0), "text"));
        fprintf(stderr, "macula flow: %s: %s\n", tool, text ? text : "tool error");
        rc = 1;
    } else {
        json_t *sc = json_object_get(res, "structuredContent");
        if (sc != NULL) {
            flow__print(sc, o->table);
        } else {
            flow__print(json_object_get(res, "content"), false);
        }
    }
    json_decref(resp);
    return rc;
}

static void flow_usage(FILE *f)
{
    fprintf(f,
            "usage: macula flow COMMAND ...\n\n"
            "  mcp [--chaos|--allow-chaos] [--task-retention N]\n"
            "                                     flow + MCP over stdio\n"
            "  serve [--chaos|--allow-chaos] [--task-retention N] [NODE OPTIONS]\n"
            "                                     a node with flow and MCP on "
            "127.0.0.1:${MACULA_MCP_PORT:-8765}/mcp\n"
            "  chaos on|off|status [--url URL]    switch the chaos tools of a running serve\n"
            "                                     (allowed by --chaos or --allow-chaos; also\n"
            "                                     SIGUSR1 on / SIGUSR2 off, mcp and serve)\n\n"
            "script commands (against a running `flow serve`; --url URL, --table):\n"
            "  swarm create [--id ID] [--topology star|hierarchical|ring|mesh] [--config JSON]\n"
            "  swarm list | status SWARM | destroy SWARM | scale SWARM ROLE COUNT\n"
            "  agent spawn SWARM [--role R] [--exec 'PROG ARGS'] [--executor JSON] [--id ID]\n"
            "                    [--weight N] [--capacity N]\n"
            "  agent list [SWARM] | stop AGENT\n"
            "  task submit SWARM [--input JSON] [--priority high|normal|low] [--role R]\n"
            "                    [--dep TASK]... [--deadline-ms N] [--max-retries N] [--wait MS]\n"
            "  task status TASK | result TASK [--wait MS] | cancel TASK\n"
            "  task list [--swarm S] [--state STATE] [--limit N]\n"
            "  metrics | tools | call TOOL [JSON]\n");
}

/* Options of a script command: --name VALUE pairs into `args` by table, positionals out. */
typedef struct opt_map {
    const char *flag, *key;
    char type; /* s string, i integer, j JSON, a string appended to an array, x exec line */
} opt_map;

static int flow__opts(int argc, char **argv, const opt_map *map, json_t *args, const char **pos,
                      int maxpos, int *npos)
{
    *npos = 0;
    for (int i = 0; i < argc; i++) {
        if (strncmp(argv[i], "--", 2) != 0) {
            if (*npos >= maxpos) {
                fprintf(stderr, "macula flow: unexpected argument '%s'\n", argv[i]);
                return 2;
            }
            pos[(*npos)++] = argv[i];
            continue;
        }
        const opt_map *m = map;
        while (m != NULL && m->flag != NULL && strcmp(m->flag, argv[i]) != 0) {
            m++;
        }
        if (m == NULL || m->flag == NULL || i + 1 >= argc) {
            fprintf(stderr, "macula flow: unknown option or missing value: %s\n", argv[i]);
            return 2;
        }
        const char *v = argv[++i];
        json_t *val = NULL;
        if (m->type == 's') {
            val = json_string(v);
        } else if (m->type == 'i') {
            char *end;
            long long n = strtoll(v, &end, 10);
            val = *end == '\0' && *v ? json_integer(n) : NULL;
        } else if (m->type == 'j') {
            val = json_loads(v, JSON_DECODE_ANY, NULL);
        } else if (m->type == 'a') {
            json_t *arr = json_object_get(args, m->key);
            if (arr == NULL) {
                json_object_set_new(args, m->key, arr = json_array());
            }
            json_array_append_new(arr, json_string(v));
            continue;
        } else if (m->type == 'x') {
            json_t *argv_j = json_array();
            char *copy = strdup(v), *save = NULL;
            for (char *t = copy ? strtok_r(copy, " \t", &save) : NULL; t != NULL;
                 t = strtok_r(NULL, " \t", &save)) {
                json_array_append_new(argv_j, json_string(t));
            }
            free(copy);
            val = json_pack("{s:s, s:o}", "type", "exec", "argv", argv_j);
        }
        if (val == NULL) {
            fprintf(stderr, "macula flow: invalid value for %s: %s\n", m->flag, v);
            return 2;
        }
        json_object_set_new(args, m->key, val);
    }
    return 0;
}

static int flow_script(const cmd_opts *o, int argc, char **argv)
{
    const char *noun = argv[0];
    const char *verb = argc > 1 ? argv[1] : "";
    const char *pos[4] = {0};
    int npos = 0;
    json_t *args = json_object();
    const char *tool = NULL;
    int rc = 0;
    int rest = argc > 2 ? argc - 2 : 0;
    char **rv = argv + 2;
#define OPTS(map, maxpos) (rc = flow__opts(rest, rv, map, args, pos, maxpos, &npos))
    static const opt_map none[] = {{NULL, NULL, 0}};
    if (strcmp(noun, "swarm") == 0) {
        static const opt_map create[] = {{"--id", "id", 's'},
                                         {"--topology", "topology", 's'},
                                         {"--config", "config", 'j'},
                                         {NULL, NULL, 0}};
        if (strcmp(verb, "create") == 0 && OPTS(create, 0) == 0) {
            tool = "swarm_init";
        } else if (strcmp(verb, "list") == 0 && OPTS(none, 0) == 0) {
            tool = "swarm_list";
        } else if ((strcmp(verb, "status") == 0 || strcmp(verb, "destroy") == 0) &&
                   OPTS(none, 1) == 0 && npos == 1) {
            tool = verb[0] == 's' ? "swarm_status" : "swarm_destroy";
            json_object_set_new(args, "swarm", json_string(pos[0]));
        } else if (strcmp(verb, "scale") == 0 && OPTS(none, 3) == 0 && npos == 3) {
            tool = "swarm_scale";
            json_object_set_new(args, "swarm", json_string(pos[0]));
            json_object_set_new(args, "role", json_string(pos[1]));
            char *end;
            long long n = strtoll(pos[2], &end, 10);
            if (*end != '\0' || *pos[2] == '\0') {
                fprintf(stderr, "macula flow: COUNT must be an integer\n");
                json_decref(args);
                return 2;
            }
            json_object_set_new(args, "count", json_integer(n));
        }
    } else if (strcmp(noun, "agent") == 0) {
        static const opt_map spawn[] = {
            {"--role", "role", 's'}, {"--exec", "executor", 'x'}, {"--executor", "executor", 'j'},
            {"--id", "id", 's'},     {"--weight", "weight", 'i'}, {"--capacity", "capacity", 'i'},
            {NULL, NULL, 0}};
        if (strcmp(verb, "spawn") == 0 && OPTS(spawn, 1) == 0 && npos == 1) {
            tool = "agent_spawn";
            json_object_set_new(args, "swarm", json_string(pos[0]));
            if (json_object_get(args, "role") == NULL) {
                json_object_set_new(args, "role", json_string("worker"));
            }
        } else if (strcmp(verb, "list") == 0 && OPTS(none, 1) == 0) {
            tool = "agent_list";
            if (npos == 1) {
                json_object_set_new(args, "swarm", json_string(pos[0]));
            }
        } else if (strcmp(verb, "stop") == 0 && OPTS(none, 1) == 0 && npos == 1) {
            tool = "agent_terminate";
            json_object_set_new(args, "agent", json_string(pos[0]));
        }
    } else if (strcmp(noun, "task") == 0) {
        static const opt_map submit[] = {{"--input", "input", 'j'},
                                         {"--priority", "priority", 's'},
                                         {"--role", "role", 's'},
                                         {"--dep", "dependencies", 'a'},
                                         {"--deadline-ms", "deadline_ms", 'i'},
                                         {"--max-retries", "max_retries", 'i'},
                                         {"--trace-id", "trace_id", 's'},
                                         {"--wait", "wait", 'i'},
                                         {NULL, NULL, 0}};
        static const opt_map result[] = {{"--wait", "wait_ms", 'i'}, {NULL, NULL, 0}};
        static const opt_map list[] = {{"--swarm", "swarm", 's'},
                                       {"--state", "state", 's'},
                                       {"--limit", "limit", 'i'},
                                       {NULL, NULL, 0}};
        if (strcmp(verb, "submit") == 0 && OPTS(submit, 1) == 0 && npos == 1) {
            tool = "task_submit";
            json_object_set_new(args, "swarm", json_string(pos[0]));
            if (json_object_get(args, "input") == NULL) {
                json_object_set_new(args, "input", json_object());
            }
        } else if ((strcmp(verb, "status") == 0 || strcmp(verb, "cancel") == 0) &&
                   OPTS(none, 1) == 0 && npos == 1) {
            tool = verb[0] == 's' ? "task_status" : "task_cancel";
            json_object_set_new(args, "task", json_string(pos[0]));
        } else if (strcmp(verb, "result") == 0 && OPTS(result, 1) == 0 && npos == 1) {
            tool = "task_result";
            json_object_set_new(args, "task", json_string(pos[0]));
        } else if (strcmp(verb, "list") == 0 && OPTS(list, 0) == 0) {
            tool = "task_list";
        }
    }
#undef OPTS
    if (tool == NULL) {
        json_decref(args);
        if (rc == 0) {
            flow_usage(stderr);
        }
        return 2;
    }
    return flow__call(o, tool, args);
}

/* `flow chaos on|off|status`: the operator endpoint on the host:port of --url. Exit 0, 1 when
 * the node refuses (chaos not allowed), 2 usage, 3 unreachable or another answer. */
static int flow_chaos(const cmd_opts *o, const char *what)
{
    const char *body = NULL;
    if (strcmp(what, "on") == 0) {
        body = "{\"chaos\":true}";
    } else if (strcmp(what, "off") == 0) {
        body = "{\"chaos\":false}";
    } else if (strcmp(what, "status") != 0) {
        fprintf(stderr, "usage: macula flow chaos on|off|status [--url URL]\n");
        return 2;
    }
    mc_conn c = {.timeout_s = 30};
    if (mc__parse_url(o->url, &c) != 0) {
        fprintf(stderr, "macula flow: --url must be http://HOST:PORT/PATH\n");
        return 2;
    }
    snprintf(c.path, sizeof c.path, "%s", MCP_FLOW_ADMIN_CHAOS_PATH);
    mc_resp r;
    if (mc__http(&c, body != NULL ? "POST" : "GET", body, &r) != 0) {
        fprintf(stderr, "macula flow: cannot reach http://%s:%s%s\n", c.host, c.port, c.path);
        return 3;
    }
    json_t *j = json_loadb(r.body, r.len, 0, NULL);
    int rc = 3;
    if (r.status == 200 && json_is_object(j)) {
        printf("chaos %s%s\n", json_is_true(json_object_get(j, "chaos")) ? "on" : "off",
               json_is_true(json_object_get(j, "allowed")) ? "" : " (not allowed on this node)");
        rc = 0;
    } else {
        const char *msg = json_string_value(json_object_get(j, "message"));
        if (msg == NULL) {
            msg = json_string_value(json_object_get(json_object_get(j, "error"), "message"));
        }
        fprintf(stderr, "macula flow chaos: HTTP %d: %s\n", r.status, msg ? msg : "no answer");
        rc = r.status == 403 && json_is_string(json_object_get(j, "error")) ? 1 : 3;
    }
    json_decref(j);
    free(r.body);
    return rc;
}

static int flow_tools(const cmd_opts *o)
{
    mc_conn c = {.timeout_s = 60};
    if (mc__parse_url(o->url, &c) != 0) {
        fprintf(stderr, "macula flow: --url must be http://HOST:PORT/PATH\n");
        return 2;
    }
    if (mc_open(&c) != 0) {
        return 3;
    }
    json_t *resp = mc__request(&c, "tools/list", NULL);
    mc_close(&c);
    json_t *tools = json_object_get(json_object_get(resp, "result"), "tools");
    size_t i;
    json_t *t;
    json_array_foreach(tools, i, t)
    {
        printf("%-22s %s\n", json_string_value(json_object_get(t, "name")),
               json_string_value(json_object_get(t, "title")) ?: "");
    }
    int rc = tools != NULL ? 0 : 3;
    json_decref(resp);
    return rc;
}

int cli_flow(int argc, char **argv)
{
    if (argc < 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "help") == 0) {
        flow_usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    if (strcmp(argv[1], "mcp") == 0) {
        return flow_mcp(argc - 1, argv + 1);
    }
    if (strcmp(argv[1], "cluster") == 0) {
        return cli_flow_cluster(argc - 1, argv + 1); /* argv[0] = "cluster" */
    }
    if (strcmp(argv[1], "serve") == 0) {
        return flow_serve(argc - 1, argv + 1);
    }
    /* script commands: take --url and --table wherever they are */
    static char url[300];
    const char *port = getenv("MACULA_MCP_PORT");
    snprintf(url, sizeof url, "http://127.0.0.1:%s/mcp", port && *port ? port : "8765");
    cmd_opts o = {.url = url};
    char **rest = calloc((size_t)argc, sizeof *rest);
    if (rest == NULL) {
        return 1;
    }
    int n = 0;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--url") == 0 && i + 1 < argc) {
            o.url = argv[++i];
        } else if (strcmp(argv[i], "--table") == 0) {
            o.table = true;
        } else if (strcmp(argv[i], "--json") == 0) {
            o.table = false;
        } else {
            rest[n++] = argv[i];
        }
    }
    int rc;
    if (n == 0) {
        flow_usage(stderr);
        rc = 2;
    } else if (strcmp(rest[0], "metrics") == 0 && n == 1) {
        rc = flow__call(&o, "metrics", json_object());
    } else if (strcmp(rest[0], "tools") == 0 && n == 1) {
        rc = flow_tools(&o);
    } else if (strcmp(rest[0], "chaos") == 0) {
        rc = n == 2 ? flow_chaos(&o, rest[1]) : flow_chaos(&o, "");
    } else if (strcmp(rest[0], "call") == 0 && (n == 2 || n == 3)) {
        json_t *a = n == 3 ? json_loads(rest[2], 0, NULL) : json_object();
        if (a == NULL) {
            fprintf(stderr, "macula flow call: arguments must be a JSON object\n");
            rc = 2;
        } else {
            rc = flow__call(&o, rest[1], a);
        }
    } else if (strcmp(rest[0], "swarm") == 0 || strcmp(rest[0], "agent") == 0 ||
               strcmp(rest[0], "task") == 0) {
        rc = flow_script(&o, n, rest);
    } else {
        fprintf(stderr, "macula flow: unknown command '%s'\n\n", rest[0]);
        flow_usage(stderr);
        rc = 2;
    }
    free(rest);
    return rc;
}
