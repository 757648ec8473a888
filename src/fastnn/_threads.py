"""One thread-count contract for every kernel (STYLE.md rule 5).

``None`` means "all available": OpenMP's own maximum (which follows OMP_NUM_THREADS and
threadpoolctl's limits), capped by the CPUs this process may run on. A positive count is
capped at those CPUs too (asking for 100 threads on 2 CPUs runs 2: more threads than
CPUs only wait for each other, and tens of thousands crash libgomp). Negative counts go
back from the maximum (-1 = all, -2 = all but one). 0 is an error, and so is a count no
thread count can be (|n| >= 2**31). A build without OpenMP always runs one thread.
fastnn never calls omp_set_num_threads, and it leaves OMP_WAIT_POLICY/GOMP_SPINCOUNT alone.

"The CPUs this process may run on": its affinity mask (sched_getaffinity, as `taskset`
sets it) and, under cgroup v2, the CPU quota (cpu.max), read once at import.

Within that count, each parallel region gets the team its work pays for, and fewer
while the machine is busy (csrc/fastnn_openmp.h describes the policy). Environment:
``FASTNN_BACKOFF=0`` turns the busy-machine back-off off, ``FASTNN_PARALLEL_MIN_NS``
sets the grain (single-thread ns of work per thread, default 30000).
"""
import contextlib
import math
import os

from ._kernels import _openmp
from ._kernels._openmp import default_threads, openmp_enabled, set_cpu_limit

__all__ = ["set_num_threads", "get_num_threads", "openmp_enabled", "resolve_n_threads"]

_OPENMP = bool(openmp_enabled())
_INT_MAX = 2**31 - 1
# tests only (exact_threads): counts up to this run as asked, even above the CPUs
_EXACT_MAX_THREADS = 8

_user_num_threads = None
_cap = 1  # positive counts are capped here (the CPUs; _EXACT_MAX_THREADS in exact mode)


def _cgroup_cpus(path="/sys/fs/cgroup/cpu.max"):
    """CPUs a cgroup v2 quota allows ("200000 100000" -> 2), or None without a quota."""
    try:
        with open(path) as f:
            quota, period = f.read().split()[:2]
        if quota == "max":
            return None
        return max(1, math.ceil(int(quota) / int(period)))
    except (OSError, ValueError):
        return None


def _available_cpus():
    try:
        n = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        n = os.cpu_count() or 1
    quota = _cgroup_cpus()
    return max(1, min(n, quota) if quota else n)


_CPUS = _available_cpus()
_cap = _CPUS
set_cpu_limit(_CPUS)


def _check_int(n, what):
    if isinstance(n, bool) or not hasattr(n, "__index__"):
        raise TypeError("%s must be an integer or None, got %r" % (what, n))
    n = int(n.__index__())
    if n == 0:
        raise ValueError("%s must not be 0 (use None or -1 for all threads, 1 for one)" % what)
    if not -_INT_MAX <= n <= _INT_MAX:
        raise ValueError("%s=%d is not a thread count: use a count from 1 up (counts above "
                         "the %d CPUs this process may use run on %d), -1 for all, or None"
                         % (what, n, _CPUS, _CPUS))
    return n


def set_num_threads(n):
    """Set the number of threads fastnn's kernels use from now on.

    Parameters
    ----------
    n : int or None
        ``None`` restores the default (OMP_NUM_THREADS / threadpoolctl / all CPUs); a
        negative number counts back from that maximum (-1 = all). Counts above the CPUs
        this process may use are capped at them. 0 is an error. Results never depend on
        it; only the speed does.
    """
    global _user_num_threads
    _user_num_threads = None if n is None else _check_int(n, "n")


def get_num_threads():
    """Number of threads the kernels will use (1 when built without OpenMP)."""
    return resolve_n_threads(None)


def resolve_n_threads(n_threads=None):
    """Resolve a kernel's ``n_threads`` argument to a positive int (see module doc)."""
    if n_threads is None:
        n_threads = _user_num_threads
        if n_threads is None:
            return default_threads()  # the common case: one C call
    n = _check_int(n_threads, "n_threads")
    if not _OPENMP:
        return 1
    if n < 0:
        return max(1, default_threads() + 1 + n)
    return n if n <= _cap else _cap


# ---- private: the policy's switches (tests and benchmarks) ----------------------------

def _env_policy():
    """Apply FASTNN_BACKOFF and FASTNN_PARALLEL_MIN_NS (read once at import)."""
    backoff = os.environ.get("FASTNN_BACKOFF", "").strip().lower()
    if backoff:
        if backoff not in ("0", "1", "false", "true", "no", "yes", "off", "on"):
            raise ValueError("FASTNN_BACKOFF must be 0 or 1, got %r" % backoff)
        _openmp.set_policy(backoff=backoff in ("1", "true", "yes", "on"))
    grain = os.environ.get("FASTNN_PARALLEL_MIN_NS", "").strip()
    if grain:
        try:
            value = float(grain)
        except ValueError:
            value = float("nan")
        if not (value > 0 and math.isfinite(value)):
            raise ValueError("FASTNN_PARALLEL_MIN_NS must be a positive number of "
                             "nanoseconds, got %r" % grain)
        _openmp.set_policy(min_ns=value)


_env_policy()


@contextlib.contextmanager
def exact_threads(max_threads=_EXACT_MAX_THREADS):
    """Tests only: inside, every parallel region runs on exactly the ``n_threads`` asked
    for (no grain, no back-off), and positive counts up to ``max_threads`` are not capped
    at the CPUs, so a 2-CPU machine can check that 1, 2 and 3 threads give the same bits."""
    global _cap
    old_cap = _cap
    old = _openmp.set_policy(exact=True)
    _cap = max(_CPUS, int(max_threads))
    try:
        yield
    finally:
        _cap = old_cap
        _openmp.set_policy(exact=old["exact"])


@contextlib.contextmanager
def thread_policy(**settings):
    """Tests and benchmarks: run with other policy settings (see _openmp.set_policy:
    min_ns, backoff, exact, backoff_min_ns, backoff_max_ns), restored afterwards."""
    old = _openmp.set_policy(**settings)
    try:
        yield
    finally:
        _openmp.set_policy(**old)
