"""Verdicts: one backend reply against the float64 reference, then many examples folded,
and how far the targets are from each other on the same inputs.

Free functions, used by every run that judges replies (the run loop, baseline
replays): `references` (one float64 reference per distinct epsilon), `judge` (one
reply -> Verdict), `pairwise` (target x target agreement on one example).

Statuses, most severe first. `convention` is a gradient at a non-differentiable point
that is right but not the reference's choice (conformance.kinks), not a failure;
`unsupported` is coverage, not failure; `broken` means the target never started
(reported with the targets, not per op).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from conformance import kinks as kink_points
from conformance import overrides, specials
from conformance.tolerance import Tolerance, floor, once, ulp

SEVERITY = ["crash", "timeout", "error", "shape", "dtype", "nan", "fail", "convention",
            "unsupported", "broken", "pass"]
DIVERGENT = {"crash", "timeout", "error", "shape", "dtype", "nan", "fail"}
MAX_RATIOS = 200  # worst-ratio samples kept per (op, target, floatx) for histograms


def worse(a: str, b: str) -> str:
    return a if SEVERITY.index(a) <= SEVERITY.index(b) else b


@dataclass
class Verdict:
    """One example on one target."""

    status: str
    message: str = ""
    max_abs_err: float = 0.0
    max_ulp: float = 0.0
    worst_ratio: float = 0.0
    worst_index: list | None = None  # (output, flat index) of the worst element
    conventions: dict | None = None  # at kinks: label -> reference and values (conformance.kinks)
    specials: dict | None = None  # at special inputs: label -> reference and values (conformance.specials)


def _dtype_ok(actual: np.dtype, expected: str) -> bool:
    if expected == "int":
        return actual.kind in "iu"
    if expected == "bool":
        return actual.kind == "b"
    return actual == np.dtype(expected)


def _special_mismatch(out: np.ndarray, ref: np.ndarray, allowed: np.ndarray, floatx: str):
    """Elements whose NaN/inf pattern differs from the reference (rounded to floatx)."""
    big = float(np.finfo(floatx).max)
    with np.errstate(over="ignore", invalid="ignore"):
        ref_fx = ref.astype(floatx).astype("float64")  # overflow in floatx is expected inf
    nan_bad = np.isnan(out) != np.isnan(ref)
    out_inf, ref_inf = np.isinf(out), np.isinf(ref_fx)
    # Within the allowed error of the overflow threshold either side of the rounding is
    # acceptable; a reference that is infinite, or beyond the threshold by more than
    # that, is not "near": it must come back infinite.
    magnitude = np.abs(np.nan_to_num(ref))
    with np.errstate(over="ignore", invalid="ignore"):
        near_overflow = (np.isfinite(ref) & (magnitude + allowed >= big)
                         & (magnitude - allowed <= big))
    sign_bad = out_inf & ref_inf & (np.sign(out) != np.sign(ref_fx))
    inf_bad = (out_inf != ref_inf) & ~near_overflow & ~np.isnan(ref) & ~np.isnan(out)
    return nan_bad | inf_bad | sign_bad


def compare(outputs: list[np.ndarray], refs: list[np.ndarray], tolerance: Tolerance,
            example: dict, floatx: str, expected_dtypes: list[str],
            scale: float = 1.0, memo: dict | None = None, kinks: list = (),
            in_floatx: list | None = None) -> Verdict:
    """Judge one backend's outputs for one example (`memo`: see Tolerance.errors);
    elements at `kinks` (conformance.kinks) are judged as subgradients instead;
    `in_floatx` (NumPy's outputs computed in floatx) excuses an overflow NumPy has too."""
    if len(outputs) != len(refs):
        return Verdict("shape", f"{len(outputs)} outputs, expected {len(refs)}")
    for index, (out, ref) in enumerate(zip(outputs, refs)):
        if out.shape != ref.shape:
            return Verdict("shape", f"output {index}: shape {out.shape}, expected {ref.shape}")
    values = [o.astype("float64") if o.dtype.kind in "biuf" else o for o in outputs]
    if kinks:
        kink_points.mask_out(values, refs, kinks)
    if in_floatx is not None:
        _excuse_floatx_overflow(values, refs, in_floatx, floatx)
    verdict = _numbers(values, refs, tolerance, example, floatx, scale, memo)
    if kinks:
        finding = kink_points.judge(outputs, kinks, floatx)
        verdict.conventions = finding.conventions
        if finding.status != "pass" and worse(finding.status, verdict.status) == finding.status:
            verdict.status, verdict.message = finding.status, finding.message
    for index, (out, expected) in enumerate(zip(outputs, expected_dtypes)):
        if not _dtype_ok(out.dtype, expected):
            verdict.message = (f"output {index}: dtype {out.dtype}, expected {expected}; "
                               + verdict.message).rstrip("; ")
            verdict.status = "dtype"
    return verdict


def _excuse_floatx_overflow(values, refs, in_floatx, floatx) -> None:
    """Where NumPy computing in floatx gives another class of value (NaN, +inf, -inf,
    finite) than the float64 reference rounded to floatx, because an intermediate
    overflows or underflows (std of +-max, a cumulative product through tiny * tiny = 0
    then inf), a value of `values` (compare's float64 copies) equal to NumPy's is set to
    the reference's: both answers are right, the exact one and the one IEEE arithmetic
    in floatx gives."""
    for out, ref, numpy_fx in zip(values, refs, in_floatx):
        numpy_fx = np.asarray(numpy_fx, dtype="float64")
        if out.dtype.kind != "f" or not out.shape == ref.shape == numpy_fx.shape:
            continue
        with np.errstate(over="ignore", invalid="ignore"):
            ref_fx = ref.astype(floatx).astype("float64")
        same = (np.isnan(out) & np.isnan(numpy_fx)) | (out == numpy_fx)
        excused = same & (_value_class(numpy_fx) != _value_class(ref_fx))
        out[excused] = ref[excused]


def _value_class(values: np.ndarray) -> np.ndarray:
    """0 finite, 1 NaN, 2 +inf, 3 -inf."""
    return np.select([np.isnan(values), values == np.inf, values == -np.inf], [1, 2, 3], 0)


def _numbers(values, refs, tolerance, example, floatx, scale, memo) -> Verdict:
    verdict = Verdict("pass")
    pairs = tolerance.errors(example, values, refs, floatx, memo=memo)
    floor_ = floor(floatx)
    for index, ((error, allowed), out, ref) in enumerate(zip(pairs, values, refs)):
        allowed = allowed * scale  # the override table's widening, 1 for most ops
        if error.size == 0:
            continue
        if error.shape == ref.shape:  # value comparison: check the NaN/inf pattern first
            special = _special_mismatch(out, ref, allowed, floatx)
            if special.any():
                where = np.unravel_index(int(np.argmax(special)), ref.shape)
                verdict.status = worse(verdict.status, "nan")
                verdict.message = (f"output {index}[{', '.join(map(str, where))}]: "
                                   f"got {out[where]!r}, reference {ref[where]!r}")
            finite = np.isfinite(out) & np.isfinite(ref)
        else:  # backward error / statistics: a non-finite measure is itself a failure
            if not np.isfinite(error).all():
                verdict.status = worse(verdict.status, "fail")
                verdict.worst_ratio = float("inf")
                verdict.message = f"output {index}: non-finite error measure {error.ravel()[:4]}"
            finite = np.isfinite(error)
        if not finite.any():
            continue
        err = np.where(finite, error, 0.0)
        ratio = err / (allowed + floor_)
        worst = int(np.argmax(ratio))
        if ratio.flat[worst] > verdict.worst_ratio:
            verdict.worst_ratio = float(ratio.flat[worst])
            verdict.worst_index = [index, worst]
        verdict.max_abs_err = max(verdict.max_abs_err, float(err.max()))
        if error.shape == ref.shape:
            units = once(memo, ("ulp", id(ref)), lambda: ulp(ref, floatx))
            verdict.max_ulp = max(verdict.max_ulp, float((err / units).max()))
        if ratio.flat[worst] > 1.0 and verdict.status == "pass":
            verdict.status = "fail"
            verdict.message = (f"output {index}: error {err.flat[worst]:.3g} > allowed "
                               f"{allowed.flat[worst] + floor_:.3g} ({ratio.flat[worst]:.3g}x)")
    return verdict


@dataclass
class Aggregate:
    """All examples of one (op, target, floatx)."""

    status: str = "pass"
    examples: int = 0
    counts: dict = field(default_factory=dict)
    max_abs_err: float = 0.0
    max_ulp: float = 0.0
    worst_ratio: float = 0.0
    ratios: list = field(default_factory=list)
    message: str = ""
    backend_s: float = 0.0
    first_failure: dict | None = None  # the first divergent example, unshrunk
    skipped: int = 0  # examples not sent after repeated crashes (engine.GIVE_UP_AFTER)
    conventions: dict = field(default_factory=dict)  # at kinks, merged over the examples
    specials: dict = field(default_factory=dict)  # at special inputs, merged over the examples

    def add(self, verdict: Verdict, backend_s: float = 0.0) -> None:
        self.examples += 1
        self.counts[verdict.status] = self.counts.get(verdict.status, 0) + 1
        self.backend_s += backend_s
        self.max_abs_err = max(self.max_abs_err, verdict.max_abs_err)
        self.max_ulp = max(self.max_ulp, verdict.max_ulp)
        self.worst_ratio = max(self.worst_ratio, verdict.worst_ratio)
        if len(self.ratios) < MAX_RATIOS:
            self.ratios.append(round(verdict.worst_ratio, 6))
        kink_points.merge(self.conventions, verdict.conventions)
        specials.merge(self.specials, verdict.specials)
        if SEVERITY.index(verdict.status) < SEVERITY.index(self.status):
            self.status = verdict.status
            self.message = verdict.message


# -- replies judged against the reference ------------------------------------------
def references(op, example: dict, contexts: dict) -> dict:
    """The op's float64 references for one example by target id, computed once per
    distinct context (targets with the same floatx and epsilon share one)."""
    by_context, refs = {}, {}
    for target_id, context in contexts.items():
        if context not in by_context:
            by_context[context] = op.references(example, context)
        refs[target_id] = by_context[context]
    return refs


def judge(op, target_id: str, floatx: str, example: dict, reply: dict, refs: list,
          memo: dict | None = None) -> Verdict:
    """One target's reply to one example: an error reply keeps its status, outputs are
    compared with the references under the op's tolerance (widened only by the override
    table). `memo` shares allowed errors between targets judged against the same refs."""
    status = reply.get("status")
    if status != "ok":
        message = reply.get("message", "")
        if reply.get("error_type"):
            message = f"{reply['error_type']}: {message}"
        return Verdict(status if status in SEVERITY else "error", message[:500])
    expected = [op.expected_dtype(example, floatx, i) for i in range(len(refs))]
    scale, _ = overrides.factor(op.name, target_id, floatx)
    try:
        in_floatx = once(memo, ("in_floatx", op.name), lambda: op.floatx_reference(example)) \
            if op.floatx_reference else None
        verdict = compare(reply["outputs"], refs, op.tolerance, example, floatx, expected,
                          scale, memo, op.kinks(example) if op.kinks else (), in_floatx)
        if op.specials:
            verdict.specials = specials.observe(reply["outputs"], refs, op.specials(example),
                                                floatx, in_floatx)
        return verdict
    except Exception as exc:  # an odd output (e.g. a string array) is the backend's doing
        return Verdict("error", f"cannot compare output: {type(exc).__name__}: {exc}")


# -- targets against each other ------------------------------------------------------
def _real(reply: dict) -> bool:
    """An ok reply whose outputs are all real numbers: the pairwise table's (a complex
    output is judged, but float64 copies would drop its imaginary part)."""
    return reply.get("status") == "ok" and all(o.dtype.kind in "biuf" for o in reply["outputs"])


def _distances(as64: dict, a: str, partners: list, ref: list, bounds: list):
    """Target a's worst distance to each partner (outputs of the same shapes), in ULPs
    of a's reference and in units of its tolerance bound: ({partner: ulps},
    {partner: ratio}); a NaN where the other has none is an infinite ratio. NaN
    distances (a NaN bound) count as none, as Python's max() skips them."""
    worst_ulp, worst_ratio = np.zeros(len(partners)), np.zeros(len(partners))
    for index, (x64, r, (unit, bound)) in enumerate(zip(as64[a], ref, bounds)):
        if not partners or x64.size == 0 or r.shape != x64.shape:
            continue
        x = x64.reshape(1, -1)
        ys = np.stack([as64[b][index].reshape(-1) for b in partners])
        both = np.isfinite(x) & np.isfinite(ys)
        with np.errstate(invalid="ignore", over="ignore"):  # inf - inf where not `both`
            diff = np.where(both, np.abs(x - ys), 0.0)
        worst_ulp = np.fmax(worst_ulp, (diff / unit.reshape(1, -1)).max(axis=1))
        if bound is not None:
            worst_ratio = np.fmax(worst_ratio, (diff / bound.reshape(1, -1)).max(axis=1))
        worst_ratio[(np.isnan(x) != np.isnan(ys)).any(axis=1)] = np.inf
    return ({b: float(v) for b, v in zip(partners, worst_ulp)},
            {b: float(v) for b, v in zip(partners, worst_ratio)})


def pairwise(op, floatx: str, example: dict, replies: dict, refs: dict, pairs: dict,
             memo: dict | None = None) -> None:
    """Add one example to `pairs` ({"a|b": {examples, disagreements, max_ulp,
    max_ratio}}): target x target agreement on identical inputs, in ULPs of a's
    reference and in units of the two targets' summed tolerance bounds.

    Float64 copies and each reference's bounds are computed once per example, and each
    target is measured against all later ones at once: pair by pair, numpy's per-call
    cost on small arrays dominated."""
    ok = {tid: reply["outputs"] for tid, reply in replies.items() if _real(reply)}
    as64 = {tid: [o.astype("float64") for o in outputs] for tid, outputs in ok.items()}
    bounds = {}  # id(reference) -> [(ulp, bound or None)] per output

    def bounds_of(ref):
        if id(ref) not in bounds:
            errors = op.tolerance.errors(example, [r.astype("float64") for r in ref], ref,
                                         floatx, memo=memo)
            bounds[id(ref)] = [
                (once(memo, ("ulp", id(r)), lambda: ulp(r, floatx)),  # as compare's
                 2 * allowed + 2 * floor(floatx) if allowed.shape == r.shape else None)
                for r, (_, allowed) in zip(ref, errors)]
        return bounds[id(ref)]

    names = sorted(ok)
    for position, a in enumerate(names):
        later = names[position + 1:]
        shapes = [x.shape for x in ok[a]]
        alike = [b for b in later if [y.shape for y in ok[b]] == shapes]
        worst_ulp, worst_ratio = _distances(as64, a, alike, refs[a], bounds_of(refs[a]))
        for b in later:
            entry = pairs.setdefault(f"{a}|{b}", {"examples": 0, "disagreements": 0,
                                                   "max_ulp": 0.0, "max_ratio": 0.0})
            entry["examples"] += 1
            if b not in worst_ulp:  # another number of outputs, or other shapes
                entry["disagreements"] += 1
                continue
            entry["max_ulp"] = max(entry["max_ulp"], worst_ulp[b])
            entry["max_ratio"] = max(entry["max_ratio"], worst_ratio[b])
            if worst_ratio[b] > 1:
                entry["disagreements"] += 1
