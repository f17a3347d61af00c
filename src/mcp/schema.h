/*
 * src/mcp/schema.h — a small, bounded JSON Schema validator for tool input and output.
 *
 * The subset: type (a name or an array of names: object, array, string, number, integer,
 * boolean, null), properties, required, additionalProperties (boolean or schema), items
 * (one schema), enum, const, minimum, maximum, exclusiveMinimum, exclusiveMaximum (numbers),
 * minLength, maxLength (code points), minItems, maxItems, $defs (at the root) and $ref
 * ("#/$defs/NAME" only; chains bounded); annotations (title, description,
 * default, examples, $schema, $comment, format) are accepted and ignored. Any other keyword
 * makes mcp_schema_check fail, so a tool never advertises a constraint that is not enforced.
 * Schemas nest at most MCP_SCHEMA_MAX_DEPTH levels.
 */
#ifndef MACULA_MCP_SCHEMA_H
#define MACULA_MCP_SCHEMA_H

#include <jansson.h>
#include <stddef.h>

#define MCP_SCHEMA_MAX_DEPTH 32

/* 0 when `schema` is a well-formed schema of the subset; MCP_ESCHEMA with *why otherwise. */
int mcp_schema_check(const json_t *schema, const char **why);
/* 0 when `value` conforms; -1 with a message naming the JSON pointer of the first
 * violation in err (truncated to errlen). `schema` must have passed mcp_schema_check. */
int mcp_schema_validate(const json_t *schema, const json_t *value, char *err, size_t errlen);

#endif
