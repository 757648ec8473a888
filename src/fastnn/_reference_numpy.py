"""The books' plain NumPy code, shipped privately so ``fastnn train`` and ``fastnn bench``
can time the prototype that fastnn replaces on the user's own machine, and ``fastnn
check`` can compare fastnn's kernels with it after an install.

This is "Deep Learning from Scratch" code as the book writes it (common/functions.py,
common/gradient.py's ``numerical_gradient`` with its ``np.nditer`` loop, ch04
``TwoLayerNet``, ch06 ``MultiLayerNet`` with its Affine / Relu / Sigmoid /
SoftmaxWithLoss layers, and common/optimizer.py). It never computes a user's result (no
fallback); the project's test oracle is tests/reference.py, and a test checks that this
copy computes what the oracle computes. Nothing here is public API.
"""
import time
from collections import OrderedDict

import numpy as np

# --- common/functions.py ------------------------------------------------------------


def identity_function(x):
    return x


def step_function(x):
    return np.array(x > 0, dtype=int)


def sigmoid(x):
    return 1 / (1 + np.exp(-x))


def sigmoid_grad(x):
    return (1.0 - sigmoid(x)) * sigmoid(x)


def relu(x):
    return np.maximum(0, x)


def relu_grad(x):
    grad = np.zeros_like(x)
    grad[x >= 0] = 1
    return grad


def tanh(x):
    return np.tanh(x)


def leaky_relu(x, alpha=0.2):
    return np.where(x > 0, x, alpha * x)


def sum_squared_error(y, t):
    return 0.5 * np.sum((y - t) ** 2)


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


def softmax_loss(X, t):
    return cross_entropy_error(softmax(X), t)


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


class Dropout:
    def __init__(self, dropout_ratio=0.5):
        self.dropout_ratio = dropout_ratio
        self.mask = None

    def forward(self, x, train_flg=True):
        if train_flg:
            self.mask = np.random.rand(*x.shape) > self.dropout_ratio
            return x * self.mask
        return x * (1.0 - self.dropout_ratio)

    def backward(self, dout):
        return dout * self.mask


class BatchNormalization:
    def __init__(self, gamma, beta, momentum=0.9, running_mean=None, running_var=None):
        self.gamma, self.beta, self.momentum = gamma, beta, momentum
        self.input_shape = None
        self.running_mean, self.running_var = running_mean, running_var
        self.batch_size = self.xc = self.std = self.dgamma = self.dbeta = None

    def forward(self, x, train_flg=True):
        self.input_shape = x.shape
        if x.ndim != 2:
            x = x.reshape(x.shape[0], -1)
        return self._forward(x, train_flg).reshape(*self.input_shape)

    def _forward(self, x, train_flg):
        if self.running_mean is None:
            self.running_mean = np.zeros(x.shape[1])
            self.running_var = np.zeros(x.shape[1])
        if train_flg:
            mu = x.mean(axis=0)
            xc = x - mu
            var = np.mean(xc ** 2, axis=0)
            std = np.sqrt(var + 10e-7)
            xn = xc / std
            self.batch_size, self.xc, self.xn, self.std = x.shape[0], xc, xn, std
            self.running_mean = self.momentum * self.running_mean + (1 - self.momentum) * mu
            self.running_var = self.momentum * self.running_var + (1 - self.momentum) * var
        else:
            xn = (x - self.running_mean) / np.sqrt(self.running_var + 10e-7)
        return self.gamma * xn + self.beta

    def backward(self, dout):
        if dout.ndim != 2:
            dout = dout.reshape(dout.shape[0], -1)
        dbeta = dout.sum(axis=0)
        dgamma = np.sum(self.xn * dout, axis=0)
        dxn = self.gamma * dout
        dxc = dxn / self.std
        dstd = -np.sum((dxn * self.xc) / (self.std * self.std), axis=0)
        dvar = 0.5 * dstd / self.std
        dxc += (2.0 / self.batch_size) * self.xc * dvar
        dmu = np.sum(dxc, axis=0)
        dx = dxc - dmu / self.batch_size
        self.dgamma, self.dbeta = dgamma, dbeta
        return dx.reshape(*self.input_shape)


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


# --- common/optimizer.py ------------------------------------------------------------


def _zeros_like_each(params):
    return {key: np.zeros_like(val) for key, val in params.items()}


class SGD:
    def __init__(self, lr=0.01):
        self.lr = lr

    def update(self, params, grads):
        for key in params.keys():
            params[key] -= self.lr * grads[key]


class Momentum:
    def __init__(self, lr=0.01, momentum=0.9):
        self.lr, self.momentum, self.v = lr, momentum, None

    def update(self, params, grads):
        if self.v is None:
            self.v = _zeros_like_each(params)
        for key in params.keys():
            self.v[key] = self.momentum * self.v[key] - self.lr * grads[key]
            params[key] += self.v[key]


class Nesterov:
    def __init__(self, lr=0.01, momentum=0.9):
        self.lr, self.momentum, self.v = lr, momentum, None

    def update(self, params, grads):
        if self.v is None:
            self.v = _zeros_like_each(params)
        for key in params.keys():
            self.v[key] *= self.momentum
            self.v[key] -= self.lr * grads[key]
            params[key] += self.momentum * self.momentum * self.v[key]
            params[key] -= (1 + self.momentum) * self.lr * grads[key]


class AdaGrad:
    def __init__(self, lr=0.01):
        self.lr, self.h = lr, None

    def update(self, params, grads):
        if self.h is None:
            self.h = _zeros_like_each(params)
        for key in params.keys():
            self.h[key] += grads[key] * grads[key]
            params[key] -= self.lr * grads[key] / (np.sqrt(self.h[key]) + 1e-7)


class RMSprop:
    def __init__(self, lr=0.01, decay_rate=0.99):
        self.lr, self.decay_rate, self.h = lr, decay_rate, None

    def update(self, params, grads):
        if self.h is None:
            self.h = _zeros_like_each(params)
        for key in params.keys():
            self.h[key] *= self.decay_rate
            self.h[key] += (1 - self.decay_rate) * grads[key] * grads[key]
            params[key] -= self.lr * grads[key] / (np.sqrt(self.h[key]) + 1e-7)


class Adam:
    def __init__(self, lr=0.001, beta1=0.9, beta2=0.999):
        self.lr, self.beta1, self.beta2 = lr, beta1, beta2
        self.iter, self.m, self.v = 0, None, None

    def update(self, params, grads):
        if self.m is None:
            self.m, self.v = _zeros_like_each(params), _zeros_like_each(params)
        self.iter += 1
        lr_t = self.lr * np.sqrt(1.0 - self.beta2 ** self.iter) / (1.0 - self.beta1 ** self.iter)
        for key in params.keys():
            self.m[key] += (1 - self.beta1) * (grads[key] - self.m[key])
            self.v[key] += (1 - self.beta2) * (grads[key] ** 2 - self.v[key])
            params[key] -= lr_t * self.m[key] / (np.sqrt(self.v[key]) + 1e-7)


OPTIMIZERS = {"sgd": SGD, "momentum": Momentum, "nesterov": Nesterov, "adagrad": AdaGrad,
              "rmsprop": RMSprop, "adam": Adam}


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


# --- ch07: common/util.py's im2col/col2im, Convolution, Pooling; SimpleConvNet and the ------
# --- Paddle course's MNIST CNN (timed by `fastnn train --model cnn`, checked by `fastnn check`)


def im2col(input_data, filter_h, filter_w, stride=1, pad=0):
    N, C, H, W = input_data.shape
    out_h = (H + 2 * pad - filter_h) // stride + 1
    out_w = (W + 2 * pad - filter_w) // stride + 1
    img = np.pad(input_data, [(0, 0), (0, 0), (pad, pad), (pad, pad)], "constant")
    col = np.zeros((N, C, filter_h, filter_w, out_h, out_w))
    for y in range(filter_h):
        y_max = y + stride * out_h
        for x in range(filter_w):
            x_max = x + stride * out_w
            col[:, :, y, x, :, :] = img[:, :, y:y_max:stride, x:x_max:stride]
    return col.transpose(0, 4, 5, 1, 2, 3).reshape(N * out_h * out_w, -1)


def col2im(col, input_shape, filter_h, filter_w, stride=1, pad=0):
    N, C, H, W = input_shape
    out_h = (H + 2 * pad - filter_h) // stride + 1
    out_w = (W + 2 * pad - filter_w) // stride + 1
    col = col.reshape(N, out_h, out_w, C, filter_h, filter_w).transpose(0, 3, 4, 5, 1, 2)
    img = np.zeros((N, C, H + 2 * pad + stride - 1, W + 2 * pad + stride - 1))
    for y in range(filter_h):
        y_max = y + stride * out_h
        for x in range(filter_w):
            x_max = x + stride * out_w
            img[:, :, y:y_max:stride, x:x_max:stride] += col[:, :, y, x, :, :]
    return img[:, :, pad:H + pad, pad:W + pad]


class Convolution:
    def __init__(self, W, b, stride=1, pad=0):
        self.W, self.b, self.stride, self.pad = W, b, stride, pad
        self.x = self.col = self.col_W = self.dW = self.db = None

    def forward(self, x):
        FN, C, FH, FW = self.W.shape
        N, C, H, W = x.shape
        out_h = 1 + int((H + 2 * self.pad - FH) / self.stride)
        out_w = 1 + int((W + 2 * self.pad - FW) / self.stride)
        col = im2col(x, FH, FW, self.stride, self.pad)
        col_W = self.W.reshape(FN, -1).T
        out = np.dot(col, col_W) + self.b
        self.x, self.col, self.col_W = x, col, col_W
        return out.reshape(N, out_h, out_w, -1).transpose(0, 3, 1, 2)

    def backward(self, dout):
        FN, C, FH, FW = self.W.shape
        dout = dout.transpose(0, 2, 3, 1).reshape(-1, FN)
        self.db = np.sum(dout, axis=0)
        self.dW = np.dot(self.col.T, dout).transpose(1, 0).reshape(FN, C, FH, FW)
        dcol = np.dot(dout, self.col_W.T)
        return col2im(dcol, self.x.shape, FH, FW, self.stride, self.pad)


class Pooling:
    def __init__(self, pool_h, pool_w, stride=1, pad=0):
        self.pool_h, self.pool_w, self.stride, self.pad = pool_h, pool_w, stride, pad
        self.x = self.arg_max = None

    def forward(self, x):
        N, C, H, W = x.shape
        out_h = int(1 + (H - self.pool_h) / self.stride)
        out_w = int(1 + (W - self.pool_w) / self.stride)
        col = im2col(x, self.pool_h, self.pool_w, self.stride, self.pad)
        col = col.reshape(-1, self.pool_h * self.pool_w)
        self.x, self.arg_max = x, np.argmax(col, axis=1)
        return np.max(col, axis=1).reshape(N, out_h, out_w, C).transpose(0, 3, 1, 2)

    def backward(self, dout):
        dout = dout.transpose(0, 2, 3, 1)
        pool_size = self.pool_h * self.pool_w
        dmax = np.zeros((dout.size, pool_size))
        dmax[np.arange(self.arg_max.size), self.arg_max.flatten()] = dout.flatten()
        dmax = dmax.reshape(dout.shape + (pool_size,))
        dcol = dmax.reshape(dmax.shape[0] * dmax.shape[1] * dmax.shape[2], -1)
        return col2im(dcol, self.x.shape, self.pool_h, self.pool_w, self.stride, self.pad)


class ImageAffine(Affine):
    """The book's Affine as its ch07 version has it: N-d input flattened, dx reshaped back."""

    def forward(self, x):
        self.original_x_shape = x.shape
        return super().forward(x.reshape(x.shape[0], -1))

    def backward(self, dout):
        return super().backward(dout).reshape(*self.original_x_shape)


class _ConvNet:
    _param_layers = ()

    def predict(self, x):
        for layer in self.layers.values():
            x = layer.forward(x)
        return x

    def loss(self, x, t):
        return self.last_layer.forward(self.predict(x), t)

    def accuracy(self, x, t, batch_size=100):
        if t.ndim != 1:
            t = np.argmax(t, axis=1)
        acc = 0.0
        for i in range(int(x.shape[0] / batch_size)):
            y = np.argmax(self.predict(x[i * batch_size:(i + 1) * batch_size]), axis=1)
            acc += np.sum(y == t[i * batch_size:(i + 1) * batch_size])
        return acc / x.shape[0]

    def gradient(self, x, t):
        self.loss(x, t)
        dout = self.last_layer.backward(1)
        for layer in reversed(list(self.layers.values())):
            dout = layer.backward(dout)
        grads = {}
        for i, key in enumerate(self._param_layers):
            grads["W%d" % (i + 1)] = self.layers[key].dW
            grads["b%d" % (i + 1)] = self.layers[key].db
        return grads


class SimpleConvNet(_ConvNet):
    _param_layers = ("Conv1", "Affine1", "Affine2")

    def __init__(self, input_dim=(1, 28, 28),
                 conv_param={"filter_num": 30, "filter_size": 5, "pad": 0, "stride": 1},  # noqa: B006
                 hidden_size=100, output_size=10, weight_init_std=0.01):
        fn, fs = conv_param["filter_num"], conv_param["filter_size"]
        conv_out = (input_dim[1] - fs + 2 * conv_param["pad"]) / conv_param["stride"] + 1
        p = self.params = {}
        p["W1"] = weight_init_std * np.random.randn(fn, input_dim[0], fs, fs)
        p["b1"] = np.zeros(fn)
        p["W2"] = weight_init_std * np.random.randn(int(fn * (conv_out / 2) * (conv_out / 2)),
                                                    hidden_size)
        p["b2"] = np.zeros(hidden_size)
        p["W3"] = weight_init_std * np.random.randn(hidden_size, output_size)
        p["b3"] = np.zeros(output_size)
        self.layers = OrderedDict()
        self.layers["Conv1"] = Convolution(p["W1"], p["b1"], conv_param["stride"],
                                           conv_param["pad"])
        self.layers["Relu1"] = Relu()
        self.layers["Pool1"] = Pooling(2, 2, stride=2)
        self.layers["Affine1"] = ImageAffine(p["W2"], p["b2"])
        self.layers["Relu2"] = Relu()
        self.layers["Affine2"] = ImageAffine(p["W3"], p["b3"])
        self.last_layer = SoftmaxWithLoss()


class MnistCNN(_ConvNet):
    """The Paddle course's CNN from the book's layers (fastnn.nets.MnistCNN's twin)."""

    _param_layers = ("Conv1", "Conv2", "Affine1")

    def __init__(self, input_dim=(1, 28, 28), filter_num=20, filter_size=5, pad=2,
                 output_size=10, weight_init_std=0.01):
        C, h, w = input_dim
        for _ in range(2):
            h, w = h + 2 * pad - filter_size + 1, w + 2 * pad - filter_size + 1
            h, w = (h - 2) // 2 + 1, (w - 2) // 2 + 1
        fans = (C * filter_size ** 2, filter_num * filter_size ** 2, filter_num * h * w)
        scales = [np.sqrt(2.0 / f) if str(weight_init_std).lower() in ("relu", "he")
                  else np.sqrt(1.0 / f) if str(weight_init_std).lower() in ("sigmoid", "xavier")
                  else weight_init_std for f in fans]
        p = self.params = {}
        p["W1"] = scales[0] * np.random.randn(filter_num, C, filter_size, filter_size)
        p["b1"] = np.zeros(filter_num)
        p["W2"] = scales[1] * np.random.randn(filter_num, filter_num, filter_size, filter_size)
        p["b2"] = np.zeros(filter_num)
        p["W3"] = scales[2] * np.random.randn(filter_num * h * w, output_size)
        p["b3"] = np.zeros(output_size)
        self.layers = OrderedDict()
        self.layers["Conv1"] = Convolution(p["W1"], p["b1"], 1, pad)
        self.layers["Relu1"] = Relu()
        self.layers["Pool1"] = Pooling(2, 2, stride=2)
        self.layers["Conv2"] = Convolution(p["W2"], p["b2"], 1, pad)
        self.layers["Relu2"] = Relu()
        self.layers["Pool2"] = Pooling(2, 2, stride=2)
        self.layers["Affine1"] = ImageAffine(p["W3"], p["b3"])
        self.last_layer = SoftmaxWithLoss()
