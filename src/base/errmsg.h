/*
 * src/base/errmsg.h — the one way functions of every layer fill a caller's error buffer.
 *
 * Functions that take `char *err, size_t errsize` write a one-line message there on failure
 * (err may be NULL, errsize may be 0) and return a negative code.
 */
#ifndef MACULA_BASE_ERRMSG_H
#define MACULA_BASE_ERRMSG_H

#include <stddef.h>

/* Formats the message into err (truncated to errsize, always NUL-terminated when errsize > 0)
 * and returns code, so a failure path reads `return errmsg_fail(err, n, X_EIO, "...", ...);`. */
int errmsg_fail(char *err, size_t errsize, int code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

#endif
