"""Tests for conformance.checkconfig (``conformance check-config``).

Fast and self-contained: every keras.json lives in tmp_path, the environment
is passed explicitly (``environ=``), and "is this backend installed" is
monkeypatched where the answer would depend on the machine.
"""

import importlib
import json
import math
import os
import sys

import pytest

from conformance import checkconfig
from conformance.checkconfig import ConfigReport, Problem, check_config, format_report, main

VALID = ('{\n'
         '    "floatx": "float64",\n'
         '    "epsilon": 1e-07,\n'
         '    "backend": "numpy",\n'
         '    "image_data_format": "channels_first"\n'
         '}\n')


# --------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------

def write(tmp_path, content, name="keras.json"):
    path = tmp_path / name
    if isinstance(content, str):
        content = content.encode("utf-8")
    path.write_bytes(content)
    return path


def check(tmp_path, content, environ=None):
    return check_config(write(tmp_path, content), environ=environ or {})


def problem(report, severity, text):
    """The single problem of that severity whose message contains text."""
    found = [p for p in report.problems
             if p.severity == severity and text.lower() in p.message.lower()]
    assert len(found) == 1, (severity, text, report.problems)
    return found[0]


def errors(report):
    return [p for p in report.problems if p.severity == "error"]


def warnings(report):
    return [p for p in report.problems if p.severity == "warning"]


def at(p):
    return (p.line, p.column)


@pytest.fixture
def installed(monkeypatch):
    """Make "is package X installed?" deterministic: only the given set is."""
    present = {"numpy"}
    monkeypatch.setattr(checkconfig, "_is_installed", lambda name: name in present)
    return present


# --------------------------------------------------------------------------
# valid files, read-only guarantee
# --------------------------------------------------------------------------

def test_valid_file_is_ok(tmp_path, installed):
    report = check(tmp_path, VALID)
    assert report.ok and report.exists
    assert errors(report) == [] and warnings(report) == []
    assert report.effective == {
        "floatx": ("float64", "keras.json"),
        "epsilon": (1e-07, "keras.json"),
        "backend": ("numpy", "keras.json"),
        "image_data_format": ("channels_first", "keras.json"),
    }


def test_missing_keys_fall_back_to_defaults(tmp_path):
    report = check(tmp_path, '{"floatx": "float16"}')
    assert report.ok
    assert report.effective["floatx"] == ("float16", "keras.json")
    assert report.effective["epsilon"] == (1e-07, "default")
    assert report.effective["image_data_format"] == ("channels_last", "default")


@pytest.mark.parametrize("content", [
    VALID,
    '{"floatx": "float32",}',
    b'\xef\xbb\xbf{"floatX": "x"}',
    b'{\x93floatx\x94: 1}',
])
def test_file_is_not_modified(tmp_path, content, capsys):
    path = write(tmp_path, content)
    os.utime(path, ns=(1_000_000_000, 1_000_000_000))  # a recognisable mtime
    before = (path.read_bytes(), path.stat().st_mtime_ns, sorted(os.listdir(tmp_path)))
    check_config(path, environ={})
    main([str(path)])
    main([str(path), "--json"])
    after = (path.read_bytes(), path.stat().st_mtime_ns, sorted(os.listdir(tmp_path)))
    assert after == before


# --------------------------------------------------------------------------
# 1. syntax: each common cause gets its own diagnosis and position
# --------------------------------------------------------------------------

def test_not_json_at_all(tmp_path):
    report = check(tmp_path, "floatx = float32\n")
    p = problem(report, "error", "not JSON at all")
    assert at(p) == (1, 1)
    assert "silently ignores" in p.hint
    assert report.effective["floatx"][1].startswith("default (Keras ignores")


def test_empty_file(tmp_path):
    p = problem(check(tmp_path, "\n"), "error", "empty")
    assert at(p) == (1, 1)


def test_trailing_comma_one_line(tmp_path):
    p = problem(check(tmp_path, '{"floatx": "float32",}'), "error", "trailing comma")
    assert at(p) == (1, 21)  # the comma itself
    assert "delete this comma" in p.hint.lower()


def test_trailing_comma_multi_line(tmp_path):
    text = '{\n    "floatx": "float32",\n    "epsilon": 1e-07,\n}\n'
    p = problem(check(tmp_path, text), "error", "trailing comma")
    assert at(p) == (3, 21)


def test_single_quotes(tmp_path):
    p = problem(check(tmp_path, "{\n  'floatx': 'float32'\n}"), "error", "single quotes")
    assert at(p) == (2, 3)
    assert "double quotes" in p.hint


@pytest.mark.parametrize("text, where", [
    ('{\n  \u201cfloatx\u201d: \u201cfloat32\u201d\n}', (2, 3)),   # “ ”
    ('{\n  "floatx": \u2018float32\u2019\n}', (2, 13)),            # ‘ ’
    ('{\n  "floatx": "float32\u201d,\n  "epsilon": 1e-07\n}', (2, 21)),  # closing only
    ('{"floatx": "float32\u201d, "epsilon": 1e-07}', (1, 20)),
])
def test_curly_quotes(tmp_path, text, where):
    p = problem(check(tmp_path, text), "error", "curly")
    assert at(p) == where
    assert "replace the curly quotes with straight double quotes" in p.hint.lower()


def test_windows_1252_curly_quotes_are_not_utf8(tmp_path):
    report = check(tmp_path, b'{\n  \x93floatx\x94: "float32"\n}')
    p = problem(report, "error", "not valid UTF-8")
    assert at(p) == (2, 3)
    assert "curly" in p.message and "straight double quotes" in p.hint


def test_byte_order_mark(tmp_path):
    report = check(tmp_path, b'\xef\xbb\xbf{"floatx": "float32"}')
    p = problem(report, "error", "byte-order mark")
    assert at(p) == (1, 1)
    assert "without BOM" in p.hint
    # Keras ignores the file, so its floatx does not take effect.
    assert report.effective["floatx"] == (
        "float32", "default (Keras ignores keras.json: it starts with a byte-order mark)")


def test_byte_order_mark_does_not_hide_other_problems(tmp_path):
    report = check(tmp_path, b'\xef\xbb\xbf{"floatX": "float32"}')
    p = problem(report, "warning", '"floatX"')
    assert at(p) == (1, 2)  # columns counted without the invisible BOM, like editors


@pytest.mark.parametrize("text, where", [
    ('{\n  "floatx": "float32" // use 32 bits\n}', (2, 23)),
    ('// my settings\n{"floatx": "float32"}', (1, 1)),
    ('{\n  "floatx": "float32", /* note */\n  "epsilon": 1e-07\n}', (2, 24)),
    ('# my settings\n{"floatx": "float32"}', (1, 1)),
    ('{"floatx": "float32"}\n# trailing note\n', (2, 1)),
])
def test_comments(tmp_path, text, where):
    p = problem(check(tmp_path, text), "error", "comment")
    assert at(p) == where
    assert "JSON has no comments" in p.message


@pytest.mark.parametrize("text, cause, where", [
    ('{floatx: "float32"}', "not in quotes", (1, 2)),
    ('{"floatx": float32}', "not in quotes", (1, 12)),
    ('{"nnx_enabled": True}', "Python spelling", (1, 17)),
    ('{\n  "floatx": "float32"\n  "epsilon": 1e-07\n}', "missing comma", (3, 3)),
    ('{"floatx": "float32"}}', "more text after", (1, 22)),
    ('{"floatx": "float32', "never closed", (1, 12)),
])
def test_other_syntax_errors(tmp_path, text, cause, where):
    p = problem(check(tmp_path, text), "error", cause)
    assert at(p) == where


@pytest.mark.parametrize("text, kind", [("[1, 2]", "a list"), ('\n  "float32"', "a string")])
def test_top_level_not_an_object(tmp_path, text, kind):
    p = problem(check(tmp_path, text), "error", "top level must be a JSON object")
    assert kind in p.message
    assert at(p) == ((1, 1) if text.startswith("[") else (2, 3))


def test_non_ascii_is_a_warning(tmp_path):
    p = problem(check(tmp_path, '{"floatx": "float32", "note": "d\u00e9j\u00e0"}'),
                "warning", "non-ASCII")
    assert at(p) == (1, 33)


# --------------------------------------------------------------------------
# 2.-3. keys
# --------------------------------------------------------------------------

@pytest.mark.parametrize("key, suggestion", [
    ("floatX", "floatx"),
    ("image_data_fromat", "image_data_format"),
    ("epsilion", "epsilon"),
])
def test_unknown_key_with_suggestion(tmp_path, key, suggestion):
    text = f'{{\n    "backend": "numpy",\n    "{key}": "float32"\n}}'
    report = check(tmp_path, text)
    p = problem(report, "warning", f'unknown key "{key}"')
    assert at(p) == (3, 5)
    assert f'"{suggestion}"' in p.hint
    assert report.ok  # warnings do not fail the check


def test_unknown_key_without_suggestion_lists_valid_keys(tmp_path):
    p = problem(check(tmp_path, '{"colour": "blue"}'), "warning", "unknown key")
    assert "image_data_format" in p.hint and at(p) == (1, 2)


def test_key_text_inside_a_value_is_not_mistaken_for_the_key(tmp_path):
    # "floatX" appears first as a value; the problem must point at the key.
    text = '{"backend": "floatX", \n "floatX": 1}'
    p = problem(check(tmp_path, text), "warning", 'unknown key "floatX"')
    assert at(p) == (2, 2)


def test_nnx_enabled_is_known(tmp_path):
    report = check(tmp_path, '{"nnx_enabled": false}')
    assert report.problems == []
    assert report.effective["nnx_enabled"] == (False, "keras.json")


def test_nnx_enabled_string_is_an_error(tmp_path):
    p = problem(check(tmp_path, '{"nnx_enabled": "false"}'), "error", "nnx_enabled")
    assert at(p) == (1, 17)


def test_duplicate_key(tmp_path):
    text = '{\n  "floatx": "float32",\n  "floatx": "float64"\n}'
    report = check(tmp_path, text)
    p = problem(report, "warning", "appears 2 times")
    assert at(p) == (3, 3)
    assert report.effective["floatx"] == ("float64", "keras.json")  # last one wins


@pytest.mark.parametrize("old, new", [("tf", "channels_last"), ("th", "channels_first")])
def test_image_dim_ordering(tmp_path, old, new):
    text = f'{{\n  "image_dim_ordering": "{old}"\n}}'
    report = check(tmp_path, text)
    p = problem(report, "warning", "image_dim_ordering")
    assert at(p) == (2, 3)
    assert "Keras 1" in p.message and "ignore" in p.message
    assert f'"image_data_format": "{new}"' in p.hint


def test_image_dim_ordering_conflict_is_explained(tmp_path):
    text = '{"image_dim_ordering": "th", "image_data_format": "channels_last"}'
    p = problem(check(tmp_path, text), "warning", "image_dim_ordering")
    assert "Keras will use channels_last" in p.hint


# --------------------------------------------------------------------------
# 4. values
# --------------------------------------------------------------------------

@pytest.mark.parametrize("value, hint", [
    ('"float"', '"float32"'), ('"Float64"', '"float64"'), ('"fp16"', '"float16"'),
    ("32", "Use"),
])
def test_invalid_floatx(tmp_path, value, hint):
    report = check(tmp_path, f'{{\n  "floatx": {value}\n}}')
    p = problem(report, "error", '"floatx" must be')
    assert at(p) == (2, 13)  # the value, not the key
    assert hint in p.hint
    assert report.effective["floatx"][1] == "keras.json (invalid)"
    assert not report.ok


def test_bfloat16_is_rejected_in_keras_json(tmp_path):
    # Verified against Keras 3 source (keras/src/backend/config.py): keras.json
    # floatx must be float16/32/64; bfloat16 only via set_floatx() in code.
    p = problem(check(tmp_path, '{"floatx": "bfloat16"}'), "error", "bfloat16")
    assert "set_floatx" in p.hint and at(p) == (1, 12)


def test_epsilon_as_string(tmp_path):
    p = problem(check(tmp_path, '{\n  "epsilon": "1e-7"\n}'), "error", "epsilon")
    assert "quote-free number" in p.message
    assert at(p) == (2, 14)
    assert "1e-7" in p.hint


@pytest.mark.parametrize("value, severity, cause", [
    ('"small"', "error", "not a number"),
    ("1", "error", "integer"),
    ("0.0", "error", "positive"),
    ("-1e-07", "error", "positive"),
    ("NaN", "error", "finite"),
    ("Infinity", "error", "finite"),
    ("true", "error", "must be a number"),
    ("null", "error", "must be a number"),
    ("0.5", "warning", "unusually large"),
])
def test_bad_epsilon(tmp_path, value, severity, cause):
    report = check(tmp_path, f'{{"epsilon": {value}}}')
    p = problem(report, severity, cause)
    assert at(p) == (1, 13)


def test_good_epsilon(tmp_path):
    assert check(tmp_path, '{"epsilon": 0.001}').problems == []


@pytest.mark.parametrize("value, suggestion", [
    ("channels_lst", "channels_last"), ("NCHW", "channels_first"), ("tf", "channels_last"),
])
def test_invalid_image_data_format(tmp_path, value, suggestion):
    p = problem(check(tmp_path, f'{{"image_data_format": "{value}"}}'),
                "error", "image_data_format")
    assert f'"{suggestion}"' in p.hint and at(p) == (1, 23)


# --------------------------------------------------------------------------
# 5. backend
# --------------------------------------------------------------------------

def test_backend_must_be_a_string(tmp_path):
    p = problem(check(tmp_path, '{"backend": 3}'), "error", "must be a string")
    assert at(p) == (1, 13)


def test_empty_backend(tmp_path):
    problem(check(tmp_path, '{"backend": ""}'), "error", "empty")


@pytest.mark.parametrize("name, suggestion", [
    ("tensorflo", "tensorflow"), ("pytorch", "torch"), ("TensorFlow", "tensorflow"),
])
def test_unknown_backend_name(tmp_path, installed, name, suggestion):
    p = problem(check(tmp_path, f'{{"backend": "{name}"}}'), "error", "not a known backend")
    assert f'"{suggestion}"' in p.hint and at(p) == (1, 13)


@pytest.mark.parametrize("name", ["tensorflow", "theano", "cntk", "jax", "torch", "openvino"])
def test_known_backend_not_installed(tmp_path, installed, name):
    report = check(tmp_path, f'{{\n  "backend": "{name}"\n}}')
    p = problem(report, "warning", "not installed in this interpreter")
    assert sys.executable in p.message and at(p) == (2, 14)
    assert report.ok


def test_known_backend_installed(tmp_path, installed):
    installed.add("torch")
    report = check(tmp_path, '{"backend": "torch"}')
    assert warnings(report) == [] and errors(report) == []
    problem(report, "info", "Keras 3 backend")


def test_keras2_only_backend_is_noted(tmp_path, installed):
    installed.add("theano")
    problem(check(tmp_path, '{"backend": "theano"}'), "info", "Keras 3 does not support")


@pytest.fixture
def external_package(tmp_path, monkeypatch):
    """extpkg/mybackend.py on sys.path; importing either one leaves a marker."""
    root = tmp_path / "site"
    pkg = root / "extpkg"
    pkg.mkdir(parents=True)
    marker = tmp_path / "imported"
    code = f"open({str(marker)!r}, 'a').write(__name__)\n"
    (pkg / "__init__.py").write_text(code)
    (pkg / "mybackend.py").write_text(code)
    monkeypatch.syspath_prepend(str(root))
    importlib.invalidate_caches()
    yield marker
    assert not marker.exists(), "the backend module was imported (code was run)"
    assert "extpkg" not in sys.modules


def test_external_backend_found_without_importing(tmp_path, external_package):
    report = check(tmp_path, '{"backend": "extpkg.mybackend"}')
    assert report.ok and warnings(report) == []
    problem(report, "info", "external backend module")


def test_external_backend_typo_in_submodule(tmp_path, external_package):
    p = problem(check(tmp_path, '{"backend": "extpkg.mybakend"}'), "error", "not found")
    assert '"extpkg.mybackend"' in p.hint and at(p) == (1, 13)


def test_external_backend_package_missing(tmp_path):
    p = problem(check(tmp_path, '{"backend": "no_such_pkg_1234.backend"}'),
                "warning", "not found in this interpreter")
    assert "PYTHONPATH" in p.hint


def test_external_backend_invalid_path(tmp_path):
    problem(check(tmp_path, '{"backend": "my..backend"}'), "error", "not a valid module path")


def test_undotted_importable_module_is_a_warning(tmp_path):
    # Keras 2 would import "json" as an external backend; Keras 3 refuses it.
    problem(check(tmp_path, '{"backend": "json"}'), "warning", "not a Keras backend")


# --------------------------------------------------------------------------
# 6. KERAS_BACKEND
# --------------------------------------------------------------------------

def test_keras_backend_overrides_file(tmp_path, installed):
    text = '{\n  "backend": "tensorflow"\n}'
    report = check(tmp_path, text, environ={"KERAS_BACKEND": "numpy"})
    p = problem(report, "warning", "overrides")
    assert "KERAS_BACKEND=numpy" in p.message and at(p) == (2, 14)
    assert report.effective["backend"] == ("numpy", "KERAS_BACKEND environment variable")
    # The file's backend is not used, so "tensorflow is not installed" is moot.
    assert not any("not installed" in p.message for p in report.problems)


def test_keras_backend_same_as_file_is_info(tmp_path, installed):
    report = check(tmp_path, '{"backend": "numpy"}', environ={"KERAS_BACKEND": "numpy"})
    assert warnings(report) == []
    problem(report, "info", "takes precedence")


def test_empty_keras_backend_is_ignored(tmp_path, installed):
    report = check(tmp_path, '{"backend": "numpy"}', environ={"KERAS_BACKEND": ""})
    problem(report, "info", "empty")
    assert report.effective["backend"] == ("numpy", "keras.json")


def test_invalid_keras_backend_is_an_error(tmp_path, installed):
    report = check(tmp_path, VALID, environ={"KERAS_BACKEND": "tensorfow"})
    p = problem(report, "error", "KERAS_BACKEND environment variable")
    assert '"tensorflow"' in p.hint and at(p) == (None, None)


# --------------------------------------------------------------------------
# default path
# --------------------------------------------------------------------------

def test_keras_home_is_honoured(tmp_path):
    home = tmp_path / "kh"
    home.mkdir()
    write(home, '{"floatx": "float16"}')
    report = check_config(environ={"KERAS_HOME": str(home), "HOME": str(tmp_path)})
    assert report.path == str(home / "keras.json")
    assert "KERAS_HOME" in report.path_reason
    assert report.effective["floatx"] == ("float16", "keras.json")


def test_keras_home_tilde_is_expanded(tmp_path):
    report = check_config(environ={"KERAS_HOME": "~/kh", "HOME": str(tmp_path)})
    assert report.path == str(tmp_path / "kh" / "keras.json")


def test_home_dot_keras_is_the_default(tmp_path):
    report = check_config(environ={"HOME": str(tmp_path)})
    assert report.path == str(tmp_path / ".keras" / "keras.json")


def test_unwritable_home_falls_back_to_tmp(tmp_path, monkeypatch):
    monkeypatch.setattr(checkconfig.os, "access", lambda *args, **kwargs: False)
    report = check_config(environ={"HOME": str(tmp_path)})
    assert report.path == os.path.join("/tmp", ".keras", "keras.json")
    assert "not writable" in report.path_reason


def test_missing_default_file_is_not_an_error(tmp_path):
    home = tmp_path / "kh"
    report = check_config(environ={"KERAS_HOME": str(home)})
    assert report.ok and not report.exists
    problem(report, "info", "Keras will create it")
    assert report.effective["floatx"] == ("float32", "default (no keras.json yet)")
    assert not home.exists()  # nothing was created


def test_missing_explicit_file_is_an_error(tmp_path):
    report = check_config(tmp_path / "nope.json", environ={})
    assert not report.ok and not report.exists
    problem(report, "error", "does not exist")


def test_folder_instead_of_file(tmp_path):
    (tmp_path / "keras.json").mkdir()
    problem(check_config(tmp_path / "keras.json", environ={}), "error", "folder")


# --------------------------------------------------------------------------
# output and CLI
# --------------------------------------------------------------------------

def test_format_report(tmp_path):
    path = write(tmp_path, '{\n  "floatx": "float32",\n}')
    text = format_report(check_config(path, environ={}))
    lines = text.splitlines()
    assert lines[0] == f"Keras configuration: {path}"
    index = next(i for i, line in enumerate(lines)
                 if line.startswith(f"{path}:2:22: error: trailing comma"))
    assert lines[index + 1].startswith("    hint: Delete this comma.")
    table = lines[lines.index("Effective configuration:") + 1:]
    assert table[0].split() == ["key", "value", "from"]
    assert table[1].split()[:3] == ["floatx", "float32", "default"]


def test_format_report_shows_string_numbers_quoted(tmp_path):
    text = format_report(check(tmp_path, '{"epsilon": "1e-7"}'))
    assert '"1e-7"' in text.split("Effective configuration:")[1]


def test_format_report_when_all_is_well(tmp_path, installed):
    assert "OK: no problems found." in format_report(check(tmp_path, '{"floatx": "float32"}'))


@pytest.fixture
def clean_env(monkeypatch, tmp_path):
    """main() reads os.environ: keep the runner's KERAS_* out of it."""
    monkeypatch.delenv("KERAS_BACKEND", raising=False)
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras_home"))


def test_main_return_codes(tmp_path, clean_env, installed, capsys):
    assert main([str(write(tmp_path, VALID, "good.json"))]) == 0
    assert main([str(write(tmp_path, '{"epsilon": 0.5}', "warn.json"))]) == 0
    assert main([str(write(tmp_path, '{"floatx": "x"}', "bad.json"))]) == 1
    assert main([str(tmp_path / "missing.json")]) == 2
    assert main([]) == 0  # default keras.json missing: Keras will create it
    out = capsys.readouterr().out
    assert "Effective configuration:" in out


def test_main_json_output(tmp_path, clean_env, capsys):
    path = write(tmp_path, '{\n  "floatx": "float",\n  "epsilon": NaN\n}')
    assert main([str(path), "--json"]) == 1
    data = json.loads(capsys.readouterr().out)
    assert data["path"] == str(path) and data["exists"] is True and data["ok"] is False
    floatx = next(p for p in data["problems"] if '"floatx"' in p["message"])
    assert (floatx["severity"], floatx["line"], floatx["column"]) == ("error", 2, 13)
    assert data["effective"]["floatx"] == {"value": "float", "source": "keras.json (invalid)"}
    # NaN is made strict-JSON-safe.
    assert data["effective"]["epsilon"]["value"] == "nan"


def test_report_to_dict_is_strict_json(tmp_path):
    report = check(tmp_path, '{"epsilon": Infinity}')
    json.dumps(report.to_dict(), allow_nan=False)


def test_public_types():
    report = ConfigReport(path="x", exists=True,
                          problems=[Problem("warning", "w"), Problem("info", "i")])
    assert report.ok
    report.problems.append(Problem("error", "e", 1, 2, "fix it"))
    assert not report.ok
    assert math.isclose(checkconfig.DEFAULTS["epsilon"], 1e-7)
