/*
 * src/base/textbuf.h — a growing text buffer for responses (HTTP bodies, Prometheus pages).
 */
#ifndef MACULA_BASE_TEXTBUF_H
#define MACULA_BASE_TEXTBUF_H

#include <stddef.h>

typedef struct textbuf {
    char *p;    /* NUL-terminated text, NULL until something was written */
    size_t len; /* bytes of text */
    size_t cap; /* allocated bytes */
} textbuf;

/* Appends formatted text, growing the buffer. Out of memory leaves the text as it was (the
 * page then lacks that line rather than the process failing); the owner frees p. */
void textbuf_printf(textbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#endif
