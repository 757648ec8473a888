"""fastnn.optimizer against the book's common/optimizer.py (tests/reference.py)."""
import numpy as np
import pytest

import fastnn
import reference as R
from fastnn import optimizer as O
from fastnn.schedules import ExponentialDecay, PiecewiseConstantDecay

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


def test_empty_and_new_keys(rng):
    opt = O.Adam()
    p = {"W": np.ones((0, 3)), "b": np.ones(2)}
    opt.update(p, {"W": np.ones((0, 3)), "b": np.ones(2)})
    p["c"] = np.ones(4)
    opt.update(p, {"W": np.ones((0, 3)), "b": np.ones(2), "c": np.ones(4)})
    assert set(opt.m) == {"W", "b", "c"}
