"""A bug inside the harness is said with its traceback, kept in the run record, and
does not lose the case when trying it again succeeds."""
from pathlib import Path

import pytest

from conformance import catalog
from conformance.engine import RunSettings
from conformance.runloop import Run, write_outputs
from conformance.runcli import _print_harness_errors


class FlakyEngine:
    def __init__(self, failures):
        self.failures = failures
        self.calls = 0

    def check(self, op, floatx, upcoming=None):
        self.calls += 1
        if self.calls <= self.failures:
            raise KeyError("planted harness fault")
        return [{"op": op.name, "target": "t", "status": "pass"}]


def run_with(engine, out_dir=None):
    """A Run with no workers: its engine is the fake, floatx switching does nothing."""
    said = []
    run = Run([], {}, settings=RunSettings(seed=1, max_examples=1, shrink_calls=0),
              floatx=["float32"], out_dir=out_dir, workdir=Path("unused"), say=said.append)
    run.engine, run.total, run.said = engine, 1, said
    run.switch_floatx = lambda floatx: None
    return run


def exp():
    return next(op for op in catalog.all_ops() if op.name == "exp")


def test_a_passing_harness_fault_is_reported_and_the_case_kept():
    run = run_with(FlakyEngine(failures=1))
    records = run.check(exp(), "float32")
    assert records[0]["status"] == "pass" and run.done == 1
    error, = run.harness_errors
    assert error["case"] == "exp-float32" and error["retried"]
    assert "KeyError: 'planted harness fault'" in error["traceback"]
    assert any("HARNESS ERROR in exp-float32" in line for line in run.said)


def test_a_lasting_harness_fault_fails_the_case():
    run = run_with(FlakyEngine(failures=2))
    with pytest.raises(KeyError):
        run.check(exp(), "float32")
    assert run.done == 0


def test_summary_repeats_the_tracebacks(capsys):
    _print_harness_errors([{"case": "a-float32", "retried": True, "traceback": "x\nKeyError: 1"},
                           {"case": "b-float32", "retried": False, "traceback": "ValueError: 2"}])
    out = capsys.readouterr().out
    assert "2 harness error(s), 1 case(s) lost" in out
    assert "KeyError: 1" in out and "ValueError: 2" in out


def test_a_failing_report_keeps_the_summary(tmp_path, monkeypatch):
    from conformance import report
    from conformance.store import ResultsWriter

    writer = ResultsWriter(tmp_path)
    writer.write("result", {"op": "exp", "target": "t", "floatx": "float32", "status": "pass"})
    writer.close()

    def broken_render(*args, **kwargs):
        raise TypeError("planted report bug")

    monkeypatch.setattr(report, "render", broken_render)
    said = []
    write_outputs(tmp_path, said.append, report=True)
    assert (tmp_path / "summary.json").is_file()
    assert any("REPORT ERROR" in line and "planted report bug" in line for line in said)


def test_cases_lost_to_harness_errors_make_the_run_exit_2(capsys):
    from conformance.runcli import exit_status

    diverged = {"results": [{"op": "exp", "target": "t", "status": "fail"}], "run": {}}
    clean = {"results": [{"op": "exp", "target": "t", "status": "pass"}], "run": {}}
    recovered = {**clean, "run": {"harness_errors": [{"case": "exp-float32", "retried": True}]}}
    lost = {**clean, "run": {"harness_errors": [{"case": "exp-float32", "retried": True},
                                                {"case": "exp-float32", "retried": False}]}}
    assert [exit_status(1, diverged), exit_status(0, clean), exit_status(0, recovered)] == [1, 0, 0]
    assert exit_status(1, lost) == 2 and exit_status(0, lost) == 2
    assert "1 case(s) lost to harness errors" in capsys.readouterr().err
    assert exit_status(2, clean) == 2  # interrupted: pytest's own code
