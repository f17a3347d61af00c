/* flow/consensus/fwd_http.c — a cancellable HTTP/1.1 POST on libuv TCP (fwd_http.h). */
#include "flow/consensus/fwd_http.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define FWD_HTTP_MAX_ANSWER 65536

struct fwd_http {
    uv_getaddrinfo_t gai;
    uv_tcp_t tcp;
    uv_connect_t conn;
    uv_write_t wr;
    uv_timer_t timer;
    sup_rt *rt;
    sup_pid owner;
    int tag;
    flow_http_result res;
    char head[FLOW_HTTP_URL_MAX + 512];
    char *body;
    size_t blen;
    char *ans; /* the answer read so far */
    size_t alen;
    int open;       /* handles not closed yet */
    bool resolving; /* the name resolution has not called back */
    bool tcp_open, done;
    bool owned; /* the owner has not released it */
};

static void fwd_http__maybe_free(fwd_http *r)
{
    if (r->open == 0 && !r->resolving && !r->owned) {
        free(r->body);
        free(r->ans);
        free(r);
    }
}

static void fwd_http__closed(uv_handle_t *h)
{
    fwd_http *r = h->data;
    r->open--;
    fwd_http__maybe_free(r);
}

/* Ends the request once: reports to a still-holding owner, closes what is open. */
static void fwd_http__finish(fwd_http *r, const char *error)
{
    if (r->done) {
        return;
    }
    r->done = true;
    if (error) {
        snprintf(r->res.error, sizeof r->res.error, "%s", error);
    }
    if (r->owned && !sup_pid_is_null(r->owner)) {
        sup_send(r->rt, SUP_NOPID, r->owner, r->tag, &r->res, sizeof r->res);
    }
    if (r->resolving) {
        uv_cancel((uv_req_t *)&r->gai); /* its callback still comes (UV_ECANCELED) */
    }
    uv_close((uv_handle_t *)&r->timer, fwd_http__closed);
    if (r->tcp_open) {
        uv_close((uv_handle_t *)&r->tcp, fwd_http__closed);
    }
}

static void fwd_http__timeout(uv_timer_t *t)
{
    fwd_http__finish(t->data, "timeout");
}

/* Whether the answer is complete (head with a Content-Length and that much body); sets the
 * status once the head is in. */
static bool fwd_http__complete(fwd_http *r)
{
    const char *eoh = NULL;
    for (size_t i = 0; i + 3 < r->alen && eoh == NULL; i++) {
        if (memcmp(r->ans + i, "\r\n\r\n", 4) == 0) {
            eoh = r->ans + i + 4;
        }
    }
    if (eoh == NULL || r->alen < 12 || strncmp(r->ans, "HTTP/1.", 7) != 0 || r->ans[8] != ' ') {
        return false;
    }
    char *end = NULL;
    long status = strtol(r->ans + 9, &end, 10);
    if (end != r->ans + 12 || status < 100 || status > 999) {
        return false;
    }
    r->res.status = (int)status;
    size_t hlen = (size_t)(eoh - r->ans);
    for (const char *p = r->ans; p < eoh;) {
        const char *nl = memchr(p, '\n', (size_t)(eoh - p));
        if (nl == NULL) {
            break;
        }
        if (strncasecmp(p, "content-length:", 15) == 0) {
            unsigned long n = strtoul(p + 15, NULL, 10);
            return r->alen >= hlen + n;
        }
        p = nl + 1;
    }
    return false; /* no length: the answer ends with the connection */
}

static void fwd_http__alloc(uv_handle_t *h, size_t suggested, uv_buf_t *b)
{
    (void)suggested;
    fwd_http *r = h->data;
    size_t room = FWD_HTTP_MAX_ANSWER - r->alen;
    char *n = room ? realloc(r->ans, r->alen + room) : NULL;
    if (n) {
        r->ans = n;
    }
    *b = uv_buf_init(n ? n + r->alen : NULL, n ? (unsigned)room : 0);
}

static void fwd_http__read(uv_stream_t *s, ssize_t n, const uv_buf_t *b)
{
    (void)b;
    fwd_http *r = s->data;
    if (n > 0) {
        r->alen += (size_t)n;
        if (fwd_http__complete(r)) {
            fwd_http__finish(r, NULL);
        } else if (r->alen >= FWD_HTTP_MAX_ANSWER) {
            fwd_http__finish(r, "answer too large");
        }
    } else if (n < 0) {
        (void)fwd_http__complete(r); /* the status of a head without a length */
        fwd_http__finish(r, r->res.status ? NULL : "no HTTP answer");
    }
}

static void fwd_http__written(uv_write_t *w, int status)
{
    if (status < 0) {
        fwd_http__finish(w->data, uv_strerror(status));
    }
}

static void fwd_http__connected(uv_connect_t *c, int status)
{
    fwd_http *r = c->data;
    if (r->done) {
        return;
    }
    if (status < 0) {
        char e[96];
        snprintf(e, sizeof e, "connect: %s", uv_strerror(status));
        fwd_http__finish(r, e);
        return;
    }
    uv_buf_t bufs[2] = {uv_buf_init(r->head, (unsigned)strlen(r->head)),
                        uv_buf_init(r->body, (unsigned)r->blen)};
    int rc = uv_write(&r->wr, (uv_stream_t *)&r->tcp, bufs, 2, fwd_http__written);
    if (rc == 0) {
        rc = uv_read_start((uv_stream_t *)&r->tcp, fwd_http__alloc, fwd_http__read);
    }
    if (rc != 0) {
        fwd_http__finish(r, uv_strerror(rc));
    }
}

static void fwd_http__resolved(uv_getaddrinfo_t *g, int status, struct addrinfo *ai)
{
    fwd_http *r = g->data;
    r->resolving = false;
    if (r->done) {
        uv_freeaddrinfo(ai);
        fwd_http__maybe_free(r);
        return;
    }
    int rc = status;
    if (rc == 0) {
        rc = uv_tcp_init(g->loop, &r->tcp);
    }
    if (rc == 0) {
        r->tcp_open = true;
        r->open++;
        rc = uv_tcp_connect(&r->conn, &r->tcp, ai->ai_addr, fwd_http__connected);
    }
    uv_freeaddrinfo(ai);
    if (rc != 0) {
        char e[96];
        snprintf(e, sizeof e, "resolve/connect: %s", uv_strerror(rc));
        fwd_http__finish(r, e);
    }
}

fwd_http *fwd_http_post(uv_loop_t *loop, sup_rt *rt, sup_pid owner, int tag, uint64_t id,
                        const flow_http_url *url, char *body, size_t len, uint64_t timeout_ms)
{
    fwd_http *r = loop ? calloc(1, sizeof *r) : NULL;
    if (r == NULL) {
        free(body);
        return NULL;
    }
    r->rt = rt;
    r->owner = owner;
    r->tag = tag;
    r->res.id = id;
    r->body = body;
    r->blen = len;
    r->owned = true;
    r->gai.data = r->tcp.data = r->conn.data = r->wr.data = r->timer.data = r;
    snprintf(r->head, sizeof r->head,
             "POST %s HTTP/1.1\r\nHost: %s:%s\r\nContent-Type: application/json\r\n"
             "Content-Length: %zu\r\nConnection: close\r\n\r\n",
             url->path, url->host, url->port, len);
    uv_timer_init(loop, &r->timer);
    r->open = 1;
    uv_timer_start(&r->timer, fwd_http__timeout, timeout_ms, 0);
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM};
    r->resolving = true;
    if (uv_getaddrinfo(loop, &r->gai, fwd_http__resolved, url->host, url->port, &hints) != 0) {
        r->resolving = false;
        r->owned = false; /* the caller gets NULL: nothing is sent, all is freed */
        fwd_http__finish(r, "resolve");
        return NULL;
    }
    return r;
}

void fwd_http_release(fwd_http *r)
{
    if (r == NULL) {
        return;
    }
    r->owned = false;
    r->owner = SUP_NOPID;
    fwd_http__finish(r, "abandoned"); /* no-op when it ended already */
    fwd_http__maybe_free(r);
}
