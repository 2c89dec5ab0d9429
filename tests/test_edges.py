"""Edge cases (conformance.catalog.edges, conformance.specials): elementwise ops fed
special values are judged against NumPy's IEEE results, NaN and +-inf positions
exactly, and what each target returns at each special input is recorded."""
import numpy as np
import pytest

from conformance import catalog, compare, specials, structure
from conformance.catalog import Context, edges, elementwise, reductions
from conformance.engine import _draw
from conftest import check_ops, fake_target

PLANTED = ["maximum", "exp", "sqrt", "sign", "divide", "max"]
CORRECT_EVERYWHERE = ["minimum", "log", "sum"]
CHECKED = PLANTED + [f"edge_{name}" for name in PLANTED + CORRECT_EVERYWHERE]


def test_points_either_side_of_a_threshold_are_neighbours_in_floatx():
    for floatx in ("float16", "float32", "float64"):
        threshold = float(np.log(float(np.finfo(floatx).max)))
        below, above = specials.around("overflow", threshold, floatx).values()
        assert below < threshold < above
        assert float(specials.step(np.asarray(below, floatx), +1)) in (above, threshold)
        assert np.isfinite(np.exp(np.asarray(below, floatx)))
        with np.errstate(over="ignore"):
            assert np.isinf(np.exp(np.asarray(above, floatx)))


def test_elements_are_named_by_their_point_and_signed_zeros_are_told_apart():
    points = specials.common("float32")
    x = np.array([np.nan, -0.0, 0.0, 3.0, -np.inf, np.finfo("float32").max], "float32")
    assert specials.names_of(x, points).tolist() == ["nan", "-0", "+0", "finite", "-inf", "+max"]


def test_a_binary_special_is_labelled_by_both_inputs_and_shown_exactly_only_without_ordinary_ones():
    x1 = np.array([np.inf, np.inf, 2.0, 2.0], "float32")
    x2 = np.array([np.inf, 1.5, 0.0, 3.0], "float32")
    found = {s.label: (s.mask.tolist(), s.exact) for s in specials.elementwise(
        {"x1": x1, "x2": x2}, ("x1", "x2"), specials.common("float32"))}
    assert found == {"x1 = +inf, x2 = +inf": ([True, False, False, False], True),
                     "x1 = +inf, x2 = finite": ([False, True, False, False], False),
                     "x1 = finite, x2 = +0": ([False, False, True, False], False)}


def test_observed_values_count_flushed_results_as_zero_and_ordinary_ones_as_finite():
    x1 = np.array([np.inf, 1e-38, 2.0], "float32")
    x2 = np.array([np.inf, 0.0, 3.0], "float32")
    found = specials.elementwise({"x1": x1, "x2": x2}, ("x1", "x2"), specials.common("float32"))
    out = np.array([np.nan, 0.0, 5.0], "float32")
    ref = np.array([np.inf, 1e-38, 5.0])
    seen = specials.observe([out], [ref], found, "float32")
    assert seen["x1 = +inf, x2 = +inf"] == {"reference": {"+inf"}, "values": {"nan"}}
    assert seen["x1 = finite, x2 = +0"] == {"reference": {"0"}, "values": {"0"}}
    merged = {}
    specials.merge(merged, seen)
    specials.merge(merged, {"x1 = +inf, x2 = +inf": {"reference": {"+inf"}, "values": {"+inf"}}})
    assert merged["x1 = +inf, x2 = +inf"] == {"reference": ["+inf"], "values": ["+inf", "nan"]}


def test_every_elementwise_and_reduction_op_has_an_edge_case_or_a_reason():
    names = {op.name for op in catalog.all_ops()}
    for op in elementwise.OPS + reductions.OPS:
        assert f"edge_{op.name}" in names or op.name in edges.WITHOUT_EDGES, op.name
        assert edges.coverage(op).strip()


@pytest.mark.parametrize("name", ["edge_exp", "edge_arcsin", "edge_power", "edge_divide",
                                  "edge_floor_divide", "edge_round"])
def test_drawn_examples_mix_points_into_ordinary_inputs_and_pair_them(name):
    op = next(o for o in catalog.all_ops() if o.name == name)
    examples = _draw(op.inputs("float32"), 30, 3)
    labels = {s.label for ex in examples for s in op.specials(ex)}
    assert sum(bool(op.specials(ex)) for ex in examples) >= 20
    mixed = [ex for ex in examples if op.specials(ex) and
             sum(int(s.mask.sum()) for s in op.specials(ex)) < s_size(ex)]
    assert mixed, "no example mixes points with ordinary values"
    if "x1" in examples[0]:
        assert any(f"x1 = {p}, x2 = {p}" in labels for p in specials.common("float32")), \
            "the same point never paired"


def s_size(example):
    return next(v for v in example.values() if isinstance(v, np.ndarray)).size


@pytest.mark.parametrize("name", ["edge_exp", "edge_power", "edge_max", "edge_cumsum"])
def test_the_grid_example_holds_every_point_or_every_pair(name):
    op = next(o for o in catalog.all_ops() if o.name == name)
    points = edges.points_for(name[len("edge_"):], "float32", name == "edge_power")
    (row,) = structure.rows(op.structure)
    with structure.fixed(row):
        (grid,) = _draw(op.inputs("float32"), 1, 0)
    labels = {s.label for s in op.specials(grid)}
    n = len(points)
    expected = {"edge_exp": (n, "x = overflow+"), "edge_power": (n * n, "x1 = +inf, x2 = -inf"),
                "edge_max": (n * (n + 1) // 2, "x holds nan, +inf"),  # unordered pairs
                "edge_cumsum": (n * (n + 1) // 2, "x holds +inf, -inf")}[name]
    assert (len(labels), expected[1] in labels) == (expected[0], True)


def test_a_reduction_labels_each_output_by_the_points_its_slice_holds():
    x = np.array([[np.nan, 1.0, 2.0], [np.inf, -np.inf, 3.0], [1.0, 2.0, 3.0]], "float32")
    points = specials.common("float32")
    by_row = {s.label: s.mask.tolist() for s in specials.reduced({"x": x, "axis": 1}, points)}
    assert by_row == {"x holds nan": [True, False, False],
                      "x holds +inf, -inf": [False, True, False]}
    prefix = {s.label: s.mask.astype(int).tolist()
              for s in specials.reduced({"x": x, "axis": 1}, points, prefix=True)}
    assert prefix["x holds +inf"] == [[0, 0, 0], [1, 0, 0], [0, 0, 0]]
    assert prefix["x holds +inf, -inf"] == [[0, 0, 0], [0, 1, 1], [0, 0, 0]]


def test_a_wrong_nan_or_inf_fails_and_an_overflow_is_expected_as_inf():
    op = next(o for o in catalog.all_ops() if o.name == "edge_exp")
    big = np.finfo("float32").max
    example = {"x": np.array([np.nan, 100.0, 1.0], "float32")}
    refs = op.references(example, Context("float32"))

    def verdict(values):
        return compare.judge(op, "t", "float32", example,
                             {"status": "ok", "outputs": [np.array(values, "float32")]}, refs)
    assert verdict([np.nan, np.inf, np.e]).status == "pass"
    saturated = verdict([np.nan, big, np.e])
    assert saturated.status == "nan"
    assert saturated.specials["x = nan"] == {"reference": {"nan"}, "values": {"nan"}}
    assert verdict([0.0, np.inf, np.e]).status == "nan"


@pytest.fixture(scope="module")
def verdicts(tmp_path_factory):
    return check_ops([fake_target(module="edges_numpy", target_id="correct"),
                      fake_target(module="edges_planted", target_id="planted")],
                     CHECKED, tmp_path_factory.mktemp("edges"), seed=11, examples=25)


def test_defects_at_special_values_are_flagged_on_exactly_the_edge_cases(verdicts):
    planted = {op for (op, t), r in verdicts.items()
               if t == "planted" and r["status"] in compare.DIVERGENT}
    assert planted == {f"edge_{name}" for name in PLANTED}
    assert verdicts[("edge_maximum", "planted")]["verdict"] == "nan"


def test_the_correct_twin_passes_everything_and_the_table_shows_the_difference(verdicts):
    assert {op: r["status"] for (op, t), r in verdicts.items()
            if t == "correct" and r["status"] != "pass"} == {}
    planted = verdicts[("edge_sqrt", "planted")]["specials"]["x = -1"]
    correct = verdicts[("edge_sqrt", "correct")]["specials"]["x = -1"]
    assert (planted["values"], correct["values"], correct["reference"]) == (["0"], ["nan"], ["nan"])


def test_an_overflow_numpy_has_in_floatx_is_excused_and_no_other():
    """std of [-max, 0] in float32 is 1.7e38, but its squares overflow: NumPy in float32
    gives inf. A target giving inf is excused; one giving NaN or a wrong number is not."""
    op = next(o for o in catalog.all_ops() if o.name == "edge_std")
    big = float(np.finfo("float32").max)
    example = {"x": np.array([[-big, 0.0], [1.0, 3.0]], "float32"), "axis": -1,
               "keepdims": False}
    refs = op.references(example, Context("float32"))
    assert np.isfinite(refs[0]).all() and np.isinf(op.floatx_reference(example)[0][0])

    def verdict(values):
        return compare.judge(op, "t", "float32", example,
                             {"status": "ok", "outputs": [np.array(values, "float32")]},
                             refs).status
    assert verdict([big / 2, 1.0]) == "pass"
    assert verdict([np.inf, 1.0]) == "pass"  # as NumPy in float32
    assert verdict([np.nan, 1.0]) == "nan"
    assert verdict([np.inf, np.inf]) == "nan"  # the second row does not overflow anywhere
