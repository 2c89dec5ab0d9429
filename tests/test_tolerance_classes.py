"""Every tolerance class the catalog uses rejects the two answers a broken backend gives
most often: all zeros and the reference with its sign flipped.

The classes are enumerated from the catalog (ops grouped by `type(op.tolerance)`), so a
new class is tested as soon as an op uses it. Inputs are drawn from each op's own
strategy by hypothesis (derandomized, no example database), references computed as a
run computes them, and the wrong answers judged by `compare.compare`.

"The reference is not zero" means: some element is at least 64 floors (the flush-to-zero
allowance every class gets) and 16 u away from zero; within 16 u, results that cancel
(gelu_approximate(-5) = 0.5 x (1 + tanh(-8.4)) in float32, a crossentropy of 2u at
q = 1 - epsilon) are legitimately as far from the reference as zero is. The elements
changed are the largest ones, |ref| >= max|ref| / 2, the others stay exact. Classes that do not compare values have their
own wrong answers:
- backward error (linear algebra): zeros (a huge backward error); the sign flip only
  where the definition fixes the sign (solve, inv, det, cholesky): -Q and -R are legitimate
  QR factors, -L is not (the Cholesky factor has a positive diagonal);
- statistics (random ops): zeros and a constant 1 (no spread), on distributions that
  give neither with any probability (continuous ones, the shuffle of non-constant x);
- dropout: zeros (every element dropped) and the kept values with their sign flipped.
"""
from __future__ import annotations

from collections import defaultdict

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conformance import tolerance
from conformance.catalog import Context, all_ops
from conformance.compare import compare

FLOATX = ("float16", "float32", "float64")
PER_CLASS = 5  # ops per class (all of them for the small classes)
EXAMPLES = 12
CONTINUOUS_RANDOM = {"random_normal", "random_uniform", "truncated_normal", "random_gamma",
                     "random_beta", "random_shuffle"}
SIGN_FREE = {"qr"}  # factors whose signs the definition leaves free


# derivatives of step functions: the reference is 0 everywhere, so "zeros" is right
ZERO_EVERYWHERE = {"grad_floor", "grad_round"}


def _ops_by_class():
    """Edge cases reuse their ordinary op's class, and at points such as tan(65504) in
    float16 that class rightly accepts any answer (the input's rounding alone moves tan
    by more than it is): their classes are tested on the ordinary ops' inputs."""
    groups = defaultdict(list)
    for op in all_ops():
        if op.family != "edges":
            groups[type(op.tolerance)].append(op)
    return groups


def _cases():
    cases = []
    for cls, ops in sorted(_ops_by_class().items(), key=lambda kv: kv[0].__name__):
        if cls.__name__ == "Sampled":
            ops = [op for op in ops if op.name in CONTINUOUS_RANDOM]
        ops = [op for op in ops if op.name not in ZERO_EVERYWHERE]
        # spread over the class: first, last and evenly between
        picks = ops if len(ops) <= PER_CLASS else [
            ops[i * (len(ops) - 1) // (PER_CLASS - 1)] for i in range(PER_CLASS)]
        for op in picks:
            for floatx in op.floatx:
                cases.append(pytest.param(op, floatx, id=f"{cls.__name__}-{op.name}-{floatx}"))
    return cases


def _judge(op, example, floatx, outputs, refs):
    outputs = [np.asarray(o).astype(floatx) if o.dtype.kind == "f" else np.asarray(o)
               for o in outputs]
    expected = [str(o.dtype) for o in outputs]  # the dtype verdict is not under test
    with np.errstate(all="ignore"):
        return compare(outputs, refs, op.tolerance, example, floatx, expected)


def _nonzero_threshold(floatx):
    """|ref| below this is "near zero": within 64 floors (flush to zero), or within 16 u
    of zero, where a result of unit-scale inputs that cancels (1 + tanh(-8), log q for
    q rounded near 1) carries an absolute rounding error of its own size."""
    return max(64 * tolerance.floor(floatx), 16 * tolerance.unit_roundoff(floatx))


def _finite_abs(r):
    r = np.asarray(r, dtype="float64")
    return np.abs(np.where(np.isfinite(r), r, 0.0))


def _largest_only(refs, floatx):
    """Masks of the elements the wrong answers change: the largest ones (>= max / 2),
    if they are not near zero and not near floatx's overflow. The others stay exact, so
    the verdict is decided where the reference is clearly not zero."""
    sizes = [_finite_abs(r) for r in refs]
    big = max((float(a.max()) for a in sizes if a.size), default=0.0)
    lo = max(big / 2, _nonzero_threshold(floatx))
    hi = float(np.finfo(floatx).max) / 2
    return [(a >= lo) & (a < hi) for a in sizes]


def _clearly_nonzero(refs, floatx):
    return any(m.any() for m in _largest_only(refs, floatx))


def _wrong_answers(op, example, refs, floatx):
    """[(label, outputs)] that the op's tolerance must reject."""
    cls = type(op.tolerance).__name__
    if cls == "Sampled":
        shape = refs[0].shape
        if op.name == "random_shuffle":
            x = example["x"]
            if np.all(x == x.flat[0]):
                return []
        return [("zeros", [np.zeros(shape)]), ("constant 1", [np.ones(shape)])]
    if cls == "BackwardError":
        answers = [("zeros", [np.zeros_like(r) for r in refs])]
        if op.name not in SIGN_FREE:
            answers.append(("-ref", [-r for r in refs]))
        return answers
    if not _clearly_nonzero(refs, floatx):
        return []
    if cls == "DropoutTolerance":
        return [("zeros", [np.zeros_like(refs[0])]), ("-ref", [-refs[0]])]
    masks = _largest_only(refs, floatx)
    zeros = [np.where(m, 0.0, r) for m, r in zip(masks, refs)]
    # bool references (comparisons, signbit) are judged as 0/1 numbers: -1 is wrong too
    flipped = [np.where(m, -np.asarray(r, "float64"), r) for m, r in zip(masks, refs)]
    return [("zeros", zeros), ("-ref", flipped)]


@pytest.mark.parametrize("op, floatx", _cases())
def test_class_rejects_zeros_and_a_flipped_sign(op, floatx):
    checked = []

    @settings(max_examples=EXAMPLES, derandomize=True, database=None, deadline=None,
              suppress_health_check=list(HealthCheck))
    @given(st.data())
    def check(data):
        example = data.draw(op.inputs(floatx), label="example")
        refs = op.references(example, Context(floatx))
        if type(op.tolerance).__name__ == "BackwardError" and not _clearly_nonzero(refs, floatx):
            return
        for label, outputs in _wrong_answers(op, example, refs, floatx):
            verdict = _judge(op, example, floatx, outputs, refs)
            assert verdict.status != "pass", (
                f"{type(op.tolerance).__name__} accepts {label} for {op.name} {floatx}: "
                f"reference {[np.ravel(r)[:6] for r in refs]}, example {example}")
            checked.append(label)

    check()
    # the test must have judged something: every class gets clearly non-zero references
    # from its op's strategy
    assert checked, f"no example of {op.name} {floatx} had a non-zero reference"


def test_every_catalog_class_is_covered():
    covered = {case.values[0].tolerance.__class__ for case in _cases()}
    assert covered == set(_ops_by_class())


# -- the L2 normalization interval, on hand-made inputs ---------------------------------
def _l2(name, x, floatx, epsilon=1e-7):
    op = next(o for o in all_ops() if o.name == name)
    example = {"x": np.asarray(x, floatx), "axis": 0}
    ref = op.references(example, Context(floatx, epsilon))[0]
    return op, example, ref


def _status(op, example, out, ref, floatx):
    return _judge(op, example, floatx, [np.asarray(out, "float64")], [ref]).status


@pytest.mark.parametrize("name", ["normalize", "l2_normalize"])
@pytest.mark.parametrize("floatx, x", [("float32", [3e-4, 4e-4]), ("float32", [3.0, -4.0]),
                                       ("float16", [3e-3, 4e-3]), ("float64", [3e-300, 4e-300]),
                                       ("float32", [1e-20, -2e-20]), ("float32", [3e-8, 4e-8])])
def test_l2_interval_rejects_zeros_sign_and_allows_rounding(name, floatx, x):
    op, example, ref = _l2(name, x, floatx)
    assert _status(op, example, ref, ref, floatx) == "pass"
    rounded = ref * (1 + 2 * tolerance.unit_roundoff(floatx))
    assert _status(op, example, rounded, ref, floatx) == "pass"
    for wrong in (np.zeros_like(ref), -ref, ref * [1, -1]):
        assert _status(op, example, wrong, ref, floatx) == "fail"


@pytest.mark.parametrize("floatx, x", [("float32", [3e-4, 4e-4]), ("float32", [3.0, 4.0]),
                                       ("float16", [3e-3, 4e-3]), ("float32", [3e-8, 4e-8]),
                                       ("float64", [3e-300, 4e-300])])
def test_normalize_has_one_epsilon_so_twice_or_the_unit_vector_fail(floatx, x):
    # Keras 3 documents x / max(||x||, epsilon): no other placement is legitimate, so
    # 2x fails everywhere and the unclamped unit vector fails where the clamp acts
    op, example, ref = _l2("normalize", x, floatx)
    assert _status(op, example, 2 * ref, ref, floatx) == "fail"
    norm = np.sqrt(np.sum((np.asarray(x) / max(x)) ** 2)) * max(x)
    clamped = norm < 1e-7
    assert _status(op, example, np.asarray(x) / norm, ref, floatx) == (
        "fail" if clamped else "pass")


def test_l2_normalize_accepts_every_keras2_epsilon_and_nothing_beyond():
    # ||x|| = 5e-8: Theano clamps sum x^2 at epsilon (the reference, x / 3.16e-4),
    # TensorFlow at 1e-12 (x / 1e-6), CNTK not at all (x / 5e-8, the unit vector)
    op, example, ref = _l2("l2_normalize", [3e-8, 4e-8], "float32")
    x = np.array([3e-8, 4e-8])
    for denominator in (np.sqrt(1e-7), 1e-6, 5e-8):
        assert _status(op, example, x / denominator, ref, "float32") == "pass"
    assert _status(op, example, x / 2.5e-8, ref, "float32") == "fail"  # beyond the unit
    assert _status(op, example, x / np.sqrt(1e-6), ref, "float32") == "fail"  # eps too big
    # where sum x^2 >= epsilon every definition agrees: 2x fails
    op, example, ref = _l2("l2_normalize", [3e-3, 4e-3], "float32")
    assert _status(op, example, 2 * ref, ref, "float32") == "fail"


def test_l2_interval_reads_epsilon_back_from_the_reference():
    # a target with epsilon 1e-3: the clamp at 1e-3 passes, the default's fails
    op, example, ref = _l2("normalize", [3e-5, 4e-5], "float32", epsilon=1e-3)
    x = np.array([3e-5, 4e-5])
    assert _status(op, example, x / 1e-3, ref, "float32") == "pass"
    assert _status(op, example, x / 1e-7, ref, "float32") == "fail"
