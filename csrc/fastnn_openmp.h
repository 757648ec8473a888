/* The one OpenMP shim: <omp.h> when the build really has OpenMP, one-thread stubs
 * otherwise, so every .pyx compiles either way and fastnn.openmp_enabled() can tell
 * how this module was built (sklearn shipped silently-serial prange loops once). */
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

#endif
