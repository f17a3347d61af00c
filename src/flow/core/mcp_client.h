/*
 * flow/core/mcp_client.h — the `mcp` executor's connection: an external MCP server run as an
 * OS process, spoken to over its stdin/stdout as newline-delimited JSON-RPC (MCP stdio
 * transport), on the libuv loop without blocking.
 *
 * Open spawns the server and starts the handshake (initialize with protocol 2025-06-18, then
 * notifications/initialized); calls made before it completes wait for it. Each call is
 * tools/call {name, arguments}; its outcome goes to the owner actor as a message `tag` whose
 * payload is a flow_mcp_done header followed by text: on success the result as JSON text
 * (structuredContent when the server gives it, else the text content as a JSON string), on
 * failure the error text (the tool's isError text, a JSON-RPC error, or the server's exit).
 * The server's own requests are answered (ping: {}, others: method not found); its
 * notifications are ignored. When the server exits, every call in flight fails and the
 * connection is dead (flow_mcp_alive false): the owner closes it and opens a new one.
 */
#ifndef MACULA_FLOW_MCP_CLIENT_H
#define MACULA_FLOW_MCP_CLIENT_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#include "macula/sup.h"

#define FLOW_MCP_PROTOCOL "2025-06-18"
#define FLOW_MCP_MAX_LINE ((size_t)4 * 1024 * 1024) /* longer lines from the server are a fault */

typedef struct flow_mcp flow_mcp;

/* The header of an outcome message. */
typedef struct flow_mcp_done {
    uint64_t call; /* the caller's call id */
    bool ok;       /* text is the result (JSON) or the error */
} flow_mcp_done;

/* Spawns argv (NULL-terminated) and starts the handshake. NULL with a message in err when the
 * process cannot start. */
flow_mcp *flow_mcp_open(uv_loop_t *loop, sup_rt *rt, sup_pid owner, int tag, char *const *argv,
                        char *err, size_t errsize);
/* Calls tool with arguments (an object; NULL = {}). Returns 0, or -1 when the connection is
 * dead or out of memory (no message then). */
int flow_mcp_call(flow_mcp *c, uint64_t call, const char *tool, const json_t *arguments);
/* Forgets a call (its task was aborted or timed out): no message will come for it, and the
 * server is told with notifications/cancelled. */
void flow_mcp_cancel(flow_mcp *c, uint64_t call);
bool flow_mcp_alive(const flow_mcp *c);
/* Kills the server and frees the connection (asynchronously); no message comes afterwards. */
void flow_mcp_close(flow_mcp *c);

#endif
