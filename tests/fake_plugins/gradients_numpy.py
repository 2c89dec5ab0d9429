"""A correct ops-module plugin with gradients: NumPy ops and, through the optional
``conformance_vjp`` hook, their vector-Jacobian products (the control for
gradients_planted)."""
import numpy as np

from numpy_ops import exp, multiply, sum  # noqa: F401

tanh = np.tanh


def _sum_vjp(x, ct, axis=None, keepdims=False):
    if axis is None:
        axis = tuple(range(x.ndim))
    axes = (axis,) if isinstance(axis, int) else tuple(axis)
    if not keepdims:
        ct = np.expand_dims(ct, tuple(a % x.ndim for a in axes))
    return np.broadcast_to(ct, x.shape)


def _vjps(name, args, kwargs, ct):
    """Every input's gradient."""
    if name == "exp":
        return [ct * np.exp(args[0])]
    if name == "tanh":
        return [ct * (1 - np.tanh(args[0]) ** 2)]
    if name == "multiply":
        return [ct * args[1], ct * args[0]]
    if name == "sum":
        return [_sum_vjp(args[0], ct, **kwargs)]
    raise NotImplementedError("no gradient for %s" % name)


def conformance_vjp(name, args, kwargs, wrt, cotangents):
    grads = _vjps(name, args, kwargs, cotangents[0])
    return [grads[i].astype(args[i].dtype) for i in wrt]
