"""Hostile text (issue 22): what a plugin or backend controls is shown as text and never acts.

The plugin tests/fake_plugins/hostile_text.py puts markup, script, ``</script>``, ``]]>``,
NUL and terminal control sequences in its version string, its module name, its prints,
its error messages, its crash and its values. It is validated for real (its own worker,
five ops), copied under a file name that is markup itself, so that its target id is
hostile too. Then: the terminal output holds no control character; the HTML report runs
its own script and nothing else, in the parser and in Chromium, and shows the payloads
as visible text; junit.xml parses; the repro scripts carry the target's words only in
comments and string literals. The Content-Security-Policy is checked on its own: a
script planted in the page (as an escaping bug would plant it) does not run.
"""
from __future__ import annotations

import ast
import base64
import hashlib
import html
import io
import re
import shutil
import subprocess
import sys
import tokenize
import xml.etree.ElementTree as ET
from html.parser import HTMLParser
from pathlib import Path
from types import SimpleNamespace
from urllib.parse import quote

import numpy as np
import pytest

from conformance import report, runcli, store, targets as targets_mod, textsafe
from conformance.engine import RunSettings
from conformance.report import charts, csp, junit, regression, synthetic
from conformance.runloop import Run, progress_line
from conformance.validate import printing
from conformance.validate.checks import ImportVerdict
from conftest import FAKE_PLUGINS, skip_or_fail
from test_report_browser import CHROMIUM, FLAGS

ROOT = Path(__file__).resolve().parents[1]
PLUGIN = Path(FAKE_PLUGINS) / "hostile_text.py"
# The plugin's file name, so its module name and target id: markup that would add an
# element with this id if a page ever took it as HTML (a module name cannot hold a dot).
MARKUP_ID = "pwned-target-id"
PLUGIN_NAME = f"hostile_\"'><b id={MARKUP_ID}>x"
OPS = "exp,log,add,multiply,sin"
# What a terminal acts on: C0 controls but tab and newline, DEL, C1 controls.
TERMINAL_CONTROL = re.compile(rb"[\x00-\x08\x0b-\x1f\x7f]|\xc2[\x80-\x9f]")
XML_INVALID = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")


def payload(where: str) -> str:
    """The plugin's payload for `where`, as the plugin builds it (imported quietly)."""
    namespace: dict = {}
    source = PLUGIN.read_text()
    exec(compile(source.split("\n__version__", 1)[0], str(PLUGIN), "exec"), namespace)
    return namespace["payload"](where)


def markup_of(where: str) -> str:
    """The script element of the payload, as a page must show it: as text."""
    return f"<script>document.title='PWNED {where}'</script>"


# -- the validated plugin ------------------------------------------------------------------
@pytest.fixture(scope="module")
def validated(tmp_path_factory):
    folder = tmp_path_factory.mktemp("hostile")
    plugin = folder / "plugin" / f"{PLUGIN_NAME}.py"
    plugin.parent.mkdir()
    shutil.copyfile(PLUGIN, plugin)
    out = folder / "out"
    done = subprocess.run(
        [sys.executable, "-m", "conformance.validate", str(plugin), "--flavor", "ops-module",
         "--python", sys.executable, "--against", "none", "--ops", OPS, "--floatx", "float32",
         "--profile", "smoke", "--seed", "1", "--out", str(out), "--project", str(ROOT)],
        capture_output=True, cwd=ROOT, timeout=300)
    assert (out / "index.html").is_file(), (done.stdout + done.stderr).decode(errors="replace")[-3000:]
    return SimpleNamespace(out=out, page=out / "index.html", code=done.returncode,
                           output=done.stdout + done.stderr,
                           summary=store.load(out / "summary.json"))


def test_the_payloads_reach_the_results(validated):
    """The run is real and hostile: each payload is in the results the report reads."""
    assert validated.code == 1  # four divergent ops
    verdicts = {r["op"]: r for r in validated.summary["results"]}
    assert {op: r["status"] for op, r in verdicts.items()} == {
        "exp": "error", "log": "pass", "add": "fail", "multiply": "crash", "sin": "error"}
    assert payload("error-message") in verdicts["exp"]["message"]
    target, = validated.summary["targets"]
    assert target["id"] == PLUGIN_NAME
    assert target["info"]["backend_version"] == "6.6.6" + payload("version")
    assert target["info"]["backend_library"] == "hostile_text" + payload("module-name")


def test_the_terminal_gets_no_control_character(validated):
    """Progress lines, the run summary and validate's summary show the messages with
    their control characters escaped; before, the ESC/NUL/CR bytes went out raw."""
    assert not TERMINAL_CONTROL.search(validated.output), \
        TERMINAL_CONTROL.search(validated.output)
    text = validated.output.decode()
    assert "ValueError: \\x1b]0;PWNED-error-message\\x07\\x1b[2J" in text


class Page(HTMLParser):
    """What a browser's parser makes of a page: elements, attributes, inline texts."""

    def __init__(self, text: str):
        super().__init__(convert_charrefs=True)
        self.elements: list[tuple[str, dict]] = []
        self.inline: dict[str, list[str]] = {"script": [], "style": []}
        self.text: list[str] = []
        self._open: str | None = None
        self.feed(text)
        self.close()

    def handle_starttag(self, tag, attrs):
        self.elements.append((tag, dict(attrs)))
        if tag in self.inline:
            self._open = tag
            self.inline[tag].append("")

    def handle_endtag(self, tag):
        if tag == self._open:
            self._open = None

    def handle_data(self, data):
        if self._open:
            self.inline[self._open][-1] += data
        else:
            self.text.append(data)

    @property
    def handlers(self) -> list:
        return [(tag, name) for tag, attrs in self.elements for name in attrs
                if name.startswith("on")]

    @property
    def policy(self) -> str:
        return next(attrs["content"] for tag, attrs in self.elements if tag == "meta"
                    and attrs.get("http-equiv") == "Content-Security-Policy")


def sha256_source(text: str) -> str:
    return "'sha256-" + base64.b64encode(hashlib.sha256(text.encode()).digest()).decode() + "'"


def assert_only_its_own_script(page: Page):
    script, = page.inline["script"]
    style, = page.inline["style"]
    directives = dict(d.strip().split(" ", 1) for d in page.policy.split(";"))
    assert directives["script-src"] == sha256_source(script)
    assert directives["style-src"] == sha256_source(style)
    assert directives["default-src"] == "'none'" and "unsafe-inline" not in directives["script-src"]
    assert page.handlers == []
    assert not [attrs for _, attrs in page.elements  # what the payloads would add
                if "pwned" in attrs or attrs.get("id") == MARKUP_ID]


def test_the_report_shows_the_payloads_as_text(validated):
    text = validated.page.read_text(encoding="utf-8")
    page = Page(text)
    assert_only_its_own_script(page)
    assert not [tag for tag, _ in page.elements if tag in ("img", "iframe", "object", "embed")]
    assert all("chart" in attrs.get("class", "") for tag, attrs in page.elements if tag == "svg")
    shown = "".join(page.text)
    for where in ("error-message", "version", "module-name"):  # message, info records
        assert markup_of(where) in shown, where
    assert f"<b id={MARKUP_ID}>" in shown and "]]>" in shown
    assert not XML_INVALID.search(text)  # NUL, ESC, BEL: replaced by U+FFFD


def test_junit_is_well_formed(validated):
    root = ET.parse(validated.out / "junit.xml").getroot()
    suite, = root.iter("testsuite")
    assert suite.get("name") == PLUGIN_NAME
    message = next(f.get("message") for f in root.iter("failure") if f.get("type") == "error"
                   and "PWNED error-message" in f.get("message"))
    assert markup_of("error-message") in message and "]]>" in message


def test_repro_scripts_hold_target_text_only_in_comments_and_strings(validated):
    """Before, the version string's carriage return ended the repro's comment line and
    the rest of it became code (here a SyntaxError at the NUL; any code at all without)."""
    codes = re.findall(r'<code id="cx-[^"]*-code">(.*?)</code>',
                       validated.page.read_text(encoding="utf-8"), flags=re.S)
    assert len(codes) == 4  # add, multiply, exp, sin
    for code in map(html.unescape, codes):
        ast.parse(code)
        for token in tokenize.generate_tokens(io.StringIO(code).readline):
            if re.search(r"pwned", token.string, re.I):
                assert token.type in (tokenize.COMMENT, tokenize.STRING), token


# -- the report in Chromium ----------------------------------------------------------------------
@pytest.fixture
def chromium():
    if CHROMIUM is None:
        skip_or_fail("chromium is not installed (apt-get install chromium)")

    def dom(page: Path, profile: Path, fragment: str = "") -> str:
        done = subprocess.run([CHROMIUM, *FLAGS, f"--user-data-dir={profile}",
                               "--virtual-time-budget=3000", "--dump-dom",
                               page.as_uri() + fragment],
                              capture_output=True, text=True, timeout=180)
        assert done.returncode == 0, done.stderr[-2000:]
        assert "</html>" in done.stdout
        return done.stdout

    return dom


def ran(dom: str) -> dict:
    """What scripts did to the page: its title, any mark a payload leaves, and whether
    the report's own script ran (it marks <html> and counts the matrix rows)."""
    return {"title": re.search(r"<title>(.*?)</title>", dom, re.S).group(1),
            "marked": bool(re.search(r"<html[^>]*\spwned=", dom)) or f'id="{MARKUP_ID}"' in dom,
            "own script": bool(re.search(r'<html[^>]*class="[^"]*\bjs\b', dom)),
            "count": (re.search(r'id="count"[^>]*>([^<]*)<', dom) or [None, None])[1]}


def test_no_payload_runs_in_the_browser(validated, chromium, tmp_path):
    dom = chromium(validated.page, tmp_path / "profile")
    assert ran(dom) == {"title": "Keras conformance report", "marked": False,
                        "own script": True, "count": "showing 5 of 5 rows"}
    assert html.escape(markup_of("error-message"), quote=False) in dom  # visible text
    errors = chromium(validated.page, tmp_path / "profile", "#verdict=error&target="
                      + quote(PLUGIN_NAME))  # a filter on the hostile target id works
    assert ran(errors)["count"] == "showing 2 of 5 rows"  # exp and sin


PLANTED = ("<script>document.title='PWNED planted'</script>"
           "<img src=x onerror=\"document.documentElement.setAttribute('pwned','img')\">"
           "<div id=planted onclick=\"document.title='PWNED click'\"></div>")


def test_the_policy_stops_a_planted_script(validated, chromium, tmp_path):
    """An escaping bug would plant markup in the page: the policy keeps it from running,
    and the page's own script still runs. Without the policy the same page runs it."""
    text = validated.page.read_text(encoding="utf-8")
    planted = tmp_path / "planted.html"
    planted.write_text(text.replace("<main>", "<main>" + PLANTED, 1), encoding="utf-8")
    assert ran(chromium(planted, tmp_path / "profile")) == {
        "title": "Keras conformance report", "marked": False, "own script": True,
        "count": "showing 5 of 5 rows"}
    unguarded = tmp_path / "unguarded.html"
    unguarded.write_text(re.sub(r'<meta http-equiv="Content-Security-Policy"[^>]*>', "",
                                planted.read_text(encoding="utf-8")), encoding="utf-8")
    assert ran(chromium(unguarded, tmp_path / "profile"))["title"] == "PWNED planted"


# -- the Content-Security-Policy -------------------------------------------------------------------
def test_the_policy_hashes_the_exact_inline_script_and_style(tmp_path):
    page = Page(report.render([synthetic.summary(ops=6, targets=3)],
                              tmp_path / "index.html").read_text(encoding="utf-8"))
    assert_only_its_own_script(page)
    assets = report.inline_assets()
    assert page.inline["script"] == [str(assets["script"])]
    assert page.policy == assets["content_security_policy"]
    assert "img-src data:" in page.policy  # the heatmap's pixels


def test_an_asset_that_would_end_its_element_is_refused():
    with pytest.raises(ValueError, match="</script"):
        csp.check_inline("script", "var s = '</SCRIPT>';")
    with pytest.raises(ValueError, match="<!--"):
        csp.check_inline("script", "// <!-- old-style")
    assert csp.check_inline("style", "a { color: red }") == "a { color: red }"
    assert csp.source_hash("") == "'sha256-47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU='"


def test_the_regression_view_escapes_version_strings(tmp_path):
    evil = payload("regression")
    comparison = {
        "baseline": {"name": evil, "created": evil, "corpus": {"examples": 4, "seed": 1}},
        "compared": {"created": "today", "not_run": {"t": evil}},
        "entries": [{"op": "exp", "target": "t", "floatx": "float32", "change": "beyond",
                     "old": {"status": "pass", "examples": 4}, "new": {"status": "fail",
                                                                       "message": evil},
                     "notes": [evil]}],
        "versions": {"t": {"changed": True, "notes": [evil],
                           "info": [{"key": "backend_version", "old": "1.0", "new": evil}]}},
        "harness_change": {"harness": {"old": "1", "new": evil}}}
    page_text = regression.render(synthetic.summary(ops=2, targets=2), comparison,
                                  tmp_path / "index.html").read_text(encoding="utf-8")
    page = Page(page_text)
    assert_only_its_own_script(page)
    assert markup_of("regression") in "".join(page.text)
    assert not XML_INVALID.search(page_text)


def test_chart_labels_are_text():
    """A target id is a chart label: mathtext is off (before, ``$\\frac{$`` raised and
    the report was lost) and the SVG carries no style element of its own."""
    svg = charts.heatmap(["t$\\frac{$x", "b\x1b<i>"], np.array([[0, .1], [.1, 0]]),
                         np.ones((2, 2)), "hm-")
    assert "t$\\frac{$x" in svg and "&lt;i&gt;" in svg
    assert "\x1b" not in svg and "<style" not in svg


# -- junit.xml ------------------------------------------------------------------------------------
def test_junit_carries_every_hostile_field():
    evil = "<b>]]>" + "".join(map(chr, range(9))) + "\x1b[31m\ud800\ufffe end"
    summary = {"results": [
        {"op": evil, "family": evil, "target": evil, "floatx": evil, "status": status,
         "message": evil, "tolerance": evil, "known": {"reason": evil, "link": evil}}
        for status in ("error", "unsupported", "known", "pass")],
        "targets": [{"id": evil, "floatx": evil, "status": "broken", "reason": evil,
                     "fix": evil}]}
    buffer = io.BytesIO()
    junit.build(summary).write(buffer, encoding="utf-8", xml_declaration=True)
    root = ET.fromstring(buffer.getvalue())
    texts = [v for e in root.iter() for v in [e.text or "", *e.attrib.values()]]
    assert any("<b>]]>" in t for t in texts) and not any(XML_INVALID.search(t) for t in texts)
    assert root.get("tests") == "5"


# -- the terminal ---------------------------------------------------------------------------------
def test_printable_escapes_what_a_terminal_acts_on():
    text = "a\x1b[2Jb\x1b]0;title\x07c\rd\x08e\x00f\x9bg\u202eh\ud800i\tj\nk é 中"
    assert textsafe.printable(text) == \
        "a\\x1b[2Jb\\x1b]0;title\\x07c\\rd\\x08e\\x00f\\x9bg\\u202eh\\ud800i\tj\nk é 中"
    assert textsafe.printable("a\nb", one_line=True) == "a\\nb"
    assert textsafe.printable(None) == ""


def test_the_run_summary_escapes_target_text(capsys):
    evil = payload("summary") + "\nfake line"
    summary = {"results": [{"op": "exp", "target": evil, "floatx": "float32", "status": "error",
                            "message": evil}],
               "targets": [{"id": evil, "status": "broken", "reason": evil, "fix": evil}],
               "run": {"seed": 1, "harness_errors": [{"case": "exp", "traceback": evil}]}}
    runcli._print_summary(summary, Path("out"))
    out = capsys.readouterr().out
    assert not TERMINAL_CONTROL.search(out.encode())
    assert "\\x1b]0;PWNED-summary" in out
    assert "\nfake line" not in out.split("harness error")[0]  # one line per message


def test_progress_lines_escape_target_ids():
    line = progress_line(1, 2, "exp-float32", [{"status": "error", "target": "t\x1b[2J\n"}], 0.1)
    assert "\x1b" not in line and "\n" not in line and "t\\x1b[2J\\n" in line


def test_a_target_that_cannot_start_says_why_without_control_characters(tmp_path):
    """A real worker whose floatx() raises the payload: the run says why it cannot run."""
    target = targets_mod.Target(
        id="hostile", flavor="ops-module", backend="hostile_text", python=sys.executable,
        pythonpath=(FAKE_PLUGINS,), extra_env=(("HOSTILE_TEXT_FAIL_START", "1"),), timeout_s=20)
    said: list[str] = []
    run = Run([target], {target.id: sys.executable}, floatx=["float32"], out_dir=None,
              settings=RunSettings(seed=1, max_examples=1, shrink_calls=0),
              workdir=tmp_path, say=said.append)
    run.open()
    try:
        run.switch_floatx("float32")
    finally:
        run.close()
    cannot = [line for line in said if line.startswith("target hostile cannot run")]
    assert cannot and "RuntimeError: \\x1b]0;PWNED-start-error\\x07" in cannot[0]
    assert not any(TERMINAL_CONTROL.search(line.encode()) for line in said)


def test_validate_prints_an_import_error_without_control_characters(capsys):
    evil = payload("import")
    verdict = ImportVerdict(False, "error", f"does not import: ImportError: {evil}",
                            where=[f"plugin.py:3 in <module>: raise ImportError({evil!r})"],
                            using_line=evil)
    printing.print_import(verdict, "plugin")
    out = capsys.readouterr().out
    assert not TERMINAL_CONTROL.search(out.encode()) and "\\x1b]0;PWNED-import" in out
