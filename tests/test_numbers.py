"""The number grammar and bounds, end to end: what is accepted, how it is added and rendered."""

from __future__ import annotations

from decimal import Decimal

import pytest

from app import amounts
from tests.api_client import Api

MAX = "9" * 30 + "." + "9" * 18  # the largest value below 10^30 with 18 fraction digits
TINY = "0." + "0" * 17 + "1"  # 10^-18

# Each row: the literal sent, the status, and the `added` the response shows (text as rendered).
GRAMMAR = [
    ("42", 200, "42"),
    ("1e2", 200, "100"),
    ("1E+2", 200, "100"),
    ("-1.5e-3", 200, "-0.0015"),
    ("-0", 200, "0"),
    ("-0.0", 200, "0"),
    ("0.30", 200, "0.3"),
    ("1.000000000000000000000", 200, "1"),
    ("42.0", 200, "42"),
    ("4.2E+1", 200, "42"),
    ("1" + "0" * 29, 200, "1" + "0" * 29),
    ("0.5e-17", 200, "0.000000000000000005"),
    (MAX, 200, MAX),
    ("-" + MAX, 200, "-" + MAX),
    (TINY, 200, TINY),
    ("-" + TINY, 200, "-" + TINY),
    ("1e30", 422, None),
    ("-1e30", 422, None),
    ("1" + "0" * 30, 422, None),
    ("0." + "0" * 18 + "1", 422, None),
    ("1e-19", 422, None),
    ("1.0000000000000000001", 422, None),
    ("1e999999999", 422, None),
    ("1e-999999999", 422, None),
]


@pytest.mark.parametrize(("literal", "status", "rendered"), GRAMMAR)
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


def test_decimal_sums_are_exact(api: Api) -> None:
    for _ in range(10):
        api.add("0.1")
    assert api.sum() == 1
    reply = api.request("GET", "/abacus/sum")
    assert '"sum": 1,' in reply.text


def test_sum_pushed_past_its_bound_is_refused_and_changes_nothing(api: Api) -> None:
    assert api.add(MAX).status == 200
    refused = api.add(TINY)
    assert refused.status == 422
    assert refused.body["error"] == "sum_out_of_range"
    assert api.sum() == Decimal(MAX)
    assert api.add("-1").status == 200, "a step back into bounds is fine"
    assert api.sum() == Decimal("9" * 29 + "8." + "9" * 18)


def test_sum_past_its_negative_bound_is_refused(api: Api) -> None:
    assert api.add("-" + MAX).status == 200
    assert api.add("-" + TINY).body["error"] == "sum_out_of_range"
    assert api.sum() == Decimal("-" + MAX)


def test_sum_keeps_18_fraction_digits_exactly(api: Api) -> None:
    api.add("1" + "0" * 29)
    api.add(TINY)
    reply = api.request("GET", "/abacus/sum")
    assert f'"sum": 1{"0" * 29}.{"0" * 17}1,' in reply.text


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (Decimal("1E+2"), "100"),
        (Decimal("-0"), "0"),
        (Decimal("0.300"), "0.3"),
        (Decimal("-1.50"), "-1.5"),
        (Decimal("1E-18"), "0.000000000000000001"),
        (Decimal(MAX), MAX),
    ],
)
def test_render_never_uses_an_exponent(value: Decimal, text: str) -> None:
    assert amounts.render(value) == text


def test_fraction_digits_ignore_trailing_zeros() -> None:
    assert amounts.fraction_digits(Decimal("1.500")) == 1
    assert amounts.fraction_digits(Decimal("1E+5")) == 0
    assert amounts.fraction_digits(Decimal("0E-30")) == 0
    assert amounts.fraction_digits(Decimal("1.0000000000000000001")) == 19
