"""Configuration conformance: one test per (target, scenario) of conformance/configsuite/.

keras.json / KERAS_BACKEND precedence, floatx, run-time setters and invalid values,
epsilon, image_data_format. Every check is streamed to the run's results.jsonl as a
record of kind "config". A check that fails or errors fails its test unless the
known-divergence registry matches it: op names are "config/<check>", e.g.
"config/floatx/float64" or "config/epsilon/*".

`--conformance-ops` selects these tests by "config/<scenario>" (or "config" for all);
`--conformance-shard` splits them by a hash of their id (the op cases by their cost).
"""
import json

import pytest

from conformance import configsuite
from conformance.options import in_shard
from conformance.pytest_plugin import session_of


def _selected(session, target_id: str, scenario: str) -> bool:
    return (configsuite.selected(scenario, session.op_patterns)
            and in_shard(f"config/{scenario}-{target_id}", session.shard))


def pytest_generate_tests(metafunc):
    if "config_case" not in metafunc.fixturenames:
        return
    session = session_of(metafunc.config)
    cases = [(t.id, s) for t in session.targets for s in configsuite.SCENARIOS
             if _selected(session, t.id, s)]  # target by target
    metafunc.parametrize("config_case", cases, ids=[f"{t}-{s}" for t, s in cases])


def _line(record: dict) -> str:
    return (f"{record['target']}: {record['check']}: {record['status']}: expected "
            f"{json.dumps(record['expected'])}, observed {json.dumps(record['observed'])}")


def test_config(config_case, conformance):
    """The checks ran in the background from the start of the run (the plugin's
    start_config_checks); this test waits for them and judges them."""
    target_id, scenario = config_case
    try:
        records = conformance.config_suite.run(target_id, scenario)
    except configsuite.TargetBroken as exc:
        reason = str(exc).splitlines()[0] if str(exc) else ""
        conformance.say(f"config {target_id} {scenario}: target cannot run: {reason}")
        pytest.skip(f"{target_id} cannot run: {reason}")
    counts = {}
    for record in records:
        counts[record["status"]] = counts.get(record["status"], 0) + 1
    conformance.say(f"config {target_id:<20} {scenario:<18} "
                    + " · ".join(f"{k} {v}" for k, v in sorted(counts.items())))
    bad = configsuite.divergent(records)
    if bad:
        pytest.fail("\n".join(_line(r) for r in bad), pytrace=False)
