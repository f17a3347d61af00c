/*
 * src/mcp/operator.h — operator-side additions to macula/mcp.h, used by the flow front ends
 * (src/cli/flow.c) and their tests: switching several tools with one list_changed, and
 * operator endpoints on the Streamable HTTP listener (docs/mcp.md "Operator switch").
 * Nothing here is reachable by an MCP client.
 */
#ifndef MACULA_MCP_OPERATOR_H
#define MACULA_MCP_OPERATOR_H

#include <stdbool.h>
#include <stddef.h>

#include "macula/mcp.h"

/*
 * Switches the named tools on or off together. Every name must be registered (MCP_ENOENT and
 * nothing changes otherwise). When at least one tool changed, every initialized session gets
 * exactly one notifications/tools/list_changed. Returns the number of sessions notified
 * (0 when nothing changed) or a negative MCP_E* code.
 */
int mcp_server_set_tools_enabled(mcp_server *s, const char *const *names, size_t n, bool enabled);

/*
 * An operator endpoint: called for a request on its path after the listener's Origin check
 * (403 otherwise) and bearer token (401 otherwise) passed; a POST must also carry
 * `Content-Type: application/json` (415 otherwise) so that a browser cannot send it without a
 * CORS preflight. `method` is the HTTP method, `body`/`len` the request body (empty for GET).
 * Returns the HTTP status to answer; *reply (may stay NULL) is a malloc'd JSON text sent as
 * the body (application/json), freed by the transport.
 */
typedef int (*mcp_http_route_fn)(void *user, const char *method, const char *body, size_t len,
                                 char **reply);

/*
 * Adds an operator endpoint at `path` (must start with '/', differ from the MCP path and from
 * the other routes; at most MCP_HTTP_MAX_ROUTES). Returns 0, MCP_EINVAL, MCP_EEXIST,
 * MCP_ELIMIT or MCP_ENOMEM. `user` must outlive the listener.
 */
#define MCP_HTTP_MAX_ROUTES 8
int mcp_http_add_route(mcp_http *h, const char *path, mcp_http_route_fn fn, void *user);

#endif
