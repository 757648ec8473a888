# KIND_SOFTMAX_CE: the loss, SoftmaxWithLoss: mean over rows of -log(softmax(in)[t] + 1e-7)
# (labels, or one-hot t as its argmax, as the book's cross_entropy_error), and its
# backward (y - t) / batch_size (one-hot or soft t as given; labels: y[t] - 1).
#
# Gradient mode: the backward computes din from the logits (in); softmax in the dtype,
# exp(x - max) rounded to the dtype, the row sum in double. FD mode: the forward keeps
# p = softmax(in) and every row's loss r_b in double.
#
# NumPy warns "invalid value encountered in subtract" when a row's max is +-inf
# (x - max gives inf - inf); reported as WARN_SUBTRACT_INVALID.

cdef double NS_SOFTMAX = 4.0       # ns per element


cdef inline floating row_max(const floating *x, Py_ssize_t n) noexcept nogil:
    # np.max semantics: any NaN makes the max NaN
    cdef floating m = x[0]
    cdef bint has_nan = x[0] != x[0]
    cdef Py_ssize_t j
    for j in range(1, n):
        if x[j] > m:
            m = x[j]
        has_nan |= x[j] != x[j]
    if has_nan:
        return <floating> NAN
    return m


cdef inline int shift_row(const floating *x, floating *s, Py_ssize_t n) noexcept nogil:
    """s = x - max(x), in the dtype (the reference's overflow guard)."""
    cdef floating m = row_max(x, n)
    cdef Py_ssize_t j
    for j in range(n):
        s[j] = x[j] - m
    return WARN_SUBTRACT_INVALID if (m == m and not isfinite(m)) else 0


cdef inline void exp_run(floating *z, Py_ssize_t n) noexcept nogil:
    if floating is double:
        fastnn_exp_inplace_d(z, n)
    else:
        fastnn_exp_inplace_s(z, n)


cdef inline void dy_row(floating *e, Py_ssize_t n, Py_ssize_t label, const floating *t_row,
                        floating batch) noexcept nogil:
    """exp(x - max) row -> dx row in place: y = e / sum(e); dx = (y - t) / batch_size.

    One-hot (or soft) t: (y - t) / batch_size; labels: y[t] -= 1, then / batch_size.
    (Branch-free loops, so the divisions run as vectors.)
    """
    cdef double tot = 0.0
    cdef Py_ssize_t j
    cdef floating y_label = 0
    for j in range(n):
        tot += e[j]                            # sum(exp(x - max))
    if t_row != NULL:
        for j in range(n):
            e[j] = (<floating> (<double> e[j] / tot) - t_row[j]) / batch   # (y - t) / batch_size
        return
    if label >= 0:
        y_label = <floating> (<double> e[label] / tot)
    for j in range(n):
        e[j] = <floating> (<double> e[j] / tot) / batch       # y = exp / sum(exp); / batch_size
    if label >= 0:
        e[label] = (y_label - 1) / batch       # y[t] -= 1; / batch_size


cdef int softmax_ce_backward_t(Net *net, Py_ssize_t l, floating *tag) noexcept nogil:
    cdef Layer *ly = &net.layers[l]
    cdef Py_ssize_t M = net.M, C = ly.n_in, i
    cdef const floating *x = <const floating *> ly.inp
    cdef floating *d = <floating *> ly.dinp
    cdef const floating *t = <const floating *> ly.loss.onehot
    cdef const Py_ssize_t *lab = ly.loss.labels
    cdef int warn = 0, team = fastnn_team(net.n_threads, NS_SOFTMAX * M * C)
    if team == 1:
        # three passes over the block, so the exps run as one vector loop
        for i in range(M):
            warn |= shift_row(x + i * C, d + i * C, C)
        exp_run(d, M * C)
        for i in range(M):
            dy_row(d + i * C, C, lab[i] if lab != NULL else -1,
                   t + i * C if t != NULL else NULL, <floating> M)
    else:
        for i in prange(M, schedule="static", num_threads=team):
            warn |= shift_row(x + i * C, d + i * C, C)
            exp_run(d + i * C, C)
            dy_row(d + i * C, C, lab[i] if lab != NULL else -1,
                   t + i * C if t != NULL else NULL, <floating> M)
    fastnn_team_end()
    net.warnings |= warn
    return 0


cdef int softmax_ce_backward(Net *net, Py_ssize_t l) noexcept nogil:
    if net.is_double:
        return softmax_ce_backward_t(net, l, <double *> NULL)
    return softmax_ce_backward_t(net, l, <float *> NULL)


cdef int softmax_ce_forward(Net *net, Py_ssize_t l) noexcept nogil:
    """MODE_FD: p = softmax(in) (layers[l].out) and r_b = -log(p[t_b] + 1e-7) per row.
    MODE_GRADIENT: nothing (the backward works from the logits)."""
    cdef Layer *ly = &net.layers[l]
    cdef Py_ssize_t M = net.M, C = ly.n_in, i, j
    cdef const double *x = <const double *> ly.inp
    cdef double *p = <double *> ly.out
    cdef double tot
    cdef int warn = 0
    if net.mode != MODE_FD:
        return 0
    for i in range(M):
        warn |= shift_row(x + i * C, p + i * C, C)
    fastnn_exp_inplace_d(p, M * C)
    for i in range(M):
        tot = 0.0
        for j in range(C):
            tot += p[i * C + j]
        for j in range(C):
            p[i * C + j] = p[i * C + j] / tot
        ly.loss.row_loss[i] = -log(p[i * C + ly.loss.labels[i]] + EPS_LOG)
    net.warnings |= warn
    return 0


# --- finite differences (double) ---------------------------------------------------------
#
# Per row, the loss change is computed directly, never as a difference of two totals:
#   softmax:  e'_k = e_k (1 + q_k), q_k = expm1(dz_k),  Q = sum_k p_k q_k
#             p'_t - p_t = p_t (q_t - Q) / (1 + Q)
#   loss:     r' - r = -log1p((p'_t - p_t) / (p_t + 1e-7))

cdef inline double out_delta_col(const double *p, Py_ssize_t t, Py_ssize_t j,
                                 double d) noexcept nogil:
    """r' - r when only logit j of this row moves by d (p: the row's probabilities)."""
    cdef double q, Q, qt, u
    if d == 0.0:
        return 0.0
    q = expm1_small(d)
    Q = p[j] * q                              # Q = sum_k p_k q_k
    qt = q if t == j else 0.0
    u = p[t] * (qt - Q) / ((1.0 + Q) * (p[t] + EPS_LOG))   # (p'_t - p_t) / (p_t + 1e-7)
    return -log1p_small(u)                    # r' - r = -log1p(u)


cdef inline double out_delta_vec(const double *p, Py_ssize_t t, const double *dz,
                                 Py_ssize_t lo, Py_ssize_t hi) noexcept nogil:
    """r' - r when logits lo..hi-1 of the row move by dz[lo:hi]."""
    cdef double Q = 0.0, qt = 0.0, q, u
    cdef Py_ssize_t k
    for k in range(lo, hi):
        q = expm1_small(dz[k])
        Q += p[k] * q                         # Q = sum_k p_k q_k
        if k == t:
            qt = q
    u = p[t] * (qt - Q) / ((1.0 + Q) * (p[t] + EPS_LOG))
    return -log1p_small(u)


cdef inline double row_loss_moved(const double *z, Py_ssize_t C, Py_ssize_t t,
                                   const double *dz, Py_ssize_t lo, Py_ssize_t hi) noexcept nogil:
    """-log(softmax(z')[t] + 1e-7) from absolute logits, z'_k = z_k + dz[k - lo] for
    lo <= k < hi, else z_k: the reference's row loss at the perturbed point."""
    cdef Py_ssize_t k
    cdef double m, v, tot = 0.0, zt = 0.0
    m = z[0] + (dz[0 - lo] if lo <= 0 < hi else 0.0)
    for k in range(1, C):
        v = z[k] + (dz[k - lo] if lo <= k < hi else 0.0)
        if v > m or v != v:
            m = v
    for k in range(C):
        v = z[k] + (dz[k - lo] if lo <= k < hi else 0.0)
        tot += exp(v - m)                     # sum_k exp(z'_k - max z')
        if k == t:
            zt = v
    return -log(exp(zt - m) / tot + EPS_LOG)


cdef int softmax_ce_fd_exact(const Net *net, Py_ssize_t l, Py_ssize_t b, const RowDelta *d_in,
                             RowDelta *d_out, double *loss_pair) noexcept nogil:
    cdef const Layer *ly = &net.layers[l]
    cdef Py_ssize_t C = ly.n_in
    cdef const double *p = (<const double *> ly.out) + b * C
    cdef const double *z = (<const double *> ly.inp) + b * C
    cdef Py_ssize_t t = ly.loss.labels[b]
    d_out.form = DELTA_ZERO
    if d_in.form == DELTA_ONE:
        loss_pair[0] = (out_delta_col(p, t, d_in.unit, d_in.p[0])
                        - out_delta_col(p, t, d_in.unit, d_in.m[0]))
        if not isfinite(loss_pair[0]):
            # a logit moved so far that expm1 overflowed (inf - inf): the row's loss at
            # both points from the absolute logits, as the reference computes it (a row
            # loss is at most -log(1e-7) for finite logits, so a finite answer exists)
            loss_pair[0] = (row_loss_moved(z, C, t, d_in.p, d_in.unit, d_in.unit + 1)
                            - row_loss_moved(z, C, t, d_in.m, d_in.unit, d_in.unit + 1))
    elif d_in.form == DELTA_DENSE:
        loss_pair[0] = (out_delta_vec(p, t, d_in.p, d_in.lo, d_in.hi)
                        - out_delta_vec(p, t, d_in.m, d_in.lo, d_in.hi))
        if not isfinite(loss_pair[0]):
            loss_pair[0] = (row_loss_moved(z, C, t, d_in.p + d_in.lo, d_in.lo, d_in.hi)
                            - row_loss_moved(z, C, t, d_in.m + d_in.lo, d_in.lo, d_in.hi))
    else:
        loss_pair[0] = 0.0
    return 0


cdef double softmax_ce_fd_series(const Net *net, Py_ssize_t l, Py_ssize_t b,
                                 const RowSeries *s_in, RowSeries *s_out, double rad,
                                 double *wk) noexcept nogil:
    """G = series of r' - r, r = -log(p_t + 1e-7), when the logits move (into s_out.s)."""
    cdef const Layer *ly = &net.layers[l]
    cdef Py_ssize_t C = ly.n_in, k, k0 = 0, k1 = C
    cdef const double *p = (<const double *> ly.out) + b * C
    cdef Py_ssize_t t = ly.loss.labels[b]
    cdef double *e = wk
    cdef double *D = wk + NS
    cdef double *Num = wk + 2 * NS
    cdef double *r = wk + 3 * NS
    cdef double *u = wk + 4 * NS
    cdef double *cb = wk + 5 * NS
    cdef double *G = s_out.s
    cdef const double *c
    cdef int n, m
    cdef double acc, f
    s_out.form = SER_ONE          # G is a plain series in d
    for n in range(NS):
        D[n] = 0.0
        Num[n] = 0.0
        G[n] = 0.0
    if s_in.form == SER_ZERO:
        return rad
    if s_in.form == SER_ONE:
        k0 = s_in.unit
        k1 = k0 + 1
    for k in range(k0, k1):
        if s_in.form == SER_ONE:
            c = s_in.s
        elif s_in.form == SER_RANK1:
            if s_in.coef[k] == 0.0:
                continue
            for n in range(NS):
                cb[n] = s_in.coef[k] * s_in.s[n]
            c = cb
        else:
            c = s_in.V + k * NS
        if ser_is_zero(c):
            continue
        # e = exp(c): e_0 = 1, n e_n = sum_{m=1}^{n} m c_m e_{n-m}
        e[0] = 1.0
        for n in range(1, NS):
            acc = 0.0
            for m in range(1, n + 1):
                acc = acc + m * c[m] * e[n - m]
            e[n] = acc / n
        for n in range(1, NS):
            D[n] = D[n] + p[k] * e[n]        # sum_k e'_k / S = 1 + sum_k p_k (e^c_k - 1)
            if k == t:
                Num[n] = e[n]
    # R = (1 + Num) / (1 + D) = p'_t / p_t: r_0 = 1, r_n = Num_n - sum_{m=1}^{n} D_m r_{n-m}
    r[0] = 1.0
    for n in range(1, NS):
        acc = Num[n]
        for m in range(1, n + 1):
            acc = acc - D[m] * r[n - m]
        r[n] = acc
    # U = (p'_t - p_t) / (p_t + 1e-7) = p_t (R - 1) / (p_t + 1e-7)
    f = p[t] / (p[t] + EPS_LOG)
    for n in range(1, NS):
        u[n] = f * r[n]
    # r' - r = -log(1 + U):  n l_n = n u_n - sum_{m=1}^{n-1} m l_m u_{n-m}
    G[0] = 0.0
    for n in range(1, NS):
        acc = n * u[n]
        for m in range(1, n):
            acc = acc - m * (-G[m]) * u[n - m]
        G[n] = -acc / n
    # truncation: the last two terms must be negligible at |d| = rad
    if G[NT] != 0.0:
        rad = min(rad, pow(1e-19 / fabs(G[NT]), 1.0 / NT))
    if G[NT - 1] != 0.0:
        rad = min(rad, pow(1e-16 / fabs(G[NT - 1]), 1.0 / (NT - 1)))
    return rad


cdef double softmax_ce_fd_row_forward(const Net *net, Py_ssize_t l, Py_ssize_t b,
                                      const double *inp, double *out) noexcept nogil:
    """The row's loss -log(softmax(inp)[t] + 1e-7), from absolute logits."""
    cdef const Layer *ly = &net.layers[l]
    cdef Py_ssize_t C = ly.n_in, j
    cdef double m = row_max(inp, C), tot = 0.0
    for j in range(C):
        tot += exp(inp[j] - m)
    return -log(exp(inp[ly.loss.labels[b]] - m) / tot + EPS_LOG)
