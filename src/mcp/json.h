/*
 * src/mcp/json.h — JSON text to and from jansson values, without jansson's own loader and
 * dumper (whose per-character stream callbacks, per-token buffers and per-container cycle
 * bookkeeping cost more than the MCP work around them).
 *
 * mcp_json_parse accepts exactly what json_loadb(JSON_REJECT_DUPLICATES | JSON_DECODE_ANY)
 * accepts (RFC 8259: strict UTF-8, no \u0000, surrogate escapes paired, integers within
 * int64, reals that do not overflow, duplicate object keys rejected, only whitespace after
 * the value) and builds the same values (object keys in document order). mcp_json_write
 * produces the bytes json_dumps(JSON_COMPACT | JSON_ENCODE_ANY) produces.
 */
#ifndef MACULA_MCP_JSON_H
#define MACULA_MCP_JSON_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

/* Nesting bound of both directions (jansson's own parser limit). */
#define MCP_JSON_MAX_DEPTH 2048

/* A growable byte buffer; {0} is empty. */
typedef struct mcp_buf {
    char *p;
    size_t len, cap;
} mcp_buf;

/* Room for `more` bytes past len: 0, or -1 on ENOMEM (the buffer is unchanged). */
int mcp_buf_reserve(mcp_buf *b, size_t more);
void mcp_buf_free(mcp_buf *b);
/* Appends n bytes: 0, or -1 on ENOMEM (the buffer is unchanged). */
int mcp_buf_put(mcp_buf *b, const void *p, size_t n);

/*
 * Parses len bytes (not NUL-terminated) into a new reference, nesting at most max_depth
 * (clamped to MCP_JSON_MAX_DEPTH). NULL when the text is not one valid JSON value, or on
 * ENOMEM.
 */
json_t *mcp_json_parse(const char *text, size_t len, int max_depth);

/*
 * Appends the compact serialisation of v (any value) to b. 0, or -1 when v holds a string
 * that is not UTF-8, a non-finite real, nesting beyond MCP_JSON_MAX_DEPTH (a cycle), or on
 * ENOMEM; on failure b->len is as before.
 */
int mcp_json_write(mcp_buf *b, const json_t *v);
/* Appends s (len bytes) as a JSON string; -1 when s is not UTF-8 or on ENOMEM, b->len as
 * before. */
int mcp_json_write_string(mcp_buf *b, const char *s, size_t len);

#endif
