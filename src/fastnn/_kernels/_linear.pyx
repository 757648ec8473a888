# Linear algebra kernels: the dense GEMM with bias (out = x @ W + b), strided so that
# x.T @ dz and dz @ W.T need no copy; the Affine layer's backward; the sparse first layer
# (x mostly exact zeros, as MNIST: z = x @ W + b and dW = x.T @ dz over x's non-zeros).
#
# Design (STYLE.md): C micro-kernels in csrc/fastnn_gemm.h and csrc/fastnn_sparse.h
# (one template per family, compiled per ISA level x {float, double}, picked with
# fastnn_isa(); the GEMM picks its path by shape inside the block: register tiles, 1-3
# rows streaming B, 1-3 columns with lanes over rows) compute one block of rows x
# columns, and the column sums (db); the functions here own the prange
# that hands blocks to threads (team size from fastnn_team, from each kernel's measured
# rate); the Python layer (fastnn.functions, layers, the executor) validates, casts and
# allocates once. Every output element is computed by exactly one thread in a fixed
# summation order, so results are bitwise identical on any thread count.
#
# `affine`, `affine_new` and `dense_backward` take ndarrays rather than typed memoryviews:
# acquiring four memoryviews costs ~1.5 us, half of a one-sample call; they re-check the
# boundary's promise in C instead (plain_affine_args / plain_dense_args are those checks,
# for the callers' fast paths).

from cython.parallel cimport prange

cimport cython
from cython cimport floating

from libc.stdlib cimport free, malloc
from libc.string cimport memset

cimport numpy as cnp

from fastnn._kernels._cpu cimport isa_state

cdef extern from "fastnn_cpu.h":
    void fastnn_isa_bind(const int *state) noexcept nogil

from fastnn._kernels._openmp cimport (threads_state, fastnn_threads_bind, fastnn_team,
                                      fastnn_team_end)

cdef extern from "fastnn_gemm.h":
    ctypedef Py_ssize_t fastnn_idx
    int fastnn_gemm_nr(size_t size) noexcept nogil
    double fastnn_gemm_fma_per_ns(size_t size) noexcept nogil
    void fastnn_colsum_d(const double *d, fastnn_idx M, fastnn_idx ld, fastnn_idx w,
                         double *out) noexcept nogil
    void fastnn_colsum_s(const float *d, fastnn_idx M, fastnn_idx ld, fastnn_idx w,
                         float *out) noexcept nogil
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

cdef extern from "fastnn_sparse.h":
    int FASTNN_SPARSE_G
    int fastnn_bp_finite_d(const double *x, Py_ssize_t n) noexcept nogil
    int fastnn_bp_finite_s(const float *x, Py_ssize_t n) noexcept nogil
    Py_ssize_t fastnn_bp_compress_d(const double *x, Py_ssize_t n, int *idx, double *val) noexcept nogil
    Py_ssize_t fastnn_bp_compress_s(const float *x, Py_ssize_t n, int *idx, float *val) noexcept nogil
    void fastnn_sparse_rows_d(Py_ssize_t M, Py_ssize_t N, Py_ssize_t K, const int *idx,
                              const double *val, Py_ssize_t ldi, const Py_ssize_t *nnz,
                              const double *W, Py_ssize_t ldw, const double *bias, double *out,
                              Py_ssize_t ldo) noexcept nogil
    void fastnn_sparse_rows_s(Py_ssize_t M, Py_ssize_t N, Py_ssize_t K, const int *idx,
                              const float *val, Py_ssize_t ldi, const Py_ssize_t *nnz,
                              const float *W, Py_ssize_t ldw, const float *bias, float *out,
                              Py_ssize_t ldo) noexcept nogil
    void fastnn_sparse_xtd_d(Py_ssize_t M, Py_ssize_t N, const double *x, Py_ssize_t ldx,
                             Py_ssize_t g0, Py_ssize_t g1, Py_ssize_t K, const int *idx,
                             Py_ssize_t ldi, const Py_ssize_t *nnz, const double *d,
                             Py_ssize_t ldd, double *dW, Py_ssize_t lddw,
                             int *scratch) noexcept nogil
    void fastnn_sparse_xtd_s(Py_ssize_t M, Py_ssize_t N, const float *x, Py_ssize_t ldx,
                             Py_ssize_t g0, Py_ssize_t g1, Py_ssize_t K, const int *idx,
                             Py_ssize_t ldi, const Py_ssize_t *nnz, const float *d,
                             Py_ssize_t ldd, float *dW, Py_ssize_t lddw,
                             int *scratch) noexcept nogil

fastnn_isa_bind(isa_state())
fastnn_threads_bind(threads_state())
cnp.import_array()

# Elements per ns one thread compresses / checks for finiteness (measured, rounded down).
cdef double SCAN_ELEMS_PER_NS = 4.0

# Columns one colsum task sums at a time, when threads split the columns.
cdef enum:
    COLSUM_W = 256
# Element additions per ns of colsum on one thread (measured on Zen 4: 11-17 on every
# level for (3000, 64), float32 bound by its conversions to double; rounded down).
cdef double COLSUM_ADDS_PER_NS = 8.0


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
        fastnn_team_end()
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
    fastnn_team_end()


cdef inline bint plain_array(cnp.ndarray a, int ndim, int typenum) noexcept:
    # a base-class ndarray of `ndim` dims and dtype `typenum`, C-contiguous, aligned,
    # native byte order: its data can be read as a C array
    return (type(a) is cnp.ndarray and cnp.PyArray_NDIM(a) == ndim
            and cnp.PyArray_TYPE(a) == typenum and cnp.PyArray_ISCARRAY_RO(a)
            and cnp.PyArray_ISNOTSWAPPED(a))


cdef inline bint plain_bias(object b, cnp.ndarray W, int typenum) noexcept:
    # None, or a plain (N,) or (1, N) array for W (K, N): both are N contiguous values
    cdef cnp.ndarray ba
    if b is None:
        return True
    if type(b) is not cnp.ndarray:
        return False
    ba = <cnp.ndarray> b
    if cnp.PyArray_NDIM(ba) == 1:
        return (plain_array(ba, 1, typenum)
                and cnp.PyArray_DIM(ba, 0) == cnp.PyArray_DIM(W, 1))
    return (plain_array(ba, 2, typenum) and cnp.PyArray_DIM(ba, 0) == 1
            and cnp.PyArray_DIM(ba, 1) == cnp.PyArray_DIM(W, 1))


def plain_affine_args(x, W, b):
    """True when ``affine(x, W, b)`` needs no cast, copy or broadcast: x (M, K) and W (K, N)
    C-contiguous, aligned, native float64 or float32 ndarrays of one dtype; b None or such
    a (N,) or (1, N) array (both add one value per output column). fastnn.functions.affine's
    fast-path test, in C (the same test in Python attribute look-ups costs ~1 us, a third
    of a one-sample call)."""
    cdef int t
    if type(x) is not cnp.ndarray or type(W) is not cnp.ndarray:
        return False
    t = cnp.PyArray_TYPE(<cnp.ndarray> x)
    if t != cnp.NPY_DOUBLE and t != cnp.NPY_FLOAT:
        return False
    if not (plain_array(x, 2, t) and plain_array(W, 2, t)
            and cnp.PyArray_DIM(<cnp.ndarray> x, 1) == cnp.PyArray_DIM(<cnp.ndarray> W, 0)):
        return False
    return plain_bias(b, W, t)


def plain_dense_args(x, W, b, dout):
    """True when a dense layer's step needs no cast, copy or broadcast: plain_affine_args
    with b a (1, N) array (nnfs's biases), and dout None or a plain (M, N) array of the
    same dtype (the backward pass). The nnfs Layer_Dense fast-path test, in C."""
    if not (type(b) is cnp.ndarray and cnp.PyArray_NDIM(<cnp.ndarray> b) == 2
            and plain_affine_args(x, W, b)):
        return False
    if dout is None:
        return True
    return (type(dout) is cnp.ndarray
            and plain_array(dout, 2, cnp.PyArray_TYPE(<cnp.ndarray> x))
            and cnp.PyArray_DIM(<cnp.ndarray> dout, 0) == cnp.PyArray_DIM(<cnp.ndarray> x, 0)
            and cnp.PyArray_DIM(<cnp.ndarray> dout, 1) == cnp.PyArray_DIM(<cnp.ndarray> W, 1))


cdef inline void affine_run(cnp.ndarray x, cnp.ndarray W, object b, cnp.ndarray out,
                            int n_threads):
    # out = x @ W + b for arguments that passed plain_affine_args and an out (M, N) of
    # their dtype
    cdef int t = cnp.PyArray_TYPE(x)
    cdef Py_ssize_t M = cnp.PyArray_DIM(x, 0), K = cnp.PyArray_DIM(x, 1)
    cdef Py_ssize_t N = cnp.PyArray_DIM(W, 1)
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


def affine(cnp.ndarray x,      # IN  (M, K)
           cnp.ndarray W,      # IN  (K, N)
           object b,           # IN  (N,), (1, N) or None
           cnp.ndarray out,    # OUT (M, N)
           int n_threads):
    """out = x @ W + b, with the GIL released.

    Takes ndarrays, not typed memoryviews: acquiring four memoryviews costs ~1.5 us,
    half the whole kernel for one sample (1 x 784 @ 784 x 100 float32 runs in ~3 us).
    The arguments must pass plain_affine_args and out must be a writeable C-contiguous
    (M, N) array of their dtype (the Python layer makes them so); checked here again in
    a few ns, so a wrong call raises ValueError instead of touching memory it must not.
    """
    cdef int t = cnp.PyArray_TYPE(x)
    if not (plain_affine_args(x, W, b) and plain_array(out, 2, t)
            and cnp.PyArray_ISWRITEABLE(out)
            and cnp.PyArray_DIM(out, 0) == cnp.PyArray_DIM(x, 0)
            and cnp.PyArray_DIM(out, 1) == cnp.PyArray_DIM(W, 1)):
        raise ValueError("_linear.affine: x (M, K), W (K, N), b (N,), (1, N) or None and a "
                         "writeable out (M, N) must be C-contiguous arrays of one float dtype")
    affine_run(x, W, b, out, n_threads)


def affine_new(x, W, b, int n_threads):
    """A new array x @ W + b when the arguments pass plain_affine_args, else None (the
    caller casts). The output is allocated here, in C: fastnn.functions.affine's fast path
    in one call (np.empty and the shape look-ups from Python cost ~0.3 us, a tenth of a
    one-sample call)."""
    cdef cnp.npy_intp dims[2]
    if not plain_affine_args(x, W, b):
        return None
    dims[0] = cnp.PyArray_DIM(<cnp.ndarray> x, 0)
    dims[1] = cnp.PyArray_DIM(<cnp.ndarray> W, 1)
    cdef cnp.ndarray out = cnp.PyArray_EMPTY(2, dims, cnp.PyArray_TYPE(<cnp.ndarray> x), 0)
    affine_run(<cnp.ndarray> x, <cnp.ndarray> W, b, out, n_threads)
    return out


cdef inline void colsum_block(const floating *d, Py_ssize_t M, Py_ssize_t N, Py_ssize_t j0,
                              Py_ssize_t w, floating *out) noexcept nogil:
    # out[j0:j0+w] = sum over rows of d[:, j0:j0+w] (sum(d, axis=0)), rows in order, in
    # double: csrc/fastnn_gemm.h, vectors of double sums in registers
    if floating is double:
        fastnn_colsum_d(d + j0, M, N, w, out + j0)
    else:
        fastnn_colsum_s(d + j0, M, N, w, out + j0)


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
        colsum_block(d, M, N, 0, N, out)
    else:
        for c in prange(n_blocks, schedule="static", num_threads=min(team, n_blocks)):
            colsum_block(d, M, N, c * COLSUM_W, min(COLSUM_W, N - c * COLSUM_W), out)
    fastnn_team_end()


cdef void backward_run(Py_ssize_t M, Py_ssize_t K, Py_ssize_t N, const floating *x,
                       const floating *W, const floating *dout, floating *dx, floating *dW,
                       floating *db, int n_threads) noexcept nogil:
    # dx (M, K) = dout @ W.T (dx NULL: skipped), dW (K, N) = x.T @ dout, db (N) = column
    # sums of dout; x (M, K), W (K, N), dout (M, N), all C-contiguous
    if K > 0 and N > 0:
        if M == 0:
            memset(dW, 0, K * N * sizeof(floating))
        else:
            # dW = x.T @ dout: A = x read column-wise (rsa=1, csa=K)
            gemm_strided(K, N, M, x, 1, K, dout, N, 1, NULL, dW, N, n_threads)
        if dx != NULL and M > 0:
            # dx = dout @ W.T: B = W read through strides (rsb=1, csb=N)
            gemm_strided(M, K, N, dout, N, 1, W, 1, N, NULL, dx, K, n_threads)
    elif dx != NULL and M > 0 and K > 0:
        memset(dx, 0, M * K * sizeof(floating))
    if N > 0:
        colsum(dout if M > 0 else NULL, M, N, db, n_threads)


def affine_backward(const floating[:, ::1] x,      # IN  (M, K) the forward input
                    const floating[:, ::1] W,      # IN  (K, N)
                    const floating[:, ::1] dout,   # IN  (M, N)
                    floating[:, ::1] dx,           # OUT (M, K), or None
                    floating[:, ::1] dW,           # OUT (K, N)
                    floating[::1] db,              # OUT (N,)
                    int n_threads):
    """Affine.backward: dx = dout @ W.T, dW = x.T @ dout, db = sum(dout, axis=0)."""
    cdef Py_ssize_t M = x.shape[0], K = x.shape[1], N = W.shape[1]
    cdef floating *dxp = NULL
    if dx is not None and M > 0 and K > 0:
        dxp = &dx[0, 0]
    with nogil:
        backward_run(M, K, N, &x[0, 0] if M > 0 and K > 0 else NULL,
                     &W[0, 0] if K > 0 and N > 0 else NULL,
                     &dout[0, 0] if M > 0 and N > 0 else NULL, dxp,
                     &dW[0, 0] if K > 0 and N > 0 else NULL, &db[0] if N > 0 else NULL,
                     n_threads)


def dense_backward(cnp.ndarray x,      # IN  (M, K) the forward input
                   cnp.ndarray W,      # IN  (K, N)
                   cnp.ndarray dout,   # IN  (M, N)
                   cnp.ndarray dx,     # OUT (M, K)
                   cnp.ndarray dW,     # OUT (K, N)
                   cnp.ndarray db,     # OUT (1, N) or (N,)
                   int n_threads):
    """affine_backward for ndarrays (the nnfs Layer_Dense fast path): acquiring six typed
    memoryviews costs ~1.5 us a call. x, W, dout must pass plain_dense_args-like checks
    and the outputs be writeable C-contiguous arrays of their dtype and shapes; checked
    here in C, so a wrong call raises ValueError instead of touching memory it must not."""
    cdef int t = cnp.PyArray_TYPE(x)
    cdef Py_ssize_t M, K, N
    if not (plain_affine_args(x, W, None) and plain_array(dout, 2, t)
            and plain_array(dx, 2, t) and plain_array(dW, 2, t)
            and plain_array(db, cnp.PyArray_NDIM(db), t)
            and cnp.PyArray_ISWRITEABLE(dx) and cnp.PyArray_ISWRITEABLE(dW)
            and cnp.PyArray_ISWRITEABLE(db)
            and cnp.PyArray_DIM(dout, 0) == cnp.PyArray_DIM(x, 0)
            and cnp.PyArray_DIM(dout, 1) == cnp.PyArray_DIM(W, 1)
            and cnp.PyArray_DIM(dx, 0) == cnp.PyArray_DIM(x, 0)
            and cnp.PyArray_DIM(dx, 1) == cnp.PyArray_DIM(x, 1)
            and cnp.PyArray_DIM(dW, 0) == cnp.PyArray_DIM(W, 0)
            and cnp.PyArray_DIM(dW, 1) == cnp.PyArray_DIM(W, 1)
            and 1 <= cnp.PyArray_NDIM(db) <= 2
            and cnp.PyArray_SIZE(db) == cnp.PyArray_DIM(W, 1)):
        raise ValueError("_linear.dense_backward: x (M, K), W (K, N), dout (M, N) and writeable "
                         "dx (M, K), dW (K, N), db (N values) must be C-contiguous arrays of "
                         "one float dtype")
    M = cnp.PyArray_DIM(x, 0)
    K = cnp.PyArray_DIM(x, 1)
    N = cnp.PyArray_DIM(W, 1)
    cdef void *xp = cnp.PyArray_DATA(x)
    cdef void *wp = cnp.PyArray_DATA(W)
    cdef void *dp = cnp.PyArray_DATA(dout)
    cdef void *dxp = cnp.PyArray_DATA(dx)
    cdef void *dwp = cnp.PyArray_DATA(dW)
    cdef void *dbp = cnp.PyArray_DATA(db)
    with nogil:
        if t == cnp.NPY_DOUBLE:
            backward_run[double](M, K, N, <const double *> xp, <const double *> wp,
                                 <const double *> dp, <double *> dxp, <double *> dwp,
                                 <double *> dbp, n_threads)
        else:
            backward_run[float](M, K, N, <const float *> xp, <const float *> wp,
                                <const float *> dp, <float *> dxp, <float *> dwp,
                                <float *> dbp, n_threads)


# --- the sparse first layer (csrc/fastnn_sparse.h) ---------------------------------------
#
# x's non-zeros as rows of (column, value) pairs: row i at idx/val[i * K : i * K + nnz[i]],
# columns ascending (NaN counts as non-zero). Skipping x's zeros is exact only when what
# they multiply is finite: sparse_affine_rows needs a finite W, sparse_xT_dz a finite dz
# (all_finite tells; otherwise use gemm_strided, which propagates NaN/inf as NumPy does).

cdef inline bint finite_run(const floating *a, Py_ssize_t n) noexcept nogil:
    if floating is double:
        return fastnn_bp_finite_d(a, n)
    else:
        return fastnn_bp_finite_s(a, n)


cdef bint all_finite(const floating *a, Py_ssize_t n, int n_threads) noexcept nogil:
    """True when a[0:n] holds no NaN or inf (chunks checked in parallel; the answer does
    not depend on the split)."""
    cdef Py_ssize_t c, chunk = 32768, n_chunks = (n + 32767) // 32768
    cdef int team = fastnn_team(n_threads, <double> n / SCAN_ELEMS_PER_NS)
    cdef int bad = 0
    if team <= 1 or n_chunks == 1:
        fastnn_team_end()
        return finite_run(a, n)
    for c in prange(n_chunks, schedule="static", num_threads=min(team, n_chunks)):
        if not finite_run(a + c * chunk, min(chunk, n - c * chunk)):
            bad += 1
    fastnn_team_end()
    return bad == 0


cdef Py_ssize_t sparse_compress_rows(const floating *x, Py_ssize_t M, Py_ssize_t K,
                                     int *idx, floating *val, Py_ssize_t *nnz,
                                     int n_threads) noexcept nogil:
    """The non-zeros of each row of x (M, K) as (column, value) pairs at idx/val[i * K],
    nnz[i] of them (NaN kept). Returns their total."""
    cdef Py_ssize_t i, total = 0
    cdef int team = fastnn_team(n_threads, <double> M * K / SCAN_ELEMS_PER_NS)
    if team <= 1:
        for i in range(M):
            nnz[i] = compress_row(x + i * K, K, idx + i * K, val + i * K)
    else:
        for i in prange(M, schedule="static", num_threads=team):
            nnz[i] = compress_row(x + i * K, K, idx + i * K, val + i * K)
    fastnn_team_end()
    for i in range(M):
        total += nnz[i]
    return total


cdef inline Py_ssize_t compress_row(const floating *x, Py_ssize_t n, int *idx,
                                    floating *val) noexcept nogil:
    if floating is double:
        return fastnn_bp_compress_d(x, n, idx, val)
    else:
        return fastnn_bp_compress_s(x, n, idx, val)


cdef inline void sparse_rows_block(Py_ssize_t i0, Py_ssize_t i1, Py_ssize_t K, Py_ssize_t N,
                                   const int *idx, const floating *val, const Py_ssize_t *nnz,
                                   const floating *W, const floating *bias,
                                   floating *out) noexcept nogil:
    if floating is double:
        fastnn_sparse_rows_d(i1 - i0, N, K, idx + i0 * K, val + i0 * K, K, nnz + i0, W, N,
                             bias, out + i0 * N, N)
    else:
        fastnn_sparse_rows_s(i1 - i0, N, K, idx + i0 * K, val + i0 * K, K, nnz + i0, W, N,
                             bias, out + i0 * N, N)


cdef void sparse_affine_rows(Py_ssize_t M, Py_ssize_t K, Py_ssize_t N, const int *idx,
                             const floating *val, const Py_ssize_t *nnz, Py_ssize_t nnz_total,
                             const floating *W, const floating *bias, floating *out,
                             int n_threads) noexcept nogil:
    """out (M, N) = x @ W + bias over x's non-zeros (pairs from sparse_compress_rows).

    Each out[i, j] is one accumulator: x[i, k] * W[k, j] for the non-zero k in ascending
    order, then the bias, so the bits do not depend on the thread count (threads take
    runs of rows). W (K, N) must be finite (all_finite), or zeros times inf are lost.
    """
    cdef Py_ssize_t chunk, n_chunks
    cdef int team
    if M <= 0 or N <= 0:
        return
    team = fastnn_team(n_threads, <double> nnz_total * N * 2.0
                       / fastnn_gemm_fma_per_ns(sizeof(floating)))
    if team <= 1:
        sparse_rows_block(0, M, K, N, idx, val, nnz, W, bias, out)
        fastnn_team_end()
        return
    n_chunks = min(team, M)
    for chunk in prange(n_chunks, schedule="static", num_threads=n_chunks):
        sparse_rows_block(chunk * M // n_chunks, (chunk + 1) * M // n_chunks, K, N, idx, val,
                          nnz, W, bias, out)
    fastnn_team_end()


cdef inline void sparse_xtd_block(Py_ssize_t g0, Py_ssize_t g1, Py_ssize_t M, Py_ssize_t K,
                                  Py_ssize_t N, const floating *x, const int *idx,
                                  const Py_ssize_t *nnz, const floating *dz, floating *dW,
                                  int *scratch) noexcept nogil:
    if floating is double:
        fastnn_sparse_xtd_d(M, N, x, K, g0, g1, K, idx, K, nnz, dz, N, dW, N,
                            scratch + g0 * (M + 3))
    else:
        fastnn_sparse_xtd_s(M, N, x, K, g0, g1, K, idx, K, nnz, dz, N, dW, N,
                            scratch + g0 * (M + 3))


cdef int sparse_xT_dz(Py_ssize_t M, Py_ssize_t K, Py_ssize_t N, const floating *x,
                      const int *idx, const Py_ssize_t *nnz, Py_ssize_t nnz_total,
                      const floating *dz, floating *dW, int n_threads) noexcept nogil:
    """dW (K, N) = x.T @ dz over x's non-zeros: x (M, K) dense, with its pairs from
    sparse_compress_rows; dz (M, N).

    Each dW[k, j] is one accumulator: x[i, k] * dz[i, j] over the rows i in ascending
    order (the non-zero ones; a zero x[i, k] adds an exact 0), so the bits do not depend
    on the thread count (threads take runs of FASTNN_SPARSE_G columns of x). dz must be
    finite (all_finite). Returns 0, or -1 when its scratch (~K / 3 * (M + 3) ints) could
    not be allocated (dW untouched).
    """
    cdef Py_ssize_t chunk, n_chunks, G = FASTNN_SPARSE_G, n_groups = (K + G - 1) // G
    cdef int team
    cdef int *scratch
    if K <= 0 or N <= 0:
        return 0
    if M <= 0:
        memset(dW, 0, K * N * sizeof(floating))
        return 0
    scratch = <int *> malloc(n_groups * (M + 3) * sizeof(int))
    if scratch == NULL:
        return -1
    team = fastnn_team(n_threads, <double> nnz_total * N * 2.0
                       / fastnn_gemm_fma_per_ns(sizeof(floating)))
    if team <= 1:
        sparse_xtd_block(0, n_groups, M, K, N, x, idx, nnz, dz, dW, scratch)
    else:
        n_chunks = min(team, n_groups)
        for chunk in prange(n_chunks, schedule="static", num_threads=n_chunks):
            sparse_xtd_block(chunk * n_groups // n_chunks, (chunk + 1) * n_groups // n_chunks,
                             M, K, N, x, idx, nnz, dz, dW, scratch)
    fastnn_team_end()
    free(scratch)
    return 0


cdef int sparse_scratch(Py_ssize_t M, Py_ssize_t K, size_t itemsize, int **idx, void **val,
                        Py_ssize_t **nnz) noexcept nogil:
    idx[0] = <int *> malloc(max(M * K, 1) * sizeof(int))
    val[0] = malloc(max(M * K, 1) * itemsize)
    nnz[0] = <Py_ssize_t *> malloc(max(M, 1) * sizeof(Py_ssize_t))
    if idx[0] == NULL or val[0] == NULL or nnz[0] == NULL:
        free(idx[0]); free(val[0]); free(nnz[0])
        return -1
    return 0


def sparse_affine(const floating[:, ::1] x,      # IN  (M, K), mostly zeros
                  const floating[:, ::1] W,      # IN  (K, N)
                  const floating[::1] b,         # IN  (N,) or None
                  floating[:, ::1] out,          # OUT (M, N)
                  int n_threads):
    """out = x @ W + b skipping x's zeros (the dense GEMM when W is not finite).

    The whole sparse forward path (sparse_compress_rows, all_finite, sparse_affine_rows)
    in one call, for tests and benchmarks; returns True when the sparse kernel ran.
    Raises MemoryError when its scratch cannot be allocated.
    """
    cdef Py_ssize_t M = x.shape[0], K = x.shape[1], N = W.shape[1], total
    cdef int *idx = NULL
    cdef void *val = NULL
    cdef Py_ssize_t *nnz = NULL
    cdef const floating *bias = &b[0] if b is not None and b.shape[0] > 0 else NULL
    cdef bint sparse
    if M == 0 or N == 0:
        return True
    if K == 0:
        with nogil:
            gemm_strided(M, N, K, <const floating *> NULL, K, 1, <const floating *> NULL, N, 1,
                         bias, &out[0, 0], N, n_threads)
        return True
    if sparse_scratch(M, K, sizeof(floating), &idx, &val, &nnz) < 0:
        raise MemoryError("sparse_affine: no memory for the non-zeros of x %s" % ((M, K),))
    with nogil:
        sparse = all_finite(&W[0, 0], K * N, n_threads)
        if sparse:
            total = sparse_compress_rows(&x[0, 0], M, K, idx, <floating *> val, nnz, n_threads)
            sparse_affine_rows(M, K, N, idx, <const floating *> val, nnz, total, &W[0, 0],
                               bias, &out[0, 0], n_threads)
        else:
            gemm_strided(M, N, K, &x[0, 0], K, 1, &W[0, 0], N, 1, bias, &out[0, 0], N,
                         n_threads)
    free(idx); free(val); free(nnz)
    return sparse


def sparse_x_t_dz(const floating[:, ::1] x,      # IN  (M, K), mostly zeros
                  const floating[:, ::1] dz,     # IN  (M, N)
                  floating[:, ::1] dW,           # OUT (K, N)
                  int n_threads):
    """dW = x.T @ dz skipping x's zeros (the dense GEMM when dz is not finite).

    The whole sparse backward path (sparse_compress_rows, all_finite, sparse_xT_dz) in
    one call, for tests and benchmarks; returns True when the sparse kernel ran.
    Raises MemoryError when its scratch cannot be allocated.
    """
    cdef Py_ssize_t M = x.shape[0], K = x.shape[1], N = dz.shape[1], total
    cdef int *idx = NULL
    cdef void *val = NULL
    cdef Py_ssize_t *nnz = NULL
    cdef bint sparse
    cdef int status = 0
    if K == 0 or N == 0:
        return True
    if M == 0:
        memset(&dW[0, 0], 0, K * N * sizeof(floating))
        return True
    if sparse_scratch(M, K, sizeof(floating), &idx, &val, &nnz) < 0:
        raise MemoryError("sparse_x_t_dz: no memory for the non-zeros of x %s" % ((M, K),))
    with nogil:
        sparse = all_finite(&dz[0, 0], M * N, n_threads)
        if sparse:
            total = sparse_compress_rows(&x[0, 0], M, K, idx, <floating *> val, nnz, n_threads)
            status = sparse_xT_dz(M, K, N, &x[0, 0], idx, nnz, total, &dz[0, 0], &dW[0, 0],
                                  n_threads)
        else:
            gemm_strided(K, N, M, &x[0, 0], 1, K, &dz[0, 0], N, 1, <const floating *> NULL,
                         &dW[0, 0], N, n_threads)
    free(idx); free(val); free(nnz)
    if status < 0:
        raise MemoryError("sparse_x_t_dz: no memory for the row lists of x %s" % ((M, K),))
    return sparse
