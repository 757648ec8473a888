"""The book's common/trainer.py on fastnn: the same names through `import *`."""
from fastnn.trainer import *  # noqa: F401,F403
