"""One thread-count contract for every kernel (STYLE.md rule 5).

``None`` means "all available": OpenMP's own maximum (which follows OMP_NUM_THREADS and
threadpoolctl's limits), capped by the CPUs this process may run on. Negative counts go
back from that maximum (-1 = all, -2 = all but one). 0 is an error. A build without
OpenMP always runs one thread. fastnn never calls omp_set_num_threads.
"""
import os

from ._kernels._openmp import default_threads, openmp_enabled, set_cpu_limit

__all__ = ["set_num_threads", "get_num_threads", "openmp_enabled", "resolve_n_threads"]

_OPENMP = bool(openmp_enabled())
_user_num_threads = None


def _available_cpus():
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


set_cpu_limit(_available_cpus())


def _check_int(n, what):
    if isinstance(n, bool) or not hasattr(n, "__index__"):
        raise TypeError("%s must be an integer or None, got %r" % (what, n))
    n = int(n.__index__())
    if n == 0:
        raise ValueError("%s must not be 0 (use None for all threads, -1 for all, 1 for one)" % what)
    return n


def set_num_threads(n):
    """Set the number of threads fastnn's kernels use from now on.

    Parameters
    ----------
    n : int or None
        ``None`` restores the default (OMP_NUM_THREADS / threadpoolctl / all CPUs); a
        negative number counts back from that maximum (-1 = all). 0 is an error. Results
        never depend on it; only the speed does.
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
    return n
