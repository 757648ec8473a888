/* GEMM with bias for fastnn: C[i, j] = bias[j] + sum_k A[i, k] * B[k, j].
 *
 * Register-blocked micro-kernels written with GCC/Clang vector extensions, compiled
 * twice: for the baseline ISA (SSE2 on x86-64) and, behind
 * __attribute__((target("avx2,fma"))), for AVX2+FMA, chosen at run time
 * (fastnn_gemm_init): the default build needs no -march flag. Compilers without vector
 * extensions get plain C loops with the same interface.
 *
 * Determinism: every C[i, j] is one accumulator lane summing k = 0..K-1 in order (one
 * multiply-add per k), then adding the bias. Which kernel, lane or thread computes it does
 * not change that sequence, so results do not depend on how callers split the work.
 *
 * Addressing: A[i * rsa + k * csa] (x.T needs no copy), B[k * rsb + j * csb]. Panels never
 * read past column N: a last, partial panel is shifted left to end at column N and only
 * its new columns are stored. Only when B is transposed (csb != 1) or narrower than one
 * panel is it copied, zero padded, into the caller's scratch `pack` (K * FASTNN_GEMM_MAX_NR
 * elements, one buffer per thread).
 */
#ifndef FASTNN_GEMM_H
#define FASTNN_GEMM_H

#include <stddef.h>
#include <string.h>

typedef ptrdiff_t fastnn_idx;

#define FASTNN_GEMM_MR 6         /* rows of a tile */
#define FASTNN_GEMM_MAX_NR 16    /* widest tile panel: float, AVX2 (2 x 8) */

#include "fastnn_cpu.h"

/* ---- micro-kernel template ----------------------------------------------------------
 * NAME_tile: C[0:mr, skip:skip+nc] of an MR x (2 LANES) tile (rows past mr repeat row 0).
 * NAME_row:  one row times all of B's columns [0, n), streaming B's rows.
 * b, bias, c point at the panel's first column; bias may be NULL. */
#if defined(__GNUC__)
#define FASTNN_MK(NAME, T, LANES, ATTR)                                                        \
typedef T NAME##_vt __attribute__((vector_size(sizeof(T) * LANES)));                           \
typedef T NAME##_vu __attribute__((vector_size(sizeof(T) * LANES), aligned(sizeof(T)), may_alias)); \
ATTR static void NAME##_tile(fastnn_idx K, const T *a, fastnn_idx rsa, fastnn_idx csa,         \
                             const T *b, fastnn_idx rsb, const T *bias, T *c, fastnn_idx ldc,  \
                             int mr, int skip, int nc)                                         \
{                                                                                              \
    const T *a0 = a, *a1 = a + (mr > 1) * rsa, *a2 = a + (mr > 2) * 2 * rsa;                   \
    const T *a3 = a + (mr > 3) * 3 * rsa, *a4 = a + (mr > 4) * 4 * rsa;                         \
    const T *a5 = a + (mr > 5) * 5 * rsa;                                                      \
    NAME##_vt c00 = {0}, c01 = {0}, c10 = {0}, c11 = {0}, c20 = {0}, c21 = {0};                \
    NAME##_vt c30 = {0}, c31 = {0}, c40 = {0}, c41 = {0}, c50 = {0}, c51 = {0};                \
    for (fastnn_idx k = 0; k < K; k++) {                                                       \
        /* two unaligned vector loads of B's row k; scalar * vector broadcasts A[i, k] */     \
        const NAME##_vt b0 = *(const NAME##_vu *)(b + k * rsb);                                \
        const NAME##_vt b1 = *(const NAME##_vu *)(b + k * rsb + LANES);                        \
        const fastnn_idx ak = k * csa;                                                         \
        T av;                                                                                  \
        av = a0[ak]; c00 += av * b0; c01 += av * b1;                                           \
        av = a1[ak]; c10 += av * b0; c11 += av * b1;                                           \
        av = a2[ak]; c20 += av * b0; c21 += av * b1;                                           \
        av = a3[ak]; c30 += av * b0; c31 += av * b1;                                           \
        av = a4[ak]; c40 += av * b0; c41 += av * b1;                                           \
        av = a5[ak]; c50 += av * b0; c51 += av * b1;                                           \
    }                                                                                          \
    NAME##_vt bb0 = {0}, bb1 = {0};                                                            \
    if (bias) {                                                                                \
        bb0 = *(const NAME##_vu *)bias;                                                        \
        bb1 = *(const NAME##_vu *)(bias + LANES);                                              \
    }                                                                                          \
    NAME##_vt rows[6][2] = {{c00 + bb0, c01 + bb1}, {c10 + bb0, c11 + bb1},                    \
                            {c20 + bb0, c21 + bb1}, {c30 + bb0, c31 + bb1},                    \
                            {c40 + bb0, c41 + bb1}, {c50 + bb0, c51 + bb1}};                   \
    for (int i = 0; i < mr; i++)                                                               \
        memcpy(c + i * ldc + skip, (const T *)rows[i] + skip, sizeof(T) * (size_t)nc);         \
}                                                                                              \
/* The same tile one vector wide: for a last panel of at most LANES columns, so narrow    \
 * tails (N = 50: 48 + 2) waste one vector instead of two. Same per-element operations.   */\
ATTR static void NAME##_tile1(fastnn_idx K, const T *a, fastnn_idx rsa, fastnn_idx csa,        \
                              const T *b, fastnn_idx rsb, const T *bias, T *c, fastnn_idx ldc, \
                              int mr, int skip, int nc)                                        \
{                                                                                              \
    const T *a0 = a, *a1 = a + (mr > 1) * rsa, *a2 = a + (mr > 2) * 2 * rsa;                   \
    const T *a3 = a + (mr > 3) * 3 * rsa, *a4 = a + (mr > 4) * 4 * rsa;                         \
    const T *a5 = a + (mr > 5) * 5 * rsa;                                                      \
    NAME##_vt c0 = {0}, c1 = {0}, c2 = {0}, c3 = {0}, c4 = {0}, c5 = {0};                      \
    for (fastnn_idx k = 0; k < K; k++) {                                                       \
        const NAME##_vt b0 = *(const NAME##_vu *)(b + k * rsb);                                \
        const fastnn_idx ak = k * csa;                                                         \
        c0 += a0[ak] * b0; c1 += a1[ak] * b0; c2 += a2[ak] * b0;                               \
        c3 += a3[ak] * b0; c4 += a4[ak] * b0; c5 += a5[ak] * b0;                               \
    }                                                                                          \
    NAME##_vt bb = {0};                                                                        \
    if (bias) bb = *(const NAME##_vu *)bias;                                                   \
    NAME##_vt rows[6] = {c0 + bb, c1 + bb, c2 + bb, c3 + bb, c4 + bb, c5 + bb};               \
    for (int i = 0; i < mr; i++)                                                               \
        memcpy(c + i * ldc + skip, (const T *)&rows[i] + skip, sizeof(T) * (size_t)nc);        \
}                                                                                              \
/* One row: c[0:n] = a[0:K] @ B[0:K, 0:n] (+ bias), streaming B's rows in order (the       \
 * prefetcher's best case) four at a time; c holds the partial sums (in L1). Each c[j] still \
 * gets one multiply-add per k in k order, so it equals the tile kernel's result bit for bit.*/\
ATTR static void NAME##_row(fastnn_idx K, const T *a, fastnn_idx csa, const T *b,              \
                            fastnn_idx rsb, const T *bias, T *c, fastnn_idx n)                 \
{                                                                                              \
    const fastnn_idx nv = n / LANES * LANES;                                                   \
    fastnn_idx j, k = 0;                                                                       \
    for (j = 0; j < n; j++) c[j] = 0;                                                          \
    for (; k + 4 <= K; k += 4) {                                                               \
        const T a0 = a[k * csa], a1 = a[(k + 1) * csa], a2 = a[(k + 2) * csa], a3 = a[(k + 3) * csa]; \
        const T *b0 = b + k * rsb, *b1 = b0 + rsb, *b2 = b1 + rsb, *b3 = b2 + rsb;             \
        for (j = 0; j < nv; j += LANES) {                                                      \
            NAME##_vt acc = *(NAME##_vu *)(c + j);                                             \
            acc += a0 * *(const NAME##_vu *)(b0 + j);                                          \
            acc += a1 * *(const NAME##_vu *)(b1 + j);                                          \
            acc += a2 * *(const NAME##_vu *)(b2 + j);                                          \
            acc += a3 * *(const NAME##_vu *)(b3 + j);                                          \
            *(NAME##_vu *)(c + j) = acc;                                                       \
        }                                                                                      \
        for (; j < n; j++) {                                                                   \
            T acc = c[j];                                                                      \
            acc += a0 * b0[j]; acc += a1 * b1[j]; acc += a2 * b2[j]; acc += a3 * b3[j];        \
            c[j] = acc;                                                                        \
        }                                                                                      \
    }                                                                                          \
    for (; k < K; k++) {                                                                       \
        const T ak = a[k * csa];                                                               \
        const T *bk = b + k * rsb;                                                             \
        for (j = 0; j < n; j++) { T acc = c[j]; acc += ak * bk[j]; c[j] = acc; }               \
    }                                                                                          \
    if (bias)                                                                                  \
        for (j = 0; j < n; j++) c[j] = c[j] + bias[j];                                         \
}
#else  /* no vector extensions: same interface and summation order, plain loops */
#define FASTNN_MK(NAME, T, LANES, ATTR)                                                        \
static void NAME##_tile(fastnn_idx K, const T *a, fastnn_idx rsa, fastnn_idx csa,              \
                        const T *b, fastnn_idx rsb, const T *bias, T *c, fastnn_idx ldc,       \
                        int mr, int skip, int nc)                                              \
{                                                                                              \
    for (int i = 0; i < mr; i++)                                                               \
        for (int j = skip; j < skip + nc; j++) {                                               \
            T s = 0;                                                                           \
            for (fastnn_idx k = 0; k < K; k++) s += a[i * rsa + k * csa] * b[k * rsb + j];     \
            c[i * ldc + j] = bias ? s + bias[j] : s;                                           \
        }                                                                                      \
}                                                                                              \
static void NAME##_tile1(fastnn_idx K, const T *a, fastnn_idx rsa, fastnn_idx csa,             \
                         const T *b, fastnn_idx rsb, const T *bias, T *c, fastnn_idx ldc,      \
                         int mr, int skip, int nc)                                             \
{                                                                                              \
    NAME##_tile(K, a, rsa, csa, b, rsb, bias, c, ldc, mr, skip, nc);                           \
}                                                                                              \
static void NAME##_row(fastnn_idx K, const T *a, fastnn_idx csa, const T *b,                   \
                       fastnn_idx rsb, const T *bias, T *c, fastnn_idx n)                      \
{                                                                                              \
    NAME##_tile(K, a, 0, csa, b, rsb, bias, c, 0, 1, 0, (int)n);                               \
}
#endif

/* baseline: 16-byte vectors (SSE2 on x86-64, NEON on arm64) */
FASTNN_MK(fastnn_mk_d_base, double, 2, )
FASTNN_MK(fastnn_mk_s_base, float, 4, )
#ifdef FASTNN_X86_DISPATCH
FASTNN_MK(fastnn_mk_d_avx2, double, 4, __attribute__((target("avx2,fma"))))
FASTNN_MK(fastnn_mk_s_avx2, float, 8, __attribute__((target("avx2,fma"))))
#endif

/* the GEMM instance for the active level (AVX-512 runs the AVX2 tiles for now) */
static inline int fastnn_gemm_init(void) { return fastnn_isa() >= FASTNN_ISA_AVX2; }

/* vector lanes of the active ISA for elements of `size` bytes */
static inline int fastnn_gemm_lanes(size_t size) { return (fastnn_gemm_init() ? 32 : 16) / (int)size; }

#ifdef FASTNN_X86_DISPATCH
#define FASTNN_PICK(SUFFIX, KIND, ...) \
    (isa == 1 ? fastnn_mk_##SUFFIX##_avx2_##KIND(__VA_ARGS__) : fastnn_mk_##SUFFIX##_base_##KIND(__VA_ARGS__))
#else
#define FASTNN_PICK(SUFFIX, KIND, ...) fastnn_mk_##SUFFIX##_base_##KIND(__VA_ARGS__)
#endif

/* ---- driver: rows [i0, i1) x columns [j0, j1) of C, where B has N columns ----------- */
#define FASTNN_GEMM_DRIVER(SUFFIX, T)                                                          \
static void fastnn_gemm_block_##SUFFIX(fastnn_idx i0, fastnn_idx i1, fastnn_idx j0,           \
        fastnn_idx j1, fastnn_idx N, fastnn_idx K, const T *A, fastnn_idx rsa, fastnn_idx csa, \
        const T *B, fastnn_idx rsb, fastnn_idx csb, const T *bias, T *C, fastnn_idx ldc,      \
        T *pack)                                                                             \
{                                                                                            \
    const int isa = fastnn_gemm_init();                                                      \
    const int nr = 2 * fastnn_gemm_lanes(sizeof(T));                                         \
    T bias_pad[FASTNN_GEMM_MAX_NR];                                                          \
    if (i1 - i0 == 1 && csb == 1) {  /* one sample: stream B's rows */                       \
        FASTNN_PICK(SUFFIX, row, K, A + i0 * rsa, csa, B + j0, rsb, bias ? bias + j0 : NULL, \
                    C + i0 * ldc + j0, j1 - j0);                                             \
        return;                                                                              \
    }                                                                                        \
    for (fastnn_idx j = j0; j < j1; ) {                                                      \
        /* a last panel of at most one vector uses the one-vector tile */                     \
        const int lanes = nr / 2;                                                            \
        const int w = ((j1 - j) <= lanes && N >= lanes) ? lanes : nr;                        \
        const int nc = (int)((j1 - j) < w ? (j1 - j) : w);                                   \
        /* the panel starts at `start` (shifted left when it would pass column N) */        \
        fastnn_idx start = (j + w <= N || N < w) ? j : N - w;                                \
        const int skip = (int)(j - start);                                                   \
        const T *bp = B + start * csb, *bb = bias ? bias + start : NULL;                     \
        fastnn_idx ldb = rsb;                                                                \
        if (csb != 1 || N < w) {                                                             \
            const int width = (int)((N - start) < w ? (N - start) : w);                      \
            for (fastnn_idx k = 0; k < K; k++) {                                             \
                for (int jj = 0; jj < width; jj++) pack[k * w + jj] = B[k * rsb + (start + jj) * csb]; \
                for (int jj = width; jj < w; jj++) pack[k * w + jj] = 0;                     \
            }                                                                                \
            if (bias) {                                                                      \
                for (int jj = 0; jj < w; jj++) bias_pad[jj] = jj < width ? bias[start + jj] : 0; \
                bb = bias_pad;                                                               \
            }                                                                                \
            bp = pack; ldb = w;                                                              \
        }                                                                                    \
        for (fastnn_idx i = i0; i < i1; i += FASTNN_GEMM_MR) {                               \
            const int mr = (int)((i1 - i) < FASTNN_GEMM_MR ? (i1 - i) : FASTNN_GEMM_MR);     \
            if (w == nr)                                                                     \
                FASTNN_PICK(SUFFIX, tile, K, A + i * rsa, rsa, csa, bp, ldb, bb, C + i * ldc + start, ldc, mr, skip, nc); \
            else                                                                             \
                FASTNN_PICK(SUFFIX, tile1, K, A + i * rsa, rsa, csa, bp, ldb, bb, C + i * ldc + start, ldc, mr, skip, nc); \
        }                                                                                    \
        j += nc;                                                                             \
    }                                                                                        \
}

FASTNN_GEMM_DRIVER(d, double)
FASTNN_GEMM_DRIVER(s, float)

#endif
