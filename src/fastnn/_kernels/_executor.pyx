# Fused backprop for the books' MLPs: forward (activations cached) and backward in one
# call with the GIL released, no Python between layers.
#
# Design (STYLE.md): three layers.
#   1. `cdef inline ... noexcept nogil` row functions (softmax + dy for one row, the
#      activation and its derivative over a run of elements) and the C helpers below
#      (one output row = sum of a few scaled rows of a matrix; a row's non-zeros; a stripe
#      of columns as (row, value) lists), each built for baseline and AVX2+FMA;
#   2. `mlp_gradient`, a def kernel that runs the whole pass on raw pointers: GEMMs
#      through `gemm_strided` (which owns its own prange; transposes are strides, never
#      copies), the element-wise steps and the sparse first layer in pranges;
#   3. fastnn.layers.mlp_gradient (Python) validates, casts, allocates the outputs and
#      keeps a per-thread workspace, so a training step allocates nothing else.
#
# Sparse first layer: MNIST-like inputs are ~80% exact zeros. When x is sparse enough,
# a1 = x @ W1 + b1 runs row by row over each row's non-zeros (rows in parallel), and
# dW1 = x.T @ d1 runs by stripes of CW columns of x, each turned into (row, value) lists
# and reduced by its own task. No cache line is written by two threads. A skipped
# product 0 * w is 0 only when w is finite, so the sparse path is taken only when W1
# (forward) and d1 (backward) are all finite; otherwise the dense GEMM runs and NaN/inf
# propagate exactly as in the reference.
#
# Determinism: every output element is computed by one thread in a fixed order (GEMM
# tiles, rows of a1, rows of dW1, columns of db), so results are bitwise identical on
# any thread count.

from cython.parallel cimport parallel, prange
from libc.stdlib cimport malloc, free
from libc.string cimport memset
from libc.math cimport NAN, sqrt

cimport cython
cimport numpy as cnp
from cython cimport floating

from fastnn._kernels._cpu cimport isa_state
from fastnn._kernels._openmp cimport (threads_state, fastnn_threads_bind, fastnn_team,
                                      fastnn_team_end)
from fastnn._kernels._linear cimport colsum, gemm_strided

cdef extern from "fastnn_cpu.h":
    void fastnn_isa_bind(const int *state) noexcept nogil
    int fastnn_isa() noexcept nogil

cdef extern from "fastnn_math.h":
    # element-wise loops, vectorised for baseline/AVX2/AVX-512 (picked at run time)
    void fastnn_exp_inplace_d(double *y, Py_ssize_t n) noexcept nogil
    void fastnn_exp_inplace_s(float *y, Py_ssize_t n) noexcept nogil
    void fastnn_sigmoid_array_d(const double *x, double *y, Py_ssize_t n) noexcept nogil
    void fastnn_sigmoid_array_s(const float *x, float *y, Py_ssize_t n) noexcept nogil

cdef extern from "fastnn_sparse.h":
    void fastnn_bp_sprow_d(Py_ssize_t nnz, const int *idx, const double *val, const double *W,
                           Py_ssize_t ldw, Py_ssize_t N, const double *bias,
                           double *out) noexcept nogil
    void fastnn_bp_sprow_s(Py_ssize_t nnz, const int *idx, const float *val, const float *W,
                           Py_ssize_t ldw, Py_ssize_t N, const float *bias,
                           float *out) noexcept nogil
    int fastnn_bp_finite_d(const double *x, Py_ssize_t n) noexcept nogil
    int fastnn_bp_finite_s(const float *x, Py_ssize_t n) noexcept nogil
    Py_ssize_t fastnn_bp_compress_d(const double *x, Py_ssize_t n, int *idx, double *val) noexcept nogil
    Py_ssize_t fastnn_bp_compress_s(const float *x, Py_ssize_t n, int *idx, float *val) noexcept nogil
    void fastnn_bp_csc_d(const double *x, Py_ssize_t M, Py_ssize_t K, Py_ssize_t c0, int w,
                         int *cidx, double *cval, Py_ssize_t *cnt) noexcept nogil
    void fastnn_bp_csc_s(const float *x, Py_ssize_t M, Py_ssize_t K, Py_ssize_t c0, int w,
                         int *cidx, float *cval, Py_ssize_t *cnt) noexcept nogil

fastnn_isa_bind(isa_state())
fastnn_threads_bind(threads_state())
cnp.import_array()

# fastnn_team() sizes every region from its single-thread time, estimated from the
# ns per element / multiply-add below (measured on one thread, Zen 4; tools/thread_grain.py).
# The sparse first layer's work depends on x's density: estimated at SPARSE_EST_DENSITY.
cdef double SPARSE_MAC_NS = 0.1       # one non-zero x one column, forward or dW
cdef double SCAN_NS = 0.3             # per element of x turned into (index, value) lists
cdef double SPARSE_EST_DENSITY = 0.2  # MNIST: ~19% of pixels are non-zero


cdef inline double act_ns(int act, bint is_double) noexcept nogil:
    # relu: a compare and a store; sigmoid: an exp (vector ISAs / baseline)
    if act == 0:
        return 0.25
    if fastnn_isa() == 0:
        return 5.8 if is_double else 1.8
    return 1.05 if is_double else 0.45


cdef inline double softmax_ns(bint is_double) noexcept nogil:
    if fastnn_isa() == 0:
        return 7.0 if is_double else 4.1
    return 2.5 if is_double else 1.8
# The sparse first layer is used when at most this fraction of x is non-zero.
cdef double SPARSE_MAX_DENSITY = 0.5
# elements of W1 per finiteness-check task
cdef Py_ssize_t FINITE_CHUNK = 8192
# columns of x per backward chunk (dW1 rows one task computes)
DEF CW = 64

ACT_RELU = 0
ACT_SIGMOID = 1


# --- layer 1: one row / one run of elements ---------------------------------------------

cdef inline void sprow(Py_ssize_t nnz, const int *idx, const floating *val,
                       const floating *W, Py_ssize_t ldw, Py_ssize_t N,
                       const floating *bias, floating *out) noexcept nogil:
    if floating is double:
        fastnn_bp_sprow_d(nnz, idx, val, W, ldw, N, bias, out)
    else:
        fastnn_bp_sprow_s(nnz, idx, val, W, ldw, N, bias, out)


cdef inline void activate(floating *z, Py_ssize_t n, int act) noexcept nogil:
    """z = act(z) in place. relu: the reference's `out[x <= 0] = 0` (NaN stays NaN)."""
    cdef Py_ssize_t j
    if act == 0:
        for j in range(n):
            if z[j] <= 0:
                z[j] = 0
    elif floating is double:
        fastnn_sigmoid_array_d(z, z, n)   # 1 / (1 + exp(-a))
    else:
        fastnn_sigmoid_array_s(z, z, n)


cdef inline void activate_backward(const floating *dh, floating *h, Py_ssize_t n,
                                   int act) noexcept nogil:
    """h = dh * act'(.) in place of the activations h.

    relu: dout[mask] = 0 with mask = (a <= 0), which is (h <= 0) for h = relu(a);
    sigmoid: dout * (1 - out) * out.
    """
    cdef Py_ssize_t j
    if act == 0:
        for j in range(n):
            h[j] = 0 if h[j] <= 0 else dh[j]
    else:
        for j in range(n):
            h[j] = dh[j] * (1 - h[j]) * h[j]


cdef inline floating row_max(const floating *x, Py_ssize_t n) noexcept nogil:
    # np.max semantics: any NaN makes the max NaN
    cdef floating m = x[0]
    cdef bint has_nan = x[0] != x[0]
    cdef Py_ssize_t j
    for j in range(1, n):
        if x[j] > m:
            m = x[j]
        has_nan |= x[j] != x[j]
    if has_nan:
        return <floating> NAN
    return m


cdef inline void shift_row(floating *s, Py_ssize_t n) noexcept nogil:
    # s -= max(s), in the dtype, as the reference's overflow guard
    cdef floating m = row_max(s, n)
    cdef Py_ssize_t j
    for j in range(n):
        s[j] = s[j] - m


cdef inline void exp_run(floating *z, Py_ssize_t n) noexcept nogil:
    # z = exp(z) in double (vectorised), rounded to the dtype
    if floating is double:
        fastnn_exp_inplace_d(z, n)
    else:
        fastnn_exp_inplace_s(z, n)


cdef inline void dy_row(floating *e, Py_ssize_t n, Py_ssize_t label, const floating *t_row,
                        floating batch) noexcept nogil:
    """exp(s - max) row -> dy row in place: y = e / sum(e); dy = (y - t) / batch.

    One-hot t: (y - t) / batch_size; labels: y[label] -= 1, then / batch_size
    (SoftmaxWithLoss.backward). The sum in double; y rounded to the dtype.
    """
    cdef double tot = 0.0
    cdef Py_ssize_t j
    cdef floating y
    for j in range(n):
        tot += e[j]                            # sum(exp(x - max))
    for j in range(n):
        y = <floating> (<double> e[j] / tot)  # exp / sum(exp)
        if t_row != NULL:
            e[j] = (y - t_row[j]) / batch     # (y - t) / batch_size
        elif j == label:
            e[j] = (y - 1) / batch            # y[t] -= 1; / batch_size
        else:
            e[j] = y / batch


cdef inline void softmax_dy_row(floating *s, Py_ssize_t n, Py_ssize_t label,
                                const floating *t_row, floating batch) noexcept nogil:
    shift_row(s, n)
    exp_run(s, n)
    dy_row(s, n, label, t_row, batch)


cdef inline bint all_finite(const floating *x, Py_ssize_t n) noexcept nogil:
    if floating is double:
        return fastnn_bp_finite_d(x, n)
    else:
        return fastnn_bp_finite_s(x, n)


# --- layer 2: the whole pass ---------------------------------------------------------------

cdef struct Layer:
    Py_ssize_t n_in, n_out
    void *W       # (n_in, n_out)
    void *b       # (n_out,)
    void *dW      # (n_in, n_out) OUT
    void *db      # (n_out,) OUT
    void *z       # (M, n_out) scratch: activations, then deltas
    void *hd      # (M, n_out) scratch: activations after dropout (hidden layers with a mask)
    const unsigned char *mask   # (M, n_out) dropout keep-mask of this hidden layer, or NULL
    # BatchNormalization after this hidden layer's affine (gamma NULL: none)
    const void *gamma
    const void *beta
    void *dgamma  # (n_out,) OUT
    void *dbeta   # (n_out,) OUT
    void *mu      # (n_out,) OUT batch mean (for the running mean)
    void *var     # (n_out,) OUT batch variance (for the running variance)
    void *std     # (n_out,) scratch
    void *xc      # (M, n_out) scratch
    void *xn      # (M, n_out) scratch


cdef void rows_activate(floating *z, Py_ssize_t M, Py_ssize_t N, int act,
                        int n_threads) noexcept nogil:
    cdef Py_ssize_t i
    n_threads = fastnn_team(n_threads, M * N * act_ns(act, floating is double))
    if n_threads == 1:
        activate(z, M * N, act)
    else:
        for i in prange(M, schedule="static", num_threads=n_threads):
            activate(z + i * N, N, act)
    fastnn_team_end()


cdef void rows_activate_backward(const floating *dh, floating *h, Py_ssize_t M, Py_ssize_t N,
                                 int act, int n_threads) noexcept nogil:
    cdef Py_ssize_t i
    n_threads = fastnn_team(n_threads, M * N * 0.3)  # a select or two multiplies per element
    if n_threads == 1:
        activate_backward(dh, h, M * N, act)
    else:
        for i in prange(M, schedule="static", num_threads=n_threads):
            activate_backward(dh + i * N, h + i * N, N, act)
    fastnn_team_end()


cdef int bn_forward(floating *z, Py_ssize_t M, Py_ssize_t n, Layer *ly) noexcept nogil:
    """BatchNormalization._forward(x, train_flg=True) in place on z, the book's steps in
    the dtype with the sums in double; keeps xc, xn, std for the backward. -1: no memory."""
    cdef floating *mu = <floating *> ly.mu
    cdef floating *var = <floating *> ly.var
    cdef floating *std = <floating *> ly.std
    cdef floating *xc = <floating *> ly.xc
    cdef floating *xn = <floating *> ly.xn
    cdef const floating *gamma = <const floating *> ly.gamma
    cdef const floating *beta = <const floating *> ly.beta
    cdef double *acc = <double *> malloc(max(n, 1) * sizeof(double))
    cdef Py_ssize_t i, j
    if acc == NULL:
        return -1
    for j in range(n):
        acc[j] = 0.0
    for i in range(M):
        for j in range(n):
            acc[j] += z[i * n + j]
    for j in range(n):
        mu[j] = <floating> (acc[j] / M)                  # mu = x.mean(axis=0)
        acc[j] = 0.0
    for i in range(M):
        for j in range(n):
            xc[i * n + j] = z[i * n + j] - mu[j]         # xc = x - mu
            acc[j] += xc[i * n + j] * xc[i * n + j]
    for j in range(n):
        var[j] = <floating> (acc[j] / M)                 # var = mean(xc**2, axis=0)
        std[j] = <floating> sqrt(<double> (var[j] + <floating> 10e-7))  # sqrt(var + 10e-7)
    for i in range(M):
        for j in range(n):
            xn[i * n + j] = xc[i * n + j] / std[j]       # xn = xc / std
            z[i * n + j] = gamma[j] * xn[i * n + j] + beta[j]   # gamma * xn + beta
    free(acc)
    return 0


cdef int bn_backward(floating *d, Py_ssize_t M, Py_ssize_t n, Layer *ly) noexcept nogil:
    """BatchNormalization._backward in place on d (dout -> dx), the book's steps."""
    cdef const floating *std = <const floating *> ly.std
    cdef const floating *xc = <const floating *> ly.xc
    cdef const floating *xn = <const floating *> ly.xn
    cdef const floating *gamma = <const floating *> ly.gamma
    cdef floating *dgamma = <floating *> ly.dgamma
    cdef floating *dbeta = <floating *> ly.dbeta
    cdef double *acc = <double *> malloc(max(3 * n, 1) * sizeof(double))
    cdef floating *dvar = <floating *> malloc(max(n, 1) * sizeof(floating))
    cdef floating dxn
    cdef Py_ssize_t i, j
    if acc == NULL or dvar == NULL:
        free(acc); free(dvar)
        return -1
    for j in range(3 * n):
        acc[j] = 0.0
    for i in range(M):
        for j in range(n):
            acc[j] += d[i * n + j]                                   # dbeta = sum(dout)
            acc[n + j] += xn[i * n + j] * d[i * n + j]               # dgamma = sum(xn * dout)
            dxn = gamma[j] * d[i * n + j]                            # dxn = gamma * dout
            acc[2 * n + j] += (dxn * xc[i * n + j]) / (std[j] * std[j])
    for j in range(n):
        dbeta[j] = <floating> acc[j]
        dgamma[j] = <floating> acc[n + j]
        # dstd = -sum(dxn * xc / (std * std)); dvar = 0.5 * dstd / std
        dvar[j] = <floating> 0.5 * (-<floating> acc[2 * n + j]) / std[j]
        acc[j] = 0.0
    for i in range(M):
        for j in range(n):
            dxn = gamma[j] * d[i * n + j]
            # dxc = dxn / std + (2.0 / batch) * xc * dvar
            d[i * n + j] = dxn / std[j] + (<floating> (2.0 / M)) * xc[i * n + j] * dvar[j]
            acc[j] += d[i * n + j]                                   # dmu = sum(dxc)
    for i in range(M):
        for j in range(n):
            d[i * n + j] = d[i * n + j] - (<floating> acc[j]) / M   # dx = dxc - dmu / batch
    free(acc)
    free(dvar)
    return 0


cdef void apply_mask(const floating *src, const unsigned char *mask, floating *dst,
                     Py_ssize_t n) noexcept nogil:
    # Dropout: dst = src * mask (the book's x * self.mask, mask 0/1)
    cdef Py_ssize_t j
    for j in range(n):
        dst[j] = src[j] * (<floating> mask[j])


cdef void add_decay(floating *dW, const floating *W, Py_ssize_t n, floating lam) noexcept nogil:
    cdef Py_ssize_t j
    for j in range(n):
        dW[j] = dW[j] + lam * W[j]   # affine.dW + weight_decay_lambda * affine.W


cdef void csc_chunk(Py_ssize_t c, const floating *x, Py_ssize_t M, Py_ssize_t K, int *cidx,
                    floating *cval, Py_ssize_t *cbeg, Py_ssize_t *cend) noexcept nogil:
    """Columns [c*CW, c*CW + CW) of x as lists of (row, value), rows ascending, in this
    chunk's own slice of cidx/cval (offset c * CW * M); column k is [cbeg[k], cend[k])."""
    cdef Py_ssize_t c0 = c * CW, w = min(CW, K - c0), j, off = c * CW * M
    cdef Py_ssize_t cnt[CW]
    if floating is double:
        fastnn_bp_csc_d(x, M, K, c0, <int> w, cidx + off, cval + off, cnt)
    else:
        fastnn_bp_csc_s(x, M, K, c0, <int> w, cidx + off, cval + off, cnt)
    for j in range(w):
        cbeg[c0 + j] = off + j * M
        cend[c0 + j] = off + j * M + cnt[j]


cdef void dW_chunk(Py_ssize_t c, Py_ssize_t K, Py_ssize_t N, const int *cidx,
                   const floating *cval, const Py_ssize_t *cbeg, const Py_ssize_t *cend,
                   const floating *d, floating *dW) noexcept nogil:
    # dW1[k, :] = sum over non-zero x[i, k] (i ascending) of x[i, k] * d1[i, :]
    cdef Py_ssize_t k
    for k in range(c * CW, min(c * CW + CW, K)):
        sprow(cend[k] - cbeg[k], cidx + cbeg[k], cval + cbeg[k], d, N, N,
              <const floating *> NULL, dW + k * N)


cdef void first_dW_chunk(Py_ssize_t c, const floating *x, Py_ssize_t M, Py_ssize_t K,
                         Py_ssize_t N, int *cidx, floating *cval, Py_ssize_t *cbeg,
                         Py_ssize_t *cend, const floating *d, floating *dW) noexcept nogil:
    csc_chunk(c, x, M, K, cidx, cval, cbeg, cend)
    dW_chunk(c, K, N, cidx, cval, cbeg, cend, d, dW)


cdef void sparse_first_dW(const floating *x, Py_ssize_t M, Py_ssize_t K, Py_ssize_t N,
                          int *cidx, floating *cval, Py_ssize_t *cbeg, Py_ssize_t *cend,
                          const floating *d, floating *dW, Py_ssize_t nnz_total,
                          int n_threads) noexcept nogil:
    """dW1 = x.T @ d1 by chunks of CW columns of x: each task turns its stripe of x into
    (row, value) lists and computes its CW rows of dW1; nothing is shared between tasks
    (static schedule: a chunk stays with its thread, and so does its stripe of x)."""
    cdef Py_ssize_t c, n_chunks = (K + CW - 1) // CW
    n_threads = fastnn_team(n_threads, M * K * SCAN_NS + nnz_total * N * SPARSE_MAC_NS)
    if n_threads == 1:
        for c in range(n_chunks):
            first_dW_chunk(c, x, M, K, N, cidx, cval, cbeg, cend, d, dW)
    else:
        for c in prange(n_chunks, schedule="static", num_threads=n_threads):
            first_dW_chunk(c, x, M, K, N, cidx, cval, cbeg, cend, d, dW)
    fastnn_team_end()


cdef void first_row(Py_ssize_t i, const floating *x, Py_ssize_t K, Py_ssize_t N,
                    int *ridx, floating *rval, Py_ssize_t *rnnz, const floating *W,
                    const floating *b, floating *z, int act, bint hidden) noexcept nogil:
    # z[i] = act(x[i] @ W1 + b1) over the non-zeros of x[i] only
    cdef Py_ssize_t nnz = compress_row(x + i * K, K, ridx + i * K, rval + i * K)
    rnnz[i] = nnz
    sprow(nnz, ridx + i * K, rval + i * K, W, N, N, b, z + i * N)
    if hidden:
        activate(z + i * N, N, act)


cdef bint sparse_first_forward(const floating *x, Py_ssize_t M, Py_ssize_t K, Py_ssize_t N,
                               int *ridx, floating *rval, Py_ssize_t *rnnz, const floating *W,
                               const floating *b, floating *z, int act, bint hidden,
                               int n_threads) noexcept nogil:
    """Rows of the batch in parallel, each on its own: its non-zeros, a1 = x @ W1 + b1
    from them, the activation. W1 is only read; nothing written is shared.

    Returns whether W1 is all finite (checked alongside, in chunks, by the same threads):
    when it is not, the caller must redo the layer densely (a skipped 0 * inf is NaN)."""
    cdef Py_ssize_t i, c, n_w = K * N, n_chunks = (n_w + FINITE_CHUNK - 1) // FINITE_CHUNK
    cdef unsigned char *ok
    cdef bint all_ok = True
    n_threads = fastnn_team(n_threads, M * K * (SCAN_NS + SPARSE_EST_DENSITY * N * SPARSE_MAC_NS)
                            + n_w * 0.1 + (M * N * act_ns(act, floating is double) if hidden else 0))
    if n_threads == 1:
        all_ok = all_finite(W, n_w)
        if all_ok:
            for i in range(M):
                first_row(i, x, K, N, ridx, rval, rnnz, W, b, z, act, hidden)
        fastnn_team_end()
        return all_ok
    ok = <unsigned char *> malloc(n_chunks + 1)
    if ok == NULL:
        if not all_finite(W, n_w):
            return False
        for i in range(M):
            first_row(i, x, K, N, ridx, rval, rnnz, W, b, z, act, hidden)
        return True
    for i in prange(M + n_chunks, schedule="static", num_threads=n_threads):
        if i < M:
            first_row(i, x, K, N, ridx, rval, rnnz, W, b, z, act, hidden)
        else:
            c = i - M
            ok[c] = all_finite(W + c * FINITE_CHUNK, min(FINITE_CHUNK, n_w - c * FINITE_CHUNK))
    fastnn_team_end()
    for c in range(n_chunks):
        all_ok = all_ok and ok[c]
    free(ok)
    return all_ok


cdef inline Py_ssize_t compress_row(const floating *x, Py_ssize_t n, int *idx,
                                    floating *val) noexcept nogil:
    # the non-zeros of one row (NaN counts as non-zero) as (index, value) pairs
    if floating is double:
        return fastnn_bp_compress_d(x, n, idx, val)
    else:
        return fastnn_bp_compress_s(x, n, idx, val)


cdef inline Py_ssize_t align64(Py_ssize_t n) noexcept nogil:
    return (n + 63) & ~(<Py_ssize_t> 63)


cdef struct Work:
    # pieces of the caller's workspace (see workspace_bytes)
    void *z          # sum_l M * n_l: activations, then deltas, layer after layer
    void *hd         # sum_l M * n_l: activations after dropout
    void *scratch    # M * max_l n_{l-1}: d_l @ W_l.T
    Py_ssize_t *rnnz # M: non-zeros per row of x
    int *ridx        # M * K: column indices of row i's non-zeros at i * K
    void *rval       # M * K: their values
    int *cidx        # M * CW * n_chunks: row indices of x's columns, per chunk
    void *cval       # M * CW * n_chunks
    Py_ssize_t *cbeg # K: column k of x is cidx/cval[cbeg[k]:cend[k]]
    Py_ssize_t *cend # K


cdef Py_ssize_t carve(Work *w, unsigned char *base, Py_ssize_t M, Py_ssize_t K,
                      Py_ssize_t total_n, Py_ssize_t max_in, Py_ssize_t itemsize,
                      bint sparse) noexcept nogil:
    """Lay the workspace out from `base` (NULL: only measure). Returns its size in bytes.
    Without `sparse` the first layer's sparse scratch is left out (K counts as 0)."""
    cdef Py_ssize_t off = 0, n_chunks
    if not sparse:
        K = 0
    n_chunks = (K + CW - 1) // CW
    w.z = base + off
    off += align64(M * total_n * itemsize)
    w.hd = base + off
    off += align64(M * total_n * itemsize)
    w.scratch = base + off
    off += align64(M * max_in * itemsize)
    w.rnnz = <Py_ssize_t *> (base + off)
    off += align64(M * sizeof(Py_ssize_t))
    w.ridx = <int *> (base + off)
    off += align64(M * K * sizeof(int))
    w.rval = base + off
    off += align64(M * K * itemsize)
    w.cidx = <int *> (base + off)
    off += align64(M * CW * n_chunks * sizeof(int))
    w.cval = base + off
    off += align64(M * CW * n_chunks * itemsize)
    w.cbeg = <Py_ssize_t *> (base + off)
    off += align64(K * sizeof(Py_ssize_t))
    w.cend = <Py_ssize_t *> (base + off)
    off += align64(K * sizeof(Py_ssize_t))
    return off + 64


def workspace_bytes(Py_ssize_t M, sizes, Py_ssize_t itemsize, bint allow_sparse=True):
    """Bytes of workspace `mlp_gradient` needs for a batch of M and layer sizes n_0..n_L."""
    cdef Work w
    sizes = list(sizes)
    return carve(&w, NULL, M, sizes[0], sum(sizes[1:]), max(sizes[:len(sizes) - 1]), itemsize,
                 allow_sparse)


cdef int run_mlp(Layer *layers, Py_ssize_t L, Py_ssize_t M, const floating *x,
                 const Py_ssize_t *labels, const floating *t, int act, bint decay,
                 floating lam, Work *w, bint allow_sparse, int n_threads) noexcept nogil:
    """Forward then backward through L affine layers, all scratch in `w`.

    Returns 0, 1 (nothing computed) when a label is outside [0, n_L), 2 out of memory."""
    cdef Py_ssize_t l, i, n_in, n_out, K = layers[0].n_in, N1 = layers[0].n_out
    cdef Py_ssize_t nnz_total = 0, n_rows
    cdef const floating *h_in
    cdef floating *z
    cdef floating *scratch = <floating *> w.scratch
    cdef bint sparse = False, act_done
    cdef int nt_rows

    if labels != NULL:
        for i in range(M):
            if labels[i] < 0 or labels[i] >= layers[L - 1].n_out:
                return 1

    # ---- is x sparse enough to skip its zeros? (judged on its first rows) ------------
    if allow_sparse and M * K > 0:
        n_rows = min(M, 4)
        for i in range(n_rows * K):
            nnz_total += x[i] != 0
        sparse = nnz_total <= SPARSE_MAX_DENSITY * n_rows * K
        nnz_total = 0

    # ---- forward: z_l = act(h_{l-1} @ W_l + b_l); the last z holds the scores ----------
    h_in = x
    for l in range(L):
        n_in = layers[l].n_in
        n_out = layers[l].n_out
        z = <floating *> layers[l].z
        act_done = False
        if l == 0 and sparse:
            # the activation goes with each row unless a BatchNorm comes first
            sparse = sparse_first_forward(x, M, K, n_out, w.ridx, <floating *> w.rval, w.rnnz,
                                          <const floating *> layers[0].W,
                                          <const floating *> layers[0].b, z, act,
                                          L > 1 and layers[0].gamma == NULL, n_threads)
            if sparse:
                act_done = True
                for i in range(M):
                    nnz_total += w.rnnz[i]
        if l > 0 or not sparse:
            gemm_strided(M, n_out, n_in, h_in, n_in, 1, <const floating *> layers[l].W, n_out, 1,
                         <const floating *> layers[l].b, z, n_out, n_threads)
        if l < L - 1:
            if layers[l].gamma != NULL:
                act_done = False
                if bn_forward(z, M, n_out, &layers[l]) < 0:
                    return 2
            if not act_done:
                rows_activate(z, M, n_out, act, n_threads)
        h_in = z
        if l < L - 1 and layers[l].mask != NULL:
            # Dropout after the activation; z keeps the activation for its derivative
            apply_mask(z, layers[l].mask, <floating *> layers[l].hd, M * n_out)
            h_in = <const floating *> layers[l].hd

    # ---- softmax + SoftmaxWithLoss.backward: the scores become dy ---------------------
    z = <floating *> layers[L - 1].z
    n_out = layers[L - 1].n_out
    nt_rows = fastnn_team(n_threads, M * n_out * softmax_ns(floating is double))
    if nt_rows == 1:
        # three passes over the block, so the exps run as one vector loop
        for i in range(M):
            shift_row(z + i * n_out, n_out)
        exp_run(z, M * n_out)
        for i in range(M):
            dy_row(z + i * n_out, n_out, labels[i] if labels != NULL else -1,
                   t + i * n_out if t != NULL else NULL, <floating> M)
    else:
        for i in prange(M, schedule="static", num_threads=nt_rows):
            softmax_dy_row(z + i * n_out, n_out, labels[i] if labels != NULL else -1,
                           t + i * n_out if t != NULL else NULL, <floating> M)
    fastnn_team_end()

    # ---- backward: dW_l = h_{l-1}.T @ d_l, db_l = sum(d_l), d_{l-1} = (d_l @ W_l.T) * act' --
    for l in range(L - 1, -1, -1):
        n_in = layers[l].n_in
        n_out = layers[l].n_out
        z = <floating *> layers[l].z       # d_l
        h_in = x
        if l > 0:
            h_in = <const floating *> (layers[l - 1].hd if layers[l - 1].mask != NULL
                                       else layers[l - 1].z)
        if (l == 0 and sparse and nnz_total <= SPARSE_MAX_DENSITY * M * K
                and all_finite(<const floating *> z, M * n_out)):
            sparse_first_dW(x, M, K, n_out, w.cidx, <floating *> w.cval, w.cbeg, w.cend, z,
                            <floating *> layers[0].dW, nnz_total, n_threads)
        else:
            gemm_strided(n_in, n_out, M, h_in, 1, n_in, z, n_out, 1, NULL,
                         <floating *> layers[l].dW, n_out, n_threads)
        if decay:
            add_decay(<floating *> layers[l].dW, <const floating *> layers[l].W, n_in * n_out, lam)
        colsum(z, M, n_out, <floating *> layers[l].db, n_threads)
        if l > 0:
            # dh = d_l @ W_l.T (W_l read through strides), then times act'(h_{l-1}) in place
            gemm_strided(M, n_in, n_out, z, n_out, 1, <const floating *> layers[l].W, 1, n_out,
                         NULL, scratch, n_in, n_threads)
            if layers[l - 1].mask != NULL:
                apply_mask(scratch, layers[l - 1].mask, scratch, M * n_in)  # Dropout.backward
            rows_activate_backward(scratch, <floating *> layers[l - 1].z, M, n_in, act, n_threads)
            if layers[l - 1].gamma != NULL:
                if bn_backward(<floating *> layers[l - 1].z, M, n_in, &layers[l - 1]) < 0:
                    return 2
    return 0


cdef inline void *data(object a) except NULL:
    # the array's data pointer without a memoryview object (the Python layer has made
    # every array C-contiguous, of the right dtype and shape; non-empty)
    return cnp.PyArray_DATA(<cnp.ndarray?> a)


cdef int mlp_run(list Ws, list bs, int activation, object x, object labels, object t_onehot,
                 bint weight_decay, double lam, list dWs, list dbs, object work,
                 bint allow_sparse, object masks, object bn, int n_threads,
                 floating dummy) except -1:
    cdef Py_ssize_t L = len(Ws), l, M = cnp.PyArray_DIM(<cnp.ndarray?> x, 0), max_in = 1
    cdef Py_ssize_t total = 0, need, nbytes
    cdef Layer *layers
    cdef Work w
    cdef cnp.ndarray W
    cdef const Py_ssize_t *lab_p = NULL
    cdef const floating *t_p = NULL
    cdef const floating *x_p = <const floating *> data(x)
    cdef unsigned char *base = <unsigned char *> data(work)
    cdef int status
    if labels is not None:
        lab_p = <const Py_ssize_t *> data(labels)
    else:
        t_p = <const floating *> data(t_onehot)
    layers = <Layer *> malloc(L * sizeof(Layer))
    if layers == NULL:
        raise MemoryError()
    for l in range(L):
        W = <cnp.ndarray?> Ws[l]
        layers[l].n_in = cnp.PyArray_DIM(W, 0)
        layers[l].n_out = cnp.PyArray_DIM(W, 1)
        layers[l].W = cnp.PyArray_DATA(W)
        layers[l].b = data(bs[l])
        layers[l].dW = data(dWs[l])
        layers[l].db = data(dbs[l])
        layers[l].mask = NULL
        if masks is not None and l < L - 1 and masks[l] is not None:
            layers[l].mask = <const unsigned char *> data(masks[l])
        layers[l].gamma = NULL
        if bn is not None and l < L - 1 and bn[l] is not None:
            # (gamma, beta, dgamma, dbeta, mu, var, std, xc, xn)
            layers[l].gamma = data(bn[l][0])
            layers[l].beta = data(bn[l][1])
            layers[l].dgamma = data(bn[l][2])
            layers[l].dbeta = data(bn[l][3])
            layers[l].mu = data(bn[l][4])
            layers[l].var = data(bn[l][5])
            layers[l].std = data(bn[l][6])
            layers[l].xc = data(bn[l][7])
            layers[l].xn = data(bn[l][8])
        total += layers[l].n_out
        max_in = max(max_in, layers[l].n_in)
    need = carve(&w, NULL, M, layers[0].n_in, total, max_in, sizeof(floating), allow_sparse)
    nbytes = cnp.PyArray_NBYTES(<cnp.ndarray?> work)
    if nbytes < need:
        free(layers)
        raise ValueError("mlp_gradient: workspace has %d bytes, needs %d" % (nbytes, need))
    base = base + ((64 - (<size_t> base) % 64) % 64)   # 64-byte aligned start
    carve(&w, base, M, layers[0].n_in, total, max_in, sizeof(floating), allow_sparse)
    total = 0
    for l in range(L):
        layers[l].z = (<floating *> w.z) + total
        layers[l].hd = (<floating *> w.hd) + total
        total += M * layers[l].n_out
    with nogil:
        status = run_mlp(layers, L, M, x_p, lab_p, t_p, activation, weight_decay,
                         <floating> lam, &w, allow_sparse, n_threads)
    free(layers)
    if status == 2:
        raise MemoryError()
    return status


def mlp_gradient(list Ws,              # IN  L arrays (n_{l-1}, n_l), C-contiguous
                 list bs,              # IN  L arrays (n_l,)
                 int activation,       # 0 relu, 1 sigmoid
                 x,                    # IN  (M, n_0), M >= 1
                 labels,               # IN  (M,) intp labels, or None
                 t_onehot,             # IN  (M, n_L), or None
                 bint weight_decay,    # add lam * W to dW (MultiLayerNet)
                 double lam,
                 list dWs,             # OUT like Ws
                 list dbs,             # OUT like bs
                 work,                 # scratch, uint8 array of >= workspace_bytes(...) bytes
                 bint allow_sparse,
                 bint is_double,       # every array float64 (else float32)
                 int n_threads,
                 masks=None,           # IN  per hidden layer: (M, n_l) uint8 keep-mask or None
                 bn=None):             # per hidden layer: None or (gamma, beta, dgamma, dbeta,
                                       # mu, var, std, xc, xn) arrays of the dtype

    """Gradients of the mean softmax cross-entropy of an MLP (validated inputs only).

    Hidden layers use `activation`; the last layer is affine + softmax. Every float array
    must be C-contiguous with the dtype `is_double` names. With `masks`, hidden layer l's
    activations are multiplied by masks[l] (Dropout after the activation). Returns 0, or 1
    (and computes nothing) when a label is outside [0, n_L).
    """
    if is_double:
        return mlp_run[double](Ws, bs, activation, x, labels, t_onehot, weight_decay, lam,
                               dWs, dbs, work, allow_sparse, masks, bn, n_threads, 0.0)
    return mlp_run[float](Ws, bs, activation, x, labels, t_onehot, weight_decay, lam,
                          dWs, dbs, work, allow_sparse, masks, bn, n_threads, 0.0)
