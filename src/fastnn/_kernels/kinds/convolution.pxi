# KIND_CONVOLUTION: the book's Convolution on one sample's (C, H, W) block per row:
#   out[f, oy, ox] = sum_{c, fy, fx} W[f, c, fy, fx] xpad[c, oy*s + fy, ox*s + fx] + b[f]
# (xpad: the input with `pad` zeros on every side). Forward and backward are the kernels
# of _convolution (im2col + the project's GEMM per sample, samples or groups of samples
# in parallel, the same bits on any thread count); they share one scratch buffer, the
# net's conv_work, since layers run one after the other.
#
# In gradient mode a Convolution -> Relu -> Pooling run is fused: the ReLU's forward is
# skipped and the pool applies it to each window's max (relu(max(w)) == max(relu(w)); the
# argmax may differ only where the max is <= 0, and there the ReLU's backward zeroes the
# gradient either way), so the same bits come out without a pass over the conv output.
# With the nets' 2x2/2 pool the convolution kernel runs the pool itself on each sample's
# output while it is in cache, and rebuilds each sample's gradient from the pooled one in
# the backward (PoolFuse, _convolution.pxd): the relu and pool layers then do nothing.
#
# Finite differences: a unit is an output channel f; its params are W[f] (K = C*FH*FW)
# and b[f], each moving the channel's P = OH*OW outputs of a row by (w' - w) times a
# pattern: the input under the filter tap (c, fy, fx) at every position (for W), or 1
# (for b) -- pattern blocks (ParamBlock.width = P). As a downstream layer, a change of its
# input moves the outputs linearly: d out = conv(d in) without the bias.

from fastnn._kernels._convolution cimport (conv_forward, conv_backward, conv_work_bytes,
                                           conv_geom_init, PoolFuse)

cdef extern from "fastnn_conv.h":
    void fastnn_pad_image_d(const fastnn_conv_geom *g, const double *x, double *xp) noexcept nogil


cdef int convolution_forward_t(Net *net, Py_ssize_t l, floating *tag) noexcept nogil:
    cdef Layer *ly = &net.layers[l]
    cdef PoolFuse fuse
    cdef PoolFuse *pool = NULL
    if ly.conv.fuse_pool:
        # the relu and 2x2/2 pool after it, per sample (their layers are done)
        fuse.out = net.layers[l + 2].out
        fuse.arg = net.layers[l + 2].pool.arg
        fuse.dout = NULL
        fuse.relu = 1
        pool = &fuse
    if conv_forward(&ly.conv.g, net.M, ly.conv.F, <const floating *> ly.inp,
                    <const floating *> ly.conv.W, <const floating *> ly.conv.b,
                    <floating *> ly.out, net.n_threads, net.conv_work, pool):
        return STATUS_NO_MEMORY
    if ly.conv.relu_pool:
        net.layers[l + 1].done = True       # the pool after the relu applies it
    if ly.conv.fuse_pool:
        net.layers[l + 2].done = True
    return 0


cdef int convolution_forward(Net *net, Py_ssize_t l) noexcept nogil:
    if net.is_double:
        return convolution_forward_t(net, l, <double *> NULL)
    return convolution_forward_t(net, l, <float *> NULL)


cdef int convolution_backward_t(Net *net, Py_ssize_t l, floating *tag) noexcept nogil:
    # dW, db and (not for the first layer) din, from dout (fused: from the pool's dout)
    cdef Layer *ly = &net.layers[l]
    cdef PoolFuse fuse
    cdef PoolFuse *pool = NULL
    if ly.conv.fuse_pool:
        fuse.out = net.layers[l + 2].out
        fuse.arg = net.layers[l + 2].pool.arg
        fuse.dout = net.layers[l + 2].dout
        fuse.relu = 1
        pool = &fuse
    if conv_backward(&ly.conv.g, net.M, ly.conv.F, <const floating *> ly.inp,
                     <const floating *> ly.conv.W, <const floating *> ly.dout,
                     <floating *> ly.dinp, <floating *> ly.conv.dW, <floating *> ly.conv.db,
                     net.n_threads, net.conv_work, pool):
        return STATUS_NO_MEMORY
    return 0


cdef int convolution_backward(Net *net, Py_ssize_t l) noexcept nogil:
    if net.is_double:
        return convolution_backward_t(net, l, <double *> NULL)
    return convolution_backward_t(net, l, <float *> NULL)


# --- finite differences (double) ---------------------------------------------------------

cdef inline Py_ssize_t conv_padded_size(const fastnn_conv_geom *g) noexcept nogil:
    return g.C * (g.H + 2 * g.pad) * (g.W + 2 * g.pad)


cdef int convolution_fd_prepare(Net *net, Py_ssize_t l) noexcept nogil:
    """The padded input of every row (xpad; the input itself when pad is 0): the patterns
    of the filter taps are read from it."""
    cdef Layer *ly = &net.layers[l]
    cdef const fastnn_conv_geom *g = &ly.conv.g
    cdef Py_ssize_t b, CHW = g.C * g.H * g.W, n = conv_padded_size(g)
    cdef double *xp = <double *> ly.conv.xpad
    if g.pad == 0:
        ly.conv.xpad = <const double *> ly.inp
        return 0
    for b in range(net.M):
        fastnn_pad_image_d(g, (<const double *> ly.inp) + b * CHW, xp + b * n)
    return 0


cdef Py_ssize_t convolution_fd_units(const Net *net, Py_ssize_t l, Py_ssize_t j) noexcept nogil:
    return net.layers[l].conv.F


cdef int convolution_fd_unit_params(const Net *net, Py_ssize_t l, Py_ssize_t j,
                                    ParamBlock *blocks) noexcept nogil:
    """Two pattern blocks of width P: W[j] (K params) and b[j]."""
    cdef const Layer *ly = &net.layers[l]
    cdef const ConvRec *cv = &ly.conv
    cdef Py_ssize_t K = cv.g.C * cv.g.FH * cv.g.FW, P = cv.g.OH * cv.g.OW
    cdef ParamBlock *bk = &blocks[0]
    memset(blocks, 0, 2 * sizeof(ParamBlock))
    bk.n = K
    bk.w = (<const double *> cv.W) + j * K
    bk.w_stride = 1
    bk.grad = cv.gW + j * K
    bk.g_stride = 1
    bk.f32 = cv.W_f32
    bk.width = P
    bk = &blocks[1]
    bk.n = 1
    bk.w = (<const double *> cv.b) + j
    bk.w_stride = 1
    bk.grad = cv.gb + j
    bk.g_stride = 1
    bk.f32 = cv.b_f32
    bk.width = P
    return 2


cdef inline void conv_tap(const ConvRec *cv, Py_ssize_t b, Py_ssize_t k,
                          double *vec) noexcept nogil:
    """vec[oy * OW + ox] = xpad[b, c, oy*s + fy, ox*s + fx], k = (c, fy, fx)."""
    cdef const fastnn_conv_geom *g = &cv.g
    cdef Py_ssize_t Hp = g.H + 2 * g.pad, Wp = g.W + 2 * g.pad, s = g.stride
    cdef Py_ssize_t c = k // (g.FH * g.FW), r = k - c * g.FH * g.FW
    cdef Py_ssize_t fy = r // g.FW, fx = r - fy * g.FW, oy, ox
    cdef const double *src = cv.xpad + b * conv_padded_size(g) + (c * Hp + fy) * Wp + fx
    for oy in range(g.OH):
        for ox in range(g.OW):
            vec[oy * g.OW + ox] = src[oy * s * Wp + ox * s]


cdef int convolution_fd_pattern(const Net *net, Py_ssize_t l, Py_ssize_t j, int block,
                                Py_ssize_t p, Py_ssize_t b, double *vec) noexcept nogil:
    cdef const ConvRec *cv = &net.layers[l].conv
    cdef Py_ssize_t P = cv.g.OH * cv.g.OW, q
    cdef bint nonzero = False, finite = True
    if block == 1:
        for q in range(P):
            vec[q] = 1.0                    # b[j] moves every output of the channel
        return PATTERN_FINITE
    conv_tap(cv, b, p, vec)
    for q in range(P):
        nonzero = nonzero or vec[q] != 0.0
        finite = finite and isfinite(vec[q])
    if not finite:
        return PATTERN_NONFINITE
    return PATTERN_FINITE if nonzero else PATTERN_ZERO


cdef void convolution_fd_recompute_vec(const Net *net, Py_ssize_t l, Py_ssize_t j, int block,
                                       Py_ssize_t p, Py_ssize_t b, double w_new,
                                       double *vec) noexcept nogil:
    """Channel j of row b from scratch with W[j, p] (block 0) or b[j] (block 1) = w_new:
    sum_k W'[j, k] tap_k + b'[j] (non-finite inputs or weights)."""
    cdef const ConvRec *cv = &net.layers[l].conv
    cdef Py_ssize_t K = cv.g.C * cv.g.FH * cv.g.FW, P = cv.g.OH * cv.g.OW, k, q
    cdef const double *Wj = (<const double *> cv.W) + j * K
    cdef double w, bias = w_new if block == 1 else (<const double *> cv.b)[j]
    cdef double *tap = vec + P              # scratch after the result (the caller's 2P)
    for q in range(P):
        vec[q] = 0.0
    for k in range(K):
        w = w_new if (block == 0 and k == p) else Wj[k]
        conv_tap(cv, b, k, tap)
        for q in range(P):
            vec[q] += w * tap[q]
    for q in range(P):
        vec[q] += bias


cdef inline double delta_p(const RowDelta *d, Py_ssize_t k) noexcept nogil:
    # the change of unit k at w+ (DELTA_ONE keeps its one value in p[0])
    if d.form == DELTA_ONE:
        return d.p[0] if k == d.unit else 0.0
    return d.p[k]


cdef inline double delta_m(const RowDelta *d, Py_ssize_t k) noexcept nogil:
    if d.form == DELTA_ONE:
        return d.m[0] if k == d.unit else 0.0
    return d.m[k]


cdef inline void delta_range(const RowDelta *d, Py_ssize_t *lo, Py_ssize_t *hi) noexcept nogil:
    if d.form == DELTA_ONE:
        lo[0] = d.unit
        hi[0] = d.unit + 1
    else:
        lo[0] = d.lo
        hi[0] = d.hi


cdef int convolution_fd_exact(const Net *net, Py_ssize_t l, Py_ssize_t b, const RowDelta *d_in,
                              RowDelta *d_out, double *loss_pair) noexcept nogil:
    """d out = conv(d in) (linear, no bias): every moved input pixel adds W times its
    change to the outputs whose windows hold it."""
    cdef const Layer *ly = &net.layers[l]
    cdef const fastnn_conv_geom *g = &ly.conv.g
    cdef Py_ssize_t F = ly.conv.F, P = g.OH * g.OW, HW = g.H * g.W, KK = g.FH * g.FW
    cdef Py_ssize_t K = g.C * KK, lo, hi, k, c, iy, ix, fy, fx, t, u, oy, ox, f, pos
    cdef const double *W = <const double *> ly.conv.W
    cdef const double *Wk
    cdef double ep, em, w
    d_out.form = DELTA_ZERO
    if d_in.form == DELTA_ZERO:
        return 0
    delta_range(d_in, &lo, &hi)
    memset(d_out.p, 0, F * P * sizeof(double))
    memset(d_out.m, 0, F * P * sizeof(double))
    for k in range(lo, hi):
        ep = delta_p(d_in, k)
        em = delta_m(d_in, k)
        if ep == 0.0 and em == 0.0:
            continue
        c = k // HW
        iy = (k - c * HW) // g.W
        ix = k - c * HW - iy * g.W
        for fy in range(g.FH):
            t = iy + g.pad - fy                  # = oy * s
            if t < 0 or t % g.stride != 0 or t // g.stride >= g.OH:
                continue
            oy = t // g.stride
            for fx in range(g.FW):
                u = ix + g.pad - fx              # = ox * s
                if u < 0 or u % g.stride != 0 or u // g.stride >= g.OW:
                    continue
                ox = u // g.stride
                pos = oy * g.OW + ox
                Wk = W + c * KK + fy * g.FW + fx
                for f in range(F):
                    w = Wk[f * K]                 # W[f, c, fy, fx]
                    d_out.p[f * P + pos] += w * ep
                    d_out.m[f * P + pos] += w * em
    d_out.form = DELTA_DENSE
    d_out.lo = 0
    d_out.hi = F * P
    return 0


cdef double convolution_fd_row_forward(const Net *net, Py_ssize_t l, Py_ssize_t b,
                                       const double *inp, double *out) noexcept nogil:
    """One row from scratch: out[f, p] = sum_k W[f, k] tap_k(inp)[p] + b[f] (the padding
    reads 0)."""
    cdef const Layer *ly = &net.layers[l]
    cdef const fastnn_conv_geom *g = &ly.conv.g
    cdef Py_ssize_t F = ly.conv.F, P = g.OH * g.OW, KK = g.FH * g.FW, K = g.C * KK
    cdef Py_ssize_t f, c, fy, fx, oy, ox, iy, ix
    cdef const double *W = <const double *> ly.conv.W
    cdef const double *bias = <const double *> ly.conv.b
    cdef double w
    for f in range(F * P):
        out[f] = 0.0
    for f in range(F):
        for c in range(g.C):
            for fy in range(g.FH):
                for fx in range(g.FW):
                    w = W[f * K + c * KK + fy * g.FW + fx]
                    for oy in range(g.OH):
                        iy = oy * g.stride + fy - g.pad
                        if iy < 0 or iy >= g.H:
                            continue
                        for ox in range(g.OW):
                            ix = ox * g.stride + fx - g.pad
                            if ix < 0 or ix >= g.W:
                                continue
                            out[f * P + oy * g.OW + ox] += w * inp[(c * g.H + iy) * g.W + ix]
        for oy in range(P):
            out[f * P + oy] += bias[f]
    return 0.0
