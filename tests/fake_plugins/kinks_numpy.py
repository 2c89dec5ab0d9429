"""A correct ops-module plugin for the non-differentiable points (conformance.kinks):
piecewise NumPy ops whose ``conformance_vjp`` takes the reference's conventions
(relu'(0) = 0, abs'(0) = 0, ties split evenly, clip's step let through at a bound).
The control for kinks_planted."""
import numpy as np

abs = np.abs
maximum = np.maximum
minimum = np.minimum
floor = np.floor


def relu(x):
    return np.maximum(x, 0).astype(x.dtype)


def clip(x, x_min, x_max):
    return np.clip(x, x_min, x_max).astype(x.dtype)


def _tie_split(x1, x2, ct, wins):
    share = np.where(x1 == x2, 0.5, 1.0 * wins(x1, x2))
    other = np.where(x1 == x2, 0.5, 1.0 * wins(x2, x1))
    return [ct * share, ct * other]


def _vjps(name, args, kwargs, ct):
    x = args[0]
    if name == "relu":
        return [ct * (x > 0)]
    if name == "abs":
        return [ct * np.sign(x)]
    if name == "maximum":
        return _tie_split(args[0], args[1], ct, np.greater)
    if name == "minimum":
        return _tie_split(args[0], args[1], ct, np.less)
    if name == "clip":
        return [ct * ((x >= kwargs["x_min"]) & (x <= kwargs["x_max"]))]
    if name == "floor":
        return [np.zeros_like(ct)]
    raise NotImplementedError("no gradient for %s" % name)


def conformance_vjp(name, args, kwargs, wrt, cotangents):
    grads = _vjps(name, args, kwargs, cotangents[0])
    return [np.asarray(grads[i]).astype(args[i].dtype) for i in wrt]
