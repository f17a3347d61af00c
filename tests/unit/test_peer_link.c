/* tests/unit/test_peer_link.c — the member link (flow/consensus/peer_link.h) over real loopback
 * QUIC between two node identities on one uv loop: a message sent before the peer's endpoint
 * exists arrives once it starts (retries with backoff); messages that wait longer than the TTL
 * are dropped and counted, and never arrive; the queue bound drops the oldest; a message in
 * flight when its connection ends is sent again on the next connection; removing a member and
 * closing the link free everything (LSan). Waiting loops have generous safety caps, nothing
 * asserts a duration. */
#define _GNU_SOURCE
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <uv.h>

#include "flow/consensus/peer_link.h"
#include "mesh/identity.h"
#include "mesh/quic.h"

static char g_dir[2][64];
static identity *g_id[2]; /* member 1 (A) and member 2 (B) */

static int group_setup(void **state)
{
    (void)state;
    for (int i = 0; i < 2; i++) {
        snprintf(g_dir[i], sizeof g_dir[i], "/tmp/macula_linktest_XXXXXX");
        if (!mkdtemp(g_dir[i]))
            return -1;
        identity_config cfg = {.data_dir = g_dir[i]};
        char err[256];
        if (identity_load_or_create(&cfg, &g_id[i], err, sizeof err) != IDENTITY_OK) {
            fprintf(stderr, "identity: %s\n", err);
            return -1;
        }
    }
    return 0;
}

static int group_teardown(void **state)
{
    (void)state;
    for (int i = 0; i < 2; i++) {
        identity_free(g_id[i]);
        char cmd[256];
        snprintf(cmd, sizeof cmd, "rm -rf '%s'", g_dir[i]);
        if (system(cmd) != 0)
            return -1;
    }
    return 0;
}

/* ---- fixture ----------------------------------------------------------------------------- */

typedef struct inbox {
    int n;
    uint32_t from;
    char last[64];
} inbox;

typedef struct fx {
    uv_loop_t loop;
    char addr[2][32];
    peer_link *l[2];
    inbox in[2];
} fx;

static int on_recv(void *user, uint32_t from, const uint8_t *data, size_t len)
{
    inbox *in = user;
    in->n++;
    in->from = from;
    size_t n = len < sizeof in->last - 1 ? len : sizeof in->last - 1;
    memcpy(in->last, data, n);
    in->last[n] = '\0';
    return 0;
}

/* Runs the loop until cond holds; the cap turns a hang into a failure (not a timing assert). */
#define RUN_UNTIL(f, cond)                                                                         \
    do {                                                                                           \
        uint64_t deadline_ = uv_hrtime() + 60ull * 1000000000ull;                                  \
        while (!(cond)) {                                                                          \
            if (uv_hrtime() > deadline_) {                                                         \
                fprintf(stderr, "timed out waiting for %s\n", #cond);                              \
                fail();                                                                            \
            }                                                                                      \
            uv_run(&(f)->loop, UV_RUN_ONCE);                                                       \
        }                                                                                          \
    } while (0)

static bool g_closed;
static void on_handle_closed(uv_handle_t *h)
{
    (void)h;
    g_closed = true;
}

/* A loopback UDP port free at the time of the call. */
static uint16_t free_port(uv_loop_t *loop)
{
    uv_udp_t u;
    assert_int_equal(uv_udp_init(loop, &u), 0);
    struct sockaddr_in sa;
    uv_ip4_addr("127.0.0.1", 0, &sa);
    assert_int_equal(uv_udp_bind(&u, (const struct sockaddr *)&sa, 0), 0);
    struct sockaddr_in got;
    int len = sizeof got;
    assert_int_equal(uv_udp_getsockname(&u, (struct sockaddr *)&got, &len), 0);
    g_closed = false;
    uv_close((uv_handle_t *)&u, on_handle_closed);
    while (!g_closed)
        uv_run(loop, UV_RUN_ONCE);
    return ntohs(got.sin_port);
}

static int setup(void **state)
{
    fx *f = calloc(1, sizeof *f);
    if (f == NULL || uv_loop_init(&f->loop) != 0)
        return -1;
    for (int i = 0; i < 2; i++)
        snprintf(f->addr[i], sizeof f->addr[i], "127.0.0.1:%u", free_port(&f->loop));
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fx *f = *state;
    for (int i = 0; i < 2; i++)
        peer_link_close(f->l[i]);
    uv_run(&f->loop, UV_RUN_DEFAULT); /* until every handle has closed */
    int rc = uv_loop_close(&f->loop);
    free(f);
    return rc == 0 ? 0 : -1;
}

/* Opens member i's link (A = 0 = member 1, B = 1 = member 2) knowing the other member. */
static int open_link(fx *f, int i, size_t pending_max, uint32_t ttl_ms)
{
    peer_link_config c = {
        .id = g_id[i],
        .listen = f->addr[i],
        .msg_max = 1024,
        .pending_max = pending_max,
        .pending_ttl_ms = ttl_ms,
        .handshake_timeout_ms = 300, /* a peer that is not there fails fast */
        .idle_timeout_ms = 5000,
        .recv = on_recv,
        .user = &f->in[i],
        .name = i == 0 ? "link A" : "link B",
    };
    char err[256];
    int rc = peer_link_open(&f->loop, &c, &f->l[i], err, sizeof err);
    if (rc != 0)
        return rc;
    int o = 1 - i;
    return peer_link_set(f->l[i], (uint32_t)o + 1, f->addr[o], identity_node_id(g_id[o]));
}

/* Opens B, retrying while the port is still held by a closing socket of this loop. */
static void open_b(fx *f, size_t pending_max, uint32_t ttl_ms)
{
    uint64_t deadline = uv_hrtime() + 30ull * 1000000000ull;
    while (open_link(f, 1, pending_max, ttl_ms) != 0) {
        peer_link_close(f->l[1]);
        f->l[1] = NULL;
        assert_true(uv_hrtime() < deadline);
        uv_run(&f->loop, UV_RUN_NOWAIT);
    }
}

static peer_link_stats stats(const peer_link *l)
{
    peer_link_stats st;
    peer_link_get_stats(l, &st);
    return st;
}

static void send_text(peer_link *l, uint32_t to, const char *s)
{
    assert_int_equal(peer_link_send(l, to, (const uint8_t *)s, strlen(s)), 0);
}

/* ---- tests ------------------------------------------------------------------------------- */

/* A sends before B's endpoint exists: A keeps the message and retries; B starts later and gets
 * it, nothing dropped. The answer comes back over B's own connection. */
static void test_send_before_peer_starts(void **state)
{
    fx *f = *state;
    assert_int_equal(open_link(f, 0, 16, 60000), 0);
    send_text(f->l[0], 2, "hello");
    send_text(f->l[0], 2, "again");
    RUN_UNTIL(f, stats(f->l[0]).retries >= 2); /* attempts failed, still trying */
    assert_int_equal(f->in[1].n, 0);
    assert_int_equal(stats(f->l[0]).dropped, 0);
    open_b(f, 16, 60000);
    RUN_UNTIL(f, f->in[1].n == 2);
    assert_int_equal(f->in[1].from, 1);
    assert_string_equal(f->in[1].last, "again");
    peer_link_stats a = stats(f->l[0]);
    assert_int_equal(a.sent, 2);
    assert_int_equal(a.dropped, 0);
    send_text(f->l[1], 1, "back");
    RUN_UNTIL(f, f->in[0].n == 1);
    assert_string_equal(f->in[0].last, "back");
    assert_int_equal(f->in[0].from, 2);
}

/* Messages that waited longer than the TTL are dropped (counted) and never arrive; beyond
 * pending_max the oldest go at once. A later message still gets through. The TTL also bounds
 * the handshake that carries "new" once B is up, so it leaves room for a loaded machine under
 * the sanitizers. */
#define TTL_TEST_MS 1500
static void test_ttl_and_bound(void **state)
{
    fx *f = *state;
    assert_int_equal(open_link(f, 0, 3, TTL_TEST_MS), 0);
    for (int i = 0; i < 5; i++)
        send_text(f->l[0], 2, "old");
    assert_int_equal(stats(f->l[0]).dropped, 2); /* the bound: 3 kept */
    RUN_UNTIL(f, stats(f->l[0]).dropped == 5);   /* the TTL: the other 3 */
    open_b(f, 3, TTL_TEST_MS);
    send_text(f->l[0], 2, "new");
    RUN_UNTIL(f, f->in[1].n >= 1);
    /* give stragglers every chance to show up: one more round trip in both directions */
    send_text(f->l[1], 1, "ping");
    RUN_UNTIL(f, f->in[0].n == 1);
    send_text(f->l[0], 2, "last");
    RUN_UNTIL(f, f->in[1].n >= 2);
    assert_int_equal(f->in[1].n, 2);
    assert_string_equal(f->in[1].last, "last");
    assert_int_equal(stats(f->l[0]).sent, 2);
    assert_int_equal(stats(f->l[0]).dropped, 5);
}

/* ---- a peer that reads but never finishes its streams ------------------------------------ */

typedef struct mute {
    int fins;
} mute;

static void mute_data(quic_conn *c, int64_t sid, const uint8_t *data, size_t len, bool fin,
                      void *ctx)
{
    (void)c, (void)sid, (void)data, (void)len;
    mute *m = ctx;
    m->fins += fin; /* no FIN back: the sender's stream stays open */
}

/* A's message reaches a B that keeps the stream open; B's endpoint goes away: the message was
 * in flight, A sends it again and the real B (same identity, same port) receives it. */
static void test_in_flight_requeued(void **state)
{
    fx *f = *state;
    const char *colon = strrchr(f->addr[1], ':');
    mute m = {0};
    quic_config qc = {.id = g_id[1],
                      .listen = true,
                      .bind_host = "127.0.0.1",
                      .bind_port = (uint16_t)strtoul(colon + 1, NULL, 10),
                      .cb = {.on_stream_data = mute_data},
                      .ctx = &m};
    quic_endpoint *b0 = NULL;
    assert_int_equal(quic_endpoint_new(&f->loop, &qc, &b0), QUIC_OK);
    assert_int_equal(open_link(f, 0, 16, 60000), 0);
    send_text(f->l[0], 2, "precious");
    RUN_UNTIL(f, m.fins == 1);
    assert_int_equal(stats(f->l[0]).sent, 1);
    quic_endpoint_close(b0);
    RUN_UNTIL(f, stats(f->l[0]).requeued == 1);
    open_b(f, 16, 60000);
    RUN_UNTIL(f, f->in[1].n == 1);
    assert_string_equal(f->in[1].last, "precious");
    peer_link_stats a = stats(f->l[0]);
    assert_int_equal(a.sent, 2);
    assert_int_equal(a.dropped, 0);
}

/* Waiting messages of a removed member, and of a link closed while retrying, are freed (LSan);
 * isolation drops the queue. */
static void test_remove_isolate_close(void **state)
{
    fx *f = *state;
    assert_int_equal(open_link(f, 0, 8, 60000), 0);
    send_text(f->l[0], 2, "a");
    send_text(f->l[0], 2, "b");
    peer_link_remove(f->l[0], 2);
    assert_int_equal(stats(f->l[0]).dropped, 2);
    assert_int_equal(peer_link_send(f->l[0], 2, (const uint8_t *)"c", 1), QUIC_EINVAL);
    assert_int_equal(peer_link_set(f->l[0], 2, f->addr[1], identity_node_id(g_id[1])), 0);
    send_text(f->l[0], 2, "d");
    peer_link_isolate(f->l[0], true);
    assert_int_equal(stats(f->l[0]).dropped, 4);
    assert_int_equal(peer_link_send(f->l[0], 2, (const uint8_t *)"e", 1), QUIC_ECLOSED);
    peer_link_isolate(f->l[0], false);
    send_text(f->l[0], 2, "f");
    RUN_UNTIL(f, stats(f->l[0]).retries >= 1);
    /* teardown closes the link with "f" waiting */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_send_before_peer_starts, setup, teardown),
        cmocka_unit_test_setup_teardown(test_ttl_and_bound, setup, teardown),
        cmocka_unit_test_setup_teardown(test_in_flight_requeued, setup, teardown),
        cmocka_unit_test_setup_teardown(test_remove_isolate_close, setup, teardown),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
