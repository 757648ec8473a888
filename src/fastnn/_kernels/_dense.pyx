# Kernels for fastnn.nnfs: one call per layer step (dense forward [+ ReLU], dense backward
# with regularisation, ReLU / softmax forward and backward, categorical cross-entropy,
# the optimizers' in-place updates, regularisation sums, row argmax).
#
# Design (STYLE.md): `cdef inline ... noexcept nogil` functions handle one row (or one
# element range); the def functions own the prange and are the only layer that touches
# Python objects. Unlike the memoryview kernels of _affine/_softmax, these take plain
# ndarrays and read their data pointers: the nnfs layers are called on tiny arrays
# (300 x 3) thousands of times, where buffer acquisition and fused-type dispatch would
# cost more than the arithmetic. Each def function therefore checks its arrays itself (in C,
# a few nanoseconds) and returns None when they are not what it computes on (dtype other
# than float32/float64, dtypes that differ, byte-swapped, wrong shapes, ...); the Python
# layer (fastnn.nnfs) then casts, validates with messages naming the shapes, and calls
# again - or runs the book's own formula. Kernels never raise. Outputs are allocated here
# (fresh arrays, as the book's expressions create them), except that the big per-step
# arrays may be written into a `spare` the caller proves nobody else can see (see
# fastnn.nnfs._spare): a fresh 1.5 MB array per layer per step costs page faults.
#
# Threads: `nt` is a zero-argument callable giving the thread count (the public resolver);
# it is only called when a call has enough work to share, so tiny calls pay nothing.
# Element-wise work is split statically; reductions (losses, bias gradients, argmax)
# run each sum in one thread in a fixed order, so results never depend on the thread count.
#
# Arithmetic follows the book's NumPy expressions in the arrays' own precision (Python
# scalars rounded to the dtype, as NumPy does); sums are kept in double.

from cython.parallel cimport prange
from libc.math cimport log, sqrt, NAN
from libc.stdlib cimport calloc, free

cimport numpy as cnp
from cython cimport floating

from fastnn._kernels._cpu cimport isa_state
from fastnn._kernels._openmp cimport (threads_state, fastnn_threads_bind, fastnn_team,
                                      fastnn_team_end)
from fastnn._kernels._linear cimport gemm_strided

cnp.import_array()

cdef extern from "fastnn_cpu.h":
    void fastnn_isa_bind(const int *state) noexcept nogil
    int fastnn_isa() noexcept nogil

cdef extern from "fastnn_math.h":
    # exp over a whole block, vectorised for baseline/AVX2/AVX-512 (picked at run time)
    void fastnn_exp_inplace_d(double *y, Py_ssize_t n) noexcept nogil
    void fastnn_exp_inplace_s(float *y, Py_ssize_t n) noexcept nogil

fastnn_isa_bind(isa_state())
fastnn_threads_bind(threads_state())

cdef Py_ssize_t PAR_MIN = 1 << 19     # element-wise: below this, one thread (memory bound)
cdef Py_ssize_t GEMM_PAR_MIN = 1 << 20   # multiply-adds: below this, one thread
cdef Py_ssize_t SM_BLOCK = 256         # softmax rows per block
cdef Py_ssize_t GEMM_SMALL = 4096        # multiply-adds: below this, a plain loop
# Above PAR_MIN / GEMM_PAR_MIN, fastnn_team() sizes each region from its single-thread
# time: ns per element measured on one thread (tools/thread_grain.py, Zen 4).
cdef double RELU_NS = 0.2
cdef double RELU_BACK_NS = 0.26


cdef inline double softmax_ns(bint is_double) noexcept nogil:
    # rows of 3: max, exp, sum per row (vector ISAs / baseline)
    if fastnn_isa() == 0:
        return 6.7 if is_double else 3.3
    return 3.3 if is_double else 2.2

# ---- argument checks (C level; a failed check means "not for this kernel") ---------------

cdef int kind_of(object a) noexcept:
    """1: float64, 2: float32 (aligned, native byte order ndarray); 0 otherwise."""
    cdef cnp.ndarray arr
    cdef int t
    if not cnp.PyArray_Check(a):
        return 0
    arr = <cnp.ndarray> a
    if not cnp.PyArray_ISBEHAVED_RO(arr):
        return 0
    t = cnp.PyArray_TYPE(arr)
    if t == cnp.NPY_DOUBLE:
        return 1
    if t == cnp.NPY_FLOAT:
        return 2
    return 0


cdef int label_kind(object a) noexcept:
    """1: uint8, 2: int32, 3: int64 contiguous 1-D labels; 0 otherwise."""
    cdef cnp.ndarray arr
    if not cnp.PyArray_Check(a):
        return 0
    arr = <cnp.ndarray> a
    if not cnp.PyArray_ISBEHAVED_RO(arr) or not cnp.PyArray_IS_C_CONTIGUOUS(arr):
        return 0
    if cnp.PyArray_ISUNSIGNED(arr) and cnp.PyArray_ITEMSIZE(arr) == 1:
        return 1
    if cnp.PyArray_ISSIGNED(arr) and cnp.PyArray_ITEMSIZE(arr) == 4:
        return 2
    if cnp.PyArray_ISSIGNED(arr) and cnp.PyArray_ITEMSIZE(arr) == 8:
        return 3
    return 0


cdef inline bint c2d(cnp.ndarray a) noexcept:
    return cnp.PyArray_NDIM(a) == 2 and cnp.PyArray_IS_C_CONTIGUOUS(a)


cdef inline bint same_shape(cnp.ndarray a, cnp.ndarray b) noexcept:
    cdef int d
    if cnp.PyArray_NDIM(a) != cnp.PyArray_NDIM(b):
        return False
    for d in range(cnp.PyArray_NDIM(a)):
        if cnp.PyArray_DIM(a, d) != cnp.PyArray_DIM(b, d):
            return False
    return True


cdef inline cnp.ndarray out_like(object spare, cnp.ndarray a, int nd, cnp.npy_intp *dims):
    # `spare`: an array the caller no longer needs (see fastnn.nnfs._spare), reused when it
    # is a C-contiguous, writable, own-data array of a's dtype and this shape; else a new one.
    cdef cnp.ndarray s
    cdef int d
    if spare is not None and cnp.PyArray_Check(spare):
        s = <cnp.ndarray> spare
        if (cnp.PyArray_TYPE(s) == cnp.PyArray_TYPE(a) and cnp.PyArray_NDIM(s) == nd
                and cnp.PyArray_IS_C_CONTIGUOUS(s) and cnp.PyArray_ISWRITEABLE(s)
                and cnp.PyArray_ISBEHAVED(s) and cnp.PyArray_CHKFLAGS(s, cnp.NPY_ARRAY_OWNDATA)):
            for d in range(nd):
                if cnp.PyArray_DIM(s, d) != dims[d]:
                    break
            else:
                return s
    return cnp.PyArray_EMPTY(nd, dims, cnp.PyArray_TYPE(a), 0)


cdef inline cnp.ndarray spare2(object spare, cnp.ndarray a, Py_ssize_t r, Py_ssize_t c):
    cdef cnp.npy_intp dims[2]
    dims[0] = r
    dims[1] = c
    return out_like(spare, a, 2, dims)


cdef inline cnp.ndarray new_like2(cnp.ndarray a, Py_ssize_t r, Py_ssize_t c):
    cdef cnp.npy_intp dims[2]
    dims[0] = r
    dims[1] = c
    return cnp.PyArray_EMPTY(2, dims, cnp.PyArray_TYPE(a), 0)


cdef inline int threads_for(Py_ssize_t work, Py_ssize_t minimum, object nt):
    if work < minimum:
        return 1
    return <int> nt()


cdef Py_ssize_t SMALL_NK = 64          # weights this small: a plain loop beats packing a panel


cdef void small_gemm(Py_ssize_t M, Py_ssize_t N, Py_ssize_t K,
                     const floating *x, Py_ssize_t rsx, Py_ssize_t csx,
                     const floating *W, Py_ssize_t rsw, Py_ssize_t csw,
                     const floating *b, floating *out) noexcept nogil:
    # out[i, j] = sum_k x[i, k] * W[k, j] (k in order), then + b[j]: the order gemm_strided uses
    cdef Py_ssize_t i, j, kk
    cdef floating acc
    for i in range(M):
        for j in range(N):
            acc = 0
            for kk in range(K):
                acc = acc + x[i * rsx + kk * csx] * W[kk * rsw + j * csw]
            out[i * N + j] = acc + b[j] if b != NULL else acc


# ---- dense layer ----------------------------------------------------------------------

cdef void dense_forward_k(Py_ssize_t M, Py_ssize_t N, Py_ssize_t K,
                          const floating *x, Py_ssize_t rsx, Py_ssize_t csx,
                          const floating *W, Py_ssize_t rsw, Py_ssize_t csw,
                          const floating *b, floating *out, floating *relu_out,
                          int n_threads) noexcept nogil:
    cdef Py_ssize_t i
    cdef floating v
    # output = inputs @ weights + biases
    if N * K <= SMALL_NK:
        small_gemm(M, N, K, x, rsx, csx, W, rsw, csw, b, out)
    else:
        gemm_strided(M, N, K, x, rsx, csx, W, rsw, csw, b, out, N, n_threads)
    if relu_out != NULL:
        if M * N < PAR_MIN:
            n_threads = 1
        relu_k(out, relu_out, M * N, n_threads)


def dense_forward(object x, object W, object b, bint relu, object nt,
                  object spare=None, object spare_relu=None):
    """output = x @ W + b (and max(0, output) when `relu`).

    x (M, K) any strides, W (K, N) any strides, b (1, N) with unit column stride; all of
    one float dtype. Returns output, or (output, relu_output), or None (not for this kernel).
    """
    cdef int k = kind_of(x)
    if k == 0 or kind_of(W) != k or kind_of(b) != k:
        return None
    cdef cnp.ndarray ax = <cnp.ndarray> x, aw = <cnp.ndarray> W, ab = <cnp.ndarray> b
    if cnp.PyArray_NDIM(ax) != 2 or cnp.PyArray_NDIM(aw) != 2 or cnp.PyArray_NDIM(ab) != 2:
        return None
    cdef Py_ssize_t M = cnp.PyArray_DIM(ax, 0), K = cnp.PyArray_DIM(ax, 1)
    cdef Py_ssize_t N = cnp.PyArray_DIM(aw, 1)
    if cnp.PyArray_DIM(aw, 0) != K or cnp.PyArray_DIM(ab, 0) != 1 or cnp.PyArray_DIM(ab, 1) != N:
        return None
    if M == 0 or N == 0 or K == 0:
        return None
    cdef Py_ssize_t isz = cnp.PyArray_ITEMSIZE(ax)
    if N > 1 and cnp.PyArray_STRIDE(ab, 1) != isz:
        return None
    cdef Py_ssize_t rsx = cnp.PyArray_STRIDE(ax, 0) // isz, csx = cnp.PyArray_STRIDE(ax, 1) // isz
    cdef Py_ssize_t rsw = cnp.PyArray_STRIDE(aw, 0) // isz, csw = cnp.PyArray_STRIDE(aw, 1) // isz
    cdef cnp.ndarray out = spare2(spare, ax, M, N)
    cdef cnp.ndarray rout = spare2(spare_relu, ax, M, N) if relu else None
    cdef int n_threads = threads_for(M * N * K, GEMM_PAR_MIN, nt)
    with nogil:
        if k == 1:
            dense_forward_k(M, N, K, <double *> cnp.PyArray_DATA(ax), rsx, csx,
                                    <double *> cnp.PyArray_DATA(aw), rsw, csw,
                                    <double *> cnp.PyArray_DATA(ab), <double *> cnp.PyArray_DATA(out),
                                    <double *> cnp.PyArray_DATA(rout) if relu else NULL, n_threads)
        else:
            dense_forward_k(M, N, K, <float *> cnp.PyArray_DATA(ax), rsx, csx,
                                   <float *> cnp.PyArray_DATA(aw), rsw, csw,
                                   <float *> cnp.PyArray_DATA(ab), <float *> cnp.PyArray_DATA(out),
                                   <float *> cnp.PyArray_DATA(rout) if relu else NULL, n_threads)
    if relu:
        return out, rout
    return out


cdef inline floating l1_term(floating w, floating l1) noexcept nogil:
    # dL1 = ones_like(w); dL1[w < 0] = -1; l1 * dL1
    return -l1 if w < 0 else l1


cdef void dense_backward_k(Py_ssize_t M, Py_ssize_t N, Py_ssize_t K,
                           const floating *x, Py_ssize_t rsx, Py_ssize_t csx,
                           const floating *dv, Py_ssize_t rsd, Py_ssize_t csd,
                           const floating *W, Py_ssize_t rsw, Py_ssize_t csw,
                           const floating *b, Py_ssize_t csb,
                           double wl1, double wl2, double bl1, double bl2,
                           floating *dW, floating *db, floating *dX,
                           int n_threads) noexcept nogil:
    cdef Py_ssize_t i, j, r, c
    cdef double s
    cdef floating fwl1 = <floating> wl1, fwl2 = <floating> (2 * wl2)
    cdef floating fbl1 = <floating> bl1, fbl2 = <floating> (2 * bl2)
    cdef floating w
    # dweights = inputs.T @ dvalues : (K, M) @ (M, N), inputs.T read through strides
    if M * N * K < GEMM_SMALL:
        small_gemm(K, N, M, x, csx, rsx, dv, rsd, csd, <floating *> NULL, dW)
    else:
        gemm_strided(K, N, M, x, csx, rsx, dv, rsd, csd, NULL, dW, N, n_threads)
    # dbiases = sum(dvalues, axis=0, keepdims=True), each column summed in row order
    # (row by row into a double accumulator per column: same order, one pass over dvalues)
    cdef double *acc = <double *> calloc(N, sizeof(double))
    if acc != NULL:
        for i in range(M):
            for j in range(N):
                acc[j] += dv[i * rsd + j * csd]
        for j in range(N):
            db[j] = <floating> acc[j]
        free(acc)
    else:
        for j in range(N):
            s = 0.0
            for i in range(M):
                s = s + dv[i * rsd + j * csd]
            db[j] = <floating> s
    # regularisation gradients, in the book's order and the arrays' precision
    if wl1 > 0 or wl2 > 0:
        for r in range(K):
            for c in range(N):
                w = W[r * rsw + c * csw]
                if wl1 > 0:
                    dW[r * N + c] = dW[r * N + c] + l1_term(w, fwl1)
                if wl2 > 0:
                    dW[r * N + c] = dW[r * N + c] + fwl2 * w   # += 2 * l2 * weights
    if bl1 > 0 or bl2 > 0:
        for c in range(N):
            w = b[c * csb]
            if bl1 > 0:
                db[c] = db[c] + l1_term(w, fbl1)
            if bl2 > 0:
                db[c] = db[c] + fbl2 * w
    # dinputs = dvalues @ weights.T : (M, N) @ (N, K), weights.T read through strides
    if N * K <= SMALL_NK:
        small_gemm(M, K, N, dv, rsd, csd, W, csw, rsw, <floating *> NULL, dX)
    else:
        gemm_strided(M, K, N, dv, rsd, csd, W, csw, rsw, NULL, dX, K, n_threads)


def dense_backward(object x, object dv, object W, object b,
                   double wl1, double wl2, double bl1, double bl2, object nt,
                   object spare_dW=None, object spare_db=None, object spare_dX=None):
    """(dweights, dbiases, dinputs) of a dense layer, regularisation included, or None.

    x (M, K) the layer's inputs, dv (M, N), W (K, N), b (1, N); any strides; one float dtype.
    """
    cdef int k = kind_of(x)
    if k == 0 or kind_of(dv) != k or kind_of(W) != k or kind_of(b) != k:
        return None
    cdef cnp.ndarray ax = <cnp.ndarray> x, ad = <cnp.ndarray> dv, aw = <cnp.ndarray> W, ab = <cnp.ndarray> b
    if (cnp.PyArray_NDIM(ax) != 2 or cnp.PyArray_NDIM(ad) != 2 or cnp.PyArray_NDIM(aw) != 2
            or cnp.PyArray_NDIM(ab) != 2):
        return None
    cdef Py_ssize_t M = cnp.PyArray_DIM(ax, 0), K = cnp.PyArray_DIM(ax, 1), N = cnp.PyArray_DIM(aw, 1)
    if (cnp.PyArray_DIM(aw, 0) != K or cnp.PyArray_DIM(ad, 0) != M or cnp.PyArray_DIM(ad, 1) != N
            or cnp.PyArray_DIM(ab, 0) != 1 or cnp.PyArray_DIM(ab, 1) != N):
        return None
    if M == 0 or N == 0 or K == 0:
        return None
    cdef Py_ssize_t isz = cnp.PyArray_ITEMSIZE(ax)
    cdef Py_ssize_t rsx = cnp.PyArray_STRIDE(ax, 0) // isz, csx = cnp.PyArray_STRIDE(ax, 1) // isz
    cdef Py_ssize_t rsd = cnp.PyArray_STRIDE(ad, 0) // isz, csd = cnp.PyArray_STRIDE(ad, 1) // isz
    cdef Py_ssize_t rsw = cnp.PyArray_STRIDE(aw, 0) // isz, csw = cnp.PyArray_STRIDE(aw, 1) // isz
    cdef Py_ssize_t csb = cnp.PyArray_STRIDE(ab, 1) // isz
    cdef cnp.ndarray dW = spare2(spare_dW, ax, K, N)
    cdef cnp.ndarray db = spare2(spare_db, ax, 1, N)
    cdef cnp.ndarray dX = spare2(spare_dX, ax, M, K)
    cdef int n_threads = threads_for(M * N * K, GEMM_PAR_MIN, nt)
    with nogil:
        if k == 1:
            dense_backward_k(M, N, K, <double *> cnp.PyArray_DATA(ax), rsx, csx,
                                     <double *> cnp.PyArray_DATA(ad), rsd, csd,
                                     <double *> cnp.PyArray_DATA(aw), rsw, csw,
                                     <double *> cnp.PyArray_DATA(ab), csb, wl1, wl2, bl1, bl2,
                                     <double *> cnp.PyArray_DATA(dW), <double *> cnp.PyArray_DATA(db),
                                     <double *> cnp.PyArray_DATA(dX), n_threads)
        else:
            dense_backward_k(M, N, K, <float *> cnp.PyArray_DATA(ax), rsx, csx,
                                    <float *> cnp.PyArray_DATA(ad), rsd, csd,
                                    <float *> cnp.PyArray_DATA(aw), rsw, csw,
                                    <float *> cnp.PyArray_DATA(ab), csb, wl1, wl2, bl1, bl2,
                                    <float *> cnp.PyArray_DATA(dW), <float *> cnp.PyArray_DATA(db),
                                    <float *> cnp.PyArray_DATA(dX), n_threads)
    return dW, db, dX


# ---- ReLU -------------------------------------------------------------------------------

cdef inline void relu_range(const floating *x, floating *y, Py_ssize_t i0, Py_ssize_t i1) noexcept nogil:
    cdef Py_ssize_t i
    cdef floating v
    for i in range(i0, i1):
        v = x[i]
        y[i] = v if not (v <= 0) else 0        # np.maximum(0, x): NaN propagates (branch-free)


cdef inline void relu_back_range(const floating *x, const floating *dv, floating *out,
                                 Py_ssize_t i0, Py_ssize_t i1) noexcept nogil:
    cdef Py_ssize_t i
    cdef floating d
    for i in range(i0, i1):
        d = dv[i]                              # loaded unconditionally: the select is branch-free
        out[i] = 0 if x[i] <= 0 else d         # dinputs = dvalues; dinputs[inputs <= 0] = 0


cdef void relu_k(const floating *x, floating *y, Py_ssize_t n, int n_threads) noexcept nogil:
    # one thread: no parallel region at all (entering one costs more than a small array)
    cdef Py_ssize_t c, chunk
    n_threads = fastnn_team(n_threads, n * RELU_NS)
    chunk = (n + n_threads - 1) // n_threads
    if n_threads <= 1:
        relu_range(x, y, 0, n)
    else:
        for c in prange(n_threads, schedule="static", num_threads=n_threads):
            relu_range(x, y, c * chunk, min(n, (c + 1) * chunk))
    fastnn_team_end()


cdef void relu_back_k(const floating *x, const floating *dv, floating *out, Py_ssize_t n,
                      int n_threads) noexcept nogil:
    cdef Py_ssize_t c, chunk
    n_threads = fastnn_team(n_threads, n * RELU_BACK_NS)
    chunk = (n + n_threads - 1) // n_threads
    if n_threads <= 1:
        relu_back_range(x, dv, out, 0, n)
    else:
        for c in prange(n_threads, schedule="static", num_threads=n_threads):
            relu_back_range(x, dv, out, c * chunk, min(n, (c + 1) * chunk))
    fastnn_team_end()


def relu_forward(object x, object nt, object spare=None):
    """max(0, x) for a C-contiguous float array of any shape, or None."""
    cdef int k = kind_of(x)
    if k == 0:
        return None
    cdef cnp.ndarray ax = <cnp.ndarray> x
    if not cnp.PyArray_IS_C_CONTIGUOUS(ax):
        return None
    cdef Py_ssize_t n = cnp.PyArray_SIZE(ax)
    cdef cnp.ndarray out = out_like(spare, ax, cnp.PyArray_NDIM(ax), cnp.PyArray_DIMS(ax))
    cdef int n_threads = threads_for(n, PAR_MIN, nt)
    with nogil:
        if k == 1:
            relu_k(<double *> cnp.PyArray_DATA(ax), <double *> cnp.PyArray_DATA(out), n, n_threads)
        else:
            relu_k(<float *> cnp.PyArray_DATA(ax), <float *> cnp.PyArray_DATA(out), n, n_threads)
    return out


def relu_backward(object x, object dv, object nt, object spare=None):
    """dvalues with zeros where inputs <= 0; x and dv C-contiguous, same shape and dtype."""
    cdef int k = kind_of(dv)
    if k == 0 or kind_of(x) != k:
        return None
    cdef cnp.ndarray ax = <cnp.ndarray> x, ad = <cnp.ndarray> dv
    if not cnp.PyArray_IS_C_CONTIGUOUS(ax) or not cnp.PyArray_IS_C_CONTIGUOUS(ad) or not same_shape(ax, ad):
        return None
    cdef Py_ssize_t n = cnp.PyArray_SIZE(ax)
    cdef cnp.ndarray out = out_like(spare, ad, cnp.PyArray_NDIM(ad), cnp.PyArray_DIMS(ad))
    cdef int n_threads = threads_for(n, PAR_MIN, nt)
    with nogil:
        if k == 1:
            relu_back_k(<double *> cnp.PyArray_DATA(ax), <double *> cnp.PyArray_DATA(ad),
                                <double *> cnp.PyArray_DATA(out), n, n_threads)
        else:
            relu_back_k(<float *> cnp.PyArray_DATA(ax), <float *> cnp.PyArray_DATA(ad),
                               <float *> cnp.PyArray_DATA(out), n, n_threads)
    return out


# ---- softmax ----------------------------------------------------------------------------

cdef inline void softmax_rows(const floating *x, floating *y, Py_ssize_t rows,
                              Py_ssize_t n) noexcept nogil:
    # exp_values = exp(inputs - max(inputs, axis=1)); probabilities = exp_values / sum(exp_values)
    # Three passes over a block of rows, so the exp loop runs over rows * n elements and
    # vectorises even when rows are short (3 classes).
    cdef floating m, v
    cdef int has_nan
    cdef double s
    cdef Py_ssize_t i, j
    for i in range(rows):
        m = x[i * n]
        has_nan = m != m
        for j in range(1, n):
            v = x[i * n + j]
            m = v if v > m else m                   # branch-free running max
            has_nan = has_nan | (v != v)
        if has_nan:
            m = <floating> NAN                      # np.max: NaN wins
        for j in range(n):
            y[i * n + j] = x[i * n + j] - m            # x - max in the input's precision
    if floating is double:
        fastnn_exp_inplace_d(y, rows * n)
    else:
        fastnn_exp_inplace_s(y, rows * n)
    for i in range(rows):
        s = 0.0
        for j in range(n):
            s += y[i * n + j]
        for j in range(n):
            y[i * n + j] = y[i * n + j] / <floating> s


cdef inline void softmax_back_row(const floating *y, const floating *dv, floating *out,
                                  Py_ssize_t n) noexcept nogil:
    # jacobian = diagflat(y) - y y^T;  dinputs = jacobian @ dvalues = y * dv - y * (y . dv)
    cdef double s = 0.0
    cdef Py_ssize_t j
    for j in range(n):
        s += <double> y[j] * <double> dv[j]
    for j in range(n):
        out[j] = <floating> (<double> y[j] * <double> dv[j] - <double> y[j] * s)


def softmax_forward(object x, object nt):
    cdef int k = kind_of(x)
    if k == 0:
        return None
    cdef cnp.ndarray ax = <cnp.ndarray> x
    if not c2d(ax) or cnp.PyArray_DIM(ax, 1) == 0:
        return None
    cdef Py_ssize_t i, rows = cnp.PyArray_DIM(ax, 0), n = cnp.PyArray_DIM(ax, 1)
    cdef cnp.ndarray out = new_like2(ax, rows, n)
    cdef Py_ssize_t n_blocks = (rows + SM_BLOCK - 1) // SM_BLOCK, blk, r0, r1
    cdef int n_threads = threads_for(rows * n, PAR_MIN, nt)
    cdef void *xp = cnp.PyArray_DATA(ax)
    cdef void *yp = cnp.PyArray_DATA(out)
    with nogil:
        n_threads = fastnn_team(n_threads, rows * n * softmax_ns(k == 1))
        if n_threads == 1:
            if k == 1:
                softmax_rows(<double *> xp, <double *> yp, rows, n)
            else:
                softmax_rows(<float *> xp, <float *> yp, rows, n)
        else:
            for blk in prange(n_blocks, schedule="static", num_threads=n_threads):
                r0 = blk * SM_BLOCK
                r1 = min(r0 + SM_BLOCK, rows)
                if k == 1:
                    softmax_rows(<double *> xp + r0 * n, <double *> yp + r0 * n, r1 - r0, n)
                else:
                    softmax_rows(<float *> xp + r0 * n, <float *> yp + r0 * n, r1 - r0, n)
        fastnn_team_end()
    return out


def softmax_backward(object y, object dv, object nt):
    cdef int k = kind_of(dv)
    if k == 0 or kind_of(y) != k:
        return None
    cdef cnp.ndarray ay = <cnp.ndarray> y, ad = <cnp.ndarray> dv
    if not c2d(ay) or not c2d(ad) or not same_shape(ay, ad) or cnp.PyArray_DIM(ad, 1) == 0:
        return None
    cdef Py_ssize_t i, rows = cnp.PyArray_DIM(ad, 0), n = cnp.PyArray_DIM(ad, 1)
    cdef cnp.ndarray out = new_like2(ad, rows, n)
    cdef int n_threads = threads_for(rows * n, PAR_MIN, nt)
    n_threads = fastnn_team(n_threads, rows * n * (0.76 if k == 1 else 1.2))  # ns per element
    if k == 1:
        with nogil:
            for i in prange(rows, schedule="static", num_threads=n_threads):
                softmax_back_row(<double *> cnp.PyArray_DATA(ay) + i * n, <double *> cnp.PyArray_DATA(ad) + i * n,
                                 <double *> cnp.PyArray_DATA(out) + i * n, n)
    else:
        with nogil:
            for i in prange(rows, schedule="static", num_threads=n_threads):
                softmax_back_row(<float *> cnp.PyArray_DATA(ay) + i * n, <float *> cnp.PyArray_DATA(ad) + i * n,
                                 <float *> cnp.PyArray_DATA(out) + i * n, n)
    fastnn_team_end()
    return out


# ---- categorical cross-entropy ----------------------------------------------------------

ctypedef long long i64

ctypedef fused label_t:
    unsigned char
    int
    i64


cdef inline floating clip(floating v) noexcept nogil:
    # np.clip(v, 1e-7, 1 - 1e-7), bounds rounded to v's precision; NaN passes through
    cdef floating lo = <floating> 1e-7, hi = <floating> (1 - 1e-7)
    if v < lo:
        return lo
    if v > hi:
        return hi
    return v


cdef inline floating neg_log(floating v) noexcept nogil:
    return <floating> (-log(<double> v))


cdef Py_ssize_t cce_labels_k(const floating *y, Py_ssize_t rows, Py_ssize_t n,
                             const label_t *t, floating *losses, double *total) noexcept nogil:
    # -log(clip(y_pred)[range(samples), y_true]); returns the number of bad labels
    cdef Py_ssize_t i, bad = 0
    cdef long long lab
    cdef double s = 0.0
    for i in range(rows):
        lab = <long long> t[i]
        if lab < 0 or lab >= n:
            bad += 1
            losses[i] = 0
            continue
        losses[i] = neg_log(clip(y[i * n + lab]))
        s += losses[i]
    total[0] = s
    return bad


cdef void cce_onehot_k(const floating *y, Py_ssize_t rows, Py_ssize_t n,
                       const floating *t, floating *losses, double *total) noexcept nogil:
    # -log(sum(clip(y_pred) * y_true, axis=1))
    cdef Py_ssize_t i, j
    cdef floating c
    cdef double s = 0.0
    for i in range(rows):
        c = 0
        for j in range(n):
            c = c + clip(y[i * n + j]) * t[i * n + j]
        losses[i] = neg_log(c)
        s += losses[i]
    total[0] = s


cdef object BAD = -1


def cce_forward(object y, object t):
    """(sample_losses, total) of the categorical cross-entropy; -1 for bad labels; or None.

    y (rows, n) C-contiguous; t (rows,) uint8/int32/int64 labels, or (rows, n) one-hot of
    y's dtype.
    """
    cdef int k = kind_of(y)
    if k == 0:
        return None
    cdef cnp.ndarray ay = <cnp.ndarray> y, at
    if not c2d(ay) or cnp.PyArray_DIM(ay, 1) == 0:
        return None
    cdef Py_ssize_t rows = cnp.PyArray_DIM(ay, 0), n = cnp.PyArray_DIM(ay, 1), bad = 0
    cdef double total = 0.0
    cdef cnp.npy_intp dims[1]
    dims[0] = rows
    cdef cnp.ndarray losses
    cdef int lk = label_kind(t)
    if lk != 0:
        at = <cnp.ndarray> t
        if cnp.PyArray_NDIM(at) != 1 or cnp.PyArray_DIM(at, 0) != rows:
            return None
        losses = cnp.PyArray_EMPTY(1, dims, cnp.PyArray_TYPE(ay), 0)
        with nogil:
            if k == 1:
                if lk == 1:
                    bad = cce_labels_k(<double *> cnp.PyArray_DATA(ay), rows, n, <unsigned char *> cnp.PyArray_DATA(at), <double *> cnp.PyArray_DATA(losses), &total)
                elif lk == 2:
                    bad = cce_labels_k(<double *> cnp.PyArray_DATA(ay), rows, n, <int *> cnp.PyArray_DATA(at), <double *> cnp.PyArray_DATA(losses), &total)
                else:
                    bad = cce_labels_k(<double *> cnp.PyArray_DATA(ay), rows, n, <i64 *> cnp.PyArray_DATA(at), <double *> cnp.PyArray_DATA(losses), &total)
            else:
                if lk == 1:
                    bad = cce_labels_k(<float *> cnp.PyArray_DATA(ay), rows, n, <unsigned char *> cnp.PyArray_DATA(at), <float *> cnp.PyArray_DATA(losses), &total)
                elif lk == 2:
                    bad = cce_labels_k(<float *> cnp.PyArray_DATA(ay), rows, n, <int *> cnp.PyArray_DATA(at), <float *> cnp.PyArray_DATA(losses), &total)
                else:
                    bad = cce_labels_k(<float *> cnp.PyArray_DATA(ay), rows, n, <i64 *> cnp.PyArray_DATA(at), <float *> cnp.PyArray_DATA(losses), &total)
        if bad:
            return BAD
        return losses, total
    if kind_of(t) != k:
        return None
    at = <cnp.ndarray> t
    if not c2d(at) or not same_shape(ay, at):
        return None
    losses = cnp.PyArray_EMPTY(1, dims, cnp.PyArray_TYPE(ay), 0)
    with nogil:
        if k == 1:
            cce_onehot_k(<double *> cnp.PyArray_DATA(ay), rows, n, <double *> cnp.PyArray_DATA(at), <double *> cnp.PyArray_DATA(losses), &total)
        else:
            cce_onehot_k(<float *> cnp.PyArray_DATA(ay), rows, n, <float *> cnp.PyArray_DATA(at), <float *> cnp.PyArray_DATA(losses), &total)
    return losses, total


cdef Py_ssize_t softmax_cce_back_k(const floating *dv, Py_ssize_t rows, Py_ssize_t n,
                                   const label_t *t, floating *out) noexcept nogil:
    # dinputs = dvalues.copy(); dinputs[range(samples), y_true] -= 1; dinputs /= samples
    cdef Py_ssize_t i, j, bad = 0
    cdef long long lab
    cdef floating samples = <floating> rows
    for i in range(rows):
        lab = <long long> t[i]
        if lab < 0 or lab >= n:
            bad += 1
            lab = -1
        for j in range(n):
            if j == lab:
                out[i * n + j] = (dv[i * n + j] - 1) / samples
            else:
                out[i * n + j] = dv[i * n + j] / samples
    return bad


def softmax_cce_backward(object dv, object t):
    """Gradient of softmax + categorical cross-entropy on the softmax output, or None / -1."""
    cdef int k = kind_of(dv)
    cdef int lk = label_kind(t)
    if k == 0 or lk == 0:
        return None
    cdef cnp.ndarray ad = <cnp.ndarray> dv, at = <cnp.ndarray> t
    if not c2d(ad) or cnp.PyArray_NDIM(at) != 1 or cnp.PyArray_DIM(at, 0) != cnp.PyArray_DIM(ad, 0):
        return None
    cdef Py_ssize_t rows = cnp.PyArray_DIM(ad, 0), n = cnp.PyArray_DIM(ad, 1), bad = 0
    cdef cnp.ndarray out = new_like2(ad, rows, n)
    with nogil:
        if k == 1:
            if lk == 1:
                bad = softmax_cce_back_k(<double *> cnp.PyArray_DATA(ad), rows, n, <unsigned char *> cnp.PyArray_DATA(at), <double *> cnp.PyArray_DATA(out))
            elif lk == 2:
                bad = softmax_cce_back_k(<double *> cnp.PyArray_DATA(ad), rows, n, <int *> cnp.PyArray_DATA(at), <double *> cnp.PyArray_DATA(out))
            else:
                bad = softmax_cce_back_k(<double *> cnp.PyArray_DATA(ad), rows, n, <i64 *> cnp.PyArray_DATA(at), <double *> cnp.PyArray_DATA(out))
        else:
            if lk == 1:
                bad = softmax_cce_back_k(<float *> cnp.PyArray_DATA(ad), rows, n, <unsigned char *> cnp.PyArray_DATA(at), <float *> cnp.PyArray_DATA(out))
            elif lk == 2:
                bad = softmax_cce_back_k(<float *> cnp.PyArray_DATA(ad), rows, n, <int *> cnp.PyArray_DATA(at), <float *> cnp.PyArray_DATA(out))
            else:
                bad = softmax_cce_back_k(<float *> cnp.PyArray_DATA(ad), rows, n, <i64 *> cnp.PyArray_DATA(at), <float *> cnp.PyArray_DATA(out))
    if bad:
        return BAD
    return out


cdef void cce_back_k(const floating *dv, Py_ssize_t rows, Py_ssize_t n, const floating *t,
                     floating *out) noexcept nogil:
    # dinputs = -y_true / dvalues / samples  (y_true one-hot)
    cdef Py_ssize_t i
    cdef floating samples = <floating> rows
    for i in range(rows * n):
        out[i] = ((-t[i]) / dv[i]) / samples


def cce_backward_onehot(object dv, object t):
    """-t / dv / samples for one-hot t of dv's dtype and shape (C-contiguous), or None."""
    cdef int k = kind_of(dv)
    if k == 0 or kind_of(t) != k:
        return None
    cdef cnp.ndarray ad = <cnp.ndarray> dv, at = <cnp.ndarray> t
    if not c2d(ad) or not c2d(at) or not same_shape(ad, at):
        return None
    cdef Py_ssize_t rows = cnp.PyArray_DIM(ad, 0), n = cnp.PyArray_DIM(ad, 1)
    cdef cnp.ndarray out = new_like2(ad, rows, n)
    with nogil:
        if k == 1:
            cce_back_k(<double *> cnp.PyArray_DATA(ad), rows, n, <double *> cnp.PyArray_DATA(at), <double *> cnp.PyArray_DATA(out))
        else:
            cce_back_k(<float *> cnp.PyArray_DATA(ad), rows, n, <float *> cnp.PyArray_DATA(at), <float *> cnp.PyArray_DATA(out))
    return out


# ---- row argmax (Activation_Softmax.predictions) ------------------------------------------

cdef inline Py_ssize_t argmax_row(const floating *x, Py_ssize_t n) noexcept nogil:
    # np.argmax: first maximum; the first NaN wins
    cdef Py_ssize_t j, best = 0
    cdef floating m = x[0]
    if m != m:
        return 0
    for j in range(1, n):
        if x[j] != x[j]:
            return j
        if x[j] > m:
            m = x[j]
            best = j
    return best


def argmax_rows(object x):
    """np.argmax(x, axis=1) (intp) for a C-contiguous 2-D float array, or None."""
    cdef int k = kind_of(x)
    if k == 0:
        return None
    cdef cnp.ndarray ax = <cnp.ndarray> x
    if not c2d(ax) or cnp.PyArray_DIM(ax, 1) == 0:
        return None
    cdef Py_ssize_t i, rows = cnp.PyArray_DIM(ax, 0), n = cnp.PyArray_DIM(ax, 1)
    cdef cnp.npy_intp dims[1]
    dims[0] = rows
    cdef cnp.ndarray out = cnp.PyArray_EMPTY(1, dims, cnp.NPY_INTP, 0)
    cdef Py_ssize_t *o = <Py_ssize_t *> cnp.PyArray_DATA(out)
    with nogil:
        if k == 1:
            for i in range(rows):
                o[i] = argmax_row(<double *> cnp.PyArray_DATA(ax) + i * n, n)
        else:
            for i in range(rows):
                o[i] = argmax_row(<float *> cnp.PyArray_DATA(ax) + i * n, n)
    return out


# ---- regularisation sums ------------------------------------------------------------------

cdef void abs_sq_k(const floating *w, Py_ssize_t n, double *sa, double *sq) noexcept nogil:
    cdef Py_ssize_t i
    cdef double a = 0.0, q = 0.0, v
    for i in range(n):
        v = <double> w[i]
        a += v if v >= 0 else -v
        q += v * v
    sa[0] = a
    sq[0] = q


def abs_sq_sums(object w):
    """(sum(|w|), sum(w * w)) in double for a C-contiguous float array, or None."""
    cdef int k = kind_of(w)
    if k == 0:
        return None
    cdef cnp.ndarray aw = <cnp.ndarray> w
    if not cnp.PyArray_IS_C_CONTIGUOUS(aw):
        return None
    cdef double sa = 0.0, sq = 0.0
    cdef Py_ssize_t n = cnp.PyArray_SIZE(aw)
    with nogil:
        if k == 1:
            abs_sq_k(<double *> cnp.PyArray_DATA(aw), n, &sa, &sq)
        else:
            abs_sq_k(<float *> cnp.PyArray_DATA(aw), n, &sa, &sq)
    return sa, sq


# ---- optimizers: in-place updates of (weights, biases) and their state on the layer ------
# Every array of one call must be C-contiguous, writable where written, of one dtype, and
# each state / gradient array the size of its parameter; `opt_arrays_ok` checks that.

cdef bint opt_arrays_ok(int k, tuple arrays, Py_ssize_t n_params) noexcept:
    # arrays = (P, dP, S1, S2, ...) for each of the two parameters, grouped by parameter
    cdef Py_ssize_t i, per = len(arrays) // 2, size = 0
    cdef cnp.ndarray a
    for i in range(len(arrays)):
        if kind_of(arrays[i]) != k:
            return False
        a = <cnp.ndarray> arrays[i]
        if not cnp.PyArray_IS_C_CONTIGUOUS(a):
            return False
        if i % per != 1 and not cnp.PyArray_ISWRITEABLE(a):
            return False
        if i % per == 0:
            size = cnp.PyArray_SIZE(a)
        elif cnp.PyArray_SIZE(a) != size:
            return False
    return True


cdef inline void *dp(object a) noexcept:
    return cnp.PyArray_DATA(<cnp.ndarray> a)


cdef inline Py_ssize_t sz(object a) noexcept:
    return cnp.PyArray_SIZE(<cnp.ndarray> a)


cdef void sgd_k(floating *w, const floating *dw, Py_ssize_t n, double lr) noexcept nogil:
    cdef Py_ssize_t i
    cdef floating neg_lr = <floating> (-lr)
    for i in range(n):
        w[i] = w[i] + neg_lr * dw[i]          # weights += -lr * dweights


cdef void sgd_momentum_k(floating *w, const floating *dw, floating *m, Py_ssize_t n,
                         double lr, double momentum) noexcept nogil:
    cdef Py_ssize_t i
    cdef floating flr = <floating> lr, fmom = <floating> momentum, u
    for i in range(n):
        u = fmom * m[i] - flr * dw[i]         # updates = momentum * momentums - lr * dweights
        m[i] = u
        w[i] = w[i] + u


cdef void adagrad_k(floating *w, const floating *dw, floating *c, Py_ssize_t n,
                    double lr, double eps) noexcept nogil:
    cdef Py_ssize_t i
    cdef floating neg_lr = <floating> (-lr), feps = <floating> eps
    for i in range(n):
        c[i] = c[i] + dw[i] * dw[i]           # cache += dweights ** 2
        # weights += -lr * dweights / (sqrt(cache) + epsilon)
        w[i] = w[i] + (neg_lr * dw[i]) / (<floating> sqrt(c[i]) + feps)


cdef void rmsprop_k(floating *w, const floating *dw, floating *c, Py_ssize_t n,
                    double lr, double eps, double rho) noexcept nogil:
    cdef Py_ssize_t i
    cdef floating neg_lr = <floating> (-lr), feps = <floating> eps
    cdef floating frho = <floating> rho, f1rho = <floating> (1 - rho)
    for i in range(n):
        c[i] = frho * c[i] + f1rho * (dw[i] * dw[i])   # cache = rho * cache + (1 - rho) * dw ** 2
        w[i] = w[i] + (neg_lr * dw[i]) / (<floating> sqrt(c[i]) + feps)


cdef void adam_k(floating *w, const floating *dw, floating *m, floating *c, Py_ssize_t n,
                 double lr, double eps, double b1, double b2, double corr1,
                 double corr2) noexcept nogil:
    cdef Py_ssize_t i
    cdef floating neg_lr = <floating> (-lr), feps = <floating> eps
    cdef floating fb1 = <floating> b1, f1b1 = <floating> (1 - b1)
    cdef floating fb2 = <floating> b2, f1b2 = <floating> (1 - b2)
    cdef floating fc1 = <floating> corr1, fc2 = <floating> corr2, mc, cc
    for i in range(n):
        m[i] = fb1 * m[i] + f1b1 * dw[i]              # m = beta_1 * m + (1 - beta_1) * dw
        mc = m[i] / fc1                               # m / (1 - beta_1 ** (iterations + 1))
        c[i] = fb2 * c[i] + f1b2 * (dw[i] * dw[i])    # c = beta_2 * c + (1 - beta_2) * dw ** 2
        cc = c[i] / fc2                               # c / (1 - beta_2 ** (iterations + 1))
        w[i] = w[i] + (neg_lr * mc) / (<floating> sqrt(cc) + feps)


def sgd_update(tuple arrays, double lr):
    """arrays = (W, dW, b, db); True when updated in place, False when not for this kernel."""
    cdef int k = kind_of(arrays[0])
    if k == 0 or not opt_arrays_ok(k, arrays, 2):
        return False
    cdef object W = arrays[0], dW = arrays[1], b = arrays[2], db = arrays[3]
    if k == 1:
        sgd_k(<double *> dp(W), <double *> dp(dW), sz(W), lr)
        sgd_k(<double *> dp(b), <double *> dp(db), sz(b), lr)
    else:
        sgd_k(<float *> dp(W), <float *> dp(dW), sz(W), lr)
        sgd_k(<float *> dp(b), <float *> dp(db), sz(b), lr)
    return True


def sgd_momentum_update(tuple arrays, double lr, double momentum):
    """arrays = (W, dW, mW, b, db, mb)."""
    cdef int k = kind_of(arrays[0])
    if k == 0 or not opt_arrays_ok(k, arrays, 2):
        return False
    cdef object W = arrays[0], dW = arrays[1], mW = arrays[2], b = arrays[3], db = arrays[4], mb = arrays[5]
    if k == 1:
        sgd_momentum_k(<double *> dp(W), <double *> dp(dW), <double *> dp(mW), sz(W), lr, momentum)
        sgd_momentum_k(<double *> dp(b), <double *> dp(db), <double *> dp(mb), sz(b), lr, momentum)
    else:
        sgd_momentum_k(<float *> dp(W), <float *> dp(dW), <float *> dp(mW), sz(W), lr, momentum)
        sgd_momentum_k(<float *> dp(b), <float *> dp(db), <float *> dp(mb), sz(b), lr, momentum)
    return True


def adagrad_update(tuple arrays, double lr, double eps):
    """arrays = (W, dW, cW, b, db, cb)."""
    cdef int k = kind_of(arrays[0])
    if k == 0 or not opt_arrays_ok(k, arrays, 2):
        return False
    cdef object W = arrays[0], dW = arrays[1], cW = arrays[2], b = arrays[3], db = arrays[4], cb = arrays[5]
    if k == 1:
        adagrad_k(<double *> dp(W), <double *> dp(dW), <double *> dp(cW), sz(W), lr, eps)
        adagrad_k(<double *> dp(b), <double *> dp(db), <double *> dp(cb), sz(b), lr, eps)
    else:
        adagrad_k(<float *> dp(W), <float *> dp(dW), <float *> dp(cW), sz(W), lr, eps)
        adagrad_k(<float *> dp(b), <float *> dp(db), <float *> dp(cb), sz(b), lr, eps)
    return True


def rmsprop_update(tuple arrays, double lr, double eps, double rho):
    """arrays = (W, dW, cW, b, db, cb)."""
    cdef int k = kind_of(arrays[0])
    if k == 0 or not opt_arrays_ok(k, arrays, 2):
        return False
    cdef object W = arrays[0], dW = arrays[1], cW = arrays[2], b = arrays[3], db = arrays[4], cb = arrays[5]
    if k == 1:
        rmsprop_k(<double *> dp(W), <double *> dp(dW), <double *> dp(cW), sz(W), lr, eps, rho)
        rmsprop_k(<double *> dp(b), <double *> dp(db), <double *> dp(cb), sz(b), lr, eps, rho)
    else:
        rmsprop_k(<float *> dp(W), <float *> dp(dW), <float *> dp(cW), sz(W), lr, eps, rho)
        rmsprop_k(<float *> dp(b), <float *> dp(db), <float *> dp(cb), sz(b), lr, eps, rho)
    return True


def adam_update(tuple arrays, double lr, double eps, double b1, double b2,
                double corr1, double corr2):
    """arrays = (W, dW, mW, cW, b, db, mb, cb); corr = 1 - beta ** (iterations + 1)."""
    cdef int k = kind_of(arrays[0])
    if k == 0 or not opt_arrays_ok(k, arrays, 2):
        return False
    cdef object W = arrays[0], dW = arrays[1], mW = arrays[2], cW = arrays[3]
    cdef object b = arrays[4], db = arrays[5], mb = arrays[6], cb = arrays[7]
    if k == 1:
        adam_k(<double *> dp(W), <double *> dp(dW), <double *> dp(mW), <double *> dp(cW), sz(W), lr, eps, b1, b2, corr1, corr2)
        adam_k(<double *> dp(b), <double *> dp(db), <double *> dp(mb), <double *> dp(cb), sz(b), lr, eps, b1, b2, corr1, corr2)
    else:
        adam_k(<float *> dp(W), <float *> dp(dW), <float *> dp(mW), <float *> dp(cW), sz(W), lr, eps, b1, b2, corr1, corr2)
        adam_k(<float *> dp(b), <float *> dp(db), <float *> dp(mb), <float *> dp(cb), sz(b), lr, eps, b1, b2, corr1, corr2)
    return True
