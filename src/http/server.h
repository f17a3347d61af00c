/*
 * src/http/server.h — one embedded HTTP server (libmicrohttpd) on the node's libuv loop.
 *
 * The daemon runs without threads: its epoll fd is watched by a uv_poll_t and MHD_run is
 * called when it is readable or when MHD's own timeout expires. Handlers therefore run on the
 * node's thread, between actor callbacks, and may read runtime state directly.
 *
 * With http_server_start: requests other than GET and HEAD are answered 405; bodies are not
 * read (max 0 bytes).
 *
 * With http_server_start_opts and a request handler: every method reaches the handler once
 * the whole body has arrived (bodies above max_body are answered 413 without calling it).
 * The handler answers with http_request_respond or opens a streamed response with
 * http_request_stream, either before it returns or later (the connection is suspended until
 * then, and resumed on the answer). Streams are written with http_stream_write and finished
 * with http_stream_end; a stream that has nothing to send suspends its connection.
 */
#ifndef MACULA_HTTP_SERVER_H
#define MACULA_HTTP_SERVER_H

#include <stddef.h>
#include <stdint.h>

struct uv_loop_s;
typedef struct http_server http_server;

typedef struct http_response {
    int status;               /* 200, 404, ... */
    const char *content_type; /* e.g. "application/json" */
    char *body;               /* malloc'd; the server frees it */
    size_t len;
} http_response;

/* Fills *res for GET `path` (no query string). Returns 0; any other value answers 500. */
typedef int (*http_handler)(void *user, const char *path, http_response *res);

/* Listens on addr:port (addr "0.0.0.0", "127.0.0.1", ...; port 0 picks one). Returns 0 or a
 * negative errno-style value; *errmsg (static text) says why. */
int http_server_start(struct uv_loop_s *loop, const char *addr, uint16_t port, http_handler handler,
                      void *user, http_server **out, const char **errmsg);
uint16_t http_server_port(const http_server *s);

/* ---- full requests (http_server_start_opts) --------------------------------------------- */

typedef struct http_request http_request;
typedef struct http_stream http_stream;

/* Called once per request with the complete body. The request stays valid until the close
 * callback (http_request_on_close) runs, or, without one, until it has been answered. */
typedef void (*http_request_handler)(void *user, http_request *req);

typedef struct http_server_options {
    const char *addr;                     /* IPv4 address */
    uint16_t port;                        /* 0: any free port */
    http_handler get_handler;             /* GET/HEAD-only handler (when request_handler NULL) */
    http_request_handler request_handler; /* every method, with bodies */
    void *user;
    size_t max_body;          /* bytes; default 1 MiB */
    unsigned max_connections; /* default 256 */
    unsigned timeout_s;       /* idle connection timeout; default 30 (suspended: none) */
} http_server_options;

int http_server_start_opts(struct uv_loop_s *loop, const http_server_options *o, http_server **out,
                           const char **errmsg);

const char *http_request_method(const http_request *r);
const char *http_request_path(const http_request *r);
/* Header value (case-insensitive name) or NULL. */
const char *http_request_header(const http_request *r, const char *name);
/* The body (NUL-terminated; *len its length). */
const char *http_request_body(const http_request *r, size_t *len);
/*
 * `fn(arg)` runs once when the request ends for any reason (answered and sent, client gone,
 * server stopped); after it the request (and its stream) must not be used.
 */
void http_request_on_close(http_request *r, void (*fn)(void *arg), void *arg);
/*
 * Answers the request. `headers` is NULL or a NULL-terminated list of name, value pairs.
 * `body` (may be NULL when len is 0) is copied. Returns 0, or -EALREADY when the request was
 * answered before, -ENOMEM.
 */
int http_request_respond(http_request *r, int status, const char *content_type,
                         const char *const *headers, const char *body, size_t len);
/* Starts a streamed answer of unknown length (chunked on HTTP/1.1). NULL on error. */
http_stream *http_request_stream(http_request *r, int status, const char *content_type,
                                 const char *const *headers);
/* Appends bytes to the stream (copied); -EPIPE once ended. */
int http_stream_write(http_stream *st, const char *data, size_t len);
/* Finishes the stream after the bytes already written. */
void http_stream_end(http_stream *st);
/* Stops listening and closes every connection; the memory is released once the loop has run
 * the handle close callbacks. */
void http_server_stop(http_server *s);

#endif
