"""The worker: the only harness code that runs inside a target interpreter.

    python -m conformance.worker --flavor keras3|keras2|ops-module [--module NAME]

Python 3.6 + numpy 1.18 safe (stdlib + numpy only). It serves requests read from
stdin and answers on the original stdout; everything that backends print (``Using
TensorFlow backend.``, warnings, even a plugin's ``print``) is redirected to stderr,
so it can never corrupt the protocol.

Requests (``cmd``): ``ping``, ``info``, ``call`` (``fn``, ``args``, ``kwargs``,
``params``: indices of array leaves that are model parameters), ``vjp`` (a ``call``
plus ``wrt``, indices of the array leaves to differentiate with respect to, and
``cotangents``, one array per output: answered with the vector-Jacobian product, one
output per ``wrt`` leaf; ``unsupported`` on targets that do not differentiate),
``config`` (optional ``sections``: see ``conformance.adapters.configprobe``),
``floatx`` (switch floatx at runtime, answered with ``info``; ``unsupported`` when
the adapter cannot, and the pool then restarts the worker instead), ``exit``.
Replies always carry ``status``: ``ok``, ``unsupported`` or ``error``.

The worker ends when the harness does, however the harness ends (`die_with_parent`).
"""
import argparse
import os
import signal
import sys
import threading
import time
import traceback

from conformance import protocol

# Set by the pool in the worker's environment: the harness's pid. Not os.getppid() at
# start-up, which is init's already when the harness died while the worker started.
PARENT_ENV = "CONFORMANCE_PARENT_PID"
PARENT_CHECK_S = 0.5  # how often the watch thread looks for its parent (see die_with_parent)
PR_SET_PDEATHSIG = 1  # <linux/prctl.h>


def die_with_parent():
    """End this process when the harness ends, however it ends (Ctrl-C, SIGTERM,
    SIGKILL, a crash), even while a plugin call never returns.

    On Linux the kernel kills the worker when its parent dies (PR_SET_PDEATHSIG),
    whatever the worker is doing, a C call holding the GIL included. Its catch: it fires
    when the *thread* that started the worker ends, so the pool starts workers only from
    threads that outlive them (its lanes and threads, which Pool.close ends after
    stopping the workers). Where prctl is missing or fails, a daemon thread watches the
    parent and, once the worker is orphaned, kills the worker's process group: that
    needs the GIL, which a plugin stuck in Python code (a sleep, a loop) still lets it
    have, and C code holding the GIL does not. The kernel's signal ends the worker only,
    not the processes a plugin started (it is not inherited): a harness killed outright
    leaves those, where an orderly stop kills the whole group.
    """
    parent = int(os.environ.get(PARENT_ENV) or os.getppid())
    if kill_on_parent_death():
        if os.getppid() != parent:  # gone before the kernel was told: no signal will come
            _end_group()
        return
    watch = threading.Thread(target=watch_parent, args=(parent,), name="parent-watch")
    watch.daemon = True
    watch.start()


def kill_on_parent_death():
    """Linux: have the kernel send SIGKILL to this process when its parent ends (True
    when that is set up)."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        import ctypes
        libc = ctypes.CDLL(None, use_errno=True)
        return libc.prctl(PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False


def watch_parent(parent, interval=PARENT_CHECK_S):
    """Return never while `parent` is this process's parent; once it is not (the
    harness died, the process was reparented), kill this process and its group."""
    while os.getppid() == parent:
        time.sleep(interval)
    _end_group()


def _end_group():
    if os.getpgid(0) == os.getpid():  # leader of its own group (the pool's workers are)
        os.killpg(0, signal.SIGKILL)
    os.kill(os.getpid(), signal.SIGKILL)  # a group shared with others: this process only


def _claim_stdio():
    """Keep private copies of stdin/stdout for frames; point fd 0/1 elsewhere."""
    proto_in = os.dup(0)
    proto_out = os.dup(1)
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    os.close(devnull)
    os.dup2(2, 1)  # C-level prints from backends land on stderr
    sys.stdout = sys.stderr
    return proto_in, proto_out


def load_adapter(flavor, module):
    if flavor == "keras3":
        from conformance.adapters import keras3 as adapter_module
    elif flavor == "keras2":
        from conformance.adapters import keras2 as adapter_module
    elif flavor == "ops-module":
        from conformance.adapters import opsmodule as adapter_module
    else:
        raise ValueError("unknown flavor %r" % flavor)
    return adapter_module.Adapter(module)


def _error_reply(exc):
    lines = traceback.format_exception(type(exc), exc, exc.__traceback__)
    return {
        "status": "error",
        "error_type": type(exc).__name__,
        "message": str(exc)[:2000],
        "traceback": "".join(lines)[-4000:],
    }


def _uncomparable(outputs):
    """Why an op's outputs cannot be compared with numbers (None when they can): a
    plugin may return None, strings or Python objects where arrays are expected."""
    for index, output in enumerate(outputs):
        if output.dtype.kind not in "biufc" or output.dtype.names is not None:
            if output.dtype.kind == "O" and output.shape == () and output.item() is None:
                what = "None"
            else:
                what = "an array of dtype %s" % output.dtype
            return ("output %d is %s: only numeric and bool arrays can be compared"
                    % (index, what))
    return None


def _reply_frame(reply):
    """The reply, packed; one that cannot cross the pipe (a value the checks above did
    not foresee) becomes an error reply, so the worker lives on."""
    try:
        return protocol.pack(reply)
    except (TypeError, ValueError) as exc:
        return protocol.pack({"status": "error", "error_type": "UncomparableOutput",
                              "message": "the reply cannot be sent: %s" % exc})


def handle(adapter, request):
    cmd = request.get("cmd")
    if cmd == "ping":
        return {"status": "ok", "echo": request.get("payload")}
    if cmd == "info":
        return dict(adapter.info(), status="ok")
    if cmd == "floatx":
        try:
            adapter.set_floatx(request["floatx"])
        except (adapter.Unsupported, AttributeError) as exc:
            return {"status": "unsupported", "message": str(exc)[:2000]}
        return dict(adapter.info(), status="ok")
    if cmd == "config":
        from conformance.adapters import configprobe
        return dict(configprobe.probe(adapter, request), status="ok")
    if cmd in ("call", "vjp"):
        started, cpu_started = time.perf_counter(), time.process_time()
        try:
            outputs, compile_s = _evaluate(adapter, request)
        except adapter.Unsupported as exc:
            return {"status": "unsupported", "message": str(exc)[:2000]}
        except NotImplementedError as exc:
            return {"status": "unsupported", "message": "NotImplementedError: %s" % exc}
        elapsed = time.perf_counter() - started
        problem = _uncomparable(outputs)
        if problem:
            return {"status": "error", "error_type": "UncomparableOutput", "message": problem}
        # CPU seconds of the whole worker process (a backend's own threads included):
        # on a busy machine, backend_s also counts waiting for a core
        return {"status": "ok", "outputs": outputs, "backend_s": elapsed,
                "backend_cpu_s": time.process_time() - cpu_started, "compile_s": compile_s}
    return {"status": "error", "error_type": "ProtocolError",
            "message": "unknown command %r" % cmd}


def _evaluate(adapter, request):
    """(outputs, compile seconds) of a ``call`` or ``vjp`` request."""
    arguments = (request["fn"], request.get("args", []), request.get("kwargs", {}),
                 request.get("params", []))
    if request["cmd"] == "call":
        return adapter.call(*arguments)
    vjp = getattr(adapter, "vjp", None)
    if vjp is None:
        raise adapter.Unsupported("this flavor does not differentiate")
    return vjp(*(arguments + (request["wrt"], request["cotangents"])))


def serve(adapter, proto_in, proto_out):
    protocol.write_frame(proto_out, {"status": "ok", "hello": os.getpid(),
                                     "python": sys.version.split()[0]})
    reader = protocol.FrameReader(proto_in)
    while True:
        try:
            request = reader.read()
        except EOFError:
            return
        if request.get("cmd") == "exit":
            protocol.write_frame(proto_out, {"status": "ok"})
            return
        try:
            reply = handle(adapter, request)
        except BaseException as exc:  # SystemExit from a plugin is a result too
            reply = _error_reply(exc)
        protocol.write_all(proto_out, _reply_frame(reply))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--flavor", required=True)
    parser.add_argument("--module", default=None,
                        help="backend module for ops-module plugins")
    options = parser.parse_args(argv)
    die_with_parent()
    proto_in, proto_out = _claim_stdio()
    serve(load_adapter(options.flavor, options.module), proto_in, proto_out)


if __name__ == "__main__":
    main()
