/*
 * macula/sup_supervisor.h — supervisors with OTP's semantics (../shared/design/SUPERVISION.md,
 * OTP 25 stdlib supervisor.erl is the reference where that page is silent).
 *
 * A supervisor is an actor. Its children are actors, nested supervisors, or OS processes
 * (macula/sup_osproc.h), all described by the same child spec. The supervisor links to each
 * child, traps exits, restarts by strategy, counts restarts in a sliding window of `period`
 * seconds (whole seconds, as OTP) and gives up with reason `shutdown` when more than
 * `intensity` restarts fall in the window.
 *
 * API operations are calls to the supervisor actor, so they queue behind exits it has not
 * handled yet, exactly like OTP's gen_server calls. From outside the scheduler use the *_sync
 * functions; from an actor use sup_call with the SUP_SV_* tags and decode with sup_sv_*.
 */
#ifndef MACULA_SUP_SUPERVISOR_H
#define MACULA_SUP_SUPERVISOR_H

#include "macula/sup.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum sup_strategy {
    SUP_ONE_FOR_ONE = 0,
    SUP_ONE_FOR_ALL,
    SUP_REST_FOR_ONE,
    SUP_SIMPLE_ONE_FOR_ONE,
} sup_strategy;

typedef enum sup_restart {
    SUP_PERMANENT = 0, /* always restarted */
    SUP_TRANSIENT,     /* restarted after an abnormal exit only */
    SUP_TEMPORARY,     /* never restarted, removed when it ends */
} sup_restart;

typedef enum sup_child_type { SUP_WORKER = 0, SUP_SUPERVISOR } sup_child_type;

typedef enum sup_auto_shutdown {
    SUP_AUTO_NEVER = 0,
    SUP_AUTO_ANY_SIGNIFICANT,
    SUP_AUTO_ALL_SIGNIFICANT,
} sup_auto_shutdown;

#define SUP_SHUTDOWN_BRUTAL_KILL (-1)
#define SUP_SHUTDOWN_INFINITY (-2)
#define SUP_SHUTDOWN_DEFAULT (-3) /* 5000 for workers, infinity for supervisors */

/*
 * The start function starts one child linked to `parent` (use SUP_SPAWN_LINK with parent as
 * the spawn parent) and stores its pid. `extra` is the start_child argument of a
 * simple_one_for_one supervisor (NULL otherwise). Returns 0; SUP_IGNORE-like behaviour is
 * not offered. On failure returns a negative error and fills *why.
 */
typedef int (*sup_start_fn)(sup_rt *rt, sup_pid parent, void *arg, void *extra, sup_pid *out,
                            sup_reason *why);

typedef struct sup_child_spec {
    const char *id; /* unique among siblings; copied */
    sup_start_fn start;
    void *arg;                   /* passed to start; owned by the caller unless arg_free is set */
    void (*arg_free)(void *arg); /* called when the supervisor drops the spec */
    sup_restart restart;
    int shutdown_ms; /* ms >= 0, SUP_SHUTDOWN_BRUTAL_KILL/INFINITY/DEFAULT */
    sup_child_type type;
    bool significant;
} sup_child_spec;

typedef struct sup_flags {
    sup_strategy strategy;
    int intensity; /* >= 0 (OTP default 1) */
    int period_s;  /* >= 1 (OTP default 5) */
    sup_auto_shutdown auto_shutdown;
} sup_flags;

/* Observer of supervisor events (the sup-run trace, metrics). `child` is NULL for the
 * supervisor's own exit. Called synchronously inside the scheduler: do not call back in. */
typedef enum sup_event {
    SUP_EV_START,        /* a child started (initial, start_child, restart_child) */
    SUP_EV_RESTART,      /* a child started by an automatic restart */
    SUP_EV_START_FAILED, /* a start attempt failed; reason = why */
    SUP_EV_CHILD_EXIT,   /* a child ended; reason = its exit reason */
    SUP_EV_REMOVE,       /* a child entry was discarded while the supervisor lives on */
    SUP_EV_SUP_EXIT,     /* the supervisor itself is ending; reason */
} sup_event;
typedef struct sup_event_info {
    sup_event event;
    sup_pid sup;
    const char *child_id; /* NULL for SUP_EV_SUP_EXIT */
    long instance;        /* simple_one_for_one instance number, else 0 */
    sup_pid child;
    sup_child_type type;
    const sup_reason *reason;
    void *user; /* the hook's user pointer */
} sup_event_info;
typedef void (*sup_event_hook)(const sup_event_info *ev);

typedef struct sup_sv_opts {
    const char *name;    /* label in the tree; copied */
    sup_event_hook hook; /* may be NULL */
    void *hook_user;
} sup_sv_opts;

/* Validates flags and specs (check_childspecs). Returns 0 or SUP_EBADSPEC with a message. */
int sup_check_specs(const sup_flags *flags, const sup_child_spec *specs, size_t n, char *err,
                    size_t errsize);

/* Starts a supervisor linked to `parent` (SUP_NOPID for a root): runs init, starting the
 * children in order. If one fails, those started are terminated in reverse order and the
 * start fails with {shutdown, failed_to_start_child}. Specs are copied. */
int sup_supervisor_start(sup_rt *rt, sup_pid parent, const sup_flags *flags,
                         const sup_child_spec *specs, size_t n, const sup_sv_opts *opts,
                         sup_pid *out, sup_reason *why);

/* A start function for a nested supervisor; arg must point to a sup_sv_nested that lives as
 * long as the spec (see sup_sv_nested_new for an owned copy). */
typedef struct sup_sv_nested {
    sup_flags flags;
    sup_child_spec *specs;
    size_t n;
    sup_sv_opts opts;
} sup_sv_nested;
int sup_sv_start_nested(sup_rt *rt, sup_pid parent, void *arg, void *extra, sup_pid *out,
                        sup_reason *why);

/* ---- API (synchronous, for code outside the scheduler) ---------------------------------- */
/* start_child: for simple_one_for_one, spec is NULL and `extra` is the start argument; the
 * new child's instance number is stored in *instance when not NULL. */
int sup_start_child_sync(sup_rt *rt, sup_pid sup, const sup_child_spec *spec, void *extra,
                         sup_pid *out, long *instance, sup_reason *why);
/* terminate_child by id (child_pid ignored) or, for simple_one_for_one, by pid. */
int sup_terminate_child_sync(sup_rt *rt, sup_pid sup, const char *id, sup_pid child_pid);
int sup_restart_child_sync(sup_rt *rt, sup_pid sup, const char *id, sup_pid *out, sup_reason *why);
int sup_delete_child_sync(sup_rt *rt, sup_pid sup, const char *id);

typedef enum sup_child_state {
    SUP_CHILD_RUNNING = 0,
    SUP_CHILD_UNDEFINED, /* not running (terminated, or failed to start) */
    SUP_CHILD_RESTARTING,
} sup_child_state;
typedef struct sup_child_info {
    char id[64];
    long instance; /* simple_one_for_one instance number */
    sup_pid pid;
    sup_child_state state;
    sup_child_type type;
    sup_restart restart;
    unsigned restarts; /* automatic restarts of this child so far */
} sup_child_info;
/* Fills up to cap entries in OTP's which_children order (static children: most recently
 * started first, as OTP keeps them; instances: ascending instance number). Returns the
 * total count (may exceed cap) or a negative error. */
int sup_which_children_sync(sup_rt *rt, sup_pid sup, sup_child_info *out, size_t cap);
typedef struct sup_counts {
    int specs, active, supervisors, workers;
} sup_counts;
int sup_count_children_sync(sup_rt *rt, sup_pid sup, sup_counts *out);
/* Stops a supervisor (or any actor) with `reason` and waits until it has ended, children
 * first in reverse start order. */
int sup_stop_sync(sup_rt *rt, sup_pid pid, const sup_reason *reason);

/* ---- API from inside an actor (asynchronous) --------------------------------------------- */
/* start_child as a call from the running actor: returns the call ref; the answer arrives as
 * a SUP_MSG_REPLY with that ref, decoded by sup_sv_start_reply. spec (NULL for
 * simple_one_for_one) and extra must stay valid until the supervisor has handled the call. */
uint64_t sup_sv_start_child(sup_actor *self, sup_pid sup, const sup_child_spec *spec, void *extra,
                            uint64_t timeout_ms);
/* Decodes that reply: 0 and *out, or a negative error with *why (SUP_ENOPROC if the supervisor
 * is gone, SUP_ETIMEDOUT). */
int sup_sv_start_reply(const sup_msg *m, sup_pid *out, sup_reason *why);

/* True if pid is a supervisor of this runtime. */
bool sup_is_supervisor(const sup_rt *rt, sup_pid pid);

/* The live tree under `root` as JSON (see docs/runtime.md "Tree JSON"). Returns a malloc'd
 * NUL-terminated string the caller frees, or NULL. */
char *sup_tree_json(sup_rt *rt, sup_pid root);

/* Internal inspection used by sup_tree_json and the metrics: calls fn for each child of a
 * supervisor without a call round trip (single-threaded runtime). Returns SUP_ENOPROC if
 * sup is not a live supervisor. */
typedef struct sup_sv_summary {
    const char *name;
    sup_strategy strategy;
    int intensity, period_s;
    sup_auto_shutdown auto_shutdown;
    unsigned total_restarts;
} sup_sv_summary;
int sup_sv_inspect(const sup_rt *rt, sup_pid sup, sup_sv_summary *summary,
                   void (*fn)(const sup_child_info *ci, void *user), void *user);

const char *sup_strategy_name(sup_strategy s);
const char *sup_restart_name(sup_restart r);

#ifdef __cplusplus
}
#endif
#endif
