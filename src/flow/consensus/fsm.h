/*
 * flow/consensus/fsm.h — the replicated flow state machine as libraft sees it (sans I/O).
 *
 * A flow_fsm is one replica: a flow_state (the deterministic machine of flow_state.h) and the
 * cluster's member directory (raft id → the member's API URL, used to redirect clients to the
 * leader). It implements libraft's struct raft_fsm (version 1): apply, snapshot, restore.
 *
 * Log entries are JSON text (bounded by FLOW_FSM_ENTRY_MAX):
 *   {"t": "cmd", "cmd": {flow command}, "o": origin raft id, "c": origin cookie}
 *   {"t": "member", "id": raft id, "api"?: "http://...", "gossip"?: "host:port", "node"?: hex}
 *       a member's API URL and/or its gossip endpoint (QUIC address and the node id its TLS
 *       certificate must prove, 64 lowercase hex digits; gossip and node go together); a field
 *       absent leaves what is known unchanged (older entries carry only "api")
 *   {"t": "forget", "id": raft id}                          a member left
 * A command carries its own time ("now") and ids, so every replica computes the same state.
 * apply never fails towards libraft: an entry that does not parse or a command the state
 * machine refuses changes nothing (deterministically on every replica) and is counted.
 *
 * Snapshots are {"v": 1, "state": flow_state_snapshot, "members": {"id": url}, "gossip":
 * {"id": {"address", "node"}}, "entries", "refused"}; "gossip" is optional on restore (older
 * snapshots); restore validates fully and keeps the old state on bad input.
 *
 * Hooks (optional) let the owner follow what is applied: after every entry (with the
 * command's outcome) and after every restore. They run inside libraft's callbacks.
 */
#ifndef MACULA_FLOW_FSM_H
#define MACULA_FLOW_FSM_H

#include <jansson.h>
#include <raft.h>
#include <stdint.h>

#include "flow/core/flow_state.h"

#define FLOW_FSM_ENTRY_MAX (4u << 20)    /* bytes of one log entry */
#define FLOW_FSM_SNAPSHOT_MAX (1u << 30) /* bytes of one snapshot */
#define FLOW_FSM_API_MAX 256             /* bytes of a member's API URL */
#define FLOW_FSM_GOSSIP_MAX 128          /* bytes of a member's gossip address */

typedef struct flow_fsm flow_fsm;

typedef struct flow_fsm_hooks {
    void *user;
    /* After an entry was applied at `index`: the parsed entry (NULL if it did not parse) and,
     * for a command, its outcome (0 or FLOW_E*). */
    void (*applied)(void *user, uint64_t index, const json_t *entry, int rc);
    /* After a snapshot replaced the state (snap is the whole snapshot object). */
    void (*restored)(void *user, const json_t *snap);
} flow_fsm_hooks;

/* hooks may be NULL. NULL without memory. */
flow_fsm *flow_fsm_new(const flow_fsm_hooks *hooks);
void flow_fsm_free(flow_fsm *f);
/* Ended tasks the state keeps (flow_state_set_retention; 0 = all), also after a restore. */
void flow_fsm_set_retention(flow_fsm *f, uint64_t n);
/* The libraft adapter (lives as long as f). */
struct raft_fsm *flow_fsm_raft(flow_fsm *f);

const flow_state *flow_fsm_state(const flow_fsm *f);
/* Entries applied (all kinds) and commands refused by the state machine or unparsable. */
uint64_t flow_fsm_entries(const flow_fsm *f);
uint64_t flow_fsm_refused(const flow_fsm *f);
/* A member's API URL or NULL. */
const char *flow_fsm_member_api(const flow_fsm *f, uint64_t id);
/* {"id": url, ...} (new reference). */
json_t *flow_fsm_members(const flow_fsm *f);
/* A member's gossip address ("host:port") or NULL; *node (node may be NULL) its node id in
 * hex. Valid until the next apply or restore. */
const char *flow_fsm_member_gossip(const flow_fsm *f, uint64_t id, const char **node);
/* {"id": {"address", "node"}, ...} (new reference). */
json_t *flow_fsm_gossip_members(const flow_fsm *f);
/* Applies one entry (the bytes of a log entry, as libraft's apply does): the command's
 * outcome (0, or FLOW_E*: refused or unparsable, counted, state unchanged). Shared by the
 * libraft adapter and the PBFT replica (byzantine.c). */
int flow_fsm_apply_entry(flow_fsm *f, const void *data, size_t len);
/* Replaces the state by a snapshot text (flow_fsm_snapshot_text's shape), validated fully;
 * FLOW_EINVAL and the old state kept on bad input. The data stays the caller's. */
int flow_fsm_restore_text(flow_fsm *f, const void *data, size_t len);
/* The canonical snapshot text (sorted keys), malloc'd; NULL without memory. */
char *flow_fsm_snapshot_text(const flow_fsm *f);

/* ---- entries: raft_malloc'd buffers ready for raft_apply -------------------------------- */
/* cmd must be a command object (flow_cmd_to_json shape). Returns 0 or FLOW_EINVAL (too big)
 * / FLOW_ENOMEM. */
int flow_entry_cmd(const json_t *cmd, uint64_t origin, uint64_t cookie, struct raft_buffer *out);
/* api and (gossip, node) each optional, not all NULL; node is 64 lowercase hex digits. */
int flow_entry_member(uint64_t id, const char *api, const char *gossip, const char *node,
                      struct raft_buffer *out);
int flow_entry_forget(uint64_t id, struct raft_buffer *out);
/* Parses an entry (bounded); NULL if it is not one of the three shapes. */
json_t *flow_entry_parse(const void *data, size_t len);

#endif
