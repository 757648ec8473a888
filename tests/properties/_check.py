"""The property suite's judge: run fastnn and the reference on equal, independent copies of
the same arguments and decide whether fastnn's outcome is acceptable.

An outcome is a value or an exception. fastnn's is acceptable when (``agree``):

* mode "ref": it matches the reference -- the same value within tolerance (same shape,
  dtype, NaN/inf positions), or both raise and fastnn's error is *clear*;
* mode "raise": a documented rule says fastnn must raise (whatever the reference does),
  with a clear error;
* mode "either": a documented rule allows either the reference's value or a clear error.

A clear error is a ValueError or TypeError (an IndexError only where the reference raises
IndexError) whose message names the offending argument and is none of the internal
messages users must never see (Cython's buffer errors, NumPy's reshape errors, ...).
Arguments are never modified unless the book modifies them (``mutates=``).

Before every fastnn call a one-line description of the call is written to the file named
by $FASTNN_PROPS_TRACE (when set), so that the runner in tests/test_properties.py can
say which call a crashed process was making.
"""
import os
import re
import warnings

import numpy as np

from _gen import Labels, Recipe, build

# Messages that tell a user nothing about their mistake (issue #11, STYLE.md rule 8).
BAD_MESSAGES = (
    "No matching signature found", "Buffer dtype mismatch", "not C-contiguous",
    "not Fortran contiguous", "value too large to convert", "has no attribute",
    "Buffer has wrong number of dimensions", "only 0-dimensional arrays can be converted",
    "only length-1 arrays", "only integer scalar arrays", "cannot reshape array",
    "buffer source array is read-only", "Cannot assign to read-only memoryview",
    "Expected ndarray", "has incorrect type", "object of type 'NoneType'",
    "unhashable type", "Invalid index to scalar", "cannot convert float NaN",
    "could not broadcast", "operands could not be broadcast", "ufunc", "Cannot cast",
    "an integer is required", "'NoneType' object", "too many indices",
    "setting an array element with a sequence", "index -", "out of bounds for axis",
)

_TRACE_FD = None
_TRACE_PATH = os.environ.get("FASTNN_PROPS_TRACE")
if _TRACE_PATH:
    _TRACE_FD = os.open(_TRACE_PATH, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)


def trace(line):
    """Append `line` to the crash trace (a few bytes, one syscall) when tracing is on."""
    if _TRACE_FD is not None:
        os.write(_TRACE_FD, (line.replace("\n", " ")[:2000] + "\n").encode("utf-8", "replace"))


def describe(a):
    """A short description of an argument, for messages and the crash trace."""
    if isinstance(a, np.ndarray):
        fl = a.flags
        lay = ("C" if fl.c_contiguous else "F" if fl.f_contiguous else "strided")
        if not fl.aligned:
            lay += ",unaligned"
        if not fl.writeable:
            lay += ",readonly"
        if a.dtype.byteorder == ">":
            lay += ",big-endian"
        if any(s < 0 for s in a.strides):
            lay += ",negstride"
        return "ndarray(%s %s %s)" % (a.dtype, a.shape, lay)
    if isinstance(a, (list, tuple)):
        return "%s(len %d)" % (type(a).__name__, len(a))
    if isinstance(a, dict):
        return "{%s}" % ", ".join("%r: %s" % (k, describe(v)) for k, v in a.items())
    r = repr(a)
    return r if len(r) < 80 else r[:77] + "..."


def materialize(a):
    """A fresh, independent copy of an argument (recipes and labels are built anew)."""
    if isinstance(a, Recipe):
        return build(a)
    if isinstance(a, Labels):
        return a.build()
    if isinstance(a, np.ndarray):
        c = a.copy(order="K")
        c.setflags(write=a.flags.writeable)
        return c
    if isinstance(a, dict):
        return {k: materialize(v) for k, v in a.items()}
    return a


class Outcome:
    def __init__(self, value=None, exc=None):
        self.value, self.exc = value, exc

    def __repr__(self):
        return "raised %r" % (self.exc,) if self.exc is not None else "returned %s" % _short(self.value)


def _short(v):
    if isinstance(v, np.ndarray) and v.size > 8:
        return describe(v)
    return repr(v)


def _snapshot(a):
    if isinstance(a, np.ndarray):
        return (a.dtype, a.shape, a.tobytes(order="A") if a.dtype != object else a.tolist())
    if isinstance(a, dict):
        return {k: _snapshot(v) for k, v in a.items()}
    return None


def call(fn, args=(), kwargs=None, label=None, fast=False, mutates=()):
    """Outcome of fn(*args, **kwargs), warnings silenced, floating-point errors ignored.

    For fastnn calls (``fast=True``) the call is traced and the array arguments are
    checked to be unchanged afterwards (except positions/names in `mutates`)."""
    kwargs = kwargs or {}
    if fast:
        trace("%s(%s)" % (label or getattr(fn, "__qualname__", fn), ", ".join(
            [describe(a) for a in args] + ["%s=%s" % (k, describe(v)) for k, v in kwargs.items()])))
        snaps = {i: _snapshot(a) for i, a in enumerate(args) if i not in mutates}
        snaps.update({k: _snapshot(v) for k, v in kwargs.items() if k not in mutates})
    try:
        with warnings.catch_warnings(), np.errstate(all="ignore"):
            warnings.simplefilter("ignore")
            out = Outcome(fn(*args, **kwargs))
    except Exception as e:  # noqa: BLE001 - every exception is an outcome to judge
        out = Outcome(exc=e)
    if fast:
        for i, s in snaps.items():
            a = args[i] if isinstance(i, int) else kwargs[i]
            if s is not None:
                assert _snapshot(a) == s, "%s modified its argument %s (%s)" % (
                    label, i, describe(a))
    return out


def _names_in(msg, names):
    return [n for n in names if re.search(r"(?<![A-Za-z0-9_])%s(?![A-Za-z0-9_])" % re.escape(n), msg)]


def assert_clear_error(exc, names, ref_exc=None, context=""):
    """`exc` is a ValueError/TypeError (IndexError if the reference raised one) whose
    message names one of `names` and is not an internal message."""
    allowed = (ValueError, TypeError) + tuple(
        e for e in (IndexError, KeyError) if isinstance(ref_exc, e))
    msg = str(exc)
    where = " (%s)" % context if context else ""
    if not isinstance(exc, allowed):
        raise AssertionError("fastnn raised %s: %s%s -- expected ValueError/TypeError"
                             % (type(exc).__name__, msg, where)) from exc
    for bad in BAD_MESSAGES:
        if bad.lower() in msg.lower():
            raise AssertionError("fastnn's error message is not for users (contains %r): %s: "
                                 "%s%s" % (bad, type(exc).__name__, msg, where)) from exc
    if names and not _names_in(msg, names):
        raise AssertionError("fastnn's error message names no argument (expected one of %s): "
                             "%s: %s%s" % (list(names), type(exc).__name__, msg, where)) from exc


# --- comparing values ---------------------------------------------------------------------

def tolerance(dtype):
    """(rtol, atol) for element-wise results of a float dtype (STYLE.md rule 11)."""
    dt = np.dtype(dtype)
    if dt == np.float64:
        return 1e-12, 1e-300
    if dt == np.float32:
        return 1e-5, 1e-37
    if dt == np.float16:
        return 2e-3, 1e-3
    return 1e-12, 0.0


def assert_same(got, want, rtol=None, atol=None, what="result", check_type=True):
    """Same kind (array vs scalar), shape, dtype, NaN and signed-inf positions; finite values
    within rtol/atol (atol may be an array: a per-element error bound)."""
    if isinstance(want, (list, tuple)):
        assert isinstance(got, (list, tuple)) and len(got) == len(want), (what, got, want)
        for i, (g, w) in enumerate(zip(got, want)):
            assert_same(g, w, rtol, atol, "%s[%d]" % (what, i), check_type)
        return
    if isinstance(want, dict):
        # the same keys (their order is not compared: the book's ch04 gradient builds W2
        # before W1, and nothing in either book depends on a grads dict's order)
        assert isinstance(got, dict) and sorted(got) == sorted(want), (what, list(got), list(want))
        for k in want:
            assert_same(got[k], want[k], rtol, atol, "%s[%r]" % (what, k), check_type)
        return
    if want is None or isinstance(want, (str, bool)):
        assert got == want, (what, got, want)
        return
    g, w = np.asarray(got), np.asarray(want)
    if check_type:
        assert isinstance(got, np.ndarray) == isinstance(want, np.ndarray), (
            "%s: fastnn returned %s, the reference %s" % (what, type(got).__name__, type(want).__name__))
        assert g.dtype == w.dtype, "%s: dtype %s, the reference's is %s" % (what, g.dtype, w.dtype)
    assert g.shape == w.shape, "%s: shape %s, the reference's is %s" % (what, g.shape, w.shape)
    if w.dtype.kind not in "fc":
        assert np.array_equal(g, w), "%s differs: %s vs %s" % (what, _short(g), _short(w))
        return
    r0, a0 = tolerance(w.dtype)
    rtol = r0 if rtol is None else rtol
    atol = a0 if atol is None else atol
    g64 = g.astype(np.complex128 if w.dtype.kind == "c" else np.float64)
    w64 = w.astype(g64.dtype)
    gn, wn = np.isnan(g64), np.isnan(w64)
    if not np.array_equal(gn, wn):
        idx = np.argwhere(gn != wn)[:5].tolist()
        raise AssertionError("%s: NaN where the reference has none or vice versa at %s: fastnn %s,"
                             " reference %s" % (what, idx, g64[tuple(np.array(idx).T)] if g.ndim else g64,
                                                w64[tuple(np.array(idx).T)] if g.ndim else w64))
    gi, wi = np.isinf(g64), np.isinf(w64)
    if not (np.array_equal(gi, wi) and np.array_equal(g64[gi], w64[wi])):
        idx = np.argwhere((gi != wi) | (gi & (g64 != w64)))[:5].tolist()
        raise AssertionError("%s: inf positions/signs differ at %s (fastnn %s, reference %s)"
                             % (what, idx, g64.reshape(-1)[:0] if not g.ndim else
                                g64[tuple(np.array(idx).T)], w64[tuple(np.array(idx).T)] if g.ndim else w64))
    fin = np.isfinite(w64)
    with np.errstate(all="ignore"):
        err = np.abs(g64 - w64)
    lim = np.broadcast_to(atol, w64.shape) + rtol * np.abs(w64)
    badm = fin & ~(err <= lim)
    if badm.any():
        idx = np.argwhere(badm)[:5].tolist() if g.ndim else []
        sel = tuple(np.array(idx).T) if g.ndim else ()
        raise AssertionError("%s differs beyond tolerance (rtol %g) at %s: fastnn %s, reference "
                             "%s, bound %s" % (what, rtol, idx, g64[sel], w64[sel], lim[sel]))


def agree(fast, ref, args=(), kwargs=None, *, names, mode="ref", ref_args=None,
          ref_kwargs=None, label=None, compare=None, mutates=(), rtol=None, atol=None,
          check_type=True, ref_context=None):
    """Run `fast` and `ref` on fresh copies of the arguments and judge fastnn's outcome.

    Returns (fastnn outcome, reference outcome, fastnn's built args) for further checks.
    `ref_context`: a context manager the reference runs in (a documented rule's setting).
    """
    kwargs = kwargs or {}
    fa = [materialize(a) for a in args]
    fk = {k: materialize(v) for k, v in kwargs.items()}
    f = call(fast, fa, fk, label=label, fast=True, mutates=mutates)
    if ref is None:
        r = None
    else:
        ra = [materialize(a) for a in (args if ref_args is None else ref_args)]
        rk = {k: materialize(v) for k, v in (kwargs if ref_kwargs is None else ref_kwargs).items()}
        if ref_context is not None:  # e.g. _rules.ieee_dot()
            with ref_context:
                r = call(ref, ra, rk)
        else:
            r = call(ref, ra, rk)
    ctx = "%s: fastnn %s, reference %s" % (label, f, r)
    if mode == "raise":
        if f.exc is None:
            raise AssertionError("%s must raise a clear error here (a documented rule), but "
                                 "returned %s; the reference %s" % (label, _short(f.value), r))
        assert_clear_error(f.exc, names, r.exc if r else None, ctx)
        return f, r, fa
    if f.exc is not None and (mode == "either" or (r is not None and r.exc is not None)):
        assert_clear_error(f.exc, names, r.exc if r else None, ctx)
        return f, r, fa
    if r is not None and r.exc is not None:
        raise AssertionError("%s returned %s where the reference raised %s: %s"
                             % (label, _short(f.value), type(r.exc).__name__, r.exc))
    if f.exc is not None:
        raise AssertionError("%s raised %s: %s -- where the reference returned %s"
                             % (label, type(f.exc).__name__, f.exc, _short(r.value))) from f.exc
    if r is not None:
        if compare is not None:
            compare(f.value, r.value, rtol=rtol, atol=atol, what=label or "result")
        else:
            assert_same(f.value, r.value, rtol=rtol, atol=atol, what=label or "result",
                        check_type=check_type)
    return f, r, fa


def cases(**named):
    """``@cases(name=dict(...), ...)``: explicit example cases (issue reproducers), each a
    pytest test of its own that calls the property's check with those arguments."""
    import pytest
    return pytest.mark.parametrize("case", list(named.values()), ids=list(named))
