"""What a built environment holds, recorded once and checked before each use.

At the end of a build the manifest records every file of the environment folder with
its size (links: that they resolve, so `bin/python` whose base interpreter is gone is
found). Checking it stats each file: 0.15-0.2 s for the keras3 environment (35,000
files, warm disk cache). It finds what damages an environment in practice: files
deleted (a cache cleaner, an interrupted `rm -rf`), a package reinstalled or
uninstalled by hand (sizes change), the base interpreter removed. It does not hash
contents: a same-size overwrite goes unseen.

``__pycache__`` folders are left out: Python writes them as it likes, and a missing
one costs a recompile, not a failure.
"""
from __future__ import annotations

import csv
import json
import os
from pathlib import Path

FILE = "conformance-manifest.json"
FORMAT = 1
LINK = -1  # the recorded "size" of a symbolic link, which must resolve
SKIPPED_FOLDERS = ("__pycache__",)
EXAMPLES = 2  # paths named per kind of problem


def scan(root: Path, skip=()) -> dict[str, dict[str, int]]:
    """{folder relative to root: {file name: size or LINK}}; `skip`: prefixes of names
    at the top level left out (the manifest's own files always are)."""
    found: dict[str, dict[str, int]] = {}

    def walk(folder: str, path: str) -> None:
        files = found.setdefault(folder, {})
        with os.scandir(path) as entries:
            for entry in entries:
                if folder == "." and entry.name.startswith(tuple(skip) + (FILE,)):
                    continue
                if entry.is_symlink():
                    if os.path.exists(entry.path):  # one dangling already: nothing to check
                        files[entry.name] = LINK
                elif entry.is_dir():
                    if entry.name not in SKIPPED_FOLDERS:
                        walk(entry.name if folder == "." else f"{folder}/{entry.name}", entry.path)
                else:
                    files[entry.name] = entry.stat(follow_symlinks=False).st_size

    walk(".", str(root))
    return found


def write(root: Path, skip=()) -> dict:
    """Record what `root` holds now (written whole or not at all); returns a summary
    for the environment's marker: {"file", "files", "bytes"}."""
    folders = scan(root, skip)
    sizes = [size for files in folders.values() for size in files.values()]
    path = root / FILE
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")  # two processes may write it
    tmp.write_text(json.dumps({"format": FORMAT, "folders": folders}, separators=(",", ":")))
    tmp.replace(path)
    return {"file": FILE, "files": len(sizes), "bytes": sum(s for s in sizes if s > 0)}


def problems(root: Path, recorded_in: Path | None = None) -> list[str]:
    """What differs from the manifest of `root` (or the one at `recorded_in`), one line
    per kind ([] when intact):
    "12 files missing, e.g. lib/.../keras/__init__.py", "1 file changed size, e.g. ...",
    "1 link broken, e.g. bin/python -> /usr/bin/python3.11". Files added since are
    not problems."""
    recorded_in = recorded_in or root / FILE
    try:
        folders = json.loads(recorded_in.read_text())["folders"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        return [f"its manifest {recorded_in} cannot be read ({exc})"]
    missing, resized, broken = [], [], []
    lstat, exists, join = os.lstat, os.path.exists, os.path.join  # 35,000 calls: plain strings
    for folder, files in folders.items():
        base = join(str(root), folder)
        for name, size in files.items():
            path = join(base, name)
            try:
                now = lstat(path).st_size
            except FileNotFoundError:
                missing.append(path)
                continue
            if size == LINK:
                if not exists(path):
                    broken.append(path)
            elif now != size:
                resized.append(path)
    return [line for line in (
        _count(missing, "file", "missing", root), _count(resized, "file", "changed size", root),
        _count(broken, "link", "broken", root)) if line]


def _count(paths: list, noun: str, what: str, root: Path) -> str:
    if not paths:
        return ""
    examples = []
    for path in paths[:EXAMPLES]:
        shown = os.path.relpath(path, root)
        if os.path.islink(path):
            shown += f" -> {os.readlink(path)}"
        examples.append(shown)
    plural = "" if len(paths) == 1 else "s"
    return f"{len(paths)} {noun}{plural} {what}, e.g. {', '.join(examples)}"


def installed_problems(root: Path) -> list[str]:
    """What differs from pip's own records (each package's RECORD: path, hash, size),
    for environments built before manifests existed: every recorded file must exist and,
    outside the *.dist-info folders (pip rewrites some of their files: cntk 2.7's WHEEL
    differs from its RECORD in the keras2 environment), have its recorded size. Also the
    interpreter links of bin/ must resolve."""
    missing, resized = [], []
    for site in root.glob("lib/python*/site-packages"):
        for record in site.glob("*.dist-info/RECORD"):
            with open(record, newline="", encoding="utf-8", errors="replace") as handle:
                for row in csv.reader(handle):
                    if not row or not row[0]:
                        continue
                    path = Path(os.path.normpath(site / row[0]))
                    try:
                        now = os.lstat(path).st_size
                    except FileNotFoundError:
                        missing.append(path)
                        continue
                    recorded = row[2] if len(row) > 2 else ""
                    inside_metadata = any(p.endswith(".dist-info") for p in Path(row[0]).parts)
                    if recorded.isdigit() and int(recorded) != now and not inside_metadata:
                        resized.append(path)
    broken = [p for p in (root / "bin").glob("python*") if p.is_symlink() and not p.exists()]
    return [line for line in (
        _count(missing, "file", "missing", root), _count(resized, "file", "changed size", root),
        _count(broken, "link", "broken", root)) if line]
