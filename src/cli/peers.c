/*
 * src/cli/peers.c — `macula peers [--node URL] [--realm R] [--json]`: the node's connected peers
 * (its peer systems, mesh/peer/peer.h), from the node's com.macula.diagnostics.peers over QUIC
 * with a throw-away identity. One line per peer after a header:
 *
 *   NODE ADDRESS UPTIME FRAMES_IN FRAMES_OUT CALLS_OUT CALLS_IN RESULTS ERRORS IN_FLIGHT PROVIDES
 *
 * NODE is the first 16 hex digits of the peer's node id (the suffix of its workers' registered
 * names), FRAMES_* the pool connection's frames, CALLS_* / RESULTS / ERRORS / IN_FLIGHT its
 * macula_rpc_handler's accounting (RESULTS and ERRORS: replies both ways), PROVIDES the
 * procedures its macula_advertisement_manager knows (comma-separated, "-" for none); a worker
 * that did not answer (restarting) shows "-". --json prints the node's answer as it came.
 * Exit 0, 1 (no answer, refused), 2 (bad arguments).
 */
#include <gnutls/crypto.h>
#include <gnutls/gnutls.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <uv.h>

#include "cli.h"
#include "mesh/client.h"

typedef struct peers_cli {
    mesh_client *client;
    uv_timer_t timer;
    const char *realm;
    bool json;
    uint8_t call_id[16];
    int status;
} peers_cli;

static void peers__ready(mesh_client *c, const uint8_t server_id[IDENTITY_ID_LEN], void *ctx)
{
    (void)server_id;
    peers_cli *x = ctx;
    static const char proc[] = "com.macula.diagnostics.peers";
    wire_msg w = {.type = WIRE_CALL};
    w.call.call_id = (wire_bytes){x->call_id, sizeof x->call_id};
    w.call.procedure = (wire_bytes){(const uint8_t *)proc, sizeof proc - 1};
    w.call.args = (wire_bytes){(const uint8_t *)"{}", 2};
    w.call.realm = (wire_bytes){(const uint8_t *)x->realm, strlen(x->realm)};
    if (mesh_client_send(c, &w) != MESH_CLIENT_OK) {
        mesh_client_close(c, "send failed");
    }
}

static json_int_t peers__int(const json_t *o, const char *key)
{
    return json_integer_value(json_object_get(o, key));
}

/* A number of worker w ("-" when the worker did not answer). */
static void peers__num(char *buf, size_t cap, const json_t *w, const char *k1, const char *k2)
{
    if (!json_is_object(w)) {
        snprintf(buf, cap, "-");
        return;
    }
    json_int_t v = peers__int(w, k1) + (k2 ? peers__int(w, k2) : 0);
    snprintf(buf, cap, "%lld", (long long)v);
}

static void peers__print(const json_t *doc)
{
    const json_t *list = json_object_get(doc, "peers");
    printf("%-16s %-21s %9s %9s %10s %9s %8s %7s %6s %9s %s\n", "NODE", "ADDRESS", "UPTIME",
           "FRAMES_IN", "FRAMES_OUT", "CALLS_OUT", "CALLS_IN", "RESULTS", "ERRORS", "IN_FLIGHT",
           "PROVIDES");
    size_t i;
    const json_t *p;
    json_array_foreach(list, i, p)
    {
        const char *id = json_string_value(json_object_get(p, "node_id"));
        const char *addr = json_string_value(json_object_get(p, "addr"));
        const json_t *rpc = json_object_get(p, "rpc_handler");
        const json_t *adv = json_object_get(p, "advertisement_manager");
        char up[32], co[24], ci[24], res[24], err[24], inf[24], fin[24], fout[24];
        snprintf(up, sizeof up, "%.1fs", json_number_value(json_object_get(p, "uptime_s")));
        snprintf(fin, sizeof fin, "%lld", (long long)peers__int(p, "frames_in"));
        snprintf(fout, sizeof fout, "%lld", (long long)peers__int(p, "frames_out"));
        peers__num(co, sizeof co, rpc, "calls_out", NULL);
        peers__num(ci, sizeof ci, rpc, "calls_in", NULL);
        peers__num(res, sizeof res, rpc, "results_in", "results_out");
        peers__num(err, sizeof err, rpc, "errors_in", "errors_out");
        peers__num(inf, sizeof inf, rpc, "in_flight_count", NULL);
        printf("%-16.16s %-21s %9s %9s %10s %9s %8s %7s %6s %9s ", id ? id : "?", addr ? addr : "?",
               up, fin, fout, co, ci, res, err, inf);
        const json_t *procs = json_object_get(adv, "procedures");
        if (!json_is_array(procs)) {
            printf("-\n");
            continue;
        }
        size_t j;
        const json_t *e;
        json_array_foreach(procs, j, e)
        {
            const char *name = json_string_value(json_object_get(e, "procedure"));
            printf("%s%s", j ? "," : "", name ? name : "?");
        }
        printf("%s\n", json_array_size(procs) == 0 ? "-" : "");
    }
    json_int_t count = peers__int(doc, "count");
    if (json_is_true(json_object_get(doc, "truncated"))) {
        printf("(%lld peers; the first %zu listed)\n", (long long)count, json_array_size(list));
    }
}

static void peers__frame(mesh_client *c, const wire_msg *m, void *ctx)
{
    peers_cli *x = ctx;
    if (m->type != WIRE_REPLY) {
        return;
    }
    if (m->reply.is_error) {
        fprintf(stderr, "macula peers: %.*s: %.*s\n", (int)m->reply.error.code.len,
                (const char *)m->reply.error.code.p, (int)m->reply.error.message.len,
                (const char *)m->reply.error.message.p);
        x->status = 1;
    } else if (x->json) {
        printf("%.*s\n", (int)m->reply.result.len, (const char *)m->reply.result.p);
        x->status = 0;
    } else {
        json_error_t jerr;
        json_t *doc = json_loadb((const char *)m->reply.result.p, m->reply.result.len, 0, &jerr);
        if (!json_is_array(json_object_get(doc, "peers"))) {
            fprintf(stderr, "macula peers: the node's answer is not a peer list\n");
            x->status = 1;
        } else {
            peers__print(doc);
            x->status = 0;
        }
        json_decref(doc);
    }
    mesh_client_close(c, "done");
}

static void peers__closed(mesh_client *c, int err, const char *reason, void *ctx)
{
    (void)c;
    peers_cli *x = ctx;
    if (x->status < 0) {
        fprintf(stderr, "macula peers: %s: %s\n", mesh_client_strerror(err), reason);
        x->status = 1;
    }
    uv_close((uv_handle_t *)&x->timer, NULL);
    mesh_client_free(c);
}

static void peers__timeout(uv_timer_t *t)
{
    peers_cli *x = t->data;
    fprintf(stderr, "macula peers: no answer\n");
    x->status = 1;
    mesh_client_close(x->client, "timeout");
}

int cli_peers(int argc, char **argv)
{
    const char *node = getenv("MACULA_NODE"), *realm = getenv("MACULA_REALM");
    bool json = false;
    for (int i = 1; i < argc; i++) {
        if ((strcmp(argv[i], "--node") == 0 || strcmp(argv[i], "--realm") == 0) && i + 1 < argc) {
            *(strcmp(argv[i], "--node") == 0 ? &node : &realm) = argv[i + 1];
            i++;
        } else if (strcmp(argv[i], "--json") == 0) {
            json = true;
        } else {
            fprintf(stderr,
                    "usage: macula peers [--node https://HOST:PORT] [--realm R] [--json]\n");
            return 2;
        }
    }
    if (node == NULL || node[0] == '\0') {
        node = "https://127.0.0.1:9443";
    }
    if (realm == NULL || realm[0] == '\0') {
        realm = "macula.default";
    }
    char dir[512];
    identity *id = NULL;
    if (cli_temp_identity("macula peers", dir, sizeof dir, &id) != 0) {
        return 1;
    }
    peers_cli x = {.realm = realm, .json = json, .status = -1};
    (void)gnutls_rnd(GNUTLS_RND_NONCE, x.call_id, sizeof x.call_id);
    uv_loop_t *loop = uv_default_loop();
    uv_timer_init(loop, &x.timer);
    x.timer.data = &x;
    mesh_client_callbacks cb = {
        .on_ready = peers__ready, .on_frame = peers__frame, .on_closed = peers__closed};
    if (mesh_client_open(loop, id, node, realm, NULL, &cb, &x, &x.client) != MESH_CLIENT_OK) {
        fprintf(stderr, "macula peers: cannot connect to %s\n", node);
        uv_close((uv_handle_t *)&x.timer, NULL);
        uv_run(loop, UV_RUN_DEFAULT);
        identity_free(id);
        cli_temp_identity_remove(dir);
        return 1;
    }
    uv_timer_start(&x.timer, peers__timeout, 15000, 0);
    uv_run(loop, UV_RUN_DEFAULT);
    identity_free(id);
    cli_temp_identity_remove(dir);
    return x.status;
}
