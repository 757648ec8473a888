/* GEMM with bias for fastnn: C[i, j] = bias[j] + sum_k A[i, k] * B[k, j].
 *
 * One source, compiled per ISA level (csrc/fastnn_cpu.h) x {float, double}: register
 * tiles written with GCC/Clang vector extensions, instantiated for
 *   baseline  16-byte vectors (SSE2 / NEON),          tiles up to  6 rows x 2 vectors;
 *   AVX2+FMA  32-byte vectors (+ 16-byte tails),      tiles up to  6 rows x 2 vectors;
 *   AVX-512   64-byte vectors (+ 32-, 16-byte tails), tiles up to  8 rows x 3 vectors
 *             (24 of the 32 zmm registers hold the tile; 12 x 2, 10 x 2, 8 x 3 and 6 x 4
 *             all ran within 3% of each other at 100 x 784 x 50 (tools/bench_gemm.c);
 *             8 x 3 covers N = 50 floats as 48 + a 16-byte tail, and loads least).
 * The entry points fastnn_gemm_block_d/s pick the instance with fastnn_isa().
 *
 * Determinism: every C[i, j] is one accumulator summing k = 0..K-1 in order, one
 * multiply-add per k (fused on AVX2/AVX-512, where the compiler contracts `c += a * b`;
 * separately rounded at the baseline), then the bias. Which tile, lane, vector width or
 * thread computes it does not change that sequence, so the result never depends on how
 * callers split the work (it may differ between ISA levels, within rounding).
 *
 * Addressing: A[i * rsa + k * csa] (x.T needs no copy), B[k * rsb + j * csb],
 * C[i * ldc + j]. Column panels never read past column N:
 *   - whole-vector panels of NVMAX vectors, then one of fewer vectors;
 *   - a ragged end takes the narrowest vector (64, 32 or 16 bytes) that holds it,
 *     shifted left to end at the panel's last column (only its new columns are stored);
 *   - when N is narrower than the narrowest vector, a scalar tile.
 * A transposed B (csb != 1) is copied, panel by panel and KC rows of k at a time, into a
 * small zero-padded buffer on the stack (FASTNN_GEMM_PACK_BYTES); partial sums then rest
 * in C between k-chunks (the same accumulator, the same order). No heap memory: the
 * kernels cannot fail.
 * Small shapes (the nnfs spiral net's 3000 x 64 @ 64 x 3, x.T @ dz with 2 rows, ...):
 *   - 1 to 3 rows (M <= 3) stream B's rows once: up to ROWNV vectors of C stay in
 *     registers (the last one shifted left to end at column N);
 *   - 1 to 3 columns (a whole narrow C, or the ragged end of a wider one: 50 = 48 + 2)
 *     put ROWS in the vector lanes instead (C^T = B^T A^T): A's columns are read in
 *     place when A is column-major (x.T @ dz), else packed with S x S transposes;
 *     what is left below a vector of rows goes to the scalar tile.
 * Every path performs each element's multiply-adds in k order into one accumulator, so
 * which one computes an element never changes its bits.
 * Column sums (db = sum(dout, axis=0)), one double accumulator per column adding the
 * rows in order, are here too (fastnn_colsum_d/s).
 */
#ifndef FASTNN_GEMM_H
#define FASTNN_GEMM_H

#include <stddef.h>
#include <string.h>

#include "fastnn_cpu.h"

typedef ptrdiff_t fastnn_idx;

#define FASTNN_GEMM_PACK_BYTES 16384   /* stack buffer for a transposed B's panel */

#if defined(__GNUC__)
#include "fastnn_simd.h"
#define FASTNN_UNROLL _Pragma("GCC unroll 32")

/* ---- one vector width: NAME_tile (rows x vectors of one panel) ----------------------
 * C[0:MR, skip:skip+nc] of an MR x (NV * L) panel (0 < MR <= MRMAX, 0 < NV <= NVMAX);
 * b, bias, c point at the panel's first column; load_c: start from C's values (a later
 * k-chunk) instead of 0; bias (NULL: none) is added after the last k. */
#define FASTNN_GEMM_WIDTH(NAME, T, L, ATTR, MRMAX, NVMAX, OPS)                                    \
typedef T NAME##_vt __attribute__((vector_size(sizeof(T) * (L))));                           \
typedef T NAME##_vu __attribute__((vector_size(sizeof(T) * (L)), aligned(sizeof(T)), may_alias)); \
ATTR static inline __attribute__((always_inline)) void NAME##_body(                          \
        const int MR, const int NV, fastnn_idx K, const T *a, fastnn_idx rsa, fastnn_idx csa, \
        const T *b, fastnn_idx rsb, const T *bias, T *c, fastnn_idx ldc, int skip, int nc,   \
        int load_c)                                                                          \
{                                                                                            \
    NAME##_vt acc[MRMAX][NVMAX];                                                             \
    const T *ar[MRMAX];                                                                      \
    FASTNN_UNROLL for (int r = 0; r < MR; r++) ar[r] = a + r * rsa;                          \
    const int full = skip == 0 && nc == NV * (L);                                            \
    FASTNN_UNROLL for (int r = 0; r < MR; r++)                                               \
        FASTNN_UNROLL for (int v = 0; v < NV; v++) acc[r][v] = (NAME##_vt){0};               \
    if (load_c) {  /* a later k-chunk: continue from the partial sums in C */                 \
        T tmp[NVMAX * (L)];                                                                  \
        FASTNN_UNROLL for (int r = 0; r < MR; r++) {                                         \
            if (full) {                                                                      \
                FASTNN_UNROLL for (int v = 0; v < NV; v++) acc[r][v] = *(const NAME##_vu *)(c + r * ldc + v * (L)); \
            } else {                                                                         \
                memset(tmp, 0, sizeof(tmp));                                                 \
                memcpy(tmp + skip, c + r * ldc + skip, sizeof(T) * (size_t)nc);              \
                FASTNN_UNROLL for (int v = 0; v < NV; v++) acc[r][v] = *(const NAME##_vu *)(tmp + v * (L)); \
            }                                                                                \
        }                                                                                    \
    }                                                                                        \
    for (fastnn_idx k = 0; k < K; k++) {                                                     \
        NAME##_vt bv[NVMAX];                                                                 \
        FASTNN_UNROLL for (int v = 0; v < NV; v++)                                           \
            bv[v] = *(const NAME##_vu *)(b + k * rsb + v * (L));                             \
        FASTNN_UNROLL for (int r = 0; r < MR; r++) {                                         \
            const __typeof__(FASTNN_OP(BCAST, OPS)((T)0)) av = FASTNN_OP(BCAST, OPS)(ar[r][k * csa]); \
            FASTNN_UNROLL for (int v = 0; v < NV; v++)                                       \
                acc[r][v] = FASTNN_OP(MADD, OPS)(acc[r][v], av, bv[v]);  /* c += a * b */    \
        }                                                                                    \
    }                                                                                        \
    if (bias)                                                                                \
        FASTNN_UNROLL for (int r = 0; r < MR; r++)                                           \
            FASTNN_UNROLL for (int v = 0; v < NV; v++)                                       \
                acc[r][v] += *(const NAME##_vu *)(bias + v * (L));                           \
    if (full) {                                                                              \
        FASTNN_UNROLL for (int r = 0; r < MR; r++)                                           \
            FASTNN_UNROLL for (int v = 0; v < NV; v++)                                       \
                *(NAME##_vu *)(c + r * ldc + v * (L)) = acc[r][v];                           \
    } else {                                                                                 \
        T tmp[NVMAX * (L)];                                                                  \
        FASTNN_UNROLL for (int r = 0; r < MR; r++) {                                         \
            FASTNN_UNROLL for (int v = 0; v < NV; v++) *(NAME##_vu *)(tmp + v * (L)) = acc[r][v]; \
            memcpy(c + r * ldc + skip, tmp + skip, sizeof(T) * (size_t)nc);                  \
        }                                                                                    \
    }                                                                                        \
}                                                                                            \
ATTR static inline __attribute__((always_inline)) void NAME##_rows(                          \
        const int MR, int nv, fastnn_idx K, const T *a, fastnn_idx rsa, fastnn_idx csa,      \
        const T *b, fastnn_idx rsb, const T *bias, T *c, fastnn_idx ldc, int skip, int nc,   \
        int load_c)                                                                          \
{                                                                                            \
    switch (nv) {                                                                            \
    case 1: NAME##_body(MR, 1, K, a, rsa, csa, b, rsb, bias, c, ldc, skip, nc, load_c); break; \
    case 2: if (NVMAX >= 2) NAME##_body(MR, NVMAX >= 2 ? 2 : 1, K, a, rsa, csa, b, rsb, bias, c, ldc, skip, nc, load_c); break; \
    case 3: if (NVMAX >= 3) NAME##_body(MR, NVMAX >= 3 ? 3 : 1, K, a, rsa, csa, b, rsb, bias, c, ldc, skip, nc, load_c); break; \
    default: if (NVMAX >= 4) NAME##_body(MR, NVMAX >= 4 ? 4 : 1, K, a, rsa, csa, b, rsb, bias, c, ldc, skip, nc, load_c); break; \
    }                                                                                        \
}                                                                                            \
ATTR static void NAME##_tile(int mr, int nv, fastnn_idx K, const T *a, fastnn_idx rsa,      \
                             fastnn_idx csa, const T *b, fastnn_idx rsb, const T *bias, T *c, \
                             fastnn_idx ldc, int skip, int nc, int load_c)                   \
{                                                                                            \
    switch (mr) {                                                                            \
    FASTNN_GEMM_MR_CASES(NAME, MRMAX)                                                        \
    }                                                                                        \
}

#define FASTNN_GEMM_MR_CASE(NAME, MRMAX, R)                                                  \
    case R: if (MRMAX >= R) NAME##_rows(MRMAX >= R ? R : 1, nv, K, a, rsa, csa, b, rsb, bias, c, ldc, skip, nc, load_c); break;
#define FASTNN_GEMM_MR_CASES(NAME, MRMAX)                                                    \
    FASTNN_GEMM_MR_CASE(NAME, MRMAX, 1) FASTNN_GEMM_MR_CASE(NAME, MRMAX, 2)                  \
    FASTNN_GEMM_MR_CASE(NAME, MRMAX, 3) FASTNN_GEMM_MR_CASE(NAME, MRMAX, 4)                  \
    FASTNN_GEMM_MR_CASE(NAME, MRMAX, 5) FASTNN_GEMM_MR_CASE(NAME, MRMAX, 6)                  \
    FASTNN_GEMM_MR_CASE(NAME, MRMAX, 7) FASTNN_GEMM_MR_CASE(NAME, MRMAX, 8)                  \
    FASTNN_GEMM_MR_CASE(NAME, MRMAX, 9) FASTNN_GEMM_MR_CASE(NAME, MRMAX, 10)                 \
    FASTNN_GEMM_MR_CASE(NAME, MRMAX, 11) FASTNN_GEMM_MR_CASE(NAME, MRMAX, 12)

/* ---- a few rows, streaming B: c[0:MR, 0:n] = a[0:MR, 0:K] @ B[0:K, 0:n] (+ bias) ---------
 * MR (1 to 3) rows x NV vectors of L lanes in registers (MR * NV <= ROWNV), vector v at
 * column v * L except the last, at jl (= n - L: it overlaps its neighbour when n is not
 * a multiple of L; the overlapped columns get the same value twice). B's rows are read
 * once, whole, in order (x.T @ dz with 2 or 3 rows of x.T: one pass over dz). Same
 * per-element operations as the tiles. */
#define FASTNN_GEMM_ROW(NAME, T, L, ATTR, ROWNV, OPS)                                             \
ATTR static inline __attribute__((always_inline)) void NAME##_rowbody(                       \
        const int MR, const int NV, fastnn_idx K, const T *a, fastnn_idx rsa, fastnn_idx csa, \
        const T *b, fastnn_idx rsb, const T *bias, T *c, fastnn_idx ldc, fastnn_idx jl)      \
{                                                                                            \
    NAME##_vt acc[3][ROWNV];                                                                 \
    fastnn_idx off[ROWNV];                                                                   \
    FASTNN_UNROLL for (int v = 0; v < NV; v++) off[v] = v == NV - 1 ? jl : v * (L);         \
    FASTNN_UNROLL for (int r = 0; r < MR; r++)                                               \
        FASTNN_UNROLL for (int v = 0; v < NV; v++) acc[r][v] = (NAME##_vt){0};               \
    for (fastnn_idx k = 0; k < K; k++) {                                                     \
        const T *bk = b + k * rsb;                                                           \
        FASTNN_UNROLL for (int r = 0; r < MR; r++) {                                         \
            const __typeof__(FASTNN_OP(BCAST, OPS)((T)0)) av = FASTNN_OP(BCAST, OPS)(a[r * rsa + k * csa]); \
            FASTNN_UNROLL for (int v = 0; v < NV; v++)                                       \
                acc[r][v] = FASTNN_OP(MADD, OPS)(acc[r][v], av, *(const NAME##_vu *)(bk + off[v]));  /* c += a * b */ \
        }                                                                                    \
    }                                                                                        \
    FASTNN_UNROLL for (int r = 0; r < MR; r++) {                                             \
        if (bias)                                                                            \
            FASTNN_UNROLL for (int v = 0; v < NV; v++) acc[r][v] += *(const NAME##_vu *)(bias + off[v]); \
        FASTNN_UNROLL for (int v = 0; v < NV; v++) *(NAME##_vu *)(c + r * ldc + off[v]) = acc[r][v]; \
    }                                                                                        \
}                                                                                            \
ATTR static void NAME##_row(int mr, int nv, fastnn_idx K, const T *a, fastnn_idx rsa,       \
                            fastnn_idx csa, const T *b, fastnn_idx rsb, const T *bias, T *c, \
                            fastnn_idx ldc, fastnn_idx jl)                                   \
{                                                                                            \
    switch (mr * 32 + nv) {                                                                  \
    FASTNN_GEMM_ROW_CASES(NAME, ROWNV, 1) FASTNN_GEMM_ROW_CASES(NAME, ROWNV, 2)              \
    FASTNN_GEMM_ROW_CASES(NAME, ROWNV, 3)                                                    \
    default: break;                                                                          \
    }                                                                                        \
}
#define FASTNN_GEMM_ROW_CASE(NAME, ROWNV, R, V)                                              \
    case R * 32 + V: if ((R) * (V) <= ROWNV) NAME##_rowbody(R, (R) * (V) <= ROWNV ? V : 1, K, a, rsa, csa, b, rsb, bias, c, ldc, jl); break;
#define FASTNN_GEMM_ROW_CASES(NAME, ROWNV, R)                                                \
    FASTNN_GEMM_ROW_CASE(NAME, ROWNV, R, 1) FASTNN_GEMM_ROW_CASE(NAME, ROWNV, R, 2)          \
    FASTNN_GEMM_ROW_CASE(NAME, ROWNV, R, 3) FASTNN_GEMM_ROW_CASE(NAME, ROWNV, R, 4)          \
    FASTNN_GEMM_ROW_CASE(NAME, ROWNV, R, 5) FASTNN_GEMM_ROW_CASE(NAME, ROWNV, R, 6)          \
    FASTNN_GEMM_ROW_CASE(NAME, ROWNV, R, 7) FASTNN_GEMM_ROW_CASE(NAME, ROWNV, R, 8)          \
    FASTNN_GEMM_ROW_CASE(NAME, ROWNV, R, 9) FASTNN_GEMM_ROW_CASE(NAME, ROWNV, R, 10)         \
    FASTNN_GEMM_ROW_CASE(NAME, ROWNV, R, 11) FASTNN_GEMM_ROW_CASE(NAME, ROWNV, R, 12)        \
    FASTNN_GEMM_ROW_CASE(NAME, ROWNV, R, 13) FASTNN_GEMM_ROW_CASE(NAME, ROWNV, R, 14)        \
    FASTNN_GEMM_ROW_CASE(NAME, ROWNV, R, 15) FASTNN_GEMM_ROW_CASE(NAME, ROWNV, R, 16)

/* ---- scalar tile: C[0:mr, 0:nc] for a panel narrower than any vector (nc <= 3) ----------- */
#define FASTNN_GEMM_SCALAR(NAME, T, ATTR, MRMAX, OPS)                                             \
ATTR static inline __attribute__((always_inline)) void NAME##_sbody(                         \
        const int MR, const int NC, fastnn_idx K, const T *a, fastnn_idx rsa, fastnn_idx csa, \
        const T *b, fastnn_idx rsb, fastnn_idx csb, const T *bias, T *c, fastnn_idx ldc)     \
{                                                                                            \
    T acc[12][3];                                                                            \
    FASTNN_UNROLL for (int r = 0; r < MR; r++)                                               \
        FASTNN_UNROLL for (int j = 0; j < NC; j++) acc[r][j] = 0;                            \
    for (fastnn_idx k = 0; k < K; k++) {                                                     \
        T bk[3];                                                                             \
        FASTNN_UNROLL for (int j = 0; j < NC; j++) bk[j] = b[k * rsb + j * csb];             \
        FASTNN_UNROLL for (int r = 0; r < MR; r++) {                                         \
            const T av = a[r * rsa + k * csa];                                               \
            FASTNN_UNROLL for (int j = 0; j < NC; j++)                                       \
                acc[r][j] = FASTNN_OP(MADD, OPS)(acc[r][j], av, bk[j]);  /* c += a * b */    \
        }                                                                                    \
    }                                                                                        \
    FASTNN_UNROLL for (int r = 0; r < MR; r++)                                               \
        FASTNN_UNROLL for (int j = 0; j < NC; j++)                                           \
            c[r * ldc + j] = bias ? acc[r][j] + bias[j] : acc[r][j];                         \
}                                                                                            \
ATTR static void NAME##_stile(int mr, int nc, fastnn_idx K, const T *a, fastnn_idx rsa,     \
                              fastnn_idx csa, const T *b, fastnn_idx rsb, fastnn_idx csb,    \
                              const T *bias, T *c, fastnn_idx ldc)                           \
{                                                                                            \
    /* rows in groups of up to 12 / nc: 12 independent multiply-add chains hide the        \
     * latency (a one-column W over a long K is a chain per row) */                         \
    const int per = 12 / nc;                                                                 \
    for (; mr > 0; mr -= per, a += per * rsa, c += per * ldc) {                              \
        const int m = mr < per ? mr : per;                                                   \
        switch (nc * 16 + m) {                                                               \
        FASTNN_GEMM_SCASES(NAME, 1, 16) FASTNN_GEMM_SCASES(NAME, 2, 32)                      \
        FASTNN_GEMM_SCASES(NAME, 3, 48)                                                      \
        default: break;                                                                      \
        }                                                                                    \
    }                                                                                        \
}

/* cases nc * 16 + m for m = 1 .. 12 / nc */
#define FASTNN_GEMM_SCASE(NAME, NC, M, BASE)                                                 \
    case BASE + M: if ((M) * (NC) <= 12) NAME##_sbody((M) * (NC) <= 12 ? M : 1, NC, K, a, rsa, csa, b, rsb, csb, bias, c, ldc); break;
#define FASTNN_GEMM_SCASES(NAME, NC, BASE)                                                   \
    FASTNN_GEMM_SCASE(NAME, NC, 1, BASE) FASTNN_GEMM_SCASE(NAME, NC, 2, BASE)                \
    FASTNN_GEMM_SCASE(NAME, NC, 3, BASE) FASTNN_GEMM_SCASE(NAME, NC, 4, BASE)                \
    FASTNN_GEMM_SCASE(NAME, NC, 5, BASE) FASTNN_GEMM_SCASE(NAME, NC, 6, BASE)                \
    FASTNN_GEMM_SCASE(NAME, NC, 7, BASE) FASTNN_GEMM_SCASE(NAME, NC, 8, BASE)                \
    FASTNN_GEMM_SCASE(NAME, NC, 9, BASE) FASTNN_GEMM_SCASE(NAME, NC, 10, BASE)               \
    FASTNN_GEMM_SCASE(NAME, NC, 11, BASE) FASTNN_GEMM_SCASE(NAME, NC, 12, BASE)

/* ---- narrow C (1 to 3 columns), lanes over rows: C^T = B^T @ A^T ------------------------
 * A (m, K) @ B (K, nc) with nc <= 3 wastes most lanes of a column vector, so here a
 * vector holds L consecutive ROWS of one column of C: acc[j][v] lane l = C[v L + l, j]
 * accumulates A[row, k] * B[k, j] over k in order, one multiply-add per k (B[k, j]
 * broadcast) - the same operations, in the same order, as the tiles. A's rows-by-k panel
 * is read straight from memory when A is column-major (rsa == 1: x.T @ dz), else packed
 * k-major into a stack buffer (row-major A: S x S transposes, TOPS; other strides: one
 * element at a time), KC columns of k at a time, the partial sums kept in `part` between
 * chunks. Rows below a whole vector go to the scalar tile. */
#define FASTNN_GEMM_NVT 8     /* at most 8 row vectors per narrow tile */
#define FASTNN_GEMM_NARROW(NAME, P, T, L, ATTR, TACC, OPS, TOPS, TS)                          \
ATTR static inline __attribute__((always_inline)) void NAME##_nbody(                         \
        const int NC, const int NV, fastnn_idx kn, const T *ap, fastnn_idx astep,           \
        const T *b, fastnn_idx rsb, fastnn_idx csb, T *part, int load)                       \
{                                                                                            \
    NAME##_vt acc[3][FASTNN_GEMM_NVT];                                                       \
    FASTNN_UNROLL for (int j = 0; j < NC; j++)                                               \
        FASTNN_UNROLL for (int v = 0; v < NV; v++)                                           \
            acc[j][v] = load ? (NAME##_vt)*(const NAME##_vu *)(part + (j * NV + v) * (L)) : (NAME##_vt){0}; \
    for (fastnn_idx k = 0; k < kn; k++) {                                                    \
        const T *ak = ap + k * astep;                                                        \
        __typeof__(FASTNN_OP(BCAST, OPS)((T)0)) bv[3];                                       \
        FASTNN_UNROLL for (int j = 0; j < NC; j++) bv[j] = FASTNN_OP(BCAST, OPS)(b[k * rsb + j * csb]); \
        FASTNN_UNROLL for (int v = 0; v < NV; v++) {                                         \
            const NAME##_vt av = *(const NAME##_vu *)(ak + v * (L));                         \
            FASTNN_UNROLL for (int j = 0; j < NC; j++)                                       \
                acc[j][v] = FASTNN_OP(MADD, OPS)(acc[j][v], av, bv[j]);  /* c += a * b */    \
        }                                                                                    \
    }                                                                                        \
    FASTNN_UNROLL for (int j = 0; j < NC; j++)                                               \
        FASTNN_UNROLL for (int v = 0; v < NV; v++)                                           \
            *(NAME##_vu *)(part + (j * NV + v) * (L)) = acc[j][v];                           \
}                                                                                            \
ATTR static void NAME##_ntile(int nc, int nv, fastnn_idx kn, const T *ap, fastnn_idx astep,  \
                              const T *b, fastnn_idx rsb, fastnn_idx csb, T *part, int load) \
{                                                                                            \
    switch (nc * 16 + nv) {                                                                  \
    FASTNN_GEMM_NCASES(NAME, TACC, 1) FASTNN_GEMM_NCASES(NAME, TACC, 2)                      \
    FASTNN_GEMM_NCASES(NAME, TACC, 3)                                                        \
    default: break;                                                                          \
    }                                                                                        \
}                                                                                            \
/* A[0:w, k0:k0+kn] -> pack[kk * w + r] (w a multiple of L, L of TS) */                       \
ATTR static void NAME##_npack(fastnn_idx w, fastnn_idx kn, const T *A, fastnn_idx rsa,       \
                              fastnn_idx csa, T *pack)                                       \
{                                                                                            \
    fastnn_idx kk = 0;                                                                       \
    if (csa == 1) {  /* TS rows at a time, read along k */                                  \
        const fastnn_idx kt = kn / (TS) * (TS);                                              \
        for (fastnn_idx r = 0; r < w; r += (TS))                                             \
            for (kk = 0; kk < kt; kk += (TS))                                                \
                FASTNN_OP(TRANSPOSE, TOPS)(T, TS, A + r * rsa + kk, rsa, pack + kk * w + r, w); \
        kk = kt;                                                                             \
    }                                                                                        \
    for (; kk < kn; kk++)                                                                    \
        for (fastnn_idx r = 0; r < w; r++) pack[kk * w + r] = A[r * rsa + kk * csa];         \
}                                                                                            \
/* C[0:m, 0:nc] = A[0:m, :] @ B[:, 0:nc] (+ bias), nc <= 3, m >= L */                        \
ATTR static void NAME##_narrow(fastnn_idx m, int nc, fastnn_idx K, const T *A, fastnn_idx rsa, \
        fastnn_idx csa, const T *B, fastnn_idx rsb, fastnn_idx csb, const T *bias, T *C,     \
        fastnn_idx ldc)                                                                      \
{                                                                                            \
    /* read straight from A: as many rows as the registers hold (fewer passes over A's    \
     * columns); packed: enough rows for 8 independent chains (multiply-add latency),    \
     * so that each pack covers many k */                                                 \
    int nvmax = (TACC) / nc < FASTNN_GEMM_NVT ? (TACC) / nc : FASTNN_GEMM_NVT;               \
    if (rsa != 1 && (8 + nc - 1) / nc < nvmax) nvmax = (8 + nc - 1) / nc;                    \
    T part[3 * FASTNN_GEMM_NVT * (L)] __attribute__((aligned(64)));                          \
    T pack[FASTNN_GEMM_PACK_BYTES / sizeof(T)] __attribute__((aligned(64)));                 \
    fastnn_idx i = 0;                                                                        \
    while (m - i >= (L)) {                                                                   \
        const int nv = (int)(m - i >= nvmax * (L) ? nvmax : (m - i) / (L));                  \
        const fastnn_idx w = nv * (L);                                                       \
        const T *a = A + i * rsa;                                                            \
        if (rsa == 1) {  /* A column-major: its k-th column of rows is contiguous */         \
            NAME##_ntile(nc, nv, K, a, csa, B, rsb, csb, part, 0);                           \
        } else {                                                                             \
            fastnn_idx kc = (fastnn_idx)(sizeof(pack) / sizeof(T)) / w / (TS) * (TS);        \
            if (kc < 1) kc = 1;                                                              \
            for (fastnn_idx k0 = 0; k0 < K; k0 += kc) {                                      \
                const fastnn_idx kn = K - k0 < kc ? K - k0 : kc;                             \
                NAME##_npack(w, kn, a + k0 * csa, rsa, csa, pack);                           \
                NAME##_ntile(nc, nv, kn, pack, w, B + k0 * rsb, rsb, csb, part, k0 > 0);     \
            }                                                                                \
        }                                                                                    \
        for (int j = 0; j < nc; j++) {  /* C[i + r, j] = part[j][r] (+ bias[j]) */           \
            const T *pj = part + j * w;                                                      \
            T *cj = C + i * ldc + j;                                                         \
            if (bias) {                                                                      \
                const T bj = bias[j];                                                        \
                for (fastnn_idx r = 0; r < w; r++) cj[r * ldc] = pj[r] + bj;                 \
            } else {                                                                         \
                for (fastnn_idx r = 0; r < w; r++) cj[r * ldc] = pj[r];                      \
            }                                                                                \
        }                                                                                    \
        i += w;                                                                              \
    }                                                                                        \
    if (i < m)                                                                               \
        P##_s_stile((int)(m - i), nc, K, A + i * rsa, rsa, csa, B, rsb, csb, bias, C + i * ldc, ldc); \
}
#define FASTNN_GEMM_NCASE(NAME, TACC, NC, V)                                                 \
    case NC * 16 + V: if ((NC) * (V) <= (TACC)) NAME##_nbody(NC, (NC) * (V) <= (TACC) ? V : 1, kn, ap, astep, b, rsb, csb, part, load); break;
#define FASTNN_GEMM_NCASES(NAME, TACC, NC)                                                   \
    FASTNN_GEMM_NCASE(NAME, TACC, NC, 1) FASTNN_GEMM_NCASE(NAME, TACC, NC, 2)                \
    FASTNN_GEMM_NCASE(NAME, TACC, NC, 3) FASTNN_GEMM_NCASE(NAME, TACC, NC, 4)                \
    FASTNN_GEMM_NCASE(NAME, TACC, NC, 5) FASTNN_GEMM_NCASE(NAME, TACC, NC, 6)                \
    FASTNN_GEMM_NCASE(NAME, TACC, NC, 7) FASTNN_GEMM_NCASE(NAME, TACC, NC, 8)

/* ---- the driver of one instance: rows [i0, i1) x columns [j0, j1) of C (B has N) -------
 * P: the instance's prefix; its vector widths are P##_w0 (L lanes, tiles MRMAX x NVMAX,
 * one-row kernel of ROWNV vectors) and, when NW >= 1 / 2, the narrower P##_w1 (L / 2) and
 * P##_w2 (L / 4), one vector wide, for ragged ends. */
#define FASTNN_GEMM_DRIVER(P, T, ATTR, L, MRMAX, NVMAX, ROWNV, NW, HALFPACK)                  \
/* one panel [start, start + width) of every row tile; `which` picks the vector width */     \
ATTR static inline __attribute__((always_inline)) void P##_panel(                            \
        int which, int nv, fastnn_idx m, fastnn_idx K, const T *A, fastnn_idx rsa,           \
        fastnn_idx csa, const T *b, fastnn_idx rsb, const T *bias, T *c, fastnn_idx ldc,     \
        int skip, int nc, int load_c)                                                        \
{                                                                                            \
    /* ceil(m / MRMAX) row tiles of near-equal size (50 rows: 5 x 10, not 4 x 12 + 2) */     \
    const fastnn_idx nt = (m + MRMAX - 1) / MRMAX;                                           \
    fastnn_idx i = 0;                                                                        \
    for (fastnn_idx t = 1; t <= nt; t++) {                                                   \
        const int mr = (int)(m * t / nt - i);                                                \
        const T *a = A + i * rsa;                                                            \
        T *ct = c + i * ldc;                                                                 \
        if (which == 0) P##_w0_tile(mr, nv, K, a, rsa, csa, b, rsb, bias, ct, ldc, skip, nc, load_c); \
        else if (NW >= 1 && which == 1) P##_w1_tile(mr, 1, K, a, rsa, csa, b, rsb, bias, ct, ldc, skip, nc, load_c); \
        else if (NW >= 2) P##_w2_tile(mr, 1, K, a, rsa, csa, b, rsb, bias, ct, ldc, skip, nc, load_c); \
        i += mr;                                                                             \
    }                                                                                        \
}                                                                                            \
/* the narrowest vector width (0, 1, 2 = L, L/2, L/4 lanes) that holds r columns */          \
static inline int P##_narrowest(fastnn_idx r)                                                \
{                                                                                            \
    if (NW >= 2 && r <= (L) / 4) return 2;                                                   \
    if (NW >= 1 && r <= (L) / 2) return 1;                                                   \
    return 0;                                                                                \
}                                                                                            \
/* the narrow path (1 to 3 columns, m rows): a packed (row-major) A on half-width vectors \
 * when HALFPACK (AVX-512: 256-bit transposes feed 256-bit tiles without splitting them, \
 * 10% faster on Zen 4), else the full width; returns 0 when m is below a vector */        \
ATTR static inline int P##_narrow(fastnn_idx m, int nc, fastnn_idx K, const T *A,           \
        fastnn_idx rsa, fastnn_idx csa, const T *B, fastnn_idx rsb, fastnn_idx csb,          \
        const T *bias, T *C, fastnn_idx ldc)                                                 \
{                                                                                            \
    if (K <= 0) return 0;                                                                    \
    /* two doubles fill a 16-byte vector: its tiles waste no lane and need no transpose     \
     * (3000 x 64 @ 64 x 2: 38 us, packed 45 us); read in place, lanes over rows win */     \
    if (rsa != 1 && nc * sizeof(T) == 16) return 0;                                          \
    if (HALFPACK && rsa != 1 && m >= (L) / 2) {                                              \
        P##_w1_narrow(m, nc, K, A, rsa, csa, B, rsb, csb, bias, C, ldc);                     \
        return 1;                                                                            \
    }                                                                                        \
    if (m < (L)) return 0;                                                                   \
    P##_w0_narrow(m, nc, K, A, rsa, csa, B, rsb, csb, bias, C, ldc);                         \
    return 1;                                                                                \
}                                                                                            \
ATTR static void P##_block(fastnn_idx i0, fastnn_idx i1, fastnn_idx j0, fastnn_idx j1,      \
        fastnn_idx N, fastnn_idx K, const T *A, fastnn_idx rsa, fastnn_idx csa, const T *B,  \
        fastnn_idx rsb, fastnn_idx csb, const T *bias, T *C, fastnn_idx ldc)                 \
{                                                                                            \
    const fastnn_idx m = i1 - i0;                                                            \
    if (m <= 0 || j1 <= j0) return;                                                          \
    A += i0 * rsa;                                                                           \
    C += i0 * ldc;                                                                           \
    if (j1 - j0 <= 3 && P##_narrow(m, (int)(j1 - j0), K, A, rsa, csa, B + j0 * csb, rsb, csb, \
                                   bias ? bias + j0 : NULL, C + j0, ldc))                    \
        return;  /* 1 to 3 columns: lanes over rows */                                       \
    if (csb == 1 || K == 0) {                                                                \
        fastnn_idx j = j0;                                                                   \
        if (m <= 3 && j1 - j >= (L)) {  /* 1 to 3 rows: stream B, equal passes of <= ROWNV / m vectors */ \
            const fastnn_idx pmax = ROWNV / m;                                               \
            const fastnn_idx nvec = (j1 - j + (L) - 1) / (L);                                \
            const fastnn_idx npass = (nvec + pmax - 1) / pmax;                               \
            const int per_pass = (int)((nvec + npass - 1) / npass);                          \
            while (j1 - j >= (L)) {                                                          \
                const fastnn_idx r = j1 - j;                                                 \
                const int nv = (int)(r >= per_pass * (L) ? per_pass : (r + (L) - 1) / (L));   \
                const fastnn_idx w = r < nv * (L) ? r : nv * (L);                            \
                P##_w0_row((int)m, nv, K, A, rsa, csa, B + j, rsb, bias ? bias + j : NULL,   \
                           C + j, ldc, w - (L));                                             \
                j += w;                                                                      \
            }                                                                                \
        }                                                                                    \
        while (j < j1) {                                                                     \
            const fastnn_idx r = j1 - j;                                                     \
            if (r >= (L)) {  /* whole vectors */                                             \
                const int nv = (int)(r >= NVMAX * (L) ? NVMAX : r / (L));                    \
                P##_panel(0, nv, m, K, A, rsa, csa, B + j, rsb, bias ? bias + j : NULL,      \
                          C + j, ldc, 0, nv * (L), 0);                                       \
                j += nv * (L);                                                               \
                continue;                                                                    \
            }                                                                                \
            /* a ragged end: 1 to 3 columns over many rows, lanes over rows (a vector   \
             * of 4 or fewer lanes would wait on its few multiply-add chains); else the    \
             * narrowest vector that holds it, shifted to end at j1 (or to start at j)     \
             * when that stays inside [0, N); else the widest vector that fits inside it,  \
             * and again; below the narrowest vector, a scalar tile */                      \
            if (r <= 3 && P##_narrow(m, (int)r, K, A, rsa, csa, B + j, rsb, 1,              \
                                     bias ? bias + j : NULL, C + j, ldc)) {                  \
                j = j1;                                                                      \
                continue;                                                                    \
            }                                                                                \
            int which = P##_narrowest(r);                                                    \
            const fastnn_idx w = (L) >> which;                                               \
            fastnn_idx start = j1 - w >= 0 ? j1 - w : j;                                     \
            if (start + w <= N) {                                                            \
                P##_panel(which, 1, m, K, A, rsa, csa, B + start, rsb,                       \
                          bias ? bias + start : NULL, C + start, ldc, (int)(j - start), (int)r, 0); \
                j = j1;                                                                      \
                continue;                                                                    \
            }                                                                                \
            for (which = 0; which < NW && ((L) >> which) > r; which++) {}                    \
            if (((L) >> which) <= r) {                                                       \
                P##_panel(which, 1, m, K, A, rsa, csa, B + j, rsb, bias ? bias + j : NULL,   \
                          C + j, ldc, 0, (L) >> which, 0);                                   \
                j += (L) >> which;                                                           \
                continue;                                                                    \
            }                                                                                \
            P##_s_stile((int)m, (int)r, K, A, rsa, csa, B + j, rsb, 1, bias ? bias + j : NULL, \
                        C + j, ldc);                                                         \
            j = j1;                                                                          \
        }                                                                                    \
        return;                                                                              \
    }                                                                                        \
    /* B transposed (csb != 1): copy each panel, KC rows of k at a time, zero padded */      \
    T pack[FASTNN_GEMM_PACK_BYTES / sizeof(T)];                                              \
    T bias_pad[NVMAX * (L)];                                                                 \
    const fastnn_idx kc = FASTNN_GEMM_PACK_BYTES / sizeof(T) / (NVMAX * (L));                \
    for (fastnn_idx j = j0; j < j1; ) {                                                      \
        const fastnn_idx r = j1 - j;                                                         \
        const int which = r >= (L) ? 0 : P##_narrowest(r);                                   \
        const int nv = (int)(r >= NVMAX * (L) ? NVMAX : r >= (L) ? r / (L) : 1);             \
        const int w = nv * ((L) >> which);                                                   \
        const int nc = (int)(r < w ? r : w);                                                 \
        const T *bb = NULL;                                                                  \
        if (bias) {                                                                          \
            for (int jj = 0; jj < w; jj++) bias_pad[jj] = jj < nc ? bias[j + jj] : 0;        \
            bb = bias_pad;                                                                   \
        }                                                                                    \
        for (fastnn_idx k0 = 0; k0 < K; k0 += kc) {                                          \
            const fastnn_idx kn = K - k0 < kc ? K - k0 : kc;                                 \
            for (fastnn_idx kk = 0; kk < kn; kk++) {                                         \
                const T *src = B + (k0 + kk) * rsb + j * csb;                                \
                for (int jj = 0; jj < nc; jj++) pack[kk * w + jj] = src[jj * csb];           \
                for (int jj = nc; jj < w; jj++) pack[kk * w + jj] = 0;                       \
            }                                                                                \
            P##_panel(which, nv, m, kn, A + k0 * csa, rsa, csa, pack, w,                     \
                      k0 + kn == K ? bb : NULL, C + j, ldc, 0, nc, k0 > 0);                  \
        }                                                                                    \
        j += nc;                                                                             \
    }                                                                                        \
}

/* One instance: ISA level x element type. */
#define FASTNN_GEMM_INSTANCE(P, T, ATTR, L, MRMAX, NVMAX, ROWNV, NW, TACC, OPS0, OPS1, OPS2, OPSS, \
                             TOPS, TS, HALFPACK)                                              \
FASTNN_GEMM_WIDTH(P##_w0, T, L, ATTR, MRMAX, NVMAX, OPS0)                                    \
FASTNN_GEMM_ROW(P##_w0, T, L, ATTR, ROWNV, OPS0)                                             \
FASTNN_GEMM_WIDTH(P##_w1, T, (NW >= 1 ? (L) / 2 : (L)), ATTR, MRMAX, 1, OPS1)                 \
FASTNN_GEMM_WIDTH(P##_w2, T, (NW >= 2 ? (L) / 4 : (L)), ATTR, MRMAX, 1, OPS2)                 \
FASTNN_GEMM_SCALAR(P##_s, T, ATTR, 12, OPSS)                                                  \
FASTNN_GEMM_NARROW(P##_w0, P, T, L, ATTR, TACC, OPS0, TOPS, TS)                               \
FASTNN_GEMM_NARROW(P##_w1, P, T, (NW >= 1 ? (L) / 2 : (L)), ATTR, TACC, OPS1, TOPS, TS)        \
FASTNN_GEMM_DRIVER(P, T, ATTR, L, MRMAX, NVMAX, ROWNV, NW, HALFPACK)

/* baseline: 16-byte vectors (SSE2 on x86-64: 16 registers, so 6 x 2 tiles); the narrow
 * path's transposes are SSE2 shuffles on x86-64, element copies elsewhere */
#ifdef FASTNN_X86_DISPATCH
#define FASTNN_BASE_TOPS_d 128d
#define FASTNN_BASE_TOPS_s 128s
#else
#define FASTNN_BASE_TOPS_d plain
#define FASTNN_BASE_TOPS_s plain
#endif
FASTNN_GEMM_INSTANCE(fastnn_gk_base_d, double, , 2, 6, 2, 8, 0, 12, plain, plain, plain, plain,
                     FASTNN_BASE_TOPS_d, 2, 0)
FASTNN_GEMM_INSTANCE(fastnn_gk_base_s, float, , 4, 6, 2, 8, 0, 12, plain, plain, plain, plain,
                     FASTNN_BASE_TOPS_s, 4, 0)
#ifdef FASTNN_X86_DISPATCH
/* AVX2+FMA: 16 ymm registers: 6 x 2 tiles (12 accumulators) */
FASTNN_GEMM_INSTANCE(fastnn_gk_avx2_d, double, FASTNN_TARGET_AVX2, 4, 6, 2, 14, 1, 12,
                     256d, 128d, 256d, fmad, 256d, 4, 0)
FASTNN_GEMM_INSTANCE(fastnn_gk_avx2_s, float, FASTNN_TARGET_AVX2, 8, 6, 2, 14, 1, 12,
                     256s, 128s, 256s, fmas, 256s, 8, 0)
/* AVX-512: 32 zmm registers: 8 x 3 tiles (24 accumulators); 256-bit transposes */
FASTNN_GEMM_INSTANCE(fastnn_gk_avx512_d, double, FASTNN_TARGET_AVX512, 8, 8, 3, 16, 2, 24,
                     512d, 256d, 128d, fmad, 256d, 4, 1)
FASTNN_GEMM_INSTANCE(fastnn_gk_avx512_s, float, FASTNN_TARGET_AVX512, 16, 8, 3, 16, 2, 24,
                     512s, 256s, 128s, fmas, 256s, 8, 1)
#endif

#else  /* no vector extensions (MSVC): same interface and summation order, plain loops */
#define FASTNN_GEMM_PLAIN(P, T)                                                              \
static void P##_block(fastnn_idx i0, fastnn_idx i1, fastnn_idx j0, fastnn_idx j1,           \
        fastnn_idx N, fastnn_idx K, const T *A, fastnn_idx rsa, fastnn_idx csa, const T *B,  \
        fastnn_idx rsb, fastnn_idx csb, const T *bias, T *C, fastnn_idx ldc)                 \
{                                                                                            \
    (void)N;                                                                                 \
    for (fastnn_idx i = i0; i < i1; i++)                                                     \
        for (fastnn_idx j = j0; j < j1; j++) {                                               \
            T s = 0;                                                                         \
            for (fastnn_idx k = 0; k < K; k++) s += A[i * rsa + k * csa] * B[k * rsb + j * csb]; \
            C[i * ldc + j] = bias ? s + bias[j] : s;                                         \
        }                                                                                    \
}
FASTNN_GEMM_PLAIN(fastnn_gk_base_d, double)
FASTNN_GEMM_PLAIN(fastnn_gk_base_s, float)
#endif

/* ---- column sums: out[j] = sum over rows i of d[i * ld + j], rows in order, in double -----
 * (db = sum(dout, axis=0)). LD doubles per vector; a pass over the rows keeps up to 8
 * vectors of sums in registers (whole vectors), or up to LD - 1 scalar sums (the
 * columns left over). Each column is one double accumulator adding the rows in order,
 * so the bits do not depend on the vector width or on how callers split the columns. */
#if defined(__GNUC__)
#define FASTNN_COLSUM(P, T, ATTR, LD)                                                        \
typedef double P##_cdv __attribute__((vector_size(8 * (LD))));                               \
typedef T P##_ctv __attribute__((vector_size(sizeof(T) * (LD)), aligned(sizeof(T)), may_alias)); \
ATTR static inline __attribute__((always_inline)) void P##_csbody(                           \
        const int NV, const int NS, const T *d, fastnn_idx M, fastnn_idx ld, T *out)         \
{                                                                                            \
    P##_cdv acc[8];                                                                          \
    double sc[8];                                                                            \
    FASTNN_UNROLL for (int v = 0; v < NV; v++) acc[v] = (P##_cdv){0};                        \
    FASTNN_UNROLL for (int t = 0; t < NS; t++) sc[t] = 0;                                    \
    for (fastnn_idx i = 0; i < M; i++) {                                                     \
        const T *row = d + i * ld;                                                           \
        FASTNN_UNROLL for (int v = 0; v < NV; v++)                                           \
            acc[v] += FASTNN_WIDEN_##P(row + v * (LD));  /* as double, exactly */          \
        FASTNN_UNROLL for (int t = 0; t < NS; t++) sc[t] += (double)row[t];                  \
    }                                                                                        \
    FASTNN_UNROLL for (int v = 0; v < NV; v++)                                               \
        FASTNN_UNROLL for (int l = 0; l < (LD); l++) out[v * (LD) + l] = (T)acc[v][l];       \
    FASTNN_UNROLL for (int t = 0; t < NS; t++) out[t] = (T)sc[t];                            \
}                                                                                            \
ATTR static void P##_colsum(const T *d, fastnn_idx M, fastnn_idx ld, fastnn_idx w, T *out)   \
{                                                                                            \
    fastnn_idx j = 0;                                                                        \
    for (; j + 8 * (LD) <= w; j += 8 * (LD)) P##_csbody(8, 0, d + j, M, ld, out + j);        \
    switch ((int)((w - j) / (LD))) {                                                         \
    case 1: P##_csbody(1, 0, d + j, M, ld, out + j); break;                                  \
    case 2: P##_csbody(2, 0, d + j, M, ld, out + j); break;                                  \
    case 3: P##_csbody(3, 0, d + j, M, ld, out + j); break;                                  \
    case 4: P##_csbody(4, 0, d + j, M, ld, out + j); break;                                  \
    case 5: P##_csbody(5, 0, d + j, M, ld, out + j); break;                                  \
    case 6: P##_csbody(6, 0, d + j, M, ld, out + j); break;                                  \
    case 7: P##_csbody(7, 0, d + j, M, ld, out + j); break;                                  \
    default: break;                                                                          \
    }                                                                                        \
    j += (w - j) / (LD) * (LD);                                                              \
    switch ((int)(w - j)) {                                                                  \
    case 1: P##_csbody(0, 1, d + j, M, ld, out + j); break;                                  \
    case 2: P##_csbody(0, (LD) > 2 ? 2 : 1, d + j, M, ld, out + j); break;                   \
    case 3: P##_csbody(0, (LD) > 3 ? 3 : 1, d + j, M, ld, out + j); break;                   \
    case 4: P##_csbody(0, (LD) > 4 ? 4 : 1, d + j, M, ld, out + j); break;                   \
    case 5: P##_csbody(0, (LD) > 5 ? 5 : 1, d + j, M, ld, out + j); break;                   \
    case 6: P##_csbody(0, (LD) > 6 ? 6 : 1, d + j, M, ld, out + j); break;                   \
    case 7: P##_csbody(0, (LD) > 7 ? 7 : 1, d + j, M, ld, out + j); break;                   \
    default: break;                                                                          \
    }                                                                                        \
}
/* LD values of d as a vector of doubles: a plain load, or float -> double conversions
 * (GCC splits __builtin_convertvector of 8 floats into 4-lane halves: 2x slower) */
#define FASTNN_WIDEN_any(P, p) __builtin_convertvector(*(const P##_ctv *)(p), P##_cdv)
#define FASTNN_WIDEN_fastnn_cs_base_d(p) FASTNN_WIDEN_any(fastnn_cs_base_d, p)
#define FASTNN_WIDEN_fastnn_cs_avx2_d(p) FASTNN_WIDEN_any(fastnn_cs_avx2_d, p)
#define FASTNN_WIDEN_fastnn_cs_avx512_d(p) FASTNN_WIDEN_any(fastnn_cs_avx512_d, p)
#ifdef FASTNN_X86_DISPATCH
#define FASTNN_WIDEN_fastnn_cs_base_s(p)                                                     \
    ((fastnn_cs_base_s_cdv)_mm_cvtps_pd(_mm_castsi128_ps(_mm_loadl_epi64((const __m128i *)(p)))))
#define FASTNN_WIDEN_fastnn_cs_avx2_s(p) ((fastnn_cs_avx2_s_cdv)_mm256_cvtps_pd(_mm_loadu_ps(p)))
#define FASTNN_WIDEN_fastnn_cs_avx512_s(p)                                                   \
    ((fastnn_cs_avx512_s_cdv)_mm512_cvtps_pd(_mm256_loadu_ps(p)))
#else
#define FASTNN_WIDEN_fastnn_cs_base_s(p) FASTNN_WIDEN_any(fastnn_cs_base_s, p)
#endif
FASTNN_COLSUM(fastnn_cs_base_d, double, , 2)
FASTNN_COLSUM(fastnn_cs_base_s, float, , 2)
#ifdef FASTNN_X86_DISPATCH
FASTNN_COLSUM(fastnn_cs_avx2_d, double, FASTNN_TARGET_AVX2, 4)
FASTNN_COLSUM(fastnn_cs_avx2_s, float, FASTNN_TARGET_AVX2, 4)
FASTNN_COLSUM(fastnn_cs_avx512_d, double, FASTNN_TARGET_AVX512, 8)
FASTNN_COLSUM(fastnn_cs_avx512_s, float, FASTNN_TARGET_AVX512, 8)
#endif
#else
#define FASTNN_COLSUM_PLAIN(P, T)                                                            \
static void P##_colsum(const T *d, fastnn_idx M, fastnn_idx ld, fastnn_idx w, T *out)        \
{                                                                                            \
    for (fastnn_idx j = 0; j < w; j++) {                                                     \
        double s = 0;                                                                        \
        for (fastnn_idx i = 0; i < M; i++) s += (double)d[i * ld + j];                       \
        out[j] = (T)s;                                                                       \
    }                                                                                        \
}
FASTNN_COLSUM_PLAIN(fastnn_cs_base_d, double)
FASTNN_COLSUM_PLAIN(fastnn_cs_base_s, float)
#endif

/* ---- the entry points: the active level's instance ------------------------------------- */

/* Panel width (elements) of the active level's tiles: callers that split columns
 * between threads give each a multiple of it. */
static inline int fastnn_gemm_nr(size_t size)
{
#if defined(__GNUC__) && defined(FASTNN_X86_DISPATCH)
    const int isa = fastnn_isa();
    if (isa == FASTNN_ISA_AVX512) return 3 * 64 / (int)size;
    if (isa == FASTNN_ISA_AVX2) return 2 * 32 / (int)size;
#endif
    return 2 * 16 / (int)size;
}

/* Multiply-adds per ns one thread sustains on the active level (tools/bench_gemm.c on
 * Zen 4 at 3.65 GHz, 100 x 784 x 50, rounded down): how callers estimate a region's
 * single-thread time for fastnn_team(). */
static inline double fastnn_gemm_fma_per_ns(size_t size)
{
    const int isa = fastnn_isa();
    const int f32 = size == 4;
    if (isa == FASTNN_ISA_AVX512) return f32 ? 44.0 : 24.0;
    if (isa == FASTNN_ISA_AVX2) return f32 ? 40.0 : 22.0;
    return f32 ? 16.0 : 8.0;
}

#if defined(__GNUC__) && defined(FASTNN_X86_DISPATCH)
#define FASTNN_GEMM_PICK(SUF, ...)                                                           \
    switch (fastnn_isa()) {                                                                  \
    case FASTNN_ISA_AVX512: fastnn_gk_avx512_##SUF##_block(__VA_ARGS__); break;              \
    case FASTNN_ISA_AVX2: fastnn_gk_avx2_##SUF##_block(__VA_ARGS__); break;                  \
    default: fastnn_gk_base_##SUF##_block(__VA_ARGS__); break;                               \
    }
#define FASTNN_COLSUM_PICK(SUF, ...)                                                         \
    switch (fastnn_isa()) {                                                                  \
    case FASTNN_ISA_AVX512: fastnn_cs_avx512_##SUF##_colsum(__VA_ARGS__); break;             \
    case FASTNN_ISA_AVX2: fastnn_cs_avx2_##SUF##_colsum(__VA_ARGS__); break;                 \
    default: fastnn_cs_base_##SUF##_colsum(__VA_ARGS__); break;                              \
    }
#else
#define FASTNN_GEMM_PICK(SUF, ...) fastnn_gk_base_##SUF##_block(__VA_ARGS__);
#define FASTNN_COLSUM_PICK(SUF, ...) fastnn_cs_base_##SUF##_colsum(__VA_ARGS__);
#endif

/* C[i0:i1, j0:j1] = A[i0:i1, :] @ B[:, j0:j1] (+ bias[j0:j1]), where B has N columns.
 * `pack` is unused (kept for callers of the old interface; may be NULL): the kernels
 * need no heap scratch. */
static void fastnn_gemm_block_d(fastnn_idx i0, fastnn_idx i1, fastnn_idx j0, fastnn_idx j1,
        fastnn_idx N, fastnn_idx K, const double *A, fastnn_idx rsa, fastnn_idx csa,
        const double *B, fastnn_idx rsb, fastnn_idx csb, const double *bias, double *C,
        fastnn_idx ldc, double *pack)
{
    (void)pack;
    FASTNN_GEMM_PICK(d, i0, i1, j0, j1, N, K, A, rsa, csa, B, rsb, csb, bias, C, ldc)
}
/* out[0:w] = column sums of d[0:M, 0:w] (row stride ld), rows in order, in double. */
static inline void fastnn_colsum_d(const double *d, fastnn_idx M, fastnn_idx ld, fastnn_idx w,
                                   double *out)
{
    FASTNN_COLSUM_PICK(d, d, M, ld, w, out)
}
static inline void fastnn_colsum_s(const float *d, fastnn_idx M, fastnn_idx ld, fastnn_idx w,
                                   float *out)
{
    FASTNN_COLSUM_PICK(s, d, M, ld, w, out)
}
static void fastnn_gemm_block_s(fastnn_idx i0, fastnn_idx i1, fastnn_idx j0, fastnn_idx j1,
        fastnn_idx N, fastnn_idx K, const float *A, fastnn_idx rsa, fastnn_idx csa,
        const float *B, fastnn_idx rsb, fastnn_idx csb, const float *bias, float *C,
        fastnn_idx ldc, float *pack)
{
    (void)pack;
    FASTNN_GEMM_PICK(s, i0, i1, j0, j1, N, K, A, rsa, csa, B, rsb, csb, bias, C, ldc)
}

#endif
