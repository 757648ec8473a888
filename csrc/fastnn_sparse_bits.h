/* The sparse first layer from bit masks of x's non-zeros: x (M x K) is mostly exact
 * zeros (MNIST: ~81%), so z = x @ W + b and dW = x.T @ dz sum only over its non-zeros.
 * One pass over x makes the masks; both products read x's values from x itself.
 *
 * Masks: bit j of bits[w * bstride] is x[64 w + j] != 0 (NaN != 0: set), 64 columns a
 * word. With bstride = M and row i's words at bits + i, the words of one 64-column
 * stripe of the batch are contiguous (the rows of a column group are found 8 or 4 rows
 * per instruction).
 *
 * fastnn_xb_mask_row_*      row i's words, and its number of non-zeros.
 * fastnn_sparse_rows_bits_* out[i, :] = b + sum over the set bits k of row i (ascending)
 *     of x[i, k] * W[k, :]: each out[i, j] is ONE accumulator, one multiply-add per
 *     non-zero in ascending k from 0, then the bias: the bits of the dense GEMM on the
 *     same ISA, whatever rows a call (a thread) is given. W is read in blocks of 64 (32,
 *     16, 8) rows, one word (half, ...) of every mask, copied 64-byte aligned into an L1
 *     buffer (W's own rows, 400 bytes apart at N = 50 doubles, would make 3 in 4 vector
 *     loads straddle two cache lines); every row takes its share of a block before the
 *     next block is read, its partial sums resting in `out`. The copy also checks W for
 *     NaN/inf on the way (skipping a zero x[i, k] is exact only when W[k, :] is finite):
 *     the function returns 0 when it is not, and the caller must use the dense GEMM.
 * fastnn_sparse_xtd_bits_*  dW[c0:c1, :] = sum over rows i (ascending) with x[i, k] != 0
 *     of x[i, k] * dz[i, :]: for each group of FASTNN_XB_G (3) columns of x, the rows
 *     where any is non-zero are listed from the masks (vector compares), then a register
 *     tile of 3 x NV vectors of dW sums over them (x[i, k] == 0 adds an exact 0 since dz
 *     must be finite). Each dW[k, j] is one accumulator, rows ascending: the dense GEMM's
 *     bits, whatever [c0, c1) a call takes (c0 a multiple of FASTNN_XB_G).
 *
 * Why masks rather than (column, value) pairs (fastnn_sparse.h's row form): making the
 * pairs costs two vector compresses per 8 or 16 elements (~3x the mask alone on Zen 4),
 * and the dW kernel built its row lists from the pairs one at a time (a store-to-load
 * chain per pair: ~30% of that kernel). Measured on 100 real MNIST rows, N = 50, one
 * thread (tools/bench_sparse_bits.c).
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
#ifndef FASTNN_XB_L1_BYTES
#define FASTNN_XB_L1_BYTES 24576  /* of the 32 KB L1D: a block of W's rows, copied */
#endif

typedef unsigned long long fastnn_xb_word;

/* words of the mask per row of K columns */
#define FASTNN_XB_WORDS(K) (((K) + 63) / 64)

static inline fastnn_bp_idx fastnn_xb_popcount(fastnn_xb_word w)
{
#if defined(__GNUC__)
    return __builtin_popcountll(w);
#else
    fastnn_bp_idx n = 0;
    for (; w; w &= w - 1) n++;
    return n;
#endif
}

/* ---- masks: scalar (any ISA) ------------------------------------------------------------ */
/* the non-zero mask of x[0:n], n <= 64 (NaN != 0: set); SSE2 compares where the baseline
 * has them (any x86-64), else one element at a time */
#if defined(__SSE2__)
#include <emmintrin.h>
static inline fastnn_xb_word fastnn_xb_word_d(const double *x, fastnn_bp_idx n)
{
    fastnn_xb_word word = 0;
    fastnn_bp_idx j = 0;
    for (; j + 2 <= n; j += 2)
        word |= (fastnn_xb_word)_mm_movemask_pd(_mm_cmpneq_pd(_mm_loadu_pd(x + j), _mm_setzero_pd())) << j;
    for (; j < n; j++) word |= (fastnn_xb_word)(x[j] != 0) << j;
    return word;
}
static inline fastnn_xb_word fastnn_xb_word_s(const float *x, fastnn_bp_idx n)
{
    fastnn_xb_word word = 0;
    fastnn_bp_idx j = 0;
    for (; j + 4 <= n; j += 4)
        word |= (fastnn_xb_word)_mm_movemask_ps(_mm_cmpneq_ps(_mm_loadu_ps(x + j), _mm_setzero_ps())) << j;
    for (; j < n; j++) word |= (fastnn_xb_word)(x[j] != 0) << j;
    return word;
}
#else
#define FASTNN_XB_WORD_SCALAR(NAME, T)                                                       \
static inline fastnn_xb_word NAME(const T *x, fastnn_bp_idx n)                              \
{                                                                                            \
    fastnn_xb_word word = 0;                                                                 \
    for (fastnn_bp_idx j = 0; j < n; j++) word |= (fastnn_xb_word)(x[j] != 0) << j;          \
    return word;                                                                             \
}
FASTNN_XB_WORD_SCALAR(fastnn_xb_word_d, double)
FASTNN_XB_WORD_SCALAR(fastnn_xb_word_s, float)
#endif
#define FASTNN_XB_MASK_ROW(NAME, T, WORD, ATTR)                                              \
ATTR static fastnn_bp_idx NAME(const T *x, fastnn_bp_idx n, fastnn_xb_word *bits,            \
                               fastnn_bp_idx bstride)                                        \
{                                                                                            \
    fastnn_bp_idx nnz = 0;                                                                   \
    for (fastnn_bp_idx w0 = 0; w0 < n; w0 += 64) {                                           \
        const fastnn_xb_word word = WORD(x + w0, n - w0 < 64 ? n - w0 : 64);                 \
        bits[(w0 >> 6) * bstride] = word;                                                    \
        nnz += fastnn_xb_popcount(word);                                                     \
    }                                                                                        \
    return nnz;                                                                              \
}
FASTNN_XB_MASK_ROW(fastnn_xb_mask_d_base, double, fastnn_xb_word_d, )
FASTNN_XB_MASK_ROW(fastnn_xb_mask_s_base, float, fastnn_xb_word_s, )

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
#define FASTNN_XB_RB_CALL(NAME, V)                                                            \
    ok &= lh ? NAME##_rbpanel(V, 1, M, K, kb, x, ldx, bits, bstride, W, ldw, out, ldo, j0, jl, jh, pk) \
             : NAME##_rbpanel(V, 0, M, K, kb, x, ldx, bits, bstride, W, ldw, out, ldo, j0, jl, jh, pk)
/* A panel's last vector: a full one at column jl, or (LH, when the columns left fit in
 * half a vector) a half one at jh -- a 256-bit vector in an AVX-512 kernel --: fewer
 * loads and multiply-adds for the same sums (N = 50: 3.5 zmm a row instead of 4 in
 * float, 6.5 instead of 7 in double). Either way the overlapped columns get the same
 * value twice. */
#define FASTNN_XB_LDL(NAME, LH, accf, acch, p)                                                \
    do { if (LH) (acch) = *(const NAME##_hu *)((p) + jh);                                    \
         else (accf) = *(const NAME##_xu *)((p) + jl); } while (0)
#define FASTNN_XB_STL(NAME, LH, accf, acch, p)                                                \
    do { if (LH) *(NAME##_hu *)((p) + jh) = (acch);                                          \
         else *(NAME##_xu *)((p) + jl) = (accf); } while (0)
#define FASTNN_XB_FMAL(NAME, LH, OPS, OPSH, LOWH, accf, acch, a, w)                          \
    do { if (LH) (acch) = FASTNN_OP(MADD, OPSH)((acch), LOWH(a), *(const NAME##_hv *)(w));    \
         else (accf) = FASTNN_OP(MADD, OPS)((accf), (a), *(const NAME##_xv *)(w)); } while (0)
#define FASTNN_XB_FMAL2(NAME, LH, OPS, OPSH, LOWH, accf, acch, a, dvf, dvh)                  \
    do { if (LH) (acch) = FASTNN_OP(MADD, OPSH)((acch), LOWH(a), (dvh));                     \
         else (accf) = FASTNN_OP(MADD, OPS)((accf), (a), (dvf)); } while (0)
/* dW for GW (1 or 2) adjacent columns [c, c + GW) of x x one panel of NV vectors (vector
 * v at column off[v] of d and dW): GW x NV accumulators, summed over `rows` (ascending). */
#define FASTNN_XB_KERNELS(NAME, T, LANES, ATTR, OPS, OPSS, GNV, LIST, NREG, HL, OPSH, LOWH)  \
typedef T NAME##_xv __attribute__((vector_size(sizeof(T) * LANES)));                         \
typedef T NAME##_xu __attribute__((vector_size(sizeof(T) * LANES), aligned(sizeof(T)), may_alias)); \
typedef T NAME##_hv __attribute__((vector_size(sizeof(T) * (HL ? HL : LANES))));             \
typedef T NAME##_hu __attribute__((vector_size(sizeof(T) * (HL ? HL : LANES)), aligned(sizeof(T)), may_alias)); \
typedef __typeof__(FASTNN_OP(BCAST, OPS)((T)0)) NAME##_xbt;                                  \
/* rows [0, M) x one panel of NV vectors of W's columns (vector v at column j0 + v LANES,   \
 * the last at jl), W read in blocks of kb (64, 32, 16, 8) rows, each block copied into    \
 * pk (64-byte aligned, row stride NV LANES) and checked for NaN/inf on the way; a row    \
 * takes the block's share of its sums (the block's bits of its mask, ascending) with the  \
 * partial sums resting in out. Returns 1 when the panel's columns of W are all finite. */ \
ATTR static inline __attribute__((always_inline)) int NAME##_rbpanel(                        \
        const int NV, const int LH, fastnn_bp_idx M, fastnn_bp_idx K, fastnn_bp_idx kb,      \
        const T *x, fastnn_bp_idx ldx, const fastnn_xb_word *bits, fastnn_bp_idx bstride,    \
        const T *W, fastnn_bp_idx ldw, T *out, fastnn_bp_idx ldo, fastnn_bp_idx j0,          \
        fastnn_bp_idx jl, fastnn_bp_idx jh, T *pk)                                           \
{                                                                                            \
    const fastnn_bp_idx ldp = NV * LANES;                                                    \
    const int L = NV - 1;                  /* the last vector (full at jl, or half at jh) */ \
    NAME##_xv fin = (NAME##_xv){0};                                                          \
    NAME##_hv finh = (NAME##_hv){0};                                                         \
    for (fastnn_bp_idx i = 0; i < M; i++) {                                                  \
        FASTNN_SP_UNROLL for (int v = 0; v < L; v++)                                         \
            *(NAME##_xu *)(out + i * ldo + j0 + v * LANES) = (NAME##_xv){0};                 \
        FASTNN_XB_STL(NAME, LH, (NAME##_xv){0}, (NAME##_hv){0}, out + i * ldo);              \
    }                                                                                        \
    for (fastnn_bp_idx k0 = 0; k0 < K; k0 += kb) {                                           \
        const fastnn_bp_idx k1 = K - k0 < kb ? K : k0 + kb;                                  \
        for (fastnn_bp_idx k = k0; k < k1; k++) {                                            \
            const T *wr = W + k * ldw;                                                       \
            T *pr = pk + (k - k0) * ldp;                                                     \
            FASTNN_SP_UNROLL for (int v = 0; v < L; v++) {                                   \
                const NAME##_xv t = *(const NAME##_xu *)(wr + j0 + v * LANES);               \
                fin += t - t;                /* 0, or NaN for NaN/inf */                     \
                *(NAME##_xv *)(pr + v * LANES) = t;                                          \
            }                                                                                \
            if (LH) {                                                                        \
                const NAME##_hv t = *(const NAME##_hu *)(wr + jh);                           \
                finh += t - t;                                                               \
                *(NAME##_hv *)(pr + L * LANES) = t;                                          \
            } else {                                                                         \
                const NAME##_xv t = *(const NAME##_xu *)(wr + jl);                           \
                fin += t - t;                                                                \
                *(NAME##_xv *)(pr + L * LANES) = t;                                          \
            }                                                                                \
        }                                                                                    \
        /* the block's bits of row i: from one word, or the end of one and the start of    \
         * the next */                                                                       \
        const fastnn_xb_word *bw = bits + (k0 >> 6) * bstride;                               \
        const int sh = (int)(k0 & 63), two = sh + (k1 - k0) > 64;                            \
        const fastnn_xb_word bm = k1 - k0 >= 64 ? ~(fastnn_xb_word)0 : ((fastnn_xb_word)1 << (k1 - k0)) - 1; \
        fastnn_bp_idx i = 0;                                                                 \
        if (2 * NV <= NREG - 4) {                                                            \
            /* two rows at once: two independent chains of multiply-adds (one row's chain    \
             * waits on the FMA latency when NV is small); each row's sums keep their order */ \
            for (; i + 1 < M; i += 2) {                                                      \
                fastnn_xb_word m0 = bw[i] >> sh, m1 = bw[i + 1] >> sh;                       \
                if (two) { m0 |= bw[i + bstride] << (64 - sh); m1 |= bw[i + 1 + bstride] << (64 - sh); } \
                m0 &= bm; m1 &= bm;                                                          \
                if (!(m0 | m1)) continue;                                                    \
                const T *xr0 = x + i * ldx + k0, *xr1 = xr0 + ldx;                           \
                T *o0 = out + i * ldo, *o1 = o0 + ldo;                                       \
                NAME##_xv acc0[FASTNN_SPARSE_PANEL], acc1[FASTNN_SPARSE_PANEL];              \
                NAME##_hv acch0 = (NAME##_hv){0}, acch1 = (NAME##_hv){0};                    \
                FASTNN_SP_UNROLL for (int v = 0; v < L; v++) {                               \
                    acc0[v] = *(const NAME##_xu *)(o0 + j0 + v * LANES);                     \
                    acc1[v] = *(const NAME##_xu *)(o1 + j0 + v * LANES);                     \
                }                                                                            \
                FASTNN_XB_LDL(NAME, LH, acc0[L], acch0, o0);                                 \
                FASTNN_XB_LDL(NAME, LH, acc1[L], acch1, o1);                                 \
                while (m0 && m1) {                                                           \
                    const int q0 = __builtin_ctzll(m0), q1 = __builtin_ctzll(m1);            \
                    m0 &= m0 - 1; m1 &= m1 - 1;                                              \
                    const NAME##_xbt a0 = FASTNN_OP(BCAST, OPS)(xr0[q0]);                    \
                    const NAME##_xbt a1 = FASTNN_OP(BCAST, OPS)(xr1[q1]);                    \
                    const T *w0 = pk + q0 * ldp, *w1 = pk + q1 * ldp;                        \
                    FASTNN_SP_UNROLL for (int v = 0; v < L; v++) {                           \
                        acc0[v] = FASTNN_OP(MADD, OPS)(acc0[v], a0, *(const NAME##_xv *)(w0 + v * LANES)); \
                        acc1[v] = FASTNN_OP(MADD, OPS)(acc1[v], a1, *(const NAME##_xv *)(w1 + v * LANES)); \
                    }                                                                        \
                    FASTNN_XB_FMAL(NAME, LH, OPS, OPSH, LOWH, acc0[L], acch0, a0, w0 + L * LANES); \
                    FASTNN_XB_FMAL(NAME, LH, OPS, OPSH, LOWH, acc1[L], acch1, a1, w1 + L * LANES); \
                }                                                                            \
                for (; m0; m0 &= m0 - 1) {                                                   \
                    const int q = __builtin_ctzll(m0);                                       \
                    const NAME##_xbt a = FASTNN_OP(BCAST, OPS)(xr0[q]);                      \
                    const T *w = pk + q * ldp;                                               \
                    FASTNN_SP_UNROLL for (int v = 0; v < L; v++)                             \
                        acc0[v] = FASTNN_OP(MADD, OPS)(acc0[v], a, *(const NAME##_xv *)(w + v * LANES)); \
                    FASTNN_XB_FMAL(NAME, LH, OPS, OPSH, LOWH, acc0[L], acch0, a, w + L * LANES); \
                }                                                                            \
                for (; m1; m1 &= m1 - 1) {                                                   \
                    const int q = __builtin_ctzll(m1);                                       \
                    const NAME##_xbt a = FASTNN_OP(BCAST, OPS)(xr1[q]);                      \
                    const T *w = pk + q * ldp;                                               \
                    FASTNN_SP_UNROLL for (int v = 0; v < L; v++)                             \
                        acc1[v] = FASTNN_OP(MADD, OPS)(acc1[v], a, *(const NAME##_xv *)(w + v * LANES)); \
                    FASTNN_XB_FMAL(NAME, LH, OPS, OPSH, LOWH, acc1[L], acch1, a, w + L * LANES); \
                }                                                                            \
                FASTNN_SP_UNROLL for (int v = 0; v < L; v++) {                               \
                    *(NAME##_xu *)(o0 + j0 + v * LANES) = acc0[v];                           \
                    *(NAME##_xu *)(o1 + j0 + v * LANES) = acc1[v];                           \
                }                                                                            \
                FASTNN_XB_STL(NAME, LH, acc0[L], acch0, o0);                                 \
                FASTNN_XB_STL(NAME, LH, acc1[L], acch1, o1);                                 \
            }                                                                                \
        }                                                                                    \
        for (; i < M; i++) {                                                                 \
            fastnn_xb_word m = bw[i] >> sh;                                                  \
            if (two) m |= bw[i + bstride] << (64 - sh);                                      \
            m &= bm;                                                                         \
            if (!m) continue;                                                                \
            const T *xr = x + i * ldx + k0;                                                  \
            T *o = out + i * ldo;                                                            \
            NAME##_xv acc[FASTNN_SPARSE_PANEL];                                              \
            NAME##_hv acch = (NAME##_hv){0};                                                 \
            FASTNN_SP_UNROLL for (int v = 0; v < L; v++)                                     \
                acc[v] = *(const NAME##_xu *)(o + j0 + v * LANES);                           \
            FASTNN_XB_LDL(NAME, LH, acc[L], acch, o);                                        \
            do {                                     /* z[i] += x[i, k] W[k], k ascending */ \
                const int kk = __builtin_ctzll(m);                                           \
                m &= m - 1;                                                                  \
                const NAME##_xbt a = FASTNN_OP(BCAST, OPS)(xr[kk]);                          \
                const T *w = pk + kk * ldp;                                                  \
                FASTNN_SP_UNROLL for (int v = 0; v < L; v++)                                 \
                    acc[v] = FASTNN_OP(MADD, OPS)(acc[v], a, *(const NAME##_xv *)(w + v * LANES)); \
                FASTNN_XB_FMAL(NAME, LH, OPS, OPSH, LOWH, acc[L], acch, a, w + L * LANES);   \
            } while (m);                                                                     \
            /* a ragged last vector overlaps its neighbour: loaded before either is        \
             * stored, both hold the same sums */                                           \
            FASTNN_SP_UNROLL for (int v = 0; v < L; v++)                                     \
                *(NAME##_xu *)(o + j0 + v * LANES) = acc[v];                                 \
            FASTNN_XB_STL(NAME, LH, acc[L], acch, o);                                        \
        }                                                                                    \
    }                                                                                        \
    T lanes[LANES], f = 0;                                                                   \
    memcpy(lanes, &fin, sizeof(fin));                                                        \
    for (int l = 0; l < LANES; l++) f += lanes[l];                                           \
    if (LH) {                                                                                \
        T hl[HL ? HL : LANES];                                                               \
        memcpy(hl, &finh, sizeof(finh));                                                     \
        for (int l = 0; l < (HL ? HL : LANES); l++) f += hl[l];                              \
    }                                                                                        \
    return f == 0;                                                                           \
}                                                                                            \
ATTR static int NAME##_rowsb(fastnn_bp_idx M, fastnn_bp_idx N, fastnn_bp_idx K, const T *x,  \
        fastnn_bp_idx ldx, const fastnn_xb_word *bits, fastnn_bp_idx bstride, const T *W,    \
        fastnn_bp_idx ldw, const T *bias, T *out, fastnn_bp_idx ldo)                        \
{                                                                                            \
    int ok = 1;                                                                              \
    if (N <= 0) return 1;                                                                    \
    if (N < LANES) {  /* narrower than a vector: scalar, the same sums */                   \
        T fin = 0;                                                                           \
        for (fastnn_bp_idx k = 0; k < K; k++)                                                \
            for (fastnn_bp_idx j = 0; j < N; j++) fin += W[k * ldw + j] - W[k * ldw + j];    \
        ok = fin == 0;                                                                       \
        for (fastnn_bp_idx i = 0; i < M; i++) {                                              \
            T *o = out + i * ldo;                                                            \
            for (fastnn_bp_idx j = 0; j < N; j++) o[j] = 0;                                  \
            for (fastnn_bp_idx k0 = 0; k0 < K; k0 += 64) {                                   \
                fastnn_xb_word m = bits[(k0 >> 6) * bstride + i];                            \
                while (m) {                                                                  \
                    const int kk = __builtin_ctzll(m);                                       \
                    m &= m - 1;                                                              \
                    const T a = x[i * ldx + k0 + kk];                                        \
                    for (fastnn_bp_idx j = 0; j < N; j++)                                    \
                        o[j] = FASTNN_OP(MADD, OPSS)(o[j], a, W[(k0 + kk) * ldw + j]);       \
                }                                                                            \
            }                                                                                \
        }                                                                                    \
    } else {                                                                                 \
        T pk[FASTNN_XB_L1_BYTES / sizeof(T)] __attribute__((aligned(64)));                  \
        const fastnn_bp_idx nvec = (N + LANES - 1) / LANES;                                  \
        const fastnn_bp_idx npan = (nvec + FASTNN_SPARSE_PANEL - 1) / FASTNN_SPARSE_PANEL;   \
        for (fastnn_bp_idx p = 0; p < npan; p++) {                                           \
            const fastnn_bp_idx v0 = p * nvec / npan, v1 = (p + 1) * nvec / npan;            \
            const int nv = (int)(v1 - v0);                                                   \
            const fastnn_bp_idx j0 = v0 * LANES;                                             \
            const fastnn_bp_idx jl = v1 * LANES > N ? N - LANES : (v1 - 1) * LANES;          \
            /* the columns the last vector adds fit in half a vector: a half one */          \
            const int lh = HL > 0 && nv > 1 && N - (v1 - 1) * LANES <= HL;                   \
            const fastnn_bp_idx jh = N - (HL ? HL : LANES);                                   \
            fastnn_bp_idx kb = FASTNN_XB_L1_BYTES / (nv * LANES * (fastnn_bp_idx)sizeof(T));  \
            kb = kb > 64 ? 64 : kb < 1 ? 1 : kb;                                             \
            switch (nv) {                                                                    \
            FASTNN_SP_CASES(FASTNN_XB_RB_CALL, NAME)                                         \
            }                                                                                \
        }                                                                                    \
    }                                                                                        \
    if (bias)                                                                                \
        for (fastnn_bp_idx i = 0; i < M; i++)                                                \
            for (fastnn_bp_idx j = 0; j < N; j++)                                            \
                out[i * ldo + j] = out[i * ldo + j] + bias[j];     /* then the bias */       \
    return ok;                                                                               \
}                                                                                            \
ATTR static inline __attribute__((always_inline)) void NAME##_xbtile_(                       \
        const int NV, const int LH, const int GW, const int *rows, fastnn_bp_idx nrows,      \
        const T *x, fastnn_bp_idx ldx, fastnn_bp_idx c, const T *d, fastnn_bp_idx ldd,       \
        T *dW, fastnn_bp_idx lddw, fastnn_bp_idx j0, fastnn_bp_idx jl, fastnn_bp_idx jh)     \
{                                                                                            \
    /* vector v at column j0 + v LANES, the last at jl (or half at jh) */                    \
    const int L = NV - 1;                                                                    \
    NAME##_xv acc[FASTNN_XB_G][GNV];                                                         \
    NAME##_hv acch[FASTNN_XB_G];                                                             \
    FASTNN_SP_UNROLL for (int g = 0; g < GW; g++) {                                          \
        FASTNN_SP_UNROLL for (int v = 0; v < NV; v++) acc[g][v] = (NAME##_xv){0};            \
        acch[g] = (NAME##_hv){0};                                                            \
    }                                                                                        \
    for (fastnn_bp_idx r = 0; r < nrows; r++) {                                              \
        const fastnn_bp_idx i = rows[r];                                                     \
        const T *xr = x + i * ldx + c;                                                       \
        NAME##_xv dv[GNV];                                                                   \
        NAME##_hv dvh = (NAME##_hv){0};                                                      \
        const T *dr = d + i * ldd;                                                           \
        FASTNN_SP_UNROLL for (int v = 0; v < L; v++) dv[v] = *(const NAME##_xu *)(dr + j0 + v * LANES); \
        FASTNN_XB_LDL(NAME, LH, dv[L], dvh, dr);                                             \
        FASTNN_SP_UNROLL for (int g = 0; g < GW; g++) {                                      \
            const NAME##_xbt a = FASTNN_OP(BCAST, OPS)(xr[g]);                               \
            FASTNN_SP_UNROLL for (int v = 0; v < L; v++)    /* dW[k] += x[i, k] dz[i] */     \
                acc[g][v] = FASTNN_OP(MADD, OPS)(acc[g][v], a, dv[v]);                       \
            FASTNN_XB_FMAL2(NAME, LH, OPS, OPSH, LOWH, acc[g][L], acch[g], a, dv[L], dvh);   \
        }                                                                                    \
    }                                                                                        \
    /* a ragged last vector overlaps its neighbour: both hold the same sums */               \
    FASTNN_SP_UNROLL for (int g = 0; g < GW; g++) {                                          \
        FASTNN_SP_UNROLL for (int v = 0; v < L; v++)                                         \
            *(NAME##_xu *)(dW + (c + g) * lddw + j0 + v * LANES) = acc[g][v];                \
        FASTNN_XB_STL(NAME, LH, acc[g][L], acch[g], dW + (c + g) * lddw);                    \
    }                                                                                        \
}                                                                                            \
ATTR static inline __attribute__((always_inline)) void NAME##_xbtile(                        \
        const int NV, const int gw, const int lh, const int *rows, fastnn_bp_idx nrows,      \
        const T *x, fastnn_bp_idx ldx, fastnn_bp_idx c, const T *d, fastnn_bp_idx ldd,       \
        T *dW, fastnn_bp_idx lddw, fastnn_bp_idx j0, fastnn_bp_idx jl, fastnn_bp_idx jh)     \
{                                                                                            \
    /* the group's width (FASTNN_XB_G, or fewer for the last) and the last vector's known   \
     * at compile time */                                                                   \
    if (lh) {                                                                                \
        if (gw == FASTNN_XB_G) NAME##_xbtile_(NV, 1, FASTNN_XB_G, rows, nrows, x, ldx, c, d, ldd, dW, lddw, j0, jl, jh); \
        else if (gw == 2) NAME##_xbtile_(NV, 1, 2, rows, nrows, x, ldx, c, d, ldd, dW, lddw, j0, jl, jh); \
        else NAME##_xbtile_(NV, 1, 1, rows, nrows, x, ldx, c, d, ldd, dW, lddw, j0, jl, jh); \
    } else {                                                                                 \
        if (gw == FASTNN_XB_G) NAME##_xbtile_(NV, 0, FASTNN_XB_G, rows, nrows, x, ldx, c, d, ldd, dW, lddw, j0, jl, jh); \
        else if (gw == 2) NAME##_xbtile_(NV, 0, 2, rows, nrows, x, ldx, c, d, ldd, dW, lddw, j0, jl, jh); \
        else NAME##_xbtile_(NV, 0, 1, rows, nrows, x, ldx, c, d, ldd, dW, lddw, j0, jl, jh); \
    }                                                                                        \
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
            const int lh = HL > 0 && nv > 1 && N - (v1 - 1) * LANES <= HL;                   \
            const fastnn_bp_idx jh = N - (HL ? HL : LANES);                                   \
            switch (nv) {                                                                    \
            case 1: NAME##_xbtile(1 <= GNV ? 1 : 1, gw, lh, rows, nrows, x, ldx, c, d, ldd, dW, lddw, j0, jl, jh); break; \
            case 2: NAME##_xbtile(2 <= GNV ? 2 : 1, gw, lh, rows, nrows, x, ldx, c, d, ldd, dW, lddw, j0, jl, jh); break; \
            case 3: NAME##_xbtile(3 <= GNV ? 3 : 1, gw, lh, rows, nrows, x, ldx, c, d, ldd, dW, lddw, j0, jl, jh); break; \
            case 4: NAME##_xbtile(4 <= GNV ? 4 : 1, gw, lh, rows, nrows, x, ldx, c, d, ldd, dW, lddw, j0, jl, jh); break; \
            case 5: NAME##_xbtile(5 <= GNV ? 5 : 1, gw, lh, rows, nrows, x, ldx, c, d, ldd, dW, lddw, j0, jl, jh); break; \
            case 6: NAME##_xbtile(6 <= GNV ? 6 : 1, gw, lh, rows, nrows, x, ldx, c, d, ldd, dW, lddw, j0, jl, jh); break; \
            case 7: NAME##_xbtile(7 <= GNV ? 7 : 1, gw, lh, rows, nrows, x, ldx, c, d, ldd, dW, lddw, j0, jl, jh); break; \
            default: NAME##_xbtile(GNV, gw, lh, rows, nrows, x, ldx, c, d, ldd, dW, lddw, j0, jl, jh); break; \
            }                                                                                \
        }                                                                                    \
    }                                                                                        \
}
#else  /* no vector extensions (MSVC): the same sums in the same order, plain loops */
#define FASTNN_XB_KERNELS(NAME, T, LANES, ATTR, OPS, OPSS, GNV, LIST, NREG, HL, OPSH, LOWH)  \
static int NAME##_rowsb(fastnn_bp_idx M, fastnn_bp_idx N, fastnn_bp_idx K, const T *x,       \
        fastnn_bp_idx ldx, const fastnn_xb_word *bits, fastnn_bp_idx bstride, const T *W,    \
        fastnn_bp_idx ldw, const T *bias, T *out, fastnn_bp_idx ldo)                        \
{                                                                                            \
    T fin = 0;                                                                               \
    for (fastnn_bp_idx k = 0; k < K; k++)                                                    \
        for (fastnn_bp_idx j = 0; j < N; j++) fin += W[k * ldw + j] - W[k * ldw + j];        \
    for (fastnn_bp_idx i = 0; i < M; i++) {                                                  \
        T *o = out + i * ldo;                                                                \
        for (fastnn_bp_idx j = 0; j < N; j++) o[j] = 0;                                      \
        for (fastnn_bp_idx k = 0; k < K; k++) {                                              \
            if (!((bits[(k >> 6) * bstride + i] >> (k & 63)) & 1)) continue;                 \
            for (fastnn_bp_idx j = 0; j < N; j++) o[j] += x[i * ldx + k] * W[k * ldw + j];   \
        }                                                                                    \
        if (bias) for (fastnn_bp_idx j = 0; j < N; j++) o[j] = o[j] + bias[j];               \
    }                                                                                        \
    return fin == 0;                                                                         \
}                                                                                            \
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
#define FASTNN_XB_LOW_plain(a) (a)   /* plain vectors take a scalar operand as it is */
#define FASTNN_XB_GNV32 (FASTNN_XB_G == 2 ? 8 : 7)
FASTNN_XB_KERNELS(fastnn_xb_d_base, double, 2, , plain, plain, FASTNN_XB_GNV16, fastnn_xb_list_base, 16, 0, plain, FASTNN_XB_LOW_plain)
FASTNN_XB_KERNELS(fastnn_xb_s_base, float, 4, , plain, plain, FASTNN_XB_GNV16, fastnn_xb_list_base, 16, 2, plain, FASTNN_XB_LOW_plain)

#ifdef FASTNN_SP_X86
/* 64 elements -> one word: unordered compares (NaN counts), 4 (8) lanes per movemask */
FASTNN_TARGET_AVX2
static inline fastnn_xb_word fastnn_xb_word_d_avx2(const double *x, fastnn_bp_idx n)
{
    const __m256d z = _mm256_setzero_pd();
    fastnn_xb_word word = 0;
    fastnn_bp_idx j = 0;
    for (; j + 4 <= n; j += 4)
        word |= (fastnn_xb_word)_mm256_movemask_pd(_mm256_cmp_pd(_mm256_loadu_pd(x + j), z, _CMP_NEQ_UQ)) << j;
    for (; j < n; j++) word |= (fastnn_xb_word)(x[j] != 0) << j;
    return word;
}
FASTNN_TARGET_AVX2
static inline fastnn_xb_word fastnn_xb_word_s_avx2(const float *x, fastnn_bp_idx n)
{
    const __m256 z = _mm256_setzero_ps();
    fastnn_xb_word word = 0;
    fastnn_bp_idx j = 0;
    for (; j + 8 <= n; j += 8)
        word |= (fastnn_xb_word)_mm256_movemask_ps(_mm256_cmp_ps(_mm256_loadu_ps(x + j), z, _CMP_NEQ_UQ)) << j;
    for (; j < n; j++) word |= (fastnn_xb_word)(x[j] != 0) << j;
    return word;
}
FASTNN_XB_MASK_ROW(fastnn_xb_mask_d_avx2, double, fastnn_xb_word_d_avx2, FASTNN_TARGET_AVX2)
FASTNN_XB_MASK_ROW(fastnn_xb_mask_s_avx2, float, fastnn_xb_word_s_avx2, FASTNN_TARGET_AVX2)
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
        __m256i v = _mm256_and_si256(_mm256_loadu_si256((const __m256i *)(bw0 + i)), m0);
        if (gm1)                                     /* (the group straddles two words) */
            v = _mm256_or_si256(v, _mm256_and_si256(_mm256_loadu_si256((const __m256i *)(bw1 + i)), m1));
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
FASTNN_XB_KERNELS(fastnn_xb_d_avx2, double, 4, FASTNN_TARGET_AVX2, 256d, fmad, FASTNN_XB_GNV16, fastnn_xb_list_avx2, 16, 2, 128d, _mm256_castpd256_pd128)
FASTNN_XB_KERNELS(fastnn_xb_s_avx2, float, 8, FASTNN_TARGET_AVX2, 256s, fmas, FASTNN_XB_GNV16, fastnn_xb_list_avx2, 16, 4, 128s, _mm256_castps256_ps128)

/* AVX-512: 8 (16) lanes' mask straight from the compare */
FASTNN_TARGET_AVX512
static inline fastnn_xb_word fastnn_xb_word_d_avx512(const double *x, fastnn_bp_idx n)
{
    const __m512d z = _mm512_setzero_pd();
    fastnn_xb_word word = 0;
    fastnn_bp_idx j = 0;
    for (; j + 8 <= n; j += 8)
        word |= (fastnn_xb_word)_mm512_cmp_pd_mask(_mm512_loadu_pd(x + j), z, _CMP_NEQ_UQ) << j;
    for (; j < n; j++) word |= (fastnn_xb_word)(x[j] != 0) << j;
    return word;
}
FASTNN_TARGET_AVX512
static inline fastnn_xb_word fastnn_xb_word_s_avx512(const float *x, fastnn_bp_idx n)
{
    const __m512 z = _mm512_setzero_ps();
    fastnn_xb_word word = 0;
    fastnn_bp_idx j = 0;
    for (; j + 16 <= n; j += 16)
        word |= (fastnn_xb_word)_mm512_cmp_ps_mask(_mm512_loadu_ps(x + j), z, _CMP_NEQ_UQ) << j;
    for (; j < n; j++) word |= (fastnn_xb_word)(x[j] != 0) << j;
    return word;
}
FASTNN_XB_MASK_ROW(fastnn_xb_mask_d_avx512, double, fastnn_xb_word_d_avx512, FASTNN_TARGET_AVX512)
FASTNN_XB_MASK_ROW(fastnn_xb_mask_s_avx512, float, fastnn_xb_word_s_avx512, FASTNN_TARGET_AVX512)
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
        __mmask8 hit = _mm512_test_epi64_mask(_mm512_loadu_si512((const void *)(bw0 + i)), m0);
        if (gm1)                                     /* (the group straddles two words) */
            hit |= _mm512_test_epi64_mask(_mm512_loadu_si512((const void *)(bw1 + i)), m1);
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
FASTNN_XB_KERNELS(fastnn_xb_d_avx512, double, 8, FASTNN_TARGET_AVX512, 512d, fmad, FASTNN_XB_GNV32, fastnn_xb_list_avx512, 32, 4, 256d, _mm512_castpd512_pd256)
FASTNN_XB_KERNELS(fastnn_xb_s_avx512, float, 16, FASTNN_TARGET_AVX512, 512s, fmas, FASTNN_XB_GNV32, fastnn_xb_list_avx512, 32, 8, 256s, _mm512_castps512_ps256)
#endif

/* ---- dispatch: the active level's instance ------------------------------------------ */
#define FASTNN_XB_DISPATCH(SUF, T)                                                           \
/* row i's mask words at bits[w * bstride]; returns its non-zeros */                         \
FASTNN_SP_UNUSED static fastnn_bp_idx fastnn_xb_mask_row_##SUF(const T *x, fastnn_bp_idx n,  \
        fastnn_xb_word *bits, fastnn_bp_idx bstride) {                                       \
    FASTNN_SP_PICK(return, fastnn_xb_mask_##SUF##_avx2, fastnn_xb_mask_##SUF##_avx512,       \
                   fastnn_xb_mask_##SUF##_base, x, n, bits, bstride)                         \
    return 0;                                                                                \
}                                                                                            \
/* out[0:M, 0:N] = x @ W + bias over x's non-zeros (masks at bits + w * bstride for row    \
 * 0); 1, or 0 when W is not all finite (out is then not the product) */                    \
FASTNN_SP_UNUSED static int fastnn_sparse_rows_bits_##SUF(fastnn_bp_idx M, fastnn_bp_idx N,  \
        fastnn_bp_idx K, const T *x, fastnn_bp_idx ldx, const fastnn_xb_word *bits,          \
        fastnn_bp_idx bstride, const T *W, fastnn_bp_idx ldw, const T *bias, T *out,          \
        fastnn_bp_idx ldo) {                                                                 \
    FASTNN_SP_PICK(return, fastnn_xb_##SUF##_avx2_rowsb, fastnn_xb_##SUF##_avx512_rowsb,    \
                   fastnn_xb_##SUF##_base_rowsb, M, N, K, x, ldx, bits, bstride, W, ldw,     \
                   bias, out, ldo)                                                           \
    return 0;                                                                                \
}                                                                                            \
/* dW[c0:c1, 0:N] = (x.T @ dz)[c0:c1] over x's non-zeros; c0 a multiple of FASTNN_XB_G;   \
 * `rows` holds M + FASTNN_XB_PAD ints (see the top of this file) */                        \
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
