/* flow/consensus/sup.c — erlmcp_flow_consensus_sup: one_for_one, 5 restarts in 60 s (seed 002).
 * It has no children yet: the consensus issue adds raft, byzantine, gossip, election and
 * log_store here. An empty supervisor is a real one: it runs, shows in the tree, and restarts
 * with its siblings under erlmcp_flow_sup's one_for_all. */
#include "flow/flow_int.h"

int flow_consensus_sup_start(sup_rt *rt, sup_pid parent, void *arg, void *extra, sup_pid *out,
                             sup_reason *why)
{
    (void)arg;
    (void)extra;
    return flow__sup_start(rt, parent, SUP_ONE_FOR_ONE, 5, NULL, 0, FLOW_N_CONSENSUS_SUP, out, why);
}
