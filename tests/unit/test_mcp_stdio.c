/* tests/unit/test_mcp_stdio.c — the stdio transport over pipes and files: newline framing,
 * blank lines, over-long lines, responses and progress on the output, EOF ends the transport
 * and cancels the call still in flight; list_changed from a tool switch goes out on stdout. */
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <uv.h>

#include <cmocka.h>

#include "macula/mcp.h"
#include "mcp/fixture.h"
#include "mcp/operator.h"

typedef struct fx {
    uv_loop_t loop;
    mcp_server *srv;
    int exited;
    int status;
} fx;

static void on_exit_cb(void *user, int status)
{
    fx *f = user;
    f->exited++;
    f->status = status;
}

static int setup(void **state)
{
    fx *f = calloc(1, sizeof *f);
    uv_loop_init(&f->loop);
    f->srv = mcp_server_new(NULL);
    if (mcp_fixture_register(f->srv, &f->loop) != 0) {
        return -1;
    }
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fx *f = *state;
    uv_run(&f->loop, UV_RUN_DEFAULT);
    int rc = uv_loop_close(&f->loop);
    mcp_server_free(f->srv);
    free(f);
    return rc;
}

static const char script[] =
    "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"initialize\",\"params\":{\"protocolVersion\":"
    "\"2025-06-18\"}}\n"
    "\n"
    "   \r\n"
    "{\"jsonrpc\":\"2.0\",\"method\":\"notifications/initialized\"}\r\n"
    "{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":\"tools/call\",\"params\":{\"name\":\"add\","
    "\"arguments\":{\"a\":1,\"b\":2}}}\n"
    "{broken\n"
    "{\"jsonrpc\":\"2.0\",\"id\":3,\"method\":\"tools/call\",\"params\":{\"name\":\"slow\","
    "\"arguments\":{\"steps\":2,\"interval_ms\":1},\"_meta\":{\"progressToken\":\"t\"}}}\n";

static char *read_all(int fd)
{
    char *buf = calloc(1, 1 << 16);
    size_t len = 0;
    ssize_t k;
    while ((k = read(fd, buf + len, (1 << 16) - 1 - len)) > 0) {
        len += (size_t)k;
    }
    return buf;
}

static void test_pipes(void **state)
{
    fx *f = *state;
    int in[2], out[2];
    assert_int_equal(pipe(in), 0);
    assert_int_equal(pipe(out), 0);
    mcp_stdio *io;
    assert_int_equal(mcp_stdio_start(&f->loop, f->srv, in[0], out[1], on_exit_cb, f, &io), 0);
    assert_int_equal(write(in[1], script, sizeof script - 1), (ssize_t)(sizeof script - 1));
    /* run until the slow call has answered (the output holds id 3), then close stdin */
    for (int i = 0; i < 2000 && mcp_fixture_slow_running() == 0; i++) {
        uv_run(&f->loop, UV_RUN_NOWAIT);
        usleep(200);
    }
    for (int i = 0; i < 2000 && mcp_fixture_slow_running() > 0; i++) {
        uv_run(&f->loop, UV_RUN_NOWAIT);
        usleep(200);
    }
    close(in[1]);
    while (f->exited == 0) {
        uv_run(&f->loop, UV_RUN_ONCE);
    }
    assert_int_equal(f->status, 0);
    close(out[1]);
    char *o = read_all(out[0]);
    close(out[0]);
    close(in[0]);
    /* one message per line, in order */
    const char *l1 = strstr(o, "{\"jsonrpc\":\"2.0\",\"id\":1,\"result\"");
    const char *l2 = strstr(o, "{\"jsonrpc\":\"2.0\",\"id\":2,\"result\"");
    const char *l3 = strstr(o, "\"code\":-32700");
    const char *p1 = strstr(o, "\"progress\":1.0");
    const char *r3 = strstr(o, "{\"jsonrpc\":\"2.0\",\"id\":3,\"result\"");
    assert_true(l1 == o);
    assert_true(l1 && l2 && l3 && p1 && r3);
    assert_true(l1 < l2 && l2 < l3 && l3 < p1 && p1 < r3);
    int lines = 0;
    for (const char *p = o; *p; p++) {
        lines += *p == '\n';
    }
    assert_int_equal(lines, 6); /* init, add, parse error, 2 progress, slow */
    assert_int_equal(o[strlen(o) - 1], '\n');
    free(o);
}

static void test_eof_cancels_and_long_lines(void **state)
{
    fx *f = *state;
    int in[2], out[2];
    assert_int_equal(pipe(in), 0);
    assert_int_equal(pipe(out), 0);
    mcp_stdio *io;
    assert_int_equal(mcp_stdio_start(&f->loop, f->srv, in[0], out[1], on_exit_cb, f, &io), 0);
    const char init[] = "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"initialize\",\"params\":{"
                        "\"protocolVersion\":\"2025-03-26\"}}\n{\"jsonrpc\":\"2.0\",\"method\":"
                        "\"notifications/initialized\"}\n{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":"
                        "\"tools/call\",\"params\":{\"name\":\"slow\",\"arguments\":{\"steps\":"
                        "1000,\"interval_ms\":1000}}}\n";
    assert_int_equal(write(in[1], init, sizeof init - 1), (ssize_t)(sizeof init - 1));
    /* a 5 MiB line (above the 4 MiB bound) written by a child thread-free loop */
    size_t big = 5u << 20;
    char *line = malloc(big + 1);
    memset(line, 'x', big);
    line[big] = '\n';
    size_t off = 0;
    fcntl(in[1], F_SETFL, O_NONBLOCK);
    while (off < big + 1) {
        ssize_t k = write(in[1], line + off, big + 1 - off);
        if (k > 0) {
            off += (size_t)k;
        }
        uv_run(&f->loop, UV_RUN_NOWAIT);
    }
    free(line);
    for (int i = 0; i < 100; i++) {
        uv_run(&f->loop, UV_RUN_NOWAIT);
    }
    assert_int_equal(mcp_fixture_slow_running(), 1);
    close(in[1]); /* EOF with the slow call in flight */
    while (f->exited == 0) {
        uv_run(&f->loop, UV_RUN_ONCE);
    }
    assert_int_equal(mcp_fixture_slow_running(), 0);
    close(out[1]);
    char *o = read_all(out[0]);
    close(out[0]);
    close(in[0]);
    assert_non_null(strstr(o, "message too large"));
    assert_null(strstr(o, "\"id\":2")); /* cancelled: never answered */
    free(o);
}

static void test_files(void **state)
{
    fx *f = *state;
    char inpath[] = "/tmp/mcp_stdio_inXXXXXX", outpath[] = "/tmp/mcp_stdio_outXXXXXX";
    int in = mkstemp(inpath), out = mkstemp(outpath);
    assert_true(in >= 0 && out >= 0);
    const char msgs[] = "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"ping\"}\n"
                        "{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":\"tools/list\"}";
    assert_int_equal(write(in, msgs, sizeof msgs - 1), (ssize_t)(sizeof msgs - 1));
    lseek(in, 0, SEEK_SET);
    mcp_stdio *io;
    assert_int_equal(mcp_stdio_start(&f->loop, f->srv, in, out, on_exit_cb, f, &io), 0);
    while (f->exited == 0) {
        uv_run(&f->loop, UV_RUN_ONCE);
    }
    lseek(out, 0, SEEK_SET);
    char *o = read_all(out);
    /* the last line had no newline: it is never completed, so only the ping is answered */
    assert_string_equal(o, "{\"jsonrpc\":\"2.0\",\"id\":1,\"result\":{}}\n");
    free(o);
    close(in);
    close(out);
    unlink(inpath);
    unlink(outpath);
}

/* A switch of tools while the session is idle: one list_changed line on stdout at once. */
static void test_list_changed_stdout(void **state)
{
    fx *f = *state;
    int in[2], out[2];
    assert_int_equal(pipe(in), 0);
    assert_int_equal(pipe(out), 0);
    mcp_stdio *io;
    assert_int_equal(mcp_stdio_start(&f->loop, f->srv, in[0], out[1], on_exit_cb, f, &io), 0);
    const char hs[] = "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"initialize\",\"params\":{"
                      "\"protocolVersion\":\"2025-06-18\"}}\n{\"jsonrpc\":\"2.0\",\"method\":"
                      "\"notifications/initialized\"}\n{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":"
                      "\"ping\"}\n";
    assert_int_equal(write(in[1], hs, sizeof hs - 1), (ssize_t)(sizeof hs - 1));
    /* the ping's answer means the handshake before it was handled */
    fcntl(out[0], F_SETFL, O_NONBLOCK);
    char *o = calloc(1, 1 << 16);
    size_t len = 0;
    for (int i = 0; i < 20000 && strstr(o, "\"id\":2") == NULL; i++) {
        uv_run(&f->loop, UV_RUN_NOWAIT);
        ssize_t k = read(out[0], o + len, (1 << 16) - 1 - len);
        if (k > 0) {
            len += (size_t)k;
        } else {
            usleep(200);
        }
    }
    assert_non_null(strstr(o, "\"id\":2"));
    const char *names[] = {"extra", "echo"};
    assert_int_equal(mcp_server_set_tools_enabled(f->srv, names, 2, true), 1);
    close(in[1]);
    while (f->exited == 0) {
        uv_run(&f->loop, UV_RUN_ONCE);
    }
    close(out[1]);
    ssize_t k;
    while ((k = read(out[0], o + len, (1 << 16) - 1 - len)) > 0) {
        len += (size_t)k;
    }
    close(out[0]);
    close(in[0]);
    const char *lc =
        strstr(o, "{\"jsonrpc\":\"2.0\",\"method\":\"notifications/tools/list_changed\"}\n");
    assert_non_null(lc);
    assert_true(lc > strstr(o, "\"id\":2"));
    assert_null(strstr(strchr(lc, '\n'), "list_changed")); /* exactly one */
    free(o);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_pipes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_eof_cancels_and_long_lines, setup, teardown),
        cmocka_unit_test_setup_teardown(test_files, setup, teardown),
        cmocka_unit_test_setup_teardown(test_list_changed_stdout, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
