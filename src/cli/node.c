/*
 * src/cli/node.c — `macula node [OPTIONS]`: the node's configuration (include/macula/config.h:
 * flags > environment > INI file > defaults; an invalid value exits with status 2 and the
 * message), its identity (mesh/identity.h: loaded, or created on first start), the root
 * supervisor (seed 000's macula_root, one_for_one, 10 restarts in 5 s) on a libuv loop, a
 * start-up banner, and a clean shutdown in reverse start order on SIGINT/SIGTERM.
 */
#include <gnutls/gnutls.h>
#include <microhttpd.h>
#include <ngtcp2/ngtcp2.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "base/evloop.h"
#include "cli.h"
#include "macula/config.h"
#include "macula/sup.h"
#include "macula/sup_supervisor.h"
#include "macula/version.h"
#include "mesh/aesgcm.h"
#include "mesh/identity.h"
#include "mesh/gateway/quic_server.h"
#include "mesh/root.h"

typedef struct node_ctx {
    uv_loop_t *loop;
    evloop evl; /* runs loop: polls briefly before it sleeps (idle_poll_us) */
    sup_rt *rt;
    sup_pid root;
    uv_signal_t sigint, sigterm;
    bool stopping;
    const cli_node_ext *ext;
} node_ctx;

static void node_stopping(node_ctx *ctx)
{
    if (ctx->ext != NULL && ctx->ext->stopping != NULL) {
        const cli_node_ext *e = ctx->ext;
        ctx->ext = NULL; /* once */
        e->stopping(e->user);
    }
}

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
        node_stopping(ctx);
        sup_reason n = sup_reason_normal();
        sup_stop(self, &n);
        evloop_stop(&ctx->evl);
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
    node_stopping(ctx);
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

static void node_usage(FILE *f)
{
    fprintf(f, "usage: macula node [OPTIONS]\n\n"
               "Runs a node. Every option has an environment variable and an INI key of the same "
               "name\n(the key without dashes); nothing needs to be set.\n\n");
    macula_config_usage(f);
}

static bool wants_help(int argc, char **argv)
{
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            return true;
        }
    }
    return false;
}

int cli_load_config(int argc, char **argv, macula_config *conf)
{
    char err[1024];
    if (macula_config_load(conf, argc - 1, argv + 1, NULL, err, sizeof err) != MACULA_CONFIG_OK) {
        fprintf(stderr, "macula: %s\n", err);
        return 2;
    }
    if (conf->data_dir_fallback) {
        fprintf(stderr,
                "macula: neither --data-dir, MACULA_DATA_DIR, XDG_DATA_HOME nor HOME is set: "
                "keeping the node's files in %s\n",
                conf->data_dir);
    }
    return 0;
}

int cli_load_identity(const macula_config *conf, identity **out)
{
    identity_config icfg = {
        .data_dir = conf->data_dir,
        .cert_path = conf->cert_path[0] ? conf->cert_path : NULL,
        .key_path = conf->key_path[0] ? conf->key_path : NULL,
        .cert_validity_days = (int)conf->cert_validity_days,
        .expired = (identity_expired_policy)conf->cert_expired,
    };
    char err[1024];
    int rc = identity_load_or_create(&icfg, out, err, sizeof err);
    if (rc != IDENTITY_OK) {
        fprintf(stderr, "macula: identity: %s\n", err);
        return rc == IDENTITY_EINVAL ? 2 : 1;
    }
    return 0;
}

int cli_node(int argc, char **argv)
{
    return cli_node_run(argc, argv, NULL);
}

int cli_node_run(int argc, char **argv, const cli_node_ext *ext)
{
    if (wants_help(argc, argv)) {
        node_usage(stdout);
        return 0;
    }
    signal(SIGPIPE, SIG_IGN);
    setvbuf(stdout, NULL, _IOLBF, 0);
    macula_config *conf = malloc(sizeof *conf);
    if (conf == NULL) {
        fprintf(stderr, "macula: out of memory\n");
        return 1;
    }
    int rc = cli_load_config(argc, argv, conf);
    identity *id = NULL;
    if (rc == 0) {
        rc = cli_load_identity(conf, &id);
    }
    if (rc != 0) {
        free(conf);
        return rc;
    }
    char hex[IDENTITY_ID_HEX_LEN + 1];
    identity_node_id_hex(id, hex);
    node_ctx ctx = {0};
    ctx.loop = uv_default_loop();
    evloop_init(&ctx.evl, ctx.loop, conf->idle_poll_us);
    ctx.rt = sup_rt_new(ctx.loop);
    mesh_root_config *cfg = malloc(sizeof *cfg);
    if (cfg == NULL) {
        fprintf(stderr, "macula: out of memory\n");
        sup_rt_free(ctx.rt);
        identity_free(id);
        free(conf);
        return 1;
    }
    mesh_root_config_defaults(cfg);
    mesh_root_config_apply(cfg, conf, id);
    cfg->gateway.health.loop = &ctx.evl.stats;
    if (ext != NULL) {
        cfg->extra = ext->children;
        cfg->nextra = ext->nchildren;
    }
    sup_reason why;
    if (mesh_root_start(ctx.rt, cfg, &ctx.root, &why) != 0) {
        char r[80];
        fprintf(stderr, "macula: the root supervisor did not start: %s\n",
                sup_reason_str(&why, r, sizeof r));
        sup_rt_free(ctx.rt);
        identity_free(id);
        free(cfg);
        free(conf);
        return 1;
    }
    printf("macula %s node\n", MACULA_VERSION);
    printf("  node id    %s (%s, %s)\n", hex, identity_key_type(id),
           identity_created(id) ? "new identity" : "loaded");
    printf("  realm      %s\n", conf->realm);
    gw_quic_stats qst;
    if (gw_quic_server_stats(ctx.rt, &qst)) {
        static const char *const prot[] = {"GnuTLS", "AES-NI", "VAES"}; /* by aesgcm_impl */
        printf("  quic       udp %s:%u (TLS 1.3, ALPN macula; AES-128-GCM packets on %s)\n",
               "0.0.0.0", (unsigned)qst.port, prot[aesgcm_impl_get()]);
    } else {
        printf("  quic       not listening\n");
    }
    printf("  health     http://%s:%u/health  (/ready /live /metrics /tree)\n",
           cfg->gateway.health.addr, (unsigned)gw_health_port(ctx.rt));
    printf("  data dir   %s%s\n", conf->data_dir,
           conf->data_dir_fallback ? "  (fallback: no HOME)" : "");
    printf("  cert       %s\n  key        %s\n", identity_cert_path(id), identity_key_path(id));
    printf("  config     %s\n", conf->config_file[0] ? conf->config_file : "(no file)");
    printf("  versions   libuv %s, GnuTLS %s, ngtcp2 %s, libmicrohttpd %s\n", uv_version_string(),
           gnutls_check_version(NULL), ngtcp2_version(0)->version_str, MHD_get_version());
    printf("  runtime    %zu actors\n", sup_rt_actor_count(ctx.rt));
    if (conf->idle_poll_us > 0) {
        printf("  loop       polls up to %u us for the next event before it sleeps "
               "(idle_poll_us)\n",
               (unsigned)(ctx.evl.max_ns / 1000));
    } else {
        printf("  loop       sleeps between events (idle_poll_us 0)\n");
    }
    printf("  root       macula_root one_for_one, 10 restarts in 5 s\n");
    if (ext != NULL && ext->started != NULL &&
        ext->started(ext->user, ctx.loop, ctx.rt, conf) != 0) {
        sup_reason sd = sup_reason_shutdown();
        sup_exit(ctx.rt, SUP_NOPID, ctx.root, &sd);
        ctx.stopping = true;
        rc = 1;
    }
    ctx.ext = ext;
    print_tree(ctx.rt, ctx.root);
    printf("  ready      press Ctrl-C to stop\n");
    sup_pid watcher;
    sup_spawn(ctx.rt, SUP_NOPID, &watcher_behaviour, &ctx, 0, &watcher, NULL);
    uv_signal_init(ctx.loop, &ctx.sigint);
    uv_signal_init(ctx.loop, &ctx.sigterm);
    ctx.sigint.data = ctx.sigterm.data = &ctx;
    uv_signal_start(&ctx.sigint, on_signal, SIGINT);
    uv_signal_start(&ctx.sigterm, on_signal, SIGTERM);
    evloop_run(&ctx.evl);
    uv_close((uv_handle_t *)&ctx.sigint, NULL);
    uv_close((uv_handle_t *)&ctx.sigterm, NULL);
    sup_rt_free(ctx.rt);
    uv_run(ctx.loop, UV_RUN_NOWAIT);
    uv_loop_close(ctx.loop);
    identity_free(id);
    free(cfg);
    free(conf);
    printf("macula: stopped\n");
    return rc;
}
