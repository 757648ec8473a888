"""The ``fastnn`` command.

``fastnn train``  trains the book's net (by default the seed's run: 784-100-10 sigmoid,
                  numerical gradients, one image per step, 100 steps, lr 0.1) on the real
                  MNIST sample bundled with fastnn, and times it against the NumPy reference.
``fastnn bench``  the speed report: fastnn against the books' NumPy code, as a table.
``fastnn check``  how this build was made, and every kernel compared with NumPy.
"""
import argparse
import json
import math
import os
import platform
import signal
import sys
import tempfile
import time

import numpy as np


# --- fastnn check -----------------------------------------------------------------------

def _check(args):
    """Print how this build was made and compare every kernel with NumPy on random data."""
    import fastnn
    from fastnn import functions as F
    from fastnn._kernels._cpu import get_isa

    print("fastnn %s" % fastnn.__version__)
    print("  OpenMP:  %s" % ("yes" if fastnn.openmp_enabled() else "no (serial build)"))
    print("  threads: %d" % fastnn.get_num_threads())
    print("  ISA:     %s kernels" % get_isa())
    rng = np.random.default_rng(args.seed)
    failures = 0

    def report(name, got, want, rtol):
        nonlocal failures
        err = float(np.max(np.abs(np.asarray(got, np.float64) - want) / (np.abs(want) + 1e-30)))
        ok = err <= rtol
        failures += not ok
        print("  %-34s %-9s max rel err %.1e" % (name, "ok" if ok else "MISMATCH", err))

    for dt, rtol in ((np.float64, 1e-12), (np.float32, 1e-5)):
        x = rng.standard_normal((100, 784)).astype(dt)
        W = rng.standard_normal((784, 50)).astype(dt)
        b = rng.standard_normal(50).astype(dt)
        want = x.astype(np.float64) @ W.astype(np.float64) + b
        scale = np.abs(x.astype(np.float64)) @ np.abs(W.astype(np.float64)) + np.abs(b)
        got = F.affine(x, W, b)
        err = float(np.max(np.abs(got - want) / scale))
        failures += err > rtol
        print("  %-34s %-9s max rel err %.1e" % ("affine %s" % np.dtype(dt).name,
                                                 "ok" if err <= rtol else "MISMATCH", err))
        s = (rng.standard_normal((1000, 10)) * 5).astype(dt)
        t = rng.integers(0, 10, 1000)
        s64 = s.astype(np.float64)
        e = np.exp(s64 - s64.max(axis=1, keepdims=True))
        p = e / e.sum(axis=1, keepdims=True)
        report("softmax %s" % np.dtype(dt).name, F.softmax(s), p, rtol)
        ce = -np.mean(np.log(p[np.arange(1000), t] + 1e-7))
        report("cross_entropy_error %s" % np.dtype(dt).name, F.cross_entropy_error(p.astype(dt), t), ce, rtol)
        report("softmax_loss %s" % np.dtype(dt).name, F.softmax_loss(s, t), ce, rtol)
        report("sigmoid %s" % np.dtype(dt).name, F.sigmoid(s), 1 / (1 + np.exp(-s64)), rtol)
    print("all kernels agree with NumPy" if not failures else "%d kernel(s) disagree" % failures)
    return 1 if failures else 0


# --- shared helpers ---------------------------------------------------------------------

class UsageError(Exception):
    """A bad option combination: reported as ``fastnn <cmd>: error: ...``, exit status 2."""


def _fmt_time(s):
    if s >= 120:
        return "%.1f min" % (s / 60)
    if s >= 1:
        return "%.2f s" % s
    if s >= 1e-3:
        return "%.2f ms" % (s * 1e3)
    return "%.1f us" % (s * 1e6)


def _speedup(ref, fast):
    r = ref / fast
    if r >= 10:
        return "%.0fx faster" % r
    if r >= 1:
        return "%.1fx faster" % r
    return "%.1fx slower" % (1 / r)


def _machine():
    """CPU model name, logical CPU count."""
    name = None
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.lower().startswith("model name"):
                    name = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    if not name and sys.platform == "darwin":
        try:
            import subprocess
            name = subprocess.run(["sysctl", "-n", "machdep.cpu.brand_string"],
                                  capture_output=True, text=True, timeout=5).stdout.strip()
        except Exception:  # noqa: BLE001 - best effort
            name = None
    name = name or platform.processor() or platform.machine() or "unknown CPU"
    try:
        cpus = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cpus = os.cpu_count() or 1
    return name, cpus


def _blas():
    """The BLAS NumPy (i.e. the reference) uses, as precisely as can be found out."""
    try:
        from threadpoolctl import threadpool_info
        for info in threadpool_info():
            if info.get("user_api") == "blas":
                return "%s %s (%s, %d threads)" % (
                    info.get("internal_api"), info.get("version") or "",
                    info.get("threading_layer", "?"), info.get("num_threads", 0))
    except Exception:  # noqa: BLE001 - optional dependency, best effort
        pass
    try:
        cfg = np.show_config(mode="dicts")
        blas = cfg["Build Dependencies"]["blas"]
        return "%s %s" % (blas.get("name", "?"), blas.get("version", ""))
    except Exception:  # noqa: BLE001
        return "unknown"


def _set_threads(n):
    import fastnn
    if n is not None:
        try:
            fastnn.set_num_threads(n)
        except (TypeError, ValueError) as e:
            raise UsageError("--threads: %s" % e) from None
    return fastnn.get_num_threads()


# --- the nets and optimizers ------------------------------------------------------------

OPTIMIZERS = ("sgd", "momentum", "nesterov", "adagrad", "rmsprop", "adam")


def _nets():
    from fastnn import nets
    return nets.TwoLayerNet, nets.MultiLayerNet


def _make_optimizer(name, lr):
    from fastnn import optimizer as O
    cls = {"sgd": O.SGD, "momentum": O.Momentum, "nesterov": O.Nesterov,
           "adagrad": O.AdaGrad, "rmsprop": O.RMSprop, "adam": O.Adam}[name]
    return cls(lr=lr)


def _arch(args, input_size, output_size):
    """Net description (a JSON-able dict) from the command-line options."""
    hidden = args.hidden
    if len(hidden) == 1 and args.layers > 1:
        hidden = hidden * args.layers
    elif len(hidden) > 1 and args.layers not in (1, len(hidden)):
        raise UsageError("--layers %d does not match --hidden %s"
                         % (args.layers, ",".join(map(str, hidden))))
    if len(hidden) == 1 and args.activation == "sigmoid":
        return {"net": "TwoLayerNet", "input_size": input_size, "hidden_size": hidden[0],
                "output_size": output_size}
    return {"net": "MultiLayerNet", "input_size": input_size, "hidden_size_list": hidden,
            "output_size": output_size, "activation": args.activation}


def _sizes(arch):
    h = [arch["hidden_size"]] if arch["net"] == "TwoLayerNet" else arch["hidden_size_list"]
    return [arch["input_size"]] + list(h) + [arch["output_size"]]


def _describe(arch):
    act = "sigmoid" if arch["net"] == "TwoLayerNet" else arch["activation"]
    return "%s %s %s" % (arch["net"], "-".join(map(str, _sizes(arch))), act)


def _build(arch, module=None):
    """A net of this architecture: fastnn's (module=None) or the NumPy reference's."""
    if module is None:
        TwoLayerNet, MultiLayerNet = _nets()
    else:
        TwoLayerNet, MultiLayerNet = module.TwoLayerNet, module.MultiLayerNet
    if arch["net"] == "TwoLayerNet":
        return TwoLayerNet(arch["input_size"], arch["hidden_size"], arch["output_size"],
                           weight_init_std=0.01)
    return MultiLayerNet(arch["input_size"], arch["hidden_size_list"], arch["output_size"],
                         activation=arch["activation"], weight_init_std=arch["activation"])


def save_params(path, params, meta):
    """Write params and a JSON description to ``path`` (.npz), atomically."""
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=".fastnn-", suffix=".npz.part", dir=folder)
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez(f, __fastnn__=np.array(json.dumps(meta)),
                     **{k: np.asarray(v) for k, v in params.items()})
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)  # the old file stays whole until the new one is complete
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def load_params(path):
    """(params dict, meta dict) from a file written by ``fastnn train --save``."""
    try:
        with np.load(path, allow_pickle=False) as z:
            if "__fastnn__" not in z.files:
                raise UsageError("--load %s: not a file written by fastnn train --save "
                                 "(no __fastnn__ entry)" % path)
            meta = json.loads(str(z["__fastnn__"]))
            params = {k: z[k].copy() for k in z.files if k != "__fastnn__"}
    except (OSError, ValueError) as e:
        raise UsageError("--load %s: %s" % (path, e)) from None
    return params, meta


# --- data -------------------------------------------------------------------------------

def _load_data(args):
    """(x_train, t_train, x_test, t_test, description)."""
    from fastnn import datasets
    if args.data in ("sample", "mnist"):
        try:
            (x, t), (xt, tt) = datasets.load_mnist(normalize=True, flatten=True,
                                                   one_hot_label=False,
                                                   sample=args.data == "sample")
        except datasets.MNISTNotAvailableError as e:
            raise UsageError("%s\n(--data sample trains on the bundled MNIST sample)" % e) from None
        what = ("the MNIST sample bundled with fastnn" if args.data == "sample" else "MNIST")
        return x, t, xt, tt, "%s: %d training, %d held-out test images" % (what, len(x), len(xt))
    # nnfs spiral: 3 classes, 100 points each; a second draw is the held-out set
    x, t = datasets.spiral_data(100, 3, seed=args.seed)
    xt, tt = datasets.spiral_data(100, 3, seed=args.seed + 1)
    return x, t, xt, tt, "nnfs spiral data: %d training, %d held-out points, 3 classes" % (
        len(x), len(xt))


# --- progress ---------------------------------------------------------------------------

class _Bar:
    """Progress bar with the loss, on stderr: redrawn in place on a terminal, otherwise a
    line every tenth of the run."""

    def __init__(self, total, stream=None):
        self.total, self.stream = total, stream or sys.stderr
        self.tty = hasattr(self.stream, "isatty") and self.stream.isatty()
        self.last_draw, self.next_line = 0.0, 0

    def update(self, step, loss, step_time, force=False):
        frac = step / self.total if self.total else 1.0
        if self.tty:
            now = time.monotonic()
            if not force and now - self.last_draw < 0.1 and step < self.total:
                return
            self.last_draw = now
            n = int(30 * frac)
            self.stream.write("\r[%s%s] %d/%d  loss %.4f  %s/step " % (
                "#" * n, "-" * (30 - n), step, self.total, loss, _fmt_time(step_time)))
            if step >= self.total:
                self.stream.write("\n")
            self.stream.flush()
        elif force or step >= self.next_line or step >= self.total:
            self.next_line = step + max(1, self.total // 10)
            self.stream.write("  step %*d/%d  loss %.4f  %s/step\n" % (
                len(str(self.total)), step, self.total, loss, _fmt_time(step_time)))
            self.stream.flush()

    def close(self):
        if self.tty:
            self.stream.write("\n")
            self.stream.flush()


# --- fastnn train -----------------------------------------------------------------------

def _accuracy(net, x, t, chunk=2000):
    hits = 0
    for i in range(0, len(x), chunk):
        hits += net.accuracy(x[i:i + chunk], t[i:i + chunk]) * len(x[i:i + chunk])
    return hits / len(x)


def _reference_step(arch, params, x, t, gradient, budget):
    """Seconds for one step of the book's NumPy code; (seconds, note)."""
    from fastnn import _reference_numpy as R
    state = np.random.get_state()
    try:
        net = _build(arch, R)
    finally:
        np.random.set_state(state)  # building the reference must not shift the run's draws
    for k, v in params.items():
        net.params[k][...] = v
    x = np.ascontiguousarray(x)
    if gradient == "backprop":
        times, t_end = [], time.perf_counter() + min(budget, 2.0)
        while len(times) < 3 or (time.perf_counter() < t_end and len(times) < 100):
            t0 = time.perf_counter()
            net.gradient(x, t)
            times.append(time.perf_counter() - t0)
        return float(np.median(times)), "median of %d steps" % len(times)
    sec, done, total = R.time_numerical_step(net, x, t, budget_s=budget)
    if done == total:
        return sec, "measured on one step"
    return sec, "extrapolated from %d of %d parameters after %.0f s" % (done, total, budget)


def _plot(path, history, title):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    steps = np.arange(1, len(history["loss"]) + 1)
    loss = np.asarray(history["loss"])
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 4))
    ax1.plot(steps, loss, lw=0.6, alpha=0.45, label="loss (each step)")
    w = max(1, len(loss) // 20)
    if len(loss) >= w > 1:
        smooth = np.convolve(loss, np.ones(w) / w, mode="valid")
        ax1.plot(steps[w - 1:], smooth, lw=1.8, label="mean of %d steps" % w)
    ax1.set_xlabel("step")
    ax1.set_ylabel("cross-entropy loss")
    ax1.set_title("loss")
    ax1.legend()
    ax1.grid(alpha=0.3)
    ev = np.asarray(history["eval_step"])
    ax2.plot(ev, 100 * np.asarray(history["train_acc"]), "o-", ms=3, label="train")
    ax2.plot(ev, 100 * np.asarray(history["test_acc"]), "s-", ms=3, label="test (held out)")
    ax2.set_xlabel("step")
    ax2.set_ylabel("accuracy (%)")
    ax2.set_ylim(0, 100)
    ax2.set_title("accuracy")
    ax2.legend()
    ax2.grid(alpha=0.3)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _train(args):
    out = sys.stdout
    import fastnn

    if args.plot:
        try:
            import matplotlib  # noqa: F401 - only asks whether it is installed
        except ImportError:
            raise UsageError("--plot needs matplotlib, which is not installed: "
                             "pip install 'fastnn[plot]' (or pip install matplotlib)") from None
    if args.lr <= 0 or not math.isfinite(args.lr):
        raise UsageError("--lr must be a positive number, got %r" % args.lr)
    if args.batch_size < 1:
        raise UsageError("--batch-size must be at least 1, got %d" % args.batch_size)
    for opt, path in (("--save", args.save), ("--plot", args.plot)):
        if path and not os.path.isdir(os.path.dirname(os.path.abspath(path))):
            raise UsageError("%s %s: the folder %s does not exist"
                             % (opt, path, os.path.dirname(os.path.abspath(path))))
    threads = _set_threads(args.threads)
    np.random.seed(args.seed)
    x_train, t_train, x_test, t_test, data_desc = _load_data(args)
    n_in, n_out = x_train.shape[1], int(max(t_train.max(), t_test.max())) + 1

    if args.load:
        params, meta = load_params(args.load)
        arch = meta["arch"]
        if arch["input_size"] != n_in or arch["output_size"] < n_out:
            raise UsageError("--load %s: a %s net does not fit %s (%d inputs, %d classes)"
                             % (args.load, _describe(arch), args.data, n_in, n_out))
    else:
        arch = _arch(args, n_in, n_out if args.data == "spiral" else 10)
    net = _build(arch)
    if args.load:
        for k, v in params.items():
            if k not in net.params or net.params[k].shape != v.shape:
                raise UsageError("--load %s: parameter %s of shape %s does not fit %s"
                                 % (args.load, k, v.shape, _describe(arch)))
            net.params[k][...] = v  # in place: the book's layers hold these very arrays
    trained_before = meta.get("steps_done", 0) if args.load else 0

    steps = args.steps
    if args.epochs is not None:
        steps = int(math.ceil(args.epochs * len(x_train) / args.batch_size))
    if steps < 0:
        raise UsageError("--steps must be >= 0, got %d" % steps)
    optimizer = _make_optimizer(args.optimizer, args.lr)
    grad_fn = net.numerical_gradient if args.gradient == "numerical" else net.gradient

    n_eval_train = min(len(x_train), 1000)
    every = args.eval_every or max(1, steps // 10)
    print("fastnn %s train: %s, %s gradient, batch %d, %d step%s, %s lr %g"
          % (fastnn.__version__, _describe(arch), args.gradient, args.batch_size, steps,
             "" if steps == 1 else "s", args.optimizer, args.lr), file=out)
    print("data: %s" % data_desc, file=out)
    print("threads: %d (%s)%s" % (threads, "OpenMP" if fastnn.openmp_enabled() else
                                   "serial build", "; continuing from %s" % args.load
                                   if args.load else ""), file=out)
    out.flush()

    history = {"loss": [], "eval_step": [], "train_acc": [], "test_acc": []}

    def evaluate(step):
        history["eval_step"].append(step)
        history["train_acc"].append(_accuracy(net, x_train[:n_eval_train], t_train[:n_eval_train]))
        history["test_acc"].append(_accuracy(net, x_test, t_test))

    # Ctrl-C: finish the step under way, then stop (a second Ctrl-C stops at once)
    stop = {"flag": False}
    old_handler = None

    def on_sigint(signum, frame):
        stop["flag"] = True
        signal.signal(signal.SIGINT, old_handler or signal.default_int_handler)

    try:
        old_handler = signal.signal(signal.SIGINT, on_sigint)
    except ValueError:  # not the main thread
        old_handler = None

    evaluate(0)
    bar = _Bar(steps)
    step_times, grad_times = [], []
    train_size = len(x_train)
    done = 0
    t_start = time.perf_counter()
    try:
        for step in range(1, steps + 1):
            if stop["flag"]:
                break
            batch_mask = np.random.choice(train_size, args.batch_size)  # the book's sampling
            x_batch, t_batch = x_train[batch_mask], t_train[batch_mask]
            t0 = time.perf_counter()
            grads = grad_fn(x_batch, t_batch)
            t1 = time.perf_counter()
            optimizer.update(net.params, grads)
            grad_times.append(t1 - t0)
            step_times.append(time.perf_counter() - t0)
            loss = float(net.loss(x_batch, t_batch))
            history["loss"].append(loss)
            done = step
            recent = history["loss"][-10:]
            bar.update(step, sum(recent) / len(recent), float(np.median(step_times[-10:])))
            if step % every == 0 and step != steps:
                evaluate(step)
    finally:
        if old_handler is not None:
            signal.signal(signal.SIGINT, old_handler)
    total = time.perf_counter() - t_start
    interrupted = done < steps
    if interrupted:
        bar.close()
        print("interrupted: stopped cleanly after step %d of %d" % (done, steps), file=out)
    if not history["eval_step"] or history["eval_step"][-1] != done:
        evaluate(done)

    if done:
        med = float(np.median(step_times))
        print("trained %d step%s in %s (%s per step, median %s)"
              % (done, "" if done == 1 else "s", _fmt_time(total), _fmt_time(total / done),
                 _fmt_time(med)), file=out)
        k = min(10, done)
        first, last = np.mean(history["loss"][:k]), np.mean(history["loss"][-k:])
        print("loss: %.4f -> %.4f (mean of the first and last %d steps)" % (first, last, k),
              file=out)
    print("accuracy: test %.2f%% (%d held-out), train %.2f%% (%d)"
          % (100 * history["test_acc"][-1], len(x_test), 100 * history["train_acc"][-1],
             n_eval_train), file=out)
    if (done and args.data != "spiral" and history["test_acc"][-1] < 0.5
            and args.batch_size * done < 5000):
        print("(few images seen so far: %d steps of %d image%s; --gradient backprop "
              "--batch-size 100 --epochs 5 --optimizer adam --lr 0.01 reaches about 90%%)"
              % (done, args.batch_size, "" if args.batch_size == 1 else "s"), file=out)
    out.flush()

    if args.save:
        meta = {"arch": arch, "steps_done": trained_before + done, "data": args.data,
                "gradient": args.gradient, "optimizer": args.optimizer, "lr": args.lr,
                "batch_size": args.batch_size, "seed": args.seed,
                "test_accuracy": history["test_acc"][-1], "fastnn": fastnn.__version__}
        save_params(args.save, net.params, meta)
        print("saved params to %s" % args.save, file=out)
    if args.plot:
        if history["loss"]:
            _plot(args.plot, history, "fastnn train: %s, %s gradient, batch %d, %s lr %g (%s)"
                  % (_describe(arch), args.gradient, args.batch_size, args.optimizer, args.lr,
                     args.data))
            print("plot: %s" % args.plot, file=out)
        else:
            print("plot: nothing to plot (no steps were run)", file=out)
    out.flush()

    if interrupted:
        return 130
    if done and not args.no_reference:
        print("timing the NumPy reference (the book's code) on one step... "
              "(--no-reference skips this)", file=out)
        out.flush()
        limit, limit_note = _blas_limit(threads)
        with limit():
            ref, note = _reference_step(arch, net.params, x_batch, t_batch, args.gradient,
                                        args.reference_budget)
        med = float(np.median(grad_times))
        what = "numerical_gradient" if args.gradient == "numerical" else "gradient"
        print("NumPy reference (the book's %s): %s per step (%s); fastnn: %s (median) -> %s"
              % (what, _fmt_time(ref), note, _fmt_time(med), _speedup(ref, med)), file=out)
        print("the whole run: %s with fastnn, about %s with the NumPy reference (%s)"
              % (_fmt_time(total), _fmt_time(total - sum(grad_times) + ref * done),
                 limit_note), file=out)
    return 0


# --- fastnn bench -----------------------------------------------------------------------

def _timeit(fn, budget, min_rounds=3, max_rounds=1000):
    fn()  # warm up
    times, t_end = [], time.perf_counter() + budget
    while len(times) < min_rounds or (time.perf_counter() < t_end and len(times) < max_rounds):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return float(np.median(times))


def _bench_cases(quick):
    """(name, shape text, fastnn callable, reference callable or (seconds, note) factory)."""
    from fastnn import _reference_numpy as R
    from fastnn import functions as F

    rng = np.random.default_rng(0)
    cases = []
    B = 100
    x = rng.random((B, 784))
    W = rng.standard_normal((784, 100)) * 0.01
    b = rng.standard_normal(100)
    cases.append(("affine x @ W + b", "100x784 @ 784x100, float64",
                  lambda: F.affine(x, W, b), lambda: R.affine(x, W, b)))
    a = rng.standard_normal((B, 100))
    cases.append(("sigmoid", "100x100, float64", lambda: F.sigmoid(a), lambda: R.sigmoid(a)))
    s = rng.standard_normal((1000, 10)) * 3
    t = rng.integers(0, 10, 1000)
    cases.append(("softmax", "1000x10, float64", lambda: F.softmax(s), lambda: R.softmax(s)))
    p = R.softmax(s)
    cases.append(("cross_entropy_error", "1000x10 labels, float64",
                  lambda: F.cross_entropy_error(p, t), lambda: R.cross_entropy_error(p, t)))
    TwoLayerNet, MultiLayerNet = _nets()
    from fastnn.datasets import load_mnist
    (xm, tm), _ = load_mnist(sample=True)

    def pair(fast_cls, ref_cls, *a, **k):
        np.random.seed(0)
        f = fast_cls(*a, **k)
        np.random.seed(0)
        r = ref_cls(*a, **k)
        return f, r

    f2, r2 = pair(TwoLayerNet, R.TwoLayerNet, 784, 100, 10)
    cases.append(("TwoLayerNet.gradient (backprop)", "784-100-10 sigmoid, batch 100",
                  lambda: f2.gradient(xm[:100], tm[:100]),
                  lambda: r2.gradient(xm[:100], tm[:100])))
    fm, rm = pair(MultiLayerNet, R.MultiLayerNet, 784, [100] * 4, 10)
    cases.append(("MultiLayerNet.gradient (backprop)", "784-100x4-10 relu, batch 100",
                  lambda: fm.gradient(xm[:100], tm[:100]),
                  lambda: rm.gradient(xm[:100], tm[:100])))
    budget = 1.0 if quick else 15.0
    fq, rq = pair(TwoLayerNet, R.TwoLayerNet, 784, 100, 10)

    def ref_numerical():
        sec, done, total = R.time_numerical_step(rq, xm[:1], tm[:1], budget_s=budget)
        return sec, ("" if done == total else "extrapolated from %d of %d params" % (done, total))

    cases.append(("TwoLayerNet.numerical_gradient", "784-100-10 sigmoid, 1 image",
                  lambda: fq.numerical_gradient(xm[:1], tm[:1]), ref_numerical))
    fs, rs = pair(TwoLayerNet, R.TwoLayerNet, 784, 50, 10)

    def ref_numerical_batch():
        sec, done, total = R.time_numerical_step(rs, xm[:10], tm[:10], budget_s=budget)
        return sec, ("" if done == total else "extrapolated from %d of %d params" % (done, total))

    cases.append(("TwoLayerNet.numerical_gradient", "784-50-10 sigmoid, batch 10",
                  lambda: fs.numerical_gradient(xm[:10], tm[:10]), ref_numerical_batch))
    return cases


def _blas_limit(threads):
    """A factory of contexts that run NumPy's BLAS on ``threads`` threads (threadpoolctl;
    each context applies the limit when made), and a note saying so."""
    import contextlib
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        return contextlib.nullcontext, "NumPy's BLAS on its default threads"
    return (lambda: threadpool_limits(limits=threads, user_api="blas"),
            "NumPy's BLAS limited to %d thread%s like fastnn" % (threads, "" if threads == 1 else "s"))


def _bench(args):
    import fastnn
    threads = _set_threads(args.threads)
    cpu, cpus = _machine()
    budget = 0.1 if args.quick else 0.5
    blas = _blas()
    limit, limit_note = _blas_limit(threads)
    rows = []
    for name, shape, fast, ref in _bench_cases(args.quick):
        sys.stderr.write("  timing %s, %s ...\n" % (name, shape))
        sys.stderr.flush()
        tf = _timeit(fast, budget, max_rounds=50 if args.quick else 1000)
        with limit():
            if name.endswith("numerical_gradient"):
                tr, note = ref()
            else:
                tr, note = _timeit(ref, budget, max_rounds=50 if args.quick else 1000), ""
        rows.append((name, shape, tf, tr, note))
    head = [
        "fastnn %s: %s, %d logical CPU%s, %d fastnn thread%s (%s)"
        % (fastnn.__version__, cpu, cpus, "" if cpus == 1 else "s", threads,
           "" if threads == 1 else "s", "OpenMP" if fastnn.openmp_enabled() else "serial build"),
        "NumPy %s, BLAS: %s; Python %s, %s" % (np.__version__, blas,
                                             platform.python_version(), platform.system()),
        "times are medians; the reference is the books' NumPy code (fastnn._reference_numpy), "
        "run with %s" % limit_note,
    ]
    cols = ("benchmark", "shape", "fastnn", "NumPy reference", "speed-up")
    table = [(n, s, _fmt_time(a), _fmt_time(r) + (" (%s)" % note if note else ""),
              ("%.0fx" if r / a >= 10 else "%.1fx") % (r / a)) for n, s, a, r, note in rows]
    if args.markdown:
        print("\n".join(h + "  " for h in head))  # two spaces: a Markdown line break
        print()
        print("| " + " | ".join(cols) + " |")
        print("|" + "|".join(["---", "---", "---:", "---:", "---:"]) + "|")
        for r in table:
            print("| " + " | ".join(r) + " |")
    else:
        for h in head:
            print(h)
        widths = [max(len(c), *(len(r[i]) for r in table)) for i, c in enumerate(cols)]
        print("  ".join(c.ljust(w) if i < 2 else c.rjust(w)
                        for i, (c, w) in enumerate(zip(cols, widths))))
        print("  ".join("-" * w for w in widths))
        for r in table:
            print("  ".join(c.ljust(w) if i < 2 else c.rjust(w)
                            for i, (c, w) in enumerate(zip(r, widths))))
    return 0


# --- argument parsing -------------------------------------------------------------------

def _int_list(text):
    try:
        vals = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError("expected a size or a comma-separated list of sizes, "
                                         "got %r" % text) from None
    if not vals or min(vals) < 1:
        raise argparse.ArgumentTypeError("sizes must be positive integers, got %r" % text)
    return vals


def build_parser():
    parser = argparse.ArgumentParser(
        prog="fastnn", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("check", help="print the build and check every kernel against NumPy")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=_check)

    p = sub.add_parser(
        "train", help="train the book's net on real MNIST digits and time it",
        description="Train the book's net and report the loss, the accuracy on held-out "
        "images, the time, and the speed-up over the NumPy reference. The defaults are the "
        "seed prototype's run: 784-100-10 sigmoid, numerical gradients, one image per step, "
        "100 steps, lr 0.1, on the MNIST sample bundled with fastnn. Ctrl-C stops cleanly "
        "after the step under way.")
    p.add_argument("--data", choices=("sample", "mnist", "spiral"), default="sample",
                   help="sample: the bundled MNIST sample (offline); mnist: the full MNIST "
                   "(downloaded once to FASTNN_DATA or the user cache); spiral: nnfs spiral "
                   "data (default: sample)")
    p.add_argument("--gradient", choices=("numerical", "backprop"), default="numerical",
                   help="central differences, as the book's ch04, or backpropagation "
                   "(default: numerical)")
    p.add_argument("--hidden", type=_int_list, default=[100], metavar="N[,N...]",
                   help="hidden layer size, or one size per hidden layer (default: 100)")
    p.add_argument("--layers", type=int, default=1,
                   help="number of hidden layers, each --hidden wide (default: 1)")
    p.add_argument("--activation", choices=("sigmoid", "relu"), default="sigmoid",
                   help="hidden activation; one sigmoid layer is the book's TwoLayerNet, "
                   "anything else its MultiLayerNet (default: sigmoid)")
    p.add_argument("--batch-size", type=int, default=1, help="images per step (default: 1)")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--steps", type=int, default=100, help="training steps (default: 100)")
    g.add_argument("--epochs", type=float, default=None,
                   help="train for this many passes over the training set instead")
    p.add_argument("--lr", type=float, default=0.1, help="learning rate (default: 0.1)")
    p.add_argument("--optimizer", choices=OPTIMIZERS, default="sgd",
                   help="the book's optimizers (default: sgd)")
    p.add_argument("--threads", type=int, default=None,
                   help="fastnn threads (default: all; OMP_NUM_THREADS is honoured)")
    p.add_argument("--seed", type=int, default=0,
                   help="np.random.seed for the initial weights and the batches (default: 0)")
    p.add_argument("--eval-every", type=int, default=None, metavar="K",
                   help="measure accuracy every K steps (default: 10 times per run)")
    p.add_argument("--plot", metavar="FILE.png",
                   help="save loss and accuracy curves (needs matplotlib: fastnn[plot])")
    p.add_argument("--save", metavar="FILE.npz", help="save the trained params")
    p.add_argument("--load", metavar="FILE.npz",
                   help="start from params saved by --save (its net shape is used)")
    p.add_argument("--no-reference", action="store_true",
                   help="skip timing the NumPy reference (about 10 s for the default net)")
    p.add_argument("--reference-budget", type=float, default=60.0, metavar="SECONDS",
                   help="stop timing the reference after this long and extrapolate "
                   "(default: 60)")
    p.set_defaults(func=_train)

    p = sub.add_parser("bench", help="the speed report: fastnn against the NumPy reference",
                       description="Time fastnn's headline kernels and nets against the "
                       "books' NumPy code on this machine.")
    p.add_argument("--markdown", action="store_true", help="print a Markdown table")
    p.add_argument("--threads", type=int, default=None, help="fastnn threads (default: all)")
    p.add_argument("--quick", action="store_true",
                   help="shorter timings (about 1 s for the reference's numerical gradient, "
                   "extrapolated)")
    p.set_defaults(func=_bench)
    return parser


def main(argv=None):
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except UsageError as e:
        parser.exit(2, "fastnn %s: error: %s\n" % (args.command, e))
    except KeyboardInterrupt:
        sys.stderr.write("\nfastnn %s: interrupted\n" % args.command)
        return 130


if __name__ == "__main__":
    sys.exit(main())
