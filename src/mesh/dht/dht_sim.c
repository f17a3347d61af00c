/* src/mesh/dht/dht_sim.c — DHT nodes over netsim (see dht_sim.h). */
#include "mesh/dht/dht_sim.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define DHTSIM__JOIN_TAG UINT64_MAX

typedef struct dhtsim__node {
    dht *d;            /* NULL while down */
    dht_contact self;  /* id + address of the current incarnation */
    uint64_t timer_at; /* ms of the armed timer, UINT64_MAX if none */
    bool in_events;    /* its events are being handed out */
    bool join_done;    /* an initial node whose bootstrap completed */
    uint32_t join_handle;
} dhtsim__node;

struct dhtsim {
    dhtsim_config cfg;
    netsim *net;
    dhtsim__node *nodes;
    dhtsim_event_fn on_event;
    void *ctx;
    uint32_t joined;
    dhtsim_stats st;
};

static void dhtsim__addr(uint32_t i, char *out, size_t n)
{
    snprintf(out, n, "10.%u.%u.%u:4433", (i >> 16) & 255, (i >> 8) & 255, i & 255);
}

/* "10.a.b.c:4433" -> (a << 16) | (b << 8) | c, UINT32_MAX for anything else. */
static uint32_t dhtsim__slot_of(const char *addr)
{
    if (strncmp(addr, "10.", 3) != 0) {
        return UINT32_MAX;
    }
    const char *p = addr + 3;
    uint32_t slot = 0;
    for (int part = 0; part < 3; part++) {
        char *end;
        unsigned long v = strtoul(p, &end, 10);
        if (end == p || v > 255 || *end != (part < 2 ? '.' : ':')) {
            return UINT32_MAX;
        }
        slot = (slot << 8) | (uint32_t)v;
        p = end + 1;
    }
    return strcmp(p, "4433") == 0 ? slot : UINT32_MAX;
}

uint64_t dhtsim_now_ms(const dhtsim *s)
{
    return netsim_now(s->net) / 1000;
}

void dhtsim_flush(dhtsim *s, uint32_t i)
{
    dhtsim__node *n = &s->nodes[i];
    if (n->d == NULL) {
        return;
    }
    for (;;) {
        const dht_out *o;
        while ((o = dht_next_output(n->d)) != NULL) {
            uint8_t *frame;
            size_t len;
            if (dht_msg_encode(&o->msg, &n->self, &frame, &len) != 0) {
                s->st.bad_frames++;
                continue;
            }
            uint32_t to = dhtsim__slot_of(o->to.addr);
            if (to < netsim_nodes(s->net)) {
                (void)netsim_send(s->net, i, to, frame, len);
                s->st.frames++;
            }
            free(frame);
        }
        if (n->in_events) {
            break; /* the outer call hands out the events */
        }
        const dht_event *ev = dht_next_event(n->d);
        if (ev == NULL) {
            break;
        }
        if (!n->join_done && ev->handle == n->join_handle && ev->kind == DHT_EV_LOOKUP) {
            n->join_done = true;
            s->joined++;
        }
        if (s->on_event != NULL) {
            n->in_events = true;
            s->on_event(s->ctx, s, i, ev);
            n->in_events = false;
            if (n->d == NULL) {
                return;
            }
        }
    }
    uint64_t dl = dht_next_deadline(n->d);
    if (dl != UINT64_MAX && dl < n->timer_at) {
        uint64_t now = dhtsim_now_ms(s);
        if (dl <= now) {
            dl = now + 1;
        }
        n->timer_at = dl;
        (void)netsim_timer(s->net, i, dl * 1000, dl);
    }
}

/* Creates the node of slot i with a fresh id and bootstraps it through slot 0 (unless it is
 * slot 0). */
static void dhtsim__start_node(dhtsim *s, uint32_t i)
{
    dhtsim__node *n = &s->nodes[i];
    dht_destroy(n->d);
    n->d = NULL;
    memset(&n->self, 0, sizeof n->self);
    for (int b = 0; b < DHT_ID_LEN; b += 8) {
        uint64_t r = netsim_rand(s->net);
        memcpy(&n->self.id.b[b], &r, 8);
    }
    dhtsim__addr(i, n->self.addr, sizeof n->self.addr);
    dht_config c = s->cfg.dht;
    c.seed ^= (uint64_t)i * 0x9e3779b97f4a7c15ull;
    if (dht_create(&c, &n->self.id, n->self.addr, dhtsim_now_ms(s), &n->d) != 0) {
        return;
    }
    s->st.created++;
    n->timer_at = UINT64_MAX;
    n->join_done = i == 0;
    if (i != 0 && s->nodes[0].d != NULL) {
        (void)dht_bootstrap(n->d, &s->nodes[0].self, 1, dhtsim_now_ms(s), &n->join_handle);
    }
    dhtsim_flush(s, i);
}

static void dhtsim__deliver(void *ctx, netsim *ns, uint32_t to, uint32_t from, const uint8_t *data,
                            size_t len)
{
    dhtsim *s = ctx;
    dhtsim__node *n = &s->nodes[to];
    if (n->d == NULL) {
        return;
    }
    wire_msg w;
    dht_msg m;
    size_t used;
    if (wire_decode(data, len, NULL, &w, &used) != 0 || used != len ||
        dht_msg_from_wire(&w, &m) != 0 || !m.has_sender) {
        s->st.bad_frames++;
        return;
    }
    (void)dht_receive(n->d, &m.sender.id, m.sender.addr, &m, dhtsim_now_ms(s));
    dhtsim_flush(s, to);
}

static void dhtsim__timer(void *ctx, netsim *ns, uint32_t node, uint64_t tag)
{
    dhtsim *s = ctx;
    dhtsim__node *n = &s->nodes[node];
    if (tag == DHTSIM__JOIN_TAG) {
        dhtsim__start_node(s, node);
        return;
    }
    if (n->d == NULL || tag != n->timer_at) {
        return; /* stale */
    }
    n->timer_at = UINT64_MAX;
    dht_tick(n->d, dhtsim_now_ms(s));
    dhtsim_flush(s, node);
}

static void dhtsim__down(void *ctx, netsim *ns, uint32_t node)
{
    dhtsim *s = ctx;
    dht_destroy(s->nodes[node].d);
    s->nodes[node].d = NULL;
    s->nodes[node].timer_at = UINT64_MAX;
}

static void dhtsim__up(void *ctx, netsim *ns, uint32_t node)
{
    dhtsim__start_node(ctx, node);
}

int dhtsim_create(const dhtsim_config *cfg, dhtsim_event_fn on_event, void *ctx, dhtsim **out)
{
    if (cfg == NULL || out == NULL || cfg->initial == 0 || cfg->initial > cfg->net.nodes ||
        cfg->net.nodes > (1u << 24)) {
        return DHT_EINVAL;
    }
    *out = NULL;
    dhtsim *s = calloc(1, sizeof *s);
    if (s == NULL) {
        return DHT_ENOMEM;
    }
    s->cfg = *cfg;
    s->on_event = on_event;
    s->ctx = ctx;
    s->nodes = calloc(cfg->net.nodes, sizeof *s->nodes);
    netsim_ops ops = {dhtsim__deliver, dhtsim__timer, dhtsim__down, dhtsim__up};
    if (s->nodes == NULL || netsim_create(&cfg->net, &ops, s, &s->net) != 0) {
        dhtsim_destroy(s);
        return DHT_ENOMEM;
    }
    (void)netsim_set_churnable(s->net, 0, false);
    for (uint32_t i = 0; i < cfg->net.nodes; i++) {
        s->nodes[i].timer_at = UINT64_MAX;
        if (i >= cfg->initial) {
            (void)netsim_set_up(s->net, i, false);
        } else {
            (void)netsim_timer(s->net, i, (uint64_t)i * cfg->join_interval_us, DHTSIM__JOIN_TAG);
        }
    }
    s->joined = 1; /* slot 0 needs no join */
    s->nodes[0].join_done = true;
    *out = s;
    return 0;
}

void dhtsim_destroy(dhtsim *s)
{
    if (s == NULL) {
        return;
    }
    for (uint32_t i = 0; s->nodes != NULL && i < s->cfg.net.nodes; i++) {
        dht_destroy(s->nodes[i].d);
    }
    free(s->nodes);
    netsim_destroy(s->net);
    free(s);
}

netsim *dhtsim_net(dhtsim *s)
{
    return s->net;
}

uint32_t dhtsim_slots(const dhtsim *s)
{
    return s->cfg.net.nodes;
}

dht *dhtsim_node(dhtsim *s, uint32_t i)
{
    return i < s->cfg.net.nodes ? s->nodes[i].d : NULL;
}

const dht_id *dhtsim_id(const dhtsim *s, uint32_t i)
{
    return &s->nodes[i].self.id;
}

uint32_t dhtsim_find(const dhtsim *s, const dht_id *id)
{
    for (uint32_t i = 0; i < s->cfg.net.nodes; i++) {
        if (s->nodes[i].d != NULL && memcmp(s->nodes[i].self.id.b, id->b, DHT_ID_LEN) == 0) {
            return i;
        }
    }
    return UINT32_MAX;
}

uint32_t dhtsim_random_up(dhtsim *s)
{
    uint32_t n = s->cfg.net.nodes;
    for (;;) {
        uint32_t i = (uint32_t)netsim_rand_below(s->net, n);
        if (s->nodes[i].d != NULL) {
            return i;
        }
    }
}

uint32_t dhtsim_joined(const dhtsim *s)
{
    return s->joined;
}

void dhtsim_run_ms(dhtsim *s, uint64_t ms)
{
    (void)netsim_run(s->net, ms * 1000);
}

void dhtsim_get_stats(const dhtsim *s, dhtsim_stats *st)
{
    *st = s->st;
}
