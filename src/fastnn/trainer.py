"""The book's ``common/trainer.py``: mini-batch training with an optimizer by name.

``Trainer(network, x_train, t_train, x_test, t_test, epochs=20, mini_batch_size=100,
optimizer='SGD', optimizer_param={'lr': 0.01}, evaluate_sample_num_per_epoch=None,
verbose=True)``; ``train()`` fills ``train_loss_list``, ``train_acc_list`` and
``test_acc_list`` and prints exactly the book's lines. Each step is ``network.gradient``
(fastnn's fused backprop for its nets) then one ``optimizer.update`` kernel call.
Mini-batches are drawn with ``np.random.choice`` exactly as the book does, so a seeded run
draws the same batches.

``from fastnn.trainer import *`` gives what the book's ``from common.trainer import *``
gives: ``Trainer``, the optimizer classes, ``np``, ``sys`` and ``os``.

fastnn's additions, keyword-only: ``gradient='numerical'`` trains on
``network.numerical_gradient`` (the book's ch04 way, by the fused finite-difference
engine); ``progress`` shows a progress bar on stderr when stderr is a terminal (never in a
file or a pipe, and not on the terminal that the verbose lines are printed to).
"""
import os
import sys

import numpy as np

from ._progress import ProgressBar, is_terminal
from .optimizer import SGD, AdaGrad, Adam, Momentum, Nesterov, RMSprop

# the book's module imports these (sys, os, numpy, `from common.optimizer import *`), so
# its `import *` exports them: scripts rely on that
__all__ = ["sys", "os", "np", "SGD", "Momentum", "Nesterov", "AdaGrad", "RMSprop", "Adam",
           "Trainer"]

OPTIMIZERS = {"sgd": SGD, "momentum": Momentum, "nesterov": Nesterov, "adagrad": AdaGrad,
              "rmsprop": RMSprop, "adam": Adam}
_ALIASES = {"rmsprpo": RMSprop}  # the book's common/trainer.py once had this typo
GRADIENTS = {"backprop": "gradient", "numerical": "numerical_gradient"}


class Trainer:
    """Train ``network`` (anything with ``params``, ``gradient``, ``loss``, ``accuracy``).

    Parameters
    ----------
    network : TwoLayerNet, MultiLayerNet, MultiLayerNetExtend, ...
    x_train, t_train, x_test, t_test : arrays (N, ...) and labels or one-hot targets
    epochs : int or float
    mini_batch_size : int
    optimizer : str ('SGD', 'Momentum', 'Nesterov', 'AdaGrad', 'RMSprop', 'Adam') or an
        optimizer object with ``update(params, grads)``
    optimizer_param : dict of the optimizer's arguments (``lr`` may be a schedule)
    evaluate_sample_num_per_epoch : int or None
        Accuracy at each epoch on only the first this-many samples (None: all).
    verbose : bool
        Print the book's per-step loss lines and per-epoch accuracy lines.
    gradient : {'backprop', 'numerical'}, keyword-only
        ``network.gradient`` (the book's Trainer) or ``network.numerical_gradient``.
    progress : bool, keyword-only
        Show a progress bar on stderr while ``train()`` runs, when stderr is a terminal
        and the verbose lines do not go to a terminal too.
    """

    def __init__(self, network, x_train, t_train, x_test, t_test,
                 epochs=20, mini_batch_size=100,
                 optimizer="SGD", optimizer_param={"lr": 0.01},  # noqa: B006 - the book's default
                 evaluate_sample_num_per_epoch=None, verbose=True, *,
                 gradient="backprop", progress=True):
        self.network = network
        self.verbose = verbose
        self.x_train = x_train
        self.t_train = t_train
        self.x_test = x_test
        self.t_test = t_test
        self.epochs = epochs
        self.batch_size = mini_batch_size
        self.evaluate_sample_num_per_epoch = evaluate_sample_num_per_epoch
        self.progress = progress

        if isinstance(optimizer, str):
            cls = OPTIMIZERS.get(optimizer.lower()) or _ALIASES.get(optimizer.lower())
            if cls is None:
                raise ValueError("Trainer: unknown optimizer %r; choose one of %s"
                                 % (optimizer, sorted(OPTIMIZERS)))
            self.optimizer = cls(**dict(optimizer_param or {}))
        elif hasattr(optimizer, "update"):
            self.optimizer = optimizer
        else:
            raise TypeError("Trainer: optimizer must be a name or an object with update(), got %r"
                            % (optimizer,))
        if gradient not in GRADIENTS:
            raise ValueError("Trainer: gradient must be one of %s, got %r"
                             % (sorted(GRADIENTS), gradient))
        self.gradient = gradient
        self._grad_fn = getattr(network, GRADIENTS[gradient])

        if len(x_train) != len(t_train):
            raise ValueError("Trainer: x_train has %d samples but t_train has %d"
                             % (len(x_train), len(t_train)))
        if int(mini_batch_size) < 1:
            raise ValueError("Trainer: mini_batch_size must be >= 1, got %r" % (mini_batch_size,))
        self.train_size = x_train.shape[0]
        if self.train_size == 0:
            raise ValueError("Trainer: x_train is empty (shape %s)" % (x_train.shape,))
        self.iter_per_epoch = max(self.train_size / mini_batch_size, 1)
        self.max_iter = int(epochs * self.iter_per_epoch)
        self.current_iter = 0
        self.current_epoch = 0

        self.train_loss_list = []
        self.train_acc_list = []
        self.test_acc_list = []

    def train_step(self):
        """One mini-batch step; at each epoch's first step, the accuracies (the book's)."""
        batch_mask = np.random.choice(self.train_size, self.batch_size)
        x_batch = self.x_train[batch_mask]
        t_batch = self.t_train[batch_mask]

        grads = self._grad_fn(x_batch, t_batch)
        self.optimizer.update(self.network.params, grads)

        loss = self.network.loss(x_batch, t_batch)
        self.train_loss_list.append(loss)
        if self.verbose:
            print("train loss:" + str(loss))

        if self.current_iter % self.iter_per_epoch == 0:
            self.current_epoch += 1

            x_train_sample, t_train_sample = self.x_train, self.t_train
            x_test_sample, t_test_sample = self.x_test, self.t_test
            if self.evaluate_sample_num_per_epoch is not None:
                t = self.evaluate_sample_num_per_epoch
                x_train_sample, t_train_sample = self.x_train[:t], self.t_train[:t]
                x_test_sample, t_test_sample = self.x_test[:t], self.t_test[:t]

            train_acc = self.network.accuracy(x_train_sample, t_train_sample)
            test_acc = self.network.accuracy(x_test_sample, t_test_sample)
            self.train_acc_list.append(train_acc)
            self.test_acc_list.append(test_acc)

            if self.verbose:
                print("=== epoch:" + str(self.current_epoch) + ", train acc:" + str(train_acc)
                      + ", test acc:" + str(test_acc) + " ===")
        self.current_iter += 1

    def _progress_bar(self):
        # not on the terminal that the per-step lines scroll on: they would tear the bar
        lines_on_terminal = self.verbose and is_terminal(sys.stdout)
        return ProgressBar(self.max_iter, enabled=self.progress and not lines_on_terminal)

    def train(self):
        """Run ``max_iter`` steps, then print the test accuracy (the book's lines)."""
        bar = self._progress_bar()
        try:
            for i in range(self.max_iter):
                self.train_step()
                bar.update(i + 1, "epoch %d, loss %.4f"
                           % (self.current_epoch, float(self.train_loss_list[-1])))
        finally:
            bar.close()

        test_acc = self.network.accuracy(self.x_test, self.t_test)

        if self.verbose:
            print("=============== Final Test Accuracy ===============")
            print("test acc:" + str(test_acc))
