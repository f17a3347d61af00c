/* src/base/jsontext.c — one JSON text, checked in one pass (jsontext.h). */
#include "base/jsontext.h"

#include <errno.h>
#include <locale.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

size_t jsontext_utf8_len(const unsigned char *p, const unsigned char *end)
{
    unsigned c = p[0];
    size_t n;
    uint32_t v;
    if (c >= 0xC2 && c <= 0xDF) {
        n = 2;
        v = c & 0x1Fu;
    } else if (c >= 0xE0 && c <= 0xEF) {
        n = 3;
        v = c & 0x0Fu;
    } else if (c >= 0xF0 && c <= 0xF4) {
        n = 4;
        v = c & 0x07u;
    } else {
        return 0;
    }
    if ((size_t)(end - p) < n) {
        return 0;
    }
    for (size_t i = 1; i < n; i++) {
        if ((p[i] & 0xC0u) != 0x80u) {
            return 0;
        }
        v = (v << 6) | (p[i] & 0x3Fu);
    }
    if ((n == 3 && (v < 0x800 || (v >= 0xD800 && v <= 0xDFFF))) ||
        (n == 4 && (v < 0x10000 || v > 0x10FFFF))) {
        return 0;
    }
    return n;
}

typedef struct jt {
    const unsigned char *p, *end;
} jt;

static void jt__ws(jt *s)
{
    while (s->p < s->end && (*s->p == ' ' || *s->p == '\t' || *s->p == '\n' || *s->p == '\r')) {
        s->p++;
    }
}

bool jsontext_hex4(const unsigned char *p, const unsigned char *end, uint32_t *v)
{
    if (end - p < 4) {
        return false;
    }
    uint32_t x = 0;
    for (int i = 0; i < 4; i++) {
        unsigned c = p[i];
        x <<= 4;
        if (c >= '0' && c <= '9') {
            x |= c - '0';
        } else if (c >= 'a' && c <= 'f') {
            x |= c - 'a' + 10;
        } else if (c >= 'A' && c <= 'F') {
            x |= c - 'A' + 10;
        } else {
            return false;
        }
    }
    *v = x;
    return true;
}

/* Four hex digits at s->p (advanced past them) into *v. */
static bool jt__hex4(jt *s, uint32_t *v)
{
    if (!jsontext_hex4(s->p, s->end, v)) {
        return false;
    }
    s->p += 4;
    return true;
}

/* A string whose opening quote is at s->p. */
static bool jt__string(jt *s)
{
    s->p++;
    while (s->p < s->end) {
        unsigned c = *s->p;
        if (c == '"') {
            s->p++;
            return true;
        }
        if (c < 0x20) {
            return false; /* control characters must be escaped */
        }
        if (c >= 0x80) {
            size_t n = jsontext_utf8_len(s->p, s->end);
            if (n == 0) {
                return false;
            }
            s->p += n;
            continue;
        }
        s->p++;
        if (c != '\\') {
            continue;
        }
        if (s->p == s->end) {
            return false;
        }
        c = *s->p++;
        if (strchr("\"\\/bfnrt", (int)c) != NULL && c != '\0') {
            continue;
        }
        uint32_t v;
        if (c != 'u' || !jt__hex4(s, &v) || v == 0 || (v >= 0xDC00 && v <= 0xDFFF)) {
            return false; /* unknown escape, \u0000, or a low surrogate alone */
        }
        if (v >= 0xD800 && v <= 0xDBFF) {
            uint32_t lo;
            if (s->end - s->p < 2 || s->p[0] != '\\' || s->p[1] != 'u') {
                return false; /* a high surrogate alone */
            }
            s->p += 2;
            if (!jt__hex4(s, &lo) || lo < 0xDC00 || lo > 0xDFFF) {
                return false;
            }
        }
    }
    return false; /* no closing quote */
}

/* One or more digits from p on; returns the first byte past them, NULL when there is none. */
static const unsigned char *jt__digits(const unsigned char *p, const unsigned char *end)
{
    if (p == end || *p < '0' || *p > '9') {
        return NULL;
    }
    while (p < end && *p >= '0' && *p <= '9') {
        p++;
    }
    return p;
}

size_t jsontext_number_read(const unsigned char *p, const unsigned char *end, jsontext_number *out)
{
    const unsigned char *start = p;
    bool neg = p < end && *p == '-';
    if (neg) {
        p++;
    }
    const unsigned char *q = jt__digits(p, end);
    if (q == NULL || (*p == '0' && q - p > 1)) {
        return 0; /* no digit, or a leading zero */
    }
    const unsigned char *int_end = p = q;
    out->real = false;
    if (p < end && *p == '.') {
        if ((p = jt__digits(p + 1, end)) == NULL) {
            return 0;
        }
        out->real = true;
    }
    if (p < end && (*p == 'e' || *p == 'E')) {
        p++;
        if (p < end && (*p == '+' || *p == '-')) {
            p++;
        }
        if ((p = jt__digits(p, end)) == NULL) {
            return 0;
        }
        out->real = true;
    }
    size_t n = (size_t)(p - start);
    if (!out->real) {
        uint64_t v = 0;
        for (const unsigned char *d = start + neg; d < int_end; d++) {
            unsigned dv = *d - '0';
            if (v > (UINT64_MAX - dv) / 10) {
                return 0;
            }
            v = v * 10 + dv;
        }
        if (v > (uint64_t)INT64_MAX + (neg ? 1u : 0u)) {
            return 0;
        }
        out->i = !neg ? (int64_t)v : v == (uint64_t)INT64_MAX + 1 ? INT64_MIN : -(int64_t)v;
        return n;
    }
    char small[64];
    char *t = n < sizeof small ? small : malloc(n + 1);
    if (t == NULL) {
        return 0;
    }
    memcpy(t, start, n);
    t[n] = '\0';
    const char *dp = localeconv()->decimal_point; /* strtod reads the locale's point */
    if (dp != NULL && dp[0] != '.' && dp[0] != '\0' && dp[1] == '\0') {
        char *dot = memchr(t, '.', n);
        if (dot != NULL) {
            *dot = dp[0];
        }
    }
    errno = 0;
    out->d = strtod(t, NULL);
    bool overflow = (out->d == HUGE_VAL || out->d == -HUGE_VAL) && errno == ERANGE;
    if (t != small) {
        free(t);
    }
    return overflow ? 0 : n;
}

static bool jt__literal(jt *s, const char *word, size_t n)
{
    if ((size_t)(s->end - s->p) < n || memcmp(s->p, word, n) != 0) {
        return false;
    }
    s->p += n;
    return true;
}

/* Any value but an object or array (those are opened by the caller). */
static bool jt__scalar(jt *s)
{
    switch (*s->p) {
    case '"': return jt__string(s);
    case 't': return jt__literal(s, "true", 4);
    case 'f': return jt__literal(s, "false", 5);
    case 'n': return jt__literal(s, "null", 4);
    default: {
        jsontext_number num;
        size_t n = jsontext_number_read(s->p, s->end, &num);
        s->p += n;
        return n > 0;
    }
    }
}

bool jsontext_valid(const char *text, size_t len, int max_depth)
{
    if (text == NULL) {
        return false;
    }
    if (max_depth < 1 || max_depth > JSONTEXT_MAX_DEPTH) {
        max_depth = JSONTEXT_MAX_DEPTH;
    }
    /* the open containers, innermost last: 1 for an object, 0 for an array */
    uint8_t open[JSONTEXT_MAX_DEPTH / 8] = {0};
    int depth = 0;
    jt s = {(const unsigned char *)text, (const unsigned char *)text + len};
    for (;;) {
        /* a value */
        jt__ws(&s);
        if (s.p == s.end) {
            return false;
        }
        bool closed_at_once = false;
        if (*s.p == '{' || *s.p == '[') {
            if (depth == max_depth) {
                return false;
            }
            bool obj = *s.p == '{';
            uint8_t bit = (uint8_t)(1u << (depth % 8));
            open[depth / 8] = (uint8_t)(obj ? open[depth / 8] | bit : open[depth / 8] & ~bit);
            depth++;
            s.p++;
            jt__ws(&s);
            if (s.p < s.end && *s.p == (obj ? '}' : ']')) {
                s.p++;
                depth--;
                closed_at_once = true;
            } else if (!obj) {
                continue; /* the first element */
            } else if (s.p == s.end || *s.p != '"' || !jt__string(&s)) {
                return false; /* the first key */
            } else {
                jt__ws(&s);
                if (s.p == s.end || *s.p != ':') {
                    return false;
                }
                s.p++;
                continue; /* its value */
            }
        }
        /* jansson counts a scalar as one more level of nesting, an empty container not */
        if (!closed_at_once && (depth == max_depth || !jt__scalar(&s))) {
            return false;
        }
        /* after a value: a separator, or the end of its containers */
        for (;;) {
            jt__ws(&s);
            if (depth == 0) {
                return s.p == s.end;
            }
            if (s.p == s.end) {
                return false;
            }
            bool obj = (open[(depth - 1) / 8] >> ((depth - 1) % 8)) & 1u;
            if (*s.p == (obj ? '}' : ']')) {
                s.p++;
                depth--;
                continue;
            }
            if (*s.p != ',') {
                return false;
            }
            s.p++;
            if (obj) {
                jt__ws(&s);
                if (s.p == s.end || *s.p != '"' || !jt__string(&s)) {
                    return false;
                }
                jt__ws(&s);
                if (s.p == s.end || *s.p != ':') {
                    return false;
                }
                s.p++;
            }
            break; /* the next value */
        }
    }
}
