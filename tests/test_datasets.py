"""fastnn.datasets: IDX parsing, the verified download cache (through a real HTTP server on
127.0.0.1 started here), the bundled sample, the CSV reader and the nnfs toy data sets.

Never touches the network beyond 127.0.0.1. The real MNIST files in ../shared/data/mnist are
served where present (t10k images and labels, train labels); the 47 MB training images are
replaced by a tiny IDX file written here, with its expected digest patched in.
"""
import gzip
import hashlib
import http.server
import os
import sys
import threading
import zlib
from pathlib import Path

import numpy as np
import pytest

from fastnn import datasets
from fastnn.datasets import mnist as M


def _find_shared():
    here = Path(__file__).resolve()
    for up in here.parents:
        cand = up / "shared" / "data" / "mnist"
        if cand.is_dir():
            return cand
    env = os.environ.get("FASTNN_SHARED_MNIST")
    return Path(env) if env else None


SHARED = _find_shared()


def shared_file(name):
    if SHARED is None or not (SHARED / name).exists():
        return None
    return SHARED / name


# --- helpers: IDX bytes, gzip, a local HTTP server -------------------------------------

def idx_bytes(arr, type_byte=0x08):
    arr = np.asarray(arr)
    head = bytes([0, 0, type_byte, arr.ndim]) + b"".join(
        int(s).to_bytes(4, "big") for s in arr.shape)
    return head + arr.astype(arr.dtype.newbyteorder(">")).tobytes()


def tiny_images(n=20, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (n, 28, 28), dtype=np.uint8)


class _Handler(http.server.SimpleHTTPRequestHandler):
    truncate = {}  # file name -> bytes actually sent (Content-Length says the full size)

    def log_message(self, *args):
        pass

    def do_GET(self):
        name = self.path.lstrip("/").split("/")[-1]
        if name in self.truncate:
            data = (Path(self.directory) / name).read_bytes()
            self.send_response(200)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data[: self.truncate[name]])
            self.wfile.flush()
            self.close_connection = True
            return
        super().do_GET()


class Server:
    def __init__(self, directory, truncate=None):
        handler = type("H", (_Handler,), {"truncate": dict(truncate or {})})
        self.httpd = http.server.ThreadingHTTPServer(
            ("127.0.0.1", 0), lambda *a, **k: handler(*a, directory=str(directory), **k))
        self.url = "http://127.0.0.1:%d/" % self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture(autouse=True)
def _no_proxy_no_env(monkeypatch):
    # the tests talk to 127.0.0.1 only: never through a proxy, never a real cache folder
    for var in ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "all_proxy",
                "ALL_PROXY", "FASTNN_DATA", "FASTNN_MNIST_URL"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")
    M._raw_cache.clear()
    yield
    M._raw_cache.clear()


@pytest.fixture(scope="module")
def mirror_files(tmp_path_factory):
    """A folder of the four MNIST .gz files (real where present), their expected digests
    and content. Built once per module (the synthetic training images are 47 MB raw)."""
    src = tmp_path_factory.mktemp("mirror")
    files = dict(M.MNIST_FILES)
    content = {}
    for key in ("train_label", "test_label", "test_img", "train_img"):
        fname = M.MNIST_FILES[key][0]
        real = shared_file(fname) if key != "train_img" else None
        if real is not None:
            (src / fname).write_bytes(real.read_bytes())
            content[key] = gzip.decompress(real.read_bytes())
        else:
            # synthetic: as many images as the (real or synthetic) labels file has labels
            n = {"train": 20, "test": 7}[key.split("_")[0]]
            lab = content.get(key.split("_")[0] + "_label")
            if lab is not None:
                n = len(lab) - 8
            if key.endswith("img"):
                imgs = np.zeros((n, 28, 28), np.uint8)
                imgs[:, 14, :] = np.arange(n)[:, None] % 251  # cheap to compress
                imgs[:min(n, 20)] = tiny_images(min(n, 20), seed=len(key))
                data = idx_bytes(imgs)
            else:
                data = idx_bytes(np.arange(n, dtype=np.uint8) % 10)
            (src / fname).write_bytes(gzip.compress(data, compresslevel=1))
            files[key] = (fname, hashlib.sha256(data).hexdigest(), len(data))
            content[key] = data
    return src, files, content


@pytest.fixture
def mirror(mirror_files, monkeypatch):
    src, files, content = mirror_files
    monkeypatch.setattr(M, "MNIST_FILES", files)
    server = Server(src)
    yield server, src, content
    server.close()


def _dead_url():
    # a port that nothing listens on: bind, read the port, close
    import socket
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return "http://127.0.0.1:%d/" % port


# --- read_idx --------------------------------------------------------------------------

def test_read_idx_images_and_labels():
    imgs = tiny_images(3)
    a = M.read_idx(idx_bytes(imgs))
    assert a.shape == (3, 28, 28) and a.dtype == np.uint8 and not a.flags.writeable
    np.testing.assert_array_equal(a, imgs)
    lab = M.read_idx(idx_bytes(np.array([7, 0, 9], np.uint8)))
    assert lab.shape == (3,) and list(lab) == [7, 0, 9]


@pytest.mark.parametrize("type_byte,dtype", [(0x0B, np.int16), (0x0C, np.int32),
                                             (0x0D, np.float32), (0x0E, np.float64)])
def test_read_idx_big_endian_types(type_byte, dtype):
    x = (np.arange(12).reshape(3, 4) - 5).astype(dtype)
    got = M.read_idx(idx_bytes(x, type_byte))
    assert got.dtype == np.dtype(dtype) and got.dtype.isnative
    np.testing.assert_array_equal(got, x)


def test_read_idx_path_and_gz(tmp_path):
    p = tmp_path / "x-idx1-ubyte.gz"
    p.write_bytes(gzip.compress(idx_bytes(np.arange(5, dtype=np.uint8))))
    assert list(M.read_idx(p)) == [0, 1, 2, 3, 4]
    p2 = tmp_path / "x-idx1-ubyte"
    p2.write_bytes(idx_bytes(np.arange(5, dtype=np.uint8)))
    assert list(M.read_idx(str(p2))) == [0, 1, 2, 3, 4]


@pytest.mark.parametrize("data,match", [
    (b"", "too short"),
    (b"\x00\x00\x08", "too short"),
    (b"\x1f\x8b\x08\x00" + bytes(20), "magic number 0x1f8b0800"),
    (b"\x00\x00\x07\x01" + bytes(8), "not an IDX file"),
    (b"\x00\x00\x08\x00", "not an IDX file"),
    (b"\x00\x00\x08\x03\x00\x00\x00\x02", "truncated header"),
    (idx_bytes(np.zeros((2, 28, 28), np.uint8))[:-1], "truncated"),
    (idx_bytes(np.zeros((2, 28, 28), np.uint8)) + b"\x00", "trailing data"),
])
def test_read_idx_rejects_malformed(data, match):
    with pytest.raises(M.IDXFormatError, match=match):
        M.read_idx(data)


def test_read_idx_rejects_truncated_gzip(tmp_path):
    p = tmp_path / "bad.gz"
    p.write_bytes(gzip.compress(idx_bytes(tiny_images(2)))[:-30])
    with pytest.raises(M.IDXFormatError, match="not a complete gzip file"):
        M.read_idx(p)


@pytest.mark.skipif(shared_file("t10k-labels-idx1-ubyte.gz") is None, reason="no shared MNIST")
def test_read_idx_real_labels():
    lab = M.read_idx(shared_file("t10k-labels-idx1-ubyte.gz"))
    assert lab.shape == (10000,) and list(lab[:10]) == [7, 2, 1, 0, 4, 1, 4, 9, 5, 9]


# --- load_mnist through the local server ----------------------------------------------

def test_load_mnist_downloads_verifies_and_caches(mirror, tmp_path, capsys):
    server, src, content = mirror
    home = tmp_path / "home"
    (x, t), (xt, tt) = datasets.load_mnist(data_home=home, base_url=server.url)
    n_train = len(content["train_label"]) - 8
    n_test = len(content["test_label"]) - 8
    assert x.shape == (n_train, 784) and x.dtype == np.float32
    assert xt.shape == (n_test, 784) and t.dtype == np.uint8 and tt.shape == (n_test,)
    assert 0.0 <= x.min() and x.max() <= 1.0
    raw_test = np.frombuffer(content["test_img"], np.uint8, offset=16).reshape(n_test, 784)
    np.testing.assert_array_equal(xt, raw_test.astype(np.float32) / 255.0)
    np.testing.assert_array_equal(tt, np.frombuffer(content["test_label"], np.uint8, offset=8))
    # every file is in the cache, byte-identical to the served one, and no temp file is left
    cached = sorted(p.name for p in (home / "mnist").iterdir())
    assert cached == sorted(f for f, _, _ in M.MNIST_FILES.values())
    for f, _, _ in M.MNIST_FILES.values():
        assert (home / "mnist" / f).read_bytes() == (src / f).read_bytes()
    assert "downloading" in capsys.readouterr().err
    # offline now: the cache alone is enough
    server.close()
    M._raw_cache.clear()
    (x2, _), _ = datasets.load_mnist(data_home=home, base_url=_dead_url(), download=False)
    np.testing.assert_array_equal(x, x2)


def test_load_mnist_formats(mirror, tmp_path):
    server, _, content = mirror
    kw = dict(data_home=tmp_path / "h", base_url=server.url, progress=False)
    (x, t), (xt, tt) = datasets.load_mnist(normalize=False, **kw)
    assert x.dtype == np.uint8 and not x.flags.writeable and not t.flags.writeable
    with pytest.raises(ValueError):
        x[0, 0] = 1
    (x4, _), _ = datasets.load_mnist(flatten=False, **kw)
    assert x4.shape == (len(x), 1, 28, 28) and x4.dtype == np.float32
    np.testing.assert_array_equal(x4.reshape(len(x), 784), x.astype(np.float32) / 255)
    (_, t1), (_, tt1) = datasets.load_mnist(one_hot_label=True, **kw)
    assert t1.shape == (len(t), 10) and t1.dtype == np.float64
    np.testing.assert_array_equal(t1.argmax(1), t)
    assert (t1.sum(1) == 1).all()
    # normalized arrays are fresh, writable copies; the raw cache stays intact
    (xn, _), _ = datasets.load_mnist(**kw)
    xn[:] = 0
    (xn2, _), _ = datasets.load_mnist(**kw)
    assert xn2.max() > 0


def test_env_var_data_home_and_url(mirror, tmp_path, monkeypatch):
    server, _, _ = mirror
    monkeypatch.setenv("FASTNN_DATA", str(tmp_path / "envhome"))
    monkeypatch.setenv("FASTNN_MNIST_URL", server.url.rstrip("/"))
    assert M.get_data_home() == tmp_path / "envhome"
    datasets.load_mnist(progress=False)
    assert (tmp_path / "envhome" / "mnist" / "t10k-labels-idx1-ubyte.gz").exists()


def test_default_cache_folder(monkeypatch, tmp_path):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    if sys.platform.startswith("linux"):
        assert M.get_data_home() == tmp_path / "fastnn"
    assert M.get_data_home(tmp_path / "x") == tmp_path / "x"


def test_second_mirror_is_tried(mirror, tmp_path):
    server, _, _ = mirror
    home = tmp_path / "h"
    datasets.load_mnist(data_home=home, base_url=[_dead_url(), server.url], progress=False)
    assert len(list((home / "mnist").iterdir())) == 4


def test_offline_message_names_files_and_folder(tmp_path):
    home = tmp_path / "h"
    with pytest.raises(M.MNISTNotAvailableError) as e:
        datasets.load_mnist(data_home=home, base_url=_dead_url(), progress=False)
    msg = str(e.value)
    for f, _, _ in M.MNIST_FILES.values():
        assert f in msg
    assert str(home / "mnist") in msg and "sample=True" in msg and "FASTNN_DATA" in msg
    assert not any(p.name.endswith(".part") for p in (home / "mnist").iterdir())
    with pytest.raises(M.MNISTNotAvailableError, match="4 file"):
        datasets.load_mnist(data_home=tmp_path / "h2", download=False)
    assert not (tmp_path / "h2").exists()  # download=False creates nothing


def _serve_bad(tmp_path, mirror, key, make_bad, truncate=None):
    _, src, _ = mirror
    bad = tmp_path / "bad"
    bad.mkdir()
    for f in os.listdir(src):
        (bad / f).write_bytes((src / f).read_bytes())
    fname = M.MNIST_FILES[key][0]
    if make_bad is not None:
        (bad / fname).write_bytes(make_bad((src / fname).read_bytes()))
    return Server(bad, truncate), fname


@pytest.mark.parametrize("kind", ["truncated_gzip", "corrupted", "short_transfer", "not_gzip"])
def test_bad_download_never_lands_in_cache(mirror, tmp_path, kind):
    key = "test_label"
    make_bad = {
        "truncated_gzip": lambda b: b[: len(b) // 2],
        # a valid gzip of different content: only the digest can tell
        "corrupted": lambda b: gzip.compress(
            gzip.decompress(b)[:-1] + bytes([(gzip.decompress(b)[-1] + 1) % 256])),
        "short_transfer": None,
        "not_gzip": lambda b: gzip.decompress(b),
    }[kind]
    truncate = None
    if kind == "short_transfer":
        fname = M.MNIST_FILES[key][0]
        truncate = {fname: len((mirror[1] / fname).read_bytes()) // 2}
    server, fname = _serve_bad(tmp_path, mirror, key, make_bad, truncate)
    home = tmp_path / "h"
    try:
        with pytest.raises(M.MNISTNotAvailableError) as e:
            datasets.load_mnist(data_home=home, base_url=server.url, progress=False)
    finally:
        server.close()
    assert fname in str(e.value)
    left = {p.name for p in (home / "mnist").iterdir()}
    assert fname not in left and not any(n.endswith(".part") for n in left)
    assert len(left) == 3  # the good files are kept


def test_bad_cached_file_is_set_aside_and_downloaded_again(mirror, tmp_path):
    server, src, _ = mirror
    home = tmp_path / "h"
    datasets.load_mnist(data_home=home, base_url=server.url, progress=False)
    fname = M.MNIST_FILES["test_img"][0]
    good = (home / "mnist" / fname).read_bytes()
    (home / "mnist" / fname).write_bytes(good[:1000])  # damaged in the cache
    M._raw_cache.clear()
    with pytest.raises(M.MNISTNotAvailableError, match="not a complete gzip"):
        datasets.load_mnist(data_home=home, download=False)
    M._raw_cache.clear()
    datasets.load_mnist(data_home=home, base_url=server.url, progress=False)
    assert (home / "mnist" / fname).read_bytes() == good
    assert (home / "mnist" / (fname + ".invalid")).exists()


@pytest.mark.skipif(shared_file("train-images-idx3-ubyte.gz") is None, reason="no shared MNIST")
def test_shared_folder_verifies_with_the_real_digests():
    # the re-compressed train-images .gz: its .gz bytes differ from the official file,
    # its content does not. FASTNN_DATA=../shared/data works as a read-only cache.
    (x, t), (xt, tt) = datasets.load_mnist(data_home=SHARED.parent, download=False,
                                           normalize=False)
    assert x.shape == (60000, 784) and xt.shape == (10000, 784)
    assert np.bincount(t).tolist()[:2] == [5923, 6742]


# --- bundled sample ----------------------------------------------------------------------

def test_sample_shapes_dtypes_and_order():
    (x, t), (xt, tt) = datasets.load_mnist(sample=True, normalize=False)
    assert x.shape == (5000, 784) and xt.shape == (1000, 784)
    assert x.dtype == t.dtype == np.uint8 and not x.flags.writeable
    assert np.bincount(t, minlength=10).tolist() == [500] * 10
    assert len(set(t[:20].tolist())) >= 5  # mixed order, not sorted by label
    (xf, tf), _ = datasets.load_mnist(True, False, True, sample=True)
    assert xf.shape == (5000, 1, 28, 28) and xf.dtype == np.float32 and tf.shape == (5000, 10)
    assert datasets.SAMPLE_PATH.stat().st_size < 3_000_000
    assert (datasets.SAMPLE_PATH.parent / "README.md").exists()


@pytest.mark.skipif(shared_file("t10k-images-idx3-ubyte.gz") is None, reason="no shared MNIST")
def test_sample_is_real_mnist():
    _, (xt, tt) = datasets.load_mnist(sample=True, normalize=False)
    real = M.read_idx(shared_file("t10k-images-idx3-ubyte.gz")).reshape(10000, 784)
    np.testing.assert_array_equal(xt, real[:1000])
    np.testing.assert_array_equal(tt, M.read_idx(shared_file("t10k-labels-idx1-ubyte.gz"))[:1000])
    with np.load(datasets.SAMPLE_PATH) as z:
        idx = z["train_index"]
    labels = M.read_idx(shared_file("train-labels-idx1-ubyte.gz"))
    (x, t), _ = datasets.load_mnist(sample=True, normalize=False)
    np.testing.assert_array_equal(labels[idx], t)
    if shared_file("train-images-idx3-ubyte.gz") is not None:
        full = M.read_idx(shared_file("train-images-idx3-ubyte.gz")).reshape(60000, 784)
        np.testing.assert_array_equal(full[idx], x)


# --- CSV ---------------------------------------------------------------------------------

def test_csv_reader(tmp_path):
    imgs = tiny_images(4).reshape(4, 784)
    labels = np.array([3, 1, 4, 1])
    p = tmp_path / "s.csv"
    np.savetxt(p, np.c_[labels, imgs], fmt="%d", delimiter=",")
    x, t = datasets.load_mnist_csv(p)
    assert x.shape == (4, 784) and x.dtype == np.float32 and t.dtype == np.uint8
    np.testing.assert_array_equal(x, imgs / np.float32(255))
    assert t.tolist() == [3, 1, 4, 1]
    x, t = datasets.load_mnist_csv(p, normalize=False, flatten=False, one_hot_label=True)
    assert x.shape == (4, 1, 28, 28) and x.dtype == np.uint8 and t.shape == (4, 10)
    pg = tmp_path / "s.csv.gz"
    with gzip.open(pg, "wt") as f:
        np.savetxt(f, np.c_[imgs, labels], fmt="%d", delimiter=",")
    x2, t2 = datasets.load_mnist_csv(pg, normalize=False, label_column=-1)
    np.testing.assert_array_equal(x2, imgs)
    assert t2.tolist() == [3, 1, 4, 1]
    one = tmp_path / "one.csv"
    np.savetxt(one, np.c_[labels, imgs][:1], fmt="%d", delimiter=",")
    assert datasets.load_mnist_csv(one)[0].shape == (1, 784)


@pytest.mark.parametrize("rows,match", [
    ([[1] * 784], "785 columns"),
    ([[10] + [0] * 784], "labels must be 0..9"),
    ([[1] + [256] + [0] * 783], "pixel values"),
])
def test_csv_reader_errors(tmp_path, rows, match):
    p = tmp_path / "bad.csv"
    np.savetxt(p, np.array(rows), fmt="%d", delimiter=",")
    with pytest.raises(ValueError, match=match):
        datasets.load_mnist_csv(p)
    with pytest.raises(ValueError, match="label_column"):
        datasets.load_mnist_csv(p, label_column=3)


@pytest.mark.skipif(shared_file("mnist_train_100.csv") is None, reason="no shared MNIST")
def test_csv_reader_seed_file():
    x, t = datasets.load_mnist_csv(shared_file("mnist_train_100.csv"), normalize=False)
    assert x.shape == (100, 784)
    assert np.bincount(t).tolist() == [13, 14, 6, 11, 11, 5, 11, 10, 8, 11]
    if shared_file("train-labels-idx1-ubyte.gz") is not None:
        real = M.read_idx(shared_file("train-labels-idx1-ubyte.gz"))
        np.testing.assert_array_equal(t, real[:100])


# --- nnfs data sets, against nnfs's formulas ----------------------------------------------

def nnfs_spiral(samples, classes):
    X = np.zeros((samples * classes, 2))
    y = np.zeros(samples * classes, dtype="uint8")
    for k in range(classes):
        ix = range(samples * k, samples * (k + 1))
        r = np.linspace(0.0, 1, samples)
        t = np.linspace(k * 4, (k + 1) * 4, samples) + np.random.randn(samples) * 0.2
        X[ix] = np.c_[r * np.sin(t * 2.5), r * np.cos(t * 2.5)]
        y[ix] = k
    return X, y


def nnfs_vertical(samples, classes):
    X = np.zeros((samples * classes, 2))
    y = np.zeros(samples * classes, dtype="uint8")
    for k in range(classes):
        ix = range(samples * k, samples * (k + 1))
        X[ix] = np.c_[np.random.randn(samples) * .1 + k / 3, np.random.randn(samples) * .1 + 0.5]
        y[ix] = k
    return X, y


@pytest.mark.parametrize("ours,theirs", [(datasets.spiral_data, nnfs_spiral),
                                         (datasets.vertical_data, nnfs_vertical)])
@pytest.mark.parametrize("samples,classes", [(100, 3), (1, 1), (7, 5), (0, 2)])
def test_nnfs_data_matches_formulas(ours, theirs, samples, classes):
    np.random.seed(0)
    want = theirs(samples, classes)
    after_theirs = np.random.rand()
    np.random.seed(0)
    got = ours(samples, classes)
    assert np.random.rand() == after_theirs  # same draws from the global state
    for g, w in zip(got, want):
        assert g.dtype == w.dtype and g.shape == w.shape
        np.testing.assert_array_equal(g, w)
    assert got[0].shape == (samples * classes, 2) and got[1].dtype == np.uint8
    # seed=: the data of np.random.seed(seed), without touching the global state
    np.random.seed(123)
    state = np.random.get_state()[1].copy()
    seeded = ours(samples, classes, seed=0)
    np.testing.assert_array_equal(np.random.get_state()[1], state)
    np.testing.assert_array_equal(seeded[0], want[0])


def test_nnfs_data_errors():
    with pytest.raises(ValueError, match="samples"):
        datasets.spiral_data(-1, 3)
    with pytest.raises(ValueError, match="classes"):
        datasets.vertical_data(10, 2.5)


@pytest.mark.parametrize("samples", [1000, 1, 7])
def test_sine_data(samples):
    X, y = datasets.sine_data(samples)
    assert X.shape == y.shape == (samples, 1) and X.dtype == y.dtype == np.float64
    np.testing.assert_array_equal(X[:, 0], np.arange(samples) / samples)
    np.testing.assert_array_equal(y, np.sin(2 * np.pi * X))
    assert datasets.sine_data()[0].shape == (1000, 1)


def test_images_and_labels_must_pair(tmp_path, monkeypatch):
    src = tmp_path / "m"
    src.mkdir()
    files = {}
    for key, n in (("train_img", 5), ("train_label", 4), ("test_img", 3), ("test_label", 3)):
        fname = M.MNIST_FILES[key][0]
        data = idx_bytes(tiny_images(n)) if key.endswith("img") else idx_bytes(np.zeros(n, np.uint8))
        (src / fname).write_bytes(gzip.compress(data))
        files[key] = (fname, hashlib.sha256(data).hexdigest(), len(data))
    monkeypatch.setattr(M, "MNIST_FILES", files)
    (tmp_path / "home").mkdir()
    (tmp_path / "home" / "mnist").symlink_to(src)
    with pytest.raises(M.IDXFormatError, match="has 5 images but .* has 4 labels"):
        datasets.load_mnist(data_home=tmp_path / "home", download=False)


# --- issue #11: the loaders' bad inputs --------------------------------------------------

def _csv_text(labels, imgs, header=None, label_last=False):
    rows = np.c_[imgs, labels] if label_last else np.c_[labels, imgs]
    lines = [",".join(map(str, r)) for r in rows]
    if header is not None:
        lines.insert(0, header)
    return "\n".join(lines) + "\n"


def test_csv_bom_header_and_crlf(tmp_path):
    imgs = tiny_images(3).reshape(3, 784)
    labels = np.array([5, 0, 4])
    kaggle = "label," + ",".join("pixel%d" % i for i in range(784))
    p = tmp_path / "train.csv"
    p.write_bytes(b"\xef\xbb\xbf" + _csv_text(labels, imgs, kaggle).replace("\n", "\r\n").encode())
    x, t = datasets.load_mnist_csv(p, normalize=False)
    np.testing.assert_array_equal(x, imgs)
    assert t.tolist() == [5, 0, 4]
    # a BOM without a header; a header that names the label as the last column
    p.write_bytes(b"\xef\xbb\xbf" + _csv_text(labels, imgs).encode())
    assert datasets.load_mnist_csv(p)[1].tolist() == [5, 0, 4]
    last = ",".join("px%d" % i for i in range(784)) + ",label"
    p.write_text(_csv_text(labels, imgs, last, label_last=True))
    x, t = datasets.load_mnist_csv(p, normalize=False)
    np.testing.assert_array_equal(x, imgs)
    assert t.tolist() == [5, 0, 4]


def test_csv_binary_input_is_a_clear_error(tmp_path):
    cases = {
        "random.csv": np.random.default_rng(0).integers(0, 256, 5000, np.uint8).tobytes(),
        "idx.csv": idx_bytes(tiny_images(2)),
        "latin1.csv": "5,".encode() + "é".encode("latin-1") + b",1\n",
    }
    for name, data in cases.items():
        p = tmp_path / name
        p.write_bytes(data)
        with pytest.raises(ValueError, match=r"binary data|not a UTF-8 text CSV|gzip") as e:
            datasets.load_mnist_csv(p)
        assert name in str(e.value)
    # gzip is recognised by its content, whatever the name
    p = tmp_path / "packed.csv"
    p.write_bytes(gzip.compress(_csv_text([1, 2], tiny_images(2).reshape(2, 784)).encode()))
    assert datasets.load_mnist_csv(p)[1].tolist() == [1, 2]
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    with pytest.raises(ValueError, match="no samples"):
        datasets.load_mnist_csv(empty)


def test_csv_bytes_path_and_bad_path_type(tmp_path):
    p = tmp_path / "s.csv"
    p.write_text(_csv_text([7], tiny_images(1).reshape(1, 784)))
    assert datasets.load_mnist_csv(os.fsencode(p))[1].tolist() == [7]
    with pytest.raises(TypeError, match="path must be a file name"):
        datasets.load_mnist_csv(3.5)


@pytest.mark.parametrize("naming", ["plain", "dotted", "mixed"])
def test_load_mnist_reads_unzipped_files_in_the_cache(mirror_files, monkeypatch, tmp_path,
                                                     naming):
    src, files, content = mirror_files
    monkeypatch.setattr(M, "MNIST_FILES", files)
    folder = tmp_path / "home" / "mnist"
    folder.mkdir(parents=True)
    for i, (key, (fname, _, _)) in enumerate(files.items()):
        plain = fname[:-3]
        if naming == "dotted" or (naming == "mixed" and i % 2):
            plain = plain.replace("-idx", ".idx")
        if naming == "mixed" and i == 0:
            (folder / fname).write_bytes((src / fname).read_bytes())  # one still gzipped
        else:
            (folder / plain).write_bytes(content[key])
    (x, t), (xt, tt) = datasets.load_mnist(data_home=tmp_path / "home", download=False,
                                           normalize=False)
    assert len(x) == len(content["train_label"]) - 8
    np.testing.assert_array_equal(tt, np.frombuffer(content["test_label"], np.uint8, offset=8))
    # a damaged unzipped file is an error naming it (and, offline, nothing is renamed)
    plain_labels = [p for p in folder.iterdir() if p.name.startswith("t10k-labels")][0]
    if plain_labels.suffix != ".gz":
        plain_labels.write_bytes(content["test_label"][:-1])
        M._raw_cache.clear()
        with pytest.raises(M.MNISTNotAvailableError, match=plain_labels.name):
            datasets.load_mnist(data_home=tmp_path / "home", download=False)


def _gzip_bomb(path, header, megabytes):
    """A gzip file whose content is ``header`` and then ``megabytes`` MB of zeros, written
    without ever holding the content in memory."""
    comp = zlib.compressobj(9, zlib.DEFLATED, 31)
    zeros = bytes(1 << 20)
    with open(path, "wb") as f:
        f.write(comp.compress(header))
        for _ in range(megabytes):
            f.write(comp.compress(zeros))
        f.write(comp.flush())


def test_gzip_bomb_is_rejected_without_reading_it_in_full(mirror_files, monkeypatch,
                                                         tmp_path):
    import tracemalloc
    src, files, content = mirror_files
    monkeypatch.setattr(M, "MNIST_FILES", files)
    folder = tmp_path / "home" / "mnist"
    folder.mkdir(parents=True)
    for key, (fname, _, _) in files.items():
        (folder / fname).write_bytes((src / fname).read_bytes())
    bomb = folder / files["train_label"][0]
    _gzip_bomb(bomb, content["train_label"][:8], 300)  # 300 MB of zeros in ~300 KB
    assert bomb.stat().st_size < 2_000_000
    tracemalloc.start()
    try:
        with pytest.raises(M.MNISTNotAvailableError, match="decompresses to more than"):
            datasets.load_mnist(data_home=tmp_path / "home", download=False)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 120e6  # the real files' content (~55 MB here at most), never the 300 MB
    # read_idx on its own: the IDX header's declared size is the limit
    small = tmp_path / "labels.gz"
    _gzip_bomb(small, idx_bytes(np.zeros(10, np.uint8)), 50)
    tracemalloc.start()
    try:
        with pytest.raises(M.IDXFormatError, match="more than 18 bytes"):
            M.read_idx(small)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 5e6
    # a plain IDX file longer than its header says is not read in full either
    plain = tmp_path / "labels-idx1-ubyte"
    plain.write_bytes(idx_bytes(np.zeros(10, np.uint8)) + bytes(1000))
    with pytest.raises(M.IDXFormatError, match="trailing data"):
        M.read_idx(plain)


def test_multi_member_gzip_reads_like_gzip_decompress(tmp_path):
    data = idx_bytes(np.arange(10, dtype=np.uint8))
    p = tmp_path / "two.gz"
    p.write_bytes(gzip.compress(data[:7]) + gzip.compress(data[7:]))
    assert list(M.read_idx(p)) == list(range(10))
