"""An ops-module plugin that reads floatx from keras.json at import and whose
set_floatx does nothing: the pool must notice and restart it (tests only)."""
import json
import os

import numpy as np

with open(os.path.join(os.environ["KERAS_HOME"], "keras.json")) as config:
    _FLOATX = json.load(config)["floatx"]


def floatx():
    return _FLOATX


def set_floatx(value):
    pass  # the defect: the new value is ignored


def add(x1, x2):
    return np.add(x1, x2)
