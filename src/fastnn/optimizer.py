"""The book's ``common/optimizer.py``: ``update(params, grads)`` in place, one kernel call.

``SGD``, ``Momentum``, ``Nesterov``, ``AdaGrad``, ``RMSprop`` and ``Adam`` with the book's
arguments, defaults, formulas and ``eps = 1e-7``. State (``v``, ``h``, ``m``) is created on
the first ``update``, one zero array per key of ``params``, in a dict keyed like ``params``.

Each ``update`` runs the whole step for every parameter in one kernel call (GIL released,
parallel over chunks of the parameters for big nets). Element-wise and in the
parameter's dtype, operation for operation as the book's NumPy: float32 parameters get
float32 arithmetic (Adam's ``lr_t * m`` in float64, as NumPy does).

``lr`` may be a number or a schedule (``fastnn.schedules.ExponentialDecay``,
``PiecewiseConstantDecay``, any callable of the step): it is called with the number of
updates done so far (0 for the first), as a TensorFlow optimizer does.
"""
import numpy as np

from ._kernels import _optimizers
from ._threads import resolve_n_threads

__all__ = ["SGD", "Momentum", "Nesterov", "AdaGrad", "RMSprop", "Adam"]

_F32 = np.dtype(np.float32)
_F64 = np.dtype(np.float64)
_FLOATS = (_F32, _F64)


class _Optimizer:
    """Shared machinery: validation, lazy state, one kernel call per dtype."""

    _kind = None
    _state_names = ()

    def _lr_value(self):
        lr = self.lr
        step = getattr(self, "_step", 0)
        return float(lr(step)) if callable(lr) else float(lr)

    def _run(self, params, grads, consts):
        """Validate, create state lazily, group by dtype, call the kernel once per dtype.

        consts: the kernel's (c0, c1, c2, c3). Arrays go to the kernel as they are when
        contiguous (C or Fortran order: params, grads and state share the memory order);
        a strided parameter is updated through a contiguous copy written back afterwards.
        """
        if not hasattr(params, "items"):
            raise TypeError("%s.update: params must be a dict of arrays, got %s"
                            % (type(self).__name__, type(params).__name__))
        states = []
        for name in self._state_names:
            st = getattr(self, name)
            if st is None:  # lazily created, keyed like params
                st = {}
                setattr(self, name, st)
            states.append(st)
        groups = {}
        write_back = []
        for key, p in params.items():
            if type(p) is not np.ndarray and not isinstance(p, np.ndarray):
                raise TypeError("%s.update: params[%r] must be a NumPy array (updated in place), "
                                "got %s" % (type(self).__name__, key, type(p).__name__))
            dt = p.dtype
            if dt is not _F64 and dt is not _F32 and dt not in _FLOATS:
                raise TypeError("%s.update: params[%r] has dtype %s; parameters must be float32 "
                                "or float64 arrays" % (type(self).__name__, key, dt))
            flags = p.flags
            if not flags.writeable:
                raise ValueError("%s.update: params[%r] (shape %s) is read-only"
                                 % (type(self).__name__, key, p.shape))
            try:
                g = grads[key]
            except (KeyError, IndexError, TypeError):
                raise KeyError("%s.update: grads has no entry %r (params has keys %s)"
                               % (type(self).__name__, key, list(params.keys()))) from None
            shape = p.shape
            gshape = g.shape if type(g) is np.ndarray else np.shape(g)
            if gshape != shape:
                raise ValueError("%s.update: grads[%r] has shape %s but params[%r] has shape %s"
                                 % (type(self).__name__, key, gshape, key, shape))
            if flags.c_contiguous:
                order, pk = "C", p
            elif flags.f_contiguous:
                order, pk = "F", p
            else:  # a strided view: update a contiguous copy, then copy it back
                order, pk = "C", np.ascontiguousarray(p)
                write_back.append((p, pk))
            if type(g) is np.ndarray and g.dtype is dt and (
                    g.flags.c_contiguous if order == "C" else g.flags.f_contiguous):
                gk = g
            else:
                gk = np.asarray(g, dtype=dt, order=order)
            grp = groups.get(dt)
            if grp is None:
                grp = groups[dt] = ([], [], [], [])
            grp[0].append(pk)
            grp[1].append(gk)
            for j, st in enumerate(states):
                s = st.get(key)
                if s is None or s.shape != shape or s.dtype is not dt:
                    s = st[key] = np.zeros(shape, dtype=dt, order=order)
                elif not (s.flags.c_contiguous if order == "C" else s.flags.f_contiguous):
                    s = st[key] = np.array(s, order=order)  # the user put a strided array there
                grp[2 + j].append(s)
        nt = resolve_n_threads(None)
        n_state = len(states)
        for dt, (ps, gs, s1, s2) in groups.items():
            _optimizers.update(self._kind, ps, gs, s1 if n_state >= 1 else None,
                          s2 if n_state >= 2 else None, *consts, dt is _F64, nt)
        for p, pk in write_back:
            p[...] = pk
        self._step = getattr(self, "_step", 0) + 1

    def __repr__(self):
        args = ", ".join("%s=%r" % (k, getattr(self, k)) for k in self._args)
        return "%s(%s)" % (type(self).__name__, args)


class SGD(_Optimizer):
    """Stochastic gradient descent: ``params[key] -= lr * grads[key]``."""

    _kind = _optimizers.SGD_
    _args = ("lr",)

    def __init__(self, lr=0.01):
        self.lr = lr

    def update(self, params, grads):
        self._run(params, grads, (self._lr_value(), 0.0, 0.0, 0.0))


class Momentum(_Optimizer):
    """Momentum SGD: ``v = momentum * v - lr * grad``; ``param += v``."""

    _kind = _optimizers.MOMENTUM
    _state_names = ("v",)
    _args = ("lr", "momentum")

    def __init__(self, lr=0.01, momentum=0.9):
        self.lr = lr
        self.momentum = momentum
        self.v = None

    def update(self, params, grads):
        self._run(params, grads, (self._lr_value(), float(self.momentum), 0.0, 0.0))


class Nesterov(_Optimizer):
    """Nesterov's accelerated gradient (http://arxiv.org/abs/1212.0901), the book's form."""

    _kind = _optimizers.NESTEROV
    _state_names = ("v",)
    _args = ("lr", "momentum")

    def __init__(self, lr=0.01, momentum=0.9):
        self.lr = lr
        self.momentum = momentum
        self.v = None

    def update(self, params, grads):
        lr, mom = self._lr_value(), float(self.momentum)
        self._run(params, grads, (lr, mom, mom * mom, (1 + mom) * lr))


class AdaGrad(_Optimizer):
    """AdaGrad: ``h += g * g``; ``param -= lr * g / (sqrt(h) + 1e-7)``."""

    _kind = _optimizers.ADAGRAD
    _state_names = ("h",)
    _args = ("lr",)

    def __init__(self, lr=0.01):
        self.lr = lr
        self.h = None

    def update(self, params, grads):
        self._run(params, grads, (self._lr_value(), 0.0, 0.0, 0.0))


class RMSprop(_Optimizer):
    """RMSprop: ``h = decay_rate * h + (1 - decay_rate) * g * g``; AdaGrad's step."""

    _kind = _optimizers.RMSPROP
    _state_names = ("h",)
    _args = ("lr", "decay_rate")

    def __init__(self, lr=0.01, decay_rate=0.99):
        self.lr = lr
        self.decay_rate = decay_rate
        self.h = None

    def update(self, params, grads):
        dr = float(self.decay_rate)
        self._run(params, grads, (self._lr_value(), dr, 1 - dr, 0.0))


class Adam(_Optimizer):
    """Adam (http://arxiv.org/abs/1412.6980v8), the book's bias-corrected form.

    ``iter`` counts updates; ``lr_t = lr * sqrt(1 - beta2**iter) / (1 - beta1**iter)``;
    ``m += (1 - beta1) * (g - m)``; ``v += (1 - beta2) * (g**2 - v)``;
    ``param -= lr_t * m / (sqrt(v) + 1e-7)``.
    """

    _kind = _optimizers.ADAM
    _state_names = ("m", "v")
    _args = ("lr", "beta1", "beta2")

    def __init__(self, lr=0.001, beta1=0.9, beta2=0.999):
        self.lr = lr
        self.beta1 = beta1
        self.beta2 = beta2
        self.iter = 0
        self.m = None
        self.v = None

    def update(self, params, grads):
        lr = self._lr_value()
        it = self.iter + 1
        # lr_t = lr * sqrt(1 - beta2^t) / (1 - beta1^t), a float64 scalar as in the book
        lr_t = lr * np.sqrt(1.0 - self.beta2 ** it) / (1.0 - self.beta1 ** it)
        self._run(params, grads, (float(lr_t), 1 - float(self.beta1), 1 - float(self.beta2), 0.0))
        self.iter = it
