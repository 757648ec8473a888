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
 * scalar operand). Other architectures compile only the baseline, `plain`; build them
 * with -ffp-contract=off if the compiler would contract it (aarch64 GCC does).
 *
 * FASTNN_TARGET_AVX2 / FASTNN_TARGET_AVX512: the target attributes of the two levels
 * (AVX-512 here means F + VL + DQ + BW, which the probe in fastnn_cpu.h requires). */
#ifndef FASTNN_SIMD_H
#define FASTNN_SIMD_H

#define FASTNN_OP(OP, OPS) FASTNN_OP_(OP, OPS)
#define FASTNN_OP_(OP, OPS) FASTNN_##OP##_##OPS

#define FASTNN_BCAST_plain(x) (x)
#define FASTNN_MADD_plain(c, a, b) ((c) + (a) * (b))

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
#endif

#endif
