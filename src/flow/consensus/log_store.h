/*
 * flow/consensus/log_store.h — the durable Raft log of flow: libraft's libuv storage (segments
 * of entries and snapshots, fsync'd before they are acknowledged) in <data_dir>/raft, and the
 * TCP transport it talks to peers with. Snapshot cadence is set on the raft instance
 * (raft.c: snapshot_threshold / snapshot_trailing).
 *
 * The TCP transport is always wrapped (struct raft_uv_transport around libraft's TCP one):
 *
 * Leader loss (docs/consensus.md "Re-election after a kill"): every connection accepted from a
 * peer is watched without touching libraft's reading of it — the wrapper puts its own read
 * callback in front of libraft's (which it then calls with the same arguments), so when the
 * peer's process dies (kill -9, a crash: the kernel closes its sockets) the end of stream
 * (EOF or a read error) is seen at once and the hook set with flow_log_store_on_peer_lost is
 * called with the peer's Raft id (the id the connecting server announced). flow_raft_leader_gone
 * is the policy the owners apply: cut this follower's election timer if that peer is its leader.
 *
 * Fault switch (tests only, docs/consensus.md "Fault switch"): opened with `faults`,
 * flow_log_store_isolate can cut the node off: while isolated, outgoing connects are closed as
 * soon as they complete and reported failed (RAFT_NOCONNECTION), accepted connections are
 * closed at once, and isolating shuts down (shutdown(2) SHUT_RDWR) every connection the
 * transport made or accepted that is still open, so libraft sees them fail and closes them
 * itself. Without `faults` isolating is refused.
 *
 * Lifetime: open before raft_init; close only after raft_close's callback has fired (libraft
 * closes the I/O itself; close releases what the two init functions allocated).
 */
#ifndef MACULA_FLOW_LOG_STORE_H
#define MACULA_FLOW_LOG_STORE_H

#include <limits.h>
#include <netinet/in.h>
#include <raft.h>
#include <raft/uv.h>
#include <stdbool.h>
#include <stddef.h>

/* A connection the fault wrapper made or accepted: its fd and both addresses, so that a
 * reused fd is never mistaken for it. */
typedef struct flow_fault_conn {
    int fd;
    struct sockaddr_storage local, peer;
} flow_fault_conn;

/* The hook called when an accepted connection from peer `id` ended (EOF or read error). */
typedef void (*flow_peer_lost_fn)(void *user, raft_id id);

typedef struct flow_fault_transport {
    struct raft_uv_transport tcp; /* libraft's TCP transport, wrapped */
    bool faults;                  /* the fault switch may be used */
    raft_uv_accept_cb accept_cb;
    raft_uv_transport_close_cb close_cb;
    struct raft_uv_transport *outer;
    bool isolated;
    bool closing; /* libraft closes the transport: no more hooks */
    flow_fault_conn *conns;
    size_t nconns, cap;
    uint64_t refused; /* connections refused or closed while isolated */
    flow_peer_lost_fn peer_lost;
    void *peer_lost_user;
    uint64_t watched, lost; /* accepted connections watched, of which ended */
} flow_fault_transport;

typedef struct flow_log_store {
    struct raft_io io;
    struct raft_uv_transport transport; /* what libraft uses: the wrapper */
    flow_fault_transport *fault;        /* the wrapper (NULL only before open) */
    bool tcp_ok, io_ok;
    char dir[PATH_MAX];
} flow_log_store;

/* Creates <data_dir>/raft (and data_dir) when missing and initialises the storage and the
 * transport on `loop` (the fault switch usable when `faults`). Returns 0, or a negative
 * errno / RAFT_* code with a message in err. */
int flow_log_store_open(flow_log_store *ls, struct uv_loop_s *loop, const char *data_dir,
                        bool faults, char *err, size_t errsize);
void flow_log_store_close(flow_log_store *ls);

/* Fault switch: cuts (true) or restores (false) every Raft connection of this node. -EPERM
 * when the store was opened without `faults`. */
int flow_log_store_isolate(flow_log_store *ls, bool isolated);
bool flow_log_store_isolated(const flow_log_store *ls);

/* Sets (or clears, fn NULL) the hook called, on the loop, when an accepted connection from a
 * peer ends. Not called once the transport is closing. */
void flow_log_store_on_peer_lost(flow_log_store *ls, flow_peer_lost_fn fn, void *user);

/* Counters for status: accepted connections watched, and how many of them ended. */
void flow_log_store_peer_stats(const flow_log_store *ls, uint64_t *watched, uint64_t *lost);

/* The policy for a lost peer: when `r` is a voting follower whose known leader is `id`, its
 * election timer is cut so that it expires short_ms + rank * heartbeat ms from now, rank being
 * its place by id among the other voters (the lost leader left out), checked at libraft's next
 * tick (libraft ticks every heartbeat); never lengthened. Returns true when it was cut.
 * The followers thus start pre-votes in turn, one tick apart: the first is refused by the
 * others (they still remember the leader: libraft grants no vote then), the next one gets the
 * vote of those that already started (they no longer have a leader) and wins — without
 * pre-vote (raft_set_pre_vote) they would split the vote instead. Nothing else changes: the
 * configured election timeout stays (libraft 0.15's raft_set_election_timeout does not reset
 * a running timer, so the follower's expiry in struct raft is set directly). A false alarm
 * (the leader alive, only its connection gone) costs, with pre-vote, a refused pre-vote and no
 * term change. */
bool flow_raft_leader_gone(struct raft *r, raft_id id, unsigned short_ms);

/* The short timeout used for a lost leader: election_ms / 10, at least 10 ms. */
unsigned flow_raft_lost_leader_ms(unsigned election_ms);

#endif
