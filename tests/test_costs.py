"""Cost-balanced shards: every case in exactly one shard, estimated work even."""
import json
import zlib

import pytest

from conformance import costs


def table(seconds):
    return costs.Costs(seconds, overhead_s=10.0, source="test")


def test_every_case_lands_in_exactly_one_shard_and_the_split_is_stable():
    seconds = {f"op{i}-float32": float(i % 7 + 1) for i in range(40)}
    split = costs.assign(list(seconds), table(seconds), 4)
    assert set(split) == set(seconds) and set(split.values()) == {1, 2, 3, 4}
    # the order cases are given in does not matter: each shard computes the same split
    assert costs.assign(sorted(seconds, reverse=True), table(seconds), 4) == split


def test_longest_first_balances_what_a_hash_split_does_not():
    # the real table: measured by a default run of every target
    measured = costs.load()
    cases = list(measured.seconds)
    per_shard = [0.0] * 4
    for case_id, shard in costs.assign(cases, measured, 4).items():
        per_shard[shard - 1] += measured.estimate(case_id)
    hashed = [0.0] * 4
    for case_id in cases:
        hashed[zlib.crc32(case_id.encode()) % 4] += measured.estimate(case_id)
    quarter = sum(measured.seconds.values()) / 4
    assert max(per_shard) <= quarter * 1.02
    assert max(hashed) > max(per_shard)


def test_an_unmeasured_case_costs_the_median_not_nothing():
    measured = table({"a-float32": 1.0, "b-float32": 2.0, "c-float32": 30.0})
    assert measured.estimate("new_op-float32") == 2.0


def test_plan_lists_the_shard_in_run_order_with_estimates():
    seconds = {"a-float32": 5.0, "b-float32": 1.0, "c-float32": 4.0, "a-float64": 2.0}
    order = ["a-float32", "b-float32", "c-float32", "a-float64"]
    shards = [costs.plan(order, table(seconds), (i, 2)) for i in (1, 2)]
    assert sorted(row["case"] for shard in shards for row in shard) == sorted(order)
    for shard in shards:
        cases = [row["case"] for row in shard]
        assert cases == [c for c in order if c in cases]  # the run's order is kept
    assert [row["estimated_s"] for row in shards[0]] == [5.0, 1.0]
    assert costs.plan(order, table(seconds), None)[2] == {"case": "c-float32", "estimated_s": 4.0}


def test_costs_from_a_run_and_a_table_written_from_it(tmp_path):
    summary = {"run": {"duration_s": 20.0, "seed": 1},
               "targets": [{"id": "t1", "status": "ready"}],
               "results": [{"op": "exp", "floatx": "float32", "target": "t1", "wall_s": 3.0},
                           {"op": "exp", "floatx": "float32", "target": "t2", "wall_s": 4.0},
                           {"op": "log", "floatx": "float32", "target": "t3", "status": "broken"}]}
    measured = costs.from_results(summary)
    assert measured.seconds == {"exp-float32": 4.0} and measured.overhead_s == 16.0
    path = tmp_path / "costs.json"
    path.write_text(json.dumps(measured.as_table()))
    assert costs.load(path).seconds == measured.seconds


def test_bad_cost_sources_say_what_to_give(tmp_path):
    bad = tmp_path / "costs.json"
    bad.write_text("[1, 2]")
    with pytest.raises(costs.CostError, match="is not a cost table"):
        costs.load(bad)
    with pytest.raises(costs.CostError, match="no timed cases"):
        costs.from_results({"run": {}, "results": []}, source="x")


def test_time_spent_names_the_slowest_cases_and_the_target_behind_each():
    from conformance import runcli

    result = lambda op, target, wall, backend: {"op": op, "floatx": "float32", "target": target,
                                                "wall_s": wall, "backend_s": backend}
    summary = {"results": [result("exp", "a", 2.0, 0.5), result("exp", "b", 2.0, 1.5),
                           result("conv", "a", 9.0, 8.0), result("conv", "b", 9.0, 0.1),
                           {"op": "log", "floatx": "float32", "target": "c", "status": "broken"}]}
    spent = runcli.time_spent(summary, top=1)
    assert spent["cases"] == 2 and spent["cases_s"] == 11.0
    assert spent["slowest"] == [{"case": "conv-float32", "wall_s": 9.0, "target": "a",
                                 "backend_s": 8.0}]
    assert spent["backend_s"] == {"a": 8.5, "b": 1.6}


def test_a_case_measured_twice_costs_the_mean():
    first = costs.Costs({"a-float32": 1.0, "b-float32": 4.0}, overhead_s=5.0, source="run 1")
    second = costs.Costs({"a-float32": 3.0}, overhead_s=9.0, source="run 2")
    both = costs.merged([first, second])
    assert both.seconds == {"a-float32": 2.0, "b-float32": 4.0} and both.overhead_s == 9.0
