"""Gradient cases (grad_<op>) find wrong derivatives nobody told them about: a plugin
whose forward values are all right but whose tanh and multiply gradients are wrong is
flagged on exactly those gradient cases, its correct twin on none, and a plugin
without the conformance_vjp hook is unsupported there, not failed."""
import os
import re
import subprocess
import sys

import numpy as np
import pytest

from conformance import compare
from conformance.catalog import Context, gradients
from conformance.engine import _draw
from conftest import FAKE_PLUGINS, check_ops, fake_target, require_env

OPS = ["tanh", "exp", "multiply", "sum", "grad_tanh", "grad_exp", "grad_multiply", "grad_sum"]


@pytest.fixture(scope="module")
def verdicts(tmp_path_factory):
    return check_ops([fake_target(module="gradients_numpy", target_id="correct"),
                      fake_target(module="gradients_planted", target_id="planted"),
                      fake_target(module="numpy_ops", target_id="nohook")],
                     OPS, tmp_path_factory.mktemp("grad") / "work", seed=99, examples=30)


def statuses(verdicts, target):
    return {op: r["status"] for (op, t), r in verdicts.items() if t == target}


def test_planted_gradient_defects_are_flagged_and_nothing_else(verdicts):
    flagged = {op for op, s in statuses(verdicts, "planted").items() if s in compare.DIVERGENT}
    assert flagged == {"grad_tanh", "grad_multiply"}


def test_the_correct_twin_passes_every_gradient(verdicts):
    assert set(statuses(verdicts, "correct").values()) == {"pass"}


def test_a_plugin_without_the_hook_is_unsupported_on_gradients(verdicts):
    got = statuses(verdicts, "nohook")
    assert {got[op] for op in OPS if op.startswith("grad_")} == {"unsupported"}
    assert got["exp"] == "pass"


@pytest.mark.parametrize("floatx", ["float16", "float32", "float64"])
def test_references_are_finite_and_shaped_like_the_inputs(floatx):
    for op in gradients.OPS:
        if floatx not in op.floatx:
            continue
        for example in _draw(op.inputs(floatx), 5, 7):
            refs = op.references(example, Context(floatx))
            wrt = (op.keras3 or op.keras2).wrt
            assert [r.shape for r in refs] == [example[k].shape for k in wrt], op.name
            assert all(np.isfinite(r).all() for r in refs), op.name


def test_linear_references_match_the_analytic_gradients():
    """J^T ct from basis vectors equals the textbook VJP of matmul and sum."""
    matmul = next(op for op in gradients.OPS if op.name == "grad_matmul")
    a, b = np.arange(6.0).reshape(2, 3), np.arange(12.0).reshape(3, 4) - 5
    ct = np.linspace(-1, 1, 8).reshape(2, 4)
    da, db = matmul.references({"x1": a, "x2": b, "ct": ct}, Context("float64"))
    np.testing.assert_allclose(da, ct @ b.T)
    np.testing.assert_allclose(db, a.T @ ct)
    total = next(op for op in gradients.OPS if op.name == "grad_sum")
    (dx,) = total.references({"x": a, "axis": 1, "keepdims": False, "ct": ct[:, 0]},
                             Context("float64"))
    np.testing.assert_allclose(dx, np.repeat(ct[:, :1], 3, axis=1))


# -- repro scripts of gradient counterexamples -------------------------------------------
def _repro(tmp_path, result, target, python, env=None):
    from conformance.report import repro

    script = tmp_path / "repro.py"
    script.write_text(repro.script(result, target))
    done = subprocess.run([python, str(script)], capture_output=True, text=True, timeout=300,
                          cwd=tmp_path, env={**os.environ, **(env or {})})
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


def _max_difference(stdout):
    return float(re.search(r"max \|out - ref\| = (\S+)", stdout).group(1))


def test_repro_of_a_planted_gradient_shows_the_defect(verdicts, tmp_path):
    """The planted plugin's own grad_tanh counterexample, replayed by its repro script
    through the conformance_vjp hook: the gradient differs from the reference there,
    and the same script on the correct twin does not."""
    record = verdicts[("grad_tanh", "planted")]
    assert record["counterexample"]["call"]["wrt"] == ["x"]
    env = {"PYTHONPATH": FAKE_PLUGINS}
    planted = _repro(tmp_path, record, {"id": "planted", "flavor": "ops-module",
                                        "backend": "gradients_planted"}, sys.executable, env)
    correct = _repro(tmp_path, record, {"id": "correct", "flavor": "ops-module",
                                        "backend": "gradients_numpy"}, sys.executable, env)
    assert "conformance_vjp('tanh'" in (tmp_path / "repro.py").read_text()
    assert _max_difference(planted) > 1e-3 > 1e-5 > _max_difference(correct)


def _tanh_counterexample(fn, target):
    x = np.array([0.5, -2.0, 3.0], "float32")
    ct = np.array([1.0, -0.5, 2.0], "float32")
    inputs = {"x": {"dtype": "float32", "shape": [3], "values": x.tolist()},
              "ct": {"dtype": "float32", "shape": [3], "values": ct.tolist()}}
    reference = ct.astype("float64") * (1 - np.tanh(x.astype("float64")) ** 2)
    return {"op": "grad_tanh", "target": target, "floatx": "float32", "status": "fail",
            "counterexample": {
                "target": target, "verdict": "fail", "message": "", "inputs": inputs,
                "reference": [{"dtype": "float64", "shape": [3], "values": reference.tolist()}],
                "outputs": {}, "tolerance": "",
                "call": {"fn": fn, "args": ["x"], "kwargs": {}, "wrt": ["x"],
                         "cotangents": ["ct"]}}}


@pytest.mark.parametrize("flavor, backend", [
    ("keras3", "jax"), ("keras3", "torch"), ("keras3", "tensorflow"),
    ("keras2", "tensorflow"), ("keras2", "theano")])
def test_repro_of_a_gradient_runs_on_the_backend(flavor, backend, tmp_path):
    python = require_env(flavor)
    fn = "keras.ops.tanh" if flavor == "keras3" else "keras.backend.tanh"
    result = _tanh_counterexample(fn, f"{flavor}-{backend}")
    stdout = _repro(tmp_path, result, {"id": f"{flavor}-{backend}", "flavor": flavor,
                                       "backend": backend}, python,
                    {"KERAS_HOME": str(tmp_path)})
    assert _max_difference(stdout) < 1e-6
