/*
 * flow/consensus/raft.c — erlmcp_flow_raft: libraft on the node's libuv loop, replicating the
 * flow state machine (docs/consensus.md).
 *
 * The actor owns one libraft instance (struct raft), its durable log store (log_store.c:
 * libuv storage in <data_dir>/raft, TCP transport) and its replica of the state machine
 * (fsm.c). It talks to the registry only by messages:
 *  - the registry proposes commands (FLOW_TAG_PROPOSE {"c", "cmd"}); the actor appends them
 *    with raft_apply; a proposal libraft does not take, or loses with its leader, comes back
 *    as FLOW_TAG_REFUSED;
 *  - every committed command, on every node, goes to the registry in log order
 *    (FLOW_TAG_COMMITTED), after a FLOW_TAG_RESET when the actor starts and a FLOW_TAG_RESTORE
 *    when a snapshot replaces the state, so the registry's copy of the state is always the
 *    replica's, entry for entry;
 *  - the role (FLOW_TAG_ROLE): "leader": true only once a barrier of the leader's term has
 *    been applied (every earlier entry is in the registry's state), else the known leader.
 * Membership (cluster_status / cluster_join / cluster_leave) and the test-only fault switch
 * (cluster_fault) are answered here; the registry forwards those requests (FLOW_TAG_FWD).
 * Proposals made while this node does not lead (a follower that coordinates swarms) are
 * forwarded in order to the leader's cluster_propose, which this actor answers on the leader
 * (see "forwarding" below).
 *
 * With a gossip address the actor feeds the gossip actor (gossip_node.c) the voters of the
 * Raft configuration and their gossip endpoints from the replicated member directory
 * (FLOW_TAG_PEERS, whenever they change), tells the registry the live members for the swarm
 * coordinators (FLOW_TAG_MEMBERS), keeps the gossip view it reports (FLOW_TAG_GOSSIP)
 * for cluster_status, and, as a ready leader, records its own API URL and gossip endpoint
 * (address + node id) in the directory when they are missing or changed.
 *
 * libraft's memory (struct raft, its I/O) must outlive the actor until raft_close's callback,
 * so it lives in a separately allocated rf_node released there. libraft has no role-change
 * callback in 0.15: the actor polls raft_state every RF_POLL_MS.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "flow/consensus/fsm.h"
#include "flow/observer/http_post.h"
#include "flow/consensus/log_store.h"
#include "flow/flow_int.h"

#define RF_POLL_MS 10
#define RF_NODE_HEX 64      /* a node id in hex */
#define RF_START_RETRIES 50 /* the address may still be held by a previous instance */
#define RF_START_RETRY_MS 100
#define RF_FWD_BATCH 64          /* proposals per forwarded request */
#define RF_FWD_BYTES (256 << 10) /* at most this much JSON per forwarded request */
#define RF_FWD_TIMEOUT_MS 5000   /* one forwarded request, connect to answer */
#define RF_FWD_RETRY_MS 100      /* after a failed request */
#define RF_FWD_MAX_MS 30000      /* a proposal not taken by a leader by then is refused */
#define RF_PROPOSE_MAX 256       /* entries of one cluster_propose */

enum { RF_T_START = 1, RF_T_POLL };

typedef struct rf_node {
    struct raft raft;
    flow_log_store ls;
    flow_fsm *fsm;
    sup_rt *rt;
    sup_pid self; /* SUP_NOPID once the actor ended: callbacks then only release memory */
    bool raft_ok; /* raft_init succeeded: released through raft_close */
    uint64_t ready_term;
    struct raft_barrier barrier;
    bool barrier_busy;
    bool nudges; /* with gossip: followers coordinate swarms, tell them commits at once */
    struct raft_barrier nudge;
    bool nudge_busy, nudge_again;
    unsigned lost_leader_ms; /* the election timer once the leader's connection ended */
    uint64_t early;          /* times the timer was cut for that */
    char err[RAFT_ERRMSG_BUF_SIZE];
} rf_node;

/* A proposal of this node's registry waiting to be forwarded to the leader. */
typedef struct rf_fwd {
    uint64_t cookie;
    json_t *cmd;
    uint64_t since; /* when it was proposed (runtime ms) */
    struct rf_fwd *next;
} rf_fwd;

typedef struct rf_state {
    const flow_raft_config *cfg;
    uint64_t retention; /* flow_options.task_retention, for the FSM's copy of the state */
    rf_node *n;
    int attempts;
    int sent_state; /* what the registry was last told */
    raft_id sent_leader;
    bool sent_ready;
    char sent_api[FLOW_FSM_API_MAX];
    unsigned member_proposed; /* what the pending own member entry carries: 1 api, 2 gossip */
    uint64_t proposals, refusals;
    json_t *gossip_view; /* the gossip actor's last report, or NULL */
    sup_pid gossip_pid;  /* who sent it */
    char *peers_sent;    /* the last FLOW_TAG_PEERS text sent */
    char *alive_sent;    /* the last FLOW_TAG_MEMBERS text sent */
    /* forwarding (a follower's proposals go to the leader's cluster_propose, in order) */
    rf_fwd *fwd;            /* waiting, oldest first */
    rf_fwd *fwd_inflight;   /* sent in the request fwd_id, in order */
    uint64_t fwd_id;        /* the request in flight (0: none) */
    flow_http_req *fwd_req; /* its I/O, held until its answer is taken or the actor ends */
    uint64_t fwd_seq;       /* request ids */
    uint64_t fwd_retry_at;  /* no request before (runtime ms) */
    uint64_t forwarded, forward_failures;
} rf_state;

/* A forwarded batch (cluster_propose) on the leader: answered once every entry is done. */
typedef struct rf_batch {
    sup_from from;
    size_t pending;
    int status; /* the first failure, or 0 */
} rf_batch;

typedef struct rf_apply {
    struct raft_apply req;
    rf_node *n;
    uint64_t cookie;
    rf_batch *batch; /* a forwarded entry: its batch (cookie 0) */
} rf_apply;

typedef struct rf_change {
    struct raft_change req;
    rf_node *n;
    sup_from from;
    raft_id id;
    int stage; /* 0 add, 1 assign voter, 2 remove */
    char api[FLOW_FSM_API_MAX];
    char gossip[FLOW_FSM_GOSSIP_MAX];
    char node[RF_NODE_HEX + 1];
} rf_change;

static sup_pid rf__registry(const rf_node *n)
{
    return sup_whereis(n->rt, FLOW_N_REGISTRY);
}

/* ---- FSM hooks: what the registry must apply --------------------------------------------- */

/* The leader's nudge: libraft 0.15 tells followers the commit index only with the next
 * AppendEntries (a new entry or a heartbeat), so a follower that coordinates a swarm would see
 * a task submitted to the leader only a heartbeat or two later. After applying commands the
 * leader appends a barrier (an empty entry, not applied to the FSM): its AppendEntries carries
 * the new commit index at once. One at a time; commands applied meanwhile get one more. */
static void rf__nudge(rf_node *n);

static void rf__nudge_cb(struct raft_barrier *req, int status)
{
    rf_node *n = req->data;
    n->nudge_busy = false;
    if (status == 0 && n->nudge_again && !sup_pid_is_null(n->self)) {
        rf__nudge(n);
    }
}

static void rf__nudge(rf_node *n)
{
    if (!n->nudges || raft_state(&n->raft) != RAFT_LEADER) {
        return;
    }
    if (n->nudge_busy) {
        n->nudge_again = true;
        return;
    }
    n->nudge_again = false;
    n->nudge.data = n;
    n->nudge_busy = raft_barrier(&n->raft, &n->nudge, rf__nudge_cb) == 0;
}

static void rf__applied(void *user, uint64_t index, const json_t *entry, int rc)
{
    (void)index;
    (void)rc;
    rf_node *n = user;
    const char *t = json_string_value(json_object_get(entry, "t"));
    if (sup_pid_is_null(n->self) || t == NULL || strcmp(t, "cmd") != 0) {
        return;
    }
    flow__cast_json(n->rt, n->self, rf__registry(n), FLOW_TAG_COMMITTED,
                    json_incref((json_t *)entry));
    rf__nudge(n);
}

static void rf__restored(void *user, const json_t *snap)
{
    rf_node *n = user;
    if (!sup_pid_is_null(n->self)) {
        flow__cast_json(n->rt, n->self, rf__registry(n), FLOW_TAG_RESTORE,
                        json_incref(json_object_get(snap, "state")));
    }
}

/* ---- the node's lifetime ----------------------------------------------------------------- */

static void rf__node_free(rf_node *n)
{
    flow_log_store_close(&n->ls);
    flow_fsm_free(n->fsm);
    free(n);
}

static void rf__closed(struct raft *r)
{
    rf__node_free(r->data);
}

static void rf__node_close(rf_node *n)
{
    if (n == NULL) {
        return;
    }
    n->self = SUP_NOPID;
    if (n->raft_ok) {
        raft_close(&n->raft, rf__closed);
    } else {
        rf__node_free(n);
    }
}

/* An accepted connection from peer `id` ended (log_store.c): if it was this follower's leader,
 * its process most likely died (kill -9 and crashes close its sockets at once), so the
 * election timer is cut (flow_raft_leader_gone) instead of waiting a whole election timeout
 * without heartbeats. A false alarm (the leader alive) costs a refused pre-vote. */
static void rf__peer_lost(void *user, raft_id id)
{
    rf_node *n = user;
    if (n->raft_ok && !sup_pid_is_null(n->self) &&
        flow_raft_leader_gone(&n->raft, id, n->lost_leader_ms)) {
        n->early++;
    }
}

static int rf__node_open(rf_state *st, sup_actor *self, char *err, size_t errsize)
{
    const flow_raft_config *cfg = st->cfg;
    sup_rt *rt = sup_self_rt(self);
    rf_node *n = calloc(1, sizeof *n);
    if (n == NULL) {
        snprintf(err, errsize, "out of memory");
        return RAFT_NOMEM;
    }
    n->rt = rt;
    n->self = sup_self(self);
    n->nudges = cfg->gossip != NULL;
    flow_fsm_hooks hooks = {.user = n, .applied = rf__applied, .restored = rf__restored};
    n->fsm = flow_fsm_new(&hooks);
    if (n->fsm != NULL) {
        flow_fsm_set_retention(n->fsm, st->retention);
    }
    int rc = n->fsm ? flow_log_store_open(&n->ls, sup_rt_loop(rt), cfg->data_dir, cfg->faults, err,
                                          errsize)
                    : RAFT_NOMEM;
    if (rc == 0) {
        rc = raft_init(&n->raft, &n->ls.io, flow_fsm_raft(n->fsm), cfg->id, cfg->address);
        if (rc != 0) {
            snprintf(err, errsize, "raft_init: %s", raft_strerror(rc));
        }
    }
    if (rc != 0) {
        rf__node_free(n);
        return rc;
    }
    n->raft_ok = true;
    n->raft.data = n;
    unsigned election = cfg->election_ms ? cfg->election_ms : 150;
    raft_set_election_timeout(&n->raft, election);
    raft_set_heartbeat_timeout(&n->raft, cfg->heartbeat_ms ? cfg->heartbeat_ms
                                                           : (election / 3 ? election / 3 : 1));
    /* pre-vote: a candidate whose election would fail (a false alarm below, a node cut off)
     * changes no term; and the second follower to time out after a leader's death wins at
     * once instead of splitting the vote with the first (docs/consensus.md) */
    raft_set_pre_vote(&n->raft, true);
    n->lost_leader_ms = flow_raft_lost_leader_ms(election);
    flow_log_store_on_peer_lost(&n->ls, rf__peer_lost, n);
    raft_set_snapshot_threshold(&n->raft,
                                cfg->snapshot_threshold ? cfg->snapshot_threshold : 10000);
    raft_set_snapshot_trailing(&n->raft, cfg->snapshot_trailing ? cfg->snapshot_trailing : 1000);
    raft_uv_set_connect_retry_delay(&n->ls.io, 50);
    if (!cfg->join) {
        struct raft_configuration conf;
        raft_configuration_init(&conf);
        rc = raft_configuration_add(&conf, cfg->id, cfg->address, RAFT_VOTER);
        if (rc == 0) {
            rc = raft_bootstrap(&n->raft, &conf);
        }
        raft_configuration_close(&conf);
        if (rc == RAFT_CANTBOOTSTRAP) {
            rc = 0; /* not the first start: the log has the configuration */
        } else if (rc != 0) {
            snprintf(err, errsize, "raft_bootstrap: %s", raft_strerror(rc));
        }
    }
    if (rc == 0) {
        rc = raft_start(&n->raft);
        if (rc != 0) {
            snprintf(err, errsize, "raft_start %s: %s (%s)", cfg->address, raft_strerror(rc),
                     raft_errmsg(&n->raft));
        }
    }
    if (rc != 0) {
        rf__node_close(n);
        return rc;
    }
    st->n = n;
    return 0;
}

/* ---- role ------------------------------------------------------------------------------- */

static json_t *rf__leader_json(const rf_node *n)
{
    raft_id id = 0;
    const char *addr = NULL;
    raft_leader((struct raft *)&n->raft, &id, &addr);
    if (id == 0) {
        return json_null();
    }
    const char *api = flow_fsm_member_api(n->fsm, id);
    return json_pack("{s:I, s:s?, s:s?}", "id", (json_int_t)id, "address", addr, "api", api);
}

static void rf__barrier_cb(struct raft_barrier *req, int status)
{
    rf_node *n = req->data;
    n->barrier_busy = false;
    if (status == 0 && raft_state(&n->raft) == RAFT_LEADER) {
        n->ready_term = n->raft.current_term;
    }
}

static void rf__refused(sup_rt *rt, sup_pid self, uint64_t cookie, int code, const char *msg)
{
    if (sup_pid_is_null(self) || cookie == 0) {
        return;
    }
    flow__cast_json(
        rt, self, sup_whereis(rt, FLOW_N_REGISTRY), FLOW_TAG_REFUSED,
        json_pack("{s:I, s:i, s:s}", "c", (json_int_t)cookie, "code", code, "message", msg));
}

static void rf__batch_done(rf_node *n, rf_batch *b)
{
    if (!sup_pid_is_null(n->self)) {
        if (b->status == 0) {
            flow__reply_ok(n->rt, b->from, json_pack("{s:b}", "committed", 1));
        } else {
            flow__reply_err(n->rt, b->from, FLOW_ECONSENSUS, "not committed: %s",
                            raft_strerror(b->status));
        }
    }
    free(b);
}

static void rf__apply_cb(struct raft_apply *req, int status, void *result)
{
    (void)result;
    rf_apply *a = req->data;
    if (a->batch) {
        if (status != 0 && a->batch->status == 0) {
            a->batch->status = status;
        }
        if (--a->batch->pending == 0) {
            rf__batch_done(a->n, a->batch);
        }
    } else if (status != 0) {
        rf__refused(a->n->rt, a->n->self, a->cookie, FLOW_ECONSENSUS, raft_strerror(status));
    }
    free(a);
}

static bool rf__same(const char *a, const char *b)
{
    return strcmp(a ? a : "", b ? b : "") == 0;
}

static void rf__propose_member(rf_state *st)
{
    rf_node *n = st->n;
    const char *api = st->cfg->api;
    const char *have = flow_fsm_member_api(n->fsm, st->cfg->id);
    /* the gossip endpoint, once the gossip actor told its node id */
    const char *node = json_string_value(json_object_get(st->gossip_view, "node"));
    const char *gossip = node ? st->cfg->gossip : NULL;
    const char *have_node = NULL;
    const char *have_gossip = flow_fsm_member_gossip(n->fsm, st->cfg->id, &have_node);
    bool api_ok = api == NULL || rf__same(have, api);
    bool gossip_ok = gossip == NULL || (rf__same(have_gossip, gossip) && rf__same(have_node, node));
    unsigned want = (api_ok ? 0u : 1u) | (gossip_ok ? 0u : 2u);
    if (want == 0 || (st->member_proposed & want) == want) {
        return;
    }
    rf_apply *a = calloc(1, sizeof *a);
    struct raft_buffer buf;
    if (a == NULL || flow_entry_member(st->cfg->id, api, gossip, node, &buf) != 0) {
        free(a);
        return;
    }
    a->n = n;
    a->req.data = a;
    st->member_proposed = want;
    if (raft_apply(&n->raft, &a->req, &buf, 1, rf__apply_cb) != 0) {
        raft_free(buf.base);
        free(a);
        st->member_proposed = 0;
    }
}

/* Tells the gossip actor the voters and their gossip endpoints when they changed. */
static void rf__send_peers(sup_actor *self, rf_state *st)
{
    rf_node *n = st->n;
    sup_rt *rt = sup_self_rt(self);
    json_t *members = json_array();
    for (unsigned i = 0; i < n->raft.configuration.n; i++) {
        const struct raft_server *s = &n->raft.configuration.servers[i];
        if (s->role != RAFT_VOTER) {
            continue;
        }
        const char *node = NULL;
        const char *addr = flow_fsm_member_gossip(n->fsm, s->id, &node);
        json_array_append_new(members, json_pack("{s:I, s:s?, s:s?}", "id", (json_int_t)s->id,
                                                 "address", addr, "node", addr ? node : NULL));
    }
    json_t *j = json_pack("{s:o}", "members", members);
    char *text = json_dumps(j, JSON_COMPACT);
    json_decref(j);
    if (text == NULL || (st->peers_sent && strcmp(text, st->peers_sent) == 0)) {
        free(text);
        return;
    }
    if (sup_cast(rt, sup_self(self), sup_whereis(rt, FLOW_N_GOSSIP), FLOW_TAG_PEERS, text,
                 strlen(text)) == 0) {
        free(st->peers_sent);
        st->peers_sent = text;
    } else {
        free(text);
    }
}

/* With gossip: tells the registry the live members (lease names of the voters the gossip view
 * holds alive or suspect; this node is always in its own view) when they changed. */
static void rf__send_alive(sup_actor *self, rf_state *st)
{
    rf_node *n = st->n;
    const json_t *view = json_object_get(st->gossip_view, "members");
    if (!json_is_object(view)) {
        return;
    }
    json_t *alive = json_array();
    for (unsigned i = 0; i < n->raft.configuration.n; i++) {
        const struct raft_server *s = &n->raft.configuration.servers[i];
        char key[24];
        snprintf(key, sizeof key, "%llu", (unsigned long long)s->id);
        const char *g = json_string_value(json_object_get(view, key));
        if (s->role == RAFT_VOTER && g && (strcmp(g, "alive") == 0 || strcmp(g, "suspect") == 0)) {
            json_array_append_new(alive, json_string(key));
        }
    }
    json_t *j = json_pack("{s:o}", "alive", alive);
    char *text = json_dumps(j, JSON_COMPACT);
    json_decref(j);
    if (text == NULL || (st->alive_sent && strcmp(text, st->alive_sent) == 0)) {
        free(text);
        return;
    }
    sup_rt *rt = sup_self_rt(self);
    if (sup_cast(rt, sup_self(self), rf__registry(n), FLOW_TAG_MEMBERS, text, strlen(text)) == 0) {
        free(st->alive_sent);
        st->alive_sent = text;
    } else {
        free(text);
    }
}

static void rf__fwd_pump(sup_actor *self, rf_state *st);

/* Tells the registry when the role, the leader or its URL changed. */
static void rf__poll(sup_actor *self, rf_state *st)
{
    rf_node *n = st->n;
    if (n == NULL) {
        return;
    }
    if (st->cfg->gossip) {
        rf__send_peers(self, st);
        rf__send_alive(self, st);
    }
    rf__fwd_pump(self, st);
    int s = raft_state(&n->raft);
    bool ready = s == RAFT_LEADER && n->ready_term == n->raft.current_term;
    if (s == RAFT_LEADER && !ready && !n->barrier_busy) {
        n->barrier.data = n;
        if (raft_barrier(&n->raft, &n->barrier, rf__barrier_cb) == 0) {
            n->barrier_busy = true;
        }
    }
    if (ready) {
        rf__propose_member(st);
    } else {
        st->member_proposed = 0;
    }
    raft_id lid = 0;
    const char *laddr = NULL;
    raft_leader(&n->raft, &lid, &laddr);
    const char *api = lid ? flow_fsm_member_api(n->fsm, lid) : NULL;
    if (s == st->sent_state && ready == st->sent_ready && lid == st->sent_leader &&
        strcmp(api ? api : "", st->sent_api) == 0) {
        return;
    }
    st->sent_state = s;
    st->sent_ready = ready;
    st->sent_leader = lid;
    snprintf(st->sent_api, sizeof st->sent_api, "%s", api ? api : "");
    json_t *role = json_pack("{s:b, s:o}", "leader", ready, "known", rf__leader_json(n));
    flow__cast_json(sup_self_rt(self), sup_self(self), rf__registry(n), FLOW_TAG_ROLE, role);
}

/* ---- proposals --------------------------------------------------------------------------- */

/* ---- forwarding: a follower's proposals go to the leader ---------------------------------
 * The registry of a follower that coordinates swarms proposes its commands like a leader's
 * (FLOW_TAG_PROPOSE). They queue here and go, in order and one request at a time, to the
 * leader's flow HTTP endpoint (POST <api>/flow/cluster_propose {"entries": [{"o", "c",
 * "cmd"}]}, the API URL from the replicated member directory). The leader appends them with
 * this node as origin and the registry's cookies and answers once all are committed (or one
 * failed); the outcome reaches the registry through the log, as for the leader's own
 * proposals. A failed request (no leader, a redirect, leadership lost, a timeout) is sent
 * again, from its first entry, after RF_FWD_RETRY_MS: entries it did commit are then applied
 * twice in order, which the state machine refuses or which leaves the same end state (a
 * completion, a start, a removal, a claim of the same token are refused; an agent added
 * again is removed again by the next entry). A proposal no leader took within RF_FWD_MAX_MS
 * is refused (FLOW_TAG_REFUSED, consensus_unavailable). */

static void rf__fwd_free(rf_fwd *f)
{
    while (f) {
        rf_fwd *next = f->next;
        json_decref(f->cmd);
        free(f);
        f = next;
    }
}

/* Appends a proposal to libraft as this node (the leader); 0 or FLOW_E*. */
static int rf__append(rf_state *st, uint64_t origin, uint64_t cookie, const json_t *cmd,
                      rf_batch *batch, const char **why)
{
    rf_node *n = st->n;
    struct raft_buffer buf = {0};
    *why = "command too large";
    int rc = n == NULL ? FLOW_ECONSENSUS : flow_entry_cmd(cmd, origin, cookie, &buf);
    rf_apply *a = rc == 0 ? calloc(1, sizeof *a) : NULL;
    if (rc == 0 && a == NULL) {
        rc = FLOW_ENOMEM;
        *why = "out of memory";
    }
    if (rc == 0) {
        a->n = n;
        a->cookie = batch ? 0 : cookie;
        a->batch = batch;
        a->req.data = a;
        int rr = raft_apply(&n->raft, &a->req, &buf, 1, rf__apply_cb);
        if (rr != 0) {
            free(a);
            rc = rr == RAFT_NOTLEADER ? FLOW_ENOTLEADER : FLOW_ECONSENSUS;
            *why = raft_strerror(rr);
        }
    }
    if (rc != 0) {
        raft_free(buf.base);
        st->refusals++;
    } else {
        st->proposals++;
        if (batch) {
            batch->pending++;
        }
    }
    return rc;
}

/* Sends the next batch of waiting proposals to the leader, or appends them here when this
 * node leads now; refuses those waiting too long. */
static void rf__fwd_pump(sup_actor *self, rf_state *st)
{
    sup_rt *rt = sup_self_rt(self);
    rf_node *n = st->n;
    uint64_t now = sup_rt_now(rt);
    for (rf_fwd **pp = &st->fwd; *pp;) {
        rf_fwd *f = *pp;
        if (now - f->since > RF_FWD_MAX_MS) {
            *pp = f->next;
            f->next = NULL;
            rf__refused(rt, sup_self(self), f->cookie, FLOW_ECONSENSUS,
                        "no leader took the proposal in time");
            rf__fwd_free(f);
        } else {
            pp = &f->next;
        }
    }
    if (n == NULL || st->fwd == NULL || st->fwd_id != 0 || now < st->fwd_retry_at) {
        return;
    }
    if (raft_state(&n->raft) == RAFT_LEADER) {
        while (st->fwd) {
            rf_fwd *f = st->fwd;
            st->fwd = f->next;
            f->next = NULL;
            const char *why = NULL;
            int rc = rf__append(st, st->cfg->id, f->cookie, f->cmd, NULL, &why);
            if (rc != 0) {
                rf__refused(rt, sup_self(self), f->cookie, rc, why);
            }
            rf__fwd_free(f);
        }
        return;
    }
    raft_id lid = 0;
    const char *laddr = NULL;
    raft_leader(&n->raft, &lid, &laddr);
    const char *api = lid && lid != st->cfg->id ? flow_fsm_member_api(n->fsm, lid) : NULL;
    flow_http_url url;
    char err[128], target[FLOW_FSM_API_MAX + 32];
    snprintf(target, sizeof target, "%s/flow/cluster_propose", api ? api : "");
    if (api == NULL || flow_http_url_parse(target, &url, err, sizeof err) != 0) {
        return; /* no leader known (yet): the poll tries again */
    }
    json_t *entries = json_array();
    size_t bytes = 0, k = 0;
    rf_fwd **end = &st->fwd;
    while (*end && k < RF_FWD_BATCH && bytes < RF_FWD_BYTES) {
        char *one = json_dumps((*end)->cmd, JSON_COMPACT);
        bytes += one ? strlen(one) : 0;
        free(one);
        json_array_append_new(entries,
                              json_pack("{s:I, s:I, s:O}", "o", (json_int_t)st->cfg->id, "c",
                                        (json_int_t)(*end)->cookie, "cmd", (*end)->cmd));
        end = &(*end)->next;
        k++;
    }
    json_t *body = json_pack("{s:o}", "entries", entries);
    char *text = json_dumps(body, JSON_COMPACT);
    json_decref(body);
    if (text == NULL) {
        return;
    }
    /* the first k move in flight, in order */
    st->fwd_inflight = st->fwd;
    st->fwd = *end;
    *end = NULL;
    st->fwd_id = ++st->fwd_seq;
    if (flow_http_post(sup_rt_loop(rt), rt, sup_self(self), FLOW_TAG_FORWARDED, st->fwd_id, &url,
                       "application/json", text, strlen(text), RF_FWD_TIMEOUT_MS,
                       &st->fwd_req) != 0) {
        *end = st->fwd; /* put them back */
        st->fwd = st->fwd_inflight;
        st->fwd_inflight = NULL;
        st->fwd_id = 0;
        st->fwd_retry_at = now + RF_FWD_RETRY_MS;
        st->forward_failures++;
    }
}

/* The leader's answer to a forwarded request: all committed, or send them again. */
static void rf__fwd_answer(sup_actor *self, rf_state *st, const sup_msg *m)
{
    flow_http_result res;
    if (m->len != sizeof res) {
        return;
    }
    memcpy(&res, m->data, sizeof res);
    if (res.id != st->fwd_id || st->fwd_id == 0) {
        return;
    }
    st->fwd_id = 0;
    flow_http_release(st->fwd_req);
    st->fwd_req = NULL;
    if (res.status == 200) {
        rf__fwd_free(st->fwd_inflight);
        st->forwarded++;
    } else {
        rf_fwd **end = &st->fwd_inflight;
        while (*end) {
            end = &(*end)->next;
        }
        *end = st->fwd;
        st->fwd = st->fwd_inflight;
        st->fwd_retry_at = sup_rt_now(sup_self_rt(self)) + RF_FWD_RETRY_MS;
        st->forward_failures++;
    }
    st->fwd_inflight = NULL;
    rf__fwd_pump(self, st);
}

/* The leader: a follower's forwarded proposals (cluster_propose), appended in order with
 * their origin and cookies; answered when all are committed or one failed. */
static void rf__cluster_propose(rf_state *st, sup_from from, const json_t *args)
{
    rf_node *n = st->n;
    const json_t *entries = json_object_get(args, "entries");
    size_t count = json_array_size(entries);
    bool ok = json_is_array(entries) && count > 0 && count <= RF_PROPOSE_MAX;
    for (size_t i = 0; ok && i < count; i++) {
        const json_t *e = json_array_get(entries, i);
        json_int_t o = json_integer_value(json_object_get(e, "o"));
        json_int_t c = json_integer_value(json_object_get(e, "c"));
        ok = o > 0 && c > 0 && json_is_object(json_object_get(e, "cmd"));
    }
    if (!ok) {
        flow__reply_err(n->rt, from, FLOW_EINVAL,
                        "cluster_propose needs entries: 1 to %d of {\"o\": origin id, \"c\": "
                        "cookie, \"cmd\": command}",
                        RF_PROPOSE_MAX);
        return;
    }
    rf_batch *b = calloc(1, sizeof *b);
    if (b == NULL) {
        flow__reply_err(n->rt, from, FLOW_ENOMEM, "out of memory");
        return;
    }
    b->from = from;
    b->pending = 1; /* held until every entry went to libraft */
    /* The replicated clock is the leader's (docs/consensus.md): a follower's monotonic clock
     * (time since its machine booted) would move the state's clock by the difference. */
    json_int_t now = (json_int_t)sup_rt_now(n->rt);
    for (size_t i = 0; i < count; i++) {
        const json_t *e = json_array_get(entries, i);
        const char *why = NULL;
        json_t *cmd = json_object_get(e, "cmd");
        json_object_set_new(cmd, "now", json_integer(now));
        int rc = rf__append(st, (uint64_t)json_integer_value(json_object_get(e, "o")),
                            (uint64_t)json_integer_value(json_object_get(e, "c")), cmd, b, &why);
        if (rc != 0) { /* the rest would commit out of order: stop here */
            b->status = rc == FLOW_ENOTLEADER ? RAFT_NOTLEADER : RAFT_CANCELED;
            break;
        }
    }
    if (--b->pending == 0) {
        rf__batch_done(n, b);
    }
}

static void rf__propose(sup_actor *self, rf_state *st, const sup_msg *m)
{
    json_t *j = flow__msg_json(m);
    uint64_t cookie = (uint64_t)json_integer_value(json_object_get(j, "c"));
    rf_node *n = st->n;
    if (n && (raft_state(&n->raft) != RAFT_LEADER || st->fwd || st->fwd_inflight) &&
        json_is_object(json_object_get(j, "cmd"))) {
        /* a follower's (or proposals still queued behind those): forwarded, in order */
        rf_fwd *f = calloc(1, sizeof *f);
        if (f) {
            f->cookie = cookie;
            f->cmd = json_incref(json_object_get(j, "cmd"));
            f->since = sup_rt_now(sup_self_rt(self));
            rf_fwd **end = &st->fwd;
            while (*end) {
                end = &(*end)->next;
            }
            *end = f;
            rf__fwd_pump(self, st);
        } else {
            rf__refused(sup_self_rt(self), sup_self(self), cookie, FLOW_ENOMEM, "out of memory");
        }
        json_decref(j);
        return;
    }
    const char *why = "raft is not started";
    int rc = n == NULL ? FLOW_ECONSENSUS
                       : rf__append(st, st->cfg->id, cookie, json_object_get(j, "cmd"), NULL, &why);
    if (rc != 0) {
        if (n == NULL) {
            st->refusals++;
        }
        rf__refused(sup_self_rt(self), sup_self(self), cookie, rc, why);
    }
    json_decref(j);
}

/* ---- membership -------------------------------------------------------------------------- */

static const char *rf__role_name(int role)
{
    return role == RAFT_VOTER ? "voter" : role == RAFT_STANDBY ? "standby" : "spare";
}

static const char *rf__state_name(int s)
{
    switch (s) {
    case RAFT_FOLLOWER: return "follower";
    case RAFT_CANDIDATE: return "candidate";
    case RAFT_LEADER: return "leader";
    default: return "unavailable";
    }
}

typedef struct rf_leases {
    const flow_state *fs;
    json_t *out;
} rf_leases;

static void rf__lease_each(const flow_swarm_stats *sst, void *user)
{
    rf_leases *l = user;
    uint64_t token = 0;
    const char *node = flow_state_swarm_lease(l->fs, sst->id, &token);
    json_object_set_new(l->out, sst->id,
                        node ? json_pack("{s:s, s:I}", "node", node, "token", (json_int_t)token)
                             : json_null());
}

/* Each swarm's coordinator lease in the replica: {swarm: {"node", "token"} | null}. */
static json_t *rf__leases(const flow_state *fs)
{
    rf_leases l = {fs, json_object()};
    if (fs) {
        flow_state_each_swarm(fs, rf__lease_each, &l);
    }
    return l.out;
}

static json_t *rf__status(const rf_state *st)
{
    rf_node *n = st->n;
    if (n == NULL) {
        return json_pack("{s:s, s:I, s:s, s:s}", "mode", "raft", "id", (json_int_t)st->cfg->id,
                         "address", st->cfg->address, "state", "starting");
    }
    struct raft *r = &n->raft;
    json_t *members = json_array();
    for (unsigned i = 0; i < r->configuration.n; i++) {
        const struct raft_server *s = &r->configuration.servers[i];
        const char *node = NULL;
        const char *gossip = flow_fsm_member_gossip(n->fsm, s->id, &node);
        json_array_append_new(members, json_pack("{s:I, s:s, s:s, s:s?, s:s?, s:s?}", "id",
                                                 (json_int_t)s->id, "address", s->address, "role",
                                                 rf__role_name(s->role), "api",
                                                 flow_fsm_member_api(n->fsm, s->id), "gossip",
                                                 gossip, "node", gossip ? node : NULL));
    }
    json_t *o =
        json_pack("{s:s, s:I, s:s, s:s, s:b, s:I, s:o, s:I, s:I, s:I, s:o, s:I, s:I, s:I, s:I}",
                  "mode", "raft", "id", (json_int_t)st->cfg->id, "address", st->cfg->address,
                  "state", rf__state_name(raft_state(r)), "ready",
                  raft_state(r) == RAFT_LEADER && n->ready_term == r->current_term, "term",
                  (json_int_t)r->current_term, "leader", rf__leader_json(n), "commit_index",
                  (json_int_t)r->commit_index, "last_applied", (json_int_t)raft_last_applied(r),
                  "last_index", (json_int_t)raft_last_index(r), "members", members,
                  "entries_applied", (json_int_t)flow_fsm_entries(n->fsm), "commands_refused",
                  (json_int_t)flow_fsm_refused(n->fsm), "proposals", (json_int_t)st->proposals,
                  "proposals_refused", (json_int_t)st->refusals);
    json_object_set_new(o, "paused",
                        json_boolean(json_is_true(json_object_get(st->gossip_view, "paused"))));
    json_object_set_new(o, "gossip",
                        st->gossip_view ? json_deep_copy(st->gossip_view) : json_null());
    json_object_set_new(o, "isolated", json_boolean(flow_log_store_isolated(&n->ls)));
    uint64_t watched = 0, ended = 0;
    flow_log_store_peer_stats(&n->ls, &watched, &ended);
    json_object_set_new(o, "peer_connections",
                        json_pack("{s:I, s:I, s:I}", "watched", (json_int_t)watched, "ended",
                                  (json_int_t)ended, "leader_lost", (json_int_t)n->early));
    json_object_set_new(o, "leases", rf__leases(flow_fsm_state(n->fsm)));
    json_object_set_new(o, "forwarding",
                        json_pack("{s:I, s:I, s:b}", "forwarded", (json_int_t)st->forwarded,
                                  "failures", (json_int_t)st->forward_failures, "in_flight",
                                  st->fwd_id != 0));
    return o;
}

static void rf__change_reply(rf_change *c, int status)
{
    rf_node *n = c->n;
    if (status != 0) {
        flow__reply_err(n->rt, c->from, status == RAFT_NOTLEADER ? FLOW_ENOTLEADER : FLOW_ESTATE,
                        "membership change: %s", raft_strerror(status));
    } else {
        flow__reply_ok(n->rt, c->from,
                       json_pack("{s:I, s:s}", "id", (json_int_t)c->id, "done",
                                 c->stage == 2 ? "removed" : "added"));
    }
    free(c);
}

/* Appends a member/forget entry (best effort: the change itself is committed). */
static void rf__member_entry(rf_node *n, bool forget, raft_id id, const char *api,
                             const char *gossip, const char *node)
{
    struct raft_buffer buf;
    int rc = forget ? flow_entry_forget(id, &buf) : flow_entry_member(id, api, gossip, node, &buf);
    rf_apply *a = rc == 0 ? calloc(1, sizeof *a) : NULL;
    if (a == NULL) {
        raft_free(buf.base);
        return;
    }
    a->n = n;
    a->req.data = a;
    if (raft_apply(&n->raft, &a->req, &buf, 1, rf__apply_cb) != 0) {
        raft_free(buf.base);
        free(a);
    }
}

static void rf__change_cb(struct raft_change *req, int status)
{
    rf_change *c = req->data;
    rf_node *n = c->n;
    if (status == 0 && c->stage == 0 && n->raft_ok && !sup_pid_is_null(n->self)) {
        c->stage = 1;
        int rc = raft_assign(&n->raft, &c->req, c->id, RAFT_VOTER, rf__change_cb);
        if (rc == 0) {
            return;
        }
        status = rc;
    }
    if (status == 0 && !sup_pid_is_null(n->self)) {
        rf__member_entry(n, c->stage == 2, c->id, c->api[0] ? c->api : NULL,
                         c->gossip[0] ? c->gossip : NULL, c->node[0] ? c->node : NULL);
    }
    rf__change_reply(c, status);
}

/* The test-only fault switch: drop all Raft traffic (transport wrapper) and all gossip. */
static void rf__fault(sup_actor *self, rf_state *st, sup_from from, const json_t *args)
{
    sup_rt *rt = sup_self_rt(self);
    const json_t *iso = json_object_get(args, "isolate");
    if (!json_is_boolean(iso)) {
        flow__reply_err(rt, from, FLOW_EINVAL, "cluster_fault needs {\"isolate\": true|false}");
        return;
    }
    if (flow_log_store_isolate(&st->n->ls, json_is_true(iso)) != 0) {
        flow__reply_err(rt, from, FLOW_ESTATE,
                        "the fault switch is off (start the node with MACULA_FLOW_FAULTS=1)");
        return;
    }
    flow__cast_json(rt, sup_self(self), sup_whereis(rt, FLOW_N_GOSSIP), FLOW_TAG_FAULT,
                    json_pack("{s:O}", "isolate", iso));
    flow__reply_ok(rt, from, json_pack("{s:O}", "isolated", iso));
}

static void rf__cluster_op(sup_actor *self, rf_state *st, sup_from from, const char *op,
                           const json_t *args)
{
    sup_rt *rt = sup_self_rt(self);
    if (strcmp(op, "cluster_status") == 0) {
        flow__reply_ok(rt, from, rf__status(st));
        return;
    }
    rf_node *n = st->n;
    if (n == NULL) {
        flow__reply_err(rt, from, FLOW_ECONSENSUS, "raft is starting");
        return;
    }
    if (strcmp(op, "cluster_fault") == 0) {
        rf__fault(self, st, from, args);
        return;
    }
    if (raft_state(&n->raft) != RAFT_LEADER) {
        json_t *l = rf__leader_json(n);
        flow__reply_not_leader(rt, from, json_is_null(l) ? NULL : l);
        json_decref(l);
        return;
    }
    if (strcmp(op, "cluster_propose") == 0) {
        rf__cluster_propose(st, from, args);
        return;
    }
    json_int_t id = json_integer_value(json_object_get(args, "id"));
    const char *addr = json_string_value(json_object_get(args, "address"));
    const char *api = json_string_value(json_object_get(args, "api"));
    const char *gossip = json_string_value(json_object_get(args, "gossip"));
    const char *node = json_string_value(json_object_get(args, "node"));
    bool join = strcmp(op, "cluster_join") == 0;
    struct raft_buffer probe = {0};
    if (id <= 0 || (join && (addr == NULL || strlen(addr) >= 128)) ||
        (api && strlen(api) >= FLOW_FSM_API_MAX) ||
        ((gossip || node) && flow_entry_member((uint64_t)id, NULL, gossip, node, &probe) != 0)) {
        flow__reply_err(rt, from, FLOW_EINVAL, "%s needs an id%s", op,
                        join ? ", an address (host:port), and gossip (host:port) with node (64 "
                               "lowercase hex digits) together or neither"
                             : "");
        return;
    }
    raft_free(probe.base);
    rf_change *c = calloc(1, sizeof *c);
    if (c == NULL) {
        flow__reply_err(rt, from, FLOW_ENOMEM, "out of memory");
        return;
    }
    c->n = n;
    c->from = from;
    c->id = (raft_id)id;
    c->req.data = c;
    snprintf(c->api, sizeof c->api, "%s", api ? api : "");
    snprintf(c->gossip, sizeof c->gossip, "%s", gossip ? gossip : "");
    snprintf(c->node, sizeof c->node, "%s", node ? node : "");
    int rc;
    if (join) {
        c->stage = 0;
        rc = raft_add(&n->raft, &c->req, c->id, addr, rf__change_cb);
    } else {
        c->stage = 2;
        rc = raft_remove(&n->raft, &c->req, c->id, rf__change_cb);
    }
    if (rc != 0) {
        rf__change_reply(c, rc);
    }
}

/* ---- behaviour --------------------------------------------------------------------------- */

static int rf_init(sup_actor *self, void *state, void *arg)
{
    rf_state *st = state;
    const flow_options *o = arg;
    st->cfg = o ? o->raft : NULL;
    st->retention = flow__retention(o);
    st->sent_state = -1;
    sup_set_label(self, FLOW_N_RAFT);
    const flow_raft_config *c = st->cfg;
    if (c == NULL || c->id == 0 || c->address == NULL || c->data_dir == NULL ||
        sup_rt_loop(sup_self_rt(self)) == NULL) {
        sup_reason r = sup_reason_error("raft needs an id, an address, a data_dir and a libuv "
                                        "runtime");
        sup_stop(self, &r);
        return SUP_EINVAL;
    }
    sup_register(sup_self_rt(self), FLOW_N_RAFT, sup_self(self));
    /* the registry's state is rebuilt from the log from here on */
    sup_cast(sup_self_rt(self), sup_self(self), sup_whereis(sup_self_rt(self), FLOW_N_REGISTRY),
             FLOW_TAG_RESET, NULL, 0);
    int t = RF_T_START;
    sup_send_after(self, 0, FLOW_TAG_INTERNAL, &t, sizeof t);
    return 0;
}

static void rf_info(sup_actor *self, void *state, const sup_msg *m)
{
    rf_state *st = state;
    if (m->kind == SUP_MSG_INFO && m->tag == FLOW_TAG_FORWARDED) {
        rf__fwd_answer(self, st, m);
        return;
    }
    if (m->kind != SUP_MSG_TIMER || m->tag != FLOW_TAG_INTERNAL || m->len != sizeof(int)) {
        return;
    }
    int t;
    memcpy(&t, m->data, sizeof t);
    if (t == RF_T_START) {
        char err[512] = "";
        int rc = rf__node_open(st, self, err, sizeof err);
        if (rc == 0) {
            int p = RF_T_POLL;
            sup_send_after(self, RF_POLL_MS, FLOW_TAG_INTERNAL, &p, sizeof p);
        } else if (++st->attempts < RF_START_RETRIES) {
            sup_send_after(self, RF_START_RETRY_MS, FLOW_TAG_INTERNAL, &t, sizeof t);
        } else {
            sup_crash(self, "raft did not start: %s", err);
        }
    } else if (t == RF_T_POLL) {
        rf__poll(self, st);
        sup_send_after(self, RF_POLL_MS, FLOW_TAG_INTERNAL, &t, sizeof t);
    }
}

static void rf_cast(sup_actor *self, void *state, const sup_msg *m)
{
    rf_state *st = state;
    if (m->tag == FLOW_TAG_PROPOSE) {
        rf__propose(self, st, m);
    } else if (m->tag == FLOW_TAG_GOSSIP) {
        if (!sup_pid_eq(m->from, st->gossip_pid)) { /* a new gossip actor: tell it all */
            st->gossip_pid = m->from;
            free(st->peers_sent);
            st->peers_sent = NULL;
        }
        json_t *v = flow__msg_json(m);
        if (json_is_object(v)) {
            json_decref(st->gossip_view);
            st->gossip_view = v;
        } else {
            json_decref(v);
        }
    } else if (m->tag == FLOW_TAG_FWD && m->len > sizeof(sup_from)) {
        sup_from from;
        memcpy(&from, m->data, sizeof from);
        json_t *j = json_loadb((const char *)m->data + sizeof from, m->len - sizeof from,
                               JSON_REJECT_DUPLICATES, NULL);
        const char *op = json_string_value(json_object_get(j, "op"));
        if (op) {
            rf__cluster_op(self, st, from, op, json_object_get(j, "args"));
        } else {
            flow__reply_err(sup_self_rt(self), from, FLOW_EINVAL, "request needs an op");
        }
        json_decref(j);
    }
}

static void rf_terminate(sup_actor *self, void *state, const sup_reason *reason)
{
    (void)self;
    (void)reason;
    rf_state *st = state;
    rf__node_close(st->n);
    st->n = NULL;
    json_decref(st->gossip_view);
    free(st->peers_sent);
    free(st->alive_sent);
    rf__fwd_free(st->fwd);
    rf__fwd_free(st->fwd_inflight);
    flow_http_release(st->fwd_req); /* a request in flight sends nothing any more */
}

static const sup_behaviour rf_behaviour = {
    .name = FLOW_N_RAFT,
    .state_size = sizeof(rf_state),
    .init = rf_init,
    .handle_cast = rf_cast,
    .handle_info = rf_info,
    .terminate = rf_terminate,
};

int flow_raft_start(sup_rt *rt, sup_pid parent, void *arg, void *extra, sup_pid *out,
                    sup_reason *why)
{
    (void)extra;
    return sup_spawn(rt, parent, &rf_behaviour, arg, SUP_SPAWN_LINK, out, why);
}

void flow__reply_not_leader(sup_rt *rt, sup_from to, const json_t *leader)
{
    char msg[320] = "this node is not the leader";
    const char *api = json_string_value(json_object_get(leader, "api"));
    if (api) {
        snprintf(msg, sizeof msg, "this node is not the leader; the leader is %s", api);
    }
    json_t *o = json_pack("{s:s, s:i, s:s, s:O?}", "error", flow_strerror(FLOW_ENOTLEADER), "code",
                          FLOW_ENOTLEADER, "message", msg, "leader", leader);
    if (leader == NULL) {
        json_object_set_new(o, "leader", json_null());
    }
    char *text = json_dumps(o, JSON_COMPACT);
    json_decref(o);
    if (text) {
        sup_reply(rt, to, text, strlen(text));
        free(text);
    }
}
