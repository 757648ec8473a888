# The one row argmax of the package (np.argmax semantics), shared by the activation
# predictions (nnfs Activation_Softmax.predictions) and the losses' one-hot targets.
from cython cimport floating


cdef inline Py_ssize_t argmax_row(const floating *x, Py_ssize_t n) noexcept nogil:
    """Index of the first maximum of x[0:n]; the first NaN wins (np.argmax)."""
    cdef Py_ssize_t j, best = 0
    cdef floating m = x[0]
    if m != m:
        return 0
    for j in range(1, n):
        if x[j] != x[j]:
            return j
        if x[j] > m:
            m = x[j]
            best = j
    return best
