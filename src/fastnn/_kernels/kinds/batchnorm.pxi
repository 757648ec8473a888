# KIND_BATCHNORM: the book's BatchNormalization in training mode, over the features of
# each sample (a batch's statistics couple its rows: not row-local).
#   mu = mean(x, 0); xc = x - mu; var = mean(xc**2, 0); std = sqrt(var + 10e-7)
#   xn = xc / std; out = gamma * xn + beta
# Steps in the dtype, sums in double, rows in order. Threads take blocks of columns
# (every feature is independent), so each sum has one owner: the same bits on any count.

DEF BN_COLS_MAX = 32
cdef Py_ssize_t BN_COLS = 32          # columns per task (<= BN_COLS_MAX)
cdef double NS_BN = 3.0               # ns per element, forward or backward


cdef void bn_forward_cols(Net *net, Layer *ly, Py_ssize_t c0, Py_ssize_t c1,
                          floating *tag) noexcept nogil:
    # columns [c0, c1), at most BN_COLS; the sums in stack arrays (no aliasing: the
    # inner loops over the block's columns vectorise)
    cdef Py_ssize_t M = net.M, n = ly.n_out, i, j, w = c1 - c0
    cdef const floating *x
    cdef floating *xcr
    cdef floating *xnr
    cdef floating *zr
    cdef floating *mu = (<floating *> ly.bn.mean) + c0
    cdef floating *var = (<floating *> ly.bn.var) + c0
    cdef floating *std = (<floating *> ly.bn.std) + c0
    cdef const floating *gamma = (<const floating *> ly.bn.gamma) + c0
    cdef const floating *beta = (<const floating *> ly.bn.beta) + c0
    cdef double acc[BN_COLS_MAX]
    cdef floating mu_l[BN_COLS_MAX]
    cdef floating std_l[BN_COLS_MAX]
    cdef floating v
    for j in range(w):
        acc[j] = 0.0
    for i in range(M):
        x = (<const floating *> ly.inp) + i * n + c0
        for j in range(w):
            acc[j] += x[j]
    for j in range(w):
        mu_l[j] = <floating> (acc[j] / M)                 # mu = x.mean(axis=0)
        mu[j] = mu_l[j]
        acc[j] = 0.0
    for i in range(M):
        x = (<const floating *> ly.inp) + i * n + c0
        xcr = (<floating *> ly.bn.xc) + i * n + c0
        for j in range(w):
            v = x[j] - mu_l[j]                           # xc = x - mu
            xcr[j] = v
            acc[j] += v * v
    for j in range(w):
        var[j] = <floating> (acc[j] / M)                 # var = mean(xc**2, axis=0)
        std_l[j] = <floating> sqrt(<double> (var[j] + <floating> 10e-7))  # sqrt(var + 10e-7)
        std[j] = std_l[j]
    for i in range(M):
        xcr = (<floating *> ly.bn.xc) + i * n + c0
        xnr = (<floating *> ly.bn.xn) + i * n + c0
        zr = (<floating *> ly.out) + i * n + c0
        for j in range(w):
            v = xcr[j] / std_l[j]                        # xn = xc / std
            xnr[j] = v
            zr[j] = gamma[j] * v + beta[j]               # gamma * xn + beta


cdef int batchnorm_forward_t(Net *net, Py_ssize_t l, floating *tag) noexcept nogil:
    cdef Layer *ly = &net.layers[l]
    cdef Py_ssize_t n = ly.n_out, c, n_tasks = (n + BN_COLS - 1) // BN_COLS
    cdef int team = fastnn_team(net.n_threads, NS_BN * net.M * n)
    team = min(team, n_tasks)
    if team <= 1:
        for c in range(n_tasks):
            bn_forward_cols(net, ly, c * BN_COLS, min(c * BN_COLS + BN_COLS, n), tag)
    else:
        for c in prange(n_tasks, schedule="static", num_threads=team):
            bn_forward_cols(net, ly, c * BN_COLS, min(c * BN_COLS + BN_COLS, n), tag)
    fastnn_team_end()
    return 0


cdef int batchnorm_forward(Net *net, Py_ssize_t l) noexcept nogil:
    if net.is_double:
        return batchnorm_forward_t(net, l, <double *> NULL)
    return batchnorm_forward_t(net, l, <float *> NULL)


cdef void bn_backward_cols(Net *net, Layer *ly, Py_ssize_t c0, Py_ssize_t c1,
                           floating *tag) noexcept nogil:
    """BatchNormalization._backward on columns [c0, c1): dout -> dx (may be in place)."""
    cdef Py_ssize_t M = net.M, n = ly.n_out, i, j, w = c1 - c0
    cdef const floating *dr
    cdef floating *dxr
    cdef const floating *xcr
    cdef const floating *xnr
    cdef const floating *std = (<const floating *> ly.bn.std) + c0
    cdef const floating *gamma = (<const floating *> ly.bn.gamma) + c0
    cdef floating *dgamma = (<floating *> ly.bn.dgamma) + c0
    cdef floating *dbeta = (<floating *> ly.bn.dbeta) + c0
    cdef double sb[BN_COLS_MAX]
    cdef double sg[BN_COLS_MAX]
    cdef double ss[BN_COLS_MAX]
    cdef floating dvar[BN_COLS_MAX]
    cdef floating dmu[BN_COLS_MAX]
    cdef floating dxn, two_m = <floating> (2.0 / M)
    for j in range(w):
        sb[j] = 0.0
        sg[j] = 0.0
        ss[j] = 0.0
    for i in range(M):
        dr = (<const floating *> ly.dout) + i * n + c0
        xcr = (<const floating *> ly.bn.xc) + i * n + c0
        xnr = (<const floating *> ly.bn.xn) + i * n + c0
        for j in range(w):
            sb[j] += dr[j]                                           # dbeta = sum(dout)
            sg[j] += xnr[j] * dr[j]                                  # dgamma = sum(xn * dout)
            dxn = gamma[j] * dr[j]                                   # dxn = gamma * dout
            ss[j] += (dxn * xcr[j]) / (std[j] * std[j])
    for j in range(w):
        dbeta[j] = <floating> sb[j]
        dgamma[j] = <floating> sg[j]
        # dstd = -sum(dxn * xc / (std * std)); dvar = 0.5 * dstd / std
        dvar[j] = <floating> 0.5 * (-<floating> ss[j]) / std[j]
        sb[j] = 0.0
    for i in range(M):
        dr = (<const floating *> ly.dout) + i * n + c0
        dxr = (<floating *> ly.dinp) + i * n + c0
        xcr = (<const floating *> ly.bn.xc) + i * n + c0
        for j in range(w):
            dxn = gamma[j] * dr[j]
            # dxc = dxn / std + (2.0 / batch) * xc * dvar
            dxn = dxn / std[j] + two_m * xcr[j] * dvar[j]
            dxr[j] = dxn
            sb[j] += dxn                                             # dmu = sum(dxc)
    for j in range(w):
        dmu[j] = (<floating> sb[j]) / M
    for i in range(M):
        dxr = (<floating *> ly.dinp) + i * n + c0
        for j in range(w):
            dxr[j] = dxr[j] - dmu[j]                                 # dx = dxc - dmu / batch


cdef int batchnorm_backward_t(Net *net, Py_ssize_t l, floating *tag) noexcept nogil:
    cdef Layer *ly = &net.layers[l]
    cdef Py_ssize_t n = ly.n_out, c, n_tasks = (n + BN_COLS - 1) // BN_COLS
    cdef int team = fastnn_team(net.n_threads, NS_BN * net.M * n)
    team = min(team, n_tasks)
    if team <= 1:
        for c in range(n_tasks):
            bn_backward_cols(net, ly, c * BN_COLS, min(c * BN_COLS + BN_COLS, n), tag)
    else:
        for c in prange(n_tasks, schedule="static", num_threads=team):
            bn_backward_cols(net, ly, c * BN_COLS, min(c * BN_COLS + BN_COLS, n), tag)
    fastnn_team_end()
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


cdef int batchnorm_fd_unit_params(const Net *net, Py_ssize_t l, Py_ssize_t j,
                                  ParamBlock *blocks) noexcept nogil:
    """out[b, j] = gamma[j] xn[b, j] + beta[j]: gamma moves every row by dg * xn[b, j],
    beta by db."""
    cdef const Layer *ly = &net.layers[l]
    cdef int q
    for q in range(2):
        blocks[q].n = 1
        blocks[q].index = NULL
        blocks[q].w_stride = 1
        blocks[q].g_stride = 1
        blocks[q].decayed = False
        blocks[q].off = NULL
        blocks[q].rows = NULL
    blocks[0].w = (<const double *> ly.bn.gamma) + j
    blocks[0].f32 = ly.bn.gamma_f32
    blocks[0].grad = ly.bn.ggamma + j
    blocks[0].vals = ly.bn.xnT + j * net.M
    blocks[1].w = (<const double *> ly.bn.beta) + j
    blocks[1].f32 = ly.bn.beta_f32
    blocks[1].grad = ly.bn.gbeta + j
    blocks[1].vals = NULL
    return 2


cdef double batchnorm_fd_recompute(const Net *net, Py_ssize_t l, Py_ssize_t j, int block,
                                   Py_ssize_t p, Py_ssize_t b, double w_new) noexcept nogil:
    cdef const Layer *ly = &net.layers[l]
    cdef double xn = (<const double *> ly.bn.xn)[b * ly.n_out + j]
    if block == 0:
        return w_new * xn + (<const double *> ly.bn.beta)[j]
    return (<const double *> ly.bn.gamma)[j] * xn + w_new
