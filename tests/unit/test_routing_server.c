/* tests/unit/test_routing_server.c — three whole node trees (macula_root: routing server,
 * bootstrap system, gateway system with QUIC on 127.0.0.1) in one process, three runtimes on one
 * libuv loop, each with its own identity; node 2 bootstraps from node 1, node 3 from node 2.
 * Through the actors' own APIs: joining, the realm-scoped key/value API of the registry across
 * nodes, the other realm's key finding nothing, the CLI's JSON procedures, a frame whose
 * sender_id is not the connection's refused, the registry's TTL sweep, a service on an
 * unreachable node marked unhealthy by the health check, and a node that stops removed from
 * the others' tables when its connections are lost. Waits are bounded polls, never timing
 * assertions. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <uv.h>

#include <cmocka.h>

#include "macula/config.h"
#include "macula/sup.h"
#include "macula/sup_supervisor.h"
#include "mesh/bootstrap/bootstrap.h"
#include "mesh/gateway/quic_server.h"
#include "mesh/root.h"
#include "mesh/routing_server.h"

#define REALM "rs.test"
#define NODES 3

typedef struct tnode {
    sup_rt *rt;
    sup_pid root;
    bool up;
    identity *id;
    char dir[256];
    macula_config conf;
    mesh_root_config cfg;
    uint16_t qport;
} tnode;

typedef struct world {
    uv_loop_t loop;
    tnode n[NODES];
} world;

/* Runs the shared loop for about ms milliseconds. */
static void spin(world *w, int ms)
{
    for (int i = 0; i < ms / 5; i++) {
        uv_run(&w->loop, UV_RUN_NOWAIT);
        usleep(5000);
    }
}

typedef bool (*cond_fn)(world *w, void *arg);
/* Polls cond for up to max_ms (bounded wait, no timing assertion). */
static bool wait_for(world *w, cond_fn cond, void *arg, int max_ms)
{
    for (int t = 0; t < max_ms; t += 20) {
        if (cond(w, arg)) {
            return true;
        }
        spin(w, 20);
    }
    return cond(w, arg);
}

static int call(tnode *n, const char *name, int tag, const void *data, size_t len, void *buf,
                size_t cap, size_t *out_len)
{
    sup_pid to = sup_whereis(n->rt, name);
    return sup_call_sync(n->rt, to, tag, data, len, 60000, buf, cap, out_len, NULL);
}

static void start_node(world *w, int i, const char *boot)
{
    tnode *n = &w->n[i];
    snprintf(n->dir, sizeof n->dir, "/tmp/macula-rs-test-XXXXXX");
    assert_non_null(mkdtemp(n->dir));
    identity_config ic = {.data_dir = n->dir, .cert_validity_days = 1};
    char err[256];
    assert_int_equal(identity_load_or_create(&ic, &n->id, err, sizeof err), IDENTITY_OK);
    macula_config_defaults(&n->conf);
    snprintf(n->conf.realm, sizeof n->conf.realm, "%s", REALM);
    snprintf(n->conf.health_addr, sizeof n->conf.health_addr, "127.0.0.1");
    n->conf.health_port = 0;
    n->conf.quic_port = 0;
    if (boot != NULL) {
        snprintf(n->conf.bootstrap_peers[0], sizeof n->conf.bootstrap_peers[0], "%s", boot);
        n->conf.bootstrap_peer_count = 1;
    }
    n->rt = sup_rt_new(&w->loop);
    mesh_root_config_defaults(&n->cfg);
    mesh_root_config_apply(&n->cfg, &n->conf, n->id);
    n->cfg.bootstrap.retry_min_ms = 100;
    n->cfg.bootstrap.retry_max_ms = 1000;
    n->cfg.bootstrap.health_interval_ms = 3600000; /* rounds run on demand (BS_HEALTH_CHECK) */
    sup_reason why;
    assert_int_equal(mesh_root_start(n->rt, &n->cfg, &n->root, &why), 0);
    n->up = true;
    gw_quic_stats qs;
    assert_true(gw_quic_server_stats(n->rt, &qs));
    n->qport = qs.port;
}

static void stop_node(world *w, int i)
{
    tnode *n = &w->n[i];
    if (!n->up) {
        return;
    }
    sup_reason sd = sup_reason_shutdown();
    sup_stop_sync(n->rt, n->root, &sd);
    sup_rt_free(n->rt);
    n->up = false;
    spin(w, 50);
}

static bool joined(world *w, void *arg)
{
    (void)w;
    tnode *n = arg;
    bs_server_view v;
    size_t len = 0;
    return call(n, "macula_bootstrap_server", BS_SERVER_VIEW, NULL, 0, &v, sizeof v, &len) == 0 &&
           len == sizeof v && v.npeers == 1 && v.peers[0].state == BS_PEER_JOINED;
}

static int setup(void **state)
{
    world *w = calloc(1, sizeof *w);
    uv_loop_init(&w->loop);
    start_node(w, 0, NULL);
    for (int i = 1; i < NODES; i++) {
        char url[64];
        snprintf(url, sizeof url, "https://127.0.0.1:%u", (unsigned)w->n[i - 1].qport);
        start_node(w, i, url);
        if (!wait_for(w, joined, &w->n[i], 30000)) {
            return -1;
        }
    }
    *state = w;
    return 0;
}

static int teardown(void **state)
{
    world *w = *state;
    for (int i = NODES - 1; i >= 0; i--) {
        stop_node(w, i);
    }
    uv_run(&w->loop, UV_RUN_DEFAULT);
    int rc = uv_loop_close(&w->loop);
    for (int i = 0; i < NODES; i++) {
        identity_free(w->n[i].id);
        char path[400];
        snprintf(path, sizeof path, "%s/%s", w->n[i].dir, IDENTITY_CERT_FILE);
        unlink(path);
        snprintf(path, sizeof path, "%s/%s", w->n[i].dir, IDENTITY_KEY_FILE);
        unlink(path);
        rmdir(w->n[i].dir);
    }
    free(w);
    return rc;
}

static bool knows(world *w, void *arg)
{
    (void)w;
    const int *ij = arg;
    rs_view v;
    return rs_view_get(w->n[ij[0]].rt, &v) && v.contacts >= (uint32_t)ij[1];
}

/* The key/value API of node i's registry. */
static int kv_put(tnode *n, const char *name, const char *value, rs_put_rep *rep)
{
    uint8_t buf[512];
    bs_kv_put_req h = {.ttl_ms = 0, .name_len = (uint32_t)strlen(name)};
    memcpy(buf, &h, sizeof h);
    memcpy(buf + sizeof h, name, h.name_len);
    size_t vlen = strlen(value);
    memcpy(buf + sizeof h + h.name_len, value, vlen + 1); /* the NUL is not sent */
    size_t len = 0;
    int rc = call(n, "macula_bootstrap_registry", BS_KV_PUT, buf, sizeof h + h.name_len + vlen, rep,
                  sizeof *rep, &len);
    return rc == 0 && len == sizeof *rep ? 0 : -1;
}

static int kv_get(tnode *n, const char *name, char *value, size_t cap)
{
    uint8_t buf[4096];
    size_t len = 0;
    if (call(n, "macula_bootstrap_registry", BS_KV_GET, name, strlen(name), buf, sizeof buf,
             &len) != 0 ||
        len < sizeof(rs_get_rep)) {
        return -100;
    }
    rs_get_rep rep;
    memcpy(&rep, buf, sizeof rep);
    if (rep.status != 0 || rep.nvalues == 0) {
        return rep.status ? rep.status : DHT_ENOTFOUND;
    }
    uint32_t l;
    memcpy(&l, buf + sizeof rep, sizeof l);
    snprintf(value, cap, "%.*s", (int)l, (const char *)buf + sizeof rep + sizeof l);
    return 0;
}

static void test_join_and_discovery(void **state)
{
    world *w = *state;
    /* Node 3 only knew node 2: the self-lookup and the bucket refresh introduced node 1. */
    int want[2] = {2, 2};
    assert_true(wait_for(w, knows, want, 20000));
    int want1[2] = {0, 1};
    assert_true(wait_for(w, knows, want1, 20000));
    rs_view v;
    assert_true(rs_view_get(w->n[2].rt, &v));
    assert_true(v.pool.ready >= 1);
    assert_int_equal(v.refused_sender, 0);
}

static void test_kv_across_nodes_and_realms(void **state)
{
    world *w = *state;
    rs_put_rep prep;
    assert_int_equal(kv_put(&w->n[0], "colour", "blue", &prep), 0);
    assert_int_equal(prep.status, 0);
    assert_true(prep.stored >= 2);
    char value[64] = "";
    assert_int_equal(kv_get(&w->n[2], "colour", value, sizeof value), 0);
    assert_string_equal(value, "blue");
    /* The same name in another realm is another key. */
    rs_get_rep grep;
    uint8_t buf[1024];
    size_t len = 0;
    dht_id other;
    assert_int_equal(dht_key("other.realm", 11, "colour", 6, &other), DHT_OK);
    assert_int_equal(call(&w->n[2], "macula_routing_server", RS_GET, &other, sizeof other, buf,
                          sizeof buf, &len),
                     0);
    memcpy(&grep, buf, sizeof grep);
    assert_int_equal(grep.nvalues, 0);
    assert_int_not_equal(grep.status, 0);
    assert_int_equal(kv_get(&w->n[1], "no-such-name", value, sizeof value), DHT_ENOTFOUND);
}

static void test_json_procedures(void **state)
{
    world *w = *state;
    char req[128];
    const char proc[] = "com.macula.dht.put";
    const char args[] = "{\"key\":\"k1\",\"value\":\"v1\",\"ttl\":60}";
    memcpy(req, proc, sizeof proc);
    memcpy(req + sizeof proc, args, sizeof args - 1);
    char buf[4096];
    size_t len = 0;
    assert_int_equal(call(&w->n[1], "macula_routing_server", RS_JSON, req,
                          sizeof proc + sizeof args - 1, buf, sizeof buf - 1, &len),
                     0);
    buf[len] = '\0';
    rs_json_rep rep;
    memcpy(&rep, buf, sizeof rep);
    assert_int_equal(rep.rc, 0);
    assert_non_null(strstr(buf + sizeof rep, "\"key\":\"k1\""));
    const char get[] = "com.macula.dht.get\0{\"key\":\"k1\"}";
    assert_int_equal(call(&w->n[0], "macula_routing_server", RS_JSON, get, sizeof get - 1, buf,
                          sizeof buf - 1, &len),
                     0);
    buf[len] = '\0';
    assert_non_null(strstr(buf + sizeof rep, "\"values\":[\"v1\"]"));
    const char peers[] = "com.macula.dht.peers";
    assert_int_equal(call(&w->n[0], "macula_routing_server", RS_JSON, peers, sizeof peers, buf,
                          sizeof buf - 1, &len),
                     0);
    buf[len] = '\0';
    char hex[IDENTITY_ID_HEX_LEN + 1];
    identity_node_id_hex(w->n[1].id, hex);
    assert_non_null(strstr(buf + sizeof rep, hex));
    /* Bad arguments are refused with a reason. */
    const char bad[] = "com.macula.dht.put\0{\"key\":\"k\"}";
    assert_int_equal(call(&w->n[0], "macula_routing_server", RS_JSON, bad, sizeof bad - 1, buf,
                          sizeof buf - 1, &len),
                     0);
    memcpy(&rep, buf, sizeof rep);
    assert_int_not_equal(rep.rc, 0);
    assert_string_equal(rep.code, "invalid_args");
}

static void test_sender_mismatch_refused(void **state)
{
    world *w = *state;
    tnode *n = &w->n[0];
    /* A FIND_NODE claiming to come from node 3, on a connection proven to be node 2's. */
    dht_msg m;
    memset(&m, 0, sizeof m);
    m.type = WIRE_FIND_NODE;
    m.request_id = 7;
    dht_contact sender;
    memcpy(sender.id.b, identity_node_id(w->n[2].id), DHT_ID_LEN);
    snprintf(sender.addr, sizeof sender.addr, "127.0.0.1:1");
    uint8_t *frame = NULL;
    size_t flen = 0;
    assert_int_equal(dht_msg_encode(&m, &sender, &frame, &flen), DHT_OK);
    rs_frame_hdr h;
    memset(&h, 0, sizeof h);
    h.conn = 999;
    memcpy(h.node_id, identity_node_id(w->n[1].id), DHT_ID_LEN);
    snprintf(h.remote, sizeof h.remote, "127.0.0.1:2");
    uint8_t *buf = malloc(sizeof h + flen);
    memcpy(buf, &h, sizeof h);
    memcpy(buf + sizeof h, frame, flen);
    sup_pid bs = sup_whereis(n->rt, "macula_bootstrap_server");
    assert_int_equal(sup_send(n->rt, SUP_NOPID, bs, RS_FRAME, buf, sizeof h + flen), 0);
    sup_pid rsp = sup_whereis(n->rt, "macula_routing_server");
    assert_int_equal(sup_send(n->rt, SUP_NOPID, rsp, RS_FRAME, buf, sizeof h + flen), 0);
    free(buf);
    free(frame);
    spin(w, 50);
    bs_server_view v;
    size_t len = 0;
    assert_int_equal(
        call(n, "macula_bootstrap_server", BS_SERVER_VIEW, NULL, 0, &v, sizeof v, &len), 0);
    assert_true(v.refused_sender >= 1);
    rs_view rv;
    assert_true(rs_view_get(n->rt, &rv));
    assert_true(rv.refused_sender >= 1);
}

static bool registry_unhealthy(world *w, void *arg)
{
    (void)arg;
    const bs_registry_view *v = rs_slot_get(w->n[0].rt, RS_SLOT_BS_REGISTRY);
    return v != NULL && v->unhealthy >= 1;
}

static void test_registry_ttl_and_health(void **state)
{
    world *w = *state;
    tnode *n = &w->n[0];
    bs_service s;
    memset(&s, 0, sizeof s);
    snprintf(s.kind, sizeof s.kind, "rpc");
    snprintf(s.name, sizeof s.name, "com.example.short");
    memcpy(s.node_id, identity_node_id(n->id), DHT_ID_LEN);
    s.ttl_ms = 100;
    int st = -1;
    size_t len = 0;
    assert_int_equal(
        call(n, "macula_bootstrap_registry", BS_REG_ADVERTISE, &s, sizeof s, &st, sizeof st, &len),
        0);
    assert_int_equal(st, 0);
    bs_service_info info[4];
    assert_int_equal(
        call(n, "macula_bootstrap_registry", BS_REG_LOOKUP, &s, sizeof s, info, sizeof info, &len),
        0);
    assert_int_equal(len, sizeof info[0]);
    spin(w, 200);
    uint32_t removed = 0;
    assert_int_equal(
        call(n, "macula_bootstrap_registry", BS_REG_SWEEP, NULL, 0, &removed, sizeof removed, &len),
        0);
    assert_int_equal(removed, 1);
    /* A service on a node nobody can reach: the health check marks it unhealthy. */
    snprintf(s.name, sizeof s.name, "com.example.gone");
    memset(s.node_id, 0x5a, DHT_ID_LEN);
    snprintf(s.addr, sizeof s.addr, "127.0.0.1:9");
    s.ttl_ms = 600000;
    assert_int_equal(
        call(n, "macula_bootstrap_registry", BS_REG_ADVERTISE, &s, sizeof s, &st, sizeof st, &len),
        0);
    bs_health_view hv;
    assert_int_equal(
        call(n, "macula_bootstrap_health", BS_HEALTH_CHECK, NULL, 0, &hv, sizeof hv, &len), 0);
    assert_true(hv.routing_ok);
    assert_true(hv.registry_ok);
    assert_true(wait_for(w, registry_unhealthy, NULL, 30000));
    json_t *j = bootstrap_health_json(n->rt);
    assert_non_null(j);
    assert_string_equal(json_string_value(json_object_get(j, "status")), "degraded");
    json_decref(j);
    char *text = bootstrap_metrics_prometheus(n->rt);
    assert_non_null(text);
    assert_non_null(strstr(text, "macula_registry_services_unhealthy 1"));
    free(text);
}

static bool forgot_node3(world *w, void *arg)
{
    (void)arg;
    rs_view v;
    return rs_view_get(w->n[0].rt, &v) && v.contacts_lost >= 1;
}

static void test_lost_connection_removes_contact(void **state)
{
    world *w = *state;
    /* Node 1 talks to node 3 over its own pool connection (a lookup reaches it). */
    rs_put_rep prep;
    assert_int_equal(kv_put(&w->n[0], "reach-everyone", "x", &prep), 0);
    rs_view v;
    assert_true(rs_view_get(w->n[0].rt, &v));
    assert_true(v.pool.ready >= 2);
    stop_node(w, 2);
    assert_true(wait_for(w, forgot_node3, NULL, 30000));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_join_and_discovery),
        cmocka_unit_test(test_kv_across_nodes_and_realms),
        cmocka_unit_test(test_json_procedures),
        cmocka_unit_test(test_sender_mismatch_refused),
        cmocka_unit_test(test_registry_ttl_and_health),
        cmocka_unit_test(test_lost_connection_removes_contact),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
