# Activations: element-wise sigmoid, and softmax over the last axis of a block of rows.
#
# Design (STYLE.md): the math of a run of elements / a block of rows (row max, exp, sums)
# is C in csrc/fastnn_math.h, compiled per ISA level and picked at run time; the def
# functions here own the prange (static schedule: elements and rows cost the same);
# fastnn.functions validates, casts and allocates. Each output element is computed by one
# thread, so results do not depend on the thread count. Sums are kept in double.

from cython.parallel cimport prange

from cython cimport floating

from fastnn._kernels._cpu cimport isa_state
from fastnn._kernels._openmp cimport (threads_state, fastnn_threads_bind, fastnn_team,
                                      fastnn_team_end)

cdef extern from "fastnn_cpu.h":
    void fastnn_isa_bind(const int *state) noexcept nogil
    int fastnn_isa() noexcept nogil

cdef extern from "fastnn_math.h":
    void fastnn_sigmoid_array_d(const double *x, double *y, Py_ssize_t n) noexcept nogil
    void fastnn_sigmoid_array_s(const float *x, float *y, Py_ssize_t n) noexcept nogil
    void fastnn_softmax_rows_d(const double *x, double *y, Py_ssize_t rows, Py_ssize_t n) noexcept nogil
    void fastnn_softmax_rows_s(const float *x, float *y, Py_ssize_t rows, Py_ssize_t n) noexcept nogil

fastnn_isa_bind(isa_state())
fastnn_threads_bind(threads_state())

# Rows go to threads in blocks; fastnn_team() sizes each region from its single-thread
# time: ns per element measured on one thread (tools/thread_grain.py; Zen 4, AVX2 or
# AVX-512 / baseline ISA).
cdef Py_ssize_t ROW_BLOCK = 64
cdef Py_ssize_t SIGMOID_CHUNK = 4096


cdef inline double elem_ns(bint is_double, double vec_d, double base_d, double vec_s,
                           double base_s) noexcept nogil:
    if fastnn_isa() == 0:
        return base_d if is_double else base_s
    return vec_d if is_double else vec_s


cdef inline void sigmoid_array(const floating *x, floating *y, Py_ssize_t n) noexcept nogil:
    if floating is double:
        fastnn_sigmoid_array_d(x, y, n)
    else:
        fastnn_sigmoid_array_s(x, y, n)


def sigmoid(const floating[::1] x,   # IN  (n,)
            floating[::1] out,       # OUT (n,)
            int n_threads):
    """out = 1 / (1 + exp(-x)), element-wise, in chunks per thread."""
    cdef Py_ssize_t c, n = x.shape[0], chunk = SIGMOID_CHUNK
    if n == 0:
        return
    with nogil:
        n_threads = fastnn_team(n_threads, n * elem_ns(floating is double, 1.05, 5.8, 0.45, 1.8))
        if n_threads == 1:
            sigmoid_array(&x[0], &out[0], n)
        else:
            for c in prange((n + chunk - 1) // chunk, schedule="static", num_threads=n_threads):
                sigmoid_array(&x[c * chunk], &out[c * chunk], min(chunk, n - c * chunk))
        fastnn_team_end()


cdef inline void softmax_block(const floating *x, floating *y, Py_ssize_t rows,
                               Py_ssize_t n) noexcept nogil:
    if floating is double:
        fastnn_softmax_rows_d(x, y, rows, n)
    else:
        fastnn_softmax_rows_s(x, y, rows, n)


def softmax(const floating[:, ::1] x,   # IN  (rows, n)
            floating[:, ::1] out,       # OUT (rows, n)
            int n_threads):
    """out = exp(x - max) / sum(exp(x - max)) row by row."""
    cdef Py_ssize_t blk, r0, rows = x.shape[0], n = x.shape[1]
    if rows == 0 or n == 0:
        return
    cdef Py_ssize_t n_blocks = (rows + ROW_BLOCK - 1) // ROW_BLOCK
    with nogil:
        n_threads = fastnn_team(n_threads, rows * n * elem_ns(floating is double, 2.3, 6.2, 1.7, 3.2))
        if n_threads == 1:  # no parallel region at all: small calls stay cheap
            softmax_block(&x[0, 0], &out[0, 0], rows, n)
        else:
            for blk in prange(n_blocks, schedule="static", num_threads=n_threads):
                r0 = blk * ROW_BLOCK
                softmax_block(&x[r0, 0], &out[r0, 0], min(ROW_BLOCK, rows - r0), n)
        fastnn_team_end()
