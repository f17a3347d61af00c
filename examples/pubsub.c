/*
 * examples/pubsub.c — the client API (include/macula/mesh.h) in one program:
 *
 *   pubsub URL REALM PATTERN [SECONDS]
 *
 * connects to the node at URL, subscribes to PATTERN with QoS 1, prints the first message
 * (`TOPIC<TAB>PATTERN<TAB>PAYLOAD`), unsubscribes, then keeps the connection for SECONDS
 * (default 5) and prints how many messages still arrived (`after_unsubscribe=N`: 0 expected).
 * Exit 0 when one message came and none after the unsubscribe.
 */
#include <stdio.h>
#include <stdlib.h>

#include "macula/mesh.h"

typedef struct state {
    macula_mesh *m;
    int got;
} state;

static void on_message(void *ctx, const char *topic, size_t topic_len, const char *pattern,
                       const uint8_t *payload, size_t payload_len)
{
    state *s = ctx;
    s->got++;
    printf("%.*s\t%s\t%.*s\n", (int)topic_len, topic, pattern, (int)payload_len,
           (const char *)payload);
    fflush(stdout);
    macula_mesh_stop(s->m);
}

int main(int argc, char **argv)
{
    if (argc < 4) {
        fprintf(stderr, "usage: %s URL REALM PATTERN [SECONDS]\n", argv[0]);
        return 2;
    }
    unsigned seconds = argc > 4 ? (unsigned)strtoul(argv[4], NULL, 10) : 5;
    macula_mesh_options opts = {.realm = argv[2]};
    state s = {0};
    int rc = macula_mesh_connect(argv[1], &opts, &s.m);
    if (rc != MACULA_MESH_OK) {
        fprintf(stderr, "connect: %s\n", macula_mesh_strerror(rc));
        return 1;
    }
    rc = macula_mesh_subscribe(s.m, argv[3], 1, on_message, &s);
    fprintf(stderr, "subscribed to %s: %s\n", argv[3], macula_mesh_strerror(rc));
    while (rc == MACULA_MESH_OK && s.got == 0) {
        rc = macula_mesh_run(s.m, 0);
    }
    if (rc == MACULA_MESH_OK) {
        rc = macula_mesh_unsubscribe(s.m, argv[3]);
        fprintf(stderr, "unsubscribed\n");
    }
    int before = s.got;
    if (rc == MACULA_MESH_OK) {
        for (unsigned i = 0; i < seconds * 10 && rc == MACULA_MESH_OK; i++) {
            rc = macula_mesh_run(s.m, 100);
        }
    }
    printf("after_unsubscribe=%d\n", s.got - before);
    macula_mesh_disconnect(s.m);
    return rc == MACULA_MESH_OK && before == 1 && s.got == before ? 0 : 1;
}
