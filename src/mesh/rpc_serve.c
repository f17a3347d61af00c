/* src/mesh/rpc_serve.c — the serving side of mesh RPC (see rpc_serve.h). */
#include "rpc_serve.h"

#include <stdlib.h>
#include <string.h>

#include "base/dheap.h"
#include "base/hmap.h"

#define RPCS_DEFAULT_READVERTISE 240000u
#define RPCS_DEFAULT_MAX_PROCS 4096u
#define RPCS_DEFAULT_MAX_HANDLERS 64u
#define RPCS_DEFAULT_MAX_SERVED 100000u
#define RPCS_ACT_RING 64u /* initial action queue size (grows) */

typedef struct rpcs_proc {
    char name[RPCS_MAX_PROC + 1];
    size_t len;
    uint64_t *conns; /* handlers */
    uint32_t n, cap;
    uint32_t rr; /* round robin position */
    dheap_node readv;
} rpcs_proc;

typedef struct rpcs_served {
    uint8_t id[RPCS_ID_LEN];
    uint64_t conn;
    rpcs_origin origin;
    dheap_node due;
} rpcs_served;

struct rpcs {
    rpcs_config cfg;
    hmap procs;  /* name -> rpcs_proc */
    hmap served; /* id -> rpcs_served */
    dheap readv; /* re-advertisement deadlines */
    dheap due;   /* served call deadlines */
    uint64_t next_id;
    rpcs_action *acts; /* FIFO ring */
    size_t ahead, an, acap;
    rpcs_stats st;
};

const char *rpcs_strerror(int err)
{
    switch (err) {
    case RPCS_OK: return "ok";
    case RPCS_EINVAL: return "invalid argument";
    case RPCS_ENOMEM: return "out of memory";
    case RPCS_EEXIST: return "already handled by this connection";
    case RPCS_ELIMIT: return "limit reached";
    case RPCS_ENOENT: return "no such handler or call";
    default: return "unknown error";
    }
}

#define RPCS_CONTAINER(ptr, type, member) ((type *)(void *)((char *)(ptr)-offsetof(type, member)))

rpcs *rpcs_new(const rpcs_config *cfg)
{
    rpcs *s = calloc(1, sizeof *s);
    if (s == NULL) {
        return NULL;
    }
    if (cfg != NULL) {
        s->cfg = *cfg;
    }
    if (s->cfg.readvertise_ms == 0) {
        s->cfg.readvertise_ms = RPCS_DEFAULT_READVERTISE;
    }
    if (s->cfg.max_procs == 0) {
        s->cfg.max_procs = RPCS_DEFAULT_MAX_PROCS;
    }
    if (s->cfg.max_handlers == 0) {
        s->cfg.max_handlers = RPCS_DEFAULT_MAX_HANDLERS;
    }
    if (s->cfg.max_served == 0) {
        s->cfg.max_served = RPCS_DEFAULT_MAX_SERVED;
    }
    if (s->cfg.seed == 0) {
        s->cfg.seed = 0x6d6163756c617270ull; /* "macularp" */
    }
    hmap_init(&s->procs);
    hmap_init(&s->served);
    dheap_init(&s->readv);
    dheap_init(&s->due);
    return s;
}

void rpcs_free(rpcs *s)
{
    if (s == NULL) {
        return;
    }
    size_t it = 0;
    const hmap_slot *e;
    while ((e = hmap_next(&s->procs, &it)) != NULL) {
        rpcs_proc *p = e->val;
        free(p->conns);
        free(p);
    }
    it = 0;
    while ((e = hmap_next(&s->served, &it)) != NULL) {
        free(e->val);
    }
    hmap_free(&s->procs);
    hmap_free(&s->served);
    dheap_free(&s->readv);
    dheap_free(&s->due);
    free(s->acts);
    free(s);
}

/* ---- actions ------------------------------------------------------------------------------ */

static rpcs_action *rpcs__push(rpcs *s, rpcs_action_kind kind)
{
    if (s->an == s->acap) {
        size_t ncap = s->acap ? s->acap * 2 : RPCS_ACT_RING;
        rpcs_action *na = malloc(ncap * sizeof *na);
        if (na == NULL) {
            return NULL;
        }
        for (size_t i = 0; i < s->an; i++) {
            na[i] = s->acts[(s->ahead + i) % s->acap];
        }
        free(s->acts);
        s->acts = na;
        s->acap = ncap;
        s->ahead = 0;
    }
    rpcs_action *a = &s->acts[(s->ahead + s->an) % s->acap];
    s->an++;
    memset(a, 0, sizeof *a);
    a->kind = kind;
    return a;
}

bool rpcs_next_action(rpcs *s, rpcs_action *out)
{
    if (s->an == 0) {
        return false;
    }
    *out = s->acts[s->ahead];
    s->ahead = (s->ahead + 1) % s->acap;
    s->an--;
    return true;
}

static void rpcs__proc_action(rpcs *s, rpcs_action_kind kind, const rpcs_proc *p)
{
    rpcs_action *a = rpcs__push(s, kind);
    if (a != NULL) {
        memcpy(a->procedure, p->name, p->len + 1);
        if (kind == RPCS_ACT_ADVERTISE) {
            s->st.advertisements++;
        } else {
            s->st.unadvertisements++;
        }
    }
}

static void rpcs__fail(rpcs *s, rpcs_served *c, const char *code, const char *message)
{
    rpcs_action *a = rpcs__push(s, RPCS_ACT_FAIL);
    if (a != NULL) {
        a->origin = c->origin;
        a->code = code;
        a->message = message;
    }
}

/* ---- handlers ----------------------------------------------------------------------------- */

static bool rpcs__name_ok(const char *name, size_t len)
{
    return name != NULL && len > 0 && len <= RPCS_MAX_PROC && memchr(name, '\0', len) == NULL;
}

int rpcs_advertise(rpcs *s, const char *procedure, uint64_t conn, uint64_t now_ms)
{
    size_t len = procedure ? strnlen(procedure, RPCS_MAX_PROC + 1) : 0;
    if (!rpcs__name_ok(procedure, len)) {
        return RPCS_EINVAL;
    }
    rpcs_proc *p = hmap_get(&s->procs, procedure, len);
    if (p == NULL) {
        if (s->procs.count >= s->cfg.max_procs) {
            return RPCS_ELIMIT;
        }
        p = calloc(1, sizeof *p);
        if (p == NULL) {
            return RPCS_ENOMEM;
        }
        memcpy(p->name, procedure, len);
        p->len = len;
        dheap_node_init(&p->readv);
        if (hmap_put(&s->procs, p->name, p->len, p, NULL) != HMAP_OK) {
            free(p);
            return RPCS_ENOMEM;
        }
    }
    for (uint32_t i = 0; i < p->n; i++) {
        if (p->conns[i] == conn) {
            return RPCS_EEXIST;
        }
    }
    if (p->n >= s->cfg.max_handlers) {
        return RPCS_ELIMIT;
    }
    if (p->n == p->cap) {
        uint32_t ncap = p->cap ? p->cap * 2 : 2;
        uint64_t *nc = realloc(p->conns, ncap * sizeof *nc);
        if (nc == NULL) {
            if (p->n == 0) {
                hmap_del(&s->procs, p->name, p->len);
                free(p);
            }
            return RPCS_ENOMEM;
        }
        p->conns = nc;
        p->cap = ncap;
    }
    p->conns[p->n++] = conn;
    s->st.handlers++;
    if (p->n == 1) {
        s->st.procedures++;
        rpcs__proc_action(s, RPCS_ACT_ADVERTISE, p);
        if (dheap_push(&s->readv, &p->readv, now_ms + s->cfg.readvertise_ms) != 0) {
            /* no re-advertisement: the procedure lives one TTL in the DHT; nothing leaks */
            dheap_node_init(&p->readv);
        }
    }
    return RPCS_OK;
}

static void rpcs__remove_at(rpcs *s, rpcs_proc *p, uint32_t i)
{
    p->conns[i] = p->conns[--p->n];
    s->st.handlers--;
    if (p->n == 0) {
        s->st.procedures--;
        rpcs__proc_action(s, RPCS_ACT_UNADVERTISE, p);
        dheap_remove(&s->readv, &p->readv);
        hmap_del(&s->procs, p->name, p->len);
        free(p->conns);
        free(p);
    }
}

int rpcs_unadvertise(rpcs *s, const char *procedure, uint64_t conn, uint64_t now_ms)
{
    (void)now_ms;
    size_t len = procedure ? strnlen(procedure, RPCS_MAX_PROC + 1) : 0;
    if (!rpcs__name_ok(procedure, len)) {
        return RPCS_EINVAL;
    }
    rpcs_proc *p = hmap_get(&s->procs, procedure, len);
    for (uint32_t i = 0; p != NULL && i < p->n; i++) {
        if (p->conns[i] == conn) {
            rpcs__remove_at(s, p, i);
            return RPCS_OK;
        }
    }
    return RPCS_ENOENT;
}

size_t rpcs_handler_down(rpcs *s, uint64_t conn, uint64_t now_ms)
{
    (void)now_ms;
    /* Collect first: the maps must not change while they are walked. */
    size_t nprocs = 0, it = 0;
    const hmap_slot *e;
    rpcs_proc **procs = malloc((s->procs.count ? s->procs.count : 1) * sizeof *procs);
    while (procs != NULL && (e = hmap_next(&s->procs, &it)) != NULL) {
        rpcs_proc *p = e->val;
        for (uint32_t i = 0; i < p->n; i++) {
            if (p->conns[i] == conn) {
                procs[nprocs++] = p;
                break;
            }
        }
    }
    for (size_t k = 0; k < nprocs; k++) {
        rpcs_proc *p = procs[k];
        for (uint32_t i = 0; i < p->n; i++) {
            if (p->conns[i] == conn) {
                rpcs__remove_at(s, p, i); /* may free p: nothing of it is used after */
                break;
            }
        }
    }
    free(procs);
    size_t nserved = 0;
    it = 0;
    rpcs_served **calls = malloc((s->served.count ? s->served.count : 1) * sizeof *calls);
    while (calls != NULL && (e = hmap_next(&s->served, &it)) != NULL) {
        rpcs_served *c = e->val;
        if (c->conn == conn) {
            calls[nserved++] = c;
        }
    }
    for (size_t k = 0; k < nserved; k++) {
        rpcs_served *c = calls[k];
        rpcs__fail(s, c, "no_handler", "the handler disconnected before answering");
        hmap_del(&s->served, c->id, RPCS_ID_LEN);
        dheap_remove(&s->due, &c->due);
        free(c);
        s->st.handler_lost++;
    }
    free(calls);
    return nserved;
}

bool rpcs_pick(rpcs *s, const char *procedure, size_t len, uint64_t *conn)
{
    if (len == 0 || len > RPCS_MAX_PROC) {
        return false;
    }
    rpcs_proc *p = hmap_get(&s->procs, procedure, len);
    if (p == NULL || p->n == 0) {
        return false;
    }
    *conn = p->conns[p->rr % p->n];
    p->rr = (p->rr + 1) % p->n;
    return true;
}

size_t rpcs_handlers(const rpcs *s, const char *procedure, size_t len)
{
    const rpcs_proc *p =
        len > 0 && len <= RPCS_MAX_PROC ? hmap_get(&s->procs, procedure, len) : NULL;
    return p ? p->n : 0;
}

/* ---- served calls -------------------------------------------------------------------------- */

int rpcs_serve(rpcs *s, const rpcs_origin *origin, uint64_t conn, uint64_t deadline_ms,
               uint8_t id[RPCS_ID_LEN])
{
    if (origin == NULL || origin->call_id_len > RPCS_CALL_ID_MAX) {
        return RPCS_EINVAL;
    }
    if (s->served.count >= s->cfg.max_served) {
        return RPCS_ELIMIT;
    }
    rpcs_served *c = calloc(1, sizeof *c);
    if (c == NULL) {
        return RPCS_ENOMEM;
    }
    uint64_t n = ++s->next_id;
    memcpy(c->id, &s->cfg.seed, 8);
    memcpy(c->id + 8, &n, 8);
    c->conn = conn;
    c->origin = *origin;
    dheap_node_init(&c->due);
    if (hmap_put(&s->served, c->id, RPCS_ID_LEN, c, NULL) != HMAP_OK) {
        free(c);
        return RPCS_ENOMEM;
    }
    if (dheap_push(&s->due, &c->due, deadline_ms) != 0) {
        hmap_del(&s->served, c->id, RPCS_ID_LEN);
        free(c);
        return RPCS_ENOMEM;
    }
    memcpy(id, c->id, RPCS_ID_LEN);
    s->st.served++;
    return RPCS_OK;
}

int rpcs_reply(rpcs *s, const uint8_t *id, size_t id_len, uint64_t conn, rpcs_origin *out)
{
    if (id == NULL || id_len != RPCS_ID_LEN) {
        return RPCS_ENOENT;
    }
    rpcs_served *c = hmap_get(&s->served, id, RPCS_ID_LEN);
    if (c == NULL || c->conn != conn) {
        return RPCS_ENOENT;
    }
    *out = c->origin;
    hmap_del(&s->served, c->id, RPCS_ID_LEN);
    dheap_remove(&s->due, &c->due);
    free(c);
    s->st.replied++;
    return RPCS_OK;
}

void rpcs_tick(rpcs *s, uint64_t now_ms)
{
    dheap_node *n;
    while ((n = dheap_pop_due(&s->due, now_ms)) != NULL) {
        rpcs_served *c = RPCS_CONTAINER(n, rpcs_served, due);
        rpcs__fail(s, c, "timeout", "the handler did not answer in time");
        hmap_del(&s->served, c->id, RPCS_ID_LEN);
        free(c);
        s->st.timeouts++;
    }
    while ((n = dheap_pop_due(&s->readv, now_ms)) != NULL) {
        rpcs_proc *p = RPCS_CONTAINER(n, rpcs_proc, readv);
        rpcs__proc_action(s, RPCS_ACT_ADVERTISE, p);
        (void)dheap_push(&s->readv, &p->readv, now_ms + s->cfg.readvertise_ms);
    }
}

uint64_t rpcs_next_deadline(const rpcs *s)
{
    uint64_t a = dheap_min(&s->due), b = dheap_min(&s->readv);
    return a < b ? a : b;
}

void rpcs_get_stats(const rpcs *s, rpcs_stats *out)
{
    *out = s->st;
    out->served_pending = s->served.count;
}

/* ---- routing ------------------------------------------------------------------------------- */

rpcs_route rpcs_route_decide(const uint8_t self[RPCS_NODE_ID_LEN], const uint8_t *dest,
                             size_t dest_len, uint32_t hop_count, uint32_t max_hops)
{
    if (dest == NULL || dest_len != RPCS_NODE_ID_LEN) {
        return RPCS_ROUTE_INVALID;
    }
    if (memcmp(self, dest, RPCS_NODE_ID_LEN) == 0) {
        return RPCS_ROUTE_LOCAL;
    }
    uint32_t cap = max_hops == 0 || max_hops > RPCS_MAX_HOPS ? RPCS_MAX_HOPS : max_hops;
    return hop_count >= cap ? RPCS_ROUTE_MAX_HOPS : RPCS_ROUTE_FORWARD;
}

/* <0 when a is closer to t than b, >0 when farther, 0 when equal. */
static int rpcs__cmp(const uint8_t *t, const uint8_t *a, const uint8_t *b)
{
    for (size_t i = 0; i < RPCS_NODE_ID_LEN; i++) {
        uint8_t da = (uint8_t)(a[i] ^ t[i]), db = (uint8_t)(b[i] ^ t[i]);
        if (da != db) {
            return da < db ? -1 : 1;
        }
    }
    return 0;
}

int rpcs_next_hop(const uint8_t self[RPCS_NODE_ID_LEN], const uint8_t dest[RPCS_NODE_ID_LEN],
                  const uint8_t (*cands)[RPCS_NODE_ID_LEN], size_t n, const uint8_t *exclude,
                  bool allow_dest)
{
    int best = -1;
    for (size_t i = 0; i < n; i++) {
        const uint8_t *c = cands[i];
        bool is_dest = memcmp(c, dest, RPCS_NODE_ID_LEN) == 0;
        if (memcmp(c, self, RPCS_NODE_ID_LEN) == 0 ||
            (exclude != NULL && memcmp(c, exclude, RPCS_NODE_ID_LEN) == 0) ||
            (is_dest && !allow_dest)) {
            continue;
        }
        if (is_dest) {
            return (int)i;
        }
        if (best < 0 || rpcs__cmp(dest, c, cands[best]) < 0) {
            best = (int)i;
        }
    }
    return best;
}
