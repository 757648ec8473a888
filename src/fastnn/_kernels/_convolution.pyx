# Convolution and max-pooling kernels: the book's ch07 Convolution and Pooling layers, and
# its im2col / col2im.
#
# Design (STYLE.md): per-sample loops (im2col, col2im, bias, window max) are C in
# csrc/fastnn_conv.h, compiled per ISA level; the multiply-adds are the project's GEMM
# (_linear.gemm_strided, called on one thread per sample). The cdef functions here own the
# parallel region and take raw pointers + a geometry, so the fused-net executor can call
# them without Python (_convolution.pxd); the def wrappers take typed memoryviews for
# fastnn.layers / fastnn.util, which validate, cast and allocate.
#
# Why im2col + GEMM and not a direct loop: per sample, out (F, P) = W (F, K) @ colT (K, P)
# is one GEMM with the register-blocked micro-kernel, whose B operand (colT) is laid out
# once per sample from a zero-padded copy (K * P copies for K * P * F multiply-adds).
# Measured (thread CPU time, batch 100, float32, AVX2): 2.05 / 1.72 / 6.29 ms against
# 3.94 / 4.56 / 45.3 ms for a direct loop (axpy of W[f, k] times a shifted input row into
# each output row) at SimpleConvNet's 1x28x28 -> 30 5x5, the course's 1x28x28 -> 20 5x5 pad
# 2 and 20x14x14 -> 20 5x5 pad 2: the direct loop is load/store-bound on the output rows.
# (A register-blocked direct kernel is an implicit GEMM; the GEMM's own tiles are shared.)
# The backward: dW.T (K, F) = colT_g (K, gs*P) @ dout_g.T per group of samples; dx =
# col2im(W.T @ dout_n), or, from 4 input channels on (stride 1, square filters), the forward
# convolution of dout with the flipped filters (one GEMM over F*FH*FW; 1.45x faster on the
# course's 20 -> 20 layer).
#
# Threads: samples (forward, pooling) or fixed groups of CONV_GROUP samples (backward) go
# to threads in contiguous runs; every output element is computed by one thread in a fixed
# order. dW and db are summed per group (each group's sum is one GEMM over its samples'
# positions, in order) and the groups are then added in order in double, so the bits do not
# depend on the thread count: the group size is a constant, not a function of the team.

from cython.parallel cimport prange
from libc.stdlib cimport malloc, free
from libc.string cimport memcpy, memset

from cython cimport floating

from fastnn._kernels._cpu cimport isa_state
from fastnn._kernels._linear cimport gemm_strided

cdef extern from "fastnn_cpu.h":
    void fastnn_isa_bind(const int *state) noexcept nogil

from fastnn._kernels._openmp cimport (threads_state, fastnn_threads_bind, fastnn_team,
                                      fastnn_team_end)

cdef extern from "fastnn_conv.h":
    void fastnn_pad_image_d(const fastnn_conv_geom *g, const double *x, double *xp) noexcept nogil
    void fastnn_pad_image_s(const fastnn_conv_geom *g, const float *x, float *xp) noexcept nogil
    void fastnn_unpad_image_d(const fastnn_conv_geom *g, const double *xp, double *x) noexcept nogil
    void fastnn_unpad_image_s(const fastnn_conv_geom *g, const float *xp, float *x) noexcept nogil
    void fastnn_im2col_cols_d(const fastnn_conv_geom *g, const double *xp, double *col,
                              Py_ssize_t ldc) noexcept nogil
    void fastnn_im2col_cols_s(const fastnn_conv_geom *g, const float *xp, float *col,
                              Py_ssize_t ldc) noexcept nogil
    void fastnn_col2im_cols_d(const fastnn_conv_geom *g, const double *col, Py_ssize_t ldc,
                              double *xp) noexcept nogil
    void fastnn_col2im_cols_s(const fastnn_conv_geom *g, const float *col, Py_ssize_t ldc,
                              float *xp) noexcept nogil
    void fastnn_im2col_rows_d(const fastnn_conv_geom *g, const double *x, double *col) noexcept nogil
    void fastnn_im2col_rows_s(const fastnn_conv_geom *g, const float *x, float *col) noexcept nogil
    void fastnn_col2im_d(const fastnn_conv_geom *g, const double *col, Py_ssize_t ks,
                         Py_ssize_t ps, double *img) noexcept nogil
    void fastnn_col2im_s(const fastnn_conv_geom *g, const float *col, Py_ssize_t ks,
                         Py_ssize_t ps, float *img) noexcept nogil
    void fastnn_conv_add_bias_d(double *out, const double *b, Py_ssize_t F, Py_ssize_t P) noexcept nogil
    void fastnn_conv_add_bias_s(float *out, const float *b, Py_ssize_t F, Py_ssize_t P) noexcept nogil
    void fastnn_conv_row_sums_d(const double *d, Py_ssize_t F, Py_ssize_t P, double *acc) noexcept nogil
    void fastnn_conv_row_sums_s(const float *d, Py_ssize_t F, Py_ssize_t P, double *acc) noexcept nogil
    void fastnn_maxpool_fwd_d(const fastnn_conv_geom *g, const double *x, double *out,
                              Py_ssize_t *arg, Py_ssize_t acs, Py_ssize_t aps) noexcept nogil
    void fastnn_maxpool_fwd_s(const fastnn_conv_geom *g, const float *x, float *out,
                              Py_ssize_t *arg, Py_ssize_t acs, Py_ssize_t aps) noexcept nogil
    void fastnn_maxpool_bwd_d(const fastnn_conv_geom *g, const double *dout,
                              const Py_ssize_t *arg, Py_ssize_t acs, Py_ssize_t aps,
                              double *dx) noexcept nogil
    void fastnn_maxpool_bwd_s(const fastnn_conv_geom *g, const float *dout,
                              const Py_ssize_t *arg, Py_ssize_t acs, Py_ssize_t aps,
                              float *dx) noexcept nogil

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
    void fastnn_transpose_d(const double *src, Py_ssize_t R, Py_ssize_t Cc, double *dst) noexcept nogil
    void fastnn_transpose_s(const float *src, Py_ssize_t R, Py_ssize_t Cc, float *dst) noexcept nogil

fastnn_isa_bind(isa_state())
fastnn_threads_bind(threads_state())

# Samples per dW/db partial sum in the backward: a constant, so the summation order (and
# the bits) never depend on the thread count. 4 keeps the partials small (ceil(N/4) * F * K)
# and gives 25 groups to share at batch 100.
cdef enum:
    CONV_GROUP = 4

# From this many input channels on, dx (stride 1, square filters) is computed as a
# convolution of dout with the flipped filters (a GEMM over F*FH*FW) instead of a GEMM over F
# and a col2im: 1.45x (float32) and 1.15x (float64) faster on the course CNN's 20 -> 20 5x5
# layer (thread CPU time, min of 12); with C = 1 the
# GEMM would have one row. (4: between the shapes measured, 1 and 20.)
cdef enum:
    DX_AS_CONV_MIN_C = 4

# Single-thread throughput used to size parallel regions (fastnn_team): measured on the
# dev machine (Zen 4, AVX2 tiles; thread CPU time, batch 100, the three benchmark shapes:
# 17-31 MAC/ns float32, 9-15 float64, window max 1.4 elements/ns), rounded down.
cdef double MACS_PER_NS_D = 9.0      # conv multiply-adds per ns, float64
cdef double MACS_PER_NS_S = 17.0     # float32
cdef double POOL_ELEMS_PER_NS = 1.0  # pooling window elements per ns
cdef double COPY_ELEMS_PER_NS = 2.0  # im2col / col2im / partial-sum elements per ns


# --- one sample's C loops, by dtype -----------------------------------------------------

cdef inline const floating *padded(const fastnn_conv_geom *g, const floating *x,
                                   floating *xp) noexcept nogil:
    # x zero-padded into xp (C, H + 2 pad, W + 2 pad); x itself when pad is 0
    if g.pad == 0:
        return x
    if floating is double:
        fastnn_pad_image_d(g, x, xp)
    else:
        fastnn_pad_image_s(g, x, xp)
    return xp


cdef inline void im2col_cols(const fastnn_conv_geom *g, const floating *xp, floating *col,
                             Py_ssize_t ldc) noexcept nogil:
    # col[k * ldc + p] = xp[c, oy*s + fy, ox*s + fx] from the padded image
    if floating is double:
        fastnn_im2col_cols_d(g, xp, col, ldc)
    else:
        fastnn_im2col_cols_s(g, xp, col, ldc)


cdef inline void col2im_cols(const fastnn_conv_geom *g, const floating *col, Py_ssize_t ldc,
                             floating *xp, floating *img) noexcept nogil:
    # img (C, H, W) = col2im of col (K rows, stride ldc); xp: padded scratch (pad > 0)
    cdef Py_ssize_t CHW = g.C * g.H * g.W
    cdef floating *acc = img if g.pad == 0 else xp
    memset(acc, 0, (CHW if g.pad == 0 else g.C * (g.H + 2 * g.pad) * (g.W + 2 * g.pad))
           * sizeof(floating))
    if floating is double:
        fastnn_col2im_cols_d(g, col, ldc, acc)
        if g.pad:
            fastnn_unpad_image_d(g, xp, img)
    else:
        fastnn_col2im_cols_s(g, col, ldc, acc)
        if g.pad:
            fastnn_unpad_image_s(g, xp, img)


cdef inline void im2col_rows(const fastnn_conv_geom *g, const floating *x,
                             floating *col) noexcept nogil:
    if floating is double:
        fastnn_im2col_rows_d(g, x, col)
    else:
        fastnn_im2col_rows_s(g, x, col)


cdef inline void col2im(const fastnn_conv_geom *g, const floating *col, Py_ssize_t ks,
                        Py_ssize_t ps, floating *img) noexcept nogil:
    if floating is double:
        fastnn_col2im_d(g, col, ks, ps, img)
    else:
        fastnn_col2im_s(g, col, ks, ps, img)


cdef inline void add_bias(floating *out, const floating *b, Py_ssize_t F,
                          Py_ssize_t P) noexcept nogil:
    if floating is double:
        fastnn_conv_add_bias_d(out, b, F, P)
    else:
        fastnn_conv_add_bias_s(out, b, F, P)


cdef inline void row_sums(const floating *d, Py_ssize_t F, Py_ssize_t P,
                          double *acc) noexcept nogil:
    if floating is double:
        fastnn_conv_row_sums_d(d, F, P, acc)
    else:
        fastnn_conv_row_sums_s(d, F, P, acc)


cdef inline double macs_per_ns(const floating *dtype_of) noexcept nogil:
    if floating is double:
        return MACS_PER_NS_D
    else:
        return MACS_PER_NS_S


cdef void conv_geom_init(fastnn_conv_geom *g, Py_ssize_t C, Py_ssize_t H, Py_ssize_t W,
                         Py_ssize_t FH, Py_ssize_t FW, Py_ssize_t stride,
                         Py_ssize_t pad) noexcept nogil:
    g.C = C
    g.H = H
    g.W = W
    g.FH = FH
    g.FW = FW
    g.stride = stride
    g.pad = pad
    g.OH = (H + 2 * pad - FH) // stride + 1    # the book's out_h
    g.OW = (W + 2 * pad - FW) // stride + 1


cdef inline Py_ssize_t run_start(Py_ssize_t chunk, Py_ssize_t n_chunks,
                                 Py_ssize_t n) noexcept nogil:
    # first item of thread chunk `chunk` of `n_chunks` contiguous runs over n items
    return chunk * n // n_chunks


# --- convolution forward ----------------------------------------------------------------

# Scratch: one caller-provided buffer (`work`, conv_work_bytes) or, when NULL, one malloc
# per call. Each thread's slot holds its samples' padded input and column matrices (and,
# fused with a pool, one sample's conv output); the backward's group partials and flipped
# filters are shared. A workspace kept by the caller between calls saves the page faults
# of fresh memory (3x on a single sample).
#
# Fused with the 2x2/2 max-pool after it (PoolFuse, the executor's Convolution -> Relu ->
# Pooling): the forward pools each sample's output while it is in the slot (the full conv
# output is never stored), the backward rebuilds each sample's gradient there from the
# pooled gradient and the argmax (nor is the full gradient): two passes through memory of
# the largest activations saved each way.

cdef inline Py_ssize_t align64(Py_ssize_t nbytes) noexcept nogil:
    return (nbytes + 63) // 64 * 64


cdef inline Py_ssize_t padded_size(const fastnn_conv_geom *g) noexcept nogil:
    return g.C * (g.H + 2 * g.pad) * (g.W + 2 * g.pad)


cdef inline Py_ssize_t fwd_slot_elems(const fastnn_conv_geom *g, Py_ssize_t F) noexcept nogil:
    # colT (K, P) + the padded input + one sample's output (F, P) (fused with a pool)
    return (g.C * g.FH * g.FW * g.OH * g.OW + padded_size(g) + F * g.OH * g.OW)


cdef inline bint dx_by_convolution(const fastnn_conv_geom *g) noexcept nogil:
    return (g.stride == 1 and g.FH == g.FW and g.pad <= g.FH - 1
            and g.C >= DX_AS_CONV_MIN_C)


cdef inline void dx_geometry(const fastnn_conv_geom *g, Py_ssize_t F,
                             fastnn_conv_geom *gt) noexcept nogil:
    # dx as a convolution: input dout (F, OH, OW), pad FH - 1 - pad; output (H, W)
    conv_geom_init(gt, F, g.OH, g.OW, g.FH, g.FW, 1, g.FH - 1 - g.pad)


cdef inline Py_ssize_t bwd_slot_elems(const fastnn_conv_geom *g, Py_ssize_t F) noexcept nogil:
    # the padded input, dcolT (K, P), colT of a group (K, G*P), its dout transposed
    # (G*P, F), its dout (G, F, P) (fused with a pool), and dx's convolution's forward slot
    cdef Py_ssize_t K = g.C * g.FH * g.FW, P = g.OH * g.OW, n
    cdef fastnn_conv_geom gt
    n = padded_size(g) + K * P + K * CONV_GROUP * P + 2 * CONV_GROUP * P * F
    if dx_by_convolution(g):
        dx_geometry(g, F, &gt)
        n += fwd_slot_elems(&gt, g.C)
    return n


cdef Py_ssize_t conv_work_bytes(const fastnn_conv_geom *g, Py_ssize_t N, Py_ssize_t F,
                                int n_threads, Py_ssize_t itemsize) noexcept nogil:
    cdef Py_ssize_t K = g.C * g.FH * g.FW, n_groups = (N + CONV_GROUP - 1) // CONV_GROUP
    cdef Py_ssize_t slot = align64(max(fwd_slot_elems(g, F), bwd_slot_elems(g, F)) * itemsize)
    return (align64(n_groups * K * F * itemsize) + align64(n_groups * F * 8)
            + align64(g.C * F * g.FH * g.FW * itemsize) + max(n_threads, 1) * slot)


cdef inline void pool22_forward(const floating *x, Py_ssize_t C, Py_ssize_t H, Py_ssize_t W,
                                floating *out, void *arg, int relu) noexcept nogil:
    if floating is double:
        fastnn_pool22_fwd_d(x, C, H, W, out, <long long *> arg, relu)
    else:
        fastnn_pool22_fwd_s(x, C, H, W, out, <int *> arg, relu)


cdef inline void pool22_backward(const floating *dout, const floating *out, const void *arg,
                                 Py_ssize_t C, Py_ssize_t H, Py_ssize_t W, floating *dx,
                                 int relu) noexcept nogil:
    if floating is double:
        fastnn_pool22_bwd_d(dout, out, <const long long *> arg, C, H, W, dx, relu)
    else:
        fastnn_pool22_bwd_s(dout, out, <const int *> arg, C, H, W, dx, relu)


cdef inline void transpose(const floating *src, Py_ssize_t R, Py_ssize_t Cc,
                           floating *dst) noexcept nogil:
    if floating is double:
        fastnn_transpose_d(src, R, Cc, dst)
    else:
        fastnn_transpose_s(src, R, Cc, dst)


cdef int forward_samples(const fastnn_conv_geom *g, Py_ssize_t n0, Py_ssize_t n1,
                         Py_ssize_t F, const floating *x, const floating *W,
                         const floating *b, floating *out, char *slot,
                         const PoolFuse *pool) noexcept nogil:
    """Samples [n0, n1): out_n (F, P) = W (F, K) @ colT_n (K, P) + b; with `pool`, out_n
    stays in the slot and is pooled into pool.out / pool.arg."""
    cdef Py_ssize_t K = g.C * g.FH * g.FW, P = g.OH * g.OW, CHW = g.C * g.H * g.W, n
    cdef Py_ssize_t PP = (g.OH // 2) * (g.OW // 2)
    # a 1x1 filter with stride 1 and no padding reads x itself as colT (C, H*W)
    cdef bint identity = g.FH == 1 and g.FW == 1 and g.stride == 1 and g.pad == 0
    cdef floating *col = <floating *> slot
    cdef floating *xp = col + K * P
    cdef floating *o = xp + padded_size(g)
    cdef const floating *B
    for n in range(n0, n1):
        if identity:
            B = x + n * CHW
        else:
            im2col_cols(g, padded(g, x + n * CHW, xp), col, P)
            B = col
        if pool == NULL:
            o = out + n * F * P
        gemm_strided(F, P, K, W, K, 1, B, P, 1, NULL, o, P, 1)
        if b != NULL:
            add_bias(o, b, F, P)    # dot(col, col_W) + b, as the book
        if pool != NULL:
            # the 2x2/2 pool (and relu) of this sample while it is in cache
            pool22_forward(o, F, g.OH, g.OW, (<floating *> pool.out) + n * F * PP,
                           (<char *> pool.arg) + n * F * PP * sizeof(floating), pool.relu)
    return 0


cdef int conv_forward(const fastnn_conv_geom *g, Py_ssize_t N, Py_ssize_t F,
                      const floating *x, const floating *W, const floating *b,
                      floating *out, int n_threads, void *work,
                      const PoolFuse *pool=NULL) noexcept nogil:
    """out (N, F, OH, OW) = the book's Convolution.forward of x (N, C, H, W) with W
    (F, C, FH, FW) and b (F,) (NULL: no bias). Samples in parallel. `work`: NULL or
    conv_work_bytes(g, N, F, n_threads) bytes of scratch. `pool` (OH, OW even): out is
    not written; pool.out (N, F, OH/2, OW/2) and pool.arg get the 2x2/2 max-pool of it
    (and its relu). 0, or -1: no memory."""
    cdef Py_ssize_t K = g.C * g.FH * g.FW, P = g.OH * g.OW, chunk
    cdef Py_ssize_t slot = align64(fwd_slot_elems(g, F) * sizeof(floating))
    cdef char *buf = <char *> work
    cdef int team
    if N <= 0 or F <= 0 or P <= 0:
        return 0
    team = fastnn_team(n_threads, <double> N * F * K * P / macs_per_ns(out))
    team = <int> min(<Py_ssize_t> team, N)
    if work == NULL:
        buf = <char *> malloc(max(team * slot, 64))
        if buf == NULL:
            return -1
    if team <= 1:
        forward_samples(g, 0, N, F, x, W, b, out, buf, pool)
    else:
        for chunk in prange(team, schedule="static", num_threads=team):
            forward_samples(g, run_start(chunk, team, N), run_start(chunk + 1, team, N),
                            F, x, W, b, out, buf + chunk * slot, pool)
    fastnn_team_end()
    if work == NULL:
        free(buf)
    return 0


# --- convolution backward ---------------------------------------------------------------

cdef int backward_groups(const fastnn_conv_geom *g, Py_ssize_t grp0, Py_ssize_t grp1,
                         Py_ssize_t N, Py_ssize_t F, const floating *x, const floating *W,
                         const floating *dout, floating *dx, floating *dWT_part,
                         double *db_part, char *slot, const floating *Wt,
                         const PoolFuse *pool) noexcept nogil:
    """Groups [grp0, grp1) of CONV_GROUP samples: for each group its dW partial, transposed
    (dW_g.T (K, F) = colT_g (K, gs*P) @ dout_g.T (gs*P, F): the group's positions in
    order), its db partial (double), and dx of its samples: the convolution of dout_n with
    the flipped filters Wt (dx_by_convolution), else col2im of W.T (K, F) @ dout_n (F, P).
    With `pool`, dout_n is rebuilt in the slot from the pooled gradient."""
    cdef Py_ssize_t K = g.C * g.FH * g.FW, P = g.OH * g.OW, CHW = g.C * g.H * g.W
    cdef Py_ssize_t GP = CONV_GROUP * P, PP = (g.OH // 2) * (g.OW // 2), grp, n, n0, n1, gs, j
    cdef floating *xp = <floating *> slot
    cdef floating *dcol = xp + padded_size(g)
    cdef floating *colg = dcol + K * P
    cdef floating *doutT = colg + K * GP
    cdef floating *doutg = doutT + GP * F
    cdef char *gt_slot = <char *> (doutg + GP * F)
    cdef const floating *dn
    cdef fastnn_conv_geom gt
    cdef bint by_conv = Wt != NULL
    if by_conv:
        dx_geometry(g, F, &gt)
    for grp in range(grp0, grp1):
        n0 = grp * CONV_GROUP
        n1 = min(n0 + CONV_GROUP, N)
        gs = n1 - n0
        if db_part != NULL:
            for j in range(F):
                db_part[grp * F + j] = 0.0
        for n in range(n0, n1):
            if pool != NULL:
                dn = doutg + (n - n0) * F * P
                pool22_backward((<const floating *> pool.dout) + n * F * PP,
                                (<const floating *> pool.out) + n * F * PP,
                                (<const char *> pool.arg) + n * F * PP * sizeof(floating),
                                F, g.OH, g.OW, <floating *> dn, pool.relu)
            else:
                dn = dout + n * F * P
            if dWT_part != NULL:
                # colg[k, (n - n0) * P + p] = colT_n[k, p]; doutT[(n - n0) * P + p, f]
                im2col_cols(g, padded(g, x + n * CHW, xp), colg + (n - n0) * P, gs * P)
                transpose(dn, F, P, doutT + (n - n0) * P * F)
            if db_part != NULL:
                row_sums(dn, F, P, db_part + grp * F)
            if dx != NULL:
                if by_conv:
                    forward_samples(&gt, 0, 1, g.C, dn, Wt, NULL, dx + n * CHW, gt_slot, NULL)
                else:
                    # dcolT (K, P) = W.T @ dout_n: W read as (K, F) through strides
                    gemm_strided(K, P, F, W, 1, K, dn, P, 1, NULL, dcol, P, 1)
                    col2im_cols(g, dcol, P, xp, dx + n * CHW)
        if dWT_part != NULL:
            gemm_strided(K, F, gs * P, colg, gs * P, 1, doutT, F, 1, NULL,
                         dWT_part + grp * K * F, F, 1)
    return 0


cdef int conv_backward(const fastnn_conv_geom *g, Py_ssize_t N, Py_ssize_t F,
                       const floating *x, const floating *W, const floating *dout,
                       floating *dx, floating *dW, floating *db, int n_threads,
                       void *work, const PoolFuse *pool=NULL) noexcept nogil:
    """The book's Convolution.backward: dx (N, C, H, W), dW (F, C, FH, FW) and db (F,)
    from dout (N, F, OH, OW); NULL skips an output. `work`: NULL or conv_work_bytes(g, N,
    F, n_threads) bytes. `pool`: dout is not read; each sample's is rebuilt from pool.dout
    (the pooled gradient), pool.out and pool.arg (conv_forward's fused pool). 0, or -1: no
    memory.

    dx, for stride 1, a square filter, pad <= FH - 1 and C >= DX_AS_CONV_MIN_C, is the
    forward convolution of dout (padded by FH - 1 - pad) with the flipped filters
    Wt (C, F, FH, FW): dx[c, iy, ix] = sum_{f, fy, fx} W[f, c, fy, fx] dout[f, iy + pad - fy,
    ix + pad - fx], one GEMM over F*FH*FW; otherwise col2im(W.T @ dout_n) per sample."""
    cdef Py_ssize_t K = g.C * g.FH * g.FW, P = g.OH * g.OW, CHW = g.C * g.H * g.W
    cdef Py_ssize_t n_groups = (N + CONV_GROUP - 1) // CONV_GROUP, chunk, j, grp, f, k, c, t
    cdef Py_ssize_t KK = g.FH * g.FW, slot, slots_at
    cdef char *buf = <char *> work
    cdef floating *dWT_part = NULL
    cdef double *db_part = NULL
    cdef floating *Wt = NULL
    cdef double s, macs
    cdef int team
    if N <= 0 or F <= 0 or P <= 0:
        # no positions: every gradient is an empty sum
        if dW != NULL:
            for j in range(F * K):
                dW[j] = 0
        if db != NULL:
            for j in range(F):
                db[j] = 0
        if dx != NULL:
            for j in range(N * CHW):
                dx[j] = 0
        return 0
    if work == NULL:
        buf = <char *> malloc(conv_work_bytes(g, N, F, n_threads, sizeof(floating)))
        if buf == NULL:
            return -1
    # the shared parts, then one slot per thread
    slots_at = (align64(n_groups * K * F * sizeof(floating)) + align64(n_groups * F * 8)
                + align64(g.C * F * KK * sizeof(floating)))
    if dx != NULL and dx_by_convolution(g):
        Wt = <floating *> (buf + align64(n_groups * K * F * sizeof(floating))
                           + align64(n_groups * F * 8))
        for c in range(g.C):
            for f in range(F):
                for t in range(KK):
                    # (FH-1-fy, FW-1-fx) flat is KK-1-(fy*FW + fx)
                    Wt[(c * F + f) * KK + t] = W[(f * g.C + c) * KK + KK - 1 - t]
    if dW != NULL and K > 0:
        dWT_part = <floating *> buf
    if db != NULL:
        db_part = <double *> (buf + align64(n_groups * K * F * sizeof(floating)))
    slot = align64(max(fwd_slot_elems(g, F), bwd_slot_elems(g, F)) * sizeof(floating))
    macs = <double> N * F * K * P * ((dWT_part != NULL) + (dx != NULL))
    team = fastnn_team(n_threads, macs / macs_per_ns(dout))
    team = <int> min(<Py_ssize_t> team, n_groups)
    if team <= 1:
        backward_groups(g, 0, n_groups, N, F, x, W, dout, dx, dWT_part, db_part,
                        buf + slots_at, Wt, pool)
    else:
        for chunk in prange(team, schedule="static", num_threads=team):
            backward_groups(g, run_start(chunk, team, n_groups),
                            run_start(chunk + 1, team, n_groups), N, F, x, W, dout,
                            dx, dWT_part, db_part, buf + slots_at + chunk * slot, Wt, pool)
    fastnn_team_end()
    # dW[f, k] = the groups' partial sums (K, F), added in group order in double
    if dWT_part != NULL:
        team = fastnn_team(n_threads, <double> n_groups * F * K / COPY_ELEMS_PER_NS)
        if team <= 1:
            for j in range(F * K):
                f = j // K
                k = j - f * K
                s = 0.0
                for grp in range(n_groups):
                    s = s + dWT_part[(grp * K + k) * F + f]
                dW[j] = <floating> s
        else:
            for j in prange(F * K, schedule="static", num_threads=team):
                f = j // K
                k = j - f * K
                s = 0.0
                for grp in range(n_groups):
                    s = s + dWT_part[(grp * K + k) * F + f]
                dW[j] = <floating> s
        fastnn_team_end()
    elif dW != NULL:   # K == 0
        for j in range(F * K):
            dW[j] = 0
    if db_part != NULL:
        for j in range(F):
            s = 0.0
            for grp in range(n_groups):
                s = s + db_part[grp * F + j]
            db[j] = <floating> s
    if work == NULL:
        free(buf)
    return 0


# --- max pooling ------------------------------------------------------------------------

cdef void maxpool_forward(const fastnn_conv_geom *g, Py_ssize_t N, const floating *x,
                          floating *out, Py_ssize_t *arg, Py_ssize_t arg_ns,
                          Py_ssize_t arg_cs, Py_ssize_t arg_ps, int n_threads) noexcept nogil:
    """The book's Pooling.forward: out (N, C, OH, OW) = max of each window, arg = which."""
    cdef Py_ssize_t n, CHW = g.C * g.H * g.W, CP = g.C * g.OH * g.OW
    cdef int team = fastnn_team(n_threads, <double> N * CP * g.FH * g.FW / POOL_ELEMS_PER_NS)
    if team <= 1:
        for n in range(N):
            maxpool_one(g, x + n * CHW, out + n * CP, arg + n * arg_ns, arg_cs, arg_ps)
    else:
        for n in prange(N, schedule="static", num_threads=team):
            maxpool_one(g, x + n * CHW, out + n * CP, arg + n * arg_ns, arg_cs, arg_ps)
    fastnn_team_end()


cdef inline void maxpool_one(const fastnn_conv_geom *g, const floating *x, floating *out,
                             Py_ssize_t *arg, Py_ssize_t acs, Py_ssize_t aps) noexcept nogil:
    if floating is double:
        fastnn_maxpool_fwd_d(g, x, out, arg, acs, aps)
    else:
        fastnn_maxpool_fwd_s(g, x, out, arg, acs, aps)


cdef inline void maxpool_back_one(const fastnn_conv_geom *g, const floating *dout,
                                  const Py_ssize_t *arg, Py_ssize_t acs, Py_ssize_t aps,
                                  floating *dx) noexcept nogil:
    if floating is double:
        fastnn_maxpool_bwd_d(g, dout, arg, acs, aps, dx)
    else:
        fastnn_maxpool_bwd_s(g, dout, arg, acs, aps, dx)


cdef void maxpool_backward(const fastnn_conv_geom *g, Py_ssize_t N, const floating *dout,
                           const Py_ssize_t *arg, Py_ssize_t arg_ns, Py_ssize_t arg_cs,
                           Py_ssize_t arg_ps, floating *dx, int n_threads) noexcept nogil:
    """The book's Pooling.backward: each dout goes to its window's argmax pixel."""
    cdef Py_ssize_t n, CHW = g.C * g.H * g.W, CP = g.C * g.OH * g.OW
    cdef int team = fastnn_team(n_threads, <double> N * (CP * g.FH * g.FW + CHW) / POOL_ELEMS_PER_NS)
    if team <= 1:
        for n in range(N):
            maxpool_back_one(g, dout + n * CP, arg + n * arg_ns, arg_cs, arg_ps, dx + n * CHW)
    else:
        for n in prange(N, schedule="static", num_threads=team):
            maxpool_back_one(g, dout + n * CP, arg + n * arg_ns, arg_cs, arg_ps, dx + n * CHW)
    fastnn_team_end()


# --- the book's util.im2col / col2im (rows layout: (N * OH * OW, C * FH * FW)) -------------

cdef void im2col_batch(const fastnn_conv_geom *g, Py_ssize_t N, const floating *x,
                       floating *col, int n_threads) noexcept nogil:
    cdef Py_ssize_t n, CHW = g.C * g.H * g.W, PK = g.OH * g.OW * g.C * g.FH * g.FW
    cdef int team = fastnn_team(n_threads, <double> N * PK / COPY_ELEMS_PER_NS)
    if team <= 1:
        for n in range(N):
            im2col_rows(g, x + n * CHW, col + n * PK)
    else:
        for n in prange(N, schedule="static", num_threads=team):
            im2col_rows(g, x + n * CHW, col + n * PK)
    fastnn_team_end()


cdef void col2im_batch(const fastnn_conv_geom *g, Py_ssize_t N, const floating *col,
                       floating *img, int n_threads) noexcept nogil:
    cdef Py_ssize_t n, CHW = g.C * g.H * g.W, K = g.C * g.FH * g.FW, PK = g.OH * g.OW * K
    cdef int team = fastnn_team(n_threads, <double> N * PK / COPY_ELEMS_PER_NS)
    if team <= 1:
        for n in range(N):
            col2im(g, col + n * PK, 1, K, img + n * CHW)
    else:
        for n in prange(N, schedule="static", num_threads=team):
            col2im(g, col + n * PK, 1, K, img + n * CHW)
    fastnn_team_end()


# --- def wrappers (fastnn.layers, fastnn.util validate, cast and allocate) ----------------

cdef inline fastnn_conv_geom geom_of(Py_ssize_t C, Py_ssize_t H, Py_ssize_t W, Py_ssize_t FH,
                                     Py_ssize_t FW, Py_ssize_t stride, Py_ssize_t pad):
    cdef fastnn_conv_geom g
    conv_geom_init(&g, C, H, W, FH, FW, stride, pad)
    return g


def convolution_forward(const floating[:, :, :, ::1] x,   # IN  (N, C, H, W)
                        const floating[:, :, :, ::1] W,   # IN  (F, C, FH, FW)
                        const floating[::1] b,            # IN  (F,)
                        Py_ssize_t stride, Py_ssize_t pad,
                        floating[:, :, :, ::1] out,       # OUT (N, F, OH, OW)
                        int n_threads,
                        unsigned char[::1] work=None):    # scratch (work_bytes) or None
    """out = Convolution.forward(x); returns 0, or -1 when memory ran out."""
    cdef fastnn_conv_geom g = geom_of(x.shape[1], x.shape[2], x.shape[3], W.shape[2],
                                      W.shape[3], stride, pad)
    cdef const floating *xp = NULL
    cdef const floating *Wp = NULL
    cdef void *wp = NULL
    cdef int r
    if out.size == 0:
        return 0
    if x.size:
        xp = &x[0, 0, 0, 0]
        Wp = &W[0, 0, 0, 0]
    if work is not None:
        if work.shape[0] < conv_work_bytes(&g, x.shape[0], W.shape[0], n_threads,
                                           sizeof(floating)):
            raise ValueError("convolution_forward: work is too small")
        wp = &work[0]
    with nogil:
        r = conv_forward(&g, x.shape[0], W.shape[0], xp, Wp, &b[0], &out[0, 0, 0, 0], n_threads,
                         wp)
    return r


def convolution_backward(const floating[:, :, :, ::1] x,      # IN  (N, C, H, W)
                         const floating[:, :, :, ::1] W,      # IN  (F, C, FH, FW)
                         const floating[:, :, :, ::1] dout,   # IN  (N, F, OH, OW)
                         Py_ssize_t stride, Py_ssize_t pad,
                         floating[:, :, :, ::1] dx,           # OUT (N, C, H, W) or None
                         floating[:, :, :, ::1] dW,           # OUT (F, C, FH, FW) or None
                         floating[::1] db,                    # OUT (F,) or None
                         int n_threads,
                         unsigned char[::1] work=None):       # scratch (work_bytes) or None
    """dx, dW, db = Convolution.backward(dout); returns 0, or -1 when memory ran out."""
    cdef fastnn_conv_geom g = geom_of(x.shape[1], x.shape[2], x.shape[3], W.shape[2],
                                      W.shape[3], stride, pad)
    cdef floating *dxp = NULL
    cdef floating *dWp = NULL
    cdef floating *dbp = NULL
    cdef const floating *xp = NULL
    cdef const floating *Wp = NULL
    cdef const floating *dp = NULL
    cdef void *wp = NULL
    cdef int r
    if work is not None:
        if work.shape[0] < conv_work_bytes(&g, x.shape[0], W.shape[0], n_threads,
                                           sizeof(floating)):
            raise ValueError("convolution_backward: work is too small")
        wp = &work[0]
    if x.size:
        xp = &x[0, 0, 0, 0]
    if W.size:
        Wp = &W[0, 0, 0, 0]
    if dout.size:
        dp = &dout[0, 0, 0, 0]
    if dx is not None and dx.size:
        dxp = &dx[0, 0, 0, 0]
    if dW is not None and dW.size:
        dWp = &dW[0, 0, 0, 0]
    if db is not None and db.size:
        dbp = &db[0]
    with nogil:
        r = conv_backward(&g, x.shape[0], W.shape[0], xp, Wp, dp, dxp, dWp, dbp, n_threads, wp)
    return r


def work_bytes(Py_ssize_t N, Py_ssize_t C, Py_ssize_t H, Py_ssize_t W, Py_ssize_t F,
               Py_ssize_t FH, Py_ssize_t FW, Py_ssize_t stride, Py_ssize_t pad, int n_threads,
               Py_ssize_t itemsize):
    """Bytes of scratch convolution_forward/backward use for these shapes and threads."""
    cdef fastnn_conv_geom g = geom_of(C, H, W, FH, FW, stride, pad)
    return conv_work_bytes(&g, N, F, n_threads, itemsize)


def pooling_forward(const floating[:, :, :, ::1] x,      # IN  (N, C, H, W)
                    Py_ssize_t pool_h, Py_ssize_t pool_w, Py_ssize_t stride, Py_ssize_t pad,
                    floating[:, :, :, ::1] out,          # OUT (N, C, OH, OW)
                    Py_ssize_t[::1] arg_max,             # OUT (N * OH * OW * C,)
                    int n_threads):
    """out, arg_max = Pooling.forward(x); arg_max in the book's (n, oy, ox, c) order."""
    cdef fastnn_conv_geom g = geom_of(x.shape[1], x.shape[2], x.shape[3], pool_h, pool_w,
                                      stride, pad)
    if out.size == 0:
        return
    with nogil:
        maxpool_forward(&g, x.shape[0], &x[0, 0, 0, 0], &out[0, 0, 0, 0], &arg_max[0],
                        g.OH * g.OW * g.C, 1, g.C, n_threads)


def pooling_backward(const floating[:, :, :, ::1] dout,   # IN  (N, C, OH, OW)
                     const Py_ssize_t[::1] arg_max,       # IN  (N * OH * OW * C,)
                     Py_ssize_t pool_h, Py_ssize_t pool_w, Py_ssize_t stride, Py_ssize_t pad,
                     floating[:, :, :, ::1] dx,           # OUT (N, C, H, W)
                     int n_threads):
    """dx = Pooling.backward(dout)."""
    cdef fastnn_conv_geom g = geom_of(dx.shape[1], dx.shape[2], dx.shape[3], pool_h, pool_w,
                                      stride, pad)
    cdef Py_ssize_t j, size = dx.size
    if size == 0:
        return
    if dout.size == 0:
        for j in range(size):
            (&dx[0, 0, 0, 0])[j] = 0
        return
    with nogil:
        maxpool_backward(&g, dx.shape[0], &dout[0, 0, 0, 0], &arg_max[0], g.OH * g.OW * g.C,
                         1, g.C, &dx[0, 0, 0, 0], n_threads)


def im2col_rows_batch(const floating[:, :, :, ::1] x,    # IN  (N, C, H, W)
                      Py_ssize_t filter_h, Py_ssize_t filter_w, Py_ssize_t stride,
                      Py_ssize_t pad,
                      floating[:, ::1] col,              # OUT (N * OH * OW, C * FH * FW)
                      int n_threads):
    """col = util.im2col(x, ...), the book's layout."""
    cdef fastnn_conv_geom g = geom_of(x.shape[1], x.shape[2], x.shape[3], filter_h, filter_w,
                                      stride, pad)
    if col.size == 0:
        return
    with nogil:
        im2col_batch(&g, x.shape[0], &x[0, 0, 0, 0], &col[0, 0], n_threads)


def col2im_rows_batch(const floating[:, ::1] col,        # IN  (N * OH * OW, C * FH * FW)
                      Py_ssize_t filter_h, Py_ssize_t filter_w, Py_ssize_t stride,
                      Py_ssize_t pad,
                      floating[:, :, :, ::1] img,        # OUT (N, C, H, W)
                      int n_threads):
    """img = util.col2im(col, img.shape, ...)."""
    cdef fastnn_conv_geom g = geom_of(img.shape[1], img.shape[2], img.shape[3], filter_h,
                                      filter_w, stride, pad)
    cdef Py_ssize_t j, size = img.size
    if size == 0:
        return
    if col.size == 0:
        for j in range(size):
            (&img[0, 0, 0, 0])[j] = 0
        return
    with nogil:
        col2im_batch(&g, img.shape[0], &col[0, 0], &img[0, 0, 0, 0], n_threads)
