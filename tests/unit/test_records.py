"""Commit records: a stored first response or a fence, each with the commit id that wrote it."""

from __future__ import annotations

from decimal import Decimal

import pytest

from abacus.node import records

BODY = '{"new_sum": 10.5, "added": 0.5, "timestamp": "t", "node_id": "n"}'


def test_a_committed_record_keeps_the_first_response_and_its_number() -> None:
    record = records.read(records.committed("c1", BODY).encode())
    assert record == records.Record("c1", BODY, Decimal("0.5"))


def test_a_fence_has_no_body_and_keeps_the_refused_number() -> None:
    record = records.read(records.fence("c2", "-1.25").encode())
    assert record == records.Record("c2", None, Decimal("-1.25"))


@pytest.mark.parametrize("added", ["1E+2", "100"])
def test_numbers_compare_as_numbers(added: str) -> None:
    assert records.read(records.fence("c", added).encode()).number == 100


def test_the_number_of_a_stored_response_is_its_added_field() -> None:
    assert records.added_in(BODY) == Decimal("0.5")
