"""`conformance validate`: import verdicts, surface checks, and the examples' mistakes.

Plugins that misbehave on import live in tests/fake_plugins/validate_*.py. Checks of
the ops-module flavor run in this interpreter (always); Keras 2 checks need the
legacy environment and skip without it.
"""
import ast
import json
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conformance import catalog, cli, pool, surface, validate
from conformance.targets import Target
from conftest import FAKE_PLUGINS, require_env

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"


def plugin(module, flavor="keras2", python=None, env=None):
    return Target(id=module, flavor=flavor, backend=module, python=python, env=env,
                  pythonpath=(FAKE_PLUGINS,))


def check(tmp_path, module, flavor="keras2", timeout=60.0):
    python = sys.executable if flavor == "ops-module" else require_env("keras2")
    return validate.validate_checks(plugin(module, flavor, python=python), python,
                                    tmp_path / "checks", timeout)


# -- Keras's expectations, read from its sources --------------------------------------------
def test_keras2_surface_is_read_from_the_loader_and_init(tmp_path):
    backend = tmp_path / "keras" / "backend"
    backend.mkdir(parents=True)
    (backend / "__init__.py").write_text(
        "from .load_backend import epsilon\nfrom .load_backend import variable\n"
        "from .load_backend import placeholder\nfrom .load_backend import softmax\n"
        "from .load_backend import backend\n"
        "if backend() == 'theano':\n    from .load_backend import pattern_broadcast\n"
        "elif backend() == 'tensorflow':\n    from .load_backend import clear_session\n")
    (backend / "load_backend.py").write_text(
        "from .common import epsilon\nimport importlib\n"
        "try:\n    required_entries = ['placeholder', 'variable', 'function']\n"
        "    raise ValueError('Invalid backend. Missing required entry : ' + e)\n"
        "except ImportError:\n    pass\n"
        "def backend():\n    return 'x'\n")
    spec = surface.keras2_surface(str(tmp_path / "keras"))
    assert spec["required"] == ["placeholder", "variable", "function"]
    assert spec["message"] == "Invalid backend. Missing required entry : "
    assert spec["names"] == ["epsilon", "variable", "placeholder", "softmax", "backend"]
    assert spec["provided"] == ["epsilon", "backend"]  # the loader's own, never the plugin's
    assert spec["expected"] == ["variable", "placeholder", "softmax"]
    assert spec["conditional"] == {"backend() == 'theano'": ["pattern_broadcast"],
                                   "backend() == 'tensorflow'": ["clear_session"]}


def test_installed_keras2_surface():
    python = require_env("keras2")
    code = ("from conformance import surface; import json; "
            "print(json.dumps(surface.keras2_surface(surface.find_keras_dir())))")
    spec = json.loads(subprocess.run([python, "-c", code], capture_output=True, text=True,
                                     cwd=ROOT, check=True).stdout)
    assert spec["required"] == ["placeholder", "variable", "function"]
    assert {"function", "softmax", "conv2d", "ctc_decode"} <= set(spec["expected"])
    assert "epsilon" not in spec["expected"] and "epsilon" in spec["provided"]
    assert len(spec["expected"]) > 100


# -- import verdicts, ops-module flavor (this interpreter) -----------------------------
def test_ops_module_segfault_on_import_is_a_crash_with_the_plugin_line(tmp_path):
    verdict, _, found = check(tmp_path, "validate_segfault", "ops-module")
    assert not verdict.ok and verdict.kind == "crash"
    assert "SIGSEGV" in verdict.headline
    assert any("validate_segfault.py:4" in line for line in verdict.where)
    assert found.error  # no surface without an import


def test_ops_module_sys_exit_on_import(tmp_path):
    verdict, _, _ = check(tmp_path, "validate_sys_exit", "ops-module")
    assert verdict.kind == "exit" and "sys.exit(3)" in verdict.headline
    assert any("validate_sys_exit.py:4" in line for line in verdict.where)


def test_ops_module_hang_on_import_is_a_timeout_within_the_limit(tmp_path):
    started = time.monotonic()
    verdict, _, _ = check(tmp_path, "validate_hang", "ops-module", timeout=3.0)
    assert time.monotonic() - started < 15
    assert verdict.kind == "timeout" and "hangs" in verdict.headline
    assert any("validate_hang.py:4" in line and "time.sleep" in line for line in verdict.where)


def test_ops_module_that_prints_on_import_still_works(tmp_path):
    verdict, _, found = check(tmp_path, "validate_prints", "ops-module")
    assert verdict.ok
    assert "hello from validate_prints" in verdict.stdout
    assert "C-level write" in verdict.stdout  # fd 1 writes are captured too
    assert {"add", "multiply"} <= set(found.present)


def test_ops_module_import_error_names_the_plugin_line(tmp_path):
    verdict, _, _ = check(tmp_path, "validate_raises", "ops-module")
    assert verdict.kind == "error"
    assert "No module named 'not_an_installed_dependency'" in verdict.headline
    assert any("validate_raises.py:3" in line for line in verdict.where)


# -- import verdicts and surface, Keras 2 external backends ----------------------------------
def test_missing_function_surfaces_the_exact_keras_error(tmp_path):
    verdict, _, found = check(tmp_path, "validate_missing_function")
    assert not verdict.ok and verdict.kind == "error"
    assert "ValueError: Invalid backend. Missing required entry : function" in verdict.headline
    assert verdict.where[0].endswith("(in Keras)")
    assert found.required == {"placeholder": True, "variable": True, "function": False}
    assert found.missing == ["function"]
    assert found.predicted_error == "ValueError: Invalid backend. Missing required entry : function"


def test_empty_module_lists_every_missing_name(tmp_path):
    verdict, _, found = check(tmp_path, "validate_empty")
    assert "Missing required entry : placeholder" in verdict.headline  # Keras's first check
    assert found.required == {"placeholder": False, "variable": False, "function": False}
    assert found.present == [] and found.missing == found.expected
    assert len(found.missing) > 100 and "softmax" in found.missing
    assert found.coverage == 0.0


@pytest.mark.parametrize("module, kind, text, line", [
    ("validate_segfault", "crash", "SIGSEGV", "validate_segfault.py:4"),
    ("validate_sys_exit", "exit", "sys.exit(3)", "validate_sys_exit.py:4"),
    ("validate_raises", "error", "Unable to import backend : validate_raises", "validate_raises.py:3"),
])
def test_keras2_plugin_that_cannot_import(tmp_path, module, kind, text, line):
    verdict, _, found = check(tmp_path, module)
    assert not verdict.ok and verdict.kind == kind and text in verdict.headline
    assert any(line in where for where in verdict.where)
    assert found.expected and found.error  # Keras's expectations, even without the module


def test_keras2_hang_on_import_is_a_timeout(tmp_path):
    started = time.monotonic()
    verdict, _, _ = check(tmp_path, "validate_hang", timeout=4.0)
    assert verdict.kind == "timeout" and time.monotonic() - started < 20
    assert any("validate_hang.py:4" in line for line in verdict.where)


def test_keras2_plugin_that_prints_on_import_still_loads(tmp_path):
    verdict, _, found = check(tmp_path, "validate_prints")
    assert verdict.ok and verdict.using_line == "Using validate_prints backend."
    assert "hello from validate_prints" in verdict.stdout
    assert found.missing == [] and found.coverage == 100.0


def test_cli_reports_the_keras_error_and_fails(tmp_path, capsys):
    require_env("keras2")
    code = cli.main(["validate", "validate_missing_function", "--path", FAKE_PLUGINS,
                     "--surface-only", "--out", str(tmp_path / "out"), "--project", str(ROOT)])
    out = capsys.readouterr().out
    assert code == 1
    assert "Invalid backend. Missing required entry : function" in out
    assert "Traceback" not in out
    record = json.loads((tmp_path / "out" / "validate.json").read_text())
    assert record["import"]["kind"] == "error" and record["surface"]["missing"] == ["function"]


def test_a_plugin_named_like_a_standard_module_is_told_to_rename(tmp_path, capsys):
    """json.py replaces the json module for the whole worker, the harness's included:
    the import fails in the harness's own code, and the note says why."""
    (tmp_path / "json.py").write_text((Path(FAKE_PLUGINS) / "numpy_ops.py").read_text())
    code = cli.main(["validate", str(tmp_path / "json.py"), "--flavor", "ops-module",
                     "--python", sys.executable, "--surface-only",
                     "--out", str(tmp_path / "out"), "--project", str(ROOT)])
    out = capsys.readouterr().out
    assert code == 1
    assert "'json' is also a module of Python's standard library" in out
    assert "rename it (e.g. json_backend)" in out
    record = json.loads((tmp_path / "out" / "validate.json").read_text())
    assert "json_backend" in record["name_clash"]


def test_a_plugin_file_that_does_not_exist_is_said(tmp_path, capsys):
    assert cli.main(["validate", str(tmp_path / "nope.py"), "--flavor", "ops-module",
                     "--project", str(ROOT)]) == 2
    assert "nope.py does not exist" in capsys.readouterr().err


def test_name_clash_only_for_names_python_has():
    assert "built into Python" in validate.name_clash("time")
    assert "standard library" in validate.name_clash("random.extra")
    assert validate.name_clash("my_ops") is None and validate.name_clash("my_pkg.json") is None


def test_unknown_against_target_is_a_usage_error(capsys):
    assert cli.main(["validate", "some_module", "--against", "no-such-target",
                     "--project", str(ROOT)]) == 2
    assert "no-such-target" in capsys.readouterr().err


def test_cli_registers_validate():
    from conformance import cli

    args = cli.build_parser().parse_args(["validate", "my_mod", "--flavor", "ops-module",
                                          "--against", "none"])
    assert args.handler is validate.cmd_validate and args.module == "my_mod"


# -- the examples: the documented mistakes are exactly the ops flagged --------------------
def documented_mistakes(path: Path) -> set:
    """Ops named in the module docstring's numbered list: '1. ``softmax`` ...'."""
    return set(re.findall(r"^\d+\. ``(\w+)``", path.read_text(), re.MULTILINE))


def run_validate(tmp_path, *argv):
    out = tmp_path / "out"
    proc = subprocess.run([sys.executable, "-m", "conformance.validate", *argv,
                           "--out", str(out), "--seed", "1", "--profile", "smoke",
                           "--max-examples", "10", "--no-report", "--project", str(ROOT)],
                          capture_output=True, text=True, cwd=ROOT, timeout=300)
    record = json.loads((out / "validate.json").read_text())
    return proc, record


def need_ops(names):
    have = {op.name for op in catalog.all_ops()}
    missing = sorted(set(names) - have)
    if missing:
        pytest.skip(f"the op catalog has no {', '.join(missing)} yet")


def test_ops_example_mistakes_are_the_flagged_ops(tmp_path):
    example = EXAMPLES / "ops_plugin" / "my_ops.py"
    documented = documented_mistakes(example)
    assert documented == {"logsumexp", "mean", "arctan2"}
    controls = {"softmax", "sum", "max", "exp", "tanh", "add"}
    need_ops(documented | controls)
    proc, record = run_validate(
        tmp_path, str(example), "--flavor", "ops-module", "--python", sys.executable,
        "--against", "none", "--floatx", "float32,float64",
        "--ops", ",".join(sorted(documented | controls)))
    assert proc.returncode == 1, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert record["import"]["ok"] and 0 < record["surface"]["coverage"] < 100
    assert set(record["suites"]["flagged"]) == documented
    # as the docstring says: logsumexp and arctan2 at every floatx, mean at float32/float64
    assert record["suites"]["own"] == {op: ["float32", "float64"] for op in documented}
    assert "flagged" in proc.stdout and "Traceback" not in proc.stdout


def test_keras2_example_mistakes_are_the_flagged_ops(tmp_path):
    require_env("keras2")
    example = EXAMPLES / "keras2_backend" / "my_backend.py"
    documented = documented_mistakes(example)
    assert documented == {"softmax", "sigmoid", "square"}
    controls = {"exp", "tanh", "maximum", "sum", "logsumexp", "relu"}
    need_ops(documented | controls)
    # float64: where all three show (square's dtype mistake is invisible at float32)
    proc, record = run_validate(tmp_path, str(example), "--against", "none",
                                "--floatx", "float64",
                                "--ops", ",".join(sorted(documented | controls)))
    assert proc.returncode == 1, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert record["import"]["ok"] and record["surface"]["coverage"] == 100.0
    assert set(record["suites"]["flagged"]) == documented
    verdicts = {w["op"]: w["status"] for w in record["suites"]["unexpected"]}
    assert verdicts == {"softmax": "nan", "sigmoid": "fail", "square": "dtype"}


def test_divergences_shared_with_against_targets_are_told_apart():
    def result(op, target, status, ratio=0.0, floatx="float32"):
        return {"op": op, "target": target, "floatx": floatx, "status": status,
                "worst_ratio": ratio, "message": ""}

    summary = {"targets": [{"id": "mine", "floatx": "float32", "status": "ready"}], "results": [
        result("softmax", "mine", "nan"), result("softmax", "ref", "pass"),
        result("elu", "mine", "fail", 30.0), result("elu", "ref", "fail", 20.0),
        result("sigmoid", "mine", "fail", 1e14), result("sigmoid", "ref", "fail", 1e5),
        result("exp", "mine", "pass"), result("exp", "ref", "pass"),
        result("erf", "mine", "unsupported"), result("erf", "ref", "pass")]}
    found = validate.summarize_suites(summary, "mine")
    assert found["counts"] == {"nan": 1, "fail": 2, "pass": 1, "unsupported": 1}
    assert found["own"] == {"softmax": ["float32"], "sigmoid": ["float32"]}
    assert found["shared"] == {"elu": ["float32"]}  # same verdict, same order of error
    assert [w["op"] for w in found["unexpected"]] == ["softmax", "sigmoid", "elu"]
    assert found["flagged"] == ["elu", "sigmoid", "softmax"]


# -- the checks run in pool workers ------------------------------------------------------
def test_a_plugin_that_ends_the_process_is_an_exit(tmp_path):
    (tmp_path / "ends_process.py").write_text("import os\n\nos._exit(4)\n")
    target = Target(id="ends_process", flavor="ops-module", backend="ends_process",
                    python=sys.executable, pythonpath=(str(tmp_path),))
    verdict, _, _ = validate.validate_checks(target, sys.executable, tmp_path / "checks", 30.0)
    assert verdict.kind == "exit" and not verdict.ok
    assert verdict.headline.startswith(
        "exits: the interpreter exited with status 4 while importing the module")


def test_exit_text():
    assert pool.describe_exit(-signal.SIGSEGV) == "killed by SIGSEGV (segmentation fault)"
    assert pool.describe_exit(-signal.SIGKILL) == "killed by SIGKILL (killed, out of memory?)"
    assert pool.describe_exit(-signal.SIGTERM) == "killed by SIGTERM"
    assert pool.describe_exit(-200) == "killed by signal 200"
    assert pool.describe_exit(3) == "exited with status 3"
    assert pool.describe_exit(None) == "closed its pipe"


def test_validate_library_does_not_import_the_cli():
    """Only `python -m conformance.validate` goes through the CLI; the rest is imported by it."""
    package = ROOT / "conformance" / "validate"
    for path in package.glob("*.py"):
        if path.name == "__main__.py":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom):
                names = [f"{node.module}.{a.name}" for a in node.names]
            elif isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            else:
                continue
            assert "conformance.cli" not in names, f"{path.name} imports conformance.cli"


def test_keras2_backend_with_wrong_gradients_is_flagged_on_exactly_those(tmp_path):
    """Forward values right, K.gradients wrong for tanh and exp: validate flags
    grad_tanh and grad_exp and nothing else (the forward ops and another gradient,
    grad_sin, pass)."""
    require_env("keras2")
    plugin = Path(FAKE_PLUGINS) / "keras2_wrong_gradients.py"
    ops = ["tanh", "exp", "sin", "grad_tanh", "grad_exp", "grad_sin"]
    need_ops(ops)
    proc, record = run_validate(tmp_path, str(plugin), "--against", "none",
                                "--floatx", "float32", "--ops", ",".join(ops))
    assert proc.returncode == 1, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert set(record["suites"]["flagged"]) == {"grad_tanh", "grad_exp"}
    verdicts = {w["op"]: w["status"] for w in record["suites"]["unexpected"]}
    assert verdicts == {"grad_tanh": "fail", "grad_exp": "fail"}
