"""Worker round-trip latency on the keras3-numpy target.

    python benchmarks/roundtrip.py [--repeat N]

Prints the median and p90 round trip, in microseconds, for a no-op (`ping`) and for a
`keras.ops.copy` call on 1 KiB and 1 MiB float32 arrays (array out and back).
Goal (issue 2): median no-op round trip under 100 microseconds.

`--pin` puts the harness and the worker on one CPU: the figure then shows the
harness's own cost, without the cross-core wake-up latency of the machine (on our
2-core VMs a bare Python pipe ping-pong costs ~67 us across cores, ~7 us on one).
"""
import os
import argparse
import statistics
import time

import numpy as np

from conformance import envs, targets
from conformance.pool import Pool


def measure(worker, request, repeat):
    samples = []
    for _ in range(repeat):
        started = time.perf_counter()
        reply = worker.call(request)
        samples.append((time.perf_counter() - started) * 1e6)
        assert reply["status"] == "ok", reply
    samples.sort()
    return statistics.median(samples), samples[int(0.9 * len(samples))]


def main():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=2000)
    parser.add_argument("--pin", action="store_true", help="run everything on CPU 0")
    options = parser.parse_args()
    repeat = options.repeat
    if options.pin:
        os.sched_setaffinity(0, {0})  # inherited by the worker
    spec = envs.BUILTIN_ENVS["keras3"]
    if not envs.is_provisioned(spec):
        raise SystemExit("keras3 environment missing: run `conformance envs sync keras3`")
    target = targets.BUILTIN_TARGETS["keras3-numpy"]
    with Pool([target], {target.id: str(envs.env_python(spec))}) as pool:
        pool.use_floatx("float32")
        worker = pool.workers[target.id]
        cases = [("no-op (ping)", {"cmd": "ping"}, repeat)]
        for label, n_bytes in [("1 KiB copy", 1024), ("1 MiB copy", 1 << 20)]:
            array = np.ones(n_bytes // 4, dtype="float32")
            cases.append((label, {"cmd": "call", "fn": "keras.ops.copy", "args": [array],
                                  "kwargs": {}}, repeat if n_bytes < 1e5 else repeat // 10))
        print(f"{'case':<14}{'median us':>12}{'p90 us':>12}{'n':>8}")
        for label, request, n in cases:
            measure(worker, request, 20)  # warm-up
            median, p90 = measure(worker, request, n)
            print(f"{label:<14}{median:>12.1f}{p90:>12.1f}{n:>8}")


if __name__ == "__main__":
    main()
