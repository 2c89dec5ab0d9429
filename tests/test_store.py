import json
import re

import pytest

from conformance import known, store


def test_records_are_on_disk_as_soon_as_written_and_a_cut_line_is_skipped(tmp_path):
    writer = store.ResultsWriter(tmp_path)
    writer.write("run", {"seed": 7})
    writer.write("result", {"op": "exp", "target": "t", "floatx": "float32", "status": "pass",
                            "max_abs_err": float("inf")})
    # no close(): an interrupted run; then a half-written line from a killed process
    with open(tmp_path / "results.jsonl", "a") as handle:
        handle.write('{"kind": "result", "op": "lo')
    summary = store.load(tmp_path)
    assert summary["run"] == {"seed": 7}
    assert [r["op"] for r in summary["results"]] == ["exp"]
    assert summary["results"][0]["max_abs_err"] == "inf"  # standard JSON, no Infinity
    json.loads((tmp_path / "results.jsonl").read_text().splitlines()[1])


def test_summary_roundtrip(tmp_path):
    summary = {"run": {"seed": 1}, "targets": [{"id": "t", "floatx": "float32", "status": "ready"}],
               "results": [{"op": "exp", "target": "t", "floatx": "float32", "status": "pass",
                            "max_ulp": 1.5}],
               "pairwise": [{"op": "exp", "floatx": "float32", "pairs": {}}]}
    path = store.write_summary(tmp_path, summary)
    assert store.load(path) == summary


def test_registry_matches_globs_and_verdicts(tmp_path):
    path = tmp_path / "known.toml"
    path.write_text('''
[[divergence]]
op = "binary_crossentropy*"
target = "keras2-tensorflow"
verdict = "fail"
reason = "epsilon added after clipping"
link = "https://example.invalid/issue"
''')
    registry = known.load(path)
    assert known.lookup(registry, "binary_crossentropy", "keras2-tensorflow", "float32", "fail")
    assert not known.lookup(registry, "binary_crossentropy", "keras2-theano", "float32", "fail")
    assert not known.lookup(registry, "binary_crossentropy", "keras2-tensorflow", "float32", "nan")


def test_registry_entry_without_reason_is_refused(tmp_path):
    path = tmp_path / "known.toml"
    path.write_text('[[divergence]]\nop = "x"\ntarget = "y"\nverdict = "fail"\n')
    with pytest.raises(known.RegistryError, match="lacks reason"):
        known.load(path)


@pytest.mark.parametrize("entry, says", [
    ('verdict = "fail"\nreason = "  "\n', "empty reason"),
    ('verdict = "fial"\nreason = "r"\n', "verdict 'fial' is none of"),
])
def test_registry_entries_that_could_not_mean_anything_are_refused(tmp_path, entry, says):
    path = tmp_path / "known.toml"
    path.write_text('[[divergence]]\nop = "x"\ntarget = "y"\n' + entry)
    with pytest.raises(known.RegistryError, match=says):
        known.load(path)
    path.write_text('divergence = 3\n')
    with pytest.raises(known.RegistryError, match=r"\[\[divergence\]\] tables"):
        known.load(path)


def test_registry_accepts_lists_of_globs(tmp_path):
    path = tmp_path / "known.toml"
    path.write_text('[[divergence]]\nop = ["elu", "selu"]\ntarget = ["keras*-tensorflow"]\n'
                    'verdict = "fail"\nreason = "exp(x) - 1"\n')
    registry = known.load(path)
    assert known.lookup(registry, "selu", "keras2-tensorflow", "float32", "fail")
    assert not known.lookup(registry, "gelu", "keras2-tensorflow", "float32", "fail")


@pytest.mark.parametrize("content, says", [
    (None, "holds neither results.jsonl nor summary.json"),
    ("garbage\n", "holds no records of a conformance run"),
    ('["a list"]\n{"kind": "result"}\n', "a record lacks 'op'"),
])
def test_what_is_not_results_is_a_clear_error(tmp_path, content, says):
    if content is not None:
        (tmp_path / "results.jsonl").write_text(content)
    with pytest.raises(store.StoreError, match=re.escape(says)):
        store.load(tmp_path)


def test_a_summary_that_is_not_ours_is_a_clear_error(tmp_path):
    (tmp_path / "summary.json").write_text('{"x": 1}')
    with pytest.raises(store.StoreError, match="no 'results'"):
        store.load(tmp_path / "summary.json")
    (tmp_path / "summary.json").write_text('{"results": [')
    with pytest.raises(store.StoreError, match="not a summary.json"):
        store.load(tmp_path)


def test_report_of_a_folder_without_results_exits_2(tmp_path, capsys):
    from conformance import cli

    assert cli.main(["report", str(tmp_path), "-o", str(tmp_path / "r.html")]) == 2
    assert "holds neither results.jsonl nor summary.json" in capsys.readouterr().err
