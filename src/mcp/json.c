/* src/mcp/json.c — JSON text to and from jansson values (see json.h). */
#include "json.h"

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "base/jsontext.h"

/* ---- buffer ----------------------------------------------------------------------------- */

int mcp_buf_reserve(mcp_buf *b, size_t more)
{
    if (more <= b->cap - b->len) {
        return 0;
    }
    if (more > SIZE_MAX / 2 - b->len) {
        return -1;
    }
    size_t cap = b->cap ? b->cap : 256;
    while (cap - b->len < more) {
        cap *= 2;
    }
    char *p = realloc(b->p, cap);
    if (p == NULL) {
        return -1;
    }
    b->p = p;
    b->cap = cap;
    return 0;
}

void mcp_buf_free(mcp_buf *b)
{
    free(b->p);
    b->p = NULL;
    b->len = b->cap = 0;
}

/* ---- parser ----------------------------------------------------------------------------- */

typedef struct jp {
    const unsigned char *p, *end;
    int depth, max_depth;
} jp;

static json_t *jp__value(jp *s);

static void jp__ws(jp *s)
{
    while (s->p < s->end && (*s->p == ' ' || *s->p == '\t' || *s->p == '\n' || *s->p == '\r')) {
        s->p++;
    }
}

static size_t jp__utf8_put(char *o, uint32_t cp)
{
    if (cp < 0x80) {
        o[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        o[0] = (char)(0xC0 | (cp >> 6));
        o[1] = (char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        o[0] = (char)(0xE0 | (cp >> 12));
        o[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        o[2] = (char)(0x80 | (cp & 0x3F));
        return 3;
    }
    o[0] = (char)(0xF0 | (cp >> 18));
    o[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
    o[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
    o[3] = (char)(0x80 | (cp & 0x3F));
    return 4;
}

/* Decodes the escaped string body [p, end) (validated by jp__string) into out, which has
 * room for end - p bytes (escapes never grow). Returns the length, or -1 on an invalid
 * escape, a lone surrogate or U+0000. */
static long jp__unescape(const unsigned char *p, const unsigned char *end, char *out)
{
    char *o = out;
    while (p < end) {
        if (*p != '\\') {
            *o++ = (char)*p++;
            continue;
        }
        unsigned char e = p[1];
        p += 2;
        switch (e) {
        case '"': *o++ = '"'; break;
        case '\\': *o++ = '\\'; break;
        case '/': *o++ = '/'; break;
        case 'b': *o++ = '\b'; break;
        case 'f': *o++ = '\f'; break;
        case 'n': *o++ = '\n'; break;
        case 'r': *o++ = '\r'; break;
        case 't': *o++ = '\t'; break;
        case 'u': {
            uint32_t cp, lo;
            if (!jsontext_hex4(p, end, &cp)) {
                return -1;
            }
            p += 4;
            if (cp >= 0xD800 && cp <= 0xDBFF) {
                if (end - p < 6 || p[0] != '\\' || p[1] != 'u' || !jsontext_hex4(p + 2, end, &lo) ||
                    lo < 0xDC00 || lo > 0xDFFF) {
                    return -1;
                }
                p += 6;
                cp = ((cp - 0xD800) << 10) + (lo - 0xDC00) + 0x10000;
            } else if ((cp >= 0xDC00 && cp <= 0xDFFF) || cp == 0) {
                return -1;
            }
            o += jp__utf8_put(o, cp);
            break;
        }
        default: return -1;
        }
    }
    return (long)(o - out);
}

/*
 * A string at s->p (the opening quote). On success *str and *len is the decoded text: a pointer
 * into the input when it has no escapes (*owned NULL), else a malloc'd buffer (*owned, to
 * free). Returns 0 or -1.
 */
static int jp__string(jp *s, const char **str, size_t *len, char **owned)
{
    const unsigned char *p = s->p + 1, *start = p, *end = s->end;
    bool esc = false;
    *owned = NULL;
    for (;;) {
        while (p < end && *p >= 0x20 && *p < 0x80 && *p != '"' && *p != '\\') {
            p++;
        }
        if (p == end || *p < 0x20) {
            return -1;
        }
        if (*p == '"') {
            break;
        }
        if (*p == '\\') {
            if (end - p < 2) {
                return -1;
            }
            if (p[1] == 'u') {
                if (end - p < 6) {
                    return -1;
                }
                p += 6;
            } else {
                p += 2;
            }
            esc = true;
            continue;
        }
        size_t n = jsontext_utf8_len(p, end);
        if (n == 0) {
            return -1;
        }
        p += n;
    }
    s->p = p + 1;
    if (!esc) {
        *str = (const char *)start;
        *len = (size_t)(p - start);
        return 0;
    }
    char *buf = malloc((size_t)(p - start) + 1);
    if (buf == NULL) {
        return -1;
    }
    long n = jp__unescape(start, p, buf);
    if (n < 0) {
        free(buf);
        return -1;
    }
    *owned = buf;
    *str = buf;
    *len = (size_t)n;
    return 0;
}

static json_t *jp__number(jp *s)
{
    jsontext_number num;
    size_t n = jsontext_number_read(s->p, s->end, &num);
    if (n == 0) {
        return NULL;
    }
    s->p += n;
    return num.real ? json_real(num.d) : json_integer(num.i);
}

static json_t *jp__literal(jp *s, const char *word, size_t n, json_t *v)
{
    if ((size_t)(s->end - s->p) < n || memcmp(s->p, word, n) != 0) {
        return NULL;
    }
    s->p += n;
    return v;
}

static json_t *jp__object(jp *s)
{
    s->p++;
    json_t *o = json_object();
    if (o == NULL) {
        return NULL;
    }
    jp__ws(s);
    if (s->p < s->end && *s->p == '}') {
        s->p++;
        return o;
    }
    for (;;) {
        jp__ws(s);
        const char *key;
        size_t klen;
        char *owned;
        if (s->p == s->end || *s->p != '"' || jp__string(s, &key, &klen, &owned) != 0) {
            break;
        }
        jp__ws(s);
        json_t *v = NULL;
        if (s->p < s->end && *s->p == ':') {
            s->p++;
            v = jp__value(s);
        }
        int rc = v == NULL || json_object_getn(o, key, klen) != NULL
                     ? -1
                     : json_object_setn_new_nocheck(o, key, klen, v);
        if (rc != 0) {
            json_decref(v);
        }
        free(owned);
        if (rc != 0) {
            break;
        }
        jp__ws(s);
        if (s->p < s->end && *s->p == ',') {
            s->p++;
            continue;
        }
        if (s->p < s->end && *s->p == '}') {
            s->p++;
            return o;
        }
        break;
    }
    json_decref(o);
    return NULL;
}

static json_t *jp__array(jp *s)
{
    s->p++;
    json_t *a = json_array();
    if (a == NULL) {
        return NULL;
    }
    jp__ws(s);
    if (s->p < s->end && *s->p == ']') {
        s->p++;
        return a;
    }
    for (;;) {
        json_t *v = jp__value(s);
        if (v == NULL || json_array_append_new(a, v) != 0) {
            break;
        }
        jp__ws(s);
        if (s->p < s->end && *s->p == ',') {
            s->p++;
            continue;
        }
        if (s->p < s->end && *s->p == ']') {
            s->p++;
            return a;
        }
        break;
    }
    json_decref(a);
    return NULL;
}

static json_t *jp__value(jp *s)
{
    jp__ws(s);
    if (s->p == s->end) {
        return NULL;
    }
    switch (*s->p) {
    case '{':
    case '[': {
        if (s->depth >= s->max_depth) {
            return NULL;
        }
        s->depth++;
        json_t *v = *s->p == '{' ? jp__object(s) : jp__array(s);
        s->depth--;
        return v;
    }
    case '"': {
        const char *str;
        size_t len;
        char *owned;
        if (jp__string(s, &str, &len, &owned) != 0) {
            return NULL;
        }
        json_t *v = json_stringn_nocheck(str, len);
        free(owned);
        return v;
    }
    case 't': return jp__literal(s, "true", 4, json_true());
    case 'f': return jp__literal(s, "false", 5, json_false());
    case 'n': return jp__literal(s, "null", 4, json_null());
    default: return jp__number(s);
    }
}

json_t *mcp_json_parse(const char *text, size_t len, int max_depth)
{
    jp s = {(const unsigned char *)text, (const unsigned char *)text + len, 0,
            max_depth < MCP_JSON_MAX_DEPTH ? max_depth : MCP_JSON_MAX_DEPTH};
    json_t *v = jp__value(&s);
    if (v != NULL) {
        jp__ws(&s);
        if (s.p != s.end) {
            json_decref(v);
            v = NULL;
        }
    }
    return v;
}

/* ---- writer ----------------------------------------------------------------------------- */

int mcp_buf_put(mcp_buf *b, const void *p, size_t n)
{
    if (mcp_buf_reserve(b, n) != 0) {
        return -1;
    }
    memcpy(b->p + b->len, p, n);
    b->len += n;
    return 0;
}

static int jw__put(mcp_buf *b, const char *p, size_t n)
{
    return mcp_buf_put(b, p, n);
}

static int jw__string(mcp_buf *b, const char *str, size_t len)
{
    static const char hex[] = "0123456789ABCDEF";
    const unsigned char *p = (const unsigned char *)str, *end = p + len, *run = p;
    if (mcp_buf_reserve(b, len + 2) != 0) {
        return -1;
    }
    b->p[b->len++] = '"';
    while (p < end) {
        unsigned c = *p;
        if (c >= 0x20 && c < 0x80 && c != '"' && c != '\\') {
            p++;
            continue;
        }
        if (c >= 0x80) {
            size_t n = jsontext_utf8_len(p, end);
            if (n == 0) {
                return -1;
            }
            p += n;
            continue;
        }
        char e[6] = {'\\', 0, '0', '0', 0, 0};
        size_t en = 2;
        switch (c) {
        case '"': e[1] = '"'; break;
        case '\\': e[1] = '\\'; break;
        case '\b': e[1] = 'b'; break;
        case '\f': e[1] = 'f'; break;
        case '\n': e[1] = 'n'; break;
        case '\r': e[1] = 'r'; break;
        case '\t': e[1] = 't'; break;
        default:
            e[1] = 'u';
            e[4] = hex[c >> 4];
            e[5] = hex[c & 15];
            en = 6;
        }
        if (jw__put(b, (const char *)run, (size_t)(p - run)) != 0 || jw__put(b, e, en) != 0) {
            return -1;
        }
        p++;
        run = p;
    }
    if (jw__put(b, (const char *)run, (size_t)(p - run)) != 0 || jw__put(b, "\"", 1) != 0) {
        return -1;
    }
    return 0;
}

static int jw__integer(mcp_buf *b, json_int_t v)
{
    char t[24];
    char *e = t + sizeof t, *q = e;
    uint64_t u = v < 0 ? (uint64_t)0 - (uint64_t)v : (uint64_t)v;
    do {
        *--q = (char)('0' + u % 10);
        u /= 10;
    } while (u != 0);
    if (v < 0) {
        *--q = '-';
    }
    return jw__put(b, q, (size_t)(e - q));
}

static int jw__value(mcp_buf *b, const json_t *v, int depth)
{
    switch (json_typeof(v)) {
    case JSON_NULL: return jw__put(b, "null", 4);
    case JSON_TRUE: return jw__put(b, "true", 4);
    case JSON_FALSE: return jw__put(b, "false", 5);
    case JSON_INTEGER: return jw__integer(b, json_integer_value(v));
    case JSON_STRING: return jw__string(b, json_string_value(v), json_string_length(v));
    case JSON_REAL: {
        char t[64]; /* jansson's own formatting (%.17g, ".0" added), kept byte for byte */
        size_t n = json_dumpb(v, t, sizeof t, JSON_COMPACT | JSON_ENCODE_ANY);
        return n == 0 || n > sizeof t ? -1 : jw__put(b, t, n);
    }
    case JSON_ARRAY: {
        if (depth >= MCP_JSON_MAX_DEPTH || jw__put(b, "[", 1) != 0) {
            return -1;
        }
        size_t n = json_array_size(v);
        for (size_t i = 0; i < n; i++) {
            if ((i > 0 && jw__put(b, ",", 1) != 0) ||
                jw__value(b, json_array_get(v, i), depth + 1) != 0) {
                return -1;
            }
        }
        return jw__put(b, "]", 1);
    }
    case JSON_OBJECT: {
        if (depth >= MCP_JSON_MAX_DEPTH || jw__put(b, "{", 1) != 0) {
            return -1;
        }
        bool first = true;
        for (void *it = json_object_iter((json_t *)v); it != NULL;
             it = json_object_iter_next((json_t *)v, it)) {
            if ((!first && jw__put(b, ",", 1) != 0) ||
                jw__string(b, json_object_iter_key(it), json_object_iter_key_len(it)) != 0 ||
                jw__put(b, ":", 1) != 0 ||
                jw__value(b, json_object_iter_value(it), depth + 1) != 0) {
                return -1;
            }
            first = false;
        }
        return jw__put(b, "}", 1);
    }
    }
    return -1;
}

int mcp_json_write(mcp_buf *b, const json_t *v)
{
    size_t len = b->len;
    if (v == NULL || jw__value(b, v, 0) != 0) {
        b->len = len;
        return -1;
    }
    return 0;
}

int mcp_json_write_string(mcp_buf *b, const char *s, size_t len)
{
    size_t at = b->len;
    if (jw__string(b, s, len) != 0) {
        b->len = at;
        return -1;
    }
    return 0;
}
