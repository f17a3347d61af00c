/*
 * test_http_post.c — the cancellable HTTP POST (observer/http_post.h: the raft actor's forwarding,
 * the OTLP exporter) against the project's HTTP server on a real libuv loop (127.0.0.1, any free
 * port):
 *  - an answered POST: the server sees the path and the body, the owner gets the status;
 *  - nothing listening: the owner gets status 0 and a connect error;
 *  - released while the server holds the answer back (a bare TCP listener that reads the
 *    request and never answers): the client closes its connection (the listener reads EOF long
 *    before the request's own timeout), nothing reaches the owner (a control message sent
 *    after the close arrives alone), everything is freed (LSan) once the loop has closed the
 *    handles;
 *  - released, then the runtime freed before the loop closes the handles (a node's shutdown):
 *    nothing touches the runtime again (ASan).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <uv.h>

#include "flow/observer/http_post.h"
#include "http/server.h"
#include "macula/sup.h"

#define TAG 0x7e57
#define CONTROL_TAG 0x7e58

typedef struct fixture {
    uv_loop_t loop;
    sup_rt *rt;
    sup_pid owner;
    http_server *srv;
    uint16_t port;
    /* what the server saw */
    int requests;
    char path[128];
    char body[256];
    bool hold;          /* do not answer */
    http_request *held; /* the request held back (until its close) */
    /* a bare TCP listener that never answers (released_in_flight) */
    uv_tcp_t raw_srv, raw_peer;
    bool raw_srv_open, raw_peer_open; /* closed by teardown (also after a failed assert) */
    char raw_buf[1024];
    size_t raw_len;
    int raw_request; /* a complete request was read */
    int raw_eof;     /* the client closed the connection */
    /* what the owner got */
    int results;  /* well-formed outcome messages */
    int infos;    /* every TAG message, whatever its size */
    int controls; /* CONTROL_TAG messages */
    flow_http_result last;
} fixture;

static fixture *the; /* the owner actor's view of the fixture */

static void owner_info(sup_actor *self, void *state, const sup_msg *m)
{
    (void)self;
    (void)state;
    if (m->kind == SUP_MSG_INFO && m->tag == CONTROL_TAG) {
        the->controls++;
        return;
    }
    if (m->tag == TAG) {
        the->infos++;
    }
    if (m->kind == SUP_MSG_INFO && m->tag == TAG && m->len == sizeof(flow_http_result)) {
        memcpy(&the->last, m->data, sizeof the->last);
        the->results++;
    }
}

static const sup_behaviour owner_behaviour = {
    .name = "fwd_http_owner",
    .handle_info = owner_info,
};

static void held_closed(void *arg)
{
    ((fixture *)arg)->held = NULL;
}

static void on_request(void *user, http_request *r)
{
    fixture *f = user;
    f->requests++;
    size_t len = 0;
    const char *body = http_request_body(r, &len);
    snprintf(f->path, sizeof f->path, "%s", http_request_path(r));
    snprintf(f->body, sizeof f->body, "%.*s", (int)len, body ? body : "");
    if (f->hold) {
        f->held = r;
        http_request_on_close(r, held_closed, f);
        return;
    }
    http_request_respond(r, 200, "application/json", NULL, "{\"ok\":1}", 8);
}

static int setup(void **state)
{
    fixture *f = calloc(1, sizeof *f);
    assert_non_null(f);
    the = f;
    assert_int_equal(uv_loop_init(&f->loop), 0);
    f->rt = sup_rt_new(&f->loop);
    assert_non_null(f->rt);
    sup_reason why;
    assert_int_equal(sup_spawn(f->rt, SUP_NOPID, &owner_behaviour, NULL, 0, &f->owner, &why), 0);
    http_server_options o = {.addr = "127.0.0.1", .request_handler = on_request, .user = f};
    const char *err = NULL;
    assert_int_equal(http_server_start_opts(&f->loop, &o, &f->srv, &err), 0);
    f->port = http_server_port(f->srv);
    assert_true(f->port > 0);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture *f = *state;
    if (f->srv) {
        http_server_stop(f->srv);
    }
    if (f->rt) {
        sup_rt_free(f->rt);
    }
    if (f->raw_peer_open) {
        uv_close((uv_handle_t *)&f->raw_peer, NULL);
    }
    if (f->raw_srv_open) {
        uv_close((uv_handle_t *)&f->raw_srv, NULL);
    }
    uv_run(&f->loop, UV_RUN_DEFAULT);
    int rc = uv_loop_close(&f->loop);
    free(f);
    return rc;
}

/* Runs the loop until *flag becomes true (bounded by a number of turns, not by time). */
static void run_until(fixture *f, const int *counter, int want)
{
    for (int i = 0; i < 200000 && *counter < want; i++) {
        uv_run(&f->loop, UV_RUN_NOWAIT);
        if (*counter < want) {
            uv_sleep(1);
        }
    }
    assert_true(*counter >= want);
}

static void url_of(const fixture *f, uint16_t port, flow_http_url *u)
{
    char text[96], err[64];
    snprintf(text, sizeof text, "http://127.0.0.1:%u/flow/cluster_propose", (unsigned)port);
    assert_int_equal(flow_http_url_parse(text, u, err, sizeof err), 0);
    (void)f;
}

static void answered(void **state)
{
    fixture *f = *state;
    flow_http_url u;
    url_of(f, f->port, &u);
    const char *json = "{\"entries\":[]}";
    flow_http_req *r = NULL;
    assert_int_equal(flow_http_post(&f->loop, f->rt, f->owner, TAG, 42, &u, "application/json",
                                    strdup(json), strlen(json), 10000, &r),
                     0);
    assert_non_null(r);
    run_until(f, &f->results, 1);
    assert_int_equal(f->last.status, 200);
    assert_int_equal(f->last.id, 42);
    assert_string_equal(f->last.error, "");
    assert_int_equal(f->requests, 1);
    assert_string_equal(f->path, "/flow/cluster_propose");
    assert_string_equal(f->body, json);
    flow_http_release(r); /* the owner took the answer */
}

static void nothing_listening(void **state)
{
    fixture *f = *state;
    /* a port that was free a moment ago: bind it, note it, close it */
    uv_tcp_t probe;
    struct sockaddr_in a;
    uv_ip4_addr("127.0.0.1", 0, &a);
    uv_tcp_init(&f->loop, &probe);
    assert_int_equal(uv_tcp_bind(&probe, (const struct sockaddr *)&a, 0), 0);
    struct sockaddr_in got;
    int len = sizeof got;
    uv_tcp_getsockname(&probe, (struct sockaddr *)&got, &len);
    uint16_t port = ntohs(got.sin_port);
    uv_close((uv_handle_t *)&probe, NULL);
    flow_http_url u;
    url_of(f, port, &u);
    flow_http_req *r = NULL;
    assert_int_equal(flow_http_post(&f->loop, f->rt, f->owner, TAG, 7, &u, "application/json",
                                    strdup("{}"), 2, 10000, &r),
                     0);
    assert_non_null(r);
    run_until(f, &f->results, 1);
    assert_int_equal(f->last.status, 0);
    assert_int_equal(f->last.id, 7);
    assert_non_null(strstr(f->last.error, "connect"));
    flow_http_release(r);
}

static void raw_alloc(uv_handle_t *h, size_t size, uv_buf_t *b)
{
    (void)size;
    fixture *f = h->data;
    b->base = f->raw_buf + f->raw_len;
    b->len = sizeof f->raw_buf - 1 - f->raw_len;
}

static void raw_read(uv_stream_t *s, ssize_t n, const uv_buf_t *b)
{
    (void)b;
    fixture *f = s->data;
    if (n > 0) {
        f->raw_len += (size_t)n;
        f->raw_buf[f->raw_len] = '\0';
        const char *end = strstr(f->raw_buf, "\r\n\r\n");
        if (end != NULL && strcmp(end + 4, "{}") == 0) {
            f->raw_request = 1;
        }
    } else if (n < 0) { /* EOF or reset: the client closed its end */
        f->raw_eof = 1;
        uv_read_stop(s);
    }
}

static void raw_connection(uv_stream_t *srv, int status)
{
    fixture *f = srv->data;
    if (status < 0 || f->raw_peer_open) {
        return;
    }
    assert_int_equal(uv_tcp_init(&f->loop, &f->raw_peer), 0);
    f->raw_peer.data = f;
    f->raw_peer_open = true;
    assert_int_equal(uv_accept(srv, (uv_stream_t *)&f->raw_peer), 0);
    assert_int_equal(uv_read_start((uv_stream_t *)&f->raw_peer, raw_alloc, raw_read), 0);
}

static void released_in_flight(void **state)
{
    fixture *f = *state;
    /* a listener that reads the request and never answers */
    struct sockaddr_in a;
    uv_ip4_addr("127.0.0.1", 0, &a);
    assert_int_equal(uv_tcp_init(&f->loop, &f->raw_srv), 0);
    f->raw_srv.data = f;
    f->raw_srv_open = true;
    assert_int_equal(uv_tcp_bind(&f->raw_srv, (const struct sockaddr *)&a, 0), 0);
    assert_int_equal(uv_listen((uv_stream_t *)&f->raw_srv, 4, raw_connection), 0);
    struct sockaddr_in got;
    int len = sizeof got;
    assert_int_equal(uv_tcp_getsockname(&f->raw_srv, (struct sockaddr *)&got, &len), 0);
    flow_http_url u;
    url_of(f, ntohs(got.sin_port), &u);
    flow_http_req *r = NULL;
    /* a timeout far beyond run_until's bound: only the release can close the connection */
    assert_int_equal(flow_http_post(&f->loop, f->rt, f->owner, TAG, 9, &u, "application/json",
                                    strdup("{}"), 2, 3600000, &r),
                     0);
    assert_non_null(r);
    run_until(f, &f->raw_request, 1); /* the server has it and holds the answer */
    assert_int_equal(f->raw_eof, 0);
    flow_http_release(r);
    run_until(f, &f->raw_eof, 1); /* the release closed the client's connection */
    /* anything the release sent the owner was queued before that close; a control message
     * sent now arrives after it */
    char one = 1;
    assert_int_equal(sup_send(f->rt, SUP_NOPID, f->owner, CONTROL_TAG, &one, 1), 0);
    run_until(f, &f->controls, 1);
    assert_int_equal(f->infos, 0); /* nothing reached the owner */
    assert_int_equal(f->results, 0);
}

static void released_then_runtime_freed(void **state)
{
    fixture *f = *state;
    f->hold = true;
    flow_http_url u;
    url_of(f, f->port, &u);
    flow_http_req *r = NULL;
    assert_int_equal(flow_http_post(&f->loop, f->rt, f->owner, TAG, 11, &u, "application/json",
                                    strdup("{}"), 2, 10000, &r),
                     0);
    assert_non_null(r);
    /* the owner ends (shutdown) before the request got anywhere: release, free the runtime,
     * then let the loop close the handles (teardown's uv_run) */
    flow_http_release(r);
    sup_rt_free(f->rt);
    f->rt = NULL;
    http_server_stop(f->srv);
    f->srv = NULL;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(answered, setup, teardown),
        cmocka_unit_test_setup_teardown(nothing_listening, setup, teardown),
        cmocka_unit_test_setup_teardown(released_in_flight, setup, teardown),
        cmocka_unit_test_setup_teardown(released_then_runtime_freed, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
