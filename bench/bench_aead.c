/* bench/bench_aead.c — QUIC packet protection per call: the built-in AES-128-GCM
 * (src/mesh/aesgcm.h, each implementation this CPU runs) beside GnuTLS's, which ngtcp2's
 * crypto backend would use, on the same keys and buffers. No I/O.
 *
 *   bench_aead [iterations]        (default: about 64 MiB of payload per cell)
 *
 * Cells: seal and open of payloads from 16 bytes (a small QUIC packet) to 65,000 (a jumbo
 * loopback datagram), with 20 bytes of associated data (a short header); header protection
 * (one AES block of the packet's sample; GnuTLS emulates ECB with CBC and a zero IV, as
 * ngtcp2_crypto_gnutls does). Seal cells change the nonce per call; open cells open one valid
 * packet over and over (a refused one stops the program). Each cell runs 5 times; the best run is
 * printed as ns/op of this thread's CPU time, with the ratio GnuTLS ÷ ours (above 1: ours is
 * faster). */
#include <gnutls/crypto.h>
#include <gnutls/gnutls.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "mesh/aesgcm.h"

#define RUNS 5
#define AAD 20

static double now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

typedef enum { SEAL, OPEN } op;

static void die(const char *what)
{
    fprintf(stderr, "bench_aead: %s\n", what);
    exit(1);
}

static uint8_t g_key[16], g_nonce[12], g_aad[AAD];
static uint8_t *g_in, *g_out;
static volatile int g_sink;

static double gnutls_cell(gnutls_aead_cipher_hd_t h, op o, size_t len, long iters)
{
    double best = 1e30;
    for (int r = 0; r < RUNS; r++) {
        double t0 = now_ns();
        for (long i = 0; i < iters; i++) {
            size_t outlen = len + 16;
            int rc;
            if (o == SEAL) {
                g_nonce[0] = (uint8_t)i; /* a packet number of its own */
                rc = gnutls_aead_cipher_encrypt(h, g_nonce, 12, g_aad, AAD, 16, g_in, len, g_out,
                                                &outlen);
            } else { /* the packet sealed under g_nonce for the cell: every open succeeds */
                rc = gnutls_aead_cipher_decrypt(h, g_nonce, 12, g_aad, AAD, 16, g_in, len + 16,
                                                g_out, &outlen);
            }
            if (rc != 0)
                die("GnuTLS refused a call");
        }
        double ns = (now_ns() - t0) / (double)iters;
        best = ns < best ? ns : best;
    }
    return best;
}

static double own_cell(const aesgcm_key *k, op o, size_t len, long iters)
{
    double best = 1e30;
    for (int r = 0; r < RUNS; r++) {
        double t0 = now_ns();
        for (long i = 0; i < iters; i++) {
            if (o == SEAL) {
                g_nonce[0] = (uint8_t)i;
                aesgcm_seal(k, g_nonce, g_aad, AAD, g_in, len, g_out);
            } else if (aesgcm_open(k, g_nonce, g_aad, AAD, g_in, len + 16, g_out) != 0) {
                die("aesgcm_open refused the packet");
            }
        }
        double ns = (now_ns() - t0) / (double)iters;
        best = ns < best ? ns : best;
    }
    return best;
}

int main(int argc, char **argv)
{
    long fixed = argc > 1 ? atol(argv[1]) : 0;
    aesgcm_impl best = aesgcm_impl_best();
    if (best == AESGCM_IMPL_NONE) {
        printf("this CPU has no AES-NI/PCLMULQDQ: the transport uses GnuTLS only\n");
        return 0;
    }
    for (size_t i = 0; i < sizeof g_key; i++)
        g_key[i] = (uint8_t)(i * 7 + 1);
    g_in = calloc(1, 70000);
    g_out = calloc(1, 70000);
    if (!g_in || !g_out)
        return 1;
    gnutls_aead_cipher_hd_t h;
    gnutls_datum_t kd = {g_key, sizeof g_key};
    if (gnutls_aead_cipher_init(&h, GNUTLS_CIPHER_AES_128_GCM, &kd) != 0)
        return 1;
    aesgcm_key k;
    aesgcm_init(&k, g_key);
    static const size_t sizes[] = {16, 64, 256, 1100, 1452, 16384, 65000};
    printf("| AES-128-GCM, ns per call (lower is better) | GnuTLS | macula AES-NI | macula "
           "VAES | GnuTLS ÷ AES-NI | GnuTLS ÷ VAES |\n");
    printf("|---|---:|---:|---:|---:|---:|\n");
    for (int o = SEAL; o <= OPEN; o++) {
        for (size_t s = 0; s < sizeof sizes / sizeof *sizes; s++) {
            size_t len = sizes[s];
            long iters = fixed > 0 ? fixed : (long)((64u << 20) / (len + 256));
            if (o == OPEN) { /* a valid packet to open */
                size_t outlen = len + 16;
                (void)gnutls_aead_cipher_encrypt(h, g_nonce, 12, g_aad, AAD, 16, g_out, len, g_in,
                                                 &outlen);
            }
            double g = gnutls_cell(h, (op)o, len, iters);
            aesgcm_impl_set(AESGCM_IMPL_AESNI);
            double ni = own_cell(&k, (op)o, len, iters);
            double z = -1;
            if (best >= AESGCM_IMPL_VAES) {
                aesgcm_impl_set(AESGCM_IMPL_VAES);
                z = own_cell(&k, (op)o, len, iters);
            }
            if (z > 0)
                printf("| %s %zu B | %.1f | %.1f | %.1f | %.2f | %.2f |\n",
                       o == SEAL ? "seal" : "open", len, g, ni, z, g / ni, g / z);
            else
                printf("| %s %zu B | %.1f | %.1f | – | %.2f | – |\n", o == SEAL ? "seal" : "open",
                       len, g, ni, g / ni);
        }
    }
    /* header protection */
    gnutls_cipher_hd_t hp;
    uint8_t iv[16] = {0}, sample[16] = {1}, mask[16];
    gnutls_datum_t ivd = {iv, sizeof iv};
    if (gnutls_cipher_init(&hp, GNUTLS_CIPHER_AES_128_CBC, &kd, &ivd) != 0)
        return 1;
    aes128_key ak;
    aes128_init(&ak, g_key);
    long iters = fixed > 0 ? fixed : 2000000;
    double gb = 1e30, ob = 1e30;
    for (int r = 0; r < RUNS; r++) {
        double t0 = now_ns();
        for (long i = 0; i < iters; i++) {
            sample[0] = (uint8_t)i;
            gnutls_cipher_set_iv(hp, iv, sizeof iv);
            g_sink += gnutls_cipher_encrypt2(hp, sample, 16, mask, 16);
        }
        double ns = (now_ns() - t0) / (double)iters;
        gb = ns < gb ? ns : gb;
        t0 = now_ns();
        for (long i = 0; i < iters; i++) {
            sample[0] = (uint8_t)i;
            aes128_encrypt_block(&ak, sample, mask);
            g_sink += mask[0];
        }
        ns = (now_ns() - t0) / (double)iters;
        ob = ns < ob ? ns : ob;
    }
    printf("| header protection mask | %.1f | %.1f | (same) | %.2f | |\n", gb, ob, gb / ob);
    gnutls_cipher_deinit(hp);
    gnutls_aead_cipher_deinit(h);
    aesgcm_wipe(&k);
    free(g_in);
    free(g_out);
    return 0;
}
