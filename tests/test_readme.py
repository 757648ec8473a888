"""Every ``fastnn`` command the README and docs/ show is run here and reaches a sensible
result.

The commands are read from the README and docs/*.md themselves; a command without an
entry in EXAMPLES fails the test, so the documentation and this file stay in step. Where the README's own command
would be slow here, the entry runs it with a reduced budget and says how (one thread for
many tiny steps, a short reference timing, --quick); the main job's full run is
test_cli.py::test_main_job_reaches_90_percent.
"""
import re
import shutil
from pathlib import Path

import pytest

from test_cli import SHARED_MNIST, accuracy, line, run

README = Path(__file__).resolve().parents[1] / "README.md"
DOCS = README.parent / "docs"


def doc_pages():
    """The README and every page of docs/ (the README's links point there)."""
    return [README] + sorted(DOCS.glob("*.md"))


def readme_commands():
    """Each ``fastnn ...`` command in the bash blocks of the README and docs/, comments
    dropped."""
    cmds = []
    text = "\n".join(page.read_text() for page in doc_pages())
    for block in re.findall(r"```bash\n(.*?)```", text, re.S):
        for ln in block.splitlines():
            ln = re.sub(r"\s+#.*$", "", ln).strip()
            for part in ln.split("&&"):
                part = part.strip()
                if part.startswith("fastnn "):
                    cmds.append(part)
    return cmds


def _main_job(out, tmp):
    assert "TwoLayerNet 784-50-10 sigmoid, numerical gradients, batches of 100, SGD lr 0.1" in out
    assert "until 20% accuracy on the held-out images" in out
    assert "reached the 20% target" in out and "the half-hour run (" in out and "the book's NumPy code:" in out


def _half_hour(out, tmp):
    assert "784-100-10 sigmoid, numerical gradients, batches of 1" in out
    assert "trained 100 steps" in out and "x faster" in out


def _adam_plot(out, tmp):
    assert accuracy(out) >= 88
    assert (tmp / "curves.png").stat().st_size > 10000


def _mnist(out, tmp):
    assert "MNIST: 60000 training images" in out and accuracy(out) >= 94


def _spiral(out, tmp):
    assert "MultiLayerNet 2-64-64-3 relu" in out and accuracy(out) >= 90


def _save(out, tmp):
    assert (tmp / "net.npz").exists() and accuracy(out) >= 85
    (tmp / "saved_accuracy").write_text(line(out, "accuracy:"))


def _load(out, tmp):
    assert line(out, "accuracy:") == (tmp / "saved_accuracy").read_text()


def _bench(out, tmp):
    from fastnn.cli._cases import cases
    assert "| benchmark | shape | fastnn | NumPy reference | speed-up |" in out
    assert "BLAS:" in out and "thread" in out
    for case in cases():
        assert "| %s | %s |" % (case.name, case.shape) in out


def _cnn(out, tmp):
    assert "MnistCNN (2x conv 20 5x5 pad 2 + pool 2, affine 980-10, float32)" in out
    assert "SGD lr 0.01" in out and accuracy(out) >= 60


def _check(out, tmp):
    from fastnn._kernels import _cpu
    assert re.search(r"all kernels agree with NumPy \(\d+ comparisons\)", out)
    for isa in _cpu.supported_isas():
        row = line(out, "  %-9s" % isa)
        for fam in ("functions", "losses", "layers", "nets", "optimizers", "nnfs", "conv"):
            assert re.search(r"%s \d+ ok" % fam, row), row
    assert "the same bits" in out


ONE = ["--threads", "1"]
# README command -> (extra arguments that reduce its budget here, check of its output)
EXAMPLES = {
    # the main job on a lower target (it reaches 90% in test_cli.py, by backprop)
    "fastnn train": (["--target", "20", "--reference-budget", "1"] + ONE, _main_job),
    "fastnn train --half-hour": (["--reference-budget", "1"], _half_hour),
    "fastnn train --gradient backprop --optimizer adam --lr 0.01 --epochs 5 --plot curves.png":
        (["--no-reference"] + ONE, _adam_plot),
    "fastnn train --data mnist --hidden 100,50 --activation relu --gradient backprop --epochs 1":
        (["--no-reference"] + ONE, _mnist),
    "fastnn train --data spiral --hidden 64,64 --activation relu --gradient backprop "
    "--optimizer adam --lr 0.01": (["--no-reference"] + ONE, _spiral),
    "fastnn train --gradient backprop --optimizer adam --lr 0.01 --steps 300 --save net.npz":
        (["--no-reference"] + ONE, _save),
    "fastnn train --load net.npz --steps 0": (["--no-reference"], _load),
    "fastnn bench --markdown": (["--quick"] + ONE, _bench),
    # the course's CNN: a short run here (its full runs: docs/conv.md, "Measured runs")
    "fastnn train --model cnn": (["--steps", "60", "--no-reference"] + ONE, _cnn),
    "fastnn check": ([], _check),
}


def test_every_readme_command_has_an_example():
    assert set(readme_commands()) == set(EXAMPLES)


def test_readme_shows_the_main_commands():
    """The README itself keeps the main job and its nearest options (docs/cli.md has all)."""
    text = README.read_text()
    for cmd in ("fastnn train", "fastnn train --half-hour", "fastnn train --model cnn",
                "fastnn bench --markdown", "fastnn check"):
        assert "\n" + cmd + " " in text or "\n" + cmd + "\n" in text, cmd


def test_doc_links_resolve():
    """Every relative link in the README and docs/ names a file that exists, and every
    #anchor a heading of that file (GitHub's slugs)."""
    def slugs(page):
        out = set()
        for h in re.findall(r"^#+ (.*)$", page.read_text(), re.M):
            h = re.sub(r"[^\w\- ]", "", h.strip().lower())
            out.add(h.replace(" ", "-"))
        return out

    for page in doc_pages():
        for target in re.findall(r"\]\(([^)\s]+)\)", page.read_text()):
            if re.match(r"[a-z]+:", target):
                continue  # an external address
            path, _, anchor = target.partition("#")
            dest = (page.parent / path).resolve() if path else page
            assert dest.exists(), "%s links to missing %s" % (page.name, target)
            if anchor and dest.suffix == ".md":
                assert anchor in slugs(dest), "%s links to missing %s" % (page.name, target)


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    """One folder for all the examples: --load reads what --save wrote."""
    return tmp_path_factory.mktemp("readme")


@pytest.mark.parametrize("command", list(EXAMPLES))
def test_readme_example(command, workdir):
    extra, check = EXAMPLES[command]
    env = {}
    if "--data mnist" in command:
        if not (SHARED_MNIST / "train-images-idx3-ubyte.gz").exists():
            pytest.skip("no cached MNIST (../shared/data/mnist)")
        env["FASTNN_DATA"] = str(SHARED_MNIST.parent)
    if "--load net.npz" in command and not (workdir / "net.npz").exists():
        pytest.skip("runs after the --save example")
    if "--plot" in command:
        pytest.importorskip("matplotlib")
    args = command.split()[1:] + extra
    rc, out, err = run(*args, cwd=workdir, **env)
    assert rc == 0, out + err
    check(out, workdir)


def test_readme_top_commands_make_a_venv():
    """The README's first two commands create and use a virtual environment, and the
    second is the test command that .ci/run runs."""
    text = README.read_text()
    top = re.search(r"```bash\n(.*?)```", text, re.S).group(1)
    cmds = [ln for ln in top.splitlines() if ln and not ln.startswith("#")]
    assert cmds == [
        "python3 -m venv .venv && . .venv/bin/activate && pip install . && fastnn train",
        'python3 -m venv .venv && . .venv/bin/activate && pip install ".[test]" && '
        "python -m pytest tests",
    ]
    assert "README.md" in (README.parent / ".ci" / "run").read_text()


@pytest.mark.skipif(shutil.which("bash") is None, reason="no bash")
def test_ci_runs_the_readme_test_command():
    """.ci/run takes its test command from the README: they cannot drift apart."""
    import subprocess
    out = subprocess.run(["bash", str(README.parent / ".ci" / "run"), "--print-command"],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == ('python3 -m venv .venv && . .venv/bin/activate && '
                                  'pip install ".[test]" && python -m pytest tests')
