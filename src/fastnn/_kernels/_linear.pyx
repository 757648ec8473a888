# Linear algebra kernels: the dense GEMM with bias (out = x @ W + b), strided so that
# x.T @ dz and dz @ W.T need no copy, and the Affine layer's backward.
#
# Design (STYLE.md): C micro-kernels in csrc/fastnn_gemm.h compute one block of rows x
# columns; the def functions here own the prange that hands blocks to threads; the Python
# layer (fastnn.functions) validates, casts and allocates once. Every output element is
# computed by exactly one thread with the same summation order, so results are bitwise
# identical on any thread count.

from cython.parallel cimport prange
from libc.stdlib cimport malloc, free

cimport cython
from cython cimport floating

from libc.string cimport memset

from fastnn._kernels._cpu cimport isa_state
from fastnn._kernels._openmp cimport (threads_state, fastnn_threads_bind, fastnn_team,
                                      fastnn_team_end)

cdef extern from "fastnn_cpu.h":
    void fastnn_isa_bind(const int *state) noexcept nogil
    int fastnn_isa() noexcept nogil

cdef extern from "fastnn_gemm.h":
    ctypedef Py_ssize_t fastnn_idx
    int FASTNN_GEMM_MR
    int FASTNN_GEMM_MAX_NR
    int fastnn_gemm_init() noexcept nogil
    int fastnn_gemm_lanes(size_t size) noexcept nogil
    void fastnn_gemm_block_d(fastnn_idx i0, fastnn_idx i1, fastnn_idx j0, fastnn_idx j1,
                             fastnn_idx N, fastnn_idx K, const double *A, fastnn_idx rsa,
                             fastnn_idx csa, const double *B, fastnn_idx rsb, fastnn_idx csb,
                             const double *bias, double *C, fastnn_idx ldc,
                             double *pack) noexcept nogil
    void fastnn_gemm_block_s(fastnn_idx i0, fastnn_idx i1, fastnn_idx j0, fastnn_idx j1,
                             fastnn_idx N, fastnn_idx K, const float *A, fastnn_idx rsa,
                             fastnn_idx csa, const float *B, fastnn_idx rsb, fastnn_idx csb,
                             const float *bias, float *C, fastnn_idx ldc,
                             float *pack) noexcept nogil

fastnn_isa_bind(isa_state())
fastnn_threads_bind(threads_state())

# fastnn_team() sizes each region from its single-thread time: ns per multiply-add (or
# per element for colsum) measured on one thread (tools/thread_grain.py; Zen 4 with the
# AVX2 tiles / the baseline ones); few-row products run slower per multiply-add, so
# their estimate is low (fewer threads), never high.
cdef inline double mac_ns(bint is_double) noexcept nogil:
    if fastnn_isa() == 0:
        return 0.11 if is_double else 0.06
    return 0.042 if is_double else 0.023


cdef inline void gemm_block(Py_ssize_t i0, Py_ssize_t i1, Py_ssize_t j0, Py_ssize_t j1,
                            Py_ssize_t N, Py_ssize_t K,
                            const floating *A, Py_ssize_t rsa, Py_ssize_t csa,
                            const floating *B, Py_ssize_t rsb, Py_ssize_t csb,
                            const floating *bias, floating *C, Py_ssize_t ldc) noexcept nogil:
    cdef floating *pack = NULL
    if csb != 1 or N < 2 * fastnn_gemm_lanes(sizeof(floating)):
        pack = <floating *> malloc(K * FASTNN_GEMM_MAX_NR * sizeof(floating))
    if floating is double:
        fastnn_gemm_block_d(i0, i1, j0, j1, N, K, A, rsa, csa, B, rsb, csb, bias, C, ldc, pack)
    else:
        fastnn_gemm_block_s(i0, i1, j0, j1, N, K, A, rsa, csa, B, rsb, csb, bias, C, ldc, pack)
    free(pack)


cdef void gemm_strided(Py_ssize_t M, Py_ssize_t N, Py_ssize_t K,
                       const floating *A, Py_ssize_t rsa, Py_ssize_t csa,
                       const floating *B, Py_ssize_t rsb, Py_ssize_t csb,
                       const floating *bias, floating *C, Py_ssize_t ldc,
                       int n_threads) noexcept nogil:
    """C[M, N] = A[M, K] @ B[K, N] (+ bias[N]); strides in elements. Owns the prange.

    Many rows: each thread takes one contiguous run of MR-row blocks (B panels are then
    reused from cache across its rows). Few rows: each thread takes a run of column
    panels instead, so a single sample still uses every core.
    """
    cdef Py_ssize_t n_units, n_chunks, chunk, i0, i1, j0, j1, nr
    if M == 0 or N == 0:
        return
    n_threads = fastnn_team(n_threads, <double> M * N * K * mac_ns(floating is double))
    if n_threads == 1:
        gemm_block(0, M, 0, N, N, K, A, rsa, csa, B, rsb, csb, bias, C, ldc)
    elif M >= 2 * FASTNN_GEMM_MR * n_threads:
        n_units = (M + FASTNN_GEMM_MR - 1) // FASTNN_GEMM_MR
        n_chunks = min(n_threads, n_units)
        for chunk in prange(n_chunks, schedule="static", num_threads=n_chunks):
            i0 = (chunk * n_units // n_chunks) * FASTNN_GEMM_MR
            i1 = min(((chunk + 1) * n_units // n_chunks) * FASTNN_GEMM_MR, M)
            gemm_block(i0, i1, 0, N, N, K, A, rsa, csa, B, rsb, csb, bias, C, ldc)
    else:
        nr = 2 * fastnn_gemm_lanes(sizeof(floating))  # chunks of whole tile panels
        n_units = (N + nr - 1) // nr
        n_chunks = min(n_threads, n_units)
        for chunk in prange(n_chunks, schedule="static", num_threads=n_chunks):
            j0 = (chunk * n_units // n_chunks) * nr
            j1 = min(((chunk + 1) * n_units // n_chunks) * nr, N)
            gemm_block(0, M, j0, j1, N, K, A, rsa, csa, B, rsb, csb, bias, C, ldc)
    fastnn_team_end()


def affine(const floating[:, ::1] x,      # IN  (M, K)
           const floating[:, ::1] W,      # IN  (K, N)
           const floating[::1] b,         # IN  (N,) or None
           floating[:, ::1] out,          # OUT (M, N)
           int n_threads):
    """out = x @ W + b, with the GIL released."""
    cdef const floating *bias = NULL
    if b is not None:
        bias = &b[0] if b.shape[0] > 0 else NULL
    with nogil:
        gemm_strided(x.shape[0], W.shape[1], x.shape[1],
                     &x[0, 0] if x.shape[0] > 0 and x.shape[1] > 0 else NULL, x.shape[1], 1,
                     &W[0, 0] if W.shape[0] > 0 and W.shape[1] > 0 else NULL, W.shape[1], 1,
                     bias, &out[0, 0] if out.shape[0] > 0 and out.shape[1] > 0 else NULL,
                     out.shape[1], n_threads)


cdef void colsum(const floating *d, Py_ssize_t M, Py_ssize_t N, floating *out,
                 int n_threads) noexcept nogil:
    """out = np.sum(d, axis=0): rows added in order, in double (one thread per column)."""
    cdef Py_ssize_t i, j
    cdef double s
    n_threads = fastnn_team(n_threads, M * N * 1.0)  # ~1 ns per element: one add chain per column
    if n_threads == 1:
        for j in range(N):
            s = 0.0
            for i in range(M):
                s = s + d[i * N + j]
            out[j] = <floating> s
    else:
        for j in prange(N, schedule="static", num_threads=n_threads):
            s = 0.0
            for i in range(M):
                s = s + d[i * N + j]
            out[j] = <floating> s
    fastnn_team_end()


def affine_backward(const floating[:, ::1] x,      # IN  (M, K) the forward input
                    const floating[:, ::1] W,      # IN  (K, N)
                    const floating[:, ::1] dout,   # IN  (M, N)
                    floating[:, ::1] dx,           # OUT (M, K), or None
                    floating[:, ::1] dW,           # OUT (K, N)
                    floating[::1] db,              # OUT (N,)
                    int n_threads):
    """Affine.backward: dx = dout @ W.T, dW = x.T @ dout, db = sum(dout, axis=0)."""
    cdef Py_ssize_t M = x.shape[0], K = x.shape[1], N = W.shape[1], j
    cdef floating *dxp = NULL
    if dx is not None and M > 0 and K > 0:
        dxp = &dx[0, 0]
    with nogil:
        if K > 0 and N > 0:
            if M == 0:
                memset(&dW[0, 0], 0, K * N * sizeof(floating))
            else:
                # dW = x.T @ dout: A = x read column-wise (rsa=1, csa=K)
                gemm_strided(K, N, M, &x[0, 0], 1, K, &dout[0, 0], N, 1, NULL,
                             &dW[0, 0], N, n_threads)
            if dxp != NULL:
                # dx = dout @ W.T: B = W read through strides (rsb=1, csb=N)
                gemm_strided(M, K, N, &dout[0, 0], N, 1, &W[0, 0], 1, N, NULL,
                             dxp, K, n_threads)
        elif dxp != NULL:
            memset(dxp, 0, M * K * sizeof(floating))
        if N > 0:
            if M == 0:
                for j in range(N):
                    db[j] = 0
            else:
                colsum(&dout[0, 0], M, N, &db[0], n_threads)
