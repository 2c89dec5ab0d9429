"""Workers never touch the user's ~/.keras, and the worker runs on Python 3.6."""
import hashlib
from pathlib import Path

import numpy as np
import pytest

from conformance import targets
from conformance.pool import Pool
from conftest import require_env


def snapshot(folder: Path) -> dict:
    if not folder.exists():
        return {}
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def run_numpy_target(tmp_path, monkeypatch, home: Path):
    python = require_env("keras3")
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.delenv("KERAS_HOME", raising=False)
    target = targets.BUILTIN_TARGETS["keras3-numpy"]
    with Pool([target], {target.id: python}, tmp_path / "work") as pool:
        infos = pool.use_floatx("float64")
        assert infos[target.id]["floatx"] == "float64"  # our keras.json was the one read
        assert infos[target.id]["keras_home"] != str(home / ".keras")
        reply = pool.call_all({"cmd": "call", "fn": "keras.ops.exp", "args": [np.zeros(2)],
                               "kwargs": {}})[target.id]
        assert reply["status"] == "ok"


def test_existing_user_keras_dir_is_byte_for_byte_untouched(tmp_path, monkeypatch):
    home = tmp_path / "home"
    user_dir = home / ".keras"
    user_dir.mkdir(parents=True)
    (user_dir / "keras.json").write_text('{"floatx": "float16", "backend": "jax"}')
    before, mtime = snapshot(user_dir), (user_dir / "keras.json").stat().st_mtime_ns
    run_numpy_target(tmp_path, monkeypatch, home)
    assert snapshot(user_dir) == before
    assert (user_dir / "keras.json").stat().st_mtime_ns == mtime


def test_absent_user_keras_dir_is_not_created(tmp_path, monkeypatch):
    home = tmp_path / "home"
    home.mkdir()
    run_numpy_target(tmp_path, monkeypatch, home)
    assert not (home / ".keras").exists()


def test_worker_serves_requests_under_python36(make_pool):
    python = require_env("keras2")
    target = targets.Target(id="py36", flavor="ops-module", backend="numpy", python=python)
    pool = make_pool(target)
    assert pool.workers["py36"].info["python"].startswith("3.6")
    for dtype in ["float16", "float32", "float64", "int32", "bool"]:
        x = np.arange(6).reshape(2, 3).astype(dtype)
        reply = pool.call_all({"cmd": "call", "fn": "keras.ops.transpose", "args": [x],
                               "kwargs": {}})["py36"]
        assert reply["status"] == "ok", reply
        assert reply["outputs"][0].dtype == x.dtype
        np.testing.assert_array_equal(reply["outputs"][0], x.T)
