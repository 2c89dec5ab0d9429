"""Verdicts: one backend reply against the float64 reference, then many examples folded.

Statuses, most severe first. `unsupported` is coverage, not failure; `broken`
means the target never started (reported with the targets, not per op).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from conformance.tolerance import Tolerance, floor, once, ulp

SEVERITY = ["crash", "timeout", "error", "shape", "dtype", "nan", "fail", "unsupported",
            "broken", "pass"]
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
    # Near the overflow threshold either side of the rounding is acceptable; a
    # reference that is itself infinite is not "near": it must come back infinite.
    near_overflow = np.isfinite(ref) & (np.abs(np.nan_to_num(ref)) + allowed >= big)
    sign_bad = out_inf & ref_inf & (np.sign(out) != np.sign(ref_fx))
    inf_bad = (out_inf != ref_inf) & ~near_overflow & ~np.isnan(ref) & ~np.isnan(out)
    return nan_bad | inf_bad | sign_bad


def compare(outputs: list[np.ndarray], refs: list[np.ndarray], tolerance: Tolerance,
            example: dict, floatx: str, expected_dtypes: list[str],
            scale: float = 1.0, memo: dict | None = None) -> Verdict:
    """Judge one backend's outputs for one example (`memo`: see Tolerance.errors)."""
    if len(outputs) != len(refs):
        return Verdict("shape", f"{len(outputs)} outputs, expected {len(refs)}")
    for index, (out, ref) in enumerate(zip(outputs, refs)):
        if out.shape != ref.shape:
            return Verdict("shape", f"output {index}: shape {out.shape}, expected {ref.shape}")
    values = [o.astype("float64") if o.dtype.kind in "biuf" else o for o in outputs]
    verdict = _numbers(values, refs, tolerance, example, floatx, scale, memo)
    for index, (out, expected) in enumerate(zip(outputs, expected_dtypes)):
        if not _dtype_ok(out.dtype, expected):
            verdict.message = (f"output {index}: dtype {out.dtype}, expected {expected}; "
                               + verdict.message).rstrip("; ")
            verdict.status = "dtype"
    return verdict


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
    seen_ok: bool = False
    skipped: int = 0  # examples not sent after repeated crashes (engine.GIVE_UP_AFTER)

    def add(self, verdict: Verdict, backend_s: float = 0.0) -> None:
        self.examples += 1
        self.counts[verdict.status] = self.counts.get(verdict.status, 0) + 1
        self.backend_s += backend_s
        self.max_abs_err = max(self.max_abs_err, verdict.max_abs_err)
        self.max_ulp = max(self.max_ulp, verdict.max_ulp)
        self.worst_ratio = max(self.worst_ratio, verdict.worst_ratio)
        if len(self.ratios) < MAX_RATIOS:
            self.ratios.append(round(verdict.worst_ratio, 6))
        if SEVERITY.index(verdict.status) < SEVERITY.index(self.status):
            self.status = verdict.status
            self.message = verdict.message
