"""Who a client is, and its quota of new Idempotency-Key records per window."""

from __future__ import annotations

import pytest

from abacus.node.key_quota import UNKNOWN_CLIENT, client_of, quota_for
from tests.unit.conftest import make_settings


@pytest.mark.parametrize(
    ("peer", "forwarded", "client"),
    [
        # Straight to a node: the peer address; a header it sent is no evidence of anything.
        ("203.0.113.7", None, "203.0.113.7"),
        # From the balancer (the caller checked it): nginx's $remote_addr in X-Real-IP.
        ("127.0.0.2", "198.51.100.4", "198.51.100.4"),
        # One IPv6 host usually holds a whole /64: it is one client, not 2^64 of them.
        ("2001:db8:1:2:aaaa::1", None, "2001:db8:1:2::/64"),
        ("127.0.0.2", "2001:db8:1:2:ffff:ffff:ffff:ffff", "2001:db8:1:2::/64"),
        # An IPv4 client seen through an IPv6 socket is that IPv4 client.
        ("::ffff:203.0.113.7", None, "203.0.113.7"),
        # Not an address (cannot come from nginx): the peer it came from is the client.
        ("127.0.0.2", "not-an-address", "127.0.0.2"),
        ("127.0.0.2", "", "127.0.0.2"),
        # No address at all (a test client, a Unix socket): everyone shares one quota.
        ("testclient", None, UNKNOWN_CLIENT),
        (None, None, UNKNOWN_CLIENT),
    ],
)
def test_the_client(peer: str | None, forwarded: str | None, client: str) -> None:
    assert client_of(peer, forwarded) == client


def test_a_client_s_counter_lives_next_to_the_records() -> None:
    settings = make_settings(
        ABACUS_KEY="t:sum", ABACUS_IDEMPOTENCY_TTL_S="60", ABACUS_KEYS_PER_CLIENT="7"
    )
    quota = quota_for(settings, "203.0.113.7")
    assert quota is not None
    assert quota.counter_key == settings.keys.quota("203.0.113.7")
    assert quota.counter_key == "t:sum:quota:203.0.113.7"
    assert quota.limit == 7
    # A window lasts as long as a record: the records of at most two windows are alive at once.
    assert quota.window_s == 60


@pytest.mark.parametrize(
    ("window_left_ms", "retry_after"),
    [
        (54_500, "55"),  # whole seconds, rounded up
        (1, "1"),  # never "0": a client told to wait 0 s would come straight back
        (-2, "1"),  # the window ended since it was read
        (-1, "60"),  # a counter without an end (never written so): a whole window
    ],
)
def test_an_exhausted_quota_is_429_until_the_window_ends(
    window_left_ms: int, retry_after: str
) -> None:
    settings = make_settings(ABACUS_IDEMPOTENCY_TTL_S="60", ABACUS_KEYS_PER_CLIENT="7")
    quota = quota_for(settings, "203.0.113.7")
    assert quota is not None
    refusal = quota.exhausted(window_left_ms)
    assert (refusal.status, refusal.code) == (429, "key_quota_exhausted")
    assert refusal.headers["Retry-After"] == retry_after
    assert "7" in refusal.message
    assert "did not add" in refusal.message
    assert "same Idempotency-Key" in refusal.message


def test_no_quota_when_it_is_turned_off() -> None:
    assert quota_for(make_settings(ABACUS_KEYS_PER_CLIENT="0"), "203.0.113.7") is None
