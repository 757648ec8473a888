"""fastnn.convnets (SimpleConvNet, MnistCNN): loss, gradient and numerical_gradient of tiny
conv nets with arbitrary parameters, images and targets, against tests/reference.py (the
book's ch07 net and the course's MNIST CNN over the book's layers).

The nets are tiny (images of at most 2 x 7 x 7, 1-2 filters, batch <= 2) so that the book's
own numerical gradient (two full forward passes per parameter) stays quick. Parameters may
be float32/float64, Fortran-ordered or strided; images any dtype and memory layout, with a
NaN or inf pixel; one weight may be NaN or inf. A geometry the book's constructor sizes
wrongly (an odd convolution output under the 2x2 pool) makes both raise: fastnn clearly.
"""
import numpy as np
from hypothesis import given, strategies as st

import reference as R
from fastnn import convnets as CN

import _gen as G
import _rules as RULES
from _check import agree, assert_same, materialize

SPECIALS = (np.nan, np.inf, -np.inf)
NAMES = ("x", "t", "labels", "y", "W1", "W2", "W3")


@st.composite
def convnet_case(draw):
    which = draw(st.sampled_from(("SimpleConvNet", "MnistCNN")))
    C, H, W = draw(st.integers(1, 2)), draw(st.integers(4, 7)), draw(st.integers(4, 7))
    fn, out = draw(st.integers(1, 2)), draw(st.integers(1, 3))
    if which == "SimpleConvNet":
        H = W                                   # the book sizes W2 from input_dim[1] only
        fs = draw(st.integers(1, 3))
        pad = draw(st.integers(0, 1))
        stride = draw(st.integers(1, 2))
        args = dict(input_dim=(C, H, W), conv_param={"filter_num": fn, "filter_size": fs,
                                                     "pad": pad, "stride": stride},
                    hidden_size=draw(st.integers(1, 3)), output_size=out)
    else:
        fs = draw(st.sampled_from((1, 3)))      # 'same' convolutions: the book's H // 4
        args = dict(input_dim=(C, H, W), filter_num=fn, filter_size=fs, pad=(fs - 1) // 2,
                    output_size=out)
    pdtype = draw(st.sampled_from(("float64", "float64", "float32")))
    seed = draw(st.integers(0, 2 ** 16))
    special = draw(st.sampled_from((None,) * 6 + ("W_nan", "W_inf")))
    B = draw(st.integers(1, 2))
    xv = draw(G.values((B, C, H, W), specials=False))
    if draw(st.integers(0, 3)) == 0:
        xv.reshape(-1)[draw(st.integers(0, xv.size - 1))] = draw(st.sampled_from(SPECIALS))
    x = G.Recipe(xv, draw(st.sampled_from(("float64", "float64", "float32", "int64"))),
                 draw(st.sampled_from(G.LAYOUTS)))
    t = draw(G.labels(B, out))
    layouts = [draw(st.sampled_from(("C", "F", "strided"))) for _ in range(6)]
    return which, args, pdtype, seed, special, layouts, x, t


def _nets(which, args, pdtype, seed, special, layouts):
    """The fastnn net and the book's with equal, independent copies of the same params
    (fastnn's shapes: the course net's book twin sizes W3 only for 'same' convolutions,
    which is all this module draws)."""
    np.random.seed(seed)
    f = getattr(CN, which)(**args)
    r = getattr(R, which)(**args)
    rng = np.random.default_rng(seed)
    recipes = {}
    for i, k in enumerate(sorted(f.params)):
        v = rng.standard_normal(np.shape(f.params[k])) * (0.5 if k.startswith("W") else 0.1)
        if special and k == "W1":
            v.reshape(-1)[0] = np.nan if special == "W_nan" else np.inf
        recipes[k] = G.Recipe(v, pdtype, layouts[i] if v.ndim else "C")
    f.params = {k: G.build(v) for k, v in recipes.items()}
    r.params = {k: G.build(v) for k, v in recipes.items()}
    for i, key in enumerate(r._param_layers):
        r.layers[key].W = r.params["W%d" % (i + 1)]
        r.layers[key].b = r.params["b%d" % (i + 1)]
    return f, r, recipes


def _compare_grads(res):
    def compare(got, want, rtol=None, atol=None, what="gradient"):
        assert isinstance(got, dict) and sorted(got) == sorted(want), (what, list(got), list(want))
        for k in want:
            assert isinstance(got[k], np.ndarray) and got[k].dtype == res, (
                "%s[%r]: dtype %s, expected %s" % (what, k, getattr(got[k], "dtype", None), res))
            assert np.shape(got[k]) == np.shape(want[k]), (what, k, np.shape(got[k]))
            assert_same(got[k], np.asarray(want[k]).astype(res), rtol=rtol, atol=atol,
                        what="%s[%r]" % (what, k))
    return compare


def _compare_numgrad(got, want, rtol=None, atol=None, what="numerical_gradient"):
    assert isinstance(got, dict) and sorted(got) == sorted(want), (what, list(got), list(want))
    for k in want:
        g, w = np.asarray(got[k], dtype=np.float64), np.asarray(want[k], dtype=np.float64)
        assert g.shape == w.shape, (what, k, g.shape, w.shape)
        assert_same(g, w, rtol=rtol, atol=atol, what="%s[%r]" % (what, k), check_type=False)


@given(case=convnet_case(), isa=G.isas())
def test_convnet(case, isa):
    which, args, pdtype, seed, special, layouts, x, t = case
    f, r, recipes = _nets(which, args, pdtype, seed, special, layouts)
    out = args["output_size"]
    B = x.vals.shape[0]
    mode, t_ref = RULES.dlfs_targets((B, out), t)
    tt = t_ref if t_ref is not None else materialize(t)
    if t_ref is None and isinstance(t, G.Labels) and t.kind == "list":
        tt = np.asarray(t.build())      # the book's backward reads t.shape
    float32 = "float32" in (pdtype, x.kind)
    # README: the gradient is in the promoted float dtype of x and the params
    res = np.dtype("float32" if pdtype == x.kind == "float32" else "float64")
    tv = np.asarray(tt)
    nonfinite = special is not None or not np.isfinite(G.recipe_values(x)).all() or (
        tv.dtype.kind == "f" and not np.isfinite(tv).all())    # e.g. a one-hot holding NaN

    def ieee():  # a fresh context per reference call (see _rules.ieee_dot)
        return RULES.ieee_dot() if nonfinite else None

    with G.on_isa(isa):
        fo, ro, _ = agree(f.loss, r.loss, (x, t), names=NAMES, mode=mode, ref_args=(x, tt),
                          label="%s.loss" % which, rtol=1e-4 if float32 else 1e-10,
                          atol=1e-6 if float32 else 1e-13, ref_context=ieee(),
                          check_type=False)  # the book's im2col makes float64 of float32
        if fo.exc is None:
            assert np.asarray(fo.value).dtype == res, ("loss dtype", np.asarray(fo.value).dtype, res)
        if fo.exc is not None:
            return
        gt = tt if np.ndim(tt) else np.reshape(tt, 1)
        agree(f.gradient, r.gradient, (x, t), names=NAMES, mode=mode, ref_args=(x, gt),
              label="%s.gradient" % which, rtol=1e-3 if float32 else 1e-8,
              atol=1e-5 if float32 else 1e-11, ref_context=ieee(), compare=_compare_grads(res))
        # the reference's f(w+h) - f(w-h) is a difference of two totals: it loses about
        # eps |f| / h; fastnn sums per-row differences (prop_nets.py: the same bound)
        lv = abs(float(ro.value)) if ro is not None and ro.exc is None and np.isfinite(ro.value) else 0.0
        agree(f.numerical_gradient, r.numerical_gradient, (x, t), names=NAMES, mode=mode,
              ref_args=(x, tt), label="%s.numerical_gradient" % which,
              rtol=0 if float32 else 1e-6,
              atol=(5e-2 + 5e-3 * lv) if float32 else (1e-8 + 1e-11 * lv),
              ref_context=ieee(), compare=_compare_numgrad)
