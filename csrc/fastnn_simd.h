/* The vector operations the kernel templates (fastnn_gemm.h, fastnn_sparse.h) are written
 * with, per ISA level and vector width, so that every multiply-add is explicit.
 *
 * Why explicit: with FMA hardware, whether `c + a * b` becomes one fused instruction is
 * the compiler's choice, made per expression (GCC's SLP vectoriser was seen to leave a
 * multiply and an add apart in one tile and fuse them in another), and the same
 * accumulator must get the same rounding whichever kernel computes it. So:
 *   FASTNN_OP(MADD, OPS)(c, a, b)  c + a * b: fused (one rounding) on AVX2/AVX-512,
 *                                  a multiply then an add at the baseline (SSE2 has no FMA);
 *   FASTNN_OP(BCAST, OPS)(x)       the scalar x in every lane (a plain splat, so -0 stays -0).
 * OPS names the width and type: 512d 512s 256d 256s 128d 128s (vectors), fmad fmas
 * (scalars on an FMA level), plain (any type, baseline: GCC vector extensions splat a
 * scalar operand). Other architectures compile only the baseline, `plain`, which a
 * compiler may contract (aarch64 GCC does): setup.py passes -ffp-contract=off there (and
 * with FASTNN_NATIVE=1), so every tile rounds `c + a * b` twice.
 *
 * FASTNN_TRANSPOSE_<TOPS>(T, S, src, lds, dst, ldd): dst[c * ldd + r] = src[r * lds + c]
 * for an S x S block (TOPS 256s: 8 x 8 floats, 256d / 128s: 4 x 4, 128d: 2 x 2, plain:
 * any S, element by element). Only moves data: no rounding anywhere. (The AVX-512
 * level uses the 256-bit ones: on Zen 4, 512-bit 16 x 16 / 8 x 8 transposes packed
 * 2-10% slower, their shuffles being double-pumped.)
 * The narrow-output GEMM (fastnn_gemm.h) packs row-major A panels with it.
 *
 * FASTNN_TARGET_AVX2 / FASTNN_TARGET_AVX512: the target attributes of the two levels
 * (AVX-512 here means F + VL + DQ + BW, which the probe in fastnn_cpu.h requires). */
#ifndef FASTNN_SIMD_H
#define FASTNN_SIMD_H

#define FASTNN_OP(OP, OPS) FASTNN_OP_(OP, OPS)
#define FASTNN_OP_(OP, OPS) FASTNN_##OP##_##OPS

#define FASTNN_BCAST_plain(x) (x)
#define FASTNN_MADD_plain(c, a, b) ((c) + (a) * (b))
#define FASTNN_TRANSPOSE_plain(T, S, src, lds, dst, ldd)                                     \
    do {                                                                                     \
        for (int r_ = 0; r_ < (S); r_++)                                                     \
            for (int c_ = 0; c_ < (S); c_++) (dst)[c_ * (ldd) + r_] = (src)[r_ * (lds) + c_]; \
    } while (0)

#if defined(__GNUC__) && (defined(__x86_64__) || defined(__i386__))
#include <immintrin.h>

#define FASTNN_TARGET_AVX2 __attribute__((target("avx2,fma")))
#define FASTNN_TARGET_AVX512 __attribute__((target("avx512f,avx512vl,avx512dq,avx512bw,avx2,fma")))

#define FASTNN_BCAST_512d(x) _mm512_set1_pd(x)
#define FASTNN_BCAST_512s(x) _mm512_set1_ps(x)
#define FASTNN_BCAST_256d(x) _mm256_set1_pd(x)
#define FASTNN_BCAST_256s(x) _mm256_set1_ps(x)
#define FASTNN_BCAST_128d(x) _mm_set1_pd(x)
#define FASTNN_BCAST_128s(x) _mm_set1_ps(x)
#define FASTNN_BCAST_fmad(x) (x)
#define FASTNN_BCAST_fmas(x) (x)

#define FASTNN_MADD_512d(c, a, b) _mm512_fmadd_pd(a, b, c)
#define FASTNN_MADD_512s(c, a, b) _mm512_fmadd_ps(a, b, c)
#define FASTNN_MADD_256d(c, a, b) _mm256_fmadd_pd(a, b, c)
#define FASTNN_MADD_256s(c, a, b) _mm256_fmadd_ps(a, b, c)
#define FASTNN_MADD_128d(c, a, b) _mm_fmadd_pd(a, b, c)
#define FASTNN_MADD_128s(c, a, b) _mm_fmadd_ps(a, b, c)
#define FASTNN_MADD_fmad(c, a, b) __builtin_fma(a, b, c)
#define FASTNN_MADD_fmas(c, a, b) __builtin_fmaf(a, b, c)

/* S x S transposes (S = the lanes of one vector) in unpack / shuffle stages; dst[c, r] =
 * src[r, c]. Each is a statement; unaligned loads and stores. */
#define FASTNN_TRANSPOSE_128d(T, S, src, lds, dst, ldd)                                      \
    do {                                                                                     \
        const __m128d r0_ = _mm_loadu_pd((src)), r1_ = _mm_loadu_pd((src) + (lds));          \
        _mm_storeu_pd((dst), _mm_unpacklo_pd(r0_, r1_));                                     \
        _mm_storeu_pd((dst) + (ldd), _mm_unpackhi_pd(r0_, r1_));                             \
    } while (0)
#define FASTNN_TRANSPOSE_128s(T, S, src, lds, dst, ldd)                                      \
    do {                                                                                     \
        __m128 r0_ = _mm_loadu_ps((src)), r1_ = _mm_loadu_ps((src) + (lds));                 \
        __m128 r2_ = _mm_loadu_ps((src) + 2 * (lds)), r3_ = _mm_loadu_ps((src) + 3 * (lds)); \
        _MM_TRANSPOSE4_PS(r0_, r1_, r2_, r3_);                                               \
        _mm_storeu_ps((dst), r0_); _mm_storeu_ps((dst) + (ldd), r1_);                        \
        _mm_storeu_ps((dst) + 2 * (ldd), r2_); _mm_storeu_ps((dst) + 3 * (ldd), r3_);        \
    } while (0)
/* 4 x 4 doubles: t[2i + c] holds columns c (low 128 bits) and 2 + c (high) of rows 2i, 2i+1 */
#define FASTNN_TRANSPOSE_256d(T, S, src, lds, dst, ldd)                                      \
    do {                                                                                     \
        __m256d r_[4], t_[4];                                                                \
        for (int i_ = 0; i_ < 4; i_++) r_[i_] = _mm256_loadu_pd((src) + i_ * (lds));         \
        for (int i_ = 0; i_ < 2; i_++) {                                                     \
            t_[2 * i_] = _mm256_unpacklo_pd(r_[2 * i_], r_[2 * i_ + 1]);                     \
            t_[2 * i_ + 1] = _mm256_unpackhi_pd(r_[2 * i_], r_[2 * i_ + 1]);                 \
        }                                                                                    \
        for (int c_ = 0; c_ < 2; c_++) {                                                     \
            _mm256_storeu_pd((dst) + c_ * (ldd), _mm256_permute2f128_pd(t_[c_], t_[2 + c_], 0x20)); \
            _mm256_storeu_pd((dst) + (2 + c_) * (ldd), _mm256_permute2f128_pd(t_[c_], t_[2 + c_], 0x31)); \
        }                                                                                    \
    } while (0)
/* 8 x 8 floats: after two stages, u[4g + c] holds in its 128-bit lane l column 4l + c of
 * rows 4g .. 4g+3; the lanes are then paired across the two groups */
#define FASTNN_TRANSPOSE_256s(T, S, src, lds, dst, ldd)                                      \
    do {                                                                                     \
        __m256 r_[8], t_[8], u_[8];                                                          \
        for (int i_ = 0; i_ < 8; i_++) r_[i_] = _mm256_loadu_ps((src) + i_ * (lds));         \
        for (int i_ = 0; i_ < 4; i_++) {                                                     \
            t_[2 * i_] = _mm256_unpacklo_ps(r_[2 * i_], r_[2 * i_ + 1]);                     \
            t_[2 * i_ + 1] = _mm256_unpackhi_ps(r_[2 * i_], r_[2 * i_ + 1]);                 \
        }                                                                                    \
        for (int g_ = 0; g_ < 2; g_++) {                                                     \
            u_[4 * g_] = _mm256_shuffle_ps(t_[4 * g_], t_[4 * g_ + 2], 0x44);                \
            u_[4 * g_ + 1] = _mm256_shuffle_ps(t_[4 * g_], t_[4 * g_ + 2], 0xEE);            \
            u_[4 * g_ + 2] = _mm256_shuffle_ps(t_[4 * g_ + 1], t_[4 * g_ + 3], 0x44);        \
            u_[4 * g_ + 3] = _mm256_shuffle_ps(t_[4 * g_ + 1], t_[4 * g_ + 3], 0xEE);        \
        }                                                                                    \
        for (int c_ = 0; c_ < 4; c_++) {                                                     \
            _mm256_storeu_ps((dst) + c_ * (ldd), _mm256_permute2f128_ps(u_[c_], u_[4 + c_], 0x20)); \
            _mm256_storeu_ps((dst) + (4 + c_) * (ldd), _mm256_permute2f128_ps(u_[c_], u_[4 + c_], 0x31)); \
        }                                                                                    \
    } while (0)
#endif

#endif
