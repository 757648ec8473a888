"""The book's common/multi_layer_net.py on fastnn (MultiLayerNet and the names the module imports)."""
from fastnn.nets import *  # noqa: F401,F403
