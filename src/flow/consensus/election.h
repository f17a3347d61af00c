/*
 * flow/consensus/election.h — which node coordinates each swarm, with fencing tokens (FLOW.md
 * "Election"), built on the replicated flow state; sans I/O.
 *
 * The lease lives in the replicated state: the command swarm_lease {swarm, node, token}
 * (flow_state.h) makes `node` the swarm's coordinator when `token` is greater than the swarm's
 * current token, and is refused (FLOW_ESTATE) otherwise. Every command a coordinator issues for
 * its swarm (agent_add, task_start, task_complete, ...) carries its token, and the state
 * machine refuses a command whose token is not the swarm's current one. Because the commands
 * go through one replicated log (Raft or PBFT), all replicas see the lease change and the
 * stale commands at the same position:
 *
 *  - two nodes that claim at once (both read token t and propose t+1) cannot both win: the
 *    first committed claim moves the token to t+1 and the second is refused;
 *  - a coordinator that lost its lease (partitioned, paused, slow) and still sends commands is
 *    fenced off: none of them is applied, so two coordinators never dispatch the same swarm.
 *
 * Safety needs no clock. Liveness: a node claims when it is the swarm's preferred coordinator
 * among the members it believes alive (rendezvous hashing over the gossip membership, so every
 * node computes the same choice from the same membership) and it does not hold the lease.
 */
#ifndef MACULA_FLOW_ELECTION_H
#define MACULA_FLOW_ELECTION_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "flow/core/flow_state.h"

/* The preferred coordinator of swarm among nodes (highest rendezvous hash of (swarm, node)):
 * an index into nodes, or -1 when n == 0. Removing a node moves only the swarms it preferred. */
int election_preferred(const char *swarm, const char *const *nodes, size_t n);

/* The claim: a swarm_lease command for node with the swarm's current token + 1, into *out
 * (flow_cmd_clear it). FLOW_ENOTFOUND for an unknown swarm, FLOW_EINVAL for a bad node id. */
int election_claim(const flow_state *s, const char *swarm, const char *node, uint64_t now,
                   flow_cmd *out);

/* Whether node holds the swarm's lease; its token in *token (may be NULL). */
bool election_holds(const flow_state *s, const char *swarm, const char *node, uint64_t *token);

/* Whether node should claim the swarm now: it is the preferred coordinator among the alive
 * nodes (it must be one of them) and does not hold the lease. */
bool election_should_claim(const flow_state *s, const char *swarm, const char *node,
                           const char *const *alive, size_t n);

/* Whether node is the swarm's preferred coordinator among the alive nodes (it must be one of
 * them). */
bool election_wants(const char *swarm, const char *node, const char *const *alive, size_t n);

/* The lease name of a cluster member: its Raft id in decimal ("1", "2", ...). */
void election_node_name(uint64_t id, char out[FLOW_ID_MAX]);

/* The swarm a JSON command concerns in state s: its "swarm", else its task's swarm, else its
 * agent's (the rule the state machine's fence uses); NULL when it names none that s knows. */
const char *election_cmd_swarm(const flow_state *s, const json_t *cmd);

/* Stamps a coordinator's JSON command with node's token for the command's swarm (key "token").
 * 0: stamped; 1: the command names no swarm s knows (left unstamped: the state machine refuses
 * or ignores it alike on every replica); FLOW_ESTATE: node does not hold that swarm's lease, so
 * it must not propose the command. */
int election_stamp(const flow_state *s, json_t *cmd, const char *node);

/* The claims node should make now: for every swarm of s whose preferred coordinator among
 * alive (n names) is node, a swarm_lease command (JSON, as the log carries it) with the swarm's
 * token + 1 — for the swarms node does not hold, or, with renew (a fresh take-over: the node's
 * earlier agents and in-flight commands are gone), for all of them. A JSON array (new
 * reference; empty when there is nothing to claim), in the state's swarm order. */
json_t *election_claims(const flow_state *s, const char *node, const char *const *alive, size_t n,
                        bool renew, uint64_t now);

/* Stamps a coordinator's command with its token. */
static inline void election_fence(flow_cmd *c, uint64_t token)
{
    c->token = token;
}

#endif
