"""fastnn.nets (TwoLayerNet, MultiLayerNet): loss, gradient and numerical_gradient of tiny
nets with arbitrary parameters and targets, against tests/reference.py.

The nets are tiny (at most 4-3-3-3, batch <= 3) so that the book's own numerical gradient
(two full forward passes per parameter) stays quick. Parameters may be float32/float64,
Fortran-ordered or strided, hold huge or non-finite values; weight decay may be NaN.
"""
import numpy as np
from hypothesis import given, strategies as st

import reference as R
from fastnn import nets as N

import _gen as G
import _rules as RULES
from _check import agree, assert_same, cases, materialize


@st.composite
def net_case(draw):
    which = draw(st.sampled_from(("TwoLayerNet", "MultiLayerNet")))
    n_in, n_out, B = draw(st.integers(1, 4)), draw(st.integers(1, 3)), draw(st.integers(1, 3))
    if which == "TwoLayerNet":
        hidden, act, lam = [draw(st.integers(1, 3))], "sigmoid", None
    else:
        hidden = draw(st.lists(st.integers(1, 3), max_size=2))
        act = draw(st.sampled_from(("relu", "sigmoid")))
        lam = draw(st.sampled_from((0, 0.1, 0.0, float("nan"))))
    sizes = [n_in] + hidden + [n_out]
    pdtype = draw(st.sampled_from(("float64", "float64", "float32")))
    special = draw(st.sampled_from((None, None, None, 1e200, float("nan"), float("inf"))))
    params = {}
    for i in range(1, len(sizes)):
        W = draw(G.values((sizes[i - 1], sizes[i]), specials=False)) * 0.5
        if special is not None and i == 1:
            W[0, 0] = special  # issue #11 item 11: a 1e200 weight (NaN loss)
        params["W%d" % i] = G.Recipe(W, pdtype, draw(st.sampled_from(("C", "F", "strided"))))
        params["b%d" % i] = G.Recipe(draw(G.values((sizes[i],), specials=False)) * 0.1, pdtype,
                                     draw(st.sampled_from(("C", "strided"))))
    xshape = draw(st.sampled_from(((B, n_in), (B, n_in), (n_in,))))
    x = G.Recipe(draw(G.values(xshape, specials=draw(st.booleans()))),
                 draw(st.sampled_from(("float64", "float32", "int64", "list"))),
                 draw(st.sampled_from(G.LAYOUTS)))
    rows = B if len(xshape) == 2 else 1
    t = draw(G.labels(rows, n_out))
    return which, act, lam, params, x, t


def _nets(which, act, lam, params):
    fp = {k: G.build(v) for k, v in params.items()}
    rp = {k: G.build(v) for k, v in params.items()}
    L = len(params) // 2
    sizes = [params["W1"].vals.shape[0]] + [params["W%d" % i].vals.shape[1] for i in range(1, L + 1)]
    if which == "TwoLayerNet":
        f, r = N.TwoLayerNet(*sizes), R.TwoLayerNet(*sizes)
        f.params, r.params = fp, rp
    else:
        f = N.MultiLayerNet(sizes[0], sizes[1:-1], sizes[-1], activation=act, weight_decay_lambda=lam)
        r = R.MultiLayerNet(sizes[0], sizes[1:-1], sizes[-1], activation=act, weight_decay_lambda=lam)
        f.params, r.params = fp, rp
        r._build_layers(act)  # the book's layers hold the params arrays
    return f, r


def _grads_in_net_dtype(x, params):
    """README: `gradient` returns the promoted float dtype of x and the params (the book's
    NumPy also promotes a float32 net's gradients to float64 when t is a float64 one-hot or
    soft target; fastnn keeps the net's dtype). Values are compared with the book's."""
    kinds = {params[k].kind for k in params} | {"float64" if x.kind in ("int64", "list") else x.kind}
    res = np.dtype("float64" if "float64" in kinds else "float32")

    def compare(got, want, rtol=None, atol=None, what="gradient"):
        assert isinstance(got, dict) and sorted(got) == sorted(want), (what, list(got), list(want))
        for k in want:
            assert isinstance(got[k], np.ndarray) and got[k].dtype == res, (
                "%s[%r]: dtype %s, expected the net's %s" % (what, k, got[k].dtype, res))
            assert_same(got[k], np.asarray(want[k]).astype(res), rtol=rtol, atol=atol,
                        what="%s[%r]" % (what, k))
    return compare


def _order_dependent(act, params, x):
    """Whether the net's values depend on the summation order: some layer's sum of finite
    products reaches a quarter of the dtype's maximum, so partial sums may overflow (and
    inf - inf give NaN) in one order and not in another -- OpenBLAS with FMA, fastnn's
    kernels and NumPy's @ each have their own. (The same rule as prop_functions' affine.)"""
    L = len(params) // 2
    built = {k: G.build(v) for k, v in params.items()}
    small = any(np.asarray(v).dtype == np.float32 for v in list(built.values()) + [G.build(x)])
    limit = np.finfo(np.float32 if small else np.float64).max / 4
    a = np.atleast_2d(G.recipe_values(x)).astype(np.float64)
    with np.errstate(all="ignore"):
        for i in range(1, L + 1):
            W = np.asarray(built["W%d" % i], dtype=np.float64)
            b = np.asarray(built["b%d" % i], dtype=np.float64)
            ok = np.isfinite(a)[:, :, None] & np.isfinite(W)[None]
            fin = np.where(ok, np.abs(a)[:, :, None] * np.abs(W)[None], 0.0).sum(axis=1)
            fin = fin + np.where(np.isfinite(b), np.abs(b), 0.0)
            if (fin >= limit).any():
                return True
            z = np.matmul(a, W) + b
            if i < L:
                a = np.where(z > 0, z, np.where(np.isnan(z), z, 0.0)) if act == "relu" \
                    else 1.0 / (1.0 + np.exp(-z))
    return False


def _same_structure(got, want, rtol=None, atol=None, what="result"):
    """Order-dependent values (_order_dependent): only the keys, shapes and dtypes."""
    if isinstance(want, dict):
        assert isinstance(got, dict) and sorted(got) == sorted(want), (what, list(got), list(want))
        for k in want:
            assert np.shape(got[k]) == np.shape(want[k]), (what, k, np.shape(got[k]))
    else:
        assert np.shape(got) == np.shape(want), (what, np.shape(got), np.shape(want))


def check_net(which, act, lam, params, x, t, isa="baseline"):
    f, r = _nets(which, act, lam, params)
    xv = G.build(x)
    one = np.ndim(xv) == 1
    C = params["W%d" % (len(params) // 2)].vals.shape[1]
    # t is read against the net's output: (C,) for a 1-D x (one sample), as the book's
    # predict gives it, else (rows, C)
    y_shape = (C,) if one else (np.shape(xv)[0], C)
    mode, t_ref = RULES.dlfs_targets(y_shape, t)
    if t_ref is None and isinstance(t, G.Labels) and t.kind == "list":
        t_ref = np.asarray(t.build())  # README: array-likes wherever the book needs t.shape
    tt = t_ref if t_ref is not None else materialize(t)
    x_ref = np.asarray(xv) if x.kind == "list" else x  # the book's x.shape needs an ndarray
    if one:
        # one sample as the book's batch of one: x (1, K), a one-hot t (1, C), a label (1,)
        gx = np.asarray(xv).reshape(1, -1)
        gt = np.asarray(tt)
        gt = gt.reshape(1, -1) if gt.size == C else gt.reshape(-1)
    else:
        gx, gt = x_ref, tt
        if np.ndim(gt) == 0:
            # one row's label as a 0-d array: the book's backward reads t.shape[0]; fastnn
            # takes it as the label it is (README: a label of any shape of size 1)
            gt = np.reshape(gt, 1)
    if one and which == "MultiLayerNet":
        # README: a 1-D x is one sample, for every net (the book's Affine reshapes x (K,)
        # to (K, 1): K samples of one feature, which fails for K > 1)
        x_ref, tt = gx, gt
    float32 = "float32" in (params["W1"].kind, x.kind)
    names = ("x", "t", "labels", "y")
    tv = np.asarray(tt)
    # (the values as built: 1e308 becomes inf in float32)
    nonfinite = not all(np.isfinite(G.recipe_values(v)).all() for v in list(params.values()) + [x]) or (
        tv.dtype.kind == "f" and not np.isfinite(tv).all())

    def ieee():  # a fresh context per reference call (see _rules.ieee_dot)
        return RULES.ieee_dot() if nonfinite else None
    loose = _order_dependent(act, params, x)
    with G.on_isa(isa):
        fo, ro, _ = agree(f.loss, r.loss, (x, t), names=names, mode=mode, ref_args=(x_ref, tt),
                          label="%s.loss" % which, rtol=1e-4 if float32 else 1e-10,
                          atol=1e-6 if float32 else 1e-13, ref_context=ieee(),
                          compare=_same_structure if loose else None)
        if fo.exc is not None:
            return
        # the book's gradient needs a batch (ch04's batch_num = x.shape[0] would be the
        # feature count of a 1-D x): compared with the book's batch of one
        gmode = "either" if one and mode == "ref" else mode
        agree(f.gradient, r.gradient, (x, t), names=names, mode=gmode, ref_args=(gx, gt),
              label="%s.gradient" % which, rtol=1e-3 if float32 else 1e-8,
              atol=1e-5 if float32 else 1e-11, ref_context=ieee(),
              compare=_same_structure if loose else _grads_in_net_dtype(x, params))
        # the reference's f(w+h) - f(w-h) is a difference of two totals: it loses about
        # eps |f| / h (weight decay can make |f| large); fastnn sums per-row differences
        lv = abs(float(ro.value)) if ro is not None and ro.exc is None and np.isfinite(ro.value) else 0.0
        agree(f.numerical_gradient, r.numerical_gradient, (x, t), names=names, mode=mode,
              ref_args=(x_ref, tt),
              label="%s.numerical_gradient" % which, rtol=0 if float32 else 1e-6,
              atol=(5e-2 + 5e-3 * lv) if float32 else (1e-8 + 1e-11 * lv), ref_context=ieee(),
              compare=_same_structure if loose else None)


@given(case=net_case(), isa=G.isas())
def test_net(case, isa):
    check_net(*case, isa=isa)


def _params(sizes, W1_00=None, dtype="float64"):
    rng = np.random.default_rng(1)
    p = {}
    for i in range(1, len(sizes)):
        W = rng.standard_normal((sizes[i - 1], sizes[i]))
        if i == 1 and W1_00 is not None:
            W[0, 0] = W1_00
        p["W%d" % i] = G.recipe(W, dtype)
        p["b%d" % i] = G.recipe(np.zeros(sizes[i]), dtype)
    return p


X23 = G.recipe([[1.0, 2.0, 0.5], [0.0, -1.0, 2.0]])


@cases(
    # issue #11 item 11: a 1e200 weight: NaN loss, and the book's numerical gradient is NaN
    huge_weight=dict(which="MultiLayerNet", act="relu", lam=0, params=_params([3, 4, 2], 1e200),
                     x=X23, t=G.Labels("int", 2, 2, 0)),
    nan_weight_decay=dict(which="MultiLayerNet", act="sigmoid", lam=float("nan"),
                          params=_params([3, 4, 2]), x=X23, t=G.Labels("int", 2, 2, 0)),
    # issue #11 item 4: a transposed one-hot reaches the nets too
    onehot_T=dict(which="TwoLayerNet", act="sigmoid", lam=None, params=_params([3, 4, 3]),
                  x=G.recipe(np.ones((2, 3))), t=G.Labels("onehot_T", 2, 3, 0)),
    # issue #11 item 5: bool labels
    bool_labels=dict(which="TwoLayerNet", act="sigmoid", lam=None, params=_params([3, 4, 2]),
                     x=X23, t=G.Labels("bool", 2, 2, 5)),
)
def test_net_cases(case):
    check_net(**case)


# --- ch05's TwoLayerNet (ReluTwoLayerNet) and ch06's MultiLayerNetExtend --------------------

def _rebind_ref_layers(r):
    """The book's layers hold the params arrays: point them at the (recast) params again."""
    for name, layer in r.layers.items():
        if name.startswith("Affine"):
            i = name[len("Affine"):]
            layer.W, layer.b = r.params["W" + i], r.params["b" + i]
        elif name.startswith("BatchNorm"):
            i = name[len("BatchNorm"):]
            layer.gamma, layer.beta = r.params["gamma" + i], r.params["beta" + i]


@st.composite
def extended_case(draw):
    which = draw(st.sampled_from(("ReluTwoLayerNet", "MultiLayerNetExtend")))
    n_in, n_out, B = draw(st.integers(1, 4)), draw(st.integers(1, 3)), draw(st.integers(1, 3))
    if which == "ReluTwoLayerNet":
        hidden, opts = [draw(st.integers(1, 3))], {}
    else:
        hidden = draw(st.lists(st.integers(1, 3), max_size=2))
        opts = dict(activation=draw(st.sampled_from(("relu", "sigmoid"))),
                    weight_decay_lambda=draw(st.sampled_from((0, 0.1))),
                    use_dropout=draw(st.booleans()), dropout_ration=draw(st.sampled_from((0.2, 0.5))),
                    use_batchnorm=draw(st.booleans()))
    x = G.Recipe(draw(G.values((B, n_in), specials=False)),
                 draw(st.sampled_from(("float64", "float64", "float32", "int64", "list"))),
                 draw(st.sampled_from(G.LAYOUTS)))
    t = draw(G.labels(B, n_out, kinds=("int", "int32", "list", "onehot", "soft", "bool", "onehot_T",
                                       "out_of_range", "negative", "column", "count+1")))
    return (which, n_in, hidden, n_out, opts, draw(st.sampled_from(("float64", "float32"))), x, t,
            draw(st.integers(0, 2 ** 16)))


def check_extended(which, n_in, hidden, n_out, opts, pdtype, x, t, seed, isa="baseline"):
    args = (n_in, hidden[0], n_out) if which == "ReluTwoLayerNet" else (n_in, hidden, n_out)
    np.random.seed(seed)
    f = getattr(N, which)(*args, **opts)
    np.random.seed(seed)
    r = (R.TwoLayerNetCh05 if which == "ReluTwoLayerNet" else R.MultiLayerNetExtend)(*args, **opts)
    if pdtype == "float32":
        f.params = {k: v.astype(np.float32) for k, v in f.params.items()}
        r.params = {k: v.astype(np.float32) for k, v in r.params.items()}
        _rebind_ref_layers(r)
    xv = G.build(x)
    x_ref = np.asarray(xv) if x.kind == "list" else x
    mode, t_ref = RULES.dlfs_targets((np.shape(xv)[0], n_out), t)
    if t_ref is None and isinstance(t, G.Labels) and t.kind == "list":
        t_ref = np.asarray(t.build())   # README: array-likes wherever the book needs t.shape
    tt = t_ref if t_ref is not None else t
    float32 = "float32" in (pdtype, x.kind)
    names = ("x", "t", "labels", "y")
    dropout = opts.get("use_dropout", False)
    bn = opts.get("use_batchnorm", False)

    def seeded(fn):  # the same draws (Dropout's masks) for fastnn and the book
        def call_it(*a):
            np.random.seed(seed + 1)
            return fn(*a)
        return call_it
    with G.on_isa(isa):
        fo, lo, _ = agree(seeded(f.loss), seeded(r.loss), (x, t), names=names, mode=mode,
                          ref_args=(x_ref, tt), label="%s.loss" % which,
                          rtol=1e-4 if float32 else 1e-10, atol=1e-6 if float32 else 1e-13)
        if fo.exc is not None:
            return
        agree(f.predict, r.predict, (x,), names=names, ref_args=(x_ref,), label="%s.predict" % which,
              rtol=1e-4 if float32 else 1e-10, atol=1e-5 if float32 else 1e-12)
        fo, ro, _ = agree(seeded(f.gradient), seeded(r.gradient), (x, t), names=names, mode=mode,
                          ref_args=(x_ref, tt), label="%s.gradient" % which,
                          rtol=1e-3 if float32 else 1e-8, atol=1e-5 if float32 else 1e-11,
                          compare=_grads_in_net_dtype(x, {k: G.recipe(v, pdtype) for k, v in f.params.items()}))
        if bn and fo.exc is None:
            for i in range(1, len(hidden) + 1):
                for a in ("running_mean", "running_var"):
                    assert_same(getattr(f.layers["BatchNorm%d" % i], a), getattr(r.layers["BatchNorm%d" % i], a),
                                rtol=1e-4 if float32 else 1e-10, atol=1e-6 if float32 else 1e-12,
                                what="%s BatchNorm%d.%s after gradient" % (which, i, a), check_type=False)
        if dropout and sum(np.size(v) for v in f.params.values()) > 40:
            return   # the book's loop with new masks per loss call: kept small
        # (the reference's difference of two totals loses about eps |f| / h; see check_net)
        lv = abs(float(lo.value)) if lo is not None and lo.exc is None and np.isfinite(lo.value) else 0.0
        agree(seeded(f.numerical_gradient), seeded(r.numerical_gradient), (x, t), names=names,
              mode=mode, ref_args=(x_ref, tt), label="%s.numerical_gradient" % which,
              rtol=0 if float32 else 1e-6,
              atol=(5e-2 + 5e-3 * lv) if float32 else (1e-7 + 1e-11 * lv))


@given(case=extended_case(), isa=G.isas())
def test_extended_nets(case, isa):
    check_extended(*case, isa=isa)
