"""Copy-paste repro scripts: one counterexample, one backend, nothing else.

The script sets ``KERAS_BACKEND`` before importing Keras, sets floatx (and epsilon
when the target reported one), rebuilds the exact input arrays and calls the op the
way the harness's adapter did:

- Keras 3: ``keras.ops.<fn>`` on ``convert_to_tensor(a, dtype=a.dtype)`` tensors;
- Keras 2: placeholders of the inputs' shapes and dtypes, ``K.function``, then a call
  on the arrays (the graph path the adapter uses; Python 3.6 syntax, no f-strings);
- ops-module plugins: the module's function on the numpy arrays.

Arrays whose values the results hold (up to 64 elements) are written literally with
their dtype. Larger ones are embedded as base64 ``.npy`` bytes when the counterexample
``.npz`` is at hand and small enough, else loaded from that ``.npz`` (copied next to
the report). Positional arguments are ``call["args"]`` (input names) when the record
has them, else every array input not passed by keyword, in recorded order.

A target's own words (its message, version strings, interpreter path) only ever go
into comments, each kept on its one line; a module name it reported is imported by
name through importlib unless it is a plain dotted name: a script a person copies and
runs must not run what a backend wrote.
"""
from __future__ import annotations

import base64
import io
import math
import re
from pathlib import Path

import numpy as np

from conformance.report import repro_gradients
from conformance.report.arrays import is_array
from conformance.textsafe import printable

EMBED_LIMIT = 48 * 1024  # bytes of .npy embedded per script before falling back to np.load
_DOTTED_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*\Z")


def _comment(text) -> str:
    """Text for the rest of a comment line: no line break (nor any other control
    character) can end the comment and start a line of code."""
    return printable(" ".join(str(text).split()), one_line=True)


def _import(module: str, alias: str) -> str:
    """``import module as alias``; through importlib when `module` is not a plain
    dotted name, so that a name is never read as code."""
    if _DOTTED_NAME.match(module):
        return f"import {module} as {alias}"
    return f"import importlib; {alias} = importlib.import_module({module!r})"


def _literal(value) -> str:
    if isinstance(value, list):
        return "[" + ", ".join(_literal(v) for v in value) + "]"
    if isinstance(value, str):
        return {"nan": "np.nan", "inf": "np.inf", "-inf": "-np.inf"}.get(value, repr(value))
    if isinstance(value, float):
        if math.isnan(value):
            return "np.nan"
        if math.isinf(value):
            return "np.inf" if value > 0 else "-np.inf"
        return repr(value)
    return repr(value)


def _static(value) -> str:
    """A JSON value as a Python literal (JSON's true/false/null become Python's)."""
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k!r}: {_static(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list):
        return "[" + ", ".join(_static(v) for v in value) + "]"
    return _literal(value)


def _identifier(name: str) -> str:
    text = "".join(c if c.isalnum() or c == "_" else "_" for c in str(name))
    if not text or text[0].isdigit():
        text = "a_" + text
    return text


def positional_text(arg, variables: dict) -> str:
    """One positional argument of a recorded call as source text: an input's name, a
    list of them, or a literal passed positionally (an axis, a shape, a number)."""
    if isinstance(arg, list):
        return "[" + ", ".join(positional_text(a, variables) for a in arg) + "]"
    if isinstance(arg, str):
        return variables.get(arg, _identifier(arg))
    return _static(arg)


class _Arrays:
    """How each array of the script is produced."""

    def __init__(self, npz: Path | None, npz_shown: str | None):
        self.npz = npz
        self.npz_shown = npz_shown
        self.embedded = 0
        self.uses_npz = False
        self.uses_b64 = False
        self._data = None

    def _npz_array(self, key: str):
        if self.npz is None:
            return None
        if self._data is None:
            try:
                with np.load(self.npz, allow_pickle=False) as data:
                    self._data = {k: data[k] for k in data.files}
            except (OSError, ValueError):
                self._data = {}
        return self._data.get(key)

    def expression(self, record: dict, key: str) -> str:
        dtype = str(record.get("dtype"))
        if "values" in record:
            return f"np.array({_literal(record['values'])}, dtype={dtype!r})"
        array = self._npz_array(key)
        if array is not None:
            buffer = io.BytesIO()
            np.save(buffer, array, allow_pickle=False)
            raw = buffer.getvalue()
            if self.embedded + len(raw) <= EMBED_LIMIT:
                self.embedded += len(raw)
                self.uses_b64 = True
                text = base64.b64encode(raw).decode()
                lines = [text[i:i + 76] for i in range(0, len(text), 76)]
                joined = "\n    ".join(repr(line) for line in lines)
                return f"_npy(\n    {joined})"
        self.uses_npz = True
        return f"_arrays[{key!r}]"


# What a Keras 2 script defines before its call: one placeholder per input array, same
# shape and dtype, fed in order; `symbols` maps each array to its placeholder (a gradient
# script differentiates with respect to them).
_KERAS2_FEEDS = [
    "# one placeholder per input array, same shape and dtype (static shapes)",
    "feeds, placeholders, symbols = [], [], {}", "",
    "def _placeholder(a):",
    "    feeds.append(a)",
    "    placeholders.append(K.placeholder(shape=a.shape, dtype=str(a.dtype)))",
    "    symbols[id(a)] = placeholders[-1]",
    "    return placeholders[-1]", "",
    "def _symbolic(v):",
    "    if isinstance(v, np.ndarray):",
    "        return _placeholder(v)",
    "    if isinstance(v, list):",
    "        return [_symbolic(x) for x in v]",
    "    return v", "",
]

# What a Keras 3 script defines before its call: arrays to tensors of their own dtype.
_KERAS3_TENSORS = [
    "def _tensor(v):  # explicit dtype, as the harness does",
    "    if isinstance(v, np.ndarray):",
    "        return keras.ops.convert_to_tensor(v, dtype=str(v.dtype))",
    "    if isinstance(v, list):",
    "        return [_tensor(x) for x in v]",
    "    return v", "",
]


def call_arguments(counterexample: dict) -> tuple[list, dict]:
    call = counterexample.get("call") or {}
    inputs = counterexample.get("inputs") or {}
    kwargs = dict(call.get("kwargs") or {})
    if isinstance(call.get("args"), list):
        names = call["args"]
    else:
        names = [name for name, value in inputs.items() if is_array(value) and name not in kwargs]
    return names, kwargs


def _flavor(target: dict, fn: str) -> str:
    flavor = target.get("flavor")
    if flavor:
        return flavor
    tid = str(target.get("id", ""))
    if tid.startswith("keras2") or fn.startswith("keras.backend."):
        return "keras2"
    return "keras3"


def backend_name(target: dict) -> str:
    backend = target.get("backend") or (target.get("info") or {}).get("backend")
    if backend:
        return str(backend)
    tid = str(target.get("id", ""))
    return tid.split("-", 1)[1] if "-" in tid else tid


def script(result: dict, target: dict, npz: Path | None = None,
           npz_shown: str | None = None) -> str:
    """The repro script for `result`'s counterexample on `target` (a target record)."""
    cx = result.get("counterexample") or {}
    call = cx.get("call") or {}
    fn = str(call.get("fn") or f"keras.ops.{result.get('op')}")
    flavor = _flavor(target, fn)
    backend = backend_name(target)
    floatx = str(result.get("floatx") or "float32")
    info = target.get("info") or {}
    arrays = _Arrays(npz, npz_shown)
    names, kwargs = call_arguments(cx)
    inputs = cx.get("inputs") or {}

    what = fn
    if call.get("wrt"):
        what = f"the gradient of {fn} with respect to {', '.join(map(str, call['wrt']))}"
    header = ["# Repro: " + _comment(f"{what} on {target.get('id', backend)} with floatx={floatx}"),
              "# Harness verdict: " + _comment(
                  f"{cx.get('verdict', result.get('status'))}: "
                  + " ".join(str(cx.get("message") or result.get("message") or "").split())[:300])]
    versions = ", ".join(f"{k} {info[k]}" for k in ("python", "keras", "backend_library",
                                                      "backend_version") if info.get(k))
    if versions:
        header.append(f"# Target: {_comment(versions)}")
    interpreter = target.get("python") or info.get("executable")
    if interpreter:
        header.append(f"# Run with the target's interpreter: {_comment(interpreter)} repro.py")
    body = []
    if flavor != "ops-module":
        body = ["import os", f"os.environ[\"KERAS_BACKEND\"] = {backend!r}"]
    if flavor == "keras2" and backend == "theano":
        # Theano fixes its floatX when Keras is imported: K.set_floatx afterwards would
        # leave it stale, so the floatx goes into a keras.json, as the harness starts it
        body += ["import json, tempfile",
                 "os.environ[\"KERAS_HOME\"] = tempfile.mkdtemp()",
                 "with open(os.path.join(os.environ[\"KERAS_HOME\"], \"keras.json\"), \"w\") as f:",
                 f"    json.dump({{\"floatx\": {floatx!r}, \"backend\": \"theano\"}}, f)"]
    body += ["import numpy as np"]

    definitions = []
    variables = {}
    for name, value in inputs.items():
        variable = _identifier(name)
        variables[name] = variable
        if is_array(value):
            definitions.append(f"{variable} = {arrays.expression(value, f'input_{name}')}")
        else:
            definitions.append(f"{variable} = {_static(value)}")
    references = [arrays.expression(r, f"reference_{i}")
                  for i, r in enumerate(cx.get("reference") or []) if is_array(r)]

    arg_vars = [positional_text(n, variables) for n in names]
    # gradient cases: the inputs differentiated and the cotangents, as variable names
    wrt = [variables.get(n, _identifier(n)) for n in call.get("wrt") or []]
    cotangents = [variables.get(n, _identifier(n)) for n in call.get("cotangents") or []]
    kw_text = "".join(f", {k}={_static(v)}" for k, v in kwargs.items())

    prelude = []
    if arrays.uses_b64:
        prelude += ["import base64", "import io", "",
                    "def _npy(*lines):",
                    "    return np.load(io.BytesIO(base64.b64decode(''.join(lines))))", ""]
    if arrays.uses_npz:
        shown = npz_shown or str(cx.get("arrays") or "counterexample.npz")
        where = ("next to the report" if npz is not None else
                 "in the results folder; it was not found when the report was rendered")
        prelude += [f"# full-precision arrays saved by the harness ({where})",
                    f"_arrays = np.load({shown!r})", ""]

    if flavor == "keras2":
        package = info.get("keras_package") or "keras"  # tf_keras for keras2-tf-keras
        call_lines = []
        if info.get("graph_mode"):  # tf_keras on TF 2: K.placeholder needs graph mode
            call_lines += ["import tensorflow as tf", "tf.compat.v1.disable_eager_execution()"]
        call_lines += [f"from {package} import backend as K" if _DOTTED_NAME.match(package)
                       else _import(f"{package}.backend", "K"), ""]
        if backend != "theano":
            call_lines.append(f"K.set_floatx({floatx!r})")
        if package != "keras" and fn.startswith("keras."):
            fn = package + fn[len("keras"):]
        prefix = f"{package}.backend."
        short = fn[len(prefix):] if fn.startswith(prefix) else None
        if info.get("epsilon") is not None:
            call_lines.append(f"K.set_epsilon({float(info['epsilon'])!r})")
        if short is None:
            module, _, attr = fn.rpartition(".")
            call_lines += ["import importlib", f"fn = getattr(importlib.import_module({module!r}), {attr!r})"]
            target_fn = "fn"
        else:
            target_fn = f"K.{short}"
        call_lines += [""] + prelude + definitions + [
            "reference = [" + ", ".join(references) + "]", ""]
        call_lines += _KERAS2_FEEDS + [
            f"result = {target_fn}(" + ", ".join(f"_symbolic({a})" for a in arg_vars) + kw_text + ")",
            "result = list(result) if isinstance(result, (list, tuple)) else [result]",
        ]
        if wrt:
            call_lines += repro_gradients.keras2(wrt, cotangents)
        else:
            call_lines.append(
                "outputs = [np.asarray(o) for o in K.function(placeholders, result)(feeds)]")
    elif flavor == "ops-module":
        module = backend
        name = fn.rsplit(".", 1)[-1]
        call_lines = [_import(module, "plugin"), ""] + prelude + definitions + [
            "reference = [" + ", ".join(references) + "]", ""]
        if wrt:
            kwargs_text = "{" + ", ".join(f"{k!r}: {_static(v)}" for k, v in kwargs.items()) + "}"
            call_lines += repro_gradients.ops_module(
                name, arg_vars, kwargs_text, [arg_vars.index(w) for w in wrt if w in arg_vars],
                cotangents)
        else:
            call_lines += [
                f"result = plugin.{name}(" + ", ".join(arg_vars) + kw_text + ")",
                "result = list(result) if isinstance(result, (list, tuple)) else [result]",
                "outputs = [np.asarray(o) for o in result]",
            ]
    else:
        call_lines = ["import keras", "", f"keras.config.set_floatx({floatx!r})"]
        if info.get("epsilon") is not None:
            call_lines.append(f"keras.config.set_epsilon({float(info['epsilon'])!r})")
        fn_expr = fn if fn.startswith("keras.") else None
        if fn_expr is None:
            module, _, attr = fn.rpartition(".")
            call_lines += ["import importlib",
                           f"fn = getattr(importlib.import_module({module!r}), {attr!r})"]
            fn_expr = "fn"
        call_lines += [""] + prelude + definitions + [
            "reference = [" + ", ".join(references) + "]", ""]
        call_lines += _KERAS3_TENSORS
        if wrt:
            call_lines += repro_gradients.keras3(backend, fn_expr, arg_vars, kw_text, wrt,
                                                 cotangents)
        else:
            call_lines += [
                f"result = {fn_expr}(" + ", ".join(f"_tensor({a})" for a in arg_vars) + kw_text + ")",
                "result = list(result) if isinstance(result, (list, tuple)) else [result]",
                "outputs = [np.asarray(keras.ops.convert_to_numpy(o)) for o in result]",
            ]
    report = [
        "",
        "for i, out in enumerate(outputs):",
        "    print('output %d: dtype %s, shape %s' % (i, out.dtype, out.shape))",
        "    print(out)",
        "    if i < len(reference):",
        "        ref = reference[i]",
        "        print('reference (float64): dtype %s, shape %s' % (ref.dtype, ref.shape))",
        "        print(ref)",
        "        if out.shape == ref.shape and out.size:",
        "            diff = np.abs(out.astype('float64') - ref.astype('float64'))",
        "            worst = int(np.nanargmax(np.where(np.isnan(diff), -1.0, diff)))",
        "            print('max |out - ref| = %r at flat index %d' % (float(diff.flat[worst]), worst))",
    ]
    lines = header + [""] + body + call_lines + report
    return "\n".join(lines) + "\n"
