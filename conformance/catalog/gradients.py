"""Gradients: `grad_<op>`, the vector-Jacobian product of a catalog op.

Each entry derives from a forward op of another family: its examples are the forward
op's plus one cotangent per output ("ct", drawn in floatx in [-2, 2], the output's
shape), its calls are the forward calls differentiated with respect to the `wrt`
inputs (worker command ``vjp``), its outputs one gradient per `wrt` input, and its
reference a float64 VJP that no target computes:

- elementwise functions: ct * f'(x), with f' written out here;
- functions affine in each input (sum, mean, matmul, add, multiply, ...): J^T ct,
  where J is the Jacobian the forward reference itself gives, one basis vector at a time
  (exact up to float64 rounding, for any axis, shape or broadcasting);
- piecewise functions (relu, abs, maximum, minimum, clip, floor, round): their inputs
  are moved onto the points where they are not differentiable on purpose; there the
  gradient is judged as a subgradient and its convention reported (conformance.kinks).

Targets without autodiff (NumPy, OpenVINO, ops-module plugins without the
``conformance_vjp`` hook) answer ``unsupported``.
"""
from __future__ import annotations

import dataclasses

import numpy as np
from scipy import special

from conformance import strategies as S
from conformance.kinks import Kink
from conformance.catalog import (Context, Op, activations, elementwise, linalg, nn, reductions,
                                 shape)
from conformance.tolerance import Gradient, LinearGradient, Rounded

COTANGENT = "ct"
_FORWARD = {op.name: op for module in (elementwise, activations, reductions, linalg, shape, nn)
            for op in module.OPS}


def _with_cotangent(forward: Op, floatx: str, example: dict):
    """`example` plus a cotangent of the shape of the forward op's (single) output."""
    (output,) = forward.references(example, Context(floatx))
    return S.arrays(floatx, output.shape, -2.0, 2.0).map(
        lambda ct: {**example, COTANGENT: ct})


def _derived(forward_name: str, reference, tolerance, wrt=("x",), inputs=None,
             kinks=None) -> Op:
    """The gradient entry of catalog op `forward_name`; `inputs(floatx)`, when given,
    replaces the forward op's examples (a narrower range away from a pole, say);
    `kinks(example)` lists its non-differentiable points (conformance.kinks)."""
    forward = _FORWARD[forward_name]
    draw = inputs or forward.inputs

    def calls(call):
        return call and dataclasses.replace(call, wrt=wrt, cotangents=(COTANGENT,))

    return Op(
        name=f"grad_{forward_name}", family="gradients",
        inputs=lambda fx: draw(fx).flatmap(lambda ex: _with_cotangent(forward, fx, ex)),
        reference=reference, tolerance=tolerance,
        keras3=calls(forward.keras3), keras2=calls(forward.keras2),
        floatx=forward.floatx, structure=forward.structure, kinks=kinks,
        notes=f"d/d{', d/d'.join(wrt)} of {forward_name}, times a cotangent",
    )


# -- elementwise functions: ct * f'(x) ------------------------------------------------

def _elementwise(name, fprime, second, readback=None, lo=None, hi=None):
    """`fprime(x)` is f'(x); `second(x)` is x f''(x), the input-rounding term;
    `readback(x)` is |y h'(y)| where backends compute f'(x) = h(y) from the rounded
    output y = f(x) (tanh' = 1 - y^2), the error that rounding y causes."""
    def reference(example, ctx):
        return [example[COTANGENT].astype("float64") * fprime(_x(example))]

    def terms(example):
        x = _x(example)
        term = np.abs(second(x)) + (np.abs(readback(x)) if readback else 0.0)
        return np.abs(example[COTANGENT].astype("float64")) * term

    inputs = None
    if lo is not None:
        inputs = lambda fx: S.unary(fx, lo, hi)  # noqa: E731
    return _derived(name, reference, Gradient(4, terms), inputs=inputs)


def _x(example):
    return example["x"].astype("float64")


def _sigmoid(x):
    return special.expit(x)


_LN2, _LN10 = np.log(2.0), np.log(10.0)

ELEMENTWISE = [
    _elementwise("exp", np.exp, lambda x: x * np.exp(x), np.exp),
    _elementwise("expm1", np.exp, lambda x: x * np.exp(x), np.expm1),
    _elementwise("exp2", lambda x: _LN2 * np.exp2(x), lambda x: x * _LN2 ** 2 * np.exp2(x),
                 lambda x: _LN2 * np.exp2(x)),
    _elementwise("log", lambda x: 1 / x, lambda x: 1 / x),
    _elementwise("log1p", lambda x: 1 / (1 + x), lambda x: x / (1 + x) ** 2),
    _elementwise("log2", lambda x: 1 / (x * _LN2), lambda x: 1 / (x * _LN2)),
    _elementwise("log10", lambda x: 1 / (x * _LN10), lambda x: 1 / (x * _LN10)),
    _elementwise("sqrt", lambda x: 0.5 / np.sqrt(x), lambda x: 0.25 / np.sqrt(x),
                 lambda x: 0.5 / np.sqrt(x), lo=1e-2, hi=100.0),  # f' has a pole at 0
    _elementwise("square", lambda x: 2 * x, lambda x: 2 * x),
    _elementwise("reciprocal", lambda x: -1 / x ** 2, lambda x: 2 / x ** 2,
                 lambda x: 2 / x ** 2),
    _elementwise("sin", np.cos, lambda x: x * np.sin(x)),
    _elementwise("cos", lambda x: -np.sin(x), lambda x: x * np.cos(x)),
    _elementwise("tan", lambda x: 1 / np.cos(x) ** 2, lambda x: 2 * x * np.tan(x) / np.cos(x) ** 2,
                 lambda x: 2 * np.tan(x) ** 2),
    _elementwise("arctan", lambda x: 1 / (1 + x * x), lambda x: 2 * x * x / (1 + x * x) ** 2),
    _elementwise("sinh", np.cosh, lambda x: x * np.sinh(x)),
    _elementwise("cosh", np.sinh, lambda x: x * np.cosh(x)),
    _elementwise("tanh", lambda x: 1 - np.tanh(x) ** 2,
                 lambda x: 2 * x * np.tanh(x) * (1 - np.tanh(x) ** 2),
                 lambda x: 2 * np.tanh(x) ** 2),
    _elementwise("arcsinh", lambda x: 1 / np.sqrt(1 + x * x),
                 lambda x: x * x / (1 + x * x) ** 1.5),
    _elementwise("arctanh", lambda x: 1 / (1 - x * x), lambda x: 2 * x * x / (1 - x * x) ** 2),
    _elementwise("erf", lambda x: 2 / np.sqrt(np.pi) * np.exp(-x * x),
                 lambda x: 4 / np.sqrt(np.pi) * x * x * np.exp(-x * x)),
    _elementwise("sigmoid", lambda x: _sigmoid(x) * (1 - _sigmoid(x)),
                 lambda x: x * _sigmoid(x) * (1 - _sigmoid(x)) * (1 - 2 * _sigmoid(x)),
                 lambda x: _sigmoid(x) * (1 - 2 * _sigmoid(x))),
    _elementwise("softplus", _sigmoid, lambda x: x * _sigmoid(x) * (1 - _sigmoid(x))),
]


# -- functions affine in each input: J^T ct from the forward reference ------------------

def _linear_vjp(forward: Op, example: dict, key: str, absolute: bool = False):
    """J^T ct for input `key`, J = d forward / d example[key] (forward affine in it),
    and the largest number of terms any gradient element sums. `absolute`: the same
    with every input and the cotangent replaced by its absolute value, |J|^T |ct|
    (entries of J are products of the other inputs, or constants)."""
    values = {k: (np.abs(v.astype("float64")) if absolute and isinstance(v, np.ndarray)
                  and v.dtype.kind == "f" else v) for k, v in example.items()}
    x = values[key].astype("float64")
    ct = values[COTANGENT].astype("float64")
    def forward_at(flat):
        (output,) = forward.references({**values, key: flat.reshape(x.shape)}, Context("float64"))
        return output

    origin = forward_at(np.zeros(x.size))  # affine ops (add, subtract): J e = f(e) - f(0)
    gradient, terms = np.zeros(x.size), 1
    for i in range(x.size):
        basis = np.zeros(x.size)
        basis[i] = 1.0
        column = forward_at(basis) - origin
        gradient[i] = np.sum(column * ct)
        terms = max(terms, int(np.count_nonzero(column)))
    return gradient.reshape(x.shape), terms


def _linear(name, wrt=("x",)):
    forward = _FORWARD[name]

    def reference(example, ctx):
        return [_linear_vjp(forward, example, key)[0] for key in wrt]

    def bound(example, index):
        return _linear_vjp(forward, example, wrt[index], absolute=True)

    return _derived(name, reference, LinearGradient(bound), wrt=wrt)


def _divide_reference(example, ctx):
    x1, x2 = example["x1"].astype("float64"), example["x2"].astype("float64")
    ct = example[COTANGENT].astype("float64")
    return [ct / x2, -ct * x1 / (x2 * x2)]


LINEAR = [
    _linear("add", wrt=("x1", "x2")),
    _linear("subtract", wrt=("x1", "x2")),
    _linear("multiply", wrt=("x1", "x2")),
    _linear("sum"),
    _linear("mean"),
    _linear("matmul", wrt=("x1", "x2")),
    _linear("cumsum"),
    *[_linear(name, wrt=("x1", "x2")) for name in (
        "dot", "batch_dot", "tensordot", "einsum", "outer", "inner", "vdot", "concatenate",
        "stack", "where")],
    *[_linear(name) for name in (
        "reshape", "transpose", "swapaxes", "moveaxis", "ravel", "batch_flatten",
        "expand_dims", "squeeze", "broadcast_to", "tile", "repeat", "take", "take_along_axis", "slice", "diag", "diagonal", "tril", "triu", "pad", "flip", "roll",
        "average_pool1d", "average_pool2d", "average_pool3d")],
    *[_linear(name, wrt=("x", "kernel")) for name in (
        "conv1d", "conv2d", "conv3d", "conv_transpose1d", "conv_transpose2d")],
    *[_linear(name, wrt=("x", "depthwise_kernel")) for name in (
        "depthwise_conv1d", "depthwise_conv2d")],
    *[_linear(name, wrt=("x", "depthwise_kernel", "pointwise_kernel")) for name in (
        "separable_conv1d", "separable_conv2d")],
    # ct / x2 may be ct * (1 / x2); -ct x1 / x2^2 takes up to four roundings in any order
    _derived("divide", _divide_reference, Rounded(4), wrt=("x1", "x2")),
]


# -- piecewise functions, drawn onto the points where they are not differentiable -------

def _moved_onto(forward_name: str, key: str, points, inputs=None):
    """Examples of `forward_name` (or `inputs`) with some elements of example[key]
    replaced by points(example)'s (an array of its shape, in floatx): random floats
    almost never land on a kink."""
    draw = inputs or _FORWARD[forward_name].inputs

    def moved(example):
        x = example[key]
        return S.bool_arrays(x.shape).map(lambda chosen: {
            **example, key: np.where(chosen, points(example), x).astype(x.dtype)})

    return lambda fx: draw(fx).flatmap(moved)


def _ct(example):
    return example[COTANGENT].astype("float64")


def _piecewise(name, slope, kinks, points, wrt=("x",), inputs=None):
    """Gradient entry of a piecewise function: `slope(example)` lists d/d(each wrt input)
    away from the kinks, and takes each kink's convention on it."""
    def reference(example, ctx):
        values = [ct_slope * _ct(example) for ct_slope in slope(example)]
        for kink in kinks(example):
            values[kink.output] = np.where(kink.mask, kink.convention * kink.scale,
                                           values[kink.output])
        return values

    key = wrt[-1] if len(wrt) > 1 else wrt[0]  # a tie moves the second input onto the first
    return _derived(name, reference, Rounded(1), wrt=wrt, kinks=kinks,
                    inputs=_moved_onto(name, key, points, inputs))


def _at(example, label, mask, lo, hi, convention, output=0, pair=None):
    return Kink(label, output, np.asarray(mask), _ct(example), lo, hi, convention, pair)


def _x64(example, key="x"):
    return example[key].astype("float64")


def _ties(name, wins):
    """maximum / minimum: x1 wins where wins(x1, x2); at a tie the subgradients are
    (a, 1 - a), a in [0, 1]; the reference splits the step evenly (JAX's and torch's
    choice)."""
    def slope(example):
        x1, x2 = _x64(example, "x1"), _x64(example, "x2")
        return [1.0 * wins(x1, x2), 1.0 * wins(x2, x1)]

    def kinks(example):
        tie = _x64(example, "x1") == _x64(example, "x2")
        return [_at(example, "d/dx1 at x1 = x2", tie, 0, 1, 0.5, 0, pair=1),
                _at(example, "d/dx2 at x1 = x2", tie, 0, 1, 0.5, 1, pair=0)]

    return _piecewise(name, slope, kinks, lambda ex: ex["x1"], wrt=("x1", "x2"),
                      inputs=lambda fx: S.binary(fx, broadcast=False))


def _clip_bounds(example):
    """x_min at even flat indices, x_max at odd ones (which elements move is drawn)."""
    x = example["x"]
    parity = np.arange(x.size).reshape(x.shape) % 2 == 0
    return np.where(parity, example["x_min"], example["x_max"])


def _clip_inputs(fx):
    return _FORWARD["clip"].inputs(fx).filter(lambda ex: ex["x_min"] < ex["x_max"])


def _clip_kinks(example):
    x = _x64(example)
    return [_at(example, "at x = x_min", x == example["x_min"], 0, 1, 1.0),
            _at(example, "at x = x_max", x == example["x_max"], 0, 1, 1.0)]


PIECEWISE = [
    # the reference takes relu'(0) = 0 and abs'(0) = sign(0) = 0
    _piecewise("relu", lambda ex: [1.0 * (_x64(ex) > 0)],
               lambda ex: [_at(ex, "at x = 0", _x64(ex) == 0, 0, 1, 0.0)],
               lambda ex: np.zeros_like(ex["x"])),
    _piecewise("abs", lambda ex: [np.sign(_x64(ex))],
               lambda ex: [_at(ex, "at x = 0", _x64(ex) == 0, -1, 1, 0.0)],
               lambda ex: np.zeros_like(ex["x"])),
    _ties("maximum", np.greater),
    _ties("minimum", np.less),
    # the reference lets the step through at a bound (x_min <= x <= x_max)
    _piecewise("clip", lambda ex: [1.0 * ((_x64(ex) >= ex["x_min"]) & (_x64(ex) <= ex["x_max"]))],
               _clip_kinks, _clip_bounds, inputs=_clip_inputs),
    # constant between jumps: 0 everywhere; the jumps are drawn to see that it stays 0
    _piecewise("floor", lambda ex: [np.zeros_like(_x64(ex))],
               lambda ex: [_at(ex, "at an integer", _x64(ex) == np.floor(_x64(ex)), 0, 0, 0.0)],
               lambda ex: np.floor(ex["x"])),
    _piecewise("round", lambda ex: [np.zeros_like(_x64(ex))],
               lambda ex: [_at(ex, "at a half-integer", _x64(ex) - np.floor(_x64(ex)) == 0.5,
                               0, 0, 0.0)],
               lambda ex: np.floor(ex["x"]) + 0.5),
]

OPS = ELEMENTWISE + LINEAR + PIECEWISE
