/* src/base/file.c — see file.h. */
#include "base/file.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/errmsg.h"

int file_read_bounded(const char *path, size_t max, unsigned char **out, size_t *len, mode_t *mode,
                      char *err, size_t errsize)
{
    *out = NULL;
    *len = 0;
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
    if (fd < 0) {
        return errmsg_fail(err, errsize, FILE_EIO, "%s: cannot open: %s", path, strerror(errno));
    }
    struct stat st;
    if (fstat(fd, &st) != 0) {
        int e = errno;
        close(fd);
        return errmsg_fail(err, errsize, FILE_EIO, "%s: %s", path, strerror(e));
    }
    if (!S_ISREG(st.st_mode)) {
        close(fd);
        return errmsg_fail(err, errsize, FILE_EIO, "%s: not a regular file", path);
    }
    if ((unsigned long long)st.st_size > (unsigned long long)max) {
        close(fd);
        return errmsg_fail(err, errsize, FILE_ETOOBIG,
                           "%s: %lld bytes, larger than the limit of %zu bytes", path,
                           (long long)st.st_size, max);
    }
    /* One byte more than the size, to notice a file that grew since fstat. */
    size_t cap = (size_t)st.st_size + 1;
    unsigned char *buf = malloc(cap + 1);
    if (buf == NULL) {
        close(fd);
        return errmsg_fail(err, errsize, FILE_ENOMEM, "%s: out of memory", path);
    }
    size_t n = 0;
    while (n < cap) {
        ssize_t r = read(fd, buf + n, cap - n);
        if (r < 0 && errno == EINTR) {
            continue;
        }
        if (r < 0) {
            int e = errno;
            free(buf);
            close(fd);
            return errmsg_fail(err, errsize, FILE_EIO, "%s: read: %s", path, strerror(e));
        }
        if (r == 0) {
            break;
        }
        n += (size_t)r;
    }
    close(fd);
    if (n == cap) {
        free(buf);
        return errmsg_fail(err, errsize, FILE_EIO, "%s: the file changed while read", path);
    }
    buf[n] = '\0';
    *out = buf;
    *len = n;
    if (mode != NULL) {
        *mode = st.st_mode;
    }
    return FILE_OK;
}
