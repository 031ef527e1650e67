"""Exact amounts: the bounds, exact addition, and rendering without exponents."""

from __future__ import annotations

from decimal import Decimal

import pytest

from abacus.node import amounts
from tests.request_tables import GRAMMAR, MAX, TINY


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (Decimal("1E+2"), "100"),
        (Decimal("-0"), "0"),
        (Decimal("0.300"), "0.3"),
        (Decimal("-1.50"), "-1.5"),
        (Decimal("1E-18"), "0.000000000000000001"),
        (Decimal("4.2E+1"), "42"),
        (Decimal("1E+29"), "1" + "0" * 29),
        (Decimal(MAX), MAX),
        (Decimal("-" + MAX), "-" + MAX),
    ],
)
def test_render_never_uses_an_exponent(value: Decimal, text: str) -> None:
    assert amounts.render(value) == text


@pytest.mark.parametrize(
    ("value", "digits"),
    [
        ("1.500", 1),
        ("1E+5", 0),
        ("0E-30", 0),
        ("-0.0", 0),
        ("42", 0),
        (TINY, 18),
        ("1.0000000000000000001", 19),
        ("0.5e-17", 18),
    ],
)
def test_fraction_digits_ignore_trailing_zeros(value: str, digits: int) -> None:
    assert amounts.fraction_digits(Decimal(value)) == digits


# The number grammar's accepted values and what they become.
IN_BOUNDS = [(literal, rendered) for literal, status, rendered in GRAMMAR if status == 200]


@pytest.mark.parametrize(("literal", "rendered"), IN_BOUNDS)
def test_values_in_bounds_are_kept(literal: str, rendered: str) -> None:
    assert amounts.render(amounts.check_bounds(Decimal(literal))) == rendered


def test_negative_zero_is_folded_to_zero() -> None:
    zero = amounts.check_bounds(Decimal("-0.000"))
    assert not zero.is_signed()
    assert str(zero) == "0"


@pytest.mark.parametrize(
    ("literal", "reason"),
    [
        ("1e30", "below 10^30"),
        ("-1e30", "below 10^30"),
        ("1" + "0" * 30, "below 10^30"),
        ("0." + "0" * 18 + "1", "18 digits"),
        ("1e-19", "18 digits"),
        ("1.0000000000000000001", "18 digits"),
        ("1e999999999", "below 10^30"),
        ("1e-999999999", "18 digits"),
        ("NaN", "finite"),
        ("Infinity", "finite"),
        ("-Infinity", "finite"),
    ],
)
def test_values_out_of_bounds_are_refused(literal: str, reason: str) -> None:
    with pytest.raises(amounts.OutOfBounds) as refused:
        amounts.check_bounds(Decimal(literal))
    assert reason in str(refused.value)


def test_addition_is_exact() -> None:
    total = amounts.ZERO
    for _ in range(10):
        total = amounts.add(total, Decimal("0.1"))
    assert total == 1
    assert amounts.render(amounts.add(Decimal("0.1"), Decimal("0.2"))) == "0.3"


def test_a_sum_keeps_18_fraction_digits_exactly() -> None:
    total = amounts.add(Decimal("1" + "0" * 29), Decimal(TINY))
    assert amounts.render(total) == "1" + "0" * 29 + "." + "0" * 17 + "1"


@pytest.mark.parametrize(("total", "number"), [(MAX, TINY), ("-" + MAX, "-" + TINY)])
def test_a_sum_past_its_bound_is_refused(total: str, number: str) -> None:
    with pytest.raises(amounts.OutOfBounds):
        amounts.add(Decimal(total), Decimal(number))


def test_a_step_back_into_bounds_is_fine() -> None:
    assert amounts.add(Decimal(MAX), Decimal(-1)) == Decimal("9" * 29 + "8." + "9" * 18)


@pytest.mark.parametrize(
    ("raw", "value"),
    [(None, Decimal(0)), (b"82.25", Decimal("82.25")), ("-7", Decimal(-7)), (b"0", Decimal(0))],
)
def test_parse_stored(raw: bytes | str | None, value: Decimal) -> None:
    assert amounts.parse_stored(raw) == value
