/*
 * src/base/bytebuf.h — room in a growing byte buffer, for message builders that reuse one
 * buffer (the gateway's and the pubsub worker's batches, the QUIC server's receive batch).
 */
#ifndef MACULA_BASE_BYTEBUF_H
#define MACULA_BASE_BYTEBUF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Makes *buf (capacity *cap) hold at least `need` bytes: the capacity doubles from `first`
 * (or from the current one) until it does; the bytes already there are kept. False when the
 * allocation failed or `need` cannot be reached; the buffer is then unchanged. The owner
 * frees *buf. */
bool bytebuf_reserve(uint8_t **buf, size_t *cap, size_t need, size_t first);

#endif
