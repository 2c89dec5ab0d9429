"""Import and surface checks for `conformance validate`, run inside the target interpreter.

    python -m conformance.surface --mode load|inspect --module NAME [--keras2-surface]

- ``load``: ``import keras`` exactly as a user would, with ``KERAS_BACKEND=NAME`` set
  by the parent, so Keras 2's own loader imports the plugin (and raises its own
  errors, e.g. ``Invalid backend. Missing required entry : function``).
- ``inspect``: import the plugin module by itself and list its attributes; with
  ``--keras2-surface`` also read, from the installed Keras sources (without importing
  Keras), every name ``keras/backend/__init__.py`` takes from the backend.

Python 3.6 + numpy 1.18 safe (stdlib + numpy only), like the worker. The conversation
is two frames: a hello as soon as the interpreter is up (with Keras's expectations
when asked), then one ``check`` request whose reply is the report. Whatever the plugin prints, at the Python or the C level,
goes to a capture file and comes back in the report (never into the protocol);
``faulthandler`` puts the Python stack of a segfault, or of a hang (the parent sends
SIGUSR1 before killing), into the worker's log.
"""
import argparse
import ast
import faulthandler
import importlib
import io
import os
import signal
import sys
import tempfile
import time
import traceback

from conformance import protocol
from conformance.worker import die_with_parent

STDOUT_KEEP = 2000  # characters of a plugin's stdout kept in the report


# -- Keras 2's backend surface, read from its sources ------------------------------------
def _string(node):
    """The text of a string literal node (ast.Str before 3.8, ast.Constant after)."""
    if type(node).__name__ == "Str":
        return node.s
    if type(node).__name__ == "Constant":
        value = getattr(node, "value", None)
        return value if isinstance(value, str) else None
    return None


def _imports_from(statements, module):
    """Names of `from .<module> import ...` statements, in order."""
    names = []
    for node in statements:
        if isinstance(node, ast.ImportFrom) and node.level == 1 and node.module == module:
            names.extend(alias.asname or alias.name for alias in node.names)
    return names


def _condition(node, source):
    """The text of an `if`/`elif` test (ast.get_source_segment is 3.8+)."""
    line = source.splitlines()[node.test.lineno - 1].strip()
    for keyword in ("elif ", "if "):
        if line.startswith(keyword):
            line = line[len(keyword):]
    return line.rstrip(":").strip()


def keras2_surface(keras_dir):
    """What Keras 2 expects from an external backend, read from keras/backend/*.py.

    Returns a dict: ``required`` (the loader's required entries), ``message`` (the
    text of its error, before the name), ``names`` (every name keras/backend/__init__.py
    imports unconditionally, in order), ``provided`` (names the loader defines itself
    and so never takes from the plugin), ``expected`` (``names`` minus ``provided``:
    what the plugin must define), ``conditional`` ({condition: names} imported only
    for some built-in backends), and the files read.
    """
    backend_dir = os.path.join(keras_dir, "backend")
    init_path = os.path.join(backend_dir, "__init__.py")
    loader_path = os.path.join(backend_dir, "load_backend.py")
    with io.open(init_path, encoding="utf-8") as handle:
        init_source = handle.read()
    with io.open(loader_path, encoding="utf-8") as handle:
        loader_source = handle.read()
    init_tree = ast.parse(init_source)
    loader_tree = ast.parse(loader_source)

    names = _imports_from(init_tree.body, "load_backend")
    conditional = {}
    for node in init_tree.body:
        if isinstance(node, ast.If):
            branch = node
            while branch is not None:
                found = _imports_from(branch.body, "load_backend")
                if found:
                    conditional[_condition(branch, init_source)] = found
                orelse = branch.orelse
                branch = orelse[0] if len(orelse) == 1 and isinstance(orelse[0], ast.If) else None

    # The loader's own top-level names (from .common import ..., def backend(), ...):
    # `namespace[k] = v` only copies a plugin entry when `k not in namespace`.
    provided = []
    for node in loader_tree.body:
        if isinstance(node, ast.ImportFrom):
            provided.extend(alias.asname or alias.name for alias in node.names)
        elif isinstance(node, (ast.FunctionDef, ast.ClassDef)):
            provided.append(node.name)

    required, message = [], None
    for node in ast.walk(loader_tree):
        if isinstance(node, ast.Assign) and isinstance(node.value, (ast.List, ast.Tuple)):
            targets = [t.id for t in node.targets if isinstance(t, ast.Name)]
            if "required_entries" in targets:
                required = [_string(e) for e in node.value.elts if _string(e)]
        text = _string(node) if isinstance(node, ast.expr) else None
        if text and "Missing required entry" in text:
            message = text
    provided_set = set(provided)
    return {
        "required": required,
        "message": message or "Invalid backend. Missing required entry : ",
        "names": names,
        "provided": [n for n in names if n in provided_set],
        "expected": [n for n in names if n not in provided_set],
        "conditional": conditional,
        "files": [init_path, loader_path],
    }


def find_keras_dir():
    """The installed keras package folder, found without importing keras."""
    import importlib.util
    spec = importlib.util.find_spec("keras")
    if spec is None or not spec.submodule_search_locations:
        return None
    return list(spec.submodule_search_locations)[0]


# -- running plugin code safely -----------------------------------------------------
class _StderrTee(io.TextIOBase):
    def __init__(self, stream):
        self.stream = stream
        self.parts = []

    def write(self, text):
        self.parts.append(text)
        return self.stream.write(text)

    def flush(self):
        self.stream.flush()


def _frame(entry):
    return {"file": entry[0], "line": entry[1], "function": entry[2], "code": entry[3]}


def describe_exception(exc):
    """A JSON-able account of an exception: type, message, cause, innermost frames."""
    frames = traceback.extract_tb(exc.__traceback__)
    own = [f for f in frames if "importlib._bootstrap" not in f[0]
           and not f[0].endswith(os.path.join("conformance", "surface.py"))]
    record = {
        "error_type": type(exc).__name__,
        "message": str(exc)[:2000],
        "frames": [_frame(f) for f in own[-8:]],
        "traceback": "".join(traceback.format_exception(type(exc), exc,
                                                        exc.__traceback__))[-6000:],
    }
    if isinstance(exc, SystemExit):
        record["exit_code"] = exc.code if isinstance(exc.code, (int, type(None))) else str(exc.code)
    cause = exc.__cause__ or exc.__context__
    if cause is not None and cause is not exc:
        record["cause"] = {"error_type": type(cause).__name__, "message": str(cause)[:2000],
                           "frames": [_frame(f) for f in
                                      traceback.extract_tb(cause.__traceback__)[-4:]]}
    return record


def attributes(module):
    """Every entry of the module's __dict__ (what Keras 2 copies), and the callable ones."""
    entries = vars(module)
    names = sorted(entries)
    return {
        "names": names,
        "callable": [n for n in names if callable(entries[n])],
        "own": [n for n in names
                if getattr(entries[n], "__module__", None) == module.__name__],
        "file": getattr(module, "__file__", None),
        "version": str(getattr(module, "__version__", "")) or None,
    }


def check(mode, module_name):
    report = {"mode": mode, "module": module_name, "python": sys.version.split()[0],
              "executable": sys.executable}
    tee = _StderrTee(sys.stderr)
    started = time.time()
    sys.stderr = tee
    try:
        if mode == "load":
            keras = importlib.import_module("keras")
            report["keras"] = getattr(keras, "__version__", None)
            report["backend"] = keras.backend.backend()
        else:
            importlib.import_module(module_name)
        report["imported"] = True
    except BaseException as exc:  # SystemExit and KeyboardInterrupt from a plugin too
        report["imported"] = False
        report["error"] = describe_exception(exc)
    finally:
        sys.stderr = tee.stream
        report["import_s"] = round(time.time() - started, 3)
    report["stderr"] = "".join(tee.parts)[-STDOUT_KEEP:]
    if mode == "load":
        try:
            report["keras_dir"] = find_keras_dir()
        except Exception:
            pass
    plugin = sys.modules.get(module_name)
    report["plugin_in_sys_modules"] = plugin is not None
    if plugin is not None:  # in sys.modules: its own code ran to the end
        try:
            report["attributes"] = attributes(plugin)
        except Exception as exc:  # a module whose __dict__ misbehaves
            report["attributes_error"] = describe_exception(exc)
    return report


def expected_keras2_surface():
    """{"keras2_surface": ...} or {"surface_error": why not}, without importing keras."""
    try:
        keras_dir = find_keras_dir()
        if keras_dir is None:
            return {"surface_error": "keras is not installed in %s" % sys.executable}
        return {"keras2_surface": keras2_surface(keras_dir)}
    except Exception as exc:
        return {"surface_error": "cannot read the Keras sources: %s: %s" % (
            type(exc).__name__, exc)}


def _claim_stdio(capture_path):
    """Private copies of stdin/stdout for frames; fd 1 goes to the capture file."""
    proto_in = os.dup(0)
    proto_out = os.dup(1)
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    os.close(devnull)
    capture = os.open(capture_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.dup2(capture, 1)
    os.close(capture)
    sys.stdout = io.open(1, "w", buffering=1, closefd=False, encoding="utf-8",
                         errors="replace")
    return proto_in, proto_out


def _read_capture(capture_path):
    try:
        sys.stdout.flush()
    except Exception:
        pass
    try:
        with io.open(capture_path, "rb") as handle:
            data = handle.read()
    except OSError:
        return 0, ""
    return len(data), data[:STDOUT_KEEP].decode("utf-8", "replace")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--mode", choices=("load", "inspect"), required=True)
    parser.add_argument("--module", required=True)
    parser.add_argument("--keras2-surface", action="store_true")
    options = parser.parse_args(argv)
    die_with_parent()  # a plugin that hangs on import must not outlive the harness

    faulthandler.enable(file=sys.stderr, all_threads=True)
    if hasattr(signal, "SIGUSR1"):  # the parent asks for the stack of a hang
        faulthandler.register(signal.SIGUSR1, file=sys.stderr, all_threads=True)
    handle, capture_path = tempfile.mkstemp(prefix="plugin-stdout-", suffix=".txt",
                                            dir=os.getcwd())
    os.close(handle)
    proto_in, proto_out = _claim_stdio(capture_path)
    # Keras's expectations are read before any plugin code runs, so they come back
    # even when the plugin then crashes or hangs.
    hello = {"status": "ok", "hello": os.getpid(), "python": sys.version.split()[0]}
    if options.keras2_surface:
        hello.update(expected_keras2_surface())
    protocol.write_frame(proto_out, hello)
    request = protocol.FrameReader(proto_in).read()
    if request.get("cmd") != "check":
        protocol.write_frame(proto_out, {"status": "error", "message": "expected check"})
        return
    report = check(options.mode, options.module)
    report["stdout_bytes"], report["stdout"] = _read_capture(capture_path)
    report["status"] = "ok"
    protocol.write_frame(proto_out, report)
    try:
        os.remove(capture_path)
    except OSError:
        pass
    sys.stderr.flush()
    # Skip interpreter teardown: a plugin's atexit hooks or threads must not turn a
    # finished check into a hang or a crash.
    os._exit(0)


if __name__ == "__main__":
    main()
