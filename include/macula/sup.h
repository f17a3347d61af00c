/*
 * macula/sup.h — the supervision runtime: actors, messages, links, monitors, timers.
 *
 * One runtime (sup_rt) schedules every actor of a node on one thread. An actor is a
 * behaviour (gen_server-shaped callbacks) plus private state plus a mailbox; it has no stack
 * of its own, so a spawn costs one allocation. Actors never block: a call is asynchronous and
 * its reply (or its timeout) arrives as a message.
 *
 * The clock is either real (the runtime is driven by a libuv loop, see sup_rt_new) or virtual
 * (sup_rt_new_virtual: time only moves when sup_rt_advance is called), so the same code runs
 * in production and in deterministic tests.
 *
 * Semantics follow Erlang/OTP (see docs/runtime.md and ../shared/design/SUPERVISION.md):
 *  - a pid is a generation-checked handle; anything sent to a dead or recycled pid is
 *    dropped (the payload's destructor runs), never delivered to another actor;
 *  - exit reasons normal, shutdown and {shutdown, detail} are normal; all others abnormal;
 *  - an exit signal with an abnormal reason kills a linked actor that does not trap exits;
 *    `kill` kills even one that traps, and the victim's reason becomes `killed`;
 *  - a trapping actor receives exit signals as SUP_MSG_EXIT messages; an exit signal from
 *    its parent (the actor that spawned it with SUP_SPAWN_LINK) ends it at once with that
 *    reason, the way gen_server does, unless it set SUP_FLAG_OWN_SHUTDOWN;
 *  - terminate() runs exactly once for every actor that passed init, whatever ended it,
 *    and then the runtime releases everything the actor owned: its timers, its pending
 *    calls, its links and monitors (sending EXIT/DOWN), its sup_alloc memory, its mailbox.
 */
#ifndef MACULA_SUP_H
#define MACULA_SUP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "macula/sup_reason.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- errors (negative values; sup_strerror names them) ---------------------------------- */
enum {
    SUP_OK = 0,
    SUP_ENOPROC = -1,     /* the pid is dead, recycled or never existed */
    SUP_ETIMEDOUT = -2,   /* a call's timeout expired before the reply */
    SUP_ENOMEM = -3,      /* allocation failed */
    SUP_EINVAL = -4,      /* bad argument */
    SUP_EINIT = -5,       /* an actor's init failed (the reason says why) */
    SUP_ECALLEE = -6,     /* the callee of a call died before replying */
    SUP_ENOTFOUND = -7,   /* no such child / name */
    SUP_ERUNNING = -8,    /* the child is running */
    SUP_ERESTARTING = -9, /* the child is being restarted */
    SUP_ESIMPLE = -10,    /* operation not valid for simple_one_for_one */
    SUP_EPRESENT = -11,   /* a child spec with this id exists (not running) */
    SUP_ESTARTED = -12,   /* a child with this id is running */
    SUP_ESPAWN = -13,     /* an OS process could not be started */
    SUP_EBADSPEC = -14,   /* invalid child spec or supervisor flags */
    SUP_EBUSY = -15,      /* the supervisor is in the middle of an operation */
};
const char *sup_strerror(int err);

/* ---- handles ---------------------------------------------------------------------------- */
typedef struct sup_rt sup_rt;       /* one scheduler, one thread */
typedef struct sup_actor sup_actor; /* the running actor, valid only inside its callbacks */

/* A pid: slot index + generation. {0,0} is the null pid. */
typedef struct sup_pid {
    uint32_t idx;
    uint32_t gen;
} sup_pid;
#define SUP_NOPID ((sup_pid){0, 0})
static inline bool sup_pid_eq(sup_pid a, sup_pid b)
{
    return a.idx == b.idx && a.gen == b.gen;
}
static inline bool sup_pid_is_null(sup_pid p)
{
    return p.idx == 0;
}

/* ---- messages --------------------------------------------------------------------------- */
typedef enum sup_msg_kind {
    SUP_MSG_CALL = 1, /* handle_call: reply with sup_reply (now or later, via sup_from) */
    SUP_MSG_CAST,     /* handle_cast */
    SUP_MSG_INFO,     /* handle_info: a plain message (sup_send) */
    SUP_MSG_TIMER,    /* handle_info: a timer of this actor fired; ref = timer ref */
    SUP_MSG_EXIT,     /* handle_info (trapping actors): a linked actor exited; from, reason */
    SUP_MSG_DOWN,     /* handle_info: a monitored actor ended; ref = monitor ref, reason */
    SUP_MSG_REPLY,    /* handle_info: the answer to this actor's sup_call; ref = call ref;
                         status = 0 and payload, or SUP_ETIMEDOUT / SUP_ECALLEE (+reason) */
} sup_msg_kind;

typedef struct sup_msg {
    sup_msg_kind kind;
    int tag;           /* user tag (CALL/CAST/INFO/TIMER) */
    sup_pid from;      /* sender; the ended actor for EXIT/DOWN; the callee for REPLY */
    uint64_t ref;      /* call ref, monitor ref or timer ref */
    int status;        /* REPLY only */
    sup_reason reason; /* EXIT, DOWN, failed REPLY */
    const void *data;  /* payload, valid until the callback returns */
    size_t len;
} sup_msg;

/* Who to answer: taken from a SUP_MSG_CALL to reply later. */
typedef struct sup_from {
    sup_pid pid;
    uint64_t ref;
} sup_from;

/* ---- behaviours ------------------------------------------------------------------------- */
typedef struct sup_behaviour {
    const char *name;  /* shown in the tree and logs */
    size_t state_size; /* the runtime allocates this many zeroed bytes of private state */
    /* Returns 0 to run, or a negative error after sup_stop(self, reason) to refuse the start
     * (the reason becomes the spawner's error reason; terminate is not called). */
    int (*init)(sup_actor *self, void *state, void *arg);
    void (*handle_call)(sup_actor *self, void *state, const sup_msg *m);
    void (*handle_cast)(sup_actor *self, void *state, const sup_msg *m);
    void (*handle_info)(sup_actor *self, void *state, const sup_msg *m);
    /* Called once when the actor ends (any reason). Release what the runtime does not own. */
    void (*terminate)(sup_actor *self, void *state, const sup_reason *reason);
} sup_behaviour;

/* ---- runtime ---------------------------------------------------------------------------- */
struct uv_loop_s;
/* A runtime driven by a libuv loop (real clock). The loop must outlive the runtime. */
sup_rt *sup_rt_new(struct uv_loop_s *loop);
/* A runtime with a virtual clock starting at 0 ms, driven by sup_rt_run/sup_rt_advance. */
sup_rt *sup_rt_new_virtual(void);
/* Kills every remaining actor (reason `shutdown`, no ordering promise) and frees the runtime.
 * Stop supervisors properly first (sup_stop_sync) when order matters. */
void sup_rt_free(sup_rt *rt);
struct uv_loop_s *sup_rt_loop(sup_rt *rt); /* NULL for a virtual runtime */
uint64_t sup_rt_now(const sup_rt *rt);     /* ms, monotonic */
/* Delivers queued messages until every mailbox is empty (does not move the clock). Returns
 * the number of messages delivered. Real runtimes do this on their own from the loop. */
size_t sup_rt_run(sup_rt *rt);
/* Virtual clock only: moves time forward to `until_ms`, firing timers in deadline order and
 * running the actors between them. */
void sup_rt_advance(sup_rt *rt, uint64_t until_ms);
/* Virtual: the earliest pending timer deadline, or UINT64_MAX. */
uint64_t sup_rt_next_deadline(const sup_rt *rt);
/* Live actor count and bytes currently owned by actors (state, mailboxes, sup_alloc). */
size_t sup_rt_actor_count(const sup_rt *rt);
size_t sup_rt_memory(const sup_rt *rt);

/* ---- spawning --------------------------------------------------------------------------- */
enum {
    SUP_SPAWN_LINK = 1u << 0,    /* link to `parent`; `parent` becomes the actor's parent */
    SUP_SPAWN_MONITOR = 1u << 1, /* reserved */
};
/* Creates an actor and runs its init before returning. `parent` may be SUP_NOPID (spawned
 * from outside any actor). On success *out is the pid. On failure returns SUP_EINIT and, if
 * `why` is not NULL, fills it with the reason init gave. */
int sup_spawn(sup_rt *rt, sup_pid parent, const sup_behaviour *b, void *arg, unsigned flags,
              sup_pid *out, sup_reason *why);

/* ---- inside a callback: the running actor ---------------------------------------------- */
sup_rt *sup_self_rt(const sup_actor *self);
sup_pid sup_self(const sup_actor *self);
sup_pid sup_self_parent(const sup_actor *self);
void *sup_self_state(const sup_actor *self);
void sup_set_label(sup_actor *self, const char *label); /* name shown in the tree */

enum {
    SUP_FLAG_TRAP_EXIT = 1u << 0,    /* exit signals become SUP_MSG_EXIT messages */
    SUP_FLAG_OWN_SHUTDOWN = 1u << 1, /* with TRAP_EXIT: the parent's exit signal is a message too */
};
void sup_set_flags(sup_actor *self, unsigned flags);
unsigned sup_get_flags(const sup_actor *self);

/* Ends the running actor with `reason` when the callback returns. */
void sup_stop(sup_actor *self, const sup_reason *reason);
/* Ends the running actor now: unwinds to the scheduler at the callback boundary (longjmp),
 * with an abnormal reason made of the formatted text. Memory from malloc() in the unwound
 * frames is lost; use sup_alloc for anything a crash may leave behind. */
_Noreturn void sup_crash(sup_actor *self, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Memory owned by the running actor, released when it ends (or by sup_free). */
void *sup_alloc(sup_actor *self, size_t size);
void sup_free(sup_actor *self, void *p);

/* ---- messages --------------------------------------------------------------------------- */
/* Payloads are copied: the sender keeps its buffer. Sends to a dead pid return SUP_ENOPROC
 * and are otherwise no-ops. `from` is the sending actor (SUP_NOPID from outside). */
int sup_send(sup_rt *rt, sup_pid from, sup_pid to, int tag, const void *data, size_t len);
int sup_cast(sup_rt *rt, sup_pid from, sup_pid to, int tag, const void *data, size_t len);

/* A message built in place, for senders that gather a large payload piece by piece (a batch of
 * frames): the bytes are written straight into the envelope that will be queued, so sending
 * copies nothing. A zeroed sup_msgbuf is empty; it belongs to the actor that fills it, which
 * frees it in terminate (sup_msgbuf_free) if it may hold an unsent message.
 *   sup_msgbuf_reserve  makes data[0 .. need) writable, keeping every byte of data[0 .. cap)
 *                       (the block may move: reload data); SUP_ENOMEM, nothing changed, when
 *                       it cannot grow;
 *   sup_msgbuf_send     queues data[0 .. len) to `to` as sup_send would (SUP_MSG_INFO, `tag`)
 *                       and leaves b empty; on SUP_ENOPROC (a dead pid) b keeps its bytes, so
 *                       the caller may send it to another pid or free it. An empty b sends a
 *                       message with no payload;
 *   sup_msgbuf_free     releases the block held, if any, and zeroes b. */
typedef struct sup_msgbuf {
    void *env_;          /* private: the envelope being filled, or NULL */
    unsigned char *data; /* the payload being built (NULL while no block is held) */
    size_t len;          /* bytes written: set by the caller, at most cap */
    size_t cap;          /* bytes writable */
    size_t hint;         /* private: the size of the last message sent from this buffer, or
                          * half the previous hint when larger; a fresh block starts that large
                          * (at most 256 KiB), so a batch that fills up like the recent ones is
                          * not moved while it grows */
} sup_msgbuf;
int sup_msgbuf_reserve(sup_rt *rt, sup_msgbuf *b, size_t need);
int sup_msgbuf_send(sup_rt *rt, sup_pid from, sup_pid to, int tag, sup_msgbuf *b);
void sup_msgbuf_free(sup_rt *rt, sup_msgbuf *b);

/* Calls `to`; returns the call ref (> 0), or 0 if `to` is dead — then a SUP_MSG_REPLY with
 * SUP_ECALLEE / reason noproc is still delivered, so callers have one path. The reply or
 * the timeout (timeout_ms; 0 = infinity) arrives as SUP_MSG_REPLY; a late reply is dropped.
 * The call monitors the callee: its death answers SUP_ECALLEE with its reason. */
uint64_t sup_call(sup_actor *self, sup_pid to, int tag, const void *data, size_t len,
                  uint64_t timeout_ms);
/* Answers a call. Safe when the caller is gone or the call already timed out. */
void sup_reply(sup_rt *rt, sup_from to, const void *data, size_t len);
static inline sup_from sup_msg_from(const sup_msg *m)
{
    return (sup_from){m->from, m->ref};
}

/* ---- timers (owned by the running actor, cancelled when it ends) ------------------------ */
uint64_t sup_send_after(sup_actor *self, uint64_t ms, int tag, const void *data, size_t len);
/* Returns true if the timer was pending (its message will not arrive). */
bool sup_cancel_timer(sup_actor *self, uint64_t ref);

/* An actor's next timeout, armed lazily: setting it earlier re-arms the timer at once; setting
 * it later (a client's idle deadline moving with every frame) keeps the timer armed for the
 * earlier time, so a busy actor does not cancel and start a timer per message. The actor, woken
 * early, finds nothing due and sets the deadline again. Zero-initialised: not armed. */
typedef struct sup_deadline {
    uint64_t ref; /* the armed timer; 0: none */
    uint64_t at;  /* when it fires (runtime ms), while ref != 0 */
} sup_deadline;
/* Sets the deadline to `at` (runtime ms, sup_rt_now's clock; UINT64_MAX: none). The timer
 * arrives as SUP_MSG_TIMER with `tag`; check it with sup_deadline_fired. */
void sup_deadline_set(sup_actor *self, sup_deadline *d, uint64_t at, int tag);
/* True, and the deadline disarmed, when m is the timer of d (call on every SUP_MSG_TIMER). */
bool sup_deadline_fired(sup_deadline *d, const sup_msg *m);

/* ---- links, monitors, exit signals ----------------------------------------------------- */
int sup_link(sup_actor *self, sup_pid other);         /* linking to a dead pid sends EXIT noproc */
void sup_unlink(sup_actor *self, sup_pid other);      /* also drops a queued EXIT from `other` */
uint64_t sup_monitor(sup_actor *self, sup_pid other); /* dead pid: DOWN noproc is queued */
/* Removes the monitor; with flush, a queued DOWN for it is dropped too. */
void sup_demonitor(sup_actor *self, uint64_t ref, bool flush);
/* Sends an exit signal to `to` as if `from` had exited with `reason` (erlang:exit/2). */
int sup_exit(sup_rt *rt, sup_pid from, sup_pid to, const sup_reason *reason);
bool sup_is_alive(const sup_rt *rt, sup_pid pid);

/* ---- names ------------------------------------------------------------------------------ */
int sup_register(sup_rt *rt, const char *name, sup_pid pid); /* SUP_EPRESENT if taken */
sup_pid sup_whereis(const sup_rt *rt, const char *name);

/* ---- introspection ---------------------------------------------------------------------- */
typedef struct sup_actor_info {
    const char *label;  /* behaviour name or label */
    size_t mailbox_len; /* queued messages */
    size_t memory;      /* bytes owned: struct, state, mailbox, sup_alloc */
    sup_pid parent;
    const sup_behaviour *behaviour;
} sup_actor_info;
int sup_actor_info_get(const sup_rt *rt, sup_pid pid, sup_actor_info *out);
/* Formats a pid as "<idx.gen>" into buf (at least 24 bytes). */
const char *sup_pid_str(sup_pid pid, char *buf, size_t size);

/* ---- synchronous helpers for code outside the scheduler (tests, CLI, sup-run) ---------- */
/* Calls `to` from outside any actor and runs the scheduler (virtual runtimes: advancing the
 * clock to pending timers) until the reply arrives. Must not be called from a callback, nor
 * from a libuv callback of the runtime's loop. On success copies up to cap bytes of the reply
 * into buf and stores the full length in *len. Returns 0, SUP_ETIMEDOUT or SUP_ECALLEE. */
int sup_call_sync(sup_rt *rt, sup_pid to, int tag, const void *data, size_t len,
                  uint64_t timeout_ms, void *buf, size_t cap, size_t *out_len, sup_reason *why);

#ifdef __cplusplus
}
#endif
#endif
