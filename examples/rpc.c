/* examples/rpc.c — serve a procedure and call it through a Macula node (include/macula/mesh_rpc.h).
 *
 *   cc examples/rpc.c -Iinclude -Lbuild -lmacula_core $(pkg-config --libs libuv jansson gnutls) ...
 *   ./rpc https://127.0.0.1:9443 macula.default
 *
 * Connects twice: one connection advertises example.greet (answers {"hello": ARGS}), the other
 * calls it once the advertisement is in place, prints the result and closes both. */
#include <stdio.h>
#include <string.h>

#include <uv.h>

#include "macula/mesh_rpc.h"

static macula_rpc *server, *client;
static int ready; /* connections ready: a call is accepted only on a ready one */

static void on_closed(macula_rpc *r, const char *reason, void *ctx)
{
    (void)reason;
    (void)ctx;
    macula_rpc_free(r);
}

static void greet(macula_rpc *r, uint64_t request, const char *procedure, const char *args,
                  size_t len, void *ctx)
{
    (void)procedure;
    (void)ctx;
    char out[512];
    int n = snprintf(out, sizeof out, "{\"hello\":%.*s}", (int)len, args);
    if (request != 0 && n > 0 && (size_t)n < sizeof out) {
        macula_rpc_respond(r, request, out, (size_t)n);
    }
}

static void on_result(macula_rpc *r, const char *code, const char *text, size_t len, void *ctx)
{
    (void)r;
    (void)ctx;
    printf("%s: %.*s\n", code ? code : "result", (int)len, text);
    macula_rpc_close(client);
    macula_rpc_close(server);
}

static void on_advertised(macula_rpc *r, const char *code, const char *text, size_t len, void *ctx)
{
    (void)r;
    (void)ctx;
    if (code != NULL) {
        fprintf(stderr, "advertise: %s: %.*s\n", code, (int)len, text);
        macula_rpc_close(server);
        macula_rpc_close(client);
        return;
    }
    int rc = macula_rpc_call(client, "example.greet", "\"world\"", 5000, on_result, NULL);
    if (rc != MACULA_RPC_OK) {
        fprintf(stderr, "call: %s\n", macula_rpc_strerror(rc));
        macula_rpc_close(server);
        macula_rpc_close(client);
    }
}

/* Both connections' on_ready: advertise once both are up, then call from on_advertised. */
static void rpc_ready(macula_rpc *r, void *ctx)
{
    (void)r;
    (void)ctx;
    if (++ready == 2 && macula_rpc_advertise(server, "example.greet", greet, NULL, on_advertised,
                                             NULL) != MACULA_RPC_OK) {
        fprintf(stderr, "advertise failed\n");
        macula_rpc_close(server);
        macula_rpc_close(client);
    }
}

int main(int argc, char **argv)
{
    const char *url = argc > 1 ? argv[1] : "https://127.0.0.1:9443";
    const char *realm = argc > 2 ? argv[2] : NULL;
    uv_loop_t *loop = uv_default_loop();
    macula_rpc_callbacks scb = {.on_ready = rpc_ready, .on_closed = on_closed};
    macula_rpc_callbacks ccb = {.on_ready = rpc_ready, .on_closed = on_closed};
    if (macula_rpc_open(loop, url, realm, &ccb, NULL, &client) != MACULA_RPC_OK ||
        macula_rpc_open(loop, url, realm, &scb, NULL, &server) != MACULA_RPC_OK) {
        fprintf(stderr, "cannot connect to %s\n", url);
        return 1;
    }
    uv_run(loop, UV_RUN_DEFAULT);
    return 0;
}
