# How this build was really compiled, and how many threads OpenMP would give.
# (sklearn utils/_openmp_helpers.pyx: never call omp_set_num_threads for the user.)

cdef extern from "fastnn_openmp.h":
    int fastnn_openmp_enabled() noexcept nogil
    int fastnn_omp_max_threads() noexcept nogil


def openmp_enabled():
    """True when the kernels were compiled with OpenMP."""
    return bool(fastnn_openmp_enabled())


def omp_max_threads():
    """omp_get_max_threads(): follows OMP_NUM_THREADS and threadpoolctl's limits."""
    return fastnn_omp_max_threads()
