"""The configuration suite (conformance/configsuite.py).

Fast tests drive a fake Keras 3 (tests/fake_keras: NumPy, Keras 3's config logic,
defects planted through FAKE_KERAS_DEFECTS) through the real pool, worker and probes;
the others run the real targets and skip where their environment is not provisioned.
"""
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from conformance import configsuite, known, store, targets
from conformance.pool import Worker
from conformance.report import render
from conftest import require_env

FAKE_KERAS = str(Path(__file__).parent / "fake_keras")

CHECKS = {
    "precedence/KERAS_BACKEND-over-keras.json", "precedence/KERAS_HOME-keras.json-read",
    "precedence/keras.json-backend-without-KERAS_BACKEND",
    "precedence/missing-keras.json-created", "precedence/keras.json-written-only-in-KERAS_HOME",
    "precedence/using-line",
    "floatx/float16", "floatx/float32", "floatx/float64",
    "runtime/set_floatx", "runtime/set_epsilon", "runtime/set_image_data_format",
    "invalid/set_floatx", "invalid/set_image_data_format", "invalid/set_epsilon",
    "epsilon/binary_crossentropy", "epsilon/l2_normalize",
    "image_data_format/conv2d", "image_data_format/max_pool", "image_data_format/avg_pool",
    "image_data_format/conv2d-format-from-keras.json",
}


def fake_keras(tmp_path, defects=(), target_id="fake-keras3"):
    """A Keras 3 flavor target on the fake keras; HOME is sandboxed for every setup so a
    planted defect that reads or writes ~/.keras never touches the real one."""
    home = tmp_path / "user-home"
    home.mkdir(exist_ok=True)
    return targets.Target(id=target_id, flavor="keras3", backend="fakenp",
                          python=sys.executable, pythonpath=(FAKE_KERAS,), timeout_s=30,
                          extra_env=(("FAKE_KERAS_DEFECTS", ",".join(defects)),
                                     ("HOME", str(home))))


def run(target, tmp_path, scenarios=configsuite.SCENARIOS, python=None, **options):
    return configsuite.run_target(target, python or target.python, tmp_path / "work", scenarios,
                                  **options)


def by_check(records):
    return {r["check"]: r for r in records}


def not_passing(records):
    return {r["check"] for r in records if r["status"] != "pass"}


# -- the fake Keras: every check, and every planted defect ----------------------------------
def test_a_correct_keras_passes_every_check(tmp_path):
    records = run(fake_keras(tmp_path), tmp_path)
    assert {r["check"] for r in records} == CHECKS
    assert not_passing(records) == set()
    for record in records:
        assert record["op"] == "config/" + record["check"]
        assert record["target"] == "fake-keras3" and record["verdict"] == "pass"
        json.dumps(record)  # results.jsonl material
    checks = by_check(records)
    created = checks["precedence/missing-keras.json-created"]
    assert created["observed"]["KERAS_HOME/keras.json"] == configsuite.DEFAULT_KERAS_JSON
    assert checks["floatx/float64"]["floatx"] == "float64"


@pytest.mark.parametrize("defect, failing", [
    ("float64_as_float32", {"floatx/float64"}),
    ("ignore_keras_backend", {"precedence/KERAS_BACKEND-over-keras.json",
                              "precedence/missing-keras.json-created"}),
    ("writes_home", {"precedence/missing-keras.json-created",
                     "precedence/keras.json-written-only-in-KERAS_HOME"}),
    ("epsilon_fixed", {"epsilon/binary_crossentropy", "epsilon/l2_normalize"}),
    ("channels_first_ignored", {"image_data_format/conv2d", "image_data_format/max_pool",
                                "image_data_format/avg_pool",
                                "image_data_format/conv2d-format-from-keras.json"}),
    ("set_floatx_unchecked", {"invalid/set_floatx"}),
    ("runtime_floatx_ignored", {"runtime/set_floatx"}),
    ("using_line", {"precedence/using-line"}),
])
def test_each_planted_defect_fails_exactly_its_checks(tmp_path, defect, failing):
    records = run(fake_keras(tmp_path, [defect]), tmp_path)
    assert not_passing(records) == failing
    assert all(r["status"] in ("fail", "error") for r in records if r["check"] in failing)


def test_float64_silently_computed_in_float32_is_reported_with_what_came_back(tmp_path):
    record = by_check(run(fake_keras(tmp_path, ["float64_as_float32"]), tmp_path,
                          ["floatx"]))["floatx/float64"]
    assert record["status"] == "fail" and record["floatx"] == "float64"
    assert record["expected"]["op"] == "float64"
    assert record["observed"]["op"] == "float32"
    assert record["observed"]["variable"] == "float32 (declared float64)"
    assert record["observed"]["floatx()"] == "float64"


def test_keras_json_not_read_from_keras_home_breaks_every_setup_that_relies_on_it(tmp_path):
    records = run(fake_keras(tmp_path, ["ignore_keras_home"]), tmp_path,
                  ["precedence", "floatx"])
    checks = by_check(records)
    read = checks["precedence/KERAS_HOME-keras.json-read"]
    assert read["status"] == "fail"
    assert read["observed"]["epsilon()"] == 1e-7 and read["expected"]["epsilon()"] == 1e-3
    assert read["observed"]["config path"].endswith("user-home/.keras/keras.json")
    assert checks["floatx/float64"]["observed"]["floatx()"] == "float32"
    assert checks["precedence/keras.json-written-only-in-KERAS_HOME"]["observed"] == {
        "keras files outside KERAS_HOME": ["home/.keras", "home/.keras/keras.json"]}


def test_epsilon_runs_are_compared_with_their_own_reference(tmp_path):
    checks = by_check(run(fake_keras(tmp_path), tmp_path, ["epsilon"]))
    bce = checks["epsilon/binary_crossentropy"]
    assert bce["observed"]["runs differ"] is True
    assert bce["expected"]["epsilon 1e-07"][0] == pytest.approx(
        -np.log(float(np.float32(1e-7))), rel=1e-6)
    assert bce["expected"]["epsilon 0.001"][0] == pytest.approx(-np.log(1e-3), rel=1e-6)
    fixed = by_check(run(fake_keras(tmp_path, ["epsilon_fixed"]), tmp_path / "b", ["epsilon"]))
    assert fixed["epsilon/l2_normalize"]["observed"]["runs differ"] is False
    assert "x bound" in fixed["epsilon/l2_normalize"]["observed"]["epsilon 0.001 error"]


# -- references and rules -------------------------------------------------------------------
def test_bce_reference_clips_with_floatx_bounds():
    # 1 - 1e-7 rounds to 1 - 2^-23 in float32: -log(2^-23) = 15.942, not 16.118
    ref = configsuite.bce_reference([0.0, 1.0], [1.0, 0.0], 1e-7)
    assert ref[0] == pytest.approx(23 * np.log(2), rel=1e-12)
    assert ref[1] == pytest.approx(-np.log(float(np.float32(1e-7))), rel=1e-12)
    assert configsuite.bce_reference([0.0], [1.0], 1e-7, "float64")[0] == pytest.approx(
        -np.log(1e-7), rel=1e-9)


def test_normalize_reference_follows_each_flavor_formula():
    x = np.array([[3e-8, 4e-8]])  # ||x|| = 5e-8 < eps, sum x^2 = 2.5e-15 < eps
    np.testing.assert_allclose(configsuite.normalize_reference(x, 1e-7, "keras3"), x / 1e-7)
    np.testing.assert_allclose(configsuite.normalize_reference(x, 1e-7, "keras2"),
                               x / np.sqrt(1e-7))
    big = np.array([[3.0, 4.0]])
    for flavor in ("keras2", "keras3"):
        np.testing.assert_allclose(configsuite.normalize_reference(big, 1e-7, flavor),
                                   [[0.6, 0.8]])


def test_conv_reference_is_a_cross_correlation():
    x = np.arange(2 * 4 * 4 * 1, dtype="float64").reshape(2, 4, 4, 1)
    kernel = np.zeros((2, 2, 1, 1))
    kernel[0, 1, 0, 0] = 1.0  # picks x[i, j + 1]
    out, magnitude = configsuite.conv_reference(x, kernel)
    assert out.shape == (2, 3, 3, 1)
    np.testing.assert_array_equal(out[..., 0], x[:, :3, 1:, 0])
    np.testing.assert_array_equal(magnitude, np.abs(out))


# -- records, registry, store and report --------------------------------------------------------
def test_registry_makes_a_failure_known_and_records_stream_to_the_results(tmp_path):
    registry_path = tmp_path / "known.toml"
    registry_path.write_text('[[divergence]]\nop = "config/floatx/*"\ntarget = "fake-*"\n'
                             'verdict = "fail"\nreason = "float64 computed in float32"\n')
    target = fake_keras(tmp_path, ["float64_as_float32", "using_line"])
    writer = store.ResultsWriter(tmp_path / "out")
    suite = configsuite.ConfigSuite([target], {target.id: target.python}, tmp_path / "work",
                                    registry=known.load(registry_path), writer=writer)
    try:
        records = suite.run(target.id, "floatx") + suite.run(target.id, "precedence")
    finally:
        suite.close()
        writer.close()
    checks = by_check(records)
    assert checks["floatx/float64"]["status"] == "known"
    assert checks["floatx/float64"]["verdict"] == "fail"
    assert checks["floatx/float64"]["known"]["reason"] == "float64 computed in float32"
    assert [r["check"] for r in configsuite.divergent(records)] == ["precedence/using-line"]
    summary = store.load(tmp_path / "out")
    assert {c["check"] for c in summary["config"]} == set(checks)
    assert all("kind" not in c for c in summary["config"])


def _config_record(target, check, status, expected, observed, detail=""):
    scenario = check.split("/")[0]
    return configsuite.make_record(target, scenario, check, status, expected, observed, detail)


def test_report_shows_a_configuration_section_per_target_with_everything_escaped(tmp_path):
    config = [
        _config_record("keras3-a", "floatx/float64", "fail",
                       {"op": "float64"}, {"op": "float32", "note": "<script>alert(1)</script>"},
                       "detail <b>bold</b>"),
        _config_record("keras3-a", "precedence/using-line", "pass",
                       {"stderr during import keras": None}, {"stderr during import keras": None}),
        _config_record("keras2-b", "floatx/float64", "pass", {"op": "float64"}, {"op": "float64"}),
    ]
    summary = {"run": {"seed": 1}, "targets": [], "results": [], "pairwise": [], "config": config}
    html = render([summary], tmp_path / "report" / "index.html")
    text = html.read_text(encoding="utf-8")
    assert 'id="configuration"' in text and 'href="#configuration"' in text
    assert 'id="cfg-keras3-a"' in text and 'id="cfg-keras2-b"' in text
    assert "<script>alert(1)</script>" not in text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in text
    assert "detail &lt;b&gt;bold&lt;/b&gt;" in text
    assert 'class="kv diff"' in text  # the differing observed value is marked
    assert "1 unexpected</span> among 3 checks on 2 targets" in text
    merged = json.loads((tmp_path / "report" / "summary.json").read_text())
    assert len(merged["config"]) == 3


def test_report_without_configuration_records_has_no_section(tmp_path):
    summary = {"run": {}, "targets": [], "results": [], "pairwise": []}
    text = render([summary], tmp_path / "r" / "index.html").read_text(encoding="utf-8")
    assert 'id="configuration"' not in text


# -- pool hooks and the ops-module flavor --------------------------------------------------------
def test_worker_hooks_custom_keras_json_none_at_all_and_env_overrides(tmp_path):
    target = targets.Target(id="k3", flavor="keras3", backend="numpy", python=sys.executable,
                            extra_env=(("FROM_TARGET", "1"),))
    default = Worker(target, sys.executable, "float64", tmp_path)
    env = default.environment()
    assert json.loads((default.keras_home / "keras.json").read_text())["floatx"] == "float64"
    assert env["KERAS_BACKEND"] == "numpy" and env["KERAS_HOME"] == str(default.keras_home)

    empty = Worker(target, sys.executable, "float32", tmp_path, keras_json=None,
                   env={"KERAS_BACKEND": None, "FROM_TARGET": "2", "EXTRA": "x"})
    env = empty.environment()
    assert list(empty.keras_home.iterdir()) == []
    assert "KERAS_BACKEND" not in env and env["FROM_TARGET"] == "2" and env["EXTRA"] == "x"

    verbatim = Worker(target, sys.executable, "float32", tmp_path, keras_json='{"floatx": 1,}')
    verbatim.environment()
    assert (verbatim.keras_home / "keras.json").read_text() == '{"floatx": 1,}'
    custom = Worker(target, sys.executable, "float32", tmp_path, keras_json={"epsilon": 0.5})
    custom.environment()
    assert json.loads((custom.keras_home / "keras.json").read_text()) == {"epsilon": 0.5}


def test_ops_module_plugin_gets_the_data_format_checks_and_nothing_else(tmp_path):
    plugin = targets.Target(id="fake-ops", flavor="ops-module", backend="keras.ops",
                            python=sys.executable, pythonpath=(FAKE_KERAS,), timeout_s=30)
    records = run(plugin, tmp_path)
    statuses = {r["check"]: r["status"] for r in records}
    assert {c: s for c, s in statuses.items() if c.startswith("image_data_format/")} == {
        "image_data_format/conv2d": "pass", "image_data_format/max_pool": "pass",
        "image_data_format/avg_pool": "pass",
        "image_data_format/conv2d-format-from-keras.json": "pass"}
    assert statuses["precedence"] == statuses["epsilon"] == "unsupported"
    assert {statuses[f"floatx/{fx}"] for fx in targets.FLOATX} == {"unsupported"}
    assert configsuite.divergent(records) == []


def test_a_target_that_cannot_start_is_broken_not_failed(tmp_path):
    target = fake_keras(tmp_path, ["no_such_defect"])  # the fake keras refuses to import
    suite = configsuite.ConfigSuite([target], {target.id: target.python}, tmp_path / "work")
    with pytest.raises(configsuite.TargetBroken, match="unknown FAKE_KERAS_DEFECTS"):
        suite.run(target.id, "floatx")
    suite.close()
    missing = configsuite.ConfigSuite([target], {}, tmp_path / "work2")
    with pytest.raises(configsuite.TargetBroken, match="no interpreter"):
        missing.run(target.id, "floatx")


# -- real targets ----------------------------------------------------------------------------------
def test_keras3_numpy(tmp_path):
    """Everything holds except floatx float64: Keras 3's type promotion maps 64-bit to
    32-bit ("aligned with JAX"), so on NumPy a Variable's value and op results on float64
    tensors come back float32 (Keras 3.15.1)."""
    records = run(targets.BUILTIN_TARGETS["keras3-numpy"], tmp_path,
                  python=require_env("keras3"))
    assert {r["check"] for r in records} == CHECKS
    assert not_passing(records) == {"floatx/float64"}
    observed = by_check(records)["floatx/float64"]["observed"]
    assert observed["floatx()"] == "float64" and observed["op"] == "float32"


def test_keras3_jax_float64_is_reported_as_float32(tmp_path):
    records = run(targets.BUILTIN_TARGETS["keras3-jax"], tmp_path, ["floatx"],
                  python=require_env("keras3"), floatx=("float64",))
    (record,) = records
    assert record["check"] == "floatx/float64" and record["status"] == "fail"
    assert record["observed"]["floatx()"] == "float64"
    assert {record["observed"][k] for k in ("constant", "op", "ones")} == {"float32"}
    assert record["observed"]["variable"] == "float32 (declared float64)"


def test_keras2_tensorflow(tmp_path):
    """Keras 2.3.1 on TensorFlow 1.15 delegates epsilon and the losses to tf.keras:
    set_epsilon('x') is stored without a word, binary_crossentropy adds epsilon again
    after clipping (-log(2e-7) = 15.42 at p = 0), and l2_normalize uses TensorFlow's own
    1e-12 instead of Keras' epsilon. Everything else holds."""
    records = run(targets.BUILTIN_TARGETS["keras2-tensorflow"], tmp_path,
                  python=require_env("keras2"))
    assert {r["check"] for r in records} == CHECKS
    assert not_passing(records) == {"invalid/set_epsilon", "epsilon/binary_crossentropy",
                                    "epsilon/l2_normalize"}
    checks = by_check(records)
    assert checks["invalid/set_epsilon"]["observed"] == {"raises": None, "value after": "x"}
    assert checks["epsilon/binary_crossentropy"]["observed"]["epsilon 1e-07"][0] == (
        pytest.approx(-np.log(2e-7), rel=1e-5))
    assert checks["epsilon/l2_normalize"]["observed"]["runs differ"] is False
    assert checks["precedence/using-line"]["observed"] == {
        "stderr during import keras": "Using TensorFlow backend."}


def test_keras2_theano_raises_the_keras2_reference_errors(tmp_path):
    """Theano uses keras/backend/common.py's setters, the Keras 2 reference."""
    records = run(targets.BUILTIN_TARGETS["keras2-theano"], tmp_path, ["runtime"],
                  python=require_env("keras2"))
    assert not_passing(records) == set()
    checks = by_check(records)
    assert checks["invalid/set_epsilon"]["observed"]["raises"] == "ValueError"
    assert checks["invalid/set_floatx"]["observed"]["message"] == "Unknown floatx type: float8"


def test_prefetched_targets_give_the_serial_records_in_order(tmp_path):
    """Two targets checked in the background at once, on niced workers, hand out the
    same records, in the order asked, as one target after the other; each record is on
    disk as soon as its scenario is done, before anybody asks (an interrupted run keeps
    it); a target that cannot start is broken."""
    good = fake_keras(tmp_path, target_id="fake-good")
    bad = fake_keras(tmp_path, ["float64_as_float32"], target_id="fake-bad")
    broken = fake_keras(tmp_path, ["no_such_defect"], target_id="fake-broken")
    cases = [(t.id, s) for t in (good, bad, broken) for s in ("floatx", "precedence")]
    pythons = {t.id: t.python for t in (good, bad, broken)}
    writer = store.ResultsWriter(tmp_path / "out")
    suite = configsuite.ConfigSuite([good, bad, broken], pythons, tmp_path / "work",
                                    writer=writer, parallel=2, niceness=5)
    suite.prefetch(cases)
    try:
        streamed = wait_for_config_records(tmp_path / "out" / "results.jsonl", targets=2)
        prefetched = [suite.run(t, s) for t, s in cases[:4]]
        with pytest.raises(configsuite.TargetBroken, match="unknown FAKE_KERAS_DEFECTS"):
            suite.run(*cases[4])
    finally:
        suite.close()
        writer.close()
    serial = [run(t, tmp_path / "serial", [s]) for t, s in
              [(good, "floatx"), (good, "precedence"), (bad, "floatx"), (bad, "precedence")]]

    def essentials(records):
        return [(r["target"], r["check"], r["status"]) for r in records]  # paths differ

    assert [essentials(r) for r in prefetched] == [essentials(r) for r in serial]
    assert not_passing(prefetched[2]) == {"floatx/float64"}
    every = sorted((r["target"], r["check"]) for records in prefetched for r in records)
    assert sorted((r["target"], r["check"]) for r in streamed) == every
    assert sorted((c["target"], c["check"]) for c in store.load(tmp_path / "out")["config"]) == every


def wait_for_config_records(path, targets: int, timeout_s: float = 120.0) -> list[dict]:
    """The config records in results.jsonl once `targets` targets have finished both
    of their scenarios (floatx, precedence)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        records = [r for r in store.read_records(path) if r["kind"] == "config"] if path.exists() else []
        done = {(r["target"], r["scenario"]) for r in records}
        if len(done) >= 2 * targets:
            return records
        time.sleep(0.2)
    raise AssertionError(f"config records not written within {timeout_s} s: {sorted(done)}")


def test_a_run_checks_configuration_in_the_background_and_judges_it_last(tmp_path):
    """`conformance run` starts the configuration checks when the run opens, beside the
    op cases, and their tests come after every op case."""
    home = tmp_path / "user-home"
    home.mkdir()
    (tmp_path / "pyproject.toml").write_text(
        f'[tool.conformance.targets.fk]\nflavor = "keras3"\nbackend = "fakenp"\n'
        f'python = "{sys.executable}"\npythonpath = ["{FAKE_KERAS}"]\n'
        f'env_vars = {{HOME = "{home}"}}\n')
    out = tmp_path / "out"
    done = subprocess.run(
        [sys.executable, "-m", "conformance.cli", "run", "--targets", "fk",
         "--ops", "exp,add,config/floatx", "--floatx", "float32", "--profile", "smoke",
         "--seed", "5", "--out", str(out), "--no-report"],
        cwd=tmp_path, capture_output=True, text=True, timeout=300,
        env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parent.parent)})
    assert done.returncode in (0, 1), done.stdout[-2000:] + done.stderr[-2000:]
    lines = done.stdout.splitlines()

    def first(text):
        return next(i for i, line in enumerate(lines) if text in line)

    started = first("configuration checks: 1 (target, scenario) started in the background")
    assert started < min(first("exp-float32"), first("add-float32"))
    assert max(first("exp-float32"), first("add-float32")) < first("config fk")
    records = store.read_records(out / "results.jsonl")
    assert {(r["check"], r["status"]) for r in records if r["kind"] == "config"} == {
        ("floatx/float32", "pass")}  # the run's floatx only
