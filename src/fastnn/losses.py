"""The losses of the TensorFlow notes, with Keras's and ``tf.nn``'s names and semantics.

Keras (``tf.keras.losses``, TensorFlow 2.x):

* ``categorical_crossentropy(y_true, y_pred, from_logits=False, label_smoothing=0.0, axis=-1)``
* ``sparse_categorical_crossentropy(y_true, y_pred, from_logits=False, axis=-1)``
* ``binary_crossentropy(y_true, y_pred, from_logits=False, label_smoothing=0.0, axis=-1)``
* ``mean_squared_error(y_true, y_pred)`` (also ``MSE``, ``mse``)

``tf.nn``:

* ``softmax_cross_entropy_with_logits(labels, logits, axis=-1)``
* ``sparse_softmax_cross_entropy_with_logits(labels, logits)``
* ``sigmoid_cross_entropy_with_logits(labels, logits)``

Each returns the per-sample losses, as Keras and TensorFlow do (no reduction): an array
of ``y_pred``'s shape without ``axis`` (element-wise for ``sigmoid_cross_entropy_with_logits``),
in ``y_pred``'s float dtype (float32 stays float32; integers compute in float64). As Keras
does for probabilities (``from_logits=False``), ``y_pred`` is clipped to ``[1e-7, 1 - 1e-7]``
and, for ``categorical_crossentropy``, first divided by its sum over ``axis``;
``sparse_categorical_crossentropy`` clips and then normalises (Keras takes the log of the
clipped probabilities as logits); ``binary_crossentropy`` adds ``1e-7`` inside both logs
(Keras 2's formula). With ``from_logits=True`` the softmax / sigmoid is fused into the loss,
computed stably (``log_softmax = x - max - log(sum(exp(x - max)))``;
``max(x, 0) - x * z + log(1 + exp(-|x|))``).

Gradients: every loss ``f`` has ``f_grad`` with the same arguments, returning the gradient
of the *sum* of the per-sample losses with respect to ``y_pred`` (or ``logits``), an array
of its shape. Each sample's loss depends on its own row only, so row ``i`` of the result is
the gradient of sample ``i``'s loss; for the batch mean (Keras's default reduction) divide
by the number of samples. The gradient of a clipped probability is 0 where the clip holds
it at a bound, as TensorFlow's ``clip_by_value`` passes no gradient there.

All of them run on fastnn's loss kernels (``fastnn._kernels._losses``: the same
cross-entropy kernel as both books' losses, with Keras's clip and normalisation as its mode,
and the point-wise loss kernel), with the GIL released.
"""
import numpy as np

from ._kernels import _losses
from ._threads import resolve_n_threads
from ._validate import _F32, _F64, _INTP, as_kernel_array, by_dtype, compute_dtypes, finish, real_array

__all__ = [
    "categorical_crossentropy", "sparse_categorical_crossentropy", "binary_crossentropy",
    "mean_squared_error", "MSE", "mse",
    "softmax_cross_entropy_with_logits", "sparse_softmax_cross_entropy_with_logits",
    "sigmoid_cross_entropy_with_logits",
    "categorical_crossentropy_grad", "sparse_categorical_crossentropy_grad",
    "binary_crossentropy_grad", "mean_squared_error_grad",
    "softmax_cross_entropy_with_logits_grad", "sparse_softmax_cross_entropy_with_logits_grad",
    "sigmoid_cross_entropy_with_logits_grad",
]

_CE_LABELS = by_dtype(_losses.cross_entropy_labels)
_CE_TARGETS = by_dtype(_losses.cross_entropy_targets)
_GRAD_LABELS = by_dtype(_losses.cross_entropy_grad_labels)
_GRAD_TARGETS = by_dtype(_losses.cross_entropy_grad_targets)
_POINTWISE = by_dtype(_losses.pointwise_loss)
_POINTWISE_GRAD = by_dtype(_losses.pointwise_loss_grad)

_EPSILON = 1e-7   # Keras's backend.epsilon()


# ---- the boundary: shapes, axis, dtypes --------------------------------------------------------

def _pred(y_pred, func, name):
    """(array, kernel dtype, result dtype) for predictions / logits, at least 1-D."""
    y, kd, rd = real_array(y_pred, func, name)
    if y.ndim == 0:
        raise ValueError("%s: %s must have at least one axis (the classes), got a scalar" % (func, name))
    return y, kd, rd


def _axis(axis, ndim, func):
    if isinstance(axis, bool) or not hasattr(axis, "__index__"):
        raise TypeError("%s: axis must be an integer, got %r" % (func, axis))
    a = int(axis)
    if not -ndim <= a < ndim:
        raise ValueError("%s: axis %d is out of range for an array of %d dimensions" % (func, a, ndim))
    return a % ndim


def _rows(a, axis, kd):
    """`a` with `axis` moved last, as C-contiguous (rows, n) in dtype kd; and the rows' shape."""
    if axis != a.ndim - 1:
        a = np.moveaxis(a, axis, -1)
    if a.ndim == 2 and a.dtype is kd and a.flags.c_contiguous and a.flags.aligned:
        return a, a.shape[:1]      # the common case: no copy, no reshape
    rows = 1
    for d in a.shape[:-1]:
        rows *= d                  # (not reshape(-1, n): ambiguous when n == 0)
    return as_kernel_array(a, kd).reshape(rows, a.shape[-1]), a.shape[:-1]


def _classes(y, ax, func, yname):
    """A per-sample loss needs classes: an empty class axis with samples left is an error
    (the kernels would have nothing to write; the book's NumPy gives -0.0, NaN or raises,
    depending on the loss)."""
    if y.shape[ax] == 0 and y.size == 0 and any(d for i, d in enumerate(y.shape) if i != ax):
        raise ValueError("%s: %s has shape %s: its class axis (axis %d) is empty"
                         % (func, yname, y.shape, ax))


def _per_sample(out, shape, rd):
    out = finish(out, rd).reshape(shape)
    return out[()] if out.ndim == 0 else out


def _smoothing(label_smoothing, func):
    s = float(label_smoothing)
    if not 0.0 <= s <= 1.0:
        raise ValueError("%s: label_smoothing must be in [0, 1], got %r" % (func, label_smoothing))
    return s


def _targets_like(y_true, y, func, tname, yname):
    t, _, _ = real_array(y_true, func, tname)
    if t.shape != y.shape:
        raise ValueError("%s: %s has shape %s but %s has shape %s; they must match"
                         % (func, tname, t.shape, yname, y.shape))
    return t


def _labels(y_true, y, axis, func, tname, yname):
    """Integer class labels of shape y.shape without axis (a trailing axis of 1 is squeezed,
    as Keras does), as an intp array; float labels with whole values are taken (Keras casts
    them to int64)."""
    t = y_true if type(y_true) is np.ndarray else np.asarray(y_true)
    want = y.shape[:axis] + y.shape[axis + 1:]
    if t.dtype is _INTP and t.shape == want and t.ndim == 1 and t.flags.c_contiguous and t.flags.aligned:
        return t                   # the common case: range-checked by the kernel
    if t.shape != want and t.shape == want + (1,):
        t = t.reshape(want)
    if t.shape != want:
        raise ValueError("%s: %s has shape %s but %s has shape %s: give one class label per "
                         "sample, shape %s" % (func, tname, t.shape, yname, y.shape, want))
    if t.dtype.kind == "f":
        if not np.all(np.isfinite(t)) or np.any(t != np.trunc(t)):
            raise ValueError("%s: %s holds values that are not class indices: %s"
                             % (func, tname, t[(~np.isfinite(t)) | (t != np.trunc(t))][:5].tolist()))
    elif t.dtype.kind not in "iu":
        raise TypeError("%s: %s must hold integer class labels, got dtype %s" % (func, tname, t.dtype))
    return as_kernel_array(t.reshape(-1), _INTP)


def _label_error(lab, n, func, tname):
    bad = lab[(lab < 0) | (lab >= n)]
    return ValueError("%s: %s must be in [0, %d); got %s" % (func, tname, n, bad[:5].tolist()))


# ---- categorical: (rows, n) targets -------------------------------------------------------------

def _categorical(y_true, y_pred, mode, smoothing, axis, func, tname, yname, grad):
    y, kd, rd = _pred(y_pred, func, yname)
    t = _targets_like(y_true, y, func, tname, yname)
    ax = _axis(axis, y.ndim, func)
    if not grad:
        _classes(y, ax, func, yname)
    yk, shape = _rows(y, ax, kd)
    tk, _ = _rows(t, ax, _F64 if t.dtype.kind in "biu" else compute_dtypes(t.dtype)[0])
    nt = resolve_n_threads(None)
    if grad:
        out = np.empty(yk.shape, dtype=kd)
        _GRAD_TARGETS[kd, tk.dtype](yk, tk, mode, smoothing, 1.0, out, nt)
        out = finish(out, rd).reshape(shape + (yk.shape[1],))
        return np.moveaxis(out, -1, ax)
    out = np.empty(yk.shape[0], dtype=kd)
    _CE_TARGETS[kd, tk.dtype](yk, tk, mode, _losses.SOFT, smoothing, out, nt)
    return _per_sample(out, shape, rd)


def categorical_crossentropy(y_true, y_pred, from_logits=False, label_smoothing=0.0, axis=-1):
    """Keras's categorical cross-entropy, per sample.

    Parameters
    ----------
    y_true : array_like, y_pred's shape: one-hot (or soft) targets
    y_pred : array_like, shape (..., C) (classes on `axis`): probabilities, or logits with
        ``from_logits=True``
    from_logits : bool
    label_smoothing : float in [0, 1]: targets become ``y_true * (1 - s) + s / C``
    axis : int, the classes' axis

    Returns
    -------
    array of y_pred's shape without `axis`:
    ``-sum(y_true * log(clip(y_pred / sum(y_pred), 1e-7, 1 - 1e-7)), axis)``, or with logits
    ``-sum(y_true * log_softmax(y_pred), axis)``.
    """
    func = "categorical_crossentropy"
    mode = _losses.LOGITS if from_logits else _losses.NORM_CLIP
    return _categorical(y_true, y_pred, mode, _smoothing(label_smoothing, func), axis, func,
                        "y_true", "y_pred", False)


def categorical_crossentropy_grad(y_true, y_pred, from_logits=False, label_smoothing=0.0, axis=-1):
    """Gradient of ``categorical_crossentropy(...).sum()`` w.r.t. y_pred (y_pred's shape):
    with logits ``softmax(y_pred) * sum(t) - t``, t the smoothed targets."""
    func = "categorical_crossentropy_grad"
    mode = _losses.LOGITS if from_logits else _losses.NORM_CLIP
    return _categorical(y_true, y_pred, mode, _smoothing(label_smoothing, func), axis, func,
                        "y_true", "y_pred", True)


def softmax_cross_entropy_with_logits(labels, logits, axis=-1, name=None):
    """``tf.nn.softmax_cross_entropy_with_logits``: ``-sum(labels * log_softmax(logits), axis)``
    per sample (labels: a probability distribution per sample, logits' shape). `name` is
    accepted for TensorFlow's signature and ignored."""
    return _categorical(labels, logits, _losses.LOGITS, 0.0, axis,
                        "softmax_cross_entropy_with_logits", "labels", "logits", False)


def softmax_cross_entropy_with_logits_grad(labels, logits, axis=-1, name=None):
    """Gradient of ``softmax_cross_entropy_with_logits(...).sum()`` w.r.t. logits:
    ``softmax(logits) * sum(labels, axis) - labels``."""
    return _categorical(labels, logits, _losses.LOGITS, 0.0, axis,
                        "softmax_cross_entropy_with_logits_grad", "labels", "logits", True)


# ---- sparse: class labels -------------------------------------------------------------------

def _sparse(y_true, y_pred, mode, axis, func, tname, yname, grad):
    y, kd, rd = _pred(y_pred, func, yname)
    ax = _axis(axis, y.ndim, func)
    _classes(y, ax, func, yname)       # (no label is a class of an empty axis)
    lab = _labels(y_true, y, ax, func, tname, yname)
    yk, shape = _rows(y, ax, kd)
    n = yk.shape[1]
    nt = resolve_n_threads(None)
    if grad:
        out = np.empty(yk.shape, dtype=kd)
        bad = _GRAD_LABELS[kd](yk, lab, mode, 1.0, out, nt)
        if bad:
            raise _label_error(lab, n, func, tname)
        out = finish(out, rd).reshape(shape + (n,))
        return np.moveaxis(out, -1, ax)
    out = np.empty(yk.shape[0], dtype=kd)
    _, bad, _, _ = _CE_LABELS[kd](yk, lab, mode, out, nt)
    if bad:
        raise _label_error(lab, n, func, tname)
    return _per_sample(out, shape, rd)


def sparse_categorical_crossentropy(y_true, y_pred, from_logits=False, axis=-1):
    """Keras's sparse categorical cross-entropy, per sample.

    y_true: integer class labels, y_pred's shape without `axis` (or with a trailing 1);
    y_pred: probabilities, or logits with ``from_logits=True``. Probabilities are clipped to
    [1e-7, 1 - 1e-7] and normalised: ``-log(clip(p_t)) + log(sum(clip(p)))``; logits give
    ``-log_softmax(y_pred)[y_true]``.
    """
    mode = _losses.LOGITS if from_logits else _losses.CLIP_NORM
    return _sparse(y_true, y_pred, mode, axis, "sparse_categorical_crossentropy", "y_true", "y_pred", False)


def sparse_categorical_crossentropy_grad(y_true, y_pred, from_logits=False, axis=-1):
    """Gradient of ``sparse_categorical_crossentropy(...).sum()`` w.r.t. y_pred: with logits
    ``softmax(y_pred) - one_hot(y_true)``."""
    mode = _losses.LOGITS if from_logits else _losses.CLIP_NORM
    return _sparse(y_true, y_pred, mode, axis, "sparse_categorical_crossentropy_grad", "y_true",
                   "y_pred", True)


def sparse_softmax_cross_entropy_with_logits(labels, logits, name=None):
    """``tf.nn.sparse_softmax_cross_entropy_with_logits``: ``-log_softmax(logits)[labels]``
    per sample; labels: integers of logits' shape without the last axis."""
    return _sparse(labels, logits, _losses.LOGITS, -1, "sparse_softmax_cross_entropy_with_logits",
                   "labels", "logits", False)


def sparse_softmax_cross_entropy_with_logits_grad(labels, logits, name=None):
    """Gradient of ``sparse_softmax_cross_entropy_with_logits(...).sum()`` w.r.t. logits:
    ``softmax(logits) - one_hot(labels)``."""
    return _sparse(labels, logits, _losses.LOGITS, -1, "sparse_softmax_cross_entropy_with_logits_grad",
                   "labels", "logits", True)


# ---- point-wise: binary cross-entropy, MSE ------------------------------------------------------

def _pointwise(kind, y_true, y_pred, smoothing, axis, func, tname, yname, grad, mean=True):
    y, kd, rd = _pred(y_pred, func, yname)
    t = _targets_like(y_true, y, func, tname, yname)
    ax = _axis(axis, y.ndim, func)
    if mean and not grad:
        _classes(y, ax, func, yname)
    if mean:
        yk, shape = _rows(y, ax, kd)
        tk, _ = _rows(t, ax, kd)
    else:   # element-wise: every element is a row of one
        yk, tk, shape = as_kernel_array(y, kd).reshape(-1, 1), as_kernel_array(t, kd).reshape(-1, 1), y.shape
    n = yk.shape[1]
    if grad:
        out = np.empty(yk.size, dtype=kd)
        _POINTWISE_GRAD[kd](kind, yk.reshape(-1), tk.reshape(-1), _EPSILON, smoothing, float(n), 1.0, out,
                            resolve_n_threads(None))
        if not mean:
            return finish(out, rd).reshape(shape)
        out = finish(out, rd).reshape(shape + (n,))
        return np.moveaxis(out, -1, ax)
    out = np.empty(yk.shape[0], dtype=kd)
    _POINTWISE[kd](kind, yk, tk, _EPSILON, smoothing, out, resolve_n_threads(None))
    return _per_sample(out, shape, rd)


def binary_crossentropy(y_true, y_pred, from_logits=False, label_smoothing=0.0, axis=-1):
    """Keras's binary cross-entropy: the mean over `axis` of
    ``-(t log(c + 1e-7) + (1 - t) log(1 - c + 1e-7))``, c = clip(y_pred, 1e-7, 1 - 1e-7)
    (Keras 2's formula), or with logits of ``max(x, 0) - x t + log(1 + exp(-|x|))``;
    t = ``y_true * (1 - s) + s / 2`` with label smoothing s. y_true: y_pred's shape."""
    func = "binary_crossentropy"
    kind = _losses.BCE_LOGITS if from_logits else _losses.BCE_KERAS
    return _pointwise(kind, y_true, y_pred, _smoothing(label_smoothing, func), axis, func,
                      "y_true", "y_pred", False)


def binary_crossentropy_grad(y_true, y_pred, from_logits=False, label_smoothing=0.0, axis=-1):
    """Gradient of ``binary_crossentropy(...).sum()`` w.r.t. y_pred: with logits
    ``(sigmoid(y_pred) - t) / n``, n the length of `axis`."""
    func = "binary_crossentropy_grad"
    kind = _losses.BCE_LOGITS if from_logits else _losses.BCE_KERAS
    return _pointwise(kind, y_true, y_pred, _smoothing(label_smoothing, func), axis, func,
                      "y_true", "y_pred", True)


def sigmoid_cross_entropy_with_logits(labels=None, logits=None, name=None):
    """``tf.nn.sigmoid_cross_entropy_with_logits``, element-wise (no reduction):
    ``max(x, 0) - x * z + log(1 + exp(-|x|))``, x = logits, z = labels (logits' shape)."""
    return _pointwise(_losses.BCE_LOGITS, labels, logits, 0.0, -1,
                      "sigmoid_cross_entropy_with_logits", "labels", "logits", False, mean=False)


def sigmoid_cross_entropy_with_logits_grad(labels=None, logits=None, name=None):
    """Gradient of ``sigmoid_cross_entropy_with_logits(...).sum()`` w.r.t. logits:
    ``sigmoid(logits) - labels``."""
    return _pointwise(_losses.BCE_LOGITS, labels, logits, 0.0, -1,
                      "sigmoid_cross_entropy_with_logits_grad", "labels", "logits", True, mean=False)


def mean_squared_error(y_true, y_pred):
    """Keras's ``MSE``: ``mean(square(y_pred - y_true), axis=-1)`` per sample."""
    return _pointwise(_losses.MSE, y_true, y_pred, 0.0, -1, "mean_squared_error", "y_true",
                      "y_pred", False)


def mean_squared_error_grad(y_true, y_pred):
    """Gradient of ``mean_squared_error(...).sum()`` w.r.t. y_pred: ``2 (y_pred - y_true) / n``."""
    return _pointwise(_losses.MSE, y_true, y_pred, 0.0, -1, "mean_squared_error_grad", "y_true",
                      "y_pred", True)


MSE = mse = mean_squared_error
