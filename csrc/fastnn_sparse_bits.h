/* The sparse first layer's backward, dW = x.T @ dz over x's non-zeros, from a bit mask of
 * x's non-zeros that the forward's compression writes as it goes (fastnn_sparse.h has
 * the forward and the row-pair form).
 *
 * fastnn_bp_compress_bits_*  as fastnn_bp_compress_* (row i's non-zeros as (column,
 *     value) pairs, NaN kept), and also the row's non-zero mask, 64 columns a word:
 *     bit j of bits[w * bstride] is x[64 w + j] != 0. With bstride = M and the word of
 *     row i at bits + i, the words of one 64-column stripe of the batch are contiguous,
 *     so the rows of a column group are found 8 (4) rows per instruction.
 * fastnn_sparse_xtd_bits_*   dW[c0:c1, :] = sum over rows i (ascending) with x[i, k] != 0
 *     of x[i, k] * dz[i, :]: for each group of FASTNN_XB_G (2) columns of x, the rows
 *     where either is non-zero are listed from the mask (vector compares, no per-pair
 *     work), then a register tile of 2 x NV vectors of dW sums over them (x[i, k] == 0
 *     adds an exact 0 since dz is finite). Each dW[k, j] is one accumulator, rows in
 *     ascending order: the bits of the dense GEMM x.T @ dz on the same ISA, whatever
 *     [c0, c1) a call (a thread) takes; c0 must be even (a group never straddles a word).
 *
 * Why 2 columns, not fastnn_sparse_xtd's 3 with row lists built pair by pair: on real
 * MNIST rows a 2-column group lists 8,563 (row, group) pairs for 14,626 non-zeros (3
 * columns: 6,486), so 2 x 7 zmm per listed row does 120k vector multiply-adds against
 * 136k (f64, N = 50), the tile still has more multiply-adds than loads; and the row lists
 * built from pairs (a store-to-load chain per pair) took ~30% of the old kernel.
 *
 * Every function is compiled per ISA level (baseline, AVX2+FMA, AVX-512) x {float,
 * double} from one template, multiply-adds explicit (fastnn_simd.h). */
#ifndef FASTNN_SPARSE_BITS_H
#define FASTNN_SPARSE_BITS_H

#include "fastnn_sparse.h"

#ifndef FASTNN_XB_G
#define FASTNN_XB_G 3       /* columns of x per dW register tile */
#endif
#define FASTNN_XB_PAD 16    /* ints a row list needs past M (full-vector stores) */

typedef unsigned long long fastnn_xb_word;

/* words of the mask per row of K columns */
#define FASTNN_XB_WORDS(K) (((K) + 63) / 64)

/* ---- compression with masks: scalar (any ISA) ------------------------------------------- */
/* the non-zero mask of x[0:n], n <= 64 (NaN != 0: set); SSE2 compares where x86-64 has
 * them (any x86-64 CPU), else one element at a time */
#if defined(__SSE2__)
#include <emmintrin.h>
static inline fastnn_xb_word fastnn_xb_mask_d(const double *x, fastnn_bp_idx n)
{
    fastnn_xb_word word = 0;
    fastnn_bp_idx j = 0;
    for (; j + 2 <= n; j += 2)
        word |= (fastnn_xb_word)_mm_movemask_pd(_mm_cmpneq_pd(_mm_loadu_pd(x + j), _mm_setzero_pd())) << j;
    for (; j < n; j++) word |= (fastnn_xb_word)(x[j] != 0) << j;
    return word;
}
static inline fastnn_xb_word fastnn_xb_mask_s(const float *x, fastnn_bp_idx n)
{
    fastnn_xb_word word = 0;
    fastnn_bp_idx j = 0;
    for (; j + 4 <= n; j += 4)
        word |= (fastnn_xb_word)_mm_movemask_ps(_mm_cmpneq_ps(_mm_loadu_ps(x + j), _mm_setzero_ps())) << j;
    for (; j < n; j++) word |= (fastnn_xb_word)(x[j] != 0) << j;
    return word;
}
#else
#define FASTNN_XB_MASK_SCALAR(NAME, T)                                                       \
static inline fastnn_xb_word NAME(const T *x, fastnn_bp_idx n)                              \
{                                                                                            \
    fastnn_xb_word word = 0;                                                                 \
    for (fastnn_bp_idx j = 0; j < n; j++) word |= (fastnn_xb_word)(x[j] != 0) << j;          \
    return word;                                                                             \
}
FASTNN_XB_MASK_SCALAR(fastnn_xb_mask_d, double)
FASTNN_XB_MASK_SCALAR(fastnn_xb_mask_s, float)
#endif
/* branch-free compaction (as fastnn_bp_compress_*_base), then the chunk's mask */
#define FASTNN_XB_COMPRESS_SCALAR(NAME, T, MASK)                                             \
static fastnn_bp_idx NAME(const T *x, fastnn_bp_idx n, int *idx, T *val,                    \
                          fastnn_xb_word *bits, fastnn_bp_idx bstride)                       \
{                                                                                            \
    fastnn_bp_idx k = 0;                                                                     \
    for (fastnn_bp_idx w0 = 0; w0 < n; w0 += 64) {                                           \
        const fastnn_bp_idx e = n - w0 < 64 ? n : w0 + 64;                                   \
        for (fastnn_bp_idx j = w0; j < e; j++) {                                             \
            const T v = x[j];                                                                \
            idx[k] = (int)j; val[k] = v; k += (v != 0);   /* NaN != 0: kept */              \
        }                                                                                    \
        bits[(w0 >> 6) * bstride] = MASK(x + w0, e - w0);                                    \
    }                                                                                        \
    return k;                                                                                \
}
FASTNN_XB_COMPRESS_SCALAR(fastnn_xb_compress_d_base, double, fastnn_xb_mask_d)
FASTNN_XB_COMPRESS_SCALAR(fastnn_xb_compress_s_base, float, fastnn_xb_mask_s)

/* the rows i in [0, M) whose mask words have a bit of gm0 in bw0[i] or of gm1 in bw1[i]
 * (a group of columns may straddle two words; gm1 = 0 when it does not), ascending */
static fastnn_bp_idx fastnn_xb_list_base(const fastnn_xb_word *bw0, fastnn_xb_word gm0,
                                         const fastnn_xb_word *bw1, fastnn_xb_word gm1,
                                         fastnn_bp_idx M, int *rows)
{
    fastnn_bp_idx n = 0;
    for (fastnn_bp_idx i = 0; i < M; i++) {
        rows[n] = (int)i;
        n += ((bw0[i] & gm0) | (bw1[i] & gm1)) != 0;
    }
    return n;
}

#if defined(__GNUC__)
/* dW for GW (1 or 2) adjacent columns [c, c + GW) of x x one panel of NV vectors (vector
 * v at column off[v] of d and dW): GW x NV accumulators, summed over `rows` (ascending). */
#define FASTNN_XB_KERNELS(NAME, T, LANES, ATTR, OPS, OPSS, GNV, LIST)                        \
typedef T NAME##_xv __attribute__((vector_size(sizeof(T) * LANES)));                         \
typedef T NAME##_xu __attribute__((vector_size(sizeof(T) * LANES), aligned(sizeof(T)), may_alias)); \
typedef __typeof__(FASTNN_OP(BCAST, OPS)((T)0)) NAME##_xbt;                                  \
ATTR static inline __attribute__((always_inline)) void NAME##_xbtile_(                       \
        const int NV, const int GW, const int *rows, fastnn_bp_idx nrows, const T *x,        \
        fastnn_bp_idx ldx, fastnn_bp_idx c, const T *d, fastnn_bp_idx ldd, T *dW,            \
        fastnn_bp_idx lddw, fastnn_bp_idx j0, fastnn_bp_idx jl)                              \
{                                                                                            \
    /* vector v at column j0 + v LANES, the last at jl (constant offsets from one base) */   \
    NAME##_xv acc[FASTNN_XB_G][GNV];                                                         \
    FASTNN_SP_UNROLL for (int g = 0; g < GW; g++)                                            \
        FASTNN_SP_UNROLL for (int v = 0; v < NV; v++) acc[g][v] = (NAME##_xv){0};            \
    for (fastnn_bp_idx r = 0; r < nrows; r++) {                                              \
        const fastnn_bp_idx i = rows[r];                                                     \
        const T *xr = x + i * ldx + c;                                                       \
        NAME##_xv dv[GNV];                                                                   \
        const T *dr = d + i * ldd;                                                           \
        FASTNN_SP_UNROLL for (int v = 0; v < NV - 1; v++) dv[v] = *(const NAME##_xu *)(dr + j0 + v * LANES); \
        dv[NV - 1] = *(const NAME##_xu *)(dr + jl);                                          \
        FASTNN_SP_UNROLL for (int g = 0; g < GW; g++) {                                      \
            const NAME##_xbt a = FASTNN_OP(BCAST, OPS)(xr[g]);                               \
            FASTNN_SP_UNROLL for (int v = 0; v < NV; v++)   /* dW[k] += x[i, k] dz[i] */     \
                acc[g][v] = FASTNN_OP(MADD, OPS)(acc[g][v], a, dv[v]);                       \
        }                                                                                    \
    }                                                                                        \
    /* a ragged last vector overlaps its neighbour: both hold the same sums */               \
    FASTNN_SP_UNROLL for (int g = 0; g < GW; g++) {                                          \
        FASTNN_SP_UNROLL for (int v = 0; v < NV - 1; v++)                                    \
            *(NAME##_xu *)(dW + (c + g) * lddw + j0 + v * LANES) = acc[g][v];                \
        *(NAME##_xu *)(dW + (c + g) * lddw + jl) = acc[g][NV - 1];                           \
    }                                                                                        \
}                                                                                            \
ATTR static inline __attribute__((always_inline)) void NAME##_xbtile(                        \
        const int NV, const int gw, const int *rows, fastnn_bp_idx nrows, const T *x,        \
        fastnn_bp_idx ldx, fastnn_bp_idx c, const T *d, fastnn_bp_idx ldd, T *dW,            \
        fastnn_bp_idx lddw, fastnn_bp_idx j0, fastnn_bp_idx jl)                              \
{                                                                                            \
    /* the group's width known at compile time (FASTNN_XB_G, or fewer for the last) */      \
    if (gw == FASTNN_XB_G) NAME##_xbtile_(NV, FASTNN_XB_G, rows, nrows, x, ldx, c, d, ldd, dW, lddw, j0, jl); \
    else if (gw == 2) NAME##_xbtile_(NV, 2, rows, nrows, x, ldx, c, d, ldd, dW, lddw, j0, jl); \
    else NAME##_xbtile_(NV, 1, rows, nrows, x, ldx, c, d, ldd, dW, lddw, j0, jl);            \
}                                                                                            \
ATTR static void NAME##_xtdb(fastnn_bp_idx M, fastnn_bp_idx N, const T *x, fastnn_bp_idx ldx, \
        fastnn_bp_idx c0, fastnn_bp_idx c1, const fastnn_xb_word *bits, fastnn_bp_idx bstride, \
        const T *d, fastnn_bp_idx ldd, T *dW, fastnn_bp_idx lddw, int *rows)                \
{                                                                                            \
    if (c1 <= c0 || N <= 0) return;                                                          \
    const fastnn_bp_idx nvec = (N + LANES - 1) / LANES;                                      \
    const fastnn_bp_idx npan = (nvec + (GNV) - 1) / (GNV);                                   \
    for (fastnn_bp_idx c = c0; c < c1; c += FASTNN_XB_G) {                                   \
        const int gw = c1 - c < FASTNN_XB_G ? (int)(c1 - c) : FASTNN_XB_G;                   \
        const int sh = (int)(c & 63);                                                        \
        const fastnn_xb_word gm = ((fastnn_xb_word)1 << gw) - 1;                             \
        const fastnn_xb_word *bw0 = bits + (c >> 6) * bstride;                               \
        const fastnn_bp_idx nrows = sh + gw > 64                                             \
            ? LIST(bw0, gm << sh, bw0 + bstride, gm >> (64 - sh), M, rows)                   \
            : LIST(bw0, gm << sh, bw0, 0, M, rows);                                          \
        if (N < LANES) {  /* narrower than a vector: scalar, the same sums */                \
            for (int g = 0; g < gw; g++)                                                     \
                for (fastnn_bp_idx j = 0; j < N; j++) {                                      \
                    T s = 0;                                                                 \
                    for (fastnn_bp_idx r = 0; r < nrows; r++) {                              \
                        const fastnn_bp_idx i = rows[r];                                     \
                        s = FASTNN_OP(MADD, OPSS)(s, x[i * ldx + c + g], d[i * ldd + j]);    \
                    }                                                                        \
                    dW[(c + g) * lddw + j] = s;                                              \
                }                                                                            \
            continue;                                                                        \
        }                                                                                    \
        /* npan panels of nearly equal width; the last vector ends at column N */            \
        for (fastnn_bp_idx p = 0; p < npan; p++) {                                           \
            const fastnn_bp_idx v0 = p * nvec / npan, v1 = (p + 1) * nvec / npan;            \
            const int nv = (int)(v1 - v0);                                                   \
            const fastnn_bp_idx j0 = v0 * LANES;                                             \
            const fastnn_bp_idx jl = v1 * LANES > N ? N - LANES : (v1 - 1) * LANES;          \
            switch (nv) {                                                                    \
            case 1: NAME##_xbtile(1 <= GNV ? 1 : 1, gw, rows, nrows, x, ldx, c, d, ldd, dW, lddw, j0, jl); break; \
            case 2: NAME##_xbtile(2 <= GNV ? 2 : 1, gw, rows, nrows, x, ldx, c, d, ldd, dW, lddw, j0, jl); break; \
            case 3: NAME##_xbtile(3 <= GNV ? 3 : 1, gw, rows, nrows, x, ldx, c, d, ldd, dW, lddw, j0, jl); break; \
            case 4: NAME##_xbtile(4 <= GNV ? 4 : 1, gw, rows, nrows, x, ldx, c, d, ldd, dW, lddw, j0, jl); break; \
            case 5: NAME##_xbtile(5 <= GNV ? 5 : 1, gw, rows, nrows, x, ldx, c, d, ldd, dW, lddw, j0, jl); break; \
            case 6: NAME##_xbtile(6 <= GNV ? 6 : 1, gw, rows, nrows, x, ldx, c, d, ldd, dW, lddw, j0, jl); break; \
            case 7: NAME##_xbtile(7 <= GNV ? 7 : 1, gw, rows, nrows, x, ldx, c, d, ldd, dW, lddw, j0, jl); break; \
            default: NAME##_xbtile(GNV, gw, rows, nrows, x, ldx, c, d, ldd, dW, lddw, j0, jl); break; \
            }                                                                                \
        }                                                                                    \
    }                                                                                        \
}
#else  /* no vector extensions (MSVC): the same sums in the same order, plain loops */
#define FASTNN_XB_KERNELS(NAME, T, LANES, ATTR, OPS, OPSS, GNV, LIST)                        \
static void NAME##_xtdb(fastnn_bp_idx M, fastnn_bp_idx N, const T *x, fastnn_bp_idx ldx,     \
        fastnn_bp_idx c0, fastnn_bp_idx c1, const fastnn_xb_word *bits, fastnn_bp_idx bstride, \
        const T *d, fastnn_bp_idx ldd, T *dW, fastnn_bp_idx lddw, int *rows)                \
{                                                                                            \
    for (fastnn_bp_idx c = c0; c < c1; c += FASTNN_XB_G) {                                   \
        const int gw = c1 - c < FASTNN_XB_G ? (int)(c1 - c) : FASTNN_XB_G;                   \
        const int sh = (int)(c & 63);                                                        \
        const fastnn_xb_word gm = ((fastnn_xb_word)1 << gw) - 1;                             \
        const fastnn_xb_word *bw0 = bits + (c >> 6) * bstride;                               \
        const fastnn_bp_idx nrows = sh + gw > 64                                             \
            ? LIST(bw0, gm << sh, bw0 + bstride, gm >> (64 - sh), M, rows)                   \
            : LIST(bw0, gm << sh, bw0, 0, M, rows);                                          \
        for (int g = 0; g < gw; g++)                                                         \
            for (fastnn_bp_idx j = 0; j < N; j++) {                                          \
                T s = 0;                                                                     \
                for (fastnn_bp_idx r = 0; r < nrows; r++)                                    \
                    s += x[rows[r] * ldx + c + g] * d[rows[r] * ldd + j];                    \
                dW[(c + g) * lddw + j] = s;                                                  \
            }                                                                                \
    }                                                                                        \
}
#endif

/* register budget: 16 vector registers (baseline, AVX2): G x GNV accumulators + GNV
 * vectors of a row of dz (2 x 4 + 4, 3 x 3 + 3); 32 (AVX-512): 2 x 8 + 8, 3 x 7 + 7 */
#define FASTNN_XB_GNV16 (FASTNN_XB_G == 2 ? 4 : 3)
#define FASTNN_XB_GNV32 (FASTNN_XB_G == 2 ? 8 : 7)
FASTNN_XB_KERNELS(fastnn_xb_d_base, double, 2, , plain, plain, FASTNN_XB_GNV16, fastnn_xb_list_base)
FASTNN_XB_KERNELS(fastnn_xb_s_base, float, 4, , plain, plain, FASTNN_XB_GNV16, fastnn_xb_list_base)

#ifdef FASTNN_SP_X86
/* 16 (8) elements -> a mask of the non-zeros (unordered compare: NaN counts), then one
 * step per set bit (as fastnn_bp_compress_*_avx2), the masks gathered into words. */
FASTNN_TARGET_AVX2
static fastnn_bp_idx fastnn_xb_compress_d_avx2(const double *x, fastnn_bp_idx n, int *idx,
                                               double *val, fastnn_xb_word *bits,
                                               fastnn_bp_idx bstride)
{
    const __m256d z = _mm256_setzero_pd();
    fastnn_bp_idx k = 0;
    for (fastnn_bp_idx w0 = 0; w0 < n; w0 += 64) {
        const fastnn_bp_idx e = n - w0 < 64 ? n : w0 + 64;
        fastnn_xb_word word = 0;
        fastnn_bp_idx j = w0;
        for (; j + 16 <= e; j += 16) {
            unsigned m = (unsigned)_mm256_movemask_pd(_mm256_cmp_pd(_mm256_loadu_pd(x + j), z, _CMP_NEQ_UQ))
                | (unsigned)_mm256_movemask_pd(_mm256_cmp_pd(_mm256_loadu_pd(x + j + 4), z, _CMP_NEQ_UQ)) << 4
                | (unsigned)_mm256_movemask_pd(_mm256_cmp_pd(_mm256_loadu_pd(x + j + 8), z, _CMP_NEQ_UQ)) << 8
                | (unsigned)_mm256_movemask_pd(_mm256_cmp_pd(_mm256_loadu_pd(x + j + 12), z, _CMP_NEQ_UQ)) << 12;
            word |= (fastnn_xb_word)m << (j - w0);
            while (m) {
                const int b = __builtin_ctz(m);
                idx[k] = (int)(j + b); val[k] = x[j + b]; k++;
                m &= m - 1;
            }
        }
        for (; j < e; j++) {
            const double v = x[j];
            const int nz = v != 0;
            idx[k] = (int)j; val[k] = v; k += nz;
            word |= (fastnn_xb_word)nz << (j - w0);
        }
        bits[(w0 >> 6) * bstride] = word;
    }
    return k;
}
FASTNN_TARGET_AVX2
static fastnn_bp_idx fastnn_xb_compress_s_avx2(const float *x, fastnn_bp_idx n, int *idx,
                                               float *val, fastnn_xb_word *bits,
                                               fastnn_bp_idx bstride)
{
    const __m256 z = _mm256_setzero_ps();
    fastnn_bp_idx k = 0;
    for (fastnn_bp_idx w0 = 0; w0 < n; w0 += 64) {
        const fastnn_bp_idx e = n - w0 < 64 ? n : w0 + 64;
        fastnn_xb_word word = 0;
        fastnn_bp_idx j = w0;
        for (; j + 16 <= e; j += 16) {
            unsigned m = (unsigned)_mm256_movemask_ps(_mm256_cmp_ps(_mm256_loadu_ps(x + j), z, _CMP_NEQ_UQ))
                | (unsigned)_mm256_movemask_ps(_mm256_cmp_ps(_mm256_loadu_ps(x + j + 8), z, _CMP_NEQ_UQ)) << 8;
            word |= (fastnn_xb_word)m << (j - w0);
            while (m) {
                const int b = __builtin_ctz(m);
                idx[k] = (int)(j + b); val[k] = x[j + b]; k++;
                m &= m - 1;
            }
        }
        for (; j < e; j++) {
            const float v = x[j];
            const int nz = v != 0;
            idx[k] = (int)j; val[k] = v; k += nz;
            word |= (fastnn_xb_word)nz << (j - w0);
        }
        bits[(w0 >> 6) * bstride] = word;
    }
    return k;
}
/* 4 rows' words at a time: a 4-bit mask of the listed rows, their offsets from a table */
FASTNN_TARGET_AVX2
static fastnn_bp_idx fastnn_xb_list_avx2(const fastnn_xb_word *bw0, fastnn_xb_word gm0,
                                         const fastnn_xb_word *bw1, fastnn_xb_word gm1,
                                         fastnn_bp_idx M, int *rows)
{
    static const int lut[16][4] = {
        {0, 0, 0, 0}, {0, 0, 0, 0}, {1, 0, 0, 0}, {0, 1, 0, 0}, {2, 0, 0, 0}, {0, 2, 0, 0},
        {1, 2, 0, 0}, {0, 1, 2, 0}, {3, 0, 0, 0}, {0, 3, 0, 0}, {1, 3, 0, 0}, {0, 1, 3, 0},
        {2, 3, 0, 0}, {0, 2, 3, 0}, {1, 2, 3, 0}, {0, 1, 2, 3}};
    const __m256i m0 = _mm256_set1_epi64x((long long)gm0), m1 = _mm256_set1_epi64x((long long)gm1);
    const __m256i zero = _mm256_setzero_si256();
    fastnn_bp_idx i = 0, n = 0;
    for (; i + 4 <= M; i += 4) {
        const __m256i v = _mm256_or_si256(
            _mm256_and_si256(_mm256_loadu_si256((const __m256i *)(bw0 + i)), m0),
            _mm256_and_si256(_mm256_loadu_si256((const __m256i *)(bw1 + i)), m1));
        const int hit = ~_mm256_movemask_pd(_mm256_castsi256_pd(_mm256_cmpeq_epi64(v, zero))) & 15;
        /* n <= i, so the 4 ints stored stay below M */
        _mm_storeu_si128((__m128i *)(rows + n),
                         _mm_add_epi32(_mm_loadu_si128((const __m128i *)lut[hit]),
                                       _mm_set1_epi32((int)i)));
        n += __builtin_popcount((unsigned)hit);
    }
    for (; i < M; i++) {
        rows[n] = (int)i;
        n += ((bw0[i] & gm0) | (bw1[i] & gm1)) != 0;
    }
    return n;
}
FASTNN_XB_KERNELS(fastnn_xb_d_avx2, double, 4, FASTNN_TARGET_AVX2, 256d, fmad, FASTNN_XB_GNV16, fastnn_xb_list_avx2)
FASTNN_XB_KERNELS(fastnn_xb_s_avx2, float, 8, FASTNN_TARGET_AVX2, 256s, fmas, FASTNN_XB_GNV16, fastnn_xb_list_avx2)

/* AVX-512: the mask of 8 (16) elements straight from the compare; indices and values
 * compressed in registers and stored as full vectors at the next free slot (as
 * fastnn_bp_compress_*_avx512: k <= j keeps every store inside the row). */
FASTNN_TARGET_AVX512
static fastnn_bp_idx fastnn_xb_compress_d_avx512(const double *x, fastnn_bp_idx n, int *idx,
                                                 double *val, fastnn_xb_word *bits,
                                                 fastnn_bp_idx bstride)
{
    const __m512d z = _mm512_setzero_pd();
    const __m256i step = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    fastnn_bp_idx k = 0;
    for (fastnn_bp_idx w0 = 0; w0 < n; w0 += 64) {
        const fastnn_bp_idx e = n - w0 < 64 ? n : w0 + 64;
        fastnn_xb_word word = 0;
        fastnn_bp_idx j = w0;
        for (; j + 8 <= e; j += 8) {
            const __m512d v = _mm512_loadu_pd(x + j);
            const __mmask8 m = _mm512_cmp_pd_mask(v, z, _CMP_NEQ_UQ);
            const __m256i ids = _mm256_add_epi32(step, _mm256_set1_epi32((int)j));
            _mm256_storeu_si256((__m256i *)(idx + k), _mm256_maskz_compress_epi32(m, ids));
            _mm512_storeu_pd(val + k, _mm512_maskz_compress_pd(m, v));
            k += __builtin_popcount((unsigned)m);
            word |= (fastnn_xb_word)m << (j - w0);
        }
        for (; j < e; j++) {
            const double v = x[j];
            const int nz = v != 0;
            idx[k] = (int)j; val[k] = v; k += nz;
            word |= (fastnn_xb_word)nz << (j - w0);
        }
        bits[(w0 >> 6) * bstride] = word;
    }
    return k;
}
FASTNN_TARGET_AVX512
static fastnn_bp_idx fastnn_xb_compress_s_avx512(const float *x, fastnn_bp_idx n, int *idx,
                                                 float *val, fastnn_xb_word *bits,
                                                 fastnn_bp_idx bstride)
{
    const __m512 z = _mm512_setzero_ps();
    const __m512i step = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
    fastnn_bp_idx k = 0;
    for (fastnn_bp_idx w0 = 0; w0 < n; w0 += 64) {
        const fastnn_bp_idx e = n - w0 < 64 ? n : w0 + 64;
        fastnn_xb_word word = 0;
        fastnn_bp_idx j = w0;
        for (; j + 16 <= e; j += 16) {
            const __m512 v = _mm512_loadu_ps(x + j);
            const __mmask16 m = _mm512_cmp_ps_mask(v, z, _CMP_NEQ_UQ);
            const __m512i ids = _mm512_add_epi32(step, _mm512_set1_epi32((int)j));
            _mm512_storeu_si512((void *)(idx + k), _mm512_maskz_compress_epi32(m, ids));
            _mm512_storeu_ps(val + k, _mm512_maskz_compress_ps(m, v));
            k += __builtin_popcount((unsigned)m);
            word |= (fastnn_xb_word)m << (j - w0);
        }
        for (; j < e; j++) {
            const float v = x[j];
            const int nz = v != 0;
            idx[k] = (int)j; val[k] = v; k += nz;
            word |= (fastnn_xb_word)nz << (j - w0);
        }
        bits[(w0 >> 6) * bstride] = word;
    }
    return k;
}
/* 8 rows' words at a time: their row numbers compressed in a register (n <= i: the 8
 * ints stored stay below M) */
FASTNN_TARGET_AVX512
static fastnn_bp_idx fastnn_xb_list_avx512(const fastnn_xb_word *bw0, fastnn_xb_word gm0,
                                           const fastnn_xb_word *bw1, fastnn_xb_word gm1,
                                           fastnn_bp_idx M, int *rows)
{
    const __m512i m0 = _mm512_set1_epi64((long long)gm0), m1 = _mm512_set1_epi64((long long)gm1);
    const __m256i eight = _mm256_set1_epi32(8);
    __m256i ids = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    fastnn_bp_idx i = 0, n = 0;
    for (; i + 8 <= M; i += 8) {
        const __mmask8 hit = _mm512_test_epi64_mask(_mm512_loadu_si512((const void *)(bw0 + i)), m0)
                             | _mm512_test_epi64_mask(_mm512_loadu_si512((const void *)(bw1 + i)), m1);
        _mm256_storeu_si256((__m256i *)(rows + n), _mm256_maskz_compress_epi32(hit, ids));
        n += __builtin_popcount((unsigned)hit);
        ids = _mm256_add_epi32(ids, eight);
    }
    for (; i < M; i++) {
        rows[n] = (int)i;
        n += ((bw0[i] & gm0) | (bw1[i] & gm1)) != 0;
    }
    return n;
}
FASTNN_XB_KERNELS(fastnn_xb_d_avx512, double, 8, FASTNN_TARGET_AVX512, 512d, fmad, FASTNN_XB_GNV32, fastnn_xb_list_avx512)
FASTNN_XB_KERNELS(fastnn_xb_s_avx512, float, 16, FASTNN_TARGET_AVX512, 512s, fmas, FASTNN_XB_GNV32, fastnn_xb_list_avx512)
#endif

/* ---- dispatch: the active level's instance ------------------------------------------ */
#define FASTNN_XB_DISPATCH(SUF, T)                                                           \
FASTNN_SP_UNUSED static fastnn_bp_idx fastnn_bp_compress_bits_##SUF(const T *x, fastnn_bp_idx n, \
        int *idx, T *val, fastnn_xb_word *bits, fastnn_bp_idx bstride) {                     \
    FASTNN_SP_PICK(return, fastnn_xb_compress_##SUF##_avx2, fastnn_xb_compress_##SUF##_avx512, \
                   fastnn_xb_compress_##SUF##_base, x, n, idx, val, bits, bstride)           \
    return 0;                                                                                \
}                                                                                            \
/* dW[c0:c1, 0:N] = (x.T @ dz)[c0:c1] over x's non-zeros; c0 even; `rows` holds M +        \
 * FASTNN_XB_PAD ints (see the top of this file) */                                         \
FASTNN_SP_UNUSED static void fastnn_sparse_xtd_bits_##SUF(fastnn_bp_idx M, fastnn_bp_idx N,  \
        const T *x, fastnn_bp_idx ldx, fastnn_bp_idx c0, fastnn_bp_idx c1,                  \
        const fastnn_xb_word *bits, fastnn_bp_idx bstride, const T *d, fastnn_bp_idx ldd,    \
        T *dW, fastnn_bp_idx lddw, int *rows) {                                              \
    FASTNN_SP_PICK(, fastnn_xb_##SUF##_avx2_xtdb, fastnn_xb_##SUF##_avx512_xtdb,            \
                   fastnn_xb_##SUF##_base_xtdb, M, N, x, ldx, c0, c1, bits, bstride, d, ldd, \
                   dW, lddw, rows)                                                           \
}
FASTNN_XB_DISPATCH(d, double)
FASTNN_XB_DISPATCH(s, float)

#endif
