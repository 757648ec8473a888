"""The book's nets: ch04 ``TwoLayerNet``, ch05's ReLU ``TwoLayerNet`` (``ReluTwoLayerNet``),
ch06 ``MultiLayerNet`` and ``MultiLayerNetExtend``, on fastnn's kernels.

Names, arguments, defaults, init draws (the same ``np.random`` calls in the same order, so
``np.random.seed(0)`` gives the book's parameters exactly) and ``params`` keys are the
book's. ``params`` is a plain dict of NumPy arrays, read afresh on every call:
``net.params['W1'] -= lr * grads['W1']`` and ``net.params['W1'] = new_array`` both take
effect on the next call (the book's ``layers`` follow it too).

Each net is a layer list (``fastnn._engine``): ``gradient(x, t)`` is one executor call
(forward and backward of every layer in C, dropout and batchnorm included) and
``numerical_gradient(x, t)`` one call of the finite-difference engine: one forward pass,
then, for every parameter, the loss at ``w + h`` and ``w - h`` re-evaluated incrementally
from the perturbed layer on, rows whose input is exactly 0 skipped, parameters in parallel.
The perturbed points are the book's (rounded in the parameter's dtype); the loss is the
book's (mean of ``-log(y_t + 1e-7)``, plus ``0.5 * lambda * sum(W**2)`` per weight with
weight decay), evaluated in double -- for float32 params that is the true central
difference at the float32 points rather than float32 rounding noise. NaN/inf give the
book's NaN/inf. Results do not depend on the thread count.
"""
import os
import pickle
import sys
from collections import OrderedDict

import numpy as np

from . import _engine as E
from . import functions as F
from . import layers as _layers
from .gradient import numerical_gradient
from .gradient import numerical_gradient as _generic_numerical_gradient
from .layers import *  # noqa: F401,F403 - handed on, as the book's net modules do

# `from two_layer_net import *` (ch04: common.functions' names; ch05: common.layers'),
# `from common.multi_layer_net(_extend) import *`, `from simple_convnet import *` give the
# names those modules import (sys, os, np, OrderedDict, the layers and functions,
# numerical_gradient): so does this module, beside its nets
_NETS = ["TwoLayerNet", "ReluTwoLayerNet", "MultiLayerNet", "MultiLayerNetExtend",
         "SimpleConvNet", "DeepConvNet", "MnistCNN"]
__all__ = (["sys", "os", "pickle", "np", "OrderedDict", "numerical_gradient"]
           + [n for n in _layers.__all__ if n != "np"] + _NETS)

_ACTIVATIONS = ("relu", "sigmoid")


# --- shared helpers ------------------------------------------------------------------

def _as_batch(x, n_in, cls):
    """x as a (B, n_in) array (1-D x is one sample; N-d x is flattened per sample)."""
    x = np.asarray(x)
    if x.ndim == 1:
        x = x.reshape(1, -1)
    elif x.ndim > 2:
        x = x.reshape(x.shape[0], -1)
    if x.ndim != 2 or x.shape[1] != n_in or x.shape[0] == 0:
        raise ValueError("%s: x has shape %s, but the net expects (batch, %d) (or (%d,) for "
                         "one sample)" % (cls, np.shape(x), n_in, n_in))
    if x.dtype.kind not in "biuf":
        raise TypeError("%s: x must be numeric, got dtype %s" % (cls, x.dtype))
    return x


def _labels_of(t):
    t = np.asarray(t)
    return t if t.ndim == 1 else np.argmax(t, axis=1)


def _book_loop(loss_W, params, keys):
    """The book's loop over every element of every param (an f the engine cannot
    evaluate: a random loss (dropout), or params of an unusual dtype)."""
    return {k: _generic_numerical_gradient(loss_W, params[k]) for k in keys}


def _engine_numerical_gradient(net, specs, lam, x, t, n_threads, func):
    """The engine's central differences of ``net.loss(x, t)``; the book's loop for
    params of a dtype other than float32/float64."""
    grads = E.numerical_gradient(net.params, specs, x, t, lam, n_threads, func=func,
                                 stacklevel=4)
    if grads is None:
        keys = [k for s in specs for k in s.keys]
        return _book_loop(lambda W: net.loss(x, t), net.params, keys)
    return grads


# --- ch04 TwoLayerNet ----------------------------------------------------------------

class TwoLayerNet:
    """The book's ch04 two-layer net: affine -> sigmoid -> affine -> softmax.

    Parameters
    ----------
    input_size, hidden_size, output_size : int
    weight_init_std : float, default 0.01
        ``W = weight_init_std * np.random.randn(...)``, biases zero (the book's draws).

    Attributes
    ----------
    params : dict
        ``'W1'`` (input_size, hidden_size), ``'b1'`` (hidden_size,),
        ``'W2'`` (hidden_size, output_size), ``'b2'`` (output_size,).

    See Also
    --------
    ReluTwoLayerNet : ch05's version (ReLU, ``layers``, ``lastLayer``).
    """

    _weights = (("W1", "b1"), ("W2", "b2"))
    _specs = E.mlp_spec(_weights, "sigmoid")

    def __init__(self, input_size, hidden_size, output_size, weight_init_std=0.01):
        self.params = {}
        self.params["W1"] = weight_init_std * np.random.randn(input_size, hidden_size)
        self.params["b1"] = np.zeros(hidden_size)
        self.params["W2"] = weight_init_std * np.random.randn(hidden_size, output_size)
        self.params["b2"] = np.zeros(output_size)

    def __repr__(self):
        W1, W2 = self.params["W1"], self.params["W2"]
        return "%s(%d-%d-%d, %s)" % (type(self).__name__, W1.shape[0], W1.shape[1],
                                     W2.shape[1], W1.dtype)

    def predict(self, x):
        """Softmax probabilities, shape (batch, output_size) ((output_size,) for 1-D x)."""
        W1, W2 = self.params["W1"], self.params["W2"]
        b1, b2 = self.params["b1"], self.params["b2"]
        a1 = F.affine(x, W1, b1)
        z1 = F.sigmoid(a1)
        a2 = F.affine(z1, W2, b2)
        return F.softmax(a2)

    def loss(self, x, t):
        """Mean cross-entropy of ``predict(x)`` against labels or one-hot ``t``."""
        y = self.predict(x)
        return F.cross_entropy_error(y, t)

    def accuracy(self, x, t):
        """Fraction of rows whose argmax matches ``t`` (labels or one-hot)."""
        y = np.argmax(self.predict(x), axis=1)
        return np.sum(y == _labels_of(t)) / float(x.shape[0])

    def numerical_gradient(self, x, t, n_threads=None):
        """Central-difference gradients (h = 1e-4) of ``loss(x, t)``, by the fused engine.

        Returns a dict with the params' keys; each gradient has its param's shape and dtype.
        """
        return _engine_numerical_gradient(self, self._specs, None, x, t, n_threads,
                                          type(self).__name__ + ".numerical_gradient")

    def gradient(self, x, t):
        """Backpropagation gradients of ``loss(x, t)`` (dict with the params' keys)."""
        return E.gradient(self.params, self._specs, x, t, None,
                          func=type(self).__name__ + ".gradient")


# --- ch05 TwoLayerNet ----------------------------------------------------------------

class _BookLayers:
    """The book's ``layers`` (an OrderedDict of fastnn.layers objects) for a net whose
    params dict is the truth: every read of ``net.layers`` points the Affine (and
    BatchNorm) layers at the current ``params`` arrays, so rebinding
    ``net.params['W1']`` is followed as the fused paths follow it."""

    def _bind_layers(self):
        layers = self.__dict__["_layers"]
        for name, (wk, bk) in self._layer_params.items():
            layer = layers[name]
            if isinstance(layer, _layers.BatchNormalization):
                layer.gamma = self.params[wk]
                layer.beta = self.params[bk]
            else:
                layer.W = self.params[wk]
                layer.b = self.params[bk]
        return layers

    @property
    def layers(self):
        return self._bind_layers()

    @layers.setter
    def layers(self, value):
        self.__dict__["_layers"] = value


class ReluTwoLayerNet(_BookLayers):
    """The book's ch05 ``TwoLayerNet``: Affine1 -> Relu1 -> Affine2 -> SoftmaxWithLoss.

    Same constructor, draws and ``params`` as ch04's ``TwoLayerNet``; ``layers`` is an
    OrderedDict with the book's keys ``'Affine1'``, ``'Relu1'``, ``'Affine2'`` and
    ``lastLayer`` the ``SoftmaxWithLoss``. ``predict`` returns the scores (before
    softmax), as the book's. ``gradient`` is one fused call with the numbers of the
    book's layer-by-layer backprop (it does not leave the layers' forward state behind);
    ``numerical_gradient`` is the fused engine.

    Use it where the book's ch05 code says ``from two_layer_net import TwoLayerNet``.
    """

    _weights = (("W1", "b1"), ("W2", "b2"))
    _specs = E.mlp_spec(_weights, "relu")
    _layer_params = {"Affine1": ("W1", "b1"), "Affine2": ("W2", "b2")}

    def __init__(self, input_size, hidden_size, output_size, weight_init_std=0.01):
        self.params = {}
        self.params["W1"] = weight_init_std * np.random.randn(input_size, hidden_size)
        self.params["b1"] = np.zeros(hidden_size)
        self.params["W2"] = weight_init_std * np.random.randn(hidden_size, output_size)
        self.params["b2"] = np.zeros(output_size)
        layers = OrderedDict()
        layers["Affine1"] = _layers.Affine(self.params["W1"], self.params["b1"])
        layers["Relu1"] = _layers.Relu()
        layers["Affine2"] = _layers.Affine(self.params["W2"], self.params["b2"])
        self.layers = layers
        self.lastLayer = _layers.SoftmaxWithLoss()

    def __repr__(self):
        W1, W2 = self.params["W1"], self.params["W2"]
        return "ReluTwoLayerNet(%d-%d-%d, %s)" % (W1.shape[0], W1.shape[1], W2.shape[1],
                                                  W1.dtype)

    def predict(self, x):
        """Scores (before softmax), shape (batch, output_size): the layers in order."""
        for layer in self.layers.values():
            x = layer.forward(x)
        return x

    def loss(self, x, t):
        """``lastLayer.forward(predict(x), t)``: mean softmax cross-entropy."""
        y = self.predict(x)
        return self.lastLayer.forward(y, t)

    def accuracy(self, x, t):
        """Fraction of rows whose argmax score matches ``t`` (labels or one-hot)."""
        y = np.argmax(self.predict(x), axis=1)
        return np.sum(y == _labels_of(t)) / float(np.shape(x)[0])

    def numerical_gradient(self, x, t, n_threads=None):
        """Central-difference gradients (h = 1e-4) of ``loss(x, t)``, by the fused engine."""
        return _engine_numerical_gradient(self, self._specs, None, x, t, n_threads,
                                          "ReluTwoLayerNet.numerical_gradient")

    def gradient(self, x, t):
        """Backpropagation gradients of ``loss(x, t)``: one fused call."""
        return E.gradient(self.params, self._specs, x, t, None,
                          func="ReluTwoLayerNet.gradient")


# --- ch06 MultiLayerNet ---------------------------------------------------------------

def _init_scale(weight_init_std, fan_in):
    if str(weight_init_std).lower() in ("relu", "he"):
        return np.sqrt(2.0 / fan_in)                       # He: sqrt(2 / fan_in)
    if str(weight_init_std).lower() in ("sigmoid", "xavier"):
        return np.sqrt(1.0 / fan_in)                       # Xavier: sqrt(1 / fan_in)
    return weight_init_std


def _check_activation(activation, cls):
    if activation not in _ACTIVATIONS:
        raise ValueError("%s: activation must be 'relu' or 'sigmoid', got %r"
                         % (cls, activation))


class MultiLayerNet(_BookLayers):
    """The book's ch06 fully connected net: (affine -> activation) x N -> affine -> softmax.

    Parameters
    ----------
    input_size : int
    hidden_size_list : list of int
    output_size : int
    activation : {'relu', 'sigmoid'}, default 'relu'
    weight_init_std : 'relu'/'he', 'sigmoid'/'xavier' or a number, default 'relu'
    weight_decay_lambda : float, default 0
        Adds ``0.5 * lambda * sum(W**2)`` per weight matrix to the loss.

    Attributes
    ----------
    params : dict
        ``'W1'``, ``'b1'``, ..., ``'W{n}'``, ``'b{n}'``, n = len(hidden_size_list) + 1.
    layers : OrderedDict
        The book's ``'Affine1'``, ``'Activation_function1'``, ..., ``'Affine{n}'``
        (fastnn.layers objects, kept pointing at the current ``params`` arrays).
    last_layer : SoftmaxWithLoss

    See Also
    --------
    MultiLayerNet.from_params : build one from an existing params dict (e.g. the book's
        ``sample_weight.pkl``).
    """

    def __init__(self, input_size, hidden_size_list, output_size,
                 activation="relu", weight_init_std="relu", weight_decay_lambda=0):
        _check_activation(activation, "MultiLayerNet")
        self.input_size = input_size
        self.output_size = output_size
        self.hidden_size_list = list(hidden_size_list)
        self.hidden_layer_num = len(hidden_size_list)
        self.weight_decay_lambda = weight_decay_lambda
        self.activation = activation
        self.params = {}
        all_size_list = [input_size] + self.hidden_size_list + [output_size]
        for idx in range(1, len(all_size_list)):
            scale = _init_scale(weight_init_std, all_size_list[idx - 1])
            self.params["W" + str(idx)] = scale * np.random.randn(all_size_list[idx - 1],
                                                                  all_size_list[idx])
            self.params["b" + str(idx)] = np.zeros(all_size_list[idx])
        self._build_layers()

    def _build_layers(self):
        activation_layer = {"sigmoid": _layers.Sigmoid, "relu": _layers.Relu}
        layers = OrderedDict()
        for idx in range(1, self.hidden_layer_num + 1):
            layers["Affine" + str(idx)] = _layers.Affine(self.params["W" + str(idx)],
                                                         self.params["b" + str(idx)])
            layers["Activation_function" + str(idx)] = activation_layer[self.activation]()
        idx = self.hidden_layer_num + 1
        layers["Affine" + str(idx)] = _layers.Affine(self.params["W" + str(idx)],
                                                     self.params["b" + str(idx)])
        self.layers = layers
        self.last_layer = _layers.SoftmaxWithLoss()

    @property
    def _layer_params(self):
        return {"Affine%d" % i: ("W%d" % i, "b%d" % i)
                for i in range(1, self.hidden_layer_num + 2)}

    @classmethod
    def from_params(cls, params, activation="sigmoid", weight_decay_lambda=0):
        """A net using the arrays of ``params`` (``'W1'``, ``'b1'``, ... ``'Wn'``, ``'bn'``).

        The dict's arrays are used as they are (any float dtype and memory order, e.g.
        the book's float32, Fortran-ordered ``sample_weight.pkl``); the sizes are read
        from the weights' shapes. The default activation is the sample net's 'sigmoid'.
        """
        n = 0
        while ("W%d" % (n + 1)) in params:
            n += 1
        if n == 0 or any(("b%d" % i) not in params for i in range(1, n + 1)):
            raise ValueError("MultiLayerNet.from_params: params must hold W1, b1, ..., Wn, bn; "
                             "got keys %s" % sorted(params))
        shapes = [np.shape(params["W%d" % i]) for i in range(1, n + 1)]
        for i in range(n):
            if len(shapes[i]) != 2 or (i and shapes[i][0] != shapes[i - 1][1]) \
                    or np.size(params["b%d" % (i + 1)]) != shapes[i][1]:
                raise ValueError("MultiLayerNet.from_params: inconsistent shapes %s"
                                 % {k: np.shape(v) for k, v in params.items()})
        _check_activation(activation, "MultiLayerNet.from_params")
        net = cls.__new__(cls)
        net.input_size = shapes[0][0]
        net.output_size = shapes[-1][1]
        net.hidden_size_list = [s[1] for s in shapes[:-1]]
        net.hidden_layer_num = n - 1
        net.weight_decay_lambda = weight_decay_lambda
        net.activation = activation
        net.params = {}
        for i in range(1, n + 1):
            net.params["W%d" % i] = params["W%d" % i]
            net.params["b%d" % i] = params["b%d" % i]
        net._build_layers()
        return net

    def __repr__(self):
        sizes = [self.input_size] + list(self.hidden_size_list) + [self.output_size]
        return "MultiLayerNet(%s, activation=%r, weight_decay_lambda=%r)" % (
            "-".join(map(str, sizes)), self.activation, self.weight_decay_lambda)

    def _weight_keys(self):
        return tuple(("W%d" % i, "b%d" % i) for i in range(1, self.hidden_layer_num + 2))

    def _specs(self):
        # built once per structure (the engine keeps its executors per spec tuple)
        key = (self.activation, self.hidden_layer_num)
        cached = self.__dict__.get("_spec_cache")
        if cached is None or cached[0] != key:
            cached = self.__dict__["_spec_cache"] = (key, E.mlp_spec(self._weight_keys(),
                                                                     self.activation))
        return cached[1]

    def predict(self, x):
        """Output scores (logits, before softmax), shape (batch, output_size)."""
        x = np.asarray(x)
        one = x.ndim == 1
        a = _as_batch(x, self.params["W1"].shape[0], "MultiLayerNet.predict")
        keys = self._weight_keys()
        for li, (wk, bk) in enumerate(keys):
            a = F.affine(a, self.params[wk], self.params[bk])
            if li < len(keys) - 1:
                a = F.sigmoid(a) if self.activation == "sigmoid" else F.relu(a)
        return a[0] if one else a

    def loss(self, x, t):
        """Mean softmax cross-entropy of the scores, plus weight decay."""
        y = self.predict(x)
        weight_decay = 0
        for idx in range(1, self.hidden_layer_num + 2):
            W = self.params["W" + str(idx)]
            weight_decay += 0.5 * self.weight_decay_lambda * np.sum(W ** 2)  # 0.5 lambda |W|^2
        return F.softmax_loss(y, t) + weight_decay

    def accuracy(self, x, t):
        """Fraction of rows whose argmax score matches ``t`` (labels or one-hot)."""
        y = np.argmax(self.predict(x), axis=1)
        return np.sum(y == _labels_of(t)) / float(np.shape(x)[0])

    def numerical_gradient(self, x, t, n_threads=None):
        """Central-difference gradients (h = 1e-4) of ``loss(x, t)``, by the fused engine.

        Returns a dict ``'W1'``, ``'b1'``, ...; each gradient has its param's shape and dtype.
        """
        return _engine_numerical_gradient(self, self._specs(), self.weight_decay_lambda,
                                          x, t, n_threads, "MultiLayerNet.numerical_gradient")

    def gradient(self, x, t):
        """Backpropagation gradients of ``loss(x, t)`` (weight decay included)."""
        return E.gradient(self.params, self._specs(), x, t, self.weight_decay_lambda,
                          func="MultiLayerNet.gradient")


# --- ch06 MultiLayerNetExtend -----------------------------------------------------------

class MultiLayerNetExtend(_BookLayers):
    """The book's ch06 extended net: MultiLayerNet with optional Dropout and BatchNorm.

    ``Affine -> [BatchNorm] -> activation -> [Dropout]`` per hidden layer, then
    ``Affine -> SoftmaxWithLoss``; the layers live in ``self.layers`` (an OrderedDict with
    the book's names) and ``self.last_layer``.

    Parameters
    ----------
    input_size : int
    hidden_size_list : list of int
    output_size : int
    activation : {'relu', 'sigmoid'}, default 'relu'
    weight_init_std : 'relu'/'he', 'sigmoid'/'xavier' or a number, default 'relu'
    weight_decay_lambda : float, default 0
    use_dropout : bool, default False
    dropout_ration : float, default 0.5  (the book's spelling)
    use_batchnorm : bool, default False
        Adds ``'gamma{i}'`` (ones) and ``'beta{i}'`` (zeros) params per hidden layer.

    ``gradient`` is one fused call, dropout and batchnorm included (dropout masks are
    drawn with ``np.random.rand`` in the book's order, so a seeded run matches it; the
    batchnorm layers' running statistics are updated as the book's forward does).
    ``numerical_gradient`` is the fused engine, batchnorm included; with dropout the
    book's loss is random (new masks at every evaluation), so it runs the book's loop.
    """

    def __init__(self, input_size, hidden_size_list, output_size,
                 activation="relu", weight_init_std="relu", weight_decay_lambda=0,
                 use_dropout=False, dropout_ration=0.5, use_batchnorm=False):
        _check_activation(activation, "MultiLayerNetExtend")
        self.input_size = input_size
        self.output_size = output_size
        self.hidden_size_list = list(hidden_size_list)
        self.hidden_layer_num = len(hidden_size_list)
        self.use_dropout = use_dropout
        self.weight_decay_lambda = weight_decay_lambda
        self.use_batchnorm = use_batchnorm
        self.activation = activation
        self.params = {}

        all_size_list = [input_size] + self.hidden_size_list + [output_size]
        for idx in range(1, len(all_size_list)):
            scale = _init_scale(weight_init_std, all_size_list[idx - 1])
            self.params["W" + str(idx)] = scale * np.random.randn(all_size_list[idx - 1],
                                                                  all_size_list[idx])
            self.params["b" + str(idx)] = np.zeros(all_size_list[idx])

        activation_layer = {"sigmoid": _layers.Sigmoid, "relu": _layers.Relu}
        layers = OrderedDict()
        for idx in range(1, self.hidden_layer_num + 1):
            layers["Affine" + str(idx)] = _layers.Affine(self.params["W" + str(idx)],
                                                         self.params["b" + str(idx)])
            if self.use_batchnorm:
                self.params["gamma" + str(idx)] = np.ones(self.hidden_size_list[idx - 1])
                self.params["beta" + str(idx)] = np.zeros(self.hidden_size_list[idx - 1])
                layers["BatchNorm" + str(idx)] = _layers.BatchNormalization(
                    self.params["gamma" + str(idx)], self.params["beta" + str(idx)])
            layers["Activation_function" + str(idx)] = activation_layer[activation]()
            if self.use_dropout:
                layers["Dropout" + str(idx)] = _layers.Dropout(dropout_ration)
        idx = self.hidden_layer_num + 1
        layers["Affine" + str(idx)] = _layers.Affine(self.params["W" + str(idx)],
                                                     self.params["b" + str(idx)])
        self.layers = layers
        self.last_layer = _layers.SoftmaxWithLoss()

    @property
    def _layer_params(self):
        out = {"Affine%d" % i: ("W%d" % i, "b%d" % i)
               for i in range(1, self.hidden_layer_num + 2)}
        if self.use_batchnorm:
            for i in range(1, self.hidden_layer_num + 1):
                out["BatchNorm%d" % i] = ("gamma%d" % i, "beta%d" % i)
        return out

    def __repr__(self):
        sizes = [self.input_size] + list(self.hidden_size_list) + [self.output_size]
        return ("MultiLayerNetExtend(%s, activation=%r, weight_decay_lambda=%r, use_dropout=%r, "
                "use_batchnorm=%r)" % ("-".join(map(str, sizes)), self.activation,
                                       self.weight_decay_lambda, self.use_dropout,
                                       self.use_batchnorm))

    def _weight_keys(self):
        return tuple(("W%d" % i, "b%d" % i) for i in range(1, self.hidden_layer_num + 2))

    def _bn_keys(self):
        if not self.use_batchnorm:
            return None
        return [("gamma%d" % i, "beta%d" % i) for i in range(1, self.hidden_layer_num + 1)]

    def _specs(self, use_dropout):
        # built once per structure (the engine keeps its executors per spec tuple)
        key = (self.activation, self.hidden_layer_num, self.use_batchnorm, bool(use_dropout))
        cache = self.__dict__.setdefault("_spec_cache", {})
        specs = cache.get(key)
        if specs is None:
            specs = cache[key] = E.mlp_spec(self._weight_keys(), self.activation,
                                            self._bn_keys(), use_dropout)
        return specs

    def _sync_layers(self):
        # kept for callers of the old name: the layers follow params on every read
        return self.layers

    def predict(self, x, train_flg=False):
        """Output scores, shape (batch, output_size); ``train_flg`` drives Dropout/BatchNorm."""
        for key, layer in self.layers.items():
            if "Dropout" in key or "BatchNorm" in key:
                x = layer.forward(x, train_flg)
            else:
                x = layer.forward(x)
        return x

    def loss(self, x, t, train_flg=False):
        """Mean softmax cross-entropy plus ``0.5 * lambda * sum(W**2)`` per weight."""
        y = self.predict(x, train_flg)
        weight_decay = 0
        for idx in range(1, self.hidden_layer_num + 2):
            W = self.params["W" + str(idx)]
            weight_decay += 0.5 * self.weight_decay_lambda * np.sum(W ** 2)  # 0.5 lambda |W|^2
        return self.last_layer.forward(y, t) + weight_decay

    def accuracy(self, X, T):
        """Fraction of rows whose argmax score matches ``T`` (labels or one-hot)."""
        Y = self.predict(X, train_flg=False)
        Y = np.argmax(Y, axis=1)
        T = np.asarray(T)
        if T.ndim != 1:
            T = np.argmax(T, axis=1)
        return np.sum(Y == T) / float(np.shape(X)[0])

    def _update_running_stats(self, stats, n_updates=1):
        # BatchNormalization.forward(train_flg=True) per call of the book's loss:
        # running = momentum * running + (1 - momentum) * batch statistic
        for i, (mu, var) in enumerate(stats, 1):
            layer = self.layers["BatchNorm%d" % i]
            if layer.running_mean is None:
                layer.running_mean = np.zeros(mu.shape[0])
                layer.running_var = np.zeros(mu.shape[0])
            m = layer.momentum
            if n_updates == 1:
                layer.running_mean = m * layer.running_mean + (1 - m) * mu
                layer.running_var = m * layer.running_var + (1 - m) * var
            else:
                # n updates with (almost) the same statistics: m^n old + (1 - m^n) new
                mn = m ** n_updates
                layer.running_mean = mn * layer.running_mean + (1 - mn) * mu
                layer.running_var = mn * layer.running_var + (1 - mn) * var

    def numerical_gradient(self, X, T, n_threads=None):
        """Central-difference gradients (h = 1e-4) of ``loss(X, T, train_flg=True)``.

        Without dropout this is the fused engine (batchnorm included: its layers'
        running statistics end as after the book's 2 x (number of params) loss calls).
        With dropout the book's loss draws new masks at every call, so this is the
        book's loop over every parameter.
        """
        # the book's order (W1, b1, gamma1, beta1, W2, ...): with dropout, every loss call
        # draws new masks, so a seeded run matches the book's only parameter by parameter
        keys = self._book_grad_order()
        if not self.use_dropout:
            specs = self._specs(False)
            got = E.numerical_gradient(self.params, specs, X, T, self.weight_decay_lambda,
                                       n_threads, func="MultiLayerNetExtend.numerical_gradient",
                                       batch_stats=True)
            if got is not None:
                grads, stats = got
                if self.use_batchnorm:
                    self._update_running_stats(stats, 2 * sum(np.size(self.params[k]) for k in keys))
                return {k: grads[k] for k in self._book_grad_order()}
        loss_W = lambda W: self.loss(X, T, train_flg=True)  # noqa: E731 - the book's idiom
        grads = _book_loop(loss_W, self.params, keys)
        return {k: grads[k] for k in self._book_grad_order()}

    def _book_grad_order(self):
        order = []
        for idx in range(1, self.hidden_layer_num + 2):
            order += ["W%d" % idx, "b%d" % idx]
            if self.use_batchnorm and idx != self.hidden_layer_num + 1:
                order += ["gamma%d" % idx, "beta%d" % idx]
        return order

    def gradient(self, x, t):
        """Backpropagation gradients of ``loss(x, t, train_flg=True)`` (weight decay included)."""
        masks = None
        if self.use_dropout:
            # the book's Dropout.forward draws, layer after layer, during the forward
            rows = np.shape(x)[0] if np.ndim(x) > 1 else 1
            layers = self.layers
            masks = [np.random.rand(rows, n) > layers["Dropout%d" % i].dropout_ratio
                     for i, n in enumerate(self.hidden_size_list, 1)]
        specs = self._specs(self.use_dropout)
        got = E.gradient(self.params, specs, x, t, self.weight_decay_lambda, None, masks,
                         "MultiLayerNetExtend.gradient", batch_stats=self.use_batchnorm)
        if self.use_batchnorm:
            grads, stats = got
            self._update_running_stats(stats)
        else:
            grads = got
        return {k: grads[k] for k in self._book_grad_order()}

    def _layer_gradient(self, x, t):
        """The book's layer-by-layer backprop (kept for reference and tests)."""
        # forward
        self.loss(x, t, train_flg=True)
        # backward
        dout = self.last_layer.backward(1)
        for layer in reversed(list(self.layers.values())):
            dout = layer.backward(dout)
        grads = {}
        for idx in range(1, self.hidden_layer_num + 2):
            aff = self.layers["Affine" + str(idx)]
            grads["W" + str(idx)] = aff.dW + self.weight_decay_lambda * self.params["W" + str(idx)]
            grads["b" + str(idx)] = aff.db
            if self.use_batchnorm and idx != self.hidden_layer_num + 1:
                grads["gamma" + str(idx)] = self.layers["BatchNorm" + str(idx)].dgamma
                grads["beta" + str(idx)] = self.layers["BatchNorm" + str(idx)].dbeta
        return grads


# --- ch07-ch08 conv nets and the course's MNIST CNN: their own module, re-exported here ---

from .convnets import DeepConvNet, MnistCNN, SimpleConvNet  # noqa: E402,F401
