"""Gradients at non-differentiable points (conformance.kinks): a gradient there is
judged as a subgradient; another backend's choice is the verdict `convention`, which
does not fail; NaN, inf, a value outside the subgradients or tied gradients that do
not add up to the cotangent fail."""
import numpy as np
import pytest

from conformance import catalog, compare, kinks
from conformance.catalog import Context
from conformance.engine import _draw
from conftest import check_ops, fake_target

PIECEWISE = ["grad_relu", "grad_abs", "grad_maximum", "grad_minimum", "grad_clip", "grad_floor"]


def _relu_kink(ct):
    x = np.array([0.0, 1.0, 0.0, -2.0])
    return kinks.Kink("at x = 0", 0, x == 0, np.asarray(ct, "float64"), 0, 1, 0.0)


@pytest.mark.parametrize("at_zero, status", [
    (0.0, "pass"), (1.0, "convention"), (0.5, "convention"), (1.5, "fail"), (-0.25, "fail"),
    (np.nan, "nan"), (np.inf, "nan")])
def test_a_kink_value_is_judged_as_a_subgradient(at_zero, status):
    ct = np.array([2.0, 1.0, -3.0, 1.0])
    gradient = np.array([at_zero * 2.0, 1.0, at_zero * -3.0, 0.0], "float32")
    finding = kinks.judge([gradient], [_relu_kink(ct)], "float32")
    assert finding.status == status, finding.message
    if status in ("pass", "convention"):
        assert finding.conventions["at x = 0"] == {"reference": 0.0, "values": {at_zero}}


def test_tied_gradients_must_add_up_to_the_cotangent():
    ct = np.array([1.5, -2.0])
    tie = np.array([True, True])
    ties = [kinks.Kink("d/dx1", 0, tie, ct, 0, 1, 0.5, pair=1),
            kinks.Kink("d/dx2", 1, tie, ct, 0, 1, 0.5, pair=0)]
    judged = {split: kinks.judge([split[0] * ct, split[1] * ct], ties, "float64").status
              for split in [(0.5, 0.5), (1.0, 0.0), (0.25, 0.75), (1.0, 1.0), (0.0, 0.0)]}
    assert judged == {(0.5, 0.5): "pass", (1.0, 0.0): "convention", (0.25, 0.75): "convention",
                      (1.0, 1.0): "fail", (0.0, 0.0): "fail"}


def test_compare_leaves_kinks_out_of_the_ordinary_comparison():
    """A convention at a kink does not count as a numeric error elsewhere."""
    op = next(o for o in catalog.all_ops() if o.name == "grad_relu")
    example = {"x": np.array([0.0, 3.0, -1.0], "float32"), "ct": np.array([2.0, 1.0, 1.0], "float32")}
    refs = op.references(example, Context("float32"))
    verdict = compare.judge(op, "t", "float32", example,
                            {"status": "ok", "outputs": [np.array([2.0, 1.0, 0.0], "float32")]}, refs)
    assert (verdict.status, verdict.worst_ratio) == ("convention", 0.0)
    assert verdict.conventions == {"at x = 0": {"reference": 0.0, "values": {1.0}}}


@pytest.mark.parametrize("name", PIECEWISE + ["grad_round"])
def test_examples_land_on_the_kinks(name):
    op = next(o for o in catalog.all_ops() if o.name == name)
    examples = _draw(op.inputs("float32"), 30, 3)
    on_kinks = sum(bool(k.mask.any()) for ex in examples for k in op.kinks(ex))
    assert on_kinks >= 10, f"{name}: only {on_kinks} of 30 examples reach a kink"


@pytest.fixture(scope="module")
def verdicts(tmp_path_factory):
    return check_ops([fake_target(module="kinks_numpy", target_id="correct"),
                      fake_target(module="kinks_planted", target_id="planted")],
                     PIECEWISE, tmp_path_factory.mktemp("kinks"), seed=5, examples=25)


def test_planted_kink_defects_are_flagged_and_a_convention_is_not(verdicts):
    planted = {op: r["status"] for (op, t), r in verdicts.items() if t == "planted"}
    assert {op for op, s in planted.items() if s in compare.DIVERGENT} == {
        "grad_abs", "grad_maximum", "grad_clip"}
    assert planted["grad_abs"] == "nan"
    assert planted["grad_relu"] == "convention"
    assert verdicts[("grad_relu", "planted")]["conventions"]["at x = 0"]["values"] == [1.0]


def test_the_correct_twin_passes_and_records_its_conventions(verdicts):
    correct = {op: r for (op, t), r in verdicts.items() if t == "correct"}
    assert {r["status"] for r in correct.values()} == {"pass"}
    assert correct["grad_maximum"]["conventions"]["d/dx1 at x1 = x2"] == {
        "reference": 0.5, "values": [0.5]}


def test_a_tiny_cotangent_tells_no_convention():
    """0.5 ct flushed to zero for a cotangent near the smallest normal is within the
    slack, and is not recorded as a convention of 0."""
    ct = np.array([1e-38, 2.0])
    kink = kinks.Kink("at x = 0", 0, np.array([True, True]), ct, 0, 1, 0.5)
    finding = kinks.judge([np.array([0.0, 1.0], "float32")], [kink], "float32")
    assert finding.status == "pass"
    assert finding.conventions["at x = 0"]["values"] == {0.5}
