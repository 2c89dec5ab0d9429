"""`conformance baseline save` / `conformance compare` on fake ops-module targets.

One target id, `fake`, is served by tests/fake_plugins/numpy_ops.py when the baseline
is saved and, "after the upgrade", either by the same module (nothing may change) or by
numpy_ops_v2.py: exp one ulp up (within tolerance), sum off by 1% of max|x| (beyond
tolerance), log gone (newly unsupported), cos new (newly supported), maximum raising
(newly failing), sin untouched (unchanged).
"""
import json
import sys
from pathlib import Path

import numpy as np
import pytest

from conformance import baseline, catalog, corpus, strategies
from conformance import cli as conformance_cli
from conformance.report import regression
from conftest import FAKE_PLUGINS

OPS = "exp,sum,log,cos,sin,maximum"
EXAMPLES = 4


def project(folder: Path, module: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "pyproject.toml").write_text(
        "[tool.conformance.targets.fake]\n"
        'flavor = "ops-module"\n'
        f'backend = "{module}"\n'
        f"python = {json.dumps(sys.executable)}\n"
        f"pythonpath = [{json.dumps(FAKE_PLUGINS)}]\n"
        "timeout_s = 20.0\n")
    return folder


def cli(*argv) -> int:
    return conformance_cli.main([str(a) for a in argv])


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    """One baseline of numpy_ops at float32 (and exp at float64), shared by the tests."""
    root = tmp_path_factory.mktemp("baseline")
    v1 = project(root / "v1", "numpy_ops")
    store = root / "baselines"
    assert cli("--project", v1, "baseline", "save", "before", "--targets", "fake", "--ops", OPS,
               "--floatx", "float32", "--examples", EXAMPLES, "--dir", store) == 0
    assert cli("--project", v1, "baseline", "save", "before64", "--targets", "fake",
               "--ops", "exp", "--floatx", "float64", "--examples", EXAMPLES, "--dir", store) == 0
    return {"root": root, "v1": v1, "v2": project(root / "v2", "numpy_ops_v2"), "dir": store,
            "path": store / "before"}


def run_compare(saved, tmp_path, module_project, name="before", *extra):
    out = tmp_path / "compare"
    code = cli("--project", saved[module_project], "compare", name, "--dir", saved["dir"],
               "--out", out, *extra)
    comparison = json.loads((out / "comparison.json").read_text())
    by_key = {(e["op"], e["floatx"]): e for e in comparison["entries"]}
    return code, comparison, by_key, out


def copy_baseline(saved, tmp_path, name="before") -> Path:
    import shutil

    copy = tmp_path / "baselines" / name
    shutil.copytree(saved["dir"] / name, copy)
    return copy


# -- saving ------------------------------------------------------------------------
def test_save_writes_manifest_corpus_outputs_and_versions(saved):
    path = saved["path"]
    manifest = json.loads((path / "manifest.json").read_text())
    assert manifest["format"] == baseline.FORMAT
    assert manifest["format_version"] == baseline.FORMAT_VERSION
    assert manifest["harness"]["harness"] and manifest["harness"]["hypothesis"]
    cases = {(c["op"], c["floatx"]) for c in manifest["corpus"]["cases"]}
    assert cases == {(op, "float32") for op in OPS.split(",")}
    assert all(c["examples"] == EXAMPLES for c in manifest["corpus"]["cases"])
    fake = manifest["targets"]["fake"]
    assert fake["info"]["float32"]["backend_library"] == "numpy_ops"
    assert fake["info"]["float32"]["numpy"] == np.__version__
    assert fake["info"]["float32"]["python"]
    assert any(line.lower().startswith("numpy==") for line in fake["pip_freeze"]["packages"])
    status = {e["op"]: e["status"] for e in manifest["entries"]}
    assert status == {"exp": "pass", "sum": "pass", "log": "pass", "cos": "unsupported",
                      "sin": "pass", "maximum": "pass"}
    exp = next(e for e in manifest["entries"] if e["op"] == "exp")
    assert exp["examples"] == EXAMPLES and "max_ulp" in exp and "worst_ratio" in exp
    stored = baseline.load_outputs(path, exp["file"])
    examples = corpus.load(path / "corpus", "exp-float32")
    for example, record in zip(examples, stored):
        output = record["outputs"][0]
        assert output["sha256"] == baseline.output_digest(np.exp(example["x"]))
        np.testing.assert_array_equal(output["array"], np.exp(example["x"]))
        assert {"shape", "dtype", "min", "max", "mean", "nan", "inf"} <= set(output)


def test_save_refuses_to_overwrite_without_force(saved, capsys):
    assert cli("--project", saved["v1"], "baseline", "save", "before", "--targets", "fake",
               "--ops", "exp", "--floatx", "float32", "--dir", saved["dir"]) == 2
    assert "exists" in capsys.readouterr().err


def test_a_baseline_name_cannot_leave_the_folder(saved, tmp_path, capsys):
    for name in ("../escaped", "a/b", ".hidden"):
        assert cli("--project", saved["v1"], "baseline", "save", name, "--targets", "fake",
                   "--ops", "exp", "--floatx", "float32", "--dir", tmp_path / "in") == 2
        assert "use letters, digits" in capsys.readouterr().err
    assert not (tmp_path / "escaped").exists() and not (tmp_path / "in").exists()


def test_list_shows_baselines(saved, capsys):
    assert cli("--project", saved["v1"], "baseline", "list", "--dir", saved["dir"]) == 0
    out = capsys.readouterr().out
    assert "before " in out and "before64" in out and "fake" in out


# -- comparing ---------------------------------------------------------------------
def test_same_plugin_is_bit_identical(saved, tmp_path, capsys):
    code, comparison, by_key, out = run_compare(saved, tmp_path, "v1")
    assert code == 0
    assert {e["change"] for e in comparison["entries"]} == {"unchanged"}
    assert comparison["counts"]["unchanged"] == len(OPS.split(","))
    assert all(e["drift_ulp"] in (0.0, None) for e in comparison["entries"])
    assert not comparison["versions"]["fake"]["changed"]
    html = (out / "index.html").read_text()
    assert 'id="regression"' in html and "no regression" in html
    assert "no regression against baseline before" in capsys.readouterr().out


def test_upgraded_plugin_is_classified_per_op(saved, tmp_path, capsys):
    code, comparison, by_key, out = run_compare(saved, tmp_path, "v2")
    change = {op: e["change"] for (op, fx), e in by_key.items()}
    assert change == {"exp": "within", "sum": "beyond", "log": "newly_unsupported",
                      "cos": "newly_supported", "maximum": "newly_failing", "sin": "unchanged"}
    exp = by_key[("exp", "float32")]
    assert exp["drift_ulp"] == 1.0  # one ulp up, max over elements
    assert 0 < exp["drift_ratio"] <= 1
    assert exp["old"]["status"] == exp["new"]["status"] == "pass"
    total = by_key[("sum", "float32")]
    assert total["drift_ratio"] > 1 and total["new"]["status"] == "fail"
    assert by_key[("maximum", "float32")]["new"]["status"] == "error"
    assert comparison["regressions"] == 2 and code == 1
    # the versions that changed in between
    info = {c["key"]: (c["old"], c["new"]) for c in comparison["versions"]["fake"]["info"]}
    assert info["backend_version"] == ("unknown", "2.0.0")
    assert info["backend_library"] == ("numpy_ops", "numpy_ops_v2")
    printed = capsys.readouterr().out
    assert "2 regression(s)" in printed and "changed beyond tolerance" in printed
    html = (out / "index.html").read_text()
    for label in ("changed beyond tolerance", "changed within tolerance", "newly unsupported",
                  "newly supported", "newly failing", "numpy_ops_v2", "Version changes"):
        assert label in html, label


def test_drift_is_reported_in_ulps_at_float64(saved, tmp_path):
    code, comparison, by_key, _ = run_compare(saved, tmp_path, "v2", "before64")
    entry = by_key[("exp", "float64")]
    assert (entry["change"], entry["drift_ulp"]) == ("within", 1.0)
    assert code == 0


def test_compare_a_subset_of_ops(saved, tmp_path):
    code, comparison, by_key, _ = run_compare(saved, tmp_path, "v2", "before", "--ops", "exp,sin")
    assert set(by_key) == {("exp", "float32"), ("sin", "float32")} and code == 0


def test_replay_uses_the_stored_inputs_not_a_new_draw(saved, tmp_path, monkeypatch):
    """Change what hypothesis would draw (strategy and corpus seed): the replay is the
    same, bit for bit, because it reads the stored examples."""
    exp = next(op for op in catalog.all_ops() if op.name == "exp")
    stored = corpus.load(saved["path"] / "corpus", "exp-float32")
    before = corpus.digest(corpus.draw(exp, "float32", EXAMPLES))
    assert before == corpus.digest(stored)  # the stored corpus is what the seed drew

    from hypothesis import strategies as st
    assert corpus.digest(corpus.draw(exp, "float32", EXAMPLES, corpus.SEED + 1)) != before
    monkeypatch.setattr(strategies, "unary", lambda fx, lo, hi, **kw: st.just(
        {"x": np.full((3,), 0.5, dtype=fx)}))
    assert corpus.digest(corpus.draw(exp, "float32", EXAMPLES)) != before  # new draws differ

    def no_drawing(*args, **kwargs):
        raise AssertionError("compare must not draw examples")

    monkeypatch.setattr(corpus, "draw", no_drawing)
    code, comparison, by_key, _ = run_compare(saved, tmp_path, "v1")
    assert by_key[("exp", "float32")]["change"] == "unchanged" and code == 0
    assert corpus.digest(corpus.load(saved["path"] / "corpus", "exp-float32")) == before


def test_a_changed_corpus_file_is_refused(saved, tmp_path, capsys):
    copy = copy_baseline(saved, tmp_path)
    npz = copy / "corpus" / "exp-float32.npz"
    with np.load(npz) as data:
        arrays = {k: data[k] for k in data.files}
    first = sorted(arrays)[0]
    arrays[first] = arrays[first] + np.asarray(1, arrays[first].dtype)
    np.savez_compressed(npz, **arrays)
    code = cli("--project", saved["v1"], "compare", copy, "--out", tmp_path / "out")
    assert code == 2
    assert "do not match their digest" in capsys.readouterr().err


def test_corpus_keeps_static_argument_types(tmp_path):
    examples = [{"x": np.arange(6, dtype="float16").reshape(2, 3), "axis": (0, 1),
                 "shape": [2, 3], "nested": [[1, 2], [3, 4]], "none": None, "rate": 0.1,
                 "nan": float("nan"), "scalar": np.float32(1.5), "flag": True, "mode": "same",
                 "seq": (np.ones(2, "int32"), np.zeros(2, "bool"))}]
    entry = corpus.save(tmp_path, "op", "float16", examples)
    back = corpus.load(tmp_path, entry["file"], entry["sha256"])[0]
    assert back["axis"] == (0, 1) and isinstance(back["axis"], tuple)
    assert back["shape"] == [2, 3] and back["nested"] == [[1, 2], [3, 4]]
    assert back["none"] is None and back["rate"] == 0.1 and np.isnan(back["nan"])
    assert back["scalar"].dtype == np.float32 and back["scalar"] == 1.5
    assert back["flag"] is True and back["mode"] == "same"
    assert back["x"].dtype == np.float16 and back["x"].tobytes() == examples[0]["x"].tobytes()
    assert isinstance(back["seq"], tuple) and back["seq"][1].dtype == bool
    assert corpus.digest([back]) == entry["sha256"]


# -- versions, formats, digests -------------------------------------------------------
def test_version_changes_are_reported(saved, tmp_path, capsys):
    copy = copy_baseline(saved, tmp_path)
    manifest = json.loads((copy / "manifest.json").read_text())
    fake = manifest["targets"]["fake"]
    packages = fake["pip_freeze"]["packages"]
    numpy_line = next(p for p in packages if p.lower().startswith("numpy=="))
    dropped = next(p for p in packages if p != numpy_line and "==" in p)
    fake["pip_freeze"]["packages"] = [p for p in packages if p not in (numpy_line, dropped)] + [
        "numpy==1.26.4", "gone-package==0.1"]
    fake["info"]["float32"]["python"] = "3.10.0"
    manifest["harness"]["hypothesis"] = "6.0.0"
    (copy / "manifest.json").write_text(json.dumps(manifest))
    out = tmp_path / "out"
    assert cli("--project", saved["v1"], "compare", copy, "--out", out) == 0
    comparison = json.loads((out / "comparison.json").read_text())
    change = comparison["versions"]["fake"]
    assert change["changed"]
    assert {"name": "numpy", "old": "1.26.4", "new": np.__version__} in change["packages"]["changed"]
    assert {"name": "gone-package", "old": "0.1"} in change["packages"]["removed"]
    added = dropped.split("==")[0].lower().replace("_", "-")
    assert added in [p["name"] for p in change["packages"]["added"]]
    assert {"key": "python", "old": "3.10.0", "new": sys.version.split()[0]} in change["info"]
    assert comparison["harness_change"]["hypothesis"]["old"] == "6.0.0"
    printed = capsys.readouterr().out
    assert f"numpy 1.26.4 -> {np.__version__}" in printed and "-gone-package 0.1" in printed
    html = (out / "index.html").read_text()
    assert "gone-package" in html and "1.26.4" in html


@pytest.mark.parametrize("version, advice", [(99, "upgrade the harness"),
                                             (0, "record it again with this harness")])
def test_other_format_versions_are_refused(saved, tmp_path, capsys, version, advice):
    copy = copy_baseline(saved, tmp_path)
    manifest = json.loads((copy / "manifest.json").read_text())
    manifest["format_version"] = version
    (copy / "manifest.json").write_text(json.dumps(manifest))
    assert cli("--project", saved["v1"], "compare", copy, "--out", tmp_path / "out") == 2
    err = capsys.readouterr().err
    assert f"baseline format version {version}" in err
    assert f"reads format version {baseline.FORMAT_VERSION} only" in err
    assert advice in err
    assert not (tmp_path / "out").exists()


def test_missing_or_foreign_baselines_are_refused(saved, tmp_path, capsys):
    assert cli("--project", saved["v1"], "compare", "nope", "--dir", saved["dir"]) == 2
    assert "no baseline at" in capsys.readouterr().err
    (tmp_path / "empty").mkdir()
    assert cli("--project", saved["v1"], "compare", tmp_path / "empty") == 2
    assert "has no manifest.json" in capsys.readouterr().err


def test_baseline_verdicts_are_judged_again_with_todays_catalog(saved, tmp_path):
    """A stored verdict that today's tolerance would not give (e.g. after a tolerance
    fix) is not mistaken for a backend change."""
    copy = copy_baseline(saved, tmp_path)
    manifest = json.loads((copy / "manifest.json").read_text())
    for entry in manifest["entries"]:
        if entry["op"] == "sin":
            entry["status"] = "fail"
    (copy / "manifest.json").write_text(json.dumps(manifest))
    out = tmp_path / "out"
    assert cli("--project", saved["v1"], "compare", copy, "--out", out) == 0
    comparison = json.loads((out / "comparison.json").read_text())
    sin = next(e for e in comparison["entries"] if e["op"] == "sin")
    assert sin["change"] == "unchanged"
    assert "baseline verdict fail when saved, pass under today's catalog" in sin["notes"][0]


def test_large_outputs_are_kept_as_digests(tmp_path):
    """Outputs above the store limit keep a digest and statistics: identical replays are
    still recognised, changed ones are judged by their verdict, without a drift figure."""
    from conformance import targets as targets_mod

    config = targets_mod.load_project_config(project(tmp_path / "v1", "numpy_ops"))
    fake = targets_mod.load_targets(config, tmp_path)["fake"]
    ops = catalog.select(catalog.all_ops(), ["exp"])
    path = tmp_path / "baselines" / "digests"
    baseline.save(path, ops, ["float32"], [fake], {"fake": sys.executable}, {},
                  examples=3, store_limit=0, log=lambda m: None)
    stored = baseline.load_outputs(path, "outputs/fake/exp-float32")
    outputs = [o for r in stored for o in r["outputs"]]
    assert len(outputs) == 3 and all("array" not in o and o["sha256"] for o in outputs)
    assert not (path / "outputs" / "fake" / "exp-float32.npz").exists()

    same = baseline.compare_baseline(path, {"fake": fake}, {"fake": sys.executable}, {},
                                     tmp_path / "same", log=lambda m: None, render_report=False)
    assert same["entries"][0]["change"] == "unchanged"
    config = targets_mod.load_project_config(project(tmp_path / "v2", "numpy_ops_v2"))
    upgraded = targets_mod.load_targets(config, tmp_path)["fake"]
    moved = baseline.compare_baseline(path, {"fake": upgraded}, {"fake": sys.executable}, {},
                                      tmp_path / "moved", log=lambda m: None, render_report=False)
    entry = moved["entries"][0]
    assert entry["change"] == "within" and entry["drift_ulp"] is None
    assert entry["unmeasured_outputs"] == entry["changed_examples"] > 0
    assert any("digest only" in note for note in entry["notes"])


def test_a_target_not_available_today_is_not_run(saved, tmp_path):
    path = saved["path"]
    result = baseline.compare_baseline(path, {}, {}, {}, tmp_path / "out", log=lambda m: None,
                                       render_report=False)
    assert {e["change"] for e in result["entries"]} == {"not_run"}
    assert result["regressions"] == 0
    assert result["compared"]["not_run"] == {"fake": "no longer configured"}


# -- pieces ---------------------------------------------------------------------------
def test_drift_figures():
    exp = next(op for op in catalog.all_ops() if op.name == "exp")
    x = np.array([0.0, 1.0, 2.0], "float32")
    old = np.exp(x)
    up = np.nextafter(old, np.float32(np.inf))
    figures = baseline.drift(exp, {"x": x}, "float32", 0, old, up)
    assert figures["ulp"] == 1.0 and figures["ratio"] < 1
    nan = old.copy()
    nan[1] = np.nan
    assert baseline.drift(exp, {"x": x}, "float32", 0, old, nan)["ratio"] == float("inf")
    shape = baseline.drift(exp, {"x": x}, "float32", 0, old, old[:2])
    assert shape["ratio"] == float("inf") and "shape" in shape["note"]
    signed = baseline.drift(exp, {"x": x[:2]}, "float32", 0, np.zeros(2, "float32"),
                            -np.zeros(2, "float32"))
    assert signed["ulp"] == 0.0  # -0.0 vs 0.0: not bit-identical, no drift


def test_regression_view_renders_only_with_a_comparison(tmp_path):
    from conformance.report import render, synthetic

    summary = synthetic.summary(ops=2, targets=2)
    comparison = {
        "baseline": {"name": "old <b>", "created": "2026-01-01", "harness": {"harness": "0.1.0"},
                     "corpus": {"seed": 1, "examples": 3}},
        "compared": {"created": "2026-02-01", "not_run": {"keras2-cntk": "not provisioned"}},
        "counts": {"beyond": 1, "unchanged": 1}, "regressions": 1, "status": "regressed",
        "harness_change": {}, "versions": {"t1": {"info": [{"key": "keras", "old": "3.1",
                                                            "new": "3.2"}],
                                                  "packages": {"added": [], "removed": [],
                                                               "changed": []},
                                                  "changed": True}},
        "entries": [
            {"op": "exp", "family": "elementwise", "target": "t1", "floatx": "float32",
             "change": "beyond", "old": {"status": "pass", "examples": 3},
             "new": {"status": "fail", "message": "<script>"}, "drift_ulp": float("inf"),
             "drift_ratio": 12.5, "changed_examples": 2, "notes": ["verdict pass -> fail"]},
            {"op": "sin", "family": "elementwise", "target": "t1", "floatx": "float32",
             "change": "unchanged", "old": {"status": "pass"}, "new": {"status": "pass"},
             "drift_ulp": 0.0, "drift_ratio": 0.0, "changed_examples": 0, "notes": []}]}
    html = regression.render(summary, comparison, tmp_path / "r" / "index.html").read_text()
    assert 'id="regression"' in html and "1 regression " in html
    assert "old &lt;b&gt;" in html and "&lt;script&gt;" in html
    assert "12" in html and "∞" in html and "keras2-cntk" in html and "3.2" in html
    assert (tmp_path / "r" / "junit.xml").exists() and (tmp_path / "r" / "summary.json").exists()
    plain = render([summary], tmp_path / "p" / "index.html").read_text()
    assert 'id="regression"' not in plain and 'href="#regression"' not in plain
