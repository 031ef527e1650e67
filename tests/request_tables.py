"""The request tables, one copy for both layers: the unit tests run every row in process; the
real-stack tests send a few rows of each kind through nginx (`one_per_code`, `END_TO_END_NUMBERS`).
"""

from __future__ import annotations

JSON = {"Content-Type": "application/json"}
Headers = dict[str, str] | list[tuple[str, str]]
Body = str | bytes
MAX = "9" * 30 + "." + "9" * 18  # the largest value below 10^30 with 18 fraction digits
TINY = "0." + "0" * 17 + "1"  # 10^-18

# Requests to POST /abacus/number that must be refused, changing nothing. Each row: body, headers,
# status, error code. Then the rows of tests/test_hostile.py's raw requests that a node answers
# itself (the others are nginx's), and rows where more than one error applies: the first wins.
MALFORMED: list[tuple[Body, Headers, int, str]] = [
    (b"x" * 1025, JSON, 413, "body_too_large"),
    ('{"number": 1}', {"Content-Type": "text/plain"}, 415, "unsupported_media_type"),
    ('{"number": 1}', {}, 415, "unsupported_media_type"),
    (
        '{"number": 1}',
        {"Content-Type": "application/x-www-form-urlencoded"},
        415,
        "unsupported_media_type",
    ),
    (
        '{"number": 1}',
        {"Content-Type": "application/json; charset=latin-1"},
        415,
        "unsupported_media_type",
    ),
    ("", JSON, 400, "invalid_json"),
    ("{", JSON, 400, "invalid_json"),
    ("number=1", JSON, 400, "invalid_json"),
    ('{"number": NaN}', JSON, 400, "invalid_json"),
    ('{"number": Infinity}', JSON, 400, "invalid_json"),
    ('{"number": -Infinity}', JSON, 400, "invalid_json"),
    ('{"number": 1, "number": 2}', JSON, 400, "invalid_json"),
    ('{"number": 01}', JSON, 400, "invalid_json"),
    ('{"number": .5}', JSON, 400, "invalid_json"),
    ('{"number": 1.}', JSON, 400, "invalid_json"),
    ('{"number": +1}', JSON, 400, "invalid_json"),
    ('{"number": 0x10}', JSON, 400, "invalid_json"),
    (b'{"number": 1\xff}', JSON, 400, "invalid_json"),
    ("[" * 1000, JSON, 400, "invalid_json"),
    ("[" * 500 + "]" * 500, JSON, 422, "invalid_body"),
    ('{"number": ' + '{"a": ' * 40 + "1" + "}" * 41, JSON, 422, "invalid_number"),
    ("{'number': 1}", JSON, 400, "invalid_json"),
    ('{"number": 1}', {**JSON, "Idempotency-Key": ""}, 400, "invalid_idempotency_key"),
    ('{"number": 1}', {**JSON, "Idempotency-Key": "a b"}, 400, "invalid_idempotency_key"),
    ('{"number": 1}', {**JSON, "Idempotency-Key": "k" * 256}, 400, "invalid_idempotency_key"),
    ("[1]", JSON, 422, "invalid_body"),
    ("1", JSON, 422, "invalid_body"),
    ('"1"', JSON, 422, "invalid_body"),
    ("null", JSON, 422, "invalid_body"),
    ("{}", JSON, 422, "invalid_body"),
    ('{"number": 1, "extra": 2}', JSON, 422, "invalid_body"),
    ('{"Number": 1}', JSON, 422, "invalid_body"),
    ('{"number": "1"}', JSON, 422, "invalid_number"),
    ('{"number": true}', JSON, 422, "invalid_number"),
    ('{"number": null}', JSON, 422, "invalid_number"),
    ('{"number": [1]}', JSON, 422, "invalid_number"),
    ('{"number": {"value": 1}}', JSON, 422, "invalid_number"),
    ('{"number": 1e30}', JSON, 422, "number_out_of_range"),
    ('{"number": 0.0000000000000000001}', JSON, 422, "number_out_of_range"),
    ('{"number": 1' + "0" * 900 + "}", JSON, 422, "number_out_of_range"),
    # as in tests/test_hostile.py
    (b'{"number": 1' + b"0" * 100_000 + b"}", JSON, 413, "body_too_large"),
    (b" " * 1020 + b'{"number": 1}', JSON, 413, "body_too_large"),
    ("[" * 1000, JSON, 400, "invalid_json"),
    ('{"number": ' + "9" * 1000 + "}", JSON, 422, "number_out_of_range"),
    ('{"number": ' + "9" * 10_000 + "}", JSON, 413, "body_too_large"),
    ('{"number": 0.' + "1" * 1000 + "}", JSON, 422, "number_out_of_range"),
    ('{"number": 1e999999999999}', JSON, 422, "number_out_of_range"),
    ('{"number": 1e-999999999999}', JSON, 422, "number_out_of_range"),
    # Exponents beyond what Decimal holds at all.
    ('{"number": 1e1000000000000000000}', JSON, 422, "number_out_of_range"),
    ('{"number": -1E+1000000000000000000}', JSON, 422, "number_out_of_range"),
    ('{"number": 1e-9999999999999999999999}', JSON, 422, "number_out_of_range"),
    ('{"number": \u0661\u0662}', JSON, 400, "invalid_json"),
    ('{"number": \uff11\uff12}', JSON, 400, "invalid_json"),
    ('{"number": \u00b2}', JSON, 400, "invalid_json"),
    ('{"number": 1, "number": 1}', JSON, 400, "invalid_json"),
    (b'\xef\xbb\xbf{"number": 1}', JSON, 400, "invalid_json"),
    (b'{"number": 1, "\xc3\x28": 2}', JSON, 400, "invalid_json"),
    (b'{"number": 1}\x00', JSON, 400, "invalid_json"),
    ('{"number": "12"}', JSON, 422, "invalid_number"),
    ('{"number": 1, "admin": true}', JSON, 422, "invalid_body"),
    (
        "--x\r\n",
        {"Content-Type": "multipart/form-data; boundary=x"},
        415,
        "unsupported_media_type",
    ),
    ('{"number": 1}', {**JSON, "Idempotency-Key": "a\tb"}, 400, "invalid_idempotency_key"),
    ('{"number": 1}', {**JSON, "Idempotency-Key": "k" * 300}, 400, "invalid_idempotency_key"),
    (
        '{"number": 1}',
        [("Content-Type", "application/json"), ("Idempotency-Key", "a"), ("Idempotency-Key", "b")],
        400,
        "invalid_idempotency_key",
    ),
    # The first row that applies wins.
    (b"x" * 1025, {"Content-Type": "text/plain", "Idempotency-Key": ""}, 413, "body_too_large"),
    ("{", {"Content-Type": "text/plain"}, 415, "unsupported_media_type"),
    ("{", {**JSON, "Idempotency-Key": ""}, 400, "invalid_json"),
    ('{"number": "1"}', {**JSON, "Idempotency-Key": "a b"}, 400, "invalid_idempotency_key"),
    (
        '{"number": 1e1000000000000000000}',
        {**JSON, "Idempotency-Key": ""},
        400,
        "invalid_idempotency_key",
    ),
    ('{"number": "1", "extra": 1}', JSON, 422, "invalid_body"),
]


# Numbers as sent, the status, and the `added` the response shows (text as rendered; None: 422
# number_out_of_range).
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

# The grammar rows the real stack checks end to end: each kind of literal once.
END_TO_END_NUMBERS = [
    row for row in GRAMMAR if row[0] in {"42", "1E+2", "-1.5e-3", "-0", MAX, TINY, "1e30", "1e-19"}
]


def one_per_code(
    rows: list[tuple[Body, Headers, int, str]],
) -> list[tuple[Body, dict[str, str], int, str]]:
    """The first row of each error code whose headers are a plain mapping."""
    seen: set[str] = set()
    kept = []
    for body, headers, status, code in rows:
        if isinstance(headers, dict) and code not in seen:
            seen.add(code)
            kept.append((body, headers, status, code))
    return kept
