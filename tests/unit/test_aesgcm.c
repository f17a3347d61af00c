/* tests/unit/test_aesgcm.c — the built-in AES-128-GCM (src/mesh/aesgcm.c): known answers from
 * FIPS 197 and the GCM specification, and agreement with GnuTLS on every length from 0 to 600
 * bytes and on random longer ones, for each implementation this CPU runs, in place and not;
 * any changed bit of text, tag, aad or nonce is refused. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <gnutls/crypto.h>
#include <gnutls/gnutls.h>

#include "mesh/aesgcm.h"

static void hex(const char *s, uint8_t *out)
{
    for (size_t i = 0; s[2 * i]; i++) {
        unsigned v;
        assert_int_equal(sscanf(s + 2 * i, "%2x", &v), 1);
        out[i] = (uint8_t)v;
    }
}

static uint64_t g_rng = 0x9e3779b97f4a7c15ULL;

static uint8_t rnd8(void)
{
    g_rng ^= g_rng << 13;
    g_rng ^= g_rng >> 7;
    g_rng ^= g_rng << 17;
    return (uint8_t)(g_rng >> 24);
}

static size_t rnd(size_t n)
{
    size_t v = 0;
    for (int i = 0; i < 4; i++)
        v = (v << 8) | rnd8();
    return v % n;
}

static void fill(uint8_t *b, size_t n)
{
    for (size_t i = 0; i < n; i++)
        b[i] = rnd8();
}

/* The implementations to check: each one this CPU runs. */
static int impls(aesgcm_impl out[2])
{
    int n = 0;
    aesgcm_impl best = aesgcm_impl_best();
    if (best >= AESGCM_IMPL_AESNI)
        out[n++] = AESGCM_IMPL_AESNI;
    if (best >= AESGCM_IMPL_VAES)
        out[n++] = AESGCM_IMPL_VAES;
    return n;
}

static int skip_without_cpu(void)
{
    if (aesgcm_impl_best() == AESGCM_IMPL_NONE) {
        fprintf(stderr, "this CPU has no AES-NI/PCLMULQDQ: the transport uses GnuTLS only\n");
        return 1;
    }
    return 0;
}

/* FIPS 197 appendix C.1 */
static void test_aes128_block(void **state)
{
    (void)state;
    if (skip_without_cpu())
        skip();
    uint8_t key[16], pt[16], want[16], got[16];
    hex("000102030405060708090a0b0c0d0e0f", key);
    hex("00112233445566778899aabbccddeeff", pt);
    hex("69c4e0d86a7b0430d8cdb78070b4c55a", want);
    aes128_key k;
    aes128_init(&k, key);
    aes128_encrypt_block(&k, pt, got);
    assert_memory_equal(got, want, 16);
    aes128_encrypt_block(&k, pt, pt); /* in place */
    assert_memory_equal(pt, want, 16);
    aes128_wipe(&k);
    for (size_t i = 0; i < sizeof k; i++)
        assert_int_equal(((const uint8_t *)&k)[i], 0);
}

/* Test cases 1 and 2 of the GCM specification (McGrew and Viega): the zero key and nonce. */
static void test_gcm_known_answers(void **state)
{
    (void)state;
    if (skip_without_cpu())
        skip();
    uint8_t key[16] = {0}, nonce[12] = {0}, zero[16] = {0}, out[32], want[32];
    aesgcm_key k;
    aesgcm_init(&k, key);
    aesgcm_seal(&k, nonce, NULL, 0, NULL, 0, out);
    hex("58e2fccefa7e3061367f1d57a4e7455a", want);
    assert_memory_equal(out, want, 16);
    aesgcm_seal(&k, nonce, NULL, 0, zero, 16, out);
    hex("0388dace60b6a392f328c2b971b2fe78ab6e47d42cec13bdf53a67b21257bddf", want);
    assert_memory_equal(out, want, 32);
    uint8_t back[16];
    assert_int_equal(aesgcm_open(&k, nonce, NULL, 0, out, 32, back), 0);
    assert_memory_equal(back, zero, 16);
}

/* One case against GnuTLS: seal (out of place and in place) gives GnuTLS's bytes, open gives
 * the text back, and a flipped bit anywhere is refused. */
static void check_case(size_t len, size_t aadlen)
{
    uint8_t key[16], nonce[12];
    fill(key, sizeof key);
    fill(nonce, sizeof nonce);
    uint8_t *aad = malloc(aadlen + 1), *pt = malloc(len + 1), *ref = malloc(len + 16);
    uint8_t *out = malloc(len + 16), *back = malloc(len + 16);
    assert_true(aad && pt && ref && out && back);
    fill(aad, aadlen);
    fill(pt, len);
    gnutls_aead_cipher_hd_t h;
    gnutls_datum_t kd = {key, 16};
    assert_int_equal(gnutls_aead_cipher_init(&h, GNUTLS_CIPHER_AES_128_GCM, &kd), 0);
    size_t reflen = len + 16;
    assert_int_equal(
        gnutls_aead_cipher_encrypt(h, nonce, 12, aad, aadlen, 16, pt, len, ref, &reflen), 0);
    gnutls_aead_cipher_deinit(h);
    assert_int_equal(reflen, len + 16);

    aesgcm_key k;
    aesgcm_init(&k, key);
    aesgcm_seal(&k, nonce, aad, aadlen, pt, len, out);
    if (memcmp(out, ref, len + 16) != 0)
        fail_msg("seal differs from GnuTLS: len %zu aad %zu impl %d", len, aadlen,
                 (int)aesgcm_impl_get());
    assert_int_equal(aesgcm_open(&k, nonce, aad, aadlen, ref, len + 16, back), 0);
    assert_memory_equal(back, pt, len);
    memcpy(back, pt, len);
    aesgcm_seal(&k, nonce, aad, aadlen, back, len, back);
    assert_memory_equal(back, ref, len + 16);
    assert_int_equal(aesgcm_open(&k, nonce, aad, aadlen, back, len + 16, back), 0);
    assert_memory_equal(back, pt, len);

    size_t bit = rnd((len + 16) * 8);
    ref[bit / 8] ^= (uint8_t)(1u << (bit % 8));
    assert_int_equal(aesgcm_open(&k, nonce, aad, aadlen, ref, len + 16, back), -1);
    ref[bit / 8] ^= (uint8_t)(1u << (bit % 8));
    if (aadlen > 0) {
        size_t at = rnd(aadlen);
        aad[at] ^= 0x80;
        assert_int_equal(aesgcm_open(&k, nonce, aad, aadlen, ref, len + 16, back), -1);
        aad[at] ^= 0x80;
    }
    assert_int_equal(aesgcm_open(&k, nonce, aad, aadlen, ref, len + 16, back), 0);
    nonce[rnd(12)] ^= 1;
    assert_int_equal(aesgcm_open(&k, nonce, aad, aadlen, ref, len + 16, back), -1);
    aesgcm_wipe(&k);
    free(aad);
    free(pt);
    free(ref);
    free(out);
    free(back);
}

static void test_gcm_against_gnutls(void **state)
{
    (void)state;
    if (skip_without_cpu())
        skip();
    aesgcm_impl list[2];
    int n = impls(list);
    for (int i = 0; i < n; i++) {
        assert_int_equal(aesgcm_impl_set(list[i]), list[i]);
        for (size_t len = 0; len <= 600; len++)
            check_case(len, rnd(80));
        for (size_t aadlen = 0; aadlen <= 300; aadlen += 7)
            check_case(rnd(400), aadlen);
        /* around the one-reduction path's bounds (text <= 7 blocks, aad + text + 1 <= 16) */
        for (size_t aadlen = 0; aadlen <= 272; aadlen += 17)
            for (size_t len = 0; len <= 130; len += 13)
                check_case(len, aadlen);
        for (int j = 0; j < 60; j++)
            check_case(rnd(70000), rnd(64));
        check_case(65507, 21); /* the largest loopback datagram */
        /* the counter's low byte wraps inside an 8-block step (counters 250..257) */
        for (size_t len = 3968; len <= 4224; len += 16)
            check_case(len, 20);
    }
    aesgcm_impl_set(AESGCM_IMPL_VAES);
}

/* Header protection (RFC 9001 5.4.3) is one AES block: the same as GnuTLS's AES-128 with a zero
 * IV, for random keys. */
static void test_hp_block_against_gnutls(void **state)
{
    (void)state;
    if (skip_without_cpu())
        skip();
    for (int i = 0; i < 200; i++) {
        uint8_t key[16], iv[16] = {0}, sample[16], ref[16], got[16];
        fill(key, 16);
        fill(sample, 16);
        gnutls_cipher_hd_t h;
        gnutls_datum_t kd = {key, 16}, ivd = {iv, 16};
        assert_int_equal(gnutls_cipher_init(&h, GNUTLS_CIPHER_AES_128_CBC, &kd, &ivd), 0);
        assert_int_equal(gnutls_cipher_encrypt2(h, sample, 16, ref, 16), 0);
        gnutls_cipher_deinit(h);
        aes128_key k;
        aes128_init(&k, key);
        aes128_encrypt_block(&k, sample, got);
        assert_memory_equal(got, ref, 16);
    }
}

static void test_open_short_and_impl_choice(void **state)
{
    (void)state;
    /* the choice only ever goes down to what the CPU runs */
    aesgcm_impl best = aesgcm_impl_best();
    assert_int_equal(aesgcm_impl_set(AESGCM_IMPL_VAES), best);
    assert_int_equal(aesgcm_impl_get(), best);
    assert_int_equal(aesgcm_impl_set(AESGCM_IMPL_NONE), AESGCM_IMPL_NONE);
    assert_int_equal(aesgcm_impl_get(), AESGCM_IMPL_NONE);
    assert_int_equal(aesgcm_impl_set(AESGCM_IMPL_VAES), best);
    if (best == AESGCM_IMPL_NONE)
        return;
    uint8_t key[16] = {1}, nonce[12] = {2}, buf[16] = {0};
    aesgcm_key k;
    aesgcm_init(&k, key);
    for (size_t len = 0; len < AESGCM_TAG_LEN; len++)
        assert_int_equal(aesgcm_open(&k, nonce, NULL, 0, buf, len, buf), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_aes128_block),
        cmocka_unit_test(test_gcm_known_answers),
        cmocka_unit_test(test_gcm_against_gnutls),
        cmocka_unit_test(test_hp_block_against_gnutls),
        cmocka_unit_test(test_open_short_and_impl_choice),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
