"""fastnn.layers (Relu, Sigmoid, Affine, SoftmaxWithLoss, Dropout, BatchNormalization)
against tests/reference.py: forward, backward and the attributes the book keeps.

The book's in-place edits are part of the semantics: ``Relu.backward`` zeroes ``dout`` in
place and returns it, so a read-only ``dout`` must raise as in the book.
"""
import numpy as np
from hypothesis import given, strategies as st

import reference as R
from fastnn import layers as L

import _gen as G
import _rules as RULES
from _check import agree, assert_same, call, cases, materialize

LAYER_KINDS = ("float64", "float64", "float32", "float16", "int64", "bool", "list")


def _both(fast_obj, ref_obj, method, args, names, mode="ref", mutates=(), label=None,
          rtol=None, atol=None, compare=None):
    """agree() on a method of two layer objects that keep state between calls."""
    return agree(getattr(fast_obj, method), getattr(ref_obj, method), args, names=names,
                 mode=mode, mutates=mutates, label=label or "%s.%s" % (type(fast_obj).__name__, method),
                 rtol=rtol, atol=atol, compare=compare)


def _attrs(fast_obj, ref_obj, names, rtol=None, atol=None):
    for n in names:
        assert_same(getattr(fast_obj, n), getattr(ref_obj, n), rtol=rtol, atol=atol,
                    what="%s.%s" % (type(fast_obj).__name__, n))


def _writes_dout_mode(dout):
    # README: read-only arrays that the book would write into raise (Relu.backward writes
    # dout in place)
    d = G.build(dout)
    return "raise" if isinstance(d, np.ndarray) and not d.flags.writeable else "ref"


@st.composite
def x_and_dout(draw, min_dims=1, max_dims=3, kinds=LAYER_KINDS):
    shape = draw(G.shapes(min_dims=min_dims, max_dims=max_dims, max_size=600))
    x = draw(G.arrays(shape, kinds=kinds))
    dshape = draw(st.sampled_from([shape, shape, shape, shape[1:], shape[::-1]]))
    dout = draw(G.arrays(dshape, kinds=("float64", "float32")))
    return x, dout


def check_relu(x, dout, isa="baseline"):
    f, r = L.Relu(), R.Relu()
    mode = "either" if x.kind == "list" else "ref"  # the book's x <= 0 needs an ndarray
    with G.on_isa(isa):
        fo, ro, _ = agree(f.forward, r.forward, (x,), names=("x",), mode=mode,
                          ref_args=(np.asarray(G.build(x)),), label="Relu.forward")
        if fo.exc is not None or ro.exc is not None:
            return
        _attrs(f, r, ["mask"])
        fo, ro, fa = _both(f, r, "backward", (dout,), names=("dout",), mode=_writes_dout_mode(dout),
                           mutates=(0,))
        if fo.exc is None and ro is not None and ro.exc is None:
            assert fo.value is fa[0], "Relu.backward returns dout itself, edited in place"


@given(case=x_and_dout(), isa=G.isas())
def test_relu(case, isa):
    check_relu(*case, isa)


def check_sigmoid(x, dout, isa="baseline"):
    f, r = L.Sigmoid(), R.Sigmoid()
    with G.on_isa(isa):
        fo, ro, _ = agree(f.forward, r.forward, (x,), names=("x",), label="Sigmoid.forward",
                          atol=1e-7 if x.kind == "float32" else None)
        if fo.exc is not None:
            return
        _attrs(f, r, ["out"], atol=1e-7 if x.kind == "float32" else None)
        # `out` may differ from the book's by an ulp (checked above, within tolerance; for
        # float16 fastnn computes in float32 and rounds once, README), which (1 - out) near
        # 1 magnifies and dout * (1 - out) * out can turn into 0 vs a subnormal, or inf vs
        # NaN. So the backward formula is checked on fastnn's own `out`.
        if isinstance(f.out, np.ndarray):
            r.out = f.out.copy()
        _both(f, r, "backward", (dout,), names=("dout",), atol=1e-7)


@given(case=x_and_dout(), isa=G.isas())
def test_sigmoid(case, isa):
    check_sigmoid(*case, isa)


@st.composite
def affine_layer_case(draw):
    M, K, N = draw(G.dim(1, 7)), draw(G.dim(1, 257)), draw(G.dim(1, 7))
    xshape = draw(st.sampled_from([(M, K), (M, K), (M, 1, K), (K,), (M, K + 1)]))
    wshape = draw(st.sampled_from([(K, N), (K, N), (K, N), (K,)]))
    bshape = draw(st.sampled_from([(N,), (N,), (1, N), (N + 1,)]))
    kinds = ("float64", "float64", "float32", "int64")

    def mk(s, kinds=kinds):
        return draw(st.builds(G.Recipe, G.values(s, specials=False), st.sampled_from(kinds),
                              st.sampled_from(G.LAYOUTS)))
    x = mk(xshape, kinds + ("list",))
    oshape = (M if len(xshape) > 1 else K, N)
    dout = mk(draw(st.sampled_from([oshape, oshape, oshape[::-1], (N,)])), ("float64", "float32"))
    return x, mk(wshape), mk(bshape), dout


def check_affine_layer(x, W, b, dout, isa="baseline"):
    Wf, bf, Wr, br = G.build(W), G.build(b), G.build(W), G.build(b)
    f, r = L.Affine(Wf, bf), R.Affine(Wr, br)
    K = W.vals.shape[0]
    eps = 1.2e-7 if "float32" in (x.kind, W.kind, b.kind, dout.kind) else 2.3e-16
    # summation error: relative to sum |x| |W| + |b|, not to the (possibly cancelling) result
    atol = 1e-12 * K
    xv, Wv, bv = (np.abs(G.recipe_values(a)) for a in (x, W, b))
    if Wv.ndim == 2 and xv.size % K == 0 and bv.shape in ((Wv.shape[1],), (1, Wv.shape[1]), ()):
        with np.errstate(all="ignore"):
            atol = 4 * (K + 2) * eps * (xv.reshape(-1, K) @ Wv + bv) + atol
    # (other shapes: fastnn raises or the rules below decide)
    fwd_tol = dict(rtol=4 * (K + 2) * eps, atol=atol)
    # backward: dx sums N products, dW and db sum M rows; a bound on every such sum
    dv = np.abs(G.recipe_values(dout))
    big = max(xv.size // max(K, 1), K, Wv.size // max(K, 1), 1)
    scale = max([float(dv.max()) if dv.size else 0.0]) * max(
        [1.0] + [float(v.max()) for v in (xv, Wv) if v.size])
    tol = dict(rtol=4 * (K + 2) * eps, atol=4 * (big + 2) * eps * big * scale + 1e-12 * K)
    mode = "ref"
    if x.kind == "list":
        mode = "either"  # the book's x.reshape needs an ndarray (AttributeError on a list)
    elif W.vals.ndim != 2:
        # README: a layer's W is 2-D (np.dot would take a 1-D one)
        mode = "either"
    elif b.vals.shape not in ((W.vals.shape[1],), (1, W.vals.shape[1]), ()):
        # README: a bias is (N,), (1, N) or a scalar (one that broadcasts the output into
        # another shape raises)
        mode = "either"
    compare = None
    if all(a.kind == "int64" for a in (x, W, b)):
        # README: integer input computes in float64 (the book's np.dot stays integer)
        def compare(got, want, **kw):
            assert_same(got, np.asarray(want, dtype=np.float64), **kw)
    with G.on_isa(isa):
        fo, ro, _ = agree(f.forward, r.forward, (x,), names=("x", "W", "b"), mode=mode,
                          ref_args=(np.asarray(G.build(x)),) if x.kind == "list" else None,
                          label="Affine.forward", compare=compare, **fwd_tol)
        if fo.exc is not None or ro.exc is not None:
            return
        assert f.W is Wf and f.b is bf, "Affine keeps references to W and b"
        rows = x.vals.shape[0] if x.vals.ndim > 1 else 1
        # README: mismatched shapes raise ValueError naming them -- a dout that is not the
        # forward output's (M, N) (the book's np.dot takes a (N,) dout for one row and
        # returns a dW of the wrong shape)
        dmode = "ref" if dout.vals.shape == (rows, W.vals.shape[1]) else "raise"
        fo, ro, _ = _both(f, r, "backward", (dout,), names=("dout",), mode=dmode, **tol)
        if fo.exc is None:
            _attrs(f, r, ["dW", "db"], **tol)


@given(case=affine_layer_case(), isa=G.isas())
def test_affine_layer(case, isa):
    check_affine_layer(*case, isa)


@cases(
    # issue #11: a 1-D W is said to have "x's features must equal W.shape[0]" when they do
    one_d_W=dict(x=G.recipe(np.ones((2, 3))), W=G.recipe(np.ones(3)), b=G.recipe([0.5]),
                 dout=G.recipe(np.ones(2))),
)
def test_affine_layer_cases(case):
    Wf = G.build(case["W"])
    out = call(L.Affine(Wf, G.build(case["b"])).forward, (G.build(case["x"]),),
               label="Affine.forward", fast=True)
    if out.exc is not None:
        assert "must equal" not in str(out.exc), (
            "the message claims x's features and W.shape[0] differ, but both are 3: %s" % out.exc)
    check_affine_layer(**case)


@st.composite
def softmax_loss_layer_case(draw):
    shape = draw(st.one_of(st.tuples(G.dim(1, 9), G.dim(1, 257)), st.tuples(G.dim(1, 9))))
    x = draw(G.arrays(shape, kinds=("float64", "float64", "float32", "int64")))
    rows, C = (1, shape[0]) if len(shape) == 1 else shape
    return x, draw(G.labels(rows, C))


def check_softmax_with_loss(x, t, isa="baseline"):
    f, r = L.SoftmaxWithLoss(), R.SoftmaxWithLoss()
    mode, t_ref = RULES.dlfs_targets(x.vals.shape, t)
    if t_ref is None and isinstance(t, G.Labels) and t.kind == "list":
        # README: array-likes are taken wherever the book needs an ndarray (its backward
        # reads t.shape): compared with the book given np.asarray(t)
        t_ref = np.asarray(t.build())
    rows = x.vals.shape[0] if x.vals.ndim == 2 else 1
    eps = 1.2e-7 if x.kind == "float32" else 2.3e-16
    with G.on_isa(isa):
        fo, ro, _ = agree(f.forward, r.forward, (x, t), names=("x", "t", "y", "labels"),
                          mode=mode, ref_args=None if t_ref is None else (x, t_ref),
                          label="SoftmaxWithLoss.forward", rtol=0, atol=(rows + 16) * eps * 40)
        if fo.exc is not None or (ro is not None and ro.exc is not None):
            return
        tb = np.asarray(materialize(t))
        if t_ref is None and tb.ndim == 0:
            # a 0-d label for one row: the book's forward takes it, its backward reads
            # t.shape[0] (IndexError); fastnn takes it as the label it is (README: one row's
            # label may have any shape of size 1) -- the book given the label as a (1,) array
            t_ref = tb.reshape(1)
        if t_ref is not None:
            r.forward(G.build(x), t_ref)  # the book's layer, given the targets as fastnn read them
        _both(f, r, "backward", (), names=("dout", "t", "y", "labels"),
              rtol=1e-5 if x.kind == "float32" else 1e-12,
              atol=1e-7 if x.kind == "float32" else 1e-15)


@given(case=softmax_loss_layer_case(), isa=G.isas())
def test_softmax_with_loss(case, isa):
    check_softmax_with_loss(*case, isa)


@given(case=x_and_dout(kinds=("float64", "float32", "int64")), ratio=st.sampled_from([0.0, 0.5, 0.9, 1.0]),
       train=st.booleans(), seed=st.integers(0, 2 ** 16))
def test_dropout(case, ratio, train, seed):
    """Seeded Dropout draws the book's mask (np.random.rand) and scales as the book does."""
    x, dout = case
    f, r = L.Dropout(ratio), R.Dropout(ratio)
    np.random.seed(seed)
    fo = call(f.forward, (G.build(x), train), label="Dropout.forward", fast=True)
    np.random.seed(seed)
    ro = call(r.forward, (G.build(x), train))
    assert (fo.exc is None) == (ro.exc is None), (fo, ro)
    if fo.exc is not None:
        return
    assert_same(fo.value, ro.value, what="Dropout.forward")
    if train:
        assert_same(f.mask, r.mask, what="Dropout.mask")
        _both(f, r, "backward", (dout,), names=("dout",))


@st.composite
def batchnorm_case(draw):
    N, D = draw(G.dim(1, 9)), draw(G.dim(1, 30))
    shape = draw(st.sampled_from([(N, D), (N, D), (N, 1, D), (N, D, 1, 1)]))
    x = draw(G.arrays(shape, kinds=("float64", "float32", "int64"), specials=draw(st.booleans())))
    gamma = draw(G.arrays((D,), kinds=("float64",), layouts=("C", "strided", "readonly")))
    beta = draw(G.arrays((D,), kinds=("float64",), layouts=("C", "strided", "readonly")))
    dout = draw(G.arrays(shape, kinds=("float64", "float32")))
    return x, gamma, beta, dout, draw(st.booleans()), draw(st.sampled_from([0.9, 0.0, 1.0]))


@given(case=batchnorm_case(), isa=G.isas())
def test_batchnorm(case, isa):
    x, gamma, beta, dout, train, momentum = case
    f = L.BatchNormalization(G.build(gamma), G.build(beta), momentum=momentum)
    r = R.BatchNormalization(G.build(gamma), G.build(beta), momentum=momentum)
    with G.on_isa(isa):
        for step in range(2):
            fo, ro, _ = _both(f, r, "forward", (x, train), names=("x",),
                              label="BatchNormalization.forward step %d" % step)
            if fo.exc is not None:
                return
            _attrs(f, r, ["running_mean", "running_var"])
        if train:
            _both(f, r, "backward", (dout,), names=("dout",))
            _attrs(f, r, ["dgamma", "dbeta"])
