/* tests/unit/test_evloop.c — the poll-before-sleep loop (src/base/evloop.h): the window
 * controller fed made-up times, and the real loop against a ping-pong peer thread. */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "base/evloop.h"

#define US UINT64_C(1000)

static void test_adapt_grows_and_caps(void **state)
{
    (void)state;
    evloop e;
    evloop_init(&e, NULL, 200);
    assert_int_equal(e.max_ns, 200 * US);
    assert_int_equal(e.win_ns, 0); /* nothing is polled before events come close */
    /* a sleep that ended soon (within the largest window): start at a quarter, then double */
    evloop_adapt(&e, false, 120 * US);
    assert_int_equal(e.win_ns, 50 * US);
    evloop_adapt(&e, false, 60 * US);
    assert_int_equal(e.win_ns, 100 * US);
    evloop_adapt(&e, false, 200 * US); /* exactly the largest window still counts as soon */
    assert_int_equal(e.win_ns, 200 * US);
    evloop_adapt(&e, false, 150 * US);
    assert_int_equal(e.win_ns, 200 * US); /* capped */
    /* a hit changes nothing */
    evloop_adapt(&e, true, 5 * US);
    assert_int_equal(e.win_ns, 200 * US);
}

static void test_adapt_shrinks_to_zero(void **state)
{
    (void)state;
    evloop e;
    evloop_init(&e, NULL, 200);
    e.win_ns = 200 * US;
    evloop_adapt(&e, false, 201 * US); /* events further apart than the largest window */
    assert_int_equal(e.win_ns, 100 * US);
    evloop_adapt(&e, false, 10000 * US);
    assert_int_equal(e.win_ns, 50 * US);
    evloop_adapt(&e, false, 10000 * US);
    assert_int_equal(e.win_ns, 0); /* below the starting window: no polling at all */
    evloop_adapt(&e, false, 10000 * US);
    assert_int_equal(e.win_ns, 0);
    /* and it comes back once events are close again */
    evloop_adapt(&e, false, 30 * US);
    assert_int_equal(e.win_ns, 50 * US);
}

static void test_adapt_disabled_and_capped(void **state)
{
    (void)state;
    evloop e;
    evloop_init(&e, NULL, 0);
    evloop_adapt(&e, false, 1 * US);
    evloop_adapt(&e, false, 1 * US);
    assert_int_equal(e.win_ns, 0); /* 0 disables polling for good */
    evloop_init(&e, NULL, 1000000);
    assert_int_equal(e.max_ns, (uint64_t)EVLOOP_POLL_MAX_US * US);
}

/* ---- the real loop ---------------------------------------------------------------------- */

#define ROUNDS 2000

typedef struct pingpong {
    int fd[2]; /* fd[0]: the loop's end, fd[1]: the peer thread's end */
    uv_poll_t poll;
    evloop *e;
    int rounds;
    uint64_t work_ns; /* how long each callback works before it answers */
} pingpong;

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* The peer: sends a byte, waits for the answer, ROUNDS times. */
static void *peer_main(void *arg)
{
    pingpong *p = arg;
    char c = 'x';
    for (int i = p->rounds; i < ROUNDS; i++) {
        if (write(p->fd[1], &c, 1) != 1 || read(p->fd[1], &c, 1) != 1) {
            break;
        }
    }
    return NULL;
}

static void on_readable(uv_poll_t *h, int status, int events)
{
    (void)events;
    pingpong *p = h->data;
    char c;
    assert_int_equal(status, 0);
    if (read(p->fd[0], &c, 1) != 1) {
        return;
    }
    for (uint64_t t0 = now_ns(); now_ns() - t0 < p->work_ns;) {
        /* a turn that works longer than the largest window */
    }
    assert_int_equal(write(p->fd[0], &c, 1), 1);
    if (++p->rounds == ROUNDS) {
        evloop_stop(p->e);
    }
}

static void run_pingpong(uint32_t max_us, uint64_t work_ns, int rounds, evloop *e, pingpong *p)
{
    uv_loop_t loop;
    assert_int_equal(uv_loop_init(&loop), 0);
    evloop_init(e, &loop, max_us);
    *p = (pingpong){.e = e, .work_ns = work_ns, .rounds = ROUNDS - rounds};
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, p->fd), 0);
    assert_int_equal(uv_poll_init(&loop, &p->poll, p->fd[0]), 0);
    p->poll.data = p;
    assert_int_equal(uv_poll_start(&p->poll, UV_READABLE, on_readable), 0);
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, peer_main, p), 0);
    /* stopped from the callback while the poll handle is still active */
    assert_int_not_equal(evloop_run(e), 0);
    assert_int_equal(pthread_join(t, NULL), 0);
    assert_int_equal(p->rounds, ROUNDS);
    /* a stop asked for before a run ends that run at once */
    evloop_stop(e);
    assert_int_not_equal(evloop_run(e), 0);
    uv_close((uv_handle_t *)&p->poll, NULL);
    assert_int_equal(uv_run(&loop, UV_RUN_DEFAULT), 0);
    assert_int_equal(uv_loop_close(&loop), 0);
    close(p->fd[0]);
    close(p->fd[1]);
}

static void test_run_polls_catch_close_events(void **state)
{
    (void)state;
    evloop e;
    pingpong p;
    /* the peer answers within microseconds: with a 10 ms window nearly every wait is a hit */
    run_pingpong(EVLOOP_POLL_MAX_US, 0, ROUNDS, &e, &p);
    assert_true(e.stats.polls > 0);
    assert_true(e.stats.hits > 0);
    assert_true(e.stats.hits <= e.stats.polls);
    assert_true(e.stats.hits > e.stats.sleeps); /* the point: most events cost no wake-up */
    assert_true(e.stats.poll_ns > 0);
    assert_true(e.win_ns > 0);
}

static void test_run_without_polling(void **state)
{
    (void)state;
    evloop e;
    pingpong p;
    run_pingpong(0, 0, ROUNDS, &e, &p); /* a plain uv_run: same results, no polling */
    assert_int_equal(e.stats.polls, 0);
    assert_int_equal(e.stats.hits, 0);
    assert_int_equal(e.stats.poll_ns, 0);
}

/* Each turn works 1.5 ms, longer than the 1 ms window, and the next event comes right after
 * it: the wait is measured from the end of the turn, so the loop still polls and catches it
 * (measuring from the start of the turn would shrink the window to nothing). */
static void test_run_long_turns_still_poll(void **state)
{
    (void)state;
    evloop e;
    pingpong p;
    run_pingpong(1000, 1500 * US, 200, &e, &p);
    assert_true(e.stats.hits > e.stats.sleeps);
    assert_true(e.win_ns > 0);
}

static void on_timer(uv_timer_t *t)
{
    int *n = t->data;
    if (++*n == 3) {
        uv_timer_stop(t);
    }
}

/* Events far apart (timers 20 ms apart, window at most 1 ms): the loop sleeps as a plain one
 * does and never polls; it returns once nothing keeps it alive. */
static void test_run_far_events_never_poll(void **state)
{
    (void)state;
    uv_loop_t loop;
    assert_int_equal(uv_loop_init(&loop), 0);
    evloop e;
    evloop_init(&e, &loop, 1000);
    uv_timer_t t;
    int n = 0;
    uv_timer_init(&loop, &t);
    t.data = &n;
    uv_timer_start(&t, on_timer, 20, 20);
    assert_int_equal(evloop_run(&e), 0);
    assert_int_equal(n, 3);
    assert_int_equal(e.stats.polls, 0);
    assert_true(e.stats.sleeps >= 3);
    assert_int_equal(e.win_ns, 0);
    uv_close((uv_handle_t *)&t, NULL);
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&loop), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_adapt_grows_and_caps),
        cmocka_unit_test(test_adapt_shrinks_to_zero),
        cmocka_unit_test(test_adapt_disabled_and_capped),
        cmocka_unit_test(test_run_polls_catch_close_events),
        cmocka_unit_test(test_run_without_polling),
        cmocka_unit_test(test_run_long_turns_still_poll),
        cmocka_unit_test(test_run_far_events_never_poll),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
