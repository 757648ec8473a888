"""fastnn.util (conv_output_size, im2col, col2im) and layers.Convolution / Pooling against
tests/reference.py (the book's common/util.py and common/layers.py), on generated batches
of images, filters, strides and pads, every dtype and memory layout.

Documented differences (README, fastnn.util): the book builds its arrays with np.zeros and
so returns float64 for any input; fastnn keeps float32 float32 (integers give float64). A
geometry with no window (a filter larger than the padded input), a stride < 1 or a pad < 0
raises a ValueError naming the argument (the book returns empty arrays or fails deep in
NumPy); so does a padded Pooling whose output the book sizes without its padding.
"""
import numpy as np
from hypothesis import given, strategies as st

import reference as R
from fastnn import layers as L
from fastnn import util as U

import _gen as G
import _rules as RULES
from _check import agree, assert_same, call, cases

CONV_SPECIALS = (np.nan, np.inf, -np.inf, 0.0, -0.0, 5e-324, 1.0)  # no huge finite values:
# with them a sum's overflow (and so inf vs NaN) would depend on the summation order


def _result_dtype(*kinds):
    """fastnn's rule: float32 stays float32 (mixed: NumPy's promotion, int64 with float32
    is float64), integers alone -> float64."""
    dt = np.result_type(*[np.dtype(k) for k in kinds])
    return dt if dt.kind == "f" else np.dtype(np.float64)


@st.composite
def images(draw, max_side=9):
    N, C = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    H, W = draw(st.integers(1, max_side)), draw(st.integers(1, max_side))
    vals = draw(G.values((N, C, H, W), specials=False))
    if draw(st.booleans()):
        flat = vals.reshape(-1)
        for _ in range(draw(st.integers(1, 3))):
            flat[draw(st.integers(0, flat.size - 1))] = draw(st.sampled_from(CONV_SPECIALS))
    kind = draw(st.sampled_from(("float64", "float64", "float32", "int64")))
    return G.Recipe(vals, kind, draw(st.sampled_from(G.LAYOUTS)))


@st.composite
def geometry(draw, shape):
    """(fh, fw, stride, pad): mostly valid for `shape`, sometimes not."""
    H, W = shape[2], shape[3]
    pad = draw(st.integers(0, 2))
    fh = draw(st.integers(1, max(1, min(H + 2 * pad, 5))))
    fw = draw(st.integers(1, max(1, min(W + 2 * pad, 5))))
    stride = draw(st.integers(1, 3))
    bad = draw(st.sampled_from((None,) * 6 + ("big_filter", "stride0", "negpad", "float_stride")))
    if bad == "big_filter":
        fh = H + 2 * pad + draw(st.integers(1, 2))
    elif bad == "stride0":
        stride = 0
    elif bad == "negpad":
        pad = -1
    elif bad == "float_stride":
        stride = 2.0
    return fh, fw, stride, pad, bad


def _geometry_mode(bad):
    # README: a stride < 1, a pad < 0, a non-integer stride or a window larger than the
    # padded input raises ValueError/TypeError naming it (the book returns an empty array
    # for a filter one pixel too large, or fails inside NumPy)
    return "ref" if bad is None else "raise"


GEOM_NAMES = ("filter_h", "filter_w", "stride", "pad", "input_data", "pool_h", "pool_w",
              "col", "input_shape", "x", "W", "b", "dout")


@given(x=images(), data=st.data(), isa=G.isas())
def test_im2col_col2im(x, data, isa):
    shape = x.vals.shape
    fh, fw, stride, pad, bad = data.draw(geometry(shape))
    res = _result_dtype(x.kind)
    mode = _geometry_mode(bad)
    with G.on_isa(isa):
        f, r, _ = agree(U.im2col, R.im2col, (x, fh, fw, stride, pad), names=GEOM_NAMES,
                        mode=mode, label="im2col", check_type=False)
        if f.exc is not None:
            return
        assert f.value.dtype == res, ("im2col", f.value.dtype, res)
        # col2im of the book's col (and of a random col of that shape): the adjoint
        col = r.value.astype(res) if data.draw(st.booleans()) else \
            data.draw(G.values(r.value.shape, specials=False)).astype(res)
        layout = data.draw(st.sampled_from(G.LAYOUTS))
        cr = G.Recipe(col.astype(np.float64), str(res), layout)
        # each pixel sums up to fh * fw entries: float32 rounds each partial sum (the book
        # adds them in float64), an error relative to the entries, not to their sum
        fin = np.abs(col[np.isfinite(col)])
        big = float(fin.max()) if fin.size else 0.0
        f2, r2, _ = agree(U.col2im, R.col2im, (cr, shape, fh, fw, stride, pad), names=GEOM_NAMES,
                          label="col2im", check_type=False,
                          rtol=1e-5 if res == np.float32 else 1e-15,
                          atol=4 * fh * fw * 1.2e-7 * big if res == np.float32 else 1e-300)
        if f2.exc is None:
            assert f2.value.dtype == res, ("col2im", f2.value.dtype, res)


@given(size=st.integers(-3, 300), fs=st.integers(-2, 10), stride=st.integers(1, 4), pad=st.integers(0, 3))
def test_conv_output_size(size, fs, stride, pad):
    """The book's true division, float result (the nets int() it)."""
    agree(U.conv_output_size, R.conv_output_size, (size, fs, stride, pad), names=("input_size",),
          label="conv_output_size")


def _conv_tolerance(x, W, b, res, K):
    eps = 1.2e-7 if res == np.float32 else 2.3e-16
    xv, Wv = np.abs(G.recipe_values(x)), np.abs(G.recipe_values(W))
    scale = (float(np.nanmax(np.where(np.isfinite(xv), xv, 0))) *
             float(np.nanmax(np.where(np.isfinite(Wv), Wv, 0))) + 1.0)
    return dict(rtol=4 * (K + 2) * eps, atol=4 * (K + 2) * eps * scale * K)


@st.composite
def conv_case(draw):
    x = draw(images(max_side=8))
    N, C, H, Wd = x.vals.shape
    fh, fw, stride, pad, bad = draw(geometry(x.vals.shape))
    FN = draw(st.integers(1, 3))
    Cw = C if draw(st.integers(0, 9)) else C + 1          # sometimes a channel mismatch
    wk = draw(st.sampled_from(("float64", "float64", "float32")))
    Wv = draw(G.values((FN, Cw, max(fh, 1), max(fw, 1)), specials=False)) * 0.5
    if draw(st.integers(0, 4)) == 0:
        Wv.reshape(-1)[0] = draw(st.sampled_from(CONV_SPECIALS))
    W = G.Recipe(Wv, wk, draw(st.sampled_from(("C", "F", "strided", "readonly"))))
    b = G.Recipe(draw(G.values((FN,), specials=False)) * 0.1, wk, "C")
    return x, W, b, stride, pad, bad, Cw != C


@given(case=conv_case(), data=st.data(), isa=G.isas())
def test_convolution(case, data, isa):
    x, W, b, stride, pad, bad, mismatch = case
    Wf, bf, Wr, br = G.build(W), G.build(b), G.build(W), G.build(b)
    f, r = L.Convolution(Wf, bf, stride, pad), R.Convolution(Wr, br, stride, pad)
    FN, C, FH, FW = W.vals.shape
    res = _result_dtype(x.kind, W.kind)
    mode = "raise" if mismatch else _geometry_mode(bad)
    K = C * FH * FW
    tol = _conv_tolerance(x, W, b, res, K)
    nonfinite = not (np.isfinite(G.recipe_values(x)).all() and np.isfinite(W.vals).all())
    with G.on_isa(isa):
        fo, ro, _ = agree(f.forward, r.forward, (x,), names=GEOM_NAMES, mode=mode,
                          label="Convolution.forward", check_type=False,
                          ref_context=RULES.ieee_dot() if nonfinite else None, **tol)
        if fo.exc is not None:
            return
        assert fo.value.dtype == res, ("Convolution.forward", fo.value.dtype, res)
        assert f.W is Wf and f.b is bf, "Convolution keeps references to W and b"
        dout = G.Recipe(data.draw(G.values(fo.value.shape, specials=False)),
                        data.draw(st.sampled_from(("float64", "float32"))),
                        data.draw(st.sampled_from(G.LAYOUTS)))
        # backward: dx sums FN products per column entry (then col2im adds them), dW and db
        # sum M rows: a bound on every such sum, relative to its terms
        M = fo.value.shape[0] * fo.value.shape[2] * fo.value.shape[3]
        n = max(M, FN) + 2
        eps = 1.2e-7 if "float32" in (dout.kind, W.kind, x.kind) else 2.3e-16
        with np.errstate(all="ignore"):
            big = max([1.0] + [float(np.nanmax(np.where(np.isfinite(v), np.abs(v), 0)))
                               for v in (G.recipe_values(dout), G.recipe_values(x), W.vals)])
        btol = dict(rtol=8 * n * eps, atol=8 * n * eps * big * big * n * max(FH * FW, 1))
        fo2, ro2, _ = agree(f.backward, r.backward, (dout,), names=("dout",), label="Convolution.backward",
                            check_type=False, ref_context=RULES.ieee_dot() if nonfinite else None,
                            **btol)
        if fo2.exc is None:
            for a in ("dW", "db"):
                assert_same(getattr(f, a), getattr(r, a).astype(getattr(f, a).dtype),
                            what="Convolution." + a, **btol)
            assert_same(f.col_W, r.col_W.astype(f.col_W.dtype), what="Convolution.col_W")
            assert_same(np.asarray(f.col), r.col.astype(np.asarray(f.col).dtype), what="Convolution.col")


@st.composite
def pool_case(draw):
    x = draw(images())
    H, W = x.vals.shape[2:]
    ph, pw = draw(st.integers(1, min(H, 4))), draw(st.integers(1, min(W, 4)))
    stride = draw(st.integers(1, 3))
    pad = draw(st.sampled_from((0, 0, 0, 1)))
    return x, ph, pw, stride, pad


@given(case=pool_case(), data=st.data(), isa=G.isas())
def test_pooling(case, data, isa):
    x, ph, pw, stride, pad = case
    N, C, H, W = x.vals.shape
    f, r = L.Pooling(ph, pw, stride, pad), R.Pooling(ph, pw, stride, pad)
    mode = "ref"
    if pad and (int(1 + (H - ph) / stride), int(1 + (W - pw) / stride)) != (
            (H + 2 * pad - ph) // stride + 1, (W + 2 * pad - pw) // stride + 1):
        # README (layers.Pooling): the book sizes a padded Pooling's output without its
        # padding; where that differs from the padded input's windows fastnn raises
        mode = "raise"
    res = _result_dtype(x.kind)
    with G.on_isa(isa):
        fo, ro, _ = agree(f.forward, r.forward, (x,), names=GEOM_NAMES + ("pad",), mode=mode,
                          label="Pooling.forward", check_type=False)
        if fo.exc is not None:
            return
        assert fo.value.dtype == res, ("Pooling.forward", fo.value.dtype, res)
        assert_same(np.asarray(f.arg_max).reshape(-1), np.asarray(r.arg_max).reshape(-1),
                    what="Pooling.arg_max", check_type=False)
        dout = G.Recipe(data.draw(G.values(fo.value.shape, specials=False)),
                        data.draw(st.sampled_from(("float64", "float32"))),
                        data.draw(st.sampled_from(G.LAYOUTS)))
        agree(f.backward, r.backward, (dout,), names=("dout",), label="Pooling.backward",
              check_type=False, rtol=1e-5 if "float32" == dout.kind else 1e-15,
              atol=1e-5 if "float32" == dout.kind else 1e-300)


@cases(
    # 0 * inf in the zero padding: the book's im2col holds the padding's zeros, and
    # 0 * inf = NaN in its np.dot; a kernel that skipped the padding would give a number
    inf_weight_on_padding=dict(x=G.recipe(np.ones((1, 1, 2, 2))), W=G.recipe([[[[np.inf, 1.0], [1.0, 1.0]]]]),
                               pad=1),
    nan_pixel=dict(x=G.recipe([[[[np.nan, 1.0], [2.0, 3.0]]]]), W=G.recipe(np.ones((1, 1, 1, 1))), pad=0),
)
def test_convolution_cases(case):
    f = L.Convolution(G.build(case["W"]), np.zeros(1), 1, case["pad"])
    r = R.Convolution(G.build(case["W"]), np.zeros(1), 1, case["pad"])
    agree(f.forward, r.forward, (case["x"],), names=GEOM_NAMES, label="Convolution.forward",
          check_type=False, ref_context=RULES.ieee_dot())
