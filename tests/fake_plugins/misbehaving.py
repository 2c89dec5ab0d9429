"""An ops-module plugin whose functions misbehave in every way a worker must survive."""
import ctypes
import os
import sys
import time

import numpy as np


def add(x1, x2):
    return np.add(x1, x2)


def segfault(x):
    ctypes.string_at(0)  # reads address 0: SIGSEGV


def hang(x):
    time.sleep(3600)


def exit_now(x):
    os._exit(3)


def sys_exit(x):
    sys.exit(4)


def noisy(x):
    print("garbage on stdout from print")
    os.write(1, b"KCgarbage written to fd 1\n")
    return x


def sleep_then_add(x1, x2):
    time.sleep(float(x2.ravel()[0]))
    return np.add(x1, x2)


def not_implemented(x):
    raise NotImplementedError("not in this backend")


def raises(x):
    raise ValueError("bad value from backend <b>")
