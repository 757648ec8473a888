"""`from fastnn.X import *` gives at least what the book's `from common.X import *` gives.

The book's modules have no __all__, so `import *` hands over every public name they
define or import; its scripts rely on that (ch06's optimizer_compare_mnist.py uses `np`
after `from common.optimizer import *`, and `common.layers` re-exports the functions,
im2col and col2im). Each set below is what the book's module makes public.
"""
import subprocess
import sys

import pytest

_FUNCTIONS = {"identity_function", "step_function", "sigmoid", "sigmoid_grad", "relu",
              "relu_grad", "softmax", "sum_squared_error", "mean_squared_error",
              "cross_entropy_error", "softmax_loss"}
_LAYERS = {"Relu", "Sigmoid", "Affine", "SoftmaxWithLoss", "Dropout", "BatchNormalization",
           "Convolution", "Pooling"}

BOOK_EXPORTS = {
    # common/functions.py: import numpy as np
    "fastnn.functions": {"np"} | _FUNCTIONS,
    # common/optimizer.py: import numpy as np
    "fastnn.optimizer": {"np", "SGD", "Momentum", "Nesterov", "AdaGrad", "RMSprop", "Adam"},
    # common/util.py: import numpy as np
    "fastnn.util": {"np", "smooth_curve", "shuffle_dataset", "conv_output_size", "im2col",
                    "col2im"},
    # common/gradient.py: import numpy as np
    "fastnn.gradient": {"np", "numerical_gradient", "numerical_gradient_2d"},
    # common/trainer.py: import sys, os; import numpy as np; from common.optimizer import *
    "fastnn.trainer": {"sys", "os", "np", "SGD", "Momentum", "Nesterov", "AdaGrad", "RMSprop",
                       "Adam", "Trainer"},
    # common/layers.py: import numpy as np; from common.functions import *;
    # from common.util import im2col, col2im
    "fastnn.layers": {"np"} | _FUNCTIONS | {"im2col", "col2im"} | _LAYERS,
    # ch04/two_layer_net.py: import sys, os; from common.functions import *;
    # from common.gradient import numerical_gradient.  ch05/two_layer_net.py and
    # common/multi_layer_net(_extend).py: import sys, os; import numpy as np;
    # from collections import OrderedDict; from common.layers import *;
    # from common.gradient import numerical_gradient
    "fastnn.nets": ({"sys", "os", "np", "OrderedDict", "numerical_gradient", "im2col", "col2im"}
                    | _FUNCTIONS | _LAYERS
                    | {"TwoLayerNet", "MultiLayerNet", "MultiLayerNetExtend", "SimpleConvNet",
                       "DeepConvNet"}),
    # ch07/simple_convnet.py, ch08/deep_convnet.py: import sys, os; import pickle;
    # import numpy as np; from collections import OrderedDict; from common.layers import *;
    # (simple_convnet) from common.gradient import numerical_gradient
    "fastnn.convnets": ({"sys", "os", "pickle", "np", "OrderedDict", "numerical_gradient",
                         "im2col", "col2im"} | _FUNCTIONS | _LAYERS
                        | {"SimpleConvNet", "DeepConvNet"}),
    # a nnfs chapter: import numpy as np; import nnfs; from nnfs.datasets import
    # spiral_data (vertical_data, sine_data), then its classes
    "fastnn.nnfs": {"np", "nnfs", "spiral_data", "vertical_data", "sine_data", "Layer_Dense",
                    "Layer_Dropout", "Layer_Input", "Activation_ReLU", "Activation_Softmax",
                    "Activation_Sigmoid", "Activation_Linear",
                    "Activation_Softmax_Loss_CategoricalCrossentropy", "Loss",
                    "Loss_CategoricalCrossentropy", "Loss_BinaryCrossentropy",
                    "Loss_MeanSquaredError", "Loss_MeanAbsoluteError", "Optimizer_SGD",
                    "Optimizer_Adagrad", "Optimizer_RMSprop", "Optimizer_Adam", "Accuracy",
                    "Accuracy_Categorical", "Accuracy_Regression", "Model"},
}


@pytest.mark.parametrize("module", sorted(BOOK_EXPORTS))
def test_import_star_gives_the_books_names(module):
    # a fresh interpreter: `import *` into a clean namespace, as a book script does
    code = "from %s import *\nprint(' '.join(sorted(k for k in dir() if not k.startswith('_'))))" % module
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    names = set(out.stdout.split())
    missing = BOOK_EXPORTS[module] - names
    assert not missing, "%s lacks %s" % (module, sorted(missing))


def test_np_is_numpy():
    import numpy

    from fastnn import functions, layers, nets, nnfs, optimizer
    assert all(m.np is numpy for m in (functions, layers, nets, nnfs, optimizer))


def test_handed_on_names_are_the_libraries_own():
    # the names a module hands on are fastnn's objects, not copies or look-alikes
    from collections import OrderedDict

    from fastnn import convnets, datasets, functions, gradient, layers, nets, nnfs, util
    for name in ("sigmoid", "softmax", "cross_entropy_error", "relu_grad"):
        assert getattr(layers, name) is getattr(functions, name)
        assert getattr(nets, name) is getattr(functions, name)
    assert layers.im2col is util.im2col and layers.col2im is util.col2im
    assert nets.numerical_gradient is gradient.numerical_gradient
    assert convnets.numerical_gradient is gradient.numerical_gradient
    assert nets.OrderedDict is OrderedDict and nets.Affine is layers.Affine
    assert nnfs.nnfs is nnfs and nnfs.spiral_data is datasets.spiral_data
    assert nnfs.nnfs.datasets.sine_data is datasets.sine_data


def test_chapter_header_runs_from_fastnn_nnfs_alone():
    # a chapter's header with its imports and classes replaced by one line (a fresh
    # interpreter: nnfs.init() patches NumPy for the whole process)
    code = ("from fastnn.nnfs import *\n"
            "nnfs.init()\n"
            "X, y = spiral_data(samples=100, classes=3)\n"
            "d = Layer_Dense(2, 3)\n"
            "d.forward(X)\n"
            "print(X.dtype, d.output.dtype, np.dot is not None)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["float32", "float32", "True"]
