"""The final API of "Neural Networks from Scratch in Python" (nnfs), on fastnn's kernels.

``from fastnn.nnfs import *`` replaces the book's class definitions: the same names,
signatures, defaults, attributes (``.output``, ``.dinputs``, ``.dweights``,
``weight_momentums``, ``weight_cache``, ...) and numbers (tests/reference_nnfs.py is the
NumPy oracle), with each layer step done by one kernel of fastnn's library, the same
kernels the dlfs classes use: ``_linear`` (the dense layer's GEMM), ``_activations``
(ReLU, softmax, sigmoid, argmax), ``_losses`` (the cross-entropies with nnfs's clip, the
point-wise losses, the L1/L2 penalty) and ``_optimizers`` (nnfs's update rules).

Layers are ordinary picklable Python objects holding NumPy arrays, so ``Model.save``
(deepcopy + ``__dict__`` edits + pickle) works as in the book. Arrays of one float dtype
(float32 or float64, C-contiguous) go straight to the kernels; anything else (lists,
integers, mixed dtypes, Fortran order, strided or unaligned arrays) is cast once at the
boundary with NumPy's dtype rules; shapes the book's expressions would not accept raise a
ValueError naming them.

``nnfs.init()``: every chapter calls it; it patches ``np.dot`` to compute in float64 and
return float32 (and makes ``np.zeros``, ``np.eye`` and ``np.random.randn`` default to
float32). While ``np.dot`` is nnfs's patched one, the dense layers here compute the same
way (float64 accumulation, result rounded to float32), so chapter code gets the book's
float32 numbers. ``fastnn.nnfs.init`` does what ``nnfs.init`` does, with the same
signature, for code that should not depend on the nnfs package.

``from fastnn.nnfs import *`` also gives what a chapter's header imports: ``np``, ``nnfs``
(this module: ``nnfs.init()`` works), ``spiral_data``, ``vertical_data`` and ``sine_data``.

Two conveniences over the final chapter, so chapter-style code runs too: ``forward``'s
``training`` argument is optional (``False``; ``True`` for ``Layer_Dropout``, which always
dropped before the Model chapter), ``Loss.calculate`` / ``Accuracy.calculate`` work
before any ``new_pass()``, and ``Loss.regularization_loss(layer)`` (chapters 14-17) works
beside the final ``regularization_loss()``.
"""
import copy
import pickle
import sys as _sys
from sys import getrefcount as _getrefcount

import numpy as np

from ._kernels import _activations, _linear, _losses
from ._kernels import _optimizers as _opt
from ._threads import resolve_n_threads
from ._validate import (_F32, _F64, _INTP, as_kernel_array, by_dtype, compute_dtypes, finish,
                        fp_event, real_array)
from .optimizer import (_check_param, _kernel_grad, _kernel_state, _order_of, _run_serial,
                        _run_updates, _working_copy)
from . import datasets  # noqa: F401 - nnfs.datasets.spiral_data(...) works on this module too
from .datasets import sine_data, spiral_data, vertical_data

# A chapter script starts `import numpy as np; import nnfs; from nnfs.datasets import
# spiral_data; nnfs.init()`: `from fastnn.nnfs import *` gives those names too (``nnfs``
# is this module, whose ``init`` is nnfs's), so it replaces the imports and the classes.
nnfs = _sys.modules[__name__]

__all__ = [
    "np", "nnfs", "spiral_data", "vertical_data", "sine_data",
    "Layer_Dense", "Layer_Dropout", "Layer_Input",
    "Activation_ReLU", "Activation_Softmax", "Activation_Sigmoid", "Activation_Linear",
    "Activation_Softmax_Loss_CategoricalCrossentropy",
    "Loss", "Loss_CategoricalCrossentropy", "Loss_BinaryCrossentropy",
    "Loss_MeanSquaredError", "Loss_MeanAbsoluteError",
    "Optimizer_SGD", "Optimizer_Adagrad", "Optimizer_RMSprop", "Optimizer_Adam",
    "Accuracy", "Accuracy_Categorical", "Accuracy_Regression",
    "Model",
]

# one entry point per dtype, looked up once (the layers run on 300 x 3 arrays thousands of times)
_AFFINE = by_dtype(_linear.affine)
_AFFINE_BACKWARD = by_dtype(_linear.affine_backward)
_plain_dense_args = _linear.plain_dense_args
_BOOL = np.dtype(bool)
_RELU = by_dtype(_activations.relu)
_RELU_BACKWARD = by_dtype(_activations.relu_backward)
_SIGMOID = by_dtype(_activations.sigmoid)
_SIGMOID_BACKWARD = by_dtype(_activations.sigmoid_backward)
_SOFTMAX = by_dtype(_activations.softmax)
_SOFTMAX_BACKWARD = by_dtype(_activations.softmax_backward)
_ARGMAX = by_dtype(_activations.argmax_rows)
_CE_LABELS = by_dtype(_losses.cross_entropy_labels)
_CE_TARGETS = by_dtype(_losses.cross_entropy_targets)
_CE_GRAD_LABELS = by_dtype(_losses.cross_entropy_grad_labels)
_CCE_GRAD = by_dtype(_losses.cce_grad)
_POINTWISE = by_dtype(_losses.pointwise_loss)
_POINTWISE_GRAD = by_dtype(_losses.pointwise_loss_grad)
_PENALTY_SUMS = by_dtype(_losses.penalty_sums)
_PENALTY_GRAD = by_dtype(_losses.penalty_grad)


# ---- nnfs.init() ----------------------------------------------------------------------------

try:
    from numpy._core.multiarray import dot as _NUMPY_DOT
except ImportError:  # NumPy 1.x
    from numpy.core.multiarray import dot as _NUMPY_DOT

_dot_seen = [_NUMPY_DOT, False]   # (np.dot last looked at, whether it is nnfs's patched dot)


def _nnfs_dot():
    """True while np.dot is the one nnfs.init() (or fastnn.nnfs.init) installs: float64
    computation, float32 result."""
    d = np.dot
    if d is _NUMPY_DOT:
        return False
    if d is not _dot_seen[0]:
        _dot_seen[0] = d
        _dot_seen[1] = bool(getattr(d, "_fastnn_nnfs_dot", False)) or (
            getattr(d, "__module__", "") in ("nnfs.core", "nnfs") and getattr(d, "__name__", "") == "dot")
    return _dot_seen[1]


def init(dot_precision_workaround=True, default_dtype='float32', random_seed=0):
    """What ``nnfs.init()`` does, with its signature: the book's chapters call it first.

    With ``dot_precision_workaround``, ``np.dot`` computes in float64 and returns float32
    (nnfs's cure for machine-dependent float32 dot products; fastnn's dense layers then
    compute the same way); otherwise ``np.dot``'s result is cast to ``default_dtype``.
    With ``default_dtype``, ``np.zeros`` and ``np.eye`` (called with at most one positional
    argument and no dtype) and ``np.random.randn`` give that dtype. ``random_seed`` seeds
    NumPy's global generator (None: not seeded). NumPy is patched for the whole process,
    as by nnfs.
    """
    enclose = []   # (module, name, cast the result?, positional arguments that take a dtype)
    enclose += [(np, "zeros", False, 1), (np.random, "randn", True, None), (np, "eye", False, 1)]
    if dot_precision_workaround:
        numpy_dot = np.dot

        def dot(*args, **kwargs):
            return numpy_dot(*[np.asarray(a).astype("float64") for a in args], **kwargs).astype("float32")
        dot._fastnn_nnfs_dot = True
        np.dot = dot
    else:
        enclose.append((np, "dot", True, None))
    if default_dtype:
        for module, name, cast, n_args in enclose:
            setattr(module, name, _with_default_dtype(getattr(module, name), default_dtype, cast, n_args))
    if random_seed is not None:
        np.random.seed(random_seed)


def _with_default_dtype(fn, dtype, cast, n_args):
    def enclosed(*args, **kwargs):
        if cast:
            return fn(*args, **kwargs).astype(dtype)
        if len(args) <= n_args and "dtype" not in kwargs:
            kwargs["dtype"] = dtype
        return fn(*args, **kwargs)
    enclosed.__name__ = getattr(fn, "__name__", "enclosed")
    return enclosed


# ---- buffers nobody else can see --------------------------------------------------------------

def _refcount_of(layer, name):
    # (array, its reference count seen from here) for layer.<name>, or (None, 0)
    a = layer.__dict__.get(name)
    if a is None or a.__class__ is not np.ndarray or a.base is not None:
        return None, 0
    return a, _getrefcount(a)


class _Probe:
    pass


def _free_refcount():
    # what _refcount_of reports for an array only an attribute holds: measured, not assumed,
    # since interpreters differ in how many temporary references they keep
    p = _Probe()
    p.a = np.empty(1)
    return _refcount_of(p, "a")[1]


_FREE = _free_refcount()


_SPARE_MIN_BYTES = 1 << 17   # below this, np.empty is served from the allocator's cache


def _spare(layer, name, shape, dtype, nxt=None):
    """An array to write ``layer.<name>``'s new value into: the old one when nothing but
    ``layer`` (and ``nxt.inputs``) refers to it and it has this shape and dtype, else a new one.

    The book's layers make fresh arrays every step; for the big ones (a 3000 x 64 batch is
    1.5 MB, and a fresh one costs hundreds of page faults) fastnn writes the new values into
    the old array instead - but only when no one can tell: the array owns its data, and no
    view, user variable or other attribute refers to it (its reference count says so), and
    it is about to be replaced anyway (``nxt.inputs`` is rebound in the same forward pass).
    """
    n = dtype.itemsize
    for d in shape:
        n *= d
    if n < _SPARE_MIN_BYTES:   # small: a fresh array costs less than the checks
        return np.empty(shape, dtype=dtype)
    a, refs = _refcount_of(layer, name)
    if a is not None and a.dtype is dtype and a.shape == shape and a.flags.writeable:
        if nxt is not None and getattr(nxt, "__dict__", {}).get("inputs") is a:
            refs -= 1
        if refs == _FREE:
            return a
    return np.empty(shape, dtype=dtype)


def _is_fast(a):
    # a float ndarray the kernels take as it is
    if type(a) is not np.ndarray:
        return False
    dt = a.dtype
    if dt is not _F64 and dt is not _F32:
        return False
    f = a.flags
    return f.c_contiguous and f.aligned


def _as_2d(x, who, what="inputs"):
    x = x if type(x) is np.ndarray else np.asarray(x)
    if x.ndim != 2:
        raise ValueError("%s: %s must be 2-D (samples, features), got shape %s" % (who, what, x.shape))
    return x


def _labels(y_true, rows, n_classes, who):
    """1-D integer labels -> contiguous intp array; clear errors for anything else."""
    t = y_true if type(y_true) is np.ndarray else np.asarray(y_true)
    if t.shape != (rows,):
        raise ValueError("%s: y_true has shape %s, but the predictions have shape %s: give one "
                         "label per sample (%d,) or one-hot targets of the predictions' shape"
                         % (who, t.shape, (rows, n_classes), rows))
    if t.dtype.kind not in "iu":
        raise TypeError("%s: class labels must be integers, got dtype %s (the book's indexing "
                        "raises IndexError for them)" % (who, t.dtype))
    if t.dtype is _INTP and t.flags.c_contiguous and t.flags.aligned:
        return t
    return as_kernel_array(t, _INTP)


def _bad_labels(t, n_classes, who):
    t = np.asarray(t)
    bad = t[(t < 0) | (t >= n_classes)] if t.dtype.kind in "iu" else t
    return ValueError("%s: labels must be in [0, %d); got %s" % (who, n_classes, bad[:5].tolist()))


def _same_shape(a, b, who, aname, bname):
    if a.shape != b.shape:
        raise ValueError("%s: %s have shape %s, but %s have shape %s" % (who, aname, a.shape, bname, b.shape))


# ---- layers -------------------------------------------------------------------------------

class Layer_Dense:
    """Fully connected layer: ``output = inputs @ weights + biases``.

    Parameters
    ----------
    n_inputs, n_neurons : int
        ``weights`` is ``0.01 * np.random.randn(n_inputs, n_neurons)`` (the same draws from
        NumPy's global generator as the book), ``biases`` is ``np.zeros((1, n_neurons))``.
    weight_regularizer_l1, weight_regularizer_l2, bias_regularizer_l1, bias_regularizer_l2 : float
        Regularisation strengths (0 = off).
    """

    def __init__(self, n_inputs, n_neurons,
                 weight_regularizer_l1=0, weight_regularizer_l2=0,
                 bias_regularizer_l1=0, bias_regularizer_l2=0):
        self.weights = 0.01 * np.random.randn(n_inputs, n_neurons)
        self.biases = np.zeros((1, n_neurons))
        self.weight_regularizer_l1 = weight_regularizer_l1
        self.weight_regularizer_l2 = weight_regularizer_l2
        self.bias_regularizer_l1 = bias_regularizer_l1
        self.bias_regularizer_l2 = bias_regularizer_l2

    def __repr__(self):
        return "Layer_Dense(%d, %d)" % np.shape(self.weights)

    def forward(self, inputs, training=False):
        """``self.output = np.dot(inputs, weights) + biases``; inputs (samples, n_inputs)."""
        self.inputs = inputs
        W, b = self.weights, self.biases
        if np.dot is _NUMPY_DOT and _plain_dense_args(inputs, W, b, None):
            # the common case (checked in C): one kernel call, nothing to cast
            out = _spare(self, "output", (inputs.shape[0], W.shape[1]), W.dtype, self.__dict__.get("next"))
            _linear.affine(inputs, W, b, out, resolve_n_threads(None))
            self.output = out
            return
        self.output = self._forward_any(inputs, W, b)

    def _operands(self, x, W, b, who):
        x, _, _ = real_array(x, who, "inputs")
        W, _, _ = real_array(W, who, "weights")
        b, _, _ = real_array(b, who, "biases")
        if W.ndim != 2:
            raise ValueError("%s: weights must be 2-D (n_inputs, n_neurons), got shape %s" % (who, W.shape))
        K, N = W.shape
        if x.ndim == 1:  # one sample: np.dot(x, W) + b has shape (1, n_neurons)
            x = x.reshape(1, -1)
        if x.ndim != 2 or x.shape[1] != K:
            raise ValueError("%s: inputs have shape %s but weights have shape %s: inputs need %d "
                             "columns (one per layer input)" % (who, x.shape, W.shape, K))
        if not (b.shape in ((1, N), (N,)) or (b.size == 1 and b.ndim <= 2)):
            raise ValueError("%s: biases have shape %s; they must have shape (1, %d) for weights "
                             "of shape %s" % (who, b.shape, N, W.shape))
        return x, W, b

    def _forward_any(self, x, W, b):
        x, W, b = self._operands(x, W, b, "Layer_Dense.forward")
        M, N = x.shape[0], W.shape[1]
        out_shape = np.broadcast_shapes((M, N), b.shape)
        bk = b if b.shape == (N,) else np.broadcast_to(b.reshape(-1), (N,))
        nt = resolve_n_threads(None)
        if _nnfs_dot():
            # nnfs.init's np.dot: float64 products and sums, the result rounded to float32,
            # then + biases with NumPy's dtype rules
            dot = np.empty((M, N), dtype=_F64)
            _AFFINE[_F64](as_kernel_array(x, _F64), as_kernel_array(W, _F64), None, dot, nt)
            return dot.astype(_F32) + b
        kd, rd = compute_dtypes(x.dtype, W.dtype, b.dtype)
        out = np.empty((M, N), dtype=kd)
        _AFFINE[kd](as_kernel_array(x, kd), as_kernel_array(W, kd), as_kernel_array(bk, kd), out, nt)
        out = finish(out, rd)
        return out if out.shape == out_shape else out.reshape(out_shape)

    def backward(self, dvalues):
        """Set ``dweights = inputs.T @ dvalues`` (+ regularisation), ``dbiases``, ``dinputs``."""
        x, W, b = self.inputs, self.weights, self.biases
        if np.dot is _NUMPY_DOT and _plain_dense_args(x, W, b, dvalues):
            # the common case (checked in C): one kernel call, nothing to cast
            dt = W.dtype
            K, N = W.shape
            dW = _spare(self, "dweights", (K, N), dt)
            db = _spare(self, "dbiases", (1, N), dt)
            dX = _spare(self, "dinputs", x.shape, dt)
            _linear.dense_backward(x, W, dvalues, dX, dW, db, resolve_n_threads(None))
            self._regularise(W, b, dW, db, plain=True)
            self.dweights, self.dbiases, self.dinputs = dW, db, dX
            return
        self._backward_any(x, dvalues, W, b)

    def _regularise(self, W, b, dW, db, plain=False):
        # dweights += l1 * dL1; dweights += 2 * l2 * weights (and the same for the biases);
        # plain: W and b are already the kernel's (dW's dtype, C order, b of db's shape)
        wl1, wl2 = self.weight_regularizer_l1, self.weight_regularizer_l2
        if wl1 > 0 or wl2 > 0:
            Wk = W if plain else as_kernel_array(W, dW.dtype)
            _PENALTY_GRAD[dW.dtype](Wk.reshape(-1), dW.reshape(-1), float(wl1), float(wl2),
                                    resolve_n_threads(None))
        bl1, bl2 = self.bias_regularizer_l1, self.bias_regularizer_l2
        if bl1 > 0 or bl2 > 0:
            bk = b if plain else as_kernel_array(np.broadcast_to(np.asarray(b), db.shape), db.dtype)
            _PENALTY_GRAD[db.dtype](bk.reshape(-1), db.reshape(-1), float(bl1), float(bl2),
                                    resolve_n_threads(None))

    def _backward_any(self, x, dv, W, b):
        who = "Layer_Dense.backward"
        if x is None or not hasattr(self, "inputs"):
            raise ValueError("%s: call forward first" % who)
        x, W, b = self._operands(x, W, b, who)
        dv, _, _ = real_array(dv, who, "dvalues")
        M, K, N = x.shape[0], W.shape[0], W.shape[1]
        if dv.shape != (M, N):
            raise ValueError("%s: dvalues have shape %s, but the layer's output has shape %s"
                             % (who, dv.shape, (M, N)))
        nt = resolve_n_threads(None)
        if _nnfs_dot():
            # nnfs.init's np.dot for inputs.T @ dvalues and dvalues @ weights.T: float64,
            # rounded to float32; np.sum(dvalues, axis=0) in dvalues' dtype
            dW, db, dX = np.empty((K, N)), np.empty(N), np.empty((M, K))
            _AFFINE_BACKWARD[_F64](as_kernel_array(x, _F64), as_kernel_array(W, _F64),
                                   as_kernel_array(dv, _F64), dX, dW, db, nt)
            dW, dX = dW.astype(_F32), dX.astype(_F32)
            db = db.astype(compute_dtypes(dv.dtype)[1]).reshape(1, N)
        else:
            kd, _ = compute_dtypes(x.dtype, dv.dtype, W.dtype)
            dW, db, dX = np.empty((K, N), kd), np.empty(N, kd), np.empty((M, K), kd)
            _AFFINE_BACKWARD[kd](as_kernel_array(x, kd), as_kernel_array(W, kd),
                                 as_kernel_array(dv, kd), dX, dW, db, nt)
            # each result in the dtype the book's expression gives it
            dW = finish(dW, compute_dtypes(x.dtype, dv.dtype)[1])
            db = finish(db, compute_dtypes(dv.dtype)[1]).reshape(1, N)
            dX = finish(dX, compute_dtypes(dv.dtype, W.dtype)[1])
        dW, db = as_kernel_array(dW, dW.dtype), as_kernel_array(db, db.dtype)
        self._regularise(W, b, dW, db)
        self.dweights, self.dbiases, self.dinputs = dW, db, dX

    def get_parameters(self):
        return self.weights, self.biases

    def set_parameters(self, weights, biases):
        self.weights = weights
        self.biases = biases


class Layer_Dropout:
    """Inverted dropout. ``rate`` is the fraction dropped; ``self.rate`` keeps ``1 - rate``.
    The mask comes from NumPy's global generator, the same draws as the book's."""

    def __init__(self, rate):
        self.rate = 1 - rate

    def forward(self, inputs, training=True):
        self.inputs = inputs
        if not training:
            self.output = inputs.copy()
            return
        self.binary_mask = np.random.binomial(1, self.rate, size=inputs.shape) / self.rate
        self.output = inputs * self.binary_mask

    def backward(self, dvalues):
        self.dinputs = dvalues * self.binary_mask


class Layer_Input:

    def forward(self, inputs, training=False):
        self.output = inputs


# ---- activations ----------------------------------------------------------------------------

class Activation_ReLU:

    def forward(self, inputs, training=False):
        """``self.output = np.maximum(0, inputs)``."""
        self.inputs = inputs
        if _is_fast(inputs) and inputs.ndim:
            out = _spare(self, "output", inputs.shape, inputs.dtype, self.__dict__.get("next"))
            _RELU[inputs.dtype](inputs.reshape(-1), out.reshape(-1), resolve_n_threads(None))
            self.output = out
            return
        x, kd, _ = real_array(inputs, "Activation_ReLU.forward", "inputs")
        out = np.empty(x.shape, dtype=kd)
        _RELU[kd](as_kernel_array(x, kd).reshape(-1), out.reshape(-1), resolve_n_threads(None))
        # np.maximum(0, inputs) keeps integer inputs integer, and makes a 0-d one a scalar
        out = finish(out, np.result_type(x.dtype, 0))
        self.output = out[()] if out.ndim == 0 else out

    def backward(self, dvalues):
        """``dinputs = dvalues`` with zeros where ``inputs <= 0``."""
        x, dv = self.inputs, dvalues
        if _is_fast(x) and _is_fast(dv) and x.dtype is dv.dtype and x.shape == dv.shape:
            out = _spare(self, "dinputs", dv.shape, dv.dtype)
            _RELU_BACKWARD[dv.dtype](x.reshape(-1), dv.reshape(-1), out.reshape(-1),
                                     resolve_n_threads(None))
            self.dinputs = out
            return
        who = "Activation_ReLU.backward"
        x, _, _ = real_array(x, who, "inputs")
        dv, _, rd = real_array(dv, who, "dvalues")
        _same_shape(dv, x, who, "dvalues", "the inputs")
        kd, _ = compute_dtypes(x.dtype, dv.dtype)
        out = np.empty(dv.shape, dtype=kd)
        _RELU_BACKWARD[kd](as_kernel_array(x, kd).reshape(-1), as_kernel_array(dv, kd).reshape(-1),
                           out.reshape(-1), resolve_n_threads(None))
        self.dinputs = finish(out, dv.dtype)          # dvalues.copy()'s dtype

    def predictions(self, outputs):
        return outputs


def _softmax(x, who):
    """(softmax of a 2-D array, the kernel's count of rows with an infinite max)."""
    if _is_fast(x) and x.ndim == 2 and x.shape[1]:
        out = np.empty(x.shape, dtype=x.dtype)
        return out, _SOFTMAX[x.dtype](x, out, resolve_n_threads(None))
    xa, kd, rd = real_array(x, who, "inputs")
    xa = _as_2d(xa, who)
    if xa.shape[1] == 0:
        raise ValueError("%s: inputs have shape %s; np.max over an empty row raises in the book "
                         "too" % (who, xa.shape))
    out = np.empty(xa.shape, dtype=kd)
    bad = _SOFTMAX[kd](as_kernel_array(xa, kd), out, resolve_n_threads(None))
    return finish(out, rd), bad


def _argmax_rows(x, who, name):
    """np.argmax(x, axis=1) of a 2-D array, by the package's one argmax kernel."""
    if not (_is_fast(x) and x.ndim == 2):
        x, kd, _ = real_array(x, who, name)
        x = as_kernel_array(_as_2d(x, who, name), kd)
    if x.shape[1] == 0:
        raise ValueError("%s: %s have shape %s: no class to pick" % (who, name, x.shape))
    out = np.empty(x.shape[0], dtype=_INTP)
    _ARGMAX[x.dtype](x, out, resolve_n_threads(None))
    return out


class Activation_Softmax:

    def forward(self, inputs, training=False):
        """Row-wise ``exp(x - max) / sum(exp(x - max))``; inputs (samples, classes)."""
        self.inputs = inputs
        self.output, bad = _softmax(inputs, "Activation_Softmax.forward")
        if bad:
            fp_event("invalid value", "subtract")

    def backward(self, dvalues):
        """``dinputs[i] = (diagflat(y_i) - y_i y_i^T) @ dvalues[i]`` for each sample."""
        y, dv = self.output, dvalues
        if _is_fast(y) and _is_fast(dv) and y.dtype is dv.dtype and y.shape == dv.shape and dv.ndim == 2:
            out = np.empty(dv.shape, dtype=dv.dtype)
            _SOFTMAX_BACKWARD[dv.dtype](y, dv, out, resolve_n_threads(None))
            self.dinputs = out
            return
        who = "Activation_Softmax.backward"
        y, _, _ = real_array(y, who, "output")
        dv, _, _ = real_array(dv, who, "dvalues")
        _same_shape(dv, y, who, "dvalues", "the outputs")
        dv = _as_2d(dv, who, "dvalues")
        kd, _ = compute_dtypes(y.dtype, dv.dtype)
        out = np.empty(dv.shape, dtype=kd)
        _SOFTMAX_BACKWARD[kd](as_kernel_array(y, kd), as_kernel_array(dv, kd), out,
                              resolve_n_threads(None))
        self.dinputs = finish(out, dv.dtype)       # np.empty_like(dvalues)'s dtype

    def predictions(self, outputs):
        """``np.argmax(outputs, axis=1)``."""
        return _argmax_rows(outputs, "Activation_Softmax.predictions", "outputs")


class Activation_Sigmoid:

    def forward(self, inputs, training=False):
        """``self.output = 1 / (1 + exp(-inputs))``."""
        self.inputs = inputs
        x = inputs
        if _is_fast(x):
            rd = x.dtype
        else:
            x, kd, rd = real_array(x, "Activation_Sigmoid.forward", "inputs")
            x = as_kernel_array(x, kd)
        out = np.empty(x.shape, dtype=x.dtype)
        if _SIGMOID[x.dtype](x.reshape(-1), out.reshape(-1), resolve_n_threads(None)):
            fp_event("overflow", "exp")
        out = finish(out, rd)
        self.output = out if out.ndim else out[()]   # NumPy's 1 / (1 + exp(-x)) of a 0-d x: a scalar

    def backward(self, dvalues):
        """``dinputs = dvalues * (1 - output) * output``."""
        y, dv = self.output, dvalues
        if not (_is_fast(y) and _is_fast(dv) and y.dtype is dv.dtype and y.shape == dv.shape):
            who = "Activation_Sigmoid.backward"
            y, _, _ = real_array(y, who, "output")
            dv, _, _ = real_array(dv, who, "dvalues")
            _same_shape(dv, y, who, "dvalues", "the outputs")
            kd, _ = compute_dtypes(y.dtype, dv.dtype)
            y, dv = as_kernel_array(y, kd), as_kernel_array(dv, kd)
        out = np.empty(dv.shape, dtype=dv.dtype)
        _SIGMOID_BACKWARD[dv.dtype](y.reshape(-1), dv.reshape(-1), out.reshape(-1),
                                    resolve_n_threads(None))
        self.dinputs = out if out.ndim else out[()]   # (a 0-d product is a NumPy scalar)

    def predictions(self, outputs):
        return (outputs > 0.5) * 1


class Activation_Linear:

    def forward(self, inputs, training=False):
        self.inputs = inputs
        self.output = inputs

    def backward(self, dvalues):
        self.dinputs = dvalues.copy()

    def predictions(self, outputs):
        return outputs


# ---- optimizers ---------------------------------------------------------------------------
# Each keeps its state on the layer, as the book does (weight_momentums, weight_cache, ...),
# and updates weights, biases and that state in place in one kernel call per layer.

_WRITES = (True, False, True, True)   # parameter, gradient (read only), state arrays


def _kernel_ready(ws, bs):
    """True when the weights' arrays ws (parameter, gradient, state...) and the biases' bs
    go to the optimizer kernel as they are: one float dtype, C-contiguous, aligned,
    writeable but the gradients, one shape per list."""
    W = ws[0]
    if type(W) is not np.ndarray:
        return False
    dt = W.dtype
    if dt is not _F64 and dt is not _F32:
        return False
    for arrays in (ws, bs):
        shape = arrays[0].shape if type(arrays[0]) is np.ndarray else None
        for a, writes in zip(arrays, _WRITES):
            if type(a) is not np.ndarray or a.dtype is not dt or a.shape != shape:
                return False
            f = a.flags
            if not (f.carray if writes else f.c_contiguous and f.aligned):
                return False
    return True


class _Optimizer:

    _rule = None
    _state = ()            # the layer's state attributes: (weights', biases') per state array
    _rebinds = False       # the book's rule assigns its state rather than updating it in place

    def pre_update_params(self):
        if self.decay:
            self.current_learning_rate = self.learning_rate * (1. / (1. + self.decay * self.iterations))

    def post_update_params(self):
        self.iterations += 1

    def __repr__(self):
        return "%s(learning_rate=%r, decay=%r)" % (type(self).__name__, self.learning_rate, self.decay)

    def _hyper(self):
        hp = self.__dict__.get("_hp")
        if hp is None:   # (kept out of __init__ so that pickled optimizers still work)
            hp = self._hp = _opt.Hyperparameters(self._rule)
        hp.lr = float(self.current_learning_rate)
        return hp

    def _update(self, layer, hp):
        d = layer.__dict__
        ws = [d.get("weights"), d.get("dweights")]
        bs = [d.get("biases"), d.get("dbiases")]
        for wname, bname in self._state:
            ws.append(d.get(wname))
            bs.append(d.get(bname))
        if _kernel_ready(ws, bs) and not _opt.overlapping(ws + bs):
            # the common case: every array is the kernel's as it is (one dtype, C order,
            # aligned, shapes that match, nothing shared): one call for the layer
            n = len(ws)
            _opt.update(hp, [ws[0], bs[0]], [ws[1], bs[1]],
                        [ws[2], bs[2]] if n > 2 else None,
                        [ws[3], bs[3]] if n > 3 else None,
                        resolve_n_threads(None))
            return
        self._update_any(layer, hp)

    def _update_any(self, layer, hp):
        who = "%s.update_params" % type(self).__name__
        items, sources, originals = [], [], []
        for k, (pname, gname) in enumerate((("weights", "dweights"), ("biases", "dbiases"))):
            p, g = getattr(layer, pname), getattr(layer, gname)
            if not isinstance(p, np.ndarray):
                raise TypeError("%s: layer.%s must be a NumPy array, got %s" % (who, pname, type(p).__name__))
            _check_param(p, who, "layer." + pname)
            order, direct = _order_of(p)
            pk = p if direct else _working_copy(p)
            gk = _kernel_grad(g, pk, order, who, "layer." + gname, "layer." + pname)
            ss = [None, None]
            for j, names in enumerate(self._state):
                sname = names[k]
                sk, replaced = _kernel_state(getattr(layer, sname), pk, order, self._rebinds, who,
                                             "layer." + sname, "layer." + pname)
                if replaced:
                    setattr(layer, sname, sk)
                ss[j] = sk
            items.append((pk, gk, ss[0], ss[1]))
            sources.append((p, g, order))
            originals.append(p)
            if type(g) is np.ndarray:
                originals.append(g)
        if _opt.overlapping(originals):
            _run_serial(hp, items, sources)
            return
        _run_updates(hp, items, resolve_n_threads(None))
        for (p, _, _), (pk, _, _, _) in zip(sources, items):
            if pk is not p:
                p[...] = pk


class Optimizer_SGD(_Optimizer):
    """SGD with learning-rate decay and optional momentum:
    ``updates = momentum * momentums - lr * dweights`` (or ``-lr * dweights``); ``w += updates``."""

    _rebinds = True

    def __init__(self, learning_rate=1., decay=0., momentum=0.):
        self.learning_rate = learning_rate
        self.current_learning_rate = learning_rate
        self.decay = decay
        self.iterations = 0
        self.momentum = momentum

    def update_params(self, layer):
        if self.momentum:
            if not hasattr(layer, 'weight_momentums'):
                layer.weight_momentums = np.zeros_like(layer.weights)
                layer.bias_momentums = np.zeros_like(layer.biases)
            self._rule, self._state = _opt.NNFS_MOMENTUM, (("weight_momentums", "bias_momentums"),)
        else:
            self._rule, self._state = _opt.NNFS_SGD, ()
        hp = self._hyper()
        hp.kind = self._rule
        hp.momentum = float(self.momentum)
        self._update(layer, hp)


class Optimizer_Adagrad(_Optimizer):
    """Adagrad: ``cache += dw ** 2``; ``w += -lr * dw / (sqrt(cache) + epsilon)``."""

    _rule = _opt.NNFS_ADAGRAD
    _state = (("weight_cache", "bias_cache"),)

    def __init__(self, learning_rate=1., decay=0., epsilon=1e-7):
        self.learning_rate = learning_rate
        self.current_learning_rate = learning_rate
        self.decay = decay
        self.iterations = 0
        self.epsilon = epsilon

    def update_params(self, layer):
        if not hasattr(layer, 'weight_cache'):
            layer.weight_cache = np.zeros_like(layer.weights)
            layer.bias_cache = np.zeros_like(layer.biases)
        hp = self._hyper()
        hp.eps = float(self.epsilon)
        self._update(layer, hp)


class Optimizer_RMSprop(_Optimizer):
    """RMSprop: ``cache = rho * cache + (1 - rho) * dw ** 2``; Adagrad's step."""

    _rule = _opt.NNFS_RMSPROP
    _state = (("weight_cache", "bias_cache"),)
    _rebinds = True

    def __init__(self, learning_rate=0.001, decay=0., epsilon=1e-7, rho=0.9):
        self.learning_rate = learning_rate
        self.current_learning_rate = learning_rate
        self.decay = decay
        self.iterations = 0
        self.epsilon = epsilon
        self.rho = rho

    def update_params(self, layer):
        if not hasattr(layer, 'weight_cache'):
            layer.weight_cache = np.zeros_like(layer.weights)
            layer.bias_cache = np.zeros_like(layer.biases)
        hp = self._hyper()
        hp.eps = float(self.epsilon)
        hp.rho = float(self.rho)
        self._update(layer, hp)


class Optimizer_Adam(_Optimizer):
    """Adam with the bias corrections ``1 - beta ** (iterations + 1)``."""

    _rule = _opt.NNFS_ADAM
    _state = (("weight_momentums", "bias_momentums"), ("weight_cache", "bias_cache"))
    _rebinds = True

    def __init__(self, learning_rate=0.001, decay=0., epsilon=1e-7, beta_1=0.9, beta_2=0.999):
        self.learning_rate = learning_rate
        self.current_learning_rate = learning_rate
        self.decay = decay
        self.iterations = 0
        self.epsilon = epsilon
        self.beta_1 = beta_1
        self.beta_2 = beta_2

    def update_params(self, layer):
        if not hasattr(layer, 'weight_cache'):
            layer.weight_momentums = np.zeros_like(layer.weights)
            layer.weight_cache = np.zeros_like(layer.weights)
            layer.bias_momentums = np.zeros_like(layer.biases)
            layer.bias_cache = np.zeros_like(layer.biases)
        hp = self._hyper()
        hp.eps = float(self.epsilon)
        hp.beta1 = float(self.beta_1)
        hp.beta2 = float(self.beta_2)
        hp.correction1 = 1 - self.beta_1 ** (self.iterations + 1)
        hp.correction2 = 1 - self.beta_2 ** (self.iterations + 1)
        self._update(layer, hp)


# ---- losses -------------------------------------------------------------------------------

def _penalty_sums(a):
    """(sum(|a|), sum(a * a)) in double, by the penalty kernel."""
    if not _is_fast(a):
        a, kd, _ = real_array(a, "Loss.regularization_loss", "a parameter")
        a = as_kernel_array(a, kd)
    return _PENALTY_SUMS[a.dtype](a.reshape(-1))


def _layer_penalty(layer):
    # l1 * sum(|weights|) + l2 * sum(weights * weights) (+ the same for the biases), in the
    # parameters' dtype as the book's np.sum gives it
    loss = 0
    for l1, l2, p in ((layer.weight_regularizer_l1, layer.weight_regularizer_l2, layer.weights),
                      (layer.bias_regularizer_l1, layer.bias_regularizer_l2, layer.biases)):
        if l1 > 0 or l2 > 0:
            s_abs, s_sq = _penalty_sums(p)
            scalar = np.asarray(p).dtype.type
            if l1 > 0:
                loss += l1 * scalar(s_abs)
            if l2 > 0:
                loss += l2 * scalar(s_sq)
    return loss


class Loss:
    """Common loss: ``calculate`` = mean of ``forward``'s sample losses (+ regularisation)."""

    accumulated_sum = 0
    accumulated_count = 0

    def regularization_loss(self, layer=None):
        """The L1/L2 penalty of the trainable layers (the final chapters' form), or of one
        ``layer`` (chapters 14-17: ``loss_function.regularization_loss(dense1)``)."""
        if layer is not None:
            return _layer_penalty(layer)
        regularization_loss = 0
        for layer in self.trainable_layers:
            regularization_loss += _layer_penalty(layer)
        return regularization_loss

    def remember_trainable_layers(self, trainable_layers):
        self.trainable_layers = trainable_layers

    def _forward_total(self, output, y):
        # (sample_losses, their sum in double or None); built-in losses override this
        return self.forward(output, y), None

    def calculate(self, output, y, *, include_regularization=False):
        sample_losses, total = self._forward_total(output, y)
        if total is None or len(sample_losses) == 0:
            data_loss = np.mean(sample_losses)
            self.accumulated_sum += np.sum(sample_losses)
        else:
            scalar = sample_losses.dtype.type
            data_loss = scalar(total / len(sample_losses))
            self.accumulated_sum += scalar(total)
        self.accumulated_count += len(sample_losses)
        if not include_regularization:
            return data_loss
        return data_loss, self.regularization_loss()

    def calculate_accumulated(self, *, include_regularization=False):
        data_loss = self.accumulated_sum / self.accumulated_count
        if not include_regularization:
            return data_loss
        return data_loss, self.regularization_loss()

    def new_pass(self):
        self.accumulated_sum = 0
        self.accumulated_count = 0


class Loss_CategoricalCrossentropy(Loss):
    """``-log(clip(y_pred, 1e-7, 1 - 1e-7))`` of the true class; labels (1-D) or one-hot (2-D):
    ``-log(sum(clip(y_pred) * y_true, axis=1))``."""

    def _forward_total(self, y_pred, y_true):
        if type(self).forward is not Loss_CategoricalCrossentropy.forward:
            return Loss._forward_total(self, y_pred, y_true)
        return self._losses(y_pred, y_true)

    def forward(self, y_pred, y_true):
        return self._losses(y_pred, y_true)[0]

    def _losses(self, y_pred, y_true):
        who = "Loss_CategoricalCrossentropy.forward"
        y = y_pred
        if not (_is_fast(y) and y.ndim == 2):
            y, _, _ = real_array(y, who, "y_pred")
            y = _as_2d(y, who, "y_pred")
        rows, n = y.shape
        t = y_true if type(y_true) is np.ndarray else np.asarray(y_true)
        if t.ndim == 2:
            if t.shape != y.shape:
                raise ValueError("%s: one-hot y_true has shape %s, but y_pred has shape %s"
                                 % (who, t.shape, y.shape))
            t, _, _ = real_array(t, who, "y_true")
            kd, rd = compute_dtypes(y.dtype, t.dtype)      # clip(y_pred) * y_true promotes
            tk = as_kernel_array(t, _F64 if t.dtype.kind in "biu" else compute_dtypes(t.dtype)[0])
            yk = as_kernel_array(y, kd)
            if n == 0:
                return np.full(rows, np.inf, dtype=rd), float(np.inf) if rows else 0.0
            out = np.empty(rows, dtype=kd)
            total, log0, _ = _CE_TARGETS[kd, tk.dtype](yk, tk, _losses.CLIP, _losses.WEIGHTED, 0.0,
                                                      out, resolve_n_threads(None))
            if log0:
                fp_event("divide by zero", "log", stacklevel=4)
            return finish(out, rd), total
        if t.ndim != 1:
            raise ValueError("%s: y_true has shape %s; give class labels (samples,) or one-hot "
                             "targets (samples, classes)" % (who, t.shape))
        lab = _labels(t, rows, n, who)
        if n == 0 and rows:
            raise ValueError("%s: y_pred has shape %s: no classes to pick from" % (who, y.shape))
        kd, rd = compute_dtypes(y.dtype)
        yk = y if y.dtype is kd and _is_fast(y) else as_kernel_array(y, kd)
        out = np.empty(rows, dtype=kd)
        total, bad, _, _ = _CE_LABELS[kd](yk, lab, _losses.CLIP, out, resolve_n_threads(None))
        if bad:
            raise _bad_labels(lab, n, who)
        return finish(out, rd), total

    def backward(self, dvalues, y_true):
        """``dinputs = -y_true / dvalues / samples`` (labels become ``np.eye(classes)[y_true]``)."""
        who = "Loss_CategoricalCrossentropy.backward"
        dv, _, _ = real_array(dvalues, who, "dvalues")
        dv = _as_2d(dv, who, "dvalues")
        t = np.asarray(y_true)
        rows, n = dv.shape
        if t.ndim == 1:
            lab = _labels(t, rows, n, who)
            if lab.size and (lab.min() < 0 or lab.max() >= n):
                raise _bad_labels(lab, n, who)
            eye_dtype = np.eye(1).dtype          # float64, or float32 after nnfs.init()
            kd, rd = compute_dtypes(dv.dtype, eye_dtype)
            tk = np.zeros((rows, n), dtype=kd)
            tk[np.arange(rows), lab] = 1         # np.eye(classes)[y_true]
        elif t.shape != dv.shape:
            raise ValueError("%s: one-hot y_true has shape %s, but dvalues have shape %s"
                             % (who, t.shape, dv.shape))
        else:
            t, _, _ = real_array(t, who, "y_true")
            kd, rd = compute_dtypes(dv.dtype, t.dtype)
            tk = as_kernel_array(t, kd)
        out = np.empty((rows, n), dtype=kd)
        div0, invalid = _CCE_GRAD[kd](as_kernel_array(dv, kd).reshape(-1), tk.reshape(-1),
                                       float(rows), out.reshape(-1), resolve_n_threads(None))
        if div0:
            fp_event("divide by zero", "divide")
        if invalid:
            fp_event("invalid value", "divide")
        self.dinputs = finish(out, rd)


class Activation_Softmax_Loss_CategoricalCrossentropy():
    """Softmax and categorical cross-entropy together, for the faster backward step.

    Chapter 10 style: ``forward(inputs, y_true)`` returns the loss and sets ``.output``;
    the final chapters only call ``backward(dvalues, y_true)`` with the softmax output.
    """

    def __init__(self):
        self.activation = Activation_Softmax()
        self.loss = Loss_CategoricalCrossentropy()

    def forward(self, inputs, y_true):
        self.activation.forward(inputs)
        self.output = self.activation.output
        return self.loss.calculate(self.output, y_true)

    def backward(self, dvalues, y_true):
        """``dinputs = (dvalues - one_hot(y_true)) / samples``."""
        who = "Activation_Softmax_Loss_CategoricalCrossentropy.backward"
        dv = dvalues
        if not (_is_fast(dv) and dv.ndim == 2):
            dv, _, _ = real_array(dv, who, "dvalues")
            dv = _as_2d(dv, who, "dvalues")
        rows, n = dv.shape
        t = y_true if type(y_true) is np.ndarray else np.asarray(y_true)
        if t.ndim == 2:
            if t.shape != dv.shape:
                raise ValueError("%s: one-hot y_true has shape %s, but dvalues have shape %s"
                                 % (who, t.shape, dv.shape))
            t = _argmax_rows(t, who, "y_true")                 # np.argmax(y_true, axis=1)
        lab = _labels(t, rows, n, who)
        kd, rd = compute_dtypes(dv.dtype)
        out = np.empty((rows, n), dtype=kd)
        bad = _CE_GRAD_LABELS[kd](dv if dv.dtype is kd and _is_fast(dv) else as_kernel_array(dv, kd),
                                  lab, _losses.PROBS, float(rows), out, resolve_n_threads(None))
        if bad:
            raise _bad_labels(lab, n, who)
        self.dinputs = finish(out, rd)


class _PointwiseLoss(Loss):
    """A loss that is the mean over the last axis of an element-wise term (BCE, MSE, MAE)."""

    _kind = None

    def _operands(self, y, t, who, yname="y_pred"):
        y, _, _ = real_array(y, who, yname)
        t, _, _ = real_array(t, who, "y_true")
        if y.shape != t.shape:
            raise ValueError("%s: y_true has shape %s, but %s has shape %s; the book's formula "
                             "would broadcast them (reshape y_true to %s)"
                             % (who, t.shape, yname, y.shape, y.shape))
        if y.ndim == 0:
            raise ValueError("%s: %s must have at least one axis" % (who, yname))
        kd, rd = compute_dtypes(y.dtype, t.dtype)
        if self._kind == _losses.BCE and y.dtype.kind == "f" and y.dtype.itemsize < kd.itemsize:
            # the book clips y_pred in its own dtype (float32 y_pred, float64 y_true: the
            # bound 1 - 1e-7 rounds to 0.99999988); the kernel's clip is in kd
            with np.errstate(invalid="ignore"):
                y = np.clip(y, 1e-7, 1 - 1e-7)
        n = y.shape[-1]
        return (as_kernel_array(y, kd).reshape(-1, n), as_kernel_array(t, kd).reshape(-1, n),
                kd, rd, y.shape)

    def _forward_total(self, y_pred, y_true):
        if type(self).forward is not _PointwiseLoss.forward:
            return Loss._forward_total(self, y_pred, y_true)
        return self._losses(y_pred, y_true)

    def _losses(self, y_pred, y_true):
        who = "%s.forward" % type(self).__name__
        y, t, kd, rd, shape = self._operands(y_pred, y_true, who)
        out = np.empty(y.shape[0], dtype=kd)
        total = _POINTWISE[kd](self._kind, y, t, 1e-7, 0.0, out, resolve_n_threads(None))
        return finish(out, rd).reshape(shape[:-1]), total

    def forward(self, y_pred, y_true):
        return self._losses(y_pred, y_true)[0]

    def backward(self, dvalues, y_true):
        who = "%s.backward" % type(self).__name__
        y, t, kd, rd, shape = self._operands(dvalues, y_true, who, "dvalues")
        samples, outputs = len(dvalues), shape[-1] if len(shape) > 1 else 1
        out = np.empty(y.size, dtype=kd)
        _POINTWISE_GRAD[kd](self._kind, y.reshape(-1), t.reshape(-1), 1e-7, 0.0, float(outputs),
                            float(samples), out, resolve_n_threads(None))
        self.dinputs = finish(out, rd).reshape(shape)


class Loss_BinaryCrossentropy(_PointwiseLoss):
    """``mean(-(y_true log(c) + (1 - y_true) log(1 - c)), axis=-1)``, c = clip(y_pred, 1e-7, 1 - 1e-7)."""

    _kind = _losses.BCE


class Loss_MeanSquaredError(_PointwiseLoss):
    """``mean((y_true - y_pred) ** 2, axis=-1)``."""

    _kind = _losses.MSE


class Loss_MeanAbsoluteError(_PointwiseLoss):
    """``mean(abs(y_true - y_pred), axis=-1)``."""

    _kind = _losses.MAE


# ---- accuracy -----------------------------------------------------------------------------

class Accuracy:

    accumulated_sum = 0
    accumulated_count = 0

    def calculate(self, predictions, y):
        comparisons = self.compare(predictions, y)
        if type(comparisons) is np.ndarray and comparisons.dtype is _BOOL and comparisons.ndim == 1:
            # np.mean / np.sum of a 1-D bool array, from one count: the same numbers
            # (a count below 2**53 is exact in float64, and the mean is count / n)
            hits = np.count_nonzero(comparisons)
            n = len(comparisons)
            accuracy = np.float64(hits / n) if n else np.mean(comparisons)
            self.accumulated_sum += np.int64(hits)
            self.accumulated_count += n
            return accuracy
        accuracy = np.mean(comparisons)
        self.accumulated_sum += np.sum(comparisons)
        self.accumulated_count += len(comparisons)
        return accuracy

    def calculate_accumulated(self):
        return self.accumulated_sum / self.accumulated_count

    def new_pass(self):
        self.accumulated_sum = 0
        self.accumulated_count = 0


class Accuracy_Categorical(Accuracy):

    def __init__(self, *, binary=False):
        self.binary = binary

    def init(self, y):
        pass

    def compare(self, predictions, y):
        if not self.binary and len(y.shape) == 2:
            y = np.argmax(y, axis=1)
        return predictions == y


class Accuracy_Regression(Accuracy):

    def __init__(self):
        self.precision = None

    def init(self, y, reinit=False):
        if self.precision is None or reinit:
            self.precision = np.std(y) / 250

    def compare(self, predictions, y):
        return np.absolute(predictions - y) < self.precision


# ---- model --------------------------------------------------------------------------------

class Model:
    """The book's Model: ``add`` layers, ``set`` loss/optimizer/accuracy, ``finalize``, ``train``.

    The book's own loop: every layer's attributes are set exactly as the book sets them.
    Inside a Model, a layer's big per-step arrays are recycled when nothing outside the
    layers can see them (see ``_spare``), which saves the page faults of fresh arrays.
    """

    def __init__(self):
        self.layers = []
        self.softmax_classifier_output = None

    def add(self, layer):
        self.layers.append(layer)

    def set(self, *, loss=None, optimizer=None, accuracy=None):
        if loss is not None:
            self.loss = loss
        if optimizer is not None:
            self.optimizer = optimizer
        if accuracy is not None:
            self.accuracy = accuracy

    def finalize(self):
        self.input_layer = Layer_Input()
        layer_count = len(self.layers)
        self.trainable_layers = []
        for i in range(layer_count):
            if i == 0:
                self.layers[i].prev = self.input_layer
                self.layers[i].next = self.layers[i + 1]
            elif i < layer_count - 1:
                self.layers[i].prev = self.layers[i - 1]
                self.layers[i].next = self.layers[i + 1]
            else:
                self.layers[i].prev = self.layers[i - 1]
                self.layers[i].next = self.loss
                self.output_layer_activation = self.layers[i]
            if hasattr(self.layers[i], 'weights'):
                self.trainable_layers.append(self.layers[i])
        if self.loss is not None:
            self.loss.remember_trainable_layers(self.trainable_layers)
        if isinstance(self.layers[-1], Activation_Softmax) and \
                isinstance(self.loss, Loss_CategoricalCrossentropy):
            self.softmax_classifier_output = Activation_Softmax_Loss_CategoricalCrossentropy()

    def train(self, X, y, *, epochs=1, batch_size=None, print_every=1, validation_data=None):
        self.accuracy.init(y)
        train_steps = 1
        if batch_size is not None:
            train_steps = len(X) // batch_size
            if train_steps * batch_size < len(X):
                train_steps += 1
        for epoch in range(1, epochs + 1):
            print(f'epoch: {epoch}')
            self.loss.new_pass()
            self.accuracy.new_pass()
            for step in range(train_steps):
                if batch_size is None:
                    batch_X = X
                    batch_y = y
                else:
                    batch_X = X[step * batch_size:(step + 1) * batch_size]
                    batch_y = y[step * batch_size:(step + 1) * batch_size]
                output = self.forward(batch_X, training=True)
                data_loss, regularization_loss = self.loss.calculate(output, batch_y, include_regularization=True)
                loss = data_loss + regularization_loss
                predictions = self.output_layer_activation.predictions(output)
                accuracy = self.accuracy.calculate(predictions, batch_y)
                self.backward(output, batch_y)
                self.optimizer.pre_update_params()
                for layer in self.trainable_layers:
                    self.optimizer.update_params(layer)
                self.optimizer.post_update_params()
                if not step % print_every or step == train_steps - 1:
                    print(f'step: {step}, ' +
                          f'acc: {accuracy:.3f}, ' +
                          f'loss: {loss:.3f} (' +
                          f'data_loss: {data_loss:.3f}, ' +
                          f'reg_loss: {regularization_loss:.3f}), ' +
                          f'lr: {self.optimizer.current_learning_rate}')
            epoch_data_loss, epoch_regularization_loss = \
                self.loss.calculate_accumulated(include_regularization=True)
            epoch_loss = epoch_data_loss + epoch_regularization_loss
            epoch_accuracy = self.accuracy.calculate_accumulated()
            print(f'training, ' +
                  f'acc: {epoch_accuracy:.3f}, ' +
                  f'loss: {epoch_loss:.3f} (' +
                  f'data_loss: {epoch_data_loss:.3f}, ' +
                  f'reg_loss: {epoch_regularization_loss:.3f}), ' +
                  f'lr: {self.optimizer.current_learning_rate}')
            if validation_data is not None:
                self.evaluate(*validation_data, batch_size=batch_size)

    def evaluate(self, X_val, y_val, *, batch_size=None):
        validation_steps = 1
        if batch_size is not None:
            validation_steps = len(X_val) // batch_size
            if validation_steps * batch_size < len(X_val):
                validation_steps += 1
        self.loss.new_pass()
        self.accuracy.new_pass()
        for step in range(validation_steps):
            if batch_size is None:
                batch_X = X_val
                batch_y = y_val
            else:
                batch_X = X_val[step * batch_size:(step + 1) * batch_size]
                batch_y = y_val[step * batch_size:(step + 1) * batch_size]
            output = self.forward(batch_X, training=False)
            self.loss.calculate(output, batch_y)
            predictions = self.output_layer_activation.predictions(output)
            self.accuracy.calculate(predictions, batch_y)
        validation_loss = self.loss.calculate_accumulated()
        validation_accuracy = self.accuracy.calculate_accumulated()
        print(f'validation, ' +
              f'acc: {validation_accuracy:.3f}, ' +
              f'loss: {validation_loss:.3f}')

    def predict(self, X, *, batch_size=None):
        prediction_steps = 1
        if batch_size is not None:
            prediction_steps = len(X) // batch_size
            if prediction_steps * batch_size < len(X):
                prediction_steps += 1
        output = []
        for step in range(prediction_steps):
            if batch_size is None:
                batch_X = X
            else:
                batch_X = X[step * batch_size:(step + 1) * batch_size]
            batch_output = self.forward(batch_X, training=False)
            output.append(batch_output)
        return np.vstack(output)

    def forward(self, X, training=False):
        self.input_layer.forward(X, training)
        for layer in self.layers:
            layer.forward(layer.prev.output, training)
        return layer.output

    def backward(self, output, y):
        if self.softmax_classifier_output is not None:
            self.softmax_classifier_output.backward(output, y)
            self.layers[-1].dinputs = self.softmax_classifier_output.dinputs
            for layer in reversed(self.layers[:-1]):
                layer.backward(layer.next.dinputs)
            return
        self.loss.backward(output, y)
        for layer in reversed(self.layers):
            layer.backward(layer.next.dinputs)

    def get_parameters(self):
        parameters = []
        for layer in self.trainable_layers:
            parameters.append(layer.get_parameters())
        return parameters

    def set_parameters(self, parameters):
        for parameter_set, layer in zip(parameters, self.trainable_layers):
            layer.set_parameters(*parameter_set)

    def save_parameters(self, path):
        with open(path, 'wb') as f:
            pickle.dump(self.get_parameters(), f)

    def load_parameters(self, path):
        with open(path, 'rb') as f:
            self.set_parameters(pickle.load(f))

    def save(self, path):
        model = copy.deepcopy(self)
        model.loss.new_pass()
        model.accuracy.new_pass()
        model.input_layer.__dict__.pop('output', None)
        model.loss.__dict__.pop('dinputs', None)
        for layer in model.layers:
            for property in ['inputs', 'output', 'dinputs', 'dweights', 'dbiases']:
                layer.__dict__.pop(property, None)
        with open(path, 'wb') as f:
            pickle.dump(model, f)

    @staticmethod
    def load(path):
        with open(path, 'rb') as f:
            model = pickle.load(f)
        return model
