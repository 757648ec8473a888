"""The book's common/functions.py on fastnn: the same names through `import *`."""
from fastnn.functions import *  # noqa: F401,F403
