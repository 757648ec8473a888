# Softmax, cross-entropy and their fusion.
#
# Design (STYLE.md): the per-row math (row max, exp, sum of exps) is C in
# csrc/fastnn_math.h, compiled for the baseline ISA and for AVX2+FMA and picked at run
# time; the def functions here own the prange over rows (static schedule: rows cost the
# same); fastnn.functions validates label dtype/shape and allocates. Per-row losses go to
# a buffer and are summed in row order afterwards, so a total never depends on the thread
# count. Sums are kept in double for float32 input too.

from cython.parallel cimport prange
from libc.math cimport log
from libc.stdlib cimport malloc, free

from cython cimport floating

cdef extern from "fastnn_math.h":
    int fastnn_math_init() noexcept nogil
    void fastnn_softmax_rows_d(const double *x, double *y, Py_ssize_t rows, Py_ssize_t n) noexcept nogil
    void fastnn_softmax_rows_s(const float *x, float *y, Py_ssize_t rows, Py_ssize_t n) noexcept nogil
    double fastnn_max_sumexp_d(const double *x, Py_ssize_t n, double *m) noexcept nogil
    double fastnn_max_sumexp_s(const float *x, Py_ssize_t n, float *m) noexcept nogil
    double fastnn_exp(double x) noexcept nogil

fastnn_math_init()

ctypedef fused target_t:
    float
    double

# Below this many elements a call runs on one thread; rows go to threads in blocks.
cdef Py_ssize_t PARALLEL_MIN_ELEMS = 32768
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


cdef inline double ce_term(floating y_t) noexcept nogil:
    # the book's loss for one row: -log(y_t + 1e-7), the sum y_t + 1e-7 rounded in the
    # input's precision as the reference computes it; the log and the mean in double
    cdef floating v = y_t + <floating> 1e-7
    return -log(<double> v)


cdef inline double label_term(const floating *y_row, Py_ssize_t n, Py_ssize_t label,
                              Py_ssize_t *bad) noexcept nogil:
    # a flag written through a pointer: a plain assignment inside prange is lastprivate
    if label < 0 or label >= n:
        bad[0] = 1
        return 0.0
    return ce_term(y_row[label])


cdef inline double fused_term(const floating *x, Py_ssize_t n, Py_ssize_t label,
                              Py_ssize_t *bad) noexcept nogil:
    # -log(softmax(x)[label] + 1e-7) without writing the softmax row; the probability is
    # rounded to the input's precision first, as the reference stores it.
    cdef floating m
    cdef double s
    if label < 0 or label >= n:
        bad[0] = 1
        return 0.0
    if floating is double:
        s = fastnn_max_sumexp_d(x, n, &m)
    else:
        s = fastnn_max_sumexp_s(x, n, &m)
    cdef floating y_t = <floating> (<floating> fastnn_exp(<double> (x[label] - m)) / s)
    return ce_term(y_t)


cdef double mean_in_order(const double *v, Py_ssize_t n) noexcept nogil:
    cdef double s = 0.0
    cdef Py_ssize_t i
    for i in range(n):
        s += v[i]
    return s / n


cdef inline int threads_for(Py_ssize_t elems, int n_threads) noexcept nogil:
    return 1 if elems < PARALLEL_MIN_ELEMS else n_threads


def softmax(const floating[:, ::1] x,   # IN  (rows, n)
            floating[:, ::1] out,       # OUT (rows, n)
            int n_threads):
    cdef Py_ssize_t blk, r0, rows = x.shape[0], n = x.shape[1]
    if rows == 0 or n == 0:
        return
    cdef Py_ssize_t n_blocks = (rows + ROW_BLOCK - 1) // ROW_BLOCK
    with nogil:
        for blk in prange(n_blocks, schedule="static", num_threads=threads_for(rows * n, n_threads)):
            r0 = blk * ROW_BLOCK
            if floating is double:
                fastnn_softmax_rows_d(&x[r0, 0], &out[r0, 0], min(ROW_BLOCK, rows - r0), n)
            else:
                fastnn_softmax_rows_s(&x[r0, 0], &out[r0, 0], min(ROW_BLOCK, rows - r0), n)


def cross_entropy_labels(const floating[:, ::1] y,   # IN (rows, n) probabilities
                         const Py_ssize_t[::1] t,    # IN (rows,) labels
                         int n_threads):
    """Mean over rows of -log(y[i, t[i]] + 1e-7). Returns (loss, any_bad_label)."""
    cdef Py_ssize_t i, rows = y.shape[0], n = y.shape[1], bad = 0
    cdef double loss
    cdef double *terms = <double *> malloc(rows * sizeof(double))
    if terms == NULL:
        raise MemoryError()
    with nogil:
        for i in prange(rows, schedule="static", num_threads=threads_for(rows * n, n_threads)):
            terms[i] = label_term(&y[i, 0], n, t[i], &bad)
        loss = mean_in_order(terms, rows)
    free(terms)
    return loss, bad


def cross_entropy_onehot(const floating[:, ::1] y,   # IN (rows, n) probabilities
                         const target_t[:, ::1] t,   # IN (rows, n) one-hot (argmax used)
                         int n_threads):
    """Mean over rows of -log(y[i, argmax(t[i])] + 1e-7)."""
    cdef Py_ssize_t i, rows = y.shape[0], n = y.shape[1]
    cdef double loss
    cdef double *terms = <double *> malloc(rows * sizeof(double))
    if terms == NULL:
        raise MemoryError()
    with nogil:
        for i in prange(rows, schedule="static", num_threads=threads_for(rows * n, n_threads)):
            terms[i] = ce_term(y[i, argmax_row(&t[i, 0], n)])
        loss = mean_in_order(terms, rows)
    free(terms)
    return loss


def softmax_cross_entropy_labels(const floating[:, ::1] x,   # IN (rows, n) scores
                                 const Py_ssize_t[::1] t,    # IN (rows,) labels
                                 int n_threads):
    """cross_entropy_error(softmax(x), t) in one pass. Returns (loss, any_bad_label)."""
    cdef Py_ssize_t i, rows = x.shape[0], n = x.shape[1], bad = 0
    cdef double loss
    cdef double *terms = <double *> malloc(rows * sizeof(double))
    if terms == NULL:
        raise MemoryError()
    with nogil:
        for i in prange(rows, schedule="static", num_threads=threads_for(rows * n, n_threads)):
            terms[i] = fused_term(&x[i, 0], n, t[i], &bad)
        loss = mean_in_order(terms, rows)
    free(terms)
    return loss, bad


def softmax_cross_entropy_onehot(const floating[:, ::1] x,   # IN (rows, n) scores
                                 const target_t[:, ::1] t,   # IN (rows, n) one-hot
                                 int n_threads):
    """cross_entropy_error(softmax(x), t) for one-hot t, in one pass."""
    cdef Py_ssize_t i, rows = x.shape[0], n = x.shape[1], bad = 0
    cdef double loss
    cdef double *terms = <double *> malloc(rows * sizeof(double))
    if terms == NULL:
        raise MemoryError()
    with nogil:
        for i in prange(rows, schedule="static", num_threads=threads_for(rows * n, n_threads)):
            terms[i] = fused_term(&x[i, 0], n, argmax_row(&t[i, 0], n), &bad)
        loss = mean_in_order(terms, rows)
    free(terms)
    return loss
