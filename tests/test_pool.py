"""Worker life cycle with misbehaving plugins: crashes and hangs become results."""
import os
import time

import numpy as np

from conformance.pool import NICE_SLACK, Worker
from conftest import fake_target


def call(pool, fn, *args, target="fake"):
    return pool.call({target: {"cmd": "call", "fn": f"keras.ops.{fn}", "args": list(args),
                               "kwargs": {}}})[target]


def test_ok_reply_carries_outputs_and_backend_time(make_pool):
    pool = make_pool(fake_target())
    reply = call(pool, "add", np.ones(3, "float32"), np.ones(3, "float32"))
    assert reply["status"] == "ok"
    assert reply["outputs"][0].tolist() == [2.0, 2.0, 2.0]
    assert reply["outputs"][0].dtype == np.float32
    assert 0 < reply["backend_s"] < 5  # measured around the call, not a default of 0


def test_segfault_becomes_crash_and_worker_restarts(make_pool):
    pool = make_pool(fake_target())
    reply = call(pool, "segfault", np.ones(1))
    assert reply["status"] == "crash"
    assert "SIGSEGV" in reply["message"]
    assert call(pool, "add", np.ones(1), np.ones(1))["status"] == "ok"
    assert pool.workers["fake"].restarts == 1


def test_os_exit_and_sys_exit(make_pool):
    pool = make_pool(fake_target())
    reply = call(pool, "exit_now", np.ones(1))
    assert reply["status"] == "crash" and "status 3" in reply["message"]
    reply = call(pool, "sys_exit", np.ones(1))  # SystemExit is caught inside the worker
    assert reply["status"] == "error" and reply["error_type"] == "SystemExit"
    assert call(pool, "add", np.ones(1), np.ones(1))["status"] == "ok"


def test_hang_becomes_timeout_within_the_limit(make_pool):
    pool = make_pool(fake_target(timeout_s=1.0))
    started = time.monotonic()
    reply = call(pool, "hang", np.ones(1))
    assert reply["status"] == "timeout"
    assert time.monotonic() - started < 5
    assert call(pool, "add", np.ones(1), np.ones(1))["status"] == "ok"


def test_stdout_garbage_does_not_corrupt_the_protocol(make_pool):
    pool = make_pool(fake_target())
    reply = call(pool, "noisy", np.arange(4.0))
    assert reply["status"] == "ok" and reply["outputs"][0].tolist() == [0, 1, 2, 3]
    assert "garbage on stdout" in pool.workers["fake"].log_path.read_text()


def test_missing_function_is_unsupported_and_errors_are_structured(make_pool):
    pool = make_pool(fake_target())
    assert call(pool, "no_such_op", np.ones(1))["status"] == "unsupported"
    assert call(pool, "not_implemented", np.ones(1))["status"] == "unsupported"
    reply = call(pool, "raises", np.ones(1))
    assert reply["status"] == "error" and reply["error_type"] == "ValueError"
    assert "bad value" in reply["message"]


def test_requests_to_several_targets_run_concurrently(make_pool):
    pool = make_pool(fake_target(target_id="a"), fake_target(target_id="b"),
                     fake_target(target_id="c"))
    request = {"cmd": "call", "fn": "keras.ops.sleep_then_add",
               "args": [np.zeros(1), np.full(1, 0.7)], "kwargs": {}}
    started = time.monotonic()
    replies = pool.call_all(request)
    elapsed = time.monotonic() - started
    assert [r["status"] for r in replies.values()] == ["ok"] * 3
    assert elapsed < 1.6, f"three 0.7 s calls took {elapsed:.2f} s: not concurrent"


def test_plugin_that_fails_to_import_marks_target_broken(make_pool):
    pool = make_pool(fake_target(module="no_such_plugin_module"))
    assert "fake" in pool.broken
    assert "No module named 'no_such_plugin_module'" in pool.broken["fake"]
    assert call(pool, "add", np.ones(1), np.ones(1))["status"] == "broken"


def test_relative_workdir_gives_workers_absolute_paths(tmp_path, monkeypatch):
    """Workers run with the workdir as cwd: a relative KERAS_HOME would point elsewhere."""
    import os

    from conformance.pool import Pool

    monkeypatch.chdir(tmp_path)
    target = fake_target()
    with Pool([target], {"fake": target.python}, "relative/work") as pool:
        info = pool.use_floatx("float32")["fake"]
        assert os.path.isabs(info["keras_home"]), info["keras_home"]
        assert os.path.isfile(os.path.join(info["keras_home"], "keras.json"))
        assert call(pool, "add", np.ones(1), np.ones(1))["status"] == "ok"


def test_batch_gives_up_on_a_target_that_keeps_crashing(make_pool):
    """After `give_up_after` crashes the rest of a batch is not sent (each would cost a
    restart); a batch queued after it runs normally, in order."""
    pool = make_pool(fake_target())
    crashing = [{"cmd": "call", "fn": "keras.ops.segfault", "args": [np.ones(1)], "kwargs": {}}] * 6
    adding = [{"cmd": "call", "fn": "keras.ops.add", "args": [np.ones(1), np.ones(1)], "kwargs": {}}]
    first = pool.submit_many({"fake": crashing}, give_up_after=2)
    second = pool.submit_many({"fake": adding}, give_up_after=2)
    statuses = [r["status"] for r in first["fake"].result()]
    assert statuses == ["crash", "crash", "skipped", "skipped", "skipped", "skipped"]
    assert second["fake"].result()[0]["status"] == "ok"
    assert pool.workers["fake"].restarts == 2


def test_floatx_switch_waits_for_a_queued_batch(make_pool):
    """A batch still running at the old floatx finishes before the switch: the two
    never interleave on the worker's pipe."""
    pool = make_pool(fake_target())
    slow = [{"cmd": "call", "fn": "keras.ops.sleep_then_add",
             "args": [np.ones(1), np.ones(1)], "kwargs": {}}] * 3
    queued = pool.submit_many({"fake": slow})
    pool.use_floatx("float64")
    assert [r["status"] for r in queued["fake"].result()] == ["ok"] * 3
    assert call(pool, "add", np.ones(1), np.ones(1))["status"] == "ok"


def test_a_direct_call_waits_for_the_request_in_progress_only(make_pool):
    """Lookahead queues several cases on a target; a shrink step or a counterexample
    (a direct call) goes before the queued requests, after the one in progress."""
    pool = make_pool(fake_target())
    sleepy = [{"cmd": "call", "fn": "keras.ops.sleep_then_add",
               "args": [np.ones(1), np.full(1, 0.3)], "kwargs": {}}] * 2
    batches = [pool.submit_many({"fake": sleepy})["fake"] for _ in range(3)]
    time.sleep(0.1)  # the first request of the first batch is in progress
    started = time.monotonic()
    assert call(pool, "add", np.ones(1), np.ones(1))["status"] == "ok"
    assert time.monotonic() - started < 0.5  # not behind the 6 x 0.3 s queued
    assert not batches[0].done()
    assert [r["status"] for b in batches for r in b.result()] == ["ok"] * 6


def test_a_niced_worker_runs_under_nice_with_stretched_time_limits(tmp_path):
    """Background work (the configuration checks) must only take idle cores: the worker
    process and every thread it starts run at the niceness asked for, and its time
    limits stretch so that waiting for a core is not taken for a hang."""
    target = fake_target(timeout_s=2.0)
    worker = Worker(target, target.python, "float32", tmp_path, niceness=7)
    worker.start()
    try:
        ours = os.getpriority(os.PRIO_PROCESS, 0)
        threads = [int(t) for t in os.listdir(f"/proc/{worker.proc.pid}/task")]
        assert {os.getpriority(os.PRIO_PROCESS, t) for t in threads} == {min(ours + 7, 19)}
        assert worker.time_limit(target.timeout_s) == 2.0 * NICE_SLACK
        assert call_worker(worker, "add", np.ones(2), np.ones(2))["status"] == "ok"
    finally:
        worker.stop()
    plain = Worker(target, target.python, "float32", tmp_path / "plain")
    assert plain.time_limit(target.timeout_s) == 2.0 and "nice" not in plain.command()[0]


def call_worker(worker, fn, *args):
    return worker.call({"cmd": "call", "fn": f"keras.ops.{fn}", "args": list(args), "kwargs": {}})


def test_results_that_are_not_real_arrays_are_errors_not_crashes(make_pool):
    pool = make_pool(fake_target(module="odd_results", target_id="odd"))
    expected = {"log": "output 0 is None", "sin": "dtype <U7", "cos": "dtype object",
                "tanh": "dtype [('value', '<f4')]"}
    for fn, says in expected.items():
        reply = call(pool, fn, np.ones(2, "float32"), target="odd")
        assert reply["status"] == "error" and reply["error_type"] == "UncomparableOutput", reply
        assert says in reply["message"] and "only numeric and bool arrays" in reply["message"]
    assert call(pool, "exp", np.ones(2, "float32"), target="odd")["outputs"][0].dtype == np.complex64
    assert pool.workers["odd"].restarts == 0
