"""Memory caps: how much resident memory a worker may hold, and how much it holds.

A cap limits resident memory (RSS), watched from the parent: the pool reads it while it
waits for a slow reply and stops a worker over its cap (see `pool.Worker`). An address
space limit (RLIMIT_AS) cannot do it: JAX, TensorFlow and torch reserve virtual ranges
far larger than what they touch, and the size of those reservations grows with the
number of cores (a malloc arena and a thread stack per thread).

A cap is written as bytes or as a size with a unit: ``3GiB``, ``512MiB``, ``2G`` (K, M,
G, T alone are binary units, as in `docker -m` and systemd; KB, MB, GB are decimal).
"""
from __future__ import annotations

import os
import re
from dataclasses import replace
from pathlib import Path

# The default cap: this share of the machine's memory split evenly between the workers
# a run starts, but never below FLOOR_BYTES (nor above the share itself, on a machine
# smaller than the floor). The floor is what a healthy worker may grow to in a default
# run: TensorFlow is the largest at rest, but JAX keeps an executable in memory for
# every new (primitive, shape, dtype) it meets, and grows to several GiB over a run.
MACHINE_SHARE = 0.75
FLOOR_BYTES = 8 * 1024 ** 3
# A cap below this would stop every worker as it starts (Python and numpy alone hold
# about 30 MiB, a Keras backend hundreds).
MINIMUM_BYTES = 64 * 1024 ** 2

_UNITS = {"": 1, "b": 1,
          "k": 1024, "kib": 1024, "kb": 1000,
          "m": 1024 ** 2, "mib": 1024 ** 2, "mb": 1000 ** 2,
          "g": 1024 ** 3, "gib": 1024 ** 3, "gb": 1000 ** 3,
          "t": 1024 ** 4, "tib": 1024 ** 4, "tb": 1000 ** 4}
_SIZE = re.compile(r"\s*(\d+(?:\.\d*)?|\.\d+)\s*([a-zA-Z]*)\s*")
SIZE_HELP = "a size such as 3GiB, 512MiB or 2G (a plain number is bytes)"
PROC = Path("/proc")


class CapError(ValueError):
    """A cap that cannot be read; the message says what was given and what to give.
    The caller adds where it was given (an option, a pyproject table)."""


def parse_size(value) -> int:
    """Bytes from an int or a text like '3GiB'; CapError says what is wrong."""
    if isinstance(value, bool):
        raise CapError(f"{value!r} is not a size; give {SIZE_HELP}")
    if isinstance(value, int):
        size = value
    else:
        match = _SIZE.fullmatch(str(value))
        unit = _UNITS.get(match.group(2).lower()) if match else None
        if unit is None:
            raise CapError(f"{value!r} is not a size; give {SIZE_HELP}")
        size = int(float(match.group(1)) * unit)
    if size < MINIMUM_BYTES:
        raise CapError(f"{value!r} is below {describe(MINIMUM_BYTES)}, too little for any "
                       f"worker to start; give {SIZE_HELP}")
    return size


def parse_caps(text: str) -> dict[str | None, int]:
    """'3GiB' (every target) or 'keras3-jax=4GiB,keras2-theano=3GiB' (per target; an
    item without a target id is for the targets not named) -> {target id or None:
    bytes}."""
    caps: dict[str | None, int] = {}
    for item in filter(None, (part.strip() for part in str(text).split(","))):
        target_id, _, size = item.rpartition("=")
        key = target_id.strip() or None
        if key in caps:
            raise CapError(f"{item!r}: {'target ' + key if key else 'the cap for every target'}"
                           " is given twice")
        caps[key] = parse_size(size)
    if not caps:
        raise CapError(f"{text!r} names no cap; give {SIZE_HELP}, or target=size pairs")
    return caps


def describe(size: int) -> str:
    """'2.0 GiB', '300 MiB': a size for people."""
    if size >= 1024 ** 3:
        return f"{size / 1024 ** 3:.1f} GiB"
    return f"{size / 1024 ** 2:.0f} MiB"


# -- the default ------------------------------------------------------------------------
def machine_memory() -> int | None:
    """Total memory of the machine in bytes (MemTotal), None when unknown."""
    try:
        for line in (PROC / "meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):  # a name this platform lacks
        return None


def default_cap(workers: int, total: int | None = None) -> int:
    """MACHINE_SHARE of the machine's memory (`total` bytes; this machine's when None)
    split between `workers` workers running at once, at least FLOOR_BYTES, at most the
    share itself."""
    total = total if total is not None else machine_memory()
    if not total:
        return FLOOR_BYTES
    share = int(total * MACHINE_SHARE)
    return min(share, max(FLOOR_BYTES, share // max(1, workers)))


def resolve(targets, given: dict[str | None, int], workers: int,
            total: int | None = None) -> dict[str, int]:
    """{target id: cap} for `targets`: the command line's cap for the target, else its
    cap for every target, else the target's own `memory_cap` (pyproject.toml), else the
    default for `workers` workers at once."""
    fallback = default_cap(workers, total)
    return {t.id: given.get(t.id) or given.get(None) or t.memory_cap or fallback
            for t in targets}


def with_caps(targets, given: dict[str | None, int], workers: int,
              total: int | None = None) -> list:
    """`targets` (Target objects), each with `memory_cap` set to its cap (`resolve`)."""
    caps = resolve(targets, given, workers, total)
    return [replace(target, memory_cap=caps[target.id]) for target in targets]


# -- what a worker holds ----------------------------------------------------------------
def can_watch() -> bool:
    """Whether resident memory can be read here (Linux /proc); without it no cap holds."""
    return (PROC / "self" / "statm").is_file()


def _resident(pid: int) -> int:
    """Resident bytes of one process (0 when it is gone)."""
    try:
        pages = int((PROC / str(pid) / "statm").read_text().split()[1])
    except (OSError, ValueError, IndexError):
        return 0
    return pages * os.sysconf("SC_PAGE_SIZE")


def _children(pid: int) -> list[int]:
    """Child processes of every thread of `pid` (a thread may fork too)."""
    children = []
    try:  # a process may end while it is looked at (Theano's compiler runs seconds)
        listings = list((PROC / str(pid) / "task").glob("*/children"))
    except OSError:
        return []
    for listing in listings:
        try:
            children += [int(child) for child in listing.read_text().split()]
        except (OSError, ValueError):  # the thread ended meanwhile
            continue
    return children


def resident_bytes(pid: int) -> int:
    """Resident bytes of a process and all its descendants (a plugin may fork). Pages
    a fork still shares with its parent count twice: the sum errs on the high side."""
    total, pending, seen = 0, [pid], set()
    while pending:
        current = pending.pop()
        if current in seen:
            continue
        seen.add(current)
        total += _resident(current)
        pending += _children(current)
    return total
