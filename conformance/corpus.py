"""A stored corpus of examples: drawn once with hypothesis, then replayed from disk.

A baseline must feed a backend exactly the same inputs the next time, even after a
hypothesis upgrade (which may change what a seed draws) or an edit of a strategy.
So the examples of each (op, floatx) are drawn once and written down:

    corpus/<op>-<floatx>.npz    the arrays, ``e<i>_<key>`` (``allow_pickle=False``)
    corpus/<op>-<floatx>.json   {"op", "floatx", "sha256", "examples": [{key: value}]}
                                where an array value is {"__array__": "e<i>_<key>"}

Static arguments keep their Python types: a tuple is {"__tuple__": [...]}, a NumPy
scalar {"__scalar__": value, "dtype": name}, a non-finite float {"__float__": "nan"};
lists, dicts, str, int, float, bool and None are plain JSON. ``sha256`` is a digest
of every array's dtype, shape and bytes plus the static arguments: `load` checks it,
so a corpus edited by hand (or damaged) is refused rather than silently replayed.
"""
from __future__ import annotations

import hashlib
import json
import math
import re
import zlib
from pathlib import Path

import numpy as np

SEED = 20240601  # corpus seed: the same ops and floatx draw the same corpus


class CorpusError(Exception):
    """A stored corpus cannot be read back; the message says which file and why."""


def case_seed(corpus_seed: int, op_name: str, floatx: str) -> int:
    """Per (op, floatx): selecting other ops never changes an op's examples."""
    return zlib.crc32(f"corpus/{corpus_seed}/{op_name}/{floatx}".encode())


def draw(op, floatx: str, count: int, corpus_seed: int = SEED) -> list[dict]:
    """`count` examples of `op` at `floatx`, drawn by a seeded hypothesis test.

    Only the generate phase runs (no shrinking, no database), so the result is a
    function of the seed, the strategy and the hypothesis version; hypothesis may
    return fewer than `count` examples when the strategy has fewer distinct ones.
    """
    from hypothesis import HealthCheck, Phase, given, seed, settings

    examples: list[dict] = []

    @settings(max_examples=count, deadline=None, database=None, phases=[Phase.generate],
              suppress_health_check=list(HealthCheck), print_blob=False)
    @seed(case_seed(corpus_seed, op.name, floatx))
    @given(op.inputs(floatx))
    def collect(example):
        if len(examples) < count:
            examples.append({k: np.array(v, copy=True) if isinstance(v, np.ndarray) else v
                             for k, v in example.items()})

    collect()
    return examples


# -- encoding -----------------------------------------------------------------
def _encode(value, arrays: dict, prefix: str):
    if isinstance(value, np.ndarray):
        if value.dtype.hasobject:
            raise CorpusError(f"{prefix}: object arrays cannot be stored without pickle")
        name = prefix
        arrays[name] = value
        return {"__array__": name}
    if isinstance(value, np.generic):
        return {"__scalar__": _encode(value.item(), arrays, prefix), "dtype": str(value.dtype)}
    if isinstance(value, tuple):
        return {"__tuple__": [_encode(v, arrays, f"{prefix}.{i}") for i, v in enumerate(value)]}
    if isinstance(value, list):
        return [_encode(v, arrays, f"{prefix}.{i}") for i, v in enumerate(value)]
    if isinstance(value, dict):
        if not all(isinstance(k, str) for k in value):
            raise CorpusError(f"{prefix}: dict keys must be strings")
        return {"__dict__": {k: _encode(v, arrays, f"{prefix}.{k}") for k, v in value.items()}}
    if isinstance(value, float) and not math.isfinite(value):
        return {"__float__": repr(value)}
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    raise CorpusError(f"{prefix}: cannot store a {type(value).__name__} in the corpus")


def _decode(value, arrays):
    if isinstance(value, list):
        return [_decode(v, arrays) for v in value]
    if isinstance(value, dict):
        if "__array__" in value:
            return arrays[value["__array__"]]
        if "__tuple__" in value:
            return tuple(_decode(v, arrays) for v in value["__tuple__"])
        if "__scalar__" in value:
            return np.dtype(value["dtype"]).type(_decode(value["__scalar__"], arrays))
        if "__float__" in value:
            return float(value["__float__"])
        if "__dict__" in value:
            return {k: _decode(v, arrays) for k, v in value["__dict__"].items()}
    return value


def _encode_example(example: dict, index: int, arrays: dict) -> dict:
    return {k: _encode(v, arrays, f"e{index}_{k}") for k, v in example.items()}


def digest(examples: list[dict]) -> str:
    """sha256 over every example: array dtype, shape and bytes; static values as JSON."""
    h = hashlib.sha256()
    for index, example in enumerate(examples):
        arrays: dict = {}
        statics = _encode_example(example, index, arrays)
        h.update(json.dumps(statics, sort_keys=True).encode())
        for name in sorted(arrays):
            array = np.ascontiguousarray(arrays[name])
            h.update(f"{name}|{array.dtype.str}|{array.shape}|".encode())
            h.update(array.tobytes())
    return h.hexdigest()


def file_stem(op_name: str, floatx: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]", "_", f"{op_name}-{floatx}")


def save(folder: Path, op_name: str, floatx: str, examples: list[dict]) -> dict:
    """Write one (op, floatx) corpus; returns its index entry (file stem, count, digest)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    arrays: dict = {}
    encoded = [_encode_example(example, index, arrays) for index, example in enumerate(examples)]
    stem = file_stem(op_name, floatx)
    np.savez_compressed(folder / f"{stem}.npz", **arrays)
    sha = digest(examples)
    (folder / f"{stem}.json").write_text(json.dumps(
        {"op": op_name, "floatx": floatx, "sha256": sha, "examples": encoded}, indent=1))
    return {"file": stem, "examples": len(examples), "sha256": sha}


def load(folder: Path, stem: str, expected_sha256: str | None = None) -> list[dict]:
    """The stored examples of one (op, floatx), checked against their digest."""
    folder = Path(folder)
    try:
        meta = json.loads((folder / f"{stem}.json").read_text())
        with np.load(folder / f"{stem}.npz", allow_pickle=False) as data:
            arrays = {name: data[name] for name in data.files}
    except (OSError, ValueError) as exc:
        raise CorpusError(f"corpus {folder / stem}: cannot read: {exc}") from None
    examples = [{k: _decode(v, arrays) for k, v in example.items()}
                for example in meta["examples"]]
    actual = digest(examples)
    for wanted in filter(None, {meta.get("sha256"), expected_sha256}):
        if actual != wanted:
            raise CorpusError(f"corpus {folder / stem}: inputs do not match their digest "
                              f"(stored {wanted[:12]}, read {actual[:12]}): the files were "
                              "changed after the baseline was saved")
    return examples
