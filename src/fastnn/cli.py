"""The ``fastnn`` command: ``fastnn check`` (build + kernel self-check)."""
import argparse
import sys

import numpy as np


def _check(args):
    """Print how this build was made and compare every kernel with NumPy on random data."""
    import fastnn
    from fastnn import functions as F
    from fastnn._kernels._affine import gemm_isa

    print("fastnn %s" % fastnn.__version__)
    print("  OpenMP:  %s" % ("yes" if fastnn.openmp_enabled() else "no (serial build)"))
    print("  threads: %d" % fastnn.get_num_threads())
    print("  GEMM:    %s micro-kernel" % gemm_isa())
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


def build_parser():
    parser = argparse.ArgumentParser(prog="fastnn", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("check", help="print the build and check every kernel against NumPy")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=_check)
    return parser


def main(argv=None):
    args = build_parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
