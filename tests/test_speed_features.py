"""What makes runs fast must not change what they find: shapes from the menu are valid
and reused, pipelined calls give the lock-step verdicts, planted defects still show."""
import json

import numpy as np
import pytest
from hypothesis import given, settings

from conformance import catalog, compare, strategies as S
from conformance.engine import Engine, RunSettings
from conformance.pool import Pool
from conftest import fake_target

MENU = {shape for shapes in S.SHAPE_MENU.values() for shape in shapes}


def drawn(strategy, count=200):
    found = []

    @settings(max_examples=count, database=None)
    @given(strategy)
    def collect(value):
        found.append(value)

    collect()
    return found


@pytest.fixture
def reuse(request):
    S.reuse_shapes(request.param)
    yield request.param
    S.reuse_shapes(True)


@pytest.mark.parametrize("reuse", [True], indirect=True)
def test_menu_shapes_only_and_within_bounds(reuse):
    shapes = drawn(S.shapes(0, 3, max_side=4))
    assert set(shapes) <= MENU
    assert all(max(s, default=1) <= 4 for s in shapes)
    assert len(set(shapes)) <= sum(len(S.SHAPE_MENU[r]) for r in range(4))


@pytest.mark.parametrize("reuse", [True], indirect=True)
def test_menu_broadcast_shapes_broadcast(reuse):
    for shape1, shape2 in drawn(S.broadcast_shapes(2)):
        np.broadcast_shapes(shape1, shape2)  # raises when they do not


@pytest.mark.parametrize("reuse", [False], indirect=True)
def test_reuse_off_builds_shapes_axis_by_axis(reuse):
    shapes = set(drawn(S.shapes(0, 3, max_side=4)))
    assert shapes - MENU, "the thorough profile must draw shapes outside the menu"


def test_pipelined_calls_give_the_lock_step_records(tmp_path):
    """Two defective targets (the same plugin twice): each gets its own counterexample."""
    targets = [fake_target(module="numpy_ops", target_id="correct"),
               fake_target(module="planted_defects", target_id="planted"),
               fake_target(module="planted_defects", target_id="planted-twin")]
    ops = [op for op in catalog.all_ops() if op.name in ("softmax", "sum", "exp")]

    def records(pipelined):
        with Pool(targets, {t.id: t.python for t in targets}, tmp_path / str(pipelined)) as pool:
            pool.use_floatx("float32")
            engine = Engine(pool, RunSettings(seed=99, max_examples=30, shrink_calls=20,
                                              pipelined=pipelined))
            return [(r["op"], r["target"], r["status"], r["examples"], r["max_abs_err"],
                     json.dumps((r.get("counterexample") or {}).get("inputs"), sort_keys=True))
                    for op in ops for r in engine.check(op, "float32")]

    pipelined, lock_step = records(True), records(False)
    assert pipelined == lock_step
    planted_status = {op: status for op, target, status, *_ in pipelined if target == "planted"}
    assert planted_status["exp"] == "pass"
    assert planted_status["sum"] in compare.DIVERGENT and planted_status["softmax"] in compare.DIVERGENT
    shrunk = [r for r in pipelined if r[1] == "planted-twin" and r[0] == "sum"]
    assert shrunk and shrunk[0][-1] != "null", "the twin's counterexample was not recorded"


def test_lookahead_gives_the_same_records_and_draws_each_case_once(tmp_path):
    """The next case is queued before this one is compared and shrunk: same records as
    without lookahead, and each case's examples are drawn once, even when a case is
    retried after a harness error (which queues the same next case again)."""
    targets = [fake_target(module="numpy_ops", target_id="correct"),
               fake_target(module="planted_defects", target_id="planted")]
    ops = [op for op in catalog.all_ops() if op.name in ("softmax", "sum", "exp", "mean")]

    def run(lookahead, retry_op=None):
        with Pool(targets, {t.id: t.python for t in targets}, tmp_path / str(lookahead)) as pool:
            pool.use_floatx("float32")
            engine = Engine(pool, RunSettings(seed=7, max_examples=20, shrink_calls=20,
                                              lookahead=lookahead))
            drawn_cases = []
            draw = engine._draw_examples
            engine._draw_examples = lambda op, fx: drawn_cases.append(op.name) or draw(op, fx)
            found = []
            for index, op in enumerate(ops):
                upcoming = ops[index + 1:]
                if op.name == retry_op:  # as ConformanceSession.check retries a case
                    engine.check(op, "float32", upcoming)
                found += [(r["op"], r["target"], r["status"], r["examples"], r["max_abs_err"],
                           json.dumps((r.get("counterexample") or {}).get("inputs"), sort_keys=True))
                          for r in engine.check(op, "float32", upcoming)]
            return found, drawn_cases

    without, drawn_without = run(0)
    for depth in (1, 3):  # one case queued ahead, three
        with_lookahead, drawn_with = run(depth)
        assert with_lookahead == without
        assert drawn_with == drawn_without == [op.name for op in ops]
        _, drawn_retry = run(depth, retry_op="sum")
        # the retried case is drawn again; the cases queued ('mean') are not
        assert drawn_retry == ["exp", "softmax", "sum", "mean", "sum"]


def test_known_divergences_get_a_short_shrink_and_keep_a_counterexample(tmp_path):
    from conformance import known
    from conformance.engine import KNOWN_SHRINK_CALLS

    registry_file = tmp_path / "known.toml"
    registry_file.write_text('[[divergence]]\nop = "sum"\ntarget = "planted-known"\nverdict = "*"\n'
                             'reason = "float16 accumulation, investigated"\n')
    targets = [fake_target(module="planted_defects", target_id="planted"),
               fake_target(module="planted_defects", target_id="planted-known")]
    sum_op = next(op for op in catalog.all_ops() if op.name == "sum")
    with Pool(targets, {t.id: t.python for t in targets}, tmp_path / "work") as pool:
        pool.use_floatx("float32")
        engine = Engine(pool, RunSettings(seed=5, max_examples=40, shrink_calls=200,
                                          registry=known.load(registry_file)))
        records = {r["target"]: r for r in engine.check(sum_op, "float32")}
    assert records["planted-known"]["status"] == "known"
    assert records["planted-known"]["counterexample"]["shrink_calls"] <= KNOWN_SHRINK_CALLS
    assert records["planted-known"]["counterexample"]["inputs"]["x"]["shape"]  # still recorded
    assert records["planted"]["counterexample"]["shrink_calls"] > KNOWN_SHRINK_CALLS


def test_strategies_are_built_once_per_distinct_arguments():
    assert S.arrays("float32", (2, 3)) is S.arrays("float32", (2, 3))
    assert S.floats("float32", 0.0, 1.0) is S.floats("float32", 0.0, 1.0)
    # equal under == but bounding different ranges: -0.0 may be drawn from one only
    assert S.floats("float32", -0.0, 1.0) is not S.floats("float32", 0.0, 1.0)
    listed = S.arrays("float32", [2, 3])  # unhashable: built afresh, and still works
    assert listed is not S.arrays("float32", [2, 3])
    assert all(a.shape == (2, 3) for a in drawn(listed, 10))


def test_pairwise_distances_by_hand():
    """ULPs and tolerance units between every two targets, against the first one's
    reference; other shapes, and a NaN where the other has a number, disagree."""
    from types import SimpleNamespace
    from conformance import compare, tolerance

    four_ulps = 4 * np.spacing(np.float32(2.0))
    outputs = {"a": [1.0, 2.0], "b": [1.0, 2.0], "c": [1.0, 2.0 + four_ulps],
               "d": [np.nan, 2.0], "e": [1.0, 2.0, 3.0]}
    replies = {tid: {"status": "ok", "outputs": [np.array(v, "float32")]}
               for tid, v in outputs.items()}
    replies["f"] = {"status": "error", "message": "left out"}
    active = [SimpleNamespace(id=tid) for tid in sorted(replies)]
    ref = [np.array([1.0, 2.0])]
    pairs = {}
    op = SimpleNamespace(tolerance=tolerance.Rounded(1))  # allowed u|y|: a bound of 1 ulp at 2.0
    compare.pairwise(op, "float32", {}, replies, {t.id: ref for t in active}, pairs, {})

    assert set(pairs) == {f"{a}|{b}" for a, b in
                          ["ab", "ac", "ad", "ae", "bc", "bd", "be", "cd", "ce", "de"]}
    assert all(entry["examples"] == 1 for entry in pairs.values())
    assert pairs["a|b"] == {"examples": 1, "disagreements": 0, "max_ulp": 0.0, "max_ratio": 0.0}
    for pair in ("a|c", "b|c"):
        assert pairs[pair]["max_ulp"] == pytest.approx(4.0)
        assert pairs[pair]["max_ratio"] == pytest.approx(4.0, rel=1e-6)
        assert pairs[pair]["disagreements"] == 1
    for pair in ("a|d", "b|d", "c|d"):
        assert pairs[pair]["max_ratio"] == float("inf") and pairs[pair]["disagreements"] == 1
    assert pairs["c|d"]["max_ulp"] == pytest.approx(4.0)  # the NaN element is left out
    for pair in ("a|e", "b|e", "c|e", "d|e"):
        assert pairs[pair]["disagreements"] == 1 and pairs[pair]["max_ulp"] == 0.0


def test_requests_are_packed_once_per_flavor():
    import os
    from conformance import protocol, targets

    op = next(op for op in catalog.all_ops() if op.name == "exp")
    examples = drawn(op.inputs("float32"), 3)
    keras3 = [targets.Target(id=f"k3-{n}", flavor="keras3", backend=n) for n in ("numpy", "jax")]
    keras2 = [targets.Target(id="k2-theano", flavor="keras2", backend="theano")]
    frames = Engine._frames(op, examples, keras3 + keras2)
    assert frames["k3-numpy"] is frames["k3-jax"]
    assert frames["k2-theano"] != frames["k3-numpy"]  # another function name
    assert examples
    for target in keras3 + keras2:
        assert len(frames[target.id]) == len(examples), target.id  # one frame per example
        for example, frame in zip(examples, frames[target.id]):
            read, write = os.pipe()
            os.write(write, frame)
            os.close(write)
            sent = protocol.read_frame(read)
            os.close(read)
            expected = op.call_for(target.flavor).request(example)
            assert json.dumps(sent, default=np.ndarray.tolist, sort_keys=True) == \
                json.dumps(expected, default=np.ndarray.tolist, sort_keys=True)


def test_a_complex_result_is_judged_and_recorded_but_not_paired(tmp_path):
    """A plugin's complex output gets a verdict and a counterexample that JSON can hold
    (values as text); the pairwise table leaves it out instead of dropping its imaginary
    part."""
    targets = [fake_target(module="numpy_ops", target_id="correct"),
               fake_target(module="odd_results", target_id="odd")]
    op = next(op for op in catalog.all_ops() if op.name == "exp")
    with Pool(targets, {t.id: t.python for t in targets}, tmp_path) as pool:
        pool.use_floatx("float32")
        written = []
        writer = type("Writer", (), {"write": lambda self, kind, record: written.append(record)})
        engine = Engine(pool, RunSettings(seed=5, max_examples=5, shrink_calls=5), writer())
        records = {r["target"]: r for r in engine.check(op, "float32")}
    assert [w["pairs"] for w in written if "pairs" in w] == [{}]  # one target left to pair
    odd = records["odd"]
    assert odd["status"] == "dtype" and "complex64" in odd["message"]
    outputs = odd["counterexample"]["outputs"]["odd"]["outputs"]
    assert outputs[0]["dtype"] == "complex64" and "j" in outputs[0]["head"][0]
    json.dumps(records)  # what the results file gets
    assert records["correct"]["status"] == "pass"
