/*
 * src/mesh/peer/advertisement_manager.c — macula_advertisement_manager (peer.h): the procedures
 * this peer is known to provide, as macula_gateway_rpc learns them (PEER_ADV_NOTE): a DHT
 * lookup of "rpc:P" named the peer (source "lookup"), or the peer answered a call to P
 * ("answered", counted). An entry is forgotten when the peer answers no_handler for P
 * (withdrawn) or after PEER_ADV_TTL_MS without a sighting (the advertisement's own TTL); at
 * most PEER_ADV_MAX entries, the least recently seen making room. A fixed table in the
 * actor's state: no allocation per note.
 */
#include <jansson.h>
#include <string.h>

#include "peer_worker.h"

typedef struct adv_entry {
    uint64_t learned_ms; /* 0: free */
    uint64_t seen_ms;
    uint64_t answered;
    uint8_t source; /* the first peer_adv_kind that named it */
    uint8_t len;
    char name[PEER_ADV_NAME_MAX];
} adv_entry;

typedef struct advertisement_manager_state {
    peer_worker w;
    uint64_t learned, withdrawn, expired;
    adv_entry e[PEER_ADV_MAX];
} advertisement_manager_state;

static int advertisement_manager__init(sup_actor *self, void *state, void *arg)
{
    advertisement_manager_state *s = state;
    return peer_worker_init(self, &s->w, "macula_advertisement_manager", arg);
}

static void advertisement_manager__expire(advertisement_manager_state *s, uint64_t now)
{
    for (size_t i = 0; i < PEER_ADV_MAX; i++) {
        if (s->e[i].learned_ms != 0 && now - s->e[i].seen_ms >= PEER_ADV_TTL_MS) {
            s->e[i].learned_ms = 0;
            s->expired++;
        }
    }
}

static void advertisement_manager__note(advertisement_manager_state *s, const peer_adv_note *n,
                                        uint64_t now)
{
    if (n->name_len == 0 || n->name_len > PEER_ADV_NAME_MAX) {
        return;
    }
    advertisement_manager__expire(s, now);
    adv_entry *hit = NULL, *free_slot = NULL, *stalest = NULL;
    for (size_t i = 0; i < PEER_ADV_MAX; i++) {
        adv_entry *e = &s->e[i];
        if (e->learned_ms == 0) {
            free_slot = free_slot ? free_slot : e;
        } else if (e->len == n->name_len && memcmp(e->name, n->name, e->len) == 0) {
            hit = e;
        } else if (stalest == NULL || e->seen_ms < stalest->seen_ms) {
            stalest = e;
        }
    }
    if (n->kind == PEER_ADV_NO_HANDLER) {
        if (hit != NULL) {
            hit->learned_ms = 0;
            s->withdrawn++;
        }
        return;
    }
    if (n->kind != PEER_ADV_LOOKUP && n->kind != PEER_ADV_ANSWERED) {
        return;
    }
    if (hit == NULL) {
        hit = free_slot ? free_slot : stalest;
        memset(hit, 0, sizeof *hit);
        hit->learned_ms = now > 0 ? now : 1;
        hit->source = n->kind;
        hit->len = n->name_len;
        memcpy(hit->name, n->name, n->name_len);
        s->learned++;
    }
    hit->seen_ms = now;
    if (n->kind == PEER_ADV_ANSWERED) {
        hit->answered++;
    }
}

static void advertisement_manager__info(sup_actor *self, void *state, const sup_msg *m)
{
    advertisement_manager_state *s = state;
    if (m->kind == SUP_MSG_INFO && m->tag == PEER_ADV_NOTE && m->len == sizeof(peer_adv_note)) {
        peer_adv_note n;
        memcpy(&n, m->data, sizeof n);
        advertisement_manager__note(s, &n, sup_rt_now(s->w.rt));
        return;
    }
    (void)peer_worker_info(self, &s->w, m);
}

static void advertisement_manager__json(json_t *o, void *state, uint64_t now)
{
    advertisement_manager_state *s = state;
    advertisement_manager__expire(s, now);
    json_t *list = json_array();
    for (size_t i = 0; i < PEER_ADV_MAX && list != NULL; i++) {
        const adv_entry *e = &s->e[i];
        if (e->learned_ms == 0) {
            continue;
        }
        json_array_append_new(
            list, json_pack("{s:s%, s:s, s:I, s:I, s:I}", "procedure", e->name, (size_t)e->len,
                            "source", e->source == PEER_ADV_LOOKUP ? "lookup" : "answered",
                            "age_ms", (json_int_t)(now - e->learned_ms), "seen_ms_ago",
                            (json_int_t)(now - e->seen_ms), "answered", (json_int_t)e->answered));
    }
    json_object_set_new(o, "procedures", list ? list : json_null());
    json_object_set_new(o, "learned", json_integer((json_int_t)s->learned));
    json_object_set_new(o, "withdrawn", json_integer((json_int_t)s->withdrawn));
    json_object_set_new(o, "expired", json_integer((json_int_t)s->expired));
}

static void advertisement_manager__call(sup_actor *self, void *state, const sup_msg *m)
{
    advertisement_manager_state *s = state;
    peer_worker_call(self, &s->w, m, advertisement_manager__json, s);
}

static const sup_behaviour advertisement_manager_behaviour = {
    .name = "macula_advertisement_manager",
    .state_size = sizeof(advertisement_manager_state),
    .init = advertisement_manager__init,
    .handle_call = advertisement_manager__call,
    .handle_info = advertisement_manager__info,
};

int peer_advertisement_manager_start(sup_rt *rt, sup_pid parent, void *arg, void *extra,
                                     sup_pid *out, sup_reason *why)
{
    (void)extra;
    return peer_worker_spawn(rt, parent, &advertisement_manager_behaviour, arg, out, why);
}
