# Optimizer updates (the book's common/optimizer.py) over all parameters in one call.
#
# Design (STYLE.md): `step_run` is the nogil element function (one run of one parameter,
# the book's formula for each optimizer, operation for operation in the parameter's
# dtype, so float32 gives the reference's float32 numbers); `update` is the def kernel
# that takes every parameter of the net (flat views), cuts them into fixed chunks and
# owns the prange over chunks; fastnn.optimizer (Python) validates shapes/dtypes, creates
# the state lazily and resolves the learning rate (number or schedule).
# Element-wise only: results do not depend on the thread count.

from cython.parallel cimport prange
from libc.math cimport sqrt, sqrtf
from libc.stdlib cimport malloc, free

cimport numpy as cnp
from cython cimport floating

from fastnn._kernels._openmp cimport (threads_state, fastnn_threads_bind, fastnn_team,
                                      fastnn_team_end)

cnp.import_array()
fastnn_threads_bind(threads_state())

SGD_ = 0
MOMENTUM = 1
NESTEROV = 2
ADAGRAD = 3
RMSPROP = 4
ADAM = 5

# chunk of elements one thread takes
cdef Py_ssize_t CHUNK = 4096
# single-thread ns per element of each kind (SGD, Momentum, Nesterov, AdaGrad, RMSprop,
# Adam), float64 / float32, measured (tools/thread_grain.py, Zen 4; plain C, no ISA
# dispatch): fastnn_team() sizes the region from them
cdef double[6] STEP_NS_D = [0.28, 0.34, 0.4, 1.85, 1.9, 1.87]
cdef double[6] STEP_NS_S = [0.14, 0.16, 0.2, 0.57, 0.6, 1.12]


cdef inline double step_ns(int kind, bint is_double) noexcept nogil:
    kind = min(max(kind, 0), 5)  # any other kind runs Adam's formula (step_run's else)
    return STEP_NS_D[kind] if is_double else STEP_NS_S[kind]


cdef inline floating fsqrt(floating x) noexcept nogil:
    if floating is float:
        return sqrtf(x)
    else:
        return sqrt(x)


cdef inline void step_run(int kind, floating *p, const floating *g, floating *s1,
                          floating *s2, Py_ssize_t n, const double *c) noexcept nogil:
    """One run of one parameter. c: the optimizer's constants (see fastnn.optimizer)."""
    cdef Py_ssize_t i
    cdef floating lr = <floating> c[0]
    cdef floating a = <floating> c[1]
    cdef floating b = <floating> c[2]
    cdef floating eps = <floating> 1e-7
    cdef double lr_t = c[0]
    if kind == 0:      # SGD
        for i in range(n):
            p[i] = p[i] - lr * g[i]                          # p -= lr * g
    elif kind == 1:    # Momentum: a = momentum
        for i in range(n):
            s1[i] = a * s1[i] - lr * g[i]                    # v = momentum * v - lr * g
            p[i] = p[i] + s1[i]                              # p += v
    elif kind == 2:    # Nesterov: a = momentum, b = momentum^2, c[3] = (1 + momentum) * lr
        for i in range(n):
            s1[i] = s1[i] * a                                # v *= momentum
            s1[i] = s1[i] - lr * g[i]                        # v -= lr * g
            p[i] = p[i] + b * s1[i]                          # p += momentum^2 * v
            p[i] = p[i] - (<floating> c[3]) * g[i]           # p -= (1 + momentum) * lr * g
    elif kind == 3:    # AdaGrad
        for i in range(n):
            s1[i] = s1[i] + g[i] * g[i]                      # h += g * g
            p[i] = p[i] - lr * g[i] / (fsqrt(s1[i]) + eps)   # p -= lr * g / (sqrt(h) + 1e-7)
    elif kind == 4:    # RMSprop: a = decay_rate, b = 1 - decay_rate
        for i in range(n):
            s1[i] = s1[i] * a                                # h *= decay_rate
            s1[i] = s1[i] + b * g[i] * g[i]                  # h += (1 - decay_rate) * g * g
            p[i] = p[i] - lr * g[i] / (fsqrt(s1[i]) + eps)   # p -= lr * g / (sqrt(h) + 1e-7)
    else:              # Adam: c[0] = lr_t (a float64 scalar in the book), a = 1 - beta1, b = 1 - beta2
        for i in range(n):
            s1[i] = s1[i] + a * (g[i] - s1[i])               # m += (1 - beta1) * (g - m)
            s2[i] = s2[i] + b * (g[i] * g[i] - s2[i])        # v += (1 - beta2) * (g**2 - v)
            # p -= lr_t * m / (sqrt(v) + 1e-7), lr_t * m in float64 as NumPy does
            p[i] = <floating> (<double> p[i] - lr_t * <double> s1[i]
                               / <double> (fsqrt(s2[i]) + eps))


cdef void run_update(int kind, list ps, list gs, list s1s, list s2s, const double *c,
                     int n_threads, floating dummy) except *:
    cdef Py_ssize_t L = len(ps), l, n_chunks = 0, total = 0, k, j, off
    cdef cnp.ndarray a
    cdef floating **P = <floating **> malloc(4 * max(L, 1) * sizeof(floating *))
    cdef Py_ssize_t *N = <Py_ssize_t *> malloc(max(L, 1) * sizeof(Py_ssize_t))
    cdef Py_ssize_t *chunk_seg = NULL
    cdef Py_ssize_t *chunk_off = NULL
    if P == NULL or N == NULL:
        free(P); free(N)
        raise MemoryError()
    for l in range(L):
        # data pointers straight from the arrays (no memoryview objects: this runs every
        # step for every parameter); the Python layer made them contiguous, same dtype
        a = <cnp.ndarray?> ps[l]
        N[l] = cnp.PyArray_SIZE(a)
        P[4 * l] = <floating *> cnp.PyArray_DATA(a)
        P[4 * l + 1] = <floating *> cnp.PyArray_DATA(<cnp.ndarray?> gs[l])
        P[4 * l + 2] = NULL
        P[4 * l + 3] = NULL
        if s1s is not None:
            P[4 * l + 2] = <floating *> cnp.PyArray_DATA(<cnp.ndarray?> s1s[l])
        if s2s is not None:
            P[4 * l + 3] = <floating *> cnp.PyArray_DATA(<cnp.ndarray?> s2s[l])
        total += N[l]
        n_chunks += (N[l] + CHUNK - 1) // CHUNK
    n_threads = fastnn_team(n_threads, total * step_ns(kind, floating is double))
    if n_threads == 1:
        with nogil:
            for l in range(L):
                step_run(kind, P[4 * l], P[4 * l + 1], P[4 * l + 2], P[4 * l + 3], N[l], c)
    else:
        chunk_seg = <Py_ssize_t *> malloc(n_chunks * sizeof(Py_ssize_t))
        chunk_off = <Py_ssize_t *> malloc(n_chunks * sizeof(Py_ssize_t))
        if chunk_seg == NULL or chunk_off == NULL:
            free(P); free(N); free(chunk_seg); free(chunk_off)
            raise MemoryError()
        k = 0
        for l in range(L):
            for off in range(0, N[l], CHUNK):
                chunk_seg[k] = l
                chunk_off[k] = off
                k += 1
        with nogil:
            for k in prange(n_chunks, schedule="static", num_threads=n_threads):
                l = chunk_seg[k]
                off = chunk_off[k]
                j = min(CHUNK, N[l] - off)
                step_run(kind, P[4 * l] + off, P[4 * l + 1] + off,
                         P[4 * l + 2] + off if P[4 * l + 2] != NULL else NULL,
                         P[4 * l + 3] + off if P[4 * l + 3] != NULL else NULL, j, c)
        free(chunk_seg)
        free(chunk_off)
    fastnn_team_end()
    free(P)
    free(N)


def update(int kind,
           list params,      # IN/OUT flat C-contiguous views of the parameters (one dtype)
           list grads,       # IN  flat, same dtype and sizes
           list state1,      # IN/OUT v / h / m, or None
           list state2,      # IN/OUT Adam's v, or None
           double c0, double c1, double c2, double c3,
           bint is_double,
           int n_threads):
    """One optimizer step over every parameter, in place, with the GIL released."""
    cdef double c[4]
    c[0] = c0
    c[1] = c1
    c[2] = c2
    c[3] = c3
    if is_double:
        run_update[double](kind, params, grads, state1, state2, c, n_threads, 0.0)
    else:
        run_update[float](kind, params, grads, state1, state2, c, n_threads, 0.0)
