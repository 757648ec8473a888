"""ch08/deep_convnet.py on fastnn: save beside the ch08 scripts."""
from fastnn.convnets import *  # noqa: F401,F403
