# KIND_POOLING: the book's max Pooling on one sample's (C, H, W) block per row:
#   out[c, oy, ox] = max over fy, fx of xpad[c, oy*s + fy, ox*s + fx]
# (the padding's zeros take part); arg keeps which window element won (np.argmax: the
# first of equal values, the first NaN over anything) for the backward, which sends each
# gradient to that element. Its output flattens into a following Affine in C order
# (c, oy, ox): the book's x.reshape(N, -1). Kernels of _convolution, samples in parallel.
#
# Finite differences (no Taylor mode: a max is not analytic where two window elements
# tie, which a ReLU's zeros make common): a window's change is computed exactly, without
# cancellation, as max over its elements q of ((v_q - m) + d_q) -- m the cached max, d_q
# q's change (0 for the padding) -- which is exactly d_a when the max stays at a.

from libc.math cimport INFINITY
from fastnn._kernels._convolution cimport maxpool_forward, maxpool_backward

cdef double NS_POOL_RELU = 0.3         # ns per element of the fused ReLU on the pooled map


cdef int pooling_forward_t(Net *net, Py_ssize_t l, floating *tag) noexcept nogil:
    cdef Layer *ly = &net.layers[l]
    cdef const fastnn_conv_geom *g = &ly.pool.g
    cdef Py_ssize_t P = g.OH * g.OW, n = net.M * ly.n_out, j
    cdef floating *out = <floating *> ly.out
    maxpool_forward(g, net.M, <const floating *> ly.inp, out, ly.pool.arg, g.C * P, P, 1,
                    net.n_threads)
    if ly.pool.relu:
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
    cdef Py_ssize_t P = g.OH * g.OW
    if ly.dinp == NULL:
        return 0
    maxpool_backward(g, net.M, <const floating *> ly.dout, ly.pool.arg, g.C * P, P, 1,
                     <floating *> ly.dinp, net.n_threads)
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
