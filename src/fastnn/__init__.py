"""fastnn: the "from scratch" books' NumPy API with Cython/OpenMP kernels underneath.

Swap ``import`` lines, keep the code: the same names, arguments and numbers as the
books' prototypes (tests/reference.py is the oracle), computed in C with every core.
Each public name has one home (``fastnn.functions``, ``.gradient``, ``.nets``, ``.layers``,
``.optimizer``, ``.schedules``, ``.trainer``, ``.datasets``, ``.nnfs``, ``.compat``); the
everyday ones are re-exported here.
"""
from . import datasets
from ._threads import get_num_threads, openmp_enabled, set_num_threads
from .datasets import load_mnist, sine_data, spiral_data, vertical_data
from .functions import (
    affine,
    cross_entropy_error,
    identity_function,
    leaky_relu,
    mean_squared_error,
    relu,
    relu_grad,
    sigmoid,
    sigmoid_grad,
    softmax,
    softmax_loss,
    step_function,
    sum_squared_error,
    tanh,
)
from .gradient import gradient_check, numerical_diff, numerical_gradient, numerical_gradient_2d
from .nets import MultiLayerNet, MultiLayerNetExtend, ReluTwoLayerNet, TwoLayerNet

__version__ = "0.1.0"

__all__ = [
    "__version__", "set_num_threads", "get_num_threads", "openmp_enabled",
    # functions
    "identity_function", "step_function", "sigmoid", "sigmoid_grad", "relu", "relu_grad",
    "tanh", "leaky_relu", "softmax", "sum_squared_error", "mean_squared_error",
    "cross_entropy_error", "softmax_loss", "affine",
    # gradients and nets
    "numerical_diff", "numerical_gradient", "numerical_gradient_2d", "gradient_check",
    "TwoLayerNet", "ReluTwoLayerNet", "MultiLayerNet", "MultiLayerNetExtend",
    # data
    "datasets", "load_mnist", "spiral_data", "vertical_data", "sine_data",
]
