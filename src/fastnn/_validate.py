"""Checks and casts at the Python boundary, done once per call (STYLE.md rule 8).

Kernels take C-contiguous, aligned, native-byte-order float32/float64 arrays and never
raise; everything a user can get wrong is caught here with a message that names the
function, the argument and the shapes involved. The floating-point events a kernel
reports (an exp that overflowed, a log of 0, ...) become NumPy's own RuntimeWarnings here,
under the rules np.errstate sets.
"""
import sys
import warnings

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
        if not dt.isnative:  # big-endian input: a native result, as NumPy's ufuncs give
            dt = dt.newbyteorder("=")
            if dt == _F64 or dt == _F32:
                return (_F64, _F64) if dt == _F64 else (_F32, _F32)
        return (_F32 if dt.itemsize < 4 else _F64), dt
    raise TypeError("fastnn computes on real numbers; got an array of dtype %s" % dt)


def real_array(x, func, name="x"):
    """``x`` as an ndarray of real numbers, with (kernel dtype, result dtype).

    Anything else (None, strings, complex numbers, objects) raises a TypeError that names
    ``func``'s argument ``name`` and what it got.
    """
    a = x if type(x) is np.ndarray else np.asarray(x)
    dt = a.dtype
    if dt is _F64 or dt is _F32:
        return a, dt, dt
    if dt.kind in "biuf":
        kd, rd = compute_dtypes(dt)
        return a, kd, rd
    if dt.kind == "c":
        what = "complex numbers (dtype %s)" % dt
    elif x is None:
        what = "None"
    elif dt.kind == "O" and a.ndim == 0:
        what = "a %s" % type(x).__name__
    else:
        what = "an array of dtype %s" % dt
    raise TypeError("%s: %s must be a real number or an array of real numbers, got %s"
                    % (func, name, what))


def as_kernel_array(x, dtype):
    """C-contiguous, aligned, native-order array of `dtype`, same ndim (0-d too); no copy
    when `x` already is one (read-only is fine: kernels take const memoryviews). A field of
    a packed record array, say, is copied."""
    a = np.asarray(x, dtype=dtype, order="C")
    if not a.flags.aligned:
        a = a.copy()
    return a


def is_kernel_array(a, dtype):
    """True when `a` goes to a kernel as it is: an ndarray of `dtype` (one of the two float
    dtypes, so native order), C-contiguous and aligned."""
    if type(a) is not np.ndarray or a.dtype is not dtype:
        return False
    f = a.flags
    return f.c_contiguous and f.aligned


def finish(out, result_dtype):
    """Cast a kernel's output to the dtype the caller should see."""
    return out if out.dtype == result_dtype else out.astype(result_dtype)


def targets(t, rows, n_classes, y_shape, func):
    """Interpret `t` as the books do: one-hot when t.size == y.size, else class labels.

    Returns ("onehot", (rows, n_classes) float array) or ("labels", (rows,) intp array).
    One-hot targets must have y's shape (any shape of y's size for one sample); labels must
    be integers (the reference raises IndexError for bool or float labels).
    """
    t = t if type(t) is np.ndarray else np.asarray(t)
    if t.dtype is _INTP and t.ndim == 1 and t.shape[0] == rows != rows * n_classes \
            and t.flags.c_contiguous and t.flags.aligned:
        return "labels", t  # the common case, no copy (the kernel range-checks labels)
    if t.size == rows * n_classes and not (n_classes == 1 and t.ndim <= 1 and len(y_shape) == 2):
        # one-hot: y's own shape, or any shape of its size for one sample (the book
        # reshapes both to (1, n)); with one class, a 1-D t is read as labels (the same
        # numbers for valid labels, and invalid ones are caught)
        if not (t.shape == tuple(y_shape) or rows == 1 or len(y_shape) == 1):
            raise ValueError(
                "%s: t has shape %s and y has shape %s: one-hot targets must have y's shape "
                "(or give one class label per row, shape (%d,))" % (func, t.shape, tuple(y_shape), rows))
        if t.dtype.kind not in "biuf":
            raise TypeError("%s: one-hot targets must be numbers, got dtype %s" % (func, t.dtype))
        if t.dtype is not _F32 and t.dtype is not _F64:
            t = t.astype(_F64)
        return "onehot", as_kernel_array(t.reshape(rows, n_classes), t.dtype)
    if t.size != rows:
        raise ValueError(
            "%s: t has shape %s, but y has shape %s: t must hold one label per row (%d) "
            "or be one-hot with y's shape" % (func, t.shape, tuple(y_shape), rows))
    if t.dtype.kind not in "iu":
        raise TypeError("%s: class labels must be integers, got dtype %s (t has shape %s, y "
                        "has shape %s; the book's indexing raises IndexError here)"
                        % (func, t.dtype, t.shape, tuple(y_shape)))
    if t.ndim > 1 and len(y_shape) == 2 and rows > 1:
        # the book's y[np.arange(rows), t] would broadcast t of shape (rows, 1) to (rows, rows)
        # (one row: a (1, 1) label picks the one element, and the book's answer is right)
        raise ValueError("%s: labels have shape %s; give one label per row, shape (%d,)"
                         % (func, t.shape, rows))
    if t.dtype.kind == "u" and t.dtype.itemsize >= _INTP.itemsize and t.size \
            and t.max() > np.iinfo(np.intp).max:
        raise ValueError("%s: label %d out of range [0, %d)" % (func, t.max(), n_classes))
    return "labels", as_kernel_array(t.reshape(rows), _INTP)


def bad_labels(t, n_classes, func):
    t = np.asarray(t)
    t = t[(t < 0) | (t >= n_classes)]
    return ValueError("%s: labels must be in [0, %d); got %s" % (func, n_classes, t[:5].tolist()))


# ---- NumPy's floating-point warnings, raised for what a kernel counted ------------------------

_ERR_KEY = {"overflow": "over", "divide by zero": "divide", "invalid value": "invalid",
            "underflow": "under"}
_ERR_FLAG = {"divide": 1, "over": 2, "under": 4, "invalid": 8}


def fp_event(event, op, stacklevel=3):
    """What NumPy does when `event` ("overflow", "divide by zero", "invalid value") happens
    in `op` ("exp", "log", "divide", "subtract"): np.errstate decides whether to ignore it,
    warn (RuntimeWarning "overflow encountered in exp"), raise FloatingPointError, call the
    np.seterrcall handler, print or log it. `stacklevel` 3 points at the caller of the
    public function that calls this."""
    key = _ERR_KEY[event]
    mode = np.geterr()[key]
    if mode == "ignore":
        return
    msg = "%s encountered in %s" % (event, op)
    if mode == "warn":
        warnings.warn(msg, RuntimeWarning, stacklevel=stacklevel)
    elif mode == "raise":
        raise FloatingPointError(msg)
    elif mode == "call":
        np.geterrcall()(key if key != "over" else "overflow", _ERR_FLAG[key])
    elif mode == "print":
        print("Warning: %s" % msg, file=sys.stdout)
    elif mode == "log":
        np.geterrcall().write("Warning: %s\n" % msg)


# ---- one entry point per dtype ---------------------------------------------------------------

_CYTHON_NAMES = {"float": _F32, "double": _F64}


def by_dtype(kernel):
    """A fused-type kernel's specialisations, looked up once: {dtype: function} (or
    {(dtype, dtype): function} for two fused types). Calling one skips Cython's per-call
    dispatch on the arguments' types, which costs more than a small kernel's work.
    A kernel that dispatches on the dtype itself (no fused types) serves both dtypes."""
    signatures = getattr(kernel, "__signatures__", None)
    if signatures is None:
        return {_F32: kernel, _F64: kernel}
    table = {}
    for key, fn in signatures.items():
        dts = tuple(_CYTHON_NAMES[k] for k in key.split("|"))
        table[dts[0] if len(dts) == 1 else dts] = fn
    return table
