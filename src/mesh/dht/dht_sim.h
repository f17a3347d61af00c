/*
 * src/mesh/dht/dht_sim.h — the DHT core driven over netsim (MESH.md: "the same routing code
 * driven over an in-process simulated network ... deterministic, seeded, with latency, loss
 * and churn"). Used by tests/unit/test_dht_sim.c and bench/bench_dht.c.
 *
 * Each netsim slot i is a node with address "10.a.b.c:4433" (a.b.c = i in base 256) and a
 * random id drawn from the simulator's generator. Every message goes through the real codec:
 * dht_msg_encode -> bytes -> netsim -> wire_decode -> dht_msg_from_wire -> dht_receive, and
 * the receiver takes the sender's id and address from the frame's sender_id / sender_address.
 * Node timers are netsim timers at dht_next_deadline. DHT time is netsim time / 1000 (ms).
 *
 * Joining: slot 0 is the first node of the mesh (it never churns); slot i < initial starts at
 * i * join_interval_us and bootstraps through slot 0 (dht_bootstrap: looks itself up). Slots
 * >= initial start down: churn brings them (and the slots it took down) up as new nodes with
 * fresh ids, bootstrapping through slot 0. A node taken down by churn is destroyed (a crash:
 * its peers are not told; they find out by timeouts).
 */
#ifndef MACULA_MESH_DHT_SIM_H
#define MACULA_MESH_DHT_SIM_H

#include "dht.h"
#include "mesh/sim/netsim.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct dhtsim dhtsim;

typedef struct dhtsim_config {
    netsim_config net;         /* net.nodes = slots (initial nodes + spares for churn) */
    dht_config dht;            /* every node's configuration (seed mixed per node) */
    uint32_t initial;          /* slots up at start, <= net.nodes */
    uint64_t join_interval_us; /* between two initial joins */
} dhtsim_config;

/* Called for every completion event of every node. The callback may call dht_* functions on
 * any node and then dhtsim_flush that node. */
typedef void (*dhtsim_event_fn)(void *ctx, dhtsim *s, uint32_t node, const dht_event *ev);

int dhtsim_create(const dhtsim_config *cfg, dhtsim_event_fn on_event, void *ctx, dhtsim **out);
void dhtsim_destroy(dhtsim *s);

netsim *dhtsim_net(dhtsim *s);
uint32_t dhtsim_slots(const dhtsim *s);
/* The node in slot i, NULL if it is down. */
dht *dhtsim_node(dhtsim *s, uint32_t i);
/* Its id (of the current incarnation). */
const dht_id *dhtsim_id(const dhtsim *s, uint32_t i);
/* The slot whose current node has this id, or UINT32_MAX. */
uint32_t dhtsim_find(const dhtsim *s, const dht_id *id);
uint64_t dhtsim_now_ms(const dhtsim *s);
/* A random slot whose node is up (drawn from the simulator's generator); call it once slot 0
 * has started (it never goes down). */
uint32_t dhtsim_random_up(dhtsim *s);
/* Bootstrap lookups completed (initial and churn joins; slot 0 counts as joined). */
uint32_t dhtsim_joined(const dhtsim *s);

/* Runs the network until `ms`. */
void dhtsim_run_ms(dhtsim *s, uint64_t ms);
/* Sends what node i queued (after calling its API from outside a delivery) and re-arms its
 * timer. */
void dhtsim_flush(dhtsim *s, uint32_t i);

typedef struct dhtsim_stats {
    uint64_t frames;     /* frames encoded and sent */
    uint64_t bad_frames; /* frames that failed to decode (must stay 0) */
    uint64_t created;    /* nodes created (initial + churn joins) */
} dhtsim_stats;
void dhtsim_get_stats(const dhtsim *s, dhtsim_stats *st);

#ifdef __cplusplus
}
#endif
#endif
