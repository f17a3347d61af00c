/*
 * src/mcp/tools.h — the flow tools of FLOW.md served by an mcp_server (docs/mcp.md "Flow
 * tools"): swarm_init, swarm_status, swarm_list, swarm_scale, swarm_destroy, agent_spawn,
 * agent_list, agent_terminate, task_submit (with an optional wait, progress and
 * cancellation), task_status, task_result, task_list, task_cancel, metrics, and the chaos
 * tools chaos_kill_agent, chaos_inject_latency, chaos_kill_process while chaos is on.
 *
 * Design. MCP transports call tools from libuv callbacks, outside any actor, and the flow API
 * is asynchronous only from an actor (flow_request_async). So a tool call becomes an
 * "operation" owned by the mcp_flow context and is handed (by id, with sup_send) to the
 * gateway actor `macula_flow_mcp`, which makes the flow requests, receives their replies and
 * completes the MCP call. The actor is a child of the node's tree (beside erlmcp_flow_sup):
 * if it ends, the operations it was serving fail as tool errors and new calls fail until it
 * restarts. Everything runs on the runtime's thread.
 *
 * Results: every success is structured output (matching the tool's outputSchema, sent also as
 * text content); every flow error is a tool error (`isError: true`, text "name: message").
 * Argument shapes are enforced by the inputSchemas (mcp server: -32602, or a tool error from
 * 2025-11-25); flow checks the rest.
 *
 * Chaos. The flow chaos actor reads MACULA_FLOW_CHAOS when it starts and the flow API has no
 * operation to switch it, so no MCP tool switches chaos. The chaos tools are registered
 * always and enabled only while chaos is on. Two ways switch them, neither reachable through
 * MCP: mcp_flow_set_chaos (the embedder, trusted) and the operator switch
 * mcp_flow_operator_chaos (signals and the /admin/chaos endpoint of `macula flow`), which is
 * refused unless the configuration allowed it (chaos_allowed: the operator started the node
 * with --chaos or --allow-chaos). Every change sends one notifications/tools/list_changed to
 * every initialized session.
 */
#ifndef MACULA_MCP_TOOLS_H
#define MACULA_MCP_TOOLS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "macula/mcp.h"
#include "macula/sup.h"

/* The gateway actor's registered name. */
#define MCP_FLOW_ACTOR "macula_flow_mcp"

typedef struct mcp_flow mcp_flow;

typedef struct mcp_flow_config {
    bool chaos;           /* chaos tools enabled from the start (implies chaos_allowed) */
    bool chaos_allowed;   /* the operator switch may turn the chaos tools on */
    uint64_t request_ms;  /* timeout of one flow request; default 30000 */
    uint64_t poll_ms;     /* a waiting task_submit looks at its task this often; 200 */
    uint64_t max_wait_ms; /* largest task_submit wait / task_result wait_ms; 3600000 */
} mcp_flow_config;

void mcp_flow_config_defaults(mcp_flow_config *c);

/* Registers the tools into `srv` and returns the context (NULL config: defaults). Returns 0
 * or an MCP_E* code. `rt` and `srv` must outlive the context. */
int mcp_flow_new(sup_rt *rt, mcp_server *srv, const mcp_flow_config *c, mcp_flow **out);
/* A sup_start_fn for the gateway actor; arg is the mcp_flow. Registers MCP_FLOW_ACTOR. */
int mcp_flow_actor_start(sup_rt *rt, sup_pid parent, void *arg, void *extra, sup_pid *out,
                         sup_reason *why);
/* Switches the chaos tools on or off (list_changed when it changes). Returns 0 or MCP_E*. */
int mcp_flow_set_chaos(mcp_flow *f, bool on);
bool mcp_flow_chaos(const mcp_flow *f);
bool mcp_flow_chaos_allowed(const mcp_flow *f);
/* The operator switch: MCP_ESTATE when chaos is not allowed (nothing changes; switching off
 * is always allowed). Returns the number of sessions sent list_changed (0: no change) or an
 * MCP_E* code. */
int mcp_flow_operator_chaos(mcp_flow *f, bool on);
/*
 * The operator endpoint (an mcp_http_route_fn, operator.h; user is the mcp_flow, NULL while
 * flow has not started: 503). GET answers {"chaos": bool, "allowed": bool}; POST takes
 * {"chaos": bool} and answers {"chaos", "allowed", "changed", "notified"} (200), 400 for any
 * other body, 403 {"error": "chaos_not_allowed"} when switching on is not allowed; other
 * methods 405.
 */
int mcp_flow_admin_chaos(void *f, const char *method, const char *body, size_t len, char **reply);
#define MCP_FLOW_ADMIN_CHAOS_PATH "/admin/chaos"
/* Operations in progress (tool calls not yet answered, plus cancellations being sent). */
size_t mcp_flow_pending(const mcp_flow *f);
/* Frees the context and any operation left. Call after the transports' sessions and the
 * gateway actor have ended; the tools stay registered in the server (free it too). */
void mcp_flow_free(mcp_flow *f);

#endif
