"""numpy_ops after an "upgrade", for the baseline tests: exp drifts up by one ulp
(within tolerance), sum regresses (adds 1% of max|x|: beyond tolerance), log is gone
(newly unsupported), cos is new (newly supported) and maximum raises (newly failing)."""
import numpy as np

from numpy_ops import add, max, mean, multiply, sin, softmax  # noqa: F401

__version__ = "2.0.0"


def exp(x):
    y = np.exp(x)
    return np.nextafter(y, np.asarray(np.inf, dtype=y.dtype))


def sum(x, axis=None, keepdims=False):
    total = np.sum(x, axis=axis, keepdims=keepdims)
    offset = np.max(np.abs(x), axis=axis, keepdims=keepdims) if x.size else 0
    return (total + np.asarray(0.01, dtype=x.dtype) * offset).astype(x.dtype)


cos = np.cos


def maximum(x1, x2):
    raise RuntimeError("maximum is broken in 2.0.0")
