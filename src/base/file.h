/*
 * src/base/file.h — reading a whole small file, bounded, for every layer (configuration,
 * keys, certificates).
 */
#ifndef MACULA_BASE_FILE_H
#define MACULA_BASE_FILE_H

#include <stddef.h>
#include <sys/types.h>

enum {
    FILE_OK = 0,
    FILE_EIO = -1,     /* cannot open, not a regular file, read error, changed while read */
    FILE_ETOOBIG = -2, /* larger than the limit (checked before anything is allocated) */
    FILE_ENOMEM = -3,  /* allocation failed */
};

/* Reads the regular file at path, of at most max bytes, into a malloc'd buffer with a NUL
 * after the last byte (*len excludes it); *mode receives the file's mode when mode is not
 * NULL. A file that grows while it is read is refused rather than cut. On failure *out is
 * NULL and err holds "PATH: what went wrong". */
int file_read_bounded(const char *path, size_t max, unsigned char **out, size_t *len, mode_t *mode,
                      char *err, size_t errsize);

#endif
