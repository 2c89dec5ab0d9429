"""The pytest plugin in a user's repository: custom ops, fan-out fixture, entry point."""
import json
import subprocess
import sys
from pathlib import Path

from conftest import FAKE_PLUGINS

ROOT = Path(__file__).resolve().parent.parent


def run_example(tmp_path, module):
    """pytest on examples/custom_op with one fake ops-module target served by NumPy."""
    target = {"np": {"flavor": "ops-module", "backend": module, "python": sys.executable,
                     "pythonpath": [FAKE_PLUGINS]}}
    out = tmp_path / "results"
    done = subprocess.run(
        [sys.executable, "-m", "pytest", str(ROOT / "examples/custom_op"), "-q",
         "-p", "conformance.pytest_plugin", "-p", "no:cacheprovider",
         f"--rootdir={tmp_path}", "--conformance-targets=np",
         f"--conformance-extra-targets={json.dumps(target)}", "--conformance-floatx=float32,float64",
         "--conformance-profile=smoke", "--conformance-seed=3", f"--conformance-out={out}"],
        cwd=tmp_path, capture_output=True, text=True, timeout=300)
    return done, out


def test_custom_op_and_fan_out_pass_on_a_correct_target(tmp_path):
    done, out = run_example(tmp_path, "numpy_ops")
    assert done.returncode == 0, done.stdout[-3000:]
    assert "3 passed" in done.stdout
    records = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    results = [r for r in records if r["kind"] == "result"]
    assert {(r["op"], r["floatx"], r["status"]) for r in results} == {
        ("my_softplus", "float32", "pass"), ("my_softplus", "float64", "pass")}
    run = next(r for r in records if r["kind"] == "run" and "hypothesis" in r)
    assert run["seed"] == 3 and run["hypothesis"]["max_examples"] == 4
    for name in ("summary.json", "index.html", "junit.xml"):  # same outputs as `conformance run`
        assert (out / name).is_file(), name


def test_custom_op_fails_on_a_wrong_target(tmp_path):
    done, _ = run_example(tmp_path, "planted_defects_softplus")
    assert done.returncode == 1
    assert "my_softplus-float32" in done.stdout and "FAILED" in done.stdout


def test_plugin_is_registered_by_the_entry_point():
    from importlib.metadata import entry_points

    names = {ep.value for ep in entry_points(group="pytest11")}
    assert "conformance.pytest_plugin" in names
