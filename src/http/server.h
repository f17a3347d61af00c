/*
 * src/http/server.h — one embedded HTTP server (libmicrohttpd) on the node's libuv loop.
 *
 * The daemon runs without threads: its epoll fd is watched by a uv_poll_t and MHD_run is
 * called when it is readable or when MHD's own timeout expires. Handlers therefore run on the
 * node's thread, between actor callbacks, and may read runtime state directly.
 *
 * Requests other than GET and HEAD are answered 405; bodies are not read (max 0 bytes).
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
/* Stops listening and closes every connection; the memory is released once the loop has run
 * the handle close callbacks. */
void http_server_stop(http_server *s);

#endif
