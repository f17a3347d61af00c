/*
 * flow/consensus/log_store.h — the durable Raft log of flow: libraft's libuv storage (segments
 * of entries and snapshots, fsync'd before they are acknowledged) in <data_dir>/raft, and the
 * TCP transport it talks to peers with. Snapshot cadence is set on the raft instance
 * (raft.c: snapshot_threshold / snapshot_trailing).
 *
 * Fault switch (tests only, docs/consensus.md "Fault switch"): opened with `faults`, the TCP
 * transport is wrapped (struct raft_uv_transport around libraft's TCP one) so that
 * flow_log_store_isolate can cut the node off: while isolated, outgoing connects are closed as
 * soon as they complete and reported failed (RAFT_NOCONNECTION), accepted connections are
 * closed at once, and isolating shuts down (shutdown(2) SHUT_RDWR) every connection the
 * transport made or accepted that is still open, so libraft sees them fail and closes them
 * itself. Without `faults` libraft's transport is used as it is.
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

typedef struct flow_fault_transport {
    struct raft_uv_transport tcp; /* libraft's TCP transport, wrapped */
    raft_uv_accept_cb accept_cb;
    raft_uv_transport_close_cb close_cb;
    struct raft_uv_transport *outer;
    bool isolated;
    flow_fault_conn *conns;
    size_t nconns, cap;
    uint64_t refused; /* connections refused or closed while isolated */
} flow_fault_transport;

typedef struct flow_log_store {
    struct raft_io io;
    struct raft_uv_transport transport; /* what libraft uses: TCP, or the fault wrapper */
    flow_fault_transport *fault;        /* NULL without the fault switch */
    bool tcp_ok, io_ok;
    char dir[PATH_MAX];
} flow_log_store;

/* Creates <data_dir>/raft (and data_dir) when missing and initialises the storage and the
 * transport on `loop` (wrapped for the fault switch when `faults`). Returns 0, or a negative
 * errno / RAFT_* code with a message in err. */
int flow_log_store_open(flow_log_store *ls, struct uv_loop_s *loop, const char *data_dir,
                        bool faults, char *err, size_t errsize);
void flow_log_store_close(flow_log_store *ls);

/* Fault switch: cuts (true) or restores (false) every Raft connection of this node. -EPERM
 * when the store was opened without `faults`. */
int flow_log_store_isolate(flow_log_store *ls, bool isolated);
bool flow_log_store_isolated(const flow_log_store *ls);

#endif
