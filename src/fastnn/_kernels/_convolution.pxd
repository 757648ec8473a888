# Convolution and max-pooling kernels over raw pointers (the fused-net executor calls these
# from C). Arrays are C-ordered: x (N, C, H, W), W (F, C, FH, FW), out/dout (N, F, OH, OW).
# Each returns 0, or -1 when scratch memory could not be allocated (outputs then undefined).
from cython cimport floating

cdef extern from "fastnn_conv.h":
    ctypedef struct fastnn_conv_geom:
        Py_ssize_t C, H, W      # input channels, height, width
        Py_ssize_t FH, FW       # filter / pooling window height, width
        Py_ssize_t stride, pad
        Py_ssize_t OH, OW       # output height, width

# A 2x2/2 max-pool fused after a convolution (the executor's Convolution -> Relu -> Pooling):
# out (N, F, OH/2, OW/2) the pooled output, arg (same shape) the window index of each max, as
# integers of the dtype's width (int32 / int64), dout the pooled output's gradient
# (backward), relu: the Relu between them applied to the pooled output (and its backward).
cdef struct PoolFuse:
    void *out
    void *arg
    const void *dout
    int relu

# g's OH, OW from the others: (H + 2 pad - FH) // stride + 1 (the caller checks >= 1)
cdef void conv_geom_init(fastnn_conv_geom *g, Py_ssize_t C, Py_ssize_t H, Py_ssize_t W,
                         Py_ssize_t FH, Py_ssize_t FW, Py_ssize_t stride,
                         Py_ssize_t pad) noexcept nogil

# Bytes of scratch conv_forward and conv_backward need (`work`); pass NULL instead to have
# them malloc and free it per call. Keeping one buffer between calls saves page faults.
cdef Py_ssize_t conv_work_bytes(const fastnn_conv_geom *g, Py_ssize_t N, Py_ssize_t F,
                                int n_threads, Py_ssize_t itemsize) noexcept nogil

# out = conv(x, W) + b  (b may be NULL: no bias); with pool (OH, OW even), out is not written:
# pool.out / pool.arg get its 2x2/2 max-pool
cdef int conv_forward(const fastnn_conv_geom *g, Py_ssize_t N, Py_ssize_t F,
                      const floating *x, const floating *W, const floating *b,
                      floating *out, int n_threads, void *work,
                      const PoolFuse *pool=*) noexcept nogil

# dx (N, C, H, W), dW (F, C, FH, FW), db (F,) from dout; any of the three may be NULL
cdef int conv_backward(const fastnn_conv_geom *g, Py_ssize_t N, Py_ssize_t F,
                       const floating *x, const floating *W, const floating *dout,
                       floating *dx, floating *dW, floating *db, int n_threads,
                       void *work, const PoolFuse *pool=*) noexcept nogil

# out (N, C, OH, OW) = window max; arg[n * arg_ns + c * arg_cs + p * arg_ps] = its index in
# the window (np.argmax rule). The book's layout (n, oy, ox, c): arg_ns = P*C, cs = 1, ps = C.
cdef void maxpool_forward(const fastnn_conv_geom *g, Py_ssize_t N, const floating *x,
                          floating *out, Py_ssize_t *arg, Py_ssize_t arg_ns,
                          Py_ssize_t arg_cs, Py_ssize_t arg_ps, int n_threads) noexcept nogil

# dx (N, C, H, W) from dout (N, C, OH, OW) and the forward's arg
cdef void maxpool_backward(const fastnn_conv_geom *g, Py_ssize_t N, const floating *dout,
                           const Py_ssize_t *arg, Py_ssize_t arg_ns, Py_ssize_t arg_cs,
                           Py_ssize_t arg_ps, floating *dx, int n_threads) noexcept nogil
