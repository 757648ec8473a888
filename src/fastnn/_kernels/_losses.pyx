# Losses: cross-entropy (labels or one-hot) and its fusion with softmax.
#
# Design (STYLE.md): the math of a block of rows (row max, exp, sums, log) is C in
# csrc/fastnn_math.h, compiled per ISA level and picked at run time; the def
# functions here own the prange over blocks of rows (static schedule: rows cost the same);
# fastnn.functions validates label dtype/shape and allocates. Per-row log terms go to a
# buffer and are summed in row order afterwards, so a total never depends on the thread
# count. Sums are kept in double for float32 input too.

from cython.parallel cimport parallel, prange
from libc.stdlib cimport malloc, free

from cython cimport floating

from fastnn._kernels._cpu cimport isa_state
from fastnn._kernels._openmp cimport (threads_state, fastnn_threads_bind, fastnn_team,
                                      fastnn_team_end)

cdef extern from "fastnn_cpu.h":
    void fastnn_isa_bind(const int *state) noexcept nogil
    int fastnn_isa() noexcept nogil

cdef extern from "fastnn_math.h":
    void fastnn_softmax_rows_d(const double *x, double *y, Py_ssize_t rows, Py_ssize_t n) noexcept nogil
    void fastnn_softmax_rows_s(const float *x, float *y, Py_ssize_t rows, Py_ssize_t n) noexcept nogil
    void fastnn_log_inplace(double *v, Py_ssize_t n) noexcept nogil

fastnn_isa_bind(isa_state())
fastnn_threads_bind(threads_state())

ctypedef fused target_t:
    float
    double

# Rows go to threads in blocks.
cdef Py_ssize_t ROW_BLOCK = 64


cdef inline Py_ssize_t argmax_row(const target_t *t, Py_ssize_t n) noexcept nogil:
    # np.argmax semantics: the first maximum; the first NaN wins
    cdef Py_ssize_t j, best = 0
    cdef target_t m = t[0]
    if m != m:
        return 0
    for j in range(1, n):
        if t[j] != t[j]:
            return j
        if t[j] > m:
            m = t[j]
            best = j
    return best


cdef inline double shifted(floating y_t) noexcept nogil:
    # y_t + 1e-7 rounded in the input's precision, as the reference computes it
    return <double> (y_t + <floating> 1e-7)


cdef inline void softmax_block(const floating *x, floating *y, Py_ssize_t rows,
                               Py_ssize_t n) noexcept nogil:
    if floating is double:
        fastnn_softmax_rows_d(x, y, rows, n)
    else:
        fastnn_softmax_rows_s(x, y, rows, n)


cdef double mean_neg(const double *logs, Py_ssize_t n) noexcept nogil:
    # -sum(log(y_t + 1e-7)) / batch, summed in row order (thread-count independent)
    cdef double s = 0.0
    cdef Py_ssize_t i
    for i in range(n):
        s += logs[i]
    return -s / n


cdef inline double vec_or_base(double vec_ns, double base_ns) noexcept nogil:
    # single-thread ns per unit, measured (tools/thread_grain.py; Zen 4, AVX2 or AVX-512
    # / baseline ISA): fastnn_team() sizes each region from it
    return base_ns if fastnn_isa() == 0 else vec_ns


# ---- one block of rows: gather y_t + 1e-7 for each row, then log them in place -------

cdef inline Py_ssize_t gather_labels(const floating *y, Py_ssize_t n, const Py_ssize_t *t,
                                     Py_ssize_t rows, double *v) noexcept nogil:
    """v[i] = y[i, t[i]] + 1e-7; returns how many labels were out of [0, n)."""
    cdef Py_ssize_t i, bad = 0
    for i in range(rows):
        if t[i] < 0 or t[i] >= n:
            bad += 1
            v[i] = 1.0
        else:
            v[i] = shifted(y[i * n + t[i]])
    fastnn_log_inplace(v, rows)
    return bad


cdef inline void gather_onehot(const floating *y, Py_ssize_t n, const target_t *t,
                               Py_ssize_t rows, double *v) noexcept nogil:
    cdef Py_ssize_t i
    for i in range(rows):
        v[i] = shifted(y[i * n + argmax_row(t + i * n, n)])
    fastnn_log_inplace(v, rows)


def cross_entropy_labels(const floating[:, ::1] y,   # IN (rows, n) probabilities
                         const Py_ssize_t[::1] t,    # IN (rows,) labels
                         int n_threads):
    """Mean over rows of -log(y[i, t[i]] + 1e-7). Returns (loss, n_bad_labels)."""
    cdef Py_ssize_t blk, r0, rows = y.shape[0], n = y.shape[1], bad = 0
    cdef Py_ssize_t n_blocks = (rows + ROW_BLOCK - 1) // ROW_BLOCK
    cdef double loss
    cdef double *v = <double *> malloc(rows * sizeof(double))
    if v == NULL:
        raise MemoryError()
    n_threads = fastnn_team(n_threads, rows * vec_or_base(3.0, 10.0))  # a log per row
    with nogil:
        if n_threads == 1:
            bad = gather_labels(&y[0, 0], n, &t[0], rows, v)
        else:
            for blk in prange(n_blocks, schedule="static", num_threads=n_threads):
                r0 = blk * ROW_BLOCK
                bad += gather_labels(&y[r0, 0], n, &t[r0], min(ROW_BLOCK, rows - r0), v + r0)
        fastnn_team_end()
        loss = mean_neg(v, rows)
    free(v)
    return loss, bad


def cross_entropy_onehot(const floating[:, ::1] y,   # IN (rows, n) probabilities
                         const target_t[:, ::1] t,   # IN (rows, n) one-hot (argmax used)
                         int n_threads):
    """Mean over rows of -log(y[i, argmax(t[i])] + 1e-7)."""
    cdef Py_ssize_t blk, r0, rows = y.shape[0], n = y.shape[1]
    cdef Py_ssize_t n_blocks = (rows + ROW_BLOCK - 1) // ROW_BLOCK
    cdef double loss
    cdef double *v = <double *> malloc(rows * sizeof(double))
    if v == NULL:
        raise MemoryError()
    n_threads = fastnn_team(n_threads, rows * n * vec_or_base(0.9, 1.6))  # argmax scans
    with nogil:
        if n_threads == 1:
            gather_onehot(&y[0, 0], n, &t[0, 0], rows, v)
        else:
            for blk in prange(n_blocks, schedule="static", num_threads=n_threads):
                r0 = blk * ROW_BLOCK
                gather_onehot(&y[r0, 0], n, &t[r0, 0], min(ROW_BLOCK, rows - r0), v + r0)
        fastnn_team_end()
        loss = mean_neg(v, rows)
    free(v)
    return loss


# ---- fused: softmax of a block into thread-local scratch, then the same gather ---------
# (so softmax_loss(x, t) == cross_entropy_error(softmax(x), t) bit for bit)

def softmax_cross_entropy_labels(const floating[:, ::1] x,   # IN (rows, n) scores
                                 const Py_ssize_t[::1] t,    # IN (rows,) labels
                                 int n_threads):
    """cross_entropy_error(softmax(x), t) without a softmax array. Returns (loss, n_bad)."""
    cdef Py_ssize_t blk, r0, nr, rows = x.shape[0], n = x.shape[1], bad = 0
    cdef Py_ssize_t n_blocks = (rows + ROW_BLOCK - 1) // ROW_BLOCK
    cdef double loss
    cdef floating *scratch
    cdef double *v = <double *> malloc(rows * sizeof(double))
    if v == NULL:
        raise MemoryError()
    # softmax of every element: ns per element as _activations.softmax
    n_threads = fastnn_team(n_threads, rows * n * (vec_or_base(2.5, 7.0) if floating is double
                                                   else vec_or_base(1.8, 4.1)))
    if n_threads == 1:  # no parallel region for small calls
        scratch = <floating *> malloc(ROW_BLOCK * n * sizeof(floating))
        with nogil:
            for blk in range(n_blocks):
                r0 = blk * ROW_BLOCK
                nr = min(ROW_BLOCK, rows - r0)
                softmax_block(&x[r0, 0], scratch, nr, n)
                bad += gather_labels(scratch, n, &t[r0], nr, v + r0)
        free(scratch)
    else:
        with nogil, parallel(num_threads=n_threads):
            scratch = <floating *> malloc(ROW_BLOCK * n * sizeof(floating))
            for blk in prange(n_blocks, schedule="static"):
                r0 = blk * ROW_BLOCK
                nr = min(ROW_BLOCK, rows - r0)
                softmax_block(&x[r0, 0], scratch, nr, n)
                bad += gather_labels(scratch, n, &t[r0], nr, v + r0)
            free(scratch)
    fastnn_team_end()
    with nogil:
        loss = mean_neg(v, rows)
    free(v)
    return loss, bad


def softmax_cross_entropy_onehot(const floating[:, ::1] x,   # IN (rows, n) scores
                                 const target_t[:, ::1] t,   # IN (rows, n) one-hot
                                 int n_threads):
    """cross_entropy_error(softmax(x), t) for one-hot t, without a softmax array."""
    cdef Py_ssize_t blk, r0, nr, rows = x.shape[0], n = x.shape[1]
    cdef Py_ssize_t n_blocks = (rows + ROW_BLOCK - 1) // ROW_BLOCK
    cdef double loss
    cdef floating *scratch
    cdef double *v = <double *> malloc(rows * sizeof(double))
    if v == NULL:
        raise MemoryError()
    # softmax of every element: ns per element as _activations.softmax
    n_threads = fastnn_team(n_threads, rows * n * (vec_or_base(2.5, 7.0) if floating is double
                                                   else vec_or_base(1.8, 4.1)))
    if n_threads == 1:  # no parallel region for small calls
        scratch = <floating *> malloc(ROW_BLOCK * n * sizeof(floating))
        with nogil:
            for blk in range(n_blocks):
                r0 = blk * ROW_BLOCK
                nr = min(ROW_BLOCK, rows - r0)
                softmax_block(&x[r0, 0], scratch, nr, n)
                gather_onehot(scratch, n, &t[r0, 0], nr, v + r0)
        free(scratch)
    else:
        with nogil, parallel(num_threads=n_threads):
            scratch = <floating *> malloc(ROW_BLOCK * n * sizeof(floating))
            for blk in prange(n_blocks, schedule="static"):
                r0 = blk * ROW_BLOCK
                nr = min(ROW_BLOCK, rows - r0)
                softmax_block(&x[r0, 0], scratch, nr, n)
                gather_onehot(scratch, n, &t[r0, 0], nr, v + r0)
            free(scratch)
    fastnn_team_end()
    with nogil:
        loss = mean_neg(v, rows)
    free(v)
    return loss
