# KIND_BATCHNORM: the book's BatchNormalization in training mode, over the features of
# each sample (a batch's statistics couple its rows: not row-local).
#   mu = mean(x, 0); xc = x - mu; var = mean(xc**2, 0); std = sqrt(var + 10e-7)
#   xn = xc / std; out = gamma * xn + beta
# Steps in the dtype, sums in double, rows in order. Threads take blocks of columns
# (every feature is independent), so each sum has one owner: the same bits on any count.

cdef Py_ssize_t BN_COLS = 16          # columns per task
cdef double NS_BN = 3.0               # ns per element, forward or backward


cdef void bn_forward_cols(Net *net, Layer *ly, Py_ssize_t c0, Py_ssize_t c1,
                          floating *tag) noexcept nogil:
    cdef Py_ssize_t M = net.M, n = ly.n_out, i, j
    cdef const floating *x = <const floating *> ly.inp
    cdef floating *z = <floating *> ly.out
    cdef floating *mu = <floating *> ly.bn.mean
    cdef floating *var = <floating *> ly.bn.var
    cdef floating *std = <floating *> ly.bn.std
    cdef floating *xc = <floating *> ly.bn.xc
    cdef floating *xn = <floating *> ly.bn.xn
    cdef const floating *gamma = <const floating *> ly.bn.gamma
    cdef const floating *beta = <const floating *> ly.bn.beta
    cdef double *acc = net.acc
    for j in range(c0, c1):
        acc[j] = 0.0
    for i in range(M):
        for j in range(c0, c1):
            acc[j] += x[i * n + j]
    for j in range(c0, c1):
        mu[j] = <floating> (acc[j] / M)                  # mu = x.mean(axis=0)
        acc[j] = 0.0
    for i in range(M):
        for j in range(c0, c1):
            xc[i * n + j] = x[i * n + j] - mu[j]         # xc = x - mu
            acc[j] += xc[i * n + j] * xc[i * n + j]
    for j in range(c0, c1):
        var[j] = <floating> (acc[j] / M)                 # var = mean(xc**2, axis=0)
        std[j] = <floating> sqrt(<double> (var[j] + <floating> 10e-7))  # sqrt(var + 10e-7)
    for i in range(M):
        for j in range(c0, c1):
            xn[i * n + j] = xc[i * n + j] / std[j]       # xn = xc / std
            z[i * n + j] = gamma[j] * xn[i * n + j] + beta[j]   # gamma * xn + beta


cdef int batchnorm_forward_t(Net *net, Py_ssize_t l, floating *tag) noexcept nogil:
    cdef Layer *ly = &net.layers[l]
    cdef Py_ssize_t n = ly.n_out, c, n_tasks = (n + BN_COLS - 1) // BN_COLS
    cdef int team = fastnn_team(net.n_threads, NS_BN * net.M * n)
    team = min(team, n_tasks)
    if team <= 1:
        bn_forward_cols(net, ly, 0, n, tag)
    else:
        for c in prange(n_tasks, schedule="static", num_threads=team):
            bn_forward_cols(net, ly, c * BN_COLS, min(c * BN_COLS + BN_COLS, n), tag)
    return 0


cdef int batchnorm_forward(Net *net, Py_ssize_t l) noexcept nogil:
    if net.is_double:
        return batchnorm_forward_t(net, l, <double *> NULL)
    return batchnorm_forward_t(net, l, <float *> NULL)


cdef void bn_backward_cols(Net *net, Layer *ly, Py_ssize_t c0, Py_ssize_t c1,
                           floating *tag) noexcept nogil:
    """BatchNormalization._backward on columns [c0, c1): dout -> dx (may be in place)."""
    cdef Py_ssize_t M = net.M, n = ly.n_out, i, j
    cdef const floating *d = <const floating *> ly.dout
    cdef floating *dx = <floating *> ly.dinp
    cdef const floating *std = <const floating *> ly.bn.std
    cdef const floating *xc = <const floating *> ly.bn.xc
    cdef const floating *xn = <const floating *> ly.bn.xn
    cdef const floating *gamma = <const floating *> ly.bn.gamma
    cdef floating *dgamma = <floating *> ly.bn.dgamma
    cdef floating *dbeta = <floating *> ly.bn.dbeta
    cdef double *acc = net.acc
    cdef floating dxn, dvar_j, two_m = <floating> (2.0 / M)
    for j in range(c0, c1):
        acc[j] = 0.0
        acc[n + j] = 0.0
        acc[2 * n + j] = 0.0
    for i in range(M):
        for j in range(c0, c1):
            acc[j] += d[i * n + j]                                   # dbeta = sum(dout)
            acc[n + j] += xn[i * n + j] * d[i * n + j]               # dgamma = sum(xn * dout)
            dxn = gamma[j] * d[i * n + j]                            # dxn = gamma * dout
            acc[2 * n + j] += (dxn * xc[i * n + j]) / (std[j] * std[j])
    for j in range(c0, c1):
        dbeta[j] = <floating> acc[j]
        dgamma[j] = <floating> acc[n + j]
        # dstd = -sum(dxn * xc / (std * std)); dvar = 0.5 * dstd / std (kept in acc[2n + j])
        acc[2 * n + j] = <floating> 0.5 * (-<floating> acc[2 * n + j]) / std[j]
        acc[j] = 0.0
    for i in range(M):
        for j in range(c0, c1):
            dxn = gamma[j] * d[i * n + j]
            dvar_j = <floating> acc[2 * n + j]
            # dxc = dxn / std + (2.0 / batch) * xc * dvar
            dx[i * n + j] = dxn / std[j] + two_m * xc[i * n + j] * dvar_j
            acc[j] += dx[i * n + j]                                  # dmu = sum(dxc)
    for i in range(M):
        for j in range(c0, c1):
            dx[i * n + j] = dx[i * n + j] - (<floating> acc[j]) / M  # dx = dxc - dmu / batch


cdef int batchnorm_backward_t(Net *net, Py_ssize_t l, floating *tag) noexcept nogil:
    cdef Layer *ly = &net.layers[l]
    cdef Py_ssize_t n = ly.n_out, c, n_tasks = (n + BN_COLS - 1) // BN_COLS
    cdef int team = fastnn_team(net.n_threads, NS_BN * net.M * n)
    team = min(team, n_tasks)
    if team <= 1:
        bn_backward_cols(net, ly, 0, n, tag)
    else:
        for c in prange(n_tasks, schedule="static", num_threads=team):
            bn_backward_cols(net, ly, c * BN_COLS, min(c * BN_COLS + BN_COLS, n), tag)
    return 0


cdef int batchnorm_backward(Net *net, Py_ssize_t l) noexcept nogil:
    if net.is_double:
        return batchnorm_backward_t(net, l, <double *> NULL)
    return batchnorm_backward_t(net, l, <float *> NULL)


# --- finite differences (double) ---------------------------------------------------------

cdef int batchnorm_fd_prepare(Net *net, Py_ssize_t l) noexcept nogil:
    cdef Layer *ly = &net.layers[l]
    cdef Py_ssize_t M = net.M, n = ly.n_out, i, j
    cdef const double *xn = <const double *> ly.bn.xn
    for i in range(M):
        for j in range(n):
            ly.bn.xnT[j * M + i] = xn[i * n + j]
    return 0


cdef int batchnorm_fd_batch_forward(const Net *net, Py_ssize_t l, const double *inp,
                                    double *out, double *wk) noexcept nogil:
    """The training-mode forward of the whole batch `inp` (M, n) -> `out`, in double
    (wk: 2 n doubles)."""
    cdef const Layer *ly = &net.layers[l]
    cdef Py_ssize_t M = net.M, n = ly.n_out, i, j
    cdef const double *gamma = <const double *> ly.bn.gamma
    cdef const double *beta = <const double *> ly.bn.beta
    cdef double *mu = wk
    cdef double *sd = wk + n
    cdef double v
    for j in range(n):
        mu[j] = 0.0
        sd[j] = 0.0
    for i in range(M):
        for j in range(n):
            mu[j] += inp[i * n + j]
    for j in range(n):
        mu[j] = mu[j] / M
    for i in range(M):
        for j in range(n):
            v = inp[i * n + j] - mu[j]
            sd[j] += v * v
    for j in range(n):
        sd[j] = sqrt(sd[j] / M + 10e-7)
    for i in range(M):
        for j in range(n):
            out[i * n + j] = gamma[j] * ((inp[i * n + j] - mu[j]) / sd[j]) + beta[j]
    return 0


cdef Py_ssize_t batchnorm_fd_units(const Net *net, Py_ssize_t l, Py_ssize_t j) noexcept nogil:
    return net.layers[l].n_out


cdef Py_ssize_t batchnorm_fd_params(const Net *net, Py_ssize_t l, Py_ssize_t j) noexcept nogil:
    return 2                                  # gamma[j], beta[j]


cdef Py_ssize_t batchnorm_fd_unit_params(const Net *net, Py_ssize_t l, Py_ssize_t j,
                                         ParamChange *pcs) noexcept nogil:
    """out[b, j] = gamma[j] xn[b, j] + beta[j]: gamma moves every row by dg * xn[b, j],
    beta by db."""
    cdef const Layer *ly = &net.layers[l]
    pcs[0].index = 0
    pcs[0].w = (<const double *> ly.bn.gamma)[j]
    pcs[0].f32 = ly.bn.gamma_f32
    pcs[0].decayed = False
    pcs[0].grad = ly.bn.ggamma + j
    pcs[0].count = net.M
    pcs[0].rows = NULL
    pcs[0].vals = ly.bn.xnT + j * net.M
    pcs[1].index = 1
    pcs[1].w = (<const double *> ly.bn.beta)[j]
    pcs[1].f32 = ly.bn.beta_f32
    pcs[1].decayed = False
    pcs[1].grad = ly.bn.gbeta + j
    pcs[1].count = net.M
    pcs[1].rows = NULL
    pcs[1].vals = NULL
    return 2


cdef double batchnorm_fd_recompute(const Net *net, Py_ssize_t l, Py_ssize_t j, Py_ssize_t p,
                                   Py_ssize_t b, double w_new) noexcept nogil:
    cdef const Layer *ly = &net.layers[l]
    cdef double xn = (<const double *> ly.bn.xn)[b * ly.n_out + j]
    if p == 0:
        return w_new * xn + (<const double *> ly.bn.beta)[j]
    return (<const double *> ly.bn.gamma)[j] * xn + w_new
