"""fastnn.functions against tests/reference.py on generated inputs.

Every property draws the ISA level, the thread count, the argument's dtype, memory layout,
shape and values; fastnn must give the reference's answer (within tolerance, NaN/inf in
the same places), or both raise and fastnn's error is clear (see _check.py), or a rule in
_rules.py applies. Valid thread counts must give the same bits as one thread.
"""
import math

import numpy as np
from hypothesis import given, strategies as st

import reference as R
from fastnn import functions as F

import _gen as G
import _rules as RULES
from _check import agree, call, cases

ELEMENTWISE = {
    "sigmoid": (F.sigmoid, R.sigmoid), "sigmoid_grad": (F.sigmoid_grad, R.sigmoid_grad),
    "relu": (F.relu, R.relu), "relu_grad": (F.relu_grad, R.relu_grad),
    "tanh": (F.tanh, R.tanh), "leaky_relu": (F.leaky_relu, R.leaky_relu),
    "step_function": (F.step_function, R.step_function),
    "identity_function": (F.identity_function, R.identity_function),
}
THREADED = ("sigmoid",)


def _threads_mode(n, fast_kwargs):
    """(mode, names) for a kernel called with n_threads=n (G.thread_rule)."""
    rule = G.thread_rule(n)
    fast_kwargs["n_threads"] = n
    return ("raise" if rule == "raise" else "either" if rule == "either" else None)


def _same_bits_as_one_thread(fn, args, n, got):
    """A valid thread count gives the same bits as n_threads=1 (README: results never
    depend on the thread count)."""
    if G.thread_rule(n) != "ok" or got.exc is not None:
        return
    one = call(fn, args, {"n_threads": 1}, label="one thread", fast=True)
    assert one.exc is None, one
    a, b = np.asarray(got.value), np.asarray(one.value)
    assert a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes(), (
        "n_threads=%r and n_threads=1 differ" % (n,))


@given(name=st.sampled_from(sorted(ELEMENTWISE)),
       x=G.arrays(G.shapes(max_dims=3), kinds=G.ALL_KINDS),
       n_threads=G.threads(), isa=G.isas())
def test_elementwise(name, x, n_threads, isa):
    check_elementwise(name, x, n_threads, isa)


@cases(
    none=dict(name="sigmoid", x=G.recipe(0.0, "none")),                # issue #11: sigmoid(None)
    complex=dict(name="sigmoid", x=G.recipe([1.0, -2.0], "complex128")),
    huge_threads=dict(name="sigmoid", x=G.recipe([[1.0, 2.0]]), n_threads=2 ** 40),  # 2**40
)
def test_elementwise_cases(case):
    check_elementwise(**case)


def check_elementwise(name, x, n_threads=None, isa="baseline"):
    fast, ref = ELEMENTWISE[name]
    kw = {}
    mode = "ref"
    if name in THREADED:
        mode = _threads_mode(n_threads, kw) or mode
    if mode == "ref" and name not in ("step_function", "identity_function"):
        if RULES.complex_input(x.kind):
            mode = "raise"
        elif RULES.object_input(x.kind):
            mode = "either"
    rtol = atol = None
    if name == "sigmoid_grad" and x.kind == "float32":
        atol = 1e-7  # the reference's own (1 - s) * s cancels in float32
    with G.on_isa(isa):
        f, r, fa = agree(fast, ref, (x,), kw, names=("x", "n_threads"), mode=mode,
                         ref_kwargs={}, label=name, rtol=rtol, atol=atol)
        if name in THREADED:
            _same_bits_as_one_thread(fast, fa, n_threads, f)
    if name == "identity_function":
        assert f.value is fa[0]  # the object itself, as the book


@given(x=G.arrays(G.shapes(max_dims=3), kinds=G.ALL_KINDS), n_threads=G.threads(),
       isa=G.isas())
def test_softmax(x, n_threads, isa):
    check_softmax(x, n_threads, isa)


@cases(
    empty_rows=dict(x=G.recipe(np.zeros((2, 0)))),
    no_rows=dict(x=G.recipe(np.zeros((0, 3)))),
    extremes=dict(x=G.recipe([[-np.inf, -np.inf], [np.inf, 1.0], [np.nan, 0.0], [1e308, -1e308]])),
    # issue #11 item 1, the in-process part (70000 threads: prop_isolated.py)
    huge_threads=dict(x=G.recipe(np.random.default_rng(0).random((3000, 30))), n_threads=2 ** 40),
)
def test_softmax_cases(case):
    check_softmax(**case)


def check_softmax(x, n_threads=None, isa="baseline"):
    kw = {}
    mode = _threads_mode(n_threads, kw) or "ref"
    if mode == "ref" and RULES.complex_input(x.kind):
        mode = "raise"
    elif mode == "ref" and (RULES.object_input(x.kind) or x.vals.ndim == 0):
        # a 0-d x: NumPy reduces over "axis -1" of a scalar and the book returns 1.0;
        # fastnn may ask for an axis (ValueError naming x). (README, Reliability.)
        mode = "either"
    with G.on_isa(isa):
        f, r, fa = agree(F.softmax, R.softmax, (x,), kw, names=("x", "n_threads"), mode=mode,
                         ref_kwargs={}, label="softmax")
        _same_bits_as_one_thread(F.softmax, fa, n_threads, f)


def _ce_tolerance(y_vals, rows, dtype):
    """Loss tolerance: the reference sums `rows` float32/float64 log terms; allow a few
    roundings of every term (and float16's +1e-7, which fastnn rounds in float32)."""
    eps = {"float64": 2.3e-16, "float32": 1.2e-7, "float16": 2e-2}.get(dtype, 2.3e-16)
    with np.errstate(all="ignore"):
        s = np.nansum(np.abs(np.log(np.abs(y_vals.astype(np.float64)) + 1e-7)))
    s = s / max(rows, 1) if np.isfinite(s) else 0.0
    return 0.0, (rows + 16) * eps * (s + 1.0)


@st.composite
def loss_case(draw, probs=True):
    """(y or X recipe, targets) with y 1-D or 2-D (and sometimes 0-d/3-d)."""
    shape = draw(st.one_of(
        st.tuples(G.dim(1, 9), G.dim(1, 257)),
        st.tuples(G.dim(1, 257)).map(tuple),
        G.shapes(min_dims=0, max_dims=3, max_size=300)))
    if probs and len(shape) >= 1:
        vals = draw(G.probabilities(shape))
    else:
        vals = draw(G.values(shape))
    kind = draw(st.sampled_from(("float64", "float64", "float32", "float16", "int64", "list")))
    y = G.Recipe(vals, kind, draw(st.sampled_from(G.LAYOUTS)))
    rows, C = ((1, shape[0]) if len(shape) == 1 else shape[:2] if len(shape) >= 2 else (1, 1))
    t = draw(G.labels(rows, C))
    return y, t


def _loss_property(fast, ref, name, y, t, n_threads, isa):
    shape = y.vals.shape
    kw = {}
    mode, t_ref = RULES.dlfs_targets(shape, t)
    if mode != "raise" and len(shape) in (1, 2) and 0 in shape:
        # an empty batch (or no class): fastnn raises a ValueError naming y's shape where the
        # book's mean over no rows is 0 / 0 = NaN (README, Reliability)
        mode, t_ref = "raise", None
    tmode = _threads_mode(n_threads, kw)
    if tmode:
        mode, t_ref = tmode, None
    names = ("y", "t", "X", "n_threads", "labels")
    compare = None
    if y.kind == "float16" and np.nanmin(np.abs(G.recipe_values(y)), initial=np.inf) < 1e-6:
        # float16 computes in float32 (README): the book's float16 y + 1e-7 rounds a tiny
        # probability to 0 or below it (log -> inf or NaN) where float32's does not
        def compare(got, want, **kw):
            assert np.shape(got) == np.shape(want), (np.shape(got), np.shape(want))
    rows = shape[0] if len(shape) == 2 else 1
    probs = G.recipe_values(y)
    if name == "softmax_loss" and probs.ndim and probs.shape[-1]:
        with np.errstate(all="ignore"):
            probs = R.softmax(probs)
    rtol, atol = _ce_tolerance(probs, rows, y.kind)
    with G.on_isa(isa):
        f, r, fa = agree(fast, ref, (y, t), kw, names=names, mode=mode, label=name,
                         ref_args=None if t_ref is None else (y, t_ref), ref_kwargs={},
                         rtol=rtol, atol=atol, compare=compare)
        _same_bits_as_one_thread(fast, fa, n_threads, f)


T44 = G.recipe(np.full((3, 4), 0.25))


@given(case=loss_case(), n_threads=G.threads(), isa=G.isas())
def test_cross_entropy_error(case, n_threads, isa):
    y, t = case
    _loss_property(F.cross_entropy_error, R.cross_entropy_error, "cross_entropy_error", y, t,
                   n_threads, isa)


@given(case=loss_case(probs=False), n_threads=G.threads(), isa=G.isas())
def test_softmax_loss(case, n_threads, isa):
    X, t = case
    _loss_property(F.softmax_loss, R.softmax_loss, "softmax_loss", X, t, n_threads, isa)


P34 = G.recipe([[0.1, 0.2, 0.3, 0.4], [0.7, 0.1, 0.1, 0.1], [0.25] * 4])
P22 = G.recipe([[0.1, 0.9], [0.8, 0.2]])


@cases(
    # issue #11 item 4: a transposed one-hot (4, 3) for y (3, 4) (the book raises)
    onehot_T=dict(y=P34, t=G.Labels("onehot_T", 3, 4, 1)),
    onehot_flat=dict(y=P34, t=G.Labels("onehot_flat", 3, 4, 1)),
    # issue #11 item 5: bool labels used as 0/1
    bool_labels=dict(y=P22, t=G.Labels("bool", 2, 2, 3)),
    negative_labels=dict(y=P22, t=G.Labels("negative", 2, 2, 3)),
    one_label_for_two_rows=dict(y=P22, t=G.Labels("count-1", 2, 2, 3)),
)
def test_loss_cases(case):
    for fast, ref, name in ((F.cross_entropy_error, R.cross_entropy_error, "cross_entropy_error"),
                            (F.softmax_loss, R.softmax_loss, "softmax_loss")):
        _loss_property(fast, ref, name, case["y"], case["t"], None, "baseline")


@st.composite
def sse_case(draw):
    ys = draw(G.shapes(max_dims=3, max_size=500))
    ts = draw(st.one_of(st.just(ys), st.just(ys), st.just(ys[1:]), G.shapes(max_dims=3, max_size=500)))
    return (draw(G.arrays(ys, kinds=G.ALL_KINDS)), draw(G.arrays(ts, kinds=G.ALL_KINDS)))


@given(case=sse_case(), isa=G.isas())
def test_sum_squared_error(case, isa):
    y, t = case
    mode = "ref"
    if RULES.complex_input(y.kind) or RULES.complex_input(t.kind):
        mode = "raise"
    elif RULES.object_input(y.kind) or RULES.object_input(t.kind):
        mode = "either"
    n = max(np.size(y.vals), np.size(t.vals), 1)
    with G.on_isa(isa):
        for fn, rf in ((F.sum_squared_error, R.sum_squared_error),
                       (F.mean_squared_error, R.mean_squared_error)):
            agree(fn, rf, (y, t), names=("y", "t"), mode=mode, label=fn.__name__,
                  rtol=n * 1e-15 + (2e-6 if "float32" in (y.kind, t.kind) else 0)
                  + (2e-2 if "float16" in (y.kind, t.kind) else 0))


# --- affine ----------------------------------------------------------------------------------

def _result_dtype(*arrays):
    """fastnn's dtype rule (README): floats keep their (promoted) dtype, integer and bool
    input computes in float64."""
    dt = np.result_type(*[np.asarray(a).dtype for a in arrays])
    return np.dtype(np.float64) if dt.kind in "biu" else dt


def _affine_expectation(x, W, b, res):
    """x @ W + b in float64 with, per output element, the value class every summation order
    gives and an error bound. Elements where a partial sum could overflow (|x| @ |W| + |b|
    near the dtype's max) depend on the order: they are not checked.
    Returns (exact, want_nan, want_pinf, want_ninf, skip, bound)."""
    x = np.asarray(x, dtype=np.float64)
    W = np.asarray(W, dtype=np.float64)
    x2 = x.reshape(int(np.prod(x.shape[:-1])), x.shape[-1])
    with np.errstate(all="ignore"):
        P = x2[:, :, None] * W[None, :, :]                    # (M, K, N) products
        if b is not None:
            bb = np.broadcast_to(np.asarray(b, dtype=np.float64).reshape(-1), (W.shape[1],))
            P = np.concatenate([P, np.broadcast_to(bb, (P.shape[0], 1, W.shape[1]))], axis=1)
        nan = np.isnan(P).any(axis=1) | ((P == np.inf).any(axis=1) & (P == -np.inf).any(axis=1))
        pinf = ~nan & (P == np.inf).any(axis=1)
        ninf = ~nan & (P == -np.inf).any(axis=1)
        fin = np.where(np.isfinite(P), np.abs(P), 0.0).sum(axis=1)
        exact = np.where(np.isfinite(P), P, 0.0).sum(axis=1)
    compute = np.dtype(np.float32) if res.itemsize < 4 else res   # float16 computes in float32
    skip = ~(fin < np.finfo(res).max / 4)
    bound = (2 * (x2.shape[1] + 4) * np.finfo(compute).eps * np.where(skip, 0.0, fin)
             + np.finfo(res).eps * np.abs(np.where(skip, 0.0, exact)) + 4 * np.finfo(res).tiny)
    return exact, nan, pinf, ninf, skip, bound


def _compare_affine(x, W, b, res):
    def compare(got, want, what="affine", **_):
        g = np.asarray(got)
        assert isinstance(got, np.ndarray), (what, type(got))
        assert g.shape == np.shape(want), (what, g.shape, np.shape(want))
        # README: integer input computes in float64 (the book's np.dot would stay integer)
        assert g.dtype == res, "%s: dtype %s, expected %s" % (what, g.dtype, res)
        exact, nan, pinf, ninf, skip, bound = _affine_expectation(x, W, b, res)
        gg = g.astype(np.float64).reshape(nan.shape)
        chk = ~skip
        for name, have, want_m in (("NaN", np.isnan(gg), nan), ("+inf", gg == np.inf, pinf),
                                   ("-inf", gg == -np.inf, ninf)):
            badm = chk & (have != want_m)
            assert not badm.any(), "%s: %s positions differ at %s (got %s)" % (
                what, name, np.argwhere(badm)[:3].tolist(), gg[badm][:3])
        fin = chk & ~nan & ~pinf & ~ninf
        bad = fin & ~(np.abs(gg - exact) <= bound)
        assert not bad.any(), "%s beyond the summation-error bound at %s: got %s, exact %s, bound %s" % (
            what, np.argwhere(bad)[:3].tolist(), gg[bad][:3], exact[bad][:3], bound[bad][:3])
    return compare


@st.composite
def affine_case(draw):
    M, K, N = draw(G.dim(0, 9)), draw(G.dim(0, 257)), draw(G.dim(0, 9))
    xshape = draw(st.sampled_from([(M, K), (K,), (2, M, K), (M, K), (M, K + 1)]))
    wshape = draw(st.sampled_from([(K, N), (K, N), (K, N), (K,), (N, K), (K, N, 1)]))
    bshape = draw(st.sampled_from([(N,), (N,), (1, N), (), (N, 1), (M, N), None]))
    kinds = ("float64", "float64", "float32", "float16", "int64", "bool", "list")

    def mk(s):
        return draw(st.builds(G.Recipe, G.values(s), st.sampled_from(kinds),
                              st.sampled_from(G.LAYOUTS)))
    x, W = mk(xshape), mk(wshape)
    b = None if bshape is None else mk(bshape)
    return x, W, b


@given(case=affine_case(), n_threads=G.threads(), isa=G.isas())
def test_affine(case, n_threads, isa):
    check_affine(*case, n_threads, isa)


@cases(
    # issue #11: "cannot reshape array of size 5 into shape (5,5)"
    bias_column=dict(x=G.recipe(np.ones((1, 4))), W=G.recipe(np.ones((4, 5))),
                     b=G.recipe(np.ones((5, 1)))),
    # 0 * inf = NaN must survive any skipping of zeros in x
    zero_times_inf=dict(x=G.recipe([[0.0, 1.0]]), W=G.recipe([[np.inf, 1.0], [1.0, 1.0]]),
                        b=G.recipe([0.0, 0.0])),
    one_column_W=dict(x=G.recipe(np.ones((12, 1000))), W=G.recipe(np.ones((1000, 1))),
                      b=G.recipe([0.5])),
)
def test_affine_cases(case):
    check_affine(**case)


def check_affine(x, W, b, n_threads=None, isa="baseline"):
    kw = {}
    mode = _threads_mode(n_threads, kw) or "ref"
    ref_args = None
    # (the shapes as built: a list of an empty (0, 0) W is a 1-D [])
    xs, ws = (np.shape(G.build(r)) for r in (x, W))
    bs = None if b is None else np.shape(G.build(b))
    if mode == "ref":
        if len(ws) != 2:
            # fastnn.affine takes a 2-D W (a layer's W always is); np.dot would also take
            # a 1-D or 3-D one. (README, Reliability.)
            mode = "either"
        elif bs is None:
            # affine(x, W) without a bias: fastnn's extension (TypeError in the book):
            # compared with the book's np.dot(x, W) + 0
            mode, ref_args = "either", (x, W, 0.0)
        elif bs not in ((ws[1],), (1, ws[1]), ()):
            # a bias that broadcasts the output into another shape ((N, 1), (M, N)): a
            # layer's bias is (N,), nnfs's (1, N). (README, Reliability.)
            mode = "either"
    built = [G.build(a) for a in (x, W) + ((b,) if b is not None else ())]
    compare = None
    if (len(ws) == 2 and len(xs) >= 1 and xs[-1] == ws[0]
            and (bs is None or bs in ((ws[1],), (1, ws[1]), ()))):
        res = _result_dtype(*built)
        if res.kind == "f":
            compare = _compare_affine(G.recipe_values(x), G.recipe_values(W),
                                      None if b is None else G.recipe_values(b), res)
    with G.on_isa(isa):
        f, r, fa = agree(F.affine, R.affine, (x, W, b), kw, names=("x", "W", "b", "n_threads"),
                         mode=mode, ref_args=ref_args, ref_kwargs={}, label="affine",
                         compare=compare)
        _same_bits_as_one_thread(F.affine, fa, n_threads, f)
