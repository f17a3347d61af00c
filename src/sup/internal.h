/*
 * src/sup/internal.h — runtime internals shared by the files of src/sup (not installed).
 * Functions here are named sup__verb (double underscore: module-internal).
 */
#ifndef MACULA_SUP_INTERNAL_H
#define MACULA_SUP_INTERNAL_H

#include <setjmp.h>

#include "macula/sup.h"

/* A queued message. Small payloads live inline; larger ones are malloc'd. */
#define SUP_ENV_INLINE 40
typedef struct sup_env {
    struct sup_env *next;
    sup_msg_kind kind;
    int tag;
    sup_pid from;
    uint64_t ref;
    int status;
    sup_reason *reason; /* EXIT/DOWN/failed REPLY only (malloc'd) */
    size_t len;
    unsigned char *data; /* == inl or malloc'd */
    unsigned char inl[SUP_ENV_INLINE];
} sup_env;

/* Selective receive: while set, only envelopes the filter accepts are delivered; the others
 * stay queued in order (Erlang's receive ... end with a pattern). */
typedef bool (*sup_filter_fn)(void *state, const sup_env *e);
void sup__set_filter(sup_actor *self, sup_filter_fn fn);
/* Removes queued envelopes of `kind` from `from` (and with ref when ref != 0). */
void sup__flush(sup_actor *self, sup_msg_kind kind, sup_pid from, uint64_t ref);

/* Monitors on behalf of another actor (the watcher), used by tracers that must observe a
 * child from the instant it starts. */
uint64_t sup__monitor_as(sup_rt *rt, sup_pid watcher, sup_pid target);

/* Ends `pid` now, synchronously (terminate runs, links and monitors are signalled), if it is
 * alive and not inside one of its callbacks. Used by a supervisor whose init failed to tear
 * down what it had started, in order. Returns SUP_ENOPROC or SUP_EBUSY otherwise. */
int sup__kill_now(sup_rt *rt, sup_pid pid, const sup_reason *reason);

/* Supervisor registry hooks used by tree_json / sup_is_supervisor. */
extern const sup_behaviour sup__supervisor_behaviour;

/* The actor struct for a pid (live or dying), or NULL. */
sup_actor *sup__lookup(const sup_rt *rt, sup_pid pid);

#endif
