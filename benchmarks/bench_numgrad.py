"""The finite-difference engine and the generic numerical_gradient, beside the NumPy
reference (tests/reference.py), on real MNIST pixels (the shared mnist_train_100.csv).

The reference runs once per group (``pedantic(rounds=1, iterations=1)``): one step of
the half-hour configuration takes it ~10 s, 784-50-10 on a batch of 100 ~30 s.

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE PYTHONPATH=src:tests python -m pytest \\
        benchmarks/bench_numgrad.py --benchmark-only --benchmark-columns=median,iqr,rounds
"""
import os

import numpy as np
import pytest

import reference as R
from fastnn.compat import Threelayer_net
from fastnn.gradient import numerical_gradient
from fastnn.nets import MultiLayerNet, MultiLayerNetExtend, TwoLayerNet

CSV = os.path.join(os.path.dirname(__file__), "..", "..", "shared", "data", "mnist",
                   "mnist_train_100.csv")


@pytest.fixture(scope="module")
def mnist():
    if not os.path.exists(CSV):
        pytest.skip("shared MNIST csv not present")
    d = np.loadtxt(CSV, delimiter=",", ndmin=2)
    return d[:, 1:] / 255.0, d[:, 0].astype(np.intp)


def _once(benchmark, fn):
    return benchmark.pedantic(fn, rounds=1, iterations=1, warmup_rounds=0)


# --- the half-hour configuration: 784-100-10 sigmoid, one image ----------------------

@pytest.mark.benchmark(group="numgrad 784-100-10 batch 1 (one step)")
@pytest.mark.parametrize("n_threads", [1, None], ids=["fastnn-1thread", "fastnn-default"])
def test_half_hour_step_fastnn(benchmark, mnist, n_threads):
    X, T = mnist
    np.random.seed(0)
    net = Threelayer_net(784, 100, 10, lr=0.01)
    benchmark(net.grad, X[:1], T[:1], n_threads=n_threads)


@pytest.mark.benchmark(group="numgrad 784-100-10 batch 1 (one step)")
@pytest.mark.parametrize("bad", ["nan-weight", "inf-pixel"])
def test_half_hour_step_nonfinite_fastnn(benchmark, mnist, bad):
    """The same step with one NaN weight (every gradient NaN, as the book's) or one inf
    pixel (the book's NaN/inf, the affected rows re-evaluated): still the engine."""
    X, T = mnist
    np.random.seed(0)
    net = Threelayer_net(784, 100, 10, lr=0.01)
    x = X[:1].copy()
    if bad == "nan-weight":
        net.params["w1"][5, 5] = np.nan
    else:
        x[0, np.nonzero(x[0])[0][10]] = np.inf
    benchmark(net.grad, x, T[:1], n_threads=1)


@pytest.mark.benchmark(group="numgrad 784-100-10 batch 1 (one step)")
def test_half_hour_step_reference(benchmark, mnist):
    X, T = mnist
    np.random.seed(0)
    ref = R.Threelayer_net(784, 100, 10, lr=0.01)
    _once(benchmark, lambda: ref.grad(X[:1], T[:1]))


@pytest.mark.benchmark(group="half-hour run: 100 SGD steps, numerical gradients")
def test_half_hour_run_100_steps_fastnn(benchmark, mnist):
    X, T = mnist

    def run():
        np.random.seed(0)
        net = Threelayer_net(784, 100, 10, lr=0.01)
        for step in range(100):
            x, t = X[step:step + 1], T[step:step + 1]
            grads = net.grad(x, t)
            for key in ("w1", "b1", "w2", "b2"):
                net.params[key] -= 0.1 * grads[key]

    benchmark.pedantic(run, rounds=5, iterations=1, warmup_rounds=1)


# --- the book's nets on a batch of 100 ---------------------------------------------------

@pytest.mark.benchmark(group="numgrad 784-50-10 batch 100")
@pytest.mark.parametrize("n_threads", [1, None], ids=["fastnn-1thread", "fastnn-default"])
def test_two_layer_b100_fastnn(benchmark, mnist, n_threads):
    X, T = mnist
    np.random.seed(0)
    net = TwoLayerNet(784, 50, 10)
    benchmark(net.numerical_gradient, X, T, n_threads=n_threads)


@pytest.mark.benchmark(group="numgrad 784-50-10 batch 100")
def test_two_layer_b100_reference(benchmark, mnist):
    X, T = mnist
    np.random.seed(0)
    ref = R.TwoLayerNet(784, 50, 10)
    _once(benchmark, lambda: ref.numerical_gradient(X, T))


@pytest.mark.benchmark(group="numgrad 784-50-100-10 sigmoid batch 100")
@pytest.mark.parametrize("n_threads", [1, None], ids=["fastnn-1thread", "fastnn-default"])
def test_multi_layer_b100_fastnn(benchmark, mnist, n_threads):
    X, T = mnist
    np.random.seed(0)
    net = MultiLayerNet(784, [50, 100], 10, activation="sigmoid", weight_init_std="sigmoid")
    benchmark(net.numerical_gradient, X, T, n_threads=n_threads)


@pytest.mark.benchmark(group="numgrad 784-50-100-10 sigmoid batch 100")
def test_multi_layer_b100_reference(benchmark, mnist):
    X, T = mnist
    np.random.seed(0)
    ref = R.MultiLayerNet(784, [50, 100], 10, activation="sigmoid", weight_init_std="sigmoid")
    _once(benchmark, lambda: ref.numerical_gradient(X, T))


@pytest.mark.benchmark(group="numgrad MultiLayerNetExtend batchnorm 784-20-10 batch 10")
@pytest.mark.parametrize("n_threads", [1, None], ids=["fastnn-1thread", "fastnn-default"])
def test_batchnorm_b10_fastnn(benchmark, mnist, n_threads):
    X, T = mnist
    np.random.seed(0)
    net = MultiLayerNetExtend(784, [20], 10, use_batchnorm=True)
    benchmark(net.numerical_gradient, X[:10], T[:10], n_threads=n_threads)


@pytest.mark.benchmark(group="numgrad MultiLayerNetExtend batchnorm 784-20-10 batch 10")
def test_batchnorm_b10_reference(benchmark, mnist):
    X, T = mnist
    np.random.seed(0)
    ref = R.MultiLayerNetExtend(784, [20], 10, use_batchnorm=True)
    _once(benchmark, lambda: ref.numerical_gradient(X[:10], T[:10]))


# --- generic numerical_gradient(f, x) ------------------------------------------------------

def _sum_sq(w):
    return np.sum(w ** 2)


def _cheap(w):
    return 0.0


@pytest.mark.benchmark(group="generic numerical_gradient, f = sum of squares, 10,000 elements")
@pytest.mark.parametrize("impl", ["fastnn", "reference"])
def test_generic_sum_of_squares(benchmark, impl):
    x = np.random.default_rng(0).standard_normal(10000)
    fn = numerical_gradient if impl == "fastnn" else R.numerical_gradient
    benchmark.pedantic(fn, args=(_sum_sq, x), rounds=5, iterations=1)


@pytest.mark.benchmark(group="generic numerical_gradient, f = constant (loop cost), 10,000 elements")
@pytest.mark.parametrize("impl", ["fastnn", "reference"])
def test_generic_loop_overhead(benchmark, impl):
    x = np.random.default_rng(0).standard_normal(10000)
    fn = numerical_gradient if impl == "fastnn" else R.numerical_gradient
    benchmark.pedantic(fn, args=(_cheap, x), rounds=5, iterations=1)
