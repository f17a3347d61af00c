/* flow/consensus/log_store.c — libraft's libuv storage and TCP transport, and the transport
 * wrapper: leader-loss watch and fault switch (log_store.h). */
#include "flow/consensus/log_store.h"

#include <errno.h>
#include <pthread.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <uv.h>

static int log_store__mkdir(const char *path)
{
    if (mkdir(path, 0700) != 0 && errno != EEXIST) {
        return -errno;
    }
    struct stat sb;
    if (stat(path, &sb) != 0) {
        return -errno;
    }
    return S_ISDIR(sb.st_mode) ? 0 : -ENOTDIR;
}

/* ---- the fault switch's transport ------------------------------------------------------- */

static flow_fault_transport *fault__of(struct raft_uv_transport *tcp)
{
    return (flow_fault_transport *)((char *)tcp - offsetof(flow_fault_transport, tcp));
}

static bool fault__addrs(int fd, struct sockaddr_storage *local, struct sockaddr_storage *peer)
{
    socklen_t ll = sizeof *local, pl = sizeof *peer;
    memset(local, 0, sizeof *local);
    memset(peer, 0, sizeof *peer);
    return getsockname(fd, (struct sockaddr *)local, &ll) == 0 &&
           getpeername(fd, (struct sockaddr *)peer, &pl) == 0;
}

/* Whether the record still names the same open connection (fds are reused). */
static bool fault__live(const flow_fault_conn *c)
{
    struct sockaddr_storage l, p;
    return fault__addrs(c->fd, &l, &p) && memcmp(&l, &c->local, sizeof l) == 0 &&
           memcmp(&p, &c->peer, sizeof p) == 0;
}

static void fault__track(flow_fault_transport *f, struct uv_stream_s *stream)
{
    uv_os_fd_t fd;
    if (uv_fileno((uv_handle_t *)stream, &fd) != 0) {
        return;
    }
    if (f->nconns == f->cap) { /* drop the records of closed connections first */
        size_t k = 0;
        for (size_t i = 0; i < f->nconns; i++) {
            if (fault__live(&f->conns[i])) {
                f->conns[k++] = f->conns[i];
            }
        }
        f->nconns = k;
    }
    if (f->nconns == f->cap) {
        size_t cap = f->cap ? f->cap * 2 : 16;
        flow_fault_conn *v = realloc(f->conns, cap * sizeof *v);
        if (v == NULL) {
            return;
        }
        f->conns = v;
        f->cap = cap;
    }
    flow_fault_conn *c = &f->conns[f->nconns];
    c->fd = fd;
    if (fault__addrs(fd, &c->local, &c->peer)) {
        f->nconns++;
    }
}

static void fault__free_stream(uv_handle_t *h)
{
    raft_free(h);
}

/* ---- leader loss: watching accepted connections -----------------------------------------
 * libraft reads every accepted connection itself (one read callback for all of them). The
 * wrapper puts watch__read in front of it, in the stream's public read_cb field, right after
 * libraft started reading (synchronously, in its accept callback): watch__read calls libraft's
 * callback with the same arguments and, the first time a read fails (UV_EOF: the peer closed
 * or its process died; another error: the connection broke), tells the transport's owner which
 * peer it was. The records live in one table for the process (a stream does not tell which
 * transport accepted it; the benchmark runs three transports on one loop), under a mutex. */

typedef struct watch__rec {
    struct uv_stream_s *stream;
    flow_fault_transport *f;
    raft_id id;
    uv_read_cb raft_read; /* libraft's callback for this stream */
    flow_fault_conn conn; /* to drop the records of streams libraft closed without an error */
} watch__rec;

static pthread_mutex_t watch__mu = PTHREAD_MUTEX_INITIALIZER;
static watch__rec *watch__recs;
static size_t watch__n, watch__cap;
static uv_read_cb watch__fallback; /* libraft's read callback, for a stream no longer recorded */

/* Under the mutex: the record of `stream`, or watch__n. */
static size_t watch__find(const struct uv_stream_s *stream)
{
    for (size_t i = 0; i < watch__n; i++) {
        if (watch__recs[i].stream == stream) {
            return i;
        }
    }
    return watch__n;
}

/* Under the mutex: drops record i; frees the table once empty. */
static void watch__drop(size_t i)
{
    watch__recs[i] = watch__recs[--watch__n];
    if (watch__n == 0) {
        free(watch__recs);
        watch__recs = NULL;
        watch__cap = 0;
    }
}

/* Drops every record of f (its transport closes: no hook any more). */
static void watch__forget(const flow_fault_transport *f)
{
    pthread_mutex_lock(&watch__mu);
    for (size_t i = watch__n; i-- > 0;) {
        if (watch__recs[i].f == f) {
            watch__drop(i);
        }
    }
    pthread_mutex_unlock(&watch__mu);
}

static void watch__read(struct uv_stream_s *stream, ssize_t nread, const uv_buf_t *buf)
{
    flow_peer_lost_fn fn = NULL;
    void *user = NULL;
    raft_id id = 0;
    pthread_mutex_lock(&watch__mu);
    uv_read_cb raft_read = watch__fallback;
    size_t i = watch__find(stream);
    if (i < watch__n) {
        raft_read = watch__recs[i].raft_read;
        if (nread < 0) {
            flow_fault_transport *f = watch__recs[i].f;
            f->lost++;
            fn = f->peer_lost;
            user = f->peer_lost_user;
            id = watch__recs[i].id;
            watch__drop(i);
        }
    }
    pthread_mutex_unlock(&watch__mu);
    raft_read(stream, nread, buf); /* libraft closes the stream on a failed read */
    if (fn) {
        fn(user, id);
    }
}

static void watch__add(flow_fault_transport *f, raft_id id, struct uv_stream_s *stream)
{
    uv_os_fd_t fd;
    if (f->closing || uv_is_closing((uv_handle_t *)stream) || stream->read_cb == NULL ||
        stream->read_cb == watch__read || uv_fileno((uv_handle_t *)stream, &fd) != 0) {
        return; /* libraft refused the connection, or reads it some other way: not watched */
    }
    watch__rec r = {.stream = stream, .f = f, .id = id, .raft_read = stream->read_cb};
    r.conn.fd = fd;
    if (!fault__addrs(fd, &r.conn.local, &r.conn.peer)) {
        return;
    }
    pthread_mutex_lock(&watch__mu);
    size_t i = watch__find(stream); /* a closed stream's memory reused */
    if (i == watch__n && watch__n == watch__cap) {
        for (size_t k = watch__n; k-- > 0;) { /* streams libraft closed without a failed read */
            if (!fault__live(&watch__recs[k].conn)) {
                watch__drop(k);
            }
        }
        i = watch__n;
    }
    if (i == watch__n && watch__n == watch__cap) {
        size_t cap = watch__cap ? watch__cap * 2 : 16;
        watch__rec *v = realloc(watch__recs, cap * sizeof *v);
        if (v == NULL) {
            pthread_mutex_unlock(&watch__mu);
            return;
        }
        watch__recs = v;
        watch__cap = cap;
    }
    if (i == watch__n) {
        watch__n++;
    }
    watch__recs[i] = r;
    watch__fallback = r.raft_read;
    stream->read_cb = watch__read;
    f->watched++;
    pthread_mutex_unlock(&watch__mu);
}

void flow_log_store_on_peer_lost(flow_log_store *ls, flow_peer_lost_fn fn, void *user)
{
    if (ls->fault) {
        pthread_mutex_lock(&watch__mu);
        ls->fault->peer_lost = fn;
        ls->fault->peer_lost_user = user;
        pthread_mutex_unlock(&watch__mu);
    }
}

void flow_log_store_peer_stats(const flow_log_store *ls, uint64_t *watched, uint64_t *lost)
{
    *watched = *lost = 0;
    if (ls->fault) {
        pthread_mutex_lock(&watch__mu);
        *watched = ls->fault->watched;
        *lost = ls->fault->lost;
        pthread_mutex_unlock(&watch__mu);
    }
}

unsigned flow_raft_lost_leader_ms(unsigned election_ms)
{
    return election_ms / 10 > 10 ? election_ms / 10 : 10;
}

bool flow_raft_leader_gone(struct raft *r, raft_id id, unsigned short_ms)
{
    raft_id leader = 0;
    const char *address = NULL;
    if (id == 0 || raft_state(r) != RAFT_FOLLOWER) {
        return false;
    }
    raft_leader(r, &leader, &address);
    if (leader != id) {
        return false; /* a connection from a follower or a candidate: nothing to do */
    }
    /* this node's rank among the voters left: the lowest id goes first, each next one a
     * heartbeat (a libraft tick) later, so that no two pre-vote at the same instant */
    unsigned rank = 0;
    bool voter = false;
    for (unsigned i = 0; i < r->configuration.n; i++) {
        const struct raft_server *s = &r->configuration.servers[i];
        if (s->role != RAFT_VOTER || s->id == id) {
            continue;
        }
        voter = voter || s->id == r->id;
        rank += s->id < r->id;
    }
    if (!voter) {
        return false; /* libraft never starts an election here */
    }
    /* libraft 0.15: a follower converts to candidate at the first tick (every heartbeat) at
     * which now - election_timer_start >= follower_state.randomized_election_timeout */
    raft_time now = r->io->time(r->io);
    raft_time elapsed = now > r->election_timer_start ? now - r->election_timer_start : 0;
    raft_time expiry = elapsed + short_ms + (raft_time)rank * r->heartbeat_timeout;
    if (expiry >= r->follower_state.randomized_election_timeout) {
        return false; /* it expires as soon anyway */
    }
    r->follower_state.randomized_election_timeout = (unsigned)expiry;
    return true;
}

static int fault__init(struct raft_uv_transport *t, raft_id id, const char *address)
{
    flow_fault_transport *f = t->impl;
    int rc = f->tcp.init(&f->tcp, id, address);
    if (rc != 0) {
        snprintf(t->errmsg, sizeof t->errmsg, "%s", f->tcp.errmsg);
    }
    return rc;
}

static void fault__accepted(struct raft_uv_transport *tcp, raft_id id, const char *address,
                            struct uv_stream_s *stream)
{
    flow_fault_transport *f = fault__of(tcp);
    if (f->isolated) {
        f->refused++;
        uv_close((uv_handle_t *)stream, fault__free_stream);
        return;
    }
    if (f->faults) {
        fault__track(f, stream);
    }
    f->accept_cb(f->outer, id, address, stream);
    watch__add(f, id, stream);
}

static int fault__listen(struct raft_uv_transport *t, raft_uv_accept_cb cb)
{
    flow_fault_transport *f = t->impl;
    f->accept_cb = cb;
    int rc = f->tcp.listen(&f->tcp, fault__accepted);
    if (rc != 0) {
        snprintf(t->errmsg, sizeof t->errmsg, "%s", f->tcp.errmsg);
    }
    return rc;
}

typedef struct fault__connect {
    struct raft_uv_connect req; /* the wrapped transport's request */
    struct raft_uv_connect *outer;
    flow_fault_transport *f;
} fault__connect;

static void fault__connected(struct raft_uv_connect *req, struct uv_stream_s *stream, int status)
{
    fault__connect *c = req->data;
    flow_fault_transport *f = c->f;
    struct raft_uv_connect *outer = c->outer;
    free(c);
    if (status == 0 && f->isolated) {
        f->refused++;
        uv_close((uv_handle_t *)stream, fault__free_stream);
        stream = NULL;
        status = RAFT_NOCONNECTION;
    } else if (status == 0 && f->faults) {
        fault__track(f, stream);
    }
    outer->cb(outer, stream, status);
}

static int fault__connect_fn(struct raft_uv_transport *t, struct raft_uv_connect *req, raft_id id,
                             const char *address, raft_uv_connect_cb cb)
{
    flow_fault_transport *f = t->impl;
    fault__connect *c = calloc(1, sizeof *c);
    if (c == NULL) {
        return RAFT_NOMEM;
    }
    req->cb = cb;
    c->outer = req;
    c->f = f;
    c->req.data = c;
    int rc = f->tcp.connect(&f->tcp, &c->req, id, address, fault__connected);
    if (rc != 0) {
        snprintf(t->errmsg, sizeof t->errmsg, "%s", f->tcp.errmsg);
        free(c);
    }
    return rc;
}

static void fault__closed(struct raft_uv_transport *tcp)
{
    flow_fault_transport *f = fault__of(tcp);
    if (f->close_cb) {
        f->close_cb(f->outer);
    }
}

static void fault__close(struct raft_uv_transport *t, raft_uv_transport_close_cb cb)
{
    flow_fault_transport *f = t->impl;
    f->close_cb = cb;
    f->closing = true;
    watch__forget(f);
    f->tcp.close(&f->tcp, fault__closed);
}

int flow_log_store_isolate(flow_log_store *ls, bool isolated)
{
    flow_fault_transport *f = ls->fault;
    if (f == NULL || !f->faults) {
        return -EPERM;
    }
    f->isolated = isolated;
    if (isolated) {
        for (size_t i = 0; i < f->nconns; i++) {
            if (fault__live(&f->conns[i])) {
                shutdown(f->conns[i].fd, SHUT_RDWR); /* libraft sees the stream fail */
            }
        }
        f->nconns = 0;
    }
    return 0;
}

bool flow_log_store_isolated(const flow_log_store *ls)
{
    return ls->fault && ls->fault->isolated;
}

/* ---- the store ---------------------------------------------------------------------------- */

int flow_log_store_open(flow_log_store *ls, struct uv_loop_s *loop, const char *data_dir,
                        bool faults, char *err, size_t errsize)
{
    memset(ls, 0, sizeof *ls);
    if (data_dir == NULL || data_dir[0] == '\0') {
        snprintf(err, errsize, "raft needs a data directory");
        return -EINVAL;
    }
    int n = snprintf(ls->dir, sizeof ls->dir, "%s/raft", data_dir);
    if (n < 0 || (size_t)n >= sizeof ls->dir) {
        snprintf(err, errsize, "data directory path too long");
        return -ENAMETOOLONG;
    }
    int rc = log_store__mkdir(data_dir);
    if (rc == 0) {
        rc = log_store__mkdir(ls->dir);
    }
    if (rc != 0) {
        snprintf(err, errsize, "%s: %s", ls->dir, strerror(-rc));
        return rc;
    }
    ls->fault = calloc(1, sizeof *ls->fault);
    if (ls->fault == NULL) {
        snprintf(err, errsize, "out of memory");
        return RAFT_NOMEM;
    }
    ls->fault->faults = faults;
    rc = raft_uv_tcp_init(&ls->fault->tcp, loop);
    if (rc != 0) {
        snprintf(err, errsize, "raft transport: %s", raft_strerror(rc));
        free(ls->fault);
        ls->fault = NULL;
        return rc;
    }
    ls->tcp_ok = true;
    ls->fault->outer = &ls->transport;
    ls->transport.impl = ls->fault;
    ls->transport.init = fault__init;
    ls->transport.listen = fault__listen;
    ls->transport.connect = fault__connect_fn;
    ls->transport.close = fault__close;
    rc = raft_uv_init(&ls->io, loop, ls->dir, &ls->transport);
    if (rc != 0) {
        snprintf(err, errsize, "raft storage %s: %s", ls->dir, raft_strerror(rc));
        flow_log_store_close(ls);
        return rc;
    }
    ls->io_ok = true;
    return 0;
}

void flow_log_store_close(flow_log_store *ls)
{
    if (ls->io_ok) {
        raft_uv_close(&ls->io);
        ls->io_ok = false;
    }
    if (ls->tcp_ok) {
        raft_uv_tcp_close(&ls->fault->tcp);
        ls->tcp_ok = false;
    }
    if (ls->fault) {
        watch__forget(ls->fault);
        free(ls->fault->conns);
        free(ls->fault);
        ls->fault = NULL;
    }
}
