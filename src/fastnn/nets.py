"""The book's nets: ch04 ``TwoLayerNet``, ch06 ``MultiLayerNet`` and ``MultiLayerNetExtend``,
on fastnn's kernels.

Names, arguments, defaults, init draws (the same ``np.random`` calls in the same order, so
``np.random.seed(0)`` gives the book's parameters exactly) and ``params`` keys are the
book's. ``params`` is a plain dict of NumPy arrays, read afresh on every call:
``net.params['W1'] -= lr * grads['W1']`` and ``net.params['W1'] = new_array`` both take
effect on the next call.

``gradient(x, t)`` is one fused backprop call (``fastnn.layers.mlp_gradient``: forward and
backward of every layer in C, dropout and batchnorm included).

``numerical_gradient(x, t)`` runs the fused finite-difference engine
(``fastnn._kernels._numgrad``): one forward pass, then, for every parameter, the loss at
``w + h`` and ``w - h`` re-evaluated incrementally from the perturbed layer on, rows whose
input is exactly 0 skipped, parameters in parallel. The perturbed points are the book's
(rounded in the parameter's dtype); the loss is the book's (mean of ``-log(y_t + 1e-7)``,
plus ``0.5 * lambda * sum(W**2)`` per weight with weight decay), evaluated in double --
for float32 params that is the true central difference at the float32 points rather than
float32 rounding noise. Results do not depend on the thread count.
"""
from collections import OrderedDict

import numpy as np

from . import functions as F
from . import layers as _layers
from ._kernels import _numgrad
from ._threads import resolve_n_threads
from ._validate import bad_labels, targets
from .gradient import numerical_gradient as _generic_numerical_gradient

__all__ = ["TwoLayerNet", "MultiLayerNet", "MultiLayerNetExtend"]

_ACTIVATIONS = {"relu": 0, "sigmoid": 1}
# the reference's `x[idx] = tmp_val - h` on float32 params rounds as NumPy does
_numgrad.set_nep50(type(np.float32(1) - 1e-4) is np.float32)


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


def _labels_for(t, rows, n_classes, cls):
    """Class labels (B,) intp from labels or one-hot t (one-hot: argmax, as the book)."""
    kind, tc = targets(t, rows, n_classes, (rows, n_classes), cls)
    if kind == "onehot":
        return np.ascontiguousarray(np.argmax(tc, axis=1), dtype=np.intp)
    if tc.size and (tc.min() < 0 or tc.max() >= n_classes):
        raise bad_labels(tc, n_classes, cls)
    return tc


def _labels_of(t):
    t = np.asarray(t)
    return t if t.ndim == 1 else np.argmax(t, axis=1)


# Below this many estimated flops a call runs on one thread (waking a second one, on a
# busy machine, costs more than the whole call).
_ENGINE_PARALLEL_MIN_FLOPS = 2e6
# Taylor mode on (tests switch it off to check the exact incremental path on its own)
_USE_SERIES = True


def _engine_work(sizes, B, nnz):
    """Rough flop count of one engine call (series per column and row, then rows)."""
    est = 0.0
    for l in range(len(sizes) - 1):
        deeper = sum(sizes[m] * sizes[m + 1] * 7 + 60 * sizes[m] for m in range(l + 1, len(sizes) - 1))
        est += sizes[l + 1] * (20.0 * nnz[l] + B * (deeper + 300))
    return est


def _engine_numerical_gradient(net, weights, act, lam, x, t, n_threads, cls):
    """Central-difference gradients of `net.loss(x, t)` for every (W, b) in `weights`.

    weights : list of (W key, b key); act : 'relu' | 'sigmoid'; lam : weight decay.
    Returns a dict key -> gradient (same shape and dtype as the param).
    """
    params = net.params
    arrays = []
    for wk, bk in weights:
        for k in (wk, bk):
            p = params[k]
            if not isinstance(p, np.ndarray):
                raise TypeError("%s: params[%r] must be a numpy array, got %s"
                                % (cls, k, type(p).__name__))
            if p.dtype.kind != "f":
                raise TypeError("%s: params[%r] must be a floating-point array (it is perturbed "
                                "by h = 1e-4), got dtype %s" % (cls, k, p.dtype))
            if not p.flags.writeable:
                raise ValueError("%s: params[%r] (shape %s) is read-only; the numerical gradient "
                                 "perturbs it in place in the book's code" % (cls, k, p.shape))
        arrays.append((params[wk], params[bk]))
    n_in = arrays[0][0].shape[0]
    prev = n_in
    for (wk, bk), (W, b) in zip(weights, arrays):
        if W.ndim != 2 or W.shape[0] != prev or b.size != W.shape[1]:
            raise ValueError("%s: params[%r] has shape %s and params[%r] shape %s; expected "
                             "(%d, n) and (n,)" % (cls, wk, W.shape, bk, b.shape, prev))
        prev = W.shape[1]
    xb = _as_batch(x, n_in, cls)
    B = xb.shape[0]
    C = arrays[-1][0].shape[1]
    lab = _labels_for(t, B, C, cls)

    def generic():
        # straightforward evaluation (inf/NaN present, or an unusual dtype): the book's loop
        loss_W = lambda W: net.loss(x, t)  # noqa: E731 - the book's idiom
        out = {}
        for wk, bk in weights:
            out[wk] = _generic_numerical_gradient(loss_W, params[wk])
            out[bk] = _generic_numerical_gradient(loss_W, params[bk])
        return out

    if any(a.dtype not in (np.float32, np.float64) for pair in arrays for a in pair):
        return generic()
    x64 = np.ascontiguousarray(xb, dtype=np.float64)
    finite = np.isfinite(x64).all()
    layers = []
    A = x64
    nt = resolve_n_threads(n_threads)
    sizes = [n_in] + [W.shape[1] for W, _ in arrays]
    if n_threads is None and nt > 1:
        nnz0 = np.count_nonzero(x64)
        if _engine_work(sizes, B, [nnz0] + [B * n for n in sizes[1:-1]]) < _ENGINE_PARALLEL_MIN_FLOPS:
            nt = 1
    with np.errstate(over="ignore", invalid="ignore"):
        for li, (W, b) in enumerate(arrays):
            finite = finite and np.isfinite(W).all() and np.isfinite(b).all()
            if not finite:
                return generic()
            W64 = np.ascontiguousarray(W, dtype=np.float64)
            b64 = np.ascontiguousarray(b.reshape(-1), dtype=np.float64)
            Z = F.affine(A, W64, b64, n_threads=nt)          # z = a @ W + b
            nz = np.ascontiguousarray(A.T) != 0                # (n_in, B): rows to visit
            off = np.zeros(W.shape[0] + 1, dtype=np.intp)
            np.cumsum(nz.sum(axis=1), out=off[1:])
            ii, rows = np.nonzero(nz)
            d = {"W": W64, "b": b64, "A": A, "nz_off": off,
                 "nz_rows": np.ascontiguousarray(rows, dtype=np.intp),
                 "nz_vals": np.ascontiguousarray(A[rows, ii]),
                 "w_f32": int(W.dtype == np.float32), "b_f32": int(b.dtype == np.float32),
                 # with several threads each column is written contiguously (no false
                 # sharing of gW's cache lines between threads), then transposed back
                 "gWT": int(nt > 1),
                 "gW": np.empty(W.shape[::-1] if nt > 1 else W.shape, dtype=np.float64),
                 "gb": np.empty(W.shape[1], dtype=np.float64)}
            if li < len(arrays) - 1:
                d["Z"] = Z
                if act == "sigmoid":
                    E = np.exp(-Z)                             # E = exp(-z), cached
                    d["E"] = E
                    A = 1.0 / (1.0 + E)                        # a = sigmoid(z)
                else:
                    A = np.maximum(Z, 0.0)                     # a = relu(z)
                A = np.ascontiguousarray(A)
            layers.append(d)
        P = F.softmax(Z, n_threads=nt)
    if not np.isfinite(Z).all() or not np.isfinite(P).all():
        return generic()
    _numgrad.numgrad_net(layers, P, lab, _ACTIVATIONS[act], float(lam), nt, _USE_SERIES)
    out = {}
    for (wk, bk), (W, b), d in zip(weights, arrays, layers):
        gW = d["gW"].T if d["gWT"] else d["gW"]
        out[wk] = np.ascontiguousarray(gW, dtype=W.dtype)
        out[bk] = d["gb"].reshape(b.shape).astype(b.dtype, copy=False)
    return out


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
    """

    _weights = (("W1", "b1"), ("W2", "b2"))

    def __init__(self, input_size, hidden_size, output_size, weight_init_std=0.01):
        self.params = {}
        self.params["W1"] = weight_init_std * np.random.randn(input_size, hidden_size)
        self.params["b1"] = np.zeros(hidden_size)
        self.params["W2"] = weight_init_std * np.random.randn(hidden_size, output_size)
        self.params["b2"] = np.zeros(output_size)

    def __repr__(self):
        W1, W2 = self.params["W1"], self.params["W2"]
        return "TwoLayerNet(%d-%d-%d, %s)" % (W1.shape[0], W1.shape[1], W2.shape[1], W1.dtype)

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
        return _engine_numerical_gradient(self, self._weights, "sigmoid", 0.0, x, t,
                                          n_threads, "TwoLayerNet.numerical_gradient")

    def gradient(self, x, t):
        """Backpropagation gradients of ``loss(x, t)`` (dict with the params' keys)."""
        return self._backprop_gradient(x, t)

    def _backprop_gradient(self, x, t):
        return _fused_gradient(self.params, self._weights, "sigmoid", None, x, t)


# --- ch06 MultiLayerNet ---------------------------------------------------------------

def _init_scale(weight_init_std, fan_in):
    if str(weight_init_std).lower() in ("relu", "he"):
        return np.sqrt(2.0 / fan_in)                       # He: sqrt(2 / fan_in)
    if str(weight_init_std).lower() in ("sigmoid", "xavier"):
        return np.sqrt(1.0 / fan_in)                       # Xavier: sqrt(1 / fan_in)
    return weight_init_std


class MultiLayerNet:
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

    See Also
    --------
    MultiLayerNet.from_params : build one from an existing params dict (e.g. the book's
        ``sample_weight.pkl``).
    """

    def __init__(self, input_size, hidden_size_list, output_size,
                 activation="relu", weight_init_std="relu", weight_decay_lambda=0):
        if activation not in _ACTIVATIONS:
            raise ValueError("MultiLayerNet: activation must be 'relu' or 'sigmoid', got %r"
                             % (activation,))
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
        if activation not in _ACTIVATIONS:
            raise ValueError("MultiLayerNet.from_params: activation must be 'relu' or "
                             "'sigmoid', got %r" % (activation,))
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
        return net

    def __repr__(self):
        sizes = [self.input_size] + list(self.hidden_size_list) + [self.output_size]
        return "MultiLayerNet(%s, activation=%r, weight_decay_lambda=%r)" % (
            "-".join(map(str, sizes)), self.activation, self.weight_decay_lambda)

    def _weight_keys(self):
        return tuple(("W%d" % i, "b%d" % i) for i in range(1, self.hidden_layer_num + 2))

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
        return _engine_numerical_gradient(self, self._weight_keys(), self.activation,
                                          self.weight_decay_lambda, x, t, n_threads,
                                          "MultiLayerNet.numerical_gradient")

    def gradient(self, x, t):
        """Backpropagation gradients of ``loss(x, t)`` (weight decay included)."""
        return self._backprop_gradient(x, t)

    def _backprop_gradient(self, x, t):
        return _fused_gradient(self.params, self._weight_keys(), self.activation,
                               self.weight_decay_lambda, x, t)


# --- fused backprop (issue #4) and ch06 MultiLayerNetExtend ---------------------------------


def _fused_gradient(params, weights, act, lam, x, t, masks=None):
    """Backprop through affine -> act [-> dropout] -> ... -> affine -> softmax + CE in one
    kernel call.

    lam None: no weight-decay term (TwoLayerNet); a number (even 0): ``dW + lam * W``,
    as MultiLayerNet adds it. Returns a dict keyed like ``weights``.
    """
    dWs, dbs = _layers.mlp_gradient([params[wk] for wk, _ in weights],
                                    [params[bk] for _, bk in weights], act, x, t, lam,
                                    dropout_masks=masks)
    grads = {}
    for (wk, bk), dW, db in zip(weights, dWs, dbs):
        grads[wk] = dW
        grads[bk] = db
    return grads


class MultiLayerNetExtend:
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

    ``gradient`` is one fused kernel call, dropout and batchnorm included (dropout masks
    are drawn with ``np.random.rand`` in the book's order, so a seeded run matches it;
    the batchnorm layers' running statistics are updated as the book's forward does).
    """

    def __init__(self, input_size, hidden_size_list, output_size,
                 activation="relu", weight_init_std="relu", weight_decay_lambda=0,
                 use_dropout=False, dropout_ration=0.5, use_batchnorm=False):
        if activation not in _ACTIVATIONS:
            raise ValueError("MultiLayerNetExtend: activation must be 'relu' or 'sigmoid', got %r"
                             % (activation,))
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
        self.layers = OrderedDict()
        for idx in range(1, self.hidden_layer_num + 1):
            self.layers["Affine" + str(idx)] = _layers.Affine(self.params["W" + str(idx)],
                                                              self.params["b" + str(idx)])
            if self.use_batchnorm:
                self.params["gamma" + str(idx)] = np.ones(self.hidden_size_list[idx - 1])
                self.params["beta" + str(idx)] = np.zeros(self.hidden_size_list[idx - 1])
                self.layers["BatchNorm" + str(idx)] = _layers.BatchNormalization(
                    self.params["gamma" + str(idx)], self.params["beta" + str(idx)])
            self.layers["Activation_function" + str(idx)] = activation_layer[activation]()
            if self.use_dropout:
                self.layers["Dropout" + str(idx)] = _layers.Dropout(dropout_ration)
        idx = self.hidden_layer_num + 1
        self.layers["Affine" + str(idx)] = _layers.Affine(self.params["W" + str(idx)],
                                                          self.params["b" + str(idx)])
        self.last_layer = _layers.SoftmaxWithLoss()

    def __repr__(self):
        sizes = [self.input_size] + list(self.hidden_size_list) + [self.output_size]
        return ("MultiLayerNetExtend(%s, activation=%r, weight_decay_lambda=%r, use_dropout=%r, "
                "use_batchnorm=%r)" % ("-".join(map(str, sizes)), self.activation,
                                       self.weight_decay_lambda, self.use_dropout,
                                       self.use_batchnorm))

    def _weight_keys(self):
        return tuple(("W%d" % i, "b%d" % i) for i in range(1, self.hidden_layer_num + 2))

    def _sync_layers(self):
        # the book's layers hold references to the params arrays; follow a user who
        # rebinds net.params['W1'] = new_array, as the fused path does
        for idx in range(1, self.hidden_layer_num + 2):
            aff = self.layers["Affine" + str(idx)]
            aff.W = self.params["W" + str(idx)]
            aff.b = self.params["b" + str(idx)]
            if self.use_batchnorm and idx <= self.hidden_layer_num:
                bn = self.layers["BatchNorm" + str(idx)]
                bn.gamma = self.params["gamma" + str(idx)]
                bn.beta = self.params["beta" + str(idx)]

    def predict(self, x, train_flg=False):
        """Output scores, shape (batch, output_size); ``train_flg`` drives Dropout/BatchNorm."""
        self._sync_layers()
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

    def numerical_gradient(self, X, T, n_threads=None):
        """Central-difference gradients (h = 1e-4) of ``loss(X, T, train_flg=True)``.

        Without dropout and batchnorm this is the fused engine (MultiLayerNet's); with
        them, the book's loop over every parameter (the loss is random with dropout).
        """
        if not self.use_dropout and not self.use_batchnorm:
            return _engine_numerical_gradient(self, self._weight_keys(), self.activation,
                                              self.weight_decay_lambda, X, T, n_threads,
                                              "MultiLayerNetExtend.numerical_gradient")
        loss_W = lambda W: self.loss(X, T, train_flg=True)  # noqa: E731 - the book's idiom
        grads = {}
        for idx in range(1, self.hidden_layer_num + 2):
            grads["W" + str(idx)] = _generic_numerical_gradient(loss_W, self.params["W" + str(idx)])
            grads["b" + str(idx)] = _generic_numerical_gradient(loss_W, self.params["b" + str(idx)])
            if self.use_batchnorm and idx != self.hidden_layer_num + 1:
                grads["gamma" + str(idx)] = _generic_numerical_gradient(loss_W, self.params["gamma" + str(idx)])
                grads["beta" + str(idx)] = _generic_numerical_gradient(loss_W, self.params["beta" + str(idx)])
        return grads

    def gradient(self, x, t):
        """Backpropagation gradients of ``loss(x, t, train_flg=True)`` (weight decay included)."""
        masks = None
        if self.use_dropout:
            # the book's Dropout.forward draws, layer after layer, during the forward
            rows = np.shape(x)[0] if np.ndim(x) > 1 else 1
            masks = [np.random.rand(rows, n) > self.layers["Dropout%d" % i].dropout_ratio
                     for i, n in enumerate(self.hidden_size_list, 1)]
        if not self.use_batchnorm:
            return _fused_gradient(self.params, self._weight_keys(), self.activation,
                                   self.weight_decay_lambda, x, t, masks)
        return self._fused_batchnorm_gradient(x, t, masks)

    def _fused_batchnorm_gradient(self, x, t, masks):
        # one kernel call; then the running statistics as BatchNormalization's forward
        # (train_flg=True) updates them, and the grads in the book's key order
        keys = self._weight_keys()
        hidden = range(1, self.hidden_layer_num + 1)
        dWs, dbs, bn = _layers.mlp_gradient(
            [self.params[wk] for wk, _ in keys], [self.params[bk] for _, bk in keys],
            self.activation, x, t, self.weight_decay_lambda, dropout_masks=masks,
            batchnorm=[(self.params["gamma%d" % i], self.params["beta%d" % i]) for i in hidden])
        for i in hidden:
            layer = self.layers["BatchNorm%d" % i]
            mu, var = bn[i - 1]["mu"], bn[i - 1]["var"]
            if layer.running_mean is None:
                layer.running_mean = np.zeros(mu.shape[0])
                layer.running_var = np.zeros(mu.shape[0])
            layer.running_mean = layer.momentum * layer.running_mean + (1 - layer.momentum) * mu
            layer.running_var = layer.momentum * layer.running_var + (1 - layer.momentum) * var
        grads = {}
        for idx, (wk, bk) in enumerate(keys, 1):
            grads[wk] = dWs[idx - 1]
            grads[bk] = dbs[idx - 1]
            if idx != self.hidden_layer_num + 1:
                grads["gamma%d" % idx] = bn[idx - 1]["dgamma"]
                grads["beta%d" % idx] = bn[idx - 1]["dbeta"]
        return grads

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
