# Softmax, cross-entropy and their fusion, one row at a time.
#
# Design (STYLE.md): `cdef inline ... noexcept nogil` functions handle one row; the def
# functions own the prange over rows (static schedule: rows cost the same); the Python
# layer validates labels' dtype/shape and allocates. Per-row losses go to a buffer and
# are summed in row order afterwards, so the total never depends on the thread count.
# Sums (max-shifted exps, losses) are kept in double for float32 input too.

from cython.parallel cimport prange
from libc.math cimport log, NAN
from libc.stdlib cimport malloc, free

from cython cimport floating

cdef extern from "fastnn_math.h":
    double fastnn_exp(double x) noexcept nogil

ctypedef fused target_t:
    float
    double

# Below this many elements a call runs on one thread.
cdef Py_ssize_t PARALLEL_MIN_ELEMS = 32768


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


cdef inline double softmax_row(const floating *x, floating *y, Py_ssize_t n) noexcept nogil:
    """y = exp(x - max) / sum(exp(x - max)); returns the sum (in double)."""
    cdef floating m = row_max(x, n)
    cdef double s = 0.0, e
    cdef Py_ssize_t j
    for j in range(n):
        # x - m in the input's precision, as the reference computes it
        e = fastnn_exp(<double> (x[j] - m))
        y[j] = <floating> e
        s += e
    for j in range(n):
        y[j] = <floating> (<double> y[j] / s) if floating is float else y[j] / s
    return s


cdef inline double sum_exp_row(const floating *x, floating m, Py_ssize_t n) noexcept nogil:
    cdef double s = 0.0
    cdef Py_ssize_t j
    for j in range(n):
        s += fastnn_exp(<double> (x[j] - m))
    return s


cdef inline Py_ssize_t argmax_row(const target_t *t, Py_ssize_t n) noexcept nogil:
    # np.argmax semantics: first maximum; the first NaN wins
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


cdef inline double ce_term(double y_t) noexcept nogil:
    # -log(y_t + 1e-7): the book's loss for one row
    return -log(y_t + 1e-7)


cdef double sum_in_order(const double *v, Py_ssize_t n) noexcept nogil:
    cdef double s = 0.0
    cdef Py_ssize_t i
    for i in range(n):
        s += v[i]
    return s


def softmax(const floating[:, ::1] x,   # IN  (rows, n)
            floating[:, ::1] out,       # OUT (rows, n)
            int n_threads):
    cdef Py_ssize_t i, rows = x.shape[0], n = x.shape[1]
    if n == 0:
        return
    if rows * n < PARALLEL_MIN_ELEMS:
        n_threads = 1
    with nogil:
        for i in prange(rows, schedule="static", num_threads=n_threads):
            softmax_row(&x[i, 0], &out[i, 0], n)


cdef inline double label_loss(const floating *y_row, Py_ssize_t n, Py_ssize_t label,
                              Py_ssize_t *bad) noexcept nogil:
    if label < 0 or label >= n:
        bad[0] = 1
        return 0.0
    return ce_term(<double> y_row[label])


def cross_entropy_labels(const floating[:, ::1] y,   # IN (rows, n) probabilities
                         const Py_ssize_t[::1] t,    # IN (rows,) labels
                         int n_threads):
    """Mean over rows of -log(y[i, t[i]] + 1e-7). Returns (loss, n_bad_labels)."""
    cdef Py_ssize_t i, rows = y.shape[0], n = y.shape[1], bad = 0
    cdef double *terms
    cdef double total
    if rows * n < PARALLEL_MIN_ELEMS:
        n_threads = 1
    terms = <double *> malloc(max(rows, 1) * sizeof(double))
    if terms == NULL:
        raise MemoryError()
    with nogil:
        for i in prange(rows, schedule="static", num_threads=n_threads):
            terms[i] = label_loss(&y[i, 0], n, t[i], &bad)
        total = sum_in_order(terms, rows)
    free(terms)
    return total / rows, bad


def cross_entropy_onehot(const floating[:, ::1] y,   # IN (rows, n) probabilities
                         const target_t[:, ::1] t,   # IN (rows, n) one-hot (argmax used)
                         int n_threads):
    """Mean over rows of -log(y[i, argmax(t[i])] + 1e-7)."""
    cdef Py_ssize_t i, rows = y.shape[0], n = y.shape[1]
    cdef double *terms
    cdef double total
    if rows * n < PARALLEL_MIN_ELEMS:
        n_threads = 1
    terms = <double *> malloc(max(rows, 1) * sizeof(double))
    if terms == NULL:
        raise MemoryError()
    with nogil:
        for i in prange(rows, schedule="static", num_threads=n_threads):
            terms[i] = ce_term(<double> y[i, argmax_row(&t[i, 0], n)])
        total = sum_in_order(terms, rows)
    free(terms)
    return total / rows


cdef inline double fused_row(const floating *x, Py_ssize_t n, Py_ssize_t label) noexcept nogil:
    # -log(softmax(x)[label] + 1e-7) without writing the softmax row; the probability is
    # rounded to the input's precision first, as the reference stores it.
    cdef floating m = row_max(x, n)
    cdef double s = sum_exp_row(x, m, n)
    cdef floating y_t = <floating> (fastnn_exp(<double> (x[label] - m)) / s)
    return ce_term(<double> y_t)


cdef inline double fused_label_loss(const floating *x, Py_ssize_t n, Py_ssize_t label,
                                   Py_ssize_t *bad) noexcept nogil:
    # a flag written through a pointer: a plain assignment inside prange is lastprivate
    if label < 0 or label >= n:
        bad[0] = 1
        return 0.0
    return fused_row(x, n, label)


def softmax_cross_entropy_labels(const floating[:, ::1] x,   # IN (rows, n) scores
                                 const Py_ssize_t[::1] t,    # IN (rows,) labels
                                 int n_threads):
    """cross_entropy_error(softmax(x), t) in one pass. Returns (loss, n_bad_labels)."""
    cdef Py_ssize_t i, rows = x.shape[0], n = x.shape[1], bad = 0
    cdef double *terms
    cdef double total
    if rows * n < PARALLEL_MIN_ELEMS:
        n_threads = 1
    terms = <double *> malloc(max(rows, 1) * sizeof(double))
    if terms == NULL:
        raise MemoryError()
    with nogil:
        for i in prange(rows, schedule="static", num_threads=n_threads):
            terms[i] = fused_label_loss(&x[i, 0], n, t[i], &bad)
        total = sum_in_order(terms, rows)
    free(terms)
    return total / rows, bad


def softmax_cross_entropy_onehot(const floating[:, ::1] x,   # IN (rows, n) scores
                                 const target_t[:, ::1] t,   # IN (rows, n) one-hot
                                 int n_threads):
    cdef Py_ssize_t i, rows = x.shape[0], n = x.shape[1]
    cdef double *terms
    cdef double total
    if rows * n < PARALLEL_MIN_ELEMS:
        n_threads = 1
    terms = <double *> malloc(max(rows, 1) * sizeof(double))
    if terms == NULL:
        raise MemoryError()
    with nogil:
        for i in prange(rows, schedule="static", num_threads=n_threads):
            terms[i] = fused_row(&x[i, 0], n, argmax_row(&t[i, 0], n))
        total = sum_in_order(terms, rows)
    free(terms)
    return total / rows
