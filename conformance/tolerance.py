"""The tolerance model: how far from the float64 reference a backend may be.

u = eps(floatx) / 2 is the unit roundoff. An element passes when

    |y_backend - y_ref| <= E + floor,   floor = 2 * smallest normal of floatx

so flush-to-zero of subnormal results never counts as an error. E depends on the
op class (see docs/tolerance.md and Higham, Accuracy and Stability of Numerical
Algorithms, ch. 3-4), scaled by the actual inputs. Every class also says its formula
in words for the report. Widenings beyond these formulas live only in `overrides.py`.

A tolerance turns (example, outputs, references) into pairs (error, allowed) per
output; most classes compare values (error = |y - ref|), backward-error classes
(linear algebra) and statistical ones (random) measure something else.
"""
from __future__ import annotations

import numpy as np


def once(memo: dict | None, key, compute):
    """compute() the first time `key` is asked of `memo` (a dict per example, None for
    no memo). Keys hold id() of reference arrays: a memo must not outlive them."""
    if memo is None:
        return compute()
    if key not in memo:
        memo[key] = compute()
    return memo[key]


def unit_roundoff(floatx: str) -> float:
    return float(np.finfo(floatx).eps) / 2


def floor(floatx: str) -> float:
    return 2 * float(np.finfo(floatx).tiny)


def ulp(values: np.ndarray, floatx: str) -> np.ndarray:
    """Spacing of floatx numbers at |values| (the size of one unit in the last place)."""
    finfo = np.finfo(floatx)
    magnitude = np.minimum(np.abs(np.asarray(values, dtype="float64")), float(finfo.max))
    with np.errstate(over="ignore", invalid="ignore"):
        spacing = np.spacing(magnitude.astype(floatx)).astype("float64")
    return np.where(np.isfinite(spacing), np.abs(spacing), float(finfo.max))


class Tolerance:
    """Base class: value comparison with an allowed absolute error per element."""

    formula = ""

    def allowed(self, example: dict, ref: np.ndarray, floatx: str, index: int) -> np.ndarray:
        raise NotImplementedError

    def errors(self, example, outputs, refs, floatx, memo=None):
        """[(error, allowed)] per output; `outputs` are float64 arrays of ref's shape.

        `memo` (a dict per example, optional) keeps the allowed arrays: they depend on
        the example and the reference only, so every target judged against the same
        reference shares them instead of recomputing them per target."""
        pairs = []
        for index, (out, ref) in enumerate(zip(outputs, refs)):
            allowed = self._allowed_once(example, ref, floatx, index, memo)
            with np.errstate(invalid="ignore", over="ignore"):
                pairs.append((np.abs(out - ref), allowed))
        return pairs

    def _allowed_once(self, example, ref, floatx, index, memo):
        return once(memo, ("allowed", id(ref), index), lambda: np.broadcast_to(
            self.allowed(example, ref, floatx, index), ref.shape))

    def __add__(self, other: "Tolerance") -> "Tolerance":
        return Sum(self, other)


class Exact(Tolerance):
    """Results that are copies, comparisons, indices or integers: no error at all."""

    formula = "E = 0 (exact)"

    def allowed(self, example, ref, floatx, index):
        return np.zeros_like(ref)


class Rounded(Tolerance):
    """m chained correctly rounded operations (+ - * / sqrt, cast)."""

    def __init__(self, operations: int = 1):
        self.operations = operations
        self.formula = f"E = {operations} u |y|"

    def allowed(self, example, ref, floatx, index):
        return self.operations * unit_roundoff(floatx) * np.abs(ref)


class Elementwise(Tolerance):
    """Elementwise transcendental f: E = N ulp(y) + N u |x f'(x)|.

    `condition(example)` returns |x f'(x)| (float64, broadcastable to the output): the
    error that rounding the input to floatx can cause in a perfectly rounded f.
    """

    def __init__(self, ulps: int = 4, condition=None):
        self.ulps = ulps
        self.condition = condition
        self.formula = f"E = {ulps} ulp(y)" + (f" + {ulps} u |x f'(x)|" if condition else "")

    def allowed(self, example, ref, floatx, index):
        allowed = self.ulps * ulp(ref, floatx)
        if self.condition is not None:
            with np.errstate(all="ignore"):
                term = np.abs(np.asarray(self.condition(example), dtype="float64"))
            allowed = allowed + self.ulps * unit_roundoff(floatx) * np.nan_to_num(
                term, nan=0.0, posinf=np.finfo("float64").max)
        return allowed


class Gradient(Tolerance):
    """Vector-Jacobian product of an elementwise f, g = ct f'(x):
    E = N ulp(g) + N u |ct| (|x f''(x)| + |y h'(y)|).

    N ulp(g) is f' evaluated and multiplied by ct in floatx; |x f''(x)| the input
    rounding of f' (as |x f'(x)| is for f); |y h'(y)| the rounding of the forward
    output y when a backend computes f'(x) = h(y) from it (tanh' = 1 - y^2: 2 y^2).
    `terms(example)` returns |ct| (|x f''(x)| + |y h'(y)|).
    """

    def __init__(self, ulps: int, terms):
        self.ulps = ulps
        self.terms = terms
        self.formula = f"E = {ulps} ulp(g) + {ulps} u |ct| (|x f''(x)| + |y h'(y)|)"

    def allowed(self, example, ref, floatx, index):
        with np.errstate(all="ignore"):
            term = np.nan_to_num(np.asarray(self.terms(example), dtype="float64"),
                                 nan=0.0, posinf=np.finfo("float64").max)
        return self.ulps * ulp(ref, floatx) + self.ulps * unit_roundoff(floatx) * term


class LinearGradient(Tolerance):
    """Vector-Jacobian product of an op linear in the input, g = J^T ct, a sum of at
    most k products per element: E = 4 sqrt(k) u (|J|^T |ct|) + u |g| + k tiny.

    `bound(example, index)` returns (|J|^T |ct|, k) for output `index` (as Matmul's
    S1 and k; a copy or a sign change has k = 1). k tiny: each product below the
    smallest normal may be flushed to zero (the floor allows one, not k)."""

    formula = "E = 4 sqrt(k) u (|J|^T |ct|) + u |g| + k tiny"

    def __init__(self, bound):
        self.bound = bound

    def allowed(self, example, ref, floatx, index):
        magnitude, k = self.bound(example, index)
        u = unit_roundoff(floatx)
        return 4 * np.sqrt(k) * u * magnitude + u * np.abs(ref) + k * float(np.finfo(floatx).tiny)


class Reduction(Tolerance):
    """Sum-like reduction over n terms: E = 4 sqrt(n) u sum|x_i| + u |y|.

    `terms(example, index)` returns (n, sum|x_i|) with sum|x_i| shaped like the
    output. Accumulation is assumed to happen in floatx (the worst case: float16
    backends that do not widen).
    """

    def __init__(self, terms, factor: float = 4.0):
        self.terms = terms
        self.factor = factor
        self.formula = f"E = {factor:g} sqrt(n) u sum|x_i| + u |y|"

    def allowed(self, example, ref, floatx, index):
        n, sum_abs = self.terms(example, index)
        u = unit_roundoff(floatx)
        return self.factor * np.sqrt(max(n, 1)) * u * np.asarray(sum_abs) + u * np.abs(ref)


class Matmul(Tolerance):
    """Inner products of length k: E = 4 (sqrt(2) u S2 + sqrt(k) u S1) + u |C|.

    `terms(example)` returns (k, S1, S2) with S1 = |A||B| and S2 = sqrt((A*A)(B*B)).
    """

    formula = "E = 4 (sqrt(2) u S2 + sqrt(k) u S1) + u |C|, S1 = |A||B|, S2 = sqrt((A∘A)(B∘B))"

    def __init__(self, terms):
        self.terms = terms

    def allowed(self, example, ref, floatx, index):
        k, s1, s2 = self.terms(example)
        u = unit_roundoff(floatx)
        return 4 * (np.sqrt(2) * u * s2 + np.sqrt(max(k, 1)) * u * s1) + u * np.abs(ref)


class Absolute(Tolerance):
    """A fixed multiple of u times a scale computed from the inputs (e.g. max|x|)."""

    def __init__(self, scale, factor: float = 4.0, formula: str = ""):
        self.scale = scale
        self.factor = factor
        self.formula = formula or f"E = {factor:g} u scale(x)"

    def allowed(self, example, ref, floatx, index):
        return self.factor * unit_roundoff(floatx) * np.asarray(self.scale(example, index))


class InnerFloor(Tolerance):
    """An intermediate that may flush to zero below the smallest normal and is then
    multiplied: E = 2 tiny(floatx) * scale(x) (e.g. a * sigmoid(b) for glu)."""

    def __init__(self, scale, formula: str = "E = 2 tiny |scale(x)|"):
        self.scale = scale
        self.formula = formula

    def allowed(self, example, ref, floatx, index):
        return floor(floatx) * np.abs(np.asarray(self.scale(example)))


class Sum(Tolerance):
    """Error terms that add up (e.g. a transcendental applied to a reduction)."""

    def __init__(self, *parts: Tolerance):
        self.parts = parts
        self.formula = " + ".join(p.formula.replace("E = ", "", 1) for p in parts)
        self.formula = "E = " + self.formula

    def allowed(self, example, ref, floatx, index):
        return sum(p.allowed(example, ref, floatx, index) for p in self.parts)


class BackwardError(Tolerance):
    """Linear algebra: judge the backward error of the result, not raw entries.

    `residual(example, outputs)` returns, per output, the normwise backward error
    (e.g. ||A x - b|| / (||A|| ||x|| + ||b||) for solve); it is allowed
    `factor * n * u` where n is the problem size from `size(example)`.
    """

    def __init__(self, residual, size, factor: float = 8.0):
        self.residual = residual
        self.size = size
        self.factor = factor
        self.formula = f"backward error <= {factor:g} n u"

    def errors(self, example, outputs, refs, floatx, memo=None):
        residuals = self.residual(example, outputs)
        bound = self.factor * self.size(example) * unit_roundoff(floatx)
        return [(np.atleast_1d(np.asarray(r, dtype="float64")), np.full(np.shape(np.atleast_1d(r)), bound))
                for r in residuals]


class Statistical(Tolerance):
    """Random ops: compare sample statistics with their expected values.

    `statistics(example, outputs)` returns [(observed, expected, standard_error)];
    a statistic passes within `sigmas` standard errors (plus the floatx rounding of
    the expected value).
    """

    def __init__(self, statistics, sigmas: float = 6.0):
        self.statistics = statistics
        self.sigmas = sigmas
        self.formula = f"|statistic - expected| <= {sigmas:g} standard errors"

    def errors(self, example, outputs, refs, floatx, memo=None):
        pairs = []
        for observed, expected, stderr in self.statistics(example, outputs):
            error = np.atleast_1d(np.abs(np.asarray(observed, "float64") - expected))
            allowed = self.sigmas * np.asarray(stderr) + 4 * unit_roundoff(floatx) * np.abs(expected)
            pairs.append((error, np.broadcast_to(allowed, error.shape)))
        return pairs
