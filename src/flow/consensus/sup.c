/* flow/consensus/sup.c — erlmcp_flow_consensus_sup: one_for_one, 5 restarts in 60 s (seed 002).
 * With a Raft configuration (flow_options.raft) it runs erlmcp_flow_raft (permanent, 5000 ms:
 * consensus/raft.c) and, when the configuration has a gossip address, erlmcp_flow_gossip
 * (permanent, 5000 ms: consensus/gossip_node.c); without one it has no children and the
 * registry applies commands locally. An empty supervisor is a real one: it runs, shows in the
 * tree, and restarts with its siblings under erlmcp_flow_sup's one_for_all. With a PBFT
 * configuration instead (flow_options.pbft) it runs erlmcp_flow_pbft (permanent, 5000 ms:
 * consensus/pbft_node.c). The per-swarm election is not wired (docs/consensus.md). */
#include "flow/flow_int.h"

int flow_consensus_sup_start(sup_rt *rt, sup_pid parent, void *arg, void *extra, sup_pid *out,
                             sup_reason *why)
{
    (void)extra;
    const flow_options *o = arg;
    sup_child_spec raft[] = {FLOW_WORKER(FLOW_N_RAFT, flow_raft_start),
                             FLOW_WORKER(FLOW_N_GOSSIP, flow_gossip_start)};
    if (o && o->raft) {
        raft[0].arg = (void *)o; /* the raft actor also needs task_retention */
        raft[1].arg = (void *)o->raft;
        return flow__sup_start(rt, parent, SUP_ONE_FOR_ONE, 5, raft, o->raft->gossip ? 2 : 1,
                               FLOW_N_CONSENSUS_SUP, out, why);
    }
    if (o && o->pbft) {
        sup_child_spec pbft[] = {FLOW_WORKER(FLOW_N_PBFT, flow_pbft_start)};
        pbft[0].arg = (void *)o; /* the configuration and task_retention */
        return flow__sup_start(rt, parent, SUP_ONE_FOR_ONE, 5, pbft, 1, FLOW_N_CONSENSUS_SUP, out,
                               why);
    }
    return flow__sup_start(rt, parent, SUP_ONE_FOR_ONE, 5, NULL, 0, FLOW_N_CONSENSUS_SUP, out, why);
}
