"""Output that cannot be written: an --out folder refused before any worker starts, a
disk that fills up mid-run. Each gives one clear error naming the path, exit status 2,
and leaves what was written before readable.

The tests run as root here, and root ignores permission bits, so they use what fails
for root too: a path under a file (ENOTDIR), /sys (EPERM), a folder made read-only for
another user (the check runs as `nobody`), /dev/full (ENOSPC) and a file size limit
(RLIMIT_FSIZE: a write past it is cut short, then fails with EFBIG, as on a disk that
fills up).
"""
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from conformance import options, store
from conftest import FAKE_PLUGINS

ROOT = Path(__file__).resolve().parent.parent
OPS = "exp,log,sin,add,multiply,sum"


def conformance_run(project: Path, out, limit: int = 0) -> subprocess.CompletedProcess:
    """`conformance run` on one fake NumPy target; `limit`: the largest file the run may
    write (0: no limit). SIGXFSZ is ignored so that a write past it fails instead of
    killing the process."""
    (project / "pyproject.toml").write_text(
        f'[tool.conformance.targets.np]\nflavor = "ops-module"\nbackend = "numpy_ops"\n'
        f'python = "{sys.executable}"\npythonpath = ["{FAKE_PLUGINS}"]\n')
    code = ("import resource, signal, sys\n"
            "signal.signal(signal.SIGXFSZ, signal.SIG_IGN)\n"
            f"if {limit}: resource.setrlimit(resource.RLIMIT_FSIZE, ({limit}, {limit}))\n"
            "from conformance.cli import main\nsys.exit(main(sys.argv[1:]))\n")
    return subprocess.run([sys.executable, "-c", code, "run", "--targets", "np", "--ops", OPS,
                           "--floatx", "float32,float64", "--profile", "smoke", "--seed", "1",
                           "--out", str(out), "--no-report"],
                          cwd=project, capture_output=True, text=True, timeout=300,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})


def json_lines(path: Path) -> list[dict]:
    """Every line of `path` as JSON (fails on a line that is not whole)."""
    text = path.read_text()
    assert text.endswith("\n"), "the last line is cut short"
    return [json.loads(line) for line in text.splitlines()]


def workers_left(out: Path) -> list[str]:
    """Command lines of processes still working in `out` (workers run there)."""
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            command = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if str(out) in command:
            found.append(command)
    return found


# -- refused at start ------------------------------------------------------------------
@pytest.mark.parametrize("out, error", [("a-file/results", "is a file, not a folder"),
                                        ("/sys/conformance-results", "Permission denied")])
def test_an_out_folder_that_cannot_be_written_is_refused(tmp_path, monkeypatch, out, error):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "a-file").write_text("")
    with pytest.raises(options.OptionError, match=error) as raised:
        options.RunOptions.parse({"out": out})
    assert str(raised.value).startswith("--out: cannot")
    assert out in str(raised.value) and "--out" in str(raised.value)


def as_bound_by_permissions(command: list[str]) -> list[str]:
    """`command` run so that permission bits apply: root drops the capabilities that
    let it write anywhere (setpriv, util-linux)."""
    if os.getuid() != 0:
        return command
    if shutil.which("setpriv") is None:
        pytest.skip("running as root without setpriv: permission bits cannot be made to apply")
    return ["setpriv", "--bounding-set", "-dac_override,-dac_read_search", "--"] + command


def test_a_folder_without_write_permission_is_refused(tmp_path):
    locked = tmp_path / "read-only"
    locked.mkdir(mode=0o555)
    code = ("import pathlib, sys\nfrom conformance import options\n"
            "try:\n    options.RunOptions.parse({'out': sys.argv[1]})\n"
            "except options.OptionError as exc:\n    print(exc)\n")
    done = subprocess.run(as_bound_by_permissions([sys.executable, "-c", code,
                                                   str(locked / "run")]),
                          capture_output=True, text=True, timeout=60, cwd=ROOT,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert done.stdout.strip() == (f"--out: cannot write {locked / 'run'}: creating a file in "
                                   f"{locked} fails (Permission denied); give a folder you can "
                                   "write with --out"), done.stderr


def test_run_refuses_the_out_folder_before_any_worker_starts(tmp_path):
    """Before: "error: the suites did not start (pytest exit 1); see the messages above",
    with no message above and no path named."""
    (tmp_path / "a-file").write_text("")
    done = conformance_run(tmp_path, tmp_path / "a-file" / "out")
    assert done.returncode == 2
    assert done.stderr.startswith(f"error: --out: cannot create {tmp_path / 'a-file' / 'out'}: "
                                  f"{tmp_path / 'a-file'} is a file, not a folder")
    assert "conformance run:" not in done.stdout + done.stderr  # the run never began


# -- the results file fills the disk ------------------------------------------------------
def test_a_full_disk_fails_the_write_with_the_path_and_keeps_nothing_partial(tmp_path):
    (tmp_path / "results.jsonl").symlink_to("/dev/full")  # opens fine, every write: ENOSPC
    writer = store.ResultsWriter(tmp_path)
    with pytest.raises(store.OutputError) as raised:
        writer.write("run", {"seed": 1})
    message = str(raised.value)
    assert message.startswith(f"cannot write {tmp_path / 'results.jsonl'}: No space left on device")
    assert "free space on that disk, or give another folder with --out" in message
    with pytest.raises(store.OutputError):  # and every write after: no line after a hole
        writer.write("run", {"seed": 2})
    writer.close()


def test_a_line_cut_short_is_removed(tmp_path):
    """A write past the size limit is cut short by the kernel, then fails: the file
    keeps whole lines only (a reader would skip a partial last line, but the next run's
    first line would be glued to it)."""
    code = ("import resource, signal, sys\nfrom conformance import store\n"
            "signal.signal(signal.SIGXFSZ, signal.SIG_IGN)\n"
            "writer = store.ResultsWriter(sys.argv[1])\n"
            "resource.setrlimit(resource.RLIMIT_FSIZE, (1000, 1000))\n"
            "try:\n    for n in range(100):\n"
            "        writer.write('result', {'n': n, 'pad': 'x' * 50})\n"
            "except store.OutputError as exc:\n    print(exc)\n")
    done = subprocess.run([sys.executable, "-c", code, str(tmp_path)], capture_output=True,
                          text=True, timeout=60, env={**os.environ, "PYTHONPATH": str(ROOT)})
    whole = [len(store.dumps({"kind": "result", "n": n, "pad": "x" * 50})) + 1 for n in range(100)]
    fit = max(n for n in range(100) if sum(whole[:n]) <= 1000)  # 11 lines; the 12th is cut
    assert f"File too large; the {fit} records this run wrote before stay readable" in done.stdout
    records = json_lines(tmp_path / "results.jsonl")
    assert [r["n"] for r in records] == list(range(fit))


def test_a_line_an_earlier_run_left_cut_short_does_not_swallow_the_next_record(tmp_path):
    """Before: the first record appended was glued to the cut line, and lost with it."""
    (tmp_path / "results.jsonl").write_text('{"kind": "run", "seed": 1}\n{"kind": "resu')
    writer = store.ResultsWriter(tmp_path)
    writer.write("run", {"seed": 2})
    writer.close()
    assert [r["seed"] for r in store.read_records(tmp_path / "results.jsonl")] == [1, 2]


def test_a_disk_that_fills_up_mid_run_ends_it_clearly(tmp_path):
    """Before: every later case raised a HARNESS ERROR with its traceback (11 of them),
    then pytest_unconfigure died on the same OSError; exit status 1 (as for a
    divergence), no summary.json, results.jsonl ended with a partial line, and the file
    was never named."""
    out = tmp_path / "out"
    done = conformance_run(tmp_path, out, limit=5000)  # about half of the cases fit
    assert done.returncode == 2, done.stdout[-3000:] + done.stderr[-3000:]
    said = done.stdout + done.stderr
    assert f"error: cannot write {out / 'results.jsonl'}: File too large; the " in said
    assert "HARNESS ERROR" not in said and "Traceback" not in said
    assert said.count("cannot write") == 1
    kept = [(r["op"], r["floatx"]) for r in json_lines(out / "results.jsonl")
            if r["kind"] == "result"]
    assert 0 < len(kept) < 2 * len(OPS.split(","))  # the cases before the disk filled up
    summary = store.load(out / "summary.json")  # written from what was kept
    assert sorted((r["op"], r["floatx"]) for r in summary["results"]) == sorted(kept)
    assert workers_left(out) == []


def test_a_summary_that_cannot_be_written_fails_the_run_clearly(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "summary.json.tmp").symlink_to("/dev/full")  # the disk is full when it is written
    done = conformance_run(tmp_path, out)
    assert done.returncode == 2, done.stdout[-3000:] + done.stderr[-3000:]
    assert (f"error: cannot write {out / 'summary.json'}: No space left on device; "
            "results.jsonl beside it holds every record") in done.stdout + done.stderr
    records = json_lines(out / "results.jsonl")
    assert len([r for r in records if r["kind"] == "result"]) == 2 * len(OPS.split(","))
    assert any("finished" in r for r in records if r["kind"] == "run")
    assert not (out / "summary.json").exists() and not (out / "summary.json.tmp").exists()


def test_write_summary_names_the_file_and_leaves_no_partial_copy(tmp_path):
    (tmp_path / "summary.json.tmp").symlink_to("/dev/full")
    with pytest.raises(store.OutputError, match="summary.json: No space left on device"):
        store.write_summary(tmp_path, {"results": []})
    assert list(tmp_path.iterdir()) == []
