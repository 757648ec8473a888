"""MNIST: the book's ``load_mnist``, a verified download cache and the bundled sample (the
IDX reader is in ``idx.py``, the CSV reader in ``mnist_csv.py``).

Design: pure Python + NumPy (no kernels), so it also runs where the extension is not built.
Files are trusted only after their *decompressed* content matches a SHA-256 digest (mirrors
re-compress the official .gz files, so the .gz bytes differ from mirror to mirror while the
content does not). A download goes to a temporary file in the cache folder and is renamed
into place only after it is verified, so an interrupted or corrupted download never leaves a
file that a later call would read. A cached file may also be the unzipped IDX file
(``train-images-idx3-ubyte``, or ``train-images.idx3-ubyte`` as some archives name it).
No file is ever decompressed or read beyond its expected size.
"""
import hashlib
import http.client
import os
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np

from .idx import GZIP_MAGIC, IDXFormatError, gunzip_bounded, read_idx

__all__ = [
    "load_mnist", "read_idx", "fetch_mnist", "get_data_home",
    "IDXFormatError", "MNISTNotAvailableError", "MNIST_FILES", "MNIST_MIRRORS",
    "SAMPLE_PATH",
]

# key -> (file name, SHA-256 of the decompressed IDX content, decompressed size in bytes).
# These are the official files' contents (their MD5s after gunzip match the MNIST page's).
MNIST_FILES = {
    "train_img": ("train-images-idx3-ubyte.gz",
                  "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db", 47040016),
    "train_label": ("train-labels-idx1-ubyte.gz",
                    "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5", 60008),
    "test_img": ("t10k-images-idx3-ubyte.gz",
                 "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7", 7840016),
    "test_label": ("t10k-labels-idx1-ubyte.gz",
                   "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2", 10008),
}

# Public mirrors of the four official files, tried in order. ``FASTNN_MNIST_URL`` (or the
# ``base_url`` argument) replaces the list with one base URL.
MNIST_MIRRORS = (
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "https://storage.googleapis.com/cvdf-datasets/mnist/",
)

SAMPLE_PATH = Path(__file__).resolve().parent / "data" / "mnist_sample.npz"

_CHUNK = 1 << 16


class MNISTNotAvailableError(OSError):
    """The MNIST files are missing and could not be downloaded (offline, bad mirror, ...)."""


# --- cache folder, download, verification --------------------------------------------

def get_data_home(data_home=None):
    """The folder that holds fastnn's downloaded data (created on demand).

    ``data_home`` if given, else the ``FASTNN_DATA`` environment variable, else the user's
    cache directory: ``$XDG_CACHE_HOME/fastnn`` (``~/.cache/fastnn``) on Linux,
    ``~/Library/Caches/fastnn`` on macOS, ``%LOCALAPPDATA%\\fastnn\\Cache`` on Windows.
    MNIST lives in its ``mnist/`` subfolder.
    """
    if data_home is None:
        data_home = os.environ.get("FASTNN_DATA") or None
    if data_home is None:
        if sys.platform.startswith("win"):
            base = os.environ.get("LOCALAPPDATA") or os.path.expanduser("~\\AppData\\Local")
            return Path(base) / "fastnn" / "Cache"
        if sys.platform == "darwin":
            return Path.home() / "Library" / "Caches" / "fastnn"
        return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "fastnn"
    return Path(os.path.expanduser(os.fspath(data_home)))


def _base_urls(base_url):
    if base_url is None:
        base_url = os.environ.get("FASTNN_MNIST_URL") or None
    urls = MNIST_MIRRORS if base_url is None else (
        [base_url] if isinstance(base_url, str) else list(base_url))
    return [u if u.endswith("/") else u + "/" for u in urls]


def _candidates(folder, key):
    """The names a cached MNIST file may have: the official .gz, or the unzipped IDX file
    (``train-images-idx3-ubyte``, ``train-images.idx3-ubyte``)."""
    fname = MNIST_FILES[key][0]
    plain = fname[:-3] if fname.endswith(".gz") else fname
    dotted = plain.replace("-idx", ".idx", 1)
    return [folder / n for n in dict.fromkeys((fname, plain, dotted))]


def _verify(path, key, gzipped=None):
    """Decompress ``path`` (or read it, if it is not gzip) and check its content against
    MNIST_FILES[key], never reading more than the expected size. ``gzipped``: the file
    must be gzip (default: when its name ends with .gz).

    Returns the content; raises IDXFormatError when the file is not a complete gzip file,
    or its content is not the expected one.
    """
    fname, digest, size = MNIST_FILES[key]
    with open(path, "rb") as f:
        if gzipped is None:
            gzipped = str(path).endswith(".gz")
        if f.read(2) == GZIP_MAGIC or gzipped:
            f.seek(0)  # a .gz must be gzip: gunzip_bounded says so when it is not
            data = gunzip_bounded(f, str(path), max_size=size)
        else:
            on_disk = os.fstat(f.fileno()).st_size
            if on_disk != size:
                raise IDXFormatError("%s: %d bytes, but the unzipped %s has %d bytes"
                                     % (path, on_disk, fname[:-3], size))
            f.seek(0)
            data = f.read()
    got = hashlib.sha256(data).hexdigest()
    if got != digest:
        raise IDXFormatError(
            "%s: content does not match %s (%d bytes with SHA-256 %s..., expected %d bytes "
            "with SHA-256 %s...): a corrupted or different file"
            % (path, fname, len(data), got[:16], size, digest[:16]))
    return data


class _Progress:
    """A one-line download bar on a terminal; a start and an end line otherwise."""

    def __init__(self, label, total, stream, enabled):
        self.label, self.total, self.stream, self.enabled = label, total, stream, enabled
        self.tty = enabled and hasattr(stream, "isatty") and stream.isatty()
        self.done, self.t0, self.last = 0, time.monotonic(), 0.0
        if enabled and not self.tty:
            size = " (%.1f MB)" % (total / 1e6) if total else ""
            stream.write("fastnn: downloading %s%s ...\n" % (label, size))
            stream.flush()

    def update(self, n):
        self.done += n
        now = time.monotonic()
        if self.tty and (now - self.last > 0.1 or (self.total and self.done >= self.total)):
            self.last = now
            if self.total:
                frac = min(1.0, self.done / self.total)
                bar = "#" * int(30 * frac) + "-" * (30 - int(30 * frac))
                msg = "\r%s [%s] %5.1f%% %.1f/%.1f MB" % (
                    self.label, bar, 100 * frac, self.done / 1e6, self.total / 1e6)
            else:
                msg = "\r%s %.1f MB" % (self.label, self.done / 1e6)
            self.stream.write(msg)
            self.stream.flush()

    def close(self, ok=True):
        if not self.enabled:
            return
        dt = time.monotonic() - self.t0
        end = "%.1f MB in %.1f s" % (self.done / 1e6, dt) if ok else "failed"
        self.stream.write(("\r%s: %s\n" if self.tty else "fastnn: %s: %s\n") % (self.label, end))
        self.stream.flush()


def _download(url, dest, key, progress, timeout):
    """Fetch ``url`` into a temporary file beside ``dest``; verify; rename into place."""
    dest = Path(dest)
    fd, tmp = tempfile.mkstemp(prefix="." + dest.name + ".", suffix=".part", dir=dest.parent)
    bar = None
    try:
        with os.fdopen(fd, "wb") as out:
            req = urllib.request.Request(url, headers={"User-Agent": "fastnn"})
            # a .gz is never larger than its content plus a little framing: refuse more
            cap = MNIST_FILES[key][2] + (1 << 20)
            with urllib.request.urlopen(req, timeout=timeout) as resp:
                length = resp.headers.get("Content-Length")
                length = int(length) if length and length.isdigit() else None
                if length is not None and length > cap:
                    raise IDXFormatError("%s: %d bytes offered, more than the file can have "
                                         "(%d)" % (url, length, cap))
                bar = _Progress(dest.name, length, sys.stderr, progress)
                while True:
                    chunk = resp.read(_CHUNK)
                    if not chunk:
                        break
                    out.write(chunk)
                    bar.update(len(chunk))
                    if bar.done > cap:
                        raise IDXFormatError("%s: more than %d bytes, more than the file "
                                             "can have" % (url, cap))
            if length is not None and bar.done != length:
                raise IDXFormatError("%s: download ended after %d of %d bytes"
                                     % (url, bar.done, length))
            out.flush()
            os.fsync(out.fileno())
        data = _verify(tmp, key, gzipped=True)
        os.replace(tmp, dest)  # atomic on POSIX and Windows: dest is complete or absent
        bar.close(True)
        return data
    except BaseException:
        if bar is not None:
            bar.close(False)
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def _missing_message(folder, keys, urls, reasons):
    lines = ["MNIST is not available: %d file(s) missing or invalid in %s"
             % (len(keys), folder)]
    if reasons:
        lines.append("and could not be downloaded:")
        lines.extend("  " + r for r in reasons)
    lines.append("Put these files in %s, gzipped or unzipped (or set FASTNN_DATA to a "
                 "folder whose mnist/ subfolder has them):" % folder)
    for k in keys:
        lines.append("  %-28s from %s%s" % (MNIST_FILES[k][0], urls[0], MNIST_FILES[k][0]))
    lines.append("or use the MNIST sample bundled with fastnn: load_mnist(sample=True).")
    return "\n".join(lines)


def fetch_mnist(data_home=None, base_url=None, download=True, progress=True, timeout=60,
                keys=None):
    """Make sure the four MNIST files are in the cache folder, verified; return their content.

    Parameters
    ----------
    data_home : path-like, optional
        Folder whose ``mnist/`` subfolder holds the files (see :func:`get_data_home`).
    base_url : str or list of str, optional
        Mirror(s) to download from (default: ``FASTNN_MNIST_URL`` or ``MNIST_MIRRORS``).
    download : bool
        If False, never touch the network: missing files are an error.
    progress : bool
        Report downloads on stderr (a progress bar on a terminal).

    Returns
    -------
    dict
        key (``train_img``, ``train_label``, ``test_img``, ``test_label``) -> decompressed
        IDX bytes, each verified against ``MNIST_FILES``.

    Raises
    ------
    MNISTNotAvailableError
        When a file is missing or invalid and cannot be downloaded; the message says which
        files to put where.
    """
    folder = get_data_home(data_home) / "mnist"
    urls = _base_urls(base_url)
    keys = list(MNIST_FILES) if keys is None else list(keys)
    contents, missing, reasons = {}, [], []
    for key in keys:
        bad = []
        for path in _candidates(folder, key):  # the .gz, or the unzipped IDX file
            if not path.exists():
                continue
            try:
                contents[key] = _verify(path, key)
                break
            except (IDXFormatError, OSError) as e:
                reasons.append(str(e))
                bad.append(path)
        if key in contents:
            continue
        if download:  # move the bad files aside so they are never read again
            for path in bad:
                try:
                    os.replace(path, path.with_name(path.name + ".invalid"))
                except OSError:
                    pass
        missing.append(key)
    if missing and download:
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise MNISTNotAvailableError(_missing_message(
                folder, missing, urls, reasons + ["cannot create %s: %s" % (folder, e)])) from None
        still = []
        for key in missing:
            fname = MNIST_FILES[key][0]
            for base in urls:
                try:
                    contents[key] = _download(base + fname, folder / fname, key, progress, timeout)
                    break
                except (urllib.error.URLError, http.client.HTTPException, OSError, IDXFormatError,
                        ValueError) as e:
                    reasons.append("%s%s: %s" % (base, fname, getattr(e, "reason", e)))
            else:
                still.append(key)
        missing = still
    if missing:
        raise MNISTNotAvailableError(_missing_message(folder, missing, urls, reasons))
    return contents


# --- the book's load_mnist ------------------------------------------------------------

_raw_cache = {}


def _raw_arrays(sample, data_home, base_url, download, progress):
    """(x_train, t_train, x_test, t_test) as read-only uint8 arrays, images (N, 784)."""
    if sample:
        key = ("sample", str(SAMPLE_PATH))
        if key not in _raw_cache:
            with np.load(SAMPLE_PATH, allow_pickle=False) as z:
                arrs = [z[k] for k in ("x_train", "t_train", "x_test", "t_test")]
            for a in arrs:
                a.flags.writeable = False
            _raw_cache[key] = tuple(arrs)
        return _raw_cache[key]
    folder = get_data_home(data_home) / "mnist"
    stamp = []
    for k in MNIST_FILES:
        for path in _candidates(folder, k):
            try:
                st = path.stat()
                stamp.append((path.name, st.st_size, st.st_mtime_ns))
            except OSError:
                stamp.append(None)
    key = ("mnist", str(folder.resolve()), tuple(stamp))
    if key not in _raw_cache:
        c = fetch_mnist(data_home, base_url, download, progress)
        arrs = []
        for img, lab in (("train_img", "train_label"), ("test_img", "test_label")):
            x = read_idx(c[img], MNIST_FILES[img][0])
            t = read_idx(c[lab], MNIST_FILES[lab][0])
            _check_pair(x, t, MNIST_FILES[img][0], MNIST_FILES[lab][0])
            arrs += [x.reshape(len(x), -1), t]
        arrs = tuple(arrs)
        for a in arrs:
            a.flags.writeable = False
        _raw_cache.clear()  # keep one copy of the full set at most
        _raw_cache[key] = arrs
    return _raw_cache[key]


def _check_pair(x, t, xname, tname):
    # magic 2051 = uint8 images (N, rows, cols); 2049 = uint8 labels (N,)
    if x.dtype != np.uint8 or x.ndim != 3 or x.shape[1:] != (28, 28):
        raise IDXFormatError("%s: expected uint8 images of shape (N, 28, 28), got %s %s"
                             % (xname, x.dtype, x.shape))
    if t.dtype != np.uint8 or t.ndim != 1:
        raise IDXFormatError("%s: expected uint8 labels of shape (N,), got %s %s"
                             % (tname, t.dtype, t.shape))
    if len(x) != len(t):
        raise IDXFormatError("%s has %d images but %s has %d labels"
                             % (xname, len(x), tname, len(t)))
    if t.size and t.max() > 9:
        raise IDXFormatError("%s: labels must be 0..9, found %d" % (tname, t.max()))


def _one_hot(t, n=10):
    # the book's _change_one_hot_label: float64 zeros with a 1 at the label
    T = np.zeros((t.size, n))
    T[np.arange(t.size), t] = 1
    return T


def _format(x, t, normalize, flatten, one_hot_label, side=28):
    if normalize:
        x = x.astype(np.float32)
        x /= 255.0  # pixels 0..255 -> [0, 1]
    if not flatten:
        x = x.reshape(-1, 1, side, side)
    if one_hot_label:
        t = _one_hot(t)
    return x, t


def load_mnist(normalize=True, flatten=True, one_hot_label=False, *, sample=False,
               data_home=None, base_url=None, download=True, progress=True):
    """Load MNIST, as the book's ``dataset/mnist.py`` does.

    Parameters
    ----------
    normalize : bool
        True: images as float32 in [0, 1]; False: the raw uint8 pixels (read-only arrays).
    flatten : bool
        True: images of shape (N, 784); False: (N, 1, 28, 28).
    one_hot_label : bool
        True: labels as float64 one-hot rows of shape (N, 10); False: uint8 labels (N,).
    sample : bool, keyword-only
        Use the real MNIST sample bundled with fastnn (5000 training images, 500 of each
        digit in mixed order, and the first 1000 test images): offline, nothing to download.
    data_home : path-like, keyword-only
        Folder whose ``mnist/`` subfolder caches the official files; default
        ``FASTNN_DATA`` or the user's cache folder (:func:`get_data_home`).
    base_url : str, keyword-only
        Mirror to download missing files from (default ``FASTNN_MNIST_URL`` or the built-in
        mirrors, tried in order).
    download : bool, keyword-only
        False: never use the network (missing files are an error).
    progress : bool, keyword-only
        Report downloads on stderr.

    Returns
    -------
    ((x_train, t_train), (x_test, t_test))
        60000 training and 10000 test samples (sample=True: 5000 and 1000).

    Raises
    ------
    MNISTNotAvailableError
        Files missing and not downloadable; the message lists the files and the folder.
    """
    xtr, ttr, xte, tte = _raw_arrays(sample, data_home, base_url, download, progress)
    return (_format(xtr, ttr, normalize, flatten, one_hot_label),
            _format(xte, tte, normalize, flatten, one_hot_label))
