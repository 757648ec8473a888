# KIND_RELU and KIND_SIGMOID: element-wise activations, in place over their input when
# the layer before does not need its output (an Affine or a BatchNorm).
#
#   relu:     out = 0 where in <= 0, else in   (the book's mask = (x <= 0); NaN stays NaN)
#             din = 0 where out <= 0, else dout
#   sigmoid:  out = 1 / (1 + exp(-in))          din = dout * (1 - out) * out
#
# NumPy warns "overflow encountered in exp" when -in > log(max) in the dtype; the
# forward reports the same (WARN_EXP_OVERFLOW) so the fused paths warn where it would.

from libc.math cimport INFINITY

cdef double EXP_MAX_D = 709.782712893384        # log(DBL_MAX)
cdef double EXP_MAX_S = 88.72283905206835       # log(FLT_MAX)
# measured single-thread cost per element (ns), for fastnn_team
cdef double NS_RELU = 0.3
cdef double NS_SIGMOID = 1.5


cdef inline int sigmoid_row(floating *z, Py_ssize_t n) noexcept nogil:
    """z = sigmoid(z) in place; returns WARN_EXP_OVERFLOW where NumPy's exp(-z) would
    overflow (a finite -z above log(max) of the dtype)."""
    cdef Py_ssize_t j
    cdef int n_over = 0
    cdef double lim = -EXP_MAX_D if floating is double else -EXP_MAX_S
    cdef floating ninf = -INFINITY
    for j in range(n):
        # finite, and exp(-z) overflows (-z > log(max), in double): a vectorised OR
        n_over |= (<double> z[j] < lim) & (z[j] > ninf)
    if floating is double:
        fastnn_sigmoid_array_d(z, z, n)
    else:
        fastnn_sigmoid_array_s(z, z, n)
    return WARN_EXP_OVERFLOW if n_over else 0


cdef inline void relu_row(const floating *x, floating *z, Py_ssize_t n) noexcept nogil:
    # out[x <= 0] = 0 (csrc/fastnn_ops.h, per ISA level: NaN stays NaN, -0.0 gives 0)
    if floating is double:
        fastnn_relu_d(x, z, n)
    else:
        fastnn_relu_s(x, z, n)


cdef inline int elementwise_row(int kind, floating *z, Py_ssize_t n) noexcept nogil:
    """The activation `kind` over one row, in place (the sparse Affine's fused epilogue)."""
    if kind == KIND_RELU:
        relu_row(z, z, n)
        return 0
    return sigmoid_row(z, n)


cdef int activation_forward_t(Net *net, Py_ssize_t l, floating *tag) noexcept nogil:
    cdef Layer *ly = &net.layers[l]
    cdef Py_ssize_t M = net.M, n = ly.n_out, i
    cdef const floating *x = <const floating *> ly.inp
    cdef floating *z = <floating *> ly.out
    cdef int warn = 0, team
    cdef double cost = NS_RELU if ly.kind == KIND_RELU else NS_SIGMOID
    team = fastnn_team(net.n_threads, cost * M * n)
    if team == 1:
        if ly.kind == KIND_RELU:
            relu_row(x, z, M * n)
        else:
            if z != x:
                memcpy(z, x, M * n * sizeof(floating))
            warn = sigmoid_row(z, M * n)
    else:
        for i in prange(M, schedule="static", num_threads=team):
            if ly.kind == KIND_RELU:
                relu_row(x + i * n, z + i * n, n)
            else:
                if z != x:
                    memcpy(z + i * n, x + i * n, n * sizeof(floating))
                warn |= sigmoid_row(z + i * n, n)
    fastnn_team_end()
    net.warnings |= warn
    return 0


cdef int activation_forward(Net *net, Py_ssize_t l) noexcept nogil:
    if net.is_double:
        return activation_forward_t(net, l, <double *> NULL)
    return activation_forward_t(net, l, <float *> NULL)


cdef inline void activation_backward_row(int kind, const floating *h, const floating *dh,
                                         floating *dx, Py_ssize_t n) noexcept nogil:
    # csrc/fastnn_ops.h, per ISA level (dx may be dh: element-wise in place)
    if kind == KIND_RELU:
        if floating is double:
            fastnn_relu_backward_d(h, dh, dx, n)               # dout[mask] = 0, mask = out <= 0
        else:
            fastnn_relu_backward_s(h, dh, dx, n)
    else:
        if floating is double:
            fastnn_sigmoid_backward_d(h, dh, dx, n)            # dout * (1 - out) * out
        else:
            fastnn_sigmoid_backward_s(h, dh, dx, n)


cdef int activation_backward_t(Net *net, Py_ssize_t l, floating *tag) noexcept nogil:
    cdef Layer *ly = &net.layers[l]
    cdef Py_ssize_t M = net.M, n = ly.n_out, i
    cdef int team
    if ly.dinp == NULL:
        return 0
    team = fastnn_team(net.n_threads, NS_RELU * M * n)
    if team == 1:
        activation_backward_row(ly.kind, <const floating *> ly.out, <const floating *> ly.dout,
                                <floating *> ly.dinp, M * n)
    else:
        for i in prange(M, schedule="static", num_threads=team):
            activation_backward_row(ly.kind, <const floating *> ly.out + i * n,
                                    <const floating *> ly.dout + i * n,
                                    <floating *> ly.dinp + i * n, n)
    fastnn_team_end()
    return 0


cdef int activation_backward(Net *net, Py_ssize_t l) noexcept nogil:
    if net.is_double:
        return activation_backward_t(net, l, <double *> NULL)
    return activation_backward_t(net, l, <float *> NULL)


# --- finite differences (double) ------------------------------------------------------

cdef inline double relu_delta(double z, double d) noexcept nogil:
    """relu(z + d) - relu(z)."""
    cdef double zp
    if d == 0.0:
        return 0.0
    zp = z + d
    return (zp if zp > 0.0 else 0.0) - (z if z > 0.0 else 0.0)


cdef inline double sigmoid_delta(double z, double E, double d) noexcept nogil:
    """sigmoid(z + d) - sigmoid(z), E = exp(-z), without cancellation for small d."""
    cdef double em
    if d == 0.0:
        return 0.0
    if E < 1e150 and fabs(d) < 1e-2:
        em = expm1_small(-d)
        # s(z+d) - s(z) = -E expm1(-d) / ((1 + E)(1 + E (1 + expm1(-d))))
        return -E * em / ((1.0 + E) * (1.0 + E * (1.0 + em)))
    return 1.0 / (1.0 + exp(-(z + d))) - 1.0 / (1.0 + exp(-z))


cdef inline double act_delta(const Layer *ly, Py_ssize_t idx, double d) noexcept nogil:
    if ly.kind == KIND_RELU:
        return relu_delta((<const double *> ly.inp)[idx], d)
    return sigmoid_delta((<const double *> ly.inp)[idx], ly.sigmoid.E[idx], d)


cdef int activation_fd_exact(const Net *net, Py_ssize_t l, Py_ssize_t b, const RowDelta *d_in,
                             RowDelta *d_out, double *loss_pair) noexcept nogil:
    cdef const Layer *ly = &net.layers[l]
    cdef Py_ssize_t n = ly.n_out, k, base = b * n
    cdef double p, m
    cdef bint moved = False
    d_out.form = DELTA_ZERO
    if d_in.form == DELTA_ONE:
        p = act_delta(ly, base + d_in.unit, d_in.p[0])
        m = act_delta(ly, base + d_in.unit, d_in.m[0])
        if p != 0.0 or m != 0.0:
            d_out.form = DELTA_ONE
            d_out.unit = d_in.unit
            d_out.p[0] = p
            d_out.m[0] = m
    elif d_in.form == DELTA_DENSE:
        for k in range(d_in.lo, d_in.hi):
            d_out.p[k] = act_delta(ly, base + k, d_in.p[k])
            d_out.m[k] = act_delta(ly, base + k, d_in.m[k])
            moved = moved or d_out.p[k] != 0.0 or d_out.m[k] != 0.0
        if moved:
            d_out.form = DELTA_DENSE
            d_out.lo = d_in.lo
            d_out.hi = d_in.hi
    return 0


cdef double relu_fd_series(const Net *net, Py_ssize_t l, Py_ssize_t b, const RowSeries *s_in,
                           RowSeries *s_out, double rad, double *wk) noexcept nogil:
    """A ReLU passes a series on unchanged (z > 0) or stops it (z < 0), as long as no
    unit can change sides: |change| < |z| (rad shrinks to 0.5 |z| / sum|c_q|)."""
    cdef const Layer *ly = &net.layers[l]
    cdef const double *z = (<const double *> ly.inp) + b * ly.n_out
    cdef Py_ssize_t n = ly.n_out, k
    cdef double sc, zk
    cdef int q
    cdef bint moved = False
    s_out.form = SER_ZERO
    if s_in.form == SER_ONE:
        zk = z[s_in.unit]
        if zk == 0.0:
            return 0.0
        rad = min(rad, 0.5 * fabs(zk) / ser_abs_sum(s_in.s))
        if zk > 0.0:
            s_out.form = SER_ONE
            s_out.unit = s_in.unit
            for q in range(NS):
                s_out.s[q] = s_in.s[q]
    elif s_in.form == SER_RANK1:
        sc = ser_abs_sum(s_in.s)
        for k in range(n):
            s_out.cbuf[k] = 0.0
            if s_in.coef[k] == 0.0:
                continue
            zk = z[k]
            if zk == 0.0:
                return 0.0
            rad = min(rad, 0.5 * fabs(zk) / (fabs(s_in.coef[k]) * sc))
            if zk > 0.0:
                s_out.cbuf[k] = s_in.coef[k]
                moved = True
        if moved:
            s_out.form = SER_RANK1
            s_out.coef = s_out.cbuf
            for q in range(NS):
                s_out.s[q] = s_in.s[q]
    elif s_in.form == SER_DENSE:
        for k in range(n):
            for q in range(NS):
                s_out.V[k * NS + q] = 0.0
            if ser_is_zero(s_in.V + k * NS):
                continue
            zk = z[k]
            if zk == 0.0:
                return 0.0
            rad = min(rad, 0.5 * fabs(zk) / ser_abs_sum(s_in.V + k * NS))
            if zk > 0.0:
                moved = True
                for q in range(NS):
                    s_out.V[k * NS + q] = s_in.V[k * NS + q]
        if moved:
            s_out.form = SER_DENSE
    return rad


cdef inline bint ser_is_identity(const double *s) noexcept nogil:
    cdef int q
    if s[1] != 1.0:
        return False
    for q in range(2, NS):
        if s[q] != 0.0:
            return False
    return True


cdef double sigmoid_fd_series(const Net *net, Py_ssize_t l, Py_ssize_t b,
                              const RowSeries *s_in, RowSeries *s_out, double rad,
                              double *wk) noexcept nogil:
    """sigmoid(z + c(d)) - sigmoid(z) = sum_q sig_q c^q (sig_q: the cached Taylor
    coefficients of sigmoid at z). A rank-1 input c_k = coef[k] s shares the powers of s."""
    cdef const Layer *ly = &net.layers[l]
    cdef Py_ssize_t n = ly.n_out, k, kk
    cdef const double *S = ly.sigmoid.S + b * n * NS
    cdef const double *c
    cdef double *P = wk
    cdef double *pw = wk + NS * NS
    cdef double *tmp = wk + NS * NS + NS
    cdef double *sw
    cdef double w, sc
    cdef int q
    s_out.form = SER_ZERO
    if s_in.form == SER_ONE:
        s_out.form = SER_ONE
        s_out.unit = s_in.unit
        c = S + s_in.unit * NS
        if ser_is_identity(s_in.s):
            s_out.s[0] = 0.0
            for q in range(1, NS):
                s_out.s[q] = c[q]
        else:
            ser_compose(c, s_in.s, s_out.s, pw, tmp)
    elif s_in.form == SER_RANK1:
        # da_k = sum_q sig_k[q] (coef[k] s)^q = sum_q sig_k[q] coef[k]^q [s^q]
        ser_powers(s_in.s, P)
        s_out.form = SER_DENSE
        for k in range(n):
            sw = s_out.V + k * NS
            for q in range(NS):
                sw[q] = 0.0
            w = s_in.coef[k]
            if w == 0.0:
                continue
            c = S + k * NS
            sc = w
            for q in range(1, NS):
                for kk in range(q, NS):
                    sw[kk] = sw[kk] + c[q] * sc * P[(q - 1) * NS + kk]
                sc = sc * w
    elif s_in.form == SER_DENSE:
        s_out.form = SER_DENSE
        for k in range(n):
            if ser_is_zero(s_in.V + k * NS):
                for q in range(NS):
                    s_out.V[k * NS + q] = 0.0
            else:
                ser_compose(S + k * NS, s_in.V + k * NS, s_out.V + k * NS, pw, tmp)
    return rad


cdef double activation_fd_row_forward(const Net *net, Py_ssize_t l, Py_ssize_t b,
                                      const double *inp, double *out) noexcept nogil:
    cdef const Layer *ly = &net.layers[l]
    cdef Py_ssize_t k
    for k in range(ly.n_out):
        if ly.kind == KIND_RELU:
            out[k] = 0.0 if inp[k] <= 0.0 else inp[k]
        else:
            out[k] = 1.0 / (1.0 + exp(-inp[k]))
    return 0.0


cdef int sigmoid_fd_prepare(Net *net, Py_ssize_t l) noexcept nogil:
    """exp(-z) (for exact changes) and sigmoid's Taylor coefficients at every z (series)."""
    cdef Layer *ly = &net.layers[l]
    cdef Py_ssize_t i, n = net.M * ly.n_out
    cdef const double *z = <const double *> ly.inp
    cdef double *E = ly.sigmoid.E
    cdef double s0, c0
    for i in range(n):
        E[i] = -z[i]
    fastnn_exp_inplace_d(E, n)                           # E = exp(-z)
    for i in range(n):
        s0 = 1.0 / (1.0 + E[i])                          # sigmoid(z)
        c0 = E[i] / (1.0 + E[i]) if E[i] < 1e300 else 1.0   # 1 - sigmoid(z)
        sig_coeffs(s0, c0, ly.sigmoid.S + i * NS)
    return 0


cdef inline void sig_coeffs(double s0, double c0, double *s) noexcept nogil:
    """Taylor coefficients s_n = sigmoid^(n)(z) / n! at z; s0 = sigmoid(z), c0 = 1 - s0."""
    cdef int n, i
    cdef double acc
    s[0] = s0
    s[1] = s0 * c0                           # S' = S (1 - S)
    for n in range(1, NT):
        # (n + 1) s_{n+1} = s_n (1 - 2 s_0) - sum_{i=1}^{n-1} s_i s_{n-i}
        acc = s[n] * (c0 - s0)
        for i in range(1, n):
            acc = acc - s[i] * s[n - i]
        s[n + 1] = acc / (n + 1)
