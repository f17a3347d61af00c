/* fuzz/fuzz_aesgcm.c — differential target: the built-in AES-128-GCM (src/mesh/aesgcm.c)
 * against GnuTLS's, for every implementation this CPU runs.
 *
 * Input: 16 bytes of key, 12 of nonce, one byte that splits the rest into aad (the first
 * byte's value modulo the rest's length + 1) and text. For each implementation:
 *  1. aesgcm_seal gives GnuTLS's ciphertext and tag, out of place and in place;
 *  2. aesgcm_open of GnuTLS's output gives the text back;
 *  3. aesgcm_open of the input taken as a sealed packet (text then tag), out of place and in
 *     place, agrees with GnuTLS's decrypt: both accept or both refuse, and an accepted one
 *     opens to the same bytes.
 * Without AES-NI/PCLMULQDQ there is nothing to compare (the transport uses GnuTLS only). */
#include <gnutls/crypto.h>
#include <gnutls/gnutls.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "mesh/aesgcm.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 29 || aesgcm_impl_best() == AESGCM_IMPL_NONE)
        return 0;
    const uint8_t *key = data, *nonce = data + 16;
    size_t rest = size - 29;
    size_t aadlen = rest == 0 ? 0 : data[28] % (rest + 1);
    const uint8_t *aad = data + 29, *text = aad + aadlen;
    size_t len = rest - aadlen;

    gnutls_aead_cipher_hd_t h;
    gnutls_datum_t kd = {(void *)key, AESGCM_KEY_LEN};
    if (gnutls_aead_cipher_init(&h, GNUTLS_CIPHER_AES_128_GCM, &kd) != 0)
        abort();
    uint8_t *ref = malloc(len + AESGCM_TAG_LEN), *out = malloc(len + AESGCM_TAG_LEN);
    uint8_t *g = malloc(len + 1);
    if (!ref || !out || !g)
        abort();
    size_t reflen = len + AESGCM_TAG_LEN;
    if (gnutls_aead_cipher_encrypt(h, nonce, AESGCM_NONCE_LEN, aad, aadlen, AESGCM_TAG_LEN, text,
                                   len, ref, &reflen) != 0)
        abort();
    /* 3's reference: GnuTLS opening the text as a packet (when long enough to hold a tag) */
    size_t glen = len;
    int gok = len >= AESGCM_TAG_LEN &&
              gnutls_aead_cipher_decrypt(h, nonce, AESGCM_NONCE_LEN, aad, aadlen, AESGCM_TAG_LEN,
                                         text, len, g, &glen) == 0;
    gnutls_aead_cipher_deinit(h);

    aesgcm_key k;
    aesgcm_init(&k, key);
    aesgcm_impl best = aesgcm_impl_best();
    for (int impl = AESGCM_IMPL_AESNI; impl <= (int)best; impl++) {
        aesgcm_impl_set((aesgcm_impl)impl);
        aesgcm_seal(&k, nonce, aad, aadlen, text, len, out);
        if (memcmp(out, ref, len + AESGCM_TAG_LEN) != 0)
            abort();
        if (len > 0)
            memcpy(out, text, len);
        aesgcm_seal(&k, nonce, aad, aadlen, out, len, out);
        if (memcmp(out, ref, len + AESGCM_TAG_LEN) != 0)
            abort();
        if (aesgcm_open(&k, nonce, aad, aadlen, ref, len + AESGCM_TAG_LEN, out) != 0 ||
            (len > 0 && memcmp(out, text, len) != 0))
            abort();
        int ok = aesgcm_open(&k, nonce, aad, aadlen, text, len, out) == 0;
        if (ok != gok || (ok && len > AESGCM_TAG_LEN && memcmp(out, g, len - AESGCM_TAG_LEN)))
            abort();
        if (len > 0) /* the same in place */
            memcpy(out, text, len);
        if ((aesgcm_open(&k, nonce, aad, aadlen, out, len, out) == 0) != gok ||
            (gok && len > AESGCM_TAG_LEN && memcmp(out, g, len - AESGCM_TAG_LEN)))
            abort();
    }
    aesgcm_wipe(&k);
    free(ref);
    free(out);
    free(g);
    return 0;
}
