"""Starting a killed primary again never makes a second primary beside a failover under way."""

from __future__ import annotations

from pathlib import Path

import pytest

from abacus.local_stack import redis_ha
from abacus.local_stack.redis_ha import Group

GROUP = Group(7000, 27000, Path("/nonexistent"))
OWN = GROUP.port_of("redis-1")
PROMOTED = GROUP.port_of("redis-2")


def follow(
    monkeypatch: pytest.MonkeyPatch, polls: list[tuple[int, bool]], *, wait_s: float = 60.0
) -> tuple[int, int]:
    """What redis-1 is started under when, poll after poll, the Sentinels name the port and see
    the primary down as `polls` says; and how many polls it took."""
    seen: list[tuple[int, bool]] = []
    script = iter(polls)

    def primary_port(group: Group) -> int:
        seen.append(next(script))
        return seen[-1][0]

    monkeypatch.setattr(redis_ha, "primary_port", primary_port)
    monkeypatch.setattr(redis_ha, "_seen_down", lambda group: seen[-1][1])
    monkeypatch.setattr(redis_ha, "failover_wait_s", lambda: wait_s)
    monkeypatch.setattr("abacus.local_stack.redis_ha.time.sleep", lambda seconds: None)
    return redis_ha._primary_to_follow(GROUP, "redis-1"), len(seen)


def test_while_the_sentinels_fail_it_over_it_waits_then_follows_the_promoted_one(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    port, polls = follow(monkeypatch, [(OWN, True)] * 3 + [(PROMOTED, False)])
    assert port == PROMOTED, "started as a replica of the new primary"
    assert polls == 4


def test_a_primary_the_sentinels_do_not_see_down_starts_as_the_primary_at_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert follow(monkeypatch, [(OWN, False)]) == (OWN, 1)


def test_with_no_failover_coming_it_starts_as_the_primary_after_the_wait(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    port, _ = follow(monkeypatch, [(OWN, True)] * 3, wait_s=0.0)
    assert port == OWN


def test_the_wait_covers_a_failed_election_and_the_next() -> None:
    assert redis_ha.failover_wait_s() >= 1.0 + 2 * 3.0, "down-after 1 s, failover-timeout 3 s"
