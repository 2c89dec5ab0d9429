"""A fake Keras 3 on NumPy (tests only): the config module, a few ops, Variable."""
import types

import numpy as np

from keras import ops
from keras.src.backend import config

__version__ = "3.0.0-fake"


def standardize_dtype(dtype):
    return np.dtype(dtype).name


backend = types.SimpleNamespace(
    backend=config.backend, floatx=config.floatx, epsilon=config.epsilon,
    image_data_format=config.image_data_format, set_floatx=config.set_floatx,
    set_epsilon=config.set_epsilon, set_image_data_format=config.set_image_data_format,
    standardize_dtype=standardize_dtype)


class Variable(object):
    def __init__(self, initializer, shape=None, dtype=None):
        self.dtype = standardize_dtype(dtype or config.floatx())
        if initializer == "ones":
            initializer = np.ones(shape)
        self.value = ops.convert_to_tensor(np.asarray(initializer), dtype=self.dtype)

    def __array__(self, dtype=None):
        return np.asarray(self.value, dtype=dtype)
