/* The sparse first layer: x (M x K) is mostly exact zeros (MNIST: ~81%), so
 *   z  = x @ W + b  (forward)   sums only over x's non-zeros of each row, and
 *   dW = x.T @ dz   (backward)  only over the non-zeros of each column of x.
 * Skipping a zero is exact when what it multiplies is finite (0 * w == 0, and adding 0
 * changes no sum), so callers check W (forward) / dz (backward) with fastnn_bp_finite_*
 * and take the dense GEMM when it is not: NaN and inf then propagate as in NumPy.
 *
 * Sparse rows: row i of x as the (column, value) pairs of its non-zeros, columns
 * ascending, at idx/val[i * ldi .. i * ldi + nnz[i]) (fastnn_bp_compress_* makes them;
 * NaN != 0, so a NaN is kept).
 *
 * fastnn_sparse_rows_*  out[i, :] = b + sum over row i's pairs (k ascending) of
 *     x[i, k] * W[k, :]: each out[i, j] is ONE accumulator, one multiply-add per
 *     non-zero in ascending k, then the bias: exactly the plain sparse sum, whatever
 *     rows a call (or a thread) is given. W is read in blocks of rows that fit in L1
 *     (FASTNN_SPARSE_L1_BYTES); every row of the call takes its share of a block before
 *     the next block is read, its partial sums resting in `out` between blocks (the same
 *     accumulator, the same order). Row at a time, every non-zero fetched a 400-byte row
 *     of W from L2 (~29 bytes/cycle on Zen 4): that, not the arithmetic, was the limit.
 * fastnn_sparse_xtd_*   dW[k0:k1, :] = sum over rows i (ascending) with x[i, k] != 0 of
 *     x[i, k] * dz[i, :]: one accumulator per dW[k, j], rows in ascending order, from
 *     the same row pairs (no column lists to build); dW is updated in blocks of rows
 *     that fit in L1, dz[i, :] held in registers. Callers split [0, K) between threads.
 * Both hold a panel of up to FASTNN_SPARSE_PANEL vectors of output columns in registers;
 * a ragged last vector overlaps its neighbour (both are loaded before either is
 * stored, so the overlapped columns get the same value twice). Narrower than one
 * vector: scalar loops, same order.
 *
 * Older helpers, kept for their callers:
 * fastnn_bp_sprow_*: out[0:N] = sum_k val[k] * W[idx[k] * ldw + 0:N] (+ bias after the
 *   sum): one row of (sparse row) @ W. Columns go in panels of up to 8 vectors held
 *   in registers; narrow panels split k into 2 or 4 interleaved chains (added in a
 *   fixed order at the end) so they are not FMA-latency-bound; a ragged end is a last
 *   vector overlapping its neighbour. The order of every sum is fixed by N alone.
 * fastnn_bp_compress_*: the non-zeros (and NaNs) of one row as (index, value) pairs.
 * fastnn_bp_csc_*: a chunk of x's columns as (row, value) lists of its non-zeros (and NaNs).
 * fastnn_bp_finite_*: 1 when every element is finite (x - x == 0), in one vector pass.
 *
 * Every kernel is compiled per ISA level (baseline, AVX2+FMA, AVX-512) x {float,
 * double} from one template, multiply-adds explicit (fastnn_simd.h); the dispatchers at
 * the end pick the instance with fastnn_isa(). */
#ifndef FASTNN_SPARSE_H
#define FASTNN_SPARSE_H

#include <stddef.h>
#include <string.h>
#include "fastnn_cpu.h"
typedef ptrdiff_t fastnn_bp_idx;

#define FASTNN_SPARSE_L1_BYTES 20480  /* of the 32 KB L1D: a block of W (or dW) rows */
#define FASTNN_SPARSE_PANEL 16        /* vectors of output columns held in registers */
#define FASTNN_SPARSE_CHUNK 256       /* rows sharing one pass over the blocks (cursors on the stack) */
#define FASTNN_SPARSE_G 3             /* columns of x per dW register tile */
#define FASTNN_SPARSE_GNV 7           /* most vectors of dW columns per tile (AVX-512: 3 x 7 = 21 zmm) */

#if defined(__GNUC__)
#include "fastnn_simd.h"
#define FASTNN_SP_UNROLL _Pragma("GCC unroll 16")

/* switch cases nv = 1..FASTNN_SPARSE_PANEL, each calling CALL(NAME, nv) */
#define FASTNN_SP_CASES(CALL, NAME)                                                           \
    case 1: CALL(NAME, 1); break; case 2: CALL(NAME, 2); break;                              \
    case 3: CALL(NAME, 3); break; case 4: CALL(NAME, 4); break;                              \
    case 5: CALL(NAME, 5); break; case 6: CALL(NAME, 6); break;                              \
    case 7: CALL(NAME, 7); break; case 8: CALL(NAME, 8); break;                              \
    case 9: CALL(NAME, 9); break; case 10: CALL(NAME, 10); break;                            \
    case 11: CALL(NAME, 11); break; case 12: CALL(NAME, 12); break;                          \
    case 13: CALL(NAME, 13); break; case 14: CALL(NAME, 14); break;                          \
    case 15: CALL(NAME, 15); break; default: CALL(NAME, 16); break;
#define FASTNN_SP_ROWS_CALL(NAME, V)                                                          \
    NAME##_rows_nv(V, M, K, kb, idx, val, ldi, nnz, W + j, ldw, bj, out + j, ldo, jl, pk)
#define FASTNN_SP_GTILE_CALL(NAME, V)                                                         \
    if (V <= gnv_max) NAME##_gtile(V <= gnv_max ? V : 1, rows, cnt[g], x, ldx, c, gw, d, ldd, dW, lddw, off)
/* cases nv = 1..FASTNN_SPARSE_GNV (7) */
#define FASTNN_SP_GCASES(CALL, NAME)                                                          \
    case 1: CALL(NAME, 1); break; case 2: CALL(NAME, 2); break;                              \
    case 3: CALL(NAME, 3); break; case 4: CALL(NAME, 4); break;                              \
    case 5: CALL(NAME, 5); break; case 6: CALL(NAME, 6); break;                              \
    default: CALL(NAME, 7); break;

#define FASTNN_BP_KERNELS(NAME, T, LANES, ATTR, OPS, OPSS, GNV)                               \
typedef T NAME##_vt __attribute__((vector_size(sizeof(T) * LANES)));                         \
typedef T NAME##_vu __attribute__((vector_size(sizeof(T) * LANES), aligned(sizeof(T)), may_alias)); \
typedef __typeof__(FASTNN_OP(BCAST, OPS)((T)0)) NAME##_bt;                                    \
ATTR static inline __attribute__((always_inline)) void NAME##_panel(                         \
        const int NV, const int S, fastnn_bp_idx nnz, const int *idx, const T *val,          \
        const T *W, fastnn_bp_idx ldw, fastnn_bp_idx j0, fastnn_bp_idx jl,                   \
        const T *bias, T *out)                                                               \
{                                                                                            \
    /* NV vectors of columns (vector v at j0 + v * LANES, the last one at jl), S             \
     * interleaved chains over k (NV * S <= 8 accumulators) */                               \
    NAME##_vt c[4][8];                                                                       \
    fastnn_bp_idx off[8];                                                                    \
    for (int v = 0; v < NV; v++) off[v] = v == NV - 1 ? jl : j0 + v * LANES;                \
    for (int s = 0; s < S; s++) for (int v = 0; v < NV; v++) c[s][v] = (NAME##_vt){0};       \
    fastnn_bp_idx k = 0;                                                                     \
    for (; k + S <= nnz; k += S) {                                                           \
        for (int s = 0; s < S; s++) {                                                        \
            const NAME##_bt a = FASTNN_OP(BCAST, OPS)(val[k + s]);                           \
            const T *w = W + (fastnn_bp_idx)idx[k + s] * ldw;                                \
            for (int v = 0; v < NV; v++)                                                     \
                c[s][v] = FASTNN_OP(MADD, OPS)(c[s][v], a, *(const NAME##_vu *)(w + off[v])); \
        }                                                                                    \
    }                                                                                        \
    for (; k < nnz; k++) {                                                                   \
        const NAME##_bt a = FASTNN_OP(BCAST, OPS)(val[k]);                                   \
        const T *w = W + (fastnn_bp_idx)idx[k] * ldw;                                        \
        for (int v = 0; v < NV; v++)                                                         \
            c[0][v] = FASTNN_OP(MADD, OPS)(c[0][v], a, *(const NAME##_vu *)(w + off[v]));    \
    }                                                                                        \
    for (int v = 0; v < NV; v++) {                                                           \
        NAME##_vt r = c[0][v];                                                               \
        if (S == 2) r = c[0][v] + c[1][v];                                                   \
        if (S == 4) r = (c[0][v] + c[1][v]) + (c[2][v] + c[3][v]);                           \
        if (bias) r += *(const NAME##_vu *)(bias + off[v]);                                  \
        *(NAME##_vu *)(out + off[v]) = r;                                                    \
    }                                                                                        \
}                                                                                            \
ATTR static void NAME##_sprow(fastnn_bp_idx nnz, const int *idx, const T *val,               \
                              const T *W, fastnn_bp_idx ldw, fastnn_bp_idx N,                \
                              const T *bias, T *out)                                         \
{                                                                                            \
    if (N < LANES) {                                                                         \
        for (fastnn_bp_idx j = 0; j < N; j++) {                                              \
            T s = 0;                                                                         \
            for (fastnn_bp_idx k = 0; k < nnz; k++)                                          \
                s = FASTNN_OP(MADD, OPSS)(s, val[k], W[(fastnn_bp_idx)idx[k] * ldw + j]);    \
            out[j] = bias ? s + bias[j] : s;                                                 \
        }                                                                                    \
        return;                                                                              \
    }                                                                                        \
    /* panels of 8 vectors, then one panel of the 1..8 left, whose last vector ends          \
     * at column N (overlapping its neighbour when N is not a multiple of LANES) */          \
    fastnn_bp_idx nvec = (N + LANES - 1) / LANES, j = 0;                                     \
    for (; nvec > 8; nvec -= 8, j += 8 * LANES)                                              \
        NAME##_panel(8, 1, nnz, idx, val, W, ldw, j, j + 7 * LANES, bias, out);              \
    const fastnn_bp_idx jl = N - LANES;                                                      \
    switch ((int)nvec) {                                                                     \
    case 1: NAME##_panel(1, 4, nnz, idx, val, W, ldw, j, jl, bias, out); break;              \
    case 2: NAME##_panel(2, 4, nnz, idx, val, W, ldw, j, jl, bias, out); break;              \
    case 3: NAME##_panel(3, 2, nnz, idx, val, W, ldw, j, jl, bias, out); break;              \
    case 4: NAME##_panel(4, 2, nnz, idx, val, W, ldw, j, jl, bias, out); break;              \
    case 5: NAME##_panel(5, 1, nnz, idx, val, W, ldw, j, jl, bias, out); break;              \
    case 6: NAME##_panel(6, 1, nnz, idx, val, W, ldw, j, jl, bias, out); break;              \
    case 7: NAME##_panel(7, 1, nnz, idx, val, W, ldw, j, jl, bias, out); break;              \
    default: NAME##_panel(8, 1, nnz, idx, val, W, ldw, j, jl, bias, out); break;             \
    }                                                                                        \
}                                                                                            \
ATTR static int NAME##_finite(const T *x, fastnn_bp_idx n)                                   \
{                                                                                            \
    NAME##_vt a0 = {0}, a1 = {0};                                                            \
    fastnn_bp_idx j = 0;                                                                     \
    for (; j + 2 * LANES <= n; j += 2 * LANES) {                                             \
        NAME##_vt v0 = *(const NAME##_vu *)(x + j);                                          \
        NAME##_vt v1 = *(const NAME##_vu *)(x + j + LANES);                                  \
        a0 += v0 - v0; a1 += v1 - v1;   /* 0 for finite, NaN for inf/NaN */                  \
    }                                                                                        \
    T s = 0, lanes[LANES];                                                                   \
    for (; j < n; j++) s += x[j] - x[j];                                                     \
    a0 += a1;                                                                                \
    memcpy(lanes, &a0, sizeof(a0));                                                          \
    for (int l = 0; l < LANES; l++) s += lanes[l];                                           \
    return s == 0;                                                                           \
}                                                                                            \
/* rows [0, M) x one panel of NV vectors (vector v at column off[v] = v * LANES, the last  \
 * at jl; W, bias, out point at the panel's first column). Each block of kb rows of W is   \
 * first copied into pk (64-byte aligned, row stride NV * LANES, vector v at v * LANES):    \
 * W's own rows are 400 bytes apart at N = 50 doubles, so 3 in 4 of their 64-byte loads    \
 * would straddle two cache lines (measured: twice the time). */                           \
ATTR static inline __attribute__((always_inline)) void NAME##_rows_nv(                       \
        const int NV, fastnn_bp_idx M, fastnn_bp_idx K, fastnn_bp_idx kb, const int *idx,    \
        const T *val, fastnn_bp_idx ldi, const fastnn_bp_idx *nnz, const T *W,               \
        fastnn_bp_idx ldw, const T *bias, T *out, fastnn_bp_idx ldo, fastnn_bp_idx jl, T *pk) \
{                                                                                            \
    fastnn_bp_idx off[FASTNN_SPARSE_PANEL], cur[FASTNN_SPARSE_CHUNK];                        \
    const fastnn_bp_idx ldp = NV * LANES;                                                    \
    FASTNN_SP_UNROLL for (int v = 0; v < NV; v++) off[v] = v == NV - 1 ? jl : v * LANES;     \
    const fastnn_bp_idx nblk = K > 0 ? (K + kb - 1) / kb : 1;                                \
    for (fastnn_bp_idx r0 = 0; r0 < M; r0 += FASTNN_SPARSE_CHUNK) {                          \
        const fastnn_bp_idx nr = M - r0 < FASTNN_SPARSE_CHUNK ? M - r0 : FASTNN_SPARSE_CHUNK; \
        for (fastnn_bp_idx r = 0; r < nr; r++) cur[r] = 0;                                   \
        for (fastnn_bp_idx blk = 0; blk < nblk; blk++) {                                     \
            const int first = blk == 0, last = blk == nblk - 1;                              \
            const fastnn_bp_idx k0 = blk * kb, k1 = last ? K : k0 + kb;                      \
            for (fastnn_bp_idx k = k0; k < k1; k++)                                          \
                FASTNN_SP_UNROLL for (int v = 0; v < NV; v++)                                \
                    *(NAME##_vt *)(pk + (k - k0) * ldp + v * LANES) = *(const NAME##_vu *)(W + k * ldw + off[v]); \
            for (fastnn_bp_idx r = 0; r < nr; r++) {                                         \
                const fastnn_bp_idx i = r0 + r, n = nnz[i];                                  \
                const int *ir = idx + i * ldi;                                               \
                const T *vr = val + i * ldi;                                                 \
                fastnn_bp_idx e = cur[r];                                                    \
                if ((e >= n || ir[e] >= k1) && !first && !last) continue;                    \
                T *o = out + i * ldo;                                                        \
                NAME##_vt acc[FASTNN_SPARSE_PANEL];                                          \
                FASTNN_SP_UNROLL for (int v = 0; v < NV; v++) {                              \
                    if (first) acc[v] = (NAME##_vt){0};                                      \
                    else acc[v] = *(const NAME##_vu *)(o + off[v]);                          \
                }                                                                            \
                for (; e < n && ir[e] < k1; e++) {  /* this block's part of row i */          \
                    const NAME##_bt a = FASTNN_OP(BCAST, OPS)(vr[e]);                        \
                    const T *w = pk + (fastnn_bp_idx)(ir[e] - k0) * ldp;                     \
                    FASTNN_SP_UNROLL for (int v = 0; v < NV; v++)   /* z += x[i, k] W[k] */  \
                        acc[v] = FASTNN_OP(MADD, OPS)(acc[v], a, *(const NAME##_vt *)(w + v * LANES)); \
                }                                                                            \
                cur[r] = e;                                                                  \
                if (last && bias)                                                            \
                    FASTNN_SP_UNROLL for (int v = 0; v < NV; v++)                            \
                        acc[v] += *(const NAME##_vu *)(bias + off[v]);                       \
                FASTNN_SP_UNROLL for (int v = 0; v < NV; v++) *(NAME##_vu *)(o + off[v]) = acc[v]; \
            }                                                                                \
        }                                                                                    \
    }                                                                                        \
}                                                                                            \
ATTR static void NAME##_rows(fastnn_bp_idx M, fastnn_bp_idx N, fastnn_bp_idx K,             \
        const int *idx, const T *val, fastnn_bp_idx ldi, const fastnn_bp_idx *nnz,           \
        const T *W, fastnn_bp_idx ldw, const T *bias, T *out, fastnn_bp_idx ldo)            \
{                                                                                            \
    if (M <= 0 || N <= 0) return;                                                            \
    if (N < LANES) {  /* narrower than a vector: scalar chains, same order */               \
        for (fastnn_bp_idx i = 0; i < M; i++)                                                \
            for (fastnn_bp_idx j = 0; j < N; j++) {                                          \
                T s = 0;                                                                     \
                for (fastnn_bp_idx e = 0; e < nnz[i]; e++)                                   \
                    s = FASTNN_OP(MADD, OPSS)(s, val[i * ldi + e],                           \
                                              W[(fastnn_bp_idx)idx[i * ldi + e] * ldw + j]);  \
                out[i * ldo + j] = bias ? s + bias[j] : s;                                   \
            }                                                                                \
        return;                                                                              \
    }                                                                                        \
    T pk[FASTNN_SPARSE_L1_BYTES / sizeof(T)] __attribute__((aligned(64)));                   \
    /* equal panels of <= FASTNN_SPARSE_PANEL vectors */                                     \
    const fastnn_bp_idx nvec = (N + LANES - 1) / LANES;                                      \
    const fastnn_bp_idx npan = (nvec + FASTNN_SPARSE_PANEL - 1) / FASTNN_SPARSE_PANEL;       \
    const fastnn_bp_idx per = (nvec + npan - 1) / npan;                                      \
    for (fastnn_bp_idx j = 0; j < N; ) {                                                     \
        const fastnn_bp_idx left = (N - j + LANES - 1) / LANES;                              \
        const int nv = (int)(left < per ? left : per);                                       \
        const fastnn_bp_idx w = N - j < nv * LANES ? N - j : nv * LANES;                     \
        const fastnn_bp_idx kb = FASTNN_SPARSE_L1_BYTES / (nv * LANES * (fastnn_bp_idx)sizeof(T)); \
        const T *bj = bias ? bias + j : NULL;                                                \
        const fastnn_bp_idx jl = w - LANES;                                                  \
        if (w < LANES) {  /* a last few columns (N > LANES, so shift the vector left) */     \
            j = N - LANES;                                                                   \
            continue;                                                                        \
        }                                                                                    \
        switch (nv) {                                                                        \
        FASTNN_SP_CASES(FASTNN_SP_ROWS_CALL, NAME)                                           \
        }                                                                                    \
        j += w;                                                                              \
    }                                                                                        \
}                                                                                            \
/* dW for G adjacent columns of x ([c, c + gw), gw <= G) x one panel of NV vectors (vector \
 * v at column off[v] of d and dW): G x NV accumulators in registers, summed over `rows`,  \
 * the rows (ascending) where any of the G columns is non-zero; x[i, c + g] == 0 adds      \
 * nothing (d is finite). */                                                                \
ATTR static inline __attribute__((always_inline)) void NAME##_gtile_(                        \
        const int NV, const int gw, const int *rows, fastnn_bp_idx nrows, const T *x,        \
        fastnn_bp_idx ldx, fastnn_bp_idx c, const T *d, fastnn_bp_idx ldd, T *dW,            \
        fastnn_bp_idx lddw, const fastnn_bp_idx *off)                                        \
{                                                                                            \
    NAME##_vt acc[FASTNN_SPARSE_G][FASTNN_SPARSE_GNV];                                       \
    FASTNN_SP_UNROLL for (int g = 0; g < FASTNN_SPARSE_G; g++)                               \
        FASTNN_SP_UNROLL for (int v = 0; v < NV; v++) acc[g][v] = (NAME##_vt){0};            \
    for (fastnn_bp_idx r = 0; r < nrows; r++) {                                              \
        const fastnn_bp_idx i = rows[r];                                                     \
        const T *xr = x + i * ldx + c;                                                       \
        NAME##_vt dv[FASTNN_SPARSE_GNV];                                                     \
        FASTNN_SP_UNROLL for (int v = 0; v < NV; v++) dv[v] = *(const NAME##_vu *)(d + i * ldd + off[v]); \
        FASTNN_SP_UNROLL for (int g = 0; g < FASTNN_SPARSE_G; g++) {                         \
            const NAME##_bt a = FASTNN_OP(BCAST, OPS)(g < gw ? xr[g] : (T)0);                \
            FASTNN_SP_UNROLL for (int v = 0; v < NV; v++)   /* dW[k] += x[i, k] dz[i] */     \
                acc[g][v] = FASTNN_OP(MADD, OPS)(acc[g][v], a, dv[v]);                       \
        }                                                                                    \
    }                                                                                        \
    /* overlapping vectors hold the same sums: either store gives the same bits */          \
    FASTNN_SP_UNROLL for (int g = 0; g < FASTNN_SPARSE_G; g++)                               \
        if (g < gw)                                                                          \
            FASTNN_SP_UNROLL for (int v = 0; v < NV; v++)                                    \
                *(NAME##_vu *)(dW + (c + g) * lddw + off[v]) = acc[g][v];                    \
}                                                                                            \
ATTR static inline __attribute__((always_inline)) void NAME##_gtile(                         \
        const int NV, const int *rows, fastnn_bp_idx nrows, const T *x, fastnn_bp_idx ldx,   \
        fastnn_bp_idx c, int gw, const T *d, fastnn_bp_idx ldd, T *dW, fastnn_bp_idx lddw,   \
        const fastnn_bp_idx *off)                                                            \
{                                                                                            \
    /* a whole group (all but maybe the last) with its width known at compile time */       \
    if (gw == FASTNN_SPARSE_G) NAME##_gtile_(NV, FASTNN_SPARSE_G, rows, nrows, x, ldx, c, d, ldd, dW, lddw, off); \
    else if (gw == 2) NAME##_gtile_(NV, 2, rows, nrows, x, ldx, c, d, ldd, dW, lddw, off);    \
    else NAME##_gtile_(NV, 1, rows, nrows, x, ldx, c, d, ldd, dW, lddw, off);                \
}                                                                                            \
ATTR static void NAME##_xtd(fastnn_bp_idx M, fastnn_bp_idx N, const T *x, fastnn_bp_idx ldx, \
        fastnn_bp_idx g0, fastnn_bp_idx g1, fastnn_bp_idx K, const int *idx,                \
        fastnn_bp_idx ldi, const fastnn_bp_idx *nnz, const T *d, fastnn_bp_idx ldd, T *dW,   \
        fastnn_bp_idx lddw, int *scratch)                                                    \
{                                                                                            \
    const fastnn_bp_idx lo = g0 * FASTNN_SPARSE_G;                                           \
    const fastnn_bp_idx hi = g1 * FASTNN_SPARSE_G < K ? g1 * FASTNN_SPARSE_G : K;            \
    if (hi <= lo || N <= 0) return;                                                          \
    /* the rows of each group, ascending: scratch[g * (M + 1) ...] (one spare slot takes    \
     * the branch-free writes of a row already listed), counts after the lists */           \
    const fastnn_bp_idx ng = g1 - g0, ls = M + 1;                                            \
    int *cnt = scratch + ng * ls, *lastrow = cnt + ng;                                       \
    (void)lastrow;                                                                           \
    for (fastnn_bp_idx g = 0; g < ng; g++) cnt[g] = 0;                                       \
    for (fastnn_bp_idx i = 0; i < M; i++) {                                                  \
        /* a row's pairs are in column order, so its groups come in runs: append i to a    \
         * group's list at the start of each run. Branch-free, and a pair that starts no    \
         * run writes to a scratch slot of its own (8 in turn) rather than to cnt[g] that   \
         * the previous pair just wrote: no store-to-load chain through memory. */          \
        int sink[8], dummy[8] = {0};                                                         \
        const int *ir = idx + i * ldi;                                                       \
        fastnn_bp_idx e = 0, prev = -1;                                                      \
        while (e < nnz[i] && ir[e] < lo) e++;                                                \
        for (; e < nnz[i] && ir[e] < hi; e++) {                                              \
            const fastnn_bp_idx g = ir[e] / FASTNN_SPARSE_G - g0;                            \
            const int run = g != prev;                                                       \
            int *cp = run ? cnt + g : dummy + (e & 7);                                       \
            const int c = *cp;                                                               \
            *(run ? scratch + g * ls + c : sink + (e & 7)) = (int)i;                         \
            *cp = c + 1;                                                                     \
            prev = g;                                                                        \
        }                                                                                    \
    }                                                                                        \
    if (N < LANES) {  /* narrower than a vector: scalar, the same sums */                    \
        for (fastnn_bp_idx g = 0; g < ng; g++) {                                             \
            const fastnn_bp_idx c = (g0 + g) * FASTNN_SPARSE_G;                              \
            for (fastnn_bp_idx k = c; k < c + FASTNN_SPARSE_G && k < hi; k++)                \
                for (fastnn_bp_idx j = 0; j < N; j++) {                                      \
                    T s = 0;                                                                 \
                    for (fastnn_bp_idx r = 0; r < cnt[g]; r++) {                             \
                        const fastnn_bp_idx i = scratch[g * ls + r];                         \
                        s = FASTNN_OP(MADD, OPSS)(s, x[i * ldx + k], d[i * ldd + j]);        \
                    }                                                                        \
                    dW[k * lddw + j] = s;                                                    \
                }                                                                            \
        }                                                                                    \
        return;                                                                              \
    }                                                                                        \
    /* equal panels of <= GNV vectors; a ragged last vector overlaps */                      \
    enum { gnv_max = GNV };                                                                  \
    const fastnn_bp_idx nvec = (N + LANES - 1) / LANES;                                      \
    const fastnn_bp_idx npan = (nvec + (GNV) - 1) / (GNV);                                   \
    const fastnn_bp_idx per = (nvec + npan - 1) / npan;                                      \
    for (fastnn_bp_idx j = 0; j < N; ) {                                                     \
        const fastnn_bp_idx left = (N - j + LANES - 1) / LANES;                              \
        const int nv = (int)(left < per ? left : per);                                       \
        const fastnn_bp_idx w = N - j < nv * LANES ? N - j : nv * LANES;                     \
        if (w < LANES) { j = N - LANES; continue; }                                          \
        fastnn_bp_idx off[FASTNN_SPARSE_GNV];                                                \
        for (int v = 0; v < nv; v++) off[v] = j + (v == nv - 1 ? w - LANES : v * LANES);     \
        for (fastnn_bp_idx g = 0; g < ng; g++) {                                             \
            const fastnn_bp_idx c = (g0 + g) * FASTNN_SPARSE_G;                              \
            const int gw = (int)(hi - c < FASTNN_SPARSE_G ? hi - c : FASTNN_SPARSE_G);       \
            const int *rows = scratch + g * ls;                                              \
            switch (nv) {                                                                    \
            FASTNN_SP_GCASES(FASTNN_SP_GTILE_CALL, NAME)                                     \
            }                                                                                \
        }                                                                                    \
        j += w;                                                                              \
    }                                                                                        \
}
#else  /* no vector extensions (MSVC): the same sums in the same order, plain loops */
#define FASTNN_BP_KERNELS(NAME, T, LANES, ATTR, OPS, OPSS, GNV)                               \
static void NAME##_sprow(fastnn_bp_idx nnz, const int *idx, const T *val, const T *W,         \
                         fastnn_bp_idx ldw, fastnn_bp_idx N, const T *bias, T *out)          \
{                                                                                            \
    for (fastnn_bp_idx j = 0; j < N; j++) {                                                  \
        T s = 0;                                                                             \
        for (fastnn_bp_idx k = 0; k < nnz; k++) s += val[k] * W[(fastnn_bp_idx)idx[k] * ldw + j]; \
        out[j] = bias ? s + bias[j] : s;                                                     \
    }                                                                                        \
}                                                                                            \
static int NAME##_finite(const T *x, fastnn_bp_idx n)                                        \
{                                                                                            \
    T s = 0;                                                                                 \
    for (fastnn_bp_idx j = 0; j < n; j++) s += x[j] - x[j];                                  \
    return s == 0;                                                                           \
}                                                                                            \
static void NAME##_rows(fastnn_bp_idx M, fastnn_bp_idx N, fastnn_bp_idx K,                  \
        const int *idx, const T *val, fastnn_bp_idx ldi, const fastnn_bp_idx *nnz,           \
        const T *W, fastnn_bp_idx ldw, const T *bias, T *out, fastnn_bp_idx ldo)            \
{                                                                                            \
    (void)K;                                                                                 \
    for (fastnn_bp_idx i = 0; i < M; i++)                                                    \
        NAME##_sprow(nnz[i], idx + i * ldi, val + i * ldi, W, ldw, N, bias, out + i * ldo);  \
}                                                                                            \
static void NAME##_xtd(fastnn_bp_idx M, fastnn_bp_idx N, const T *x, fastnn_bp_idx ldx,        \
        fastnn_bp_idx g0, fastnn_bp_idx g1, fastnn_bp_idx K, const int *idx,                \
        fastnn_bp_idx ldi, const fastnn_bp_idx *nnz, const T *d, fastnn_bp_idx ldd, T *dW,   \
        fastnn_bp_idx lddw, int *scratch)                                                    \
{                                                                                            \
    const fastnn_bp_idx lo = g0 * FASTNN_SPARSE_G;                                           \
    const fastnn_bp_idx hi = g1 * FASTNN_SPARSE_G < K ? g1 * FASTNN_SPARSE_G : K;            \
    (void)x; (void)ldx; (void)scratch;                                                       \
    for (fastnn_bp_idx k = lo; k < hi; k++)                                                  \
        for (fastnn_bp_idx j = 0; j < N; j++) dW[k * lddw + j] = 0;                          \
    for (fastnn_bp_idx i = 0; i < M; i++)                                                    \
        for (fastnn_bp_idx e = 0; e < nnz[i]; e++) {                                         \
            const fastnn_bp_idx k = idx[i * ldi + e];                                        \
            if (k < lo || k >= hi) continue;                                                 \
            for (fastnn_bp_idx j = 0; j < N; j++)                                            \
                dW[k * lddw + j] += x[i * ldx + k] * d[i * ldd + j];                         \
        }                                                                                    \
}
#endif

/* Columns [c0, c0 + w) of x (M x K) as per-column lists of (row, value), rows
 * ascending: column j's list is at [j * M, j * M + cnt[j]) (room for every row, so one
 * pass and no counting). NaN != 0, so NaN is kept. Branch-free: every element is
 * written to the next free slot, which only advances when the element is non-zero. */
#define FASTNN_BP_CSC_SCALAR(NAME, T)                                                    \
static void NAME(const T *x, fastnn_bp_idx M, fastnn_bp_idx K, fastnn_bp_idx c0, int w, \
                 int *cidx, T *cval, fastnn_bp_idx *cnt)                              \
{                                                                                     \
    for (int j = 0; j < w; j++) cnt[j] = 0;                                           \
    for (fastnn_bp_idx i = 0; i < M; i++) {                                           \
        const T *xr = x + i * K + c0;                                                 \
        for (int j = 0; j < w; j++) {                                                 \
            const T v = xr[j];                                                        \
            const fastnn_bp_idx p = j * M + cnt[j];                                   \
            cidx[p] = (int)i; cval[p] = v; cnt[j] += (v != 0);                        \
        }                                                                             \
    }                                                                                 \
}
FASTNN_BP_CSC_SCALAR(fastnn_bp_csc_d_base, double)
FASTNN_BP_CSC_SCALAR(fastnn_bp_csc_s_base, float)
/* branch-free compaction, any ISA: NaN != 0, so NaN is kept */
#define FASTNN_BP_COMPRESS_SCALAR(NAME, T)                                               \
static fastnn_bp_idx NAME(const T *x, fastnn_bp_idx n, int *idx, T *val)               \
{                                                                                     \
    fastnn_bp_idx k = 0;                                                              \
    for (fastnn_bp_idx j = 0; j < n; j++) {                                           \
        const T v = x[j];                                                             \
        idx[k] = (int)j; val[k] = v; k += (v != 0);                                   \
    }                                                                                 \
    return k;                                                                         \
}
FASTNN_BP_COMPRESS_SCALAR(fastnn_bp_compress_d_base, double)
FASTNN_BP_COMPRESS_SCALAR(fastnn_bp_compress_s_base, float)
/* register budget: 16 vector registers (baseline, AVX2): dW tiles of 3 x 3 vectors;
 * 32 (AVX-512): 3 x 7 (+ 7 for the row of dz) */
FASTNN_BP_KERNELS(fastnn_bp_d_base, double, 2, , plain, plain, 3)
FASTNN_BP_KERNELS(fastnn_bp_s_base, float, 4, , plain, plain, 3)

#if defined(__GNUC__) && (defined(__x86_64__) || defined(__i386__))
#define FASTNN_SP_X86 1
FASTNN_BP_KERNELS(fastnn_bp_d_avx2, double, 4, FASTNN_TARGET_AVX2, 256d, fmad, 3)
FASTNN_BP_KERNELS(fastnn_bp_s_avx2, float, 8, FASTNN_TARGET_AVX2, 256s, fmas, 3)
FASTNN_BP_KERNELS(fastnn_bp_d_avx512, double, 8, FASTNN_TARGET_AVX512, 512d, fmad, 7)
FASTNN_BP_KERNELS(fastnn_bp_s_avx512, float, 16, FASTNN_TARGET_AVX512, 512s, fmas, 7)
/* A full chunk of 64 columns: 64-bit mask of the row's non-zeros (unordered compare:
 * NaN counts), then one step per set bit; zeros cost a compare, not a branch. */
FASTNN_TARGET_AVX2
static void fastnn_bp_csc_d_avx2(const double *x, fastnn_bp_idx M, fastnn_bp_idx K,
                                 fastnn_bp_idx c0, int w, int *cidx, double *cval,
                                 fastnn_bp_idx *cnt)
{
    if (w != 64) { fastnn_bp_csc_d_base(x, M, K, c0, w, cidx, cval, cnt); return; }
    const __m256d z = _mm256_setzero_pd();
    for (int j = 0; j < 64; j++) cnt[j] = 0;
    for (fastnn_bp_idx i = 0; i < M; i++) {
        const double *xr = x + i * K + c0;
        unsigned long long m = 0;
        for (int q = 0; q < 16; q++)
            m |= (unsigned long long)_mm256_movemask_pd(_mm256_cmp_pd(_mm256_loadu_pd(xr + 4 * q), z, _CMP_NEQ_UQ)) << (4 * q);
        while (m) {
            const int j = __builtin_ctzll(m);
            const fastnn_bp_idx p = j * M + cnt[j]++;
            cidx[p] = (int)i; cval[p] = xr[j];
            m &= m - 1;
        }
    }
}
FASTNN_TARGET_AVX2
static void fastnn_bp_csc_s_avx2(const float *x, fastnn_bp_idx M, fastnn_bp_idx K,
                                 fastnn_bp_idx c0, int w, int *cidx, float *cval,
                                 fastnn_bp_idx *cnt)
{
    if (w != 64) { fastnn_bp_csc_s_base(x, M, K, c0, w, cidx, cval, cnt); return; }
    const __m256 z = _mm256_setzero_ps();
    for (int j = 0; j < 64; j++) cnt[j] = 0;
    for (fastnn_bp_idx i = 0; i < M; i++) {
        const float *xr = x + i * K + c0;
        unsigned long long m = 0;
        for (int q = 0; q < 8; q++)
            m |= (unsigned long long)_mm256_movemask_ps(_mm256_cmp_ps(_mm256_loadu_ps(xr + 8 * q), z, _CMP_NEQ_UQ)) << (8 * q);
        while (m) {
            const int j = __builtin_ctzll(m);
            const fastnn_bp_idx p = j * M + cnt[j]++;
            cidx[p] = (int)i; cval[p] = xr[j];
            m &= m - 1;
        }
    }
}
/* 16 elements -> a 16-bit mask of non-zeros (unordered compare: NaN counts), then
 * one step per set bit: the zeros cost a compare, not a branch each. */
FASTNN_TARGET_AVX2
static fastnn_bp_idx fastnn_bp_compress_d_avx2(const double *x, fastnn_bp_idx n, int *idx, double *val)
{
    const __m256d z = _mm256_setzero_pd();
    fastnn_bp_idx j = 0, k = 0;
    for (; j + 16 <= n; j += 16) {
        unsigned m = (unsigned)_mm256_movemask_pd(_mm256_cmp_pd(_mm256_loadu_pd(x + j), z, _CMP_NEQ_UQ))
            | (unsigned)_mm256_movemask_pd(_mm256_cmp_pd(_mm256_loadu_pd(x + j + 4), z, _CMP_NEQ_UQ)) << 4
            | (unsigned)_mm256_movemask_pd(_mm256_cmp_pd(_mm256_loadu_pd(x + j + 8), z, _CMP_NEQ_UQ)) << 8
            | (unsigned)_mm256_movemask_pd(_mm256_cmp_pd(_mm256_loadu_pd(x + j + 12), z, _CMP_NEQ_UQ)) << 12;
        while (m) {
            int b = __builtin_ctz(m);
            idx[k] = (int)(j + b); val[k] = x[j + b]; k++;
            m &= m - 1;
        }
    }
    for (; j < n; j++) { const double v = x[j]; idx[k] = (int)j; val[k] = v; k += (v != 0); }
    return k;
}
FASTNN_TARGET_AVX2
static fastnn_bp_idx fastnn_bp_compress_s_avx2(const float *x, fastnn_bp_idx n, int *idx, float *val)
{
    const __m256 z = _mm256_setzero_ps();
    fastnn_bp_idx j = 0, k = 0;
    for (; j + 16 <= n; j += 16) {
        unsigned m = (unsigned)_mm256_movemask_ps(_mm256_cmp_ps(_mm256_loadu_ps(x + j), z, _CMP_NEQ_UQ))
            | (unsigned)_mm256_movemask_ps(_mm256_cmp_ps(_mm256_loadu_ps(x + j + 8), z, _CMP_NEQ_UQ)) << 8;
        while (m) {
            int b = __builtin_ctz(m);
            idx[k] = (int)(j + b); val[k] = x[j + b]; k++;
            m &= m - 1;
        }
    }
    for (; j < n; j++) { const float v = x[j]; idx[k] = (int)j; val[k] = v; k += (v != 0); }
    return k;
}
/* AVX-512: the same, 64 columns as one 64-bit mask straight from the compares */
FASTNN_TARGET_AVX512
static void fastnn_bp_csc_d_avx512(const double *x, fastnn_bp_idx M, fastnn_bp_idx K,
                                   fastnn_bp_idx c0, int w, int *cidx, double *cval,
                                   fastnn_bp_idx *cnt)
{
    if (w != 64) { fastnn_bp_csc_d_base(x, M, K, c0, w, cidx, cval, cnt); return; }
    const __m512d z = _mm512_setzero_pd();
    for (int j = 0; j < 64; j++) cnt[j] = 0;
    for (fastnn_bp_idx i = 0; i < M; i++) {
        const double *xr = x + i * K + c0;
        unsigned long long m = 0;
        for (int q = 0; q < 8; q++)
            m |= (unsigned long long)_mm512_cmp_pd_mask(_mm512_loadu_pd(xr + 8 * q), z, _CMP_NEQ_UQ) << (8 * q);
        while (m) {
            const int j = __builtin_ctzll(m);
            const fastnn_bp_idx p = j * M + cnt[j]++;
            cidx[p] = (int)i; cval[p] = xr[j];
            m &= m - 1;
        }
    }
}
FASTNN_TARGET_AVX512
static void fastnn_bp_csc_s_avx512(const float *x, fastnn_bp_idx M, fastnn_bp_idx K,
                                   fastnn_bp_idx c0, int w, int *cidx, float *cval,
                                   fastnn_bp_idx *cnt)
{
    if (w != 64) { fastnn_bp_csc_s_base(x, M, K, c0, w, cidx, cval, cnt); return; }
    const __m512 z = _mm512_setzero_ps();
    for (int j = 0; j < 64; j++) cnt[j] = 0;
    for (fastnn_bp_idx i = 0; i < M; i++) {
        const float *xr = x + i * K + c0;
        unsigned long long m = 0;
        for (int q = 0; q < 4; q++)
            m |= (unsigned long long)_mm512_cmp_ps_mask(_mm512_loadu_ps(xr + 16 * q), z, _CMP_NEQ_UQ) << (16 * q);
        while (m) {
            const int j = __builtin_ctzll(m);
            const fastnn_bp_idx p = j * M + cnt[j]++;
            cidx[p] = (int)i; cval[p] = xr[j];
            m &= m - 1;
        }
    }
}
/* 16 (8) elements -> a mask of the non-zeros (unordered compare: NaN counts); the
 * indices and values are compressed in registers (vpcompress, fast to a register on
 * every AVX-512 CPU; to memory it is microcoded on Zen 4) and stored as full vectors at
 * the next free slot: lanes past the count are overwritten later, and slot + 16 <= n
 * (slot <= j) keeps every store inside the caller's n elements. */
FASTNN_TARGET_AVX512
static fastnn_bp_idx fastnn_bp_compress_d_avx512(const double *x, fastnn_bp_idx n, int *idx, double *val)
{
    const __m512d z = _mm512_setzero_pd();
    const __m256i step = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    fastnn_bp_idx j = 0, k = 0;
    for (; j + 8 <= n; j += 8) {
        const __m512d v = _mm512_loadu_pd(x + j);
        const __mmask8 m = _mm512_cmp_pd_mask(v, z, _CMP_NEQ_UQ);
        const __m256i ids = _mm256_add_epi32(step, _mm256_set1_epi32((int)j));
        _mm256_storeu_si256((__m256i *)(idx + k), _mm256_maskz_compress_epi32(m, ids));
        _mm512_storeu_pd(val + k, _mm512_maskz_compress_pd(m, v));
        k += __builtin_popcount((unsigned)m);
    }
    for (; j < n; j++) { const double v = x[j]; idx[k] = (int)j; val[k] = v; k += (v != 0); }
    return k;
}
FASTNN_TARGET_AVX512
static fastnn_bp_idx fastnn_bp_compress_s_avx512(const float *x, fastnn_bp_idx n, int *idx, float *val)
{
    const __m512 z = _mm512_setzero_ps();
    const __m512i step = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
    fastnn_bp_idx j = 0, k = 0;
    for (; j + 16 <= n; j += 16) {
        const __m512 v = _mm512_loadu_ps(x + j);
        const __mmask16 m = _mm512_cmp_ps_mask(v, z, _CMP_NEQ_UQ);
        const __m512i ids = _mm512_add_epi32(step, _mm512_set1_epi32((int)j));
        _mm512_storeu_si512((void *)(idx + k), _mm512_maskz_compress_epi32(m, ids));
        _mm512_storeu_ps(val + k, _mm512_maskz_compress_ps(m, v));
        k += __builtin_popcount((unsigned)m);
    }
    for (; j < n; j++) { const float v = x[j]; idx[k] = (int)j; val[k] = v; k += (v != 0); }
    return k;
}
#endif

/* ---- dispatch: the active level's instance --------------------------------------------- */
#ifdef FASTNN_SP_X86
#define FASTNN_SP_PICK(RET, A2, A5, B, ...)                                                   \
    switch (fastnn_isa()) {                                                                  \
    case FASTNN_ISA_AVX512: RET A5(__VA_ARGS__); break;                                      \
    case FASTNN_ISA_AVX2: RET A2(__VA_ARGS__); break;                                        \
    default: RET B(__VA_ARGS__); break;                                                      \
    }
#else
#define FASTNN_SP_PICK(RET, A2, A5, B, ...) RET B(__VA_ARGS__);
#endif

/* every module that includes this header uses only some of the entry points */
#if defined(__GNUC__)
#define FASTNN_SP_UNUSED __attribute__((unused))
#else
#define FASTNN_SP_UNUSED
#endif
#define FASTNN_BP_DISPATCH(SUF, T)                                                           \
FASTNN_SP_UNUSED static void fastnn_bp_sprow_##SUF(fastnn_bp_idx nnz, const int *idx, const T *val,         \
        const T *W, fastnn_bp_idx ldw, fastnn_bp_idx N, const T *bias, T *out) {          \
    FASTNN_SP_PICK(, fastnn_bp_##SUF##_avx2_sprow, fastnn_bp_##SUF##_avx512_sprow,       \
                   fastnn_bp_##SUF##_base_sprow, nnz, idx, val, W, ldw, N, bias, out)      \
}                                                                                         \
FASTNN_SP_UNUSED static int fastnn_bp_finite_##SUF(const T *x, fastnn_bp_idx n) {                          \
    FASTNN_SP_PICK(return, fastnn_bp_##SUF##_avx2_finite, fastnn_bp_##SUF##_avx512_finite, \
                   fastnn_bp_##SUF##_base_finite, x, n)                                    \
    return 0;                                                                             \
}                                                                                         \
FASTNN_SP_UNUSED static fastnn_bp_idx fastnn_bp_compress_##SUF(const T *x, fastnn_bp_idx n, int *idx, T *val) { \
    FASTNN_SP_PICK(return, fastnn_bp_compress_##SUF##_avx2, fastnn_bp_compress_##SUF##_avx512, \
                   fastnn_bp_compress_##SUF##_base, x, n, idx, val)                        \
    return 0;                                                                             \
}                                                                                         \
FASTNN_SP_UNUSED static void fastnn_bp_csc_##SUF(const T *x, fastnn_bp_idx M, fastnn_bp_idx K,             \
        fastnn_bp_idx c0, int w, int *cidx, T *cval, fastnn_bp_idx *cnt) {                \
    FASTNN_SP_PICK(, fastnn_bp_csc_##SUF##_avx2, fastnn_bp_csc_##SUF##_avx512,           \
                   fastnn_bp_csc_##SUF##_base, x, M, K, c0, w, cidx, cval, cnt)            \
}                                                                                         \
/* out[0:M, 0:N] = x @ W (+ bias) over x's non-zeros (see the top of this file) */        \
FASTNN_SP_UNUSED static void fastnn_sparse_rows_##SUF(fastnn_bp_idx M, fastnn_bp_idx N, fastnn_bp_idx K,   \
        const int *idx, const T *val, fastnn_bp_idx ldi, const fastnn_bp_idx *nnz,         \
        const T *W, fastnn_bp_idx ldw, const T *bias, T *out, fastnn_bp_idx ldo) {        \
    FASTNN_SP_PICK(, fastnn_bp_##SUF##_avx2_rows, fastnn_bp_##SUF##_avx512_rows,         \
                   fastnn_bp_##SUF##_base_rows, M, N, K, idx, val, ldi, nnz, W, ldw, bias, out, ldo) \
}                                                                                         \
/* dW[G g0 : G g1, 0:N] = (x.T @ dz)[...] over x's non-zeros (see the top of this file) */ \
FASTNN_SP_UNUSED static void fastnn_sparse_xtd_##SUF(fastnn_bp_idx M, fastnn_bp_idx N, const T *x,          \
        fastnn_bp_idx ldx, fastnn_bp_idx g0, fastnn_bp_idx g1, fastnn_bp_idx K,            \
        const int *idx, fastnn_bp_idx ldi, const fastnn_bp_idx *nnz, const T *d,           \
        fastnn_bp_idx ldd, T *dW, fastnn_bp_idx lddw, int *scratch) {                      \
    FASTNN_SP_PICK(, fastnn_bp_##SUF##_avx2_xtd, fastnn_bp_##SUF##_avx512_xtd,           \
                   fastnn_bp_##SUF##_base_xtd, M, N, x, ldx, g0, g1, K, idx, ldi, nnz, d, ldd, \
                   dW, lddw, scratch)                                                      \
}
FASTNN_BP_DISPATCH(d, double)
FASTNN_BP_DISPATCH(s, float)

#endif
