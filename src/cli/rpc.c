/*
 * src/cli/rpc.c — `macula call PROC JSON [--timeout S]` and `macula advertise PROC -- CMD
 * ARGS...`, against a node (`--node https://HOST:PORT`, default $MACULA_NODE or
 * https://127.0.0.1:9443; `--realm R`, default $MACULA_REALM or macula.default), over the RPC
 * client API (include/macula/mesh_rpc.h).
 *
 * call: prints the result JSON on stdout and exits 0; on error prints "CODE: MESSAGE" on
 * stderr (CODE: no_handler, handler_error, timeout, max_hops_exceeded, realm_mismatch,
 * max_clients_reached, ...) and exits 1; 2 for bad arguments. --timeout takes seconds, or
 * milliseconds with an "ms" suffix (default 30 s).
 *
 * advertise: serves PROC until SIGINT/SIGTERM or the connection ends: each call runs CMD ARGS
 * (no shell) with the call's args JSON on stdin; exit status 0 -> stdout is the result (when it
 * is not JSON it is sent as a JSON string; a trailing newline is dropped); anything else ->
 * handler_error with the exit status and the first line of stderr. A command still running
 * after --max-time S (60) is killed (handler_error). Prints "serving PROC" once advertised.
 *
 * Each handler runs in a process group of its own, led by a small guard (`macula
 * __handler-guard PID CMD ARGS...`, this binary; PID is advertise's) that runs CMD and passes
 * its exit status on. The guard asks the kernel for SIGHUP when advertise dies
 * (PR_SET_PDEATHSIG), even by SIGKILL, and then kills its whole group: no running handler, nor
 * what it started in its group, outlives advertise.
 */
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <uv.h>

#include "cli.h"
#include "macula/mesh_rpc.h"

#define RPC_CLI_OUT_MAX (1u << 20)
#define RPC_CLI_ERR_MAX 512u

typedef struct rpc_cli {
    uv_loop_t *loop;
    macula_rpc *r;
    const char *prog;
    const char *procedure;
    const char *args;
    uint32_t timeout_ms;
    char **argv;  /* advertise: the command */
    char **gargv; /* advertise: "macula", "__handler-guard", our pid, the command, NULL */
    char self_pid[24];
    uint64_t max_time_ms;
    int status;
    bool done;
    uv_signal_t sigint, sigterm;
    bool signals;
    struct rpc_job *jobs; /* advertise: handler processes not yet finished */
} rpc_cli;

static void rpc_cli__usage(FILE *f)
{
    fprintf(f, "usage: macula call PROC JSON [--timeout S|MSms] [OPTIONS]\n"
               "       macula advertise PROC [--max-time S] [OPTIONS] -- CMD [ARGS...]\n"
               "options: --node https://HOST:PORT  (default $MACULA_NODE or "
               "https://127.0.0.1:9443)\n"
               "         --realm R  (default $MACULA_REALM or macula.default)\n");
}

static void rpc_cli__stop_signals(rpc_cli *c)
{
    if (c->signals) {
        uv_close((uv_handle_t *)&c->sigint, NULL);
        uv_close((uv_handle_t *)&c->sigterm, NULL);
        c->signals = false;
    }
}

static void rpc_cli__stop_jobs(rpc_cli *c);

static void rpc_cli__on_closed(macula_rpc *r, const char *reason, void *ctx)
{
    rpc_cli *c = ctx;
    if (!c->done) {
        /* refused (realm_mismatch, max_clients_reached, ...) or lost */
        fprintf(stderr, "%s: %s\n", reason, "the node closed the connection");
        c->status = 1;
    }
    rpc_cli__stop_signals(c);
    rpc_cli__stop_jobs(c); /* nobody can take their answers any more */
    macula_rpc_free(r);
    c->r = NULL;
}

/* ---- call ------------------------------------------------------------------------------------ */

static void rpc_cli__result(macula_rpc *r, const char *code, const char *text, size_t len,
                            void *ctx)
{
    rpc_cli *c = ctx;
    if (code == NULL) {
        printf("%.*s\n", (int)len, text);
        c->status = 0;
    } else {
        fprintf(stderr, "%s: %.*s\n", code, (int)len, text);
        c->status = 1;
    }
    fflush(stdout);
    c->done = true;
    macula_rpc_close(r);
}

static void rpc_cli__call_ready(macula_rpc *r, void *ctx)
{
    rpc_cli *c = ctx;
    int rc = macula_rpc_call(r, c->procedure, c->args, c->timeout_ms, rpc_cli__result, c);
    if (rc != MACULA_RPC_OK) {
        fprintf(stderr, "%s: %s\n", c->prog, macula_rpc_strerror(rc));
        c->status = rc == MACULA_RPC_EINVAL ? 2 : 1;
        c->done = true;
        macula_rpc_close(r);
    }
}

/* ---- advertise ------------------------------------------------------------------------------- */

typedef struct rpc_job {
    rpc_cli *c;
    struct rpc_job **prev, *next; /* in c->jobs while the process runs */
    uint64_t request;
    uv_process_t proc;
    uv_pipe_t in, out, err;
    uv_timer_t kill;
    uv_write_t wr;
    char *input;
    char *obuf;
    size_t olen;
    char ebuf[RPC_CLI_ERR_MAX];
    size_t elen;
    int open;    /* handles still to close */
    int streams; /* out + err still open for reading */
    bool exited; /* exit_cb ran */
    int64_t exit_status;
    int term_signal;
    bool killed;
} rpc_job;

static void rpc_job__closed(uv_handle_t *h)
{
    rpc_job *j = h->data;
    if (--j->open == 0) {
        free(j->input);
        free(j->obuf);
        free(j);
    }
}

static void rpc_job__finish(rpc_job *j)
{
    if (!j->exited || j->streams > 0) {
        return;
    }
    if (j->request != 0 && j->c->r != NULL) {
        if (j->exit_status == 0 && j->term_signal == 0 && !j->killed) {
            size_t n = j->olen;
            while (n > 0 && (j->obuf[n - 1] == '\n' || j->obuf[n - 1] == '\r')) {
                n--;
            }
            json_error_t jerr;
            json_t *v = n ? json_loadb(j->obuf, n, JSON_DECODE_ANY, &jerr) : NULL;
            if (v != NULL) {
                (void)macula_rpc_respond(j->c->r, j->request, j->obuf, n);
                json_decref(v);
            } else {
                json_t *s = json_stringn(j->obuf ? j->obuf : "", n);
                char *t = s ? json_dumps(s, JSON_ENCODE_ANY) : NULL;
                if (t != NULL) {
                    (void)macula_rpc_respond(j->c->r, j->request, t, strlen(t));
                } else {
                    (void)macula_rpc_respond_error(j->c->r, j->request, "handler_error",
                                                   "the output is not UTF-8 text");
                }
                free(t);
                json_decref(s);
            }
        } else {
            char msg[RPC_CLI_ERR_MAX + 64];
            size_t el = strcspn(j->ebuf, "\n");
            if (j->killed) {
                snprintf(msg, sizeof msg, "killed after %llu ms",
                         (unsigned long long)j->c->max_time_ms);
            } else if (j->term_signal != 0) {
                snprintf(msg, sizeof msg, "signal %d: %.*s", j->term_signal, (int)el, j->ebuf);
            } else {
                snprintf(msg, sizeof msg, "exit status %lld: %.*s", (long long)j->exit_status,
                         (int)el, j->ebuf);
            }
            (void)macula_rpc_respond_error(j->c->r, j->request, "handler_error", msg);
        }
    }
    if (j->prev != NULL) {
        *j->prev = j->next;
        if (j->next != NULL) {
            j->next->prev = j->prev;
        }
        j->prev = NULL;
    }
    uv_timer_stop(&j->kill);
    uv_close((uv_handle_t *)&j->proc, rpc_job__closed);
    uv_close((uv_handle_t *)&j->kill, rpc_job__closed);
    uv_close((uv_handle_t *)&j->in, rpc_job__closed);
    uv_close((uv_handle_t *)&j->out, rpc_job__closed);
    uv_close((uv_handle_t *)&j->err, rpc_job__closed);
}

static void rpc_job__exit(uv_process_t *p, int64_t status, int sig)
{
    rpc_job *j = p->data;
    j->exited = true;
    j->exit_status = status;
    j->term_signal = sig;
    rpc_job__finish(j);
}

static void rpc_job__alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf)
{
    (void)hint;
    static char scratch[65536];
    (void)h;
    *buf = uv_buf_init(scratch, sizeof scratch);
}

static void rpc_job__read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf)
{
    rpc_job *j = s->data;
    bool is_out = s == (uv_stream_t *)&j->out;
    if (n > 0) {
        if (is_out) {
            size_t take =
                j->olen + (size_t)n > RPC_CLI_OUT_MAX ? RPC_CLI_OUT_MAX - j->olen : (size_t)n;
            char *nb = take ? realloc(j->obuf, j->olen + take + 1) : j->obuf;
            if (nb != NULL) {
                j->obuf = nb;
                memcpy(j->obuf + j->olen, buf->base, take);
                j->olen += take;
                j->obuf[j->olen] = '\0';
            }
        } else {
            size_t room = sizeof j->ebuf - 1 - j->elen;
            size_t take = (size_t)n < room ? (size_t)n : room;
            memcpy(j->ebuf + j->elen, buf->base, take);
            j->elen += take;
            j->ebuf[j->elen] = '\0';
        }
        return;
    }
    if (n < 0) {
        uv_read_stop(s);
        j->streams--;
        rpc_job__finish(j);
    }
}

static void rpc_job__shut(uv_shutdown_t *sd, int status)
{
    (void)status;
    free(sd);
}

static void rpc_job__written(uv_write_t *w, int status)
{
    (void)status;
    rpc_job *j = w->data;
    uv_shutdown_t *sd = malloc(sizeof *sd);
    if (sd == NULL || uv_shutdown(sd, (uv_stream_t *)&j->in, rpc_job__shut) != 0) {
        free(sd);
    }
}

/* A handler runs in its own process group (UV_PROCESS_DETACHED: setsid), so a signal reaches
 * the processes it started too (`sh -c 'sleep 600'` leaves no orphan holding the pipes). */
static void rpc_job__signal(rpc_job *j, int sig)
{
    if (j->proc.pid <= 0 || kill(-j->proc.pid, sig) != 0) {
        if (!j->exited) { /* an exited handler's pid may belong to another process by now */
            (void)uv_process_kill(&j->proc, sig);
        }
    }
}

static void rpc_job__timeout(uv_timer_t *t)
{
    rpc_job *j = t->data;
    j->killed = j->killed || !j->exited; /* an exited handler keeps its own outcome */
    rpc_job__signal(j, SIGKILL);         /* what it left holding the pipes */
}

/* On SIGINT/SIGTERM: every running handler group gets SIGTERM, and SIGKILL 2 s later. */
static void rpc_cli__stop_jobs(rpc_cli *c)
{
    for (rpc_job *j = c->jobs; j != NULL; j = j->next) {
        if (!j->exited) {
            rpc_job__signal(j, SIGTERM);
        }
        uv_timer_start(&j->kill, rpc_job__timeout, 2000, 0);
    }
}

static void rpc_cli__handler(macula_rpc *r, uint64_t request, const char *procedure,
                             const char *args, size_t len, void *ctx)
{
    (void)procedure;
    rpc_cli *c = ctx;
    rpc_job *j = calloc(1, sizeof *j);
    char *input = j ? malloc(len + 1) : NULL;
    if (j == NULL || input == NULL) {
        free(j);
        free(input);
        if (request != 0) {
            (void)macula_rpc_respond_error(r, request, "handler_error", "out of memory");
        }
        return;
    }
    memcpy(input, args, len);
    j->c = c;
    j->request = request;
    j->input = input;
    uv_pipe_init(c->loop, &j->in, 0);
    uv_pipe_init(c->loop, &j->out, 0);
    uv_pipe_init(c->loop, &j->err, 0);
    uv_timer_init(c->loop, &j->kill);
    j->in.data = j->out.data = j->err.data = j->kill.data = j->proc.data = j->wr.data = j;
    j->open = 5;
    uv_stdio_container_t io[3] = {
        {.flags = UV_CREATE_PIPE | UV_READABLE_PIPE, .data.stream = (uv_stream_t *)&j->in},
        {.flags = UV_CREATE_PIPE | UV_WRITABLE_PIPE, .data.stream = (uv_stream_t *)&j->out},
        {.flags = UV_CREATE_PIPE | UV_WRITABLE_PIPE, .data.stream = (uv_stream_t *)&j->err},
    };
    uv_process_options_t po = {.exit_cb = rpc_job__exit,
                               .file = "/proc/self/exe",
                               .args = c->gargv,
                               .flags = UV_PROCESS_DETACHED,
                               .stdio_count = 3,
                               .stdio = io};
    int rc = uv_spawn(c->loop, &j->proc, &po);
    if (rc != 0) {
        if (request != 0) {
            char msg[256];
            snprintf(msg, sizeof msg, "cannot run %s: %s", c->argv[0], uv_strerror(rc));
            (void)macula_rpc_respond_error(r, request, "handler_error", msg);
        }
        j->request = 0;
        j->exited = true;
        /* the process handle was initialised by uv_spawn even on failure */
        rpc_job__finish(j);
        return;
    }
    j->streams = 2;
    j->next = c->jobs;
    if (c->jobs != NULL) {
        c->jobs->prev = &j->next;
    }
    c->jobs = j;
    j->prev = &c->jobs;
    uv_read_start((uv_stream_t *)&j->out, rpc_job__alloc, rpc_job__read);
    uv_read_start((uv_stream_t *)&j->err, rpc_job__alloc, rpc_job__read);
    uv_buf_t b = uv_buf_init(j->input, (unsigned)len);
    (void)uv_write(&j->wr, (uv_stream_t *)&j->in, &b, 1, rpc_job__written);
    uv_timer_start(&j->kill, rpc_job__timeout, c->max_time_ms, 0);
}

static void rpc_cli__advertised(macula_rpc *r, const char *code, const char *text, size_t len,
                                void *ctx)
{
    rpc_cli *c = ctx;
    if (code != NULL) {
        fprintf(stderr, "%s: %.*s\n", code, (int)len, text);
        c->status = 1;
        c->done = true;
        macula_rpc_close(r);
        return;
    }
    printf("serving %s\n", c->procedure);
    fflush(stdout);
}

static void rpc_cli__adv_ready(macula_rpc *r, void *ctx)
{
    rpc_cli *c = ctx;
    int rc = macula_rpc_advertise(r, c->procedure, rpc_cli__handler, c, rpc_cli__advertised, c);
    if (rc != MACULA_RPC_OK) {
        fprintf(stderr, "%s: %s\n", c->prog, macula_rpc_strerror(rc));
        c->status = 1;
        c->done = true;
        macula_rpc_close(r);
    }
}

static void rpc_cli__signal(uv_signal_t *s, int signum)
{
    (void)signum;
    rpc_cli *c = s->data;
    c->done = true;
    c->status = 0;
    macula_rpc_close(c->r);
    rpc_cli__stop_signals(c);
    rpc_cli__stop_jobs(c);
}

/* ---- entry points -----------------------------------------------------------------------------
 */

static int rpc_cli__run(rpc_cli *c, const char *node, const char *realm, bool advertise)
{
    macula_rpc_callbacks cb = {.on_ready = advertise ? rpc_cli__adv_ready : rpc_cli__call_ready,
                               .on_closed = rpc_cli__on_closed};
    int rc = macula_rpc_open(c->loop, node, realm, &cb, c, &c->r);
    if (rc != MACULA_RPC_OK) {
        fprintf(stderr, "%s: %s: %s\n", c->prog, node, macula_rpc_strerror(rc));
        uv_run(c->loop, UV_RUN_DEFAULT);
        uv_loop_close(c->loop);
        return rc == MACULA_RPC_EINVAL ? 2 : 1;
    }
    if (advertise) {
        uv_signal_init(c->loop, &c->sigint);
        uv_signal_init(c->loop, &c->sigterm);
        c->sigint.data = c->sigterm.data = c;
        uv_signal_start(&c->sigint, rpc_cli__signal, SIGINT);
        uv_signal_start(&c->sigterm, rpc_cli__signal, SIGTERM);
        c->signals = true;
    }
    uv_run(c->loop, UV_RUN_DEFAULT);
    uv_loop_close(c->loop);
    return c->status;
}

static int rpc_cli__common(int argc, char **argv, bool advertise)
{
    const char *node = getenv("MACULA_NODE"), *realm = getenv("MACULA_REALM");
    const char *pos[2] = {NULL, NULL};
    int npos = 0;
    rpc_cli c = {.loop = uv_default_loop(),
                 .prog = advertise ? "macula advertise" : "macula call",
                 .timeout_ms = 30000,
                 .max_time_ms = 60000,
                 .status = 1};
    int i = 1;
    for (; i < argc; i++) {
        const char *a = argv[i];
        bool has_val = i + 1 < argc;
        if (strcmp(a, "--") == 0 && advertise) {
            i++;
            break;
        }
        if (strcmp(a, "--node") == 0 && has_val) {
            node = argv[++i];
        } else if (strcmp(a, "--realm") == 0 && has_val) {
            realm = argv[++i];
        } else if ((strcmp(a, "--timeout") == 0 && !advertise && has_val) ||
                   (strcmp(a, "--max-time") == 0 && advertise && has_val)) {
            char *e;
            long n = strtol(argv[++i], &e, 10);
            bool ms = strcmp(e, "ms") == 0;
            if ((*e != '\0' && !ms) || n < 1 || n > (ms ? 86400000L : 86400L)) {
                fprintf(stderr, "%s: %s wants seconds (or milliseconds with ms)\n", c.prog, a);
                return 2;
            }
            uint64_t v = ms ? (uint64_t)n : (uint64_t)n * 1000u;
            if (advertise) {
                c.max_time_ms = v;
            } else {
                c.timeout_ms = (uint32_t)v;
            }
        } else if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            rpc_cli__usage(stdout);
            return 0;
        } else if ((a[0] != '-' || a[1] == '\0' || (!advertise && npos == 1)) && npos < 2) {
            pos[npos++] = a;
        } else {
            rpc_cli__usage(stderr);
            return 2;
        }
    }
    bool ok = advertise ? npos == 1 && i < argc : npos == 2;
    if (!ok) {
        rpc_cli__usage(stderr);
        return 2;
    }
    c.procedure = pos[0];
    c.args = pos[1];
    c.argv = advertise ? argv + i : NULL;
    if (advertise) {
        size_t n = (size_t)(argc - i);
        c.gargv = calloc(n + 4, sizeof *c.gargv);
        if (c.gargv == NULL) {
            fprintf(stderr, "%s: out of memory\n", c.prog);
            return 1;
        }
        snprintf(c.self_pid, sizeof c.self_pid, "%ld", (long)getpid());
        c.gargv[0] = "macula";
        c.gargv[1] = "__handler-guard";
        c.gargv[2] = c.self_pid;
        memcpy(c.gargv + 3, c.argv, n * sizeof *c.gargv);
    } else {
        json_error_t jerr;
        json_t *v = json_loads(c.args, JSON_DECODE_ANY, &jerr);
        if (v == NULL) {
            fprintf(stderr, "%s: the arguments are not JSON: %s\n", c.prog, jerr.text);
            return 2;
        }
        json_decref(v);
    }
    node = node && node[0] ? node : "https://127.0.0.1:9443";
    realm = realm && realm[0] ? realm : "macula.default";
    signal(SIGPIPE, SIG_IGN);
    int rc = rpc_cli__run(&c, node, realm, advertise);
    free(c.gargv);
    return rc;
}

int cli_call(int argc, char **argv)
{
    return rpc_cli__common(argc, argv, false);
}

int cli_advertise(int argc, char **argv)
{
    return rpc_cli__common(argc, argv, true);
}

/* ---- the handler guard ---------------------------------------------------------------------- */

static void rpc_guard__orphaned(int sig)
{
    (void)sig;
    (void)kill(0, SIGKILL); /* the whole group, the guard with it */
}

int cli_handler_guard(int argc, char **argv)
{
    char *end = NULL;
    long watched = argc >= 3 ? strtol(argv[1], &end, 10) : 0;
    if (argc < 3 || end == NULL || *end != '\0' || watched < 1) {
        fprintf(stderr, "macula __handler-guard: usage: PID CMD [ARGS...]\n");
        return 127;
    }
    argc--; /* from here on, argv[1] is the command */
    argv++;
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = rpc_guard__orphaned;
    sigemptyset(&sa.sa_mask);
    (void)sigaction(SIGHUP, &sa, NULL);
    /* after the request, the parent must still be advertise: else it died before (our parent
     * is then init or a subreaper) and no SIGHUP would come */
    if (prctl(PR_SET_PDEATHSIG, SIGHUP) != 0 || getppid() != (pid_t)watched) {
        rpc_guard__orphaned(SIGHUP);
    }
    pid_t child = fork();
    if (child < 0) {
        fprintf(stderr, "cannot run %s: %s\n", argv[1], strerror(errno));
        return 127;
    }
    if (child == 0) {
        signal(SIGHUP, SIG_DFL);
        (void)prctl(PR_SET_PDEATHSIG, 0);
        execvp(argv[1], argv + 1);
        fprintf(stderr, "cannot run %s: %s\n", argv[1], strerror(errno));
        _exit(127);
    }
    /* advertise signals the group: the command gets SIGTERM itself, the guard waits for it */
    signal(SIGTERM, SIG_IGN);
    signal(SIGINT, SIG_IGN);
    int null = open("/dev/null", O_RDWR);
    if (null >= 0) { /* the pipes are the command's: the guard holds none of them open */
        (void)dup2(null, 0);
        (void)dup2(null, 1);
        (void)dup2(null, 2);
        if (null > 2) {
            (void)close(null);
        }
    }
    int st = 0;
    while (waitpid(child, &st, 0) < 0) {
        if (errno != EINTR) {
            return 127;
        }
    }
    if (WIFSIGNALED(st)) {
        int sig = WTERMSIG(st);
        signal(sig, SIG_DFL);
        (void)prctl(PR_SET_PDEATHSIG, 0);
        (void)raise(sig);
        return 128 + sig;
    }
    return WIFEXITED(st) ? WEXITSTATUS(st) : 127;
}
