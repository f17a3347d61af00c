/*
 * flow/view.c — read-only views the flow actors publish for the node's HTTP endpoints
 * (flow_int.h "views").
 *
 * /metrics and /health run inside the HTTP server's callbacks on the runtime's thread, between
 * actor callbacks, where no call to an actor can wait for its answer. The registry publishes
 * its flow state and the metrics observer its latency histogram here in init and withdraws
 * them in terminate; readers on the same thread therefore always see live objects. Entries are
 * keyed by runtime (tests run several); the table is guarded by a mutex.
 */
#include <pthread.h>
#include <stddef.h>

#include "flow/flow_int.h"

#define FLOW_VIEW_MAX 64

typedef struct flow_view_entry {
    const sup_rt *rt;
    const void *ptr[FLOW_VIEW_SLOTS];
} flow_view_entry;

static flow_view_entry flow_view__table[FLOW_VIEW_MAX];
static pthread_mutex_t flow_view__lock = PTHREAD_MUTEX_INITIALIZER;

static flow_view_entry *flow_view__find(const sup_rt *rt)
{
    for (size_t i = 0; i < FLOW_VIEW_MAX; i++) {
        if (flow_view__table[i].rt == rt) {
            return &flow_view__table[i];
        }
    }
    return NULL;
}

/* Sets (rt, slot) to ptr when it holds `expect` (or always when set is true). */
static void flow_view__put(const sup_rt *rt, flow_view_slot slot, const void *ptr,
                           const void *expect, bool set)
{
    if (rt == NULL || (unsigned)slot >= FLOW_VIEW_SLOTS) {
        return;
    }
    pthread_mutex_lock(&flow_view__lock);
    flow_view_entry *e = flow_view__find(rt);
    if (e == NULL && ptr != NULL && (e = flow_view__find(NULL)) != NULL) {
        e->rt = rt;
    }
    if (e != NULL && (set || e->ptr[slot] == expect)) {
        e->ptr[slot] = ptr;
        bool empty = true;
        for (size_t s = 0; s < FLOW_VIEW_SLOTS; s++) {
            empty &= e->ptr[s] == NULL;
        }
        if (empty) {
            e->rt = NULL;
        }
    }
    pthread_mutex_unlock(&flow_view__lock);
}

void flow_view_set(const sup_rt *rt, flow_view_slot slot, const void *ptr)
{
    flow_view__put(rt, slot, ptr, NULL, true);
}

void flow_view_clear(const sup_rt *rt, flow_view_slot slot, const void *ptr)
{
    flow_view__put(rt, slot, NULL, ptr, false);
}

const void *flow_view_get(const sup_rt *rt, flow_view_slot slot)
{
    if ((unsigned)slot >= FLOW_VIEW_SLOTS) {
        return NULL;
    }
    pthread_mutex_lock(&flow_view__lock);
    const flow_view_entry *e = flow_view__find(rt);
    const void *p = e ? e->ptr[slot] : NULL;
    pthread_mutex_unlock(&flow_view__lock);
    return p;
}
