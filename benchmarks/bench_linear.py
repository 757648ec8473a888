"""The sparse first layer (fastnn._kernels._linear) on real MNIST rows (~81% zeros).

Groups put three ways of computing the same product side by side, batch of 100 bundled
MNIST training images (float64 / float32 in [0, 1]), hidden layer 50 or 100:
  - sparse: the whole sparse path (rows' non-zeros, finiteness check, the kernel);
  - dense:  fastnn's dense GEMM (fastnn.affine / Affine's dW kernel) on the same x;
  - reference: NumPy's x @ W + b / x.T @ dz.
tools/bench_sparse.c times the kernels alone against the previous row-at-a-time path
(compress + fastnn_bp_sprow per row, column lists + sprow per column), one thread.

Run: env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python -m pytest benchmarks/bench_linear.py --benchmark-only
"""
import numpy as np
import pytest

import fastnn
from fastnn._kernels import _linear
from mnist_rows import mnist_rows

DTYPES = [np.float64, np.float32]


@pytest.fixture(params=DTYPES, ids=lambda d: np.dtype(d).name)
def dtype(request):
    return request.param


@pytest.mark.parametrize("impl", ["sparse", "dense", "reference"])
@pytest.mark.parametrize("N", [50, 100])
def test_first_layer_forward(benchmark, impl, dtype, N):
    x = np.ascontiguousarray(mnist_rows(100)[0].astype(dtype))
    rng = np.random.default_rng(0)
    W = rng.standard_normal((784, N)).astype(dtype)
    b = rng.standard_normal(N).astype(dtype)
    out = np.empty((100, N), dtype)
    benchmark.group = "x @ W + b, MNIST 100x784 @ 784x%d %s" % (N, np.dtype(dtype).name)
    if impl == "sparse":
        benchmark(_linear.sparse_affine, x, W, b, out, fastnn.get_num_threads())
    elif impl == "dense":
        benchmark(fastnn.affine, x, W, b)
    else:
        benchmark(lambda: x @ W + b)


@pytest.mark.parametrize("impl", ["sparse", "dense", "reference"])
@pytest.mark.parametrize("N", [50, 100])
def test_first_layer_dW(benchmark, impl, dtype, N):
    x = np.ascontiguousarray(mnist_rows(100)[0].astype(dtype))
    rng = np.random.default_rng(0)
    dz = rng.standard_normal((100, N)).astype(dtype)
    W = np.zeros((784, N), dtype)
    dW = np.empty((784, N), dtype)
    db = np.empty(N, dtype)
    n = fastnn.get_num_threads()
    benchmark.group = "x.T @ dz, MNIST 100x784, dz 100x%d %s" % (N, np.dtype(dtype).name)
    if impl == "sparse":
        benchmark(_linear.sparse_x_t_dz, x, dz, dW, n)
    elif impl == "dense":   # Affine.backward's dW and db, without dx
        benchmark(_linear.affine_backward, x, W, dz, None, dW, db, n)
    else:
        benchmark(lambda: x.T @ dz)
