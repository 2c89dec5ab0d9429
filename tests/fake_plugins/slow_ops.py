"""numpy_ops_v2 (sum off by 1%, maximum raises, no log), every call 20 ms slower: a
run of a few seconds, long enough to be interrupted half-way (tests/test_resume.py)."""
import functools
import time

import numpy_ops_v2

DELAY_S = 0.02


def _slowed(function):
    @functools.wraps(function)
    def slowed(*args, **kwargs):
        time.sleep(DELAY_S)
        return function(*args, **kwargs)
    return slowed


for _name in ("exp", "sin", "add", "multiply", "maximum", "softmax", "sum", "mean", "max"):
    globals()[_name] = _slowed(getattr(numpy_ops_v2, _name))
