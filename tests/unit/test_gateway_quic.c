/* tests/unit/test_gateway_quic.c — the gateway system on a real QUIC endpoint (loopback UDP,
 * TLS 1.3, real identities), driven by real clients (src/mesh/client.h) and a raw QUIC client
 * that sends garbage: handshake and node ids, max_clients, realm refusal, a garbage client
 * dropped with its error while the others are served, a freed slot reused. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>
#include <uv.h>

#include <cmocka.h>

#include "macula/sup.h"
#include "macula/sup_supervisor.h"
#include "mesh/client.h"
#include "mesh/gateway/quic_server.h"
#include "mesh/gateway/system.h"
#include "mesh/identity.h"
#include "mesh/quic.h"

#define REALM "t.realm"

typedef struct cl {
    mesh_client *c;
    bool ready, closed;
    int err;
    char reason[96];
    uint8_t server_id[IDENTITY_ID_LEN];
    int pongs;
    bool ponged;
} cl;

typedef struct world {
    uv_loop_t loop;
    sup_rt *rt;
    sup_pid sys;
    gw_system_config cfg;
    char dir[64];
    identity *node_id;
    identity *client_id[6];
    uint16_t port;
    uv_timer_t watchdog;
    bool expired;
} world;

static world *W;

static void on_ready(mesh_client *c, const uint8_t server_id[IDENTITY_ID_LEN], void *ctx)
{
    (void)c;
    cl *k = ctx;
    k->ready = true;
    memcpy(k->server_id, server_id, IDENTITY_ID_LEN);
}

static void on_frame(mesh_client *c, const wire_msg *m, void *ctx)
{
    (void)c;
    cl *k = ctx;
    if (m->type == WIRE_PONG) {
        k->pongs++;
        k->ponged = true;
    }
}

static void on_closed(mesh_client *c, int err, const char *reason, void *ctx)
{
    cl *k = ctx;
    k->closed = true;
    k->err = err;
    snprintf(k->reason, sizeof k->reason, "%s", reason);
    mesh_client_free(c);
    k->c = NULL;
}

static void expire(uv_timer_t *t)
{
    ((world *)t->data)->expired = true;
}

/* Runs the loop until *flag (a watchdog turns a hang into a failure instead of a stuck test). */
static void wait_for(world *w, const bool *flag)
{
    w->expired = false;
    uv_timer_start(&w->watchdog, expire, 30000, 0);
    while (!*flag && !w->expired) {
        uv_run(&w->loop, UV_RUN_ONCE);
    }
    uv_timer_stop(&w->watchdog);
    assert_false(w->expired);
}

static void open_client(world *w, cl *k, int which, const char *realm)
{
    memset(k, 0, sizeof *k);
    static const mesh_client_callbacks cb = {
        .on_ready = on_ready, .on_frame = on_frame, .on_closed = on_closed};
    char url[64];
    snprintf(url, sizeof url, "https://127.0.0.1:%u", (unsigned)w->port);
    assert_int_equal(
        mesh_client_open(&w->loop, w->client_id[which], url, realm, NULL, &cb, k, &k->c),
        MESH_CLIENT_OK);
}

static identity *make_identity(const char *dir, const char *sub)
{
    char path[128];
    snprintf(path, sizeof path, "%s/%s", dir, sub);
    identity_config ic = {.data_dir = path, .cert_validity_days = 1};
    identity *id = NULL;
    char err[256];
    assert_int_equal(identity_load_or_create(&ic, &id, err, sizeof err), IDENTITY_OK);
    return id;
}

static int setup(void **state)
{
    (void)state;
    world *w = calloc(1, sizeof *w);
    W = w;
    snprintf(w->dir, sizeof w->dir, "/tmp/macula-gwq-XXXXXX");
    if (mkdtemp(w->dir) == NULL) {
        return -1;
    }
    w->node_id = make_identity(w->dir, "node");
    for (int i = 0; i < 6; i++) {
        char sub[16];
        snprintf(sub, sizeof sub, "c%d", i);
        w->client_id[i] = make_identity(w->dir, sub);
    }
    uv_loop_init(&w->loop);
    uv_timer_init(&w->loop, &w->watchdog);
    w->watchdog.data = w;
    w->rt = sup_rt_new(&w->loop);
    w->cfg.health.addr = "127.0.0.1";
    w->cfg.health.port = 0;
    w->cfg.realm = REALM;
    memcpy(w->cfg.node_id, identity_node_id(w->node_id), IDENTITY_ID_LEN);
    w->cfg.quic.addr = "127.0.0.1";
    w->cfg.quic.port = 0;
    w->cfg.quic.id = w->node_id;
    w->cfg.gateway.core.max_clients = 2;
    sup_reason why;
    if (gw_system_start(w->rt, SUP_NOPID, &w->cfg, NULL, &w->sys, &why) != 0) {
        return -1;
    }
    gw_quic_stats st;
    if (!gw_quic_server_stats(w->rt, &st) || st.port == 0) {
        return -1;
    }
    w->port = st.port;
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    world *w = W;
    sup_reason sd = sup_reason_shutdown();
    sup_stop_sync(w->rt, w->sys, &sd);
    sup_rt_free(w->rt);
    uv_close((uv_handle_t *)&w->watchdog, NULL);
    uv_run(&w->loop, UV_RUN_DEFAULT);
    int rc = uv_loop_close(&w->loop);
    identity_free(w->node_id);
    for (int i = 0; i < 6; i++) {
        identity_free(w->client_id[i]);
    }
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", w->dir);
    if (system(cmd) != 0) {
        rc = -1;
    }
    free(w);
    return rc;
}

/* ---- the garbage client: raw QUIC, one stream, bytes that are not a frame ---------------- */

typedef struct raw {
    quic_endpoint *ep;
    bool closed;
    char reason[96];
    uint64_t code;
} raw;

static void raw_connected(quic_conn *c, void *ctx)
{
    (void)ctx;
    int64_t sid;
    assert_int_equal(quic_stream_open(c, &sid), QUIC_OK);
    /* version 9: the gateway must answer unsupported_version and close */
    static const uint8_t junk[] = {9, 1, 0, 0, 0, 0, 0, 4, 'j', 'u', 'n', 'k'};
    assert_int_equal(quic_stream_write(c, sid, junk, sizeof junk, false), QUIC_OK);
}

static void raw_closed(quic_conn *c, const quic_close_info *info, void *ctx)
{
    (void)c;
    raw *r = ctx;
    r->closed = true;
    r->code = info->code;
    snprintf(r->reason, sizeof r->reason, "%s", info->reason);
}

static void ping(cl *k)
{
    wire_msg m = {.type = WIRE_PING};
    m.ping.timestamp = 1;
    assert_int_equal(mesh_client_send(k->c, &m), MESH_CLIENT_OK);
}

static void test_gateway_over_quic(void **state)
{
    (void)state;
    world *w = W;
    cl a, b, c;
    open_client(w, &a, 0, REALM);
    open_client(w, &b, 1, REALM);
    wait_for(w, &a.ready);
    wait_for(w, &b.ready);
    /* the node id each client derived from the certificate is the node's */
    assert_memory_equal(a.server_id, identity_node_id(w->node_id), IDENTITY_ID_LEN);
    assert_memory_equal(b.server_id, identity_node_id(w->node_id), IDENTITY_ID_LEN);

    /* max_clients = 2: the third is refused with the reason */
    open_client(w, &c, 2, REALM);
    wait_for(w, &c.closed);
    assert_false(c.ready);
    assert_int_equal(c.err, MESH_CLIENT_EREFUSED);
    assert_string_equal(c.reason, "max_clients_reached");

    /* a client that sends garbage is dropped with its error ... */
    raw r = {0};
    quic_config qc = {.id = w->client_id[3],
                      .cb = {.on_connected = raw_connected, .on_closed = raw_closed},
                      .ctx = &r};
    assert_int_equal(quic_endpoint_new(&w->loop, &qc, &r.ep), QUIC_OK);
    quic_conn *rc = NULL;
    assert_int_equal(quic_connect(r.ep, "127.0.0.1", w->port, NULL, NULL, &rc), QUIC_OK);
    wait_for(w, &r.closed);
    assert_string_equal(r.reason, "unsupported_version");
    quic_endpoint_close(r.ep);

    /* ... while the connected clients are still served */
    ping(&a);
    ping(&b);
    wait_for(w, &a.ponged);
    wait_for(w, &b.ponged);
    assert_int_equal(a.pongs, 1);
    assert_int_equal(b.pongs, 1);
    assert_false(a.closed || b.closed);

    /* another realm is refused; a slot freed by a DISCONNECT is reused */
    mesh_client_close(b.c, "bye");
    wait_for(w, &b.closed);
    assert_int_equal(b.err, MESH_CLIENT_ECLOSED);
    cl d, e;
    open_client(w, &d, 4, "other.realm");
    wait_for(w, &d.closed);
    assert_int_equal(d.err, MESH_CLIENT_EREFUSED);
    assert_string_equal(d.reason, "realm_mismatch");
    open_client(w, &e, 5, REALM);
    wait_for(w, &e.ready);

    gw_quic_stats st;
    assert_true(gw_quic_server_stats(w->rt, &st));
    assert_true(st.handshakes_ok >= 6);

    mesh_client_close(a.c, "done");
    mesh_client_close(e.c, "done");
    wait_for(w, &a.closed);
    wait_for(w, &e.closed);
}

/* ---- the same against a real `macula node` process ------------------------------------ */

/* Starts MACULA_BIN node with a private HOME, QUIC and health on free ports and the given
 * extra flag; returns its pid and the bound QUIC port read from the banner. */
static pid_t start_node(world *w, const char *flag, const char *value, uint16_t *port)
{
    const char *bin = getenv("MACULA_BIN");
    assert_non_null(bin);
    int fds[2];
    assert_int_equal(pipe(fds), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        char home[128];
        snprintf(home, sizeof home, "%s/home", w->dir);
        setenv("HOME", home, 1);
        setenv("MACULA_REALM", REALM, 1);
        setenv("MACULA_QUIC_PORT", "0", 1);
        setenv("HEALTH_PORT", "0", 1);
        setenv("MACULA_HEALTH_ADDR", "127.0.0.1", 1);
        dup2(fds[1], 1);
        close(fds[0]);
        close(fds[1]);
        execl(bin, bin, "node", flag, value, (char *)NULL);
        _exit(127);
    }
    close(fds[1]);
    FILE *out = fdopen(fds[0], "r");
    char line[4096];
    unsigned p = 0;
    while (p == 0 && fgets(line, sizeof line, out) != NULL) {
        (void)sscanf(line, "  quic       udp 0.0.0.0:%u", &p); /* NOLINT(cert-err34-c) */
    }
    fclose(out); /* the node's later output goes to a closed pipe: SIGPIPE is ignored there */
    assert_true(p > 0 && p < 65536);
    *port = (uint16_t)p;
    return pid;
}

static void test_node_process(void **state)
{
    (void)state;
    world *w = W;
    uint16_t port;
    pid_t node = start_node(w, "--max-clients", "1", &port);
    uint16_t inproc = w->port;
    w->port = port;
    cl a, b;
    open_client(w, &a, 0, REALM);
    wait_for(w, &a.ready);
    /* the node's limit is 1: the second is refused */
    open_client(w, &b, 1, REALM);
    wait_for(w, &b.closed);
    assert_int_equal(b.err, MESH_CLIENT_EREFUSED);
    assert_string_equal(b.reason, "max_clients_reached");
    /* garbage from a second connection: dropped with its error, the client still served */
    raw r = {0};
    quic_config qc = {.id = w->client_id[3],
                      .cb = {.on_connected = raw_connected, .on_closed = raw_closed},
                      .ctx = &r};
    assert_int_equal(quic_endpoint_new(&w->loop, &qc, &r.ep), QUIC_OK);
    quic_conn *rc = NULL;
    assert_int_equal(quic_connect(r.ep, "127.0.0.1", port, NULL, NULL, &rc), QUIC_OK);
    wait_for(w, &r.closed);
    assert_string_equal(r.reason, "unsupported_version");
    quic_endpoint_close(r.ep);
    ping(&a);
    wait_for(w, &a.ponged);
    assert_false(a.closed);
    mesh_client_close(a.c, "done");
    wait_for(w, &a.closed);
    w->port = inproc;
    kill(node, SIGTERM);
    int status = 0;
    assert_int_equal(waitpid(node, &status, 0), node);
    assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_gateway_over_quic, setup, teardown),
        cmocka_unit_test_setup_teardown(test_node_process, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
