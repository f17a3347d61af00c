/*
 * flow/core/request_tracker.c — erlmcp_flow_request_tracker: pending requests by task id
 * (UUID) with a deadline (seed 002: "UUID → pending request"). A task_result that waits is
 * parked here; when the registry reports the task finished, every waiter gets the task; a
 * waiter whose deadline passes first gets a `timeout` error.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "flow/flow_int.h"

typedef struct rt_waiter {
    uint64_t id;
    char task[FLOW_ID_MAX];
    sup_from from;
    uint64_t timer;
    uint64_t waited_ms;
} rt_waiter;

typedef struct rt_state {
    rt_waiter *w;
    size_t n, cap;
    uint64_t next_id;
    uint64_t answered, timed_out;
} rt_state;

static void rt__drop(rt_state *st, size_t i)
{
    st->w[i] = st->w[--st->n];
}

static void tr_cast(sup_actor *self, void *state, const sup_msg *m)
{
    rt_state *st = state;
    sup_rt *rt = sup_self_rt(self);
    if (m->tag == FLOW_TAG_WAIT && m->len > sizeof(flow_wait) &&
        m->len - sizeof(flow_wait) < FLOW_ID_MAX) {
        flow_wait hdr;
        memcpy(&hdr, m->data, sizeof hdr);
        if (st->n == st->cap) {
            size_t cap = st->cap ? st->cap * 2 : 16;
            rt_waiter *v = realloc(st->w, cap * sizeof *v);
            if (v == NULL) {
                flow__reply_err(rt, hdr.from, FLOW_ENOMEM, "out of memory");
                return;
            }
            st->w = v;
            st->cap = cap;
        }
        rt_waiter *w = &st->w[st->n++];
        memset(w, 0, sizeof *w);
        w->id = ++st->next_id;
        w->from = hdr.from;
        snprintf(w->task, sizeof w->task, "%.*s", (int)(m->len - sizeof hdr),
                 (const char *)m->data + sizeof hdr);
        uint64_t now = sup_rt_now(rt);
        w->waited_ms = hdr.deadline > now ? hdr.deadline - now : 0;
        w->timer = sup_send_after(self, w->waited_ms, FLOW_TAG_INTERNAL, &w->id, sizeof w->id);
    } else if (m->tag == FLOW_TAG_DONE) {
        json_t *view = flow__msg_json(m);
        const char *task = json_string_value(json_object_get(view, "id"));
        for (size_t i = 0; task && i < st->n;) {
            if (strcmp(st->w[i].task, task) == 0) {
                sup_cancel_timer(self, st->w[i].timer);
                flow__reply_ok(rt, st->w[i].from, json_incref(view));
                st->answered++;
                rt__drop(st, i);
            } else {
                i++;
            }
        }
        json_decref(view);
    }
}

static void tr_info(sup_actor *self, void *state, const sup_msg *m)
{
    rt_state *st = state;
    uint64_t id;
    if (m->kind != SUP_MSG_TIMER || m->len != sizeof id) {
        return;
    }
    memcpy(&id, m->data, sizeof id);
    for (size_t i = 0; i < st->n; i++) {
        if (st->w[i].id == id) {
            flow__reply_err(sup_self_rt(self), st->w[i].from, FLOW_ETIMEOUT,
                            "task %s did not finish within %llu ms", st->w[i].task,
                            (unsigned long long)st->w[i].waited_ms);
            st->timed_out++;
            rt__drop(st, i);
            return;
        }
    }
}

static int tr_init(sup_actor *self, void *state, void *arg)
{
    (void)state;
    (void)arg;
    sup_set_label(self, FLOW_N_TRACKER);
    return 0;
}

static void tr_terminate(sup_actor *self, void *state, const sup_reason *reason)
{
    (void)self;
    (void)reason;
    free(((rt_state *)state)->w);
}

static const sup_behaviour tr_behaviour = {
    .name = FLOW_N_TRACKER,
    .state_size = sizeof(rt_state),
    .init = tr_init,
    .handle_cast = tr_cast,
    .handle_info = tr_info,
    .terminate = tr_terminate,
};

FLOW_NAMED_START(flow_tracker_start, tr_behaviour, FLOW_N_TRACKER)
