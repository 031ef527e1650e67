"""Exact decimal parsing and rendering, as the API's numbers require.

Responses are parsed with every JSON number as `Decimal`, never float, so a sum of 10^20 + 1
survives. The judge works on integers: values are scaled by a common power of ten. Parsing and
rendering are the client library's (abacus_client/json_numbers.py): one reading of the API's
numbers for the checker and every client.
"""

from __future__ import annotations

from collections.abc import Iterable
from decimal import Context, Decimal, Inexact, localcontext

from abacus_client.json_numbers import parse_json, render

__all__ = [
    "EXACT",
    "fractional_digits",
    "from_units",
    "json_number",
    "parse_json",
    "render",
    "to_units",
]

# The API allows 30 integer digits and 18 fractional ones; leave ample headroom.
EXACT = Context(prec=100, traps=[Inexact])


def fractional_digits(values: Iterable[Decimal]) -> int:
    """How many digits after the point the most precise value needs."""
    digits = 0
    for value in values:
        exponent = value.normalize().as_tuple().exponent
        if isinstance(exponent, int) and exponent < 0:
            digits = max(digits, -exponent)
    return digits


def to_units(value: Decimal, digits: int) -> int:
    with localcontext(EXACT):
        return int(value.scaleb(digits))


def from_units(units: int, digits: int) -> Decimal:
    with localcontext(EXACT):
        return Decimal(units).scaleb(-digits)


def json_number(value: Decimal | None) -> int | str | None:
    """An integer stays a JSON integer (exact at any size); anything else a decimal string."""
    if value is None:
        return None
    if value == value.to_integral_value():
        return int(value)
    return render(value)
