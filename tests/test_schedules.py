"""TensorFlow-style learning-rate schedules against the reference formulas."""
import numpy as np
import pytest

import reference as R
from fastnn.schedules import ExponentialDecay, PiecewiseConstantDecay


@pytest.mark.parametrize("staircase", [False, True])
@pytest.mark.parametrize("step", [0, 1, 9, 10, 11, 99, 100, 101, 12345, 2.5, np.int64(10), np.float32(3)])
def test_exponential_decay(staircase, step):
    s = ExponentialDecay(0.1, decay_steps=10, decay_rate=0.96, staircase=staircase)
    want = R.exponential_decay(float(step), 0.1, 10, 0.96, staircase)
    assert s(step) == pytest.approx(want, rel=1e-15)
    assert isinstance(s(step), float)


def test_exponential_decay_staircase_is_flat_between_multiples():
    s = ExponentialDecay(1.0, 4, 0.5, staircase=True)
    assert [s(i) for i in range(10)] == [1, 1, 1, 1, 0.5, 0.5, 0.5, 0.5, 0.25, 0.25]
    c = ExponentialDecay(1.0, 4, 0.5)
    assert c(2) == pytest.approx(0.5 ** 0.5, rel=1e-15)
    assert c(0) == 1.0


@pytest.mark.parametrize("step,want", [(-1, 1.0), (0, 1.0), (99, 1.0), (100, 1.0), (100.5, 0.5),
                                       (101, 0.5), (200, 0.5), (201, 0.1), (10 ** 9, 0.1)])
def test_piecewise_constant_boundaries_belong_to_earlier_interval(step, want):
    s = PiecewiseConstantDecay([100, 200], [1.0, 0.5, 0.1])
    assert s(step) == want
    assert s(step) == R.piecewise_constant_decay(step, [100, 200], [1.0, 0.5, 0.1])


def test_piecewise_single_boundary_and_config():
    s = PiecewiseConstantDecay([5], [0.3, 0.2])
    assert (s(4), s(5), s(6)) == (0.3, 0.3, 0.2)
    assert s.get_config() == {"boundaries": [5], "values": [0.3, 0.2], "name": None}
    assert PiecewiseConstantDecay.from_config(s.get_config())(6) == 0.2
    e = ExponentialDecay(0.1, 10, 0.9, staircase=True)
    assert e.get_config()["staircase"] is True
    assert "ExponentialDecay(" in repr(e) and "decay_steps=10" in repr(e)


def test_errors():
    with pytest.raises(ValueError, match="1 less than"):
        PiecewiseConstantDecay([1, 2], [0.1, 0.2])
    with pytest.raises(ValueError, match="increasing"):
        PiecewiseConstantDecay([2, 1], [0.1, 0.2, 0.3])
    with pytest.raises(ValueError, match="decay_steps must be positive"):
        ExponentialDecay(0.1, 0, 0.5)
    with pytest.raises(TypeError, match="step number"):
        ExponentialDecay(0.1, 10, 0.5)("x")
