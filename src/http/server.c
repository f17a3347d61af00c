/* src/http/server.c — libmicrohttpd on the libuv loop (see server.h). */
#include "server.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdbool.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

struct http_server {
    struct MHD_Daemon *d;
    uv_poll_t poll;
    uv_timer_t timer;
    http_handler handler;
    http_request_handler request_handler;
    void *user;
    size_t max_body;
    uint16_t port;
    int closing;
    bool kick;          /* a suspended connection was resumed: MHD must run again */
    http_request *live; /* requests of the full-request API, for stop */
};

struct http_stream {
    http_request *req;
    char *buf;
    size_t len, off, cap;
    bool ended;
};

struct http_request {
    http_server *s;
    struct MHD_Connection *conn;
    char method[16];
    char *path;
    char *body;
    size_t len, cap;
    bool too_large;
    bool dispatched;            /* the handler has been called */
    bool in_handler;            /* inside the access handler: answers are queued on return */
    bool suspended;             /* connection suspended (waiting for an answer or stream data) */
    bool answered;              /* respond or stream was called */
    struct MHD_Response *ready; /* prepared answer not yet queued */
    unsigned ready_status;
    http_stream *stream;
    void (*on_close)(void *arg);
    void *close_arg;
    http_request *next, *prev;
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
    s->kick = false;
    MHD_run(s->d);
    MHD_UNSIGNED_LONG_LONG to = 0;
    if (s->kick) { /* a connection was resumed during the run: run again at once */
        uv_timer_start(&s->timer, on_timer, 0, 0);
    } else if (MHD_get_timeout(s->d, &to) == MHD_YES) {
        uv_timer_start(&s->timer, on_timer, to, 0);
    } else {
        uv_timer_stop(&s->timer);
    }
}

static enum MHD_Result answer_get(void *cls, struct MHD_Connection *c, const char *url,
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

/* ---- the full-request API ---------------------------------------------------------------- */

static void req_resume(http_request *r)
{
    if (r->suspended) {
        r->suspended = false;
        MHD_resume_connection(r->conn);
        /* in external epoll mode the resume does not wake the epoll fd: run MHD soon */
        if (!r->s->closing) {
            r->s->kick = true;
            uv_timer_start(&r->s->timer, on_timer, 0, 0);
        }
    }
}

static enum MHD_Result req_queue_ready(http_request *r)
{
    struct MHD_Response *resp = r->ready;
    r->ready = NULL;
    enum MHD_Result ret = MHD_queue_response(r->conn, r->ready_status, resp);
    MHD_destroy_response(resp);
    return ret;
}

static void req_add_headers(struct MHD_Response *resp, const char *content_type,
                            const char *const *headers)
{
    if (content_type != NULL) {
        MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, content_type);
    }
    for (size_t i = 0; headers != NULL && headers[i] != NULL && headers[i + 1] != NULL; i += 2) {
        MHD_add_response_header(resp, headers[i], headers[i + 1]);
    }
}

static enum MHD_Result answer_full(http_server *s, struct MHD_Connection *c, const char *url,
                                   const char *method, const char *upload, size_t *upload_size,
                                   void **con_cls)
{
    http_request *r = *con_cls;
    if (r == NULL) { /* first call: headers only */
        r = calloc(1, sizeof *r);
        if (r == NULL || (r->path = strdup(url)) == NULL) {
            free(r);
            return MHD_NO;
        }
        r->s = s;
        r->conn = c;
        snprintf(r->method, sizeof r->method, "%s", method);
        r->next = s->live;
        if (s->live != NULL) {
            s->live->prev = r;
        }
        s->live = r;
        *con_cls = r;
        return MHD_YES;
    }
    if (*upload_size != 0) {
        size_t n = *upload_size;
        *upload_size = 0;
        if (r->too_large || r->len + n > s->max_body) {
            r->too_large = true;
            return MHD_YES;
        }
        if (r->len + n + 1 > r->cap) {
            size_t cap = r->cap ? r->cap : 1024;
            while (cap < r->len + n + 1) {
                cap *= 2;
            }
            char *nb = realloc(r->body, cap);
            if (nb == NULL) {
                return MHD_NO;
            }
            r->body = nb;
            r->cap = cap;
        }
        memcpy(r->body + r->len, upload, n);
        r->len += n;
        r->body[r->len] = '\0';
        return MHD_YES;
    }
    if (r->ready != NULL) { /* resumed with an answer */
        return req_queue_ready(r);
    }
    if (r->dispatched) { /* resumed without an answer: wait again, unless stopping */
        if (s->closing) {
            return MHD_NO;
        }
        r->suspended = true;
        MHD_suspend_connection(c);
        return MHD_YES;
    }
    r->dispatched = true;
    if (r->too_large) {
        static const char msg[] = "{\"error\":\"request body too large\"}\n";
        http_request_respond(r, MHD_HTTP_CONTENT_TOO_LARGE, "application/json", NULL, msg,
                             sizeof msg - 1);
        return req_queue_ready(r);
    }
    r->in_handler = true;
    s->request_handler(s->user, r);
    r->in_handler = false;
    if (r->ready != NULL) {
        return req_queue_ready(r);
    }
    r->suspended = true;
    MHD_suspend_connection(c);
    return MHD_YES;
}

static void on_completed(void *cls, struct MHD_Connection *c, void **con_cls,
                         enum MHD_RequestTerminationCode toe)
{
    (void)c;
    (void)toe;
    http_server *s = cls;
    if (s->request_handler == NULL || *con_cls == NULL) {
        return;
    }
    http_request *r = *con_cls;
    *con_cls = NULL;
    if (r->prev != NULL) {
        r->prev->next = r->next;
    } else {
        s->live = r->next;
    }
    if (r->next != NULL) {
        r->next->prev = r->prev;
    }
    if (r->on_close != NULL) {
        r->on_close(r->close_arg);
    }
    if (r->ready != NULL) {
        MHD_destroy_response(r->ready);
    }
    if (r->stream != NULL) {
        r->stream->req = NULL;
        free(r->stream->buf);
        free(r->stream);
    }
    free(r->path);
    free(r->body);
    free(r);
}

static enum MHD_Result answer(void *cls, struct MHD_Connection *c, const char *url,
                              const char *method, const char *version, const char *upload,
                              size_t *upload_size, void **con_cls)
{
    http_server *s = cls;
    if (s->request_handler != NULL) {
        return answer_full(s, c, url, method, upload, upload_size, con_cls);
    }
    return answer_get(cls, c, url, method, version, upload, upload_size, con_cls);
}

const char *http_request_method(const http_request *r)
{
    return r->method;
}

const char *http_request_path(const http_request *r)
{
    return r->path;
}

const char *http_request_header(const http_request *r, const char *name)
{
    return MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, name);
}

const char *http_request_body(const http_request *r, size_t *len)
{
    *len = r->len;
    return r->body != NULL ? r->body : "";
}

void http_request_on_close(http_request *r, void (*fn)(void *arg), void *arg)
{
    r->on_close = fn;
    r->close_arg = arg;
}

static void req_set_ready(http_request *r, struct MHD_Response *resp, int status)
{
    r->answered = true;
    r->ready = resp;
    r->ready_status = (unsigned)status;
    if (!r->in_handler) {
        req_resume(r);
    }
}

int http_request_respond(http_request *r, int status, const char *content_type,
                         const char *const *headers, const char *body, size_t len)
{
    if (r->answered) {
        return -EALREADY;
    }
    struct MHD_Response *resp =
        MHD_create_response_from_buffer(len, (void *)(len ? body : ""), MHD_RESPMEM_MUST_COPY);
    if (resp == NULL) {
        return -ENOMEM;
    }
    req_add_headers(resp, content_type, headers);
    req_set_ready(r, resp, status);
    return 0;
}

static ssize_t stream_read(void *cls, uint64_t pos, char *buf, size_t max)
{
    (void)pos;
    http_stream *st = cls;
    http_request *r = st->req;
    if (st->off < st->len) {
        size_t n = st->len - st->off < max ? st->len - st->off : max;
        memcpy(buf, st->buf + st->off, n);
        st->off += n;
        if (st->off == st->len) {
            st->off = st->len = 0;
        }
        return (ssize_t)n;
    }
    if (st->ended || r == NULL) {
        if (r != NULL) {
            r->s->kick = true; /* MHD completes the response on its next run */
        }
        return MHD_CONTENT_READER_END_OF_STREAM;
    }
    r->suspended = true; /* nothing to send: sleep until a write or the end */
    MHD_suspend_connection(r->conn);
    return 0;
}

http_stream *http_request_stream(http_request *r, int status, const char *content_type,
                                 const char *const *headers)
{
    if (r->answered) {
        return NULL;
    }
    http_stream *st = calloc(1, sizeof *st);
    if (st == NULL) {
        return NULL;
    }
    st->req = r;
    struct MHD_Response *resp =
        MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 16384, stream_read, st, NULL);
    if (resp == NULL) {
        free(st);
        return NULL;
    }
    req_add_headers(resp, content_type, headers);
    r->stream = st;
    req_set_ready(r, resp, status);
    return st;
}

int http_stream_write(http_stream *st, const char *data, size_t len)
{
    if (st->ended || st->req == NULL) {
        return -EPIPE;
    }
    if (st->len + len > st->cap) {
        size_t cap = st->cap ? st->cap : 4096;
        while (cap < st->len + len) {
            cap *= 2;
        }
        char *nb = realloc(st->buf, cap);
        if (nb == NULL) {
            return -ENOMEM;
        }
        st->buf = nb;
        st->cap = cap;
    }
    memcpy(st->buf + st->len, data, len);
    st->len += len;
    if (!st->req->in_handler) {
        req_resume(st->req);
    }
    return 0;
}

void http_stream_end(http_stream *st)
{
    st->ended = true;
    if (st->req != NULL && !st->req->in_handler) {
        req_resume(st->req);
    }
}

int http_server_start_opts(uv_loop_t *loop, const http_server_options *o, http_server **out,
                           const char **errmsg)
{
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons(o->port)};
    if (inet_pton(AF_INET, o->addr, &sa.sin_addr) != 1) {
        *errmsg = "invalid IPv4 address";
        return -EINVAL;
    }
    http_server *s = calloc(1, sizeof *s);
    if (s == NULL) {
        *errmsg = "out of memory";
        return -ENOMEM;
    }
    s->handler = o->get_handler;
    s->request_handler = o->request_handler;
    s->user = o->user;
    s->max_body = o->max_body ? o->max_body : (size_t)1 << 20;
    unsigned flags = MHD_USE_EPOLL | MHD_USE_TURBO;
    if (s->request_handler != NULL) {
        flags |= MHD_ALLOW_SUSPEND_RESUME;
    }
    s->d = MHD_start_daemon(flags, o->port, NULL, NULL, answer, s, MHD_OPTION_SOCK_ADDR,
                            (struct sockaddr *)&sa, MHD_OPTION_CONNECTION_LIMIT,
                            o->max_connections ? o->max_connections : 256u,
                            MHD_OPTION_CONNECTION_TIMEOUT, o->timeout_s ? o->timeout_s : 30u,
                            MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)65536,
                            MHD_OPTION_NOTIFY_COMPLETED, on_completed, s, MHD_OPTION_END);
    if (s->d == NULL) {
        free(s);
        *errmsg = "cannot listen (port in use?)";
        return -EADDRINUSE;
    }
    const union MHD_DaemonInfo *ei = MHD_get_daemon_info(s->d, MHD_DAEMON_INFO_EPOLL_FD);
    const union MHD_DaemonInfo *pi = MHD_get_daemon_info(s->d, MHD_DAEMON_INFO_BIND_PORT);
    s->port = pi ? pi->port : o->port;
    uv_poll_init(loop, &s->poll, ei->epoll_fd);
    uv_timer_init(loop, &s->timer);
    s->poll.data = s;
    s->timer.data = s;
    uv_poll_start(&s->poll, UV_READABLE, on_poll);
    *out = s;
    pump(s); /* MHD may want a timeout from the start */
    return 0;
}

int http_server_start(uv_loop_t *loop, const char *addr, uint16_t port, http_handler handler,
                      void *user, http_server **out, const char **errmsg)
{
    http_server_options o = {.addr = addr, .port = port, .get_handler = handler, .user = user};
    return http_server_start_opts(loop, &o, out, errmsg);
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
    for (http_request *r = s->live; r != NULL; r = r->next) {
        req_resume(r); /* MHD closes suspended connections only once resumed */
    }
    uv_poll_stop(&s->poll);
    uv_timer_stop(&s->timer);
    MHD_stop_daemon(s->d);
    uv_close((uv_handle_t *)&s->poll, on_closed);
    uv_close((uv_handle_t *)&s->timer, on_closed);
}
