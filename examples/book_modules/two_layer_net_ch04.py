"""ch04/two_layer_net.py on fastnn: save as two_layer_net.py beside the ch04 scripts."""
from fastnn.nets import *  # noqa: F401,F403 - TwoLayerNet (sigmoid), np, the functions
