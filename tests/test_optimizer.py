"""fastnn.optimizer against the book's common/optimizer.py (tests/reference.py)."""
import numpy as np
import pytest

import fastnn
import reference as R
from fastnn import optimizer as O
from fastnn.schedules import ExponentialDecay, PiecewiseConstantDecay

# every test runs on each ISA level this CPU has (the update rules are compiled per level)
pytestmark = pytest.mark.usefixtures("isa")

NAMES = ["SGD", "Momentum", "Nesterov", "AdaGrad", "RMSprop", "Adam"]

CASES = [("SGD", {}), ("SGD", {"lr": 0.3}), ("Momentum", {}), ("Momentum", {"lr": 0.1, "momentum": 0.5}),
         ("Nesterov", {}), ("Nesterov", {"lr": 0.05, "momentum": 0.8}), ("AdaGrad", {}),
         ("AdaGrad", {"lr": 0.5}), ("RMSprop", {}), ("RMSprop", {"lr": 0.001, "decay_rate": 0.9}),
         ("Adam", {}), ("Adam", {"lr": 0.01, "beta1": 0.5, "beta2": 0.9})]


def _params(rng, dtype):
    return {"W1": rng.standard_normal((7, 3)).astype(dtype),
            "b1": rng.standard_normal(3).astype(dtype),
            "W2": np.asfortranarray(rng.standard_normal((33, 257)).astype(dtype)),
            "b2": rng.standard_normal(1).astype(dtype)}


@pytest.mark.parametrize("name,kw", CASES)
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_matches_reference_over_steps(name, kw, dtype, rng):
    p0 = _params(rng, dtype)
    pr = {k: v.copy(order="K") for k, v in p0.items()}
    pf = {k: v.copy(order="K") for k, v in p0.items()}
    ref, got = getattr(R, name)(**kw), getattr(O, name)(**kw)
    for step in range(6):
        g = {k: rng.standard_normal(v.shape).astype(dtype) for k, v in p0.items()}
        ref.update(pr, g)
        ids = {k: id(v) for k, v in pf.items()}
        got.update(pf, g)
        assert {k: id(v) for k, v in pf.items()} == ids  # in place
        for k in p0:
            assert pf[k].dtype == dtype
            # the same operations in the same dtype: bit for bit
            np.testing.assert_array_equal(pf[k], pr[k], err_msg="%s %s step %d" % (name, k, step))
    for attr in ("v", "h", "m"):
        if getattr(ref, attr, None) is not None:
            st = getattr(got, attr)
            assert list(st) == list(p0)  # keyed like params
            for k in p0:
                np.testing.assert_array_equal(st[k], getattr(ref, attr)[k])
    if name == "Adam":
        assert got.iter == ref.iter == 6


def test_state_is_lazy_and_defaults():
    assert O.SGD().lr == 0.01
    m = O.Momentum()
    assert (m.lr, m.momentum, m.v) == (0.01, 0.9, None)
    assert (O.Nesterov().lr, O.Nesterov().momentum) == (0.01, 0.9)
    assert O.AdaGrad().h is None and O.AdaGrad().lr == 0.01
    r = O.RMSprop()
    assert (r.lr, r.decay_rate, r.h) == (0.01, 0.99, None)
    a = O.Adam()
    assert (a.lr, a.beta1, a.beta2, a.iter, a.m, a.v) == (0.001, 0.9, 0.999, 0, None, None)
    assert "Adam(lr=0.001" in repr(a)


@pytest.mark.parametrize("name", ["SGD", "Momentum", "Nesterov", "AdaGrad", "RMSprop", "Adam"])
def test_big_params_thread_count_independent(name, rng, exact_threads):
    """Above the parallel threshold the update is chunked over threads: same bits."""
    p0 = {"W": rng.standard_normal((700, 400)), "b": rng.standard_normal(400).astype(np.float64)}
    grads = [{k: rng.standard_normal(v.shape) for k, v in p0.items()} for _ in range(3)]
    results = []
    for nt in (1, 2, 3):
        fastnn.set_num_threads(nt)
        try:
            p = {k: v.copy() for k, v in p0.items()}
            opt = getattr(O, name)()
            for g in grads:
                opt.update(p, g)
        finally:
            fastnn.set_num_threads(None)
        results.append(p)
    pr = {k: v.copy() for k, v in p0.items()}
    ref = getattr(R, name)()
    for g in grads:
        ref.update(pr, g)
    for p in results:
        for k in p0:
            np.testing.assert_array_equal(p[k], pr[k])


def test_non_contiguous_params_and_grads(rng):
    base = rng.standard_normal((10, 12))
    p = {"W": base[:, ::2], "b": rng.standard_normal(5)}
    pr = {"W": p["W"].copy(), "b": p["b"].copy()}
    opt, ref = O.Momentum(), R.Momentum()
    for _ in range(3):
        g = {"W": rng.standard_normal((12, 10)).T[:, :6], "b": rng.standard_normal(5)}
        opt.update(p, g)
        ref.update(pr, g)
    np.testing.assert_array_equal(p["W"], pr["W"])
    np.testing.assert_array_equal(base[:, ::2], pr["W"])  # written through the view
    np.testing.assert_array_equal(p["b"], pr["b"])


def test_mixed_dtypes_one_call_each(rng):
    p = {"a": rng.standard_normal(5).astype(np.float32), "b": rng.standard_normal(4)}
    pr = {k: v.copy() for k, v in p.items()}
    g = {"a": rng.standard_normal(5).astype(np.float32), "b": rng.standard_normal(4)}
    O.SGD(0.1).update(p, g)
    R.SGD(0.1).update(pr, g)
    for k in p:
        np.testing.assert_array_equal(p[k], pr[k])
    # float64 grads for float32 params: computed in the params' dtype (within 1 ulp)
    g64 = {"a": rng.standard_normal(5), "b": rng.standard_normal(4)}
    O.SGD(0.1).update(p, g64)
    R.SGD(0.1).update(pr, g64)
    np.testing.assert_allclose(p["a"], pr["a"], rtol=1e-6)
    assert p["a"].dtype == np.float32


@pytest.mark.parametrize("name", ["SGD", "Momentum", "Nesterov", "AdaGrad", "RMSprop", "Adam"])
def test_schedule_as_lr(name, rng):
    sched = PiecewiseConstantDecay([1, 3], [0.1, 0.05, 0.01])
    p = {"W": rng.standard_normal((4, 3))}
    pr = {"W": p["W"].copy()}
    opt = getattr(O, name)(lr=sched)
    ref = getattr(R, name)()
    for step in range(5):
        g = {"W": rng.standard_normal((4, 3))}
        ref.lr = sched(step)  # the value a TF optimizer would use at this step
        ref.update(pr, g)
        opt.update(p, g)
        np.testing.assert_array_equal(p["W"], pr["W"])
    assert opt.lr is sched


def test_exponential_decay_as_lr(rng):
    sched = ExponentialDecay(0.1, decay_steps=2, decay_rate=0.5, staircase=True)
    p = {"W": np.zeros(3)}
    opt = O.SGD(lr=sched)
    for _ in range(5):
        opt.update(p, {"W": np.ones(3)})
    # steps 0..4 use 0.1, 0.1, 0.05, 0.05, 0.025
    np.testing.assert_allclose(p["W"], -np.full(3, 0.325), rtol=1e-15)


def test_errors(rng):
    opt = O.SGD()
    with pytest.raises(KeyError, match="no entry 'b'"):
        opt.update({"W": np.ones(3), "b": np.ones(2)}, {"W": np.ones(3)})
    with pytest.raises(ValueError, match=r"grads\['W'\] has shape \(4,\) but params\['W'\] has shape \(3,\)"):
        opt.update({"W": np.ones(3)}, {"W": np.ones(4)})
    with pytest.raises(TypeError, match="float32 or float64"):
        opt.update({"W": np.ones(3, dtype=int)}, {"W": np.ones(3)})
    ro = np.ones(3)
    ro.flags.writeable = False
    with pytest.raises(ValueError, match="read-only"):
        opt.update({"W": ro}, {"W": np.ones(3)})
    with pytest.raises(TypeError, match="NumPy array"):
        opt.update({"W": [1.0, 2.0]}, {"W": np.ones(2)})
    # a failed update leaves Adam's step count alone
    a = O.Adam()
    with pytest.raises(ValueError):
        a.update({"W": np.ones(3)}, {"W": np.ones(4)})
    assert a.iter == 0


def test_empty_params_and_a_new_key_raises_like_the_book(rng):
    opt, ref = O.Adam(), R.Adam()
    p = {"W": np.ones((0, 3)), "b": np.ones(2)}
    pr = {k: v.copy() for k, v in p.items()}
    g = {"W": np.ones((0, 3)), "b": np.ones(2)}
    opt.update(p, g)
    ref.update(pr, g)
    np.testing.assert_array_equal(p["b"], pr["b"])
    # the book's state dicts were made at the first update: a new key is a KeyError there
    p["c"], pr["c"] = np.ones(4), np.ones(4)
    g["c"] = np.ones(4)
    with pytest.raises(KeyError):
        ref.update(pr, g)
    with pytest.raises(KeyError, match="new key 'c'"):
        opt.update(p, g)
    assert set(opt.m) == {"W", "b"} and opt.iter == 1
    # SGD keeps no state: a new key is simply updated
    O.SGD().update(p, g)


# ---- the book's loop, whatever the params are (issues #11 and #12) -------------------------

@pytest.mark.parametrize("name", NAMES)
def test_python_float_params_like_the_book(name):
    """ch06 optimizer_compare_naive.py: params = {'x': -7.0, 'y': 2.0}, grads are floats;
    the book's `params[key] -= ...` rebinds each entry."""
    def df(x, y):
        return x / 10.0, 2.0 * y
    pf, pr = {"x": -7.0, "y": 2.0}, {"x": -7.0, "y": 2.0}
    opt, ref = getattr(O, name)(lr=0.1), getattr(R, name)(lr=0.1)
    for _ in range(30):
        for p, o in ((pf, opt), (pr, ref)):
            gx, gy = df(p["x"], p["y"])
            o.update(p, {"x": gx, "y": gy})
        for k in pf:
            assert pf[k] == pr[k], (name, k)
            assert type(pf[k]) is type(pr[k]), (name, k, type(pf[k]), type(pr[k]))


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_tied_weights_give_the_books_result(name, dtype, rng):
    """Two keys naming one array (issue #11 (9)): updated one after the other, as the book's
    loop does, not raced by threads (the array is big enough for a parallel update)."""
    W0 = rng.standard_normal((500, 700)).astype(dtype)
    Wf, Wr = W0.copy(), W0.copy()
    pf, pr = {"W": Wf, "W_tied": Wf}, {"W": Wr, "W_tied": Wr}
    opt, ref = getattr(O, name)(), getattr(R, name)()
    for _ in range(3):
        g = {"W": rng.standard_normal((500, 700)).astype(dtype),
             "W_tied": rng.standard_normal((500, 700)).astype(dtype)}
        opt.update(pf, g)
        ref.update(pr, g)
        np.testing.assert_array_equal(Wf, Wr)


@pytest.mark.parametrize("name", NAMES)
def test_overlapping_views_as_two_params(name, rng):
    """Issue #11 (10): overlapping views of one buffer as two params, and a strided one."""
    base0 = rng.standard_normal((300, 400))
    bf, br = base0.copy(), base0.copy()
    pf = {"a": bf[:200], "b": bf[100:], "c": bf[::2, ::3]}
    pr = {"a": br[:200], "b": br[100:], "c": br[::2, ::3]}
    opt, ref = getattr(O, name)(), getattr(R, name)()
    for _ in range(3):
        g = {k: rng.standard_normal(v.shape) for k, v in pf.items()}
        opt.update(pf, g)
        ref.update(pr, g)
        np.testing.assert_array_equal(bf, br)
    # a gradient that is a view of another parameter is read when the book reads it
    pf, pr = {"a": bf[:10].copy(), "b": bf[10:20].copy()}, {"a": br[:10].copy(), "b": br[10:20].copy()}
    opt, ref = getattr(O, name)(), getattr(R, name)()
    for p, o in ((pf, opt), (pr, ref)):
        o.update(p, {"a": p["b"], "b": p["a"]})
    for k in pf:
        np.testing.assert_array_equal(pf[k], pr[k])


@pytest.mark.parametrize("name", ["Momentum", "AdaGrad", "RMSprop", "Adam", "Nesterov"])
def test_state_is_kept_when_a_parameter_changes_dtype(name, rng):
    """Issue #11 (8): the book keeps v/h/m/v when a parameter is replaced by one of another
    dtype; fastnn keeps them too, cast to the new dtype (it never restarts from zeros)."""
    p = {"W": rng.standard_normal((4, 3))}
    pr = {"W": p["W"].copy()}
    opt, ref = getattr(O, name)(), getattr(R, name)()
    for _ in range(3):
        g = {"W": rng.standard_normal((4, 3))}
        opt.update(p, g)
        ref.update(pr, g)
    states = [getattr(opt, a) for a in ("v", "h", "m") if getattr(opt, a, None) is not None]
    before = [st["W"].copy() for st in states]
    p["W"] = p["W"].astype(np.float32)
    pr["W"] = pr["W"].astype(np.float32)
    g = {"W": rng.standard_normal((4, 3)).astype(np.float32)}
    opt.update(p, g)
    ref.update(pr, g)
    assert p["W"].dtype == np.float32
    for st, b in zip(states, before):
        assert st["W"].dtype == np.float32 and np.any(st["W"] != 0)
        assert not np.allclose(st["W"], 0) or not np.allclose(b, 0)
    # the same step as the book's (which keeps its state in float64) within float32 rounding
    np.testing.assert_allclose(p["W"], pr["W"], rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("name", NAMES[1:])
def test_a_reshaped_parameter_raises_like_the_book(name, rng):
    p = {"W": rng.standard_normal((4, 3))}
    opt, ref = getattr(O, name)(), getattr(R, name)()
    opt.update(p, {"W": np.ones((4, 3))})
    pr = {"W": p["W"].copy()}
    ref.update(pr, {"W": np.ones((4, 3))})
    p["W"], pr["W"] = np.ones((3, 4)), np.ones((3, 4))
    with pytest.raises(ValueError):
        ref.update(pr, {"W": np.ones((3, 4))})
    with pytest.raises(ValueError, match=r"state .* has shape \(4, 3\) but params\['W'\] now has shape \(3, 4\)"):
        opt.update(p, {"W": np.ones((3, 4))})


def test_gradients_broadcast_like_numpy_and_complex_ones_raise(rng):
    p = {"W": rng.standard_normal((4, 3))}
    pr = {"W": p["W"].copy()}
    g = {"W": rng.standard_normal((1, 3))}      # broadcasts over the rows, as in the book
    O.Adam().update(p, g)
    R.Adam().update(pr, g)
    np.testing.assert_array_equal(p["W"], pr["W"])
    O.SGD().update(p, {"W": 2.0})
    R.SGD().update(pr, {"W": 2.0})
    np.testing.assert_array_equal(p["W"], pr["W"])
    with pytest.raises(TypeError):
        R.SGD().update(pr, {"W": np.ones((4, 3), complex)})
    with pytest.raises(TypeError, match=r"grads\['W'\] has dtype complex128"):
        O.SGD().update(p, {"W": np.ones((4, 3), complex)})
    with pytest.raises(ValueError, match=r"grads\['W'\] has shape \(3, 4\) but params\['W'\] has shape \(4, 3\)"):
        O.Momentum().update(p, {"W": np.ones((3, 4))})


def test_one_kernel_with_named_hyperparameters():
    from fastnn._kernels import _optimizers as K
    hp = K.Hyperparameters(K.NNFS_ADAM, lr=0.1, beta1=0.9, beta2=0.999, eps=1e-7,
                           correction1=0.1, correction2=0.001)
    assert (hp.kind, hp.lr, hp.beta1, hp.correction2) == (K.NNFS_ADAM, 0.1, 0.9, 0.001)
    with pytest.raises(ValueError, match="unknown optimizer rule"):
        K.Hyperparameters(99)
    assert K.overlapping([np.ones(3), np.ones(3)]) is False
    a = np.ones((4, 4))
    assert K.overlapping([a[:2], a[1:]]) is True
    assert K.overlapping([a[:2], a[2:]]) is False
    assert K.overlapping([a[::-1], a[0]]) is True


@pytest.mark.parametrize("name", NAMES)
def test_byte_swapped_and_unaligned_params(name, rng):
    p0 = rng.standard_normal((5, 4))
    rec = np.zeros((5, 4), dtype=[("pad", "u1"), ("v", "<f8")])
    rec["v"] = p0
    pf = {"be": p0.astype(">f8"), "unaligned": rec["v"]}
    pr = {"be": p0.astype(">f8"), "unaligned": p0.copy()}
    opt, ref = getattr(O, name)(), getattr(R, name)()
    for _ in range(3):
        g = {k: rng.standard_normal((5, 4)) for k in pf}
        opt.update(pf, g)
        ref.update(pr, g)
    assert pf["be"].dtype == np.dtype(">f8")
    for k in pf:
        np.testing.assert_array_equal(pf[k], pr[k])


# --- SGD.update's fast path (checked in C: plain arrays, nothing shared) ------------------------

@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_sgd_fast_path_same_bits_as_the_checked_path(dtype, rng):
    from collections import OrderedDict
    from fastnn._kernels import _optimizers
    params = {k: rng.standard_normal(s).astype(dtype)
              for k, s in [("W1", (784, 50)), ("b1", (50,)), ("W2", (50, 10)), ("b2", (10,))]}
    grads = {k: rng.standard_normal(v.shape).astype(dtype) for k, v in params.items()}
    grads["b2"].flags.writeable = False                    # read-only gradients are fine
    assert _optimizers.plain_update_arrays(params, grads) is not None
    slow = OrderedDict((k, v.copy()) for k, v in params.items())    # not a dict: checked path
    ref = {k: v.copy() for k, v in params.items()}
    opt, opt_slow, opt_ref = O.SGD(lr=0.01), O.SGD(lr=0.01), R.SGD(lr=0.01)
    for _ in range(3):
        opt.update(params, grads)
        opt_slow.update(slow, grads)
        opt_ref.update(ref, grads)
    for k in params:
        np.testing.assert_array_equal(params[k], slow[k], err_msg=k)
        np.testing.assert_array_equal(params[k], ref[k], err_msg=k)
    assert opt._step == 3


def test_sgd_fast_path_declines_what_it_cannot_take(rng):
    from fastnn._kernels import _optimizers
    W = rng.standard_normal((5, 3))
    g = rng.standard_normal((5, 3))
    ok = lambda p, q: _optimizers.plain_update_arrays(p, q) is not None  # noqa: E731
    assert ok({"W": W}, {"W": g})
    assert not ok({"W": W, "V": W}, {"W": g, "V": g})               # tied weights
    assert not ok({"W": W, "V": W[1:]}, {"W": g, "V": g[1:]})       # overlapping views
    assert not ok({"W": W}, {"W": W})                               # the gradient is the param
    assert not ok({"W": np.asfortranarray(W)}, {"W": g})            # F order
    assert not ok({"W": W, "b": np.ones(3, np.float32)}, {"W": g, "b": np.ones(3, np.float32)})
    assert not ok({"W": W}, {"W": g.astype(np.float32)})            # cast needed
    assert not ok({"W": W}, {"W": g[0]})                            # broadcast needed
    assert not ok({"W": W}, {})                                     # missing: the checked path raises
    assert not ok({"W": 1.5}, {"W": 0.5})                           # Python numbers
    ro = W.copy()
    ro.flags.writeable = False
    assert not ok({"W": ro}, {"W": g})                              # read-only parameter
    assert not ok({}, {})
    with pytest.raises(KeyError):
        O.SGD().update({"W": W}, {})
    with pytest.raises(ValueError, match="read-only"):
        O.SGD().update({"W": ro}, {"W": g})
    tied = {"W": W.copy()}
    tied["V"] = tied["W"]
    want = W - 0.1 * g - 0.1 * g
    O.SGD(lr=0.1).update(tied, {"W": g, "V": g})
    np.testing.assert_allclose(tied["W"], want, rtol=1e-15)
