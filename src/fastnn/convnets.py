"""The books' convolutional nets on fastnn's kernels: ch07 ``SimpleConvNet``, ch08
``DeepConvNet`` and the Paddle course's MNIST CNN (``MnistCNN``); re-exported by
``fastnn.nets``.

Names, arguments, defaults, init draws (the same ``np.random`` calls in the same order, so
``np.random.seed(0)`` gives the book's parameters exactly), ``params`` keys, ``layers``
(the book's OrderedDict keys, or DeepConvNet's list) and ``last_layer`` are the book's.
``params`` is a plain dict of NumPy arrays, read afresh on every call: updating an array
in place or rebinding ``net.params['W1']`` both take effect, and ``layers`` follows it.

Each net is a layer list of the executor (``fastnn._engine``): ``gradient(x, t)`` is one
call that runs every layer forward and backward in C (no per-layer and no per-sample
Python), ``predict`` one forward call per 100 images, and ``numerical_gradient`` one call
of the finite-difference engine: a perturbed filter weight moves one output channel, and
each perturbed loss is evaluated from there on, exactly (no difference of two totals).
This module is its own file, apart from ``nets.py``'s fully connected nets: images in,
layer objects of ch07, and its own trainer defaults make it a separate idea.
"""
import os
import pickle
import sys
from collections import OrderedDict

import numpy as np

from . import _engine as E
from . import layers as _layers
from .gradient import numerical_gradient
from .gradient import numerical_gradient as _generic_numerical_gradient
from .layers import *  # noqa: F401,F403 - handed on, as the book's simple_convnet.py does

# `from simple_convnet import *` / `from deep_convnet import *` give the names their modules
# import (sys, os, pickle, np, OrderedDict, common.layers' names, numerical_gradient)
_NETS = ["SimpleConvNet", "DeepConvNet", "MnistCNN"]
__all__ = (["sys", "os", "pickle", "np", "OrderedDict", "numerical_gradient"]
           + [n for n in _layers.__all__ if n != "np"] + _NETS)


def _init_scale(weight_init_std, fan_in):
    """A number, or 'relu'/'he' (sqrt(2 / fan_in)) or 'sigmoid'/'xavier' (sqrt(1 / fan_in))."""
    name = str(weight_init_std).lower()
    if name in ("relu", "he"):
        return np.sqrt(2.0 / fan_in)                       # He: sqrt(2 / fan_in)
    if name in ("sigmoid", "xavier"):
        return np.sqrt(1.0 / fan_in)                       # Xavier: sqrt(1 / fan_in)
    return weight_init_std


def _conv_geometry(func, name, conv_param):
    """The book's conv_param dict, read as the book reads it, with a clear error where the
    book's constructor would fail inside Python (a missing key, a non-integer, a zero
    stride's ZeroDivisionError). Returns (filter_num, filter_size, pad, stride)."""
    if not hasattr(conv_param, "__getitem__") or isinstance(conv_param, (str, bytes)):
        raise TypeError("%s: %s must be a dict with 'filter_num', 'filter_size', 'pad' and "
                        "'stride', got %r" % (func, name, conv_param))
    values = []
    for key in ("filter_num", "filter_size", "pad", "stride"):
        try:
            v = conv_param[key]
        except (KeyError, IndexError, TypeError):
            raise KeyError("%s: %s has no %r (it needs 'filter_num', 'filter_size', 'pad' "
                           "and 'stride')" % (func, name, key)) from None
        if isinstance(v, (bool, np.bool_)) or not isinstance(v, (int, np.integer)):
            raise TypeError("%s: %s[%r] must be an integer, got %r" % (func, name, key, v))
        values.append(int(v))
    filter_num, filter_size, pad, stride = values
    if stride < 1:
        raise ValueError("%s: %s['stride'] must be at least 1, got %d" % (func, name, stride))
    return filter_num, filter_size, pad, stride


def _randn_param(func, key, scale, shape, why):
    """``scale * np.random.randn(*shape)`` (the book's draw), with a MemoryError that names
    the parameter and the argument that sized it, not NumPy's "array is too big"."""
    n = 1
    for d in shape:
        n *= max(int(d), 0)
    try:
        if n > 2 ** 62:
            raise MemoryError
        return scale * np.random.randn(*shape)
    except (MemoryError, ValueError) as e:
        if isinstance(e, ValueError) and "too big" not in str(e):
            raise
        raise MemoryError("%s: %s would have shape %s (%.3g GB in float64): %s"
                          % (func, key, tuple(int(d) for d in shape), n * 8 / 1e9, why)) from None


def _positive_batch_size(func, batch_size):
    if isinstance(batch_size, (bool, np.bool_)) or not isinstance(batch_size, (int, np.integer)) \
            or batch_size < 1:
        raise ValueError("%s: batch_size must be a positive integer, got %r" % (func, batch_size))


class _ConvNet:
    """What the book's conv nets share: ``params`` is the truth, ``layers`` points at it
    on every read, and the fused paths read it on every call.

    A subclass sets ``_specs`` (the executor's layer list), ``_layer_params`` (layer key
    or list index -> (W key, b key), in the book's param order) and its layers."""

    _layer_params = {}

    # -- the book's layers, kept pointing at params ---------------------------------------

    @property
    def layers(self):
        layers = self.__dict__["_layers"]
        for name, (wk, bk) in self._layer_params.items():
            layers[name].W = self.params[wk]
            layers[name].b = self.params[bk]
        return layers

    @layers.setter
    def layers(self, value):
        self.__dict__["_layers"] = value

    def _keys(self):
        return [k for wk_bk in self._layer_params.values() for k in wk_bk]

    def __repr__(self):
        shapes = ", ".join("%s %s" % (k, "x".join(map(str, np.shape(self.params[k]))))
                           for k in self._keys() if k.startswith("W"))
        return "%s(%s; %s)" % (type(self).__name__, shapes,
                               np.asarray(self.params[self._keys()[0]]).dtype)

    # -- the book's API ---------------------------------------------------------------

    def predict(self, x):
        """Output scores (before softmax), (N, output_size), for images x (N, C, H, W):
        the net's forward pass, fused, in calls of up to 100 images."""
        return E.scores(self.params, self._specs, x, func=type(self).__name__ + ".predict")

    def loss(self, x, t):
        """``last_layer.forward(predict(x), t)``: mean softmax cross-entropy (labels or
        one-hot ``t``)."""
        y = self.predict(x)
        return self.last_layer.forward(y, t)

    def accuracy(self, x, t, batch_size=100):
        """The book's batched accuracy: whole batches of ``batch_size`` only (a remainder
        is not scored), divided by ``x.shape[0]``."""
        _positive_batch_size(type(self).__name__ + ".accuracy", batch_size)
        t = np.asarray(t)
        if t.ndim != 1:
            t = np.argmax(t, axis=1)
        n_batches = int(x.shape[0] / batch_size)
        acc = 0.0
        if n_batches:
            n = n_batches * batch_size
            y = np.argmax(self._predict_for_accuracy(x[:n]), axis=1)
            acc += np.sum(y == t[:n])
        return acc / x.shape[0]

    def _predict_for_accuracy(self, x):
        return self.predict(x)

    def gradient(self, x, t):
        """Backpropagation gradients of ``loss(x, t)``: one fused call of the whole net
        (dict ``'W1'``, ``'b1'``, ...; each in its param's shape and the promoted float
        dtype). It does not leave the layers' forward state behind."""
        return E.gradient(self.params, self._specs, x, t, None,
                          func=type(self).__name__ + ".gradient")

    def numerical_gradient(self, x, t, n_threads=None):
        """Central-difference gradients (h = 1e-4) of ``loss(x, t)`` for every param, by
        the fused engine (the book's loop for params that are not float32/float64)."""
        func = type(self).__name__ + ".numerical_gradient"
        grads = E.numerical_gradient(self.params, self._specs, x, t, None, n_threads,
                                     func=func, stacklevel=3)
        if grads is None:
            loss_w = lambda w: self.loss(x, t)  # noqa: E731 - the book's idiom
            grads = {k: _generic_numerical_gradient(loss_w, self.params[k])
                     for k in self._keys()}
        return {k: grads[k] for k in self._keys()}

    def save_params(self, file_name="params.pkl"):
        """Pickle the params dict (the book's format: ``{'W1': array, ...}``)."""
        params = {}
        for key, val in self.params.items():
            params[key] = val
        with open(file_name, "wb") as f:
            pickle.dump(params, f)

    def load_params(self, file_name="params.pkl"):
        """Load a pickled params dict (the book's format) into ``params``; the layers
        follow. As in the book, the loaded arrays define the net (a file of another hidden
        size loads; the next forward pass checks that the shapes chain). A file that is
        not a params dict, lacks one of this net's params (the book would keep the random
        init silently) or holds one of another number of dimensions is a ValueError
        naming the file and the param."""
        func = "%s.load_params" % type(self).__name__
        with open(file_name, "rb") as f:
            try:
                params = pickle.load(f)
            except Exception as e:  # EOFError, UnpicklingError, a missing class, ...
                raise ValueError("%s: %r is not a pickled params dict (%s: %s)"
                                 % (func, file_name, type(e).__name__, e)) from e
        if not isinstance(params, dict):
            raise ValueError("%s: %r holds an object of type %s, not a params dict "
                             "{'W1': array, ...}" % (func, file_name, type(params).__name__))
        missing = [k for k in self._keys() if k not in params]
        if missing:
            raise ValueError("%s: %r has no %s (this %s needs %s)"
                             % (func, file_name, ", ".join(missing), type(self).__name__,
                                ", ".join(self._keys())))
        for k in self._keys():
            want, got = np.shape(self.params[k]), np.shape(params[k])
            if len(got) != len(want):
                raise ValueError("%s: %r holds %s of shape %s; this net's %s has shape %s"
                                 % (func, file_name, k, got, k, want))
        for key, val in params.items():
            self.params[key] = val


# --- ch07 SimpleConvNet -----------------------------------------------------------------

class SimpleConvNet(_ConvNet):
    """The book's ch07 net: conv - relu - pool - affine - relu - affine - softmax.

    Parameters
    ----------
    input_dim : (C, H, W), default (1, 28, 28)
    conv_param : dict with ``'filter_num'``, ``'filter_size'``, ``'pad'``, ``'stride'``
        (default 30 filters 5x5, pad 0, stride 1)
    hidden_size, output_size : int, default 100, 10
    weight_init_std : float, default 0.01: ``W = weight_init_std * np.random.randn(...)``,
        biases zero (the book's draws, in its order)

    Attributes
    ----------
    params : dict
        ``'W1'`` (filter_num, C, filter_size, filter_size), ``'b1'`` (filter_num,),
        ``'W2'`` (filter_num * (conv_out / 2)**2, hidden_size), ``'b2'``, ``'W3'``
        (hidden_size, output_size), ``'b3'``.
    layers : OrderedDict
        ``'Conv1'``, ``'Relu1'``, ``'Pool1'`` (2x2, stride 2), ``'Affine1'``, ``'Relu2'``,
        ``'Affine2'`` (fastnn.layers objects, pointing at the current ``params``).
    last_layer : SoftmaxWithLoss

    x is a batch of images (N, C, H, W); t labels (N,) or one-hot (N, output_size).
    """

    def __init__(self, input_dim=(1, 28, 28),
                 conv_param={"filter_num": 30, "filter_size": 5, "pad": 0, "stride": 1},  # noqa: B006 - the book's default
                 hidden_size=100, output_size=10, weight_init_std=0.01):
        filter_num, filter_size, filter_pad, filter_stride = _conv_geometry(
            "SimpleConvNet", "conv_param", conv_param)
        input_size = input_dim[1]
        conv_output_size = (input_size - filter_size + 2 * filter_pad) / filter_stride + 1
        pool_output_size = int(filter_num * (conv_output_size / 2) * (conv_output_size / 2))

        self.params = {}
        self.params["W1"] = weight_init_std * np.random.randn(filter_num, input_dim[0],
                                                              filter_size, filter_size)
        self.params["b1"] = np.zeros(filter_num)
        self.params["W2"] = _randn_param("SimpleConvNet", "W2", weight_init_std,
                                         (pool_output_size, hidden_size),
                                         "the conv_param %r on %s images" % (conv_param, input_dim))
        self.params["b2"] = np.zeros(hidden_size)
        self.params["W3"] = weight_init_std * np.random.randn(hidden_size, output_size)
        self.params["b3"] = np.zeros(output_size)

        layers = OrderedDict()
        layers["Conv1"] = _layers.Convolution(self.params["W1"], self.params["b1"],
                                              conv_param["stride"], conv_param["pad"])
        layers["Relu1"] = _layers.Relu()
        layers["Pool1"] = _layers.Pooling(pool_h=2, pool_w=2, stride=2)
        layers["Affine1"] = _layers.Affine(self.params["W2"], self.params["b2"])
        layers["Relu2"] = _layers.Relu()
        layers["Affine2"] = _layers.Affine(self.params["W3"], self.params["b3"])
        self.layers = layers
        self.last_layer = _layers.SoftmaxWithLoss()
        self._specs = (E.convolution("W1", "b1", conv_param["stride"], conv_param["pad"]),
                       E.relu(), E.pooling(2, 2, 2), E.affine("W2", "b2"), E.relu(),
                       E.affine("W3", "b3"), E.softmax_ce())

    _layer_params = {"Conv1": ("W1", "b1"), "Affine1": ("W2", "b2"), "Affine2": ("W3", "b3")}


# --- the Paddle course's MNIST CNN --------------------------------------------------------

class MnistCNN(_ConvNet):
    """The MNIST CNN of the Paddle course, built from the book's layers:

    conv 20 filters 5x5 pad 2 - relu - max-pool 2x2 stride 2 - conv 20 -> 20 5x5 pad 2 -
    relu - max-pool 2x2 stride 2 - affine 980 -> 10 - softmax cross-entropy

    (the course trains it with SGD, lr 0.01). Same API as ``SimpleConvNet``.

    Parameters
    ----------
    input_dim : (C, H, W), default (1, 28, 28)
    filter_num, filter_size, pad : int, default 20, 5, 2 (both convolutions, stride 1)
    output_size : int, default 10
    weight_init_std : float, or 'relu'/'he' (sqrt(2 / fan_in) per layer) or
        'sigmoid'/'xavier' (sqrt(1 / fan_in)); default 0.01. Draws
        ``np.random.randn`` for W1, W2, W3 in that order; biases zero.

    Attributes
    ----------
    params : dict
        ``'W1'`` (filter_num, C, f, f), ``'b1'``, ``'W2'`` (filter_num, filter_num, f, f),
        ``'b2'``, ``'W3'`` (filter_num * h * w, output_size), ``'b3'``; h, w the size
        after both convolutions and pools (7 x 7 for 28 x 28 images).
    layers : OrderedDict
        ``'Conv1'``, ``'Relu1'``, ``'Pool1'``, ``'Conv2'``, ``'Relu2'``, ``'Pool2'``,
        ``'Affine1'``.
    last_layer : SoftmaxWithLoss
    """

    def __init__(self, input_dim=(1, 28, 28), filter_num=20, filter_size=5, pad=2,
                 output_size=10, weight_init_std=0.01):
        C, H, W = input_dim
        h, w = H, W
        for _ in range(2):                  # conv (stride 1), then a 2x2 pool with stride 2
            h, w = h + 2 * pad - filter_size + 1, w + 2 * pad - filter_size + 1
            h, w = (h - 2) // 2 + 1, (w - 2) // 2 + 1
        if h < 1 or w < 1:
            raise ValueError("MnistCNN: %s images are too small for two %dx%d convolutions "
                             "(pad %d) and two 2x2 pools" % (input_dim, filter_size,
                                                              filter_size, pad))
        self.input_dim = tuple(input_dim)
        self.params = {}
        scale = _init_scale(weight_init_std, C * filter_size * filter_size)
        self.params["W1"] = scale * np.random.randn(filter_num, C, filter_size, filter_size)
        self.params["b1"] = np.zeros(filter_num)
        scale = _init_scale(weight_init_std, filter_num * filter_size * filter_size)
        self.params["W2"] = scale * np.random.randn(filter_num, filter_num, filter_size,
                                                    filter_size)
        self.params["b2"] = np.zeros(filter_num)
        scale = _init_scale(weight_init_std, filter_num * h * w)
        self.params["W3"] = _randn_param("MnistCNN", "W3", scale, (filter_num * h * w, output_size),
                                         "pad=%r on %s images" % (pad, input_dim))
        self.params["b3"] = np.zeros(output_size)

        layers = OrderedDict()
        layers["Conv1"] = _layers.Convolution(self.params["W1"], self.params["b1"], 1, pad)
        layers["Relu1"] = _layers.Relu()
        layers["Pool1"] = _layers.Pooling(pool_h=2, pool_w=2, stride=2)
        layers["Conv2"] = _layers.Convolution(self.params["W2"], self.params["b2"], 1, pad)
        layers["Relu2"] = _layers.Relu()
        layers["Pool2"] = _layers.Pooling(pool_h=2, pool_w=2, stride=2)
        layers["Affine1"] = _layers.Affine(self.params["W3"], self.params["b3"])
        self.layers = layers
        self.last_layer = _layers.SoftmaxWithLoss()
        self._specs = (E.convolution("W1", "b1", 1, pad), E.relu(), E.pooling(2, 2, 2),
                       E.convolution("W2", "b2", 1, pad), E.relu(), E.pooling(2, 2, 2),
                       E.affine("W3", "b3"), E.softmax_ce())

    _layer_params = {"Conv1": ("W1", "b1"), "Conv2": ("W2", "b2"), "Affine1": ("W3", "b3")}


# --- ch08 DeepConvNet -------------------------------------------------------------------

class DeepConvNet(_ConvNet):
    """The book's ch08 net, over 99% on MNIST:

    conv - relu - conv - relu - pool - conv - relu - conv - relu - pool -
    conv - relu - conv - relu - pool - affine - relu - dropout - affine - dropout - softmax

    Six 3x3 convolutions (16, 16, 32, 32, 64, 64 filters; the fourth pads by 2), He
    initialisation, Dropout(0.5). The book's defaults, keys (``'W1'`` ... ``'W8'``) and
    ``layers`` (a list; the params sit at indices 0, 2, 5, 7, 10, 12, 15, 18).

    ``gradient`` is one fused call; its dropout masks are drawn with
    ``np.random.rand(N, n) > 0.5`` in the book's order, as the book's ``loss`` draws
    them. ``predict(x, train_flg=False)`` and ``loss`` run the book's layer list
    (fastnn.layers, one kernel each; Dropout draws or scales as the book's).
    ``load_params("deep_convnet_params.pkl")`` reads the book's pretrained file.
    The book's DeepConvNet has no ``numerical_gradient`` (its loss is random: dropout).
    """

    _param_indices = (0, 2, 5, 7, 10, 12, 15, 18)

    def __init__(self, input_dim=(1, 28, 28),
                 conv_param_1={"filter_num": 16, "filter_size": 3, "pad": 1, "stride": 1},  # noqa: B006 - the book's defaults
                 conv_param_2={"filter_num": 16, "filter_size": 3, "pad": 1, "stride": 1},  # noqa: B006
                 conv_param_3={"filter_num": 32, "filter_size": 3, "pad": 1, "stride": 1},  # noqa: B006
                 conv_param_4={"filter_num": 32, "filter_size": 3, "pad": 2, "stride": 1},  # noqa: B006
                 conv_param_5={"filter_num": 64, "filter_size": 3, "pad": 1, "stride": 1},  # noqa: B006
                 conv_param_6={"filter_num": 64, "filter_size": 3, "pad": 1, "stride": 1},  # noqa: B006
                 hidden_size=50, output_size=10):
        # fan-in of each layer's units, as the book lists them (it assumes 28x28 input)
        pre_node_nums = np.array([1 * 3 * 3, 16 * 3 * 3, 16 * 3 * 3, 32 * 3 * 3, 32 * 3 * 3,
                                  64 * 3 * 3, 64 * 4 * 4, hidden_size])
        weight_init_scales = np.sqrt(2.0 / pre_node_nums)    # He: sqrt(2 / fan_in)

        self.params = {}
        convs = [conv_param_1, conv_param_2, conv_param_3, conv_param_4, conv_param_5,
                 conv_param_6]
        for idx, cp in enumerate(convs):
            _conv_geometry("DeepConvNet", "conv_param_%d" % (idx + 1), cp)
        pre_channel_num = input_dim[0]
        for idx, cp in enumerate(convs):
            self.params["W" + str(idx + 1)] = weight_init_scales[idx] * np.random.randn(
                cp["filter_num"], pre_channel_num, cp["filter_size"], cp["filter_size"])
            self.params["b" + str(idx + 1)] = np.zeros(cp["filter_num"])
            pre_channel_num = cp["filter_num"]
        self.params["W7"] = weight_init_scales[6] * np.random.randn(64 * 4 * 4, hidden_size)
        self.params["b7"] = np.zeros(hidden_size)
        self.params["W8"] = weight_init_scales[7] * np.random.randn(hidden_size, output_size)
        self.params["b8"] = np.zeros(output_size)

        p = self.params
        layers = []
        specs = []
        for i, cp in enumerate(convs):
            layers.append(_layers.Convolution(p["W%d" % (i + 1)], p["b%d" % (i + 1)],
                                              cp["stride"], cp["pad"]))
            layers.append(_layers.Relu())
            specs += [E.convolution("W%d" % (i + 1), "b%d" % (i + 1), cp["stride"],
                                    cp["pad"]), E.relu()]
            if i % 2 == 1:
                layers.append(_layers.Pooling(pool_h=2, pool_w=2, stride=2))
                specs.append(E.pooling(2, 2, 2))
        layers += [_layers.Affine(p["W7"], p["b7"]), _layers.Relu(), _layers.Dropout(0.5),
                   _layers.Affine(p["W8"], p["b8"]), _layers.Dropout(0.5)]
        specs += [E.affine("W7", "b7"), E.relu(), E.dropout(), E.affine("W8", "b8"),
                  E.dropout(), E.softmax_ce()]
        self.layers = layers
        self.last_layer = _layers.SoftmaxWithLoss()
        self._specs = tuple(specs)
        self._layer_params = {idx: ("W%d" % (i + 1), "b%d" % (i + 1))
                              for i, idx in enumerate(self._param_indices)}

    def _dropouts(self):
        return [layer for layer in self.__dict__["_layers"]
                if isinstance(layer, _layers.Dropout)]

    def predict(self, x, train_flg=False):
        """Output scores, (N, output_size): the book's layer list in order (Dropout draws
        its masks when ``train_flg``, else scales by 1 - dropout_ratio)."""
        for layer in self.layers:
            if isinstance(layer, _layers.Dropout):
                x = layer.forward(x, train_flg)
            else:
                x = layer.forward(x)
        return x

    def loss(self, x, t):
        """``last_layer.forward(predict(x, train_flg=True), t)`` (new dropout masks)."""
        y = self.predict(x, train_flg=True)
        return self.last_layer.forward(y, t)

    def _predict_for_accuracy(self, x):
        # the book's accuracy: predict(tx, train_flg=False) per batch
        out = []
        for i in range(0, x.shape[0], 100):
            out.append(self.predict(x[i:i + 100], train_flg=False))
        return np.concatenate(out) if out else np.empty((0, 0))

    def gradient(self, x, t):
        """Backpropagation gradients of ``loss(x, t)``: one fused call, the dropout masks
        drawn first as the book's forward draws them."""
        rows = np.shape(x)[0] if np.ndim(x) > 1 else 1
        drop = self._dropouts()
        hidden = np.shape(self.params["W7"])[1]
        classes = np.shape(self.params["W8"])[1]
        masks = [np.random.rand(rows, hidden) > drop[0].dropout_ratio,
                 np.random.rand(rows, classes) > drop[1].dropout_ratio]
        grads = E.gradient(self.params, self._specs, x, t, None, None, masks,
                           "DeepConvNet.gradient")
        return {k: grads[k] for k in self._keys()}

    @property
    def numerical_gradient(self):
        # the book's DeepConvNet has none (hasattr() is False, as there)
        raise AttributeError("'DeepConvNet' object has no attribute 'numerical_gradient' "
                             "(the book's has none: its loss draws new dropout masks at "
                             "every call)")
