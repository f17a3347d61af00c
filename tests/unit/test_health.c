/* tests/unit/test_health.c — the node's HTTP endpoints, over real sockets. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <uv.h>

#include <cmocka.h>

#include "macula/sup.h"
#include "macula/sup_supervisor.h"
#include "mesh/root.h"

typedef struct req {
    uint16_t port;
    const char *method;
    const char *path;
    int status;
    char body[262144]; /* /metrics grows with every subsystem */
    volatile int done;
} req;

/* A blocking HTTP/1.0 client, run in a thread while the loop serves. */
static void *client(void *arg)
{
    req *r = arg;
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons(r->port)};
    inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
    r->status = -1;
    if (connect(fd, (struct sockaddr *)&sa, sizeof sa) == 0) {
        char line[256];
        int n =
            snprintf(line, sizeof line, "%s %s HTTP/1.0\r\nHost: x\r\n\r\n", r->method, r->path);
        if (write(fd, line, (size_t)n) == n) {
            static __thread char buf[270000];
            size_t len = 0;
            ssize_t k;
            while (len < sizeof buf - 1 && (k = read(fd, buf + len, sizeof buf - 1 - len)) > 0) {
                len += (size_t)k;
            }
            buf[len] = '\0';
            sscanf(buf, "HTTP/1.%*d %d", &r->status);
            const char *body = strstr(buf, "\r\n\r\n");
            snprintf(r->body, sizeof r->body, "%s", body ? body + 4 : "");
        }
    }
    close(fd);
    r->done = 1;
    return NULL;
}

typedef struct node {
    uv_loop_t loop;
    sup_rt *rt;
    sup_pid root;
    mesh_root_config cfg;
    evloop_stats loop_stats; /* what a node loop would count (src/base/evloop.h) */
    uint16_t port;
} node;

static void get(node *n, const char *method, const char *path, req *r)
{
    memset(r, 0, sizeof *r);
    r->port = n->port;
    r->method = method;
    r->path = path;
    pthread_t t;
    pthread_create(&t, NULL, client, r);
    while (!r->done) {
        uv_run(&n->loop, UV_RUN_NOWAIT);
        usleep(1000);
    }
    pthread_join(t, NULL);
}

static int node_up(void **state)
{
    node *n = calloc(1, sizeof *n);
    uv_loop_init(&n->loop);
    n->rt = sup_rt_new(&n->loop);
    mesh_root_config_defaults(&n->cfg);
    n->cfg.gateway.health.addr = "127.0.0.1";
    n->cfg.gateway.health.port = 0; /* any free port */
    n->loop_stats = (evloop_stats){.polls = 7, .hits = 5, .sleeps = 3, .poll_ns = 1500000000};
    n->cfg.gateway.health.loop = &n->loop_stats;
    sup_reason why;
    if (mesh_root_start(n->rt, &n->cfg, &n->root, &why) != 0) {
        return -1;
    }
    n->port = gw_health_port(n->rt);
    if (n->port == 0) {
        return -1;
    }
    *state = n;
    return 0;
}

static int node_down(void **state)
{
    node *n = *state;
    sup_reason sd = sup_reason_shutdown();
    sup_stop_sync(n->rt, n->root, &sd);
    sup_rt_free(n->rt);
    uv_run(&n->loop, UV_RUN_DEFAULT);
    int rc = uv_loop_close(&n->loop);
    free(n);
    return rc;
}

static void test_health_ready_live(void **state)
{
    node *n = *state;
    req r;
    get(n, "GET", "/health", &r);
    assert_int_equal(r.status, 200);
    assert_non_null(strstr(r.body, "\"status\":\"healthy\""));
    assert_non_null(strstr(r.body, "\"ready\":true"));
    assert_non_null(strstr(r.body, "\"uptime\":"));
    assert_null(strstr(r.body, "waiting"));
    get(n, "GET", "/ready", &r);
    assert_int_equal(r.status, 200);
    assert_string_equal(r.body, "{\"ready\":true}\n");
    get(n, "GET", "/live", &r);
    assert_int_equal(r.status, 200);
}

static void test_tree_shows_seed_names(void **state)
{
    node *n = *state;
    req r;
    get(n, "GET", "/tree", &r);
    assert_int_equal(r.status, 200);
    assert_non_null(strstr(r.body, "\"id\":\"macula_root\""));
    assert_non_null(strstr(r.body, "\"id\":\"macula_gateway_system\""));
    assert_non_null(strstr(r.body, "\"strategy\":\"rest_for_one\""));
    assert_non_null(strstr(r.body, "\"id\":\"macula_gateway_health\""));
}

static void test_not_found_and_method(void **state)
{
    node *n = *state;
    req r;
    get(n, "GET", "/nothing-here", &r);
    assert_int_equal(r.status, 404);
    get(n, "POST", "/health", &r);
    assert_int_equal(r.status, 405);
    get(n, "DELETE", "/tree", &r);
    assert_int_equal(r.status, 405);
}

static void test_metrics_prometheus_format(void **state)
{
    node *n = *state;
    req r;
    get(n, "GET", "/metrics", &r);
    assert_int_equal(r.status, 200);
    assert_non_null(strstr(r.body, "# TYPE macula_actors gauge\nmacula_actors "));
    assert_non_null(
        strstr(r.body, "macula_supervisor_restarts_total{supervisor=\"macula_gateway_system\"} 0"));
    /* the gateway's counters */
    assert_non_null(
        strstr(r.body, "# TYPE macula_gateway_clients gauge\nmacula_gateway_clients 0\n"));
    assert_non_null(
        strstr(r.body, "macula_gateway_connects_refused_total{reason=\"realm_mismatch\"} 0\n"));
    assert_non_null(strstr(r.body, "macula_gateway_frames_in_total{type=\"connect\"} 0\n"));
    assert_non_null(strstr(r.body, "macula_gateway_decode_errors_total{kind=\"malformed\"} 0\n"));
    assert_non_null(strstr(r.body, "macula_gateway_clients_tracked 0\n"));
    /* the node loop's polling (the stats the loop's owner handed over) */
    assert_non_null(strstr(r.body, "# TYPE macula_loop_poll_seconds_total counter\n"
                                   "macula_loop_poll_seconds_total 1.500000\n"));
    assert_non_null(strstr(r.body, "\nmacula_loop_polls_total 7\n"));
    assert_non_null(strstr(r.body, "\nmacula_loop_poll_hits_total 5\n"));
    assert_non_null(strstr(r.body, "\nmacula_loop_sleeps_total 3\n"));
    /* Where promtool is installed (the test set-up installs it), it must accept the page. */
    if (system("command -v promtool >/dev/null 2>&1") == 0) {
        char path[] = "/tmp/macula-metrics-XXXXXX";
        int fd = mkstemp(path);
        assert_true(fd >= 0);
        assert_int_equal(write(fd, r.body, strlen(r.body)), (ssize_t)strlen(r.body));
        close(fd);
        char cmd[256];
        snprintf(cmd, sizeof cmd, "promtool check metrics < %s", path);
        int rc = system(cmd);
        unlink(path);
        assert_int_equal(rc, 0);
    }
}

/* Readiness follows the serving actors: with the pubsub worker stopped (terminate_child, so
 * nothing restarts it) /ready and /health answer 503 and name it, /live and /tree still
 * answer; once it runs again the node is ready. */
static void test_not_ready_while_a_worker_is_down(void **state)
{
    node *n = *state;
    sup_actor_info ai; /* the pubsub worker's supervisor: macula_gateway_workers_sup */
    assert_int_equal(sup_actor_info_get(n->rt, sup_whereis(n->rt, "macula_gateway_pubsub"), &ai),
                     0);
    sup_pid ws = ai.parent;
    assert_int_equal(sup_terminate_child_sync(n->rt, ws, "macula_gateway_pubsub", SUP_NOPID), 0);
    req r;
    get(n, "GET", "/ready", &r);
    assert_int_equal(r.status, 503);
    assert_string_equal(r.body, "{\"ready\":false,\"waiting\":[\"macula_gateway_pubsub\"]}\n");
    get(n, "GET", "/health", &r);
    assert_int_equal(r.status, 503);
    assert_non_null(strstr(r.body, "\"status\":\"unhealthy\",\"ready\":false"));
    assert_non_null(strstr(r.body, "\"waiting\":[\"macula_gateway_pubsub\"]"));
    get(n, "GET", "/live", &r);
    assert_int_equal(r.status, 200);
    get(n, "GET", "/tree", &r);
    assert_int_equal(r.status, 200);
    get(n, "GET", "/metrics", &r); /* the restart counters stay while a worker is down */
    assert_int_equal(r.status, 200);
    assert_non_null(strstr(r.body, "macula_supervisor_restarts_total{supervisor="));
    sup_pid again;
    sup_reason why;
    assert_int_equal(sup_restart_child_sync(n->rt, ws, "macula_gateway_pubsub", &again, &why), 0);
    get(n, "GET", "/ready", &r);
    assert_int_equal(r.status, 200);
    assert_string_equal(r.body, "{\"ready\":true}\n");
}

/* The health worker is supervised: killed, it comes back and serves again. */
static void test_health_worker_restarts(void **state)
{
    node *n = *state;
    sup_pid h = sup_whereis(n->rt, "macula_gateway_health");
    assert_false(sup_pid_is_null(h));
    sup_reason k = sup_reason_make(SUP_R_KILL, NULL);
    sup_exit(n->rt, SUP_NOPID, h, &k);
    sup_rt_run(n->rt);
    sup_pid h2 = sup_whereis(n->rt, "macula_gateway_health");
    assert_false(sup_pid_is_null(h2));
    assert_false(sup_pid_eq(h, h2));
    n->port = gw_health_port(n->rt);
    req r;
    get(n, "GET", "/metrics", &r);
    assert_int_equal(r.status, 200);
    assert_non_null(
        strstr(r.body, "macula_supervisor_restarts_total{supervisor=\"macula_gateway_system\"} 1"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_health_ready_live),
        cmocka_unit_test(test_tree_shows_seed_names),
        cmocka_unit_test(test_not_found_and_method),
        cmocka_unit_test(test_metrics_prometheus_format),
        cmocka_unit_test(test_not_ready_while_a_worker_is_down),
        cmocka_unit_test(test_health_worker_restarts),
    };
    return cmocka_run_group_tests(tests, node_up, node_down);
}
