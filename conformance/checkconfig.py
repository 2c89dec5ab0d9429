"""``conformance check-config [PATH]``: validate a Keras ``keras.json``, read-only.

Keras (2.3.1 and 3 alike) reads ``keras.json`` once, at import time, and is
unhelpful about mistakes in it:

* If the file is not valid JSON (trailing comma, comment, curly quotes, a
  byte-order mark...), Keras catches the ``ValueError`` and *silently* runs
  with its defaults, so the settings you wrote have no effect.
* If a value is wrong (``"floatx": "float"``, ``"epsilon": "1e-7"``), Keras
  fails at import with a bare ``AssertionError`` (Keras 2) or a short
  ``ValueError`` (Keras 3) that does not say which file is to blame.
* Unknown keys (``"floatX"``) are ignored without a word.

This module finds those problems before Keras does, explains each in plain
words with the line and column, and shows the configuration Keras will
actually use and where each value comes from. It only ever *reads* the file:
it never writes, creates or "fixes" anything, and it never imports a backend
(importing runs arbitrary code); it only looks modules up.

Standard library only.
"""

from __future__ import annotations

import argparse
import dataclasses
import difflib
import importlib.machinery
import importlib.util
import json
import math
import os
import pkgutil
import re
import sys
from typing import Any

from conformance import kerasfacts, store

# --------------------------------------------------------------------------
# What Keras accepts
# --------------------------------------------------------------------------

KNOWN_KEYS = kerasfacts.KERAS_JSON_KEYS
DEFAULTS = kerasfacts.keras_json_defaults()  # what Keras uses for a missing key
DEFAULTS_TEXT = json.dumps(DEFAULTS)  # a complete keras.json, for hints
DEFAULT_EPSILON = kerasfacts.DEFAULT_EPSILON
# Both Keras 2.3.1 and Keras 3 check floatx against exactly this set when loading
# keras.json.
FLOATX_VALUES = kerasfacts.FLOATX_VALUES
IMAGE_DATA_FORMATS = kerasfacts.IMAGE_DATA_FORMATS

KERAS2_BACKENDS = kerasfacts.KERAS2_BACKENDS
KERAS3_BACKENDS = kerasfacts.KERAS3_BACKENDS
KNOWN_BACKENDS = kerasfacts.KNOWN_BACKENDS
# Backend name -> the package that must be importable for it to work.
BACKEND_PACKAGES = {name: name for name in KNOWN_BACKENDS}

# Spellings people write that difflib would not map to the right value.
ALIASES = {
    "floatx": {"fp16": "float16", "half": "float16", "fp32": "float32",
               "float": "float32", "single": "float32", "fp64": "float64",
               "double": "float64"},
    "image_data_format": {"tf": "channels_last", "nhwc": "channels_last",
                          "th": "channels_first", "nchw": "channels_first"},
    "backend": {"tf": "tensorflow", "pytorch": "torch", "th": "theano",
                "np": "numpy"},
}

# Keras 1's key and how its values map to the Keras 2+ key.
OLD_DIM_ORDERING = {"tf": "channels_last", "th": "channels_first"}

# Typographic quotes a word processor substitutes for straight ones.
CURLY_QUOTES = "\u201c\u201d\u2018\u2019"

IGNORED_NOTE = ("Until then Keras silently ignores the whole file and runs with "
                "its defaults, so none of your settings take effect.")


# --------------------------------------------------------------------------
# Public data types
# --------------------------------------------------------------------------

@dataclasses.dataclass
class Problem:
    """One finding. ``severity`` is "error", "warning" or "info"."""

    severity: str
    message: str
    line: int | None = None
    column: int | None = None
    hint: str = ""


@dataclasses.dataclass
class ConfigReport:
    """The result of checking one keras.json."""

    path: str
    exists: bool
    problems: list[Problem] = dataclasses.field(default_factory=list)
    # key -> (value, where it comes from)
    effective: dict[str, tuple[Any, str]] = dataclasses.field(default_factory=dict)
    # Why this path was chosen, e.g. "from KERAS_HOME"; "" for an explicit path.
    path_reason: str = ""

    @property
    def ok(self) -> bool:
        return not any(p.severity == "error" for p in self.problems)

    def to_dict(self) -> dict:
        return {
            "path": self.path,
            "path_reason": self.path_reason,
            "exists": self.exists,
            "ok": self.ok,
            "problems": [dataclasses.asdict(p) for p in self.problems],
            "effective": {key: {"value": store.jsonable(value), "source": source}
                          for key, (value, source) in self.effective.items()},
        }


# --------------------------------------------------------------------------
# Where Keras looks
# --------------------------------------------------------------------------

def default_config_path(environ=None) -> tuple[str, str]:
    """Return (path, reason) for the keras.json that Keras itself would read.

    Mirrors keras/backend/load_backend.py (2.3.1) and keras/src/backend/config.py
    (3): $KERAS_HOME if set (even if empty), else ~/.keras, else /tmp/.keras
    when the home folder is not writable.
    """
    environ = os.environ if environ is None else environ
    home = environ.get("HOME") or os.path.expanduser("~")
    if "KERAS_HOME" in environ:
        keras_dir, reason = environ["KERAS_HOME"], "from KERAS_HOME"
    elif os.access(home, os.W_OK):
        keras_dir, reason = os.path.join(home, ".keras"), "default location"
    else:
        keras_dir = os.path.join("/tmp", ".keras")
        reason = f"/tmp fallback: home folder {home} is not writable"
    # Keras expands "~" after joining, so KERAS_HOME="~/x" works there too.
    return _expanduser(os.path.join(keras_dir, "keras.json"), home), reason


def _expanduser(path: str, home: str) -> str:
    if path == "~" or path.startswith("~" + os.sep):
        return home + path[1:]
    return os.path.expanduser(path)


# --------------------------------------------------------------------------
# Entry point
# --------------------------------------------------------------------------

def check_config(path=None, environ=None) -> ConfigReport:
    """Check a keras.json (default: the one Keras would read). Read-only."""
    environ = os.environ if environ is None else environ
    explicit = path is not None
    if explicit:
        path, reason = os.path.expanduser(os.fspath(path)), ""
    else:
        path, reason = default_config_path(environ)
    report = ConfigReport(path=path, exists=os.path.exists(path), path_reason=reason)

    if report.exists:
        result = _check_file(path, report.problems, environ)
    else:
        result = _FileResult()
        report.problems.append(_missing_file_problem(path, explicit))

    report.effective = _effective(result, report.exists, environ)
    report.problems += _check_backend_env(environ, result)
    return report


@dataclasses.dataclass
class _FileResult:
    """What the file contributes, as Keras will see it."""

    config: dict = dataclasses.field(default_factory=dict)
    ignored: str = ""      # why Keras ignores the whole file; "" if it does not
    invalid: set = dataclasses.field(default_factory=set)  # keys Keras rejects
    backend_at: tuple = (None, None)  # (line, column) of the backend value


def _missing_file_problem(path: str, explicit: bool) -> Problem:
    if explicit:
        return Problem("error", f"{path} does not exist.",
                       hint="Check the path; to check the file Keras itself "
                            "reads, run without a path.")
    # Not an error: Keras writes this file with its defaults on first import.
    return Problem("info", "keras.json does not exist yet; Keras will create it "
                           "with its defaults the first time it is imported.",
                   hint="Nothing to do unless you want non-default settings.")


def _check_file(path: str, problems: list, environ) -> _FileResult:
    """Read, parse and validate the file, appending to ``problems``."""
    text, ignored = _read_text(path, problems)
    if text is None:
        return _FileResult(ignored=ignored or "it cannot be read")
    try:
        config = json.loads(text)
    except json.JSONDecodeError as err:
        problems.append(_diagnose_syntax(text, err))
        return _FileResult(ignored="it is not valid JSON")
    if not isinstance(config, dict):
        problems.append(_not_an_object(text, config))
        return _FileResult(ignored="its top level is not an object")
    keys = _top_level_keys(text)
    found = _check_non_ascii(text) + _check_keys(config, keys, text)
    invalid = _check_values(config, keys, text, found, environ)
    # Report in file order, as a compiler would.
    problems += sorted(found, key=lambda p: (p.line or 0, p.column or 0))
    backend_at = (_position(text, keys["backend"][-1][1]) if "backend" in keys
                  else (None, None))
    return _FileResult(config, ignored, invalid, backend_at)


# --------------------------------------------------------------------------
# Reading and parsing
# --------------------------------------------------------------------------

def _read_text(path: str, problems: list) -> tuple[str | None, str]:
    """Return (text, ignored). A leading BOM is stripped (and reported)."""
    try:
        with open(path, "rb") as f:   # "rb": never modifies, never truncates
            data = f.read()
    except IsADirectoryError:
        problems.append(Problem("error", f"{path} is a folder, not a file.",
                                hint="Keras will fail to start; remove the "
                                     "folder or point KERAS_HOME elsewhere."))
        return None, ""
    except OSError as err:
        problems.append(Problem("error", f"cannot read {path}: {err.strerror}.",
                                hint="Keras will fail to start too; fix the "
                                     "file's permissions."))
        return None, ""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as err:
        problems.append(_not_utf8(data, err))
        return None, "it is not valid UTF-8"
    if text.startswith("\ufeff"):
        # json.load fails with "Unexpected UTF-8 BOM" and Keras then ignores
        # the file. Keep checking the rest so all problems show up at once.
        problems.append(Problem(
            "error", "the file starts with a UTF-8 byte-order mark (BOM); "
                     "JSON parsers, including the one Keras uses, reject it.",
            1, 1, "Save the file as UTF-8 without BOM (in Notepad: "
                  "'UTF-8', not 'UTF-8 with BOM'). " + IGNORED_NOTE))
        # Columns below are counted without the invisible BOM, as editors do.
        return text[1:], "it starts with a byte-order mark"
    return text, ""


def _not_utf8(data: bytes, err: UnicodeDecodeError) -> Problem:
    before = data[:err.start].decode("utf-8", errors="replace")
    line, column = _position(before, len(before))
    byte = data[err.start]
    cause = ""
    if byte in (0x91, 0x92, 0x93, 0x94):
        cause = " It looks like a Windows-1252 curly quote pasted from a word processor."
    return Problem("error", f"the file is not valid UTF-8 (byte 0x{byte:02x}).{cause}",
                   line, column,
                   "Replace the curly quotes with straight double quotes and save "
                   "the file as UTF-8. " + IGNORED_NOTE)


def _position(text: str, offset: int) -> tuple[int, int]:
    """1-based (line, column) of a character offset, as json's errors count."""
    line = text.count("\n", 0, offset) + 1
    column = offset - (text.rfind("\n", 0, offset) + 1) + 1
    return line, column


def _diagnose_syntax(text: str, err: json.JSONDecodeError) -> Problem:
    """Turn a JSONDecodeError into a specific, plain-words diagnosis."""
    pos = err.pos
    char = text[pos:pos + 1]

    def at(offset: int, message: str, hint: str) -> Problem:
        line, column = _position(text, offset)
        return Problem("error", message, line, column, hint + " " + IGNORED_NOTE)

    if not text.strip():
        return at(0, "the file is empty; an empty file is not valid JSON.",
                  "Write {} in it, or delete it so Keras writes a fresh one "
                  "with its defaults.")
    if char and char in CURLY_QUOTES:
        return _curly_problem(text, pos, at)
    if char == "#" or (char == "/" and text[pos + 1:pos + 2] in ("/", "*")):
        return at(pos, "comment found; JSON has no comments (no //, /* */ or #).",
                  "Delete the comment (keep notes in a separate file).")
    if char == "'":
        return at(pos, "single quotes found; JSON strings and keys need double "
                       "quotes.",
                  "Replace the single quotes ' with straight double quotes \".")
    comma = _trailing_comma(text, pos)
    if comma is not None:
        return at(comma, "trailing comma after the last entry; JSON does not "
                         "allow a comma before } or ].",
                  "Delete this comma.")
    curly = _first_curly_quote(text, pos)
    if curly is not None:
        return _curly_problem(text, curly, at)
    return _generic_syntax(text, err, at)


def _curly_problem(text: str, offset: int, at) -> Problem:
    count = sum(text.count(q) for q in CURLY_QUOTES)
    return at(offset, f"typographic (curly) quote {text[offset]} found "
                      f"({count} in the file), probably pasted from a word "
                      "processor; JSON only accepts straight double quotes \".",
              "Replace the curly quotes with straight double quotes.")


def _first_curly_quote(text: str, error_pos: int) -> int | None:
    """A curly quote before the end of the error's line is almost surely the
    cause: inside a straight-quoted string it swallows the closing quote."""
    line_end = text.find("\n", error_pos)
    line_end = len(text) if line_end < 0 else line_end
    found = [i for i in (text.find(q, 0, line_end) for q in CURLY_QUOTES) if i >= 0]
    return min(found) if found else None


def _trailing_comma(text: str, pos: int) -> int | None:
    """Offset of a comma directly (bar whitespace) before the } or ] at pos."""
    if text[pos:pos + 1] not in ("}", "]"):
        return None
    before = text[:pos].rstrip()
    return len(before) - 1 if before.endswith(",") else None


def _generic_syntax(text: str, err: json.JSONDecodeError, at) -> Problem:
    pos, char = err.pos, text[err.pos:err.pos + 1]
    if err.msg == "Expecting value" and not text[:pos].strip():
        # Failed on the very first character: not a JSON document at all.
        return at(pos, "the file is not JSON at all; it should start with {.",
                  f"Write it as {DEFAULTS_TEXT}.")
    word = re.match(r"[A-Za-z_][\w.+-]*", text[pos:])
    if word and err.msg.startswith("Expecting property name"):
        return at(pos, f"key {word.group()} is not in quotes.",
                  f'Write it as "{word.group()}" (straight double quotes).')
    if word and err.msg == "Expecting value":
        python = {"True": "true", "False": "false", "None": "null"}
        if word.group() in python:
            return at(pos, f"{word.group()} is Python spelling, not JSON.",
                      f"Write {python[word.group()]} instead.")
        return at(pos, f"the value {word.group()} is not in quotes.",
                  f'Write it as "{word.group()}" (straight double quotes).')
    if err.msg == "Expecting ',' delimiter":
        return at(pos, "missing comma between two entries (or a missing "
                       "closing bracket) before this point.",
                  "Put a comma after the previous value.")
    if err.msg == "Extra data":
        return at(pos, "there is more text after the closing } of the "
                       "configuration object.",
                  "Delete everything after the final }; merge the entries "
                  "into one object if there are two.")
    if err.msg.startswith("Unterminated string"):
        return at(pos, "this string is never closed with a double quote.",
                  'Add the closing " at the end of the string.')
    if err.msg.startswith("Invalid control character"):
        what = "a line break" if char in "\r\n" else "a control character (e.g. a tab)"
        return at(pos, f"{what} inside a string; the string is probably "
                       "missing its closing double quote.",
                  'Close the string with " on the same line.')
    return at(pos, f"not valid JSON: {err.msg}.",
              f"keras.json must look like {DEFAULTS_TEXT}.")


def _not_an_object(text: str, config: Any) -> Problem:
    offset = len(text) - len(text.lstrip())
    line, column = _position(text, offset)
    kind = {list: "a list", str: "a string", bool: "a boolean",
            type(None): "null"}.get(type(config), "a number")
    return Problem("error", f"the top level must be a JSON object {{...}}, "
                            f"but it is {kind}; Keras will crash on import.",
                   line, column,
                   'Wrap the settings in braces: {"floatx": "float32", ...}.')


def _check_non_ascii(text: str) -> list[Problem]:
    """Keras opens keras.json with the locale's encoding, which is ASCII on
    Python 3.6 under LANG=C; any non-ASCII character then makes it ignore
    the whole file."""
    match = re.search(r"[^\x00-\x7f]", text)
    if not match:
        return []
    line, column = _position(text, match.start())
    return [Problem("warning", f"non-ASCII character {match.group()!r} in the "
                               "file; under a non-UTF-8 locale (e.g. LANG=C on "
                               "Python 3.6) Keras cannot decode it and silently "
                               "ignores the whole file.",
                    line, column, "Use plain ASCII in keras.json.")]


# --------------------------------------------------------------------------
# Locating keys in the raw text (so messages can point at them)
# --------------------------------------------------------------------------

_TOKEN = re.compile(r'"(?:[^"\\]|\\.)*"|[{}\[\]]', re.S)
_COLON = re.compile(r"\s*:\s*")


def _top_level_keys(text: str) -> dict[str, list[tuple[int, int]]]:
    """Map each top-level key to [(key offset, value offset), ...] in file
    order. Only called on text that parsed, so tokens never misalign."""
    keys: dict[str, list[tuple[int, int]]] = {}
    depth = 0
    for token in _TOKEN.finditer(text):
        if token.group() in ("{", "["):
            depth += 1
        elif token.group() in ("}", "]"):
            depth -= 1
        elif depth == 1:
            after = _COLON.match(text, token.end())
            if after:  # a string followed by ':' is a key, not a value
                keys.setdefault(json.loads(token.group()), []).append(
                    (token.start(), after.end()))
    return keys


def _locate(problem: Problem, text: str, offset: int | None) -> Problem:
    if offset is not None:
        problem.line, problem.column = _position(text, offset)
    return problem


# --------------------------------------------------------------------------
# Key checks
# --------------------------------------------------------------------------

def _check_keys(config: dict, keys: dict, text: str) -> list[Problem]:
    problems = []
    for key, places in keys.items():
        if len(places) > 1:
            problems.append(_locate(Problem(
                "warning", f'key "{key}" appears {len(places)} times; Keras '
                           "uses only the last one.",
                hint="Delete the extra entries."), text, places[-1][0]))
    for key in config:
        offset = keys[key][-1][0] if key in keys else None
        if key == "image_dim_ordering":
            problem = _old_dim_ordering(config)
        elif key not in KNOWN_KEYS:
            problem = _unknown_key(key)
        else:
            continue
        problems.append(_locate(problem, text, offset))
    return problems


def _unknown_key(key: str) -> Problem:
    message = f'unknown key "{key}"; Keras ignores it.'
    match = _suggest(key, KNOWN_KEYS)
    if match and match.lower() == key.lower():
        message += " Keys are case-sensitive."
    hint = (f'Did you mean "{match}"? Rename the key.' if match else
            "Remove it; valid keys are " + ", ".join(KNOWN_KEYS) + ".")
    return Problem("warning", message, hint=hint)


def _old_dim_ordering(config: dict) -> Problem:
    value = config["image_dim_ordering"]
    mapped = OLD_DIM_ORDERING.get(value) if isinstance(value, str) else None
    message = ('"image_dim_ordering" is a Keras 1 setting; Keras 2.3.1 and '
               'Keras 3 ignore it (its replacement is "image_data_format": '
               '"tf" means "channels_last", "th" means "channels_first").')
    if mapped is None:
        hint = 'Remove it and set "image_data_format" instead.'
    else:
        hint = f'Replace it with "image_data_format": "{mapped}".'
        current = config.get("image_data_format", DEFAULTS["image_data_format"])
        if current != mapped:
            hint += (f' Note: "{value}" asks for {mapped}, but Keras will use '
                     f'{current} as things stand.')
    return Problem("warning", message, hint=hint)


def _suggest(word: str, choices, aliases=None) -> str | None:
    """Nearest valid spelling, ignoring case, or None."""
    lowered = word.strip().strip(CURLY_QUOTES + "'\"").lower()
    if aliases and lowered in aliases:
        return aliases[lowered]
    by_lower = {c.lower(): c for c in choices}
    match = difflib.get_close_matches(lowered, list(by_lower), n=1)
    return by_lower[match[0]] if match else None


# --------------------------------------------------------------------------
# Value checks. Each returns Problems without a position; the caller points
# them at the value in the file.
# --------------------------------------------------------------------------

def _check_values(config, keys, text, problems, environ) -> set:
    """Append value problems; return the keys whose values Keras rejects."""
    checks = {"floatx": _check_floatx, "epsilon": _check_epsilon,
              "image_data_format": _check_image_data_format,
              "nnx_enabled": _check_nnx_enabled}
    invalid = set()
    for key, value in config.items():
        if key == "backend":
            # An overriding KERAS_BACKEND makes "is it installed" moot.
            found = _check_backend(value, installed=not _env_backend(environ))
        elif key in checks:
            found = checks[key](value)
        else:
            continue
        offset = keys[key][-1][1] if key in keys else None
        problems += [_locate(p, text, offset) for p in found]
        if any(p.severity == "error" for p in found):
            invalid.add(key)
    return invalid


def _check_floatx(value) -> list[Problem]:
    if value == "bfloat16":
        return [Problem("error", '"floatx": "bfloat16" is rejected when Keras '
                                 "loads keras.json (Keras 2.3.1 fails an assert, "
                                 'Keras 3 raises "Invalid `floatx` configuration").',
                        hint='Use "float16"/"float32"/"float64" here; in Keras 3 '
                             'call keras.config.set_floatx("bfloat16") in code.')]
    if value in FLOATX_VALUES:
        return []
    return [_bad_choice("floatx", value, FLOATX_VALUES)]


def _check_image_data_format(value) -> list[Problem]:
    if value in IMAGE_DATA_FORMATS:
        return []
    return [_bad_choice("image_data_format", value, IMAGE_DATA_FORMATS)]


def _bad_choice(key: str, value, choices) -> Problem:
    allowed = " or ".join(f'"{c}"' for c in choices)
    message = f'"{key}" must be {allowed}, not {json.dumps(value)}; Keras will ' \
              "refuse to start."
    match = _suggest(value, choices, ALIASES.get(key)) if isinstance(value, str) else None
    if isinstance(value, str) and any(q in value for q in CURLY_QUOTES):
        message += " The value contains curly quotes."
    hint = f'Did you mean "{match}"?' if match else f"Use {allowed}."
    return Problem("error", message, hint=hint)


def _check_epsilon(value) -> list[Problem]:
    # Keras checks isinstance(epsilon, float): JSON 1 is an int and fails,
    # JSON true is a bool (an int in Python) and fails.
    if isinstance(value, str):
        return [_epsilon_string(value)]
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return [Problem("error", f'"epsilon" must be a number, not '
                                 f"{json.dumps(value)}; Keras will refuse to start.",
                        hint=f'Write a small positive number, e.g. "epsilon": {DEFAULT_EPSILON}.')]
    if not math.isfinite(value) or value <= 0:
        return [Problem("error", f'"epsilon" must be positive and finite, not '
                                 f"{value}; it guards divisions and logs.",
                        hint=f"Use a small positive number such as {DEFAULT_EPSILON} "
                             "(the default).")]
    if isinstance(value, int):
        return [Problem("error", f'"epsilon" is the integer {value}; Keras '
                                 "requires a float and will refuse to start.",
                        hint=f'Write it with a decimal point: "epsilon": {float(value)}.')]
    if value > 0.1:
        return [Problem("warning", f'"epsilon" is {value}, unusually large (the '
                                   f"default is {DEFAULT_EPSILON}); it is added to denominators "
                                   "and will visibly change results.",
                        hint=f"Use something like {DEFAULT_EPSILON} unless this is deliberate.")]
    return []


def _epsilon_string(value: str) -> Problem:
    try:
        number = float(value)
    except ValueError:
        number = None
    if number is None:
        return Problem("error", f'"epsilon" is the string "{value}", which is not '
                                "a number; Keras will refuse to start.",
                       hint=f'Write a quote-free number, e.g. "epsilon": {DEFAULT_EPSILON}.')
    return Problem("error", f'"epsilon" is the string "{value}"; it must be a '
                            "quote-free number. Keras will refuse to start.",
                   hint=f'Remove the quotes: "epsilon": {value.strip()}.')


def _check_nnx_enabled(value) -> list[Problem]:
    if not isinstance(value, bool):
        # Keras 3 does bool(value): the string "false" counts as enabled.
        return [Problem("error", f'"nnx_enabled" must be true or false, not '
                                 f"{json.dumps(value)} (Keras 3 would treat any "
                                 "non-empty string, even \"false\", as true).",
                        hint="Write true or false without quotes.")]
    if value and not _is_installed("flax"):
        return [Problem("warning", '"nnx_enabled" is true but flax is not '
                                   f"installed in this interpreter ({sys.executable}); "
                                   "Keras 3 will fail to import.",
                        hint="Install flax, or set nnx_enabled to false.")]
    return []


# --------------------------------------------------------------------------
# Backend checks (file value and KERAS_BACKEND)
# --------------------------------------------------------------------------

def _check_backend(value, installed: bool = True, origin: str = '"backend"') -> list[Problem]:
    """Check a backend name. ``installed`` also checks its library is present."""
    if not isinstance(value, str):
        return [Problem("error", f"{origin} must be a string such as "
                                 f'"tensorflow", not {json.dumps(value)}.',
                        hint='Put the backend name in double quotes.')]
    if not value:
        return [Problem("error", f"{origin} is empty; Keras will fail to load a "
                                 "backend.",
                        hint='Name one: "tensorflow", "jax", "torch", ...')]
    if value in KNOWN_BACKENDS:
        return _known_backend(value, installed, origin)
    if "." in value:
        return _external_backend(value, origin)
    return _unknown_backend(value, origin)


def _known_backend(name: str, installed: bool, origin: str) -> list[Problem]:
    problems = []
    if installed and not _is_installed(BACKEND_PACKAGES[name]):
        problems.append(Problem(
            "warning", f'{origin} "{name}": {BACKEND_PACKAGES[name]} is not '
                       f"installed in this interpreter ({sys.executable}).",
            hint=f"Install {BACKEND_PACKAGES[name]}, or run this check with the "
                 "Python interpreter that will run Keras."))
    if name not in KERAS3_BACKENDS:
        problems.append(Problem("info", f'"{name}" is a Keras 2 backend; Keras 3 '
                                        "does not support it."))
    elif name not in KERAS2_BACKENDS:
        problems.append(Problem("info", f'"{name}" is a Keras 3 backend; Keras 2.3.1 '
                                        "cannot use it."))
    return problems


def _unknown_backend(name: str, origin: str) -> list[Problem]:
    if _is_installed(name):
        # Keras 2 imports any other name as an external backend module.
        return [Problem("warning", f'{origin} "{name}" is not a Keras backend; '
                                   "Keras 2.3.1 will import the module of that "
                                   "name as an external backend, Keras 3 will "
                                   "refuse it.",
                        hint="Use a known backend name unless this module "
                             "really is a Keras 2 backend.")]
    match = _suggest(name, KNOWN_BACKENDS, ALIASES["backend"])
    hint = f'Did you mean "{match}"?' if match else \
        "Known backends: " + ", ".join(KNOWN_BACKENDS) + "."
    return [Problem("error", f'{origin} "{name}" is not a known backend; '
                             "Keras will fail to import.", hint=hint)]


def _external_backend(name: str, origin: str) -> list[Problem]:
    """A dotted name is a Keras 2 external backend module; look it up
    without importing anything (importing runs the module's code)."""
    if not all(part.isidentifier() for part in name.split(".")):
        return [Problem("error", f'{origin} "{name}" is not a valid module path.',
                        hint='Use dotted Python names, e.g. "my_package.my_backend".')]
    found, missing, siblings = _find_module(name)
    if found:
        return [Problem("info", f'{origin} "{name}" is an external backend module '
                                "(Keras 2 only: Keras 3 has no external backends).")]
    if missing == name.split(".")[0]:
        # The whole package is absent here; it may be on the target's path.
        return [Problem("warning", f'{origin} "{name}": package "{missing}" is not '
                                   f"found in this interpreter ({sys.executable}).",
                        hint="Install the package or add its parent folder to "
                             "PYTHONPATH for the process that runs Keras.")]
    match = difflib.get_close_matches(missing.rsplit(".", 1)[-1], siblings, n=1)
    hint = f'Did you mean "{missing.rsplit(".", 1)[0]}.{match[0]}"?' if match else \
        "Check the module path and PYTHONPATH."
    return [Problem("error", f'{origin} "{name}": module "{missing}" not found '
                             "(its parent package exists).", hint=hint)]


def _find_module(name: str) -> tuple[bool, str, list[str]]:
    """Return (found, first missing dotted prefix, names next to it).

    importlib.util.find_spec("a.b") would import (run) package "a", so only
    the top level goes through it; submodules are searched with PathFinder
    in the parent's folders, which reads directories and runs nothing.
    """
    parts = name.split(".")
    spec = _spec(parts[0])
    for i in range(1, len(parts) + 1):
        prefix = ".".join(parts[:i])
        if spec is None:
            return False, prefix, []
        if i == len(parts):
            return True, "", []
        locations = list(spec.submodule_search_locations or [])
        spec = importlib.machinery.PathFinder.find_spec(
            ".".join(parts[:i + 1]), locations) if locations else None
        if spec is None:
            siblings = [m.name for m in pkgutil.iter_modules(locations)]
            return False, ".".join(parts[:i + 1]), siblings
    return True, "", []


def _spec(top_level: str):
    try:
        return importlib.util.find_spec(top_level)
    except (ImportError, ValueError):  # e.g. a module in sys.modules without a spec
        return None


def _is_installed(package: str) -> bool:
    return _spec(package) is not None


def _env_backend(environ) -> str:
    """KERAS_BACKEND as Keras applies it: set and non-empty wins."""
    return environ.get("KERAS_BACKEND") or ""


def _check_backend_env(environ, result: _FileResult) -> list[Problem]:
    if "KERAS_BACKEND" not in environ:
        return []
    value = environ["KERAS_BACKEND"]
    if not value:
        return [Problem("info", "KERAS_BACKEND is set but empty; Keras ignores it.")]
    origin = "KERAS_BACKEND environment variable"
    problems = _check_backend(value, installed=True, origin=origin)
    from_file = None if result.ignored else result.config.get("backend")
    if from_file is not None and from_file != value:
        line, column = result.backend_at   # point at the value being overridden
        problems.insert(0, Problem(
            "warning", f'KERAS_BACKEND={value} overrides "backend": '
                       f"{json.dumps(from_file)} from keras.json.", line, column,
            "Unset KERAS_BACKEND to use the file's backend, or make them agree."))
    else:
        problems.insert(0, Problem(
            "info", f"KERAS_BACKEND={value} is set; it takes precedence over "
                    "keras.json."))
    return problems


# --------------------------------------------------------------------------
# Effective configuration
# --------------------------------------------------------------------------

def _effective(result: _FileResult, exists: bool,
               environ) -> dict[str, tuple[Any, str]]:
    config, ignored = result.config, result.ignored
    if ignored:
        default_source = f"default (Keras ignores keras.json: {ignored})"
    elif not exists:
        default_source = "default (no keras.json yet)"
    else:
        default_source = "default"
    effective = {}
    for key in (*DEFAULTS, "nnx_enabled"):
        if key in config and not ignored:
            source = "keras.json (invalid)" if key in result.invalid else "keras.json"
            effective[key] = (config[key], source)
        elif key in DEFAULTS:
            effective[key] = (DEFAULTS[key], default_source)
    if _env_backend(environ):
        effective["backend"] = (environ["KERAS_BACKEND"],
                                "KERAS_BACKEND environment variable")
    return effective


# --------------------------------------------------------------------------
# Output
# --------------------------------------------------------------------------

def format_report(report: ConfigReport) -> str:
    """Human-readable report: location, problems with hints, effective table."""
    header = f"Keras configuration: {report.path}"
    if report.path_reason:
        header += f" ({report.path_reason})"
    lines = [header, ""]
    for problem in report.problems:
        lines.append(f"{_where(report.path, problem)}: {problem.severity}: "
                     f"{problem.message}")
        if problem.hint:
            lines.append(f"    hint: {problem.hint}")
    lines += ["", _summary(report), "", "Effective configuration:"]
    lines += _table(report.effective)
    return "\n".join(lines) + "\n"


def _where(path: str, problem: Problem) -> str:
    if problem.line is None:
        return path
    if problem.column is None:
        return f"{path}:{problem.line}"
    return f"{path}:{problem.line}:{problem.column}"


def _summary(report: ConfigReport) -> str:
    errors = sum(p.severity == "error" for p in report.problems)
    warnings = sum(p.severity == "warning" for p in report.problems)
    if not errors and not warnings:
        return "OK: no problems found."
    verdict = "INVALID" if errors else "OK with warnings"
    return f"{verdict}: {errors} error(s), {warnings} warning(s)."


def _table(effective: dict) -> list[str]:
    rows = [("key", "value", "from")]
    rows += [(key, _show(value), source) for key, (value, source) in effective.items()]
    widths = [max(len(row[i]) for row in rows) for i in range(2)]
    return [f"  {k:<{widths[0]}}  {v:<{widths[1]}}  {s}" for k, v, s in rows]


def _show(value) -> str:
    """Strings bare, unless they would read as a number/true/null: "1e-7"."""
    if isinstance(value, str):
        try:
            json.loads(value)
        except ValueError:
            return value
    return json.dumps(value)


def main(argv=None) -> int:
    """CLI: 0 = valid (warnings allowed), 1 = errors, 2 = the given PATH does
    not exist. A missing *default* keras.json is fine (Keras creates it)."""
    parser = argparse.ArgumentParser(
        prog="conformance check-config",
        description="Validate a Keras keras.json without changing it.")
    parser.add_argument("path", nargs="?", default=None,
                        help="keras.json to check (default: the file Keras "
                             "reads: $KERAS_HOME/keras.json or ~/.keras/keras.json)")
    parser.add_argument("--json", action="store_true",
                        help="print the report as JSON")
    args = parser.parse_args(argv)
    report = check_config(args.path)
    if args.json:
        print(json.dumps(report.to_dict(), indent=2))
    else:
        print(format_report(report), end="")
    if args.path is not None and not report.exists:
        return 2
    return 0 if report.ok else 1


if __name__ == "__main__":
    sys.exit(main())
