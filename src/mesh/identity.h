/*
 * src/mesh/identity.h — the node's TLS identity: key, certificate, node ID (MESH.md
 * "Identity and TLS").
 *
 * Node ID = SHA-256 of the certificate's SubjectPublicKeyInfo DER: 32 raw bytes on the wire
 * and in the DHT, 64 lowercase hex characters for people. It depends only on the public key,
 * so it is the same for any certificate issued for the same key (renewal keeps it), and any
 * key type works (Ed25519 is what this module generates; P-256/P-384 ECDSA and RSA keys made
 * elsewhere load too).
 *
 * Files. The key and the certificate are PEM files: `key.pem` and `cert.pem` in the data
 * directory, or explicit paths (MACULA_KEY_PATH / MACULA_CERT_PATH). identity_load_or_create:
 *
 *   key and cert both present   load both; the cert's public key must be the key's
 *                               (IDENTITY_EMISMATCH otherwise)
 *   both absent                 first start: generate an Ed25519 key and a self-signed X.509
 *                               v3 certificate, write key then cert
 *   key present, cert absent    issue a new self-signed certificate for the existing key
 *                               (same node ID). Deleting cert.pem is how to renew by hand.
 *   cert present, key absent    IDENTITY_EMISSING: never replace a key a certificate was made
 *                               for (that would silently change the node ID)
 *
 * Writing is atomic and never truncates anything: the PEM goes to `<path>.<random>.tmp` in the
 * same directory (O_CREAT|O_EXCL, mode 0600, fchmod 0600 whatever the umask), is fsync'ed, then
 * hard-linked to its final name (so a file another process created meanwhile is never
 * overwritten; the load is then retried and finds it; on filesystems without hard links it is
 * renamed instead), the temp name is removed and the directory fsync'ed (best effort). A failure
 * at any point removes the temp file and leaves existing files untouched. Missing directories
 * (the data directory, or an explicit file's parent) are created with mode 0700; existing ones
 * are not changed. Two nodes starting at once on an empty directory end up sharing one key.
 *
 * Accepted input: PEM (a key as PKCS#8 "PRIVATE KEY", SEC1 "EC PRIVATE KEY" or PKCS#1 "RSA
 * PRIVATE KEY"; a certificate file may hold a chain, leaf first), or DER for a single key or
 * certificate. Encrypted keys are refused. Files larger than IDENTITY_MAX_FILE are refused. A
 * key file readable by group or others is loaded with a warning.
 *
 * Validity. Generated certificates are valid from one hour before now (clock skew between
 * peers) for cfg->cert_validity_days days. At load, a certificate whose notAfter has passed is
 * handled by cfg->expired:
 *   IDENTITY_EXPIRED_RENEW (default)  if the certificate is self-issued and alone in its file,
 *       a new one is issued for the same key (same subject, same node ID; validity and SANs
 *       from cfg) and atomically replaces the file, with a warning. A CA-issued certificate
 *       (or a chain) cannot be renewed here: IDENTITY_EEXPIRED.
 *   IDENTITY_EXPIRED_REFUSE  IDENTITY_EEXPIRED; the message names the file, the date and the
 *       fix (delete the certificate file to re-issue it from the same key).
 *   IDENTITY_EXPIRED_WARN    load it anyway, with a warning (peers that check dates refuse it).
 * A certificate that is not yet valid (notBefore in the future: this machine's clock is
 * behind) is loaded with a warning whatever the policy: peers with correct clocks accept it.
 *
 * Warnings go to cfg->warn, or to stderr as "macula: identity: ..." when it is NULL.
 *
 * Errors are negative IDENTITY_E* codes; functions taking `char *err, size_t errsize` also
 * write a one-line message naming the file and the problem (err may be NULL). An identity is
 * immutable once made: its accessors may be called from any thread.
 *
 * Links with GnuTLS (libgnutls28-dev).
 */
#ifndef MACULA_MESH_IDENTITY_H
#define MACULA_MESH_IDENTITY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <gnutls/gnutls.h>
#include <gnutls/x509.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ---- errors (negative values; identity_strerror describes them) ------------------------- */
enum {
    IDENTITY_OK = 0,
    IDENTITY_EINVAL = -1,    /* bad argument or configuration value */
    IDENTITY_EIO = -2,       /* a file or directory could not be read, written or created */
    IDENTITY_EPARSE = -3,    /* not a PEM/DER key or certificate, encrypted key, too large */
    IDENTITY_EMISMATCH = -4, /* the certificate's public key is not the private key's */
    IDENTITY_EEXPIRED = -5,  /* the certificate has expired (and policy says refuse) */
    IDENTITY_EMISSING = -6,  /* a certificate without its key */
    IDENTITY_ECRYPTO = -7,   /* GnuTLS failed to generate, sign, export or hash */
    IDENTITY_ENOMEM = -8,    /* allocation failed */
};

/* A short description: "ok", "invalid argument", "I/O error", "malformed key or certificate",
 * "certificate does not match private key", "certificate expired", "private key missing",
 * "cryptographic operation failed", "out of memory"; "unknown error" for anything else. */
const char *identity_strerror(int err);

#define IDENTITY_ID_LEN 32     /* raw node ID: SHA-256 */
#define IDENTITY_ID_HEX_LEN 64 /* lowercase hex, without the NUL */
#define IDENTITY_DEFAULT_VALIDITY_DAYS 3650
#define IDENTITY_MAX_VALIDITY_DAYS 36500
#define IDENTITY_DEFAULT_SUBJECT "CN=macula node"
#define IDENTITY_CERT_FILE "cert.pem"
#define IDENTITY_KEY_FILE "key.pem"
#define IDENTITY_MAX_FILE (1u << 20) /* larger key/cert files are refused */

typedef enum identity_expired_policy {
    IDENTITY_EXPIRED_RENEW = 0, /* default; see the top of this file */
    IDENTITY_EXPIRED_REFUSE,
    IDENTITY_EXPIRED_WARN,
} identity_expired_policy;

/* Zero-initialise and set what you need; every field has a default. */
typedef struct identity_config {
    const char *data_dir;   /* where cert.pem / key.pem live; needed unless both paths are set */
    const char *cert_path;  /* NULL: <data_dir>/cert.pem */
    const char *key_path;   /* NULL: <data_dir>/key.pem */
    int cert_validity_days; /* 0: IDENTITY_DEFAULT_VALIDITY_DAYS; else 1..MAX_VALIDITY_DAYS */
    const char *subject;    /* RFC 4514 DN for generated certs; NULL: IDENTITY_DEFAULT_SUBJECT */
    const char *const *dns_names; /* NULL-terminated subjectAltName DNS names; NULL: none.
                                   * A bad subject or name: IDENTITY_EINVAL, nothing written. */
    identity_expired_policy expired;
    void (*warn)(void *ctx, const char *msg); /* NULL: stderr */
    void *warn_ctx;
} identity_config;

typedef struct identity identity;

/* Loads the identity, creating it on first start (see the top of this file). On success
 * returns IDENTITY_OK and *out (free with identity_free); on failure returns a negative code,
 * leaves *out NULL and writes a message into err. */
int identity_load_or_create(const identity_config *cfg, identity **out, char *err, size_t errsize);

/* NULL is a no-op. */
void identity_free(identity *id);

/* The 32 raw bytes of the node ID, valid while id lives. */
const uint8_t *identity_node_id(const identity *id);
/* The node ID as 64 lowercase hex digits and a NUL. */
void identity_node_id_hex(const identity *id, char out[IDENTITY_ID_HEX_LEN + 1]);

/* True when this call generated the key or issued (or renewed) the certificate. */
bool identity_created(const identity *id);
/* The files the identity was loaded from / written to. */
const char *identity_cert_path(const identity *id);
const char *identity_key_path(const identity *id);
/* "EdDSA (Ed25519)", "EC/ECDSA", "RSA", ...: GnuTLS's name of the key's algorithm. */
const char *identity_key_type(const identity *id);

/* The leaf certificate and the private key as GnuTLS objects, owned by id (do not deinit). */
gnutls_x509_crt_t identity_cert(const identity *id);
gnutls_x509_privkey_t identity_key(const identity *id);
/* The certificate chain as loaded (leaf first; one certificate for a generated identity). */
const gnutls_x509_crt_t *identity_cert_chain(const identity *id, size_t *count);

/* PEM text (NUL-terminated; *len excludes the NUL when len is not NULL), owned by id: the
 * chain's certificates re-exported in order, and the key as unencrypted PKCS#8. */
const char *identity_cert_pem(const identity *id, size_t *len);
const char *identity_key_pem(const identity *id, size_t *len);
/* The leaf certificate's DER, owned by id. */
const uint8_t *identity_cert_der(const identity *id, size_t *len);

/* A new credentials object holding the chain and key (both copied), for a TLS session on
 * either side. The caller frees it with gnutls_certificate_free_credentials. */
int identity_credentials(const identity *id, gnutls_certificate_credentials_t *out);

/* ---- node IDs of other nodes -------------------------------------------------------------- */

/* SHA-256 of the SubjectPublicKeyInfo DER of a DER certificate (a peer's, as GnuTLS hands it
 * over in gnutls_certificate_get_peers()[0]). IDENTITY_EPARSE when it is not a certificate. */
int identity_node_id_from_cert_der(const uint8_t *der, size_t len, uint8_t out[IDENTITY_ID_LEN]);
/* The same for a certificate object. */
int identity_node_id_from_crt(gnutls_x509_crt_t crt, uint8_t out[IDENTITY_ID_LEN]);

/* 32 raw bytes -> 64 lowercase hex digits and a NUL. */
void identity_id_to_hex(const uint8_t id[IDENTITY_ID_LEN], char out[IDENTITY_ID_HEX_LEN + 1]);
/* Exactly 64 hex digits (either case, NUL-terminated, nothing else) -> 32 raw bytes.
 * IDENTITY_EINVAL otherwise, and out is left unchanged. */
int identity_hex_to_id(const char *hex, uint8_t out[IDENTITY_ID_LEN]);

/* The default data directory: $MACULA_DATA_DIR, else $XDG_DATA_HOME/macula (when absolute),
 * else $HOME/.local/share/macula (empty variables count as unset). IDENTITY_EINVAL when none of
 * them is set or buf is too small. */
int identity_default_data_dir(char *buf, size_t size);

#ifdef __cplusplus
}
#endif

#endif
