"""abacus_client's backoff: exponential, capped, fully jittered, never sooner than Retry-After;
and the waits the clients really make between attempts. No timing: the randomness and the sleep
are injected."""

from __future__ import annotations

import random

import pytest

from abacus_client import Backoff, OutcomeUnknown
from tests.client_fakes import (
    FakeService,
    MaxRandom,
    Reply,
    SyncDriver,
    default_options,
)

BACKOFF = Backoff(first=0.1, cap=1.0)


def test_the_ceiling_doubles_up_to_the_cap() -> None:
    assert [BACKOFF.ceiling(n) for n in range(7)] == pytest.approx(
        [0.1, 0.2, 0.4, 0.8, 1.0, 1.0, 1.0]
    )
    assert BACKOFF.ceiling(10_000) == 1.0, "no overflow after many retries"


def test_the_jitter_is_spread_under_the_ceiling() -> None:
    rng = random.Random(1)
    for retry in range(8):
        delays = [BACKOFF.delay(retry, None, rng) for _ in range(200)]
        assert all(0 <= delay <= BACKOFF.ceiling(retry) for delay in delays)
        assert len(set(delays)) > 100, "jittered, not a fixed wait"
        assert min(delays) < BACKOFF.ceiling(retry) / 4 < max(delays) * 4 / 3


def test_retry_after_is_a_floor_with_the_jitter_on_top() -> None:
    rng = random.Random(2)
    delays = [BACKOFF.delay(3, 1.0, rng) for _ in range(200)]
    assert all(1.0 <= delay <= 1.0 + BACKOFF.ceiling(3) for delay in delays)
    assert len(set(delays)) > 100


@pytest.mark.parametrize(("first", "cap"), [(0.0, 1.0), (2.0, 1.0), (-1.0, 1.0)])
def test_a_backoff_that_makes_no_sense_is_refused(first: float, cap: float) -> None:
    with pytest.raises(ValueError, match="first"):
        Backoff(first=first, cap=cap)


def test_the_client_waits_grow_to_the_cap_between_attempts() -> None:
    # No Retry-After: the waits are the backoff's alone, at the top of their range.
    service = FakeService(then=Reply(503, {"error": "outcome_unknown", "message": "m"}))
    client = SyncDriver(service, default_options(rng=MaxRandom(), deadline=6.0))
    try:
        with pytest.raises(OutcomeUnknown):
            client.add(1)
    finally:
        client.close()
    assert service.slept[:6] == pytest.approx([0.1, 0.2, 0.4, 0.8, 1.0, 1.0])
    assert max(service.slept) == pytest.approx(1.0)


def test_the_client_waits_are_jittered() -> None:
    service = FakeService(then=Reply(503, {"error": "outcome_unknown", "message": "m"}))
    client = SyncDriver(service, default_options(rng=random.Random(3), deadline=30.0))
    try:
        with pytest.raises(OutcomeUnknown):
            client.add(1)
    finally:
        client.close()
    capped = service.slept[5:]
    assert len(capped) > 5
    assert all(wait <= 1.0 for wait in service.slept)
    assert len(set(capped)) == len(capped), "no two clients would wait in step"
