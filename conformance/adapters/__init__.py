"""Adapters: one per flavor, each turning a ``call`` request into backend calls.

Runs inside target interpreters (Python 3.6 safe, stdlib + numpy only). Every adapter
exposes the same two methods, ``info()`` and ``call(fn, args, kwargs)``, the way Keras
3 gives every backend the same module names.
"""
import importlib
import io
import platform
import sys

import numpy as np


class Unsupported(Exception):
    """The target has no such function (a coverage gap, not a failure)."""


def resolve(dotted):
    """Import the longest importable prefix of `dotted`, then getattr the rest."""
    parts = dotted.split(".")
    for cut in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:cut]))
        except ImportError:
            continue
        for name in parts[cut:]:
            if not hasattr(obj, name):
                raise Unsupported("%s has no attribute %r" % (".".join(parts[:cut]), name))
            obj = getattr(obj, name)
        return obj
    raise Unsupported("cannot import %s" % dotted)


class _Tee(io.TextIOBase):
    """A stderr stand-in that records what is written and passes it on."""

    def __init__(self, stream):
        self.stream = stream
        self.captured = []

    def write(self, text):
        self.captured.append(text)
        return self.stream.write(text)

    def flush(self):
        self.stream.flush()


def import_capturing_stderr(name):
    """Import a module and return (module, the text it wrote to stderr meanwhile)."""
    tee = _Tee(sys.stderr)
    sys.stderr = tee
    try:
        module = importlib.import_module(name)
    finally:
        sys.stderr = tee.stream
    return module, "".join(tee.captured)


def using_line(text):
    """The 'Using ... backend' line Keras 2 prints, or None."""
    for line in text.splitlines():
        if line.startswith("Using ") and "backend" in line:
            return line.strip()
    return None


def module_version(name):
    try:
        return getattr(importlib.import_module(name), "__version__", "unknown")
    except Exception as exc:  # a broken optional library is information, not a crash
        return "unavailable (%s)" % type(exc).__name__


def base_info():
    return {"python": platform.python_version(), "numpy": np.__version__,
            "executable": sys.executable}


def map_structure(fn, value):
    """Apply fn to every ndarray leaf of nested lists / dicts."""
    if isinstance(value, np.ndarray):
        return fn(value)
    if isinstance(value, dict):
        return dict((k, map_structure(fn, value[k])) for k in sorted(value))
    if isinstance(value, (list, tuple)):
        return [map_structure(fn, v) for v in value]
    return value


def flatten(value):
    """Flatten a nested tuple/list of results into a list of leaves."""
    if isinstance(value, (list, tuple)):
        leaves = []
        for item in value:
            leaves.extend(flatten(item))
        return leaves
    return [value]


def leaf_arrays(value):
    """Every ndarray leaf of nested args, in order (the order placeholders take)."""
    if isinstance(value, np.ndarray):
        return [value]
    if isinstance(value, dict):
        value = [value[k] for k in sorted(value)]
    if isinstance(value, (list, tuple)):
        leaves = []
        for item in value:
            leaves.extend(leaf_arrays(item))
        return leaves
    return []


def with_leaves(value, leaves):
    """`value` with its ndarray leaves replaced, in `leaf_arrays` order, by `leaves`."""
    remaining = iter(leaves)
    return map_structure(lambda _: next(remaining), value)


def as_tuples(value):
    """JSON turns tuples into lists; static sequence arguments (axis=(0, 1), shapes)
    go back to tuples, the form Keras documents and every backend accepts."""
    if isinstance(value, dict):
        return dict((k, as_tuples(v)) for k, v in value.items())
    if isinstance(value, list):
        return tuple(as_tuples(v) for v in value)
    return value
