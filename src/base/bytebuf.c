/* src/base/bytebuf.c — see bytebuf.h. */
#include "bytebuf.h"

#include <stdlib.h>

bool bytebuf_reserve(uint8_t **buf, size_t *cap, size_t need, size_t first)
{
    if (need <= *cap) {
        return true;
    }
    size_t nc = *cap > first ? *cap : (first > 0 ? first : 64);
    while (nc < need) {
        if (nc > SIZE_MAX / 2) {
            return false;
        }
        nc *= 2;
    }
    uint8_t *nb = realloc(*buf, nc);
    if (nb == NULL) {
        return false;
    }
    *buf = nb;
    *cap = nc;
    return true;
}
