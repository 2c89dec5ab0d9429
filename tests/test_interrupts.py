"""No worker outlives the harness: after SIGINT, SIGTERM or the harness's sudden death.

`conformance validate` runs tests/fake_plugins/hanging_call.py, whose `exp` never
returns, and the harness is signalled while its worker is inside that call. Workers are
found by their working folder, which the pool puts inside the run's --out folder.
Then the two mechanisms of `worker.die_with_parent`, each on its own, and the pool's
close with a call in progress.
"""
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from conformance import interrupts, store
from conformance.pool import Worker
from conftest import FAKE_PLUGINS, fake_target, require_env
from fake_plugins.hanging_call import INSIDE

ROOT = Path(__file__).resolve().parent.parent
PROC = Path("/proc")
pytestmark = pytest.mark.skipif(not (PROC / "self" / "cwd").exists(),
                                reason="finding processes needs Linux's /proc")


def alive(pid: int) -> bool:
    """The process exists and is not a zombie (dead, waiting to be reaped)."""
    try:
        return (PROC / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def processes_in(folder: Path) -> dict[int, str]:
    """Live processes working in `folder` or below: pid -> command line."""
    found = {}
    for entry in PROC.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cwd = Path(os.readlink(entry / "cwd"))
            command = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if cwd.is_relative_to(folder) and alive(int(entry.name)):
            found[int(entry.name)] = command
    return found


def wait_until(condition, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return condition()


def kill_all(pids) -> None:
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


# -- conformance validate, signalled while its worker hangs in a plugin call --------------
@pytest.fixture
def hung_validate(tmp_path):
    """(harness, its --out folder), its worker inside the call; whatever is left
    running at the end is killed (a failing test leaves no orphan behind)."""
    out = tmp_path / "out"
    harness = subprocess.Popen(
        [sys.executable, "-m", "conformance.validate",
         str(Path(FAKE_PLUGINS) / "hanging_call.py"), "--flavor", "ops-module",
         "--python", sys.executable, "--against", "none", "--ops", "exp", "--floatx",
         "float32", "--call-timeout", "120", "--out", str(out), "--example-db",
         str(tmp_path / "examples"), "--seed", "1", "--profile", "smoke", "--no-report",
         "--project", str(ROOT)],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    log = out / "workers" / "hanging_call.log"
    inside = wait_until(lambda: log.exists() and INSIDE in log.read_text()
                        or harness.poll() is not None, 60)
    try:
        if not inside or harness.poll() is not None:
            harness.kill()
            output = harness.communicate()[0]
            pytest.fail(f"the worker never got inside the call:\n{output[-3000:]}")
        yield harness, out
    finally:
        harness.kill()
        harness.wait()
        kill_all(processes_in(out))


@pytest.mark.parametrize("signum, status", [(signal.SIGINT, 130), (signal.SIGTERM, 143)],
                         ids=["SIGINT", "SIGTERM"])
def test_a_signal_stops_validate_in_order_and_ends_its_hung_worker(hung_validate, signum,
                                                                  status):
    """SIGTERM (a CI time limit) is handled as Ctrl-C: workers stopped at once, the run
    record ended, summary.json written, exit status 128 + the signal. Before: SIGTERM
    ended the harness at once and left the worker running with parent 1; SIGINT waited
    for the call's timeout (120 s here) and exited with 2."""
    harness, out = hung_validate
    workers = processes_in(out)
    assert workers and all("conformance.worker" in c for c in workers.values())
    harness.send_signal(signum)
    try:
        output, _ = harness.communicate(timeout=20)
    except subprocess.TimeoutExpired:
        pytest.fail("the harness did not stop within 20 s of the signal")
    name = signal.Signals(signum).name
    assert harness.returncode == status, output[-3000:]
    assert f"interrupted by {name}" in output
    assert processes_in(out) == {}  # stopped by the harness itself, before it exited
    end = [r for r in store.read_records(out / "results.jsonl")
           if r.get("kind") == "run" and "finished" in r]
    assert end and end[-1]["interrupted"] == name and end[-1]["cases_done"] == 0
    assert (out / "summary.json").exists()


def test_the_worker_dies_with_a_harness_killed_outright(hung_validate):
    """SIGKILL gives the harness no chance to stop anything: the kernel ends the
    worker (PR_SET_PDEATHSIG). Before: the worker stayed, with parent 1."""
    harness, out = hung_validate
    workers = processes_in(out)
    assert workers
    harness.kill()
    harness.wait()
    assert wait_until(lambda: not processes_in(out), 5), f"left running: {workers}"


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_a_signal_during_the_import_checks_ends_them_at_once(tmp_path, signum):
    """A Keras 2 plugin is imported by two checks side by side, on threads; here it never
    finishes importing. Before: SIGINT waited for the import timeout (59 s of 60);
    SIGTERM ended the harness and left both checks running with parent 1."""
    python = require_env("keras2")
    out = tmp_path / "out"
    harness = subprocess.Popen(
        [sys.executable, "-m", "conformance.validate", "validate_hang", "--path", FAKE_PLUGINS,
         "--python", python, "--import-timeout", "60", "--out", str(out),
         "--project", str(ROOT)], cwd=ROOT, stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT, text=True)
    try:
        assert wait_until(lambda: len(processes_in(out)) == 2, 30)  # load and inspect
        time.sleep(1.0)  # both importing the plugin
        harness.send_signal(signum)
        output, _ = harness.communicate(timeout=10)
        assert harness.returncode == 128 + signum, output[-2000:]
        assert f"interrupted ({signal.Signals(signum).name})" in output
        assert processes_in(out) == {}
    finally:
        harness.kill()
        harness.wait()
        kill_all(processes_in(out))


# -- the two mechanisms of worker.die_with_parent, each alone ----------------------------
# A middle process starts `code` in a new session, as the pool starts workers, passes
# on the child's pid, and is then killed: the child has lost its parent.
MIDDLE = """
import subprocess, sys
child = subprocess.Popen([sys.executable, "-c", sys.argv[1]], start_new_session=True)
print(child.pid, flush=True)
child.wait()
"""


def orphan(code: str) -> tuple[int, str]:
    """(pid of a child running `code`, the line it printed when ready), once the
    middle process between it and this test has been killed."""
    middle = subprocess.Popen([sys.executable, "-c", MIDDLE, code], cwd=ROOT,
                              stdout=subprocess.PIPE, text=True)
    child = int(middle.stdout.readline())
    ready = middle.stdout.readline()  # the child shares the middle's stdout
    middle.kill()
    middle.wait()
    return child, ready


# Python's regular expressions hold the GIL: catastrophic backtracking is a C call that
# no other thread interrupts (a stand-in for a plugin stuck in C code).
HOLDS_THE_GIL = 're.match(r"(a+)+$", "a" * 64 + "b")'


def test_the_kernel_ends_a_worker_stuck_in_c_code_holding_the_gil():
    child, ready = orphan(f"""
import re
from conformance.worker import kill_on_parent_death
print(kill_on_parent_death(), flush=True)
{HOLDS_THE_GIL}
""")
    gone = wait_until(lambda: not alive(child), 3)
    kill_all([child])
    assert ready.strip() == "True" and gone


def test_the_watch_thread_alone_cannot_end_a_call_holding_the_gil():
    """Why the kernel's signal comes first: the watch thread needs the GIL."""
    child, ready = orphan(f"""
import os, re, threading
from conformance.worker import watch_parent
threading.Thread(target=watch_parent, args=(os.getppid(), 0.05), daemon=True).start()
print("ready", flush=True)
{HOLDS_THE_GIL}
""")
    try:
        time.sleep(1.0)  # 20 periods of the watch
        assert ready.strip() == "ready" and alive(child)
    finally:
        kill_all([child])


def test_without_prctl_the_watch_thread_ends_a_worker_and_what_it_started():
    """Where PR_SET_PDEATHSIG is missing (other systems), the watch thread kills the
    worker's whole process group once the worker is orphaned, a process the plugin
    started included: here while the worker sleeps in a call."""
    child, ready = orphan("""
import os, subprocess, threading, time
from conformance.worker import watch_parent
grandchild = subprocess.Popen(["sleep", "3600"])
threading.Thread(target=watch_parent, args=(os.getppid(), 0.05), daemon=True).start()
print(grandchild.pid, flush=True)
time.sleep(3600)
""")
    grandchild = int(ready)
    gone = wait_until(lambda: not alive(child) and not alive(grandchild), 3)
    kill_all([child, grandchild])
    assert gone


def test_a_worker_dies_when_the_thread_that_started_it_ends(tmp_path):
    """PR_SET_PDEATHSIG's catch: Linux sends it when the *thread* that started the
    worker ends. Hence the rule the next test checks for the pool."""
    worker = Worker(fake_target("numpy_ops"), sys.executable, "float32", tmp_path)
    starter = threading.Thread(target=worker.start)
    starter.start()
    starter.join()
    try:
        assert wait_until(lambda: not worker.alive, 3)
    finally:
        worker.kill()


def test_the_pool_starts_workers_on_threads_that_outlive_them(make_pool):
    """Every way the pool starts a worker (a floatx switch on its lane, a restart in a
    direct call on its threads, a restart in a queued batch on its lane) leaves it
    alive once that call is over."""
    add = {"cmd": "call", "fn": "keras.ops.add", "args": [np.ones(1), np.ones(1)],
           "kwargs": {}}
    crash = {"cmd": "call", "fn": "keras.ops.exit_now", "args": [np.ones(1)], "kwargs": {}}
    pool = make_pool(fake_target(target_id="a"), fake_target(target_id="b"))  # on the lanes
    pool.call({"a": crash, "b": crash})
    pool.call({"a": add, "b": add})  # restarted on the pool's threads (two targets)
    pool.submit_many({"a": [crash, add]})["a"].result()  # restarted on a's lane
    pids = {tid: w.proc.pid for tid, w in pool.workers.items()}
    time.sleep(1.0)
    assert {tid: w.proc.pid for tid, w in pool.workers.items()} == pids
    assert all(r["status"] == "ok" for r in pool.call({"a": add, "b": add}).values())
    assert pool.workers["a"].restarts == 2 and pool.workers["b"].restarts == 1


# -- the pool's close, with a call in progress ------------------------------------------
HANG = {"cmd": "call", "fn": "keras.ops.hang", "args": [np.ones(1)], "kwargs": {}}


def test_close_ends_a_queued_call_that_never_returns(make_pool):
    """Before: close joined the lane first, waiting for the call's timeout (60 s)."""
    pool = make_pool(fake_target(timeout_s=60.0))
    worker = pool.workers["fake"]
    replies = pool.submit_many({"fake": [HANG, HANG]})["fake"]
    assert wait_until(lambda: worker.answering, 5)
    started = time.monotonic()
    pool.close()
    assert time.monotonic() - started < 3
    assert [r["status"] for r in replies.result()] == ["crash", "error"]  # the second not sent
    assert not alive(worker.proc.pid)


def test_close_kills_a_worker_whose_request_was_interrupted(make_pool):
    """Ctrl-C in the thread waiting for a reply leaves the worker mid-request: close
    kills it instead of asking it to exit. Before: it asked, and waited 5 s for an
    answer that could not come."""
    pool = make_pool(fake_target(timeout_s=60.0))
    worker = pool.workers["fake"]

    def interrupt(signum, frame):
        raise KeyboardInterrupt()

    previous = signal.signal(signal.SIGALRM, interrupt)
    try:
        signal.setitimer(signal.ITIMER_REAL, 0.5)
        with pytest.raises(KeyboardInterrupt):  # one target: the call runs in this thread
            pool.call({"fake": HANG})
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
    started = time.monotonic()
    pool.close()
    assert time.monotonic() - started < 2
    assert not alive(worker.proc.pid)


# -- the harness's own signal handling ---------------------------------------------------
def test_sigterm_interrupts_like_ctrl_c_except_while_the_run_closes():
    """A first signal during the close is noted, not raised (the close is the orderly
    stop it asks for); a second stops at once. The exit status names the first."""
    before = signal.getsignal(signal.SIGTERM)
    with interrupts.handled():
        with pytest.raises(KeyboardInterrupt) as raised:
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(1)  # the handler runs at once; not reached
        assert isinstance(raised.value, interrupts.Terminated)
        assert (interrupts.received(), interrupts.exit_status()) == ("SIGTERM", 143)
    assert signal.getsignal(signal.SIGTERM) is before  # restored
    with interrupts.handled():
        with interrupts.finishing():
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(0.05)
            assert interrupts.received() == "SIGINT"  # noted, and the close goes on
            with pytest.raises(KeyboardInterrupt):
                os.kill(os.getpid(), signal.SIGINT)
                time.sleep(1)
        assert interrupts.exit_status() == 130
