/*
 * src/mesh/aesgcm.h — AES-128-GCM for QUIC packet protection, on the CPU's AES and
 * carry-less-multiply instructions (design notes: docs/quic.md "Packet protection").
 *
 * Why our own: GnuTLS's AEAD API costs about 1,100 instructions to seal a 16-byte QUIC packet
 * (most of it call overhead around the cipher), and neither GnuTLS 3.7 nor OpenSSL 3.0 in
 * Debian bookworm uses VAES/VPCLMULQDQ, which encrypt and hash four blocks per instruction.
 * The QUIC transport uses this module for 1-RTT packets when the negotiated cipher is
 * AES-128-GCM and aesgcm_impl_get() is not AESGCM_IMPL_NONE; everything else (the TLS
 * handshake, Initial and Handshake packets, other ciphers, other CPUs) stays with GnuTLS.
 *
 * Algorithms: AES-128 (FIPS 197) in GCM (NIST SP 800-38D) with a 96-bit nonce and a 128-bit
 * tag, which is what RFC 9001 5.3 uses. GHASH is computed as POLYVAL (RFC 8452, appendix A):
 * the same field with byte-reversed blocks, so carry-less products need no bit reflection.
 * Every step is constant-time in the key and the data (AES rounds and carry-less multiplies are
 * single instructions; the tag compare does not stop early).
 *
 * Implementations: AESGCM_IMPL_AESNI (AES-NI + PCLMULQDQ + SSE4.1: eight blocks per step),
 * AESGCM_IMPL_VAES (AVX-512 with VAES + VPCLMULQDQ: sixteen blocks per step, for the bulk of
 * inputs of 256 bytes or more). All give identical output; tests check them against GnuTLS.
 * On a CPU without AES-NI and PCLMULQDQ (or not x86-64) the implementation is
 * AESGCM_IMPL_NONE and no function below but aesgcm_impl_get/set may be called.
 *
 * Thread safety: keys are read-only after init and may be shared by threads; the implementation
 * choice is process-wide (aesgcm_impl_set is for tests and benchmarks).
 */
#ifndef MACULA_MESH_AESGCM_H
#define MACULA_MESH_AESGCM_H

#include <stdalign.h>
#include <stddef.h>
#include <stdint.h>

#define AESGCM_KEY_LEN 16
#define AESGCM_NONCE_LEN 12
#define AESGCM_TAG_LEN 16
#define AESGCM_BLOCK ((size_t)16)
#define AESGCM_MAX_TEXT ((UINT64_C(1) << 36) - 32) /* GCM's limit per message (SP 800-38D) */

/* An AES-128 key schedule (the header-protection key of RFC 9001 5.4.3 uses it alone). */
typedef struct aes128_key {
    alignas(16) uint8_t rk[11][16];
} aes128_key;

/* An AES-128-GCM key: the AES schedule and H^16 .. H^1 (hrev[i] = H^(16 - i), in the POLYVAL
 * domain), so that sixteen blocks are hashed with one reduction. */
typedef struct aesgcm_key {
    aes128_key aes;
    alignas(64) uint8_t hrev[16][16];
} aesgcm_key;

typedef enum aesgcm_impl {
    AESGCM_IMPL_NONE = 0,  /* this CPU has no AES-NI/PCLMULQDQ: use another library */
    AESGCM_IMPL_AESNI = 1, /* 128-bit AES-NI and PCLMULQDQ */
    AESGCM_IMPL_VAES = 2,  /* plus 512-bit VAES and VPCLMULQDQ for long inputs */
} aesgcm_impl;

/* The implementation in use: the best this CPU runs, unless lowered by the environment
 * (MACULA_AESGCM=off: none, so the transport keeps GnuTLS; MACULA_AESGCM=aesni: no VAES),
 * read on the first call, or by aesgcm_impl_set. */
aesgcm_impl aesgcm_impl_get(void);

/* Uses `want` or, when the CPU cannot run it, the best one below it; returns the one now in
 * use. For tests and benchmarks that compare implementations. */
aesgcm_impl aesgcm_impl_set(aesgcm_impl want);

/* The best implementation this CPU runs (what aesgcm_impl_get gives unless lowered). */
aesgcm_impl aesgcm_impl_best(void);

void aes128_init(aes128_key *k, const uint8_t key[AESGCM_KEY_LEN]);

/* One block of AES-128 encryption; out may equal in. */
void aes128_encrypt_block(const aes128_key *k, const uint8_t in[AESGCM_BLOCK],
                          uint8_t out[AESGCM_BLOCK]);

void aesgcm_init(aesgcm_key *k, const uint8_t key[AESGCM_KEY_LEN]);

/* Overwrites the key material (keys are secrets; call before freeing). */
void aesgcm_wipe(aesgcm_key *k);
void aes128_wipe(aes128_key *k);

/* Keys need 16-byte alignment (malloc's is enough). Texts are at most AESGCM_MAX_TEXT bytes
 * (the process aborts on a longer one: a caller's bug); QUIC packets are at most 64 KiB.
 *
 * Encrypts len bytes of in and authenticates them with aadlen bytes of aad: writes len bytes
 * of ciphertext and then the 16-byte tag to out (len + AESGCM_TAG_LEN bytes). out may equal in
 * (in place); otherwise the two must not overlap. aad may be NULL when aadlen is 0, in when
 * len is 0. */
void aesgcm_seal(const aesgcm_key *k, const uint8_t nonce[AESGCM_NONCE_LEN], const uint8_t *aad,
                 size_t aadlen, const uint8_t *in, size_t len, uint8_t *out);

/* Checks and decrypts len bytes of in (ciphertext followed by its 16-byte tag): returns 0 and
 * len - AESGCM_TAG_LEN bytes of plaintext in out, or -1 when len < AESGCM_TAG_LEN or the tag
 * does not match (then out holds bytes that must not be used). out may equal in. */
int aesgcm_open(const aesgcm_key *k, const uint8_t nonce[AESGCM_NONCE_LEN], const uint8_t *aad,
                size_t aadlen, const uint8_t *in, size_t len, uint8_t *out);

#endif
