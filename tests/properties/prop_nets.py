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
from _check import agree, cases


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


def check_net(which, act, lam, params, x, t, isa="baseline"):
    f, r = _nets(which, act, lam, params)
    xv = G.build(x)
    one = np.ndim(xv) == 1
    y_shape = (params["W%d" % (len(params) // 2)].vals.shape[1],)
    if not one:
        y_shape = (np.shape(xv)[0],) + y_shape
    mode, t_ref = RULES.dlfs_targets(y_shape, t)
    x_ref = x
    if x.kind == "list":
        x_ref = np.asarray(xv)  # the book's x.shape needs an ndarray; fastnn takes lists
    float32 = "float32" in (params["W1"].kind, x.kind)
    names = ("x", "t", "labels", "y")
    with G.on_isa(isa):
        fo, ro, _ = agree(f.loss, r.loss, (x, t), names=names, mode=mode,
                          ref_args=(x_ref, t if t_ref is None else t_ref),
                          label="%s.loss" % which, rtol=1e-4 if float32 else 1e-10,
                          atol=1e-6 if float32 else 1e-13)
        if fo.exc is not None:
            return
        # the book's gradient needs a batch (batch_num = x.shape[0]); a 1-D x is one sample
        gx, gt = x_ref, (t if t_ref is None else t_ref)
        gmode = mode
        if one:
            gx = np.asarray(G.build(x), dtype=None).reshape(1, -1)
            gt = np.asarray(G.Labels.build(t) if isinstance(t, G.Labels) else t)
            gt = gt.reshape(1, -1) if gt.size == y_shape[-1] else gt.reshape(-1)
            gmode = "either" if mode == "ref" else mode
        agree(f.gradient, r.gradient, (x, t), names=names, mode=gmode, ref_args=(gx, gt),
              label="%s.gradient" % which, rtol=1e-3 if float32 else 1e-8,
              atol=1e-5 if float32 else 1e-11)
        agree(f.numerical_gradient, r.numerical_gradient, (x, t), names=names, mode=mode,
              ref_args=(x_ref, t if t_ref is None else t_ref),
              label="%s.numerical_gradient" % which, rtol=0 if float32 else 1e-6,
              atol=5e-2 if float32 else 1e-8)


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
