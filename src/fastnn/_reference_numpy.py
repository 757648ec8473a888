"""The books' plain NumPy code, shipped privately so ``fastnn train`` and ``fastnn bench``
can time the prototype that fastnn replaces on the user's own machine.

This is "Deep Learning from Scratch" code as the book writes it (common/functions.py,
common/gradient.py's ``numerical_gradient`` with its ``np.nditer`` loop, ch04
``TwoLayerNet``, and ch06 ``MultiLayerNet`` with its Affine / Relu / Sigmoid /
SoftmaxWithLoss layers). It is used for timing only; the project's test oracle is
tests/reference.py. Nothing here is public API.
"""
import time
from collections import OrderedDict

import numpy as np

# --- common/functions.py ------------------------------------------------------------


def sigmoid(x):
    return 1 / (1 + np.exp(-x))


def softmax(x):
    x = x - np.max(x, axis=-1, keepdims=True)  # overflow guard
    return np.exp(x) / np.sum(np.exp(x), axis=-1, keepdims=True)


def cross_entropy_error(y, t):
    if y.ndim == 1:
        t = t.reshape(1, t.size)
        y = y.reshape(1, y.size)
    if t.size == y.size:  # one-hot -> label indices
        t = t.argmax(axis=1)
    batch_size = y.shape[0]
    return -np.sum(np.log(y[np.arange(batch_size), t] + 1e-7)) / batch_size


def affine(x, W, b):
    return np.dot(x, W) + b


# --- common/gradient.py -------------------------------------------------------------


def numerical_gradient(f, x):
    h = 1e-4  # 0.0001
    grad = np.zeros_like(x)
    it = np.nditer(x, flags=["multi_index"], op_flags=["readwrite"])
    while not it.finished:
        idx = it.multi_index
        tmp_val = x[idx]
        x[idx] = float(tmp_val) + h
        fxh1 = f(x)  # f(x+h)
        x[idx] = tmp_val - h
        fxh2 = f(x)  # f(x-h)
        grad[idx] = (fxh1 - fxh2) / (2 * h)
        x[idx] = tmp_val
        it.iternext()
    return grad


# --- ch04 two_layer_net.py ----------------------------------------------------------


class TwoLayerNet:
    def __init__(self, input_size, hidden_size, output_size, weight_init_std=0.01):
        self.params = {}
        self.params["W1"] = weight_init_std * np.random.randn(input_size, hidden_size)
        self.params["b1"] = np.zeros(hidden_size)
        self.params["W2"] = weight_init_std * np.random.randn(hidden_size, output_size)
        self.params["b2"] = np.zeros(output_size)

    def predict(self, x):
        W1, W2 = self.params["W1"], self.params["W2"]
        b1, b2 = self.params["b1"], self.params["b2"]
        a1 = np.dot(x, W1) + b1
        z1 = sigmoid(a1)
        a2 = np.dot(z1, W2) + b2
        return softmax(a2)

    def loss(self, x, t):
        y = self.predict(x)
        return cross_entropy_error(y, t)

    def accuracy(self, x, t):
        y = np.argmax(self.predict(x), axis=1)
        if t.ndim != 1:
            t = np.argmax(t, axis=1)
        return np.sum(y == t) / float(x.shape[0])

    def numerical_gradient(self, x, t):
        loss_W = lambda W: self.loss(x, t)  # noqa: E731 - the book's idiom
        grads = {}
        grads["W1"] = numerical_gradient(loss_W, self.params["W1"])
        grads["b1"] = numerical_gradient(loss_W, self.params["b1"])
        grads["W2"] = numerical_gradient(loss_W, self.params["W2"])
        grads["b2"] = numerical_gradient(loss_W, self.params["b2"])
        return grads

    def gradient(self, x, t):
        W1, W2 = self.params["W1"], self.params["W2"]
        b1, b2 = self.params["b1"], self.params["b2"]
        grads = {}
        batch_num = x.shape[0]
        a1 = np.dot(x, W1) + b1
        z1 = sigmoid(a1)
        a2 = np.dot(z1, W2) + b2
        y = softmax(a2)
        if t.size == y.size:
            dy = (y - t) / batch_num
        else:  # labels
            dy = y.copy()
            dy[np.arange(batch_num), t] -= 1
            dy = dy / batch_num
        grads["W2"] = np.dot(z1.T, dy)
        grads["b2"] = np.sum(dy, axis=0)
        da1 = np.dot(dy, W2.T)
        dz1 = (1.0 - sigmoid(a1)) * sigmoid(a1) * da1
        grads["W1"] = np.dot(x.T, dz1)
        grads["b1"] = np.sum(dz1, axis=0)
        return grads


# --- common/layers.py, common/multi_layer_net.py ------------------------------------


class Relu:
    def __init__(self):
        self.mask = None

    def forward(self, x):
        self.mask = (x <= 0)
        out = x.copy()
        out[self.mask] = 0
        return out

    def backward(self, dout):
        dout[self.mask] = 0
        return dout


class Sigmoid:
    def __init__(self):
        self.out = None

    def forward(self, x):
        self.out = sigmoid(x)
        return self.out

    def backward(self, dout):
        return dout * (1.0 - self.out) * self.out


class Affine:
    def __init__(self, W, b):
        self.W, self.b = W, b
        self.x = self.dW = self.db = None

    def forward(self, x):
        self.x = x
        return np.dot(x, self.W) + self.b

    def backward(self, dout):
        dx = np.dot(dout, self.W.T)
        self.dW = np.dot(self.x.T, dout)
        self.db = np.sum(dout, axis=0)
        return dx


class SoftmaxWithLoss:
    def __init__(self):
        self.loss = self.y = self.t = None

    def forward(self, x, t):
        self.t = t
        self.y = softmax(x)
        self.loss = cross_entropy_error(self.y, self.t)
        return self.loss

    def backward(self, dout=1):
        batch_size = self.t.shape[0]
        if self.t.size == self.y.size:
            return (self.y - self.t) / batch_size
        dx = self.y.copy()
        dx[np.arange(batch_size), self.t] -= 1
        return dx / batch_size


class MultiLayerNet:
    def __init__(self, input_size, hidden_size_list, output_size, activation="relu",
                 weight_init_std="relu", weight_decay_lambda=0):
        self.hidden_layer_num = len(hidden_size_list)
        self.weight_decay_lambda = weight_decay_lambda
        self.params = {}
        sizes = [input_size] + list(hidden_size_list) + [output_size]
        for idx in range(1, len(sizes)):
            scale = weight_init_std
            if str(weight_init_std).lower() in ("relu", "he"):
                scale = np.sqrt(2.0 / sizes[idx - 1])
            elif str(weight_init_std).lower() in ("sigmoid", "xavier"):
                scale = np.sqrt(1.0 / sizes[idx - 1])
            self.params["W%d" % idx] = scale * np.random.randn(sizes[idx - 1], sizes[idx])
            self.params["b%d" % idx] = np.zeros(sizes[idx])
        act = {"sigmoid": Sigmoid, "relu": Relu}[activation]
        self.layers = OrderedDict()
        for idx in range(1, self.hidden_layer_num + 1):
            self.layers["Affine%d" % idx] = Affine(self.params["W%d" % idx], self.params["b%d" % idx])
            self.layers["Activation_function%d" % idx] = act()
        idx = self.hidden_layer_num + 1
        self.layers["Affine%d" % idx] = Affine(self.params["W%d" % idx], self.params["b%d" % idx])
        self.last_layer = SoftmaxWithLoss()

    def predict(self, x):
        for layer in self.layers.values():
            x = layer.forward(x)
        return x

    def loss(self, x, t):
        y = self.predict(x)
        weight_decay = 0
        for idx in range(1, self.hidden_layer_num + 2):
            W = self.params["W%d" % idx]
            weight_decay += 0.5 * self.weight_decay_lambda * np.sum(W ** 2)
        return self.last_layer.forward(y, t) + weight_decay

    def accuracy(self, x, t):
        y = np.argmax(self.predict(x), axis=1)
        if t.ndim != 1:
            t = np.argmax(t, axis=1)
        return np.sum(y == t) / float(x.shape[0])

    def numerical_gradient(self, x, t):
        loss_W = lambda W: self.loss(x, t)  # noqa: E731
        grads = {}
        for idx in range(1, self.hidden_layer_num + 2):
            grads["W%d" % idx] = numerical_gradient(loss_W, self.params["W%d" % idx])
            grads["b%d" % idx] = numerical_gradient(loss_W, self.params["b%d" % idx])
        return grads

    def gradient(self, x, t):
        self.loss(x, t)
        dout = self.last_layer.backward(1)
        for layer in reversed(list(self.layers.values())):
            dout = layer.backward(dout)
        grads = {}
        for idx in range(1, self.hidden_layer_num + 2):
            a = self.layers["Affine%d" % idx]
            grads["W%d" % idx] = a.dW + self.weight_decay_lambda * a.W
            grads["b%d" % idx] = a.db
        return grads


# --- timing -------------------------------------------------------------------------


class _OutOfTime(Exception):
    pass


def time_numerical_step(net, x, t, budget_s=None):
    """Time one ``net.numerical_gradient(x, t)`` of the reference net.

    The reference's cost is the same for every parameter (two full forward passes each), so
    when ``budget_s`` runs out the step is stopped and its time extrapolated from the
    parameters done. Returns ``(seconds, done, total)``; ``done == total`` means measured.
    The net's parameters may be left perturbed: pass a copy.
    """
    total = sum(p.size for p in net.params.values())
    calls = [0]
    loss = net.loss
    t0 = time.perf_counter()

    def counted(x_, t_):
        calls[0] += 1
        if budget_s is not None and calls[0] % 2 == 1 and time.perf_counter() - t0 > budget_s:
            raise _OutOfTime
        return loss(x_, t_)

    net.loss = counted
    try:
        net.numerical_gradient(x, t)
    except _OutOfTime:
        pass
    finally:
        del net.loss
    elapsed = time.perf_counter() - t0
    done = min(total, calls[0] // 2)
    if done == total:
        return elapsed, total, total
    return elapsed * total / max(done, 1), done, total
