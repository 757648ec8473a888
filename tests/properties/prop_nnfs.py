"""fastnn.nnfs against tests/reference_nnfs.py: Layer_Dense, the activations, the losses
(with Activation_Softmax_Loss_CategoricalCrossentropy) and the optimizers, on generated
inputs of every dtype and layout (unaligned ones included: issue #11 item 7).
"""
import numpy as np
from hypothesis import given, strategies as st

import reference_nnfs as RN
from fastnn import nnfs as FN

import _gen as G
import _rules as RULES
from _check import agree, assert_clear_error, assert_same, call, cases, materialize

KINDS = ("float64", "float64", "float32", "int64", "float16")


def _layer_pair(cls, *args, **kw):
    np.random.seed(0)
    f = getattr(FN, cls)(*args, **kw)
    np.random.seed(0)
    r = getattr(RN, cls)(*args, **kw)
    return f, r


def _tol(*kinds):
    if "float16" in kinds:
        return dict(rtol=5e-3, atol=5e-3)
    if "float32" in kinds:
        return dict(rtol=2e-5, atol=1e-6)
    return dict(rtol=1e-11, atol=1e-13)


@st.composite
def dense_case(draw):
    M, K, N = draw(G.dim(1, 9)), draw(G.dim(1, 257)), draw(G.dim(1, 9))
    xshape = draw(st.sampled_from([(M, K), (M, K), (M, K), (K,), (M, K + 1)]))
    x = G.Recipe(draw(G.values(xshape, specials=draw(st.booleans()))),
                 draw(st.sampled_from(KINDS + ("list",))), draw(st.sampled_from(G.LAYOUTS)))
    W = G.Recipe(draw(G.values((K, N), specials=False)) * 0.1, draw(st.sampled_from(("float64", "float32"))),
                 draw(st.sampled_from(("C", "F", "strided", "unaligned"))))
    oshape = (M if len(xshape) == 2 else 1, N)
    dv = G.Recipe(draw(G.values(draw(st.sampled_from([oshape, oshape, oshape[::-1]])), specials=False)),
                  draw(st.sampled_from(("float64", "float32"))), draw(st.sampled_from(G.LAYOUTS)))
    reg = draw(st.sampled_from([{}, {"weight_regularizer_l1": 0.01, "weight_regularizer_l2": 0.02,
                                     "bias_regularizer_l1": 0.03, "bias_regularizer_l2": 0.04}]))
    return x, W, dv, reg


def check_dense(x, W, dv, reg, isa="baseline"):
    K, N = W.vals.shape
    f, r = _layer_pair("Layer_Dense", K, N, **reg)
    f.weights, r.weights = G.build(W), G.build(W)
    tol = _tol(x.kind, W.kind, dv.kind)
    tol["rtol"] *= max(K, 1)
    x_ref = x_back = None
    xb = G.build(x)
    if x.vals.ndim == 1 and x.kind != "list":
        # README: a 1-D input is one sample (the book's forward agrees, its backward's
        # np.dot(inputs.T, dvalues) fails): compared with the book given inputs (1, K)
        x_ref = (np.asarray(xb).reshape(1, -1),)
    if x.kind in ("float32", "float16") and W.kind == "float32" and x.vals.shape[-1] == K:
        xv, Wv = np.abs(G.recipe_values(x)), np.abs(G.recipe_values(W))
        with np.errstate(all="ignore"):
            fin = np.where(np.isfinite(xv), xv, 0).reshape(-1, K) @ np.where(np.isfinite(Wv), Wv, 0)
        if (fin >= np.finfo(np.float32).max / 4).any():
            # float32 inputs and weights with the float64 biases: the book's np.dot rounds
            # to float32 (overflowing to inf), fastnn computes x @ W + b in the promoted
            # float64 (README): compared with the book given float64 inputs
            x_back = x_ref[0] if x_ref else xb   # the book's backward on its own inputs
            x_ref = (np.asarray(x_back, dtype=np.float64),)
    with G.on_isa(isa):
        fo, ro, _ = agree(lambda a: (f.forward(a), f.output)[1], lambda a: (r.forward(a), r.output)[1],
                          (x,), names=("inputs", "weights"), label="Layer_Dense.forward",
                          ref_args=x_ref, **tol)
        if fo.exc is not None or x.kind == "list":
            return
        if x_back is not None:
            with np.errstate(all="ignore"):
                r.forward(np.array(x_back))
        fo, ro, _ = agree(f.backward, r.backward, (dv,), names=("dvalues",),
                          label="Layer_Dense.backward", **tol)
        if fo.exc is None:
            for a in ("dweights", "dbiases", "dinputs"):
                assert_same(getattr(f, a), getattr(r, a), what="Layer_Dense." + a, **tol)


@given(case=dense_case(), isa=G.isas())
def test_dense(case, isa):
    check_dense(*case, isa)


UNALIGNED = G.recipe(np.arange(6.0).reshape(2, 3) / 7, layout="unaligned")


@cases(
    # issue #11 item 7: an unaligned input (a field of a packed record array)
    unaligned_inputs=dict(x=UNALIGNED, W=G.recipe(np.ones((3, 2)) * 0.1),
                          dv=G.recipe(np.ones((2, 2))), reg={}),
    big_endian_inputs=dict(x=G.recipe(np.arange(6.0).reshape(2, 3), layout="bigendian"),
                           W=G.recipe(np.ones((3, 2)) * 0.1), dv=G.recipe(np.ones((2, 2))), reg={}),
)
def test_dense_cases(case):
    check_dense(**case)


ACTIVATIONS = ("Activation_ReLU", "Activation_Softmax", "Activation_Sigmoid", "Activation_Linear")


@st.composite
def activation_case(draw):
    shape = draw(st.one_of(st.tuples(G.dim(0, 9), G.dim(0, 257)), G.shapes(max_dims=3, max_size=300)))
    x = G.Recipe(draw(G.values(shape)), draw(st.sampled_from(KINDS)), draw(st.sampled_from(G.LAYOUTS)))
    dv = G.Recipe(draw(G.values(shape, specials=False)), draw(st.sampled_from(("float64", "float32"))),
                  draw(st.sampled_from(G.LAYOUTS)))
    return draw(st.sampled_from(ACTIVATIONS)), x, dv


def _int_wraps(r):
    """Integer values near int64's ends: the book's integer arithmetic (-x, x - max) wraps
    around there, fastnn computes integers in float64 (README)."""
    return r.kind == "int64" and bool((np.abs(G.build(r).astype(np.float64)) >= 2.0 ** 62).any())


def _structure_only(got, want, **kw):
    assert np.shape(got) == np.shape(want), (np.shape(got), np.shape(want))


def check_activation(name, x, dv, isa="baseline"):
    f, r = _layer_pair(name)
    tol = _tol(x.kind, dv.kind)
    if name == "Activation_Sigmoid":
        tol["atol"] = max(tol["atol"], 1e-7)
    btol = dict(tol)
    if name == "Activation_Softmax":
        # the book's backward builds each row's Jacobian diag(s) - s s^T in the output's
        # dtype (float16: fastnn computes in float32, README): s_i - s_i^2 cancels, so its
        # error is about eps times the row's sum of |dvalues|
        dvv = np.abs(np.atleast_2d(G.recipe_values(dv)))
        eps = {"float16": 1e-3, "float32": 1.2e-7}.get(x.kind, 2.3e-16)
        if dvv.size:
            btol["atol"] = max(btol["atol"], 8 * eps * float(np.nanmax(dvv.sum(axis=-1))))
    compare = _structure_only if _int_wraps(x) else None
    mode = "ref"
    if name == "Activation_Softmax" and x.vals.ndim != 2:
        # README: nnfs layers take 2-D (samples, features) batches; the book's softmax of an
        # N-d array normalises over axis 1 (its backward then mixes the axes up): fastnn
        # raises a ValueError naming inputs' shape
        mode = "either"
    with G.on_isa(isa):
        fo, ro, _ = agree(lambda a: (f.forward(a), f.output)[1], lambda a: (r.forward(a), r.output)[1],
                          (x,), names=("inputs",), label=name + ".forward", mode=mode,
                          compare=compare, **tol)
        if fo.exc is not None or ro.exc is not None:
            return
        if name in ("Activation_Sigmoid", "Activation_Softmax") and isinstance(f.output, np.ndarray):
            # `output` may differ from the book's by an ulp (checked above, within
            # tolerance), which (1 - s) near 1 magnifies: the backward formula is checked on
            # fastnn's own output
            r.output = f.output.copy()
        agree(lambda d: (f.backward(d), f.dinputs)[1], lambda d: (r.backward(d), r.dinputs)[1],
              (dv,), names=("dvalues",), label=name + ".backward", compare=compare, **btol)
        if name != "Activation_Linear" and np.ndim(r.output) == 2:
            agree(f.predictions, r.predictions, (G.build(x) if name != "Activation_Softmax" else r.output,),
                  names=("outputs",), label=name + ".predictions")


@given(case=activation_case(), isa=G.isas())
def test_activation(case, isa):
    check_activation(*case, isa)


@cases(
    # issue #11 item 7: Activation_Softmax on an unaligned array
    softmax_unaligned=dict(name="Activation_Softmax", x=UNALIGNED, dv=G.recipe(np.ones((2, 3)))),
)
def test_activation_cases(case):
    check_activation(**case)


@st.composite
def cce_case(draw):
    rows, C = draw(G.dim(1, 9)), draw(G.dim(1, 257))
    y = G.Recipe(draw(G.probabilities((rows, C))), draw(st.sampled_from(("float64", "float64", "float32"))),
                 draw(st.sampled_from(G.LAYOUTS)))
    return y, draw(G.labels(rows, C))


def check_cce(y, t, isa="baseline"):
    mode, t_ref = RULES.nnfs_targets(y.vals.shape, t)
    rows = y.vals.shape[0]
    tol = _tol(y.kind)
    names = ("y_true", "y_pred", "dvalues", "labels")
    targs = None if t_ref is None else (y, t_ref)
    with G.on_isa(isa):
        f, r = FN.Loss_CategoricalCrossentropy(), RN.Loss_CategoricalCrossentropy()
        agree(f.forward, r.forward, (y, t), names=names, mode=mode, ref_args=targs,
              label="Loss_CategoricalCrossentropy.forward", **tol)
        f, r = FN.Loss_CategoricalCrossentropy(), RN.Loss_CategoricalCrossentropy()
        agree(f.calculate, r.calculate, (y, t), names=names, mode=mode, ref_args=targs,
              label="Loss_CategoricalCrossentropy.calculate",
              rtol=tol["rtol"] * (rows + 8), atol=tol["atol"] * (rows + 8))
        agree(lambda d, tt: (f.backward(d, tt), f.dinputs)[1],
              lambda d, tt: (r.backward(d, tt), r.dinputs)[1], (y, t), names=names, mode=mode,
              ref_args=targs, label="Loss_CategoricalCrossentropy.backward", **tol)
        f = FN.Activation_Softmax_Loss_CategoricalCrossentropy()
        r = RN.Activation_Softmax_Loss_CategoricalCrossentropy()
        agree(lambda d, tt: (f.backward(d, tt), f.dinputs)[1],
              lambda d, tt: (r.backward(d, tt), r.dinputs)[1], (y, t), names=names, mode=mode,
              ref_args=targs, label="Activation_Softmax_Loss_CategoricalCrossentropy.backward", **tol)


@given(case=cce_case(), isa=G.isas())
def test_categorical_crossentropy(case, isa):
    check_cce(*case, isa)


P22 = G.recipe([[0.1, 0.9], [0.8, 0.2]])


@cases(
    bool_labels=dict(y=P22, t=G.Labels("bool", 2, 2, 3)),          # issue #11 item 5
    negative_labels=dict(y=P22, t=G.Labels("negative", 2, 2, 3)),
    onehot_row_broadcast=dict(y=G.recipe([[0.1, 0.9], [0.8, 0.2], [0.5, 0.5]]),
                              t=G.recipe([[0.0, 1.0]])),
)
def test_categorical_crossentropy_cases(case):
    check_cce(**case)


OTHER_LOSSES = ("Loss_BinaryCrossentropy", "Loss_MeanSquaredError", "Loss_MeanAbsoluteError")


@given(name=st.sampled_from(OTHER_LOSSES),
       shape=st.tuples(G.dim(1, 9), G.dim(1, 9)), data=st.data())
def test_other_losses(name, shape, data):
    y = data.draw(G.arrays(shape, kinds=("float64", "float32")))
    t = data.draw(G.arrays(shape, kinds=("float64", "float32", "int64")))
    f, r = getattr(FN, name)(), getattr(RN, name)()
    tol = _tol(y.kind, t.kind)
    compare = None
    yv, tv = G.recipe_values(y), G.recipe_values(t)
    with np.errstate(all="ignore"):
        big = np.nanmax(np.where(np.isfinite(yv), np.abs(yv), 0) + np.where(np.isfinite(tv), np.abs(tv), 0))
    if ("float32" in (y.kind, t.kind) and big * big >= np.finfo(np.float32).max / 8) or (
            t.kind == "int64" and np.abs(G.build(t).astype(np.float64)).max() >= 2.0 ** 53):
        # fastnn sums (and squares) in double (STYLE.md): where the book's float32 terms or
        # sums overflow to inf, fastnn's may not; integer targets beyond 2**53 are floats
        # in fastnn, wrapping integers in the book's 1 - y_true (README: integer input
        # computes in float64). Only the structure is compared.
        def compare(got, want, **kw):
            assert np.shape(got) == np.shape(want), (np.shape(got), np.shape(want))
    agree(f.calculate, r.calculate, (y, t), names=("y_pred", "y_true"), label=name + ".calculate",
          rtol=tol["rtol"] * 20, atol=tol["atol"] * 20, compare=compare)
    agree(lambda d, tt: (f.backward(d, tt), f.dinputs)[1], lambda d, tt: (r.backward(d, tt), r.dinputs)[1],
          (y, t), names=("dvalues", "y_true"), label=name + ".backward", compare=compare, **tol)


OPTIMIZERS = {"Optimizer_SGD": [{}, {"learning_rate": 0.5, "decay": 0.1, "momentum": 0.9}],
              "Optimizer_Adagrad": [{}, {"decay": 1e-3}], "Optimizer_RMSprop": [{}, {"rho": 0.5}],
              "Optimizer_Adam": [{}, {"learning_rate": 0.05, "decay": 5e-5}]}


@st.composite
def nnfs_opt_case(draw):
    name = draw(st.sampled_from(sorted(OPTIMIZERS)))
    hyper = draw(st.sampled_from(OPTIMIZERS[name]))
    K, N = draw(G.dim(1, 30)), draw(G.dim(1, 9))
    dtype = draw(st.sampled_from(("float64", "float32")))
    lay = st.sampled_from(("C", "F", "strided", "negstride", "unaligned", "bigendian"))
    W = G.Recipe(draw(G.values((K, N), specials=False)), dtype, draw(lay))
    b = G.Recipe(draw(G.values((1, N), specials=False)), dtype, draw(lay))
    dshape = draw(st.sampled_from([(K, N), (K, N), (K, N), (N, K), (1, N), (K * N,)]))
    dW = G.Recipe(draw(G.values(dshape, specials=draw(st.booleans()))),
                  draw(st.sampled_from((dtype, dtype, "float64"))), draw(lay))
    db = G.Recipe(draw(G.values((1, N), specials=False)), dtype, draw(lay))
    return name, hyper, W, b, dW, db, draw(st.integers(1, 3))


def check_nnfs_optimizer(name, hyper, W, b, dW, db, steps, isa="baseline"):
    layers = []
    for _ in range(2):
        layer = FN.Layer_Dense(1, 1)
        layer.weights, layer.biases = G.build(W), G.build(b)
        layer.dweights, layer.dbiases = G.build(dW), G.build(db)
        layers.append(layer)
    fl, rl = layers
    fopt, ropt = getattr(FN, name)(**hyper), getattr(RN, name)(**hyper)

    def run(opt, layer, fast):
        for i in range(steps):
            opt.pre_update_params()
            out = call(opt.update_params, (layer,), fast=fast, label="%s.update_params" % name)
            if out.exc is not None:
                return out
            opt.post_update_params()
        return out
    ro = run(ropt, rl, False)
    with G.on_isa(isa):
        fo = run(fopt, fl, True)
    if ro.exc is not None or fo.exc is not None:
        # issue #11 item 6: a dweights of the wrong shape but the right size must not be
        # applied in memory order
        assert fo.exc is not None and ro.exc is not None, (
            "%s: fastnn %s, the book %s (dweights %s, weights %s)" % (name, fo, ro, dW.vals.shape, W.vals.shape))
        assert_clear_error(fo.exc, ("dweights", "weights", "dbiases", "biases", "layer"), ro.exc,
                           "%s.update_params" % name)
        return
    exact = dW.kind == W.kind
    tol = dict(rtol=0, atol=0) if exact else dict(rtol=2e-6, atol=1e-30)
    if W.kind == "float32" and dW.kind == "float64":
        # README: a float64 gradient of float32 weights is rounded to float32 first, and
        # the state stays float32; the book mixes: w += -lr * dw in float64 then stored
        # (w - dw can differ by float32's rounding of the operands, not of the result),
        # and its rebinding rules (Adam's, RMSprop's cache = ... * dweights**2) turn the
        # state into float64
        gv = np.abs(G.recipe_values(dW))
        gv = gv[np.isfinite(gv)]
        if (gv > 1e18).any():
            # dw ** 2 (or dw itself) beyond float32's range: inf in fastnn's float32 state,
            # finite in the book's float64 one -- a NaN or a zero step instead of a step
            return
        wv = np.abs(G.recipe_values(W))
        tol["atol"] = 4 * steps * 1.2e-7 * (float(wv.max()) + (float(gv.max()) if gv.size else 0.0))
    for a in ("weights", "biases", "weight_momentums", "bias_momentums", "weight_cache", "bias_cache"):
        if hasattr(rl, a):
            assert_same(getattr(fl, a), getattr(rl, a), what="%s: layer.%s" % (name, a),
                        check_type=False, **tol)


@given(case=nnfs_opt_case(), isa=G.isas())
def test_nnfs_optimizer(case, isa):
    check_nnfs_optimizer(*case, isa=isa)


@cases(
    # issue #11 item 6: dweights (N, K) for weights (K, N): the book raises a broadcast error
    transposed_dweights=dict(name="Optimizer_Adam", hyper={}, W=G.recipe(np.ones((3, 2))),
                             b=G.recipe(np.zeros((1, 2))), dW=G.recipe(np.arange(6.0).reshape(2, 3)),
                             db=G.recipe(np.ones((1, 2))), steps=1),
    flat_dweights=dict(name="Optimizer_SGD", hyper={}, W=G.recipe(np.ones((3, 2))),
                       b=G.recipe(np.zeros((1, 2))), dW=G.recipe(np.arange(6.0)),
                       db=G.recipe(np.ones((1, 2))), steps=1),
)
def test_nnfs_optimizer_cases(case):
    check_nnfs_optimizer(**case)


# --- the whole Model.train path with odd inputs ---------------------------------------------

import contextlib  # noqa: E402 - this section's own imports
import io  # noqa: E402
import re  # noqa: E402

NUMBER = re.compile(r"-?\d+\.\d+(?:e[-+]?\d+)?|-?\d+e[-+]?\d+|nan|-?inf")


@st.composite
def model_case(draw):
    kind = draw(st.sampled_from(("softmax", "binary", "regression")))
    N, n_in, C = draw(st.integers(1, 12)), draw(st.integers(1, 5)), draw(st.integers(2, 4))
    h = draw(st.integers(1, 6))
    X = G.Recipe(draw(G.values((N, n_in), specials=False)),
                 draw(st.sampled_from(("float64", "float64", "float32", "int64"))),
                 draw(st.sampled_from(G.LAYOUTS)))
    if kind == "softmax":
        y = draw(G.labels(N, C, kinds=("int", "int32", "uint8", "onehot", "onehot32", "bool", "negative",
                                       "out_of_range", "count-1")))
    elif kind == "binary":
        y = G.Recipe((draw(G.values((N, 1), specials=False)) > 0).astype(np.float64),
                     draw(st.sampled_from(("int64", "float64", "float32"))), "C")
    else:
        y = G.Recipe(draw(G.values((N, 1), specials=False)), "float64", draw(st.sampled_from(("C", "F", "strided"))))
    return dict(kind=kind, n_in=n_in, h=h, C=C, X=X, y=y,
                reg=draw(st.sampled_from((0.0, 5e-4))), dropout=draw(st.sampled_from((0.0, 0.1))),
                optimizer=draw(st.sampled_from(("Optimizer_Adam", "Optimizer_SGD", "Optimizer_RMSprop",
                                                "Optimizer_Adagrad"))),
                epochs=draw(st.integers(1, 2)),
                batch_size=draw(st.sampled_from((None, 1, 2, 5, N, N + 3))),
                print_every=draw(st.sampled_from((1, 3, 100))),
                validate=draw(st.booleans()), seed=draw(st.integers(0, 2 ** 16)))


def _model(mod, c):
    np.random.seed(c["seed"])
    m = mod.Model()
    reg = dict(weight_regularizer_l2=c["reg"], bias_regularizer_l2=c["reg"]) if c["reg"] else {}
    m.add(mod.Layer_Dense(c["n_in"], c["h"], **reg))
    m.add(mod.Activation_ReLU())
    if c["dropout"]:
        m.add(mod.Layer_Dropout(c["dropout"]))
    if c["kind"] == "softmax":
        m.add(mod.Layer_Dense(c["h"], c["C"]))
        m.add(mod.Activation_Softmax())
        loss, acc = mod.Loss_CategoricalCrossentropy(), mod.Accuracy_Categorical()
    elif c["kind"] == "binary":
        m.add(mod.Layer_Dense(c["h"], 1))
        m.add(mod.Activation_Sigmoid())
        loss, acc = mod.Loss_BinaryCrossentropy(), mod.Accuracy_Categorical(binary=True)
    else:
        m.add(mod.Layer_Dense(c["h"], 1))
        m.add(mod.Activation_Linear())
        loss, acc = mod.Loss_MeanSquaredError(), mod.Accuracy_Regression()
    opt = getattr(mod, c["optimizer"])(**({"learning_rate": 0.05, "decay": 1e-3}
                                          if c["optimizer"] != "Optimizer_SGD" else {"momentum": 0.5}))
    m.set(loss=loss, optimizer=opt, accuracy=acc)
    m.finalize()
    return m


def _train(mod, c, X, y, fast):
    m = _model(mod, c)
    out = io.StringIO()
    np.random.seed(c["seed"] + 1)         # Layer_Dropout's draws

    def run():
        with contextlib.redirect_stdout(out):
            m.train(X, y, epochs=c["epochs"], batch_size=c["batch_size"], print_every=c["print_every"],
                    validation_data=(X, y) if c["validate"] else None)
    outcome = call(run, label="Model.train", fast=fast)
    return outcome, m, out.getvalue()


def _same_printout(got, want, what):
    """The book's printed lines: the same words, numbers equal to their printed precision
    (a value on a rounding boundary may print one unit apart)."""
    gl, wl = got.splitlines(), want.splitlines()
    assert len(gl) == len(wl), (what, got, want)
    for g, w in zip(gl, wl):
        assert NUMBER.sub("#", g) == NUMBER.sub("#", w), (what, g, w)
        for a, b in zip(NUMBER.findall(g), NUMBER.findall(w)):
            fa, fb = float(a), float(b)
            unit = 10.0 ** -len(b.split(".")[1].split("e")[0]) if "." in b and "e" not in b else 0
            assert (np.isnan(fa) and np.isnan(fb)) or fa == fb or abs(fa - fb) <= 1.01 * unit + 1e-12 * abs(fb), (
                what, g, w)


def check_model(c, isa="baseline"):
    Xb, yb = G.build(c["X"]), materialize(c["y"])
    mode = "ref"
    y_ref = yb
    if c["kind"] == "softmax":
        mode, t_ref = RULES.nnfs_targets((Xb.shape[0], c["C"]), c["y"])
        y_ref = yb if t_ref is None else t_ref
    ro, rm, rout = _train(RN, c, np.array(Xb), y_ref, False)
    with G.on_isa(isa):
        fo, fm, fout = _train(FN, c, Xb, yb, True)
    if mode == "raise" or ro.exc is not None:
        assert fo.exc is not None, ("Model.train must raise here (%s); the book %s" % (mode, ro))
        assert_clear_error(fo.exc, ("y_true", "y", "labels", "y_pred"), ro.exc, "Model.train")
        return
    assert fo.exc is None, "Model.train raised %r where the book trained" % (fo.exc,)
    _same_printout(fout, rout, "Model.train's printout")
    for i, (fl, rl) in enumerate(zip(fm.trainable_layers, rm.trainable_layers)):
        for a in ("weights", "biases"):
            assert_same(getattr(fl, a), getattr(rl, a), rtol=1e-6, atol=1e-9,
                        what="layer %d %s after training" % (i, a))


@given(case=model_case(), isa=G.isas())
def test_model_train(case, isa):
    check_model(case, isa)
