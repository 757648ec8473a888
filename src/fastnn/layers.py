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
import threading

import numpy as np

from . import functions as F
from ._kernels import _linear
from ._threads import resolve_n_threads
from ._validate import as_kernel_array, compute_dtypes, finish
# the book's common/layers.py does `import numpy as np; from common.functions import *;
# from common.util import im2col, col2im`, and its scripts use those names after
# `from common.layers import *`: this module hands the same names on
from .functions import (cross_entropy_error, identity_function, mean_squared_error, relu,  # noqa: F401
                        relu_grad, sigmoid, sigmoid_grad, softmax, softmax_loss, step_function,
                        sum_squared_error)
from .util import col2im, im2col  # noqa: F401

# what the book's common/functions.py makes public (fastnn.functions' extras stay there)
_BOOK_FUNCTIONS = ["identity_function", "step_function", "sigmoid", "sigmoid_grad", "relu",
                  "relu_grad", "softmax", "sum_squared_error", "mean_squared_error",
                  "cross_entropy_error", "softmax_loss"]
_LAYERS = ["Relu", "Sigmoid", "Affine", "SoftmaxWithLoss", "Dropout", "BatchNormalization",
          "Convolution", "Pooling"]
__all__ = ["np"] + _BOOK_FUNCTIONS + ["im2col", "col2im"] + _LAYERS


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
        # the book's NumPy errors, with the argument named: a read-only dout (it is edited
        # in place) and a dout the mask cannot index (IndexError in the book)
        if isinstance(dout, np.ndarray) and not dout.flags.writeable:
            raise ValueError("Relu.backward: dout (shape %s) is read-only, but the book's "
                             "Relu edits it in place; pass a writeable array" % (dout.shape,))
        try:
            dout[self.mask] = 0  # in place, as the book
        except IndexError:
            raise ValueError("Relu.backward: dout has shape %s, but the forward input had shape "
                             "%s" % (np.shape(dout), np.shape(self.mask))) from None
        return dout

    def __repr__(self):
        return "Relu()"


def _check_dout(layer, dout, shape):
    """The book's ``dout * (...)`` of a layer whose forward output had `shape`: a dout that
    does not broadcast with it gets a ValueError naming dout (NumPy's would name nothing)."""
    dshape = np.shape(dout)
    try:
        np.broadcast_shapes(dshape, shape)
    except ValueError:
        raise ValueError("%s.backward: dout has shape %s, but the forward output had shape %s"
                         % (layer, dshape, shape)) from None


class Sigmoid:
    """``1 / (1 + exp(-x))`` (fastnn's kernel); ``out`` is kept for ``backward``."""

    def __init__(self):
        self.out = None

    def forward(self, x):
        out = F.sigmoid(x)
        self.out = out
        return out

    def backward(self, dout):
        _check_dout("Sigmoid", dout, np.shape(self.out))
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
        if W.ndim != 2:
            raise ValueError("Affine.forward: W must be 2-D (features, outputs), got shape %s"
                             % (W.shape,))
        if x.shape[1] != W.shape[0]:
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
        # each in the book's dtype: dW = x.T @ dout, db = dout.sum(0), dx = dout @ W.T
        # (computed in their common dtype `dt`; integer input gives float64)
        self.dW = finish(dW, compute_dtypes(self.x.dtype, dout.dtype)[1])
        self.db = finish(db, compute_dtypes(dout.dtype)[1])
        return finish(dx, compute_dtypes(dout.dtype, W.dtype)[1]).reshape(*self.original_x_shape)

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
        # forward's reading of t (fastnn._validate.targets): one-hot when it has y's size,
        # except a 1-D t for one class, which holds labels
        one_class = self.y.ndim == 2 and self.y.shape[1] == 1 and t.ndim <= 1
        if t.size == self.y.size and not one_class:
            if t.shape != self.y.shape:
                # one sample's one-hot in another arrangement ((C, 1), (C,) for y (1, C)):
                # forward read it as the (1, C) row it is, and so does the gradient
                t, batch_size = t.reshape(1, -1), 1
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
        _check_dout("Dropout", dout, np.shape(self.mask))
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


# --- ch07: Convolution and Pooling (issue #10) ------------------------------------------
# Kernels in _kernels/_convolution (im2col + GEMM per sample, in parallel); the geometry
# checks are util's. Outputs keep the input's float dtype (the book returns float64 for any
# input because its im2col builds np.zeros arrays).

from . import util as _util  # noqa: E402 - this section's own import
from ._kernels import _convolution  # noqa: E402


def _no_memory(func):
    return MemoryError("%s: could not allocate the kernel's scratch memory" % func)


_conv_local = threading.local()


def _conv_work(x_shape, W_shape, stride, pad, n_threads, itemsize):
    """The kernels' scratch for these shapes: one buffer per Python thread, grown as needed
    and kept, so its pages stay mapped between calls (fresh pages cost 3x on one sample)."""
    N, C, H, Wd = x_shape
    FN, _, FH, FW = W_shape
    nbytes = _convolution.work_bytes(N, C, H, Wd, FN, FH, FW, stride, pad, n_threads, itemsize)
    buf = getattr(_conv_local, "buf", None)
    if buf is None or buf.size < nbytes:
        buf = _conv_local.buf = np.empty(max(nbytes, 64), dtype=np.uint8)
    return buf


class Convolution:
    """The book's convolution layer: ``out[n, f] = sum_c W[f, c] (*) x_pad[n, c] + b[f]``.

    Parameters
    ----------
    W : array (FN, C, FH, FW), kept by reference (updating the net's params updates the layer)
    b : array (FN,)
    stride : int >= 1
    pad : int >= 0, zeros on every side of the input

    ``forward(x)`` takes ``x`` (N, C, H, W) and returns (N, FN, out_h, out_w) with
    ``out_h = 1 + (H + 2*pad - FH) // stride``; ``backward(dout)`` returns dx (x's shape)
    and stores ``dW`` (W's shape) and ``db`` (FN,). Attributes as the book's: ``x``,
    ``col_W`` (``W.reshape(FN, -1).T``), ``col`` (``im2col`` of ``x``: the kernels never
    build it, so it is computed on first access), ``dW``, ``db``.
    """

    def __init__(self, W, b, stride=1, pad=0):
        self.W = W
        self.b = b
        self.stride = stride
        self.pad = pad
        self.x = None
        self._col = None
        self.col_W = None
        self.dW = None
        self.db = None
        self._fwd = None  # (kernel-ready x, W as used, geometry, compute dtype) of the forward

    @property
    def col(self):
        """``im2col(x, FH, FW, stride, pad)`` of the last forward's input, (N*out_h*out_w, C*FH*FW)."""
        if self._col is None and self._fwd is not None:
            xk, _, (fh, fw, stride, pad), _ = self._fwd
            self._col = _util.im2col(xk, fh, fw, stride, pad)
        return self._col

    @col.setter
    def col(self, value):
        self._col = value

    def forward(self, x):
        func = "Convolution.forward"
        x = np.asarray(x)
        W = np.asarray(self.W)
        b = np.asarray(self.b)
        _util._four_d(x, "x", func)
        if W.ndim != 4:
            raise ValueError("%s: W has shape %s; expected a 4-D array (FN, C, FH, FW)"
                             % (func, W.shape))
        FN, C, FH, FW = W.shape
        if x.shape[1] != C:
            raise ValueError("%s: x has shape %s with %d channels, but W has shape %s with %d: "
                             "x.shape[1] must equal W.shape[1]" % (func, x.shape, x.shape[1],
                                                                   W.shape, C))
        if b.size != FN:
            raise ValueError("%s: b has shape %s, but W has shape %s: b must hold one bias "
                             "per filter (%d)" % (func, b.shape, W.shape, FN))
        fh, fw, stride, pad, out_h, out_w = _util._geometry(func, x.shape, FH, FW,
                                                            self.stride, self.pad)
        dt, res = compute_dtypes(x.dtype, W.dtype, b.dtype)
        xk = as_kernel_array(x, dt)
        out = np.empty((x.shape[0], FN, out_h, out_w), dtype=dt)
        n_threads = resolve_n_threads(None)
        work = _conv_work(x.shape, W.shape, stride, pad, n_threads, dt.itemsize)
        if _convolution.convolution_forward(xk, as_kernel_array(W, dt),
                                            as_kernel_array(b.reshape(-1), dt), stride, pad,
                                            out, n_threads, work):
            raise _no_memory(func)
        self.x = x
        self._col = None
        self.col_W = W.reshape(FN, -1).T
        self._fwd = (xk, W, (fh, fw, stride, pad), res)
        return finish(out, res)

    def backward(self, dout):
        """dx = col2im(dout @ col_W.T); dW = col.T @ dout; db = sum(dout) over (n, y, x)."""
        func = "Convolution.backward"
        if self._fwd is None:
            raise ValueError("%s called before forward" % func)
        xk, W, (fh, fw, stride, pad), _ = self._fwd
        dout = np.asarray(dout)
        N, C, H, Wd = xk.shape
        FN = W.shape[0]
        expected = (N, FN, (H + 2 * pad - fh) // stride + 1, (Wd + 2 * pad - fw) // stride + 1)
        if dout.shape != expected:
            raise ValueError("%s: dout has shape %s, expected %s (x %s, W %s, stride %d, pad %d)"
                             % (func, dout.shape, expected, xk.shape, W.shape, stride, pad))
        dt, res = compute_dtypes(dout.dtype, xk.dtype, W.dtype)
        dx = np.empty(xk.shape, dtype=dt)
        dW = np.empty(W.shape, dtype=dt)
        db = np.empty(FN, dtype=dt)
        n_threads = resolve_n_threads(None)
        work = _conv_work(xk.shape, W.shape, stride, pad, n_threads, dt.itemsize)
        if _convolution.convolution_backward(as_kernel_array(xk, dt), as_kernel_array(W, dt),
                                             as_kernel_array(dout, dt), stride, pad, dx, dW,
                                             db, n_threads, work):
            raise _no_memory(func)
        self.dW = finish(dW, res)
        self.db = finish(db, res)
        return finish(dx, res)

    def __repr__(self):
        return "Convolution(W=%s, b=%s, stride=%r, pad=%r)" % (np.shape(self.W), np.shape(self.b),
                                                               self.stride, self.pad)


class Pooling:
    """The book's max-pooling layer over ``pool_h`` x ``pool_w`` windows.

    Parameters
    ----------
    pool_h, pool_w : int >= 1
    stride : int >= 1; 1 by default, as in the book's repository (its nets pass stride=2)
    pad : int >= 0; the padding's zeros take part in the max. The book sizes its output
        as ``1 + (H - pool_h) // stride``, ignoring ``pad``, so a padded Pooling works only
        where that equals the padded size; elsewhere this raises ValueError (the book's
        reshape fails or mixes up positions).

    ``forward(x)`` takes (N, C, H, W) and returns (N, C, out_h, out_w); ``arg_max`` keeps,
    flat in (n, oy, ox, c) order as the book's, which window element was the maximum
    (np.argmax: the first of equal values, a NaN over anything). ``backward(dout)``
    sends each gradient to that element.
    """

    def __init__(self, pool_h, pool_w, stride=1, pad=0):
        self.pool_h = pool_h
        self.pool_w = pool_w
        self.stride = stride
        self.pad = pad
        self.x = None
        self.arg_max = None
        self._fwd = None  # (x shape, geometry, the arg_max the kernel wrote)

    def forward(self, x):
        func = "Pooling.forward"
        x = np.asarray(x)
        _util._four_d(x, "x", func)
        ph, pw, stride, pad, out_h, out_w = _util._geometry(
            func, x.shape, self.pool_h, self.pool_w, self.stride, self.pad,
            what="pooling window", names=("pool_h", "pool_w"))
        N, C, H, W = x.shape
        if pad:
            book = (int(1 + (H - ph) / stride), int(1 + (W - pw) / stride))
            if book != (out_h, out_w):
                raise ValueError("%s: with pad=%d the padded input has %s windows, but the "
                                 "book's Pooling sizes its output %s without the padding "
                                 "(x has shape %s, window (%d, %d), stride %d)"
                                 % (func, pad, (out_h, out_w), book, x.shape, ph, pw, stride))
        dt, res = compute_dtypes(x.dtype)
        out = np.empty((N, C, out_h, out_w), dtype=dt)
        arg_max = np.empty(N * out_h * out_w * C, dtype=np.intp)
        _convolution.pooling_forward(as_kernel_array(x, dt), ph, pw, stride, pad, out, arg_max,
                                     resolve_n_threads(None))
        self.x = x
        self.arg_max = arg_max
        self._fwd = (x.shape, (ph, pw, stride, pad), arg_max)
        return finish(out, res)

    def backward(self, dout):
        func = "Pooling.backward"
        if self._fwd is None:
            raise ValueError("%s called before forward" % func)
        x_shape, (ph, pw, stride, pad), arg_kernel = self._fwd
        N, C, H, W = x_shape
        out_h = (H + 2 * pad - ph) // stride + 1
        out_w = (W + 2 * pad - pw) // stride + 1
        dout = np.asarray(dout)
        if dout.shape != (N, C, out_h, out_w):
            raise ValueError("%s: dout has shape %s, expected %s (x %s)"
                             % (func, dout.shape, (N, C, out_h, out_w), x_shape))
        arg = self.arg_max
        if arg is not arg_kernel:  # replaced by the user: check it as the book's indexing would
            arg = np.asarray(arg)
            if arg.dtype.kind not in "iu" or arg.size != N * out_h * out_w * C:
                raise ValueError("%s: arg_max has shape %s and dtype %s; expected %d integers"
                                 % (func, arg.shape, arg.dtype, N * out_h * out_w * C))
            if arg.size and (arg.min() < 0 or arg.max() >= ph * pw):
                raise ValueError("%s: arg_max must be in [0, %d) (pool %dx%d)"
                                 % (func, ph * pw, ph, pw))
            arg = np.ascontiguousarray(arg.reshape(-1), dtype=np.intp)
        dt, res = compute_dtypes(dout.dtype)
        dx = np.empty(x_shape, dtype=dt)
        _convolution.pooling_backward(as_kernel_array(dout, dt), arg, ph, pw, stride, pad, dx,
                                      resolve_n_threads(None))
        return finish(dx, res)

    def __repr__(self):
        return "Pooling(pool_h=%r, pool_w=%r, stride=%r, pad=%r)" % (
            self.pool_h, self.pool_w, self.stride, self.pad)
