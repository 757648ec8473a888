"""Training-step benchmarks: fastnn vs the NumPy reference (and PyTorch CPU when installed).

One step = ``gradient`` (backprop) + ``SGD.update`` of the book's 784-50-10 net on a batch of
100 real MNIST images (about 81% exact zeros), float64 and float32; plus the gradient and
the optimizers alone, ch05's ReLU net, a deeper relu MultiLayerNet and MultiLayerNetExtend
with dropout + batchnorm (issue #9's goals: step >= 2.5x, MultiLayerNet >= 3x, Extend
>= 2.5x the reference). Run briefly:

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE PYTHONPATH=src:tests \
        python -m pytest benchmarks/bench_train.py --benchmark-only \
        --benchmark-columns=median,iqr,rounds

The AVX2 comparison (stands in for an AVX2-only machine): fastnn on its AVX2 path against
NumPy on OpenBLAS's Haswell kernels,

    FASTNN_ISA=avx2 OPENBLAS_CORETYPE=Haswell PYTHONPATH=src:tests python -m pytest \
        benchmarks/bench_train.py --benchmark-only --benchmark-columns=median,iqr,rounds

On a 2-core machine, NumPy's OpenBLAS threads keep spinning ~0.1 s after each call: the
fastnn rows run first, then the reference's, so neither waits for the other's threads.

PyTorch is never a dependency of fastnn: install it into a benchmark-only environment
(``pip install torch==2.13.0``) to get its rows; without it they are skipped.

On a shared machine, run this file as a script for interleaved A/B rounds (each round:
NumPy's threads let go idle, fastnn's reps, then the reference's, so both see the same
moment's load); it prints minimums and medians and their ratios:

    PYTHONPATH=src:tests python benchmarks/bench_train.py [--threads N] [--rounds R]
"""
import gzip
import os

import numpy as np
import pytest

import reference as R
from fastnn import optimizer as O
from fastnn.nets import MultiLayerNet, MultiLayerNetExtend, ReluTwoLayerNet, TwoLayerNet

MNIST = os.path.join(os.path.dirname(__file__), "..", "..", "shared", "data", "mnist")


def _mnist(n=100):
    img = os.path.join(MNIST, "train-images-idx3-ubyte.gz")
    lab = os.path.join(MNIST, "train-labels-idx1-ubyte.gz")
    if os.path.exists(img):
        with gzip.open(img) as f:
            x = np.frombuffer(f.read(16 + 784 * n), np.uint8, offset=16).reshape(n, 784)
        with gzip.open(lab) as f:
            t = np.frombuffer(f.read(8 + n), np.uint8, offset=8)
    else:  # MNIST-like stand-in: 19% non-zero pixels
        rng = np.random.default_rng(0)
        x = (rng.random((n, 784)) * 255 * (rng.random((n, 784)) < 0.19)).astype(np.uint8)
        t = rng.integers(0, 10, n).astype(np.uint8)
    return x.astype(np.float64) / 255.0, t.astype(np.int64)


X, T = _mnist(100)
DTYPES = ["float64", "float32"]


def _nets(dtype):
    np.random.seed(0)
    ref = R.TwoLayerNet(784, 50, 10)
    np.random.seed(0)
    net = TwoLayerNet(784, 50, 10)
    for n in (ref, net):
        for k in n.params:
            n.params[k] = n.params[k].astype(dtype)
    return ref, net, X.astype(dtype)


# Order matters on a small shared machine: every fastnn benchmark runs first, then the
# NumPy reference (OpenBLAS's threads keep spinning for a while after each call), then
# PyTorch (its own OpenMP runtime). The groups pair them up in the report.

def _step(opt, net, x):
    def step():
        opt.update(net.params, net.gradient(x, T))
    return step


def _relu_nets():
    np.random.seed(0)
    ref = R.TwoLayerNetCh05(784, 50, 10)
    np.random.seed(0)
    net = ReluTwoLayerNet(784, 50, 10)
    return ref, net


def _multilayer(cls):
    np.random.seed(0)
    return cls(784, [100, 100], 10, weight_decay_lambda=1e-4)


def _extend(cls):
    np.random.seed(0)
    return cls(784, [100, 100], 10, use_dropout=True, dropout_ration=0.2, use_batchnorm=True)


def _update_case(module, name):
    rng = np.random.default_rng(0)
    params = {"W1": rng.standard_normal((784, 50)), "b1": rng.standard_normal(50),
              "W2": rng.standard_normal((50, 10)), "b2": rng.standard_normal(10)}
    grads = {k: rng.standard_normal(v.shape) * 1e-9 for k, v in params.items()}
    return getattr(module, name)(lr=1e-9), params, grads


OPTIMIZERS = ["SGD", "Momentum", "AdaGrad", "Adam"]


# --- fastnn -----------------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", DTYPES)
def test_step_fastnn(benchmark, dtype):
    """One training step: gradient (fused backprop) + SGD.update."""
    benchmark.group = "train step 784-50-10 b100 %s" % dtype
    _, net, x = _nets(dtype)
    benchmark(_step(O.SGD(lr=1e-6), net, x))


@pytest.mark.parametrize("dtype", DTYPES)
def test_gradient_fastnn(benchmark, dtype):
    benchmark.group = "gradient 784-50-10 b100 %s" % dtype
    _, net, x = _nets(dtype)
    benchmark(net.gradient, x, T)


def test_step_relu_two_layer_fastnn(benchmark):
    """ch05's training step: the ReLU TwoLayerNet's gradient + SGD.update."""
    benchmark.group = "train step ch05 ReLU 784-50-10 b100 float64"
    _, net = _relu_nets()
    benchmark(_step(O.SGD(lr=1e-6), net, X))


def test_gradient_multilayer_fastnn(benchmark):
    benchmark.group = "gradient MultiLayerNet relu 784-100-100-10 b100 float64"
    benchmark(_multilayer(MultiLayerNet).gradient, X, T)


def test_gradient_extend_fastnn(benchmark):
    benchmark.group = "gradient MultiLayerNetExtend dropout+batchnorm 784-100-100-10 b100"
    benchmark(_extend(MultiLayerNetExtend).gradient, X, T)


@pytest.mark.parametrize("name", OPTIMIZERS)
def test_update_fastnn(benchmark, name):
    benchmark.group = "update %s 784-50-10 float64" % name
    opt, params, grads = _update_case(O, name)
    benchmark(opt.update, params, grads)


# --- the NumPy reference ----------------------------------------------------------------------

@pytest.mark.parametrize("dtype", DTYPES)
def test_step_reference(benchmark, dtype):
    benchmark.group = "train step 784-50-10 b100 %s" % dtype
    ref, _, x = _nets(dtype)
    benchmark(_step(R.SGD(lr=1e-6), ref, x))


@pytest.mark.parametrize("dtype", DTYPES)
def test_gradient_reference(benchmark, dtype):
    benchmark.group = "gradient 784-50-10 b100 %s" % dtype
    ref, _, x = _nets(dtype)
    benchmark(ref.gradient, x, T)


def test_step_relu_two_layer_reference(benchmark):
    benchmark.group = "train step ch05 ReLU 784-50-10 b100 float64"
    ref, _ = _relu_nets()
    benchmark(_step(R.SGD(lr=1e-6), ref, X))


def test_gradient_multilayer_reference(benchmark):
    benchmark.group = "gradient MultiLayerNet relu 784-100-100-10 b100 float64"
    benchmark(_multilayer(R.MultiLayerNet).gradient, X, T)


def test_gradient_extend_reference(benchmark):
    benchmark.group = "gradient MultiLayerNetExtend dropout+batchnorm 784-100-100-10 b100"
    benchmark(_extend(R.MultiLayerNetExtend).gradient, X, T)


@pytest.mark.parametrize("name", OPTIMIZERS)
def test_update_reference(benchmark, name):
    benchmark.group = "update %s 784-50-10 float64" % name
    opt, params, grads = _update_case(R, name)
    benchmark(opt.update, params, grads)


# --- PyTorch CPU (benchmark-only environments) -------------------------------------------------

@pytest.mark.parametrize("dtype", DTYPES)
def test_step_torch(benchmark, dtype):
    """The same step in PyTorch: forward, CrossEntropyLoss, backward, SGD.step."""
    torch = pytest.importorskip("torch")
    benchmark.group = "train step 784-50-10 b100 %s" % dtype
    tdt = getattr(torch, dtype)
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(784, 50), torch.nn.Sigmoid(),
                                torch.nn.Linear(50, 10)).to(tdt)
    loss_fn = torch.nn.CrossEntropyLoss()
    opt = torch.optim.SGD(model.parameters(), lr=1e-6)
    xt = torch.from_numpy(X.astype(dtype))
    tt = torch.from_numpy(T)

    def step():
        opt.zero_grad()
        loss_fn(model(xt), tt).backward()
        opt.step()
    benchmark(step)


# --- interleaved A/B rounds (python benchmarks/bench_train.py) --------------------------------

def _ab_cases():
    cases = {}
    for dtype in DTYPES:
        ref, net, x = _nets(dtype)
        cases["train step 784-50-10 b100 " + dtype] = (_step(O.SGD(lr=1e-6), net, x),
                                                       _step(R.SGD(lr=1e-6), ref, x))
    np.random.seed(0)
    multi, multi_ref = _multilayer(MultiLayerNet), _multilayer(R.MultiLayerNet)
    cases["gradient MultiLayerNet 784-100-100-10"] = (lambda: multi.gradient(X, T),
                                                      lambda: multi_ref.gradient(X, T))
    ext, ext_ref = _extend(MultiLayerNetExtend), _extend(R.MultiLayerNetExtend)
    cases["gradient MultiLayerNetExtend dropout+bn"] = (lambda: ext.gradient(X, T),
                                                        lambda: ext_ref.gradient(X, T))
    return cases


def _times(fn, reps):
    import time
    out = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t0)
    return out


def main(argv=None):
    import argparse
    import time
    import fastnn
    ap = argparse.ArgumentParser(description="interleaved A/B: fastnn vs the NumPy reference")
    ap.add_argument("--threads", type=int, default=None, help="fastnn threads (default: all)")
    ap.add_argument("--rounds", type=int, default=10)
    ap.add_argument("--reps", type=int, default=50)
    args = ap.parse_args(argv)
    if args.threads is not None:
        fastnn.set_num_threads(args.threads)
    cases = _ab_cases()
    res = {k: ([], []) for k in cases}
    for _ in range(args.rounds):
        for k, (fast, ref) in cases.items():
            time.sleep(0.2)               # NumPy's OpenBLAS threads spin ~0.1 s after a call
            res[k][0].extend(_times(fast, args.reps))
            res[k][1].extend(_times(ref, args.reps))
    print("fastnn threads %d, FASTNN_ISA=%s, OPENBLAS_CORETYPE=%s, load %.2f"
          % (fastnn.get_num_threads(), os.environ.get("FASTNN_ISA", "-"),
             os.environ.get("OPENBLAS_CORETYPE", "-"), os.getloadavg()[0]))
    for k, (a, b) in res.items():
        a, b = np.array(a) * 1e6, np.array(b) * 1e6
        print("%-42s fastnn min %7.1f med %7.1f us | reference min %7.1f med %7.1f us | "
              "%.2fx (min) %.2fx (median)" % (k, a.min(), np.median(a), b.min(), np.median(b),
                                               b.min() / a.min(), np.median(b) / np.median(a)))


if __name__ == "__main__":
    main()
