/* GEMM with bias for fastnn: C[i, j] = bias[j] + sum_k A[i, k] * B[k, j].
 *
 * Register-blocked micro-kernels written with GCC/Clang vector extensions, compiled
 * twice: for the baseline ISA (SSE2 on x86-64) and, behind
 * __attribute__((target("avx2,fma"))), for AVX2+FMA; the choice is made at run time
 * (fastnn_gemm_init), so the default build needs no -march flag. Compilers without
 * vector extensions get a plain C loop.
 *
 * Every C[i, j] is computed by one call, summing k = 0..K-1 in order, then adding the
 * bias: the result does not depend on how the caller splits rows/columns over threads.
 *
 * A is addressed as A[i * rsa + k * csa] (so x.T needs no copy); B as B[k * rsb + j * csb].
 * When csb != 1 (B is a transposed view, W.T in backprop) the column panel is packed into
 * the caller's scratch buffer `pack` (K * FASTNN_GEMM_MAX_NR elements) first.
 */
#ifndef FASTNN_GEMM_H
#define FASTNN_GEMM_H

#include <stddef.h>
#include <string.h>

typedef ptrdiff_t fastnn_idx;

#define FASTNN_GEMM_MR 6          /* rows per micro-tile */
#define FASTNN_GEMM_MAX_NR 32     /* widest column panel (floats, AVX2: 2 x 8 lanes ... x2) */

#if defined(__GNUC__) && (defined(__x86_64__) || defined(__i386__))
#define FASTNN_X86_DISPATCH 1
#endif

#if defined(__GNUC__)
#define FASTNN_HAVE_VEC 1
#endif

/* ---- the micro-kernel template ------------------------------------------------------
 * FASTNN_MK(NAME, T, VT, LANES, ATTR) defines
 *   NAME_tile(K, a, rsa, csa, b, rsb, bias, c, ldc, mr, nc)
 * computing an MR x (2 * LANES) tile (mr <= MR rows valid, nc <= 2 * LANES columns valid;
 * B must have 2 * LANES readable columns, which the driver guarantees by packing tails),
 * and NAME_row(K, a, csa, b, rsb, bias, c, nc) for a single row with 4 * LANES columns.
 */
#ifdef FASTNN_HAVE_VEC
#define FASTNN_MK(NAME, T, VT, LANES, ATTR)                                                    \
typedef T NAME##_vt __attribute__((vector_size(sizeof(T) * LANES)));                         \
typedef T NAME##_vu __attribute__((vector_size(sizeof(T) * LANES), aligned(sizeof(T)), may_alias)); \
ATTR static void NAME##_tile(fastnn_idx K, const T *a, fastnn_idx rsa, fastnn_idx csa,      \
                             const T *b, fastnn_idx rsb, const T *bias, T *c,               \
                             fastnn_idx ldc, int mr, int nc)                                \
{                                                                                           \
    const T *a0 = a, *a1 = a + (mr > 1 ? 1 : 0) * rsa, *a2 = a + (mr > 2 ? 2 : 0) * rsa;    \
    const T *a3 = a + (mr > 3 ? 3 : 0) * rsa, *a4 = a + (mr > 4 ? 4 : 0) * rsa;              \
    const T *a5 = a + (mr > 5 ? 5 : 0) * rsa;                                               \
    NAME##_vt c00 = {0}, c01 = {0}, c10 = {0}, c11 = {0}, c20 = {0}, c21 = {0};             \
    NAME##_vt c30 = {0}, c31 = {0}, c40 = {0}, c41 = {0}, c50 = {0}, c51 = {0};             \
    for (fastnn_idx k = 0; k < K; k++) {                                                    \
        /* unaligned vector loads of one row of the B panel; scalar * vector broadcasts */  \
        const NAME##_vt b0 = *(const NAME##_vu *)(b + k * rsb);                             \
        const NAME##_vt b1 = *(const NAME##_vu *)(b + k * rsb + LANES);                     \
        const fastnn_idx ak = k * csa;                                                      \
        T av;                                                                               \
        av = a0[ak]; c00 += av * b0; c01 += av * b1;                                        \
        av = a1[ak]; c10 += av * b0; c11 += av * b1;                                        \
        av = a2[ak]; c20 += av * b0; c21 += av * b1;                                        \
        av = a3[ak]; c30 += av * b0; c31 += av * b1;                                        \
        av = a4[ak]; c40 += av * b0; c41 += av * b1;                                        \
        av = a5[ak]; c50 += av * b0; c51 += av * b1;                                        \
    }                                                                                       \
    NAME##_vt bb0 = {0}, bb1 = {0};                                                         \
    if (bias) {                                                                             \
        T tmpb[2 * LANES] = {0};                                                            \
        memcpy(tmpb, bias, sizeof(T) * (size_t)nc);                                         \
        memcpy(&bb0, tmpb, sizeof(bb0)); memcpy(&bb1, tmpb + LANES, sizeof(bb1));           \
    }                                                                                       \
    NAME##_vt rows[6][2] = {{c00 + bb0, c01 + bb1}, {c10 + bb0, c11 + bb1},                 \
                            {c20 + bb0, c21 + bb1}, {c30 + bb0, c31 + bb1},                 \
                            {c40 + bb0, c41 + bb1}, {c50 + bb0, c51 + bb1}};                \
    for (int i = 0; i < mr; i++) {                                                          \
        if (nc == 2 * LANES) {                                                              \
            memcpy(c + i * ldc, &rows[i][0], sizeof(NAME##_vt));                            \
            memcpy(c + i * ldc + LANES, &rows[i][1], sizeof(NAME##_vt));                    \
        } else {                                                                            \
            memcpy(c + i * ldc, &rows[i][0], sizeof(T) * (size_t)nc);                       \
        }                                                                                   \
    }                                                                                       \
}                                                                                           \
ATTR static void NAME##_row(fastnn_idx K, const T *a, fastnn_idx csa, const T *b,           \
                            fastnn_idx rsb, const T *bias, T *c, int nc)                    \
{                                                                                           \
    NAME##_vt c0 = {0}, c1 = {0}, c2 = {0}, c3 = {0};                                       \
    for (fastnn_idx k = 0; k < K; k++) {                                                    \
        const T av = a[k * csa];                                                            \
        const T *bk = b + k * rsb;                                                          \
        c0 += av * *(const NAME##_vu *)bk;                                                  \
        c1 += av * *(const NAME##_vu *)(bk + LANES);                                        \
        c2 += av * *(const NAME##_vu *)(bk + 2 * LANES);                                    \
        c3 += av * *(const NAME##_vu *)(bk + 3 * LANES);                                    \
    }                                                                                       \
    T out[4 * LANES];                                                                       \
    memcpy(out, &c0, sizeof(c0)); memcpy(out + LANES, &c1, sizeof(c1));                     \
    memcpy(out + 2 * LANES, &c2, sizeof(c2)); memcpy(out + 3 * LANES, &c3, sizeof(c3));     \
    for (int j = 0; j < nc; j++) c[j] = bias ? out[j] + bias[j] : out[j];                   \
}
#else  /* no vector extensions: same interface, plain loops */
#define FASTNN_MK(NAME, T, VT, LANES, ATTR)                                                    \
static void NAME##_tile(fastnn_idx K, const T *a, fastnn_idx rsa, fastnn_idx csa,           \
                        const T *b, fastnn_idx rsb, const T *bias, T *c, fastnn_idx ldc,    \
                        int mr, int nc)                                                     \
{                                                                                           \
    for (int i = 0; i < mr; i++)                                                            \
        for (int j = 0; j < nc; j++) {                                                      \
            T s = 0;                                                                        \
            for (fastnn_idx k = 0; k < K; k++) s += a[i * rsa + k * csa] * b[k * rsb + j];  \
            c[i * ldc + j] = bias ? s + bias[j] : s;                                        \
        }                                                                                   \
}                                                                                           \
static void NAME##_row(fastnn_idx K, const T *a, fastnn_idx csa, const T *b,                \
                       fastnn_idx rsb, const T *bias, T *c, int nc)                         \
{                                                                                           \
    NAME##_tile(K, a, 0, csa, b, rsb, bias, c, 0, 1, nc);                                   \
}
#endif

#define FASTNN_BASE_ATTR
#ifdef FASTNN_X86_DISPATCH
#define FASTNN_AVX2_ATTR __attribute__((target("avx2,fma")))
#endif

/* baseline: 16-byte vectors (SSE2 on x86-64, NEON on arm64) */
FASTNN_MK(fastnn_mk_d_base, double, v, 2, FASTNN_BASE_ATTR)
FASTNN_MK(fastnn_mk_s_base, float, v, 4, FASTNN_BASE_ATTR)
#ifdef FASTNN_X86_DISPATCH
FASTNN_MK(fastnn_mk_d_avx2, double, v, 4, FASTNN_AVX2_ATTR)
FASTNN_MK(fastnn_mk_s_avx2, float, v, 8, FASTNN_AVX2_ATTR)
#endif

static int fastnn_gemm_isa = -1;  /* 0 baseline, 1 avx2+fma */

static inline int fastnn_gemm_init(void)
{
    if (fastnn_gemm_isa < 0) {
#ifdef FASTNN_X86_DISPATCH
        __builtin_cpu_init();
        fastnn_gemm_isa = (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) ? 1 : 0;
#else
        fastnn_gemm_isa = 0;
#endif
    }
    return fastnn_gemm_isa;
}

/* Column-panel width (columns one tile computes) for the active ISA. */
static inline int fastnn_gemm_nr_d(void) { return fastnn_gemm_init() ? 8 : 4; }
static inline int fastnn_gemm_nr_s(void) { return fastnn_gemm_init() ? 16 : 8; }

/* ---- the driver: rows [i0, i1) x columns [j0, j1) of C ----------------------------
 * `pack` is scratch of at least K * FASTNN_GEMM_MAX_NR elements (one per thread). Tail
 * panels narrower than NR, and every panel when csb != 1, are copied there (zero padded)
 * so the micro-kernel always reads full vectors. */
#define FASTNN_GEMM_DRIVER(SUFFIX, T)                                                          \
static void fastnn_gemm_block_##SUFFIX(fastnn_idx i0, fastnn_idx i1, fastnn_idx j0,           \
        fastnn_idx j1, fastnn_idx K, const T *A, fastnn_idx rsa, fastnn_idx csa,              \
        const T *B, fastnn_idx rsb, fastnn_idx csb, const T *bias, T *C, fastnn_idx ldc,      \
        T *pack)                                                                             \
{                                                                                            \
    int isa = fastnn_gemm_init();                                                            \
    int nr = (int)(sizeof(T) == 8 ? fastnn_gemm_nr_d() : fastnn_gemm_nr_s());                \
    for (fastnn_idx j = j0; j < j1; j += nr) {                                               \
        int nc = (int)((j1 - j) < nr ? (j1 - j) : nr);                                       \
        const T *bp = B + j * csb;                                                           \
        fastnn_idx ldb = rsb;                                                                \
        if (nc < nr || csb != 1) {                                                           \
            for (fastnn_idx k = 0; k < K; k++) {                                             \
                for (int jj = 0; jj < nc; jj++) pack[k * nr + jj] = B[k * rsb + (j + jj) * csb]; \
                for (int jj = nc; jj < nr; jj++) pack[k * nr + jj] = 0;                      \
            }                                                                                \
            bp = pack; ldb = nr;                                                             \
        }                                                                                    \
        const T *bj = bias ? bias + j : NULL;                                                \
        for (fastnn_idx i = i0; i < i1; i += FASTNN_GEMM_MR) {                               \
            int mr = (int)((i1 - i) < FASTNN_GEMM_MR ? (i1 - i) : FASTNN_GEMM_MR);           \
            if (isa == 1) FASTNN_AVX2_CALL(SUFFIX, K, A + i * rsa, rsa, csa, bp, ldb, bj, C + i * ldc + j, ldc, mr, nc); \
            else fastnn_mk_##SUFFIX##_base_tile(K, A + i * rsa, rsa, csa, bp, ldb, bj, C + i * ldc + j, ldc, mr, nc); \
        }                                                                                    \
    }                                                                                        \
}                                                                                            \
/* One row (x is a single sample): wider panels, no duplicated rows. */                      \
static void fastnn_gemv_block_##SUFFIX(fastnn_idx j0, fastnn_idx j1, fastnn_idx K,            \
        const T *a, fastnn_idx csa, const T *B, fastnn_idx rsb, fastnn_idx csb,               \
        const T *bias, T *c, T *pack)                                                        \
{                                                                                            \
    int isa = fastnn_gemm_init();                                                            \
    int nr = 2 * (int)(sizeof(T) == 8 ? fastnn_gemm_nr_d() : fastnn_gemm_nr_s());            \
    for (fastnn_idx j = j0; j < j1; j += nr) {                                               \
        int nc = (int)((j1 - j) < nr ? (j1 - j) : nr);                                       \
        const T *bp = B + j * csb;                                                           \
        fastnn_idx ldb = rsb;                                                                \
        if (nc < nr || csb != 1) {                                                           \
            for (fastnn_idx k = 0; k < K; k++) {                                             \
                for (int jj = 0; jj < nc; jj++) pack[k * nr + jj] = B[k * rsb + (j + jj) * csb]; \
                for (int jj = nc; jj < nr; jj++) pack[k * nr + jj] = 0;                      \
            }                                                                                \
            bp = pack; ldb = nr;                                                             \
        }                                                                                    \
        const T *bj = bias ? bias + j : NULL;                                                \
        if (isa == 1) FASTNN_AVX2_ROW(SUFFIX, K, a, csa, bp, ldb, bj, c + j, nc);             \
        else fastnn_mk_##SUFFIX##_base_row(K, a, csa, bp, ldb, bj, c + j, nc);               \
    }                                                                                        \
}

#ifdef FASTNN_X86_DISPATCH
#define FASTNN_AVX2_CALL(SUFFIX, ...) fastnn_mk_##SUFFIX##_avx2_tile(__VA_ARGS__)
#define FASTNN_AVX2_ROW(SUFFIX, ...) fastnn_mk_##SUFFIX##_avx2_row(__VA_ARGS__)
#else
#define FASTNN_AVX2_CALL(SUFFIX, ...) fastnn_mk_##SUFFIX##_base_tile(__VA_ARGS__)
#define FASTNN_AVX2_ROW(SUFFIX, ...) fastnn_mk_##SUFFIX##_base_row(__VA_ARGS__)
#endif

FASTNN_GEMM_DRIVER(d, double)
FASTNN_GEMM_DRIVER(s, float)

#endif
