"""The tolerance model and verdicts on hand-made outputs (no backend needed)."""
import numpy as np
import pytest

from conformance import compare, tolerance
from conformance.compare import compare as judge


def verdict(out, ref, tol=None, floatx="float32", expected=None):
    out, ref = np.asarray(out), np.asarray(ref, dtype="float64")
    return judge([out], [ref], tol or tolerance.Elementwise(4), {}, floatx,
                 [expected or floatx])


def test_within_a_few_ulps_passes_and_beyond_fails():
    ref = np.array([1.0, 2.0, 3.0])
    close = (ref + 2 * np.spacing(np.float32(ref))).astype("float32")
    far = (ref + 50 * np.spacing(np.float32(ref))).astype("float32")
    assert verdict(close, ref).status == "pass"
    result = verdict(far, ref)
    assert result.status == "fail" and result.worst_ratio > 1
    assert result.max_ulp == pytest.approx(50, rel=0.05)


def test_flush_to_zero_of_subnormal_results_passes():
    # softplus(-100) in float32: 0 on TensorFlow, 3.8e-44 elsewhere
    ref = np.log1p(np.exp(-100.0))
    assert verdict(np.float32(0), ref).status == "pass"
    assert verdict(np.float32(3.8e-44), ref).status == "pass"


def test_nan_and_inf_patterns_must_match():
    assert verdict(np.array([np.nan, 1], "float32"), [np.nan, 1]).status == "pass"
    assert verdict(np.array([0, 1], "float32"), [np.nan, 1]).status == "nan"
    assert verdict(np.array([np.inf, 1], "float32"), [1.0, 1]).status == "nan"
    assert verdict(np.array([-np.inf], "float32"), [np.inf]).status == "nan"


def test_overflow_of_floatx_expects_inf():
    ref = [1e39]  # finite in float64, inf in float32
    assert verdict(np.array([np.inf], "float32"), ref).status == "pass"
    assert verdict(np.array([3.4e38], "float32"), ref).status == "pass"  # at the threshold


def test_signed_zero_is_ignored_and_exact_ops_allow_nothing():
    assert verdict(np.array([-0.0], "float32"), [0.0], tolerance.Exact()).status == "pass"
    one_ulp = np.nextafter(np.float32(1), np.float32(2))
    assert verdict(np.array([one_ulp]), [1.0], tolerance.Exact()).status == "fail"


def test_dtype_and_shape_verdicts():
    assert verdict(np.zeros(3, "float32"), np.zeros(3), floatx="float64").status == "dtype"
    assert verdict(np.zeros(2, "float32"), np.zeros(3)).status == "shape"
    assert verdict(np.zeros(3, "int64"), np.zeros(3), tolerance.Exact(), expected="int").status == "pass"
    assert verdict(np.zeros(3, "float32"), np.zeros(3), tolerance.Exact(), expected="int").status == "dtype"


def test_reduction_bound_scales_with_length_and_magnitude():
    tol = tolerance.Reduction(lambda ex, i: (ex["n"], ex["s"]))
    small = tol.allowed({"n": 4, "s": np.array(1.0)}, np.array(1.0), "float32", 0)
    large = tol.allowed({"n": 400, "s": np.array(1.0)}, np.array(1.0), "float32", 0)
    assert large > small > 0


def test_aggregate_keeps_the_most_severe_verdict():
    aggregate = compare.Aggregate()
    for status in ["pass", "fail", "pass", "nan", "unsupported"]:
        aggregate.add(compare.Verdict(status, message=status))
    assert aggregate.status == "nan" and aggregate.examples == 5
    assert aggregate.counts == {"pass": 2, "fail": 1, "nan": 1, "unsupported": 1}


def test_infinite_reference_must_come_back_infinite():
    assert verdict(np.array([100.0], "float32"), [np.inf]).status == "nan"
    assert verdict(np.array([np.inf], "float32"), [np.inf]).status == "pass"


def test_allowed_errors_are_computed_once_per_reference():
    """Every target judged against one reference shares its allowed errors (a memo per
    example); the verdicts are those computed without it."""
    class Counting(tolerance.Rounded):
        calls = 0

        def allowed(self, example, ref, floatx, index):
            Counting.calls += 1
            return super().allowed(example, ref, floatx, index)

    ref = np.array([1.0, 2.0, 3.0])
    outputs = [np.array([1, 2, 3], "float32"), np.array([1, 2.001, 3], "float32"),
               np.array([np.nan, 2, 3], "float32")]
    alone = [judge([out], [ref], Counting(), {}, "float32", ["float32"]) for out in outputs]
    assert Counting.calls == 3
    memo = {}
    shared = [judge([out], [ref], Counting(), {}, "float32", ["float32"], memo=memo)
              for out in outputs]
    assert Counting.calls == 4
    assert shared == alone
    assert [v.status for v in shared] == ["pass", "fail", "nan"]


# -- loss references: one rule for floatx (conformance/catalog/losses.py docstring) -------
def _loss_op(name):
    from conformance.catalog import all_ops
    return next(op for op in all_ops() if op.name == name)


def test_loss_references_overflow_where_the_formula_does_in_floatx():
    # kl_divergence: t / p = 1 / epsilon after the clip, 8.4e6: beyond float16's 65504,
    # so the float16 loss is inf (as every float16 backend computes it); finite in float32
    from conformance.catalog import Context
    op = _loss_op("kl_divergence")
    for floatx, finite in (("float16", False), ("float32", True)):
        example = {"y_true": np.array([[1.0, 0.0]], floatx), "y_pred": np.array([[0.0, 1.0]], floatx)}
        ref = op.references(example, Context(floatx))[0]
        assert np.isfinite(ref).all() == finite
    # below the threshold the float16 reference keeps float64 values
    example = {"y_true": np.array([[0.5, 0.5]], "float16"), "y_pred": np.array([[0.25, 0.75]], "float16")}
    ref = op.references(example, Context("float16"))[0]
    np.testing.assert_allclose(ref, 0.5 * np.log(2) + 0.5 * np.log(0.5 / 0.75))
    # the crossentropies' float16 rule (1): 1 - epsilon is 1 in float16, log(0) at p = 1
    bce = _loss_op("binary_crossentropy")
    ref = bce.references({"target": np.array([0.0], "float16"), "output": np.array([1.0], "float16")},
                         Context("float16"))[0]
    assert np.isinf(ref).all()


def test_sparse_crossentropy_probabilities_are_distributions():
    from hypothesis import given, settings, strategies as st
    op = _loss_op("sparse_categorical_crossentropy")
    for floatx in op.floatx:
        @settings(max_examples=40, derandomize=True, database=None, deadline=None)
        @given(st.data())
        def check(data):
            output = data.draw(op.inputs(floatx)).get("output").astype("float64")
            assert (output >= 0).all()
            # rounded to floatx (and subnormals flushed): sums within n u of 1
            n = output.shape[-1]
            np.testing.assert_allclose(output.sum(axis=-1), 1.0,
                                       atol=(n + 1) * tolerance.unit_roundoff(floatx))
        check()
