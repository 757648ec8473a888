/* Measures the core clock: a chain of dependent integer adds retires one per cycle, so
 * adds / seconds is the frequency the core runs at under load (turbo included).
 * Also times a throughput-bound FMA loop (independent 512-bit and 256-bit chains) to
 * give the FLOP/cycle the core really sustains.
 * Times are this thread's CPU time, so time slices given to other processes do not count.
 * Build: gcc -O2 -o /tmp/cpufreq tools/cpufreq.c   Run: /tmp/cpufreq */
#include <stdio.h>
#include <time.h>
#include <immintrin.h>

static double now(void) { struct timespec t; clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t); return t.tv_sec + 1e-9 * t.tv_nsec; }

__attribute__((target("avx512f,fma")))
static double fma512(long n)
{
    __m512d a[12]; for (int i = 0; i < 12; i++) a[i] = _mm512_set1_pd(1.0 + i * 1e-9);
    const __m512d m = _mm512_set1_pd(0.999999999), c = _mm512_set1_pd(1e-9);
    double t0 = now();
    for (long k = 0; k < n; k++)
        _Pragma("GCC unroll 12") for (int i = 0; i < 12; i++) a[i] = _mm512_fmadd_pd(a[i], m, c);
    double t = now() - t0;
    double s = 0; for (int i = 0; i < 12; i++) s += _mm512_reduce_add_pd(a[i]);
    if (s == 12345.0) printf("x");
    return n * 12.0 * 16 / t;  /* double-precision FLOP/s */
}
__attribute__((target("avx2,fma")))
static double fma256(long n)
{
    __m256d a[12]; for (int i = 0; i < 12; i++) a[i] = _mm256_set1_pd(1.0 + i * 1e-9);
    const __m256d m = _mm256_set1_pd(0.999999999), c = _mm256_set1_pd(1e-9);
    double t0 = now();
    for (long k = 0; k < n; k++)
        _Pragma("GCC unroll 12") for (int i = 0; i < 12; i++) a[i] = _mm256_fmadd_pd(a[i], m, c);
    double t = now() - t0;
    double s = 0; for (int i = 0; i < 12; i++) { double v[4]; _mm256_storeu_pd(v, a[i]); s += v[0]; }
    if (s == 12345.0) printf("x");
    return n * 12.0 * 8 / t;
}

int main(void)
{
    for (int rep = 0; rep < 5; rep++) {
        long n = 400000000, x = 0;
        double t0 = now();
        __asm__ volatile(
            "1:\n\t"
            "add $1, %0\n\tadd $1, %0\n\tadd $1, %0\n\tadd $1, %0\n\t"
            "add $1, %0\n\tadd $1, %0\n\tadd $1, %0\n\tadd $1, %0\n\t"
            "sub $8, %1\n\tjnz 1b\n" : "+r"(x), "+r"(n));
        double t = now() - t0;
        double ghz = 400000000.0 / t / 1e9;
        double f5 = fma512(20000000) / 1e9, f2 = fma256(20000000) / 1e9;
        printf("clock %.2f GHz   FMA f64: zmm %.1f GF/s (%.1f flop/cycle)  ymm %.1f GF/s (%.1f flop/cycle)\n",
               ghz, f5, f5 / ghz, f2, f2 / ghz);
    }
    return 0;
}
