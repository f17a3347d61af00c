/* tests/unit/test_mcp_http.c — the Streamable HTTP transport over loopback with a real socket
 * client: status codes (400/401/403/404/405/406/413/415/503), the session lifecycle,
 * JSON and SSE answers, progress, cancellation, the GET stream, batches, idle expiry; the
 * list_changed fan-out to every session's GET stream; operator endpoints (mcp_http_add_route:
 * Origin, token and content-type refusals before the handler runs). */
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
#include <sys/time.h>
#include <unistd.h>
#include <uv.h>

#include <cmocka.h>

#include "macula/mcp.h"
#include "mcp/fixture.h"
#include "mcp/operator.h"

typedef struct hreq {
    uint16_t port;
    const char *method;
    const char *path;
    char headers[1024];
    const char *body;
    size_t body_len;
    const char *until; /* stop reading once this appears (streams); NULL: until EOF */
    int status;
    char *resp; /* whole response */
    size_t len;
    const char *rbody;
    volatile int headers_seen;
    volatile int done;
} hreq;

static void *client(void *arg)
{
    hreq *r = arg;
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct timeval tv = {.tv_sec = 20};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons(r->port)};
    inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
    r->status = -1;
    r->resp = calloc(1, 1 << 20);
    if (connect(fd, (struct sockaddr *)&sa, sizeof sa) == 0) {
        char head[2048];
        int n = snprintf(head, sizeof head,
                         "%s %s HTTP/1.0\r\nHost: 127.0.0.1\r\n%sContent-Length: %zu\r\n\r\n",
                         r->method, r->path, r->headers, r->body_len);
        ssize_t w = write(fd, head, (size_t)n);
        if (w == n && r->body_len > 0) {
            size_t off = 0;
            while (off < r->body_len) {
                ssize_t k = write(fd, r->body + off, r->body_len - off);
                if (k <= 0) {
                    break;
                }
                off += (size_t)k;
            }
        }
        ssize_t k;
        while (r->len < (1 << 20) - 1 &&
               (k = read(fd, r->resp + r->len, (1 << 20) - 1 - r->len)) > 0) {
            r->len += (size_t)k;
            r->resp[r->len] = '\0';
            if (strstr(r->resp, "\r\n\r\n") != NULL) {
                r->headers_seen = 1;
            }
            if (r->until != NULL && strstr(r->resp, r->until) != NULL) {
                break;
            }
        }
        if (strncmp(r->resp, "HTTP/1.", 7) == 0 && r->len > 12) {
            r->status = (int)strtol(r->resp + 9, NULL, 10);
        }
        const char *b = strstr(r->resp, "\r\n\r\n");
        r->rbody = b ? b + 4 : "";
    }
    close(fd);
    r->done = 1;
    return NULL;
}

#define spin_until(f, fl) spin_until_(f, fl, __LINE__)
typedef struct fx {
    uv_loop_t loop;
    mcp_server *srv;
    mcp_http *http;
    uint16_t port;
    char sid[64];
} fx;

static void spin_until_(fx *f, volatile int *flag, int line)
{
    for (int i = 0; i < 20000 && !*flag; i++) {
        uv_run(&f->loop, UV_RUN_NOWAIT);
        usleep(500);
    }
    if (!*flag)
        fprintf(stderr, "spin failed at %d\n", line);
    assert_true(*flag);
}

static void start(fx *f, hreq *r, pthread_t *t)
{
    r->port = f->port;
    pthread_create(t, NULL, client, r);
}

#define finish(f, r, t) finish_(f, r, t, __LINE__)
static void finish_(fx *f, hreq *r, pthread_t t, int line)
{
    spin_until_(f, &r->done, line);
    pthread_join(t, NULL);
}

static void req_free(hreq *r)
{
    free(r->resp);
    r->resp = NULL;
}

/* One request; `extra` are extra header lines (each ending in \r\n). */
static void do_req(fx *f, hreq *r, const char *method, const char *body, const char *extra)
{
    memset(r, 0, sizeof *r);
    r->method = method;
    r->path = "/mcp";
    r->body = body;
    r->body_len = body ? strlen(body) : 0;
    snprintf(r->headers, sizeof r->headers, "%s", extra ? extra : "");
    pthread_t t;
    start(f, r, &t);
    finish(f, r, t);
}

#define JSON_HDRS                                                                                  \
    "Content-Type: application/json\r\nAccept: application/json, text/event-stream\r\n"

static const char *header_value(const hreq *r, const char *name, char *out, size_t outlen)
{
    const char *p = r->resp;
    const char *end = strstr(p, "\r\n\r\n");
    size_t nl = strlen(name);
    while (p != NULL && p < end) {
        const char *line = strstr(p, "\r\n");
        if (line == NULL) {
            break;
        }
        p = line + 2;
        if (strncasecmp(p, name, nl) == 0 && p[nl] == ':') {
            const char *v = p + nl + 1;
            while (*v == ' ') {
                v++;
            }
            size_t n = strcspn(v, "\r");
            snprintf(out, outlen, "%.*s", (int)n, v);
            return out;
        }
    }
    return NULL;
}

static int setup_with(void **state, const mcp_http_config *hc)
{
    fx *f = calloc(1, sizeof *f);
    uv_loop_init(&f->loop);
    f->srv = mcp_server_new(NULL);
    if (mcp_fixture_register(f->srv, &f->loop) != 0) {
        return -1;
    }
    const char *err;
    if (mcp_http_start(&f->loop, f->srv, hc, &f->http, &err) != 0) {
        return -1;
    }
    f->port = mcp_http_port(f->http);
    *state = f;
    return 0;
}

static int setup(void **state)
{
    mcp_http_config c;
    mcp_http_config_defaults(&c);
    c.max_body = (size_t)64 * 1024;
    c.max_sessions = 3;
    return setup_with(state, &c);
}

static int setup_token(void **state)
{
    mcp_http_config c;
    mcp_http_config_defaults(&c);
    c.bearer_token = "s3cret";
    static const char *const origins[] = {"https://app.example", NULL};
    c.allowed_origins = origins;
    return setup_with(state, &c);
}

static int setup_expiry(void **state)
{
    mcp_http_config c;
    mcp_http_config_defaults(&c);
    c.idle_timeout_s = 1;
    c.keepalive_s = 1;
    return setup_with(state, &c);
}

static int teardown(void **state)
{
    fx *f = *state;
    mcp_http_stop(f->http);
    uv_run(&f->loop, UV_RUN_DEFAULT);
    int rc = uv_loop_close(&f->loop);
    mcp_server_free(f->srv);
    free(f);
    return rc;
}

static const char *init_body(const char *version)
{
    static char b[256];
    snprintf(b, sizeof b,
             "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"initialize\",\"params\":{"
             "\"protocolVersion\":\"%s\",\"capabilities\":{},\"clientInfo\":{\"name\":\"t\","
             "\"version\":\"1\"}}}",
             version);
    return b;
}

/* initialize + initialized; leaves the session id in f->sid. */
static void open_session(fx *f, const char *version)
{
    hreq r;
    do_req(f, &r, "POST", init_body(version), JSON_HDRS);
    assert_int_equal(r.status, 200);
    assert_non_null(header_value(&r, "Mcp-Session-Id", f->sid, sizeof f->sid));
    assert_int_equal(strlen(f->sid), 32);
    assert_non_null(strstr(r.rbody, "\"protocolVersion\""));
    req_free(&r);
    char h[512];
    snprintf(h, sizeof h, JSON_HDRS "Mcp-Session-Id: %s\r\nMCP-Protocol-Version: %s\r\n", f->sid,
             version);
    do_req(f, &r, "POST", "{\"jsonrpc\":\"2.0\",\"method\":\"notifications/initialized\"}", h);
    assert_int_equal(r.status, 202);
    assert_string_equal(r.rbody, "");
    req_free(&r);
}

static void sess_hdrs(const fx *f, char *h, size_t n, const char *accept)
{
    snprintf(h, n, "Content-Type: application/json\r\nAccept: %s\r\nMcp-Session-Id: %s\r\n", accept,
             f->sid);
}

/* ---- tests ------------------------------------------------------------------------------ */

static void test_status_codes(void **state)
{
    fx *f = *state;
    hreq r;
    memset(&r, 0, sizeof r);
    r.method = "GET";
    r.path = "/other";
    pthread_t t;
    start(f, &r, &t);
    finish(f, &r, t);
    assert_int_equal(r.status, 404);
    req_free(&r);
    char v[128];
    do_req(f, &r, "PUT", "{}", JSON_HDRS);
    assert_int_equal(r.status, 405);
    assert_string_equal(header_value(&r, "Allow", v, sizeof v), "GET, POST, DELETE");
    req_free(&r);
    do_req(f, &r, "POST", "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"ping\"}", JSON_HDRS);
    assert_int_equal(r.status, 400); /* no session, not an initialize */
    req_free(&r);
    do_req(f, &r, "POST", init_body("2025-06-18"), JSON_HDRS "Origin: http://evil.example\r\n");
    assert_int_equal(r.status, 403);
    req_free(&r);
    do_req(f, &r, "POST", init_body("2025-06-18"), JSON_HDRS "Origin: null\r\n");
    assert_int_equal(r.status, 403);
    req_free(&r);
    do_req(f, &r, "POST", init_body("2025-06-18"),
           JSON_HDRS "Origin: http://localhost.evil.example\r\n");
    assert_int_equal(r.status, 403);
    req_free(&r);
    do_req(f, &r, "POST", "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"ping\"}",
           JSON_HDRS "Mcp-Session-Id: 0123456789abcdef0123456789abcdef\r\n");
    assert_int_equal(r.status, 404);
    req_free(&r);
    do_req(f, &r, "POST", init_body("2025-06-18"),
           JSON_HDRS "MCP-Protocol-Version: 1999-01-01\r\n");
    assert_int_equal(r.status, 400);
    req_free(&r);
    do_req(f, &r, "POST", init_body("2025-06-18"),
           "Content-Type: text/plain\r\nAccept: application/json, text/event-stream\r\n");
    assert_int_equal(r.status, 415);
    req_free(&r);
    do_req(f, &r, "POST", init_body("2025-06-18"),
           "Content-Type: application/json\r\nAccept: text/html\r\n");
    assert_int_equal(r.status, 406);
    req_free(&r);
    char *big = malloc((size_t)70 * 1024);
    memset(big, ' ', (size_t)70 * 1024 - 1);
    big[(size_t)70 * 1024 - 1] = '\0';
    big[0] = '{';
    big[(size_t)70 * 1024 - 2] = '}';
    do_req(f, &r, "POST", big, JSON_HDRS);
    free(big);
    assert_int_equal(r.status, 413);
    req_free(&r);
    do_req(f, &r, "GET", NULL, "Accept: text/event-stream\r\n");
    assert_int_equal(r.status, 400);
    req_free(&r);
    do_req(f, &r, "DELETE", NULL, "");
    assert_int_equal(r.status, 400);
    req_free(&r);
    do_req(f, &r, "GET", NULL,
           "Accept: text/event-stream\r\nMcp-Session-Id: 0123456789abcdef0123456789abcdef\r\n");
    assert_int_equal(r.status, 404);
    req_free(&r);
    /* a failed initialize creates no session */
    do_req(f, &r, "POST", "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"initialize\"}", JSON_HDRS);
    assert_int_equal(r.status, 200);
    assert_non_null(strstr(r.rbody, "-32602"));
    assert_null(header_value(&r, "Mcp-Session-Id", v, sizeof v));
    assert_int_equal(mcp_http_session_count(f->http), 0);
    req_free(&r);
    /* localhost-like origins pass */
    do_req(f, &r, "POST", init_body("2025-06-18"), JSON_HDRS "Origin: http://localhost:6274\r\n");
    assert_int_equal(r.status, 200);
    req_free(&r);
    do_req(f, &r, "POST", init_body("2025-06-18"), JSON_HDRS "Origin: http://127.0.0.1\r\n");
    assert_int_equal(r.status, 200);
    req_free(&r);
    do_req(f, &r, "POST", init_body("2025-06-18"), JSON_HDRS "Origin: https://[::1]:8443\r\n");
    assert_int_equal(r.status, 200);
    req_free(&r);
    /* max_sessions is 3 */
    do_req(f, &r, "POST", init_body("2025-06-18"), JSON_HDRS);
    assert_int_equal(r.status, 503);
    req_free(&r);
    assert_int_equal(mcp_http_session_count(f->http), 3);
}

static void test_bearer_and_origins(void **state)
{
    fx *f = *state;
    hreq r;
    char v[64];
    do_req(f, &r, "POST", init_body("2025-06-18"), JSON_HDRS);
    assert_int_equal(r.status, 401);
    assert_string_equal(header_value(&r, "WWW-Authenticate", v, sizeof v), "Bearer");
    req_free(&r);
    do_req(f, &r, "POST", init_body("2025-06-18"), JSON_HDRS "Authorization: Bearer s3cre\r\n");
    assert_int_equal(r.status, 401);
    req_free(&r);
    do_req(f, &r, "POST", init_body("2025-06-18"), JSON_HDRS "Authorization: Bearer s3cretX\r\n");
    assert_int_equal(r.status, 401);
    req_free(&r);
    do_req(f, &r, "POST", init_body("2025-06-18"),
           JSON_HDRS "Authorization: Bearer s3cret\r\nOrigin: https://app.example\r\n");
    assert_int_equal(r.status, 200);
    req_free(&r);
    do_req(f, &r, "POST", init_body("2025-06-18"),
           JSON_HDRS "Authorization: Bearer s3cret\r\nOrigin: https://app.example.org\r\n");
    assert_int_equal(r.status, 403);
    req_free(&r);
}

static void test_session_lifecycle(void **state)
{
    fx *f = *state;
    open_session(f, "2025-06-18");
    assert_int_equal(mcp_http_session_count(f->http), 1);
    hreq r;
    char h[512];
    sess_hdrs(f, h, sizeof h, "application/json, text/event-stream");
    strcat(h, "MCP-Protocol-Version: 2025-06-18\r\n");
    do_req(f, &r, "POST", "{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":\"tools/list\"}", h);
    assert_int_equal(r.status, 200);
    char v[128];
    assert_string_equal(header_value(&r, "Content-Type", v, sizeof v), "application/json");
    assert_non_null(strstr(r.rbody, "\"name\":\"slow\""));
    req_free(&r);
    do_req(f, &r, "POST",
           "{\"jsonrpc\":\"2.0\",\"id\":3,\"method\":\"tools/call\",\"params\":{\"name\":\"add\","
           "\"arguments\":{\"a\":2,\"b\":3}}}",
           h);
    assert_int_equal(r.status, 200);
    assert_non_null(strstr(r.rbody, "\"structuredContent\":{\"sum\":5}"));
    req_free(&r);
    do_req(f, &r, "POST", "{\"jsonrpc\":\"2.0\",\"id\":4,\"method\":\"nope\"}", h);
    assert_int_equal(r.status, 200);
    assert_non_null(strstr(r.rbody, "-32601"));
    req_free(&r);
    do_req(f, &r, "POST", "{oops", h);
    assert_int_equal(r.status, 400);
    assert_non_null(strstr(r.rbody, "-32700"));
    req_free(&r);
    /* a supported version that is not the session's is accepted (the session's rules apply) */
    sess_hdrs(f, h, sizeof h, "application/json");
    strcat(h, "MCP-Protocol-Version: 2025-03-26\r\n");
    do_req(f, &r, "POST", "{\"jsonrpc\":\"2.0\",\"id\":5,\"method\":\"ping\"}", h);
    assert_int_equal(r.status, 200);
    req_free(&r);
    /* without the header, the session's version applies */
    sess_hdrs(f, h, sizeof h, "application/json");
    do_req(f, &r, "POST", "{\"jsonrpc\":\"2.0\",\"id\":5,\"method\":\"ping\"}", h);
    assert_int_equal(r.status, 200);
    req_free(&r);
    /* batches are refused in 2025-06-18 */
    do_req(f, &r, "POST", "[{\"jsonrpc\":\"2.0\",\"id\":6,\"method\":\"ping\"}]", h);
    assert_int_equal(r.status, 400);
    assert_non_null(strstr(r.rbody, "-32600"));
    req_free(&r);
    snprintf(h, sizeof h, "Mcp-Session-Id: %s\r\n", f->sid);
    do_req(f, &r, "DELETE", NULL, h);
    assert_int_equal(r.status, 200);
    req_free(&r);
    assert_int_equal(mcp_http_session_count(f->http), 0);
    sess_hdrs(f, h, sizeof h, "application/json");
    do_req(f, &r, "POST", "{\"jsonrpc\":\"2.0\",\"id\":7,\"method\":\"ping\"}", h);
    assert_int_equal(r.status, 404);
    req_free(&r);
}

static void test_sse_progress(void **state)
{
    fx *f = *state;
    open_session(f, "2025-06-18");
    hreq r;
    char h[512];
    sess_hdrs(f, h, sizeof h, "application/json, text/event-stream");
    do_req(f, &r, "POST",
           "{\"jsonrpc\":\"2.0\",\"id\":9,\"method\":\"tools/call\",\"params\":{\"name\":\"slow\","
           "\"arguments\":{\"steps\":3,\"interval_ms\":5},\"_meta\":{\"progressToken\":\"p\"}}}",
           h);
    assert_int_equal(r.status, 200);
    char v[128];
    assert_string_equal(header_value(&r, "Content-Type", v, sizeof v), "text/event-stream");
    const char *p1 = strstr(r.rbody, "\"progress\":1.0");
    const char *p3 = strstr(r.rbody, "\"progress\":3.0");
    const char *res = strstr(r.rbody, "\"id\":9,\"result\"");
    assert_non_null(p1);
    assert_non_null(p3);
    assert_non_null(res);
    assert_true(p1 < p3 && p3 < res);
    assert_non_null(strstr(r.rbody, "event: message\ndata: {"));
    req_free(&r);
    /* JSON only: the answer waits for the call, progress is not deliverable */
    sess_hdrs(f, h, sizeof h, "application/json");
    do_req(f, &r, "POST",
           "{\"jsonrpc\":\"2.0\",\"id\":10,\"method\":\"tools/call\",\"params\":{\"name\":"
           "\"slow\",\"arguments\":{\"steps\":2,\"interval_ms\":5},\"_meta\":{\"progressToken\":"
           "\"p\"}}}",
           h);
    assert_int_equal(r.status, 200);
    assert_string_equal(header_value(&r, "Content-Type", v, sizeof v), "application/json");
    assert_non_null(strstr(r.rbody, "\"structuredContent\":{\"steps\":2}"));
    assert_null(strstr(r.rbody, "progress"));
    req_free(&r);
    /* SSE only, synchronous answer: still an event stream */
    sess_hdrs(f, h, sizeof h, "text/event-stream");
    do_req(f, &r, "POST", "{\"jsonrpc\":\"2.0\",\"id\":11,\"method\":\"ping\"}", h);
    assert_int_equal(r.status, 200);
    assert_string_equal(header_value(&r, "Content-Type", v, sizeof v), "text/event-stream");
    assert_non_null(strstr(r.rbody, "data: {\"jsonrpc\":\"2.0\",\"id\":11,\"result\":{}}"));
    req_free(&r);
}

static void test_cancel_over_http(void **state)
{
    fx *f = *state;
    open_session(f, "2025-06-18");
    hreq call;
    memset(&call, 0, sizeof call);
    call.method = "POST";
    call.path = "/mcp";
    call.body = "{\"jsonrpc\":\"2.0\",\"id\":\"long\",\"method\":\"tools/call\",\"params\":{"
                "\"name\":\"slow\",\"arguments\":{\"steps\":1000,\"interval_ms\":20},\"_meta\":{"
                "\"progressToken\":1}}}";
    call.body_len = strlen(call.body);
    sess_hdrs(f, call.headers, sizeof call.headers, "application/json, text/event-stream");
    pthread_t t;
    start(f, &call, &t);
    for (int i = 0; i < 20000 && mcp_fixture_slow_running() == 0; i++) {
        uv_run(&f->loop, UV_RUN_NOWAIT);
        usleep(500);
    }
    assert_int_equal(mcp_fixture_slow_running(), 1);
    hreq r;
    char h[512];
    sess_hdrs(f, h, sizeof h, "application/json, text/event-stream");
    do_req(f, &r, "POST",
           "{\"jsonrpc\":\"2.0\",\"method\":\"notifications/cancelled\",\"params\":{"
           "\"requestId\":\"long\",\"reason\":\"test\"}}",
           h);
    assert_int_equal(r.status, 202);
    req_free(&r);
    finish(f, &call, t); /* the stream ends */
    assert_int_equal(mcp_fixture_slow_running(), 0);
    assert_int_equal(call.status, 200);
    assert_null(strstr(call.rbody, "\"result\"")); /* no response */
    assert_null(strstr(call.rbody, "\"error\""));
    req_free(&call);
}

static void get_start(fx *f, hreq *g, const char *until, pthread_t *t)
{
    memset(g, 0, sizeof *g);
    g->method = "GET";
    g->path = "/mcp";
    g->until = until;
    snprintf(g->headers, sizeof g->headers, "Accept: text/event-stream\r\nMcp-Session-Id: %s\r\n",
             f->sid);
    start(f, g, t);
    spin_until(f, &g->headers_seen);
}

static void test_get_stream_notification(void **state)
{
    fx *f = *state;
    open_session(f, "2025-06-18");
    /* no GET stream yet: the notification waits in the session's backlog */
    assert_int_equal(mcp_server_set_tool_enabled(f->srv, "extra", true), 0);
    hreq g1, g2;
    pthread_t t1, t2;
    get_start(f, &g1, "list_changed", &t1);
    finish(f, &g1, t1);
    assert_int_equal(g1.status, 200);
    assert_non_null(strstr(g1.rbody, "data: {\"jsonrpc\":\"2.0\",\"method\":"
                                     "\"notifications/tools/list_changed\"}"));
    req_free(&g1);
    /* a stream that stays open; a newer GET replaces it and it ends */
    get_start(f, &g1, NULL, &t1);
    get_start(f, &g2, "list_changed", &t2);
    finish(f, &g1, t1);
    assert_int_equal(g1.status, 200);
    assert_null(strstr(g1.rbody, "list_changed"));
    req_free(&g1);
    /* switching a tool on notifies over the GET stream, not over the POST */
    hreq r;
    char h[512];
    sess_hdrs(f, h, sizeof h, "application/json, text/event-stream");
    do_req(f, &r, "POST",
           "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/call\",\"params\":{\"name\":"
           "\"toggle_extra\",\"arguments\":{\"enabled\":false}}}",
           h);
    assert_int_equal(r.status, 200);
    assert_null(strstr(r.rbody, "list_changed"));
    req_free(&r);
    finish(f, &g2, t2);
    assert_int_equal(g2.status, 200);
    assert_non_null(strstr(g2.rbody, "notifications/tools/list_changed"));
    req_free(&g2);
}

static void test_batch_2025_03_26(void **state)
{
    fx *f = *state;
    open_session(f, "2025-03-26");
    hreq r;
    char h[512];
    sess_hdrs(f, h, sizeof h, "application/json, text/event-stream");
    do_req(f, &r, "POST",
           "[{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"ping\"},{\"jsonrpc\":\"2.0\",\"id\":2,"
           "\"method\":\"tools/call\",\"params\":{\"name\":\"echo\",\"arguments\":{\"text\":"
           "\"hi\"}}},{\"jsonrpc\":\"2.0\",\"method\":\"notifications/x\"}]",
           h);
    assert_int_equal(r.status, 200);
    assert_true(r.rbody[0] == '[');
    assert_non_null(strstr(r.rbody, "\"id\":1,\"result\":{}"));
    assert_non_null(strstr(r.rbody, "{\\\"text\\\":\\\"hi\\\"}"));
    req_free(&r);
    do_req(f, &r, "POST", "[{\"jsonrpc\":\"2.0\",\"method\":\"notifications/x\"}]", h);
    assert_int_equal(r.status, 202);
    req_free(&r);
}

static void test_idle_expiry(void **state)
{
    fx *f = *state;
    open_session(f, "2025-06-18");
    assert_int_equal(mcp_http_session_count(f->http), 1);
    /* the expiry timer is unref'd: run the loop in steps until the session is gone */
    for (int i = 0; i < 200 && mcp_http_session_count(f->http) > 0; i++) {
        uv_run(&f->loop, UV_RUN_NOWAIT);
        usleep(50 * 1000);
    }
    assert_int_equal(mcp_http_session_count(f->http), 0);
    hreq r;
    char h[512];
    sess_hdrs(f, h, sizeof h, "application/json");
    do_req(f, &r, "POST", "{\"jsonrpc\":\"2.0\",\"id\":7,\"method\":\"ping\"}", h);
    assert_int_equal(r.status, 404);
    req_free(&r);
}

static void test_stop_with_call_in_flight(void **state)
{
    fx *f = *state;
    open_session(f, "2025-06-18");
    hreq call;
    memset(&call, 0, sizeof call);
    call.method = "POST";
    call.path = "/mcp";
    call.body = "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/call\",\"params\":{"
                "\"name\":\"slow\",\"arguments\":{\"steps\":1000,\"interval_ms\":20}}}";
    call.body_len = strlen(call.body);
    sess_hdrs(f, call.headers, sizeof call.headers, "application/json");
    pthread_t t;
    start(f, &call, &t);
    for (int i = 0; i < 20000 && mcp_fixture_slow_running() == 0; i++) {
        uv_run(&f->loop, UV_RUN_NOWAIT);
        usleep(500);
    }
    assert_int_equal(mcp_fixture_slow_running(), 1);
    /* teardown stops the server with the call in flight: it is cancelled, nothing leaks */
    mcp_http_stop(f->http);
    f->http = NULL;
    uv_run(&f->loop, UV_RUN_DEFAULT);
    spin_until(f, &call.done);
    pthread_join(t, NULL);
    assert_int_equal(mcp_fixture_slow_running(), 0);
    req_free(&call);
}

static int count_of(const char *hay, const char *needle)
{
    int n = 0;
    for (const char *p = strstr(hay, needle); p != NULL; p = strstr(p + 1, needle)) {
        n++;
    }
    return n;
}

/* Two sessions with open GET streams and one without: one switch of two tools sends exactly
 * one list_changed on each open stream; the third gets it when its stream opens (backlog). */
static void test_list_changed_fanout(void **state)
{
    fx *f = *state;
    char sid[3][64];
    for (int i = 0; i < 3; i++) {
        open_session(f, "2025-06-18");
        snprintf(sid[i], sizeof sid[i], "%s", f->sid);
    }
    hreq g[3];
    pthread_t t[3];
    for (int i = 0; i < 2; i++) {
        snprintf(f->sid, sizeof f->sid, "%s", sid[i]);
        get_start(f, &g[i], NULL, &t[i]); /* read until the stream ends */
    }
    const char *names[] = {"echo", "extra"};
    assert_int_equal(mcp_server_set_tools_enabled(f->srv, names, 2, true), 3);
    assert_int_equal(mcp_server_set_tools_enabled(f->srv, names, 2, true), 0); /* no change */
    snprintf(f->sid, sizeof f->sid, "%s", sid[2]);
    get_start(f, &g[2], NULL, &t[2]);
    /* ending the sessions ends their streams */
    for (int i = 0; i < 3; i++) {
        hreq r;
        char h[128];
        snprintf(h, sizeof h, "Mcp-Session-Id: %s\r\n", sid[i]);
        do_req(f, &r, "DELETE", NULL, h);
        assert_int_equal(r.status, 200);
        req_free(&r);
        finish(f, &g[i], t[i]);
        assert_int_equal(g[i].status, 200);
        assert_int_equal(count_of(g[i].rbody, "notifications/tools/list_changed"), 1);
        req_free(&g[i]);
    }
}

/* A GET with extra headers, read until `until` (NULL: until the stream ends). */
static void get_with(fx *f, hreq *g, const char *extra, const char *until, pthread_t *t)
{
    memset(g, 0, sizeof *g);
    g->method = "GET";
    g->path = "/mcp";
    g->until = until;
    snprintf(g->headers, sizeof g->headers, "Accept: text/event-stream\r\nMcp-Session-Id: %s\r\n%s",
             f->sid, extra);
    start(f, g, t);
}

/* Events of the GET stream carry ids; Last-Event-ID replays from the bounded buffer. */
static void test_get_resume(void **state)
{
    fx *f = *state;
    open_session(f, "2025-06-18");
    hreq g;
    pthread_t t;
    /* two events on a stream the client then drops */
    get_with(f, &g, "", "id: 2\n", &t);
    spin_until(f, &g.headers_seen);
    assert_int_equal(mcp_server_set_tool_enabled(f->srv, "extra", true), 0);
    assert_int_equal(mcp_server_set_tool_enabled(f->srv, "extra", false), 0);
    finish(f, &g, t);
    assert_int_equal(g.status, 200);
    assert_non_null(strstr(g.rbody, "id: 1\nevent: message\ndata: {\"jsonrpc\":\"2.0\",\"method\":"
                                    "\"notifications/tools/list_changed\"}\n\n"));
    assert_non_null(strstr(g.rbody, "id: 2\n"));
    req_free(&g);
    /* two more while the client is away (sent to the dead stream or kept as undelivered) */
    assert_int_equal(mcp_server_set_tool_enabled(f->srv, "extra", true), 0);
    assert_int_equal(mcp_server_set_tool_enabled(f->srv, "extra", false), 0);
    /* resuming after 2 replays 3 and 4 */
    get_with(f, &g, "Last-Event-ID: 2\r\n", "id: 4\n", &t);
    finish(f, &g, t);
    assert_int_equal(g.status, 200);
    assert_null(strstr(g.rbody, "id: 2\n"));
    assert_int_equal(count_of(g.rbody, "id: 3\n"), 1);
    assert_int_equal(count_of(g.rbody, "id: 4\n"), 1);
    assert_true(strstr(g.rbody, "id: 3\n") < strstr(g.rbody, "id: 4\n"));
    req_free(&g);
    /* resuming from further back replays what was already delivered too */
    get_with(f, &g, "Last-Event-ID: 1\r\n", "id: 4\n", &t);
    finish(f, &g, t);
    assert_int_equal(count_of(g.rbody, "id: "), 3); /* 2, 3, 4 */
    req_free(&g);
    /* a GET without Last-Event-ID gets only what no stream received: here the next event */
    get_with(f, &g, "", "id: 5\n", &t);
    spin_until(f, &g.headers_seen);
    assert_int_equal(mcp_server_set_tool_enabled(f->srv, "extra", true), 0);
    finish(f, &g, t);
    assert_int_equal(count_of(g.rbody, "id: "), 1);
    req_free(&g);
    /* unknown or malformed ids */
    get_with(f, &g, "Last-Event-ID: 99\r\n", NULL, &t);
    finish(f, &g, t);
    assert_int_equal(g.status, 400);
    req_free(&g);
    get_with(f, &g, "Last-Event-ID: x1\r\n", NULL, &t);
    finish(f, &g, t);
    assert_int_equal(g.status, 400);
    req_free(&g);
    /* the buffer is bounded: after 70 more events, resuming from 5 gets the last 64 (12..75) */
    for (int i = 0; i < 70; i++) {
        assert_int_equal(mcp_server_set_tool_enabled(f->srv, "extra", i % 2 == 0 ? false : true),
                         0);
    }
    get_with(f, &g, "Last-Event-ID: 5\r\n", "id: 75\n", &t);
    finish(f, &g, t);
    assert_int_equal(count_of(g.rbody, "id: "), 64);
    assert_null(strstr(g.rbody, "id: 11\n"));
    assert_non_null(strstr(g.rbody, "id: 12\n"));
    req_free(&g);
    /* POST response streams carry no ids */
    hreq r;
    char h[512];
    sess_hdrs(f, h, sizeof h, "text/event-stream");
    do_req(f, &r, "POST",
           "{\"jsonrpc\":\"2.0\",\"id\":9,\"method\":\"tools/call\",\"params\":{\"name\":"
           "\"slow\",\"arguments\":{\"steps\":2,\"interval_ms\":1},\"_meta\":{"
           "\"progressToken\":\"p\"}}}",
           h);
    assert_int_equal(r.status, 200);
    assert_non_null(strstr(r.rbody, "\"id\":9"));
    assert_null(strstr(r.rbody, "id: "));
    req_free(&r);
}

typedef struct route_rec {
    int calls;
    char method[16];
    char body[128];
} route_rec;

static int route_fn(void *user, const char *method, const char *body, size_t len, char **reply)
{
    route_rec *rr = user;
    rr->calls++;
    snprintf(rr->method, sizeof rr->method, "%s", method);
    snprintf(rr->body, sizeof rr->body, "%.*s", (int)len, body);
    *reply = strdup("{\"ok\":true}");
    return 201;
}

static void route_req(fx *f, hreq *r, const char *method, const char *path, const char *body,
                      const char *headers)
{
    memset(r, 0, sizeof *r);
    r->method = method;
    r->path = path;
    r->body = body;
    r->body_len = body ? strlen(body) : 0;
    snprintf(r->headers, sizeof r->headers, "%s", headers);
    pthread_t t;
    start(f, r, &t);
    finish(f, r, t);
}

/* setup_token: bearer s3cret, extra origin https://app.example. */
static void test_admin_route(void **state)
{
    fx *f = *state;
    static route_rec rr, other;
    memset(&rr, 0, sizeof rr);
    assert_int_equal(mcp_http_add_route(f->http, "/mcp", route_fn, &rr), MCP_EEXIST);
    assert_int_equal(mcp_http_add_route(f->http, "admin", route_fn, &rr), MCP_EINVAL);
    assert_int_equal(mcp_http_add_route(f->http, "/admin/x", NULL, &rr), MCP_EINVAL);
    assert_int_equal(mcp_http_add_route(f->http, "/admin/x", route_fn, &rr), 0);
    assert_int_equal(mcp_http_add_route(f->http, "/admin/x", route_fn, &rr), MCP_EEXIST);
    for (int i = 1; i < MCP_HTTP_MAX_ROUTES; i++) {
        char p[32];
        snprintf(p, sizeof p, "/admin/r%d", i);
        assert_int_equal(mcp_http_add_route(f->http, p, route_fn, &other), 0);
    }
    assert_int_equal(mcp_http_add_route(f->http, "/admin/full", route_fn, &other), MCP_ELIMIT);
    hreq r;
    char v[64];
    static const char body[] = "{\"chaos\":true}";
    /* refusals: the handler never runs */
    route_req(f, &r, "POST", "/admin/x", body, "Content-Type: application/json\r\n");
    assert_int_equal(r.status, 401);
    assert_string_equal(header_value(&r, "WWW-Authenticate", v, sizeof v), "Bearer");
    req_free(&r);
    route_req(f, &r, "POST", "/admin/x", body,
              "Content-Type: application/json\r\nAuthorization: Bearer s3cretX\r\n");
    assert_int_equal(r.status, 401);
    req_free(&r);
    route_req(f, &r, "POST", "/admin/x", body,
              "Content-Type: application/json\r\nAuthorization: Bearer s3cret\r\n"
              "Origin: http://evil.example\r\n");
    assert_int_equal(r.status, 403);
    req_free(&r);
    route_req(f, &r, "POST", "/admin/x", body,
              "Content-Type: text/plain\r\nAuthorization: Bearer s3cret\r\n");
    assert_int_equal(r.status, 415);
    req_free(&r);
    route_req(f, &r, "POST", "/admin/y", body,
              "Content-Type: application/json\r\nAuthorization: Bearer s3cret\r\n");
    assert_int_equal(r.status, 404);
    req_free(&r);
    assert_int_equal(rr.calls, 0);
    assert_int_equal(other.calls, 0);
    /* accepted: the handler's status and JSON go back */
    route_req(f, &r, "POST", "/admin/x", body,
              "Content-Type: application/json\r\nAuthorization: Bearer s3cret\r\n"
              "Origin: https://app.example\r\n");
    assert_int_equal(r.status, 201);
    assert_string_equal(header_value(&r, "Content-Type", v, sizeof v), "application/json");
    assert_string_equal(r.rbody, "{\"ok\":true}");
    assert_int_equal(rr.calls, 1);
    assert_string_equal(rr.method, "POST");
    assert_string_equal(rr.body, body);
    req_free(&r);
    route_req(f, &r, "GET", "/admin/x", NULL, "Authorization: Bearer s3cret\r\n");
    req_free(&r);
    assert_int_equal(rr.calls, 2);
    assert_string_equal(rr.method, "GET");
    assert_string_equal(rr.body, "");
    assert_int_equal(other.calls, 0);
    /* the MCP endpoint is unaffected and no session was made */
    assert_int_equal(mcp_http_session_count(f->http), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_status_codes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bearer_and_origins, setup_token, teardown),
        cmocka_unit_test_setup_teardown(test_session_lifecycle, setup, teardown),
        cmocka_unit_test_setup_teardown(test_sse_progress, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cancel_over_http, setup, teardown),
        cmocka_unit_test_setup_teardown(test_get_stream_notification, setup, teardown),
        cmocka_unit_test_setup_teardown(test_batch_2025_03_26, setup, teardown),
        cmocka_unit_test_setup_teardown(test_idle_expiry, setup_expiry, teardown),
        cmocka_unit_test_setup_teardown(test_stop_with_call_in_flight, setup, teardown),
        cmocka_unit_test_setup_teardown(test_list_changed_fanout, setup, teardown),
        cmocka_unit_test_setup_teardown(test_admin_route, setup_token, teardown),
        cmocka_unit_test_setup_teardown(test_get_resume, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
