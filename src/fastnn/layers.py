"""The book's ``common/layers.py``: layers with ``forward``/``backward``, on fastnn's kernels.

Same classes, attributes and semantics as "Deep Learning from Scratch":

* ``Affine(W, b)`` keeps references to ``W`` and ``b`` (the net's ``params`` arrays), flattens
  N-D input to ``(N, -1)`` and stores ``x``, ``dW``, ``db``;
* ``Relu.backward`` edits ``dout`` in place (the book's ``dout[self.mask] = 0``);
* ``SoftmaxWithLoss.forward(x, t)`` takes labels or one-hot ``t``; ``backward(dout=1)``;
* ``Dropout`` draws its mask with ``np.random.rand`` (so a seeded run matches the book's)
  and scales by ``1 - dropout_ratio`` at test time;
* ``BatchNormalization`` keeps ``running_mean`` / ``running_var`` and uses ``train_flg``.

The nets (fastnn.nets) do not call these objects on their fused paths: their whole
forward + backward is one executor call (fastnn._engine); the objects are the book's API
for code that composes layers itself, and the nets' ``layers`` attribute.
"""
import numpy as np

from . import functions as F
from ._kernels import _linear
from ._threads import resolve_n_threads
from ._validate import as_kernel_array, compute_dtypes, finish

__all__ = ["Relu", "Sigmoid", "Affine", "SoftmaxWithLoss", "Dropout", "BatchNormalization"]


class Relu:
    """``max(0, x)``; ``mask`` marks ``x <= 0``. ``backward`` zeroes ``dout`` in place."""

    def __init__(self):
        self.mask = None

    def forward(self, x):
        x = np.asarray(x)
        self.mask = (x <= 0)
        out = x.copy()
        out[self.mask] = 0
        return out

    def backward(self, dout):
        dout[self.mask] = 0  # in place, as the book
        return dout

    def __repr__(self):
        return "Relu()"


class Sigmoid:
    """``1 / (1 + exp(-x))`` (fastnn's kernel); ``out`` is kept for ``backward``."""

    def __init__(self):
        self.out = None

    def forward(self, x):
        out = F.sigmoid(x)
        self.out = out
        return out

    def backward(self, dout):
        return dout * (1.0 - self.out) * self.out  # dL/dx = dout * (1 - y) * y

    def __repr__(self):
        return "Sigmoid()"


class Affine:
    """``out = x @ W + b`` with ``x`` flattened to ``(N, -1)``.

    Parameters
    ----------
    W : array (K, N), kept by reference (updating the net's params updates the layer)
    b : array (N,)
    """

    def __init__(self, W, b):
        self.W = W
        self.b = b
        self.x = None
        self.original_x_shape = None
        self.dW = None
        self.db = None

    def forward(self, x):
        x = np.asarray(x)
        self.original_x_shape = x.shape
        if x.ndim == 0:
            raise ValueError("Affine.forward: x must have a batch axis, got a 0-d array")
        x = x.reshape(x.shape[0], -1) if x.ndim != 2 else x
        W = np.asarray(self.W)
        if W.ndim != 2 or x.shape[1] != W.shape[0]:
            raise ValueError("Affine.forward: x has shape %s (flattened %s) and W has shape %s: "
                             "x's features must equal W.shape[0]"
                             % (self.original_x_shape, x.shape, W.shape))
        self.x = x
        return F.affine(x, W, self.b)  # x @ W + b

    def backward(self, dout):
        """dx = dout @ W.T; dW = x.T @ dout; db = sum(dout, axis=0). Returns dx (input's shape)."""
        if self.x is None:
            raise ValueError("Affine.backward called before forward")
        dout = np.asarray(dout)
        W = np.asarray(self.W)
        M, K = self.x.shape
        N = W.shape[1]
        if dout.shape != (M, N):
            raise ValueError("Affine.backward: dout has shape %s, expected %s (x %s, W %s)"
                             % (dout.shape, (M, N), self.x.shape, W.shape))
        dt, res = compute_dtypes(dout.dtype, W.dtype, self.x.dtype)
        x = as_kernel_array(self.x, dt)
        dx = np.empty((M, K), dtype=dt)
        dW = np.empty((K, N), dtype=dt)
        db = np.empty(N, dtype=dt)
        _linear.affine_backward(x, as_kernel_array(W, dt), as_kernel_array(dout, dt),
                                  dx, dW, db, resolve_n_threads(None))
        self.dW = finish(dW, res)
        self.db = finish(db, res)
        return finish(dx, res).reshape(*self.original_x_shape)

    def __repr__(self):
        return "Affine(W=%s, b=%s)" % (np.shape(self.W), np.shape(self.b))


class SoftmaxWithLoss:
    """Softmax followed by the cross-entropy loss (labels or one-hot ``t``)."""

    def __init__(self):
        self.loss = None
        self.y = None  # softmax output
        self.t = None  # targets

    def forward(self, x, t):
        self.t = t
        self.y = F.softmax(x)
        self.loss = F.cross_entropy_error(self.y, self.t)
        return self.loss

    def backward(self, dout=1):
        if self.y is None:
            raise ValueError("SoftmaxWithLoss.backward called before forward")
        t = np.asarray(self.t)
        batch_size = t.shape[0] if t.ndim else 1
        if t.size == self.y.size:
            dx = (self.y - t) / batch_size  # (y - t) / batch_size
        else:
            if self.y.ndim != 2:
                raise ValueError("SoftmaxWithLoss.backward: labels need 2-D scores, y has "
                                 "shape %s" % (self.y.shape,))
            dx = self.y.copy()
            dx[np.arange(batch_size), t] -= 1  # y[t] - 1
            dx = dx / batch_size
        return dx

    def __repr__(self):
        return "SoftmaxWithLoss()"


class Dropout:
    """Drop each unit with probability ``dropout_ratio`` while training.

    Training keeps units where ``np.random.rand(*x.shape) > dropout_ratio``; at test time
    the output is scaled by ``1 - dropout_ratio`` (the book's, non-inverted, dropout).
    """

    def __init__(self, dropout_ratio=0.5):
        self.dropout_ratio = dropout_ratio
        self.mask = None

    def forward(self, x, train_flg=True):
        x = np.asarray(x)
        if train_flg:
            self.mask = np.random.rand(*x.shape) > self.dropout_ratio
            return x * self.mask
        return x * (1.0 - self.dropout_ratio)

    def backward(self, dout):
        return dout * self.mask

    def __repr__(self):
        return "Dropout(dropout_ratio=%r)" % (self.dropout_ratio,)


class BatchNormalization:
    """Batch normalisation (Ioffe & Szegedy), the book's layer.

    ``gamma``/``beta`` are kept by reference; running statistics are created on the first
    forward (zeros of the feature size) and updated with ``momentum`` while training.
    N-D input is flattened to ``(N, -1)`` and the output takes the input's shape.
    """

    def __init__(self, gamma, beta, momentum=0.9, running_mean=None, running_var=None):
        self.gamma = gamma
        self.beta = beta
        self.momentum = momentum
        self.input_shape = None  # 4-D for conv layers, 2-D for dense ones
        self.running_mean = running_mean
        self.running_var = running_var
        self.batch_size = None
        self.xc = None
        self.xn = None
        self.std = None
        self.dgamma = None
        self.dbeta = None

    def forward(self, x, train_flg=True):
        x = np.asarray(x)
        self.input_shape = x.shape
        if x.ndim != 2:
            x = x.reshape(x.shape[0], -1)
        out = self.__forward(x, train_flg)
        return out.reshape(*self.input_shape)

    def __forward(self, x, train_flg):
        if self.running_mean is None:
            _, D = x.shape
            self.running_mean = np.zeros(D)
            self.running_var = np.zeros(D)
        if train_flg:
            mu = x.mean(axis=0)
            xc = x - mu                        # x - mean
            var = np.mean(xc ** 2, axis=0)     # mean((x - mean)^2)
            std = np.sqrt(var + 10e-7)         # sqrt(var + 1e-6)
            xn = xc / std
            self.batch_size = x.shape[0]
            self.xc = xc
            self.xn = xn
            self.std = std
            self.running_mean = self.momentum * self.running_mean + (1 - self.momentum) * mu
            self.running_var = self.momentum * self.running_var + (1 - self.momentum) * var
        else:
            xc = x - self.running_mean
            xn = xc / (np.sqrt(self.running_var + 10e-7))
        return self.gamma * xn + self.beta     # gamma * xn + beta

    def backward(self, dout):
        dout = np.asarray(dout)
        if dout.ndim != 2:
            dout = dout.reshape(dout.shape[0], -1)
        dx = self.__backward(dout)
        return dx.reshape(*self.input_shape)

    def __backward(self, dout):
        dbeta = dout.sum(axis=0)
        dgamma = np.sum(self.xn * dout, axis=0)
        dxn = self.gamma * dout
        dxc = dxn / self.std
        dstd = -np.sum((dxn * self.xc) / (self.std * self.std), axis=0)
        dvar = 0.5 * dstd / self.std
        dxc += (2.0 / self.batch_size) * self.xc * dvar
        dmu = np.sum(dxc, axis=0)
        dx = dxc - dmu / self.batch_size
        self.dgamma = dgamma
        self.dbeta = dbeta
        return dx

    def __repr__(self):
        return "BatchNormalization(momentum=%r)" % (self.momentum,)
