"""The net-level engine: a net's layer list -> one executor call (backprop) or one
finite-difference engine call, validated and cast once at this boundary.

A net describes itself as a tuple of layer specs (``spec.affine("W1", "b1")``,
``spec.sigmoid()``, ``spec.batchnorm("gamma1", "beta1")``, ``spec.dropout()``,
``spec.softmax_ce()``); ``gradient`` and ``numerical_gradient`` read the params dict
afresh on every call (so ``net.params['W1'] -= ...`` and ``net.params['W1'] = new`` both
take effect), check shapes and dtypes, and run the whole pass in C with the GIL released
(``fastnn._kernels._executor`` / ``_numgrad``). Executors (the laid-out buffers of one net
structure for one batch size) are kept per Python thread, so a training loop allocates
only the gradients it returns.
"""
import threading
import warnings
from collections import OrderedDict

import numpy as np

from ._kernels import _executor, _numgrad
from ._threads import resolve_n_threads
from ._validate import _F32, _F64, as_kernel_array, bad_labels, compute_dtypes, finish, targets

__all__ = ["LayerSpec", "affine", "relu", "sigmoid", "dropout", "batchnorm", "softmax_ce",
           "convolution", "pooling", "mlp_spec", "gradient", "numerical_gradient",
           "mlp_gradient", "scores"]

K = _executor.LayerKind
_KIND_BY_NAME = {"affine": K.KIND_AFFINE, "relu": K.KIND_RELU, "sigmoid": K.KIND_SIGMOID,
                 "dropout": K.KIND_DROPOUT, "batchnorm": K.KIND_BATCHNORM,
                 "softmax_ce": K.KIND_SOFTMAX_CE, "convolution": K.KIND_CONVOLUTION,
                 "pooling": K.KIND_POOLING}
_CONV_KINDS = (K.KIND_CONVOLUTION, K.KIND_POOLING)
_MODE_GRADIENT = int(_executor.Mode.MODE_GRADIENT)
_MODE_FD = int(_executor.Mode.MODE_FD)
_WARN_EXP = 1
_WARN_SUBTRACT = 2

# the reference's `x[idx] = tmp_val - h` on float32 params rounds as NumPy does
_numgrad.set_nep50(type(np.float32(1) - 1e-4) is np.float32)
# Taylor mode on (tests switch it off to check the exact incremental path on its own)
_USE_SERIES = True
# Above this many input elements (M * n_x) the sparse first layer is not laid out: its
# scratch (about 3x the size of x) is not worth keeping for whole-dataset batches.
_SPARSE_MAX_ELEMS = 1 << 24


class LayerSpec:
    """One layer of a net: its kind, the keys of its params in ``net.params`` and its
    fixed arguments (a convolution's stride and pad, a pooling's window)."""

    __slots__ = ("kind", "keys", "args")

    def __init__(self, kind, keys=(), args=()):
        self.kind = int(kind)
        self.keys = tuple(keys)
        self.args = tuple(args)

    def __repr__(self):
        return "%s(%s)" % (K(self.kind).name[5:].lower(),
                           ", ".join([repr(k) for k in self.keys]
                                     + [repr(a) for a in self.args]))


def affine(W_key, b_key):
    return LayerSpec(K.KIND_AFFINE, (W_key, b_key))


def relu():
    return LayerSpec(K.KIND_RELU)


def sigmoid():
    return LayerSpec(K.KIND_SIGMOID)


def dropout():
    return LayerSpec(K.KIND_DROPOUT)


def batchnorm(gamma_key, beta_key):
    return LayerSpec(K.KIND_BATCHNORM, (gamma_key, beta_key))


def softmax_ce():
    return LayerSpec(K.KIND_SOFTMAX_CE)


def mlp_spec(weight_keys, activation, batchnorm_keys=None, use_dropout=False):
    """The books' MLPs: (Affine [-> BatchNorm] -> activation [-> Dropout]) per hidden
    layer, then Affine -> SoftmaxWithLoss.

    weight_keys : [(W key, b key)] per layer; batchnorm_keys: [(gamma key, beta key)] per
    hidden layer or None.
    """
    act = _activation_spec(activation)
    layers = []
    n = len(weight_keys)
    for i, (wk, bk) in enumerate(weight_keys):
        layers.append(affine(wk, bk))
        if i < n - 1:
            if batchnorm_keys is not None:
                layers.append(batchnorm(*batchnorm_keys[i]))
            layers.append(LayerSpec(act))
            if use_dropout:
                layers.append(dropout())
    layers.append(softmax_ce())
    return tuple(layers)


def _activation_spec(activation):
    kind = {"relu": K.KIND_RELU, "sigmoid": K.KIND_SIGMOID}.get(activation)
    if kind is None:
        kind = {"relu": K.KIND_RELU, "sigmoid": K.KIND_SIGMOID}.get(str(activation).lower())
        if kind is None:
            raise ValueError("activation must be 'relu' or 'sigmoid', got %r" % (activation,))
    return kind


# --- executors, one per net structure, batch size and thread ------------------------------

_local = threading.local()
_MAX_EXECUTORS = 8


def _last():
    # per thread: the executor each spec tuple used last (the fast path tries it first)
    last = getattr(_local, "last", None)
    if last is None:
        last = _local.last = {}
    return last


def _executor_for(kinds, widths, n_x, is_double, mode, M, sparse):
    """n_x: features per sample, or the per-sample shape (C, H, W) of a conv net."""
    cache = getattr(_local, "cache", None)
    if cache is None:
        cache = _local.cache = OrderedDict()
    key = (kinds, widths, n_x, is_double, mode, M, sparse)
    ex = cache.get(key)
    if ex is not None:
        cache.move_to_end(key)
        return ex
    ex = _executor.Executor(n_x if isinstance(n_x, tuple) else (n_x,), is_double, mode)
    for kind, w in zip(kinds, widths):
        if kind == K.KIND_AFFINE:
            ex.affine(w)
        elif kind == K.KIND_CONVOLUTION:
            ex.convolution(*w)
        elif kind == K.KIND_POOLING:
            ex.pooling(*w)
        else:
            getattr(ex, K(kind).name[5:].lower())()
    ex.plan(M, sparse)
    cache[key] = ex
    while len(cache) > _MAX_EXECUTORS:
        cache.popitem(last=False)
    return ex


def _warn(bits, stacklevel):
    """The RuntimeWarnings NumPy gives the reference's code at the same inputs, under the
    same np.errstate / np.seterr settings ('ignore', 'raise', else a warning)."""
    err = np.geterr()
    for bit, kind, msg in ((_WARN_EXP, "over", "overflow encountered in exp"),
                           (_WARN_SUBTRACT, "invalid", "invalid value encountered in subtract")):
        if not bits & bit or err[kind] == "ignore":
            continue
        if err[kind] == "raise":
            raise FloatingPointError(msg)
        warnings.warn(msg, RuntimeWarning, stacklevel=stacklevel + 1)


# --- validation -------------------------------------------------------------------------------

def _as_2d(x, func):
    """x as (M, n_x): a 1-D x is one sample, N-d x flattens per sample (C order)."""
    if type(x) is not np.ndarray:
        x = np.asarray(x)
    nd = x.ndim
    if nd == 2:
        return x
    if nd == 0:
        raise ValueError("%s: x must be 1-D (one sample) or have a batch axis, got a 0-d array"
                         % func)
    if nd == 1:
        return x.reshape(1, -1)
    return x.reshape(x.shape[0], -1)


def _check_net(specs, arrays, n_x, x_shape, func, in_shape=None):
    """Per layer the output width (a convolution's (filters, FH, FW, stride, pad), a
    pooling's (ph, pw, stride, pad)), checking every param's shape against its input.
    Returns (widths, C)."""
    widths = []
    n = n_x
    shape = in_shape if in_shape is not None else (n_x,)
    a = 0
    for s in specs:
        kind = s.kind
        if kind in _CONV_KINDS:
            w, shape = _check_conv_layer(s, arrays[a:a + 2], shape, x_shape, func)
            n = shape[0] * shape[1] * shape[2]
            widths.append(w)
            a += len(s.keys)
            continue
        if kind == K.KIND_AFFINE:
            W, b = arrays[a], arrays[a + 1]
            ws = W.shape
            if len(ws) != 2 or ws[0] != n:
                raise ValueError("%s: %s has shape %s, but its input has %d features (x has "
                                 "shape %s)" % (func, s.keys[0], ws, n, x_shape))
            n = ws[1]
            if b.size != n or b.ndim > 2:
                raise ValueError("%s: %s has shape %s, %s has shape %s: %s must have shape "
                                 "(%d,)" % (func, s.keys[1], b.shape, s.keys[0], ws, s.keys[1], n))
            a += 2
        elif kind == K.KIND_BATCHNORM:
            g, be = arrays[a], arrays[a + 1]
            if g.size != n or be.size != n:
                raise ValueError("%s: %s/%s have shapes %s/%s, the layer before has %d units"
                                 % (func, s.keys[0], s.keys[1], g.shape, be.shape, n))
            a += 2
        if kind == K.KIND_AFFINE:
            shape = (n,)
        widths.append(n)
    if n == 0:
        raise ValueError("%s: the output layer has no classes" % func)
    return tuple(widths), n


def _kinds(specs):
    return tuple(int(s.kind) for s in specs)


def _param_arrays(params, specs, func):
    out = []
    for s in specs:
        for k in s.keys:
            try:
                p = params[k]
            except KeyError:
                raise KeyError("%s: params has no %r (keys: %s)" % (func, k, sorted(params)))
            out.append(p if type(p) is np.ndarray else np.asarray(p))
    return out


# --- backprop ---------------------------------------------------------------------------------

def gradient(params, specs, x, t, weight_decay_lambda=None, n_threads=None, masks=None,
             func="gradient", batch_stats=False, stacklevel=3):
    """Backprop gradients of the net's loss at (x, t), in one executor call.

    Parameters
    ----------
    params : mapping key -> array (the net's params dict)
    specs : tuple of LayerSpec, ending with softmax_ce()
    x : (M, ...) input (1-D: one sample); t : labels (M,) or targets of the scores' shape
    weight_decay_lambda : None, or lam (even 0): dW += lam * W (MultiLayerNet)
    masks : per dropout layer, an (M, n) boolean keep-mask
    batch_stats : also return per batchnorm layer its batch (mean, var)

    Returns
    -------
    grads : dict key -> gradient (the param's shape; the promoted float dtype of x and
    the params), and, with ``batch_stats``, a list of (mean, var).
    """
    ex = _last().get(specs)
    if ex is not None and type(params) is dict:
        # a call like the last one: the executor checks it in C and runs
        got = ex.fast_gradient(params, x, t, weight_decay_lambda, resolve_n_threads(n_threads),
                               masks)
        if got is not None:
            grads, warn = got
            if warn:
                _warn(warn, stacklevel)
            if batch_stats:
                return grads, [ex.batch_stats(l) for l, s in enumerate(specs)
                               if s.kind == K.KIND_BATCHNORM]
            return grads
    arrays = _param_arrays(params, specs, func)
    x2, in_shape = _input(specs, x, func)
    M, n_x = x2.shape
    if M == 0:
        raise ValueError("%s: x has shape %s: the batch is empty" % (func, np.shape(x)))
    widths, C = _check_net(specs, arrays, n_x, np.shape(x), func, in_shape)
    dt = x2.dtype
    same = dt is _F64 or dt is _F32
    if same:
        for a in arrays:
            if a.dtype is not dt:
                same = False
                break
    if same:
        res = dt
    else:
        dt, res = compute_dtypes(x2.dtype, *{a.dtype for a in arrays})
    kind, tc = targets(t, M, C, _y_shape(x, M, C), func)
    if kind == "labels":
        labels, onehot = tc, None
    else:
        labels, onehot = None, as_kernel_array(tc, dt)
    xc = x2 if same and x2.flags.c_contiguous else as_kernel_array(x2, dt)
    pc = [a if same and a.flags.c_contiguous else as_kernel_array(a, dt) for a in arrays]
    for i, a in enumerate(pc):
        if a.ndim != 1 and a.ndim != 2:
            pc[i] = a.reshape(-1)
    grads = [np.empty(a.shape if a.ndim == 2 else (a.size,), dtype=dt) for a in pc]
    mask_arrays = []
    if masks is not None:
        n = n_x
        mi = 0
        for s, w in zip(specs, widths):
            if s.kind == K.KIND_DROPOUT:
                if mi >= len(masks):
                    raise ValueError("%s: %d dropout masks for more dropout layers" % (func, len(masks)))
                m = np.asarray(masks[mi])
                if m.shape != (M, w):
                    raise ValueError("%s: dropout mask %d has shape %s, expected %s"
                                     % (func, mi + 1, m.shape, (M, w)))
                mask_arrays.append(m.view(np.uint8) if m.dtype == np.bool_ and m.flags.c_contiguous
                                   else np.ascontiguousarray(m != 0, dtype=np.uint8))
                mi += 1
        if mi != len(masks):
            raise ValueError("%s: %d dropout masks for %d dropout layers" % (func, len(masks), mi))
    elif any(s.kind == K.KIND_DROPOUT for s in specs):
        raise ValueError("%s: the net has dropout layers: pass their masks" % func)
    kinds = _kinds(specs)
    sparse = M * n_x <= _SPARSE_MAX_ELEMS
    ex = _executor_for(kinds, widths, in_shape or n_x, dt is _F64, _MODE_GRADIENT, M, sparse)
    if dt is res:
        ex.expect([k for s in specs for k in s.keys], [a.shape for a in arrays])
        last = _last()
        if len(last) > 64:
            last.clear()
        last[specs] = ex
    decay = weight_decay_lambda is not None
    status, warn = ex.gradient(xc, labels, onehot, pc, grads, mask_arrays, decay,
                               float(weight_decay_lambda) if decay else 0.0,
                               resolve_n_threads(n_threads))
    if status:
        raise bad_labels(labels, C, func)
    if warn:
        _warn(warn, stacklevel)
    out = {}
    i = 0
    for s in specs:
        for k in s.keys:
            g = grads[i]
            if res is not dt:
                g = finish(g, res)
            if g.shape != arrays[i].shape:
                g = g.reshape(arrays[i].shape)
            out[k] = g
            i += 1
    if batch_stats:
        stats = [tuple(finish(a, res) for a in ex.batch_stats(l))
                 for l, s in enumerate(specs) if s.kind == K.KIND_BATCHNORM]
        return out, stats
    return out


def mlp_gradient(Ws, bs, activation, x, t, weight_decay_lambda=None, n_threads=None,
                 dropout_masks=None, batchnorm=None):
    """Backprop gradients of an MLP's mean softmax cross-entropy, in one executor call.

    The net is ``Affine -> [BatchNorm ->] activation [-> Dropout] -> ... -> Affine ->
    SoftmaxWithLoss`` (the books' ``TwoLayerNet`` / ``MultiLayerNet(Extend)``).

    Parameters
    ----------
    Ws : sequence of L arrays, ``Ws[l]`` of shape (n_l, n_{l+1})
    bs : sequence of L arrays, ``bs[l]`` of shape (n_{l+1},)
    activation : 'relu' or 'sigmoid' (hidden layers)
    x : array (M, n_0), a single sample (n_0,), or (M, ...) flattened to (M, n_0)
    t : M integer labels in [0, n_L), or one-hot targets with the scores' size
    weight_decay_lambda : float or None
        When given (even 0), ``weight_decay_lambda * W`` is added to every ``dW``
        (MultiLayerNet); None adds nothing (TwoLayerNet).
    n_threads : int, optional
        Threads (default ``fastnn.get_num_threads()``); results do not depend on it.
    dropout_masks : sequence of L-1 boolean arrays (M, n_{l+1}) or None, optional
        Keep-masks of a Dropout after each hidden activation.
    batchnorm : sequence of L-1 ``(gamma, beta)`` pairs or None, optional
        A BatchNormalization in training mode between each hidden affine and its
        activation.

    Returns
    -------
    dWs, dbs : lists of arrays shaped like ``Ws`` and ``bs``, in the promoted float dtype.
    bn : list (only when ``batchnorm`` is given) of dicts with ``'dgamma'``, ``'dbeta'``
        and the batch statistics ``'mu'``, ``'var'``.
    """
    act = _activation_spec(activation)
    L = len(Ws)
    if L == 0 or len(bs) != L:
        raise ValueError("mlp_gradient: need as many biases as weights (>= 1), got %d W and "
                         "%d b" % (L, len(bs)))
    params = {}
    for i in range(L):
        params["W%d" % (i + 1)] = Ws[i]
        params["b%d" % (i + 1)] = bs[i]
    bn_keys = None
    if batchnorm is not None:
        if len(batchnorm) != L - 1:
            raise ValueError("mlp_gradient: %d batchnorm entries for %d hidden layers"
                             % (len(batchnorm), L - 1))
        if any(p is None for p in batchnorm):
            raise ValueError("mlp_gradient: every hidden layer needs its (gamma, beta)")
        bn_keys = []
        for i, (g, be) in enumerate(batchnorm, 1):
            params["gamma%d" % i] = g
            params["beta%d" % i] = be
            bn_keys.append(("gamma%d" % i, "beta%d" % i))
    masks = None
    if dropout_masks is not None:
        if len(dropout_masks) != L - 1:
            raise ValueError("mlp_gradient: %d dropout masks for %d hidden layers"
                             % (len(dropout_masks), L - 1))
        x2 = _as_2d(x, "mlp_gradient")
        masks = [np.ones((x2.shape[0], np.shape(Ws[i])[1]), dtype=bool) if m is None else m
                 for i, m in enumerate(dropout_masks)]
    specs = mlp_spec([("W%d" % i, "b%d" % i) for i in range(1, L + 1)],
                     "relu" if act == K.KIND_RELU else "sigmoid", bn_keys, masks is not None)
    got = gradient(params, specs, x, t, weight_decay_lambda, n_threads, masks,
                   "mlp_gradient", batch_stats=bn_keys is not None)
    if bn_keys is not None:
        grads, stats = got
    else:
        grads = got
    dWs = [grads["W%d" % i] for i in range(1, L + 1)]
    dbs = [grads["b%d" % i] for i in range(1, L + 1)]
    if bn_keys is None:
        return dWs, dbs
    bn = [{"dgamma": grads["gamma%d" % i], "dbeta": grads["beta%d" % i],
           "mu": stats[i - 1][0], "var": stats[i - 1][1]} for i in range(1, L)]
    return dWs, dbs, bn


# --- finite differences ---------------------------------------------------------------------

def _y_shape(x, rows, n_classes):
    """The shape of the net's output for x, which t is read against (fastnn._validate.
    targets): a 1-D x is one sample with a 1-D output, as the book's predict and `loss`
    see it (with one class, a 1-D t is then one-hot, not labels)."""
    return (n_classes,) if np.ndim(x) == 1 else (rows, n_classes)


def _labels_for(t, rows, n_classes, func, y_shape=None):
    """Class labels (B,) intp from labels or one-hot t (one-hot: argmax, as the book)."""
    kind, tc = targets(t, rows, n_classes, y_shape or (rows, n_classes), func)
    if kind == "onehot":
        return np.ascontiguousarray(np.argmax(tc, axis=1), dtype=np.intp)
    if tc.size and (tc.min() < 0 or tc.max() >= n_classes):
        raise bad_labels(tc, n_classes, func)
    return tc


def numerical_gradient(params, specs, x, t, weight_decay_lambda=None, n_threads=None,
                       masks=None, func="numerical_gradient", stacklevel=3, batch_stats=False):
    """Central-difference gradients (h = 1e-4) of the net's loss for every param, by the
    finite-difference engine (see fastnn._kernels._numgrad).

    The params are perturbed at the reference's points (rounded in their dtype) but not
    written to; the loss is evaluated in double. Returns a dict key -> gradient (the
    param's shape and dtype), or None when a param has a dtype the engine does not
    perturb (not float32/float64): the caller then runs the book's loop. With
    ``batch_stats``, also the batch (mean, var) of every batchnorm layer at the
    unperturbed params (float64).
    """
    ex = _last().get((specs, _MODE_FD))
    if ex is not None and type(params) is dict and masks is None:
        # a call like the last one: checked in C
        got = _numgrad.fast_numgrad(ex, params, x, t, weight_decay_lambda,
                                    resolve_n_threads(n_threads), _USE_SERIES)
        if got is not None:
            grads, warn = got
            if warn:
                _warn(warn, stacklevel)
            if batch_stats:
                return grads, [ex.batch_stats(l) for l, s in enumerate(specs)
                               if s.kind == K.KIND_BATCHNORM]
            return grads
    arrays = []
    for s in specs:
        for k in s.keys:
            p = params[k]
            if not isinstance(p, np.ndarray):
                raise TypeError("%s: params[%r] must be a numpy array, got %s"
                                % (func, k, type(p).__name__))
            if p.dtype.kind != "f":
                raise TypeError("%s: params[%r] must be a floating-point array (it is "
                                "perturbed by h = 1e-4), got dtype %s" % (func, k, p.dtype))
            if not p.flags.writeable:
                raise ValueError("%s: params[%r] (shape %s) is read-only; the numerical "
                                 "gradient perturbs it in place in the book's code"
                                 % (func, k, p.shape))
            arrays.append(p)
    x2, in_shape = _input(specs, x, func)
    B, n_x = x2.shape
    widths, C = _check_net(specs, arrays, n_x, np.shape(x), func, in_shape)
    if B == 0:
        raise ValueError("%s: x has shape %s: the batch is empty" % (func, np.shape(x)))
    if x2.dtype.kind not in "biuf":
        raise TypeError("%s: x must be numeric, got dtype %s" % (func, x2.dtype))
    labels = _labels_for(t, B, C, func, _y_shape(x, B, C))
    if any(a.dtype != _F64 and a.dtype != _F32 for a in arrays):
        return None
    x64 = x2 if (x2.dtype is _F64 and x2.flags.c_contiguous) else np.ascontiguousarray(x2, dtype=_F64)
    p64 = []
    f32 = []
    for a in arrays:
        f32.append(a.dtype == _F32)
        v = a if a.ndim in (1, 2) else a.reshape(-1)
        p64.append(v if (v.dtype == _F64 and v.flags.c_contiguous) else np.ascontiguousarray(v, dtype=_F64))
    nt = resolve_n_threads(n_threads)
    grads = [np.empty(a.shape, dtype=_F64) for a in p64]
    mask_arrays = [np.ascontiguousarray(np.asarray(m) != 0, dtype=np.uint8) for m in (masks or ())]
    sparse = B * n_x <= _SPARSE_MAX_ELEMS
    ex = _executor_for(_kinds(specs), widths, in_shape or n_x, True, _MODE_FD, B, sparse)
    decay = weight_decay_lambda is not None
    lam = float(weight_decay_lambda) if decay else 0.0
    if not any(f32) and masks is None:
        ex.expect([k for s in specs for k in s.keys], [a.shape for a in arrays])
        last = _last()
        if len(last) > 64:
            last.clear()
        last[(specs, _MODE_FD)] = ex
    warn = _numgrad.numgrad(ex, x64, labels, p64, mask_arrays, grads, f32, decay, lam, nt,
                            _USE_SERIES)
    if warn < 0:
        raise MemoryError("%s: out of memory" % func)
    if warn:
        _warn(warn, stacklevel)
    out = {}
    i = 0
    for s in specs:
        for j, k in enumerate(s.keys):
            a = arrays[i]
            g = grads[i] if a.dtype == _F64 else grads[i].astype(a.dtype)
            out[k] = g if g.shape == a.shape else g.reshape(a.shape)
            i += 1
    if batch_stats:
        return out, [ex.batch_stats(l) for l, s in enumerate(specs)
                     if s.kind == K.KIND_BATCHNORM]
    return out


# --- conv nets: Convolution and Pooling layers (issue #10) -----------------------------------
# A conv net's x is (N, C, H, W) (the book's layers take nothing else); it goes to the
# executor as (N, C*H*W) rows with the per-sample shape (C, H, W), and an Affine after a
# Convolution or Pooling flattens its (C, OH, OW) input in C order, the book's
# x.reshape(N, -1).

def convolution(W_key, b_key, stride=1, pad=0):
    """The book's Convolution(W, b, stride, pad): W (FN, C, FH, FW), b (FN,)."""
    return LayerSpec(K.KIND_CONVOLUTION, (W_key, b_key), (int(stride), int(pad)))


def pooling(pool_h, pool_w, stride=1, pad=0):
    """The book's max Pooling(pool_h, pool_w, stride, pad)."""
    return LayerSpec(K.KIND_POOLING, (), (int(pool_h), int(pool_w), int(stride), int(pad)))


def _input(specs, x, func):
    """(x as (M, n_x) rows, the per-sample shape (C, H, W) for a conv net or None)."""
    if not specs or specs[0].kind not in _CONV_KINDS:
        return _as_2d(x, func), None
    if type(x) is not np.ndarray:
        x = np.asarray(x)
    if x.ndim != 4:
        raise ValueError("%s: x has shape %s; a conv net takes a batch of images (N, C, H, W)"
                         " (load_mnist(flatten=False) gives (N, 1, 28, 28))"
                         % (func, x.shape))
    shape = tuple(int(d) for d in x.shape[1:])
    return x.reshape(x.shape[0], shape[0] * shape[1] * shape[2]), shape


def _check_conv_layer(s, arrays, shape, x_shape, func):
    """(the executor's geometry tuple, the output shape) of a Convolution/Pooling spec on
    an input of per-sample shape `shape`; ValueError naming the shapes if they do not fit."""
    if len(shape) != 3:
        raise ValueError("%s: %s needs (C, H, W) images per sample, but its input has shape "
                         "%s per sample (x has shape %s)" % (func, s, shape, x_shape))
    C, H, Wd = shape
    if s.kind == K.KIND_CONVOLUTION:
        W, b = arrays
        stride, pad = s.args
        if W.ndim != 4 or W.shape[1] != C:
            raise ValueError("%s: %s has shape %s, but its input has shape %s per sample (x "
                             "has shape %s): W must be (FN, %d, FH, FW)"
                             % (func, s.keys[0], W.shape, shape, x_shape, C))
        FN, _, fh, fw = W.shape
        if b.size != FN or b.ndim > 2:
            raise ValueError("%s: %s has shape %s, %s has shape %s: %s must have shape (%d,)"
                             % (func, s.keys[1], b.shape, s.keys[0], W.shape, s.keys[1], FN))
        if FN == 0 or fh == 0 or fw == 0:
            raise ValueError("%s: %s has shape %s: no filters" % (func, s.keys[0], W.shape))
        geom = (FN, fh, fw, stride, pad)
        what, out_c = "filter", FN
    else:
        fh, fw, stride, pad = s.args
        geom = (fh, fw, stride, pad)
        what, out_c = "pooling window", C
    if stride < 1 or pad < 0 or fh < 1 or fw < 1:
        raise ValueError("%s: %s: stride must be >= 1, pad >= 0 and the %s at least 1x1"
                         % (func, s, what))
    if H + 2 * pad < fh or Wd + 2 * pad < fw:
        raise ValueError("%s: the %dx%d %s of %s does not fit its input %s padded by %d (x "
                         "has shape %s)" % (func, fh, fw, what, s, shape, pad, x_shape))
    out = (out_c, (H + 2 * pad - fh) // stride + 1, (Wd + 2 * pad - fw) // stride + 1)
    return geom, out


# scores() works through the rows in chunks of at most this many (the executor laid out for
# a training batch of this size is reused; a whole test set at once would need a workspace
# for all of it)
_SCORES_CHUNK = 100


def scores(params, specs, x, n_threads=None, masks=None, func="predict", stacklevel=3):
    """The net's output scores (the loss layer's input, (M, C)) at x: its forward pass in
    executor calls of up to 100 rows, in the promoted float dtype of x and the params."""
    arrays = _param_arrays(params, specs, func)
    x2, in_shape = _input(specs, x, func)
    M, n_x = x2.shape
    widths, C = _check_net(specs, arrays, n_x, np.shape(x), func, in_shape)
    if any(s.kind == K.KIND_DROPOUT for s in specs) and masks is None:
        raise ValueError("%s: the net has dropout layers: pass their masks" % func)
    dt, res = compute_dtypes(x2.dtype, *{a.dtype for a in arrays})
    pc = [as_kernel_array(a, dt) for a in arrays]
    pc = [a if a.ndim in (1, 2) else a.reshape(-1) for a in pc]
    nt = resolve_n_threads(n_threads)
    out = np.empty((M, C), dtype=dt)
    kinds = _kinds(specs)
    for r0 in range(0, M, _SCORES_CHUNK):
        r1 = min(M, r0 + _SCORES_CHUNK)
        xc = as_kernel_array(x2[r0:r1], dt)
        sparse = (r1 - r0) * n_x <= _SPARSE_MAX_ELEMS
        ex = _executor_for(kinds, widths, in_shape or n_x, dt is _F64, _MODE_GRADIENT,
                           r1 - r0, sparse)
        mc = [np.ascontiguousarray(np.asarray(m)[r0:r1] != 0, dtype=np.uint8)
              for m in (masks or ())]
        out[r0:r1], warn = ex.scores(xc, pc, mc, nt)
        if warn:
            _warn(warn, stacklevel)
    return finish(out, res)
