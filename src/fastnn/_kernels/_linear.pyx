# Linear algebra kernels: the dense GEMM with bias (out = x @ W + b), strided so that
# x.T @ dz and dz @ W.T need no copy, and the Affine layer's backward.
#
# Design (STYLE.md): C micro-kernels in csrc/fastnn_gemm.h compute one block of rows x
# columns; the def functions here own the prange that hands blocks to threads; the Python
# layer (fastnn.functions) validates, casts and allocates once. Every output element is
# computed by exactly one thread with the same summation order, so results are bitwise
# identical on any thread count.

from cython.parallel cimport prange

cimport cython
from cython cimport floating

from libc.string cimport memset

cimport numpy as cnp

from fastnn._kernels._cpu cimport isa_state

cdef extern from "fastnn_cpu.h":
    void fastnn_isa_bind(const int *state) noexcept nogil

cdef extern from "fastnn_openmp.h":
    int fastnn_team(int n_threads, double est_ns) noexcept nogil

cdef extern from "fastnn_gemm.h":
    ctypedef Py_ssize_t fastnn_idx
    int fastnn_gemm_nr(size_t size) noexcept nogil
    double fastnn_gemm_fma_per_ns(size_t size) noexcept nogil
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
cnp.import_array()

# Columns one colsum task sums at a time (a double accumulator row on the stack).
cdef enum:
    COLSUM_W = 256
# Element additions per ns of colsum on one thread (measured, rounded down).
cdef double COLSUM_ADDS_PER_NS = 4.0


cdef inline void gemm_block(Py_ssize_t i0, Py_ssize_t i1, Py_ssize_t j0, Py_ssize_t j1,
                            Py_ssize_t N, Py_ssize_t K,
                            const floating *A, Py_ssize_t rsa, Py_ssize_t csa,
                            const floating *B, Py_ssize_t rsb, Py_ssize_t csb,
                            const floating *bias, floating *C, Py_ssize_t ldc) noexcept nogil:
    # the C micro-kernels need no scratch (a transposed B is packed on their stack)
    if floating is double:
        fastnn_gemm_block_d(i0, i1, j0, j1, N, K, A, rsa, csa, B, rsb, csb, bias, C, ldc, NULL)
    else:
        fastnn_gemm_block_s(i0, i1, j0, j1, N, K, A, rsa, csa, B, rsb, csb, bias, C, ldc, NULL)


cdef void gemm_strided(Py_ssize_t M, Py_ssize_t N, Py_ssize_t K,
                       const floating *A, Py_ssize_t rsa, Py_ssize_t csa,
                       const floating *B, Py_ssize_t rsb, Py_ssize_t csb,
                       const floating *bias, floating *C, Py_ssize_t ldc,
                       int n_threads) noexcept nogil:
    """C[M, N] = A[M, K] @ B[K, N] (+ bias[N]); strides in elements. Owns the prange.

    The team comes from fastnn_team (single-thread time = M N K / the level's measured
    multiply-add rate). Many rows: each thread takes an equal run of rows (its tiles then
    reuse B's panels from its cache). Fewer than 4 rows per thread: each takes a run of
    whole column panels instead, so one sample still uses every core. Any split gives
    the same bits: each C[i, j] is summed in k order by one thread.
    """
    cdef Py_ssize_t n_units, n_chunks, chunk, i0, i1, j0, j1, nr
    cdef int team
    if M <= 0 or N <= 0:
        return
    team = fastnn_team(n_threads, <double> M * N * (K if K > 0 else 1)
                       / fastnn_gemm_fma_per_ns(sizeof(floating)))
    if team <= 1:
        gemm_block(0, M, 0, N, N, K, A, rsa, csa, B, rsb, csb, bias, C, ldc)
        return
    nr = fastnn_gemm_nr(sizeof(floating))
    n_units = (N + nr - 1) // nr
    if M < 4 * team and n_units >= 2:
        n_chunks = min(team, n_units)
        for chunk in prange(n_chunks, schedule="static", num_threads=n_chunks):
            j0 = (chunk * n_units // n_chunks) * nr
            j1 = min(((chunk + 1) * n_units // n_chunks) * nr, N)
            gemm_block(0, M, j0, j1, N, K, A, rsa, csa, B, rsb, csb, bias, C, ldc)
    else:
        n_chunks = min(team, M)
        for chunk in prange(n_chunks, schedule="static", num_threads=n_chunks):
            i0 = chunk * M // n_chunks
            i1 = (chunk + 1) * M // n_chunks
            gemm_block(i0, i1, 0, N, N, K, A, rsa, csa, B, rsb, csb, bias, C, ldc)


cdef inline bint plain_array(cnp.ndarray a, int ndim, int typenum) noexcept:
    # a base-class ndarray of `ndim` dims and dtype `typenum`, C-contiguous, aligned,
    # native byte order: its data can be read as a C array
    return (type(a) is cnp.ndarray and cnp.PyArray_NDIM(a) == ndim
            and cnp.PyArray_TYPE(a) == typenum and cnp.PyArray_ISCARRAY_RO(a)
            and cnp.PyArray_ISNOTSWAPPED(a))


def plain_affine_args(x, W, b):
    """True when ``affine(x, W, b)`` needs no cast, copy or broadcast: x (M, K) and W (K, N)
    C-contiguous, aligned, native float64 or float32 ndarrays of one dtype; b None or such
    a (N,) array. fastnn.functions.affine's fast-path test, in C (the same test in Python
    attribute look-ups costs ~1 us, a third of a one-sample call)."""
    cdef int t
    if type(x) is not cnp.ndarray or type(W) is not cnp.ndarray:
        return False
    t = cnp.PyArray_TYPE(<cnp.ndarray> x)
    if t != cnp.NPY_DOUBLE and t != cnp.NPY_FLOAT:
        return False
    if not (plain_array(x, 2, t) and plain_array(W, 2, t)
            and cnp.PyArray_DIM(<cnp.ndarray> x, 1) == cnp.PyArray_DIM(<cnp.ndarray> W, 0)):
        return False
    if b is None:
        return True
    return (type(b) is cnp.ndarray and plain_array(b, 1, t)
            and cnp.PyArray_DIM(<cnp.ndarray> b, 0) == cnp.PyArray_DIM(<cnp.ndarray> W, 1))


def affine(cnp.ndarray x,      # IN  (M, K)
           cnp.ndarray W,      # IN  (K, N)
           object b,           # IN  (N,) or None
           cnp.ndarray out,    # OUT (M, N)
           int n_threads):
    """out = x @ W + b, with the GIL released.

    Takes ndarrays, not typed memoryviews: acquiring four memoryviews costs ~1.5 us,
    half the whole kernel for one sample (1 x 784 @ 784 x 100 float32 runs in ~3.3 us).
    The arguments must pass plain_affine_args and out must be a writeable C-contiguous
    (M, N) array of their dtype (the Python layer makes them so); checked here again in
    a few ns, so a wrong call raises ValueError instead of touching memory it must not.
    """
    cdef int t = cnp.PyArray_TYPE(x)
    cdef Py_ssize_t M, K, N
    if not (plain_affine_args(x, W, b) and plain_array(out, 2, t)
            and cnp.PyArray_ISWRITEABLE(out)
            and cnp.PyArray_DIM(out, 0) == cnp.PyArray_DIM(x, 0)
            and cnp.PyArray_DIM(out, 1) == cnp.PyArray_DIM(W, 1)):
        raise ValueError("_linear.affine: x (M, K), W (K, N), b (N,) or None and a writeable "
                         "out (M, N) must be C-contiguous arrays of one float dtype")
    M = cnp.PyArray_DIM(x, 0)
    K = cnp.PyArray_DIM(x, 1)
    N = cnp.PyArray_DIM(W, 1)
    cdef void *xp = cnp.PyArray_DATA(x)
    cdef void *wp = cnp.PyArray_DATA(W)
    cdef void *bp = NULL if b is None else cnp.PyArray_DATA(<cnp.ndarray> b)
    cdef void *op = cnp.PyArray_DATA(out)
    with nogil:
        if t == cnp.NPY_DOUBLE:
            gemm_strided[double](M, N, K, <const double *> xp, K, 1, <const double *> wp, N, 1,
                                 <const double *> bp, <double *> op, N, n_threads)
        else:
            gemm_strided[float](M, N, K, <const float *> xp, K, 1, <const float *> wp, N, 1,
                                <const float *> bp, <float *> op, N, n_threads)


cdef inline void colsum_block(const floating *d, Py_ssize_t M, Py_ssize_t N, Py_ssize_t j0,
                              Py_ssize_t w, floating *out) noexcept nogil:
    # out[j0:j0+w] = sum over rows of d[:, j0:j0+w], rows in order, in double; row-wise
    # (contiguous, vectorised) into a stack accumulator: each column keeps its own order
    cdef double acc[COLSUM_W]
    cdef Py_ssize_t i, j
    for j in range(w):
        acc[j] = 0.0
    for i in range(M):
        for j in range(w):
            acc[j] += d[i * N + j0 + j]     # sum(d, axis=0), row i
    for j in range(w):
        out[j0 + j] = <floating> acc[j]


cdef void colsum(const floating *d, Py_ssize_t M, Py_ssize_t N, floating *out,
                 int n_threads) noexcept nogil:
    """out = np.sum(d, axis=0): rows added in order, in double (columns split between
    threads in blocks, so the order of each column's sum never changes)."""
    cdef Py_ssize_t c, n_blocks = (N + COLSUM_W - 1) // COLSUM_W
    cdef int team
    if M <= 0 or N <= 0:
        for c in range(N):
            out[c] = 0
        return
    team = fastnn_team(n_threads, <double> M * N / COLSUM_ADDS_PER_NS)
    if team <= 1 or n_blocks == 1:
        for c in range(n_blocks):
            colsum_block(d, M, N, c * COLSUM_W, min(COLSUM_W, N - c * COLSUM_W), out)
    else:
        for c in prange(n_blocks, schedule="static", num_threads=min(team, n_blocks)):
            colsum_block(d, M, N, c * COLSUM_W, min(COLSUM_W, N - c * COLSUM_W), out)


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
            colsum(&dout[0, 0] if M > 0 else NULL, M, N, &db[0], n_threads)
