"""An ops-module plugin whose `exp` never returns (its `log` answers): the worker is
left inside a plugin call, as with a backend stuck in a lock or a loop. It says on
stderr (the worker's log) when it is in there."""
import sys
import time

import numpy as np

INSIDE = "hanging_call: inside exp, which never returns"


def exp(x):
    print(INSIDE, file=sys.stderr, flush=True)
    time.sleep(3600)
    return np.exp(x)


log = np.log
