"""Cases that may crash the process, each run in a child process of its own: thread
counts that would start thousands of threads (issue #11 item 1) and the allocation paths
under an address-space limit (``resource.setrlimit(RLIMIT_AS)``, as ``ulimit -v``;
issue #11 items 2-3). Each must end in the right answer or a clear error (MemoryError for
allocations) -- never a signal, an abort ("libgomp: Thread creation failed") or a hang.
"""
import os
import signal
import subprocess
import sys
import textwrap

import pytest

import fastnn

# the fastnn this process imported (an install in CI, src/ when built in place)
SRC = os.path.dirname(os.path.dirname(os.path.abspath(fastnn.__file__)))
GiB = 1 << 30


def run_child(code, as_limit=None, timeout=120):
    """Run `code` in a fresh interpreter (address space capped at `as_limit` bytes).
    Returns (returncode, output); the child prints OK <what> or ERR <type>: <message>."""
    prelude = textwrap.dedent("""
        import resource, sys, faulthandler
        faulthandler.enable()
        if %r:
            resource.setrlimit(resource.RLIMIT_AS, (%r, %r))
        import numpy as np
        import fastnn
        from fastnn import functions as F
        def report(fn):
            try:
                r = fn()
            except Exception as e:
                print("ERR %%s: %%s" %% (type(e).__name__, e)); sys.stdout.flush(); return None
            print("OK"); sys.stdout.flush(); return r
    """ % (as_limit, as_limit, as_limit))
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([SRC, os.environ.get("PYTHONPATH", "")]),
               OPENBLAS_NUM_THREADS="1")
    try:
        p = subprocess.run([sys.executable, "-c", prelude + textwrap.dedent(code)], env=env,
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=timeout)
    except subprocess.TimeoutExpired as e:
        return "timeout", (e.stdout or b"").decode("utf-8", "replace")
    return p.returncode, p.stdout.decode("utf-8", "replace")


def assert_clean(rc, out, allowed=("ValueError", "TypeError", "MemoryError")):
    how = ("killed by %s" % signal.Signals(-rc).name if isinstance(rc, int) and rc < 0
           else "timed out" if rc == "timeout" else "exit status %s" % rc)
    assert rc == 0, "the child process crashed (%s):\n%s" % (how, out[-3000:])
    for line in out.splitlines():
        if line.startswith("ERR "):
            kind = line[4:].split(":")[0]
            assert kind in allowed, "unexpected error: %s" % line
            assert "value too large to convert" not in line, line


# --- thread counts (issue #11 item 1) ---------------------------------------------------------
# Capped at 4 GiB of address space so that a kernel which really tries to start 70,000
# threads fails fast instead of filling a shared machine.

THREAD_COUNTS = [1000, 70000, 2 ** 31 - 1]
THREAD_CALLS = {
    "softmax": "F.softmax(np.random.rand(3000, 30), n_threads=%d)",
    "sigmoid": "F.sigmoid(np.random.rand(3000, 30), n_threads=%d)",
    "affine": "F.affine(np.random.rand(300, 100), np.random.rand(100, 50), np.zeros(50), n_threads=%d)",
    "softmax_loss": "F.softmax_loss(np.random.rand(3000, 30), np.zeros(3000, dtype=int), n_threads=%d)",
    "net_numerical_gradient": ("fastnn.TwoLayerNet(20, 10, 3).numerical_gradient(np.random.rand(50, 20), "
                               "np.zeros(50, dtype=int), n_threads=%d)"),
}


@pytest.mark.parametrize("n", THREAD_COUNTS)
@pytest.mark.parametrize("call", sorted(THREAD_CALLS))
def test_huge_thread_count_argument(call, n):
    rc, out = run_child("report(lambda: %s)" % (THREAD_CALLS[call] % n), as_limit=4 * GiB)
    assert_clean(rc, out)


@pytest.mark.parametrize("n", [100000, 2 ** 31 - 1])
def test_huge_set_num_threads(n):
    """fastnn.set_num_threads(100000), then any kernel call (issue #11 item 1)."""
    rc, out = run_child("""
        report(lambda: fastnn.set_num_threads(%d))
        report(lambda: F.softmax(np.random.rand(3000, 30)))
        report(lambda: fastnn.get_num_threads())
    """ % n, as_limit=4 * GiB)
    assert_clean(rc, out)


# --- allocations under an address-space limit (issue #11 items 2-3) ---------------------------

@pytest.mark.parametrize("dtype,log2_cols", [("float64", 23), ("float64", 24), ("float32", 25),
                                             ("float32", 27)])
def test_softmax_loss_many_columns_under_memory_limit(dtype, log2_cols):
    """softmax_loss of one row of 2**23..2**27 zeros: its scratch used to be 64x the columns,
    unchecked. Under a limit: MemoryError or the right answer, -log(1/C + 1e-7)."""
    C = 2 ** log2_cols
    rc, out = run_child("""
        x = np.zeros((1, %d), np.%s)
        r = report(lambda: F.softmax_loss(x, [0]))
        if r is not None:
            want = -np.log(1.0 / %d + 1e-7)
            assert abs(float(r) - want) <= 1e-4 * want, (float(r), want)
            print("value ok")
    """ % (C, dtype, C), as_limit=max(2 * GiB, 3 * C * (8 if dtype == "float64" else 4) + GiB))
    assert_clean(rc, out, allowed=("MemoryError", "ValueError"))


@pytest.mark.parametrize("limit", [0.8, 1.0])
@pytest.mark.parametrize("K", [2_000_000, 8_000_000])
def test_affine_huge_K_one_column_under_memory_limit(K, limit):
    """affine with x (12, K) and W (K, 1) float32 under a 0.8-1 GiB address-space limit used to
    segfault (issue #11 item 3): MemoryError or the right answer."""
    rc, out = run_child("""
        x = np.ones((12, %d), np.float32)
        W = np.full((%d, 1), 0.5, np.float32)
        r = report(lambda: F.affine(x, W, np.zeros(1, np.float32)))
        if r is not None:
            assert r.shape == (12, 1) and np.allclose(r, 0.5 * %d, rtol=1e-3), r[:2]
            print("value ok")
    """ % (K, K, K), as_limit=int(limit * GiB))
    assert_clean(rc, out, allowed=("MemoryError",))
