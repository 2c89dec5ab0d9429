"""junit.xml for CI UIs: one test case per (op, target, floatx).

- one ``<testsuite>`` per target; test case ``classname`` is ``<family>.<op>``, its name
  ``<op>[<target>-<floatx>]``;
- divergent verdicts (fail, nan, dtype, shape, error, crash, timeout) are
  ``<failure type="<verdict>">``; ``unsupported`` is ``<skipped>``;
- ``known`` passes, with a ``known`` property holding the reason and the raw verdict in
  ``<system-out>``; ``convention`` (a gradient at a non-differentiable point) passes,
  with its message in ``<system-out>``;
- a target that could not run adds one ``setup`` test case: ``<error>`` when broken,
  ``<skipped>`` when not provisioned.
"""
from __future__ import annotations

import xml.etree.ElementTree as ET
from collections import defaultdict
from pathlib import Path

from conformance.report.fmt import DIVERGENT, clean_text, floatx_key, number, sci


def _case(suite, classname: str, name: str, seconds) -> ET.Element:
    case = ET.SubElement(suite, "testcase", classname=clean_text(classname), name=clean_text(name))
    value = number(seconds)
    case.set("time", f"{value:.3f}" if value is not None and value == value else "0")
    return case


def build(summary: dict) -> ET.ElementTree:
    by_target: dict = defaultdict(list)
    for result in summary.get("results") or []:
        by_target[str(result.get("target"))].append(result)
    not_ready = [t for t in summary.get("targets") or [] if t.get("status") != "ready"]
    for target in not_ready:
        by_target.setdefault(str(target.get("id")), [])
    root = ET.Element("testsuites", name="keras-conformance")
    totals = defaultdict(int)
    for tid in sorted(by_target):
        suite = ET.SubElement(root, "testsuite", name=clean_text(tid))
        counts = defaultdict(int)
        for target in [t for t in not_ready if str(t.get("id")) == tid]:
            case = _case(suite, f"targets.{tid}", f"setup[{tid}-{target.get('floatx')}]", 0)
            reason = clean_text(target.get("reason") or "")
            fix = clean_text(target.get("fix") or "")
            kind = "error" if target.get("status") == "broken" else "skipped"
            element = ET.SubElement(case, kind, message=clean_text(
                f"{target.get('status')}: {reason.splitlines()[0] if reason else ''}"))
            element.text = f"{reason}\nfix: {fix}" if fix else reason
            counts["tests"] += 1
            counts["errors" if kind == "error" else "skipped"] += 1
        for result in sorted(by_target[tid], key=lambda r: (str(r.get("family")), str(r.get("op")),
                                                             floatx_key(r.get("floatx")))):
            op, floatx, status = str(result.get("op")), str(result.get("floatx")), result.get("status")
            case = _case(suite, f"{result.get('family') or 'ops'}.{op}", f"{op}[{tid}-{floatx}]",
                         result.get("backend_s"))
            counts["tests"] += 1
            message = clean_text(result.get("message") or "")
            if status in DIVERGENT:
                counts["failures"] += 1
                failure = ET.SubElement(case, "failure", type=str(status),
                                        message=f"{status}: {message}"[:1000])
                details = [f"verdict: {status}", f"message: {message}",
                           f"tolerance: {result.get('tolerance', '')}",
                           f"examples: {result.get('examples')}",
                           f"worst error / tolerance: {sci(result.get('worst_ratio'))}",
                           f"max ULP: {sci(result.get('max_ulp'))}",
                           f"max abs error: {sci(result.get('max_abs_err'))}"]
                failure.text = clean_text("\n".join(details))
            elif status == "unsupported":
                counts["skipped"] += 1
                ET.SubElement(case, "skipped", message=f"unsupported: {message}"[:1000])
            elif status == "convention":  # a right subgradient, not the reference's choice
                out = ET.SubElement(case, "system-out")
                out.text = clean_text(f"gradient convention at a non-differentiable point: {message}")
            elif status == "known":
                known = result.get("known") or {}
                properties = ET.SubElement(case, "properties")
                ET.SubElement(properties, "property", name="known",
                              value=clean_text(known.get("reason") or ""))
                if known.get("link"):
                    ET.SubElement(properties, "property", name="known_link",
                                  value=clean_text(known["link"]))
                out = ET.SubElement(case, "system-out")
                out.text = clean_text(f"known divergence (verdict {result.get('verdict')}): "
                                      f"{known.get('reason', '')}\n{message}")
        for key in ("tests", "failures", "errors", "skipped"):
            suite.set(key, str(counts[key]))
            totals[key] += counts[key]
    for key in ("tests", "failures", "errors", "skipped"):
        root.set(key, str(totals[key]))
    ET.indent(root, space=" ")
    return ET.ElementTree(root)


def write(summary: dict, path: Path) -> Path:
    tree = build(summary)
    tmp = Path(path).with_suffix(".xml.tmp")
    tree.write(tmp, encoding="utf-8", xml_declaration=True)
    tmp.replace(path)
    return Path(path)
