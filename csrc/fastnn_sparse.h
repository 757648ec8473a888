/* Sparse first-layer helpers for the fused backprop kernel (_kernels/_backprop.pyx).
 * MNIST-like inputs are ~80% exact zeros; these skip them without changing any sum's order. */
#ifndef FASTNN_SPARSE_H
#define FASTNN_SPARSE_H

/* Sparse helpers for the first layer (C, so the vector width is explicit).
 *
 * fastnn_bp_sprow_*: out[0:N] = sum_k val[k] * W[idx[k] * ldw + 0:N] (+ bias after the
 *   sum): one row of (sparse row) @ W. Columns go in panels of up to 8 vectors held
 *   in registers; narrow panels split k into 2 or 4 interleaved chains (added in a
 *   fixed order at the end) so they are not FMA-latency-bound; a ragged end is a last
 *   vector overlapping its neighbour.
 *   The order of every sum is fixed by N alone, never by the caller's threads.
 * fastnn_bp_compress_*: the non-zeros (and NaNs) of one row as (index, value) pairs.
 * fastnn_bp_csc_*: a chunk of x's columns as (row, value) lists of its non-zeros (and NaNs).
 * fastnn_bp_finite_*: 1 when every element is finite (x - x == 0), in one vector pass.
 * Each is compiled for the baseline ISA and, behind target("avx2,fma"), for AVX2+FMA;
 * the choice is made once at import time (fastnn_bp_init). */
#include <stddef.h>
#include "fastnn_cpu.h"
#include <string.h>
typedef ptrdiff_t fastnn_bp_idx;

#if defined(__GNUC__)
#define FASTNN_BP_KERNELS(NAME, T, LANES, ATTR)                                          \
typedef T NAME##_vt __attribute__((vector_size(sizeof(T) * LANES)));                   \
typedef T NAME##_vu __attribute__((vector_size(sizeof(T) * LANES), aligned(sizeof(T)), may_alias)); \
ATTR static inline __attribute__((always_inline)) void NAME##_panel(                  \
        const int NV, const int S, fastnn_bp_idx nnz, const int *idx, const T *val,   \
        const T *W, fastnn_bp_idx ldw, fastnn_bp_idx j0, fastnn_bp_idx jl,            \
        const T *bias, T *out)                                                        \
{                                                                                     \
    /* NV vectors of columns (vector v at j0 + v * LANES, the last one at jl), S      \
     * interleaved chains over k (NV * S <= 8 accumulators) */                        \
    NAME##_vt c[4][8];                                                                \
    fastnn_bp_idx off[8];                                                             \
    for (int v = 0; v < NV; v++) off[v] = v == NV - 1 ? jl : j0 + v * LANES;         \
    for (int s = 0; s < S; s++) for (int v = 0; v < NV; v++) c[s][v] = (NAME##_vt){0}; \
    fastnn_bp_idx k = 0;                                                              \
    for (; k + S <= nnz; k += S) {                                                    \
        for (int s = 0; s < S; s++) {                                                 \
            const T a = val[k + s];                                                   \
            const T *w = W + (fastnn_bp_idx)idx[k + s] * ldw;                         \
            for (int v = 0; v < NV; v++)                                              \
                c[s][v] += a * *(const NAME##_vu *)(w + off[v]);                      \
        }                                                                             \
    }                                                                                 \
    for (; k < nnz; k++) {                                                            \
        const T a = val[k];                                                           \
        const T *w = W + (fastnn_bp_idx)idx[k] * ldw;                                 \
        for (int v = 0; v < NV; v++) c[0][v] += a * *(const NAME##_vu *)(w + off[v]); \
    }                                                                                 \
    for (int v = 0; v < NV; v++) {                                                    \
        NAME##_vt r = c[0][v];                                                        \
        if (S == 2) r = c[0][v] + c[1][v];                                            \
        if (S == 4) r = (c[0][v] + c[1][v]) + (c[2][v] + c[3][v]);                    \
        if (bias) r += *(const NAME##_vu *)(bias + off[v]);                           \
        *(NAME##_vu *)(out + off[v]) = r;                                             \
    }                                                                                 \
}                                                                                     \
ATTR static void NAME##_sprow(fastnn_bp_idx nnz, const int *idx, const T *val,        \
                              const T *W, fastnn_bp_idx ldw, fastnn_bp_idx N,         \
                              const T *bias, T *out)                                  \
{                                                                                     \
    if (N < LANES) {                                                                  \
        for (fastnn_bp_idx j = 0; j < N; j++) {                                       \
            T s = 0;                                                                  \
            for (fastnn_bp_idx k = 0; k < nnz; k++)                                   \
                s += val[k] * W[(fastnn_bp_idx)idx[k] * ldw + j];                     \
            out[j] = bias ? s + bias[j] : s;                                          \
        }                                                                             \
        return;                                                                       \
    }                                                                                 \
    /* panels of 8 vectors, then one panel of the 1..8 left, whose last vector ends   \
     * at column N (overlapping its neighbour when N is not a multiple of LANES) */   \
    fastnn_bp_idx nvec = (N + LANES - 1) / LANES, j = 0;                              \
    for (; nvec > 8; nvec -= 8, j += 8 * LANES)                                       \
        NAME##_panel(8, 1, nnz, idx, val, W, ldw, j, j + 7 * LANES, bias, out);       \
    const fastnn_bp_idx jl = N - LANES;                                               \
    switch ((int)nvec) {                                                              \
    case 1: NAME##_panel(1, 4, nnz, idx, val, W, ldw, j, jl, bias, out); break;       \
    case 2: NAME##_panel(2, 4, nnz, idx, val, W, ldw, j, jl, bias, out); break;       \
    case 3: NAME##_panel(3, 2, nnz, idx, val, W, ldw, j, jl, bias, out); break;       \
    case 4: NAME##_panel(4, 2, nnz, idx, val, W, ldw, j, jl, bias, out); break;       \
    case 5: NAME##_panel(5, 1, nnz, idx, val, W, ldw, j, jl, bias, out); break;       \
    case 6: NAME##_panel(6, 1, nnz, idx, val, W, ldw, j, jl, bias, out); break;       \
    case 7: NAME##_panel(7, 1, nnz, idx, val, W, ldw, j, jl, bias, out); break;       \
    default: NAME##_panel(8, 1, nnz, idx, val, W, ldw, j, jl, bias, out); break;      \
    }                                                                                 \
}                                                                                     \
ATTR static int NAME##_finite(const T *x, fastnn_bp_idx n)                            \
{                                                                                     \
    NAME##_vt a0 = {0}, a1 = {0};                                                     \
    fastnn_bp_idx j = 0;                                                              \
    for (; j + 2 * LANES <= n; j += 2 * LANES) {                                      \
        NAME##_vt v0 = *(const NAME##_vu *)(x + j);                                   \
        NAME##_vt v1 = *(const NAME##_vu *)(x + j + LANES);                           \
        a0 += v0 - v0; a1 += v1 - v1;   /* 0 for finite, NaN for inf/NaN */          \
    }                                                                                 \
    T s = 0, lanes[LANES];                                                            \
    for (; j < n; j++) s += x[j] - x[j];                                              \
    a0 += a1;                                                                         \
    memcpy(lanes, &a0, sizeof(a0));                                                   \
    for (int l = 0; l < LANES; l++) s += lanes[l];                                    \
    return s == 0;                                                                    \
}
#else
#define FASTNN_BP_KERNELS(NAME, T, LANES, ATTR)                                          \
static void NAME##_sprow(fastnn_bp_idx nnz, const int *idx, const T *val, const T *W,  \
                         fastnn_bp_idx ldw, fastnn_bp_idx N, const T *bias, T *out)   \
{                                                                                     \
    for (fastnn_bp_idx j = 0; j < N; j++) {                                           \
        T s = 0;                                                                      \
        for (fastnn_bp_idx k = 0; k < nnz; k++) s += val[k] * W[(fastnn_bp_idx)idx[k] * ldw + j]; \
        out[j] = bias ? s + bias[j] : s;                                              \
    }                                                                                 \
}                                                                                     \
static int NAME##_finite(const T *x, fastnn_bp_idx n)                                 \
{                                                                                     \
    T s = 0;                                                                          \
    for (fastnn_bp_idx j = 0; j < n; j++) s += x[j] - x[j];                           \
    return s == 0;                                                                    \
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
FASTNN_BP_KERNELS(fastnn_bp_d_base, double, 2, )
FASTNN_BP_KERNELS(fastnn_bp_s_base, float, 4, )

#if defined(__GNUC__) && (defined(__x86_64__) || defined(__i386__))
#include <immintrin.h>
FASTNN_BP_KERNELS(fastnn_bp_d_avx2, double, 4, __attribute__((target("avx2,fma"))))
FASTNN_BP_KERNELS(fastnn_bp_s_avx2, float, 8, __attribute__((target("avx2,fma"))))
/* A full chunk of 64 columns: 64-bit mask of the row's non-zeros (unordered compare:
 * NaN counts), then one step per set bit; zeros cost a compare, not a branch. */
__attribute__((target("avx2,fma")))
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
__attribute__((target("avx2,fma")))
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
__attribute__((target("avx2,fma")))
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
__attribute__((target("avx2,fma")))
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
/* the instance for the active level (AVX-512 runs the AVX2 one for now) */
#define fastnn_bp_isa (fastnn_isa() >= FASTNN_ISA_AVX2)
#else
#define fastnn_bp_d_avx2_sprow fastnn_bp_d_base_sprow
#define fastnn_bp_s_avx2_sprow fastnn_bp_s_base_sprow
#define fastnn_bp_d_avx2_finite fastnn_bp_d_base_finite
#define fastnn_bp_s_avx2_finite fastnn_bp_s_base_finite
#define fastnn_bp_compress_d_avx2 fastnn_bp_compress_d_base
#define fastnn_bp_compress_s_avx2 fastnn_bp_compress_s_base
#define fastnn_bp_csc_d_avx2 fastnn_bp_csc_d_base
#define fastnn_bp_csc_s_avx2 fastnn_bp_csc_s_base
#define fastnn_bp_isa 0
#endif

#define FASTNN_BP_DISPATCH(SUF, T)                                                       \
static void fastnn_bp_sprow_##SUF(fastnn_bp_idx nnz, const int *idx, const T *val,     \
        const T *W, fastnn_bp_idx ldw, fastnn_bp_idx N, const T *bias, T *out) {      \
    if (fastnn_bp_isa == 1) fastnn_bp_##SUF##_avx2_sprow(nnz, idx, val, W, ldw, N, bias, out); \
    else fastnn_bp_##SUF##_base_sprow(nnz, idx, val, W, ldw, N, bias, out);            \
}                                                                                     \
static int fastnn_bp_finite_##SUF(const T *x, fastnn_bp_idx n) {                      \
    return fastnn_bp_isa == 1 ? fastnn_bp_##SUF##_avx2_finite(x, n)                   \
                              : fastnn_bp_##SUF##_base_finite(x, n);                  \
}                                                                                     \
static fastnn_bp_idx fastnn_bp_compress_##SUF(const T *x, fastnn_bp_idx n, int *idx, T *val) { \
    return fastnn_bp_isa == 1 ? fastnn_bp_compress_##SUF##_avx2(x, n, idx, val)       \
                              : fastnn_bp_compress_##SUF##_base(x, n, idx, val);      \
}                                                                                     \
static void fastnn_bp_csc_##SUF(const T *x, fastnn_bp_idx M, fastnn_bp_idx K,         \
        fastnn_bp_idx c0, int w, int *cidx, T *cval, fastnn_bp_idx *cnt) {            \
    if (fastnn_bp_isa == 1) fastnn_bp_csc_##SUF##_avx2(x, M, K, c0, w, cidx, cval, cnt); \
    else fastnn_bp_csc_##SUF##_base(x, M, K, c0, w, cidx, cval, cnt);                  \
}
FASTNN_BP_DISPATCH(d, double)
FASTNN_BP_DISPATCH(s, float)

#endif
