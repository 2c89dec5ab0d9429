"""kinks_numpy with gradients that differ only at the non-differentiable points:
- relu'(0) = 1, another subgradient: the verdict `convention`, which does not fail;
- abs'(0) = NaN where abs(0) = 0 is finite: fails;
- maximum at a tie gives the whole step to both inputs (they add up to 2 ct): fails;
- clip at a bound gives 2 ct, not a subgradient: fails.
minimum and floor are kinks_numpy's."""
import numpy as np

from kinks_numpy import _vjps, abs, clip, floor, maximum, minimum, relu  # noqa: F401


def conformance_vjp(name, args, kwargs, wrt, cotangents):
    ct, x = cotangents[0], args[0]
    grads = _vjps(name, args, kwargs, ct)
    if name == "relu":
        grads = [ct * (x >= 0)]  # planted
    elif name == "abs":
        grads = [np.where(x == 0, np.nan, ct * np.sign(x))]  # planted
    elif name == "maximum":
        grads = [ct * (args[0] >= args[1]), ct * (args[1] >= args[0])]  # planted
    elif name == "clip":
        at_bound = (x == kwargs["x_min"]) | (x == kwargs["x_max"])
        grads = [np.where(at_bound, 2 * ct, grads[0])]  # planted
    return [np.asarray(grads[i]).astype(args[i].dtype) for i in wrt]
