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
