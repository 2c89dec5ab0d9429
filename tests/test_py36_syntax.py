"""Every module the worker imports inside a target interpreter compiles on Python 3.6
(the keras2 environment runs the worker there)."""
import ast
from pathlib import Path

import conformance
import conftest
from conftest import python36_syntax_errors

PACKAGE = Path(conformance.__file__).parent
ROOT = PACKAGE.parent


def _module_file(dotted: str):
    """The file of module `dotted` in this checkout, or None (not ours, or a name)."""
    base = ROOT.joinpath(*dotted.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def _imported_modules(path: Path):
    """Dotted names of the `conformance` modules `path` may import, at any depth of the
    file (the worker imports adapters inside functions)."""
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            yield node.module
            # `from conformance import protocol`: the name may be a module
            yield from (f"{node.module}.{alias.name}" for alias in node.names)


def worker_side_files():
    """worker.py and everything it imports from the package, transitively, with the
    `__init__` of each package on the way; plus every adapter (the worker picks one per
    flavor by name) and the other modules that run in target interpreters."""
    extra = sorted((PACKAGE / "adapters").glob("*.py"))
    # also run in target interpreters: the Keras facts both sides share, validate's
    # import checks (surface) and the API listing of `conformance ops --coverage`
    extra += [PACKAGE / name for name in ("kerasfacts.py", "surface.py", "census.py")
              if (PACKAGE / name).is_file()]
    todo, seen = [PACKAGE / "worker.py", *extra], set()
    while todo:
        path = todo.pop()
        if path in seen:
            continue
        seen.add(path)
        dotted = [n for n in _imported_modules(path) if n.split(".")[0] == "conformance"]
        for name in dotted:
            parts = name.split(".")
            for depth in range(1, len(parts) + 1):  # conformance/__init__.py on the way
                found = _module_file(".".join(parts[:depth]))
                if found:
                    todo.append(found)
    return sorted(seen)


def test_the_worker_side_is_discovered():
    found = {str(p.relative_to(PACKAGE)) for p in worker_side_files()}
    # the worker's own imports, followed from worker.py
    assert {"worker.py", "protocol.py", "__init__.py", "adapters/__init__.py",
            "adapters/keras2.py", "adapters/keras3.py", "adapters/opsmodule.py",
            "adapters/configprobe.py"} <= found
    # nothing of the parent side (these need Python 3.8+ and packages beyond numpy)
    assert not found & {"pool.py", "engine.py", "cli.py", "compare.py", "envs.py"}, found


def test_worker_side_modules_compile_on_python36():
    files = worker_side_files()
    sources = {str(p.relative_to(ROOT)): p.read_text(encoding="utf-8") for p in files}
    assert python36_syntax_errors(sources) == {}


NEWER_SYNTAX = {
    "walrus.py": "if (n := 3):\n    pass\n",
    "positional.py": "def f(a, /):\n    return a\n",
    "future.py": "from __future__ import annotations\n",
    "fine.py": "x = f'{1}'\n",  # f-strings are 3.6
}


def test_the_check_catches_newer_syntax():
    """The check itself can fail: syntax from Python 3.7 and 3.8 is refused."""
    errors = python36_syntax_errors(NEWER_SYNTAX)
    # only the 3.6 compiler knows which __future__ features it lacks
    refused = {"walrus.py", "positional.py"} | ({"future.py"} if conftest.python36() else set())
    assert set(errors) == refused, errors


def test_without_python36_the_check_falls_back_to_ast(monkeypatch):
    monkeypatch.setattr(conftest, "python36", lambda: None)
    monkeypatch.delenv(conftest.REQUIRE_ENVS, raising=False)
    assert set(python36_syntax_errors(NEWER_SYNTAX)) == {"walrus.py", "positional.py"}
