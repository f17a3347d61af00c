/*
 * src/mesh/sim/netsim.h — a deterministic discrete-event network simulator (QUALITY.md
 * "simulation"). Generic: it knows nothing of the DHT or of consensus; nodes are slots
 * 0..nodes-1 whose behaviour lives in the caller's callbacks.
 *
 * Everything random comes from one seeded xoshiro256** generator (seeded through splitmix64):
 * latencies, losses, churn times and victims, and whatever the caller draws with
 * netsim_rand*. Events run in (time, sequence) order, the sequence being the order in which
 * they were scheduled, so a run is a pure function of the seed and the caller's code: a
 * failing seed reproduces exactly, and netsim_trace_hash fingerprints the run (every delivery,
 * timer and churn event with its time, nodes and bytes).
 *
 * Model:
 *  - netsim_send copies the bytes and schedules a delivery after a latency drawn from the
 *    configured distribution, unless the message is lost (probability loss), the sender is
 *    down, or the two nodes are in different partition groups. At delivery time the message is
 *    dropped if the receiver is down, has restarted since the send (a new incarnation is a new
 *    node), or is now in another group than the sender.
 *  - Timers belong to a node incarnation: a node that goes down loses its timers.
 *  - Partitions: every node has a group (0 at start); nodes in different groups cannot reach
 *    each other. netsim_heal puts everyone back in group 0.
 *  - Churn: Poisson processes of leaves (a random up, churnable node goes down: ops.down) and
 *    joins (a random down, churnable node comes up as a new incarnation: ops.up), at the
 *    configured rates, between start and stop times.
 *
 * Time is in microseconds from 0. Callbacks may call any netsim function (send, timers,
 * up/down, partitions), except netsim_destroy and netsim_run/step.
 */
#ifndef MACULA_MESH_SIM_NETSIM_H
#define MACULA_MESH_SIM_NETSIM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

enum {
    NETSIM_OK = 0,
    NETSIM_EINVAL = -1, /* bad argument (unknown node, bad config) */
    NETSIM_ENOMEM = -2,
};
const char *netsim_strerror(int err);

typedef struct netsim netsim;

typedef struct netsim_ops {
    /* A message for `to` from `from`; data is valid during the call only. */
    void (*deliver)(void *ctx, netsim *ns, uint32_t to, uint32_t from, const uint8_t *data,
                    size_t len);
    /* A timer of `node` set with netsim_timer. */
    void (*timer)(void *ctx, netsim *ns, uint32_t node, uint64_t tag);
    /* Churn took the node down (it crashed: no messages, no notice) / brought it up as a new
     * incarnation. May be NULL. Not called for netsim_set_up. */
    void (*down)(void *ctx, netsim *ns, uint32_t node);
    void (*up)(void *ctx, netsim *ns, uint32_t node);
} netsim_ops;

enum {
    NETSIM_LAT_UNIFORM = 0, /* min + U[0, spread] */
    NETSIM_LAT_EXP = 1,     /* min + Exp(mean = spread), capped at min + 20 * spread */
};

typedef struct netsim_config {
    uint64_t seed;
    uint32_t nodes;      /* slots, all up at start (netsim_set_up changes that) */
    uint8_t latency;     /* NETSIM_LAT_* */
    uint64_t lat_min_us; /* no message is faster */
    uint64_t lat_spread_us;
    double loss; /* 0..1: probability a message is lost */
} netsim_config;

/* Defaults: seed 1, 0 nodes, exponential latency 5 ms + 20 ms mean, no loss. */
void netsim_config_default(netsim_config *cfg);

int netsim_create(const netsim_config *cfg, const netsim_ops *ops, void *ctx, netsim **out);
/* Frees the simulator and every message in flight. NULL is fine. */
void netsim_destroy(netsim *ns);

uint64_t netsim_now(const netsim *ns);
uint32_t netsim_nodes(const netsim *ns);

/* Sends len bytes from `from` to `to` (copied). Losses are silent (counted in stats).
 * NETSIM_EINVAL for an unknown node, NETSIM_ENOMEM. */
int netsim_send(netsim *ns, uint32_t from, uint32_t to, const void *data, size_t len);
/* Calls ops.timer(node, tag) at time `at` (now if in the past), unless the node goes down
 * before. */
int netsim_timer(netsim *ns, uint32_t node, uint64_t at, uint64_t tag);

/* Runs events up to and including time `until`, then sets the clock to until. Returns the
 * number of events run. */
uint64_t netsim_run(netsim *ns, uint64_t until);
/* Runs the next event, if any (false if the queue is empty). */
bool netsim_step(netsim *ns);
/* Events waiting. */
size_t netsim_pending(const netsim *ns);

/* Node state. netsim_set_up(true) on a down node starts a new incarnation (messages and
 * timers for the old one are dropped); no callback is called. */
int netsim_set_up(netsim *ns, uint32_t node, bool up);
bool netsim_is_up(const netsim *ns, uint32_t node);
uint32_t netsim_incarnation(const netsim *ns, uint32_t node);
/* Whether churn may pick this node (default true). */
int netsim_set_churnable(netsim *ns, uint32_t node, bool churnable);

/* Changes the loss rate (0..1) from now on. NETSIM_EINVAL outside the range. */
int netsim_set_loss(netsim *ns, double loss);

/* Partitions. */
int netsim_set_group(netsim *ns, uint32_t node, uint32_t group);
uint32_t netsim_group(const netsim *ns, uint32_t node);
void netsim_heal(netsim *ns);

/* Churn: leaves and joins as Poisson processes with the given rates (events per second of
 * simulated time) from `start` to `stop` (us). Replaces any previous churn setting. */
int netsim_churn(netsim *ns, double leaves_per_s, double joins_per_s, uint64_t start,
                 uint64_t stop);

/* The seeded generator, for the caller's own randomness (part of the reproducible run). */
uint64_t netsim_rand(netsim *ns);
/* Uniform in [0, n) without modulo bias; 0 if n == 0. */
uint64_t netsim_rand_below(netsim *ns, uint64_t n);
/* Uniform in [0, 1). */
double netsim_rand_unit(netsim *ns);

/* Mixes caller data into the trace hash (say, a node's decision). */
void netsim_trace_mix(netsim *ns, const void *data, size_t len);
/* The fingerprint of the run so far. */
uint64_t netsim_trace_hash(const netsim *ns);

typedef struct netsim_stats {
    uint64_t sent;        /* netsim_send calls accepted */
    uint64_t delivered;   /* handed to ops.deliver */
    uint64_t lost;        /* dropped by the loss rate */
    uint64_t partitioned; /* dropped by a partition (at send or delivery) */
    uint64_t to_down;     /* dropped because the sender or receiver was down / restarted */
    uint64_t timers;      /* timers fired */
    uint64_t leaves, joins;
    uint64_t bytes;     /* delivered */
    size_t max_pending; /* high-water mark of the event queue */
} netsim_stats;

void netsim_get_stats(const netsim *ns, netsim_stats *st);

#ifdef __cplusplus
}
#endif
#endif
