/*
 * test_pbft.c — PBFT replication of the flow state machine (byzantine.h) on the seeded network
 * simulator (src/mesh/sim/netsim.h): 4 replicas (f = 1) and 2 clients, Ed25519 keys made per
 * process (they change message bytes, never behaviour), fixed seeds.
 *
 *  - normal case: two clients' commands all commit, checkpoints become stable and the log is
 *    garbage-collected, every replica reaches the identical state;
 *  - an equivocating primary (pre-prepare for one request to replica 1, for another to 2 and 3)
 *    stalls the sequence number: the backups change view and the honest replicas agree on one
 *    request for it and then on the rest;
 *  - a replica that sends garbage, forged (claims another sender), corrupted and truncated
 *    messages is refused and counted; the others make progress and agree;
 *  - f crashed replicas (a backup, then the primary) do not stop progress;
 *  - f+1 crashed: nothing commits, nothing is executed anywhere (safety);
 *  - the same seed gives the same trace hash.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <gnutls/abstract.h>
#include <gnutls/gnutls.h>

#include "flow/consensus/byzantine.h"
#include "macula/flow.h"
#include "mesh/sim/netsim.h"

#define N 4
#define NC 2
#define MAXCMD 64

enum { HONEST = 0, EQUIVOCATE, GARBAGE };

typedef struct keys {
    gnutls_privkey_t rkey[N], ckey[NC];
    gnutls_pubkey_t rpub[N], cpub[NC];
} keys;

static keys K;

typedef struct sim {
    netsim *ns;
    pbft_replica *r[N];
    pbft_client *c[NC];
    int mode[N];
    bool equivocated;
    uint64_t sched[N + NC]; /* earliest timer scheduled (ms), UINT64_MAX none */
    int todo[NC];           /* commands left per client */
    int sent[NC];
    int ok[NC];  /* commands answered with outcome 0 */
    int bad[NC]; /* answered with another outcome */
} sim;

static void make_key(gnutls_privkey_t *k, gnutls_pubkey_t *p)
{
    assert_int_equal(gnutls_privkey_init(k), 0);
    assert_int_equal(gnutls_privkey_generate2(*k, GNUTLS_PK_EDDSA_ED25519, 256, 0, NULL, 0), 0);
    assert_int_equal(gnutls_pubkey_init(p), 0);
    assert_int_equal(gnutls_pubkey_import_privkey(*p, *k, 0, 0), 0);
}

static int group_setup(void **state)
{
    (void)state;
    for (int i = 0; i < N; i++) {
        make_key(&K.rkey[i], &K.rpub[i]);
    }
    for (int i = 0; i < NC; i++) {
        make_key(&K.ckey[i], &K.cpub[i]);
    }
    return 0;
}

static int group_teardown(void **state)
{
    (void)state;
    for (int i = 0; i < N; i++) {
        gnutls_privkey_deinit(K.rkey[i]);
        gnutls_pubkey_deinit(K.rpub[i]);
    }
    for (int i = 0; i < NC; i++) {
        gnutls_privkey_deinit(K.ckey[i]);
        gnutls_pubkey_deinit(K.cpub[i]);
    }
    return 0;
}

static uint64_t now_ms(sim *s)
{
    return netsim_now(s->ns) / 1000;
}

/* A command for client c, number i: its swarm first, then tasks. */
static json_t *command(int c, int i, uint64_t now)
{
    flow_cmd cmd;
    if (i == 0) {
        flow_cmd_init(&cmd, FLOW_CMD_SWARM_CREATE, now);
        snprintf(cmd.swarm, sizeof cmd.swarm, "s%d", c);
        cmd.config.pool_min[0] = cmd.config.pool_min[1] = cmd.config.pool_min[2] = 0;
    } else {
        flow_cmd_init(&cmd, FLOW_CMD_TASK_SUBMIT, now);
        snprintf(cmd.swarm, sizeof cmd.swarm, "s%d", c);
        snprintf(cmd.task, sizeof cmd.task, "t%d-%d", c, i);
        cmd.input = json_pack("{s:i}", "n", i);
    }
    json_t *j = flow_cmd_to_json(&cmd);
    flow_cmd_clear(&cmd);
    return j;
}

static void send_raw(sim *s, uint32_t from, uint32_t to, const uint8_t *d, size_t len)
{
    if (to != from) {
        netsim_send(s->ns, from, to, d, len);
    }
}

/* What a garbage-sending replica puts on the wire instead of an honest message. */
static void send_garbage(sim *s, uint32_t from, const pbft_out *o)
{
    uint8_t junk[96];
    for (size_t i = 0; i < sizeof junk; i++) {
        junk[i] = (uint8_t)netsim_rand(s->ns);
    }
    uint8_t *forged = malloc(o->len);
    uint8_t *flipped = malloc(o->len);
    assert_non_null(forged);
    assert_non_null(flipped);
    memcpy(forged, o->data, o->len);
    memcpy(flipped, o->data, o->len);
    forged[7] = (uint8_t)((from + 1) % N); /* claims another replica as its sender */
    flipped[o->len / 2] ^= 0x40;           /* corrupted on the way */
    uint8_t unsigned_msg[8 + 8 + 8 + 32 + 64] = {'P', 'B', 1, PBFT_PREPARE, 0, 0, 0, 0};
    unsigned_msg[7] = (uint8_t)from;
    for (uint32_t to = 0; to < N; to++) {
        send_raw(s, from, to, junk, sizeof junk);
        send_raw(s, from, to, forged, o->len);
        send_raw(s, from, to, flipped, o->len);
        send_raw(s, from, to, o->data, o->len - 10); /* truncated */
        send_raw(s, from, to, unsigned_msg, sizeof unsigned_msg);
    }
    free(forged);
    free(flipped);
}

/* The equivocating primary: its first pre-prepare goes as is to replica 1; replicas 2 and 3
 * get a pre-prepare for the same (view, seq) carrying another (validly signed) request. */
static bool equivocate(sim *s, uint32_t from, const pbft_out *o)
{
    if (s->equivocated || o->len < 9 || o->data[3] != PBFT_PREPREPARE) {
        return false;
    }
    s->equivocated = true;
    json_t *cmd = command(1, 0, now_ms(s));
    struct raft_buffer op;
    assert_int_equal(flow_entry_cmd(cmd, 1, 1, &op), 0);
    json_decref(cmd);
    pbft_wire rq = {.type = PBFT_REQUEST, .sender = 1, .ts = 1, .data = op.base, .len = op.len};
    uint8_t *req, *pp;
    size_t req_len, pp_len;
    assert_int_equal(pbft_wire_encode(K.ckey[1], &rq, &req, &req_len), 0);
    raft_free(op.base);
    pbft_wire w = {.type = PBFT_PREPREPARE, .sender = from, .view = 0, .seq = 1};
    w.data = req;
    w.len = req_len;
    assert_int_equal(pbft_wire_encode(K.rkey[from], &w, &pp, &pp_len), 0);
    send_raw(s, from, 1, o->data, o->len);
    send_raw(s, from, 2, pp, pp_len);
    send_raw(s, from, 3, pp, pp_len);
    free(req);
    free(pp);
    return true;
}

static void schedule(sim *s, uint32_t node, uint64_t deadline)
{
    if (deadline == UINT64_MAX || !netsim_is_up(s->ns, node)) {
        return;
    }
    if (s->sched[node] != UINT64_MAX && s->sched[node] <= deadline && s->sched[node] >= now_ms(s)) {
        return;
    }
    s->sched[node] = deadline;
    netsim_timer(s->ns, node, deadline * 1000, deadline);
}

static void flush(sim *s, uint32_t node)
{
    pbft_outbox *ob =
        node < N ? pbft_replica_outbox(s->r[node]) : pbft_client_outbox(s->c[node - N]);
    for (size_t i = 0; i < ob->n; i++) {
        const pbft_out *o = &ob->v[i];
        if (node < N && s->mode[node] == GARBAGE) {
            send_garbage(s, node, o);
            continue;
        }
        if (node < N && s->mode[node] == EQUIVOCATE && equivocate(s, node, o)) {
            continue;
        }
        if (o->dest == PBFT_TO_CLIENT) {
            send_raw(s, node, N + o->to, o->data, o->len);
        } else if (o->dest == PBFT_TO_REPLICA) {
            send_raw(s, node, o->to, o->data, o->len);
        } else {
            for (uint32_t to = 0; to < N; to++) {
                send_raw(s, node, to, o->data, o->len);
            }
        }
    }
    pbft_outbox_clear(ob);
    schedule(s, node,
             node < N ? pbft_replica_next_deadline(s->r[node])
                      : pbft_client_next_deadline(s->c[node - N]));
}

static void client_next(sim *s, int c)
{
    if (s->todo[c] == 0 || pbft_client_busy(s->c[c])) {
        return;
    }
    json_t *cmd = command(c, s->sent[c], now_ms(s));
    assert_int_equal(pbft_client_submit_cmd(s->c[c], now_ms(s), cmd), 0);
    json_decref(cmd);
    s->sent[c]++;
    s->todo[c]--;
}

static void on_deliver(void *ctx, netsim *ns, uint32_t to, uint32_t from, const uint8_t *data,
                       size_t len)
{
    sim *s = ctx;
    netsim_trace_mix(ns, data, len > 32 ? 32 : len);
    if (to < N) {
        (void)pbft_replica_receive(s->r[to], now_ms(s), from < N ? from : PBFT_FROM_CLIENT, data,
                                   len);
    } else {
        int c = (int)(to - N);
        bool was = pbft_client_busy(s->c[c]);
        (void)pbft_client_receive(s->c[c], now_ms(s), data, len);
        int32_t result;
        if (was && pbft_client_done(s->c[c], &result, NULL)) {
            if (result == 0) {
                s->ok[c]++;
            } else {
                s->bad[c]++;
            }
            client_next(s, c);
        }
    }
    flush(s, to);
}

static void on_timer(void *ctx, netsim *ns, uint32_t node, uint64_t tag)
{
    (void)ns;
    sim *s = ctx;
    if (s->sched[node] == tag) {
        s->sched[node] = UINT64_MAX;
    }
    if (node < N) {
        pbft_replica_tick(s->r[node], now_ms(s));
    } else {
        pbft_client_tick(s->c[node - N], now_ms(s));
    }
    flush(s, node);
}

static sim *sim_new(uint64_t seed)
{
    sim *s = calloc(1, sizeof *s);
    assert_non_null(s);
    netsim_config cfg;
    netsim_config_default(&cfg);
    cfg.seed = seed;
    cfg.nodes = N + NC;
    cfg.latency = NETSIM_LAT_UNIFORM;
    cfg.lat_min_us = 1000;
    cfg.lat_spread_us = 4000;
    netsim_ops ops = {on_deliver, on_timer, NULL, NULL};
    assert_int_equal(netsim_create(&cfg, &ops, s, &s->ns), 0);
    for (uint32_t i = 0; i < N; i++) {
        pbft_config pc = {.n = N,
                          .id = i,
                          .key = K.rkey[i],
                          .replicas = K.rpub,
                          .clients = K.cpub,
                          .nclients = NC,
                          .checkpoint = 8};
        int err;
        s->r[i] = pbft_replica_new(&pc, &err);
        assert_non_null(s->r[i]);
    }
    for (uint32_t i = 0; i < NC; i++) {
        pbft_client_config cc = {.n = N, .id = i, .key = K.ckey[i], .replicas = K.rpub};
        int err;
        s->c[i] = pbft_client_new(&cc, &err);
        assert_non_null(s->c[i]);
    }
    for (uint32_t i = 0; i < N + NC; i++) {
        s->sched[i] = UINT64_MAX;
    }
    return s;
}

static void sim_free(sim *s)
{
    for (int i = 0; i < N; i++) {
        pbft_replica_free(s->r[i]);
    }
    for (int i = 0; i < NC; i++) {
        pbft_client_free(s->c[i]);
    }
    netsim_destroy(s->ns);
    free(s);
}

/* Starts the clients' workloads and runs for `ms` of simulated time. */
static void sim_run(sim *s, int cmds0, int cmds1, uint64_t ms)
{
    s->todo[0] = cmds0;
    s->todo[1] = cmds1;
    for (int c = 0; c < NC; c++) {
        client_next(s, c);
        flush(s, N + (uint32_t)c);
    }
    netsim_run(s->ns, netsim_now(s->ns) + ms * 1000);
}

/* The replicas in `set` executed the same sequence and hold identical states. */
static void assert_agree(sim *s, const int *set, int n)
{
    char *first = pbft_replica_state_text(s->r[set[0]]);
    assert_non_null(first);
    for (int k = 1; k < n; k++) {
        char *t = pbft_replica_state_text(s->r[set[k]]);
        assert_non_null(t);
        assert_int_equal(pbft_replica_last_executed(s->r[set[k]]),
                         pbft_replica_last_executed(s->r[set[0]]));
        assert_string_equal(t, first);
        free(t);
    }
    free(first);
}

static void test_normal_case(void **state)
{
    (void)state;
    sim *s = sim_new(7);
    sim_run(s, 30, 30, 20000);
    assert_int_equal(s->ok[0], 30);
    assert_int_equal(s->ok[1], 30);
    assert_int_equal(s->bad[0] + s->bad[1], 0);
    int all[N] = {0, 1, 2, 3};
    assert_agree(s, all, N);
    for (int i = 0; i < N; i++) {
        pbft_stats st;
        pbft_replica_get_stats(s->r[i], &st);
        assert_int_equal(st.applied, 60);
        assert_int_equal(st.view_changes, 0);
        assert_int_equal(st.rejected, 0);
        /* 60 sequence numbers, checkpoints every 8: stable at 56, the log below freed */
        assert_int_equal(pbft_replica_stable(s->r[i]), 56);
        assert_true(st.checkpoints >= 7);
        assert_int_equal(pbft_replica_view(s->r[i]), 0);
        const flow_state *fs = flow_fsm_state(pbft_replica_fsm(s->r[i]));
        assert_non_null(flow_state_task(fs, "t0-29"));
        assert_non_null(flow_state_task(fs, "t1-1"));
    }
    sim_free(s);
}

static void test_equivocating_primary(void **state)
{
    (void)state;
    sim *s = sim_new(11);
    s->mode[0] = EQUIVOCATE;
    sim_run(s, 10, 0, 30000);
    assert_true(s->equivocated);
    assert_int_equal(s->ok[0], 10);
    int honest[3] = {1, 2, 3};
    assert_agree(s, honest, 3);
    for (int i = 1; i < N; i++) {
        pbft_stats st;
        pbft_replica_get_stats(s->r[i], &st);
        assert_true(pbft_replica_view(s->r[i]) >= 1);
        assert_true(st.view_changes >= 1);
        /* the request the primary showed to 2 and 3 (prepared there) took sequence 1; client
         * 0's request was proposed again by the new primary */
        const flow_state *fs = flow_fsm_state(pbft_replica_fsm(s->r[i]));
        assert_true(flow_state_has_swarm(fs, "s1"));
        assert_true(flow_state_has_swarm(fs, "s0"));
        assert_non_null(flow_state_task(fs, "t0-9"));
        assert_int_equal(st.applied, 11);
    }
    sim_free(s);
}

static void test_garbage_replica(void **state)
{
    (void)state;
    sim *s = sim_new(13);
    s->mode[3] = GARBAGE;
    sim_run(s, 20, 5, 30000);
    assert_int_equal(s->ok[0], 20);
    assert_int_equal(s->ok[1], 5);
    int honest[3] = {0, 1, 2};
    assert_agree(s, honest, 3);
    for (int i = 0; i < 3; i++) {
        assert_true(pbft_replica_rejected(s->r[i], 3) > 0);
        for (uint32_t j = 0; j < 3; j++) {
            assert_int_equal(pbft_replica_rejected(s->r[i], j), 0);
        }
        pbft_stats st;
        pbft_replica_get_stats(s->r[i], &st);
        assert_int_equal(st.applied, 25);
        assert_int_equal(st.view_changes, 0);
    }
    /* nothing from the garbage replica can be mistaken for a message: direct checks */
    /* a well-formed prepare (8 + 48 + 64 bytes) with a zero signature, and with trailing bytes */
    uint8_t junk[200] = {'P', 'B', 1, PBFT_PREPARE, 0, 0, 0, 1};
    assert_int_equal(pbft_replica_receive(s->r[0], 0, 3, junk, 120), PBFT_EBADSIG);
    assert_int_equal(pbft_replica_receive(s->r[0], 0, 3, junk, sizeof junk), PBFT_EBADMSG);
    junk[2] = 9;
    assert_int_equal(pbft_replica_receive(s->r[0], 0, 3, junk, sizeof junk), PBFT_EBADMSG);
    assert_int_equal(pbft_replica_receive(s->r[0], 0, 3, junk, 3), PBFT_EBADMSG);
    assert_int_equal(pbft_replica_receive(s->r[0], 0, 3, NULL, 0), PBFT_EBADMSG);
    /* a well-signed message cut short */
    pbft_wire w = {.type = PBFT_COMMIT, .sender = 3, .view = 0, .seq = 1};
    uint8_t *m;
    size_t len;
    assert_int_equal(pbft_wire_encode(K.rkey[3], &w, &m, &len), 0);
    assert_int_equal(pbft_replica_receive(s->r[0], 0, 3, m, len - 1), PBFT_EBADMSG);
    m[len - 1] ^= 1; /* whole, with a wrong signature */
    assert_int_equal(pbft_replica_receive(s->r[0], 0, 3, m, len), PBFT_EBADSIG);
    free(m);
    sim_free(s);
}

/* A node that was down comes back with its memory (its timers were lost with it). */
static void revive(sim *s, uint32_t node)
{
    netsim_set_up(s->ns, node, true);
    s->sched[node] = UINT64_MAX;
}

static void test_f_crashed_backup(void **state)
{
    (void)state;
    sim *s = sim_new(17);
    netsim_set_up(s->ns, 3, false);
    sim_run(s, 20, 20, 30000);
    assert_int_equal(s->ok[0], 20);
    assert_int_equal(s->ok[1], 20);
    int live[3] = {0, 1, 2};
    assert_agree(s, live, 3);
    assert_int_equal(pbft_replica_stable(s->r[0]), 40);
    /* the backup comes back 40 sequence numbers behind, outside the window: it takes the
     * state of the next stable checkpoint (48) from the others and checks it against the
     * certified digest */
    revive(s, 3);
    sim_run(s, 4, 4, 30000);
    int all[N] = {0, 1, 2, 3};
    assert_agree(s, all, N);
    pbft_stats st;
    pbft_replica_get_stats(s->r[3], &st);
    assert_int_equal(st.transfers, 1);
    assert_int_equal(st.applied, 0);
    assert_int_equal(pbft_replica_stable(s->r[3]), 48);
    sim_free(s);
}

static void test_f_crashed_primary(void **state)
{
    (void)state;
    sim *s = sim_new(19);
    sim_run(s, 5, 0, 2000);
    assert_int_equal(s->ok[0], 5);
    netsim_set_up(s->ns, 0, false); /* the primary of view 0 crashes */
    sim_run(s, 15, 10, 60000);
    assert_int_equal(s->ok[0], 20);
    assert_int_equal(s->ok[1], 10);
    int live[3] = {1, 2, 3};
    assert_agree(s, live, 3);
    for (int i = 1; i < N; i++) {
        assert_true(pbft_replica_view(s->r[i]) >= 1);
        assert_false(pbft_replica_view_changing(s->r[i]));
        pbft_stats st;
        pbft_replica_get_stats(s->r[i], &st);
        assert_int_equal(st.applied, 30);
    }
    sim_free(s);
}

static void test_f_plus_one_crashed(void **state)
{
    (void)state;
    sim *s = sim_new(23);
    netsim_set_up(s->ns, 2, false);
    netsim_set_up(s->ns, 3, false);
    sim_run(s, 3, 3, 20000);
    assert_int_equal(s->ok[0] + s->ok[1], 0);
    assert_true(pbft_client_busy(s->c[0]));
    int live[2] = {0, 1};
    assert_agree(s, live, 2);
    for (int i = 0; i < 2; i++) {
        pbft_stats st;
        pbft_replica_get_stats(s->r[i], &st);
        assert_int_equal(st.executed, 0);
        assert_int_equal(pbft_replica_last_executed(s->r[i]), 0);
    }
    /* the two come back: the requests commit and the four agree */
    revive(s, 2);
    revive(s, 3);
    netsim_run(s->ns, netsim_now(s->ns) + 120000 * 1000ull);
    assert_int_equal(s->ok[0], 3);
    assert_int_equal(s->ok[1], 3);
    int all[N] = {0, 1, 2, 3};
    assert_agree(s, all, N);
    sim_free(s);
}

static uint64_t run_hash(uint64_t seed)
{
    sim *s = sim_new(seed);
    sim_run(s, 12, 12, 20000);
    assert_int_equal(s->ok[0], 12);
    char *t = pbft_replica_state_text(s->r[0]);
    netsim_trace_mix(s->ns, t, strlen(t));
    free(t);
    uint64_t h = netsim_trace_hash(s->ns);
    sim_free(s);
    return h;
}

static void test_determinism(void **state)
{
    (void)state;
    assert_true(run_hash(99) == run_hash(99));
}

static void test_config_checks(void **state)
{
    (void)state;
    int err = 0;
    pbft_config pc = {
        .n = 3, .id = 0, .key = K.rkey[0], .replicas = K.rpub, .clients = K.cpub, .nclients = NC};
    assert_null(pbft_replica_new(&pc, &err));
    assert_int_equal(err, PBFT_EINVAL);
    pc.n = 4;
    pc.checkpoint = 8;
    pc.window = 12; /* not a multiple of K */
    assert_null(pbft_replica_new(&pc, &err));
    pbft_client_config cc = {.n = N, .id = 0, .key = K.ckey[0], .replicas = K.rpub};
    pbft_client *c = pbft_client_new(&cc, &err);
    assert_non_null(c);
    assert_int_equal(pbft_client_submit(c, 1, "x", 1), 0);
    assert_int_equal(pbft_client_submit(c, 1, "y", 1), PBFT_EBUSY);
    /* a reply signed by a replica for another client, and a forged one */
    pbft_wire w = {.type = PBFT_REPLY, .sender = 1, .client = 1, .ts = 1};
    uint8_t *m;
    size_t len;
    assert_int_equal(pbft_wire_encode(K.rkey[1], &w, &m, &len), 0);
    assert_int_equal(pbft_client_receive(c, 1, m, len), PBFT_EBADMSG);
    free(m);
    w.client = 0;
    w.sender = 2;
    assert_int_equal(pbft_wire_encode(K.rkey[1], &w, &m, &len), 0);
    assert_int_equal(pbft_client_receive(c, 1, m, len), PBFT_EBADSIG);
    free(m);
    assert_true(pbft_client_busy(c));
    pbft_client_free(c);
    assert_string_equal(pbft_strerror(PBFT_EBADSIG), "bad or missing signature");
}

/* The member list of `macula flow-node --pbft --members`: lines or comma-separated entries,
 * comments, ids 1..n each once, n >= 4, keys in hex, an optional API URL. */
static void test_members_parse(void **state)
{
    (void)state;
    flow_pbft_member *m = NULL;
    size_t n = 0;
    char err[256];
    const char *good = "# four replicas\n"
                       "2 127.0.0.1:7002 302a300506032b6570032100aa http://127.0.0.1:7482\n"
                       "\n1 127.0.0.1:7001 302a30 # a comment\n"
                       "3 127.0.0.1:7003 0A0b,4 [::1]:7004 ff\n";
    assert_int_equal(flow_pbft_members_parse(good, &m, &n, err, sizeof err), 0);
    assert_int_equal(n, 4);
    for (uint32_t i = 0; i < 4; i++) {
        assert_int_equal(m[i].id, i + 1); /* sorted by id */
    }
    assert_string_equal(m[0].address, "127.0.0.1:7001");
    assert_string_equal(m[0].api, "");
    assert_string_equal(m[1].api, "http://127.0.0.1:7482");
    assert_string_equal(m[2].key, "0A0b");
    assert_string_equal(m[3].address, "[::1]:7004");
    free(m);
    static const char *const bad[] = {
        "1 a:1 00,2 a:2 00,3 a:3 00",                     /* n < 4 */
        "1 a:1 00,2 a:2 00,3 a:3 00,3 a:4 00",            /* id twice */
        "1 a:1 00,2 a:2 00,3 a:3 00,5 a:5 00",            /* ids not 1..n */
        "1 a:1 00,2 a:2 00,3 a:3 00,4 a:4 0g",            /* key not hex */
        "1 a:1 00,2 a:2 00,3 a:3 00,4 a:4 000",           /* odd hex */
        "1 a:1 00,2 a:2 00,3 a:3 00,4 a4 00",             /* no port */
        "1 a:1 00,2 a:2 00,3 a:3 00,4 a:4 00 http://x y", /* a fifth field */
        "0 a:1 00,2 a:2 00,3 a:3 00,4 a:4 00",            /* id 0 */
        "x a:1 00,2 a:2 00,3 a:3 00,4 a:4 00",            /* id not a number */
        "",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        m = (flow_pbft_member *)&n; /* must be reset */
        err[0] = '\0';
        assert_int_equal(flow_pbft_members_parse(bad[i], &m, &n, err, sizeof err), FLOW_EINVAL);
        assert_null(m);
        assert_true(err[0] != '\0');
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_normal_case),       cmocka_unit_test(test_equivocating_primary),
        cmocka_unit_test(test_garbage_replica),   cmocka_unit_test(test_f_crashed_backup),
        cmocka_unit_test(test_f_crashed_primary), cmocka_unit_test(test_f_plus_one_crashed),
        cmocka_unit_test(test_determinism),       cmocka_unit_test(test_config_checks),
        cmocka_unit_test(test_members_parse),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
