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
