/*
 * src/mcp/fixture.h — the test fixture tools, for tests and `macula mcp-fixture` only (never
 * registered by a production server):
 *   echo {text}            -> {text}
 *   add {a, b} (integers)  -> {sum}
 *   slow {steps, interval_ms} -> {steps}: one progress notification per step on a libuv timer,
 *                             cancellable (the timer stops at once)
 *   fail {}                -> a tool error (isError)
 *   toggle_extra {enabled} -> switches the tool `extra` on or off (list_changed)
 *   extra {}               -> {ok:true}; registered disabled
 */
#ifndef MACULA_MCP_FIXTURE_H
#define MACULA_MCP_FIXTURE_H

#include <uv.h>

#include "macula/mcp.h"

/* Returns 0 or the first MCP_E* error of mcp_server_add_tool. */
int mcp_fixture_register(mcp_server *s, uv_loop_t *loop);
/* The fixture tools of the @modelcontextprotocol/conformance server scenarios (fixed names):
 * test_simple_text, test_image_content, test_audio_content, test_embedded_resource,
 * test_multiple_content_types, test_tool_with_logging, test_error_handling,
 * test_tool_with_progress, json_schema_2020_12_tool. For `macula mcp-fixture --conformance`. */
int mcp_fixture_register_conformance(mcp_server *s, uv_loop_t *loop);
/* Number of slow calls whose timer is still running (for tests). */
int mcp_fixture_slow_running(void);

#endif
