# Activations of both books, forward and backward: sigmoid, softmax (the package's one
# softmax), ReLU, leaky ReLU, and the row argmax of predictions.
#
# Design (STYLE.md): the element and row loops are C, compiled per ISA level x {float,
# double} and picked at run time (csrc/fastnn_math.h: exp, sigmoid, softmax rows;
# csrc/fastnn_ops.h: ReLU, leaky ReLU, the sigmoid and softmax backward). The def kernels
# here take C-contiguous typed memoryviews (inputs const, outputs passed in), size their
# team with fastnn_team() from an estimate of the single-thread time, and own the prange:
# element-wise kernels split the flat array into one contiguous run per thread, row
# kernels hand out blocks of rows. Every output element is computed by one thread with
# the same operations, so results never depend on the thread count. The Python layers
# (fastnn.functions, fastnn.nnfs) validate, cast and allocate through fastnn._validate.
#
# Where NumPy would warn (exp overflowing in the sigmoid, x - max of an infinite row in
# the softmax), the kernel returns how many elements or rows did, and the boundary raises
# the RuntimeWarning under np.errstate's rules.

from cython.parallel cimport prange

from cython cimport floating

from fastnn._kernels._cpu cimport isa_state

cdef extern from "fastnn_cpu.h":
    void fastnn_isa_bind(const int *state) noexcept nogil

from fastnn._kernels._openmp cimport (threads_state, fastnn_threads_bind, fastnn_team,
                                      fastnn_team_end)

cdef extern from "fastnn_math.h":
    void fastnn_sigmoid_array_d(const double *x, double *y, Py_ssize_t n) noexcept nogil
    void fastnn_sigmoid_array_s(const float *x, float *y, Py_ssize_t n) noexcept nogil
    void fastnn_softmax_rows_d(const double *x, double *y, Py_ssize_t rows, Py_ssize_t n) noexcept nogil
    void fastnn_softmax_rows_s(const float *x, float *y, Py_ssize_t rows, Py_ssize_t n) noexcept nogil

cdef extern from "fastnn_ops.h":
    void fastnn_relu_d(const double *x, double *y, Py_ssize_t n) noexcept nogil
    void fastnn_relu_s(const float *x, float *y, Py_ssize_t n) noexcept nogil
    void fastnn_relu_backward_d(const double *x, const double *dv, double *out, Py_ssize_t n) noexcept nogil
    void fastnn_relu_backward_s(const float *x, const float *dv, float *out, Py_ssize_t n) noexcept nogil
    void fastnn_relu_grad_d(const double *x, double *out, Py_ssize_t n) noexcept nogil
    void fastnn_relu_grad_s(const float *x, float *out, Py_ssize_t n) noexcept nogil
    void fastnn_leaky_relu_d(const double *x, double *out, Py_ssize_t n, double alpha) noexcept nogil
    void fastnn_leaky_relu_s(const float *x, float *out, Py_ssize_t n, double alpha) noexcept nogil
    void fastnn_sigmoid_backward_d(const double *y, const double *dv, double *out, Py_ssize_t n) noexcept nogil
    void fastnn_sigmoid_backward_s(const float *y, const float *dv, float *out, Py_ssize_t n) noexcept nogil
    void fastnn_softmax_backward_d(const double *y, const double *dv, double *out, Py_ssize_t rows, Py_ssize_t n) noexcept nogil
    void fastnn_softmax_backward_s(const float *y, const float *dv, float *out, Py_ssize_t rows, Py_ssize_t n) noexcept nogil

fastnn_isa_bind(isa_state())
fastnn_threads_bind(threads_state())

# Single-thread cost per element (ns, Zen 4 at the AVX2/AVX-512 levels, rounded up), the
# estimate fastnn_team() sizes a region from.
cdef double NS_STREAM = 0.15     # relu, leaky relu, backward passes: bound by memory
cdef double NS_SIGMOID = 0.8
cdef double NS_SOFTMAX = 1.2
cdef Py_ssize_t ROW_BLOCK = 64   # softmax rows per block handed to a thread

# exp(-x) overflows (NumPy warns) where x < -log(max) of the dtype
cdef double SIGMOID_OVERFLOW_D = -709.782712893384
cdef double SIGMOID_OVERFLOW_S = -88.72283905206835


cdef inline Py_ssize_t run_length(Py_ssize_t n, int team) noexcept nogil:
    # elements per thread: one contiguous run each, a multiple of 64 (whole cache lines)
    return ((n + team - 1) // team + 63) // 64 * 64


# ---- element-wise, one op per kind (all share the split below) ----------------------------

cdef enum:
    OP_RELU
    OP_RELU_GRAD
    OP_SIGMOID


cdef inline void unary_run(int op, const floating *x, floating *y, Py_ssize_t n) noexcept nogil:
    if floating is double:
        if op == OP_RELU:
            fastnn_relu_d(x, y, n)
        elif op == OP_RELU_GRAD:
            fastnn_relu_grad_d(x, y, n)
        else:
            fastnn_sigmoid_array_d(x, y, n)
    else:
        if op == OP_RELU:
            fastnn_relu_s(x, y, n)
        elif op == OP_RELU_GRAD:
            fastnn_relu_grad_s(x, y, n)
        else:
            fastnn_sigmoid_array_s(x, y, n)


cdef inline Py_ssize_t count_below(const floating *x, Py_ssize_t n, double limit) noexcept nogil:
    cdef Py_ssize_t i, c = 0
    cdef floating lim = <floating> limit
    for i in range(n):
        c += x[i] < lim
    return c


cdef Py_ssize_t unary(int op, const floating *x, floating *y, Py_ssize_t n, double ns,
                      int n_threads) noexcept nogil:
    """y = op(x) over n elements; for the sigmoid, returns how many exp(-x) overflowed."""
    cdef int team = fastnn_team(n_threads, n * ns)
    cdef Py_ssize_t c, i0, run, over = 0
    cdef double limit = SIGMOID_OVERFLOW_D if floating is double else SIGMOID_OVERFLOW_S
    if team == 1:
        unary_run(op, x, y, n)
        if op == OP_SIGMOID:
            over = count_below(x, n, limit)
        fastnn_team_end()
        return over
    run = run_length(n, team)
    for c in prange(team, schedule="static", num_threads=team):
        i0 = c * run
        if i0 < n:
            unary_run(op, x + i0, y + i0, min(run, n - i0))
            if op == OP_SIGMOID:
                over += count_below(x + i0, min(run, n - i0), limit)
    fastnn_team_end()
    return over


def sigmoid(const floating[::1] x,   # IN  (n,)
            floating[::1] out,       # OUT (n,)
            int n_threads):
    """out = 1 / (1 + exp(-x)). Returns how many elements NumPy's exp(-x) overflows for."""
    cdef Py_ssize_t n = x.shape[0], over
    if n == 0:
        return 0
    with nogil:
        over = unary(OP_SIGMOID, &x[0], &out[0], n, NS_SIGMOID, n_threads)
    return over


def relu(const floating[::1] x,   # IN  (n,)
         floating[::1] out,       # OUT (n,)
         int n_threads):
    """out = np.maximum(0, x) (NaN propagates)."""
    cdef Py_ssize_t n = x.shape[0]
    if n:
        with nogil:
            unary(OP_RELU, &x[0], &out[0], n, NS_STREAM, n_threads)


def relu_grad(const floating[::1] x,   # IN  (n,)
              floating[::1] out,       # OUT (n,)
              int n_threads):
    """out = 1 where x >= 0 else 0 (the dlfs book's relu_grad: 1 at 0)."""
    cdef Py_ssize_t n = x.shape[0]
    if n:
        with nogil:
            unary(OP_RELU_GRAD, &x[0], &out[0], n, NS_STREAM, n_threads)


cdef inline void leaky_run(const floating *x, floating *y, Py_ssize_t n, double alpha) noexcept nogil:
    if floating is double:
        fastnn_leaky_relu_d(x, y, n, alpha)
    else:
        fastnn_leaky_relu_s(x, y, n, alpha)


def leaky_relu(const floating[::1] x,   # IN  (n,)
               floating[::1] out,       # OUT (n,)
               double alpha,
               int n_threads):
    """out = np.maximum(alpha * x, x) (tf.nn.leaky_relu)."""
    cdef Py_ssize_t n = x.shape[0], c, i0, run
    cdef int team
    if n == 0:
        return
    with nogil:
        team = fastnn_team(n_threads, n * NS_STREAM)
        if team == 1:
            leaky_run(&x[0], &out[0], n, alpha)
        else:
            run = run_length(n, team)
            for c in prange(team, schedule="static", num_threads=team):
                i0 = c * run
                if i0 < n:
                    leaky_run(&x[i0], &out[i0], min(run, n - i0), alpha)
        fastnn_team_end()


# ---- element-wise with a gradient: out = f(a, dv) ------------------------------------------

cdef enum:
    OP_RELU_BACKWARD
    OP_SIGMOID_BACKWARD


cdef inline void binary_run(int op, const floating *a, const floating *dv, floating *out,
                            Py_ssize_t n) noexcept nogil:
    if floating is double:
        if op == OP_RELU_BACKWARD:
            fastnn_relu_backward_d(a, dv, out, n)
        else:
            fastnn_sigmoid_backward_d(a, dv, out, n)
    else:
        if op == OP_RELU_BACKWARD:
            fastnn_relu_backward_s(a, dv, out, n)
        else:
            fastnn_sigmoid_backward_s(a, dv, out, n)


cdef void binary(int op, const floating *a, const floating *dv, floating *out, Py_ssize_t n,
                 int n_threads) noexcept nogil:
    cdef int team = fastnn_team(n_threads, n * NS_STREAM)
    cdef Py_ssize_t c, i0, run
    if team == 1:
        binary_run(op, a, dv, out, n)
        fastnn_team_end()
        return
    run = run_length(n, team)
    for c in prange(team, schedule="static", num_threads=team):
        i0 = c * run
        if i0 < n:
            binary_run(op, a + i0, dv + i0, out + i0, min(run, n - i0))
    fastnn_team_end()


def relu_backward(const floating[::1] x,    # IN  (n,) the forward input
                  const floating[::1] dv,   # IN  (n,)
                  floating[::1] out,        # OUT (n,) (may be dv itself: dlfs edits dout in place)
                  int n_threads):
    """out = dv, with 0 where x <= 0."""
    cdef Py_ssize_t n = x.shape[0]
    if n:
        with nogil:
            binary(OP_RELU_BACKWARD, &x[0], &dv[0], &out[0], n, n_threads)


def sigmoid_backward(const floating[::1] y,    # IN  (n,) the forward output
                     const floating[::1] dv,   # IN  (n,)
                     floating[::1] out,        # OUT (n,)
                     int n_threads):
    """out = dv * (1 - y) * y."""
    cdef Py_ssize_t n = y.shape[0]
    if n:
        with nogil:
            binary(OP_SIGMOID_BACKWARD, &y[0], &dv[0], &out[0], n, n_threads)


# ---- softmax over the last axis ------------------------------------------------------------

cdef inline void softmax_block(const floating *x, floating *y, Py_ssize_t rows,
                               Py_ssize_t n) noexcept nogil:
    if floating is double:
        fastnn_softmax_rows_d(x, y, rows, n)
    else:
        fastnn_softmax_rows_s(x, y, rows, n)


cdef inline Py_ssize_t infinite_rows(const floating *x, const floating *y, Py_ssize_t rows,
                                     Py_ssize_t n) noexcept nogil:
    # rows whose max is +-inf: x - max is inf - inf somewhere (NumPy: "invalid value
    # encountered in subtract"), and the row comes out NaN. A NaN row without a NaN input
    # is exactly such a row.
    cdef Py_ssize_t r, j, bad = 0
    cdef bint has_nan
    for r in range(rows):
        if y[r * n] == y[r * n]:
            continue
        has_nan = False
        for j in range(n):
            if x[r * n + j] != x[r * n + j]:
                has_nan = True
                break
        bad += not has_nan
    return bad


def softmax(const floating[:, ::1] x,   # IN  (rows, n)
            floating[:, ::1] out,       # OUT (rows, n)
            int n_threads):
    """out = exp(x - max) / sum(exp(x - max)) row by row. Returns how many rows had an
    infinite maximum (NaN rows, where NumPy warns about inf - inf)."""
    cdef Py_ssize_t blk, r0, nr, rows = x.shape[0], n = x.shape[1], bad = 0
    cdef int team
    if rows == 0 or n == 0:
        return 0
    cdef Py_ssize_t n_blocks = (rows + ROW_BLOCK - 1) // ROW_BLOCK
    with nogil:
        team = fastnn_team(n_threads, rows * n * NS_SOFTMAX)
        if team == 1:  # no parallel region at all: small calls stay cheap
            softmax_block(&x[0, 0], &out[0, 0], rows, n)
            bad = infinite_rows(&x[0, 0], &out[0, 0], rows, n)
        else:
            for blk in prange(n_blocks, schedule="static", num_threads=team):
                r0 = blk * ROW_BLOCK
                nr = min(ROW_BLOCK, rows - r0)
                softmax_block(&x[r0, 0], &out[r0, 0], nr, n)
                bad += infinite_rows(&x[r0, 0], &out[r0, 0], nr, n)
        fastnn_team_end()
    return bad


cdef inline void softmax_backward_block(const floating *y, const floating *dv, floating *out,
                                        Py_ssize_t rows, Py_ssize_t n) noexcept nogil:
    if floating is double:
        fastnn_softmax_backward_d(y, dv, out, rows, n)
    else:
        fastnn_softmax_backward_s(y, dv, out, rows, n)


def softmax_backward(const floating[:, ::1] y,    # IN  (rows, n) the softmax output
                     const floating[:, ::1] dv,   # IN  (rows, n)
                     floating[:, ::1] out,        # OUT (rows, n)
                     int n_threads):
    """nnfs Activation_Softmax.backward: out[i] = (diagflat(y_i) - y_i y_i^T) @ dv_i."""
    cdef Py_ssize_t blk, r0, rows = y.shape[0], n = y.shape[1]
    cdef int team
    if rows == 0 or n == 0:
        return
    cdef Py_ssize_t n_blocks = (rows + ROW_BLOCK - 1) // ROW_BLOCK
    with nogil:
        team = fastnn_team(n_threads, rows * n * NS_STREAM * 2)
        if team == 1:
            softmax_backward_block(&y[0, 0], &dv[0, 0], &out[0, 0], rows, n)
        else:
            for blk in prange(n_blocks, schedule="static", num_threads=team):
                r0 = blk * ROW_BLOCK
                softmax_backward_block(&y[r0, 0], &dv[r0, 0], &out[r0, 0],
                                       min(ROW_BLOCK, rows - r0), n)
        fastnn_team_end()


def argmax_rows(const floating[:, ::1] x,   # IN  (rows, n), n >= 1
                Py_ssize_t[::1] out,        # OUT (rows,)
                int n_threads):
    """out = np.argmax(x, axis=1) (first maximum; the first NaN wins)."""
    cdef Py_ssize_t i, rows = x.shape[0], n = x.shape[1]
    cdef int team
    if rows == 0 or n == 0:
        return
    with nogil:
        team = fastnn_team(n_threads, rows * n * NS_STREAM)
        if team == 1:
            for i in range(rows):
                out[i] = argmax_row(&x[i, 0], n)
        else:
            for i in prange(rows, schedule="static", num_threads=team):
                out[i] = argmax_row(&x[i, 0], n)
        fastnn_team_end()
