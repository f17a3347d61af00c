/*
 * flow/core/flow_queue.h — the priority task queue of a swarm (FLOW.md "Queue"), pure logic.
 *
 * Three priority classes (high, normal, low) served by smooth weighted round robin with the
 * weights 100 / 50 / 10: every class that has work gains its weight each pick, the class with
 * the largest running total is served and pays the sum of the weights of the classes that
 * took part. Over any window in which all classes stay non-empty the service ratio is exactly
 * the weight ratio (160 picks: 100 high, 50 normal, 10 low), and a non-empty class is served
 * at least once every sum/weight picks, so low priority is never starved.
 *
 * Inside a class, tasks sit in one of four lanes by the role they require (any, worker,
 * specialist, scout) so that a task whose role has no free agent never blocks the others; a
 * pick takes, among the lanes the caller accepts, the task with the smallest sequence number
 * (submission order). A requeued task keeps its sequence number and so returns to its place.
 *
 * Nodes are embedded in the caller's task records; the queue never allocates.
 */
#ifndef MACULA_FLOW_QUEUE_H
#define MACULA_FLOW_QUEUE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define FLOW_QUEUE_CLASSES 3
#define FLOW_QUEUE_LANES 4

typedef struct flow_qnode {
    struct flow_qnode *prev, *next;
    uint64_t seq;       /* order inside a lane: smaller first */
    unsigned char prio; /* class 0..2 (0 = high) */
    unsigned char lane; /* 0 = any role, 1 + role */
    bool queued;
} flow_qnode;

typedef struct flow_queue {
    flow_qnode *head[FLOW_QUEUE_CLASSES][FLOW_QUEUE_LANES];
    flow_qnode *tail[FLOW_QUEUE_CLASSES][FLOW_QUEUE_LANES];
    size_t count[FLOW_QUEUE_CLASSES];
    size_t total;
    int64_t cur[FLOW_QUEUE_CLASSES]; /* smooth WRR running totals (part of the state) */
    int weight[FLOW_QUEUE_CLASSES];
} flow_queue;

/* Default weights: high 100, normal 50, low 10. */
extern const int flow_queue_default_weights[FLOW_QUEUE_CLASSES];

/* weights: NULL for the defaults; each must be >= 1. */
void flow_queue_init(flow_queue *q, const int *weights);
/* Inserts n (not queued) into class prio, lane, ordered by seq (appending is O(1)). */
void flow_queue_push(flow_queue *q, flow_qnode *n, int prio, int lane, uint64_t seq);
/* Removes a queued node (cancel). No-op when n is not queued. */
void flow_queue_remove(flow_queue *q, flow_qnode *n);

/* Which lanes the caller can serve now (e.g. lanes whose role has a free agent). */
typedef bool (*flow_lane_ok_fn)(int lane, void *user);
/* Picks, removes and returns the next node by weight among lanes accepted by ok (NULL: all),
 * updating the running totals; NULL when nothing eligible is queued. */
flow_qnode *flow_queue_pick(flow_queue *q, flow_lane_ok_fn ok, void *user);
/* The head of a lane (no removal), or NULL. */
static inline flow_qnode *flow_queue_head(const flow_queue *q, int prio, int lane)
{
    return q->head[prio][lane];
}

#endif
