import os
import sys
import time

import pytest

# the NumPy reference lives in tests/reference.py
sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "tests"))


@pytest.fixture(autouse=True)
def _idle_between_benchmarks():
    """Each benchmark starts as a fresh process would: NumPy's OpenBLAS threads spin
    ~0.1 s after its last call and would take a core from whatever runs next, so let
    them go idle first; and fastnn's thread policy forgets a back-off the previous test's
    contention started (it would otherwise keep the next test on one thread)."""
    time.sleep(0.25)
    try:
        from fastnn._kernels import _openmp
        _openmp.reset_policy_state()
    except ImportError:
        pass
    yield
