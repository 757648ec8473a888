"""The final API of "Neural Networks from Scratch in Python" (nnfs), on fastnn's kernels.

``from fastnn.nnfs import *`` replaces the book's class definitions: the same names,
signatures, defaults, attributes (``.output``, ``.dinputs``, ``.dweights``,
``weight_momentums``, ``weight_cache``, ...) and numbers (tests/reference_nnfs.py is the
NumPy oracle), with each layer step done in one C call (fastnn._kernels._dense).

Layers are ordinary picklable Python objects holding NumPy arrays, so ``Model.save``
(deepcopy + ``__dict__`` edits + pickle) works as in the book. Arrays of one float dtype
(float32 or float64, any layout for dense layers) go straight to the kernels; anything
else (lists, integers, mixed dtypes) is cast once at the boundary, with NumPy's dtype
rules, and exotic cases (e.g. biases set to an unusual shape) run the book's own formula.

Two conveniences over the final chapter, so chapter-style code runs too: ``forward``'s
``training`` argument is optional (``False``; ``True`` for ``Layer_Dropout``, which always
dropped before the Model chapter), and ``Loss.calculate`` / ``Accuracy.calculate`` work
before any ``new_pass()``.
"""
import copy
import pickle
from sys import getrefcount as _getrefcount

import numpy as np

from ._kernels import _dense as _k
from ._threads import resolve_n_threads
from ._validate import compute_dtypes

__all__ = [
    "Layer_Dense", "Layer_Dropout", "Layer_Input",
    "Activation_ReLU", "Activation_Softmax", "Activation_Sigmoid", "Activation_Linear",
    "Activation_Softmax_Loss_CategoricalCrossentropy",
    "Loss", "Loss_CategoricalCrossentropy", "Loss_BinaryCrossentropy",
    "Loss_MeanSquaredError", "Loss_MeanAbsoluteError",
    "Optimizer_SGD", "Optimizer_Adagrad", "Optimizer_RMSprop", "Optimizer_Adam",
    "Accuracy", "Accuracy_Categorical", "Accuracy_Regression",
    "Model",
]




def _nt():
    # thread count, asked for by a kernel only when a call has enough work to share
    return resolve_n_threads(None)


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


def _spare(layer, name, nxt=None):
    """``layer.<name>`` when nothing but ``layer`` (and ``nxt.inputs``) refers to it, else None.

    The book's layers make fresh arrays every step; for the big ones (a 3000 x 64 batch is
    1.5 MB, and a fresh one costs hundreds of page faults) fastnn writes the new values into
    the old array instead - but only when no one can tell: the array owns its data, and no
    view, user variable or other attribute refers to it (its reference count says so), and
    it is about to be replaced anyway (``nxt.inputs`` is rebound in the same forward pass).
    """
    a, refs = _refcount_of(layer, name)
    if a is None:
        return None
    if nxt is not None and getattr(nxt, "__dict__", {}).get("inputs") is a:
        refs -= 1
    return a if refs == _FREE else None


def _kernel_array(x, *others):
    """(C-contiguous array in the kernel dtype, result dtype) for x given the other operands."""
    x = np.asarray(x)
    kd, rd = compute_dtypes(x.dtype, *[np.asarray(o).dtype for o in others])
    return np.ascontiguousarray(x, dtype=kd), rd


def _finish(out, rd):
    return out if out.dtype == rd else out.astype(rd)


def _labels(y_true, rows, n_classes, who):
    """1-D integer labels -> contiguous intp array; clear errors for anything else."""
    t = np.asarray(y_true)
    if t.shape != (rows,):
        raise ValueError("%s: y_true has shape %s, but the predictions have shape %s: give one "
                         "label per sample (%d,) or one-hot targets of the predictions' shape"
                         % (who, t.shape, (rows, n_classes), rows))
    if t.dtype.kind not in "biu":
        raise TypeError("%s: class labels must be integers, got dtype %s" % (who, t.dtype))
    return np.ascontiguousarray(t, dtype=np.intp)


def _bad_labels(t, n_classes, who):
    t = np.asarray(t)
    bad = t[(t < 0) | (t >= n_classes)] if t.dtype.kind in "iu" else t
    return ValueError("%s: labels must be in [0, %d); got %s" % (who, n_classes, bad[:5].tolist()))


def _as_2d(x, who, what="inputs"):
    x = np.asarray(x)
    if x.ndim != 2:
        raise ValueError("%s: %s must be 2-D (samples, features), got shape %s" % (who, what, x.shape))
    return x


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
        """``self.output = inputs @ weights + biases``; inputs (samples, n_inputs)."""
        self.inputs = inputs
        out = _k.dense_forward(inputs, self.weights, self.biases, False, _nt)
        self.output = out if out is not None else self._forward_cast(inputs)

    def _forward_relu(self, inputs, relu):
        # Model's fused step: this layer's forward and the ReLU after it in one kernel call
        self.inputs = inputs
        r = _k.dense_forward(inputs, self.weights, self.biases, True, _nt,
                             _spare(self, "output", relu), _spare(relu, "output", getattr(relu, "next", None)))
        if r is None:
            self.forward(inputs)
            relu.forward(self.output)
            return
        self.output, relu.output = r
        relu.inputs = self.output

    def _operands(self, inputs, who):
        x = np.asarray(inputs)
        W = np.asarray(self.weights)
        b = np.asarray(self.biases)
        if x.ndim == 1:  # one sample: np.dot(x, W) + b has shape (1, n_neurons)
            x = x.reshape(1, -1)
        if W.ndim != 2 or b.shape != (1, W.shape[1]) or x.ndim != 2:
            return None
        if x.shape[1] != W.shape[0]:
            raise ValueError("%s: inputs have shape %s but weights have shape %s: inputs need %d "
                             "columns (one per layer input)" % (who, np.shape(inputs), W.shape, W.shape[0]))
        if 0 in x.shape or 0 in W.shape:
            return None
        kd, rd = compute_dtypes(x.dtype, W.dtype, b.dtype)
        return x.astype(kd, copy=False), W.astype(kd, copy=False), b.astype(kd, copy=False), rd

    def _forward_cast(self, inputs):
        ops = self._operands(inputs, "Layer_Dense.forward")
        if ops is None:  # unusual shapes: the book's own expression
            return np.dot(inputs, self.weights) + self.biases
        x, W, b, rd = ops
        return _finish(_k.dense_forward(x, W, b, False, _nt), rd)

    def backward(self, dvalues):
        """Set ``dweights = inputs.T @ dvalues`` (+ regularisation), ``dbiases``, ``dinputs``."""
        r = _k.dense_backward(self.inputs, dvalues, self.weights, self.biases,
                              self.weight_regularizer_l1, self.weight_regularizer_l2,
                              self.bias_regularizer_l1, self.bias_regularizer_l2, _nt,
                              _spare(self, "dweights"), _spare(self, "dbiases"), _spare(self, "dinputs"))
        if r is None:
            r = self._backward_cast(dvalues)
        self.dweights, self.dbiases, self.dinputs = r

    def _backward_cast(self, dvalues):
        ops = self._operands(self.inputs, "Layer_Dense.backward")
        dv = np.asarray(dvalues)
        if ops is None or dv.shape != (ops[0].shape[0], ops[1].shape[1]):
            if ops is not None:
                raise ValueError("Layer_Dense.backward: dvalues have shape %s, but the layer's "
                                 "output has shape %s" % (dv.shape, (ops[0].shape[0], ops[1].shape[1])))
            return _dense_backward_numpy(self, dvalues)
        x, W, b, _ = ops
        kd, _ = compute_dtypes(x.dtype, dv.dtype, W.dtype)
        r = _k.dense_backward(x.astype(kd, copy=False), dv.astype(kd, copy=False),
                              W.astype(kd, copy=False), b.astype(kd, copy=False),
                              self.weight_regularizer_l1, self.weight_regularizer_l2,
                              self.bias_regularizer_l1, self.bias_regularizer_l2, _nt)
        # each result in the dtype the book's expression gives it
        x0, W0 = np.asarray(self.inputs), np.asarray(self.weights)
        return (_finish(r[0], compute_dtypes(x0.dtype, dv.dtype)[1]),
                _finish(r[1], compute_dtypes(dv.dtype)[1]),
                _finish(r[2], compute_dtypes(dv.dtype, W0.dtype)[1]))

    def get_parameters(self):
        return self.weights, self.biases

    def set_parameters(self, weights, biases):
        self.weights = weights
        self.biases = biases


def _dense_backward_numpy(layer, dvalues):
    # the book's formulas, for shapes the kernel does not take
    dweights = np.dot(layer.inputs.T, dvalues)
    dbiases = np.sum(dvalues, axis=0, keepdims=True)
    if layer.weight_regularizer_l1 > 0:
        dL1 = np.ones_like(layer.weights)
        dL1[layer.weights < 0] = -1
        dweights += layer.weight_regularizer_l1 * dL1
    if layer.weight_regularizer_l2 > 0:
        dweights += 2 * layer.weight_regularizer_l2 * layer.weights
    if layer.bias_regularizer_l1 > 0:
        dL1 = np.ones_like(layer.biases)
        dL1[layer.biases < 0] = -1
        dbiases += layer.bias_regularizer_l1 * dL1
    if layer.bias_regularizer_l2 > 0:
        dbiases += 2 * layer.bias_regularizer_l2 * layer.biases
    return dweights, dbiases, np.dot(dvalues, layer.weights.T)


class Layer_Dropout:
    """Inverted dropout. ``rate`` is the fraction dropped; ``self.rate`` keeps ``1 - rate``."""

    def __init__(self, rate):
        self.rate = 1 - rate

    def forward(self, inputs, training=True):
        self.inputs = inputs
        if not training:
            self.output = inputs.copy()
            return
        # same draws from NumPy's global generator as the book
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
        out = _k.relu_forward(inputs, _nt, _spare(self, "output", getattr(self, "next", None)))
        if out is None:
            x = np.asarray(inputs)
            if x.dtype.kind == "f" and x.dtype.itemsize in (4, 8):
                out = _k.relu_forward(np.ascontiguousarray(x, dtype=x.dtype.newbyteorder("=")), _nt)
            if out is None:
                out = np.maximum(0, inputs)
        self.output = out

    def backward(self, dvalues):
        """``dinputs = dvalues`` with zeros where ``inputs <= 0``."""
        d = _k.relu_backward(self.inputs, dvalues, _nt, _spare(self, "dinputs"))
        if d is None:
            x, dv = np.asarray(self.inputs), np.asarray(dvalues)
            if x.shape != dv.shape:
                raise ValueError("Activation_ReLU.backward: dvalues have shape %s, but the inputs "
                                 "had shape %s" % (dv.shape, x.shape))
            d = np.array(dv, copy=True)
            d[x <= 0] = 0
        self.dinputs = d

    def predictions(self, outputs):
        return outputs


class Activation_Softmax:

    def forward(self, inputs, training=False):
        """Row-wise ``exp(x - max) / sum(exp(x - max))``; inputs (samples, classes)."""
        self.inputs = inputs
        out = _k.softmax_forward(inputs, _nt)
        if out is None:
            x = _as_2d(inputs, "Activation_Softmax.forward")
            if x.shape[1] == 0:
                out = np.exp(x)  # empty rows: the book's result, without its warnings
            else:
                xc, rd = _kernel_array(x)
                out = _finish(_k.softmax_forward(xc, _nt), rd)
        self.output = out

    def backward(self, dvalues):
        """``dinputs[i] = (diagflat(y_i) - y_i y_i^T) @ dvalues[i]`` for each sample."""
        d = _k.softmax_backward(self.output, dvalues, _nt)
        if d is None:
            dv = np.asarray(dvalues)
            y = np.asarray(self.output)
            if y.shape != dv.shape or dv.ndim != 2:
                raise ValueError("Activation_Softmax.backward: dvalues have shape %s, but the "
                                 "output has shape %s" % (dv.shape, y.shape))
            kd, _ = compute_dtypes(y.dtype, dv.dtype)
            d = np.empty_like(dv)
            if dv.size:
                d[...] = _k.softmax_backward(np.ascontiguousarray(y, dtype=kd),
                                             np.ascontiguousarray(dv, dtype=kd), _nt)
        self.dinputs = d

    def predictions(self, outputs):
        p = _k.argmax_rows(outputs)
        return p if p is not None else np.argmax(outputs, axis=1)


class Activation_Sigmoid:

    def forward(self, inputs, training=False):
        """``self.output = 1 / (1 + exp(-inputs))``."""
        self.inputs = inputs
        x = np.asarray(inputs)
        if x.dtype.kind in "biuf" and x.ndim:
            from .functions import sigmoid
            self.output = sigmoid(x)
        else:
            self.output = 1 / (1 + np.exp(-inputs))

    def backward(self, dvalues):
        self.dinputs = dvalues * (1 - self.output) * self.output

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
# and updates weights, biases and that state in place in one kernel call per layer. Arrays a
# kernel does not take (mixed dtypes, non-contiguous) get the book's NumPy formulas.

class _Optimizer:

    def pre_update_params(self):
        if self.decay:
            self.current_learning_rate = self.learning_rate * (1. / (1. + self.decay * self.iterations))

    def post_update_params(self):
        self.iterations += 1

    def __repr__(self):
        return "%s(learning_rate=%r, decay=%r)" % (type(self).__name__, self.learning_rate, self.decay)


class Optimizer_SGD(_Optimizer):

    def __init__(self, learning_rate=1., decay=0., momentum=0.):
        self.learning_rate = learning_rate
        self.current_learning_rate = learning_rate
        self.decay = decay
        self.iterations = 0
        self.momentum = momentum

    def update_params(self, layer):
        lr = self.current_learning_rate
        if self.momentum:
            if not hasattr(layer, 'weight_momentums'):
                layer.weight_momentums = np.zeros_like(layer.weights)
                layer.bias_momentums = np.zeros_like(layer.biases)
            if _k.sgd_momentum_update((layer.weights, layer.dweights, layer.weight_momentums,
                                       layer.biases, layer.dbiases, layer.bias_momentums),
                                      lr, self.momentum):
                return
            weight_updates = self.momentum * layer.weight_momentums - lr * layer.dweights
            layer.weight_momentums = weight_updates
            bias_updates = self.momentum * layer.bias_momentums - lr * layer.dbiases
            layer.bias_momentums = bias_updates
        else:
            if _k.sgd_update((layer.weights, layer.dweights, layer.biases, layer.dbiases), lr):
                return
            weight_updates = -lr * layer.dweights
            bias_updates = -lr * layer.dbiases
        layer.weights += weight_updates
        layer.biases += bias_updates


class Optimizer_Adagrad(_Optimizer):

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
        lr = self.current_learning_rate
        if _k.adagrad_update((layer.weights, layer.dweights, layer.weight_cache,
                              layer.biases, layer.dbiases, layer.bias_cache), lr, self.epsilon):
            return
        layer.weight_cache += layer.dweights ** 2
        layer.bias_cache += layer.dbiases ** 2
        layer.weights += -lr * layer.dweights / (np.sqrt(layer.weight_cache) + self.epsilon)
        layer.biases += -lr * layer.dbiases / (np.sqrt(layer.bias_cache) + self.epsilon)


class Optimizer_RMSprop(_Optimizer):

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
        lr = self.current_learning_rate
        if _k.rmsprop_update((layer.weights, layer.dweights, layer.weight_cache,
                              layer.biases, layer.dbiases, layer.bias_cache),
                             lr, self.epsilon, self.rho):
            return
        layer.weight_cache = self.rho * layer.weight_cache + (1 - self.rho) * layer.dweights ** 2
        layer.bias_cache = self.rho * layer.bias_cache + (1 - self.rho) * layer.dbiases ** 2
        layer.weights += -lr * layer.dweights / (np.sqrt(layer.weight_cache) + self.epsilon)
        layer.biases += -lr * layer.dbiases / (np.sqrt(layer.bias_cache) + self.epsilon)


class Optimizer_Adam(_Optimizer):

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
        lr = self.current_learning_rate
        corr1 = 1 - self.beta_1 ** (self.iterations + 1)   # bias corrections
        corr2 = 1 - self.beta_2 ** (self.iterations + 1)
        if _k.adam_update((layer.weights, layer.dweights, layer.weight_momentums, layer.weight_cache,
                           layer.biases, layer.dbiases, layer.bias_momentums, layer.bias_cache),
                          lr, self.epsilon, self.beta_1, self.beta_2, corr1, corr2):
            return
        layer.weight_momentums = self.beta_1 * layer.weight_momentums + (1 - self.beta_1) * layer.dweights
        layer.bias_momentums = self.beta_1 * layer.bias_momentums + (1 - self.beta_1) * layer.dbiases
        weight_momentums_corrected = layer.weight_momentums / corr1
        bias_momentums_corrected = layer.bias_momentums / corr1
        layer.weight_cache = self.beta_2 * layer.weight_cache + (1 - self.beta_2) * layer.dweights ** 2
        layer.bias_cache = self.beta_2 * layer.bias_cache + (1 - self.beta_2) * layer.dbiases ** 2
        weight_cache_corrected = layer.weight_cache / corr2
        bias_cache_corrected = layer.bias_cache / corr2
        layer.weights += -lr * weight_momentums_corrected / (np.sqrt(weight_cache_corrected) + self.epsilon)
        layer.biases += -lr * bias_momentums_corrected / (np.sqrt(bias_cache_corrected) + self.epsilon)


# ---- losses -------------------------------------------------------------------------------

def _abs_sq(a):
    r = _k.abs_sq_sums(a)
    if r is None:
        a = np.asarray(a)
        r = np.sum(np.abs(a)), np.sum(a * a)
    return r


class Loss:
    """Common loss: ``calculate`` = mean of ``forward``'s sample losses (+ regularisation)."""

    accumulated_sum = 0
    accumulated_count = 0

    def regularization_loss(self):
        regularization_loss = 0
        for layer in self.trainable_layers:
            wl1, wl2 = layer.weight_regularizer_l1, layer.weight_regularizer_l2
            bl1, bl2 = layer.bias_regularizer_l1, layer.bias_regularizer_l2
            if wl1 > 0 or wl2 > 0:
                s_abs, s_sq = _abs_sq(layer.weights)
                if wl1 > 0:
                    regularization_loss += wl1 * s_abs      # l1 * sum(|weights|)
                if wl2 > 0:
                    regularization_loss += wl2 * s_sq       # l2 * sum(weights * weights)
            if bl1 > 0 or bl2 > 0:
                s_abs, s_sq = _abs_sq(layer.biases)
                if bl1 > 0:
                    regularization_loss += bl1 * s_abs
                if bl2 > 0:
                    regularization_loss += bl2 * s_sq
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
    """``-log(clip(y_pred, 1e-7, 1 - 1e-7))`` of the true class; labels (1-D) or one-hot (2-D)."""

    def _forward_total(self, y_pred, y_true):
        if type(self).forward is not Loss_CategoricalCrossentropy.forward:
            return Loss._forward_total(self, y_pred, y_true)
        r = _k.cce_forward(y_pred, y_true)
        if r is None or r.__class__ is int:
            r = self._cast(y_pred, y_true)
        return r

    def forward(self, y_pred, y_true):
        r = _k.cce_forward(y_pred, y_true)
        if r is None or r.__class__ is int:
            r = self._cast(y_pred, y_true)
        return r[0]

    def _cast(self, y_pred, y_true):
        who = "Loss_CategoricalCrossentropy.forward"
        y = _as_2d(y_pred, who, "y_pred")
        t = np.asarray(y_true)
        rows, n = y.shape
        if t.ndim == 2:
            if t.shape != y.shape:
                raise ValueError("%s: one-hot y_true has shape %s, but y_pred has shape %s"
                                 % (who, t.shape, y.shape))
            kd, rd = compute_dtypes(y.dtype, t.dtype)
            yc, tc = np.ascontiguousarray(y, dtype=kd), np.ascontiguousarray(t, dtype=kd)
        else:
            tc = _labels(t, rows, n, who)
            kd, rd = compute_dtypes(y.dtype)
            yc = np.ascontiguousarray(y, dtype=kd)
        if n == 0 and rows:
            raise ValueError("%s: y_pred has shape %s: no classes to pick from" % (who, y.shape))
        if rows == 0:
            return np.zeros(0, dtype=rd), 0.0
        r = _k.cce_forward(yc, tc)
        if r.__class__ is int:
            raise _bad_labels(tc, n, who)
        return _finish(r[0], rd), r[1]

    def backward(self, dvalues, y_true):
        """``dinputs = -y_true / dvalues / samples`` (labels become one-hot float64 rows)."""
        who = "Loss_CategoricalCrossentropy.backward"
        dv = _as_2d(dvalues, who, "dvalues")
        t = np.asarray(y_true)
        rows, n = dv.shape
        if t.ndim == 1:
            lab = _labels(t, rows, n, who)
            if lab.size and (lab.min() < 0 or lab.max() >= n):
                raise _bad_labels(lab, n, who)
            kd, rd = compute_dtypes(dv.dtype, np.float64)  # np.eye is float64
            t = np.zeros((rows, n), dtype=kd)
            t[np.arange(rows), lab] = 1
        elif t.shape != dv.shape:
            raise ValueError("%s: one-hot y_true has shape %s, but dvalues have shape %s"
                             % (who, t.shape, dv.shape))
        else:
            kd, rd = compute_dtypes(dv.dtype, t.dtype)
        d = _k.cce_backward_onehot(np.ascontiguousarray(dv, dtype=kd), np.ascontiguousarray(t, dtype=kd))
        if d is None:  # empty
            d = -np.asarray(t, dtype=kd) / dv / rows
        self.dinputs = _finish(d, rd)


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
        d = _k.softmax_cce_backward(dvalues, y_true)
        if d is None or d.__class__ is int:
            who = "Activation_Softmax_Loss_CategoricalCrossentropy.backward"
            dv = _as_2d(dvalues, who, "dvalues")
            t = np.asarray(y_true)
            if t.ndim == 2:
                if t.shape != dv.shape:
                    raise ValueError("%s: one-hot y_true has shape %s, but dvalues have shape %s"
                                     % (who, t.shape, dv.shape))
                t = np.argmax(t, axis=1)
            lab = _labels(t, dv.shape[0], dv.shape[1], who)
            dc, rd = _kernel_array(dv)
            d = _k.softmax_cce_backward(dc, lab)
            if d.__class__ is int:
                raise _bad_labels(lab, dv.shape[1], who)
            if d is None:  # empty
                d = dc / max(dv.shape[0], 1)
            d = _finish(d, rd)
        self.dinputs = d


class Loss_BinaryCrossentropy(Loss):

    def forward(self, y_pred, y_true):
        y_pred_clipped = np.clip(y_pred, 1e-7, 1 - 1e-7)
        sample_losses = -(y_true * np.log(y_pred_clipped) + (1 - y_true) * np.log(1 - y_pred_clipped))
        return np.mean(sample_losses, axis=-1)

    def backward(self, dvalues, y_true):
        samples = len(dvalues)
        outputs = len(dvalues[0])
        clipped_dvalues = np.clip(dvalues, 1e-7, 1 - 1e-7)
        self.dinputs = -(y_true / clipped_dvalues - (1 - y_true) / (1 - clipped_dvalues)) / outputs
        self.dinputs = self.dinputs / samples


class Loss_MeanSquaredError(Loss):

    def forward(self, y_pred, y_true):
        return np.mean((y_true - y_pred) ** 2, axis=-1)

    def backward(self, dvalues, y_true):
        samples = len(dvalues)
        outputs = len(dvalues[0])
        self.dinputs = -2 * (y_true - dvalues) / outputs
        self.dinputs = self.dinputs / samples


class Loss_MeanAbsoluteError(Loss):

    def forward(self, y_pred, y_true):
        return np.mean(np.abs(y_true - y_pred), axis=-1)

    def backward(self, dvalues, y_true):
        samples = len(dvalues)
        outputs = len(dvalues[0])
        self.dinputs = np.sign(y_true - dvalues) / outputs
        self.dinputs = self.dinputs / samples


# ---- accuracy -----------------------------------------------------------------------------

class Accuracy:

    accumulated_sum = 0
    accumulated_count = 0

    def calculate(self, predictions, y):
        comparisons = self.compare(predictions, y)
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

    ``forward`` runs a ``Layer_Dense`` followed by an ``Activation_ReLU`` as one kernel call;
    every layer's attributes are set exactly as the book's layer-by-layer loop sets them.
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
        layers = self.layers
        n = len(layers)
        i = 0
        while i < n:
            layer = layers[i]
            if (i + 1 < n and type(layer) is Layer_Dense and type(layers[i + 1]) is Activation_ReLU
                    and layers[i + 1].prev is layer):
                layer._forward_relu(layer.prev.output, layers[i + 1])
                i += 2
            else:
                layer.forward(layer.prev.output, training)
                i += 1
        return layers[-1].output

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
