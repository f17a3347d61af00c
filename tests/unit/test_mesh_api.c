/* tests/unit/test_mesh_api.c — the client API's publish contract (include/macula/mesh.h)
 * against a real `macula node` process (MACULA_BIN):
 *  - a burst of QoS 0 publishes that never runs the loop between them (the API turns it
 *    itself every 16 KiB, macula_mesh_flush sends the rest) reaches the subscriber whole and
 *    in order; so does one followed at once by macula_mesh_disconnect;
 *  - backpressure: with the node stopped (SIGSTOP) nothing is acknowledged, so the send queue
 *    fills and a QoS 0 publish returns MACULA_MESH_ETIMEDOUT (not a silent drop, not
 *    ECLOSED); once the node continues, the same connection publishes again and its messages
 *    are delivered;
 *  - runs of one topic, alternating topics and payloads from 5 bytes to 20 KB arrive whole and
 *    in order at every matching pattern; invalid topics are refused after a valid one;
 *    unsubscribe, subscribe and subscribe-from-a-callback change who receives.
 * No timing assertions: waits are bounded loops. */
#include <pthread.h>
#include <setjmp.h>
#include <stdatomic.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>
#include <uv.h>

#include "macula/mesh.h"
#include "macula/mesh_rpc.h"

#define REALM "t.api"
#define BURST 3000u

typedef struct node {
    pid_t pid;
    char dir[64];
    char url[64];
} node;

/* Starts MACULA_BIN node with a private HOME and QUIC/health on free ports; reads the QUIC
 * port from its banner. */
static void node_start(node *n)
{
    const char *bin = getenv("MACULA_BIN");
    assert_non_null(bin);
    snprintf(n->dir, sizeof n->dir, "/tmp/macula-api-XXXXXX");
    assert_non_null(mkdtemp(n->dir));
    int fds[2];
    assert_int_equal(pipe(fds), 0);
    n->pid = fork();
    assert_true(n->pid >= 0);
    if (n->pid == 0) {
        char home[128];
        snprintf(home, sizeof home, "%s/home", n->dir);
        setenv("HOME", home, 1);
        setenv("MACULA_REALM", REALM, 1);
        setenv("MACULA_QUIC_PORT", "0", 1);
        setenv("HEALTH_PORT", "0", 1);
        setenv("MACULA_HEALTH_ADDR", "127.0.0.1", 1);
        unsetenv("MACULA_BOOTSTRAP_PEERS");
        unsetenv("MACULA_DATA_DIR");
        unsetenv("MACULA_CONFIG");
        dup2(fds[1], 1);
        close(fds[0]);
        close(fds[1]);
        if (bin != NULL) {
            execl(bin, bin, "node", (char *)NULL);
        }
        _exit(127);
    }
    close(fds[1]);
    FILE *out = fdopen(fds[0], "r");
    assert_non_null(out);
    char line[4096];
    unsigned p = 0;
    while (p == 0 && fgets(line, sizeof line, out) != NULL) {
        (void)sscanf(line, "  quic       udp 0.0.0.0:%u", &p); /* NOLINT(cert-err34-c) */
    }
    fclose(out);
    assert_true(p > 0 && p < 65536);
    snprintf(n->url, sizeof n->url, "https://127.0.0.1:%u", p);
}

static void node_stop(node *n)
{
    if (n->pid <= 0) {
        return;
    }
    kill(n->pid, SIGCONT);
    kill(n->pid, SIGTERM);
    int status = 0;
    (void)waitpid(n->pid, &status, 0);
    n->pid = 0;
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", n->dir);
    (void)system(cmd);
}

/* A node per test, stopped by the teardown even when the test failed (a node left running
 * would hold the test runner's output open). */
static int setup(void **state)
{
    node *n = calloc(1, sizeof *n);
    if (n == NULL) {
        return -1;
    }
    *state = n;
    node_start(n);
    return 0;
}

static int teardown(void **state)
{
    node *n = *state;
    node_stop(n);
    free(n);
    return 0;
}

typedef struct sink {
    uint32_t warm;     /* warm-up messages seen */
    uint32_t got;      /* burst messages seen */
    uint32_t next;     /* the sequence number expected next */
    uint32_t disorder; /* burst messages out of order */
} sink;

static void on_msg(void *ctx, const char *topic, size_t topic_len, const char *pattern,
                   const uint8_t *payload, size_t len)
{
    (void)topic;
    (void)topic_len;
    (void)pattern;
    sink *s = ctx;
    if (len < 5) {
        return;
    }
    uint32_t seq;
    memcpy(&seq, payload + 1, sizeof seq);
    if (payload[0] == 'W') {
        s->warm++;
        return;
    }
    if (seq != s->next) {
        s->disorder++;
    }
    s->next = seq + 1;
    s->got++;
}

static void publish_seq(macula_mesh *m, char kind, uint32_t seq)
{
    uint8_t p[16] = {(uint8_t)kind};
    memcpy(p + 1, &seq, sizeof seq);
    assert_int_equal(macula_mesh_publish(m, "burst.t", p, sizeof p, 0), MACULA_MESH_OK);
}

/* Until the subscription is in place at the node: a warm-up message every round. */
static void warm_up(macula_mesh *pub, macula_mesh *sub, const sink *s)
{
    for (uint32_t i = 0; i < 500 && s->warm == 0; i++) {
        publish_seq(pub, 'W', i);
        assert_int_equal(macula_mesh_flush(pub), MACULA_MESH_OK);
        assert_int_equal(macula_mesh_run(sub, 20), MACULA_MESH_OK);
    }
    assert_true(s->warm > 0);
    /* late warm-up messages must not mix with the burst */
    for (int i = 0; i < 10; i++) {
        assert_int_equal(macula_mesh_run(sub, 10), MACULA_MESH_OK);
    }
}

/* macula_mesh_wake from another thread ends a macula_mesh_run with no timeout (the only ways out
 * of it are a stop, a wake and the connection's end); a wake before the run makes the next one
 * return. A run that never returns would hang the test: the waker ends the process after 60 s. */
typedef struct waker {
    macula_mesh *m;
    pid_t node; /* killed with the process on failure (its output would keep ctest waiting) */
    atomic_int woke, returned;
} waker;

static void *waker_main(void *arg)
{
    waker *w = arg;
    atomic_store(&w->woke, 1);
    macula_mesh_wake(w->m);
    for (int i = 0; i < 6000 && !atomic_load(&w->returned); i++) {
        usleep(10000);
    }
    if (!atomic_load(&w->returned)) {
        fprintf(stderr, "test_wake: macula_mesh_run did not return after macula_mesh_wake\n");
        kill(w->node, SIGKILL);
        _exit(1); /* not abort(): cmocka catches SIGABRT on its own thread only */
    }
    return NULL;
}

static void test_wake(void **state)
{
    const node *n = *state;
    macula_mesh_options o = {.realm = REALM};
    macula_mesh *m = NULL;
    assert_int_equal(macula_mesh_connect(n->url, &o, &m), MACULA_MESH_OK);
    for (int round = 0; round < 3; round++) {
        waker w = {.m = m, .node = n->pid};
        pthread_t t;
        assert_int_equal(pthread_create(&t, NULL, waker_main, &w), 0);
        assert_int_equal(macula_mesh_run(m, 0), MACULA_MESH_OK);
        assert_int_equal(atomic_load(&w.woke), 1);
        atomic_store(&w.returned, 1);
        assert_int_equal(pthread_join(t, NULL), 0);
    }
    /* a wake before the run: the next run returns */
    waker w = {.m = m, .node = n->pid};
    macula_mesh_wake(m);
    atomic_store(&w.woke, 1);
    pthread_t t;
    atomic_store(&w.returned, 0);
    assert_int_equal(pthread_create(&t, NULL, waker_main, &w), 0);
    assert_int_equal(macula_mesh_run(m, 0), MACULA_MESH_OK);
    atomic_store(&w.returned, 1);
    assert_int_equal(pthread_join(t, NULL), 0);
    macula_mesh_disconnect(m);
}

/* Nested deliveries: S1's callback (n.a.*) runs the loop and a message on another topic
 * (n.b.y, for S3 only) is delivered inside it; back in the outer delivery, S2 (n.a.**) must
 * still get n.a.x and S3 must not. The remembered matches of the inner topic must not be
 * used for the outer one. */
typedef struct nest {
    macula_mesh *pub, *sub;
    int s1, s2, s3, s3_wrong, nested;
} nest;

static void nest_s1(void *ctx, const char *topic, size_t tlen, const char *pattern,
                    const uint8_t *payload, size_t len)
{
    (void)pattern;
    (void)payload;
    (void)len;
    nest *x = ctx;
    if (tlen != 5 || memcmp(topic, "n.a.x", 5) != 0) {
        return;
    }
    x->s1++;
    if (x->nested++ > 0) {
        return;
    }
    assert_int_equal(macula_mesh_publish(x->pub, "n.b.y", (const uint8_t *)"b", 1, 0),
                     MACULA_MESH_OK);
    assert_int_equal(macula_mesh_flush(x->pub), MACULA_MESH_OK);
    for (int i = 0; i < 500 && x->s3 == 0; i++) {
        assert_int_equal(macula_mesh_run(x->sub, 10), MACULA_MESH_OK);
    }
}

static void nest_s2(void *ctx, const char *topic, size_t tlen, const char *pattern,
                    const uint8_t *payload, size_t len)
{
    (void)pattern;
    (void)payload;
    (void)len;
    nest *x = ctx;
    if (tlen == 5 && memcmp(topic, "n.a.x", 5) == 0) {
        x->s2++;
    }
}

static void nest_s3(void *ctx, const char *topic, size_t tlen, const char *pattern,
                    const uint8_t *payload, size_t len)
{
    (void)pattern;
    (void)payload;
    (void)len;
    nest *x = ctx;
    if (tlen == 5 && memcmp(topic, "n.b.y", 5) == 0) {
        x->s3++;
    } else {
        x->s3_wrong++;
    }
}

static void test_nested_delivery(void **state)
{
    const node *n = *state;
    macula_mesh_options o = {.realm = REALM};
    nest x = {0};
    assert_int_equal(macula_mesh_connect(n->url, &o, &x.pub), MACULA_MESH_OK);
    assert_int_equal(macula_mesh_connect(n->url, &o, &x.sub), MACULA_MESH_OK);
    assert_int_equal(macula_mesh_subscribe(x.sub, "n.a.*", 0, nest_s1, &x), MACULA_MESH_OK);
    assert_int_equal(macula_mesh_subscribe(x.sub, "n.a.**", 0, nest_s2, &x), MACULA_MESH_OK);
    assert_int_equal(macula_mesh_subscribe(x.sub, "n.b.*", 0, nest_s3, &x), MACULA_MESH_OK);
    /* until the subscriptions are in place at the node: n.a.x reaches S1 */
    for (int i = 0; i < 500 && x.s1 == 0; i++) {
        assert_int_equal(macula_mesh_publish(x.pub, "n.a.x", (const uint8_t *)"a", 1, 0),
                         MACULA_MESH_OK);
        assert_int_equal(macula_mesh_flush(x.pub), MACULA_MESH_OK);
        assert_int_equal(macula_mesh_run(x.sub, 20), MACULA_MESH_OK);
    }
    assert_int_equal(x.nested > 0, 1);
    assert_int_equal(x.s3, 1);
    /* every n.a.x S1 saw, S2 saw too; S3 saw only n.b.y */
    assert_int_equal(x.s2, x.s1);
    assert_int_equal(x.s3_wrong, 0);
    macula_mesh_disconnect(x.pub);
    macula_mesh_disconnect(x.sub);
}

static void test_qos0_burst(void **state)
{
    const node *n = *state;
    macula_mesh_options o = {.realm = REALM};
    macula_mesh *pub = NULL, *sub = NULL;
    assert_int_equal(macula_mesh_connect(n->url, &o, &pub), MACULA_MESH_OK);
    assert_int_equal(macula_mesh_connect(n->url, &o, &sub), MACULA_MESH_OK);
    sink s = {0};
    assert_int_equal(macula_mesh_subscribe(sub, "burst.*", 0, on_msg, &s), MACULA_MESH_OK);
    warm_up(pub, sub, &s);

    /* the burst: nothing but publishes, then one flush */
    for (uint32_t i = 0; i < BURST; i++) {
        publish_seq(pub, 'B', i);
    }
    assert_int_equal(macula_mesh_flush(pub), MACULA_MESH_OK);
    for (int i = 0; i < 3000 && s.got < BURST; i++) {
        assert_int_equal(macula_mesh_run(sub, 5), MACULA_MESH_OK);
        assert_int_equal(macula_mesh_run(pub, 1), MACULA_MESH_OK);
    }
    assert_int_equal(s.got, BURST);
    assert_int_equal(s.disorder, 0);
    assert_int_equal(s.next, BURST);

    /* a second burst, then disconnect at once: disconnect lets the queue reach the node */
    for (uint32_t i = BURST; i < 2 * BURST; i++) {
        publish_seq(pub, 'B', i);
    }
    macula_mesh_disconnect(pub);
    for (int i = 0; i < 3000 && s.got < 2 * BURST; i++) {
        assert_int_equal(macula_mesh_run(sub, 5), MACULA_MESH_OK);
    }
    assert_int_equal(s.got, 2 * BURST);
    assert_int_equal(s.disorder, 0);
    macula_mesh_disconnect(sub);
}

static void test_backpressure(void **state)
{
    const node *n = *state;
    macula_mesh_options o = {.realm = REALM, .timeout_ms = 300};
    macula_mesh *pub = NULL, *sub = NULL;
    assert_int_equal(macula_mesh_connect(n->url, &o, &pub), MACULA_MESH_OK);
    assert_int_equal(macula_mesh_connect(n->url, &o, &sub), MACULA_MESH_OK);
    sink s = {0};
    assert_int_equal(macula_mesh_subscribe(sub, "burst.*", 0, on_msg, &s), MACULA_MESH_OK);
    warm_up(pub, sub, &s);

    /* the node acknowledges nothing: at most ~1 MiB can be queued, then the publish waits
     * timeout_ms and says so */
    assert_int_equal(kill(n->pid, SIGSTOP), 0);
    static uint8_t big[32768];
    int rc = MACULA_MESH_OK;
    for (int i = 0; i < 400 && rc == MACULA_MESH_OK; i++) {
        rc = macula_mesh_publish(pub, "big.t", big, sizeof big, 0);
    }
    assert_int_equal(rc, MACULA_MESH_ETIMEDOUT);
    assert_int_equal(kill(n->pid, SIGCONT), 0);

    /* the connection recovers: the queue drains and new messages are delivered */
    rc = MACULA_MESH_ETIMEDOUT;
    for (int i = 0; i < 200 && rc == MACULA_MESH_ETIMEDOUT; i++) {
        assert_int_equal(macula_mesh_run(pub, 50), MACULA_MESH_OK);
        uint8_t p[16] = {'B'};
        rc = macula_mesh_publish(pub, "burst.t", p, sizeof p, 0);
    }
    assert_int_equal(rc, MACULA_MESH_OK);
    for (int i = 0; i < 2000 && s.got == 0; i++) {
        assert_int_equal(macula_mesh_flush(pub), MACULA_MESH_OK);
        assert_int_equal(macula_mesh_run(sub, 10), MACULA_MESH_OK);
    }
    assert_true(s.got > 0);
    macula_mesh_disconnect(pub);
    macula_mesh_disconnect(sub);
}

/* ---- topics, payload sizes and subscription changes ---------------------------------------- */

#define NPAT 4
static const char *const k_pats[NPAT] = {"a.*", "**", "a.x", "b.*"};
static const char *const k_topics[3] = {"a.x", "a.y", "b.z"};

typedef struct rec {
    macula_mesh *m;
    uint32_t by_pat[NPAT];
    uint32_t next[NPAT]; /* the sequence number each pattern expects next */
    uint32_t bad;        /* wrong topic for the pattern, bad bytes, out of order */
    bool sub_in_cb;      /* subscribe k_pats[3] from inside the next b.z delivery */
} rec;

static uint8_t fill(uint32_t seq, size_t i)
{
    return (uint8_t)(seq * 31u + (uint32_t)i * 7u);
}

/* payload: seq (4 bytes), topic index, then fill(seq, i) */
static void on_rec(void *ctx, const char *topic, size_t topic_len, const char *pattern,
                   const uint8_t *payload, size_t len)
{
    rec *r = ctx;
    int pi = -1;
    for (int i = 0; i < NPAT; i++) {
        if (strcmp(pattern, k_pats[i]) == 0) {
            pi = i;
        }
    }
    uint32_t seq = 0;
    if (pi < 0 || len < 5) {
        r->bad++;
        return;
    }
    memcpy(&seq, payload, sizeof seq);
    const char *t = k_topics[payload[4] % 3];
    if (topic_len != strlen(t) || memcmp(topic, t, topic_len) != 0) {
        r->bad++;
    }
    for (size_t i = 5; i < len; i++) {
        if (payload[i] != fill(seq, i)) {
            r->bad++;
            break;
        }
    }
    bool prefix_a = topic_len > 2 && memcmp(topic, "a.", 2) == 0;
    bool ok_pat = pi == 1 || (pi == 0 && prefix_a) ||
                  (pi == 2 && topic_len == 3 && memcmp(topic, "a.x", 3) == 0) ||
                  (pi == 3 && topic_len > 2 && memcmp(topic, "b.", 2) == 0);
    if (!ok_pat || (r->by_pat[pi] > 0 && seq < r->next[pi])) {
        r->bad++;
    }
    r->next[pi] = seq + 1;
    r->by_pat[pi]++;
    if (r->sub_in_cb && pi == 1 && payload[4] % 3 == 2) {
        r->sub_in_cb = false;
        assert_int_equal(macula_mesh_subscribe(r->m, k_pats[3], 0, on_rec, r), MACULA_MESH_OK);
    }
}

static void publish_rec(macula_mesh *m, uint32_t seq, unsigned topic, size_t len)
{
    static uint8_t p[20000];
    assert_true(len >= 5 && len <= sizeof p);
    memcpy(p, &seq, sizeof seq);
    p[4] = (uint8_t)topic;
    for (size_t i = 5; i < len; i++) {
        p[i] = fill(seq, i);
    }
    assert_int_equal(macula_mesh_publish(m, k_topics[topic], p, len, 0), MACULA_MESH_OK);
}

/* Runs both connections until pattern pi has seen `want` deliveries (bounded). */
static void run_until_pat(macula_mesh *pub, macula_mesh *sub, const rec *r, int pi, uint32_t want)
{
    for (int i = 0; i < 3000 && r->by_pat[pi] < want; i++) {
        assert_int_equal(macula_mesh_flush(pub), MACULA_MESH_OK);
        int rc = macula_mesh_run(sub, 5);
        if (rc != MACULA_MESH_OK) {
            fprintf(stderr, "sub: %s\n", macula_mesh_last_error(sub));
        }
        assert_int_equal(rc, MACULA_MESH_OK);
    }
    assert_int_equal(r->by_pat[pi], want);
}

/* Runs of one topic, alternating topics and payloads of every size (small ones share the
 * stream's chunks, large ones take chunks of their own) arrive whole, in order and at every
 * matching pattern; invalid topics are refused right after a valid one was published; an
 * unsubscribe, a subscribe and a subscribe from inside a callback change who receives. */
static void test_topics_and_subscriptions(void **state)
{
    const node *n = *state;
    macula_mesh_options o = {.realm = REALM};
    macula_mesh *pub = NULL, *sub = NULL;
    assert_int_equal(macula_mesh_connect(n->url, &o, &pub), MACULA_MESH_OK);
    assert_int_equal(macula_mesh_connect(n->url, &o, &sub), MACULA_MESH_OK);
    rec r = {.m = sub};
    assert_int_equal(macula_mesh_subscribe(sub, k_pats[0], 0, on_rec, &r), MACULA_MESH_OK);
    assert_int_equal(macula_mesh_subscribe(sub, k_pats[1], 0, on_rec, &r), MACULA_MESH_OK);
    uint32_t seq = 0;
    for (int i = 0; i < 500 && r.by_pat[1] == 0; i++) { /* warm-up */
        publish_rec(pub, seq++, 2, 5);
        assert_int_equal(macula_mesh_flush(pub), MACULA_MESH_OK);
        assert_int_equal(macula_mesh_run(sub, 20), MACULA_MESH_OK);
    }
    assert_true(r.by_pat[1] > 0);
    for (int i = 0; i < 10; i++) {
        assert_int_equal(macula_mesh_run(sub, 10), MACULA_MESH_OK);
    }
    assert_int_equal(r.by_pat[0], 0); /* b.z only so far */

    /* the same topic as just published, but not publishable; then valid again */
    assert_int_equal(macula_mesh_publish(pub, "a.*", "x", 1, 0), MACULA_MESH_EINVAL);
    assert_int_equal(macula_mesh_publish(pub, "b.z.", "x", 1, 0), MACULA_MESH_EINVAL);
    assert_int_equal(macula_mesh_publish(pub, "b..z", "x", 1, 0), MACULA_MESH_EINVAL);
    assert_int_equal(macula_mesh_publish(pub, "", "x", 1, 0), MACULA_MESH_EINVAL);

    static const size_t sizes[] = {5, 16, 300, 2100, 5000, 20000, 6, 250};
    uint32_t all0 = r.by_pat[1], a0 = r.by_pat[0], a_sent = 0;
    for (uint32_t i = 0; i < 600; i++) {
        unsigned t = i < 200 ? 0 : (i < 300 ? i % 3 : (i / 7) % 3); /* runs and alternation */
        a_sent += t < 2;
        publish_rec(pub, seq++, t, sizes[i % (sizeof sizes / sizeof sizes[0])]);
        if (i % 40 == 39) { /* the node drops a subscriber whose queue it cannot send */
            run_until_pat(pub, sub, &r, 1, all0 + i + 1);
        }
    }
    run_until_pat(pub, sub, &r, 1, all0 + 600);
    run_until_pat(pub, sub, &r, 0, a0 + a_sent);
    assert_int_equal(r.bad, 0);

    /* unsubscribed: a.* hears nothing more, ** everything */
    assert_int_equal(macula_mesh_unsubscribe(sub, k_pats[0]), MACULA_MESH_OK);
    a0 = r.by_pat[0];
    all0 = r.by_pat[1];
    for (uint32_t i = 0; i < 30; i++) {
        publish_rec(pub, seq++, 0, 16);
    }
    run_until_pat(pub, sub, &r, 1, all0 + 30);
    assert_int_equal(r.by_pat[0], a0);

    /* a new pattern for the topic just delivered */
    assert_int_equal(macula_mesh_subscribe(sub, k_pats[2], 0, on_rec, &r), MACULA_MESH_OK);
    for (int i = 0; i < 500 && r.by_pat[2] == 0; i++) {
        publish_rec(pub, seq++, 0, 16);
        assert_int_equal(macula_mesh_flush(pub), MACULA_MESH_OK);
        assert_int_equal(macula_mesh_run(sub, 20), MACULA_MESH_OK);
    }
    assert_true(r.by_pat[2] > 0);

    /* subscribed from inside a delivery of b.z: that delivery's later patterns are checked
     * afresh, and the node then sends b.z to the new pattern as well */
    r.sub_in_cb = true;
    for (int i = 0; i < 500 && r.by_pat[3] < 2; i++) {
        publish_rec(pub, seq++, 2, 16);
        assert_int_equal(macula_mesh_flush(pub), MACULA_MESH_OK);
        assert_int_equal(macula_mesh_run(sub, 20), MACULA_MESH_OK);
    }
    assert_false(r.sub_in_cb);
    assert_true(r.by_pat[3] >= 2);
    assert_int_equal(r.bad, 0);
    macula_mesh_disconnect(pub);
    macula_mesh_disconnect(sub);
}

/* ---- the RPC client API (mesh_rpc.h) ------------------------------------------------------ */

typedef struct rpcx {
    uv_loop_t loop;
    bool ready, closed, advertised;
    int answers;
    char result[256];
} rpcx;

static void rx_ready(macula_rpc *r, void *ctx)
{
    (void)r;
    ((rpcx *)ctx)->ready = true;
}

static void rx_closed(macula_rpc *r, const char *reason, void *ctx)
{
    (void)reason;
    ((rpcx *)ctx)->closed = true;
    macula_rpc_free(r);
}

static void rx_echo(macula_rpc *r, uint64_t request, const char *procedure, const char *args,
                    size_t len, void *ctx)
{
    (void)procedure;
    (void)ctx;
    assert_int_equal(macula_rpc_respond(r, request, args, len), MACULA_RPC_OK);
}

static void rx_advertised(macula_rpc *r, const char *error_code, const char *text, size_t len,
                          void *ctx)
{
    (void)r;
    (void)text;
    (void)len;
    ((rpcx *)ctx)->advertised = error_code == NULL;
}

static void rx_done(macula_rpc *r, const char *error_code, const char *text, size_t len, void *ctx)
{
    (void)r;
    rpcx *x = ctx;
    x->answers++;
    snprintf(x->result, sizeof x->result, "%s%.*s", error_code ? error_code : "", (int)len, text);
}

#define RX_UNTIL(x, cond)                                                                          \
    do {                                                                                           \
        uint64_t until_ = uv_hrtime() + 60ull * 1000000000ull;                                     \
        while (!(cond)) {                                                                          \
            assert_true(uv_hrtime() < until_);                                                     \
            uv_run(&(x)->loop, UV_RUN_ONCE); /* the client's 100 ms tick bounds each turn */       \
        }                                                                                          \
    } while (0)

/* A call comes back through the node from a handler on the same client. Arguments that are not
 * one JSON text (as jansson would read it) are refused at once with MACULA_RPC_EINVAL and never
 * reach the node: their callbacks never run. */
static void test_rpc_call_and_refused_arguments(void **state)
{
    node *n = *state;
    rpcx *x = calloc(1, sizeof *x);
    assert_non_null(x);
    assert_int_equal(uv_loop_init(&x->loop), 0);
    macula_rpc_callbacks cb = {.on_ready = rx_ready, .on_closed = rx_closed};
    macula_rpc *r = NULL;
    assert_int_equal(macula_rpc_open(&x->loop, n->url, REALM, &cb, x, &r), MACULA_RPC_OK);
    RX_UNTIL(x, x->ready);
    assert_int_equal(macula_rpc_advertise(r, "t.echo", rx_echo, x, rx_advertised, x),
                     MACULA_RPC_OK);
    RX_UNTIL(x, x->advertised);
    static const char args[] = "{\"a\":[1,-2.5e3,\"\\u00e9\",null],\"b\":{}}";
    assert_int_equal(macula_rpc_call(r, "t.echo", args, 10000, rx_done, x), MACULA_RPC_OK);
    RX_UNTIL(x, x->answers == 1);
    assert_string_equal(x->result, args);
    static const char *const bad[] = {
        "[1,", "\"\\ud800\"", "9223372036854775808", "{} x", "", "{\"a\":1,}", "\"\x80\""};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        assert_int_equal(macula_rpc_call(r, "t.echo", bad[i], 10000, rx_done, x),
                         MACULA_RPC_EINVAL);
        assert_int_equal(macula_rpc_cast(r, "t.echo", bad[i]), MACULA_RPC_EINVAL);
    }
    assert_int_equal(macula_rpc_call(r, "t.echo", NULL, 10000, rx_done, x), MACULA_RPC_OK);
    RX_UNTIL(x, x->answers == 2);
    assert_string_equal(x->result, "null");
    macula_rpc_close(r);
    RX_UNTIL(x, x->closed);
    uv_run(&x->loop, UV_RUN_DEFAULT); /* the handles close */
    assert_int_equal(x->answers, 2);
    assert_int_equal(uv_loop_close(&x->loop), 0);
    free(x);
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_wake, setup, teardown),
        cmocka_unit_test_setup_teardown(test_nested_delivery, setup, teardown),
        cmocka_unit_test_setup_teardown(test_qos0_burst, setup, teardown),
        cmocka_unit_test_setup_teardown(test_backpressure, setup, teardown),
        cmocka_unit_test_setup_teardown(test_topics_and_subscriptions, setup, teardown),
        cmocka_unit_test_setup_teardown(test_rpc_call_and_refused_arguments, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
