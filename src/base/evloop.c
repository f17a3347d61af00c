/* src/base/evloop.c — a libuv loop that polls briefly before it sleeps (see evloop.h). */
#include "base/evloop.h"

#include <poll.h>
#include <sched.h>
#include <time.h>

static uint64_t evloop__now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

void evloop_init(evloop *e, uv_loop_t *loop, uint32_t max_us)
{
    *e = (evloop){.loop = loop};
    if (max_us > EVLOOP_POLL_MAX_US) {
        max_us = EVLOOP_POLL_MAX_US;
    }
    e->max_ns = (uint64_t)max_us * 1000u;
    if (loop != NULL && e->max_ns > 0) {
        /* the time blocked in epoll_wait, so a wait is measured without the callbacks' work */
        (void)uv_loop_configure(loop, UV_METRICS_IDLE_TIME);
    }
}

void evloop_adapt(evloop *e, bool hit, uint64_t waited_ns)
{
    if (hit || e->max_ns == 0) {
        return; /* the window caught the event: it is long enough */
    }
    uint64_t start = e->max_ns / 4;
    if (waited_ns <= e->max_ns) {
        /* the event came soon after the window ran out: a longer one would have caught it */
        uint64_t w = e->win_ns == 0 ? start : e->win_ns * 2;
        e->win_ns = w > e->max_ns ? e->max_ns : w;
    } else {
        /* events are further apart than polling is worth */
        uint64_t w = e->win_ns / 2;
        e->win_ns = w < start ? 0 : w;
    }
}

/* Whether the loop has something to do right now: a due timer, or idle work queued. */
static bool evloop__due(uv_loop_t *loop)
{
    uv_update_time(loop);
    return uv_backend_timeout(loop) == 0;
}

/* Polls the backend until it has an event, something is due, or the window ends. Returns
 * whether something arrived; *now is the time it stopped. Each round yields the CPU: a task
 * that is runnable here (another node, a client, the process that will send the next event)
 * runs at once instead of waiting for this one's time slice to end. */
static bool evloop__poll(evloop *e, uint64_t t0, uint64_t *now)
{
    struct pollfd p = {.fd = uv_backend_fd(e->loop), .events = POLLIN};
    for (;;) {
        if (poll(&p, 1, 0) > 0) {
            *now = evloop__now();
            return true;
        }
        *now = evloop__now();
        if (*now - t0 >= e->win_ns) {
            return false;
        }
        if (evloop__due(e->loop)) {
            return true;
        }
        sched_yield();
    }
}

int evloop_run(evloop *e)
{
    if (e->stop) {
        /* stopped before it ran: return at once, as uv_run does after an earlier uv_stop (this
         * uv_run only takes the loop's stop flag back) */
        e->stop = false;
        return uv_run(e->loop, UV_RUN_NOWAIT);
    }
    if (e->max_ns == 0) {
        int r = uv_run(e->loop, UV_RUN_DEFAULT);
        e->stop = false;
        return r;
    }
    int alive = 1;
    while (!e->stop) {
        alive = uv_run(e->loop, UV_RUN_NOWAIT);
        if (alive == 0 || e->stop) {
            break;
        }
        if (evloop__due(e->loop)) {
            continue; /* more work is already queued */
        }
        uint64_t t0 = evloop__now();
        if (e->win_ns > 0) {
            uint64_t t1;
            bool hit = evloop__poll(e, t0, &t1);
            e->stats.polls++;
            e->stats.poll_ns += t1 - t0;
            if (hit) {
                e->stats.hits++;
                evloop_adapt(e, true, t1 - t0);
                continue;
            }
        }
        /* the wait: the poll window, then the time blocked in the kernel until the event (not
         * the callbacks it ran, which may take longer than any window) */
        uint64_t idle0 = uv_metrics_idle_time(e->loop);
        alive = uv_run(e->loop, UV_RUN_ONCE);
        uint64_t blocked = uv_metrics_idle_time(e->loop) - idle0;
        if (blocked > 0) {
            e->stats.sleeps++;
        }
        evloop_adapt(e, false, e->win_ns + blocked);
        if (alive == 0) {
            break;
        }
    }
    e->stop = false; /* honoured: the next run starts afresh */
    return alive;
}

void evloop_stop(evloop *e)
{
    e->stop = true;
    uv_stop(e->loop);
}
