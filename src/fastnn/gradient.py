"""The book's ``common/gradient.py``: central-difference derivatives of any Python ``f``.

Semantics are the book's, exactly: ``h = 1e-4``; ``x`` is perturbed IN PLACE and ``f`` is
called with that same array object (the books pass ``lambda W: self.loss(x, t)``, which
ignores its argument and reads the perturbed params), and every element is restored
exactly afterwards -- also when ``f`` raises. The perturbed values are rounded in ``x``'s
dtype exactly as the book's code stores them::

    x[idx] = float(tmp_val) + h     # double sum, stored in x's dtype
    x[idx] = tmp_val - h            # float32 x: a float32 subtraction (NumPy 2, NEP 50)

The element loop runs in Cython (only ``f`` itself runs Python code). For the books'
nets, ``TwoLayerNet.numerical_gradient`` and ``MultiLayerNet.numerical_gradient`` do not
go through here: they use the fused engine in ``fastnn.nets``, thousands of times faster.
"""
import numpy as np

from ._kernels import _numgrad

# `import *` also gives `np`, as the book's common/gradient.py does
__all__ = ["np", "numerical_diff", "numerical_gradient", "numerical_gradient_2d", "gradient_check"]

_H = 1e-4
_NEP50 = type(np.float32(1) - 1e-4) is np.float32


def numerical_diff(f, x):
    """Central difference ``(f(x + h) - f(x - h)) / (2 h)``, ``h = 1e-4`` (the book's)."""
    h = 1e-4
    return (f(x + h) - f(x - h)) / (2 * h)


def _check_x(x, func):
    if not isinstance(x, np.ndarray):
        raise TypeError("%s: x must be a numpy array (it is perturbed in place), got %s"
                        % (func, type(x).__name__))
    if x.dtype.kind != "f":
        raise TypeError("%s: x must be a floating-point array (it is perturbed in place by "
                        "h = 1e-4), got dtype %s with shape %s; convert it first, e.g. "
                        "x.astype(np.float64)" % (func, x.dtype, x.shape))
    if not x.flags.writeable:
        raise ValueError("%s: x (shape %s, dtype %s) is read-only, but it must be perturbed "
                         "in place; pass a writeable copy (x.copy())" % (func, x.shape, x.dtype))


def _iteration_order(x):
    # np.nditer's default order='K' walks a Fortran-ordered array in memory order;
    # everything else is walked in C order (last axis fastest).
    if x.ndim > 1 and x.flags.f_contiguous and not x.flags.c_contiguous:
        return np.arange(x.ndim - 1, -1, -1, dtype=np.intp)
    return np.arange(x.ndim, dtype=np.intp)


def _python_loop(f, x):
    # float16 / long double: the book's loop, verbatim
    h = 1e-4
    grad = np.zeros_like(x)
    it = np.nditer(x, flags=["multi_index"], op_flags=["readwrite"])
    while not it.finished:
        idx = it.multi_index
        tmp_val = x[idx]
        try:
            x[idx] = float(tmp_val) + h
            fxh1 = f(x)
            x[idx] = tmp_val - h
            fxh2 = f(x)
        finally:
            x[idx] = tmp_val
        try:
            grad[idx] = (fxh1 - fxh2) / (2 * h)
        except (TypeError, ValueError) as e:
            raise TypeError(_numgrad.not_a_scalar(fxh1)) from e
        it.iternext()
    return grad


def numerical_gradient(f, x):
    """Central-difference gradient of ``f`` at ``x``, element by element (the book's).

    Parameters
    ----------
    f : callable
        Called as ``f(x)`` with ``x`` itself (perturbed in place); returns a scalar.
    x : ndarray of float, any shape (0-d and N-d included, any strides)
        Perturbed in place, one element at a time, and restored exactly afterwards
        (also when ``f`` raises).

    Returns
    -------
    grad : ndarray, same shape and dtype as ``x``;
        ``grad[idx] = (f(x[idx] + h) - f(x[idx] - h)) / (2 h)``, ``h = 1e-4``.

    Raises
    ------
    TypeError
        ``x`` is not a NumPy array, or is not floating point (the book's code silently
        returns garbage for integer ``x``).
    ValueError
        ``x`` is read-only.
    """
    _check_x(x, "numerical_gradient")
    grad = np.zeros_like(x)
    if x.size == 0:
        return grad
    if x.dtype not in (np.float64, np.float32) or x.ndim > 64:
        return _python_loop(f, x)
    kind = 0 if x.dtype == np.float64 else 1
    # (an f that returns no real scalar raises TypeError there, saying what f returned;
    # f's own exceptions pass through unchanged, x restored)
    _numgrad.generic_loop(
        f, x, grad,
        np.asarray(x.shape, dtype=np.intp),
        np.asarray(x.strides, dtype=np.intp),
        np.asarray(grad.strides, dtype=np.intp),
        _iteration_order(x),
        x.__array_interface__["data"][0], grad.__array_interface__["data"][0],
        kind, _NEP50)
    return grad


def numerical_gradient_2d(f, X):
    """The book's row-wise variant (ch04 ``gradient_2d.py``).

    A 1-D ``X`` is one vector; for a 2-D ``X``, each row ``X[i]`` (a view) is perturbed in
    place and ``f`` is called with that row.

    Returns
    -------
    grad : ndarray, same shape and dtype as ``X``.
    """
    _check_x(X, "numerical_gradient_2d")
    if X.ndim == 1:
        return numerical_gradient(f, X)
    if X.ndim != 2:
        raise ValueError("numerical_gradient_2d: X must be 1-D or 2-D, got shape %s "
                         "(use numerical_gradient for N-d arrays)" % (X.shape,))
    grad = np.zeros_like(X)
    for idx, x in enumerate(X):
        grad[idx] = numerical_gradient(f, x)
    return grad


# --- gradient check ------------------------------------------------------------------

def gradient_check(network, x, t):
    """The book's gradient check: backprop against the numerical gradient.

    Computes ``network.numerical_gradient(x, t)`` (fastnn's fused engine for its nets)
    and ``network.gradient(x, t)`` (fused backprop), prints for every parameter the mean
    absolute difference as the book does (``W1:1.9e-10``) and returns them as a dict
    ``key -> float``.
    """
    grad_numerical = network.numerical_gradient(x, t)
    grad_backprop = network.gradient(x, t)
    diffs = {}
    for key in grad_numerical.keys():
        diff = np.average(np.abs(grad_backprop[key] - grad_numerical[key]))  # mean |bp - num|
        print(key + ":" + str(diff))
        diffs[key] = diff
    return diffs

