/* src/mesh/identity.c — the node's TLS identity: key, certificate, node ID (see identity.h). */
#define _GNU_SOURCE /* memmem, strndup */
#include "identity.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <gnutls/abstract.h>
#include <gnutls/crypto.h>

#include "base/errmsg.h"
#include "base/file.h"

#define IDENTITY__MAX_CHAIN 16 /* certificates in one file */
#define IDENTITY__RETRIES 4    /* load/create rounds when another process writes meanwhile */
#define IDENTITY__EXISTS 1     /* identity__write: the final name was taken meanwhile */

struct identity {
    gnutls_x509_privkey_t key;
    gnutls_x509_crt_t *chain;
    size_t chain_len;
    uint8_t id[IDENTITY_ID_LEN];
    bool created;
    char *cert_path;
    char *key_path;
    char *cert_pem;
    size_t cert_pem_len;
    char *key_pem;
    size_t key_pem_len;
    uint8_t *cert_der;
    size_t cert_der_len;
    char key_type[64];
};

const char *identity_strerror(int err)
{
    switch (err) {
    case IDENTITY_OK: return "ok";
    case IDENTITY_EINVAL: return "invalid argument";
    case IDENTITY_EIO: return "I/O error";
    case IDENTITY_EPARSE: return "malformed key or certificate";
    case IDENTITY_EMISMATCH: return "certificate does not match private key";
    case IDENTITY_EEXPIRED: return "certificate expired";
    case IDENTITY_EMISSING: return "private key missing";
    case IDENTITY_ECRYPTO: return "cryptographic operation failed";
    case IDENTITY_ENOMEM: return "out of memory";
    default: return "unknown error";
    }
}

/* ---- small helpers ---------------------------------------------------------------------- */

static void identity__warn(const identity_config *cfg, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void identity__warn(const identity_config *cfg, const char *fmt, ...)
{
    char msg[768];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (cfg->warn != NULL) {
        cfg->warn(cfg->warn_ctx, msg);
    } else {
        fprintf(stderr, "macula: identity: %s\n", msg);
    }
}

static char *identity__join(const char *dir, const char *file)
{
    size_t dl = strlen(dir);
    while (dl > 1 && dir[dl - 1] == '/') {
        dl--;
    }
    size_t fl = strlen(file);
    size_t size = dl + 1 + fl + 1;
    char *p = malloc(size);
    if (p != NULL) {
        snprintf(p, size, "%.*s/%s", (int)dl, dir, file);
    }
    return p;
}

static void identity__utc(time_t t, char out[32])
{
    struct tm tm;
    if (gmtime_r(&t, &tm) == NULL || strftime(out, 32, "%Y-%m-%d %H:%M:%S UTC", &tm) == 0) {
        snprintf(out, 32, "%lld", (long long)t);
    }
}

/* 1 when path exists, 0 when it does not, IDENTITY_EIO when it cannot be told. */
static int identity__exists(const char *path, char *err, size_t errsize)
{
    struct stat st;
    if (stat(path, &st) == 0) {
        return 1;
    }
    if (errno == ENOENT) {
        return 0;
    }
    return errmsg_fail(err, errsize, IDENTITY_EIO, "%s: %s", path, strerror(errno));
}

/* Reads a whole regular file of at most IDENTITY_MAX_FILE bytes, NUL-terminated. */
static int identity__read(const char *path, gnutls_datum_t *out, mode_t *mode, char *err,
                          size_t errsize)
{
    out->data = NULL;
    out->size = 0;
    unsigned char *buf;
    size_t len;
    int rc = file_read_bounded(path, IDENTITY_MAX_FILE, &buf, &len, mode, err, errsize);
    if (rc != FILE_OK) {
        return rc == FILE_ETOOBIG  ? IDENTITY_EPARSE
               : rc == FILE_ENOMEM ? IDENTITY_ENOMEM
                                   : IDENTITY_EIO;
    }
    if (len == 0) {
        free(buf);
        return errmsg_fail(err, errsize, IDENTITY_EPARSE, "%s: empty file", path);
    }
    out->data = buf;
    out->size = (unsigned)len;
    return IDENTITY_OK;
}

static bool identity__has(const gnutls_datum_t *d, const char *needle)
{
    return d->data != NULL && memmem(d->data, d->size, needle, strlen(needle)) != NULL;
}

/* Creates dir and its missing parents with mode 0700 (whatever the umask); existing
 * directories are left alone. */
static int identity__mkdirs(const char *dir, char *err, size_t errsize)
{
    char *p = strdup(dir);
    if (p == NULL) {
        return errmsg_fail(err, errsize, IDENTITY_ENOMEM, "out of memory");
    }
    size_t len = strlen(p);
    for (size_t i = 1; i <= len; i++) {
        if (p[i] != '/' && p[i] != '\0') {
            continue;
        }
        char c = p[i];
        p[i] = '\0';
        if (mkdir(p, 0700) == 0) {
            (void)chmod(p, 0700); /* the umask may have removed bits */
        } else if (errno != EEXIST) {
            int e = errno;
            int rc = errmsg_fail(err, errsize, IDENTITY_EIO, "cannot create directory %s: %s", p,
                                 strerror(e));
            free(p);
            return rc;
        }
        p[i] = c;
    }
    struct stat st;
    if (stat(p, &st) != 0 || !S_ISDIR(st.st_mode)) {
        int rc = errmsg_fail(err, errsize, IDENTITY_EIO, "%s: not a directory", p);
        free(p);
        return rc;
    }
    free(p);
    return IDENTITY_OK;
}

static char *identity__dirname(const char *path)
{
    const char *slash = strrchr(path, '/');
    if (slash == NULL) {
        return strdup(".");
    }
    if (slash == path) {
        return strdup("/");
    }
    return strndup(path, (size_t)(slash - path));
}

static void identity__fsync_dir(const char *dir)
{
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd >= 0) {
        (void)fsync(fd); /* best effort */
        close(fd);
    }
}

static int identity__write_all(int fd, const char *data, size_t len)
{
    while (len > 0) {
        ssize_t n = write(fd, data, len);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n <= 0) {
            return -1;
        }
        data += n;
        len -= (size_t)n;
    }
    return 0;
}

/* Writes data to path atomically with mode 0600 (see identity.h). replace=false never
 * overwrites: IDENTITY__EXISTS when path appeared meanwhile. */
static int identity__write(const char *path, const char *data, size_t len, bool replace, char *err,
                           size_t errsize)
{
    char *dir = identity__dirname(path);
    if (dir == NULL) {
        return errmsg_fail(err, errsize, IDENTITY_ENOMEM, "out of memory");
    }
    int rc = identity__mkdirs(dir, err, errsize);
    if (rc != IDENTITY_OK) {
        free(dir);
        return rc;
    }
    size_t tlen = strlen(path) + 1 + 16 + 5;
    char *tmp = malloc(tlen);
    if (tmp == NULL) {
        free(dir);
        return errmsg_fail(err, errsize, IDENTITY_ENOMEM, "out of memory");
    }
    int fd = -1;
    for (int i = 0; i < 8 && fd < 0; i++) {
        uint8_t r[8];
        char hex[17];
        if (gnutls_rnd(GNUTLS_RND_NONCE, r, sizeof r) != 0) {
            free(tmp);
            free(dir);
            return errmsg_fail(err, errsize, IDENTITY_ECRYPTO, "random number generator");
        }
        for (size_t k = 0; k < sizeof r; k++) {
            snprintf(hex + 2 * k, 3, "%02x", r[k]);
        }
        snprintf(tmp, tlen, "%s.%s.tmp", path, hex);
        fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
        if (fd < 0 && errno != EEXIST) {
            break;
        }
    }
    if (fd < 0) {
        rc = errmsg_fail(err, errsize, IDENTITY_EIO, "cannot create %s: %s", tmp, strerror(errno));
        free(tmp);
        free(dir);
        return rc;
    }
    const char *step = "fchmod";
    int ok = fchmod(fd, 0600) == 0;
    if (ok) {
        step = "write";
        ok = identity__write_all(fd, data, len) == 0;
    }
    if (ok) {
        step = "fsync";
        ok = fsync(fd) == 0;
    }
    int e = errno;
    if (close(fd) != 0 && ok) {
        e = errno;
        step = "close";
        ok = 0;
    }
    if (ok && replace) {
        step = "rename";
        ok = rename(tmp, path) == 0;
        e = errno;
    } else if (ok) {
        step = "link";
        if (link(tmp, path) == 0) {
            (void)unlink(tmp);
        } else if (errno == EEXIST) {
            (void)unlink(tmp);
            rc = IDENTITY__EXISTS;
        } else if (errno == EPERM || errno == EOPNOTSUPP || errno == ENOSYS || errno == EMLINK) {
            /* No hard links on this filesystem: rename, unless the name is taken. */
            struct stat st;
            if (stat(path, &st) == 0) {
                (void)unlink(tmp);
                rc = IDENTITY__EXISTS;
            } else {
                step = "rename";
                ok = rename(tmp, path) == 0;
                e = errno;
            }
        } else {
            e = errno;
            ok = 0;
        }
    }
    if (!ok) {
        (void)unlink(tmp);
        rc = errmsg_fail(err, errsize, IDENTITY_EIO, "%s: %s: %s", path, step, strerror(e));
    } else {
        identity__fsync_dir(dir);
    }
    free(tmp);
    free(dir);
    return rc;
}

/* ---- DER: the SubjectPublicKeyInfo of a certificate ------------------------------------- */

/* One DER header at p[0..len): tag, header length, content length (bounded by len). */
static int identity__tlv(const uint8_t *p, size_t len, uint8_t *tag, size_t *hdr, size_t *clen)
{
    if (len < 2 || (p[0] & 0x1f) == 0x1f) {
        return -1;
    }
    *tag = p[0];
    size_t n = p[1];
    size_t h = 2;
    if (n & 0x80) {
        size_t k = n & 0x7f;
        if (k == 0 || k > 4 || len < 2 + k) {
            return -1;
        }
        n = 0;
        for (size_t i = 0; i < k; i++) {
            n = (n << 8) | p[2 + i];
        }
        h += k;
    }
    if (n > len - h) {
        return -1;
    }
    *hdr = h;
    *clen = n;
    return 0;
}

/* Certificate ::= SEQUENCE { tbsCertificate SEQUENCE { [0] version OPTIONAL, serial INTEGER,
 * signature AlgorithmIdentifier, issuer Name, validity, subject Name,
 * subjectPublicKeyInfo SEQUENCE, ... }, ... } */
static int identity__spki(const uint8_t *der, size_t len, const uint8_t **spki, size_t *spki_len)
{
    uint8_t tag;
    size_t h;
    size_t n;
    if (identity__tlv(der, len, &tag, &h, &n) != 0 || tag != 0x30) {
        return IDENTITY_EPARSE;
    }
    const uint8_t *p = der + h;
    size_t rest = n;
    if (identity__tlv(p, rest, &tag, &h, &n) != 0 || tag != 0x30) {
        return IDENTITY_EPARSE;
    }
    p += h;
    rest = n;
    if (identity__tlv(p, rest, &tag, &h, &n) != 0) {
        return IDENTITY_EPARSE;
    }
    if (tag == 0xa0) {
        p += h + n;
        rest -= h + n;
    }
    static const uint8_t fields[] = {0x02, 0x30, 0x30, 0x30, 0x30};
    for (size_t i = 0; i < sizeof fields; i++) {
        if (identity__tlv(p, rest, &tag, &h, &n) != 0 || tag != fields[i]) {
            return IDENTITY_EPARSE;
        }
        p += h + n;
        rest -= h + n;
    }
    if (identity__tlv(p, rest, &tag, &h, &n) != 0 || tag != 0x30) {
        return IDENTITY_EPARSE;
    }
    *spki = p;
    *spki_len = h + n;
    return IDENTITY_OK;
}

int identity_node_id_from_cert_der(const uint8_t *der, size_t len, uint8_t out[IDENTITY_ID_LEN])
{
    if (der == NULL || out == NULL) {
        return IDENTITY_EINVAL;
    }
    gnutls_x509_crt_t crt;
    if (len > UINT_MAX || gnutls_x509_crt_init(&crt) < 0) {
        return len > UINT_MAX ? IDENTITY_EPARSE : IDENTITY_ENOMEM;
    }
    /* GnuTLS checks that it is a certificate; the hash covers the exact bytes it carries. */
    gnutls_datum_t d = {(unsigned char *)der, (unsigned)len};
    int rc =
        gnutls_x509_crt_import(crt, &d, GNUTLS_X509_FMT_DER) < 0 ? IDENTITY_EPARSE : IDENTITY_OK;
    gnutls_x509_crt_deinit(crt);
    const uint8_t *spki = NULL;
    size_t spki_len = 0;
    if (rc == IDENTITY_OK) {
        rc = identity__spki(der, len, &spki, &spki_len);
    }
    if (rc == IDENTITY_OK && gnutls_hash_fast(GNUTLS_DIG_SHA256, spki, spki_len, out) < 0) {
        rc = IDENTITY_ECRYPTO;
    }
    return rc;
}

int identity_node_id_from_crt(gnutls_x509_crt_t crt, uint8_t out[IDENTITY_ID_LEN])
{
    if (crt == NULL || out == NULL) {
        return IDENTITY_EINVAL;
    }
    gnutls_datum_t der = {NULL, 0};
    if (gnutls_x509_crt_export2(crt, GNUTLS_X509_FMT_DER, &der) < 0) {
        return IDENTITY_EPARSE;
    }
    int rc = identity_node_id_from_cert_der(der.data, der.size, out);
    gnutls_free(der.data);
    return rc;
}

/* ---- hex and the default directory ------------------------------------------------------- */

void identity_id_to_hex(const uint8_t id[IDENTITY_ID_LEN], char out[IDENTITY_ID_HEX_LEN + 1])
{
    static const char digits[] = "0123456789abcdef";
    for (size_t i = 0; i < IDENTITY_ID_LEN; i++) {
        out[2 * i] = digits[id[i] >> 4];
        out[2 * i + 1] = digits[id[i] & 0x0f];
    }
    out[IDENTITY_ID_HEX_LEN] = '\0';
}

static int identity__nibble(char c)
{
    if (c >= '0' && c <= '9') {
        return c - '0';
    }
    if (c >= 'a' && c <= 'f') {
        return c - 'a' + 10;
    }
    if (c >= 'A' && c <= 'F') {
        return c - 'A' + 10;
    }
    return -1;
}

int identity_hex_to_id(const char *hex, uint8_t out[IDENTITY_ID_LEN])
{
    if (hex == NULL || out == NULL ||
        strnlen(hex, IDENTITY_ID_HEX_LEN + 1) != IDENTITY_ID_HEX_LEN) {
        return IDENTITY_EINVAL;
    }
    uint8_t tmp[IDENTITY_ID_LEN];
    for (size_t i = 0; i < IDENTITY_ID_LEN; i++) {
        int hi = identity__nibble(hex[2 * i]);
        int lo = identity__nibble(hex[2 * i + 1]);
        if (hi < 0 || lo < 0) {
            return IDENTITY_EINVAL;
        }
        tmp[i] = (uint8_t)(hi << 4 | lo);
    }
    memcpy(out, tmp, sizeof tmp);
    return IDENTITY_OK;
}

int identity_default_data_dir(char *buf, size_t size)
{
    if (buf == NULL || size == 0) {
        return IDENTITY_EINVAL;
    }
    const char *v = getenv("MACULA_DATA_DIR");
    int n;
    if (v != NULL && *v != '\0') {
        n = snprintf(buf, size, "%s", v);
    } else if ((v = getenv("XDG_DATA_HOME")) != NULL && v[0] == '/') {
        n = snprintf(buf, size, "%s/macula", v);
    } else if ((v = getenv("HOME")) != NULL && *v != '\0') {
        n = snprintf(buf, size, "%s/.local/share/macula", v);
    } else {
        buf[0] = '\0';
        return IDENTITY_EINVAL;
    }
    if (n < 0 || (size_t)n >= size) {
        buf[0] = '\0';
        return IDENTITY_EINVAL;
    }
    return IDENTITY_OK;
}

/* ---- keys and certificates --------------------------------------------------------------- */

static bool identity__is_eddsa(gnutls_pk_algorithm_t pk)
{
    return pk == GNUTLS_PK_EDDSA_ED25519 || pk == GNUTLS_PK_EDDSA_ED448;
}

static int identity__load_key(const identity_config *cfg, const char *path,
                              gnutls_x509_privkey_t *out, char *err, size_t errsize)
{
    gnutls_datum_t d;
    mode_t mode = 0;
    int rc = identity__read(path, &d, &mode, err, errsize);
    if (rc != IDENTITY_OK) {
        return rc;
    }
    bool pem = identity__has(&d, "-----BEGIN ");
    if (pem && (identity__has(&d, "ENCRYPTED PRIVATE KEY") ||
                identity__has(&d, "Proc-Type: 4,ENCRYPTED"))) {
        free(d.data);
        return errmsg_fail(err, errsize, IDENTITY_EPARSE,
                           "%s: the private key is encrypted; macula needs an unencrypted key "
                           "(openssl pkey -in KEY -out %s)",
                           path, path);
    }
    gnutls_x509_privkey_t key;
    if (gnutls_x509_privkey_init(&key) < 0) {
        free(d.data);
        return errmsg_fail(err, errsize, IDENTITY_ENOMEM, "out of memory");
    }
    int g = gnutls_x509_privkey_import2(key, &d, pem ? GNUTLS_X509_FMT_PEM : GNUTLS_X509_FMT_DER,
                                        NULL, GNUTLS_PKCS_PLAIN);
    free(d.data);
    if (g < 0) {
        gnutls_x509_privkey_deinit(key);
        return errmsg_fail(err, errsize, IDENTITY_EPARSE,
                           "%s: not an unencrypted private key (PKCS#8, SEC1 or PKCS#1, PEM or "
                           "DER): %s",
                           path, gnutls_strerror(g));
    }
    if (mode & 077) {
        identity__warn(cfg, "%s is readable by group or others (mode %03o); chmod 600 it", path,
                       (unsigned)(mode & 0777));
    }
    *out = key;
    return IDENTITY_OK;
}

static void identity__free_chain(gnutls_x509_crt_t *chain, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        gnutls_x509_crt_deinit(chain[i]);
    }
    gnutls_free(chain);
}

static int identity__load_chain(const char *path, gnutls_x509_crt_t **out, size_t *count, char *err,
                                size_t errsize)
{
    gnutls_datum_t d;
    int rc = identity__read(path, &d, NULL, err, errsize);
    if (rc != IDENTITY_OK) {
        return rc;
    }
    gnutls_x509_crt_t *list = NULL;
    unsigned n = 0;
    int g;
    if (identity__has(&d, "-----BEGIN ")) {
        g = gnutls_x509_crt_list_import2(&list, &n, &d, GNUTLS_X509_FMT_PEM, 0);
    } else {
        list = gnutls_malloc(sizeof *list);
        g = list == NULL ? GNUTLS_E_MEMORY_ERROR : gnutls_x509_crt_init(&list[0]);
        if (g >= 0) {
            g = gnutls_x509_crt_import(list[0], &d, GNUTLS_X509_FMT_DER);
            if (g < 0) {
                gnutls_x509_crt_deinit(list[0]);
            } else {
                n = 1;
            }
        }
        if (g < 0) {
            gnutls_free(list);
            list = NULL;
        }
    }
    free(d.data);
    if (g < 0 || n == 0 || list == NULL) {
        identity__free_chain(list, n);
        return errmsg_fail(err, errsize, IDENTITY_EPARSE,
                           "%s: not an X.509 certificate (PEM or DER): %s", path,
                           g < 0 ? gnutls_strerror(g) : "no certificate found");
    }
    if (n > IDENTITY__MAX_CHAIN) {
        identity__free_chain(list, n);
        return errmsg_fail(err, errsize, IDENTITY_EPARSE,
                           "%s: %u certificates, more than the limit of %d", path, n,
                           IDENTITY__MAX_CHAIN);
    }
    *out = list;
    *count = n;
    return IDENTITY_OK;
}

/* The SubjectPublicKeyInfo DER of the key, or of the certificate (exactly one is non-NULL). */
static int identity__pub_der(gnutls_x509_privkey_t key, gnutls_x509_crt_t crt, gnutls_datum_t *out)
{
    gnutls_pubkey_t pub;
    gnutls_privkey_t priv = NULL;
    if (gnutls_pubkey_init(&pub) < 0) {
        return IDENTITY_ENOMEM;
    }
    int g;
    if (key != NULL) {
        g = gnutls_privkey_init(&priv);
        if (g >= 0) {
            g = gnutls_privkey_import_x509(priv, key, 0);
        }
        if (g >= 0) {
            g = gnutls_pubkey_import_privkey(pub, priv, 0, 0);
        }
    } else {
        g = gnutls_pubkey_import_x509(pub, crt, 0);
    }
    if (g >= 0) {
        g = gnutls_pubkey_export2(pub, GNUTLS_X509_FMT_DER, out);
    }
    if (priv != NULL) {
        gnutls_privkey_deinit(priv);
    }
    gnutls_pubkey_deinit(pub);
    return g < 0 ? IDENTITY_ECRYPTO : IDENTITY_OK;
}

/* IDENTITY_OK when the certificate carries the key's public key. */
static int identity__match(gnutls_x509_privkey_t key, gnutls_x509_crt_t crt)
{
    gnutls_datum_t a = {NULL, 0};
    gnutls_datum_t b = {NULL, 0};
    int rc = identity__pub_der(key, NULL, &a);
    if (rc == IDENTITY_OK) {
        rc = identity__pub_der(NULL, crt, &b);
    }
    if (rc == IDENTITY_OK && (a.size != b.size || memcmp(a.data, b.data, a.size) != 0)) {
        rc = IDENTITY_EMISMATCH;
    }
    gnutls_free(a.data);
    gnutls_free(b.data);
    return rc;
}

/* A self-signed X.509 v3 certificate for key: subject, validity and SANs from cfg. */
static int identity__issue(const identity_config *cfg, int days, gnutls_x509_privkey_t key,
                           const char *subject, gnutls_x509_crt_t *out, char *err, size_t errsize)
{
    gnutls_x509_crt_t crt;
    if (gnutls_x509_crt_init(&crt) < 0) {
        return errmsg_fail(err, errsize, IDENTITY_ENOMEM, "out of memory");
    }
    const char *what = "version";
    int g = gnutls_x509_crt_set_version(crt, 3);
    if (g >= 0) {
        what = "serial";
        uint8_t serial[16];
        g = gnutls_rnd(GNUTLS_RND_NONCE, serial, sizeof serial);
        serial[0] = (uint8_t)((serial[0] & 0x7f) | 0x40); /* positive, full length */
        if (g >= 0) {
            g = gnutls_x509_crt_set_serial(crt, serial, sizeof serial);
        }
    }
    if (g >= 0) {
        what = "validity";
        time_t now = time(NULL);
        g = gnutls_x509_crt_set_activation_time(crt, now - 3600);
        if (g >= 0) {
            g = gnutls_x509_crt_set_expiration_time(crt, now + (time_t)days * 86400);
        }
    }
    if (g >= 0) {
        const char *bad = NULL;
        g = gnutls_x509_crt_set_dn(crt, subject, &bad);
        if (g < 0) {
            gnutls_x509_crt_deinit(crt);
            return errmsg_fail(err, errsize, IDENTITY_EINVAL,
                               "certificate subject \"%s\" is not a valid RFC 4514 name: %s",
                               subject, gnutls_strerror(g));
        }
    }
    if (g >= 0) {
        what = "key";
        g = gnutls_x509_crt_set_key(crt, key);
    }
    if (g >= 0) {
        what = "extensions";
        g = gnutls_x509_crt_set_basic_constraints(crt, 0, -1);
    }
    if (g >= 0) {
        g = gnutls_x509_crt_set_key_usage(crt, GNUTLS_KEY_DIGITAL_SIGNATURE);
    }
    if (g >= 0) {
        g = gnutls_x509_crt_set_key_purpose_oid(crt, GNUTLS_KP_TLS_WWW_SERVER, 0);
    }
    if (g >= 0) {
        g = gnutls_x509_crt_set_key_purpose_oid(crt, GNUTLS_KP_TLS_WWW_CLIENT, 0);
    }
    if (g >= 0) {
        uint8_t kid[64];
        size_t kid_len = sizeof kid;
        g = gnutls_x509_privkey_get_key_id(key, GNUTLS_KEYID_USE_SHA1, kid, &kid_len);
        if (g >= 0) {
            g = gnutls_x509_crt_set_subject_key_id(crt, kid, kid_len);
        }
    }
    for (size_t i = 0; g >= 0 && cfg->dns_names != NULL && cfg->dns_names[i] != NULL; i++) {
        const char *name = cfg->dns_names[i];
        g = gnutls_x509_crt_set_subject_alt_name(crt, GNUTLS_SAN_DNSNAME, name,
                                                 (unsigned)strlen(name), GNUTLS_FSAN_APPEND);
        if (g < 0) {
            gnutls_x509_crt_deinit(crt);
            return errmsg_fail(err, errsize, IDENTITY_EINVAL,
                               "certificate DNS name \"%s\" refused: %s", name, gnutls_strerror(g));
        }
    }
    if (g >= 0) {
        what = "signature";
        gnutls_pk_algorithm_t pk =
            (gnutls_pk_algorithm_t)gnutls_x509_privkey_get_pk_algorithm2(key, NULL);
        /* EdDSA signs the message itself: GnuTLS wants no digest (0) for it. */
        g = gnutls_x509_crt_sign2(
            crt, crt, key, identity__is_eddsa(pk) ? GNUTLS_DIG_UNKNOWN : GNUTLS_DIG_SHA256, 0);
    }
    /* Re-read from its DER, so that the object answers every getter as a loaded one does
     * (GnuTLS does not re-parse extensions set on an object it is building). */
    gnutls_datum_t der = {NULL, 0};
    gnutls_x509_crt_t parsed = NULL;
    if (g >= 0) {
        what = "export";
        g = gnutls_x509_crt_export2(crt, GNUTLS_X509_FMT_DER, &der);
    }
    if (g >= 0) {
        g = gnutls_x509_crt_init(&parsed);
    }
    if (g >= 0) {
        g = gnutls_x509_crt_import(parsed, &der, GNUTLS_X509_FMT_DER);
        if (g < 0) {
            gnutls_x509_crt_deinit(parsed);
        }
    }
    gnutls_free(der.data);
    gnutls_x509_crt_deinit(crt);
    if (g < 0) {
        return errmsg_fail(err, errsize, IDENTITY_ECRYPTO, "issuing the certificate (%s): %s", what,
                           gnutls_strerror(g));
    }
    *out = parsed;
    return IDENTITY_OK;
}

/* Checks the parts of cfg a certificate is made from, before anything is written. */
static int identity__check_names(const identity_config *cfg, const char *subject, char *err,
                                 size_t errsize)
{
    gnutls_x509_crt_t crt;
    if (gnutls_x509_crt_init(&crt) < 0) {
        return errmsg_fail(err, errsize, IDENTITY_ENOMEM, "out of memory");
    }
    int g = gnutls_x509_crt_set_dn(crt, subject, NULL);
    gnutls_x509_crt_deinit(crt);
    if (g < 0) {
        return errmsg_fail(err, errsize, IDENTITY_EINVAL,
                           "certificate subject \"%s\" is not a valid RFC 4514 name: %s", subject,
                           gnutls_strerror(g));
    }
    for (size_t i = 0; cfg->dns_names != NULL && cfg->dns_names[i] != NULL; i++) {
        const char *name = cfg->dns_names[i];
        size_t len = strlen(name);
        bool ok = len > 0 && len <= 253;
        for (size_t k = 0; ok && k < len; k++) {
            char ch = name[k];
            ok = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
                 ch == '-' || ch == '.' || (ch == '*' && k == 0);
        }
        if (!ok) {
            return errmsg_fail(err, errsize, IDENTITY_EINVAL,
                               "certificate DNS name \"%s\" is not valid: allowed are 1 to 253 "
                               "letters, digits, '-' and '.'",
                               name);
        }
    }
    return IDENTITY_OK;
}

/* Copies a GnuTLS datum into a NUL-terminated malloc'ed string. */
static char *identity__text(const gnutls_datum_t *d)
{
    char *p = malloc((size_t)d->size + 1);
    if (p != NULL) {
        memcpy(p, d->data, d->size);
        p[d->size] = '\0';
    }
    return p;
}

static int identity__key_pem(gnutls_x509_privkey_t key, char **out, size_t *len)
{
    gnutls_datum_t d = {NULL, 0};
    if (gnutls_x509_privkey_export2_pkcs8(key, GNUTLS_X509_FMT_PEM, NULL, GNUTLS_PKCS_PLAIN, &d) <
        0) {
        return IDENTITY_ECRYPTO;
    }
    *out = identity__text(&d);
    *len = d.size;
    gnutls_free(d.data);
    return *out ? IDENTITY_OK : IDENTITY_ENOMEM;
}

static int identity__chain_pem(gnutls_x509_crt_t *chain, size_t n, char **out, size_t *len)
{
    char *text = NULL;
    size_t tlen = 0;
    for (size_t i = 0; i < n; i++) {
        gnutls_datum_t d = {NULL, 0};
        if (gnutls_x509_crt_export2(chain[i], GNUTLS_X509_FMT_PEM, &d) < 0) {
            free(text);
            return IDENTITY_ECRYPTO;
        }
        char *np = realloc(text, tlen + d.size + 1);
        if (np == NULL) {
            gnutls_free(d.data);
            free(text);
            return IDENTITY_ENOMEM;
        }
        text = np;
        memcpy(text + tlen, d.data, d.size);
        tlen += d.size;
        text[tlen] = '\0';
        gnutls_free(d.data);
    }
    *out = text;
    *len = tlen;
    return IDENTITY_OK;
}

void identity_free(identity *id)
{
    if (id == NULL) {
        return;
    }
    if (id->key != NULL) {
        gnutls_x509_privkey_deinit(id->key);
    }
    identity__free_chain(id->chain, id->chain_len);
    free(id->cert_path);
    free(id->key_path);
    free(id->cert_pem);
    if (id->key_pem != NULL) {
        gnutls_memset(id->key_pem, 0, id->key_pem_len);
    }
    free(id->key_pem);
    free(id->cert_der);
    free(id);
}

/* Builds the identity from a key and a chain (taking both) and the paths (copied). */
static int identity__assemble(gnutls_x509_privkey_t key, gnutls_x509_crt_t *chain, size_t n,
                              const char *cert_path, const char *key_path, bool created,
                              identity **out, char *err, size_t errsize)
{
    identity *id = chain != NULL && n > 0 ? calloc(1, sizeof *id) : NULL;
    if (id == NULL) {
        gnutls_x509_privkey_deinit(key);
        identity__free_chain(chain, n);
        return errmsg_fail(err, errsize, IDENTITY_ENOMEM, "out of memory");
    }
    id->key = key;
    id->chain = chain;
    id->chain_len = n;
    id->created = created;
    id->cert_path = strdup(cert_path);
    id->key_path = strdup(key_path);
    int rc = id->cert_path && id->key_path ? IDENTITY_OK : IDENTITY_ENOMEM;
    if (rc == IDENTITY_OK) {
        rc = identity__key_pem(key, &id->key_pem, &id->key_pem_len);
    }
    if (rc == IDENTITY_OK) {
        rc = identity__chain_pem(chain, n, &id->cert_pem, &id->cert_pem_len);
    }
    gnutls_datum_t der = {NULL, 0};
    if (rc == IDENTITY_OK && gnutls_x509_crt_export2(chain[0], GNUTLS_X509_FMT_DER, &der) < 0) {
        rc = IDENTITY_ECRYPTO;
    }
    if (rc == IDENTITY_OK) {
        id->cert_der = malloc(der.size ? der.size : 1);
        id->cert_der_len = der.size;
        if (id->cert_der == NULL) {
            rc = IDENTITY_ENOMEM;
        } else {
            memcpy(id->cert_der, der.data, der.size);
        }
        gnutls_free(der.data);
    }
    if (rc == IDENTITY_OK) {
        rc = identity_node_id_from_cert_der(id->cert_der, id->cert_der_len, id->id);
    }
    if (rc == IDENTITY_OK) {
        const char *name = gnutls_pk_algorithm_get_name(
            (gnutls_pk_algorithm_t)gnutls_x509_privkey_get_pk_algorithm2(key, NULL));
        snprintf(id->key_type, sizeof id->key_type, "%s", name ? name : "unknown");
    }
    if (rc != IDENTITY_OK) {
        identity_free(id);
        return errmsg_fail(err, errsize, rc, "%s: %s", cert_path, identity_strerror(rc));
    }
    *out = id;
    return IDENTITY_OK;
}

/* ---- load or create ---------------------------------------------------------------------- */

typedef struct identity__ctx {
    const identity_config *cfg;
    int days;
    const char *subject;
    const char *cert_path;
    const char *key_path;
    char *err;
    size_t errsize;
} identity__ctx;

/* Writes a certificate chain to the certificate path. */
static int identity__write_cert(const identity__ctx *c, gnutls_x509_crt_t crt, bool replace)
{
    char *pem = NULL;
    size_t len = 0;
    int rc = identity__chain_pem(&crt, 1, &pem, &len);
    if (rc != IDENTITY_OK) {
        return errmsg_fail(c->err, c->errsize, rc, "%s: exporting the certificate: %s",
                           c->cert_path, identity_strerror(rc));
    }
    rc = identity__write(c->cert_path, pem, len, replace, c->err, c->errsize);
    free(pem);
    return rc;
}

/* Handles a loaded chain whose leaf has expired, following cfg->expired. On renewal the chain
 * is replaced by a new certificate. */
static int identity__expiry(const identity__ctx *c, gnutls_x509_privkey_t key,
                            gnutls_x509_crt_t **chain, size_t *n, bool *renewed)
{
    gnutls_x509_crt_t leaf = (*chain)[0];
    time_t now = time(NULL);
    time_t not_before = gnutls_x509_crt_get_activation_time(leaf);
    time_t not_after = gnutls_x509_crt_get_expiration_time(leaf);
    char when[32];
    if (not_before != (time_t)-1 && not_before > now) {
        identity__utc(not_before, when);
        identity__warn(c->cfg,
                       "%s is not valid before %s: this machine's clock may be behind; loading "
                       "it anyway",
                       c->cert_path, when);
    }
    if (not_after == (time_t)-1 || not_after >= now) {
        return IDENTITY_OK;
    }
    identity__utc(not_after, when);
    switch (c->cfg->expired) {
    case IDENTITY_EXPIRED_WARN:
        identity__warn(c->cfg,
                       "%s expired on %s; loading it anyway (peers that check dates "
                       "will refuse it)",
                       c->cert_path, when);
        return IDENTITY_OK;
    case IDENTITY_EXPIRED_REFUSE:
        return errmsg_fail(c->err, c->errsize, IDENTITY_EEXPIRED,
                           "%s: certificate expired on %s; delete the certificate file to "
                           "re-issue it from the same key (same node ID)",
                           c->cert_path, when);
    case IDENTITY_EXPIRED_RENEW:
    default: break;
    }
    gnutls_datum_t subj = {NULL, 0};
    gnutls_datum_t iss = {NULL, 0};
    bool self_issued = *n == 1 && gnutls_x509_crt_get_raw_dn(leaf, &subj) >= 0 &&
                       gnutls_x509_crt_get_raw_issuer_dn(leaf, &iss) >= 0 &&
                       subj.size == iss.size && memcmp(subj.data, iss.data, subj.size) == 0;
    gnutls_free(subj.data);
    gnutls_free(iss.data);
    if (!self_issued) {
        return errmsg_fail(c->err, c->errsize, IDENTITY_EEXPIRED,
                           "%s: certificate expired on %s and is CA-issued (or a chain), so it "
                           "cannot be renewed here; install a new one",
                           c->cert_path, when);
    }
    gnutls_datum_t dn = {NULL, 0};
    if (gnutls_x509_crt_get_dn3(leaf, &dn, 0) < 0) {
        return errmsg_fail(c->err, c->errsize, IDENTITY_EPARSE,
                           "%s: cannot read the certificate's subject to renew it", c->cert_path);
    }
    char *subject = identity__text(&dn);
    gnutls_free(dn.data);
    if (subject == NULL) {
        return errmsg_fail(c->err, c->errsize, IDENTITY_ENOMEM, "out of memory");
    }
    gnutls_x509_crt_t crt = NULL;
    int rc = identity__issue(c->cfg, c->days, key, subject, &crt, c->err, c->errsize);
    free(subject);
    if (rc != IDENTITY_OK) {
        return rc;
    }
    rc = identity__write_cert(c, crt, true);
    if (rc != IDENTITY_OK) {
        gnutls_x509_crt_deinit(crt);
        return rc;
    }
    identity__warn(c->cfg, "%s expired on %s; renewed it for the same key (same node ID)",
                   c->cert_path, when);
    identity__free_chain(*chain, *n);
    *chain = gnutls_malloc(sizeof **chain);
    if (*chain == NULL) {
        gnutls_x509_crt_deinit(crt);
        *n = 0;
        return errmsg_fail(c->err, c->errsize, IDENTITY_ENOMEM, "out of memory");
    }
    (*chain)[0] = crt;
    *n = 1;
    *renewed = true;
    return IDENTITY_OK;
}

/* One round of load-or-create. IDENTITY__EXISTS: a file appeared meanwhile, try again. */
static int identity__round(const identity__ctx *c, identity **out)
{
    int kst = identity__exists(c->key_path, c->err, c->errsize);
    if (kst < 0) {
        return kst;
    }
    int cst = identity__exists(c->cert_path, c->err, c->errsize);
    if (cst < 0) {
        return cst;
    }
    if (cst == 1 && kst == 0) {
        return errmsg_fail(c->err, c->errsize, IDENTITY_EMISSING,
                           "%s: the certificate's private key %s is missing; restore it (a "
                           "new key would change the node ID), or delete the certificate to "
                           "start a new identity",
                           c->cert_path, c->key_path);
    }
    gnutls_x509_privkey_t key = NULL;
    bool created = false;
    int rc;
    if (kst == 0) {
        if (gnutls_x509_privkey_init(&key) < 0) {
            return errmsg_fail(c->err, c->errsize, IDENTITY_ENOMEM, "out of memory");
        }
        int g = gnutls_x509_privkey_generate2(key, GNUTLS_PK_EDDSA_ED25519,
                                              GNUTLS_CURVE_TO_BITS(GNUTLS_ECC_CURVE_ED25519), 0,
                                              NULL, 0);
        char *pem = NULL;
        size_t len = 0;
        rc = g < 0 ? IDENTITY_ECRYPTO : identity__key_pem(key, &pem, &len);
        if (rc != IDENTITY_OK) {
            gnutls_x509_privkey_deinit(key);
            return errmsg_fail(c->err, c->errsize, rc, "generating an Ed25519 key: %s",
                               g < 0 ? gnutls_strerror(g) : identity_strerror(rc));
        }
        rc = identity__write(c->key_path, pem, len, false, c->err, c->errsize);
        gnutls_memset(pem, 0, len);
        free(pem);
        if (rc != IDENTITY_OK) {
            gnutls_x509_privkey_deinit(key);
            return rc;
        }
        created = true;
    } else {
        rc = identity__load_key(c->cfg, c->key_path, &key, c->err, c->errsize);
        if (rc != IDENTITY_OK) {
            return rc;
        }
    }
    gnutls_x509_crt_t *chain = NULL;
    size_t n = 0;
    if (cst == 0) {
        gnutls_x509_crt_t crt = NULL;
        rc = identity__issue(c->cfg, c->days, key, c->subject, &crt, c->err, c->errsize);
        if (rc == IDENTITY_OK) {
            rc = identity__write_cert(c, crt, false);
            if (rc != IDENTITY_OK) {
                gnutls_x509_crt_deinit(crt);
            }
        }
        if (rc == IDENTITY_OK) {
            chain = gnutls_malloc(sizeof *chain);
            if (chain == NULL) {
                gnutls_x509_crt_deinit(crt);
                rc = errmsg_fail(c->err, c->errsize, IDENTITY_ENOMEM, "out of memory");
            } else {
                chain[0] = crt;
                n = 1;
                created = true;
            }
        }
    } else {
        rc = identity__load_chain(c->cert_path, &chain, &n, c->err, c->errsize);
        if (rc == IDENTITY_OK && chain == NULL) {
            rc = IDENTITY_EPARSE; /* load_chain never does this; the analyser cannot tell */
        }
        if (rc == IDENTITY_OK) {
            rc = identity__match(key, chain[0]);
            if (rc == IDENTITY_EMISMATCH) {
                errmsg_fail(c->err, c->errsize, rc,
                            "%s: the certificate's public key is not the one of the private "
                            "key %s",
                            c->cert_path, c->key_path);
            } else if (rc != IDENTITY_OK) {
                errmsg_fail(c->err, c->errsize, rc, "%s: comparing with the key %s: %s",
                            c->cert_path, c->key_path, identity_strerror(rc));
            }
        }
        if (rc == IDENTITY_OK) {
            rc = identity__expiry(c, key, &chain, &n, &created);
        }
    }
    if (rc != IDENTITY_OK) {
        gnutls_x509_privkey_deinit(key);
        identity__free_chain(chain, n);
        return rc;
    }
    return identity__assemble(key, chain, n, c->cert_path, c->key_path, created, out, c->err,
                              c->errsize);
}

int identity_load_or_create(const identity_config *cfg, identity **out, char *err, size_t errsize)
{
    if (out != NULL) {
        *out = NULL;
    }
    if (err != NULL && errsize > 0) {
        err[0] = '\0';
    }
    if (cfg == NULL || out == NULL) {
        return errmsg_fail(err, errsize, IDENTITY_EINVAL, "identity: no configuration");
    }
    int days =
        cfg->cert_validity_days == 0 ? IDENTITY_DEFAULT_VALIDITY_DAYS : cfg->cert_validity_days;
    if (days < 1 || days > IDENTITY_MAX_VALIDITY_DAYS) {
        return errmsg_fail(err, errsize, IDENTITY_EINVAL,
                           "cert_validity_days=%d is not valid: allowed is 1 to %d",
                           cfg->cert_validity_days, IDENTITY_MAX_VALIDITY_DAYS);
    }
    if (cfg->expired != IDENTITY_EXPIRED_RENEW && cfg->expired != IDENTITY_EXPIRED_REFUSE &&
        cfg->expired != IDENTITY_EXPIRED_WARN) {
        return errmsg_fail(err, errsize, IDENTITY_EINVAL, "unknown expiry policy %d",
                           (int)cfg->expired);
    }
    bool no_dir = cfg->data_dir == NULL || cfg->data_dir[0] == '\0';
    if (no_dir && (cfg->cert_path == NULL || cfg->key_path == NULL)) {
        return errmsg_fail(err, errsize, IDENTITY_EINVAL,
                           "no data directory, and the certificate and key paths are not both "
                           "set");
    }
    if ((cfg->cert_path != NULL && cfg->cert_path[0] == '\0') ||
        (cfg->key_path != NULL && cfg->key_path[0] == '\0')) {
        return errmsg_fail(err, errsize, IDENTITY_EINVAL, "an empty certificate or key path");
    }
    char *cert_path =
        cfg->cert_path ? strdup(cfg->cert_path) : identity__join(cfg->data_dir, IDENTITY_CERT_FILE);
    char *key_path =
        cfg->key_path ? strdup(cfg->key_path) : identity__join(cfg->data_dir, IDENTITY_KEY_FILE);
    int rc = IDENTITY_ENOMEM;
    if (cert_path != NULL && key_path != NULL) {
        if (strcmp(cert_path, key_path) == 0) {
            rc = errmsg_fail(err, errsize, IDENTITY_EINVAL,
                             "the certificate and the key must be different files (%s)", cert_path);
        } else {
            identity__ctx c = {.cfg = cfg,
                               .days = days,
                               .subject = cfg->subject ? cfg->subject : IDENTITY_DEFAULT_SUBJECT,
                               .cert_path = cert_path,
                               .key_path = key_path,
                               .err = err,
                               .errsize = errsize};
            rc = identity__check_names(cfg, c.subject, err, errsize);
            rc = rc == IDENTITY_OK ? IDENTITY__EXISTS : rc;
            for (int i = 0; i < IDENTITY__RETRIES && rc == IDENTITY__EXISTS; i++) {
                rc = identity__round(&c, out);
            }
            if (rc == IDENTITY__EXISTS) {
                rc = errmsg_fail(err, errsize, IDENTITY_EIO,
                                 "%s: the files kept changing while the identity was created",
                                 cert_path);
            }
        }
    } else {
        errmsg_fail(err, errsize, rc, "out of memory");
    }
    free(cert_path);
    free(key_path);
    return rc;
}

/* ---- accessors --------------------------------------------------------------------------- */

const uint8_t *identity_node_id(const identity *id)
{
    return id->id;
}

void identity_node_id_hex(const identity *id, char out[IDENTITY_ID_HEX_LEN + 1])
{
    identity_id_to_hex(id->id, out);
}

bool identity_created(const identity *id)
{
    return id->created;
}
const char *identity_cert_path(const identity *id)
{
    return id->cert_path;
}
const char *identity_key_path(const identity *id)
{
    return id->key_path;
}
const char *identity_key_type(const identity *id)
{
    return id->key_type;
}
gnutls_x509_crt_t identity_cert(const identity *id)
{
    return id->chain[0];
}
gnutls_x509_privkey_t identity_key(const identity *id)
{
    return id->key;
}

const gnutls_x509_crt_t *identity_cert_chain(const identity *id, size_t *count)
{
    if (count != NULL) {
        *count = id->chain_len;
    }
    return id->chain;
}

const char *identity_cert_pem(const identity *id, size_t *len)
{
    if (len != NULL) {
        *len = id->cert_pem_len;
    }
    return id->cert_pem;
}

const char *identity_key_pem(const identity *id, size_t *len)
{
    if (len != NULL) {
        *len = id->key_pem_len;
    }
    return id->key_pem;
}

const uint8_t *identity_cert_der(const identity *id, size_t *len)
{
    if (len != NULL) {
        *len = id->cert_der_len;
    }
    return id->cert_der;
}

int identity_credentials(const identity *id, gnutls_certificate_credentials_t *out)
{
    if (id == NULL || out == NULL) {
        return IDENTITY_EINVAL;
    }
    gnutls_certificate_credentials_t cred;
    if (gnutls_certificate_allocate_credentials(&cred) < 0) {
        return IDENTITY_ENOMEM;
    }
    if (gnutls_certificate_set_x509_key(cred, id->chain, (unsigned)id->chain_len, id->key) < 0) {
        gnutls_certificate_free_credentials(cred);
        return IDENTITY_ECRYPTO;
    }
    *out = cred;
    return IDENTITY_OK;
}
