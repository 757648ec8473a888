"""The book's ``common/optimizer.py``: ``update(params, grads)`` in place, one kernel call.

``SGD``, ``Momentum``, ``Nesterov``, ``AdaGrad``, ``RMSprop`` and ``Adam`` with the book's
arguments, defaults, formulas and ``eps = 1e-7``. State (``v``, ``h``, ``m``) is created on
the first ``update``, one zero array per key of ``params``, in a dict keyed like ``params``.

Each ``update`` runs the whole step for every parameter in one kernel call
(``fastnn._kernels._optimizers``, GIL released, parallel over chunks of the parameters for
big nets). Element-wise and in the parameter's dtype, operation for operation as the
book's NumPy: float32 parameters get float32 arithmetic (Adam's ``lr_t * m`` in float64,
as NumPy does), and the results are the book's bits.

What the book's loop does, fastnn does too:

* parameters may be Python numbers (ch06 ``optimizer_compare_naive.py``:
  ``params = {'x': -7.0, 'y': 2.0}``): the dict entry is rebound to the new value;
* gradients broadcast to their parameter's shape as NumPy broadcasts them;
* parameters that share memory (tied weights: two keys naming one array, or overlapping
  views) are updated one after the other in the dict's order, each seeing the previous
  updates, as the book's ``for key in params`` loop does;
* the state is kept when a parameter changes dtype (cast to the new dtype); a new key, or
  a parameter whose shape no longer matches its state, raises as the book's code does
  (KeyError / ValueError) instead of silently starting a fresh state.

``lr`` may be a number or a schedule (``fastnn.schedules.ExponentialDecay``,
``PiecewiseConstantDecay``, any callable of the step): it is called with the number of
updates done so far (0 for the first), as a TensorFlow optimizer does.
"""
import numbers

import numpy as np

from ._kernels import _optimizers as _k
from ._threads import resolve_n_threads

# `import *` also gives `np`, as the book's common/optimizer.py does
__all__ = ["np", "SGD", "Momentum", "Nesterov", "AdaGrad", "RMSprop", "Adam"]

_F32 = np.dtype(np.float32)
_F64 = np.dtype(np.float64)


# ---- the shared boundary of both books' optimizers --------------------------------------------

def _check_param(p, who, name):
    """A float32/float64 ndarray parameter that can be written in place, or a TypeError /
    ValueError naming it."""
    dt = p.dtype
    if dt is not _F64 and dt is not _F32 and not (dt.kind == "f" and dt.itemsize in (4, 8)):
        raise TypeError("%s: %s has dtype %s; parameters must be float32 or float64 arrays "
                        "(or Python numbers)" % (who, name, dt))
    if not p.flags.writeable:
        raise ValueError("%s: %s (shape %s) is read-only" % (who, name, p.shape))


def _kernel_grad(g, p, order, who, gname, pname):
    """The gradient as a flat-contiguous array of p's dtype and memory order, broadcast to
    p's shape as NumPy would broadcast it."""
    if type(g) is np.ndarray and g.dtype is p.dtype and g.shape == p.shape and g.flags.aligned \
            and (g.flags.c_contiguous if order == "C" else g.flags.f_contiguous):
        return g
    ga = np.asarray(g)
    if ga.dtype.kind not in "biuf":
        raise TypeError("%s: %s has dtype %s; gradients must be real numbers (the book's "
                        "in-place update cannot take them either)" % (who, gname, ga.dtype))
    if ga.shape != p.shape:
        try:
            ga = np.broadcast_to(ga, p.shape)
        except ValueError:
            raise ValueError("%s: %s has shape %s but %s has shape %s" % (
                who, gname, ga.shape, pname, p.shape)) from None
    out = np.asarray(ga, dtype=p.dtype, order=order)
    if not out.flags.aligned or not (out.flags.c_contiguous if order == "C" else out.flags.f_contiguous):
        out = np.array(out, dtype=p.dtype, order=order)
    return out


def _kernel_state(s, p, order, rebinds, who, sname, pname):
    """The state array to update for parameter p: the stored one when it fits, else a copy
    cast to p's dtype and memory order (the book keeps the values when a parameter changes
    dtype), broadcast to p's shape when the book's rule rebinds the state (then NumPy would
    broadcast it); any other shape mismatch raises as the book's in-place update does."""
    if type(s) is np.ndarray and s.dtype is p.dtype and s.shape == p.shape and s.flags.writeable \
            and s.flags.aligned and (s.flags.c_contiguous if order == "C" else s.flags.f_contiguous):
        return s, False
    sa = np.asarray(s)
    if sa.shape != p.shape:
        try:
            if not rebinds:
                raise ValueError
            sa = np.broadcast_to(sa, p.shape)
        except ValueError:
            raise ValueError("%s: the state %s has shape %s but %s now has shape %s (the book's "
                             "update raises here too)" % (who, sname, sa.shape, pname, p.shape)) from None
    return np.array(sa, dtype=p.dtype, order=order), True


def _run_updates(hp, items, n_threads):
    """Run the kernel over items [(p, g, s1, s2)] of flat-contiguous arrays, one call per
    dtype."""
    groups = {}
    for it in items:
        grp = groups.get(it[0].dtype)
        if grp is None:
            grp = groups[it[0].dtype] = ([], [], [], [])
        for j in range(4):
            grp[j].append(it[j])
    for ps, gs, s1, s2 in groups.values():
        _k.update(hp, ps, gs, None if s1[0] is None else s1, None if s2[0] is None else s2, n_threads)


def _run_serial(hp, items, grads_of):
    """The book's loop, for parameters that share memory: one parameter after the other,
    each read from memory as the previous updates left it; its gradient is read (and
    copied, as the book's `lr * grads[key]` makes a temporary) at its turn."""
    for i, (pk, _, s1, s2) in enumerate(items):
        p, g, order = grads_of[i]
        if p is not None and pk is not p:
            pk[...] = p                       # a strided parameter's copy, refreshed
        gk = np.array(_kernel_grad(g, pk, order, "update", "gradient", "parameter"), order=order)
        _k.update(hp, [pk], [gk], None if s1 is None else [s1], None if s2 is None else [s2], 1)
        if p is not None and pk is not p:
            p[...] = pk


def _order_of(p):
    """(memory order, whether the kernel updates p itself); a strided, unaligned or
    byte-swapped parameter is updated through a contiguous native copy (see _working_copy)
    and written back."""
    f = p.flags
    native = p.dtype is _F64 or p.dtype is _F32 or p.dtype.isnative
    if f.c_contiguous and f.aligned and native:
        return "C", True
    if f.f_contiguous and f.aligned and native:
        return "F", True
    return "C", False


def _working_copy(p):
    return np.array(p, dtype=p.dtype.newbyteorder("="), order="C")


# ---- the book's optimizers ----------------------------------------------------------------------

class _Optimizer:
    """Shared machinery: validation, lazy state, one kernel call per dtype."""

    _rule = None
    _state_names = ()
    _rebinds = False     # the book's rule assigns its state (v = ...) rather than updating it in place
    _args = ()

    def _lr_value(self):
        lr = self.lr
        step = getattr(self, "_step", 0)
        return float(lr(step)) if callable(lr) else float(lr)

    def _run(self, params, grads, hp):
        """Validate everything, create the state lazily, then one kernel call per dtype."""
        who = "%s.update" % type(self).__name__
        if not hasattr(params, "items") or not hasattr(params, "__setitem__"):
            raise TypeError("%s: params must be a dict of arrays, got %s" % (who, type(params).__name__))
        keys = list(params.keys())
        states = []
        for name in self._state_names:
            st = getattr(self, name)
            if st is None:  # lazily created, keyed like params (np.zeros_like, as the book)
                st = {k: np.zeros_like(_as_param_array(params[k], who, k)) for k in keys}
                setattr(self, name, st)
            states.append(st)
        items, originals, write_back, rebind, sources = [], [], [], [], []
        for key in keys:
            p = params[key]
            pname = "params[%r]" % (key,)
            if type(p) is np.ndarray or isinstance(p, np.ndarray):
                _check_param(p, who, pname)
                order, direct = _order_of(p)
                pk = p if direct else _working_copy(p)
                if not direct:
                    write_back.append((p, pk))
                originals.append(p)
                sources.append((p, None, order))
            else:
                pk = _as_param_array(p, who, key).copy()
                order = "C"
                rebind.append((key, pk))
                sources.append((None, None, order))
            try:
                g = grads[key]
            except (KeyError, IndexError, TypeError):
                raise KeyError("%s: grads has no entry %r (params has keys %s)"
                               % (who, key, keys)) from None
            if type(g) is np.ndarray:
                originals.append(g)
            gk = _kernel_grad(g, pk, order, who, "grads[%r]" % (key,), pname)
            sources[-1] = (sources[-1][0], g, order)
            ss = [None, None]
            for j, (name, st) in enumerate(zip(self._state_names, states)):
                try:
                    s = st[key]
                except KeyError:
                    raise KeyError("%s: params has a new key %r; the optimizer's state %s was "
                                   "created at the first update for the keys %s (the book's "
                                   "update raises KeyError too)" % (who, key, name, list(st))) from None
                sk, replaced = _kernel_state(s, pk, order, self._rebinds, who,
                                             "%s[%r]" % (name, key), pname)
                if replaced:
                    st[key] = sk
                ss[j] = sk
            items.append((pk, gk, ss[0], ss[1]))
        hp.lr = self._lr_value()
        self._before_step(hp)
        if len(originals) > 1 and _k.overlapping(originals):
            _run_serial(hp, items, sources)     # tied weights, overlapping views
        else:
            _run_updates(hp, items, resolve_n_threads(None))
            for p, pk in write_back:
                p[...] = pk
        for key, pk in rebind:
            # the book's `params[key] -= ...` rebinds a number: SGD gives a Python float,
            # the rules that go through a zeros_like state give a NumPy float64
            params[key] = float(pk) if self._state_names == () else np.float64(pk)
        self._step = getattr(self, "_step", 0) + 1

    def _before_step(self, hp):
        pass

    def __repr__(self):
        args = ", ".join("%s=%r" % (k, getattr(self, k)) for k in self._args)
        return "%s(%s)" % (type(self).__name__, args)


def _as_param_array(p, who, key):
    """A parameter as an array: arrays as they are, Python / NumPy real numbers as 0-d
    float64 arrays (np.zeros_like of a number is a 0-d float64 array too)."""
    if isinstance(p, np.ndarray):
        return p
    if isinstance(p, (numbers.Real, np.number)) and not isinstance(p, (complex, np.complexfloating)):
        return np.array(float(p))
    raise TypeError("%s: params[%r] must be a NumPy array (updated in place) or a number, got %s"
                    % (who, key, type(p).__name__))


class SGD(_Optimizer):
    """Stochastic gradient descent: ``params[key] -= lr * grads[key]``."""

    _args = ("lr",)

    def __init__(self, lr=0.01):
        self.lr = lr
        self._hp = _k.Hyperparameters(_k.SGD)

    def update(self, params, grads):
        if type(params) is dict and type(grads) is dict:
            # the training loop's call (plain arrays, nothing shared): checked in C, then
            # the same kernel call _run makes
            arrays = _k.plain_update_arrays(params, grads)
            if arrays is not None:
                hp = self._hp
                hp.lr = self._lr_value()
                _k.update(hp, arrays[0], arrays[1], None, None, resolve_n_threads(None))
                self._step = getattr(self, "_step", 0) + 1
                return
        self._run(params, grads, self._hp)


class Momentum(_Optimizer):
    """Momentum SGD: ``v = momentum * v - lr * grad``; ``param += v``."""

    _state_names = ("v",)
    _rebinds = True
    _args = ("lr", "momentum")

    def __init__(self, lr=0.01, momentum=0.9):
        self.lr = lr
        self.momentum = momentum
        self.v = None
        self._hp = _k.Hyperparameters(_k.MOMENTUM)

    def update(self, params, grads):
        self._hp.momentum = float(self.momentum)
        self._run(params, grads, self._hp)


class Nesterov(_Optimizer):
    """Nesterov's accelerated gradient (http://arxiv.org/abs/1212.0901), the book's form:
    ``v *= momentum; v -= lr * g; p += momentum**2 * v; p -= (1 + momentum) * lr * g``."""

    _state_names = ("v",)
    _args = ("lr", "momentum")

    def __init__(self, lr=0.01, momentum=0.9):
        self.lr = lr
        self.momentum = momentum
        self.v = None
        self._hp = _k.Hyperparameters(_k.NESTEROV)

    def update(self, params, grads):
        self._hp.momentum = float(self.momentum)
        self._run(params, grads, self._hp)


class AdaGrad(_Optimizer):
    """AdaGrad: ``h += g * g``; ``param -= lr * g / (sqrt(h) + 1e-7)``."""

    _state_names = ("h",)
    _args = ("lr",)

    def __init__(self, lr=0.01):
        self.lr = lr
        self.h = None
        self._hp = _k.Hyperparameters(_k.ADAGRAD)

    def update(self, params, grads):
        self._run(params, grads, self._hp)


class RMSprop(_Optimizer):
    """RMSprop: ``h = decay_rate * h + (1 - decay_rate) * g * g``; AdaGrad's step."""

    _state_names = ("h",)
    _args = ("lr", "decay_rate")

    def __init__(self, lr=0.01, decay_rate=0.99):
        self.lr = lr
        self.decay_rate = decay_rate
        self.h = None
        self._hp = _k.Hyperparameters(_k.RMSPROP)

    def update(self, params, grads):
        self._hp.rho = float(self.decay_rate)
        self._run(params, grads, self._hp)


class Adam(_Optimizer):
    """Adam (http://arxiv.org/abs/1412.6980v8), the book's bias-corrected form.

    ``iter`` counts updates; ``lr_t = lr * sqrt(1 - beta2**iter) / (1 - beta1**iter)``;
    ``m += (1 - beta1) * (g - m)``; ``v += (1 - beta2) * (g**2 - v)``;
    ``param -= lr_t * m / (sqrt(v) + 1e-7)``.
    """

    _state_names = ("m", "v")
    _args = ("lr", "beta1", "beta2")

    def __init__(self, lr=0.001, beta1=0.9, beta2=0.999):
        self.lr = lr
        self.beta1 = beta1
        self.beta2 = beta2
        self.iter = 0
        self.m = None
        self.v = None
        self._hp = _k.Hyperparameters(_k.ADAM)

    def update(self, params, grads):
        hp = self._hp
        hp.beta1 = float(self.beta1)
        hp.beta2 = float(self.beta2)
        self._run(params, grads, hp)
        self.iter += 1

    def _before_step(self, hp):
        it = self.iter + 1
        # lr_t = lr * sqrt(1 - beta2^t) / (1 - beta1^t), a float64 scalar as in the book
        hp.step_size = float(hp.lr * np.sqrt(1.0 - self.beta2 ** it) / (1.0 - self.beta1 ** it))
