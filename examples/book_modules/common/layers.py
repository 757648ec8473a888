"""The book's common/layers.py on fastnn: the same names through `import *`."""
from fastnn.layers import *  # noqa: F401,F403
