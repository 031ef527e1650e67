"""The lanes' contention window: how long a lane waits before an attempt, from what it met."""

from __future__ import annotations

import math

import pytest

from abacus.node import commit_pacing
from abacus.node.commit_pacing import ContentionWindow


def upper_bound(low: float, high: float) -> float:
    """A uniform draw that always takes the longest pause, so the bound itself is seen."""
    return high


def test_no_contention_no_pause() -> None:
    window = ContentionWindow(upper_bound)
    window.attempted(0.002)
    window.committed()
    assert window.pause() == 0.0


def test_a_conflict_waits_up_to_one_attempt_time_then_doubles() -> None:
    window = ContentionWindow(upper_bound)
    window.attempted(0.002)
    window.conflict()
    assert window.pause() == pytest.approx(0.002)
    window.conflict()
    assert window.pause() == pytest.approx(0.004)


def test_commits_bring_the_pause_back_to_nothing() -> None:
    window = ContentionWindow(upper_bound)
    window.attempted(0.002)
    for _ in range(5):
        window.conflict()
    paused = window.pause()
    window.committed()
    assert window.pause() == pytest.approx(paused * commit_pacing.SHRINK)
    for _ in range(100):
        window.committed()
    assert window.pause() == 0.0


def test_the_pause_is_capped_in_attempt_times_and_in_seconds() -> None:
    window = ContentionWindow(upper_bound)
    window.attempted(1e-6)
    for _ in range(100):
        window.conflict()
    assert window.level == commit_pacing.MAX_LEVEL
    assert window.pause() == pytest.approx(commit_pacing.MAX_LEVEL * 1e-6)
    # An attempt that took long (a stalled Redis) does not make the next pause as long.
    for _ in range(50):
        window.attempted(5.0)
    assert window.pause() == commit_pacing.MAX_PAUSE_S


def test_the_attempt_time_is_a_moving_average() -> None:
    window = ContentionWindow(upper_bound)
    window.attempted(0.001)
    window.attempted(0.011)
    assert window.attempt_s == pytest.approx(0.001 + commit_pacing.ATTEMPT_WEIGHT * 0.010)


def test_the_window_settles_where_conflicts_and_commits_balance() -> None:
    """Per attempt, a conflict probability p keeps the level steady when
    p * ln(GROW) == (1 - p) * ln(1 / SHRINK): the rate the lanes are driven to."""
    p = commit_pacing.EQUILIBRIUM_CONFLICT
    grow, shrink = math.log(commit_pacing.GROW), math.log(1 / commit_pacing.SHRINK)
    assert p * grow == pytest.approx((1 - p) * shrink)
    assert 0.1 < p < 0.35, "conflicts per commit would no longer stay well below one"
