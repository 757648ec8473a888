/* Portable exp the compiler can vectorise at the baseline ISA (no libm call in the
 * loop, no branches): Cody-Waite reduction x = n ln2 + r, a degree-13 Taylor
 * polynomial on |r| <= ln2/2 (truncation < 1e-17 relative), and 2^n assembled from
 * bits in two halves so subnormal results and overflow to inf come out right.
 * Accurate to ~1 ulp; IEEE cases: exp(nan) = nan, exp(+inf) = inf, exp(-inf) = 0.
 * Nothing here needs -ffast-math, and nothing here changes with it. */
#ifndef FASTNN_MATH_H
#define FASTNN_MATH_H

#include <stdint.h>
#include <string.h>
#include <math.h>
#include <stddef.h>

static inline double fastnn_bits_to_double(uint64_t u) { double d; memcpy(&d, &u, 8); return d; }
static inline uint64_t fastnn_double_to_bits(double d) { uint64_t u; memcpy(&u, &d, 8); return u; }

static inline double fastnn_exp(double x)
{
    const double log2e = 1.4426950408889634074;
    const double ln2_hi = 6.93147180369123816490e-01;  /* high bits of ln 2, exact n*ln2_hi */
    const double ln2_lo = 1.90821492927058770002e-10;
    const double shifter = 6755399441055744.0;           /* 1.5 * 2^52: rounds to integer */
    /* Clamp so that n stays in [-1076, 1024]; the scaling below then over/underflows to
     * inf/0 exactly where exp does. NaN fails both comparisons and passes through. */
    double xc = x > 710.0 ? 710.0 : x;
    xc = xc < -746.0 ? -746.0 : xc;
    double n = (xc * log2e + shifter) - shifter;   /* round(x / ln2) */
    double r = (xc - n * ln2_hi) - n * ln2_lo;
    /* exp(r) = sum r^k / k!, k <= 13 (Horner) */
    double p = 1.0 / 6227020800.0;
    p = p * r + 1.0 / 479001600.0;
    p = p * r + 1.0 / 39916800.0;
    p = p * r + 1.0 / 3628800.0;
    p = p * r + 1.0 / 362880.0;
    p = p * r + 1.0 / 40320.0;
    p = p * r + 1.0 / 5040.0;
    p = p * r + 1.0 / 720.0;
    p = p * r + 1.0 / 120.0;
    p = p * r + 1.0 / 24.0;
    p = p * r + 1.0 / 6.0;
    p = p * r + 0.5;
    p = p * r + 1.0;
    p = p * r + 1.0;
    /* 2^n = 2^h1 * 2^h2 with h1 = round(n/2): both factors are normal for n in
     * [-1076, 1024]. Exponent bits come from the shifter trick (bits(h + 1.5*2^52) -
     * bits(1.5*2^52) = h as a two's-complement integer): only 64-bit add and left shift,
     * which SSE2 vectorises (an arithmetic right shift would not). */
    double h1 = (n * 0.5 + shifter) - shifter;
    double h2 = n - h1;
    const uint64_t sb = fastnn_double_to_bits(shifter);
    double s1 = fastnn_bits_to_double((fastnn_double_to_bits(h1 + shifter) - sb + 1023u) << 52);
    double s2 = fastnn_bits_to_double((fastnn_double_to_bits(h2 + shifter) - sb + 1023u) << 52);
    return (p * s1) * s2;
}

/* The same scheme in single precision, for float32 arrays: 8 (AVX2) or 16 (AVX-512) lanes
 * instead of 4 or 8, degree-7 polynomial (truncation < 3e-9 relative), about 1 ulp. */
static inline float fastnn_bits_to_float(uint32_t u) { float f; memcpy(&f, &u, 4); return f; }
static inline uint32_t fastnn_float_to_bits(float f) { uint32_t u; memcpy(&u, &f, 4); return u; }

static inline float fastnn_expf(float x)
{
    const float log2e = 1.44269504088896341f;
    const float ln2_hi = 0.693359375f;          /* exact in 9 bits: n * ln2_hi is exact */
    const float ln2_lo = -2.12194440e-4f;
    const float shifter = 12582912.0f;          /* 1.5 * 2^23: rounds to integer */
    /* clamp so n stays in [-150, 128]; NaN passes through */
    float xc = x > 89.0f ? 89.0f : x;
    xc = xc < -104.0f ? -104.0f : xc;
    const float n = (xc * log2e + shifter) - shifter;
    const float r = (xc - n * ln2_hi) - n * ln2_lo;
    float p = 1.0f / 5040.0f;
    p = p * r + 1.0f / 720.0f;
    p = p * r + 1.0f / 120.0f;
    p = p * r + 1.0f / 24.0f;
    p = p * r + 1.0f / 6.0f;
    p = p * r + 0.5f;
    p = p * r + 1.0f;
    p = p * r + 1.0f;
    /* 2^n = 2^h1 * 2^h2, h1 = round(n/2): both factors normal, exponent bits via shifter */
    const float h1 = (n * 0.5f + shifter) - shifter;
    const float h2 = n - h1;
    const uint32_t sb = fastnn_float_to_bits(shifter);
    const float s1 = fastnn_bits_to_float((fastnn_float_to_bits(h1 + shifter) - sb + 127u) << 23);
    const float s2 = fastnn_bits_to_float((fastnn_float_to_bits(h2 + shifter) - sb + 127u) << 23);
    return (p * s1) * s2;
}

/* Natural log, vectorisable (fdlibm's e_log.c scheme, branch-free): x = 2^k m with
 * m in [sqrt(1/2), sqrt(2)), f = m - 1, s = f / (2 + f), log(1 + f) = 2s + s R(s^2) with
 * fdlibm's minimax R; error < 1 ulp. Subnormals are scaled by 2^54 first. IEEE cases:
 * log(0) = -inf, log(x < 0) = nan, log(inf) = inf, log(nan) = nan. The exponent is read
 * with a logical shift and turned into a double with the shifter trick, both of which
 * SSE2 vectorises. */
static inline double fastnn_log(double x)
{
    const double ln2_hi = 6.93147180369123816490e-01, ln2_lo = 1.90821492927058770002e-10;
    const double Lg1 = 6.666666666666735130e-01, Lg2 = 3.999999999940941908e-01;
    const double Lg3 = 2.857142874366239149e-01, Lg4 = 2.222219843214978396e-01;
    const double Lg5 = 1.818357216161805012e-01, Lg6 = 1.531383769920937332e-01;
    const double Lg7 = 1.479819860511658591e-01;
    const double shifter = 6755399441055744.0;   /* 1.5 * 2^52 */
    /* every lane value is 64 bits wide (mixing in int conditions stops the vectoriser) */
    const double scale = x < 2.2250738585072014e-308 ? 18014398509481984.0 : 1.0;   /* 2^54 */
    const double bias = x < 2.2250738585072014e-308 ? 1077.0 : 1023.0;   /* 54 more if scaled */
    const uint64_t u = fastnn_double_to_bits(x * scale);
    const uint64_t mant = u & 0x000fffffffffffffULL;
    /* m in [1, 2); halve it (and bump k) when above sqrt(2) */
    const uint64_t big = mant > 0x6a09e667f3bcdULL ? 1u : 0u;
    const double m = fastnn_bits_to_double(mant | (0x3ff0000000000000ULL - (big << 52)));
    const uint64_t kbits = ((u >> 52) & 0x7ff) + big;   /* biased exponent, 0..2047 */
    const double kd = (fastnn_bits_to_double(kbits + fastnn_double_to_bits(shifter)) - shifter) - bias;
    const double f = m - 1.0;
    const double hfsq = 0.5 * f * f;
    const double s = f / (2.0 + f);
    const double z = s * s, w = z * z;
    const double t1 = w * (Lg2 + w * (Lg4 + w * Lg6));
    const double t2 = z * (Lg1 + w * (Lg3 + w * (Lg5 + w * Lg7)));
    const double R = t2 + t1;
    double r = kd * ln2_hi - ((hfsq - (s * (hfsq + R) + kd * ln2_lo)) - f);
    r = x == 0.0 ? -INFINITY : r;
    r = x < 0.0 ? NAN : r;
    r = x == INFINITY ? x : r;
    return x != x ? x : r;
}




/* ---- array loops, compiled for the baseline, AVX2 and AVX-512F, picked at run time ----
 * 256/512-bit vectors and FMA make the polynomial exp 3-5x faster; the baseline build
 * stays valid on every x86-64 and no -march flag is needed. With FMA the last bit can
 * differ from the baseline's (both within 1 ulp); every thread count gives the same bits. */
#include "fastnn_cpu.h"
#ifdef FASTNN_X86_DISPATCH
#define FASTNN_MATH_DISPATCH 1
#endif


/* Written once for T = double and T = float (E: d or s; EXP: fastnn_exp or fastnn_expf, so
 * float32 arrays get 2x the lanes), and once per ISA (SFX). */
#define FASTNN_ROW_HELPERS(T, E, EXP, SFX, ATTR)                                               \
/* y = exp(y) in place: one long loop, so it vectorises even when rows are short */          \
ATTR static void fastnn_exp_inplace_##E##_##SFX(T *y, ptrdiff_t n)                            \
{ for (ptrdiff_t j = 0; j < n; j++) y[j] = EXP(y[j]); }                                        \
/* v = log(v) in place */                                                                     \
ATTR static void fastnn_log_inplace_##E##_##SFX(double *v, ptrdiff_t n)                       \
{ for (ptrdiff_t j = 0; j < n; j++) v[j] = fastnn_log(v[j]); }                                 \
/* max of a row as np.max: any NaN makes it NaN (and so the whole softmax row NaN) */         \
ATTR static T fastnn_row_max_##E##_##SFX(const T *x, ptrdiff_t n)                             \
{                                                                                              \
    T m = x[0];                                                                                \
    int has_nan = 0;                                                                           \
    for (ptrdiff_t j = 0; j < n; j++) { m = x[j] > m ? x[j] : m; has_nan |= x[j] != x[j]; }   \
    return has_nan ? (T)NAN : m;                                                               \
}                                                                                              \
/* y = softmax(x) for a block of rows: exp(x - max) / sum(exp(x - max)); x - max in T's      \
 * precision (as the reference computes it), sums and the division in double */              \
ATTR static void fastnn_softmax_rows_##E##_##SFX(const T *x, T *y, ptrdiff_t rows, ptrdiff_t n) \
{                                                                                              \
    for (ptrdiff_t r = 0; r < rows; r++) {                                                     \
        const T m = fastnn_row_max_##E##_##SFX(x + r * n, n);                                 \
        for (ptrdiff_t j = 0; j < n; j++) y[r * n + j] = x[r * n + j] - m;                     \
    }                                                                                          \
    fastnn_exp_inplace_##E##_##SFX(y, rows * n);                                               \
    for (ptrdiff_t r = 0; r < rows; r++) {                                                     \
        T *yr = y + r * n;                                                                     \
        double s = 0.0;                                                                        \
        for (ptrdiff_t j = 0; j < n; j++) s += yr[j];                                          \
        for (ptrdiff_t j = 0; j < n; j++) yr[j] = (T)(yr[j] / s);                              \
    }                                                                                          \
}                                                                                              \
/* the row's max (in *m) and sum(exp(x - max)) in double, without storing the exps */        \
ATTR static double fastnn_max_sumexp_##E##_##SFX(const T *x, ptrdiff_t n, T *m)               \
{                                                                                              \
    T buf[64];                                                                                 \
    double s = 0.0;                                                                            \
    *m = fastnn_row_max_##E##_##SFX(x, n);                                                     \
    for (ptrdiff_t j0 = 0; j0 < n; j0 += 64) {                                                 \
        const ptrdiff_t len = n - j0 < 64 ? n - j0 : 64;                                       \
        for (ptrdiff_t j = 0; j < len; j++) buf[j] = x[j0 + j] - *m;                           \
        fastnn_exp_inplace_##E##_##SFX(buf, len);                                              \
        for (ptrdiff_t j = 0; j < len; j++) s += buf[j];                                       \
    }                                                                                          \
    return s;                                                                                  \
}                                                                                              \
/* y = 1 / (1 + exp(-x)), in T's precision as the reference computes it */                     \
ATTR static void fastnn_sigmoid_##E##_##SFX(const T *x, T *y, ptrdiff_t n)                    \
{ for (ptrdiff_t j = 0; j < n; j++) y[j] = (T)1 / ((T)1 + EXP(-x[j])); }

#define FASTNN_MATH_LOOPS(SFX, ATTR)                                                            \
FASTNN_ROW_HELPERS(double, d, fastnn_exp, SFX, ATTR)                                           \
FASTNN_ROW_HELPERS(float, s, fastnn_expf, SFX, ATTR)

FASTNN_MATH_LOOPS(base, )
#ifdef FASTNN_MATH_DISPATCH
FASTNN_MATH_LOOPS(avx2, __attribute__((target("avx2,fma"))))
FASTNN_MATH_LOOPS(avx512, __attribute__((target("avx512f,avx2,fma"))))
#endif


#ifdef FASTNN_MATH_DISPATCH
#define FASTNN_MATH_PICK(NAME, ...)                                                             \
    (fastnn_isa() == FASTNN_ISA_AVX512 ? NAME##_avx512(__VA_ARGS__)                            \
     : fastnn_isa() == FASTNN_ISA_AVX2 ? NAME##_avx2(__VA_ARGS__) : NAME##_base(__VA_ARGS__))
#else
#define FASTNN_MATH_PICK(NAME, ...) NAME##_base(__VA_ARGS__)
#endif

/* the entry points the kernels call */
static inline void fastnn_log_inplace(double *v, ptrdiff_t n)
{ FASTNN_MATH_PICK(fastnn_log_inplace_d, v, n); }
static inline void fastnn_exp_inplace_d(double *y, ptrdiff_t n)
{ FASTNN_MATH_PICK(fastnn_exp_inplace_d, y, n); }
static inline void fastnn_exp_inplace_s(float *y, ptrdiff_t n)
{ FASTNN_MATH_PICK(fastnn_exp_inplace_s, y, n); }
static inline void fastnn_softmax_rows_d(const double *x, double *y, ptrdiff_t rows, ptrdiff_t n)
{ FASTNN_MATH_PICK(fastnn_softmax_rows_d, x, y, rows, n); }
static inline void fastnn_softmax_rows_s(const float *x, float *y, ptrdiff_t rows, ptrdiff_t n)
{ FASTNN_MATH_PICK(fastnn_softmax_rows_s, x, y, rows, n); }
static inline double fastnn_max_sumexp_d(const double *x, ptrdiff_t n, double *m)
{ return FASTNN_MATH_PICK(fastnn_max_sumexp_d, x, n, m); }
static inline double fastnn_max_sumexp_s(const float *x, ptrdiff_t n, float *m)
{ return FASTNN_MATH_PICK(fastnn_max_sumexp_s, x, n, m); }
static inline void fastnn_sigmoid_array_d(const double *x, double *y, ptrdiff_t n)
{ FASTNN_MATH_PICK(fastnn_sigmoid_d, x, y, n); }
static inline void fastnn_sigmoid_array_s(const float *x, float *y, ptrdiff_t n)
{ FASTNN_MATH_PICK(fastnn_sigmoid_s, x, y, n); }

#endif
