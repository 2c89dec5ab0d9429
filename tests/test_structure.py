"""Structural covering sets: every pair of structural values is drawn in every case."""
import itertools

from conformance import catalog, structure
from conformance.engine import Engine, RunSettings


def op(name):
    return next(o for o in catalog.all_ops() if o.name == name)


def test_rows_pair_every_two_values():
    dims = {"rank": (1, 2, 3), "axis": ("none", "first", "neg_first", "multi"),
            "keepdims": (False, True)}
    rows = structure.rows(dims)
    for (a, values_a), (b, values_b) in itertools.combinations(dims.items(), 2):
        pairs = {(row[a], row[b]) for row in rows}
        assert pairs == set(itertools.product(values_a, values_b)), (a, b)
    assert len(rows) < 3 * 4 * 2  # pairwise, not the full product
    assert structure.rows(None) == [] and structure.rows({"axis": (0, 1)}) == [
        {"axis": 0}, {"axis": 1}]


def test_symbolic_axes_resolve_against_the_rank():
    resolve = structure.resolve_axis
    assert [resolve(s, 3, multi=True) for s in ("none", "first", "last", "neg_first",
                                                 "neg_last", "multi")] == [
        None, 0, 2, -3, -1, [0, 2]]
    assert resolve("multi", 1, multi=True) is structure.UNFIT
    assert resolve("none", 2, allow_none=False) is structure.UNFIT
    assert resolve("neg_last", 2, negative=False) is structure.UNFIT


def draw(name, seed=777, examples=5):
    return Engine(None, RunSettings(seed=seed, max_examples=examples, shrink_calls=0)) \
        ._draw_examples(op(name), "float32")


def test_a_reduction_case_holds_every_structural_row():
    examples, rows = draw("sum")
    pinned = [(e, r) for e, r in zip(examples, rows) if r]
    assert len(pinned) == len(structure.rows(op("sum").structure))
    assert len(examples) == len(pinned) + 5
    for example, row in pinned:
        assert example["x"].ndim == row["rank"]
        assert example["keepdims"] is row["keepdims"]
        expected = structure.resolve_axis(row["axis"], row["rank"], multi=row["rank"] >= 2)
        if expected is not structure.UNFIT:
            assert example["axis"] == expected, row
    combos = {(e["axis"] is None, e["keepdims"]) for e, _ in pinned}
    assert (True, True) in combos  # axis=None with keepdims=True: rarely drawn at random
    assert any(e["axis"] == -e["x"].ndim for e, _ in pinned)


def test_free_draws_do_not_change_and_ops_without_structure_are_untouched():
    first, second = draw("sum"), draw("sum")
    assert [repr(e) for e in first[0]] == [repr(e) for e in second[0]]
    examples, rows = draw("exp")
    assert len(examples) == 5 and not any(rows)


def test_a_fixed_row_pins_every_draw_and_nothing_outside_it():
    strategy = op("sum").inputs("float32")
    row = {"rank": 2, "axis": "neg_first", "keepdims": True}
    from hypothesis import given, settings

    seen = []

    @settings(max_examples=10, database=None, deadline=None)
    @given(strategy)
    def collect(example):
        seen.append(example)

    with structure.fixed(row):
        collect()
    assert seen and all(e["x"].ndim == 2 and e["axis"] == -2 and e["keepdims"] for e in seen)
    assert structure.current() == {}


def pinned_examples(name, **kwargs):
    examples, rows = draw(name, **kwargs)
    pinned = [(e, r) for e, r in zip(examples, rows) if r]
    assert len(pinned) == len(structure.rows(op(name).structure))
    return pinned


def test_structure_wrappers_draw_exactly_as_their_strategy_outside_a_row():
    from hypothesis import strategies as st

    from conformance import strategies as S
    from conformance.engine import _draw

    for strategy in (st.integers(-3, 3), st.sampled_from([1, 2, 3, 4, 5, 8]),
                     st.none() | st.integers(-2, 1), st.permutations(range(3)),
                     st.booleans()):
        plain = _draw(strategy, 20, 5)
        for wrapped in (structure.pinned("axis", strategy, lambda v: v),
                        structure.narrowed("side", strategy, lambda v: st.just(v)),
                        structure.renamed(lambda: strategy, rank="index_rank")):
            assert _draw(wrapped, 20, 5) == plain
        with structure.fixed({"other": 1}):  # a row that pins none of them changes nothing
            assert _draw(structure.pinned("axis", strategy), 20, 5) == plain
    assert _draw(st.tuples(st.integers(0, 9), structure.pinned("mode", st.just("constant"))),
                 10, 5) == [(x, "constant") for x in _draw(st.integers(0, 9), 10, 5)]


import pytest  # noqa: E402 (appended section)


def test_pinned_around_a_pinned_strategy_draws_as_it_outside_a_row():
    from conformance import strategies as S
    from conformance.engine import _draw

    strategy = S.shapes(0, 3)
    assert _draw(structure.pinned("axis", strategy), 20, 5) == _draw(strategy, 20, 5)


def test_a_shape_case_holds_every_structural_row():
    resolve = structure.resolve_axis
    for name, stack in (("concatenate", False), ("stack", True)):
        for example, row in pinned_examples(name):
            parts = [k for k in example if k.startswith("x")]
            assert example["x1"].ndim == row["rank"] and len(parts) == row["inputs"]
            assert example["axis"] == resolve(row["axis"], row["rank"] + stack), row
    axes = {e["axis"] for e, _ in pinned_examples("stack")}
    assert {-2, -3, -4} & axes  # neg_first of the output's rank
    for example, row in pinned_examples("expand_dims"):
        assert example["x"].ndim == row["rank"]
        assert example["axis"] == resolve(row["axis"], row["rank"] + 1)
    for example, row in pinned_examples("take"):
        assert example["x"].ndim == row["rank"] and example["indices"].ndim == row["index_rank"]
        assert example["axis"] == resolve(row["axis"], row["rank"])
    for example, row in pinned_examples("transpose"):
        n = example["x"].ndim
        assert n == row["rank"]
        assert example["axes"] == {"none": None, "identity": list(range(n)),
                                   "rotate": list(range(1, n)) + [0]}[row["axes"]]
    for example, row in pinned_examples("pad"):
        mode = example.get("mode", "constant")
        assert mode == row["mode"] and example["x"].ndim == row["rank"]
        limit = {"constant": 3, "reflect": -1, "symmetric": 0}[mode]
        if mode != "constant":
            assert example["constant_values"] is None
            assert all(w <= side + limit for pair, side in zip(example["pad_width"], example["x"].shape)
                       for w in pair)
    flips = {repr(e["axis"]) for e, _ in pinned_examples("flip")}
    assert "None" in flips and "[0, 2]" in flips
    formats = [e.get("data_format", "channels_last") for e, _ in pinned_examples("spatial_2d_padding")]
    assert formats == ["channels_last", "channels_first"]


def test_an_nn_case_holds_every_structural_row():
    import numpy as np

    from conformance.catalog import Context, nn

    strides = {"unit": (1, 1, 1), "stride_2": (2, 2, 2), "stride_3": (3, 3, 3),
               "stride_unequal": (2, 1, 3), "dilation_2": (1, 1, 1)}
    seen = set()
    for name, key in (("conv1d", "kernel"), ("conv2d", "kernel"), ("depthwise_conv2d", None),
                      ("conv_transpose2d", "kernel"), ("max_pool2d", None),
                      ("average_pool1d", None)):
        for example, row in pinned_examples(name):
            rank = example["x"].ndim - 2
            data_format = example.get("data_format", "channels_last")
            window = (example["pool_size"] if "pool_size" in example else
                      example[key or "depthwise_kernel"].shape[:rank])
            sides = example["x"].shape[2:] if data_format == "channels_first" else \
                example["x"].shape[1:-1]
            assert data_format == row["data_format"] and example["padding"] == row["padding"]
            assert tuple(example["strides"]) == strides[row["stepping"]][:rank], row
            assert example.get("dilation_rate", [1] * rank) == \
                [2 if row["stepping"] == "dilation_2" else 1] * rank
            assert all(k % 2 == (row["kernel"] == "odd") for k in window), row
            assert all(n % 2 == (row["side"] == "odd") for n in sides), row
            seen.add((row["padding"], row["kernel"], data_format))
            if data_format == "channels_first":  # the reference is the channels_last one, moved
                last = dict(example, x=np.moveaxis(example["x"], 1, -1), data_format=None)
                del last["data_format"]
                ctx = Context("float32")
                moved = [np.moveaxis(r, -1, 1) for r in op(name).references(last, ctx)]
                assert all(np.array_equal(a, b) for a, b in
                           zip(op(name).references(example, ctx), moved))
    assert ("same", "even", "channels_first") in seen  # asymmetric "same" padding
    assert nn.conv_ref is not None
    for example, row in pinned_examples("moments"):
        n = example["x"].ndim
        assert n == row["rank"] and example["keepdims"] is row["keepdims"]
        assert example["axes"] == {"first": [0], "last": [n - 1], "all": list(range(n))}[row["axes"]]
    for example, row in pinned_examples("batch_normalization_axis"):
        assert example["axis"] == structure.resolve_axis(row["axis"], row["rank"], negative=False)


def test_an_activation_case_holds_every_structural_row():
    for name in ("softmax", "glu"):
        for example, row in pinned_examples(name):
            assert example["x"].ndim == row["rank"]
            assert example["axis"] == structure.resolve_axis(row["axis"], row["rank"])
