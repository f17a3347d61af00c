/*
 * flow/consensus/byzantine.h — PBFT (Castro & Liskov, signature variant) replicating the flow
 * state machine among n = 3f+1 replicas that do not trust each other; sans I/O.
 *
 * A pbft_replica is one replica: it owns a flow_fsm (fsm.h) and applies the committed requests
 * through flow_fsm_apply_entry, exactly as the Raft path does. A pbft_client is the client
 * side. Both are fed messages (pbft_*_receive) and time (pbft_*_tick, `now` in ms, any
 * monotonic origin), and queue what they want to send in an outbox the caller drains and
 * delivers (pbft_outbox). They never read a clock, never draw randomness, never do I/O: the same
 * inputs give the same outputs byte for byte (Ed25519 signatures are deterministic).
 *
 * Protocol (one request per sequence number):
 *  - A client signs REQUEST(client, timestamp, op) and sends it to the primary (view mod n).
 *    op is a flow log entry (fsm.h: {"t":"cmd","cmd":...}); timestamps of one client increase.
 *  - The primary assigns the next sequence number inside the window (h, h + window] and
 *    multicasts PRE-PREPARE(view, seq, digest = SHA-256(request), request). A backup accepts
 *    it if it is signed by the view's primary, in its view and window, the digest matches,
 *    the request is validly signed by a known client, and it has accepted no other digest for
 *    (view, seq); it then multicasts PREPARE(view, seq, digest).
 *  - Prepared = the pre-prepare + 2f matching prepares from distinct backups; the replica
 *    multicasts COMMIT. Committed-local = prepared + 2f+1 matching commits. Committed requests
 *    are executed in sequence order; a request whose timestamp is not newer than the last
 *    executed one of its client is not applied again. Every replica sends REPLY(view, client,
 *    timestamp, result = the command's outcome) to the client, which accepts a result once
 *    f+1 replicas sent the same (timestamp, result).
 *  - Every `checkpoint` sequence numbers a replica multicasts CHECKPOINT(seq, SHA-256 of its
 *    state: the flow snapshot and the client table). 2f+1 matching checkpoints make it stable:
 *    the log at and below it is freed (garbage collection) and the window moves. A replica
 *    that finds itself behind a stable checkpoint fetches the state (FETCH / STATE) from a
 *    replica that signed it and checks it against the certified digest.
 *  - View change: a backup with a request or accepted pre-prepare that has not executed within
 *    `view_change_ms` (reset at each execution) moves to view v+1 and multicasts
 *    VIEW-CHANGE(v+1, stable checkpoint + its 2f+1 proofs, for every prepared sequence number
 *    above it the pre-prepare and 2f prepares of the highest view). f+1 view changes for higher
 *    views make a replica join the smallest of them. The new primary, with 2f+1 view changes,
 *    multicasts NEW-VIEW(v+1, the view changes, the pre-prepares it derives from them: for each
 *    sequence number the request of the highest prepared certificate, a null request where
 *    there is none). Backups verify the whole proof and recompute the pre-prepares. If the new
 *    view does not come, the replica moves on with a doubled timeout.
 *
 * Authentication: every message carries the sender's Ed25519 signature (gnutls
 * GNUTLS_SIGN_EDDSA_ED25519) over all of its bytes before the signature; nested messages
 * (requests in pre-prepares, proofs in view changes) keep their own signatures and are verified
 * too. Decoding is strict and bounded (PBFT_MSG_MAX, exact lengths, nesting depth 4). A message
 * that does not decode, is not signed by the sender it names, or proves nothing it claims is
 * refused and counted against the transport peer it came from (pbft_replica_rejected); a
 * correct replica is never affected by it. Signatures cost most of the CPU (Ed25519 in nettle),
 * so a vote that cannot change anything (its slot is already prepared / committed in its view,
 * or its sender's vote is in) and a reply the client no longer needs are dropped after
 * decoding, before the signature check (and are not counted).
 *
 * Wire format (big endian): "PB" 0x01 type sender:u32 body signature[64].
 *
 * Limits: n <= PBFT_MAX_N; at most one outstanding request per client (as in PBFT); clients
 * are a fixed table of public keys (id = index).
 */
#ifndef MACULA_FLOW_BYZANTINE_H
#define MACULA_FLOW_BYZANTINE_H

#include <gnutls/abstract.h>
#include <gnutls/gnutls.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "flow/consensus/fsm.h"

#define PBFT_MAX_N 16              /* replicas */
#define PBFT_MAX_CLIENTS 4096      /* client table */
#define PBFT_SIG_LEN 64            /* Ed25519 */
#define PBFT_DIGEST_LEN 32         /* SHA-256 */
#define PBFT_MSG_MAX (64u << 20)   /* bytes of one message (state transfer included) */
#define PBFT_OP_MAX (4u << 20)     /* bytes of a request's operation */
#define PBFT_STATE_MAX (60u << 20) /* bytes of a transferred state */

enum {
    PBFT_OK = 0,
    PBFT_EINVAL = -1,  /* bad argument or configuration */
    PBFT_ENOMEM = -2,  /* allocation failed */
    PBFT_EBADMSG = -3, /* does not decode, or fails a protocol check (bad proof, wrong view) */
    PBFT_EBADSIG = -4, /* signature missing or wrong, or an unknown sender */
    PBFT_EBUSY = -5,   /* a client already has a request outstanding */
    PBFT_ECRYPTO = -6, /* GnuTLS failed to sign or hash */
};
const char *pbft_strerror(int err);

typedef enum pbft_msg_type {
    PBFT_REQUEST = 1,
    PBFT_PREPREPARE,
    PBFT_PREPARE,
    PBFT_COMMIT,
    PBFT_REPLY,
    PBFT_CHECKPOINT,
    PBFT_VIEWCHANGE,
    PBFT_NEWVIEW,
    PBFT_FETCH,
    PBFT_STATE,
} pbft_msg_type;

/* ---- outbox ------------------------------------------------------------------------------ */
typedef enum pbft_dest {
    PBFT_TO_REPLICA = 0, /* replica `to` */
    PBFT_TO_ALL,         /* every replica but the sender */
    PBFT_TO_CLIENT,      /* client `to` */
} pbft_dest;

typedef struct pbft_out {
    pbft_dest dest;
    uint32_t to;
    uint8_t *data; /* owned by the outbox */
    size_t len;
} pbft_out;

typedef struct pbft_outbox {
    pbft_out *v;
    size_t n, cap;
} pbft_outbox;

/* Frees the messages; the outbox stays usable. */
void pbft_outbox_clear(pbft_outbox *ob);

/* ---- replica ----------------------------------------------------------------------------- */
typedef struct pbft_config {
    uint32_t n;                      /* replicas, 4..PBFT_MAX_N; f = (n - 1) / 3 */
    uint32_t id;                     /* this replica, < n */
    gnutls_privkey_t key;            /* this replica's Ed25519 key (borrowed) */
    const gnutls_pubkey_t *replicas; /* n public keys, by replica id (borrowed) */
    const gnutls_pubkey_t *clients;  /* nclients public keys, by client id (borrowed) */
    uint32_t nclients;               /* 1..PBFT_MAX_CLIENTS */
    uint32_t checkpoint;             /* K: sequence numbers between checkpoints; 0: 64 */
    uint32_t window;                 /* log window L (multiple of K, >= 2K); 0: 2K */
    uint64_t view_change_ms;         /* 0: 500 */
    /* Ended tasks the replica's state keeps (flow_fsm_set_retention, also after a state
     * transfer) when retention_set; else the state machine's default. */
    bool retention_set;
    uint64_t retention;
    /* Optional hooks for the owner (pbft_node.c), run inside pbft_replica_receive / _tick; they
     * must not call the replica. executed: a request was applied to the state machine (in
     * sequence order; op is its operation, result its outcome) — not called for null requests
     * nor for a request whose timestamp was already executed. installed: a state transfer
     * replaced the state; the replica has executed up to seq (pbft_replica_fsm is the new
     * state). */
    void (*executed)(void *user, uint64_t seq, uint32_t client, uint64_t ts, const uint8_t *op,
                     size_t len, int32_t result);
    void (*installed)(void *user, uint64_t seq);
    void *user;
} pbft_config;

typedef struct pbft_replica pbft_replica;

typedef struct pbft_stats {
    uint64_t executed;     /* sequence numbers executed (null requests included) */
    uint64_t applied;      /* requests applied to the state machine */
    uint64_t view_changes; /* views this replica moved to */
    uint64_t checkpoints;  /* checkpoints that became stable here */
    uint64_t transfers;    /* states installed by state transfer */
    uint64_t rejected;     /* messages refused (all peers) */
    uint64_t conflicts;    /* pre-prepares for an accepted (view, seq) with another digest */
} pbft_stats;

/* NULL with PBFT_EINVAL / PBFT_ENOMEM in *err (err may be NULL). */
pbft_replica *pbft_replica_new(const pbft_config *cfg, int *err);
void pbft_replica_free(pbft_replica *r);

/* A message from transport peer `from` (a replica id, or PBFT_FROM_CLIENT for anything else;
 * only used to count refusals). Returns 0 (accepted, or ignored as stale/duplicate) or a
 * negative PBFT_E* when the message was refused (counted). */
#define PBFT_FROM_CLIENT UINT32_MAX
int pbft_replica_receive(pbft_replica *r, uint64_t now, uint32_t from, const uint8_t *data,
                         size_t len);
/* Fires due timers (view change). Call at pbft_replica_next_deadline or later. */
void pbft_replica_tick(pbft_replica *r, uint64_t now);
/* The next time tick has something to do, or UINT64_MAX. */
uint64_t pbft_replica_next_deadline(const pbft_replica *r);
pbft_outbox *pbft_replica_outbox(pbft_replica *r);

uint64_t pbft_replica_view(const pbft_replica *r);
bool pbft_replica_view_changing(const pbft_replica *r);
uint64_t pbft_replica_last_executed(const pbft_replica *r);
uint64_t pbft_replica_stable(const pbft_replica *r); /* stable checkpoint h */
/* The primary of the current view (a replica id). */
uint32_t pbft_replica_primary(const pbft_replica *r);
/* The current view is installed and this replica has executed every sequence number its
 * NEW-VIEW carried (view 0: always), and it has executed at least one sequence number since
 * the view was installed (or, in view 0, since it started). A primary that is settled has
 * every request of earlier views that can still commit in its state: it may act. */
bool pbft_replica_settled(const pbft_replica *r);
const flow_fsm *pbft_replica_fsm(const pbft_replica *r);
void pbft_replica_get_stats(const pbft_replica *r, pbft_stats *st);
/* Messages refused from transport peer `from` (a replica id or PBFT_FROM_CLIENT). */
uint64_t pbft_replica_rejected(const pbft_replica *r, uint32_t from);
/* Canonical text of the replicated state (flow snapshot + client table), malloc'd; equal on
 * replicas that executed the same sequence. NULL without memory. */
char *pbft_replica_state_text(const pbft_replica *r);

/* ---- client ------------------------------------------------------------------------------ */
typedef struct pbft_client_config {
    uint32_t n;                      /* replicas */
    uint32_t id;                     /* this client's id (index in the replicas' table) */
    gnutls_privkey_t key;            /* borrowed */
    const gnutls_pubkey_t *replicas; /* n, borrowed */
    uint64_t retry_ms;               /* resend to all replicas after; 0: 1000 */
} pbft_client_config;

typedef struct pbft_client pbft_client;

pbft_client *pbft_client_new(const pbft_client_config *cfg, int *err);
void pbft_client_free(pbft_client *c);
/* Sends op (a flow log entry, fsm.h) to the primary it believes in. The timestamp is
 * max(now, last + 1). PBFT_EBUSY while a request is outstanding. */
int pbft_client_submit(pbft_client *c, uint64_t now, const void *op, size_t len);
/* A flow command as op (flow_entry_cmd with origin = client id, cookie = timestamp). */
int pbft_client_submit_cmd(pbft_client *c, uint64_t now, const json_t *cmd);
int pbft_client_receive(pbft_client *c, uint64_t now, const uint8_t *data, size_t len);
void pbft_client_tick(pbft_client *c, uint64_t now);
uint64_t pbft_client_next_deadline(const pbft_client *c);
pbft_outbox *pbft_client_outbox(pbft_client *c);
/* Whether the outstanding request got f+1 matching replies; its outcome (0 or FLOW_E*) and
 * timestamp. */
bool pbft_client_done(const pbft_client *c, int32_t *result, uint64_t *ts);
bool pbft_client_busy(const pbft_client *c);
uint64_t pbft_client_view(const pbft_client *c);

/* ---- wire (for tools and tests that play a faulty replica) ------------------------------- */
/* A signed message of a simple type into *out (malloc'd). Fields not used by the type are
 * ignored: REQUEST (sender = client, ts, data = op), PREPREPARE (view, seq, data = request
 * message or empty for a null request; the digest is computed), PREPARE / COMMIT (view, seq,
 * digest), CHECKPOINT (seq, digest), REPLY (view, client, ts, result), FETCH (seq). */
typedef struct pbft_wire {
    pbft_msg_type type;
    uint32_t sender;
    uint64_t view, seq, ts;
    uint32_t client;
    int32_t result;
    uint8_t digest[PBFT_DIGEST_LEN];
    const uint8_t *data;
    size_t len;
} pbft_wire;
int pbft_wire_encode(gnutls_privkey_t key, const pbft_wire *w, uint8_t **out, size_t *outlen);
/* SHA-256 */
int pbft_digest(const void *data, size_t len, uint8_t out[PBFT_DIGEST_LEN]);

#endif
