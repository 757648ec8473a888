# Losses of both books and of the TensorFlow notes, with their gradients: categorical
# cross-entropy (labels, one-hot or soft targets; on probabilities or fused with the
# softmax of logits), binary cross-entropy, MSE, MAE, and the L1/L2 penalty.
#
# One kernel per operation; what differs between the books is a parameter:
#   mode   how the probability of a class becomes a log term
#          SHIFT        dlfs:  log(p + 1e-7), the shift rounded to p's dtype and added in it
#          CLIP         nnfs:  log(clip(p, 1e-7, 1 - 1e-7)), the bounds rounded to p's dtype
#          CLIP_NORM    Keras sparse, probabilities: log(clip(p_t)) - log(sum_j clip(p_j))
#          NORM_CLIP    Keras categorical, probabilities: log(clip(p_j / sum_k p_k))
#          LOGITS_SHIFT dlfs softmax_loss: SHIFT of softmax(x), bit for bit the two-step value
#          LOGITS       tf.nn: log_softmax(x)_j = (x_j - max) - log(sum_k exp(x_k - max))
#          PROBS        (gradients) the input already is the softmax output
#   reading how a (rows, n) target array is read
#          ARGMAX       dlfs one-hot: the class is argmax(t_i) (the package's one argmax)
#          WEIGHTED     nnfs one-hot: -log(sum_j clip(p_j) t_j)
#          SOFT         Keras / tf.nn: -sum_j t'_j log p_j, t' = t (1 - s) + s / n (smoothing s)
#
# Design (STYLE.md): the row math is here (nogil, per block of rows) and in C compiled per
# ISA level (csrc/fastnn_math.h: exp, log, softmax rows; csrc/fastnn_ops.h: the point-wise
# losses and their gradients, the penalty). The def kernels take C-contiguous typed
# memoryviews (outputs passed in, per-row outputs optional) and own the prange over fixed
# blocks of rows, sized by fastnn_team(). A block's rows are summed in row order into that
# block's partial sum, and the partial sums are added in block order after the parallel
# region, so totals never depend on the thread count. Sums are kept in double; per-row
# values are rounded to the input's dtype (as the books' arrays hold them) before they are
# summed. Scratch is a fixed stack buffer (SCRATCH elements): rows wider than it are
# processed in chunks, so no size of input allocates more than the block partial sums.
# Kernels never raise: bad labels are counted and returned, as are the log(0) / log(< 0)
# and x / 0 events where NumPy would warn; fastnn.functions / nnfs / losses raise and warn.

from cython.parallel cimport prange
from libc.math cimport NAN
from libc.stdlib cimport malloc, free

from cython cimport floating

from fastnn._kernels._cpu cimport isa_state
from fastnn._kernels._activations cimport argmax_row

cdef extern from "fastnn_cpu.h":
    void fastnn_isa_bind(const int *state) noexcept nogil

from fastnn._kernels._openmp cimport (threads_state, fastnn_threads_bind, fastnn_team,
                                      fastnn_team_end)

cdef extern from "fastnn_math.h":
    void fastnn_exp_inplace_d(double *y, Py_ssize_t n) noexcept nogil
    void fastnn_exp_inplace_s(float *y, Py_ssize_t n) noexcept nogil
    void fastnn_log_inplace(double *v, Py_ssize_t n) noexcept nogil
    void fastnn_softmax_rows_d(const double *x, double *y, Py_ssize_t rows, Py_ssize_t n) noexcept nogil
    void fastnn_softmax_rows_s(const float *x, float *y, Py_ssize_t rows, Py_ssize_t n) noexcept nogil

cdef extern from "fastnn_ops.h":
    int FASTNN_LOSS_BCE, FASTNN_LOSS_BCE_KERAS, FASTNN_LOSS_BCE_LOGITS, FASTNN_LOSS_MSE, FASTNN_LOSS_MAE
    double fastnn_pointwise_loss_d(int kind, const double *y, const double *t, Py_ssize_t rows,
                                   Py_ssize_t n, double eps, double smoothing, double *out_rows) noexcept nogil
    double fastnn_pointwise_loss_s(int kind, const float *y, const float *t, Py_ssize_t rows,
                                   Py_ssize_t n, double eps, double smoothing, float *out_rows) noexcept nogil
    void fastnn_pointwise_loss_grad_d(int kind, const double *y, const double *t, Py_ssize_t size,
                                      double eps, double smoothing, double d1, double d2, double *out) noexcept nogil
    void fastnn_pointwise_loss_grad_s(int kind, const float *y, const float *t, Py_ssize_t size,
                                      double eps, double smoothing, double d1, double d2, float *out) noexcept nogil
    Py_ssize_t fastnn_cce_grad_d(const double *y, const double *t, Py_ssize_t size, double d,
                                 double *out, Py_ssize_t *n_invalid) noexcept nogil
    Py_ssize_t fastnn_cce_grad_s(const float *y, const float *t, Py_ssize_t size, double d,
                                 float *out, Py_ssize_t *n_invalid) noexcept nogil
    void fastnn_penalty_grad_d(const double *w, double *dw, Py_ssize_t n, double l1, double l2) noexcept nogil
    void fastnn_penalty_grad_s(const float *w, float *dw, Py_ssize_t n, double l1, double l2) noexcept nogil
    void fastnn_penalty_sums_d(const double *w, Py_ssize_t n, double *sabs, double *ssq) noexcept nogil
    void fastnn_penalty_sums_s(const float *w, Py_ssize_t n, double *sabs, double *ssq) noexcept nogil

fastnn_isa_bind(isa_state())
fastnn_threads_bind(threads_state())

ctypedef fused target_t:
    float
    double

# modes and readings (see the top of this file); fastnn._validate.LOSS names them
SHIFT = 0
CLIP = 1
CLIP_NORM = 2
NORM_CLIP = 3
LOGITS_SHIFT = 4
LOGITS = 5
PROBS = 6
ARGMAX = 0
WEIGHTED = 1
SOFT = 2
BCE = FASTNN_LOSS_BCE
BCE_KERAS = FASTNN_LOSS_BCE_KERAS
BCE_LOGITS = FASTNN_LOSS_BCE_LOGITS
MSE = FASTNN_LOSS_MSE
MAE = FASTNN_LOSS_MAE

cdef enum:
    M_SHIFT = 0
    M_CLIP = 1
    M_CLIP_NORM = 2
    M_NORM_CLIP = 3
    M_LOGITS_SHIFT = 4
    M_LOGITS = 5
    M_PROBS = 6
    R_ARGMAX = 0
    R_WEIGHTED = 1
    R_SOFT = 2
    SCRATCH = 8192     # elements of stack scratch per block (64 KiB in float64)
    BCE_LOGITS_K = 2   # FASTNN_LOSS_BCE_LOGITS (libm exp and log1p: ~10x an element-wise pass)
    MAX_BLOCK = 64     # rows per block at most
    CHUNK = 64         # elements per log batch inside a row

cdef double EPS = 1e-7
cdef double NS_PROB_ROW = 12.0     # single-thread ns per row of a probability gather + log
cdef double NS_ELEM = 1.5          # ns per element of a row that is read (exp, sums)
cdef double NS_STREAM = 0.2        # ns per element of an element-wise pass (bound by memory)


cdef inline Py_ssize_t rows_per_block(Py_ssize_t n) noexcept nogil:
    # blocks are fixed by the shape alone (never by the thread count): totals stay the same
    cdef Py_ssize_t b = SCRATCH // n if n > 0 else MAX_BLOCK
    return max(1, min(MAX_BLOCK, b))


cdef inline void exp_inplace(floating *v, Py_ssize_t n) noexcept nogil:
    if floating is double:
        fastnn_exp_inplace_d(v, n)
    else:
        fastnn_exp_inplace_s(v, n)


cdef inline floating row_max(const floating *x, Py_ssize_t n) noexcept nogil:
    # np.max of a row: any NaN makes it NaN (so the softmax row is NaN, as the reference's)
    cdef Py_ssize_t j
    cdef floating m = x[0]
    cdef bint nan = False
    for j in range(n):
        m = x[j] if x[j] > m else m
        nan = nan | (x[j] != x[j])
    if nan:
        return <floating> NAN
    return m


cdef inline floating clip(floating v) noexcept nogil:
    # np.clip(v, 1e-7, 1 - 1e-7) with the bounds rounded to v's dtype; NaN passes through
    cdef floating lo = <floating> EPS, hi = <floating> (1 - EPS)
    return lo if v < lo else (hi if v > hi else v)


cdef inline bint in_clip(floating v) noexcept nogil:
    # where clip_by_value passes its gradient
    return <floating> EPS <= v <= <floating> (1 - EPS)


# ---- softmax statistics of a block of rows --------------------------------------------------
# For each row: m = max (NaN if any NaN), s = sum_j exp(x_j - m) with each exp rounded to the
# input's dtype and summed in double in order j: exactly the numbers fastnn_softmax_rows
# divides by, so softmax values built from them are the softmax kernel's bits. When the
# block fits in the scratch, buf keeps exp(x - m) of every element; a row wider than the
# scratch (then the block is that one row) is streamed through it in chunks.

cdef inline void softmax_stats(const floating *x, Py_ssize_t rows, Py_ssize_t n, floating *buf,
                               floating *m, double *s) noexcept nogil:
    cdef Py_ssize_t r, j, j0, ln
    cdef double acc
    if rows * n <= SCRATCH:
        for r in range(rows):
            m[r] = row_max(x + r * n, n)
            for j in range(n):
                buf[r * n + j] = x[r * n + j] - m[r]            # x - max, in x's precision
        exp_inplace(buf, rows * n)
        for r in range(rows):
            acc = 0.0
            for j in range(n):
                acc += buf[r * n + j]
            s[r] = acc
    else:
        m[0] = row_max(x, n)
        acc = 0.0
        j0 = 0
        while j0 < n:
            ln = min(<Py_ssize_t> SCRATCH, n - j0)
            for j in range(ln):
                buf[j] = x[j0 + j] - m[0]
            exp_inplace(buf, ln)
            for j in range(ln):
                acc += buf[j]
            j0 += ln
        s[0] = acc


cdef inline floating softmax_at(const floating *x, Py_ssize_t rows, Py_ssize_t n, const floating *buf,
                                const floating *m, const double *s, Py_ssize_t r,
                                Py_ssize_t j) noexcept nogil:
    # softmax(x)[r, j] = (T)(exp(x - m) / s), as fastnn_softmax_rows computes it
    cdef floating e
    if rows * n <= SCRATCH:
        e = buf[r * n + j]
    else:
        e = x[r * n + j] - m[r]
        exp_inplace(&e, 1)
    return <floating> (e / s[r])


# ---- cross-entropy with class labels ------------------------------------------------------

cdef struct Events:
    Py_ssize_t bad        # labels outside [0, n)
    Py_ssize_t log_zero   # log(0): NumPy "divide by zero encountered in log"
    Py_ssize_t log_neg    # log(< 0): NumPy "invalid value encountered in log"


cdef inline void count_log_arg(double v, Events *ev) noexcept nogil:
    if v == 0:
        ev.log_zero += 1
    elif v < 0:
        ev.log_neg += 1


cdef inline double prob_arg(int mode, floating p) noexcept nogil:
    # the argument of the log for the true class's probability p
    if mode == M_SHIFT or mode == M_LOGITS_SHIFT:
        return <double> (p + <floating> EPS)                    # p + 1e-7, in p's precision
    return <double> clip(p)                                     # clip(p, 1e-7, 1 - 1e-7)


cdef double labels_block(const floating *y, Py_ssize_t rows, Py_ssize_t n, const Py_ssize_t *t,
                         int mode, floating *out_rows, Events *ev) noexcept nogil:
    """Row losses -log p(t_i) of one block; returns their sum (rows rounded to the dtype)."""
    cdef floating buf[SCRATCH]
    cdef floating m[MAX_BLOCK]
    cdef double s[MAX_BLOCK]
    cdef double a[MAX_BLOCK]
    cdef double b[MAX_BLOCK]
    cdef Py_ssize_t r, j, lab
    cdef double total = 0.0, sc
    cdef floating row
    cdef bint logits = mode == M_LOGITS_SHIFT or mode == M_LOGITS
    if logits:
        softmax_stats(y, rows, n, buf, m, s)
    for r in range(rows):
        lab = t[r]
        a[r] = 1.0
        b[r] = 1.0
        if lab < 0 or lab >= n:
            ev.bad += 1
            continue
        if mode == M_LOGITS:
            b[r] = s[r]                                         # log(sum exp(x - max))
        elif mode == M_LOGITS_SHIFT:
            a[r] = prob_arg(mode, softmax_at(y, rows, n, buf, m, s, r, lab))
        elif mode == M_CLIP_NORM:
            a[r] = prob_arg(M_CLIP, y[r * n + lab])
            sc = 0.0
            for j in range(n):
                sc += <double> clip(y[r * n + j])
            b[r] = sc                                           # log(sum_j clip(p_j))
        else:
            a[r] = prob_arg(mode, y[r * n + lab])
        count_log_arg(a[r], ev)
    fastnn_log_inplace(a, rows)
    if mode == M_LOGITS or mode == M_CLIP_NORM:
        fastnn_log_inplace(b, rows)
    for r in range(rows):
        lab = t[r]
        if lab < 0 or lab >= n:
            row = 0
        elif mode == M_LOGITS:
            row = <floating> (b[r] - <double> (y[r * n + lab] - m[r]))   # lse - (x_t - max)
        elif mode == M_CLIP_NORM:
            row = <floating> (b[r] - a[r])
        else:
            row = <floating> (-a[r])                                     # -log(p_t ...)
        if out_rows != NULL:
            out_rows[r] = row
        total += row
    return total


cdef inline double sum_in_order(const double *v, Py_ssize_t n) noexcept nogil:
    cdef Py_ssize_t i
    cdef double acc = 0.0
    for i in range(n):
        acc += v[i]
    return acc


def cross_entropy_labels(const floating[:, ::1] y,   # IN  (rows, n) probabilities or logits
                         const Py_ssize_t[::1] t,    # IN  (rows,) class labels
                         int mode,                   # SHIFT, CLIP, CLIP_NORM, LOGITS_SHIFT, LOGITS
                         floating[::1] out_rows,     # OUT (rows,) each row's loss, or None
                         int n_threads):
    """Row losses -log p(t_i); returns (their sum in double, n_bad_labels, n_log_zero, n_log_neg)."""
    cdef Py_ssize_t rows = y.shape[0], n = y.shape[1], blk, r0, nb, k
    cdef Events ev
    ev.bad = 0
    ev.log_zero = 0
    ev.log_neg = 0
    if rows == 0 or n == 0:
        return 0.0, 0, 0, 0
    cdef floating *orow = &out_rows[0] if out_rows is not None else NULL
    cdef Py_ssize_t per = rows_per_block(n)
    cdef Py_ssize_t n_blocks = (rows + per - 1) // per
    cdef double *partial = <double *> malloc(n_blocks * sizeof(double))
    cdef double total
    cdef Py_ssize_t bad = 0, lz = 0, ln = 0
    cdef Events e
    cdef int team
    if partial == NULL:
        raise MemoryError()
    with nogil:
        team = fastnn_team(n_threads, rows * (NS_PROB_ROW + (n * NS_ELEM if mode >= M_LOGITS_SHIFT
                                                                or mode == M_CLIP_NORM else 0)))
        if team == 1:
            for k in range(n_blocks):
                r0 = k * per
                partial[k] = labels_block(&y[r0, 0], min(per, rows - r0), n, &t[r0], mode,
                                          orow + r0 if orow != NULL else NULL, &ev)
        else:
            for k in prange(n_blocks, schedule="static", num_threads=team):
                e.bad = 0
                e.log_zero = 0
                e.log_neg = 0
                r0 = k * per
                partial[k] = labels_block(&y[r0, 0], min(per, rows - r0), n, &t[r0], mode,
                                          orow + r0 if orow != NULL else NULL, &e)
                bad += e.bad
                lz += e.log_zero
                ln += e.log_neg
            ev.bad = bad
            ev.log_zero = lz
            ev.log_neg = ln
        fastnn_team_end()
        total = sum_in_order(partial, n_blocks)
    free(partial)
    return total, ev.bad, ev.log_zero, ev.log_neg


# ---- cross-entropy with (rows, n) targets ---------------------------------------------------

cdef double targets_block(const floating *y, Py_ssize_t rows, Py_ssize_t n, const target_t *t,
                          int mode, int reading, double smoothing, floating *out_rows,
                          Events *ev) noexcept nogil:
    cdef floating buf[SCRATCH]
    cdef floating m[MAX_BLOCK]
    cdef double s[MAX_BLOCK]
    cdef double a[MAX_BLOCK]
    cdef double lg[CHUNK]
    cdef double tw[CHUNK]
    cdef Py_ssize_t r, j, j0, ln, lab
    cdef double total = 0.0, acc, tsum, keep = 1.0 - smoothing, shift = smoothing / n, S
    cdef floating row, p
    cdef const floating *yr
    cdef const target_t *tr
    cdef bint logits = mode == M_LOGITS_SHIFT or mode == M_LOGITS
    if logits:
        softmax_stats(y, rows, n, buf, m, s)
    for r in range(rows):
        yr = y + r * n
        tr = t + r * n
        if reading == R_ARGMAX:
            lab = argmax_row(tr, n)
            if mode == M_LOGITS_SHIFT:
                p = softmax_at(y, rows, n, buf, m, s, r, lab)
            else:
                p = yr[lab]
            a[0] = prob_arg(mode, p)
            count_log_arg(a[0], ev)
            fastnn_log_inplace(a, 1)
            row = <floating> (-a[0])
        elif reading == R_WEIGHTED:
            acc = 0.0
            for j in range(n):
                acc += <double> (clip(yr[j]) * <floating> tr[j])      # sum(clip(p) * t)
            count_log_arg(acc, ev)
            a[0] = acc
            fastnn_log_inplace(a, 1)
            row = <floating> (-a[0])
        elif mode == M_LOGITS:
            # -sum_j t'_j (x_j - max - log s) = log(s) sum t' - sum t'_j (x_j - max)
            acc = 0.0
            tsum = 0.0
            for j in range(n):
                acc += (<double> tr[j] * keep + shift) * <double> (yr[j] - m[r])
                tsum += <double> tr[j] * keep + shift
            a[0] = s[r]
            fastnn_log_inplace(a, 1)
            row = <floating> (a[0] * tsum - acc)
        else:
            # Keras: q = p / sum(p); -sum_j t'_j log(clip(q_j)), logs in batches of CHUNK
            S = 0.0
            for j in range(n):
                S += <double> yr[j]
            acc = 0.0
            j0 = 0
            while j0 < n:
                ln = min(<Py_ssize_t> CHUNK, n - j0)
                for j in range(ln):
                    lg[j] = <double> clip(<floating> (<double> yr[j0 + j] / S))
                    tw[j] = <double> tr[j0 + j] * keep + shift
                fastnn_log_inplace(lg, ln)
                for j in range(ln):
                    acc += tw[j] * lg[j]
                j0 += ln
            row = <floating> (-acc)
        if out_rows != NULL:
            out_rows[r] = row
        total += row
    return total


def cross_entropy_targets(const floating[:, ::1] y,   # IN  (rows, n) probabilities or logits
                          const target_t[:, ::1] t,   # IN  (rows, n) one-hot or soft targets
                          int mode,                   # see the top of this file
                          int reading,                # ARGMAX, WEIGHTED or SOFT
                          double smoothing,           # SOFT: label smoothing (Keras)
                          floating[::1] out_rows,     # OUT (rows,) each row's loss, or None
                          int n_threads):
    """Row losses for (rows, n) targets; returns (their sum in double, n_log_zero, n_log_neg)."""
    cdef Py_ssize_t rows = y.shape[0], n = y.shape[1], r0, k
    cdef Events ev
    ev.bad = 0
    ev.log_zero = 0
    ev.log_neg = 0
    if rows == 0 or n == 0:
        return 0.0, 0, 0
    cdef floating *orow = &out_rows[0] if out_rows is not None else NULL
    cdef Py_ssize_t per = rows_per_block(n)
    cdef Py_ssize_t n_blocks = (rows + per - 1) // per
    cdef double *partial = <double *> malloc(n_blocks * sizeof(double))
    cdef double total
    cdef Py_ssize_t lz = 0, lneg = 0
    cdef Events e
    cdef int team
    if partial == NULL:
        raise MemoryError()
    with nogil:
        team = fastnn_team(n_threads, rows * (NS_PROB_ROW + n * NS_ELEM))
        if team == 1:
            for k in range(n_blocks):
                r0 = k * per
                partial[k] = targets_block(&y[r0, 0], min(per, rows - r0), n, &t[r0, 0], mode,
                                           reading, smoothing, orow + r0 if orow != NULL else NULL, &ev)
        else:
            for k in prange(n_blocks, schedule="static", num_threads=team):
                e.bad = 0
                e.log_zero = 0
                e.log_neg = 0
                r0 = k * per
                partial[k] = targets_block(&y[r0, 0], min(per, rows - r0), n, &t[r0, 0], mode,
                                           reading, smoothing, orow + r0 if orow != NULL else NULL, &e)
                lz += e.log_zero
                lneg += e.log_neg
            ev.log_zero = lz
            ev.log_neg = lneg
        fastnn_team_end()
        total = sum_in_order(partial, n_blocks)
    free(partial)
    return total, ev.log_zero, ev.log_neg


# ---- gradients of the categorical cross-entropy -------------------------------------------

cdef Py_ssize_t grad_labels_rows(const floating *y, Py_ssize_t rows, Py_ssize_t n,
                                 const Py_ssize_t *t, int mode, double divisor,
                                 floating *out) noexcept nogil:
    cdef Py_ssize_t r, j, lab, bad = 0
    cdef floating d = <floating> divisor, one
    cdef double C, ct
    cdef const floating *yr
    cdef const floating *src
    cdef floating *o
    if mode == M_LOGITS:
        if floating is double:
            fastnn_softmax_rows_d(y, out, rows, n)              # out = softmax(x)
        else:
            fastnn_softmax_rows_s(y, out, rows, n)
    for r in range(rows):
        lab = t[r]
        yr = y + r * n
        o = out + r * n
        if lab < 0 or lab >= n:
            bad += 1
            lab = -1
        if mode == M_CLIP_NORM:
            # Keras sparse on probabilities: loss = -log(c_t) + log(C), c = clip(p), C = sum c;
            # d/dp_k = [p_k inside the clip] * (1 / C - [k == t] / c_t)
            C = 0.0
            for j in range(n):
                C += <double> clip(yr[j])
            ct = <double> clip(yr[lab]) if lab >= 0 else 1.0
            for j in range(n):
                o[j] = <floating> ((1.0 / C - (1.0 / ct if j == lab else 0.0))
                                   * (1.0 if in_clip(yr[j]) else 0.0)) / d
        else:
            if mode == M_LOGITS:
                src = o
            else:
                src = yr
            # dinputs = p; dinputs[t] -= 1; dinputs /= samples  (in the dtype, as nnfs does)
            for j in range(n):
                one = 1 if j == lab else 0
                o[j] = (src[j] - one) / d
    return bad


def cross_entropy_grad_labels(const floating[:, ::1] y,   # IN  (rows, n) softmax output or logits
                              const Py_ssize_t[::1] t,    # IN  (rows,)
                              int mode,                   # PROBS, LOGITS or CLIP_NORM
                              double divisor,             # nnfs: samples; 1 for the sum's gradient
                              floating[:, ::1] out,       # OUT (rows, n)
                              int n_threads):
    """Gradient of the row losses w.r.t. y, divided by `divisor`. Returns n_bad_labels."""
    cdef Py_ssize_t rows = y.shape[0], n = y.shape[1], k, r0, bad = 0
    cdef Py_ssize_t per = MAX_BLOCK
    cdef int team
    if rows == 0 or n == 0:
        return 0
    cdef Py_ssize_t n_blocks = (rows + per - 1) // per
    with nogil:
        team = fastnn_team(n_threads, rows * n * NS_ELEM)
        if team == 1:
            bad = grad_labels_rows(&y[0, 0], rows, n, &t[0], mode, divisor, &out[0, 0])
        else:
            for k in prange(n_blocks, schedule="static", num_threads=team):
                r0 = k * per
                bad += grad_labels_rows(&y[r0, 0], min(per, rows - r0), n, &t[r0], mode,
                                        divisor, &out[r0, 0])
        fastnn_team_end()
    return bad


cdef void grad_targets_rows(const floating *y, Py_ssize_t rows, Py_ssize_t n, const target_t *t,
                            int mode, double smoothing, double divisor, floating *out) noexcept nogil:
    cdef Py_ssize_t r, j
    cdef floating d = <floating> divisor
    cdef double keep = 1.0 - smoothing, shift = smoothing / n, tsum, S, q, gq, dot
    cdef const floating *yr
    cdef const target_t *tr
    cdef floating *o
    if mode == M_LOGITS:
        if floating is double:
            fastnn_softmax_rows_d(y, out, rows, n)
        else:
            fastnn_softmax_rows_s(y, out, rows, n)
    for r in range(rows):
        yr = y + r * n
        tr = t + r * n
        o = out + r * n
        if mode == M_PROBS:
            for j in range(n):
                o[j] = (yr[j] - <floating> tr[j]) / d              # (y - t) / batch_size
        elif mode == M_LOGITS:
            tsum = 0.0
            for j in range(n):
                tsum += <double> tr[j] * keep + shift
            for j in range(n):                                     # p * sum(t') - t'
                o[j] = <floating> (<double> o[j] * tsum - (<double> tr[j] * keep + shift)) / d
        else:
            # Keras categorical on probabilities: q = p / S, loss = -sum t'_j log(clip(q_j));
            # g_j = dL/dq_j = -t'_j / q_j where q_j is inside the clip;
            # dL/dp_k = g_k / S - sum_j g_j p_j / S^2
            S = 0.0
            for j in range(n):
                S += <double> yr[j]
            dot = 0.0
            for j in range(n):
                q = <double> <floating> (<double> yr[j] / S)
                gq = -(<double> tr[j] * keep + shift) / q if in_clip(<floating> q) else 0.0
                o[j] = <floating> gq                                # kept for the second pass
                dot += gq * <double> yr[j]
            for j in range(n):
                o[j] = <floating> (<double> o[j] / S - dot / (S * S)) / d


def cross_entropy_grad_targets(const floating[:, ::1] y,   # IN  (rows, n)
                               const target_t[:, ::1] t,   # IN  (rows, n)
                               int mode,                   # PROBS, LOGITS or NORM_CLIP
                               double smoothing,
                               double divisor,
                               floating[:, ::1] out,       # OUT (rows, n)
                               int n_threads):
    """Gradient of the row losses (SOFT reading) w.r.t. y, divided by `divisor`."""
    cdef Py_ssize_t rows = y.shape[0], n = y.shape[1], k, r0
    cdef Py_ssize_t per = MAX_BLOCK
    cdef int team
    if rows == 0 or n == 0:
        return
    cdef Py_ssize_t n_blocks = (rows + per - 1) // per
    with nogil:
        team = fastnn_team(n_threads, rows * n * NS_ELEM)
        if team == 1:
            grad_targets_rows(&y[0, 0], rows, n, &t[0, 0], mode, smoothing, divisor, &out[0, 0])
        else:
            for k in prange(n_blocks, schedule="static", num_threads=team):
                r0 = k * per
                grad_targets_rows(&y[r0, 0], min(per, rows - r0), n, &t[r0, 0], mode, smoothing,
                                  divisor, &out[r0, 0])
        fastnn_team_end()


cdef inline Py_ssize_t run_length(Py_ssize_t n, int team) noexcept nogil:
    # elements per thread: one contiguous run each, a multiple of 64 (whole cache lines)
    return ((n + team - 1) // team + 63) // 64 * 64


cdef inline Py_ssize_t cce_grad_run(const floating *y, const floating *t, Py_ssize_t n,
                                    double divisor, floating *out, Py_ssize_t *inv) noexcept nogil:
    if floating is double:
        return fastnn_cce_grad_d(y, t, n, divisor, out, inv)
    else:
        return fastnn_cce_grad_s(y, t, n, divisor, out, inv)


def cce_grad(const floating[::1] y,   # IN  (size,) nnfs dvalues (probabilities)
             const floating[::1] t,   # IN  (size,) one-hot targets, y's dtype
             double divisor,          # samples
             floating[::1] out,       # OUT (size,)
             int n_threads):
    """nnfs Loss_CategoricalCrossentropy.backward: out = -t / y / samples.
    Returns (n_divide_by_zero, n_invalid) (NumPy's warnings)."""
    cdef Py_ssize_t size = y.shape[0], div0 = 0, inv = 0, c, i0, run, part
    cdef int team
    if size == 0:
        return 0, 0
    with nogil:
        team = fastnn_team(n_threads, size * NS_STREAM)
        if team == 1:
            div0 = cce_grad_run(&y[0], &t[0], size, divisor, &out[0], &inv)
        else:
            run = run_length(size, team)
            for c in prange(team, schedule="static", num_threads=team):
                i0 = c * run
                if i0 < size:
                    part = 0
                    div0 += cce_grad_run(&y[i0], &t[i0], min(run, size - i0), divisor, &out[i0], &part)
                    inv += part
        fastnn_team_end()
    return div0, inv


# ---- point-wise losses: binary cross-entropy, MSE, MAE --------------------------------------

cdef inline double pointwise_block(int kind, const floating *y, const floating *t, Py_ssize_t rows,
                                   Py_ssize_t n, double eps, double smoothing,
                                   floating *out_rows) noexcept nogil:
    if floating is double:
        return fastnn_pointwise_loss_d(kind, y, t, rows, n, eps, smoothing, out_rows)
    else:
        return fastnn_pointwise_loss_s(kind, y, t, rows, n, eps, smoothing, out_rows)


def pointwise_loss(int kind,                   # BCE, BCE_KERAS, BCE_LOGITS, MSE, MAE
                   const floating[:, ::1] y,   # IN  (rows, n) predictions (or logits)
                   const floating[:, ::1] t,   # IN  (rows, n) targets
                   double eps,                 # the clip bound (1e-7)
                   double smoothing,           # Keras binary label smoothing
                   floating[::1] out_rows,     # OUT (rows,) mean over each row, or None
                   int n_threads):
    """Per-row mean of the point-wise loss; returns the sum of the rows (in double)."""
    cdef Py_ssize_t rows = y.shape[0], n = y.shape[1], k, r0
    if rows == 0 or n == 0:
        return 0.0
    cdef floating *orow = &out_rows[0] if out_rows is not None else NULL
    cdef Py_ssize_t per = rows_per_block(n)
    cdef Py_ssize_t n_blocks = (rows + per - 1) // per
    cdef double *partial = <double *> malloc(n_blocks * sizeof(double))
    cdef double total
    cdef int team
    if partial == NULL:
        raise MemoryError()
    with nogil:
        team = fastnn_team(n_threads, rows * n * NS_ELEM * 4)
        if team == 1:
            for k in range(n_blocks):
                r0 = k * per
                partial[k] = pointwise_block(kind, &y[r0, 0], &t[r0, 0], min(per, rows - r0), n,
                                             eps, smoothing, orow + r0 if orow != NULL else NULL)
        else:
            for k in prange(n_blocks, schedule="static", num_threads=team):
                r0 = k * per
                partial[k] = pointwise_block(kind, &y[r0, 0], &t[r0, 0], min(per, rows - r0), n,
                                             eps, smoothing, orow + r0 if orow != NULL else NULL)
        fastnn_team_end()
        total = sum_in_order(partial, n_blocks)
    free(partial)
    return total


cdef inline void pointwise_grad_run(int kind, const floating *y, const floating *t, Py_ssize_t n,
                                    double eps, double smoothing, double d1, double d2,
                                    floating *out) noexcept nogil:
    if floating is double:
        fastnn_pointwise_loss_grad_d(kind, y, t, n, eps, smoothing, d1, d2, out)
    else:
        fastnn_pointwise_loss_grad_s(kind, y, t, n, eps, smoothing, d1, d2, out)


def pointwise_loss_grad(int kind,
                        const floating[::1] y,   # IN  (size,)
                        const floating[::1] t,   # IN  (size,)
                        double eps, double smoothing,
                        double d1, double d2,    # divided by d1, then by d2 (nnfs: outputs, samples)
                        floating[::1] out,       # OUT (size,)
                        int n_threads):
    """Element-wise gradient of the point-wise loss w.r.t. y."""
    cdef Py_ssize_t size = y.shape[0], c, i0, run
    cdef int team
    if size == 0:
        return
    with nogil:
        team = fastnn_team(n_threads, size * NS_STREAM * (20 if kind == BCE_LOGITS_K else 2))
        if team == 1:
            pointwise_grad_run(kind, &y[0], &t[0], size, eps, smoothing, d1, d2, &out[0])
        else:
            run = run_length(size, team)
            for c in prange(team, schedule="static", num_threads=team):
                i0 = c * run
                if i0 < size:
                    pointwise_grad_run(kind, &y[i0], &t[i0], min(run, size - i0), eps, smoothing,
                                       d1, d2, &out[i0])
        fastnn_team_end()


# ---- the L1 / L2 penalty (nnfs regularisation) --------------------------------------------

def penalty_sums(const floating[::1] w):   # IN (size,)
    """(sum(|w|), sum(w * w)) in double, in order on one thread (a sum is never split)."""
    cdef double sa = 0.0, sq = 0.0
    if w.shape[0]:
        with nogil:
            if floating is double:
                fastnn_penalty_sums_d(&w[0], w.shape[0], &sa, &sq)
            else:
                fastnn_penalty_sums_s(&w[0], w.shape[0], &sa, &sq)
    return sa, sq


cdef inline void penalty_grad_run(const floating *w, floating *dw, Py_ssize_t n, double l1,
                                  double l2) noexcept nogil:
    if floating is double:
        fastnn_penalty_grad_d(w, dw, n, l1, l2)
    else:
        fastnn_penalty_grad_s(w, dw, n, l1, l2)


def penalty_grad(const floating[::1] w,   # IN  (size,) the parameter
                 floating[::1] dw,        # IN/OUT (size,) its gradient
                 double l1, double l2,
                 int n_threads):
    """dw += l1 * sign(w) (+1 at 0), then dw += 2 * l2 * w (each only when > 0)."""
    cdef Py_ssize_t size = w.shape[0], c, i0, run
    cdef int team
    if size == 0 or not (l1 > 0 or l2 > 0):
        return
    with nogil:
        team = fastnn_team(n_threads, size * NS_STREAM * 2)
        if team == 1:
            penalty_grad_run(&w[0], &dw[0], size, l1, l2)
        else:
            run = run_length(size, team)
            for c in prange(team, schedule="static", num_threads=team):
                i0 = c * run
                if i0 < size:
                    penalty_grad_run(&w[i0], &dw[i0], min(run, size - i0), l1, l2)
        fastnn_team_end()
