"""Exact decimal amounts: parsing from JSON, the API's bounds (docs/api.md), rendering to JSON.

Every amount is a `Decimal` and all arithmetic runs in `CONTEXT`, which traps `Inexact`, so a sum
is either exact or an error, never silently rounded.
"""

from __future__ import annotations

import decimal
from decimal import Decimal

# 30 integer digits + 18 fraction digits fit in 48; 50 leaves room for a sum of two in-bound values.
CONTEXT = decimal.Context(
    prec=50,
    Emax=decimal.MAX_EMAX,
    Emin=decimal.MIN_EMIN,
    traps=[decimal.Inexact, decimal.InvalidOperation, decimal.Overflow, decimal.DivisionByZero],
)
MAX_FRACTION_DIGITS = 18
LIMIT = Decimal("1e30")
ZERO = Decimal(0)


class OutOfBounds(ValueError):
    """A value has too many fraction digits or an absolute value of 10^30 or more."""


def fraction_digits(value: Decimal) -> int:
    """Digits after the decimal point once trailing zeros are removed (no rounding involved)."""
    _, digits, exponent = value.as_tuple()
    assert isinstance(exponent, int)  # finite values only; callers reject NaN and infinities
    if not any(digits):
        return 0
    kept = len(digits)
    while kept > 1 and digits[kept - 1] == 0:
        kept -= 1
        exponent += 1
    return max(0, -exponent)


def check_bounds(value: Decimal) -> Decimal:
    """Return `value` with `-0` folded to `0`, or raise `OutOfBounds`."""
    if not value.is_finite():
        raise OutOfBounds("must be a finite number")
    if value.copy_abs() >= LIMIT:
        raise OutOfBounds("absolute value must be below 10^30")
    if fraction_digits(value) > MAX_FRACTION_DIGITS:
        raise OutOfBounds(f"at most {MAX_FRACTION_DIGITS} digits after the decimal point")
    return ZERO if value.is_zero() else value


def add(total: Decimal, number: Decimal) -> Decimal:
    """The exact sum; raises `OutOfBounds` when it leaves the API's bounds."""
    return check_bounds(CONTEXT.add(total, number))


def parse_stored(raw: bytes | str | None) -> Decimal:
    """The sum as stored in Redis (a rendered decimal), or 0 when the key does not exist."""
    if raw is None:
        return ZERO
    text = raw.decode("ascii") if isinstance(raw, bytes) else raw
    return Decimal(text)


def render(value: Decimal) -> str:
    """A JSON number: `42` for integral values, plain `0.3` otherwise; never an exponent."""
    if value == value.to_integral_value():
        return str(int(value))
    # In bounds a value has at most 48 significant digits, so normalize() is exact here.
    return format(CONTEXT.normalize(value), "f")
