"""A correct ops-module plugin at special values: NumPy's ufuncs, which follow IEEE 754
there as the edge cases' references do. The control for edges_planted."""
import numpy as np

maximum = np.maximum
minimum = np.minimum
exp = np.exp
log = np.log
sqrt = np.sqrt
sign = np.sign
divide = np.divide


def max(x, axis=None, keepdims=False):
    return np.max(x, axis=tuple(axis) if isinstance(axis, list) else axis, keepdims=keepdims)


def sum(x, axis=None, keepdims=False):
    return np.sum(x, axis=tuple(axis) if isinstance(axis, list) else axis, keepdims=keepdims)
