"""`from fastnn.X import *` gives at least what the book's `from common.X import *` gives.

The book's modules have no __all__, so `import *` hands over every public name they
define or import; its scripts rely on that (ch06's optimizer_compare_mnist.py uses `np`
after `from common.optimizer import *`, and `common.layers` re-exports the functions,
im2col and col2im). Each set below is what the book's module makes public.
"""
import subprocess
import sys

import pytest

BOOK_EXPORTS = {
    # common/functions.py: import numpy as np
    "fastnn.functions": {"np", "identity_function", "step_function", "sigmoid", "sigmoid_grad",
                         "relu", "relu_grad", "softmax", "sum_squared_error",
                         "mean_squared_error", "cross_entropy_error", "softmax_loss"},
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

    from fastnn import functions, optimizer
    assert functions.np is numpy and optimizer.np is numpy
