"""JSON parsing that keeps numbers exact and refuses what docs/api.md calls invalid; exact out."""

from __future__ import annotations

from decimal import Decimal

import pytest

from abacus.node.json_body import InvalidJSON, encode, parse


def test_numbers_are_parsed_as_exact_decimals() -> None:
    parsed = parse(b'{"number": 0.1, "big": 100000000000000000000000000001, "e": 1e2}')
    assert parsed == {
        "number": Decimal("0.1"),
        "big": Decimal("100000000000000000000000000001"),
        "e": Decimal("1e2"),
    }
    assert all(isinstance(value, Decimal) for value in parsed.values())


def test_other_json_values_are_kept() -> None:
    assert parse(b'[true, null, "s", {"a": []}]') == [True, None, "s", {"a": []}]


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b'{"number": NaN}', "NaN is not a JSON number"),
        (b'{"number": Infinity}', "Infinity is not a JSON number"),
        (b'{"number": -Infinity}', "-Infinity is not a JSON number"),
        (b'{"number": 1, "number": 2}', "duplicate key 'number'"),
        (b'{"number": 1\xff}', "not UTF-8"),
        (b"[" * 100_000, "nested too deeply"),
        (b"", "Expecting value at line 1 column 1"),
        (b'{"number": 01}', "line 1"),
        (b"\xef\xbb\xbf{}", "BOM"),
    ],
)
def test_invalid_json_says_why(body: bytes, reason: str) -> None:
    with pytest.raises(InvalidJSON) as invalid:
        parse(body)
    assert reason in str(invalid.value)


def test_duplicate_keys_are_refused_at_any_depth() -> None:
    with pytest.raises(InvalidJSON):
        parse(b'{"a": {"b": 1, "b": 1}}')


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (Decimal("0.30"), "0.3"),
        (Decimal("1E+2"), "100"),
        ({"sum": Decimal("-0")}, '{"sum": 0}'),
        ({"a": [Decimal("1.5"), None, True]}, '{"a": [1.5, null, true]}'),
        ((Decimal(1), "x"), '[1, "x"]'),
        ('"quoted" \\ and ü', '"\\"quoted\\" \\\\ and \\u00fc"'),
        ({"nœud": 1}, '{"n\\u0153ud": 1}'),
        ({}, "{}"),
    ],
)
def test_encode_writes_decimals_as_plain_literals(value: object, text: str) -> None:
    assert encode(value) == text


def test_encode_and_parse_round_trip_exactly() -> None:
    value = {"new_sum": Decimal("9" * 30 + "." + "9" * 18), "added": Decimal("-0.000001")}
    assert parse(encode(value).encode()) == value
