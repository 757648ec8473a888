"""``fastnn bench``: the benchmark cases of ``_cases`` (the same ones benchmarks/bench_cli.py
runs), fastnn against the books' NumPy code, as a table that names the CPU, the threads
and the BLAS.

Each time is a median over rounds within a small budget; the slow NumPy numerical
gradients are timed for a budget and extrapolated (``Case.reference_time``). fastnn runs
first in each case, after a pause that lets NumPy's BLAS threads stop spinning.
"""
import platform
import sys
import time

import numpy as np

from ._cases import cases
from ._common import blas, blas_limit, fmt_time, machine, set_threads

__all__ = ["run", "median_time"]


def median_time(fn, budget, min_rounds=3, max_rounds=1000):
    """Median seconds of ``fn()`` over rounds run for about ``budget`` seconds."""
    fn()  # warm up: first-touch pages, thread pools
    times, end = [], time.perf_counter() + budget
    while len(times) < min_rounds or (time.perf_counter() < end and len(times) < max_rounds):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return float(np.median(times))


def run(args):
    import fastnn
    threads = set_threads(args.threads)
    cpu, cpus = machine()
    budget = 0.1 if args.quick else 0.5
    slow_budget = 1.0 if args.quick else 15.0
    limit, limit_note = blas_limit(threads)
    rows = []
    for case in cases():
        sys.stderr.write("  timing %s ...\n" % case.group)
        sys.stderr.flush()
        time.sleep(0.2)  # NumPy's BLAS threads spin for a while after a call
        fast = median_time(case.make("fastnn"), budget)
        with limit():
            if case.slow:
                ref, note = case.reference_time(slow_budget)
            else:
                ref, note = median_time(case.make("reference"), budget), ""
        rows.append((case.name, case.shape, fast, ref, note))
    head = [
        "fastnn %s: %s, %d logical CPU%s, %d fastnn thread%s (%s)"
        % (fastnn.__version__, cpu, cpus, "" if cpus == 1 else "s", threads,
           "" if threads == 1 else "s", "OpenMP" if fastnn.openmp_enabled() else "serial build"),
        "NumPy %s, BLAS: %s; Python %s, %s" % (np.__version__, blas(),
                                             platform.python_version(), platform.system()),
        "times are medians; the reference is the books' NumPy code, run with %s"
        % limit_note,
    ]
    cols = ("benchmark", "shape", "fastnn", "NumPy reference", "speed-up")
    table = [(n, s, fmt_time(a), fmt_time(r) + (" (%s)" % note if note else ""),
              ("{:,.0f}x" if r / a >= 10 else "{:.1f}x").format(r / a))
             for n, s, a, r, note in rows]
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
