/*
 * src/mesh/peer/rpc_handler.c — macula_rpc_handler (peer.h): RPC traffic with this peer, as
 * macula_gateway_rpc reports it (PEER_RPC_NOTE): the RPC_ROUTE calls sent to it and received
 * from it that wait for their reply, by call id, with procedure, direction and age; replies,
 * results and errors each way; casts. The table is fixed-size (no allocation per call): a call
 * leaves it when its reply passes through this peer, when macula_gateway_rpc says it ended
 * elsewhere (PEER_RPC_GONE), after PEER_RPC_EXPIRE_MS without word (a routed call whose
 * reply took another path), or, when the table is full, as the oldest entry. Frame counts of
 * the pool connection (PEER_FRAME_IN / OUT) are kept as by every peer worker.
 *
 * Nothing here is needed for a call to complete: a crash loses this peer's accounting and
 * nothing else.
 */
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "peer_worker.h"

typedef struct rpc_call {
    uint64_t since_ms; /* 0: free slot */
    uint8_t dir;       /* PEER_RPC_CALL_OUT or PEER_RPC_CALL_IN */
    uint8_t id_len;
    uint8_t proc_len;
    uint8_t id[PEER_CALL_ID_MAX];
    char proc[PEER_PROC_MAX];
} rpc_call;

typedef struct rpc_counts {
    uint64_t calls_out, calls_in, casts_out, casts_in;
    uint64_t results_in, errors_in, results_out, errors_out;
    uint64_t answered_elsewhere, failed, expired, evicted;
} rpc_counts;

typedef struct rpc_handler_state {
    peer_worker w;
    rpc_counts n;
    uint32_t used;
    rpc_call calls[PEER_RPC_INFLIGHT_MAX];
} rpc_handler_state;

static int rpc_handler__init(sup_actor *self, void *state, void *arg)
{
    rpc_handler_state *s = state;
    return peer_worker_init(self, &s->w, "macula_rpc_handler", arg);
}

/* The slot of call id (in direction dir; 0: either), or NULL. */
static rpc_call *rpc_handler__find(rpc_handler_state *s, const peer_rpc_note *n, uint8_t dir)
{
    for (size_t i = 0; i < PEER_RPC_INFLIGHT_MAX && s->used > 0; i++) {
        rpc_call *c = &s->calls[i];
        if (c->since_ms != 0 && (dir == 0 || c->dir == dir) && c->id_len == n->call_id_len &&
            memcmp(c->id, n->call_id, c->id_len) == 0) {
            return c;
        }
    }
    return NULL;
}

static void rpc_handler__drop(rpc_handler_state *s, rpc_call *c)
{
    c->since_ms = 0;
    s->used--;
}

static void rpc_handler__expire(rpc_handler_state *s, uint64_t now)
{
    for (size_t i = 0; i < PEER_RPC_INFLIGHT_MAX && s->used > 0; i++) {
        rpc_call *c = &s->calls[i];
        if (c->since_ms != 0 && now - c->since_ms >= PEER_RPC_EXPIRE_MS) {
            rpc_handler__drop(s, c);
            s->n.expired++;
        }
    }
}

static void rpc_handler__add(rpc_handler_state *s, const peer_rpc_note *n, uint64_t now)
{
    if (n->call_id_len == 0) {
        return;
    }
    rpc_call *c = rpc_handler__find(s, n, n->kind);
    if (c == NULL) { /* a free slot, else the oldest */
        rpc_call *oldest = NULL;
        for (size_t i = 0; i < PEER_RPC_INFLIGHT_MAX && c == NULL; i++) {
            if (s->calls[i].since_ms == 0) {
                c = &s->calls[i];
            } else if (oldest == NULL || s->calls[i].since_ms < oldest->since_ms) {
                oldest = &s->calls[i];
            }
        }
        if (c == NULL) {
            c = oldest;
            rpc_handler__drop(s, c);
            s->n.evicted++;
        }
        s->used++;
    }
    c->since_ms = now > 0 ? now : 1;
    c->dir = n->kind;
    c->id_len = n->call_id_len;
    memcpy(c->id, n->call_id, n->call_id_len);
    c->proc_len = n->proc_len;
    memcpy(c->proc, n->procedure, n->proc_len);
}

static void rpc_handler__note(rpc_handler_state *s, const peer_rpc_note *n, uint64_t now)
{
    if (n->call_id_len > PEER_CALL_ID_MAX || n->proc_len > PEER_PROC_MAX) {
        return;
    }
    rpc_handler__expire(s, now);
    rpc_call *c;
    switch (n->kind) {
    case PEER_RPC_CALL_OUT:
        s->n.calls_out++;
        rpc_handler__add(s, n, now);
        break;
    case PEER_RPC_CALL_IN:
        s->n.calls_in++;
        rpc_handler__add(s, n, now);
        break;
    case PEER_RPC_CAST_OUT: s->n.casts_out++; break;
    case PEER_RPC_CAST_IN: s->n.casts_in++; break;
    case PEER_RPC_REPLY_IN: /* the answer to a call we sent to this peer */
        *(n->is_error ? &s->n.errors_in : &s->n.results_in) += 1;
        if ((c = rpc_handler__find(s, n, PEER_RPC_CALL_OUT)) != NULL) {
            rpc_handler__drop(s, c);
        }
        break;
    case PEER_RPC_REPLY_OUT: /* our answer to a call this peer sent us */
        *(n->is_error ? &s->n.errors_out : &s->n.results_out) += 1;
        if ((c = rpc_handler__find(s, n, PEER_RPC_CALL_IN)) != NULL) {
            rpc_handler__drop(s, c);
        }
        break;
    case PEER_RPC_GONE:
        if ((c = rpc_handler__find(s, n, PEER_RPC_CALL_OUT)) != NULL) {
            rpc_handler__drop(s, c);
            *(n->is_error ? &s->n.failed : &s->n.answered_elsewhere) += 1;
        }
        break;
    default: break;
    }
}

static void rpc_handler__info(sup_actor *self, void *state, const sup_msg *m)
{
    rpc_handler_state *s = state;
    if (m->kind == SUP_MSG_INFO && m->tag == PEER_RPC_NOTE && m->len == sizeof(peer_rpc_note)) {
        peer_rpc_note n;
        memcpy(&n, m->data, sizeof n);
        rpc_handler__note(s, &n, sup_rt_now(s->w.rt));
        return;
    }
    (void)peer_worker_info(self, &s->w, m);
}

static int rpc_handler__older(const void *a, const void *b)
{
    const rpc_call *x = *(const rpc_call *const *)a, *y = *(const rpc_call *const *)b;
    return x->since_ms < y->since_ms ? -1 : x->since_ms > y->since_ms;
}

static void rpc_handler__json(json_t *o, void *state, uint64_t now)
{
    static const char digits[] = "0123456789abcdef";
    rpc_handler_state *s = state;
    rpc_handler__expire(s, now);
    const rpc_counts *n = &s->n;
    struct {
        const char *k;
        uint64_t v;
    } kv[] = {{"calls_out", n->calls_out},
              {"calls_in", n->calls_in},
              {"casts_out", n->casts_out},
              {"casts_in", n->casts_in},
              {"results_in", n->results_in},
              {"errors_in", n->errors_in},
              {"results_out", n->results_out},
              {"errors_out", n->errors_out},
              {"answered_elsewhere", n->answered_elsewhere},
              {"failed", n->failed},
              {"expired", n->expired},
              {"evicted", n->evicted},
              {"in_flight_count", s->used}};
    for (size_t i = 0; i < sizeof kv / sizeof kv[0]; i++) {
        json_object_set_new(o, kv[i].k, json_integer((json_int_t)kv[i].v));
    }
    /* The oldest PEER_RPC_JSON_INFLIGHT calls, oldest first. */
    const rpc_call *order[PEER_RPC_INFLIGHT_MAX] = {0};
    size_t cnt = 0;
    for (size_t i = 0; i < PEER_RPC_INFLIGHT_MAX; i++) {
        if (s->calls[i].since_ms != 0) {
            order[cnt++] = &s->calls[i];
        }
    }
    qsort(order, cnt, sizeof order[0], rpc_handler__older);
    json_t *list = json_array();
    for (size_t k = 0; k < cnt && k < PEER_RPC_JSON_INFLIGHT && list != NULL; k++) {
        const rpc_call *c = order[k];
        char id[2 * PEER_CALL_ID_MAX + 1];
        for (size_t i = 0; i < c->id_len; i++) {
            id[2 * i] = digits[c->id[i] >> 4];
            id[2 * i + 1] = digits[c->id[i] & 15];
        }
        id[2 * (size_t)c->id_len] = '\0';
        json_array_append_new(list, json_pack("{s:s, s:s%, s:s, s:I}", "call_id", id, "procedure",
                                              c->proc, (size_t)c->proc_len, "dir",
                                              c->dir == PEER_RPC_CALL_OUT ? "out" : "in", "age_ms",
                                              (json_int_t)(now - c->since_ms)));
    }
    json_object_set_new(o, "in_flight", list ? list : json_null());
}

static void rpc_handler__call(sup_actor *self, void *state, const sup_msg *m)
{
    rpc_handler_state *s = state;
    peer_worker_call(self, &s->w, m, rpc_handler__json, s);
}

static const sup_behaviour rpc_handler_behaviour = {
    .name = "macula_rpc_handler",
    .state_size = sizeof(rpc_handler_state),
    .init = rpc_handler__init,
    .handle_call = rpc_handler__call,
    .handle_info = rpc_handler__info,
};

int peer_rpc_handler_start(sup_rt *rt, sup_pid parent, void *arg, void *extra, sup_pid *out,
                           sup_reason *why)
{
    (void)extra;
    return peer_worker_spawn(rt, parent, &rpc_handler_behaviour, arg, out, why);
}
