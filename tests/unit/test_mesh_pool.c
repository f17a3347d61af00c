/* tests/unit/test_mesh_pool.c — the node's one mesh connection pool (gateway/mesh.h, owned by
 * macula_root, used by macula_routing_server and macula_gateway_mesh). Three whole node trees
 * in one process (three runtimes on one libuv loop, real QUIC on 127.0.0.1); node A's pool is
 * bounded to ONE connection. Proves:
 *  - DHT (a join), RPC (an RPC_ROUTE through the routing server, answered over the same
 *    connection) and gateway traffic (a frame through macula_gateway_mesh) to the same peer
 *    share one pool connection and one peer system, and both actors report that one pool;
 *  - the bound is shared: gateway traffic to a second peer evicts the DHT's connection (LRU),
 *    the first peer's system stops and the second's starts;
 *  - restarts: a pub/sub crash (pubsub, rpc and mesh restart) and a routing-server crash close
 *    no connection; the restarted mesh worker adopts the running peer system;
 *  - a peer system that no ready connection accounts for is stopped.
 * Waits are bounded polls, never timing assertions. */
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
#include "mesh/gateway/gateway.h"
#include "mesh/gateway/mesh_worker.h"
#include "mesh/gateway/quic_server.h"
#include "mesh/gateway/rpc.h"
#include "mesh/peer/peer.h"
#include "mesh/root.h"
#include "mesh/routing_server.h"

#define REALM "pool.test"
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
    char addr[64];
} tnode;

typedef struct world {
    uv_loop_t loop;
    tnode n[NODES];
} world;

static void spin(world *w, int ms)
{
    for (int i = 0; i < ms / 5; i++) {
        uv_run(&w->loop, UV_RUN_NOWAIT);
        usleep(5000);
    }
}

typedef bool (*cond_fn)(world *w, void *arg);
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

static void start_node(world *w, int i, uint32_t max_conns)
{
    tnode *n = &w->n[i];
    snprintf(n->dir, sizeof n->dir, "/tmp/macula-pool-test-XXXXXX");
    assert_non_null(mkdtemp(n->dir));
    identity_config ic = {.data_dir = n->dir, .cert_validity_days = 1};
    char err[256];
    assert_int_equal(identity_load_or_create(&ic, &n->id, err, sizeof err), IDENTITY_OK);
    macula_config_defaults(&n->conf);
    snprintf(n->conf.realm, sizeof n->conf.realm, "%s", REALM);
    snprintf(n->conf.health_addr, sizeof n->conf.health_addr, "127.0.0.1");
    n->conf.health_port = 0;
    n->conf.quic_port = 0;
    n->rt = sup_rt_new(&w->loop);
    mesh_root_config_defaults(&n->cfg);
    mesh_root_config_apply(&n->cfg, &n->conf, n->id);
    n->cfg.pool_max_conns = max_conns;
    n->cfg.bootstrap.health_interval_ms = 3600000;
    sup_reason why;
    assert_int_equal(mesh_root_start(n->rt, &n->cfg, &n->root, &why), 0);
    assert_non_null(n->cfg.pool);
    n->up = true;
    gw_quic_stats qs;
    assert_true(gw_quic_server_stats(n->rt, &qs));
    n->qport = qs.port;
    snprintf(n->addr, sizeof n->addr, "127.0.0.1:%u", (unsigned)n->qport);
}

static int setup(void **state)
{
    world *w = calloc(1, sizeof *w);
    uv_loop_init(&w->loop);
    start_node(w, 0, 1); /* A: a pool of one connection */
    start_node(w, 1, 0);
    start_node(w, 2, 0);
    *state = w;
    return 0;
}

static int teardown(void **state)
{
    world *w = *state;
    for (int i = NODES - 1; i >= 0; i--) {
        tnode *n = &w->n[i];
        sup_reason sd = sup_reason_shutdown();
        sup_stop_sync(n->rt, n->root, &sd);
        assert_null(n->cfg.pool); /* released when macula_root ended */
        sup_rt_free(n->rt);
        spin(w, 50);
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

/* The pool as each of its two users reports it; they must agree (one object). */
static void pool_stats(tnode *n, mesh_pool_stats *st, uint32_t *peers)
{
    rs_view rv;
    size_t len = 0;
    assert_int_equal(sup_call_sync(n->rt, sup_whereis(n->rt, "macula_routing_server"), RS_STATS,
                                   NULL, 0, 5000, &rv, sizeof rv, &len, NULL),
                     0);
    assert_true(gw_mesh_stats(n->rt, st, peers));
    assert_int_equal(rv.pool.opened, st->opened);
    assert_int_equal(rv.pool.conns, st->conns);
    assert_int_equal(rv.pool.evicted, st->evicted);
}

static size_t peer_systems(tnode *n)
{
    sup_child_info ci[8];
    int k = sup_which_children_sync(n->rt, sup_whereis(n->rt, "macula_peers_sup"), ci, 8);
    return k < 0 ? 0 : (size_t)k;
}

typedef struct peer_want {
    tnode *n;
    const uint8_t *id; /* the peer whose system must run (NULL: none) */
    size_t count;      /* peer systems expected */
} peer_want;

static bool peers_are(world *w, void *arg)
{
    (void)w;
    peer_want *pw = arg;
    uint32_t kept = 0;
    mesh_pool_stats st;
    return peer_systems(pw->n) == pw->count && gw_mesh_stats(pw->n->rt, &st, &kept) &&
           kept == pw->count &&
           (pw->id == NULL ||
            !sup_pid_is_null(peer_whereis(pw->n->rt, "macula_connection", pw->id)));
}

static bool rpc_answer_back(world *w, void *arg)
{
    (void)w;
    gw_rpc_view v;
    return gw_rpc_view_get(((tnode *)arg)->rt, &v) && v.routes_in >= 1;
}

static void send_ping_via_gateway(tnode *from, const tnode *to)
{
    wire_msg m = {.type = WIRE_PING};
    m.ping.timestamp = 1;
    uint8_t *frame = NULL;
    size_t len = 0;
    assert_int_equal(wire_encode_alloc(&m, &frame, &len), WIRE_OK);
    assert_int_equal(
        gw_mesh_send(from->rt, SUP_NOPID, identity_node_id(to->id), to->addr, frame, len), 0);
    free(frame);
}

/* PINGs n's gateway has received (on any connection; keep-alives too). */
static uint64_t pings_in(tnode *n)
{
    gwc_stats gs;
    assert_true(gw_gateway_stats(n->rt, &gs));
    return gs.frames_in[WIRE_PING];
}

typedef struct ping_seen {
    tnode *from, *to;
    uint64_t frames_out, pings; /* before the send */
} ping_seen;

/* The gateway's frame left `from`'s pool and reached `to`'s gateway. */
static bool ping_arrived(world *w, void *arg)
{
    (void)w;
    ping_seen *ps = arg;
    mesh_pool_stats st;
    return gw_mesh_stats(ps->from->rt, &st, NULL) && st.frames_out > ps->frames_out &&
           pings_in(ps->to) > ps->pings;
}

/* DHT, RPC and gateway traffic from A to B: one connection, one peer system. */
static void test_one_connection_per_peer(void **state)
{
    world *w = *state;
    tnode *a = &w->n[0], *b = &w->n[1];
    char url[96];
    snprintf(url, sizeof url, "https://%s", b->addr);
    rs_join_rep jr;
    size_t len = 0;
    assert_int_equal(sup_call_sync(a->rt, sup_whereis(a->rt, "macula_routing_server"), RS_JOIN, url,
                                   strlen(url), 30000, &jr, sizeof jr, &len, NULL),
                     0);
    assert_int_equal(jr.status, 0);
    assert_memory_equal(jr.id.b, identity_node_id(b->id), 32);

    /* RPC: an RPC_ROUTE call to B through the routing server; B answers no_handler over the
     * same connection and the answer reaches A's rpc worker through macula_gateway_mesh. */
    uint8_t call_id[16] = {1, 2, 3};
    wire_msg m = {.type = WIRE_RPC_ROUTE};
    m.rpc_route.destination_node_id = (wire_bytes){identity_node_id(b->id), 32};
    m.rpc_route.source_node_id = (wire_bytes){identity_node_id(a->id), 32};
    m.rpc_route.max_hops = 10;
    m.rpc_route.payload_type = WIRE_RPC_PAYLOAD_CALL;
    m.rpc_route.call.call_id = (wire_bytes){call_id, sizeof call_id};
    m.rpc_route.call.procedure = (wire_bytes){(const uint8_t *)"no.such.proc", 12};
    m.rpc_route.call.args = (wire_bytes){(const uint8_t *)"{}", 2};
    m.rpc_route.call.realm = (wire_bytes){(const uint8_t *)REALM, strlen(REALM)};
    uint8_t *frame = NULL;
    size_t flen = 0;
    assert_int_equal(wire_encode_alloc(&m, &frame, &flen), WIRE_OK);
    rs_forward_req q = {0};
    memcpy(q.dest, identity_node_id(b->id), 32);
    uint8_t *req = malloc(sizeof q + flen);
    memcpy(req, &q, sizeof q);
    memcpy(req + sizeof q, frame, flen);
    rs_forward_rep fr;
    assert_int_equal(sup_call_sync(a->rt, sup_whereis(a->rt, "macula_routing_server"), RS_FORWARD,
                                   req, sizeof q + flen, 5000, &fr, sizeof fr, &len, NULL),
                     0);
    free(req);
    free(frame);
    assert_int_equal(fr.status, 0);
    assert_true(wait_for(w, rpc_answer_back, a, 10000));

    /* Gateway traffic (macula_gateway_mesh's sends) to the same peer. */
    mesh_pool_stats st;
    uint32_t peers = 0;
    pool_stats(a, &st, &peers);
    ping_seen ps = {a, b, st.frames_out, pings_in(b)};
    send_ping_via_gateway(a, b);
    assert_true(wait_for(w, ping_arrived, &ps, 15000));

    pool_stats(a, &st, &peers);
    assert_int_equal(st.opened, 1);
    assert_int_equal(st.conns, 1);
    assert_int_equal(st.ready, 1);
    assert_int_equal(st.evicted, 0);
    peer_want pw = {a, identity_node_id(b->id), 1};
    assert_true(wait_for(w, peers_are, &pw, 15000));
}

/* Restarts: no connection closes; the new mesh worker adopts the running peer system. */
static void test_restarts_keep_connections(void **state)
{
    world *w = *state;
    tnode *a = &w->n[0], *b = &w->n[1];
    sup_pid conn = peer_whereis(a->rt, "macula_connection", identity_node_id(b->id));
    assert_false(sup_pid_is_null(conn));
    mesh_pool_stats before;
    pool_stats(a, &before, NULL);

    const char *victims[] = {"macula_gateway_pubsub", "macula_routing_server"};
    for (size_t v = 0; v < 2; v++) {
        sup_pid old = sup_whereis(a->rt, victims[v]);
        sup_pid old_mesh = sup_whereis(a->rt, "macula_gateway_mesh");
        sup_reason kill = sup_reason_make(SUP_R_KILL, NULL);
        assert_int_equal(sup_exit(a->rt, SUP_NOPID, old, &kill), 0);
        spin(w, 300);
        assert_false(sup_pid_eq(sup_whereis(a->rt, victims[v]), old));
        assert_false(sup_pid_is_null(sup_whereis(a->rt, victims[v])));
        if (v == 0) { /* rest_for_one: pubsub, rpc and mesh restarted */
            assert_false(sup_pid_eq(sup_whereis(a->rt, "macula_gateway_mesh"), old_mesh));
        }
        peer_want pw = {a, identity_node_id(b->id), 1};
        assert_true(wait_for(w, peers_are, &pw, 15000));
        assert_true(
            sup_pid_eq(peer_whereis(a->rt, "macula_connection", identity_node_id(b->id)), conn));
        mesh_pool_stats st;
        pool_stats(a, &st, NULL);
        assert_int_equal(st.opened, before.opened);
        assert_int_equal(st.ready, 1);
        assert_int_equal(st.lost + st.failed + st.evicted, before.lost + before.failed);
    }
}

/* The bound (1 here) is the node's: gateway traffic to C evicts the DHT's connection to B. */
static void test_limit_is_shared(void **state)
{
    world *w = *state;
    tnode *a = &w->n[0], *c = &w->n[2];
    send_ping_via_gateway(a, c);
    peer_want pw = {a, identity_node_id(c->id), 1};
    assert_true(wait_for(w, peers_are, &pw, 15000));
    mesh_pool_stats st;
    pool_stats(a, &st, NULL);
    assert_int_equal(st.conns, 1);
    assert_int_equal(st.evicted, 1);
    assert_int_equal(st.opened, 2);
    assert_true(
        sup_pid_is_null(peer_whereis(a->rt, "macula_connection", identity_node_id(w->n[1].id))));
}

/* A peer system no ready connection accounts for (here: started by hand for an id A never
 * connected to) is stopped by the mesh worker's reconcile. */
static void test_orphan_peer_system_stopped(void **state)
{
    world *w = *state;
    tnode *a = &w->n[0];
    peer_info pi;
    memset(&pi, 0, sizeof pi);
    memset(pi.id, 0x5a, sizeof pi.id);
    snprintf(pi.addr, sizeof pi.addr, "127.0.0.1:9");
    sup_pid sys;
    sup_reason why;
    assert_int_equal(sup_start_child_sync(a->rt, sup_whereis(a->rt, "macula_peers_sup"), NULL, &pi,
                                          &sys, NULL, &why),
                     0);
    assert_int_equal(peer_systems(a), 2);
    peer_want pw = {a, identity_node_id(w->n[2].id), 1};
    assert_true(wait_for(w, peers_are, &pw, 15000));
    assert_false(sup_is_alive(a->rt, sys));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_one_connection_per_peer),
        cmocka_unit_test(test_restarts_keep_connections),
        cmocka_unit_test(test_limit_is_shared),
        cmocka_unit_test(test_orphan_peer_system_stopped),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
