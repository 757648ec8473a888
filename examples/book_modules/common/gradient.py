"""The book's common/gradient.py on fastnn: the same names through `import *`."""
from fastnn.gradient import *  # noqa: F401,F403
