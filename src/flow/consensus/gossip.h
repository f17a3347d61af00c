/*
 * flow/consensus/gossip.h — cluster membership and failure detection by push-pull gossip
 * (FLOW.md "Gossip"), sans I/O.
 *
 * Every member has a version (incarnation, heartbeat). A node increments its own heartbeat
 * every round (round_ms, 1 s) and sends its whole table (PUSH) to `fanout` (3) members chosen
 * at random among those it does not hold dead, plus one member it holds dead (a probe, so that
 * a healed partition is noticed); the receiver merges and answers with its own table (PULL),
 * which the first merges. Merging keeps, per member, the higher version.
 *
 * Failure detection is local and two-staged: a member whose version has not grown for
 * suspect_ms (3 s) becomes SUSPECT; after dead_ms (6 s) without growth it is DEAD. A newer
 * version makes it ALIVE again. Heartbeats spread epidemically, so every node reaches the same
 * verdict within a few rounds of the others.
 *
 * Incarnations: a node (re)starts with the incarnation it is given (say, a boot counter, or 0).
 * When it hears of itself with a version newer than its own (it restarted and the others still
 * remember its previous life), it takes that incarnation + 1 and heartbeat 0, which supersedes
 * everything said about its previous life, DEAD included.
 *
 * Quorum: the node counts the members it knows (itself included, DEAD included) and those it
 * holds ALIVE (itself included). It has quorum when alive * 2 > known. A node of a partitioned
 * minority loses it once the majority turns SUSPECT: gossip_paused is what the flow registry
 * consults to pause dispatch; after the partition heals, the versions flow again and quorum
 * returns.
 *
 * Wire (big endian): "GS" 0x01 type(1 PUSH, 2 PULL) sender:u32 count:u32, then count entries
 * of id:u32 incarnation:u32 heartbeat:u64 status:u8. Decoding is strict and bounded
 * (GOSSIP_MAX_MEMBERS). Messages are not signed here: the transport (the mesh's QUIC
 * connections between node identities) authenticates the sender.
 */
#ifndef MACULA_FLOW_GOSSIP_H
#define MACULA_FLOW_GOSSIP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define GOSSIP_MAX_MEMBERS 4096

enum {
    GOSSIP_OK = 0,
    GOSSIP_EINVAL = -1,  /* bad argument */
    GOSSIP_ENOMEM = -2,  /* allocation failed */
    GOSSIP_EBADMSG = -3, /* malformed message */
    GOSSIP_EFULL = -4,   /* GOSSIP_MAX_MEMBERS reached */
};
const char *gossip_strerror(int err);

typedef enum gossip_status {
    GOSSIP_ALIVE = 0,
    GOSSIP_SUSPECT = 1,
    GOSSIP_DEAD = 2,
} gossip_status;
const char *gossip_status_name(gossip_status s);

typedef struct gossip_config {
    uint32_t id;          /* this member */
    uint32_t incarnation; /* at start */
    uint32_t fanout;      /* 0: 3 */
    uint64_t round_ms;    /* 0: 1000 */
    uint64_t suspect_ms;  /* 0: 3000 */
    uint64_t dead_ms;     /* 0: 6000 (from the last growth, > suspect_ms) */
    uint64_t seed;        /* peer choice (a deterministic generator seeded with it) */
    /* A member changed status (or appeared: old = -1). Optional. */
    void (*changed)(void *user, uint32_t id, int old_status, gossip_status now_status);
    void *user;
} gossip_config;

typedef struct gossip gossip;

typedef struct gossip_msg {
    uint32_t to;
    uint8_t *data; /* owned by the outbox */
    size_t len;
} gossip_msg;

typedef struct gossip_outbox {
    gossip_msg *v;
    size_t n, cap;
} gossip_outbox;
void gossip_outbox_clear(gossip_outbox *ob);

/* NULL with the error in *err (may be NULL). The first round is due at now. */
gossip *gossip_new(const gossip_config *cfg, uint64_t now, int *err);
void gossip_free(gossip *g);

/* A member to start from (a seed): ALIVE at version (0, 0) until heard of. */
int gossip_add(gossip *g, uint64_t now, uint32_t id);
/* Forgets a member (it left the cluster): no longer counted for quorum nor sent to; a message
 * that names it again re-adds it. GOSSIP_EINVAL for self or an unknown id. */
int gossip_remove(gossip *g, uint32_t id);
/* A message from member `from` (the transport's authenticated peer). */
int gossip_receive(gossip *g, uint64_t now, uint32_t from, const uint8_t *data, size_t len);
/* Runs the rounds due. */
void gossip_tick(gossip *g, uint64_t now);
uint64_t gossip_next_deadline(const gossip *g);
gossip_outbox *gossip_get_outbox(gossip *g);

/* -1 if unknown. */
int gossip_member_status(const gossip *g, uint32_t id);
uint32_t gossip_incarnation(const gossip *g);
/* Counts by status (self included in alive). */
void gossip_counts(const gossip *g, size_t *alive, size_t *suspect, size_t *dead);
bool gossip_has_quorum(const gossip *g);
/* The flag the registry consults: dispatch pauses while this node has no quorum. */
bool gossip_paused(const gossip *g);

#endif
