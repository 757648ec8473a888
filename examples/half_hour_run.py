"""The seed's "half-hour" run, with fastnn: a 784-100-10 sigmoid net trained by plain SGD
on NUMERICAL gradients (central differences, h = 1e-4), one MNIST image per step,
100 steps, lr 0.1. With the NumPy prototype this takes 16 to 30 minutes.

Usage: python examples/half_hour_run.py [--csv PATH] [--steps 100] [--no-reference]

The csv holds one image per line: the label, then 784 pixel values (0..255).
The reference (the prototype's own NumPy code, tests/reference.py) is timed on ONE step
in the same process, for comparison (about 10 s).
"""
import argparse
import os
import sys
import time

import numpy as np

from fastnn.compat import Threelayer_net

HERE = os.path.dirname(os.path.abspath(__file__))
DEFAULT_CSV = os.path.join(HERE, "..", "..", "shared", "data", "mnist", "mnist_train_100.csv")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--csv", default=DEFAULT_CSV, help="label,784 pixels per line")
    ap.add_argument("--steps", type=int, default=100)
    ap.add_argument("--lr", type=float, default=0.1)
    ap.add_argument("--no-reference", action="store_true", help="skip the NumPy step")
    args = ap.parse_args(argv)

    data = np.loadtxt(args.csv, delimiter=",")
    x_all = data[:, 1:] / 255.0
    t_all = data[:, 0].astype(int)

    np.random.seed(0)
    net = Threelayer_net(784, 100, 10, lr=0.01)
    net.grad(x_all[:1], t_all[:1])             # warm-up (thread pool, first-touch)
    loss_before = net.loss(x_all, t_all)
    start = time.perf_counter()
    for step in range(args.steps):
        i = step % len(x_all)
        x, t = x_all[i:i + 1], t_all[i:i + 1]
        grads = net.grad(x, t)
        for key in ("w1", "b1", "w2", "b2"):
            net.params[key] -= args.lr * grads[key]
    total = time.perf_counter() - start
    print("fastnn: %d steps in %.3f s (%.2f ms/step); loss on the %d images %.4f -> %.4f, "
          "accuracy %.2f" % (args.steps, total, 1e3 * total / args.steps, len(x_all),
                             loss_before, net.loss(x_all, t_all), net.accuracy(x_all, t_all)))

    if not args.no_reference:
        sys.path.insert(0, os.path.join(HERE, "..", "tests"))
        import reference as R
        np.random.seed(0)
        ref = R.Threelayer_net(784, 100, 10, lr=0.01)
        start = time.perf_counter()
        ref.grad(x_all[:1], t_all[:1])         # ONE step of the NumPy prototype
        ref_step = time.perf_counter() - start
        print("reference (NumPy): one step %.2f s -> %d steps would take %.1f min; "
              "fastnn is %.0fx faster per step" % (ref_step, args.steps,
                                                   ref_step * args.steps / 60,
                                                   ref_step / (total / args.steps)))


if __name__ == "__main__":
    main()
