/* flow/core/flow_queue.c — weighted priority queue (flow_queue.h). */
#include "flow/core/flow_queue.h"

#include <string.h>

const int flow_queue_default_weights[FLOW_QUEUE_CLASSES] = {100, 50, 10};

void flow_queue_init(flow_queue *q, const int *weights)
{
    memset(q, 0, sizeof *q);
    for (int c = 0; c < FLOW_QUEUE_CLASSES; c++) {
        q->weight[c] = weights && weights[c] > 0 ? weights[c] : flow_queue_default_weights[c];
    }
}

void flow_queue_push(flow_queue *q, flow_qnode *n, int prio, int lane, uint64_t seq)
{
    n->prio = (unsigned char)prio;
    n->lane = (unsigned char)lane;
    n->seq = seq;
    n->queued = true;
    /* walk back from the tail to the last node with a smaller sequence number */
    flow_qnode *after = q->tail[prio][lane];
    while (after && after->seq > seq) {
        after = after->prev;
    }
    n->prev = after;
    n->next = after ? after->next : q->head[prio][lane];
    if (n->next) {
        n->next->prev = n;
    } else {
        q->tail[prio][lane] = n;
    }
    if (after) {
        after->next = n;
    } else {
        q->head[prio][lane] = n;
    }
    q->count[prio]++;
    q->total++;
}

void flow_queue_remove(flow_queue *q, flow_qnode *n)
{
    if (!n->queued) {
        return;
    }
    if (n->prev) {
        n->prev->next = n->next;
    } else {
        q->head[n->prio][n->lane] = n->next;
    }
    if (n->next) {
        n->next->prev = n->prev;
    } else {
        q->tail[n->prio][n->lane] = n->prev;
    }
    n->prev = n->next = NULL;
    n->queued = false;
    q->count[n->prio]--;
    q->total--;
}

/* The eligible head with the smallest sequence number in class c, or NULL. */
static flow_qnode *flow_queue__best(const flow_queue *q, int c, flow_lane_ok_fn ok, void *user)
{
    flow_qnode *best = NULL;
    for (int l = 0; l < FLOW_QUEUE_LANES; l++) {
        flow_qnode *h = q->head[c][l];
        if (h && (ok == NULL || ok(l, user)) && (best == NULL || h->seq < best->seq)) {
            best = h;
        }
    }
    return best;
}

flow_qnode *flow_queue_pick(flow_queue *q, flow_lane_ok_fn ok, void *user)
{
    flow_qnode *cand[FLOW_QUEUE_CLASSES];
    int64_t sum = 0;
    int chosen = -1;
    for (int c = 0; c < FLOW_QUEUE_CLASSES; c++) {
        cand[c] = q->count[c] ? flow_queue__best(q, c, ok, user) : NULL;
        if (cand[c]) {
            q->cur[c] += q->weight[c];
            sum += q->weight[c];
            if (chosen < 0 || q->cur[c] > q->cur[chosen]) {
                chosen = c;
            }
        }
    }
    if (chosen < 0) {
        return NULL;
    }
    q->cur[chosen] -= sum;
    flow_qnode *n = cand[chosen];
    flow_queue_remove(q, n);
    return n;
}
