"""A plugin that prints to stdout while being imported, and is otherwise fine:
usable as a Keras 2 backend (it re-exports TensorFlow's) and as an ops-module plugin
(`add`, `multiply` on NumPy)."""
import os

import numpy as np

print("hello from validate_prints")
os.write(1, b"and a C-level write to fd 1\n")


def add(x1, x2):
    return np.add(x1, x2)


def multiply(x1, x2):
    return np.multiply(x1, x2)


if os.environ.get("KERAS_BACKEND"):  # loaded by Keras 2: be a complete backend
    from keras.backend.tensorflow_backend import *  # noqa: F401,F403
