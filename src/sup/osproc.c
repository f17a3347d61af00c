/* src/sup/osproc.c — OS-process children (macula/sup_osproc.h). */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "internal.h"
#include "macula/sup_osproc.h"

enum { OSP_EXITED = 0x5f0e0001 };

/* The libuv handle outlives the actor when the actor is killed: the process must still be
 * reaped, so the handle is closed from the exit callback. */
typedef struct osp_handle {
    uv_process_t proc;
    sup_rt *rt;
    sup_pid owner; /* the actor, or null once it is gone */
    bool exited;
} osp_handle;

typedef struct osp_state {
    osp_handle *h;
    bool stopping; /* SIGTERM sent because the parent asked */
    sup_reason stop_reason;
} osp_state;

typedef struct osp_exit {
    int64_t status;
    int term_signal;
} osp_exit;

static void on_close(uv_handle_t *h)
{
    free(h->data);
}

static void on_exit_cb(uv_process_t *p, int64_t status, int term_signal)
{
    osp_handle *h = p->data;
    h->exited = true;
    if (!sup_pid_is_null(h->owner)) {
        osp_exit e = {status, term_signal};
        sup_send(h->rt, SUP_NOPID, h->owner, OSP_EXITED, &e, sizeof e);
        h->owner = SUP_NOPID;
    }
    uv_close((uv_handle_t *)p, on_close);
}

static int osp_init(sup_actor *self, void *state, void *arg)
{
    osp_state *st = state;
    const sup_osproc_spec *spec = arg;
    sup_rt *rt = sup_self_rt(self);
    uv_loop_t *loop = sup_rt_loop(rt);
    if (loop == NULL) {
        sup_reason r = sup_reason_error("osproc_needs_a_loop");
        sup_stop(self, &r);
        return SUP_EINVAL;
    }
    osp_handle *h = calloc(1, sizeof *h);
    if (h == NULL) {
        sup_reason r = sup_reason_error("enomem");
        sup_stop(self, &r);
        return SUP_ENOMEM;
    }
    h->rt = rt;
    h->owner = sup_self(self);
    h->proc.data = h;
    uv_stdio_container_t stdio[3];
    stdio[0].flags = UV_IGNORE;
    for (int i = 1; i < 3; i++) {
        if (spec->inherit_stdio) {
            stdio[i].flags = UV_INHERIT_FD;
            stdio[i].data.fd = i;
        } else {
            stdio[i].flags = UV_IGNORE;
        }
    }
    uv_process_options_t o = {
        .exit_cb = on_exit_cb,
        .file = spec->file ? spec->file : spec->argv[0],
        .args = spec->argv,
        .env = spec->env,
        .cwd = spec->cwd,
        .stdio_count = 3,
        .stdio = stdio,
    };
    int rc = uv_spawn(loop, &h->proc, &o);
    if (rc != 0) {
        char text[SUP_REASON_TEXT_MAX];
        snprintf(text, sizeof text, "{spawn_failed,%s}", uv_err_name(rc));
        sup_reason r = sup_reason_error(text);
        sup_stop(self, &r);
        /* a handle that failed to spawn must still be closed */
        uv_close((uv_handle_t *)&h->proc, on_close);
        return SUP_ESPAWN;
    }
    st->h = h;
    sup_set_label(self, spec->label ? spec->label : spec->argv[0]);
    /* The parent's shutdown is ours to carry out: SIGTERM, then wait for the exit. */
    sup_set_flags(self, SUP_FLAG_TRAP_EXIT | SUP_FLAG_OWN_SHUTDOWN);
    return 0;
}

static void osp_info(sup_actor *self, void *state, const sup_msg *m)
{
    osp_state *st = state;
    if (m->kind == SUP_MSG_INFO && m->tag == OSP_EXITED && m->len == sizeof(osp_exit)) {
        osp_exit e;
        memcpy(&e, m->data, sizeof e);
        st->h = NULL; /* the handle closes itself */
        sup_reason r;
        char text[SUP_REASON_TEXT_MAX];
        if (st->stopping) {
            r = st->stop_reason;
        } else if (e.term_signal != 0) {
            snprintf(text, sizeof text, "{signal,%d}", e.term_signal);
            r = sup_reason_error(text);
        } else if (e.status != 0) {
            snprintf(text, sizeof text, "{exit_status,%lld}", (long long)e.status);
            r = sup_reason_error(text);
        } else {
            r = sup_reason_normal();
        }
        sup_stop(self, &r);
        return;
    }
    if (m->kind == SUP_MSG_EXIT) {
        bool from_parent = sup_pid_eq(m->from, sup_self_parent(self));
        if ((from_parent || !sup_reason_is_normal(&m->reason)) && st->h && !st->stopping) {
            st->stopping = true;
            st->stop_reason = m->reason;
            uv_process_kill(&st->h->proc, SIGTERM);
        }
    }
}

static void osp_terminate(sup_actor *self, void *state, const sup_reason *reason)
{
    (void)self;
    (void)reason;
    osp_state *st = state;
    if (st->h != NULL && !st->h->exited) {
        /* Killed (or the runtime is going away) while the program runs: SIGKILL; the exit
         * callback reaps it and frees the handle. */
        st->h->owner = SUP_NOPID;
        uv_process_kill(&st->h->proc, SIGKILL);
    }
    st->h = NULL;
}

static const sup_behaviour osp_behaviour = {
    .name = "osproc",
    .state_size = sizeof(osp_state),
    .init = osp_init,
    .handle_info = osp_info,
    .terminate = osp_terminate,
};

int sup_osproc_start(sup_rt *rt, sup_pid parent, void *arg, void *extra, sup_pid *out,
                     sup_reason *why)
{
    (void)extra;
    const sup_osproc_spec *spec = arg;
    if (spec == NULL || spec->argv == NULL || spec->argv[0] == NULL) {
        if (why) {
            *why = sup_reason_error("badarg");
        }
        return SUP_EINVAL;
    }
    int rc = sup_spawn(rt, parent, &osp_behaviour, arg, SUP_SPAWN_LINK, out, why);
    return rc;
}

int sup_osproc_os_pid(const sup_rt *rt, sup_pid pid)
{
    sup_actor_info info;
    if (sup_actor_info_get(rt, pid, &info) != 0 || info.behaviour != &osp_behaviour) {
        return -1;
    }
    const osp_state *st = sup_self_state(sup__lookup(rt, pid));
    return st->h ? st->h->proc.pid : -1;
}
