"""The book's ``common/functions.py``, with the same names and semantics, on fastnn's kernels.

Conventions (as in "Deep Learning from Scratch"):

* a 1-D ``y`` is one sample; ``t`` is one-hot when ``t.size == y.size`` (then it must have
  ``y``'s shape), integer class labels otherwise;
* ``cross_entropy_error`` adds ``1e-7`` inside the log and averages over the batch;
* ``softmax`` works over the last axis of any ndim, stabilised by the row maximum;
* the result's dtype follows the input: float32 stays float32, float64 stays float64,
  integer input computes in float64;
* where NumPy would warn (``exp`` overflowing in ``sigmoid``, ``inf - inf`` in ``softmax``,
  ``log`` of 0 or of a negative number in ``cross_entropy_error``), the same
  RuntimeWarning is raised, under the rules ``np.errstate`` sets.

Every function but ``tanh`` (NumPy's ufunc: there is no accurate vectorised tanh in
fastnn's C yet) and ``sum_squared_error`` runs one kernel of ``fastnn._kernels`` with the GIL
released, on ``fastnn.get_num_threads()`` threads when the work pays for them; results do
not depend on the thread count.
"""
import math

import numpy as np

from ._kernels import _activations, _linear, _losses
from ._threads import resolve_n_threads
from ._validate import (_F32, _F64, as_kernel_array, bad_labels, by_dtype, compute_dtypes, finish,
                        fp_event, is_kernel_array, real_array, targets)

# `from fastnn.functions import *` gives what the book's `from common.functions import *`
# gives: its functions and `np` (the book's scripts use np through that import).
__all__ = [
    "np", "identity_function", "step_function", "sigmoid", "sigmoid_grad", "relu", "relu_grad",
    "tanh", "leaky_relu", "softmax", "sum_squared_error", "mean_squared_error",
    "cross_entropy_error", "softmax_loss", "affine",
]

_SIGMOID = by_dtype(_activations.sigmoid)
_RELU = by_dtype(_activations.relu)
_RELU_GRAD = by_dtype(_activations.relu_grad)
_LEAKY = by_dtype(_activations.leaky_relu)
_SOFTMAX = by_dtype(_activations.softmax)
_CE_LABELS = by_dtype(_losses.cross_entropy_labels)
_CE_TARGETS = by_dtype(_losses.cross_entropy_targets)


def _elementwise(kernel, x, func, *args, n_threads=None):
    """(result, kernel's return value) of an element-wise kernel over any shape."""
    if type(x) is np.ndarray and (x.dtype is _F64 or x.dtype is _F32) and x.flags.c_contiguous \
            and x.flags.aligned:
        xc, res = x, x.dtype  # the common case: no cast, no copy
    else:
        xa, dt, res = real_array(x, func)
        xc = as_kernel_array(xa, dt)
    out = np.empty(xc.shape, dtype=xc.dtype)
    r = kernel[xc.dtype](xc.reshape(-1), out.reshape(-1), *args, resolve_n_threads(n_threads))
    out = finish(out, res)
    return (out[()] if out.ndim == 0 else out), r


# --- activations -------------------------------------------------------------------

def identity_function(x):
    """Return ``x`` itself (the output layer of a regression net)."""
    return x


def step_function(x):
    """1 where ``x > 0``, else 0, as an int array (the book's ``dtype=int``)."""
    try:
        return np.array(np.asarray(x) > 0, dtype=int)
    except TypeError:   # None, strings, complex numbers: NumPy's message names no argument
        what = "None" if x is None else "an array of dtype %s" % np.asarray(x).dtype \
            if isinstance(x, np.ndarray) else "a %s" % type(x).__name__
        raise TypeError("step_function: x must be a real number or an array of real numbers, "
                        "got %s" % what) from None


def sigmoid(x, n_threads=None):
    """``1 / (1 + exp(-x))`` element-wise, any shape.

    Parameters
    ----------
    x : array_like of real numbers, any shape
    n_threads : int, optional
        Threads to use (default ``fastnn.get_num_threads()``); results do not depend on it.

    Returns
    -------
    array of x's shape, in x's float dtype (integers compute in float64). Large negative
    ``x`` gives 0 (with NumPy's "overflow encountered in exp" warning); NaN stays NaN.
    """
    out, overflow = _elementwise(_SIGMOID, x, "sigmoid", n_threads=n_threads)
    if overflow:
        fp_event("overflow", "exp")
    return out


def sigmoid_grad(x):
    """Derivative of the sigmoid: ``(1 - sigmoid(x)) * sigmoid(x)``."""
    s = sigmoid(x)
    return (1.0 - s) * s


def relu(x):
    """``max(0, x)`` element-wise (NaN propagates, as with ``np.maximum``)."""
    return _elementwise(_RELU, x, "relu")[0]


def relu_grad(x):
    """1 where ``x >= 0`` (1 at 0, as the book), else 0; NaN gives 0. An array always (0-d
    for 0-d x: the book fills ``np.zeros_like(x)``)."""
    out = _elementwise(_RELU_GRAD, x, "relu_grad")[0]
    out = out if isinstance(out, np.ndarray) else np.asarray(out)
    if isinstance(x, np.ndarray) and x.dtype.kind == "f" and not x.dtype.isnative:
        out = out.astype(x.dtype)  # zeros_like(x) keeps a big-endian x's byte order
    return out


def tanh(x):
    """Hyperbolic tangent (TensorFlow's ``tf.nn.tanh``)."""
    xa, dt, res = real_array(x, "tanh")
    return np.tanh(xa if xa.dtype == res else xa.astype(res))


def leaky_relu(x, alpha=0.2):
    """TensorFlow's ``tf.nn.leaky_relu``: ``max(alpha * x, x)``; default ``alpha=0.2``."""
    return _elementwise(_LEAKY, x, "leaky_relu", float(alpha))[0]


# --- affine ------------------------------------------------------------------------

def _affine_operand(a, dt):
    # the GEMM reads plain C arrays: C-contiguous, native and aligned (an unaligned view,
    # e.g. a field of a packed record array, is copied)
    a = as_kernel_array(a, dt)
    return a if a.flags.aligned else a.copy()


def affine(x, W, b=None, n_threads=None):
    """``x @ W + b`` in one kernel call (fastnn's blocked GEMM with the bias fused in).

    Parameters
    ----------
    x : array, shape (K,), (M, K) or (..., K)
    W : array, shape (K, N)
    b : array of shape (N,) or (1, N), or None
    n_threads : int, optional
        Threads to use (default ``fastnn.get_num_threads()``); results do not depend on it.

    Returns
    -------
    out : array, shape (N,), (M, N) or (..., N), in the inputs' promoted float dtype
        (integer inputs compute in float64).
    """
    # the common case (a layer's forward pass): nothing to cast, copy or broadcast; the
    # check and the output's allocation in C
    out = _linear.affine_new(x, W, b, resolve_n_threads(n_threads))
    if out is not None:
        return out
    x = np.asarray(x)
    W = np.asarray(W)
    if W.ndim != 2:
        raise ValueError("affine: W must be 2-D (K, N), got shape %s" % (W.shape,))
    K, N = W.shape
    if x.ndim == 0 or x.shape[-1] != K:
        raise ValueError("affine: x has shape %s and W has shape %s: x.shape[-1] must equal "
                         "W.shape[0]" % (x.shape, W.shape))
    out_shape = x.shape[:-1] + (N,)
    if b is None:
        dt, res = compute_dtypes(x.dtype, W.dtype)
        bc = None
    else:
        b = np.asarray(b)
        dt, res = compute_dtypes(x.dtype, W.dtype, b.dtype)
        if b.shape != (N,):  # (1, N) biases (nnfs) and scalars broadcast as NumPy does
            if not ((b.size == 1 and b.ndim <= 2) or b.shape == (1, N)):
                hint = ""
                if b.size == N and b.ndim == 2:
                    hint = " (a bias of shape %s does not add one number per output column)" % (b.shape,)
                raise ValueError("affine: b has shape %s, W has shape %s: b must have shape "
                                 "(%d,) or (1, %d)%s" % (b.shape, W.shape, N, N, hint))
            out_shape = np.broadcast_shapes(out_shape, b.shape)
            b = np.broadcast_to(b.reshape(-1), (N,))
        bc = _affine_operand(b, dt)
    # (rows, K); an explicit row count, since reshape(-1, 0) cannot infer it
    xc = _affine_operand(x if x.ndim == 2 else x.reshape(math.prod(x.shape[:-1]), K), dt)
    out = np.empty((xc.shape[0], N), dtype=dt)
    _linear.affine(xc, _affine_operand(W, dt), bc, out, resolve_n_threads(n_threads))
    if res is not dt:
        out = out.astype(res)
    return out if out.shape == out_shape else out.reshape(out_shape)


# --- softmax and losses --------------------------------------------------------------

def softmax(x, n_threads=None):
    """Softmax over the last axis: ``exp(x - max) / sum(exp(x - max))``, any ndim.

    Parameters
    ----------
    x : array_like, shape (..., C), C >= 1
    n_threads : int, optional

    Returns
    -------
    array of x's shape and float dtype. Stable for logits of any size (no overflow); a row
    holding NaN gives NaN, and a row whose maximum is +-inf gives NaN with NumPy's
    "invalid value encountered in subtract" warning, exactly as the reference.
    """
    if type(x) is np.ndarray and x.ndim == 2 and (x.dtype is _F64 or x.dtype is _F32) \
            and x.flags.c_contiguous and x.flags.aligned and x.shape[1]:
        xc, res = x, x.dtype  # the common case: no cast, no copy
    else:
        xa, dt, res = real_array(x, "softmax")
        if xa.ndim == 0:
            raise ValueError("softmax: x must have at least one axis, got a 0-d array")
        if xa.shape[-1] == 0:
            raise ValueError("softmax: the last axis of x (shape %s) is empty" % (xa.shape,))
        xc = as_kernel_array(xa, dt)
    n = xc.shape[-1]
    out = np.empty(xc.shape, dtype=xc.dtype)
    if xc.ndim == 2:
        bad = _SOFTMAX[xc.dtype](xc, out, resolve_n_threads(n_threads))
    else:
        bad = _SOFTMAX[xc.dtype](xc.reshape(-1, n), out.reshape(-1, n), resolve_n_threads(n_threads))
    if bad:
        fp_event("invalid value", "subtract")
    return finish(out, res)


def _batch_2d(y, func, name="y"):
    """(2-D kernel array, result dtype) for the books' y: 1-D is one sample."""
    if type(y) is np.ndarray and y.ndim == 2 and (y.dtype is _F64 or y.dtype is _F32) \
            and y.flags.c_contiguous and y.flags.aligned and y.size:
        return y, y.dtype  # the common case, checked in a few attribute reads
    ya, dt, res = real_array(y, func, name)
    if ya.ndim == 1:
        ya = ya.reshape(1, ya.size)
    elif ya.ndim != 2:
        raise ValueError("%s: %s must be 1-D (one sample) or 2-D (batch, classes), got shape %s"
                         % (func, name, ya.shape))
    if ya.shape[0] == 0 or ya.shape[1] == 0:
        raise ValueError("%s: %s has shape %s; it needs at least one row and one class"
                         % (func, name, ya.shape))
    return as_kernel_array(ya, dt), res


def _cross_entropy(y, t, func, mode, n_threads):
    """The book's batch mean of -log(p_t + 1e-7); `mode`: SHIFT (probabilities) or
    LOGITS_SHIFT (softmax of scores, fused)."""
    yc, res = _batch_2d(y, func, "X" if mode == _losses.LOGITS_SHIFT else "y")
    rows, n = yc.shape
    kind, tc = targets(t, rows, n, np.shape(y), func)
    nt = resolve_n_threads(n_threads)
    if kind == "onehot":
        total, log0, logneg = _CE_TARGETS[yc.dtype, tc.dtype](yc, tc, mode, _losses.ARGMAX, 0.0,
                                                               None, nt)
    else:
        total, bad, log0, logneg = _CE_LABELS[yc.dtype](yc, tc, mode, None, nt)
        if bad:
            raise bad_labels(tc, n, func)
    if log0:
        fp_event("divide by zero", "log", stacklevel=4)
    if logneg:
        fp_event("invalid value", "log", stacklevel=4)
    return res.type(total / rows)


def cross_entropy_error(y, t, n_threads=None):
    """Mean cross-entropy ``-sum(log(y[i, t_i] + 1e-7)) / batch``.

    Parameters
    ----------
    y : array_like, shape (C,) (one sample) or (N, C): probabilities (softmax output)
    t : array_like, one-hot with y's shape, or N integer labels in [0, C)
    n_threads : int, optional

    Returns
    -------
    scalar of y's float dtype (NumPy scalar).

    Raises
    ------
    ValueError
        t's shape fits neither reading (naming both shapes), labels outside [0, C).
    TypeError
        labels that are not integers (bool or float labels: the book raises IndexError).
    """
    return _cross_entropy(y, t, "cross_entropy_error", _losses.SHIFT, n_threads)


def softmax_loss(X, t, n_threads=None):
    """``cross_entropy_error(softmax(X), t)`` in one fused pass over X (no softmax array),
    with the same bits as the two calls. X: shape (C,) or (N, C) scores; t as in
    ``cross_entropy_error``."""
    return _cross_entropy(X, t, "softmax_loss", _losses.LOGITS_SHIFT, n_threads)


def sum_squared_error(y, t):
    """``0.5 * sum((y - t)**2)`` (the book calls it ``mean_squared_error`` in the text)."""
    ya, _, ry = real_array(y, "sum_squared_error", "y")
    ta, _, rt = real_array(t, "sum_squared_error", "t")
    ya = ya if ya.dtype == ry else ya.astype(ry)
    ta = ta if ta.dtype == rt else ta.astype(rt)
    try:
        d = ya - ta
    except ValueError:
        raise ValueError("sum_squared_error: y has shape %s and t has shape %s, which do not "
                         "broadcast" % (ya.shape, ta.shape)) from None
    return 0.5 * np.sum(d * d)


mean_squared_error = sum_squared_error
