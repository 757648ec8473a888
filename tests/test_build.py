"""How the extension was built, and the thread-count contract."""
import os
import subprocess
import sys

import pytest

import fastnn
from fastnn._threads import resolve_n_threads


def test_openmp_is_enabled():
    # A silently serial build (sklearn shipped one once) must fail CI. Set
    # FASTNN_ALLOW_SERIAL=1 when testing a deliberate FASTNN_DISABLE_OPENMP build.
    if os.environ.get("FASTNN_ALLOW_SERIAL"):
        pytest.skip("serial build allowed by FASTNN_ALLOW_SERIAL")
    assert fastnn.openmp_enabled(), "fastnn was built without OpenMP"


def test_version():
    assert isinstance(fastnn.__version__, str) and fastnn.__version__.count(".") >= 2


def test_set_and_get_num_threads():
    default = fastnn.get_num_threads()
    assert default >= 1
    try:
        fastnn.set_num_threads(1)
        assert fastnn.get_num_threads() == 1
        if fastnn.openmp_enabled():
            fastnn.set_num_threads(3)
            assert fastnn.get_num_threads() == 3
            fastnn.set_num_threads(-1)
            assert fastnn.get_num_threads() == default
        with pytest.raises(ValueError, match="0"):
            fastnn.set_num_threads(0)
        with pytest.raises(TypeError):
            fastnn.set_num_threads(1.5)
    finally:
        fastnn.set_num_threads(None)
    assert fastnn.get_num_threads() == default


def test_resolve_n_threads_contract():
    top = resolve_n_threads(None)
    assert resolve_n_threads(-1) == top
    assert resolve_n_threads(-top - 5) == 1
    with pytest.raises(ValueError):
        resolve_n_threads(0)


def _threads_in_subprocess(env_extra, code="import fastnn; print(fastnn.get_num_threads())"):
    env = dict(os.environ, **env_extra)
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                         check=True)
    return int(out.stdout.strip())


@pytest.mark.skipif(not fastnn.openmp_enabled(), reason="serial build")
def test_omp_num_threads_is_honoured():
    assert _threads_in_subprocess({"OMP_NUM_THREADS": "1"}) == 1


@pytest.mark.skipif(not fastnn.openmp_enabled(), reason="serial build")
def test_threadpoolctl_limits_are_honoured():
    threadpoolctl = pytest.importorskip("threadpoolctl")
    with threadpoolctl.threadpool_limits(limits=1, user_api="openmp"):
        assert fastnn.get_num_threads() == 1
    assert threadpoolctl  # the limit is lifted on exit
    assert fastnn.get_num_threads() == resolve_n_threads(None)


def test_check_command_runs():
    out = subprocess.run([sys.executable, "-m", "fastnn", "check"], capture_output=True,
                         text=True)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "OpenMP" in out.stdout and "all kernels agree" in out.stdout


def test_baseline_isa_kernels_pass_the_same_tests():
    """This machine's CPU picks the AVX2/AVX-512 kernels; FASTNN_BASELINE_ISA=1 makes the
    run-time dispatch pick the baseline (SSE2) ones, which a CPU without AVX2 would run.
    The kernel suites must pass on them too."""
    here = os.path.dirname(__file__)
    env = dict(os.environ, FASTNN_BASELINE_ISA="1")
    out = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider",
         os.path.join(here, "test_functions.py"), os.path.join(here, "test_backprop.py"),
         os.path.join(here, "test_nnfs.py"), "-k", "not several_python_threads"],
        env=env, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-2000:]
    check = subprocess.run([sys.executable, "-m", "fastnn", "check"], env=env,
                           capture_output=True, text=True, timeout=120)
    assert "baseline micro-kernel" in check.stdout and check.returncode == 0, check.stdout
