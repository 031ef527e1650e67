"""Exact decimal numbers in JSON, both ways, as the API requires.

Every JSON number of an answer is parsed as `Decimal`, never float, so a sum of 10^20 + 1 or 0.3
arrives exactly; a number sent is rendered as a plain literal. The consistency checker uses the
same two functions (abacus/harness/decimals.py).
"""

from __future__ import annotations

import json
from decimal import Decimal, InvalidOperation
from typing import Any


def parse_json(text: str) -> Any:
    return json.loads(
        text,
        parse_float=Decimal,
        parse_int=Decimal,
        parse_constant=_reject_constant,
    )


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a number")


def render(value: Decimal) -> str:
    """A plain literal: `42`, `0.3`; never `4.2E+1` or `0.30`."""
    if value == value.to_integral_value():
        return str(int(value))
    return format(value.normalize(), "f")


def as_decimal(number: Decimal | int | str) -> Decimal:
    """The exact number a caller means. A float is refused: it rarely holds the decimal its
    literal shows (0.1 is 0.1000000000000000055...), and the service would add exactly that."""
    if isinstance(number, bool) or not isinstance(number, Decimal | int | str):
        raise TypeError(f"a number is a Decimal, an int or a str, not {type(number).__name__}")
    try:
        value = Decimal(number)
    except InvalidOperation:
        raise ValueError(f"not a number: {number!r}") from None
    if not value.is_finite():
        raise ValueError(f"not a finite number: {number!r}")
    return value
