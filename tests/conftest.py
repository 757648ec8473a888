import os
import sys

import numpy as np
import pytest

# tests/reference.py (the NumPy oracle) is imported as `reference`
sys.path.insert(0, os.path.dirname(__file__))

SHARED_DATA = os.path.join(os.path.dirname(__file__), "..", "..", "shared", "data")


@pytest.fixture
def rng():
    return np.random.default_rng(12345)


# Every ISA level this CPU runs (baseline, avx2, avx512): kernel test modules run each of
# their tests on each level with `pytestmark = pytest.mark.usefixtures("isa")`.
from fastnn._kernels import _cpu  # noqa: E402


@pytest.fixture(params=_cpu.supported_isas())
def isa(request):
    old = _cpu.set_isa(request.param)
    yield request.param
    _cpu.set_isa(old)


@pytest.fixture
def exact_threads():
    """Every parallel region runs on exactly the n_threads asked for (no grain, no
    back-off; up to 8 threads even on fewer CPUs): for tests that compare the bits of
    1, 2 and 3 threads."""
    from fastnn._threads import exact_threads as exact
    with exact():
        yield
