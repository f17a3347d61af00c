/* tests/unit/test_runtime_envelopes.c — the runtime's message envelopes (src/sup/actor.c,
 * src/sup/internal.h): payloads of every size class and past the pooled sizes arrive intact
 * on every path (send, cast, call and reply, send_after), a reused block never shows an older
 * message's bytes, the mailbox memory accounting returns to its base, the envelope pools stay
 * within their bounds, and a runtime on a real libuv loop still drains its queue and fires its
 * timers when messages are sent from inside a run. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <uv.h>

#include "macula/sup.h"
#include "sup/internal.h"

enum { T_DATA = 1, T_ECHO_CALL, T_AFTER, T_HOLD, T_PASS, T_PEER };

/* Payload bytes: a function of the length and the position, so a message checks itself. */
static unsigned char pat(size_t len, size_t i)
{
    return (unsigned char)((len * 131u + i * 7u + (i >> 8)) & 0xff);
}

static unsigned char *payload(size_t len)
{
    unsigned char *p = malloc(len ? len : 1);
    assert_non_null(p);
    for (size_t i = 0; i < len; i++) {
        p[i] = pat(len, i);
    }
    return p;
}

static bool intact(const void *data, size_t len)
{
    const unsigned char *p = data;
    for (size_t i = 0; i < len; i++) {
        if (p[i] != pat(len, i)) {
            return false;
        }
    }
    return true;
}

/* What the checker saw, in order. */
static struct {
    size_t lens[256];
    sup_msg_kind kinds[256];
    const void *last; /* the payload pointer of the last message seen */
    int n;
    int bad;
} g;

static void checker_msg(sup_actor *self, void *state, const sup_msg *m)
{
    (void)state;
    if (m->kind == SUP_MSG_CALL && m->tag == T_ECHO_CALL) {
        if (!intact(m->data, m->len)) {
            g.bad++;
        }
        sup_reply(sup_self_rt(self), (sup_from){m->from, m->ref}, m->data, m->len);
        return;
    }
    if (m->kind == SUP_MSG_INFO && m->tag == T_AFTER) { /* arm a timer carrying the payload */
        size_t len;
        memcpy(&len, m->data, sizeof len);
        unsigned char *p = payload(len);
        sup_send_after(self, 10, T_DATA, p, len);
        free(p);
        return;
    }
    if (m->kind == SUP_MSG_INFO && m->tag == T_PEER) { /* call the peer with the payload */
        sup_pid peer;
        size_t len;
        memcpy(&peer, m->data, sizeof peer);
        memcpy(&len, (const char *)m->data + sizeof peer, sizeof len);
        unsigned char *p = payload(len);
        sup_call(self, peer, T_ECHO_CALL, p, len, 1000);
        free(p);
        return;
    }
    if (!intact(m->data, m->len)) {
        g.bad++;
    }
    g.last = m->data;
    if (g.n < 256) {
        g.lens[g.n] = m->len;
        g.kinds[g.n] = m->kind;
        g.n++;
    }
}

static const sup_behaviour checker_b = {.name = "checker",
                                        .handle_call = checker_msg,
                                        .handle_cast = checker_msg,
                                        .handle_info = checker_msg};

static sup_pid spawn_checker(sup_rt *rt)
{
    sup_pid p;
    assert_int_equal(sup_spawn(rt, SUP_NOPID, &checker_b, NULL, 0, &p, NULL), SUP_OK);
    return p;
}

/* Both sides of every class boundary, the largest pooled payload and beyond. */
static const size_t sizes[] = {0,   1,   39,  40,   41,   191,  192,  193,  320,   321,  448,
                               449, 960, 961, 1984, 1985, 4095, 4096, 4097, 10000, 70000};
enum { NSIZES = sizeof sizes / sizeof sizes[0] };

static void test_every_size_every_path(void **state)
{
    (void)state;
    memset(&g, 0, sizeof g);
    sup_rt *rt = sup_rt_new_virtual();
    sup_pid a = spawn_checker(rt), b = spawn_checker(rt);
    /* largest first, then smallest first: the second pass reuses blocks that held longer
     * messages, whose bytes must not show through */
    for (int pass = 0; pass < 2; pass++) {
        for (int k = 0; k < NSIZES; k++) {
            size_t len = sizes[pass == 0 ? NSIZES - 1 - k : k];
            unsigned char *p = payload(len);
            assert_int_equal(sup_send(rt, SUP_NOPID, a, T_DATA, p, len), SUP_OK);
            assert_int_equal(sup_cast(rt, SUP_NOPID, a, T_DATA, p, len), SUP_OK);
            free(p);
        }
        sup_rt_run(rt);
    }
    assert_int_equal(g.bad, 0);
    assert_int_equal(g.n, 4 * NSIZES);
    for (int pass = 0; pass < 2; pass++) {
        for (int k = 0; k < NSIZES; k++) {
            int at = pass * 2 * NSIZES + 2 * k;
            size_t len = sizes[pass == 0 ? NSIZES - 1 - k : k];
            assert_int_equal(g.lens[at], len);
            assert_int_equal(g.kinds[at], SUP_MSG_INFO);
            assert_int_equal(g.lens[at + 1], len);
            assert_int_equal(g.kinds[at + 1], SUP_MSG_CAST);
        }
    }
    /* call and reply: b calls a with the payload, a echoes it back */
    memset(&g, 0, sizeof g);
    for (int k = 0; k < NSIZES; k++) {
        char d[sizeof(sup_pid) + sizeof(size_t)];
        memcpy(d, &a, sizeof a);
        memcpy(d + sizeof a, &sizes[k], sizeof sizes[k]);
        sup_send(rt, SUP_NOPID, b, T_PEER, d, sizeof d);
    }
    sup_rt_run(rt);
    assert_int_equal(g.bad, 0);
    assert_int_equal(g.n, NSIZES);
    for (int k = 0; k < NSIZES; k++) {
        assert_int_equal(g.kinds[k], SUP_MSG_REPLY);
        assert_int_equal(g.lens[k], sizes[k]);
    }
    /* send_after: the timer's copy becomes an envelope when it fires */
    memset(&g, 0, sizeof g);
    for (int k = 0; k < NSIZES; k++) {
        sup_send(rt, SUP_NOPID, a, T_AFTER, &sizes[k], sizeof sizes[k]);
    }
    sup_rt_advance(rt, 100);
    assert_int_equal(g.bad, 0);
    assert_int_equal(g.n, NSIZES);
    for (int k = 0; k < NSIZES; k++) {
        assert_int_equal(g.kinds[k], SUP_MSG_TIMER);
        assert_int_equal(g.lens[k], sizes[k]);
    }
    sup_rt_free(rt);
}

/* ---- accounting ------------------------------------------------------------------------- */

static bool hold_filter(void *state, const sup_env *e)
{
    (void)state;
    return e->tag != T_HOLD;
}

static int holder_init(sup_actor *self, void *state, void *arg)
{
    (void)state;
    (void)arg;
    sup__set_filter(self, hold_filter);
    return 0;
}

static const sup_behaviour holder_b = {
    .name = "holder", .init = holder_init, .handle_cast = checker_msg, .handle_info = checker_msg};

static size_t actor_mem(sup_rt *rt, sup_pid p)
{
    sup_actor_info info;
    assert_int_equal(sup_actor_info_get(rt, p, &info), SUP_OK);
    return info.memory;
}

static size_t actor_mailbox(sup_rt *rt, sup_pid p)
{
    sup_actor_info info;
    assert_int_equal(sup_actor_info_get(rt, p, &info), SUP_OK);
    return info.mailbox_len;
}

/* A queued message counts at least its payload towards the receiver and the runtime, the two
 * agree, and everything comes back when it is consumed: in order, or out of the middle of the
 * mailbox by selective receive. */
static void test_mailbox_accounting(void **state)
{
    (void)state;
    memset(&g, 0, sizeof g);
    sup_rt *rt = sup_rt_new_virtual();
    sup_pid h;
    assert_int_equal(sup_spawn(rt, SUP_NOPID, &holder_b, NULL, 0, &h, NULL), SUP_OK);
    size_t base_a = actor_mem(rt, h), base_rt = sup_rt_memory(rt);
    size_t total = 0;
    for (int k = 0; k < NSIZES; k++) {
        unsigned char *p = payload(sizes[k]);
        size_t before = actor_mem(rt, h);
        /* held (the filter refuses it), then one that passes */
        sup_send(rt, SUP_NOPID, h, k % 2 ? T_HOLD : T_PASS, p, sizes[k]);
        size_t d = actor_mem(rt, h) - before;
        assert_true(d >= sizes[k] && d > 0);
        total += d;
        free(p);
    }
    assert_int_equal(actor_mem(rt, h), base_a + total);
    assert_int_equal(sup_rt_memory(rt), base_rt + total);
    assert_int_equal(actor_mailbox(rt, h), NSIZES);
    sup_rt_run(rt); /* delivers the T_PASS ones from between the held ones */
    assert_int_equal(g.n, (NSIZES + 1) / 2);
    assert_int_equal(actor_mailbox(rt, h), NSIZES / 2);
    assert_true(actor_mem(rt, h) > base_a);
    assert_int_equal(sup_rt_memory(rt) - base_rt, actor_mem(rt, h) - base_a);
    sup_rt_free(rt); /* releases the held ones (LSan checks) */
    assert_int_equal(g.bad, 0);
}

static void unfilter_info(sup_actor *self, void *state, const sup_msg *m)
{
    checker_msg(self, state, m);
    if (m->tag == T_DATA) {
        sup__set_filter(self, NULL);
    }
}

static const sup_behaviour unfilter_b = {
    .name = "unfilter", .init = holder_init, .handle_info = unfilter_info};

static void test_accounting_returns_to_base(void **state)
{
    (void)state;
    memset(&g, 0, sizeof g);
    sup_rt *rt = sup_rt_new_virtual();
    sup_pid h;
    assert_int_equal(sup_spawn(rt, SUP_NOPID, &unfilter_b, NULL, 0, &h, NULL), SUP_OK);
    size_t base_a = actor_mem(rt, h), base_rt = sup_rt_memory(rt);
    for (int round = 0; round < 3; round++) {
        for (int k = 0; k < NSIZES; k++) {
            unsigned char *p = payload(sizes[k]);
            sup_send(rt, SUP_NOPID, h, T_HOLD, p, sizes[k]);
            free(p);
        }
        sup_rt_run(rt);
        assert_int_equal(actor_mailbox(rt, h), NSIZES);
        assert_true(actor_mem(rt, h) > base_a);
        sup_send(rt, SUP_NOPID, h, T_DATA, NULL, 0); /* lifts the filter: all are delivered */
        sup_rt_run(rt);
        assert_int_equal(actor_mailbox(rt, h), 0);
        assert_int_equal(actor_mem(rt, h), base_a);
        assert_int_equal(sup_rt_memory(rt), base_rt);
        assert_int_equal(sup__env_pool_bytes(rt) <= SUP_ENV_POOL_BYTES, true);
        sup_pid again;
        assert_int_equal(sup_spawn(rt, SUP_NOPID, &unfilter_b, NULL, 0, &again, NULL), SUP_OK);
        sup_exit(rt, SUP_NOPID, h, &(sup_reason){.kind = SUP_R_KILL});
        h = again;
    }
    assert_int_equal(g.bad, 0);
    sup_rt_free(rt);
}

/* ---- messages built in place (sup_msgbuf) ----------------------------------------------- */

/* Every size, built piece by piece through many grows (each reserve asks for a little more, so
 * small blocks come from the class pools and large ones move when they grow), arrives intact
 * and with its length; a sent buffer is empty; the accounting returns to its base. */
static void test_msgbuf_every_size(void **state)
{
    (void)state;
    memset(&g, 0, sizeof g);
    sup_rt *rt = sup_rt_new_virtual();
    sup_pid a = spawn_checker(rt);
    size_t base_rt = sup_rt_memory(rt);
    for (int pass = 0; pass < 2; pass++) {
        for (int k = 0; k < NSIZES; k++) {
            size_t len = sizes[pass == 0 ? NSIZES - 1 - k : k];
            unsigned char *p = payload(len);
            sup_msgbuf b = {0};
            for (size_t at = 0; at < len;) {
                size_t piece = len - at < 777 ? len - at : 777;
                assert_int_equal(sup_msgbuf_reserve(rt, &b, at + piece), SUP_OK);
                assert_true(b.cap >= at + piece);
                memcpy(b.data + at, p + at, piece);
                at += piece;
                b.len = at;
            }
            assert_int_equal(sup_msgbuf_send(rt, SUP_NOPID, a, T_DATA, &b), SUP_OK);
            assert_null(b.data);
            assert_int_equal(b.len, 0);
            assert_int_equal(b.cap, 0);
            free(p);
        }
        sup_rt_run(rt);
    }
    assert_int_equal(g.n, 2 * NSIZES);
    assert_int_equal(g.bad, 0);
    for (int k = 0; k < NSIZES; k++) {
        assert_int_equal(g.lens[k], sizes[NSIZES - 1 - k]);
        assert_int_equal(g.lens[NSIZES + k], sizes[k]);
        assert_int_equal(g.kinds[k], SUP_MSG_INFO);
    }
    assert_int_equal(sup_rt_memory(rt), base_rt);
    sup_rt_free(rt);
}

/* Growing keeps the bytes written past len (a record still being built); a send to a dead pid
 * keeps the buffer for another pid; an unsent buffer is released by sup_msgbuf_free (LSan). */
static void test_msgbuf_grow_dead_pid_free(void **state)
{
    (void)state;
    memset(&g, 0, sizeof g);
    sup_rt *rt = sup_rt_new_virtual();
    sup_pid a = spawn_checker(rt);
    sup_pid dead = spawn_checker(rt);
    sup_exit(rt, SUP_NOPID, dead, &(sup_reason){.kind = SUP_R_KILL});
    sup_rt_run(rt);
    size_t len = 70000;
    unsigned char *p = payload(len);
    sup_msgbuf b = {0};
    assert_int_equal(sup_msgbuf_reserve(rt, &b, 100), SUP_OK);
    memcpy(b.data, p, 100); /* written, len still 0: the caller's record in progress */
    assert_int_equal(sup_msgbuf_reserve(rt, &b, len), SUP_OK);
    assert_memory_equal(b.data, p, 100);
    memcpy(b.data + 100, p + 100, len - 100);
    b.len = len;
    assert_int_equal(sup_msgbuf_send(rt, SUP_NOPID, dead, T_DATA, &b), SUP_ENOPROC);
    assert_int_equal(b.len, len); /* kept */
    assert_memory_equal(b.data, p, len);
    const void *built = b.data;
    assert_int_equal(sup_msgbuf_send(rt, SUP_NOPID, a, T_DATA, &b), SUP_OK);
    sup_rt_run(rt);
    assert_int_equal(g.n, 1);
    assert_int_equal(g.lens[0], len);
    assert_ptr_equal(g.last, built); /* the block that was built is the one delivered: no copy */
    /* the next message from the same buffer starts as large as this one ended */
    assert_int_equal(sup_msgbuf_reserve(rt, &b, 1), SUP_OK);
    assert_true(b.cap >= len);
    sup_msgbuf_free(rt, &b);
    /* ... but no larger than the bound, after one outsized message */
    size_t big = (size_t)1 << 20;
    assert_int_equal(sup_msgbuf_reserve(rt, &b, big), SUP_OK);
    memset(b.data, 0, big);
    b.len = big;
    assert_int_equal(sup_msgbuf_send(rt, SUP_NOPID, dead, T_DATA, &b), SUP_ENOPROC);
    sup_msgbuf_free(rt, &b); /* never sent: no hint */
    assert_int_equal(sup_msgbuf_reserve(rt, &b, big), SUP_OK);
    b.len = 0;
    assert_int_equal(sup_msgbuf_send(rt, SUP_NOPID, a, T_PASS, &b), SUP_OK);
    assert_int_equal(sup_msgbuf_reserve(rt, &b, 1), SUP_OK);
    assert_true(b.cap >= 1 && b.cap <= (size_t)256 * 1024);
    sup_msgbuf_free(rt, &b);
    sup_rt_run(rt);
    assert_int_equal(g.n, 2); /* the empty T_PASS message above */
    /* a class block that grows into the next class goes back to its pool */
    size_t pool0 = sup__env_pool_bytes(rt);
    assert_int_equal(sup_msgbuf_reserve(rt, &b, 100), SUP_OK);
    size_t small = b.cap;
    assert_true(small < 4096);
    memcpy(b.data, p, 100);
    assert_int_equal(sup_msgbuf_reserve(rt, &b, small + 1), SUP_OK);
    assert_memory_equal(b.data, p, 100);
    assert_true(sup__env_pool_bytes(rt) >= pool0);
    sup_msgbuf_free(rt, &b);
    /* an empty buffer sends a message without payload */
    sup_msgbuf e = {0};
    assert_int_equal(sup_msgbuf_send(rt, SUP_NOPID, a, T_DATA, &e), SUP_OK);
    sup_rt_run(rt);
    assert_int_equal(g.n, 3);
    assert_int_equal(g.lens[2], 0);
    /* never sent: freed, and freeing twice (or an empty one) is harmless */
    sup_msgbuf u = {0};
    assert_int_equal(sup_msgbuf_reserve(rt, &u, 5000), SUP_OK);
    sup_msgbuf_free(rt, &u);
    assert_null(u.data);
    sup_msgbuf_free(rt, &u);
    assert_int_equal(g.bad, 0);
    free(p);
    sup_rt_free(rt);
}

/* ---- pools ------------------------------------------------------------------------------ */

static void sink_info(sup_actor *self, void *state, const sup_msg *m)
{
    (void)self;
    (void)state;
    if (!intact(m->data, m->len)) {
        g.bad++;
    }
    g.n++;
}

static const sup_behaviour sink_b = {.name = "sink", .handle_info = sink_info};

/* Bursts far larger than the pools: the pools keep what their bounds allow and no more, the
 * runtime's memory returns to its base, and (under LSan) teardown releases every block. */
static void test_pools_are_bounded(void **state)
{
    (void)state;
    memset(&g, 0, sizeof g);
    sup_rt *rt = sup_rt_new_virtual();
    sup_pid s;
    assert_int_equal(sup_spawn(rt, SUP_NOPID, &sink_b, NULL, 0, &s, NULL), SUP_OK);
    size_t base = sup_rt_memory(rt);
    assert_int_equal(sup__env_pool_bytes(rt), 0);
    static const size_t burst_sizes[] = {16, 200, 1000, 4000, 9000, 300};
    int sent = 0;
    for (size_t b = 0; b < sizeof burst_sizes / sizeof burst_sizes[0]; b++) {
        unsigned char *p = payload(burst_sizes[b]);
        for (int i = 0; i < 6000; i++) {
            sup_send(rt, SUP_NOPID, s, T_DATA, p, burst_sizes[b]);
            sent++;
        }
        free(p);
        sup_rt_run(rt);
        assert_int_equal(g.n, sent);
        assert_int_equal(sup_rt_memory(rt), base);
        size_t pool = sup__env_pool_bytes(rt);
        assert_true(pool <= SUP_ENV_POOL_BYTES);
        size_t mine = sup__env_pool_class_bytes(rt, burst_sizes[b]);
        assert_true(mine <= SUP_ENV_POOL_CLASS_BYTES);
        if (burst_sizes[b] <= SUP_ENV_POOL_MAX) {
            /* the burst's blocks were kept for reuse, up to the class bound, even when the
             * pools were full of other sizes: 6,000 blocks of any class exceed that bound */
            assert_true(mine + sizeof(sup_env) + SUP_ENV_POOL_MAX > SUP_ENV_POOL_CLASS_BYTES);
        } else {
            assert_int_equal(mine, 0);
        }
    }
    /* one message in flight at a time: the same block goes round, the pools do not change */
    size_t pool = sup__env_pool_bytes(rt);
    unsigned char *p = payload(300);
    for (int i = 0; i < 1000; i++) {
        sup_send(rt, SUP_NOPID, s, T_DATA, p, 300);
        sup_rt_run(rt);
        assert_int_equal(sup__env_pool_bytes(rt), pool);
    }
    free(p);
    assert_int_equal(g.bad, 0);
    sup_rt_free(rt);
}

/* ---- a real loop ------------------------------------------------------------------------ */

typedef struct pp_state {
    sup_pid peer;
} pp_state;

static int g_hops, g_timer_fired;

static void pp_info(sup_actor *self, void *state, const sup_msg *m)
{
    pp_state *st = state;
    if (m->tag == T_PEER) {
        memcpy(&st->peer, m->data, sizeof st->peer);
        return;
    }
    if (m->kind == SUP_MSG_TIMER) {
        g_timer_fired++;
        return;
    }
    if (!intact(m->data, m->len)) {
        g.bad++;
    }
    if (++g_hops == 500) {
        sup_send_after(self, 5, T_AFTER, NULL, 0); /* a timer set from inside a run */
    }
    if (g_hops < 1000) {
        sup_send(sup_self_rt(self), sup_self(self), st->peer, T_DATA, m->data, m->len);
    }
}

static const sup_behaviour pp_b = {
    .name = "pp", .state_size = sizeof(pp_state), .handle_info = pp_info};

/* Messages sent from inside a run are processed by the same run; the loop then has nothing
 * left to do and uv_run returns on its own once the timer set mid-run has fired. */
static void test_real_loop_drains_and_fires(void **state)
{
    (void)state;
    memset(&g, 0, sizeof g);
    g_hops = 0;
    g_timer_fired = 0;
    uv_loop_t loop;
    assert_int_equal(uv_loop_init(&loop), 0);
    sup_rt *rt = sup_rt_new(&loop);
    sup_pid a, b;
    assert_int_equal(sup_spawn(rt, SUP_NOPID, &pp_b, NULL, 0, &a, NULL), SUP_OK);
    assert_int_equal(sup_spawn(rt, SUP_NOPID, &pp_b, NULL, 0, &b, NULL), SUP_OK);
    sup_send(rt, SUP_NOPID, a, T_PEER, &b, sizeof b);
    sup_send(rt, SUP_NOPID, b, T_PEER, &a, sizeof a);
    unsigned char *p = payload(300);
    sup_send(rt, SUP_NOPID, a, T_DATA, p, 300);
    free(p);
    assert_int_equal(g_hops, 0); /* nothing runs before the loop does */
    assert_int_equal(uv_run(&loop, UV_RUN_DEFAULT), 0);
    assert_int_equal(g_hops, 1000);
    assert_int_equal(g_timer_fired, 1);
    assert_int_equal(g.bad, 0);
    /* and again, after the loop had gone idle */
    g_hops = 0;
    p = payload(50);
    sup_send(rt, SUP_NOPID, b, T_DATA, p, 50);
    free(p);
    assert_int_equal(uv_run(&loop, UV_RUN_DEFAULT), 0);
    assert_int_equal(g_hops, 1000);
    assert_int_equal(g_timer_fired, 2);
    sup_rt_free(rt);
    assert_int_equal(uv_loop_close(&loop), 0);
}

/* The block a buffer starts with is as large as the largest recent message, less an eighth per
 * message since: one small message after a large one still starts large (batches that vary in
 * size are not moved while they grow), many small ones later it starts small again. */
/* The block a buffer starts with is as large as the last message, or half the hint before it:
 * one small message after a large one still starts large (batches that vary in size are not
 * moved while they grow), a few small ones later it starts small again. */
static void test_msgbuf_hint_decays(void **state)
{
    (void)state;
    memset(&g, 0, sizeof g);
    sup_rt *rt = sup_rt_new_virtual();
    sup_pid a = spawn_checker(rt);
    size_t len = 70000;
    unsigned char *p = payload(len), *q = payload(10);
    sup_msgbuf b = {0};
    assert_int_equal(sup_msgbuf_reserve(rt, &b, len), SUP_OK);
    memcpy(b.data, p, len);
    b.len = len;
    assert_int_equal(sup_msgbuf_send(rt, SUP_NOPID, a, T_DATA, &b), SUP_OK);
    assert_int_equal(sup_msgbuf_reserve(rt, &b, 10), SUP_OK);
    assert_true(b.cap >= len);
    memcpy(b.data, q, 10);
    b.len = 10;
    assert_int_equal(sup_msgbuf_send(rt, SUP_NOPID, a, T_DATA, &b), SUP_OK);
    assert_int_equal(sup_msgbuf_reserve(rt, &b, 10), SUP_OK);
    assert_true(b.cap >= len / 2);
    for (int i = 0; i < 80; i++) {
        memcpy(b.data, q, 10);
        b.len = 10;
        assert_int_equal(sup_msgbuf_send(rt, SUP_NOPID, a, T_DATA, &b), SUP_OK);
        assert_int_equal(sup_msgbuf_reserve(rt, &b, 10), SUP_OK);
    }
    assert_true(b.cap < 4096);
    sup_msgbuf_free(rt, &b);
    sup_rt_run(rt);
    assert_int_equal(g.n, 82);
    assert_int_equal(g.bad, 0);
    assert_int_equal(g.lens[0], len);
    assert_int_equal(g.lens[81], 10);
    free(p);
    free(q);
    sup_rt_free(rt);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_every_size_every_path),
        cmocka_unit_test(test_mailbox_accounting),
        cmocka_unit_test(test_accounting_returns_to_base),
        cmocka_unit_test(test_msgbuf_every_size),
        cmocka_unit_test(test_msgbuf_grow_dead_pid_free),
        cmocka_unit_test(test_msgbuf_hint_decays),
        cmocka_unit_test(test_pools_are_bounded),
        cmocka_unit_test(test_real_loop_drains_and_fires),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
