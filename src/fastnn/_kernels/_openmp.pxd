# The OpenMP shim and the one thread-policy state (csrc/fastnn_openmp.h). Every kernel
# module binds to the state at import and sizes each parallel region with it:
#     from fastnn._kernels._openmp cimport (threads_state, fastnn_threads_bind,
#                                           fastnn_team, fastnn_team_end)
#     fastnn_threads_bind(threads_state())
#     ...
#     team = fastnn_team(n_threads, est_ns)   # before the region
#     ...                                     # the region, num_threads=team
#     fastnn_team_end()                       # after it

cdef extern from "fastnn_openmp.h":
    ctypedef struct fastnn_threads_t:
        double min_ns
        int backoff
        int exact
        long long backoff_min_ns
        long long backoff_max_ns
        long long until_ns
        long long level_ns
        long long backoff_team
        long long slow_x1024
        long long n_timed
        long long n_hurt
        long long n_single
        long long recent[32][3]
        double warm_min_ns
        long long warm_until_ns
        double hurt_slack_ns
    int fastnn_openmp_enabled() noexcept nogil
    int fastnn_omp_max_threads() noexcept nogil
    void fastnn_threads_bind(fastnn_threads_t *state) noexcept nogil
    int fastnn_team(int n_threads, double est_ns) noexcept nogil
    void fastnn_team_end() noexcept nogil

cdef fastnn_threads_t *threads_state() noexcept nogil
