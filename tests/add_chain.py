"""What the answers to a set of positive adds must show: their new_sum values form one chain."""

from __future__ import annotations

from collections.abc import Iterable
from decimal import Decimal

from tests.api_client import Reply


def assert_one_chain(replies: Iterable[Reply], start: Decimal = Decimal(0)) -> Decimal:
    """Sorted by new_sum, each add's new_sum is the one before plus its own number.

    The adds then took effect one at a time, in one order, each exactly once, starting from
    `start` with nothing else in between. Returns the last new_sum.
    """
    previous = start
    for new_sum, added in sorted((r.body["new_sum"], r.body["added"]) for r in replies):
        assert new_sum - previous == added, (
            f"each new_sum is the one before plus its own add: {previous} + {added} != {new_sum}"
        )
        previous = new_sum
    return previous
