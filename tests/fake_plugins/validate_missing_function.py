"""A Keras 2 external backend that forgot `function`: Keras refuses it with
`ValueError: Invalid backend. Missing required entry : function`."""
from keras.backend.tensorflow_backend import *  # noqa: F401,F403

del function  # noqa: F821
