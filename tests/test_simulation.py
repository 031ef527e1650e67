"""The commit simulation (abacus/harness/simulation.py): deterministic, conserving, a conflict
model that responds to lanes as it must, and the turn: FIFO, conflict-free, and recovered after T
when a token is lost. Fixed calibration figures, so that re-measuring here never changes what
these assert; no servers."""

from __future__ import annotations

import pytest

from abacus.harness.sim_engine import HZ, TURN_WAIT_S, Clock, Redis, RoundTrip
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


def run(
    nodes: int,
    policy: str,
    *,
    seed: int = 1,
    warmup_s: float = 0.3,
    measure_s: float = 1.0,
    lose_turn_at: float | None = None,
) -> Result:
    config = Config(
        nodes,
        1,
        policy=policy,
        seed=seed,
        warmup_s=warmup_s,
        measure_s=measure_s,
        lose_turn_at=lose_turn_at,
    )
    return simulate(config, CAL)


def test_a_seed_gives_the_same_run() -> None:
    first, again = run(6, "before", seed=7), run(6, "before", seed=7)
    assert first == again
    assert run(6, "before", seed=8) != first
    assert run(12, "turns", lose_turn_at=0.35) == run(12, "turns", lose_turn_at=0.35)


@pytest.mark.parametrize(
    ("policy", "lose_turn_at"), [("before", None), ("turns", None), ("turns", 0.35)]
)
def test_every_add_is_counted_exactly_once(policy: str, lose_turn_at: float | None) -> None:
    result = run(12, policy, lose_turn_at=lose_turn_at)
    # Every add sent was applied once or is still on its way; none answered unapplied.
    assert result.sent == result.answered_total + result.in_flight
    assert result.answered_total <= result.applied_total <= result.sent
    # Closed loop: each client has exactly one add out, or its answer on the way back.
    assert result.in_flight + result.returning == result.config.clients
    measured = result.adds_per_s * result.config.measure_s
    assert measured <= result.answered_total


@pytest.mark.parametrize("policy", ["before", "turns"])
def test_one_lane_never_conflicts(policy: str) -> None:
    result = run(1, policy)
    assert result.conflicts_per_commit == 0
    assert result.retries_per_add == 0
    assert result.attempts_per_add == 1


def read(*, turn: bool = False, log: list[str] | None = None, name: str = "") -> RoundTrip:
    def reply() -> None:
        if log is not None:
            log.append(name)

    return RoundTrip(1, commit=False, reply=reply, turn=turn)


def commit(after: RoundTrip, *, turn: bool = False) -> RoundTrip:
    return RoundTrip(1, commit=True, reply=lambda: None, version=after.version, turn=turn)


def test_a_conflict_needs_a_commit_between_watch_and_exec() -> None:
    clock = Clock()
    redis = Redis(clock, CAL)
    a_read, b_read = read(), read()
    redis.send(a_read)
    redis.send(b_read)
    clock.run(0.01)
    a_commit, b_commit = commit(a_read), commit(b_read)
    redis.send(a_commit)
    redis.send(b_commit)
    clock.run(0.02)
    assert (a_commit.applied, b_commit.applied) == (True, False)
    assert redis.total == 1
    # The two EXECs came in one event-loop iteration: one fsync for both.
    assert redis.fsyncs == 1


def test_the_turn_goes_to_the_waiters_in_order_with_each_commit() -> None:
    clock = Clock()
    redis = Redis(clock, CAL)
    log: list[str] = []
    trips = {name: read(turn=True, log=log, name=name) for name in "abc"}
    for trip in trips.values():
        redis.send(trip)
    clock.run(0.001)
    # a popped the token (a write: its pass fsynced); b and c wait for it, in that order.
    assert log == ["a"]
    assert (redis.tokens, redis.waiting, redis.fsyncs) == (0, 2, 1)
    redis.send(commit(trips["a"], turn=True))
    clock.run(0.002)
    # a's EXEC reset the turn to one token, which b popped; b's WATCH ran after a's EXEC.
    assert log == ["a", "b"]
    assert trips["b"].got_turn
    assert trips["b"].version == redis.version == 1
    assert (redis.tokens, redis.waiting) == (0, 1)
    # A discarded EXEC pushes nothing: c keeps waiting.
    redis.send(commit(trips["a"], turn=True))
    clock.run(0.003)
    assert log == ["a", "b"]
    # An attempt that writes nothing gives the turn back (UNWATCH, DEL, RPUSH).
    redis.send(RoundTrip(0, commit=False, reply=lambda: None, release=True))
    clock.run(0.004)
    assert log == ["a", "b", "c"]
    assert trips["c"].got_turn
    assert redis.turn_timeouts == 0


def test_a_lost_token_is_waited_for_t_then_an_idle_redis_lets_the_lane_go_without() -> None:
    clock = Clock()
    redis = Redis(clock, CAL)
    log: list[str] = []
    # A node took the token and was killed: it never commits.
    redis.send(read(turn=True))
    clock.run(0.001)
    lane = read(turn=True, log=log, name="lane")
    redis.send(lane)
    clock.run(TURN_WAIT_S)
    assert log == []
    # Idle, Redis notices the timeout at its next serverCron tick (hz 10: at 0.2 s).
    clock.run(1 / HZ + TURN_WAIT_S + 0.001)
    assert log == ["lane"]
    assert not lane.got_turn
    assert redis.turn_timeouts == 1
    # Its EXEC, optimistic, makes a token again.
    redis.send(commit(lane, turn=True))
    clock.run(0.3)
    assert redis.tokens == 1


def test_before_retries_grow_with_lanes() -> None:
    six, twelve = run(6, "before"), run(12, "before")
    assert six.retries_per_add > 0.2
    assert twelve.retries_per_add > 2 * six.retries_per_add
    assert twelve.conflicts_per_commit > 0.5


def test_turns_keep_conflicts_near_zero_and_retries_flat() -> None:
    six, twelve, hundred = run(6, "turns"), run(12, "turns"), run(100, "turns")
    for result in (six, twelve, hundred):
        # With no token lost every attempt holds the turn (a wait for it lasts far less than T
        # here), so no EXEC can be discarded.
        assert result.without_turn == 0
        assert result.conflicts_per_commit < 0.01
    # Retries are ~0 at both lane counts, so a bare ratio would compare noise with noise (or
    # divide by zero): 1.5 x the retries at 6 lanes, plus 0.02 retries per add of slack.
    assert twelve.retries_per_add <= 1.5 * six.retries_per_add + 0.02
    assert hundred.retries_per_add < 0.02
    assert twelve.adds_per_s > run(12, "before").adds_per_s


def test_a_lost_token_is_recovered_after_t_and_adds_keep_being_answered() -> None:
    lost_at = 0.35
    steady = run(12, "turns")
    # The measured second has the loss in it: every lane then waited once T ran out (and Redis
    # noticed), went without the turn, and the first of them to commit made a token again.
    through = run(12, "turns", lose_turn_at=lost_at)
    assert 0 < through.turn_timeouts <= 2 * through.config.lanes
    assert through.adds_per_s > 0.6 * steady.adds_per_s
    assert through.p99_ms < 1000 * (TURN_WAIT_S + 1 / HZ) + 100
    # Half a second after the loss, the lanes take turns again as if nothing had happened.
    after = run(12, "turns", warmup_s=lost_at + 0.5, measure_s=0.5, lose_turn_at=lost_at)
    assert after.turn_timeouts == through.turn_timeouts
    assert after.without_turn == 0
    assert after.conflicts_per_commit < 0.01
    assert after.adds_per_s > 0.9 * steady.adds_per_s
