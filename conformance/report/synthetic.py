"""Synthetic result summaries, for the report's tests and benchmarks.

    summary(ops=200, targets=8, floatx=("float16", "float32", "float64"), seed=0)

gives a `conformance.store.load`-shaped summary with every verdict present (when
there are enough cells), Keras 2 targets that lack some ops, counterexamples with
small (inline) and large (summarised) arrays, pairwise records and known divergences.
"""
from __future__ import annotations

import numpy as np

TARGETS = ["keras3-numpy", "keras3-jax", "keras3-torch", "keras3-tensorflow", "keras3-openvino",
           "keras2-tensorflow", "keras2-theano", "keras2-cntk"]
FAMILIES = ["elementwise", "activations", "reductions", "linalg", "shape", "nn", "losses", "random"]
NAMES = ["exp", "log", "softmax", "sigmoid", "sum", "mean", "matmul", "reshape", "conv",
         "binary_crossentropy", "tanh", "erf", "relu", "max", "solve", "normal"]
RARE = ["fail", "nan", "dtype", "shape", "error", "crash", "timeout", "known", "convention",
        "unsupported"]


def target_ids(count: int) -> list[str]:
    return (TARGETS + [f"plugin-{i}" for i in range(max(0, count - len(TARGETS)))])[:count]


def target_record(tid: str, floatx: str, status: str = "ready") -> dict:
    flavor = "keras2" if tid.startswith("keras2") else "keras3" if tid.startswith("keras3") else "ops-module"
    backend = tid.split("-", 1)[1] if flavor != "ops-module" else f"plugins.{tid.replace('-', '_')}"
    python = "3.6.15" if flavor == "keras2" else "3.11.7"
    record = {"id": tid, "floatx": floatx, "flavor": flavor, "backend": backend, "status": status,
              "reason": "", "fix": "", "python": f"/opt/envs/{flavor}/bin/python"}
    if status == "ready":
        record["info"] = {"python": python, "keras": "2.3.1" if flavor == "keras2" else "3.15.0",
                          "backend": backend, "backend_library": backend,
                          "backend_version": "1.2.3", "using_line": None, "floatx": floatx,
                          "epsilon": 1e-07, "image_data_format": "channels_last",
                          "executable": f"/opt/envs/{flavor}/bin/python"}
    else:
        record["reason"] = f"ImportError: libmpi.so.12: cannot open shared object file ({tid})"
        record["fix"] = "apt-get install libopenmpi3 and rerun `conformance envs sync keras2`"
    return record


def _array(rng, shape, dtype, large=False):
    values = rng.uniform(-3, 3, size=shape).astype(dtype)
    record = {"dtype": dtype, "shape": list(shape)}
    if large:
        record.update(head=values.ravel()[:16].tolist(), min=float(values.min()),
                      max=float(values.max()), mean=float(values.mean()))
    else:
        record["values"] = values.tolist()
    return record, values


def _counterexample(rng, op, tid, floatx, verdict, message, targets, large):
    shape = (40, 40) if large else ((2, 3) if rng.random() < 0.5 else (4,))
    x_rec, x = _array(rng, shape, floatx, large)
    ref = np.exp(np.clip(x.astype("float64"), -5, 5))
    ref_rec = {"dtype": "float64", "shape": list(shape)}
    if large:
        ref_rec.update(head=ref.ravel()[:16].tolist(), min=float(ref.min()), max=float(ref.max()),
                       mean=float(ref.mean()))
    else:
        ref_rec["values"] = ref.tolist()
    worst = int(rng.integers(0, x.size))
    outputs = {}
    for other in targets:
        out = ref.astype(floatx)
        if other == tid and verdict in ("fail", "known"):
            out.ravel()[worst] *= 1.01
        if other == tid and verdict == "nan":
            out.ravel()[worst] = np.nan
        if other == tid and verdict in ("error", "crash", "timeout"):
            outputs[other] = {"status": verdict, "message": message}
            continue
        dtype = "float32" if other == tid and verdict == "dtype" else floatx
        out = out.astype(dtype)
        rec = {"dtype": dtype, "shape": list(out.shape)}
        if large:
            rec.update(head=out.ravel()[:16].tolist(), min=float(np.nanmin(out)),
                       max=float(np.nanmax(out)), mean=float(np.nanmean(out)))
        else:
            rec["values"] = [v if np.isfinite(v) else str(v) for v in out.ravel().tolist()]
            rec["values"] = np.array(rec["values"], dtype=object).reshape(out.shape).tolist()
        outputs[other] = {"status": "ok", "outputs": [rec]}
    keras2 = tid.startswith("keras2")
    return {"target": tid, "verdict": verdict, "message": message, "shrunk": True,
            "shrink_calls": int(rng.integers(3, 90)),
            "worst_index": [0, worst] if verdict in ("fail", "known", "nan") else None,
            "inputs": {"x": x_rec, "axis": -1}, "reference": [ref_rec], "outputs": outputs,
            "call": {"fn": ("keras.backend." if keras2 else "keras.ops.") + op,
                     "kwargs": {"axis": -1}},
            "tolerance": "E = 4 ulp(y) + 4 u |x f'(x)|",
            "arrays": f"counterexamples/{op}-{tid}-{floatx}.npz"}


def summary(ops: int = 200, targets: int = 8, floatx=("float16", "float32", "float64"),
            seed: int = 0, examples: int = 25, finished: bool = True,
            rare: float = 0.06) -> dict:
    rng = np.random.default_rng(seed)
    tids = target_ids(targets)
    names = [(NAMES[i] if i < len(NAMES) else f"op{i:03d}") for i in range(ops)]
    run = {"seed": 1234 + seed, "profile": "default", "started": "2026-01-02T03:04:05",
           "harness_version": "0.1.0", "argv": ["conformance", "run", "--profile", "default"],
           "floatx": list(floatx), "ops": ops * len(floatx), "max_examples": examples}
    if finished:
        run.update(finished="2026-01-02T03:14:05", duration_s=600.0, cases_done=ops * len(floatx))
    target_records = [target_record(t, fx) for t in tids for fx in floatx]
    results, pairwise = [], []
    forced = list(RARE)
    for index, op in enumerate(names):
        family = FAMILIES[index % len(FAMILIES)]
        for fx in floatx:
            statuses = {}
            for tid in tids:
                if tid.startswith("keras2") and index % 3 == 1:
                    status = "unsupported"
                elif forced and rng.random() < 0.5:
                    status = forced.pop(0)
                elif rng.random() < rare:
                    status = RARE[int(rng.integers(0, len(RARE)))]
                else:
                    status = "pass"
                statuses[tid] = status
            running = [t for t, s in statuses.items() if s != "unsupported"]
            for tid, status in statuses.items():
                record = {"op": op, "family": family, "target": tid, "floatx": fx,
                          "status": status, "verdict": "fail" if status == "known" else status,
                          "tolerance": "E = 4 ulp(y) + 4 u |x f'(x)|", "message": ""}
                if status == "unsupported":
                    record["message"] = "not available in the keras2 flavor"
                    results.append(record)
                    continue
                scale = 10.0 ** rng.uniform(-2, 0)
                ratios = [round(float(v), 6) for v in scale * rng.random(examples)]
                ratios[int(rng.integers(0, examples))] = 0.0
                if status in ("fail", "known"):
                    ratios[-3:] = [round(float(v), 3) for v in 10.0 ** rng.uniform(0.1, 4, 3)]
                if status == "nan":
                    ratios[-1] = "inf"
                numeric = [float(r) for r in ratios]
                record.update(
                    examples=examples, counts={"pass": examples - 3, status: 3} if status != "pass"
                    else {"pass": examples}, max_abs_err=float(max(numeric)) * 1e-7,
                    max_ulp=float(max(numeric)) * 4, worst_ratio=float(max(numeric)),
                    ratios=ratios, backend_s=round(float(rng.uniform(0.001, 0.5)), 4),
                    wall_s=1.0, counterexample=None)
                if status in ("fail", "known"):
                    record["message"] = "output 0: error 1.2e-05 > allowed 3.1e-07 (38x)"
                elif status == "nan":
                    record["message"] = "output 0[1]: got nan, reference 0.5"
                elif status == "dtype":
                    record["message"] = f"output 0: dtype float32, expected {fx}"
                elif status == "shape":
                    record["message"] = "output 0: shape (3,), expected (3, 1)"
                elif status in ("error", "crash", "timeout"):
                    record.update(message={"error": "ValueError: <script>alert(1)</script> bad axis",
                                           "crash": "worker died (signal 11)",
                                           "timeout": "no reply in 30 s"}[status],
                                  max_abs_err=0.0, max_ulp=0.0, worst_ratio=0.0)
                if status == "convention":
                    record["message"] = "at x = 0: 1 x cotangent, the reference takes 0"
                if status in ("convention", "pass") and index % 4 == 0:
                    record["conventions"] = {"at x = 0": {
                        "reference": 0.0, "values": [1.0] if status == "convention" else [0.0]}}
                if status == "known":
                    record["known"] = {"reason": "epsilon applied after clipping on this backend",
                                       "link": "https://github.com/keras-team/keras/issues/1"}
                if status not in ("pass", "shape", "convention"):
                    record["counterexample"] = _counterexample(
                        rng, op, tid, fx, record["verdict"], record["message"], running,
                        large=(index % 7 == 3))
                results.append(record)
            pairs = {}
            for i, a in enumerate(running):
                for b in running[i + 1:]:
                    bad = statuses[a] in ("fail", "nan") or statuses[b] in ("fail", "nan")
                    pairs[f"{min(a, b)}|{max(a, b)}"] = {
                        "examples": examples, "disagreements": int(rng.integers(1, 4)) if bad else 0,
                        "max_ulp": round(float(rng.uniform(0, 2 if not bad else 300)), 2),
                        "max_ratio": round(float(rng.uniform(0, 0.9) if not bad else rng.uniform(1, 50)), 3)}
            pairwise.append({"op": op, "family": family, "floatx": fx, "pairs": pairs})
    return {"run": run, "targets": target_records, "results": results, "pairwise": pairwise}
