/* bench/bench_wire.c — the frame codec (src/mesh/wire.h) per message, no I/O.
 *
 *   bench_wire [iterations [case]]     (default 2,000,000 per case; case: run only the cases
 *                                       whose name contains it, e.g. "call")
 *
 * Cases: PUBLISH with a 16-byte and a 1 KiB payload (the pub/sub hot path: the gateway decodes
 * the publisher's frame and encodes one delivery frame per subscriber), PUBSUB_ROUTE holding a
 * 16-byte PUBLISH (the 1-hop path), CALL and REPLY (RPC).
 * For each: encode into a buffer the caller sized (wire_encode), the size query plus encode
 * the gateway's arena does (wire_encode(NULL, 0) then wire_encode), wire_encode_alloc + free,
 * and decode of the payload (wire_decode_payload, default limits). Each case runs 5 times;
 * the best run is printed as ns/op of this thread's CPU time (CLOCK_THREAD_CPUTIME_ID: time
 * the thread spent descheduled by other processes on a shared box does not count). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "mesh/wire.h"

#define RUNS 5

static volatile size_t sink;

static double now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

static void die(const char *what, int rc)
{
    fprintf(stderr, "bench_wire: %s: %s\n", what, wire_strerror(rc));
    exit(1);
}

typedef enum { OP_ENCODE, OP_SIZE_ENCODE, OP_ALLOC, OP_DECODE } op;

static double run(op o, const wire_msg *m, const uint8_t *frame, size_t flen, long iters)
{
    static uint8_t buf[1 << 16];
    double best = 0;
    for (int r = 0; r < RUNS; r++) {
        double t0 = now_ns();
        for (long i = 0; i < iters; i++) {
            size_t len = 0;
            int rc = 0;
            switch (o) {
            case OP_ENCODE: rc = wire_encode(m, buf, sizeof buf, &len); break;
            case OP_SIZE_ENCODE: {
                size_t need = 0;
                rc = wire_encode(m, NULL, 0, &need);
                if (rc != WIRE_ENOBUF) {
                    die("size", rc);
                }
                rc = wire_encode(m, buf, need, &len);
                break;
            }
            case OP_ALLOC: {
                uint8_t *out = NULL;
                rc = wire_encode_alloc(m, &out, &len);
                free(out);
                break;
            }
            case OP_DECODE: {
                wire_msg d;
                rc = wire_decode_payload(frame[1], frame + WIRE_HEADER_LEN, flen - WIRE_HEADER_LEN,
                                         NULL, &d);
                len = d.publish.topic.len;
                break;
            }
            }
            if (rc != 0) {
                die("op", rc);
            }
            sink += len;
        }
        double ns = (now_ns() - t0) / (double)iters;
        if (r == 0 || ns < best) {
            best = ns;
        }
    }
    return best;
}

static const char *only; /* run only the cases whose name contains this */

static void bench_case(const char *name, const wire_msg *m, long iters)
{
    if (only != NULL && strstr(name, only) == NULL) {
        return;
    }
    uint8_t *frame;
    size_t flen;
    int rc = wire_encode_alloc(m, &frame, &flen);
    if (rc != 0) {
        die(name, rc);
    }
    double enc = run(OP_ENCODE, m, frame, flen, iters);
    double sz = run(OP_SIZE_ENCODE, m, frame, flen, iters);
    double al = run(OP_ALLOC, m, frame, flen, iters);
    double dec = run(OP_DECODE, m, frame, flen, iters);
    printf("%-14s %6zu B  encode %7.1f  size+encode %7.1f  encode_alloc %7.1f  decode %7.1f "
           "ns/op\n",
           name, flen, enc, sz, al, dec);
    free(frame);
}

int main(int argc, char **argv)
{
    long iters = argc > 1 ? strtol(argv[1], NULL, 10) : 2000000;
    only = argc > 2 ? argv[2] : NULL;
    if (iters <= 0) {
        fprintf(stderr, "usage: bench_wire [iterations]\n");
        return 2;
    }
    static uint8_t payload[1024];
    static const uint8_t mid[WIRE_MSG_ID_LEN] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15};
    for (size_t i = 0; i < sizeof payload; i++) {
        payload[i] = (uint8_t)(i * 31u + 7u);
    }
    const char *topic = "bench.sensors.room42.temperature";

    wire_msg pub;
    memset(&pub, 0, sizeof pub);
    pub.type = WIRE_PUBLISH;
    pub.publish.topic = (wire_bytes){(const uint8_t *)topic, strlen(topic)};
    pub.publish.payload = (wire_bytes){payload, 16};
    pub.publish.qos = 0;
    pub.publish.retain = false;
    pub.publish.message_id = (wire_bytes){mid, sizeof mid};
    bench_case("publish 16B", &pub, iters);
    pub.publish.payload.len = 1024;
    pub.publish.qos = 1;
    bench_case("publish 1KiB", &pub, iters);

    /* the 1-hop path: a PUBLISH nested in a PUBSUB_ROUTE (the table-driven codec) */
    static const uint8_t nid_a[WIRE_NODE_ID_LEN] = {1}, nid_b[WIRE_NODE_ID_LEN] = {2};
    wire_msg route;
    memset(&route, 0, sizeof route);
    route.type = WIRE_PUBSUB_ROUTE;
    route.pubsub_route.destination_node_id = (wire_bytes){nid_a, sizeof nid_a};
    route.pubsub_route.source_node_id = (wire_bytes){nid_b, sizeof nid_b};
    route.pubsub_route.hop_count = 1;
    route.pubsub_route.max_hops = 10;
    route.pubsub_route.topic = pub.publish.topic;
    route.pubsub_route.payload = pub.publish;
    route.pubsub_route.payload.payload.len = 16;
    bench_case("route 16B", &route, iters);

    const char *proc = "com.example.bench.echo";
    const char *args = "{\"n\":42,\"msg\":\"hello, world\"}";
    const char *realm = "bench-realm";
    wire_msg call;
    memset(&call, 0, sizeof call);
    call.type = WIRE_CALL;
    call.call.call_id = (wire_bytes){mid, sizeof mid};
    call.call.procedure = (wire_bytes){(const uint8_t *)proc, strlen(proc)};
    call.call.args = (wire_bytes){(const uint8_t *)args, strlen(args)};
    call.call.realm = (wire_bytes){(const uint8_t *)realm, strlen(realm)};
    call.call.has_timeout = true;
    call.call.timeout_ms = 5000;
    bench_case("call", &call, iters);

    wire_msg reply;
    memset(&reply, 0, sizeof reply);
    reply.type = WIRE_REPLY;
    reply.reply.call_id = (wire_bytes){mid, sizeof mid};
    reply.reply.result = (wire_bytes){(const uint8_t *)args, strlen(args)};
    bench_case("reply", &reply, iters);
    return sink == 0 ? 1 : 0;
}
