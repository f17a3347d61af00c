/*
 * src/mesh/aesgcm.c — AES-128-GCM on AES-NI/PCLMULQDQ and VAES/VPCLMULQDQ (see aesgcm.h).
 *
 * GHASH as POLYVAL (RFC 8452 appendix A): GHASH(H, X1..Xn) = ByteReverse(POLYVAL(
 * mulX(ByteReverse(H)), ByteReverse(X1), ..)). A byte-reversed block loaded into a register
 * is the polynomial with bit i as the coefficient of x^i, so PCLMULQDQ multiplies it as is.
 * POLYVAL's product is dot(a, b) = a * b * x^-128 mod P, P = x^128 + x^127 + x^126 + x^121 + 1:
 * a 256-bit carry-less product, then two Montgomery folds of 64 bits (gf_reduce). With
 * Hp = mulX(H) and Hp^(k) the k-fold dot power, n blocks hash as
 *     S' = dot(S ^ X1, Hp^(n)) ^ dot(X2, Hp^(n-1)) ^ .. ^ dot(Xn, Hp^(1)),
 * and since the fold is linear the n products are summed first and reduced once.
 *
 * Functions carry target attributes, so the file builds with the project's generic x86-64
 * flags and the instructions run only after cpuid said the CPU has them.
 */
#include "mesh/aesgcm.h"

#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#if defined(__x86_64__)
#include <cpuid.h>
#include <immintrin.h>

#define T_NI __attribute__((target("aes,pclmul,ssse3,sse4.1")))
#define T_Z                                                                                        \
    __attribute__((target("aes,pclmul,ssse3,sse4.1,avx,avx2,avx512f,avx512bw,avx512vl,vaes,"       \
                          "vpclmulqdq")))

static _Atomic int g_impl = -1; /* aesgcm_impl in use; -1 until first asked */
static _Atomic int g_best = -1; /* what the CPU runs (any thread that asks writes the same) */

static uint64_t aesgcm__xgetbv0(void)
{
    uint32_t lo, hi;
    __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
    return ((uint64_t)hi << 32) | lo;
}

static int aesgcm__detect(void)
{
    unsigned a, b, c, d;
    if (!__get_cpuid(1, &a, &b, &c, &d))
        return AESGCM_IMPL_NONE;
    bool ni = (c & bit_AES) && (c & bit_PCLMUL) && (c & bit_SSSE3) && (c & bit_SSE4_1);
    if (!ni)
        return AESGCM_IMPL_NONE;
    /* 512-bit registers need the OS to save them: XCR0 bits 1, 2 (SSE, AVX) and 5-7
     * (opmask, upper halves of zmm0-15, zmm16-31). */
    if (!(c & bit_OSXSAVE) || (aesgcm__xgetbv0() & 0xe6) != 0xe6)
        return AESGCM_IMPL_AESNI;
    unsigned a7, b7, c7, d7;
    if (!__get_cpuid_count(7, 0, &a7, &b7, &c7, &d7))
        return AESGCM_IMPL_AESNI;
    bool z = (b7 & bit_AVX2) && (b7 & bit_AVX512F) && (b7 & bit_AVX512BW) && (b7 & bit_AVX512VL) &&
             (c7 & bit_VAES) && (c7 & bit_VPCLMULQDQ);
    return z ? AESGCM_IMPL_VAES : AESGCM_IMPL_AESNI;
}

aesgcm_impl aesgcm_impl_best(void)
{
    int v = atomic_load_explicit(&g_best, memory_order_relaxed);
    if (v < 0) {
        v = aesgcm__detect();
        atomic_store_explicit(&g_best, v, memory_order_relaxed);
    }
    return (aesgcm_impl)v;
}

aesgcm_impl aesgcm_impl_get(void)
{
    int v = atomic_load_explicit(&g_impl, memory_order_relaxed);
    if (v < 0) {
        /* MACULA_AESGCM=off (GnuTLS for everything) or =aesni lowers the choice */
        const char *env = getenv("MACULA_AESGCM");
        aesgcm_impl want = AESGCM_IMPL_VAES;
        if (env && (strcasecmp(env, "off") == 0 || strcasecmp(env, "gnutls") == 0 ||
                    strcmp(env, "0") == 0 || strcasecmp(env, "no") == 0))
            want = AESGCM_IMPL_NONE;
        else if (env && strcasecmp(env, "aesni") == 0)
            want = AESGCM_IMPL_AESNI;
        int best = (int)aesgcm_impl_best();
        v = (int)want < best ? (int)want : best;
        atomic_store_explicit(&g_impl, v, memory_order_relaxed);
    }
    return (aesgcm_impl)v;
}

aesgcm_impl aesgcm_impl_set(aesgcm_impl want)
{
    aesgcm_impl best = aesgcm_impl_best();
    aesgcm_impl v = want < best ? want : best;
    atomic_store_explicit(&g_impl, (int)v, memory_order_relaxed);
    return v;
}

/* ---- AES-128 ----------------------------------------------------------------------------- */

T_NI static inline __m128i aes__expand(__m128i k, __m128i assist)
{
    assist = _mm_shuffle_epi32(assist, 0xff);
    k = _mm_xor_si128(k, _mm_slli_si128(k, 4));
    k = _mm_xor_si128(k, _mm_slli_si128(k, 4));
    k = _mm_xor_si128(k, _mm_slli_si128(k, 4));
    return _mm_xor_si128(k, assist);
}

#define AES__ROUND_KEY(i, rcon)                                                                    \
    rk[i] = aes__expand(rk[(i)-1], _mm_aeskeygenassist_si128(rk[(i)-1], rcon))

T_NI void aes128_init(aes128_key *k, const uint8_t key[AESGCM_KEY_LEN])
{
    __m128i rk[11];
    rk[0] = _mm_loadu_si128((const __m128i *)key);
    AES__ROUND_KEY(1, 0x01);
    AES__ROUND_KEY(2, 0x02);
    AES__ROUND_KEY(3, 0x04);
    AES__ROUND_KEY(4, 0x08);
    AES__ROUND_KEY(5, 0x10);
    AES__ROUND_KEY(6, 0x20);
    AES__ROUND_KEY(7, 0x40);
    AES__ROUND_KEY(8, 0x80);
    AES__ROUND_KEY(9, 0x1b);
    AES__ROUND_KEY(10, 0x36);
    for (int i = 0; i < 11; i++)
        _mm_store_si128((__m128i *)k->rk[i], rk[i]);
}

T_NI static inline __m128i aes__block(const __m128i *rk, __m128i x)
{
    x = _mm_xor_si128(x, rk[0]);
    for (int r = 1; r < 10; r++)
        x = _mm_aesenc_si128(x, rk[r]);
    return _mm_aesenclast_si128(x, rk[10]);
}

T_NI void aes128_encrypt_block(const aes128_key *k, const uint8_t in[AESGCM_BLOCK],
                               uint8_t out[AESGCM_BLOCK])
{
    const __m128i *rk = (const __m128i *)k->rk;
    _mm_storeu_si128((__m128i *)out, aes__block(rk, _mm_loadu_si128((const __m128i *)in)));
}

void aes128_wipe(aes128_key *k)
{
    explicit_bzero(k, sizeof *k);
}

void aesgcm_wipe(aesgcm_key *k)
{
    explicit_bzero(k, sizeof *k);
}

/* ---- GHASH as POLYVAL -------------------------------------------------------------------- */

/* The lengths block: bit lengths of aad and text, big-endian; byte-reversed, the halves swap. */
T_NI static inline __m128i gf__lengths(size_t aadlen, size_t len)
{
    uint64_t a = (uint64_t)aadlen << 3, t = (uint64_t)len << 3;
    return _mm_set_epi64x((long long)a, (long long)t);
}

T_NI static inline __m128i gf__bswap(__m128i x)
{
    const __m128i rev = _mm_set_epi8(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
    return _mm_shuffle_epi8(x, rev);
}

/* lo/mid/hi accumulate carry-less products: lo = a0*b0, hi = a1*b1, mid = a0*b1 ^ a1*b0. */
typedef struct gf__acc {
    __m128i lo, mid, hi;
} gf__acc;

T_NI static inline void gf__mul_add(gf__acc *acc, __m128i a, __m128i b)
{
    acc->lo = _mm_xor_si128(acc->lo, _mm_clmulepi64_si128(a, b, 0x00));
    acc->hi = _mm_xor_si128(acc->hi, _mm_clmulepi64_si128(a, b, 0x11));
    acc->mid = _mm_xor_si128(acc->mid, _mm_clmulepi64_si128(a, b, 0x01));
    acc->mid = _mm_xor_si128(acc->mid, _mm_clmulepi64_si128(a, b, 0x10));
}

/* (hi:lo) * x^-128 mod P: two folds, each cancelling the low 64 bits with a multiple of P
 * (P's low word is 1; its other terms x^127 + x^126 + x^121 are 0xc2 << 56 in the word above)
 * and dropping them. */
T_NI static inline __m128i gf__reduce(const gf__acc *acc)
{
    const __m128i poly = _mm_set_epi64x((long long)0xc200000000000000ULL, 0);
    __m128i lo = _mm_xor_si128(acc->lo, _mm_slli_si128(acc->mid, 8));
    __m128i hi = _mm_xor_si128(acc->hi, _mm_srli_si128(acc->mid, 8));
    __m128i t = _mm_clmulepi64_si128(lo, poly, 0x10);
    lo = _mm_xor_si128(_mm_shuffle_epi32(lo, 0x4e), t);
    t = _mm_clmulepi64_si128(lo, poly, 0x10);
    lo = _mm_xor_si128(_mm_shuffle_epi32(lo, 0x4e), t);
    return _mm_xor_si128(hi, lo);
}

T_NI static inline __m128i gf__dot(__m128i a, __m128i b)
{
    gf__acc acc = {_mm_setzero_si128(), _mm_setzero_si128(), _mm_setzero_si128()};
    gf__mul_add(&acc, a, b);
    return gf__reduce(&acc);
}

/* x * v mod P: shift left one bit; the bit shifted out comes back as P's low terms. */
T_NI static inline __m128i gf__mulx(__m128i v)
{
    uint64_t lo = (uint64_t)_mm_cvtsi128_si64(v);
    uint64_t hi = (uint64_t)_mm_extract_epi64(v, 1);
    uint64_t carry = 0 - (hi >> 63);
    hi = (hi << 1) | (lo >> 63);
    lo <<= 1;
    hi ^= carry & 0xc200000000000000ULL;
    lo ^= carry & 1;
    return _mm_set_epi64x((long long)hi, (long long)lo);
}

T_NI void aesgcm_init(aesgcm_key *k, const uint8_t key[AESGCM_KEY_LEN])
{
    aes128_init(&k->aes, key);
    const __m128i *rk = (const __m128i *)k->aes.rk;
    __m128i h = gf__mulx(gf__bswap(aes__block(rk, _mm_setzero_si128())));
    __m128i p = h;
    for (int i = 15; i >= 0; i--) { /* hrev[15] = H^1 .. hrev[0] = H^16 */
        _mm_store_si128((__m128i *)k->hrev[i], p);
        p = gf__dot(p, h);
    }
}

/* Hashes n (1..16) byte-reversed blocks x[0..n) into s with one reduction. */
T_NI static inline __m128i gf__hash_n(const aesgcm_key *k, __m128i s, const __m128i *x, int n)
{
    const __m128i *hp = (const __m128i *)k->hrev + (16 - n); /* x[i] takes H^(n - i) */
    gf__acc acc = {_mm_setzero_si128(), _mm_setzero_si128(), _mm_setzero_si128()};
    gf__mul_add(&acc, _mm_xor_si128(s, x[0]), _mm_load_si128(hp));
    for (int i = 1; i < n; i++)
        gf__mul_add(&acc, x[i], _mm_load_si128(hp + i));
    return gf__reduce(&acc);
}

/* Hashes len bytes (the last block zero-padded). */
T_NI static __m128i gf__hash_bytes(const aesgcm_key *k, __m128i s, const uint8_t *p, size_t len)
{
    __m128i x[8];
    while (len >= 8 * AESGCM_BLOCK) {
        for (int i = 0; i < 8; i++)
            x[i] = gf__bswap(_mm_loadu_si128((const __m128i *)(p + AESGCM_BLOCK * (size_t)i)));
        s = gf__hash_n(k, s, x, 8);
        p += 8 * AESGCM_BLOCK;
        len -= 8 * AESGCM_BLOCK;
    }
    if (len == 0)
        return s;
    int n = 0;
    while (len >= AESGCM_BLOCK) {
        x[n++] = gf__bswap(_mm_loadu_si128((const __m128i *)p));
        p += AESGCM_BLOCK;
        len -= AESGCM_BLOCK;
    }
    if (len > 0) {
        uint8_t last[AESGCM_BLOCK] = {0};
        memcpy(last, p, len);
        x[n++] = gf__bswap(_mm_loadu_si128((const __m128i *)last));
    }
    return gf__hash_n(k, s, x, n);
}

/* ---- GCM: counter mode and the hash in one pass ------------------------------------------ */

/* The counter block nonce || ctr (big-endian 32-bit; GCM's inc32 wraps within the word). */
T_NI static inline __m128i gcm__ctr(__m128i base, uint32_t ctr)
{
    return _mm_insert_epi32(base, (int)__builtin_bswap32(ctr), 3);
}

/* Encrypts (enc) or decrypts n (1..8) whole blocks from in to out and hashes the ciphertext
 * into *s. */
T_NI static inline void gcm__blocks(const aesgcm_key *k, __m128i base, uint32_t *ctr, __m128i *s,
                                    const uint8_t *in, uint8_t *out, int n, bool enc)
{
    const __m128i *rk = (const __m128i *)k->aes.rk;
    __m128i b[8], d[8], x[8];
    for (int i = 0; i < n; i++) {
        b[i] = _mm_xor_si128(gcm__ctr(base, *ctr + (uint32_t)i), rk[0]);
        d[i] = _mm_loadu_si128((const __m128i *)(in + AESGCM_BLOCK * (size_t)i));
    }
    *ctr += (uint32_t)n;
    for (int r = 1; r < 10; r++)
        for (int i = 0; i < n; i++)
            b[i] = _mm_aesenc_si128(b[i], rk[r]);
    for (int i = 0; i < n; i++) {
        __m128i o = _mm_xor_si128(_mm_aesenclast_si128(b[i], rk[10]), d[i]);
        _mm_storeu_si128((__m128i *)(out + AESGCM_BLOCK * (size_t)i), o);
        x[i] = gf__bswap(enc ? o : d[i]);
    }
    *s = gf__hash_n(k, *s, x, n);
}

/* The eight counter blocks c..c+7, whitened with rk0. When they differ only in the counter's
 * last byte (byte 15, the top byte of the vector's fourth dword) they come from one insert and
 * additions, which keeps them off the shuffle port that the hash's multiplies need. */
T_NI static inline void gcm__ctr8(__m128i base, uint32_t c, __m128i rk0, __m128i *b)
{
    if ((c & 0xffu) <= 0xf8u) {
        __m128i v = gcm__ctr(base, c);
        for (int i = 0; i < 8; i++)
            b[i] = _mm_xor_si128(_mm_add_epi32(v, _mm_set_epi32((int)((uint32_t)i << 24), 0, 0, 0)),
                                 rk0);
    } else {
        for (int i = 0; i < 8; i++)
            b[i] = _mm_xor_si128(gcm__ctr(base, c + (uint32_t)i), rk0);
    }
}

/* Eight blocks of counter mode alone (counters c..c+7): out = in ^ keystream. */
T_NI static inline void gcm__blocks_nohash(const aesgcm_key *k, __m128i base, uint32_t c,
                                           const uint8_t *in, uint8_t *out)
{
    const __m128i *rk = (const __m128i *)k->aes.rk;
    __m128i b[8];
    gcm__ctr8(base, c, rk[0], b);
    for (int r = 1; r < 10; r++)
        for (int i = 0; i < 8; i++)
            b[i] = _mm_aesenc_si128(b[i], rk[r]);
    for (int i = 0; i < 8; i++) {
        __m128i d = _mm_loadu_si128((const __m128i *)(in + AESGCM_BLOCK * (size_t)i));
        _mm_storeu_si128((__m128i *)(out + AESGCM_BLOCK * (size_t)i),
                         _mm_xor_si128(_mm_aesenclast_si128(b[i], rk[10]), d));
    }
}

/* One 8-block step: the AES rounds of these blocks with, between them, the hash of the 8
 * byte-reversed blocks at src (one block's four products per round, summed, reduced once),
 * so that both kinds of work issue side by side from few registers. Returns the new hash. */
T_NI static inline __m128i gcm__step8(const aesgcm_key *k, __m128i base, uint32_t c, __m128i h,
                                      const uint8_t *src, const uint8_t *in, uint8_t *out)
{
    const __m128i *rk = (const __m128i *)k->aes.rk;
    const __m128i *hp = (const __m128i *)k->hrev + 8;
    __m128i b[8];
    gcm__ctr8(base, c, rk[0], b);
    gf__acc acc = {_mm_setzero_si128(), _mm_setzero_si128(), _mm_setzero_si128()};
    for (int r = 1; r < 10; r++) {
        __m128i key = _mm_load_si128(rk + r);
        for (int i = 0; i < 8; i++)
            b[i] = _mm_aesenc_si128(b[i], key);
        if (r <= 8) {
            int j = r - 1;
            __m128i x =
                gf__bswap(_mm_loadu_si128((const __m128i *)(src + AESGCM_BLOCK * (size_t)j)));
            if (j == 0)
                x = _mm_xor_si128(x, h);
            gf__mul_add(&acc, x, _mm_load_si128(hp + j));
        }
    }
    for (int i = 0; i < 8; i++) {
        __m128i d = _mm_loadu_si128((const __m128i *)(in + AESGCM_BLOCK * (size_t)i));
        _mm_storeu_si128((__m128i *)(out + AESGCM_BLOCK * (size_t)i),
                         _mm_xor_si128(_mm_aesenclast_si128(b[i], rk[10]), d));
    }
    return gf__reduce(&acc);
}

/* Whole 8-block steps. Decrypting, each step hashes its own input (read before the step
 * writes, so in place is safe); encrypting, it hashes the previous step's output, and the last
 * output is hashed after the loop. Returns the bytes done (a multiple of 128). */
T_NI static size_t gcm__bulk_ni(const aesgcm_key *k, __m128i base, uint32_t *ctr, __m128i *s,
                                const uint8_t *in, uint8_t *out, size_t len, bool enc)
{
    size_t steps = len / (8 * AESGCM_BLOCK);
    if (steps == 0)
        return 0;
    __m128i h = *s;
    uint32_t c = *ctr;
    if (!enc) {
        for (size_t st = 0; st < steps; st++) {
            h = gcm__step8(k, base, c, h, in, in, out);
            c += 8;
            in += 8 * AESGCM_BLOCK;
            out += 8 * AESGCM_BLOCK;
        }
    } else {
        /* the first step has nothing before it to hash: its own rounds alone */
        gcm__blocks_nohash(k, base, c, in, out);
        c += 8;
        const uint8_t *prev = out;
        in += 8 * AESGCM_BLOCK;
        out += 8 * AESGCM_BLOCK;
        for (size_t st = 1; st < steps; st++) {
            h = gcm__step8(k, base, c, h, prev, in, out);
            c += 8;
            prev = out;
            in += 8 * AESGCM_BLOCK;
            out += 8 * AESGCM_BLOCK;
        }
        __m128i x[8];
        for (int i = 0; i < 8; i++)
            x[i] = gf__bswap(_mm_loadu_si128((const __m128i *)(prev + AESGCM_BLOCK * (size_t)i)));
        h = gf__hash_n(k, h, x, 8);
    }
    *s = h;
    *ctr = c;
    return steps * 8 * AESGCM_BLOCK;
}

/* Inputs this short are hashed in one go: their aad blocks, text blocks and the lengths block
 * (at most 16) take one reduction, and J0 is encrypted beside the text. */
#define GCM__SMALL_BLOCKS 16
#define GCM__SMALL_TEXT 7 /* text blocks; with J0 one fixed batch of eight AES blocks */

T_NI static inline size_t gcm__nblocks(size_t n)
{
    return n / AESGCM_BLOCK + (n % AESGCM_BLOCK != 0);
}

/* E(J0) and the keystream of counters 2.. in ks[0..nb): a fixed count, so the blocks stay in
 * registers through the rounds (unused ones cost throughput, not latency). */
#define GCM__KEYSTREAM(nb)                                                                         \
    do {                                                                                           \
        for (int i_ = 0; i_ < (nb); i_++)                                                          \
            ks[i_] = _mm_xor_si128(gcm__ctr(base, 1 + (uint32_t)i_), rk[0]);                       \
        for (int r_ = 1; r_ < 10; r_++)                                                            \
            for (int i_ = 0; i_ < (nb); i_++)                                                      \
                ks[i_] = _mm_aesenc_si128(ks[i_], rk[r_]);                                         \
        for (int i_ = 0; i_ < (nb); i_++)                                                          \
            ks[i_] = _mm_aesenclast_si128(ks[i_], rk[10]);                                         \
    } while (0)

T_NI static void gcm__small(const aesgcm_key *k, __m128i base, const uint8_t *aad, size_t aadlen,
                            const uint8_t *in, size_t len, uint8_t *out, bool enc, __m128i *tag)
{
    const __m128i *rk = (const __m128i *)k->aes.rk;
    int nt = (int)gcm__nblocks(len); /* at most GCM__SMALL_TEXT */
    __m128i ks[GCM__SMALL_TEXT + 1], x[GCM__SMALL_BLOCKS];
    if (nt < 2)
        GCM__KEYSTREAM(2);
    else if (nt < 4)
        GCM__KEYSTREAM(4);
    else
        GCM__KEYSTREAM(GCM__SMALL_TEXT + 1);
    int n = 0;
    size_t i = 0;
    for (; i + AESGCM_BLOCK <= aadlen; i += AESGCM_BLOCK)
        x[n++] = gf__bswap(_mm_loadu_si128((const __m128i *)(aad + i)));
    if (i < aadlen) {
        uint8_t blk[AESGCM_BLOCK] = {0};
        memcpy(blk, aad + i, aadlen - i);
        x[n++] = gf__bswap(_mm_loadu_si128((const __m128i *)blk));
    }
    for (int j = 0; j < nt; j++) {
        size_t off = (size_t)j * AESGCM_BLOCK;
        if (len - off >= AESGCM_BLOCK) {
            __m128i d = _mm_loadu_si128((const __m128i *)(in + off));
            __m128i o = _mm_xor_si128(ks[j + 1], d);
            _mm_storeu_si128((__m128i *)(out + off), o);
            x[n++] = gf__bswap(enc ? o : d);
        } else {
            size_t rest = len - off;
            uint8_t blk[AESGCM_BLOCK] = {0};
            memcpy(blk, in + off, rest);
            __m128i d = _mm_loadu_si128((const __m128i *)blk);
            _mm_storeu_si128((__m128i *)blk, _mm_xor_si128(ks[j + 1], d));
            memcpy(out + off, blk, rest);
            memset(blk + rest, 0, AESGCM_BLOCK - rest); /* the hash takes it zero-padded */
            x[n++] = gf__bswap(enc ? _mm_loadu_si128((const __m128i *)blk) : d);
            explicit_bzero(blk, sizeof blk);
        }
    }
    x[n++] = gf__lengths(aadlen, len);
    __m128i s = gf__hash_n(k, _mm_setzero_si128(), x, n);
    *tag = _mm_xor_si128(gf__bswap(s), ks[0]);
}

#define Z_BLOCKS 16 /* blocks per step of the 512-bit path */

/* The 512-bit path: as many whole 16-block steps as len holds, software-pipelined like
 * gcm__bulk_ni (one step's hash beside the next step's rounds); returns the bytes done. */
T_Z static size_t gcm__bulk_z(const aesgcm_key *k, __m128i base, uint32_t *ctr, __m128i *s,
                              const uint8_t *in, uint8_t *out, size_t len, bool enc)
{
    size_t steps = len / (Z_BLOCKS * AESGCM_BLOCK);
    if (steps == 0)
        return 0;
    const __m512i rev =
        _mm512_broadcast_i32x4(_mm_set_epi8(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15));
    __m512i rk[11];
    for (int r = 0; r < 11; r++)
        rk[r] = _mm512_broadcast_i32x4(_mm_load_si128((const __m128i *)k->aes.rk[r]));
    __m512i hp[4];
    for (int j = 0; j < 4; j++)
        hp[j] = _mm512_loadu_si512((const void *)k->hrev[(size_t)4 * (size_t)j]);
    /* counters byte-reversed, so the 32-bit counter is the low dword of each lane */
    __m512i c = _mm512_shuffle_epi8(_mm512_broadcast_i32x4(gcm__ctr(base, *ctr)), rev);
    c = _mm512_add_epi32(c, _mm512_set_epi32(0, 0, 0, 3, 0, 0, 0, 2, 0, 0, 0, 1, 0, 0, 0, 0));
    const __m512i four = _mm512_set_epi32(0, 0, 0, 4, 0, 0, 0, 4, 0, 0, 0, 4, 0, 0, 0, 4);
    __m128i h = *s;
    __m512i x[4] = {0}; /* the previous step's byte-reversed ciphertext, hashed in this one */
    for (size_t st = 0; st <= steps; st++) {
        bool more = st < steps;
        __m512i b[4], d[4];
        if (more) {
            for (int j = 0; j < 4; j++) {
                b[j] = _mm512_xor_si512(_mm512_shuffle_epi8(c, rev), rk[0]);
                c = _mm512_add_epi32(c, four);
                d[j] = _mm512_loadu_si512((const void *)(in + (size_t)64 * (size_t)j));
            }
        }
        if (st > 0) { /* the previous step's blocks: the running hash joins the first */
            x[0] = _mm512_xor_si512(x[0], _mm512_zextsi128_si512(h));
            __m512i lo = _mm512_setzero_si512(), mid = lo, hi = lo;
            for (int j = 0; j < 4; j++) {
                lo = _mm512_xor_si512(lo, _mm512_clmulepi64_epi128(x[j], hp[j], 0x00));
                hi = _mm512_xor_si512(hi, _mm512_clmulepi64_epi128(x[j], hp[j], 0x11));
                mid = _mm512_xor_si512(mid, _mm512_clmulepi64_epi128(x[j], hp[j], 0x01));
                mid = _mm512_xor_si512(mid, _mm512_clmulepi64_epi128(x[j], hp[j], 0x10));
            }
            /* the four lanes' sums into one 256-bit product, reduced once */
            gf__acc acc;
            __m256i t;
            t = _mm256_xor_si256(_mm512_castsi512_si256(lo), _mm512_extracti64x4_epi64(lo, 1));
            acc.lo = _mm_xor_si128(_mm256_castsi256_si128(t), _mm256_extracti128_si256(t, 1));
            t = _mm256_xor_si256(_mm512_castsi512_si256(mid), _mm512_extracti64x4_epi64(mid, 1));
            acc.mid = _mm_xor_si128(_mm256_castsi256_si128(t), _mm256_extracti128_si256(t, 1));
            t = _mm256_xor_si256(_mm512_castsi512_si256(hi), _mm512_extracti64x4_epi64(hi, 1));
            acc.hi = _mm_xor_si128(_mm256_castsi256_si128(t), _mm256_extracti128_si256(t, 1));
            h = gf__reduce(&acc);
        }
        if (!more)
            break;
        for (int r = 1; r < 10; r++)
            for (int j = 0; j < 4; j++)
                b[j] = _mm512_aesenc_epi128(b[j], rk[r]);
        for (int j = 0; j < 4; j++) {
            __m512i o = _mm512_xor_si512(_mm512_aesenclast_epi128(b[j], rk[10]), d[j]);
            _mm512_storeu_si512((void *)(out + (size_t)64 * (size_t)j), o);
            x[j] = _mm512_shuffle_epi8(enc ? o : d[j], rev);
        }
        in += Z_BLOCKS * AESGCM_BLOCK;
        out += Z_BLOCKS * AESGCM_BLOCK;
    }
    *s = h;
    *ctr += (uint32_t)(steps * Z_BLOCKS);
    return steps * Z_BLOCKS * AESGCM_BLOCK;
}

/* GCM over len bytes: out gets the en/decryption, tag the (unmasked) tag. */
T_NI static void gcm__crypt(const aesgcm_key *k, const uint8_t nonce[AESGCM_NONCE_LEN],
                            const uint8_t *aad, size_t aadlen, const uint8_t *in, size_t len,
                            uint8_t *out, bool enc, __m128i *tag)
{
    const __m128i *rk = (const __m128i *)k->aes.rk;
    if ((uint64_t)len > AESGCM_MAX_TEXT)
        abort(); /* the 32-bit counter would come back to J0: a caller's bug, never data */
    uint8_t nb[AESGCM_BLOCK] = {0};
    memcpy(nb, nonce, AESGCM_NONCE_LEN);
    __m128i base = _mm_loadu_si128((const __m128i *)nb);
    if (gcm__nblocks(len) <= GCM__SMALL_TEXT &&
        gcm__nblocks(aadlen) + gcm__nblocks(len) + 1 <= GCM__SMALL_BLOCKS) {
        gcm__small(k, base, aad, aadlen, in, len, out, enc, tag);
        return;
    }
    __m128i s = _mm_setzero_si128();
    if (aadlen > 0)
        s = gf__hash_bytes(k, s, aad, aadlen);
    uint32_t ctr = 2; /* 1 is J0, which masks the tag */
    size_t done = 0;
    if (len >= Z_BLOCKS * AESGCM_BLOCK && aesgcm_impl_get() == AESGCM_IMPL_VAES)
        done = gcm__bulk_z(k, base, &ctr, &s, in, out, len, enc);
    done += gcm__bulk_ni(k, base, &ctr, &s, in + done, out + done, len - done, enc);
    size_t whole = (len - done) / AESGCM_BLOCK;
    if (whole > 0) {
        gcm__blocks(k, base, &ctr, &s, in + done, out + done, (int)whole, enc);
        done += whole * AESGCM_BLOCK;
    }
    size_t rest = len - done;
    if (rest > 0) {
        uint8_t blk[AESGCM_BLOCK] = {0};
        memcpy(blk, in + done, rest);
        __m128i d = _mm_loadu_si128((const __m128i *)blk);
        __m128i o = _mm_xor_si128(aes__block(rk, gcm__ctr(base, ctr)), d);
        _mm_storeu_si128((__m128i *)blk, o);
        memcpy(out + done, blk, rest);
        memset(blk + rest, 0, AESGCM_BLOCK - rest); /* the hash takes the zero-padded block */
        __m128i x = gf__bswap(enc ? _mm_loadu_si128((const __m128i *)blk) : d);
        s = gf__hash_n(k, s, &x, 1);
        explicit_bzero(blk, sizeof blk);
    }
    __m128i lens = gf__lengths(aadlen, len);
    s = gf__hash_n(k, s, &lens, 1);
    *tag = _mm_xor_si128(gf__bswap(s), aes__block(rk, gcm__ctr(base, 1)));
}

T_NI void aesgcm_seal(const aesgcm_key *k, const uint8_t nonce[AESGCM_NONCE_LEN],
                      const uint8_t *aad, size_t aadlen, const uint8_t *in, size_t len,
                      uint8_t *out)
{
    __m128i tag;
    gcm__crypt(k, nonce, aad, aadlen, in, len, out, true, &tag);
    _mm_storeu_si128((__m128i *)(out + len), tag);
}

T_NI int aesgcm_open(const aesgcm_key *k, const uint8_t nonce[AESGCM_NONCE_LEN], const uint8_t *aad,
                     size_t aadlen, const uint8_t *in, size_t len, uint8_t *out)
{
    if (len < AESGCM_TAG_LEN)
        return -1;
    size_t n = len - AESGCM_TAG_LEN;
    __m128i want = _mm_loadu_si128((const __m128i *)(in + n)); /* before out may overwrite it */
    __m128i tag;
    gcm__crypt(k, nonce, aad, aadlen, in, n, out, false, &tag);
    __m128i diff = _mm_xor_si128(tag, want);
    return _mm_testz_si128(diff, diff) ? 0 : -1;
}

#else /* not x86-64: no implementation; the transport keeps GnuTLS */

aesgcm_impl aesgcm_impl_best(void)
{
    return AESGCM_IMPL_NONE;
}

aesgcm_impl aesgcm_impl_get(void)
{
    return AESGCM_IMPL_NONE;
}

aesgcm_impl aesgcm_impl_set(aesgcm_impl want)
{
    (void)want;
    return AESGCM_IMPL_NONE;
}

/* Unreachable: callers check aesgcm_impl_get() first (aesgcm.h). */
void aes128_init(aes128_key *k, const uint8_t key[AESGCM_KEY_LEN])
{
    (void)k;
    (void)key;
    abort();
}

void aes128_encrypt_block(const aes128_key *k, const uint8_t in[AESGCM_BLOCK],
                          uint8_t out[AESGCM_BLOCK])
{
    (void)k;
    (void)in;
    (void)out;
    abort();
}

void aesgcm_init(aesgcm_key *k, const uint8_t key[AESGCM_KEY_LEN])
{
    (void)k;
    (void)key;
    abort();
}

void aesgcm_seal(const aesgcm_key *k, const uint8_t nonce[AESGCM_NONCE_LEN], const uint8_t *aad,
                 size_t aadlen, const uint8_t *in, size_t len, uint8_t *out)
{
    (void)k, (void)nonce, (void)aad, (void)aadlen, (void)in, (void)len, (void)out;
    abort();
}

int aesgcm_open(const aesgcm_key *k, const uint8_t nonce[AESGCM_NONCE_LEN], const uint8_t *aad,
                size_t aadlen, const uint8_t *in, size_t len, uint8_t *out)
{
    (void)k, (void)nonce, (void)aad, (void)aadlen, (void)in, (void)len, (void)out;
    abort();
}

void aes128_wipe(aes128_key *k)
{
    explicit_bzero(k, sizeof *k);
}

void aesgcm_wipe(aesgcm_key *k)
{
    explicit_bzero(k, sizeof *k);
}

#endif
