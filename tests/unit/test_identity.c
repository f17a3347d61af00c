/* tests/unit/test_identity.c — the node identity (src/mesh/identity.h): creation, reload,
 * node ID against an independent computation by the `openssl` CLI, keys made by openssl,
 * errors, expiry policies, permissions whatever the umask, concurrent first starts. */
#define _GNU_SOURCE
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "mesh/identity.h"

/* ---- fixtures ---------------------------------------------------------------------------- */

typedef struct fx {
    char dir[256];
    char warnings[4096];
    int nwarn;
    identity_config cfg;
    char err[512];
} fx;

static void on_warn(void *ctx, const char *msg)
{
    fx *f = ctx;
    f->nwarn++;
    size_t len = strlen(f->warnings);
    snprintf(f->warnings + len, sizeof f->warnings - len, "%s\n", msg);
}

static int setup(void **state)
{
    fx *f = calloc(1, sizeof *f);
    snprintf(f->dir, sizeof f->dir, "/tmp/macula_idtest_XXXXXX");
    if (mkdtemp(f->dir) == NULL) {
        free(f);
        return -1;
    }
    f->cfg.data_dir = f->dir;
    f->cfg.warn = on_warn;
    f->cfg.warn_ctx = f;
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fx *f = *state;
    char cmd[400];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", f->dir);
    int rc = system(cmd);
    free(f);
    return rc == 0 ? 0 : -1;
}

static bool have_openssl(void)
{
    return system("openssl version >/dev/null 2>&1") == 0;
}

#define NEED_OPENSSL()                                                                             \
    do {                                                                                           \
        if (!have_openssl()) {                                                                     \
            fprintf(stderr, "openssl CLI not installed: skipping\n");                              \
            skip();                                                                                \
        }                                                                                          \
    } while (0)

static void sh(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void sh(const char *fmt, ...)
{
    char cmd[2048];
    va_list ap;
    va_start(ap, fmt);
    // NOLINTNEXTLINE(clang-analyzer-valist.Uninitialized): va_start is just above.
    vsnprintf(cmd, sizeof cmd, fmt, ap);
    va_end(ap);
    int rc = system(cmd);
    if (rc != 0) {
        fprintf(stderr, "command failed (%d): %s\n", rc, cmd);
    }
    assert_int_equal(rc, 0);
}

/* The first line of a command's output, without the newline. */
static void sh_out(char *out, size_t size, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void sh_out(char *out, size_t size, const char *fmt, ...)
{
    char cmd[2048];
    va_list ap;
    va_start(ap, fmt);
    // NOLINTNEXTLINE(clang-analyzer-valist.Uninitialized): va_start is just above.
    vsnprintf(cmd, sizeof cmd, fmt, ap);
    va_end(ap);
    FILE *p = popen(cmd, "r");
    assert_non_null(p);
    out[0] = '\0';
    if (fgets(out, (int)size, p) == NULL) {
        out[0] = '\0';
    }
    out[strcspn(out, "\r\n")] = '\0';
    assert_int_equal(pclose(p), 0);
}

/* SHA-256 of a public key's SPKI DER, computed by openssl from a certificate or a key. */
static void openssl_id_of_cert(const char *cert, char hex[65])
{
    char line[256];
    sh_out(line, sizeof line,
           "openssl x509 -in '%s' -pubkey -noout | openssl pkey -pubin -outform DER | "
           "openssl dgst -sha256 -r",
           cert);
    assert_true(strlen(line) >= 64);
    memcpy(hex, line, 64);
    hex[64] = '\0';
}

static void openssl_id_of_key(const char *key, char hex[65])
{
    char line[256];
    sh_out(line, sizeof line,
           "openssl pkey -in '%s' -pubout -outform DER | openssl dgst -sha256 -r", key);
    assert_true(strlen(line) >= 64);
    memcpy(hex, line, 64);
    hex[64] = '\0';
}

static void path_in(const fx *f, const char *name, char *out, size_t size)
{
    snprintf(out, size, "%s/%s", f->dir, name);
}

static mode_t mode_of(const char *path)
{
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    return st.st_mode & 07777;
}

static void write_file(const char *path, const void *data, size_t len)
{
    FILE *fp = fopen(path, "wb");
    assert_non_null(fp);
    assert_int_equal(fwrite(data, 1, len, fp), len);
    assert_int_equal(fclose(fp), 0);
}

static int count_tmp_files(const char *dir)
{
    char line[64];
    char cmd[400];
    snprintf(cmd, sizeof cmd, "find '%s' -name '*.tmp' | wc -l", dir);
    FILE *p = popen(cmd, "r");
    assert_non_null(p);
    assert_non_null(fgets(line, sizeof line, p));
    pclose(p);
    return (int)strtol(line, NULL, 10);
}

/* A certificate for key with the given validity and issuer, written as PEM to path. */
static void write_cert(const char *path, gnutls_x509_privkey_t key, time_t not_before,
                       time_t not_after, const char *subject, const char *issuer)
{
    gnutls_x509_crt_t crt;
    gnutls_x509_crt_t ca;
    gnutls_x509_privkey_t ca_key = NULL;
    assert_true(gnutls_x509_crt_init(&crt) >= 0);
    assert_true(gnutls_x509_crt_set_version(crt, 3) >= 0);
    unsigned char serial[4] = {1, 2, 3, 4};
    assert_true(gnutls_x509_crt_set_serial(crt, serial, sizeof serial) >= 0);
    assert_true(gnutls_x509_crt_set_activation_time(crt, not_before) >= 0);
    assert_true(gnutls_x509_crt_set_expiration_time(crt, not_after) >= 0);
    assert_true(gnutls_x509_crt_set_dn(crt, subject, NULL) >= 0);
    assert_true(gnutls_x509_crt_set_key(crt, key) >= 0);
    if (issuer == NULL) {
        assert_true(gnutls_x509_crt_sign2(crt, crt, key, GNUTLS_DIG_UNKNOWN, 0) >= 0);
    } else {
        assert_true(gnutls_x509_privkey_init(&ca_key) >= 0);
        assert_true(gnutls_x509_privkey_generate2(ca_key, GNUTLS_PK_EDDSA_ED25519,
                                                  GNUTLS_CURVE_TO_BITS(GNUTLS_ECC_CURVE_ED25519), 0,
                                                  NULL, 0) >= 0);
        assert_true(gnutls_x509_crt_init(&ca) >= 0);
        assert_true(gnutls_x509_crt_set_version(ca, 3) >= 0);
        assert_true(gnutls_x509_crt_set_serial(ca, serial, sizeof serial) >= 0);
        assert_true(gnutls_x509_crt_set_activation_time(ca, not_before) >= 0);
        assert_true(gnutls_x509_crt_set_expiration_time(ca, time(NULL) + 86400) >= 0);
        assert_true(gnutls_x509_crt_set_dn(ca, issuer, NULL) >= 0);
        assert_true(gnutls_x509_crt_set_key(ca, ca_key) >= 0);
        assert_true(gnutls_x509_crt_set_basic_constraints(ca, 1, -1) >= 0);
        assert_true(gnutls_x509_crt_sign2(ca, ca, ca_key, GNUTLS_DIG_UNKNOWN, 0) >= 0);
        assert_true(gnutls_x509_crt_sign2(crt, ca, ca_key, GNUTLS_DIG_UNKNOWN, 0) >= 0);
        gnutls_x509_crt_deinit(ca);
        gnutls_x509_privkey_deinit(ca_key);
    }
    gnutls_datum_t pem;
    assert_true(gnutls_x509_crt_export2(crt, GNUTLS_X509_FMT_PEM, &pem) >= 0);
    write_file(path, pem.data, pem.size);
    gnutls_free(pem.data);
    gnutls_x509_crt_deinit(crt);
}

/* Loads the identity in f's directory, expecting success. */
static identity *load(fx *f)
{
    identity *id = NULL;
    int rc = identity_load_or_create(&f->cfg, &id, f->err, sizeof f->err);
    if (rc != IDENTITY_OK) {
        fprintf(stderr, "identity_load_or_create: %d %s\n", rc, f->err);
    }
    assert_int_equal(rc, IDENTITY_OK);
    assert_non_null(id);
    return id;
}

/* Expects failure with code and a message containing needle. */
static void load_fails(fx *f, int code, const char *needle)
{
    identity *id = (identity *)1;
    int rc = identity_load_or_create(&f->cfg, &id, f->err, sizeof f->err);
    if (rc != code || strstr(f->err, needle) == NULL) {
        fprintf(stderr, "expected %d with \"%s\", got %d: %s\n", code, needle, rc, f->err);
    }
    assert_int_equal(rc, code);
    assert_null(id);
    assert_non_null(strstr(f->err, needle));
}

/* ---- first start, reload, node ID --------------------------------------------------------- */

static void test_first_start_creates_files_0600(void **state)
{
    fx *f = *state;
    char sub[300];
    snprintf(sub, sizeof sub, "%s/a/b", f->dir); /* missing directories are created */
    f->cfg.data_dir = sub;
    identity *id = load(f);
    assert_true(identity_created(id));
    char cert[400];
    char key[400];
    snprintf(cert, sizeof cert, "%s/cert.pem", sub);
    snprintf(key, sizeof key, "%s/key.pem", sub);
    assert_string_equal(identity_cert_path(id), cert);
    assert_string_equal(identity_key_path(id), key);
    assert_int_equal(mode_of(cert), 0600);
    assert_int_equal(mode_of(key), 0600);
    assert_int_equal(mode_of(sub), 0700);
    assert_string_equal(identity_key_type(id), "EdDSA (Ed25519)");
    assert_int_equal(count_tmp_files(f->dir), 0);
    size_t n = 0;
    assert_non_null(identity_cert_chain(id, &n));
    assert_int_equal(n, 1);
    size_t len = 0;
    const char *pem = identity_cert_pem(id, &len);
    assert_int_equal(strlen(pem), len);
    assert_non_null(strstr(pem, "-----BEGIN CERTIFICATE-----"));
    pem = identity_key_pem(id, &len);
    assert_int_equal(strlen(pem), len);
    assert_non_null(strstr(pem, "-----BEGIN PRIVATE KEY-----"));
    /* The certificate: v3, self-signed, default subject, CA:FALSE, validity 3650 days from an
     * hour ago. */
    gnutls_x509_crt_t crt = identity_cert(id);
    assert_int_equal(gnutls_x509_crt_get_version(crt), 3);
    char dn[256];
    size_t dnlen = sizeof dn;
    assert_true(gnutls_x509_crt_get_dn(crt, dn, &dnlen) >= 0);
    assert_string_equal(dn, "CN=macula node");
    unsigned ca = 1;
    assert_int_equal(gnutls_x509_crt_get_basic_constraints(crt, NULL, &ca, NULL), 0);
    assert_int_equal(ca, 0);
    unsigned verify = 0;
    assert_true(gnutls_x509_crt_verify(crt, &crt, 1, 0, &verify) >= 0);
    assert_int_equal(verify, 0);
    time_t now = time(NULL);
    time_t nb = gnutls_x509_crt_get_activation_time(crt);
    time_t na = gnutls_x509_crt_get_expiration_time(crt);
    assert_true(nb <= now - 3500 && nb >= now - 3700);
    assert_true(na >= now + 3650L * 86400 - 100 && na <= now + 3650L * 86400 + 100);
    identity_free(id);
}

static void test_reload_same_node_id(void **state)
{
    fx *f = *state;
    identity *a = load(f);
    char ha[65];
    identity_node_id_hex(a, ha);
    assert_int_equal(strlen(ha), 64);
    identity *b = load(f);
    assert_false(identity_created(b));
    char hb[65];
    identity_node_id_hex(b, hb);
    assert_string_equal(ha, hb);
    assert_memory_equal(identity_node_id(a), identity_node_id(b), IDENTITY_ID_LEN);
    size_t la;
    size_t lb;
    const uint8_t *da = identity_cert_der(a, &la);
    const uint8_t *db = identity_cert_der(b, &lb);
    assert_int_equal(la, lb);
    assert_memory_equal(da, db, la);
    identity_free(a);
    identity_free(b);
}

static void test_node_id_is_sha256_of_spki(void **state)
{
    NEED_OPENSSL();
    fx *f = *state;
    identity *id = load(f);
    char hex[65];
    identity_node_id_hex(id, hex);
    char expect[65];
    openssl_id_of_cert(identity_cert_path(id), expect);
    assert_string_equal(hex, expect);
    openssl_id_of_key(identity_key_path(id), expect);
    assert_string_equal(hex, expect);
    /* The same from the DER (as a peer's certificate arrives) and from the object. */
    uint8_t raw[IDENTITY_ID_LEN];
    size_t len = 0;
    const uint8_t *der = identity_cert_der(id, &len);
    assert_int_equal(identity_node_id_from_cert_der(der, len, raw), IDENTITY_OK);
    assert_memory_equal(raw, identity_node_id(id), IDENTITY_ID_LEN);
    memset(raw, 0, sizeof raw);
    assert_int_equal(identity_node_id_from_crt(identity_cert(id), raw), IDENTITY_OK);
    assert_memory_equal(raw, identity_node_id(id), IDENTITY_ID_LEN);
    identity_free(id);
}

static void test_cert_deleted_reissued_same_id(void **state)
{
    fx *f = *state;
    identity *a = load(f);
    char ha[65];
    identity_node_id_hex(a, ha);
    char serial_a[64];
    size_t sl = sizeof serial_a;
    assert_true(gnutls_x509_crt_get_serial(identity_cert(a), serial_a, &sl) >= 0);
    assert_int_equal(unlink(identity_cert_path(a)), 0);
    identity *b = load(f);
    assert_true(identity_created(b));
    char hb[65];
    identity_node_id_hex(b, hb);
    assert_string_equal(ha, hb);
    char serial_b[64];
    size_t sl2 = sizeof serial_b;
    assert_true(gnutls_x509_crt_get_serial(identity_cert(b), serial_b, &sl2) >= 0);
    assert_false(sl == sl2 && memcmp(serial_a, serial_b, sl) == 0);
    identity_free(a);
    identity_free(b);
}

/* ---- keys and certificates made by openssl ------------------------------------------------ */

/* Loads a key made by `cmd` (with %s for the output path), issues a certificate, and checks the
 * node ID against openssl's hash of the key's public part. */
static void load_openssl_key(fx *f, const char *gen, const char *type)
{
    char key[400];
    path_in(f, "key.pem", key, sizeof key);
    sh(gen, key);
    sh("chmod 600 '%s'", key);
    identity *id = load(f);
    assert_true(identity_created(id)); /* the certificate was issued */
    assert_string_equal(identity_key_type(id), type);
    char hex[65];
    char expect[65];
    identity_node_id_hex(id, hex);
    openssl_id_of_key(key, expect);
    assert_string_equal(hex, expect);
    openssl_id_of_cert(identity_cert_path(id), expect);
    assert_string_equal(hex, expect);
    assert_int_equal(f->nwarn, 0);
    identity_free(id);
    /* And it reloads. */
    id = load(f);
    assert_false(identity_created(id));
    char again[65];
    identity_node_id_hex(id, again);
    assert_string_equal(hex, again);
    identity_free(id);
}

static void test_openssl_ed25519_pkcs8(void **state)
{
    NEED_OPENSSL();
    load_openssl_key(*state, "openssl genpkey -algorithm ed25519 -out '%s' 2>/dev/null",
                     "EdDSA (Ed25519)");
}

static void test_openssl_p256_pkcs8(void **state)
{
    NEED_OPENSSL();
    load_openssl_key(*state,
                     "openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out '%s' "
                     "2>/dev/null",
                     "EC/ECDSA");
}

static void test_openssl_p256_sec1_with_params(void **state)
{
    NEED_OPENSSL();
    /* "EC PARAMETERS" block followed by "EC PRIVATE KEY" (SEC1). */
    load_openssl_key(*state, "openssl ecparam -name prime256v1 -genkey -out '%s' 2>/dev/null",
                     "EC/ECDSA");
}

static void test_openssl_p384_sec1(void **state)
{
    NEED_OPENSSL();
    load_openssl_key(*state, "openssl ecparam -name secp384r1 -genkey -noout -out '%s' 2>/dev/null",
                     "EC/ECDSA");
}

static void test_openssl_rsa_pkcs1(void **state)
{
    NEED_OPENSSL();
    load_openssl_key(*state, "openssl genrsa -traditional -out '%s' 2048 2>/dev/null", "RSA");
}

static void test_openssl_der_key(void **state)
{
    NEED_OPENSSL();
    load_openssl_key(*state,
                     "openssl genpkey -algorithm ed25519 -outform DER -out '%s' 2>/dev/null",
                     "EdDSA (Ed25519)");
}

static void test_openssl_cert_and_key(void **state)
{
    NEED_OPENSSL();
    fx *f = *state;
    char key[400];
    char cert[400];
    path_in(f, "key.pem", key, sizeof key);
    path_in(f, "cert.pem", cert, sizeof cert);
    sh("openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout '%s' "
       "-out '%s' -days 30 -subj /CN=ops-made 2>/dev/null && chmod 600 '%s'",
       key, cert, key);
    identity *id = load(f);
    assert_false(identity_created(id));
    char hex[65];
    char expect[65];
    identity_node_id_hex(id, hex);
    openssl_id_of_cert(cert, expect);
    assert_string_equal(hex, expect);
    identity_free(id);
    /* The same certificate as DER loads too, to the same node ID. */
    char der[400];
    path_in(f, "cert.der", der, sizeof der);
    sh("openssl x509 -in '%s' -outform DER -out '%s'", cert, der);
    f->cfg.cert_path = der;
    id = load(f);
    char hex2[65];
    identity_node_id_hex(id, hex2);
    assert_string_equal(hex, hex2);
    identity_free(id);
}

static void test_chain_file(void **state)
{
    fx *f = *state;
    identity *a = load(f);
    char hex[65];
    identity_node_id_hex(a, hex);
    /* Append another (unrelated) certificate: a chain, leaf first. */
    char other_dir[300];
    snprintf(other_dir, sizeof other_dir, "%s/other", f->dir);
    identity_config oc = {.data_dir = other_dir, .warn = on_warn, .warn_ctx = f};
    identity *b = NULL;
    assert_int_equal(identity_load_or_create(&oc, &b, NULL, 0), IDENTITY_OK);
    size_t len1;
    size_t len2;
    const char *p1 = identity_cert_pem(a, &len1);
    const char *p2 = identity_cert_pem(b, &len2);
    char *both = malloc(len1 + len2);
    memcpy(both, p1, len1);
    memcpy(both + len1, p2, len2);
    write_file(identity_cert_path(a), both, len1 + len2);
    free(both);
    identity *c = load(f);
    size_t n = 0;
    identity_cert_chain(c, &n);
    assert_int_equal(n, 2);
    char hc[65];
    identity_node_id_hex(c, hc);
    assert_string_equal(hex, hc);
    size_t lc;
    const char *pc = identity_cert_pem(c, &lc);
    assert_int_equal(lc, len1 + len2);
    assert_memory_equal(pc, p1, len1);
    gnutls_certificate_credentials_t cred = NULL;
    assert_int_equal(identity_credentials(c, &cred), IDENTITY_OK);
    assert_non_null(cred);
    gnutls_certificate_free_credentials(cred);
    identity_free(a);
    identity_free(b);
    identity_free(c);
}

/* ---- errors ------------------------------------------------------------------------------- */

static void test_mismatch(void **state)
{
    fx *f = *state;
    identity *a = load(f);
    char other_dir[300];
    snprintf(other_dir, sizeof other_dir, "%s/other", f->dir);
    identity_config oc = {.data_dir = other_dir};
    identity *b = NULL;
    assert_int_equal(identity_load_or_create(&oc, &b, NULL, 0), IDENTITY_OK);
    f->cfg.cert_path = identity_cert_path(b); /* b's certificate with a's key */
    load_fails(f, IDENTITY_EMISMATCH, identity_cert_path(b));
    assert_non_null(strstr(f->err, "not the one of the private key"));
    identity_free(a);
    identity_free(b);
}

static void test_missing_key(void **state)
{
    fx *f = *state;
    identity *a = load(f);
    char cert_pem[4096];
    size_t len;
    snprintf(cert_pem, sizeof cert_pem, "%s", identity_cert_pem(a, &len));
    assert_int_equal(unlink(identity_key_path(a)), 0);
    load_fails(f, IDENTITY_EMISSING, "key.pem is missing");
    /* Nothing was replaced. */
    char key[400];
    path_in(f, "key.pem", key, sizeof key);
    assert_int_equal(access(key, F_OK), -1);
    identity_free(a);
}

static void test_garbage_and_empty(void **state)
{
    fx *f = *state;
    identity *a = load(f);
    char cert[400];
    char key[400];
    snprintf(cert, sizeof cert, "%s", identity_cert_path(a));
    snprintf(key, sizeof key, "%s", identity_key_path(a));
    identity_free(a);

    write_file(cert, "hello, not a certificate\n", 25);
    load_fails(f, IDENTITY_EPARSE, cert);
    assert_non_null(strstr(f->err, "not an X.509 certificate"));
    write_file(cert, "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n", 58);
    load_fails(f, IDENTITY_EPARSE, "not an X.509 certificate");
    write_file(cert, "", 0);
    load_fails(f, IDENTITY_EPARSE, "empty file");

    assert_int_equal(unlink(cert), 0);
    uint8_t junk[300];
    for (size_t i = 0; i < sizeof junk; i++) {
        junk[i] = (uint8_t)(i * 7 + 3);
    }
    write_file(key, junk, sizeof junk);
    load_fails(f, IDENTITY_EPARSE, key);
    assert_non_null(strstr(f->err, "not an unencrypted private key"));
    /* Nothing was written next to the bad key. */
    assert_int_equal(access(cert, F_OK), -1);
    assert_int_equal(count_tmp_files(f->dir), 0);
    /* A directory where the key should be. */
    assert_int_equal(unlink(key), 0);
    assert_int_equal(mkdir(key, 0700), 0);
    load_fails(f, IDENTITY_EIO, "not a regular file");
    assert_int_equal(rmdir(key), 0);
}

static void test_oversized_files(void **state)
{
    fx *f = *state;
    identity *a = load(f);
    char cert[400];
    char key[400];
    snprintf(cert, sizeof cert, "%s", identity_cert_path(a));
    snprintf(key, sizeof key, "%s", identity_key_path(a));
    size_t klen;
    char *kp = strdup(identity_key_pem(a, &klen));
    identity_free(a);
    /* A valid PEM padded past the limit is refused before parsing. */
    size_t big = IDENTITY_MAX_FILE + 1;
    char *buf = malloc(big);
    memset(buf, '\n', big);
    memcpy(buf, kp, klen);
    write_file(key, buf, big);
    load_fails(f, IDENTITY_EPARSE, "larger than the limit");
    assert_non_null(strstr(f->err, key));
    write_file(key, buf, big - 1); /* exactly at the limit: accepted */
    identity *b = load(f);
    identity_free(b);
    write_file(cert, buf, big);
    load_fails(f, IDENTITY_EPARSE, "larger than the limit");
    free(buf);
    free(kp);
}

static void test_encrypted_key_refused(void **state)
{
    NEED_OPENSSL();
    fx *f = *state;
    char key[400];
    path_in(f, "key.pem", key, sizeof key);
    sh("openssl genpkey -algorithm ed25519 -aes256 -pass pass:secret -out '%s' 2>/dev/null", key);
    load_fails(f, IDENTITY_EPARSE, "encrypted");
    /* (genpkey ignores the cipher for DER output: pkcs8 -topk8 encrypts it.) */
    sh("openssl genpkey -algorithm ed25519 2>/dev/null | openssl pkcs8 -topk8 -v2 aes256 "
       "-passout pass:secret -outform DER -out '%s' 2>/dev/null",
       key);
    load_fails(f, IDENTITY_EPARSE, key);
}

static void test_bad_config(void **state)
{
    fx *f = *state;
    identity *id = (identity *)1;
    f->cfg.cert_validity_days = -1;
    load_fails(f, IDENTITY_EINVAL, "cert_validity_days=-1");
    f->cfg.cert_validity_days = IDENTITY_MAX_VALIDITY_DAYS + 1;
    load_fails(f, IDENTITY_EINVAL, "allowed is 1 to 36500");
    f->cfg.cert_validity_days = 0;
    identity_config none = {0};
    assert_int_equal(identity_load_or_create(&none, &id, NULL, 0), IDENTITY_EINVAL);
    assert_null(id);
    assert_int_equal(identity_load_or_create(NULL, &id, NULL, 0), IDENTITY_EINVAL);
    f->cfg.subject = "this is not a DN";
    load_fails(f, IDENTITY_EINVAL, "RFC 4514");
    f->cfg.subject = NULL;
    static const char *const bad_names[] = {"ok.example", "bad name", NULL};
    f->cfg.dns_names = bad_names;
    load_fails(f, IDENTITY_EINVAL, "\"bad name\" is not valid");
    f->cfg.dns_names = NULL;
    char same[400];
    path_in(f, "same.pem", same, sizeof same);
    f->cfg.cert_path = same;
    f->cfg.key_path = same;
    load_fails(f, IDENTITY_EINVAL, "different files");
    f->cfg.expired = (identity_expired_policy)42;
    f->cfg.key_path = NULL;
    load_fails(f, IDENTITY_EINVAL, "expiry policy");
    /* Nothing was created by the refused calls. */
    char key[400];
    path_in(f, "key.pem", key, sizeof key);
    assert_int_equal(access(key, F_OK), -1);
}

static void test_strerror(void **state)
{
    (void)state;
    assert_string_equal(identity_strerror(IDENTITY_OK), "ok");
    assert_string_equal(identity_strerror(IDENTITY_EINVAL), "invalid argument");
    assert_string_equal(identity_strerror(IDENTITY_EIO), "I/O error");
    assert_string_equal(identity_strerror(IDENTITY_EPARSE), "malformed key or certificate");
    assert_string_equal(identity_strerror(IDENTITY_EMISMATCH),
                        "certificate does not match private key");
    assert_string_equal(identity_strerror(IDENTITY_EEXPIRED), "certificate expired");
    assert_string_equal(identity_strerror(IDENTITY_EMISSING), "private key missing");
    assert_string_equal(identity_strerror(IDENTITY_ECRYPTO), "cryptographic operation failed");
    assert_string_equal(identity_strerror(IDENTITY_ENOMEM), "out of memory");
    assert_string_equal(identity_strerror(-99), "unknown error");
}

static void test_node_id_from_bad_der(void **state)
{
    (void)state;
    uint8_t out[IDENTITY_ID_LEN];
    memset(out, 0xab, sizeof out);
    const uint8_t junk[] = {0x30, 0x82, 0xff, 0xff, 0x30, 0x03, 0x02, 0x01, 0x01};
    assert_int_equal(identity_node_id_from_cert_der(junk, sizeof junk, out), IDENTITY_EPARSE);
    assert_int_equal(identity_node_id_from_cert_der(junk, 0, out), IDENTITY_EPARSE);
    assert_int_equal(identity_node_id_from_cert_der(NULL, 3, out), IDENTITY_EINVAL);
    assert_int_equal(identity_node_id_from_crt(NULL, out), IDENTITY_EINVAL);
}

/* ---- hex ---------------------------------------------------------------------------------- */

static void test_hex(void **state)
{
    (void)state;
    uint8_t id[IDENTITY_ID_LEN];
    for (size_t i = 0; i < sizeof id; i++) {
        id[i] = (uint8_t)(i * 37 + 0x0f);
    }
    char hex[IDENTITY_ID_HEX_LEN + 1];
    identity_id_to_hex(id, hex);
    assert_int_equal(strlen(hex), 64);
    assert_string_equal(hex, "0f34597ea3c8ed12375c81a6cbf0153a5f84a9cef3183d6287acd1f61b40658a");
    uint8_t back[IDENTITY_ID_LEN];
    assert_int_equal(identity_hex_to_id(hex, back), IDENTITY_OK);
    assert_memory_equal(id, back, sizeof id);
    /* Upper case is accepted. */
    char upper[65];
    for (size_t i = 0; i < 65; i++) {
        upper[i] = (char)((hex[i] >= 'a' && hex[i] <= 'f') ? hex[i] - 32 : hex[i]);
    }
    memset(back, 0, sizeof back);
    assert_int_equal(identity_hex_to_id(upper, back), IDENTITY_OK);
    assert_memory_equal(id, back, sizeof id);
    /* Wrong lengths, a bad digit, trailing text: refused, out unchanged. */
    uint8_t keep[IDENTITY_ID_LEN];
    memset(keep, 0x5a, sizeof keep);
    memcpy(back, keep, sizeof back);
    char bad[80];
    snprintf(bad, sizeof bad, "%.63s", hex);
    assert_int_equal(identity_hex_to_id(bad, back), IDENTITY_EINVAL);
    snprintf(bad, sizeof bad, "%s0", hex);
    assert_int_equal(identity_hex_to_id(bad, back), IDENTITY_EINVAL);
    snprintf(bad, sizeof bad, "%s", hex);
    bad[63] = 'g';
    assert_int_equal(identity_hex_to_id(bad, back), IDENTITY_EINVAL);
    snprintf(bad, sizeof bad, "%s", hex);
    bad[0] = ' ';
    assert_int_equal(identity_hex_to_id(bad, back), IDENTITY_EINVAL);
    assert_int_equal(identity_hex_to_id("", back), IDENTITY_EINVAL);
    assert_int_equal(identity_hex_to_id(NULL, back), IDENTITY_EINVAL);
    assert_memory_equal(back, keep, sizeof keep);
}

/* ---- expiry ------------------------------------------------------------------------------- */

/* Replaces f's certificate by one for the same key expired yesterday (issuer NULL: self). */
static void make_expired(fx *f, identity *id, const char *issuer)
{
    time_t now = time(NULL);
    write_cert(identity_cert_path(id), identity_key(id), now - 10 * 86400L, now - 86400,
               "CN=old node,O=test", issuer);
}

static void test_expired_renew(void **state)
{
    fx *f = *state;
    identity *a = load(f);
    char ha[65];
    identity_node_id_hex(a, ha);
    make_expired(f, a, NULL);
    f->cfg.cert_validity_days = 7;
    identity *b = load(f);
    assert_true(identity_created(b));
    assert_int_equal(f->nwarn, 1);
    assert_non_null(strstr(f->warnings, "renewed"));
    char hb[65];
    identity_node_id_hex(b, hb);
    assert_string_equal(ha, hb);
    time_t now = time(NULL);
    time_t na = gnutls_x509_crt_get_expiration_time(identity_cert(b));
    assert_true(na > now + 6 * 86400L && na < now + 8 * 86400L);
    gnutls_datum_t dn = {NULL, 0};
    assert_true(gnutls_x509_crt_get_dn3(identity_cert(b), &dn, 0) >= 0);
    assert_string_equal((const char *)dn.data, "CN=old node,O=test"); /* same subject */
    gnutls_free(dn.data);
    assert_int_equal(mode_of(identity_cert_path(b)), 0600);
    assert_int_equal(count_tmp_files(f->dir), 0);
    /* The renewed file is what a new load finds, without renewing again. */
    identity *c = load(f);
    assert_false(identity_created(c));
    assert_int_equal(f->nwarn, 1);
    assert_true(gnutls_x509_crt_get_expiration_time(identity_cert(c)) == na);
    identity_free(a);
    identity_free(b);
    identity_free(c);
}

static void test_expired_refuse_and_warn(void **state)
{
    fx *f = *state;
    identity *a = load(f);
    make_expired(f, a, NULL);
    f->cfg.expired = IDENTITY_EXPIRED_REFUSE;
    load_fails(f, IDENTITY_EEXPIRED, identity_cert_path(a));
    assert_non_null(strstr(f->err, "expired on"));
    assert_non_null(strstr(f->err, "delete the certificate file"));
    f->cfg.expired = IDENTITY_EXPIRED_WARN;
    identity *b = load(f);
    assert_false(identity_created(b));
    assert_int_equal(f->nwarn, 1);
    assert_non_null(strstr(f->warnings, "loading it anyway"));
    assert_true(gnutls_x509_crt_get_expiration_time(identity_cert(b)) < time(NULL));
    identity_free(a);
    identity_free(b);
}

static void test_expired_ca_issued_not_renewed(void **state)
{
    fx *f = *state;
    identity *a = load(f);
    make_expired(f, a, "CN=some ca");
    load_fails(f, IDENTITY_EEXPIRED, "CA-issued");
    identity_free(a);
}

static void test_not_yet_valid_warns(void **state)
{
    fx *f = *state;
    identity *a = load(f);
    time_t now = time(NULL);
    write_cert(identity_cert_path(a), identity_key(a), now + 86400, now + 10 * 86400L, "CN=future",
               NULL);
    f->cfg.expired = IDENTITY_EXPIRED_REFUSE;
    identity *b = load(f);
    assert_int_equal(f->nwarn, 1);
    assert_non_null(strstr(f->warnings, "clock may be behind"));
    identity_free(a);
    identity_free(b);
}

/* ---- files, permissions, paths ------------------------------------------------------------ */

static void test_umask_does_not_matter(void **state)
{
    fx *f = *state;
    static const mode_t masks[] = {0, 022, 0777};
    for (size_t i = 0; i < sizeof masks / sizeof masks[0]; i++) {
        char sub[300];
        snprintf(sub, sizeof sub, "%s/u%zu/data", f->dir, i);
        f->cfg.data_dir = sub;
        mode_t old = umask(masks[i]);
        identity *id = load(f);
        umask(old);
        assert_int_equal(mode_of(identity_cert_path(id)), 0600);
        assert_int_equal(mode_of(identity_key_path(id)), 0600);
        assert_int_equal(mode_of(sub), 0700);
        identity_free(id);
    }
}

static void test_explicit_paths(void **state)
{
    fx *f = *state;
    char cert[400];
    char key[400];
    snprintf(cert, sizeof cert, "%s/tls/c/node.crt", f->dir);
    snprintf(key, sizeof key, "%s/private/node.key", f->dir);
    f->cfg.data_dir = NULL;
    f->cfg.cert_path = cert;
    f->cfg.key_path = key;
    static const char *const names[] = {"node1.example", "localhost", NULL};
    f->cfg.dns_names = names;
    f->cfg.subject = "CN=node one,O=macula";
    identity *id = load(f);
    assert_string_equal(identity_cert_path(id), cert);
    assert_string_equal(identity_key_path(id), key);
    assert_int_equal(mode_of(cert), 0600);
    assert_int_equal(mode_of(key), 0600);
    char dir[400];
    snprintf(dir, sizeof dir, "%s/tls/c", f->dir);
    assert_int_equal(mode_of(dir), 0700);
    char san[128];
    size_t sl = sizeof san;
    assert_int_equal(gnutls_x509_crt_get_subject_alt_name(identity_cert(id), 0, san, &sl, NULL),
                     GNUTLS_SAN_DNSNAME);
    assert_string_equal(san, "node1.example");
    sl = sizeof san;
    assert_int_equal(gnutls_x509_crt_get_subject_alt_name(identity_cert(id), 1, san, &sl, NULL),
                     GNUTLS_SAN_DNSNAME);
    assert_string_equal(san, "localhost");
    gnutls_datum_t dn = {NULL, 0};
    assert_true(gnutls_x509_crt_get_dn3(identity_cert(id), &dn, 0) >= 0);
    assert_string_equal((const char *)dn.data, "CN=node one,O=macula");
    gnutls_free(dn.data);
    identity_free(id);
    /* The data directory was not needed and not created. */
    char dd[400];
    snprintf(dd, sizeof dd, "%s/cert.pem", f->dir);
    assert_int_equal(access(dd, F_OK), -1);
}

static void test_key_readable_by_others_warns(void **state)
{
    fx *f = *state;
    identity *a = load(f);
    assert_int_equal(chmod(identity_key_path(a), 0644), 0);
    identity *b = load(f);
    assert_int_equal(f->nwarn, 1);
    assert_non_null(strstr(f->warnings, "readable by group or others"));
    identity_free(a);
    identity_free(b);
}

static void test_default_data_dir(void **state)
{
    (void)state;
    char *saved[3];
    static const char *const vars[] = {"MACULA_DATA_DIR", "XDG_DATA_HOME", "HOME"};
    for (size_t i = 0; i < 3; i++) {
        const char *v = getenv(vars[i]);
        saved[i] = v ? strdup(v) : NULL;
    }
    char buf[256];
    setenv("MACULA_DATA_DIR", "/srv/m", 1);
    setenv("XDG_DATA_HOME", "/x", 1);
    setenv("HOME", "/home/u", 1);
    assert_int_equal(identity_default_data_dir(buf, sizeof buf), IDENTITY_OK);
    assert_string_equal(buf, "/srv/m");
    setenv("MACULA_DATA_DIR", "", 1); /* empty counts as unset */
    assert_int_equal(identity_default_data_dir(buf, sizeof buf), IDENTITY_OK);
    assert_string_equal(buf, "/x/macula");
    setenv("XDG_DATA_HOME", "relative", 1); /* not absolute: ignored */
    assert_int_equal(identity_default_data_dir(buf, sizeof buf), IDENTITY_OK);
    assert_string_equal(buf, "/home/u/.local/share/macula");
    unsetenv("XDG_DATA_HOME");
    assert_int_equal(identity_default_data_dir(buf, 10), IDENTITY_EINVAL); /* too small */
    unsetenv("HOME");
    unsetenv("MACULA_DATA_DIR");
    assert_int_equal(identity_default_data_dir(buf, sizeof buf), IDENTITY_EINVAL);
    for (size_t i = 0; i < 3; i++) {
        if (saved[i]) {
            setenv(vars[i], saved[i], 1);
            free(saved[i]);
        } else {
            unsetenv(vars[i]);
        }
    }
}

/* Several processes starting at once on an empty directory end up with one key. */
static void test_concurrent_first_start(void **state)
{
    fx *f = *state;
    enum { N = 6 };
    int fds[N][2];
    pid_t pids[N];
    for (int i = 0; i < N; i++) {
        assert_int_equal(pipe(fds[i]), 0);
        pids[i] = fork();
        assert_true(pids[i] >= 0);
        if (pids[i] == 0) {
            close(fds[i][0]);
            identity *id = NULL;
            char hex[65] = "";
            if (identity_load_or_create(&f->cfg, &id, NULL, 0) == IDENTITY_OK) {
                identity_node_id_hex(id, hex);
                identity_free(id);
            }
            ssize_t w = write(fds[i][1], hex, 64);
            _exit(w == 64 ? 0 : 1);
        }
        close(fds[i][1]);
    }
    char first[65] = "";
    for (int i = 0; i < N; i++) {
        char hex[65] = "";
        ssize_t r = read(fds[i][0], hex, 64);
        close(fds[i][0]);
        int st = 0;
        waitpid(pids[i], &st, 0);
        assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
        assert_int_equal(r, 64);
        if (i == 0) {
            memcpy(first, hex, 65);
        }
        assert_string_equal(hex, first);
    }
    identity *id = load(f);
    char hex[65];
    identity_node_id_hex(id, hex);
    assert_string_equal(hex, first);
    identity_free(id);
    assert_int_equal(count_tmp_files(f->dir), 0);
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(test_first_start_creates_files_0600),
        T(test_reload_same_node_id),
        T(test_node_id_is_sha256_of_spki),
        T(test_cert_deleted_reissued_same_id),
        T(test_openssl_ed25519_pkcs8),
        T(test_openssl_p256_pkcs8),
        T(test_openssl_p256_sec1_with_params),
        T(test_openssl_p384_sec1),
        T(test_openssl_rsa_pkcs1),
        T(test_openssl_der_key),
        T(test_openssl_cert_and_key),
        T(test_chain_file),
        T(test_mismatch),
        T(test_missing_key),
        T(test_garbage_and_empty),
        T(test_oversized_files),
        T(test_encrypted_key_refused),
        T(test_bad_config),
        T(test_strerror),
        T(test_node_id_from_bad_der),
        T(test_hex),
        T(test_expired_renew),
        T(test_expired_refuse_and_warn),
        T(test_expired_ca_issued_not_renewed),
        T(test_not_yet_valid_warns),
        T(test_umask_does_not_matter),
        T(test_explicit_paths),
        T(test_key_readable_by_others_warns),
        T(test_default_data_dir),
        T(test_concurrent_first_start),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
