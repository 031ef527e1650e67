"""The Redis key layout: every key next to the sum it serves, each kind under its own prefix."""

from __future__ import annotations

from abacus.node.keys import KeyLayout


def test_every_kind_of_key_lives_next_to_the_sum() -> None:
    keys = KeyLayout("t:sum")
    assert keys.idempotency("order-1") == "t:sum:idem:order-1"
    assert keys.retry("0123abcd") == "t:sum:retry:0123abcd"
    assert keys.own_record("c0ffee") == "t:sum:op:c0ffee"
    assert keys.quota("2001:db8::/64") == "t:sum:quota:2001:db8::/64"
    assert keys.health("node-1") == "t:sum:health:node-1"


def test_the_kinds_never_share_a_key() -> None:
    # The same name under every kind: an idempotency key "x" can never be taken for a retry key.
    keys = KeyLayout("s")
    made = [make("x") for make in (keys.idempotency, keys.retry, keys.own_record, keys.quota)]
    assert len(set(made)) == len(made)
    assert keys.sum not in made
