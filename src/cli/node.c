/*
 * src/cli/node.c — `macula node`: the node's root supervisor (seed 000's macula_root,
 * one_for_one, 10 restarts in 5 s) on a libuv loop, a start-up banner, and a clean shutdown
 * in reverse start order on SIGINT/SIGTERM.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "cli.h"
#include "macula/sup.h"
#include "macula/sup_supervisor.h"
#include "macula/version.h"
#include "mesh/root.h"

typedef struct node_ctx {
    uv_loop_t *loop;
    sup_rt *rt;
    sup_pid root;
    uv_signal_t sigint, sigterm;
    bool stopping;
} node_ctx;

/* Watches the root: when it ends, the loop stops. */
static int watcher_init(sup_actor *self, void *state, void *arg)
{
    *(node_ctx **)state = arg;
    sup_monitor(self, ((node_ctx *)arg)->root);
    return 0;
}

static void watcher_info(sup_actor *self, void *state, const sup_msg *m)
{
    node_ctx *ctx = *(node_ctx **)state;
    if (m->kind == SUP_MSG_DOWN) {
        char r[80];
        fprintf(stderr, "macula: root supervisor ended (%s)\n",
                sup_reason_str(&m->reason, r, sizeof r));
        uv_signal_stop(&ctx->sigint);
        uv_signal_stop(&ctx->sigterm);
        sup_reason n = sup_reason_normal();
        sup_stop(self, &n);
        uv_stop(ctx->loop);
    }
}

static const sup_behaviour watcher_behaviour = {
    .name = "node_watcher",
    .state_size = sizeof(node_ctx *),
    .init = watcher_init,
    .handle_info = watcher_info,
};

static void on_signal(uv_signal_t *h, int signum)
{
    node_ctx *ctx = h->data;
    if (ctx->stopping) {
        fprintf(stderr, "macula: second signal, exiting now\n");
        exit(1);
    }
    ctx->stopping = true;
    fprintf(stderr, "macula: %s received, shutting down\n",
            signum == SIGINT ? "SIGINT" : "SIGTERM");
    sup_reason sd = sup_reason_shutdown();
    /* The root has no parent: an exit signal from outside is its parent's, so it terminates
     * its children in reverse start order and ends. */
    sup_exit(ctx->rt, SUP_NOPID, ctx->root, &sd);
}

static void print_tree(sup_rt *rt, sup_pid root)
{
    char *json = sup_tree_json(rt, root);
    if (json) {
        printf("  tree       %s\n", json);
        free(json);
    }
}

int cli_node(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    signal(SIGPIPE, SIG_IGN);
    setvbuf(stdout, NULL, _IOLBF, 0);
    node_ctx ctx = {0};
    ctx.loop = uv_default_loop();
    ctx.rt = sup_rt_new(ctx.loop);
    mesh_root_config cfg;
    mesh_root_config_defaults(&cfg);
    char err[256];
    if (mesh_root_config_env(&cfg, err, sizeof err) != 0) {
        fprintf(stderr, "macula: %s\n", err);
        sup_rt_free(ctx.rt);
        return 2;
    }
    sup_reason why;
    if (mesh_root_start(ctx.rt, &cfg, &ctx.root, &why) != 0) {
        char r[80];
        fprintf(stderr, "macula: the root supervisor did not start: %s\n",
                sup_reason_str(&why, r, sizeof r));
        sup_rt_free(ctx.rt);
        return 1;
    }
    printf("macula %s node\n", MACULA_VERSION);
    printf("  runtime    libuv %s, %zu actors\n", uv_version_string(), sup_rt_actor_count(ctx.rt));
    printf("  root       macula_root one_for_one, 10 restarts in 5 s\n");
    printf("  health     http://%s:%u/health  (/ready /live /metrics /tree)\n",
           cfg.gateway.health.addr, (unsigned)gw_health_port(ctx.rt));
    print_tree(ctx.rt, ctx.root);
    printf("  ready      press Ctrl-C to stop\n");
    sup_pid watcher;
    sup_spawn(ctx.rt, SUP_NOPID, &watcher_behaviour, &ctx, 0, &watcher, NULL);
    uv_signal_init(ctx.loop, &ctx.sigint);
    uv_signal_init(ctx.loop, &ctx.sigterm);
    ctx.sigint.data = ctx.sigterm.data = &ctx;
    uv_signal_start(&ctx.sigint, on_signal, SIGINT);
    uv_signal_start(&ctx.sigterm, on_signal, SIGTERM);
    uv_run(ctx.loop, UV_RUN_DEFAULT);
    uv_close((uv_handle_t *)&ctx.sigint, NULL);
    uv_close((uv_handle_t *)&ctx.sigterm, NULL);
    sup_rt_free(ctx.rt);
    uv_run(ctx.loop, UV_RUN_NOWAIT);
    uv_loop_close(ctx.loop);
    printf("macula: stopped\n");
    return 0;
}
