"""Convolution and Pooling layers, forward + backward: fastnn vs the book's NumPy layers vs
PyTorch CPU, at the shapes of the book's SimpleConvNet and the Paddle course's MNIST CNN.

Shapes (batch 100, real-MNIST-like input in [0, 1] for the first layers):
  simple   Convolution 1x28x28 -> 30 filters 5x5 (pad 0); Pooling 2x2/2 of 30x24x24
  course1  Convolution 1x28x28 -> 20 filters 5x5 pad 2;  Pooling 2x2/2 of 20x28x28
  course2  Convolution 20x14x14 -> 20 filters 5x5 pad 2; Pooling 2x2/2 of 20x14x14
Each group is one layer x shape x dtype x thread count, with fastnn, the book's layer
(tests/reference.py; NumPy's BLAS limited to the same threads with threadpoolctl) and
PyTorch (``torch.nn.functional.conv2d`` / ``max_pool2d`` with autograd; ``dx`` is computed
too, as the book's layers do) side by side.

PyTorch is never a dependency of fastnn: its rows need a benchmark-only environment, e.g.

    python -m venv /work/venv-torch
    /work/venv-torch/bin/pip install torch==2.13.0 numpy pytest pytest-benchmark threadpoolctl
    PYTHONPATH=src:tests env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE \\
        /work/venv-torch/bin/python -m pytest benchmarks/bench_conv.py --benchmark-only \\
        --benchmark-columns=median,iqr,rounds

Without torch its rows are skipped with a message.
"""
import contextlib

import numpy as np
import pytest

import fastnn
import reference as R
from fastnn import layers as L

try:
    import torch
except ImportError:  # optional
    torch = None

try:
    from threadpoolctl import threadpool_limits
except ImportError:  # optional: then NumPy's BLAS runs on its own thread count
    threadpool_limits = None

# name: (N, C, H, FN, filter, pad)
SHAPES = {
    "simple": (100, 1, 28, 30, 5, 0),
    "course1": (100, 1, 28, 20, 5, 2),
    "course2": (100, 20, 14, 20, 5, 2),
}
DTYPES = [np.float32, np.float64]
IMPLS = ["fastnn", "book", "torch"]
THREADS = [1, 2]


def _input(shape, dtype):
    rng = np.random.default_rng(0)
    N, C, H, FN, f, pad = SHAPES[shape]
    x = rng.random((N, C, H, H))
    if C == 1:   # MNIST: about 80% exact zeros
        x *= rng.random(x.shape) < 0.2
    W = 0.01 * rng.standard_normal((FN, C, f, f))
    return x.astype(dtype), W.astype(dtype), np.zeros(FN, dtype), pad


@contextlib.contextmanager
def _threads(impl, n):
    """Run `impl` on n threads; restore afterwards."""
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


def _conv_step(impl, x, W, b, pad):
    """A callable doing Convolution forward + backward once."""
    if impl == "torch":
        xt = torch.from_numpy(x).requires_grad_(True)
        Wt = torch.from_numpy(W.copy()).requires_grad_(True)
        bt = torch.from_numpy(b.copy()).requires_grad_(True)
        out = torch.nn.functional.conv2d(xt, Wt, bt, padding=pad)
        dout = torch.from_numpy(np.cos(out.detach().numpy()))

        def step():
            xt.grad = Wt.grad = bt.grad = None
            torch.nn.functional.conv2d(xt, Wt, bt, padding=pad).backward(dout)
            return xt.grad
        return step
    lib = L if impl == "fastnn" else R
    layer = lib.Convolution(W, b, 1, pad)
    dout = np.cos(layer.forward(x)).astype(x.dtype)

    def step():
        layer.forward(x)
        return layer.backward(dout)
    return step


def _pool_step(impl, x):
    """A callable doing Pooling(2, 2, stride=2) forward + backward once."""
    if impl == "torch":
        xt = torch.from_numpy(x).requires_grad_(True)
        out = torch.nn.functional.max_pool2d(xt, 2, 2)
        dout = torch.from_numpy(np.cos(out.detach().numpy()))

        def step():
            xt.grad = None
            torch.nn.functional.max_pool2d(xt, 2, 2).backward(dout)
            return xt.grad
        return step
    lib = L if impl == "fastnn" else R
    layer = lib.Pooling(2, 2, stride=2)
    dout = np.cos(layer.forward(x)).astype(x.dtype)

    def step():
        layer.forward(x)
        return layer.backward(dout)
    return step


def _skip_torch(impl):
    if impl == "torch" and torch is None:
        pytest.skip("PyTorch is not installed here (optional: see this file's docstring)")


@pytest.mark.parametrize("n_threads", THREADS, ids=lambda n: "%dt" % n)
@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("shape", list(SHAPES))
def test_convolution(benchmark, shape, dtype, impl, n_threads):
    _skip_torch(impl)
    x, W, b, pad = _input(shape, dtype)
    benchmark.group = "Convolution fwd+bwd %s %s %dt" % (shape, np.dtype(dtype).name, n_threads)
    with _threads(impl, n_threads):
        step = _conv_step(impl, x, W, b, pad)
        dx = benchmark(step)
    assert tuple(dx.shape) == x.shape


@pytest.mark.parametrize("n_threads", THREADS, ids=lambda n: "%dt" % n)
@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("shape", list(SHAPES))
def test_pooling(benchmark, shape, dtype, impl, n_threads):
    _skip_torch(impl)
    N, C, H, FN, f, pad = SHAPES[shape]
    rng = np.random.default_rng(1)
    # the pooled map: the convolution's ReLU output
    size = H + 2 * pad - f + 1
    x = np.maximum(rng.standard_normal((N, FN, size, size)), 0).astype(dtype)
    benchmark.group = "Pooling 2x2/2 fwd+bwd %s %s %dt" % (shape, np.dtype(dtype).name, n_threads)
    with _threads(impl, n_threads):
        step = _pool_step(impl, x)
        dx = benchmark(step)
    assert tuple(dx.shape) == x.shape
