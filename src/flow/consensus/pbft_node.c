/*
 * flow/consensus/pbft_node.c — erlmcp_flow_pbft: the PBFT core (byzantine.h) of one flow node,
 * carried over QUIC between node identities (docs/consensus.md "Byzantine mode").
 *
 * The actor owns this node's pbft_replica (replica index = member id - 1) and its pbft_client
 * (client id = the same index: one client per node, for the node's own commands), the node
 * identity (mesh/identity.h, in data_dir; its Ed25519 key signs every PBFT message), the
 * members' public keys (from the member list; each member's node id is the SHA-256 of its key's
 * SubjectPublicKeyInfo, which the link pins) and one peer_link (peer_link.h) listening on this
 * member's address.
 *
 *  - Commands: the registry casts FLOW_TAG_PROPOSE {"c": cookie, "cmd"} (its "now" stamped by
 *    the registry: the client stamps the time). They wait in a FIFO queue (PN_QUEUE_MAX) and
 *    the client submits them one at a time (PBFT: one outstanding request per client) as a
 *    flow log entry {"t":"cmd","cmd","o": member id,"c": cookie}; the next one goes when f+1
 *    matching replies came.
 *  - Executed requests: the replica's `executed` hook casts each to the registry as
 *    FLOW_TAG_COMMITTED (sequence order); the registry applies it to its copy and answers the
 *    waiting caller when "o" is this node ("o" is kept only when it is the signing client's
 *    member id, so a member cannot answer another's callers). A state transfer (`installed`)
 *    sends the new state as FLOW_TAG_RESTORE.
 *  - Acting: FLOW_TAG_ROLE {"leader": true} when this node is the primary of the current view
 *    and the replica is settled (pbft_replica_settled: the view's NEW-VIEW requests executed and
 *    something executed in the view); "known" names the primary. A node that sees itself
 *    primary of a new view casts a tick command to the registry, so that something executes
 *    in the view and it settles.
 *  - Time: a libuv timer at the earliest of the replica's and the client's deadlines.
 *  - cluster_status (FLOW_TAG_FWD from the registry) is answered here; the other cluster_*
 *    operations are refused (the member list is static).
 *
 * Link and timer callbacks run on the loop outside the actor's callbacks; they use only the
 * actor's state and casts. terminate closes the link and the timer.
 */
#include <ctype.h>
#include <gnutls/abstract.h>
#include <gnutls/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "flow/consensus/byzantine.h"
#include "flow/consensus/fsm.h"
#include "flow/consensus/peer_link.h"
#include "flow/flow_int.h"
#include "mesh/identity.h"

#define PN_QUEUE_MAX 4096
#define PN_START_RETRIES 50
#define PN_RETRY_MS 100
#define PN_IDLE_MS 10000
#define PN_HANDSHAKE_MS 2000
#define PN_MAX_STREAMS 1024
#define PN_PENDING_MAX 1024
#define PN_PENDING_TTL_MS 5000 /* a member down longer is left to view changes / checkpoints */
#define PN_KEY_DER_MAX 64

enum { PN_T_START = 1 };

/* ---- the member list --------------------------------------------------------------------- */

static int pn__field(const char **p, char *out, size_t size)
{
    while (**p == ' ' || **p == '\t') {
        (*p)++;
    }
    size_t n = 0;
    while (**p && **p != ' ' && **p != '\t') {
        if (n + 1 >= size) {
            return -1;
        }
        out[n++] = *(*p)++;
    }
    out[n] = '\0';
    return (int)n;
}

int flow_pbft_members_parse(const char *text, flow_pbft_member **out, size_t *n, char *err,
                            size_t errsize)
{
    *out = NULL;
    *n = 0;
    flow_pbft_member *v = calloc(FLOW_PBFT_MAX_MEMBERS, sizeof *v);
    if (v == NULL) {
        snprintf(err, errsize, "out of memory");
        return FLOW_ENOMEM;
    }
    size_t count = 0, lineno = 0;
    const char *s = text ? text : "";
    while (*s) {
        lineno++;
        size_t len = strcspn(s, "\n,");
        char line[1024];
        if (len >= sizeof line) {
            snprintf(err, errsize, "member %zu: line too long", lineno);
            goto bad;
        }
        memcpy(line, s, len);
        line[len] = '\0';
        s += len + (s[len] != '\0');
        char *hash = strchr(line, '#');
        if (hash) {
            *hash = '\0';
        }
        const char *p = line;
        char id[16], extra[8];
        flow_pbft_member m = {0};
        int k = pn__field(&p, id, sizeof id);
        if (k == 0) {
            continue; /* blank or comment */
        }
        char *end = NULL;
        unsigned long idv = k > 0 ? strtoul(id, &end, 10) : 0;
        if (k < 0 || *end != '\0' || idv == 0 || idv > FLOW_PBFT_MAX_MEMBERS) {
            snprintf(err, errsize, "member %zu: id must be 1..%d", lineno, FLOW_PBFT_MAX_MEMBERS);
            goto bad;
        }
        m.id = (uint32_t)idv;
        if (pn__field(&p, m.address, sizeof m.address) <= 0 || strchr(m.address, ':') == NULL) {
            snprintf(err, errsize, "member %lu: expected ID HOST:PORT KEY_HEX [API_URL]", idv);
            goto bad;
        }
        k = pn__field(&p, m.key, sizeof m.key);
        bool hex = k > 0 && k % 2 == 0;
        for (int i = 0; hex && i < k; i++) {
            hex = isxdigit((unsigned char)m.key[i]) != 0;
        }
        if (!hex || (size_t)k / 2 > PN_KEY_DER_MAX) {
            snprintf(err, errsize, "member %lu: the key must be the public key's DER in hex", idv);
            goto bad;
        }
        if (pn__field(&p, m.api, sizeof m.api) < 0 || pn__field(&p, extra, sizeof extra) != 0) {
            snprintf(err, errsize, "member %lu: too many fields or too long", idv);
            goto bad;
        }
        if (count == FLOW_PBFT_MAX_MEMBERS) {
            snprintf(err, errsize, "more than %d members", FLOW_PBFT_MAX_MEMBERS);
            goto bad;
        }
        for (size_t i = 0; i < count; i++) {
            if (v[i].id == m.id) {
                snprintf(err, errsize, "member %u listed twice", m.id);
                goto bad;
            }
        }
        v[count++] = m;
    }
    if (count < 4) {
        snprintf(err, errsize, "PBFT needs at least 4 members (n = 3f+1), got %zu", count);
        goto bad;
    }
    flow_pbft_member *sorted = calloc(count, sizeof *sorted);
    if (sorted == NULL) {
        snprintf(err, errsize, "out of memory");
        free(v);
        return FLOW_ENOMEM;
    }
    for (size_t i = 0; i < count; i++) {
        if (v[i].id > count) {
            snprintf(err, errsize, "member ids must be 1..%zu (got %u)", count, v[i].id);
            free(sorted);
            goto bad;
        }
        sorted[v[i].id - 1] = v[i];
    }
    free(v);
    *out = sorted;
    *n = count;
    return 0;
bad:
    free(v);
    return FLOW_EINVAL;
}

/* ---- keys -------------------------------------------------------------------------------- */

static int pn__nibble(char c)
{
    return c >= '0' && c <= '9'   ? c - '0'
           : c >= 'a' && c <= 'f' ? c - 'a' + 10
           : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                  : -1;
}

static int pn__unhex(const char *hex, uint8_t *out, size_t max, size_t *len)
{
    size_t n = strlen(hex);
    if (n % 2 || n / 2 > max) {
        return -1;
    }
    for (size_t i = 0; i < n / 2; i++) {
        int hi = pn__nibble(hex[2 * i]), lo = pn__nibble(hex[2 * i + 1]);
        if (hi < 0 || lo < 0) {
            return -1;
        }
        out[i] = (uint8_t)(hi << 4 | lo);
    }
    *len = n / 2;
    return 0;
}

/* A member's Ed25519 public key from its SPKI DER hex, and its node id. */
static int pn__pubkey(const char *hex, gnutls_pubkey_t *pub, uint8_t node[IDENTITY_ID_LEN])
{
    uint8_t der[PN_KEY_DER_MAX];
    size_t len;
    *pub = NULL;
    if (pn__unhex(hex, der, sizeof der, &len) != 0) {
        return -1;
    }
    gnutls_datum_t d = {der, (unsigned)len};
    if (gnutls_pubkey_init(pub) < 0) {
        return -1;
    }
    if (gnutls_pubkey_import(*pub, &d, GNUTLS_X509_FMT_DER) < 0 ||
        gnutls_pubkey_get_pk_algorithm(*pub, NULL) != GNUTLS_PK_EDDSA_ED25519 ||
        gnutls_hash_fast(GNUTLS_DIG_SHA256, der, len, node) < 0) {
        gnutls_pubkey_deinit(*pub);
        *pub = NULL;
        return -1;
    }
    return 0;
}

/* The identity's SPKI DER (malloc'd by GnuTLS: gnutls_free). */
static int pn__own_der(const identity *id, gnutls_datum_t *der)
{
    gnutls_pubkey_t pub;
    if (gnutls_pubkey_init(&pub) < 0) {
        return -1;
    }
    int rc = gnutls_pubkey_import_x509(pub, identity_cert(id), 0) < 0 ||
                     gnutls_pubkey_export2(pub, GNUTLS_X509_FMT_DER, der) < 0
                 ? -1
                 : 0;
    gnutls_pubkey_deinit(pub);
    return rc;
}

int flow_pbft_identity(const char *data_dir, char *key_hex, size_t key_size, char node_hex[65],
                       char *err, size_t errsize)
{
    identity_config ic = {.data_dir = data_dir};
    identity *id = NULL;
    int rc = identity_load_or_create(&ic, &id, err, errsize);
    if (rc != IDENTITY_OK) {
        return rc;
    }
    gnutls_datum_t der = {NULL, 0};
    if (pn__own_der(id, &der) != 0 || key_size < 2 * (size_t)der.size + 1) {
        snprintf(err, errsize, "cannot export the public key");
        gnutls_free(der.data);
        identity_free(id);
        return FLOW_EINVAL;
    }
    for (unsigned i = 0; i < der.size; i++) {
        snprintf(key_hex + (size_t)2 * i, 3, "%02x", der.data[i]);
    }
    gnutls_free(der.data);
    identity_node_id_hex(id, node_hex);
    identity_free(id);
    return 0;
}

/* ---- the actor --------------------------------------------------------------------------- */

typedef struct pn_cmd {
    uint64_t cookie;
    json_t *cmd;
    struct pn_cmd *next;
} pn_cmd;

typedef struct pn_state {
    const flow_options *o;
    const flow_pbft_config *cfg;
    sup_rt *rt;
    sup_pid self;
    uint32_t n, me; /* me: replica index = member id - 1 */
    identity *id;
    gnutls_privkey_t key;
    gnutls_pubkey_t pubs[FLOW_PBFT_MAX_MEMBERS];
    uint8_t nodes[FLOW_PBFT_MAX_MEMBERS][IDENTITY_ID_LEN];
    char node_hex[IDENTITY_ID_HEX_LEN + 1];
    pbft_replica *r;
    pbft_client *c;
    peer_link *link;
    uv_timer_t *timer;
    pn_cmd *qhead, *qtail;
    size_t qlen;
    uint64_t inflight; /* cookie of the client's outstanding request, 0: none */
    int role_sent;     /* last "leader" sent to the registry, -1: none */
    uint32_t primary_sent;
    uint64_t seen_view; /* the view this node last saw itself primary of, +1 (0: none) */
    int attempts;
    bool pumping;
    uint64_t submitted, refused, local_dropped;
} pn_state;

static void pn__pump(pn_state *st);

static void pn__refuse(pn_state *st, uint64_t cookie, int code, const char *msg)
{
    st->refused++;
    flow__cast_json(
        st->rt, st->self, sup_whereis(st->rt, FLOW_N_REGISTRY), FLOW_TAG_REFUSED,
        json_pack("{s:I, s:i, s:s}", "c", (json_int_t)cookie, "code", code, "message", msg));
}

/* The replica applied a request: the registry applies it too, in the same order. */
static void pn__executed(void *user, uint64_t seq, uint32_t client, uint64_t ts, const uint8_t *op,
                         size_t len, int32_t result)
{
    (void)seq;
    (void)ts;
    (void)result;
    pn_state *st = user;
    json_t *e = flow_entry_parse(op, len);
    const char *t = json_string_value(json_object_get(e, "t"));
    if (t == NULL || strcmp(t, "cmd") != 0) {
        json_decref(e);
        return;
    }
    /* only the signing client's own member id may be named as origin */
    if (json_integer_value(json_object_get(e, "o")) != (json_int_t)client + 1) {
        json_object_set_new(e, "o", json_integer(0));
    }
    flow__cast_json(st->rt, st->self, sup_whereis(st->rt, FLOW_N_REGISTRY), FLOW_TAG_COMMITTED, e);
}

/* A state transfer replaced the replica's state: the registry's copy follows. */
static void pn__installed(void *user, uint64_t seq)
{
    (void)seq;
    pn_state *st = user;
    char *text = flow_fsm_snapshot_text(pbft_replica_fsm(st->r));
    json_t *snap = text ? json_loads(text, 0, NULL) : NULL;
    free(text);
    const json_t *state = json_object_get(snap, "state");
    if (state) {
        flow__cast_json(st->rt, st->self, sup_whereis(st->rt, FLOW_N_REGISTRY), FLOW_TAG_RESTORE,
                        json_incref((json_t *)state));
        st->role_sent = -1; /* the registry forgets it acts when its state is replaced */
    }
    json_decref(snap);
}

static void pn__send(pn_state *st, uint32_t idx, const pbft_out *o)
{
    if (st->link == NULL) {
        st->local_dropped++;
        return;
    }
    (void)peer_link_send(st->link, idx + 1, o->data, o->len);
}

/* Sends a drained outbox; messages for this node go to its replica or client at once. */
static bool pn__deliver(pn_state *st, pbft_outbox *ob, bool from_client)
{
    uint64_t now = sup_rt_now(st->rt);
    bool local = false;
    for (size_t i = 0; i < ob->n; i++) {
        const pbft_out *o = &ob->v[i];
        if (o->dest == PBFT_TO_CLIENT) {
            if (o->to == st->me) {
                (void)pbft_client_receive(st->c, now, o->data, o->len);
                local = true;
            } else if (o->to < st->n) {
                pn__send(st, o->to, o);
            }
        } else if (o->dest == PBFT_TO_REPLICA) {
            if (o->to == st->me) {
                (void)pbft_replica_receive(st->r, now, st->me, o->data, o->len);
                local = true;
            } else if (o->to < st->n) {
                pn__send(st, o->to, o);
            }
        } else {
            for (uint32_t k = 0; k < st->n; k++) {
                if (k != st->me) {
                    pn__send(st, k, o);
                }
            }
            if (from_client) { /* a client's broadcast includes this node's replica */
                (void)pbft_replica_receive(st->r, now, st->me, o->data, o->len);
                local = true;
            }
        }
    }
    return local;
}

/* Drains an outbox into *tmp (the core keeps appending to its own while we deliver). */
static void pn__take(pbft_outbox *ob, pbft_outbox *tmp)
{
    *tmp = *ob;
    *ob = (pbft_outbox){0};
}

static void pn__free_outbox(pbft_outbox *ob)
{
    pbft_outbox_clear(ob);
    free(ob->v);
}

static void pn__submit_next(pn_state *st)
{
    while (!pbft_client_busy(st->c) && st->qhead) {
        pn_cmd *q = st->qhead;
        st->qhead = q->next;
        if (st->qhead == NULL) {
            st->qtail = NULL;
        }
        st->qlen--;
        struct raft_buffer buf = {0};
        int rc = flow_entry_cmd(q->cmd, st->cfg->id, q->cookie, &buf);
        if (rc == 0) {
            rc = pbft_client_submit(st->c, sup_rt_now(st->rt), buf.base, buf.len);
            rc = rc == 0 ? 0 : rc == PBFT_ENOMEM ? FLOW_ENOMEM : FLOW_EINVAL;
        }
        raft_free(buf.base);
        if (rc == 0) {
            st->inflight = q->cookie;
            st->submitted++;
        } else {
            pn__refuse(st, q->cookie, rc, "the command does not fit a PBFT request");
        }
        json_decref(q->cmd);
        free(q);
    }
}

static void pn__on_timer(uv_timer_t *t)
{
    pn_state *st = t->data;
    uint64_t now = sup_rt_now(st->rt);
    pbft_replica_tick(st->r, now);
    pbft_client_tick(st->c, now);
    pn__pump(st);
}

static void pn__rearm(pn_state *st)
{
    uint64_t a = pbft_replica_next_deadline(st->r), b = pbft_client_next_deadline(st->c);
    uint64_t next = a < b ? a : b, now = sup_rt_now(st->rt);
    if (next == UINT64_MAX) {
        uv_timer_stop(st->timer);
        return;
    }
    uv_timer_start(st->timer, pn__on_timer, next > now ? next - now : 0, 0);
}

static json_t *pn__primary_info(const pn_state *st, uint32_t p)
{
    const flow_pbft_member *m = &st->cfg->members[p];
    return json_pack("{s:I, s:s, s:s?}", "id", (json_int_t)m->id, "address", m->address, "api",
                     m->api[0] ? m->api : NULL);
}

/* Tells the registry whether it acts (primary + settled) and who the primary is. */
static void pn__role(pn_state *st)
{
    uint64_t view = pbft_replica_view(st->r);
    uint32_t p = pbft_replica_primary(st->r);
    bool changing = pbft_replica_view_changing(st->r);
    if (!changing && p == st->me && st->seen_view != view + 1) {
        /* primary of a view not seen yet: make something execute in it so that it settles */
        st->seen_view = view + 1;
        flow__cast_json(st->rt, st->self, sup_whereis(st->rt, FLOW_N_REGISTRY), FLOW_TAG_CMD,
                        json_pack("{s:s}", "cmd", "tick"));
    }
    bool acts = !changing && p == st->me && pbft_replica_settled(st->r);
    if ((int)acts == st->role_sent && p == st->primary_sent) {
        return;
    }
    st->role_sent = acts;
    st->primary_sent = p;
    flow__cast_json(st->rt, st->self, sup_whereis(st->rt, FLOW_N_REGISTRY), FLOW_TAG_ROLE,
                    json_pack("{s:b, s:o}", "leader", acts, "known",
                              changing ? json_null() : pn__primary_info(st, p)));
}

/* Delivers everything the cores queued (local deliveries may queue more), submits the next
 * command, rearms the timer and reports the role. */
static void pn__pump(pn_state *st)
{
    if (st->pumping) { /* a local delivery inside a delivery: the outer loop goes on */
        return;
    }
    st->pumping = true;
    for (int round = 0; round < 10000; round++) {
        pbft_outbox a, b;
        pn__take(pbft_replica_outbox(st->r), &a);
        pn__take(pbft_client_outbox(st->c), &b);
        bool more = a.n || b.n;
        pn__deliver(st, &a, false);
        pn__deliver(st, &b, true);
        pn__free_outbox(&a);
        pn__free_outbox(&b);
        pn__submit_next(st);
        if (!more && pbft_replica_outbox(st->r)->n == 0 && pbft_client_outbox(st->c)->n == 0) {
            break;
        }
    }
    st->pumping = false;
    pn__rearm(st);
    pn__role(st);
}

/* A message the link proved comes from member `from`. */
static int pn__recv(void *user, uint32_t from, const uint8_t *data, size_t len)
{
    pn_state *st = user;
    if (from == 0 || from > st->n || len < 4) {
        return -1;
    }
    uint64_t now = sup_rt_now(st->rt);
    int rc = data[3] == PBFT_REPLY ? pbft_client_receive(st->c, now, data, len)
                                   : pbft_replica_receive(st->r, now, from - 1, data, len);
    pn__pump(st);
    return rc < 0 ? -1 : 0;
}

/* ---- cluster_status ---------------------------------------------------------------------- */

static json_t *pn__status(const pn_state *st)
{
    pbft_stats s;
    pbft_replica_get_stats(st->r, &s);
    peer_link_stats ls = {0};
    if (st->link) {
        peer_link_get_stats(st->link, &ls);
    }
    json_t *members = json_array(), *rej = json_object();
    for (uint32_t i = 0; i < st->n; i++) {
        const flow_pbft_member *m = &st->cfg->members[i];
        char hex[IDENTITY_ID_HEX_LEN + 1];
        for (size_t k = 0; k < IDENTITY_ID_LEN; k++) {
            snprintf(hex + 2 * k, 3, "%02x", st->nodes[i][k]);
        }
        json_array_append_new(members,
                              json_pack("{s:I, s:s, s:s, s:s?}", "id", (json_int_t)m->id, "address",
                                        m->address, "node", hex, "api", m->api[0] ? m->api : NULL));
        char key[16];
        snprintf(key, sizeof key, "%u", m->id);
        json_object_set_new(rej, key, json_integer((json_int_t)pbft_replica_rejected(st->r, i)));
    }
    json_object_set_new(rej, "client",
                        json_integer((json_int_t)pbft_replica_rejected(st->r, PBFT_FROM_CLIENT)));
    uint32_t p = pbft_replica_primary(st->r);
    json_t *stats =
        json_pack("{s:I, s:I, s:I, s:I, s:I, s:I, s:I}", "executed", (json_int_t)s.executed,
                  "applied", (json_int_t)s.applied, "view_changes", (json_int_t)s.view_changes,
                  "checkpoints", (json_int_t)s.checkpoints, "transfers", (json_int_t)s.transfers,
                  "rejected", (json_int_t)s.rejected, "conflicts", (json_int_t)s.conflicts);
    json_t *link = json_pack("{s:I, s:I, s:I, s:I, s:I, s:I, s:I}", "sent", (json_int_t)ls.sent,
                             "received", (json_int_t)ls.received, "unknown", (json_int_t)ls.unknown,
                             "rejected", (json_int_t)ls.rejected, "dropped",
                             (json_int_t)ls.dropped + (json_int_t)st->local_dropped, "retries",
                             (json_int_t)ls.retries, "requeued", (json_int_t)ls.requeued);
    json_t *client =
        json_pack("{s:b, s:I, s:I, s:I, s:I}", "busy", pbft_client_busy(st->c), "view",
                  (json_int_t)pbft_client_view(st->c), "queued", (json_int_t)st->qlen, "submitted",
                  (json_int_t)st->submitted, "refused", (json_int_t)st->refused);
    return json_pack("{s:s, s:I, s:I, s:I, s:s, s:s, s:I, s:I, s:b, s:b, s:I, s:I, s:I, s:o, "
                     "s:o, s:o, s:o, s:o}",
                     "mode", "pbft", "id", (json_int_t)st->cfg->id, "n", (json_int_t)st->n, "f",
                     (json_int_t)((st->n - 1) / 3), "address", st->cfg->members[st->me].address,
                     "node", st->node_hex, "view", (json_int_t)pbft_replica_view(st->r), "primary",
                     (json_int_t)st->cfg->members[p].id, "view_changing",
                     pbft_replica_view_changing(st->r), "acting", st->role_sent == 1,
                     "last_executed", (json_int_t)pbft_replica_last_executed(st->r),
                     "stable_checkpoint", (json_int_t)pbft_replica_stable(st->r), "rejected",
                     (json_int_t)s.rejected, "rejected_by", rej, "stats", stats, "link", link,
                     "client", client, "members", members);
}

static void pn__fwd(pn_state *st, const sup_msg *m)
{
    sup_from from;
    memcpy(&from, m->data, sizeof from);
    json_t *j = json_loadb((const char *)m->data + sizeof from, m->len - sizeof from,
                           JSON_REJECT_DUPLICATES, NULL);
    const char *op = json_string_value(json_object_get(j, "op"));
    if (op && strcmp(op, "cluster_status") == 0) {
        flow__reply_ok(st->rt, from, pn__status(st));
    } else {
        flow__reply_err(st->rt, from, FLOW_ESTATE,
                        "%.64s: the PBFT member list is static (restart the nodes with a new "
                        "--members list)",
                        op ? op : "request");
    }
    json_decref(j);
}

/* ---- behaviour --------------------------------------------------------------------------- */

static int pn__setup(pn_state *st, char *err, size_t errsize)
{
    const flow_pbft_config *cfg = st->cfg;
    identity_config ic = {.data_dir = cfg->data_dir};
    int rc = identity_load_or_create(&ic, &st->id, err, errsize);
    if (rc != IDENTITY_OK) {
        return rc;
    }
    identity_node_id_hex(st->id, st->node_hex);
    if (gnutls_privkey_init(&st->key) < 0 ||
        gnutls_privkey_import_x509(st->key, identity_key(st->id), 0) < 0 ||
        gnutls_privkey_get_pk_algorithm(st->key, NULL) != GNUTLS_PK_EDDSA_ED25519) {
        snprintf(err, errsize, "PBFT needs an Ed25519 node key (%s is %s)",
                 identity_key_path(st->id), identity_key_type(st->id));
        return FLOW_EINVAL;
    }
    for (uint32_t i = 0; i < st->n; i++) {
        if (pn__pubkey(cfg->members[i].key, &st->pubs[i], st->nodes[i]) != 0) {
            snprintf(err, errsize, "member %u: the key is not an Ed25519 public key (SPKI DER hex)",
                     cfg->members[i].id);
            return FLOW_EINVAL;
        }
    }
    if (memcmp(st->nodes[st->me], identity_node_id(st->id), IDENTITY_ID_LEN) != 0) {
        snprintf(err, errsize,
                 "member %u's key in the member list is not this node's key (node id %s)", cfg->id,
                 st->node_hex);
        return FLOW_EINVAL;
    }
    pbft_config pc = {.n = st->n,
                      .id = st->me,
                      .key = st->key,
                      .replicas = st->pubs,
                      .clients = st->pubs,
                      .nclients = st->n,
                      .checkpoint = cfg->checkpoint,
                      .view_change_ms = cfg->view_change_ms,
                      .retention_set = true,
                      .retention = flow__retention(st->o),
                      .executed = pn__executed,
                      .installed = pn__installed,
                      .user = st};
    int perr = 0;
    st->r = pbft_replica_new(&pc, &perr);
    pbft_client_config cc = {.n = st->n,
                             .id = st->me,
                             .key = st->key,
                             .replicas = st->pubs,
                             .retry_ms = cfg->retry_ms ? cfg->retry_ms : 300};
    st->c = st->r ? pbft_client_new(&cc, &perr) : NULL;
    if (st->c == NULL) {
        snprintf(err, errsize, "PBFT core: %s", pbft_strerror(perr));
        return FLOW_EINVAL;
    }
    st->timer = malloc(sizeof *st->timer);
    if (st->timer == NULL) {
        snprintf(err, errsize, "out of memory");
        return FLOW_ENOMEM;
    }
    uv_timer_init(sup_rt_loop(st->rt), st->timer);
    st->timer->data = st;
    return 0;
}

static int pn__open(pn_state *st, char *err, size_t errsize)
{
    peer_link_config lc = {
        .id = st->id,
        .listen = st->cfg->members[st->me].address,
        .msg_max = PBFT_MSG_MAX,
        .pending_max = PN_PENDING_MAX,
        .pending_ttl_ms = PN_PENDING_TTL_MS,
        .idle_timeout_ms = PN_IDLE_MS,
        .handshake_timeout_ms = PN_HANDSHAKE_MS,
        .max_streams = PN_MAX_STREAMS,
        .recv = pn__recv,
        .user = st,
        .name = "flow pbft",
    };
    int rc = peer_link_open(sup_rt_loop(st->rt), &lc, &st->link, err, errsize);
    for (uint32_t i = 0; rc == 0 && i < st->n; i++) {
        if (i != st->me && peer_link_set(st->link, st->cfg->members[i].id,
                                         st->cfg->members[i].address, st->nodes[i]) != 0) {
            snprintf(err, errsize, "member %u: bad address %s", st->cfg->members[i].id,
                     st->cfg->members[i].address);
            rc = FLOW_EINVAL;
        }
    }
    return rc;
}

static void pn__cleanup(pn_state *st);

static void pn__stop(sup_actor *self, const char *why)
{
    sup_reason r = sup_reason_error(why);
    sup_stop(self, &r);
}

static int pn_init(sup_actor *self, void *state, void *arg)
{
    pn_state *st = state;
    st->o = arg;
    st->cfg = st->o ? st->o->pbft : NULL;
    st->rt = sup_self_rt(self);
    st->self = sup_self(self);
    st->role_sent = -1;
    st->primary_sent = UINT32_MAX;
    sup_set_label(self, FLOW_N_PBFT);
    if (st->cfg == NULL || st->cfg->data_dir == NULL || st->cfg->members == NULL ||
        st->cfg->n < 4 || st->cfg->n > FLOW_PBFT_MAX_MEMBERS || st->cfg->id == 0 ||
        st->cfg->id > st->cfg->n || st->cfg->members[st->cfg->id - 1].id != st->cfg->id ||
        sup_rt_loop(st->rt) == NULL) {
        pn__stop(self, "pbft needs a data_dir, 4..16 members with ids 1..n (this node among "
                       "them) and a libuv runtime");
        return SUP_EINVAL;
    }
    st->n = (uint32_t)st->cfg->n;
    st->me = st->cfg->id - 1;
    char err[512] = "";
    if (pn__setup(st, err, sizeof err) != 0) {
        fprintf(stderr, "macula: flow pbft: %s\n", err);
        pn__cleanup(st);
        pn__stop(self, err);
        return SUP_EINVAL;
    }
    /* the registry's copy starts over with the replica's (empty) state */
    flow__cast_json(st->rt, st->self, sup_whereis(st->rt, FLOW_N_REGISTRY), FLOW_TAG_RESET, NULL);
    sup_register(st->rt, FLOW_N_PBFT, st->self);
    int t = PN_T_START;
    sup_send_after(self, 0, FLOW_TAG_INTERNAL, &t, sizeof t);
    return 0;
}

static void pn_info(sup_actor *self, void *state, const sup_msg *m)
{
    pn_state *st = state;
    if (m->kind != SUP_MSG_TIMER || m->tag != FLOW_TAG_INTERNAL || m->len != sizeof(int)) {
        return;
    }
    int t;
    memcpy(&t, m->data, sizeof t);
    if (t != PN_T_START) {
        return;
    }
    char err[512] = "";
    if (pn__open(st, err, sizeof err) == 0) {
        pn__pump(st);
    } else if (++st->attempts < PN_START_RETRIES) { /* the port may still be closing */
        peer_link_close(st->link);
        st->link = NULL;
        sup_send_after(self, PN_RETRY_MS, FLOW_TAG_INTERNAL, &t, sizeof t);
    } else {
        sup_crash(self, "pbft did not start: %s", err);
    }
}

static void pn__propose(pn_state *st, const sup_msg *m)
{
    json_t *j = flow__msg_json(m);
    uint64_t cookie = (uint64_t)json_integer_value(json_object_get(j, "c"));
    json_t *cmd = json_object_get(j, "cmd");
    pn_cmd *q = json_is_object(cmd) && st->qlen < PN_QUEUE_MAX ? calloc(1, sizeof *q) : NULL;
    if (q == NULL) {
        pn__refuse(st, cookie, FLOW_ECONSENSUS,
                   json_is_object(cmd) ? "the PBFT client's queue is full" : "not a command");
        json_decref(j);
        return;
    }
    q->cookie = cookie;
    q->cmd = json_incref(cmd);
    if (st->qtail) {
        st->qtail->next = q;
    } else {
        st->qhead = q;
    }
    st->qtail = q;
    st->qlen++;
    json_decref(j);
    pn__pump(st);
}

static void pn_cast(sup_actor *self, void *state, const sup_msg *m)
{
    (void)self;
    pn_state *st = state;
    if (m->tag == FLOW_TAG_PROPOSE) {
        pn__propose(st, m);
    } else if (m->tag == FLOW_TAG_FWD && m->len > sizeof(sup_from)) {
        pn__fwd(st, m);
    }
}

static void pn__timer_closed(uv_handle_t *h)
{
    free(h);
}

/* Releases everything pn__setup and pn__open made (terminate, or a failed init). */
static void pn__cleanup(pn_state *st)
{
    peer_link_close(st->link); /* no link callback runs afterwards */
    st->link = NULL;
    if (st->timer) {
        uv_timer_stop(st->timer);
        uv_close((uv_handle_t *)st->timer, pn__timer_closed);
        st->timer = NULL;
    }
    while (st->qhead) {
        pn_cmd *n = st->qhead->next;
        json_decref(st->qhead->cmd);
        free(st->qhead);
        st->qhead = n;
    }
    pbft_client_free(st->c);
    pbft_replica_free(st->r);
    for (uint32_t i = 0; i < FLOW_PBFT_MAX_MEMBERS; i++) {
        if (st->pubs[i]) {
            gnutls_pubkey_deinit(st->pubs[i]);
        }
    }
    if (st->key) {
        gnutls_privkey_deinit(st->key);
    }
    identity_free(st->id);
}

static void pn_terminate(sup_actor *self, void *state, const sup_reason *reason)
{
    (void)self;
    (void)reason;
    pn__cleanup(state);
}

static const sup_behaviour pn_behaviour = {
    .name = FLOW_N_PBFT,
    .state_size = sizeof(pn_state),
    .init = pn_init,
    .handle_cast = pn_cast,
    .handle_info = pn_info,
    .terminate = pn_terminate,
};

int flow_pbft_start(sup_rt *rt, sup_pid parent, void *arg, void *extra, sup_pid *out,
                    sup_reason *why)
{
    (void)extra;
    return sup_spawn(rt, parent, &pn_behaviour, arg, SUP_SPAWN_LINK, out, why);
}
