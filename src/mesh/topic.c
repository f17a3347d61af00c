/* src/mesh/topic.c — topics, patterns and the matching trie; the contract is in topic.h. */
#include "mesh/topic.h"

#include <stdlib.h>
#include <string.h>

typedef struct seg {
    const char *p;
    size_t len;
} seg;

typedef struct tnode tnode;
struct tnode {
    tnode *parent;     /* NULL for the root */
    char *seg;         /* this node's segment ("*" / "**" for wildcard children) */
    size_t seglen;     /* its length */
    tnode **kids;      /* literal children, sorted by seg_cmp */
    uint32_t nkids;    /* used entries of kids */
    uint32_t capkids;  /* allocated entries of kids */
    tnode *star;       /* the `*` child */
    tnode *dstar;      /* the `**` child */
    uint64_t *subs;    /* subscribers whose pattern ends here, ascending */
    uint32_t nsubs;    /* used entries of subs */
    uint32_t capsubs;  /* allocated entries of subs */
    char *pattern;     /* the pattern ending here, while nsubs > 0 */
    size_t plen;       /* its length */
    uint64_t gen;      /* match generation the seen bits belong to */
    uint64_t seen[2];  /* topic positions 0..TOPIC_MAX_SEGMENTS visited in generation gen */
    uint64_t reported; /* match generation in which subs were last reported */
};

struct topic_trie {
    tnode root;   /* never freed by pruning */
    size_t count; /* stored (pattern, sub) pairs */
    size_t nodes; /* nodes, the root included */
    uint64_t gen; /* current match generation */
};

const char *topic_strerror(int err)
{
    switch (err) {
    case TOPIC_OK: return "ok";
    case TOPIC_EINVAL: return "invalid topic";
    case TOPIC_ELIMIT: return "topic too long";
    case TOPIC_ENOMEM: return "out of memory";
    case TOPIC_EEXIST: return "already subscribed";
    case TOPIC_ENOENT: return "not subscribed";
    default: return "unknown error";
    }
}

/* ---- parsing ----------------------------------------------------------------------------- */

static bool is_star(seg s)
{
    return s.len == 1 && s.p[0] == '*';
}

static bool is_dstar(seg s)
{
    return s.len == 2 && s.p[0] == '*' && s.p[1] == '*';
}

/* Splits s into segments; wildcards allowed when `pattern`. Returns the count or an error. */
static int topic__split(const char *s, size_t len, bool pattern, seg out[TOPIC_MAX_SEGMENTS])
{
    if (s == NULL || len == 0) {
        return TOPIC_EINVAL;
    }
    if (len > TOPIC_MAX_LEN) {
        return TOPIC_ELIMIT;
    }
    int n = 0;
    size_t start = 0;
    for (size_t i = 0; i <= len; i++) {
        if (i < len && s[i] == '\0') {
            return TOPIC_EINVAL;
        }
        if (i < len && s[i] != '.') {
            continue;
        }
        seg g = {s + start, i - start};
        if (g.len == 0) {
            return TOPIC_EINVAL;
        }
        if (memchr(g.p, '*', g.len) != NULL) {
            if (!pattern || !(is_star(g) || is_dstar(g))) {
                return TOPIC_EINVAL;
            }
        }
        if (n == TOPIC_MAX_SEGMENTS) {
            return TOPIC_ELIMIT;
        }
        out[n++] = g;
        start = i + 1;
    }
    return n;
}

int topic_validate_name(const char *s, size_t len)
{
    seg segs[TOPIC_MAX_SEGMENTS];
    int n = topic__split(s, len, false, segs);
    return n < 0 ? n : TOPIC_OK;
}

int topic_validate_pattern(const char *s, size_t len)
{
    seg segs[TOPIC_MAX_SEGMENTS];
    int n = topic__split(s, len, true, segs);
    return n < 0 ? n : TOPIC_OK;
}

static bool seg_eq(seg a, seg b)
{
    return a.len == b.len && memcmp(a.p, b.p, a.len) == 0;
}

bool topic_match(const char *pattern, size_t plen, const char *topic, size_t tlen)
{
    seg ps[TOPIC_MAX_SEGMENTS], ts[TOPIC_MAX_SEGMENTS];
    int m = topic__split(pattern, plen, true, ps);
    int n = topic__split(topic, tlen, false, ts);
    if (m < 0 || n < 0) {
        return false;
    }
    /* at[j]: the pattern prefix consumed so far can end exactly before topic segment j. */
    bool at[TOPIC_MAX_SEGMENTS + 1] = {false};
    bool next[TOPIC_MAX_SEGMENTS + 1];
    at[0] = true;
    for (int i = 0; i < m; i++) {
        memset(next, 0, sizeof next);
        bool any = false;
        if (is_dstar(ps[i])) {
            bool reach = false;
            for (int j = 0; j <= n; j++) {
                reach = reach || at[j];
                next[j] = reach;
                any = any || reach;
            }
        } else {
            for (int j = 0; j < n; j++) {
                if (at[j] && (is_star(ps[i]) || seg_eq(ps[i], ts[j]))) {
                    next[j + 1] = true;
                    any = true;
                }
            }
        }
        if (!any) {
            return false;
        }
        memcpy(at, next, sizeof at);
    }
    return at[n];
}

/* ---- the trie ---------------------------------------------------------------------------- */

topic_trie *topic_trie_new(void)
{
    topic_trie *t = calloc(1, sizeof *t);
    if (t != NULL) {
        t->nodes = 1;
    }
    return t;
}

static void tnode__free_contents(tnode *n)
{
    for (uint32_t i = 0; i < n->nkids; i++) {
        tnode__free_contents(n->kids[i]);
        free(n->kids[i]);
    }
    if (n->star != NULL) {
        tnode__free_contents(n->star);
        free(n->star);
    }
    if (n->dstar != NULL) {
        tnode__free_contents(n->dstar);
        free(n->dstar);
    }
    free(n->kids);
    free(n->subs);
    free(n->pattern);
    free(n->seg);
}

void topic_trie_free(topic_trie *t)
{
    if (t == NULL) {
        return;
    }
    tnode__free_contents(&t->root);
    free(t);
}

static int seg_cmp(const char *a, size_t alen, seg b)
{
    size_t m = alen < b.len ? alen : b.len;
    int c = memcmp(a, b.p, m);
    if (c != 0) {
        return c;
    }
    return alen < b.len ? -1 : alen > b.len ? 1 : 0;
}

/* The literal child for g, or NULL; *at is its index, or where it would be inserted. */
static tnode *tnode__find_kid(const tnode *n, seg g, uint32_t *at)
{
    *at = 0;
    if (n->kids == NULL) {
        return NULL;
    }
    uint32_t lo = 0, hi = n->nkids;
    while (lo < hi) {
        uint32_t mid = lo + (hi - lo) / 2;
        int c = seg_cmp(n->kids[mid]->seg, n->kids[mid]->seglen, g);
        if (c == 0) {
            *at = mid;
            return n->kids[mid];
        }
        if (c < 0) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    *at = lo;
    return NULL;
}

/* The child of n for g, or NULL. */
static tnode *tnode__child(const tnode *n, seg g)
{
    if (is_star(g)) {
        return n->star;
    }
    if (is_dstar(g)) {
        return n->dstar;
    }
    uint32_t at;
    return tnode__find_kid(n, g, &at);
}

static tnode *tnode__new(tnode *parent, seg g)
{
    tnode *c = calloc(1, sizeof *c);
    if (c == NULL) {
        return NULL;
    }
    c->seg = malloc(g.len);
    if (c->seg == NULL) {
        free(c);
        return NULL;
    }
    memcpy(c->seg, g.p, g.len);
    c->seglen = g.len;
    c->parent = parent;
    return c;
}

/* The child of n for g, created when missing; NULL when out of memory. */
static tnode *tnode__child_make(topic_trie *t, tnode *n, seg g)
{
    if (is_star(g) || is_dstar(g)) {
        tnode **slot = is_star(g) ? &n->star : &n->dstar;
        if (*slot == NULL) {
            *slot = tnode__new(n, g);
            if (*slot != NULL) {
                t->nodes++;
            }
        }
        return *slot;
    }
    uint32_t i;
    tnode *have = tnode__find_kid(n, g, &i);
    if (have != NULL) {
        return have;
    }
    if (n->nkids == n->capkids) {
        uint32_t cap = n->capkids ? n->capkids * 2 : 2;
        tnode **k = realloc(n->kids, cap * sizeof *k);
        if (k == NULL) {
            return NULL;
        }
        n->kids = k;
        n->capkids = cap;
    }
    tnode *c = tnode__new(n, g);
    if (c == NULL) {
        return NULL;
    }
    memmove(&n->kids[i + 1], &n->kids[i], (n->nkids - i) * sizeof *n->kids);
    n->kids[i] = c;
    n->nkids++;
    t->nodes++;
    return c;
}

static bool tnode__empty(const tnode *n)
{
    return n->nsubs == 0 && n->nkids == 0 && n->star == NULL && n->dstar == NULL;
}

/* Frees n and every ancestor left empty (the root stays). */
static void tnode__prune(topic_trie *t, tnode *n)
{
    while (n != &t->root && tnode__empty(n)) {
        tnode *p = n->parent;
        if (p->star == n) {
            p->star = NULL;
        } else if (p->dstar == n) {
            p->dstar = NULL;
        } else {
            uint32_t i;
            if (tnode__find_kid(p, (seg){n->seg, n->seglen}, &i) == n) {
                memmove(&p->kids[i], &p->kids[i + 1], (p->nkids - i - 1) * sizeof *p->kids);
                p->nkids--;
            }
            if (p->nkids == 0) {
                free(p->kids);
                p->kids = NULL;
                p->capkids = 0;
            }
        }
        tnode__free_contents(n);
        free(n);
        t->nodes--;
        n = p;
    }
}

/* Index of sub in n->subs, or where it would go (*found tells). */
static uint32_t tnode__find_sub(const tnode *n, uint64_t sub, bool *found)
{
    uint32_t lo = 0, hi = n->nsubs;
    while (lo < hi) {
        uint32_t mid = lo + (hi - lo) / 2;
        if (n->subs[mid] == sub) {
            *found = true;
            return mid;
        }
        if (n->subs[mid] < sub) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    *found = false;
    return lo;
}

int topic_trie_add(topic_trie *t, const char *pattern, size_t len, uint64_t sub)
{
    seg segs[TOPIC_MAX_SEGMENTS];
    int m = topic__split(pattern, len, true, segs);
    if (m < 0) {
        return m;
    }
    tnode *n = &t->root;
    for (int i = 0; i < m; i++) {
        tnode *c = tnode__child_make(t, n, segs[i]);
        if (c == NULL) {
            tnode__prune(t, n);
            return TOPIC_ENOMEM;
        }
        n = c;
    }
    bool found;
    uint32_t at = tnode__find_sub(n, sub, &found);
    if (found) {
        return TOPIC_EEXIST;
    }
    if (n->pattern == NULL) {
        n->pattern = malloc(len);
        if (n->pattern == NULL) {
            tnode__prune(t, n);
            return TOPIC_ENOMEM;
        }
        memcpy(n->pattern, pattern, len);
        n->plen = len;
    }
    if (n->nsubs == n->capsubs) {
        uint32_t cap = n->capsubs ? n->capsubs * 2 : 1;
        uint64_t *s = realloc(n->subs, cap * sizeof *s);
        if (s == NULL) {
            if (n->nsubs == 0) {
                free(n->pattern);
                n->pattern = NULL;
                tnode__prune(t, n);
            }
            return TOPIC_ENOMEM;
        }
        n->subs = s;
        n->capsubs = cap;
    }
    memmove(&n->subs[at + 1], &n->subs[at], (n->nsubs - at) * sizeof *n->subs);
    n->subs[at] = sub;
    n->nsubs++;
    t->count++;
    return TOPIC_OK;
}

int topic_trie_remove(topic_trie *t, const char *pattern, size_t len, uint64_t sub)
{
    seg segs[TOPIC_MAX_SEGMENTS];
    int m = topic__split(pattern, len, true, segs);
    if (m < 0) {
        return m;
    }
    tnode *n = &t->root;
    for (int i = 0; i < m && n != NULL; i++) {
        n = tnode__child(n, segs[i]);
    }
    if (n == NULL) {
        return TOPIC_ENOENT;
    }
    bool found;
    uint32_t at = tnode__find_sub(n, sub, &found);
    if (!found) {
        return TOPIC_ENOENT;
    }
    memmove(&n->subs[at], &n->subs[at + 1], (n->nsubs - at - 1) * sizeof *n->subs);
    n->nsubs--;
    t->count--;
    if (n->nsubs == 0) {
        free(n->subs);
        n->subs = NULL;
        n->capsubs = 0;
        free(n->pattern);
        n->pattern = NULL;
        n->plen = 0;
        tnode__prune(t, n);
    }
    return TOPIC_OK;
}

typedef struct matcher {
    topic_trie *t;
    const seg *ts;
    int n;
    topic_match_fn fn;
    void *ctx;
    int reported;
} matcher;

/* Visits (node, topic position i): the pattern prefix leading to node has consumed topic
 * segments [0, i). Each pair is visited once per match generation. */
static void topic__visit(matcher *m, tnode *node, int i)
{
    if (node->gen != m->t->gen) {
        node->gen = m->t->gen;
        node->seen[0] = node->seen[1] = 0;
    }
    uint64_t bit = (uint64_t)1 << (i & 63);
    if (node->seen[i >> 6] & bit) {
        return;
    }
    node->seen[i >> 6] |= bit;
    if (node->dstar != NULL) {
        /* `**` swallows segments [i, j) for every j from i (none) to n (all). */
        for (int j = i; j <= m->n; j++) {
            topic__visit(m, node->dstar, j);
        }
    }
    if (i == m->n) {
        if (node->nsubs > 0 && node->reported != m->t->gen) {
            node->reported = m->t->gen;
            for (uint32_t k = 0; k < node->nsubs; k++) {
                m->fn(m->ctx, node->subs[k], node->pattern, node->plen);
                m->reported++;
            }
        }
        return;
    }
    if (node->star != NULL) {
        topic__visit(m, node->star, i + 1);
    }
    tnode *lit = tnode__child(node, m->ts[i]);
    if (lit != NULL) {
        topic__visit(m, lit, i + 1);
    }
}

int topic_trie_match(topic_trie *t, const char *topic, size_t len, topic_match_fn fn, void *ctx)
{
    seg ts[TOPIC_MAX_SEGMENTS];
    int n = topic__split(topic, len, false, ts);
    if (n < 0) {
        return n;
    }
    t->gen++;
    matcher m = {.t = t, .ts = ts, .n = n, .fn = fn, .ctx = ctx, .reported = 0};
    topic__visit(&m, &t->root, 0);
    return m.reported;
}

size_t topic_trie_count(const topic_trie *t)
{
    return t->count;
}

size_t topic_trie_nodes(const topic_trie *t)
{
    return t->nodes;
}
