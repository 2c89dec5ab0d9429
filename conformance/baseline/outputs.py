"""The baseline folder: its manifest, the stored outputs (whole or digest), reading back.

    manifest.json          format, harness and target versions, corpus index, entries
    corpus/<op>-<fx>.*     the examples (see conformance.corpus)
    outputs/<target>/...   per example: status, verdict, and each output: whole in .npz
                           when it has at most STORE_LIMIT elements, else its sha256 and
                           summary statistics
"""
from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

import numpy as np

from conformance import __version__, corpus, store

FORMAT = "keras-conformance-baseline"
FORMAT_VERSION = 1
STORE_LIMIT = 1024  # outputs with more elements are kept as digest + summary statistics
DEFAULT_EXAMPLES = 10


class BaselineError(Exception):
    """A baseline cannot be written or read; the message says why and what to do."""


def safe_name(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]", "_", name)


def output_digest(array: np.ndarray) -> str:
    array = np.ascontiguousarray(array)
    h = hashlib.sha256(f"{array.dtype.str}|{array.shape}|".encode())
    h.update(array.tobytes())
    return h.hexdigest()


def describe_output(array: np.ndarray) -> dict:
    """dtype, shape, sha256 and summary statistics of one output."""
    array = np.asarray(array)
    record = {"dtype": str(array.dtype), "shape": list(array.shape),
              "sha256": output_digest(array)}
    if array.dtype.kind in "biuf" and array.size:
        values = array.astype("float64").ravel()
        finite = values[np.isfinite(values)]
        record.update(nan=int(np.isnan(values).sum()), inf=int(np.isinf(values).sum()))
        if finite.size:
            record.update(min=float(finite.min()), max=float(finite.max()),
                          mean=float(finite.mean()))
    return record

def write_outputs(folder: Path, replay_, store_limit: int) -> list[dict]:
    """outputs/<target>/<op>-<floatx>.{json,npz}; returns the manifest's entries."""
    entries = []
    for (op_name, tid, floatx), entry in sorted(replay_.entries.items()):
        stem = corpus.file_stem(op_name, floatx)
        relative = f"outputs/{safe_name(tid)}/{stem}"
        examples, arrays = [], {}
        for index, example in enumerate(entry.examples):
            record = {k: example[k] for k in ("status", "verdict", "message", "ratio", "ulp")}
            if "outputs" in example:
                record["outputs"] = []
                for j, out in enumerate(example["outputs"]):
                    described = describe_output(out)
                    if out.size <= store_limit and not out.dtype.hasobject:
                        name = f"e{index}_o{j}"
                        arrays[name] = out
                        described["stored"] = name
                    record["outputs"].append(described)
            examples.append(record)
        (folder / relative).parent.mkdir(parents=True, exist_ok=True)
        if arrays:
            np.savez_compressed(folder / f"{relative}.npz", **arrays)
        (folder / f"{relative}.json").write_text(store.dumps((
            {"op": op_name, "target": tid, "floatx": floatx, "examples": examples}), indent=1))
        entries.append({"op": op_name, "target": tid, "floatx": floatx, "file": relative,
                        **entry.record()})
    return entries

def default_dir(project: Path) -> Path:
    return Path(project) / "baselines"

def read_manifest(path: Path) -> dict:
    """The manifest of a baseline folder, refusing other formats with what to do."""
    path = Path(path)
    manifest_path = path / "manifest.json"
    if not path.is_dir():
        raise BaselineError(f"no baseline at {path}: record one with "
                            f"`conformance baseline save {path.name}`")
    if not manifest_path.is_file():
        raise BaselineError(f"{path} is not a baseline: it has no manifest.json")
    try:
        manifest = json.loads(manifest_path.read_text())
    except json.JSONDecodeError as exc:
        raise BaselineError(f"{manifest_path} is not valid JSON ({exc})") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise BaselineError(f"{manifest_path} is not a keras-conformance baseline manifest "
                            f"(format {manifest.get('format') if isinstance(manifest, dict) else None!r})")
    version = manifest.get("format_version")
    if version != FORMAT_VERSION:
        writer = (manifest.get("harness") or {}).get("harness", "unknown")
        newer = isinstance(version, int) and version > FORMAT_VERSION
        advice = (f"upgrade the harness to one that reads format {version} "
                  f"(it was written by keras-conformance {writer})" if newer else
                  f"compare it with the harness that wrote it (keras-conformance {writer}), "
                  f"or record it again with this harness: `conformance baseline save "
                  f"{manifest.get('name', path.name)} --force` on the environments it "
                  "describes (listed in its manifest.json)")
        raise BaselineError(
            f"baseline {path} is in baseline format version {version} (written by "
            f"keras-conformance {writer}); this harness (keras-conformance {__version__}) "
            f"reads format version {FORMAT_VERSION} only: {advice}")
    return manifest


def load_outputs(path: Path, relative: str) -> list[dict]:
    """The examples of one stored (op, target, floatx), outputs loaded where stored."""
    meta = json.loads((Path(path) / f"{relative}.json").read_text())
    npz = Path(path) / f"{relative}.npz"
    arrays = {}
    if npz.is_file():
        with np.load(npz, allow_pickle=False) as data:
            arrays = {name: data[name] for name in data.files}
    for example in meta["examples"]:
        for output in example.get("outputs") or []:
            if output.get("stored"):
                output["array"] = arrays[output["stored"]]
    return meta["examples"]


def resolve(name_or_path: str, directory: Path) -> Path:
    """A folder given as a path, else a name under the baselines folder."""
    candidate = Path(name_or_path)
    if candidate.is_dir():
        return candidate
    return Path(directory) / name_or_path
