"""Hypothesis strategies for the property suite: shapes, values, dtypes, memory layouts,
labels and thread counts.

Arrays are drawn in two steps so that fastnn and the reference can each get their own,
identical copy: a strategy draws a *recipe* (float64 values + a dtype kind + a layout),
and ``build(recipe)`` makes a fresh array from it every time it is called. Values come
from a seeded NumPy generator (fast for 257-long axes) plus a few hypothesis-chosen
special values (NaN, +-inf, huge, subnormal, zeros) at hypothesis-chosen positions, so a
failing example shrinks to "seed 0, one special value" where it can.
"""
import math
from dataclasses import dataclass

import numpy as np
from hypothesis import strategies as st

from fastnn._kernels import _cpu

# --- sizes and shapes -------------------------------------------------------------------

SIZES = (0, 1, 2, 3, 7, 257)


def dim(min_size=0, max_size=257):
    """An axis length: the interesting ones (0, 1, 3, 7, 257) or a small integer."""
    fixed = [s for s in SIZES if min_size <= s <= max_size]
    return st.one_of(st.sampled_from(fixed), st.integers(min_size, min(max_size, 9)))


@st.composite
def shapes(draw, min_dims=0, max_dims=3, min_side=0, max_side=257, max_size=3000):
    """0-d .. 3-d shapes whose size stays small enough to be quick."""
    nd = draw(st.integers(min_dims, max_dims))
    shape = []
    for _ in range(nd):
        budget = max_size // max(1, math.prod(shape))
        shape.append(draw(dim(min_side, max(min_side, min(max_side, budget)))))
    return tuple(shape)


# --- values -----------------------------------------------------------------------------

SPECIALS = (math.nan, math.inf, -math.inf, 0.0, -0.0, 1e308, -1e308, 1e200, -1e200,
            3.0e38, -3.0e38, 7e4, -7e4, 1000.0, -1000.0, 5e-324, -5e-324, 2.2e-308, 1e-45,
            1e-7, -1e-7, 1.0)


@st.composite
def values(draw, shape, specials=True, scales=(1.0, 0.01, 10.0, 1e3)):
    """float64 values of `shape`: seeded normals times a scale, plus a few special values."""
    n = math.prod(shape)
    seed = draw(st.integers(0, 2 ** 32 - 1))
    scale = draw(st.sampled_from(scales))
    a = np.random.default_rng(seed).standard_normal(n) * scale
    if specials and n:
        for _ in range(draw(st.integers(0, min(n, 3)))):
            a[draw(st.integers(0, n - 1))] = draw(st.sampled_from(SPECIALS))
    return a.reshape(shape)


@st.composite
def probabilities(draw, shape, specials=True):
    """Rows that look like softmax output (non-negative, summing to 1) plus specials."""
    v = draw(values(shape, specials=False, scales=(1.0, 10.0)))
    with np.errstate(all="ignore"):
        e = np.exp(v - (v.max(axis=-1, keepdims=True) if v.size else 0))
        p = e / e.sum(axis=-1, keepdims=True) if v.size else e
    n = p.size
    if specials and n:
        flat = p.reshape(-1)
        for _ in range(draw(st.integers(0, min(n, 2)))):
            flat[draw(st.integers(0, n - 1))] = draw(st.sampled_from(
                (0.0, 1.0, math.nan, math.inf, -1e-7, -0.5, 1e-300, 1 - 1e-7)))
    return p


# --- dtypes and layouts -------------------------------------------------------------------

FLOAT_KINDS = ("float64", "float32")
ALL_KINDS = ("float64", "float32", "float16", "int64", "int32", "uint8", "bool",
             "complex128", "object", "list", "none")
LAYOUTS = ("C", "F", "strided", "negstride", "unaligned", "bigendian", "readonly",
           "broadcast")


@dataclass(frozen=True)
class Recipe:
    """How to build one argument: values (float64) -> dtype kind -> memory layout."""
    vals: np.ndarray
    kind: str = "float64"
    layout: str = "C"

    def __repr__(self):
        v = self.vals
        return "Recipe(%s %s %s%s)" % (self.kind, self.layout, v.shape,
                                      "" if v.size > 12 else " " + np.array2string(
                                          v.reshape(-1), precision=3, separator=","))


def _cast(vals, kind):
    with np.errstate(all="ignore"):
        if kind in ("float64", "float32", "float16"):
            return vals.astype(kind)
        if kind in ("int64", "int32", "uint8"):
            info = np.iinfo(kind)
            v = np.nan_to_num(np.round(vals), nan=0.0, posinf=info.max, neginf=info.min)
            return np.clip(v, info.min, info.max).astype(kind)
        if kind == "bool":
            return vals > 0
        if kind == "complex128":
            return vals + 0.5j
        if kind == "object":
            return vals.astype(object)
    raise AssertionError(kind)


def build(r):
    """A fresh array (or list / None) made from recipe `r` (see LAYOUTS)."""
    if not isinstance(r, Recipe):
        return r
    if r.kind == "none":
        return None
    if r.kind == "list":
        return r.vals.tolist()
    a = _cast(r.vals, r.kind)
    lay = r.layout
    if a.ndim == 0 and lay not in ("readonly", "bigendian", "unaligned"):
        lay = "C"
    if lay == "C":
        return a.copy()  # (np.ascontiguousarray would make a 0-d array 1-d)
    if lay == "F":
        return np.asfortranarray(a)
    if lay == "strided":
        big = np.zeros(tuple(2 * s for s in a.shape), dtype=a.dtype)
        out = big[tuple(slice(None, None, 2) for _ in a.shape)]
        out[...] = a
        return out
    if lay == "negstride":
        return np.flip(np.ascontiguousarray(np.flip(a)))
    if lay == "unaligned":
        if a.dtype == object:
            return a.copy()
        rec = np.zeros(a.shape, dtype=np.dtype([("pad", "u1"), ("v", a.dtype)], align=False))
        out = rec["v"]
        out[...] = a
        return out
    if lay == "bigendian":
        if a.dtype == object:
            return a.copy()
        return a.astype(a.dtype.newbyteorder(">"))
    if lay == "readonly":
        out = a.copy()
        out.setflags(write=False)
        return out
    if lay == "broadcast":  # 0-stride along the first axis (read-only); values change
        return np.broadcast_to(a[:1], a.shape) if a.shape[0] else a.copy()
    raise AssertionError(lay)


def recipe_values(r):
    """The values `build(r)` holds, as a float64 array (broadcast applied)."""
    b = build(r)
    return np.asarray(b if not isinstance(b, list) else np.array(b), dtype=np.float64) \
        if r.kind not in ("complex128", "object", "none") else r.vals


def arrays(shape, kinds=FLOAT_KINDS, layouts=LAYOUTS, specials=True, vals=None):
    """Recipes of `shape` (a tuple or a strategy of tuples)."""
    shape_st = shape if isinstance(shape, st.SearchStrategy) else st.just(tuple(shape))
    return shape_st.flatmap(lambda s: st.builds(
        Recipe, vals if vals is not None else values(s, specials=specials),
        st.sampled_from(kinds), st.sampled_from(layouts)))


def recipe(vals, kind="float64", layout="C"):
    return Recipe(np.asarray(vals, dtype=np.float64), kind, layout)


# --- labels ---------------------------------------------------------------------------------

LABEL_KINDS = ("int", "int32", "uint8", "list", "bool", "float", "out_of_range", "negative",
               "onehot", "onehot32", "onehot_bool", "onehot_int", "soft", "onehot_T",
               "onehot_flat", "onehot_row", "column", "count+1", "count-1", "scalar",
               "onehot_nan")


@dataclass(frozen=True)
class Labels:
    """Targets for rows x n classes: `kind` says what they are, `build` makes them."""
    kind: str
    rows: int
    n: int
    seed: int
    layout: str = "C"

    def build(self):
        rng = np.random.default_rng(self.seed)
        rows, n = self.rows, self.n
        lab = rng.integers(0, max(n, 1), size=rows)
        eye = np.eye(max(n, 1))[lab][:, :n] if rows else np.zeros((0, n))
        k = self.kind
        if k == "int":
            t = lab.astype(np.intp)
        elif k == "int32":
            t = lab.astype(np.int32)
        elif k == "uint8":
            t = lab.astype(np.uint8)
        elif k == "list":
            return lab.tolist()
        elif k == "bool":
            t = lab.astype(bool)
        elif k == "float":
            t = lab.astype(np.float64)
        elif k == "out_of_range":
            t = lab.copy()
            if rows:
                t[rng.integers(0, rows)] = n + rng.integers(0, 3)
        elif k == "negative":
            t = lab.copy()
            if rows:
                t[rng.integers(0, rows)] = -1 - rng.integers(0, max(n, 1))
        elif k == "onehot":
            t = eye
        elif k == "onehot32":
            t = eye.astype(np.float32)
        elif k == "onehot_bool":
            t = eye.astype(bool)
        elif k == "onehot_int":
            t = eye.astype(np.int64)
        elif k == "soft":
            t = rng.random((rows, n))
        elif k == "onehot_T":
            t = eye.T
        elif k == "onehot_flat":
            t = eye.reshape(-1)
        elif k == "onehot_row":
            t = eye.reshape(1, -1)
        elif k == "column":
            t = lab.reshape(-1, 1)
        elif k == "count+1":
            t = rng.integers(0, max(n, 1), size=rows + 1)
        elif k == "count-1":
            t = rng.integers(0, max(n, 1), size=max(rows - 1, 0))
        elif k == "scalar":
            t = np.intp(lab[0]) if rows else np.intp(0)
        elif k == "onehot_nan":
            t = eye.copy()
            if t.size:
                t.flat[rng.integers(0, t.size)] = np.nan
        else:
            raise AssertionError(k)
        t = np.asarray(t)
        if self.layout == "C" or t.ndim == 0:
            return t
        if self.layout == "strided":
            big = np.zeros(tuple(2 * s for s in t.shape), dtype=t.dtype)
            out = big[tuple(slice(None, None, 2) for _ in t.shape)]
            out[...] = t
            return out
        if self.layout == "readonly":
            t.setflags(write=False)
            return t
        if self.layout == "bigendian":
            return t.astype(t.dtype.newbyteorder(">")) if t.dtype.itemsize > 1 else t
        if self.layout == "F":
            return np.asfortranarray(t)
        raise AssertionError(self.layout)


def labels(rows, n, kinds=LABEL_KINDS):
    return st.builds(Labels, st.sampled_from(kinds), st.just(rows), st.just(n),
                     st.integers(0, 2 ** 16), st.sampled_from(("C", "strided", "readonly",
                                                               "bigendian", "F")))


# --- thread counts and ISA levels --------------------------------------------------------------

# In-process thread counts: valid ones, and invalid ones that must fail *before* any thread
# is made (0, non-integers, counts past C int). Counts that would really start thousands
# of threads (1000, 70000, 2**31 - 1) run in their own process: prop_isolated.py.
VALID_THREADS = (None, 1, 2, 3, -1, -2, -1000, np.int64(2), np.int32(3), 2 ** 31 - 1)
INVALID_THREADS = (0, 2.0, "2", 1.5, True, None.__class__)
# README (Threads): "A count no machine has, |n| >= 2**31, is a ValueError naming the
# argument" -- never "value too large to convert to int" (issue #11)
HUGE_THREADS = (2 ** 31, 2 ** 40, 2 ** 63, -(2 ** 31), -(2 ** 40))
THREADS = VALID_THREADS + INVALID_THREADS + HUGE_THREADS


def threads(valid_only=False):
    return st.sampled_from(VALID_THREADS if valid_only else THREADS)


def thread_rule(n):
    """What a kernel must do with n_threads=n: 'ok' (run; the same bits as 1 thread:
    positive counts are capped at the CPUs, README "Threads", so even 2**31 - 1 runs here
    without starting a thread per count; negative ones go back from the maximum, never
    below 1) or 'raise' (a ValueError/TypeError naming n_threads: 0, bools, non-integers,
    and |n| >= 2**31)."""
    if any(n is v for v in VALID_THREADS):
        return "ok"
    return "raise"


def isas():
    return st.sampled_from(_cpu.supported_isas())


class on_isa:
    """`with on_isa(level):` runs the kernels on one ISA level, then restores the old one."""

    def __init__(self, level):
        self.level = level

    def __enter__(self):
        self.old = _cpu.set_isa(self.level)

    def __exit__(self, *exc):
        _cpu.set_isa(self.old)
