"""Scenarios floatx and runtime: what a target's settings and dtypes say.

- floatx: variables, constants, op results and ones() take keras.json's floatx
  (float16 / float32 / float64)
- runtime: set_floatx / set_epsilon / set_image_data_format take effect; invalid
  values raise the error the flavor's reference source raises
"""
from __future__ import annotations

from conformance import kerasfacts
from conformance.configsuite.processes import SetupFailed, TargetRun, section
from conformance.configsuite.records import first_lines, make_record
from conformance.targets import FLOATX, Target

NO_ANSWER = "worker did not start or answer"
SETTERS = (("set_floatx", "floatx"), ("set_epsilon", "epsilon"),
           ("set_image_data_format", "image_data_format"))


def _dtype_text(entry) -> str:
    if not isinstance(entry, dict):
        return str(entry)
    if "error" in entry:
        error = entry["error"]
        return f"raised {error.get('type')}: {error.get('message')}"
    value, declared = entry.get("value"), entry.get("declared")
    return value if declared == value else f"{value} (declared {declared})"


# -- floatx ---------------------------------------------------------------------------
def scenario_floatx(run: TargetRun, floatxs=FLOATX) -> list[dict]:
    return [_floatx_check(run, floatx) for floatx in floatxs]


def _floatx_check(run: TargetRun, floatx: str) -> dict:
    target = run.target
    rec = lambda *a, **k: make_record(target.id, "floatx", f"floatx/{floatx}", *a,
                                      floatx=floatx, **k)
    if target.flavor == "ops-module":
        return rec("unsupported", detail="an ops-module plugin has no floatx to configure")
    setup = "default" if floatx == kerasfacts.DEFAULT_FLOATX else f"floatx-{floatx}"
    try:
        reply = run.probe(setup, "settings", "dtypes")
        settings, dtypes = section(reply, "settings"), section(reply, "dtypes")
    except SetupFailed as exc:
        return rec("error", None, NO_ANSWER, first_lines(exc))
    names = [n for n in dtypes if n != "python_floats"]
    expected = {"floatx()": floatx, **{n: floatx for n in names}}
    observed = {"floatx()": settings.get("floatx"),
                **{n: _dtype_text(dtypes[n]) for n in names}}
    how = "; ".join(f"{n}: {dtypes[n].get('how')}" for n in names
                    if isinstance(dtypes[n], dict))
    extra = dtypes.get("python_floats")
    if isinstance(extra, dict):
        how += (f". For information: {extra.get('how')} gives {_dtype_text(extra)} "
                "(Keras 3 types Python floats as float32 whatever floatx is)")
    return rec("pass" if observed == expected else "fail", expected, observed,
               f"keras.json floatx {floatx}. {how}")


# -- runtime setters and invalid values ---------------------------------------------------
def scenario_runtime(run: TargetRun) -> list[dict]:
    target = run.target
    rec = lambda check, *a, **k: make_record(target.id, "runtime", check, *a, **k)
    try:
        reply = run.probe("default", "settings", "runtime", "invalid")
        settings = section(reply, "settings")
        runtime, invalid = section(reply, "runtime"), section(reply, "invalid")
    except SetupFailed as exc:
        return [rec("runtime", "error", None, NO_ANSWER, first_lines(exc))]
    records = [_setter_check(rec, setter, getter, runtime.get(setter) or {}, settings)
               for setter, getter in SETTERS]
    records += [_invalid_check(target, rec, setter, value, invalid.get(setter) or {})
                for setter, value in kerasfacts.INVALID_VALUES]
    return records


def _setter_check(rec, setter: str, getter: str, entry: dict, settings: dict) -> dict:
    """A valid value set at run time is read back, and the old one restored."""
    check = f"runtime/{setter}"
    if "unsupported" in entry:
        return rec(check, "unsupported", detail=entry["unsupported"])
    if "error" in entry:
        error = entry["error"]
        return rec(check, "error", None, f"raised {error.get('type')}: {error.get('message')}",
                   f"{setter}({entry.get('set')!r})")
    value = entry.get("set")
    expected = {f"{getter}()": value, "restored": settings.get(getter)}
    observed = {f"{getter}()": entry.get("read"), "restored": entry.get("restored")}
    if "constant" in entry:
        expected["new constant"] = value
        observed["new constant"] = _dtype_text(entry["constant"])
    return rec(check, "pass" if observed == expected else "fail", expected, observed,
               f"{setter}({value!r}) at run time, then back to {settings.get(getter)!r}")


def _invalid_check(target: Target, rec, setter: str, value: str, entry: dict) -> dict:
    check = f"invalid/{setter}"
    if "unsupported" in entry:
        return rec(check, "unsupported", detail=entry["unsupported"])
    if target.flavor in kerasfacts.INVALID_ERRORS:
        rule = kerasfacts.INVALID_ERRORS[target.flavor][setter]
        source = kerasfacts.INVALID_SOURCES[target.flavor]
    else:  # a plugin that has the setter: any ValueError, as Keras raises
        rule, source = ("ValueError", ""), "a ValueError, as Keras raises"
    raised = entry.get("raised") or None
    before, after = entry.get("before"), entry.get("after")
    observed = {"raises": raised.get("type") if raised else None, "value after": after}
    if raised:
        observed["message"] = raised.get("message")
    if rule is None:  # the reference accepts the value and stores it
        expected = {"raises": None, "value after": value}
        ok = raised is None
    else:
        kind, words = rule
        expected = {"raises": kind, "message contains": words, "value after": before}
        ok = (raised is not None and raised.get("type") == kind
              and words in str(raised.get("message")) and after == before)
    detail = f"{setter}({value!r}); reference: {source}"
    if after != before:
        detail += f"; the value was stored ({after!r}); the probe put {before!r} back"
    return rec(check, "pass" if ok else "fail", expected, observed, detail)
