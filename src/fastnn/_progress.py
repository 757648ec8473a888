"""A one-line progress bar on stderr, drawn only when stderr is a terminal.

Used by ``fastnn.trainer.Trainer`` and ``fastnn train``. Never written to a file or a pipe
(logs and captured output stay exactly the book's lines); redrawn at most 10 times a
second, so it costs nothing next to a training step; erased when closed.
"""
import shutil
import sys
import time

__all__ = ["ProgressBar", "is_terminal"]


def is_terminal(stream):
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):  # no isatty, or a closed stream
        return False


class ProgressBar:
    """``[#####-----] done/total  text`` redrawn in place on ``stream`` (default stderr).

    Parameters
    ----------
    total : int
        Steps in all (0: the bar shows only the count).
    stream : file, optional
        Default ``sys.stderr``. Nothing is drawn unless it is a terminal.
    enabled : bool
        False: draw nothing.
    """

    WIDTH = 24

    def __init__(self, total, stream=None, enabled=True):
        self.total = int(total)
        self.stream = stream if stream is not None else sys.stderr
        self.enabled = bool(enabled) and is_terminal(self.stream)
        self._last = 0.0
        self._drawn = False

    def update(self, done, text="", force=False):
        """Show ``done`` of ``total`` steps and ``text`` (throttled unless ``force``)."""
        if not self.enabled:
            return
        now = time.monotonic()
        if not force and now - self._last < 0.1 and done < self.total:
            return
        self._last = now
        if self.total > 0:
            n = min(self.WIDTH, int(self.WIDTH * done / self.total))
            line = "[%s%s] %d/%d" % ("#" * n, "-" * (self.WIDTH - n), done, self.total)
        else:
            line = "%d" % done
        if text:
            line += "  " + text
        cols = shutil.get_terminal_size((80, 24)).columns
        line = line[:max(10, cols - 1)]
        self.stream.write("\r" + line + "\x1b[K")  # \x1b[K: clear to the end of the line
        self.stream.flush()
        self._drawn = True

    def close(self):
        """Erase the bar, leaving the cursor at the start of an empty line."""
        if self.enabled and self._drawn:
            self.stream.write("\r\x1b[K")
            self.stream.flush()
            self._drawn = False
