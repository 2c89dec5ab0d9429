"""The suites must find defects nobody told them about: a plugin with two planted
bugs (softmax without max-subtraction, a float16-accumulating sum) is flagged on
exactly those ops, and the correct twin plugin on none."""
import pytest

from conformance import catalog, compare
from conformance.engine import Engine, RunSettings
from conftest import fake_target

OPS = ["exp", "log", "sin", "add", "multiply", "maximum", "softmax", "sum", "mean", "max"]


@pytest.fixture(scope="module")
def verdicts(tmp_path_factory):
    from conformance.pool import Pool

    correct = fake_target(module="numpy_ops", target_id="correct")
    planted = fake_target(module="planted_defects", target_id="planted")
    ops = [op for op in catalog.all_ops() if op.name in OPS]
    assert sorted(op.name for op in ops) == sorted(OPS), "catalog lost an op this test uses"
    results = {}
    with Pool([correct, planted], {"correct": correct.python, "planted": planted.python},
              tmp_path_factory.mktemp("work")) as pool:
        pool.use_floatx("float32")
        engine = Engine(pool, RunSettings(seed=1234, max_examples=60, shrink_calls=60))
        for op in ops:
            for record in engine.check(op, "float32"):
                results[(op.name, record["target"])] = record
    return results


def flagged(verdicts, target):
    return {op for (op, t), r in verdicts.items() if t == target and r["status"] in compare.DIVERGENT}


def test_planted_defects_are_flagged_and_nothing_else(verdicts):
    assert flagged(verdicts, "planted") == {"softmax", "sum"}


def test_the_correct_twin_passes_everything(verdicts):
    assert flagged(verdicts, "correct") == set()


def test_each_defect_comes_with_a_shrunk_counterexample(verdicts):
    for op in ("softmax", "sum"):
        example = verdicts[(op, "planted")]["counterexample"]
        assert example["target"] == "planted"
        assert example["outputs"]["correct"]["status"] == "ok"  # every target's output
        assert example["reference"], "reference saved with the counterexample"
