"""my_ops: a small Keras 3 style plugin (an "ops-module"), written to show
`conformance validate --flavor ops-module`.

An ops-module plugin is a module exposing functions under ``keras.ops`` names that
take and return arrays: `conformance` calls ``my_ops.exp(x)`` wherever the catalog
calls ``keras.ops.exp(x)``. This one is NumPy underneath and implements a few dozen
elementwise, activation, reduction and shape functions; the rest of the catalog is
left out on purpose, so the surface check has something to list. Three functions
hold a documented mistake:

1. ``logsumexp`` skips the max-subtraction: ``log(sum(exp(x)))``. exp overflows for
   large inputs (x > 88 in float32) and underflows for very negative ones, so the
   result is inf / -inf where the true value is finite. Wrong at every floatx.
2. ``mean`` accumulates in float16 "to save memory": three significant digits, so
   float32 and float64 means are off by about 1e-3 relative (and a float16 sum
   overflows past 65504). Wrong at float32 and float64.
3. ``arctan2`` is ``arctan(x1 / x2)`` (with x2 == 0 handled): right only when
   x2 > 0; for x2 < 0 the angle lands in the wrong quadrant, off by pi. Wrong at
   every floatx.

Everything else is NumPy's own function (softmax with the max-subtraction) and
conforms.
"""
import numpy as np

__version__ = "0.1.0"

# -- right: NumPy functions with the keras.ops names and semantics -------------------------
add = np.add
subtract = np.subtract
multiply = np.multiply
divide = np.divide
maximum = np.maximum
minimum = np.minimum
negative = np.negative
abs = np.abs
sign = np.sign
floor = np.floor
ceil = np.ceil
sqrt = np.sqrt
square = np.square
reciprocal = np.reciprocal
exp = np.exp
expm1 = np.expm1
log = np.log
log1p = np.log1p
log2 = np.log2
log10 = np.log10
sin = np.sin
cos = np.cos
tan = np.tan
tanh = np.tanh
arctan = np.arctan
sinh = np.sinh
cosh = np.cosh
power = np.power
equal = np.equal
not_equal = np.not_equal
greater = np.greater
greater_equal = np.greater_equal
less = np.less
less_equal = np.less_equal
ravel = np.ravel
tril = np.tril
triu = np.triu


def _axis(axis):
    return tuple(axis) if isinstance(axis, list) else axis


def round(x, decimals=0):
    return np.round(x, decimals)


def transpose(x, axes=None):
    return np.transpose(x, axes)


def flip(x, axis=None):
    return np.flip(x, _axis(axis))


def expand_dims(x, axis):
    return np.expand_dims(x, _axis(axis))


def reshape(x, newshape):
    return np.reshape(x, newshape)


def clip(x, x_min, x_max):
    return np.clip(x, x_min, x_max)


def zeros_like(x, dtype=None):
    return np.zeros_like(x, dtype=dtype)


def ones_like(x, dtype=None):
    return np.ones_like(x, dtype=dtype)


def sum(x, axis=None, keepdims=False):
    return np.sum(x, axis=_axis(axis), keepdims=keepdims)


def max(x, axis=None, keepdims=False):
    return np.max(x, axis=_axis(axis), keepdims=keepdims)


def min(x, axis=None, keepdims=False):
    return np.min(x, axis=_axis(axis), keepdims=keepdims)


def relu(x, negative_slope=0.0, max_value=None, threshold=0.0):
    """keras.ops.relu(x), and keras.activations.relu's options: the catalog calls both
    by their last name, so one function serves both signatures."""
    x = np.asarray(x)
    y = np.where(x > threshold, x, 0)
    if max_value is not None:
        y = np.minimum(y, max_value)
    if negative_slope:
        y = y + negative_slope * np.minimum(x - threshold, 0)
    return y.astype(x.dtype)


def sigmoid(x):
    x = np.asarray(x)
    e = np.exp(-np.abs(x))  # never overflows
    return np.where(x >= 0, 1 / (1 + e), e / (1 + e)).astype(x.dtype)


def softmax(x, axis=-1):
    e = np.exp(x - np.max(x, axis=axis, keepdims=True))
    return e / np.sum(e, axis=axis, keepdims=True)


# -- the documented mistakes ---------------------------------------------------------------
def logsumexp(x, axis=None, keepdims=False):
    """Mistake 1: no max-subtraction, so exp overflows (or underflows) first."""
    with np.errstate(over="ignore", divide="ignore"):
        return np.log(np.sum(np.exp(x), axis=_axis(axis), keepdims=keepdims))


def mean(x, axis=None, keepdims=False):
    """Mistake 2: accumulates in float16."""
    x = np.asarray(x)
    with np.errstate(over="ignore"):
        return np.mean(x.astype(np.float16), axis=_axis(axis), keepdims=keepdims,
                       dtype=np.float16).astype(x.dtype)


def arctan2(x1, x2):
    """Mistake 3: arctan(x1 / x2) ignores the quadrant when x2 < 0."""
    with np.errstate(divide="ignore", invalid="ignore"):
        angle = np.arctan(np.divide(x1, x2))
    return np.where(x2 == 0, np.sign(x1) * np.pi / 2, angle).astype(np.result_type(x1, x2))
