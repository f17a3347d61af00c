/*
 * src/cli/sup_run.c — `macula sup-run FILE.json`: builds a supervision tree from JSON, plays a
 * script on the virtual clock and prints the trace (format: docs/sup-run.md). The same file
 * played through OTP by tests/oracle/sup_oracle.escript must print the same lines.
 *
 * Trace lines travel as messages to one tracer actor, which prints them in arrival order;
 * terminations come from the tracer's own monitors, set the instant a child starts. This is
 * the structure of the OTP side, so both orders are causal orders of the same events.
 */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "macula/sup.h"
#include "macula/sup_supervisor.h"
#include "sup/internal.h"

enum { TR_LINE = 1, W_EXIT = 2, W_IGNORE = 3 };

typedef struct node node;
struct node {
    char *path;
    char *id;
    bool is_sup;
    json_t *j;            /* the JSON object (borrowed from the document) */
    sup_child_spec spec;  /* as a child */
    sup_sv_nested nested; /* as a supervisor */
    node **kids;
    size_t nkids;
};

typedef struct kv { /* path -> value maps */
    struct kv *next;
    char *path;
    long count;  /* fail_starts */
    sup_pid pid; /* current (or last) pid */
    uint64_t mon;
    bool is_sup;
} kv;

static sup_rt *g_rt;
static sup_pid g_tracer;
static kv *g_fail, *g_pids, *g_mons;
static node **g_inst_nodes; /* instance trees built at start_child, freed at exit */
static size_t g_ninst;

static kv *kv_get(kv **head, const char *path, bool create)
{
    for (kv *k = *head; k; k = k->next) {
        if (strcmp(k->path, path) == 0) {
            return k;
        }
    }
    if (!create) {
        return NULL;
    }
    kv *k = calloc(1, sizeof *k);
    k->path = strdup(path);
    k->next = *head;
    *head = k;
    return k;
}

static void kv_free(kv **head)
{
    while (*head) {
        kv *k = *head;
        *head = k->next;
        free(k->path);
        free(k);
    }
}

static void trace(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void trace(const char *fmt, ...)
{
    char line[512];
    va_list ap;
    va_start(ap, fmt);
    int n =
        vsnprintf(line, sizeof line - 1, fmt, ap); // NOLINT(clang-analyzer-valist.Uninitialized)
    va_end(ap);
    if (n < 0) {
        return;
    }
    size_t len = strlen(line);
    line[len++] = '\n';
    sup_send(g_rt, SUP_NOPID, g_tracer, TR_LINE, line, len);
}

/* ---- the tracer ------------------------------------------------------------------------- */

static void tracer_info(sup_actor *self, void *state, const sup_msg *m)
{
    (void)self;
    (void)state;
    if (m->kind == SUP_MSG_INFO && m->tag == TR_LINE) {
        fwrite(m->data, 1, m->len, stdout);
    } else if (m->kind == SUP_MSG_DOWN) {
        for (kv *k = g_mons; k; k = k->next) {
            if (k->mon == m->ref) {
                char r[SUP_REASON_TEXT_MAX + 16];
                sup_reason_str(&m->reason, r, sizeof r);
                printf("%s %s %s\n", k->is_sup ? "exit" : "terminate", k->path, r);
                k->mon = 0;
                break;
            }
        }
    }
}

static const sup_behaviour tracer_behaviour = {.name = "tracer", .handle_info = tracer_info};

/* ---- test workers ----------------------------------------------------------------------- */

static int worker_init(sup_actor *self, void *state, void *arg)
{
    (void)state;
    sup_set_label(self, arg);
    sup_set_flags(self, SUP_FLAG_TRAP_EXIT);
    return 0;
}

static void worker_info(sup_actor *self, void *state, const sup_msg *m)
{
    (void)state;
    if (m->kind == SUP_MSG_INFO && m->tag == W_EXIT) {
        sup_reason r;
        char text[SUP_REASON_TEXT_MAX];
        size_t n = m->len < sizeof text - 1 ? m->len : sizeof text - 1;
        memcpy(text, m->data, n);
        text[n] = '\0';
        if (sup_reason_parse(text, &r) == 0) {
            sup_stop(self, &r);
        }
    } else if (m->kind == SUP_MSG_INFO && m->tag == W_IGNORE) {
        sup_set_flags(self, SUP_FLAG_TRAP_EXIT | SUP_FLAG_OWN_SHUTDOWN);
    }
    /* EXIT messages (a parent's shutdown while ignoring it) are ignored. */
}

static const sup_behaviour worker_behaviour = {
    .name = "worker", .init = worker_init, .handle_info = worker_info};

/* ---- building the tree from JSON -------------------------------------------------------- */

static node *build(json_t *j, const char *path, const char *id, bool is_sup, char *err,
                   size_t errsize);
static void node_free(node *n);

static int parse_enum(json_t *j, const char *key, const char *const *names, int n, int dflt,
                      char *err, size_t errsize)
{
    json_t *v = json_object_get(j, key);
    if (v == NULL) {
        return dflt;
    }
    if (json_is_string(v)) {
        for (int i = 0; i < n; i++) {
            if (strcmp(json_string_value(v), names[i]) == 0) {
                return i;
            }
        }
    }
    snprintf(err, errsize, "bad value for \"%s\"", key);
    return -1;
}

static bool word_ok(const char *s)
{
    if (s == NULL || *s == '\0' || strlen(s) > 48) {
        return false;
    }
    for (; *s; s++) {
        if (!(*s == '_' || (*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') ||
              (*s >= '0' && *s <= '9'))) {
            return false;
        }
    }
    return true;
}

static int start_worker(sup_rt *rt, sup_pid parent, void *arg, void *extra, sup_pid *out,
                        sup_reason *why);
static int start_sup(sup_rt *rt, sup_pid parent, void *arg, void *extra, sup_pid *out,
                     sup_reason *why);
static void hook(const sup_event_info *ev);

static char *join(const char *a, const char *b)
{
    size_t n = strlen(a) + strlen(b) + 2;
    char *s = malloc(n);
    if (s == NULL) {
        abort();
    }
    snprintf(s, n, "%s/%s", a, b);
    return s;
}

static node *build(json_t *j, const char *path, const char *id, bool is_sup, char *err,
                   size_t errsize)
{
    static const char *const strategies[] = {"one_for_one", "one_for_all", "rest_for_one",
                                             "simple_one_for_one"};
    static const char *const restarts[] = {"permanent", "transient", "temporary"};
    static const char *const autos[] = {"never", "any_significant", "all_significant"};
    static const char *const types[] = {"worker", "supervisor"};
    if (!json_is_object(j)) {
        snprintf(err, errsize, "%s: not an object", path);
        return NULL;
    }
    node *n = calloc(1, sizeof *n);
    n->path = strdup(path);
    n->id = strdup(id);
    n->j = j;
    n->is_sup = is_sup;
    if (is_sup) {
        int st = parse_enum(j, "strategy", strategies, 4, 0, err, errsize);
        int as = parse_enum(j, "auto_shutdown", autos, 3, 0, err, errsize);
        json_t *in = json_object_get(j, "intensity"), *pe = json_object_get(j, "period");
        if (st < 0 || as < 0 || (in && !json_is_integer(in)) || (pe && !json_is_integer(pe))) {
            if (!err[0]) {
                snprintf(err, errsize, "%s: bad supervisor flags", path);
            }
            node_free(n);
            return NULL;
        }
        n->nested.flags = (sup_flags){(sup_strategy)st, in ? (int)json_integer_value(in) : 1,
                                      pe ? (int)json_integer_value(pe) : 5, (sup_auto_shutdown)as};
        n->nested.opts = (sup_sv_opts){.name = n->path, .hook = hook, .hook_user = n};
        json_t *kids = json_object_get(j, "children");
        size_t nk = kids ? json_array_size(kids) : 0;
        if (kids && !json_is_array(kids)) {
            snprintf(err, errsize, "%s: children must be a list", path);
            node_free(n);
            return NULL;
        }
        n->kids = calloc(nk ? nk : 1, sizeof *n->kids);
        n->nested.specs = calloc(nk ? nk : 1, sizeof *n->nested.specs);
        n->nested.n = nk;
        for (size_t i = 0; i < nk; i++) {
            json_t *c = json_array_get(kids, i);
            const char *cid = json_string_value(json_object_get(c, "id"));
            if (!word_ok(cid)) {
                snprintf(err, errsize, "%s: child %zu needs an id (a word)", path, i);
                node_free(n);
                return NULL;
            }
            int ty = parse_enum(c, "type", types, 2, 0, err, errsize);
            if (ty < 0) {
                node_free(n);
                return NULL;
            }
            char *cpath = join(path, cid);
            node *k = build(c, cpath, cid, ty == 1, err, errsize);
            free(cpath);
            if (k == NULL) {
                node_free(n);
                return NULL;
            }
            n->kids[n->nkids++] = k;
            n->nested.specs[i] = k->spec;
        }
    }
    /* As a child. */
    int rs = parse_enum(j, "restart", restarts, 3, 0, err, errsize);
    if (rs < 0) {
        node_free(n);
        return NULL;
    }
    int shutdown = SUP_SHUTDOWN_DEFAULT;
    json_t *sd = json_object_get(j, "shutdown");
    if (json_is_integer(sd) && json_integer_value(sd) >= 0 && json_integer_value(sd) < 1 << 30) {
        shutdown = (int)json_integer_value(sd);
    } else if (json_is_string(sd) && strcmp(json_string_value(sd), "brutal_kill") == 0) {
        shutdown = SUP_SHUTDOWN_BRUTAL_KILL;
    } else if (json_is_string(sd) && strcmp(json_string_value(sd), "infinity") == 0) {
        shutdown = SUP_SHUTDOWN_INFINITY;
    } else if (sd != NULL) {
        snprintf(err, errsize, "%s: bad shutdown", path);
        node_free(n);
        return NULL;
    }
    n->spec = (sup_child_spec){
        .id = n->id,
        .start = is_sup ? start_sup : start_worker,
        .arg = n,
        .restart = (sup_restart)rs,
        .shutdown_ms = shutdown,
        .type = is_sup ? SUP_SUPERVISOR : SUP_WORKER,
        .significant = json_is_true(json_object_get(j, "significant")),
    };
    return n;
}

static void node_free(node *n)
{
    if (n == NULL) {
        return;
    }
    for (size_t i = 0; i < n->nkids; i++) {
        node_free(n->kids[i]);
    }
    free(n->kids);
    free(n->nested.specs);
    free(n->path);
    free(n->id);
    free(n);
}

/* The path a child of `sup` is known by. */
static char *child_path(const node *sup, const char *id, long instance)
{
    char num[32];
    if (instance > 0) {
        snprintf(num, sizeof num, "%ld", instance);
        return join(sup->path, num);
    }
    return join(sup->path, id);
}

/* A simple_one_for_one instance: `extra` is its path; the template node gives the shape. */
static bool should_fail(const char *path)
{
    kv *k = kv_get(&g_fail, path, false);
    if (k && k->count > 0) {
        k->count--;
        trace("start_failed %s", path);
        return true;
    }
    return false;
}

static int start_worker(sup_rt *rt, sup_pid parent, void *arg, void *extra, sup_pid *out,
                        sup_reason *why)
{
    node *n = arg;
    const char *path = extra ? (const char *)extra : n->path;
    if (should_fail(path)) {
        *why = sup_reason_error("start_failed");
        return SUP_EINIT;
    }
    return sup_spawn(rt, parent, &worker_behaviour, (void *)path, SUP_SPAWN_LINK, out, why);
}

static int start_sup(sup_rt *rt, sup_pid parent, void *arg, void *extra, sup_pid *out,
                     sup_reason *why)
{
    node *n = arg;
    if (extra != NULL) {
        /* an instance of a supervisor template: its own tree under its own path */
        const char *path = extra;
        if (should_fail(path)) {
            *why = sup_reason_error("start_failed");
            return SUP_EINIT;
        }
        char err[200] = "";
        const char *slash = strrchr(path, '/');
        node *inst = build(n->j, path, slash ? slash + 1 : path, true, err, sizeof err);
        if (inst == NULL) {
            *why = sup_reason_error("bad_spec");
            return SUP_EINIT;
        }
        node **grown = realloc(g_inst_nodes, (g_ninst + 1) * sizeof *g_inst_nodes);
        if (grown == NULL) {
            node_free(inst);
            *why = sup_reason_error("enomem");
            return SUP_EINIT;
        }
        g_inst_nodes = grown;
        g_inst_nodes[g_ninst++] = inst;
        n = inst;
    } else if (should_fail(n->path)) {
        *why = sup_reason_error("start_failed");
        return SUP_EINIT;
    }
    return sup_supervisor_start(rt, parent, &n->nested.flags, n->nested.specs, n->nested.n,
                                &n->nested.opts, out, why);
}

static void watch(const char *path, sup_pid pid, bool is_sup)
{
    kv *p = kv_get(&g_pids, path, true);
    p->pid = pid;
    p->is_sup = is_sup;
    /* One entry per monitor: DOWNs of earlier incarnations may still be queued. */
    kv *m = calloc(1, sizeof *m);
    if (m == NULL) {
        abort();
    }
    m->path = strdup(path);
    m->pid = pid;
    m->mon = sup__monitor_as(g_rt, g_tracer, pid);
    m->is_sup = is_sup;
    m->next = g_mons;
    g_mons = m;
}

static void hook(const sup_event_info *ev)
{
    const node *sup = ev->user;
    char r[SUP_REASON_TEXT_MAX + 16];
    switch (ev->event) {
    case SUP_EV_START:
    case SUP_EV_RESTART: {
        char *path = child_path(sup, ev->child_id, ev->instance);
        trace("%s %s", ev->event == SUP_EV_START ? "start" : "restart", path);
        watch(path, ev->child, ev->type == SUP_SUPERVISOR);
        free(path);
        break;
    }
    case SUP_EV_REMOVE: {
        char *path = child_path(sup, ev->child_id, ev->instance);
        trace("remove %s", path);
        free(path);
        break;
    }
    case SUP_EV_SUP_EXIT: {
        /* Only a supervisor that never started is not watched: its failed init. */
        bool watched = false;
        for (kv *m = g_mons; m; m = m->next) {
            watched |= m->mon != 0 && sup_pid_eq(m->pid, ev->sup);
        }
        if (!watched) {
            trace("exit %s %s", sup->path, sup_reason_str(ev->reason, r, sizeof r));
        }
        break;
    }
    default: break;
    }
}

/* ---- steps ------------------------------------------------------------------------------ */

static const char *err_word(int rc)
{
    switch (rc) {
    case SUP_EPRESENT: return "error:already_present";
    case SUP_ESTARTED: return "error:already_started";
    case SUP_EINIT: return "error:start_failed";
    case SUP_ENOTFOUND: return "error:not_found";
    case SUP_ESIMPLE: return "error:simple_one_for_one";
    case SUP_ERUNNING: return "error:running";
    case SUP_ERESTARTING: return "error:restarting";
    case SUP_EBADSPEC: return "error:bad_spec";
    default: return "error:noproc";
    }
}

/* OTP's {error, Reason} for a failed start: the start function's reason. */
static const char *start_result(int rc, const sup_reason *why, char *buf, size_t size)
{
    if (rc == 0) {
        return "ok";
    }
    if (rc == SUP_EINIT) {
        char r[SUP_REASON_TEXT_MAX + 16];
        snprintf(buf, size, "error:%s", sup_reason_str(why, r, sizeof r));
        return buf;
    }
    return err_word(rc);
}

static sup_pid pid_of(const char *path)
{
    kv *p = kv_get(&g_pids, path, false);
    return p ? p->pid : SUP_NOPID;
}

static const node *find_node(const node *n, const char *path)
{
    if (strcmp(n->path, path) == 0) {
        return n;
    }
    for (size_t i = 0; i < n->nkids; i++) {
        const node *f = find_node(n->kids[i], path);
        if (f) {
            return f;
        }
    }
    return NULL;
}

static const node *find_any(const node *root, const char *path)
{
    const node *n = find_node(root, path);
    for (size_t i = g_ninst; n == NULL && i-- > 0;) {
        n = find_node(g_inst_nodes[i], path);
    }
    return n;
}

static void do_call(const node *root, json_t *step, node **extra_nodes, size_t *nextra)
{
    const char *op = json_string_value(json_object_get(step, "call"));
    const char *path = json_string_value(json_object_get(step, "path"));
    if (path == NULL) {
        path = json_string_value(json_object_get(step, "sup"));
    }
    if (op == NULL || path == NULL) {
        trace("call %s %s error:badarg", op ? op : "?", path ? path : "?");
        return;
    }
    const char *slash = strrchr(path, '/');
    char parent_path[256];
    snprintf(parent_path, sizeof parent_path, "%.*s", slash ? (int)(slash - path) : 0, path);
    const char *leaf = slash ? slash + 1 : path;
    int rc;
    if (strcmp(op, "start_child") == 0) {
        sup_pid sup = pid_of(path);
        const node *sn = find_any(root, path);
        json_t *child = json_object_get(step, "child");
        if (sup_pid_is_null(sup) || !sup_is_alive(g_rt, sup) || sn == NULL) {
            const char *cid = json_string_value(json_object_get(child, "id"));
            trace("call start_child %s%s%s error:noproc", path, cid ? "/" : "", cid ? cid : "");
            return;
        }
        if (child == NULL) {
            /* A new instance. The supervisor numbers instances 1, 2, ... per start_child
             * call; the path (its start argument) is made with the same counter. */
            long inst = 0;
            char key[300], pidbuf[32];
            snprintf(key, sizeof key, "#next:%s", sup_pid_str(sup, pidbuf, sizeof pidbuf));
            kv *nx = kv_get(&g_fail, key, true);
            long num_next = nx->count > 0 ? nx->count : 1;
            nx->count = num_next + 1;
            char num[32];
            snprintf(num, sizeof num, "%ld", num_next);
            char *ipath = join(path, num);
            sup_reason why;
            char rbuf[96];
            rc = sup_start_child_sync(g_rt, sup, NULL, ipath, NULL, &inst, &why);
            if (rc == 0 && inst != num_next) {
                fprintf(stderr, "macula sup-run: instance numbering diverged\n");
            }
            trace("call start_child %s %s", ipath, start_result(rc, &why, rbuf, sizeof rbuf));
            /* the path string lives as long as the instance may: keep it */
            node *holder = calloc(1, sizeof *holder);
            holder->path = ipath;
            holder->id = strdup(num);
            extra_nodes[(*nextra)++] = holder;
            return;
        }
        const char *cid = json_string_value(json_object_get(child, "id"));
        static const char *const types[] = {"worker", "supervisor"};
        char err[200] = "";
        int ty = parse_enum(child, "type", types, 2, 0, err, sizeof err);
        if (!word_ok(cid) || ty < 0) {
            trace("call start_child %s error:bad_spec", path);
            return;
        }
        char *cpath = join(path, cid);
        node *k = build(child, cpath, cid, ty == 1, err, sizeof err);
        if (k == NULL) {
            trace("call start_child %s error:bad_spec", cpath);
            free(cpath);
            return;
        }
        extra_nodes[(*nextra)++] = k;
        sup_reason why;
        char rbuf[96];
        rc = sup_start_child_sync(g_rt, sup, &k->spec, NULL, NULL, NULL, &why);
        trace("call start_child %s %s", cpath, start_result(rc, &why, rbuf, sizeof rbuf));
        free(cpath);
        return;
    }
    if (strcmp(op, "which_children") == 0 || strcmp(op, "count_children") == 0) {
        sup_pid sup = pid_of(path);
        if (sup_pid_is_null(sup) || !sup_is_alive(g_rt, sup)) {
            trace("call %s %s error:noproc", op, path);
            return;
        }
        if (op[0] == 'c') {
            sup_counts c;
            rc = sup_count_children_sync(g_rt, sup, &c);
            if (rc != 0) {
                trace("call %s %s %s", op, path, err_word(rc));
                return;
            }
            trace("call count_children %s specs=%d,active=%d,supervisors=%d,workers=%d", path,
                  c.specs, c.active, c.supervisors, c.workers);
            return;
        }
        sup_child_info info[256];
        int n = sup_which_children_sync(g_rt, sup, info, 256);
        if (n < 0) {
            trace("call %s %s %s", op, path, err_word(n));
            return;
        }
        char out[4096] = "[";
        size_t len = 1;
        static const char *const st[] = {"running", "undefined", "restarting"};
        for (int i = 0; i < n && i < 256; i++) {
            char item[96];
            if (info[i].instance > 0) {
                snprintf(item, sizeof item, "%s%ld:%s", i ? "," : "", info[i].instance,
                         st[info[i].state]);
            } else {
                snprintf(item, sizeof item, "%s%.63s:%s", i ? "," : "", info[i].id,
                         st[info[i].state]);
            }
            size_t il = strlen(item);
            if (len + il + 2 < sizeof out) {
                memcpy(out + len, item, il);
                len += il;
            }
        }
        out[len++] = ']';
        out[len] = '\0';
        trace("call which_children %s %s", path, out);
        return;
    }
    /* terminate_child / restart_child / delete_child: PATH names the child */
    sup_pid sup = pid_of(parent_path);
    if (sup_pid_is_null(sup) || !sup_is_alive(g_rt, sup)) {
        trace("call %s %s error:noproc", op, path);
        return;
    }
    const node *sn = find_any(root, parent_path);
    bool simple = sn && sn->is_sup && sn->nested.flags.strategy == SUP_SIMPLE_ONE_FOR_ONE;
    if (strcmp(op, "terminate_child") == 0) {
        /* An instance is named by its number and terminated by pid; anything else is an id,
         * which a simple_one_for_one supervisor refuses. */
        bool numeric = leaf[0] != '\0' && strspn(leaf, "0123456789") == strlen(leaf);
        rc = simple && numeric ? sup_terminate_child_sync(g_rt, sup, NULL, pid_of(path))
                               : sup_terminate_child_sync(g_rt, sup, leaf, SUP_NOPID);
    } else if (strcmp(op, "restart_child") == 0) {
        sup_reason why;
        char rbuf[96];
        rc = sup_restart_child_sync(g_rt, sup, leaf, NULL, &why);
        trace("call %s %s %s", op, path, start_result(rc, &why, rbuf, sizeof rbuf));
        return;
    } else if (strcmp(op, "delete_child") == 0) {
        rc = sup_delete_child_sync(g_rt, sup, leaf);
    } else {
        trace("call %s %s error:badarg", op, path);
        return;
    }
    trace("call %s %s %s", op, path, rc == 0 ? "ok" : err_word(rc));
}

typedef struct step_ref {
    json_t *j;
    long at;
    size_t order;
} step_ref;

static int step_cmp(const void *a, const void *b)
{
    const step_ref *x = a, *y = b;
    if (x->at != y->at) {
        return x->at < y->at ? -1 : 1;
    }
    return x->order < y->order ? -1 : (x->order > y->order);
}

int cli_sup_run(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: macula sup-run FILE.json\n");
        return 2;
    }
    json_error_t jerr;
    json_t *doc = json_load_file(argv[1], JSON_REJECT_DUPLICATES, &jerr);
    if (doc == NULL) {
        fprintf(stderr, "macula sup-run: %s:%d: %s\n", argv[1], jerr.line, jerr.text);
        return 2;
    }
    char err[256] = "";
    node *root = build(json_object_get(doc, "tree"), "root", "root", true, err, sizeof err);
    json_t *script = json_object_get(doc, "script");
    if (root == NULL || (script && !json_is_array(script))) {
        fprintf(stderr, "macula sup-run: %s: %s\n", argv[1], err[0] ? err : "bad script");
        node_free(root);
        json_decref(doc);
        return 2;
    }
    size_t nsteps = script ? json_array_size(script) : 0;
    step_ref *steps = calloc(nsteps ? nsteps : 1, sizeof *steps);
    for (size_t i = 0; i < nsteps; i++) {
        json_t *s = json_array_get(script, i);
        json_t *at = json_object_get(s, "at");
        if (!json_is_integer(at) || json_integer_value(at) < 0) {
            fprintf(stderr, "macula sup-run: step %zu: \"at\" must be an integer >= 0\n", i);
            free(steps);
            node_free(root);
            json_decref(doc);
            return 2;
        }
        steps[i] = (step_ref){s, (long)json_integer_value(at), i};
    }
    qsort(steps, nsteps, sizeof *steps, step_cmp);

    g_rt = sup_rt_new_virtual();
    sup_spawn(g_rt, SUP_NOPID, &tracer_behaviour, NULL, 0, &g_tracer, NULL);
    node **extra_nodes = calloc(nsteps + 1, sizeof *extra_nodes);
    size_t nextra = 0;

    sup_pid rootpid;
    sup_reason why;
    int rc = sup_supervisor_start(g_rt, SUP_NOPID, &root->nested.flags, root->nested.specs,
                                  root->nested.n, &root->nested.opts, &rootpid, &why);
    if (rc == 0) {
        trace("start root");
        watch("root", rootpid, true);
        for (size_t i = 0; i < nsteps && sup_is_alive(g_rt, rootpid); i++) {
            json_t *s = steps[i].j;
            sup_rt_advance(g_rt, (uint64_t)steps[i].at);
            if (!sup_is_alive(g_rt, rootpid)) {
                break;
            }
            const char *p;
            if ((p = json_string_value(json_object_get(s, "exit"))) != NULL) {
                const char *r = json_string_value(json_object_get(s, "reason"));
                r = r ? r : "normal";
                sup_send(g_rt, SUP_NOPID, pid_of(p), W_EXIT, r, strlen(r));
            } else if ((p = json_string_value(json_object_get(s, "kill"))) != NULL) {
                sup_reason k = sup_reason_make(SUP_R_KILL, NULL);
                sup_exit(g_rt, SUP_NOPID, pid_of(p), &k);
            } else if ((p = json_string_value(json_object_get(s, "fail_starts"))) != NULL) {
                json_t *c = json_object_get(s, "count");
                kv_get(&g_fail, p, true)->count = c ? (long)json_integer_value(c) : 1;
            } else if ((p = json_string_value(json_object_get(s, "ignore_shutdown"))) != NULL) {
                sup_send(g_rt, SUP_NOPID, pid_of(p), W_IGNORE, NULL, 0);
            } else if (json_object_get(s, "call") != NULL) {
                do_call(root, s, extra_nodes, &nextra);
            } else if (json_is_true(json_object_get(s, "stop"))) {
                sup_reason sd = sup_reason_shutdown();
                sup_stop_sync(g_rt, rootpid, &sd);
            }
            sup_rt_run(g_rt);
        }
        if (sup_is_alive(g_rt, rootpid)) {
            sup_reason sd = sup_reason_shutdown();
            sup_stop_sync(g_rt, rootpid, &sd);
        }
        /* let pending timers (kill timeouts of an ending tree) play out */
        while (sup_rt_next_deadline(g_rt) != UINT64_MAX) {
            sup_rt_advance(g_rt, sup_rt_next_deadline(g_rt));
        }
    }
    sup_rt_run(g_rt);
    fflush(stdout);
    sup_rt_free(g_rt);
    for (size_t i = 0; i < nextra; i++) {
        node_free(extra_nodes[i]);
    }
    for (size_t i = 0; i < g_ninst; i++) {
        node_free(g_inst_nodes[i]);
    }
    free(g_inst_nodes);
    free(extra_nodes);
    free(steps);
    kv_free(&g_fail);
    kv_free(&g_pids);
    kv_free(&g_mons);
    node_free(root);
    json_decref(doc);
    return 0;
}
