from cython cimport floating

# C[M, N] = A[M, K] @ B[K, N] (+ bias[N]); strides in elements; owns its prange.
# Other kernels (backprop) cimport this instead of calling BLAS.
cdef void gemm_strided(Py_ssize_t M, Py_ssize_t N, Py_ssize_t K,
                       const floating *A, Py_ssize_t rsa, Py_ssize_t csa,
                       const floating *B, Py_ssize_t rsb, Py_ssize_t csb,
                       const floating *bias, floating *C, Py_ssize_t ldc,
                       int n_threads) noexcept nogil

# out[N] = sum over M rows of d[M, N], rows in order, in double.
cdef void colsum(const floating *d, Py_ssize_t M, Py_ssize_t N, floating *out,
                 int n_threads) noexcept nogil

# --- the sparse first layer (x mostly exact zeros; see _linear.pyx and csrc/fastnn_sparse.h)
# x's non-zeros per row: idx/val[i * K : i * K + nnz[i]], columns ascending (NaN kept).
# Returns the total number of non-zeros.
cdef Py_ssize_t sparse_compress_rows(const floating *x, Py_ssize_t M, Py_ssize_t K,
                                     int *idx, floating *val, Py_ssize_t *nnz,
                                     int n_threads) noexcept nogil

# True when a[0:n] holds no NaN/inf: the precondition of skipping zeros.
cdef bint all_finite(const floating *a, Py_ssize_t n, int n_threads) noexcept nogil

# out (M, N) = x @ W + bias over x's non-zeros; W (K, N) finite. Bitwise the same on any
# thread count: out[i, j] sums x[i, k] W[k, j] over the non-zero k ascending, then bias.
cdef void sparse_affine_rows(Py_ssize_t M, Py_ssize_t K, Py_ssize_t N, const int *idx,
                             const floating *val, const Py_ssize_t *nnz, Py_ssize_t nnz_total,
                             const floating *W, const floating *bias, floating *out,
                             int n_threads) noexcept nogil

# dW (K, N) = x.T @ dz over x's non-zeros; x (M, K) dense with its pairs, dz (M, N)
# finite. dW[k, j] sums x[i, k] dz[i, j] over rows i ascending. 0, or -1: no memory.
cdef int sparse_xT_dz(Py_ssize_t M, Py_ssize_t K, Py_ssize_t N, const floating *x,
                      const int *idx, const Py_ssize_t *nnz, Py_ssize_t nnz_total,
                      const floating *dz, floating *dW, int n_threads) noexcept nogil

