"""The report in a real browser: headless Chromium runs the page's JavaScript.

The page reads its initial filter from the URL fragment (``#verdict=fail&q=exp``), so
`--dump-dom` shows the filtered matrix without a browser driver; `--screenshot` takes
a picture of the page as a person sees it.
"""
from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from conformance.report import render, synthetic
from conftest import skip_or_fail

CHROMIUM = shutil.which("chromium") or ("/usr/bin/chromium" if Path("/usr/bin/chromium").exists()
                                        else None)
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"]



@pytest.fixture(autouse=True)
def chromium_installed():
    if CHROMIUM is None:
        skip_or_fail("chromium is not installed (apt-get install chromium)")


@pytest.fixture(scope="module")
def report(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("report")
    return render([synthetic.summary(ops=24, targets=6)], out / "index.html")


def _chromium(profile: Path, *args: str) -> str:
    done = subprocess.run([CHROMIUM, *FLAGS, f"--user-data-dir={profile}", *args],
                          capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


def _dom(report: Path, profile: Path, fragment: str = "") -> str:
    dom = _chromium(profile, "--dump-dom", report.as_uri() + fragment)
    assert "</html>" in dom
    return dom


def _visible_rows(dom: str) -> list[str]:
    rows = re.findall(r'<tr class="row"([^>]*)>', dom)
    assert rows, "no matrix rows in the page"
    return [attrs for attrs in rows if not re.search(r"\bhidden\b", attrs)]


def test_filters_narrow_the_matrix(report, tmp_path):
    profile = tmp_path / "profile"
    everything = _visible_rows(_dom(report, profile))
    assert len(everything) == 24 * 3

    failing = _dom(report, profile, "#verdict=fail")
    shown = _visible_rows(failing)
    assert 0 < len(shown) < len(everything)
    assert re.search(r'id="count"[^>]*>showing %d of %d rows' % (len(shown), len(everything)),
                     failing)

    one_op = _visible_rows(_dom(report, profile, "#q=softmax"))
    assert len(one_op) == 3 and all('data-o="softmax"' in row for row in one_op)

    narrowed = _visible_rows(_dom(report, profile, "#family=elementwise&floatx=float32"))
    assert 0 < len(narrowed) < len(everything)
    assert all('data-x="float32"' in r and 'data-f="elementwise"' in r for r in narrowed)

    # one target: the other targets' columns are hidden
    single = _dom(report, profile, "#target=keras3-jax")
    headers = re.findall(r'<th class="sortable tgt[^"]*"[^>]*>', single)
    assert len(headers) == 6
    assert sum(1 for h in headers if re.search(r"\bhidden\b", h)) == 5


RANK = ["crash", "timeout", "error", "shape", "dtype", "nan", "fail", "known", "unsupported",
        "pass"]


def test_sorting_by_a_target_column(report, tmp_path):
    """#sort=-1: rows within each family by the second target's cell, worst first."""
    dom = _dom(report, tmp_path / "profile", "#sort=-1")
    assert re.search(r'<th class="sortable tgt desc"[^>]*data-t="keras3-jax"', dom)
    sorted_rows = 0
    for body in re.findall(r"<tbody.*?</tbody>", dom, flags=re.S):
        keys = []
        for row in re.findall(r'<tr class="row".*?</tr>', body, flags=re.S):
            cell = re.findall(r"<td([^>]*)>", row)[3]  # floatx, worst, target 0, target 1
            verdict = re.search(r'class="v-(\w+)"', cell).group(1)
            ratio = re.search(r'data-r="([^"]+)"', cell)
            keys.append((-RANK.index(verdict), float(ratio.group(1)) if ratio else -1.0))
        assert keys == sorted(keys, reverse=True)
        sorted_rows += len(keys)
    assert sorted_rows == 24 * 3  # every row was in a family's body and was checked


def test_screenshot(report, tmp_path):
    shot = tmp_path / "report.png"
    _chromium(tmp_path / "profile", f"--screenshot={shot}", "--window-size=1400,1000",
              report.as_uri())
    data = shot.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
    assert (width, height) == (1400, 1000)
    assert len(data) > 20_000  # a rendered page, not a blank one
