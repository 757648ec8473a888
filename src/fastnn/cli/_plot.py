"""``fastnn train --plot``: loss and accuracy curves in one picture (matplotlib, optional).

``check_plot_path`` runs before training: matplotlib must be installed, the file type one
it writes, the folder writable. ``plot_history`` runs after.
"""
import numpy as np

from ._common import UsageError, check_writable

__all__ = ["check_plot_path", "plot_history"]


def _pyplot():
    import matplotlib
    matplotlib.use("Agg")  # files only: no window, no display needed
    import matplotlib.pyplot as plt
    return plt


def check_plot_path(path, option="--plot"):
    """UsageError unless ``path`` can be written as a picture, checked before any work."""
    try:
        plt = _pyplot()
    except ImportError:
        raise UsageError("%s needs matplotlib, which is not installed: pip install "
                         "'fastnn[plot]' (or pip install matplotlib)" % option) from None
    check_writable(option, path)
    fig = plt.figure()
    try:
        types = sorted(fig.canvas.get_supported_filetypes())
    finally:
        plt.close(fig)
    suffix = str(path).rsplit(".", 1)[-1].lower() if "." in str(path) else ""
    if suffix not in types:
        raise UsageError("%s %s: matplotlib cannot write .%s files; end the name in one of "
                         "%s" % (option, path, suffix or "(no extension)",
                                 ", ".join("." + t for t in types)))


def plot_history(path, losses, evals, title, target=None):
    """Save the curves: ``losses`` one per step; ``evals`` (step, train acc, test acc);
    ``target`` (percent) drawn as a dashed line."""
    plt = _pyplot()
    steps = np.arange(1, len(losses) + 1)
    loss = np.asarray(losses, dtype=np.float64)
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 4))
    ax1.plot(steps, loss, lw=0.6, alpha=0.45, label="loss (each step)")
    w = max(1, len(loss) // 20)
    if len(loss) >= w > 1:
        smooth = np.convolve(loss, np.ones(w) / w, mode="valid")  # a moving mean of w steps
        ax1.plot(steps[w - 1:], smooth, lw=1.8, label="mean of %d steps" % w)
    ax1.set_xlabel("step")
    ax1.set_ylabel("cross-entropy loss")
    ax1.set_title("loss")
    ax1.legend()
    ax1.grid(alpha=0.3)
    if evals:
        ev = np.asarray(evals, dtype=np.float64)
        ax2.plot(ev[:, 0], 100 * ev[:, 1], "o-", ms=3, label="training images")
        ax2.plot(ev[:, 0], 100 * ev[:, 2], "s-", ms=3, label="held-out images")
    if target is not None:
        ax2.axhline(target, color="0.4", ls="--", lw=1, label="target (%g%%)" % target)
    ax2.set_xlabel("step")
    ax2.set_ylabel("accuracy (%)")
    ax2.set_ylim(0, 100)
    ax2.set_title("accuracy")
    ax2.legend()
    ax2.grid(alpha=0.3)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
