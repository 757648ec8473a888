"""The fastnn command: ``fastnn train``, ``fastnn bench``, ``fastnn check``.

One module per command (``_train``, ``_bench``, ``_check``); what they share is in
``_common`` (usage errors, argument checks, timing text), ``_params`` (--save/--load),
``_plot`` (--plot) and ``_cases`` (the benchmark cases, shared with benchmarks/).
This module only parses the command line.
"""
import argparse
import sys

from ._common import (UsageError, int_range, positive_float, seed_type, size_list,
                      threads_type)
from ._params import load_params, save_params

__all__ = ["main", "build_parser", "UsageError", "save_params", "load_params"]

OPTIMIZERS = ("sgd", "momentum", "nesterov", "adagrad", "rmsprop", "adam")

DESCRIPTION = """\
fastnn: the "from scratch" books' neural-network code, with C underneath.

commands:
  fastnn train   train the book's net on real MNIST digits and say how long the
                 book's NumPy code would take for the same run
  fastnn bench   time fastnn against the book's NumPy code on this machine
  fastnn check   show how fastnn was built and check every kernel against NumPy

Run "fastnn COMMAND --help" for a command's options.
"""

TRAIN_DESCRIPTION = """\
Train a net from the "Deep Learning from Scratch" book and report the loss, the accuracy
on held-out images, the time, and how long the book's NumPy code would take.

With no options: the book's chapter 4 training with numerical gradients (a 784-50-10
sigmoid net, batches of 100 images, learning rate 0.1) on the MNIST sample that comes
with fastnn, until 90% of the held-out images are recognised. The book skips this run
because its NumPy code would take days.

--half-hour runs the prototype's half-hour run instead: a 784-100-10 net, 100 steps
of one image each. Ctrl-C stops cleanly after the step under way (and still saves).
"""

TRAIN_EPILOG = """\
examples:
  fastnn train
  fastnn train --half-hour
  fastnn train --gradient backprop --optimizer adam --lr 0.01 --epochs 5 --plot curves.png
  fastnn train --model cnn
  fastnn train --model cnn --data mnist --target 98.5 --batch-size 64
  fastnn train --data spiral --hidden 64,64 --activation relu --gradient backprop \\
               --optimizer adam --lr 0.01
  fastnn train --save net.npz ...   then   fastnn train --load net.npz --steps 0
"""


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line: ``fastnn train: error: --seed: ...``."""

    def error(self, message):
        self.exit(2, "%s: error: %s (see %s --help)\n" % (self.prog, message, self.prog))


def _add_train(sub):
    p = sub.add_parser("train", help="train the book's net on real MNIST digits and time it",
                       description=TRAIN_DESCRIPTION, epilog=TRAIN_EPILOG,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--half-hour", action="store_true",
                   help="the prototype's half-hour run: a 784-100-10 net, 100 steps of one "
                   "image, numerical gradients, learning rate 0.1")
    p.add_argument("--data", choices=("sample", "mnist", "spiral"), default="sample",
                   help="sample: the MNIST sample that comes with fastnn (5,000 training and "
                   "1,000 test images, no download); mnist: all of MNIST (60,000 and 10,000, "
                   "downloaded once into FASTNN_DATA or your cache folder); spiral: the nnfs "
                   "book's three-armed spiral, 2-D points (default: sample)")
    p.add_argument("--model", choices=("mlp", "cnn"), default="mlp",
                   help="mlp: the book's fully connected nets (TwoLayerNet, MultiLayerNet); "
                   "cnn: the Paddle course's MNIST CNN (conv 20 5x5 pad 2 - relu - pool 2 - "
                   "conv 20 5x5 pad 2 - relu - pool 2 - affine 980-10), in float32, trained "
                   "by backprop with SGD lr 0.01 as in the course, until 96%% of the "
                   "held-out images are recognised (default: mlp)")
    p.add_argument("--gradient", choices=("numerical", "backprop"), default=None,
                   help="numerical: central differences, as the book's chapter 4; backprop: "
                   "backpropagation, as chapter 5 (default: numerical; backprop with "
                   "--model cnn)")
    p.add_argument("--hidden", type=size_list, default=None, metavar="N[,N...]",
                   help="hidden layer size, or one size per hidden layer, e.g. 100,50 "
                   "(default: 50; 100 with --half-hour)")
    p.add_argument("--layers", type=int_range(1, 100), default=None, metavar="K",
                   help="number of hidden layers, each --hidden wide (1 to 100; default: 1)")
    p.add_argument("--activation", choices=("sigmoid", "relu"), default=None,
                   help="the hidden layers' activation; one sigmoid layer is the book's "
                   "TwoLayerNet, anything else its MultiLayerNet (default: sigmoid)")
    p.add_argument("--batch-size", type=int_range(1, 10**7), default=None, metavar="N",
                   help="images per step (default: 100; 1 with --half-hour)")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--steps", type=int_range(0, 10**9), default=None, metavar="N",
                   help="train this many steps (default: until the --target accuracy, at "
                   "most 10,000 steps; 100 with --half-hour). 0 with --load: only "
                   "measure the accuracy")
    g.add_argument("--epochs", type=positive_float("must be a positive number of passes"),
                   default=None, metavar="E",
                   help="train this many passes over the training set instead")
    p.add_argument("--target", type=positive_float("must be a percentage above 0 and at most 100", 100),
                   default=None, metavar="PERCENT",
                   help="stop once this share of the held-out images is recognised, checked "
                   "once an epoch (default: 90 when neither --steps nor --epochs is given)")
    p.add_argument("--lr", type=positive_float(), default=None,
                   help="learning rate (default: 0.1)")
    p.add_argument("--optimizer", choices=OPTIMIZERS, default="sgd",
                   help="the book's update rules (default: sgd)")
    p.add_argument("--threads", type=threads_type, default=None, metavar="N",
                   help="threads fastnn may use (default: all; OMP_NUM_THREADS is honoured)")
    p.add_argument("--seed", type=seed_type, default=0,
                   help="random seed (0 to 4294967295) for the initial weights, the "
                   "batches and the spiral data, so a run can be repeated (default: 0)")
    p.add_argument("--eval-every", type=int_range(1, 10**9), default=None, metavar="K",
                   help="also measure the accuracy every K steps (default: once an epoch)")
    p.add_argument("--plot", metavar="FILE.png",
                   help="save the loss and accuracy curves as a picture (needs matplotlib: "
                   "pip install \"fastnn[plot]\")")
    p.add_argument("--save", metavar="FILE.npz", help="save the trained net's parameters")
    p.add_argument("--load", metavar="FILE.npz",
                   help="start from parameters saved with --save (the file gives the net's "
                   "shape)")
    p.add_argument("--no-reference", action="store_true",
                   help="do not time the book's NumPy code (it takes up to "
                   "--reference-budget seconds)")
    p.add_argument("--reference-budget", type=positive_float(), default=30.0,
                   metavar="SECONDS",
                   help="time the book's NumPy code for at most this long and extrapolate "
                   "the rest of its step (default: 30)")
    p.set_defaults(run="_train")


def build_parser():
    parser = _Parser(prog="fastnn", description=DESCRIPTION,
                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    _add_train(sub)

    p = sub.add_parser("bench", help="time fastnn against the book's NumPy code",
                       description="Time fastnn's kernels and nets against the books' NumPy "
                       "code on this machine, the same cases as the project's benchmarks, "
                       "and print the table with the CPU, the threads and the BLAS named.")
    p.add_argument("--markdown", action="store_true", help="print the table as Markdown")
    p.add_argument("--threads", type=threads_type, default=None, metavar="N",
                   help="threads fastnn may use (default: all)")
    p.add_argument("--quick", action="store_true",
                   help="shorter timings: about 1 s for each slow NumPy case, extrapolated")
    p.set_defaults(run="_bench")

    p = sub.add_parser("check", help="show the build and check every kernel against NumPy",
                       description="Show how fastnn was built (OpenMP, threads, the CPU's "
                       "instruction sets) and check every kernel family against NumPy: the "
                       "functions, the losses, the layers, the nets' gradients and numerical "
                       "gradients, the optimizers and the nnfs classes, in float32 and "
                       "float64, on every instruction-set level this CPU runs. Exit status 1 "
                       "if any result disagrees.")
    p.add_argument("--seed", type=seed_type, default=0,
                   help="random seed (0 to 4294967295) for the test data (default: 0)")
    p.add_argument("--threads", type=threads_type, default=None, metavar="N",
                   help="threads fastnn may use (default: all)")
    p.set_defaults(run="_check")
    return parser


def main(argv=None):
    """Run the fastnn command; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:  # bare `fastnn`: say what it can do
        parser.print_help()
        return 0
    import importlib
    command = importlib.import_module("fastnn.cli." + args.run)
    try:
        return command.run(args)
    except UsageError as e:
        parser.exit(2, "fastnn %s: error: %s\n" % (args.command, e))
    except KeyboardInterrupt:
        sys.stderr.write("\nfastnn %s: interrupted\n" % args.command)
        return 130
