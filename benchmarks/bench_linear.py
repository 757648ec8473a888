"""The linear kernels (fastnn._kernels._linear): the sparse first layer on real MNIST rows
(~81% zeros), and the backward products of the nnfs spiral net's small shapes.

Groups put three ways of computing the same product side by side, batch of 100 bundled
MNIST training images (float64 / float32 in [0, 1]), hidden layer 50 or 100:
  - sparse: the whole sparse path (rows' non-zeros, finiteness check, the kernel);
  - dense:  fastnn's dense GEMM (fastnn.affine / Affine's dW kernel) on the same x;
  - reference: NumPy's x @ W + b / x.T @ dz.
tools/bench_sparse.c times the kernels alone against the previous row-at-a-time path
(compress + fastnn_bp_sprow per row, column lists + sprow per column), one thread.

The nnfs groups: Layer_Dense.backward's three products (dweights = inputs.T @ dvalues,
dbiases = column sums, dinputs = dvalues @ weights.T) for the spiral net's two layers
(spiral_data(1000, 3): 3000 samples; 2 -> 64 and 64 -> 3), fastnn's affine_backward
against NumPy's three expressions. Both are single calls; fastnn sums db in double.

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


@pytest.mark.parametrize("impl", ["fastnn", "reference"])
@pytest.mark.parametrize("K,N", [(2, 64), (64, 3)], ids=["2to64", "64to3"])
def test_nnfs_dense_backward(benchmark, impl, dtype, K, N):
    rng = np.random.default_rng(0)
    M = 3000
    x = rng.standard_normal((M, K)).astype(dtype)
    W = rng.standard_normal((K, N)).astype(dtype)
    dv = rng.standard_normal((M, N)).astype(dtype)
    benchmark.group = "nnfs Layer_Dense backward products, %dx%d -> %d %s" % (M, K, N, np.dtype(dtype).name)
    if impl == "fastnn":
        dx, dW, db = np.empty((M, K), dtype), np.empty((K, N), dtype), np.empty(N, dtype)
        benchmark(_linear.affine_backward, x, W, dv, dx, dW, db, fastnn.get_num_threads())
    else:
        benchmark(lambda: (np.dot(x.T, dv), np.sum(dv, axis=0, keepdims=True), np.dot(dv, W.T)))
