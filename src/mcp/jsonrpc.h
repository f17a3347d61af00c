/*
 * src/mcp/jsonrpc.h — JSON-RPC 2.0 messages as MCP uses them: bounded parsing, message
 * classification, construction and serialisation. No I/O, no MCP semantics.
 *
 * MCP restricts JSON-RPC: a request id is a string or an integer (exact int64; never null,
 * never a fraction), params, when present, is an object or array (method handlers reject
 * arrays with -32602).
 */
#ifndef MACULA_MCP_JSONRPC_H
#define MACULA_MCP_JSONRPC_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

typedef enum mcp_msg_kind {
    MCP_MSG_REQUEST,
    MCP_MSG_NOTIFICATION,
    MCP_MSG_RESPONSE, /* result or error, from the peer */
} mcp_msg_kind;

/* One classified message; every pointer is borrowed from the JSON value it came from. */
typedef struct mcp_msg {
    mcp_msg_kind kind;
    json_t *id;         /* request or response id; NULL for notifications */
    const char *method; /* request or notification */
    json_t *params;     /* NULL when absent */
    json_t *result;     /* response: exactly one of result/error */
    json_t *error;
} mcp_msg;

/*
 * Parses `len` bytes into a JSON value (any type) with bounds: len <= max_len, nesting
 * depth <= max_depth (checked by a scan before jansson sees the bytes), duplicate object keys
 * rejected, NUL characters rejected. Returns the value (new reference) or NULL with *why set
 * to a static description (the caller answers MCP_RPC_PARSE_ERROR).
 */
json_t *mcp_rpc_parse(const char *data, size_t len, size_t max_len, int max_depth,
                      const char **why);

/*
 * Classifies a single message (not a batch). Returns 0 and fills *m, or -32600 (Invalid
 * Request) with *why set; in that case *bad_id is the message's id when it was a valid id
 * (so the error response can carry it), NULL otherwise.
 */
int mcp_rpc_classify(json_t *v, mcp_msg *m, const char **why, json_t **bad_id);

/* A valid request id: a string, or an integer. */
bool mcp_rpc_id_valid(const json_t *id);
bool mcp_rpc_id_equal(const json_t *a, const json_t *b);

/* Builders; each returns a new reference or NULL on ENOMEM. Arguments marked stolen are
 * consumed even on failure. id NULL means a null id. */
json_t *mcp_rpc_result(const json_t *id, json_t *result /* stolen */);
json_t *mcp_rpc_error(const json_t *id, int code, const char *message, json_t *data /* stolen */);
json_t *mcp_rpc_notification(const char *method, json_t *params /* stolen, may be NULL */);

/* Compact serialisation (malloc'd, NUL-terminated, no newline inside; the bytes of
 * json_dumps(JSON_COMPACT)). NULL on ENOMEM or a string that is not UTF-8. */
char *mcp_rpc_dump(const json_t *msg, size_t *len);

#endif
