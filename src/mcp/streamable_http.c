/*
 * src/mcp/streamable_http.c — the Streamable HTTP transport (MCP 2025-03-26 and later) on the
 * node's libmicrohttpd server (src/http/server.h, full-request API).
 *
 * One endpoint (default /mcp). POST carries one JSON-RPC message (or a batch where the
 * session's version allows it); it is answered 202 when it holds no request, with
 * application/json when every answer is ready before the handler returns and nothing else
 * was sent, and with a text/event-stream otherwise (progress and logs of the request, then
 * its response, then the stream ends). GET opens the session's stream for unrelated server
 * messages (list_changed, logs; a newer GET replaces the previous stream, which ends);
 * DELETE ends the session.
 *
 * An HTTP session owns its mcp_session. An exchange (one POST or the GET stream) belongs to
 * the HTTP request: it is freed when both the request has closed and the MCP input it carried
 * is done (the GET stream has no input, so only the close matters).
 *
 * Resumability (the GET stream). Every message for the GET stream gets an event id, the
 * session's counter in decimal ("id: N"), and is kept in a bounded replay buffer (the last
 * REPLAY_MAX messages, at most REPLAY_BYTES). A GET with `Last-Event-ID: N` replays what the
 * buffer holds after N, then streams on; a GET without it replays what no stream received
 * yet (messages sent while no GET stream was open). POST response streams carry no ids and
 * are not resumable (a client that loses one loses its remaining messages).
 */
#define _GNU_SOURCE /* strcasestr */
#include <gnutls/crypto.h>
#include <gnutls/gnutls.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <uv.h>

#include "http/server.h"
#include "jsonrpc.h"
#include "macula/mcp.h"
#include "operator.h"

#define REPLAY_MAX 64           /* GET stream messages kept for replay */
#define REPLAY_BYTES (1u << 20) /* and at most this many bytes of them */

typedef struct hsess hsess;

typedef enum ex_mode { EX_SYNC, EX_SSE, EX_JSON } ex_mode;

typedef struct exch {
    hsess *s;          /* GET stream only: the session it serves, NULL once it ended */
    http_request *req; /* NULL once the request closed */
    http_stream *stream;
    ex_mode mode;
    bool accept_sse, accept_json;
    bool done;   /* the MCP input finished (always true for the GET stream) */
    bool closed; /* the HTTP request ended */
    char *notes; /* SYNC: SSE events collected before the mode is known */
    size_t notes_len;
    int nnotes;
    char *resp; /* the response (object or batch array) */
    size_t resp_len;
} exch;

typedef struct replay_msg {
    uint64_t no; /* event id */
    char *text;
    size_t len;
} replay_msg;

struct hsess {
    mcp_http *h;
    char id[33];
    mcp_session *ss;
    exch *get;
    uint64_t last_active, last_write;
    replay_msg replay[REPLAY_MAX]; /* ring: the last GET stream messages, oldest at rstart */
    int rstart, rn;
    size_t rbytes;
    uint64_t next_event; /* last event id given */
    uint64_t delivered;  /* last event id written to an open GET stream */
    hsess *next, *prev;
};

typedef struct route {
    char *path;
    mcp_http_route_fn fn;
    void *user;
} route;

struct mcp_http {
    uv_loop_t *loop;
    mcp_server *srv;
    http_server *http;
    mcp_http_config cfg;
    char *path, *token;
    char **origins;
    hsess *sessions;
    size_t nsess;
    uv_timer_t timer;
    route routes[MCP_HTTP_MAX_ROUTES]; /* operator endpoints (operator.h) */
    size_t nroutes;
};

void mcp_http_config_defaults(mcp_http_config *c)
{
    memset(c, 0, sizeof *c);
    c->addr = "127.0.0.1";
    c->path = "/mcp";
    c->max_body = 4u << 20;
    c->max_sessions = 64;
    c->idle_timeout_s = 600;
    c->keepalive_s = 15;
}

/* ---- small helpers ---------------------------------------------------------------------- */

static void http__error(http_request *r, int status, const char *msg, const char *const *headers)
{
    char body[300];
    int n = snprintf(body, sizeof body,
                     "{\"jsonrpc\":\"2.0\",\"error\":{\"code\":-32000,\"message\":\"%s\"}}", msg);
    http_request_respond(r, status, "application/json", headers, body, (size_t)n);
}

static bool header__has(const char *h, const char *token)
{
    return h != NULL && strcasestr(h, token) != NULL;
}

/* An Origin of http(s)://localhost, 127.0.0.1 or [::1], with an optional port. */
static bool origin__local(const char *o)
{
    const char *p;
    if (strncmp(o, "http://", 7) == 0) {
        p = o + 7;
    } else if (strncmp(o, "https://", 8) == 0) {
        p = o + 8;
    } else {
        return false;
    }
    static const char *const hosts[] = {"localhost", "127.0.0.1", "[::1]"};
    for (int i = 0; i < 3; i++) {
        size_t n = strlen(hosts[i]);
        if (strncasecmp(p, hosts[i], n) != 0) {
            continue;
        }
        const char *q = p + n;
        if (*q == '\0') {
            return true;
        }
        if (*q == ':' && q[1] != '\0' && strspn(q + 1, "0123456789") == strlen(q + 1) &&
            strlen(q + 1) <= 5) {
            return true;
        }
    }
    return false;
}

static bool http__origin_ok(const mcp_http *h, const char *o)
{
    if (o == NULL || h->cfg.allow_any_origin || origin__local(o)) {
        return true;
    }
    for (size_t i = 0; h->origins != NULL && h->origins[i] != NULL; i++) {
        if (strcmp(h->origins[i], o) == 0) {
            return true;
        }
    }
    return false;
}

static bool http__auth_ok(const mcp_http *h, const char *auth)
{
    if (h->token == NULL) {
        return true;
    }
    if (auth == NULL || strncasecmp(auth, "Bearer ", 7) != 0) {
        return false;
    }
    const char *given = auth + 7;
    size_t gl = strlen(given), tl = strlen(h->token);
    unsigned char diff = gl != tl;
    for (size_t i = 0; i < tl; i++) { /* constant time over the token */
        diff |= (unsigned char)(h->token[i] ^ (i < gl ? given[i] : 0));
    }
    return diff == 0;
}

static int buf__append(char **buf, size_t *len, const char *a, size_t alen, const char *b,
                       size_t blen, const char *c, size_t clen)
{
    char *nb = realloc(*buf, *len + alen + blen + clen + 1);
    if (nb == NULL) {
        return -1;
    }
    memcpy(nb + *len, a, alen);
    memcpy(nb + *len + alen, b, blen);
    memcpy(nb + *len + alen + blen, c, clen);
    *len += alen + blen + clen;
    nb[*len] = '\0';
    *buf = nb;
    return 0;
}

static const char sse_pre[] = "event: message\ndata: ";
static const char sse_post[] = "\n\n";

/* One SSE event; `no` > 0 adds "id: no". */
static void sse__write(http_stream *st, uint64_t no, const char *json, size_t len)
{
    char pre[64];
    int pl = no > 0 ? snprintf(pre, sizeof pre, "id: %llu\n%s", (unsigned long long)no, sse_pre)
                    : snprintf(pre, sizeof pre, "%s", sse_pre);
    char *ev = NULL;
    size_t n = 0;
    if (buf__append(&ev, &n, pre, (size_t)pl, json, len, sse_post, sizeof sse_post - 1) == 0) {
        http_stream_write(st, ev, n);
    }
    free(ev);
}

/* ---- exchanges -------------------------------------------------------------------------- */

static void exch__free(exch *e)
{
    free(e->notes);
    free(e->resp);
    free(e);
}

static void exch__on_close(void *arg)
{
    exch *e = arg;
    e->req = NULL;
    e->stream = NULL;
    e->closed = true;
    if (e->s != NULL && e->s->get == e) {
        e->s->get = NULL;
    }
    e->s = NULL;
    if (e->done) {
        exch__free(e);
    }
}

static const char *const sse_headers[] = {"Cache-Control", "no-cache", NULL};

static void exch__open_sse(exch *e, const char *const *headers)
{
    e->mode = EX_SSE;
    e->stream = http_request_stream(e->req, 200, "text/event-stream", headers);
    if (e->stream != NULL && e->notes_len > 0) {
        http_stream_write(e->stream, e->notes, e->notes_len);
    }
    free(e->notes);
    e->notes = NULL;
    e->notes_len = 0;
}

static uint64_t http__now(const mcp_http *h)
{
    return uv_now(h->loop);
}

/* Keeps a GET stream message for replay (the oldest go beyond the bounds). */
static void sess__keep(hsess *s, uint64_t no, const char *json, size_t len)
{
    while (s->rn > 0 && (s->rn == REPLAY_MAX || s->rbytes + len > REPLAY_BYTES)) {
        replay_msg *old = &s->replay[s->rstart];
        s->rbytes -= old->len;
        free(old->text);
        old->text = NULL;
        s->rstart = (s->rstart + 1) % REPLAY_MAX;
        s->rn--;
    }
    if (len > REPLAY_BYTES) {
        return; /* too large to keep: sent once, not replayable */
    }
    char *t = malloc(len);
    if (t == NULL) {
        return;
    }
    memcpy(t, json, len);
    s->replay[(s->rstart + s->rn) % REPLAY_MAX] = (replay_msg){no, t, len};
    s->rn++;
    s->rbytes += len;
}

/* mcp_transport.send */
static void t_send(void *user, void *origin, const char *json, size_t len, bool response)
{
    hsess *s = user;
    exch *e = origin;
    if (e == NULL) { /* unrelated: the GET stream (replayable) */
        uint64_t no = ++s->next_event;
        sess__keep(s, no, json, len);
        if (s->get != NULL && s->get->stream != NULL) {
            sse__write(s->get->stream, no, json, len);
            s->delivered = no;
            s->last_write = http__now(s->h);
        }
        return;
    }
    if (e->closed) {
        return; /* the client went away; the message is lost (no resumability) */
    }
    switch (e->mode) {
    case EX_SYNC:
        if (response) {
            free(e->resp);
            e->resp = malloc(len + 1);
            if (e->resp != NULL) {
                memcpy(e->resp, json, len);
                e->resp[len] = '\0';
                e->resp_len = len;
            }
        } else if (buf__append(&e->notes, &e->notes_len, sse_pre, sizeof sse_pre - 1, json, len,
                               sse_post, sizeof sse_post - 1) == 0) {
            e->nnotes++;
        }
        break;
    case EX_SSE:
        if (e->stream != NULL) {
            sse__write(e->stream, 0, json, len);
        }
        break;
    case EX_JSON:
        if (response) {
            free(e->resp);
            e->resp = malloc(len + 1);
            if (e->resp != NULL) {
                memcpy(e->resp, json, len);
                e->resp_len = len;
            }
        }
        break;
    }
}

/* mcp_transport.done */
static void t_done(void *user, void *origin)
{
    (void)user;
    exch *e = origin;
    e->done = true;
    if (e->closed) {
        exch__free(e);
        return;
    }
    if (e->mode == EX_SSE) {
        if (e->stream != NULL) {
            http_stream_end(e->stream);
        }
    } else if (e->mode == EX_JSON) {
        if (e->resp != NULL) {
            http_request_respond(e->req, 200, "application/json", NULL, e->resp, e->resp_len);
        } else { /* cancelled: nothing to answer */
            http_request_respond(e->req, 202, NULL, NULL, NULL, 0);
        }
    }
}

static const mcp_transport http_transport = {t_send, t_done};

/* ---- sessions --------------------------------------------------------------------------- */

static hsess *sess__find(mcp_http *h, const char *id)
{
    for (hsess *s = h->sessions; s != NULL; s = s->next) {
        if (strcmp(s->id, id) == 0) {
            return s;
        }
    }
    return NULL;
}

static hsess *sess__new(mcp_http *h)
{
    unsigned char rnd[16];
    if (gnutls_rnd(GNUTLS_RND_RANDOM, rnd, sizeof rnd) != 0) {
        return NULL;
    }
    hsess *s = calloc(1, sizeof *s);
    if (s == NULL) {
        return NULL;
    }
    for (int i = 0; i < 16; i++) {
        snprintf(s->id + (size_t)i * 2, 3, "%02x", rnd[i]);
    }
    s->h = h;
    s->ss = mcp_session_new(h->srv, &http_transport, s);
    if (s->ss == NULL) {
        free(s);
        return NULL;
    }
    s->last_active = s->last_write = http__now(h);
    s->next = h->sessions;
    if (h->sessions != NULL) {
        h->sessions->prev = s;
    }
    h->sessions = s;
    h->nsess++;
    return s;
}

static void sess__free(mcp_http *h, hsess *s)
{
    if (s->prev != NULL) {
        s->prev->next = s->next;
    } else {
        h->sessions = s->next;
    }
    if (s->next != NULL) {
        s->next->prev = s->prev;
    }
    h->nsess--;
    mcp_session_free(s->ss); /* cancels calls; open POST exchanges get done */
    if (s->get != NULL) {
        s->get->s = NULL;
        if (s->get->stream != NULL) {
            http_stream_end(s->get->stream);
        }
    }
    for (int i = 0; i < s->rn; i++) {
        free(s->replay[(s->rstart + i) % REPLAY_MAX].text);
    }
    free(s);
}

/* ---- requests --------------------------------------------------------------------------- */

/* True when the body is a single initialize request (parsed with the server's bounds). */
static bool body__is_initialize(const char *body, size_t len)
{
    const char *why;
    json_t *v = mcp_rpc_parse(body, len, len + 1, 64, &why);
    if (v == NULL) {
        return false;
    }
    mcp_msg m;
    json_t *bad;
    bool init = mcp_rpc_classify(v, &m, &why, &bad) == 0 && m.kind == MCP_MSG_REQUEST &&
                strcmp(m.method, "initialize") == 0;
    json_decref(v);
    return init;
}

static void http__post(mcp_http *h, http_request *r, hsess *s)
{
    const char *ct = http_request_header(r, "Content-Type");
    if (ct == NULL || strncasecmp(ct, "application/json", 16) != 0) {
        http__error(r, 415, "Unsupported Media Type: Content-Type must be application/json", NULL);
        return;
    }
    const char *accept = http_request_header(r, "Accept");
    bool any = accept == NULL || header__has(accept, "*/*");
    bool acc_json = any || header__has(accept, "application/json");
    bool acc_sse = any || header__has(accept, "text/event-stream");
    if (!acc_json && !acc_sse) {
        http__error(r, 406,
                    "Not Acceptable: Accept must list application/json and text/event-stream",
                    NULL);
        return;
    }
    size_t len;
    const char *body = http_request_body(r, &len);
    bool created = false;
    if (s == NULL) {
        if (!body__is_initialize(body, len)) {
            http__error(r, 400, "Bad Request: Mcp-Session-Id header is required", NULL);
            return;
        }
        if (h->nsess >= h->cfg.max_sessions) {
            http__error(r, 503, "Service Unavailable: too many sessions", NULL);
            return;
        }
        s = sess__new(h);
        if (s == NULL) {
            http__error(r, 500, "Internal Server Error: cannot create a session", NULL);
            return;
        }
        created = true;
    }
    exch *e = calloc(1, sizeof *e);
    if (e == NULL) {
        http__error(r, 500, "Internal Server Error: out of memory", NULL);
        if (created) {
            sess__free(h, s);
        }
        return;
    }
    e->req = r;
    e->accept_sse = acc_sse;
    e->accept_json = acc_json;
    http_request_on_close(r, exch__on_close, e);
    s->last_active = http__now(h);
    mcp_input_info info;
    if (mcp_session_input(s->ss, body, len, e, &info) != 0) {
        e->done = true;
        http__error(r, 500, "Internal Server Error", NULL);
        return;
    }
    const char *hdrs[] = {"Mcp-Session-Id", s->id, "Cache-Control", "no-cache", NULL};
    if (created && mcp_session_get_state(s->ss) == MCP_SESSION_NEW) {
        sess__free(h, s); /* initialize failed: no session */
        hdrs[0] = NULL;
    }
    if (!e->done) { /* answers will come later */
        if (acc_sse) {
            exch__open_sse(e, hdrs);
        } else {
            e->mode = EX_JSON;
        }
        return;
    }
    if (e->resp == NULL) { /* notifications and responses only */
        http_request_respond(r, 202, NULL, hdrs, NULL, 0);
    } else if (info.requests == 0) { /* nothing acceptable in the body */
        http_request_respond(r, 400, "application/json", hdrs, e->resp, e->resp_len);
    } else if ((e->nnotes > 0 && acc_sse) || !acc_json) {
        exch__open_sse(e, hdrs);
        if (e->stream != NULL) {
            sse__write(e->stream, 0, e->resp, e->resp_len);
            http_stream_end(e->stream);
        }
    } else {
        http_request_respond(r, 200, "application/json", hdrs, e->resp, e->resp_len);
    }
}

static void http__get(mcp_http *h, http_request *r, hsess *s)
{
    if (!header__has(http_request_header(r, "Accept"), "text/event-stream") &&
        !header__has(http_request_header(r, "Accept"), "*/*")) {
        http__error(r, 406, "Not Acceptable: Accept must list text/event-stream", NULL);
        return;
    }
    /* resume after Last-Event-ID, else from what no stream received */
    uint64_t after = s->delivered;
    const char *last = http_request_header(r, "Last-Event-ID");
    if (last != NULL) {
        char *end = NULL;
        unsigned long long n = strtoull(last, &end, 10);
        if (*last < '0' || *last > '9' || end == NULL || *end != '\0' || n > s->next_event) {
            http__error(r, 400, "Bad Request: unknown Last-Event-ID", NULL);
            return;
        }
        after = n;
    }
    exch *e = calloc(1, sizeof *e);
    if (e == NULL) {
        http__error(r, 500, "Internal Server Error: out of memory", NULL);
        return;
    }
    e->req = r;
    e->done = true;
    e->s = s;
    e->mode = EX_SSE;
    http_request_on_close(r, exch__on_close, e);
    e->stream = http_request_stream(r, 200, "text/event-stream", sse_headers);
    if (e->stream == NULL) {
        return; /* freed on close */
    }
    if (s->get != NULL) { /* a new GET stream replaces the old one (the client may be gone) */
        exch *old = s->get;
        old->s = NULL;
        if (old->stream != NULL) {
            http_stream_end(old->stream);
        }
    }
    s->get = e;
    s->last_active = s->last_write = http__now(h);
    static const char hello[] = ": stream open\n\n"; /* flushes the headers at once */
    http_stream_write(e->stream, hello, sizeof hello - 1);
    for (int i = 0; i < s->rn; i++) {
        const replay_msg *m = &s->replay[(s->rstart + i) % REPLAY_MAX];
        if (m->no > after) {
            sse__write(e->stream, m->no, m->text, m->len);
        }
    }
    s->delivered = s->next_event;
}

static const char *const www_bearer[] = {"WWW-Authenticate", "Bearer", NULL};

/* An operator endpoint: the same Origin and token checks as the MCP endpoint, JSON bodies. */
static void http__route(mcp_http *h, http_request *r, const route *rt)
{
    if (!http__origin_ok(h, http_request_header(r, "Origin"))) {
        http__error(r, 403, "Forbidden: Origin not allowed", NULL);
        return;
    }
    if (!http__auth_ok(h, http_request_header(r, "Authorization"))) {
        http__error(r, 401, "Unauthorized", www_bearer);
        return;
    }
    const char *method = http_request_method(r);
    const char *ct = http_request_header(r, "Content-Type");
    if (strcmp(method, "POST") == 0 &&
        (ct == NULL || strncasecmp(ct, "application/json", 16) != 0)) {
        http__error(r, 415, "Unsupported Media Type: Content-Type must be application/json", NULL);
        return;
    }
    size_t len;
    const char *body = http_request_body(r, &len);
    char *reply = NULL;
    int status = rt->fn(rt->user, method, body != NULL ? body : "", body != NULL ? len : 0, &reply);
    static const char *const nocache[] = {"Cache-Control", "no-store", NULL};
    http_request_respond(r, status, reply != NULL ? "application/json" : NULL, nocache, reply,
                         reply != NULL ? strlen(reply) : 0);
    free(reply);
}

static void http__handle(void *user, http_request *r)
{
    mcp_http *h = user;
    static const char *const allow[] = {"Allow", "GET, POST, DELETE", NULL};
    const char *const *www = www_bearer;
    if (strcmp(http_request_path(r), h->path) != 0) {
        for (size_t i = 0; i < h->nroutes; i++) {
            if (strcmp(http_request_path(r), h->routes[i].path) == 0) {
                http__route(h, r, &h->routes[i]);
                return;
            }
        }
        http__error(r, 404, "Not Found", NULL);
        return;
    }
    const char *method = http_request_method(r);
    bool post = strcmp(method, "POST") == 0, get = strcmp(method, "GET") == 0;
    bool del = strcmp(method, "DELETE") == 0;
    if (!post && !get && !del) {
        http__error(r, 405, "Method Not Allowed", allow);
        return;
    }
    if (!http__origin_ok(h, http_request_header(r, "Origin"))) {
        http__error(r, 403, "Forbidden: Origin not allowed", NULL);
        return;
    }
    if (!http__auth_ok(h, http_request_header(r, "Authorization"))) {
        http__error(r, 401, "Unauthorized", www);
        return;
    }
    const char *pv = http_request_header(r, "MCP-Protocol-Version");
    if (pv != NULL && mcp_protocol_index(pv) < 0) {
        http__error(r, 400, "Bad Request: unsupported MCP-Protocol-Version", NULL);
        return;
    }
    const char *sid = http_request_header(r, "Mcp-Session-Id");
    hsess *s = NULL;
    if (sid != NULL) {
        s = sess__find(h, sid);
        if (s == NULL) {
            http__error(r, 404, "Not Found: unknown or expired session", NULL);
            return;
        }
        /* A supported version other than the negotiated one is accepted (as the official SDK
         * server does; the conformance suite's SEP-1699 scenarios send 2025-03-26 on a
         * 2025-11-25 session): the session's negotiated version keeps deciding semantics. */
        s->last_active = http__now(h);
    }
    if (post) {
        http__post(h, r, s);
        return;
    }
    if (s == NULL) {
        http__error(r, 400, "Bad Request: Mcp-Session-Id header is required", NULL);
        return;
    }
    if (get) {
        http__get(h, r, s);
        return;
    }
    sess__free(h, s); /* DELETE */
    http_request_respond(r, 200, NULL, NULL, NULL, 0);
}

/* ---- expiry and keepalive --------------------------------------------------------------- */

static void http__tick(uv_timer_t *t)
{
    mcp_http *h = t->data;
    uint64_t now = http__now(h);
    hsess *next;
    for (hsess *s = h->sessions; s != NULL; s = next) {
        next = s->next;
        if (s->get != NULL && s->get->stream != NULL) {
            if (now - s->last_write >= (uint64_t)h->cfg.keepalive_s * 1000) {
                static const char ka[] = ": keepalive\n\n";
                http_stream_write(s->get->stream, ka, sizeof ka - 1);
                s->last_write = now;
            }
        } else if (mcp_session_inflight(s->ss) == 0 &&
                   now - s->last_active >= (uint64_t)h->cfg.idle_timeout_s * 1000) {
            sess__free(h, s);
        }
    }
}

/* ---- start / stop ----------------------------------------------------------------------- */

static void http__free_cfg(mcp_http *h)
{
    for (size_t i = 0; i < h->nroutes; i++) {
        free(h->routes[i].path);
    }
    free(h->path);
    free(h->token);
    for (size_t i = 0; h->origins != NULL && h->origins[i] != NULL; i++) {
        free(h->origins[i]);
    }
    free(h->origins);
}

int mcp_http_start(uv_loop_t *loop, mcp_server *srv, const mcp_http_config *c, mcp_http **out,
                   const char **errmsg)
{
    mcp_http_config def;
    if (c == NULL) {
        mcp_http_config_defaults(&def);
        c = &def;
    }
    mcp_http *h = calloc(1, sizeof *h);
    if (h == NULL) {
        *errmsg = "out of memory";
        return MCP_ENOMEM;
    }
    h->loop = loop;
    h->srv = srv;
    h->cfg = *c;
    if (h->cfg.max_sessions == 0) {
        h->cfg.max_sessions = 64;
    }
    if (h->cfg.idle_timeout_s == 0) {
        h->cfg.idle_timeout_s = 600;
    }
    if (h->cfg.keepalive_s == 0) {
        h->cfg.keepalive_s = 15;
    }
    h->path = strdup(c->path != NULL ? c->path : "/mcp");
    h->token = c->bearer_token != NULL ? strdup(c->bearer_token) : NULL;
    size_t n = 0;
    while (c->allowed_origins != NULL && c->allowed_origins[n] != NULL) {
        n++;
    }
    h->origins = calloc(n + 1, sizeof *h->origins);
    bool ok = h->path != NULL && (c->bearer_token == NULL || h->token != NULL) && h->origins;
    for (size_t i = 0; ok && i < n; i++) {
        ok = (h->origins[i] = strdup(c->allowed_origins[i])) != NULL;
    }
    if (!ok) {
        http__free_cfg(h);
        free(h);
        *errmsg = "out of memory";
        return MCP_ENOMEM;
    }
    http_server_options o = {
        .addr = c->addr != NULL ? c->addr : "127.0.0.1",
        .port = c->port,
        .request_handler = http__handle,
        .user = h,
        .max_body = c->max_body ? c->max_body : (size_t)4 << 20,
        .max_connections = 512,
        .timeout_s = 60,
    };
    int rc = http_server_start_opts(loop, &o, &h->http, errmsg);
    if (rc != 0) {
        http__free_cfg(h);
        free(h);
        return MCP_EIO;
    }
    uv_timer_init(loop, &h->timer);
    h->timer.data = h;
    unsigned period =
        h->cfg.keepalive_s < h->cfg.idle_timeout_s ? h->cfg.keepalive_s : h->cfg.idle_timeout_s;
    uint64_t ms = (uint64_t)period * 1000 / 2;
    uv_timer_start(&h->timer, http__tick, ms ? ms : 500, ms ? ms : 500);
    uv_unref((uv_handle_t *)&h->timer);
    *out = h;
    return 0;
}

int mcp_http_add_route(mcp_http *h, const char *path, mcp_http_route_fn fn, void *user)
{
    if (h == NULL || path == NULL || path[0] != '/' || fn == NULL) {
        return MCP_EINVAL;
    }
    if (strcmp(path, h->path) == 0) {
        return MCP_EEXIST;
    }
    for (size_t i = 0; i < h->nroutes; i++) {
        if (strcmp(h->routes[i].path, path) == 0) {
            return MCP_EEXIST;
        }
    }
    if (h->nroutes == MCP_HTTP_MAX_ROUTES) {
        return MCP_ELIMIT;
    }
    char *p = strdup(path);
    if (p == NULL) {
        return MCP_ENOMEM;
    }
    h->routes[h->nroutes++] = (route){p, fn, user};
    return 0;
}

uint16_t mcp_http_port(const mcp_http *h)
{
    return http_server_port(h->http);
}

size_t mcp_http_session_count(const mcp_http *h)
{
    return h->nsess;
}

static void http__closed(uv_handle_t *t)
{
    mcp_http *h = t->data;
    http__free_cfg(h);
    free(h);
}

void mcp_http_stop(mcp_http *h)
{
    if (h == NULL) {
        return;
    }
    hsess *s;
    while ((s = h->sessions) != NULL) {
        s->prev = NULL; /* the head (stated for the analyzer) */
        sess__free(h, s);
    }
    http_server_stop(h->http);
    uv_timer_stop(&h->timer);
    uv_close((uv_handle_t *)&h->timer, http__closed);
}
