# KIND_DROPOUT: out = in * mask (the book's non-inverted Dropout in training mode; the
# keep-mask, np.random.rand(*x.shape) > ratio, is drawn in Python in the book's order).
# Its own output buffer: the activation before it needs its output for its backward.
#   din = dout * mask

cdef int dropout_forward_t(Net *net, Py_ssize_t l, floating *tag) noexcept nogil:
    cdef Layer *ly = &net.layers[l]
    cdef Py_ssize_t n = net.M * ly.n_out, j
    cdef const floating *x = <const floating *> ly.inp
    cdef floating *z = <floating *> ly.out
    cdef const unsigned char *mask = ly.dropout.mask
    for j in range(n):
        z[j] = x[j] * (<floating> mask[j])             # x * self.mask
    return 0


cdef int dropout_forward(Net *net, Py_ssize_t l) noexcept nogil:
    if net.is_double:
        return dropout_forward_t(net, l, <double *> NULL)
    return dropout_forward_t(net, l, <float *> NULL)


cdef int dropout_backward_t(Net *net, Py_ssize_t l, floating *tag) noexcept nogil:
    cdef Layer *ly = &net.layers[l]
    cdef Py_ssize_t n = net.M * ly.n_out, j
    cdef const floating *d = <const floating *> ly.dout
    cdef floating *dx = <floating *> ly.dinp
    cdef const unsigned char *mask = ly.dropout.mask
    if dx == NULL:
        return 0
    for j in range(n):
        dx[j] = d[j] * (<floating> mask[j])            # dout * self.mask
    return 0


cdef int dropout_backward(Net *net, Py_ssize_t l) noexcept nogil:
    if net.is_double:
        return dropout_backward_t(net, l, <double *> NULL)
    return dropout_backward_t(net, l, <float *> NULL)


# --- finite differences (a fixed mask) -------------------------------------------------

cdef int dropout_fd_exact(const Net *net, Py_ssize_t l, Py_ssize_t b, const RowDelta *d_in,
                          RowDelta *d_out, double *loss_pair) noexcept nogil:
    cdef const Layer *ly = &net.layers[l]
    cdef const unsigned char *mask = ly.dropout.mask + b * ly.n_out
    cdef Py_ssize_t k
    d_out.form = DELTA_ZERO
    if d_in.form == DELTA_ONE:
        if mask[d_in.unit]:
            d_out.form = DELTA_ONE
            d_out.unit = d_in.unit
            d_out.p[0] = d_in.p[0]
            d_out.m[0] = d_in.m[0]
    elif d_in.form == DELTA_DENSE:
        d_out.form = DELTA_DENSE
        d_out.lo = d_in.lo
        d_out.hi = d_in.hi
        for k in range(d_in.lo, d_in.hi):
            d_out.p[k] = d_in.p[k] * mask[k]
            d_out.m[k] = d_in.m[k] * mask[k]
    return 0


cdef double dropout_fd_series(const Net *net, Py_ssize_t l, Py_ssize_t b,
                              const RowSeries *s_in, RowSeries *s_out, double rad,
                              double *wk) noexcept nogil:
    cdef const Layer *ly = &net.layers[l]
    cdef const unsigned char *mask = ly.dropout.mask + b * ly.n_out
    cdef Py_ssize_t k
    cdef int q
    s_out.form = s_in.form
    s_out.unit = s_in.unit
    if s_in.form == SER_ONE:
        if not mask[s_in.unit]:
            s_out.form = SER_ZERO
        for q in range(NS):
            s_out.s[q] = s_in.s[q]
    elif s_in.form == SER_RANK1:
        for q in range(NS):
            s_out.s[q] = s_in.s[q]
        for k in range(ly.n_out):
            s_out.cbuf[k] = s_in.coef[k] * mask[k]
        s_out.coef = s_out.cbuf
    elif s_in.form == SER_DENSE:
        for k in range(ly.n_out * NS):
            s_out.V[k] = s_in.V[k] * mask[k // NS]
    return rad


cdef double dropout_fd_row_forward(const Net *net, Py_ssize_t l, Py_ssize_t b,
                                   const double *inp, double *out) noexcept nogil:
    cdef const Layer *ly = &net.layers[l]
    cdef const unsigned char *mask = ly.dropout.mask + b * ly.n_out
    cdef Py_ssize_t k
    for k in range(ly.n_out):
        out[k] = inp[k] * mask[k]
    return 0.0
