"""The book's ``common/functions.py``, with the same names and semantics, on fastnn's kernels.

Conventions (as in "Deep Learning from Scratch"):

* a 1-D ``y`` is one sample; ``t`` is one-hot when ``t.size == y.size``, labels otherwise;
* ``cross_entropy_error`` adds ``1e-7`` inside the log and averages over the batch;
* ``softmax`` works over the last axis of any ndim, stabilised by the row maximum;
* the result's dtype follows the input: float32 stays float32, float64 stays float64,
  integer input computes in float64.

Kernel functions (``affine``, ``softmax``, ``sigmoid``, the cross-entropies) run with the
GIL released and use ``fastnn.get_num_threads()`` threads; their results do not depend on
the thread count. The one-pass element-wise functions (``relu``, ``tanh``, ...) are NumPy
ufuncs, which are already a single pass over memory.
"""
import numpy as np

from ._kernels import _activations, _linear, _losses
from ._threads import resolve_n_threads
from ._validate import _F32, _F64, as_kernel_array, bad_labels, compute_dtypes, finish, targets

__all__ = [
    "identity_function", "step_function", "sigmoid", "sigmoid_grad", "relu", "relu_grad",
    "tanh", "leaky_relu", "softmax", "sum_squared_error", "mean_squared_error",
    "cross_entropy_error", "softmax_loss", "affine",
]


def _float_input(x):
    x = np.asarray(x)
    dt, res = compute_dtypes(x.dtype)
    return (x if x.dtype == res else x.astype(res)), res


def _scalar_if_0d(out, ndim):
    return out[()] if ndim == 0 else out


# --- activations -------------------------------------------------------------------

def identity_function(x):
    """Return ``x`` itself (the output layer of a regression net)."""
    return x


def step_function(x):
    """1 where ``x > 0``, else 0, as an int array (the book's ``dtype=int``)."""
    return np.array(np.asarray(x) > 0, dtype=int)


def sigmoid(x, n_threads=None):
    """``1 / (1 + exp(-x))`` element-wise; any shape; evaluated in double.

    Large negative ``x`` gives 0 without overflow warnings; NaN stays NaN.
    """
    x = np.asarray(x)
    dt, res = compute_dtypes(x.dtype)
    xc = as_kernel_array(x, dt)
    out = np.empty(xc.shape, dtype=dt)
    _activations.sigmoid(xc.reshape(-1), out.reshape(-1), resolve_n_threads(n_threads))
    return _scalar_if_0d(finish(out, res), x.ndim)


def sigmoid_grad(x):
    """Derivative of the sigmoid: ``(1 - sigmoid(x)) * sigmoid(x)``."""
    s = sigmoid(x)
    return (1.0 - s) * s


def relu(x):
    """``max(0, x)`` element-wise (NaN propagates, as with ``np.maximum``)."""
    x, _ = _float_input(x)
    return np.maximum(0, x)


def relu_grad(x):
    """1 where ``x >= 0`` (1 at 0, as the book), else 0; NaN gives 0."""
    x, res = _float_input(x)
    return (x >= 0).astype(res)


def tanh(x):
    """Hyperbolic tangent (TensorFlow's ``tf.nn.tanh``)."""
    x, _ = _float_input(x)
    return np.tanh(x)


def leaky_relu(x, alpha=0.2):
    """TensorFlow's ``tf.nn.leaky_relu``: ``max(alpha * x, x)``; default ``alpha=0.2``."""
    x, _ = _float_input(x)
    return np.maximum(alpha * x, x)


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
    if _linear.plain_affine_args(x, W, b):
        # the common case (a layer's forward pass): nothing to cast, copy or broadcast
        out = np.empty((x.shape[0], W.shape[1]), dtype=x.dtype)
        _linear.affine(x, W, b, out, resolve_n_threads(n_threads))
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
            if b.ndim > 2 or b.size not in (1, N) or (b.ndim and b.shape[-1] not in (1, N)):
                raise ValueError("affine: b has shape %s, W has shape %s: b must have shape "
                                 "(%d,) or (1, %d)" % (b.shape, W.shape, N, N))
            out_shape = np.broadcast_shapes(out_shape, b.shape)
            b = np.broadcast_to(b.reshape(-1), (N,))
        bc = _affine_operand(b, dt)
    xc = _affine_operand(x if x.ndim == 2 else x.reshape(-1, K), dt)
    out = np.empty((xc.shape[0], N), dtype=dt)
    _linear.affine(xc, _affine_operand(W, dt), bc, out, resolve_n_threads(n_threads))
    if res is not dt:
        out = out.astype(res)
    return out if out.shape == out_shape else out.reshape(out_shape)


# --- softmax and losses --------------------------------------------------------------

def softmax(x, n_threads=None):
    """Softmax over the last axis: ``exp(x - max) / sum(exp(x - max))``, any ndim.

    Stable for logits of any size (no overflow); a row holding NaN or +inf gives NaN,
    exactly as the reference.
    """
    if (type(x) is np.ndarray and x.ndim == 2 and (x.dtype is _F64 or x.dtype is _F32)
            and x.flags.c_contiguous and x.shape[1]):
        out = np.empty(x.shape, dtype=x.dtype)  # the common case: no cast, no copy
        _activations.softmax(x, out, resolve_n_threads(n_threads))
        return out
    x = np.asarray(x)
    if x.ndim == 0:
        raise ValueError("softmax: x must have at least one axis, got a 0-d array")
    dt, res = compute_dtypes(x.dtype)
    n = x.shape[-1]
    if n == 0:
        raise ValueError("softmax: the last axis of x (shape %s) is empty" % (x.shape,))
    xc = as_kernel_array(x, dt)
    out = np.empty(xc.shape, dtype=dt)
    if xc.ndim == 2:
        _activations.softmax(xc, out, resolve_n_threads(n_threads))
    else:
        _activations.softmax(xc.reshape(-1, n), out.reshape(-1, n), resolve_n_threads(n_threads))
    return out if res is dt else out.astype(res)


def _batch_2d(y, func):
    y = np.asarray(y)
    if y.ndim == 1:
        y = y.reshape(1, y.size)
    elif y.ndim != 2:
        raise ValueError("%s: y must be 1-D (one sample) or 2-D (batch, classes), got shape %s"
                         % (func, y.shape))
    if y.shape[0] == 0 or y.shape[1] == 0:
        raise ValueError("%s: y has shape %s; it needs at least one row and one class"
                         % (func, y.shape))
    return y


def _loss(y, t, func, kernel_labels, kernel_onehot, n_threads):
    if (type(y) is np.ndarray and y.ndim == 2 and (y.dtype is _F64 or y.dtype is _F32)
            and y.flags.c_contiguous and y.size):
        yc, res = y, y.dtype  # the common case, checked in a few attribute reads
    else:
        y2 = _batch_2d(y, func)
        dt, res = compute_dtypes(y2.dtype)
        yc = as_kernel_array(y2, dt)
    rows, n = yc.shape
    kind, tc = targets(t, rows, n, np.shape(y), func)
    nt = resolve_n_threads(n_threads)
    if kind == "onehot":
        loss = kernel_onehot(yc, tc, nt)
    else:
        loss, bad = kernel_labels(yc, tc, nt)
        if bad:
            raise bad_labels(tc, n, func)
    return res.type(loss)


def cross_entropy_error(y, t, n_threads=None):
    """Mean cross-entropy ``-sum(log(y[i, t_i] + 1e-7)) / batch``.

    Parameters
    ----------
    y : array, shape (C,) (one sample) or (N, C): probabilities (softmax output)
    t : array, one-hot with y's size, or N integer labels in [0, C)

    Returns a scalar of y's float dtype.
    """
    return _loss(y, t, "cross_entropy_error", _losses.cross_entropy_labels,
                 _losses.cross_entropy_onehot, n_threads)


def softmax_loss(X, t, n_threads=None):
    """``cross_entropy_error(softmax(X), t)`` in one fused pass over X (no softmax array)."""
    return _loss(X, t, "softmax_loss", _losses.softmax_cross_entropy_labels,
                 _losses.softmax_cross_entropy_onehot, n_threads)


def sum_squared_error(y, t):
    """``0.5 * sum((y - t)**2)`` (the book calls it ``mean_squared_error`` in the text)."""
    y, _ = _float_input(y)
    t, _ = _float_input(t)
    try:
        d = y - t
    except ValueError:
        raise ValueError("sum_squared_error: y has shape %s and t has shape %s, which do not "
                         "broadcast" % (y.shape, t.shape)) from None
    return 0.5 * np.sum(d * d)


mean_squared_error = sum_squared_error
