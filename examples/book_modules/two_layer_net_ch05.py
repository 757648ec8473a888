"""ch05/two_layer_net.py on fastnn: save as two_layer_net.py beside the ch05 scripts.
The ch05 net is the ReLU one with ``layers`` and ``lastLayer``, fastnn's ReluTwoLayerNet."""
from fastnn.nets import *  # noqa: F401,F403
from fastnn.nets import ReluTwoLayerNet as TwoLayerNet  # noqa: F401
