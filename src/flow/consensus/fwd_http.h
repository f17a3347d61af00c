/*
 * flow/consensus/fwd_http.h — the HTTP/1.1 POST the raft actor forwards proposals with
 * (raft.c, "forwarding"): one request per call on libuv TCP, its outcome sent to the owner
 * actor as a message, and — unlike observer/http_post.h — cancellable, so that a request
 * still in flight when its owner ends (node shutdown: the runtime is freed while the loop
 * still closes handles) never touches the runtime again.
 *
 * Ownership: a request has two holders, its I/O (until its handles are closed) and its owner
 * (until fwd_http_release). It is freed when both are done. The owner releases it exactly
 * once: after it received the outcome message, or when it ends (then no message is sent any
 * more; a message already queued for a dead actor is dropped by the runtime).
 */
#ifndef MACULA_FLOW_FWD_HTTP_H
#define MACULA_FLOW_FWD_HTTP_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "flow/observer/http_post.h"
#include "macula/sup.h"

typedef struct fwd_http fwd_http;

/* Starts a POST of body (taken over) to url with content type application/json. When it ends
 * (an answer, a failure, or timeout_ms), a message `tag` with a flow_http_result (id = the
 * given id; status 0 when no answer was read) goes to owner, unless released before. NULL
 * when it could not start (nothing is sent then; body is freed). */
fwd_http *fwd_http_post(uv_loop_t *loop, sup_rt *rt, sup_pid owner, int tag, uint64_t id,
                        const flow_http_url *url, char *body, size_t len, uint64_t timeout_ms);

/* The owner's release (see above); NULL is ignored. An unfinished request is abandoned: its
 * connection is closed and nothing is sent. */
void fwd_http_release(fwd_http *r);

#endif
