/* src/mesh/gateway/diagnostics.c — macula_gateway_diagnostics (see diagnostics.h). */
#include "diagnostics.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "macula/version.h"

const char *gw_diag_strerror(int err)
{
    switch (err) {
    case GW_DIAG_OK: return "ok";
    case GW_DIAG_ENOPROC: return "no_handler";
    case GW_DIAG_EARGS: return "invalid_args";
    case GW_DIAG_ENOMEM: return "no_memory";
    default: return "handler_error";
    }
}

bool gw_diag_is_procedure(const uint8_t *proc, size_t len)
{
    size_t n = strlen(GW_DIAG_PREFIX);
    return proc != NULL && len >= n && memcmp(proc, GW_DIAG_PREFIX, n) == 0;
}

static bool gw_diag__is(const uint8_t *proc, size_t len, const char *name)
{
    size_t n = strlen(GW_DIAG_PREFIX), m = strlen(name);
    return len == n + m && gw_diag_is_procedure(proc, len) && memcmp(proc + n, name, m) == 0;
}

static void gw_diag__hex(const uint8_t *id, char out[65])
{
    static const char digits[] = "0123456789abcdef";
    for (size_t i = 0; i < 32; i++) {
        out[2 * i] = digits[id[i] >> 4];
        out[2 * i + 1] = digits[id[i] & 15];
    }
    out[64] = '\0';
}

static int gw_diag__dump(json_t *j, char **result, size_t *result_len)
{
    if (j == NULL) {
        return GW_DIAG_ENOMEM;
    }
    char *text = json_dumps(j, JSON_COMPACT | JSON_ENCODE_ANY);
    json_decref(j);
    if (text == NULL) {
        return GW_DIAG_ENOMEM;
    }
    *result = text;
    *result_len = strlen(text);
    return GW_DIAG_OK;
}

int gw_diag_call(const uint8_t *proc, size_t proc_len, const uint8_t *args, size_t args_len,
                 const gw_diag_info *info, char **result, size_t *result_len)
{
    *result = NULL;
    *result_len = 0;
    char hex[65];
    gw_diag__hex(info->node_id, hex);
    if (gw_diag__is(proc, proc_len, "hello")) {
        char msg[96];
        snprintf(msg, sizeof msg, "hello from %s", hex);
        return gw_diag__dump(json_pack("{s:s, s:s}", "message", msg, "node_id", hex), result,
                             result_len);
    }
    if (gw_diag__is(proc, proc_len, "info")) {
        return gw_diag__dump(json_pack("{s:s, s:s%, s:s, s:f, s:I}", "node_id", hex, "realm",
                                       info->realm, strlen(info->realm), "version",
                                       info->version ? info->version : MACULA_VERSION, "uptime",
                                       info->uptime_s, "clients", (json_int_t)info->clients),
                             result, result_len);
    }
    if (gw_diag__is(proc, proc_len, "echo")) {
        if (args == NULL || args_len == 0) {
            return gw_diag__dump(json_null(), result, result_len);
        }
        json_error_t jerr;
        json_t *j = json_loadb((const char *)args, args_len, JSON_DECODE_ANY, &jerr);
        if (j == NULL) {
            return GW_DIAG_EARGS;
        }
        json_decref(j);
        char *copy = malloc(args_len + 1);
        if (copy == NULL) {
            return GW_DIAG_ENOMEM;
        }
        memcpy(copy, args, args_len);
        copy[args_len] = '\0';
        *result = copy;
        *result_len = args_len;
        return GW_DIAG_OK;
    }
    return GW_DIAG_ENOPROC;
}

void *gw_diag_request(uint32_t clients, const uint8_t *proc, size_t proc_len, const uint8_t *args,
                      size_t args_len, size_t *len)
{
    gw_diag_req h = {clients, (uint32_t)proc_len, (uint32_t)args_len};
    uint8_t *p = malloc(sizeof h + proc_len + args_len);
    if (p == NULL) {
        return NULL;
    }
    memcpy(p, &h, sizeof h);
    if (proc_len > 0) {
        memcpy(p + sizeof h, proc, proc_len);
    }
    if (args_len > 0) {
        memcpy(p + sizeof h + proc_len, args, args_len);
    }
    *len = sizeof h + proc_len + args_len;
    return p;
}

/* ---- the actor ---------------------------------------------------------------------------- */

typedef struct gw_diag {
    const gw_diag_config *cfg;
    uint64_t started_ms;
    uint64_t served;
} gw_diag;

static int gw_diag__init(sup_actor *self, void *state, void *arg)
{
    gw_diag *d = state;
    d->cfg = arg;
    d->started_ms = sup_rt_now(sup_self_rt(self));
    sup_register(sup_self_rt(self), "macula_gateway_diagnostics", sup_self(self));
    return 0;
}

static void gw_diag__call(sup_actor *self, void *state, const sup_msg *m)
{
    gw_diag *d = state;
    sup_rt *rt = sup_self_rt(self);
    if (m->tag == GW_DIAG_SERVED) {
        sup_reply(rt, sup_msg_from(m), &d->served, sizeof d->served);
        return;
    }
    gw_diag_rep rep = {GW_DIAG_ENOPROC};
    gw_diag_req h;
    if (m->tag != GW_DIAG_CALL || m->len < sizeof h) {
        sup_reply(rt, sup_msg_from(m), &rep, sizeof rep);
        return;
    }
    memcpy(&h, m->data, sizeof h);
    if ((size_t)h.proc_len + h.args_len != m->len - sizeof h) {
        sup_reply(rt, sup_msg_from(m), &rep, sizeof rep);
        return;
    }
    const uint8_t *proc = (const uint8_t *)m->data + sizeof h;
    gw_diag_info info = {.node_id = d->cfg->node_id,
                         .realm = d->cfg->realm ? d->cfg->realm : "",
                         .version = MACULA_VERSION,
                         .uptime_s = (double)(sup_rt_now(rt) - d->started_ms) / 1000.0,
                         .clients = h.clients};
    char *result = NULL;
    size_t rlen = 0;
    rep.rc = gw_diag_call(proc, h.proc_len, proc + h.proc_len, h.args_len, &info, &result, &rlen);
    d->served++;
    uint8_t *out = sup_alloc(self, sizeof rep + rlen);
    if (out == NULL) {
        free(result);
        rep.rc = GW_DIAG_ENOMEM;
        sup_reply(rt, sup_msg_from(m), &rep, sizeof rep);
        return;
    }
    memcpy(out, &rep, sizeof rep);
    if (rlen > 0) {
        memcpy(out + sizeof rep, result, rlen);
    }
    free(result);
    sup_reply(rt, sup_msg_from(m), out, sizeof rep + rlen);
    sup_free(self, out);
}

static const sup_behaviour gw_diag_behaviour = {
    .name = "gateway_diagnostics",
    .state_size = sizeof(gw_diag),
    .init = gw_diag__init,
    .handle_call = gw_diag__call,
};

int gw_diag_start(sup_rt *rt, sup_pid parent, void *arg, void *extra, sup_pid *out, sup_reason *why)
{
    (void)extra;
    return sup_spawn(rt, parent, &gw_diag_behaviour, arg, SUP_SPAWN_LINK, out, why);
}
