"""The number grammar and bounds, end to end: what is accepted, how it is added and rendered."""

from __future__ import annotations

from decimal import Decimal

import pytest

from tests.api_client import Api
from tests.request_tables import END_TO_END_NUMBERS, MAX, TINY


@pytest.mark.stack
@pytest.mark.parametrize(("literal", "status", "rendered"), END_TO_END_NUMBERS)
def test_number_grammar(api: Api, literal: str, status: int, rendered: str | None) -> None:
    reply = api.add(literal)
    assert reply.status == status, reply.text
    if rendered is None:
        assert reply.body["error"] == "number_out_of_range"
        assert api.sum() == 0
        return
    assert f'"added": {rendered},' in reply.text
    assert f'"new_sum": {rendered},' in reply.text
    assert api.sum() == Decimal(rendered)


@pytest.mark.stack
def test_decimal_sums_are_exact(api: Api) -> None:
    for _ in range(10):
        api.add("0.1")
    assert api.sum() == 1
    reply = api.request("GET", "/abacus/sum")
    assert '"sum": 1,' in reply.text


@pytest.mark.stack
def test_sum_pushed_past_its_bound_is_refused_and_changes_nothing(api: Api) -> None:
    assert api.add(MAX).status == 200
    refused = api.add(TINY)
    assert refused.status == 422
    assert refused.body["error"] == "sum_out_of_range"
    assert api.sum() == Decimal(MAX)
    assert api.add("-1").status == 200, "a step back into bounds is fine"
    assert api.sum() == Decimal("9" * 29 + "8." + "9" * 18)


@pytest.mark.stack
def test_sum_past_its_negative_bound_is_refused(api: Api) -> None:
    assert api.add("-" + MAX).status == 200
    assert api.add("-" + TINY).body["error"] == "sum_out_of_range"
    assert api.sum() == Decimal("-" + MAX)


@pytest.mark.stack
def test_sum_keeps_18_fraction_digits_exactly(api: Api) -> None:
    api.add("1" + "0" * 29)
    api.add(TINY)
    reply = api.request("GET", "/abacus/sum")
    assert f'"sum": 1{"0" * 29}.{"0" * 17}1,' in reply.text
