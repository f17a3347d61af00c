/*
 * examples/mesh.c — the whole client API from one header (include/macula/mesh.h): pub/sub and
 * RPC through one node.
 *
 *   mesh URL [REALM]
 *
 * 1. connects (macula_mesh_connect) and subscribes to example.sum.* with QoS 1;
 * 2. serves example.sum (adds the integers of a JSON array) on one RPC connection and calls
 *    it with [1,2,3] from another (macula_rpc_advertise, macula_rpc_call);
 * 3. publishes the result to example.sum.result (QoS 1) and waits for its own subscription
 *    to deliver it; prints `sum=6 delivered=6`.
 * Exit 0 when the call answered 6 and the publication came back with it.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <uv.h>

#include "macula/mesh.h"

typedef struct example {
    macula_mesh *mesh;
    macula_rpc *server, *client;
    int ready;  /* RPC connections ready so far: work starts when both are */
    int closed; /* RPC connections closed so far */
    uv_timer_t deadline;
    char sum[32];    /* the call's result */
    char got[32];    /* what the subscription delivered */
    const char *err; /* the first failure */
} example;

/* ---- pub/sub ------------------------------------------------------------------------------ */

static void on_message(void *ctx, const char *topic, size_t topic_len, const char *pattern,
                       const uint8_t *payload, size_t len)
{
    (void)pattern;
    example *x = ctx;
    if (topic_len == strlen("example.sum.result") &&
        memcmp(topic, "example.sum.result", topic_len) == 0) {
        snprintf(x->got, sizeof x->got, "%.*s", (int)len, (const char *)payload);
        macula_mesh_stop(x->mesh);
    }
}

/* ---- RPC ---------------------------------------------------------------------------------- */

/* example.sum: the sum of the integers in a JSON array such as [1,2,3]. */
static void sum_handler(macula_rpc *r, uint64_t request, const char *procedure, const char *args,
                        size_t len, void *ctx)
{
    (void)procedure;
    (void)ctx;
    long total = 0;
    char buf[256];
    snprintf(buf, sizeof buf, "%.*s", (int)(len < sizeof buf ? len : sizeof buf - 1), args);
    for (char *p = buf; *p != '\0';) {
        if ((*p >= '0' && *p <= '9') || *p == '-') {
            total += strtol(p, &p, 10);
        } else {
            p++;
        }
    }
    char out[32];
    int n = snprintf(out, sizeof out, "%ld", total);
    if (request != 0) {
        macula_rpc_respond(r, request, out, (size_t)n);
    }
}

static void on_closed(macula_rpc *r, const char *reason, void *ctx)
{
    (void)reason;
    example *x = ctx;
    x->closed++;
    if (r == x->client) {
        x->client = NULL;
    } else if (r == x->server) {
        x->server = NULL;
    }
    macula_rpc_free(r);
}

static void close_both(example *x)
{
    if (!uv_is_closing((uv_handle_t *)&x->deadline)) {
        uv_close((uv_handle_t *)&x->deadline, NULL);
    }
    if (x->client != NULL) {
        macula_rpc_close(x->client);
    }
    if (x->server != NULL) {
        macula_rpc_close(x->server);
    }
}

static void on_deadline(uv_timer_t *t)
{
    example *x = t->data;
    fprintf(stderr, "no answer in 20 s\n");
    x->err = "timeout";
    close_both(x);
}

static void on_sum(macula_rpc *r, const char *code, const char *text, size_t len, void *ctx)
{
    (void)r;
    example *x = ctx;
    if (code != NULL) {
        fprintf(stderr, "call example.sum: %s: %.*s\n", code, (int)len, text);
        x->err = "call failed";
    } else {
        snprintf(x->sum, sizeof x->sum, "%.*s", (int)len, text);
    }
    close_both(x);
}

static void on_advertised(macula_rpc *r, const char *code, const char *text, size_t len, void *ctx)
{
    (void)r;
    example *x = ctx;
    if (code != NULL) {
        fprintf(stderr, "advertise example.sum: %s: %.*s\n", code, (int)len, text);
        x->err = "advertise failed";
        close_both(x);
        return;
    }
    int rc = macula_rpc_call(x->client, "example.sum", "[1,2,3]", 10000, on_sum, x);
    if (rc != MACULA_RPC_OK) {
        fprintf(stderr, "call example.sum: %s\n", macula_rpc_strerror(rc));
        x->err = "call failed";
        close_both(x);
    }
}

/* Both connections' on_ready: a call is accepted only on a ready connection
 * (MACULA_RPC_ENOTREADY before), so advertise once both are up, then call. */
static void rpc_ready(macula_rpc *r, void *ctx)
{
    (void)r;
    example *x = ctx;
    if (++x->ready == 2 && macula_rpc_advertise(x->server, "example.sum", sum_handler, x,
                                                on_advertised, x) != MACULA_RPC_OK) {
        x->err = "advertise failed";
        close_both(x);
    }
}

int main(int argc, char **argv)
{
    const char *url = argc > 1 ? argv[1] : "https://127.0.0.1:9443";
    const char *realm = argc > 2 ? argv[2] : NULL;
    example x = {0};
    macula_mesh_options opts = {.realm = realm};
    int rc = macula_mesh_connect(url, &opts, &x.mesh);
    if (rc != MACULA_MESH_OK) {
        fprintf(stderr, "connect %s: %s\n", url, macula_mesh_strerror(rc));
        return 1;
    }
    rc = macula_mesh_subscribe(x.mesh, "example.sum.*", 1, on_message, &x);
    if (rc != MACULA_MESH_OK) {
        fprintf(stderr, "subscribe: %s\n", macula_mesh_strerror(rc));
        macula_mesh_disconnect(x.mesh);
        return 1;
    }
    /* RPC: two connections on a libuv loop, one serving, one calling. */
    uv_loop_t loop;
    uv_loop_init(&loop);
    macula_rpc_callbacks scb = {.on_ready = rpc_ready, .on_closed = on_closed};
    macula_rpc_callbacks ccb = {.on_ready = rpc_ready, .on_closed = on_closed};
    uv_timer_init(&loop, &x.deadline);
    x.deadline.data = &x;
    uv_timer_start(&x.deadline, on_deadline, 20000, 0);
    if (macula_rpc_open(&loop, url, realm, &ccb, &x, &x.client) != MACULA_RPC_OK ||
        macula_rpc_open(&loop, url, realm, &scb, &x, &x.server) != MACULA_RPC_OK) {
        fprintf(stderr, "cannot open RPC connections to %s\n", url);
        return 1;
    }
    uv_run(&loop, UV_RUN_DEFAULT); /* until both RPC connections closed */
    uv_loop_close(&loop);
    if (x.err == NULL && x.sum[0] != '\0') {
        /* Pub/sub: publish the result and wait (at most 10 s) for our subscription. */
        rc = macula_mesh_publish(x.mesh, "example.sum.result", x.sum, strlen(x.sum), 1);
        if (rc == MACULA_MESH_OK) {
            (void)macula_mesh_run(x.mesh, 10000);
        } else {
            fprintf(stderr, "publish: %s\n", macula_mesh_strerror(rc));
        }
    }
    printf("sum=%s delivered=%s\n", x.sum[0] ? x.sum : "-", x.got[0] ? x.got : "-");
    macula_mesh_disconnect(x.mesh);
    return x.err == NULL && strcmp(x.sum, "6") == 0 && strcmp(x.got, "6") == 0 ? 0 : 1;
}
