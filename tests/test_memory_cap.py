"""Memory caps: a worker that grows past its cap is stopped alone, its request becomes a
crash that says so, and the run goes on (issue 22, "Memory").

The hog is tests/fake_plugins/memory_hog.py: 50 MB more every 20 ms until stopped (or,
should the cap fail, until a ceiling of 2 GiB: then the test fails by its timeout).
"""
import json
import os
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from conformance import memory, pool as pool_mod, store, targets
from conformance.options import OptionError, RunOptions
from conformance.pool import Pool
from conformance.runloop import CONFIG_WORKERS, Run
from conftest import FAKE_PLUGINS, fake_target, require_env

ROOT = Path(__file__).resolve().parent.parent
MiB, GiB = 1024 ** 2, 1024 ** 3
CAP = 300 * MiB


def hog(target_id="hog", cap=CAP, **changes):
    """The hog plugin with a cap, and a timeout far above the time it takes to reach it
    (so a crash within seconds comes from the cap, not the timeout)."""
    return replace(fake_target(module="memory_hog", target_id=target_id, timeout_s=10.0),
                   memory_cap=cap, **changes)


def request(fn, *args):
    return {"cmd": "call", "fn": f"keras.ops.{fn}", "args": list(args), "kwargs": {}}


def running_in_group(pgid: int) -> list[int]:
    """Processes of a process group that still run (zombies waiting to be reaped by
    whoever adopted them do not count)."""
    running = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:  # ended meanwhile
            continue
        if int(fields[2]) == pgid and fields[0] != "Z":
            running.append(int(stat.parent.name))
    return running


# -- the cap at work ---------------------------------------------------------------------
def test_a_worker_over_its_cap_is_stopped_alone_and_restarts(make_pool):
    pool = make_pool(hog(), fake_target(target_id="other"))
    other_pid = pool.workers["other"].proc.pid
    started = time.monotonic()
    replies = pool.call({"hog": request("grow_forever", np.ones(1)),
                         "other": request("sleep_then_add", np.zeros(1), np.full(1, 1.0))})
    elapsed = time.monotonic() - started
    reply = replies["hog"]
    assert reply["status"] == "crash"
    assert "ran out of memory" in reply["message"] and "cap of 300 MiB" in reply["message"]
    assert "--memory-cap" in reply["message"]
    assert reply["memory_cap_bytes"] == CAP and reply["resident_bytes"] > CAP
    assert elapsed < 5, f"stopped after {elapsed:.1f} s"
    # the other target answered and kept its worker
    assert replies["other"]["status"] == "ok"
    assert pool.workers["other"].proc.pid == other_pid
    # the hog restarts for its next request, which runs
    assert pool.call({"hog": request("add", np.ones(1), np.ones(1))})["hog"]["status"] == "ok"
    assert pool.workers["hog"].restarts == 1


def test_a_forked_child_counts_and_goes_with_its_worker(make_pool):
    pool = make_pool(hog())
    worker_pid = pool.workers["hog"].proc.pid  # its own session: the process group id
    reply = pool.call({"hog": request("fork_and_grow", np.ones(1))})["hog"]
    assert reply["status"] == "crash" and "ran out of memory" in reply["message"]
    deadline = time.monotonic() + 2  # SIGKILL is delivered; dying takes a moment
    while running_in_group(worker_pid) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert running_in_group(worker_pid) == [], "the forked child outlived its worker"


def test_a_worker_over_its_cap_while_starting_is_broken_with_the_reason(make_pool,
                                                                         monkeypatch):
    monkeypatch.setattr(pool_mod, "STARTUP_TIMEOUT_S", 20.0)  # should the cap fail
    pool = make_pool(hog(extra_env=(("MEMORY_HOG_AT_IMPORT", "1"),)))
    assert "hog" not in pool.workers
    assert "ran out of memory" in pool.broken["hog"] and "while starting" in pool.broken["hog"]


def test_fast_replies_read_no_memory_figures(make_pool, monkeypatch):
    """Requests of ~1 ms must not pay a /proc read each: memory is read only when a
    reply takes longer than pool.MEMORY_WATCH_S."""
    pool = make_pool(replace(fake_target(), memory_cap=4 * GiB))
    reads = []
    real = memory.resident_bytes
    monkeypatch.setattr(memory, "resident_bytes", lambda pid: reads.append(pid) or real(pid))
    for _ in range(50):
        assert pool.call({"fake": request("add", np.ones(1), np.ones(1))})["fake"]["status"] == "ok"
    assert reads == []
    slow = request("sleep_then_add", np.zeros(1), np.full(1, 5 * pool_mod.MEMORY_WATCH_S))
    assert pool.call({"fake": slow})["fake"]["status"] == "ok"
    assert len(reads) >= 3  # one read per MEMORY_WATCH_S of waiting


def test_a_real_jax_worker_runs_under_the_default_cap(tmp_path, monkeypatch):
    """JAX reserves far more address space than it uses: the cap on resident memory
    lets it start and run ops (its memory is read while it starts)."""
    python = require_env("keras3")
    workers = len(targets.BUILTIN_TARGETS) + CONFIG_WORKERS
    target = replace(targets.BUILTIN_TARGETS["keras3-jax"],
                     memory_cap=memory.default_cap(workers))
    reads = []
    real = memory.resident_bytes
    monkeypatch.setattr(memory, "resident_bytes", lambda pid: reads.append(real(pid)) or reads[-1])
    with Pool([target], {target.id: python}, tmp_path / "work") as pool:
        pool.use_floatx("float32")
        assert target.id in pool.workers, pool.broken
        x = np.linspace(-2, 2, 12, dtype="float32").reshape(3, 4)
        for fn, args in [("exp", [x]), ("matmul", [x, x.T]), ("sum", [x])]:
            reply = pool.call({target.id: request(fn, *args)})[target.id]
            assert reply["status"] == "ok", reply
    assert reads, "the worker's memory was never read"
    assert 0 < max(reads) < target.memory_cap


# -- how much: sizes, the default, where a cap comes from --------------------------------
@pytest.mark.parametrize("text, size", [
    ("3GiB", 3 * GiB), ("512MiB", 512 * MiB), ("2G", 2 * GiB), ("1.5 gib", int(1.5 * GiB)),
    ("2GB", 2 * 1000 ** 3), ("104857600", 100 * MiB), (100 * MiB, 100 * MiB)])
def test_sizes_are_bytes_or_a_number_with_a_unit(text, size):
    assert memory.parse_size(text) == size


@pytest.mark.parametrize("text, message", [
    ("3 gigs", "is not a size; give a size such as 3GiB"), ("-1G", "is not a size"),
    ("", "is not a size"), (True, "is not a size"), ("10MiB", "too little for any worker")])
def test_a_bad_size_says_what_to_give(text, message):
    with pytest.raises(memory.CapError, match=message):
        memory.parse_size(text)


def test_caps_for_every_target_and_per_target():
    assert memory.parse_caps("3GiB") == {None: 3 * GiB}
    assert memory.parse_caps("keras3-jax=4GiB, keras2-theano=3GiB,2G") == {
        "keras3-jax": 4 * GiB, "keras2-theano": 3 * GiB, None: 2 * GiB}
    with pytest.raises(memory.CapError, match="target keras3-jax is given twice"):
        memory.parse_caps("keras3-jax=4GiB,keras3-jax=3GiB")


def test_a_bad_option_names_the_option_and_what_to_give(tmp_path):
    with pytest.raises(OptionError, match=r"--memory-cap 'lots' is not a size; give a size "
                                          r"such as 3GiB.*id=size"):
        RunOptions.parse({"memory_cap": "lots", "project": tmp_path})
    with pytest.raises(OptionError, match="--memory-cap: unknown target.*keras3-jaxx"):
        RunOptions.parse({"memory_cap": "keras3-jaxx=4GiB", "project": tmp_path})
    assert RunOptions.parse({"memory_cap": "keras3-jax=4GiB", "project": tmp_path}
                            ).memory_cap == {"keras3-jax": 4 * GiB}


def test_the_default_splits_the_machine_between_the_workers():
    assert memory.default_cap(workers=10, total=256 * GiB) == int(256 * GiB * 0.75) // 10
    # never below the floor a healthy worker may grow to ...
    assert memory.default_cap(workers=14, total=24 * GiB) == memory.FLOOR_BYTES
    # ... nor above three quarters of a machine smaller than the floor
    assert memory.default_cap(workers=14, total=4 * GiB) == 3 * GiB
    assert memory.default_cap(workers=1) <= memory.machine_memory()


def test_the_command_line_wins_over_pyproject_which_wins_over_the_default(tmp_path):
    (tmp_path / "pyproject.toml").write_text(
        '[tool.conformance.targets.keras3-jax]\nmemory_cap = "5GiB"\n'
        '[tool.conformance.targets.keras3-torch]\nmemory_cap = 3221225472\n')
    loaded = targets.load_targets(targets.load_project_config(tmp_path))
    chosen = [loaded[t] for t in ("keras3-jax", "keras3-torch", "keras3-numpy")]
    assert [t.memory_cap for t in chosen] == [5 * GiB, 3 * GiB, None]
    default = memory.default_cap(3, total=64 * GiB)
    resolve = lambda given: list(memory.resolve(chosen, given, 3, total=64 * GiB).values())
    assert resolve({}) == [5 * GiB, 3 * GiB, default]
    assert resolve({None: 2 * GiB}) == [2 * GiB] * 3
    assert resolve({"keras3-torch": 4 * GiB}) == [5 * GiB, 4 * GiB, default]


def test_a_bad_pyproject_cap_names_the_table(tmp_path):
    with pytest.raises(targets.ConfigError,
                       match=r"\[tool.conformance.targets.keras3-jax\]: memory_cap '4 GiBs' "
                             "is not a size"):
        targets.load_targets({"targets": {"keras3-jax": {"memory_cap": "4 GiBs"}}})


def test_without_proc_a_run_says_once_that_no_cap_holds(tmp_path, monkeypatch):
    (tmp_path / "pyproject.toml").write_text(
        f'[tool.conformance.targets.np]\nflavor = "ops-module"\nbackend = "numpy_ops"\n'
        f'python = {json.dumps(sys.executable)}\npythonpath = [{json.dumps(FAKE_PLUGINS)}]\n')
    monkeypatch.setattr(memory, "can_watch", lambda: False)
    said = []
    options = RunOptions.parse({"project": tmp_path, "targets": "np", "out": tmp_path / "out",
                                "no_report": True})
    run = Run.from_options(options, say=said.append)
    run.open()
    run.close()
    assert [line for line in said if "memory" in line] == [
        "memory caps are not enforced: resident memory cannot be read here (no /proc)"]


# -- a whole run: the verdict reaches the results, the run record and the report --------
def test_a_run_records_the_caps_and_reports_the_out_of_memory_crash(tmp_path):
    table = ('[tool.conformance.targets.{id}]\nflavor = "ops-module"\nbackend = "{module}"\n'
             f'python = {json.dumps(sys.executable)}\npythonpath = [{json.dumps(FAKE_PLUGINS)}]\n')
    (tmp_path / "pyproject.toml").write_text(table.format(id="hog", module="memory_hog")
                                             + table.format(id="np", module="numpy_ops"))
    out = tmp_path / "out"
    done = subprocess.run(
        [sys.executable, "-m", "conformance.cli", "run", "--targets", "hog,np", "--ops", "exp",
         "--floatx", "float32", "--profile", "smoke", "--seed", "5", "--out", str(out),
         "--memory-cap", "hog=300MiB"],
        cwd=tmp_path, capture_output=True, text=True, timeout=300,
        env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert done.returncode == 1, done.stdout[-2000:] + done.stderr[-2000:]
    summary = store.load(out / "results.jsonl")
    assert summary["run"]["memory_caps"] == {"hog": CAP, "np": memory.default_cap(
        2 + CONFIG_WORKERS)}
    results = {r["target"]: r for r in summary["results"]}
    assert results["hog"]["status"] == "crash"
    assert "ran out of memory: resident" in results["hog"]["message"]
    assert "over its cap of 300 MiB" in results["hog"]["message"]
    assert results["np"]["status"] == "pass"
    assert "over its cap of 300 MiB" in (out / "index.html").read_text()


def test_a_process_that_ends_while_it_is_measured_counts_nothing():
    """Theano runs its compiler as a child for seconds: a child that ends while the
    watch lists it must not break the wait (it did: FileNotFoundError from /proc)."""
    gone = 2 ** 22 + 12345  # above the default pid_max: no such process
    assert memory.resident_bytes(gone) == 0 and memory._children(gone) == []


def test_a_request_cut_short_never_lends_its_reply_to_the_next(make_pool, monkeypatch):
    """An exception in the waiting thread (here from the memory watch) leaves the reply
    in the pipe; the next request must get its own reply, not that one."""
    pool = make_pool(replace(fake_target(), memory_cap=4 * GiB))

    def broken_watch(pid):
        raise RuntimeError("the watch failed")

    monkeypatch.setattr(memory, "resident_bytes", broken_watch)
    slow = request("sleep_then_add", np.zeros(1), np.full(1, 3 * pool_mod.MEMORY_WATCH_S))
    with pytest.raises(RuntimeError):
        pool.call({"fake": slow})
    monkeypatch.undo()
    reply = pool.call({"fake": request("add", np.full(2, 1.0), np.full(2, 2.0))})["fake"]
    assert reply["status"] == "ok" and reply["outputs"][0].tolist() == [3.0, 3.0]
    assert pool.workers["fake"].restarts == 1
