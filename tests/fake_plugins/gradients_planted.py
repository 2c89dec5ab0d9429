"""gradients_numpy with two planted gradient defects the gradient cases must flag (and
nothing else; every forward value is right): tanh' taken as 1 - y instead of 1 - y^2,
and multiply's gradients swapped (d/dx1 = ct * x1)."""
import numpy as np

from gradients_numpy import _vjps, exp, multiply, sum, tanh  # noqa: F401


def conformance_vjp(name, args, kwargs, wrt, cotangents):
    ct = cotangents[0]
    if name == "tanh":
        grads = [ct * (1 - np.tanh(args[0]))]  # planted
    elif name == "multiply":
        grads = [ct * args[0], ct * args[1]]  # planted
    else:
        grads = _vjps(name, args, kwargs, ct)
    return [grads[i].astype(args[i].dtype) for i in wrt]
