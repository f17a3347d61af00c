/*
 * include/macula/mesh_rpc.h — RPC for C programs that connect to a Macula node (prefix
 * macula_rpc_). The RPC half of the mesh client API: include/macula/mesh.h (connect / publish /
 * subscribe) includes this header, so a program needs only mesh.h; docs/rpc.md describes the
 * protocol underneath.
 *
 * A macula_rpc is one connection to a node's gateway (QUIC + TLS 1.3, CONNECT in a realm)
 * with a throw-away identity of its own. Over it a program can:
 *   - call a procedure served anywhere in the realm: the node tries a local handler, then the
 *     providers it knows (60 s cache) or finds in the DHT, fails over on timeout, and answers
 *     with a result (JSON text) or an error code: no_handler, handler_error, timeout,
 *     max_hops_exceeded, realm_mismatch, invalid_args; locally: max_clients_reached (the node
 *     refused the connection), closed (the connection ended first);
 *   - cast (fire and forget);
 *   - advertise a procedure: calls to it, from anywhere in the realm, arrive in the handler
 *     callback, which answers now or later with macula_rpc_respond / macula_rpc_respond_error;
 *     the node keeps the advertisement in the DHT while the connection lives.
 *
 * Everything runs on the caller's libuv loop through callbacks; not thread-safe. Callbacks may
 * call any function here except macula_rpc_free. Strings passed in are copied.
 */
#ifndef MACULA_MESH_RPC_H
#define MACULA_MESH_RPC_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

enum {
    MACULA_RPC_OK = 0,
    MACULA_RPC_EINVAL = -1,    /* bad URL, realm, procedure, JSON or handle */
    MACULA_RPC_ENOMEM = -2,    /* out of memory */
    MACULA_RPC_ENOTREADY = -3, /* not connected (yet, or any more) */
    MACULA_RPC_EIDENTITY = -4, /* the throw-away identity could not be made */
    MACULA_RPC_ECONNECT = -5,  /* the connection could not be started */
};
const char *macula_rpc_strerror(int err);

typedef struct macula_rpc macula_rpc;

typedef struct macula_rpc_callbacks {
    /* CONNECT accepted: calls may be made. */
    void (*on_ready)(macula_rpc *r, void *ctx);
    /* The connection ended (once): reason is the gateway's DISCONNECT reason (e.g.
     * "realm_mismatch", "max_clients_reached") or a transport error. Pending calls have had
     * their callbacks with error "closed" before this. */
    void (*on_closed)(macula_rpc *r, const char *reason, void *ctx);
} macula_rpc_callbacks;

/* The answer to a call (or to advertise / unadvertise): error_code NULL and `text` the result
 * JSON, or error_code and `text` the error message. Views valid during the call only. */
typedef void (*macula_rpc_result_fn)(macula_rpc *r, const char *error_code, const char *text,
                                     size_t len, void *ctx);

/* A call (request != 0: answer it once with macula_rpc_respond*) or a cast (request == 0) to
 * an advertised procedure. args is the JSON text (not NUL-terminated; len bytes). */
typedef void (*macula_rpc_handler_fn)(macula_rpc *r, uint64_t request, const char *procedure,
                                      const char *args, size_t len, void *ctx);

/* Connects to url ("https://HOST:PORT") in realm (NULL: "macula.default") on loop (a
 * uv_loop_t *). */
int macula_rpc_open(void *loop, const char *url, const char *realm, const macula_rpc_callbacks *cb,
                    void *ctx, macula_rpc **out);

/* Calls procedure with args (JSON text; NULL: "null"); timeout_ms 0: 30 s. done is called
 * exactly once (result, error, "timeout" when the node did not answer in time, "closed").
 * MACULA_RPC_EINVAL, and no call, when args is not one JSON text as jansson reads it (strict
 * UTF-8, no \u0000, paired surrogates, integers within int64). The same for a cast. */
int macula_rpc_call(macula_rpc *r, const char *procedure, const char *args_json,
                    uint32_t timeout_ms, macula_rpc_result_fn done, void *ctx);
/* Casts (no answer). */
int macula_rpc_cast(macula_rpc *r, const char *procedure, const char *args_json);

/* Serves procedure with fn; done (may be NULL) gets the node's answer. */
int macula_rpc_advertise(macula_rpc *r, const char *procedure, macula_rpc_handler_fn fn,
                         void *fn_ctx, macula_rpc_result_fn done, void *done_ctx);
int macula_rpc_unadvertise(macula_rpc *r, const char *procedure, macula_rpc_result_fn done,
                           void *ctx);

/* Answers a request (once). result_json: len bytes of JSON text. MACULA_RPC_EINVAL for an
 * unknown or answered request. */
int macula_rpc_respond(macula_rpc *r, uint64_t request, const char *result_json, size_t len);
int macula_rpc_respond_error(macula_rpc *r, uint64_t request, const char *code,
                             const char *message);

/* Closes the connection; on_closed follows. */
void macula_rpc_close(macula_rpc *r);
/* Frees r after on_closed (from on_closed or later; the loop must run on until its handles
 * have closed). NULL is a no-op. */
void macula_rpc_free(macula_rpc *r);

#ifdef __cplusplus
}
#endif
#endif
