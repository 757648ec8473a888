"""fastnn.optimizer (SGD, Momentum, Nesterov, AdaGrad, RMSprop, Adam) against
tests/reference.py over several update steps: parameters updated in place, the state
(v, h, m) keyed like params, the same bits for the same dtype.

Covers what the book allows and fastnn must not get wrong: tied weights (two keys naming
one array), overlapping views as two params (the book's result: its updates applied in
key order), strided/Fortran/big-endian params, a parameter whose dtype changes between
steps (the book keeps the state), a new key or a reshaped parameter (the book errors).
"""
import numpy as np
from hypothesis import given, strategies as st

import reference as R
from fastnn import optimizer as O

import _gen as G
from _check import assert_clear_error, assert_same, call, cases, describe

NAMES = ("SGD", "Momentum", "Nesterov", "AdaGrad", "RMSprop", "Adam")
STATE = {"Momentum": ("v",), "Nesterov": ("v",), "AdaGrad": ("h",), "RMSprop": ("h",),
         "Adam": ("m", "v")}
HYPER = {"SGD": [{}, {"lr": 0.5}], "Momentum": [{}, {"lr": 0.1, "momentum": 0.5}],
         "Nesterov": [{}, {"lr": 0.05, "momentum": 0.8}], "AdaGrad": [{}, {"lr": 0.5}],
         "RMSprop": [{}, {"lr": 0.001, "decay_rate": 0.9}],
         "Adam": [{}, {"lr": 0.01, "beta1": 0.5, "beta2": 0.9}]}
PARAM_LAYOUTS = ("C", "F", "strided", "negstride", "unaligned", "bigendian", "readonly")


def _run(opt, params, grads_seq, fast):
    """Apply the updates; an exception ends the run. Returns (outcome of the last step, step)."""
    for i, g in enumerate(grads_seq):
        out = call(opt.update, (params, g), label="%s.update step %d" % (type(opt).__name__, i),
                   fast=fast, mutates=(0,))
        if out.exc is not None:
            return out, i
    return out, len(grads_seq)


def _mixed_tolerance(params, grads):
    """Tolerance for grads of another dtype than their params, or None where only the
    outcome's structure can be compared.

    README: a gradient is rounded to its parameter's dtype and the state stays in it; the
    book mixes dtypes (a float64 grad makes float32 params' w - lr * g a float64 operation,
    rebinding rules like Momentum's v = momentum * v - lr * g turn the state into float64).
    So w - lr * g may differ by the rounding of its operands, not of its (possibly
    cancelling) result; a float64 grad beyond float32's range (or whose square is) is inf
    in fastnn's float32 state but finite in the book's float64 one (and a float32 grad's
    square overflows in the book's float32 g * g, not in fastnn); integer grads square
    in wrapping int64 arithmetic in the book's AdaGrad (h += g * g)."""
    f32 = any(r.kind == "float32" for r in list(params.values()) +
              [g for gs in grads for g in gs.values()])
    scale = 0.0
    for r in params.values():
        v = np.abs(G.recipe_values(r))
        scale = max(scale, float(v.max()) if v.size else 0.0)
    gmax = 0.0
    for gs in grads:
        for k, g in gs.items():
            v = np.abs(G.recipe_values(g))
            v = v[np.isfinite(v)]
            m = float(v.max()) if v.size else 0.0
            if params[k].kind == "float32" and g.kind in ("float64", "list") and m > 1e18:
                return None
            if g.kind == "float32" and params[k].kind == "float64" and m > 1e18:
                return None   # the book's float32 g * g overflows; fastnn squares in float64
            if g.kind == "int64" and m >= 2.0 ** 31:
                return None
            gmax = max(gmax, m)
    eps = 1.2e-7 if f32 else 2.3e-16
    return dict(rtol=2e-6, atol=8 * len(grads) * eps * (scale + max(gmax, 1.0)) + 1e-30)


def _compare_runs(name, fo, fs, ro, rs, fopt, ropt, fparams, rparams, bases=(), exact=True,
                  tol=None):
    """Both runs end the same way; then params, views' bases and state match (`tol`: for
    inexact runs, default rtol 2e-6; None from _mixed_tolerance: structure only)."""
    if ro.exc is not None or fo.exc is not None:
        assert fo.exc is not None and ro.exc is not None and fs == rs, (
            "%s: fastnn %s at step %d, the book %s at step %d" % (name, fo, fs, ro, rs))
        assert_clear_error(fo.exc, ("params", "grads"), ro.exc, "%s.update" % name)
        return
    if not exact and tol is None:
        for k in rparams:
            assert np.shape(fparams[k]) == np.shape(rparams[k]), (name, k)
        return
    tol = dict(rtol=0, atol=0) if exact else tol
    for k in rparams:
        assert_same(fparams[k], rparams[k], what="%s params[%r]" % (name, k), **tol)
    for fb, rb in bases:
        assert_same(fb, rb, what="%s: the array under the views" % name, **tol)
    for st_name in STATE.get(name, ()):
        assert_same(getattr(fopt, st_name), getattr(ropt, st_name),
                    what="%s.%s" % (name, st_name), check_type=False, **tol)
    if name == "Adam":
        assert fopt.iter == ropt.iter


@st.composite
def params_case(draw):
    n = draw(st.integers(1, 3))
    dtype = draw(st.sampled_from(("float64", "float32")))
    shapes = [draw(G.shapes(min_dims=0, max_dims=3, max_size=300)) for _ in range(n)]
    params = {"p%d" % i: G.Recipe(draw(G.values(s, specials=False)), dtype,
                                  draw(st.sampled_from(PARAM_LAYOUTS))) for i, s in enumerate(shapes)}
    steps = draw(st.integers(1, 3))
    gkinds = (dtype,) * 4 + ("float64", "float32", "int64", "list")
    grads = [{k: G.Recipe(draw(G.values(p.vals.shape, specials=draw(st.booleans()))),
                          draw(st.sampled_from(gkinds)), draw(st.sampled_from(G.LAYOUTS)))
              for k, p in params.items()} for _ in range(steps)]
    return params, grads


def check_update(name, hyper, params, grads, isa="baseline"):
    fparams = {k: G.build(v) for k, v in params.items()}
    rparams = {k: G.build(v) for k, v in params.items()}
    fopt, ropt = getattr(O, name)(**hyper), getattr(R, name)(**hyper)
    # README: array-likes are taken wherever the book needs an ndarray (its lr * grads[key]
    # fails on a list): compared with the book given np.asarray(grad)
    ro, rs = _run(ropt, rparams, [{k: np.asarray(G.build(g)) if g.kind == "list" else G.build(g)
                                   for k, g in gs.items()} for gs in grads], False)
    with G.on_isa(isa):
        fo, fs = _run(fopt, fparams, [{k: G.build(g) for k, g in gs.items()} for gs in grads], True)
    same_dtype = all(g.kind == params[k].kind for gs in grads for k, g in gs.items())
    _compare_runs(name, fo, fs, ro, rs, fopt, ropt, fparams, rparams, exact=same_dtype,
                  tol=None if same_dtype else _mixed_tolerance(params, grads))


@given(name=st.sampled_from(NAMES), which=st.integers(0, 1), case=params_case(), isa=G.isas())
def test_update(name, which, case, isa):
    check_update(name, HYPER[name][which], *case, isa=isa)


def _big(shape=(40, 30), seed=0):
    return np.random.default_rng(seed).standard_normal(shape)


@given(name=st.sampled_from(NAMES), dtype=st.sampled_from((np.float64, np.float32)),
       shape=st.sampled_from([(3,), (40, 30), (257, 7), (1000, 300)]), seed=st.integers(0, 99),
       isa=G.isas())
def test_tied_weights(name, dtype, shape, seed, isa):
    """Two keys naming the same array: the book applies both updates, in key order
    (issue #11 item 9: a data race gave nondeterministic results)."""
    base = _big(shape, seed).astype(dtype)
    g1, g2 = _big(shape, seed + 1).astype(dtype), _big(shape, seed + 2).astype(dtype)
    fb, rb = base.copy(), base.copy()
    fparams, rparams = {"W": fb, "W_tied": fb}, {"W": rb, "W_tied": rb}
    fopt, ropt = getattr(O, name)(), getattr(R, name)()
    grads = [{"W": g1, "W_tied": g2}, {"W": g2, "W_tied": g1}]
    ro, rs = _run(ropt, rparams, grads, False)
    with G.on_isa(isa):
        fo, fs = _run(fopt, fparams, grads, True)
    _compare_runs(name, fo, fs, ro, rs, fopt, ropt, fparams, rparams, bases=[(fb, rb)])


OVERLAPS = {
    "rows": lambda B: {"a": B[0:3], "b": B[1:4]},
    "whole_and_row": lambda B: {"W": B, "row": B[1]},
    "transposed": lambda B: {"W": B[:3, :3], "WT": B[:3, :3].T},
    "strided": lambda B: {"even": B[::2], "all": B},
}


@given(name=st.sampled_from(NAMES), overlap=st.sampled_from(sorted(OVERLAPS)),
       dtype=st.sampled_from((np.float64, np.float32)), seed=st.integers(0, 99), isa=G.isas())
def test_overlapping_views(name, overlap, dtype, seed, isa):
    """Overlapping views of one array as two params (issue #11 item 10: updates were lost):
    the book's result, its updates applied to the shared memory in key order."""
    base = _big((6, 5), seed).astype(dtype)
    fb, rb = base.copy(), base.copy()
    fparams, rparams = OVERLAPS[overlap](fb), OVERLAPS[overlap](rb)
    grads = [{k: _big(v.shape, seed + 1 + i).astype(dtype) for i, (k, v) in enumerate(rparams.items())}
             for _ in range(2)]
    fopt, ropt = getattr(O, name)(), getattr(R, name)()
    ro, rs = _run(ropt, rparams, grads, False)
    with G.on_isa(isa):
        fo, fs = _run(fopt, fparams, grads, True)
    _compare_runs(name, fo, fs, ro, rs, fopt, ropt, fparams, rparams, bases=[(fb, rb)])


CHANGES = ("dtype", "reshape", "new_key")


@given(name=st.sampled_from(NAMES[1:]), change=st.sampled_from(CHANGES),
       dtype=st.sampled_from((np.float64, np.float32)), seed=st.integers(0, 99))
def test_state_after_params_change(name, change, dtype, seed):
    """The book keeps its state when a parameter's dtype changes (issue #11 item 8), and
    errors on a new key or a reshaped parameter (issue #11: silently reset)."""
    def run(mod, fast):
        opt = getattr(mod, name)()
        p = {"W": _big((4, 3), seed).astype(dtype), "b": _big((3,), seed + 1).astype(dtype)}
        g = {k: _big(v.shape, seed + 2) .astype(dtype) for k, v in p.items()}
        out = call(opt.update, (p, g), fast=fast, mutates=(0,), label="%s.update" % name)
        assert out.exc is None, out
        if change == "dtype":
            other = np.float32 if dtype == np.float64 else np.float64
            p = {k: v.astype(other) for k, v in p.items()}
            g = {k: v.astype(other) for k, v in g.items()}
        elif change == "reshape":
            p["W"] = p["W"].reshape(3, 4).copy()
            g["W"] = g["W"].reshape(3, 4).copy()
        else:
            p["W_new"] = _big((2, 2), seed + 3).astype(dtype)
            g["W_new"] = _big((2, 2), seed + 4).astype(dtype)
        out = call(opt.update, (p, g), fast=fast, mutates=(0,), label="%s.update after %s" % (name, change))
        return out, opt, p
    ro, ropt, rp = run(R, False)
    fo, fopt, fp = run(O, True)
    # (after a dtype change: float32 rounding of N(0, 1) operands, twice)
    _compare_runs(name, fo, 0, ro, 0, fopt, ropt, fp, rp, exact=False,
                  tol=dict(rtol=2e-6, atol=8 * 2 * 1.2e-7 * 8.0))


@given(name=st.sampled_from(NAMES), kind=st.sampled_from(("int64", "float16", "pyfloat", "list")))
def test_param_kinds(name, kind):
    """Integer params raise (README); float16 params: the book computes in float16, fastnn
    may raise naming the key (README, Reliability); Python floats: the book rebinds
    params[key] to a new float (ch06 optimizer_compare_naive.py; issue #12)."""
    def make():
        if kind == "pyfloat":
            return {"x": -7.0, "y": 2.0}, {"x": 1.5, "y": -0.5}
        if kind == "list":
            return {"x": [1.0, 2.0]}, {"x": [0.5, 0.5]}
        return ({"x": np.array([1.0, -2.0]).astype(kind)}, {"x": np.array([0.5, 0.25]).astype(kind)})
    rp, rg = make()
    fp, fg = make()
    fopt, ropt = getattr(O, name)(), getattr(R, name)()
    ro, rs = _run(ropt, rp, [rg, rg], False)
    fo, fs = _run(fopt, fp, [fg, fg], True)
    if kind == "float16" and fo.exc is not None:
        assert_clear_error(fo.exc, ("params", "grads", "x"), None, "%s.update float16" % name)
        return
    if kind == "list" and ro.exc is None:
        # the book's -= on a list: lists do not support it unless... the book raises
        pass
    if ro.exc is not None or fo.exc is not None:
        assert fo.exc is not None and ro.exc is not None, (
            "%s with %s params: fastnn %s, the book %s" % (name, kind, fo, ro))
        assert_clear_error(fo.exc, ("params", "grads", "x"), ro.exc, "%s.update" % name)
        return
    for k in rp:
        assert_same(np.asarray(fp[k]), np.asarray(rp[k]), what="%s params[%r]" % (name, k),
                    check_type=False)


@given(name=st.sampled_from(NAMES), bad=st.sampled_from(("shape_T", "broadcast_row", "missing",
                                                        "none", "complex", "string")))
def test_bad_grads(name, bad):
    """Grads the book would reject: fastnn rejects them with a clear error. A gradient that
    only broadcasts (a row for a matrix) the book applies to every row, and so does fastnn
    (README: "gradients that broadcast"), or it asks for the parameter's shape."""
    p0 = {"W": _big((3, 4)), "b": _big((4,), 1)}
    g = {"W": _big((3, 4), 2), "b": _big((4,), 3)}
    if bad == "shape_T":
        g["W"] = g["W"].T.copy()
    elif bad == "broadcast_row":
        g["W"] = g["W"][:1]
    elif bad == "missing":
        del g["b"]
    elif bad == "none":
        g["W"] = None
    elif bad == "complex":
        g["W"] = g["W"] + 1j
    else:
        g["W"] = "W"
    rp = {k: v.copy() for k, v in p0.items()}
    fp = {k: v.copy() for k, v in p0.items()}
    ro = call(getattr(R, name)().update, (rp, g))
    fo = call(getattr(O, name)().update, (fp, g), fast=True, mutates=(0,), label="%s.update" % name)
    if fo.exc is not None:
        assert_clear_error(fo.exc, ("grads", "params", "W", "b"), ro.exc, "%s.update(%s)" % (name, bad))
        return
    assert ro.exc is None, "%s.update accepted %s grads the book rejects (%s)" % (name, bad, ro)
    for k in p0:
        assert_same(fp[k], rp[k], what="%s params[%r]" % (name, k))


@cases(
    # issue #11 item 9: tied weights, SGD on a 1000 x 1000 array
    tied_sgd=dict(name="SGD", dtype=np.float64, shape=(1000, 300), seed=0),
    tied_adam=dict(name="Adam", dtype=np.float32, shape=(1000, 300), seed=0),
)
def test_tied_weights_cases(case):
    test_tied_weights.hypothesis.inner_test(isa="baseline", **case)
