"""Checks and casts at the Python boundary, done once per call (STYLE.md rule 8).

Kernels take C-contiguous float32/float64 arrays and never raise; everything a user can
get wrong is caught here with a message that names the shapes involved.
"""
import numpy as np

_F32 = np.dtype(np.float32)
_F64 = np.dtype(np.float64)
_INTP = np.dtype(np.intp)


def compute_dtypes(*dtypes):
    """(kernel dtype, result dtype) for inputs of these dtypes.

    float32 stays float32 and float64 stays float64 (mixed: NumPy's promotion); integer and
    bool input computes in float64, as the reference does. float16 computes in float32 and
    long double in float64, each returned in its own dtype.
    """
    dt = dtypes[0]
    for other in dtypes[1:]:
        if other is not dt:
            dt = np.result_type(*dtypes)
            break
    if dt is _F64 or dt is _F32 or dt == _F64 or dt == _F32:
        return dt, dt
    if dt.kind in "biu":
        return _F64, _F64
    if dt.kind == "f":
        return (_F32 if dt.itemsize < 4 else _F64), dt
    raise TypeError("fastnn computes on real numbers; got an array of dtype %s" % dt)


def as_kernel_array(x, dtype):
    """C-contiguous array of `dtype`, same ndim (0-d too); no copy when `x` already is one
    (read-only is fine: kernels take const memoryviews)."""
    return np.asarray(x, dtype=dtype, order="C")


def finish(out, result_dtype):
    """Cast a kernel's output to the dtype the caller should see."""
    return out if out.dtype == result_dtype else out.astype(result_dtype)


def targets(t, rows, n_classes, y_shape, func):
    """Interpret `t` as the books do: one-hot when t.size == y.size, else class labels.

    Returns ("onehot", (rows, n_classes) float array) or ("labels", (rows,) intp array).
    """
    t = np.asarray(t)
    if t.dtype is _INTP and t.ndim == 1 and t.shape[0] == rows != rows * n_classes \
            and t.flags.c_contiguous:
        return "labels", t  # the common case, no copy (the kernel range-checks labels)
    if t.size == rows * n_classes:
        if t.dtype not in (_F32, _F64):
            t = t.astype(_F64)
        return "onehot", np.ascontiguousarray(t.reshape(rows, n_classes))
    if t.size != rows:
        raise ValueError(
            "%s: t has shape %s, but y has shape %s: t must hold one label per row (%d) "
            "or be one-hot with y's shape" % (func, t.shape, y_shape, rows))
    if t.dtype.kind not in "biu":
        raise TypeError("%s: labels must be integers, got dtype %s (t has shape %s, y has shape %s)"
                        % (func, t.dtype, t.shape, y_shape))
    if t.dtype.kind == "u" and t.dtype.itemsize >= np.dtype(np.intp).itemsize and t.size and t.max() > np.iinfo(np.intp).max:
        raise ValueError("%s: label %d out of range [0, %d)" % (func, t.max(), n_classes))
    return "labels", np.ascontiguousarray(t.reshape(rows), dtype=np.intp)


def bad_labels(t, n_classes, func):
    t = t[(t < 0) | (t >= n_classes)]
    return ValueError("%s: labels must be in [0, %d); got %s" % (func, n_classes, t[:5].tolist()))
