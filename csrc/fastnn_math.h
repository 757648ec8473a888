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
    double t = xc * log2e + shifter;
    double n = t - shifter;
    int64_t ni = (int64_t)(fastnn_double_to_bits(t) - fastnn_double_to_bits(shifter));
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
    /* 2^n = 2^(n/2) * 2^(n - n/2): both factors are normal for n in [-1076, 1038] */
    int64_t h1 = ni >> 1;
    int64_t h2 = ni - h1;
    double s1 = fastnn_bits_to_double((uint64_t)(h1 + 1023) << 52);
    double s2 = fastnn_bits_to_double((uint64_t)(h2 + 1023) << 52);
    return (p * s1) * s2;
}

/* sigmoid(x) = 1 / (1 + exp(-x)), the book's formula evaluated in double */
static inline double fastnn_sigmoid(double x)
{
    return 1.0 / (1.0 + fastnn_exp(-x));
}

#endif
