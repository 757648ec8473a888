# The net executor: forward and backward of a whole net in one call with the GIL
# released, and the forward cache of the finite-difference engine (_numgrad.pyx).
#
# Design (STYLE.md, DESIGN.md):
#   * a net is an array of typed layer records (`Layer`, _executor.pxd): a kind, its
#     per-sample shapes and named pointers (params, gradients, activations, scratch);
#   * a kind is a set of functions in one kinds/<name>.pxi -- forward, backward, and the
#     finite-difference hooks -- registered in the table below (`KindOps`); the drivers
#     (`net_forward`, `net_backward`, the FD engine) only ever go through that table;
#   * `Executor` (the Python-facing object) lays a net out once per batch size: one
#     workspace, activations in place where the kinds allow it (an activation overwrites
#     the Affine/BatchNorm output it reads, the loss gradient and the backward deltas
#     ping-pong between two scratch blocks), then binds the caller's arrays per call
#     (params, gradients, x, targets, dropout masks) and runs. The Python layer
#     (fastnn._engine) validates and casts once, keeps one Executor per net structure and
#     thread, and allocates only the returned gradients.
#
# Determinism: every output element is computed by one thread in a fixed order (GEMM
# tiles, sparse rows, stripes of dW, column blocks of BatchNorm, rows of softmax), so
# results are bitwise identical on any thread count. Every parallel region's team comes
# from fastnn_team(n_threads, estimated single-thread ns).

from cython.parallel cimport prange
from libc.stdlib cimport malloc, free
from libc.string cimport memset, memcpy
from libc.math cimport sqrt, log

cimport cython
cimport numpy as cnp
from cython cimport floating

from fastnn._kernels._cpu cimport isa_state
from fastnn._kernels._linear cimport colsum, gemm_strided

import numpy as np

cdef extern from "fastnn_cpu.h":
    void fastnn_isa_bind(const int *state) noexcept nogil

from fastnn._kernels._openmp cimport (threads_state, fastnn_threads_bind, fastnn_team,
                                      fastnn_team_end)

cdef extern from "fastnn_math.h":
    # element-wise loops, vectorised for baseline/AVX2/AVX-512 (picked at run time)
    void fastnn_exp_inplace_d(double *y, Py_ssize_t n) noexcept nogil
    void fastnn_exp_inplace_s(float *y, Py_ssize_t n) noexcept nogil
    void fastnn_sigmoid_array_d(const double *x, double *y, Py_ssize_t n) noexcept nogil
    void fastnn_sigmoid_array_s(const float *x, float *y, Py_ssize_t n) noexcept nogil

cdef extern from "fastnn_ops.h":
    # element-wise ops of both books, per ISA level (kinds/activation.pxi)
    void fastnn_relu_d(const double *x, double *y, Py_ssize_t n) noexcept nogil
    void fastnn_relu_s(const float *x, float *y, Py_ssize_t n) noexcept nogil
    void fastnn_relu_backward_d(const double *x, const double *dv, double *out, Py_ssize_t n) noexcept nogil
    void fastnn_relu_backward_s(const float *x, const float *dv, float *out, Py_ssize_t n) noexcept nogil
    void fastnn_sigmoid_backward_d(const double *y, const double *dv, double *out, Py_ssize_t n) noexcept nogil
    void fastnn_sigmoid_backward_s(const float *y, const float *dv, float *out, Py_ssize_t n) noexcept nogil
    void fastnn_penalty_grad_d(const double *w, double *dw, Py_ssize_t n, double l1, double l2) noexcept nogil
    void fastnn_penalty_grad_s(const float *w, float *dw, Py_ssize_t n, double l1, double l2) noexcept nogil

cdef extern from "fastnn_sparse.h":
    int fastnn_bp_finite_d(const double *x, Py_ssize_t n) noexcept nogil
    int fastnn_bp_finite_s(const float *x, Py_ssize_t n) noexcept nogil

cdef extern from "fastnn_sparse_bits.h":
    # the sparse first layer from masks of x's non-zeros (see kinds/affine.pxi)
    int FASTNN_XB_G
    int FASTNN_XB_PAD
    Py_ssize_t fastnn_xb_mask_row_d(const double *x, Py_ssize_t n, unsigned long long *bits,
                                    Py_ssize_t bstride) noexcept nogil
    Py_ssize_t fastnn_xb_mask_row_s(const float *x, Py_ssize_t n, unsigned long long *bits,
                                    Py_ssize_t bstride) noexcept nogil
    int fastnn_sparse_rows_bits_d(Py_ssize_t M, Py_ssize_t N, Py_ssize_t K, const double *x,
                                  Py_ssize_t ldx, const unsigned long long *bits,
                                  Py_ssize_t bstride, const double *W, Py_ssize_t ldw,
                                  const double *bias, double *out, Py_ssize_t ldo) noexcept nogil
    int fastnn_sparse_rows_bits_s(Py_ssize_t M, Py_ssize_t N, Py_ssize_t K, const float *x,
                                  Py_ssize_t ldx, const unsigned long long *bits,
                                  Py_ssize_t bstride, const float *W, Py_ssize_t ldw,
                                  const float *bias, float *out, Py_ssize_t ldo) noexcept nogil
    void fastnn_sparse_xtd_bits_d(Py_ssize_t M, Py_ssize_t N, const double *x, Py_ssize_t ldx,
                                  Py_ssize_t c0, Py_ssize_t c1, const unsigned long long *bits,
                                  Py_ssize_t bstride, const double *d, Py_ssize_t ldd, double *dW,
                                  Py_ssize_t lddw, int *rows) noexcept nogil
    void fastnn_sparse_xtd_bits_s(Py_ssize_t M, Py_ssize_t N, const float *x, Py_ssize_t ldx,
                                  Py_ssize_t c0, Py_ssize_t c1, const unsigned long long *bits,
                                  Py_ssize_t bstride, const float *d, Py_ssize_t ldd, float *dW,
                                  Py_ssize_t lddw, int *rows) noexcept nogil

cdef extern from "fastnn_gemm.h":
    # the dense GEMM's measured multiply-adds per ns (per ISA level and dtype)
    double fastnn_gemm_fma_per_ns(size_t size) noexcept nogil

fastnn_isa_bind(isa_state())
fastnn_threads_bind(threads_state())
cnp.import_array()


cdef inline bint plain_memory(cnp.ndarray a) noexcept:
    """C-contiguous, aligned and in native byte order: what a kernel may read as raw
    memory (a big-endian array has the same type number, so the type check alone lets it
    through)."""
    return cnp.PyArray_ISCARRAY_RO(a) and cnp.PyArray_ISNOTSWAPPED(a)

include "kinds/fd_math.pxi"
include "kinds/activation.pxi"
include "kinds/dropout.pxi"
include "kinds/batchnorm.pxi"
include "kinds/softmax_ce.pxi"
include "kinds/affine.pxi"
include "kinds/convolution.pxi"
include "kinds/pooling.pxi"


# --- the kind table: the one place a kind is registered ---------------------------------

cdef KindOps OPS[<int> N_KINDS]


cdef void register_kinds() noexcept:
    memset(OPS, 0, sizeof(OPS))
    OPS[<int> KIND_AFFINE].name = "affine"
    OPS[<int> KIND_AFFINE].forward = affine_forward
    OPS[<int> KIND_AFFINE].backward = affine_backward
    OPS[<int> KIND_AFFINE].row_local = True
    OPS[<int> KIND_AFFINE].fd_prepare = affine_fd_prepare
    OPS[<int> KIND_AFFINE].fd_exact = affine_fd_exact
    OPS[<int> KIND_AFFINE].fd_series = affine_fd_series
    OPS[<int> KIND_AFFINE].fd_row_forward = affine_fd_row_forward
    OPS[<int> KIND_AFFINE].fd_units = affine_fd_units
    OPS[<int> KIND_AFFINE].fd_unit_params = affine_fd_unit_params
    OPS[<int> KIND_AFFINE].fd_recompute = affine_fd_recompute

    OPS[<int> KIND_RELU].name = "relu"
    OPS[<int> KIND_RELU].forward = activation_forward
    OPS[<int> KIND_RELU].backward = activation_backward
    OPS[<int> KIND_RELU].in_place = True
    OPS[<int> KIND_RELU].keeps_output = True
    OPS[<int> KIND_RELU].row_local = True
    OPS[<int> KIND_RELU].fd_exact = activation_fd_exact
    OPS[<int> KIND_RELU].fd_series = relu_fd_series
    OPS[<int> KIND_RELU].fd_row_forward = activation_fd_row_forward

    OPS[<int> KIND_SIGMOID] = OPS[<int> KIND_RELU]
    OPS[<int> KIND_SIGMOID].name = "sigmoid"
    OPS[<int> KIND_SIGMOID].fd_prepare = sigmoid_fd_prepare
    OPS[<int> KIND_SIGMOID].fd_series = sigmoid_fd_series

    OPS[<int> KIND_DROPOUT].name = "dropout"
    OPS[<int> KIND_DROPOUT].forward = dropout_forward
    OPS[<int> KIND_DROPOUT].backward = dropout_backward
    OPS[<int> KIND_DROPOUT].row_local = True
    OPS[<int> KIND_DROPOUT].fd_exact = dropout_fd_exact
    OPS[<int> KIND_DROPOUT].fd_series = dropout_fd_series
    OPS[<int> KIND_DROPOUT].fd_row_forward = dropout_fd_row_forward

    OPS[<int> KIND_BATCHNORM].name = "batchnorm"
    OPS[<int> KIND_BATCHNORM].forward = batchnorm_forward
    OPS[<int> KIND_BATCHNORM].backward = batchnorm_backward
    OPS[<int> KIND_BATCHNORM].in_place = True
    OPS[<int> KIND_BATCHNORM].fd_prepare = batchnorm_fd_prepare
    OPS[<int> KIND_BATCHNORM].fd_batch_forward = batchnorm_fd_batch_forward
    OPS[<int> KIND_BATCHNORM].fd_units = batchnorm_fd_units
    OPS[<int> KIND_BATCHNORM].fd_unit_params = batchnorm_fd_unit_params
    OPS[<int> KIND_BATCHNORM].fd_recompute = batchnorm_fd_recompute

    OPS[<int> KIND_SOFTMAX_CE].name = "softmax_ce"
    OPS[<int> KIND_SOFTMAX_CE].forward = softmax_ce_forward
    OPS[<int> KIND_SOFTMAX_CE].backward = softmax_ce_backward
    OPS[<int> KIND_SOFTMAX_CE].row_local = True
    OPS[<int> KIND_SOFTMAX_CE].fd_exact = softmax_ce_fd_exact
    OPS[<int> KIND_SOFTMAX_CE].fd_series = softmax_ce_fd_series
    OPS[<int> KIND_SOFTMAX_CE].fd_row_forward = softmax_ce_fd_row_forward

    OPS[<int> KIND_CONVOLUTION].name = "convolution"
    OPS[<int> KIND_CONVOLUTION].forward = convolution_forward
    OPS[<int> KIND_CONVOLUTION].backward = convolution_backward
    OPS[<int> KIND_CONVOLUTION].row_local = True
    OPS[<int> KIND_CONVOLUTION].fd_prepare = convolution_fd_prepare
    OPS[<int> KIND_CONVOLUTION].fd_exact = convolution_fd_exact
    OPS[<int> KIND_CONVOLUTION].fd_row_forward = convolution_fd_row_forward
    OPS[<int> KIND_CONVOLUTION].fd_units = convolution_fd_units
    OPS[<int> KIND_CONVOLUTION].fd_unit_params = convolution_fd_unit_params
    OPS[<int> KIND_CONVOLUTION].fd_pattern = convolution_fd_pattern
    OPS[<int> KIND_CONVOLUTION].fd_recompute_vec = convolution_fd_recompute_vec

    OPS[<int> KIND_POOLING].name = "pooling"
    OPS[<int> KIND_POOLING].forward = pooling_forward
    OPS[<int> KIND_POOLING].backward = pooling_backward
    OPS[<int> KIND_POOLING].row_local = True
    OPS[<int> KIND_POOLING].fd_exact = pooling_fd_exact
    OPS[<int> KIND_POOLING].fd_row_forward = pooling_fd_row_forward


register_kinds()


def in_place_kinds():
    cdef int k
    return [bool(OPS[k].in_place) for k in range(<int> N_KINDS)]


cdef const KindOps *kind_ops(int kind) noexcept nogil:
    return &OPS[kind]


# --- the drivers ------------------------------------------------------------------------

cdef int check_labels(const Net *net) noexcept nogil:
    cdef const Layer *ly = &net.layers[net.n_layers - 1]
    cdef Py_ssize_t i
    if ly.kind == KIND_SOFTMAX_CE and ly.loss.labels != NULL:
        for i in range(net.M):
            if ly.loss.labels[i] < 0 or ly.loss.labels[i] >= ly.n_in:
                return STATUS_BAD_LABEL
    return 0


cdef int net_forward(Net *net) noexcept nogil:
    cdef Py_ssize_t l
    cdef int status
    net.warnings = 0
    net.status = check_labels(net)
    if net.status:
        return net.status
    for l in range(net.n_layers):
        net.layers[l].done = False
    for l in range(net.n_layers):
        if net.layers[l].done:
            continue            # applied by the layer before (fused)
        status = OPS[net.layers[l].kind].forward(net, l)
        if status:
            net.status = status
            return status
    return 0


cdef int net_backward(Net *net) noexcept nogil:
    cdef Py_ssize_t l
    cdef int status
    for l in range(net.n_layers - 1, -1, -1):
        status = OPS[net.layers[l].kind].backward(net, l)
        if status:
            net.status = status
            return status
    return 0


cdef int net_fd_prepare(Net *net) noexcept nogil:
    cdef Py_ssize_t l
    for l in range(net.n_layers):
        if OPS[net.layers[l].kind].fd_prepare != NULL:
            OPS[net.layers[l].kind].fd_prepare(net, l)
    return 0


# --- the Python-facing object -----------------------------------------------------------

cdef inline void *data(object a) except NULL:
    # the array's data pointer (the caller has made it C-contiguous, of the right dtype
    # and shape, non-empty)
    return cnp.PyArray_DATA(<cnp.ndarray?> a)


cdef inline Py_ssize_t align64(Py_ssize_t n) noexcept nogil:
    return (n + 63) & ~(<Py_ssize_t> 63)


def _layout(kinds, sizes, Py_ssize_t M, Py_ssize_t itemsize, bint fd, bint allow_sparse,
            in_place, padded=None):
    """Byte offsets (64-aligned) of every buffer of a net laid out for M rows.

    padded[l]: a convolution's padded input size per sample (0: no padding).
    outs[l]: offset of layer l's output, -2 in place over its input (an element-wise
    kind or BatchNorm after an Affine/BatchNorm, gradient mode only), -1 none."""
    cdef Py_ssize_t off = 0, maxw = 1

    def take(Py_ssize_t nbytes):
        nonlocal off
        at = off
        off += align64(max(nbytes, 1))
        return at

    for n_in, n_out in sizes:
        maxw = max(maxw, n_in, n_out)
    if padded is None:
        padded = [0] * len(kinds)
    lay = {"g0": -1, "g1": -1, "outs": [], "extra": []}
    if not fd:
        lay["g0"] = take(M * maxw * itemsize)
        lay["g1"] = take(M * maxw * itemsize)
    for l, kind in enumerate(kinds):
        n_in, n_out = sizes[l]
        prev = kinds[l - 1] if l > 0 else -1
        if kind == KIND_SOFTMAX_CE:
            lay["outs"].append(take(M * n_in * 8) if fd else -1)
        elif not fd and in_place[kind] and prev in (KIND_AFFINE, KIND_BATCHNORM,
                                                    KIND_CONVOLUTION):
            lay["outs"].append(-2)
        else:
            lay["outs"].append(take(M * n_out * itemsize))
        e = {}
        if kind == KIND_AFFINE and l == 0 and allow_sparse:
            e["xbits"] = take(((n_in + 63) // 64) * M * 8)
            e["rnnz"] = take(M * 8)
            if not fd:
                e["xrows"] = take(XB_SLOTS * (M + FASTNN_XB_PAD) * 4)
        if kind == KIND_AFFINE and fd:
            e["active"] = take(n_in * 8)
            e["nz_off"] = take((n_in + 1) * 8)
            e["nz_rows"] = take(M * n_in * 8)
            e["nz_vals"] = take(M * n_in * 8)
        if kind == KIND_BATCHNORM:
            for name in ("mean", "var", "std"):
                e[name] = take(n_out * itemsize)
            e["xc"] = take(M * n_out * itemsize)
            e["xn"] = take(M * n_out * itemsize)
            if fd:
                e["xnT"] = take(M * n_out * 8)
        if kind == KIND_SIGMOID and fd:
            e["E"] = take(M * n_out * 8)
            e["S"] = take(M * n_out * NS * 8)
        if kind == KIND_SOFTMAX_CE and fd:
            e["row_loss"] = take(M * 8)
        if kind == KIND_POOLING:
            e["arg"] = take(M * n_out * 8)
        if kind == KIND_CONVOLUTION and fd and padded[l]:
            e["xpad"] = take(M * padded[l] * 8)
        lay["extra"].append(e)
    lay["total"] = off
    return lay


cdef class Executor:
    """One net structure laid out for one batch size; run with `gradient` (MODE_GRADIENT)
    or `forward_fd` (MODE_FD, the finite-difference cache).

    Build it with the kind methods in order (`affine(n_out)`, `relu()`, `sigmoid()`,
    `dropout()`, `batchnorm()`, `softmax_ce()`); the last layer must be the loss.
    Params are bound per call as one list in layer order (Affine: W, b; BatchNorm:
    gamma, beta), gradients likewise. Not thread-safe: keep one per thread.
    """

    def __cinit__(self, in_shape, bint is_double, int mode=MODE_GRADIENT):
        if len(in_shape) > SHAPE_MAX or len(in_shape) == 0:
            raise ValueError("Executor: x's per-sample shape must have 1 to %d axes, got %r"
                             % (SHAPE_MAX, in_shape))
        self.net.layers = NULL
        self.net.n_layers = 0
        self.net.mode = mode
        self.net.is_double = is_double or mode == MODE_FD
        self.kinds = []
        self.widths = []
        self.param_slots = []
        self.in_shape = tuple(int(s) for s in in_shape)
        self.n_x = 1
        for s in self.in_shape:
            self.n_x *= s
        self.planned_M = -1
        self.work = None
        self.keep = None
        self.conv_work = None
        self.conv_work_threads = 0
        self.net.conv_work = NULL

    def __dealloc__(self):
        free(self.net.layers)

    # -- building -------------------------------------------------------------------------

    cdef _add(self, int kind, object width, int slots):
        if self.kinds and self.kinds[len(self.kinds) - 1] == KIND_SOFTMAX_CE:
            raise ValueError("Executor: the loss must be the last layer")
        self.kinds.append(kind)
        self.widths.append(width)
        self.param_slots.append(slots)
        self.planned_M = -1
        return self

    def affine(self, Py_ssize_t n_out):
        """out = flatten(in) @ W + b; params W (n_in, n_out), b (n_out,)."""
        return self._add(KIND_AFFINE, n_out, 2)

    def relu(self):
        return self._add(KIND_RELU, -1, 0)

    def sigmoid(self):
        return self._add(KIND_SIGMOID, -1, 0)

    def dropout(self):
        """out = in * mask; one (M, n) 0/1 uint8 mask per call."""
        return self._add(KIND_DROPOUT, -1, 0)

    def batchnorm(self):
        """Training-mode BatchNormalization; params gamma, beta (n,)."""
        return self._add(KIND_BATCHNORM, -1, 2)

    def softmax_ce(self):
        """The loss: softmax + cross-entropy (labels or one-hot targets)."""
        return self._add(KIND_SOFTMAX_CE, -1, 0)

    def convolution(self, Py_ssize_t filters, Py_ssize_t filter_h, Py_ssize_t filter_w,
                    Py_ssize_t stride=1, Py_ssize_t pad=0):
        """The book's Convolution on a (C, H, W) input; params W (filters, C, filter_h,
        filter_w), b (filters,)."""
        if filters < 1 or filter_h < 1 or filter_w < 1 or stride < 1 or pad < 0:
            raise ValueError("Executor.convolution: filters, filter sizes and stride must be "
                             ">= 1 and pad >= 0, got %r" % ((filters, filter_h, filter_w,
                                                              stride, pad),))
        return self._add(KIND_CONVOLUTION, (filters, filter_h, filter_w, stride, pad), 2)

    def pooling(self, Py_ssize_t pool_h, Py_ssize_t pool_w, Py_ssize_t stride=1,
                Py_ssize_t pad=0):
        """The book's max Pooling on a (C, H, W) input (no params)."""
        if pool_h < 1 or pool_w < 1 or stride < 1 or pad < 0:
            raise ValueError("Executor.pooling: window sizes and stride must be >= 1 and pad "
                             ">= 0, got %r" % ((pool_h, pool_w, stride, pad),))
        return self._add(KIND_POOLING, (pool_h, pool_w, stride, pad), 0)

    @property
    def layer_kinds(self):
        return [LayerKind(k) for k in self.kinds]

    @property
    def batch(self):
        return self.planned_M

    def sizes(self):
        """Per layer (n_in, n_out): elements per sample."""
        return [(n_in, n_out) for n_in, n_out, _ in self.shapes()]

    def shapes(self):
        """Per layer (n_in, n_out, per-sample output shape). An Affine flattens its input
        in C order (the book's x.reshape(N, -1)) and outputs (n_out,); a Convolution maps
        (C, H, W) to (filters, OH, OW), a Pooling to (C, OH, OW), OH = (H + 2 pad - FH)
        // stride + 1; the element-wise kinds and BatchNorm keep their input's shape; the
        loss outputs the scores' shape."""
        out = []
        shape = self.in_shape
        n = self.n_x
        for l, (kind, w) in enumerate(zip(self.kinds, self.widths)):
            if kind == KIND_AFFINE:
                new = (w,)
            elif kind == KIND_CONVOLUTION or kind == KIND_POOLING:
                if len(shape) != 3:
                    raise ValueError("Executor: layer %d (%s) needs a (C, H, W) input per "
                                     "sample, got %s" % (l, LayerKind(kind).name, shape))
                C, H, W = shape
                fh, fw, stride, pad = w[1:] if kind == KIND_CONVOLUTION else w
                oh = (H + 2 * pad - fh) // stride + 1
                ow = (W + 2 * pad - fw) // stride + 1
                if H + 2 * pad < fh or W + 2 * pad < fw:
                    raise ValueError("Executor: layer %d (%s): a %dx%d window does not fit "
                                     "the input %s padded by %d" % (l, LayerKind(kind).name,
                                                                    fh, fw, shape, pad))
                new = (w[0] if kind == KIND_CONVOLUTION else C, oh, ow)
            else:
                new = shape
            m = 1
            for d in new:
                m *= d
            out.append((n, m, new))
            shape = new
            n = m
        return out

    cdef int _size_conv_work(self, int n_threads) except -1:
        """The convolutions' shared scratch, sized for n_threads (grown, never shrunk)."""
        cdef Py_ssize_t l, nbytes = 0
        cdef Layer *ly
        cdef unsigned char *base
        if n_threads <= self.conv_work_threads:
            return 0
        for l in range(self.net.n_layers):
            ly = &self.net.layers[l]
            if ly.kind == KIND_CONVOLUTION:
                nbytes = max(nbytes, conv_work_bytes(&ly.conv.g, self.net.M, ly.conv.F,
                                                     n_threads, 8 if self.net.is_double else 4))
        if nbytes:
            self.conv_work = np.empty(nbytes + 64, dtype=np.uint8)
            base = <unsigned char *> cnp.PyArray_DATA(self.conv_work)
            self.net.conv_work = base + ((64 - (<size_t> base) % 64) % 64)
        self.conv_work_threads = n_threads
        return 0

    # -- layout ---------------------------------------------------------------------------

    cdef void _carve(self, Py_ssize_t M) except *:
        """Lay the layers' buffers out for a batch of M rows (once per batch size)."""
        cdef Py_ssize_t L = len(self.kinds), l, n_in, n_out, d
        cdef Layer *ly
        cdef int kind
        cdef bint fd = self.net.mode == MODE_FD
        cdef unsigned char *base
        if L == 0 or self.kinds[L - 1] != KIND_SOFTMAX_CE:
            raise ValueError("Executor: the last layer must be softmax_ce()")
        if self.kinds[0] != KIND_AFFINE and self.kinds[0] != KIND_CONVOLUTION:
            raise ValueError("Executor: the first layer must be affine() or convolution()")
        if self.net.layers == NULL or self.net.n_layers != L:
            free(self.net.layers)
            self.net.layers = NULL
            self.net.layers = <Layer *> malloc(L * sizeof(Layer))
            if self.net.layers == NULL:
                raise MemoryError()
        memset(self.net.layers, 0, L * sizeof(Layer))
        self.net.n_layers = L
        self.net.M = M
        shapes = self.shapes()
        sizes = [(a, b) for a, b, _ in shapes]
        in_shapes = [self.in_shape] + [sh for _, _, sh in shapes[:L - 1]]
        padded = []
        for l in range(L):
            if self.kinds[l] == KIND_CONVOLUTION and self.widths[l][4] > 0:
                C, H, W = in_shapes[l]
                pad = self.widths[l][4]
                padded.append(C * (H + 2 * pad) * (W + 2 * pad))
            else:
                padded.append(0)
        lay = _layout(self.kinds, sizes, M, 8 if self.net.is_double else 4, fd,
                      self.allow_sparse, in_place_kinds(), padded)
        self.conv_work = None
        self.conv_work_threads = 0
        self.net.conv_work = NULL
        self.work = np.empty(lay["total"] + 64, dtype=np.uint8)
        base = <unsigned char *> cnp.PyArray_DATA(self.work)
        base = base + ((64 - (<size_t> base) % 64) % 64)
        outs = lay["outs"]
        for l in range(L):
            ly = &self.net.layers[l]
            kind = self.kinds[l]
            n_in, n_out = sizes[l]
            ly.kind = kind
            ly.n_in = n_in
            ly.n_out = n_out
            out_shape = shapes[l][2]
            if len(out_shape) > SHAPE_MAX:
                raise ValueError("Executor: per-sample shapes have at most %d axes, got %s"
                                 % (SHAPE_MAX, out_shape))
            ly.ndim = len(out_shape)
            for d in range(ly.ndim):
                ly.shape[d] = out_shape[d]
            if outs[l] == -2:
                ly.out = self.net.layers[l - 1].out
            elif outs[l] >= 0:
                ly.out = base + <Py_ssize_t> outs[l]
            if l > 0:
                ly.inp = self.net.layers[l - 1].out
            e = lay["extra"][l]
            if kind == KIND_AFFINE:
                ly.affine.first = l == 0
                if "xbits" in e:
                    ly.affine.xbits = <unsigned long long *> (base + <Py_ssize_t> e["xbits"])
                    ly.affine.rnnz = <Py_ssize_t *> (base + <Py_ssize_t> e["rnnz"])
                    ly.affine.density = 0.2    # (a first guess: only the first call's team)
                if "xrows" in e:
                    ly.affine.xrows = <int *> (base + <Py_ssize_t> e["xrows"])
                if "nz_off" in e:
                    ly.affine.active = <Py_ssize_t *> (base + <Py_ssize_t> e["active"])
                    ly.affine.nz_off = <Py_ssize_t *> (base + <Py_ssize_t> e["nz_off"])
                    ly.affine.nz_rows = <Py_ssize_t *> (base + <Py_ssize_t> e["nz_rows"])
                    ly.affine.nz_vals = <double *> (base + <Py_ssize_t> e["nz_vals"])
                # the sparse first layer applies an in-place activation after it row by row
                ly.affine.fuse_next = (l == 0 and l + 1 < L and outs[l + 1] == -2
                                       and (self.kinds[l + 1] == KIND_RELU
                                            or self.kinds[l + 1] == KIND_SIGMOID))
            elif kind == KIND_BATCHNORM:
                ly.bn.mean = base + <Py_ssize_t> e["mean"]
                ly.bn.var = base + <Py_ssize_t> e["var"]
                ly.bn.std = base + <Py_ssize_t> e["std"]
                ly.bn.xc = base + <Py_ssize_t> e["xc"]
                ly.bn.xn = base + <Py_ssize_t> e["xn"]
                if "xnT" in e:
                    ly.bn.xnT = <double *> (base + <Py_ssize_t> e["xnT"])
            elif kind == KIND_SIGMOID and fd:
                ly.sigmoid.E = <double *> (base + <Py_ssize_t> e["E"])
                ly.sigmoid.S = <double *> (base + <Py_ssize_t> e["S"])
            elif kind == KIND_SOFTMAX_CE and fd:
                ly.loss.row_loss = <double *> (base + <Py_ssize_t> e["row_loss"])
            elif kind == KIND_CONVOLUTION or kind == KIND_POOLING:
                C, H, W = in_shapes[l]
                g4 = self.widths[l]
                fh, fw, stride, pad = g4[1:] if kind == KIND_CONVOLUTION else g4
                if kind == KIND_CONVOLUTION:
                    conv_geom_init(&ly.conv.g, C, H, W, fh, fw, stride, pad)
                    ly.conv.F = self.widths[l][0]
                    if "xpad" in e:
                        ly.conv.xpad = <const double *> (base + <Py_ssize_t> e["xpad"])
                    # Convolution -> Relu (in place) -> Pooling: the pool applies the relu
                    ly.conv.relu_pool = (not fd and l + 2 < L and outs[l + 1] == -2
                                         and self.kinds[l + 1] == KIND_RELU
                                         and self.kinds[l + 2] == KIND_POOLING)
                else:
                    conv_geom_init(&ly.pool.g, C, H, W, fh, fw, stride, pad)
                    ly.pool.arg = <Py_ssize_t *> (base + <Py_ssize_t> e["arg"])
                    ly.pool.fast22 = (fh == 2 and fw == 2 and stride == 2 and pad == 0
                                      and H % 2 == 0 and W % 2 == 0)
                    ly.pool.relu = (l >= 2 and self.kinds[l - 2] == KIND_CONVOLUTION
                                    and self.net.layers[l - 2].conv.relu_pool)
                    if ly.pool.relu and ly.pool.fast22:
                        self.net.layers[l - 2].conv.fuse_pool = True
        if not fd:
            # backward deltas ping-pong between two blocks: the loss writes g0; element-
            # wise kinds and BatchNorm work in place; an Affine writes the other block;
            # the first layer's din is not wanted (its input is x)
            g = (lay["g0"], lay["g1"])
            cur = 0
            for l in range(L - 1, -1, -1):
                ly = &self.net.layers[l]
                if l < L - 1:
                    ly.dout = base + <Py_ssize_t> g[cur]
                if l == 0:
                    ly.dinp = NULL
                    continue
                fused = ((ly.kind == KIND_RELU and l >= 1
                          and self.net.layers[l - 1].conv.fuse_pool)
                         or (ly.kind == KIND_POOLING and l >= 2
                             and self.net.layers[l - 2].conv.fuse_pool))
                if fused:
                    # the convolution's backward does its part, reading the pool's dout:
                    # no din, and no flip (the conv's din must not overwrite that dout)
                    ly.dinp = NULL
                    continue
                if (ly.kind == KIND_AFFINE or ly.kind == KIND_CONVOLUTION
                        or ly.kind == KIND_POOLING):
                    cur = 1 - cur           # din and dout are different sizes
                ly.dinp = base + <Py_ssize_t> g[cur]
        self.planned_M = M

    # -- running --------------------------------------------------------------------------

    cdef int _bind(self, object x, object labels, object onehot, list params, list grads,
                   list masks) except -1:
        cdef Py_ssize_t l, p = 0, m = 0, L = self.net.n_layers
        cdef Layer *ly
        self.net.layers[0].inp = data(x)
        for l in range(L):
            ly = &self.net.layers[l]
            if ly.kind == KIND_AFFINE:
                ly.affine.W = data(params[p])
                ly.affine.b = data(params[p + 1])
                if grads is not None:
                    ly.affine.dW = data(grads[p])
                    ly.affine.db = data(grads[p + 1])
                p += 2
            elif ly.kind == KIND_BATCHNORM:
                ly.bn.gamma = data(params[p])
                ly.bn.beta = data(params[p + 1])
                if grads is not None:
                    ly.bn.dgamma = data(grads[p])
                    ly.bn.dbeta = data(grads[p + 1])
                p += 2
            elif ly.kind == KIND_CONVOLUTION:
                ly.conv.W = data(params[p])
                ly.conv.b = data(params[p + 1])
                if grads is not None:
                    ly.conv.dW = data(grads[p])
                    ly.conv.db = data(grads[p + 1])
                p += 2
            elif ly.kind == KIND_DROPOUT:
                ly.dropout.mask = <const unsigned char *> data(masks[m])
                m += 1
            elif ly.kind == KIND_SOFTMAX_CE:
                ly.loss.labels = NULL
                ly.loss.onehot = NULL
                if labels is not None:
                    ly.loss.labels = <const Py_ssize_t *> data(labels)
                elif onehot is not None:
                    ly.loss.onehot = data(onehot)
        return 0

    def plan(self, Py_ssize_t M, bint allow_sparse=True):
        """Lay the buffers out for M rows (a no-op when they already are)."""
        if M != self.planned_M or allow_sparse != self.allow_sparse:
            self.allow_sparse = allow_sparse
            self._carve(M)
        return self

    def gradient(self, x, labels, onehot, list params, list grads, list masks,
                 bint decay, double lam, int n_threads):
        """Forward + backward (MODE_GRADIENT) on validated arrays; `x` (M, n_x) C-contiguous
        in the executor's dtype, `labels` (M,) intp or None, `onehot` (M, C) or None; the
        gradients are written into `grads`. Returns (status, warnings)."""
        cdef int status
        if self.planned_M != cnp.PyArray_DIM(<cnp.ndarray?> x, 0):
            raise ValueError("Executor.gradient: plan(M) first")
        self._bind(x, labels, onehot, params, grads, masks)
        self._size_conv_work(n_threads)
        self.net.decay = decay
        self.net.lam = lam
        self.net.allow_sparse = self.allow_sparse
        self.net.n_threads = n_threads
        with nogil:
            status = net_forward(&self.net)
            if status == 0:
                status = net_backward(&self.net)
        if status == STATUS_NO_MEMORY:
            raise MemoryError()
        return status, self.net.warnings

    def forward_fd(self, x, labels, list params, list masks, int n_threads):
        """The finite-difference cache (MODE_FD, double): every layer's output, the
        output probabilities and row losses, and the kinds' extras. Returns
        (status, warnings)."""
        cdef int status
        if self.net.mode != MODE_FD:
            raise ValueError("Executor.forward_fd: built for MODE_GRADIENT")
        self._bind(x, labels, None, params, None, masks)
        self._size_conv_work(n_threads)
        self.net.decay = False
        self.net.allow_sparse = self.allow_sparse
        self.net.n_threads = n_threads
        with nogil:
            status = net_forward(&self.net)
            if status == 0:
                net_fd_prepare(&self.net)
        if status == STATUS_NO_MEMORY:
            raise MemoryError()
        return status, self.net.warnings

    def expect(self, list keys, list shapes):
        """Arm the fast path: the params' keys (slot order) and shapes of this layout."""
        cdef Py_ssize_t l
        self.pkeys = list(keys)
        self.pshapes = [tuple(s) for s in shapes]
        self.mask_widths = [n_out for k, (n_in, n_out) in zip(self.kinds, self.sizes())
                            if k == KIND_DROPOUT]
        self.n_masks = len(self.mask_widths)
        self.n_classes = self.sizes()[len(self.kinds) - 1][0]

    cdef bint _x_shape_ok(self, cnp.ndarray a, Py_ssize_t M):
        # (M, n_x) for a dense net; (M, C, H, W) (or flat (M, n_x)) for a conv net
        cdef Py_ssize_t d, nd = cnp.PyArray_NDIM(a), ni = len(self.in_shape)
        if nd < 1 or cnp.PyArray_DIM(a, 0) != M:
            return False
        if nd == 2 and cnp.PyArray_DIM(a, 1) == self.n_x:
            return True
        if nd != ni + 1 or ni == 1:
            return False
        for d in range(ni):
            if cnp.PyArray_DIM(a, d + 1) != <Py_ssize_t> self.in_shape[d]:
                return False
        return True

    def scores(self, x, list params, list masks, int n_threads):
        """The forward pass (MODE_GRADIENT) on validated arrays: a copy of the loss
        layer's input, the scores (M, C). The loss kind does no work in this mode, so
        no targets are needed."""
        cdef int status
        cdef Layer *last
        if self.net.mode != MODE_GRADIENT:
            raise ValueError("Executor.scores: built for MODE_FD")
        if self.planned_M != cnp.PyArray_DIM(<cnp.ndarray?> x, 0):
            raise ValueError("Executor.scores: plan(M) first")
        self._bind(x, None, None, params, None, masks)
        last = &self.net.layers[self.net.n_layers - 1]
        self._size_conv_work(n_threads)
        self.net.decay = False
        self.net.allow_sparse = self.allow_sparse
        self.net.n_threads = n_threads
        with nogil:
            status = net_forward(&self.net)
        if status == STATUS_NO_MEMORY:
            raise MemoryError()
        out = np.empty((self.net.M, last.n_in), dtype=np.float64 if self.net.is_double
                       else np.float32)
        memcpy(cnp.PyArray_DATA(out), last.inp, out.nbytes)
        return out, self.net.warnings

    def fast_gradient(self, dict params, x, t, lam, int n_threads, masks=None):
        """gradient() for a call that needs no conversion, checked here in C: x (M, n_x),
        t (M,) intp labels or (M, C) targets, every param (and dropout mask) a C-contiguous
        array of this executor's dtype (bool masks) and laid-out shape. Returns
        (grads dict, warning bits), or None: the caller then takes the checked path
        (which also reports bad labels)."""
        cdef Py_ssize_t M = self.planned_M, i, n = len(self.pkeys), d
        cdef int typenum = cnp.NPY_DOUBLE if self.net.is_double else cnp.NPY_FLOAT
        cdef cnp.ndarray a
        cdef object labels = None, onehot = None
        cdef int status
        cdef list plist, glist, mlist = None
        cdef tuple shape
        cdef cnp.npy_intp dims[2]
        if self.net.mode != MODE_GRADIENT or M < 0 or self.pkeys is None:
            return None
        if type(x) is not np.ndarray:
            return None
        a = <cnp.ndarray> x
        if (cnp.PyArray_TYPE(a) != typenum or not plain_memory(a)
                or not self._x_shape_ok(a, M)):
            return None
        if type(t) is not np.ndarray:
            return None
        a = <cnp.ndarray> t
        if not plain_memory(a):
            return None
        if cnp.PyArray_NDIM(a) == 1 and cnp.PyArray_TYPE(a) == cnp.NPY_INTP:
            if cnp.PyArray_DIM(a, 0) != M or M * self.n_classes == M:
                return None               # (a one-class net: t.size == y.size is one-hot)
            labels = t
        elif (cnp.PyArray_NDIM(a) == 2 and cnp.PyArray_TYPE(a) == typenum
              and cnp.PyArray_DIM(a, 0) == M and cnp.PyArray_DIM(a, 1) == self.n_classes):
            onehot = t
        else:
            return None
        plist = []
        glist = []
        for i in range(n):
            p = params.get(self.pkeys[i])
            if type(p) is not np.ndarray:
                return None
            a = <cnp.ndarray> p
            shape = <tuple> self.pshapes[i]
            if (cnp.PyArray_TYPE(a) != typenum or not plain_memory(a)
                    or cnp.PyArray_NDIM(a) != len(shape)):
                return None
            for d in range(len(shape)):
                if cnp.PyArray_DIM(a, d) != <Py_ssize_t> shape[d]:
                    return None
            plist.append(p)
            glist.append(cnp.PyArray_EMPTY(cnp.PyArray_NDIM(a), cnp.PyArray_DIMS(a), typenum, 0))
        if self.n_masks:
            if masks is None or len(masks) != self.n_masks:
                return None
            mlist = list(masks)
            for i in range(self.n_masks):
                if type(mlist[i]) is not np.ndarray:
                    return None
                a = <cnp.ndarray> mlist[i]
                if (cnp.PyArray_TYPE(a) != cnp.NPY_BOOL or not plain_memory(a)
                        or cnp.PyArray_NDIM(a) != 2 or cnp.PyArray_DIM(a, 0) != M
                        or cnp.PyArray_DIM(a, 1) != <Py_ssize_t> self.mask_widths[i]):
                    return None
        elif masks is not None:
            return None
        self._bind(x, labels, onehot, plist, glist, mlist)
        self._size_conv_work(n_threads)
        self.net.decay = lam is not None
        self.net.lam = <double> lam if lam is not None else 0.0
        self.net.allow_sparse = self.allow_sparse
        self.net.n_threads = n_threads
        with nogil:
            status = net_forward(&self.net)
            if status == 0:
                status = net_backward(&self.net)
        if status == STATUS_NO_MEMORY:
            raise MemoryError()
        if status:
            return None
        out = {}
        for i in range(n):
            out[self.pkeys[i]] = glist[i]
        return out, self.net.warnings

    def first_layer_paths(self):
        """Which path the first Affine took in the last run: ('sparse' or 'dense' for the
        forward, the same for dW). For tests and diagnostics: the results are the same
        bits either way."""
        cdef AffineRec *a
        if self.net.layers == NULL or self.net.n_layers == 0:
            return None
        a = &self.net.layers[0].affine
        return ("sparse" if a.sparse_used else "dense",
                "sparse" if a.sparse_dW_used else "dense")

    def batch_stats(self, Py_ssize_t l):
        """(mean, var) of BatchNorm layer l from the last run (copies)."""
        cdef Layer *ly = &self.net.layers[l]
        cdef cnp.npy_intp n = ly.n_out
        dt = np.float64 if self.net.is_double else np.float32
        itemsize = 8 if self.net.is_double else 4
        mean = np.empty(n, dtype=dt)
        var = np.empty(n, dtype=dt)
        memcpy(cnp.PyArray_DATA(mean), ly.bn.mean, n * itemsize)
        memcpy(cnp.PyArray_DATA(var), ly.bn.var, n * itemsize)
        return mean, var

    def row_losses(self):
        """MODE_FD: the rows' losses -log(p_t + 1e-7) from the last forward_fd (a copy)."""
        cdef Layer *ly = &self.net.layers[self.net.n_layers - 1]
        cdef cnp.npy_intp M = self.net.M
        out = np.empty(M, dtype=np.float64)
        memcpy(cnp.PyArray_DATA(out), ly.loss.row_loss, M * 8)
        return out

    def layer_output(self, Py_ssize_t l):
        """MODE_FD: layer l's output activations (M, n_out) from the last forward (a copy)."""
        cdef Layer *ly = &self.net.layers[l]
        out = np.empty((self.net.M, ly.n_out if ly.kind != KIND_SOFTMAX_CE else ly.n_in),
                       dtype=np.float64)
        memcpy(cnp.PyArray_DATA(out), ly.out, out.nbytes)
        return out
