/* flow/consensus/gossip.c — push-pull gossip membership (see gossip.h). */
#include "flow/consensus/gossip.h"

#include <stdlib.h>
#include <string.h>

#define GOSSIP__HDR 12   /* "GS" version type sender:u32 count:u32 */
#define GOSSIP__ENTRY 17 /* id inc hb status */
#define GOSSIP__PUSH 1
#define GOSSIP__PULL 2

typedef struct gossip__member {
    uint32_t id;
    uint32_t inc;
    uint64_t hb;
    gossip_status status;
    uint64_t grown; /* local time the version last grew */
} gossip__member;

struct gossip {
    gossip_config cfg;
    gossip__member *m; /* m[0] is this node */
    size_t n, cap;
    uint64_t next_round;
    uint64_t rng;
    gossip_outbox out;
};

const char *gossip_strerror(int err)
{
    switch (err) {
    case GOSSIP_OK: return "ok";
    case GOSSIP_EINVAL: return "invalid argument";
    case GOSSIP_ENOMEM: return "out of memory";
    case GOSSIP_EBADMSG: return "malformed gossip message";
    case GOSSIP_EFULL: return "too many members";
    default: return "unknown error";
    }
}

const char *gossip_status_name(gossip_status s)
{
    switch (s) {
    case GOSSIP_ALIVE: return "alive";
    case GOSSIP_SUSPECT: return "suspect";
    case GOSSIP_DEAD: return "dead";
    }
    return "?";
}

/* splitmix64: the caller's seed makes every choice reproducible */
static uint64_t gossip__rand(gossip *g)
{
    uint64_t z = (g->rng += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

void gossip_outbox_clear(gossip_outbox *ob)
{
    for (size_t i = 0; i < ob->n; i++) {
        free(ob->v[i].data);
    }
    ob->n = 0;
}

gossip *gossip_new(const gossip_config *cfg, uint64_t now, int *err)
{
    int dummy = 0;
    err = err ? err : &dummy;
    *err = GOSSIP_EINVAL;
    if (cfg == NULL) {
        return NULL;
    }
    gossip *g = calloc(1, sizeof *g);
    if (g == NULL) {
        *err = GOSSIP_ENOMEM;
        return NULL;
    }
    g->cfg = *cfg;
    g->cfg.fanout = cfg->fanout ? cfg->fanout : 3;
    g->cfg.round_ms = cfg->round_ms ? cfg->round_ms : 1000;
    g->cfg.suspect_ms = cfg->suspect_ms ? cfg->suspect_ms : 3000;
    g->cfg.dead_ms = cfg->dead_ms ? cfg->dead_ms : 6000;
    if (g->cfg.dead_ms <= g->cfg.suspect_ms) {
        free(g);
        return NULL;
    }
    g->rng = cfg->seed;
    g->cap = 16;
    g->m = calloc(g->cap, sizeof *g->m);
    if (g->m == NULL) {
        free(g);
        *err = GOSSIP_ENOMEM;
        return NULL;
    }
    g->m[0] = (gossip__member){cfg->id, cfg->incarnation, 0, GOSSIP_ALIVE, now};
    g->n = 1;
    g->next_round = now;
    *err = 0;
    return g;
}

void gossip_free(gossip *g)
{
    if (g) {
        gossip_outbox_clear(&g->out);
        free(g->out.v);
        free(g->m);
        free(g);
    }
}

static gossip__member *gossip__find(const gossip *g, uint32_t id)
{
    for (size_t i = 0; i < g->n; i++) {
        if (g->m[i].id == id) {
            return &g->m[i];
        }
    }
    return NULL;
}

static void gossip__set(gossip *g, gossip__member *m, gossip_status s)
{
    if (m->status != s) {
        gossip_status old = m->status;
        m->status = s;
        if (g->cfg.changed) {
            g->cfg.changed(g->cfg.user, m->id, (int)old, s);
        }
    }
}

static gossip__member *gossip__insert(gossip *g, uint64_t now, uint32_t id, uint32_t inc,
                                      uint64_t hb, int *err)
{
    if (g->n == GOSSIP_MAX_MEMBERS) {
        *err = GOSSIP_EFULL;
        return NULL;
    }
    if (g->n == g->cap) {
        gossip__member *v = realloc(g->m, g->cap * 2 * sizeof *v);
        if (v == NULL) {
            *err = GOSSIP_ENOMEM;
            return NULL;
        }
        g->m = v;
        g->cap *= 2;
    }
    gossip__member *m = &g->m[g->n++];
    *m = (gossip__member){id, inc, hb, GOSSIP_ALIVE, now};
    if (g->cfg.changed) {
        g->cfg.changed(g->cfg.user, id, -1, GOSSIP_ALIVE);
    }
    return m;
}

int gossip_add(gossip *g, uint64_t now, uint32_t id)
{
    int err = 0;
    if (gossip__find(g, id)) {
        return 0;
    }
    return gossip__insert(g, now, id, 0, 0, &err) ? 0 : err;
}

int gossip_remove(gossip *g, uint32_t id)
{
    gossip__member *m = gossip__find(g, id);
    if (m == NULL || m == &g->m[0]) {
        return GOSSIP_EINVAL;
    }
    *m = g->m[--g->n]; /* order does not matter past m[0] */
    return 0;
}

static void gossip__put32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

static uint32_t gossip__get32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static void gossip__send(gossip *g, uint32_t to, uint8_t type)
{
    size_t len = GOSSIP__HDR + g->n * GOSSIP__ENTRY;
    uint8_t *p = malloc(len);
    if (p == NULL) {
        return;
    }
    if (g->out.n == g->out.cap) {
        size_t cap = g->out.cap ? g->out.cap * 2 : 8;
        gossip_msg *v = realloc(g->out.v, cap * sizeof *v);
        if (v == NULL) {
            free(p);
            return;
        }
        g->out.v = v;
        g->out.cap = cap;
    }
    p[0] = 'G';
    p[1] = 'S';
    p[2] = 1;
    p[3] = type;
    gossip__put32(p + 4, g->cfg.id);
    gossip__put32(p + 8, (uint32_t)g->n);
    for (size_t i = 0; i < g->n; i++) {
        uint8_t *e = p + GOSSIP__HDR + i * GOSSIP__ENTRY;
        gossip__put32(e, g->m[i].id);
        gossip__put32(e + 4, g->m[i].inc);
        gossip__put32(e + 8, (uint32_t)(g->m[i].hb >> 32));
        gossip__put32(e + 12, (uint32_t)g->m[i].hb);
        e[16] = (uint8_t)g->m[i].status;
    }
    g->out.v[g->out.n++] = (gossip_msg){to, p, len};
}

static bool gossip__newer(uint32_t inc, uint64_t hb, const gossip__member *m)
{
    return inc > m->inc || (inc == m->inc && hb > m->hb);
}

int gossip_receive(gossip *g, uint64_t now, uint32_t from, const uint8_t *data, size_t len)
{
    if (data == NULL || len < GOSSIP__HDR || memcmp(data, "GS", 2) != 0 || data[2] != 1 ||
        (data[3] != GOSSIP__PUSH && data[3] != GOSSIP__PULL)) {
        return GOSSIP_EBADMSG;
    }
    uint32_t sender = gossip__get32(data + 4);
    uint32_t count = gossip__get32(data + 8);
    if (sender != from || sender == g->cfg.id || count > GOSSIP_MAX_MEMBERS ||
        len != GOSSIP__HDR + (size_t)count * GOSSIP__ENTRY) {
        return GOSSIP_EBADMSG;
    }
    for (uint32_t i = 0; i < count; i++) {
        if (data[GOSSIP__HDR + (size_t)i * GOSSIP__ENTRY + 16] > GOSSIP_DEAD) {
            return GOSSIP_EBADMSG;
        }
    }
    int err = 0;
    for (uint32_t i = 0; i < count; i++) {
        const uint8_t *e = data + GOSSIP__HDR + (size_t)i * GOSSIP__ENTRY;
        uint32_t id = gossip__get32(e);
        uint32_t inc = gossip__get32(e + 4);
        uint64_t hb = (uint64_t)gossip__get32(e + 8) << 32 | gossip__get32(e + 12);
        gossip__member *m = gossip__find(g, id);
        if (id == g->cfg.id) {
            /* the others remember a later life of ours: start a new incarnation */
            if (gossip__newer(inc, hb, m) || (inc == m->inc && hb == m->hb && e[16] != 0)) {
                m->inc = inc + 1;
                m->hb = 0;
            }
            continue;
        }
        if (m == NULL) {
            if (gossip__insert(g, now, id, inc, hb, &err) == NULL) {
                return err;
            }
            continue;
        }
        if (gossip__newer(inc, hb, m)) {
            m->inc = inc;
            m->hb = hb;
            m->grown = now;
            gossip__set(g, m, GOSSIP_ALIVE);
        }
    }
    if (data[3] == GOSSIP__PUSH) {
        gossip__send(g, sender, GOSSIP__PULL);
    }
    return 0;
}

static void gossip__round(gossip *g, uint64_t now)
{
    g->m[0].hb++;
    g->m[0].grown = now;
    size_t live = 0, dead = 0;
    for (size_t i = 1; i < g->n; i++) {
        gossip__member *m = &g->m[i];
        uint64_t age = now - m->grown;
        if (age >= g->cfg.dead_ms) {
            gossip__set(g, m, GOSSIP_DEAD);
        } else if (age >= g->cfg.suspect_ms && m->status == GOSSIP_ALIVE) {
            gossip__set(g, m, GOSSIP_SUSPECT);
        }
        if (m->status == GOSSIP_DEAD) {
            dead++;
        } else {
            live++;
        }
    }
    /* fanout distinct members among the ones not held dead (partial Fisher-Yates over the
     * indices), then one dead member as a probe */
    size_t *idx = malloc((g->n ? g->n : 1) * sizeof *idx);
    if (idx == NULL) {
        return;
    }
    size_t k = 0, d = 0;
    for (size_t i = 1; i < g->n; i++) {
        if (g->m[i].status != GOSSIP_DEAD) {
            idx[k++] = i;
        } else {
            idx[live + d++] = i;
        }
    }
    for (size_t j = 0; j < g->cfg.fanout && j < live; j++) {
        size_t pick = j + (size_t)(gossip__rand(g) % (live - j));
        size_t t = idx[j];
        idx[j] = idx[pick];
        idx[pick] = t;
        gossip__send(g, g->m[idx[j]].id, GOSSIP__PUSH);
    }
    if (dead > 0) {
        gossip__send(g, g->m[idx[live + gossip__rand(g) % dead]].id, GOSSIP__PUSH);
    }
    free(idx);
}

void gossip_tick(gossip *g, uint64_t now)
{
    if (now < g->next_round) {
        return;
    }
    gossip__round(g, now);
    g->next_round = now + g->cfg.round_ms;
}

uint64_t gossip_next_deadline(const gossip *g)
{
    return g->next_round;
}

gossip_outbox *gossip_get_outbox(gossip *g)
{
    return &g->out;
}

int gossip_member_status(const gossip *g, uint32_t id)
{
    const gossip__member *m = gossip__find(g, id);
    return m ? (int)m->status : -1;
}

uint32_t gossip_incarnation(const gossip *g)
{
    return g->m[0].inc;
}

void gossip_counts(const gossip *g, size_t *alive, size_t *suspect, size_t *dead)
{
    size_t c[3] = {0, 0, 0};
    for (size_t i = 0; i < g->n; i++) {
        c[g->m[i].status]++;
    }
    if (alive) {
        *alive = c[GOSSIP_ALIVE];
    }
    if (suspect) {
        *suspect = c[GOSSIP_SUSPECT];
    }
    if (dead) {
        *dead = c[GOSSIP_DEAD];
    }
}

bool gossip_has_quorum(const gossip *g)
{
    size_t alive;
    gossip_counts(g, &alive, NULL, NULL);
    return alive * 2 > g->n;
}

bool gossip_paused(const gossip *g)
{
    return !gossip_has_quorum(g);
}
