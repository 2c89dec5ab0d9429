"""An ops-module plugin whose functions allocate memory until they are stopped (the
memory cap's tests), beside one that behaves."""
import os
import time

import numpy as np

CHUNK = 50 * 1024 * 1024
# Where growing stops (it then waits without end): should the cap fail, the test fails
# by its timeout instead of taking the machine's memory.
CEILING = 2 * 1024 ** 3
_kept = []  # module level: what a leaking backend holds on to


def add(x1, x2):
    return np.add(x1, x2)


def grow_forever(x):
    """50 MB more every 20 ms, each page written (untouched pages are not resident),
    up to CEILING."""
    while True:
        if len(_kept) * CHUNK < CEILING:
            _kept.append(np.ones(CHUNK, dtype=np.uint8))
        time.sleep(0.02)


def fork_and_grow(x):
    """A child process does the allocating; the worker itself waits for it."""
    child = os.fork()
    if child == 0:
        grow_forever(x)
    os.waitpid(child, 0)
    return x


exp = grow_forever  # the catalog's op `exp`, for runs that go through the engine


if os.environ.get("MEMORY_HOG_AT_IMPORT"):  # a backend that outgrows its cap as it loads
    grow_forever(None)
