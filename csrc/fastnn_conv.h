/* Convolution and max-pooling loops for one sample, for _kernels/_convolution.pyx.
 *
 * The convolution itself is im2col + the project's GEMM (gemm_strided): these helpers pad
 * one sample's input with zeros, lay it out as columns (colT: K rows of P positions, the
 * GEMM's B), add column gradients back onto the (padded) image (col2im), add biases, sum
 * bias gradients, and run max-pooling forward and backward; the book's own im2col layout
 * (rows: P rows of K) and col2im are here for fastnn.util. Each is written once for
 * T = double and T = float and compiled per ISA level (baseline, AVX2+FMA, AVX-512F; the
 * loops are copies, adds and compares the compiler vectorises), picked with fastnn_isa().
 * Any module may call the entry points at the end (plain C, no Python).
 *
 * Geometry (the book's): input (C, H, W); filter/window (FH, FW); output (OH, OW) with
 * OH = (H + 2 pad - FH) / stride + 1; column index k = (c, fy, fx), position p = (oy, ox);
 * the padded input is zero outside [0, H) x [0, W).
 *
 * Order of sums (so results match the book and never depend on threads): a col2im pixel
 * adds its contributions in (fy, fx) order onto 0, as the book's col2im does; a bias
 * gradient sums its positions with 8 fixed accumulators, combined in a fixed tree. */
#ifndef FASTNN_CONV_H
#define FASTNN_CONV_H

#include <stddef.h>
#include <string.h>

#include "fastnn_cpu.h"

#if defined(__GNUC__)
#define FASTNN_CONV_RESTRICT __restrict__
#define FASTNN_CONV_INLINE static inline __attribute__((always_inline))
#elif defined(_MSC_VER)
#define FASTNN_CONV_RESTRICT __restrict
#define FASTNN_CONV_INLINE static __forceinline
#else
#define FASTNN_CONV_RESTRICT
#define FASTNN_CONV_INLINE static inline
#endif

typedef struct {
    ptrdiff_t C, H, W;     /* input channels, height, width */
    ptrdiff_t FH, FW;      /* filter (pooling window) height, width */
    ptrdiff_t stride, pad;
    ptrdiff_t OH, OW;      /* output height, width */
} fastnn_conv_geom;

/* Output positions o in [*lo, *hi) whose input index o * stride + off lies in [0, n_in). */
static inline void fastnn_conv_range(ptrdiff_t n_out, ptrdiff_t n_in, ptrdiff_t stride,
                                     ptrdiff_t off, ptrdiff_t *lo, ptrdiff_t *hi)
{
    ptrdiff_t l = off >= 0 ? 0 : (-off + stride - 1) / stride;     /* ceil(-off / stride) */
    ptrdiff_t h = n_in - 1 - off < 0 ? 0 : (n_in - 1 - off) / stride + 1;
    h = h < n_out ? h : n_out;
    *lo = l < h ? l : h;
    *hi = h;
}

#define FASTNN_CONV_LOOPS(T, E, SFX, ATTR)                                                     \
/* d[0:n] = s[0:n] for short runs (an output row): 8-element moves, the last one overlapping \
 * the previous (a copy may write an element twice), so a 14-wide row is two moves. */       \
ATTR static inline void fastnn_copy_run_##E##_##SFX(T *d, const T *s, ptrdiff_t n)            \
{                                                                                              \
    if (n >= 8) {                                                                              \
        ptrdiff_t i = 0;                                                                       \
        for (; i + 8 <= n; i += 8) memcpy(d + i, s + i, 8 * sizeof(T));                        \
        if (i < n) memcpy(d + n - 8, s + n - 8, 8 * sizeof(T));                                \
    } else if (n >= 4) {                                                                       \
        memcpy(d, s, 4 * sizeof(T));                                                           \
        memcpy(d + n - 4, s + n - 4, 4 * sizeof(T));                                           \
    } else {                                                                                   \
        for (ptrdiff_t i = 0; i < n; i++) d[i] = s[i];                                         \
    }                                                                                          \
}                                                                                              \
/* d[0:n] += s[0:n] (the two never overlap) */                                               \
ATTR static inline void fastnn_add_run_##E##_##SFX(T *FASTNN_CONV_RESTRICT d,                   \
                                                   const T *FASTNN_CONV_RESTRICT s,            \
                                                   ptrdiff_t n)                                \
{                                                                                              \
    ptrdiff_t i = 0;                                                                           \
    for (; i + 8 <= n; i += 8)                                                                 \
        for (int l = 0; l < 8; l++) d[i + l] += s[i + l];                                      \
    if (i + 4 <= n) {                                                                          \
        for (int l = 0; l < 4; l++) d[i + l] += s[i + l];                                      \
        i += 4;                                                                                \
    }                                                                                          \
    for (; i < n; i++) d[i] += s[i];                                                           \
}                                                                                              \
/* xp = x with `pad` zeros on every side: (C, H + 2 pad, W + 2 pad) */                        \
ATTR static void fastnn_pad_image_##E##_##SFX(const fastnn_conv_geom *g, const T *x, T *xp)    \
{                                                                                              \
    const ptrdiff_t pad = g->pad, Hp = g->H + 2 * pad, Wp = g->W + 2 * pad;                    \
    for (ptrdiff_t c = 0; c < g->C; c++) {                                                     \
        T *d = xp + c * Hp * Wp;                                                               \
        memset(d, 0, sizeof(T) * (size_t)(pad * Wp));                                          \
        for (ptrdiff_t iy = 0; iy < g->H; iy++) {                                              \
            T *r = d + (pad + iy) * Wp;                                                        \
            for (ptrdiff_t j = 0; j < pad; j++) { r[j] = 0; r[pad + g->W + j] = 0; }           \
            fastnn_copy_run_##E##_##SFX(r + pad, x + (c * g->H + iy) * g->W, g->W);            \
        }                                                                                      \
        memset(d + (pad + g->H) * Wp, 0, sizeof(T) * (size_t)(pad * Wp));                      \
    }                                                                                          \
}                                                                                              \
/* x = the interior of the padded image xp */                                                 \
ATTR static void fastnn_unpad_image_##E##_##SFX(const fastnn_conv_geom *g, const T *xp, T *x)  \
{                                                                                              \
    const ptrdiff_t pad = g->pad, Hp = g->H + 2 * pad, Wp = g->W + 2 * pad;                    \
    for (ptrdiff_t c = 0; c < g->C; c++)                                                       \
    for (ptrdiff_t iy = 0; iy < g->H; iy++)                                                    \
        fastnn_copy_run_##E##_##SFX(x + (c * g->H + iy) * g->W,                                \
                                    xp + (c * Hp + pad + iy) * Wp + pad, g->W);                \
}                                                                                              \
/* colT rows from a padded image xp (C, H + 2 pad, W + 2 pad):                               \
 * col[k * ldc + p] = xp[c, oy*s + fy, ox*s + fx], k = (c, fy, fx), p = (oy, ox): GEMM's B \
 * for out = W @ colT. One padded row feeds the FW rows of its (c, fy). */                  \
ATTR static void fastnn_im2col_cols_##E##_##SFX(const fastnn_conv_geom *g, const T *xp, T *col, \
                                                ptrdiff_t ldc)                                 \
{                                                                                              \
    const ptrdiff_t s = g->stride, OW = g->OW;                                                 \
    const ptrdiff_t Hp = g->H + 2 * g->pad, Wp = g->W + 2 * g->pad;                            \
    for (ptrdiff_t c = 0; c < g->C; c++)                                                       \
    for (ptrdiff_t fy = 0; fy < g->FH; fy++)                                                   \
    for (ptrdiff_t oy = 0; oy < g->OH; oy++) {                                                 \
        const T *src = xp + (c * Hp + oy * s + fy) * Wp;                                       \
        T *dst = col + (c * g->FH + fy) * g->FW * ldc + oy * OW;                               \
        for (ptrdiff_t fx = 0; fx < g->FW; fx++, dst += ldc) {                                 \
            if (s == 1)                                                                        \
                fastnn_copy_run_##E##_##SFX(dst, src + fx, OW);                                \
            else                                                                               \
                for (ptrdiff_t ox = 0; ox < OW; ox++) dst[ox] = src[fx + ox * s];              \
        }                                                                                      \
    }                                                                                          \
}                                                                                              \
/* The adjoint, into a padded image xp the caller zeroed:                                    \
 * xp[c, oy*s + fy, ox*s + fx] += col[k * ldc + p]. Every pixel gets its terms in (fy, fx)   \
 * order, as the book's col2im adds them. (fx outside oy: consecutive runs then go to        \
 * different rows; a run shifted by one element onto the row just written stalls on        \
 * store forwarding.) */                                                                    \
ATTR static void fastnn_col2im_cols_##E##_##SFX(const fastnn_conv_geom *g, const T *col,      \
                                                ptrdiff_t ldc, T *xp)                          \
{                                                                                              \
    const ptrdiff_t s = g->stride, OW = g->OW;                                                 \
    const ptrdiff_t Hp = g->H + 2 * g->pad, Wp = g->W + 2 * g->pad;                            \
    for (ptrdiff_t c = 0; c < g->C; c++)                                                       \
    for (ptrdiff_t fy = 0; fy < g->FH; fy++)                                                   \
    for (ptrdiff_t fx = 0; fx < g->FW; fx++) {                                                 \
        const T *src = col + ((c * g->FH + fy) * g->FW + fx) * ldc;                            \
        for (ptrdiff_t oy = 0; oy < g->OH; oy++) {                                             \
            T *dst = xp + (c * Hp + oy * s + fy) * Wp + fx;                                    \
            if (s == 1)                                                                        \
                fastnn_add_run_##E##_##SFX(dst, src + oy * OW, OW);                            \
            else                                                                               \
                for (ptrdiff_t ox = 0; ox < OW; ox++) dst[ox * s] += src[oy * OW + ox];        \
        }                                                                                      \
    }                                                                                          \
}                                                                                              \
/* col[p * K + k]: the book's im2col layout, one row of K = C*FH*FW per position */           \
ATTR static void fastnn_im2col_rows_##E##_##SFX(const fastnn_conv_geom *g, const T *x, T *col) \
{                                                                                              \
    const ptrdiff_t s = g->stride, FW = g->FW, K = g->C * g->FH * g->FW;                       \
    for (ptrdiff_t oy = 0; oy < g->OH; oy++)                                                   \
    for (ptrdiff_t ox = 0; ox < g->OW; ox++) {                                                 \
        T *o = col + (oy * g->OW + ox) * K;                                                    \
        const ptrdiff_t iy0 = oy * s - g->pad, ix0 = ox * s - g->pad;                          \
        /* window columns fx in [flo, fhi) are inside the input */                            \
        const ptrdiff_t flo = ix0 < 0 ? -ix0 : 0;                                              \
        const ptrdiff_t fhi = g->W - ix0 < FW ? (g->W - ix0 > 0 ? g->W - ix0 : 0) : FW;        \
        for (ptrdiff_t c = 0; c < g->C; c++)                                                   \
        for (ptrdiff_t fy = 0; fy < g->FH; fy++, o += FW) {                                    \
            const ptrdiff_t iy = iy0 + fy;                                                     \
            if (iy < 0 || iy >= g->H || flo >= fhi) {                                          \
                for (ptrdiff_t fx = 0; fx < FW; fx++) o[fx] = 0;                               \
                continue;                                                                      \
            }                                                                                  \
            const T *xr = x + (c * g->H + iy) * g->W + ix0;                                    \
            for (ptrdiff_t fx = 0; fx < flo; fx++) o[fx] = 0;                                  \
            for (ptrdiff_t fx = flo; fx < fhi; fx++) o[fx] = xr[fx];                           \
            for (ptrdiff_t fx = fhi; fx < FW; fx++) o[fx] = 0;                                 \
        }                                                                                      \
    }                                                                                          \
}                                                                                              \
/* img[c, iy, ix] = sum over (fy, fx) in order of col[k * ks + p * ps] for the position p  \
 * that read pixel (iy, ix) through offset (fy, fx): the adjoint of im2col (col2im). The    \
 * cols layout is ks = P, ps = 1; the book's rows layout ks = 1, ps = K. */                  \
ATTR static void fastnn_col2im_##E##_##SFX(const fastnn_conv_geom *g, const T *col,           \
                                           ptrdiff_t ks, ptrdiff_t ps, T *img)                 \
{                                                                                              \
    const ptrdiff_t s = g->stride, OW = g->OW;                                                 \
    for (ptrdiff_t c = 0; c < g->C; c++)                                                       \
    for (ptrdiff_t iy = 0; iy < g->H; iy++) {                                                  \
        T *r = img + (c * g->H + iy) * g->W;                                                   \
        for (ptrdiff_t ix = 0; ix < g->W; ix++) r[ix] = 0;                                     \
        for (ptrdiff_t fy = 0; fy < g->FH; fy++) {                                             \
            const ptrdiff_t t = iy + g->pad - fy;          /* = oy * s */                      \
            if (t < 0 || t % s != 0 || t / s >= g->OH) continue;                               \
            const ptrdiff_t oy = t / s;                                                        \
            for (ptrdiff_t fx = 0; fx < g->FW; fx++) {                                         \
                ptrdiff_t lo, hi;                                                              \
                fastnn_conv_range(OW, g->W, s, fx - g->pad, &lo, &hi);                         \
                const T *cr = col + ((c * g->FH + fy) * g->FW + fx) * ks + oy * OW * ps;       \
                const ptrdiff_t off = fx - g->pad;             /* ix = ox * s + off */         \
                if (s == 1 && ps == 1)                                                         \
                    for (ptrdiff_t ox = lo; ox < hi; ox++) r[ox + off] += cr[ox];              \
                else                                                                           \
                    for (ptrdiff_t ox = lo; ox < hi; ox++) r[ox * s + off] += cr[ox * ps];     \
            }                                                                                  \
        }                                                                                      \
    }                                                                                          \
}                                                                                              \
/* out[f * P + p] += b[f] (after out = W @ colT: the book's dot(col, col_W) + b) */          \
ATTR static void fastnn_conv_add_bias_##E##_##SFX(T *out, const T *b, ptrdiff_t F, ptrdiff_t P) \
{                                                                                              \
    for (ptrdiff_t f = 0; f < F; f++) {                                                        \
        const T bf = b[f];                                                                     \
        T *o = out + f * P;                                                                    \
        for (ptrdiff_t p = 0; p < P; p++) o[p] = o[p] + bf;                                    \
    }                                                                                          \
}                                                                                              \
/* acc[f] += sum_p d[f * P + p] in double: 8 accumulators (p mod 8), combined as a fixed tree */ \
ATTR static void fastnn_conv_row_sums_##E##_##SFX(const T *d, ptrdiff_t F, ptrdiff_t P, double *acc) \
{                                                                                              \
    for (ptrdiff_t f = 0; f < F; f++) {                                                        \
        const T *r = d + f * P;                                                                \
        double a[8] = {0, 0, 0, 0, 0, 0, 0, 0};                                                \
        ptrdiff_t p = 0;                                                                       \
        for (; p + 8 <= P; p += 8)                                                             \
            for (int l = 0; l < 8; l++) a[l] += (double)r[p + l];                              \
        for (int l = 0; p < P; p++, l++) a[l] += (double)r[p];                                 \
        acc[f] += ((a[0] + a[4]) + (a[2] + a[6])) + ((a[1] + a[5]) + (a[3] + a[7]));           \
    }                                                                                          \
}                                                                                              \
/* Windows [x0, x0 + n) of output row oy, all inside the input: the running max and its     \
 * index (kept as a T, so the selects vectorise across windows) over the window in order:  \
 * np.argmax's rule as two passes of plain selects, the first strictly larger value, then   \
 * the first NaN over anything. Inlined with STRIDE a literal 2 or the variable stride. */  \
ATTR FASTNN_CONV_INLINE                                                                        \
void fastnn_maxpool_run_##E##_##SFX(const fastnn_conv_geom *g, const T *xc, ptrdiff_t oy,      \
                                   ptrdiff_t x0, ptrdiff_t n, const ptrdiff_t STRIDE,          \
                                   T *best, T *besti, T *nanv, T *nani)                        \
{                                                                                              \
    const T *base = xc + (oy * STRIDE - g->pad) * g->W + x0 * STRIDE - g->pad;                 \
    for (ptrdiff_t j = 0; j < n; j++) {                                                        \
        const T v = base[j * STRIDE];                                                          \
        best[j] = v; besti[j] = 0; nanv[j] = v; nani[j] = v != v ? (T)0 : (T)-1;              \
    }                                                                                          \
    for (ptrdiff_t fy = 0; fy < g->FH; fy++)                                                   \
    for (ptrdiff_t fx = (fy == 0); fx < g->FW; fx++) {                                         \
        const T *r = base + fy * g->W + fx;                                                    \
        const T ti = (T)(fy * g->FW + fx);                                                     \
        for (ptrdiff_t j = 0; j < n; j++) {                                                    \
            const T v = r[j * STRIDE];                                                         \
            besti[j] = v > best[j] ? ti : besti[j];                                            \
            best[j] = v > best[j] ? v : best[j];                                               \
            const T first_nan = (v != v) & (nani[j] < 0);                                      \
            nanv[j] = first_nan ? v : nanv[j];                                                 \
            nani[j] = first_nan ? ti : nani[j];                                                \
        }                                                                                      \
    }                                                                                          \
    for (ptrdiff_t j = 0; j < n; j++) {                                                        \
        best[j] = nani[j] >= 0 ? nanv[j] : best[j];                                            \
        besti[j] = nani[j] >= 0 ? nani[j] : besti[j];                                          \
    }                                                                                          \
}                                                                                              \
/* The nets' 2x2 windows with stride 2, all inside: the four loads of a window in one       \
 * iteration (the compiler vectorises the stride-2 pairs); the same rule as above. */       \
ATTR static inline void fastnn_maxpool_run22_##E##_##SFX(const fastnn_conv_geom *g,            \
                                   const T *xc, ptrdiff_t oy, ptrdiff_t x0, ptrdiff_t n,       \
                                   T *best, T *besti)                                          \
{                                                                                              \
    const T *r0 = xc + (oy * 2 - g->pad) * g->W + x0 * 2 - g->pad, *r1 = r0 + g->W;            \
    for (ptrdiff_t j = 0; j < n; j++) {                                                        \
        const T v0 = r0[2 * j], v1 = r0[2 * j + 1], v2 = r1[2 * j], v3 = r1[2 * j + 1];        \
        T b = v0, bi = 0;                                                                      \
        bi = v1 > b ? (T)1 : bi; b = v1 > b ? v1 : b;                                          \
        bi = v2 > b ? (T)2 : bi; b = v2 > b ? v2 : b;                                          \
        bi = v3 > b ? (T)3 : bi; b = v3 > b ? v3 : b;                                          \
        /* the first NaN wins */                                                              \
        bi = v3 != v3 ? (T)3 : bi; b = v3 != v3 ? v3 : b;                                      \
        bi = v2 != v2 ? (T)2 : bi; b = v2 != v2 ? v2 : b;                                      \
        bi = v1 != v1 ? (T)1 : bi; b = v1 != v1 ? v1 : b;                                      \
        bi = v0 != v0 ? (T)0 : bi; b = v0 != v0 ? v0 : b;                                      \
        best[j] = b;                                                                           \
        besti[j] = bi;                                                                         \
    }                                                                                          \
}                                                                                              \
/* Max-pool one sample: out[c, p] = max over the window (row-major, padding reads 0) and    \
 * arg[c * acs + p * aps] = the window index of the first maximum (np.argmax: the first of \
 * equal values, the first NaN over anything). */                                           \
ATTR static void fastnn_maxpool_fwd_##E##_##SFX(const fastnn_conv_geom *g, const T *x, T *out, \
                                                ptrdiff_t *arg, ptrdiff_t acs, ptrdiff_t aps)  \
{                                                                                              \
    const ptrdiff_t s = g->stride, OW = g->OW, P = g->OH * g->OW;                              \
    ptrdiff_t ylo, yhi, xlo, xhi, t;                                                           \
    T best[64], besti[64], nanv[64], nani[64];                                                 \
    /* output rows/columns whose windows lie wholly inside the input */                       \
    fastnn_conv_range(g->OH, g->H, s, -g->pad, &ylo, &t);                                      \
    fastnn_conv_range(g->OH, g->H, s, g->FH - 1 - g->pad, &t, &yhi);                           \
    fastnn_conv_range(OW, g->W, s, -g->pad, &xlo, &t);                                         \
    fastnn_conv_range(OW, g->W, s, g->FW - 1 - g->pad, &t, &xhi);                              \
    if (yhi < ylo) yhi = ylo;                                                                  \
    if (xhi < xlo) xhi = xlo;                                                                  \
    for (ptrdiff_t c = 0; c < g->C; c++) {                                                     \
        const T *xc = x + c * g->H * g->W;                                                     \
        for (ptrdiff_t oy = 0; oy < g->OH; oy++)                                               \
        for (ptrdiff_t ox = 0; ox < OW; ox++) {                                                \
            if (oy >= ylo && oy < yhi && ox >= xlo && ox < xhi) {                              \
                /* a run of inside windows, up to 64 at a time */                             \
                const ptrdiff_t n = xhi - ox < 64 ? xhi - ox : 64;                             \
                if (s == 2 && g->FH == 2 && g->FW == 2)                                        \
                    fastnn_maxpool_run22_##E##_##SFX(g, xc, oy, ox, n, best, besti);           \
                else if (s == 2)                                                               \
                    fastnn_maxpool_run_##E##_##SFX(g, xc, oy, ox, n, 2, best, besti, nanv, nani);\
                else                                                                           \
                    fastnn_maxpool_run_##E##_##SFX(g, xc, oy, ox, n, s, best, besti, nanv, nani);\
                for (ptrdiff_t j = 0; j < n; j++) {                                            \
                    const ptrdiff_t p = oy * OW + ox + j;                                      \
                    out[c * P + p] = best[j];                                                  \
                    arg[c * acs + p * aps] = (ptrdiff_t)besti[j];                              \
                }                                                                              \
                ox += n - 1;                                                                   \
                continue;                                                                      \
            }                                                                                  \
            const ptrdiff_t iy0 = oy * s - g->pad, ix0 = ox * s - g->pad;                      \
            T bv = 0;                                                                          \
            ptrdiff_t bi = 0, i = 0;                                                           \
            for (ptrdiff_t fy = 0; fy < g->FH; fy++)                                           \
            for (ptrdiff_t fx = 0; fx < g->FW; fx++, i++) {                                    \
                const ptrdiff_t iy = iy0 + fy, ix = ix0 + fx;                                  \
                const T v = (iy >= 0 && iy < g->H && ix >= 0 && ix < g->W)                     \
                            ? xc[iy * g->W + ix] : (T)0;                                       \
                if (i == 0 || (bv == bv && !(v <= bv))) { bv = v; bi = i; }                    \
            }                                                                                  \
            const ptrdiff_t p = oy * OW + ox;                                                  \
            out[c * P + p] = bv;                                                               \
            arg[c * acs + p * aps] = bi;                                                       \
        }                                                                                      \
    }                                                                                          \
}                                                                                              \
/* Max-pool backward, one sample: dx[c, iy, ix] = sum over (fy, fx) in order of the        \
 * dout of each window whose argmax is that pixel (the book's dmax + col2im). */            \
ATTR static void fastnn_maxpool_bwd_##E##_##SFX(const fastnn_conv_geom *g, const T *dout,     \
                                                const ptrdiff_t *arg, ptrdiff_t acs,           \
                                                ptrdiff_t aps, T *dx)                          \
{                                                                                              \
    const ptrdiff_t s = g->stride, OW = g->OW, P = g->OH * g->OW;                              \
    const ptrdiff_t HW = g->H * g->W, FW = g->FW, nwin = g->FH * g->FW;                        \
    memset(dx, 0, sizeof(T) * (size_t)(g->C * HW));                                            \
    if (s >= g->FH && s >= g->FW) {                                                            \
        /* windows do not overlap: each pixel gets at most one dout, so scatter; the        \
         * window index -> (row, column) table saves two divisions per window */            \
        ptrdiff_t ay[64], ax[64];                                                              \
        for (ptrdiff_t a = 0; a < nwin && a < 64; a++) { ay[a] = a / FW; ax[a] = a % FW; }    \
        for (ptrdiff_t c = 0; c < g->C; c++)                                                   \
        for (ptrdiff_t oy = 0; oy < g->OH; oy++)                                               \
        for (ptrdiff_t ox = 0; ox < OW; ox++) {                                                \
            const ptrdiff_t p = oy * OW + ox, a = arg[c * acs + p * aps];                      \
            const ptrdiff_t iy = oy * s - g->pad + (nwin <= 64 ? ay[a] : a / FW);              \
            const ptrdiff_t ix = ox * s - g->pad + (nwin <= 64 ? ax[a] : a % FW);              \
            if (iy >= 0 && iy < g->H && ix >= 0 && ix < g->W)                                  \
                dx[c * HW + iy * g->W + ix] += dout[c * P + p];                                \
        }                                                                                      \
        return;                                                                                \
    }                                                                                          \
    for (ptrdiff_t c = 0; c < g->C; c++)                                                       \
    for (ptrdiff_t iy = 0; iy < g->H; iy++) {                                                  \
        T *r = dx + c * HW + iy * g->W;                                                        \
        for (ptrdiff_t fy = 0; fy < g->FH; fy++) {                                             \
            const ptrdiff_t t = iy + g->pad - fy;                                              \
            if (t < 0 || t % s != 0 || t / s >= g->OH) continue;                               \
            const ptrdiff_t oy = t / s;                                                        \
            for (ptrdiff_t fx = 0; fx < g->FW; fx++) {                                         \
                ptrdiff_t lo, hi;                                                              \
                fastnn_conv_range(OW, g->W, s, fx - g->pad, &lo, &hi);                         \
                const ptrdiff_t want = fy * g->FW + fx;                                        \
                for (ptrdiff_t ox = lo; ox < hi; ox++) {                                       \
                    const ptrdiff_t p = oy * OW + ox;                                          \
                    if (arg[c * acs + p * aps] == want)                                        \
                        r[ox * s + fx - g->pad] += dout[c * P + p];                            \
                }                                                                              \
            }                                                                                  \
        }                                                                                      \
    }                                                                                          \
}

/* --- the conv nets' fused paths (the executor's KIND_CONVOLUTION / KIND_POOLING) ----------- */
#define FASTNN_POOL22_BLOCK 2048   /* window pairs per pass (two stack buffers of this size) */
/* x where the integer mask m is all ones, y where it is 0, as bits (no branch, vectorises,
 * NaN and -0 kept exactly) */
#define FASTNN_POOL22_BLEND(T, I, m, x, y) __extension__ ({                                    \
        T x_ = (x), y_ = (y), r_; I xi_, yi_, ri_;                                             \
        memcpy(&xi_, &x_, sizeof xi_); memcpy(&yi_, &y_, sizeof yi_);                          \
        ri_ = (xi_ & (m)) | (yi_ & ~(m));                                                      \
        memcpy(&r_, &ri_, sizeof r_); r_; })
#define FASTNN_CONVNET_LOOPS(T, I, E, SFX, ATTR)                                               \
/* 2x2 windows, stride 2, no padding, one sample (C, H, W), H and W even -> (C, H/2, W/2):   \
 * out = the window max, arg = its index in the window (0..3, row-major), np.argmax's rule:  \
 * the first of equal values, the first NaN over anything; relu: out = 0 where out <= 0, the \
 * book's Relu before the pool (relu(max) == max(relu)). Two passes: the horizontal pairs of \
 * a block of rows (flat: W is even), then the vertical pairs of those. Every choice is a    \
 * blend of bits under a mask (argmax is data: a branch on it mispredicts half the time). I  \
 * is the integer of T's width. */                                                           \
ATTR static void fastnn_pool22_fwd_##E##_##SFX(const T *x, ptrdiff_t C, ptrdiff_t H,         \
                                              ptrdiff_t W, T *out, I *arg, int relu)         \
{                                                                                              \
    const ptrdiff_t OH = H / 2, OW = W / 2;                                                    \
    const I keep_neg = relu ? 0 : (I)-1;     /* relu: mask out values <= 0 */                \
    ptrdiff_t rb = FASTNN_POOL22_BLOCK / W;                                                    \
    T hm[FASTNN_POOL22_BLOCK];                                                                 \
    I hi[FASTNN_POOL22_BLOCK];                                                                 \
    if (rb < 1) rb = 1;                                                                        \
    for (ptrdiff_t c = 0; c < C; c++)                                                          \
    for (ptrdiff_t oy0 = 0; oy0 < OH; oy0 += rb) {                                             \
        const ptrdiff_t nr = oy0 + rb <= OH ? rb : OH - oy0;                                   \
        const T *FASTNN_CONV_RESTRICT xs = x + (c * H + 2 * oy0) * W;                          \
        T *FASTNN_CONV_RESTRICT hmr = hm;                                                      \
        I *FASTNN_CONV_RESTRICT hir = hi;                                                      \
        for (ptrdiff_t i = 0; i < nr * W; i++) {                                               \
            /* a | b: b wins if larger, or a NaN after a number */                           \
            const T a = xs[2 * i], b = xs[2 * i + 1];                                          \
            const I sel = -(I)((b > a) | ((b != b) & (a == a)));                               \
            hmr[i] = FASTNN_POOL22_BLEND(T, I, sel, b, a);                                     \
            hir[i] = sel & 1;                                                                  \
        }                                                                                      \
        for (ptrdiff_t r = 0; r < nr; r++) {                                                   \
            const T *FASTNN_CONV_RESTRICT t = hm + 2 * r * OW, *FASTNN_CONV_RESTRICT u = t + OW; \
            const I *FASTNN_CONV_RESTRICT it = hi + 2 * r * OW, *FASTNN_CONV_RESTRICT iu = it + OW; \
            T *FASTNN_CONV_RESTRICT o = out + (c * OH + oy0 + r) * OW;                         \
            I *FASTNN_CONV_RESTRICT ai = arg + (c * OH + oy0 + r) * OW;                        \
            for (ptrdiff_t j = 0; j < OW; j++) {                                               \
                /* top pair over bottom pair, the same rule */                               \
                const T tv = t[j], uv = u[j];                                                  \
                const I sel = -(I)((uv > tv) | ((uv != uv) & (tv == tv)));                     \
                const T m = FASTNN_POOL22_BLEND(T, I, sel, uv, tv);                            \
                ai[j] = it[j] ^ ((it[j] ^ (2 + iu[j])) & sel);                                 \
                /* relu: out[x <= 0] = 0 (NaN stays NaN) */                                  \
                o[j] = FASTNN_POOL22_BLEND(T, I, keep_neg | -(I)!(m <= 0), m, (T)0);           \
            }                                                                                  \
        }                                                                                      \
    }                                                                                          \
}                                                                                              \
/* Its backward, every pixel of dx written (no memset): each window's gradient goes to its \
 * argmax, the others get 0; relu: a window whose output is <= 0 passes nothing (the fused  \
 * Relu's backward, dout[out <= 0] = 0, at the argmax, whose input is the window's max). */ \
ATTR static void fastnn_pool22_bwd_##E##_##SFX(const T *dout, const T *out, const I *arg,    \
                                              ptrdiff_t C, ptrdiff_t H, ptrdiff_t W, T *dx,  \
                                              int relu)                                      \
{                                                                                              \
    const ptrdiff_t OH = H / 2, OW = W / 2;                                                    \
    const I keep_neg = relu ? 0 : (I)-1;                                                       \
    for (ptrdiff_t orow = 0; orow < C * OH; orow++) {   /* c * OH + oy: rows 2 orow, +1 */  \
        const T *FASTNN_CONV_RESTRICT g = dout + orow * OW;                                    \
        const T *FASTNN_CONV_RESTRICT o = out + orow * OW;                                     \
        const I *FASTNN_CONV_RESTRICT ai = arg + orow * OW;                                    \
        T *FASTNN_CONV_RESTRICT d0 = dx + 2 * orow * W, *FASTNN_CONV_RESTRICT d1 = d0 + W;     \
        for (ptrdiff_t j = 0; j < OW; j++) {                                                   \
            const I k = ai[j];                                                                 \
            const T v = FASTNN_POOL22_BLEND(T, I, keep_neg | -(I)!(o[j] <= 0), g[j], (T)0);   \
            d0[2 * j] = FASTNN_POOL22_BLEND(T, I, -(I)(k == 0), v, (T)0);                      \
            d0[2 * j + 1] = FASTNN_POOL22_BLEND(T, I, -(I)(k == 1), v, (T)0);                  \
            d1[2 * j] = FASTNN_POOL22_BLEND(T, I, -(I)(k == 2), v, (T)0);                      \
            d1[2 * j + 1] = FASTNN_POOL22_BLEND(T, I, -(I)(k == 3), v, (T)0);                  \
        }                                                                                      \
    }                                                                                          \
}                                                                                              \
/* dst (Cc, R) = src (R, Cc) transposed, in 8 x 8 blocks (each element is a copy: any     \
 * blocking gives the same bits) */                                                          \
ATTR static void fastnn_transpose_##E##_##SFX(const T *src, ptrdiff_t R, ptrdiff_t Cc,       \
                                             T *dst)                                         \
{                                                                                              \
    for (ptrdiff_t r0 = 0; r0 < R; r0 += 8)                                                    \
    for (ptrdiff_t c0 = 0; c0 < Cc; c0 += 8) {                                                 \
        const ptrdiff_t r1 = r0 + 8 < R ? r0 + 8 : R, c1 = c0 + 8 < Cc ? c0 + 8 : Cc;          \
        for (ptrdiff_t c = c0; c < c1; c++)                                                    \
            for (ptrdiff_t r = r0; r < r1; r++) dst[c * R + r] = src[r * Cc + c];              \
    }                                                                                          \
}

#define FASTNN_CONV_ALL(SFX, ATTR)                                                             \
FASTNN_CONV_LOOPS(double, d, SFX, ATTR)                                                        \
FASTNN_CONV_LOOPS(float, s, SFX, ATTR)                                                         \
FASTNN_CONVNET_LOOPS(double, long long, d, SFX, ATTR)                                          \
FASTNN_CONVNET_LOOPS(float, int, s, SFX, ATTR)

FASTNN_CONV_ALL(base, )
#ifdef FASTNN_X86_DISPATCH
FASTNN_CONV_ALL(avx2, __attribute__((target("avx2,fma"))))
FASTNN_CONV_ALL(avx512, __attribute__((target("avx512f,avx2,fma"))))
#define FASTNN_CONV_PICK(NAME, ...)                                                             \
    (fastnn_isa() == FASTNN_ISA_AVX512 ? NAME##_avx512(__VA_ARGS__)                            \
     : fastnn_isa() == FASTNN_ISA_AVX2 ? NAME##_avx2(__VA_ARGS__) : NAME##_base(__VA_ARGS__))
#else
#define FASTNN_CONV_PICK(NAME, ...) NAME##_base(__VA_ARGS__)
#endif

/* the entry points the kernels call (T = d: double, s: float) */
#define FASTNN_CONV_ENTRIES(T, E)                                                              \
static inline void fastnn_pad_image_##E(const fastnn_conv_geom *g, const T *x, T *xp)         \
{ FASTNN_CONV_PICK(fastnn_pad_image_##E, g, x, xp); }                                          \
static inline void fastnn_unpad_image_##E(const fastnn_conv_geom *g, const T *xp, T *x)       \
{ FASTNN_CONV_PICK(fastnn_unpad_image_##E, g, xp, x); }                                        \
static inline void fastnn_im2col_cols_##E(const fastnn_conv_geom *g, const T *xp, T *col,     \
                                          ptrdiff_t ldc)                                       \
{ FASTNN_CONV_PICK(fastnn_im2col_cols_##E, g, xp, col, ldc); }                                 \
static inline void fastnn_col2im_cols_##E(const fastnn_conv_geom *g, const T *col,            \
                                          ptrdiff_t ldc, T *xp)                                \
{ FASTNN_CONV_PICK(fastnn_col2im_cols_##E, g, col, ldc, xp); }                                 \
static inline void fastnn_im2col_rows_##E(const fastnn_conv_geom *g, const T *x, T *col)      \
{ FASTNN_CONV_PICK(fastnn_im2col_rows_##E, g, x, col); }                                       \
static inline void fastnn_col2im_##E(const fastnn_conv_geom *g, const T *col, ptrdiff_t ks,   \
                                     ptrdiff_t ps, T *img)                                     \
{ FASTNN_CONV_PICK(fastnn_col2im_##E, g, col, ks, ps, img); }                                  \
static inline void fastnn_conv_add_bias_##E(T *out, const T *b, ptrdiff_t F, ptrdiff_t P)     \
{ FASTNN_CONV_PICK(fastnn_conv_add_bias_##E, out, b, F, P); }                                  \
static inline void fastnn_conv_row_sums_##E(const T *d, ptrdiff_t F, ptrdiff_t P, double *acc) \
{ FASTNN_CONV_PICK(fastnn_conv_row_sums_##E, d, F, P, acc); }                                  \
static inline void fastnn_maxpool_fwd_##E(const fastnn_conv_geom *g, const T *x, T *out,      \
                                          ptrdiff_t *arg, ptrdiff_t acs, ptrdiff_t aps)        \
{ FASTNN_CONV_PICK(fastnn_maxpool_fwd_##E, g, x, out, arg, acs, aps); }                        \
static inline void fastnn_maxpool_bwd_##E(const fastnn_conv_geom *g, const T *dout,           \
                                          const ptrdiff_t *arg, ptrdiff_t acs, ptrdiff_t aps,  \
                                          T *dx)                                               \
{ FASTNN_CONV_PICK(fastnn_maxpool_bwd_##E, g, dout, arg, acs, aps, dx); }

FASTNN_CONV_ENTRIES(double, d)
FASTNN_CONV_ENTRIES(float, s)

#define FASTNN_CONVNET_ENTRIES(T, I, E)                                                        \
static inline void fastnn_pool22_fwd_##E(const T *x, ptrdiff_t C, ptrdiff_t H, ptrdiff_t W,   \
                                         T *out, I *arg, int relu)                             \
{ FASTNN_CONV_PICK(fastnn_pool22_fwd_##E, x, C, H, W, out, arg, relu); }                       \
static inline void fastnn_pool22_bwd_##E(const T *dout, const T *out, const I *arg,           \
                                         ptrdiff_t C, ptrdiff_t H, ptrdiff_t W, T *dx, int relu) \
{ FASTNN_CONV_PICK(fastnn_pool22_bwd_##E, dout, out, arg, C, H, W, dx, relu); }                \
static inline void fastnn_transpose_##E(const T *src, ptrdiff_t R, ptrdiff_t Cc, T *dst)       \
{ FASTNN_CONV_PICK(fastnn_transpose_##E, src, R, Cc, dst); }

FASTNN_CONVNET_ENTRIES(double, long long, d)
FASTNN_CONVNET_ENTRIES(float, int, s)

#endif
