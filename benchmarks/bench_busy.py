"""Threads that never hurt: fastnn on 1 thread vs its default threads, on a quiet machine
and on a busy one (another process spinning on a core: ``python -c "while True: pass"``).

The goals (issue #9): busy, the default threads are at most 1.3x slower than one thread on
every workload below; quiet, they keep their speed-up where the work pays for it; and the
book's ch03 batch-inference loop (np.dot with fastnn's sigmoid/softmax between the calls)
is not slower than the same loop with the book's NumPy functions, quiet or busy.

Two ways to run it:

    # the table (quiet / busy x 1 thread / default), interleaved rounds, medians
    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE PYTHONPATH=src python benchmarks/bench_busy.py

    # the same workloads under pytest-benchmark (one group per workload)
    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE PYTHONPATH=src:tests python -m pytest \
        benchmarks/bench_busy.py --benchmark-only --benchmark-columns=median,iqr,rounds

The table is the better measurement on a shared machine: each round runs every mode of a
workload back to back (the order rotating between rounds) for ~0.15 s each (the ch03 loop:
batch by batch), and the ratios are medians of per-round ratios, so slow drifts of the
machine's load hit all modes alike. The back-off state is reset before each
workload, so its probes are in the figures. `--rounds N` (default 9), `--only SUBSTR`,
`--setups quiet,busy`.
"""
import argparse
import contextlib
import gzip
import io
import os
import pickle
import subprocess
import sys
import time

import numpy as np
import pytest

import fastnn
from fastnn import functions as F
from fastnn._kernels import _openmp

HERE = os.path.dirname(os.path.abspath(__file__))
SHARED = os.path.join(HERE, "..", "..", "shared", "data")


# ---- the workloads ------------------------------------------------------------------------

def _mnist(n):
    img = os.path.join(SHARED, "mnist", "train-images-idx3-ubyte.gz")
    lab = os.path.join(SHARED, "mnist", "train-labels-idx1-ubyte.gz")
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


def _train_step(dtype):
    from fastnn.nets import TwoLayerNet
    from fastnn.optimizer import SGD
    x, t = _mnist(100)
    np.random.seed(0)
    net = TwoLayerNet(784, 50, 10)
    for k in net.params:
        net.params[k] = net.params[k].astype(dtype)
    x = x.astype(dtype)
    sgd = SGD(lr=0.1)
    return lambda: sgd.update(net.params, net.gradient(x, t))


def _multilayer(extend):
    from fastnn.nets import MultiLayerNet, MultiLayerNetExtend
    x, t = _mnist(100)
    np.random.seed(0)
    if extend:
        net = MultiLayerNetExtend(784, [100, 100], 10, use_dropout=True, dropout_ration=0.2,
                                  use_batchnorm=True)
    else:
        net = MultiLayerNet(784, [100, 100], 10, activation="relu")
    return lambda: net.gradient(x, t)


def _numgrad():
    from fastnn.nets import TwoLayerNet
    x, t = _mnist(100)
    np.random.seed(0)
    net = TwoLayerNet(784, 50, 10)
    return lambda: net.numerical_gradient(x, t)


def _model_train():
    import fastnn.nnfs as M
    from fastnn.datasets import spiral_data
    np.random.seed(0)
    X, y = spiral_data(samples=1000, classes=3)
    model = M.Model()
    model.add(M.Layer_Dense(2, 64, weight_regularizer_l2=5e-4, bias_regularizer_l2=5e-4))
    model.add(M.Activation_ReLU())
    model.add(M.Layer_Dense(64, 3))
    model.add(M.Activation_Softmax())
    model.set(loss=M.Loss_CategoricalCrossentropy(),
              optimizer=M.Optimizer_Adam(learning_rate=0.05, decay=5e-5),
              accuracy=M.Accuracy_Categorical())
    model.finalize()

    def train():
        with contextlib.redirect_stdout(io.StringIO()):
            model.train(X, y, epochs=10, print_every=100)
    return train


def _array_call(kind, shape):
    rng = np.random.default_rng(0)
    if kind == "affine":
        x, W, b = rng.random(shape[:2]), rng.random(shape[1:]), rng.random(shape[2])
        return lambda: F.affine(x, W, b)
    a = rng.standard_normal(shape)
    f = F.softmax if kind == "softmax" else F.sigmoid
    return lambda: f(a)


def _ch03_data():
    """The book's ch03 neuralnet_mnist_batch: sample_weight.pkl (784-50-100-10 sigmoid),
    10,000 test images in batches of 100 (the real test set, or the sample repeated)."""
    from fastnn.datasets import load_mnist
    try:
        (_, _), (x, t) = load_mnist(normalize=True, flatten=True, one_hot_label=False)
    except Exception:  # noqa: BLE001 - no network / cache: the bundled sample, repeated
        (_, _), (x, t) = load_mnist(normalize=True, flatten=True, one_hot_label=False,
                                    sample=True)
        reps = -(-10000 // len(x))
        x, t = np.concatenate([x] * reps)[:10000], np.concatenate([t] * reps)[:10000]
    path = os.path.join(SHARED, "sample_weight.pkl")
    if not os.path.exists(path):
        return None
    with open(path, "rb") as f:
        net = pickle.load(f)
    return net, x, t


def _np_sigmoid(x):
    return 1 / (1 + np.exp(-x))


def _np_softmax(a):
    a = a - np.max(a, axis=-1, keepdims=True)
    e = np.exp(a)
    return e / np.sum(e, axis=-1, keepdims=True)


def _ch03(data, sigmoid, softmax):
    net, x, t = data
    W1, W2, W3 = net["W1"], net["W2"], net["W3"]
    b1, b2, b3 = net["b1"], net["b2"], net["b3"]

    def loop():
        acc = 0
        for i in range(0, len(x), 100):
            xb = x[i:i + 100]
            a1 = np.dot(xb, W1) + b1
            z1 = sigmoid(a1)
            a2 = np.dot(z1, W2) + b2
            z2 = sigmoid(a2)
            a3 = np.dot(z2, W3) + b3
            y = softmax(a3)
            acc += np.sum(np.argmax(y, axis=1) == t[i:i + 100])
        return acc / len(x)
    return loop


WORKLOADS = {
    "train step 784-50-10 b100 f64": lambda: _train_step(np.float64),
    "train step 784-50-10 b100 f32": lambda: _train_step(np.float32),
    "MultiLayerNet 784-100-100-10 gradient": lambda: _multilayer(False),
    "MultiLayerNetExtend gradient": lambda: _multilayer(True),
    "numerical_gradient 784-50-10 b100": _numgrad,
    "nnfs Model.train spiral 10 epochs": _model_train,
    "affine (100x784)@(784x50)": lambda: _array_call("affine", (100, 784, 50)),
    "softmax (10000, 10)": lambda: _array_call("softmax", (10000, 10)),
    "sigmoid (100, 100)": lambda: _array_call("sigmoid", (100, 100)),
    "sigmoid (1000, 1000)": lambda: _array_call("sigmoid", (1000, 1000)),
}
CH03 = "ch03 batch inference, 10k images"


# ---- the busy machine ------------------------------------------------------------------

@contextlib.contextmanager
def spinner(on=True):
    """Another process spinning on a core while the block runs (the issue's reproducer)."""
    if not on:
        yield
        return
    p = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    time.sleep(0.3)
    try:
        yield
    finally:
        p.kill()
        p.wait()


@contextlib.contextmanager
def threads(n):
    fastnn.set_num_threads(n)
    try:
        yield
    finally:
        fastnn.set_num_threads(None)


# ---- pytest-benchmark -------------------------------------------------------------------

@pytest.fixture(scope="module", params=["quiet", "busy"])
def machine(request):
    with spinner(request.param == "busy"):
        yield request.param


@pytest.mark.parametrize("n_threads", [1, None], ids=["1thread", "default"])
@pytest.mark.parametrize("name", list(WORKLOADS))
def test_busy(benchmark, machine, name, n_threads):
    benchmark.group = name
    f = WORKLOADS[name]()
    with threads(n_threads):
        f()
        benchmark(f)


@pytest.mark.parametrize("impl", ["numpy", "fastnn-1thread", "fastnn-default"])
def test_ch03(benchmark, machine, impl):
    data = _ch03_data()
    if data is None:
        pytest.skip("no sample_weight.pkl in ../shared/data")
    benchmark.group = CH03
    if impl == "numpy":
        f, n = _ch03(data, _np_sigmoid, _np_softmax), None
    else:
        f, n = _ch03(data, F.sigmoid, F.softmax), (1 if impl.endswith("1thread") else None)
    with threads(n):
        f()
        benchmark.pedantic(f, rounds=7, iterations=1)


# ---- the interleaved table ----------------------------------------------------------------

def _block(f, seconds, min_calls=3):
    times = []
    t_end = time.perf_counter() + seconds
    while len(times) < min_calls or time.perf_counter() < t_end:
        t0 = time.perf_counter()
        f()
        times.append(time.perf_counter() - t0)
    return times


def measure(modes, rounds, seconds=0.15, min_calls=3):
    """modes: name -> (callable, n_threads). Interleaved rounds (the order rotating), each
    mode run for `seconds` per round. Returns per mode the median time of one call, and
    per pair of modes "a/b" the median over rounds of the ratio of the rounds' medians
    (paired within a round, so the machine's drifting load cancels out)."""
    times = {m: [] for m in modes}
    per_round = {m: [] for m in modes}
    for m, (f, n) in modes.items():
        with threads(n):
            f()
    names = list(modes)
    for r in range(rounds):
        k = r % len(names)
        for m in names[k:] + names[:k]:
            f, n = modes[m]
            with threads(n):
                t = _block(f, seconds, min_calls)
            times[m] += t
            per_round[m].append(np.median(t))
    out = {m: float(np.median(v)) for m, v in times.items()}
    for a in names:
        for b in names:
            if a != b:
                out[a + "/" + b] = float(np.median(np.array(per_round[a]) / per_round[b]))
    return out


def measure_ch03(data, rounds):
    """The ch03 loop with three pairs of functions, interleaved BATCH BY BATCH (the order
    rotating): NumPy's sigmoid/softmax, fastnn's on 1 thread, fastnn's on its default
    threads. The loop's time is mostly np.dot, whose OpenBLAS threads wait on a busy
    machine for milliseconds at random, so whole loops of different modes are not
    comparable; batch-level interleaving gives every mode the same machine. Returns the
    median over rounds of each mode's time per 10,000 images, the medians of the paired
    per-round ratios, the time spent inside sigmoid+softmax per 10,000 images, and the
    typical loop ("typical <mode>": the median batch's time x the batches, which those
    random waits do not move) with its ratios ("typical a/b")."""
    net, x, t = data
    W1, W2, W3, b1, b2, b3 = (net[k] for k in ("W1", "W2", "W3", "b1", "b2", "b3"))
    modes = {"numpy": (_np_sigmoid, _np_softmax, None), "1": (F.sigmoid, F.softmax, 1),
             "default": (F.sigmoid, F.softmax, None)}
    names = list(modes)
    total = {m: [] for m in names}
    inside = {m: 0.0 for m in names}
    batches = {m: [] for m in names}
    for r in range(rounds):
        loop = {m: 0.0 for m in names}
        for j, i in enumerate(range(0, len(x), 100)):
            xb = x[i:i + 100]
            k = (j + r) % len(names)
            for m in names[k:] + names[:k]:
                sig, sm, n = modes[m]
                fastnn.set_num_threads(n)
                t0 = time.perf_counter()
                a1 = np.dot(xb, W1) + b1
                t1 = time.perf_counter()
                z1 = sig(a1)
                t2 = time.perf_counter()
                a2 = np.dot(z1, W2) + b2
                t3 = time.perf_counter()
                z2 = sig(a2)
                t4 = time.perf_counter()
                a3 = np.dot(z2, W3) + b3
                t5 = time.perf_counter()
                y = sm(a3)
                t6 = time.perf_counter()
                loop[m] += t6 - t0
                batches[m].append(t6 - t0)
                inside[m] += (t2 - t1) + (t4 - t3) + (t6 - t5)
                np.argmax(y, axis=1)
        fastnn.set_num_threads(None)
        for m in names:
            total[m].append(loop[m] * 10000 / len(x))
    out = {m: float(np.median(v)) for m, v in total.items()}
    for a in names:
        for b in names:
            if a != b:
                out[a + "/" + b] = float(np.median(np.array(total[a]) / total[b]))
    out.update({"inside " + m: inside[m] / rounds * 10000 / len(x) for m in names})
    typical = {m: float(np.median(v)) * 10000 / 100 for m, v in batches.items()}
    out.update({"typical " + m: v for m, v in typical.items()})
    out.update({"typical %s/%s" % (a, b): typical[a] / typical[b]
                for a in names for b in names if a != b})
    return out


def _fmt(s):
    return "%.3g ms" % (s * 1e3) if s >= 1e-3 else "%.3g us" % (s * 1e6)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=9)
    ap.add_argument("--only", default="")
    ap.add_argument("--setups", default="quiet,busy")
    args = ap.parse_args(argv)
    print("fastnn %s, %d threads by default, ISA %s; load average: %s"
          % (fastnn.__version__, fastnn.get_num_threads(),
             __import__("fastnn._kernels._cpu", fromlist=["x"]).get_isa(),
             open("/proc/loadavg").read().split()[:3] if os.path.exists("/proc/loadavg") else "?"))
    results = {}
    data = _ch03_data()
    for setup in args.setups.split(","):
        with spinner(setup == "busy"):
            for name, make in WORKLOADS.items():
                if args.only not in name:
                    continue
                f = make()
                _openmp.reset_policy_state()
                st0 = _openmp.policy_state()
                results[setup, name] = measure({"1": (f, 1), "default": (f, None)}, args.rounds)
                st = _openmp.policy_state()
                results[setup, name]["hurt"] = st["n_hurt"] - st0["n_hurt"]
                print("  %-5s %-38s 1 thread %-10s default %-10s (%.2fx; %d back-offs)"
                      % (setup, name, _fmt(results[setup, name]["1"]),
                         _fmt(results[setup, name]["default"]),
                         results[setup, name]["default/1"], results[setup, name]["hurt"]),
                      flush=True)
            if data is not None and args.only in CH03:
                time.sleep(0.2)
                _openmp.reset_policy_state()
                r = measure_ch03(data, args.rounds)
                st = _openmp.policy_state()
                results[setup, CH03] = r
                print("  %-5s %-38s numpy %s, fastnn 1 thread %s, default %s (default / numpy "
                      "%.2fx); typical loop (median batch x 100): numpy %s, fastnn default %s "
                      "(%.2fx); inside sigmoid+softmax: numpy %s, fastnn default %s; "
                      "fastnn regions with a team: %d"
                      % (setup, CH03, _fmt(r["numpy"]), _fmt(r["1"]), _fmt(r["default"]),
                         r["default/numpy"], _fmt(r["typical numpy"]),
                         _fmt(r["typical default"]), r["typical default/numpy"],
                         _fmt(r["inside numpy"]), _fmt(r["inside default"]),
                         st["n_timed"] + st["n_single"]), flush=True)
    setups = args.setups.split(",")
    print("\n| workload | " + " | ".join("%s: 1 thread | %s: default | default / 1" % (s, s)
                                          for s in setups) + " |")
    print("|---|" + "---|---|---|" * len(setups))
    for name in list(WORKLOADS) + [CH03]:
        if (setups[0], name) not in results:
            continue
        cells = []
        for s in setups:
            r = results[s, name]
            cells += [_fmt(r["1"]), _fmt(r["default"]), "%.2fx" % r["default/1"]]
        print("| %s | %s |" % (name, " | ".join(cells)))
    if (setups[0], CH03) in results:
        print("\nch03 loop with NumPy's own sigmoid/softmax: " + ", ".join(
            "%s %s (fastnn default / NumPy: %.2fx; typical loop %s vs %s: %.2fx)"
            % (s, _fmt(results[s, CH03]["numpy"]), results[s, CH03]["default/numpy"],
               _fmt(results[s, CH03]["typical default"]), _fmt(results[s, CH03]["typical numpy"]),
               results[s, CH03]["typical default/numpy"])
            for s in setups))


if __name__ == "__main__":
    main()
