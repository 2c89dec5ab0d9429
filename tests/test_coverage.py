"""`conformance ops --coverage`: the census lists what an installed Keras exports (in
the environment's interpreter), and coverage counts what the catalog calls of it."""
import argparse
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from conformance import coverage, options, runcli
from conformance.coverage import APIS, EXCLUDED, Api
from conftest import python36_syntax_errors, require_env

ROOT = Path(__file__).resolve().parent.parent

# Today's covered counts (Keras 3.15.1, Keras 2.3.1): coverage may rise, never drop.
# Raise a number here when the catalog grows; lowering one needs a reason in review.
COVERED_FLOOR = {"keras3.ops": 153, "keras3.activations": 2, "keras3.losses": 8,
                 "keras3.random": 10, "keras2.backend": 85, "keras2.activations": 2,
                 "keras2.losses": 8}

OPS = Api("keras3.ops", "keras3", "keras.ops", True, "keras.src")


def function(*paths, name=None, defined_in="keras.src.ops.numpy", kind="function"):
    """A census entry: one function reached by `paths`."""
    return {"paths": list(paths), "kind": kind, "defined_in": defined_in,
            "name": name or paths[0].rsplit(".", 1)[-1]}


# -- matching, without an environment -------------------------------------------------
def test_a_function_reached_by_several_paths_counts_once_and_any_path_covers_it():
    listing = {"callables": [function("keras.ops.exp", "keras.ops.numpy.exp"),
                             function("keras.ops.hard_silu", "keras.ops.hard_swish",
                                      "keras.ops.nn.hard_silu", "keras.ops.nn.hard_swish"),
                             function("keras.ops.image.resize")]}
    result = coverage.api_coverage(OPS, listing, {"keras.ops.numpy.exp",
                                                  "keras.ops.nn.hard_swish"}, excluded={})
    assert (result["functions"], result["covered_count"], result["counted"]) == (3, 2, 3)
    assert result["covered"] == ["exp", "hard_silu"]
    assert result["uncovered"] == ["image.resize"]  # only in a submodule: named by it


def test_an_alias_does_not_stand_for_the_function():
    """Keras 2's losses reach mean_squared_error as MSE and mse too; the function's own
    name is the one shown."""
    api = Api("keras2.losses", "keras2", "keras.losses", False, "keras.losses")
    listing = {"callables": [function("keras.losses.MSE", "keras.losses.mean_squared_error",
                                      "keras.losses.mse", name="mean_squared_error",
                                      defined_in="keras.losses")]}
    result = coverage.api_coverage(api, listing, set(), excluded={})
    assert result["uncovered"] == ["mean_squared_error"]


def test_excluded_functions_are_neither_covered_nor_counted_and_keep_their_reason():
    listing = {"callables": [function("keras.ops.convert_to_numpy"),
                             function("keras.ops.exp")]}
    result = coverage.api_coverage(OPS, listing, {"keras.ops.convert_to_numpy"},
                                   excluded={"convert_to_numpy": "plumbing", "gone": "old"})
    assert result["covered"] == [] and result["uncovered"] == ["exp"]
    assert result["excluded"] == {"convert_to_numpy": "plumbing"}
    assert (result["functions"], result["counted"], result["excluded_count"]) == (2, 1, 1)
    assert result["stale_exclusions"] == ["gone"]  # names no function of this Keras


def test_classes_and_imported_helpers_are_not_counted():
    api = Api("keras2.losses", "keras2", "keras.losses", False, "keras.losses")
    listing = {"callables": [
        function("keras.losses.Hinge", kind="class", defined_in="keras.losses"),
        function("keras.losses.deserialize_keras_object", defined_in="keras.utils.generic_utils"),
        function("keras.losses.hinge", defined_in="keras.losses")]}
    result = coverage.api_coverage(api, listing, {"keras.losses.hinge"}, excluded={})
    assert (result["functions"], result["covered_count"]) == (1, 1)
    assert result["not_counted"] == {
        "Hinge": "class", "deserialize_keras_object": "defined in keras.utils.generic_utils"}


def test_a_catalog_path_this_keras_lacks_is_reported():
    listing = {"callables": [function("keras.ops.exp")]}
    result = coverage.api_coverage(OPS, listing, {"keras.ops.exp", "keras.ops.renamed_op",
                                                  "keras.random.normal"}, excluded={})
    assert result["missing_in_keras"] == ["keras.ops.renamed_op"]  # not keras.random's


def test_a_flavor_without_a_census_gives_errors_not_numbers():
    census = {"python": "3.11", "modules": {"keras.ops": {"callables": [function("keras.ops.exp")]},
                                            "keras.random": {"error": "ImportError: no"}}}
    results = coverage.coverage({"keras3": census, "keras2": {"error": "not provisioned"}},
                                {"keras3": {"keras.ops.exp"}})
    by_api = {r["api"]: r for r in results}
    assert by_api["keras3.ops"]["covered_count"] == 1
    assert by_api["keras3.random"]["error"] == "ImportError: no"
    assert by_api["keras2.backend"]["error"] == "not provisioned"


def test_the_exclusions_table_names_known_apis_with_reasons_and_no_catalog_function():
    """An excluded function the catalog calls would be checked but never counted."""
    assert set(EXCLUDED) == {api.id for api in APIS}
    called = coverage.catalog_paths()
    for api in APIS:
        for name, reason in EXCLUDED[api.id].items():
            assert len(reason) > 20, (api.id, name)
            assert f"{api.module}.{name}" not in called[api.flavor], (api.id, name)


def test_catalog_paths_are_the_paths_each_flavor_calls():
    paths = coverage.catalog_paths()
    assert "keras.ops.exp" in paths["keras3"] and "keras.backend.exp" in paths["keras2"]
    assert not any(p.startswith("keras.backend.") for p in paths["keras3"])
    assert not any(p.startswith("keras.ops.") for p in paths["keras2"])


# -- the command, with a fake census --------------------------------------------------
def fake_censuses():
    keras3 = {"keras": "3.99", "backend": "numpy", "python": "3.11", "executable": "/py3",
              "modules": {api.module: {"callables": []} for api in APIS}}
    keras3["modules"]["keras.ops"] = {"callables": [function("keras.ops.exp"),
                                                    function("keras.ops.brand_new_op"),
                                                    function("keras.ops.is_tensor")]}
    return {"keras3": keras3,
            "keras2": {"error": "keras2-tensorflow: not provisioned: environment keras2 is "
                                "not built", "fix": "conformance envs sync keras2"}}


def ops_args(**overrides):
    values = {"family": None, "coverage": True, "json": False, "project": str(ROOT)}
    return argparse.Namespace(**{**values, **overrides})


def test_the_command_prints_numbers_uncovered_names_and_why_an_api_has_none(
        monkeypatch, capsys):
    monkeypatch.setattr(coverage, "gather", lambda project: fake_censuses())
    assert runcli.cmd_ops(ops_args()) == 2  # keras2 could not be listed
    out, err = capsys.readouterr()
    assert "Keras 3 keras.ops: 1 / 2 covered (50.0%); 1 excluded; 3 functions" in out
    assert "uncovered (1): brand_new_op" in out  # a new Keras function shows by itself
    assert "conformance envs sync keras2" in out
    assert "Keras 2 keras.backend" in out.splitlines()[-3]  # the summary table ends it
    assert "no coverage for keras2.backend" in err


def test_the_json_output_has_one_object_per_api(monkeypatch, capsys):
    monkeypatch.setattr(coverage, "gather", lambda project: fake_censuses())
    runcli.cmd_ops(ops_args(json=True))
    report = json.loads(capsys.readouterr().out)
    assert [a["api"] for a in report["apis"]] == [api.id for api in APIS]
    ops = report["apis"][0]
    assert ops["uncovered"] == ["brand_new_op"] and ops["excluded"] == {
        "is_tensor": EXCLUDED["keras3.ops"]["is_tensor"]}
    assert report["environments"]["keras3"]["keras"] == "3.99"


def test_coverage_counts_every_family():
    with pytest.raises(options.OptionError, match="--family"):
        runcli.cmd_ops(ops_args(family="nn"))


# -- the census, in a real interpreter -------------------------------------------------
FAKE_PACKAGE = {
    "fakekeras/__init__.py": "from fakekeras import ops\n",
    "fakekeras/ops/__init__.py": textwrap.dedent("""\
        import json                      # a library: not a submodule to walk
        from fakekeras.ops import numpy, nn
        from fakekeras.ops.numpy import exp, exp as exponential
        print("noise on stdout at import")
        class Helper:
            pass
        def _private():
            pass
        """),
    "fakekeras/ops/numpy.py": "def exp(x):\n    return x\n",
    "fakekeras/ops/nn.py": "from fakekeras.ops.numpy import exp\ndef relu(x):\n    return x\n",
}


def run_census(tmp_path, *arguments):
    for name, text in FAKE_PACKAGE.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path), str(ROOT)])}
    done = subprocess.run([sys.executable, "-m", "conformance.census", *arguments],
                          capture_output=True, text=True, env=env, cwd=tmp_path, timeout=60)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout), done.stderr


def test_the_census_lists_each_callable_once_with_every_path(tmp_path):
    report, stderr = run_census(tmp_path, "--tree", "fakekeras.ops", "--module", "missing.mod")
    listing = report["modules"]["fakekeras.ops"]["callables"]
    by_name = {entry["name"]: entry for entry in listing}
    assert sorted(by_name) == ["Helper", "exp", "relu"]
    assert by_name["exp"]["paths"] == ["fakekeras.ops.exp", "fakekeras.ops.exponential",
                                       "fakekeras.ops.nn.exp", "fakekeras.ops.numpy.exp"]
    assert by_name["exp"]["defined_in"] == "fakekeras.ops.numpy"
    assert by_name["Helper"]["kind"] == "class"
    assert "No module named 'missing'" in report["modules"]["missing.mod"]["error"]
    assert "noise on stdout" in stderr  # kept off the JSON


def test_the_census_compiles_on_python_36():
    source = (ROOT / "conformance" / "census.py").read_text()
    assert python36_syntax_errors({"census.py": source}) == {}


# -- the real environments: coverage never drops --------------------------------------
@pytest.mark.parametrize("flavor", ["keras3", "keras2"])
def test_coverage_of_the_installed_keras_does_not_drop(flavor):
    require_env(flavor)
    apis = tuple(api for api in APIS if api.flavor == flavor)
    censuses = coverage.gather(ROOT, apis)
    assert "error" not in censuses[flavor], censuses[flavor]
    for result in coverage.coverage(censuses, coverage.catalog_paths(), apis):
        assert "error" not in result, result
        assert result["covered_count"] >= COVERED_FLOOR[result["api"]], (
            f"{result['api']}: {result['covered_count']} functions covered, fewer than the "
            f"{COVERED_FLOOR[result['api']]} of the floor")
        assert result["missing_in_keras"] == [], "the catalog calls functions Keras lacks"
        assert result["stale_exclusions"] == [], "EXCLUDED names functions Keras lacks"
