"""Throughput of a fixed conformance workload on every ready target.

    python benchmarks/throughput.py [--examples N] [--targets a,b] [--floatx float32]
    python benchmarks/throughput.py --compare [--floatx float32,float64] ...
    python benchmarks/throughput.py --predrawn [--floatx float32,float64] ...

Workload: the ops in WORKLOAD (one or two per family), seed 2026, N examples per op,
no shrinking. Prints per target: examples/s (examples over that target's time inside
the backend), backend seconds (wall, in the worker) and backend CPU seconds (the
worker process, its threads included: wall counts waiting for a core); for the harness:
CPU seconds in generation, reference, comparison, pairwise and recording (the main
thread), transport and bookkeeping (the rest of the process: the pool's threads
framing and waking up, the engine's own work), and the harness share of the work's
wall time; for the run: wall time, worker startup, and CPU utilisation over the
machine's cores.

The harness share is the harness process's CPU seconds over the wall seconds of the
work. Its threads overlap the backends (drawing the next case while the targets run
this one), so wall-clock phase times would count waiting for a core, or for a
backend, as harness time; they are printed too, for comparison.

--compare runs the same workload twice in one invocation, each floatx in turn:
"before" as the harness ran until issue 8 (shapes built axis by axis, a fresh worker
per floatx, no persistent JAX compile cache, every example waiting for the slowest
target, no lookahead) and "after" (shapes from strategies.SHAPE_MENU, workers switched
to the next floatx in place, targets working through a case at their own pace, the
next case queued while this one is compared, JAX's persistent cache in a fresh
folder, so the figure is a first run's, not a warm cache's).

--predrawn runs the workload twice too: as it runs ("current"), then with every
case's examples drawn before the clock starts ("predrawn"). The harness's CPU share
counts drawing in full; the difference in work wall time is what drawing costs the
run in wall time, where it overlaps the backends (lookahead) or competes with them
for the cores.
"""
from __future__ import annotations

import argparse
import os
import resource
import tempfile
import time

from conformance import catalog, envs, strategies, targets as targets_mod
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
    parser.add_argument("--floatx", default="float32",
                        help="comma-separated; each floatx runs the workload in turn")
    parser.add_argument("--compare", action="store_true",
                        help="run 'before' (issue 8) and 'after' side by side")
    parser.add_argument("--predrawn", action="store_true",
                        help="run as usual, then with the examples drawn before the clock")
    options = parser.parse_args()
    if options.compare and options.predrawn:
        parser.error("--compare and --predrawn each run two variants: choose one")

    selected = targets_mod.select(targets_mod.BUILTIN_TARGETS,
                                  options.targets.split(",") if options.targets else None)
    pythons, missing = resolve_interpreters(selected, envs.BUILTIN_ENVS)
    for status in missing:
        print(f"skipping {status.id}: {status.reason} ({status.fix})")
    runnable = [t for t in selected if t.id in pythons]
    ops = [op for op in catalog.all_ops() if op.name in WORKLOAD]
    floatxs = options.floatx.split(",")
    variants = (["before", "after"] if options.compare
                else ["current", "predrawn"] if options.predrawn else ["current"])
    for variant in variants:
        print(f"\n=== {variant}")
        with tempfile.TemporaryDirectory(prefix="jax-cache-") as jax_cache:
            measure(variant, runnable, pythons, ops, floatxs, options, jax_cache)


def measure(variant, runnable, pythons, ops, floatxs, options, jax_cache) -> None:
    cpu_before, wall_before = cpu_seconds(), time.perf_counter()
    reuse = variant != "before"
    with Pool(runnable, pythons) as pool:
        pool.switch_in_place = reuse
        if variant == "before":
            pool.worker_env = {"JAX_COMPILATION_CACHE_DIR": None}
        elif variant == "after":
            pool.worker_env = {"JAX_COMPILATION_CACHE_DIR": jax_cache}
        engine = Engine(pool, RunSettings(seed=2026, max_examples=options.examples,
                                          shrink_calls=0, reuse_shapes=reuse,
                                          pipelined=reuse,
                                          **({} if reuse else {"lookahead": 0})))
        if variant == "predrawn":
            draw_before_the_clock(engine, ops, floatxs)
        startups, work, harness_cpu = [], 0.0, 0.0
        for floatx in floatxs:
            started = time.perf_counter()
            pool.use_floatx(floatx)
            startups.append(time.perf_counter() - started)
            started, cpu_started = time.perf_counter(), time.process_time()
            for index, op in enumerate(ops):
                engine.check(op, floatx, ops[index + 1:])
            work += time.perf_counter() - started
            harness_cpu += time.process_time() - cpu_started  # this process, all threads
        ready = pool.ready
    wall = time.perf_counter() - wall_before
    cpu = cpu_seconds() - cpu_before
    report(engine.timings, ready, ops, options, work, harness_cpu, startups, wall, cpu)


def draw_before_the_clock(engine, ops, floatxs) -> None:
    """The examples every case will draw, drawn now: the engine then looks them up."""
    strategies.reuse_shapes(engine.run.reuse_shapes)
    drawn = {(op.name, floatx): engine._draw_examples(op, floatx)
             for floatx in floatxs for op in ops}
    engine._draw_examples = lambda op, floatx: drawn[(op.name, floatx)]


def report(timings, ready, ops, options, work, harness_cpu, startups, wall, cpu) -> None:
    examples = timings["examples"]
    print(f"workload: {len(ops)} ops x {options.examples} examples at {options.floatx} "
          f"on {len(ready)} targets ({examples} examples each)")
    print(f"\n{'target':<20}{'examples/s':>12}{'backend s':>12}{'backend CPU s':>15}")
    for target_id in ready:
        backend = timings[f"backend:{target_id}"]
        print(f"{target_id:<20}{examples / backend if backend else float('inf'):>12.1f}"
              f"{backend:>12.2f}{timings[f'backend_cpu:{target_id}']:>15.2f}")
    main_phases = {"generation": "explore", "reference": "reference", "comparison": "compare",
                   "pairwise": "pairwise", "recording": "record"}
    cpu_phases = {name: timings[f"cpu:{key}"] for name, key in main_phases.items()}
    cpu_phases["transport and bookkeeping"] = max(0.0, harness_cpu - sum(cpu_phases.values()))
    print("\nharness CPU seconds: " + ", ".join(f"{k} {v:.2f}" for k, v in cpu_phases.items()))
    print(f"harness share of the work wall time: {harness_cpu / work:.1%} "
          f"(harness process CPU {harness_cpu:.2f} s of {work:.2f} s wall; shrinking excluded)")
    walls = {name: timings[key] for name, key in main_phases.items()}
    print("wall-clock seconds of the same phases: " + ", ".join(f"{k} {v:.2f}" for k, v in walls.items())
          + f"; waiting for replies {timings['call']:.2f}, slowest target's backend total "
          f"{timings['slowest_backend']:.2f}")
    cores = os.cpu_count() or 1
    startup = " + ".join(f"{s:.1f}" for s in startups)
    print(f"run wall {wall:.1f} s (worker startup per floatx {startup} s), CPU {cpu:.1f} s, "
          f"utilisation {cpu / (wall * cores):.0%} of {cores} cores")


if __name__ == "__main__":
    main()
