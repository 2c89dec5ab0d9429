"""The record formats the harness writes, as JSON Schemas (draft 2020-12) the tests check.

Every file is standard JSON written through `store.jsonable`: a float that is NaN or
infinite is the string ``"nan"``, ``"inf"`` or ``"-inf"``, so every number that can be
non-finite below also accepts those three strings. Required keys are the ones always
written; the rest are described under ``properties`` and may be absent. Records grow:
keys this module does not know are allowed.

**<out>/results.jsonl** (`store.ResultsWriter`): one JSON object per line, flushed as
it is written; ``kind`` says which of six:

- ``run``: the run header, written twice. At the start (`runloop.Run._run_record`):
  ``seed``, ``harness_version``, ``started`` (local time, ISO 8601), ``max_examples``,
  ``floatx`` (the list run), ``argv``, ``targets`` (ids selected), ``ops`` (the (op,
  floatx) cases planned), ``memory_caps`` (target id -> bytes of resident memory its
  workers may hold), ``hypothesis`` (its settings; null for baseline replays), and
  the command's header: ``profile``, ``shard`` (``"I/N"`` or null), ``baseline`` (the
  name, for `conformance compare`), and ``options`` (what ``conformance run --resume``
  runs with again: every run option as a command line gives it, resolved: the seed
  drawn, absolute paths, the target ids selected). A resumed run keeps that record
  and adds ``resumed``: ``{started, argv, cases_done}`` per resumption. At the end
  (`Run.close`): ``finished``, ``duration_s``, ``cases_done`` (a resumed run's counts
  the cases the interrupted one finished) and ``harness_errors`` (``{case, retried,
  traceback}`` for each bug of the harness itself), plus ``interrupted`` (``SIGINT``,
  ``SIGTERM``) when a signal stopped the run. A run killed outright has no end.
- ``target``: one per (target, floatx), `probe.TargetStatus` plus ``floatx``: ``id``,
  ``flavor``, ``backend``, ``status`` (ready | not provisioned | damaged | broken), ``reason``,
  ``fix``, ``python`` (null when there is no interpreter) and ``info`` (what the worker
  reports about its backend: versions, floatx, epsilon, ...; empty unless ready).
- ``result``: one per (op, target, floatx) (`engine.Engine._record`, and the baseline
  replays of `baseline.replay`): ``op``, ``family``, ``target``, ``floatx``, ``status``,
  ``verdict``, ``tolerance`` (the formula) and ``message``. ``verdict`` is one of
  `compare.SEVERITY`; ``status`` is the verdict, or ``known`` when the known-divergence
  registry lists a divergent verdict (then ``known`` holds its ``reason`` and ``link``).
  A case that ran also has ``examples``, ``counts`` (examples per verdict),
  ``max_abs_err``, ``max_ulp``, ``worst_ratio`` (error / allowed), ``ratios`` (the
  worst ratio of each example, at most `compare.MAX_RATIOS`), ``backend_s`` and
  ``counterexample`` (null unless divergent); the engine adds ``wall_s``, ``skipped``
  (examples not sent after repeated crashes), ``override`` (the override table's
  ``factor`` and ``reasons``) and ``conventions`` (gradient cases with
  non-differentiable points, `conformance.kinks`: each point's label -> the
  ``reference``'s convention and the ``values`` returned there, as multiples of the
  cotangent) and ``specials`` (edge cases, `conformance.specials`: each special
  input's label -> the ``reference``'s values and the ``values`` returned there, as
  text) where they apply. An op with no call for the target's
  flavor is recorded without the figures (status ``unsupported``). A baseline replay
  writes no ``wall_s``, and a result ``broken`` for a target that did not start.
  A counterexample (`engine.Engine._counterexample`) holds the divergent ``target``,
  its ``verdict`` and ``message``, whether it was ``shrunk`` and in how many
  ``shrink_calls``, ``worst_index`` ([output, flat index] or null), the ``inputs``, the
  float64 ``reference`` outputs, every target's ``outputs`` on that input
  (``{status: "ok", outputs}`` or ``{status, message}``), the ``call`` made (``fn``,
  ``args``, ``kwargs``), the ``tolerance`` and, when the run has an output folder,
  ``arrays`` (the .npz of full-precision arrays, relative to it). Arrays are
  ``{dtype, shape}`` plus ``values`` (nested lists) when small, else ``head`` and
  ``min``/``max``/``mean`` (`engine.encode_array`).
- ``pairwise``: one per (op, floatx) the engine ran (not for baseline replays): ``op``,
  ``family``, ``floatx`` and ``pairs``, keyed ``"a|b"`` (target ids, a < b):
  ``examples``, ``disagreements``, ``max_ulp``, ``max_ratio``.
- ``config``: one per configuration check (`configsuite.make_record`): ``target``,
  ``scenario``, ``check``, ``op`` (``config/<check>``), ``floatx``, ``status`` (pass |
  fail | error | unsupported | known), ``verdict`` (the status before the registry),
  ``expected``, ``observed`` (any JSON) and ``detail``; ``known`` as for results.
- ``case``: written once a case's records all are (`runloop.Run.check`, and the
  pytest plugin after a configuration test): ``case``, its id (``exp-float32``, or
  ``config/<scenario>-<target>``). `conformance run --resume` keeps the records of
  these cases and runs the others again; the summary has nothing of it.

**<out>/summary.json** (`store.summarize`, rewritten by the report when it renders):
``run`` (the two run records merged: start and end keys in one object; a report of
several shards merges the headers, keeps each under ``shards`` and may turn a field
whose shards differ into the list of their values), and the last record of each key,
without ``kind``: ``targets`` (by id and floatx), ``results`` (op, target, floatx),
``pairwise`` (op, floatx) and ``config`` (target, check; the report's rewrite leaves
``config`` out when there is none).

**<baseline>/manifest.json** (`baseline.replay.save`): ``format``
(``keras-conformance-baseline``), ``format_version``, ``name``, ``created``,
``duration_s``, ``argv``, ``harness`` (versions of the harness, Python, NumPy,
Hypothesis), ``store_limit`` (outputs with more elements are kept as digests),
``corpus`` (``seed``, ``examples`` per case, ``cases``: ``{op, family, floatx, file,
examples, sha256}``), ``targets`` (by id: ``flavor``, ``backend``, ``env``,
``interpreter``, and where known ``info`` and ``broken`` by floatx, ``environment``,
``pip_freeze``; a target that could not start has ``status``, ``reason``, ``fix``
instead of ``env`` and ``interpreter``) and ``entries``, one per (op, target, floatx):
``op``, ``target``, ``floatx``, ``file`` (its stored outputs, `baseline.outputs`),
``status``, ``message``, ``examples``, ``counts``, ``max_abs_err``, ``max_ulp``,
``worst_ratio``.

**<out>/comparison.json** (`baseline.replay.compare_baseline`): ``format_version``,
``baseline`` (``name``, ``path``, ``created``, ``harness``, ``corpus`` seed and
examples), ``compared`` (``created``, ``duration_s``, ``harness``, ``targets`` run,
``not_run``: target -> why), ``counts`` (entries per change class of
`baseline.drift.CHANGES`), ``regressions``, ``status`` (ok | regressed),
``harness_change`` (field -> ``{old, new}``), ``versions`` (target ->
`baseline.versions.version_changes`) and ``entries``: ``op``, ``family``, ``target``,
``floatx``, ``change``, ``old`` and ``new`` (``status``, ``message``, ``max_ulp``,
``worst_ratio``, ``examples``; ``new`` is null when not run), the drift figures
``drift_ulp``, ``drift_abs``, ``drift_ratio`` (null where not measured),
``changed_examples``, ``notes`` and, for entries replayed, ``unmeasured_outputs``.

`problems(kind, record)` checks one record or file against its schema (it needs the
``jsonschema`` package of the ``test`` extra; the harness itself never imports it).
"""
from __future__ import annotations

from conformance import compare, kerasfacts, targets
from conformance.baseline.drift import CHANGES
from conformance.baseline.outputs import FORMAT, FORMAT_VERSION
from conformance.configsuite.records import FAILING as CONFIG_FAILING

DIALECT = "https://json-schema.org/draft/2020-12/schema"

VERDICTS = list(compare.SEVERITY)  # what a comparison finds
STATUSES = VERDICTS + ["known"]  # what is reported: a listed divergence becomes known
CONFIG_VERDICTS = ["pass", "fail", "error", "unsupported"]
TARGET_STATUSES = ["ready", "not provisioned", "damaged", "broken"]

# -- building blocks --------------------------------------------------------------------
NONFINITE = {"enum": ["nan", "inf", "-inf"]}  # store.jsonable's spelling of NaN and inf
STRING = {"type": "string"}
INTEGER = {"type": "integer"}
COUNT = {"type": "integer", "minimum": 0}
NUMBER = {"type": "number"}
REAL = {"anyOf": [NUMBER, NONFINITE]}  # a float that may be NaN or infinite
OPTIONAL_REAL = {"anyOf": [NUMBER, NONFINITE, {"type": "null"}]}
STRINGS = {"type": "array", "items": STRING}
TIME = {"type": "string", "pattern": r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}"}  # runloop.now_text
FLOATX = {"enum": list(kerasfacts.FLOATX_VALUES)}


def _object(required: dict, optional: dict | None = None, **more) -> dict:
    """An object schema: `required` keys (name -> schema) always written, `optional`
    ones described; other keys allowed unless `more` says otherwise."""
    return {"type": "object", "required": list(required),
            "properties": {**required, **(optional or {})}, **more}


KNOWN = _object({"reason": STRING, "link": STRING})

DEFS = {
    # engine.encode_array: values whole (nested lists; a 0-d array gives one value)
    # when small, else the first elements and statistics of the finite ones
    "scalar": {"anyOf": [NUMBER, {"type": "boolean"}, NONFINITE]},
    "nested": {"anyOf": [{"$ref": "#/$defs/scalar"},
                         {"type": "array", "items": {"$ref": "#/$defs/nested"}}]},
    "array": _object({"dtype": STRING, "shape": {"type": "array", "items": COUNT}},
                     {"values": {"$ref": "#/$defs/nested"},
                      "head": {"type": "array",
                               "items": {"anyOf": [{"$ref": "#/$defs/scalar"}, STRING]}},
                      "min": NUMBER, "max": NUMBER, "mean": NUMBER}),
}

# -- results.jsonl ----------------------------------------------------------------------
RUN_START = _object(
    {"seed": INTEGER, "harness_version": STRING, "started": TIME, "max_examples": COUNT,
     "floatx": {"type": "array", "items": FLOATX}, "argv": STRINGS, "targets": STRINGS,
     "ops": COUNT,
     "hypothesis": {"anyOf": [{"type": "null"}, _object(
         {}, {"version": STRING, "max_examples": COUNT, "shrink_calls": COUNT,
              "phases": STRINGS, "deadline": {}, "derandomize": {"type": "boolean"},
              "seed_per_case": STRING, "example_db": STRING})]}},
    # the command's header: present in every record `conformance run`, `validate` and
    # `compare` write, though a Run built without one writes none
    {"profile": STRING, "shard": {"type": ["string", "null"]}, "baseline": STRING,
     # bytes of resident memory each target's workers may hold (conformance.memory)
     "memory_caps": {"type": "object", "additionalProperties": COUNT},
     "options": {"type": "object"},  # conformance.resume.recorded
     "resumed": {"type": "array", "items": _object(
         {"started": TIME, "argv": STRINGS, "cases_done": COUNT})}})

HARNESS_ERROR = _object({"case": STRING, "retried": {"type": "boolean"},
                         "traceback": STRING})
RUN_END = _object({"finished": TIME, "duration_s": NUMBER, "cases_done": COUNT,
                   "harness_errors": {"type": "array", "items": HARNESS_ERROR}},
                  {"interrupted": {"enum": ["SIGINT", "SIGTERM"]}})
# a case whose records are all written (conformance.resume): "exp-float32", or
# "config/<scenario>-<target>" for a configuration check
CASE = _object({"case": STRING})

TARGET = _object({"id": STRING, "flavor": {"enum": list(targets.FLAVORS)}, "backend": STRING,
                  "status": {"enum": TARGET_STATUSES}, "reason": STRING, "fix": STRING,
                  "python": {"type": ["string", "null"]}, "info": {"type": "object"},
                  "floatx": FLOATX})

COUNTEREXAMPLE = _object(
    {"target": STRING, "verdict": {"enum": VERDICTS}, "message": STRING,
     "shrunk": {"type": "boolean"}, "shrink_calls": COUNT,
     "worst_index": {"anyOf": [{"type": "null"},
                               {"type": "array", "items": COUNT, "minItems": 2, "maxItems": 2}]},
     "inputs": {"type": "object"},
     "reference": {"type": "array", "items": {"$ref": "#/$defs/array"}},
     "outputs": {"type": "object", "additionalProperties": {"anyOf": [
         _object({"status": {"const": "ok"},
                  "outputs": {"type": "array", "items": {"$ref": "#/$defs/array"}}}),
         _object({"status": {"type": ["string", "null"]}, "message": STRING})]}},
     "call": _object({"fn": STRING, "args": {}, "kwargs": {}},
                     {"wrt": {"type": "array", "items": STRING},
                      "cotangents": {"type": "array", "items": STRING}}),
     "tolerance": STRING},
    {"arrays": STRING})

_RESULT_FIGURES = {  # what a case that ran (or was replayed) always has
    "examples": COUNT, "counts": {"type": "object", "additionalProperties": COUNT,
                                  "propertyNames": {"enum": VERDICTS}},
    "max_abs_err": REAL, "max_ulp": REAL, "worst_ratio": REAL,
    "ratios": {"type": "array", "items": REAL, "maxItems": compare.MAX_RATIOS},
    "backend_s": NUMBER,
    "counterexample": {"anyOf": [{"type": "null"}, COUNTEREXAMPLE]},
}


def _status_is_verdict(verdicts: list[str], known_from) -> list[dict]:
    """`status` equals `verdict`, except that a verdict of `known_from` may be reported
    as ``known``, which then says why (``known``)."""
    rules = [{"if": {"properties": {"status": {"const": v}}, "required": ["status"]},
              "then": {"properties": {"verdict": {"const": v}}}} for v in verdicts]
    rules.append({"if": {"properties": {"status": {"const": "known"}}, "required": ["status"]},
                  "then": {"required": ["known"],
                           "properties": {"verdict": {"enum": sorted(known_from)}}}})
    return rules


RESULT = _object(
    {"op": STRING, "family": STRING, "target": STRING, "floatx": FLOATX,
     "status": {"enum": STATUSES}, "verdict": {"enum": VERDICTS}, "tolerance": STRING,
     "message": STRING},
    {**_RESULT_FIGURES, "wall_s": NUMBER, "skipped": COUNT, "known": KNOWN,
     "conventions": {"type": "object", "additionalProperties": _object(
         {"reference": NUMBER, "values": {"type": "array", "items": NUMBER}})},
     "specials": {"type": "object", "additionalProperties": _object(
         {"reference": STRINGS, "values": STRINGS})},
     "override": _object({"factor": NUMBER, "reasons": STRINGS})},
    allOf=[
        *_status_is_verdict(VERDICTS, compare.DIVERGENT),
        # only an op the target's flavor has no call for is recorded without figures
        {"if": {"not": {"properties": {"status": {"const": "unsupported"}}}},
         "then": {"required": list(_RESULT_FIGURES)}},
    ])

PAIR = _object({"examples": COUNT, "disagreements": COUNT, "max_ulp": REAL,
                "max_ratio": REAL})
PAIRWISE = _object({"op": STRING, "family": STRING, "floatx": FLOATX,
                    "pairs": {"type": "object", "additionalProperties": PAIR,
                              "propertyNames": {"pattern": r"^[^|]+\|[^|]+$"}}})

CONFIG = _object(
    {"target": STRING, "scenario": STRING, "check": STRING,
     "op": {"type": "string", "pattern": "^config/"}, "floatx": FLOATX,
     "status": {"enum": CONFIG_VERDICTS + ["known"]}, "verdict": {"enum": CONFIG_VERDICTS},
     "expected": {}, "observed": {}, "detail": STRING},
    {"known": KNOWN},
    allOf=_status_is_verdict(CONFIG_VERDICTS, CONFIG_FAILING))

# -- summary.json -----------------------------------------------------------------------
RUN_HEADER = {  # the run records merged: a started run has the start's keys
    "type": "object",
    "properties": {**RUN_START["properties"], **RUN_END["properties"]},
    "required": RUN_START["required"]}
SUMMARY = _object(
    {"run": {"if": {"type": "object", "required": ["shards"]},
             # several shards merged (report.merging): fields may be lists of values
             "then": _object({"shards": {"type": "array", "items": RUN_HEADER}}),
             "else": RUN_HEADER},
     "targets": {"type": "array", "items": TARGET},
     "results": {"type": "array", "items": RESULT},
     "pairwise": {"type": "array", "items": PAIRWISE}},
    # store.summarize always writes it; the report's rewrite only when there are some
    {"config": {"type": "array", "items": CONFIG}})

# -- baselines --------------------------------------------------------------------------
HARNESS_VERSIONS = _object({"harness": STRING, "python": STRING, "numpy": STRING,
                            "hypothesis": STRING})
BASELINE_ENTRY = _object(
    {"op": STRING, "target": STRING, "floatx": FLOATX, "file": STRING,
     "status": {"enum": VERDICTS}, "message": STRING, "examples": COUNT,
     "counts": _RESULT_FIGURES["counts"], "max_abs_err": REAL, "max_ulp": REAL,
     "worst_ratio": REAL})
BASELINE_TARGET = {
    "type": "object",
    "required": ["flavor", "backend"],
    "properties": {
        "flavor": {"enum": list(targets.FLAVORS)}, "backend": STRING,
        "env": {"type": ["string", "null"]}, "interpreter": {"type": ["string", "null"]},
        "info": {"type": "object", "additionalProperties": {"type": "object"},
                 "propertyNames": FLOATX},
        "broken": {"type": "object", "additionalProperties": STRING,
                   "propertyNames": FLOATX},
        "environment": {"type": "object"},
        "pip_freeze": {"anyOf": [_object({"packages": STRINGS}), _object({"error": STRING})]},
        "status": {"enum": TARGET_STATUSES}, "reason": STRING, "fix": STRING},
    # selected and resolved (versions.collect_versions), or never started (a TargetStatus)
    "anyOf": [{"required": ["env", "interpreter"]}, {"required": ["status", "reason", "fix"]}]}
CORPUS_CASE = _object(  # corpus.save's index entry, with the op's name, family, floatx
    {"op": STRING, "family": STRING, "floatx": FLOATX, "file": STRING, "examples": COUNT,
     "sha256": {"type": "string", "pattern": "^[0-9a-f]{64}$"}})
MANIFEST = _object(
    {"format": {"const": FORMAT}, "format_version": {"const": FORMAT_VERSION},
     "name": STRING, "created": TIME, "duration_s": NUMBER, "argv": STRINGS,
     "harness": HARNESS_VERSIONS, "store_limit": COUNT,
     "corpus": _object({"seed": INTEGER, "examples": COUNT,
                        "cases": {"type": "array", "items": CORPUS_CASE}}),
     "targets": {"type": "object", "additionalProperties": BASELINE_TARGET},
     "entries": {"type": "array", "items": BASELINE_ENTRY}})

_SIDE = {"status": {"type": ["string", "null"]}, "message": {"type": ["string", "null"]},
         "max_ulp": OPTIONAL_REAL, "worst_ratio": OPTIONAL_REAL,
         "examples": {"type": ["integer", "null"]}}
COMPARISON_ENTRY = _object(
    {"op": STRING, "family": {"type": ["string", "null"]}, "target": STRING, "floatx": FLOATX,
     "change": {"enum": list(CHANGES)},
     # the baseline's figures (read back with .get: null when it lacked one)
     "old": _object(_SIDE, {"status_today": STRING}),
     "new": {"anyOf": [{"type": "null"}, _object(_SIDE)]},
     "drift_ulp": OPTIONAL_REAL, "drift_abs": OPTIONAL_REAL, "drift_ratio": OPTIONAL_REAL,
     "changed_examples": COUNT, "notes": STRINGS},
    {"unmeasured_outputs": COUNT})
OLD_NEW = _object({"old": {}, "new": {}})
VERSION_CHANGE = _object(
    {"info": {"type": "array", "items": _object({"key": STRING, "old": {}, "new": {}})},
     "packages": _object({side: {"type": "array", "items": _object({"name": STRING})}
                          for side in ("added", "removed", "changed")}),
     "changed": {"type": "boolean"}},
    {"notes": STRINGS})
COMPARISON = _object(
    {"format_version": {"const": FORMAT_VERSION},
     "baseline": _object({"name": STRING, "path": STRING, "created": TIME,
                          "harness": HARNESS_VERSIONS,
                          "corpus": _object({"seed": INTEGER, "examples": COUNT})}),
     "compared": _object({"created": TIME, "duration_s": NUMBER, "harness": HARNESS_VERSIONS,
                          "targets": STRINGS,
                          "not_run": {"type": "object", "additionalProperties": STRING}}),
     "counts": _object({change: COUNT for change in CHANGES}),
     "regressions": COUNT, "status": {"enum": ["ok", "regressed"]},
     "harness_change": {"type": "object", "additionalProperties": OLD_NEW},
     "versions": {"type": "object", "additionalProperties": VERSION_CHANGE},
     "entries": {"type": "array", "items": COMPARISON_ENTRY}})


def _kind(kind: str, body: dict) -> dict:
    """A results.jsonl line: `body` with its ``kind``."""
    return {**body, "type": "object", "required": ["kind", *body.get("required", [])],
            "properties": {"kind": {"const": kind}, **body.get("properties", {})}}


def _document(title: str, body: dict) -> dict:
    return {"$schema": DIALECT, "title": title, "$defs": DEFS, **body}


SCHEMAS = {
    "run": _document("results.jsonl run record", _kind("run", {
        # the start record, or (with "finished") the end record
        "if": {"type": "object", "required": ["finished"]},
        "then": RUN_END, "else": RUN_START})),
    "target": _document("results.jsonl target record", _kind("target", TARGET)),
    "result": _document("results.jsonl result record", _kind("result", RESULT)),
    "pairwise": _document("results.jsonl pairwise record", _kind("pairwise", PAIRWISE)),
    "config": _document("results.jsonl config record", _kind("config", CONFIG)),
    "case": _document("results.jsonl case record", _kind("case", CASE)),
    "summary": _document("summary.json", SUMMARY),
    "manifest": _document("baseline manifest.json", MANIFEST),
    "comparison": _document("comparison.json", COMPARISON),
}
# results.jsonl's, as store.KINDS
RECORD_KINDS = ("run", "target", "result", "pairwise", "config", "case")


def problems(kind: str, record) -> list[str]:
    """What is wrong with `record` as a `kind` (a results.jsonl kind, or "summary",
    "manifest", "comparison"): one line per problem, where it is and what; empty when
    it conforms. Needs the `jsonschema` package (the `test` extra)."""
    import jsonschema

    if kind not in SCHEMAS:
        raise ValueError(f"unknown record kind {kind!r}; known: {', '.join(SCHEMAS)}")
    validator = jsonschema.Draft202012Validator(SCHEMAS[kind])
    found = []
    for error in sorted(validator.iter_errors(record), key=lambda e: list(map(str, e.path))):
        where = "/".join(map(str, error.absolute_path)) or "(top)"
        found.append(f"{kind} {where}: {error.message}")
    return found
