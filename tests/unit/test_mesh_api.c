/* tests/unit/test_mesh_api.c — the client API's publish contract (include/macula/mesh.h)
 * against a real `macula node` process (MACULA_BIN):
 *  - a burst of QoS 0 publishes that never runs the loop between them (the API turns it
 *    itself every 16 KiB, macula_mesh_flush sends the rest) reaches the subscriber whole and
 *    in order; so does one followed at once by macula_mesh_disconnect;
 *  - backpressure: with the node stopped (SIGSTOP) nothing is acknowledged, so the send queue
 *    fills and a QoS 0 publish returns MACULA_MESH_ETIMEDOUT (not a silent drop, not
 *    ECLOSED); once the node continues, the same connection publishes again and its messages
 *    are delivered. No timing assertions: waits are bounded loops. */
#include <setjmp.h>
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

#include "macula/mesh.h"

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

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_qos0_burst, setup, teardown),
        cmocka_unit_test_setup_teardown(test_backpressure, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
