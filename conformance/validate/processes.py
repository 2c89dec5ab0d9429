"""Steps 1 and 2 of `conformance validate` in isolated interpreters: ``conformance.surface``
imports the plugin in a pool `Worker`'s environment (KERAS_HOME, PYTHONPATH, shims), and
whatever the plugin does to that process (raise, exit, segfault, hang) comes back as a
report for `checks`."""
from __future__ import annotations

import linecache
import os
import re
import signal
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor, wait
from dataclasses import replace
from pathlib import Path

from conformance import catalog, protocol
from conformance.pool import StartupError, Worker, WorkerDied, WorkerTimeout, describe_exit
from conformance.targets import Target
from conformance.validate import checks

IMPORT_TIMEOUT_S = 60.0  # a plugin that takes longer to import is reported as hanging
STARTING = "starting the interpreter"
EXIT_WAIT_S = 10.0  # after its report the check exits by itself, removing its capture file


class CheckWorker(Worker):
    """A Worker that runs ``conformance.surface`` once instead of serving calls."""

    def __init__(self, target: Target, python: str, workdir: Path, mode: str,
                 keras2_surface: bool = False):
        super().__init__(target, python, "float32", workdir)
        self.mode = mode
        self.keras2_surface = keras2_surface
        self.log_path = self.workdir / f"{target.id}-{mode}.log"

    def command(self) -> list[str]:
        command = [self.python, "-m", "conformance.surface", "--mode", self.mode,
                   "--module", self.target.backend]
        return command + (["--keras2-surface"] if self.keras2_surface else [])

    def run_check(self, timeout: float) -> dict:
        """The surface report, or {"status": crash|exit|timeout|broken, ...}."""
        deadline = time.monotonic() + timeout
        stage, hello, report = STARTING, {}, {}
        try:
            hello = self.spawn(timeout)  # the interpreter and numpy are up
            stage = checks.IMPORTING
            report = self.request({"cmd": "check"}, deadline - time.monotonic())
            self.proc.wait(timeout=EXIT_WAIT_S)
        except StartupError as exc:
            return {"status": "broken", "message": str(exc)}
        except WorkerTimeout:
            report = self._timed_out(timeout, stage)
        except (WorkerDied, protocol.ProtocolError):
            report = self._died(stage)
        except subprocess.TimeoutExpired:  # answered, then stuck on the way out
            pass
        finally:
            self.kill()
        hello = {k: v for k, v in hello.items() if k not in ("status", "hello")}
        return {**hello, **report}

    def _timed_out(self, timeout: float, stage: str) -> dict:
        if self.proc.poll() is None and hasattr(signal, "SIGUSR1"):
            try:
                self.proc.send_signal(signal.SIGUSR1)  # faulthandler dumps the stacks
                time.sleep(0.5)
            except ProcessLookupError:
                pass
        self.kill()
        return {"status": "timeout", "stage": stage,
                "message": f"no answer within {timeout:g} s while {stage}",
                "where": stack_from_log(self.log_text()), "log_tail": self.log_tail()}

    def _died(self, stage: str) -> dict:
        try:
            code = self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.kill()
            code = self.proc.poll()
        status = "crash" if code is not None and code < 0 else "exit"
        return {"status": status, "stage": stage,
                "message": f"{describe_exit(code)} while {stage}",
                "returncode": code, "where": stack_from_log(self.log_text()),
                "log_tail": self.log_tail()}

    def log_text(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""


def stack_from_log(text: str) -> list[dict]:
    """Frames (outermost first, like a traceback) of the last faulthandler dump in a log."""
    marker = text.rfind("(most recent call first):")
    if marker < 0:
        return []
    frames = []
    for line in text[marker:].splitlines()[1:]:
        match = re.match(r'\s*File "(.*)", line (\d+) in (.*)', line)
        if not match:
            if frames:
                break
            continue
        path, number = match[1], int(match[2])
        if _harness_frame(path):
            continue
        frames.append({"file": path, "line": number, "function": match[3].strip(),
                       "code": linecache.getline(path, number).strip()})
    return frames[::-1]


def _harness_frame(path: str) -> bool:
    """The import machinery and the check itself: never where the plugin went wrong."""
    return (path.startswith("<frozen importlib")
            or path.endswith(os.path.join("importlib", "__init__.py"))
            or path.endswith(os.path.join("conformance", "surface.py")))


def check_plugin(target: Target, python: str, workdir: Path, timeout: float):
    """Run the import check (and, for keras2, the standalone inspection) in parallel.

    Returns (load report, inspect report); for ops-module both are the same report."""
    workdir.mkdir(parents=True, exist_ok=True)
    if target.flavor != "keras2":
        report = CheckWorker(target, python, workdir, "inspect").run_check(timeout)
        return report, report
    # Keras 2 imports a backend with KERAS_BACKEND=<module>. The inspection imports the
    # plugin alone; should the plugin import keras itself, Keras then loads TensorFlow.
    alone = replace(target, extra_env=target.extra_env + (("KERAS_BACKEND", "tensorflow"),))
    workers = [CheckWorker(target, python, workdir, "load"),
               CheckWorker(alone, python, workdir, "inspect", keras2_surface=True)]
    with ThreadPoolExecutor(max_workers=2) as threads:
        load, inspect = (threads.submit(w.run_check, timeout) for w in workers)
        try:
            return load.result(), inspect.result()
        except BaseException:  # interrupted (Ctrl-C, SIGTERM): end the checks now
            while not (load.done() and inspect.done()):
                for worker in workers:
                    worker.interrupt()
                wait([load, inspect], timeout=0.05)
            raise


def validate_checks(plugin: Target, python: str, workdir: Path,
                    timeout: float = IMPORT_TIMEOUT_S, ops: list | None = None
                    ) -> tuple[checks.ImportVerdict, checks.ImportVerdict | None,
                               checks.Surface]:
    """Steps 1 and 2: (import verdict, verdict of importing it alone or None, surface)."""
    load, inspect = check_plugin(plugin, python, workdir, timeout)
    if "attributes" not in inspect and "attributes" in load:
        # Imported alone it failed (e.g. it imports keras, whose default backend is not
        # installed), but Keras's own load got as far as importing it: use those names.
        inspect = {**inspect, "attributes": load["attributes"]}
    keras_dir = checks.keras_dir(inspect) or load.get("keras_dir")
    folders = list(plugin.pythonpath)
    verdict = checks.import_verdict(load, plugin.flavor, plugin.backend, folders, keras_dir)
    alone = (checks.import_verdict(inspect, "ops-module", plugin.backend, folders, keras_dir)
             if inspect is not load else None)
    if plugin.flavor == "keras2":
        surface = checks.keras2_surface(inspect)
    else:
        surface = checks.ops_surface(inspect, catalog.all_ops() if ops is None else ops)
    return verdict, alone, surface
