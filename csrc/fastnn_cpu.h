/* The SIMD level run-time dispatch may use: the CPU's own, or the baseline when the
 * environment variable FASTNN_BASELINE_ISA is set to anything but "0" (the tests use it
 * to run the baseline kernels on any machine). Read once, when a module is imported. */
#ifndef FASTNN_CPU_H
#define FASTNN_CPU_H

#include <stdlib.h>
#include <string.h>

#if defined(__GNUC__) && (defined(__x86_64__) || defined(__i386__))
#define FASTNN_X86_DISPATCH 1
#endif

/* 0: baseline (SSE2 on x86-64), 1: AVX2 + FMA, 2: AVX-512F as well */
static inline int fastnn_cpu_level(void)
{
    const char *forced = getenv("FASTNN_BASELINE_ISA");
    if (forced && *forced && strcmp(forced, "0") != 0)
        return 0;
#ifdef FASTNN_X86_DISPATCH
    __builtin_cpu_init();
    if (!(__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")))
        return 0;
    return __builtin_cpu_supports("avx512f") ? 2 : 1;
#else
    return 0;
#endif
}

#endif
