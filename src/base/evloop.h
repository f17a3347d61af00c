/*
 * src/base/evloop.h — runs a libuv loop, polling for a short, adaptive window before it sleeps.
 *
 * A loop that sleeps in epoll_wait between events pays for a wake-up each time: the kernel
 * wakes the thread, and on a virtual machine the vCPU it sleeps on is halted, so the sender
 * also pays an inter-processor interrupt through the hypervisor. On the 2-vCPU development VM
 * that is 20-30 µs per wake-up, more than the node's own work for an RPC leg. evloop looks
 * at the loop's backend (its epoll descriptor) without sleeping for up to a window after each
 * turn; an event that arrives in the window is handled with no wake-up at all.
 *
 * The window adapts as Linux's cpuidle-haltpoll governor does (Documentation/virt/guest-halt-
 * polling.rst): after a poll that ran out and a sleep, a total wait no longer than the largest
 * window means polling a little longer would have caught the event, so the window doubles
 * (starting at a quarter of the largest); a longer wait means events are far apart, so the
 * window halves and, below the starting value, drops to zero. A node whose events come more
 * than the largest window apart therefore sleeps exactly as a plain loop does, and never polls
 * for more than the largest window per event. Erlang's schedulers (+sbwt) and Go's runtime
 * spin before they sleep for the same reason.
 *
 * The controller (evloop_adapt) is pure: it takes what happened and the elapsed time, so tests
 * drive it with made-up times. evloop_run is the only part that does I/O.
 */
#ifndef MACULA_BASE_EVLOOP_H
#define MACULA_BASE_EVLOOP_H

#include <stdbool.h>
#include <stdint.h>

#include <uv.h>

#define EVLOOP_POLL_MAX_US 10000u /* the largest window a user may ask for: 10 ms */

typedef struct evloop_stats {
    uint64_t polls;   /* poll windows started */
    uint64_t hits;    /* of them, windows that ended with work instead of a sleep: an event
                       * arrived, or a timer came due */
    uint64_t sleeps;  /* times the loop blocked in the kernel (epoll_wait) */
    uint64_t poll_ns; /* time spent polling: the CPU the feature costs */
} evloop_stats;

typedef struct evloop {
    uv_loop_t *loop;
    uint64_t max_ns; /* the largest window; 0: never poll (a plain uv_run) */
    uint64_t win_ns; /* the current window, 0 or between max_ns / 4 and max_ns */
    bool stop;       /* set by evloop_stop, cleared when evloop_run returns for it */
    evloop_stats stats;
} evloop;

/* Prepares e to run loop, polling at most max_us (capped at EVLOOP_POLL_MAX_US) per wait;
 * 0 disables polling. The window starts at zero: it grows only once events come close. With
 * polling it turns on the loop's UV_METRICS_IDLE_TIME (how long it blocks in the kernel). */
void evloop_init(evloop *e, uv_loop_t *loop, uint32_t max_us);

/* The controller. hit: an event arrived within the poll window; waited_ns: how long the loop
 * waited for the event, from the end of the previous turn: the poll window and then the time
 * blocked in the kernel (not the time callbacks took). Changes e->win_ns only. */
void evloop_adapt(evloop *e, bool hit, uint64_t waited_ns);

/* Runs the loop until evloop_stop is called or nothing keeps it alive. Returns what the last
 * uv_run returned (non-zero: handles are still active). With max_us 0 this is
 * uv_run(UV_RUN_DEFAULT). Only evloop_stop ends a polling run: a bare uv_stop(loop) ends one
 * turn, and the loop goes on (use evloop_stop wherever the loop is run by evloop_run). */
int evloop_run(evloop *e);

/* Ends evloop_run after the current callback returns (safe to call from any callback), or,
 * called while no run is going on, makes the next evloop_run return at once. */
void evloop_stop(evloop *e);

#endif
