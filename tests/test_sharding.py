"""Shards of a run, merged, give the same results as the unsharded run."""
import json
import os
import subprocess
import sys
from pathlib import Path

from conformance import report, store
from conftest import FAKE_PLUGINS

ROOT = Path(__file__).resolve().parent.parent
OPS = "exp,log,sin,add,multiply,maximum,softmax,sum,mean,max"


def project(tmp_path):
    """A project with one fake NumPy target declared in its pyproject."""
    (tmp_path / "pyproject.toml").write_text(
        f'[tool.conformance.targets.np]\nflavor = "ops-module"\nbackend = "numpy_ops"\n'
        f'python = "{sys.executable}"\npythonpath = ["{FAKE_PLUGINS}"]\n')


def conformance_run(tmp_path, *args):
    project(tmp_path)
    command = [sys.executable, "-m", "conformance.cli", "run", "--targets", "np", "--ops", OPS,
               "--floatx", "float32,float64", "--profile", "smoke", "--seed", "5", *args]
    return subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=300,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})


def run(tmp_path, name, shard=None):
    """`conformance run` on the fake target; its results folder."""
    out = tmp_path / name
    done = conformance_run(tmp_path, "--out", str(out), "--no-report",
                           *(["--shard", shard] if shard else []))
    assert done.returncode in (0, 1), done.stdout[-2000:] + done.stderr[-2000:]
    return out


def comparable(summary):
    keys = ("op", "target", "floatx", "status", "examples", "max_abs_err", "max_ulp", "counts")
    results = sorted((tuple(json.dumps(r.get(k), sort_keys=True) for k in keys))
                     for r in summary["results"])
    pairs = sorted(json.dumps(p, sort_keys=True) for p in summary["pairwise"])
    return results, pairs


def test_merged_shards_equal_the_unsharded_run(tmp_path):
    whole = store.load(run(tmp_path, "whole"))
    first, second = run(tmp_path, "s1", "1/2"), run(tmp_path, "s2", "2/2")
    shard_results = [store.load(first)["results"], store.load(second)["results"]]
    assert all(shard_results), "both shards must hold cases"
    names = [{(r["op"], r["floatx"]) for r in results} for results in shard_results]
    assert not names[0] & names[1], "a case ran in both shards"
    for index, ran in enumerate(names, 1):  # --plan names the cases the shard runs
        planned = conformance_run(tmp_path, "--shard", f"{index}/2", "--plan", "--json")
        assert planned.returncode == 0, planned.stderr[-2000:]
        rows = json.loads(planned.stdout)
        assert {row["case"] for row in rows} == {f"{op}-{fx}" for op, fx in ran}
        assert all(row["estimated_s"] > 0 for row in rows)
    report.render([store.load(first), store.load(second)], tmp_path / "merged" / "index.html",
                  [first, second])
    merged = json.loads((tmp_path / "merged" / "summary.json").read_text())
    assert comparable(merged) == comparable(whole)
    assert len(merged["results"]) == 2 * len(OPS.split(","))


def test_bad_run_arguments_are_clear_errors(tmp_path):
    for args, message in [(["--targets", "nope"], "unknown target(s) nope"),
                          (["--floatx", "float8"], "--floatx: unknown"),
                          (["--shard", "5/2"], "expected I/N"),
                          (["--ops", "no_such_op"], "matches no op"),
                          (["--max-examples", "0"], "give at least 1"),
                          (["--out", __file__], "exists and is not a folder"),
                          (["--known", "no_such.toml"], "--known no_such.toml: no such file")]:
        done = subprocess.run([sys.executable, "-m", "conformance.cli", "run", *args],
                              cwd=tmp_path, capture_output=True, text=True,
                              env={**os.environ, "PYTHONPATH": str(ROOT)})
        assert done.returncode == 2 and message in done.stderr, (args, done.stderr)
