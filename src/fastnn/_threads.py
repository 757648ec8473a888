"""One thread-count contract for every kernel (STYLE.md rule 5).

``None`` means "all available": OpenMP's own maximum (which follows OMP_NUM_THREADS and
threadpoolctl's limits), capped by the CPUs this process may run on. Negative counts go
back from that maximum (-1 = all, -2 = all but one). 0 is an error. A build without
OpenMP always runs one thread. fastnn never calls omp_set_num_threads.
"""
import os

from ._kernels._openmp import omp_max_threads, openmp_enabled

__all__ = ["set_num_threads", "get_num_threads", "openmp_enabled", "resolve_n_threads"]

_user_num_threads = None
_OPENMP = bool(openmp_enabled())


def _available_cpus():
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


_CPUS = None


def _max_threads():
    # omp_get_max_threads() is read on every call: threadpoolctl changes it at run time
    global _CPUS
    if not _OPENMP:
        return 1
    if _CPUS is None:
        _CPUS = _available_cpus()
    return max(1, min(omp_max_threads(), _CPUS))


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
        ``None`` restores the default (OMP_NUM_THREADS / threadpoolctl / all CPUs);
        a negative number counts back from the maximum (-1 = all).
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
            return _max_threads()
    if not _OPENMP:
        if n_threads is not None:
            _check_int(n_threads, "n_threads")
        return 1
    max_threads = _max_threads()
    if n_threads is None:
        return max_threads
    n = _check_int(n_threads, "n_threads")
    if n < 0:
        return max(1, max_threads + 1 + n)
    return n
