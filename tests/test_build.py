"""How the extension was built, and the thread-count contract."""
import os
import subprocess
import sys

import pytest

import fastnn
from fastnn._kernels import _cpu
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
            fastnn.set_num_threads(3)  # capped at the CPUs this process may use
            assert fastnn.get_num_threads() == min(3, fastnn._threads._CPUS)
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


def _isa_in_subprocess(value, code="from fastnn._kernels import _cpu; print(_cpu.get_isa())"):
    env = dict(os.environ, FASTNN_ISA=value)
    return subprocess.run([sys.executable, "-W", "error::RuntimeWarning", "-c", code], env=env,
                          capture_output=True, text=True)


@pytest.mark.parametrize("level", _cpu.supported_isas())
def test_fastnn_isa_forces_each_supported_level(level):
    out = _isa_in_subprocess(level)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == level


def test_fastnn_isa_rejects_unknown_names():
    out = _isa_in_subprocess("sse9")
    assert out.returncode != 0
    assert "FASTNN_ISA must be one of baseline, avx2, avx512, got 'sse9'" in out.stderr


def test_fastnn_isa_above_the_cpu_warns_and_caps():
    # every (forced, CPU) pair, whatever this machine's CPU is
    for cpu in range(3):
        for forced in range(3):
            name = ("baseline", "avx2", "avx512")[forced]
            if forced <= cpu:
                assert _cpu._forced_level(name, cpu) == forced
            else:
                with pytest.warns(RuntimeWarning, match="this CPU runs up to"):
                    assert _cpu._forced_level(name, cpu) == cpu
        assert _cpu._forced_level("", cpu) == cpu
        assert _cpu._forced_level(None, cpu) == cpu


def test_set_isa_switches_every_module_and_refuses_levels_above_the_cpu():
    import numpy as np
    x = np.linspace(-30, 30, 10001)
    got = {}
    for level in _cpu.supported_isas():
        old = _cpu.set_isa(level)
        try:
            assert _cpu.get_isa() == level
            got[level] = fastnn.sigmoid(x)
        finally:
            _cpu.set_isa(old)
    for level, y in got.items():
        np.testing.assert_allclose(y, 1 / (1 + np.exp(-x)), rtol=1e-15, atol=0)
    names = ("baseline", "avx2", "avx512")
    above = names[names.index(_cpu.cpu_isa()) + 1:]
    for level in above:
        with pytest.raises(ValueError, match="would crash"):
            _cpu.set_isa(level)


def test_check_command_names_the_isa():
    env = dict(os.environ, FASTNN_ISA="baseline")
    check = subprocess.run([sys.executable, "-m", "fastnn", "check"], env=env,
                           capture_output=True, text=True, timeout=120)
    assert "baseline kernels" in check.stdout and check.returncode == 0, check.stdout
