"""Throughput of a fixed conformance workload on every ready target.

    python benchmarks/throughput.py [--examples N] [--targets a,b] [--floatx float32]

Workload: the ops in WORKLOAD (one or two per family), seed 2026, N examples per op,
no shrinking. Prints per target: examples/s (examples over that target's time inside
the backend), backend seconds; for the harness: seconds in generation, reference,
transport (pool call wall minus the slowest backend), comparison, pairwise and
recording, and the harness share of wall time; for the run: wall time, worker
startup, and CPU utilisation over the machine's cores.
"""
from __future__ import annotations

import argparse
import os
import resource
import time

from conformance import catalog, envs, targets as targets_mod
from conformance.engine import Engine, RunSettings
from conformance.pool import Pool
from conformance.probe import resolve_interpreters

WORKLOAD = ["exp", "tanh", "add", "maximum", "relu", "softmax", "sum", "mean", "argmax",
            "matmul", "reshape", "concatenate", "conv", "max_pool", "binary_crossentropy"]


def cpu_seconds() -> float:
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)  # workers, once they exit
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--examples", type=int, default=20)
    parser.add_argument("--targets", help="comma-separated target ids (default: all ready)")
    parser.add_argument("--floatx", default="float32")
    options = parser.parse_args()

    selected = targets_mod.select(targets_mod.BUILTIN_TARGETS,
                                  options.targets.split(",") if options.targets else None)
    pythons, missing = resolve_interpreters(selected, envs.BUILTIN_ENVS)
    for status in missing:
        print(f"skipping {status.id}: {status.reason} ({status.fix})")
    ops = [op for op in catalog.all_ops() if op.name in WORKLOAD]
    cpu_before, wall_before = cpu_seconds(), time.perf_counter()
    with Pool([t for t in selected if t.id in pythons], pythons) as pool:
        startup_started = time.perf_counter()
        pool.use_floatx(options.floatx)
        startup = time.perf_counter() - startup_started
        engine = Engine(pool, RunSettings(seed=2026, max_examples=options.examples,
                                          shrink_calls=0))
        work_started = time.perf_counter()
        for op in ops:
            engine.check(op, options.floatx)
        work = time.perf_counter() - work_started
        ready = pool.ready
    wall = time.perf_counter() - wall_before
    cpu = cpu_seconds() - cpu_before
    report(engine.timings, ready, ops, options, work, startup, wall, cpu)


def report(timings, ready, ops, options, work, startup, wall, cpu) -> None:
    examples = timings["examples"]
    print(f"workload: {len(ops)} ops x {options.examples} examples at {options.floatx} "
          f"on {len(ready)} targets ({examples} examples each)")
    print(f"\n{'target':<20}{'examples/s':>12}{'backend s':>12}")
    for target_id in ready:
        backend = timings[f"backend:{target_id}"]
        print(f"{target_id:<20}{examples / backend if backend else float('inf'):>12.1f}"
              f"{backend:>12.2f}")
    slowest = timings["slowest_backend"]
    inside = sum(timings[k] for k in ("reference", "call", "compare", "pairwise"))
    phases = {
        "generation": timings["explore"] - inside,
        "reference": timings["reference"],
        "transport": timings["call"] - slowest,  # call wall beyond the slowest backend
        "comparison": timings["compare"],
        "pairwise": timings["pairwise"],
        "recording": timings["record"],
    }
    harness = sum(phases.values())
    print(f"\nharness seconds: " + ", ".join(f"{k} {v:.2f}" for k, v in phases.items()))
    print(f"harness share of the work wall time: {harness / work:.1%} "
          f"(harness {harness:.2f} s of {work:.2f} s; waiting on the slowest backend "
          f"{slowest:.2f} s; worker restarts and shrinking excluded)")
    cores = os.cpu_count() or 1
    print(f"run wall {wall:.1f} s (worker startup {startup:.1f} s), CPU {cpu:.1f} s, "
          f"utilisation {cpu / (wall * cores):.0%} of {cores} cores")


if __name__ == "__main__":
    main()
