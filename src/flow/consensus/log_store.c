/* flow/consensus/log_store.c — libraft's libuv storage and TCP transport (log_store.h). */
#include "flow/consensus/log_store.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

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

int flow_log_store_open(flow_log_store *ls, struct uv_loop_s *loop, const char *data_dir, char *err,
                        size_t errsize)
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
    rc = raft_uv_tcp_init(&ls->transport, loop);
    if (rc != 0) {
        snprintf(err, errsize, "raft transport: %s", raft_strerror(rc));
        return rc;
    }
    ls->tcp_ok = true;
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
        raft_uv_tcp_close(&ls->transport);
        ls->tcp_ok = false;
    }
}
