/*
 * flow/consensus/log_store.h — the durable Raft log of flow: libraft's libuv storage (segments
 * of entries and snapshots, fsync'd before they are acknowledged) in <data_dir>/raft, and the
 * TCP transport it talks to peers with. Snapshot cadence is set on the raft instance
 * (raft.c: snapshot_threshold / snapshot_trailing).
 *
 * Lifetime: open before raft_init; close only after raft_close's callback has fired (libraft
 * closes the I/O itself; close releases what the two init functions allocated).
 */
#ifndef MACULA_FLOW_LOG_STORE_H
#define MACULA_FLOW_LOG_STORE_H

#include <limits.h>
#include <raft.h>
#include <raft/uv.h>
#include <stdbool.h>
#include <stddef.h>

typedef struct flow_log_store {
    struct raft_io io;
    struct raft_uv_transport transport;
    bool tcp_ok, io_ok;
    char dir[PATH_MAX];
} flow_log_store;

/* Creates <data_dir>/raft (and data_dir) when missing and initialises the storage and the
 * transport on `loop`. Returns 0, or a negative errno / RAFT_* code with a message in err. */
int flow_log_store_open(flow_log_store *ls, struct uv_loop_s *loop, const char *data_dir, char *err,
                        size_t errsize);
void flow_log_store_close(flow_log_store *ls);

#endif
