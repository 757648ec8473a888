"""Measure the single-thread throughput behind each parallel region's time estimate.

Every kernel tells fastnn_team() (csrc/fastnn_openmp.h) how long its region would take on
one thread, from a constant "ns per unit" (element, row, multiply-add). This script
measures those constants: each kernel on one thread at two sizes near the grain
(~30-300 us of work), min of many runs, slope = ns per unit (the call's fixed cost
drops out). Run it on a quiet machine and on each ISA level:

    PYTHONPATH=src python tools/thread_grain.py            # every ISA level the CPU has
    PYTHONPATH=src python tools/thread_grain.py --check    # estimate vs real, per workload
"""
import sys
import time

import numpy as np

from fastnn import functions as F
from fastnn._kernels import _cpu, _activations, _linear, _losses, _optimizers, _dense


def tmin(f, reps=60):
    best = float("inf")
    for _ in range(reps):
        t0 = time.perf_counter_ns()
        f()
        best = min(best, time.perf_counter_ns() - t0)
    return best


def slope(make, units):
    """ns per unit between the two sizes (make(size) returns a zero-argument call)."""
    (s0, u0), (s1, u1) = units
    f0, f1 = make(s0), make(s1)
    f0(); f1()
    t0 = min(tmin(f0) for _ in range(3))
    t1 = min(tmin(f1) for _ in range(3))
    return (t1 - t0) / (u1 - u0), t1


def cases(dt):
    rng = np.random.default_rng(0)
    out = {}

    def sig(n):
        x = rng.standard_normal(n).astype(dt); y = np.empty_like(x)
        return lambda: _activations.sigmoid(x, y, 1)
    out["sigmoid / element"] = slope(sig, [(8000, 8000), (64000, 64000)])

    def sm(rows, n=10):
        x = rng.standard_normal((rows, n)).astype(dt); y = np.empty_like(x)
        return lambda: _activations.softmax(x, y, 1)
    out["softmax n=10 / element"] = slope(sm, [(800, 8000), (6400, 64000)])

    def sm100(rows):
        return sm(rows, 100)
    out["softmax n=100 / element"] = slope(sm100, [(80, 8000), (640, 64000)])

    def gemm(M, K=784, N=50):
        x = rng.random((M, K)).astype(dt); W = rng.random((K, N)).astype(dt)
        b = rng.random(N).astype(dt); o = np.empty((M, N), dt)
        return lambda: _linear.affine(x, W, b, o, 1)
    out["gemm M x 784 x 50 / MAC"] = slope(gemm, [(12, 12 * 784 * 50), (100, 100 * 784 * 50)])

    def gemm2(M, K=100, N=100):
        return gemm(M, K, N)
    out["gemm M x 100 x 100 / MAC"] = slope(gemm2, [(12, 12 * 100 * 100), (120, 120 * 100 * 100)])

    def gemm1(N, K=784):
        return gemm(1, K, N)
    out["gemm 1 x 784 x N / MAC"] = slope(gemm1, [(16, 784 * 16), (256, 784 * 256)])

    def colsum(M, N=50):
        x = rng.random((M, 784)).astype(dt); W = rng.random((784, N)).astype(dt)
        d = rng.random((M, N)).astype(dt)
        dW = np.empty((784, N), dt); db = np.empty(N, dt)
        def f():
            _linear.affine_backward(x, W, d, None, dW, db, 1)
        return f
    out["affine_backward (dW) M x 784 x 50 / MAC"] = slope(colsum, [(12, 12 * 784 * 50), (100, 100 * 784 * 50)])

    def cel(rows, n=10):
        y = rng.random((rows, n)).astype(dt); t = rng.integers(0, n, rows).astype(np.intp)
        return lambda: _losses.cross_entropy_labels(y, t, 1)
    out["cross_entropy labels / row"] = slope(cel, [(1000, 1000), (20000, 20000)])

    def ceo(rows, n=10):
        y = rng.random((rows, n)).astype(dt); t = np.eye(n, dtype=dt)[rng.integers(0, n, rows)]
        return lambda: _losses.cross_entropy_onehot(y, t, 1)
    out["cross_entropy one-hot n=10 / element"] = slope(ceo, [(800, 8000), (6400, 64000)])

    def scel(rows, n=10):
        y = rng.random((rows, n)).astype(dt); t = rng.integers(0, n, rows).astype(np.intp)
        return lambda: _losses.softmax_cross_entropy_labels(y, t, 1)
    out["softmax_loss labels n=10 / element"] = slope(scel, [(800, 8000), (6400, 64000)])

    for kind, name in ((0, "SGD"), (1, "Momentum"), (3, "AdaGrad"), (5, "Adam")):
        def opt(n, kind=kind):
            p = [rng.random(n).astype(dt)]; g = [rng.random(n).astype(dt)]
            s1 = [np.zeros(n, dt)] if kind else None
            s2 = [np.zeros(n, dt)] if kind == 5 else None
            return lambda: _optimizers.update(kind, p, g, s1, s2, 1e-9, 0.9, 0.999, 0.1,
                                              dt == np.float64, 1)
        out["optimizer %s / element" % name] = slope(opt, [(8000, 8000), (64000, 64000)])

    def relu(n):
        x = rng.standard_normal(n).astype(dt)
        one = lambda: 1
        return lambda: _dense.relu_forward(x, one)
    out["nnfs relu / element"] = slope(relu, [(8000, 8000), (64000, 64000)])

    def relub(n):
        x = rng.standard_normal(n).astype(dt); d = rng.standard_normal(n).astype(dt)
        one = lambda: 1
        return lambda: _dense.relu_backward(x, d, one)
    out["nnfs relu backward / element"] = slope(relub, [(8000, 8000), (64000, 64000)])

    def nsm(rows, n=3):
        x = rng.standard_normal((rows, n)).astype(dt)
        one = lambda: 1
        return lambda: _dense.softmax_forward(x, one)
    out["nnfs softmax n=3 / element"] = slope(nsm, [(3000, 9000), (30000, 90000)])

    def nsmb(rows, n=3):
        y = rng.random((rows, n)).astype(dt); d = rng.standard_normal((rows, n)).astype(dt)
        one = lambda: 1
        return lambda: _dense.softmax_backward(y, d, one)
    out["nnfs softmax backward n=3 / element"] = slope(nsmb, [(3000, 9000), (30000, 90000)])
    return out


def main():
    print("uptime:", open("/proc/loadavg").read().strip())
    for isa in _cpu.supported_isas():
        _cpu.set_isa(isa)
        for dt in (np.float64, np.float32):
            print("\n== ISA %s, %s (ns per unit; total ns at the larger size)" % (isa, np.dtype(dt).name))
            for name, (ns, total) in cases(dt).items():
                print("  %-42s %8.4f   (%7.0f ns)" % (name, ns, total))
    _cpu.set_isa(None)




def workloads():
    """The benchmark workloads whose regions the estimates must get right."""
    from fastnn.nets import TwoLayerNet, MultiLayerNet, MultiLayerNetExtend
    from fastnn.optimizer import SGD
    from fastnn.datasets import load_mnist
    (x, t), _ = load_mnist(normalize=True, flatten=True, one_hot_label=False, sample=True)
    xb, tb = x[:100].astype(np.float64), t[:100]
    np.random.seed(0)
    net = TwoLayerNet(784, 50, 10)
    sgd = SGD(lr=0.1)
    mln = MultiLayerNet(784, [100, 100], 10, activation="relu")
    mlx = MultiLayerNetExtend(784, [100, 100], 10, use_dropout=True, dropout_ration=0.2,
                              use_batchnorm=True)
    rng = np.random.default_rng(0)
    a = rng.random((100, 784)); W = rng.random((784, 50)); b = rng.random(50)
    s = rng.standard_normal((10000, 10)); g = rng.standard_normal((300, 300))
    return {
        "train step 784-50-10": lambda: sgd.update(net.params, net.gradient(xb, tb)),
        "MultiLayerNet gradient": lambda: mln.gradient(xb, tb),
        "MultiLayerNetExtend gradient": lambda: mlx.gradient(xb, tb),
        "affine 100x784x50": lambda: F.affine(a, W, b),
        "softmax (10000, 10)": lambda: F.softmax(s),
        "sigmoid (300, 300)": lambda: F.sigmoid(g),
        "numerical_gradient 784-50-10": lambda: net.numerical_gradient(xb, tb),
    }


def check():
    """For each workload, run its eligible regions on one thread (a long back-off) and
    report each region's measured wall time / estimate (1.0 = the estimate is right):
    median over the runs, per region (told apart by their estimates)."""
    from fastnn._kernels import _openmp
    print("uptime:", open("/proc/loadavg").read().strip())
    for name, f in workloads().items():
        f()
        ratios = {}
        for _ in range(10 if "numerical" in name else 100):
            _openmp.reset_policy_state()
            _openmp.back_off_for(1e6)
            f()
            for team, est, wall in _openmp.policy_state()["recent"]:
                ratios.setdefault(est, []).append(wall / est)
        print("  %-32s %s" % (name, "  ".join("%.0fus:%.2f" % (est / 1e3, np.median(r))
                                             for est, r in sorted(ratios.items()))))
    _openmp.reset_policy_state()


if __name__ == "__main__":
    check() if "--check" in sys.argv else main()
