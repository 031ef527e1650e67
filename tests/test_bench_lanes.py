"""`make bench-lanes`: the commit lanes' counters, read from real nodes around a load."""

from __future__ import annotations

import json

import pytest

from abacus.cli import bench_lanes
from abacus.harness import lane_counters
from abacus.harness.wrk_driver import find_wrk

METRICS = """\
# TYPE abacus_adds_committed_total counter
abacus_adds_committed_total 120.0
# TYPE abacus_commit_retries_total counter
abacus_commit_retries_total 30.0
# TYPE abacus_commit_conflicts_total counter
abacus_commit_conflicts_total 3.0
# TYPE abacus_commit_batch_size histogram
abacus_commit_batch_size_bucket{le="+Inf"} 10.0
abacus_commit_batch_size_count 10.0
abacus_commit_batch_size_sum 120.0
"""


def test_the_counters_and_their_ratios() -> None:
    counters = lane_counters.parse(METRICS) - lane_counters.LaneCounters(20, 10, 1, 5)
    assert counters == lane_counters.LaneCounters(100, 20, 2, 5)
    assert counters.retries_per_add == pytest.approx(0.2)
    assert counters.attempts_per_add == pytest.approx(1.2)
    assert counters.conflicts_per_commit == pytest.approx(0.4)
    assert counters.batch == pytest.approx(20)
    assert lane_counters.LaneCounters().batch is None, "no commits, no ratio"


def test_shapes_are_nodes_by_workers() -> None:
    assert bench_lanes.parse_shapes("3x2,12x1,4") == [(3, 2), (12, 1), (4, 1)]


@pytest.mark.stack
def test_a_shape_is_measured_from_the_nodes_own_counters(
    capsys: pytest.CaptureFixture[str],
) -> None:
    if find_wrk() is None:
        pytest.skip("wrk is not installed (make test installs it)")
    argv = ["--shapes", "2x1", "--rounds", "1", "--duration", "1", "--concurrency", "8"]
    assert bench_lanes.main([*argv, "--json"]) == 0
    document = json.loads(capsys.readouterr().out)
    (shape,) = document["variants"]["this tree"]
    assert (shape["nodes"], shape["workers"]) == (2, 1)
    assert shape["adds_per_s"] > 0
    assert shape["non_2xx"] == 0
    # Every committed add took at least its first attempt; the batch is adds per commit.
    assert shape["attempts_per_add"] >= 1
    assert shape["batch"] >= 1
