# KIND_POOLING: the book's max Pooling on one sample's (C, H, W) block per row:
#   out[c, oy, ox] = max over fy, fx of xpad[c, oy*s + fy, ox*s + fx]
# (the padding's zeros take part); arg keeps which window element won (np.argmax: the
# first of equal values, the first NaN over anything) for the backward, which sends each
# gradient to that element. Its output flattens into a following Affine in C order
# (c, oy, ox): the book's x.reshape(N, -1). Kernels of _convolution, samples in parallel;
# the nets' 2x2 windows with stride 2 (even H, W) have their own (fastnn_pool22_* in
# fastnn_conv.h: arg as integers of the dtype's width, every dx pixel written once). After
# a Convolution and its ReLU they run inside the convolution, per sample (ConvRec.fuse_pool).
#
# Finite differences (no Taylor mode: a max is not analytic where two window elements
# tie, which a ReLU's zeros make common): a window's change is computed exactly, without
# cancellation, as max over its elements q of ((v_q - m) + d_q) -- m the cached max, d_q
# q's change (0 for the padding) -- which is exactly d_a when the max stays at a.

from libc.math cimport INFINITY
from fastnn._kernels._convolution cimport maxpool_forward, maxpool_backward

cdef extern from "fastnn_conv.h":
    void fastnn_pool22_fwd_d(const double *x, Py_ssize_t C, Py_ssize_t H, Py_ssize_t W,
                             double *out, long long *arg, int relu) noexcept nogil
    void fastnn_pool22_fwd_s(const float *x, Py_ssize_t C, Py_ssize_t H, Py_ssize_t W,
                             float *out, int *arg, int relu) noexcept nogil
    void fastnn_pool22_bwd_d(const double *dout, const double *out, const long long *arg,
                             Py_ssize_t C, Py_ssize_t H, Py_ssize_t W, double *dx,
                             int relu) noexcept nogil
    void fastnn_pool22_bwd_s(const float *dout, const float *out, const int *arg,
                             Py_ssize_t C, Py_ssize_t H, Py_ssize_t W, float *dx,
                             int relu) noexcept nogil

# measured single-thread cost (ns) per input element of the 2x2/2 kernels, for fastnn_team
cdef double NS_POOL22 = 0.25


cdef inline void pool22_forward_one(const fastnn_conv_geom *g, const floating *x, floating *out,
                                    char *arg, int relu) noexcept nogil:
    # arg: integers of the dtype's width
    if floating is double:
        fastnn_pool22_fwd_d(x, g.C, g.H, g.W, out, <long long *> arg, relu)
    else:
        fastnn_pool22_fwd_s(x, g.C, g.H, g.W, out, <int *> arg, relu)


cdef inline void pool22_backward_one(const fastnn_conv_geom *g, const floating *dout,
                                     const floating *out, const char *arg,
                                     floating *dx, int relu) noexcept nogil:
    if floating is double:
        fastnn_pool22_bwd_d(dout, out, <const long long *> arg, g.C, g.H, g.W, dx, relu)
    else:
        fastnn_pool22_bwd_s(dout, out, <const int *> arg, g.C, g.H, g.W, dx, relu)


cdef int pooling_forward_t(Net *net, Py_ssize_t l, floating *tag) noexcept nogil:
    cdef Layer *ly = &net.layers[l]
    cdef const fastnn_conv_geom *g = &ly.pool.g
    cdef Py_ssize_t P = g.OH * g.OW, n = net.M * ly.n_out, i, n_in = ly.n_in, n_out = ly.n_out
    cdef floating *out = <floating *> ly.out
    cdef const floating *x = <const floating *> ly.inp
    cdef char *arg8 = <char *> ly.pool.arg
    cdef Py_ssize_t arg_n = n_out * sizeof(floating)      # bytes of arg a sample
    cdef int relu = ly.pool.relu, team
    if ly.pool.fast22:
        # samples in parallel, each one's windows by one thread
        team = fastnn_team(net.n_threads, NS_POOL22 * net.M * n_in)
        if team <= 1:
            for i in range(net.M):
                pool22_forward_one(g, x + i * n_in, out + i * n_out, arg8 + i * arg_n, relu)
        else:
            for i in prange(net.M, schedule="static", num_threads=team):
                pool22_forward_one(g, x + i * n_in, out + i * n_out, arg8 + i * arg_n, relu)
        fastnn_team_end()
        return 0
    maxpool_forward(g, net.M, x, out, ly.pool.arg, g.C * P, P, 1, net.n_threads)
    if relu:
        # the fused ReLU before it (ConvRec.relu_pool): out = max(0, max(window))
        relu_row(out, out, n)
    return 0


cdef int pooling_forward(Net *net, Py_ssize_t l) noexcept nogil:
    if net.is_double:
        return pooling_forward_t(net, l, <double *> NULL)
    return pooling_forward_t(net, l, <float *> NULL)


cdef int pooling_backward_t(Net *net, Py_ssize_t l, floating *tag) noexcept nogil:
    cdef Layer *ly = &net.layers[l]
    cdef const fastnn_conv_geom *g = &ly.pool.g
    cdef Py_ssize_t P = g.OH * g.OW, i, n_in = ly.n_in, n_out = ly.n_out
    cdef const floating *d = <const floating *> ly.dout
    cdef const floating *out = <const floating *> ly.out
    cdef const char *arg8 = <const char *> ly.pool.arg
    cdef Py_ssize_t arg_n = n_out * sizeof(floating)
    cdef floating *dx = <floating *> ly.dinp
    cdef int relu = ly.pool.relu, team
    if dx == NULL:
        return 0
    if ly.pool.fast22:
        team = fastnn_team(net.n_threads, NS_POOL22 * net.M * n_in)
        if team <= 1:
            for i in range(net.M):
                pool22_backward_one(g, d + i * n_out, out + i * n_out, arg8 + i * arg_n,
                                    dx + i * n_in, relu)
        else:
            for i in prange(net.M, schedule="static", num_threads=team):
                pool22_backward_one(g, d + i * n_out, out + i * n_out, arg8 + i * arg_n,
                                    dx + i * n_in, relu)
        fastnn_team_end()
        return 0
    maxpool_backward(g, net.M, d, ly.pool.arg, g.C * P, P, 1, dx, net.n_threads)
    return 0


cdef int pooling_backward(Net *net, Py_ssize_t l) noexcept nogil:
    if net.is_double:
        return pooling_backward_t(net, l, <double *> NULL)
    return pooling_backward_t(net, l, <float *> NULL)


# --- finite differences (double) ---------------------------------------------------------

cdef int pooling_fd_exact(const Net *net, Py_ssize_t l, Py_ssize_t b, const RowDelta *d_in,
                          RowDelta *d_out, double *loss_pair) noexcept nogil:
    """The windows of the channels whose inputs moved: each one's change at w+ and w-."""
    cdef const Layer *ly = &net.layers[l]
    cdef const fastnn_conv_geom *g = &ly.pool.g
    cdef Py_ssize_t P = g.OH * g.OW, HW = g.H * g.W, lo, hi, c, c0, c1, oy, ox, fy, fx
    cdef Py_ssize_t iy, ix, k
    cdef const double *z = (<const double *> ly.inp) + b * ly.n_in
    cdef const double *mx = (<const double *> ly.out) + b * ly.n_out
    cdef double m, v, ep, em, best_p, best_m
    d_out.form = DELTA_ZERO
    if d_in.form == DELTA_ZERO:
        return 0
    delta_range(d_in, &lo, &hi)
    c0 = lo // HW
    c1 = (hi - 1) // HW
    for c in range(c0, c1 + 1):
        for oy in range(g.OH):
            for ox in range(g.OW):
                m = mx[c * P + oy * g.OW + ox]
                best_p = -INFINITY
                best_m = -INFINITY
                for fy in range(g.FH):
                    iy = oy * g.stride + fy - g.pad
                    for fx in range(g.FW):
                        ix = ox * g.stride + fx - g.pad
                        if iy < 0 or iy >= g.H or ix < 0 or ix >= g.W:
                            v = 0.0 - m             # the padding: 0, never moves
                            ep = v
                            em = v
                        else:
                            k = c * HW + iy * g.W + ix
                            v = z[k] - m
                            ep = v + delta_p(d_in, k)     # (v_q - m) + d_q
                            em = v + delta_m(d_in, k)
                        if ep > best_p:
                            best_p = ep
                        if em > best_m:
                            best_m = em
                d_out.p[c * P + oy * g.OW + ox] = best_p   # max(v + d) - m
                d_out.m[c * P + oy * g.OW + ox] = best_m
    d_out.form = DELTA_DENSE
    d_out.lo = c0 * P
    d_out.hi = (c1 + 1) * P
    return 0


cdef double pooling_fd_row_forward(const Net *net, Py_ssize_t l, Py_ssize_t b,
                                   const double *inp, double *out) noexcept nogil:
    """One row from scratch, np.max's rule: any NaN in a window makes its max NaN."""
    cdef const Layer *ly = &net.layers[l]
    cdef const fastnn_conv_geom *g = &ly.pool.g
    cdef Py_ssize_t P = g.OH * g.OW, c, oy, ox, fy, fx, iy, ix
    cdef double m, v
    cdef bint first
    for c in range(g.C):
        for oy in range(g.OH):
            for ox in range(g.OW):
                m = 0.0
                first = True
                for fy in range(g.FH):
                    iy = oy * g.stride + fy - g.pad
                    for fx in range(g.FW):
                        ix = ox * g.stride + fx - g.pad
                        if iy < 0 or iy >= g.H or ix < 0 or ix >= g.W:
                            v = 0.0
                        else:
                            v = inp[(c * g.H + iy) * g.W + ix]
                        if first or (m == m and (v != v or v > m)):
                            m = v                   # a NaN, once taken, stays
                        first = False
                out[c * P + oy * g.OW + ox] = m
    return 0.0
