"""The NumPy plugin with two planted defects the suites must flag (and nothing else):
softmax without max-subtraction (overflows for large logits) and a sum that
accumulates in float16."""
import numpy as np

from numpy_ops import add, exp, log, max, maximum, mean, multiply, sin  # noqa: F401


def softmax(x, axis=-1):
    e = np.exp(x)  # planted: no max-subtraction
    return e / np.sum(e, axis=axis, keepdims=True)


def sum(x, axis=None, keepdims=False):
    # planted: accumulate in float16
    return np.sum(x.astype("float16"), axis=axis, keepdims=keepdims).astype(x.dtype)
