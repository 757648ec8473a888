"""``fastnn train``: the book's training run, driven by the library's own pieces
(``fastnn.nets``, ``fastnn.trainer.Trainer`` and its optimizers), then timed against the
book's NumPy code.

The main job (no options): the book's ch04 training with numerical gradients, TwoLayerNet
784-50-10, batches of 100, SGD lr 0.1, until 90% accuracy on held-out images. The book
comments that line out because its NumPy code would take days; the report says how long.
``--model cnn``: the Paddle course's MNIST CNN (fastnn.nets.MnistCNN, float32, He
initialisation), backprop, SGD lr 0.01 as in the course, until 96% held-out.

Order of work: every option is checked first (numbers, paths, the --load file, memory),
then the data is loaded, then training; the result is saved and plotted before the slow
timing of the reference, so Ctrl-C there loses nothing.
"""
import math
import signal
import sys
import time

import numpy as np

from ._common import (UsageError, blas_limit, check_writable, fmt_bytes, fmt_long, fmt_ratio,
                      fmt_time, memory_bytes, set_threads)
from ._params import check_params, load_params, save_params

__all__ = ["run", "MAIN_JOB", "HALF_HOUR", "CNN_JOB"]

# the main job: the book's ch04 train_neuralnet.py with its numerical_gradient line
MAIN_JOB = dict(hidden=[50], batch_size=100, lr=0.1, target=90.0, max_steps=10000)
# the prototype's "half-hour" run: 100 SGD steps of one image each, numerical gradients
HALF_HOUR = dict(hidden=[100], batch_size=1, lr=0.1, steps=100)

DATA = {  # --data -> (inputs, classes)
    "sample": (784, 10), "mnist": (784, 10), "spiral": (2, 3)}

# --model cnn: the course's CNN (conv 20 5x5 pad 2 - relu - pool 2 - conv 20 5x5 pad 2 -
# relu - pool 2 - affine 980-10), SGD lr 0.01 as in the course, batches of 100, until 96%
# held-out; float32 (the course's dtype); He initialisation (the course framework's
# default for its convolutions), the same np.random draws as weight_init_std=0.01 would take
# the epoch checks score the training set on its first 1,000 images, as the book's ch07
# train_convnet.py does (evaluate_sample_num_per_epoch=1000), the held-out set on all
CNN_JOB = dict(batch_size=100, lr=0.01, target=96.0, max_steps=10000, train_checked=1000)
CNN_ARCH = {"net": "MnistCNN", "input_dim": [1, 28, 28], "filter_num": 20, "filter_size": 5,
            "pad": 2, "output_size": 10, "weight_init_std": "he", "dtype": "float32"}


# --- the net ---------------------------------------------------------------------------

def _arch(args):
    """The net (a JSON-able dict) that the options describe."""
    if args.model == "cnn":
        return dict(CNN_ARCH)
    hidden = args.hidden
    if len(hidden) == 1 and args.layers > 1:
        hidden = hidden * args.layers
    elif len(hidden) > 1 and args.layers not in (1, len(hidden)):
        raise UsageError("--layers %d does not match --hidden %s (%d sizes)"
                         % (args.layers, ",".join(map(str, hidden)), len(hidden)))
    n_in, n_out = DATA[args.data]
    if len(hidden) == 1 and args.activation == "sigmoid":
        return {"net": "TwoLayerNet", "input_size": n_in, "hidden_size": hidden[0],
                "output_size": n_out}
    return {"net": "MultiLayerNet", "input_size": n_in, "hidden_size_list": hidden,
            "output_size": n_out, "activation": args.activation}


def _sizes(arch):
    h = [arch["hidden_size"]] if arch["net"] == "TwoLayerNet" else arch["hidden_size_list"]
    return [arch["input_size"]] + list(h) + [arch["output_size"]]


def _cnn_sizes(arch):
    """MnistCNN: the (channels, height, width) after its two conv + pool stages."""
    C, h, w = arch["input_dim"]
    f, pad = arch["filter_size"], arch["pad"]
    for _ in range(2):
        h, w = h + 2 * pad - f + 1, w + 2 * pad - f + 1
        h, w = (h - 2) // 2 + 1, (w - 2) // 2 + 1
    return arch["filter_num"], h, w


def describe(arch):
    if arch["net"] == "MnistCNN":
        f, pad, n = arch["filter_size"], arch["pad"], arch["filter_num"]
        c, h, w = _cnn_sizes(arch)
        return "MnistCNN (2x conv %d %dx%d pad %d + pool 2, affine %d-%d, %s)" % (
            n, f, f, pad, c * h * w, arch["output_size"], arch["dtype"])
    act = "sigmoid" if arch["net"] == "TwoLayerNet" else arch["activation"]
    return "%s %s %s" % (arch["net"], "-".join(map(str, _sizes(arch))), act)


def _param_shapes(arch):
    if arch["net"] == "MnistCNN":
        n, f, C = arch["filter_num"], arch["filter_size"], arch["input_dim"][0]
        c, h, w = _cnn_sizes(arch)
        return {"W1": (n, C, f, f), "b1": (n,), "W2": (n, n, f, f), "b2": (n,),
                "W3": (c * h * w, arch["output_size"]), "b3": (arch["output_size"],)}
    sizes = _sizes(arch)
    shapes = {}
    for i in range(1, len(sizes)):
        shapes["W%d" % i] = (sizes[i - 1], sizes[i])
        shapes["b%d" % i] = (sizes[i],)
    return shapes


def build_net(arch, module=None):
    """A net of this architecture: fastnn's (``module`` None) or the NumPy reference's."""
    fastnn_net = module is None
    if module is None:
        from fastnn import nets as module
    if arch["net"] == "MnistCNN":
        net = module.MnistCNN(tuple(arch["input_dim"]), arch["filter_num"], arch["filter_size"],
                              arch["pad"], arch["output_size"], arch["weight_init_std"])
        if fastnn_net:  # the book's NumPy computes in float64 whatever it is given
            for k in net.params:
                net.params[k] = net.params[k].astype(arch["dtype"])
        return net
    if arch["net"] == "TwoLayerNet":
        return module.TwoLayerNet(arch["input_size"], arch["hidden_size"], arch["output_size"],
                                  weight_init_std=0.01)
    return module.MultiLayerNet(arch["input_size"], arch["hidden_size_list"],
                                arch["output_size"], activation=arch["activation"],
                                weight_init_std=arch["activation"])


def _check_arch(arch, path, data):
    """The --load file's net must be one this command builds, for this data."""
    def bad(why):
        return UsageError("--load %s: %s" % (path, why))
    kind = arch.get("net")
    keys = {"TwoLayerNet": ("input_size", "hidden_size", "output_size"),
            "MultiLayerNet": ("input_size", "hidden_size_list", "output_size", "activation"),
            "MnistCNN": tuple(CNN_ARCH)}
    if kind not in keys or any(k not in arch for k in keys[kind]):
        raise bad("its description names no net fastnn train builds (%r)" % (kind,))
    if kind == "MnistCNN":
        if any(arch[k] != CNN_ARCH[k] for k in ("input_dim", "filter_size", "pad", "dtype")) \
                or not isinstance(arch["filter_num"], int) or arch["filter_num"] < 1 \
                or arch["output_size"] != DATA[data][1]:
            raise bad("its net description is not the course's CNN for --data %s: %r"
                      % (data, arch))
        if data == "spiral":
            raise bad("a CNN needs images (--data sample or mnist), not --data spiral")
        return
    sizes = [arch["input_size"], arch["output_size"]] + (
        [arch["hidden_size"]] if kind == "TwoLayerNet" else list(arch["hidden_size_list"]))
    if not all(isinstance(s, int) and not isinstance(s, bool) and s >= 1 for s in sizes) \
            or (kind == "MultiLayerNet" and arch["activation"] not in ("relu", "sigmoid")):
        raise bad("its net description is not valid: %r" % (arch,))
    n_in, n_out = DATA[data]
    if (arch["input_size"], arch["output_size"]) != (n_in, n_out):
        raise bad("a %s net does not fit --data %s (%d inputs, %d classes)"
                  % (describe(arch), data, n_in, n_out))


def _check_memory(arch, batch_size, option):
    """A clear error instead of a MemoryError (or the OS killing us) mid-run."""
    if arch["net"] == "MnistCNN":
        n_params = sum(int(np.prod(s)) for s in _param_shapes(arch).values())
        C, H, W = arch["input_dim"]
        # the executor's workspace: about 6 copies of the first conv's output a sample
        per_batch = 8 * 6 * batch_size * arch["filter_num"] * H * W
    else:
        sizes = _sizes(arch)
        n_params = sum(a * b + b for a, b in zip(sizes, sizes[1:]))
        # params, gradients, two optimizer states, one spare copy; float64
        per_batch = 8 * 4 * batch_size * sum(sizes)
    need = 8 * 5 * n_params + per_batch
    if per_batch > 8 * 5 * n_params:
        option = "--batch-size %d" % batch_size     # the batch's activations, not the net
    have = memory_bytes()
    if have is not None and need > 0.8 * have:
        raise UsageError("%s: a %s net needs about %s for its parameters, gradients, "
                         "optimizer state and a batch of %d samples; this machine has %s"
                         % (option, describe(arch), fmt_bytes(need), batch_size,
                            fmt_bytes(have)))


# --- the data --------------------------------------------------------------------------

def _load_data(args):
    """(x_train, t_train, x_test, t_test, description)."""
    from fastnn import datasets
    if args.data in ("sample", "mnist"):
        try:
            (x, t), (xt, tt) = datasets.load_mnist(normalize=True,
                                                   flatten=args.model != "cnn",
                                                   one_hot_label=False,
                                                   sample=args.data == "sample")
        except datasets.MNISTNotAvailableError as e:
            raise UsageError("--data mnist: %s\n(--data sample trains on the MNIST sample "
                             "bundled with fastnn)" % e) from None
        what = "the MNIST sample bundled with fastnn" if args.data == "sample" else "MNIST"
        return x, t, xt, tt, "%s: %d training images, %d held-out test images" % (
            what, len(x), len(xt))
    # the nnfs book's spiral data (chapter 14 on): 1000 points a class, a second draw of
    # 100 a class held out
    x, t = datasets.spiral_data(1000, 3, seed=args.seed)
    xt, tt = datasets.spiral_data(100, 3, seed=(args.seed + 1) % 2**32)
    return x, t, xt, tt, "the nnfs book's spiral data: %d training points, %d held-out, " \
        "3 classes" % (len(x), len(xt))


# --- timing the book's NumPy code ------------------------------------------------------

def _reference_step_time(arch, net, optimizer, lr, gradient, x, t, budget):
    """(seconds for one training step of the book's NumPy code, note)."""
    from fastnn import _reference_numpy as R
    state = np.random.get_state()
    try:
        ref = build_net(arch, R)
    finally:
        np.random.set_state(state)  # building the reference must not shift the run's draws
    for k, v in net.params.items():
        ref.params[k][...] = v
    if gradient == "numerical":  # seconds; the update and loss are nothing beside it
        sec, done, total = R.time_numerical_step(ref, x, t, budget_s=budget)
        if done == total:
            return sec, "timed here on one step"
        return sec, "timed here on {:,} of its {:,} parameters in {:.0f} s, extrapolated".format(
            done, total, budget)
    opt = R.OPTIMIZERS[optimizer](lr=lr)
    times, end = [], time.perf_counter() + min(budget, 2.0)
    while len(times) < 3 or (time.perf_counter() < end and len(times) < 200):
        t0 = time.perf_counter()
        opt.update(ref.params, ref.gradient(x, t))  # the Trainer's step, in NumPy
        ref.loss(x, t)
        times.append(time.perf_counter() - t0)
    return sum(times) / len(times), "the mean of %d steps timed here" % len(times)


# --- the run ---------------------------------------------------------------------------

class _Accuracy:
    """``net.accuracy`` that also adds up the time it takes (checks are not steps);
    ``train_checked``: the epoch checks of ``train_set`` use its first this-many images."""

    def __init__(self, net, whole_batches=False, train_set=None, train_checked=None):
        self.fn, self.seconds = net.accuracy, 0.0
        self.train_set, self.train_checked = train_set, train_checked
        if whole_batches:
            # the book's conv-net accuracy scores batches of 100 and skips a last partial
            # one: one batch of every image instead
            book = net.accuracy
            self.fn = lambda x, t: book(x, t, batch_size=max(len(x), 1))

    def __call__(self, x, t, chunk=10000, full=False):
        if not full and self.train_checked and x is self.train_set:
            x, t = x[:self.train_checked], t[:self.train_checked]
        t0 = time.perf_counter()
        hits = 0.0
        for i in range(0, len(x), chunk):  # in chunks: a 60,000-image forward pass is 0.5 GB
            hits += self.fn(x[i:i + chunk], t[i:i + chunk]) * len(x[i:i + chunk])
        self.seconds += time.perf_counter() - t0
        return hits / max(len(x), 1)


def _resolve(args):
    """Fill the defaults of the main job, the half-hour run or --model cnn; (steps, target)."""
    if args.model == "cnn":
        return _resolve_cnn(args)
    if args.gradient is None:
        args.gradient = "numerical"
    preset = HALF_HOUR if args.half_hour else MAIN_JOB
    for key in ("hidden", "batch_size", "lr"):
        if getattr(args, key) is None:
            setattr(args, key, preset[key])
    if args.layers is None:
        args.layers = 1
    if args.activation is None:
        args.activation = "sigmoid"
    target = args.target
    if args.steps is None and args.epochs is None:
        if args.half_hour:
            return HALF_HOUR["steps"], target
        return MAIN_JOB["max_steps"], MAIN_JOB["target"] if target is None else target
    return args.steps, target


def _resolve_cnn(args):
    for option, value in (("--hidden", args.hidden), ("--layers", args.layers),
                          ("--activation", args.activation)):
        if value is not None:
            raise UsageError("%s: --model cnn is the course's CNN; its layers are fixed"
                             % option)
    if args.half_hour:
        raise UsageError("--half-hour: the prototype's run is an MLP; drop --model cnn")
    if args.data == "spiral":
        raise UsageError("--data spiral: a CNN needs images (--data sample or mnist)")
    if args.gradient == "numerical":
        raise UsageError("--gradient numerical: the CNN trains by backprop (a numerical "
                         "gradient of its 21,000 parameters per step is for checking, see "
                         "MnistCNN.numerical_gradient)")
    args.gradient = "backprop"
    for key in ("batch_size", "lr"):
        if getattr(args, key) is None:
            setattr(args, key, CNN_JOB[key])
    if args.steps is None and args.epochs is None:
        return CNN_JOB["max_steps"], CNN_JOB["target"] if args.target is None else args.target
    return args.steps, args.target


def run(args):
    out = sys.stdout
    import fastnn
    from fastnn.trainer import Trainer

    # 1. every option, before any work
    if args.load and (args.hidden is not None or args.layers is not None
                      or args.activation is not None) and args.model != "cnn":
        raise UsageError("--load %s: the file gives the net's shape; drop --hidden, --layers "
                         "and --activation" % args.load)
    steps, target = _resolve(args)
    if args.save:
        check_writable("--save", args.save)
    if args.plot:
        from ._plot import check_plot_path
        check_plot_path(args.plot)
    loaded = None
    if args.load:
        params, meta = load_params(args.load)
        arch = meta["arch"]
        _check_arch(arch, args.load, args.data)
        if (arch.get("net") == "MnistCNN") != (args.model == "cnn"):
            raise UsageError("--load %s: it holds a %s; %s" % (
                args.load, arch.get("net"), "add --model cnn" if args.model != "cnn"
                else "drop --model cnn"))
        check_params(args.load, params, {k: np.empty(s) for k, s in _param_shapes(arch).items()})
        loaded = (params, meta)
    else:
        arch = _arch(args)
    _check_memory(arch, args.batch_size, "--load %s" % args.load if args.load else
                  "--model cnn" if arch["net"] == "MnistCNN" else "--hidden")
    threads = set_threads(args.threads)

    # 2. the data, the net, the Trainer
    x_train, t_train, x_test, t_test, data_desc = _load_data(args)
    if args.batch_size > len(x_train):
        raise UsageError("--batch-size %d: the training set has only %d samples"
                         % (args.batch_size, len(x_train)))
    if args.epochs is not None:
        steps = int(math.ceil(args.epochs * len(x_train) / args.batch_size))
    np.random.seed(args.seed)
    net = build_net(arch)
    if loaded:
        for k, v in loaded[0].items():
            net.params[k][...] = v  # in place: the book's layers hold these very arrays
    trained_before = int(loaded[1].get("steps_done", 0)) if loaded else 0
    cnn = arch["net"] == "MnistCNN"
    accuracy = _Accuracy(net, whole_batches=cnn, train_set=x_train,
                         train_checked=CNN_JOB["train_checked"] if cnn else None)
    net.accuracy = accuracy  # Trainer's epoch checks are timed apart from the steps
    trainer = Trainer(net, x_train, t_train, x_test, t_test, epochs=0,
                      mini_batch_size=args.batch_size, optimizer=args.optimizer,
                      optimizer_param={"lr": args.lr}, verbose=False,
                      gradient=args.gradient, progress=False)
    epoch = trainer.iter_per_epoch

    print("fastnn train: %s, %s gradients, batches of %d, %s lr %g"
          % (describe(arch), args.gradient, args.batch_size,
             "SGD" if args.optimizer == "sgd" else args.optimizer, args.lr), file=out)
    if target is not None:
        print("  until %g%% accuracy on the held-out images (checked every epoch of %g "
              "steps%s; at most %d steps)" % (target, epoch, ", and every %d steps"
                                              % args.eval_every if args.eval_every else "",
                                              steps), file=out)
    if accuracy.train_checked and len(x_train) > accuracy.train_checked:
        print("  the checks score the training set on its first %d images (the book's ch07 "
              "run does), the held-out set on all" % accuracy.train_checked, file=out)
    else:
        print("  %d step%s (%.3g epochs)" % (steps, "" if steps == 1 else "s", steps / epoch),
              file=out)
    print("  data: %s" % data_desc, file=out)
    print("  threads: %d (%s)%s" % (threads, "OpenMP" if fastnn.openmp_enabled() else
                                     "serial build", "; continuing from %s" % args.load
                                     if args.load else ""), file=out)
    out.flush()

    # 3. train: the Trainer's steps, its per-epoch accuracy checks, ours every --eval-every
    evals = []  # (step, train accuracy, held-out accuracy)
    stop = {"flag": False}
    old_handler = None

    def on_sigint(signum, frame):  # finish the step under way; a second Ctrl-C stops at once
        stop["flag"] = True
        signal.signal(signal.SIGINT, old_handler or signal.default_int_handler)

    try:
        old_handler = signal.signal(signal.SIGINT, on_sigint)
    except ValueError:  # not the main thread
        old_handler = None

    from fastnn._progress import ProgressBar
    bar = ProgressBar(steps)
    reached = None
    done = 0
    t_start = time.perf_counter()
    try:
        while done < steps and not stop["flag"]:
            n_checks = len(trainer.test_acc_list)
            trainer.train_step()
            done += 1
            if len(trainer.test_acc_list) > n_checks:
                evals.append((done, trainer.train_acc_list[-1], trainer.test_acc_list[-1]))
            elif args.eval_every and done % args.eval_every == 0:
                evals.append((done, accuracy(x_train, t_train), accuracy(x_test, t_test)))
            if target is not None and evals and evals[-1][0] == done \
                    and 100 * evals[-1][2] >= target:
                reached = done
                break
            if bar.enabled:
                recent = trainer.train_loss_list[-10:]
                bar.update(done, "loss %.4f  held-out %s  %s a step" % (
                    float(np.mean(recent)),
                    "%.1f%%" % (100 * evals[-1][2]) if evals else "-",
                    fmt_time((time.perf_counter() - t_start - accuracy.seconds) / done)))
    finally:
        bar.close()
        if old_handler is not None:
            signal.signal(signal.SIGINT, old_handler)
    wall = time.perf_counter() - t_start
    check_time, n_checks = accuracy.seconds, len(evals)
    step_time = wall - check_time  # the steps alone
    interrupted = stop["flag"] and reached is None and done < steps
    if interrupted:
        print("interrupted: stopped cleanly after step %d of %d" % (done, steps), file=out)

    # 4. the report
    if not evals or evals[-1][0] != done:
        evals.append((done, accuracy(x_train, t_train, full=True), accuracy(x_test, t_test)))
    train_acc, test_acc = evals[-1][1], evals[-1][2]
    if accuracy.train_checked and len(x_train) > accuracy.train_checked:
        train_acc = accuracy(x_train, t_train, full=True)   # the report: every image
    per_step = step_time / done if done else 0.0
    if done:
        print("trained %d step%s (%.3g epochs) in %s: %s a step%s"
              % (done, "" if done == 1 else "s", done / epoch, fmt_time(step_time),
                 fmt_time(per_step), ", and %s for %d accuracy check%s" % (
                     fmt_time(check_time), n_checks, "" if n_checks == 1 else "s")
                 if n_checks and check_time >= 0.005 else ""),
              file=out)
        losses = [float(v) for v in trainer.train_loss_list]
        k = min(10, done)
        print("loss: %.4f -> %.4f (mean of the first and last %d steps)"
              % (np.mean(losses[:k]), np.mean(losses[-k:]), k), file=out)
    goal = ""
    if target is not None:
        goal = (" (reached the %g%% target at step %d)" % (target, reached) if reached
                else " (the %g%% target not reached%s)" % (
                    target, "" if interrupted else " in %d steps" % done))
    print("accuracy: %.2f%% on the %d held-out images%s; %.2f%% on the %d training images"
          % (100 * test_acc, len(x_test), goal, 100 * train_acc, len(x_train)), file=out)
    out.flush()

    if args.save:
        meta = {"arch": arch, "steps_done": trained_before + done, "data": args.data,
                "gradient": args.gradient, "optimizer": args.optimizer, "lr": args.lr,
                "batch_size": args.batch_size, "seed": args.seed,
                "test_accuracy": test_acc, "fastnn": fastnn.__version__}
        save_params(args.save, net.params, meta)
        print("saved the params to %s" % args.save, file=out)
    if args.plot:
        from ._plot import plot_history
        plot_history(args.plot, trainer.train_loss_list, evals,
                     "fastnn train: %s, %s gradients, batches of %d, %s lr %g (%s)"
                     % (describe(arch), args.gradient, args.batch_size,
                        "SGD" if args.optimizer == "sgd" else args.optimizer, args.lr,
                        args.data), target=target)
        print("plot: %s" % args.plot, file=out)
    out.flush()
    if interrupted:
        return 130

    if (done and args.gradient == "numerical" and args.data != "spiral"
            and not args.half_hour and not args.load):
        print("the half-hour run (the prototype's 784-100-10 net, %d steps of one image): "
              "%s" % (HALF_HOUR["steps"], fmt_time(_half_hour_run(x_train, t_train,
                                                                   args.seed))), file=out)
        out.flush()

    # 5. the book's NumPy code, timed on one step of this run
    if done and not args.no_reference:
        print("timing the book's NumPy code on one step (at most %s; --no-reference "
              "skips this) ..." % fmt_time(args.reference_budget), file=out)
        out.flush()
        pick = np.random.default_rng(args.seed).choice(len(x_train), args.batch_size)
        limit, limit_note = blas_limit(threads)
        with limit():
            ref_step, note = _reference_step_time(arch, net, args.optimizer, args.lr,
                                                  args.gradient, x_train[pick], t_train[pick],
                                                  args.reference_budget)
        ref_total = ref_step * done
        print("the book's NumPy code: %s a step (%s; %s), so %s for these %d steps; "
              "fastnn: %s, %s"
              % (fmt_time(ref_step), note, limit_note, fmt_long(ref_total), done,
                 fmt_time(step_time), fmt_ratio(ref_total / step_time)), file=out)
    return 0


def _half_hour_run(x_train, t_train, seed):
    """Seconds for the prototype's run with fastnn: 784-100-10, 100 one-image steps."""
    from fastnn.nets import TwoLayerNet
    from fastnn.trainer import Trainer
    state = np.random.get_state()
    try:
        np.random.seed(seed)
        net = TwoLayerNet(784, HALF_HOUR["hidden"][0], 10)
        trainer = Trainer(net, x_train, t_train, x_train[:1], t_train[:1], epochs=0,
                          mini_batch_size=1, optimizer="sgd",
                          optimizer_param={"lr": HALF_HOUR["lr"]}, verbose=False,
                          gradient="numerical", progress=False)
        trainer.current_iter = 1  # no epoch accuracy check: the steps alone are timed
        t0 = time.perf_counter()
        for _ in range(HALF_HOUR["steps"]):
            trainer.train_step()
        return time.perf_counter() - t0
    finally:
        np.random.set_state(state)
