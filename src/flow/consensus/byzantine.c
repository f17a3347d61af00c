/* flow/consensus/byzantine.c — PBFT replica and client, sans I/O (see byzantine.h). */
#include "flow/consensus/byzantine.h"

#include <gnutls/crypto.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PBFT__HDR 8 /* "PB" version type sender:u32 */
#define PBFT__VERSION 1
#define PBFT__OFF UINT64_MAX  /* timer off */
#define PBFT__FUTURE_MAX 4096 /* buffered messages of a view not yet installed */
#define PBFT__CP_SLOTS 8      /* checkpoint sequence numbers collected at once */

const char *pbft_strerror(int err)
{
    switch (err) {
    case PBFT_OK: return "ok";
    case PBFT_EINVAL: return "invalid argument";
    case PBFT_ENOMEM: return "out of memory";
    case PBFT_EBADMSG: return "malformed or invalid message";
    case PBFT_EBADSIG: return "bad or missing signature";
    case PBFT_EBUSY: return "a request is outstanding";
    case PBFT_ECRYPTO: return "cryptographic operation failed";
    default: return "unknown error";
    }
}

/* ---- crypto ------------------------------------------------------------------------------ */

int pbft_digest(const void *data, size_t len, uint8_t out[PBFT_DIGEST_LEN])
{
    return gnutls_hash_fast(GNUTLS_DIG_SHA256, data, len, out) < 0 ? PBFT_ECRYPTO : 0;
}

static int pbft__sign(gnutls_privkey_t key, const uint8_t *d, size_t n, uint8_t sig[PBFT_SIG_LEN])
{
    gnutls_datum_t data = {(unsigned char *)d, (unsigned)n};
    gnutls_datum_t s = {NULL, 0};
    int rc = gnutls_privkey_sign_data2(key, GNUTLS_SIGN_EDDSA_ED25519, 0, &data, &s);
    if (rc < 0 || s.size != PBFT_SIG_LEN) {
        gnutls_free(s.data);
        return PBFT_ECRYPTO;
    }
    memcpy(sig, s.data, PBFT_SIG_LEN);
    gnutls_free(s.data);
    return 0;
}

static bool pbft__verify(gnutls_pubkey_t pub, const uint8_t *d, size_t n, const uint8_t *sig)
{
    gnutls_datum_t data = {(unsigned char *)d, (unsigned)n};
    gnutls_datum_t s = {(unsigned char *)sig, PBFT_SIG_LEN};
    return gnutls_pubkey_verify_data2(pub, GNUTLS_SIGN_EDDSA_ED25519, 0, &data, &s) >= 0;
}

/* ---- writer ------------------------------------------------------------------------------ */

typedef struct pbft__buf {
    uint8_t *p;
    size_t n, cap;
    bool err;
} pbft__buf;

static void pbft__put(pbft__buf *b, const void *d, size_t n)
{
    if (b->err) {
        return;
    }
    if (b->n + n > PBFT_MSG_MAX) {
        b->err = true;
        return;
    }
    if (b->n + n > b->cap) {
        size_t cap = b->cap ? b->cap : 128;
        while (cap < b->n + n) {
            cap *= 2;
        }
        uint8_t *p = realloc(b->p, cap);
        if (p == NULL) {
            b->err = true;
            return;
        }
        b->p = p;
        b->cap = cap;
    }
    if (n) {
        memcpy(b->p + b->n, d, n);
    }
    b->n += n;
}

static void pbft__u8(pbft__buf *b, uint8_t v)
{
    pbft__put(b, &v, 1);
}

static void pbft__u32(pbft__buf *b, uint32_t v)
{
    uint8_t x[4] = {(uint8_t)(v >> 24), (uint8_t)(v >> 16), (uint8_t)(v >> 8), (uint8_t)v};
    pbft__put(b, x, 4);
}

static void pbft__u64(pbft__buf *b, uint64_t v)
{
    pbft__u32(b, (uint32_t)(v >> 32));
    pbft__u32(b, (uint32_t)v);
}

/* A length-prefixed blob. */
static void pbft__blob(pbft__buf *b, const uint8_t *d, size_t n)
{
    pbft__u32(b, (uint32_t)n);
    pbft__put(b, d, n);
}

static void pbft__header(pbft__buf *b, pbft_msg_type type, uint32_t sender)
{
    pbft__put(b, "PB", 2);
    pbft__u8(b, PBFT__VERSION);
    pbft__u8(b, (uint8_t)type);
    pbft__u32(b, sender);
}

/* Signs what b holds and hands the message over (*out malloc'd); frees b on failure. */
static int pbft__finish(gnutls_privkey_t key, pbft__buf *b, uint8_t **out, size_t *outlen)
{
    uint8_t sig[PBFT_SIG_LEN];
    int rc = b->err ? PBFT_ENOMEM : pbft__sign(key, b->p, b->n, sig);
    if (rc == 0) {
        pbft__put(b, sig, sizeof sig);
        rc = b->err ? PBFT_ENOMEM : 0;
    }
    if (rc != 0) {
        free(b->p);
        *out = NULL;
        *outlen = 0;
        return rc;
    }
    *out = b->p;
    *outlen = b->n;
    return 0;
}

int pbft_wire_encode(gnutls_privkey_t key, const pbft_wire *w, uint8_t **out, size_t *outlen)
{
    pbft__buf b = {0};
    uint8_t d[PBFT_DIGEST_LEN] = {0};
    pbft__header(&b, w->type, w->sender);
    switch (w->type) {
    case PBFT_REQUEST:
        pbft__u64(&b, w->ts);
        pbft__blob(&b, w->data, w->len);
        break;
    case PBFT_PREPREPARE:
        if (w->len && pbft_digest(w->data, w->len, d) != 0) {
            free(b.p);
            return PBFT_ECRYPTO;
        }
        pbft__u64(&b, w->view);
        pbft__u64(&b, w->seq);
        pbft__put(&b, d, sizeof d);
        pbft__blob(&b, w->data, w->len);
        break;
    case PBFT_PREPARE:
    case PBFT_COMMIT:
        pbft__u64(&b, w->view);
        pbft__u64(&b, w->seq);
        pbft__put(&b, w->digest, PBFT_DIGEST_LEN);
        break;
    case PBFT_CHECKPOINT:
        pbft__u64(&b, w->seq);
        pbft__put(&b, w->digest, PBFT_DIGEST_LEN);
        break;
    case PBFT_REPLY:
        pbft__u64(&b, w->view);
        pbft__u32(&b, w->client);
        pbft__u64(&b, w->ts);
        pbft__u32(&b, (uint32_t)w->result);
        break;
    case PBFT_FETCH: pbft__u64(&b, w->seq); break;
    case PBFT_STATE:
        pbft__u64(&b, w->seq);
        pbft__blob(&b, w->data, w->len);
        break;
    default: free(b.p); return PBFT_EINVAL;
    }
    return pbft__finish(key, &b, out, outlen);
}

/* ---- reader ------------------------------------------------------------------------------ */

typedef struct pbft__rd {
    const uint8_t *p;
    size_t n;
    bool err;
} pbft__rd;

static const uint8_t *pbft__take(pbft__rd *r, size_t n)
{
    if (r->err || r->n < n) {
        r->err = true;
        return NULL;
    }
    const uint8_t *p = r->p;
    r->p += n;
    r->n -= n;
    return p;
}

static uint32_t pbft__ru32(pbft__rd *r)
{
    const uint8_t *p = pbft__take(r, 4);
    return p ? (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3] : 0;
}

static uint64_t pbft__ru64(pbft__rd *r)
{
    uint64_t hi = pbft__ru32(r);
    return hi << 32 | pbft__ru32(r);
}

/* A length-prefixed blob of at most max bytes. */
static const uint8_t *pbft__rblob(pbft__rd *r, size_t max, size_t *len)
{
    uint32_t n = pbft__ru32(r);
    if (n > max) {
        r->err = true;
    }
    *len = r->err ? 0 : n;
    return r->err ? NULL : pbft__take(r, n);
}

/* ---- messages ---------------------------------------------------------------------------- */

typedef struct pbft__keys {
    uint32_t n, nclients;
    const gnutls_pubkey_t *replicas, *clients;
} pbft__keys;

typedef struct pbft__msg {
    pbft_msg_type type;
    uint32_t sender;
    uint64_t view, seq, ts, stable;
    uint32_t client;
    int32_t result;
    uint8_t digest[PBFT_DIGEST_LEN];
    const uint8_t *data; /* op, request, state */
    size_t len;
    pbft__rd rest;      /* view change / new view lists */
    const uint8_t *raw; /* the whole message */
    size_t raw_len;
} pbft__msg;

/* Decodes the header and fixed body and (verify) checks the signature of the sender named. */
static int pbft__decode(const pbft__keys *k, const uint8_t *raw, size_t len, pbft__msg *m,
                        bool verify)
{
    memset(m, 0, sizeof *m);
    if (raw == NULL || len < PBFT__HDR + PBFT_SIG_LEN || len > PBFT_MSG_MAX ||
        memcmp(raw, "PB", 2) != 0 || raw[2] != PBFT__VERSION) {
        return PBFT_EBADMSG;
    }
    m->raw = raw;
    m->raw_len = len;
    m->type = raw[3];
    m->sender = (uint32_t)raw[4] << 24 | (uint32_t)raw[5] << 16 | (uint32_t)raw[6] << 8 | raw[7];
    gnutls_pubkey_t pub = NULL;
    if (m->type == PBFT_REQUEST) {
        pub = m->sender < k->nclients ? k->clients[m->sender] : NULL;
    } else if (m->type > PBFT_REQUEST && m->type <= PBFT_STATE) {
        pub = m->sender < k->n ? k->replicas[m->sender] : NULL;
    } else {
        return PBFT_EBADMSG;
    }
    size_t body = len - PBFT_SIG_LEN;
    if (pub == NULL || (verify && !pbft__verify(pub, raw, body, raw + body))) {
        return PBFT_EBADSIG;
    }
    pbft__rd r = {raw + PBFT__HDR, body - PBFT__HDR, false};
    const uint8_t *d;
    switch (m->type) {
    case PBFT_REQUEST:
        m->client = m->sender;
        m->ts = pbft__ru64(&r);
        m->data = pbft__rblob(&r, PBFT_OP_MAX, &m->len);
        break;
    case PBFT_PREPREPARE:
        m->view = pbft__ru64(&r);
        m->seq = pbft__ru64(&r);
        d = pbft__take(&r, PBFT_DIGEST_LEN);
        m->data = pbft__rblob(&r, PBFT_OP_MAX + 1024, &m->len);
        if (d) {
            memcpy(m->digest, d, PBFT_DIGEST_LEN);
        }
        break;
    case PBFT_PREPARE:
    case PBFT_COMMIT:
        m->view = pbft__ru64(&r);
        m->seq = pbft__ru64(&r);
        d = pbft__take(&r, PBFT_DIGEST_LEN);
        if (d) {
            memcpy(m->digest, d, PBFT_DIGEST_LEN);
        }
        break;
    case PBFT_CHECKPOINT:
        m->seq = pbft__ru64(&r);
        d = pbft__take(&r, PBFT_DIGEST_LEN);
        if (d) {
            memcpy(m->digest, d, PBFT_DIGEST_LEN);
        }
        break;
    case PBFT_REPLY:
        m->view = pbft__ru64(&r);
        m->client = pbft__ru32(&r);
        m->ts = pbft__ru64(&r);
        m->result = (int32_t)pbft__ru32(&r);
        break;
    case PBFT_VIEWCHANGE:
        m->view = pbft__ru64(&r);
        m->stable = pbft__ru64(&r);
        d = pbft__take(&r, PBFT_DIGEST_LEN);
        if (d) {
            memcpy(m->digest, d, PBFT_DIGEST_LEN);
        }
        m->rest = r;
        r.n = 0; /* checked by pbft__vc_check */
        break;
    case PBFT_NEWVIEW:
        m->view = pbft__ru64(&r);
        m->rest = r;
        r.n = 0;
        break;
    case PBFT_FETCH: m->seq = pbft__ru64(&r); break;
    case PBFT_STATE:
        m->seq = pbft__ru64(&r);
        m->data = pbft__rblob(&r, PBFT_STATE_MAX, &m->len);
        break;
    default: return PBFT_EBADMSG;
    }
    if (r.err || (r.n != 0 && m->type != PBFT_VIEWCHANGE && m->type != PBFT_NEWVIEW)) {
        return PBFT_EBADMSG;
    }
    if (m->type == PBFT_VIEWCHANGE || m->type == PBFT_NEWVIEW) {
        return m->rest.err ? PBFT_EBADMSG : 0;
    }
    return 0;
}

static int pbft__open(const pbft__keys *k, const uint8_t *raw, size_t len, pbft__msg *m)
{
    return pbft__decode(k, raw, len, m, true);
}

/* The signature check of a message decoded without it. */
static int pbft__check_sig(const pbft__keys *k, const pbft__msg *m)
{
    gnutls_pubkey_t pub = m->type == PBFT_REQUEST ? k->clients[m->sender] : k->replicas[m->sender];
    size_t body = m->raw_len - PBFT_SIG_LEN;
    return pbft__verify(pub, m->raw, body, m->raw + body) ? 0 : PBFT_EBADSIG;
}

static const uint8_t pbft__zero[PBFT_DIGEST_LEN];

/* A pre-prepare's request: null (empty, zero digest) or a validly signed request whose
 * SHA-256 is the digest. */
static int pbft__pp_request(const pbft__keys *k, const pbft__msg *pp, pbft__msg *req)
{
    memset(req, 0, sizeof *req);
    if (pp->len == 0) {
        return memcmp(pp->digest, pbft__zero, PBFT_DIGEST_LEN) == 0 ? 0 : PBFT_EBADMSG;
    }
    uint8_t d[PBFT_DIGEST_LEN];
    if (pbft_digest(pp->data, pp->len, d) != 0 || memcmp(d, pp->digest, sizeof d) != 0) {
        return PBFT_EBADMSG;
    }
    int rc = pbft__open(k, pp->data, pp->len, req);
    return rc != 0 ? rc : req->type == PBFT_REQUEST ? 0 : PBFT_EBADMSG;
}

/* ---- outbox ------------------------------------------------------------------------------ */

void pbft_outbox_clear(pbft_outbox *ob)
{
    for (size_t i = 0; i < ob->n; i++) {
        free(ob->v[i].data);
    }
    ob->n = 0;
}

static void pbft__outbox_free(pbft_outbox *ob)
{
    pbft_outbox_clear(ob);
    free(ob->v);
    ob->v = NULL;
    ob->cap = 0;
}

/* Queues data (ownership taken; dropped without memory, like a lost message: false). */
static bool pbft__emit(pbft_outbox *ob, pbft_dest dest, uint32_t to, uint8_t *data, size_t len)
{
    if (data == NULL) {
        return false;
    }
    if (ob->n == ob->cap) {
        size_t cap = ob->cap ? ob->cap * 2 : 16;
        pbft_out *v = realloc(ob->v, cap * sizeof *v);
        if (v == NULL) {
            free(data);
            return false;
        }
        ob->v = v;
        ob->cap = cap;
    }
    ob->v[ob->n++] = (pbft_out){dest, to, data, len};
    return true;
}

static uint8_t *pbft__dup(const uint8_t *d, size_t n)
{
    uint8_t *p = malloc(n ? n : 1);
    if (p && n) {
        memcpy(p, d, n);
    }
    return p;
}

/* ---- replica state ----------------------------------------------------------------------- */

typedef struct pbft__vote {
    bool has;
    uint64_t view;
    uint8_t digest[PBFT_DIGEST_LEN];
    uint8_t *msg; /* prepares only: kept for prepared certificates */
    size_t len;
} pbft__vote;

typedef struct pbft__slot {
    bool used;
    uint64_t seq;
    bool has_pp;
    uint64_t view;
    uint8_t digest[PBFT_DIGEST_LEN];
    uint8_t *pp;
    size_t pp_len;
    pbft__vote prep[PBFT_MAX_N], com[PBFT_MAX_N];
    bool prepared, sent_commit, committed;
    /* the prepared certificate of the highest view: [pp blob][count][prepare blobs] */
    bool has_pc;
    uint64_t pc_view;
    uint8_t *pc;
    size_t pc_len;
} pbft__slot;

typedef struct pbft__cpslot {
    bool used;
    uint64_t seq;
    pbft__vote v[PBFT_MAX_N]; /* msg kept: proofs of the stable checkpoint */
    bool have_mine;
    uint8_t mine[PBFT_DIGEST_LEN];
    uint8_t *state; /* this replica's state at seq (serves FETCH) */
    size_t state_len;
} pbft__cpslot;

typedef struct pbft__crec {
    bool executed; /* replicated: last_ts / last_result valid */
    uint64_t last_ts;
    int32_t last_result;
    uint64_t assigned_ts; /* primary: newest timestamp given a sequence number */
    uint8_t *pending;     /* newest request seen and not executed */
    size_t pending_len;
    uint64_t pending_ts;
} pbft__crec;

typedef struct pbft__future {
    uint8_t *msg;
    size_t len;
    uint32_t from;
} pbft__future;

struct pbft_replica {
    uint32_t n, f, id, K, L;
    uint64_t T; /* view change timeout */
    gnutls_privkey_t key;
    pbft__keys keys;
    flow_fsm *fsm;
    uint64_t view;
    bool vc_active;
    unsigned attempt;
    bool nv_sent;
    uint64_t timer;
    uint64_t seq; /* primary: last sequence number assigned */
    uint64_t last_exec;
    uint64_t h;
    uint8_t h_digest[PBFT_DIGEST_LEN];
    pbft__buf h_proof; /* [count][checkpoint blobs] */
    uint8_t *h_state;
    size_t h_state_len;
    pbft__slot *slots;
    pbft__cpslot cps[PBFT__CP_SLOTS];
    pbft__crec *clients;
    pbft__vote vcs[PBFT_MAX_N]; /* newest view change per sender */
    uint64_t fetching;
    uint8_t fetch_digest[PBFT_DIGEST_LEN];
    pbft__future *future;
    size_t nfuture;
    pbft_outbox out;
    pbft_stats st;
    uint64_t rej[PBFT_MAX_N + 1];
    pbft_config hooks; /* retention and the owner's hooks (the rest unused) */
    uint64_t nv_max;   /* highest sequence number the installed NEW-VIEW carried */
    bool exec_in_view; /* executed a sequence number since the view was installed */
    uint8_t *nv_msg;   /* the NEW-VIEW of the installed view (sent along with a STATE) */
    size_t nv_len;
    uint64_t beyond; /* highest seq of a current-view pre-prepare seen above the window */
};

static uint32_t pbft__primary(const pbft_replica *r, uint64_t view)
{
    return r->n ? (uint32_t)(view % r->n) : 0; /* n >= 4 once created */
}

static void pbft__vote_clear(pbft__vote *v)
{
    free(v->msg);
    memset(v, 0, sizeof *v);
}

static void pbft__slot_clear(pbft_replica *r, pbft__slot *s)
{
    free(s->pp);
    free(s->pc);
    for (uint32_t i = 0; i < r->n; i++) {
        pbft__vote_clear(&s->prep[i]);
        pbft__vote_clear(&s->com[i]);
    }
    memset(s, 0, sizeof *s);
}

static void pbft__cp_clear(pbft_replica *r, pbft__cpslot *c)
{
    for (uint32_t i = 0; i < r->n; i++) {
        pbft__vote_clear(&c->v[i]);
    }
    free(c->state);
    memset(c, 0, sizeof *c);
}

static size_t pbft__idx(const pbft_replica *r, uint64_t seq)
{
    return r->L ? (size_t)(seq % r->L) : 0; /* L >= 2 once created */
}

static bool pbft__in_window(const pbft_replica *r, uint64_t seq)
{
    return seq > r->h && seq <= r->h + r->L;
}

/* The slot of a sequence number inside the window (reset if it held an older one). */
static pbft__slot *pbft__slot_get(pbft_replica *r, uint64_t seq)
{
    pbft__slot *s = &r->slots[pbft__idx(r, seq)];
    if (!s->used || s->seq != seq) {
        pbft__slot_clear(r, s);
        s->used = true;
        s->seq = seq;
    }
    return s;
}

static pbft__slot *pbft__slot_find(pbft_replica *r, uint64_t seq)
{
    pbft__slot *s = &r->slots[pbft__idx(r, seq)];
    return s->used && s->seq == seq ? s : NULL;
}

/* Signs and queues a simple message; returns the message (owned by the outbox) or NULL. */
static const pbft_out *pbft__send(pbft_replica *r, pbft_dest dest, uint32_t to, pbft_wire *w)
{
    uint8_t *msg;
    size_t len;
    w->sender = r->id;
    if (pbft_wire_encode(r->key, w, &msg, &len) != 0) {
        return NULL;
    }
    return pbft__emit(&r->out, dest, to, msg, len) ? &r->out.v[r->out.n - 1] : NULL;
}

static void pbft__reject(pbft_replica *r, uint32_t from)
{
    r->st.rejected++;
    r->rej[from < r->n ? from : PBFT_MAX_N]++;
}

/* ---- replicated state text --------------------------------------------------------------- */

static char *pbft__state_text(const pbft_replica *r, size_t *len)
{
    char *fsm = flow_fsm_snapshot_text(r->fsm);
    json_t *cl = json_array();
    for (uint32_t i = 0; cl && i < r->keys.nclients; i++) {
        const pbft__crec *c = &r->clients[i];
        if (c->executed) {
            json_array_append_new(cl, json_pack("[I, I, i]", (json_int_t)i, (json_int_t)c->last_ts,
                                                (int)c->last_result));
        }
    }
    char *ct = cl ? json_dumps(cl, JSON_COMPACT) : NULL;
    json_decref(cl);
    char *out = NULL;
    if (fsm && ct) {
        size_t a = strlen(fsm), b = strlen(ct);
        out = malloc(a + b + 2);
        if (out) {
            memcpy(out, fsm, a);
            out[a] = '\n';
            memcpy(out + a + 1, ct, b + 1);
            *len = a + b + 1;
        }
    }
    free(fsm);
    free(ct);
    return out;
}

char *pbft_replica_state_text(const pbft_replica *r)
{
    size_t len;
    return pbft__state_text(r, &len);
}

/* Installs a transferred state (validated: the fsm part restores, the client table is well
 * formed). The fsm is replaced only if both parts are good. */
static int pbft__state_install(pbft_replica *r, const uint8_t *data, size_t len)
{
    const uint8_t *nl = memchr(data, '\n', len);
    if (nl == NULL) {
        return PBFT_EBADMSG;
    }
    size_t a = (size_t)(nl - data);
    json_t *cl = json_loadb((const char *)nl + 1, len - a - 1, JSON_REJECT_DUPLICATES, NULL);
    bool ok = json_is_array(cl) && json_array_size(cl) <= r->keys.nclients;
    size_t i;
    json_t *e;
    json_array_foreach(cl, i, e)
    {
        json_int_t id = json_integer_value(json_array_get(e, 0));
        ok = ok && json_array_size(e) == 3 && json_is_integer(json_array_get(e, 0)) &&
             json_is_integer(json_array_get(e, 1)) && json_is_integer(json_array_get(e, 2)) &&
             id >= 0 && (uint64_t)id < r->keys.nclients;
    }
    flow_fsm *f = ok ? flow_fsm_new(NULL) : NULL;
    if (f && r->hooks.retention_set) {
        flow_fsm_set_retention(f, r->hooks.retention);
    }
    if (f == NULL || flow_fsm_restore_text(f, data, a) != 0) {
        flow_fsm_free(f);
        json_decref(cl);
        return PBFT_EBADMSG;
    }
    flow_fsm_free(r->fsm);
    r->fsm = f;
    for (uint32_t c = 0; c < r->keys.nclients; c++) {
        r->clients[c].executed = false;
        r->clients[c].last_ts = 0;
        r->clients[c].last_result = 0;
    }
    json_array_foreach(cl, i, e)
    {
        pbft__crec *c = &r->clients[json_integer_value(json_array_get(e, 0))];
        c->executed = true;
        c->last_ts = (uint64_t)json_integer_value(json_array_get(e, 1));
        c->last_result = (int32_t)json_integer_value(json_array_get(e, 2));
        if (c->pending && c->pending_ts <= c->last_ts) {
            free(c->pending);
            c->pending = NULL;
            c->pending_ts = 0;
        }
    }
    json_decref(cl);
    return 0;
}

/* ---- creation ---------------------------------------------------------------------------- */

pbft_replica *pbft_replica_new(const pbft_config *cfg, int *err)
{
    int dummy = 0;
    err = err ? err : &dummy;
    *err = PBFT_EINVAL;
    if (cfg == NULL || cfg->n < 4 || cfg->n > PBFT_MAX_N || cfg->id >= cfg->n || cfg->key == NULL ||
        cfg->replicas == NULL || cfg->clients == NULL || cfg->nclients == 0 ||
        cfg->nclients > PBFT_MAX_CLIENTS) {
        return NULL;
    }
    uint32_t K = cfg->checkpoint ? cfg->checkpoint : 64;
    uint32_t L = cfg->window ? cfg->window : 2 * K;
    if (K > 1u << 20 || L < 2 * K || L % K != 0 || L > 1u << 20) {
        return NULL;
    }
    *err = PBFT_ENOMEM;
    pbft_replica *r = calloc(1, sizeof *r);
    if (r == NULL) {
        return NULL;
    }
    r->n = cfg->n;
    r->f = (cfg->n - 1) / 3;
    r->id = cfg->id;
    r->K = K;
    r->L = L;
    r->T = cfg->view_change_ms ? cfg->view_change_ms : 500;
    r->key = cfg->key;
    r->keys = (pbft__keys){cfg->n, cfg->nclients, cfg->replicas, cfg->clients};
    r->timer = PBFT__OFF;
    r->hooks = *cfg;
    r->fsm = flow_fsm_new(NULL);
    if (r->fsm && cfg->retention_set) {
        flow_fsm_set_retention(r->fsm, cfg->retention);
    }
    r->slots = calloc(L, sizeof *r->slots);
    r->clients = calloc(cfg->nclients, sizeof *r->clients);
    r->future = calloc(PBFT__FUTURE_MAX, sizeof *r->future);
    if (r->fsm == NULL || r->slots == NULL || r->clients == NULL || r->future == NULL) {
        pbft_replica_free(r);
        return NULL;
    }
    pbft__u32(&r->h_proof, 0);
    *err = 0;
    return r;
}

void pbft_replica_free(pbft_replica *r)
{
    if (r == NULL) {
        return;
    }
    for (uint32_t i = 0; r->slots && i < r->L; i++) {
        pbft__slot_clear(r, &r->slots[i]);
    }
    for (size_t i = 0; i < PBFT__CP_SLOTS; i++) {
        pbft__cp_clear(r, &r->cps[i]);
    }
    for (uint32_t i = 0; r->clients && i < r->keys.nclients; i++) {
        free(r->clients[i].pending);
    }
    for (uint32_t i = 0; i < r->n; i++) {
        pbft__vote_clear(&r->vcs[i]);
    }
    for (size_t i = 0; i < r->nfuture; i++) {
        free(r->future[i].msg);
    }
    free(r->future);
    free(r->slots);
    free(r->clients);
    free(r->h_proof.p);
    free(r->h_state);
    free(r->nv_msg);
    flow_fsm_free(r->fsm);
    pbft__outbox_free(&r->out);
    free(r);
}

/* ---- accessors --------------------------------------------------------------------------- */

uint64_t pbft_replica_view(const pbft_replica *r)
{
    return r->view;
}
bool pbft_replica_view_changing(const pbft_replica *r)
{
    return r->vc_active;
}
uint32_t pbft_replica_primary(const pbft_replica *r)
{
    return pbft__primary(r, r->view);
}
bool pbft_replica_settled(const pbft_replica *r)
{
    return !r->vc_active && r->last_exec >= r->nv_max && r->exec_in_view;
}
uint64_t pbft_replica_last_executed(const pbft_replica *r)
{
    return r->last_exec;
}
uint64_t pbft_replica_stable(const pbft_replica *r)
{
    return r->h;
}
const flow_fsm *pbft_replica_fsm(const pbft_replica *r)
{
    return r->fsm;
}
void pbft_replica_get_stats(const pbft_replica *r, pbft_stats *st)
{
    *st = r->st;
}
uint64_t pbft_replica_rejected(const pbft_replica *r, uint32_t from)
{
    return r->rej[from < r->n ? from : PBFT_MAX_N];
}
pbft_outbox *pbft_replica_outbox(pbft_replica *r)
{
    return &r->out;
}
uint64_t pbft_replica_next_deadline(const pbft_replica *r)
{
    return r->timer;
}

/* ---- timer ------------------------------------------------------------------------------- */

static bool pbft__has_work(const pbft_replica *r)
{
    for (uint32_t c = 0; c < r->keys.nclients; c++) {
        const pbft__crec *cr = &r->clients[c];
        if (cr->pending && (!cr->executed || cr->pending_ts > cr->last_ts)) {
            return true;
        }
    }
    for (uint64_t s = r->last_exec + 1; s <= r->h + r->L; s++) {
        const pbft__slot *sl = &r->slots[pbft__idx(r, s)];
        if (sl->used && sl->seq == s && sl->has_pp) {
            return true;
        }
    }
    return false;
}

/* Normal case: the timer runs while there is unexecuted work; restart = progress. */
static void pbft__arm(pbft_replica *r, uint64_t now, bool restart)
{
    if (r->vc_active) {
        return;
    }
    if (!pbft__has_work(r)) {
        r->timer = PBFT__OFF;
    } else if (restart || r->timer == PBFT__OFF) {
        r->timer = now + r->T;
    }
}

/* ---- normal case ------------------------------------------------------------------------- */

static void pbft__execute_ready(pbft_replica *r, uint64_t now);
static void pbft__checkpoint_vote(pbft_replica *r, uint64_t now, const pbft__msg *m);

static void pbft__propose(pbft_replica *r, uint64_t now)
{
    if (r->vc_active || pbft__primary(r, r->view) != r->id || r->fetching) {
        return;
    }
    for (uint32_t c = 0; c < r->keys.nclients; c++) {
        pbft__crec *cr = &r->clients[c];
        if (cr->pending == NULL || cr->pending_ts <= cr->assigned_ts ||
            (cr->executed && cr->pending_ts <= cr->last_ts)) {
            continue;
        }
        if (r->seq < r->h) {
            r->seq = r->h;
        }
        if (r->seq + 1 > r->h + r->L) {
            break;
        }
        uint64_t seq = r->seq + 1;
        pbft_wire w = {.type = PBFT_PREPREPARE, .view = r->view, .seq = seq};
        w.data = cr->pending;
        w.len = cr->pending_len;
        const pbft_out *o = pbft__send(r, PBFT_TO_ALL, 0, &w);
        if (o == NULL) {
            return;
        }
        r->seq = seq;
        cr->assigned_ts = cr->pending_ts;
        pbft__slot *s = pbft__slot_get(r, seq);
        free(s->pp); /* a pre-prepare of an older view, voided by the new view */
        s->pp = pbft__dup(o->data, o->len);
        if (s->pp == NULL) {
            continue;
        }
        s->pp_len = o->len;
        s->has_pp = true;
        s->view = r->view;
        memcpy(s->digest, o->data + PBFT__HDR + 16, PBFT_DIGEST_LEN);
    }
    pbft__arm(r, now, false);
}

/* Counts votes matching the slot's view and digest; prepares from the primary do not count. */
static uint32_t pbft__count(const pbft_replica *r, const pbft__slot *s, const pbft__vote *v,
                            bool skip_primary)
{
    uint32_t k = 0;
    for (uint32_t i = 0; i < r->n; i++) {
        if (v[i].has && v[i].view == s->view && memcmp(v[i].digest, s->digest, 32) == 0 &&
            !(skip_primary && i == pbft__primary(r, s->view))) {
            k++;
        }
    }
    return k;
}

static void pbft__save_cert(pbft_replica *r, pbft__slot *s)
{
    if (s->has_pc && s->pc_view >= s->view) {
        return;
    }
    pbft__buf b = {0};
    pbft__blob(&b, s->pp, s->pp_len);
    pbft__u32(&b, 2 * r->f);
    uint32_t k = 0;
    for (uint32_t i = 0; i < r->n && k < 2 * r->f; i++) {
        const pbft__vote *v = &s->prep[i];
        if (v->has && v->msg && v->view == s->view && memcmp(v->digest, s->digest, 32) == 0 &&
            i != pbft__primary(r, s->view)) {
            pbft__blob(&b, v->msg, v->len);
            k++;
        }
    }
    if (b.err || k != 2 * r->f) {
        free(b.p);
        return;
    }
    free(s->pc);
    s->pc = b.p;
    s->pc_len = b.n;
    s->pc_view = s->view;
    s->has_pc = true;
}

static void pbft__progress(pbft_replica *r, uint64_t now, pbft__slot *s)
{
    if (!s->has_pp) {
        return;
    }
    if (!s->prepared && pbft__count(r, s, s->prep, true) >= 2 * r->f) {
        s->prepared = true;
        pbft__save_cert(r, s);
    }
    if (s->prepared && !s->sent_commit) {
        s->sent_commit = true;
        pbft_wire w = {.type = PBFT_COMMIT, .view = s->view, .seq = s->seq};
        memcpy(w.digest, s->digest, PBFT_DIGEST_LEN);
        if (pbft__send(r, PBFT_TO_ALL, 0, &w)) {
            s->com[r->id] = (pbft__vote){true, s->view, {0}, NULL, 0};
            memcpy(s->com[r->id].digest, s->digest, PBFT_DIGEST_LEN);
        }
    }
    if (s->prepared && !s->committed && pbft__count(r, s, s->com, false) >= 2 * r->f + 1) {
        s->committed = true;
        pbft__execute_ready(r, now);
    }
}

static void pbft__reply(pbft_replica *r, uint32_t client)
{
    const pbft__crec *cr = &r->clients[client];
    pbft_wire w = {.type = PBFT_REPLY, .view = r->view, .client = client, .ts = cr->last_ts};
    w.result = cr->last_result;
    pbft__send(r, PBFT_TO_CLIENT, client, &w);
}

static void pbft__execute(pbft_replica *r, pbft__slot *s)
{
    r->st.executed++;
    const uint8_t *req = s->pp_len ? s->pp + PBFT__HDR + 16 + PBFT_DIGEST_LEN : NULL;
    pbft__rd rd = {req, req ? s->pp_len - PBFT__HDR - 16 - PBFT_DIGEST_LEN - PBFT_SIG_LEN : 0,
                   false};
    size_t rlen = 0;
    const uint8_t *rq = pbft__rblob(&rd, PBFT_OP_MAX + 1024, &rlen);
    if (rq == NULL || rlen == 0) {
        return; /* null request */
    }
    pbft__msg m;
    if (pbft__decode(&r->keys, rq, rlen, &m, false) != 0) {
        return; /* cannot happen: verified when the pre-prepare was accepted */
    }
    pbft__crec *cr = &r->clients[m.client];
    if (!cr->executed || m.ts > cr->last_ts) {
        cr->last_result = flow_fsm_apply_entry(r->fsm, m.data, m.len);
        cr->last_ts = m.ts;
        cr->executed = true;
        r->st.applied++;
        if (r->hooks.executed) {
            r->hooks.executed(r->hooks.user, s->seq, m.client, m.ts, m.data, m.len,
                              cr->last_result);
        }
        if (cr->pending && cr->pending_ts <= m.ts) {
            free(cr->pending);
            cr->pending = NULL;
            cr->pending_ts = 0;
        }
    }
    if (m.ts == cr->last_ts) {
        pbft__reply(r, m.client);
    }
}

static pbft__cpslot *pbft__cp_get(pbft_replica *r, uint64_t seq, bool create)
{
    pbft__cpslot *lowest = NULL;
    for (size_t i = 0; i < PBFT__CP_SLOTS; i++) {
        pbft__cpslot *c = &r->cps[i];
        if (c->used && c->seq == seq) {
            return c;
        }
        /* a free slot, else the lowest sequence number */
        if (lowest == NULL || (lowest->used && (!c->used || c->seq < lowest->seq))) {
            lowest = c;
        }
    }
    if (!create) {
        return NULL;
    }
    pbft__cp_clear(r, lowest);
    lowest->used = true;
    lowest->seq = seq;
    return lowest;
}

static void pbft__make_checkpoint(pbft_replica *r, uint64_t now, uint64_t seq)
{
    size_t len = 0;
    char *text = pbft__state_text(r, &len);
    pbft_wire w = {.type = PBFT_CHECKPOINT, .seq = seq};
    if (text == NULL || pbft_digest(text, len, w.digest) != 0) {
        free(text);
        return;
    }
    pbft__cpslot *c = pbft__cp_get(r, seq, true);
    free(c->state);
    c->state = (uint8_t *)text;
    c->state_len = len;
    c->have_mine = true;
    memcpy(c->mine, w.digest, PBFT_DIGEST_LEN);
    const pbft_out *o = pbft__send(r, PBFT_TO_ALL, 0, &w);
    if (o) {
        pbft__msg m;
        if (pbft__open(&r->keys, o->data, o->len, &m) == 0) {
            pbft__checkpoint_vote(r, now, &m);
        }
    }
}

static void pbft__execute_ready(pbft_replica *r, uint64_t now)
{
    bool progress = false;
    while (r->fetching == 0 && r->last_exec < r->h + r->L) {
        pbft__slot *s = pbft__slot_find(r, r->last_exec + 1);
        if (s == NULL || !s->committed) {
            break;
        }
        pbft__execute(r, s);
        r->last_exec++;
        progress = true;
        r->exec_in_view = true;
        if (r->last_exec % r->K == 0) {
            pbft__make_checkpoint(r, now, r->last_exec);
        }
    }
    if (progress) {
        pbft__arm(r, now, true);
    }
}

/* Keeps a request (not executed yet) so that a later primary can propose it. */
static bool pbft__remember(pbft_replica *r, const pbft__msg *m)
{
    if (m->type != PBFT_REQUEST) {
        return false; /* null request */
    }
    pbft__crec *cr = &r->clients[m->client];
    if ((cr->executed && m->ts <= cr->last_ts) || (cr->pending && m->ts <= cr->pending_ts)) {
        return false;
    }
    uint8_t *copy = pbft__dup(m->raw, m->raw_len);
    if (copy == NULL) {
        return false;
    }
    free(cr->pending);
    cr->pending = copy;
    cr->pending_len = m->raw_len;
    cr->pending_ts = m->ts;
    return true;
}

static int pbft__on_request(pbft_replica *r, uint64_t now, const pbft__msg *m)
{
    pbft__crec *cr = &r->clients[m->client];
    if (cr->executed && m->ts < cr->last_ts) {
        return 0;
    }
    if (cr->executed && m->ts == cr->last_ts) {
        pbft__reply(r, m->client); /* the reply was lost: send it again */
        return 0;
    }
    if (m->len == 0) {
        return PBFT_EBADMSG;
    }
    bool fresh = pbft__remember(r, m);
    if (pbft__primary(r, r->view) == r->id) {
        pbft__propose(r, now);
    } else if (fresh && !r->vc_active) {
        pbft__emit(&r->out, PBFT_TO_REPLICA, pbft__primary(r, r->view),
                   pbft__dup(m->raw, m->raw_len), m->raw_len);
    }
    pbft__arm(r, now, false);
    return 0;
}

static bool pbft__buffer_future(pbft_replica *r, uint32_t from, const pbft__msg *m)
{
    if (r->nfuture == PBFT__FUTURE_MAX) {
        return false;
    }
    uint8_t *copy = pbft__dup(m->raw, m->raw_len);
    if (copy == NULL) {
        return false;
    }
    r->future[r->nfuture++] = (pbft__future){copy, m->raw_len, from};
    return true;
}

static int pbft__on_preprepare(pbft_replica *r, uint64_t now, uint32_t from, const pbft__msg *m)
{
    if (m->sender != pbft__primary(r, m->view)) {
        return PBFT_EBADMSG;
    }
    pbft__msg req;
    int rc = pbft__pp_request(&r->keys, m, &req);
    if (rc != 0) {
        return rc;
    }
    if (m->view == r->view && !r->vc_active && m->seq > r->h + r->L && m->seq > r->beyond) {
        r->beyond = m->seq; /* the view's primary is ahead of this replica's window */
    }
    if (m->view < r->view || !pbft__in_window(r, m->seq) || m->sender == r->id) {
        return 0;
    }
    if (m->view > r->view || r->vc_active) {
        pbft__buffer_future(r, from, m);
        return 0;
    }
    pbft__slot *s = pbft__slot_get(r, m->seq);
    if (s->has_pp && s->view == m->view) {
        if (memcmp(s->digest, m->digest, PBFT_DIGEST_LEN) != 0) {
            r->st.conflicts++;
        }
        return 0;
    }
    uint8_t *copy = pbft__dup(m->raw, m->raw_len);
    if (copy == NULL) {
        return PBFT_ENOMEM;
    }
    free(s->pp);
    s->pp = copy;
    s->pp_len = m->raw_len;
    s->has_pp = true;
    s->view = m->view;
    memcpy(s->digest, m->digest, PBFT_DIGEST_LEN);
    s->prepared = s->sent_commit = s->committed = false;
    pbft__remember(r, &req);
    pbft_wire w = {.type = PBFT_PREPARE, .view = m->view, .seq = m->seq};
    memcpy(w.digest, m->digest, PBFT_DIGEST_LEN);
    const pbft_out *o = pbft__send(r, PBFT_TO_ALL, 0, &w);
    if (o) {
        pbft__vote_clear(&s->prep[r->id]);
        s->prep[r->id] = (pbft__vote){true, m->view, {0}, pbft__dup(o->data, o->len), o->len};
        memcpy(s->prep[r->id].digest, m->digest, PBFT_DIGEST_LEN);
    }
    pbft__progress(r, now, s);
    pbft__arm(r, now, false);
    return 0;
}

static int pbft__on_vote(pbft_replica *r, uint64_t now, uint32_t from, const pbft__msg *m)
{
    if (m->view < r->view || !pbft__in_window(r, m->seq) || m->sender == r->id) {
        return 0;
    }
    if (m->type == PBFT_PREPARE && m->sender == pbft__primary(r, m->view)) {
        return PBFT_EBADMSG; /* the primary does not prepare */
    }
    if (m->view > r->view || r->vc_active) {
        pbft__buffer_future(r, from, m);
        return 0;
    }
    pbft__slot *s = pbft__slot_get(r, m->seq);
    pbft__vote *v = m->type == PBFT_PREPARE ? &s->prep[m->sender] : &s->com[m->sender];
    if (v->has && v->view >= m->view) {
        return 0;
    }
    uint8_t *copy = NULL;
    if (m->type == PBFT_PREPARE) {
        copy = pbft__dup(m->raw, m->raw_len);
        if (copy == NULL) {
            return PBFT_ENOMEM;
        }
    }
    pbft__vote_clear(v);
    *v = (pbft__vote){true, m->view, {0}, copy, copy ? m->raw_len : 0};
    memcpy(v->digest, m->digest, PBFT_DIGEST_LEN);
    pbft__progress(r, now, s);
    return 0;
}

/* ---- checkpoints and state transfer ------------------------------------------------------ */

static void pbft__stabilize(pbft_replica *r, uint64_t now, pbft__cpslot *c,
                            const uint8_t digest[PBFT_DIGEST_LEN])
{
    pbft__buf proof = {0};
    pbft__u32(&proof, 2 * r->f + 1);
    uint32_t k = 0;
    for (uint32_t i = 0; i < r->n && k < 2 * r->f + 1; i++) {
        if (c->v[i].has && c->v[i].msg && memcmp(c->v[i].digest, digest, PBFT_DIGEST_LEN) == 0) {
            pbft__blob(&proof, c->v[i].msg, c->v[i].len);
            k++;
        }
    }
    if (proof.err || k != 2 * r->f + 1) {
        free(proof.p);
        return;
    }
    uint64_t seq = c->seq;
    free(r->h_proof.p);
    r->h_proof = proof;
    free(r->h_state);
    r->h_state = c->state;
    r->h_state_len = c->state_len;
    c->state = NULL;
    r->h = seq;
    memcpy(r->h_digest, digest, PBFT_DIGEST_LEN);
    r->st.checkpoints++;
    for (uint32_t i = 0; i < r->L; i++) {
        if (r->slots[i].used && r->slots[i].seq <= seq) {
            pbft__slot_clear(r, &r->slots[i]);
        }
    }
    for (size_t i = 0; i < PBFT__CP_SLOTS; i++) {
        if (r->cps[i].used && r->cps[i].seq <= seq) {
            pbft__cp_clear(r, &r->cps[i]);
        }
    }
    if (r->seq < r->h) {
        r->seq = r->h;
    }
    pbft__propose(r, now);
}

/* A (verified) checkpoint message: record it; stabilize, or fetch the state when behind. */
static void pbft__checkpoint_vote(pbft_replica *r, uint64_t now, const pbft__msg *m)
{
    if (m->seq <= r->h || m->seq % r->K != 0) {
        return;
    }
    pbft__cpslot *c = pbft__cp_get(r, m->seq, true);
    pbft__vote *v = &c->v[m->sender];
    if (v->has) {
        return;
    }
    uint8_t *copy = pbft__dup(m->raw, m->raw_len);
    if (copy == NULL) {
        return;
    }
    *v = (pbft__vote){true, 0, {0}, copy, m->raw_len};
    memcpy(v->digest, m->digest, PBFT_DIGEST_LEN);
    uint32_t k = 0;
    for (uint32_t i = 0; i < r->n; i++) {
        k += c->v[i].has && memcmp(c->v[i].digest, m->digest, PBFT_DIGEST_LEN) == 0;
    }
    if (k < 2 * r->f + 1) {
        return;
    }
    if (c->have_mine && memcmp(c->mine, m->digest, PBFT_DIGEST_LEN) == 0) {
        pbft__stabilize(r, now, c, m->digest);
        return;
    }
    if (c->have_mine || r->last_exec >= m->seq || r->fetching >= m->seq) {
        return; /* our state differs from the certified one: only a transfer of a later
                   checkpoint can repair it */
    }
    r->fetching = m->seq;
    memcpy(r->fetch_digest, m->digest, PBFT_DIGEST_LEN);
    for (uint32_t i = 0; i < r->n; i++) {
        if (i != r->id && c->v[i].has && memcmp(c->v[i].digest, m->digest, 32) == 0) {
            pbft_wire w = {.type = PBFT_FETCH, .seq = m->seq};
            pbft__send(r, PBFT_TO_REPLICA, i, &w);
        }
    }
}

static int pbft__on_fetch(pbft_replica *r, const pbft__msg *m)
{
    const uint8_t *state = NULL;
    size_t len = 0;
    if (m->seq == r->h && r->h_state) {
        state = r->h_state;
        len = r->h_state_len;
    } else {
        const pbft__cpslot *c = pbft__cp_get(r, m->seq, false);
        if (c && c->state) {
            state = c->state;
            len = c->state_len;
        }
    }
    if (state) {
        pbft_wire w = {.type = PBFT_STATE, .seq = m->seq, .data = state, .len = len};
        pbft__send(r, PBFT_TO_REPLICA, m->sender, &w);
        /* a replica that fetches may have missed view changes too (it restarted): the NEW-VIEW
         * of the current view (signed by its primary) lets it join the view */
        uint8_t *nv = r->nv_msg ? pbft__dup(r->nv_msg, r->nv_len) : NULL;
        if (nv) {
            pbft__emit(&r->out, PBFT_TO_REPLICA, m->sender, nv, r->nv_len);
        }
    }
    return 0;
}

static int pbft__on_state(pbft_replica *r, uint64_t now, const pbft__msg *m)
{
    if (r->fetching == 0 || m->seq != r->fetching) {
        return 0;
    }
    uint8_t d[PBFT_DIGEST_LEN];
    if (pbft_digest(m->data, m->len, d) != 0 || memcmp(d, r->fetch_digest, sizeof d) != 0) {
        return PBFT_EBADMSG;
    }
    int rc = pbft__state_install(r, m->data, m->len);
    if (rc != 0) {
        return rc;
    }
    r->fetching = 0;
    r->last_exec = m->seq;
    r->st.transfers++;
    if (r->hooks.installed) {
        r->hooks.installed(r->hooks.user, m->seq);
    }
    pbft__cpslot *c = pbft__cp_get(r, m->seq, true);
    free(c->state);
    c->state = pbft__dup(m->data, m->len);
    c->state_len = c->state ? m->len : 0;
    c->have_mine = c->state != NULL;
    memcpy(c->mine, d, sizeof d);
    pbft__stabilize(r, now, c, d);
    pbft__execute_ready(r, now);
    pbft__arm(r, now, true);
    return 0;
}

/* ---- view change ------------------------------------------------------------------------- */

typedef struct pbft__cert {
    uint64_t seq, view;
    uint8_t digest[PBFT_DIGEST_LEN];
    const uint8_t *req;
    size_t req_len;
} pbft__cert;

typedef struct pbft__vc {
    uint32_t sender;
    uint64_t stable;
    uint8_t sdigest[PBFT_DIGEST_LEN];
    pbft__rd cps; /* the checkpoint proof: [count][blobs] */
    pbft__cert *certs;
    size_t ncerts;
} pbft__vc;

/* Verifies a view change completely (m opened, type VIEWCHANGE); fills vc (certs malloc'd). */
static int pbft__vc_check(const pbft_replica *r, const pbft__msg *m, pbft__vc *vc)
{
    memset(vc, 0, sizeof *vc);
    vc->sender = m->sender;
    vc->stable = m->stable;
    memcpy(vc->sdigest, m->digest, PBFT_DIGEST_LEN);
    if (m->stable % r->K != 0) {
        return PBFT_EBADMSG;
    }
    pbft__rd rd = m->rest;
    vc->cps = rd;
    uint32_t ncp = pbft__ru32(&rd);
    if (ncp > r->n || (m->stable == 0 && ncp != 0) || (m->stable > 0 && ncp < 2 * r->f + 1)) {
        return PBFT_EBADMSG;
    }
    bool seen[PBFT_MAX_N] = {false};
    for (uint32_t i = 0; i < ncp && !rd.err; i++) {
        size_t len;
        const uint8_t *p = pbft__rblob(&rd, PBFT_MSG_MAX, &len);
        pbft__msg cp;
        if (p == NULL || pbft__open(&r->keys, p, len, &cp) != 0 || cp.type != PBFT_CHECKPOINT ||
            cp.seq != m->stable || memcmp(cp.digest, m->digest, 32) != 0 || seen[cp.sender]) {
            return PBFT_EBADMSG;
        }
        seen[cp.sender] = true;
    }
    uint32_t np = pbft__ru32(&rd);
    if (rd.err || np > r->L) {
        return PBFT_EBADMSG;
    }
    vc->certs = calloc(np ? np : 1, sizeof *vc->certs);
    if (vc->certs == NULL) {
        return PBFT_ENOMEM;
    }
    uint64_t last = m->stable;
    for (uint32_t i = 0; i < np; i++) {
        size_t len;
        const uint8_t *p = pbft__rblob(&rd, PBFT_MSG_MAX, &len);
        pbft__msg pp, rq;
        if (p == NULL || pbft__open(&r->keys, p, len, &pp) != 0 || pp.type != PBFT_PREPREPARE ||
            pp.sender != pbft__primary(r, pp.view) || pp.view >= m->view || pp.seq <= last ||
            pp.seq > m->stable + r->L || pbft__pp_request(&r->keys, &pp, &rq) != 0) {
            return PBFT_EBADMSG;
        }
        last = pp.seq;
        uint32_t nprep = pbft__ru32(&rd);
        if (rd.err || nprep < 2 * r->f || nprep > r->n) {
            return PBFT_EBADMSG;
        }
        bool by[PBFT_MAX_N] = {false};
        for (uint32_t j = 0; j < nprep; j++) {
            size_t plen;
            const uint8_t *q = pbft__rblob(&rd, PBFT_MSG_MAX, &plen);
            pbft__msg pr;
            if (q == NULL || pbft__open(&r->keys, q, plen, &pr) != 0 || pr.type != PBFT_PREPARE ||
                pr.view != pp.view || pr.seq != pp.seq || memcmp(pr.digest, pp.digest, 32) != 0 ||
                pr.sender == pp.sender || by[pr.sender]) {
                return PBFT_EBADMSG;
            }
            by[pr.sender] = true;
        }
        pbft__cert *c = &vc->certs[vc->ncerts++];
        c->seq = pp.seq;
        c->view = pp.view;
        memcpy(c->digest, pp.digest, PBFT_DIGEST_LEN);
        c->req = pp.data;
        c->req_len = pp.len;
    }
    return rd.err || rd.n != 0 ? PBFT_EBADMSG : 0;
}

/* The new view's pre-prepares derived from a set of view changes: min_s (the highest stable
 * checkpoint), max_s, and for each sequence number in (min_s, max_s] the certificate of the
 * highest view (NULL: a null request). best has r->L entries, indexed seq - min_s - 1. */
static void pbft__compute_o(const pbft_replica *r, const pbft__vc *vcs, size_t nvc, uint64_t *min_s,
                            size_t *min_i, uint64_t *max_s, const pbft__cert **best)
{
    *min_s = 0;
    *min_i = 0;
    for (size_t i = 0; i < nvc; i++) {
        if (vcs[i].stable > *min_s) {
            *min_s = vcs[i].stable;
            *min_i = i;
        }
    }
    *max_s = *min_s;
    memset(best, 0, r->L * sizeof *best);
    for (size_t i = 0; i < nvc; i++) {
        for (size_t j = 0; j < vcs[i].ncerts; j++) {
            const pbft__cert *c = &vcs[i].certs[j];
            if (c->seq <= *min_s || c->seq > *min_s + r->L) {
                continue;
            }
            *max_s = c->seq > *max_s ? c->seq : *max_s;
            const pbft__cert **b = &best[c->seq - *min_s - 1];
            if (*b == NULL || c->view > (*b)->view) {
                *b = c;
            }
        }
    }
}

static void pbft__start_view_change(pbft_replica *r, uint64_t now, uint64_t view);

static void pbft__vc_free(pbft__vc *v, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(v[i].certs);
    }
    free(v);
}

static void pbft__install_pp(pbft_replica *r, uint64_t now, const uint8_t *raw, size_t len,
                             const pbft__msg *pp)
{
    if (!pbft__in_window(r, pp->seq)) {
        return;
    }
    pbft__slot *s = pbft__slot_get(r, pp->seq);
    uint8_t *copy = pbft__dup(raw, len);
    if (copy == NULL) {
        return;
    }
    free(s->pp);
    s->pp = copy;
    s->pp_len = len;
    s->has_pp = true;
    s->view = pp->view;
    memcpy(s->digest, pp->digest, PBFT_DIGEST_LEN);
    s->prepared = s->sent_commit = s->committed = false;
    if (pbft__primary(r, pp->view) != r->id) {
        pbft_wire w = {.type = PBFT_PREPARE, .view = pp->view, .seq = pp->seq};
        memcpy(w.digest, pp->digest, PBFT_DIGEST_LEN);
        const pbft_out *o = pbft__send(r, PBFT_TO_ALL, 0, &w);
        if (o) {
            pbft__vote_clear(&s->prep[r->id]);
            s->prep[r->id] = (pbft__vote){true, pp->view, {0}, pbft__dup(o->data, o->len), o->len};
            memcpy(s->prep[r->id].digest, pp->digest, PBFT_DIGEST_LEN);
        }
    }
    pbft__progress(r, now, s);
}

/* A verified NEW-VIEW for view >= ours: install it. */
static int pbft__on_newview(pbft_replica *r, uint64_t now, const pbft__msg *m)
{
    if (m->sender != pbft__primary(r, m->view)) {
        return PBFT_EBADMSG;
    }
    if (m->view < r->view || (m->view == r->view && !r->vc_active)) {
        return 0;
    }
    pbft__rd rd = m->rest;
    uint32_t nvc = pbft__ru32(&rd);
    if (rd.err || nvc < 2 * r->f + 1 || nvc > r->n) {
        return PBFT_EBADMSG;
    }
    pbft__vc *vcs = calloc(PBFT_MAX_N, sizeof *vcs);
    const pbft__cert **best = calloc(r->L ? r->L : 1, sizeof *best);
    int rc = vcs && best ? 0 : PBFT_ENOMEM;
    size_t have = 0;
    bool seen[PBFT_MAX_N] = {false};
    for (uint32_t i = 0; rc == 0 && i < nvc; i++) {
        size_t len;
        const uint8_t *p = pbft__rblob(&rd, PBFT_MSG_MAX, &len);
        pbft__msg vm;
        rc = p == NULL ? PBFT_EBADMSG : pbft__open(&r->keys, p, len, &vm);
        if (rc == 0 && (vm.type != PBFT_VIEWCHANGE || vm.view != m->view || seen[vm.sender])) {
            rc = PBFT_EBADMSG;
        }
        if (rc == 0) {
            seen[vm.sender] = true;
            rc = pbft__vc_check(r, &vm, &vcs[have]);
            have++;
        }
    }
    uint64_t min_s = 0, max_s = 0;
    size_t min_i = 0;
    if (rc == 0) {
        pbft__compute_o(r, vcs, have, &min_s, &min_i, &max_s, best);
    }
    uint32_t npp = rc == 0 ? pbft__ru32(&rd) : 0;
    if (rc == 0 && (rd.err || npp != max_s - min_s)) {
        rc = PBFT_EBADMSG;
    }
    pbft__rd pps = rd;
    for (uint32_t i = 0; rc == 0 && i < npp; i++) {
        size_t len;
        const uint8_t *p = pbft__rblob(&rd, PBFT_MSG_MAX, &len);
        pbft__msg pp, rq;
        rc = p == NULL ? PBFT_EBADMSG : pbft__open(&r->keys, p, len, &pp);
        const pbft__cert *b = best[i];
        if (rc == 0 && (pp.type != PBFT_PREPREPARE || pp.sender != m->sender ||
                        pp.view != m->view || pp.seq != min_s + 1 + i ||
                        memcmp(pp.digest, b ? b->digest : pbft__zero, PBFT_DIGEST_LEN) != 0 ||
                        pbft__pp_request(&r->keys, &pp, &rq) != 0)) {
            rc = PBFT_EBADMSG;
        }
    }
    if (rc == 0 && (rd.err || rd.n != 0)) {
        rc = PBFT_EBADMSG;
    }
    if (rc != 0) {
        pbft__vc_free(vcs, have);
        free(best);
        return rc;
    }
    /* install; vc_active stays set until the new view's pre-prepares are in, so that nothing
     * is proposed meanwhile */
    r->view = m->view;
    r->vc_active = true;
    r->attempt = 0;
    r->timer = PBFT__OFF;
    r->nv_max = max_s;
    r->exec_in_view = false;
    uint8_t *nv = pbft__dup(m->raw, m->raw_len);
    if (nv) {
        free(r->nv_msg);
        r->nv_msg = nv;
        r->nv_len = m->raw_len;
    }
    /* the checkpoint proof of min_s: may stabilize it here or start a state transfer */
    if (min_s > r->h) {
        pbft__rd cps = vcs[min_i].cps;
        uint32_t ncp = pbft__ru32(&cps);
        for (uint32_t i = 0; i < ncp; i++) {
            size_t len;
            const uint8_t *p = pbft__rblob(&cps, PBFT_MSG_MAX, &len);
            pbft__msg cp;
            if (p && pbft__open(&r->keys, p, len, &cp) == 0) {
                pbft__checkpoint_vote(r, now, &cp);
            }
        }
    }
    pbft__vc_free(vcs, have);
    free(best);
    /* pre-prepares of older views above max_s are void */
    for (uint32_t i = 0; i < r->L; i++) {
        pbft__slot *s = &r->slots[i];
        if (s->used && s->has_pp && s->view < m->view && s->seq > max_s && s->seq > r->last_exec) {
            s->has_pp = s->prepared = s->sent_commit = s->committed = false;
        }
    }
    for (uint32_t i = 0; i < npp; i++) {
        size_t len;
        const uint8_t *p = pbft__rblob(&pps, PBFT_MSG_MAX, &len);
        pbft__msg pp;
        if (p && pbft__open(&r->keys, p, len, &pp) == 0) {
            pbft__install_pp(r, now, p, len, &pp);
        }
    }
    r->vc_active = false;
    r->seq = max_s > r->h ? max_s : r->h;
    for (uint32_t c = 0; c < r->keys.nclients; c++) {
        r->clients[c].assigned_ts = 0;
    }
    /* messages of this view that came before the new view */
    pbft__future *fut = r->future;
    size_t nf = r->nfuture;
    r->future = calloc(PBFT__FUTURE_MAX, sizeof *r->future);
    r->nfuture = 0;
    if (r->future == NULL) {
        r->future = fut;
        r->nfuture = nf;
    } else {
        for (size_t i = 0; i < nf; i++) {
            (void)pbft_replica_receive(r, now, fut[i].from, fut[i].msg, fut[i].len);
            free(fut[i].msg);
        }
        free(fut);
    }
    pbft__propose(r, now);
    pbft__execute_ready(r, now);
    pbft__arm(r, now, true);
    return 0;
}

/* The primary of view r->view with 2f+1 view changes sends the new view. */
static void pbft__send_newview(pbft_replica *r, uint64_t now)
{
    pbft__vc *vcs = calloc(PBFT_MAX_N, sizeof *vcs);
    const pbft__cert **best = calloc(r->L ? r->L : 1, sizeof *best);
    pbft__buf b = {0};
    size_t have = 0;
    if (vcs == NULL || best == NULL) {
        goto out;
    }
    pbft__header(&b, PBFT_NEWVIEW, r->id);
    pbft__u64(&b, r->view);
    pbft__u32(&b, 2 * r->f + 1);
    for (uint32_t i = 0; i < r->n && have < 2 * r->f + 1; i++) {
        pbft__vote *v = &r->vcs[i];
        pbft__msg vm;
        if (!v->has || v->view != r->view || pbft__open(&r->keys, v->msg, v->len, &vm) != 0) {
            continue;
        }
        if (pbft__vc_check(r, &vm, &vcs[have]) != 0) {
            free(vcs[have].certs);
            vcs[have].certs = NULL;
            continue;
        }
        pbft__blob(&b, v->msg, v->len);
        have++;
    }
    if (have < 2 * r->f + 1) {
        goto out;
    }
    uint64_t min_s, max_s;
    size_t min_i;
    pbft__compute_o(r, vcs, have, &min_s, &min_i, &max_s, best);
    pbft__u32(&b, (uint32_t)(max_s - min_s));
    for (uint64_t s = min_s + 1; s <= max_s; s++) {
        const pbft__cert *c = best[s - min_s - 1];
        pbft_wire w = {.type = PBFT_PREPREPARE, .sender = r->id, .view = r->view, .seq = s};
        w.data = c ? c->req : NULL;
        w.len = c ? c->req_len : 0;
        uint8_t *pp;
        size_t pplen;
        if (pbft_wire_encode(r->key, &w, &pp, &pplen) != 0) {
            goto out;
        }
        pbft__blob(&b, pp, pplen);
        free(pp);
    }
    uint8_t *msg;
    size_t len;
    pbft__vc_free(vcs, have);
    vcs = NULL;
    free(best);
    best = NULL;
    if (pbft__finish(r->key, &b, &msg, &len) != 0) {
        return;
    }
    r->nv_sent = true;
    pbft__msg m;
    if (pbft__emit(&r->out, PBFT_TO_ALL, 0, msg, len) && pbft__open(&r->keys, msg, len, &m) == 0) {
        (void)pbft__on_newview(r, now, &m);
    }
    return;
out:
    pbft__vc_free(vcs, have);
    free(best);
    free(b.p);
}

/* What to do with the view changes collected: join f+1 higher views, send or await NEW-VIEW. */
static void pbft__vc_progress(pbft_replica *r, uint64_t now)
{
    uint32_t higher = 0;
    uint64_t lowest = UINT64_MAX;
    for (uint32_t i = 0; i < r->n; i++) {
        const pbft__vote *v = &r->vcs[i];
        if (v->has && v->view > r->view) {
            higher++;
            lowest = v->view < lowest ? v->view : lowest;
        }
    }
    if (higher >= r->f + 1) {
        pbft__start_view_change(r, now, lowest);
        return;
    }
    if (!r->vc_active) {
        return;
    }
    uint32_t k = 0;
    for (uint32_t i = 0; i < r->n; i++) {
        k += r->vcs[i].has && r->vcs[i].view == r->view;
    }
    if (k < 2 * r->f + 1) {
        return;
    }
    if (pbft__primary(r, r->view) == r->id && !r->nv_sent) {
        pbft__send_newview(r, now);
        if (!r->vc_active) {
            return;
        }
    }
    if (r->timer == PBFT__OFF) {
        unsigned sh = r->attempt < 10 ? r->attempt : 10;
        r->timer = now + (r->T << sh);
    }
}

static void pbft__start_view_change(pbft_replica *r, uint64_t now, uint64_t view)
{
    r->view = view;
    r->vc_active = true;
    r->nv_sent = false;
    r->timer = PBFT__OFF;
    r->st.view_changes++;
    pbft__buf b = {0};
    pbft__header(&b, PBFT_VIEWCHANGE, r->id);
    pbft__u64(&b, view);
    pbft__u64(&b, r->h);
    pbft__put(&b, r->h_digest, PBFT_DIGEST_LEN);
    pbft__put(&b, r->h_proof.p, r->h_proof.n);
    uint32_t np = 0;
    for (uint64_t s = r->h + 1; s <= r->h + r->L; s++) {
        const pbft__slot *sl = pbft__slot_find(r, s);
        np += sl && sl->has_pc;
    }
    pbft__u32(&b, np);
    for (uint64_t s = r->h + 1; s <= r->h + r->L; s++) {
        const pbft__slot *sl = pbft__slot_find(r, s);
        if (sl && sl->has_pc) {
            pbft__put(&b, sl->pc, sl->pc_len);
        }
    }
    /* drop buffered messages of views we left behind */
    size_t keep = 0;
    for (size_t i = 0; i < r->nfuture; i++) {
        pbft__msg m;
        if (pbft__open(&r->keys, r->future[i].msg, r->future[i].len, &m) == 0 && m.view >= view) {
            r->future[keep++] = r->future[i];
        } else {
            free(r->future[i].msg);
        }
    }
    r->nfuture = keep;
    uint8_t *msg;
    size_t len;
    if (pbft__finish(r->key, &b, &msg, &len) != 0) {
        return;
    }
    pbft__vote_clear(&r->vcs[r->id]);
    r->vcs[r->id] = (pbft__vote){true, view, {0}, pbft__dup(msg, len), len};
    if (r->vcs[r->id].msg == NULL) {
        r->vcs[r->id].has = false;
    }
    pbft__emit(&r->out, PBFT_TO_ALL, 0, msg, len);
    pbft__vc_progress(r, now);
}

static int pbft__on_viewchange(pbft_replica *r, uint64_t now, const pbft__msg *m)
{
    pbft__vote *v = &r->vcs[m->sender];
    if (m->sender == r->id || (v->has && v->view >= m->view) || m->view < r->view ||
        (m->view == r->view && !r->vc_active)) {
        return 0;
    }
    pbft__vc vc;
    int rc = pbft__vc_check(r, m, &vc);
    free(vc.certs);
    if (rc != 0) {
        return rc;
    }
    uint8_t *copy = pbft__dup(m->raw, m->raw_len);
    if (copy == NULL) {
        return PBFT_ENOMEM;
    }
    pbft__vote_clear(v);
    *v = (pbft__vote){true, m->view, {0}, copy, m->raw_len};
    pbft__vc_progress(r, now);
    return 0;
}

/* ---- entry points ------------------------------------------------------------------------ */

/* A vote that cannot change anything here (its slot is already prepared / committed in its
 * view, or the sender's vote is in): ignored without paying for the signature check. */
static bool pbft__redundant(pbft_replica *r, const pbft__msg *m)
{
    if ((m->type != PBFT_PREPARE && m->type != PBFT_COMMIT) || m->sender >= r->n ||
        m->view != r->view || r->vc_active) {
        return false;
    }
    const pbft__slot *s = pbft__in_window(r, m->seq) ? pbft__slot_find(r, m->seq) : NULL;
    if (s == NULL) {
        return false;
    }
    const pbft__vote *v = m->type == PBFT_PREPARE ? &s->prep[m->sender] : &s->com[m->sender];
    if (v->has && v->view >= m->view) {
        return true;
    }
    return s->has_pp && s->view == m->view &&
           (m->type == PBFT_PREPARE ? s->prepared : s->committed);
}

int pbft_replica_receive(pbft_replica *r, uint64_t now, uint32_t from, const uint8_t *data,
                         size_t len)
{
    pbft__msg m;
    int rc = pbft__decode(&r->keys, data, len, &m, false);
    if (rc == 0 && pbft__redundant(r, &m)) {
        return 0;
    }
    if (rc == 0) {
        rc = pbft__check_sig(&r->keys, &m);
    }
    if (rc == 0) {
        switch (m.type) {
        case PBFT_REQUEST: rc = pbft__on_request(r, now, &m); break;
        case PBFT_PREPREPARE: rc = pbft__on_preprepare(r, now, from, &m); break;
        case PBFT_PREPARE:
        case PBFT_COMMIT: rc = pbft__on_vote(r, now, from, &m); break;
        case PBFT_CHECKPOINT:
            if (m.sender != r->id) {
                pbft__checkpoint_vote(r, now, &m);
            }
            break;
        case PBFT_VIEWCHANGE: rc = pbft__on_viewchange(r, now, &m); break;
        case PBFT_NEWVIEW: rc = pbft__on_newview(r, now, &m); break;
        case PBFT_FETCH: rc = pbft__on_fetch(r, &m); break;
        case PBFT_STATE: rc = pbft__on_state(r, now, &m); break;
        case PBFT_REPLY: rc = PBFT_EBADMSG; break; /* replicas do not take replies */
        }
    }
    if (rc == PBFT_EBADMSG || rc == PBFT_EBADSIG) {
        pbft__reject(r, from);
    }
    return rc;
}

/* Whether this replica, rather than the primary, is behind: it is fetching a state, the
 * view's primary proposed beyond its window, or a sequence number above the next one to
 * execute is committed (2f+1 replicas went on) while the next one misses its pre-prepare.
 * It then waits for the next stable checkpoint instead of starting a view change alone (which
 * would leave it in a view nobody else is in). */
static bool pbft__lagging(const pbft_replica *r)
{
    if (r->vc_active) {
        return false;
    }
    if (r->fetching || r->beyond > r->h + r->L) {
        return true;
    }
    const pbft__slot *next = &r->slots[pbft__idx(r, r->last_exec + 1)];
    if (next->used && next->seq == r->last_exec + 1 && next->has_pp) {
        return false;
    }
    for (uint64_t s = r->last_exec + 2; s <= r->h + r->L; s++) {
        const pbft__slot *sl = &r->slots[pbft__idx(r, s)];
        if (sl->used && sl->seq == s && sl->committed) {
            return true;
        }
    }
    return false;
}

void pbft_replica_tick(pbft_replica *r, uint64_t now)
{
    if (r->timer == PBFT__OFF || now < r->timer) {
        return;
    }
    r->timer = PBFT__OFF;
    if (pbft__lagging(r)) {
        r->timer = now + r->T;
        return;
    }
    if (r->vc_active) {
        r->attempt++;
    }
    pbft__start_view_change(r, now, r->view + 1);
}

/* ---- client ------------------------------------------------------------------------------ */

struct pbft_client {
    uint32_t n, f, id;
    gnutls_privkey_t key;
    pbft__keys keys;
    uint64_t retry;
    uint64_t view;
    uint64_t last_ts;
    bool outstanding, done;
    uint64_t ts;
    int32_t result;
    uint8_t *req;
    size_t req_len;
    uint64_t deadline;
    struct {
        bool has;
        int32_t result;
        uint64_t view;
    } replies[PBFT_MAX_N];
    pbft_outbox out;
};

pbft_client *pbft_client_new(const pbft_client_config *cfg, int *err)
{
    int dummy = 0;
    err = err ? err : &dummy;
    if (cfg == NULL || cfg->n < 4 || cfg->n > PBFT_MAX_N || cfg->key == NULL ||
        cfg->replicas == NULL || cfg->id >= PBFT_MAX_CLIENTS) {
        *err = PBFT_EINVAL;
        return NULL;
    }
    pbft_client *c = calloc(1, sizeof *c);
    if (c == NULL) {
        *err = PBFT_ENOMEM;
        return NULL;
    }
    c->n = cfg->n;
    c->f = (cfg->n - 1) / 3;
    c->id = cfg->id;
    c->key = cfg->key;
    c->keys = (pbft__keys){cfg->n, 0, cfg->replicas, NULL};
    c->retry = cfg->retry_ms ? cfg->retry_ms : 1000;
    c->deadline = PBFT__OFF;
    *err = 0;
    return c;
}

void pbft_client_free(pbft_client *c)
{
    if (c) {
        free(c->req);
        pbft__outbox_free(&c->out);
        free(c);
    }
}

int pbft_client_submit(pbft_client *c, uint64_t now, const void *op, size_t len)
{
    if (op == NULL || len == 0 || len > PBFT_OP_MAX) {
        return PBFT_EINVAL;
    }
    if (pbft_client_busy(c)) {
        return PBFT_EBUSY;
    }
    uint64_t ts = now > c->last_ts ? now : c->last_ts + 1;
    pbft_wire w = {.type = PBFT_REQUEST, .sender = c->id, .ts = ts, .data = op, .len = len};
    uint8_t *msg;
    size_t mlen;
    int rc = pbft_wire_encode(c->key, &w, &msg, &mlen);
    if (rc != 0) {
        return rc;
    }
    free(c->req);
    c->req = msg;
    c->req_len = mlen;
    c->last_ts = c->ts = ts;
    c->outstanding = true;
    c->done = false;
    memset(c->replies, 0, sizeof c->replies);
    pbft__emit(&c->out, PBFT_TO_REPLICA, (uint32_t)(c->view % c->n), pbft__dup(msg, mlen), mlen);
    c->deadline = now + c->retry;
    return 0;
}

int pbft_client_submit_cmd(pbft_client *c, uint64_t now, const json_t *cmd)
{
    struct raft_buffer buf;
    uint64_t ts = now > c->last_ts ? now : c->last_ts + 1;
    int rc = flow_entry_cmd(cmd, c->id, ts, &buf);
    if (rc != 0) {
        return rc == FLOW_ENOMEM ? PBFT_ENOMEM : PBFT_EINVAL;
    }
    rc = pbft_client_submit(c, now, buf.base, buf.len);
    raft_free(buf.base);
    return rc;
}

int pbft_client_receive(pbft_client *c, uint64_t now, const uint8_t *data, size_t len)
{
    (void)now;
    pbft__msg m;
    int rc = pbft__decode(&c->keys, data, len, &m, false);
    if (rc != 0) {
        return rc;
    }
    if (m.type != PBFT_REPLY || m.client != c->id) {
        return PBFT_EBADMSG;
    }
    if (!c->outstanding || c->done || m.ts != c->ts || c->replies[m.sender].has) {
        return 0; /* not needed: no signature check */
    }
    if ((rc = pbft__check_sig(&c->keys, &m)) != 0) {
        return rc;
    }
    c->replies[m.sender].has = true;
    c->replies[m.sender].result = m.result;
    c->replies[m.sender].view = m.view;
    uint32_t k = 0;
    uint64_t view = 0;
    for (uint32_t i = 0; i < c->n; i++) {
        if (c->replies[i].has && c->replies[i].result == m.result) {
            k++;
            view = c->replies[i].view > view ? c->replies[i].view : view;
        }
    }
    if (k >= c->f + 1) {
        c->done = true;
        c->result = m.result;
        c->view = view;
        c->deadline = PBFT__OFF;
    }
    return 0;
}

void pbft_client_tick(pbft_client *c, uint64_t now)
{
    if (!pbft_client_busy(c) || now < c->deadline) {
        return;
    }
    pbft__emit(&c->out, PBFT_TO_ALL, 0, pbft__dup(c->req, c->req_len), c->req_len);
    c->deadline = now + c->retry;
}

uint64_t pbft_client_next_deadline(const pbft_client *c)
{
    return c->deadline;
}

pbft_outbox *pbft_client_outbox(pbft_client *c)
{
    return &c->out;
}

bool pbft_client_done(const pbft_client *c, int32_t *result, uint64_t *ts)
{
    if (c->outstanding && c->done) {
        if (result) {
            *result = c->result;
        }
        if (ts) {
            *ts = c->ts;
        }
        return true;
    }
    return false;
}

bool pbft_client_busy(const pbft_client *c)
{
    return c->outstanding && !c->done;
}

uint64_t pbft_client_view(const pbft_client *c)
{
    return c->view;
}
