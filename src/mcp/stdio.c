/*
 * src/mcp/stdio.c — the stdio transport: newline-delimited JSON-RPC on two file descriptors
 * (pipes, ttys or regular files) driven by libuv. One session per transport. Nothing but MCP
 * messages is written to the output; the library logs nothing.
 *
 * Output is coalesced: every message produced while one chunk of input is handled (one read
 * callback, any number of lines) is appended to one buffer, written at the end of the chunk
 * with a single uv_try_write; what the pipe does not take at once goes to a uv_write that
 * owns the buffer. Messages produced outside input handling (a tool finishing later, a
 * progress notification) are written at once. Order is kept: while a uv_write is queued,
 * later output queues behind it.
 *
 * Shutdown (EOF, read error, mcp_stdio_stop): reading stops, the session is freed (in-flight
 * calls cancelled, no responses), buffered and queued writes are flushed, the handles are
 * closed, then on_exit runs and the transport is freed.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <uv.h>

#include "macula/mcp.h"

typedef union io_handle {
    uv_handle_t h;
    uv_stream_t s;
    uv_pipe_t pipe;
    uv_tty_t tty;
} io_handle;

struct mcp_stdio {
    uv_loop_t *loop;
    mcp_session *ss;
    size_t max_line;
    /* input */
    io_handle in;
    bool in_stream; /* pipe or tty; else a file read with uv_fs_read */
    int in_fd;
    uv_fs_t fs_req;
    bool fs_busy;
    char rbuf[65536];
    char *line;
    size_t len, cap;
    bool discarding; /* inside an over-long line */
    /* output */
    io_handle out;
    bool out_stream;
    int out_fd;
    int writes; /* uv_write requests in flight */
    char *obuf; /* output not yet written or queued */
    size_t olen, ocap;
    bool batching; /* inside an input chunk: output waits for its end */
    /* lifecycle */
    bool stopping;
    bool closing;
    bool silent; /* start failed: no on_exit */
    int open_handles;
    int status;
    void (*on_exit)(void *user, int status);
    void *user;
};

typedef struct wreq {
    uv_write_t req;
    mcp_stdio *io;
    char *data; /* the output buffer, owned */
} wreq;

static void stdio__maybe_finish(mcp_stdio *io);

/* ---- output ----------------------------------------------------------------------------- */

static void stdio__written(uv_write_t *req, int status)
{
    wreq *w = (wreq *)req;
    mcp_stdio *io = w->io;
    free(w->data);
    free(w);
    io->writes--;
    if (status != 0 && io->status == 0) {
        io->status = MCP_EIO;
    }
    stdio__maybe_finish(io);
}

/* Blocking write of all bytes (regular files). */
static int stdio__write_all(int fd, const char *p, size_t n)
{
    while (n > 0) {
        ssize_t k = write(fd, p, n);
        if (k < 0 && errno == EINTR) {
            continue;
        }
        if (k <= 0) {
            return MCP_EIO;
        }
        p += k;
        n -= (size_t)k;
    }
    return 0;
}

/* Writes the buffered output: directly when nothing is queued and the pipe takes it, else
 * by a uv_write that takes the buffer over. On failure the output is dropped, status set. */
static void stdio__flush(mcp_stdio *io)
{
    if (io->olen == 0) {
        return;
    }
    size_t off = 0;
    if (!io->out_stream) {
        int rc = stdio__write_all(io->out_fd, io->obuf, io->olen);
        if (rc != 0 && io->status == 0) {
            io->status = rc;
        }
        io->olen = 0;
        return;
    }
    if (io->writes == 0) {
        uv_buf_t b = uv_buf_init(io->obuf, (unsigned)io->olen);
        int n = uv_try_write(&io->out.s, &b, 1);
        if (n >= 0) {
            off = (size_t)n;
        } else if (n != UV_EAGAIN) {
            io->olen = 0;
            if (io->status == 0) {
                io->status = MCP_EIO;
            }
            return;
        }
        if (off == io->olen) {
            io->olen = 0;
            return;
        }
    }
    wreq *w = malloc(sizeof *w);
    if (w == NULL) {
        io->olen = 0;
        io->status = MCP_ENOMEM;
        return;
    }
    w->io = io;
    w->data = io->obuf;
    uv_buf_t b = uv_buf_init(io->obuf + off, (unsigned)(io->olen - off));
    io->obuf = NULL;
    io->olen = io->ocap = 0;
    if (uv_write(&w->req, &io->out.s, &b, 1, stdio__written) != 0) {
        free(w->data);
        free(w);
        io->status = MCP_EIO;
        return;
    }
    io->writes++;
}

/* Appends one message and its newline to the output; written now unless batching. */
static void stdio__write(mcp_stdio *io, const char *json, size_t len)
{
    if (io->closing) {
        return;
    }
    if (io->olen + len + 1 > io->ocap) {
        size_t cap = io->ocap ? io->ocap : 16384;
        while (cap < io->olen + len + 1) {
            cap *= 2;
        }
        char *nb = realloc(io->obuf, cap);
        if (nb == NULL) {
            io->status = MCP_ENOMEM;
            return;
        }
        io->obuf = nb;
        io->ocap = cap;
    }
    memcpy(io->obuf + io->olen, json, len);
    io->obuf[io->olen + len] = '\n';
    io->olen += len + 1;
    if (!io->batching) {
        stdio__flush(io);
    }
}

static void t_send(void *user, void *origin, const char *json, size_t len, bool response)
{
    (void)origin;
    (void)response;
    stdio__write(user, json, len);
}

static void t_done(void *user, void *origin)
{
    (void)user;
    (void)origin;
}

static const mcp_transport stdio_transport = {t_send, t_done};

/* ---- input ------------------------------------------------------------------------------ */

static void stdio__line(mcp_stdio *io, char *line, size_t len)
{
    while (len > 0 && (line[len - 1] == '\r' || line[len - 1] == ' ' || line[len - 1] == '\t')) {
        len--;
    }
    size_t skip = 0;
    while (skip < len && (line[skip] == ' ' || line[skip] == '\t')) {
        skip++;
    }
    if (skip == len || io->ss == NULL) {
        return; /* blank lines are ignored */
    }
    mcp_session_input(io->ss, line + skip, len - skip, NULL, NULL);
}

static void stdio__too_long(mcp_stdio *io)
{
    static const char msg[] = "{\"jsonrpc\":\"2.0\",\"id\":null,\"error\":{\"code\":-32700,"
                              "\"message\":\"parse error: message too large\"}}";
    stdio__write(io, msg, sizeof msg - 1);
}

/* Returns 0, or -1 when the line buffer cannot grow (io->status set; the caller stops). */
static int stdio__feed_lines(mcp_stdio *io, const char *data, size_t n)
{
    while (n > 0 && !io->stopping) {
        const char *nl = memchr(data, '\n', n);
        size_t take = nl != NULL ? (size_t)(nl - data) : n;
        if (io->discarding) {
            if (nl != NULL) {
                io->discarding = false;
                stdio__too_long(io);
            }
        } else if (io->len + take > io->max_line) {
            io->discarding = true;
            io->len = 0;
            if (nl != NULL) {
                io->discarding = false;
                stdio__too_long(io);
            }
        } else {
            if (io->len + take + 1 > io->cap) {
                size_t cap = io->cap ? io->cap : 4096;
                while (cap < io->len + take + 1) {
                    cap *= 2;
                }
                char *nb = realloc(io->line, cap);
                if (nb == NULL) {
                    io->status = MCP_ENOMEM;
                    return -1;
                }
                io->line = nb;
                io->cap = cap;
            }
            memcpy(io->line + io->len, data, take);
            io->len += take;
            if (nl != NULL) {
                size_t l = io->len;
                io->len = 0;
                stdio__line(io, io->line, l);
            }
        }
        if (nl == NULL) {
            return 0;
        }
        data += take + 1;
        n -= take + 1;
    }
    return 0;
}

/* One chunk of input: its lines are handled, then their output is written at once. */
static int stdio__feed(mcp_stdio *io, const char *data, size_t n)
{
    io->batching = true;
    int rc = stdio__feed_lines(io, data, n);
    io->batching = false;
    stdio__flush(io);
    return rc;
}

static void stdio__alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    (void)suggested;
    mcp_stdio *io = h->data;
    *buf = uv_buf_init(io->rbuf, sizeof io->rbuf);
}

static void stdio__read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf)
{
    mcp_stdio *io = s->data;
    if (n > 0) {
        if (stdio__feed(io, buf->base, (size_t)n) != 0) {
            mcp_stdio_stop(io);
        } else if (io->stopping) { /* stopped while the chunk was handled */
            stdio__maybe_finish(io);
        }
    } else if (n < 0) {
        if (n != UV_EOF && io->status == 0) {
            io->status = MCP_EIO;
        }
        mcp_stdio_stop(io);
    }
}

static void stdio__fs_read(uv_fs_t *req);

static void stdio__fs_next(mcp_stdio *io)
{
    uv_buf_t b = uv_buf_init(io->rbuf, sizeof io->rbuf);
    io->fs_busy = uv_fs_read(io->loop, &io->fs_req, io->in_fd, &b, 1, -1, stdio__fs_read) == 0;
    if (!io->fs_busy) {
        io->status = MCP_EIO;
        mcp_stdio_stop(io);
    }
}

static void stdio__fs_read(uv_fs_t *req)
{
    mcp_stdio *io = req->data;
    ssize_t n = req->result;
    uv_fs_req_cleanup(req);
    if (n > 0 && !io->stopping) {
        int rc = stdio__feed(io, io->rbuf, (size_t)n);
        io->fs_busy = false;
        if (rc != 0) {
            mcp_stdio_stop(io);
        } else if (!io->stopping) {
            stdio__fs_next(io);
        } else {
            stdio__maybe_finish(io);
        }
        return;
    }
    io->fs_busy = false;
    if (n < 0 && io->status == 0) {
        io->status = MCP_EIO;
    }
    if (!io->stopping) {
        mcp_stdio_stop(io);
    } else {
        stdio__maybe_finish(io);
    }
}

/* ---- lifecycle -------------------------------------------------------------------------- */

static void stdio__exit(mcp_stdio *io)
{
    free(io->line);
    free(io->obuf);
    if (!io->silent) {
        io->on_exit(io->user, io->status);
    }
    free(io);
}

static void stdio__closed(uv_handle_t *h)
{
    mcp_stdio *io = h->data;
    if (--io->open_handles == 0) {
        stdio__exit(io);
    }
}

static void stdio__maybe_finish(mcp_stdio *io)
{
    if (!io->stopping || io->closing || io->batching) {
        return;
    }
    stdio__flush(io);
    if (io->writes > 0 || io->fs_busy) {
        return;
    }
    io->closing = true;
    if (io->in_stream) {
        io->open_handles++;
        uv_close(&io->in.h, stdio__closed);
    }
    if (io->out_stream) {
        io->open_handles++;
        uv_close(&io->out.h, stdio__closed);
    }
    if (io->open_handles == 0) { /* files only: nothing to close */
        stdio__exit(io);
    }
}

void mcp_stdio_stop(mcp_stdio *io)
{
    if (io == NULL || io->stopping) {
        return;
    }
    io->stopping = true;
    if (io->in_stream) {
        uv_read_stop(&io->in.s);
    }
    mcp_session *ss = io->ss;
    io->ss = NULL;
    mcp_session_free(ss); /* cancels in-flight calls: no responses */
    stdio__maybe_finish(io);
}

/* Sets *stream when a handle was initialized (it must be closed), even if opening failed. */
static int stdio__open(uv_loop_t *loop, io_handle *h, int fd, bool readable, bool *stream)
{
    uv_handle_type t = uv_guess_handle(fd);
    *stream = false;
    if (t == UV_FILE) {
        return 0;
    }
    if (t == UV_TTY) {
        if (uv_tty_init(loop, &h->tty, fd, readable) != 0) {
            return MCP_EIO;
        }
        *stream = true;
        return 0;
    }
    if (uv_pipe_init(loop, &h->pipe, 0) != 0) {
        return MCP_EIO;
    }
    *stream = true;
    return uv_pipe_open(&h->pipe, fd) == 0 ? 0 : MCP_EIO;
}

int mcp_stdio_start(uv_loop_t *loop, mcp_server *s, int in_fd, int out_fd,
                    void (*on_exit)(void *user, int status), void *user, mcp_stdio **out)
{
    if (on_exit == NULL) {
        return MCP_EINVAL;
    }
    mcp_stdio *io = calloc(1, sizeof *io);
    if (io == NULL) {
        return MCP_ENOMEM;
    }
    io->loop = loop;
    io->in_fd = in_fd;
    io->out_fd = out_fd;
    io->on_exit = on_exit;
    io->user = user;
    io->max_line = 4u << 20;
    io->fs_req.data = io;
    int rc_in = stdio__open(loop, &io->in, in_fd, true, &io->in_stream);
    int rc_out = stdio__open(loop, &io->out, out_fd, false, &io->out_stream);
    io->in.h.data = io;
    io->out.h.data = io;
    if (rc_in == 0 && rc_out == 0) {
        io->ss = mcp_session_new(s, &stdio_transport, io);
    }
    if (io->ss == NULL) { /* release what was opened; on_exit is not called */
        io->silent = true;
        io->stopping = true;
        stdio__maybe_finish(io);
        return rc_in != 0 || rc_out != 0 ? MCP_EIO : MCP_ENOMEM;
    }
    *out = io;
    if (io->in_stream) {
        if (uv_read_start(&io->in.s, stdio__alloc, stdio__read) != 0) {
            io->silent = true;
            *out = NULL;
            mcp_stdio_stop(io);
            return MCP_EIO;
        }
    } else {
        stdio__fs_next(io);
    }
    return 0;
}
