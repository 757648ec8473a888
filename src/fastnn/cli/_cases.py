"""The benchmark cases, defined once: ``fastnn bench`` times them on a user's machine and
``benchmarks/bench_cli.py`` runs the same ones under pytest-benchmark.

Each case builds its data (real MNIST pixels from the bundled sample, fixed seeds) and
gives a zero-argument callable for fastnn and one for the books' NumPy code
(``fastnn._reference_numpy``), computing the same thing. A ``slow`` case's reference takes
seconds per call (a numerical gradient: two full forward passes per parameter); its
``reference_time(budget)`` stops after ``budget`` seconds and extrapolates from the
parameters done, which is exact enough because every parameter costs the same there.
"""
import numpy as np

__all__ = ["Case", "cases"]


class Case:
    """One benchmark: ``make(impl)`` returns the callable to time, impl 'fastnn' or
    'reference'."""

    def __init__(self, name, shape, make, slow=False, numerical=None):
        self.name, self.shape, self.slow = name, shape, slow
        self._make, self._numerical = make, numerical

    @property
    def group(self):
        return "%s, %s" % (self.name, self.shape)

    def make(self, impl):
        if impl not in ("fastnn", "reference"):
            raise ValueError("impl must be 'fastnn' or 'reference', got %r" % (impl,))
        return self._make(impl)

    def reference_time(self, budget):
        """(seconds for one reference call, note): a slow case stops after ``budget``
        seconds and extrapolates."""
        from fastnn import _reference_numpy as R
        net, x, t = self._numerical()
        sec, done, total = R.time_numerical_step(net, x, t, budget_s=budget)
        if done == total:
            return sec, ""
        return sec, "extrapolated from {:,} of {:,} parameters".format(done, total)

    def __repr__(self):
        return "Case(%r)" % self.group


def _sample(n):
    from fastnn.datasets import load_mnist
    (x, t), _ = load_mnist(sample=True)
    return np.ascontiguousarray(x[:n], dtype=np.float64), t[:n].astype(np.intp)


def _twin(impl, cls_name, *args, **kw):
    """fastnn's or the reference's net, built from the same random draws."""
    from fastnn import _reference_numpy as R
    from fastnn import nets
    np.random.seed(0)
    return getattr(nets if impl == "fastnn" else R, cls_name)(*args, **kw)


def _numerical(sizes_batch):
    hidden, batch = sizes_batch

    def make(impl):
        net = _twin(impl, "TwoLayerNet", 784, hidden, 10)
        x, t = _sample(batch)
        return lambda: net.numerical_gradient(x, t)

    def reference_net():
        return _twin("reference", "TwoLayerNet", 784, hidden, 10), *_sample(batch)
    return make, reference_net


def _train_step(impl):
    from fastnn import _reference_numpy as R
    from fastnn import optimizer as O
    net = _twin(impl, "TwoLayerNet", 784, 50, 10)
    opt = (O if impl == "fastnn" else R).SGD(lr=1e-6)
    x, t = _sample(100)
    return lambda: opt.update(net.params, net.gradient(x, t))


def _multilayer(impl):
    net = _twin(impl, "MultiLayerNet", 784, [100, 100], 10, activation="relu")
    x, t = _sample(100)
    return lambda: net.gradient(x, t)


def _function(fname, *arrays):
    def make(impl):
        from fastnn import _reference_numpy as R
        from fastnn import functions as F
        fn = getattr(F if impl == "fastnn" else R, fname)
        return lambda: fn(*arrays)
    return make


def _adam(impl):
    from fastnn import _reference_numpy as R
    from fastnn import optimizer as O
    rng = np.random.default_rng(0)
    params = {"W1": rng.standard_normal((784, 50)), "b1": rng.standard_normal(50),
              "W2": rng.standard_normal((50, 10)), "b2": rng.standard_normal(10)}
    grads = {k: rng.standard_normal(v.shape) * 1e-9 for k, v in params.items()}
    opt = (O if impl == "fastnn" else R).Adam(lr=1e-9)
    return lambda: opt.update(params, grads)


def cases():
    """The cases, headline first."""
    rng = np.random.default_rng(0)
    x100 = rng.random((100, 784))
    W = rng.standard_normal((784, 50)) * 0.01
    b = rng.standard_normal(50)
    logits = rng.standard_normal((10000, 10)) * 3
    labels = rng.integers(0, 10, 10000)
    probs = np.exp(logits - logits.max(axis=1, keepdims=True))
    probs /= probs.sum(axis=1, keepdims=True)
    a = rng.standard_normal((100, 100))
    half_hour = _numerical((100, 1))
    main_job = _numerical((50, 100))
    return [
        Case("TwoLayerNet.numerical_gradient", "784-100-10 sigmoid, 1 image (the half-hour "
             "run's step)", half_hour[0], slow=True, numerical=half_hour[1]),
        Case("TwoLayerNet.numerical_gradient", "784-50-10 sigmoid, batch 100 (the main "
             "job's step)", main_job[0], slow=True, numerical=main_job[1]),
        Case("training step: gradient + SGD.update", "784-50-10 sigmoid, batch 100",
             _train_step),
        Case("MultiLayerNet.gradient", "784-100-100-10 relu, batch 100", _multilayer),
        Case("Adam.update", "784-50-10 params", _adam),
        Case("cross_entropy_error", "10000x10 probabilities, labels",
             _function("cross_entropy_error", probs, labels)),
        Case("softmax", "10000x10", _function("softmax", logits)),
        Case("affine", "100x784 @ 784x50 + b", _function("affine", x100, W, b)),
        Case("sigmoid", "100x100", _function("sigmoid", a)),
    ]
