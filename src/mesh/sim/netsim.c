/* src/mesh/sim/netsim.c — the deterministic network simulator (see netsim.h). */
#include "mesh/sim/netsim.h"

#include <stdlib.h>
#include <string.h>

enum { NETSIM__DELIVER = 1, NETSIM__TIMER, NETSIM__LEAVE, NETSIM__JOIN };

typedef struct netsim__ev {
    uint64_t at;   /* us */
    uint64_t seq;  /* scheduling order: ties on `at` run first-scheduled first */
    uint64_t tag;  /* timer tag; churn generation */
    uint8_t *data; /* DELIVER: owned copy */
    size_t len;    /* DELIVER */
    uint32_t to;   /* DELIVER, TIMER */
    uint32_t from; /* DELIVER */
    uint32_t inc;  /* incarnation of `to` when scheduled */
    uint8_t kind;  /* NETSIM__* */
} netsim__ev;

/* A set of node indices with O(1) insert, remove and random pick. */
typedef struct netsim__set {
    uint32_t *items;
    uint32_t *pos; /* pos[node] = index in items, UINT32_MAX if absent */
    uint32_t n;
} netsim__set;

struct netsim {
    netsim_config cfg;
    netsim_ops ops;
    void *ctx;
    uint64_t now;
    uint64_t seq;
    uint64_t s[4]; /* xoshiro256** state */
    uint64_t trace;

    netsim__ev *heap; /* binary min-heap on (at, seq) */
    size_t nheap, heap_cap;

    uint8_t *up;                  /* per node */
    uint8_t *churnable;           /* per node */
    uint32_t *inc;                /* incarnation per node */
    uint32_t *group;              /* partition group per node */
    netsim__set up_set, down_set; /* churnable nodes, up / down */

    double leave_rate, join_rate; /* per second */
    uint64_t churn_stop, churn_gen;

    netsim_stats st;
};

const char *netsim_strerror(int err)
{
    switch (err) {
    case NETSIM_OK: return "ok";
    case NETSIM_EINVAL: return "invalid_argument";
    case NETSIM_ENOMEM: return "no_memory";
    default: return "unknown_error";
    }
}

void netsim_config_default(netsim_config *cfg)
{
    memset(cfg, 0, sizeof *cfg);
    cfg->seed = 1;
    cfg->latency = NETSIM_LAT_EXP;
    cfg->lat_min_us = 5000;
    cfg->lat_spread_us = 20000;
    cfg->loss = 0.0;
}

/* ---- randomness ------------------------------------------------------------------------- */

static uint64_t netsim__splitmix(uint64_t *x)
{
    uint64_t z = (*x += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static uint64_t netsim__rotl(uint64_t x, int k)
{
    return (x << k) | (x >> (64 - k));
}

uint64_t netsim_rand(netsim *ns)
{
    uint64_t *s = ns->s;
    uint64_t r = netsim__rotl(s[1] * 5, 7) * 9;
    uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = netsim__rotl(s[3], 45);
    return r;
}

uint64_t netsim_rand_below(netsim *ns, uint64_t n)
{
    if (n == 0) {
        return 0;
    }
    uint64_t limit = UINT64_MAX - UINT64_MAX % n; /* reject the biased tail */
    uint64_t r;
    do {
        r = netsim_rand(ns);
    } while (r >= limit);
    return r % n;
}

double netsim_rand_unit(netsim *ns)
{
    return (double)(netsim_rand(ns) >> 11) * (1.0 / 9007199254740992.0);
}

/* ln(x) for x > 0 in plain arithmetic (no libm, the same result everywhere): x = m * 2^e
 * with m in [1, 2), ln m = 2 atanh((m - 1) / (m + 1)). */
static double netsim__ln(double x)
{
    int e = 0;
    while (x >= 2.0) {
        x *= 0.5;
        e++;
    }
    while (x < 1.0) {
        x *= 2.0;
        e--;
    }
    double z = (x - 1.0) / (x + 1.0), z2 = z * z, term = z, sum = 0.0;
    for (int k = 1; k < 40; k += 2) {
        sum += term / k;
        term *= z2;
    }
    return 2.0 * sum + e * 0.69314718055994530942;
}

/* Exp(mean) sample. */
static double netsim__exp(netsim *ns, double mean)
{
    double u = 1.0 - netsim_rand_unit(ns); /* (0, 1] */
    return -netsim__ln(u) * mean;
}

/* ---- trace ------------------------------------------------------------------------------ */

static void netsim__mix64(netsim *ns, uint64_t v)
{
    uint64_t x = ns->trace ^ v;
    ns->trace = netsim__splitmix(&x);
}

void netsim_trace_mix(netsim *ns, const void *data, size_t len)
{
    const uint8_t *p = data;
    uint64_t h = 0xcbf29ce484222325ull;
    size_t i = 0;
    for (; i + 8 <= len; i += 8) {
        uint64_t w;
        memcpy(&w, p + i, 8);
        h = (h ^ w) * 0x100000001b3ull;
        h ^= h >> 29;
    }
    for (; i < len; i++) {
        h = (h ^ p[i]) * 0x100000001b3ull;
    }
    netsim__mix64(ns, h ^ len);
}

uint64_t netsim_trace_hash(const netsim *ns)
{
    return ns->trace;
}

/* ---- the event heap --------------------------------------------------------------------- */

static bool netsim__before(const netsim__ev *a, const netsim__ev *b)
{
    return a->at < b->at || (a->at == b->at && a->seq < b->seq);
}

static int netsim__push(netsim *ns, netsim__ev *ev)
{
    if (ns->nheap == ns->heap_cap) {
        size_t nc = ns->heap_cap == 0 ? 1024 : ns->heap_cap * 2;
        netsim__ev *nh = realloc(ns->heap, nc * sizeof *nh);
        if (nh == NULL) {
            return NETSIM_ENOMEM;
        }
        ns->heap = nh;
        ns->heap_cap = nc;
    }
    ev->seq = ns->seq++;
    size_t i = ns->nheap++;
    while (i > 0) {
        size_t parent = (i - 1) / 2;
        if (!netsim__before(ev, &ns->heap[parent])) {
            break;
        }
        ns->heap[i] = ns->heap[parent];
        i = parent;
    }
    ns->heap[i] = *ev;
    if (ns->nheap > ns->st.max_pending) {
        ns->st.max_pending = ns->nheap;
    }
    return 0;
}

static void netsim__pop(netsim *ns, netsim__ev *out)
{
    *out = ns->heap[0];
    netsim__ev last = ns->heap[--ns->nheap];
    size_t i = 0, n = ns->nheap;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= n) {
            break;
        }
        if (c + 1 < n && netsim__before(&ns->heap[c + 1], &ns->heap[c])) {
            c++;
        }
        if (!netsim__before(&ns->heap[c], &last)) {
            break;
        }
        ns->heap[i] = ns->heap[c];
        i = c;
    }
    if (n > 0) {
        ns->heap[i] = last;
    }
}

/* ---- node sets -------------------------------------------------------------------------- */

static void netsim__set_add(netsim__set *s, uint32_t node)
{
    if (s->pos[node] == UINT32_MAX) {
        s->pos[node] = s->n;
        s->items[s->n++] = node;
    }
}

static void netsim__set_del(netsim__set *s, uint32_t node)
{
    uint32_t i = s->pos[node];
    if (i == UINT32_MAX) {
        return;
    }
    uint32_t last = s->items[--s->n];
    s->items[i] = last;
    s->pos[last] = i;
    s->pos[node] = UINT32_MAX;
}

static void netsim__sets_update(netsim *ns, uint32_t node)
{
    netsim__set_del(&ns->up_set, node);
    netsim__set_del(&ns->down_set, node);
    if (ns->churnable[node]) {
        netsim__set_add(ns->up[node] ? &ns->up_set : &ns->down_set, node);
    }
}

/* ---- lifecycle -------------------------------------------------------------------------- */

int netsim_create(const netsim_config *cfg, const netsim_ops *ops, void *ctx, netsim **out)
{
    if (cfg == NULL || ops == NULL || out == NULL || ops->deliver == NULL || cfg->nodes == 0 ||
        cfg->nodes == UINT32_MAX || !(cfg->loss >= 0.0 && cfg->loss <= 1.0) ||
        cfg->latency > NETSIM_LAT_EXP) {
        return NETSIM_EINVAL;
    }
    *out = NULL;
    netsim *ns = calloc(1, sizeof *ns);
    if (ns == NULL) {
        return NETSIM_ENOMEM;
    }
    ns->cfg = *cfg;
    ns->ops = *ops;
    ns->ctx = ctx;
    uint32_t n = cfg->nodes;
    ns->up = malloc(n);
    ns->churnable = malloc(n);
    ns->inc = calloc(n, sizeof *ns->inc);
    ns->group = calloc(n, sizeof *ns->group);
    ns->up_set.items = malloc(n * sizeof(uint32_t));
    ns->up_set.pos = malloc(n * sizeof(uint32_t));
    ns->down_set.items = malloc(n * sizeof(uint32_t));
    ns->down_set.pos = malloc(n * sizeof(uint32_t));
    if (ns->up == NULL || ns->churnable == NULL || ns->inc == NULL || ns->group == NULL ||
        ns->up_set.items == NULL || ns->up_set.pos == NULL || ns->down_set.items == NULL ||
        ns->down_set.pos == NULL) {
        netsim_destroy(ns);
        return NETSIM_ENOMEM;
    }
    memset(ns->up, 1, n);
    memset(ns->churnable, 1, n);
    memset(ns->up_set.pos, 0xff, n * sizeof(uint32_t));
    memset(ns->down_set.pos, 0xff, n * sizeof(uint32_t));
    for (uint32_t i = 0; i < n; i++) {
        netsim__set_add(&ns->up_set, i);
    }
    uint64_t x = cfg->seed;
    for (int i = 0; i < 4; i++) {
        ns->s[i] = netsim__splitmix(&x);
    }
    ns->trace = 0x6a09e667f3bcc908ull ^ cfg->seed;
    *out = ns;
    return 0;
}

void netsim_destroy(netsim *ns)
{
    if (ns == NULL) {
        return;
    }
    for (size_t i = 0; i < ns->nheap; i++) {
        free(ns->heap[i].data);
    }
    free(ns->heap);
    free(ns->up);
    free(ns->churnable);
    free(ns->inc);
    free(ns->group);
    free(ns->up_set.items);
    free(ns->up_set.pos);
    free(ns->down_set.items);
    free(ns->down_set.pos);
    free(ns);
}

uint64_t netsim_now(const netsim *ns)
{
    return ns->now;
}

uint32_t netsim_nodes(const netsim *ns)
{
    return ns->cfg.nodes;
}

size_t netsim_pending(const netsim *ns)
{
    return ns->nheap;
}

void netsim_get_stats(const netsim *ns, netsim_stats *st)
{
    *st = ns->st;
}

/* ---- messages and timers ---------------------------------------------------------------- */

static uint64_t netsim__latency(netsim *ns)
{
    uint64_t spread = ns->cfg.lat_spread_us;
    if (spread == 0) {
        return ns->cfg.lat_min_us;
    }
    if (ns->cfg.latency == NETSIM_LAT_UNIFORM) {
        return ns->cfg.lat_min_us + netsim_rand_below(ns, spread + 1);
    }
    double x = netsim__exp(ns, (double)spread);
    double cap = 20.0 * (double)spread;
    return ns->cfg.lat_min_us + (uint64_t)(x < cap ? x : cap);
}

int netsim_send(netsim *ns, uint32_t from, uint32_t to, const void *data, size_t len)
{
    if (from >= ns->cfg.nodes || to >= ns->cfg.nodes || (data == NULL && len > 0)) {
        return NETSIM_EINVAL;
    }
    ns->st.sent++;
    if (!ns->up[from]) {
        ns->st.to_down++;
        return 0;
    }
    if (ns->group[from] != ns->group[to]) {
        ns->st.partitioned++;
        return 0;
    }
    if (ns->cfg.loss > 0.0 && netsim_rand_unit(ns) < ns->cfg.loss) {
        ns->st.lost++;
        return 0;
    }
    netsim__ev ev;
    memset(&ev, 0, sizeof ev);
    ev.kind = NETSIM__DELIVER;
    ev.at = ns->now + netsim__latency(ns);
    ev.to = to;
    ev.from = from;
    ev.inc = ns->inc[to];
    ev.len = len;
    ev.data = malloc(len > 0 ? len : 1);
    if (ev.data == NULL) {
        return NETSIM_ENOMEM;
    }
    if (len > 0) {
        memcpy(ev.data, data, len);
    }
    int rv = netsim__push(ns, &ev);
    if (rv != 0) {
        free(ev.data);
    }
    return rv;
}

int netsim_timer(netsim *ns, uint32_t node, uint64_t at, uint64_t tag)
{
    if (node >= ns->cfg.nodes) {
        return NETSIM_EINVAL;
    }
    netsim__ev ev;
    memset(&ev, 0, sizeof ev);
    ev.kind = NETSIM__TIMER;
    ev.at = at < ns->now ? ns->now : at;
    ev.to = node;
    ev.inc = ns->inc[node];
    ev.tag = tag;
    return netsim__push(ns, &ev);
}

/* ---- nodes, partitions, churn ----------------------------------------------------------- */

int netsim_set_up(netsim *ns, uint32_t node, bool up)
{
    if (node >= ns->cfg.nodes) {
        return NETSIM_EINVAL;
    }
    if (up && !ns->up[node]) {
        ns->inc[node]++;
    }
    ns->up[node] = up ? 1 : 0;
    netsim__sets_update(ns, node);
    return 0;
}

bool netsim_is_up(const netsim *ns, uint32_t node)
{
    return node < ns->cfg.nodes && ns->up[node];
}

uint32_t netsim_incarnation(const netsim *ns, uint32_t node)
{
    return node < ns->cfg.nodes ? ns->inc[node] : 0;
}

int netsim_set_churnable(netsim *ns, uint32_t node, bool churnable)
{
    if (node >= ns->cfg.nodes) {
        return NETSIM_EINVAL;
    }
    ns->churnable[node] = churnable ? 1 : 0;
    netsim__sets_update(ns, node);
    return 0;
}

int netsim_set_loss(netsim *ns, double loss)
{
    if (!(loss >= 0.0 && loss <= 1.0)) {
        return NETSIM_EINVAL;
    }
    ns->cfg.loss = loss;
    return 0;
}

int netsim_set_group(netsim *ns, uint32_t node, uint32_t group)
{
    if (node >= ns->cfg.nodes) {
        return NETSIM_EINVAL;
    }
    ns->group[node] = group;
    return 0;
}

uint32_t netsim_group(const netsim *ns, uint32_t node)
{
    return node < ns->cfg.nodes ? ns->group[node] : 0;
}

void netsim_heal(netsim *ns)
{
    memset(ns->group, 0, ns->cfg.nodes * sizeof *ns->group);
}

static int netsim__schedule_churn(netsim *ns, uint8_t kind, uint64_t from)
{
    double rate = kind == NETSIM__LEAVE ? ns->leave_rate : ns->join_rate;
    if (rate <= 0.0) {
        return 0;
    }
    double gap = netsim__exp(ns, 1e6 / rate);
    uint64_t at = from + (uint64_t)gap;
    if (at > ns->churn_stop) {
        return 0;
    }
    netsim__ev ev;
    memset(&ev, 0, sizeof ev);
    ev.kind = kind;
    ev.at = at;
    ev.tag = ns->churn_gen;
    return netsim__push(ns, &ev);
}

int netsim_churn(netsim *ns, double leaves_per_s, double joins_per_s, uint64_t start, uint64_t stop)
{
    if (!(leaves_per_s >= 0.0) || !(joins_per_s >= 0.0) || stop < start) {
        return NETSIM_EINVAL;
    }
    ns->churn_gen++;
    ns->leave_rate = leaves_per_s;
    ns->join_rate = joins_per_s;
    ns->churn_stop = stop;
    if (start < ns->now) {
        start = ns->now;
    }
    int rv = netsim__schedule_churn(ns, NETSIM__LEAVE, start);
    return rv != 0 ? rv : netsim__schedule_churn(ns, NETSIM__JOIN, start);
}

/* ---- running ---------------------------------------------------------------------------- */

static void netsim__run_one(netsim *ns, netsim__ev *ev)
{
    ns->now = ev->at;
    switch (ev->kind) {
    case NETSIM__DELIVER:
        if (!ns->up[ev->to] || ns->inc[ev->to] != ev->inc) {
            ns->st.to_down++;
        } else if (ns->group[ev->to] != ns->group[ev->from]) {
            ns->st.partitioned++;
        } else {
            ns->st.delivered++;
            ns->st.bytes += ev->len;
            netsim__mix64(ns, ev->at);
            netsim__mix64(ns, ((uint64_t)ev->from << 32) | ev->to);
            netsim_trace_mix(ns, ev->data, ev->len);
            ns->ops.deliver(ns->ctx, ns, ev->to, ev->from, ev->data, ev->len);
        }
        free(ev->data);
        break;
    case NETSIM__TIMER:
        if (ns->up[ev->to] && ns->inc[ev->to] == ev->inc && ns->ops.timer != NULL) {
            ns->st.timers++;
            netsim__mix64(ns, ev->at ^ 0x5449u);
            netsim__mix64(ns, ((uint64_t)ev->to << 32) ^ ev->tag);
            ns->ops.timer(ns->ctx, ns, ev->to, ev->tag);
        }
        break;
    case NETSIM__LEAVE:
    case NETSIM__JOIN: {
        if (ev->tag != ns->churn_gen) {
            break; /* superseded by a later netsim_churn */
        }
        bool leave = ev->kind == NETSIM__LEAVE;
        netsim__set *from = leave ? &ns->up_set : &ns->down_set;
        if (from->n > 0) {
            uint32_t node = from->items[netsim_rand_below(ns, from->n)];
            netsim_set_up(ns, node, !leave);
            netsim__mix64(ns, ev->at ^ (leave ? 0x4c45u : 0x4a4fu));
            netsim__mix64(ns, node);
            if (leave) {
                ns->st.leaves++;
                if (ns->ops.down != NULL) {
                    ns->ops.down(ns->ctx, ns, node);
                }
            } else {
                ns->st.joins++;
                if (ns->ops.up != NULL) {
                    ns->ops.up(ns->ctx, ns, node);
                }
            }
        }
        (void)netsim__schedule_churn(ns, ev->kind, ev->at);
        break;
    }
    default: break;
    }
}

bool netsim_step(netsim *ns)
{
    if (ns->nheap == 0) {
        return false;
    }
    netsim__ev ev;
    netsim__pop(ns, &ev);
    netsim__run_one(ns, &ev);
    return true;
}

uint64_t netsim_run(netsim *ns, uint64_t until)
{
    uint64_t n = 0;
    while (ns->nheap > 0 && ns->heap[0].at <= until) {
        netsim_step(ns);
        n++;
    }
    if (until > ns->now) {
        ns->now = until;
    }
    return n;
}
