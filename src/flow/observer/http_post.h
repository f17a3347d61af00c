/*
 * flow/observer/http_post.h — a small HTTP/1.1 client on libuv TCP: one POST per call, for
 * the OTLP/HTTP span exporter. Non-blocking: name resolution, connect, write and read all run
 * on the loop; the outcome is sent to an actor as a message. Plain http:// only (no TLS).
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

/* Starts one POST of body (taken over: freed when done) to url. When it ends, whatever the
 * outcome, a message `tag` with a flow_http_result is sent to owner (none when owner is
 * SUP_NOPID). The request frees itself; at most timeout_ms from start to end. Returns 0, or
 * -1 when it could not start (then nothing is sent and body is freed). */
int flow_http_post(uv_loop_t *loop, sup_rt *rt, sup_pid owner, int tag, uint64_t id,
                   const flow_http_url *url, const char *content_type, char *body, size_t len,
                   uint64_t timeout_ms);

#endif
