"""The seed prototype's own class, so that swapping one import is all its user does.

``Threelayer_net`` is not the book's class: it is the user's prototype (an input layer, a
sigmoid hidden layer and a softmax output, i.e. three layers of units), with params
``w1 b1 w2 b2`` and ``lr`` scaling the random init. Its ``grad(x, t)`` returns the
central-difference gradients, computed by fastnn's fused engine (see ``fastnn.nets``).
"""
import numpy as np

from . import functions as F
from . import _engine as E
from .nets import _engine_numerical_gradient

__all__ = ["Threelayer_net"]


class Threelayer_net:  # noqa: N801 - the prototype's own name
    """affine -> sigmoid -> affine -> softmax, trained with numerical gradients.

    Parameters
    ----------
    input_size, hidden_size, output_size : int
    lr : float, default 0.01
        Scale of the random init: ``w = lr * np.random.randn(...)``; biases zero.

    Attributes
    ----------
    params : dict
        ``'w1'`` (input_size, hidden_size), ``'b1'`` (hidden_size,),
        ``'w2'`` (hidden_size, output_size), ``'b2'`` (output_size,).
    """

    _weights = (("w1", "b1"), ("w2", "b2"))
    _specs = E.mlp_spec(_weights, "sigmoid")

    def __init__(self, input_size, hidden_size, output_size, lr=0.01):
        self.params = {}
        self.params["w1"] = lr * np.random.randn(input_size, hidden_size)
        self.params["b1"] = np.zeros(hidden_size)
        self.params["w2"] = lr * np.random.randn(hidden_size, output_size)
        self.params["b2"] = np.zeros(output_size)

    def __repr__(self):
        w1, w2 = self.params["w1"], self.params["w2"]
        return "Threelayer_net(%d-%d-%d)" % (w1.shape[0], w1.shape[1], w2.shape[1])

    def predict(self, x):
        """softmax(sigmoid(x @ w1 + b1) @ w2 + b2)."""
        z1 = F.sigmoid(F.affine(x, self.params["w1"], self.params["b1"]))
        return F.softmax(F.affine(z1, self.params["w2"], self.params["b2"]))

    def loss(self, x, t):
        """Mean cross-entropy error of ``predict(x)`` against labels or one-hot ``t``."""
        return F.cross_entropy_error(self.predict(x), t)

    def accuracy(self, x, t):
        """Fraction of rows whose argmax matches ``t`` (labels or one-hot)."""
        y = np.argmax(np.atleast_2d(self.predict(x)), axis=1)
        t = np.asarray(t)
        t = t.reshape(-1) if t.size == y.size else np.argmax(t.reshape(y.size, -1), axis=1)
        return np.sum(y == t) / float(y.size)

    def grad(self, x, t, n_threads=None):
        """Central-difference gradients (h = 1e-4) of ``loss(x, t)``: keys w1 b1 w2 b2."""
        return _engine_numerical_gradient(self, self._specs, None, x, t, n_threads,
                                          "Threelayer_net.grad")

    def gradient(self, x, t):
        """Backpropagation gradients of ``loss(x, t)`` (same keys as ``grad``)."""
        return E.gradient(self.params, self._specs, x, t, None, func="Threelayer_net.gradient")
