/*
 * src/cli/ping.c — `macula ping URL [--realm R] [--count N] [--timeout S] [--expect HEX]`:
 * connects to a node's gateway over QUIC, does the CONNECT handshake, sends N PINGs one after
 * another and prints the round trips and the remote node id. Exit status 0 when every PING
 * got its PONG, 1 when the node refused (the reason is printed) or something failed, 2 for
 * bad arguments.
 *
 * The client presents a throw-away identity (a fresh Ed25519 key in a private temporary
 * directory, removed at exit): a ping is not a member of the mesh, and must never take the
 * node id of a node running on the same machine.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <uv.h>

#include "cli.h"
#include "mesh/client.h"
#include "mesh/identity.h"

typedef struct ping_ctx {
    uv_loop_t *loop;
    mesh_client *client;
    uv_timer_t timer;                 /* overall deadline, then the wait between pings */
    int count;                        /* PINGs to send */
    int sent, got;                    /* PINGs sent, PONGs received */
    uint64_t t_sent;                  /* uv_hrtime of the outstanding PING */
    double rtt_min, rtt_max, rtt_sum; /* ms */
    int status;                       /* exit status */
    bool done;
} ping_ctx;

static void ping__send(ping_ctx *p)
{
    wire_msg m = {.type = WIRE_PING};
    m.ping.timestamp = (int64_t)(uv_now(p->loop));
    p->t_sent = uv_hrtime();
    p->sent++;
    if (mesh_client_send(p->client, &m) != MESH_CLIENT_OK) {
        fprintf(stderr, "macula ping: could not send PING\n");
        p->status = 1;
        mesh_client_close(p->client, "send failed");
    }
}

static void ping__next(uv_timer_t *t)
{
    ping_ctx *p = t->data;
    ping__send(p);
}

static void ping__on_ready(mesh_client *c, const uint8_t server_id[IDENTITY_ID_LEN], void *ctx)
{
    ping_ctx *p = ctx;
    char hex[IDENTITY_ID_HEX_LEN + 1];
    identity_id_to_hex(server_id, hex);
    printf("connected to node %s\n  QUIC handshake %.2f ms, CONNECT accepted after %.2f ms\n", hex,
           (double)mesh_client_handshake_us(c) / 1000.0,
           (double)mesh_client_connect_us(c) / 1000.0);
    fflush(stdout);
    ping__send(p);
}

static void ping__on_frame(mesh_client *c, const wire_msg *m, void *ctx)
{
    ping_ctx *p = ctx;
    if (m->type != WIRE_PONG || p->t_sent == 0) {
        return;
    }
    double ms = (double)(uv_hrtime() - p->t_sent) / 1e6;
    p->t_sent = 0;
    p->got++;
    p->rtt_sum += ms;
    p->rtt_min = (p->got == 1 || ms < p->rtt_min) ? ms : p->rtt_min;
    p->rtt_max = ms > p->rtt_max ? ms : p->rtt_max;
    printf("pong %d: %.3f ms\n", p->got, ms);
    fflush(stdout);
    if (p->got >= p->count) {
        mesh_client_close(c, "done");
        return;
    }
    uv_timer_start(&p->timer, ping__next, 200, 0);
}

static void ping__on_closed(mesh_client *c, int err, const char *reason, void *ctx)
{
    ping_ctx *p = ctx;
    if (err == MESH_CLIENT_EREFUSED) {
        fprintf(stderr, "macula ping: refused by the node: %s\n", reason);
        p->status = 1;
    } else if (err != MESH_CLIENT_ECLOSED) {
        fprintf(stderr, "macula ping: %s: %s\n", mesh_client_strerror(err), reason);
        p->status = 1;
    } else if (p->got < p->count && p->status == 0) {
        fprintf(stderr, "macula ping: %s\n", reason);
        p->status = 1;
    }
    p->done = true;
    uv_timer_stop(&p->timer);
    uv_close((uv_handle_t *)&p->timer, NULL);
    mesh_client_free(c);
}

static void ping__deadline(uv_timer_t *t)
{
    ping_ctx *p = t->data;
    fprintf(stderr, "macula ping: no answer in time (%d of %d pongs)\n", p->got, p->count);
    p->status = 1;
    mesh_client_close(p->client, "timeout");
}

static void usage(FILE *f)
{
    fprintf(f, "usage: macula ping https://HOST:PORT [--realm R] [--count N] [--timeout S] "
               "[--expect NODE_ID_HEX]\n");
}

/* A throw-away identity in a private temporary directory. */
static int ping__identity(char *dir, size_t dirsize, identity **out)
{
    const char *tmp = getenv("TMPDIR");
    snprintf(dir, dirsize, "%s/macula-ping-XXXXXX", tmp && tmp[0] ? tmp : "/tmp");
    if (mkdtemp(dir) == NULL) {
        perror("macula ping: mkdtemp");
        return -1;
    }
    identity_config ic = {.data_dir = dir, .cert_validity_days = 1};
    char err[256];
    if (identity_load_or_create(&ic, out, err, sizeof err) != IDENTITY_OK) {
        fprintf(stderr, "macula ping: %s\n", err);
        rmdir(dir);
        return -1;
    }
    return 0;
}

static void ping__remove_identity(const char *dir)
{
    char path[4200];
    snprintf(path, sizeof path, "%s/%s", dir, IDENTITY_CERT_FILE);
    unlink(path);
    snprintf(path, sizeof path, "%s/%s", dir, IDENTITY_KEY_FILE);
    unlink(path);
    rmdir(dir);
}

int cli_ping(int argc, char **argv)
{
    const char *url = NULL, *realm = getenv("MACULA_REALM"), *expect = NULL;
    long count = 3, timeout_s = 5;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if ((strcmp(a, "--realm") == 0 || strcmp(a, "--count") == 0 ||
             strcmp(a, "--timeout") == 0 || strcmp(a, "--expect") == 0) &&
            i + 1 < argc) {
            const char *v = argv[++i];
            if (strcmp(a, "--realm") == 0) {
                realm = v;
            } else if (strcmp(a, "--expect") == 0) {
                expect = v;
            } else {
                char *e;
                long n = strtol(v, &e, 10);
                if (*e != '\0' || n < 1 || n > 100000) {
                    fprintf(stderr, "macula ping: %s wants a number from 1 to 100000\n", a);
                    return 2;
                }
                *(strcmp(a, "--count") == 0 ? &count : &timeout_s) = n;
            }
        } else if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            usage(stdout);
            return 0;
        } else if (a[0] != '-' && url == NULL) {
            url = a;
        } else {
            usage(stderr);
            return 2;
        }
    }
    if (url == NULL) {
        usage(stderr);
        return 2;
    }
    if (realm == NULL || realm[0] == '\0') {
        realm = "macula.default";
    }
    uint8_t expected[IDENTITY_ID_LEN];
    if (expect != NULL && identity_hex_to_id(expect, expected) != IDENTITY_OK) {
        fprintf(stderr, "macula ping: --expect wants 64 hex digits\n");
        return 2;
    }
    char host[64];
    uint16_t port;
    if (mesh_client_parse_url(url, host, sizeof host, &port) != MESH_CLIENT_OK) {
        fprintf(stderr, "macula ping: '%s' is not https://HOST:PORT with a resolvable HOST\n", url);
        return 2;
    }
    char dir[512];
    identity *id = NULL;
    if (ping__identity(dir, sizeof dir, &id) != 0) {
        return 1;
    }
    printf("macula ping %s (%s port %u), realm %s\n", url, host, (unsigned)port, realm);
    ping_ctx p = {.loop = uv_default_loop(), .count = (int)count};
    uv_timer_init(p.loop, &p.timer);
    p.timer.data = &p;
    mesh_client_callbacks cb = {
        .on_ready = ping__on_ready, .on_frame = ping__on_frame, .on_closed = ping__on_closed};
    int rc = mesh_client_open(p.loop, id, url, realm, expect ? expected : NULL, &cb, &p, &p.client);
    if (rc != MESH_CLIENT_OK) {
        fprintf(stderr, "macula ping: %s\n", mesh_client_strerror(rc));
        uv_close((uv_handle_t *)&p.timer, NULL);
        uv_run(p.loop, UV_RUN_DEFAULT);
        identity_free(id);
        ping__remove_identity(dir);
        return 1;
    }
    /* The whole exchange must finish within timeout_s per PING (plus the handshake). */
    uv_timer_start(&p.timer, ping__deadline, (uint64_t)timeout_s * 1000u * (uint64_t)count, 0);
    uv_run(p.loop, UV_RUN_DEFAULT);
    if (p.got > 0) {
        printf("%d pings, %d pongs, rtt min/avg/max %.3f/%.3f/%.3f ms\n", p.sent, p.got, p.rtt_min,
               p.rtt_sum / p.got, p.rtt_max);
    }
    identity_free(id);
    ping__remove_identity(dir);
    uv_loop_close(p.loop);
    return p.status;
}
