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
    sup_flags f = {SUP_ONE_FOR_ONE, 5, 60, SUP_AUTO_NEVER};
    sup_sv_opts o = {.name = FLOW_N_CONSENSUS_SUP};
    int rc = sup_supervisor_start(rt, parent, &f, NULL, 0, &o, out, why);
    if (rc == 0) {
        sup_register(rt, FLOW_N_CONSENSUS_SUP, *out);
    }
    return rc;
}
