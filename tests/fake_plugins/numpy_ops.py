"""A correct ops-module plugin on NumPy: the control for the planted-defect test."""
import numpy as np

exp = np.exp
log = np.log
sin = np.sin
add = np.add
multiply = np.multiply
maximum = np.maximum


def softmax(x, axis=-1):
    shifted = x - np.max(x, axis=axis, keepdims=True)
    e = np.exp(shifted)
    return e / np.sum(e, axis=axis, keepdims=True)


def sum(x, axis=None, keepdims=False):
    return np.sum(x, axis=axis, keepdims=keepdims)


def mean(x, axis=None, keepdims=False):
    return np.mean(x, axis=axis, keepdims=keepdims)


def max(x, axis=None, keepdims=False):
    return np.max(x, axis=axis, keepdims=keepdims)


def softplus(x):
    return np.logaddexp(0, x).astype(x.dtype)
