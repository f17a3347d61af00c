/* fuzz/gen_wire_corpus.c — writes the seed corpus of fuzz_wire into a directory: valid frames
 * of every type (and the variants of the types with choices), one frame per file, plus a
 * stream of all of them coalesced and a frame written with msgpack str instead of bin.
 * Not built by CMake (it is no fuzz_*.c); regenerate with:
 *   cc -Iinclude -Isrc fuzz/gen_wire_corpus.c build/libmacula_core.a -o /tmp/gen \
 *     && /tmp/gen fuzz/corpus/wire */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mesh/wire.h"

static wire_bytes B(const char *s)
{
    wire_bytes b = {(const uint8_t *)s, strlen(s)};
    return b;
}

static const char *dir;
static FILE *all;

static void put(const char *name, const uint8_t *buf, size_t len)
{
    char path[512];
    snprintf(path, sizeof path, "%s/%s.bin", dir, name);
    FILE *f = fopen(path, "wb");
    if (f == NULL || fwrite(buf, 1, len, f) != len || fclose(f) != 0) {
        perror(path);
        exit(1);
    }
}

static void emit(const char *name, const wire_msg *m)
{
    uint8_t *buf;
    size_t len;
    int rv = wire_encode_alloc(m, &buf, &len);
    if (rv != 0) {
        fprintf(stderr, "%s: %s\n", name, wire_strerror(rv));
        exit(1);
    }
    put(name, buf, len);
    fwrite(buf, 1, len, all);
    free(buf);
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: %s DIR\n", argv[0]);
        return 2;
    }
    dir = argv[1];
    char *allbuf = NULL;
    size_t alllen = 0;
    all = open_memstream(&allbuf, &alllen);

    const char *node_a = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
               *node_b = "BBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBB";
    const char *mid = "0123456789abcdef";
    wire_bytes caps[] = {B("pubsub"), B("rpc"), B("dht")};
    wire_bytes topics[] = {B("sensor.*.room1"), B("sensor.**")};
    wire_node nodes[] = {{B(node_a), B("10.0.0.1:4433"), true, 1700000000123},
                         {B(node_b), B("[::1]:4433"), false, 0}};
    static const uint8_t raw[] = {0x92, 0x81, 0xa1, 'k', 0xa1, 'v', 0x07};
    wire_publish pub = {B("sensor.t1.room1"), B("hello"), 1, true, B(mid)};
    wire_call call = {
        B(mid), B("com.macula.diagnostics.echo"), B("{\"x\":1}"), B("realm.one"), true, 5000};
    wire_msg m;

#define MSG(t) (memset(&m, 0, sizeof m), m.type = (t))
    MSG(WIRE_CONNECT);
    m.connect = (wire_connect){
        B("1.0"), B(node_a), B("realm.one"), {3, caps, NULL}, B("https://10.0.0.1:4433")};
    emit("connect", &m);
    MSG(WIRE_DISCONNECT);
    m.disconnect = (wire_disconnect){B("realm_mismatch"), B("expected realm.one")};
    emit("disconnect", &m);
    MSG(WIRE_PING);
    m.ping.timestamp = 1700000000000;
    emit("ping", &m);
    MSG(WIRE_PONG);
    m.pong = (wire_pong){-5, 1700000000001};
    emit("pong", &m);
    MSG(WIRE_PUBLISH);
    m.publish = pub;
    emit("publish", &m);
    MSG(WIRE_SUBSCRIBE);
    m.subscribe = (wire_subscribe){{2, topics, NULL}, 1};
    emit("subscribe", &m);
    MSG(WIRE_UNSUBSCRIBE);
    m.unsubscribe = (wire_unsubscribe){{2, topics, NULL}};
    emit("unsubscribe", &m);
    MSG(WIRE_PUBSUB_ROUTE);
    m.pubsub_route = (wire_pubsub_route){B(node_a), B(node_b), 1, 10, pub.topic, pub};
    emit("pubsub_route", &m);
    MSG(WIRE_PUBACK);
    m.puback.message_id = B(mid);
    emit("puback", &m);
    MSG(WIRE_CALL);
    m.call = call;
    emit("call", &m);
    MSG(WIRE_CAST);
    m.cast = call;
    m.cast.call_id = (wire_bytes){NULL, 0};
    emit("cast", &m);
    MSG(WIRE_REPLY);
    m.reply.call_id = B(mid);
    m.reply.result = B("{\"ok\":true}");
    emit("reply_result", &m);
    MSG(WIRE_REPLY);
    m.reply.call_id = B(mid);
    m.reply.is_error = true;
    m.reply.error.code = B("no_handler");
    m.reply.error.message = B("nobody");
    emit("reply_error", &m);
    MSG(WIRE_RPC_ROUTE);
    m.rpc_route.destination_node_id = B(node_b);
    m.rpc_route.source_node_id = B(node_a);
    m.rpc_route.max_hops = 10;
    m.rpc_route.payload_type = WIRE_RPC_PAYLOAD_CALL;
    m.rpc_route.call = call;
    emit("rpc_route_call", &m);
    m.rpc_route.payload_type = WIRE_RPC_PAYLOAD_REPLY;
    m.rpc_route.reply.call_id = B(mid);
    m.rpc_route.reply.is_error = true;
    m.rpc_route.reply.error.code = B("timeout");
    m.rpc_route.reply.error.message = B("5000 ms");
    emit("rpc_route_reply", &m);
    MSG(WIRE_FIND_NODE);
    m.find_node.target = B(node_b);
    emit("find_node", &m);
    MSG(WIRE_FIND_NODE_REPLY);
    m.find_node_reply.nodes = (wire_node_list){2, nodes, NULL};
    emit("find_node_reply", &m);
    MSG(WIRE_STORE);
    m.store = (wire_store){.key = B(node_a), .value = {raw, sizeof raw}};
    emit("store", &m);
    MSG(WIRE_FIND_VALUE);
    m.find_value.key = B(node_a);
    emit("find_value", &m);
    MSG(WIRE_FIND_VALUE_REPLY);
    m.find_value_reply.result = WIRE_FV_VALUE;
    m.find_value_reply.value = (wire_bytes){raw, sizeof raw};
    emit("find_value_reply_value", &m);
    MSG(WIRE_FIND_VALUE_REPLY);
    m.find_value_reply.result = WIRE_FV_NODES;
    m.find_value_reply.nodes = (wire_node_list){2, nodes, NULL};
    emit("find_value_reply_nodes", &m);

    fclose(all);
    put("all_coalesced", (const uint8_t *)allbuf, alllen);
    free(allbuf);

    /* PING as a str-emitting encoder writes it: {"timestamp": 7} with fixstr key */
    static const uint8_t str_ping[] = {1,   3,   0,   0,   0,   0,   0,   12,  0x81, 0xa9,
                                       't', 'i', 'm', 'e', 's', 't', 'a', 'm', 'p',  0x07};
    put("ping_str_keys", str_ping, sizeof str_ping);
    return 0;
}
