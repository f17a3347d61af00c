/* flow/observer/http_post.c — one HTTP/1.1 POST on libuv TCP, cancellable (http_post.h). */
#include "flow/observer/http_post.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define HP_MAX_ANSWER 65536

int flow_http_url_parse(const char *url, flow_http_url *out, char *err, size_t errsize)
{
    memset(out, 0, sizeof *out);
    if (url == NULL || strncmp(url, "http://", 7) != 0) {
        snprintf(err, errsize, "only http:// endpoints are supported");
        return -1;
    }
    const char *h = url + 7, *end;
    const char *slash = strchr(h, '/');
    const char *hend = slash ? slash : h + strlen(h);
    const char *colon = NULL;
    if (*h == '[') {
        end = memchr(h, ']', (size_t)(hend - h));
        if (end == NULL) {
            snprintf(err, errsize, "bad IPv6 host in %.64s", url);
            return -1;
        }
        colon = end[1] == ':' ? end + 1 : NULL;
        h++;
    } else {
        colon = memchr(h, ':', (size_t)(hend - h));
        end = colon ? colon : hend;
    }
    size_t hl = (size_t)(end - h);
    size_t pl = colon ? (size_t)(hend - colon - 1) : 0;
    if (hl == 0 || hl >= sizeof out->host || (colon && (pl == 0 || pl >= sizeof out->port)) ||
        strlen(slash ? slash : "/") >= sizeof out->path) {
        snprintf(err, errsize, "bad endpoint %.64s", url);
        return -1;
    }
    memcpy(out->host, h, hl);
    if (colon) {
        memcpy(out->port, colon + 1, pl);
        for (size_t i = 0; i < pl; i++) {
            if (out->port[i] < '0' || out->port[i] > '9') {
                snprintf(err, errsize, "bad port in %.64s", url);
                return -1;
            }
        }
    } else {
        snprintf(out->port, sizeof out->port, "80");
    }
    snprintf(out->path, sizeof out->path, "%s", slash ? slash : "/");
    return 0;
}

struct flow_http_req {
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
    bool owned; /* an owner holds it (not released yet) */
};

static void hp__maybe_free(flow_http_req *r)
{
    if (r->open == 0 && !r->resolving && !r->owned) {
        free(r->body);
        free(r->ans);
        free(r);
    }
}

static void hp__closed(uv_handle_t *h)
{
    flow_http_req *r = h->data;
    r->open--;
    hp__maybe_free(r);
}

/* Ends the request once: reports to a still-holding owner, closes what is open. */
static void hp__finish(flow_http_req *r, const char *error)
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
    uv_close((uv_handle_t *)&r->timer, hp__closed);
    if (r->tcp_open) {
        uv_close((uv_handle_t *)&r->tcp, hp__closed);
    }
}

static void hp__timeout(uv_timer_t *t)
{
    hp__finish(t->data, "timeout");
}

/* Whether the answer is complete (head with a Content-Length and that much body); sets the
 * status once the head is in. */
static bool hp__complete(flow_http_req *r)
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

static void hp__alloc(uv_handle_t *h, size_t suggested, uv_buf_t *b)
{
    (void)suggested;
    flow_http_req *r = h->data;
    size_t room = HP_MAX_ANSWER - r->alen;
    char *n = room ? realloc(r->ans, r->alen + room) : NULL;
    if (n) {
        r->ans = n;
    }
    *b = uv_buf_init(n ? n + r->alen : NULL, n ? (unsigned)room : 0);
}

static void hp__read(uv_stream_t *s, ssize_t n, const uv_buf_t *b)
{
    (void)b;
    flow_http_req *r = s->data;
    if (n > 0) {
        r->alen += (size_t)n;
        if (hp__complete(r)) {
            hp__finish(r, NULL);
        } else if (r->alen >= HP_MAX_ANSWER) {
            hp__finish(r, "answer too large");
        }
    } else if (n < 0) {
        (void)hp__complete(r); /* the status of a head without a length */
        hp__finish(r, r->res.status ? NULL : "no HTTP answer");
    }
}

static void hp__written(uv_write_t *w, int status)
{
    if (status < 0) {
        hp__finish(w->data, uv_strerror(status));
    }
}

static void hp__connected(uv_connect_t *c, int status)
{
    flow_http_req *r = c->data;
    if (r->done) {
        return;
    }
    if (status < 0) {
        char e[96];
        snprintf(e, sizeof e, "connect: %s", uv_strerror(status));
        hp__finish(r, e);
        return;
    }
    uv_buf_t bufs[2] = {uv_buf_init(r->head, (unsigned)strlen(r->head)),
                        uv_buf_init(r->body, (unsigned)r->blen)};
    int rc = uv_write(&r->wr, (uv_stream_t *)&r->tcp, bufs, 2, hp__written);
    if (rc == 0) {
        rc = uv_read_start((uv_stream_t *)&r->tcp, hp__alloc, hp__read);
    }
    if (rc != 0) {
        hp__finish(r, uv_strerror(rc));
    }
}

static void hp__resolved(uv_getaddrinfo_t *g, int status, struct addrinfo *ai)
{
    flow_http_req *r = g->data;
    r->resolving = false;
    if (r->done) {
        uv_freeaddrinfo(ai);
        hp__maybe_free(r);
        return;
    }
    int rc = status;
    if (rc == 0) {
        rc = uv_tcp_init(g->loop, &r->tcp);
    }
    if (rc == 0) {
        r->tcp_open = true;
        r->open++;
        rc = uv_tcp_connect(&r->conn, &r->tcp, ai->ai_addr, hp__connected);
    }
    uv_freeaddrinfo(ai);
    if (rc != 0) {
        char e[96];
        snprintf(e, sizeof e, "resolve/connect: %s", uv_strerror(rc));
        hp__finish(r, e);
    }
}

int flow_http_post(uv_loop_t *loop, sup_rt *rt, sup_pid owner, int tag, uint64_t id,
                   const flow_http_url *url, const char *content_type, char *body, size_t len,
                   uint64_t timeout_ms, flow_http_req **out)
{
    bool owned = !sup_pid_is_null(owner);
    flow_http_req *r = loop && (out != NULL || !owned) ? calloc(1, sizeof *r) : NULL;
    if (out != NULL) {
        *out = NULL;
    }
    if (r == NULL) {
        free(body);
        return -1;
    }
    r->rt = rt;
    r->owner = owner;
    r->tag = tag;
    r->res.id = id;
    r->body = body;
    r->blen = len;
    r->owned = owned;
    r->gai.data = r->tcp.data = r->conn.data = r->wr.data = r->timer.data = r;
    snprintf(r->head, sizeof r->head,
             "POST %s HTTP/1.1\r\nHost: %s:%s\r\nContent-Type: %s\r\n"
             "Content-Length: %zu\r\nConnection: close\r\n\r\n",
             url->path, url->host, url->port, content_type, len);
    uv_timer_init(loop, &r->timer);
    r->open = 1;
    uv_timer_start(&r->timer, hp__timeout, timeout_ms, 0);
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM};
    r->resolving = true;
    if (uv_getaddrinfo(loop, &r->gai, hp__resolved, url->host, url->port, &hints) != 0) {
        r->resolving = false;
        r->owned = false; /* the caller gets -1: nothing is sent, all is freed */
        hp__finish(r, "resolve");
        return -1;
    }
    if (owned) {
        *out = r;
    }
    return 0;
}

void flow_http_release(flow_http_req *r)
{
    if (r == NULL) {
        return;
    }
    r->owned = false;
    r->owner = SUP_NOPID;
    hp__finish(r, "abandoned"); /* no-op when it ended already */
    hp__maybe_free(r);
}
