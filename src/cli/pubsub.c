/*
 * src/cli/pubsub.c — `macula pub TOPIC DATA [--qos 1]` and `macula sub PATTERN [--count N]
 * [--timeout S] [--qos 1]`, against a node (`--node https://HOST:PORT`, default $MACULA_NODE
 * or https://127.0.0.1:9443; `--realm R`, default $MACULA_REALM or macula.default), through
 * the client API (include/macula/mesh.h).
 *
 * sub prints `TOPIC<TAB>PAYLOAD` per message (flushed at once) and, on stderr, one line
 * `macula sub: subscribed to PATTERN` once the SUBSCRIBE went out. Exit status: pub 0 sent
 * (QoS 1: acknowledged), 1 failed; sub 0 when --count messages arrived (or, without --count,
 * at --timeout), 1 when --timeout came first or the connection ended; 2 bad arguments.
 * `--drop-acks N` (sub, a testing aid) withholds the first N QoS 1 acknowledgements, so that
 * the node retries: duplicates are still printed once.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "macula/mesh.h"

typedef struct ps_opts {
    const char *node, *realm;
    long qos, count, timeout_s, drop_acks;
    const char *pos[2];
    int npos;
} ps_opts;

static void ps__usage(FILE *f)
{
    fprintf(f, "usage: macula pub TOPIC DATA [--qos 0|1] [OPTIONS]\n"
               "       macula sub PATTERN [--count N] [--timeout S] [--qos 0|1] [OPTIONS]\n"
               "options: --node https://HOST:PORT  (default $MACULA_NODE or "
               "https://127.0.0.1:9443)\n"
               "         --realm R  (default $MACULA_REALM or macula.default)\n");
}

static int ps__args(int argc, char **argv, int want, ps_opts *o)
{
    memset(o, 0, sizeof *o);
    o->node = getenv("MACULA_NODE");
    o->realm = getenv("MACULA_REALM");
    o->timeout_s = -1;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        bool num = strcmp(a, "--qos") == 0 || strcmp(a, "--count") == 0 ||
                   strcmp(a, "--timeout") == 0 || strcmp(a, "--drop-acks") == 0;
        if ((strcmp(a, "--node") == 0 || strcmp(a, "--realm") == 0) && i + 1 < argc) {
            *(strcmp(a, "--node") == 0 ? &o->node : &o->realm) = argv[++i];
        } else if (num && i + 1 < argc) {
            char *e;
            long n = strtol(argv[++i], &e, 10);
            if (*e != '\0' || n < 0 || n > 100000000 || (strcmp(a, "--qos") == 0 && n > 1)) {
                fprintf(stderr, "macula: %s wants a number (--qos 0 or 1)\n", a);
                return 2;
            }
            *(strcmp(a, "--qos") == 0       ? &o->qos
              : strcmp(a, "--count") == 0   ? &o->count
              : strcmp(a, "--timeout") == 0 ? &o->timeout_s
                                            : &o->drop_acks) = n;
        } else if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            ps__usage(stdout);
            return -1;
        } else if (o->npos < want && (a[0] != '-' || a[1] == '\0')) {
            o->pos[o->npos++] = a;
        } else {
            ps__usage(stderr);
            return 2;
        }
    }
    if (o->npos != want) {
        ps__usage(stderr);
        return 2;
    }
    if (o->node == NULL || o->node[0] == '\0') {
        o->node = "https://127.0.0.1:9443";
    }
    return 0;
}

static int ps__connect(const ps_opts *o, const char *prog, macula_mesh **m)
{
    macula_mesh_options mo = {.realm = o->realm, .drop_acks = (uint32_t)o->drop_acks};
    int rc = macula_mesh_connect(o->node, &mo, m);
    if (rc != MACULA_MESH_OK) {
        fprintf(stderr, "macula %s: %s: %s\n", prog, o->node, macula_mesh_strerror(rc));
        return 1;
    }
    return 0;
}

int cli_pub(int argc, char **argv)
{
    ps_opts o;
    int rc = ps__args(argc, argv, 2, &o);
    if (rc != 0) {
        return rc < 0 ? 0 : rc;
    }
    macula_mesh *m = NULL;
    if (ps__connect(&o, "pub", &m) != 0) {
        return 1;
    }
    rc = macula_mesh_publish(m, o.pos[0], o.pos[1], strlen(o.pos[1]), (int)o.qos);
    if (rc != MACULA_MESH_OK) {
        fprintf(stderr, "macula pub: %s: %s\n", o.pos[0], macula_mesh_strerror(rc));
    }
    macula_mesh_disconnect(m);
    return rc == MACULA_MESH_OK ? 0 : 1;
}

typedef struct sub_ctx {
    macula_mesh *m;
    long got, count;
} sub_ctx;

static void sub__message(void *ctx, const char *topic, size_t topic_len, const char *pattern,
                         const uint8_t *payload, size_t payload_len)
{
    (void)pattern;
    sub_ctx *s = ctx;
    fwrite(topic, 1, topic_len, stdout);
    fputc('\t', stdout);
    fwrite(payload, 1, payload_len, stdout);
    fputc('\n', stdout);
    fflush(stdout);
    if (s->count > 0 && ++s->got >= s->count) {
        macula_mesh_stop(s->m);
    }
}

int cli_sub(int argc, char **argv)
{
    ps_opts o;
    int rc = ps__args(argc, argv, 1, &o);
    if (rc != 0) {
        return rc < 0 ? 0 : rc;
    }
    sub_ctx s = {.count = o.count};
    if (ps__connect(&o, "sub", &s.m) != 0) {
        return 1;
    }
    rc = macula_mesh_subscribe(s.m, o.pos[0], (int)o.qos, sub__message, &s);
    if (rc != MACULA_MESH_OK) {
        fprintf(stderr, "macula sub: %s: %s\n", o.pos[0], macula_mesh_strerror(rc));
        macula_mesh_disconnect(s.m);
        return rc == MACULA_MESH_EINVAL ? 2 : 1;
    }
    fprintf(stderr, "macula sub: subscribed to %s\n", o.pos[0]);
    uint32_t timeout_ms = o.timeout_s > 0 ? (uint32_t)o.timeout_s * 1000u : 0;
    rc = macula_mesh_run(s.m, timeout_ms);
    int status = 0;
    if (rc != MACULA_MESH_OK) {
        fprintf(stderr, "macula sub: %s\n", macula_mesh_last_error(s.m));
        status = 1;
    } else if (o.count > 0 && s.got < o.count) {
        fprintf(stderr, "macula sub: timeout after %ld of %ld messages\n", s.got, o.count);
        status = 1;
    }
    macula_mesh_disconnect(s.m);
    return status;
}
