# KIND_AFFINE: out = flatten(in) @ W + b (N-d per-sample input flattens in C order, the
# book's x.reshape(x.shape[0], -1)); backward dW = in.T @ dout (+ lam W with weight
# decay), db = sum(dout, 0), din = dout @ W.T. GEMMs through gemm_strided (_linear.pxd:
# transposes are strides, never copies).
#
# The first Affine (its input is x) may skip x's exact zeros, MNIST-like inputs being ~80%
# zeros (csrc/fastnn_sparse_bits.h: masks of x's non-zeros, 64 columns a word; both
# products read x's values from x). Forward: ONE parallel region in which each thread
# takes a run of rows -- their masks, z = x @ W + b over the set bits (W copied block by
# block into L1 and checked for NaN/inf on the way), the next element-wise layer applied
# to them. Backward: ONE region in which each thread takes a run of 3-column groups of x
# for dW = x.T @ d (the rows of a group listed from the masks), a slice of d's rows to
# check for NaN/inf, a run of db's columns and its rows of the weight decay. No barrier
# inside either region: each thread needs only its own inputs.
# A skipped 0 * w is 0 only when w is finite, so the skipping is kept only when W
# (forward) and d (backward) are all finite: when a check fails, the layer is recomputed
# by the dense GEMM (NaN/inf then propagate exactly as in the reference). The sparse sums
# give the dense GEMM's bits (each output one accumulator, the non-zero terms in the
# GEMM's order, then the bias), so which path ran -- and how the rows or columns were
# split between threads -- never changes a result.

# x is taken sparse only when, judged on the previous call's x, at most this fraction is
# non-zero (a dense x is ~1.15x slower through the sparse sums than through the GEMM).
cdef double SPARSE_MAX_DENSITY = 0.5
# Single-thread ns, measured on Zen 4 (one thread, min of many; tools/bench_sparse_bits.c):
cdef double NS_MASK = 0.11               # per element of x turned into mask bits
# the sparse sums run at about this fraction of the dense GEMM's rate per multiply-add
# (fastnn_gemm_fma_per_ns, per ISA level and dtype), W's copy and check included
cdef double SPARSE_ROWS_RATE = 0.6
cdef double SPARSE_XTD_RATE = 0.6
cdef double NS_FINITE = 0.05             # per element of d checked for NaN/inf
# threads of the sparse dW have a row-list scratch each: at most this many
cdef enum:
    XB_SLOTS = 64


cdef inline int gemm_team(const Net *net, Py_ssize_t M, Py_ssize_t N, Py_ssize_t K,
                          floating *tag) noexcept nogil:
    # threads for one GEMM of the net: a region only when the product pays for it
    return fastnn_team(net.n_threads, <double> M * N * K / fastnn_gemm_fma_per_ns(sizeof(floating)))


cdef inline bint finite_run(const floating *a, Py_ssize_t n) noexcept nogil:
    # True when a[0:n] holds no NaN/inf
    if n <= 0:
        return True
    if floating is double:
        return fastnn_bp_finite_d(a, n)
    else:
        return fastnn_bp_finite_s(a, n)


cdef inline Py_ssize_t run_lo(Py_ssize_t part, Py_ssize_t parts, Py_ssize_t n) noexcept nogil:
    # the first item of part `part` of n items cut into `parts` equal runs
    return part * n // parts


cdef int first_rows_forward(const floating *x, Py_ssize_t i0, Py_ssize_t i1, Py_ssize_t M,
                            Py_ssize_t K, Py_ssize_t N, AffineRec *a, floating *z,
                            int next_kind, int *warn) noexcept nogil:
    """Rows [i0, i1): their masks, z = x @ W + b over the set bits, then the fused
    activation. Returns 0, or 1 when these rows are too dense for the sparse sums (z
    untouched), 2 when W is not all finite (z is not the product)."""
    cdef Py_ssize_t i, nnz = 0
    if i1 <= i0:
        return 0
    for i in range(i0, i1):
        if floating is double:
            a.rnnz[i] = fastnn_xb_mask_row_d(x + i * K, K, a.xbits + i, M)
        else:
            a.rnnz[i] = fastnn_xb_mask_row_s(x + i * K, K, a.xbits + i, M)
        nnz += a.rnnz[i]
    if nnz > SPARSE_MAX_DENSITY * (i1 - i0) * K:
        return 1
    if floating is double:
        if not fastnn_sparse_rows_bits_d(i1 - i0, N, K, x + i0 * K, K, a.xbits + i0, M,
                                         <const double *> a.W, N, <const double *> a.b,
                                         z + i0 * N, N):
            return 2
    else:
        if not fastnn_sparse_rows_bits_s(i1 - i0, N, K, x + i0 * K, K, a.xbits + i0, M,
                                         <const float *> a.W, N, <const float *> a.b,
                                         z + i0 * N, N):
            return 2
    if next_kind >= 0:
        # the rows are contiguous: one call, so the activation's vector loop runs long
        warn[0] |= elementwise_row(next_kind, z + i0 * N, (i1 - i0) * N)
    return 0


cdef int sparse_first_forward(Net *net, Py_ssize_t l, floating *tag) noexcept nogil:
    """The sparse forward of the first Affine (and of the activation after it, when
    fuse_next): one region, each thread on its run of rows.

    Returns 1, or 0 when the sparse sums do not hold (W not all finite, or x too dense):
    the caller then runs the dense GEMM over every row (and the activation layer runs
    on its own). Every row's masks are made either way (the backward may use them)."""
    cdef Layer *ly = &net.layers[l]
    cdef AffineRec *a = &ly.affine
    cdef Py_ssize_t M = net.M, K = ly.n_in, N = ly.n_out, t, i
    cdef const floating *x = <const floating *> ly.inp
    cdef floating *z = <floating *> ly.out
    cdef int next_kind = net.layers[l + 1].kind if a.fuse_next else -1
    cdef int warn = 0, team, bad = 0
    cdef double est, nnz_est = a.density * M * K
    est = (NS_MASK * M * K
           + nnz_est * N / (SPARSE_ROWS_RATE * fastnn_gemm_fma_per_ns(sizeof(floating)))
           + (NS_SIGMOID if next_kind == KIND_SIGMOID else NS_RELU) * M * N * (next_kind >= 0))
    team = <int> min(fastnn_team(net.n_threads, est), M)
    if team <= 1:
        bad = first_rows_forward(x, 0, M, M, K, N, a, z, next_kind, &warn)
    else:
        for t in prange(team, schedule="static", num_threads=team):
            bad += first_rows_forward(x, run_lo(t, team, M), run_lo(t + 1, team, M), M, K, N,
                                      a, z, next_kind, &warn)
    fastnn_team_end()
    a.nnz_total = 0
    for i in range(M):
        a.nnz_total += a.rnnz[i]
    a.density = <double> a.nnz_total / max(M * K, 1)
    if bad:
        return 0
    net.warnings |= warn
    if next_kind >= 0:
        net.layers[l + 1].done = True
    return 1


cdef bint x_looks_sparse(const floating *x, Py_ssize_t M, Py_ssize_t K) noexcept nogil:
    # judged on the first rows: most of MNIST is zeros, dense data has almost none
    cdef Py_ssize_t i, n_rows = min(M, 4), nnz = 0
    for i in range(n_rows * K):
        nnz += x[i] != 0
    return nnz <= SPARSE_MAX_DENSITY * n_rows * K


cdef int affine_forward_t(Net *net, Py_ssize_t l, floating *tag) noexcept nogil:
    cdef Layer *ly = &net.layers[l]
    cdef Py_ssize_t M = net.M, K = ly.n_in, N = ly.n_out
    cdef const floating *x = <const floating *> ly.inp
    ly.affine.sparse_used = False
    ly.affine.masked = False
    if (ly.affine.density > SPARSE_MAX_DENSITY and ly.affine.xbits != NULL
            and x_looks_sparse(x, M, K)):
        ly.affine.density = SPARSE_MAX_DENSITY    # the last x was dense, this one may not be
    if (ly.affine.first and net.allow_sparse and ly.affine.xbits != NULL and K > 0 and N > 0
            and ly.affine.density <= SPARSE_MAX_DENSITY):
        ly.affine.masked = True       # every row's masks are made, whatever the outcome
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


cdef inline void colsum_cols(const floating *d, Py_ssize_t M, Py_ssize_t N, Py_ssize_t j0,
                             Py_ssize_t j1, floating *out) noexcept nogil:
    # out[j0:j1] = sum(d[:, j0:j1], axis=0): rows in order, in double (_linear.colsum's sums)
    cdef double acc[64]
    cdef Py_ssize_t i, j, c, w
    for c in range(j0, j1, 64):
        w = min(64, j1 - c)
        for j in range(w):
            acc[j] = 0.0
        for i in range(M):
            for j in range(w):
                acc[j] += d[i * N + c + j]
        for j in range(w):
            out[c + j] = <floating> acc[j]


cdef inline void decay_rows(floating *dW, const floating *W, Py_ssize_t k0, Py_ssize_t k1,
                            Py_ssize_t N, double lam) noexcept nogil:
    """Rows [k0, k1) of dW += lam W (affine.dW + weight_decay_lambda * affine.W, in the
    dtype: the product rounded, then the sum)."""
    cdef Py_ssize_t i
    cdef floating lam_t = <floating> lam
    if lam > 1e-300:
        # the same two roundings as nnfs's L2 penalty gradient dw + (2 l2) w with
        # l2 = lam / 2, exact for a normal lam (csrc/fastnn_ops.h, vectorised per ISA
        # level, never contracted)
        if floating is double:
            fastnn_penalty_grad_d(W + k0 * N, dW + k0 * N, (k1 - k0) * N, 0.0, 0.5 * lam)
        else:
            fastnn_penalty_grad_s(W + k0 * N, dW + k0 * N, (k1 - k0) * N, 0.0, 0.5 * lam)
        return
    for i in range(k0 * N, k1 * N):          # lam <= 0 or NaN: 0 * inf is NaN, -0 + 0 is 0
        dW[i] = dW[i] + lam_t * W[i]


cdef inline void first_dW_part(Py_ssize_t t, Py_ssize_t parts, const floating *x,
                               Py_ssize_t M, Py_ssize_t K, Py_ssize_t N, const AffineRec *a,
                               const floating *d, floating *dW, floating *db, bint decay,
                               double lam, int *bad) noexcept nogil:
    """Part t of `parts` of the sparse first-layer backward: its run of column groups of
    dW = x.T @ d (and their weight decay), its run of db's columns, and its slice of d
    checked for NaN/inf (bad += 1: the caller redoes dW densely)."""
    cdef Py_ssize_t G = FASTNN_XB_G, n_groups = (K + G - 1) // G
    cdef Py_ssize_t k0 = run_lo(t, parts, n_groups) * G, k1 = min(run_lo(t + 1, parts, n_groups) * G, K)
    cdef Py_ssize_t r0 = run_lo(t, parts, M), r1 = run_lo(t + 1, parts, M)
    cdef int *rows = a.xrows + t * (M + FASTNN_XB_PAD)
    if not finite_run(d + r0 * N, (r1 - r0) * N):
        bad[0] += 1
    if k1 > k0:
        if floating is double:
            fastnn_sparse_xtd_bits_d(M, N, x, K, k0, k1, a.xbits, M, d, N, dW, N, rows)
        else:
            fastnn_sparse_xtd_bits_s(M, N, x, K, k0, k1, a.xbits, M, d, N, dW, N, rows)
        if decay:
            decay_rows(dW, <const floating *> a.W, k0, k1, N, lam)
    colsum_cols(d, M, N, run_lo(t, parts, N), run_lo(t + 1, parts, N), db)   # db = sum(dout, 0)


cdef int affine_backward_t(Net *net, Py_ssize_t l, floating *tag) noexcept nogil:
    cdef Layer *ly = &net.layers[l]
    cdef AffineRec *a = &ly.affine
    cdef Py_ssize_t M = net.M, K = ly.n_in, N = ly.n_out, t
    cdef const floating *x = <const floating *> ly.inp
    cdef const floating *d = <const floating *> ly.dout
    cdef floating *dW = <floating *> a.dW
    cdef floating *db = <floating *> a.db
    cdef const floating *W = <const floating *> a.W
    cdef double lam = net.lam
    cdef int team, bad = 0
    cdef double est
    a.sparse_dW_used = False
    if (a.masked and a.xrows != NULL and a.density <= SPARSE_MAX_DENSITY
            and K > 0 and N > 0):
        est = (<double> a.nnz_total * N / (SPARSE_XTD_RATE * fastnn_gemm_fma_per_ns(sizeof(floating)))
               + NS_FINITE * M * N)
        team = <int> min(fastnn_team(net.n_threads, est), (K + FASTNN_XB_G - 1) // FASTNN_XB_G,
                         XB_SLOTS)
        if team <= 1:
            first_dW_part(0, 1, x, M, K, N, a, d, dW, db, net.decay, lam, &bad)
        else:
            for t in prange(team, schedule="static", num_threads=team):
                first_dW_part(t, team, x, M, K, N, a, d, dW, db, net.decay, lam, &bad)
        fastnn_team_end()
        a.sparse_dW_used = not bad
        if bad:
            # d holds NaN/inf: a skipped 0 * inf is NaN in the reference, so the dense GEMM
            gemm_strided(K, N, M, x, 1, K, d, N, 1, <const floating *> NULL, dW, N,
                         gemm_team(net, M, N, K, tag))
            if net.decay:
                decay_rows(dW, W, 0, K, N, lam)
    else:
        # dW = x.T @ d: A = x read column-wise (rsa = 1, csa = K)
        gemm_strided(K, N, M, x, 1, K, d, N, 1, <const floating *> NULL, dW, N,
                     gemm_team(net, M, N, K, tag))
        if net.decay:
            decay_rows(dW, W, 0, K, N, lam)
        colsum(d, M, N, db, fastnn_team(net.n_threads, 0.3 * M * N))  # db = sum(dout, 0)
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
