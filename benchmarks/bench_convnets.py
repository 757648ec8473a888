"""The conv nets, whole steps: fastnn vs the book's NumPy (tests/reference.py) vs PyTorch
CPU, side by side in one run (issue #10's goals).

Groups (batch 100 of MNIST-like images: 28x28, ~80% exact zeros, as load_mnist gives):
  SimpleConvNet.gradient     float32 / float64, 1 and 2 threads
                             (goals: float32 >= 1.5x PyTorch float32; float64 >= 10x the
                             book's NumPy and >= 1.5x PyTorch float64)
  course CNN training step   gradient + SGD(lr 0.01) update, the same ratios
  numerical_gradient         the book's ch07 gradient-check net (input 1x10x10, 10 filters
                             3x3, hidden 10, one image): >= 1,000x the book's loop
  ch07 run                   the book's train_convnet.py step (Trainer: gradient + Adam(lr
                             0.001) update + loss), SimpleConvNet, 2 threads; its
                             extra_info extrapolates 20 epochs x 60,000 images (12,000
                             steps) from steps/s (goal: under 3 minutes)
Each implementation runs on the group's thread count: fastnn.set_num_threads, NumPy's BLAS
through threadpoolctl, torch.set_num_threads.

PyTorch is not a dependency of fastnn; its rows need a benchmark environment with torch
(without it they are skipped with a message), e.g.

    python -m venv /work/venv-torch
    /work/venv-torch/bin/pip install torch numpy pytest pytest-benchmark threadpoolctl
    PYTHONPATH=src:tests env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE \\
        /work/venv-torch/bin/python -m pytest benchmarks/bench_convnets.py --benchmark-only \\
        --benchmark-columns=median,iqr,rounds
"""
import contextlib
import time

import numpy as np
import pytest

import fastnn
import reference as R
from fastnn import nets
from fastnn.optimizer import SGD, Adam

try:
    import torch
    import torch.nn.functional as TF
except ImportError:  # optional
    torch = None

try:
    from threadpoolctl import threadpool_limits
except ImportError:  # optional: then NumPy's BLAS runs on its own thread count
    threadpool_limits = None

DTYPES = [np.float32, np.float64]
IMPLS = ["fastnn", "book", "torch"]
THREADS = [1, 2]
CH07_STEPS = 20 * 60000 // 100      # train_convnet.py: 20 epochs of 60,000, batch 100


def _mnist_batch(n=100, size=28, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.random((n, 1, size, size))
    x *= rng.random(x.shape) < 0.2      # MNIST: about 80% exact zeros
    return x, rng.integers(0, 10, n)


@contextlib.contextmanager
def _threads(impl, n):
    if impl == "fastnn":
        fastnn.set_num_threads(n)
        try:
            yield
        finally:
            fastnn.set_num_threads(None)
    elif impl == "torch":
        old = torch.get_num_threads()
        torch.set_num_threads(n)
        try:
            yield
        finally:
            torch.set_num_threads(old)
    elif threadpool_limits is not None:
        with threadpool_limits(limits=n):
            yield
    else:
        yield


def _skip_torch(impl):
    if impl == "torch" and torch is None:
        pytest.skip("PyTorch is not installed here (optional: see this file's docstring)")


def _net(impl, name, dtype, seed=0):
    """(net, x, t) for fastnn or the book; the same init draws."""
    x, t = _mnist_batch()
    np.random.seed(seed)
    net = getattr(nets if impl == "fastnn" else R, name)()
    for k in net.params:
        net.params[k] = net.params[k].astype(dtype)
    if impl == "book":                 # the book's layers hold the arrays: re-point them
        for i, key in enumerate(net._param_layers):
            net.layers[key].W = net.params["W%d" % (i + 1)]
            net.layers[key].b = net.params["b%d" % (i + 1)]
    return net, x.astype(dtype), t


class _TorchNet:
    """SimpleConvNet / the course CNN in PyTorch: the same layers and init as the book's,
    autograd for the gradients (dx of the first layer is not asked for, as nobody needs it)."""

    def __init__(self, name, dtype, seed=0):
        np.random.seed(seed)
        book = getattr(R, name)()
        tdt = torch.float32 if dtype == np.float32 else torch.float64
        self.p = {k: torch.tensor(v, dtype=tdt, requires_grad=True)
                  for k, v in book.params.items()}
        self.name = name
        x, t = _mnist_batch()
        self.x = torch.tensor(x, dtype=tdt)
        self.t = torch.tensor(t)

    def loss(self):
        p, x = self.p, self.x
        if self.name == "SimpleConvNet":
            h = TF.max_pool2d(TF.relu(TF.conv2d(x, p["W1"], p["b1"])), 2, 2)
            h = TF.relu(h.reshape(len(x), -1) @ p["W2"] + p["b2"])
            y = h @ p["W3"] + p["b3"]
        else:
            h = TF.max_pool2d(TF.relu(TF.conv2d(x, p["W1"], p["b1"], padding=2)), 2, 2)
            h = TF.max_pool2d(TF.relu(TF.conv2d(h, p["W2"], p["b2"], padding=2)), 2, 2)
            y = h.reshape(len(x), -1) @ p["W3"] + p["b3"]
        return TF.cross_entropy(y, self.t)

    def gradient(self):
        keys = list(self.p)
        return dict(zip(keys, torch.autograd.grad(self.loss(), [self.p[k] for k in keys])))

    def train_step(self, lr=0.01):
        grads = self.gradient()
        with torch.no_grad():
            for k, g in grads.items():
                self.p[k] -= lr * g
        return grads


@pytest.mark.parametrize("n_threads", THREADS, ids=lambda n: "%dt" % n)
@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
def test_simple_convnet_gradient(benchmark, dtype, impl, n_threads):
    _skip_torch(impl)
    benchmark.group = "SimpleConvNet.gradient batch 100 %s %dt" % (np.dtype(dtype).name,
                                                                  n_threads)
    with _threads(impl, n_threads):
        if impl == "torch":
            tnet = _TorchNet("SimpleConvNet", dtype)
            grads = benchmark(tnet.gradient)
        else:
            net, x, t = _net(impl, "SimpleConvNet", dtype)
            grads = benchmark(net.gradient, x, t)
    assert tuple(grads["W1"].shape) == (30, 1, 5, 5)


@pytest.mark.parametrize("n_threads", THREADS, ids=lambda n: "%dt" % n)
@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
def test_course_cnn_training_step(benchmark, dtype, impl, n_threads):
    _skip_torch(impl)
    benchmark.group = "course CNN training step (gradient + SGD) batch 100 %s %dt" % (
        np.dtype(dtype).name, n_threads)
    with _threads(impl, n_threads):
        if impl == "torch":
            tnet = _TorchNet("MnistCNN", dtype)
            grads = benchmark(tnet.train_step)
        else:
            net, x, t = _net(impl, "MnistCNN", dtype)
            opt = (SGD if impl == "fastnn" else R.SGD)(lr=0.01)

            def step():
                g = net.gradient(x, t)
                opt.update(net.params, g)
                return g
            grads = benchmark(step)
    assert tuple(grads["W2"].shape) == (20, 20, 5, 5)


CHECK_NET = dict(input_dim=(1, 10, 10),
                 conv_param={"filter_num": 10, "filter_size": 3, "pad": 0, "stride": 1},
                 hidden_size=10, output_size=10, weight_init_std=0.01)


@pytest.mark.parametrize("impl", ["fastnn", "book"])
def test_numerical_gradient_check_net(benchmark, impl):
    """ch07/gradient_check.py's net and data (1,820 params, one image)."""
    benchmark.group = "SimpleConvNet.numerical_gradient, ch07 gradient-check net"
    np.random.seed(0)
    net = (nets if impl == "fastnn" else R).SimpleConvNet(**CHECK_NET)
    X = np.random.rand(100).reshape((1, 1, 10, 10))
    T = np.array([1]).reshape((1, 1))
    if impl == "book":   # about a second a call: a few rounds
        grads = benchmark.pedantic(net.numerical_gradient, (X, T), rounds=3, iterations=1)
    else:
        grads = benchmark(net.numerical_gradient, X, T)
    assert grads["W2"].shape == (160, 10)


@pytest.mark.parametrize("impl", ["fastnn", "book"])
def test_ch07_training_run_extrapolated(benchmark, impl):
    """One step of the book's train_convnet.py (Trainer: SimpleConvNet.gradient,
    Adam(lr=0.001).update, loss on the batch), 2 threads; extra_info: 12,000 steps."""
    benchmark.group = "ch07 train_convnet.py step (gradient + Adam + loss), 2t"
    net, x, t = _net(impl, "SimpleConvNet", np.float64)
    opt = (Adam if impl == "fastnn" else R.Adam)(lr=0.001)

    def step():
        g = net.gradient(x, t)
        opt.update(net.params, g)
        return net.loss(x, t)
    with _threads(impl, 2):
        if impl == "book":
            benchmark.pedantic(step, rounds=5, iterations=1, warmup_rounds=1)
        else:
            benchmark(step)
    sec = benchmark.stats.stats.median
    benchmark.extra_info["ch07 run, 12000 steps (s)"] = round(sec * CH07_STEPS, 1)
    benchmark.extra_info["steps/s"] = round(1 / sec, 1)


def test_ch07_run_goal_note(capsys):
    """Not a benchmark: prints the extrapolation of fastnn's ch07 run (median of 30 steps,
    2 threads) so it shows in a plain `pytest benchmarks/bench_convnets.py -s` too."""
    net, x, t = _net("fastnn", "SimpleConvNet", np.float64)
    opt = Adam(lr=0.001)
    times = []
    with _threads("fastnn", 2):
        for _ in range(30):
            t0 = time.perf_counter()
            opt.update(net.params, net.gradient(x, t))
            net.loss(x, t)
            times.append(time.perf_counter() - t0)
    sec = float(np.median(times))
    with capsys.disabled():
        print("\nch07 run (SimpleConvNet, 20 epochs x 60,000 images, batch 100, Adam), "
              "fastnn on 2 threads: %.1f ms a step -> %.0f s for %d steps (goal: < 180 s)"
              % (sec * 1e3, sec * CH07_STEPS, CH07_STEPS))
