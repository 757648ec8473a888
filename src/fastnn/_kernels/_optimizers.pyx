# The optimizer kernel: one in-place step of every parameter of a net, for every update
# rule of both books (dlfs common/optimizer.py: SGD, Momentum, Nesterov, AdaGrad,
# RMSprop, Adam; nnfs Optimizer_SGD with momentum, Adagrad, RMSprop, Adam), the rule
# being a kind of one kernel and its hyperparameters a struct with named fields.
#
# Design (STYLE.md): the element loop of each rule is C (csrc/fastnn_ops.h), compiled per
# ISA level x {float, double}, each line the book's NumPy statement in the parameter's
# precision (so float32 and float64 give the book's bits; no FMA contraction). `update`
# is the def kernel: it takes the parameters of one dtype as lists of flat-contiguous
# arrays (parameters, gradients, up to two state arrays each), cuts them into fixed
# chunks and owns the prange over chunks, sized by fastnn_team(). Lists of arrays rather
# than one memoryview per array: a net's update runs every step, and acquiring a buffer per
# small parameter would cost more than updating it. fastnn.optimizer / fastnn.nnfs
# validate, cast, create the state and decide the order (parameters that share memory are
# updated one after the other, in the book's key order: `overlapping` tells them when).
# Element-wise only: results never depend on the thread count.

from cython.parallel cimport prange
from libc.stdlib cimport malloc, free, qsort

cimport numpy as cnp

from fastnn._kernels._cpu cimport isa_state

cnp.import_array()

cdef extern from "fastnn_cpu.h":
    void fastnn_isa_bind(const int *state) noexcept nogil

from fastnn._kernels._openmp cimport (threads_state, fastnn_threads_bind, fastnn_team,
                                      fastnn_team_end)

cdef extern from "fastnn_ops.h":
    ctypedef struct fastnn_optimizer:
        int kind
        double lr, momentum, rho, beta1, beta2, eps, step_size, correction1, correction2
    int FASTNN_OPT_SGD, FASTNN_OPT_MOMENTUM, FASTNN_OPT_NESTEROV, FASTNN_OPT_ADAGRAD
    int FASTNN_OPT_RMSPROP, FASTNN_OPT_ADAM, FASTNN_OPT_NNFS_SGD, FASTNN_OPT_NNFS_MOMENTUM
    int FASTNN_OPT_NNFS_ADAGRAD, FASTNN_OPT_NNFS_RMSPROP, FASTNN_OPT_NNFS_ADAM, FASTNN_OPT_N_KINDS
    const double *fastnn_opt_ns_per_elem
    void fastnn_optimizer_step_d(const fastnn_optimizer *h, double *p, const double *g,
                                 double *s1, double *s2, Py_ssize_t n) noexcept nogil
    void fastnn_optimizer_step_s(const fastnn_optimizer *h, float *p, const float *g,
                                 float *s1, float *s2, Py_ssize_t n) noexcept nogil

fastnn_isa_bind(isa_state())
fastnn_threads_bind(threads_state())

# the rules (kinds)
SGD = FASTNN_OPT_SGD
MOMENTUM = FASTNN_OPT_MOMENTUM
NESTEROV = FASTNN_OPT_NESTEROV
ADAGRAD = FASTNN_OPT_ADAGRAD
RMSPROP = FASTNN_OPT_RMSPROP
ADAM = FASTNN_OPT_ADAM
NNFS_SGD = FASTNN_OPT_NNFS_SGD
NNFS_MOMENTUM = FASTNN_OPT_NNFS_MOMENTUM
NNFS_ADAGRAD = FASTNN_OPT_NNFS_ADAGRAD
NNFS_RMSPROP = FASTNN_OPT_NNFS_RMSPROP
NNFS_ADAM = FASTNN_OPT_NNFS_ADAM

# how many state arrays each rule keeps per parameter
N_STATE = {SGD: 0, MOMENTUM: 1, NESTEROV: 1, ADAGRAD: 1, RMSPROP: 1, ADAM: 2,
           NNFS_SGD: 0, NNFS_MOMENTUM: 1, NNFS_ADAGRAD: 1, NNFS_RMSPROP: 1, NNFS_ADAM: 2}

cdef Py_ssize_t CHUNK = 4096   # elements a thread takes at a time


cdef class Hyperparameters:
    """One step's rule and hyperparameters, by name (csrc/fastnn_ops.h fastnn_optimizer).

    kind: one of this module's rule constants. lr: this step's learning rate.
    momentum; rho (dlfs RMSprop decay_rate, nnfs rho); beta1, beta2; eps (nnfs epsilon);
    step_size (dlfs Adam's lr_t); correction1, correction2 (nnfs Adam's 1 - beta ** t).
    """
    cdef public int kind
    cdef public double lr, momentum, rho, beta1, beta2, eps, step_size, correction1, correction2

    def __init__(self, int kind, double lr=0.0, double momentum=0.0, double rho=0.0,
                 double beta1=0.0, double beta2=0.0, double eps=1e-7, double step_size=0.0,
                 double correction1=1.0, double correction2=1.0):
        if not 0 <= kind < FASTNN_OPT_N_KINDS:
            raise ValueError("unknown optimizer rule %d" % kind)
        self.kind = kind
        self.lr = lr
        self.momentum = momentum
        self.rho = rho
        self.beta1 = beta1
        self.beta2 = beta2
        self.eps = eps
        self.step_size = step_size
        self.correction1 = correction1
        self.correction2 = correction2

    cdef fastnn_optimizer as_struct(self):
        cdef fastnn_optimizer h
        h.kind = self.kind
        h.lr = self.lr
        h.momentum = self.momentum
        h.rho = self.rho
        h.beta1 = self.beta1
        h.beta2 = self.beta2
        h.eps = self.eps
        h.step_size = self.step_size
        h.correction1 = self.correction1
        h.correction2 = self.correction2
        return h


cdef inline void step(const fastnn_optimizer *h, bint is_double, void *p, const void *g,
                      void *s1, void *s2, Py_ssize_t off, Py_ssize_t n) noexcept nogil:
    if is_double:
        fastnn_optimizer_step_d(h, <double *> p + off, <const double *> g + off,
                                <double *> s1 + off if s1 != NULL else NULL,
                                <double *> s2 + off if s2 != NULL else NULL, n)
    else:
        fastnn_optimizer_step_s(h, <float *> p + off, <const float *> g + off,
                                <float *> s1 + off if s1 != NULL else NULL,
                                <float *> s2 + off if s2 != NULL else NULL, n)


cdef inline void *data_of(list arrays, Py_ssize_t i):
    if arrays is None:
        return NULL
    return cnp.PyArray_DATA(<cnp.ndarray?> arrays[i])


def update(Hyperparameters hp,
           list params,     # IN/OUT flat-contiguous, aligned, native parameters of one float dtype
           list grads,      # IN  same dtype and sizes
           list state1,     # IN/OUT v / h / m / momentums / cache, or None
           list state2,     # IN/OUT Adam's second moment, or None
           int n_threads):
    """One step of rule hp.kind over every parameter, in place, with the GIL released.

    The fastnn.optimizer / fastnn.nnfs boundary guarantees the arrays' layout and sizes
    (and that no two of them share memory: see `overlapping`)."""
    cdef Py_ssize_t L = len(params), l, n_chunks = 0, total = 0, k, off
    if L == 0:
        return
    cdef fastnn_optimizer h = hp.as_struct()
    cdef bint is_double = cnp.PyArray_TYPE(<cnp.ndarray?> params[0]) == cnp.NPY_DOUBLE
    cdef void **P = <void **> malloc(4 * L * sizeof(void *))
    cdef Py_ssize_t *N = <Py_ssize_t *> malloc(L * sizeof(Py_ssize_t))
    cdef Py_ssize_t *chunk_param = NULL
    cdef Py_ssize_t *chunk_off = NULL
    cdef int team
    if P == NULL or N == NULL:
        free(P)
        free(N)
        raise MemoryError()
    try:
        for l in range(L):
            # data pointers straight from the arrays (no buffer acquisition per parameter)
            N[l] = cnp.PyArray_SIZE(<cnp.ndarray?> params[l])
            P[4 * l] = data_of(params, l)
            P[4 * l + 1] = data_of(grads, l)
            P[4 * l + 2] = data_of(state1, l)
            P[4 * l + 3] = data_of(state2, l)
            total += N[l]
            n_chunks += (N[l] + CHUNK - 1) // CHUNK
    except BaseException:
        free(P)
        free(N)
        raise
    team = fastnn_team(n_threads, total * fastnn_opt_ns_per_elem[h.kind])
    if team > 1:
        chunk_param = <Py_ssize_t *> malloc(n_chunks * sizeof(Py_ssize_t))
        chunk_off = <Py_ssize_t *> malloc(n_chunks * sizeof(Py_ssize_t))
        if chunk_param == NULL or chunk_off == NULL:
            free(chunk_param)
            free(chunk_off)
            team = 1    # no room for the chunk table: one thread needs none
    with nogil:
        if team == 1:
            for l in range(L):
                step(&h, is_double, P[4 * l], P[4 * l + 1], P[4 * l + 2], P[4 * l + 3], 0, N[l])
        else:
            k = 0
            for l in range(L):
                off = 0
                while off < N[l]:
                    chunk_param[k] = l
                    chunk_off[k] = off
                    k += 1
                    off += CHUNK
            for k in prange(n_chunks, schedule="static", num_threads=team):
                l = chunk_param[k]
                off = chunk_off[k]
                step(&h, is_double, P[4 * l], P[4 * l + 1], P[4 * l + 2], P[4 * l + 3], off,
                     min(CHUNK, N[l] - off))
        fastnn_team_end()
    if team > 1:
        free(chunk_param)
        free(chunk_off)
    free(P)
    free(N)


# ---- which arrays share memory ---------------------------------------------------------------

cdef struct Extent:
    char *lo
    char *hi


cdef int by_lo(const void *a, const void *b) noexcept nogil:
    cdef const Extent *x = <const Extent *> a
    cdef const Extent *y = <const Extent *> b
    return -1 if x.lo < y.lo else (1 if x.lo > y.lo else 0)


def overlapping(list arrays):
    """True when the byte ranges of any two of these arrays intersect (views of one array,
    the same array twice, ...): the caller then updates them one after the other."""
    cdef Py_ssize_t n = len(arrays), i, m = 0, d
    cdef cnp.ndarray a
    cdef char *lo
    cdef char *hi
    cdef char *reach
    cdef Py_ssize_t step_
    if n < 2:
        return False
    cdef Extent *ext = <Extent *> malloc(n * sizeof(Extent))
    if ext == NULL:
        raise MemoryError()
    try:
        for i in range(n):
            a = <cnp.ndarray?> arrays[i]
            if cnp.PyArray_SIZE(a) == 0:
                continue
            lo = hi = <char *> cnp.PyArray_DATA(a)
            for d in range(cnp.PyArray_NDIM(a)):
                step_ = (cnp.PyArray_DIM(a, d) - 1) * cnp.PyArray_STRIDE(a, d)
                if step_ < 0:
                    lo += step_
                else:
                    hi += step_
            ext[m].lo = lo
            ext[m].hi = hi + cnp.PyArray_ITEMSIZE(a)
            m += 1
        qsort(ext, m, sizeof(Extent), by_lo)
        if m:
            reach = ext[0].hi
            for i in range(1, m):
                if ext[i].lo < reach:
                    return True
                if ext[i].hi > reach:
                    reach = ext[i].hi
        return False
    finally:
        free(ext)


# ---- the boundary's fast path (fastnn.optimizer.SGD.update) -----------------------------------

cdef inline bint plain_float_array(object a, int typenum) noexcept:
    # a base-class ndarray of dtype `typenum` (float32/float64), C-contiguous, aligned,
    # native byte order
    return (type(a) is cnp.ndarray and cnp.PyArray_TYPE(<cnp.ndarray> a) == typenum
            and cnp.PyArray_ISCARRAY_RO(<cnp.ndarray> a)
            and cnp.PyArray_ISNOTSWAPPED(<cnp.ndarray> a))


def plain_update_arrays(dict params, dict grads):
    """(parameters, gradients) as two lists in params' key order when an update needs no
    conversion, cast, broadcast or ordering: every parameter a writeable, C-contiguous,
    aligned, native float32 or float64 ndarray (one dtype for all), every gradient such an
    array (read-only is fine) of its parameter's dtype and shape, and no two of them
    sharing memory. Otherwise None: the caller takes the checked path (which also
    raises the book's errors). Checked in C: the same checks in Python cost more than
    the update of a small net."""
    cdef Py_ssize_t L = len(params), i, d, m = 0
    cdef int typenum = -1
    cdef cnp.ndarray p, g
    cdef list ps = [], gs = []
    cdef Extent *ext
    if L == 0:
        return None
    for key, pv in params.items():
        if type(pv) is not cnp.ndarray:
            return None
        p = <cnp.ndarray> pv
        if typenum < 0:
            typenum = cnp.PyArray_TYPE(p)
            if typenum != cnp.NPY_DOUBLE and typenum != cnp.NPY_FLOAT:
                return None
        if not plain_float_array(p, typenum) or not cnp.PyArray_ISWRITEABLE(p):
            return None
        gv = grads.get(key)
        if gv is None or not plain_float_array(gv, typenum):
            return None
        g = <cnp.ndarray> gv
        if cnp.PyArray_NDIM(g) != cnp.PyArray_NDIM(p):
            return None
        for d in range(cnp.PyArray_NDIM(p)):
            if cnp.PyArray_DIM(g, d) != cnp.PyArray_DIM(p, d):
                return None
        ps.append(p)
        gs.append(g)
    # no two of the 2L arrays may share memory (tied weights, views, a gradient that is
    # its parameter): their byte ranges, sorted, must not intersect
    ext = <Extent *> malloc(2 * L * sizeof(Extent))
    if ext == NULL:
        raise MemoryError()
    for i in range(2 * L):
        p = <cnp.ndarray> (ps[i // 2] if i % 2 == 0 else gs[i // 2])
        if cnp.PyArray_NBYTES(p) == 0:
            continue
        ext[m].lo = <char *> cnp.PyArray_DATA(p)
        ext[m].hi = ext[m].lo + cnp.PyArray_NBYTES(p)
        m += 1
    qsort(ext, m, sizeof(Extent), by_lo)
    for i in range(1, m):
        if ext[i].lo < ext[i - 1].hi:
            free(ext)
            return None
    free(ext)
    return ps, gs
