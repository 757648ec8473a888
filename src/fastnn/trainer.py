"""The book's ``common/trainer.py``: mini-batch training with an optimizer by name.

``Trainer(network, x_train, t_train, x_test, t_test, epochs=20, mini_batch_size=100,
optimizer='SGD', optimizer_param={'lr': 0.01}, evaluate_sample_num_per_epoch=None,
verbose=True)``; ``train()`` fills ``train_loss_list``, ``train_acc_list`` and
``test_acc_list``. Each step is ``network.gradient`` (fastnn's fused backprop for its nets)
then one ``optimizer.update`` kernel call. Mini-batches are drawn with
``np.random.choice`` exactly as the book does, so a seeded run draws the same batches.
"""
import sys
import time

import numpy as np

from .optimizer import SGD, AdaGrad, Adam, Momentum, Nesterov, RMSprop

__all__ = ["Trainer"]

_OPTIMIZERS = {"sgd": SGD, "momentum": Momentum, "nesterov": Nesterov, "adagrad": AdaGrad,
               "rmsprop": RMSprop, "rmsprpo": RMSprop,  # the book's key has this typo
               "adam": Adam}


class Trainer:
    """Train ``network`` (anything with ``params``, ``gradient``, ``loss``, ``accuracy``).

    Parameters
    ----------
    network : TwoLayerNet, MultiLayerNet, MultiLayerNetExtend, ...
    x_train, t_train, x_test, t_test : arrays (N, ...) and labels or one-hot targets
    epochs : int
    mini_batch_size : int
    optimizer : str ('SGD', 'Momentum', 'Nesterov', 'AdaGrad', 'RMSprop', 'Adam') or an
        optimizer object with ``update(params, grads)``
    optimizer_param : dict of the optimizer's arguments (``lr`` may be a schedule)
    evaluate_sample_num_per_epoch : int or None
        Accuracy at each epoch on only the first this-many samples (None: all).
    verbose : bool
        Print the book's per-step loss lines and per-epoch accuracy lines.
    """

    def __init__(self, network, x_train, t_train, x_test, t_test,
                 epochs=20, mini_batch_size=100,
                 optimizer="SGD", optimizer_param={"lr": 0.01},  # noqa: B006 - the book's default
                 evaluate_sample_num_per_epoch=None, verbose=True):
        self.network = network
        self.verbose = verbose
        self.x_train = x_train
        self.t_train = t_train
        self.x_test = x_test
        self.t_test = t_test
        self.epochs = epochs
        self.batch_size = mini_batch_size
        self.evaluate_sample_num_per_epoch = evaluate_sample_num_per_epoch

        if isinstance(optimizer, str):
            try:
                cls = _OPTIMIZERS[optimizer.lower()]
            except KeyError:
                raise ValueError("Trainer: unknown optimizer %r; choose one of %s"
                                 % (optimizer, sorted(set(_OPTIMIZERS) - {"rmsprpo"}))) from None
            self.optimizer = cls(**dict(optimizer_param or {}))
        elif hasattr(optimizer, "update"):
            self.optimizer = optimizer
        else:
            raise TypeError("Trainer: optimizer must be a name or an object with update(), got %r"
                            % (optimizer,))

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
        self._t0 = None

    def train_step(self):
        batch_mask = np.random.choice(self.train_size, self.batch_size)
        x_batch = self.x_train[batch_mask]
        t_batch = self.t_train[batch_mask]

        grads = self.network.gradient(x_batch, t_batch)
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
                      + ", test acc:" + str(test_acc) + " ===" + self._progress())
        self.current_iter += 1

    def _progress(self):
        # fastnn's addition to the book's epoch line: steps done and time so far
        if self._t0 is None:
            return ""
        done = self.current_iter + 1
        elapsed = time.perf_counter() - self._t0
        return " (step %d/%d, %.1fs)" % (done, self.max_iter, elapsed)

    def train(self):
        self._t0 = time.perf_counter()
        for i in range(self.max_iter):
            self.train_step()

        test_acc = self.network.accuracy(self.x_test, self.t_test)

        if self.verbose:
            print("=============== Final Test Accuracy ===============")
            print("test acc:" + str(test_acc))
            sys.stdout.flush()
        return test_acc
