/* The one CPU probe and the one ISA state behind every run-time dispatch.
 *
 * Levels: FASTNN_ISA_BASELINE (SSE2 on x86-64, NEON/plain C elsewhere), FASTNN_ISA_AVX2
 * (AVX2 + FMA) and FASTNN_ISA_AVX512 (AVX-512 F, VL, DQ and BW, plus AVX2 + FMA). Every
 * kernel family in csrc/ is compiled once per level from one source (a macro template
 * instantiated with the level's vector width and target attribute; fastnn_simd.h has
 * the per-level operations) and picks its instance with fastnn_isa().
 *
 * The state is ONE int, owned by the extension module fastnn._kernels._cpu: it is set
 * there once at import (the probe below, lowered by FASTNN_ISA=baseline|avx2|avx512) and
 * every other kernel module binds this header's pointer to it at import
 * (fastnn_isa_bind), so all modules dispatch alike and a test can switch every one of
 * them at once (fastnn._kernels._cpu.set_isa). A plain C program that includes these
 * headers (a benchmark harness) gets a private state initialised from the probe. */
#ifndef FASTNN_CPU_H
#define FASTNN_CPU_H

#if defined(__GNUC__) && (defined(__x86_64__) || defined(__i386__))
#define FASTNN_X86_DISPATCH 1
#endif

enum { FASTNN_ISA_BASELINE = 0, FASTNN_ISA_AVX2 = 1, FASTNN_ISA_AVX512 = 2 };

/* The best level this CPU (and OS: the compiler's checks include XSAVE support) runs. */
static inline int fastnn_cpu_probe(void)
{
#ifdef FASTNN_X86_DISPATCH
    __builtin_cpu_init();
    if (!(__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")))
        return FASTNN_ISA_BASELINE;
    /* AVX-512 kernels use 256- and 128-bit EVEX forms and mask registers too: F, VL, DQ
     * and BW, which every AVX-512 CPU since Skylake-SP has (Xeon Phi lacks VL: AVX2) */
    return (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512vl")
            && __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512bw"))
               ? FASTNN_ISA_AVX512 : FASTNN_ISA_AVX2;
#else
    return FASTNN_ISA_BASELINE;
#endif
}

static int fastnn_isa_private = -1;
static const int *fastnn_isa_state = &fastnn_isa_private;

/* Point this module's dispatch at the shared state (called once at module import). */
static inline void fastnn_isa_bind(const int *state) { fastnn_isa_state = state; }

/* The level every dispatch in this module uses now. */
static inline int fastnn_isa(void)
{
    int level = *fastnn_isa_state;
    if (level < 0)  /* unbound (plain C): probe once */
        level = fastnn_isa_private = fastnn_cpu_probe();
    return level;
}

#endif
