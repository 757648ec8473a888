import os
import sys

# the NumPy reference lives in tests/reference.py
sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "tests"))
