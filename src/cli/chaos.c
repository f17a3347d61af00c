/*
 * src/cli/chaos.c — `macula chaos crash ACTOR [--node URL] [--realm R]`: CALLs the node's
 * com.macula.admin.crash {"actor": ACTOR}, which kills that registered actor (its supervisor
 * then restarts it), for the seed's fault-isolation scenarios on a running node. The node
 * answers only when it was started with MACULA_CHAOS=1 (no_handler otherwise).
 * Prints the node's answer; exit 0 done, 1 refused / failed, 2 bad arguments.
 */
#include <gnutls/crypto.h>
#include <gnutls/gnutls.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <uv.h>

#include "cli.h"
#include "mesh/client.h"

typedef struct chaos_cli {
    mesh_client *client;
    uv_timer_t timer;
    const char *args;
    const char *realm;
    uint8_t call_id[16];
    int status;
} chaos_cli;

static void chaos__ready(mesh_client *c, const uint8_t server_id[IDENTITY_ID_LEN], void *ctx)
{
    (void)server_id;
    chaos_cli *x = ctx;
    wire_msg w = {.type = WIRE_CALL};
    static const char proc[] = "com.macula.admin.crash";
    w.call.call_id = (wire_bytes){x->call_id, sizeof x->call_id};
    w.call.procedure = (wire_bytes){(const uint8_t *)proc, sizeof proc - 1};
    w.call.args = (wire_bytes){(const uint8_t *)x->args, strlen(x->args)};
    w.call.realm = (wire_bytes){(const uint8_t *)x->realm, strlen(x->realm)};
    if (mesh_client_send(c, &w) != MESH_CLIENT_OK) {
        mesh_client_close(c, "send failed");
    }
}

static void chaos__frame(mesh_client *c, const wire_msg *m, void *ctx)
{
    chaos_cli *x = ctx;
    if (m->type != WIRE_REPLY) {
        return;
    }
    if (m->reply.is_error) {
        fprintf(stderr, "macula chaos: %.*s: %.*s\n", (int)m->reply.error.code.len,
                (const char *)m->reply.error.code.p, (int)m->reply.error.message.len,
                (const char *)m->reply.error.message.p);
        x->status = 1;
    } else {
        printf("%.*s\n", (int)m->reply.result.len, (const char *)m->reply.result.p);
        x->status = 0;
    }
    mesh_client_close(c, "done");
}

static void chaos__closed(mesh_client *c, int err, const char *reason, void *ctx)
{
    (void)c;
    chaos_cli *x = ctx;
    if (x->status < 0) {
        fprintf(stderr, "macula chaos: %s: %s\n", mesh_client_strerror(err), reason);
        x->status = 1;
    }
    uv_close((uv_handle_t *)&x->timer, NULL);
    mesh_client_free(c); /* its handles close; the loop then ends */
}

static void chaos__timeout(uv_timer_t *t)
{
    chaos_cli *x = t->data;
    fprintf(stderr, "macula chaos: no answer\n");
    x->status = 1;
    mesh_client_close(x->client, "timeout");
}

int cli_chaos(int argc, char **argv)
{
    const char *node = getenv("MACULA_NODE"), *realm = getenv("MACULA_REALM"), *actor = NULL;
    bool crash = false;
    for (int i = 1; i < argc; i++) {
        if ((strcmp(argv[i], "--node") == 0 || strcmp(argv[i], "--realm") == 0) && i + 1 < argc) {
            *(strcmp(argv[i], "--node") == 0 ? &node : &realm) = argv[i + 1];
            i++;
        } else if (!crash && strcmp(argv[i], "crash") == 0) {
            crash = true;
        } else if (crash && actor == NULL && argv[i][0] != '-') {
            actor = argv[i];
        } else {
            actor = NULL;
            crash = false;
            break;
        }
    }
    if (!crash || actor == NULL || strlen(actor) > 120 || strchr(actor, '"') ||
        strchr(actor, '\\')) {
        fprintf(stderr, "usage: macula chaos crash ACTOR [--node https://HOST:PORT] [--realm R]\n");
        return 2;
    }
    if (node == NULL || node[0] == '\0') {
        node = "https://127.0.0.1:9443";
    }
    if (realm == NULL || realm[0] == '\0') {
        realm = "macula.default";
    }
    char args[200];
    snprintf(args, sizeof args, "{\"actor\":\"%s\"}", actor);
    char dir[512];
    identity *id = NULL;
    if (cli_temp_identity("macula chaos", dir, sizeof dir, &id) != 0) {
        return 1;
    }
    chaos_cli x = {.args = args, .realm = realm, .status = -1};
    (void)gnutls_rnd(GNUTLS_RND_NONCE, x.call_id, sizeof x.call_id);
    uv_loop_t *loop = uv_default_loop();
    uv_timer_init(loop, &x.timer);
    x.timer.data = &x;
    mesh_client_callbacks cb = {
        .on_ready = chaos__ready, .on_frame = chaos__frame, .on_closed = chaos__closed};
    if (mesh_client_open(loop, id, node, realm, NULL, &cb, &x, &x.client) != MESH_CLIENT_OK) {
        fprintf(stderr, "macula chaos: cannot connect to %s\n", node);
        uv_close((uv_handle_t *)&x.timer, NULL);
        uv_run(loop, UV_RUN_DEFAULT);
        identity_free(id);
        cli_temp_identity_remove(dir);
        return 1;
    }
    uv_timer_start(&x.timer, chaos__timeout, 15000, 0);
    uv_run(loop, UV_RUN_DEFAULT);
    identity_free(id);
    cli_temp_identity_remove(dir);
    return x.status;
}
