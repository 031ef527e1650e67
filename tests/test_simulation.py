"""The commit simulation (abacus/harness/simulation.py): deterministic, conserving, and with a
conflict model that responds to lanes and pacing as it must. Fixed calibration figures, so that
re-measuring here never changes what these assert; no servers."""

from __future__ import annotations

import pytest

from abacus.harness.sim_engine import Clock, Redis, RoundTrip
from abacus.harness.sim_params import Calibration, Linear
from abacus.harness.simulation import Config, Result, simulate

# Close to the figures measured here (abacus/harness/calibration.json), rounded and frozen.
CAL = Calibration(
    rtt_s=14e-6,
    redis_read=Linear(7e-6, 0.1e-6),
    redis_commit=Linear(21e-6, 2.4e-6),
    redis_discarded=Linear(15e-6, 0.6e-6),
    fsync=Linear(230e-6, 0.8e-6),
    node_request_s=380e-6,
    node_attempt_s=340e-6,
    node_attempt_add_s=7.5e-6,
)


def run(nodes: int, policy: str, seed: int = 1) -> Result:
    return simulate(Config(nodes, 1, policy=policy, seed=seed, warmup_s=0.2, measure_s=0.8), CAL)


def test_a_seed_gives_the_same_run() -> None:
    first, again = run(6, "after", seed=7), run(6, "after", seed=7)
    assert first == again
    assert run(6, "after", seed=8) != first


@pytest.mark.parametrize("policy", ["before", "after"])
def test_every_add_is_counted_exactly_once(policy: str) -> None:
    result = run(12, policy)
    # Every add sent was applied once or is still on its way; none answered unapplied.
    assert result.sent == result.answered_total + result.in_flight
    assert result.answered_total <= result.applied_total <= result.sent
    assert result.in_flight <= result.config.clients
    # Closed loop: each client has exactly one add out at any time.
    assert result.in_flight == result.config.clients
    measured = result.adds_per_s * result.config.measure_s
    assert measured <= result.answered_total


def test_one_lane_never_conflicts() -> None:
    for policy in ("before", "after"):
        result = run(1, policy)
        assert result.conflicts_per_commit == 0
        assert result.retries_per_add == 0
        assert result.attempts_per_add == 1


def test_a_conflict_needs_a_commit_between_watch_and_exec() -> None:
    clock = Clock()
    redis = Redis(clock, CAL)
    replies: list[str] = []
    a_read = RoundTrip(1, commit=False, reply=lambda: replies.append("a read"))
    b_read = RoundTrip(1, commit=False, reply=lambda: replies.append("b read"))
    redis.send(a_read)
    redis.send(b_read)
    clock.run(0.01)
    a_commit = RoundTrip(1, commit=True, reply=lambda: None, version=a_read.version)
    b_commit = RoundTrip(1, commit=True, reply=lambda: None, version=b_read.version)
    redis.send(a_commit)
    redis.send(b_commit)
    clock.run(0.02)
    assert (a_commit.applied, b_commit.applied) == (True, False)
    assert redis.total == 1
    # The two EXECs came in one event-loop iteration: one fsync for both.
    assert redis.fsyncs == 1


def test_before_retries_grow_with_lanes() -> None:
    six, twelve = run(6, "before"), run(12, "before")
    assert six.retries_per_add > 0.2
    assert twelve.retries_per_add > 2 * six.retries_per_add
    assert twelve.conflicts_per_commit > 0.5


def test_after_keeps_retries_per_add_flat() -> None:
    six, twelve, hundred = run(6, "after"), run(12, "after"), run(100, "after")
    assert twelve.retries_per_add <= 1.5 * six.retries_per_add
    assert hundred.retries_per_add < 1.5
    assert hundred.retries_per_add < run(100, "before").retries_per_add / 5
