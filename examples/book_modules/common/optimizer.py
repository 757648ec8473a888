"""The book's common/optimizer.py on fastnn: the same names through `import *`."""
from fastnn.optimizer import *  # noqa: F401,F403
