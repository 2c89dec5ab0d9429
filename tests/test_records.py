"""Every file a run and a baseline write conforms to the schemas of conformance.records.

One small real run on fake NumPy targets (numpy_ops; numpy_ops_v2, whose sum is off
by 1% of max|x|, whose maximum raises and which has no log; one target that cannot
start), with a known-divergence registry and the configuration checks, so that every
record kind and the statuses pass, fail, known, unsupported and broken are written.
Then a baseline of numpy_ops, compared after the "upgrade" to numpy_ops_v2.
"""
import copy
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from conformance import records, store
from conformance import cli as conformance_cli
from conftest import FAKE_PLUGINS

ROOT = Path(__file__).resolve().parent.parent
OPS = "exp,log,sum,maximum"


def target_table(target_id: str, module: str, python: str = sys.executable) -> str:
    return (f"[tool.conformance.targets.{target_id}]\nflavor = \"ops-module\"\n"
            f"backend = \"{module}\"\npython = {json.dumps(python)}\n"
            f"pythonpath = [{json.dumps(FAKE_PLUGINS)}]\ntimeout_s = 20.0\n")


def project(folder: Path, *tables: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "pyproject.toml").write_text("\n".join(tables))
    return folder


def all_problems(kind_records) -> list[str]:
    return [p for kind, record in kind_records for p in records.problems(kind, record)]


@pytest.fixture(scope="module")
def run_out(tmp_path_factory):
    """`conformance run` (with its report) on np, v2 and a target with no interpreter."""
    root = project(tmp_path_factory.mktemp("records"),
                   target_table("np", "numpy_ops"), target_table("v2", "numpy_ops_v2"),
                   target_table("gone", "numpy_ops", python="/nonexistent/python"))
    (root / "known.toml").write_text(
        '[[divergence]]\nop = "maximum"\ntarget = "v2"\nverdict = "error"\n'
        'reason = "maximum raises in numpy_ops_v2 on purpose"\n')
    out = root / "out"
    done = subprocess.run(
        [sys.executable, "-m", "conformance.cli", "run", "--targets", "np,v2,gone",
         "--ops", f"{OPS},config", "--floatx", "float32", "--profile", "smoke", "--seed", "5",
         "--known", "known.toml", "--out", str(out)],
        cwd=root, capture_output=True, text=True, timeout=300,
        env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert done.returncode == 1, done.stdout[-2000:] + done.stderr[-2000:]  # sum fails on v2
    return out


@pytest.fixture(scope="module")
def compared(tmp_path_factory):
    """A baseline of numpy_ops (and a target that cannot start), compared with v2."""
    root = tmp_path_factory.mktemp("baseline")
    v1 = project(root / "v1", target_table("fake", "numpy_ops"),
                 target_table("gone", "numpy_ops", python="/nonexistent/python"))
    v2 = project(root / "v2", target_table("fake", "numpy_ops_v2"))
    main = lambda *argv: conformance_cli.main([str(a) for a in argv])
    assert main("--project", v1, "baseline", "save", "before", "--targets", "fake,gone",
                "--ops", OPS, "--floatx", "float32", "--examples", 3, "--dir", root) == 0
    out = root / "compare"
    assert main("--project", v2, "compare", "before", "--dir", root, "--out", out,
                "--no-report") == 1  # sum beyond tolerance, maximum newly failing
    return {"baseline": root / "before", "out": out}


# -- what the harness writes conforms ---------------------------------------------------
def test_schemas_are_valid_draft_2020_12():
    import jsonschema

    for schema in records.SCHEMAS.values():
        jsonschema.Draft202012Validator.check_schema(schema)
    assert set(records.RECORD_KINDS) == set(store.KINDS)


def test_every_results_record_conforms(run_out):
    lines = store.read_records(run_out / "results.jsonl")
    assert all_problems((r.get("kind"), r) for r in lines) == []
    kinds = {r["kind"] for r in lines}
    assert kinds == set(records.RECORD_KINDS)
    # the run exercised what the schemas allow, not only the plain cases
    results = [r for r in lines if r["kind"] == "result"]
    assert {r["status"] for r in results} == {"pass", "fail", "known", "unsupported"}
    assert any(r["counterexample"] for r in results if r["status"] == "fail")
    assert {t["status"] for t in lines if t["kind"] == "target"} == {"ready", "broken"}
    assert any(p["pairs"] for p in lines if p["kind"] == "pairwise")
    assert [r for r in lines if r["kind"] == "run" and "finished" in r]


def test_summary_conforms(run_out):
    rewritten = json.loads((run_out / "summary.json").read_text())  # by the report
    assert records.problems("summary", rewritten) == []
    assert rewritten["config"] and rewritten["results"]
    from_store = store.summarize(store.read_records(run_out / "results.jsonl"))
    assert records.problems("summary", from_store) == []


def test_baseline_manifest_and_comparison_conform(compared):
    manifest = json.loads((compared["baseline"] / "manifest.json").read_text())
    assert records.problems("manifest", manifest) == []
    assert {e["status"] for e in manifest["entries"]} == {"pass"}
    comparison = json.loads((compared["out"] / "comparison.json").read_text())
    assert records.problems("comparison", comparison) == []
    assert {e["change"] for e in comparison["entries"]} == {
        "within", "beyond", "newly_unsupported", "newly_failing"}
    # the replay's own results: result records written by baseline.replay
    lines = store.read_records(compared["out"] / "results.jsonl")
    assert all_problems((r.get("kind"), r) for r in lines) == []
    assert {r["status"] for r in lines if r["kind"] == "result"} == {
        "pass", "fail", "error", "unsupported"}
    summary = json.loads((compared["out"] / "summary.json").read_text())
    assert records.problems("summary", summary) == []


# -- and the check can fail -------------------------------------------------------------
def first(run_out, kind, **wanted):
    return copy.deepcopy(next(
        r for r in store.read_records(run_out / "results.jsonl")
        if r["kind"] == kind and all(r.get(k) == v for k, v in wanted.items())))


def test_a_missing_required_key_is_reported(run_out):
    for kind, key, wanted in [("result", "status", {}), ("result", "counts", {}),
                              ("target", "python", {}), ("pairwise", "pairs", {}),
                              ("config", "verdict", {}), ("run", "seed", {}),
                              ("run", "cases_done", {"cases_done": 4})]:
        record = first(run_out, kind, **wanted)
        del record[key]
        found = records.problems(kind, record)
        assert found and any(f"'{key}' is a required property" in p for p in found), (kind, key)


def test_a_wrong_status_is_reported(run_out):
    result = first(run_out, "result", status="pass")
    for status in ("passed", "known", None):
        assert records.problems("result", {**result, "status": status}), status
    # a status other than its verdict, a known one that says no reason
    assert records.problems("result", {**result, "verdict": "fail"})
    known = first(run_out, "result", status="known")
    assert records.problems("result", {**known, "known": None})
    assert records.problems("result", {k: v for k, v in known.items() if k != "known"})
    assert records.problems("result", {**known, "verdict": "pass"})
    config = first(run_out, "config")
    assert records.problems("config", {**config, "status": "crash", "verdict": "crash"})
    target = first(run_out, "target")
    assert records.problems("target", {**target, "status": "ok"})


def test_numbers_may_be_non_finite_only_as_store_spells_them(run_out):
    result = first(run_out, "result", status="fail")
    for spelled in ("nan", "inf", "-inf"):
        assert records.problems("result", {**result, "worst_ratio": spelled}) == []
    for wrong in ("NaN", "Infinity", "1.5", True):
        assert records.problems("result", {**result, "worst_ratio": wrong}), wrong


def test_files_with_a_wrong_field_are_reported(compared, run_out):
    manifest = json.loads((compared["baseline"] / "manifest.json").read_text())
    assert records.problems("manifest", {**manifest, "format_version": 99})
    comparison = json.loads((compared["out"] / "comparison.json").read_text())
    counts = {k: v for k, v in comparison["counts"].items() if k != "beyond"}
    assert records.problems("comparison", {**comparison, "counts": counts})
    assert records.problems("comparison", {**comparison, "status": "fine"})
    summary = json.loads((run_out / "summary.json").read_text())
    assert records.problems("summary", {k: v for k, v in summary.items() if k != "results"})
    with pytest.raises(ValueError, match="unknown record kind"):
        records.problems("nope", {})
