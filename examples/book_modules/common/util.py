"""The book's common/util.py on fastnn: the same names through `import *`."""
from fastnn.util import *  # noqa: F401,F403
