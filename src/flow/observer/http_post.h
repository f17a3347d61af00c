/*
 * flow/observer/http_post.h — a small HTTP/1.1 client on libuv TCP: one POST per call, for
 * the OTLP/HTTP span exporter and the raft actor's forwarding (consensus/raft.c).
 * Non-blocking: name resolution, connect, write and read all run on the loop; the outcome is
 * sent to an actor as a message. Plain http:// only (no TLS).
 *
 * Ownership: a request with an owner has two holders, its I/O (until its handles are closed)
 * and its owner (until flow_http_release); it is freed when both are done. The owner releases
 * it exactly once: after it received the outcome message, or when it ends (then no message is
 * sent any more — a request still in flight when the node shuts down never touches the freed
 * runtime). A request without an owner (SUP_NOPID) sends nothing and frees itself.
 */
#ifndef MACULA_FLOW_HTTP_POST_H
#define MACULA_FLOW_HTTP_POST_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "macula/sup.h"

#define FLOW_HTTP_URL_MAX 512

/* A parsed http:// URL. */
typedef struct flow_http_url {
    char host[256];
    char port[8];
    char path[FLOW_HTTP_URL_MAX];
} flow_http_url;

/* Parses "http://host[:port][/path]" (host may be [ipv6]); path defaults to "/". Returns 0 or
 * -1 with a message in err. */
int flow_http_url_parse(const char *url, flow_http_url *out, char *err, size_t errsize);

/* The outcome sent to the owner (the message payload). */
typedef struct flow_http_result {
    int status;      /* the HTTP status, or 0 when no answer was read */
    char error[128]; /* "" or why it failed (resolve, connect, timeout, bad answer) */
    uint64_t id;     /* the caller's id for this request */
} flow_http_result;

typedef struct flow_http_req flow_http_req;

/* Starts one POST of body (taken over: freed when done) to url. With an owner, *out receives
 * the request and, when it ends (an answer, a failure, or timeout_ms), a message `tag` with a
 * flow_http_result goes to owner unless released before; out must not be NULL then. Without an
 * owner (SUP_NOPID) out may be NULL and nothing is sent. Returns 0, or -1 when it could not
 * start (then nothing is sent, body is freed and *out is NULL). */
int flow_http_post(uv_loop_t *loop, sup_rt *rt, sup_pid owner, int tag, uint64_t id,
                   const flow_http_url *url, const char *content_type, char *body, size_t len,
                   uint64_t timeout_ms, flow_http_req **out);

/* The owner's release (see above); NULL is ignored. An unfinished request is abandoned: its
 * connection is closed and nothing is sent. */
void flow_http_release(flow_http_req *r);

#endif
