"""The known-divergence registry: one entry per root cause, its new keys and rules, the
cause a known result names, and stale entries (in summary.json and at the end of a run)."""
from __future__ import annotations

from pathlib import Path

import pytest

from conformance import known, runcli, store

PROJECT_REGISTRY = Path(__file__).resolve().parent.parent / "known_divergences.toml"

ENTRY = '[[divergence]]\nop = "x"\ntarget = "y"\nverdict = "fail"\nreason = "r"\n'


def _load(tmp_path, text: str) -> list[known.KnownDivergence]:
    path = tmp_path / "known.toml"
    path.write_text(text)
    return known.load(path)


def _result(op, target, status, floatx="float32", verdict=None, **fields):
    return {"op": op, "target": target, "floatx": floatx, "status": status,
            "verdict": verdict or status, **fields}


# -- loading -------------------------------------------------------------------------------
def test_the_project_registry_loads_with_one_cause_per_entry():
    registry = known.load(PROJECT_REGISTRY)
    assert registry, "known_divergences.toml holds entries"
    causes = [k.cause for k in registry]
    assert len(set(causes)) == len(causes)
    assert all(known.CAUSE_PATTERN.match(c) for c in causes)


def test_new_keys_are_read_and_lists_are_accepted_everywhere(tmp_path):
    [entry] = _load(tmp_path, '''
[[divergence]]
cause = "cntk-dynamic-batch-axis"
op = ["*_broadcast", "dot"]
target = "keras2-cntk"
floatx = ["float16", "float32"]
verdict = ["error", "crash"]
reason = "CNTK makes axis 0 of every placeholder a dynamic batch axis"
repro = """
from keras import backend as K
K.eval(K.placeholder((1, 3)) + K.placeholder((2, 3)))
"""
upstream = "bug"
seen_on = "keras 2.3.1, cntk 2.7"
''')
    assert entry.cause == "cntk-dynamic-batch-axis" and entry.cause_given
    assert entry.repro.startswith("from keras import backend as K")
    assert (entry.upstream, entry.seen_on) == ("bug", "keras 2.3.1, cntk 2.7")
    assert entry.matches("add_broadcast", "keras2-cntk", "float16", "crash")
    assert entry.matches("dot", "keras2-cntk", "float32", "error")
    assert not entry.matches("dot", "keras2-cntk", "float64", "error")      # floatx list
    assert not entry.matches("dot", "keras2-cntk", "float32", "fail")       # verdict list
    assert entry.covers("dot", "keras2-cntk", "float32")                    # any verdict


def test_an_entry_without_cause_gets_one_from_its_first_op_and_target(tmp_path):
    registry = _load(tmp_path, '''
[[divergence]]
op = "*_broadcast"
target = "keras2-cntk"
verdict = "error"
reason = "r"

[[divergence]]
op = ["*_broadcast", "dot"]
target = ["keras2-cntk", "keras2-theano"]
verdict = "crash"
reason = "r"

[[divergence]]
cause = "conv-123-d-keras2-theano"
op = "depthwise_conv2d"
target = "keras2-theano"
verdict = "fail"
reason = "r"

[[divergence]]
op = "conv[123]d"
target = "keras2-theano"
verdict = "fail"
reason = "r"
''')
    assert [k.cause for k in registry] == ["broadcast-keras2-cntk", "broadcast-keras2-cntk-2",
                                           "conv-123-d-keras2-theano",
                                           "conv-123-d-keras2-theano-4"]
    assert [k.cause_given for k in registry] == [False, False, True, False]


@pytest.mark.parametrize("text, says", [
    (ENTRY.replace('reason = "r"', 'reason = "r"\ncause = "a"') * 2,
     r"divergence #1 and #2 both have cause 'a': one entry per root cause"),
    (ENTRY + 'cause = "CNTK batch axis"\n',
     r"divergence #1 \(cause 'CNTK batch axis'\): .*not a short id"),
    (ENTRY + 'seen-on = "cntk 2.7"\n', r"divergence #1 \(op 'x'\): unknown key 'seen-on'"),
    (ENTRY + 'upstream = "yes"\n', r'upstream is "bug" \(an upstream bug\) or left out'),
    (ENTRY + 'upstream = "bug"\n', r"an upstream bug needs repro and seen_on"),
    (ENTRY + 'upstream = "bug"\nrepro = "print(1)"\n', r"an upstream bug needs seen_on"),
    (ENTRY + 'repro = 3\n', r"repro is text, not 3"),
    (ENTRY.replace('op = "x"', "op = []"), r"op is a glob or a non-empty list of globs"),
    (ENTRY.replace('verdict = "fail"', 'verdict = ["fail", "fial"]'), r"verdict 'fial' is none of"),
    (ENTRY.replace('reason = "r"', ''), r"divergence #1 \(op 'x'\) lacks reason"),
])
def test_entries_that_break_a_rule_are_refused_with_where_and_why(tmp_path, text, says):
    with pytest.raises(known.RegistryError, match=says):
        _load(tmp_path, text)


# -- marking and stale entries ---------------------------------------------------------------
REGISTRY = '''
[[divergence]]
cause = "exp-on-t1"
op = "exp"
target = "t1"
verdict = "fail"
reason = "explains exp"

[[divergence]]
cause = "sum-on-t1"
op = "sum"
target = "t1"
verdict = "*"
reason = "sum was fixed: every result of it passes now"

[[divergence]]
cause = "on-t9"
op = "*"
target = "t9"
verdict = "*"
reason = "t9 was not in the run"

[[divergence]]
cause = "exp-float64"
op = "exp"
target = "*"
floatx = "float64"
verdict = "*"
reason = "the run was float32 only"

[[divergence]]
cause = "log-not-run"
op = "log"
target = "t1"
verdict = "fail"
reason = "log was not run"

[[divergence]]
cause = "config-check"
op = "config/floatx/*"
target = "t1"
verdict = "fail"
reason = "a configuration check"
'''


def test_a_known_result_names_the_cause_that_explains_it(tmp_path):
    registry = _load(tmp_path, REGISTRY)
    record = known.mark(_result("exp", "t1", "fail"), registry, {"fail"})
    assert record["status"] == "known"
    assert record["known"] == {"reason": "explains exp", "link": "", "cause": "exp-on-t1"}
    assert known.explained_by(record, registry).cause == "exp-on-t1"
    # a known record of an older harness (no cause): the entry matching its raw verdict
    old = {**record, "known": {"reason": "explains exp", "link": ""}}
    assert known.explained_by(old, registry).cause == "exp-on-t1"


def test_stale_means_covered_by_the_run_yet_explaining_nothing(tmp_path):
    registry = _load(tmp_path, REGISTRY)
    records = [known.mark(_result("exp", "t1", "fail"), registry, {"fail"}),
               _result("exp", "t2", "pass"),
               _result("sum", "t1", "pass"), _result("sum", "t2", "pass"),
               {**_result("config/floatx/float64", "t1", "pass"), "check": "floatx/float64"}]
    rows = {row["entry"].cause: row for row in known.account(registry, records)}
    assert (rows["exp-on-t1"]["explains"], rows["exp-on-t1"]["stale"]) == (1, False)
    assert (rows["sum-on-t1"]["covered"], rows["sum-on-t1"]["stale"]) == (1, True)
    for idle in ("on-t9", "exp-float64", "log-not-run"):  # the run did not cover them
        assert (rows[idle]["covered"], rows[idle]["stale"]) == (0, False), idle
    assert rows["config-check"]["stale"]  # configuration checks count like op results
    stale = known.stale(registry, records)
    assert [s["cause"] for s in stale] == ["sum-on-t1", "config-check"]
    assert stale[0] == {"cause": "sum-on-t1", "op": ["sum"], "target": ["t1"], "floatx": ["*"],
                        "verdict": ["*"], "reason": "sum was fixed: every result of it passes now",
                        "covered": 1}


def test_the_registry_a_run_records_reads_back_the_same(tmp_path):
    registry = _load(tmp_path, REGISTRY + '''
[[divergence]]
op = ["a", "b"]
target = "t1"
floatx = ["float16", "float32"]
verdict = ["fail", "nan"]
reason = "r"
repro = "print(1)"
upstream = "bug"
seen_on = "keras 2.3.1"
''')
    described = known.describe(registry)
    assert known.from_description(described) == registry
    assert known.recorded({"registry": described}) == registry
    assert known.recorded({}) is None
    # merged shards with differing registries: the last one
    assert known.recorded({"registry": [described[:1], described]}) == registry
    # damaged entries are skipped, not fatal (results files are read back, not trusted)
    assert known.from_description([{"cause": "x"}, 3, *described[:1]]) == registry[:1]


def _write_run(out: Path, registry, records) -> None:
    writer = store.ResultsWriter(out)
    run = {"seed": 7}
    if registry is not None:
        run["registry"] = known.describe(registry)
    writer.write("run", run)
    for record in records:
        writer.write("result", record)
    writer.close()


def test_summary_json_lists_stale_entries_when_the_run_recorded_its_registry(tmp_path):
    registry = _load(tmp_path, REGISTRY)
    records = [known.mark(_result("exp", "t1", "fail"), registry, {"fail"}),
               _result("sum", "t1", "pass")]
    _write_run(tmp_path / "with", registry, records)
    summary = store.load(tmp_path / "with")
    assert [s["cause"] for s in summary["known_stale"]] == ["sum-on-t1"]
    assert {"run", "targets", "results", "pairwise", "config"} <= set(summary)
    _write_run(tmp_path / "without", None, records)  # nothing can be said: no key
    assert "known_stale" not in store.load(tmp_path / "without")


def test_the_end_of_a_run_says_the_stale_entries_and_the_causes(tmp_path, capsys):
    registry = _load(tmp_path, REGISTRY)
    records = [known.mark(_result("exp", "t1", "fail"), registry, {"fail"}),
               _result("sum", "t1", "pass"), _result("div", "t1", "error", message="boom")]
    _write_run(tmp_path / "out", registry, records)
    runcli._print_summary(store.load(tmp_path / "out"), tmp_path / "out")
    text = capsys.readouterr().out
    assert "1 unexpected divergences" in text
    assert "1 known divergences, explained by 1 cause in the registry" in text
    assert "1 stale known-divergence entry" in text
    assert "sum-on-t1: op sum  target t1  floatx *  verdict * (1 results in scope)" in text
    # none stale: no such line
    _write_run(tmp_path / "fresh", registry, records[:1])
    runcli._print_summary(store.load(tmp_path / "fresh"), tmp_path / "fresh")
    assert "stale" not in capsys.readouterr().out
