"""The HTML report, junit.xml and merged summary.json, rendered from synthetic results."""
from __future__ import annotations

import json
import re
import subprocess
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest

from conformance.report import merge, render, repro, synthetic
from conformance.report.fmt import DIVERGENT, VERDICTS
from conftest import python36_syntax_errors, require_env

EMPTY = {"run": {}, "targets": [], "results": [], "pairwise": []}


def _render(tmp_path, summaries, dirs=None, name="report", **options):
    html = render(summaries, tmp_path / name / "index.html", dirs, **options)
    return html, html.read_text(encoding="utf-8")


def _rows(text: str) -> list[str]:
    return re.findall(r'<tr class="row"[^>]*>', text)


def _junit(path: Path):
    root = ET.parse(path.parent / "junit.xml").getroot()
    cases = root.findall(".//testcase")
    return root, cases


def _array(values, dtype):
    array = np.asarray(values, dtype=dtype)
    return {"dtype": dtype, "shape": list(array.shape), "values": array.tolist()}


def _result(op, target, status, floatx="float32", **fields):
    record = {"op": op, "family": "elementwise", "target": target, "floatx": floatx,
              "status": status, "verdict": status, "tolerance": "E = 1 u |y|", "message": "",
              "examples": 10, "counts": {status: 10}, "max_abs_err": 0.0, "max_ulp": 0.0,
              "worst_ratio": 0.0, "ratios": [0.1] * 10, "counterexample": None}
    record.update(fields)
    return record


# -- content --------------------------------------------------------------------
def test_every_verdict_is_rendered_with_its_colour(tmp_path):
    summary = synthetic.summary(ops=8, targets=6)
    statuses = {r["status"] for r in summary["results"]}
    assert statuses == set(VERDICTS), "the synthetic run must cover every verdict"
    html, text = _render(tmp_path, [summary])
    for verdict in VERDICTS:
        assert f'class="v-{verdict}"' in text, verdict
    assert len(_rows(text)) == 8 * 3
    # header: seed, profile, dates, duration, harness version, target details
    for needle in ("1234", "default", "2026-01-02T03:04:05", "10 min 00 s", "0.1.0",
                   "3.15.0", "2.3.1", "channels_last", "/opt/envs/keras2/bin/python"):
        assert needle in text, needle
    # per-op detail, histogram, counterexample with repro, known divergence reasons
    assert 'id="op-exp"' in text
    assert "<svg" in text and 'class="chart"' in text
    assert "counterexample on" in text and "KERAS_BACKEND" in text
    assert "epsilon applied after clipping" in text
    assert "Coverage" in text and "Pairwise agreement" in text
    # readable without JavaScript: no row starts hidden; the filter form is revealed by JS
    assert not any("hidden" in row for row in _rows(text))
    assert re.search(r'<form id="filters" hidden', text)


def test_counterexample_marks_the_worst_element_and_lists_every_target(tmp_path):
    x = _array([0.5, 1.0, 2.0], "float32")
    ref = _array([1.6487212707001282, 2.718281828459045, 7.38905609893065], "float64")
    good = _array([1.6487212, 2.7182817, 7.389056], "float32")
    bad = _array([1.6487212, 2.7182817, 7.5], "float32")
    cx = {"target": "keras3-b", "verdict": "fail", "message": "output 0: error 0.11 > allowed",
          "shrunk": True, "shrink_calls": 12, "worst_index": [0, 2], "inputs": {"x": x},
          "reference": [ref],
          "outputs": {"keras3-a": {"status": "ok", "outputs": [good]},
                      "keras3-b": {"status": "ok", "outputs": [bad]},
                      "keras3-c": {"status": "error", "message": "ValueError: nope"}},
          "call": {"fn": "keras.ops.exp", "kwargs": {}}, "tolerance": "E = 4 ulp(y)"}
    results = [_result("exp", "keras3-a", "pass"),
               _result("exp", "keras3-b", "fail", worst_ratio=1e5, counterexample=cx),
               _result("exp", "keras3-c", "error", message="ValueError: nope")]
    html, text = _render(tmp_path, [{**EMPTY, "results": results}])
    block = text[text.index('id="cx-exp-keras3-b-float32"'):]
    block = block[:block.index("</details>")]
    assert block.count('class="w"') >= 3          # reference, output and difference
    assert "7.5" in block and "keras3-a" in block and "ValueError: nope" in block
    assert "+0.11" in block                         # the elementwise difference
    assert "shrunk in 12 calls" in block


def test_empty_run(tmp_path):
    html, text = _render(tmp_path, [EMPTY])
    assert "No results were recorded" in text
    root, cases = _junit(html)
    assert cases == [] and root.get("tests") == "0"
    assert json.loads((html.parent / "summary.json").read_text())["results"] == []


def test_no_summaries_at_all(tmp_path):
    html, text = _render(tmp_path, [])
    assert "No results were recorded" in text


def test_one_target_only(tmp_path):
    summary = synthetic.summary(ops=5, targets=1)
    html, text = _render(tmp_path, [summary])
    assert len(_rows(text)) == 15
    assert "Fewer than two targets were compared" in text
    assert text.count('class="sortable tgt"') == 1


def test_target_that_never_started(tmp_path):
    summary = synthetic.summary(ops=3, targets=3)
    broken = synthetic.target_record("keras2-cntk", "float32", status="broken")
    broken["reason"] = "OSError: libmpi_cxx.so.1: cannot open shared object file"
    broken["fix"] = "apt-get install libopenmpi3"
    missing = synthetic.target_record("keras2-theano", "float32", status="not provisioned")
    missing.update(reason="environment keras2 is not provisioned",
                   fix="conformance envs sync keras2")
    summary["targets"] += [broken, missing]
    html, text = _render(tmp_path, [summary])
    assert "Could not run" in text
    assert "libmpi_cxx.so.1: cannot open shared object file" in text
    assert "apt-get install libopenmpi3" in text and "conformance envs sync keras2" in text
    root, _ = _junit(html)
    setup = [c for c in root.iter("testcase") if c.get("name").startswith("setup[")]
    assert len(setup) == 2
    assert sum(1 for c in setup if c.find("error") is not None) == 1
    assert sum(1 for c in setup if c.find("skipped") is not None) == 1


def test_interrupted_run_without_run_record(tmp_path):
    summary = synthetic.summary(ops=3, targets=2, finished=False)
    summary["run"] = {}
    summary["targets"] = []
    html, text = _render(tmp_path, [summary])
    assert "did not record its end" in text
    assert "no run information recorded" in text
    assert len(_rows(text)) == 9


def test_interrupted_run_with_partial_header(tmp_path):
    summary = synthetic.summary(ops=2, targets=2, finished=False)
    html, text = _render(tmp_path, [summary])
    assert "did not record its end" in text and "1234" in text


def test_results_jsonl_without_target_records(tmp_path):
    """What an interrupted run leaves: result and pairwise lines only, plus .npz files."""
    from conformance import store

    results_dir = tmp_path / "results"
    writer = store.ResultsWriter(results_dir)
    (results_dir / "counterexamples").mkdir()
    np.savez(results_dir / "counterexamples/divide-keras3-numpy-float64.npz",
             input_x1=np.zeros(1), input_x2=np.ones(1), reference_0=np.zeros(1))
    cx = _counterexample("keras.ops.divide", {"x1": _array(0.0, "float64"),
                                              "x2": _array(1.0, "float64")}, "keras3-numpy",
                         arrays="counterexamples/divide-keras3-numpy-float64.npz")
    for target in ("keras3-numpy", "keras3-jax"):
        writer.write("result", _result("divide", target, "dtype", floatx="float64",
                                       counterexample=cx, worst_ratio=float("inf")))
    writer.write("pairwise", {"op": "divide", "family": "elementwise", "floatx": "float64",
                              "pairs": {"keras3-jax|keras3-numpy": {
                                  "examples": 10, "disagreements": 0, "max_ulp": 0.0,
                                  "max_ratio": 0.0}}})
    writer.close()
    html, text = _render(tmp_path, [store.load(results_dir)], [results_dir])
    assert text.count('class="v-dtype"') >= 2
    assert (html.parent / "counterexamples/divide-keras3-numpy-float64.npz").is_file()
    assert "did not record its end" in text


def test_large_run_stays_small(tmp_path):
    summary = synthetic.summary(ops=200, targets=8)
    html, text = _render(tmp_path, [summary])
    assert html.stat().st_size < 5 * 1024 * 1024
    assert len(_rows(text)) == 600
    assert text.count("<svg") <= 41            # capped histograms + one heatmap
    assert "histogram left out" in text
    root, cases = _junit(html)
    assert len(cases) == 200 * 8 * 3


# -- safety ---------------------------------------------------------------------
def test_backend_text_is_escaped(tmp_path):
    evil = "<script>alert(1)</script>"
    results = [_result("softmax", "keras3-a", "error", message=f"ValueError: {evil}"),
               _result("softmax", 'evil"<img src=x onerror=alert(2)>', "fail",
                       message=evil, worst_ratio=3.0)]
    pairwise = [{"op": "softmax", "family": "elementwise", "floatx": "float32", "pairs": {
        'evil"<img src=x onerror=alert(2)>|keras3-a': {"examples": 3, "disagreements": 1,
                                                      "max_ulp": 9.0, "max_ratio": 3.0}}}]
    targets = [{"id": "keras3-a", "floatx": "float32", "status": "broken",
                "reason": evil, "fix": evil}]
    html, text = _render(tmp_path, [{**EMPTY, "results": results, "pairwise": pairwise,
                                     "targets": targets}])
    assert evil not in text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in text
    assert "<img src=x" not in text
    assert text.count("<script>") == 1  # the page's own script only
    ET.parse(html.parent / "junit.xml")  # still well-formed XML


def test_control_characters_keep_junit_well_formed(tmp_path):
    results = [_result("abs", "keras3-a", "error", message="bad \x00\x1b[31m byte")]
    html, _ = _render(tmp_path, [{**EMPTY, "results": results}])
    _, cases = _junit(html)
    assert len(cases) == 1


def test_no_external_urls(tmp_path):
    summary = synthetic.summary(ops=6, targets=3)
    html, text = _render(tmp_path, [summary])
    assert not re.search(r"""(?:src|href)\s*=\s*["']?\s*(?:https?:)?//""", text, re.I)
    assert "<link" not in text
    assert not re.search(r"<script[^>]+src", text)
    assert "@import" not in text and "url(http" not in text
    assert "http://" not in text  # not even SVG namespaces


# -- divergences by cause --------------------------------------------------------------
CAUSES_REGISTRY = """
[[divergence]]
cause = "cntk-no-bool"
op = ["equal", "less"]
target = "keras2-cntk"
verdict = "dtype"
reason = "CNTK has no boolean tensors: comparisons return 0/1 in floatx."
repro = '''
from keras import backend as K
print(K.eval(K.equal(K.constant([1.]), K.constant([1.]))).dtype)  # <float32>
'''
upstream = "bug"
seen_on = "keras 2.3.1, cntk 2.7"

[[divergence]]
op = "sign"
target = "keras2-cntk"
verdict = "fail"
reason = "sign(90.0625) = 0.99999994"

[[divergence]]
cause = "theano-kernel-flip"
op = "conv2d"
target = "keras2-theano"
verdict = "fail"
reason = "filter_flip=True"

[[divergence]]
cause = "jax-float64"
op = "*"
target = "keras3-jax"
floatx = "float64"
verdict = "dtype"
reason = "x64 disabled"
"""


def _pairs(op, floatx, targets, disagree=()):
    pairs = {}
    for i, a in enumerate(targets):
        for b in targets[i + 1:]:
            pairs[f"{a}|{b}"] = {"examples": 10, "disagreements": 3 if {a, b} & set(disagree) else 0,
                                 "max_ulp": 0.0, "max_ratio": 0.0}
    return {"op": op, "family": "elementwise", "floatx": floatx, "pairs": pairs}


def _causes_summary(tmp_path):
    from conformance import known

    path = tmp_path / "known.toml"
    path.write_text(CAUSES_REGISTRY)
    registry = known.load(path)
    mark = lambda r: known.mark(r, registry, DIVERGENT)
    targets = ["keras2-cntk", "keras2-theano", "keras3-jax"]
    results = [mark(_result("equal", "keras2-cntk", "dtype")),
               mark(_result("less", "keras2-cntk", "dtype")),
               mark(_result("conv2d", "keras2-theano", "fail")),
               _result("sign", "keras2-cntk", "pass"),            # sign was fixed: stale
               # unexplained: two targets err the same way, one fails
               _result("cumsum", "keras2-cntk", "error", message="IndexError: <tuple>"),
               _result("cumsum", "keras2-theano", "error", message="IndexError: <tuple>"),
               _result("cumsum", "keras3-jax", "pass"),
               _result("tanh", "keras2-cntk", "fail", message="error 1e-3 > allowed 1e-7")]
    # every target fails kl_divergence alike and agrees pairwise: the reference differs
    results += [_result("kl_divergence", t, "fail", floatx="float16") for t in targets]
    # softsign: all fail, but two of them disagree with each other: backend divergence
    results += [_result("softsign", t, "fail") for t in targets]
    pairwise = [_pairs("kl_divergence", "float16", targets),
                _pairs("softsign", "float32", targets, disagree=["keras3-jax"])]
    target_records = [{"id": t, "floatx": fx, "status": "ready"} for t in targets
                      for fx in ("float16", "float32")]
    return {"run": {"seed": 5, "registry": known.describe(registry)}, "targets": target_records,
            "results": results, "pairwise": pairwise}


def test_the_report_opens_with_the_divergences_by_cause(tmp_path):
    html, text = _render(tmp_path, [_causes_summary(tmp_path)])
    # the first section, before the summary and the 5,000 records
    assert text.index('id="causes"') < text.index('id="summary"') < text.index('id="matrix"')
    section = text[text.index('id="causes"'):text.index('id="summary"')]
    # unexplained first, grouped by (op, verdict): cumsum's two errors are one row
    assert section.index("Unexplained divergences") < section.index("Known causes")
    assert section.count('href="#op-cumsum"') == 1
    assert re.search(r'href="#op-cumsum">cumsum</a>.*?v-error.*?<td class="num">2</td>', section, re.S)
    assert "IndexError: &lt;tuple&gt;" in section
    # known causes: results explained, reason, repro escaped in a <pre>, upstream, seen on
    assert re.search(r"cntk-no-bool</b> <span class=\"cnt\">2 results", section)
    assert "upstream bug" in section and "seen on keras 2.3.1, cntk 2.7" in section
    assert "<pre><code>from keras import backend as K" in section
    assert "# &lt;float32&gt;" in section and "<float32>" not in text
    assert "theano-kernel-flip</b> <span class=\"cnt\">1 result" in section
    assert section.count("no repro") >= 1
    # stale: sign ran (and passed) on keras2-cntk; jax-float64: no float64 ran, so not stale
    stale = section[section.index('id="stale"'):]
    assert "sign-keras2-cntk" in stale and "jax-float64" not in stale.split("</table>")[0]
    assert "1 entry about what this run did not cover" in section
    # all targets agree, the reference differs: kl_divergence float16 only
    agree = section[section.index('id="agree"'):section.index('id="known-causes"')]
    assert 'href="#op-kl_divergence"' in agree and "softsign" not in agree
    assert "all targets agree, reference differs (float16)" in section
    # the merged summary.json beside the report says the stale entries
    written = json.loads((html.parent / "summary.json").read_text())
    assert [s["cause"] for s in written["known_stale"]] == ["sign-keras2-cntk"]


def test_agreement_needs_every_target_compared_and_the_same_verdict(tmp_path):
    from conformance.report import causes

    targets = ["a", "b", "c"]
    ready = [{"id": t, "floatx": "float32", "status": "ready"} for t in targets]

    def agree(results, pairwise):
        return causes.build({"run": {}, "targets": ready, "results": results,
                             "pairwise": pairwise})["agree"]

    fails = [_result("op", t, "fail") for t in targets]
    assert [a["op"] for a in agree(fails, [_pairs("op", "float32", targets)])] == ["op"]
    # one target passes, or fails another way: a backend divergence, not the reference
    mixed = fails[:2] + [_result("op", "c", "pass")]
    assert not agree(mixed, [_pairs("op", "float32", targets)])
    assert not agree(fails[:2] + [_result("op", "c", "nan")], [_pairs("op", "float32", targets)])
    # a target nobody compared with (no pairwise examples): nothing says they agree
    assert not agree(fails, [_pairs("op", "float32", targets[:2])])
    assert not agree(fails, [])
    # known results count with their raw verdict; an unsupported target takes no part
    known_one = [{**fails[0], "status": "known", "known": {"reason": "r", "link": ""}}]
    rows = agree(known_one + fails[1:2] + [_result("op", "c", "unsupported")],
                 [_pairs("op", "float32", targets[:2])])
    assert [(a["targets"], a["known"]) for a in rows] == [(["a", "b"], 1)]


def test_causes_of_a_run_that_recorded_no_registry_come_from_its_records(tmp_path):
    results = [_result("exp", "t", "known", verdict="fail",
                       known={"reason": "because <b>", "link": "", "cause": "exp-cause"}),
               _result("log", "t", "known", verdict="fail",
                       known={"reason": "older harness, no cause id", "link": ""})]
    html, text = _render(tmp_path, [{**EMPTY, "results": results}])
    section = text[text.index('id="causes"'):text.index('id="summary"')]
    assert "did not record its registry" in section
    assert "exp-cause" in section and "because &lt;b&gt;" in section
    assert "older harness, no cause id" in section and "(no cause id)" in section
    assert "known_stale" not in json.loads((html.parent / "summary.json").read_text())


# -- junit and summary ----------------------------------------------------------------
def test_junit_counts(tmp_path):
    summary = synthetic.summary(ops=10, targets=4)
    html, _ = _render(tmp_path, [summary])
    root, cases = _junit(html)
    results = summary["results"]
    assert len(cases) == len(results)
    assert int(root.get("tests")) == len(results)
    failures = [c for c in cases if c.find("failure") is not None]
    skipped = [c for c in cases if c.find("skipped") is not None]
    assert len(failures) == sum(r["status"] in DIVERGENT for r in results)
    assert int(root.get("failures")) == len(failures)
    assert len(skipped) == sum(r["status"] == "unsupported" for r in results)
    known = [c for c in cases if c.find("properties/property[@name='known']") is not None]
    assert len(known) == sum(r["status"] == "known" for r in results)
    assert failures and skipped and known, "the synthetic run must hold every kind of case"
    assert all(c.find("failure") is None and c.find("system-out") is not None for c in known)
    names = {(c.get("classname"), c.get("name")) for c in cases}
    assert len(names) == len(cases)  # one distinct test case per (op, target, floatx)


def test_shards_merge_later_record_wins(tmp_path):
    full = synthetic.summary(ops=6, targets=3)
    first_ops = {"exp", "log", "softmax"}
    shard_a = {**full, "results": [r for r in full["results"] if r["op"] in first_ops],
               "pairwise": [p for p in full["pairwise"] if p["op"] in first_ops]}
    shard_b = {**full, "results": [r for r in full["results"] if r["op"] not in first_ops],
               "pairwise": [p for p in full["pairwise"] if p["op"] not in first_ops]}
    rerun = {"run": {**full["run"], "duration_s": 5.0}, "targets": [], "pairwise": [],
             "results": [_result("exp", "keras3-numpy", "pass", floatx="float16",
                                 family="elementwise", message="rerun")]}
    html, text = _render(tmp_path, [shard_a, shard_b, rerun])
    summary = json.loads((html.parent / "summary.json").read_text())
    assert len(summary["results"]) == len(full["results"])
    exp16 = [r for r in summary["results"]
             if (r["op"], r["target"], r["floatx"]) == ("exp", "keras3-numpy", "float16")]
    assert exp16 == [{**exp16[0], "message": "rerun"}] and exp16[0]["status"] == "pass"
    assert summary["run"]["seed"] == full["run"]["seed"]  # same run: one seed
    assert summary["run"]["duration_s"] == 1205.0       # 600 + 600 + 5
    assert len(summary["run"]["shards"]) == 3
    assert "_source" not in json.dumps(summary)
    assert len(_rows(text)) == 18


def test_different_runs_keep_both_seeds():
    a = {**EMPTY, "run": {"seed": 1, "finished": "2026-01-02"}}
    b = {**EMPTY, "run": {"seed": 2}}
    merged = merge([a, b])
    assert merged["run"]["seed"] == [1, 2]
    assert "finished" not in merged["run"]  # one shard did not finish


def test_results_dirs_must_match_summaries(tmp_path):
    with pytest.raises(ValueError):
        render([EMPTY, EMPTY], tmp_path / "index.html", [tmp_path])


# -- repro scripts ----------------------------------------------------------------------
def _counterexample(fn, inputs, target, arrays=None, kwargs=None):
    cx = {"target": target, "verdict": "fail", "message": "output 0: error",
          "worst_index": [0, 0], "inputs": inputs,
          "reference": [_array([1.0, 2.0], "float64")], "outputs": {},
          "call": {"fn": fn, "kwargs": kwargs or {}}, "tolerance": "E = 4 ulp(y)"}
    if arrays:
        cx["arrays"] = arrays
    return cx


def test_repro_keras3_literal_arrays_compile():
    inputs = {"x": _array([[0.5, float("nan")], [float("inf"), -1.0]], "float16"), "axis": -1}
    result = _result("softmax", "keras3-jax", "fail", counterexample=_counterexample(
        "keras.ops.softmax", inputs, "keras3-jax", kwargs={"axis": -1}))
    script = repro.script(result, {"id": "keras3-jax", "flavor": "keras3", "backend": "jax",
                                   "info": {"epsilon": 1e-7}})
    compile(script, "repro.py", "exec")
    assert "os.environ[\"KERAS_BACKEND\"] = 'jax'" in script
    assert "dtype='float16'" in script and "np.nan" in script and "np.inf" in script
    assert "keras.ops.softmax(_tensor(x), axis=-1)" in script
    assert "keras.config.set_floatx('float32')" in script


def test_repro_keras2_uses_placeholders_and_python36_syntax():
    inputs = {"x": _array([0.0, 1.0], "float32")}
    result = _result("exp", "keras2-theano", "fail", counterexample=_counterexample(
        "keras.backend.exp", inputs, "keras2-theano"))
    script = repro.script(result, {"id": "keras2-theano"})
    assert python36_syntax_errors({"repro.py": script}) == {}
    assert "K.placeholder(" in script and "K.function(" in script
    assert "K.exp(_symbolic(x))" in script and "'theano'" in script
    assert not re.search(r"""\bf['"]""", script)  # no f-strings


def test_repro_large_arrays_come_from_the_npz(tmp_path, monkeypatch):
    results_dir = tmp_path / "results"
    (results_dir / "counterexamples").mkdir(parents=True)
    big = np.arange(100, dtype="float32")
    np.savez(results_dir / "counterexamples/exp-keras3-numpy-float32.npz", input_x=big,
             reference_0=np.exp(big.astype("float64")))
    summarised = {"dtype": "float32", "shape": [100], "head": big[:16].tolist(),
                  "min": 0.0, "max": 99.0, "mean": 49.5}
    cx = _counterexample("keras.ops.exp", {"x": summarised}, "keras3-numpy",
                         arrays="counterexamples/exp-keras3-numpy-float32.npz")
    cx["reference"] = [{"dtype": "float64", "shape": [100], "head": [1.0], "min": 1.0,
                        "max": 2.0, "mean": 1.5}]
    summary = {**EMPTY, "results": [_result("exp", "keras3-numpy", "fail", counterexample=cx)]}
    _, text = _render(tmp_path, [summary], [results_dir], name="embedded")
    assert "_npy(" in text and "base64" in text        # small enough: embedded exactly
    monkeypatch.setattr(repro, "EMBED_LIMIT", 0)
    html, text = _render(tmp_path, [summary], [results_dir], name="loaded")
    assert "np.load(&#39;counterexamples/exp-keras3-numpy-float32.npz&#39;)" in text
    assert (html.parent / "counterexamples/exp-keras3-numpy-float32.npz").is_file()


def test_repro_runs_on_keras3_numpy(tmp_path):
    python = require_env("keras3")
    inputs = {"x1": _array([0.0, 1.5], "float64"), "x2": _array([1.0, 3.0], "float64")}
    cx = _counterexample("keras.ops.divide", inputs, "keras3-numpy")
    cx["reference"] = [_array([0.0, 0.5], "float64")]
    result = _result("divide", "keras3-numpy", "dtype", floatx="float64", counterexample=cx)
    script = tmp_path / "repro.py"
    script.write_text(repro.script(result, {"id": "keras3-numpy", "flavor": "keras3",
                                            "backend": "numpy"}))
    done = subprocess.run([python, str(script)], capture_output=True,
                          text=True, timeout=300, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "output 0: dtype" in done.stdout and "max |out - ref|" in done.stdout


def test_in_memory_nan_and_inf_still_give_standard_json(tmp_path):
    results = [_result("log", "keras3-a", "nan", worst_ratio=float("inf"),
                       max_ulp=float("nan"), ratios=[float("inf"), 0.5])]
    html, text = _render(tmp_path, [{**EMPTY, "results": results}])

    def reject(constant):
        raise AssertionError(f"non-standard JSON constant {constant}")

    summary = json.loads((html.parent / "summary.json").read_text(), parse_constant=reject)
    assert summary["results"][0]["worst_ratio"] == "inf"
    assert 'class="v-nan"' in text


def test_cli_report_merges_shard_folders(tmp_path):
    from conformance import cli, store

    full = synthetic.summary(ops=4, targets=2)
    folders = []
    for index, ops in enumerate([{"exp", "log"}, {"softmax", "sigmoid"}]):
        folder = tmp_path / f"shard{index}"
        writer = store.ResultsWriter(folder)
        writer.write("run", {**full["run"], "shard": f"{index + 1}/2"})
        for record in full["targets"]:
            writer.write("target", record)
        for record in full["results"]:
            if record["op"] in ops:
                writer.write("result", record)
        writer.close()
        folders.append(str(folder))
    out = tmp_path / "merged" / "index.html"
    assert cli.main(["report", *folders, "-o", str(out)]) == 0
    text = out.read_text()
    assert len(_rows(text)) == 4 * 3
    assert "1/2, 2/2" in text  # both shards named in the header
    root, cases = _junit(out)
    assert len(cases) == len(full["results"])


def test_positional_literals_in_a_recorded_call_render(tmp_path):
    """A counterexample whose call passes literals positionally (an axis, None, a list
    of names) renders in the report and in its repro script; an int there once crashed
    the report of a full run."""
    inputs = {"x": _array([1.0, 2.0], "float32"), "mean": _array([0.0], "float32")}
    cx = _counterexample("keras.ops.batch_normalization", inputs, "keras3-jax")
    cx["call"]["args"] = ["x", ["mean", "x"], -1, None, 0.5]
    result = _result("batch_normalization", "keras3-jax", "fail", counterexample=cx)
    script = repro.script(result, {"id": "keras3-jax", "flavor": "keras3", "backend": "jax"})
    compile(script, "repro.py", "exec")
    assert "_tensor(-1), _tensor(None), _tensor(0.5))" in script  # literals pass through
    _, html = _render(tmp_path, [{**EMPTY, "results": [result]}])
    assert "batch_normalization(x, [mean, x], -1, None, 0.5)" in html


def test_conventions_table_shows_each_targets_gradient_at_a_kink(tmp_path):
    conventions = {"at x = 0": {"reference": 0.0, "values": [0.0]}}
    summary = {**EMPTY, "results": [
        _result("grad_relu", "keras3-jax", "pass", conventions=conventions),
        _result("grad_relu", "keras2-theano", "convention",
                message="at x = 0: 0.5 x cotangent, the reference takes 0",
                conventions={"at x = 0": {"reference": 0.0, "values": [0.5]}}),
        _result("grad_relu", "keras2-theano", "pass", floatx="float64", conventions=conventions)]}
    html, text = _render(tmp_path, [summary])
    section = text[text.index('id="conventions"'):text.index('id="details"')]
    row = re.search(r"<tr><td><a href=\"#op-grad_relu\">grad_relu</a>.*?</tr>", section).group(0)
    cells = re.findall(r'<td class="num( v-convention)?">([^<]*)</td>', row)
    assert cells[0] == ("", "0")  # the reference's convention, then one cell per target
    assert sorted(cells[1:]) == [("", "0"), (" v-convention", "0 / 0.5")]
    root, cases = _junit(html)
    assert root.get("failures") == "0"
    out = [c.find("system-out") for c in cases if "keras2-theano-float32" in c.get("name")]
    assert "reference takes 0" in out[0].text


def test_special_values_table_marks_another_class_of_value_and_folds_known_ones(tmp_path):
    def seen(values, reference=("+inf",)):
        return {"x = +inf": {"reference": list(reference), "values": list(values)},
                "x = nan": {"reference": ["nan"], "values": ["nan"]}}
    summary = {**EMPTY, "results": [
        _result("edge_exp", "keras3-jax", "pass", specials=seen(["+inf"])),
        _result("edge_exp", "keras3-openvino", "nan", specials=seen(["3.403e+38"])),
        _result("edge_sign", "keras3-torch", "known", verdict="nan",
                known={"reason": "sign(nan) = 0", "cause": "torch-sign", "link": ""},
                specials={"x = nan": {"reference": ["nan"], "values": ["0"]}}),
        _result("edge_sign", "keras3-jax", "pass",
                specials={"x = nan": {"reference": ["nan"], "values": ["nan"]}})]}
    html, text = _render(tmp_path, [summary])
    section = text[text.index('id="specials"'):text.index('id="details"')]
    shown, folded = section.split("<details>")
    row = re.search(r'<tr><td><a href="#op-edge_exp">edge_exp</a>.*?</tr>', shown).group(0)
    assert "x = +inf" in row
    cells = re.findall(r'<td class="num( v-nan)?">([^<]*)</td>', row)
    assert cells[0] == ("", "+inf")  # the reference, then one cell per target
    assert sorted(c for c in cells[1:] if c[1] != "–") == [("", "+inf"), (" v-nan", "3.403e+38")]
    assert "x = nan" not in shown  # every target agrees there: only counted
    assert re.search(r'edge_sign</a>.*?x = nan.*?v-known">0<', folded)
