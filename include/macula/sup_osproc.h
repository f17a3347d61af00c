/*
 * macula/sup_osproc.h — OS-process children: an external program supervised with the same
 * child specs and semantics as an actor (ARCHITECTURE.md "What cannot be contained").
 *
 * The child is an actor that owns one process (uv_spawn). Its exit reason is the program's
 * fate: exit status 0 → normal; status N → {exit_status,N}; killed by signal S →
 * {signal,S}. When its supervisor shuts it down it sends SIGTERM and ends when the program
 * exits (reason shutdown); if the program outlives the child spec's shutdown timeout the
 * supervisor kills the actor and the program gets SIGKILL (reason killed). brutal_kill sends
 * SIGKILL at once. The process is always reaped, also after the actor is gone.
 *
 * Needs a runtime driven by a libuv loop (sup_rt_new); on a virtual runtime the start fails
 * with SUP_EINVAL.
 */
#ifndef MACULA_SUP_OSPROC_H
#define MACULA_SUP_OSPROC_H

#include "macula/sup.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct sup_osproc_spec {
    const char *file;   /* program (searched in PATH when it has no '/') */
    char **argv;        /* NULL-terminated; argv[0] is the program name */
    char **env;         /* NULL: inherit the node's environment */
    const char *cwd;    /* NULL: inherit */
    bool inherit_stdio; /* true: stdout/stderr go to the node's; false: /dev/null */
    const char *label;  /* name in the tree; NULL: argv[0] */
} sup_osproc_spec;

/* A sup_start_fn: arg is a sup_osproc_spec that outlives the child spec. */
int sup_osproc_start(sup_rt *rt, sup_pid parent, void *arg, void *extra, sup_pid *out,
                     sup_reason *why);

/* The OS pid of an OS-process child, or -1. */
int sup_osproc_os_pid(const sup_rt *rt, sup_pid pid);

#ifdef __cplusplus
}
#endif
#endif
