/* flow/consensus/election.c — swarm coordinator leases with fencing tokens (see election.h). */
#include "flow/consensus/election.h"

#include <stdio.h>
#include <string.h>

/* FNV-1a over swarm, a separator and node, finished by a 64-bit mixer */
static uint64_t election__hash(const char *swarm, const char *node)
{
    uint64_t h = 0xcbf29ce484222325ull;
    for (const char *p = swarm; *p; p++) {
        h = (h ^ (uint8_t)*p) * 0x100000001b3ull;
    }
    h = (h ^ 0xffu) * 0x100000001b3ull;
    for (const char *p = node; *p; p++) {
        h = (h ^ (uint8_t)*p) * 0x100000001b3ull;
    }
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdull;
    h ^= h >> 33;
    return h;
}

int election_preferred(const char *swarm, const char *const *nodes, size_t n)
{
    int best = -1;
    uint64_t best_h = 0;
    for (size_t i = 0; i < n; i++) {
        uint64_t h = election__hash(swarm, nodes[i]);
        /* ties (equal hashes) go to the smaller name, so every node decides alike */
        if (best < 0 || h > best_h || (h == best_h && strcmp(nodes[i], nodes[best]) < 0)) {
            best = (int)i;
            best_h = h;
        }
    }
    return best;
}

int election_claim(const flow_state *s, const char *swarm, const char *node, uint64_t now,
                   flow_cmd *out)
{
    flow_cmd_init(out, FLOW_CMD_SWARM_LEASE, now);
    if (!flow_id_valid(node) || !flow_id_valid(swarm)) {
        return FLOW_EINVAL;
    }
    if (!flow_state_has_swarm(s, swarm)) {
        return FLOW_ENOTFOUND;
    }
    uint64_t token = 0;
    (void)flow_state_swarm_lease(s, swarm, &token);
    snprintf(out->swarm, sizeof out->swarm, "%s", swarm);
    snprintf(out->node, sizeof out->node, "%s", node);
    out->token = token + 1;
    return 0;
}

bool election_holds(const flow_state *s, const char *swarm, const char *node, uint64_t *token)
{
    uint64_t t = 0;
    const char *holder = flow_state_swarm_lease(s, swarm, &t);
    bool holds = holder && node && strcmp(holder, node) == 0;
    if (token) {
        *token = holds ? t : 0;
    }
    return holds;
}

bool election_should_claim(const flow_state *s, const char *swarm, const char *node,
                           const char *const *alive, size_t n)
{
    int p = election_preferred(swarm, alive, n);
    return p >= 0 && strcmp(alive[p], node) == 0 && flow_state_has_swarm(s, swarm) &&
           !election_holds(s, swarm, node, NULL);
}
