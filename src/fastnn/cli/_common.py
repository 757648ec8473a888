"""What the fastnn commands share: the usage error, argument checks, time formatting, and
a description of the machine (CPU, threads, the BLAS the NumPy reference runs on).

Every check here runs before any work: a bad option costs the user nothing.
"""
import argparse
import contextlib
import math
import os
import platform
import sys
import tempfile

import numpy as np

MAX_SEED = 2**32 - 1  # np.random.seed takes 0 .. 2**32 - 1


class UsageError(Exception):
    """A bad option: reported as one line, ``fastnn <command>: error: ...``, exit status 2."""


# --- argument types: each names what it expects; argparse adds the option's name --------

def _number(text, kind):
    try:
        return kind(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            "expected %s, got %r" % ("an integer" if kind is int else "a number", text)) from None


def int_range(lo, hi=None, what=None):
    """An argparse type: an integer in [lo, hi]."""
    def parse(text):
        v = _number(text, int)
        if v < lo or (hi is not None and v > hi):
            raise argparse.ArgumentTypeError(
                "%s, got %s" % (what or ("must be an integer from %d to %d" % (lo, hi)
                                         if hi is not None else "must be at least %d" % lo), text))
        return v
    parse.__name__ = "integer"
    return parse


def positive_float(what="must be a positive number", most=math.inf):
    """An argparse type: a finite number > 0 and <= ``most`` (nan, inf, 0 and negatives
    are refused)."""
    def parse(text):
        v = _number(text, float)
        if not math.isfinite(v) or v <= 0 or v > most:
            raise argparse.ArgumentTypeError("%s, got %s" % (what, text))
        return v
    parse.__name__ = "number"
    return parse


def size_list(text):
    """An argparse type: a size, or comma-separated sizes (hidden layers), each >= 1."""
    try:
        vals = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError("expected a size or comma-separated sizes such as "
                                         "100,50, got %r" % text) from None
    if not vals or min(vals) < 1:
        raise argparse.ArgumentTypeError("sizes must be positive integers, got %r" % text)
    return vals


seed_type = int_range(0, MAX_SEED, "must be an integer from 0 to %d" % MAX_SEED)


def available_cpus():
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def threads_type(text):
    """An argparse type: 1 .. the CPUs this process may use, or -1 .. -CPUs (back from all)."""
    cpus = available_cpus()
    v = _number(text, int)
    if v == 0 or abs(v) > cpus:
        raise argparse.ArgumentTypeError(
            "must be 1 to %d (the CPUs this process may use), or -1 to -%d to count back "
            "from all of them, got %s" % (cpus, cpus, text))
    return v


threads_type.__name__ = "integer"


def set_threads(n):
    """Apply ``--threads`` (already range-checked); return the thread count in use."""
    import fastnn
    if n is not None:
        fastnn.set_num_threads(n)
    return fastnn.get_num_threads()


def check_writable(option, path, suffixes=None):
    """Fail now, not after training, when ``path`` cannot be written: a folder that is
    missing or not writable, a path that is a folder, or a file name not ending in one of
    ``suffixes``. Nothing is left behind."""
    path = os.fspath(path)
    if suffixes and not path.lower().endswith(tuple(suffixes)):
        raise UsageError("%s %s: the file name must end in %s"
                         % (option, path, " or ".join(suffixes)))
    if os.path.isdir(path):
        raise UsageError("%s %s: is a folder; give a file name" % (option, path))
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise UsageError("%s %s: the folder %s does not exist" % (option, path, folder))
    if os.path.exists(path) and not os.access(path, os.W_OK):
        raise UsageError("%s %s: the file exists and is not writable" % (option, path))
    try:  # the real test: create (and remove) a file in that folder
        fd, probe = tempfile.mkstemp(prefix=".fastnn-probe-", dir=folder)
        os.close(fd)
        os.unlink(probe)
    except OSError as e:
        raise UsageError("%s %s: cannot write in %s (%s)"
                         % (option, path, folder, e.strerror or e)) from None


# --- time ----------------------------------------------------------------------------------

def fmt_time(s):
    """A duration for a timing line: 4.52 ms, 17.9 s, 3.2 min."""
    if s >= 120:
        return "%.1f min" % (s / 60)
    if s >= 10:
        return "%.1f s" % s
    if s >= 1:
        return "%.2f s" % s
    for unit, scale in (("ms", 1e3), ("us", 1e6)):
        v = s * scale
        if v >= 1 or unit == "us":
            return ("%.0f %s" if v >= 100 else "%.1f %s" if v >= 10 else "%.2f %s") % (v, unit)


def fmt_long(s):
    """A long estimated duration in words: 'about 14 hours', 'about 2.3 days'."""
    if s < 120:
        return "about %s" % fmt_time(s)
    if s < 2 * 3600:
        return "about %.0f minutes" % (s / 60)
    if s < 48 * 3600:
        return "about %.0f hours" % (s / 3600) if s >= 10 * 3600 else \
            "about %.1f hours" % (s / 3600)
    return "about %.1f days" % (s / 86400)


def fmt_ratio(r):
    """A speed-up: 2,940x faster, 1.8x faster, 1.3x slower."""
    if r >= 10:
        return "{:,.0f}x faster".format(r)
    if r >= 1:
        return "%.1fx faster" % r
    return "%.1fx slower" % (1 / r)


# --- the machine -------------------------------------------------------------------------

def machine():
    """(CPU model name, logical CPUs this process may use)."""
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
    return name or platform.processor() or platform.machine() or "unknown CPU", available_cpus()


def blas():
    """The BLAS that NumPy (so the reference) uses, as precisely as can be found out."""
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
        b = cfg["Build Dependencies"]["blas"]
        return "%s %s" % (b.get("name", "?"), b.get("version", ""))
    except Exception:  # noqa: BLE001
        return "unknown"


def blas_limit(threads):
    """(a factory of contexts that run NumPy's BLAS on ``threads`` threads, a note saying
    so). Without threadpoolctl, NumPy keeps its default threads and the note says that."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        return contextlib.nullcontext, "NumPy's BLAS on its default threads"
    return (lambda: threadpool_limits(limits=threads, user_api="blas"),
            "NumPy's BLAS on %d thread%s, as fastnn" % (threads, "" if threads == 1 else "s"))


def memory_bytes():
    """Physical memory in bytes, or None when the OS does not say."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return None


def fmt_bytes(n):
    for unit, size in (("TB", 1e12), ("GB", 1e9), ("MB", 1e6)):
        if n >= size:
            return "%.1f %s" % (n / size, unit)
    return "%d bytes" % n
