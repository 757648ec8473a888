"""ch07/simple_convnet.py on fastnn: save beside the ch07 scripts."""
from fastnn.convnets import *  # noqa: F401,F403
