"""Advisory file locks (flock) on what several processes of one machine share.

Two runs at once (two CI jobs with one ``~/.cache/keras-conformance``) share the target
environments: a build holds an environment's lock exclusively, a run holds it shared,
so a second build waits for the first instead of deleting the folder it is filling,
and `envs clean` waits for the runs using it. The lock is a file beside the folder it
guards; it is never deleted (a process waiting on a deleted lock file would hold a
lock nobody else sees). The kernel drops a lock when its process ends, however it
ends, so a killed build never leaves a stale lock behind.
"""
from __future__ import annotations

import contextlib
import fcntl
import os
from pathlib import Path

# Shared locks held until the process ends (see hold_shared), by lock file path.
_HELD: dict[str, int] = {}


def lock_file(folder: Path) -> Path:
    """The lock file that guards `folder`: `<folder>.lock`, beside it."""
    return folder.with_name(folder.name + ".lock")


def _open(path: Path, create: bool) -> int | None:
    """A descriptor of the lock file, or None when it cannot be opened (a read-only
    cache: nobody can build there, so there is nothing to wait for)."""
    flags = os.O_RDWR | (os.O_CREAT if create else 0)
    try:
        if create:
            path.parent.mkdir(parents=True, exist_ok=True)
        return os.open(path, flags, 0o666)
    except OSError:
        return None


def _try(fd: int, mode: int) -> bool:
    try:
        fcntl.flock(fd, mode | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


def held_exclusively(path: Path) -> bool:
    """Whether a process (a build or a removal) holds `path` exclusively now. The probe
    takes a shared lock for an instant, which never stands in the way of the runs that
    hold it shared."""
    fd = _open(path, create=False)
    if fd is None:
        return False
    try:
        return not _try(fd, fcntl.LOCK_SH)
    finally:
        os.close(fd)  # closing drops the probe's own lock


@contextlib.contextmanager
def locked(path: Path, exclusive: bool, on_wait=None):
    """Hold `path` (exclusively or shared) for the `with` block, waiting as long as it
    takes; `on_wait(holder)` is called once before waiting, to say so: holder is
    "exclusive" (a build or a removal) or "shared" (runs using it). A shared hold of
    this process on the same file (hold_shared) is given up first: flock would
    otherwise make the process wait for itself."""
    release_shared(path)
    fd = _open(path, create=True)
    if fd is None:
        yield
        return
    mode = fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH
    try:
        if not _try(fd, mode):
            if on_wait is not None:
                on_wait("exclusive" if held_exclusively(path) else "shared")
            fcntl.flock(fd, mode)
        yield
    finally:
        os.close(fd)


def hold_shared(path: Path) -> bool:
    """Hold `path` shared until this process ends (or release_shared); True when held
    (or when the lock file cannot be created), False when another process holds it
    exclusively right now. Never waits."""
    key = str(path)
    if key in _HELD:
        return True
    fd = _open(path, create=True)
    if fd is None:
        return True
    if not _try(fd, fcntl.LOCK_SH):
        os.close(fd)
        return False
    _HELD[key] = fd
    return True


def release_shared(path: Path) -> None:
    fd = _HELD.pop(str(path), None)
    if fd is not None:
        os.close(fd)
