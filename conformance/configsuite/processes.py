"""The workers of one target under the configuration setups, and what they answer.

A `TargetRun` starts one worker per setup on first use (a worker that cannot start
is remembered, not retried) and turns replies into values or exceptions the
scenarios record: `SetupFailed` (no worker, or a probe that failed) and
`CallFailed` (an op call that did not return an array).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from conformance.configsuite.records import first_lines
from conformance.configsuite.setups import SHARED_SETUPS, setups
from conformance.pool import StartupError, Worker
from conformance.targets import Target


class SetupFailed(Exception):
    """A worker for one setup could not start; the message says why."""


class CallFailed(Exception):
    """An op call gave no array; `status` is the record status it becomes."""

    def __init__(self, status: str, message: str):
        super().__init__(message)
        self.status = status


class TargetRun:
    """The workers of one target, one per setup, started on first use."""

    def __init__(self, target: Target, python: str, workdir: Path, niceness: int = 0):
        self.target, self.python = target, python
        self.workdir = Path(workdir)
        self.niceness = niceness  # see Worker: > 0 for checks run beside the op cases
        self.setups = setups(target)
        self.workers: dict[str, Worker] = {}
        self.failed: dict[str, str] = {}
        self.homes: dict[str, Path] = {}  # sandboxed HOME per setup

    def setup_dir(self, name: str) -> Path:
        return self.workdir / self.target.id / name

    def worker(self, name: str) -> Worker:
        if name in self.failed:
            raise SetupFailed(self.failed[name])
        if name in self.workers:
            return self.workers[name]
        setup = self.setups[name]
        folder = self.setup_dir(name)
        folder.mkdir(parents=True, exist_ok=True)
        env = dict(setup.env)
        if setup.sandbox_home:
            home = folder / "home"
            home.mkdir(exist_ok=True)
            self.homes[name] = home
            env["HOME"] = str(home)
        worker = Worker(self.target, self.python, setup.floatx, folder,
                        keras_json=setup.keras_json, env=env, niceness=self.niceness,
                        cache_lane="config")
        try:
            worker.start()
        except StartupError as exc:
            self.failed[name] = str(exc)
            raise SetupFailed(str(exc)) from None
        self.workers[name] = worker
        return worker

    def probe(self, name: str, *sections: str) -> dict:
        reply = self.worker(name).call({"cmd": "config", "sections": list(sections)})
        if reply.get("status") != "ok":
            raise SetupFailed(f"config probe: {reply.get('status')}: {reply.get('message')}")
        return reply

    def call(self, name: str, fn: str, args: list, kwargs: dict, params=()) -> dict:
        """`params`: indices of array arguments that are model parameters (a conv
        kernel): graph backends hold them in variables, as a model does."""
        request = {"cmd": "call", "fn": fn, "args": args, "kwargs": kwargs}
        if params:
            request["params"] = list(params)
        return self.worker(name).call(request)

    def release(self, keep=SHARED_SETUPS) -> None:
        for name in [n for n in self.workers if n not in keep]:
            self.workers.pop(name).stop()

    def close(self) -> None:
        self.release(keep=())


def section(reply: dict, name: str) -> dict:
    """One section of a config probe's reply; a section that raised is SetupFailed."""
    value = reply.get(name) or {}
    if "error" in value and len(value) == 1:
        error = value["error"]
        raise SetupFailed(f"probe section {name}: {error.get('type')}: {error.get('message')}")
    return value


def output(run: TargetRun, setup: str, fn: str, args: list, kwargs: dict,
           params=()) -> np.ndarray:
    """The first output of one op call on a setup's worker, or CallFailed."""
    try:
        reply = run.call(setup, fn, args, kwargs, params)
    except SetupFailed as exc:
        raise CallFailed("error", f"worker did not start: {first_lines(exc)}") from None
    status = reply.get("status")
    if status == "ok":
        return np.asarray(reply["outputs"][0])
    message = f"{reply.get('error_type') or status}: {reply.get('message')}"
    raise CallFailed("unsupported" if status == "unsupported" else "error", message)
