/* The one OpenMP shim: <omp.h> when the build really has OpenMP, one-thread stubs
 * otherwise, so every .pyx compiles either way and fastnn.openmp_enabled() can tell
 * how this module was built (sklearn shipped silently-serial prange loops once).
 *
 * fastnn_team() is the one place that decides how many threads a parallel region gets:
 * every kernel asks it before opening a region (and opens none when it answers 1). */
#ifndef FASTNN_OPENMP_H
#define FASTNN_OPENMP_H

#ifdef _OPENMP
#include <omp.h>
static inline int fastnn_openmp_enabled(void) { return 1; }
static inline int fastnn_omp_max_threads(void) { return omp_get_max_threads(); }
static inline int fastnn_omp_thread_num(void) { return omp_get_thread_num(); }
#else
static inline int fastnn_openmp_enabled(void) { return 0; }
static inline int fastnn_omp_max_threads(void) { return 1; }
static inline int fastnn_omp_thread_num(void) { return 0; }
#endif

/* Single-thread time (ns) a region must have per thread before a thread is worth
 * waking: below it, waking and joining a second thread costs more than it saves. */
#define FASTNN_PARALLEL_MIN_NS 30000.0

/* Threads for a parallel region whose single-thread running time the kernel estimates
 * at `est_ns` (from its measured throughput: elements or multiply-adds per ns), given
 * the caller's resolved `n_threads`: min(n_threads, est_ns / FASTNN_PARALLEL_MIN_NS),
 * at least 1. Results never depend on the answer, only the speed does. */
static inline int fastnn_team(int n_threads, double est_ns)
{
    double cap = est_ns / FASTNN_PARALLEL_MIN_NS;
    if (n_threads <= 1 || cap < 2.0)
        return 1;
    return cap < (double)n_threads ? (int)cap : n_threads;
}

#endif
