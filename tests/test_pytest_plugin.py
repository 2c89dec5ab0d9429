"""The pytest plugin in a user's repository: custom ops, fan-out fixture, entry point."""
import json
import sys
from pathlib import Path

from conftest import FAKE_PLUGINS

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "custom_op" / "test_my_ops.py"


def run_example(pytester, module):
    """pytest on a copy of examples/custom_op in a fresh project, with one fake
    ops-module target served by NumPy; the plugin comes from its entry point."""
    pytester.makepyfile(test_my_ops=EXAMPLE.read_text(encoding="utf-8"))
    target = {"np": {"flavor": "ops-module", "backend": module, "python": sys.executable,
                     "pythonpath": [FAKE_PLUGINS]}}
    out = pytester.path / "results"
    # a subprocess: workers, hypothesis settings and the plugin's state stay out of ours
    result = pytester.runpytest_subprocess(
        "-p", "conformance.pytest_plugin", "-p", "no:cacheprovider",
        "--conformance-targets=np", f"--conformance-extra-targets={json.dumps(target)}",
        "--conformance-floatx=float32,float64", "--conformance-profile=smoke",
        "--conformance-seed=3", f"--conformance-out={out}", timeout=300)
    return result, out


def test_custom_op_and_fan_out_pass_on_a_correct_target(pytester):
    result, out = run_example(pytester, "numpy_ops")
    assert result.ret == 0, result.stdout.str()[-3000:]
    result.assert_outcomes(passed=3)
    records = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    results = [r for r in records if r["kind"] == "result"]
    assert {(r["op"], r["floatx"], r["status"]) for r in results} == {
        ("my_softplus", "float32", "pass"), ("my_softplus", "float64", "pass")}
    run = next(r for r in records if r["kind"] == "run" and "hypothesis" in r)
    assert run["seed"] == 3 and run["hypothesis"]["max_examples"] == 4
    for name in ("summary.json", "index.html", "junit.xml"):  # same outputs as `conformance run`
        assert (out / name).is_file(), name


def test_custom_op_fails_on_a_wrong_target(pytester):
    result, _ = run_example(pytester, "planted_defects_softplus")
    assert result.ret == 1
    result.stdout.fnmatch_lines(["FAILED *my_softplus-float32*"])


def test_plugin_is_registered_by_the_entry_point():
    from importlib.metadata import entry_points

    names = {ep.value for ep in entry_points(group="pytest11")}
    assert "conformance.pytest_plugin" in names
