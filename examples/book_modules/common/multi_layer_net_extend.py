"""The book's common/multi_layer_net_extend.py on fastnn."""
from fastnn.nets import *  # noqa: F401,F403
