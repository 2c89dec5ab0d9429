"""The HTML report (plus junit.xml and the merged summary.json).

    render(summaries, out_html, results_dirs=None) -> out_html

``summaries`` are `conformance.store.load` structures. Several are merged into one
(see `conformance.report.merging`: a later record of the same (op, target, floatx)
wins; shards of one run simply add up). ``results_dirs``, when given, holds the
results folder of each summary (same order) so counterexample ``.npz`` files can be
found; they are copied next to the report and used by the repro scripts.

The page opens with the divergences by cause (`conformance.report.causes`): the
unexpected ones first, then each known cause of the registry with the results it
explains, then its stale entries; the merged summary.json says the stale entries under
``known_stale`` when the run recorded its registry.

The page is one self-contained file: inline CSS, a little plain JavaScript (filters,
sorting, units; everything is visible without it), and inline SVG charts from
matplotlib. Everything that comes from results is text a target controls: every
``{{ }}`` of the templates is escaped by jinja2's autoescape, after `fmt.clean_text`
replaced the characters HTML and XML cannot carry (the environment's `finalize`), and
the page's Content-Security-Policy runs no script but its own (`conformance.report.csp`).
"""
from __future__ import annotations

import os
import shutil
from pathlib import Path

import jinja2
from markupsafe import Markup

from conformance import __version__, known, store
from conformance.report import csp, junit, model
from conformance.report.fmt import LABELS, VERDICTS, clean_text
from conformance.report.merging import merge, source_dirs, strip_sources

__all__ = ["render", "merge", "inline_assets", "TEMPLATES"]

TEMPLATES = Path(__file__).resolve().parent.parent / "templates"
# The tolerance model's page; a source checkout has it, an installed wheel does not.
TOLERANCE_DOC = Path(__file__).resolve().parents[2] / "docs" / "tolerance.md"


_ENVIRONMENT: jinja2.Environment | None = None


def _finalize(value):
    """Every ``{{ }}`` value on its way into the page: text without the characters HTML
    and XML cannot carry (NUL, ESC, ...); markup built by the harness (charts, the page's
    own script and style) stays markup."""
    if isinstance(value, Markup):
        return Markup(clean_text(value))
    return clean_text(value) if isinstance(value, str) else value


def _environment() -> jinja2.Environment:
    """One environment per process: templates are compiled once (auto_reload still
    picks up edited template files)."""
    global _ENVIRONMENT
    if _ENVIRONMENT is None:
        _ENVIRONMENT = jinja2.Environment(
            loader=jinja2.FileSystemLoader(str(TEMPLATES)), autoescape=True,
            trim_blocks=True, lstrip_blocks=True, undefined=jinja2.StrictUndefined,
            finalize=_finalize)
    return _ENVIRONMENT


def _asset(name: str) -> str:
    return (TEMPLATES / name).read_text(encoding="utf-8")


def inline_assets(regression: bool = False) -> dict:
    """The page's own script and style (exactly as the page carries them) and the
    Content-Security-Policy that allows those two and nothing else."""
    script = csp.check_inline("script", _asset("report.js"))
    style = csp.check_inline("style", _asset("report.css")
                             + (_asset("regression.css") if regression else ""))
    return {"script": Markup(script), "style": Markup(style),
            "content_security_policy": csp.policy(script, style)}


def _tolerance_doc_href(out_dir: Path) -> str | None:
    """A link from the report's folder to docs/tolerance.md, when the page is on disk."""
    if not TOLERANCE_DOC.is_file():
        return None
    try:
        return Path(os.path.relpath(TOLERANCE_DOC, out_dir.resolve())).as_posix()
    except ValueError:  # another drive (Windows): no relative path exists
        return TOLERANCE_DOC.as_uri()


def render(summaries: list[dict], out_html: Path, results_dirs: list[Path] | None = None,
           *, max_histograms: int = model.MAX_HISTOGRAMS, title: str | None = None,
           regression: dict | None = None) -> Path:
    """Write ``out_html`` and, beside it, ``junit.xml`` and ``summary.json``.

    `max_histograms` caps the per-op histograms (the ops with the worst results get
    them first) so very large runs stay fast to render and small to open.
    `regression` is the view model of a baseline comparison, shown on top when given
    (see `conformance.report.regression.render`).
    """
    out_html = Path(out_html)
    out_dir = out_html.parent
    out_dir.mkdir(parents=True, exist_ok=True)
    summaries = list(summaries)
    dirs = source_dirs(results_dirs, len(summaries))
    merged = merge(summaries)
    context = model.build(merged, dirs, out_dir, max_histograms)
    copied = context.pop("copied")
    html = _environment().get_template("report.html.j2").render(
        title=title or "Keras conformance report", version=__version__,
        verdict_names=VERDICTS, verdict_labels=LABELS, regression=regression,
        tolerance_doc=_tolerance_doc_href(out_dir), **inline_assets(bool(regression)),
        **context)
    tmp = out_html.with_name(out_html.name + ".tmp")
    tmp.write_text(html, encoding="utf-8")
    tmp.replace(out_html)
    for destination, source in copied.items():
        destination.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, destination)
    plain = strip_sources(merged)
    stale = known.summary_stale(plain)
    if stale is not None:
        plain["known_stale"] = stale
    junit.write(plain, out_dir / "junit.xml")
    store.write_summary(out_dir, plain)
    return out_html
