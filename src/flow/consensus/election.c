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

bool election_wants(const char *swarm, const char *node, const char *const *alive, size_t n)
{
    int p = election_preferred(swarm, alive, n);
    return p >= 0 && node && strcmp(alive[p], node) == 0;
}

void election_node_name(uint64_t id, char out[FLOW_ID_MAX])
{
    snprintf(out, FLOW_ID_MAX, "%llu", (unsigned long long)id);
}

const char *election_cmd_swarm(const flow_state *s, const json_t *cmd)
{
    const char *swarm = json_string_value(json_object_get(cmd, "swarm"));
    if (swarm && flow_state_has_swarm(s, swarm)) {
        return swarm;
    }
    const char *task = json_string_value(json_object_get(cmd, "task"));
    const flow_task *t = task ? flow_state_task(s, task) : NULL;
    if (t) {
        return flow_task_get_swarm(t);
    }
    const char *agent = json_string_value(json_object_get(cmd, "agent"));
    const flow_agent *a = agent ? flow_state_agent(s, agent) : NULL;
    return a ? flow_agent_get_swarm(a) : NULL;
}

int election_stamp(const flow_state *s, json_t *cmd, const char *node)
{
    const char *swarm = election_cmd_swarm(s, cmd);
    if (swarm == NULL) {
        return 1;
    }
    uint64_t token = 0;
    if (!election_holds(s, swarm, node, &token)) {
        return FLOW_ESTATE;
    }
    json_object_set_new(cmd, "token", json_integer((json_int_t)token));
    return 0;
}

typedef struct election__walk {
    const flow_state *s;
    const char *node;
    const char *const *alive;
    size_t n;
    bool renew;
    uint64_t now;
    json_t *out;
} election__walk;

static void election__each(const flow_swarm_stats *sst, void *user)
{
    election__walk *w = user;
    if (!election_wants(sst->id, w->node, w->alive, w->n) ||
        (!w->renew && election_holds(w->s, sst->id, w->node, NULL))) {
        return;
    }
    flow_cmd c;
    if (election_claim(w->s, sst->id, w->node, w->now, &c) == 0) {
        json_array_append_new(w->out, flow_cmd_to_json(&c));
    }
    flow_cmd_clear(&c);
}

json_t *election_claims(const flow_state *s, const char *node, const char *const *alive, size_t n,
                        bool renew, uint64_t now)
{
    election__walk w = {s, node, alive, n, renew, now, json_array()};
    if (w.out && node && flow_id_valid(node)) {
        flow_state_each_swarm(s, election__each, &w);
    }
    return w.out;
}
