"""The suites must find defects nobody told them about: a plugin with two planted
bugs (softmax without max-subtraction, a float16-accumulating sum) is flagged on
exactly those ops, and the correct twin plugin on none."""
import pytest

from conformance import catalog, compare, structure
from conformance.engine import Engine, RunSettings
from conftest import check_ops, fake_target

OPS = ["exp", "log", "sin", "add", "multiply", "maximum", "softmax", "sum", "mean", "max"]


@pytest.fixture(scope="module")
def verdicts(tmp_path_factory):
    return check_ops([fake_target(module="numpy_ops", target_id="correct"),
                      fake_target(module="planted_defects", target_id="planted")],
                     OPS, tmp_path_factory.mktemp("work"), seed=1234, examples=60)


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


def test_counterexamples_are_saved_and_replayed_apart(tmp_path):
    """The example database: a later run with a different seed and a single example
    still hits the defect on the saved counterexample, which is reported apart: the
    verdict of the drawn examples is the same with or without the database."""
    from conformance.pool import Pool

    planted = fake_target(module="planted_defects", target_id="planted")
    softmax = next(op for op in catalog.all_ops() if op.name == "softmax")
    db = tmp_path / "examples"
    with Pool([planted], {"planted": planted.python}, tmp_path / "work") as pool:
        pool.use_floatx("float32")
        first = Engine(pool, RunSettings(seed=1234, max_examples=60, shrink_calls=60,
                                         example_db=db)).check(softmax, "float32")
        assert first[0]["status"] in compare.DIVERGENT
        assert list(db.glob("softmax-float32.*")), "counterexample not saved"
        replay = Engine(pool, RunSettings(seed=99, max_examples=1, shrink_calls=5,
                                          example_db=db)).check(softmax, "float32")
        fresh = Engine(pool, RunSettings(seed=99, max_examples=1, shrink_calls=5,
                                         example_db=None)).check(softmax, "float32")
    assert replay[0]["replayed"]["status"] == first[0]["status"]
    assert replay[0]["replayed"]["examples"] >= 1
    assert "replayed" not in fresh[0]
    same = ("status", "examples", "counts", "max_abs_err", "max_ulp", "worst_ratio")
    assert [replay[0][k] for k in same] == [fresh[0][k] for k in same]
    assert fresh[0]["examples"] == 1 + len(structure.rows(softmax.structure))  # rows + 1 free
