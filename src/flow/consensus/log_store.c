/* flow/consensus/log_store.c — libraft's libuv storage and TCP transport, and the fault
 * switch's transport wrapper (log_store.h). */
#include "flow/consensus/log_store.h"

#include <errno.h>
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
    fault__track(f, stream);
    f->accept_cb(f->outer, id, address, stream);
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
    } else if (status == 0) {
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
    f->tcp.close(&f->tcp, fault__closed);
}

int flow_log_store_isolate(flow_log_store *ls, bool isolated)
{
    flow_fault_transport *f = ls->fault;
    if (f == NULL) {
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
    if (faults) {
        ls->fault = calloc(1, sizeof *ls->fault);
        if (ls->fault == NULL) {
            snprintf(err, errsize, "out of memory");
            return RAFT_NOMEM;
        }
    }
    rc = raft_uv_tcp_init(ls->fault ? &ls->fault->tcp : &ls->transport, loop);
    if (rc != 0) {
        snprintf(err, errsize, "raft transport: %s", raft_strerror(rc));
        free(ls->fault);
        ls->fault = NULL;
        return rc;
    }
    ls->tcp_ok = true;
    if (ls->fault) {
        ls->fault->outer = &ls->transport;
        ls->transport.impl = ls->fault;
        ls->transport.init = fault__init;
        ls->transport.listen = fault__listen;
        ls->transport.connect = fault__connect_fn;
        ls->transport.close = fault__close;
    }
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
        raft_uv_tcp_close(ls->fault ? &ls->fault->tcp : &ls->transport);
        ls->tcp_ok = false;
    }
    if (ls->fault) {
        free(ls->fault->conns);
        free(ls->fault);
        ls->fault = NULL;
    }
}
