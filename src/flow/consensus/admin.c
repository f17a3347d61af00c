/*
 * flow/consensus/admin.c — the flow HTTP endpoint (flow_admin_start in macula/flow.h):
 * POST /flow/OP with the JSON args as body, answered by the flow API.
 *
 * The HTTP server runs on the runtime's loop outside any actor, so requests go through one
 * small actor (flow_admin) that calls flow_request_async and answers on the reply. The
 * flow_admin struct owns the live requests; a request is released by its close callback
 * (every request has one, and the server fires it on answer, client loss and stop). The actor
 * finds requests by id, so a reply for a request that is gone is dropped. The actor frees the
 * struct when it ends (flow_admin_stop ends it).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "flow/flow_int.h"
#include "http/server.h"

#define ADM_TAG 0x0f1a001
#define ADM_BODY_MAX (2u << 20)
#define ADM_TIMEOUT_MS 30000

typedef struct adm_req {
    uint64_t id, ref;
    http_request *req;
    struct flow_admin *a;
    char op[64];
    struct adm_req *next, *prev;
} adm_req;

struct flow_admin {
    sup_rt *rt;
    http_server *srv;
    sup_pid pid;
    adm_req *live;
    uint64_t next_id;
};

static void adm__unlink(flow_admin *a, adm_req *p)
{
    if (p->prev) {
        p->prev->next = p->next;
    } else {
        a->live = p->next;
    }
    if (p->next) {
        p->next->prev = p->prev;
    }
}

static void adm__closed(void *arg)
{
    adm_req *p = arg;
    adm__unlink(p->a, p);
    free(p);
}

static void adm__respond(http_request *r, int status, const json_t *j, const char *location)
{
    char *text = json_dumps(j, JSON_COMPACT | JSON_ENCODE_ANY);
    const char *hdrs[] = {"Location", location, NULL};
    http_request_respond(r, status, "application/json", location ? hdrs : NULL, text ? text : "{}",
                         text ? strlen(text) : 2);
    free(text);
}

static int adm__status(int code)
{
    switch (code) {
    case FLOW_EINVAL:
    case FLOW_EDEPS: return 400;
    case FLOW_ENOTFOUND: return 404;
    case FLOW_ETIMEOUT: return 504;
    case FLOW_ENOPROC:
    case FLOW_ECONSENSUS:
    case FLOW_ENOTLEADER: return 503;
    default: return 409;
    }
}

static adm_req *adm__find(flow_admin *a, uint64_t id, uint64_t ref)
{
    for (adm_req *p = a->live; p; p = p->next) {
        if ((id && p->id == id) || (ref && p->ref == ref)) {
            return p;
        }
    }
    return NULL;
}

/* The HTTP side (loop callback). */
static void adm__handle(void *user, http_request *r)
{
    flow_admin *a = user;
    const char *path = http_request_path(r);
    const char *method = http_request_method(r);
    const char *op = path && strncmp(path, "/flow/", 6) == 0 ? path + 6 : NULL;
    size_t n = op ? strspn(op, "abcdefghijklmnopqrstuvwxyz_") : 0;
    if (op == NULL || n == 0 || n >= 64 || op[n] != '\0') {
        json_t *e = json_pack("{s:s, s:s}", "error", "not_found", "message", "POST /flow/OP");
        adm__respond(r, 404, e, NULL);
        json_decref(e);
        return;
    }
    if (strcmp(method, "POST") != 0 && strcmp(method, "GET") != 0) {
        json_t *e = json_pack("{s:s, s:s}", "error", "method", "message", "POST or GET");
        adm__respond(r, 405, e, NULL);
        json_decref(e);
        return;
    }
    adm_req *p = calloc(1, sizeof *p);
    if (p == NULL) {
        http_request_respond(r, 503, "text/plain", NULL, "out of memory", 13);
        return;
    }
    p->id = ++a->next_id;
    p->req = r;
    p->a = a;
    snprintf(p->op, sizeof p->op, "%s", op);
    p->next = a->live;
    if (a->live) {
        a->live->prev = p;
    }
    a->live = p;
    http_request_on_close(r, adm__closed, p);
    if (sup_cast(a->rt, SUP_NOPID, a->pid, ADM_TAG, &p->id, sizeof p->id) != 0) {
        json_t *e = json_pack("{s:s, s:s}", "error", "flow_not_running", "message", "no admin");
        adm__respond(r, 503, e, NULL);
        json_decref(e);
    }
}

/* ---- the actor ---------------------------------------------------------------------------- */

typedef struct adm_state {
    flow_admin *a;
} adm_state;

static int adm_init(sup_actor *self, void *state, void *arg)
{
    ((adm_state *)state)->a = arg;
    sup_set_label(self, "flow_admin");
    return 0;
}

static void adm_cast(sup_actor *self, void *state, const sup_msg *m)
{
    flow_admin *a = ((adm_state *)state)->a;
    uint64_t id;
    if (m->tag != ADM_TAG || m->len != sizeof id) {
        return;
    }
    memcpy(&id, m->data, sizeof id);
    adm_req *p = adm__find(a, id, 0);
    if (p == NULL) {
        return;
    }
    size_t len = 0;
    const char *body = http_request_body(p->req, &len);
    json_t *args = NULL;
    if (len > 0 && len <= ADM_BODY_MAX) {
        args = json_loadb(body, len, JSON_REJECT_DUPLICATES, NULL);
    } else if (len == 0) {
        args = json_object();
    }
    if (!json_is_object(args)) {
        json_t *e = json_pack("{s:s, s:i, s:s}", "error", "invalid_argument", "code", FLOW_EINVAL,
                              "message", "the body must be a JSON object");
        adm__respond(p->req, 400, e, NULL);
        json_decref(e);
    } else {
        p->ref = flow_request_async(self, p->op, args, ADM_TIMEOUT_MS);
        if (p->ref == 0) {
            json_t *e = json_pack("{s:s, s:i, s:s}", "error", "flow_not_running", "code",
                                  FLOW_ENOPROC, "message", "flow is not running");
            adm__respond(p->req, 503, e, NULL);
            json_decref(e);
        }
    }
    json_decref(args);
}

static void adm_info(sup_actor *self, void *state, const sup_msg *m)
{
    (void)self;
    flow_admin *a = ((adm_state *)state)->a;
    if (m->kind != SUP_MSG_REPLY) {
        return;
    }
    adm_req *p = adm__find(a, 0, m->ref);
    if (p == NULL) {
        return;
    }
    json_t *out = NULL;
    int rc = flow_reply_decode(m, &out);
    if (rc == 0) {
        adm__respond(p->req, 200, out, NULL);
    } else {
        char loc[FLOW_ERROR_MAX + 80];
        const char *api = json_string_value(json_object_get(json_object_get(out, "leader"), "api"));
        bool redirect = rc == FLOW_ENOTLEADER && api != NULL;
        if (redirect) {
            snprintf(loc, sizeof loc, "%s/flow/%s", api, p->op);
        }
        adm__respond(p->req, redirect ? 307 : adm__status(rc), out, redirect ? loc : NULL);
    }
    json_decref(out);
}

static void adm_terminate(sup_actor *self, void *state, const sup_reason *reason)
{
    (void)self;
    (void)reason;
    flow_admin *a = ((adm_state *)state)->a;
    if (a->srv) {
        http_server_stop(a->srv); /* fires every live request's close callback */
    }
    free(a);
}

static const sup_behaviour adm_behaviour = {
    .name = "flow_admin",
    .state_size = sizeof(adm_state),
    .init = adm_init,
    .handle_cast = adm_cast,
    .handle_info = adm_info,
    .terminate = adm_terminate,
};

int flow_admin_start(sup_rt *rt, const char *addr, uint16_t port, flow_admin **out,
                     const char **errmsg)
{
    *errmsg = NULL;
    if (sup_rt_loop(rt) == NULL) {
        *errmsg = "the flow HTTP endpoint needs a libuv runtime";
        return FLOW_EINVAL;
    }
    flow_admin *a = calloc(1, sizeof *a);
    if (a == NULL) {
        *errmsg = "out of memory";
        return FLOW_ENOMEM;
    }
    a->rt = rt;
    http_server_options o = {.addr = addr ? addr : "127.0.0.1",
                             .port = port,
                             .request_handler = adm__handle,
                             .user = a,
                             .max_body = ADM_BODY_MAX};
    int rc = http_server_start_opts(sup_rt_loop(rt), &o, &a->srv, errmsg);
    if (rc != 0) {
        free(a);
        return rc;
    }
    sup_reason why;
    if (sup_spawn(rt, SUP_NOPID, &adm_behaviour, a, 0, &a->pid, &why) != 0) {
        http_server_stop(a->srv);
        free(a);
        *errmsg = "the admin actor did not start";
        return FLOW_ENOPROC;
    }
    *out = a;
    return 0;
}

uint16_t flow_admin_port(const flow_admin *a)
{
    return http_server_port(a->srv);
}

void flow_admin_stop(flow_admin *a)
{
    if (a) {
        sup_reason r = sup_reason_shutdown();
        sup_exit(a->rt, SUP_NOPID, a->pid, &r);
    }
}
