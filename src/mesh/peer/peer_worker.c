/* src/mesh/peer/peer_worker.c — the peer workers' common part (see peer_worker.h). */
#include "peer_worker.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void peer_name(const char *base, const uint8_t id[32], char *out, size_t cap)
{
    static const char digits[] = "0123456789abcdef";
    char hex[17];
    for (size_t i = 0; i < 8; i++) {
        hex[2 * i] = digits[id[i] >> 4];
        hex[2 * i + 1] = digits[id[i] & 15];
    }
    hex[16] = '\0';
    snprintf(out, cap, "%s:%s", base, hex);
}

sup_pid peer_whereis(const sup_rt *rt, const char *base, const uint8_t id[32])
{
    char name[64];
    peer_name(base, id, name, sizeof name);
    return sup_whereis(rt, name);
}

void peer_rpc_note_make(peer_rpc_note *n, peer_rpc_kind kind, const uint8_t *call_id,
                        size_t call_id_len, const char *procedure, size_t proc_len, bool is_error)
{
    memset(n, 0, sizeof *n);
    n->kind = (uint8_t)kind;
    n->is_error = is_error ? 1 : 0;
    n->call_id_len = (uint8_t)(call_id_len < PEER_CALL_ID_MAX ? call_id_len : PEER_CALL_ID_MAX);
    if (n->call_id_len > 0) {
        memcpy(n->call_id, call_id, n->call_id_len);
    }
    n->proc_len = (uint8_t)(proc_len < PEER_PROC_MAX ? proc_len : PEER_PROC_MAX);
    if (n->proc_len > 0) {
        memcpy(n->procedure, procedure, n->proc_len);
    }
}

bool peer_rpc_note_post(sup_rt *rt, sup_pid from, const uint8_t id[32], const peer_rpc_note *n)
{
    sup_pid to = peer_whereis(rt, "macula_rpc_handler", id);
    return !sup_pid_is_null(to) && sup_send(rt, from, to, PEER_RPC_NOTE, n, sizeof *n) == 0;
}

bool peer_rpc_note_send(sup_rt *rt, sup_pid from, const uint8_t id[32], peer_rpc_kind kind,
                        const uint8_t *call_id, size_t call_id_len, const char *procedure,
                        size_t proc_len, bool is_error)
{
    peer_rpc_note n;
    peer_rpc_note_make(&n, kind, call_id, call_id_len, procedure, proc_len, is_error);
    return peer_rpc_note_post(rt, from, id, &n);
}

bool peer_adv_note_send(sup_rt *rt, sup_pid from, const uint8_t id[32], peer_adv_kind kind,
                        const char *procedure, size_t len)
{
    if (len == 0 || len > PEER_ADV_NAME_MAX) {
        return false;
    }
    sup_pid to = peer_whereis(rt, "macula_advertisement_manager", id);
    if (sup_pid_is_null(to)) {
        return false;
    }
    peer_adv_note n;
    memset(&n, 0, sizeof n);
    n.kind = (uint8_t)kind;
    n.name_len = (uint8_t)len;
    memcpy(n.name, procedure, len);
    return sup_send(rt, from, to, PEER_ADV_NOTE, &n, sizeof n) == 0;
}

int peer_worker_init(sup_actor *self, peer_worker *w, const char *base, const peer_info *info)
{
    w->rt = sup_self_rt(self);
    if (info != NULL) {
        w->info = *info;
    }
    w->stats.info = w->info;
    peer_name(base, w->info.id, w->name, sizeof w->name);
    (void)sup_register(w->rt, w->name, sup_self(self));
    return 0;
}

bool peer_worker_info(sup_actor *self, peer_worker *w, const sup_msg *m)
{
    (void)self;
    if (m->kind != SUP_MSG_INFO) {
        return false;
    }
    if (m->tag == PEER_FRAME_OUT) {
        w->stats.frames_out++;
        return true;
    }
    if (m->tag == PEER_FRAME_IN) {
        w->stats.frames_in++;
        return true;
    }
    return false;
}

static void peer_worker__json(sup_actor *self, peer_worker *w, const sup_msg *m,
                              peer_worker_json_fn more, void *state)
{
    char pid[24];
    const char *colon = strchr(w->name, ':');
    size_t base = colon ? (size_t)(colon - w->name) : strlen(w->name);
    json_t *o =
        json_pack("{s:s%, s:s, s:I, s:I}", "worker", w->name, base, "pid",
                  sup_pid_str(sup_self(self), pid, sizeof pid), "frames_in",
                  (json_int_t)w->stats.frames_in, "frames_out", (json_int_t)w->stats.frames_out);
    if (o != NULL && more != NULL) {
        more(o, state, sup_rt_now(w->rt));
    }
    char *text = o ? json_dumps(o, JSON_COMPACT) : NULL;
    json_decref(o);
    if (text == NULL) {
        sup_reply(w->rt, sup_msg_from(m), NULL, 0);
        return;
    }
    sup_reply(w->rt, sup_msg_from(m), text, strlen(text) + 1);
    free(text);
}

void peer_worker_call(sup_actor *self, peer_worker *w, const sup_msg *m, peer_worker_json_fn more,
                      void *state)
{
    if (m->tag == PEER_INFO) {
        sup_reply(w->rt, sup_msg_from(m), &w->stats, sizeof w->stats);
    } else if (m->tag == PEER_JSON) {
        peer_worker__json(self, w, m, more, state);
    } else {
        sup_reply(w->rt, sup_msg_from(m), NULL, 0);
    }
}

int peer_worker_spawn(sup_rt *rt, sup_pid parent, const sup_behaviour *b, void *arg, sup_pid *out,
                      sup_reason *why)
{
    return sup_spawn(rt, parent, b, arg, SUP_SPAWN_LINK, out, why);
}
