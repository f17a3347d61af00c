/* src/mesh/peer/peer_worker.c — the peer workers' common part (see peer_worker.h). */
#include "peer_worker.h"

#include <stdio.h>
#include <string.h>

void peer_name(const char *base, const uint8_t id[32], char *out, size_t cap)
{
    char hex[17];
    for (int i = 0; i < 8; i++) {
        snprintf(hex + (size_t)2 * i, 3, "%02x", id[i]);
    }
    snprintf(out, cap, "%s:%s", base, hex);
}

sup_pid peer_whereis(const sup_rt *rt, const char *base, const uint8_t id[32])
{
    char name[64];
    peer_name(base, id, name, sizeof name);
    return sup_whereis(rt, name);
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

void peer_worker_call(sup_actor *self, peer_worker *w, const sup_msg *m)
{
    (void)self;
    if (m->tag == PEER_INFO) {
        sup_reply(w->rt, sup_msg_from(m), &w->stats, sizeof w->stats);
    } else {
        sup_reply(w->rt, sup_msg_from(m), NULL, 0);
    }
}

int peer_worker_spawn(sup_rt *rt, sup_pid parent, const sup_behaviour *b, void *arg, sup_pid *out,
                      sup_reason *why)
{
    return sup_spawn(rt, parent, b, arg, SUP_SPAWN_LINK, out, why);
}
