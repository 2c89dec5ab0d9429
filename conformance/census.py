"""The public functions of installed Keras APIs, listed inside a target interpreter.

    python -m conformance.census [--module NAME]... [--tree NAME]...

``--module`` lists the public callables of one module; ``--tree`` those of a module and
of its public submodules (``keras.ops`` with ``keras.ops.nn``, ``keras.ops.numpy``...).
Each callable appears once, by identity, with every public path that reaches it
(``keras.ops.exp`` is also ``keras.ops.numpy.exp``), what it is (``function``,
``class``, ``builtin``, ``other``), its own name and the module that defines it. Deciding what
counts as an op is `conformance.coverage`'s work, in the parent.

Prints one JSON object on stdout. Anything Keras or its backend prints goes to stderr,
so it cannot corrupt that JSON. A module that fails to import is reported in the JSON
(``error``), and the others are still listed. Python 3.6 safe (stdlib only), like the
worker: it runs in every target environment.
"""
import argparse
import importlib
import inspect
import json
import os
import sys
import traceback
import types


def kind_of(value):
    if inspect.isclass(value):
        return "class"
    if inspect.isfunction(value):
        return "function"
    if inspect.isbuiltin(value):
        return "builtin"
    return "other"


def public_names(module):
    return sorted(name for name in dir(module) if not name.startswith("_"))


def submodules(module):
    """Public submodules of `module` that belong to it (keras.ops.nn for keras.ops),
    not the libraries it happens to import (numpy, tensorflow)."""
    found = []
    for name in public_names(module):
        value = getattr(module, name, None)
        if isinstance(value, types.ModuleType) and \
                value.__name__.startswith(module.__name__ + "."):
            found.append((name, value))
    return found


def walk(path, module, tree, seen):
    """(path, module) for `module` and, with `tree`, its submodules, depth first."""
    if id(module) in seen:
        return []
    seen.add(id(module))
    found = [(path, module)]
    if tree:
        for name, child in submodules(module):
            found.extend(walk(path + "." + name, child, tree, seen))
    return found


def list_callables(root, tree):
    """The callables reachable from module `root`, each once: a list of dicts with
    ``paths`` (in walk order: the module's own names first), ``kind``, ``name`` (its
    ``__name__``) and ``defined_in`` (its ``__module__``)."""
    module = importlib.import_module(root)
    entries, by_identity = [], {}
    for path, current in walk(root, module, tree, set()):
        for name in public_names(current):
            value = getattr(current, name, None)
            if value is None or isinstance(value, types.ModuleType) or not callable(value):
                continue
            entry = by_identity.get(id(value))
            if entry is None:
                entry = {"paths": [], "kind": kind_of(value),
                         "name": str(getattr(value, "__name__", "") or ""),
                         "defined_in": str(getattr(value, "__module__", "") or "")}
                by_identity[id(value)] = entry
                entries.append(entry)
            entry["paths"].append(path + "." + name)
    return entries


def keras_facts():
    """Version and backend of the Keras these lists come from."""
    import keras
    backend = getattr(keras, "backend", None)
    return {"keras": str(getattr(keras, "__version__", "unknown")),
            "backend": backend.backend() if hasattr(backend, "backend") else None}


def describe_error(exc):
    return {"error": "%s: %s" % (type(exc).__name__, exc),
            "traceback": "".join(traceback.format_exception(
                type(exc), exc, exc.__traceback__))[-4000:]}


def census(modules, trees):
    report = {"python": sys.version.split()[0], "executable": sys.executable,
              "modules": {}}
    try:
        report.update(keras_facts())
    except Exception as exc:  # the modules below say what failed, each on its own
        report["keras_error"] = describe_error(exc)["error"]
    for root, tree in [(m, False) for m in modules] + [(t, True) for t in trees]:
        try:
            report["modules"][root] = {"tree": tree, "callables": list_callables(root, tree)}
        except Exception as exc:
            report["modules"][root] = dict(describe_error(exc), tree=tree)
    return report


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--module", action="append", default=[],
                        help="a module whose own public callables to list")
    parser.add_argument("--tree", action="append", default=[],
                        help="a module whose public callables, and its public "
                        "submodules', to list")
    options = parser.parse_args(argv)
    # The JSON goes to the original stdout; everything printed meanwhile goes to stderr.
    out = os.fdopen(os.dup(1), "w")
    os.dup2(2, 1)
    report = census(options.module, options.tree)
    sys.stdout.flush()
    out.write(json.dumps(report, sort_keys=True))
    out.write("\n")
    out.flush()


if __name__ == "__main__":
    main()
