/* src/mcp/jsonrpc.c — JSON-RPC 2.0 parse, classify, build (see jsonrpc.h). */
#include "jsonrpc.h"

#include "json.h"

#include <stdlib.h>
#include <string.h>

/* Bounded nesting scan: strings are skipped (escapes included), brackets counted. Malformed
 * text is left for jansson to reject; this only guarantees the depth bound. */
static int jsonrpc__depth_ok(const char *p, size_t len, int max_depth)
{
    int depth = 0;
    bool in_str = false;
    for (size_t i = 0; i < len; i++) {
        char c = p[i];
        if (in_str) {
            if (c == '\\') {
                i++;
            } else if (c == '"') {
                in_str = false;
            }
            continue;
        }
        if (c == '"') {
            in_str = true;
        } else if (c == '[' || c == '{') {
            if (++depth > max_depth) {
                return 0;
            }
        } else if (c == ']' || c == '}') {
            depth--;
        }
    }
    return 1;
}

json_t *mcp_rpc_parse(const char *data, size_t len, size_t max_len, int max_depth, const char **why)
{
    if (len > max_len) {
        *why = "message too large";
        return NULL;
    }
    if (len == 0) {
        *why = "empty message";
        return NULL;
    }
    /* the parser enforces the depth bound itself; the scan, run only on failure, tells a
     * too-deep text (valid or not) from other invalid JSON, as a scan before parsing would */
    json_t *v = mcp_json_parse(data, len, max_depth);
    if (v == NULL) {
        *why = jsonrpc__depth_ok(data, len, max_depth) ? "invalid JSON" : "nesting too deep";
    }
    return v;
}

bool mcp_rpc_id_valid(const json_t *id)
{
    return id != NULL && (json_is_string(id) || json_is_integer(id));
}

bool mcp_rpc_id_equal(const json_t *a, const json_t *b)
{
    if (a == NULL || b == NULL) {
        return false;
    }
    if (json_is_integer(a) && json_is_integer(b)) {
        return json_integer_value(a) == json_integer_value(b);
    }
    if (json_is_string(a) && json_is_string(b)) {
        return json_string_length(a) == json_string_length(b) &&
               memcmp(json_string_value(a), json_string_value(b), json_string_length(a)) == 0;
    }
    return false;
}

int mcp_rpc_classify(json_t *v, mcp_msg *m, const char **why, json_t **bad_id)
{
    memset(m, 0, sizeof *m);
    *bad_id = NULL;
    if (!json_is_object(v)) {
        *why = "message is not an object";
        return -32600;
    }
    json_t *id = json_object_get(v, "id");
    if (mcp_rpc_id_valid(id)) {
        *bad_id = id;
    }
    json_t *ver = json_object_get(v, "jsonrpc");
    if (!json_is_string(ver) || strcmp(json_string_value(ver), "2.0") != 0) {
        *why = "jsonrpc must be \"2.0\"";
        return -32600;
    }
    json_t *method = json_object_get(v, "method");
    if (method != NULL) {
        if (!json_is_string(method) || json_string_length(method) == 0 ||
            strlen(json_string_value(method)) != json_string_length(method)) {
            *why = "method must be a non-empty string";
            return -32600;
        }
        json_t *params = json_object_get(v, "params");
        if (params != NULL && !json_is_object(params) && !json_is_array(params)) {
            *why = "params must be an object or array";
            return -32600;
        }
        if (json_object_get(v, "result") != NULL || json_object_get(v, "error") != NULL) {
            *why = "a request carries no result or error";
            return -32600;
        }
        if (id != NULL && !mcp_rpc_id_valid(id)) {
            *why = "id must be a string or an integer";
            return -32600;
        }
        m->kind = id != NULL ? MCP_MSG_REQUEST : MCP_MSG_NOTIFICATION;
        m->id = id;
        m->method = json_string_value(method);
        m->params = params;
        return 0;
    }
    json_t *result = json_object_get(v, "result");
    json_t *error = json_object_get(v, "error");
    if ((result == NULL) == (error == NULL)) {
        *why = "neither a request nor a response";
        return -32600;
    }
    if (error != NULL) {
        if (!json_is_object(error) || !json_is_integer(json_object_get(error, "code")) ||
            !json_is_string(json_object_get(error, "message"))) {
            *why = "error must have an integer code and a string message";
            return -32600;
        }
        if (id != NULL && !json_is_null(id) && !mcp_rpc_id_valid(id)) {
            *why = "id must be a string or an integer";
            return -32600;
        }
    } else if (!mcp_rpc_id_valid(id)) {
        *why = "a result needs a string or integer id";
        return -32600;
    }
    m->kind = MCP_MSG_RESPONSE;
    m->id = id;
    m->result = result;
    m->error = error;
    return 0;
}

static json_t *jsonrpc__envelope(const json_t *id)
{
    json_t *o = json_object();
    if (o == NULL) {
        return NULL;
    }
    json_t *idv = id != NULL ? json_deep_copy(id) : json_null();
    if (idv == NULL || json_object_set_new(o, "jsonrpc", json_string("2.0")) != 0 ||
        json_object_set_new(o, "id", idv) != 0) {
        json_decref(o);
        return NULL;
    }
    return o;
}

json_t *mcp_rpc_result(const json_t *id, json_t *result)
{
    json_t *o = result != NULL ? jsonrpc__envelope(id) : NULL;
    if (o == NULL || json_object_set_new(o, "result", result) != 0) {
        if (o == NULL) {
            json_decref(result);
        }
        json_decref(o);
        return NULL;
    }
    return o;
}

json_t *mcp_rpc_error(const json_t *id, int code, const char *message, json_t *data)
{
    json_t *e = json_pack("{s:i,s:s}", "code", code, "message", message);
    if (e != NULL && data != NULL && json_object_set(e, "data", data) != 0) {
        json_decref(e);
        e = NULL;
    }
    json_decref(data);
    if (e == NULL) {
        return NULL;
    }
    json_t *o = jsonrpc__envelope(id);
    if (o == NULL) {
        json_decref(e);
        return NULL;
    }
    if (json_object_set_new(o, "error", e) != 0) {
        json_decref(o);
        return NULL;
    }
    return o;
}

json_t *mcp_rpc_notification(const char *method, json_t *params)
{
    json_t *o = json_object();
    if (o == NULL || json_object_set_new(o, "jsonrpc", json_string("2.0")) != 0 ||
        json_object_set_new(o, "method", json_string(method)) != 0 ||
        (params != NULL && json_object_set(o, "params", params) != 0)) {
        json_decref(o);
        json_decref(params);
        return NULL;
    }
    json_decref(params);
    return o;
}

char *mcp_rpc_dump(const json_t *msg, size_t *len)
{
    mcp_buf b = {0};
    if (mcp_json_write(&b, msg) != 0 || mcp_buf_reserve(&b, 1) != 0) {
        mcp_buf_free(&b);
        return NULL;
    }
    b.p[b.len] = '\0';
    if (len != NULL) {
        *len = b.len;
    }
    return b.p;
}
