# The finite-difference engine: central differences of a whole net's loss, one per
# parameter, each evaluated incrementally from the perturbed layer on; and the generic
# numerical_gradient(f, x) loop.
#
# Design (STYLE.md, DESIGN.md "The finite-difference engine"):
# * the net is the executor's layer list (_executor.pxd); its forward in double (MODE_FD)
#   is the cache: every layer's output, p = softmax, each row's loss, and the kinds'
#   extras (the input's non-zeros by column for an Affine, exp(-z) and Taylor
#   coefficients for a sigmoid);
# * work items are the units (columns / channels) of the layers with params; one thread
#   computes a unit's every parameter, rows in order (schedule='dynamic': skipping the
#   rows whose input is 0 makes the work uneven), so the result is the same bits on any
#   thread count;
# * a param kind's FD hook says where a parameter's change lands: unit j of row b moves by
#   (w' - w) * vals[k] in the rows it lists (an Affine's W[i, j]: the rows with
#   in[b, i] != 0 -- elsewhere the reference's difference is exactly 0 and nothing is
#   evaluated); the engine then evaluates each moved row from the perturbed layer on,
#   through the downstream kinds' hooks:
#     - Taylor mode (fd_series): the row's loss change as a power series in the unit's
#       change d, computed once per (row, unit) and shared by all of the unit's params:
#       sum_n G_n (d+^n - d-^n), used where |d| <= the series' radius;
#     - exact mode (fd_exact): the changes at w+ and w- pushed through each layer
#       (activation differences without cancellation, the loss change as -log1p(..));
#     - absolute mode (fd_row_forward): the row re-evaluated from scratch at both points,
#       for rows that hold inf somewhere downstream (where a change is not a number);
#     - batch mode (fd_batch_forward): the whole batch re-evaluated, when a batch-coupled
#       kind (BatchNorm) lies downstream.
# * non-finite values: a NaN row loss (or a non-finite weight-decay term) makes every
#   one of the reference's perturbed losses NaN, so every gradient is NaN (filled at once);
#   an inf that the net absorbs (sigmoid(inf) = 1) keeps the rows finite downstream and
#   only the units it touches take the absolute path.
#
# The perturbed points are the reference's, rounded in the parameter's dtype:
#   w+ = float(w) + h                 (double, then stored: rounded to float32 for float32)
#   w- = w - h                        (float32 params: a float32 subtraction, NumPy 2 / NEP 50)
# and the loss is evaluated in DOUBLE at those points (for float32 params this gives the
# true central difference at the float32 points rather than float32 noise). The loss is
# the reference's: the mean of the rows' -log(p_t + 1e-7), plus 0.5 lam sum(W**2) per
# Affine weight with weight decay; f(w+) - f(w-) is summed from per-row differences.

from cython.parallel cimport parallel, prange
from libc.stdlib cimport malloc, free, calloc
from libc.string cimport memset, memcpy
from libc.math cimport isfinite, isnan, fabs, NAN, INFINITY

cimport cython
cimport numpy as cnp
import numpy as np

from fastnn._kernels._executor cimport (
    Net, Layer, KindOps, RowDelta, RowSeries, ParamBlock, Executor, kind_ops, net_forward,
    NS, NT, FD_MAX_BLOCKS, MODE_FD, STATUS_NO_MEMORY,
    KIND_AFFINE, KIND_BATCHNORM, KIND_SOFTMAX_CE, KIND_CONVOLUTION,
    PATTERN_ZERO, PATTERN_FINITE, PATTERN_NONFINITE,
    DELTA_ZERO, DELTA_ONE, DELTA_DENSE, SER_ZERO, SER_ONE, SER_RANK1, SER_DENSE)

from fastnn._kernels._openmp cimport (threads_state, fastnn_threads_bind, fastnn_team,
                                      fastnn_team_end)

cdef extern from "fastnn_sparse.h":
    int fastnn_bp_finite_d(const double *x, Py_ssize_t n) noexcept nogil

cdef extern from "fastnn_cpu.h":
    void fastnn_isa_bind(const int *state) noexcept nogil

from fastnn._kernels._cpu cimport isa_state
fastnn_isa_bind(isa_state())
fastnn_threads_bind(threads_state())


cdef inline bint all_finite(const double *x, Py_ssize_t n) noexcept nogil:
    return fastnn_bp_finite_d(x, n) if n > 0 else True

cnp.import_array()


cdef inline bint plain_memory(cnp.ndarray a) noexcept:
    """C-contiguous, aligned and in native byte order: what a kernel may read as raw
    memory (a big-endian array has the same type number, so the type check alone lets it
    through)."""
    return cnp.PyArray_ISCARRAY_RO(a) and cnp.PyArray_ISNOTSWAPPED(a)

include "kinds/fd_math.pxi"

cdef double FLT_MAX = 3.4028234663852886e38
# units per work item: a thread writes whole cache lines of a gradient's rows (8 doubles),
# so threads never share one (no false sharing) and no transposed copy is needed
cdef Py_ssize_t UNITS_PER_ITEM = 8
# ns per output of a convolution channel per (param, row) evaluated (pattern blocks)
cdef double NS_CONV_EVAL = 4.0


# --- per-thread context ---------------------------------------------------------------

cdef struct Ctx:
    Net *net
    Py_ssize_t B
    Py_ssize_t maxw
    double lam
    bint use_series
    const unsigned char *down_bad   # (n_layers, B): a non-finite value after layer l, row b
    const unsigned char *series_ok  # (n_layers,): every kind after l has a Taylor hook
    const unsigned char *batch_mode # (n_layers,): a batch-coupled kind lies after l
    const unsigned char *clean      # (n_layers,): layer l's input, its output and every
                                    # later output are all finite (no checks per row)
    double *G                       # (B, NS) the current unit's series, per row
    double *rad                     # (B,) its radius (-1: evaluate exactly)
    RowDelta d0, d1                 # exact mode, ping-pong
    RowSeries s0, s1                # Taylor mode, ping-pong
    double *wk                      # series scratch (8 NS^2)
    double *r0                      # absolute rows: (4, maxw)
    double *X0                      # batch mode: (2, B, maxw), NULL when not needed
    double *X1
    double *bwk                     # batch mode: (2 maxw) scratch of fd_batch_forward
    double *pat                     # pattern blocks: (maxw) the pattern, then the unit's
    double *vp                      # new outputs at w+ (vp) and w- (vm), each (2 maxw):
    double *vm                      # the result and fd_recompute_vec's scratch
    ParamBlock blocks[FD_MAX_BLOCKS]  # the current unit's params


cdef Py_ssize_t ctx_bytes(Py_ssize_t B, Py_ssize_t maxw, bint batch) noexcept nogil:
    return sizeof(double) * (B * NS + B + 4 * maxw + 2 * (NS + maxw + maxw * NS) + 8 * NS * NS
                             + 4 * maxw + 5 * maxw + (2 * B * maxw + 2 * maxw if batch else 0))


cdef void ctx_carve(Ctx *c, double *buf, Py_ssize_t B, Py_ssize_t maxw, bint batch) noexcept nogil:
    c.G = buf; buf += B * NS
    c.rad = buf; buf += B
    c.d0.p = buf; buf += maxw
    c.d0.m = buf; buf += maxw
    c.d1.p = buf; buf += maxw
    c.d1.m = buf; buf += maxw
    c.s0.s = buf; buf += NS
    c.s0.cbuf = buf; buf += maxw
    c.s0.V = buf; buf += maxw * NS
    c.s1.s = buf; buf += NS
    c.s1.cbuf = buf; buf += maxw
    c.s1.V = buf; buf += maxw * NS
    c.wk = buf; buf += 8 * NS * NS
    c.r0 = buf; buf += 4 * maxw
    c.pat = buf; buf += maxw
    c.vp = buf; buf += 2 * maxw
    c.vm = buf; buf += 2 * maxw
    c.X0 = NULL
    c.X1 = NULL
    c.bwk = NULL
    if batch:
        c.X0 = buf; buf += B * maxw
        c.X1 = buf; buf += B * maxw
        c.bwk = buf; buf += 2 * maxw


# --- evaluating one row's change ----------------------------------------------------------

cdef double row_series(Ctx *c, Py_ssize_t l, Py_ssize_t j, Py_ssize_t b, double *G) noexcept nogil:
    """G = the series of row b's loss change in d, unit j of layer l moving by d; returns
    the radius within which it is used (-1: never)."""
    cdef const Net *net = c.net
    cdef RowSeries *si = &c.s0
    cdef RowSeries *so = &c.s1
    cdef RowSeries *tmp
    cdef double rad = RAD_CAP
    cdef Py_ssize_t m, L = net.n_layers
    cdef int q
    si.form = SER_ONE
    si.unit = j
    for q in range(NS):
        si.s[q] = 0.0
    si.s[1] = 1.0                          # the unit itself moves by d
    for m in range(l + 1, L):
        rad = kind_ops(net.layers[m].kind).fd_series(net, m, b, si, so, rad, c.wk)
        if rad <= 0.0:
            return -1.0
        if so.form == SER_ZERO and m < L - 1:
            for q in range(NS):
                G[q] = 0.0                 # the row's loss does not move
            return rad
        tmp = si; si = so; so = tmp
    for q in range(NS):
        G[q] = si.s[q]
    return rad


cdef double row_exact(Ctx *c, Py_ssize_t l, Py_ssize_t j, Py_ssize_t b, double dp,
                      double dm) noexcept nogil:
    """(r(w+) - r) - (r(w-) - r) for row b when unit j of layer l moves by dp / dm."""
    cdef const Net *net = c.net
    cdef RowDelta *di = &c.d0
    cdef RowDelta *do_ = &c.d1
    cdef RowDelta *tmp
    cdef double loss = 0.0
    cdef Py_ssize_t m, L = net.n_layers
    di.form = DELTA_ONE
    di.unit = j
    di.p[0] = dp
    di.m[0] = dm
    cdef double z
    for m in range(l + 1, L):
        kind_ops(net.layers[m].kind).fd_exact(net, m, b, di, do_, &loss)
        if do_.form == DELTA_ZERO and m < L - 1:
            return 0.0
        tmp = di; di = do_; do_ = tmp
    if not isfinite(loss):
        # the exact forms overflowed (expm1 of a change > 709, say x = 1e308 times h = 1e-4,
        # where the reference's losses stay finite): evaluate the row at both points
        z = (<const double *> net.layers[l].out)[b * net.layers[l].n_out + j]
        return row_absolute(c, l, j, b, z + dp, z + dm)
    return loss


cdef double row_absolute(Ctx *c, Py_ssize_t l, Py_ssize_t j, Py_ssize_t b, double zp,
                         double zm) noexcept nogil:
    """r(w+) - r(w-) for row b, re-evaluated from layer l's output with unit j = zp / zm."""
    cdef const Layer *ly = &c.net.layers[l]
    cdef Py_ssize_t n = ly.n_out
    memcpy(c.r0, (<const double *> ly.out) + b * n, n * sizeof(double))
    memcpy(c.r0 + c.maxw, c.r0, n * sizeof(double))
    c.r0[j] = zp
    c.r0[c.maxw + j] = zm
    return rows_after(c, l, b)


cdef double row_absolute_vec(Ctx *c, Py_ssize_t l, Py_ssize_t b, Py_ssize_t lo,
                             Py_ssize_t width, const double *vp, const double *vm) noexcept nogil:
    """r(w+) - r(w-) for row b, re-evaluated from layer l's output with outputs
    [lo, lo + width) = vp / vm (a pattern block's unit)."""
    cdef const Layer *ly = &c.net.layers[l]
    cdef Py_ssize_t n = ly.n_out
    memcpy(c.r0, (<const double *> ly.out) + b * n, n * sizeof(double))
    memcpy(c.r0 + c.maxw, c.r0, n * sizeof(double))
    memcpy(c.r0 + lo, vp, width * sizeof(double))
    memcpy(c.r0 + c.maxw + lo, vm, width * sizeof(double))
    return rows_after(c, l, b)


cdef double rows_after(Ctx *c, Py_ssize_t l, Py_ssize_t b) noexcept nogil:
    """r(w+) - r(w-) for row b from layer l's outputs at w+ (r0[0:maxw]) and at w-
    (r0[maxw:2 maxw]), every later layer run from scratch (fd_row_forward)."""
    cdef const Net *net = c.net
    cdef Py_ssize_t m, L = net.n_layers
    cdef double *P = c.r0
    cdef double *Mn = c.r0 + c.maxw
    cdef double *P2 = c.r0 + 2 * c.maxw
    cdef double *M2 = c.r0 + 3 * c.maxw
    cdef double *tmp
    cdef double rp = 0.0, rm = 0.0
    for m in range(l + 1, L):
        if m == L - 1:
            rp = kind_ops(net.layers[m].kind).fd_row_forward(net, m, b, P, P2)
            rm = kind_ops(net.layers[m].kind).fd_row_forward(net, m, b, Mn, M2)
        else:
            kind_ops(net.layers[m].kind).fd_row_forward(net, m, b, P, P2)
            kind_ops(net.layers[m].kind).fd_row_forward(net, m, b, Mn, M2)
            tmp = P; P = P2; P2 = tmp
            tmp = Mn; Mn = M2; M2 = tmp
    return rp - rm


cdef double row_exact_vec(Ctx *c, Py_ssize_t l, Py_ssize_t b, Py_ssize_t lo, Py_ssize_t width,
                          const double *pat, double dp, double dm) noexcept nogil:
    """(r(w+) - r) - (r(w-) - r) for row b when outputs [lo, lo + width) of layer l move by
    dp * pat / dm * pat (a pattern block's unit), pushed through the later layers' exact
    hooks."""
    cdef const Net *net = c.net
    cdef RowDelta *di = &c.d0
    cdef RowDelta *do_ = &c.d1
    cdef RowDelta *tmp
    cdef double loss = 0.0
    cdef Py_ssize_t m, k, L = net.n_layers
    di.form = DELTA_DENSE
    di.lo = lo
    di.hi = lo + width
    for k in range(width):
        di.p[lo + k] = dp * pat[k]
        di.m[lo + k] = dm * pat[k]
    for m in range(l + 1, L):
        kind_ops(net.layers[m].kind).fd_exact(net, m, b, di, do_, &loss)
        if do_.form == DELTA_ZERO and m < L - 1:
            return 0.0
        tmp = di; di = do_; do_ = tmp
    return loss


cdef double batch_total(Ctx *c, Py_ssize_t l, double *X) noexcept nogil:
    """Sum of the rows' losses with layer l's output = X (B, n_l), every later layer run
    on the whole batch (X0/X1 hold the activations)."""
    cdef const Net *net = c.net
    cdef Py_ssize_t m, b, L = net.n_layers, B = c.B
    cdef const Layer *ly
    cdef const KindOps *ops
    cdef double *Y = c.X1 if X == c.X0 else c.X0
    cdef double *tmp
    cdef double tot = 0.0
    for m in range(l + 1, L):
        ly = &net.layers[m]
        ops = kind_ops(ly.kind)
        if m == L - 1:
            for b in range(B):
                tot += ops.fd_row_forward(net, m, b, X + b * ly.n_in, NULL)
        elif ops.row_local:
            for b in range(B):
                ops.fd_row_forward(net, m, b, X + b * ly.n_in, Y + b * ly.n_out)
            tmp = X; X = Y; Y = tmp
        else:
            ops.fd_batch_forward(net, m, X, Y, c.bwk)
            tmp = X; X = Y; Y = tmp
    return tot


cdef double batch_pair(Ctx *c, Py_ssize_t l, Py_ssize_t j, int bi, Py_ssize_t p, double w,
                       Py_ssize_t r0, Py_ssize_t r1, const Py_ssize_t *rows, const double *vals,
                       double wp, double wm) noexcept nogil:
    """f(w+) - f(w-) (sums over rows) re-evaluating the whole batch from layer l on."""
    cdef const Net *net = c.net
    cdef const Layer *ly = &net.layers[l]
    cdef const KindOps *ops = kind_ops(ly.kind)
    cdef Py_ssize_t n = ly.n_out, k, b, B = c.B
    cdef double a, z, w_new, dw
    cdef int side
    cdef double tot[2]
    for side in range(2):
        w_new = wp if side == 0 else wm
        dw = w_new - w
        memcpy(c.X0, ly.out, B * n * sizeof(double))
        for k in range(r0, r1):
            b = rows[k] if rows != NULL else k
            a = vals[k] if vals != NULL else 1.0
            z = c.X0[b * n + j]
            if isfinite(z) and isfinite(a):
                c.X0[b * n + j] = z + dw * a
            else:
                c.X0[b * n + j] = ops.fd_recompute(net, l, j, bi, p, b, w_new)
        tot[side] = batch_total(c, l, c.X0)
    return tot[0] - tot[1]


cdef double batch_pair_vec(Ctx *c, Py_ssize_t l, Py_ssize_t j, int bi, Py_ssize_t p,
                           Py_ssize_t lo, Py_ssize_t width, double wp, double wm) noexcept nogil:
    """f(w+) - f(w-) (sums over rows) for a pattern block's param, the unit's outputs
    recomputed in every row and the whole batch re-evaluated from layer l on."""
    cdef const Net *net = c.net
    cdef const Layer *ly = &net.layers[l]
    cdef const KindOps *ops = kind_ops(ly.kind)
    cdef Py_ssize_t n = ly.n_out, b
    cdef int side
    cdef double tot[2]
    for side in range(2):
        memcpy(c.X0, ly.out, c.B * n * sizeof(double))
        for b in range(c.B):
            ops.fd_recompute_vec(net, l, j, bi, p, b, wp if side == 0 else wm, c.vp)
            memcpy(c.X0 + b * n + lo, c.vp, width * sizeof(double))
        tot[side] = batch_total(c, l, c.X0)
    return tot[0] - tot[1]


cdef void unit_pattern(Ctx *c, Py_ssize_t l, Py_ssize_t j, int n_blocks) noexcept nogil:
    """Every gradient entry of unit j of param layer l whose params are pattern blocks
    (a convolution's channel: each param moves the unit's `width` outputs of a row by
    (w' - w) * pattern). A row whose pattern is all zeros does not move; a finite row is
    pushed through the exact hooks; a row with a non-finite value at or after the unit
    is re-evaluated from scratch, the unit's outputs recomputed where they are not finite."""
    cdef const Net *net = c.net
    cdef const Layer *ly = &net.layers[l]
    cdef const KindOps *ops = kind_ops(ly.kind)
    cdef Py_ssize_t B = c.B, n = ly.n_out, q, k, b, p, lo, width
    cdef const double *out = <const double *> ly.out
    cdef const double *z
    cdef const unsigned char *bad = c.down_bad + l * B
    cdef bint batch = c.batch_mode[l], clean = c.clean[l], finite
    cdef const ParamBlock *bk
    cdef int bi, st
    cdef double w, wp, wm, dp, dm, acc
    cdef double inv_B = 1.0 / B, inv_2h = 1.0 / (2.0 * FD_H)
    for bi in range(n_blocks):
        bk = &c.blocks[bi]
        width = bk.width
        lo = j * width
        for q in range(bk.n):
            p = bk.index[q] if bk.index != NULL else q
            w = bk.w[p * bk.w_stride]
            wp = perturbed_plus(w, bk.f32)
            wm = perturbed_minus(w, bk.f32)
            dp = wp - w
            dm = wm - w
            acc = 0.0
            if batch:
                acc = batch_pair_vec(c, l, j, bi, p, lo, width, wp, wm)
            else:
                for b in range(B):
                    st = ops.fd_pattern(net, l, j, bi, p, b, c.pat)
                    if st == PATTERN_ZERO:
                        continue            # 0 * w' = 0 * w: the row's loss is unchanged
                    if clean:
                        acc += row_exact_vec(c, l, b, lo, width, c.pat, dp, dm)
                        continue
                    z = out + b * n + lo
                    finite = st == PATTERN_FINITE and all_finite(z, width)
                    if finite and not bad[b]:
                        acc += row_exact_vec(c, l, b, lo, width, c.pat, dp, dm)
                        continue
                    if finite:
                        for k in range(width):
                            c.vp[k] = z[k] + dp * c.pat[k]
                            c.vm[k] = z[k] + dm * c.pat[k]
                    else:
                        ops.fd_recompute_vec(net, l, j, bi, p, b, wp, c.vp)
                        ops.fd_recompute_vec(net, l, j, bi, p, b, wm, c.vm)
                    acc += row_absolute_vec(c, l, b, lo, width, c.vp, c.vm)
            # (f(w+) - f(w-)) / 2h, f = mean row loss
            bk.grad[p * bk.g_stride] = acc * inv_B * inv_2h


cdef void unit(Ctx *c, Py_ssize_t l, Py_ssize_t j) noexcept nogil:
    """Every gradient entry of unit j of param layer l."""
    cdef const Net *net = c.net
    cdef const Layer *ly = &net.layers[l]
    cdef const KindOps *ops = kind_ops(ly.kind)
    cdef Py_ssize_t B = c.B, n = ly.n_out, q, k, b, p, r0, r1
    cdef const double *out = <const double *> ly.out
    cdef const unsigned char *bad = c.down_bad + l * B
    cdef bint batch = c.batch_mode[l], clean = c.clean[l]
    cdef const ParamBlock *bk
    cdef const Py_ssize_t *rows
    cdef const double *vals
    cdef int bi, n_blocks
    cdef double w, wp, wm, dp, dm, acc, a, z, ep, em, decay, r
    cdef double inv_B = 1.0 / B, inv_2h = 1.0 / (2.0 * FD_H)
    memset(c.blocks, 0, sizeof(c.blocks))     # (fields a hook leaves alone are 0)
    n_blocks = ops.fd_unit_params(net, l, j, c.blocks)
    if n_blocks > 0 and c.blocks[0].width > 0:
        unit_pattern(c, l, j, n_blocks)
        return
    # the series of unit j's change, per row
    for b in range(B):
        c.rad[b] = -1.0
        if (c.use_series and c.series_ok[l] and not batch and not bad[b]
                and isfinite(out[b * n + j])):
            c.rad[b] = row_series(c, l, j, b, c.G + b * NS)
    for bi in range(n_blocks):
        bk = &c.blocks[bi]
        rows = bk.rows
        vals = bk.vals
        for q in range(bk.n):
            p = bk.index[q] if bk.index != NULL else q
            w = bk.w[p * bk.w_stride]
            if bk.off != NULL:
                r0 = bk.off[p]
                r1 = bk.off[p + 1]
            else:
                r0 = 0
                r1 = B
            wp = perturbed_plus(w, bk.f32)
            wm = perturbed_minus(w, bk.f32)
            dp = wp - w
            dm = wm - w
            acc = 0.0
            if batch:
                acc = batch_pair(c, l, j, bi, p, w, r0, r1, rows, vals, wp, wm)
            elif clean:
                # every value finite: each moved row by its series, or exactly
                for k in range(r0, r1):
                    b = rows[k] if rows != NULL else k
                    a = vals[k] if vals != NULL else 1.0
                    ep = dp * a
                    em = dm * a
                    r = c.rad[b]
                    if r >= 0.0 and fabs(ep) <= r and fabs(em) <= r:
                        acc += series_pair(c.G + b * NS, ep, em)
                    else:
                        acc += row_exact(c, l, j, b, ep, em)
            else:
                for k in range(r0, r1):
                    b = rows[k] if rows != NULL else k
                    a = vals[k] if vals != NULL else 1.0
                    z = out[b * n + j]
                    if not isfinite(z) or not isfinite(a):
                        if isfinite(a):
                            continue            # z' = z + (finite) = z: nothing moves
                        acc += row_absolute(c, l, j, b,
                                            ops.fd_recompute(net, l, j, bi, p, b, wp),
                                            ops.fd_recompute(net, l, j, bi, p, b, wm))
                        continue
                    ep = dp * a
                    em = dm * a
                    if bad[b]:
                        acc += row_absolute(c, l, j, b, z + ep, z + em)
                    else:
                        r = c.rad[b]
                        if r >= 0.0 and fabs(ep) <= r and fabs(em) <= r:
                            acc += series_pair(c.G + b * NS, ep, em)
                        else:
                            acc += row_exact(c, l, j, b, ep, em)
            decay = 0.0
            if bk.decayed and c.lam != 0.0:
                decay = 0.5 * c.lam * (wp - wm) * (wp + wm)   # 0.5 lambda (w+^2 - w-^2)
            # (f(w+) - f(w-)) / 2h, f = mean row loss (+ decay)
            bk.grad[p * bk.g_stride] = (acc * inv_B + decay) * inv_2h


# --- the engine -----------------------------------------------------------------------

cdef inline void *data(object a) except NULL:
    return cnp.PyArray_DATA(<cnp.ndarray?> a)


cdef void fill_nan(Net *net) noexcept nogil:
    cdef Py_ssize_t l, k
    cdef Layer *ly
    for l in range(net.n_layers):
        ly = &net.layers[l]
        if ly.kind == KIND_AFFINE:
            for k in range(ly.n_in * ly.n_out):
                ly.affine.gW[k] = NAN
            for k in range(ly.n_out):
                ly.affine.gb[k] = NAN
        elif ly.kind == KIND_BATCHNORM:
            for k in range(ly.n_out):
                ly.bn.ggamma[k] = NAN
                ly.bn.gbeta[k] = NAN
        elif ly.kind == KIND_CONVOLUTION:
            for k in range(ly.conv.F * ly.conv.g.C * ly.conv.g.FH * ly.conv.g.FW):
                ly.conv.gW[k] = NAN
            for k in range(ly.conv.F):
                ly.conv.gb[k] = NAN


cdef bint decay_finite(const Net *net, double lam) noexcept nogil:
    """Is the reference's sum over weights of 0.5 * lam * np.sum(W ** 2) finite? (W ** 2
    in the weight's dtype: float32 squares overflow above 3.4e38.)"""
    cdef Py_ssize_t l, k
    cdef const Layer *ly
    cdef const double *W
    cdef double tot = 0.0, s, w2
    for l in range(net.n_layers):
        ly = &net.layers[l]
        if ly.kind != KIND_AFFINE:
            continue
        W = <const double *> ly.affine.W
        s = 0.0
        for k in range(ly.n_in * ly.n_out):
            w2 = W[k] * W[k]
            if ly.affine.W_f32 and w2 > FLT_MAX:
                w2 = INFINITY                    # W ** 2 overflows in float32
            s += w2
        if ly.affine.W_f32 and s > FLT_MAX:
            s = INFINITY
        tot += 0.5 * lam * s
    return isfinite(tot)


def fast_numgrad(Executor ex, dict params, x, t, lam, int n_threads, bint use_series=True):
    """numgrad() for a call that needs no conversion, checked here in C: x (B, n_x) float64,
    t (B,) intp labels, every param a writeable C-contiguous float64 array of the laid-out
    shape, no dropout. Returns (grads dict, warning bits), or None: the caller then takes
    the checked path (which also reports bad labels)."""
    cdef Py_ssize_t B = ex.planned_M, i, n, d
    cdef cnp.ndarray a
    cdef tuple shape
    cdef list plist, glist
    if ex.net.mode != MODE_FD or B < 0 or ex.pkeys is None or ex.n_masks:
        return None
    if type(x) is not np.ndarray or type(t) is not np.ndarray:
        return None
    a = <cnp.ndarray> x
    if (cnp.PyArray_NDIM(a) != 2 or cnp.PyArray_TYPE(a) != cnp.NPY_DOUBLE
            or not plain_memory(a) or cnp.PyArray_DIM(a, 0) != B
            or cnp.PyArray_DIM(a, 1) != ex.n_x):
        return None
    a = <cnp.ndarray> t
    if (cnp.PyArray_NDIM(a) != 1 or cnp.PyArray_TYPE(a) != cnp.NPY_INTP
            or not plain_memory(a) or cnp.PyArray_DIM(a, 0) != B
            or ex.n_classes == 1):
        return None
    n = len(ex.pkeys)
    plist = []
    glist = []
    for i in range(n):
        p = params.get(ex.pkeys[i])
        if type(p) is not np.ndarray:
            return None
        a = <cnp.ndarray> p
        shape = <tuple> ex.pshapes[i]
        if (cnp.PyArray_TYPE(a) != cnp.NPY_DOUBLE or not plain_memory(a)
                or not cnp.PyArray_ISWRITEABLE(a) or cnp.PyArray_NDIM(a) != len(shape)):
            return None
        for d in range(len(shape)):
            if cnp.PyArray_DIM(a, d) != <Py_ssize_t> shape[d]:
                return None
        plist.append(p)
        glist.append(cnp.PyArray_EMPTY(cnp.PyArray_NDIM(a), cnp.PyArray_DIMS(a), cnp.NPY_DOUBLE, 0))
    warn = numgrad(ex, x, t, plist, [], glist, [False] * n, lam is not None,
                   <double> lam if lam is not None else 0.0, n_threads, use_series)
    if warn < 0:
        return None
    out = {}
    for i in range(n):
        out[ex.pkeys[i]] = glist[i]
    return out, warn


def set_nep50(bint on):
    """Tell the engine how NumPy rounds np.float32(v) - 1e-4 (set once at import)."""
    global NEP50
    NEP50 = on


def numgrad(Executor ex,            # MODE_FD executor, planned for B rows
            x,                      # IN  (B, n_x) float64, C-contiguous
            labels,                 # IN  (B,) intp labels in range
            list params,            # IN  float64 C-contiguous params in layer order
            list masks,             # IN  dropout keep-masks (uint8), per dropout layer
            list grads,             # OUT float64 arrays like params
            list f32,               # per param: stored as float32
            bint decay, double lam, int n_threads, bint use_series=True):
    """Central-difference gradients of the net's loss for every param (validated inputs).

    Returns the NumPy-style warning bits of the forward pass (WARN_* of _executor.pxd).
    """
    cdef Net *net = &ex.net
    cdef Py_ssize_t L, B, l, p = 0, j, g, total, maxw = NS, nbytes, k
    cdef Layer *ly
    cdef int status, warn, team
    cdef Py_ssize_t *offs = NULL
    cdef Py_ssize_t *units = NULL
    cdef unsigned char *flags = NULL
    cdef Ctx *cp
    cdef double est = 0.0
    cdef bint any_batch = False, nan_rows = False
    cdef Py_ssize_t failed = 0
    cdef Ctx c
    if net.mode != MODE_FD:
        raise ValueError("numgrad: the executor must be built for MODE_FD")
    status, warn = ex.forward_fd(x, labels, params, masks, n_threads)
    if status:
        return -status
    L = net.n_layers
    B = net.M
    net.decay = decay           # weights under decay: 0.5 lam (w+^2 - w-^2) per param
    net.lam = lam
    for g in range(len(grads)):
        # a param that moves nothing has gradient 0: zero-filled once, sequentially
        memset(data(grads[g]), 0, cnp.PyArray_NBYTES(<cnp.ndarray> grads[g]))
    for l in range(L):
        ly = &net.layers[l]
        if ly.kind == KIND_AFFINE:
            ly.affine.gW = <double *> data(grads[p])
            ly.affine.gb = <double *> data(grads[p + 1])
            ly.affine.W_f32 = f32[p]
            ly.affine.b_f32 = f32[p + 1]
            p += 2
        elif ly.kind == KIND_BATCHNORM:
            ly.bn.ggamma = <double *> data(grads[p])
            ly.bn.gbeta = <double *> data(grads[p + 1])
            ly.bn.gamma_f32 = f32[p]
            ly.bn.beta_f32 = f32[p + 1]
            p += 2
        elif ly.kind == KIND_CONVOLUTION:
            ly.conv.gW = <double *> data(grads[p])
            ly.conv.gb = <double *> data(grads[p + 1])
            ly.conv.W_f32 = f32[p]
            ly.conv.b_f32 = f32[p + 1]
            p += 2
        maxw = max(maxw, ly.n_out)
    # a NaN row loss (or a non-finite decay term): every perturbed loss is NaN
    ly = &net.layers[L - 1]
    for k in range(B):
        nan_rows = nan_rows or isnan(ly.loss.row_loss[k])
    if nan_rows or (decay and not decay_finite(net, lam)):
        fill_nan(net)
        return warn
    offs = <Py_ssize_t *> malloc((2 * L + 1) * sizeof(Py_ssize_t))
    flags = <unsigned char *> calloc(L * B + 3 * L, 1)
    if offs == NULL or flags == NULL:
        free(offs)
        free(flags)
        raise MemoryError()
    try:
        c.net = net
        c.B = B
        c.maxw = maxw
        c.lam = lam if decay else 0.0
        c.use_series = use_series
        c.down_bad = flags
        c.series_ok = flags + L * B
        c.batch_mode = flags + L * B + L
        c.clean = flags + L * B + 2 * L
        units = offs + L + 1
        with nogil:
            # down_bad[l][b]: row b holds a non-finite value in some output after layer l
            for l in range(L - 2, -1, -1):
                ly = &net.layers[l + 1]
                for j in range(B):
                    flags[l * B + j] = flags[(l + 1) * B + j]
                    if l + 1 < L - 1:
                        for k in range(ly.n_out):
                            if not isfinite((<const double *> ly.out)[j * ly.n_out + k]):
                                flags[l * B + j] = 1
                                break
            # clean[l]: no non-finite value in layer l's input, its output or any later one
            flags[L * B + 2 * L + L - 1] = 1
            for l in range(L - 2, -1, -1):
                ly = &net.layers[l]
                k = 1
                for j in range(B):
                    if flags[l * B + j]:
                        k = 0
                        break
                flags[L * B + 2 * L + l] = (k and flags[L * B + 2 * L + l + 1]
                                            and all_finite(<const double *> ly.out, B * ly.n_out)
                                            and all_finite(<const double *> ly.inp, B * ly.n_in))
            # what the layers after l allow
            flags[L * B + L - 1] = 1
            for l in range(L - 2, -1, -1):
                ly = &net.layers[l + 1]
                flags[L * B + l] = (flags[L * B + l + 1]
                                    and kind_ops(ly.kind).fd_series != NULL)
                flags[L * B + L + l] = (flags[L * B + L + l + 1]
                                        or not kind_ops(ly.kind).row_local)
                any_batch = any_batch or flags[L * B + L + l]
            # work items: the units of every param layer
            offs[0] = 0
            for l in range(L):
                ly = &net.layers[l]
                total = 0
                if kind_ops(ly.kind).fd_units != NULL:
                    units[l] = kind_ops(ly.kind).fd_units(net, l, 0)
                    total = units[l]
                    if ly.kind == KIND_AFFINE:
                        est += 6.0 * (ly.affine.nz_off[ly.n_in] + B) * ly.n_out
                    elif ly.kind == KIND_CONVOLUTION:
                        # (K + 1) params a channel, each row pushed through the later
                        # layers (about the channel's outputs, a few ns each)
                        est += (NS_CONV_EVAL * B * ly.n_out
                                * (ly.conv.g.C * ly.conv.g.FH * ly.conv.g.FW + 1))
                    else:
                        est += 6.0 * B * ly.n_out
                    est += 400.0 * B * total * (L - 1 - l)
                    if flags[L * B + L + l]:
                        est += 50.0 * B * maxw * (L - l) * total * (ly.n_in + 1)
                offs[l + 1] = offs[l] + (total + UNITS_PER_ITEM - 1) // UNITS_PER_ITEM
            total = offs[L]
            team = fastnn_team(n_threads, est)
            nbytes = sizeof(Ctx) + ctx_bytes(B, maxw, any_batch)
            with parallel(num_threads=team):
                # each thread: its own copy of the context and its own scratch
                cp = <Ctx *> malloc(nbytes)
                if cp != NULL:
                    memcpy(cp, &c, sizeof(Ctx))
                    ctx_carve(cp, <double *> (cp + 1), B, maxw, any_batch)
                for g in prange(total, schedule="dynamic", chunksize=1):
                    if cp == NULL:
                        failed += 1                          # reported after the region
                        continue
                    l = 0
                    while g >= offs[l + 1]:
                        l = l + 1
                    for j in range((g - offs[l]) * UNITS_PER_ITEM,
                                   min((g - offs[l] + 1) * UNITS_PER_ITEM, units[l])):
                        unit(cp, l, j)
                free(cp)
            fastnn_team_end()
        if failed:
            raise MemoryError("numgrad: could not allocate per-thread scratch")
    finally:
        free(offs)
        free(flags)
    return warn


# --- generic numerical_gradient(f, x) -----------------------------------------------------

# x may be unaligned (a field of a packed record array: numerical_gradient perturbs the
# user's own array in place): memcpy, not a typed load, which UBSan reports as misaligned
# (and some CPUs fault on); compilers turn it into one plain move.
cdef inline double load(char *p, int kind) noexcept nogil:
    cdef double d
    cdef float s
    if kind == 0:
        memcpy(&d, p, sizeof(double))
        return d
    memcpy(&s, p, sizeof(float))
    return <double> s


cdef inline void store(char *p, int kind, double v) noexcept nogil:
    cdef float s
    if kind == 0:
        memcpy(p, &v, sizeof(double))
    else:
        s = <float> v
        memcpy(p, &s, sizeof(float))


def generic_loop(f, x, grad, Py_ssize_t[::1] shape, Py_ssize_t[::1] xstrides,
                 Py_ssize_t[::1] gstrides, Py_ssize_t[::1] order, size_t xaddr, size_t gaddr,
                 int kind, bint nep50):
    """The book's loop: for each element (axes nested as in `order`, last fastest),
    x[idx] = float(x[idx]) + h; f(x); x[idx] = x[idx] - h; f(x); restore; grad[idx] =
    (f+ - f-) / (2h). kind 0: float64, 1: float32. f is called with `x` itself."""
    cdef Py_ssize_t nd = shape.shape[0], n = 1, e, ax, kx, kg
    cdef Py_ssize_t idx[64]
    cdef char *xb = <char *> xaddr
    cdef char *gb = <char *> gaddr
    cdef char *px
    cdef double tmp, fp, fm
    cdef float t32, c32 = <float> FD_H
    cdef object f1, f2
    for ax in range(nd):
        n *= shape[ax]
        idx[ax] = 0
    for e in range(n):
        kx = 0
        kg = 0
        for ax in range(nd):
            kx += idx[ax] * xstrides[ax]
            kg += idx[ax] * gstrides[ax]
        px = xb + kx
        tmp = load(px, kind)
        try:
            store(px, kind, tmp + FD_H)                 # x[idx] = float(tmp_val) + h
            f1 = f(x)
            if kind == 1 and nep50:
                t32 = <float> tmp
                t32 = t32 - c32                      # float32 - float32 (NEP 50)
                memcpy(px, &t32, sizeof(float))      # (x may be unaligned)
            else:
                store(px, kind, tmp - FD_H)             # x[idx] = tmp_val - h
            f2 = f(x)
        finally:
            store(px, kind, tmp)                     # x[idx] = tmp_val (exact)
        if (type(f1) is float or type(f1) is _f64) and (type(f2) is float or type(f2) is _f64):
            fp = f1
            fm = f2
            store(gb + kg, kind, (fp - fm) / (2.0 * FD_H))
        else:
            try:
                store(gb + kg, kind, float((f1 - f2) / (2 * FD_H)))
            except (TypeError, ValueError) as err:
                raise TypeError(not_a_scalar(f1)) from err
        # next multi-index, last axis of `order` fastest
        ax = nd - 1
        while ax >= 0:
            kx = order[ax]
            idx[kx] += 1
            if idx[kx] < shape[kx]:
                break
            idx[kx] = 0
            ax -= 1


import numpy as _np
_f64 = _np.float64


def not_a_scalar(v):
    """The error message for a user's f that returned `v`, not one real number."""
    if isinstance(v, _np.ndarray):
        what = "an array of shape %s and dtype %s" % (v.shape, v.dtype)
    else:
        r = repr(v)
        what = "%s (a %s)" % (r, type(v).__name__) if len(r) < 60 else "a %s" % type(v).__name__
    return ("numerical_gradient: f(x) must return a scalar (one real number: the loss), but "
            "it returned %s" % what)
