"""fastnn.losses (issue #12: Keras's and tf.nn's losses) against their formulas.

The oracle is the formulas of tf.keras.losses / tf.nn in TensorFlow 2.x (Keras 2), written
here in float64 NumPy, as the README states them:

* categorical_crossentropy: probabilities divided by their sum over `axis`, clipped to
  [1e-7, 1 - 1e-7], ``-sum(t log p)``; with logits ``-sum(t log_softmax(x))``;
* sparse_categorical_crossentropy: probabilities clipped first, then normalised (Keras takes
  the log of the clipped probabilities as logits): ``-log(c_t / sum(c))``;
* binary_crossentropy: ``mean(-(t log(c + 1e-7) + (1 - t) log(1 - c + 1e-7)))``, c the
  clipped probabilities; with logits ``mean(max(x, 0) - x t + log1p(exp(-|x|)))``;
* label smoothing s: ``t (1 - s) + s / C`` (categorical), ``t (1 - s) + s / 2`` (binary);
* every ``f_grad``: the gradient of ``f(...).sum()`` with respect to y_pred / logits,
  checked against a central difference of the float64 formula; a probability that the
  clip holds at a bound gets no gradient (TensorFlow's clip_by_value).

Inputs come in float64/float32 (integers compute in float64), every memory layout, on
`axis` -1 or another axis; bad input (mismatched shapes, labels out of range or not
integers, bool labels, a smoothing outside [0, 1], an axis out of range) must raise a
clear ValueError/TypeError naming the argument.
"""
import numpy as np
from hypothesis import given, strategies as st

import _gen as G
from _check import agree, assert_same, call, cases
from fastnn import losses as FL

EPS = 1e-7


# --- the formulas (float64) ----------------------------------------------------------------

def _log_softmax(x, axis=-1):
    m = np.max(x, axis=axis, keepdims=True)
    return x - m - np.log(np.sum(np.exp(x - m), axis=axis, keepdims=True))


def _bounds(y_pred):
    """Keras clips in y_pred's dtype: epsilon and 1 - epsilon rounded to float32 for a float32
    y_pred (1 - 1e-7 becomes 0.99999988)."""
    dt = np.asarray(y_pred).dtype
    if dt.kind == "f" and dt.itemsize == 4:      # float32, either byte order
        e = np.float32(EPS)
        return float(e), float(np.float32(1) - e)
    return EPS, 1 - EPS


def _smooth(t, s, n):
    return t * (1 - s) + s / n if s else t


def ref_categorical(y_true, y_pred, from_logits=False, label_smoothing=0.0, axis=-1):
    lo, hi = _bounds(y_pred)
    t = np.asarray(y_true, dtype=np.float64)
    y = np.asarray(y_pred, dtype=np.float64)
    t = _smooth(t, label_smoothing, y.shape[axis])
    if from_logits:
        return -np.sum(t * _log_softmax(y, axis), axis=axis)
    p = np.clip(y / np.sum(y, axis=axis, keepdims=True), lo, hi)
    return -np.sum(t * np.log(p), axis=axis)


def ref_sparse_categorical(y_true, y_pred, from_logits=False, axis=-1):
    lo, hi = _bounds(y_pred)
    y = np.moveaxis(np.asarray(y_pred, dtype=np.float64), axis, -1)
    lab = np.asarray(y_true).astype(np.intp).reshape(y.shape[:-1])
    if from_logits:
        ls = _log_softmax(y)
    else:
        c = np.clip(y, lo, hi)
        ls = np.log(c) - np.log(np.sum(c, axis=-1, keepdims=True))
    return -np.take_along_axis(ls, lab[..., None], axis=-1)[..., 0]


def ref_binary(y_true, y_pred, from_logits=False, label_smoothing=0.0, axis=-1):
    lo, hi = _bounds(y_pred)
    z = np.asarray(y_true, dtype=np.float64)
    x = np.asarray(y_pred, dtype=np.float64)
    z = z * (1 - label_smoothing) + 0.5 * label_smoothing if label_smoothing else z
    if from_logits:
        return np.mean(np.maximum(x, 0) - x * z + np.log1p(np.exp(-np.abs(x))), axis=axis)
    p = np.clip(x, lo, hi)
    return np.mean(-(z * np.log(p + EPS) + (1 - z) * np.log(1 - p + EPS)), axis=axis)


def ref_mse(y_true, y_pred):
    return np.mean((np.asarray(y_true, dtype=np.float64) - np.asarray(y_pred, dtype=np.float64)) ** 2,
                   axis=-1)


def ref_softmax_ce_logits(labels, logits, axis=-1):
    return ref_categorical(labels, logits, from_logits=True, axis=axis)


def ref_sparse_softmax_ce_logits(labels, logits):
    return ref_sparse_categorical(labels, logits, from_logits=True)


def ref_sigmoid_ce_logits(labels, logits):
    z, x = np.asarray(labels, dtype=np.float64), np.asarray(logits, dtype=np.float64)
    return np.maximum(x, 0) - x * z + np.log1p(np.exp(-np.abs(x)))


def _tol(dtype):
    return dict(rtol=1e-10, atol=1e-12) if dtype == "float64" else dict(rtol=2e-5, atol=2e-6)


def _as_result(ref_fn, dtype):
    """The formula in float64, returned in y_pred's float dtype (integers: float64), as a
    NumPy scalar where the per-sample result is 0-d."""
    res = np.float32 if dtype == "float32" else np.float64

    def f(*a, **k):
        with np.errstate(all="ignore"):
            out = np.asarray(ref_fn(*a, **k)).astype(res)
        return out[()] if out.ndim == 0 else out
    return f


def _fd_grad(ref_fn, args, kwargs, which, h=1e-5):
    """Central difference of ref_fn(...).sum() with respect to args[which] (float64)."""
    a = [np.array(x, dtype=np.float64) if i == which else x for i, x in enumerate(args)]
    x = a[which]
    g = np.zeros_like(x)
    for idx in np.ndindex(x.shape):
        v = x[idx]
        step = h * max(1.0, abs(v))
        x[idx] = v + step
        fp = np.sum(ref_fn(*a, **kwargs))
        x[idx] = v - step
        fm = np.sum(ref_fn(*a, **kwargs))
        x[idx] = v
        g[idx] = (fp - fm) / (2 * step)
    return g


# --- generated cases -------------------------------------------------------------------------

KINDS = ("float64", "float64", "float32", "int64")


@st.composite
def class_case(draw, max_size=600):
    """(shape, axis, dtype, layout): classes on `axis` (2-D and 3-D also on axis 0 / 1)."""
    shape = draw(st.one_of(st.tuples(G.dim(1, 9), G.dim(2, 257)), st.tuples(G.dim(2, 257)),
                           st.tuples(G.dim(1, 4), G.dim(1, 5), G.dim(2, 9))))
    axis = draw(st.sampled_from([-1, -1, len(shape) - 1] + list(range(len(shape) - 1))))
    dtype = draw(st.sampled_from(("float64", "float64", "float32")))
    return shape, axis, dtype


def _targets(draw, shape, axis):
    """One-hot or soft targets of `shape` (classes on `axis`) and the labels."""
    C = shape[axis]
    rest = tuple(s for i, s in enumerate(shape) if i != axis % len(shape))
    lab = np.random.default_rng(draw(st.integers(0, 999))).integers(0, C, size=rest)
    onehot = np.moveaxis(np.eye(C)[lab], -1, axis)
    soft = np.moveaxis(draw(G.probabilities(rest + (C,), specials=False)), -1, axis)
    return draw(st.sampled_from((onehot, soft))), lab


def _preds(draw, shape, axis, from_logits, scales=(1.0, 10.0)):
    C = shape[axis]
    rest = tuple(s for i, s in enumerate(shape) if i != axis % len(shape))
    if from_logits:
        v = draw(G.values(rest + (C,), specials=False, scales=scales))
    else:
        v = draw(G.probabilities(rest + (C,), specials=False))
    return np.moveaxis(v, -1, axis)


def _recipe(draw, vals, dtype):
    return G.Recipe(np.asarray(vals, dtype=np.float64), dtype, draw(st.sampled_from(G.LAYOUTS)))


@given(case=class_case(), from_logits=st.booleans(), ls=st.sampled_from((0.0, 0.1)), data=st.data())
def test_categorical_crossentropy(case, from_logits, ls, data):
    shape, axis, dtype = case
    t, _ = _targets(data.draw, shape, axis)
    y = _preds(data.draw, shape, axis, from_logits)
    yt, yp = _recipe(data.draw, t, dtype), _recipe(data.draw, y, dtype)
    kw = {"from_logits": from_logits, "label_smoothing": ls, "axis": axis}
    agree(FL.categorical_crossentropy, _as_result(ref_categorical, dtype), (yt, yp), kw,
          names=("y_true", "y_pred"), label="categorical_crossentropy", **_tol(dtype))
    if from_logits and not ls:
        agree(FL.softmax_cross_entropy_with_logits, _as_result(ref_softmax_ce_logits, dtype),
              (yt, yp), {"axis": axis}, names=("labels", "logits"),
              label="softmax_cross_entropy_with_logits", **_tol(dtype))


@given(case=class_case(), from_logits=st.booleans(), trailing=st.booleans(),
       label_kind=st.sampled_from(("int", "int32", "float", "list")), data=st.data())
def test_sparse_categorical_crossentropy(case, from_logits, trailing, label_kind, data):
    shape, axis, dtype = case
    _, lab = _targets(data.draw, shape, axis)
    y = _preds(data.draw, shape, axis, from_logits)
    # README: labels may carry a trailing axis of 1 and be whole-valued floats, as in Keras
    lab = lab[..., None] if trailing else lab
    lab = {"int": lab, "int32": lab.astype(np.int32), "float": lab.astype(np.float64),
           "list": lab.tolist()}[label_kind]
    yp = _recipe(data.draw, y, dtype)
    agree(FL.sparse_categorical_crossentropy, _as_result(ref_sparse_categorical, dtype), (lab, yp),
          {"from_logits": from_logits, "axis": axis}, names=("y_true", "y_pred"),
          label="sparse_categorical_crossentropy", **_tol(dtype))
    if from_logits and axis % len(shape) == len(shape) - 1:
        agree(FL.sparse_softmax_cross_entropy_with_logits,
              _as_result(ref_sparse_softmax_ce_logits, dtype), (lab, yp), names=("labels", "logits"),
              label="sparse_softmax_cross_entropy_with_logits", **_tol(dtype))


@given(shape=st.one_of(st.tuples(G.dim(1, 9), G.dim(1, 257)), st.tuples(G.dim(1, 257)),
                       st.tuples(G.dim(1, 3), G.dim(1, 4), G.dim(1, 9))),
       dtype=st.sampled_from(("float64", "float32")), from_logits=st.booleans(),
       ls=st.sampled_from((0.0, 0.2)), soft=st.booleans(), data=st.data())
def test_binary_crossentropy(shape, dtype, from_logits, ls, soft, data):
    zv = data.draw(G.values(shape, specials=False))
    z = 1 / (1 + np.exp(-zv)) if soft else (zv > 0).astype(np.float64)
    x = data.draw(G.values(shape, specials=False, scales=(1.0, 10.0)))
    if not from_logits:
        # probabilities, with some outside [0, 1] or at its ends (clipped)
        x = 1 / (1 + np.exp(-x))
        x.reshape(-1)[:: 5] = data.draw(st.sampled_from((0.0, 1.0, 1.5, -0.5, 0.3)))
    axis = data.draw(st.sampled_from([-1] + list(range(len(shape) - 1))))
    yt, yp = _recipe(data.draw, z, dtype), _recipe(data.draw, x, dtype)
    kw = {"from_logits": from_logits, "label_smoothing": ls, "axis": axis}
    agree(FL.binary_crossentropy, _as_result(ref_binary, dtype), (yt, yp), kw,
          names=("y_true", "y_pred"), label="binary_crossentropy", **_tol(dtype))
    if from_logits:
        agree(FL.sigmoid_cross_entropy_with_logits, _as_result(ref_sigmoid_ce_logits, dtype),
              (), {"labels": yt, "logits": yp}, names=("labels", "logits"),
              label="sigmoid_cross_entropy_with_logits", **_tol(dtype))


@given(shape=G.shapes(min_dims=1, max_dims=3, min_side=1, max_size=500),
       kinds=st.tuples(st.sampled_from(KINDS), st.sampled_from(KINDS)),
       name=st.sampled_from(("MSE", "mse", "mean_squared_error")), data=st.data())
def test_mse(shape, kinds, name, data):
    a, b = data.draw(G.values(shape, specials=False)), data.draw(G.values(shape, specials=False))
    yt, yp = _recipe(data.draw, a, kinds[0]), _recipe(data.draw, b, kinds[1])
    res = "float32" if kinds[1] == "float32" else "float64"   # y_pred's float dtype (README)
    agree(getattr(FL, name), _as_result(ref_mse, res), (yt, yp), names=("y_true", "y_pred"),
          label=name, **_tol("float32" if "float32" in kinds else "float64"))


@given(shape=G.shapes(min_dims=1, max_dims=2, min_side=1, max_size=500),
       dtype=st.sampled_from(("float64", "float32")), data=st.data())
def test_sigmoid_cross_entropy_with_logits_of_any_size(shape, dtype, data):
    """Stable for logits of any size (no overflow): the formula's own stable form."""
    z = (data.draw(G.values(shape, specials=False)) > 0).astype(np.float64)
    x = data.draw(G.values(shape, specials=False, scales=(1.0, 100.0, 1e6)))
    agree(FL.sigmoid_cross_entropy_with_logits, _as_result(ref_sigmoid_ce_logits, dtype), (),
          {"labels": _recipe(data.draw, z, dtype), "logits": _recipe(data.draw, x, dtype)},
          names=("labels", "logits"), label="sigmoid_cross_entropy_with_logits", **_tol(dtype))


# --- gradients ---------------------------------------------------------------------------------

GRADS = {
    "categorical_crossentropy": (ref_categorical, "dense"),
    "softmax_cross_entropy_with_logits": (ref_softmax_ce_logits, "dense_logits"),
    "sparse_categorical_crossentropy": (ref_sparse_categorical, "sparse"),
    "sparse_softmax_cross_entropy_with_logits": (ref_sparse_softmax_ce_logits, "sparse_logits"),
    "binary_crossentropy": (ref_binary, "binary"),
    "sigmoid_cross_entropy_with_logits": (ref_sigmoid_ce_logits, "binary_logits"),
    "mean_squared_error": (ref_mse, "mse"),
}


@given(name=st.sampled_from(sorted(GRADS)), rows=G.dim(1, 4), C=st.integers(2, 9),
       dtype=st.sampled_from(("float64", "float32")), from_logits=st.booleans(),
       ls=st.sampled_from((0.0, 0.1)), data=st.data())
def test_grad_is_the_gradient_of_the_summed_losses(name, rows, C, dtype, from_logits, ls, data):
    """README: f_grad(...) is d f(...).sum() / d y_pred, y_pred's shape (row i: sample i's
    loss), against a central difference of the float64 formula at the same points."""
    ref, kind = GRADS[name]
    shape = (rows, C)
    logits = kind.endswith("logits") or kind == "mse" or (from_logits and kind != "mse")
    draw = data.draw
    if kind.startswith("sparse"):
        t = np.random.default_rng(draw(st.integers(0, 99))).integers(0, C, size=rows)
    elif kind.startswith("binary"):
        t = (draw(G.values(shape, specials=False)) > 0).astype(np.float64)
    elif kind == "mse":
        t = draw(G.values(shape, specials=False, scales=(1.0, 10.0)))
    else:
        t, _ = _targets(draw, shape, -1)
    # probabilities well inside (1e-7, 1 - 1e-7) (no clip within the difference's step)
    y = draw(G.values(shape, specials=False, scales=(1.0, 10.0))) if logits else 0.02 + 0.96 * np.asarray(
        draw(G.probabilities(shape, specials=False)))
    y = np.asarray(y, dtype=dtype).astype(np.float64)     # the points fastnn sees
    if not kind.startswith("sparse"):
        t = np.asarray(t, dtype=dtype).astype(np.float64)
    kw = {}
    if kind in ("dense", "sparse", "binary"):
        kw["from_logits"] = bool(from_logits)
    if kind in ("dense", "binary"):
        kw["label_smoothing"] = ls
    tn = "labels" if "with_logits" in name else "y_true"
    yn = "logits" if "with_logits" in name else "y_pred"
    fargs = {tn: t if kind.startswith("sparse") else G.recipe(t, dtype), yn: G.recipe(y, dtype)}
    got = call(getattr(FL, name + "_grad"), (), dict({k: G.build(v) for k, v in fargs.items()}, **kw),
               label=name + "_grad", fast=True)
    assert got.exc is None, got
    with np.errstate(all="ignore"):
        want = _fd_grad(lambda tt, yy, **k: ref(tt, yy, **k), (t, y), kw, 1)   # (float64 points:
        # none is clipped, so the bounds' rounding does not matter)
    assert_same(got.value, want.astype(dtype), rtol=1e-6 if dtype == "float64" else 2e-4,
                atol=1e-7 if dtype == "float64" else 2e-5, what=name + "_grad")


@given(dtype=st.sampled_from(("float64", "float32")), data=st.data())
def test_clipped_probabilities_get_no_gradient(dtype, data):
    """README: a probability the clip holds at a bound gets no gradient (clip_by_value) --
    binary_crossentropy, and sparse_categorical_crossentropy (which clips before it
    normalises)."""
    rows, C = data.draw(G.dim(1, 5)), data.draw(st.integers(2, 7))
    y = 0.1 + 0.8 * data.draw(G.probabilities((rows, C), specials=False))
    out = np.random.default_rng(data.draw(st.integers(0, 99))).random((rows, C)) < 0.4
    y[out] = data.draw(st.sampled_from((0.0, 1.0, 1.5, -0.5, 1e-9)))
    y = y.astype(dtype)
    t = (data.draw(G.values((rows, C), specials=False)) > 0).astype(dtype)
    g = FL.binary_crossentropy_grad(t, y)
    held = (y < np.asarray(EPS, dtype)) | (y > np.asarray(1 - EPS, dtype))
    assert np.all(g[held] == 0) and np.all(np.isfinite(g)), (y, g)
    lab = np.random.default_rng(1).integers(0, C, size=rows)
    g = FL.sparse_categorical_crossentropy_grad(lab, y)
    assert np.all(g[held] == 0) and np.all(np.isfinite(g)), (y, g)


# --- bad input -----------------------------------------------------------------------------

P = G.recipe(np.full((2, 3), 1 / 3))
OH = G.recipe(np.eye(3)[[0, 2]])


def _bad(fn, args, kwargs=None, names=("y_true", "y_pred", "axis", "label_smoothing")):
    agree(fn, None, args, kwargs or {}, names=names, mode="raise", label=fn.__name__)


@cases(
    shapes=dict(fn="categorical_crossentropy", args=(G.recipe(np.eye(3)[[0, 2]].T), P)),
    flat_targets=dict(fn="categorical_crossentropy", args=(G.recipe([1.0, 0, 0, 0, 0, 1]), P)),
    label_out_of_range=dict(fn="sparse_categorical_crossentropy", args=(np.array([0, 3]), P)),
    negative_label=dict(fn="sparse_categorical_crossentropy", args=(np.array([0, -1]), P)),
    bool_labels=dict(fn="sparse_categorical_crossentropy", args=(np.array([True, False]), P)),
    fractional_labels=dict(fn="sparse_categorical_crossentropy", args=(np.array([0.5, 1.0]), P)),
    nan_label=dict(fn="sparse_categorical_crossentropy", args=(np.array([np.nan, 1.0]), P)),
    label_count=dict(fn="sparse_categorical_crossentropy", args=(np.array([0, 1, 2]), P)),
    smoothing=dict(fn="categorical_crossentropy", args=(OH, P), kwargs={"label_smoothing": 1.5}),
    binary_smoothing=dict(fn="binary_crossentropy", args=(OH, P), kwargs={"label_smoothing": -0.1}),
    axis=dict(fn="categorical_crossentropy", args=(OH, P), kwargs={"axis": 2}),
    axis_bool=dict(fn="categorical_crossentropy", args=(OH, P), kwargs={"axis": True}),
    axis_float=dict(fn="binary_crossentropy", args=(OH, P), kwargs={"axis": 1.0}),
    scalar_pred=dict(fn="categorical_crossentropy", args=(G.recipe(1.0), G.recipe(0.5))),
    complex_pred=dict(fn="binary_crossentropy", args=(OH, G.recipe(np.ones((2, 3)), "complex128"))),
    none_pred=dict(fn="mean_squared_error", args=(OH, None)),
    mse_shapes=dict(fn="mean_squared_error", args=(OH, G.recipe(np.ones((3, 2))))),
)
def test_bad_input(case):
    for suffix in ("", "_grad"):
        _bad(getattr(FL, case["fn"] + suffix), case["args"], case.get("kwargs"))


def test_tf_nn_bad_input():
    _bad(FL.sparse_softmax_cross_entropy_with_logits, (np.array([0, 5]), P), names=("labels",))
    _bad(FL.softmax_cross_entropy_with_logits, (G.recipe(np.ones((3, 2))), P), names=("labels", "logits"))
    _bad(lambda labels, logits: FL.sigmoid_cross_entropy_with_logits(labels=labels, logits=logits),
         (G.recipe(np.ones((3, 2))), P), names=("labels", "logits"))


@given(name=st.sampled_from(("categorical_crossentropy", "binary_crossentropy", "mean_squared_error")),
       where=st.sampled_from(("y_true", "y_pred")), value=st.sampled_from((np.nan, np.inf, -np.inf)),
       data=st.data())
def test_nan_and_inf_reach_their_sample_only(name, where, value, data):
    """A NaN/inf in sample i changes only sample i's loss (no reduction across samples), to
    what the formula gives."""
    rows, C = data.draw(G.dim(2, 6)), data.draw(st.integers(2, 7))
    t, _ = _targets(data.draw, (rows, C), -1)
    y = 0.05 + 0.9 * data.draw(G.probabilities((rows, C), specials=False))
    args = {"y_true": np.array(t), "y_pred": np.array(y)}
    i, j = data.draw(st.integers(0, rows - 1)), data.draw(st.integers(0, C - 1))
    args[where][i, j] = value
    ref = {"categorical_crossentropy": ref_categorical, "binary_crossentropy": ref_binary,
           "mean_squared_error": ref_mse}[name]
    agree(getattr(FL, name), _as_result(ref, "float64"), (args["y_true"], args["y_pred"]),
          names=("y_true", "y_pred"), label=name, rtol=1e-10, atol=1e-12)
