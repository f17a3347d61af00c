/*
 * src/base/jsontext.h — checks that bytes are one JSON text, without building any value.
 *
 * jsontext_valid accepts exactly what jansson's json_loadb(text, len, JSON_DECODE_ANY, ...)
 * accepts (RFC 8259: any value at the top; strict UTF-8; no \u0000; surrogate escapes paired;
 * integers within int64; reals that do not overflow a double; nesting at most max_depth; only
 * whitespace after the value), so a caller can refuse what a jansson-based peer would refuse,
 * at a fraction of the cost: no allocation except for a real number longer than 63 bytes, one
 * pass, no recursion. tests/unit/test_jsontext.c holds it to jansson on a corpus and on
 * random texts.
 */
#ifndef MACULA_BASE_JSONTEXT_H
#define MACULA_BASE_JSONTEXT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* jansson's own nesting limit (JSON_PARSER_MAX_DEPTH). */
#define JSONTEXT_MAX_DEPTH 2048

/* True when text[0..len) is one JSON value nested at most max_depth deep (clamped to
 * 1..JSONTEXT_MAX_DEPTH). False for anything else, and when a long real number finds no
 * memory. */
bool jsontext_valid(const char *text, size_t len, int max_depth);

/* The length of the valid UTF-8 sequence at p (whose first byte is >= 0x80), or 0 when it is
 * not one: no overlong forms, no surrogates, nothing past U+10FFFF, nothing cut by end. */
size_t jsontext_utf8_len(const unsigned char *p, const unsigned char *end);

/* The four hex digits of a \u escape at p (before end) into *v; false when there are not four. */
bool jsontext_hex4(const unsigned char *p, const unsigned char *end, uint32_t *v);

/* A JSON number's value: an integer (no fraction, no exponent) or a real. */
typedef struct jsontext_number {
    bool real;
    int64_t i; /* when !real */
    double d;  /* when real (strtod's reading, in any locale) */
} jsontext_number;

/* Reads the JSON number at p (before end) into *out and returns the bytes it takes; 0 when
 * there is none, when an integer is outside int64 or a real overflows a double (jansson's
 * rules), or when a real longer than 63 bytes finds no memory. */
size_t jsontext_number_read(const unsigned char *p, const unsigned char *end, jsontext_number *out);

#endif
