/*
 * src/sup/internal.h — runtime internals shared by the files of src/sup (not installed).
 * Functions here are named sup__verb (double underscore: module-internal).
 */
#ifndef MACULA_SUP_INTERNAL_H
#define MACULA_SUP_INTERNAL_H

#include <setjmp.h>

#include "macula/sup.h"

/* A queued message: one block, header and payload together (the header is a multiple of 16
 * bytes, 64 on LP64, so the payload is 16-byte aligned like any malloc'd block). Payloads up
 * to SUP_ENV_POOL_MAX bytes get a block of one of SUP_ENV_NCLASS size classes (payload capacity
 * SUP_ENV_INLINE up to SUP_ENV_POOL_MAX), and a released block goes back to its class's pool in the
 * runtime, so steady messaging does no malloc or free. A pool keeps at most
 * SUP_ENV_POOL_CLASS_BYTES and the pools of a runtime together at most SUP_ENV_POOL_BYTES (blocks
 * beyond are freed); they are freed with the runtime. Larger payloads get a block of their own,
 * freed on release. A queued envelope counts its whole block (header + class capacity) and its
 * reason towards the receiver's memory (sup_actor_info.memory, sup_rt_memory); pooled blocks count
 * nowhere. */
#define SUP_ENV_INLINE 40                             /* payload capacity of the smallest class */
#define SUP_ENV_POOL_MAX 4096                         /* largest pooled payload */
#define SUP_ENV_NCLASS 7                              /* size classes */
#define SUP_ENV_POOL_CLASS_BYTES ((size_t)512 * 1024) /* bound of one class's pool */
#define SUP_ENV_POOL_BYTES ((size_t)1024 * 1024)      /* bound of all pools of a runtime */
typedef struct sup_env {
    struct sup_env *next;
    sup_msg_kind kind;
    int tag;
    sup_pid from;
    uint64_t ref;
    int status;
    unsigned cls;         /* size class, or SUP_ENV_NCLASS for a block of its own */
    sup_reason *reason;   /* EXIT/DOWN/failed REPLY only (malloc'd) */
    size_t len;           /* payload bytes */
    size_t cap;           /* payload capacity of this block */
    unsigned char data[]; /* the payload */
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

/* Bytes the runtime's envelope pools hold now (at most SUP_ENV_POOL_BYTES). */
size_t sup__env_pool_bytes(const sup_rt *rt);
/* ... and the pool of the class a payload of len bytes goes to (0 past SUP_ENV_POOL_MAX). */
size_t sup__env_pool_class_bytes(const sup_rt *rt, size_t len);

/* The actor struct for a pid (live or dying), or NULL. */
sup_actor *sup__lookup(const sup_rt *rt, sup_pid pid);

#endif
