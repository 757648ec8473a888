"""fastnn: the "from scratch" books' NumPy API with Cython/OpenMP kernels underneath.

Swap ``import`` lines, keep the code: the same names, arguments and numbers as the
books' prototypes (tests/reference.py is the oracle), computed in C with every core.
"""
from ._threads import get_num_threads, openmp_enabled, set_num_threads
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

__version__ = "0.1.0"

__all__ = [
    "__version__", "set_num_threads", "get_num_threads", "openmp_enabled",
    "identity_function", "step_function", "sigmoid", "sigmoid_grad", "relu", "relu_grad",
    "tanh", "leaky_relu", "softmax", "sum_squared_error", "mean_squared_error",
    "cross_entropy_error", "softmax_loss", "affine",
]

# the finite-difference engine and the books' nets (issue #3)
from .gradient import numerical_diff, numerical_gradient, numerical_gradient_2d  # noqa: E402
from .nets import MultiLayerNet, TwoLayerNet  # noqa: E402

__all__ += ["numerical_diff", "numerical_gradient", "numerical_gradient_2d",
            "TwoLayerNet", "MultiLayerNet"]

# data: load_mnist, the bundled MNIST sample, the nnfs toy sets (issue #5)
from . import datasets  # noqa: E402
from .datasets import load_mnist, sine_data, spiral_data, vertical_data  # noqa: E402

__all__ += ["datasets", "load_mnist", "spiral_data", "vertical_data", "sine_data"]
