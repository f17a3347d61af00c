/* src/mcp/schema.c — the JSON Schema subset of schema.h. */
#include "schema.h"

#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "macula/mcp.h"

static const char *const schema__types[] = {"object",  "array",   "string", "number",
                                            "integer", "boolean", "null",   NULL};

static bool schema__type_name_ok(const json_t *t)
{
    if (!json_is_string(t)) {
        return false;
    }
    for (int i = 0; schema__types[i] != NULL; i++) {
        if (strcmp(json_string_value(t), schema__types[i]) == 0) {
            return true;
        }
    }
    return false;
}

static bool schema__is_count(const json_t *v)
{
    return json_is_integer(v) && json_integer_value(v) >= 0;
}

/* "#/$defs/NAME" naming a definition of the root schema: the definition, else NULL. */
static const json_t *schema__ref(const json_t *root, const json_t *ref)
{
    const char *r = json_string_value(ref);
    if (r == NULL || strncmp(r, "#/$defs/", 8) != 0 || strpbrk(r + 8, "/~") != NULL) {
        return NULL;
    }
    return json_object_get(json_object_get(root, "$defs"), r + 8);
}

static int schema__check(const json_t *root, const json_t *s, int depth, const char **why)
{
    if (depth > MCP_SCHEMA_MAX_DEPTH) {
        *why = "schema nested too deeply";
        return MCP_ESCHEMA;
    }
    if (json_is_boolean(s)) {
        return 0;
    }
    if (!json_is_object(s)) {
        *why = "a schema must be an object or a boolean";
        return MCP_ESCHEMA;
    }
    const char *key;
    json_t *v;
    json_object_foreach((json_t *)s, key, v)
    {
        if (strcmp(key, "type") == 0) {
            if (json_is_array(v)) {
                size_t i;
                json_t *t;
                if (json_array_size(v) == 0) {
                    *why = "type: empty array";
                    return MCP_ESCHEMA;
                }
                json_array_foreach(v, i, t)
                {
                    if (!schema__type_name_ok(t)) {
                        *why = "type: unknown type name";
                        return MCP_ESCHEMA;
                    }
                }
            } else if (!schema__type_name_ok(v)) {
                *why = "type: unknown type name";
                return MCP_ESCHEMA;
            }
        } else if (strcmp(key, "properties") == 0) {
            if (!json_is_object(v)) {
                *why = "properties must be an object";
                return MCP_ESCHEMA;
            }
            const char *pk;
            json_t *ps;
            json_object_foreach(v, pk, ps)
            {
                int rc = schema__check(root, ps, depth + 1, why);
                if (rc != 0) {
                    return rc;
                }
            }
        } else if (strcmp(key, "required") == 0) {
            size_t i;
            json_t *r;
            if (!json_is_array(v)) {
                *why = "required must be an array of strings";
                return MCP_ESCHEMA;
            }
            json_array_foreach(v, i, r)
            {
                if (!json_is_string(r)) {
                    *why = "required must be an array of strings";
                    return MCP_ESCHEMA;
                }
            }
        } else if (strcmp(key, "additionalProperties") == 0 || strcmp(key, "items") == 0) {
            int rc = schema__check(root, v, depth + 1, why);
            if (rc != 0) {
                return rc;
            }
        } else if (strcmp(key, "$defs") == 0) {
            if (!json_is_object(v) || s != root) {
                *why = "$defs must be an object at the schema's root";
                return MCP_ESCHEMA;
            }
            const char *dk;
            json_t *ds;
            json_object_foreach(v, dk, ds)
            {
                int rc = schema__check(root, ds, depth + 1, why);
                if (rc != 0) {
                    return rc;
                }
            }
        } else if (strcmp(key, "$ref") == 0) {
            if (schema__ref(root, v) == NULL) {
                *why = "$ref must be \"#/$defs/NAME\" naming a definition of the root";
                return MCP_ESCHEMA;
            }
        } else if (strcmp(key, "enum") == 0) {
            if (!json_is_array(v) || json_array_size(v) == 0) {
                *why = "enum must be a non-empty array";
                return MCP_ESCHEMA;
            }
        } else if (strcmp(key, "minimum") == 0 || strcmp(key, "maximum") == 0 ||
                   strcmp(key, "exclusiveMinimum") == 0 || strcmp(key, "exclusiveMaximum") == 0) {
            if (!json_is_number(v)) {
                *why = "numeric bounds must be numbers";
                return MCP_ESCHEMA;
            }
        } else if (strcmp(key, "minLength") == 0 || strcmp(key, "maxLength") == 0 ||
                   strcmp(key, "minItems") == 0 || strcmp(key, "maxItems") == 0) {
            if (!schema__is_count(v)) {
                *why = "length bounds must be non-negative integers";
                return MCP_ESCHEMA;
            }
        } else if (strcmp(key, "const") == 0 || strcmp(key, "title") == 0 ||
                   strcmp(key, "description") == 0 || strcmp(key, "default") == 0 ||
                   strcmp(key, "examples") == 0 || strcmp(key, "$schema") == 0 ||
                   strcmp(key, "$comment") == 0 || strcmp(key, "format") == 0) {
            /* const is checked on use; the rest are annotations */
        } else {
            *why = "unsupported schema keyword";
            return MCP_ESCHEMA;
        }
    }
    return 0;
}

int mcp_schema_check(const json_t *schema, const char **why)
{
    return schema__check(schema, schema, 0, why);
}

typedef struct vctx {
    const json_t *root;
    int depth; /* schemas entered: bounds $ref chains (a definition may refer to itself) */
    char *err;
    size_t errlen;
    char path[256];
} vctx;

static int schema__fail(vctx *c, const char *fmt, const char *arg)
{
    char msg[160];
    snprintf(msg, sizeof msg, fmt, arg);
    snprintf(c->err, c->errlen, "%s: %s", c->path[0] ? c->path : "/", msg);
    return -1;
}

static bool schema__is_integral(const json_t *v)
{
    if (json_is_integer(v)) {
        return true;
    }
    if (json_is_real(v)) {
        double d = json_real_value(v);
        /* integral without libm: in int64 range and unchanged by truncation */
        return isfinite(d) && d > -9.2e18 && d < 9.2e18 && (double)(long long)d == d;
    }
    return false;
}

static bool schema__type_match(const char *t, const json_t *v)
{
    switch (t[0]) {
    case 'o': return json_is_object(v);
    case 'a': return json_is_array(v);
    case 's': return json_is_string(v);
    case 'n': return t[2] == 'm' ? json_is_number(v) : json_is_null(v);
    case 'i': return schema__is_integral(v);
    case 'b': return json_is_boolean(v);
    default: return false;
    }
}

static size_t schema__utf8_len(const char *s, size_t n)
{
    size_t cps = 0;
    for (size_t i = 0; i < n; i++) {
        if (((unsigned char)s[i] & 0xC0) != 0x80) {
            cps++;
        }
    }
    return cps;
}

/* Appends "/seg" to the path (escaped per RFC 6901); returns the old length to restore. */
static size_t schema__push(vctx *c, const char *seg)
{
    size_t old = strlen(c->path);
    size_t n = old;
    if (n + 1 < sizeof c->path) {
        c->path[n++] = '/';
    }
    for (const char *p = seg; *p && n + 2 < sizeof c->path; p++) {
        if (*p == '~' || *p == '/') {
            c->path[n++] = '~';
            c->path[n++] = *p == '~' ? '0' : '1';
        } else {
            c->path[n++] = *p;
        }
    }
    c->path[n] = '\0';
    return old;
}

static int schema__validate_in(vctx *c, const json_t *s, const json_t *v);

static int schema__validate(vctx *c, const json_t *s, const json_t *v)
{
    if (c->depth >= 4 * MCP_SCHEMA_MAX_DEPTH) {
        return schema__fail(c, "%s", "schema references nest too deeply");
    }
    c->depth++;
    int rc = schema__validate_in(c, s, v);
    c->depth--;
    return rc;
}

/* The keywords of one schema object, found in a single pass over its keys (a validated
 * schema holds no others); NULL when absent. */
typedef struct skw {
    const json_t *ref, *type, *en, *cn, *min, *max, *xmin, *xmax, *minlen, *maxlen, *minitems,
        *maxitems, *items, *required, *props, *addl;
} skw;

static void schema__keywords(const json_t *s, skw *k)
{
    memset(k, 0, sizeof *k);
    const char *key;
    json_t *v;
    json_object_foreach((json_t *)s, key, v)
    {
        const json_t **slot = NULL;
        switch (key[0]) {
        case '$': slot = strcmp(key, "$ref") == 0 ? &k->ref : NULL; break;
        case 't': slot = strcmp(key, "type") == 0 ? &k->type : NULL; break;
        case 'e':
            slot = strcmp(key, "enum") == 0               ? &k->en
                   : strcmp(key, "exclusiveMinimum") == 0 ? &k->xmin
                   : strcmp(key, "exclusiveMaximum") == 0 ? &k->xmax
                                                          : NULL;
            break;
        case 'c': slot = strcmp(key, "const") == 0 ? &k->cn : NULL; break;
        case 'm':
            slot = strcmp(key, "minimum") == 0     ? &k->min
                   : strcmp(key, "maximum") == 0   ? &k->max
                   : strcmp(key, "minLength") == 0 ? &k->minlen
                   : strcmp(key, "maxLength") == 0 ? &k->maxlen
                   : strcmp(key, "minItems") == 0  ? &k->minitems
                   : strcmp(key, "maxItems") == 0  ? &k->maxitems
                                                   : NULL;
            break;
        case 'i': slot = strcmp(key, "items") == 0 ? &k->items : NULL; break;
        case 'r': slot = strcmp(key, "required") == 0 ? &k->required : NULL; break;
        case 'p': slot = strcmp(key, "properties") == 0 ? &k->props : NULL; break;
        case 'a': slot = strcmp(key, "additionalProperties") == 0 ? &k->addl : NULL; break;
        default: break;
        }
        if (slot != NULL) {
            *slot = v;
        }
    }
}

static int schema__validate_in(vctx *c, const json_t *s, const json_t *v)
{
    if (json_is_boolean(s)) {
        return json_is_true(s) ? 0 : schema__fail(c, "%s", "no value is allowed here");
    }
    skw k;
    schema__keywords(s, &k);
    if (k.ref != NULL) {
        const json_t *target = schema__ref(c->root, k.ref);
        int rc = target != NULL ? schema__validate(c, target, v)
                                : schema__fail(c, "%s", "unresolved $ref");
        if (rc != 0) {
            return rc;
        }
    }
    const json_t *type = k.type;
    if (json_is_string(type)) {
        if (!schema__type_match(json_string_value(type), v)) {
            return schema__fail(c, "expected %s", json_string_value(type));
        }
    } else if (json_is_array(type)) {
        size_t i;
        json_t *t;
        bool any = false;
        json_array_foreach(type, i, t)
        {
            any = any || schema__type_match(json_string_value(t), v);
        }
        if (!any) {
            return schema__fail(c, "%s", "value has none of the allowed types");
        }
    }
    if (k.en != NULL) {
        size_t i;
        json_t *e;
        bool hit = false;
        json_array_foreach(k.en, i, e)
        {
            hit = hit || json_equal(e, (json_t *)v);
        }
        if (!hit) {
            return schema__fail(c, "%s", "value is not one of the enum values");
        }
    }
    if (k.cn != NULL && !json_equal(k.cn, (json_t *)v)) {
        return schema__fail(c, "%s", "value differs from const");
    }
    if (json_is_number(v)) {
        double d = json_number_value(v);
        const json_t *b;
        if ((b = k.min) != NULL && d < json_number_value(b)) {
            return schema__fail(c, "%s", "below minimum");
        }
        if ((b = k.max) != NULL && d > json_number_value(b)) {
            return schema__fail(c, "%s", "above maximum");
        }
        if ((b = k.xmin) != NULL && d <= json_number_value(b)) {
            return schema__fail(c, "%s", "not above exclusiveMinimum");
        }
        if ((b = k.xmax) != NULL && d >= json_number_value(b)) {
            return schema__fail(c, "%s", "not below exclusiveMaximum");
        }
    }
    if (json_is_string(v)) {
        size_t n = schema__utf8_len(json_string_value(v), json_string_length(v));
        const json_t *b;
        if ((b = k.minlen) != NULL && n < (size_t)json_integer_value(b)) {
            return schema__fail(c, "%s", "string shorter than minLength");
        }
        if ((b = k.maxlen) != NULL && n > (size_t)json_integer_value(b)) {
            return schema__fail(c, "%s", "string longer than maxLength");
        }
    }
    if (json_is_array(v)) {
        size_t n = json_array_size(v);
        const json_t *b;
        if ((b = k.minitems) != NULL && n < (size_t)json_integer_value(b)) {
            return schema__fail(c, "%s", "fewer items than minItems");
        }
        if ((b = k.maxitems) != NULL && n > (size_t)json_integer_value(b)) {
            return schema__fail(c, "%s", "more items than maxItems");
        }
        const json_t *items = k.items;
        if (items != NULL) {
            size_t i;
            json_t *e;
            json_array_foreach(v, i, e)
            {
                char idx[24];
                snprintf(idx, sizeof idx, "%zu", i);
                size_t old = schema__push(c, idx);
                int rc = schema__validate(c, items, e);
                c->path[old] = '\0';
                if (rc != 0) {
                    return rc;
                }
            }
        }
    }
    if (json_is_object(v)) {
        const json_t *req = k.required;
        size_t i;
        json_t *r;
        json_array_foreach(req, i, r)
        {
            if (json_object_get(v, json_string_value(r)) == NULL) {
                return schema__fail(c, "missing required property '%s'", json_string_value(r));
            }
        }
        const json_t *props = k.props;
        const json_t *addl = k.addl;
        const char *key;
        json_t *pv;
        json_object_foreach((json_t *)v, key, pv)
        {
            const json_t *ps = json_object_get(props, key);
            if (ps == NULL) {
                ps = addl;
            }
            if (ps == NULL) {
                continue;
            }
            size_t old = schema__push(c, key);
            int rc;
            if (json_is_false(ps) && ps == addl) {
                rc = schema__fail(c, "%s", "property not allowed");
            } else {
                rc = schema__validate(c, ps, pv);
            }
            c->path[old] = '\0';
            if (rc != 0) {
                return rc;
            }
        }
    }
    return 0;
}

int mcp_schema_validate(const json_t *schema, const json_t *value, char *err, size_t errlen)
{
    vctx c = {.root = schema, .err = err, .errlen = errlen};
    c.path[0] = '\0';
    return schema__validate(&c, schema, value);
}
