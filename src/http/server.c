/* src/http/server.c — libmicrohttpd on the libuv loop (see server.h). */
#include "server.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdbool.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

struct http_server {
    struct MHD_Daemon *d;
    uv_poll_t poll;
    uv_timer_t timer;
    http_handler handler;
    void *user;
    uint16_t port;
    int closing;
};

static void pump(http_server *s);

static void on_poll(uv_poll_t *p, int status, int events)
{
    (void)status;
    (void)events;
    pump(p->data);
}

static void on_timer(uv_timer_t *t)
{
    pump(t->data);
}

/* Runs MHD once and re-arms the timer from MHD's own timeout. */
static void pump(http_server *s)
{
    if (s->closing) {
        return;
    }
    MHD_run(s->d);
    MHD_UNSIGNED_LONG_LONG to = 0;
    if (MHD_get_timeout(s->d, &to) == MHD_YES) {
        uv_timer_start(&s->timer, on_timer, to, 0);
    } else {
        uv_timer_stop(&s->timer);
    }
}

static enum MHD_Result answer(void *cls, struct MHD_Connection *c, const char *url,
                              const char *method, const char *version, const char *upload,
                              size_t *upload_size, void **con_cls)
{
    (void)version;
    (void)upload;
    http_server *s = cls;
    if (*con_cls == NULL) { /* first call: headers only */
        *con_cls = s;
        return MHD_YES;
    }
    if (*upload_size != 0) { /* no bodies are accepted */
        *upload_size = 0;
        return MHD_YES;
    }
    http_response res = {0};
    bool is_get =
        strcmp(method, MHD_HTTP_METHOD_GET) == 0 || strcmp(method, MHD_HTTP_METHOD_HEAD) == 0;
    if (!is_get) {
        static const char msg[] = "{\"error\":\"method not allowed\"}\n";
        res.status = MHD_HTTP_METHOD_NOT_ALLOWED;
        res.content_type = "application/json";
        res.body = strdup(msg);
        res.len = sizeof msg - 1;
    } else if (s->handler(s->user, url, &res) != 0 || res.body == NULL) {
        free(res.body);
        static const char msg[] = "{\"error\":\"internal\"}\n";
        res.status = MHD_HTTP_INTERNAL_SERVER_ERROR;
        res.content_type = "application/json";
        res.body = strdup(msg);
        res.len = sizeof msg - 1;
    }
    struct MHD_Response *r =
        MHD_create_response_from_buffer(res.len, res.body, MHD_RESPMEM_MUST_FREE);
    if (r == NULL) {
        free(res.body);
        return MHD_NO;
    }
    MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, res.content_type);
    if (!is_get) {
        MHD_add_response_header(r, MHD_HTTP_HEADER_ALLOW, "GET, HEAD");
    }
    enum MHD_Result ret = MHD_queue_response(c, (unsigned)res.status, r);
    MHD_destroy_response(r);
    return ret;
}

int http_server_start(uv_loop_t *loop, const char *addr, uint16_t port, http_handler handler,
                      void *user, http_server **out, const char **errmsg)
{
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons(port)};
    if (inet_pton(AF_INET, addr, &sa.sin_addr) != 1) {
        *errmsg = "invalid IPv4 address";
        return -EINVAL;
    }
    http_server *s = calloc(1, sizeof *s);
    if (s == NULL) {
        *errmsg = "out of memory";
        return -ENOMEM;
    }
    s->handler = handler;
    s->user = user;
    s->d =
        MHD_start_daemon(MHD_USE_EPOLL | MHD_USE_TURBO, port, NULL, NULL, answer, s,
                         MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&sa, MHD_OPTION_CONNECTION_LIMIT,
                         (unsigned)256, MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)30,
                         MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)65536, MHD_OPTION_END);
    if (s->d == NULL) {
        free(s);
        *errmsg = "cannot listen (port in use?)";
        return -EADDRINUSE;
    }
    const union MHD_DaemonInfo *ei = MHD_get_daemon_info(s->d, MHD_DAEMON_INFO_EPOLL_FD);
    const union MHD_DaemonInfo *pi = MHD_get_daemon_info(s->d, MHD_DAEMON_INFO_BIND_PORT);
    s->port = pi ? pi->port : port;
    uv_poll_init(loop, &s->poll, ei->epoll_fd);
    uv_timer_init(loop, &s->timer);
    s->poll.data = s;
    s->timer.data = s;
    uv_poll_start(&s->poll, UV_READABLE, on_poll);
    *out = s;
    return 0;
}

uint16_t http_server_port(const http_server *s)
{
    return s->port;
}

static void on_closed(uv_handle_t *h)
{
    http_server *s = h->data;
    if (++s->closing == 3) { /* both handles closed (closing started at 1) */
        free(s);
    }
}

void http_server_stop(http_server *s)
{
    if (s == NULL) {
        return;
    }
    s->closing = 1;
    uv_poll_stop(&s->poll);
    uv_timer_stop(&s->timer);
    MHD_stop_daemon(s->d);
    uv_close((uv_handle_t *)&s->poll, on_closed);
    uv_close((uv_handle_t *)&s->timer, on_closed);
}
