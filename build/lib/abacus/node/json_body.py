"""JSON request parsing and response encoding that keep numbers exact.

Python's `json` turns decimals into floats and accepts `NaN`, `Infinity` and duplicate keys; the
spec wants none of that, so numbers are parsed straight into `Decimal` and written back as literals.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from decimal import Decimal, InvalidOperation
from typing import Any

from abacus.node.amounts import render


class InvalidJSON(ValueError):
    """The body is not a JSON text this service accepts."""


def _reject_constant(name: str) -> Any:
    raise InvalidJSON(f"{name} is not a JSON number")


# Stand-ins for a literal whose exponent is beyond what Decimal can hold (|exponent| > 10^18):
# far out of the API's bounds either way, so the bounds check refuses it (422), and only after
# the checks that come first (a bad Idempotency-Key's 400), as for any other number out of range.
_HUGE = Decimal("1E+999999999999999999")
_TINY = Decimal("1E-999999999999999999")


def _exact_number(literal: str) -> Decimal:
    try:
        return Decimal(literal)
    except InvalidOperation:
        return _TINY if "e-" in literal.lower() else _HUGE


def _reject_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise InvalidJSON(f"duplicate key {key!r}")
        result[key] = value
    return result


def parse(body: bytes) -> Any:
    """Parse a UTF-8 JSON body with every number as an exact `Decimal`."""
    try:
        text = body.decode("utf-8")
        return json.loads(
            text,
            parse_float=_exact_number,
            parse_int=_exact_number,
            parse_constant=_reject_constant,
            object_pairs_hook=_reject_duplicates,
        )
    except InvalidJSON:
        raise
    except UnicodeDecodeError:
        raise InvalidJSON("body is not UTF-8") from None
    except json.JSONDecodeError as exc:
        raise InvalidJSON(f"{exc.msg} at line {exc.lineno} column {exc.colno}") from None
    except RecursionError:
        raise InvalidJSON("nested too deeply") from None


def encode(value: Any) -> str:
    """JSON text in which every `Decimal` is a plain number literal (see `amounts.render`)."""
    if isinstance(value, Decimal):
        return render(value)
    if isinstance(value, Mapping):
        items = (f"{json.dumps(str(k))}: {encode(v)}" for k, v in value.items())
        return "{" + ", ".join(items) + "}"
    if isinstance(value, Sequence) and not isinstance(value, str | bytes):
        return "[" + ", ".join(encode(v) for v in value) + "]"
    return json.dumps(value)
