# The net executor's records: a net is an array of typed layer records (kind + shapes +
# named pointers), run forward / backward / finite-difference by the kind table.
#
# A kind is {forward, backward, FD hooks} plus its record's fields; the table in
# _executor.pyx maps each kind to its functions (kinds/*.pxi), and adding one is: an enum
# value here, a record struct if it has fields, one kinds/<name>.pxi, one table entry,
# one builder method on Executor (see docs/design.md, "How to add a layer kind").

cimport numpy as cnp
from fastnn._kernels._convolution cimport fastnn_conv_geom

cdef enum:
    SHAPE_MAX = 3          # per-sample activation shapes up to (C, H, W)
    FD_MAX_BLOCKS = 4      # param blocks per unit
    NS = 7                 # FD power series: coefficients 0..NT (0 = constant term)
    NT = 6                 # FD power series: order

cpdef enum LayerKind:
    KIND_AFFINE = 0        # out = flatten(in) @ W + b (the first one may skip x's zeros)
    KIND_RELU = 1          # out = max(0, in), the book's mask in <= 0
    KIND_SIGMOID = 2       # out = 1 / (1 + exp(-in))
    KIND_DROPOUT = 3       # out = in * keep_mask (the book's non-inverted dropout)
    KIND_BATCHNORM = 4     # training mode: batch statistics, gamma * xn + beta
    KIND_SOFTMAX_CE = 5    # loss: mean(-log(softmax(in)[t] + 1e-7)); labels or one-hot
    KIND_CONVOLUTION = 6   # out (F, OH, OW) = conv(in (C, H, W), W (F, C, FH, FW)) + b
    KIND_POOLING = 7       # out (C, OH, OW) = max over each window of in (C, H, W)
    N_KINDS = 8

cpdef enum Mode:
    MODE_GRADIENT = 0      # forward + backward in the params' dtype, activations in place
    MODE_FD = 1            # forward only, in double, every activation kept (FD cache)


# --- per-kind record fields -------------------------------------------------------------

cdef struct AffineRec:
    const void *W          # IN  (n_in, n_out), C order
    const void *b          # IN  (n_out,)
    void *dW               # OUT (n_in, n_out)
    void *db               # OUT (n_out,)
    bint first             # its input is x: x's exact zeros may be skipped (sparse path)
    bint fuse_next         # the next layer is an element-wise kind run in place: the
                           # sparse path applies it row by row and marks it done
    bint sparse_used       # the forward took the sparse path
    bint sparse_dW_used    # the backward's dW took the sparse path
    bint masked            # the forward made every row's masks (xbits, rnnz): the
                           # backward's sparse dW may use them
    double density         # non-zero fraction of the last masked x (decides whether the
                           # next x is taken sparse; only speed depends on it)
    Py_ssize_t nnz_total   # non-zeros of the last masked x
    # sparse first-layer scratch (carved from the workspace when `first`)
    unsigned long long *xbits  # (ceil(n_in / 64), M) x's non-zero masks, 64 columns a word,
                           # word w of row i at w * M + i
    Py_ssize_t *rnnz       # (M,) non-zeros per row
    int *xrows             # (XB_SLOTS, M + FASTNN_XB_PAD) per thread of the sparse dW: the
                           # rows of its column group (MODE_GRADIENT)
    # finite differences (MODE_FD, double)
    double *gW             # OUT (n_in, n_out)
    double *gb             # OUT (n_out,)
    bint W_f32             # W is float32: perturbed points rounded to float32
    bint b_f32
    Py_ssize_t *nz_off     # (n_in + 1,) CSC of the input: rows b with in[b, i] != 0
    Py_ssize_t *nz_rows
    double *nz_vals
    Py_ssize_t *active     # (n_in,) the inputs non-zero in some row (their weights move)
    Py_ssize_t n_active

cdef struct BatchNormRec:
    const void *gamma      # IN  (n,)
    const void *beta       # IN  (n,)
    void *dgamma           # OUT (n,)
    void *dbeta            # OUT (n,)
    void *mean             # OUT (n,) batch mean (Python updates the running mean)
    void *var              # OUT (n,) batch variance
    void *std              # (n,)   sqrt(var + 10e-7), kept for backward
    void *xc               # (M, n) in - mean, kept for backward
    void *xn               # (M, n) xc / std, kept for backward
    double *xnT            # FD (n, M) xn by column (a gamma's change per row)
    double *ggamma         # OUT FD (n,)
    double *gbeta          # OUT FD (n,)
    bint gamma_f32
    bint beta_f32

cdef struct DropoutRec:
    const unsigned char *mask   # IN (M, n) keep-mask, 0/1

cdef struct SoftmaxCERec:
    const Py_ssize_t *labels    # IN (M,) class labels, or NULL
    const void *onehot          # IN (M, C) targets (one-hot or soft), or NULL
    double *row_loss            # OUT (M,) -log(p_t + 1e-7) per row (MODE_FD), or NULL

cdef struct ConvRec:
    fastnn_conv_geom g     # input (C, H, W), filter (FH, FW), stride, pad, output (OH, OW)
    Py_ssize_t F           # filters (output channels)
    const void *W          # IN  (F, C, FH, FW)
    const void *b          # IN  (F,)
    void *dW               # OUT (F, C, FH, FW)
    void *db               # OUT (F,)
    bint relu_pool         # the next two layers are relu, pool (gradient mode): the pool
                           # takes the max of this layer's output and applies the relu
                           # to it (relu(max) == max(relu); the backward gives the same
                           # bits), so the relu's forward is skipped
    bint fuse_pool         # ... and the pool is 2x2/2 (fast22): the convolution pools each
                           # sample as it makes it, forward and backward (the relu and pool
                           # layers do nothing; the full conv output is never stored)
    # finite differences (MODE_FD, double)
    double *gW             # OUT (F, C, FH, FW)
    double *gb             # OUT (F,)
    bint W_f32
    bint b_f32
    const double *xpad     # (M, C, H + 2 pad, W + 2 pad) the padded input (inp if pad 0)

cdef struct PoolRec:
    fastnn_conv_geom g     # input (C, H, W), window (FH, FW), stride, pad, output (OH, OW)
    Py_ssize_t *arg        # (M, C, OH, OW) which window element was the max (backward);
                           # 2x2/2 windows (fast22): integers of the dtype's width
    bint fast22            # 2x2 windows, stride 2, no padding, H and W even: fastnn_pool22_*
    bint relu              # fused relu (see ConvRec.relu_pool): out = max(0, max(window));
                           # with fast22 its backward too (the relu layer's din is NULL)

cdef struct SigmoidRec:
    double *E              # FD (M, n) exp(-in), for the exact activation changes
    double *S              # FD (M, n, NS) Taylor coefficients of sigmoid at in


cdef struct Layer:
    int kind
    Py_ssize_t n_in        # elements per sample in / out (C order, flattened)
    Py_ssize_t n_out
    int ndim               # per-sample output shape: (n,) dense, (C, H, W) conv
    Py_ssize_t shape[SHAPE_MAX]
    void *inp              # (M, n_in)  input activations (x, or the previous layer's out)
    void *out              # (M, n_out) output activations (may alias inp: in place)
    void *dout             # (M, n_out) backward: dL/d out
    void *dinp             # (M, n_in)  backward: dL/d inp (NULL: not wanted)
    bint done              # forward already applied by the previous layer (fused)
    AffineRec affine
    BatchNormRec bn
    DropoutRec dropout
    SigmoidRec sigmoid
    SoftmaxCERec loss
    ConvRec conv
    PoolRec pool


cdef struct Net:
    Layer *layers
    Py_ssize_t n_layers
    Py_ssize_t M           # rows of the batch
    bint is_double         # activations' dtype (MODE_FD: always double)
    int mode
    bint decay             # weight decay: dW += lam * W, loss += 0.5 lam sum(W**2)
    double lam
    bint allow_sparse      # the first AFFINE may skip x's zeros
    int n_threads
    int warnings           # OUT bits: WARN_EXP_OVERFLOW, WARN_SUBTRACT_INVALID
    int status             # OUT 0, or STATUS_BAD_LABEL / STATUS_NO_MEMORY
    void *conv_work        # the convolution kernels' scratch (conv_work_bytes for the
                           # largest conv layer at n_threads), shared: layers run in turn


cdef enum:
    WARN_EXP_OVERFLOW = 1       # NumPy: "overflow encountered in exp" (sigmoid)
    WARN_SUBTRACT_INVALID = 2   # NumPy: "invalid value encountered in subtract" (softmax)
    STATUS_BAD_LABEL = 1
    STATUS_NO_MEMORY = 2


# --- finite differences: how one row's activations move at w+ and w- -------------------

cdef enum:
    DELTA_ZERO = 0         # nothing moved
    DELTA_ONE = 1          # only unit `unit` moved: by p[0] (at w+) and m[0] (at w-)
    DELTA_DENSE = 2        # units [lo, hi) moved: by p[lo:hi] and m[lo:hi]

cdef struct RowDelta:
    int form
    Py_ssize_t unit
    Py_ssize_t lo
    Py_ssize_t hi
    double *p
    double *m

cdef enum:
    SER_ZERO = 0           # the row does not move
    SER_ONE = 1            # only unit `unit` moves, by the series s(d) (s[0] = 0)
    SER_RANK1 = 2          # unit k moves by coef[k] * s(d)
    SER_DENSE = 3          # unit k moves by the series V[k * NS : k * NS + NS]

cdef struct RowSeries:
    int form
    Py_ssize_t unit
    double *s              # (NS,)
    const double *coef     # (n,) RANK1: the coefficients (a row of W, or cbuf)
    double *cbuf           # (n,) room for a hook's own coefficients
    double *V              # (n * NS,) (DENSE)

# A block of a unit's params and where their changes land (param kinds' FD hook fills it):
# param q of the block is p = index[q] (index NULL: p = q); its value is w[p * w_stride],
# its gradient goes to grad[p * g_stride]; it moves the unit's output in the rows
# rows[off[p]:off[p + 1]] by (w' - w) * vals[same range] (rows NULL: every row in order,
# vals NULL: 1, off NULL: the whole of rows/vals for every param). Params not in any
# block move nothing: their gradient is 0 (the engine zero-fills every gradient first).
# A pattern block (width > 0: a convolution's channel) moves a run of the row's outputs
# instead of one: param p moves outputs [unit * width, unit * width + width) of every row b
# by (w' - w) * pattern(p, b), the kind's fd_pattern hook gathering the pattern (rows,
# vals and off unused).
cdef struct ParamBlock:
    Py_ssize_t n
    const Py_ssize_t *index
    const double *w
    Py_ssize_t w_stride
    double *grad
    Py_ssize_t g_stride
    bint f32               # stored as float32: the perturbed points are float32 values
    bint decayed           # weights under weight decay (0.5 lam w**2 in the loss)
    const Py_ssize_t *off
    const Py_ssize_t *rows
    const double *vals
    Py_ssize_t width       # 0: one output per unit; > 0: a pattern block (see above)


ctypedef int (*layer_fn)(Net *net, Py_ssize_t l) noexcept nogil
ctypedef int (*fd_exact_fn)(const Net *net, Py_ssize_t l, Py_ssize_t b, const RowDelta *d_in,
                            RowDelta *d_out, double *loss_pair) noexcept nogil
ctypedef double (*fd_series_fn)(const Net *net, Py_ssize_t l, Py_ssize_t b,
                                const RowSeries *s_in, RowSeries *s_out, double rad,
                                double *wk) noexcept nogil
ctypedef double (*fd_row_fn)(const Net *net, Py_ssize_t l, Py_ssize_t b, const double *inp,
                             double *out) noexcept nogil
ctypedef int (*fd_batch_fn)(const Net *net, Py_ssize_t l, const double *inp, double *out,
                            double *wk) noexcept nogil
ctypedef Py_ssize_t (*fd_count_fn)(const Net *net, Py_ssize_t l, Py_ssize_t j) noexcept nogil
ctypedef int (*fd_param_fn)(const Net *net, Py_ssize_t l, Py_ssize_t j,
                            ParamBlock *blocks) noexcept nogil
ctypedef double (*fd_recompute_fn)(const Net *net, Py_ssize_t l, Py_ssize_t j, int block,
                                   Py_ssize_t p, Py_ssize_t b, double w_new) noexcept nogil
ctypedef int (*fd_pattern_fn)(const Net *net, Py_ssize_t l, Py_ssize_t j, int block,
                              Py_ssize_t p, Py_ssize_t b, double *vec) noexcept nogil
ctypedef void (*fd_recompute_vec_fn)(const Net *net, Py_ssize_t l, Py_ssize_t j, int block,
                                     Py_ssize_t p, Py_ssize_t b, double w_new,
                                     double *vec) noexcept nogil

cdef enum:
    PATTERN_ZERO = 0       # fd_pattern: all zeros (the param moves nothing in this row)
    PATTERN_FINITE = 1     # finite values, some non-zero
    PATTERN_NONFINITE = 2  # a NaN or inf among them


# One kind's functions. NULL hooks mean "not this kind's business" (e.g. no params).
cdef struct KindOps:
    const char *name
    layer_fn forward           # layers[l].inp -> .out (MODE_GRADIENT: params' dtype; MODE_FD: double)
    layer_fn backward          # .dout -> .dinp and the param gradients
    bint in_place              # forward may write over its input (element-wise)
    bint keeps_output          # backward reads its own .out (so nothing may overwrite it)
    bint row_local             # row b's output depends on row b's input only
    # finite differences (double, MODE_FD cache)
    layer_fn fd_prepare        # extra cache after the forward (sigmoid: exp(-z), series)
    fd_exact_fn fd_exact       # row changes in -> out (the loss kind: loss change pair)
    fd_series_fn fd_series     # the same as power series in d (NULL: no Taylor mode)
    fd_row_fn fd_row_forward   # one row, absolute values (the loss kind returns r_b)
    fd_batch_fn fd_batch_forward   # whole batch, absolute values (batch-coupled kinds)
    fd_count_fn fd_units       # param kinds: units (columns / channels) ...
    fd_param_fn fd_unit_params # ... the blocks of unit j's params that move the loss
                               # (returns how many, at most FD_MAX_BLOCKS)
    fd_recompute_fn fd_recompute   # unit j's output at row b with param p of block `block`
                                   # = w_new, summed from scratch (for non-finite inputs)
    # pattern blocks (ParamBlock.width > 0)
    fd_pattern_fn fd_pattern   # vec[0:width] = how param p moves unit j's outputs in row b
                               # per unit of (w' - w); returns PATTERN_*
    fd_recompute_vec_fn fd_recompute_vec   # unit j's outputs at row b with param p = w_new,
                                           # summed from scratch (non-finite values)


cdef const KindOps *kind_ops(int kind) noexcept nogil

# forward of every layer (MODE_FD: the finite-difference cache, in double)
cdef int net_forward(Net *net) noexcept nogil


cdef class Executor:
    cdef Net net
    cdef list kinds            # LayerKind per layer
    cdef list widths           # n_out per layer (conv: (F, FH, FW, stride, pad); pool:
                               # (ph, pw, stride, pad))
    cdef tuple in_shape        # per-sample shape of x
    cdef Py_ssize_t n_x        # features per sample of x
    cdef bint allow_sparse     # the first Affine may skip x's zeros (its scratch laid out)
    cdef Py_ssize_t planned_M  # rows the buffers are laid out for (-1: none)
    cdef object work           # uint8 workspace (numpy), carved into the buffers
    cdef object keep           # arrays the records point into (kept alive)
    cdef object conv_work      # uint8 scratch of the convolution kernels (numpy), or None
    cdef int conv_work_threads # the thread count conv_work is sized for
    cdef list param_slots      # per layer: number of param arrays it takes
    # the boundary's fast path (fast_gradient): what a call must look like to skip the
    # Python checks -- the params' keys and shapes, the dtype, the classes
    cdef list pkeys
    cdef list pshapes
    cdef list mask_widths
    cdef Py_ssize_t n_masks
    cdef Py_ssize_t n_classes
    cdef void _carve(self, Py_ssize_t M) except *
    cdef int _bind(self, object x, object labels, object onehot, list params, list grads,
                   list masks) except -1
    cdef _add(self, int kind, object width, int slots)
    cdef int _size_conv_work(self, int n_threads) except -1
    cdef bint _x_shape_ok(self, cnp.ndarray a, Py_ssize_t M)
