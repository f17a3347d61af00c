/*
 * src/mesh/rpc_core.h — the caller's side of mesh RPC as a state machine (MESH.md "RPC"),
 * sans I/O: provider cache, provider choice, attempts with failover, timeouts, and the
 * pending-call table. The gateway's rpc worker drives it with real time and a transport; tests
 * drive it with a virtual clock.
 *
 * A call goes: (the caller's own local handler, if any, is the worker's business) → the
 * provider cache (entries live cache_ttl_ms, 60 s) → a DHT lookup (one LOOKUP action per
 * procedure, however many calls wait for it) → a provider chosen by strategy among those not
 * tried yet → a SEND action → a reply, or the attempt timeout (5 s), after which the next
 * provider is tried, up to max_attempts (default min(3, providers)) and never past the
 * overall timeout (30 s). A provider that answers `no_handler` (its advertisement was stale)
 * is dropped from the cache and the next one is tried at once; any other reply, success or
 * error, ends the call.
 *
 * Everything comes out as actions, polled with rpcc_next_action after any input:
 *   RPCC_ACT_LOOKUP  find providers of `procedure` (answer with rpcc_providers)
 *   RPCC_ACT_SEND    send CALL {call_id, procedure, args} to `provider`; `timeout_ms` is
 *                    what remains of this attempt, to put in the frame's timeout field
 *   RPCC_ACT_DONE    the call ended: `status` (RPCC_R_*), and for RPCC_R_OK / RPCC_R_ERROR
 *                    the reply's bytes (result JSON text, or the remote error's code and
 *                    message) copied into the action
 * An action owns its bytes until rpcc_action_clear. A caller that dies is reported with
 * rpcc_caller_down: its calls are dropped at once, with no DONE. Replies for calls that have
 * ended, or from a provider that is not the current attempt's, are counted and dropped.
 *
 * Limits: max_pending calls (RPCC_ELIMIT beyond), procedure names up to RPCC_MAX_PROC bytes,
 * at most RPCC_MAX_PROVIDERS providers kept per procedure.
 */
#ifndef MACULA_MESH_RPC_CORE_H
#define MACULA_MESH_RPC_CORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define RPCC_CALL_ID_LEN 16
#define RPCC_NODE_ID_LEN 32
#define RPCC_MAX_PROC 256
#define RPCC_MAX_PROVIDERS 64

enum {
    RPCC_OK = 0,
    RPCC_EINVAL = -1, /* bad argument (empty or oversized procedure, zero config value) */
    RPCC_ENOMEM = -2, /* allocation failed; nothing changed */
    RPCC_EEXIST = -3, /* a call with this call_id is pending */
    RPCC_ELIMIT = -4, /* max_pending calls are in flight */
    RPCC_ENOENT = -5, /* no such pending call */
};
const char *rpcc_strerror(int err);

/* How a call ended (RPCC_ACT_DONE.status). rpcc_status_name gives the wire names. */
typedef enum rpcc_status {
    RPCC_R_OK = 0,     /* a provider answered with a result */
    RPCC_R_ERROR,      /* a provider answered with an error (code and message in the action) */
    RPCC_R_NO_HANDLER, /* no provider serves the procedure ("no_handler") */
    RPCC_R_TIMEOUT,    /* attempts or the overall time ran out ("timeout") */
    RPCC_R_CANCELLED,  /* rpcc_cancel ("cancelled") */
} rpcc_status;
const char *rpcc_status_name(rpcc_status s);

typedef enum rpcc_strategy {
    RPCC_RANDOM = 0,
    RPCC_ROUND_ROBIN,
    RPCC_FIRST,
} rpcc_strategy;

/* Zero fields take the defaults in brackets. */
typedef struct rpcc_config {
    uint32_t attempt_timeout_ms; /* [5000] */
    uint32_t overall_timeout_ms; /* [30000] */
    uint32_t max_attempts;       /* [3], capped by the number of providers */
    uint32_t cache_ttl_ms;       /* [60000] */
    uint32_t max_pending;        /* [100000] */
    rpcc_strategy strategy;      /* [RPCC_RANDOM] */
    uint64_t seed;               /* PRNG seed for RPCC_RANDOM [a fixed constant] */
} rpcc_config;

typedef enum rpcc_action_kind {
    RPCC_ACT_LOOKUP = 1,
    RPCC_ACT_SEND,
    RPCC_ACT_DONE,
} rpcc_action_kind;

typedef struct rpcc_action {
    rpcc_action_kind kind;
    uint8_t call_id[RPCC_CALL_ID_LEN];  /* SEND, DONE */
    uint64_t caller;                    /* SEND, DONE: the caller given to rpcc_call */
    uint8_t provider[RPCC_NODE_ID_LEN]; /* SEND; DONE: who answered (R_OK / R_ERROR) */
    uint32_t attempt;                   /* SEND: 1, 2, ... */
    uint32_t timeout_ms;                /* SEND */
    rpcc_status status;                 /* DONE */
    char *procedure;                    /* LOOKUP, SEND (NUL-terminated) */
    uint8_t *args;                      /* SEND: the call's arguments */
    size_t args_len;
    uint8_t *result; /* DONE R_OK: result; R_ERROR: the error message */
    size_t result_len;
    char *error_code; /* DONE R_ERROR: the remote error code */
} rpcc_action;

typedef struct rpcc rpcc;

/* NULL when out of memory or cfg is invalid. cfg may be NULL (all defaults). */
rpcc *rpcc_new(const rpcc_config *cfg);
/* Frees everything, pending calls and queued actions included. NULL is a no-op. */
void rpcc_free(rpcc *r);

/* Starts a call. `caller` is the caller's handle (a pid, say); args are copied. */
int rpcc_call(rpcc *r, const uint8_t call_id[RPCC_CALL_ID_LEN], uint64_t caller,
              const char *procedure, const void *args, size_t args_len, uint64_t now_ms);

/* The answer to a LOOKUP: the providers of `procedure` (node ids, possibly none). They are
 * cached for cache_ttl_ms and the calls waiting for them proceed. Duplicates are ignored. */
int rpcc_providers(rpcc *r, const char *procedure, const uint8_t (*providers)[RPCC_NODE_ID_LEN],
                   size_t n, uint64_t now_ms);

/* A REPLY arrived from `from`. is_error false: `data` is the result; true: `code` and the
 * message in `data`. RPCC_ENOENT when no such call is pending from that provider (dropped). */
int rpcc_reply(rpcc *r, const uint8_t call_id[RPCC_CALL_ID_LEN],
               const uint8_t from[RPCC_NODE_ID_LEN], bool is_error, const char *code,
               const void *data, size_t len, uint64_t now_ms);

/* The caller is gone: its calls are dropped with no DONE. Returns how many. */
size_t rpcc_caller_down(rpcc *r, uint64_t caller);

/* Ends a call with RPCC_R_CANCELLED (a DONE follows). RPCC_ENOENT when not pending. */
int rpcc_cancel(rpcc *r, const uint8_t call_id[RPCC_CALL_ID_LEN]);

/* Forgets a provider everywhere (its connection is gone for good, or it unadvertised). */
void rpcc_forget_provider(rpcc *r, const uint8_t provider[RPCC_NODE_ID_LEN]);

/* Runs the timeouts due at now_ms. */
void rpcc_tick(rpcc *r, uint64_t now_ms);
/* The next time rpcc_tick has work, or UINT64_MAX. */
uint64_t rpcc_next_deadline(const rpcc *r);

/* Moves the oldest queued action into *out (which the caller clears with rpcc_action_clear).
 * Returns false when there is none. */
bool rpcc_next_action(rpcc *r, rpcc_action *out);
void rpcc_action_clear(rpcc_action *a);

typedef struct rpcc_stats {
    uint64_t calls;           /* rpcc_call accepted */
    uint64_t sends;           /* SEND actions (attempts) */
    uint64_t failovers;       /* attempts after the first */
    uint64_t lookups;         /* LOOKUP actions */
    uint64_t cache_hits;      /* calls served from the provider cache */
    uint64_t late_replies;    /* replies dropped (ended call, wrong provider) */
    uint64_t done[5];         /* DONE actions by rpcc_status */
    uint64_t dropped_callers; /* calls dropped by rpcc_caller_down */
    size_t pending;           /* calls in flight now */
} rpcc_stats;
void rpcc_get_stats(const rpcc *r, rpcc_stats *out);

#endif
