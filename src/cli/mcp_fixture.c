/*
 * src/cli/mcp_fixture.c — `macula mcp-fixture [--http PORT] [--token T]`: an MCP server with
 * the test fixture tools (src/mcp/fixture.h), over stdio by default or Streamable HTTP on
 * 127.0.0.1:PORT/mcp; --conformance adds the conformance suite's fixture tools. For the SDK
 * and conformance tests; it exposes no real tools.
 * Logs go to stderr; with --http the first stderr line is "listening http://127.0.0.1:P/mcp".
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "cli.h"
#include "macula/mcp.h"
#include "mcp/fixture.h"

typedef struct fixture_ctx {
    uv_loop_t *loop;
    mcp_http *http;
    mcp_stdio *io;
    uv_signal_t sigint, sigterm;
    int status;
} fixture_ctx;

static void fixture_stop(fixture_ctx *c)
{
    uv_signal_stop(&c->sigint);
    uv_signal_stop(&c->sigterm);
    uv_close((uv_handle_t *)&c->sigint, NULL);
    uv_close((uv_handle_t *)&c->sigterm, NULL);
    if (c->http != NULL) {
        mcp_http_stop(c->http);
        c->http = NULL;
    }
    if (c->io != NULL) {
        mcp_stdio *io = c->io;
        c->io = NULL;
        mcp_stdio_stop(io);
    }
}

static void on_signal(uv_signal_t *h, int signum)
{
    (void)signum;
    fixture_stop(h->data);
}

static void on_stdio_exit(void *user, int status)
{
    fixture_ctx *c = user;
    c->status = status == 0 ? 0 : 1;
    if (c->io != NULL) {
        c->io = NULL;
        fixture_stop(c);
    }
}

int cli_mcp_fixture(int argc, char **argv)
{
    long port = -1;
    const char *token = NULL;
    bool conformance = false;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--http") == 0 && i + 1 < argc) {
            char *end;
            port = strtol(argv[++i], &end, 10);
            if (*end != '\0' || port < 0 || port > 65535) {
                fprintf(stderr, "macula mcp-fixture: invalid port '%s'\n", argv[i]);
                return 2;
            }
        } else if (strcmp(argv[i], "--conformance") == 0) {
            conformance = true;
        } else if (strcmp(argv[i], "--token") == 0 && i + 1 < argc) {
            token = argv[++i];
        } else {
            fprintf(stderr,
                    "usage: macula mcp-fixture [--http PORT] [--token TOKEN] [--conformance]\n");
            return 2;
        }
    }
    signal(SIGPIPE, SIG_IGN);
    uv_loop_t loop;
    uv_loop_init(&loop);
    mcp_server_config sc;
    mcp_server_config_defaults(&sc);
    sc.instructions = "Test fixture server: echo, add, slow, fail, toggle_extra, extra.";
    mcp_server *srv = mcp_server_new(&sc);
    if (srv == NULL || mcp_fixture_register(srv, &loop) != 0 ||
        (conformance && mcp_fixture_register_conformance(srv, &loop) != 0)) {
        fprintf(stderr, "macula mcp-fixture: cannot set up the tools\n");
        return 1;
    }
    fixture_ctx c = {.loop = &loop};
    uv_signal_init(&loop, &c.sigint);
    uv_signal_init(&loop, &c.sigterm);
    c.sigint.data = c.sigterm.data = &c;
    uv_signal_start(&c.sigint, on_signal, SIGINT);
    uv_signal_start(&c.sigterm, on_signal, SIGTERM);
    int rc;
    if (port >= 0) {
        mcp_http_config hc;
        mcp_http_config_defaults(&hc);
        hc.port = (uint16_t)port;
        hc.bearer_token = token;
        const char *err = NULL;
        rc = mcp_http_start(&loop, srv, &hc, &c.http, &err);
        if (rc == 0) {
            fprintf(stderr, "listening http://127.0.0.1:%u/mcp\n", mcp_http_port(c.http));
        } else {
            fprintf(stderr, "macula mcp-fixture: %s\n", err);
        }
    } else {
        rc = mcp_stdio_start(&loop, srv, 0, 1, on_stdio_exit, &c, &c.io);
        if (rc != 0) {
            fprintf(stderr, "macula mcp-fixture: stdio: %s\n", mcp_strerror(rc));
        }
    }
    if (rc != 0) {
        fixture_stop(&c);
        c.status = 1;
    }
    uv_run(&loop, UV_RUN_DEFAULT);
    uv_loop_close(&loop);
    mcp_server_free(srv);
    return c.status;
}
