"""tox, the CI workflow and the installed package work like the checkout."""
import ast
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from conformance import envs

ROOT = Path(__file__).resolve().parent.parent


def _nox_test_envs() -> list:
    """The environments noxfile.py's `tests` session provisions (its TEST_ENVS), read
    without running the file (importing it registers its sessions with nox again)."""
    tree = ast.parse((ROOT / "noxfile.py").read_text())
    for node in tree.body:
        if isinstance(node, ast.Assign) and [getattr(t, "id", None) for t in node.targets] == ["TEST_ENVS"]:
            return ast.literal_eval(node.value)
    raise AssertionError("noxfile.py has no TEST_ENVS list")


def test_workflow_yaml_runs_four_shards_and_merges_them():
    import yaml  # the test extra installs it
    workflow = yaml.safe_load((ROOT / ".github/workflows/conformance.yml").read_text())
    shard_job, report_job = workflow["jobs"]["shard"], workflow["jobs"]["report"]
    shards = shard_job["strategy"]["matrix"]["shard"]
    assert shards == [1, 2, 3, 4]
    run_steps = " ".join(step.get("run", "") for step in shard_job["steps"])
    assert "nox -s conformance -- --shard ${{ matrix.shard }}/4" in run_steps
    assert report_job["needs"] == "shard"
    merge = " ".join(step.get("run", "") for step in report_job["steps"])
    assert "conformance report shards/shard-*/" in merge
    uploads = [s for s in report_job["steps"] if s.get("uses", "").startswith("actions/upload-artifact")]
    assert uploads and uploads[0]["with"]["path"] == "reports/conformance"


def test_workflow_carries_the_compile_caches_from_run_to_run():
    """The compile caches the workers use (pool.compile_caches) are restored from the
    newest earlier run and saved under this run's key: actions/cache never saves again
    under a key it restored, so a fixed key would freeze them after the first run."""
    import yaml
    from conformance.pool import compile_caches

    workflow = yaml.safe_load((ROOT / ".github/workflows/conformance.yml").read_text())
    caches = [s["with"] for s in workflow["jobs"]["shard"]["steps"]
              if s.get("uses", "").startswith("actions/cache")]
    folders = {Path(value.split("=")[-1]).parent.name
               for value in compile_caches("x").values() if "/" in value}
    assert folders == {"jax", "theano"}
    growing = [c for c in caches if all(f"keras-conformance/{f}" in c["path"] for f in folders)]
    assert growing and "github.run_id" in growing[0]["key"] and growing[0].get("restore-keys")


def test_the_tests_session_provisions_every_environment_and_ci_requires_them():
    """Every built-in environment is one some test runs a worker in (keras3, keras2 on
    Python 3.6, tfkeras); CI builds them all and lets no test needing one skip."""
    assert sorted(_nox_test_envs()) == sorted(envs.BUILTIN_ENVS)
    ci = (ROOT / ".ci/run").read_text().splitlines()
    assert ci.index("export CONFORMANCE_REQUIRE_ENVS=1") < ci.index("nox -s tests")


def test_tox_environments_run_the_same_commands_as_nox():
    shown = subprocess.run([sys.executable, "-m", "tox", "config", "-e", "tests,conformance",
                            "-k", "commands", "commands_pre"],
                           cwd=ROOT, capture_output=True, text=True)
    assert shown.returncode == 0, shown.stderr
    assert f"conformance envs sync {' '.join(_nox_test_envs())}" in shown.stdout
    assert "pytest" in shown.stdout and "conformance run" in shown.stdout
    noxfile = (ROOT / "noxfile.py").read_text()
    assert '"envs", "sync", *TEST_ENVS' in noxfile and '"conformance", "run"' in noxfile


def test_tox_tests_environment_really_runs(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "tox", "--workdir", str(tmp_path / "tox"), "-e", "tests", "--",
         "tests/test_protocol.py", "-q", "-p", "no:cacheprovider"],
        cwd=ROOT, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    assert " passed" in result.stdout


def test_installed_wheel_serves_requests_outside_the_checkout(tmp_path):
    wheel_dir, venv = tmp_path / "wheel", tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w",
                    str(wheel_dir), str(ROOT)], check=True, capture_output=True)
    subprocess.run([sys.executable, "-m", "venv", "--system-site-packages", str(venv)],
                   check=True)
    python = venv / "bin" / "python"
    wheel = next(wheel_dir.glob("*.whl"))
    # its dependencies come from the system site-packages where they are, else from PyPI
    subprocess.run([str(python), "-m", "pip", "install", "-q", str(wheel)],
                   check=True, capture_output=True)
    script = textwrap.dedent("""
        import sys, numpy as np
        import conformance
        from conformance import runcli, targets
        from conformance.pool import Pool
        assert "site-packages" in conformance.__file__, conformance.__file__
        assert (runcli.suites_dir() / "test_elementwise.py").is_file()
        target = targets.Target(id="np", flavor="ops-module", backend="numpy", python=sys.executable)
        with Pool([target], {"np": sys.executable}) as pool:
            pool.use_floatx("float32")
            reply = pool.call_all({"cmd": "call", "fn": "keras.ops.add",
                                   "args": [np.ones(2), np.ones(2)], "kwargs": {}})["np"]
        assert reply["status"] == "ok" and reply["outputs"][0].tolist() == [2.0, 2.0], reply
        print("ok", conformance.__version__)
    """)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    done = subprocess.run([str(python), "-c", script], cwd=tmp_path, env=env,
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.startswith("ok")
    version = subprocess.run([str(venv / "bin" / "conformance"), "--version"], cwd=tmp_path,
                             env=env, capture_output=True, text=True)
    assert version.stdout.strip() == f"conformance {conformance_version()}"


def conformance_version():
    import conformance
    return conformance.__version__
