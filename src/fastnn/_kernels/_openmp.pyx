# How this build was really compiled, and how many threads OpenMP would give.
# (sklearn utils/_openmp_helpers.pyx: never call omp_set_num_threads for the user.)

cdef extern from "fastnn_openmp.h":
    int fastnn_openmp_enabled() noexcept nogil
    int fastnn_omp_max_threads() noexcept nogil

cdef int cpu_limit = 1 << 30


def openmp_enabled():
    """True when the kernels were compiled with OpenMP."""
    return bool(fastnn_openmp_enabled())


def set_cpu_limit(int n):
    """Cap default_threads() by the CPUs this process may run on (set once at import)."""
    global cpu_limit
    cpu_limit = max(1, n)


def default_threads():
    """min(omp_get_max_threads(), CPUs): follows OMP_NUM_THREADS and threadpoolctl's limits
    (read on every call: threadpoolctl changes them at run time). 1 without OpenMP."""
    return max(1, min(fastnn_omp_max_threads(), cpu_limit))
