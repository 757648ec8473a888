"""Learning-rate schedules with TensorFlow's semantics (``tf.keras.optimizers.schedules``).

A schedule is called with the step (the number of updates done so far, 0 first) and
returns the learning rate; every fastnn optimizer accepts one in place of ``lr``::

    from fastnn.optimizer import SGD
    from fastnn.schedules import ExponentialDecay
    opt = SGD(lr=ExponentialDecay(0.1, decay_steps=100, decay_rate=0.96, staircase=True))

Values are computed in Python floats (float64); TensorFlow computes them in the
learning rate's dtype (float32 by default), so they agree to float32 precision.
"""
import math

__all__ = ["LearningRateSchedule", "ExponentialDecay", "PiecewiseConstantDecay"]


def _step_value(step):
    try:
        return float(step)
    except (TypeError, ValueError):
        raise TypeError("a learning-rate schedule is called with the step number, got %r"
                        % (step,)) from None


class LearningRateSchedule:
    """Base class: ``schedule(step) -> float``; ``get_config()`` returns the arguments."""

    def __call__(self, step):
        raise NotImplementedError

    def get_config(self):
        raise NotImplementedError

    @classmethod
    def from_config(cls, config):
        return cls(**config)

    def __repr__(self):
        return "%s(%s)" % (type(self).__name__,
                           ", ".join("%s=%r" % kv for kv in self.get_config().items()))


class ExponentialDecay(LearningRateSchedule):
    """``initial_learning_rate * decay_rate ** (step / decay_steps)``.

    Parameters
    ----------
    initial_learning_rate : float
    decay_steps : positive number
    decay_rate : float
    staircase : bool, default False
        When True, ``step / decay_steps`` is floored: the rate drops every
        ``decay_steps`` steps instead of continuously.
    """

    def __init__(self, initial_learning_rate, decay_steps, decay_rate, staircase=False, name=None):
        if not decay_steps > 0:
            raise ValueError("ExponentialDecay: decay_steps must be positive, got %r" % (decay_steps,))
        self.initial_learning_rate = initial_learning_rate
        self.decay_steps = decay_steps
        self.decay_rate = decay_rate
        self.staircase = staircase
        self.name = name

    def __call__(self, step):
        p = _step_value(step) / float(self.decay_steps)   # global_step / decay_steps
        if self.staircase:
            p = math.floor(p)                              # integer division when staircase
        return float(self.initial_learning_rate) * float(self.decay_rate) ** p

    def get_config(self):
        return {"initial_learning_rate": self.initial_learning_rate,
                "decay_steps": self.decay_steps, "decay_rate": self.decay_rate,
                "staircase": self.staircase, "name": self.name}


class PiecewiseConstantDecay(LearningRateSchedule):
    """Piecewise-constant rate: ``values[i]`` on the i-th interval of ``boundaries``.

    ``values[0]`` for ``step <= boundaries[0]``, ``values[i]`` for
    ``boundaries[i-1] < step <= boundaries[i]``, ``values[-1]`` for
    ``step > boundaries[-1]``: the value at a boundary belongs to the earlier interval,
    as in TensorFlow.

    Parameters
    ----------
    boundaries : increasing sequence of numbers (steps)
    values : sequence with one more element than ``boundaries``
    """

    def __init__(self, boundaries, values, name=None):
        boundaries = list(boundaries)
        values = list(values)
        if len(values) != len(boundaries) + 1:
            raise ValueError("PiecewiseConstantDecay: the length of boundaries (%d) should be 1 "
                             "less than the length of values (%d)" % (len(boundaries), len(values)))
        if any(b1 > b2 for b1, b2 in zip(boundaries, boundaries[1:])):
            raise ValueError("PiecewiseConstantDecay: boundaries must be increasing, got %r"
                             % (boundaries,))
        self.boundaries = boundaries
        self.values = values
        self.name = name

    def __call__(self, step):
        s = _step_value(step)
        for b, v in zip(self.boundaries, self.values):
            if s <= b:
                return v
        return self.values[-1]

    def get_config(self):
        return {"boundaries": self.boundaries, "values": self.values, "name": self.name}
