/*
 * src/cli/dht.c — `macula dht put KEY VALUE [--ttl S]`, `macula dht get KEY`, `macula dht
 * peers`, against a node (`--node https://HOST:PORT`, default $MACULA_NODE or
 * https://127.0.0.1:9443; `--realm R`, default $MACULA_REALM or macula.default; `--timeout S`,
 * 45; `--json` prints the node's answer as it came).
 *
 * The CLI connects like any client (mesh/client.h: QUIC, CONNECT in the realm) with a
 * throw-away identity and CALLs the node's procedures com.macula.dht.put / get / peers, which
 * the gateway hands to the routing server (keys are names scoped to the realm there).
 * Exit status: 0 done (put: stored on at least one node; get: found), 1 not found / not stored /
 * refused / failed, 2 bad arguments.
 */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <uv.h>

#include "cli.h"
#include "mesh/client.h"
#include "mesh/identity.h"

typedef struct dht_cli {
    uv_loop_t *loop;
    mesh_client *client;
    uv_timer_t timer;
    const char *cmd;
    const char *procedure;
    const char *realm;
    char *args; /* JSON text */
    bool json;
    int status;
    uint8_t call_id[16];
} dht_cli;

int cli_temp_identity(const char *prog, char *dir, size_t dirsize, identity **out)
{
    const char *tmp = getenv("TMPDIR");
    snprintf(dir, dirsize, "%s/macula-cli-XXXXXX", tmp && tmp[0] ? tmp : "/tmp");
    if (mkdtemp(dir) == NULL) {
        fprintf(stderr, "%s: mkdtemp %s: ", prog, dir);
        perror(NULL);
        return -1;
    }
    identity_config ic = {.data_dir = dir, .cert_validity_days = 1};
    char err[256];
    if (identity_load_or_create(&ic, out, err, sizeof err) != IDENTITY_OK) {
        fprintf(stderr, "%s: %s\n", prog, err);
        rmdir(dir);
        return -1;
    }
    return 0;
}

void cli_temp_identity_remove(const char *dir)
{
    char path[4200];
    snprintf(path, sizeof path, "%s/%s", dir, IDENTITY_CERT_FILE);
    unlink(path);
    snprintf(path, sizeof path, "%s/%s", dir, IDENTITY_KEY_FILE);
    unlink(path);
    rmdir(dir);
}

static void dht__usage(FILE *f)
{
    fprintf(f, "usage: macula dht put KEY VALUE [--ttl SECONDS] [OPTIONS]\n"
               "       macula dht get KEY [OPTIONS]\n"
               "       macula dht peers [OPTIONS]\n"
               "options: --node https://HOST:PORT  (default $MACULA_NODE or "
               "https://127.0.0.1:9443)\n"
               "         --realm R  (default $MACULA_REALM or macula.default)\n"
               "         --timeout SECONDS (45)  --json (print the node's answer)\n");
}

/* Prints the answer; returns the exit status. */
static int dht__print(dht_cli *d, const char *text, size_t len)
{
    if (d->json) {
        printf("%.*s\n", (int)len, text);
    }
    json_error_t jerr;
    json_t *r = json_loadb(text, len, 0, &jerr);
    if (r == NULL) {
        fprintf(stderr, "macula dht: the node's answer is not JSON: %s\n", jerr.text);
        return 1;
    }
    int status = 0;
    if (strcmp(d->cmd, "put") == 0) {
        json_int_t stored = json_integer_value(json_object_get(r, "stored"));
        if (!d->json) {
            printf("stored %s on %lld node%s (key id %s, %lld hops)\n",
                   json_string_value(json_object_get(r, "key")), (long long)stored,
                   stored == 1 ? "" : "s", json_string_value(json_object_get(r, "id")),
                   (long long)json_integer_value(json_object_get(r, "hops")));
        }
        status = stored > 0 ? 0 : 1;
        if (stored == 0) {
            fprintf(stderr, "macula dht: no node acknowledged the value (%s)\n",
                    json_string_value(json_object_get(r, "status")));
        }
    } else if (strcmp(d->cmd, "get") == 0) {
        json_t *vals = json_object_get(r, "values");
        json_t *hex = json_object_get(r, "values_hex");
        size_t i;
        json_t *v;
        if (!d->json) {
            json_array_foreach(vals, i, v)
            {
                printf("%s\n", json_string_value(v));
            }
            json_array_foreach(hex, i, v)
            {
                printf("hex:%s\n", json_string_value(v));
            }
        }
        if (!json_is_true(json_object_get(r, "found"))) {
            fprintf(stderr, "macula dht: %s: not found (%lld queries)\n",
                    json_string_value(json_object_get(r, "key")),
                    (long long)json_integer_value(json_object_get(r, "queries")));
            status = 1;
        }
    } else if (!d->json) {
        json_t *list = json_object_get(r, "contacts");
        printf("node %s at %s, realm %s, %zu contacts, %lld outgoing connections\n",
               json_string_value(json_object_get(r, "node_id")),
               json_string_value(json_object_get(r, "address")),
               json_string_value(json_object_get(r, "realm")), json_array_size(list),
               (long long)json_integer_value(json_object_get(r, "connections")));
        size_t i;
        json_t *c;
        json_array_foreach(list, i, c)
        {
            printf("%s %s\n", json_string_value(json_object_get(c, "id")),
                   json_string_value(json_object_get(c, "address")));
        }
    }
    json_decref(r);
    return status;
}

static void dht__on_ready(mesh_client *c, const uint8_t server_id[IDENTITY_ID_LEN], void *ctx)
{
    (void)server_id;
    dht_cli *d = ctx;
    uv_random(NULL, NULL, d->call_id, sizeof d->call_id, 0, NULL);
    wire_msg m = {.type = WIRE_CALL};
    m.call.call_id = (wire_bytes){d->call_id, sizeof d->call_id};
    m.call.procedure = (wire_bytes){(const uint8_t *)d->procedure, strlen(d->procedure)};
    m.call.args = (wire_bytes){(const uint8_t *)d->args, strlen(d->args)};
    m.call.realm = (wire_bytes){(const uint8_t *)d->realm, strlen(d->realm)};
    if (mesh_client_send(c, &m) != MESH_CLIENT_OK) {
        fprintf(stderr, "macula dht: could not send the call\n");
        d->status = 1;
        mesh_client_close(c, "send failed");
    }
}

static void dht__on_frame(mesh_client *c, const wire_msg *m, void *ctx)
{
    dht_cli *d = ctx;
    if (m->type != WIRE_REPLY || m->reply.call_id.len != sizeof d->call_id ||
        memcmp(m->reply.call_id.p, d->call_id, sizeof d->call_id) != 0) {
        return;
    }
    if (m->reply.is_error) {
        fprintf(stderr, "macula dht: %.*s: %.*s\n", (int)m->reply.error.code.len,
                (const char *)m->reply.error.code.p, (int)m->reply.error.message.len,
                (const char *)m->reply.error.message.p);
        d->status = 1;
    } else {
        d->status = dht__print(d, (const char *)m->reply.result.p, m->reply.result.len);
    }
    mesh_client_close(c, "done");
}

static void dht__on_closed(mesh_client *c, int err, const char *reason, void *ctx)
{
    dht_cli *d = ctx;
    if (err == MESH_CLIENT_EREFUSED) {
        fprintf(stderr, "macula dht: refused by the node: %s\n", reason);
        d->status = 1;
    } else if (err != MESH_CLIENT_ECLOSED) {
        fprintf(stderr, "macula dht: %s: %s\n", mesh_client_strerror(err), reason);
        d->status = 1;
    }
    uv_timer_stop(&d->timer);
    uv_close((uv_handle_t *)&d->timer, NULL);
    mesh_client_free(c);
}

static void dht__deadline(uv_timer_t *t)
{
    dht_cli *d = t->data;
    fprintf(stderr, "macula dht: no answer in time\n");
    d->status = 1;
    mesh_client_close(d->client, "timeout");
}

int cli_dht(int argc, char **argv)
{
    const char *node = getenv("MACULA_NODE"), *realm = getenv("MACULA_REALM");
    const char *pos[3] = {NULL, NULL, NULL};
    int npos = 0;
    long ttl = -1, timeout_s = 45;
    bool json = false;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        bool has_val = i + 1 < argc;
        if (strcmp(a, "--node") == 0 && has_val) {
            node = argv[++i];
        } else if (strcmp(a, "--realm") == 0 && has_val) {
            realm = argv[++i];
        } else if ((strcmp(a, "--ttl") == 0 || strcmp(a, "--timeout") == 0) && has_val) {
            char *e;
            long n = strtol(argv[++i], &e, 10);
            if (*e != '\0' || n < 1 || n > 86400L * 365) {
                fprintf(stderr, "macula dht: %s wants a number of seconds\n", a);
                return 2;
            }
            *(strcmp(a, "--ttl") == 0 ? &ttl : &timeout_s) = n;
        } else if (strcmp(a, "--json") == 0) {
            json = true;
        } else if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            dht__usage(stdout);
            return 0;
        } else if ((a[0] != '-' || a[1] == '\0') && npos < 3) {
            pos[npos++] = a;
        } else {
            dht__usage(stderr);
            return 2;
        }
    }
    const char *cmd = pos[0];
    bool ok = cmd != NULL &&
              ((strcmp(cmd, "put") == 0 && npos == 3) || (strcmp(cmd, "get") == 0 && npos == 2) ||
               (strcmp(cmd, "peers") == 0 && npos == 1));
    if (!ok || (ttl > 0 && strcmp(cmd, "put") != 0)) {
        dht__usage(stderr);
        return 2;
    }
    node = node && node[0] ? node : "https://127.0.0.1:9443";
    realm = realm && realm[0] ? realm : "macula.default";
    char host[64];
    uint16_t port;
    if (mesh_client_parse_url(node, host, sizeof host, &port) != MESH_CLIENT_OK) {
        fprintf(stderr, "macula dht: '%s' is not https://HOST:PORT with a resolvable HOST\n", node);
        return 2;
    }
    json_t *args = json_object();
    if (npos >= 2) {
        json_object_set_new(args, "key", json_string(pos[1]));
    }
    if (npos == 3) {
        json_object_set_new(args, "value", json_string(pos[2]));
    }
    if (ttl > 0) {
        json_object_set_new(args, "ttl", json_integer(ttl));
    }
    char proc[64];
    snprintf(proc, sizeof proc, "com.macula.dht.%s", cmd);
    dht_cli d = {
        .loop = uv_default_loop(), .cmd = cmd, .procedure = proc, .realm = realm, .json = json};
    d.args = json_dumps(args, JSON_COMPACT);
    json_decref(args);
    if (d.args == NULL) {
        fprintf(stderr, "macula dht: KEY and VALUE must be UTF-8 text\n");
        return 2;
    }
    char dir[512];
    identity *id = NULL;
    if (cli_temp_identity("macula dht", dir, sizeof dir, &id) != 0) {
        free(d.args);
        return 1;
    }
    uv_timer_init(d.loop, &d.timer);
    d.timer.data = &d;
    mesh_client_callbacks cb = {
        .on_ready = dht__on_ready, .on_frame = dht__on_frame, .on_closed = dht__on_closed};
    int rc = mesh_client_open(d.loop, id, node, realm, NULL, &cb, &d, &d.client);
    if (rc != MESH_CLIENT_OK) {
        fprintf(stderr, "macula dht: %s\n", mesh_client_strerror(rc));
        uv_close((uv_handle_t *)&d.timer, NULL);
        d.status = 1;
    } else {
        uv_timer_start(&d.timer, dht__deadline, (uint64_t)timeout_s * 1000u, 0);
    }
    uv_run(d.loop, UV_RUN_DEFAULT);
    identity_free(id);
    cli_temp_identity_remove(dir);
    uv_loop_close(d.loop);
    free(d.args);
    return d.status;
}
