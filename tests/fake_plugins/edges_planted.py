"""edges_numpy with defects that show only at special values, never on the ordinary
inputs of the same ops:
- maximum drops a NaN (np.fmax returns the other operand);
- exp saturates at the largest finite value instead of overflowing to inf;
- sqrt of a negative number is 0, not NaN (inputs clipped at 0, as Keras 2's K.sqrt does);
- sign(NaN) is 0;
- 0 / 0 is 0;
- max skips NaN (np.nanmax), a reduction dropping NaN.
minimum, log and sum are edges_numpy's."""
import numpy as np

import warnings

from edges_numpy import log, minimum, sum  # noqa: F401


def maximum(x1, x2):
    return np.fmax(x1, x2)  # planted


def exp(x):
    return np.minimum(np.exp(x), np.finfo(x.dtype).max).astype(x.dtype)  # planted


def sqrt(x):
    return np.sqrt(np.maximum(x, 0)).astype(x.dtype)  # planted


def sign(x):
    return np.where(np.isnan(x), 0, np.sign(x)).astype(x.dtype)  # planted


def divide(x1, x2):
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where((x1 == 0) & (x2 == 0), 0, x1 / x2).astype(x1.dtype)  # planted


def max(x, axis=None, keepdims=False):
    with warnings.catch_warnings():  # an all-NaN slice
        warnings.simplefilter("ignore")
        return np.nanmax(x, axis=tuple(axis) if isinstance(axis, list) else axis,
                         keepdims=keepdims)  # planted
