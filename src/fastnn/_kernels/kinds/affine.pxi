# KIND_AFFINE: out = flatten(in) @ W + b (N-d per-sample input flattens in C order, the
# book's x.reshape(x.shape[0], -1)); backward dW = in.T @ dout (+ lam W with weight
# decay), db = sum(dout, 0), din = dout @ W.T. GEMMs through gemm_strided (_linear.pxd:
# transposes are strides, never copies).
#
# The first Affine (its input is x) may skip x's exact zeros, MNIST-like inputs being ~80%
# zeros: a = x @ W + b row by row over each row's non-zeros (rows in parallel; the next
# element-wise layer applied to each row as it is made), and dW = x.T @ d by stripes of
# CW columns of x turned into (row, value) lists, each stripe reduced by its own task.
# A skipped 0 * w is 0 only when w is finite, so the sparse path is taken only when W
# (forward) and d (backward) are all finite; otherwise the dense GEMM runs and NaN/inf
# propagate exactly as in the reference. Every output element is computed by one
# thread in a fixed order: the same bits on any thread count.

# The sparse first layer is used when at most this fraction of x is non-zero.
cdef double SPARSE_MAX_DENSITY = 0.5
cdef Py_ssize_t FINITE_CHUNK = 8192    # elements of W per finiteness-check task
DEF CW = 64                            # columns of x per backward stripe
cdef double NS_SPARSE_MAC = 0.12       # ns per multiply-add of the sparse rows
cdef double NS_COMPRESS = 0.3          # ns per element of x compressed
cdef double NS_GEMM_MAC_D = 0.041      # ns per multiply-add of gemm_strided, float64
cdef double NS_GEMM_MAC_S = 0.022      # ... float32


cdef inline int gemm_team(const Net *net, Py_ssize_t M, Py_ssize_t N, Py_ssize_t K,
                          floating *tag) noexcept nogil:
    # threads for one GEMM of the net: a region only when the product pays for it
    cdef double ns = NS_GEMM_MAC_D if floating is double else NS_GEMM_MAC_S
    return fastnn_team(net.n_threads, ns * M * N * K)


cdef inline void sprow(Py_ssize_t nnz, const int *idx, const floating *val,
                       const floating *W, Py_ssize_t ldw, Py_ssize_t N,
                       const floating *bias, floating *out) noexcept nogil:
    if floating is double:
        fastnn_bp_sprow_d(nnz, idx, val, W, ldw, N, bias, out)
    else:
        fastnn_bp_sprow_s(nnz, idx, val, W, ldw, N, bias, out)


cdef inline bint all_finite(const floating *x, Py_ssize_t n) noexcept nogil:
    if floating is double:
        return fastnn_bp_finite_d(x, n)
    else:
        return fastnn_bp_finite_s(x, n)


cdef inline Py_ssize_t compress_row(const floating *x, Py_ssize_t n, int *idx,
                                    floating *val) noexcept nogil:
    # the non-zeros of one row (NaN counts as non-zero) as (index, value) pairs
    if floating is double:
        return fastnn_bp_compress_d(x, n, idx, val)
    else:
        return fastnn_bp_compress_s(x, n, idx, val)


cdef void csc_chunk(Py_ssize_t c, const floating *x, Py_ssize_t M, Py_ssize_t K, int *cidx,
                    floating *cval, Py_ssize_t *cbeg, Py_ssize_t *cend) noexcept nogil:
    """Columns [c*CW, c*CW + CW) of x as lists of (row, value), rows ascending, in this
    chunk's own slice of cidx/cval (offset c * CW * M); column k is [cbeg[k], cend[k])."""
    cdef Py_ssize_t c0 = c * CW, w = min(CW, K - c0), j, off = c * CW * M
    cdef Py_ssize_t cnt[CW]
    if floating is double:
        fastnn_bp_csc_d(x, M, K, c0, <int> w, cidx + off, cval + off, cnt)
    else:
        fastnn_bp_csc_s(x, M, K, c0, <int> w, cidx + off, cval + off, cnt)
    for j in range(w):
        cbeg[c0 + j] = off + j * M
        cend[c0 + j] = off + j * M + cnt[j]


cdef void first_dW_chunk(Py_ssize_t c, const floating *x, Py_ssize_t M, Py_ssize_t K,
                         Py_ssize_t N, AffineRec *a, const floating *d,
                         floating *dW) noexcept nogil:
    # dW[k, :] = sum over non-zero x[i, k] (i ascending) of x[i, k] * d[i, :]
    cdef Py_ssize_t k
    csc_chunk(c, x, M, K, a.cidx, <floating *> a.cval, a.cbeg, a.cend)
    for k in range(c * CW, min(c * CW + CW, K)):
        sprow(a.cend[k] - a.cbeg[k], a.cidx + a.cbeg[k], (<floating *> a.cval) + a.cbeg[k],
              d, N, N, <const floating *> NULL, dW + k * N)


cdef void first_row(Py_ssize_t i, const floating *x, Py_ssize_t K, Py_ssize_t N,
                    AffineRec *a, floating *z) noexcept nogil:
    # z[i] = x[i] @ W + b over the non-zeros of x[i] only
    cdef Py_ssize_t nnz = compress_row(x + i * K, K, a.ridx + i * K, (<floating *> a.rval) + i * K)
    a.rnnz[i] = nnz
    sprow(nnz, a.ridx + i * K, (<floating *> a.rval) + i * K, <const floating *> a.W, N, N,
          <const floating *> a.b, z + i * N)


cdef bint x_is_sparse(const floating *x, Py_ssize_t M, Py_ssize_t K) noexcept nogil:
    # judged on the first rows: most of MNIST is zeros, dense data has almost none
    cdef Py_ssize_t i, n_rows = min(M, 4), nnz = 0
    for i in range(n_rows * K):
        nnz += x[i] != 0
    return nnz <= SPARSE_MAX_DENSITY * n_rows * K


cdef int sparse_first_forward(Net *net, Py_ssize_t l, floating *tag) noexcept nogil:
    """Rows of the batch in parallel, each on its own: its non-zeros, z = x @ W + b from
    them, and (fuse_next) the next layer's activation. W is only read.

    Returns 1, or 0 when W is not all finite (checked alongside, in chunks, by the same
    threads): the caller must then run the dense GEMM (a skipped 0 * inf is NaN)."""
    cdef Layer *ly = &net.layers[l]
    cdef AffineRec *a = &ly.affine
    cdef Py_ssize_t M = net.M, K = ly.n_in, N = ly.n_out, i, c
    cdef Py_ssize_t n_w = K * N, n_chunks = (n_w + FINITE_CHUNK - 1) // FINITE_CHUNK
    cdef const floating *x = <const floating *> ly.inp
    cdef floating *z = <floating *> ly.out
    cdef int next_kind = net.layers[l + 1].kind if a.fuse_next else -1
    cdef int warn = 0, team
    cdef bint ok = True
    cdef unsigned char *chunk_ok
    # the sparse products (about 20% of the dense ones) plus the compression of x
    team = fastnn_team(net.n_threads, M * (NS_COMPRESS * K + NS_SPARSE_MAC * 0.2 * K * N))
    chunk_ok = <unsigned char *> malloc(n_chunks + 1) if team > 1 else NULL
    if chunk_ok == NULL:
        fastnn_team_end()   # the serial path (team 1, or no memory for the chunk flags)
        if not all_finite(<const floating *> a.W, n_w):
            return 0
        for i in range(M):
            first_row(i, x, K, N, a, z)
            if next_kind >= 0:
                warn |= elementwise_row(next_kind, z + i * N, N)
    else:
        for i in prange(M + n_chunks, schedule="static", num_threads=team):
            if i < M:
                first_row(i, x, K, N, a, z)
                if next_kind >= 0:
                    warn |= elementwise_row(next_kind, z + i * N, N)
            else:
                c = i - M
                chunk_ok[c] = all_finite(<const floating *> a.W + c * FINITE_CHUNK,
                                         min(FINITE_CHUNK, n_w - c * FINITE_CHUNK))
        fastnn_team_end()
        for c in range(n_chunks):
            ok = ok and chunk_ok[c]
        free(chunk_ok)
        if not ok:
            return 0
    net.warnings |= warn
    if next_kind >= 0:
        net.layers[l + 1].done = True
    return 1


cdef int affine_forward_t(Net *net, Py_ssize_t l, floating *tag) noexcept nogil:
    cdef Layer *ly = &net.layers[l]
    cdef Py_ssize_t M = net.M, K = ly.n_in, N = ly.n_out
    cdef const floating *x = <const floating *> ly.inp
    ly.affine.sparse_used = False
    if (ly.affine.first and net.allow_sparse and ly.affine.ridx != NULL
            and x_is_sparse(x, M, K)):
        if sparse_first_forward(net, l, tag):
            ly.affine.sparse_used = True
            return 0
    gemm_strided(M, N, K, x, K, 1, <const floating *> ly.affine.W, N, 1,
                 <const floating *> ly.affine.b, <floating *> ly.out, N,
                 gemm_team(net, M, N, K, tag))
    return 0


cdef int affine_forward(Net *net, Py_ssize_t l) noexcept nogil:
    if net.is_double:
        return affine_forward_t(net, l, <double *> NULL)
    return affine_forward_t(net, l, <float *> NULL)


cdef int affine_backward_t(Net *net, Py_ssize_t l, floating *tag) noexcept nogil:
    cdef Layer *ly = &net.layers[l]
    cdef AffineRec *a = &ly.affine
    cdef Py_ssize_t M = net.M, K = ly.n_in, N = ly.n_out, i, c, nnz = 0
    cdef Py_ssize_t n_chunks = (K + CW - 1) // CW
    cdef const floating *x = <const floating *> ly.inp
    cdef const floating *d = <const floating *> ly.dout
    cdef floating *dW = <floating *> a.dW
    cdef const floating *W = <const floating *> a.W
    cdef floating lam = <floating> net.lam
    cdef int team
    cdef bint sparse = a.sparse_used
    if sparse:
        for i in range(M):
            nnz += a.rnnz[i]
        sparse = nnz <= SPARSE_MAX_DENSITY * M * K and all_finite(d, M * N)
    if sparse:
        team = min(fastnn_team(net.n_threads, NS_COMPRESS * M * K + NS_SPARSE_MAC * nnz * N),
                   n_chunks)
        if team <= 1:
            for c in range(n_chunks):
                first_dW_chunk(c, x, M, K, N, a, d, dW)
        else:
            for c in prange(n_chunks, schedule="static", num_threads=team):
                first_dW_chunk(c, x, M, K, N, a, d, dW)
        fastnn_team_end()
    else:
        # dW = x.T @ d: A = x read column-wise (rsa = 1, csa = K)
        gemm_strided(K, N, M, x, 1, K, d, N, 1, <const floating *> NULL, dW, N,
                     gemm_team(net, M, N, K, tag))
    if net.decay:
        for i in range(K * N):
            dW[i] = dW[i] + lam * W[i]          # affine.dW + weight_decay_lambda * affine.W
    colsum(d, M, N, <floating *> a.db, fastnn_team(net.n_threads, 0.3 * M * N))  # db = sum(dout, 0)
    if ly.dinp != NULL:
        # din = d @ W.T (W read through strides: rsb = 1, csb = N)
        gemm_strided(M, K, N, d, N, 1, W, 1, N, <const floating *> NULL,
                     <floating *> ly.dinp, K, gemm_team(net, M, N, K, tag))
    return 0


cdef int affine_backward(Net *net, Py_ssize_t l) noexcept nogil:
    if net.is_double:
        return affine_backward_t(net, l, <double *> NULL)
    return affine_backward_t(net, l, <float *> NULL)


# --- finite differences (double) ---------------------------------------------------------

cdef int affine_fd_prepare(Net *net, Py_ssize_t l) noexcept nogil:
    """The input's non-zeros by column (CSC): a weight W[i, j] moves z[b, j] only in the
    rows b with in[b, i] != 0 (elsewhere the reference's difference is exactly 0)."""
    cdef Layer *ly = &net.layers[l]
    cdef AffineRec *a = &ly.affine
    cdef Py_ssize_t M = net.M, K = ly.n_in, i, b, k
    cdef const double *A = <const double *> ly.inp
    cdef Py_ssize_t *off = a.nz_off
    for i in range(K + 1):
        off[i] = 0
    for b in range(M):
        for i in range(K):
            off[i + 1] += A[b * K + i] != 0.0
    for i in range(K):
        off[i + 1] += off[i]
    for b in range(M):                       # rows ascending within each column
        for i in range(K):
            if A[b * K + i] != 0.0:
                k = off[i]
                a.nz_rows[k] = b
                a.nz_vals[k] = A[b * K + i]
                off[i] = k + 1
    for i in range(K, 0, -1):                # the fill advanced off[i] to off[i + 1]
        off[i] = off[i - 1]
    off[0] = 0
    a.n_active = 0                           # the inputs whose weights move anything
    for i in range(K):
        if off[i + 1] > off[i]:
            a.active[a.n_active] = i
            a.n_active += 1
    return 0


cdef int affine_fd_exact(const Net *net, Py_ssize_t l, Py_ssize_t b, const RowDelta *d_in,
                         RowDelta *d_out, double *loss_pair) noexcept nogil:
    """dz = d_in @ W for both points (a single moved unit j: the rank-1 row W[j, :])."""
    cdef const Layer *ly = &net.layers[l]
    cdef Py_ssize_t n = ly.n_out, k, kk
    cdef const double *W = <const double *> ly.affine.W
    cdef const double *Wr
    cdef double ep, em, v
    d_out.form = DELTA_ZERO
    if d_in.form == DELTA_ZERO:
        return 0
    d_out.form = DELTA_DENSE
    d_out.lo = 0
    d_out.hi = n
    if d_in.form == DELTA_ONE:
        Wr = W + d_in.unit * n
        ep = d_in.p[0]
        em = d_in.m[0]
        for kk in range(n):
            d_out.p[kk] = ep * Wr[kk]
            d_out.m[kk] = em * Wr[kk]
        return 0
    memset(d_out.p, 0, n * sizeof(double))
    memset(d_out.m, 0, n * sizeof(double))
    for k in range(d_in.lo, d_in.hi):
        ep = d_in.p[k]
        em = d_in.m[k]
        if ep == 0.0 and em == 0.0:
            continue
        Wr = W + k * n
        for kk in range(n):
            v = Wr[kk]
            d_out.p[kk] += ep * v
            d_out.m[kk] += em * v
    return 0


cdef double affine_fd_series(const Net *net, Py_ssize_t l, Py_ssize_t b,
                             const RowSeries *s_in, RowSeries *s_out, double rad,
                             double *wk) noexcept nogil:
    """Linear: one moved unit j becomes the rank-1 W[j, :] s; rank 1 stays rank 1
    (coef @ W); a dense series maps coefficient by coefficient."""
    cdef const Layer *ly = &net.layers[l]
    cdef Py_ssize_t n = ly.n_out, k, kk
    cdef const double *W = <const double *> ly.affine.W
    cdef const double *Wr
    cdef const double *c
    cdef double w
    cdef int q
    s_out.form = SER_ZERO
    if s_in.form == SER_ONE:
        s_out.form = SER_RANK1
        s_out.coef = W + s_in.unit * n
        for q in range(NS):
            s_out.s[q] = s_in.s[q]
    elif s_in.form == SER_RANK1:
        s_out.form = SER_RANK1
        for kk in range(n):
            s_out.cbuf[kk] = 0.0
        for k in range(ly.n_in):
            w = s_in.coef[k]
            if w == 0.0:
                continue
            Wr = W + k * n
            for kk in range(n):
                s_out.cbuf[kk] += w * Wr[kk]
        s_out.coef = s_out.cbuf
        for q in range(NS):
            s_out.s[q] = s_in.s[q]
    elif s_in.form == SER_DENSE:
        s_out.form = SER_DENSE
        for kk in range(n * NS):
            s_out.V[kk] = 0.0
        for k in range(ly.n_in):
            c = s_in.V + k * NS
            if ser_is_zero(c):
                continue
            Wr = W + k * n
            for kk in range(n):
                for q in range(1, NS):
                    s_out.V[kk * NS + q] += c[q] * Wr[kk]
    return rad


cdef double affine_fd_row_forward(const Net *net, Py_ssize_t l, Py_ssize_t b,
                                  const double *inp, double *out) noexcept nogil:
    cdef const Layer *ly = &net.layers[l]
    cdef Py_ssize_t n = ly.n_out, i, k
    cdef const double *W = <const double *> ly.affine.W
    cdef const double *bias = <const double *> ly.affine.b
    for k in range(n):
        out[k] = 0.0
    for i in range(ly.n_in):
        for k in range(n):
            out[k] += inp[i] * W[i * n + k]
    for k in range(n):
        out[k] += bias[k]
    return 0.0


cdef Py_ssize_t affine_fd_units(const Net *net, Py_ssize_t l, Py_ssize_t j) noexcept nogil:
    return net.layers[l].n_out


cdef int affine_fd_unit_params(const Net *net, Py_ssize_t l, Py_ssize_t j,
                               ParamBlock *blocks) noexcept nogil:
    """Two blocks: W[p, j] moves z[b, j] by dw * in[b, p] in the rows with in[b, p] != 0
    (only the inputs non-zero somewhere move anything; with weight decay every weight
    does); b[j] moves every row's z[b, j] by db."""
    cdef const Layer *ly = &net.layers[l]
    cdef const AffineRec *a = &ly.affine
    cdef Py_ssize_t n_in = ly.n_in, n_out = ly.n_out
    cdef ParamBlock *bk = &blocks[0]
    cdef bint decay = net.decay and net.lam != 0.0
    bk.n = n_in if decay else a.n_active
    bk.index = NULL if decay else a.active
    bk.w = (<const double *> a.W) + j
    bk.w_stride = n_out
    bk.grad = a.gW + j
    bk.g_stride = n_out
    bk.f32 = a.W_f32
    bk.decayed = net.decay
    bk.off = a.nz_off
    bk.rows = a.nz_rows
    bk.vals = a.nz_vals
    bk = &blocks[1]
    bk.n = 1
    bk.index = NULL
    bk.w = (<const double *> a.b) + j
    bk.w_stride = 1
    bk.grad = a.gb + j
    bk.g_stride = 1
    bk.f32 = a.b_f32
    bk.decayed = False
    bk.off = NULL
    bk.rows = NULL
    bk.vals = NULL
    return 2


cdef double affine_fd_recompute(const Net *net, Py_ssize_t l, Py_ssize_t j, int block,
                                Py_ssize_t p, Py_ssize_t b, double w_new) noexcept nogil:
    """z[b, j] summed from scratch with W[p, j] (block 0) or b[j] (block 1) set to w_new
    (non-finite inputs)."""
    cdef const Layer *ly = &net.layers[l]
    cdef Py_ssize_t n_in = ly.n_in, n_out = ly.n_out, i
    cdef const double *A = (<const double *> ly.inp) + b * n_in
    cdef const double *W = <const double *> ly.affine.W
    cdef double s = 0.0
    for i in range(n_in):
        s += A[i] * (w_new if (block == 0 and i == p) else W[i * n_out + j])
    return s + (w_new if block == 1 else (<const double *> ly.affine.b)[j])
