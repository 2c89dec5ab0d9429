"""`conformance run --resume DIR`: an interrupted run, resumed, gives the summary of the
same run uninterrupted.

The runs are real `conformance run` processes on two fake NumPy targets: numpy_ops,
and slow_ops (numpy_ops_v2, 20 ms slower per call, whose sum fails and shrinks, whose
maximum raises, known, and which has no log), 11 ops at three floatx: 33 cases in about
ten seconds, interrupted after a third of them. Each run gets its own example database
(counterexamples saved by one run are replayed by the next).
"""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conformance import cli, records as schemas, resume, store
from conformance.options import RunOptions
from conftest import FAKE_PLUGINS

ROOT = Path(__file__).resolve().parent.parent
OPS = "exp,log,sin,add,multiply,maximum,softmax,sum,mean,max,softplus"
CASES = 33  # 11 ops x 3 floatx
TIMINGS = ("wall_s", "backend_s")  # what may differ between two runs of the same seed


def target_table(target_id: str, module: str) -> str:
    return (f"[tool.conformance.targets.{target_id}]\nflavor = \"ops-module\"\n"
            f"backend = \"{module}\"\npython = {json.dumps(sys.executable)}\n"
            f"pythonpath = [{json.dumps(FAKE_PLUGINS)}]\ntimeout_s = 20.0\n")


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("resume")
    (root / "pyproject.toml").write_text(target_table("np", "numpy_ops") + "\n"
                                         + target_table("slow", "slow_ops"))
    (root / "known.toml").write_text(
        '[[divergence]]\nop = "maximum"\ntarget = "slow"\nverdict = "error"\n'
        'reason = "maximum raises in numpy_ops_v2 on purpose"\n')
    return root


def run_argv(project: Path, name: str) -> list[str]:
    return [sys.executable, "-m", "conformance.cli", "run", "--targets", "np,slow",
            "--ops", OPS, "--profile", "smoke", "--seed", "7", "--known", "known.toml",
            "--out", str(project / name), "--example-db", str(project / f"{name}-examples"),
            "--no-report"]


def conformance(project: Path, *argv) -> subprocess.CompletedProcess:
    return subprocess.run([*argv], cwd=project, capture_output=True, text=True, timeout=120,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})


def cases_done(out: Path) -> int:
    try:
        return sum(1 for r in store.read_records(out / "results.jsonl") if r["kind"] == "case")
    except OSError:
        return 0


def interrupt_after(argv: list[str], project: Path, out: Path, cases: int, signum) -> int:
    """Run `argv`, send `signum` once `out` holds `cases` finished cases; its exit code."""
    harness = subprocess.Popen(argv, cwd=project, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL,
                               env={**os.environ, "PYTHONPATH": str(ROOT)})
    deadline = time.monotonic() + 60
    while cases_done(out) < cases and harness.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    harness.send_signal(signum)
    return harness.wait(timeout=30)


def results(out: Path) -> dict:
    """summary.json's results and pairwise tables by key, without timings."""
    summary = store.load(out / "summary.json")
    table = {(r["op"], r["target"], r["floatx"]): {k: v for k, v in r.items() if k not in TIMINGS}
             for r in summary["results"]}
    table.update({(p["op"], p["floatx"]): p["pairs"] for p in summary["pairwise"]})
    return table


def run_fields(out: Path) -> dict:
    run = store.load(out / "summary.json")["run"]
    return {k: run.get(k) for k in ("seed", "ops", "cases_done", "max_examples", "floatx",
                                    "targets", "profile", "harness_errors", "interrupted")}


@pytest.fixture(scope="module")
def uninterrupted(project) -> Path:
    done = conformance(project, *run_argv(project, "whole"))
    assert done.returncode == 1, done.stdout[-2000:] + done.stderr[-2000:]  # slow's sum fails
    return project / "whole"


def test_a_run_interrupted_by_sigint_and_resumed_gives_the_uninterrupted_summary(
        project, uninterrupted):
    out = project / "sigint"
    assert interrupt_after(run_argv(project, "sigint"), project, out, 10, signal.SIGINT) == 130
    done_before = cases_done(out)
    assert 10 <= done_before < CASES
    assert run_fields(out)["interrupted"] == "SIGINT"  # the run closed in order
    resumed = conformance(project, sys.executable, "-m", "conformance.cli", "run",
                          "--resume", str(out))
    assert resumed.returncode == 1, resumed.stdout[-2000:] + resumed.stderr[-2000:]
    assert (f"resuming the run in {out.resolve()}: {done_before} of {CASES} (op, floatx) "
            f"cases done, {CASES - done_before} left") in resumed.stdout
    assert f"[{CASES - done_before:>4}/{CASES - done_before}]" in resumed.stdout
    assert results(out) == results(uninterrupted)
    assert run_fields(out) == run_fields(uninterrupted)


def test_a_run_killed_twice_and_resumed_gives_the_uninterrupted_summary(
        project, uninterrupted):
    """SIGKILL: no end record, maybe a line cut short; the resumed run is killed in its
    turn, and the second resumption still gives the same summary."""
    out = project / "sigkill"
    assert interrupt_after(run_argv(project, "sigkill"), project, out, 8, signal.SIGKILL) == -9
    first = cases_done(out)
    resume_argv = [sys.executable, "-m", "conformance.cli", "run", "--resume", str(out)]
    assert interrupt_after(resume_argv, project, out, first + 8, signal.SIGKILL) == -9
    assert first + 8 <= cases_done(out) < CASES
    resumed = conformance(project, *resume_argv)
    assert resumed.returncode == 1, resumed.stdout[-2000:] + resumed.stderr[-2000:]
    assert results(out) == results(uninterrupted)
    assert run_fields(out) == run_fields(uninterrupted)
    records = store.read_records(out / "results.jsonl")
    assert len([r for r in records if r["kind"] == "case"]) == CASES  # each case once
    assert [r["cases_done"] for r in records[0]["resumed"]][0] == first
    assert [p for r in records for p in schemas.problems(r["kind"], r)] == []


def test_resume_takes_no_other_option(project, uninterrupted, capsys):
    code = cli.main(["--project", str(project), "run", "--resume", str(uninterrupted),
                     "--seed", "3", "--ops", "exp"])
    assert code == 2
    assert "drop --ops, --seed" in capsys.readouterr().err


def test_resume_needs_the_results_of_a_run(project, tmp_path, capsys):
    assert cli.main(["--project", str(project), "run", "--resume", str(tmp_path)]) == 2
    assert f"--resume {tmp_path}: no results.jsonl there" in capsys.readouterr().err
    (tmp_path / "results.jsonl").write_text(json.dumps({"kind": "run", "seed": 1}) + "\n")
    assert cli.main(["--project", str(project), "run", "--resume", str(tmp_path)]) == 2
    assert "its run record holds no options" in capsys.readouterr().err


def test_recorded_options_rebuild_the_same_options(project, tmp_path):
    """Every option survives the run record's JSON: a new option whose value does not
    is caught here (set it below, and teach resume.recorded its text if it needs one)."""
    (tmp_path / "db").mkdir()
    (tmp_path / "costs.json").write_text(json.dumps({"cases": {"exp-float32": 1.0}}))
    given = RunOptions.parse({
        "targets": "np,slow", "ops": "exp,sum", "floatx": "float32,float16",
        "profile": "smoke", "max_examples": "3", "seed": "11", "out": str(tmp_path / "out"),
        "known": str(project / "known.toml"), "shard": "2/3", "example_db": str(tmp_path / "db"),
        "no_report": True, "memory_cap": "np=512MiB,1GiB",
        "costs": str(tmp_path / "costs.json"),
        "extra_targets": {"more": {"flavor": "ops-module", "backend": "numpy_ops"}},
        "project": str(project)})
    unset = [f for f, v in vars(given).items() if v == getattr(RunOptions(), f) and f != "resume"]
    assert unset == []  # every option is exercised
    record = json.loads(json.dumps(resume.recorded(given)))
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "results.jsonl").write_text(
        json.dumps({"kind": "run", "seed": 11, "options": record}) + "\n")
    rebuilt = resume.resumed(RunOptions(resume=tmp_path / "out"))
    assert rebuilt == given.with_(resume=(tmp_path / "out").resolve(),
                                  out=(tmp_path / "out").resolve())


def test_only_the_records_of_finished_cases_are_kept(tmp_path):
    """A case whose records were written but not its "case" record runs again: its
    records go; so do the end record and a last line cut short by SIGKILL."""
    lines = [{"kind": "run", "seed": 1, "options": {}},
             {"kind": "target", "id": "np", "floatx": "float32"},
             {"kind": "result", "op": "exp", "target": "np", "floatx": "float32"},
             {"kind": "pairwise", "op": "exp", "floatx": "float32", "pairs": {}},
             {"kind": "case", "case": "exp-float32"},
             {"kind": "config", "target": "np", "scenario": "floatx", "check": "floatx/x"},
             {"kind": "case", "case": "config/floatx-np"},
             {"kind": "config", "target": "np", "scenario": "epsilon", "check": "epsilon/x"},
             {"kind": "result", "op": "sum", "target": "np", "floatx": "float32"},
             {"kind": "run", "finished": "x", "cases_done": 1,
              "harness_errors": [{"case": "exp-float32", "retried": True},
                                 {"case": "sum-float32", "retried": True}]}]
    path = tmp_path / "results.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in lines) + '{"kind": "result", "op"')
    (tmp_path / "summary.json").write_text("{}")
    previous = resume.Previous.read(tmp_path)
    assert previous.finished == {"exp-float32", "config/floatx-np"}
    assert previous.cases_done == 1
    assert previous.harness_errors == [{"case": "exp-float32", "retried": True}]
    previous.keep_finished({"started": "now"})
    kept = store.read_records(path)
    assert kept == [{**lines[0], "resumed": [{"started": "now"}]}, *lines[1:7]]
    assert path.read_text().endswith("\n") and not (tmp_path / "summary.json").exists()
