"""The engine: one op at one floatx, every target, hypothesis-driven.

1. Explore: hypothesis draws the case's examples (in the parent); they go, with
   byte-identical inputs, to every ready target, each target working through them at
   its own pace; the float64 reference is computed once per example. Exploration
   never fails, so one target's divergence never reduces what the others are tested on.
2. Shrink: for each divergent (op, target), a second hypothesis search on that target
   alone, with the same seed, looks for the same verdict and shrinks it to a minimal
   counterexample. Every target's outputs on that minimal input are then recorded.
"""
from __future__ import annotations

import time
import zlib
from collections import Counter
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from hypothesis import HealthCheck, Phase, given, seed, settings
from hypothesis.errors import HypothesisException

from conformance import compare, corpus, known, overrides, protocol, strategies, structure
from conformance.catalog import Context, Op

# examples explored per (op, floatx); shrink budget in backend calls; whether shapes
# come from the short menu in strategies.SHAPE_MENU (fast: shapes are reused and JAX
# compiles per shape) or are built axis by axis (thorough: more distinct shapes)
PROFILES = {
    "smoke": {"max_examples": 4, "shrink_calls": 25, "reuse_shapes": True},
    "default": {"max_examples": 25, "shrink_calls": 100, "reuse_shapes": True},
    "thorough": {"max_examples": 200, "shrink_calls": 400, "reuse_shapes": False},
}
INLINE_LIMIT = 64  # arrays up to this many elements are stored whole in the JSON record
MAX_SAVED = 8  # counterexamples kept per (op, floatx) in the example database
# Divergences in the known registry were investigated already: no shrink search, their
# first divergent example is recorded as the counterexample (unshrunk). They are many,
# and searching each again would cost backend calls that tell nothing new.
KNOWN_SHRINK_CALLS = 0
# A target that crashed or timed out on this many examples of a case gets no more of
# them: each would cost a worker restart (seconds) or a whole timeout, and the verdict
# is already a crash / timeout (see Pool.submit_many).
GIVE_UP_AFTER = 3


@dataclass
class RunSettings:
    seed: int
    max_examples: int
    shrink_calls: int
    registry: list = field(default_factory=list)
    out_dir: Path | None = None
    # Minimal counterexamples are kept here and replayed first by the next run.
    example_db: Path | None = None
    reuse_shapes: bool = True  # see strategies.SHAPE_MENU
    pipelined: bool = True  # targets work through a case's examples at their own pace
    # Cases queued ahead (needs `pipelined`; 0: none): the next cases' examples are
    # drawn and queued on the targets before this case is compared and shrunk, so a
    # target that is done with this case goes on with the next ones instead of idling
    # while the slowest target, or the shrink, finishes it. Shrink steps and
    # counterexamples go before queued cases (see pool._Gate).
    lookahead: int = 3


@dataclass
class _Exploration:
    """A case's examples, queued on every active target; replies arrive in futures.
    The last `replayed` examples come from the example database: judged apart, so that
    what an earlier run saved never changes this run's verdicts."""
    case: tuple  # (op name, floatx, target ids)
    examples: list
    requests: dict  # target id -> its request frames (packed), one per example
    futures: dict  # target id -> Future of its list of replies (pipelined runs)
    replayed: int = 0
    rows: list = field(default_factory=list)  # the structural row of each example


def _case_key(op, floatx, active) -> tuple:
    """What lookahead queued, to be matched by the case that takes it."""
    return (op.name, floatx, tuple(t.id for t in active))


class _BudgetSpent(BaseException):
    """Raised inside the shrink search when its backend calls are spent. A
    BaseException, so hypothesis stops at once instead of treating it as a failure
    (letting every further candidate pass would keep its shrinker drawing and
    discarding candidates, milliseconds of parent CPU each)."""


class _Reproduced(Exception):
    """Raised inside the shrink search when the target shows the verdict again."""


def _settings(max_examples: int, phases) -> settings:
    return settings(max_examples=max_examples, deadline=None, database=None, phases=phases,
                    suppress_health_check=list(HealthCheck), print_blob=False,
                    report_multiple_bugs=False)


def op_seed(run_seed: int, op: Op, floatx: str) -> int:
    """Seed per (op, floatx): selecting a subset of ops replays the same examples."""
    return zlib.crc32(f"{run_seed}/{op.name}/{floatx}".encode())


def encode_array(array) -> dict:
    """A JSON-able view of an array: whole when small, summarised when large."""
    array = np.asarray(array)
    record = {"dtype": str(array.dtype), "shape": list(array.shape)}
    if array.dtype.kind not in "biuf":  # complex, say: values as text (JSON has no complex)
        record["head"] = [str(v) for v in array.ravel()[:16]]
    elif array.size <= INLINE_LIMIT:
        record["values"] = array.tolist()
    else:
        flat = array.astype("float64").ravel()
        finite = flat[np.isfinite(flat)]
        record["head"] = array.ravel()[:16].tolist()
        if finite.size:
            record.update(min=float(finite.min()), max=float(finite.max()),
                          mean=float(finite.mean()))
    return record


def _encode_structure(value):
    """Positional/keyword arguments as JSON: arrays become array records, in order."""
    if isinstance(value, np.ndarray):
        return encode_array(value)
    if isinstance(value, dict):
        return {k: _encode_structure(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_encode_structure(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    return value


def _argument_names(args, example: dict):
    """Positional arguments by input name (arrays taken from the example), in order."""
    names = {id(v): k for k, v in example.items() if isinstance(v, np.ndarray)}
    if isinstance(args, np.ndarray):
        return names.get(id(args)) or encode_array(args)
    if isinstance(args, (list, tuple)):
        return [_argument_names(a, example) for a in args]
    return _encode_structure(args)


def _draw(strategy, count: int, case_seed: int) -> list:
    """`count` examples of `strategy` from one seeded hypothesis search (fewer when the
    strategy has fewer distinct examples)."""
    examples = []

    def collect(example):
        examples.append(example)

    _settings(count, [Phase.generate])(seed(case_seed)(given(strategy)(collect)))()
    return examples


def _row(exploration, index) -> dict:
    """The structural row example `index` was drawn under ({} for free draws)."""
    return exploration.rows[index] if index < len(exploration.rows) else {}


def _replayed_fields(aggregate) -> dict:
    """The example database's examples of a case, judged apart ({} when there were none)."""
    if aggregate is None or not aggregate.examples:
        return {}
    return {"replayed": {"examples": aggregate.examples, "status": aggregate.status,
                         "message": aggregate.message, "worst_ratio": aggregate.worst_ratio}}


class Engine:
    def __init__(self, pool, run: RunSettings, writer=None):
        self.pool = pool
        self.run = run
        self.writer = writer
        # Seconds per harness phase (benchmarks/throughput.py reads these):
        # explore = hypothesis drawing the examples; call = waiting for the targets' replies.
        self.timings = Counter()
        self._queued: dict[tuple, _Exploration] = {}  # the next cases, queued by lookahead

    @contextmanager
    def _clock(self, phase: str):
        """Wall seconds of `phase`, and the CPU seconds the calling thread spent in it
        (`cpu:<phase>`: on a busy machine, wall time includes waiting for a core)."""
        started, cpu_started = time.perf_counter(), time.thread_time()
        try:
            yield
        finally:
            self.timings[phase] += time.perf_counter() - started
            self.timings[f"cpu:{phase}"] += time.thread_time() - cpu_started

    # -- one (op, floatx) ---------------------------------------------------
    def check(self, op: Op, floatx: str, upcoming=()) -> list[dict]:
        """Run one op at one floatx on every ready target; write and return the records.

        `upcoming`: the ops of the next cases at the same floatx, nearest first, as far
        as the caller knows them (a list). The first RunSettings.lookahead of them are
        queued on the targets before this case is compared and shrunk.
        """
        strategies.reuse_shapes(self.run.reuse_shapes)
        records = []
        for target in self._targets():
            if op.call_for(target.flavor) is None:
                records.append(self._record(op, target.id, floatx, status="unsupported",
                                            message=f"not available in the {target.flavor} flavor"))
        active = self._active(op)
        if active:
            records += self._check_active(op, floatx, active, upcoming)
        for record in records:
            self._write("result", record)
        return records

    def _targets(self):
        return [self.pool.targets[tid] for tid in self.pool.ready]

    def _active(self, op):
        return [t for t in self._targets() if op.call_for(t.flavor) is not None]

    def _check_active(self, op, floatx, active, upcoming=()) -> list[dict]:
        contexts = self.contexts(active, floatx)
        aggregates = {t.id: compare.Aggregate() for t in active}
        replayed = {t.id: compare.Aggregate() for t in active}  # the database's examples
        pairs = {}
        started = time.perf_counter()
        exploration = self._explore(op, floatx, active)
        if self.run.pipelined:
            self._queue_next(upcoming[:self.run.lookahead], floatx)
        examples = exploration.examples
        drawn = len(examples) - exploration.replayed
        replies_by_target, refs_by_example = self._gather(op, exploration, active, contexts)
        for index, example in enumerate(examples):
            replies = {tid: replies[index] for tid, replies in replies_by_target.items()}
            refs = refs_by_example[index]
            memo = {}  # allowed errors per reference, shared by the targets (Tolerance.errors)
            into = aggregates if index < drawn else replayed
            with self._clock("compare"):
                for target in active:
                    if replies[target.id].get("status") == "skipped":  # see GIVE_UP_AFTER
                        into[target.id].skipped += 1
                        continue
                    verdict = compare.judge(op, target.id, floatx, example, replies[target.id],
                                            refs[target.id], memo)
                    aggregate = into[target.id]
                    aggregate.add(verdict, replies[target.id].get("backend_s", 0.0))
                    if verdict.status in compare.DIVERGENT and aggregate.first_failure is None:
                        aggregate.first_failure = {"example": example, "verdict": verdict,
                                                   "row": _row(exploration, index)}
            if index < drawn:
                with self._clock("pairwise"):
                    compare.pairwise(op, floatx, example, replies, refs, pairs, memo)
        elapsed = time.perf_counter() - started
        self.timings["examples"] += len(examples)
        # One target after the other: under CPython 3.11 hypothesis's ast.parse fails
        # when two threads call it ("AST constructor recursion depth mismatch"), so
        # shrink searches side by side would lose cases.
        with self._clock("shrink"):
            counterexamples = {
                t.id: self._shrink(op, floatx, t, aggregates[t.id], active, contexts)
                for t in active if aggregates[t.id].status in compare.DIVERGENT}
        records = []
        for target in active:
            aggregate = aggregates[target.id]
            counterexample = counterexamples.get(target.id)
            records.append(self._record(
                op, target.id, floatx, status=aggregate.status, message=aggregate.message,
                examples=aggregate.examples, counts=aggregate.counts,
                max_abs_err=aggregate.max_abs_err, max_ulp=aggregate.max_ulp,
                worst_ratio=aggregate.worst_ratio, ratios=aggregate.ratios,
                backend_s=round(aggregate.backend_s, 4), counterexample=counterexample,
                wall_s=round(elapsed, 3), **({"skipped": aggregate.skipped} if aggregate.skipped else {}),
                **({"conventions": aggregate.conventions} if aggregate.conventions else {}),
                **({"specials": aggregate.specials} if aggregate.specials else {}),
                **_replayed_fields(replayed.get(target.id))))
        self._write("pairwise", {"op": op.name, "family": op.family, "floatx": floatx,
                                 "pairs": pairs})
        return records

    def _draw_examples(self, op, floatx) -> tuple[list[dict], list[dict]]:
        """The examples hypothesis generates for this case, fixed by the case's seed
        alone: one per row of the op's structural covering set (the row's structural
        values pinned, everything else drawn), then max_examples free draws; and the
        row each example was drawn under ({} for the free ones). Exploration never
        fails a test, so nothing that the backends answer can change what is drawn:
        drawing first and calling after gives the same examples."""
        case_seed = op_seed(self.run.seed, op, floatx)
        examples, rows = [], []
        for index, row in enumerate(structure.rows(op.structure)):
            # A search of its own per row: hypothesis requires a strategy to draw the
            # same way for the same choices within one search. Its first example is the
            # simplest one (all choices minimal); the second is a random draw.
            with structure.fixed(row):
                drawn = _draw(op.inputs(floatx), 2, case_seed + index + 1)
            examples.append(drawn[-1])
            rows.append(row)
        free = _draw(op.inputs(floatx), self.run.max_examples, case_seed)
        return examples + free, rows + [{}] * len(free)

    def _explore(self, op, floatx, active) -> _Exploration:
        """The case's examples, queued on every active target: taken from lookahead
        when it queued this very case for these targets, else drawn and queued now."""
        case = _case_key(op, floatx, active)
        queued = self._queued.pop(case, None)
        return queued if queued is not None else self._draw_and_submit(op, floatx, active, case)

    def _queue_next(self, ops, floatx) -> None:
        """Draw the next cases' examples and queue them behind this case's, in order:
        targets that finish this case go on with them while it is compared and shrunk.
        A queued case that is no longer among the next ones is forgotten."""
        wanted = {}
        for op in ops:
            active = self._active(op)
            if active:  # else nothing to run
                wanted[_case_key(op, floatx, active)] = (op, active)
        self._queued = {case: q for case, q in self._queued.items() if case in wanted}
        for case, (op, active) in wanted.items():
            if case not in self._queued:  # else queued already (by an earlier case, a retry)
                self._queued[case] = self._draw_and_submit(op, floatx, active, case)

    def _draw_and_submit(self, op, floatx, active, case) -> _Exploration:
        with self._clock("explore"):
            examples, rows = self._draw_examples(op, floatx)
        saved = self._saved_examples(op, floatx)
        exploration = self._submit(op, examples + saved, active, case, GIVE_UP_AFTER)
        exploration.replayed = len(saved)
        exploration.rows = rows + [{}] * len(saved)
        return exploration

    def _submit(self, op, examples, active, case=None, give_up_after=None,
                queue=True) -> _Exploration:
        """The examples' requests, queued on the targets' lanes when `queue` (and the
        run is pipelined); else they are sent by _gather, by direct calls."""
        requests = self._frames(op, examples, active)
        queued = queue and self.run.pipelined
        futures = self.pool.submit_many(requests, give_up_after) if queued else {}
        return _Exploration(case, examples, requests, futures)

    @staticmethod
    def _frames(op, examples, active) -> dict:
        """Each target's requests by target id, packed once per flavor: targets of one
        flavor (the five Keras 3 ones, say) get the same bytes, sent as they are."""
        by_flavor = {}
        for target in active:
            if target.flavor not in by_flavor:
                call = op.call_for(target.flavor)
                by_flavor[target.flavor] = [protocol.pack(call.request(e)) for e in examples]
        return {target.id: by_flavor[target.flavor] for target in active}

    def _gather(self, op, exploration, active, contexts):
        """Every target's replies to the exploration's examples, and one reference per
        (example, distinct epsilon), computed while the targets work."""
        examples = exploration.examples
        refs_by_example = self._references(op, examples, active, contexts)
        with self._clock("call"):
            if exploration.futures:
                replies = {tid: future.result() for tid, future in exploration.futures.items()}
            else:  # lock-step direct calls (unpipelined runs, and counterexamples)
                requests = exploration.requests
                answered = [self.pool.call({tid: batch[i] for tid, batch in requests.items()})
                            for i in range(len(examples))]
                replies = {tid: [a[tid] for a in answered] for tid in requests}
        self._count_backend(replies)
        return replies, refs_by_example

    def contexts(self, active, floatx) -> dict:
        """What each target's references depend on: floatx and the epsilon it reports."""
        return {t.id: Context(floatx, self.pool.epsilon(t.id)) for t in active}

    def fan_out(self, op, examples, active, contexts):
        """All examples to every active target, waiting for the replies (no lookahead):
        ({target id: [reply per example]}, [{target id: references} per example])."""
        return self._gather(op, self._submit(op, examples, active), active, contexts)

    def _fan_out_now(self, op, examples, active, contexts):
        """Examples to every target by direct calls, which go before the cases
        lookahead queued (a counterexample waits for none of them)."""
        return self._gather(op, self._submit(op, examples, active, queue=False), active, contexts)

    def _references(self, op, examples, active, contexts) -> list[dict]:
        """One reference per (example, distinct epsilon), by target id."""
        wanted = {t.id: contexts[t.id] for t in active}
        with self._clock("reference"):
            return [compare.references(op, example, wanted) for example in examples]

    def _count_backend(self, replies) -> None:
        seconds = {tid: [r.get("backend_s", 0.0) for r in batch] for tid, batch in replies.items()}
        for target_id, values in seconds.items():
            self.timings[f"backend:{target_id}"] += sum(values)
            self.timings[f"backend_cpu:{target_id}"] += sum(
                r.get("backend_cpu_s", 0.0) for r in replies[target_id])
        if self.run.pipelined:  # side by side: the slowest target's total
            slowest = max((sum(v) for v in seconds.values()), default=0.0)
        else:  # lock-step: each example's slowest target
            slowest = sum(max(per_example) for per_example in zip(*seconds.values()))
        self.timings["slowest_backend"] += slowest

    # -- shrinking -------------------------------------------------------------
    def _shrink_budget(self, op, floatx, target, verdict) -> int:
        """Backend calls the shrink may spend: crashes and hangs cost a restart or a
        timeout per call; a divergence in the known registry gets KNOWN_SHRINK_CALLS."""
        if verdict in ("crash", "timeout"):
            return min(5, self.run.shrink_calls)
        if known.lookup(self.run.registry, op.name, target.id, floatx, verdict) is not None:
            return min(KNOWN_SHRINK_CALLS, self.run.shrink_calls)
        return self.run.shrink_calls

    def _shrink(self, op, floatx, target, aggregate, active, contexts) -> dict:
        """Find the same verdict again on this target alone and shrink it."""
        wanted = aggregate.status
        budget = self._shrink_budget(op, floatx, target, wanted)
        state = {"calls": 0, "last": None}
        call = op.call_for(target.flavor)
        ctx = contexts[target.id]

        @_settings(self.run.max_examples, [Phase.generate, Phase.shrink])
        @seed(op_seed(self.run.seed, op, floatx))
        @given(op.inputs(floatx))
        def probe(example):
            if state["calls"] >= budget:
                raise _BudgetSpent()
            state["calls"] += 1
            reply = self.pool.call({target.id: call.request(example)})[target.id]
            verdict = compare.judge(op, target.id, floatx, example, reply,
                                    op.references(example, ctx))
            if verdict.status == wanted:
                state["last"] = {"example": example, "verdict": verdict}
                raise _Reproduced()

        try:
            if budget > 0:
                with structure.fixed(aggregate.first_failure.get("row")):
                    probe()
        except (_Reproduced, _BudgetSpent, HypothesisException, BaseExceptionGroup):
            pass  # the last reproduction recorded is the smallest hypothesis found
        found = state["last"] or aggregate.first_failure
        self._remember(op, floatx, found["example"])
        return self._counterexample(op, floatx, target, found, active, contexts,
                                    shrunk=state["last"] is not None, calls=state["calls"])

    def _saved_examples(self, op, floatx) -> list[dict]:
        db = self.run.example_db
        if db is None or not (Path(db) / f"{corpus.file_stem(op.name, floatx)}.json").exists():
            return []
        try:
            return corpus.load(Path(db), corpus.file_stem(op.name, floatx))
        except corpus.CorpusError:
            return []  # a damaged database entry is skipped, never trusted

    def _remember(self, op, floatx, example) -> None:
        """Add a counterexample to the example database (the newest MAX_SAVED kept)."""
        if self.run.example_db is None:
            return
        saved = self._saved_examples(op, floatx)
        if corpus.digest([example]) in {corpus.digest([s]) for s in saved}:
            return
        Path(self.run.example_db).mkdir(parents=True, exist_ok=True)
        corpus.save(Path(self.run.example_db), op.name, floatx, (saved + [example])[-MAX_SAVED:])

    def _counterexample(self, op, floatx, target, found, active, contexts, shrunk, calls):
        example, verdict = found["example"], found["verdict"]
        batches, refs_by_example = self._fan_out_now(op, [example], active, contexts)
        replies = {tid: batch[0] for tid, batch in batches.items()}
        refs = refs_by_example[0]
        outputs = {}
        for tid, reply in replies.items():
            if reply.get("status") == "ok":
                outputs[tid] = {"status": "ok", "outputs": [encode_array(o) for o in reply["outputs"]]}
            else:
                outputs[tid] = {"status": reply.get("status"),
                                "message": str(reply.get("message", ""))[:500]}
        call = op.call_for(target.flavor)
        args, kwargs = call.arguments(example)
        record = {
            "target": target.id, "verdict": verdict.status, "message": verdict.message,
            "shrunk": shrunk, "shrink_calls": calls, "worst_index": verdict.worst_index,
            "inputs": {k: encode_array(v) if isinstance(v, np.ndarray) else v
                       for k, v in example.items()},
            "reference": [encode_array(r) for r in refs[target.id]],
            "outputs": outputs,
            "call": {"fn": call.fn, "args": _argument_names(args, example),
                     "kwargs": _encode_structure(kwargs),
                     **({"wrt": list(call.wrt), "cotangents": list(call.cotangents)}
                        if call.wrt else {})},
            "tolerance": op.tolerance.formula,
        }
        if self.run.out_dir is not None:
            record["arrays"] = self._save_arrays(op, floatx, target.id, example, refs[target.id],
                                                 replies)
        return record

    def _save_arrays(self, op, floatx, target_id, example, refs, replies) -> str:
        """Full-precision arrays of a counterexample, for repro scripts (.npz)."""
        folder = Path(self.run.out_dir) / "counterexamples"
        folder.mkdir(parents=True, exist_ok=True)
        arrays = {f"input_{k}": v for k, v in example.items() if isinstance(v, np.ndarray)}
        arrays.update({f"reference_{i}": r for i, r in enumerate(refs)})
        for tid, reply in replies.items():
            for i, out in enumerate(reply.get("outputs") or []):
                arrays[f"output_{tid}_{i}"] = out
        path = folder / f"{op.name}-{target_id}-{floatx}.npz"
        np.savez(path, **arrays)
        return str(path.relative_to(self.run.out_dir))

    def _record(self, op, target_id, floatx, status, **fields) -> dict:
        record = {"op": op.name, "family": op.family, "target": target_id, "floatx": floatx,
                  "status": status, "verdict": status, "tolerance": op.tolerance.formula}
        record.update(fields)
        scale, reasons = overrides.factor(op.name, target_id, floatx)
        if reasons:
            record["override"] = {"factor": scale, "reasons": reasons}
        return known.mark(record, self.run.registry, compare.DIVERGENT)

    def _write(self, kind, record) -> None:
        if self.writer is not None:
            with self._clock("record"):
                self.writer.write(kind, record)
