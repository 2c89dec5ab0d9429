"""The worker pool: one long-lived subprocess per target, requests fanned out in parallel.

A worker that crashes (segfault, ``os._exit``, killed for memory), grows past its
memory cap or hangs past its timeout turns into a ``crash`` / ``timeout`` reply for that
request; it is restarted on the next request and the run goes on. A worker that cannot
even start marks its target ``broken`` with the reason, and the pool stops sending it
work.
"""
from __future__ import annotations

import json
import os
import select
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

from conformance import envs, memory, protocol, shims
from conformance import worker as worker_mod
from conformance.targets import Target

PACKAGE_DIR = Path(__file__).resolve().parent
STARTUP_TIMEOUT_S = 300.0  # importing TensorFlow on a loaded 2-core machine is slow
# A worker with a memory cap has its resident memory read this often while a reply is
# awaited: a reply that comes sooner costs no read. A worker that allocates fast may
# overshoot its cap by what it allocates in this time before it is stopped.
MEMORY_WATCH_S = 0.1
# A worker started under `nice` gets a fraction of a core while full-priority workers
# are busy (about a tenth at niceness 10): its time limits stretch by this factor, so
# that waiting for a core is not taken for a hang.
NICE_SLACK = 4.0


def worker_path(workdir: Path) -> str:
    """A folder holding only the `conformance` package (a symlink), for the worker's
    PYTHONPATH: putting the package's parent there instead would expose a checkout's
    other folders, or, once installed, the harness's whole site-packages (numpy 2 for
    Python 3.11) to target interpreters."""
    folder = Path(workdir).resolve() / "pythonpath"  # workers run with another cwd
    link = folder / "conformance"
    if not link.exists():
        folder.mkdir(parents=True, exist_ok=True)
        try:
            link.symlink_to(PACKAGE_DIR, target_is_directory=True)
        except FileExistsError:  # another worker got there first
            pass
    return str(folder)


class WorkerDied(Exception):
    pass


class WorkerTimeout(Exception):
    pass


class WorkerOutOfMemory(WorkerDied):
    """The worker holds more resident memory than its cap; the caller stops it."""

    def __init__(self, resident: int, cap: int):
        super().__init__(f"worker ran out of memory: resident {memory.describe(resident)} "
                         f"over its cap of {memory.describe(cap)}")
        self.resident, self.cap = resident, cap


class StartupError(Exception):
    """The target cannot run here; the message says why and how to fix it."""


class _Deadline:
    """The pool's `wait` for FrameReader: block until readable or the deadline passes.
    `watch`, when given, is called every MEMORY_WATCH_S of waiting (it may raise)."""

    def __init__(self, watch=None):
        self.at = 0.0
        self.watch = watch

    def __call__(self, fd):
        while True:
            remaining = self.at - time.monotonic()
            if remaining <= 0:
                raise WorkerTimeout()
            step = remaining if self.watch is None else min(remaining, MEMORY_WATCH_S)
            if select.select([fd], [], [], step)[0]:
                return
            if self.watch is not None:
                self.watch()


def _write_with_deadline(fd, data, deadline):
    """Write to a non-blocking pipe; wait (up to the deadline) only when it is full."""
    view = memoryview(data)
    while view:
        try:
            view = view[os.write(fd, view):]
            continue
        except BlockingIOError:
            pass
        except BrokenPipeError:
            raise WorkerDied() from None
        remaining = deadline - time.monotonic()
        if remaining <= 0 or not select.select([], [fd], [], remaining)[1]:
            raise WorkerTimeout()


SIGNAL_MEANINGS = {"SIGSEGV": "segmentation fault", "SIGABRT": "abort",
                   "SIGKILL": "killed, out of memory?", "SIGBUS": "bus error",
                   "SIGFPE": "floating point exception", "SIGILL": "illegal instruction"}


def describe_exit(returncode: int | None) -> str:
    """How a process ended, from its return code: "killed by SIGSEGV (segmentation
    fault)", "exited with status 3", or "closed its pipe" (None: it has not exited)."""
    if returncode is None:
        return "closed its pipe"
    if returncode >= 0:
        return f"exited with status {returncode}"
    try:
        name = signal.Signals(-returncode).name
    except ValueError:  # a real-time or platform-specific signal
        return f"killed by signal {-returncode}"
    meaning = SIGNAL_MEANINGS.get(name)
    return f"killed by {name} ({meaning})" if meaning else f"killed by {name}"


def compile_caches(target_id: str, lane: str = "ops") -> dict[str, str]:
    """Compile caches that persist across runs, so a compile is paid once per machine:
    Theano's C modules, and XLA executables for JAX (which compiles every primitive
    for every new shape: 50-500 ms each on a 2-core machine, 0.1-1 ms once cached).
    The JAX cache keeps every entry (no minimum compile time or size) because the
    many small per-primitive compiles are exactly the cost being saved.

    Theano holds a lock on its whole compile directory while it compiles or refreshes
    it, so workers that run beside each other get a directory per `lane` ("ops": the
    op cases' worker; "config": the configuration checks' workers): sharing one made
    the op worker wait for the configuration workers. JAX's cache takes no lock."""
    root = envs.cache_root()
    theano_dir = target_id if lane == "ops" else f"{target_id}.{lane}"
    return {
        "THEANO_FLAGS": f"compiledir={root / 'theano' / theano_dir}",
        "JAX_COMPILATION_CACHE_DIR": str(root / "jax" / target_id),
        "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS": "0",
        "JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES": "0",
    }


GENERATED = object()  # Worker(keras_json=...) default: the target's own keras.json at floatx


class _Gate:
    """Turns at one target's pipe, one request at a time. A turn asked for with
    `first=True` (a direct call: a shrink step, a counterexample) goes before every
    turn waiting without it (the requests of queued batches): it waits for the request
    in progress only, not for the cases lookahead queued. Requests are independent
    (the adapters keep compiled functions of several ops), so a direct call between
    two requests of a batch changes nothing but the order; a floatx switch runs on
    the target's lane, after its queued batches, so none of them straddles it."""

    def __init__(self):
        self._changed = threading.Condition()
        self._busy = False
        self._first_waiting = 0

    @property
    def busy(self) -> bool:
        """A turn is in progress (a thread is at the target's pipe)."""
        return self._busy

    @contextmanager
    def turn(self, first: bool = False):
        with self._changed:
            self._first_waiting += first
            try:
                while self._busy or (not first and self._first_waiting):
                    self._changed.wait()
            finally:
                self._first_waiting -= first
            self._busy = True
        try:
            yield
        finally:
            with self._changed:
                self._busy = False
                self._changed.notify_all()


class Worker:
    """One subprocess serving one target at one floatx.

    `keras_json` and `env` exist for configuration tests: a dict (written as JSON) or
    str (written verbatim) replaces the generated keras.json, None leaves KERAS_HOME
    empty; `env` entries are applied last, a None value removes the variable.
    `niceness` > 0 starts the process under `nice` (all its threads inherit it), for
    work that should only take cores the others leave idle. The target's `memory_cap`
    (when set, and where /proc can be read) limits the resident memory of the worker
    and its descendants: see `call`.
    """

    def __init__(self, target: Target, python: str, floatx: str, workdir: Path, *,
                 keras_json: dict | str | None | object = GENERATED, env: dict | None = None,
                 niceness: int = 0, cache_lane: str = "ops"):
        self.target, self.python, self.floatx = target, python, floatx
        self.cache_lane = cache_lane  # see compile_caches
        self.niceness = niceness if niceness > 0 and shutil.which("nice") else 0
        # absolute: KERAS_HOME and the logs live here, and the worker's cwd is elsewhere
        self.workdir = Path(workdir).resolve()
        self.keras_json, self.env_overrides = keras_json, dict(env or {})
        self.keras_home: Path | None = None  # the temporary KERAS_HOME of the last start
        self.log_path = self.workdir / f"{target.id}.log"  # one per target: floatx switches in place
        self.proc: subprocess.Popen | None = None
        self.info: dict | None = None
        self.restarts = 0
        self.answering = False  # a request was sent and its reply not read yet (see request)

    # -- process life cycle -------------------------------------------------
    def environment(self) -> dict:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("KERAS_", "THEANO"))}
        home = Path(tempfile.mkdtemp(prefix=f"keras-home-{self.target.id}-", dir=self.workdir))
        config = (self.target.keras_json(self.floatx) if self.keras_json is GENERATED
                  else self.keras_json)
        if config is not None:
            (home / "keras.json").write_text(
                config if isinstance(config, str) else json.dumps(config, indent=4))
        self.keras_home = home
        env["KERAS_HOME"] = str(home)
        if self.target.flavor != "ops-module":
            env["KERAS_BACKEND"] = self.target.backend
        env.update(compile_caches(self.target.id, self.cache_lane))
        env["PYTHONPATH"] = os.pathsep.join([worker_path(self.workdir), *self.target.pythonpath])
        env["PYTHONNOUSERSITE"] = "1"
        env["PYTHONDONTWRITEBYTECODE"] = "1"
        env[worker_mod.PARENT_ENV] = str(os.getpid())  # the worker dies with this process
        env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
        if self.target.needs_openmpi_shim:
            try:
                shim = shims.openmpi_shim()
            except shims.ShimError as exc:
                raise StartupError(str(exc)) from None
            env["LD_LIBRARY_PATH"] = os.pathsep.join(
                [shim, *filter(None, [env.get("LD_LIBRARY_PATH")])])
        env.update(dict(self.target.extra_env))
        for key, value in self.env_overrides.items():
            if value is None:
                env.pop(key, None)
            else:
                env[key] = value
        return env

    def command(self) -> list[str]:
        command = [self.python, "-m", "conformance.worker", "--flavor", self.target.flavor]
        if self.target.flavor == "ops-module":
            command += ["--module", self.target.backend]
        if self.niceness:  # nice execs the worker: same pid, so kill and wait are unchanged
            command = [shutil.which("nice"), "-n", str(self.niceness), *command]
        return command

    def spawn(self, timeout: float) -> dict:
        """Start `command()` and return its first frame, the hello (the interpreter is
        up), read within `timeout` s. Raises StartupError (no environment), WorkerDied,
        WorkerTimeout or ProtocolError; the caller kills the process on failure."""
        env = self.environment()
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                self.command(), stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log,
                env=env, cwd=self.workdir, start_new_session=True)
        os.set_blocking(self.proc.stdin.fileno(), False)
        self.answering = False
        capped = self.target.memory_cap is not None and memory.can_watch()
        self._deadline = _Deadline(self._check_memory if capped else None)
        self._reader = protocol.FrameReader(self.proc.stdout.fileno(), self._deadline)
        return self._receive(time.monotonic() + timeout)

    def start(self) -> dict:
        startup_s = self.time_limit(STARTUP_TIMEOUT_S)
        try:
            self.spawn(startup_s)  # hello: numpy imported
            info = self.request({"cmd": "info"}, startup_s)
        except (WorkerDied, WorkerTimeout, protocol.ProtocolError) as exc:
            self.kill()
            raise StartupError(self._startup_failure(exc)) from None
        if info.get("status") != "ok":
            self.kill()
            raise StartupError(f"{info.get('error_type')}: {info.get('message')}")
        self.info = info
        return info

    def _check_memory(self) -> None:
        """Raise WorkerOutOfMemory when the worker (with its descendants) holds more
        resident memory than its target's cap."""
        resident = memory.resident_bytes(self.proc.pid)
        if resident > self.target.memory_cap:
            raise WorkerOutOfMemory(resident, self.target.memory_cap)

    def _raise_cap_hint(self) -> str:
        return (f"raise the cap with --memory-cap or memory_cap in "
                f"[tool.conformance.targets.{self.target.id}]")

    def _startup_failure(self, exc: Exception) -> str:
        if isinstance(exc, WorkerTimeout):
            what = f"worker did not answer within {self.time_limit(STARTUP_TIMEOUT_S):.0f} s"
        elif isinstance(exc, WorkerOutOfMemory):
            what = f"{exc} while starting ({self._raise_cap_hint()})"
        else:
            what = "worker " + describe_exit(self.proc.poll() if self.proc else None)
        return f"{what}; last lines of {self.log_path}:\n{self.log_tail()}"

    def time_limit(self, seconds: float) -> float:
        return seconds * NICE_SLACK if self.niceness else seconds

    def log_tail(self, lines: int = 12) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def kill(self) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self.proc.wait()
        for stream in (self.proc.stdin, self.proc.stdout):
            try:
                stream.close()
            except OSError:
                pass

    def interrupt(self) -> None:
        """Kill the process group now, from any thread, without waiting: the thread
        waiting for a reply sees the worker die (and `kill`s it, which cleans up)."""
        proc = self.proc
        if proc is not None and proc.poll() is None:
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass

    def stop(self) -> None:
        if self.alive and not self.answering:  # else a reply is due first: kill it
            try:
                self.request({"cmd": "exit"}, 5.0)
                self.proc.wait(timeout=5.0)
            except (WorkerDied, WorkerTimeout, protocol.ProtocolError,
                    subprocess.TimeoutExpired):
                pass
        self.kill()

    # -- requests -------------------------------------------------------------
    def _receive(self, deadline: float) -> dict:
        self._deadline.at = deadline
        try:
            return self._reader.read()
        except EOFError:
            raise WorkerDied() from None

    def request(self, message: dict | bytes, timeout: float) -> dict:
        """Send a message (or a frame packed already) and wait for the reply."""
        deadline = time.monotonic() + timeout
        frame = message if isinstance(message, bytes) else protocol.pack(message)
        # True until the reply is read: a request cut short (an interrupt in the
        # waiting thread) leaves the pipe mid-conversation, fit only for `kill`
        self.answering = True
        _write_with_deadline(self.proc.stdin.fileno(), frame, deadline)
        reply = self._receive(deadline)
        self.answering = False
        return reply

    def call(self, message: dict | bytes, timeout: float | None = None) -> dict:
        """Send one request; a dead or stuck worker becomes a crash/timeout reply, and
        so does one over its memory cap (stopped alone, its process group killed; the
        reply's `memory_cap_bytes` holds the cap)."""
        timeout = timeout or self.time_limit(self.target.timeout_s)
        if self.alive and self.answering:
            # the last request was cut short (an exception in the waiting thread): its
            # reply may still come and would be read as this one's; start afresh
            self.kill()
        if not self.alive:
            self.restarts += 1
            self.start()
        try:
            return self.request(message, timeout)
        except WorkerTimeout:
            self.kill()
            return {"status": "timeout", "message": f"no reply within {timeout:.0f} s"}
        except WorkerOutOfMemory as exc:
            self.kill()
            return {"status": "crash", "message": f"{exc} (stopped; {self._raise_cap_hint()})",
                    "memory_cap_bytes": exc.cap, "resident_bytes": exc.resident,
                    "log_tail": self.log_tail()}
        except (WorkerDied, protocol.ProtocolError) as exc:
            self.kill()
            detail = str(exc) if isinstance(exc, protocol.ProtocolError) else ""
            return {"status": "crash",
                    "message": f"worker {describe_exit(self.proc.poll())} {detail}".strip(),
                    "log_tail": self.log_tail()}


class Pool:
    """Workers for a set of targets at one floatx; switch floatx with `use_floatx`."""

    def __init__(self, targets: list[Target], pythons: dict[str, str], workdir: Path | None = None):
        self.targets = {t.id: t for t in targets}
        self.pythons = pythons  # target id -> interpreter
        self._own_workdir = workdir is None
        self.workdir = Path(workdir or tempfile.mkdtemp(prefix="conformance-")).resolve()
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.floatx: str | None = None
        self.workers: dict[str, Worker] = {}
        self.broken: dict[str, str] = {}  # target id -> reason
        # False: a fresh worker per floatx (keras.json only, never set_floatx)
        self.switch_in_place = True
        self.worker_env: dict[str, str | None] = {}  # applied last to every worker's environment
        self._threads = ThreadPoolExecutor(max_workers=max(1, len(targets)))
        # One lane per target: a single thread that works through queued batches in
        # order (submit_many, floatx switches), and a gate to the target's pipe that
        # direct calls (a shrink step, a counterexample) pass before queued requests.
        self._lanes = {t.id: ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"lane-{t.id}")
                       for t in targets}
        self._gates = {t.id: _Gate() for t in targets}
        self._starting: dict[str, Worker] = {}  # target id -> its worker while it starts
        self._closing = False

    def use_floatx(self, floatx: str) -> dict[str, dict]:
        """Bring every target to keras.json floatx=`floatx`, in parallel.

        The first call starts the workers. Later calls switch running workers at
        runtime (``set_floatx``), so a target's startup (imports, first compiles) is
        paid once per run; a worker that cannot switch, or reports another floatx
        afterwards, is restarted with a keras.json at the new floatx.
        """
        if floatx == self.floatx:
            return self.infos()
        self.floatx = floatx
        self.broken = {}
        # on each target's lane: after every batch queued at the old floatx
        futures = {tid: self._lanes[tid].submit(self._bring_to_floatx, tid) for tid in self.targets}
        for tid, future in futures.items():
            error = future.result()
            if error:
                self.broken[tid] = error
        return self.infos()

    def _bring_to_floatx(self, target_id: str) -> str | None:
        with self._gates[target_id].turn():
            return self._switch_or_restart(target_id)

    def _switch_or_restart(self, target_id: str) -> str | None:
        worker = self.workers.get(target_id)
        if worker is not None and worker.alive and self.switch_in_place:
            try:
                info = worker.request({"cmd": "floatx", "floatx": self.floatx},
                                      worker.target.timeout_s)
            except (WorkerDied, WorkerTimeout, protocol.ProtocolError):
                info = {}
            if info.get("status") == "ok" and info.get("floatx") == self.floatx:
                worker.floatx, worker.info = self.floatx, info
                return None
        if worker is not None:
            worker.stop()
            del self.workers[target_id]
        return self._start(target_id)

    def _start(self, target_id: str) -> str | None:
        target = self.targets[target_id]
        python = self.pythons.get(target_id)
        if python is None:
            return "no interpreter"
        if self._closing:
            return "the pool was closed"
        worker = Worker(target, python, self.floatx, self.workdir, env=self.worker_env)
        self._starting[target_id] = worker  # for close, should it come now
        try:
            worker.start()
        except StartupError as exc:
            return str(exc)
        finally:
            del self._starting[target_id]
        self.workers[target_id] = worker
        return None

    def infos(self) -> dict[str, dict]:
        return {tid: w.info for tid, w in self.workers.items()}

    def epsilon(self, target_id: str) -> float:
        """The Keras epsilon the target's backend reports (its keras.json's otherwise)."""
        info = self.workers[target_id].info or {}
        return float(info.get("epsilon", self.targets[target_id].epsilon))

    @property
    def ready(self) -> list[str]:
        return [tid for tid in self.targets if tid in self.workers]

    def call(self, requests: dict[str, dict]) -> dict[str, dict]:
        """Send each target its request concurrently; wall time is the slowest one's."""
        live = {tid: req for tid, req in requests.items() if tid in self.workers}
        replies = {tid: {"status": "broken", "message": self.broken.get(tid, "not started")}
                   for tid in requests if tid not in live}
        if len(live) == 1:  # no thread hop: keeps the single-target round trip small
            (tid, req), = live.items()
            replies[tid] = self._call_one(tid, req)
            return replies
        futures = {tid: self._threads.submit(self._call_one, tid, req) for tid, req in live.items()}
        for tid, future in futures.items():
            replies[tid] = future.result()
        return replies

    def submit_many(self, requests: dict[str, list[dict]],
                    give_up_after: int | None = None) -> dict[str, Future]:
        """Queue each target's list of requests on its lane and return at once: a
        future per target, resolving to its replies in order. Batches of one target
        run one after the other, in the order they were submitted.

        `give_up_after`: once a target has crashed or timed out on that many requests
        of its batch, the rest are not sent (status ``skipped``): each would cost a
        restart or a whole timeout and say nothing new.
        """
        return {tid: self._lanes[tid].submit(self._run_batch, tid, batch, give_up_after)
                for tid, batch in requests.items()}

    def _run_batch(self, target_id: str, batch: list[dict], give_up_after: int | None) -> list[dict]:
        replies, failures = [], 0
        for request in batch:
            if self._closing:  # the run is over (or interrupted): no restarts now
                replies.append({"status": "error", "message": "the pool was closed"})
            elif give_up_after is not None and failures >= give_up_after:
                replies.append({"status": "skipped", "message": (
                    f"not sent: the target crashed or timed out on {failures} earlier "
                    "requests of this batch")})
            else:
                with self._gates[target_id].turn():  # a turn per request: see _Gate
                    reply = self._call_worker(target_id, request)
                failures += reply.get("status") in ("crash", "timeout")
                replies.append(reply)
        return replies

    def call_all(self, request: dict) -> dict[str, dict]:
        return self.call({tid: request for tid in self.targets})

    def _call_one(self, target_id: str, request: dict) -> dict:
        with self._gates[target_id].turn(first=True):
            return self._call_worker(target_id, request)

    def _call_worker(self, target_id: str, request: dict) -> dict:
        worker = self.workers.get(target_id)
        if worker is None:  # could not start at this floatx, or the pool was closed
            return {"status": "broken", "message": self.broken.get(target_id, "not started")}
        if self._closing:  # checked in the turn: close waits for the turns taken before
            return {"status": "error", "message": "the pool was closed"}
        try:
            return worker.call(request)
        except StartupError as exc:  # the restart after a crash failed
            return {"status": "crash", "message": f"restart failed: {exc}"}

    def _end_turns(self) -> None:
        """Return once no thread is at a worker's pipe, killing the workers of the turns
        in progress: each waiting thread then sees a crash and, the pool closing, sends
        nothing more (a turn taken from now on sends nothing: see _call_worker)."""
        while True:
            busy = [tid for tid, gate in self._gates.items() if gate.busy]
            if not busy:
                return
            for tid in busy:
                for worker in (self.workers.get(tid), self._starting.get(tid)):
                    if worker is not None:
                        worker.interrupt()
            time.sleep(0.02)

    def stop_workers(self) -> None:
        for worker in self.workers.values():
            worker.stop()
        self.workers = {}

    def close(self) -> None:
        """Stop every worker, also one in a call that never returns (an interrupted
        run: its reply is not waited for)."""
        self._closing = True
        for lane in self._lanes.values():  # queued batches are dropped, a running one ends
            lane.shutdown(wait=False, cancel_futures=True)
        self._end_turns()
        # before the threads end: a worker dies with the thread that started it (Linux,
        # see worker.die_with_parent), and stop lets it exit by itself
        self.stop_workers()
        for lane in self._lanes.values():
            lane.shutdown()
        self._threads.shutdown()
        if self._own_workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
